//! The crash test: ground and flight agent as real processes over real UDP (through the link
//! emulator), killed with SIGKILL at seeded random points, 100 times, while executions uplink a
//! folder, build an image onboard, run it and bring its result down. Afterwards every execution
//! must have reached its true final state with every task event and downlinked file recorded,
//! every pod must have run exactly once, and every stored object must hash to its name.
//!
//! The seed is printed; `ORBITDOCK_CRASH_SEED=N` replays the same kill points (the processes'
//! own timing still varies from run to run, so a replay retraces the schedule, not every
//! interleaving).

#[path = "../support/mod.rs"]
mod support;

mod procs;

use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::{DockerCleanup, gcc_static, unique};

use procs::{Layout, Processes, Role, kill9, role_name};

/// SIGKILLs in all, shared between ground and flight.
const KILLS: usize = 100;
/// Executions started during the kills, one every `KILLS / EXECUTIONS` kills: often enough that
/// most kills land while one runs.
const EXECUTIONS: usize = 10;
/// A victim lives this long (milliseconds, drawn uniformly) before its kill...
const LIFE_MS: (u64, u64) = (150, 2200);
/// ...or, one time in `PROGRESS_ONE_IN`, until the flight agent logs its next step, plus a
/// little (up to `PROGRESS_WAIT`).
const PROGRESS_ONE_IN: u32 = 3;
const PROGRESS_WAIT: Duration = Duration::from_secs(4);
/// How long a killed process stays down (milliseconds, drawn uniformly).
const DOWN_MS: (u64, u64) = (0, 400);
/// A bound on the wait for the executions to end once the kills are over (not a speed target:
/// on an idle machine they end within seconds).
const SETTLE: Duration = Duration::from_secs(300);

/// Appends a line to /data/runs.txt (so a second run is visible), then writes
/// /data/out/result.txt: the number of runs so far, then the input (argv[1]) reversed.
const APP: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    static char buf[1 << 20];
    if (argc < 2) { fputs("usage: app INPUT\n", stderr); return 9; }
    int fd = open("/data/runs.txt", O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) { perror("/data/runs.txt"); return 2; }
    if (write(fd, "run\n", 4) != 4) { perror("write"); return 3; }
    fsync(fd);
    close(fd);
    FILE *r = fopen("/data/runs.txt", "rb");
    int runs = 0, c;
    while ((c = fgetc(r)) != EOF) if (c == '\n') runs++;
    fclose(r);
    FILE *in = fopen(argv[1], "rb");
    if (!in) { perror(argv[1]); return 4; }
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    usleep(1500000); /* a window for a kill while the pod runs */
    mkdir("/data/out", 0755);
    FILE *out = fopen("/data/out/result.tmp", "wb");
    if (!out) { perror("/data/out/result.tmp"); return 5; }
    fprintf(out, "runs=%d\n", runs);
    for (size_t i = 0; i < n; i++) fputc(buf[n - 1 - i], out);
    fclose(out);
    rename("/data/out/result.tmp", "/data/out/result.txt");
    printf("result written after %d run(s)\n", runs);
    return 0;
}
"#;

const DOCKERFILE: &str =
    "FROM gcr.io/distroless/static-debian12\nCOPY app /app\nENTRYPOINT [\"/app\"]\n";

fn expected_result(input: &[u8]) -> Vec<u8> {
    let mut out = b"runs=1\n".to_vec();
    out.extend(input.iter().rev());
    out
}

fn operation(ns: &str, i: usize) -> String {
    format!(
        "id: crash-{i}\nnamespace: {ns}\nsystem: em\ntasks:\n\
         - id: up\n  type: uplink\n  source: [/app, /Dockerfile, /e{i}]\n  volume: v{i}\n\
         - id: build\n  type: docker.build\n  dockerfile: Dockerfile\n  context: .\n  image: {{name: app{i}, tag: v1}}\n  volume: v{i}\n  max_duration: 120\n\
         - id: run\n  type: pod.run\n  image: {{name: app{i}, tag: v1}}\n  args: [/data/e{i}/in/input.txt]\n  volume: v{i}\n  max_duration: 120\n\
         - id: down\n  type: downlink\n  source: [out/result.txt]\n  destination: /results/e{i}\n  volume: v{i}\n"
    )
}

