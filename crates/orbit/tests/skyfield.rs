//! Agreement with an independent implementation: Skyfield (Python), run on the same TLEs and
//! stations by `tests/skyfield_ref.py`.
//!
//! Needs `python3` with `pip install skyfield skyfield-data` (DE421 and the IERS tables come in
//! those packages; no network). The test fails, it does not skip, when they are missing.

use std::io::Write;
use std::process::{Command, Stdio};

use orbit::{Epoch, GroundStation, Pass, Propagator, Tle, eclipses, parse_tle_text, passes};
use serde_json::{Value, json};

/// AOS/LOS must agree within this, seconds.
const AOS_LOS_TOL_S: f64 = 2.0;
/// Culmination elevations must agree within this, degrees.
const ELEVATION_TOL_DEG: f64 = 0.1;
/// Eclipse entries and exits must agree within this, seconds.
const ECLIPSE_TOL_S: f64 = 5.0;
/// Passes whose peak is this close to the mask may be seen by one implementation only.
const GRAZING_DEG: f64 = 0.05;
/// How long each satellite is predicted, days.
const DAYS: f64 = 3.0;

fn stations() -> Vec<GroundStation> {
    let gs =
        |name: &str, latitude_deg, longitude_deg, altitude_m, min_elevation_deg| GroundStation {
            name: name.into(),
            latitude_deg,
            longitude_deg,
            altitude_m,
            min_elevation_deg,
        };
    vec![
        gs("Svalbard", 78.2297, 15.4078, 500.0, 5.0),
        gs("Kiruna", 67.8571, 20.9644, 402.0, 0.0),
        gs("Fairbanks", 64.8590, -147.8490, 180.0, 5.0),
        gs("Darmstadt", 49.8700, 8.6500, 150.0, 10.0),
        gs("Matera", 40.6490, 16.7040, 536.0, 5.0),
        gs("Kourou", 5.2514, -52.8047, 20.0, 5.0),
        gs("Fiji", -18.1416, 178.4419, 10.0, 5.0),
        gs("McMurdo", -77.8463, 166.6683, 30.0, 5.0),
    ]
}

/// Runs the Python reference; panics with installation advice if it cannot.
fn skyfield(request: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/skyfield_ref.py");
    let advice = "this test needs python3 with Skyfield: pip install skyfield skyfield-data";
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); {advice}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write request to skyfield_ref.py");
    let output = child.wait_with_output().expect("wait for skyfield_ref.py");
    assert!(
        output.status.success(),
        "skyfield_ref.py failed ({}); {advice}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("skyfield_ref.py prints json")
}

/// Max / mean / count of absolute deviations.
#[derive(Default)]
struct Stats {
    max: f64,
    sum: f64,
    n: usize,
}

impl Stats {
    fn add(&mut self, d: f64) {
        self.max = self.max.max(d.abs());
        self.sum += d.abs();
        self.n += 1;
    }

