//! The ground against a fake flight agent: two `link` endpoints joined directly on loopback (no
//! emulator), under one key. The test plays the agent's part by hand: it takes the plan, asks for
//! objects, reports task and execution events, and sends downlinked objects as object transfers.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use axum::http::StatusCode;
use common::flight::{Flight, em};
use common::{Entry, TestGround, free_udp_addr, ground_with, tar};
use link::LinkEvent;
use serde_json::{Value, json};
use wire::{
    Digest, ErrorCode, FileEntry, FileRef, LinkKey, Message, Plan, TaskError, TaskKind,
    TaskOutputs, TaskState,
};

impl Flight {
    /// Puts `bytes` in the agent's object directory and queues them for the ground.
    async fn send_object(&self, bytes: &[u8]) -> Digest {
        let digest = self.objects.put(bytes).unwrap();
        self.tx
            .send_object(digest, bytes.len() as u64, 2)
            .await
            .unwrap();
        digest
    }

    async fn plan(&mut self) -> Plan {
        match self.recv().await {
            Message::Plan(p) => {
                common::verifier()
                    .verify(&p)
                    .expect("every plan is signed by the ground");
                p
            }
            other => panic!("expected a plan, got {other:?}"),
        }
    }

    /// Sends a listing of a scratch volume, and waits until the ground shows it: every message
    /// sent before it has then been handled.
    async fn sync(&self, g: &TestGround, token: &str, tenant: &str, marker: &str) {
        let files = vec![FileEntry {
            path: marker.into(),
            size: 0,
            is_dir: false,
            modified_ms: 1_800_000_000_000,
        }];
        self.send(Message::VolumeListing {
            tenant: tenant.into(),
            volume: "sync".into(),
            files,
        })
        .await;
        for _ in 0..400 {
            let listed = g
                .get("/api/v1/systems/em/volumes/sync/files", token)
                .await
                .json();
            if listed["files"][0]["path"] == marker {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the ground never handled the listing '{marker}'");
    }
}

/// A ground with an `em` link joined to a fresh fake flight.
async fn setup() -> (TestGround, Flight) {
    let (ground_addr, flight_addr) = (free_udp_addr(), free_udp_addr());
    let key = LinkKey::from_bytes(rand::random());
    let g = ground_with(vec![em(ground_addr, flight_addr, key.clone())]).await;
    let flight = Flight::spawn(flight_addr, ground_addr, key).await;
    (g, flight)
}

/// Polls the execution until `done` holds.
async fn wait_for(g: &TestGround, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..400 {
        let e = g
            .get(&format!("/api/v1/executions/{id}"), token)
            .await
            .json();
        if done(&e) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "execution {id} never got there: {}",
        g.get(&format!("/api/v1/executions/{id}"), token)
            .await
            .text()
    );
}

async fn start(g: &TestGround, token: &str, yaml: &str, op: &str) -> String {
    start_with(g, token, yaml, op, false).await
}

/// [`start`], with `"force": true` when `force` (preflight errors do not refuse it).
async fn start_with(g: &TestGround, token: &str, yaml: &str, op: &str, force: bool) -> String {
    let r = g.post_yaml("/api/v1/operations", token, yaml).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = g
        .post_json(
            "/api/v1/executions",
            Some(token),
            json!({"namespace": "demo", "operation": op, "force": force}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let e = r.json();
    assert_eq!(e["state"], "SCHEDULED", "{e}");
    e["id"].as_str().unwrap().to_string()
}

fn states(history: &Value) -> Vec<&str> {
    history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect()
}

async fn execution(g: &TestGround, token: &str, id: &str) -> Value {
    g.get(&format!("/api/v1/executions/{id}"), token)
        .await
        .json()
}

#[tokio::test]
async fn an_execution_runs_over_the_link_and_lands_its_downlink_when_the_files_arrive() {
    let (g, mut flight) = setup().await;
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
    // The first Hello sends unfinished plans again: let it be handled before any exists.
    flight.sync(&g, &t, "alice", "hello handled").await;

    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let archive = tar(&[
        Entry::File("app/hello.txt", b"hello", 0o644),
        Entry::File("app/bin/tool", &big, 0o755),
    ]);
    assert_eq!(
        g.upload_tar("demo", "", &t, archive).await.status,
        StatusCode::CREATED
    );
    let yaml = "id: hello\nnamespace: demo\nsystem: cg2.em\ntasks:\n\
                - id: up\n  type: uplink\n  source: /app\n  destination: in\n\
                - id: run\n  type: pod.run\n  image: busybox\n  command: [sh, -c, 'cat /data/in/hello.txt']\n\
                - id: down\n  type: dphi.space.cg2.downlink\n  source: out/result.txt\n  destination: /results\n";
    let id = start(&g, &t, yaml, "hello").await;

    let plan = flight.plan().await;
    assert_eq!(
        (
            plan.execution.as_str(),
            plan.tenant.as_str(),
            plan.tasks.len()
        ),
        (id.as_str(), "alice", 3)
    );
    let TaskKind::Uplink { volume, files } = &plan.tasks[0].kind else {
        panic!("{plan:?}")
    };
    assert_eq!(volume, "alice-pvc");
    let placed: Vec<(&str, u32, u64)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.mode, f.size))
        .collect();
    assert_eq!(
        placed,
        vec![
            ("in/app/bin/tool", 0o755, 600_000),
            ("in/app/hello.txt", 0o644, 5)
        ]
    );
    assert_eq!(
        plan.tasks[2].kind,
        TaskKind::Downlink {
            volume: "alice-pvc".into(),
            sources: vec!["out/result.txt".into()]
        }
    );

    // Ask for both objects (and one the ground cannot have): they arrive as object transfers,
    // verified, in the agent's object directory.
    let wanted: HashSet<Digest> = files.iter().map(|f| f.digest).collect();
    let mut need: Vec<Digest> = files.iter().map(|f| f.digest).collect();
    need.push(Digest::of(b"never uploaded"));
    flight.send(Message::Need { digests: need }).await;
    let mut got = HashSet::new();
    while got != wanted {
        match flight.event().await {
            LinkEvent::ObjectReceived(d) => {
                assert!(wanted.contains(&d), "an object nobody asked for: {d}");
                got.insert(d);
            }
            other => panic!("expected objects, got {other:?}"),
        }
    }
    let read = |d: &Digest| std::fs::read(flight.objects.path(d)).unwrap();
    assert_eq!(read(&Digest::of(&big)), big);
    assert_eq!(read(&Digest::of(b"hello")), b"hello");

    flight.task(&id, 0, TaskState::Running, None, None).await;
    flight
        .execution(&id, TaskState::Running, 1_800_000_000_000)
        .await;
    let up_out = TaskOutputs {
        message: Some("2 files".into()),
        ..Default::default()
    };
    flight
        .task(&id, 0, TaskState::Success, None, Some(up_out))
        .await;
    flight.task(&id, 1, TaskState::Running, None, None).await;
    let run_out = TaskOutputs {
        exit_code: Some(0),
        log_tail: vec!["hello".into()],
        ..Default::default()
    };
    flight
        .task(&id, 1, TaskState::Success, None, Some(run_out))
        .await;
    flight.task(&id, 2, TaskState::Running, None, None).await;

    // The downlink and the execution finish onboard before the result has come down.
    let result = b"hello from space\n".to_vec();
    let digest = Digest::of(&result);
    let size = result.len() as u64;
    let down = TaskOutputs {
        files: vec![FileRef {
            path: "out/result.txt".into(),
            digest,
            size,
        }],
        message: Some("1 file".into()),
        ..Default::default()
    };
    flight
        .task(&id, 2, TaskState::Success, None, Some(down))
        .await;
    let listing = vec![
        FileEntry {
            path: "in".into(),
            size: 0,
            is_dir: true,
            modified_ms: 1_800_000_000_000,
        },
        FileEntry {
            path: "in/hello.txt".into(),
            size: 5,
            is_dir: false,
            modified_ms: 1_800_000_000_000,
        },
        FileEntry {
            path: "out/result.txt".into(),
            size,
            is_dir: false,
            modified_ms: 1_800_000_000_000,
        },
    ];
    flight
        .send(Message::VolumeListing {
            tenant: "alice".into(),
            volume: "alice-pvc".into(),
            files: listing,
        })
        .await;
    flight
        .execution(&id, TaskState::Success, 1_800_000_010_000)
        .await;
    flight.sync(&g, &t, "alice", "before the result").await;

    let e = execution(&g, &t, &id).await;
    assert_eq!(e["state"], "RUNNING", "{e}");
    assert!(e["finished_at"].is_null());
    assert_eq!(e["tasks"][1]["state"], "SUCCESS");
    let waiting = &e["tasks"][2];
    assert_eq!(waiting["state"], "RUNNING", "{waiting}");
    assert!(waiting["finished_at"].is_null());
    assert_eq!(
        waiting["outputs"]["message"],
        "waiting for 1 of 1 files to come down"
    );
    assert_eq!(
        waiting["outputs"]["files"],
        json!([{"path": "out/result.txt", "digest": digest.to_string(), "size": size,
                "uri": null, "contentType": null, "contentLength": size}])
    );
    assert_eq!(
        g.get("/api/v1/namespaces/demo/files/results/out/result.txt", &t)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // The result comes down: the downlink lands, and the held execution state applies.
    assert_eq!(flight.send_object(&result).await, digest);
    // An execution's success is COMPLETED (Clustergate-2's name); its tasks' is SUCCESS.
    let e = wait_for(&g, &t, &id, |e| e["state"] == "COMPLETED").await;
    assert_eq!(
        states(&e["history"]),
        vec!["CREATED", "SCHEDULED", "RUNNING", "COMPLETED"]
    );
    assert_eq!(e["finished_at"], "2027-01-15T08:00:10.000Z");
    assert_eq!(e["errors"], json!([]));
    for task in e["tasks"].as_array().unwrap() {
        assert_eq!(task["state"], "SUCCESS", "{task}");
        assert_eq!(
            states(&task["history"]),
            vec!["CREATED", "SCHEDULED", "RUNNING", "SUCCESS"]
        );
        assert!(task["error"].is_null());
    }
    assert_eq!(e["tasks"][1]["outputs"]["exit_code"], 0);
    assert_eq!(e["tasks"][1]["outputs"]["log_tail"], json!(["hello"]));
    assert_eq!(e["tasks"][1]["started_at"], "2027-01-15T08:00:01.002Z");
    assert_eq!(e["tasks"][2]["finished_at"], "2027-01-15T08:00:02.003Z");
    assert_eq!(e["tasks"][2]["outputs"]["message"], "1 file");
    assert_eq!(
        e["tasks"][2]["outputs"]["files"],
        json!([{"path": "/results/out/result.txt", "digest": digest.to_string(), "size": size,
                "version": 1,
                "uri": "/api/v1/namespaces/demo/files/results/out/result.txt?version=1",
                "contentType": "application/octet-stream", "contentLength": size}])
    );
    assert_eq!(e["tasks"][2]["outputs"]["contentLength"], size);
    assert!(e["tasks"][2]["outputs"]["uri"].is_null());

    let f = g
        .get("/api/v1/namespaces/demo/files/results/out/result.txt", &t)
        .await;
    assert_eq!((f.status, f.body), (StatusCode::OK, result.clone()));
    // The file's uri serves it, as its contentType says.
    let uri = e["tasks"][2]["outputs"]["files"][0]["uri"]
        .as_str()
        .unwrap();
    let f = g.get(uri, &t).await;
    assert_eq!((f.status, &f.body), (StatusCode::OK, &result));
    assert_eq!(f.headers["content-type"], "application/octet-stream");
    assert_eq!(flight.event().await, LinkEvent::ObjectDelivered(digest));

    let systems = g.get("/api/v1/systems", &t).await.json();
    assert_eq!(systems["systems"][0]["name"], "em");
    assert_eq!(systems["systems"][0]["platform"], "linux/amd64");
    assert!(systems["systems"][0]["last_seen"].is_string());
    let vols = g.get("/api/v1/systems/em/volumes", &t).await.json();
    assert_eq!(
        vols["volumes"],
        json!([{"name": "alice-pvc", "files": 2, "bytes": 5 + size}, {"name": "sync", "files": 1, "bytes": 0}])
    );
    let listed = g
        .get("/api/v1/systems/em/volumes/alice-pvc/files", &t)
        .await
        .json();
    assert_eq!(listed["files"].as_array().unwrap().len(), 3);
    assert_eq!(listed["files"][2]["path"], "out/result.txt");
    let bob = g.login("bob").await;
    assert_eq!(
        g.get("/api/v1/systems/em/volumes", &bob).await.json()["volumes"],
        json!([])
    );
    assert_eq!(
        g.get("/api/v1/systems/fm/volumes", &bob).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn failures_stop_the_rest_and_a_downlink_that_cannot_land_fails() {
    let (g, mut flight) = setup().await;
    let t = g.login("alice").await;

    // A pod that fails: the task after it never runs. (Preflight finds that no image
    // `nothere:1` is known onboard; forced, the execution starts all the same.)
    let yaml = "id: fails\nnamespace: demo\ntasks:\n\
                - id: run\n  type: pod.run\n  image: nothere:1\n\
                - id: down\n  type: downlink\n  source: '*.txt'\n";
    let id = start_with(&g, &t, yaml, "fails", true).await;
    let plan = flight.plan().await;
    assert_eq!(plan.execution, id);
    flight.task(&id, 0, TaskState::Running, None, None).await;
    let error = TaskError {
        code: ErrorCode::DockerImageNotFound,
        message: "no image nothere:1".into(),
        log_tail: vec![],
    };
    flight
        .task(&id, 0, TaskState::Failed, Some(error), None)
        .await;
    flight.execution(&id, TaskState::Failed, 0).await;
    let e = wait_for(&g, &t, &id, |e| e["state"] == "FAILED").await;
    assert_eq!(
        e["errors"],
        json!([{"task": "run", "code": 15, "name": "DOCKER_IMAGE_NOT_FOUND", "message": "no image nothere:1", "log_tail": []}])
    );
    assert_eq!(e["tasks"][0]["state"], "FAILED");
    assert_eq!(e["tasks"][1]["state"], "FAILED");
    assert_eq!(
        e["tasks"][1]["error"],
        json!({"code": 4, "name": "EXECUTION_ERROR", "message": "not run: an earlier task failed (on_failure: stop)", "log_tail": []})
    );
    // Late or repeated events change nothing.
    flight.task(&id, 0, TaskState::Success, None, None).await;

    // A downlink whose object comes down with another size than reported can never land: it
    // fails with TRANSFER_FAILED, lands nothing, and the execution's reported SUCCESS becomes
    // FAILED.
    let yaml =
        "id: down\nnamespace: demo\ntasks:\n  - id: down\n    type: downlink\n    source: out/x\n";
    let id2 = start(&g, &t, yaml, "down").await;
    assert_eq!(flight.plan().await.execution, id2);
    let liar = FileRef {
        path: "out/x".into(),
        digest: Digest::of(b"ghost"),
        size: 99,
    };
    let outputs = TaskOutputs {
        files: vec![liar],
        ..Default::default()
    };
    flight
        .task(&id2, 0, TaskState::Success, None, Some(outputs))
        .await;
    flight.execution(&id2, TaskState::Success, 0).await;
    flight.sync(&g, &t, "alice", "before the ghost").await;
    let e2 = execution(&g, &t, &id2).await;
    assert_eq!(e2["state"], "SCHEDULED", "{e2}");
    assert_eq!(e2["tasks"][0]["state"], "RUNNING");
    flight.send_object(b"ghost").await;
    let e2 = wait_for(&g, &t, &id2, |e| e["state"] == "FAILED").await;
    assert_eq!(e2["tasks"][0]["state"], "FAILED");
    assert_eq!(e2["tasks"][0]["error"]["code"], 21);
    assert_eq!(e2["tasks"][0]["error"]["name"], "TRANSFER_FAILED");
    assert_eq!(e2["errors"][0]["task"], "down");
    assert_eq!(
        g.get("/api/v1/namespaces/demo/files/out/x", &t)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // The first execution is unchanged by the late event.
    let e = execution(&g, &t, &id).await;
    assert_eq!(e["tasks"][0]["state"], "FAILED");
}

#[tokio::test]
async fn a_downlink_whose_file_came_down_before_a_restart_lands_at_open() {
    let (g, mut flight) = setup().await;
    let t = g.login("alice").await;
    let yaml =
        "id: down\nnamespace: demo\ntasks:\n  - id: down\n    type: downlink\n    source: out/x\n";
    let id = start(&g, &t, yaml, "down").await;
    assert_eq!(flight.plan().await.execution, id);
    let content = b"late but whole".to_vec();
    let file = FileRef {
        path: "out/x".into(),
        digest: Digest::of(&content),
        size: content.len() as u64,
    };
    let outputs = TaskOutputs {
        files: vec![file.clone()],
        ..Default::default()
    };
    flight
        .task(&id, 0, TaskState::Success, None, Some(outputs))
        .await;
    flight
        .execution(&id, TaskState::Failed, 1_800_000_005_000)
        .await;
    flight.sync(&g, &t, "alice", "before the restart").await;
    let e = execution(&g, &t, &id).await;
    assert_eq!(e["state"], "SCHEDULED", "{e}");
    assert_eq!(e["tasks"][0]["state"], "RUNNING");
    assert_eq!(
        states(&e["tasks"][0]["history"]),
        vec!["CREATED", "SCHEDULED", "RUNNING"]
    );

    // The link committed the object, and the ground stopped before it heard.
    let hex = file.digest.hex();
    let blob = g.dir.path().join("blobs/sha256").join(&hex[..2]).join(&hex);
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, &content).unwrap();
    let g = g.reopen(Vec::new()).await;

    let e = execution(&g, &t, &id).await;
    assert_eq!(e["state"], "FAILED", "the held state applies: {e}");
    assert_eq!(e["finished_at"], "2027-01-15T08:00:05.000Z");
    assert_eq!(e["tasks"][0]["state"], "SUCCESS");
    assert_eq!(e["tasks"][0]["outputs"]["files"][0]["path"], "/out/x");
    let f = g.get("/api/v1/namespaces/demo/files/out/x", &t).await;
    assert_eq!((f.status, f.body), (StatusCode::OK, content));
}

/// A flight agent that restarts (a new boot id) may have lost a plan it had received but not
/// stored: the ground sends again the plans of unfinished executions its Hello does not say it
/// holds, and only those. The re-sending is done before the Hello counts as handled, so what a
/// Hello brings is settled once a message after it has been handled.
#[tokio::test]
async fn a_restarted_agent_gets_the_plans_of_unfinished_executions_again() {
    let (g, mut flight) = setup().await;
    let t = g.login("alice").await;
    let hello = |boot, holds: &[&str]| Message::Hello {
        agent: "em".into(),
        platform: "linux/amd64".into(),
        catalogue: wire::catalogue("linux/amd64"),
        boot,
        holds: holds.iter().map(|h| h.to_string()).collect(),
        engine: wire::EngineReport::default(),
    };
    flight.send(hello(1, &[])).await;
    // The first Hello sends unfinished plans again: none exists yet.
    flight.sync(&g, &t, "alice", "hello handled").await;
    let done_id = start(
        &g,
        &t,
        "id: done\nnamespace: demo\ntasks:\n- id: ls\n  type: files.list\n",
        "done",
    )
    .await;
    let done_plan = flight.plan().await;
    assert_eq!(done_plan.execution, done_id);
    flight.execution(&done_id, TaskState::Success, 0).await;
    wait_for(&g, &t, &done_id, |e| e["state"] == "COMPLETED").await;
    let open_id = start(
        &g,
        &t,
        "id: open\nnamespace: demo\ntasks:\n- id: ls\n  type: files.list\n",
        "open",
    )
    .await;
    let first = flight.plan().await;
    assert_eq!(first.execution, open_id);
    // Each plan is bound to its system, with the next sequence number and a future expiry.
    assert_eq!(first.system, "em");
    assert_eq!(first.sequence, done_plan.sequence + 1);
    assert!(first.issued_ms < first.expires_ms);

    // The same boot again: nothing is re-sent. A new boot: the unfinished plan comes again.
    flight.send(hello(1, &[])).await;
    flight.send(hello(2, &[])).await;
    let again = flight.plan().await;
    assert_eq!(
        again, first,
        "the unfinished execution's plan, exactly as first sent"
    );
    // A new boot that holds the plan: nothing is re-sent, so the next plan to come is a new one.
    flight.send(hello(3, &[&open_id])).await;
    flight.sync(&g, &t, "alice", "after-restart").await;
    let next_id = start(
        &g,
        &t,
        "id: next\nnamespace: demo\ntasks:\n- id: ls\n  type: files.list\n",
        "next",
    )
    .await;
    assert_eq!(flight.plan().await.execution, next_id);
}

/// Holds the ground database's write lock until released, as a long transaction of another
/// process would: the ground's handlers wait for it, then fail. On SQLite a `BEGIN IMMEDIATE`
/// transaction; on PostgreSQL the advisory lock the ground's write transactions take
/// (`db::write_tx`), held by this session.
enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

/// The key of the ground's PostgreSQL write lock (`WRITE_LOCK` in `db/mod.rs`).
const WRITE_LOCK: i64 = 0x6f64;

impl WriteLock {
    async fn take(g: &TestGround) -> WriteLock {
        use sqlx::Connection;
        match g.database.url() {
            None => {
                let url = format!("sqlite://{}", g.dir.path().join("ground.sqlite").display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                WriteLock::Sqlite(conn)
            }
            Some(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query("SELECT pg_advisory_lock($1)::text")
                    .bind(WRITE_LOCK)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                WriteLock::Postgres(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            WriteLock::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
            }
            WriteLock::Postgres(mut conn) => {
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(WRITE_LOCK)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

/// A message whose handling fails (the database is locked past its busy timeout) is not lost:
/// it is handled again, and applied once the database is free.
#[tokio::test]
async fn a_message_whose_handler_fails_is_handled_again() {
    let (g, mut flight) = setup().await;
    let t = g.login("alice").await;
    let id = start(
        &g,
        &t,
        "id: ls\nnamespace: demo\ntasks:\n- id: ls\n  type: files.list\n",
        "ls",
    )
    .await;
    assert_eq!(flight.plan().await.execution, id);
    let lock = WriteLock::take(&g).await;
    flight.task(&id, 0, TaskState::Running, None, None).await;
    // Bounded polls: the first attempt fails after the database's busy timeout.
    for _ in 0..1200 {
        if g.ground.message_counters("em").unwrap().failures > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(g.ground.message_counters("em").unwrap().failures > 0);
    lock.release().await;
    let e = wait_for(&g, &t, &id, |e| e["tasks"][0]["state"] == "RUNNING").await;
    assert_eq!(
        states(&e["tasks"][0]["history"]),
        vec!["CREATED", "SCHEDULED", "RUNNING"]
    );
    assert_eq!(g.ground.message_counters("em").unwrap().dropped, 0);
}

/// A ground stopped after its link received an event and before the event was committed (here:
/// dropped while the handler waits for the database) gets the event again when it starts.
#[tokio::test]
async fn a_ground_killed_between_receiving_and_committing_an_event_gets_it_again() {
    let (ground_addr, flight_addr) = (free_udp_addr(), free_udp_addr());
    let key = LinkKey::from_bytes(rand::random());
    let link = em(ground_addr, flight_addr, key.clone());
    let g = ground_with(vec![link.clone()]).await;
    let mut flight = Flight::spawn(flight_addr, ground_addr, key).await;
    let t = g.login("alice").await;
    let id = start(
        &g,
        &t,
        "id: ls\nnamespace: demo\ntasks:\n- id: ls\n  type: files.list\n",
        "ls",
    )
    .await;
    assert_eq!(flight.plan().await.execution, id);

    let lock = WriteLock::take(&g).await;
    flight.task(&id, 0, TaskState::Running, None, None).await;
    // The ground's link has the event (the flight's outbox is empty once the ground's session
    // committed it): it is in the handler's hands, which wait for the database.
    for _ in 0..400 {
        if flight.tx.stats_now().await.unwrap().outgoing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(flight.tx.stats_now().await.unwrap().outgoing, 0);

    // Killed: the ground goes away without committing; its link's socket closes once its
    // session has.
    let common::TestGround {
        ground,
        dir,
        database,
    } = g;
    drop(ground);
    for _ in 0..400 {
        if link::udp_address_free(ground_addr).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lock.release().await;
    let ground = ground::Ground::open(common::config(&dir, &database, vec![link]))
        .await
        .unwrap();
    let g = TestGround {
        ground,
        dir,
        database,
    };
    let e = wait_for(&g, &t, &id, |e| e["tasks"][0]["state"] == "RUNNING").await;
    assert_eq!(
        states(&e["tasks"][0]["history"]),
        vec!["CREATED", "SCHEDULED", "RUNNING"]
    );
}

/// A `pod.run` image is checked before uplink, as the flight agent classifies it: a catalogue
/// image, or one of the tenant's images built or loaded earlier in the operation or reported by
/// the system from an earlier execution.
#[tokio::test]
async fn pod_images_are_checked_against_the_catalogue_and_the_reported_images() {
    let (g, mut flight) = setup().await;
    let t = g.login("alice").await;
    let validate = |image: &str| {
        format!("id: pod\nnamespace: demo\ntasks:\n- id: run\n  type: pod.run\n  image: {image}\n")
    };
    let pod_errors = |v: &Value| -> Vec<(String, String, String)> {
        v["preflight"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == "error")
            .map(|f| {
                (
                    f["code"].as_str().unwrap().to_string(),
                    f["message"].as_str().unwrap().to_string(),
                    f["help"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let check = |image: String| {
        let g = &g;
        let t = &t;
        async move {
            let r = g
                .post_yaml("/api/v1/operations/validate", t, &validate(&image))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            r.json()
        }
    };
    assert_eq!(pod_errors(&check("busybox".into()).await), vec![]);
    let v = check("registry:5000/a/b:1.10".into()).await;
    let errors = pod_errors(&v);
    assert_eq!(errors.len(), 1, "{v:#}");
    assert_eq!(errors[0].0, "OD106");
    assert!(
        errors[0].1.contains("nothing can be pulled onboard"),
        "{v:#}"
    );
    let v = check("busybox:1.36".into()).await;
    assert!(
        pod_errors(&v)[0]
            .2
            .starts_with("did you mean `busybox:latest`?"),
        "{v:#}"
    );
    assert_eq!(pod_errors(&check("app:1".into()).await).len(), 1);

    // Unforced, the start is refused before anything is uplinked.
    let r = g
        .post_yaml(
            "/api/v1/operations",
            &t,
            &validate("registry:5000/a/b:1.10"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = g
        .post_json(
            "/api/v1/executions",
            Some(&t),
            json!({"namespace": "demo", "operation": "pod"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("OD106"), "{}", r.text());

    // Built earlier in the operation, the image is the tenant's.
    let yaml = "id: both\nnamespace: demo\ntasks:\n\
                - id: build\n  type: docker.build\n  image: app:1\n\
                - id: run\n  type: pod.run\n  image: app:1\n";
    let r = g.post_yaml("/api/v1/operations/validate", &t, yaml).await;
    let v = r.json();
    assert!(!v["preflight"].to_string().contains("OD106"), "{v:#}");

    // Reported built by an earlier execution on the system, it is known onboard.
    let yaml =
        "id: build\nnamespace: demo\ntasks:\n- id: build\n  type: docker.build\n  image: app:1\n";
    let id = start_with(&g, &t, yaml, "build", true).await;
    let plan = flight.plan().await;
    assert_eq!(plan.execution, id);
    flight.task(&id, 0, TaskState::Running, None, None).await;
    let outputs = TaskOutputs {
        image: Some("tenants/alice/app:1".into()),
        ..Default::default()
    };
    flight
        .task(&id, 0, TaskState::Success, None, Some(outputs))
        .await;
    flight
        .execution(&id, TaskState::Success, 1_800_000_009_000)
        .await;
    wait_for(&g, &t, &id, |e| e["state"] == "COMPLETED").await;
    assert_eq!(pod_errors(&check("app:1".into()).await), vec![]);
    assert_eq!(pod_errors(&check("app".into()).await).len(), 1);
    // Another tenant's reported images are not Bob's.
    let b = g.login("bob").await;
    let r = g
        .post_yaml(
            "/api/v1/operations/validate",
            &b,
            &validate("app:1").replace("demo", "bobs"),
        )
        .await;
    assert!(r.text().contains("OD106"), "{}", r.text());
}

/// The dashboard's Home, as the browser with `token`'s session cookie gets it.
async fn home(g: &TestGround, token: &str) -> String {
    let req = axum::http::Request::builder()
        .uri("/")
        .header("cookie", format!("orbitdock_session={token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let r = g.send(req).await;
    assert_eq!(r.status, StatusCode::OK);
    r.text()
}

/// Home is served from the view cache, and what a write request or a link event changes shows
/// on the next load: the cache is invalidated by events, not by the passing of time.
#[tokio::test]
async fn home_shows_what_each_write_and_link_event_changed() {
    let (g, mut flight) = setup().await;
    let t = g.login("alice").await;
    let first = home(&g, &t).await;
    assert!(!first.contains("cached-op"), "{first}");
    assert_eq!(
        home(&g, &t).await,
        first,
        "nothing changed, nothing differs"
    );

    // A write through the API: the operation and its execution show at once.
    let yaml = "id: cached-op\nnamespace: demo\ntasks:\n- id: ls\n  type: files.list\n";
    let id = start(&g, &t, yaml, "cached-op").await;
    let page = home(&g, &t).await;
    assert!(page.contains("cached-op"), "{page}");
    assert!(
        page.contains("<td class=\"SCHEDULED\">SCHEDULED</td>"),
        "{page}"
    );
    let plan = flight.plan().await;
    assert_eq!(plan.execution, id);

    // Events from the system: once the API shows them handled, so does Home (well within the
    // cache's 30 s, which alone would not be enough).
    flight.task(&id, 0, TaskState::Success, None, None).await;
    flight.execution(&id, TaskState::Success, 0).await;
    wait_for(&g, &t, &id, |e| e["state"] == "COMPLETED").await;
    let mut page = String::new();
    for _ in 0..100 {
        page = home(&g, &t).await;
        if page.contains("<td class=\"COMPLETED\">COMPLETED</td>") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        page.contains("<td class=\"COMPLETED\">COMPLETED</td>"),
        "{page}"
    );
    assert!(!page.contains("SCHEDULED</td>"), "{page}");
}

/// A digest of `minutes` one-minute buckets from `t0` (ms), of the battery and one temperature.
fn telemetry_digest(t0: u64, minutes: std::ops::Range<u64>, soc: i32) -> Message {
    let series = |name: &str, base: i32| wire::DigestSeries {
        data_type: name.into(),
        buckets: minutes
            .clone()
            .map(|m| wire::DigestBucket {
                start_ms: t0 + m * 60_000,
                count: 6,
                min: base - 500,
                mean: base,
                max: base + 500,
            })
            .collect(),
    };
    Message::TelemetryDigest(wire::TelemetryDigest {
        bucket_ms: 60_000,
        series: vec![
            series("battery_soc_percent", soc),
            series("temperature_sensor0", 21_250),
        ],
    })
}

#[tokio::test]
async fn telemetry_digests_are_kept_once_and_served_to_any_user_and_plotted() {
    let (g, flight) = setup().await;
    let t = g.login("alice").await;
    let now = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    // An hour ago, on a whole minute: within the default window (the last 24 hours).
    let t0 = (now - 3_600_000) / 60_000 * 60_000;
    let before = g.get("/api/v1/systems/em/telemetry", &t).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text());
    assert_eq!(before.json()["series"], json!([]));

    // Three minutes, the last two again (an agent that restarted before saving its mark), the
    // battery lower the second time: each bucket once, the last word kept.
    flight.send(telemetry_digest(t0, 0..3, 80_000)).await;
    flight.send(telemetry_digest(t0, 1..3, 79_000)).await;
    flight.sync(&g, &t, "alice", "telemetry sent").await;

    let r = g.get("/api/v1/systems/em/telemetry", &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body: api::Telemetry = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body.system, "em");
    assert_eq!(body.step_s, 60);
    let types: Vec<&str> = body.series.iter().map(|s| s.data_type.as_str()).collect();
    assert_eq!(types, ["battery_soc_percent", "temperature_sensor0"]);
    let soc = &body.series[0].points;
    let means: Vec<f64> = soc.iter().map(|p| p.mean).collect();
    assert_eq!(means, [80.0, 79.0, 79.0]);
    assert_eq!((soc[0].min, soc[0].max, soc[0].count), (79.5, 80.5, 6));

    // One data type, a window of the first two minutes: two points.
    let from = humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(t0));
    let to = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + Duration::from_millis(t0 + 120_000),
    );
    let r = g
        .get(
            &format!(
                "/api/v1/systems/em/telemetry?data_type=temperature_sensor0&from={from}&to={to}"
            ),
            &t,
        )
        .await
        .json();
    assert_eq!(r["series"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["series"][0]["points"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["series"][0]["points"][0]["mean"], 21.25, "{r}");

    // Bad parameters are named; an unknown system is a 404; no token, a 401.
    for (query, says) in [
        (
            "from=yesterday",
            "from: 'yesterday' is not an RFC 3339 date and time",
        ),
        (
            "to=2026-13-01T00:00:00Z",
            "to: '2026-13-01T00:00:00Z' is not an RFC 3339 date and time",
        ),
        (
            "data_type=Battery%20SOC",
            "data_type: data type 'Battery SOC'",
        ),
        (
            "from=2026-12-03T10:00:00Z&to=2026-12-03T09:00:00Z",
            "is not before to",
        ),
        (
            "from=2026-10-01T00:00:00Z&to=2026-12-03T00:00:00Z",
            "spans more than 31 days",
        ),
        (
            &format!(
                "data_type={}",
                (0..33)
                    .map(|i| format!("t{i}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "data_type names more than 32 data types",
        ),
    ] {
        g.get(&format!("/api/v1/systems/em/telemetry?{query}"), &t)
            .await
            .assert_answer(StatusCode::BAD_REQUEST, says);
    }
    g.get("/api/v1/systems/nope/telemetry", &t)
        .await
        .assert_answer(StatusCode::NOT_FOUND, "system 'nope' not found");
    let anonymous = g
        .call(
            axum::http::Method::GET,
            "/api/v1/systems/em/telemetry",
            None,
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // The Systems page plots the battery and the temperature.
    let page = g
        .send(
            axum::http::Request::builder()
                .uri("/systems")
                .header("cookie", format!("orbitdock_session={t}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("data-type=\"battery_soc_percent\""), "{html}");
    assert!(html.contains("data-type=\"temperature_sensor0\""), "{html}");
    assert!(html.contains("<polyline class=\"mean\""), "{html}");
    assert!(!html.contains("no telemetry received yet"), "{html}");
}
