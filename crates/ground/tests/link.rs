//! The ground against a fake flight agent: two `link` endpoints joined directly on loopback (no
//! emulator). The test plays the agent's part by hand: it takes the plan, asks for objects, and
//! reports task and execution events.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use common::{Entry, TestGround, free_udp_addr, ground_with, tar};
use ground::SystemLink;
use link::{EndpointConfig, MessageReceiver, MessageSender, spawn_endpoint};
use serde_json::{Value, json};
use wire::{
    Digest, ErrorCode, FileEntry, FileRef, Message, Plan, TaskError, TaskKind, TaskOutputs,
    TaskState,
};

struct Flight {
    tx: MessageSender,
    rx: MessageReceiver,
}

impl Flight {
    async fn recv(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(20), self.rx.recv())
            .await
            .expect("the ground said nothing for 20 s")
            .expect("the flight endpoint stopped")
    }

    async fn send(&self, m: Message) {
        self.tx.send(m).await.unwrap();
    }

    async fn task(
        &self,
        execution: &str,
        task: u32,
        state: TaskState,
        error: Option<TaskError>,
        outputs: Option<TaskOutputs>,
    ) {
        let at_ms = 1_800_000_000_000 + u64::from(task) * 1000 + state as u64;
        self.send(Message::TaskEvent {
            execution: execution.into(),
            task,
            state,
            at_ms,
            error,
            outputs,
        })
        .await;
    }

    async fn plan(&mut self) -> Plan {
        match self.recv().await {
            Message::Plan(p) => p,
            other => panic!("expected a plan, got {other:?}"),
        }
    }
}

