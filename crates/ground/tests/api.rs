//! The HTTP API through `app()`, on a real SQLite database in a temporary directory.

mod common;

use axum::http::{Method, StatusCode};
use common::{Entry, ground, multipart, tar};
use serde_json::{Value, json};

#[tokio::test]
async fn login_ok_and_bad() {
    let g = ground().await;
    let token = g.login("alice").await;
    assert_eq!(token.len(), 64);

    let r = g
        .post_json(
            "/api/v1/login",
            None,
            json!({"user": "alice", "password": "nope"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    let r = g
        .post_json(
            "/api/v1/login",
            None,
            json!({"user": "mallory", "password": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = g
        .post_json("/api/v1/login", None, json!({"user": "alice"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    assert_eq!(
        g.get("/api/v1/namespaces", &token).await.status,
        StatusCode::OK
    );
    assert_eq!(
        g.get("/api/v1/namespaces", &"0".repeat(64)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = g
        .call(Method::GET, "/api/v1/namespaces", None, None, Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(g.get("/healthz", "").await.json(), json!({"status": "ok"}));

    // A new password ends the old sessions (the same one again changes nothing: see
    // tests/sessions.rs).
    g.ground.ensure_user("alice", "pw-alice-2").await.unwrap();
    assert_eq!(
        g.get("/api/v1/namespaces", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

fn paths(list: &Value) -> Vec<(String, i64)> {
    list["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["version"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn tar_upload_keeps_paths_modes_and_versions() {
    let g = ground().await;
    let t = g.login("alice").await;
    let archive = tar(&[
        Entry::Dir("./"),
        Entry::Dir("./app/"),
        Entry::File("./app/run.sh", b"#!/bin/sh\necho hi\n", 0o755),
        Entry::File("app/src/main.rs", b"fn main() {}\n", 0o644),
    ]);
    let r = g.upload_tar("demo", "", &t, archive).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    assert_eq!(
        paths(&v),
        vec![("/app/run.sh".into(), 1), ("/app/src/main.rs".into(), 1)]
    );
    assert_eq!(v["files"][0]["mode"], "755");
    assert_eq!(
        v["files"][0]["digest"],
        wire::Digest::of(b"#!/bin/sh\necho hi\n").to_string()
    );

    // The same path again, with identical content, still adds a version; `to` prefixes.
    let r = g
        .upload_tar(
            "demo",
            "",
            &t,
            tar(&[Entry::File("app/run.sh", b"#!/bin/sh\necho hi\n", 0o755)]),
        )
        .await;
    assert_eq!(paths(&r.json()), vec![("/app/run.sh".into(), 2)]);
    let r = g
        .upload_tar(
            "demo",
            "?to=/cfg",
            &t,
            tar(&[Entry::File("a.json", b"{}", 0o600)]),
        )
        .await;
    assert_eq!(paths(&r.json()), vec![("/cfg/a.json".into(), 1)]);
    let r = g
        .upload_tar(
            "demo",
            "",
            &t,
            tar(&[Entry::File("app/run.sh", b"v3", 0o700)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let list = g.get("/api/v1/namespaces/demo/files", &t).await.json();
    assert_eq!(
        paths(&list),
        vec![
            ("/app/run.sh".into(), 3),
            ("/app/src/main.rs".into(), 1),
            ("/cfg/a.json".into(), 1)
        ]
    );
    assert_eq!(list["files"][0]["versions"], 3);
    assert_eq!(list["files"][0]["mode"], "700");

    let r = g.get("/api/v1/namespaces/demo/files/app/run.sh", &t).await;
    assert_eq!((r.status, r.body.as_slice()), (StatusCode::OK, &b"v3"[..]));
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    let r = g
        .get("/api/v1/namespaces/demo/files/app/run.sh?version=1", &t)
        .await;
    assert_eq!(r.body, b"#!/bin/sh\necho hi\n");
    assert_eq!(
        g.get("/api/v1/namespaces/demo/files/app/run.sh?version=9", &t)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        g.get("/api/v1/namespaces/demo/files/nope", &t).await.status,
        StatusCode::NOT_FOUND
    );
    let r = g.get("/api/v1/namespaces/demo/files?folder=/cfg", &t).await;
    assert_eq!(paths(&r.json()), vec![("/cfg/a.json".into(), 1)]);

    let ns = g.get("/api/v1/namespaces", &t).await.json();
    assert_eq!(ns["namespaces"][0]["name"], "demo");
    assert_eq!(ns["namespaces"][0]["owner"], "alice");
}

#[tokio::test]
async fn bad_tar_entries_are_rejected_and_nothing_is_kept() {
    let g = ground().await;
    let t = g.login("alice").await;
    let cases: Vec<(Vec<Entry<'_>>, &str, &str)> = vec![
        (
            vec![
                Entry::File("ok.txt", b"fine", 0o644),
                Entry::File("../x", b"evil", 0o644),
            ],
            "../x",
            "'..'",
        ),
        (
            vec![
                Entry::File("ok.txt", b"fine", 0o644),
                Entry::File("/etc/passwd", b"root", 0o644),
            ],
            "/etc/passwd",
            "absolute",
        ),
        (
            vec![
                Entry::File("ok.txt", b"fine", 0o644),
                Entry::Symlink("link", "/etc/passwd"),
            ],
            "link",
            "symbolic links",
        ),
        (
            vec![
                Entry::File("ok.txt", b"fine", 0o644),
                Entry::HardLink("hard", "ok.txt"),
            ],
            "hard",
            "hard links",
        ),
        (
            vec![Entry::File("ok.txt", b"fine", 0o644), Entry::Fifo("pipe")],
            "pipe",
            "fifos",
        ),
        (
            vec![
                Entry::File("ok.txt", b"fine", 0o644),
                Entry::File("ok.txt", b"again", 0o644),
            ],
            "ok.txt",
            "twice",
        ),
        (vec![Entry::Dir("../up/")], "../up/", "'..'"),
    ];
    for (entries, name, reason) in cases {
        let r = g.upload_tar("demo", "", &t, tar(&entries)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(&format!("entry '{name}'")), "{message}");
        assert!(message.contains(reason), "{message}");
    }
    // Not even the namespace was created, no blob was stored, and staging is empty.
    assert_eq!(
        g.get("/api/v1/namespaces/demo/files", &t).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(g.blob_count(), 0);
    assert_eq!(g.tmp_count(), 0);

    // Garbage and an archive with only folders are refused too.
    let r = g
        .upload_tar("demo", "", &t, b"not a tar at all".repeat(64))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = g.upload_tar("demo", "", &t, tar(&[Entry::Dir("d/")])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = g
        .upload_tar(
            "demo",
            "?to=/../x",
            &t,
            tar(&[Entry::File("a", b"a", 0o644)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = g
        .call(
            Method::POST,
            "/api/v1/namespaces/demo/files",
            Some(&t),
            Some("text/plain"),
            b"x".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(g.blob_count(), 0);
}

#[tokio::test]
async fn multipart_upload() {
    let g = ground().await;
    let t = g.login("alice").await;
    let body = multipart(
        "XyZ",
        &[("file", "dir/a.txt", b"alpha"), ("file", "b.txt", b"beta")],
    );
    let ct = "multipart/form-data; boundary=XyZ";
    let uri = "/api/v1/namespaces/mp/files?to=/in";
    let r = g.call(Method::POST, uri, Some(&t), Some(ct), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        paths(&r.json()),
        vec![("/in/dir/a.txt".into(), 1), ("/in/b.txt".into(), 1)]
    );
    assert_eq!(
        g.get("/api/v1/namespaces/mp/files/in/dir/a.txt", &t)
            .await
            .body,
        b"alpha"
    );

    let bad = multipart(
        "XyZ",
        &[
            ("file", "ok.txt", b"x"),
            ("file", "../../etc/passwd", b"root"),
        ],
    );
    let r = g.call(Method::POST, uri, Some(&t), Some(ct), bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("../../etc/passwd"), "{}", r.text());
    let other = multipart("XyZ", &[("data", "x.txt", b"x")]);
    let r = g.call(Method::POST, uri, Some(&t), Some(ct), other).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(
        paths(&g.get("/api/v1/namespaces/mp/files", &t).await.json()).len(),
        2
    );
}

const HELLO: &str = "id: hello\nnamespace: demo\nsystem: em\ntasks:\n  - id: up\n    type: uplink\n    source: /app\n  - id: run\n    type: dphi.space.cg2.pod.run\n    image: busybox\n    command: [echo, hi]\n";

#[tokio::test]
async fn tenants_are_isolated() {
    let g = ground().await;
    let a = g.login("alice").await;
    let b = g.login("bob").await;
    assert_eq!(
        g.upload_tar("demo", "", &a, tar(&[Entry::File("app/x", b"x", 0o644)]))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        g.post_yaml("/api/v1/operations", &a, HELLO).await.status,
        StatusCode::CREATED
    );
    let exec = g
        .post_json(
            "/api/v1/executions",
            Some(&a),
            json!({"namespace": "demo", "operation": "hello"}),
        )
        .await;
    assert_eq!(exec.status, StatusCode::CREATED, "{}", exec.text());
    let exec_id = exec.json()["id"].as_str().unwrap().to_string();

    let forbidden = |r: common::Reply| {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "forbidden");
    };
    forbidden(g.get("/api/v1/namespaces/demo/files", &b).await);
    forbidden(g.get("/api/v1/namespaces/demo/files/app/x", &b).await);
    forbidden(
        g.upload_tar("demo", "", &b, tar(&[Entry::File("app/x", b"evil", 0o644)]))
            .await,
    );
    forbidden(g.post_yaml("/api/v1/operations", &b, HELLO).await);
    forbidden(
        g.post_json(
            "/api/v1/executions",
            Some(&b),
            json!({"namespace": "demo", "operation": "hello"}),
        )
        .await,
    );
    forbidden(g.get("/api/v1/operations/demo/hello", &b).await);
    forbidden(g.get("/api/v1/operations?namespace=demo", &b).await);
    forbidden(g.get("/api/v1/executions?namespace=demo", &b).await);
    let r = g.get(&format!("/api/v1/executions/{exec_id}"), &b).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = g
        .post_json("/api/v1/namespaces", Some(&b), json!({"name": "demo"}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // Bob sees none of it in his own listings, and Alice's file is untouched.
    assert_eq!(
        g.get("/api/v1/namespaces", &b).await.json()["namespaces"],
        json!([])
    );
    assert_eq!(
        g.get("/api/v1/operations", &b).await.json()["operations"],
        json!([])
    );
    assert_eq!(
        g.get("/api/v1/executions", &b).await.json()["executions"],
        json!([])
    );
    assert_eq!(
        g.get("/api/v1/namespaces/demo/files/app/x", &a).await.body,
        b"x"
    );
    assert_eq!(
        g.get(&format!("/api/v1/executions/{exec_id}"), &a)
            .await
            .status,
        StatusCode::OK
    );
}

fn diagnostics(v: &Value) -> Vec<(u64, Option<String>, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["line"].as_u64().unwrap(),
                d["task"].as_str().map(str::to_string),
                d["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn operations_validate_with_lines_and_revise_on_change() {
    let g = ground().await;
    let t = g.login("alice").await;
    let bad = "id: hello\nnamespace: demo\ntasks:\n  - id: build\n    type: docker.bild\n  - id: run\n    type: pod.run\n    command: [x]\n    colour: blue\n";
    let r = g.post_yaml("/api/v1/operations", &t, bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], "bad_request");
    assert_eq!(
        diagnostics(&v["error"]["diagnostics"]),
        vec![
            (
                5,
                Some("build".into()),
                "task 'build' (line 5): unknown type 'docker.bild'; did you mean 'docker.build'? expected one of uplink, downlink, files.list, files.delete, docker.build, docker.load, docker.image.list, pod.run, files.move, docker.image.delete, camera.capture, pod.stop, pod.logs".into()
            ),
            (6, Some("run".into()), "task 'run' (pod.run, line 6): missing required field 'image'".into()),
            (
                9,
                Some("run".into()),
                "task 'run' (pod.run, line 9): unknown field 'colour'; expected one of id, type, description, on_failure, trigger, image, pod_name, command, args, env, volume, max_duration, node, ports, merge, scheduled_time".into()
            ),
        ]
    );
    assert_eq!(v["error"]["diagnostics"][0]["column"], 11);
    assert_eq!(v["error"]["diagnostics"][0]["severity"], "error");
    // Nothing was saved, not even the namespace.
    assert_eq!(
        g.get("/api/v1/operations/demo/hello", &t).await.status,
        StatusCode::NOT_FOUND
    );

    let r = g.post_yaml("/api/v1/operations/validate", &t, bad).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["valid"], false);
    let r = g
        .post_yaml("/api/v1/operations/validate", &t, "id: x\nnamespace: [\n")
        .await;
    assert_eq!(r.json()["diagnostics"][0]["line"], 3);
    let r = g.post_yaml("/api/v1/operations/validate", &t, HELLO).await;
    assert_eq!(
        r.json(),
        json!({"valid": true, "diagnostics": [], "preflight": []})
    );

    let r = g.post_yaml("/api/v1/operations", &t, HELLO).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        (r.json()["namespace"].clone(), r.json()["revision"].clone()),
        (json!("demo"), json!(1))
    );
    assert_eq!(
        g.post_yaml("/api/v1/operations", &t, HELLO).await.json()["revision"],
        1
    );
    let changed = format!("{HELLO}    args: [--x]\n");
    assert_eq!(
        g.post_yaml("/api/v1/operations", &t, &changed).await.json()["revision"],
        2
    );
    let op = g.get("/api/v1/operations/demo/hello", &t).await.json();
    assert_eq!(op["revision"], 2);
    assert_eq!(op["yaml"], changed);
    // A start may name the revision it means: an older one runs as it was; one that never was
    // is not found.
    let start = |revision: u64| json!({"namespace": "demo", "operation": "hello", "force": true, "revision": revision});
    let r = g.post_json("/api/v1/executions", Some(&t), start(1)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["revision"], 1);
    let r = g.post_json("/api/v1/executions", Some(&t), start(9)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert!(r.text().contains("no revision 9"), "{}", r.text());
    let list = g.get("/api/v1/operations?namespace=demo", &t).await.json();
    assert_eq!(list["operations"][0]["id"], "hello");

    let huge = format!(
        "id: x\nnamespace: d\ndescription: {}\n",
        "a".repeat(2 << 20)
    );
    assert_eq!(
        g.post_yaml("/api/v1/operations", &t, &huge).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn missing_uplink_source_fails_the_execution_without_sending() {
    let g = ground().await;
    let t = g.login("alice").await;
    let yaml = "id: op\nnamespace: demo\ntasks:\n  - id: ls\n    type: files.list\n  - id: up\n    type: uplink\n    source: [/nothing/here]\n  - id: run\n    type: pod.run\n    image: busybox\n";
    assert_eq!(
        g.post_yaml("/api/v1/operations", &t, yaml).await.status,
        StatusCode::CREATED
    );
    let r = g
        .post_json(
            "/api/v1/executions",
            Some(&t),
            json!({"namespace": "demo", "operation": "op"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let e = r.json();
    assert_eq!(e["state"], "FAILED");
    assert_eq!(e["system"], "em");
    assert!(e["scheduled_at"].is_null());
    assert!(e["finished_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        e["errors"],
        json!([{"task": "up", "code": 4, "name": "EXECUTION_ERROR", "message": "File not found: /nothing/here", "log_tail": []}])
    );
    let states: Vec<&str> = e["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["FAILED", "FAILED", "FAILED"]);
    assert_eq!(
        e["tasks"][1]["error"]["message"],
        "File not found: /nothing/here"
    );
    assert_eq!(e["tasks"][2]["error"]["code"], 4);
    assert_eq!(e["history"].as_array().unwrap().len(), 2);

    let r = g
        .post_json(
            "/api/v1/executions",
            Some(&t),
            json!({"namespace": "demo", "operation": "op", "system": "fm"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("unknown system 'fm'"));
    let r = g
        .post_json(
            "/api/v1/executions",
            Some(&t),
            json!({"namespace": "demo", "operation": "nope"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let list = g.get("/api/v1/executions?namespace=demo", &t).await.json();
    assert_eq!(list["executions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn dashboard_login_sets_a_cookie_the_api_accepts() {
    let g = ground().await;
    let r = g.call(Method::GET, "/", None, None, Vec::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text()
            .contains("<form method=\"post\" action=\"/login\">")
    );

    let form = "user=alice&password=wrong";
    let r = g
        .call(
            Method::POST,
            "/login",
            None,
            Some("application/x-www-form-urlencoded"),
            form.into(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let form = "user=alice&password=pw-alice";
    let r = g
        .call(
            Method::POST,
            "/login",
            None,
            Some("application/x-www-form-urlencoded"),
            form.into(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let cookie = r.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();

    let t = g.login("alice").await;
    g.upload_tar("dash-ns", "", &t, tar(&[Entry::File("a", b"a", 0o644)]))
        .await;
    let req = |uri: &str| {
        axum::http::Request::builder()
            .uri(uri)
            .header("cookie", pair.clone())
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let page = g.send(req("/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text().contains("Signed in as <b>alice</b>"),
        "{}",
        page.text()
    );
    assert!(page.text().contains(">dash-ns</a></td>"), "{}", page.text());
    let api = g.send(req("/api/v1/namespaces")).await;
    assert_eq!(api.status, StatusCode::OK);

    // A write with the cookie alone is refused: another site's page could make the browser send
    // it. With the page's CSRF token it goes through; a bearer token needs none.
    let html = page.text();
    let at = html
        .find("name=\"csrf-token\" content=\"")
        .expect("the page names its CSRF token")
        + 27;
    let csrf = &html[at..at + 32];
    let create = |name: &str, token: Option<&str>| {
        let mut b = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/api/v1/namespaces")
            .header("cookie", pair.clone())
            .header("content-type", "application/json");
        if let Some(t) = token {
            b = b.header("x-csrf-token", t);
        }
        b.body(axum::body::Body::from(format!("{{\"name\":\"{name}\"}}")))
            .unwrap()
    };
    let forged = g.send(create("forged-ns", None)).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text());
    let wrong = g.send(create("forged-ns", Some(&"0".repeat(32)))).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let ok = g.send(create("csrf-ns", Some(csrf))).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text());
    let list = g.get("/api/v1/namespaces", &t).await.json();
    assert!(!list.to_string().contains("forged-ns"), "{list}");
    // Signing out needs the token too.
    let out = g
        .send(
            axum::http::Request::builder()
                .method(Method::POST)
                .uri("/logout")
                .header("cookie", pair.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::from("csrf=nope"))
                .unwrap(),
        )
        .await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    assert_eq!(
        g.send(req("/api/v1/namespaces")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn serve_answers_on_a_socket_and_shuts_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let g = ground().await;
    let (addr, stop, server) = common::serve(&g).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with(r#"{"status":"ok"}"#), "{reply}");
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Before its agent has said hello, a system is listed with the catalogue of the platform
/// preflight judges it on: this machine's for the Engineering Model, `linux/arm64` for a flight
/// system (issue 8: one judge). The listing used to show `linux/arm64` for both.
#[tokio::test]
async fn unseen_systems_are_listed_as_preflight_judges_them() {
    let system = |name: &str| ground::SystemLink {
        name: name.into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        link: "127.0.0.1:9".parse().unwrap(),
        key: wire::LinkKey::from_bytes([7; 32]),
        rate_bits_per_sec: None,
        contact: link::Contact::Always,
        orbit: None,
        link_settings: link::LinkSettings::STANDARD,
    };
    let g = common::ground_with(vec![system("em"), system("sat1")]).await;
    let token = g.login("alice").await;
    let r = g.get("/api/v1/systems", &token).await;
    assert_eq!(r.status, StatusCode::OK);
    let listed: api::SystemList = serde_json::from_slice(&r.body).unwrap();
    // Each system as its name, platform and catalogue images (name and platform).
    let expected = |platform: &str| -> Vec<String> {
        wire::catalogue(platform)
            .into_iter()
            .map(|b| format!("{} {}", b.name, b.platform))
            .collect()
    };
    let seen: Vec<_> = listed
        .systems
        .iter()
        .map(|s| {
            let catalogue: Vec<String> = s
                .catalogue
                .iter()
                .map(|b| format!("{} {}", b.name, b.platform))
                .collect();
            (s.name.as_str(), s.platform.as_deref(), catalogue)
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("em", None, expected(preflight::host_platform())),
            ("sat1", None, expected(preflight::FLIGHT_PLATFORM)),
        ]
    );
}
