//! Systems as data: a ground with a declared system, a fake flight agent on a real link saying
//! hello with an engine report, and the drift between the two through the HTTP API.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use common::{TestGround, free_udp_addr, ground_with};
use ground::SystemLink;
use link::{Contact, EndpointConfig, MessageSender, ObjectLayout, spawn_endpoint};
use serde_json::Value;
use wire::{
    Builder, CatalogueEntry, Digest, Direction, EngineImage, EngineReport, LinkKey, Message,
};

fn entry(name: &str, digest: Option<Digest>) -> CatalogueEntry {
    CatalogueEntry {
        name: name.into(),
        digest,
        platform: None,
        description: String::new(),
        shell: true,
        libraries: Vec::new(),
        glibc: None,
        interpreters: vec!["/bin/sh".into()],
        layers: Vec::new(),
    }
}

fn image(name: &str, id: Digest, platform: &str) -> EngineImage {
    EngineImage {
        name: name.into(),
        id: id.to_string(),
        platform: platform.into(),
    }
}

fn hello(engine: EngineReport) -> Message {
    Message::Hello {
        agent: "em".into(),
        platform: engine.platform.clone(),
        catalogue: Vec::new(),
        boot: 1,
        holds: Vec::new(),
        engine,
    }
}

/// Polls `GET /api/v1/systems/em` until `done` holds.
async fn system_until(g: &TestGround, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..400 {
        let r = g.get("/api/v1/systems/em", token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let s = r.json();
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the system never got there");
}

fn drift(system: &Value) -> Vec<(String, String)> {
    system["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_engine_report_that_differs_from_the_declaration_shows_drift() {
    let (ground_addr, flight_addr) = (free_udp_addr(), free_udp_addr());
    let key = LinkKey::from_bytes(rand::random());
    let g = ground_with(vec![SystemLink {
        name: "em".into(),
        bind: ground_addr,
        link: flight_addr,
        key: key.clone(),
        rate_bits_per_sec: None,
        contact: Contact::Always,
        orbit: None,
        link_settings: link::LinkSettings::STANDARD,
    }])
    .await;
    let pinned = Digest::of(b"busybox as declared");
    let declared = wire::SystemDescription::new(
        "linux/amd64",
        Builder::BuildKit,
        vec![
            entry("busybox:latest", Some(pinned)),
            entry("alpine:3.20", None),
        ],
    );
    let g =
        g.with(|ground| ground.with_declarations(BTreeMap::from([("em".to_string(), declared)])));
    let t = g.login("alice").await;

    // Before any hello: the declaration, no report, no drift.
    let s = system_until(&g, &t, |_| true).await;
    assert_eq!(s["declared"]["builder"], "buildkit", "{s}");
    assert_eq!(s["declared"]["platform"], "linux/amd64");
    assert_eq!(s["declared"]["catalogue"][1]["name"], "alpine:3.20");
    assert_eq!(s["declared"]["catalogue"][1]["platform"], "linux/amd64");
    assert_eq!(s["engine"], Value::Null);
    assert_eq!(drift(&s), []);
    assert_eq!(s["catalogue"][0]["digest"], pinned.to_string());

    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx): (MessageSender, _) = spawn_endpoint(EndpointConfig {
        bind: flight_addr,
        peer: ground_addr,
        key,
        sends: Direction::Down,
        state_dir: dir.path().join("state"),
        objects: ObjectLayout::new(dir.path().join("objects")),
        rate_bits_per_sec: None,
        contact: Contact::Always,
        settings: link::LinkSettings::STANDARD,
        admit: None,
    })
    .await
    .unwrap();
    let other = Digest::of(b"busybox as held");
    let static_id = Digest::of(b"static");
    let report = EngineReport {
        images: vec![
            image("busybox:latest", other, "linux/amd64"),
            image(
                "gcr.io/distroless/static-debian12",
                static_id,
                "linux/amd64",
            ),
        ],
        platform: "linux/arm64".into(),
        builder: Builder::Classic,
    };
    tx.send(wire::encode_message(&hello(report))).await.unwrap();
    let s = system_until(&g, &t, |s| !s["engine"].is_null()).await;
    assert_eq!(
        drift(&s),
        [
            ("platform_mismatch".into(), "platform".into()),
            ("builder_mismatch".into(), "builder".into()),
            ("digest_mismatch".into(), "busybox:latest".into()),
            ("missing_image".into(), "alpine:3.20".into()),
            (
                "undeclared_image".into(),
                "gcr.io/distroless/static-debian12:latest".into()
            ),
        ] as [(String, String); 5],
        "{s}"
    );
    let digest_drift = &s["drift"][2];
    assert_eq!(digest_drift["declared"], pinned.to_string());
    assert_eq!(digest_drift["reported"], other.to_string());
    assert!(
        digest_drift["message"]
            .as_str()
            .unwrap()
            .contains("busybox:latest is declared as sha256:"),
        "{digest_drift}"
    );
    assert_eq!(s["engine"]["builder"], "classic");
    assert_eq!(s["engine"]["images"][1]["id"], static_id.to_string());

    // The listing shows the same.
    let list = g.get("/api/v1/systems", &t).await.json();
    assert_eq!(drift(&list["systems"][0]), drift(&s));
    assert_eq!(
        g.get("/api/v1/systems/nowhere", &t).await.status,
        StatusCode::NOT_FOUND
    );
    // The dashboard's systems page says it too.
    let page = g
        .send(
            axum::http::Request::builder()
                .uri("/systems")
                .header("cookie", format!("orbitdock_session={t}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .text();
    assert!(
        page.contains("the engine holds gcr.io/distroless/static-debian12:latest"),
        "{page}"
    );

    // An engine that holds what is declared shows none.
    let report = EngineReport {
        images: vec![
            image("busybox", pinned, "linux/amd64"),
            image("alpine:3.20", Digest::of(b"alpine"), ""),
        ],
        platform: "linux/amd64".into(),
        builder: Builder::BuildKit,
    };
    tx.send(wire::encode_message(&hello(report))).await.unwrap();
    let s = system_until(&g, &t, |s| s["engine"]["builder"] == "buildkit").await;
    assert_eq!(drift(&s), [], "{s}");
}

/// Preflight of a build against the declaration: what the default catalogue and builder refuse
/// (a base outside the stand-ins, `COPY --chmod`) is clean on a system declared to hold that base
/// and build with BuildKit.
#[tokio::test]
async fn preflight_judges_a_build_against_the_declaration() {
    const OP: &str = "id: b\nnamespace: demo\ntasks:\n  - id: up\n    type: uplink\n    source: /app\n  - id: build\n    type: docker.build\n    dockerfile: app/Dockerfile\n    context: app\n    image: app:1\n";
    let dockerfile: &[u8] =
        b"FROM alpine:3.20\nCOPY --chmod=755 run.sh /run.sh\nUSER 65532\nCMD [\"/run.sh\"]\n";
    let errors = |v: &Value| -> Vec<String> {
        v["preflight"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == "error")
            .map(|f| f["code"].as_str().unwrap().to_string())
            .collect()
    };
    let mut seen = Vec::new();
    for declare in [false, true] {
        let g = common::ground().await;
        let g = if declare {
            let declared = wire::SystemDescription::new(
                preflight::host_platform(),
                Builder::BuildKit,
                vec![entry("alpine:3.20", None)],
            );
            g.with(|ground| {
                ground.with_declarations(BTreeMap::from([("em".to_string(), declared)]))
            })
        } else {
            g
        };
        let t = g.login("alice").await;
        let r = g
            .upload_tar(
                "demo",
                "",
                &t,
                common::tar(&[
                    common::Entry::File("app/Dockerfile", dockerfile, 0o644),
                    common::Entry::File("app/run.sh", b"#!/bin/sh\necho hi\n", 0o755),
                ]),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let r = g.post_yaml("/api/v1/operations/validate", &t, OP).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        seen.push(errors(&r.json()));
    }
    assert!(seen[0].contains(&"OD101".to_string()), "{seen:?}");
    assert!(seen[0].contains(&"OD010".to_string()), "{seen:?}");
    assert_eq!(seen[1], Vec::<String>::new());
}
