//! Cancels against the real Docker Engine of this machine, through the agent's own message
//! handling and plan loop: a running pod is stopped and its container removed, the tasks after
//! it never start, and the execution ends `Cancelled`; a cancel that comes before its plan keeps
//! the plan from ever running; one that comes after the end changes nothing; a restart after a
//! cancel does not resume the execution, and stops the pod the restart left; a running build is
//! stopped, and so are the pods the execution started detached.
//!
//! Every test seeds the stand-in base images first (idempotent), works as a fresh tenant and
//! removes what that tenant left in the daemon when it ends, pass or fail. Without a reachable
//! Docker Engine these tests fail; they never skip.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use wire::{CancelOrder, ImageRef, Message, OnFailure, Plan, PlanTask, TaskKind};

use flight::{Agent, Outgoing};

mod common;
use common::{Cleanup, docker, step_containers, tenant_containers};

async fn agent(dir: &Path) -> (Agent, mpsc::Receiver<Outgoing>) {
    let (tx, outbox) = mpsc::channel(4096);
    let config = common::agent_config(dir, flight::ClockConfig::Host);
    let agent = Agent::connect(config, tx)
        .await
        .expect("an agent on the Docker Engine");
    (agent, outbox)
}

async fn seed() {
    let mut lines = Vec::new();
    standins::seed_bases(&mut |l: &str| lines.push(l.to_string()))
        .await
        .expect("seed-bases needs the Docker Engine (and a static busybox or apt-get)");
}

fn tenant() -> String {
    format!("t{:010x}", rand::random::<u64>() >> 24)
}

/// A pod.run of busybox running `script` with `/bin/sh -c`, attached.
fn pod(name: &str, script: &str) -> PlanTask {
    PlanTask {
        trigger: None,
        id: name.into(),
        on_failure: OnFailure::Stop,
        kind: TaskKind::PodRun {
            pod_name: name.into(),
            image: ImageRef {
                name: "busybox".into(),
                tag: "latest".into(),
            },
            command: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
            args: None,
            env: vec![],
            volume: "pvc".into(),
            max_duration_ms: Some(600_000),
            scheduled_ms: None,
            detached: false,
            node: None,
            merged: false,
            ports: vec![],
        },
    }
}

/// A long pod (it would sleep ten minutes), then a pod that leaves a file if it ever runs.
fn long_then_marker(tenant: &str) -> Plan {
    Plan {
        elements: None,
        execution: format!("{:032x}", rand::random::<u128>()),
        tenant: tenant.into(),
        tasks: vec![
            pod("long", "echo started > /data/long-started; exec sleep 600"),
            pod("after", "echo ran > /data/after-ran"),
        ],
        system: "em".into(),
        sequence: rand::random::<u32>().into(),
        issued_ms: 0,
        expires_ms: u64::MAX,
        signature: Vec::new(),
    }
}

fn cancel(execution: &str) -> Message {
    Message::Cancel(CancelOrder {
        execution: execution.into(),
        system: "em".into(),
        by: "alice".into(),
        issued_ms: u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap(),
        signature: Vec::new(),
    })
}

/// An event the agent sent, shortly: `task N STATE [code]` or `execution STATE`.
fn describe(out: &Outgoing) -> Option<String> {
    match out {
        Outgoing::Message(Message::TaskEvent {
            task, state, error, ..
        }) => Some(format!(
            "task {task} {}{}",
            state.as_str(),
            error
                .as_ref()
                .map(|e| format!(" {}", e.code.code()))
                .unwrap_or_default()
        )),
        Outgoing::Message(Message::ExecutionEvent { state, .. }) => {
            Some(format!("execution {}", state.as_str()))
        }
        _ => None,
    }
}

/// The events the agent sends until (and with) the execution's final one, within two minutes.
async fn until_final(outbox: &mut mpsc::Receiver<Outgoing>) -> Vec<String> {
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let Ok(Some(out)) = tokio::time::timeout(left, outbox.recv()).await else {
            panic!("the execution did not end: {seen:?}");
        };
        let Some(e) = describe(&out) else { continue };
        let last = e.starts_with("execution ") && e != "execution RUNNING";
        seen.push(e);
        if last {
            return seen;
        }
    }
}

