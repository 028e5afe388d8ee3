//! The whole path on the Engineering Model, as a tenant sees it: upload a folder, build or load
//! onboard air-gapped, run, bring the output back — and the ways it must refuse.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{DockerCleanup, Stack, gcc_static, task_error, unique};

/// Reads /data/in/input.txt and writes /data/out/result.txt: its length, then its bytes reversed.
const APP: &str = r#"
#include <stdio.h>
#include <sys/stat.h>
int main(void) {
    static char buf[1 << 20];
    FILE *in = fopen("/data/in/input.txt", "rb");
    if (!in) { perror("/data/in/input.txt"); return 2; }
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    mkdir("/data/out", 0755);
    FILE *out = fopen("/data/out/result.txt", "wb");
    if (!out) { perror("/data/out/result.txt"); return 3; }
    fprintf(out, "len=%zu\n", n);
    for (size_t i = 0; i < n; i++) fputc(buf[n - 1 - i], out);
    fclose(out);
    puts("result written");
    return 0;
}
"#;

fn expected_result(input: &[u8]) -> Vec<u8> {
    let mut out = format!("len={}\n", input.len()).into_bytes();
    out.extend(input.iter().rev());
    out
}

fn input_bytes() -> Vec<u8> {
    (0..5000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// A payload folder: the app, in/input.txt, and whatever else the caller adds.
fn payload(dir: &Path) -> std::path::PathBuf {
    let p = dir.join(unique("payload"));
    std::fs::create_dir_all(p.join("in")).unwrap();
    gcc_static(APP, &p.join("app"));
    std::fs::write(p.join("in/input.txt"), input_bytes()).unwrap();
    p
}

async fn pull_and_check(user: &support::User, ns: &str, dir: &Path) {
    let local = dir.join(unique("pulled"));
    let out = user
        .cli(&[
            "files",
            "pull",
            &format!("{ns}:/out/result.txt"),
            local.to_str().unwrap(),
        ])
        .await;
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(&local).unwrap(),
        expected_result(&input_bytes()),
        "result differs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn build_onboard_run_and_downlink() {
    let stack = Stack::start().await;
    let tenant = unique("b");
    let _cleanup = DockerCleanup {
        tenants: vec![tenant.clone()],
        images: vec![],
    };
    let user = stack.user(&tenant).await;
    let dir = stack.dir.path();
    let p = payload(dir);
    std::fs::write(
        p.join("Dockerfile"),
        "FROM gcr.io/distroless/static-debian12\nCOPY app /app\nUSER 65532:65532\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
    let ns = unique("ns");
    let out = user
        .cli(&["files", "push", p.to_str().unwrap(), "--namespace", &ns])
        .await;
    assert!(out.status.success());

    let exec = user
        .run_operation(
            dir,
            &format!(
                "id: build-run\nnamespace: {ns}\nsystem: em\ntasks:\n\
                 - id: up\n  type: uplink\n  source: /\n  destination: /\n\
                 - id: build\n  type: dphi.space.cg2.docker.build\n  dockerfile: Dockerfile\n  context: .\n  image: {{name: app, tag: v1}}\n  max_duration: 5\n\
                 - id: run\n  type: pod.run\n  image: {{name: app, tag: v1}}\n  max_duration: 2\n\
                 - id: down\n  type: downlink\n  source: [out/*.txt]\n  destination: /\n"
            ),
        )
        .await;
    assert_eq!(exec["state"], "COMPLETED", "{exec:#}");
    for t in exec["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "SUCCESS");
        let states: Vec<&str> = t["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["state"].as_str().unwrap())
            .collect();
        assert_eq!(
            states,
            ["CREATED", "SCHEDULED", "RUNNING", "SUCCESS"],
            "task {}",
            t["id"]
        );
        assert!(t["started_at"].is_string() && t["finished_at"].is_string());
    }
    pull_and_check(&user, &ns, dir).await;

    // The ground mirrors the volume: the uplinked and produced files are listed.
    let (status, listing) = user
        .get(&format!("/api/v1/systems/em/volumes/{tenant}-pvc/files"))
        .await;
    assert_eq!(status, 200);
    let paths: Vec<&str> = listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    for want in ["/in/input.txt", "/out/result.txt", "/Dockerfile"] {
        assert!(paths.contains(&want), "{want} not in {paths:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_a_docker_save_archive_run_and_downlink() {
    let stack = Stack::start().await;
    let tenant = unique("l");
    let image = format!("{}:v1", unique("e2e-load-"));
    let _cleanup = DockerCleanup {
        tenants: vec![tenant.clone()],
        images: vec![image.clone()],
    };
    let user = stack.user(&tenant).await;
    let dir = stack.dir.path();
    let p = payload(dir);

    // Build the image on the ground (here: this machine's engine) and `docker save` it.
    let ctx = dir.join(unique("ctx"));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(p.join("app"), ctx.join("app")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM gcr.io/distroless/static-debian12\nCOPY app /app\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
    let st = std::process::Command::new("docker")
        .args([
            "build",
            "-q",
            "--network",
            "none",
            "--label",
            "org.orbitdock.test=1",
            "-t",
            &image,
        ])
        .arg(&ctx)
        .status()
        .unwrap();
    assert!(st.success());
    let st = std::process::Command::new("docker")
        .args(["save", "-o"])
        .arg(p.join("image.tar"))
        .arg(&image)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_file(p.join("app")).unwrap();

    let ns = unique("ns");
    assert!(
        user.cli(&["files", "push", p.to_str().unwrap(), "--namespace", &ns])
            .await
            .status
            .success()
    );
    let exec = user
        .run_operation(
            dir,
            &format!(
                "id: load-run\nnamespace: {ns}\ntasks:\n\
                 - id: up\n  type: uplink\n  source: [/image.tar, /in]\n  destination: /\n\
                 - id: load\n  type: docker.load\n  tarfile: image.tar\n  image: {image}\n\
                 - id: run\n  type: pod.run\n  image: {image}\n  max_duration: 2\n\
                 - id: down\n  type: downlink\n  source: [out/result.txt]\n"
            ),
        )
        .await;
    assert_eq!(exec["state"], "COMPLETED", "{exec:#}");
    pull_and_check(&user, &ns, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn onboard_refusals_fail_clearly_and_disturb_nothing() {
    let stack = Stack::start().await;
    let tenant = unique("n");
    let _cleanup = DockerCleanup {
        tenants: vec![tenant.clone()],
        images: vec![],
    };
    let user = stack.user(&tenant).await;
    let dir = stack.dir.path();
    let ns = unique("ns");
    let folder = dir.join(unique("neg"));
    for (sub, dockerfile) in [
        ("notcat", "FROM ubuntu:22.04\nRUN true\n"),
        (
            "net",
            "FROM busybox\nRUN wget -q -O /index.html http://deb.debian.org/\n",
        ),
    ] {
        std::fs::create_dir_all(folder.join(sub)).unwrap();
        std::fs::write(folder.join(sub).join("Dockerfile"), dockerfile).unwrap();
    }
    assert!(
        user.cli(&[
            "files",
            "push",
            folder.to_str().unwrap(),
            "--namespace",
            &ns
        ])
        .await
        .status
        .success()
    );

    // FROM an image not in the catalogue. Preflight refuses to start it on the ground...
    let notcat = format!(
        "id: notcat\nnamespace: {ns}\ntasks:\n\
         - id: up\n  type: uplink\n  source: /notcat/Dockerfile\n\
         - id: build\n  type: docker.build\n  dockerfile: notcat/Dockerfile\n  context: notcat\n  image: x\n"
    );
    let f = dir.join(unique("notcat")).with_extension("yaml");
    std::fs::write(&f, &notcat).unwrap();
    assert!(
        user.cli(&["op", "apply", f.to_str().unwrap()])
            .await
            .status
            .success()
    );
    let out = user.cli(&["exec", "start", &format!("{ns}/notcat")]).await;
    assert_eq!(out.status.code(), Some(1), "preflight blocks the start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("OD101") && stderr.contains("Dockerfile:1:"),
        "{stderr}"
    );
    let (_, listed) = user
        .get(&format!("/api/v1/executions?namespace={ns}"))
        .await;
    assert_eq!(
        listed["executions"].as_array().map(Vec::len),
        Some(0),
        "nothing was started"
    );
    // ...and forced, the onboard build fails too: the error names the catalogue.
    let exec = user.run_operation_with(dir, &notcat, &["--force"]).await;
    assert_eq!(exec["state"], "FAILED");
    let err = task_error(&exec, "build");
    assert_eq!(err["code"], 15, "{err:#}");
    assert_eq!(err["name"], "DOCKER_IMAGE_NOT_FOUND");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("ubuntu:22.04") && msg.contains("gcr.io/distroless/static-debian12"),
        "{msg}"
    );

    // A RUN that needs the network (preflight says so; forced): the air-gapped build fails with its
    // log tail.
    let exec = user
        .run_operation_with(
            dir,
            &format!(
                "id: net\nnamespace: {ns}\ntasks:\n\
                 - id: up\n  type: uplink\n  source: /net/Dockerfile\n\
                 - id: build\n  type: docker.build\n  dockerfile: net/Dockerfile\n  context: net\n  image: {{name: net}}\n  max_duration: 3\n\
                 - id: never\n  type: files.list\n"
            ),
            &["--force"],
        )
        .await;
    assert_eq!(exec["state"], "FAILED");
    let err = task_error(&exec, "build");
    assert_eq!(err["code"], 12, "{err:#}");
    assert!(!err["log_tail"].as_array().unwrap().is_empty(), "{err:#}");
    let never = exec["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "never")
        .unwrap();
    assert_eq!(
        never["state"], "FAILED",
        "a task after a failed one with on_failure: stop never runs"
    );

    // A pod that outlives max_duration is stopped and fails with a timeout.
    let exec = user
        .run_operation(
            dir,
            &format!(
                "id: slow\nnamespace: {ns}\ntasks:\n\
                 - id: sleep\n  type: pod.run\n  image: busybox\n  command: [sleep, '30']\n  max_duration: 2s\n"
            ),
        )
        .await;
    assert_eq!(exec["state"], "FAILED");
    let err = task_error(&exec, "sleep");
    assert_eq!(err["code"], 20, "{err:#}");
    assert_eq!(err["name"], "MAX_DURATION_EXCEEDED");
    let leftover = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=org.orbitdock.tenant={tenant}"),
        ])
        .output()
        .unwrap();
    assert!(
        leftover.stdout.is_empty(),
        "the stopped pod's container is removed"
    );

    // The system still works afterwards.
    let exec = user
        .run_operation(
            dir,
            &format!("id: after\nnamespace: {ns}\ntasks:\n- id: ls\n  type: files.list\n"),
        )
        .await;
    assert_eq!(exec["state"], "COMPLETED", "{exec:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_operations_name_the_task_and_line() {
    let stack = Stack::start().await;
    let user = stack.user(&unique("v")).await;
    let dir = stack.dir.path();
    let cases = [
        (
            "id: bad\nnamespace: x\ntasks:\n  - id: ok\n    type: files.list\n  - id: typo\n    type: docker.bild\n",
            "typo",
            &[6, 7][..],
        ),
        (
            "id: bad\nnamespace: x\ntasks:\n  - id: run\n    type: pod.run\n    volume: v\n",
            "run",
            &[4][..],
        ),
    ];
    for (yaml, task, lines) in cases {
        let f = dir.join(unique("bad")).with_extension("yaml");
        std::fs::write(&f, yaml).unwrap();
        let out = user.cli(&["op", "apply", f.to_str().unwrap()]).await;
        assert_eq!(out.status.code(), Some(1), "an invalid operation exits 1");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let at = |line: &usize| format!("{}:{line}:", f.display());
        assert!(
            lines.iter().any(|l| stderr.contains(&at(l))),
            "diagnostic should point at line {lines:?}: {stderr}"
        );
        assert!(
            stderr.contains(task),
            "diagnostic should name task {task}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_that_escape_are_rejected_whole() {
    let stack = Stack::start().await;
    let user = stack.user(&unique("u")).await;
    let ns = unique("ns");
    let ok = tar_with(&[("fine.txt", Entry::File(b"ok"))]);
    let r = upload(&user, &ns, ok).await;
    assert_eq!(r.0, 201, "{:#}", r.1);
    for (name, tar) in [
        (
            "dotdot",
            tar_with(&[
                ("a.txt", Entry::File(b"a")),
                ("../escape.txt", Entry::File(b"x")),
            ]),
        ),
        ("absolute", tar_with(&[("/etc/passwd", Entry::File(b"x"))])),
        (
            "symlink",
            tar_with(&[("link", Entry::Symlink("../../../etc/shadow"))]),
        ),
        (
            "hardlink",
            tar_with(&[("hard", Entry::Hardlink("/etc/shadow"))]),
        ),
    ] {
        let (status, body) = upload(&user, &ns, tar).await;
        assert_eq!(status, 400, "{name}: {body:#}");
        assert!(
            body["error"]["message"].as_str().unwrap_or("").len() > 10,
            "{name}: a clear message"
        );
    }
    let (_, files) = user.get(&format!("/api/v1/namespaces/{ns}/files")).await;
    let paths: Vec<&str> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert_eq!(paths, ["/fine.txt"], "nothing of a rejected upload is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_cannot_touch_each_other() {
    let stack = Stack::start().await;
    let (a_name, b_name) = (unique("a"), unique("b"));
    let _cleanup = DockerCleanup {
        tenants: vec![a_name.clone(), b_name.clone()],
        images: vec![],
    };
    let alice = stack.user(&a_name).await;
    let bob = stack.user(&b_name).await;
    let dir = stack.dir.path();

    // Alice uploads, builds an image and leaves files in her volume.
    let p = payload(dir);
    std::fs::write(
        p.join("Dockerfile"),
        "FROM gcr.io/distroless/static-debian12\nCOPY app /app\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
    let a_ns = unique("ans");
    assert!(
        alice
            .cli(&["files", "push", p.to_str().unwrap(), "--namespace", &a_ns])
            .await
            .status
            .success()
    );
    let exec = alice
        .run_operation(
            dir,
            &format!(
                "id: secret\nnamespace: {a_ns}\ntasks:\n- id: up\n  type: uplink\n  source: /\n\
                 - id: build\n  type: docker.build\n  image: {{name: secret, tag: v1}}\n"
            ),
        )
        .await;
    assert_eq!(exec["state"], "COMPLETED", "{exec:#}");
    let a_exec = exec["id"].as_str().unwrap().to_string();

    // API: Bob can neither list, read, upload into, apply into nor execute Alice's namespace.
    let (s, _) = bob.get(&format!("/api/v1/namespaces/{a_ns}/files")).await;
    assert_eq!(s, 403);
    let (s, _) = bob
        .get(&format!("/api/v1/namespaces/{a_ns}/files/in/input.txt"))
        .await;
    assert_eq!(s, 403);
    let (s, _) = bob.get("/api/v1/namespaces").await;
    assert_eq!(s, 200);
    let (_, mine) = bob.get("/api/v1/namespaces").await;
    assert!(
        !mine.to_string().contains(&a_ns),
        "Bob's namespace list shows only his own"
    );
    let (s, _) = upload(&bob, &a_ns, tar_with(&[("x.txt", Entry::File(b"x"))])).await;
    assert_eq!(s, 403);
    let r = bob
        .http(reqwest::Method::POST, "/api/v1/operations")
        .header("content-type", "application/yaml")
        .body(format!(
            "id: steal\nnamespace: {a_ns}\ntasks:\n- id: d\n  type: downlink\n  source: ['**']\n"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = bob
        .http(reqwest::Method::POST, "/api/v1/executions")
        .json(&serde_json::json!({"namespace": a_ns, "operation": "secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (s, _) = bob.get(&format!("/api/v1/executions/{a_exec}")).await;
    assert!(
        s == 403 || s == 404,
        "Bob cannot read Alice's execution ({s})"
    );

    // Onboard: Bob's image names and volume names are his own.
    let b_ns = unique("bns");
    let exec = bob
        .run_operation(
            dir,
            &format!(
                "id: borrow\nnamespace: {b_ns}\ntasks:\n\
                 - id: ls\n  type: files.list\n  volume: {a_name}-pvc\n  on_failure: continue\n\
                 - id: run\n  type: pod.run\n  image: {{name: secret, tag: v1}}\n  volume: {a_name}-pvc\n"
            ),
        )
        .await;
    assert_eq!(exec["state"], "FAILED");
    assert_eq!(
        task_error(&exec, "run")["code"],
        15,
        "Alice's image does not exist for Bob: {exec:#}"
    );
    let ls = exec["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "ls")
        .unwrap();
    assert!(
        !ls.to_string().contains("input.txt"),
        "a volume named like Alice's is Bob's own, empty one: {ls:#}"
    );
    let (_, listing) = bob
        .get(&format!("/api/v1/systems/em/volumes/{a_name}-pvc/files"))
        .await;
    assert!(
        !listing.to_string().contains("input.txt"),
        "the ground's mirror is per tenant too"
    );
}

enum Entry<'a> {
    File(&'a [u8]),
    Symlink(&'a str),
    Hardlink(&'a str),
}

/// A tar written byte by byte, so that it can hold what a well-behaved tool would refuse.
fn tar_with(entries: &[(&str, Entry)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, entry) in entries {
        let mut h = tar::Header::new_old();
        {
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
        }
        h.set_mode(0o644);
        h.set_mtime(0);
        let body: &[u8] = match entry {
            Entry::File(b) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(b.len() as u64);
                b
            }
            Entry::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
                h.set_size(0);
                &[]
            }
            Entry::Hardlink(t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
                h.set_size(0);
                &[]
            }
        };
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

async fn upload(user: &support::User, ns: &str, tar: Vec<u8>) -> (u16, Value) {
    let r = user
        .http(
            reqwest::Method::POST,
            &format!("/api/v1/namespaces/{ns}/files"),
        )
        .header("content-type", "application/x-tar")
        .body(tar)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}
