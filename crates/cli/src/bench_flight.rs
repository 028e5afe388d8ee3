//! `orbitdock bench flight`: the flight agent's footprint and speed, measured on this machine
//! with the real processes (ground, link emulator and agent for an always-in-contact system,
//! started from this binary in a temporary folder) and the real Docker Engine.
//!
//! It prints the agent's resident memory and CPU while idle (from `/proc`), and how long a plan
//! with one `pod.run` of `busybox true` takes from `POST /api/v1/executions` to the task's end
//! as the agent reports it, beside `docker run --rm busybox true` (median of several runs):
//! what orbitdock adds over a plain `docker run` for the same container, including the ground's
//! compile, the link and the agent's fsyncs.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::demo::{FlightArgs, Process, spawn, spawn_flight, spawn_link};

/// Runs of each kind whose median is reported.
const RUNS: usize = 5;
/// How long the idle agent is watched.
const IDLE: Duration = Duration::from_secs(10);

pub(crate) async fn run() -> anyhow::Result<ExitCode> {
    let status = flight::catalogue_status()
        .await
        .context("the bench drives the Docker Engine: is dockerd running?")?;
    if status.iter().any(|b| b.digest.is_none()) {
        eprintln!("building stand-in base images…");
        standins::seed_bases(&mut |line| eprintln!("  {line}")).await?;
    }
    let dir = tempfile::tempdir()?;
    let stack = Stack::start(dir.path()).await?;
    let client = reqwest::Client::new();
    let token = stack.login(&client).await?;

    // Warm up: the first run loads what every later one reuses.
    stack.pod_run(&client, &token, 0).await?;

    eprintln!("watching the idle agent for {} s…", IDLE.as_secs());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = stack.flight_pid()?;
    let (cpu0, t0) = (cpu_ticks(pid)?, Instant::now());
    tokio::time::sleep(IDLE).await;
    let (cpu1, elapsed) = (cpu_ticks(pid)?, t0.elapsed());
    let rss_kib = rss_kib(pid)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_pct = (cpu1 - cpu0) as f64 / hz / elapsed.as_secs_f64() * 100.0;

    eprintln!("timing {RUNS} pods through orbitdock and {RUNS} plain docker runs…");
    let mut ours = Vec::new();
    for i in 1..=RUNS {
        ours.push(stack.pod_run(&client, &token, i).await?);
    }
    let mut plain = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let out = tokio::process::Command::new("docker")
            .args(["run", "--rm", "--network", "none", "busybox:latest", "true"])
            .output()
            .await
            .context("running docker")?;
        if !out.status.success() {
            bail!(
                "docker run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        plain.push(t.elapsed().as_secs_f64());
    }
    let (ours_s, plain_s) = (median(&mut ours), median(&mut plain));

    println!("{:<52} {:>12} {:>10}", "measure", "value", "target");
    println!(
        "{:<52} {:>9.1} MB {:>10}",
        "flight agent, idle resident memory (VmRSS)",
        rss_kib as f64 / 1024.0,
        "≤ 25 MB"
    );
    println!(
        "{:<52} {:>10.2} % {:>10}",
        format!("flight agent, idle CPU over {} s", IDLE.as_secs()),
        cpu_pct,
        ""
    );
    println!(
        "{:<52} {:>10.3} s {:>10}",
        "plan to pod done: exec start → pod.run ended (median)", ours_s, ""
    );
    println!(
        "{:<52} {:>10.3} s {:>10}",
        "docker run --rm busybox true (median)", plain_s, ""
    );
    println!(
        "{:<52} {:>11.2}× {:>10}",
        "orbitdock / docker run",
        ours_s / plain_s.max(1e-6),
        "≤ 1.2×"
    );
    drop(stack);
    Ok(ExitCode::SUCCESS)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<u64> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("/proc/{pid}/stat has no field {}", i + 3))
    };
    // Fields 14 and 15 of stat(5), here at 11 and 12.
    Ok(field(11)? + field(12)?)
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc status")
}

/// Ground, link and flight agent of one system `em`, as child processes.
struct Stack {
    url: String,
    children: Vec<Process>,
}

