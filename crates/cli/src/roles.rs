//! The server roles: each builds its crate's configuration from flags and runs it until Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::args::{FlightArgs, FlightCommand, GroundArgs, LinkArgs};

pub(crate) async fn ground(a: GroundArgs) -> anyhow::Result<ExitCode> {
    // Read before anything starts: a users file others may read stops the ground here, and so
    // does a certificate or key that cannot serve.
    let users = users_of(&a)?;
    let tls = match a.tls.files() {
        Some((cert, key)) => Some(
            ground::TlsConfig::from_pem_files(cert, key)
                .context("cannot serve HTTPS (--tls-cert, --tls-key)")?,
        ),
        None => None,
    };
    let keys = a.keys.clone().unwrap_or_else(|| a.data_dir.join("keys"));
    let orbits = match &a.systems_file {
        Some(f) => crate::systems::load(f)?,
        None => Default::default(),
    };
    let settings = match &a.systems_file {
        Some(f) => crate::systems::link_settings(f)?,
        None => Default::default(),
    };
    let mut systems = Vec::new();
    for s in &a.systems {
        let orbit = orbits.get(&s.name);
        let (contact, rate) = contact_of(orbit, true)?;
        systems.push(ground::SystemLink {
            name: s.name.clone(),
            bind: s.bind,
            link: s.link,
            key: read_key(&keys.join(format!("{}.key", s.name)))?,
            rate_bits_per_sec: rate,
            contact,
            orbit: orbit.cloned(),
            link_settings: settings
                .get(&s.name)
                .copied()
                .unwrap_or(link::LinkSettings::STANDARD),
        });
    }
    let plan_key = a.plan_key.clone().unwrap_or_else(|| keys.join("plan.key"));
    if !plan_key.exists() {
        write_new_plan_key(&plan_key)?;
        tracing::info!(key = %plan_key.display(), "made the ground's plan-signing key; give its .pub to the flight agents");
    }
    let config = ground::GroundConfig {
        data_dir: a.data_dir.clone(),
        database_url: a.database_url.clone(),
        s3: a.blobs.settings(),
        systems,
        plan_signer: read_plan_key(&plan_key)?,
    };
    let declared = match &a.systems_file {
        Some(f) => crate::systems::declarations(f)?,
        None => Default::default(),
    };
    let ownership = ground::LinkOwnership {
        replica: a.replica.clone(),
        state_dir: a.link_state_dir.clone(),
    };
    let g = ground::Ground::open_replica(config, ownership)
        .await
        .with_context(|| format!("opening the ground in {}", a.data_dir.display()))?
        .with_declarations(declared);
    let g = match &a.systems_file {
        Some(f) => g.with_approvals(crate::systems::approvals(f)?),
        None => g,
    };
    for user in users {
        match &user.secret {
            Secret::Password(p) => g.ensure_user(&user.name, p).await,
            Secret::Hash(h) => g.ensure_user_hashed(&user.name, h).await,
        }
        .with_context(|| format!("creating user {} (from {})", user.name, user.from))?;
        // The users' declaration is the truth about their roles at every start.
        g.set_role(&user.name, user.role)
            .await
            .with_context(|| format!("giving user {} its role (from {})", user.name, user.from))?;
    }
    let listener = ground::bind_http(a.http)
        .await
        .with_context(|| format!("binding {}", a.http))?;
    match tls {
        Some(tls) => {
            tracing::info!(https = %a.http, "ground up, serving HTTPS");
            ground::serve_tls(g.clone(), listener, tls, shutdown_signal()).await?;
        }
        None => {
            tracing::info!(http = %a.http, "ground up");
            ground::serve(g.clone(), listener, shutdown_signal()).await?;
        }
    }
    // Another replica takes the links over at once.
    g.release_links().await;
    Ok(ExitCode::SUCCESS)
}

