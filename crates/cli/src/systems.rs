//! Systems as data: each system's orbit and ground stations, and what it is (`platform`,
//! `builder`, `catalogue`; see `docs/systems.md`), from a JSON file shared by `ground`, `flight`,
//! `link` and `lint`, so all agree on when the link is up and on what a build may use:
//!
//! ```json
//! {"fm": {"tle": "1 99001U …\n2 99001 …",
//!         "stations": [{"name": "Svalbard", "latitude_deg": 78.23, "longitude_deg": 15.39,
//!                       "altitude_m": 500, "min_elevation_deg": 5,
//!                       "uplink_bps": 256000, "downlink_bps": 2000000}]}}
//! ```
//!
//! This is argument plumbing: the serde twins of [`orbit::SystemOrbit`] (which has no serde,
//! like every type of `orbit`), read into it, and the demo's file written from
//! [`orbit::demo_system`]. The windows themselves come from [`orbit::SystemOrbit::contact_plan`],
//! the same computation the ground uses for passes and ETAs.

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
#[serde(deny_unknown_fields)]
pub(crate) struct SystemSpec {
    /// Two or three TLE lines; none for a system always in contact (the EM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tle: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) stations: Vec<StationSpec>,
    /// `os/arch` of the system's engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) platform: Option<String>,
    /// `classic` or `buildkit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) builder: Option<wire::Builder>,
    /// The catalogue: a list of entries, or the path of a catalogue file relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) catalogue: Option<wire::CatalogueSource>,
    /// Days after which a link spool that made no progress is dropped (both ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) spool_expiry_days: Option<f64>,
    /// The largest datagram of the link, up to the radio's frame size (both ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) datagram_bytes: Option<usize>,
    /// Whether a pod of node `GPU` gets a GPU there (not said: the flight agent finds out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gpu: Option<bool>,
    /// `required` or `none`: whether an operator approves each execution before the ground
    /// sends it (default: required for a flight system, none for `em`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) approval: Option<ApprovalSpec>,
}

/// A system's `approval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ApprovalSpec {
    Required,
    None,
}

/// Each system's approval gate as a systems file sets it; a system that says nothing is left
/// out (the ground takes its default: required for a flight system, none for `em`).
pub(crate) fn approvals(path: &Path) -> anyhow::Result<BTreeMap<String, ground::Approval>> {
    Ok(read_specs(path)?
        .into_iter()
        .filter_map(|(name, spec)| {
            spec.approval.map(|a| {
                let a = match a {
                    ApprovalSpec::Required => ground::Approval::Required,
                    ApprovalSpec::None => ground::Approval::NotRequired,
                };
                (name, a)
            })
        })
        .collect())
}

/// Reads a systems file's entries; an error names the file and the field (`fm.builder`).
fn read_specs(path: &Path) -> anyhow::Result<BTreeMap<String, SystemSpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner().to_string();
        let message = inner
            .rfind(" at line ")
            .map_or(inner.as_str(), |i| &inner[..i]);
        anyhow::anyhow!("{}: {field}: {message}", path.display())
    })
}

/// The names of a systems file's systems, in order.
pub(crate) fn names(path: &Path) -> anyhow::Result<Vec<String>> {
    Ok(read_specs(path)?.into_keys().collect())
}

/// Each system's declaration in a systems file: its `platform` (default: `linux/arm64`, the EM
/// this machine's), `builder` (default `classic`) and `catalogue` (inline, or a catalogue file
/// relative to the systems file; default: the default catalogue file).
pub(crate) fn declarations(
    path: &Path,
) -> anyhow::Result<BTreeMap<String, wire::SystemDescription>> {
    let mut out = BTreeMap::new();
    for (name, spec) in read_specs(path)? {
        let file = path.display().to_string();
        let platform = match spec.platform {
            Some(p) if wire::is_platform(&p) => p,
            Some(p) => bail!("{file}: {name}.platform: {p:?} is not os/arch (linux/arm64)"),
            None if name == "em" => preflight::host_platform().to_string(),
            None => preflight::FLIGHT_PLATFORM.to_string(),
        };
        let catalogue = match spec.catalogue {
            None => wire::default_catalogue(),
            Some(wire::CatalogueSource::File(rel)) => {
                let at = path.parent().unwrap_or(Path::new(".")).join(&rel);
                let text = std::fs::read_to_string(&at).with_context(|| {
                    format!("{file}: {name}.catalogue: reading {}", at.display())
                })?;
                wire::parse_catalogue(&text, &at.display().to_string(), "")?
            }
            Some(wire::CatalogueSource::Inline(entries)) => {
                wire::check_catalogue(&entries, &file, &format!("{name}.catalogue"))?;
                entries
            }
        };
        let builder = spec.builder.unwrap_or_default();
        let mut declared = wire::SystemDescription::new(&platform, builder, catalogue);
        declared.gpu = spec.gpu;
        out.insert(name, declared);
    }
    Ok(out)
}