/// Waits (up to a minute) for a file a pod writes into its volume.
async fn appears(path: &Path) {
    let until = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < until, "{} never appeared", path.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_stops_the_running_pod_and_nothing_after_it_runs() {
    seed().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = tenant();
    let _cleanup = Cleanup(tenant.clone());
    let (agent, mut outbox) = agent(dir.path()).await;
    let plan = long_then_marker(&tenant);
    let volume = dir.path().join("volumes").join(&tenant).join("pvc");
    agent.handle_message(Message::Plan(plan.clone())).unwrap();
    let a = agent.clone();
    let plans = tokio::spawn(async move { a.run_plans().await });
    appears(&volume.join("long-started")).await;
    let docker = docker().await;
    assert_eq!(tenant_containers(&docker, &tenant).await.len(), 1);

    agent.handle_message(cancel(&plan.execution)).unwrap();
    let events = until_final(&mut outbox).await;
    assert_eq!(
        events,
        [
            "execution RUNNING",
            "task 0 RUNNING",
            "task 0 CANCELLED 23",
            "task 1 CANCELLED 23",
            "execution CANCELLED"
        ]
    );
    assert!(
        tenant_containers(&docker, &tenant).await.is_empty(),
        "the stopped pod's container is removed"
    );
    assert!(
        !volume.join("after-ran").exists(),
        "the next task never ran"
    );
    // Its log is kept, as for any pod.
    assert!(volume.join(".logs/long.log").exists());
    // The plan is no longer held, and the same cancel again changes nothing but sends the
    // end again.
    let Message::Hello { holds, .. } = agent.hello().await else {
        unreachable!()
    };
    assert!(!holds.contains(&plan.execution), "{holds:?}");
    agent.handle_message(cancel(&plan.execution)).unwrap();
    let again = until_final(&mut outbox).await;
    assert_eq!(
        again.last().map(String::as_str),
        Some("execution CANCELLED")
    );
    plans.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_before_its_plan_keeps_the_plan_from_ever_running() {
    seed().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = tenant();
    let _cleanup = Cleanup(tenant.clone());
    let (agent, mut outbox) = agent(dir.path()).await;
    let a = agent.clone();
    let plans = tokio::spawn(async move { a.run_plans().await });
    let plan = long_then_marker(&tenant);
    agent.handle_message(cancel(&plan.execution)).unwrap();
    assert_eq!(until_final(&mut outbox).await, ["execution CANCELLED"]);

    // The plan comes after its cancel, even after a restart of the agent.
    drop(agent);
    plans.abort();
    let (agent, mut outbox) = self::agent(dir.path()).await;
    agent.handle_message(Message::Plan(plan.clone())).unwrap();
    let a = agent.clone();
    let plans = tokio::spawn(async move { a.run_plans().await });
    assert_eq!(
        until_final(&mut outbox).await,
        [
            "task 0 CANCELLED 23",
            "task 1 CANCELLED 23",
            "execution CANCELLED"
        ]
    );
    let docker = docker().await;
    assert!(tenant_containers(&docker, &tenant).await.is_empty());
    let volume = dir.path().join("volumes").join(&tenant).join("pvc");
    assert!(!volume.join("long-started").exists(), "never ran");
    // Sent again, the plan is answered from its record: still cancelled, still not run.
    agent.handle_message(Message::Plan(plan)).unwrap();
    assert_eq!(
        until_final(&mut outbox).await.last().map(String::as_str),
        Some("execution CANCELLED")
    );
    plans.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_after_the_end_changes_nothing() {
    seed().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = tenant();
    let _cleanup = Cleanup(tenant.clone());
    let (agent, mut outbox) = agent(dir.path()).await;
    let mut plan = long_then_marker(&tenant);
    plan.tasks = vec![pod("quick", "echo done")];
    agent.handle_message(Message::Plan(plan.clone())).unwrap();
    let a = agent.clone();
    let plans = tokio::spawn(async move { a.run_plans().await });
    let ended = until_final(&mut outbox).await;
    assert_eq!(ended.last().map(String::as_str), Some("execution SUCCESS"));
    // Its record is filed finished right after its last event went.
    for _ in 0..600 {
        let Message::Hello { holds, .. } = agent.hello().await else {
            unreachable!()
        };
        if !holds.contains(&plan.execution) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.handle_message(cancel(&plan.execution)).unwrap();
    // Its end is sent again, unchanged.
    let again = until_final(&mut outbox).await;
    assert_eq!(
        again,
        ["task 0 RUNNING", "task 0 SUCCESS", "execution SUCCESS"]
    );
    plans.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_after_a_cancel_does_not_resume_the_execution() {
    seed().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = tenant();
    let _cleanup = Cleanup(tenant.clone());
    let (agent, mut outbox) = agent(dir.path()).await;
    let plan = long_then_marker(&tenant);
    let volume = dir.path().join("volumes").join(&tenant).join("pvc");
    agent.handle_message(Message::Plan(plan.clone())).unwrap();
    let a = agent.clone();
    let plans = tokio::spawn(async move { a.run_plans().await });
    appears(&volume.join("long-started")).await;
    // The agent stops (its plan loop aborted, as a crash would) right after it kept the cancel:
    // the pod is still running, the plan unfinished on disk.
    plans.abort();
    let _ = plans.await;
    agent.handle_message(cancel(&plan.execution)).unwrap();
    drop(agent);
    drop(outbox);
    let docker = docker().await;
    assert_eq!(
        tenant_containers(&docker, &tenant).await.len(),
        1,
        "the pod outlived the agent"
    );

    let (agent, mut outbox2) = self::agent(dir.path()).await;
    let a = agent.clone();
    let plans = tokio::spawn(async move { a.run_plans().await });
    let events = until_final(&mut outbox2).await;
    assert_eq!(
        events,
        [
            "task 0 CANCELLED 23",
            "task 1 CANCELLED 23",
            "execution CANCELLED"
        ]
    );
    assert!(
        tenant_containers(&docker, &tenant).await.is_empty(),
        "the pod the restart left is stopped and removed"
    );
    assert!(!volume.join("after-ran").exists(), "nothing after it ran");
    let Message::Hello { holds, .. } = agent.hello().await else {
        unreachable!()
    };
    assert!(!holds.contains(&plan.execution), "{holds:?}");
    outbox = outbox2;
    // The plan sent again (the ground does after a restart) does not run either.
    agent.handle_message(Message::Plan(plan)).unwrap();
    assert_eq!(
        until_final(&mut outbox).await.last().map(String::as_str),
        Some("execution CANCELLED")
    );
    assert!(!volume.join("after-ran").exists());
    plans.abort();
}

/// Polls (a bounded number of times) until `done` says yes.
async fn eventually<F, Fut>(what: &str, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: never");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_stops_a_running_build_and_the_pods_the_execution_left_detached() {
    seed().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = tenant();
    let _cleanup = Cleanup(tenant.clone());
    let (agent, mut outbox) = agent(dir.path()).await;
    let token = format!("slowbuild{:08x}", rand::random::<u32>());
    let dockerfile = format!("FROM busybox\nRUN echo {token} && sleep 600\n");
    let digest = agent.object_layout().put(dockerfile.as_bytes()).unwrap();
    agent
        .handle_event(link::LinkEvent::ObjectReceived(digest))
        .unwrap();
    let mut background = pod("bg", "echo started > /data/bg-started; exec sleep 600");
    if let TaskKind::PodRun { detached, .. } = &mut background.kind {
        *detached = true;
    }
    let mut plan = long_then_marker(&tenant);
    plan.tasks = vec![
        PlanTask {
            trigger: None,
            id: "up".into(),
            on_failure: OnFailure::Stop,
            kind: TaskKind::Uplink {
                volume: "pvc".into(),
                files: vec![wire::UplinkFile {
                    path: "slow/Dockerfile".into(),
                    digest,
                    size: dockerfile.len() as u64,
                    mode: 0o644,
                }],
            },
        },
        background,
        PlanTask {
            trigger: None,
            id: "build".into(),
            on_failure: OnFailure::Stop,
            kind: TaskKind::DockerBuild {
                volume: "pvc".into(),
                dockerfile: "slow/Dockerfile".into(),
                context: "slow".into(),
                image: ImageRef {
                    name: "slow".into(),
                    tag: "v1".into(),
                },
                max_duration_ms: Some(600_000),
            },
        },
    ];
    agent.handle_message(Message::Plan(plan.clone())).unwrap();
    let a = agent.clone();
    let plans = tokio::spawn(async move { a.run_plans().await });
    let docker = docker().await;
    let volume = dir.path().join("volumes").join(&tenant).join("pvc");
    appears(&volume.join("bg-started")).await;
    eventually("the build's step runs", || async {
        !step_containers(&docker, &token).await.is_empty()
    })
    .await;

    agent.handle_message(cancel(&plan.execution)).unwrap();
    let events = until_final(&mut outbox).await;
    assert_eq!(
        events,
        [
            "execution RUNNING",
            "task 0 RUNNING",
            "task 0 SUCCESS",
            "task 1 RUNNING",
            "task 1 SUCCESS",
            "task 2 RUNNING",
            "task 2 CANCELLED 23",
            "execution CANCELLED"
        ]
    );
    // The detached pod is stopped (SIGTERM, the grace, SIGKILL) and removed; the engine ends the
    // build's step once its request is gone; no image was made.
    eventually("the detached pod is gone", || async {
        tenant_containers(&docker, &tenant).await.is_empty()
    })
    .await;
    eventually("the build's step is gone", || async {
        step_containers(&docker, &token).await.is_empty()
    })
    .await;
    let image = format!("tenants/{tenant}/slow:v1");
    assert!(
        docker.inspect_image(&image).await.is_err(),
        "{image} was not made"
    );
    plans.abort();
}
