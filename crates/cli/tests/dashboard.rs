//! The dashboard in a real headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`): sign in with the form, see your namespaces, operations and executions,
//! and nothing of another tenant's.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::{DockerCleanup, Stack, unique};

/// A chromedriver process and one browser session, closed on drop.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (Debian's chromium-driver; .ci/run installs it)");
        let base = format!("http://127.0.0.1:{port}");
        let http = support::http_client();
        let mut ready = false;
        for _ in 0..100 {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver answers");
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        }}}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a browser session: {r}"))
            .to_string();
        // Finding an element waits (up to 10 s) for a page still loading after a click, as a
        // person would.
        let timeouts: Value = http
            .post(format!("{base}/session/{session}/timeouts"))
            .json(&json!({"implicit": 10_000}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(timeouts["value"]["error"].is_null(), "{timeouts}");
        Browser {
            driver,
            base,
            session,
            http,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let r: Value = self
            .http
            .request(method, url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(r["value"]["error"].is_null(), "WebDriver {path}: {r}");
        r["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .unwrap()
            .to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    async fn clear(&self, css: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            json!({}),
        )
        .await;
    }

    /// Runs a script in the page.
    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Waits (up to 20 s) until the page's text contains `want`; the text last seen.
    async fn wait_for(&self, want: &str) -> String {
        self.wait_up_to(want, Duration::from_secs(20)).await
    }

    /// Waits until the page shows what a pod's run leads to (`want`): up to two minutes, as a
    /// container's start and end take what a loaded machine gives them. Liveness, not speed.
    async fn wait_for_outcome(&self, want: &str) -> String {
        self.wait_up_to(want, Duration::from_secs(120)).await
    }

    async fn wait_up_to(&self, want: &str, limit: Duration) -> String {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let page = self.text().await;
            if page.contains(want) {
                return page;
            }
            if tokio::time::Instant::now() >= until {
                panic!("the page never showed {want:?} in {limit:?}: {page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's visible text, read by a script so that a navigation in between cannot leave
    /// a stale element behind.
    async fn text(&self) -> String {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": "return document.body ? document.body.innerText : '';", "args": []}),
        )
        .await
        .as_str()
        .unwrap_or("")
        .to_string()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End the session first, so that chromedriver quits Chromium: killed alone, it leaves
        // the browser running. A raw request, as a drop cannot wait on the async client.
        use std::io::{Read, Write};
        if let Some(addr) = self.base.strip_prefix("http://")
            && let Ok(mut s) = std::net::TcpStream::connect(addr)
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_in_and_see_your_work_in_a_real_browser() {
    let stack = Stack::start().await;
    let (a, b) = (unique("d"), unique("e"));
    let _cleanup = DockerCleanup {
        tenants: vec![a.clone(), b.clone()],
        images: vec![],
    };
    let alice = stack.user(&a).await;
    let bob = stack.user(&b).await;
    let dir = stack.dir.path();
    let (a_ns, b_ns) = (unique("ans"), unique("bns"));
    let exec = alice
        .run_operation(
            dir,
            &format!("id: look\nnamespace: {a_ns}\ntasks:\n- id: ls\n  type: files.list\n"),
        )
        .await;
    assert_eq!(exec["state"], "COMPLETED", "{exec:#}");
    let exec = bob
        .run_operation(
            dir,
            &format!("id: hidden\nnamespace: {b_ns}\ntasks:\n- id: ls\n  type: files.list\n"),
        )
        .await;
    assert_eq!(exec["state"], "COMPLETED", "{exec:#}");

    let browser = Browser::start().await;
    browser.goto(&format!("{}/", stack.url)).await;
    assert!(
        browser.text().await.contains("Sign in"),
        "signed out, the page offers the login form"
    );
    browser.type_into("input[name=user]", &a).await;
    browser
        .type_into("input[name=password]", &format!("pw-{a}"))
        .await;
    browser.click("button[type=submit]").await;
    let mut page = String::new();
    for _ in 0..50 {
        page = browser.text().await;
        if page.contains("Signed in as") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(page.contains(&format!("Signed in as {a}")), "{page}");
    assert!(
        page.contains(&a_ns) && page.contains("look") && page.contains("COMPLETED"),
        "{page}"
    );
    assert!(
        !page.contains(&b_ns) && !page.contains("hidden"),
        "another tenant's work stays hidden: {page}"
    );

    // A write from the signed-in browser without the page's CSRF token is refused, one with it
    // goes through: the cookie alone never writes.
    const CREATE: &str = "const [name, token] = arguments; \
        const headers = {'Content-Type': 'application/json'}; \
        if (token) headers['X-CSRF-Token'] = document.querySelector('meta[name=csrf-token]').content; \
        return fetch('/api/v1/namespaces', {method: 'POST', headers, body: JSON.stringify({name})}) \
            .then(r => r.status);";
    let (forged, sent) = (unique("forged"), unique("sent"));
    let status = browser
        .call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": CREATE, "args": [forged, false]}),
        )
        .await;
    assert_eq!(status, 403, "a write without the CSRF token");
    let status = browser
        .call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": CREATE, "args": [sent, true]}),
        )
        .await;
    assert_eq!(status, 201, "a write with the CSRF token");
    let (_, list) = alice.get("/api/v1/namespaces").await;
    assert!(
        list.to_string().contains(&sent) && !list.to_string().contains(&forged),
        "{list}"
    );
    browser.screenshot("sign-in-home").await;

    // A wrong password is refused with a message, not a blank page.
    browser.click("form[action='/logout'] button").await;
    for _ in 0..50 {
        if !browser.text().await.contains("Signed in as") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.type_into("input[name=user]", &a).await;
    browser.type_into("input[name=password]", "wrong").await;
    browser.click("button[type=submit]").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let page = browser.text().await;
    assert!(!page.contains("Signed in as"), "{page}");
    assert!(page.contains("Sign in"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upload_author_execute_and_follow_in_a_real_browser() {
    let stack = Stack::start().await;
    let a = unique("u");
    let _cleanup = DockerCleanup {
        tenants: vec![a.clone()],
        images: vec![],
    };
    let alice = stack.user(&a).await;
    let dir = stack.dir.path();
    let ns = unique("uns");
    let app = dir.join("app");
    std::fs::create_dir_all(app.join("in")).unwrap();
    std::fs::write(app.join("in/a.txt"), b"from the cli\n").unwrap();
    assert!(
        alice
            .cli(&["files", "push", app.to_str().unwrap(), "-n", &ns])
            .await
            .status
            .success()
    );

    let browser = Browser::start().await;
    browser.goto(&format!("{}/", stack.url)).await;
    browser.type_into("input[name=user]", &a).await;
    browser
        .type_into("input[name=password]", &format!("pw-{a}"))
        .await;
    browser.click("button[type=submit]").await;
    browser.wait_for("Signed in as").await;

    // Upload a file from the browser into the namespace, see it listed, download link included.
    browser
        .goto(&format!("{}/namespaces/{ns}", stack.url))
        .await;
    browser.wait_for("/in/a.txt").await;
    let upload = dir.join("b.txt");
    std::fs::write(&upload, b"from the browser\n").unwrap();
    browser
        .type_into("input[name=files]", upload.to_str().unwrap())
        .await;
    browser.clear("input[name=to]").await;
    browser.type_into("input[name=to]", "/web").await;
    browser.click("#upload button[type=submit]").await;
    browser.wait_for("/web/b.txt").await;
    let (status, files) = alice.get(&format!("/api/v1/namespaces/{ns}/files")).await;
    assert_eq!(status, 200);
    assert!(files.to_string().contains("/web/b.txt"), "{files}");
    let href = browser
        .script("return document.querySelector('a[download]').getAttribute('href');")
        .await;
    assert_eq!(href, format!("/api/v1/namespaces/{ns}/files/in/a.txt"));

    // Delete it again with its button (the confirmation accepted).
    browser
        .script(
            "window.confirm = () => true; \
             document.querySelector(\"input[value='/web/b.txt']\").form.querySelector('button').click(); \
             return null;",
        )
        .await;
    for _ in 0..100 {
        if !browser.text().await.contains("/web/b.txt") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, files) = alice.get(&format!("/api/v1/namespaces/{ns}/files")).await;
    assert!(!files.to_string().contains("/web/b.txt"), "{files}");

    // Write an operation in the editor: a mistake is shown at its line, then it is saved,
    // executed and followed to its end.
    browser.goto(&format!("{}/operations", stack.url)).await;
    browser.clear("textarea[name=yaml]").await;
    browser
        .type_into(
            "textarea[name=yaml]",
            &format!("id: web\nnamespace: {ns}\ntasks:\n  - id: ls\n    type: files.nope\n"),
        )
        .await;
    browser.click("#validate").await;
    let page = browser.wait_for("line 5").await;
    assert!(page.contains("files.nope"), "{page}");
    browser.clear("textarea[name=yaml]").await;
    browser
        .type_into(
            "textarea[name=yaml]",
            &format!(
                "id: web\nnamespace: {ns}\nsystem: em\ntasks:\n  - id: up\n    type: uplink\n    source: /in\n    destination: /\n  - id: ls\n    type: files.list\n"
            ),
        )
        .await;
    browser.click("#save").await;
    browser.wait_for(&format!("Operation {ns} / web")).await;
    browser.click("#execute").await;
    let page = browser.wait_for_outcome("COMPLETED").await;
    assert!(page.contains("Execution"), "{page}");
    assert!(page.contains("files.list"), "{page}");
    let (_, list) = alice
        .get(&format!("/api/v1/executions?namespace={ns}"))
        .await;
    assert_eq!(list["executions"][0]["state"], "COMPLETED", "{list}");
}

/// Issue 14's "upload a folder with nested subfolders from the browser and see its structure":
/// a folder chosen with the folder picker is uploaded whole, each file at its path under the
/// folder, and the namespace's page lists them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upload_a_folder_with_nested_subfolders_in_a_real_browser() {
    let stack = Stack::start().await;
    let a = unique("fo");
    let _cleanup = DockerCleanup {
        tenants: vec![a.clone()],
        images: vec![],
    };
    let alice = stack.user(&a).await;
    let ns = unique("fns");
    assert!(
        alice
            .http(reqwest::Method::POST, "/api/v1/namespaces")
            .json(&json!({"name": ns}))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let tree = stack.dir.path().join("tree");
    for (path, text) in [
        ("top.txt", "top\n"),
        ("a/one.txt", "one\n"),
        ("a/b/two.txt", "two\n"),
        ("a/b/c/three.txt", "three\n"),
    ] {
        let p = tree.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let url = &stack.url;
    let browser = Browser::start().await;
    browser.sign_in(url, &a).await;
    browser.goto(&format!("{url}/namespaces/{ns}")).await;
    browser.wait_for(&format!("Signed in as {a}")).await;
    // The folder picker, given a folder (chromedriver sends a directory to a `webkitdirectory`
    // input as a person picking it would).
    browser
        .type_into("input[name=folder]", tree.to_str().unwrap())
        .await;
    let picked = browser
        .script("return [...document.querySelector('input[name=folder]').files].map(f => f.webkitRelativePath).sort();")
        .await;
    assert_eq!(
        picked,
        json!([
            "tree/a/b/c/three.txt",
            "tree/a/b/two.txt",
            "tree/a/one.txt",
            "tree/top.txt"
        ])
    );
    browser.click("#upload button[type=submit]").await;
    let page = browser.wait_for("/tree/a/b/c/three.txt").await;
    for path in ["/tree/top.txt", "/tree/a/one.txt", "/tree/a/b/two.txt"] {
        assert!(page.contains(path), "{path}: {page}");
    }
    browser.screenshot("upload-folder").await;
    let (_, files) = alice.get(&format!("/api/v1/namespaces/{ns}/files")).await;
    let mut paths: Vec<&str> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/tree/a/b/c/three.txt",
            "/tree/a/b/two.txt",
            "/tree/a/one.txt",
            "/tree/top.txt"
        ]
    );
    let (status, three) = {
        let r = alice
            .http(
                reqwest::Method::GET,
                &format!("/api/v1/namespaces/{ns}/files/tree/a/b/c/three.txt"),
            )
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!((status, three.as_str()), (200, "three\n"));
}

impl Browser {
    /// Saves a PNG of the page as `name.png` under the test target's `screenshots` folder;
    /// returns its path.
    async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let url = format!("{}/session/{}/screenshot", self.base, self.session);
        let r: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let png = base64_decode(r["value"].as_str().expect("a screenshot is base64 text"));
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Signs in through the login form as `user` (password `pw-<user>`).
    async fn sign_in(&self, url: &str, user: &str) {
        self.goto(&format!("{url}/")).await;
        self.type_into("input[name=user]", user).await;
        self.type_into("input[name=password]", &format!("pw-{user}"))
            .await;
        self.click("button[type=submit]").await;
        self.wait_for(&format!("Signed in as {user}")).await;
    }

    async fn sign_out(&self) {
        self.click("form[action='/logout'] button").await;
        self.wait_for("Sign in").await;
    }
}

/// Standard base64 (WebDriver's screenshots), padding optional.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// Issue 14's flow: an execution on a flight system waits for an operator's approval, and runs
/// only once an operator approves it in the dashboard; another tenant sees none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_approves_in_a_real_browser_what_waits_on_a_flight_system() {
    // `fm` is a flight system on this machine's engine, declared with its platform.
    let stack = Stack::start_system("fm", |g| {
        g.with_declarations(
            [(
                "fm".to_string(),
                wire::SystemDescription::default_for(preflight::host_platform()),
            )]
            .into(),
        )
    })
    .await;
    let (a, b, o) = (unique("pa"), unique("pb"), unique("po"));
    let _cleanup = DockerCleanup {
        tenants: vec![a.clone(), b.clone()],
        images: vec![],
    };
    let alice = stack.user(&a).await;
    stack.user(&b).await;
    stack.operator(&o).await;
    let ns = unique("pns");
    let op = stack.dir.path().join("op.yaml");
    std::fs::write(
        &op,
        format!(
            "id: flight\nnamespace: {ns}\nsystem: fm\ntasks:\n\
             - id: run\n  type: pod.run\n  image: busybox\n  command: [sh, -c, 'echo ran-after-approval']\n  max_duration: 1\n"
        ),
    )
    .unwrap();
    assert!(
        alice
            .cli(&["op", "apply", op.to_str().unwrap()])
            .await
            .status
            .success()
    );
    let out = alice
        .cli(&["exec", "start", &format!("{ns}/flight"), "-o", "json"])
        .await;
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(started["state"], "AWAITING_APPROVAL");
    let url = &stack.url;
    let browser = Browser::start().await;

    // The tenant sees it wait, and may cancel it but not approve it.
    browser.sign_in(url, &a).await;
    browser.goto(&format!("{url}/executions/{id}")).await;
    let page = browser
        .wait_for("Awaiting an operator's approval before it is sent to fm")
        .await;
    assert!(page.contains("AWAITING_APPROVAL"), "{page}");
    let buttons = browser
        .script(
            "return [...document.querySelectorAll('button')].map(b => b.textContent).join('|');",
        )
        .await;
    assert!(!buttons.as_str().unwrap().contains("Approve"), "{buttons}");
    browser.screenshot("approval-1-tenant-waits").await;
    browser.sign_out().await;

    // Another tenant sees none of it.
    browser.sign_in(url, &b).await;
    browser.goto(&format!("{url}/executions")).await;
    let page = browser.wait_for("Executions").await;
    assert!(
        !page.contains(&id) && !page.contains(&ns) && !page.contains("Awaiting approval"),
        "{page}"
    );
    browser.goto(&format!("{url}/executions/{id}")).await;
    let page = browser.wait_for("not found").await;
    assert!(!page.contains("flight"), "{page}");
    browser.screenshot("approval-2-other-tenant").await;
    browser.goto(&format!("{url}/")).await;
    browser.sign_out().await;

    // Still waiting: nothing has started onboard.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, e) = alice.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(e["state"], "AWAITING_APPROVAL");
    assert_eq!(e["started_at"], Value::Null);

    // The operator approves it from the Executions page; it runs to its end.
    browser.sign_in(url, &o).await;
    browser.goto(&format!("{url}/executions")).await;
    let page = browser.wait_for("Awaiting approval").await;
    assert!(page.contains(&id) && page.contains(&a), "{page}");
    browser.screenshot("approval-3-operator-list").await;
    browser
        .click(&format!("form[action='/executions/{id}/approve'] button"))
        .await;
    browser.wait_for("Nothing awaits your approval.").await;
    browser.goto(&format!("{url}/executions/{id}")).await;
    let page = browser.wait_for_outcome("COMPLETED").await;
    assert!(page.contains(&o), "the history names who approved: {page}");
    assert!(page.contains("ran-after-approval"), "{page}");
    browser.screenshot("approval-4-completed").await;

    let (_, e) = alice.get(&format!("/api/v1/executions/{id}")).await;
    let approval = e["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["state"] == "SCHEDULED")
        .unwrap();
    assert_eq!(approval["by"], o.as_str());
    let started = e["tasks"][0]["started_at"].as_str().unwrap();
    assert!(started >= approval["at"].as_str().unwrap(), "{e:#}");
    browser.sign_out().await;

    // And afterwards too, the other tenant sees nothing of it.
    browser.sign_in(url, &b).await;
    let page = browser.text().await;
    assert!(!page.contains(&id) && !page.contains(&ns), "{page}");
}

/// Applies the operation `yaml` (on `em`, its first pod writing `/data/started`) as `alice`
/// (tenant `a`) and starts it; the execution's id and the tenant's volume, once the pod started.
async fn start_a_pod(
    stack: &Stack,
    alice: &support::User,
    a: &str,
    yaml: &str,
) -> (String, std::path::PathBuf) {
    let op = stack.dir.path().join("pod.yaml");
    std::fs::write(&op, yaml).unwrap();
    assert!(
        alice
            .cli(&["op", "apply", op.to_str().unwrap()])
            .await
            .status
            .success()
    );
    let (ns, name) = (yaml_field(yaml, "namespace"), yaml_field(yaml, "id"));
    let out = alice
        .cli(&["exec", "start", &format!("{ns}/{name}"), "-o", "json"])
        .await;
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    let volume = stack.volume(a, &format!("{a}-pvc"));
    for _ in 0..1200 {
        if volume.join("started").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(volume.join("started").exists(), "the pod never started");
    (id, volume)
}

/// The value of a top-level `key: value` line of an operation's YAML.
fn yaml_field<'a>(yaml: &'a str, key: &str) -> &'a str {
    yaml.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {key} in {yaml}"))
}

/// Issue 15's flow in the dashboard: a tenant cancels a running pod from its execution's page
/// (the Cancel form, its confirmation accepted); the page follows it to `CANCELLED` and names who
/// cancelled it, and the pod's container is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_cancels_a_running_pod_in_a_real_browser() {
    let stack = Stack::start().await;
    let a = unique("ca");
    let _cleanup = DockerCleanup {
        tenants: vec![a.clone()],
        images: vec![],
    };
    let alice = stack.user(&a).await;
    let ns = unique("cns");
    let (id, volume) = start_a_pod(
        &stack,
        &alice,
        &a,
        &format!(
            "id: long\nnamespace: {ns}\nsystem: em\ntasks:\n\
             - id: long\n  type: pod.run\n  image: busybox\n  command: [sh, -c, 'echo started > /data/started; exec sleep 600']\n  max_duration: 10\n\
             - id: after\n  type: pod.run\n  image: busybox\n  command: [sh, -c, 'echo ran > /data/after']\n  max_duration: 1\n"
        ),
    )
    .await;
    let url = &stack.url;
    let browser = Browser::start().await;
    browser.sign_in(url, &a).await;
    browser.goto(&format!("{url}/executions/{id}")).await;
    browser.wait_for_outcome("RUNNING").await;
    let buttons = browser
        .script(
            "return [...document.querySelectorAll('button')].map(b => b.textContent).join('|');",
        )
        .await;
    assert!(
        buttons.as_str().unwrap().contains("Cancel execution"),
        "{buttons}"
    );
    browser.screenshot("cancel-1-running").await;
    browser
        .script(&format!(
            "window.confirm = () => true; \
             document.querySelector(\"form[action='/executions/{id}/cancel'] button\").click(); \
             return null;"
        ))
        .await;
    // The tasks' events may land before the execution's: wait for the execution's own word.
    let page = browser
        .wait_for_outcome(&format!("cancelled by {a}; stopped on system 'em'"))
        .await;
    assert!(page.contains(": CANCELLED"), "{page}");
    browser.screenshot("cancel-2-cancelled").await;
    let (_, e) = alice.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(e["state"], "CANCELLED", "{e:#}");
    assert_eq!(e["tasks"][1]["started_at"], Value::Null, "never ran: {e:#}");
    let left = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=org.orbitdock.tenant={a}"),
        ])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "the pod's container is gone");
    assert!(!volume.join("after").exists());
    browser.sign_out().await;
}

impl Browser {
    /// Presses and releases one key (WebDriver's key codes: Tab is U+E004, Enter U+E007).
    async fn press(&self, key: &str) {
        self.call(
            reqwest::Method::POST,
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
            ]}]}),
        )
        .await;
    }

    /// What has the focus, as [`TABBABLE`] describes an element.
    async fn focused(&self) -> String {
        let v = self
            .script(&format!(
                "const d = {DESCRIBE}; const e = document.activeElement; \
                 return (!e || e === document.body) ? 'body' : d(e);"
            ))
            .await;
        v.as_str().unwrap_or("").to_string()
    }

    /// The page's path.
    async fn path(&self) -> String {
        let v = self.script("return location.pathname;").await;
        v.as_str().unwrap_or("").to_string()
    }
}