    fn row(&self, what: &str, unit: &str, limit: Option<f64>) -> String {
        let mean = if self.n > 0 {
            self.sum / self.n as f64
        } else {
            0.0
        };
        let limit = limit.map_or("-".to_owned(), |l| l.to_string());
        format!(
            "{what:<34} {:>5} {:>12.6} {:>12.6} {limit:>8} {unit}",
            self.n, self.max, mean
        )
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

#[test]
fn passes_and_eclipses_agree_with_skyfield() {
    let tles = parse_tle_text(include_str!("data/reference_tles.txt")).expect("fixtures parse");
    let stations = stations();
    // Each satellite from its element epoch (rounded down to the hour) for three days.
    let window = |tle: &Tle| {
        let start = Epoch::from_unix_seconds((tle.epoch.unix_seconds() / 3600.0).floor() * 3600.0);
        (start, start.plus_seconds(DAYS * 86_400.0))
    };
    let pairs: Vec<(usize, usize)> = (0..tles.len())
        .flat_map(|s| (0..stations.len()).map(move |g| (s, g)))
        .collect();
    let request = json!({
        "satellites": tles.iter().map(|t| {
            let (start, end) = window(t);
            let text = include_str!("data/reference_tles.txt");
            let lines = lines_of(text, t);
            json!({"name": t.name, "line1": lines.0, "line2": lines.1,
                   "start": start.unix_seconds(), "end": end.unix_seconds()})
        }).collect::<Vec<_>>(),
        "stations": stations.iter().map(|g| json!({
            "name": g.name, "latitude_deg": g.latitude_deg, "longitude_deg": g.longitude_deg,
            "altitude_m": g.altitude_m, "min_elevation_deg": g.min_elevation_deg,
        })).collect::<Vec<_>>(),
        "pairs": pairs,
        "eclipses": (0..tles.len()).collect::<Vec<_>>(),
    });
    let reference = skyfield(&request);

    let mut problems = Vec::new();
    let (mut aos, mut los, mut culm_t, mut culm_el) = (
        Stats::default(),
        Stats::default(),
        Stats::default(),
        Stats::default(),
    );
    let mut pairs_with_passes = 0;
    for entry in reference["passes"].as_array().expect("passes") {
        let (si, gi) = (
            entry["satellite"].as_u64().unwrap() as usize,
            entry["station"].as_u64().unwrap() as usize,
        );
        let (tle, station) = (&tles[si], &stations[gi]);
        let (start, end) = window(tle);
        let sat = Propagator::new(tle).expect("propagator");
        let ours: Vec<Pass> = passes(&sat, station, start, end).expect("passes");
        let label = format!("{} / {}", tle.name.as_deref().unwrap_or("?"), station.name);
        let theirs: Vec<&Value> = entry["passes"].as_array().unwrap().iter().collect();
        if !theirs.is_empty() {
            pairs_with_passes += 1;
        }
        let mask = station.min_elevation_deg;
        let mut used = vec![false; ours.len()];
        for p in &theirs {
            let grazing = f(&p["max_elevation_deg"]) - mask < GRAZING_DEG;
            let culmination = f(&p["culmination"]);
            let found = ours
                .iter()
                .position(|o| (o.culmination.unix_seconds() - culmination).abs() < 300.0);
            let Some(i) = found else {
                if !grazing {
                    problems.push(format!(
                        "{label}: skyfield pass culminating at {} not found",
                        Epoch::from_unix_seconds(culmination)
                    ));
                }
                continue;
            };
            used[i] = true;
            let o = &ours[i];
            culm_t.add(o.culmination.unix_seconds() - culmination);
            culm_el.add(o.max_elevation_deg - f(&p["max_elevation_deg"]));
            if (o.max_elevation_deg - f(&p["max_elevation_deg"])).abs() > ELEVATION_TOL_DEG {
                problems.push(format!(
                    "{label}: culmination elevation {} vs {}",
                    o.max_elevation_deg, p["max_elevation_deg"]
                ));
            }
            if p["complete"].as_bool() == Some(true)
                && !o.in_progress_at_start
                && !o.in_progress_at_end
            {
                for (stats, ours_t, theirs_t, what) in [
                    (&mut aos, o.aos, &p["aos"], "aos"),
                    (&mut los, o.los, &p["los"], "los"),
                ] {
                    let d = ours_t.unix_seconds() - f(theirs_t);
                    stats.add(d);
                    if d.is_nan() || d.abs() > AOS_LOS_TOL_S {
                        problems.push(format!("{label}: {what} {ours_t} differs by {d:.3} s"));
                    }
                }
            }
        }
        for (o, used) in ours.iter().zip(&used) {
            if !used
                && o.max_elevation_deg - mask >= GRAZING_DEG
                && !o.in_progress_at_start
                && !o.in_progress_at_end
            {
                problems.push(format!(
                    "{label}: pass culminating at {} missing from skyfield",
                    o.culmination
                ));
            }
        }
    }

    let (mut pen, mut ctr, mut umb) = (Stats::default(), Stats::default(), Stats::default());
    for entry in reference["eclipses"].as_array().expect("eclipses") {
        let si = entry["satellite"].as_u64().unwrap() as usize;
        let tle = &tles[si];
        let (start, end) = window(tle);
        let sat = Propagator::new(tle).expect("propagator");
        let ours = eclipses(&sat, start, end).expect("eclipses");
        let label = tle.name.as_deref().unwrap_or("?");
        let ours_of = |kind: &str| -> Vec<(f64, f64)> {
            ours.iter()
                .filter_map(|e| match kind {
                    "penumbra" => Some((e.penumbra_entry, e.penumbra_exit)),
                    "center" => e.center_entry.zip(e.center_exit),
                    _ => e.umbra_entry.zip(e.umbra_exit),
                })
                .map(|(a, b)| (a.unix_seconds(), b.unix_seconds()))
                .collect()
        };
        for (kind, stats) in [
            ("penumbra", &mut pen),
            ("center", &mut ctr),
            ("umbra", &mut umb),
        ] {
            let mine = ours_of(kind);
            let theirs: Vec<(f64, f64)> = entry[kind]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (f(&p[0]), f(&p[1])))
                .collect();
            if mine.len() != theirs.len() {
                problems.push(format!(
                    "{label}: {} {kind} intervals, skyfield {}",
                    mine.len(),
                    theirs.len()
                ));
                continue;
            }
            for ((a, b), (c, d)) in mine.iter().zip(&theirs) {
                for (x, y) in [(a, c), (b, d)] {
                    // Window edges are not boundaries.
                    if *y <= start.unix_seconds() || *y >= end.unix_seconds() {
                        continue;
                    }
                    stats.add(x - y);
                    if (x - y).is_nan() || (x - y).abs() > ECLIPSE_TOL_S {
                        problems.push(format!(
                            "{label}: {kind} boundary {} differs by {:.3} s",
                            Epoch::from_unix_seconds(*x),
                            x - y
                        ));
                    }
                }
            }
        }
    }

    eprintln!(
        "\norbit vs Skyfield {}: {} TLEs x {} stations ({} pairs, {} with passes), {DAYS} days each",
        reference["skyfield"],
        tles.len(),
        stations.len(),
        pairs.len(),
        pairs_with_passes
    );
    eprintln!(
        "{:<34} {:>5} {:>12} {:>12} {:>8}",
        "quantity", "n", "max |dev|", "mean |dev|", "limit"
    );
    eprintln!("{}", aos.row("AOS time", "s", Some(AOS_LOS_TOL_S)));
    eprintln!("{}", los.row("LOS time", "s", Some(AOS_LOS_TOL_S)));
    eprintln!(
        "{}",
        culm_el.row("culmination elevation", "deg", Some(ELEVATION_TOL_DEG))
    );
    eprintln!("{}", culm_t.row("culmination time", "s", None));
    eprintln!(
        "{}",
        pen.row("penumbra entry/exit", "s", Some(ECLIPSE_TOL_S))
    );
    eprintln!(
        "{}",
        ctr.row(
            "sun-centre (is_sunlit) entry/exit",
            "s",
            Some(ECLIPSE_TOL_S)
        )
    );
    eprintln!("{}", umb.row("umbra entry/exit", "s", Some(ECLIPSE_TOL_S)));
    assert!(
        pairs_with_passes >= 20,
        "only {pairs_with_passes} TLE x station pairs have passes"
    );
    assert!(
        aos.n >= 100 && pen.n >= 100,
        "too few events compared: {} passes, {} eclipse boundaries",
        aos.n,
        pen.n
    );
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The two element lines of `tle` in the fixture text.
fn lines_of<'a>(text: &'a str, tle: &Tle) -> (&'a str, &'a str) {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .find(|w| {
            Tle::parse(None, w[0], w[1])
                .is_ok_and(|t| t.catalog_number == tle.catalog_number && t.epoch == tle.epoch)
        })
        .map(|w| (w[0], w[1]))
        .expect("fixture lines")
}
