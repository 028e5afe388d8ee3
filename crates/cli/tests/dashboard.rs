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
        let http = reqwest::Client::new();
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
