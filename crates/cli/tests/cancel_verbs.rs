//! `orbitdock exec cancel` with `-o json` against a real ground, the link emulator and a real
//! flight agent on this machine's Docker Engine: a running long pod is stopped and its container
//! removed, the task after it never runs, and the execution ends `CANCELLED` (`CANCELLING` until
//! the agent confirms); an execution cancelled before its plan reached the agent never runs
//! anything; a restart of the agent after a cancel resumes nothing; a cancel sent while the agent
//! is down reaches it once it is back and stops the pod it took up; a cancel after the end is
//! refused with 409 (exit status 1). Each answer is the API's.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::{DockerCleanup, Stack, User, assert_schema, unique};

/// Applies `yaml` and starts it with `exec start -o json`; returns the execution's id.
async fn start(user: &User, dir: &Path, ns: &str, op: &str, yaml: &str) -> String {
    let file = dir.join(format!("{}.yaml", unique("op")));
    std::fs::write(&file, yaml).unwrap();
    let (code, applied) = user
        .cli_json(&["op", "apply", file.to_str().unwrap()])
        .await;
    assert_eq!(code, 0, "{applied:#}");
    let (code, e) = user
        .cli_json(&["exec", "start", &format!("{ns}/{op}")])
        .await;
    assert_eq!(code, 0, "{e:#}");
    assert_eq!(e["state"], "SCHEDULED", "{e:#}");
    e["id"].as_str().unwrap().to_string()
}

/// A long pod (ten minutes, unless stopped), then a pod that leaves a file if it ever runs.
fn long_then_marker(ns: &str, op: &str) -> String {
    format!(
        "id: {op}\nnamespace: {ns}\nsystem: em\ntasks:\n\
         - id: long\n  type: pod.run\n  image: busybox\n  command: [sh, -c, 'echo started > /data/{op}-started; exec sleep 600']\n  max_duration: 10\n\
         - id: after\n  type: pod.run\n  image: busybox\n  command: [sh, -c, 'echo ran > /data/{op}-after']\n  max_duration: 1\n"
    )
}

/// The containers of `tenant`, running or not.
fn containers(tenant: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=org.orbitdock.tenant={tenant}"),
        ])
        .output()
        .expect("the docker CLI");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Waits (a bounded number of polls) for a file a pod writes into its volume.
async fn appears(path: &Path) {
    for _ in 0..1200 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never appeared", path.display());
}

