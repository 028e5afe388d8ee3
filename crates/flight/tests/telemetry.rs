//! The onboard telemetry service (`docs/telemetry.md`) against a real flight agent on a
//! simulated mission clock: a client written from Clustergate-2's reference
//! (`telemetry/cg2_telemetry_client.py`, Python with `requests`, as CG2's own examples are)
//! checks every endpoint, its bounds and its errors; the history and the element set survive a
//! restart; and a pod on the real Docker Engine reads the service at its documented hostname,
//! and reaches nothing else of the host.
//!
//! Needs `python3` with `requests` (installed by `.ci/run`), the Docker Engine and `iptables`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use wire::{ImageRef, OnFailure, PlanTask, TaskKind};

use flight::{Agent, ClockConfig, Outgoing};

mod common;
use common::{Cleanup, agent_config, seed_bases};

/// The mission starts here, at the element set's epoch.
const START: &str = "2026-12-03T00:00:00Z";

/// A sun-synchronous orbit at 550 km whose epoch is [`START`].
fn elements() -> wire::Elements {
    let at = orbit::Epoch::parse_iso8601(START).unwrap();
    let text = orbit::sun_synchronous_tle(at, 550.0, 0.0);
    orbit::elements_of(&orbit::parse_tle_text(&text).unwrap()[0])
}

/// An agent on `dir`'s state, its mission clock from [`START`] at `scale`.
async fn agent(dir: &Path, scale: f64) -> (Agent, mpsc::Receiver<Outgoing>) {
    let (tx, outbox) = mpsc::channel(4096);
    let start = orbit::Epoch::parse_iso8601(START).unwrap().unix_millis() as u64;
    let config = agent_config(dir, ClockConfig::simulated(start, scale).unwrap());
    let agent = Agent::connect(config, tx)
        .await
        .expect("an agent on the Docker Engine");
    (agent, outbox)
}

/// Serves the agent's telemetry on a free loopback port.
async fn serve(agent: &Agent) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    agent.telemetry().serve(listener).await;
    addr
}

/// Waits (up to 60 s) until `ready`.
async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: never");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET path` over HTTP/1.0: the status line and the body.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    split_http(&String::from_utf8(answer).unwrap())
}

/// An HTTP answer as its status line and its body.
fn split_http(answer: &str) -> (String, String) {
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, body.to_string())
}