/// The ground's API, called again while the ground is down (being restarted).
struct Api {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> (u16, Vec<u8>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let req = self
                .http
                .request(method.clone(), format!("{}{}", self.url, path))
                .bearer_auth(&self.token)
                .timeout(Duration::from_secs(30));
            match body(req).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    if let Ok(bytes) = r.bytes().await {
                        return (status, bytes.to_vec());
                    }
                }
                Err(e) if Instant::now() > deadline => {
                    panic!("{path}: the ground answers not: {e}")
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let (status, bytes) = self.call(method, path, |r| r.json(&body)).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (status, bytes) = self.call(reqwest::Method::GET, path, |r| r).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn tar_of(entries: &[(String, Vec<u8>, u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, path, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Every object under `root` (`<aa>/<hex>`) hashes to its name; returns how many there are.
fn check_objects(root: &Path, what: &str) -> usize {
    let mut count = 0;
    let Ok(dirs) = std::fs::read_dir(root) else {
        return 0;
    };
    for dir in dirs {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if name.len() != 64 || !name.bytes().all(|c| c.is_ascii_hexdigit()) {
                continue; // a temporary of a transfer in progress
            }
            let bytes = std::fs::read(&f).unwrap();
            assert_eq!(
                wire::Digest::of(&bytes).hex(),
                name,
                "{what}: the object {} is corrupt",
                f.display()
            );
            count += 1;
        }
    }
    count
}

/// The length of the flight agent's log, and whether it grew by a line that marks progress.
fn flight_progress(layout: &Layout, since: u64) -> bool {
    let text = std::fs::read(layout.log("flight")).unwrap_or_default();
    let new = &text[(since as usize).min(text.len())..];
    let new = String::from_utf8_lossy(new);
    [
        "accepted a plan",
        "running a plan",
        "task succeeded",
        "task failed",
        "plan finished",
    ]
    .iter()
    .any(|m| new.contains(m))
}

fn log_len(layout: &Layout, name: &str) -> u64 {
    std::fs::metadata(layout.log(name))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ground_and_flight_survive_a_hundred_sigkills() {
    let seed: u64 = match std::env::var("ORBITDOCK_CRASH_SEED") {
        Ok(s) => s.trim().parse().expect("ORBITDOCK_CRASH_SEED is a number"),
        Err(_) => rand::random(),
    };
    eprintln!("crash seed: {seed} (replay with ORBITDOCK_CRASH_SEED={seed})");
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);

    support::seed_bases().await;
    let tenant = unique("crash");
    let _cleanup = DockerCleanup {
        tenants: vec![tenant.clone()],
        images: vec![],
    };
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let password = format!("pw-{tenant}");
    let mut procs = Processes {
        link: Some(layout.spawn_link()),
        ground: Some(layout.spawn(Role::Ground, &tenant, &password)),
        flight: Some(layout.spawn(Role::Flight, &tenant, &password)),
    };

    // Log in (retried while the ground comes up).
    let http = support::http_client();
    let mut api = Api {
        url: layout.url(),
        token: String::new(),
        http: http.clone(),
    };
    let (status, login) = api
        .json(
            reqwest::Method::POST,
            "/api/v1/login",
            json!({"user": tenant, "password": password}),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    api.token = login["token"].as_str().unwrap().to_string();

    // The payload: one static binary, its Dockerfile and an input per execution.
    let app = dir.path().join("app");
    gcc_static(APP, &app);
    let mut entries = vec![
        ("app".to_string(), std::fs::read(&app).unwrap(), 0o755),
        (
            "Dockerfile".to_string(),
            DOCKERFILE.as_bytes().to_vec(),
            0o644,
        ),
    ];
    let inputs: Vec<Vec<u8>> = (0..EXECUTIONS)
        .map(|_| (0..64 * 1024).map(|_| rng.random::<u8>()).collect())
        .collect();
    for (i, input) in inputs.iter().enumerate() {
        entries.push((format!("e{i}/in/input.txt"), input.clone(), 0o644));
    }
    let ns = unique("ns");
    let (status, body) = api
        .json(
            reqwest::Method::POST,
            "/api/v1/namespaces",
            json!({"name": ns}),
        )
        .await;
    assert!(status == 201 || status == 409, "{status} {body}");
    let tar = tar_of(&entries);
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/namespaces/{ns}/files"),
            |r| {
                r.header("content-type", "application/x-tar")
                    .body(tar.clone())
            },
        )
        .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    for i in 0..EXECUTIONS {
        let yaml = operation(&ns, i);
        let (status, body) = api
            .call(reqwest::Method::POST, "/api/v1/operations", |r| {
                r.header("content-type", "application/yaml")
                    .body(yaml.clone())
            })
            .await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    }

    // The kills. Executions start along the way; each API call completes before the next kill.
    let mut executions: Vec<String> = Vec::new();
    let mut kills = [0usize; 2];
    let kill_phase = Instant::now();
    for k in 0..KILLS {
        if executions.len() < EXECUTIONS && k == executions.len() * (KILLS / EXECUTIONS) {
            let i = executions.len();
            let (status, exec) = api
                .json(
                    reqwest::Method::POST,
                    "/api/v1/executions",
                    json!({"namespace": ns, "operation": format!("crash-{i}"), "system": "em"}),
                )
                .await;
            assert_eq!(status, 201, "{exec}");
            let id = exec["id"].as_str().unwrap().to_string();
            eprintln!("[{k:3}] started execution {i}: {id}");
            executions.push(id);
        }
        let victim = if rng.random_bool(0.5) {
            Role::Ground
        } else {
            Role::Flight
        };
        let life = Duration::from_millis(rng.random_range(LIFE_MS.0..=LIFE_MS.1));
        let on_progress = rng.random_ratio(1, PROGRESS_ONE_IN);
        let after_progress = Duration::from_millis(rng.random_range(0..=150));
        if on_progress {
            let since = log_len(&layout, "flight");
            let until = Instant::now() + PROGRESS_WAIT;
            while Instant::now() < until && !flight_progress(&layout, since) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(after_progress).await;
        } else {
            tokio::time::sleep(life).await;
        }
        let child = procs.slot(victim).as_mut().unwrap();
        kill9(child);
        kills[victim as usize] += 1;
        eprintln!(
            "[{k:3}] SIGKILL {} ({})",
            role_name(victim),
            if on_progress {
                format!("{after_progress:?} after progress")
            } else {
                format!("after {life:?}")
            }
        );
        tokio::time::sleep(Duration::from_millis(
            rng.random_range(DOWN_MS.0..=DOWN_MS.1),
        ))
        .await;
        *procs.slot(victim) = Some(layout.spawn(victim, &tenant, &password));
    }
    let kill_time = kill_phase.elapsed();
    eprintln!(
        "{KILLS} kills (ground {}, flight {}) in {kill_time:.1?}",
        kills[Role::Ground as usize],
        kills[Role::Flight as usize]
    );

    // Every execution reaches its final state.
    let settle = Instant::now();
    let mut finals = Vec::new();
    for id in &executions {
        loop {
            let (status, exec) = api.get(&format!("/api/v1/executions/{id}")).await;
            assert_eq!(status, 200, "{exec}");
            let state = exec["state"].as_str().unwrap_or("").to_string();
            if state == "COMPLETED" || state == "FAILED" {
                finals.push(exec);
                break;
            }
            if settle.elapsed() > SETTLE {
                panic!(
                    "execution {id} is still {state} {SETTLE:?} after the last kill: {exec:#}\n\
                     --- ground ---\n{}\n--- flight ---\n{}",
                    layout.log_tail("ground", 40),
                    layout.log_tail("flight", 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    eprintln!(
        "executions ended {:.1?} after the last kill",
        settle.elapsed()
    );

    for (i, exec) in finals.iter().enumerate() {
        let context = || {
            format!(
                "execution {i} (seed {seed}): {exec:#}\n--- ground ---\n{}\n--- flight ---\n{}",
                layout.log_tail("ground", 30),
                layout.log_tail("flight", 30)
            )
        };
        assert_eq!(exec["state"], "COMPLETED", "{}", context());
        for t in exec["tasks"].as_array().unwrap() {
            assert_eq!(t["state"], "SUCCESS", "task {}: {}", t["id"], context());
            let states: Vec<&str> = t["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|h| h["state"].as_str())
                .collect();
            assert!(
                states.contains(&"RUNNING") && states.last() == Some(&"SUCCESS"),
                "task {}: history {states:?}: {}",
                t["id"],
                context()
            );
            assert!(
                t["finished_at"].is_string(),
                "task {}: {}",
                t["id"],
                context()
            );
        }

        // Each pod ran exactly once: one line in the volume's run counter.
        let volume = layout.flight_volumes().join(&tenant).join(format!("v{i}"));
        let runs = std::fs::read_to_string(volume.join("runs.txt")).unwrap_or_default();
        assert_eq!(
            runs.lines().count(),
            1,
            "the pod of execution {i} ran {} times: {}",
            runs.lines().count(),
            context()
        );

        // The downlinked file is in the namespace, byte-identical to the one onboard.
        let want = expected_result(&inputs[i]);
        assert_eq!(std::fs::read(volume.join("out/result.txt")).unwrap(), want);
        let (status, got) = api
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/namespaces/{ns}/files/results/e{i}/out/result.txt"),
                |r| r,
            )
            .await;
        assert_eq!(status, 200, "{}", context());
        assert!(
            got == want,
            "the downlinked result of execution {i} differs"
        );
    }

    // No object is corrupt, on either side.
    let ground_objects = check_objects(&layout.ground_dir().join("blobs/sha256"), "ground");
    let flight_objects = check_objects(&layout.flight_state().join("objects/sha256"), "flight");
    assert!(ground_objects > 0 && flight_objects > 0);

    // No pod is left behind.
    let left = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=org.orbitdock.tenant={tenant}"),
        ])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "containers left behind");

    // No process panicked on the way.
    for name in ["ground", "flight", "link"] {
        let log = std::fs::read_to_string(layout.log(name)).unwrap_or_default();
        assert!(
            !log.contains("panicked"),
            "orbitdock {name} panicked: {}",
            layout.log_tail(name, 40)
        );
    }

    // What the kills hit, as the flight agent's log tells it.
    let flight_log = std::fs::read_to_string(layout.log("flight")).unwrap_or_default();
    for what in [
        "resuming unfinished plans",
        "taking up a pod left by a restart",
        "a pod ended before the restart",
        "a plan came again",
    ] {
        eprintln!(
            "flight log: {:3} x {what}",
            flight_log.matches(what).count()
        );
    }

    for role in [Role::Ground, Role::Flight] {
        if let Some(c) = procs.slot(role).as_mut() {
            procs::stop(c);
        }
        *procs.slot(role) = None;
    }
    eprintln!(
        "crash seed {seed}: {KILLS} SIGKILLs, {EXECUTIONS} executions COMPLETED, each pod ran once, \
         {ground_objects} ground and {flight_objects} flight objects intact; {:.1?} in all",
        started.elapsed()
    );
}
