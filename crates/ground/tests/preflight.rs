//! Preflight in the ground, through `app()` on a real SQLite database: operation validation and
//! apply report what each build or load would hit onboard, an execution start refuses errors
//! unless forced, and the dashboard shows the findings.
//!
//! Needs `gcc` with a static libc (`.ci/run` provides it); fails when it is missing.

mod common;

use axum::http::{Method, StatusCode};
use common::{Entry, TestGround, ground, tar};
use serde_json::{Value, json};

/// `(severity, code, file, line)` of every finding.
fn findings(list: &Value) -> Vec<(String, String, String, u64)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["code"].as_str().unwrap().to_string(),
                f["file"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The findings of error severity, as `(code, file, line)`.
fn errors(list: &Value) -> Vec<(String, String, u64)> {
    findings(list)
        .into_iter()
        .filter(|(s, ..)| s == "error")
        .map(|(_, c, f, l)| (c, f, l))
        .collect()
}

fn err(code: &str, file: &str, line: u64) -> (String, String, u64) {
    (code.into(), file.into(), line)
}

async fn executions(g: &TestGround, t: &str) -> usize {
    g.get("/api/v1/executions?namespace=demo", t).await.json()["executions"]
        .as_array()
        .unwrap()
        .len()
}

/// `/bad/Dockerfile` keeps its folder: it lands at `bad/Dockerfile` in the volume.
const BAD_OP: &str = "id: bad\nnamespace: demo\ntasks:\n  - id: up\n    type: uplink\n    source: /bad/Dockerfile\n  - id: build\n    type: docker.build\n    dockerfile: bad/Dockerfile\n    context: bad\n    image: bad:1\n";

#[tokio::test]
async fn network_and_foreign_bases_are_found_and_block_a_start_unless_forced() {
    let g = ground().await;
    let t = g.login("alice").await;
    let r = g
        .upload_tar(
            "demo",
            "",
            &t,
            tar(&[Entry::File(
                "bad/Dockerfile",
                b"FROM ubuntu:22.04\nRUN apt-get install -y curl\n",
                0o644,
            )]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    let r = g.post_yaml("/api/v1/operations/validate", &t, BAD_OP).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["valid"], false, "{v:#}");
    assert_eq!(v["diagnostics"], json!([]));
    let expected = vec![
        err("OD101", "bad/Dockerfile", 1),
        err("OD201", "bad/Dockerfile", 2),
    ];
    assert_eq!(errors(&v["preflight"]), expected, "{v:#}");
    let first = &v["preflight"][0];
    assert_eq!(first["task"], "build");
    assert_eq!(first["column"], 6, "{first:#}");
    assert!(first["message"].as_str().unwrap().contains("ubuntu:22.04"));
    assert!(first["help"].is_string(), "{first:#}");

    // Applying succeeds (the YAML is valid) and says the same.
    let r = g.post_yaml("/api/v1/operations", &t, BAD_OP).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(errors(&r.json()["preflight"]), expected);
    assert_eq!(r.json()["revision"], 1);

    // Starting it is refused, and nothing is created.
    let start = json!({"namespace": "demo", "operation": "bad"});
    let r = g
        .post_json("/api/v1/executions", Some(&t), start.clone())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let e = r.json();
    assert_eq!(e["error"]["code"], "bad_request");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("preflight found 2 errors") && message.contains("OD101"),
        "{message}"
    );
    assert_eq!(errors(&e["error"]["preflight"]), expected);
    assert_eq!(executions(&g, &t).await, 0);

    // Forced, it starts.
    let mut forced = start;
    forced["force"] = json!(true);
    let r = g.post_json("/api/v1/executions", Some(&t), forced).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["state"], "SCHEDULED", "{}", r.text());
    assert_eq!(executions(&g, &t).await, 1);
}

/// A statically linked executable for this machine.
fn static_binary() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app.c");
    let out = dir.path().join("app");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let status = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc is needed to build the test binary");
    assert!(status.success(), "gcc -static failed");
    std::fs::read(out).unwrap()
}

