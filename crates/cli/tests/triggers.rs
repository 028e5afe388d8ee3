//! A trigger end to end: the operation's YAML through `orbitdock op validate` (the ground's
//! prediction, printed and as JSON) and `exec start`, the plan with its element set up the link
//! to the real flight agent on a simulated mission clock, the pod fired onboard over Geneva, and
//! the firing back in the execution's task outputs, where it matches the prediction.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// What each test needs: the ISS's elements, the Geneva condition as the YAML writes it, and
/// when the ISS next comes within 800 km of Geneva after its element epoch + 1 h.
struct Sky {
    iss: orbit::Tle,
    entry: orbit::Epoch,
}

fn sky() -> Sky {
    let text = include_str!("../../orbit/tests/data/reference_tles.txt");
    let iss = orbit::parse_tle_text(text).unwrap().remove(0);
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
    Sky { iss, entry }
}

/// A stack whose ground predicts, and whose mission clock starts (at 10× the host's), `lead`
/// mission seconds before the entry; the system's link up as `contact` says.
async fn stack(sky: &Sky, lead: f64, contact: link::Contact) -> Stack {
    let start = sky.entry.plus_seconds(-lead);
    let now = UNIX_EPOCH + Duration::from_secs_f64(start.unix_seconds());
    Stack::start_flying(
        "fm",
        Some(ground::SystemOrbit {
            tle: sky.iss.clone(),
            stations: Vec::new(),
        }),
        contact,
        flight::ClockConfig::simulated(start.unix_millis() as u64, 10.0).unwrap(),
        |g| {
            g.with_clock(Arc::new(move || now))
                .with_approvals([("fm".to_string(), ground::Approval::NotRequired)].into())
        },
    )
    .await
}

fn operation(stack: &Stack, ns: &str) -> std::path::PathBuf {
    let file = stack.dir.path().join("watch.yaml");
    std::fs::write(
        &file,
        format!(
            "id: watch\nnamespace: {ns}\nsystem: fm\ntasks:\n\
             - id: over\n  type: pod.run\n  image: busybox\n  command: [/bin/sh, -c, 'echo over > /data/over.txt']\n  trigger:\n    location: {{latitude: 46.27, longitude: 6.96, radius_km: 800}}\n    deadline: 2h\n"
        ),
    )
    .unwrap();
    file
}

/// The ground's prediction, printed and as JSON, before anything goes up; the plan goes up the
/// link, the agent fires, and the firing in the execution's outputs (API, `exec show`) matches.
#[tokio::test(flavor = "multi_thread")]
async fn the_predicted_firing_is_the_onboard_one() {
    let sky = sky();
    let stack = stack(&sky, 150.0, link::Contact::Always).await;
    let user = stack.user(&unique("trig")).await;
    let ns = unique("orbits");
    let file = operation(&stack, &ns);
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
    support::assert_schema::<api::Validation>(&v);
    let predicted = time(&v["triggers"][0]["firings"][0]["start"]);
    assert!((predicted - sky.entry.unix_seconds()).abs() < 0.01, "{v}");

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
    support::assert_schema::<api::Execution>(&exec);
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

/// The link is up for the plan to go, down when the trigger is due, up again later: the agent
/// fires on time while out of contact, and the ground hears of it at the next contact.
#[tokio::test(flavor = "multi_thread")]
async fn a_trigger_fires_while_the_link_is_down() {
    let sky = sky();
    let t0 = SystemTime::now();
    let (down, up) = (t0 + Duration::from_secs(12), t0 + Duration::from_secs(40));
    let contact = link::Contact::Windows(vec![(t0, down), (up, t0 + Duration::from_secs(3600))]);
    // Due 25 host seconds after the start: in the gap.
    let stack = stack(&sky, 250.0, contact).await;
    let user = stack.user(&unique("trig")).await;
    let ns = unique("orbits");
    let file = operation(&stack, &ns);
    let out = user.cli(&["op", "apply", file.to_str().unwrap()]).await;
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
    assert!(
        SystemTime::now() >= up,
        "the ground heard of the end only once the link was up"
    );
    let exec: Value = serde_json::from_str(&started).unwrap();
    let id = exec["id"].as_str().unwrap();
    let (_, e) = user.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(e["state"], "COMPLETED", "{e}");
    let task = &e["tasks"][0];
    // When the agent started the task, by the host's clock: while the link was down.
    let started_at = time(&task["started_at"]);
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    println!(
        "link down {:.3}..{:.3}; the task started onboard at {started_at:.3}",
        secs(down),
        secs(up)
    );
    assert!(started_at > secs(down) && started_at < secs(up), "{e}");
    let fired = time(&task["outputs"]["trigger"]["fired"]);
    assert!(
        (fired - sky.entry.unix_seconds()).abs() <= TOLERANCE_S,
        "{e}"
    );
}
