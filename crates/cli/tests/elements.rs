//! A newer element set sent on its own (`orbitdock elements send`): signed by the ground, up the
//! real link to the real flight agent on a simulated mission clock, kept on its disk, and used
//! at once by a trigger that waits on a plan carrying the older set (it fires when the newer set
//! says, not the older). The ground refuses a tenant, a set no newer than the one in use and a
//! bad one, each clearly, and shows the set in use.

mod support;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use support::{Stack, later, unique};

/// The onboard firing may be this far from the element set's prediction, mission seconds.
const TOLERANCE_S: f64 = 5.0;

fn time(v: &Value) -> f64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    orbit::Epoch::parse_iso8601(s)
        .unwrap_or_else(|| panic!("not a time: {s}"))
        .unix_seconds()
}

fn text(tle: &orbit::Tle) -> String {
    let e = orbit::elements_of(tle);
    format!("{}\n{}\n", e.line1, e.line2)
}

/// The first time from `after` the satellite of `tle` comes within 800 km of Geneva.
fn over_geneva(tle: &orbit::Tle, after: orbit::Epoch) -> orbit::Epoch {
    let over = wire::Condition::Location(wire::Location {
        area: wire::Area::Point {
            at: wire::GeoPoint::from_degrees(46.27, 6.96).unwrap(),
            altitude_m: 0,
            radius_m: Some(800_000),
        },
        min_elevation_mdeg: None,
        min_sun_elevation_mdeg: None,
    });
    let p = orbit::Propagator::new(tle).unwrap();
    orbit::firings(&p, &over, after, after.plus_seconds(86_400.0))
        .unwrap()
        .into_iter()
        .find(|f| f.start > after)
        .expect("over Geneva within a day")
        .start
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_element_set_moves_a_waiting_trigger_and_stays_onboard() {
    let text_all = include_str!("../../orbit/tests/data/reference_tles.txt");
    let iss = orbit::parse_tle_text(text_all).unwrap().remove(0);
    let newer = later(&iss, 2.0);
    let after = iss.epoch.plus_seconds(3600.0);
    let old_entry = over_geneva(&iss, after);
    // The mission clock starts 150 s before the older set's entry, at 10× the host's.
    let start = old_entry.plus_seconds(-150.0);
    let new_entry = over_geneva(&newer, start);
    println!(
        "entry by the older set {:.3}, by the newer {:.3}",
        old_entry.unix_seconds(),
        new_entry.unix_seconds()
    );
    assert!(
        new_entry.unix_seconds() - old_entry.unix_seconds() > 30.0,
        "the two sets must disagree for the test to tell them apart"
    );
    let now = UNIX_EPOCH + Duration::from_secs_f64(start.unix_seconds());
    let stack = Stack::start_flying(
        "fm",
        Some(ground::SystemOrbit {
            tle: iss.clone(),
            stations: Vec::new(),
        }),
        link::Contact::Always,
        flight::ClockConfig::simulated(start.unix_millis() as u64, 10.0).unwrap(),
        |g| {
            g.with_clock(Arc::new(move || now))
                .with_approvals([("fm".to_string(), ground::Approval::NotRequired)].into())
        },
    )
    .await;
    let ops = stack.operator(&unique("ops")).await;
    let user = stack.user(&unique("trig")).await;
    let dir = stack.dir.path();

    // Before: the system uses the systems file's set.
    let (code, shown) = ops.cli_json(&["elements", "show", "fm"]).await;
    assert_eq!(code, 0, "{shown}");
    let shown: Option<api::SystemElements> = support::assert_schema(&shown);
    let shown = shown.expect("fm has an orbit");
    assert_eq!(shown.source, "declared");
    assert_eq!(shown.line1, orbit::elements_of(&iss).line1);

    // A plan that carries the older set goes up and waits for Geneva.
    let ns = unique("orbits");
    let op = dir.join("watch.yaml");
    std::fs::write(
        &op,
        format!(
            "id: watch\nnamespace: {ns}\nsystem: fm\ntasks:\n\
             - id: over\n  type: pod.run\n  image: busybox\n  command: [/bin/sh, -c, 'echo over > /data/over.txt']\n  trigger:\n    location: {{latitude: 46.27, longitude: 6.96, radius_km: 800}}\n    deadline: 2h\n"
        ),
    )
    .unwrap();
    let out = user.cli(&["op", "apply", op.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, exec) = user
        .cli_json(&["exec", "start", &format!("{ns}/watch")])
        .await;
    assert_eq!(code, 0, "{exec}");
    let id = exec["id"].as_str().unwrap().to_string();

    // Refused: a tenant; a bad set; another satellite's; the older set again.
    let newer_file = dir.join("newer.tle");
    std::fs::write(&newer_file, text(&newer)).unwrap();
    let out = user
        .cli(&["elements", "send", "fm", newer_file.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("operator"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let put = |tle: String| {
        ops.http(reqwest::Method::PUT, "/api/v1/systems/fm/elements")
            .json(&api::SendElements { tle })
            .send()
    };
    let bad = put(text(&newer).replacen("1 25544U", "1 25544X", 1))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body.to_string()
            .contains("'tle' is not a valid element set"),
        "{body}"
    );
    let older = put(text(&iss)).await.unwrap();
    assert_eq!(older.status(), 409);
    let body: Value = older.json().await.unwrap();
    assert!(body.to_string().contains("is not later than"), "{body}");
    let unknown = ops
        .http(reqwest::Method::PUT, "/api/v1/systems/nope/elements")
        .json(&api::SendElements { tle: text(&newer) })
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // The operator sends the newer set.
    let (code, sent) = ops
        .cli_json(&["elements", "send", "fm", newer_file.to_str().unwrap()])
        .await;
    assert_eq!(code, 0, "{sent}");
    let sent: api::SystemElements = support::assert_schema(&sent);
    assert_eq!(sent.source, "sent");
    assert_eq!(sent.line1, orbit::elements_of(&newer).line1);
    assert_eq!(sent.sent_by.as_deref(), Some(ops.name.as_str()));
    // Once is enough: the same set again is no newer.
    let again = put(text(&newer)).await.unwrap();
    assert_eq!(again.status(), 409);

    // The trigger fires when the newer set says.
    let mut e = Value::Null;
    for _ in 0..1200 {
        let (_, got) = user.get(&format!("/api/v1/executions/{id}")).await;
        e = got;
        if matches!(
            e["state"].as_str(),
            Some("COMPLETED" | "FAILED" | "CANCELLED")
        ) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(e["state"], "COMPLETED", "{e}");
    let fired = time(&e["tasks"][0]["outputs"]["trigger"]["since"]);
    println!(
        "fired onboard {fired:.3}: Δ {:+.3} s from the newer set's entry, {:+.3} s from the older's",
        fired - new_entry.unix_seconds(),
        fired - old_entry.unix_seconds()
    );
    assert!(
        (fired - new_entry.unix_seconds()).abs() <= TOLERANCE_S,
        "{e}"
    );

    // Kept onboard, and shown by the ground as the set in use.
    let kept: wire::Elements = serde_json::from_slice(
        &std::fs::read(dir.join("flight/state/telemetry/elements.json")).unwrap(),
    )
    .unwrap();
    let newer_elements = orbit::elements_of(&newer);
    assert_eq!(
        (kept.line1, kept.line2),
        (newer_elements.line1, newer_elements.line2)
    );
    let (status, system) = user.get("/api/v1/systems/fm").await;
    assert_eq!(status, 200);
    assert_eq!(system["elements"]["source"], "sent", "{system}");
    assert_eq!(system["elements"]["line1"], sent.line1.as_str(), "{system}");
    let out = ops.cli(&["elements", "show", "fm"]).await;
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&sent.line1) && printed.contains("sent on its own by"),
        "{printed}"
    );
}