/// The environment variable that may hold the ground's users, as lines of a users file.
pub(crate) const USERS_ENV: &str = "ORBITDOCK_USERS";
/// The ground's database URL (`orbitdock ground --database-url`).
pub(crate) const DATABASE_URL_ENV: &str = "ORBITDOCK_DATABASE_URL";

/// A user to create, and where it was given.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UserEntry {
    pub(crate) name: String,
    pub(crate) role: ground::Role,
    pub(crate) secret: Secret,
    /// `--user`, the users file and line, or the environment variable and line.
    pub(crate) from: String,
}

/// A password, or its argon2 hash.
#[derive(PartialEq, Eq)]
pub(crate) enum Secret {
    Password(String),
    /// A PHC string: `$argon2id$v=19$...`.
    Hash(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secret::Password(_) => "Password(..)",
            Secret::Hash(_) => "Hash(..)",
        })
    }
}

/// The ground's users: `--user` flags (with a warning: the process list shows them), the users
/// file (refused when others may read it) and `ORBITDOCK_USERS`.
fn users_of(a: &GroundArgs) -> anyhow::Result<Vec<UserEntry>> {
    let mut users = Vec::new();
    for (name, password) in &a.users {
        let (role, name) = role_and_name(name, "--user")?;
        tracing::warn!(
            user = %name,
            "--user shows the password to anyone who can list this machine's processes; prefer --users-file or {USERS_ENV}"
        );
        users.push(UserEntry {
            name,
            role,
            secret: Secret::Password(password.clone()),
            from: "--user".into(),
        });
    }
    if let Some(file) = &a.users_file {
        users.extend(read_users_file(file)?);
    }
    if let Some(text) = std::env::var_os(USERS_ENV) {
        let text = text
            .into_string()
            .map_err(|_| anyhow::anyhow!("{USERS_ENV} is not UTF-8"))?;
        users.extend(parse_users(&text, USERS_ENV)?);
    }
    Ok(users)
}

/// Reads a users file, refusing one that its group or others may read or write.
fn read_users_file(path: &std::path::Path) -> anyhow::Result<Vec<UserEntry>> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("reading the users file {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!("the users file {} is not a file", path.display());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "the users file {} may be read or written by others (mode {mode:04o}); make it its owner's only: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the users file {}", path.display()))?;
    parse_users(&text, &path.display().to_string())
}

/// What a users line says before its first colon: `NAME` (a tenant) or `ROLE NAME`, ROLE being
/// `tenant` or `operator` (a user name holds no space, so the two cannot be confused).
fn role_and_name(text: &str, from: &str) -> anyhow::Result<(ground::Role, String)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words[..] {
        [name] => Ok((ground::Role::Tenant, name.to_string())),
        [role, name] => match ground::Role::parse(role) {
            Some(r) => Ok((r, name.to_string())),
            None => anyhow::bail!(
                "{from}: unknown role {role:?} before user {name}: expected operator or tenant"
            ),
        },
        _ => anyhow::bail!("{from}: expected [ROLE ]NAME:PASSWORD or [ROLE ]NAME:$argon2id$..."),
    }
}

/// Parses users, one `[ROLE ]NAME:PASSWORD` or `[ROLE ]NAME:$argon2...` a line (ROLE: `operator`
/// or `tenant`, the default); blank lines and `#` comments are skipped. A password may hold any
/// character but a line break; one that starts with `$argon2` is read as a hash.
fn parse_users(text: &str, source: &str) -> anyhow::Result<Vec<UserEntry>> {
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let from = format!("{source}, line {}", i + 1);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((name, secret)) = line.split_once(':') else {
            anyhow::bail!("{from}: expected NAME:PASSWORD or NAME:$argon2id$...");
        };
        if name.trim().is_empty() || secret.is_empty() {
            anyhow::bail!("{from}: expected NAME:PASSWORD or NAME:$argon2id$...");
        }
        let (role, name) = role_and_name(name, &from)?;
        let secret = if secret.starts_with("$argon2") {
            Secret::Hash(secret.to_string())
        } else {
            Secret::Password(secret.to_string())
        };
        users.push(UserEntry {
            name,
            role,
            secret,
            from,
        });
    }
    Ok(users)
}