impl Stack {
    async fn start(dir: &Path) -> anyhow::Result<Stack> {
        let keys = dir.join("keys");
        let logs = dir.join("logs");
        for d in [&keys, &logs] {
            std::fs::create_dir_all(d)?;
        }
        crate::roles::write_new_key(&keys.join("em.key"))?;
        crate::roles::write_new_plan_key(&keys.join("plan.key"))?;
        let udp = || -> anyhow::Result<String> { Ok(link::free_udp_address()?.to_string()) };
        let (g_udp, l_g, l_f, f_udp) = (udp()?, udp()?, udp()?, udp()?);
        let http = ground::free_http_address()?;
        let exe = std::env::current_exe()?;
        let p = |x: &Path| x.to_string_lossy().into_owned();
        let users = "bench:bench-password".to_string();
        let children = vec![
            spawn_flight(
                &exe,
                "flight",
                &logs,
                &FlightArgs {
                    system: "em",
                    dir: &dir.join("flight"),
                    udp: &f_udp,
                    link: &l_f,
                    key: &keys.join("em.key"),
                    plan_public_key: &keys.join("plan.key.pub"),
                },
                &[],
            )?,
            spawn_link(&exe, "link", &logs, [&l_g, &g_udp, &l_f, &f_udp], &[])?,
            spawn(
                &exe,
                "ground",
                &logs,
                &[
                    "ground",
                    "--data-dir",
                    &p(&dir.join("ground")),
                    "--http",
                    &http.to_string(),
                    "--system",
                    &format!("em={g_udp},{l_g}"),
                    "--keys",
                    &p(&keys),
                ],
                &[(crate::roles::USERS_ENV, &users)],
            )?,
        ];
        let stack = Stack {
            url: format!("http://{http}"),
            children,
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{}/healthz", stack.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(stack);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the ground did not come up (logs in {})", logs.display())
    }

    fn flight_pid(&self) -> anyhow::Result<u32> {
        self.children
            .first()
            .and_then(|c| c.child.id())
            .context("the flight agent has exited")
    }

    async fn login(&self, client: &reqwest::Client) -> anyhow::Result<String> {
        let r: api::LoginResponse = client
            .post(format!("{}/api/v1/login", self.url))
            .json(&api::LoginRequest {
                user: "bench".into(),
                password: "bench-password".into(),
            })
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let _ = client
            .post(format!("{}/api/v1/namespaces", self.url))
            .bearer_auth(&r.token)
            .json(&api::CreateNamespace {
                name: "bench".into(),
            })
            .send()
            .await?;
        Ok(r.token)
    }

    /// Applies and starts an operation of one `pod.run` of `busybox true`; the seconds from the
    /// start request to the end of the pod, as the agent reports it.
    async fn pod_run(
        &self,
        client: &reqwest::Client,
        token: &str,
        i: usize,
    ) -> anyhow::Result<f64> {
        let yaml = format!(
            "id: pod{i}\nnamespace: bench\nsystem: em\ntasks:\n  - id: run\n    type: pod.run\n    image: busybox\n    command: ['true']\n    max_duration: 1\n"
        );
        client
            .post(format!("{}/api/v1/operations", self.url))
            .bearer_auth(token)
            .header("content-type", "application/yaml")
            .body(yaml)
            .send()
            .await?
            .error_for_status()?;
        let started = Instant::now();
        let e: api::Execution = client
            .post(format!("{}/api/v1/executions", self.url))
            .bearer_auth(token)
            .json(&api::StartExecution {
                revision: None,
                namespace: "bench".into(),
                operation: format!("pod{i}"),
                system: None,
                force: false,
            })
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        loop {
            let now: api::Execution = client
                .get(format!("{}/api/v1/executions/{}", self.url, e.id))
                .bearer_auth(token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            if let Some(t) = now.tasks.first()
                && t.state.is_final()
            {
                if t.state != api::State::Success {
                    bail!("the bench's pod failed: {:?}", t.error);
                }
                return Ok(started.elapsed().as_secs_f64());
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("the bench's pod did not end within 2 minutes");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