#[tokio::test]
async fn a_clean_build_starts_and_earlier_images_count_as_the_tenants() {
    let g = ground().await;
    let t = g.login("alice").await;
    let app = static_binary();
    let r = g
        .upload_tar(
            "demo",
            "",
            &t,
            tar(&[
                Entry::File(
                    "good/Dockerfile",
                    b"FROM gcr.io/distroless/static-debian12\nCOPY app /app\nUSER 65532:65532\nENTRYPOINT [\"/app\"]\n",
                    0o644,
                ),
                Entry::File("good/app", &app, 0o755),
                Entry::File(
                    "next/Dockerfile",
                    b"FROM app:1\nUSER 65532:65532\nENTRYPOINT [\"/app\"]\n",
                    0o644,
                ),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let yaml = "id: good\nnamespace: demo\nsystem: em\ntasks:\n\
                - id: up\n  type: uplink\n  source: [/good, /next]\n  destination: src\n\
                - id: build\n  type: docker.build\n  context: src/good\n  dockerfile: src/good/Dockerfile\n  image: app:1\n\
                - id: next\n  type: docker.build\n  context: src/next\n  dockerfile: src/next/Dockerfile\n  image: {name: next}\n\
                - id: run\n  type: pod.run\n  image: next\n";
    let r = g.post_yaml("/api/v1/operations/validate", &t, yaml).await;
    let v = r.json();
    assert_eq!(v["valid"], true, "{v:#}");
    assert_eq!(errors(&v["preflight"]), vec![], "{v:#}");
    assert_eq!(
        g.post_yaml("/api/v1/operations", &t, yaml).await.status,
        StatusCode::CREATED
    );
    let r = g
        .post_json(
            "/api/v1/executions",
            Some(&t),
            json!({"namespace": "demo", "operation": "good"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["state"], "SCHEDULED");
}

/// A `docker save` archive of one empty image `app:1` for this machine's platform.
fn app_archive() -> Vec<u8> {
    let platform = preflight::host_platform();
    let (os, arch) = platform.split_once('/').unwrap();
    let config = json!({"os": os, "architecture": arch, "config": {"User": "1"}, "rootfs": {"type": "layers", "diff_ids": []}}).to_string();
    let name = format!("{}.json", wire::Digest::of(config.as_bytes()).hex());
    let manifest = json!([{"Config": name, "RepoTags": ["app:1"], "Layers": []}]).to_string();
    tar(&[
        Entry::File(&name, config.as_bytes(), 0o644),
        Entry::File("manifest.json", manifest.as_bytes(), 0o644),
    ])
}

#[tokio::test]
async fn missing_sources_and_bad_archives_are_errors_with_volume_paths() {
    let g = ground().await;
    let t = g.login("alice").await;
    let app = app_archive();
    let r = g
        .upload_tar(
            "demo",
            "",
            &t,
            tar(&[
                Entry::File(
                    "copy/Dockerfile",
                    b"FROM busybox\nUSER 1000\nCOPY missing.txt /x\n",
                    0o644,
                ),
                Entry::File("junk.tar", b"not an image archive", 0o644),
                Entry::File("app.tar", &app, 0o644),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let yaml = "id: miss\nnamespace: demo\ntasks:\n\
                - id: up\n  type: uplink\n  source: [/copy/Dockerfile, /junk.tar, /app.tar]\n  destination: w\n\
                - id: build\n  type: docker.build\n  context: w/copy\n  dockerfile: w/copy/Dockerfile\n  image: a\n\
                - id: load\n  type: docker.load\n  tarfile: w/junk.tar\n  image: junk\n\
                - id: app\n  type: docker.load\n  tarfile: w/app.tar\n  image: app:1\n\
                - id: other\n  type: docker.load\n  tarfile: w/app.tar\n  image: other\n\
                - id: nodf\n  type: docker.build\n  dockerfile: nowhere/Dockerfile\n  image: b\n";
    let v = g
        .post_yaml("/api/v1/operations/validate", &t, yaml)
        .await
        .json();
    assert_eq!(v["valid"], false);
    assert_eq!(
        errors(&v["preflight"]),
        vec![
            err("OD302", "w/copy/Dockerfile", 3),
            err("OD602", "w/junk.tar", 0),
            // The archive holds app:1, not the image the task loads.
            err("OD607", "w/app.tar", 0),
            err("OD000", "nowhere/Dockerfile", 0),
        ],
        "{v:#}"
    );
    let tasks: Vec<&str> = v["preflight"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["task"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, ["build", "load", "other", "nodf"]);
    // The missing Dockerfile's finding points at the one the volume holds elsewhere.
    let help = v["preflight"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["task"] == "nodf")
        .and_then(|f| f["help"].as_str())
        .unwrap();
    assert!(help.contains("`w/copy/Dockerfile`"), "{help}");

    // Another tenant validating an operation of alice's namespace learns nothing of its files.
    let b = g.login("bob").await;
    let v = g
        .post_yaml("/api/v1/operations/validate", &b, yaml)
        .await
        .json();
    assert_eq!(v["preflight"], json!([]), "{v:#}");
}

#[tokio::test]
async fn the_dashboard_shows_the_latest_revisions_findings_escaped() {
    let g = ground().await;
    let t = g.login("alice").await;
    g.upload_tar(
        "demo",
        "",
        &t,
        tar(&[Entry::File(
            "bad/Dockerfile",
            b"FROM ubuntu:22.04\nRUN apt-get install -y curl\n",
            0o644,
        )]),
    )
    .await;
    // A Dockerfile path with markup in it, to see it escaped.
    let yaml = format!(
        "{BAD_OP}  - id: odd\n    type: docker.build\n    dockerfile: '<b>x'\n    image: odd\n"
    );
    assert_eq!(
        g.post_yaml("/api/v1/operations", &t, &yaml).await.status,
        StatusCode::CREATED
    );
    let r = g
        .call(
            Method::POST,
            "/login",
            None,
            Some("application/x-www-form-urlencoded"),
            b"user=alice&password=pw-alice".to_vec(),
        )
        .await;
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    let pair = cookie.split(';').next().unwrap().to_string();
    let page = g
        .send(
            axum::http::Request::builder()
                .uri("/operations/demo/bad")
                .header("cookie", pair)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .text();
    assert!(page.contains("<h2>Preflight on em</h2>"), "{page}");
    assert!(page.contains("<code>OD201</code>"), "{page}");
    assert!(page.contains("<code>bad/Dockerfile:2:5</code>"), "{page}");
    assert!(page.contains("Operation demo / bad"), "{page}");
    assert!(page.contains("Revision 1,"), "{page}");
    assert!(page.contains("&lt;b&gt;x"), "{page}");
    assert!(!page.contains("<b>x"), "{page}");
}
