//! A trigger end to end: the operation's YAML through `orbitdock op validate` (the ground's
//! prediction, printed and as JSON) and `exec start`, the plan with its element set up the link
//! to the real flight agent on a simulated mission clock, the pod fired onboard over Geneva, and
//! the firing back in the execution's task outputs, where it matches the prediction.

mod support;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use support::{Stack, unique};

/// The onboard firing may be this far from the ground's prediction, mission seconds (issue 13).
const TOLERANCE_S: f64 = 5.0;

fn time(v: &Value) -> f64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    orbit::Epoch::parse_iso8601(s)
        .unwrap_or_else(|| panic!("not a time: {s}"))
        .unix_seconds()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_predicted_firing_is_the_onboard_one() {
    let text = include_str!("../../orbit/tests/data/reference_tles.txt");
    let iss = orbit::parse_tle_text(text).unwrap().remove(0);
    // The ground predicts, and the mission clock starts, 150 s before the ISS next comes within
    // 800 km of Geneva after its element epoch + 1 h: the plan is onboard before then.
    let over = wire::Condition::Location(wire::Location {
        area: wire::Area::Point {
            at: wire::GeoPoint::from_degrees(46.27, 6.96).unwrap(),
            altitude_m: 0,
            radius_m: Some(800_000),
        },
        min_elevation_mdeg: None,
        min_sun_elevation_mdeg: None,
    });
    let p = orbit::Propagator::new(&iss).unwrap();
    let after = iss.epoch.plus_seconds(3600.0);
    let entry = orbit::firings(&p, &over, after, after.plus_seconds(86_400.0))
        .unwrap()
        .into_iter()
        .find(|f| f.start > after)
        .expect("over Geneva within a day")
        .start;
    let start = entry.plus_seconds(-150.0);
    let now = UNIX_EPOCH + Duration::from_secs_f64(start.unix_seconds());
    let stack = Stack::start_flying(
        "fm",
        Some(ground::SystemOrbit {
            tle: iss.clone(),
            stations: Vec::new(),
        }),
        flight::ClockConfig::simulated(start.unix_millis() as u64, 10.0).unwrap(),
        |g| {
            g.with_clock(Arc::new(move || now))
                .with_approvals([("fm".to_string(), ground::Approval::NotRequired)].into())
        },
    )
    .await;
    let user = stack.user(&unique("trig")).await;
    let ns = unique("orbits");
    let file = stack.dir.path().join("watch.yaml");
    std::fs::write(
        &file,
        format!(
            "id: watch\nnamespace: {ns}\nsystem: fm\ntasks:\n\
             - id: over\n  type: pod.run\n  image: busybox\n  command: [/bin/sh, -c, 'echo over > /data/over.txt']\n  trigger:\n    location: {{latitude: 46.27, longitude: 6.96, radius_km: 800}}\n    deadline: 2h\n"
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap();

    // Before uplink: the prediction, for a person and as JSON.
    let out = user.cli(&["op", "validate", path]).await;
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains("trigger [task over] on fm: within 800 km of 46.2700,6.9600")
            && printed.contains("fires "),
        "{printed}"
    );
    let out = user.cli(&["op", "validate", path, "-o", "json"]).await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let predicted = time(&v["triggers"][0]["firings"][0]["start"]);
    assert!((predicted - entry.unix_seconds()).abs() < 0.01, "{v}");

    let out = user.cli(&["op", "apply", path]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = user
        .cli(&[
            "exec",
            "start",
            &format!("{ns}/watch"),
            "--wait",
            "-o",
            "json",
        ])
        .await;
    let started = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{started} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exec: Value = serde_json::from_str(&started).unwrap();
    let id = exec["id"].as_str().unwrap();

    // After the run: the onboard record, through the API, matches the prediction.
    let (status, e) = user.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["state"], "COMPLETED", "{e}");
    let fired = &e["tasks"][0]["outputs"]["trigger"];
    let (since, at) = (time(&fired["since"]), time(&fired["fired"]));
    println!(
        "predicted {predicted:.3}; onboard since {since:.3} (Δ {:+.3} s), fired {at:.3} (Δ {:+.3} s)",
        since - predicted,
        at - predicted
    );
    assert!((since - predicted).abs() <= TOLERANCE_S, "{e}");
    assert!((at - predicted).abs() <= TOLERANCE_S, "{e}");
    assert_eq!(fired["reason"], "within 800 km of 46.2700,6.9600", "{e}");
    let shown = user.cli(&["exec", "show", id]).await;
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("trigger fired "), "{shown}");
}
