//! Link failover between two ground replicas on one PostgreSQL database (docs/scale-out.md):
//! real `orbitdock ground` processes `a` and `b` sharing the database, an S3 bucket for blobs
//! (each with a data directory of its own) and the link state directory, a link emulator at
//! 2 Mbit/s up, and a flight agent.
//! An execution started through `b` (which does not hold the link: its plan goes through the
//! database to `a`) uplinks a 6 MiB file; in the middle of it `a`, holding the link, is killed
//! with SIGKILL. `b` takes the lease over, resumes the session from the shared state, and the
//! transfer completes with no payload byte re-sent: none received twice by the flight agent,
//! none sent again by `b` (the chunks past `a`'s last saved mark, which `a` may or may not have
//! sent, are counted apart and printed); the execution completes. `b` fetches the object it
//! resumes from the bucket. It prints the takeover time and the bytes sent by each.
//!
//! Needs PostgreSQL (`ORBITDOCK_TEST_POSTGRES_URL`, as `.ci/run` sets it); passes over itself
//! without one unless `ORBITDOCK_REQUIRE_POSTGRES=1`. Without an S3 server
//! (`ORBITDOCK_TEST_S3_URL`; required with `ORBITDOCK_REQUIRE_S3=1`) the replicas share one data
//! directory instead.

#[path = "support/mod.rs"]
mod support;

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../../ground/tests/common/postgres.rs"]
mod postgres;

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../../ground/tests/common/s3.rs"]
mod s3;

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{BIN, free_udp, unique};

/// The uplink's size: many seconds at [`UP_BPS`].
const FILE_BYTES: usize = 6 << 20;
/// The emulator's uplink rate, bit/s.
const UP_BPS: u64 = 2_000_000;
/// The flight agent has received this much of the file when the holder is killed.
const KILL_AFTER: u64 = 1_500_000;
/// Bounds on waits that mean something is broken (not speed targets).
const BOUND: Duration = Duration::from_secs(180);

struct Proc {
    child: Option<Child>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            kill9(c);
        }
    }
}

fn kill9(child: &mut Child) {
    // SAFETY: signalling our own child by its pid; it has not been reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let _ = child.wait();
}

struct Setup {
    root: PathBuf,
    database: String,
    /// The bucket the replicas keep blobs in, each with a data directory of its own; `None`:
    /// they share one data directory.
    blobs: Option<ground::S3Settings>,
    ground_udp: SocketAddr,
    link_ground: SocketAddr,
    link_flight: SocketAddr,
    flight_udp: SocketAddr,
}

impl Setup {
    fn log(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.log"))
    }

    fn start(&self, mut cmd: Command, name: &'static str, filter: &str) -> Proc {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(name))
            .unwrap();
        let child = cmd
            .env("ORBITDOCK_LOG", filter)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start orbitdock {name}: {e}"));
        Proc { child: Some(child) }
    }

    fn ground(&self, replica: &'static str, http: SocketAddr, users: &str) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.arg("ground");
        let data_dir = match &self.blobs {
            Some(s3) => {
                cmd.args(["--blob-url", &s3.url])
                    .args(["--s3-endpoint", s3.endpoint.as_deref().unwrap()])
                    .env("AWS_REGION", s3.region.as_deref().unwrap())
                    .env("AWS_ACCESS_KEY_ID", s3.access_key_id.as_deref().unwrap())
                    .env(
                        "AWS_SECRET_ACCESS_KEY",
                        s3.secret_access_key.as_deref().unwrap(),
                    );
                self.root.join(format!("ground-{replica}"))
            }
            None => self.root.join("ground"),
        };
        cmd.arg("--data-dir")
            .arg(data_dir)
            .arg("--link-state-dir")
            .arg(self.root.join("link-state"))
            .arg("--replica")
            .arg(replica)
            .arg("--http")
            .arg(http.to_string())
            .arg("--system")
            .arg(format!("em={},{}", self.ground_udp, self.link_ground))
            .arg("--keys")
            .arg(self.root.join("keys"))
            .env("ORBITDOCK_DATABASE_URL", &self.database)
            .env("ORBITDOCK_USERS", users);
        self.start(cmd, replica, "info,link::stats=debug")
    }

