//! Sending only what the satellite lacks, from the ground's side, over a real link endpoint on
//! loopback with the test playing the flight agent: a `Want` is answered with a compressed
//! object or a delta against the base the agent names, announced by `Patches`; a `Want` with
//! `whole` with the object itself; the execution reports the bytes on the wire; the planner
//! predicts exactly what is then sent; the mirror follows the agent's reports and its summaries
//! (drift detected, asked for, repaired).

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::flight::Flight;
use common::{Entry, TestGround, free_udp_addr, ground_with, tar};
use ground::SystemLink;
use link::{Contact, LinkEvent};
use serde_json::{Value, json};
use wire::{
    Digest, FileDigest, FileEntry, InventorySummary, LinkKey, Message, PatchOffer, TaskKind,
    TaskOutputs, TaskState, VolumeRef, VolumeSummary, WantedObject,
};

impl Flight {
    /// Events until `n` objects have arrived; the messages heard meanwhile.
    async fn objects(&mut self, n: usize) -> (Vec<Digest>, Vec<Message>) {
        let (mut objects, mut messages) = (Vec::new(), Vec::new());
        while objects.len() < n {
            match self.event().await {
                LinkEvent::ObjectReceived(d) => objects.push(d),
                LinkEvent::Message { seq, bytes } => {
                    messages.push(wire::decode_message(&bytes).unwrap());
                    self.tx.done(seq).await.unwrap();
                }
                _ => {}
            }
        }
        (objects, messages)
    }

    /// The next message but a plan sent again (the ground re-sends unfinished plans when it
    /// handles a first hello, which may come after an execution started).
    async fn message(&mut self) -> Message {
        loop {
            if let LinkEvent::Message { seq, bytes } = self.event().await {
                self.tx.done(seq).await.unwrap();
                match wire::decode_message(&bytes).unwrap() {
                    Message::Plan(_) => {}
                    m => return m,
                }
            }
        }
    }

    fn read(&self, d: &Digest) -> Vec<u8> {
        std::fs::read(self.objects.path(d)).unwrap()
    }

    async fn report_uplink(&self, id: &str, placed: &[(&str, &[u8])]) {
        for state in [TaskState::Running, TaskState::Success] {
            self.send(Message::TaskEvent {
                execution: id.into(),
                task: 0,
                state,
                at_ms: 1_800_000_000_000,
                error: None,
                outputs: (state == TaskState::Success).then(TaskOutputs::default),
            })
            .await;
        }
        let files: Vec<FileEntry> = placed.iter().map(|(p, d)| entry(p, d)).collect();
        self.send(Message::VolumeListing {
            tenant: "alice".into(),
            volume: "alice-pvc".into(),
            files,
        })
        .await;
        let digests = placed
            .iter()
            .map(|(p, d)| FileDigest {
                path: p.to_string(),
                digest: Digest::of(d),
            })
            .collect();
        self.send(Message::VolumeDigests {
            tenant: "alice".into(),
            volume: "alice-pvc".into(),
            files: digests,
        })
        .await;
        self.send(Message::ExecutionEvent {
            execution: id.into(),
            state: TaskState::Success,
            at_ms: 1_800_000_001_000,
        })
        .await;
    }
}

fn entry(path: &str, data: &[u8]) -> FileEntry {
    FileEntry {
        path: path.into(),
        size: data.len() as u64,
        is_dir: false,
        modified_ms: 1_800_000_000_000,
    }
}

/// A program-like file of `n` lines and the same with one line changed.
fn versions(n: u32) -> (Vec<u8>, Vec<u8>) {
    let text = |changed: u32| -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let word = if i == changed { "CHANGED" } else { "line" };
                format!("{word} {i}: {}\n", i.wrapping_mul(2_654_435_761)).into_bytes()
            })
            .collect()
    };
    (text(u32::MAX), text(n / 2))
}

async fn setup() -> (TestGround, Flight, String) {
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
    let flight = Flight::spawn(flight_addr, ground_addr, key).await;
    let t = g.login("alice").await;
    flight
        .send(Message::Hello {
            agent: "em".into(),
            platform: "linux/amd64".into(),
            catalogue: wire::catalogue("linux/amd64"),
            boot: 1,
            holds: Vec::new(),
            engine: wire::EngineReport::default(),
        })
        .await;
    // The hello handled before any execution starts.
    poll(&g, &t, "/api/v1/systems/em", |s| s["last_seen"].is_string()).await;
    (g, flight, t)
}