pub(crate) async fn link(a: LinkArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&a.loss) {
        anyhow::bail!("--loss {} is not a probability between 0 and 1", a.loss);
    }
    let loss = match (a.loss, a.burst) {
        (l, _) if l <= 0.0 => link::Loss::None,
        (l, Some(burst)) => link::Loss::bursty(l, burst),
        (l, None) => link::Loss::Random(l),
    };
    let config = link::EmulatorConfig {
        ground_side: a.ground_side,
        ground: a.ground,
        flight_side: a.flight_side,
        flight: a.flight,
        model: link::LinkModelConfig {
            up_bps: a.up_bps,
            down_bps: a.down_bps,
            delay: Duration::from_millis(a.delay_ms),
            jitter: Duration::from_millis(a.jitter_ms),
            loss,
            bit_error_rate: a.ber,
            duplicate: a.duplicate,
            windows: a.windows.map(|w| {
                w.0.into_iter()
                    .map(|(s, e)| (Duration::from_secs_f64(s), Duration::from_secs_f64(e)))
                    .collect()
            }),
            cuts: Vec::new(),
            half_duplex_turnaround: a.half_duplex_ms.map(Duration::from_millis),
            queue_packets: None,
            queue_bytes: None,
        },
        seed: a.seed,
        time_scale: a.time_scale,
    };
    let mut config = config;
    if let (Some(file), Some(name)) = (&a.systems_file, &a.system) {
        let systems = crate::systems::load(file)?;
        let o = systems
            .get(name)
            .with_context(|| format!("{}: no system {name}", file.display()))?;
        let now = std::time::SystemTime::now();
        let windows = crate::systems::contact_windows(o, now, CONTACT_PLAN_DAYS)?;
        config.model.windows = Some(
            windows
                .into_iter()
                .map(|(s, e)| {
                    (
                        s.duration_since(now).unwrap_or_default(),
                        e.duration_since(now).unwrap_or_default(),
                    )
                })
                .filter(|(s, e)| e > s)
                .collect(),
        );
        let (up, down) = crate::systems::rates(o);
        config.model.up_bps = config.model.up_bps.or(Some(up));
        config.model.down_bps = config.model.down_bps.or(Some(down));
    }
    let fastest = config.model.up_bps.max(config.model.down_bps);
    let (packets, bytes) = link::LinkModelConfig::default_queue(fastest);
    config.model.queue_packets = Some(a.queue_packets.unwrap_or(packets.unwrap_or(1000)));
    config.model.queue_bytes = a.queue_bytes.or(bytes);
    let stats = Arc::new(link::EmulatorStats::default());
    tokio::select! {
        r = link::run_emulator(config, stats) => r.context("link emulator")?,
        _ = shutdown_signal() => {}
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn flight(a: FlightArgs) -> anyhow::Result<ExitCode> {
    if let Some(FlightCommand::SeedBases) = a.command {
        let catalogue = standins::seed_bases(&mut |line| eprintln!("{line}")).await?;
        for b in catalogue {
            println!(
                "{}  {}  {}",
                b.name,
                b.platform,
                b.digest
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "missing".into())
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    // clap requires these when no subcommand is given.
    let (Some(state_dir), Some(volumes_dir), Some(udp), Some(link), Some(key_file), Some(plan_pub)) = (
        a.state_dir,
        a.volumes_dir,
        a.udp,
        a.link,
        a.key_file,
        a.plan_public_key,
    ) else {
        anyhow::bail!(
            "flight needs --state-dir, --volumes-dir, --udp, --link, --key-file and --plan-public-key"
        );
    };
    let config = flight::FlightConfig {
        system: a.system,
        state_dir,
        volumes_dir,
        bind: udp,
        link,
        key: read_key(&key_file)?,
        rate_bits_per_sec: None,
        contact: link::Contact::Always,
        plan_verifier: read_plan_public_key(&plan_pub)?,
        builder: wire::Builder::Classic,
        catalogue: None,
        limits: match &a.limits {
            Some(file) => flight::DiskLimits::load(file)?,
            None => flight::DiskLimits::default(),
        },
        quotas: match &a.limits {
            Some(file) => flight::Quotas::load(file)?,
            None => flight::Quotas::none(),
        },
        link_settings: link::LinkSettings::STANDARD,
        clock: match &a.clock_start {
            None => flight::ClockConfig::Host,
            Some(start) => {
                let at = orbit::Epoch::parse_iso8601(start).with_context(|| {
                    format!("--clock-start {start:?}: expected a UTC instant such as 2026-12-03T00:00:00Z")
                })?;
                flight::ClockConfig::simulated(at.unix_millis().max(0) as u64, a.clock_scale)
                    .map_err(|e| anyhow::anyhow!("--clock-scale: {e}"))?
            }
        },
        telemetry: flight::telemetry::TelemetryConfig {
            listen: a.telemetry_listen,
            elements: None,
        },
    };
    let mut config = config;
    if let Some(file) = &a.systems_file {
        if let Some(d) = crate::systems::declarations(file)?.get(&config.system) {
            config.builder = d.builder;
            config.catalogue = Some(wire::of_description(d));
        }
        let systems = crate::systems::load(file)?;
        // The system's element set is where telemetry starts, until a plan brings a newer one.
        config.telemetry.elements = systems
            .get(&config.system)
            .map(|o| orbit::elements_of(&o.tle));
        let (contact, rate) = contact_of(systems.get(&config.system), false)?;
        config.contact = contact;
        config.rate_bits_per_sec = rate;
        if let Some(s) = crate::systems::link_settings(file)?.get(&config.system) {
            config.link_settings = *s;
        }
    }
    tokio::select! {
        r = flight::run(config) => r.context("flight agent")?,
        _ = shutdown_signal() => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// How far ahead contact plans are computed when a process starts.
const CONTACT_PLAN_DAYS: f64 = 7.0;

/// The link's contact and pacing rate for a system: always up (the EM), or its passes from now on,
/// paced at its stations' best rate (uplink on the ground, downlink onboard).
fn contact_of(
    orbit: Option<&orbit::SystemOrbit>,
    ground_side: bool,
) -> anyhow::Result<(link::Contact, Option<u64>)> {
    let Some(o) = orbit else {
        return Ok((link::Contact::Always, None));
    };
    let windows =
        crate::systems::contact_windows(o, std::time::SystemTime::now(), CONTACT_PLAN_DAYS)?;
    let (up, down) = crate::systems::rates(o);
    Ok((
        link::Contact::Windows(windows),
        Some(if ground_side { up } else { down }),
    ))
}

/// Reads a link key file (64 hex digits).
pub(crate) fn read_key(path: &std::path::Path) -> anyhow::Result<wire::LinkKey> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the link key {} (make one with `orbitdock keygen {}`)",
            path.display(),
            path.display()
        )
    })?;
    wire::LinkKey::from_hex(&text)
        .with_context(|| format!("{}: not a link key (64 hex digits)", path.display()))
}

/// `orbitdock keygen`: a link key, or with `plan` the ground's plan-signing key and its `.pub`.
pub(crate) fn keygen(path: &std::path::Path, plan: bool) -> anyhow::Result<ExitCode> {
    if plan {
        write_new_plan_key(path)?;
        println!(
            "wrote the ground's plan-signing key to {} and its public half to {}; give the .pub to the flight agents",
            path.display(),
            public_path(path).display()
        );
    } else {
        write_new_key(path)?;
        println!(
            "wrote a new link key to {}; give the same file to the ground and the flight agent",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a new plan-signing key (mode 0600) and its public half beside it (`PATH.pub`).
pub(crate) fn write_new_plan_key(path: &std::path::Path) -> anyhow::Result<()> {
    let signer = wire::PlanSigner::from_bytes(rand::random());
    write_secret(path, &signer.to_hex())?;
    let public = public_path(path);
    std::fs::write(&public, format!("{}\n", signer.verifier().to_hex()))
        .with_context(|| format!("writing {}", public.display()))?;
    Ok(())
}

fn public_path(path: &std::path::Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    std::path::PathBuf::from(p)
}

/// Reads the ground's plan-signing key.
pub(crate) fn read_plan_key(path: &std::path::Path) -> anyhow::Result<wire::PlanSigner> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the plan-signing key {}", path.display()))?;
    wire::PlanSigner::from_hex(&text)
        .with_context(|| format!("{}: not a plan-signing key (64 hex digits)", path.display()))
}

/// Reads the ground's public plan key.
pub(crate) fn read_plan_public_key(path: &std::path::Path) -> anyhow::Result<wire::PlanVerifier> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the ground's public plan key {} (the .pub beside the ground's plan key)",
            path.display()
        )
    })?;
    wire::PlanVerifier::from_hex(&text)
        .with_context(|| format!("{}: not a public plan key (64 hex digits)", path.display()))
}