    fn flight(&self) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.arg("flight")
            .arg("--system")
            .arg("em")
            .arg("--state-dir")
            .arg(self.root.join("flight/state"))
            .arg("--volumes-dir")
            .arg(self.root.join("flight/volumes"))
            .arg("--udp")
            .arg(self.flight_udp.to_string())
            .arg("--link")
            .arg(self.link_flight.to_string())
            .arg("--key-file")
            .arg(self.root.join("keys/em.key"))
            .arg("--plan-public-key")
            .arg(self.root.join("keys/plan.key.pub"));
        self.start(cmd, "flight", "info,link::stats=debug")
    }

    fn link(&self) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(["link", "--delay-ms", "5", "--seed", "1"])
            .args(["--up-bps", &UP_BPS.to_string()])
            // Room for everything in flight: nothing is dropped, so nothing is sent twice for a
            // loss, and a byte sent twice can only be the takeover's.
            .args(["--queue-bytes", &(64u64 << 20).to_string()])
            .args(["--queue-packets", "1000000"])
            .arg("--ground-side")
            .arg(self.link_ground.to_string())
            .arg("--ground")
            .arg(self.ground_udp.to_string())
            .arg("--flight-side")
            .arg(self.link_flight.to_string())
            .arg("--flight")
            .arg(self.flight_udp.to_string());
        self.start(cmd, "link", "info")
    }

    /// The last value of `field` in the `link stats` lines of `name`'s log (0 before any).
    fn stat(&self, name: &str, field: &str) -> u64 {
        last_stat(
            &std::fs::read_to_string(self.log(name)).unwrap_or_default(),
            field,
        )
    }

    fn tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.log(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// The last value of `field=N` on a `link stats` line of `log`.
fn last_stat(log: &str, field: &str) -> u64 {
    let key = format!("{field}=");
    log.lines()
        .rev()
        .filter(|l| l.contains("link stats"))
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(&key))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

struct Api {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn login(http: SocketAddr, user: &str, password: &str) -> Api {
        let mut api = Api {
            url: format!("http://{http}"),
            token: String::new(),
            http: support::http_client(),
        };
        let deadline = Instant::now() + BOUND;
        loop {
            let r = api
                .http
                .post(format!("{}/api/v1/login", api.url))
                .json(&json!({"user": user, "password": password}))
                .send()
                .await;
            if let Ok(r) = r
                && r.status() == 200
            {
                let body: Value = r.json().await.unwrap();
                api.token = body["token"].as_str().unwrap().to_string();
                return api;
            }
            assert!(
                Instant::now() < deadline,
                "{http}: the ground never came up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> (u16, Value) {
        let req = self
            .http
            .request(method, format!("{}{}", self.url, path))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(60));
        let r = body(req).send().await.unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, |r| r).await
    }

    /// The replica holding em's link lease, and the lease's generation, while it is live.
    async fn link_owner(&self) -> Option<(String, u64)> {
        let (status, sys) = self.get("/api/v1/systems/em").await;
        assert_eq!(status, 200, "{sys}");
        let link = &sys["link"];
        (link["live"] == true).then(|| {
            (
                link["replica"].as_str().unwrap().to_string(),
                link["generation"].as_u64().unwrap(),
            )
        })
    }
}

fn tar_of(path: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, path, data).unwrap();
    b.into_inner().unwrap()
}

