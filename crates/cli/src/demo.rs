//! `orbitdock demo`: ground, link and flight agent as three processes on 127.0.0.1, with a demo
//! user, for a first run on a fresh machine. The demo user's password is the README's
//! (`orbitdock`) while the API listens on a loopback address only; beyond it, a random one
//! (made once, kept with the keys) that the demo prints. It reaches the ground through the
//! environment (`ORBITDOCK_USERS`), never its arguments, which the process list shows.
//!
//! The demo serves plain HTTP on 127.0.0.1 unless given a certificate (`--tls-cert`,
//! `--tls-key`): loopback traffic never leaves the machine, so TLS would protect nothing there
//! and a first run would need a certificate before anything else; browsers treat
//! `http://127.0.0.1` as a secure context. Given one, the ground serves HTTPS, and the demo checks
//! it as the CLI will: against `--cacert`, else the certificate itself (a self-signed one is
//! its own CA).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::args::DemoArgs;

const DEMO_USER: &str = "demo";

/// The README's password for the demo user, used while the API listens on loopback only.
const LOOPBACK_PASSWORD: &str = "orbitdock";

/// The demo user's password: the one given; [`LOOPBACK_PASSWORD`] when `http` is a loopback
/// address; otherwise a random one, made on the first such start and kept in
/// `keys/demo.password` (mode 0600), so that sessions survive a restart. The flag says whether
/// it is that random one.
fn demo_password(
    given: Option<String>,
    http: SocketAddr,
    keys: &Path,
) -> anyhow::Result<(String, bool)> {
    if let Some(p) = given {
        return Ok((p, false));
    }
    if http.ip().is_loopback() {
        return Ok((LOOPBACK_PASSWORD.to_string(), false));
    }
    let file = keys.join("demo.password");
    if !file.exists() {
        let password: String = rand::random::<[u8; 12]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        crate::roles::write_secret(&file, &password)?;
    }
    let password = std::fs::read_to_string(&file)
        .with_context(|| format!("reading {}", file.display()))?
        .trim()
        .to_string();
    if password.is_empty() {
        bail!(
            "{} is empty; remove it to make a new password",
            file.display()
        );
    }
    Ok((password, true))
}