/// Writes a new random link key, mode 0600; refuses to overwrite.
pub(crate) fn write_new_key(path: &std::path::Path) -> anyhow::Result<()> {
    write_secret(path, &wire::LinkKey::from_bytes(rand::random()).to_hex())
}

/// Writes `hex` (or any secret line) to a new file of mode 0600; refuses to overwrite.
pub(crate) fn write_secret(path: &std::path::Path, hex: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{hex}")?;
    f.sync_all()?;
    Ok(())
}

pub(crate) async fn bench(a: crate::args::BenchArgs) -> anyhow::Result<ExitCode> {
    match a.what {
        crate::args::BenchWhat::Passes => {
            println!(
                "{:>8} {:>5} {:>13} {:>12} {:>13}",
                "stations", "days", "passes found", "time (ms)", "µs per pass"
            );
            for (stations, days) in [(1, 1.0), (1, 7.0), (10, 1.0), (10, 7.0)] {
                let b = orbit::PassBenchmark::new(stations);
                let t = std::time::Instant::now();
                let found = b
                    .run(days)
                    .map_err(|e| anyhow::anyhow!("pass prediction failed: {e}"))?;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                println!(
                    "{stations:>8} {days:>5} {found:>13} {ms:>12.1} {:>13.1}",
                    ms * 1e3 / found.max(1) as f64
                );
            }
        }
        crate::args::BenchWhat::Link { seed } => {
            eprintln!(
                "simulating two 7-minute passes per row over 30 link conditions, twice (orbitdock, baseline)…"
            );
            print!("{}", link::bench::table(seed));
        }
        crate::args::BenchWhat::Cfdp {
            rate,
            rtt_ms,
            loss,
            loss_model,
            burst,
            seed,
            file_bytes,
            capacity_secs,
            parallel,
            no_cfdp,
        } => {
            if let Some(l) = loss.iter().find(|l| !(0.0..1.0).contains(*l)) {
                anyhow::bail!("--loss {l} is not a probability from 0 up to (not including) 1");
            }
            if rate.contains(&0) || file_bytes == Some(0) {
                anyhow::bail!("--rate and --file-bytes must be above 0");
            }
            if !(capacity_secs > 0.0 && capacity_secs < 3600.0 && burst >= 1.0) {
                anyhow::bail!(
                    "--capacity-secs must be above 0 (and under an hour), --burst 1 or more"
                );
            }
            let mut bursty: Vec<bool> = loss_model.iter().map(|m| m == "bursty").collect();
            bursty.sort();
            bursty.dedup();
            return crate::bench_cfdp::run(crate::bench_cfdp::Settings {
                rates: if rate.is_empty() {
                    vec![9_600, 256_000, 2_000_000]
                } else {
                    rate
                },
                rtts: if rtt_ms.is_empty() {
                    vec![80, 600]
                } else {
                    rtt_ms
                }
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
                losses: if loss.is_empty() {
                    vec![0.0, 0.01, 0.1]
                } else {
                    loss
                },
                bursty: if bursty.is_empty() {
                    vec![false, true]
                } else {
                    bursty
                },
                burst,
                seeds: if seed.is_empty() { vec![1, 2, 3] } else { seed },
                file_bytes,
                capacity: Duration::from_secs_f64(capacity_secs),
                parallel,
                segment: 1024,
                timer: Duration::from_secs(2),
                no_cfdp,
            })
            .await;
        }
        crate::args::BenchWhat::Delta { keep, no_dataset } => {
            return crate::bench_delta::run(keep, no_dataset);
        }
        crate::args::BenchWhat::Flight => return crate::bench_flight::run().await,
        crate::args::BenchWhat::Home => return crate::bench_home::run().await,
        crate::args::BenchWhat::Ground {
            clients,
            seconds,
            postgres,
        } => return crate::bench_ground::run(clients, seconds, postgres).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. Both are caught from the call on, not from the first
/// poll, so a signal that arrives while the role is starting up stops it cleanly too.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (int, term) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = wait(int) => {}
            _ = wait(term) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, secret: Secret, from: &str) -> UserEntry {
        UserEntry {
            name: name.into(),
            role: ground::Role::Tenant,
            secret,
            from: from.into(),
        }
    }

    #[test]
    fn users_are_lines_of_name_and_password_or_hash() {
        let text = "# the ground's users\n\nalice:pw:with:colons\r\n  bob : spaced \ncarol:$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA\n";
        assert_eq!(
            parse_users(text, "F").unwrap(),
            vec![
                entry(
                    "alice",
                    Secret::Password("pw:with:colons".into()),
                    "F, line 3"
                ),
                entry("bob", Secret::Password(" spaced ".into()), "F, line 4"),
                entry(
                    "carol",
                    Secret::Hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
                    "F, line 5"
                ),
            ]
        );
        for bad in ["alice", "alice:", ":pw"] {
            let e = parse_users(bad, "F").unwrap_err().to_string();
            assert_eq!(e, "F, line 1: expected NAME:PASSWORD or NAME:$argon2id$...");
        }
        // A role before the name; a password may still hold `operator` and colons.
        let text = "operator ops:pw:operator
 tenant  carol :x
alice:y:operator
";
        let users = parse_users(text, "F").unwrap();
        let seen: Vec<(&str, ground::Role, &Secret)> = users
            .iter()
            .map(|u| (u.name.as_str(), u.role, &u.secret))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "ops",
                    ground::Role::Operator,
                    &Secret::Password("pw:operator".into())
                ),
                ("carol", ground::Role::Tenant, &Secret::Password("x".into())),
                (
                    "alice",
                    ground::Role::Tenant,
                    &Secret::Password("y:operator".into())
                ),
            ]
        );
        let e = parse_users("admin ops:pw", "F").unwrap_err().to_string();
        assert_eq!(
            e,
            "F, line 1: unknown role \"admin\" before user ops: expected operator or tenant"
        );
        let e = parse_users("a b c:pw", "F").unwrap_err().to_string();
        assert_eq!(
            e,
            "F, line 1: expected [ROLE ]NAME:PASSWORD or [ROLE ]NAME:$argon2id$..."
        );
        // Secrets never reach a log through Debug.
        assert_eq!(
            format!("{:?}", Secret::Password("hunter2".into())),
            "Password(..)"
        );
    }

    #[test]
    fn a_users_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        std::fs::write(&file, "alice:pw\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_users_file(&file).unwrap_err().to_string();
        assert!(
            e.contains(
                "may be read or written by others (mode 0644); make it its owner's only: chmod 600"
            ),
            "{e}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_users_file(&file).unwrap().len(), 1);
        assert!(read_users_file(dir.path()).is_err());
    }
}