/// Waits (a bounded number of polls) until the ground's uplink queue holds the execution's plan,
/// as its `uplink_eta` says: the link publishes what it queues a moment after it is queued, and
/// until then an answer has no ETA.
async fn queued(user: &User, id: &str) {
    for _ in 0..600 {
        let (_, e) = user.get(&format!("/api/v1/executions/{id}")).await;
        if !e["uplink_eta"].is_null() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the plan of {id} never showed in the uplink queue");
}

/// Checks a cancelled execution's shape: `CANCELLED` after `CANCELLING`, both by `by`; the
/// tasks `CANCELLED`; the execution's error naming who cancelled it.
fn check_cancelled(e: &Value, by: &str) {
    assert_eq!(e["state"], "CANCELLED", "{e:#}");
    assert_schema::<api::Execution>(e);
    let history = e["history"].as_array().unwrap();
    let cancelling = history
        .iter()
        .find(|h| h["state"] == "CANCELLING")
        .expect("CANCELLING before CANCELLED");
    assert_eq!(cancelling["by"], by);
    assert_eq!(history.last().unwrap()["state"], "CANCELLED");
    assert_eq!(history.last().unwrap()["by"], by);
    for t in e["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "CANCELLED", "{e:#}");
        assert_eq!(t["error"]["code"], 23, "{e:#}");
    }
    assert_eq!(
        e["errors"][0]["message"],
        format!("cancelled by {by}; stopped on system 'em'")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_stops_a_running_pod_and_nothing_after_it_runs() {
    let stack = Stack::start().await;
    let a = unique("ta");
    let _cleanup = DockerCleanup {
        tenants: vec![a.clone()],
        images: vec![],
    };
    let alice = stack.user(&a).await;
    let ns = unique("ns");
    let volume = stack.volume(&a, &format!("{a}-pvc"));
    let id = start(
        &alice,
        stack.dir.path(),
        &ns,
        "long",
        &long_then_marker(&ns, "long"),
    )
    .await;
    appears(&volume.join("long-started")).await;
    assert_eq!(containers(&a).len(), 1, "the long pod runs");

    let (code, c) = alice.cli_json(&["exec", "cancel", &id]).await;
    assert_eq!(code, 0, "{c:#}");
    assert!(
        c["state"] == "CANCELLING" || c["state"] == "CANCELLED",
        "{c:#}"
    );
    assert_eq!(
        c["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["state"] == "CANCELLING")
            .expect("a CANCELLING entry")["by"],
        a.as_str()
    );
    let (code, e) = alice.cli_json(&["exec", "wait", &id]).await;
    assert_eq!(code, 1, "a cancelled execution did not complete: {e:#}");
    check_cancelled(&e, &a);
    let (_, api) = alice.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(e, api, "exec wait -o json is the API's answer");
    // The pod was stopped, and its container removed; its log is kept; the next task never ran.
    assert!(
        e["tasks"][0]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the pod was stopped (SIGTERM, then SIGKILL after 5s)"),
        "{e:#}"
    );
    assert_ne!(e["tasks"][0]["started_at"], Value::Null);
    assert_eq!(e["tasks"][1]["started_at"], Value::Null, "never ran: {e:#}");
    assert_eq!(
        e["tasks"][1]["error"]["message"],
        format!("not run: the execution was cancelled by {a}")
    );
    assert!(containers(&a).is_empty(), "{:?}", containers(&a));
    assert!(!volume.join("long-after").exists());
    assert!(volume.join(".logs/long.log").exists());

    // Ended: a cancel now is refused, in JSON and in text, with exit status 1.
    let (code, err) = alice.cli_json(&["exec", "cancel", &id]).await;
    assert_eq!(code, 1);
    assert_eq!(err["error"]["code"], "conflict", "{err:#}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has already ended (CANCELLED): there is nothing left to cancel"),
        "{err:#}"
    );
    let out = alice.cli(&["exec", "cancel", &id]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has already ended (CANCELLED)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_before_the_plan_arrives_runs_nothing_and_a_restart_resumes_nothing() {
    let mut stack = Stack::start().await;
    let a = unique("ta");
    let _cleanup = DockerCleanup {
        tenants: vec![a.clone()],
        images: vec![],
    };
    let alice = stack.user(&a).await;
    let ns = unique("ns");
    let dir = stack.dir.path().to_path_buf();
    let volume = stack.volume(&a, &format!("{a}-pvc"));
    // A file no system holds yet, for an uplink the pod after it would need.
    let files = dir.join("files");
    std::fs::create_dir_all(files.join("in")).unwrap();
    let blob: Vec<u8> = (0..64 * 1024).map(|_| rand::random::<u8>()).collect();
    std::fs::write(files.join("in/blob.bin"), &blob).unwrap();
    let out = alice
        .cli(&["files", "push", files.to_str().unwrap(), "-n", &ns])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The agent is down: the plan waits in the ground's link outbox, and the cancel after it.
    stack.stop_flight().await;
    let yaml = format!(
        "id: early\nnamespace: {ns}\nsystem: em\ntasks:\n\
         - id: up\n  type: uplink\n  source: [/in/blob.bin]\n  destination: /\n\
         - id: after\n  type: pod.run\n  image: busybox\n  command: [sh, -c, 'echo ran > /data/early-after']\n  max_duration: 1\n"
    );
    let early = start(&alice, &dir, &ns, "early", &yaml).await;
    queued(&alice, &early).await;
    let (code, c) = alice.cli_json(&["exec", "cancel", &early]).await;
    assert_eq!(code, 0, "{c:#}");
    assert_eq!(
        c["state"], "CANCELLING",
        "the agent has not confirmed: {c:#}"
    );
    assert_schema::<api::Execution>(&c);
    let (_, api) = alice.get(&format!("/api/v1/executions/{early}")).await;
    assert_eq!(c, api, "exec cancel -o json is the API's answer");
    let (_, shown) = alice.cli_json(&["exec", "show", &early]).await;
    assert_eq!(shown["state"], "CANCELLING");
    assert_eq!(shown, api, "exec show -o json is the API's answer");
    // The agent comes up: the plan, then its cancel. The ground serves the uplink of an
    // execution being cancelled nothing, so nothing of it is placed and nothing after it runs.
    stack.start_flight();
    let (code, e) = alice.cli_json(&["exec", "wait", &early]).await;
    assert_eq!(code, 1, "{e:#}");
    check_cancelled(&e, &a);
    assert_eq!(e["tasks"][1]["started_at"], Value::Null, "never ran: {e:#}");
    assert!(!volume.join("in/blob.bin").exists(), "nothing was placed");
    assert!(!volume.join("early-after").exists(), "the pod never ran");
    assert!(containers(&a).is_empty());
    assert!(
        e["uplink"]["sent"].as_array().unwrap().is_empty(),
        "no byte of the file went up: {e:#}"
    );

    // A restart of the agent after a cancel resumes nothing.
    let long = start(&alice, &dir, &ns, "long", &long_then_marker(&ns, "long")).await;
    appears(&volume.join("long-started")).await;
    let (code, _) = alice.cli_json(&["exec", "cancel", &long]).await;
    assert_eq!(code, 0);
    let (code, e) = alice.cli_json(&["exec", "wait", &long]).await;
    assert_eq!(code, 1);
    check_cancelled(&e, &a);
    assert!(containers(&a).is_empty());
    std::fs::remove_file(volume.join("long-started")).unwrap();
    stack.stop_flight().await;
    stack.start_flight();
    // The agent is back and runs plans: a new execution completes.
    let quick = format!(
        "id: quick\nnamespace: {ns}\nsystem: em\ntasks:\n\
         - id: ls\n  type: files.list\n"
    );
    let q = start(&alice, &dir, &ns, "quick", &quick).await;
    let (code, done) = alice.cli_json(&["exec", "wait", &q]).await;
    assert_eq!(code, 0, "{done:#}");
    let (_, after) = alice.get(&format!("/api/v1/executions/{long}")).await;
    assert_eq!(after, e, "the cancelled execution is as it was");
    assert!(
        !volume.join("long-started").exists(),
        "its pod did not run again"
    );
    assert!(
        !volume.join("long-after").exists(),
        "nor did the task after it"
    );
    assert!(containers(&a).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_sent_while_the_agent_is_down_stops_the_pod_it_takes_up() {
    let mut stack = Stack::start().await;
    let a = unique("ta");
    let _cleanup = DockerCleanup {
        tenants: vec![a.clone()],
        images: vec![],
    };
    let alice = stack.user(&a).await;
    let ns = unique("ns");
    let dir = stack.dir.path().to_path_buf();
    let volume = stack.volume(&a, &format!("{a}-pvc"));
    let id = start(&alice, &dir, &ns, "down", &long_then_marker(&ns, "down")).await;
    appears(&volume.join("down-started")).await;
    // The agent goes down as a crash would: its pod runs on.
    stack.stop_flight().await;
    assert_eq!(containers(&a).len(), 1);
    let (code, c) = alice.cli_json(&["exec", "cancel", &id]).await;
    assert_eq!(code, 0, "{c:#}");
    assert_eq!(c["state"], "CANCELLING", "{c:#}");
    // Back, the agent takes its pod up again, then hears of the cancel and stops it.
    stack.start_flight();
    let (code, e) = alice.cli_json(&["exec", "wait", &id]).await;
    assert_eq!(code, 1, "{e:#}");
    check_cancelled(&e, &a);
    assert_eq!(e["tasks"][1]["started_at"], Value::Null, "never ran: {e:#}");
    assert!(containers(&a).is_empty(), "{:?}", containers(&a));
    assert!(!volume.join("down-after").exists());
}
