//! Flight systems' orbits and ground stations, from a JSON file shared by `ground`, `flight` and
//! `link`, so all three agree on when the link is up:
//!
//! ```json
//! {"fm": {"tle": "1 99001U …\n2 99001 …",
//!         "stations": [{"name": "Svalbard", "latitude_deg": 78.23, "longitude_deg": 15.39,
//!                       "altitude_m": 500, "min_elevation_deg": 5,
//!                       "uplink_bps": 256000, "downlink_bps": 2000000}]}}
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StationSpec {
    pub(crate) name: String,
    pub(crate) latitude_deg: f64,
    pub(crate) longitude_deg: f64,
    #[serde(default)]
    pub(crate) altitude_m: f64,
    #[serde(default = "default_mask")]
    pub(crate) min_elevation_deg: f64,
    pub(crate) uplink_bps: f64,
    pub(crate) downlink_bps: f64,
}

fn default_mask() -> f64 {
    5.0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SystemSpec {
    /// Two or three TLE lines.
    pub(crate) tle: String,
    pub(crate) stations: Vec<StationSpec>,
}

/// A system's orbit, parsed.
#[derive(Debug, Clone)]
pub(crate) struct SystemOrbit {
    pub(crate) tle: orbit::Tle,
    pub(crate) stations: Vec<orbit::StationLink>,
}

pub(crate) fn load(path: &Path) -> anyhow::Result<BTreeMap<String, SystemOrbit>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let specs: BTreeMap<String, SystemSpec> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a systems file", path.display()))?;
    let mut out = BTreeMap::new();
    for (name, spec) in specs {
        let tles = orbit::parse_tle_text(&spec.tle)
            .map_err(|e| anyhow::anyhow!("{}: system {name}: {e}", path.display()))?;
        let Some(tle) = tles.into_iter().next() else {
            bail!("{}: system {name} has no TLE", path.display());
        };
        if spec.stations.is_empty() {
            bail!("{}: system {name} has no ground stations", path.display());
        }
        let stations = spec
            .stations
            .into_iter()
            .map(|s| orbit::StationLink {
                station: orbit::GroundStation {
                    name: s.name,
                    latitude_deg: s.latitude_deg,
                    longitude_deg: s.longitude_deg,
                    altitude_m: s.altitude_m,
                    min_elevation_deg: s.min_elevation_deg,
                },
                uplink_bps: s.uplink_bps,
                downlink_bps: s.downlink_bps,
            })
            .collect();
        out.insert(name, SystemOrbit { tle, stations });
    }
    Ok(out)
}

fn epoch(t: SystemTime) -> orbit::Epoch {
    orbit::Epoch::from_unix_seconds(
        t.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64(),
    )
}

fn system_time(e: orbit::Epoch) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(e.unix_seconds().max(0.0))
}