/// The data of a wrapped JSON answer.
async fn data(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = get(addr, path).await;
    assert!(status.contains(" 200 "), "{path}: {status} {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["success"], true, "{v}");
    v["data"].clone()
}

fn pictures(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("state/telemetry/images"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_written_from_the_reference_checks_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    // Ten mission minutes a second: a picture every second, a sample every 1/60 s.
    let (agent, _outbox) = agent(dir.path(), 600.0).await;
    agent.telemetry().offer_elements(&elements());
    let addr = serve(&agent).await;
    until("a history of 40 samples and 3 pictures", || {
        agent.telemetry().sample_count() >= 40 && pictures(dir.path()) >= 3
    })
    .await;
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/telemetry/cg2_telemetry_client.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .env("TM_BASE_URL", format!("http://{addr}"))
        .output()
        .await
        .expect("python3 (with requests) runs the client");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("all telemetry checks passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_history_and_the_element_set_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (first, outbox) = agent(dir.path(), 600.0).await;
    first.telemetry().offer_elements(&elements());
    until("20 samples", || first.telemetry().sample_count() >= 20).await;
    let addr = serve(&first).await;
    let before = data(addr, "/api/telemetry/stats").await;
    drop((first, outbox));
    // A sample being written when the agent went is finished or torn; either is fine.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (again, _outbox) = agent(dir.path(), 600.0).await;
    let addr = serve(&again).await;
    let after = data(addr, "/api/telemetry/stats").await;
    assert_eq!(after["earliest_timestamp"], before["earliest_timestamp"]);
    assert!(
        after["total_records"].as_u64() >= before["total_records"].as_u64(),
        "{before} {after}"
    );
    // The element set was kept: no one offered it again, and sampling goes on from where the
    // mission clock is now.
    let (status, tle) = get(addr, "/api/telemetry/tle").await;
    assert!(status.contains(" 200 "), "{status} {tle}");
    assert!(tle.contains(&elements().line2), "{tle}");
    let grown = after["total_records"].as_u64().unwrap() + 60;
    until("more samples after the restart", || {
        again.telemetry().sample_count() as u64 * 6 >= grown
    })
    .await;
    let later = data(addr, "/api/telemetry/stats").await;
    assert_eq!(later["earliest_timestamp"], before["earliest_timestamp"]);
    assert!(later["latest_timestamp"].as_str() > after["latest_timestamp"].as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_reads_the_service_by_hostname_and_nothing_else_of_the_host() {
    seed_bases().await;
    let dir = tempfile::tempdir().unwrap();
    let (agent, _outbox) = agent(dir.path(), 60.0).await;
    agent.telemetry().offer_elements(&elements());
    let addr = serve(&agent).await;
    until("3 samples", || agent.telemetry().sample_count() >= 3).await;
    // Something else of the host, listening on every address: a pod must not reach it.
    let decoy = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let decoy_port = decoy.local_addr().unwrap().port();
    let decoy_task = tokio::spawn(async move {
        while let Ok((mut s, _)) = decoy.accept().await {
            let _ = s.write_all(b"decoy\n").await;
        }
    });
    let tenant = format!("t{:010x}", rand::random::<u64>() >> 24);
    let _cleanup = Cleanup(tenant.clone());
    // busybox's wget crashes on glibc's NSS in a static binary; its nc reads /etc/hosts. A
    // client retries an empty answer, as any client of a service on a busy computer would.
    let script = format!(
        "req1() {{ printf 'GET %s HTTP/1.0\\r\\nHost: satellite-telemetry.dphi-tm\\r\\n\\r\\n' \"$2\" \
           | nc -w 10 \"$1\" 80; }}; \
         req() {{ for i in 1 2 3; do req1 \"$1\" \"$2\" > /tmp/answer; [ -s /tmp/answer ] && break; sleep 1; done; \
           cat /tmp/answer; }}; \
         req satellite-telemetry.dphi-tm '/api/telemetry/latest?data_type=position' > /data/latest.http; \
         req satellite-telemetry.dphi-tm /api/telemetry/tle > /data/tle.http; \
         req telemetry /health > /data/health.http; \
         nc -w 3 satellite-telemetry.dphi-tm {decoy_port} < /dev/null > /data/decoy.out 2>&1; \
         echo $? > /data/decoy.rc"
    );
    let task = PlanTask {
        id: "read".into(),
        on_failure: OnFailure::Stop,
        trigger: None,
        kind: TaskKind::PodRun {
            pod_name: "reader".into(),
            image: ImageRef {
                name: "busybox".into(),
                tag: "latest".into(),
            },
            command: Some(vec!["/bin/sh".into(), "-c".into(), script]),
            args: None,
            env: vec![],
            volume: "pvc".into(),
            max_duration_ms: Some(120_000),
            scheduled_ms: None,
            detached: false,
            node: None,
            merged: false,
            ports: vec![],
        },
    };
    let execution = format!("{:032x}", rand::random::<u128>());
    let r = agent.run_task(&tenant, &execution, 0, &task).await;
    decoy_task.abort();
    assert!(r.succeeded(), "{r:?}");
    let volume = dir.path().join("volumes").join(&tenant).join("pvc");
    let read = |name: &str| std::fs::read_to_string(volume.join(name)).unwrap();

    // What the pod read is the service's: the same record, by id, as the agent serves it.
    let (status, body) = split_http(&read("latest.http"));
    assert!(status.contains(" 200 "), "{status} {body}");
    let latest: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(latest["success"], true, "{latest}");
    assert_eq!(latest["count"], 1, "{latest}");
    let record = &latest["data"][0];
    assert_eq!(record["data_type"], "position", "{record}");
    let served = data(addr, "/api/telemetry?data_type=position&limit=1000").await;
    let same = served
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == record["id"])
        .unwrap_or_else(|| panic!("{record} is not among the service's positions"));
    assert_eq!(same, record);
    let (status, tle) = split_http(&read("tle.http"));
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(tle, get(addr, "/api/telemetry/tle").await.1);
    // The short alias names the same service.
    let (_, health) = split_http(&read("health.http"));
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "healthy", "{health}");

    // Nothing else of the host answers, even at the same address.
    assert!(
        !read("decoy.out").contains("decoy"),
        "{}",
        read("decoy.out")
    );
    assert_ne!(read("decoy.rc").trim(), "0");
}