fn keygen(root: &Path) {
    for args in [
        vec![
            "keygen".to_string(),
            root.join("keys/em.key").display().to_string(),
        ],
        vec![
            "keygen".to_string(),
            "--plan".to_string(),
            root.join("keys/plan.key").display().to_string(),
        ],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success(), "orbitdock {args:?} failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_takes_the_link_over_mid_uplink_with_nothing_resent() {
    let Some(server) = postgres::server_url() else {
        eprintln!("no ORBITDOCK_TEST_POSTGRES_URL: passing over the failover test");
        return;
    };
    let database = postgres::TestDatabase::postgres(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("keys")).unwrap();
    keygen(&root);
    let blobs = s3::settings(&s3::fresh_prefix());
    let setup = Setup {
        root: root.clone(),
        database: database.url().unwrap().to_string(),
        blobs,
        ground_udp: free_udp(),
        link_ground: free_udp(),
        link_flight: free_udp(),
        flight_udp: free_udp(),
    };
    let (http_a, http_b) = (
        ground::free_http_address().unwrap(),
        ground::free_http_address().unwrap(),
    );
    let tenant = unique("fo");
    let users = format!("operator ops:ops-pw\n{tenant}:pw");

    let _link = setup.link();
    let _flight = setup.flight();
    let mut a = setup.ground("a", http_a, &users);
    let ops_a = Api::login(http_a, "ops", "ops-pw").await;
    // `a` came up first and took the link at its start.
    assert_eq!(ops_a.link_owner().await.map(|o| o.0).as_deref(), Some("a"));
    let _b = setup.ground("b", http_b, &users);
    let ops_b = Api::login(http_b, "ops", "ops-pw").await;
    let (_, generation_a) = ops_b.link_owner().await.expect("a holds the lease");
    let user = Api::login(http_b, &tenant, "pw").await;
    // The file goes in through `a`: with S3, `b`'s own cache lacks it, and `b` fetches it from
    // the bucket when it takes the transfer over.
    let user_a = Api::login(http_a, &tenant, "pw").await;

    // A file of random bytes (incompressible, so it goes as itself), uplinked by an execution
    // started through `b`.
    let data: Vec<u8> = (0..FILE_BYTES).map(|_| rand::random::<u8>()).collect();
    let ns = unique("ns");
    let (status, body) = user_a
        .send(reqwest::Method::POST, "/api/v1/namespaces", |r| {
            r.json(&json!({"name": ns}))
        })
        .await;
    assert_eq!(status, 201, "{body}");
    let tar = tar_of("big.bin", &data);
    let (status, body) = user_a
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/namespaces/{ns}/files"),
            |r| r.header("content-type", "application/x-tar").body(tar),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let yaml = format!(
        "id: up\nnamespace: {ns}\nsystem: em\ntasks:\n\
         - id: up\n  type: uplink\n  source: [/big.bin]\n  volume: v\n"
    );
    let (status, body) = user
        .send(reqwest::Method::POST, "/api/v1/operations", |r| {
            r.header("content-type", "application/yaml").body(yaml)
        })
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, exec) = user
        .send(reqwest::Method::POST, "/api/v1/executions", |r| {
            r.json(&json!({"namespace": ns, "operation": "up", "system": "em"}))
        })
        .await;
    assert_eq!(status, 201, "{exec}");
    let id = exec["id"].as_str().unwrap().to_string();

    // Killed in the middle of the uplink.
    let deadline = Instant::now() + BOUND;
    while setup.stat("flight", "payload_received") < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "the uplink never got going\n--- a ---\n{}\n--- flight ---\n{}",
            setup.tail("a"),
            setup.tail("flight")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resent_by_a = setup.stat("a", "payload_resent");
    kill9(a.child.as_mut().unwrap());
    a.child = None;
    let killed = Instant::now();
    let received_at_kill = setup.stat("flight", "payload_received");

    // `b` takes the lease over (a later generation) and runs the link.
    let takeover = loop {
        if let Some((owner, generation)) = ops_b.link_owner().await
            && owner == "b"
        {
            assert!(
                generation > generation_a,
                "{generation} after {generation_a}"
            );
            let log = std::fs::read_to_string(setup.log("b")).unwrap();
            if log.contains("system link up") {
                break killed.elapsed();
            }
        }
        assert!(
            killed.elapsed() < BOUND,
            "b never took the link over\n--- b ---\n{}",
            setup.tail("b")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // The execution completes through `b`.
    let exec = loop {
        let (status, exec) = user.get(&format!("/api/v1/executions/{id}")).await;
        assert_eq!(status, 200, "{exec}");
        let state = exec["state"].as_str().unwrap_or("").to_string();
        if state == "COMPLETED" || state == "FAILED" {
            break exec;
        }
        assert!(
            killed.elapsed() < BOUND,
            "the execution is still {state}: {exec:#}\n--- b ---\n{}\n--- flight ---\n{}",
            setup.tail("b"),
            setup.tail("flight")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(exec["state"], "COMPLETED", "{exec:#}");
    let landed = find(&root.join("flight/volumes"), "big.bin");
    assert_eq!(landed.len(), 1, "{landed:?}");
    assert!(
        std::fs::read(&landed[0]).unwrap() == data,
        "the file onboard differs from the one uplinked"
    );

    // Let the last counters be logged.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resent_by_b = setup.stat("b", "payload_resent");
    let unsure_by_b = setup.stat("b", "payload_unsure");
    let sent_by_b = setup.stat("b", "payload_sent");
    let duplicate = setup.stat("flight", "payload_duplicate");
    let received = setup.stat("flight", "payload_received");
    eprintln!(
        "takeover: {:.2} s after the SIGKILL (lease TTL 6 s, renewed every 2 s)",
        takeover.as_secs_f64()
    );
    eprintln!(
        "uplink of {FILE_BYTES} B: {received_at_kill} B received before the kill, {received} B \
         in all; b sent {sent_by_b} B new and {unsure_by_b} B that a may or may not have sent \
         (past its last saved mark); re-sent: {resent_by_a} B by a before the kill, \
         {resent_by_b} B by b after; payload bytes the flight agent received twice: {duplicate}; \
         blobs: {}",
        if setup.blobs.is_some() {
            "S3, a data directory per replica"
        } else {
            "one shared data directory"
        }
    );
    // Nothing the agent held was sent to it again: every byte it received twice would count.
    assert_eq!(
        duplicate, 0,
        "the flight agent received payload bytes twice"
    );
    // Nor did `b` send again anything it knew `a` had sent (nothing is lost on this link).
    assert_eq!(
        resent_by_b,
        0,
        "b re-sent payload bytes\n--- b ---\n{}",
        setup.tail("b")
    );
    // What `a` may not have sent is bounded by its mark's reservation (64 chunks).
    assert!(unsure_by_b <= 64 * 1500, "{unsure_by_b} B");
    // `b` resumed the transfer where the agent's word left it: it sent no more than what the
    // agent lacked at the kill, and the unsure chunks.
    let lacked = FILE_BYTES as u64 - received_at_kill.min(FILE_BYTES as u64);
    assert!(
        sent_by_b <= lacked + 64 * 1500,
        "b sent {sent_by_b} B new when the agent lacked {lacked} B"
    );
    if setup.blobs.is_some() {
        // ...from the object it fetched from the bucket into its own cache.
        let hex = wire::Digest::of(&data).hex();
        let fetched = find(&root.join("ground-b"), &hex);
        assert_eq!(fetched.len(), 1, "b's cache holds the file: {fetched:?}");
    }
}

/// The files named `name` under `dir`.
fn find(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(find(&p, name));
        } else if p.file_name().is_some_and(|n| n == name) {
            out.push(p);
        }
    }
    out
}
