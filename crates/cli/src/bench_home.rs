//! `orbitdock bench home`: how long the dashboard's Home takes to load, over HTTP on loopback,
//! for a tenant with 50 operations and executions on two systems (the Engineering Model and a
//! flight system with an orbit, so Home shows its next pass).
//!
//! It prints the latency of `GET /` with the session cookie: served from the view cache (no
//! event since the last load), and computed afresh (a write before each load invalidates the
//! cache; the write's own time is not counted). A ground in a temporary folder, served by
//! `ground::serve` on a loopback port, as `orbitdock ground` serves it; nothing is sent on a
//! link (neither system answers).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Operations (each with one execution) the tenant has.
const OPERATIONS: usize = 50;
/// Loads timed from the cache.
const CACHED: usize = 500;
/// Loads timed after a write.
const FRESH: usize = 100;

pub(crate) async fn run() -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let now = std::time::SystemTime::now();
    let epoch =
        orbit::Epoch::from_unix_seconds(now.duration_since(std::time::UNIX_EPOCH)?.as_secs_f64());
    let demo = orbit::demo_system(epoch);
    let tle = orbit::parse_tle_text(&demo.tle_text)
        .map_err(|e| anyhow::anyhow!("the demo TLE: {e}"))?
        .remove(0);
    let nowhere = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let system = |name: &str, orbit| ground::SystemLink {
        name: name.into(),
        bind: nowhere(0),
        link: nowhere(9),
        key: wire::LinkKey::from_bytes(rand::random()),
        rate_bits_per_sec: None,
        contact: link::Contact::Windows(Vec::new()),
        orbit,
        link_settings: link::LinkSettings::STANDARD,
    };
    let g = ground::Ground::open(ground::GroundConfig {
        data_dir: dir.path().join("ground"),
        database_url: None,
        s3: None,
        systems: vec![
            system("em", None),
            system(
                "fm",
                Some(orbit::SystemOrbit {
                    tle,
                    stations: demo.stations,
                }),
            ),
        ],
        plan_signer: wire::PlanSigner::from_bytes(rand::random()),
    })
    .await?;
    g.ensure_user("bench", "bench-password").await?;
    let listener = ground::bind_http(nowhere(0)).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(ground::serve(g, listener, std::future::pending()));
    let client = reqwest::Client::new();

    let login: api::LoginResponse = client
        .post(format!("{url}/api/v1/login"))
        .json(&api::LoginRequest {
            user: "bench".into(),
            password: "bench-password".into(),
        })
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = login.token;
    eprintln!("applying {OPERATIONS} operations and starting an execution of each on em and fm…");
    let mut tar = tar::Builder::new(Vec::new());
    let data = b"payload of the bench\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "in/data.txt", &data[..])?;
    let tar = tar.into_inner()?;
    client
        .post(format!("{url}/api/v1/namespaces/bench/files"))
        .bearer_auth(&token)
        .header("content-type", "application/x-tar")
        .body(tar)
        .send()
        .await?
        .error_for_status()
        .context("uploading the bench's file")?;
    for i in 0..OPERATIONS {
        let system = if i % 2 == 0 { "em" } else { "fm" };
        let yaml = format!(
            "id: op{i}\nnamespace: bench\nsystem: {system}\ntasks:\n  - id: up\n    type: uplink\n    source: /in\n    destination: /\n  - id: ls\n    type: files.list\n"
        );
        client
            .post(format!("{url}/api/v1/operations"))
            .bearer_auth(&token)
            .header("content-type", "application/yaml")
            .body(yaml)
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("applying op{i}"))?;
        client
            .post(format!("{url}/api/v1/executions"))
            .bearer_auth(&token)
            .json(&api::StartExecution {
                revision: None,
                namespace: "bench".into(),
                operation: format!("op{i}"),
                system: None,
                force: false,
            })
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("starting op{i}"))?;
    }

    let cookie = format!("orbitdock_session={token}");
    let home = || async {
        let t = Instant::now();
        let r = client
            .get(format!("{url}/"))
            .header("cookie", &cookie)
            .send()
            .await?;
        let status = r.status();
        let body = r.text().await?;
        let took = t.elapsed();
        if !status.is_success() || !body.contains("op49") || !body.contains("Next passes") {
            bail!("Home did not show the bench's work: {status}");
        }
        Ok::<Duration, anyhow::Error>(took)
    };
    // Warm up: the first load computes the contact plan, which every later one reuses.
    home().await?;

    let mut fresh = Vec::with_capacity(FRESH);
    for i in 0..FRESH {
        // A write: the next load cannot be served from the cache.
        client
            .post(format!("{url}/api/v1/namespaces"))
            .bearer_auth(&token)
            .json(&api::CreateNamespace {
                name: format!("n{i}"),
            })
            .send()
            .await?
            .error_for_status()?;
        fresh.push(home().await?);
    }
    let mut cached = Vec::with_capacity(CACHED);
    for _ in 0..CACHED {
        cached.push(home().await?);
    }
    server.abort();

    println!(
        "Home with {OPERATIONS} operations, {OPERATIONS} executions, two systems (one with an orbit), over HTTP on loopback"
    );
    println!(
        "{:<34} {:>6} {:>8} {:>8} {:>8}",
        "load", "loads", "p50 ms", "p95 ms", "max ms"
    );
    for (name, mut times) in [
        ("served from the view cache", cached),
        ("computed after a write", fresh),
    ] {
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!(
            "{name:<34} {:>6} {:>8.2} {:>8.2} {:>8.2}",
            times.len(),
            ms(at(0.5)),
            ms(at(0.95)),
            ms(*times.last().unwrap_or(&Duration::ZERO)),
        );
    }
    Ok(ExitCode::SUCCESS)
}
