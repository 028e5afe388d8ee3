//! `orbitdock passes`: from the ground, or offline with the ground's own computation.

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::args::PassesArgs;
use crate::client::encode_path;
use crate::verbs::Cli;

/// `orbitdock passes`: upcoming passes and eclipses with their capacity, from the ground's
/// contact plans, or offline (`--systems-file`, `--tle`) with the ground's own computation
/// ([`ground::predict_passes`]), so both agree for the same elements and stations. JSON: the
/// API's `Passes` for one system (`--system`), an array of them otherwise.
pub(crate) async fn passes(cli: &Cli, a: PassesArgs) -> anyhow::Result<ExitCode> {
    let offline = a.systems_file.is_some() || a.tle.is_some();
    if a.from.is_some() && !offline {
        bail!("--from needs --systems-file or --tle (the ground predicts from its own now)");
    }
    let answers: Vec<api::Passes> = if offline {
        let from = match &a.from {
            Some(t) => orbit::Epoch::parse_iso8601(t).with_context(|| {
                format!("--from {t:?}: expected a UTC instant such as 2026-12-03T12:00:00Z")
            })?,
            None => orbit::Epoch::from_unix_millis(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as i64,
            ),
        };
        let systems = offline_systems(&a)?;
        let chosen: Vec<(&String, &Option<orbit::SystemOrbit>)> = match &a.system {
            Some(s) => vec![systems.get_key_value(s).with_context(|| {
                format!(
                    "no system {s:?} in the file (it has: {})",
                    systems.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?],
            None => systems.iter().collect(),
        };
        let mut out = Vec::new();
        for (name, orbit) in chosen {
            out.push(
                ground::predict_passes(name, orbit.as_ref(), from, a.hours)
                    .map_err(anyhow::Error::msg)?,
            );
        }
        out
    } else {
        let client = cli.client()?;
        let systems: Vec<String> = match &a.system {
            Some(s) => vec![s.clone()],
            None => {
                let list: api::SystemList = client.get("/api/v1/systems").await?;
                list.systems.into_iter().map(|s| s.name).collect()
            }
        };
        let mut out = Vec::new();
        for s in systems {
            out.push(
                client
                    .get(&format!(
                        "/api/v1/systems/{}/passes?hours={}",
                        encode_path(&s),
                        a.hours
                    ))
                    .await?,
            );
        }
        out
    };
    if cli.document() {
        match (&a.system, answers.as_slice()) {
            (Some(_), [one]) => cli.show(one, |_| ())?,
            _ => cli.show(&answers, |_| ())?,
        }
    } else {
        answers.iter().for_each(print_passes);
    }
    Ok(ExitCode::SUCCESS)
}

/// The systems of `--systems-file` (a system without an orbit is always in contact), or the
/// one system `sat` of `--tle` over the demo's stations.
fn offline_systems(
    a: &PassesArgs,
) -> anyhow::Result<std::collections::BTreeMap<String, Option<orbit::SystemOrbit>>> {
    if let Some(path) = &a.systems_file {
        let orbits = crate::systems::load(path)?;
        let names = crate::systems::names(path)?;
        return Ok(names
            .into_iter()
            .map(|n| {
                let o = orbits.get(&n).cloned();
                (n, o)
            })
            .collect());
    }
    let path = a.tle.as_ref().context("--tle or --systems-file")?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let tle = orbit::parse_tle_text(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .into_iter()
        .next()
        .with_context(|| format!("{}: no TLE in the file", path.display()))?;
    let name = a.system.clone().unwrap_or_else(|| "sat".to_string());
    let stations = orbit::demo_system(tle.epoch).stations;
    Ok([(name, Some(orbit::SystemOrbit { tle, stations }))].into())
}

fn print_passes(passes: &api::Passes) {
    let s = &passes.system;
    let hours = passes.hours;
    if passes.always_in_contact {
        println!("{s}: always in contact (no passes: the Engineering Model is on the ground)");
        return;
    }
    println!(
        "{s}: {} passes in the next {hours} h from {}",
        passes.passes.len(),
        passes.generated_at
    );
    println!(
        "  {:<12} {:<26} {:<26} {:>6} {:>6} {:>10} {:>10}",
        "STATION", "AOS", "LOS", "MIN", "MAX°", "UP MB", "DOWN MB"
    );
    for p in &passes.passes {
        println!(
            "  {:<12} {:<26} {:<26} {:>6.1} {:>6.1} {:>10.2} {:>10.2}",
            p.station,
            p.aos,
            p.los,
            p.duration_s / 60.0,
            p.max_elevation_deg,
            p.up_bytes as f64 / 1e6,
            p.down_bytes as f64 / 1e6,
        );
    }
    println!("{s}: {} eclipses", passes.eclipses.len());
    println!(
        "  {:<26} {:<26} {:<26} {:<26} {:>6}",
        "PENUMBRA IN", "UMBRA IN", "UMBRA OUT", "PENUMBRA OUT", "MIN"
    );
    let or_dash = |t: &Option<String>| t.clone().unwrap_or_else(|| "-".to_string());
    for e in &passes.eclipses {
        println!(
            "  {:<26} {:<26} {:<26} {:<26} {:>6.1}",
            e.penumbra_entry,
            or_dash(&e.umbra_entry),
            or_dash(&e.umbra_exit),
            e.penumbra_exit,
            e.duration_s / 60.0
        );
    }
}