pub(crate) async fn run(a: DemoArgs, cacert: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    // A certificate or key that cannot serve is named before anything starts.
    let tls = match a.tls.files() {
        Some((cert, key)) => {
            ground::TlsConfig::from_pem_files(cert, key)
                .context("cannot serve HTTPS (--tls-cert, --tls-key)")?;
            let abs = |p: &Path| {
                std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
            };
            let trust = abs(cacert.as_deref().unwrap_or(cert))?;
            Some((abs(cert)?, abs(key)?, trust))
        }
        None => None,
    };
    let Some(ports) = Ports::from_base(a.udp_base) else {
        bail!(
            "--udp-base {}: the demo needs eight consecutive UDP ports from it, up to 65535",
            a.udp_base
        );
    };
    // Before anything starts: a taken address is named here, not found in a child's log.
    ports.check_free(a.http)?;
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
    let (password, random) = demo_password(a.password.clone(), a.http, &keys)?;
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
        standins::seed_bases(&mut |line| eprintln!("  {line}")).await?;
    }

    let [
        ground_udp,
        link_ground,
        link_flight,
        flight_udp,
        fm_ground_udp,
        fm_link_ground,
        fm_link_flight,
        fm_flight_udp,
    ] = ports.udp.map(|(addr, _)| addr.to_string());
    // The demo user reaches the ground through its environment, not its arguments. It is an
    // operator, so that it can approve its own executions on `fm`.
    let users = format!("operator {DEMO_USER}:{password}");
    let exe = std::env::current_exe().context("locating the orbitdock binary")?;
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    let systems = path(systems_file.clone());
    let ground_data = path(data.join("ground"));
    let http = a.http.to_string();
    let em_system = format!("em={ground_udp},{link_ground}");
    let keys_dir = path(keys.clone());
    let fm_system = format!("fm={fm_ground_udp},{fm_link_ground}");
    let mut ground_args = vec![
        "ground",
        "--data-dir",
        &ground_data,
        "--http",
        &http,
        "--system",
        &em_system,
        "--keys",
        &keys_dir,
        "--system",
        &fm_system,
        "--systems-file",
        &systems,
    ];
    let tls_files = tls
        .as_ref()
        .map(|(cert, key, _)| (path(cert.clone()), path(key.clone())));
    if let Some((cert, key)) = &tls_files {
        ground_args.extend(["--tls-cert", cert, "--tls-key", key]);
    }
    // The database URL goes by the environment, not the process list: it may hold a password.
    let mut ground_env = vec![(crate::roles::USERS_ENV, users.as_str())];
    if let Some(url) = &a.database_url {
        ground_env.push((crate::roles::DATABASE_URL_ENV, url.as_str()));
    }
    let mut children = vec![
        spawn_flight(
            &exe,
            "flight",
            &logs,
            &FlightArgs {
                system: "em",
                dir: &data.join("flight"),
                udp: &flight_udp,
                link: &link_flight,
                key: &key,
                plan_public_key: &plan_pub,
            },
            &[],
        )?,
        spawn_link(
            &exe,
            "link",
            &logs,
            [&link_ground, &ground_udp, &link_flight, &flight_udp],
            &[],
        )?,
        spawn(&exe, "ground", &logs, &ground_args, &ground_env)?,
        spawn_flight(
            &exe,
            "flight-fm",
            &logs,
            &FlightArgs {
                system: "fm",
                dir: &data.join("flight-fm"),
                udp: &fm_flight_udp,
                link: &fm_link_flight,
                key: &fm_key,
                plan_public_key: &plan_pub,
            },
            &["--systems-file", &systems],
        )?,
        spawn_link(
            &exe,
            "link-fm",
            &logs,
            [
                &fm_link_ground,
                &fm_ground_udp,
                &fm_link_flight,
                &fm_flight_udp,
            ],
            &[
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

    let trust = tls.as_ref().map(|(_, _, trust)| trust.as_path());
    let url = match trust {
        Some(_) => format!("https://{}", a.http),
        None => format!("http://{}", a.http),
    };
    if let Err(e) = wait_healthy(&url, trust, &mut children, &logs).await {
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
    println!("                     over Svalbard and Matera (orbitdock passes --system fm);");
    println!(
        "                     its executions wait for an operator's approval (the demo user is one: orbitdock approve ID)"
    );
    println!("  dashboard and API  {url}/");
    println!("  login              user {DEMO_USER}, password {password}");
    let cacert_flag = trust
        .map(|t| format!(" --cacert {}", t.display()))
        .unwrap_or_default();
    println!(
        "  CLI                orbitdock login --server {url}{cacert_flag} --user {DEMO_USER} --password {password}"
    );
    if random {
        println!(
            "                     (the API listens beyond loopback on {}: the password is random, kept in {})",
            a.http,
            keys.join("demo.password").display()
        );
    }
    println!("  state              {}", data.display());
    println!("  logs               {}", logs.display());
    println!("Press Ctrl-C to stop.");

    let outcome = tokio::select! {
        _ = crate::roles::shutdown_signal() => Ok(ExitCode::SUCCESS),
        (name, status) = first_exit(&mut children) => {
            Err(anyhow::anyhow!(stopped(name, &format!("stopped ({status})"), &logs)))
        }
    };
    stop(&mut children).await;
    outcome
}

/// The demo's UDP addresses on 127.0.0.1, each with what binds it.
struct Ports {
    udp: [(SocketAddr, &'static str); 8],
}

impl Ports {
    /// Eight consecutive ports from `base`; `None` if they would pass 65535.
    fn from_base(base: u16) -> Option<Ports> {
        base.checked_add(7)?;
        let roles = [
            "the ground's link endpoint for em",
            "em's link emulator, ground side",
            "em's link emulator, flight side",
            "em's flight agent",
            "the ground's link endpoint for fm",
            "fm's link emulator, ground side",
            "fm's link emulator, flight side",
            "fm's flight agent",
        ];
        Some(Ports {
            udp: std::array::from_fn(|i| {
                let port = base + i as u16;
                (SocketAddr::from(([127, 0, 0, 1], port)), roles[i])
            }),
        })
    }

    /// Fails, naming the address, its use and the flag that moves it, if `http` or a UDP port
    /// is taken. Each is bound and released at once: a child that starts a moment later can
    /// still lose a race, and then its log says so.
    fn check_free(&self, http: SocketAddr) -> anyhow::Result<()> {
        if let Err(e) = ground::http_address_free(http) {
            bail!(
                "{http} (the ground's HTTP API and dashboard) is not free: {e}; stop what holds it or choose another address with --http"
            );
        }
        for (addr, role) in &self.udp {
            if let Err(e) = link::udp_address_free(*addr) {
                bail!(
                    "{addr} (UDP, {role}) is not free: {e}; stop what holds it or choose other ports with --udp-base (the demo takes eight from it)"
                );
            }
        }
        Ok(())
    }
}

/// Why a child process stopped, with the error its log ends on, and the log's path.
fn stopped(name: &str, what: &str, logs: &Path) -> String {
    let log = logs.join(format!("{name}.log"));
    let error = std::fs::read_to_string(&log)
        .ok()
        .and_then(|text| last_error(&text));
    match error {
        Some(error) => format!(
            "the {name} process {what}: {error}; its log: {}",
            log.display()
        ),
        None => format!("the {name} process {what}; see its log: {}", log.display()),
    }
}

/// The last error a log holds: the message `orbitdock` exits with, or a panic's.
fn last_error(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().collect();
    lines.iter().enumerate().rev().find_map(|(i, line)| {
        if let Some(error) = line.strip_prefix("orbitdock: error: ") {
            return Some(error.trim().to_string());
        }
        line.contains(" panicked at ").then(|| {
            // The panic's message is on the line after its location.
            let message = lines.get(i + 1).map_or("", |m| m.trim());
            format!("{} {message}", line.trim()).trim().to_string()
        })
    })
}

fn default_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set; pass --data-dir")?)
            .join(".local/share"),
    };
    Ok(base.join("orbitdock").join("demo"))
}

pub(crate) struct Process {
    name: &'static str,
    pub(crate) child: Child,
}

/// Starts `exe ARGS` as the child `name`, logging to `logs/NAME.log`, with `env` added to its
/// environment (secrets go there: arguments are public).
pub(crate) fn spawn(
    exe: &Path,
    name: &'static str,
    logs: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> anyhow::Result<Process> {
    let log_path = logs.join(format!("{name}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .envs(env.iter().copied())
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

/// Where and how a flight agent of the demo or a bench runs: its state and volumes live under
/// `dir` (`state/`, `volumes/`).
pub(crate) struct FlightArgs<'a> {
    pub(crate) system: &'a str,
    pub(crate) dir: &'a Path,
    pub(crate) udp: &'a str,
    pub(crate) link: &'a str,
    pub(crate) key: &'a Path,
    pub(crate) plan_public_key: &'a Path,
}

/// Starts `orbitdock flight` as the child `name` with `f`'s settings and `extra` arguments.
pub(crate) fn spawn_flight(
    exe: &Path,
    name: &'static str,
    logs: &Path,
    f: &FlightArgs<'_>,
    extra: &[&str],
) -> anyhow::Result<Process> {
    let p = |x: &Path| x.to_string_lossy().into_owned();
    let (state, volumes) = (p(&f.dir.join("state")), p(&f.dir.join("volumes")));
    let (key, plan) = (p(f.key), p(f.plan_public_key));
    let mut args = vec![
        "flight",
        "--system",
        f.system,
        "--state-dir",
        &state,
        "--volumes-dir",
        &volumes,
        "--udp",
        f.udp,
        "--link",
        f.link,
        "--key-file",
        &key,
        "--plan-public-key",
        &plan,
    ];
    args.extend_from_slice(extra);
    spawn(exe, name, logs, &args, &[])
}

/// Starts the link emulator as the child `name` between
/// `[ground_side, ground, flight_side, flight]` with `extra` arguments (delay, loss, …).
pub(crate) fn spawn_link(
    exe: &Path,
    name: &'static str,
    logs: &Path,
    [ground_side, ground, flight_side, flight]: [&str; 4],
    extra: &[&str],
) -> anyhow::Result<Process> {
    let mut args = vec![
        "link",
        "--ground-side",
        ground_side,
        "--ground",
        ground,
        "--flight-side",
        flight_side,
        "--flight",
        flight,
    ];
    args.extend_from_slice(extra);
    spawn(exe, name, logs, &args, &[])
}

/// Waits until the ground answers `/healthz` on `url` (checking its certificate against `trust`
/// when it serves HTTPS), and fails at once if a child stops or the certificate is refused.
async fn wait_healthy(
    url: &str,
    trust: Option<&Path>,
    children: &mut [Process],
    logs: &Path,
) -> anyhow::Result<()> {
    let http = crate::client::http_client(trust)?;
    for _ in 0..300 {
        for p in children.iter_mut() {
            if let Some(status) = p.child.try_wait()? {
                bail!(stopped(
                    p.name,
                    &format!("stopped during start-up ({status})"),
                    logs
                ));
            }
        }
        match http.get(format!("{url}/healthz")).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Err(e) => {
                if let Some(reason) = crate::client::certificate_refused(&e) {
                    bail!(
                        "the ground's certificate does not verify against {}: {}; with a certificate signed by a CA, give that CA with --cacert",
                        trust.map(|t| t.display().to_string()).unwrap_or_default(),
                        rustls::Error::InvalidCertificate(reason)
                    );
                }
            }
            Ok(_) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_process_is_reported_with_its_error_and_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("flight.log");
        std::fs::write(
            &log,
            "2026-12-02T10:00:00Z  INFO an earlier run\n\
             orbitdock: error: flight agent: cannot open the link endpoint on 127.0.0.1:7704: Address already in use (os error 98)\n",
        )
        .unwrap();
        assert_eq!(
            stopped(
                "flight",
                "stopped during start-up (exit status: 2)",
                dir.path()
            ),
            format!(
                "the flight process stopped during start-up (exit status: 2): flight agent: cannot open the link endpoint on 127.0.0.1:7704: Address already in use (os error 98); its log: {}",
                log.display()
            )
        );
        std::fs::write(
            &log,
            "thread 'main' panicked at crates/cli/src/roles.rs:1:1:\nsomething broke\nnote: run with `RUST_BACKTRACE=1`\n",
        )
        .unwrap();
        assert_eq!(
            last_error(&std::fs::read_to_string(&log).unwrap()).as_deref(),
            Some("thread 'main' panicked at crates/cli/src/roles.rs:1:1: something broke")
        );
        // No log at all.
        assert_eq!(
            stopped("link", "stopped (signal: 9)", &dir.path().join("none")),
            format!(
                "the link process stopped (signal: 9); see its log: {}",
                dir.path().join("none/link.log").display()
            )
        );
    }

    #[test]
    fn the_password_is_the_readmes_on_loopback_and_random_beyond() {
        use std::os::unix::fs::PermissionsExt;
        let keys = tempfile::tempdir().unwrap();
        let at = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert_eq!(
            demo_password(None, at("127.0.0.1:7700"), keys.path()).unwrap(),
            ("orbitdock".to_string(), false)
        );
        assert_eq!(
            demo_password(None, at("[::1]:7700"), keys.path()).unwrap(),
            ("orbitdock".to_string(), false)
        );
        assert_eq!(
            demo_password(Some("mine".into()), at("0.0.0.0:7700"), keys.path()).unwrap(),
            ("mine".to_string(), false)
        );
        let (random, made) = demo_password(None, at("0.0.0.0:7700"), keys.path()).unwrap();
        assert!(made);
        assert_eq!(random.len(), 24);
        assert_ne!(random, LOOPBACK_PASSWORD);
        // Kept for the next start, readable by its owner only.
        let file = keys.path().join("demo.password");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            demo_password(None, at("192.0.2.10:7700"), keys.path()).unwrap(),
            (random, true)
        );
    }

    #[test]
    fn the_eight_ports_must_fit_below_65536() {
        assert!(Ports::from_base(65_528).is_some());
        assert!(Ports::from_base(65_529).is_none());
        let p = Ports::from_base(7701).unwrap();
        assert_eq!(
            p.udp[3],
            ("127.0.0.1:7704".parse().unwrap(), "em's flight agent")
        );
    }
}
