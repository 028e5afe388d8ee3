//! The server roles: each builds its crate's configuration from flags and runs it until Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::args::{FlightArgs, FlightCommand, GroundArgs, LinkArgs};

pub(crate) async fn ground(a: GroundArgs) -> anyhow::Result<ExitCode> {
    let config = ground::GroundConfig {
        data_dir: a.data_dir.clone(),
        systems: a
            .systems
            .iter()
            .map(|s| ground::SystemLink {
                name: s.name.clone(),
                bind: s.bind,
                link: s.link,
                rate_bytes_per_sec: None,
            })
            .collect(),
    };
    let g = ground::Ground::open(config)
        .await
        .with_context(|| format!("opening the ground in {}", a.data_dir.display()))?;
    for (user, password) in &a.users {
        g.ensure_user(user, password)
            .await
            .with_context(|| format!("creating user {user}"))?;
    }
    let listener = tokio::net::TcpListener::bind(a.http)
        .await
        .with_context(|| format!("binding {}", a.http))?;
    tracing::info!(http = %a.http, "ground up");
    ground::serve(g, listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn link(a: LinkArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&a.loss) {
        anyhow::bail!("--loss {} is not a probability between 0 and 1", a.loss);
    }
    let config = link::EmulatorConfig {
        ground_side: a.ground_side,
        ground: a.ground,
        flight_side: a.flight_side,
        flight: a.flight,
        up_bps: a.up_bps,
        down_bps: a.down_bps,
        delay: Duration::from_millis(a.delay_ms),
        loss: a.loss,
    };
    let stats = Arc::new(link::EmulatorStats::default());
    tokio::select! {
        r = link::run_emulator(config, stats) => r.context("link emulator")?,
        _ = shutdown_signal() => {}
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn flight(a: FlightArgs) -> anyhow::Result<ExitCode> {
    if let Some(FlightCommand::SeedBases) = a.command {
        let catalogue = flight::seed_bases(&mut |line| eprintln!("{line}")).await?;
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
    let (Some(state_dir), Some(volumes_dir), Some(udp), Some(link)) =
        (a.state_dir, a.volumes_dir, a.udp, a.link)
    else {
        anyhow::bail!("flight needs --state-dir, --volumes-dir, --udp and --link");
    };
    let config = flight::FlightConfig {
        system: a.system,
        state_dir,
        volumes_dir,
        bind: udp,
        link,
    };
    tokio::select! {
        r = flight::run(config) => r.context("flight agent")?,
        _ = shutdown_signal() => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