/// Each system's link settings in a systems file: `datagram_bytes` and `spool_expiry_days`
/// (default: those of [`link::LinkSettings::STANDARD`]). Both ends of a link read them from the
/// same file.
pub(crate) fn link_settings(path: &Path) -> anyhow::Result<BTreeMap<String, link::LinkSettings>> {
    let mut out = BTreeMap::new();
    for (name, spec) in read_specs(path)? {
        let file = path.display();
        let mut settings = link::LinkSettings::STANDARD;
        if let Some(days) = spec.spool_expiry_days {
            let secs = days * 86_400.0;
            if !(secs.is_finite() && secs > 0.0 && secs < 1e12) {
                bail!("{file}: {name}.spool_expiry_days: {days} is not a number of days");
            }
            settings.spool_expiry = Duration::from_secs_f64(secs);
        }
        if let Some(bytes) = spec.datagram_bytes {
            settings.datagram_bytes = bytes;
        }
        settings
            .check()
            .map_err(|e| anyhow::anyhow!("{file}: {name}: {e}"))?;
        out.insert(name, settings);
    }
    Ok(out)
}

/// One system's declaration (see [`declarations`]).
pub(crate) fn declaration(path: &Path, name: &str) -> anyhow::Result<wire::SystemDescription> {
    declarations(path)?
        .remove(name)
        .with_context(|| format!("{}: no system {name}", path.display()))
}