/// A script function that names an element: its tag, then its link, name, id or text.
const DESCRIBE: &str = "(e => e.tagName.toLowerCase() + ' ' + (e.getAttribute('href') || \
    e.getAttribute('name') || e.id || e.textContent.trim().slice(0, 40)))";

/// Every element the Tab key should reach, in document order, described by [`DESCRIBE`]:
/// links, buttons, fields and summaries that are shown, enabled and not taken out of the order.
const TABBABLE: &str = "return [...document.querySelectorAll(\
    'a[href], button, input, select, textarea, summary, [tabindex]')]\
    .filter(e => !e.disabled && e.type !== 'hidden' && e.tabIndex >= 0 \
        && e.getClientRects().length > 0)\
    .map(DESCRIBE);";

/// Keyboard only: every page's links and form controls are reached by Tab in document order,
/// starting with the navigation bar, and Enter on a link follows it. The sign-in form is filled
/// and sent from the keyboard too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_page_is_usable_from_the_keyboard_alone() {
    let stack = Stack::start().await;
    let a = unique("k");
    let _cleanup = DockerCleanup {
        tenants: vec![a.clone()],
        images: vec![],
    };
    let alice = stack.user(&a).await;
    let ns = unique("kns");
    let exec = alice
        .run_operation(
            stack.dir.path(),
            &format!("id: keys\nnamespace: {ns}\ntasks:\n- id: ls\n  type: files.list\n"),
        )
        .await;
    assert_eq!(exec["state"], "COMPLETED", "{exec:#}");
    let id = exec["id"].as_str().unwrap();
    let url = &stack.url;
    let browser = Browser::start().await;
    const TAB: &str = "\u{E004}";
    const ENTER: &str = "\u{E007}";

    // Sign in: Tab to the user field, type, Tab to the password, type, Enter.
    browser.goto(&format!("{url}/")).await;
    browser.press(TAB).await;
    assert_eq!(browser.focused().await, "input user");
    for c in a.chars() {
        browser.press(&c.to_string()).await;
    }
    browser.press(TAB).await;
    assert_eq!(browser.focused().await, "input password");
    for c in format!("pw-{a}").chars() {
        browser.press(&c.to_string()).await;
    }
    browser.press(ENTER).await;
    browser.wait_for(&format!("Signed in as {a}")).await;

    let nav: Vec<String> = ["/", "/namespaces", "/operations", "/executions", "/systems"]
        .iter()
        .map(|h| format!("a {h}"))
        .collect();
    let pages: [(&str, String, &[&str]); 9] = [
        ("home", "/".into(), &[]),
        ("namespaces", "/namespaces".into(), &[]),
        (
            "namespace",
            format!("/namespaces/{ns}"),
            &["input files", "input to", "input folder"],
        ),
        (
            "operations",
            "/operations".into(),
            &["textarea yaml", "button validate", "button save"],
        ),
        (
            "operation",
            format!("/operations/{ns}/keys"),
            &[
                "textarea yaml",
                "input system",
                "input force",
                "button execute",
            ],
        ),
        ("executions", "/executions".into(), &[]),
        ("execution", format!("/executions/{id}"), &[]),
        ("systems", "/systems".into(), &[]),
        ("onboard", "/systems/em/volumes".into(), &[]),
    ];
    for (name, path, controls) in &pages {
        browser.goto(&format!("{url}{path}")).await;
        browser.wait_for("Signed in as").await;
        let want: Vec<String> = serde_json::from_value(
            browser
                .script(&TABBABLE.replace("DESCRIBE", DESCRIBE))
                .await,
        )
        .unwrap();
        assert!(
            want.starts_with(&nav),
            "{path}: the navigation comes first: {want:?}"
        );
        for c in *controls {
            assert!(
                want.iter().any(|w| w == c),
                "{path}: {c} is not among the focusable elements {want:?}"
            );
        }
        let mut got = Vec::new();
        for _ in &want {
            browser.press(TAB).await;
            got.push(browser.focused().await);
        }
        assert_eq!(got, want, "{path}: the Tab key's order");
        browser.screenshot(&format!("keyboard-{name}")).await;
    }

    // An operator's Users page: its navigation has Users too, and each user's quota form and
    // buttons come in order.
    browser.click("form[action='/logout'] button").await;
    browser.wait_for("Sign in").await;
    let o = unique("ko");
    stack.operator(&o).await;
    browser.sign_in(url, &o).await;
    browser.goto(&format!("{url}/users")).await;
    browser.wait_for("Signed in as").await;
    let want: Vec<String> = serde_json::from_value(
        browser
            .script(&TABBABLE.replace("DESCRIBE", DESCRIBE))
            .await,
    )
    .unwrap();
    let mut operator_nav = nav.clone();
    operator_nav.push("a /users".into());
    assert!(want.starts_with(&operator_nav), "{want:?}");
    assert!(
        want.iter()
            .any(|w| w.starts_with("input ") && w != "input csrf"),
        "the quota fields: {want:?}"
    );
    let mut got = Vec::new();
    for _ in &want {
        browser.press(TAB).await;
        got.push(browser.focused().await);
    }
    assert_eq!(got, want, "/users: the Tab key's order");
    browser.screenshot("keyboard-users").await;
    browser.click("form[action='/logout'] button").await;
    browser.wait_for("Sign in").await;
    browser.sign_in(url, &a).await;

    // Enter on a focused link follows it: Tab to "Executions" from Home, Enter.
    browser.goto(&format!("{url}/")).await;
    browser.wait_for("Signed in as").await;
    for _ in 0..4 {
        browser.press(TAB).await;
    }
    assert_eq!(browser.focused().await, "a /executions");
    browser.press(ENTER).await;
    for _ in 0..100 {
        if browser.path().await == "/executions" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(browser.path().await, "/executions");
    let page = browser.wait_for("Executions").await;
    assert!(page.contains(id), "{page}");
    // And on an execution's link in the table: Tab past the navigation and the sign-out button.
    let links = browser
        .script(&TABBABLE.replace("DESCRIBE", DESCRIBE))
        .await;
    let at = links
        .as_array()
        .unwrap()
        .iter()
        .position(|l| l.as_str() == Some(&format!("a /executions/{id}")))
        .unwrap_or_else(|| panic!("a link to the execution: {links}"));
    for _ in 0..=at {
        browser.press(TAB).await;
    }
    browser.press(ENTER).await;
    for _ in 0..100 {
        if browser.path().await == format!("/executions/{id}") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(browser.path().await, format!("/executions/{id}"));
    browser.screenshot("keyboard-followed").await;
}

/// Issue 14's "execute on the EM and watch states change without reloading": the execution's
/// page follows it by server-sent events. A pod waits for a file the test writes into its
/// volume, then a downlink brings its output down. A marker set on `window` while it runs is
/// still there when the page shows the end (a reload would have dropped it), and what the page
/// shows then (the execution's state, each task's, the output's download link) is what the API
/// answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn execute_on_the_em_and_watch_states_change_without_reloading() {
    let stack = Stack::start().await;
    let a = unique("lv");
    let _cleanup = DockerCleanup {
        tenants: vec![a.clone()],
        images: vec![],
    };
    let alice = stack.user(&a).await;
    let ns = unique("lns");
    let (id, volume) = start_a_pod(
        &stack,
        &alice,
        &a,
        &format!(
            "id: live\nnamespace: {ns}\nsystem: em\ntasks:\n\
             - id: wait\n  type: pod.run\n  image: busybox\n  command: [sh, -c, 'echo started > /data/started; while [ ! -e /data/go ]; do sleep 0.1; done; echo done > /data/out.txt']\n  max_duration: 10\n\
             - id: down\n  type: downlink\n  source: out.txt\n  destination: /results\n"
        ),
    )
    .await;
    let url = &stack.url;
    let browser = Browser::start().await;
    browser.sign_in(url, &a).await;
    browser.goto(&format!("{url}/executions/{id}")).await;
    browser.wait_for(&format!("Execution {id}")).await;
    browser.script("window.__noReload = 1; return null;").await;

    // What the page shows: the execution's state and each task's (id, state).
    const SHOWN: &str = "return [document.getElementById('state').textContent, \
        [...document.querySelectorAll('#tasks tr[data-task]')] \
            .map(r => [r.dataset.task, r.children[2].textContent])];";
    let api_shown = |e: &Value| {
        json!([
            e["state"],
            e["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| json!([t["id"], t["state"]]))
                .collect::<Vec<_>>()
        ])
    };
    // Running: the page says so without being reloaded.
    let running = json!(["RUNNING", [["wait", "RUNNING"], ["down", "SCHEDULED"]]]);
    let mut shown = Value::Null;
    for _ in 0..300 {
        shown = browser.script(SHOWN).await;
        if shown == running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown, running, "the page follows the pod's start");
    assert_eq!(browser.script("return window.__noReload;").await, 1);
    browser.screenshot("live-1-running").await;

    // Let the pod finish: the page follows the downlink to the end.
    std::fs::write(volume.join("go"), b"").unwrap();
    for _ in 0..600 {
        shown = browser.script(SHOWN).await;
        if shown[0] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, e) = alice.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(e["state"], "COMPLETED", "{e:#}");
    assert_eq!(shown, api_shown(&e), "the page shows what the API answers");
    assert_eq!(
        browser.script("return window.__noReload;").await,
        1,
        "the page was never reloaded"
    );
    // The output's download link came with the end, and gives the file.
    let href = browser
        .script(
            "const a = document.querySelector('#tasks a[download]'); \
             return a ? a.getAttribute('href') : null;",
        )
        .await;
    assert_eq!(
        href,
        format!("/api/v1/namespaces/{ns}/files/results/out.txt"),
        "{e:#}"
    );
    let page = browser.text().await;
    assert!(!page.contains("(updating)"), "{page}");
    browser.screenshot("live-2-completed").await;
    // Downloaded by the browser, with its session.
    let got = browser
        .script(
            "const a = document.querySelector('#tasks a[download]'); \
             return fetch(a.href).then(r => r.text().then(t => [r.status, t]));",
        )
        .await;
    assert_eq!(got, json!([200, "done\n"]));
}