/// The contact windows (stations merged) from `from` for `days`.
pub(crate) fn contact_windows(
    o: &SystemOrbit,
    from: SystemTime,
    days: f64,
) -> anyhow::Result<Vec<(SystemTime, SystemTime)>> {
    let sat = orbit::Propagator::new(&o.tle).map_err(|e| anyhow::anyhow!("{e}"))?;
    let start = epoch(from);
    let plan = orbit::ContactPlan::compute(
        &sat,
        &o.stations,
        start,
        start.plus_seconds(days * 86_400.0),
    )
    .map_err(|e| anyhow::anyhow!("contact plan: {e}"))?;
    let mut w: Vec<(f64, f64)> = plan
        .windows()
        .iter()
        .map(|w| (w.aos.unix_seconds(), w.los.unix_seconds()))
        .collect();
    w.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut merged: Vec<(f64, f64)> = Vec::new();
    for (a, b) in w {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    Ok(merged
        .into_iter()
        .map(|(a, b)| {
            (
                system_time(orbit::Epoch::from_unix_seconds(a)),
                system_time(orbit::Epoch::from_unix_seconds(b)),
            )
        })
        .collect())
}

/// The highest uplink and downlink rates of a system's stations (the emulator runs one rate).
pub(crate) fn rates(o: &SystemOrbit) -> (u64, u64) {
    let up = o.stations.iter().map(|s| s.uplink_bps).fold(0.0, f64::max);
    let down = o
        .stations
        .iter()
        .map(|s| s.downlink_bps)
        .fold(0.0, f64::max);
    (up as u64, down as u64)
}

/// A TLE for a circular sun-synchronous orbit at `altitude_km`, with its epoch at `at`: the
/// demo's flight model, always fresh.
pub(crate) fn synthetic_sso_tle(at: SystemTime, altitude_km: f64, raan_deg: f64) -> String {
    const MU: f64 = 398_600.441_8;
    const RE: f64 = 6378.137;
    let a = RE + altitude_km;
    let mean_motion = 86_400.0 / (2.0 * std::f64::consts::PI * (a.powi(3) / MU).sqrt());
    // Sun-synchronous inclination: cos i = -(a/12352 km)^3.5 (J2 nodal precession of 0.9856°/day).
    let inclination = (-(a / 12_352.0).powf(3.5)).acos().to_degrees();
    let secs = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let days = secs / 86_400.0;
    // Days since 1 January of the epoch's year, from the civil calendar.
    let (year, day_of_year) = year_and_day(days);
    let line1 = format!(
        "1 99001U 26001A   {:02}{:012.8}  .00000000  00000+0  00000+0 0  999",
        year % 100,
        day_of_year
    );
    let line2 = format!(
        "2 99001 {:8.4} {:8.4} 0001000  90.0000 270.0000 {:11.8}    1",
        inclination, raan_deg, mean_motion
    );
    format!(
        "ORBITDOCK-FM\n{}{}\n{}{}\n",
        line1,
        checksum(&line1),
        line2,
        checksum(&line2)
    )
}

fn checksum(line: &str) -> u32 {
    line.chars()
        .map(|c| {
            if c == '-' {
                1
            } else {
                c.to_digit(10).unwrap_or(0)
            }
        })
        .sum::<u32>()
        % 10
}

/// (year, fractional day of year starting at 1.0) of `days` since the Unix epoch.
fn year_and_day(days: f64) -> (i64, f64) {
    let mut year = 1970i64;
    let mut rest = days;
    loop {
        let len = if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
            366.0
        } else {
            365.0
        };
        if rest < len {
            return (year, rest + 1.0);
        }
        rest -= len;
        year += 1;
    }
}

/// The demo's systems file: a sun-synchronous flight model seen from Svalbard and Matera.
pub(crate) fn demo_systems(now: SystemTime) -> String {
    let spec = SystemSpec {
        tle: synthetic_sso_tle(now, 520.0, 30.0),
        stations: vec![
            StationSpec {
                name: "Svalbard".into(),
                latitude_deg: 78.23,
                longitude_deg: 15.39,
                altitude_m: 500.0,
                min_elevation_deg: 5.0,
                uplink_bps: 256_000.0,
                downlink_bps: 2_000_000.0,
            },
            StationSpec {
                name: "Matera".into(),
                latitude_deg: 40.65,
                longitude_deg: 16.70,
                altitude_m: 540.0,
                min_elevation_deg: 5.0,
                uplink_bps: 64_000.0,
                downlink_bps: 1_000_000.0,
            },
        ],
    };
    let mut map = BTreeMap::new();
    map.insert("fm".to_string(), spec);
    serde_json::to_string_pretty(&map).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_tle_parses_and_has_passes() {
        let now = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let text = demo_systems(now);
        let path =
            std::env::temp_dir().join(format!("orbitdock-systems-{}.json", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let systems = load(&path).unwrap();
        let fm = &systems["fm"];
        assert!((fm.tle.epoch.unix_seconds() - 1_795_000_000.0).abs() < 1.0);
        let windows = contact_windows(fm, now, 1.0).unwrap();
        assert!(
            windows.len() >= 6,
            "Svalbard sees a polar orbit often: {}",
            windows.len()
        );
        assert!(windows.iter().all(|(a, b)| b > a));
        std::fs::remove_file(path).unwrap();
    }
}