/// A ground with an `em` link joined to a fresh fake flight.
async fn setup() -> (TestGround, Flight) {
    let (ground_addr, flight_addr) = (free_udp_addr(), free_udp_addr());
    let g = ground_with(vec![SystemLink {
        name: "em".into(),
        bind: ground_addr,
        link: flight_addr,
        rate_bytes_per_sec: None,
    }])
    .await;
    let (tx, rx) = spawn_endpoint(EndpointConfig {
        bind: flight_addr,
        peer: ground_addr,
        rate_bytes_per_sec: None,
    })
    .await
    .unwrap();
    (g, Flight { tx, rx })
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
    let r = g.post_yaml("/api/v1/operations", token, yaml).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = g
        .post_json(
            "/api/v1/executions",
            Some(token),
            json!({"namespace": "demo", "operation": op}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let e = r.json();
    assert_eq!(e["state"], "SCHEDULED", "{e}");
    e["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_execution_runs_over_the_link_and_lands_its_downlink() {
    let (g, mut flight) = setup().await;
    let t = g.login("alice").await;
    flight
        .send(Message::Hello {
            agent: "em".into(),
            platform: "linux/amd64".into(),
            catalogue: wire::catalogue("linux/amd64"),
        })
        .await;

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

    // Ask for both objects (and one the ground cannot have); reassemble what comes.
    let wanted: Vec<Digest> = files.iter().map(|f| f.digest).collect();
    let mut need = wanted.clone();
    need.push(Digest::of(b"never uploaded"));
    flight.send(Message::Need { digests: need }).await;
    let mut got: HashMap<Digest, Vec<u8>> = HashMap::new();
    let mut parts = 0;
    while wanted.iter().any(|d| {
        got.get(d)
            .is_none_or(|b| b.len() as u64 != files.iter().find(|f| f.digest == *d).unwrap().size)
    }) {
        match flight.recv().await {
            Message::Object {
                digest,
                offset,
                total,
                data,
            } => {
                let buf = got.entry(digest).or_default();
                assert_eq!(offset, buf.len() as u64, "parts arrive in order");
                assert!(data.len() <= Message::OBJECT_PART);
                buf.extend_from_slice(&data);
                assert!(buf.len() as u64 <= total);
                parts += 1;
            }
            other => panic!("expected objects, got {other:?}"),
        }
    }
    assert_eq!(got[&Digest::of(&big)], big);
    assert_eq!(got[&Digest::of(b"hello")], b"hello");
    assert_eq!(
        parts, 4,
        "600,000 bytes in three parts of 256 KiB, plus one"
    );

    flight.task(&id, 0, TaskState::Running, None, None).await;
    flight
        .send(Message::ExecutionEvent {
            execution: id.clone(),
            state: TaskState::Running,
            at_ms: 1_800_000_000_000,
        })
        .await;
    flight
        .task(
            &id,
            0,
            TaskState::Success,
            None,
            Some(TaskOutputs {
                message: Some("2 files".into()),
                ..Default::default()
            }),
        )
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
    let result = b"hello from space\n".to_vec();
    let digest = Digest::of(&result);
    let size = result.len() as u64;
    flight
        .send(Message::Object {
            digest,
            offset: 0,
            total: size,
            data: result.clone(),
        })
        .await;
    let down = TaskOutputs {
        files: vec![FileRef {
            path: "out/result.txt".into(),
            digest,
            size,
        }],
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
        .send(Message::ExecutionEvent {
            execution: id.clone(),
            state: TaskState::Success,
            at_ms: 1_800_000_010_000,
        })
        .await;

    let e = wait_for(&g, &t, &id, |e| e["state"] == "SUCCESS").await;
    let states: Vec<&str> = e["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["CREATED", "SCHEDULED", "RUNNING", "SUCCESS"]);
    assert_eq!(e["finished_at"], "2027-01-15T08:00:10.000Z");
    assert_eq!(e["errors"], json!([]));
    for task in e["tasks"].as_array().unwrap() {
        assert_eq!(task["state"], "SUCCESS", "{task}");
        let h: Vec<&str> = task["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["state"].as_str().unwrap())
            .collect();
        assert_eq!(h, vec!["CREATED", "SCHEDULED", "RUNNING", "SUCCESS"]);
        assert!(task["error"].is_null());
    }
    assert_eq!(e["tasks"][1]["outputs"]["exit_code"], 0);
    assert_eq!(e["tasks"][1]["outputs"]["log_tail"], json!(["hello"]));
    assert_eq!(e["tasks"][1]["started_at"], "2027-01-15T08:00:01.002Z");
    assert_eq!(
        e["tasks"][2]["outputs"]["files"],
        json!([{"path": "/results/out/result.txt", "digest": digest.to_string(), "size": size, "version": 1}])
    );

    let f = g
        .get("/api/v1/namespaces/demo/files/results/out/result.txt", &t)
        .await;
    assert_eq!((f.status, f.body), (StatusCode::OK, result));

    let systems = g.get("/api/v1/systems", &t).await.json();
    assert_eq!(systems["systems"][0]["name"], "em");
    assert_eq!(systems["systems"][0]["platform"], "linux/amd64");
    assert!(systems["systems"][0]["last_seen"].is_string());
    let vols = g.get("/api/v1/systems/em/volumes", &t).await.json();
    assert_eq!(
        vols["volumes"],
        json!([{"name": "alice-pvc", "files": 2, "bytes": 5 + size}])
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
async fn failures_stop_the_rest_and_missing_objects_fail_the_downlink() {
    let (g, mut flight) = setup().await;
    let t = g.login("alice").await;

    // A pod that fails: the task after it never runs.
    let yaml = "id: fails\nnamespace: demo\ntasks:\n\
                - id: run\n  type: pod.run\n  image: nothere:1\n\
                - id: down\n  type: downlink\n  source: '*.txt'\n";
    let id = start(&g, &t, yaml, "fails").await;
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
    flight
        .send(Message::ExecutionEvent {
            execution: id.clone(),
            state: TaskState::Failed,
            at_ms: 0,
        })
        .await;
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

    // A downlink whose object never arrived fails with TRANSFER_FAILED and lands nothing.
    let yaml =
        "id: down\nnamespace: demo\ntasks:\n  - id: down\n    type: downlink\n    source: out/x\n";
    let id2 = start(&g, &t, yaml, "down").await;
    assert_eq!(flight.plan().await.execution, id2);
    let ghost = FileRef {
        path: "out/x".into(),
        digest: Digest::of(b"ghost"),
        size: 5,
    };
    flight
        .task(
            &id2,
            0,
            TaskState::Success,
            None,
            Some(TaskOutputs {
                files: vec![ghost],
                ..Default::default()
            }),
        )
        .await;
    flight
        .send(Message::ExecutionEvent {
            execution: id2.clone(),
            state: TaskState::Failed,
            at_ms: 0,
        })
        .await;
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
    let e = g.get(&format!("/api/v1/executions/{id}"), &t).await.json();
    assert_eq!(e["tasks"][0]["state"], "FAILED");
}
