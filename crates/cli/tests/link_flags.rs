//! `orbitdock link` with every flag the README's reference table documents for it: it must
//! start, and stop when asked. A flag whose definition and use disagree fails here, not in a
//! user's hands (papercut 9: `--windows` panicked at start).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::{BIN, free_udp};

/// The flags of the README's `orbitdock COMMAND` row, in order.
fn readme_flags(command: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let row = readme
        .lines()
        .find(|l| l.starts_with(&format!("| `orbitdock {command} ")))
        .unwrap_or_else(|| panic!("the README has no row for `orbitdock {command}`"));
    let synopsis = row.split('`').nth(1).unwrap();
    synopsis
        .split_whitespace()
        .map(|w| w.trim_matches(['[', ']']))
        .filter(|w| w.starts_with("--"))
        .map(String::from)
        .collect()
}

/// The flags `orbitdock COMMAND --help` lists, but `--help`, `--version` and the global flags
/// every command takes (`--output`, `--context`, `--cacert`: documented once, for the client
/// verbs).
fn help_flags(command: &str) -> Vec<String> {
    let out = Command::new(BIN)
        .args([command, "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut flags: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches(['.', ')']).to_string())
        .filter(|w| {
            !["--help", "--version", "--output", "--context", "--cacert"].contains(&w.as_str())
        })
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

/// A systems file with the demo's flight model as `fm`.
fn systems_file(path: &std::path::Path) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let demo = orbit::demo_system(orbit::Epoch::from_unix_seconds(now));
    let stations: Vec<serde_json::Value> = demo
        .stations
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.station.name,
                "latitude_deg": s.station.latitude_deg,
                "longitude_deg": s.station.longitude_deg,
                "altitude_m": s.station.altitude_m,
                "min_elevation_deg": s.station.min_elevation_deg,
                "uplink_bps": s.uplink_bps,
                "downlink_bps": s.downlink_bps,
            })
        })
        .collect();
    let file = serde_json::json!({"fm": {"tle": demo.tle_text, "stations": stations}});
    std::fs::write(path, file.to_string()).unwrap();
}

#[test]
fn link_starts_with_every_documented_flag_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let systems = dir.path().join("systems.json");
    systems_file(&systems);
    let values: Vec<(&str, String)> = vec![
        ("--ground-side", free_udp().to_string()),
        ("--ground", free_udp().to_string()),
        ("--flight-side", free_udp().to_string()),
        ("--flight", free_udp().to_string()),
        ("--up-bps", "64000".into()),
        ("--down-bps", "1000000".into()),
        ("--delay-ms", "40".into()),
        ("--jitter-ms", "5".into()),
        ("--loss", "0.01".into()),
        ("--burst", "3".into()),
        ("--ber", "1e-7".into()),
        ("--duplicate", "0.001".into()),
        ("--windows", "0-10,20-30".into()),
        ("--half-duplex-ms", "20".into()),
        ("--queue-packets", "500".into()),
        ("--queue-bytes", "1000000".into()),
        ("--seed", "7".into()),
        ("--time-scale", "60".into()),
        ("--systems-file", systems.to_string_lossy().into_owned()),
        ("--system", "fm".into()),
    ];

    let documented = readme_flags("link");
    let mut sorted = documented.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        help_flags("link"),
        "the README's row for `orbitdock link` and `orbitdock link --help` list the same flags"
    );
    let mut args = vec!["link".to_string()];
    for flag in &documented {
        let (_, value) = values
            .iter()
            .find(|(f, _)| f == flag)
            .unwrap_or_else(|| panic!("the README documents {flag}: give it a value here"));
        args.push(flag.clone());
        args.push(value.clone());
    }

    let mut child = Command::new(BIN)
        .args(&args)
        .env("ORBITDOCK_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It is up once it says so; a panic or an error ends its stderr first.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while !seen.contains("link emulator up") {
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!(
                "orbitdock {} stopped at start ({status}):\n{seen}",
                args.join(" ")
            );
        }
        seen.push_str(&line);
    }
    // SAFETY: signalling our own child by pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    std::io::copy(&mut stderr, &mut std::io::sink()).unwrap();
    assert!(status.success(), "stopped with {status}:\n{seen}");
}
