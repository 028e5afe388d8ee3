//! `orbitdock demo`: ground, link and flight agent as three processes on 127.0.0.1, with a demo
//! user, for a first run on a fresh machine.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::args::DemoArgs;

const DEMO_USER: &str = "demo";

pub(crate) async fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let data = match a.data_dir {
        Some(d) => d,
        None => default_dir()?,
    };
    let logs = data.join("logs");
    let keys = data.join("keys");
    for d in [
        data.join("ground"),
        data.join("flight/state"),
        data.join("flight/volumes"),
        logs.clone(),
        keys.clone(),
    ] {
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    // Each system's link key, shared by the ground and that system's flight agent.
    let key = keys.join("em.key");
    let fm_key = keys.join("fm.key");
    for k in [&key, &fm_key] {
        if !k.exists() {
            crate::roles::write_new_key(k)?;
        }
    }
    // The ground's plan-signing key; the flight agents get its public half.
    let plan_key = keys.join("plan.key");
    if !plan_key.exists() {
        crate::roles::write_new_plan_key(&plan_key)?;
    }
    let plan_pub = keys.join("plan.key.pub");
    // The flight model's orbit and ground stations, with a TLE fresh from now, so that its
    // passes (and so its uplink ETAs) are real.
    let systems_file = data.join("systems.json");
    std::fs::write(
        &systems_file,
        crate::systems::demo_systems(std::time::SystemTime::now()),
    )
    .with_context(|| format!("writing {}", systems_file.display()))?;
    for d in [data.join("flight-fm/state"), data.join("flight-fm/volumes")] {
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }

    let status = flight::catalogue_status().await.context(
        "cannot use the Docker Engine (the flight agent drives it): is dockerd running and may this user reach its socket?",
    )?;
    if status.iter().any(|b| b.digest.is_none()) {
        eprintln!(
            "building stand-in base images under the catalogue's names (nothing can be pulled here)…"
        );
        flight::seed_bases(&mut |line| eprintln!("  {line}")).await?;
    }

    let port = |i: u16| format!("127.0.0.1:{}", a.udp_base + i);
    let (ground_udp, link_ground, link_flight, flight_udp) = (port(0), port(1), port(2), port(3));
    let (fm_ground_udp, fm_link_ground, fm_link_flight, fm_flight_udp) =
        (port(4), port(5), port(6), port(7));
    let exe = std::env::current_exe().context("locating the orbitdock binary")?;
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    let systems = path(systems_file.clone());
    let mut children = vec![
        spawn(
            &exe,
            "flight",
            &logs,
            &[
                "flight",
                "--system",
                "em",
                "--state-dir",
                &path(data.join("flight/state")),
                "--volumes-dir",
                &path(data.join("flight/volumes")),
                "--udp",
                &flight_udp,
                "--link",
                &link_flight,
                "--key-file",
                &path(key.clone()),
                "--plan-public-key",
                &path(plan_pub.clone()),
            ],
        )?,
        spawn(
            &exe,
            "link",
            &logs,
            &[
                "link",
                "--ground-side",
                &link_ground,
                "--ground",
                &ground_udp,
                "--flight-side",
                &link_flight,
                "--flight",
                &flight_udp,
            ],
        )?,
        spawn(
            &exe,
            "ground",
            &logs,
            &[
                "ground",
                "--data-dir",
                &path(data.join("ground")),
                "--http",
                &a.http.to_string(),
                "--system",
                &format!("em={ground_udp},{link_ground}"),
                "--user",
                &format!("{DEMO_USER}:{}", a.password),
                "--keys",
                &path(keys.clone()),
                "--system",
                &format!("fm={fm_ground_udp},{fm_link_ground}"),
                "--systems-file",
                &systems,
            ],
        )?,
        spawn(
            &exe,
            "flight-fm",
            &logs,
            &[
                "flight",
                "--system",
                "fm",
                "--state-dir",
                &path(data.join("flight-fm/state")),
                "--volumes-dir",
                &path(data.join("flight-fm/volumes")),
                "--udp",
                &fm_flight_udp,
                "--link",
                &fm_link_flight,
                "--key-file",
                &path(fm_key.clone()),
                "--plan-public-key",
                &path(plan_pub.clone()),
                "--systems-file",
                &systems,
            ],
        )?,
        spawn(
            &exe,
            "link-fm",
            &logs,
            &[
                "link",
                "--ground-side",
                &fm_link_ground,
                "--ground",
                &fm_ground_udp,
                "--flight-side",
                &fm_link_flight,
                "--flight",
                &fm_flight_udp,
                "--delay-ms",
                "40",
                "--loss",
                "0.01",
                "--systems-file",
                &systems,
                "--system",
                "fm",
            ],
        )?,
    ];

    let url = format!("http://{}", a.http);
    if let Err(e) = wait_healthy(&url, &mut children).await {
        stop(&mut children).await;
        return Err(e);
    }
    println!();
    println!(
        "orbitdock demo is up on 127.0.0.1: the ground, and for each system a link and a flight agent"
    );
    println!("  em                 the Engineering Model: always in contact");
    println!(
        "  fm                 a flight model in a sun-synchronous orbit, in contact only during its passes"
    );
    println!("                     over Svalbard and Matera (orbitdock passes --system fm)");
    println!("  dashboard and API  {url}/");
    println!(
        "  login              user {DEMO_USER}, password {}",
        a.password
    );
    println!(
        "  CLI                orbitdock login --server {url} --user {DEMO_USER} --password {}",
        a.password
    );
    println!("  state              {}", data.display());
    println!("  logs               {}", logs.display());
    println!("Press Ctrl-C to stop.");

    let outcome = tokio::select! {
        _ = crate::roles::shutdown_signal() => Ok(ExitCode::SUCCESS),
        (name, status) = first_exit(&mut children) => {
            Err(anyhow::anyhow!("the {name} process stopped ({status}); see {}", logs.join(format!("{name}.log")).display()))
        }
    };
    stop(&mut children).await;
    outcome
}

fn default_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set; pass --data-dir")?)
            .join(".local/share"),
    };
    Ok(base.join("orbitdock").join("demo"))
}

struct Process {
    name: &'static str,
    child: Child,
}

fn spawn(exe: &Path, name: &'static str, logs: &Path, args: &[&str]) -> anyhow::Result<Process> {
    let log_path = logs.join(format!("{name}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe; the child dies with its parent instead of lingering.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting the {name} process"))?;
    Ok(Process { name, child })
}

async fn wait_healthy(url: &str, children: &mut [Process]) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        for p in children.iter_mut() {
            if let Some(status) = p.child.try_wait()? {
                bail!(
                    "the {} process stopped during start-up ({status}); see its log",
                    p.name
                );
            }
        }
        if let Ok(r) = http.get(format!("{url}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the ground did not answer on {url} within 30 s")
}

async fn first_exit(children: &mut [Process]) -> (&'static str, std::process::ExitStatus) {
    loop {
        for p in children.iter_mut() {
            if let Ok(Some(status)) = p.child.try_wait() {
                return (p.name, status);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asks each child to stop (SIGTERM), then kills what is left after two seconds.
async fn stop(children: &mut [Process]) {
    for p in children.iter() {
        if let Some(pid) = p.child.id() {
            // SAFETY: signalling our own child by pid.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    for p in children.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(2), p.child.wait())
            .await
            .is_err()
        {
            let _ = p.child.kill().await;
        }
    }
}