/// Reads a systems file: the orbit of each system that has one (a system without `tle` and
/// `stations` is always in contact).
pub(crate) fn load(path: &Path) -> anyhow::Result<BTreeMap<String, orbit::SystemOrbit>> {
    let specs = read_specs(path)?;
    let mut out = BTreeMap::new();
    for (name, spec) in specs {
        let Some(tle) = &spec.tle else {
            if !spec.stations.is_empty() {
                bail!("{}: {name}.tle: stations without an orbit", path.display());
            }
            continue;
        };
        let tles = orbit::parse_tle_text(tle)
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
        out.insert(name, orbit::SystemOrbit { tle, stations });
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

/// The system's contacts (its stations' windows merged, see
/// [`orbit::SystemOrbit::contact_plan`]) from `from` for `days`, as wall-clock intervals.
pub(crate) fn contact_windows(
    o: &orbit::SystemOrbit,
    from: SystemTime,
    days: f64,
) -> anyhow::Result<Vec<(SystemTime, SystemTime)>> {
    let start = epoch(from);
    let plan = o
        .contact_plan(start, start.plus_seconds(days * 86_400.0))
        .map_err(|e| anyhow::anyhow!("contact plan: {e}"))?;
    Ok(plan
        .contacts()
        .iter()
        .map(|c| (system_time(c.aos), system_time(c.los)))
        .collect())
}

/// The highest uplink and downlink rates of a system's stations, bit/s (the emulator and the
/// endpoints run one rate per direction).
pub(crate) fn rates(o: &orbit::SystemOrbit) -> (u64, u64) {
    let (up, down) = o.best_rates();
    (up as u64, down as u64)
}

/// The demo's systems file: its flight model `fm` ([`orbit::demo_system`]) with its elements'
/// epoch at `now`.
pub(crate) fn demo_systems(now: SystemTime) -> String {
    let demo = orbit::demo_system(epoch(now));
    let spec = SystemSpec {
        platform: None,
        builder: None,
        catalogue: None,
        gpu: None,
        // A flight system's default, written out: the demo user, an operator, approves.
        approval: Some(ApprovalSpec::Required),
        spool_expiry_days: None,
        datagram_bytes: None,
        tle: Some(demo.tle_text),
        stations: demo
            .stations
            .into_iter()
            .map(|s| StationSpec {
                name: s.station.name,
                latitude_deg: s.station.latitude_deg,
                longitude_deg: s.station.longitude_deg,
                altitude_m: s.station.altitude_m,
                min_elevation_deg: s.station.min_elevation_deg,
                uplink_bps: s.uplink_bps,
                downlink_bps: s.downlink_bps,
            })
            .collect(),
    };
    let mut map = BTreeMap::new();
    map.insert("fm".to_string(), spec);
    serde_json::to_string_pretty(&map).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_is_declared_or_left_unsaid() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("systems.json");
        std::fs::write(
            &file,
            r#"{"em": {}, "fm": {"gpu": false}, "gm": {"gpu": true}}"#,
        )
        .unwrap();
        let d = declarations(&file).unwrap();
        assert_eq!(
            [&d["em"], &d["fm"], &d["gm"]].map(|s| s.gpu),
            [None, Some(false), Some(true)]
        );
        std::fs::write(&file, r#"{"fm": {"gpu": "no"}}"#).unwrap();
        let e = declarations(&file).unwrap_err().to_string();
        assert!(e.contains("fm.gpu: invalid type"), "{e}");
    }

    #[test]
    fn the_demo_systems_file_reads_back_as_the_demo_orbit() {
        let now = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("systems.json");
        std::fs::write(&path, demo_systems(now)).unwrap();
        let systems = load(&path).unwrap();
        let demo = orbit::demo_system(epoch(now));
        let fm = &systems["fm"];
        assert_eq!(systems.len(), 1);
        assert_eq!(fm.stations, demo.stations);
        assert_eq!(
            fm.tle,
            orbit::parse_tle_text(&demo.tle_text).unwrap().remove(0)
        );
        let windows = contact_windows(fm, now, 1.0).unwrap();
        let contacts = fm
            .contact_plan(epoch(now), epoch(now).plus_seconds(86_400.0))
            .unwrap()
            .contacts();
        assert_eq!(windows.len(), contacts.len());
        assert_eq!(rates(fm), (256_000, 2_000_000));
        assert_eq!(
            approvals(&path).unwrap().get("fm"),
            Some(&ground::Approval::Required)
        );
    }

    #[test]
    fn approval_is_required_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("systems.json");
        std::fs::write(
            &path,
            r#"{"em": {}, "fm": {"approval": "none"}, "fm2": {"approval": "required"}}"#,
        )
        .unwrap();
        let a = approvals(&path).unwrap();
        assert_eq!(a.get("em"), None, "the default is the ground's");
        assert_eq!(a["fm"], ground::Approval::NotRequired);
        assert_eq!(a["fm2"], ground::Approval::Required);
        std::fs::write(&path, r#"{"fm": {"approval": "maybe"}}"#).unwrap();
        let e = approvals(&path).unwrap_err().to_string();
        assert!(
            e.contains("fm.approval: unknown variant `maybe`, expected `required` or `none`"),
            "{e}"
        );
    }

    #[test]
    fn link_settings_read_with_their_defaults_and_name_a_bad_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("systems.json");
        std::fs::write(
            &path,
            r#"{"em": {}, "fm": {"spool_expiry_days": 0.5, "datagram_bytes": 1115}}"#,
        )
        .unwrap();
        let s = link_settings(&path).unwrap();
        assert_eq!(s["em"], link::LinkSettings::STANDARD);
        assert_eq!(s["fm"].spool_expiry, Duration::from_secs(12 * 3600));
        assert_eq!(s["fm"].datagram_bytes, 1115);
        for (field, bad, why) in [
            (
                "spool_expiry_days",
                "-1",
                "fm.spool_expiry_days: -1 is not a number of days",
            ),
            ("spool_expiry_days", "0.0001", "fm: a spool expiry of"),
            (
                "spool_expiry_days",
                "\"7d\"",
                "fm.spool_expiry_days: invalid type: string",
            ),
            (
                "datagram_bytes",
                "9000",
                "fm: a datagram of 9000 bytes is outside 320..=1500",
            ),
            ("datagram_bytes", "-5", "fm.datagram_bytes: invalid value"),
        ] {
            std::fs::write(&path, format!(r#"{{"fm": {{"{field}": {bad}}}}}"#)).unwrap();
            let e = link_settings(&path).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