async fn upload(g: &TestGround, t: &str, data: &[u8]) {
    let r = g
        .upload_tar("demo", "", t, tar(&[Entry::File("app/tool", data, 0o755)]))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

async fn start(g: &TestGround, t: &str) -> String {
    let yaml = "id: up\nnamespace: demo\nsystem: em\ntasks:\n\
                - id: up\n  type: uplink\n  source: /app/tool\n  destination: in\n";
    let r = g.post_yaml("/api/v1/operations", t, yaml).await;
    assert!(r.status.is_success(), "{}", r.text());
    let r = g
        .post_json(
            "/api/v1/executions",
            Some(t),
            json!({"namespace": "demo", "operation": "up"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

async fn poll(g: &TestGround, t: &str, uri: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let v = g.get(uri, t).await.json();
        if done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{uri} never got there: {}", g.get(uri, t).await.text());
}

/// A dashboard page, signed in with the session cookie.
async fn dashboard(g: &TestGround, t: &str, uri: &str) -> String {
    g.send(
        axum::http::Request::get(uri)
            .header("cookie", format!("orbitdock_session={t}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .text()
}

async fn plan(g: &TestGround, t: &str) -> Value {
    let r = g
        .post_json(
            "/api/v1/plan",
            Some(t),
            json!({"system": "em", "sources": ["demo:/app"], "destination": "/in"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// The uplink file of the plan of execution `id`.
async fn planned_digest(flight: &mut Flight, id: &str) -> Digest {
    loop {
        let LinkEvent::Message { seq, bytes } = flight.event().await else {
            continue;
        };
        flight.tx.done(seq).await.unwrap();
        if let Message::Plan(p) = wire::decode_message(&bytes).unwrap()
            && p.execution == id
        {
            let TaskKind::Uplink { files, .. } = &p.tasks[0].kind else {
                panic!("{p:?}")
            };
            assert_eq!(files[0].path, "in/app/tool");
            return files[0].digest;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_go_compressed_then_as_deltas_as_planned_and_whole_when_asked() {
    let (g, mut flight, t) = setup().await;
    let (v1, v2) = versions(30_000);

    // v1: nothing onboard; the planner and the link both send it compressed.
    upload(&g, &t, &v1).await;
    let p = plan(&g, &t).await;
    assert_eq!(p["files"][0]["encoding"], "whole-zstd", "{p}");
    assert_eq!(p["files"][0]["path"], "/in/app/tool");
    let planned_v1 = p["total"]["bytes"].as_u64().unwrap();
    assert!(planned_v1 < v1.len() as u64 / 3, "{p}");
    let id1 = start(&g, &t).await;
    let d1 = planned_digest(&mut flight, &id1).await;
    assert_eq!(d1, Digest::of(&v1));
    flight
        .send(Message::Want {
            objects: vec![WantedObject {
                digest: d1,
                bases: Vec::new(),
                whole: false,
            }],
        })
        .await;
    let (got, heard) = flight.objects(1).await;
    let offer: PatchOffer = heard
        .iter()
        .find_map(|m| match m {
            Message::Patches { patches } => Some(patches[0].clone()),
            _ => None,
        })
        .expect("announced");
    assert_eq!((offer.target, offer.base, got[0]), (d1, None, offer.patch));
    assert_eq!(offer.size, planned_v1);
    assert_eq!(delta::apply(None, &flight.read(&offer.patch)).unwrap(), v1);
    flight.report_uplink(&id1, &[("/in/app/tool", &v1)]).await;
    let e = poll(&g, &t, &format!("/api/v1/executions/{id1}"), |e| {
        e["state"] == "COMPLETED"
    })
    .await;
    let up = &e["uplink"];
    assert_eq!(up["sent"][0]["encoding"], "whole-zstd", "{up}");
    assert_eq!(up["sent"][0]["bytes"], planned_v1);
    assert_eq!(up["object_bytes"], v1.len() as u64);
    assert_eq!(
        up["wire_bytes"].as_u64().unwrap(),
        up["plan_bytes"].as_u64().unwrap() + planned_v1
    );

    // The same content again: onboard at that very path, nothing to send.
    let p = plan(&g, &t).await;
    assert_eq!(
        (&p["files"][0]["encoding"], &p["total"]["bytes"]),
        (&json!("nothing"), &json!(0)),
        "{p}"
    );

    // v2: a delta against v1, as planned, byte for byte.
    upload(&g, &t, &v2).await;
    let p = plan(&g, &t).await;
    let planned = &p["files"][0];
    assert_eq!(planned["base"], d1.to_string(), "{p}");
    let planned_v2 = planned["bytes"].as_u64().unwrap();
    assert!(planned_v2 < 2000, "{p}");
    assert!(p["eta"]["passes"].is_null(), "always in contact: {p}");
    let id2 = start(&g, &t).await;
    let d2 = planned_digest(&mut flight, &id2).await;
    flight
        .send(Message::Want {
            objects: vec![WantedObject {
                digest: d2,
                bases: vec![d1],
                whole: false,
            }],
        })
        .await;
    let (got, heard) = flight.objects(1).await;
    let offer = heard
        .iter()
        .find_map(|m| match m {
            Message::Patches { patches } => Some(patches[0].clone()),
            _ => None,
        })
        .expect("announced");
    assert_eq!(
        (offer.base, offer.size, got[0]),
        (Some(d1), planned_v2, offer.patch)
    );
    assert_eq!(
        delta::apply(Some(&v1), &flight.read(&offer.patch)).unwrap(),
        v2
    );

    // The patch "failed" onboard: asked whole, the object itself comes.
    flight
        .send(Message::Want {
            objects: vec![WantedObject {
                digest: d2,
                bases: Vec::new(),
                whole: true,
            }],
        })
        .await;
    let (got, _) = flight.objects(1).await;
    assert_eq!(got, [d2]);
    assert_eq!(flight.read(&d2), v2);
    flight.report_uplink(&id2, &[("/in/app/tool", &v2)]).await;
    let e = poll(&g, &t, &format!("/api/v1/executions/{id2}"), |e| {
        e["state"] == "COMPLETED"
    })
    .await;
    let sent: Vec<(&str, u64)> = e["uplink"]["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["encoding"].as_str().unwrap(),
                s["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sent.len(), 2, "{e}");
    assert!(sent.contains(&("raw", v2.len() as u64)), "{sent:?}");
    assert!(
        sent.iter().any(|(k, b)| *k != "raw" && *b == planned_v2),
        "{sent:?}"
    );

    // The dashboard's execution page says it too.
    let page = dashboard(&g, &t, &format!("/executions/{id2}")).await;
    assert!(page.contains("bytes on the wire"), "{page}");

    // The volume file shows its digest, as the agent reported it.
    let files = g
        .get("/api/v1/systems/em/volumes/alice-pvc/files", &t)
        .await
        .json();
    assert_eq!(files["files"][0]["digest"], d2.to_string(), "{files}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mirror_detects_drift_asks_and_is_repaired() {
    let (g, mut flight, t) = setup().await;
    let (v1, _) = versions(1000);
    upload(&g, &t, &v1).await;
    let id = start(&g, &t).await;
    let d1 = planned_digest(&mut flight, &id).await;
    flight.report_uplink(&id, &[("/in/app/tool", &v1)]).await;
    poll(&g, &t, &format!("/api/v1/executions/{id}"), |e| {
        e["state"] == "COMPLETED"
    })
    .await;
    let listed = |files: &[(&str, &[u8])]| -> Vec<(FileEntry, Option<Digest>)> {
        files
            .iter()
            .map(|(p, d)| (entry(p, d), Some(Digest::of(d))))
            .collect()
    };
    let summary = |objects: &[Digest], files: &[(FileEntry, Option<Digest>)]| {
        Message::InventorySummary(InventorySummary {
            objects: objects.len() as u64,
            objects_digest: wire::objects_digest(objects),
            volumes: vec![VolumeSummary {
                tenant: "alice".into(),
                volume: "alice-pvc".into(),
                digest: wire::volume_digest(files),
            }],
        })
    };

    // What the agent says matches what the ground mirrored from its reports.
    let v1_files = listed(&[("/in/app/tool", &v1)]);
    flight.send(summary(&[d1], &v1_files)).await;
    let s = poll(&g, &t, "/api/v1/systems/em", |s| !s["inventory"].is_null()).await;
    assert_eq!(s["inventory"]["in_sync"], true, "{s}");
    assert_eq!(s["inventory"]["objects"], 1);

    // A pod wrote a file behind the ground's back: drift, and the ground asks for that volume.
    let drifted = listed(&[("/in/app/tool", &v1), ("/out/log", b"hello")]);
    flight.send(summary(&[d1], &drifted)).await;
    let asked = flight.message().await;
    assert_eq!(
        asked,
        Message::InventoryRequest {
            objects: false,
            volumes: vec![VolumeRef {
                tenant: "alice".into(),
                volume: "alice-pvc".into()
            }],
        }
    );
    let s = g.get("/api/v1/systems/em", &t).await.json();
    assert_eq!(s["inventory"]["in_sync"], false, "{s}");
    assert_eq!(s["inventory"]["drift"], json!(["volume alice/alice-pvc"]));
    let page = dashboard(&g, &t, "/systems").await;
    assert!(page.contains("drift detected"), "{page}");

    // The agent answers; the next summary is in sync, and the repair is shown.
    flight
        .send(Message::Inventory {
            objects: None,
            complete: false,
            volumes: vec![VolumeRef {
                tenant: "alice".into(),
                volume: "alice-pvc".into(),
            }],
        })
        .await;
    flight
        .send(Message::VolumeListing {
            tenant: "alice".into(),
            volume: "alice-pvc".into(),
            files: drifted.iter().map(|(f, _)| f.clone()).collect(),
        })
        .await;
    flight
        .send(Message::VolumeDigests {
            tenant: "alice".into(),
            volume: "alice-pvc".into(),
            files: drifted
                .iter()
                .map(|(f, d)| FileDigest {
                    path: f.path.clone(),
                    digest: d.unwrap(),
                })
                .collect(),
        })
        .await;
    flight.send(summary(&[d1], &drifted)).await;
    let s = poll(&g, &t, "/api/v1/systems/em", |s| {
        s["inventory"]["in_sync"] == true
    })
    .await;
    assert_eq!(
        s["inventory"]["repaired"],
        json!(["volume alice/alice-pvc"])
    );
    assert!(s["inventory"]["repaired_at"].is_string());
}
