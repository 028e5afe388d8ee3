//! Passes, ground tracks and the uplink queue with ETAs, for a flying system configured with a
//! reference TLE and two stations, with the ground's clock set to the TLE's epoch.
//!
//! The flying system's link never comes up (`Contact::Windows(vec![])`), so whatever the ground
//! queues for it stays queued: the plan of each execution, and the objects a fake flight agent
//! asks for (the ground still hears it while its own side is down).

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use common::{Entry, TestGround, free_udp_addr, ground_with, tar};
use ground::{SystemLink, SystemOrbit};
use link::{Contact, EndpointConfig, MessageReceiver, MessageSender, ObjectLayout, spawn_endpoint};
use serde_json::{Value, json};
use wire::{Digest, Direction, LinkKey, Message};

const UPLINK_BPS: f64 = 9600.0;
const DOWNLINK_BPS: f64 = 64_000.0;
/// The payload share of the uplink rate the ground predicts with.
const EFFICIENCY: f64 = 0.97;

/// The reference TLE named `name` whose epoch field starts with `epoch` (`YYDDD`).
fn reference_tle(name: &str, epoch: &str) -> orbit::Tle {
    let text = include_str!("../../orbit/tests/data/reference_tles.txt");
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(3)
        .find(|w| w[0].trim() == name && w[1].get(18..23) == Some(epoch))
        .map(|w| orbit::Tle::parse(Some(name), w[1], w[2]).unwrap())
        .unwrap_or_else(|| panic!("no reference TLE {name} of {epoch}"))
}

fn stations() -> Vec<orbit::StationLink> {
    let station = |name: &str, lat: f64, lon: f64| orbit::StationLink {
        station: orbit::GroundStation {
            name: name.into(),
            latitude_deg: lat,
            longitude_deg: lon,
            altitude_m: 100.0,
            min_elevation_deg: 10.0,
        },
        uplink_bps: UPLINK_BPS,
        downlink_bps: DOWNLINK_BPS,
    };
    vec![
        station("darmstadt", 49.87, 8.65),
        station("santiago", -33.15, -70.67),
    ]
}

fn system(name: &str, bind: SocketAddr, link: SocketAddr, key: LinkKey) -> SystemLink {
    SystemLink {
        name: name.into(),
        bind,
        link,
        key,
        rate_bits_per_sec: None,
        contact: Contact::Windows(Vec::new()),
        orbit: None,
        link_settings: link::LinkSettings::STANDARD,
    }
}

struct Setup {
    g: TestGround,
    /// The ground's clock: the epoch of the `sat` elements.
    now: SystemTime,
    /// A fake flight agent of `sat`.
    flight: MessageSender,
    _flight_rx: MessageReceiver,
    _flight_dir: tempfile::TempDir,
}

/// A ground with `em` (always in contact, 80 kbit/s, nobody listening), `sat` (ISS elements,
/// two stations, a fake flight agent), `stale` (elements 105 days older than the clock) and
/// `aging` (29.5 days older: the limit is 30).
async fn setup() -> Setup {
    let iss = reference_tle("ISS (ZARYA)", "24180");
    let old = reference_tle("ORBITDOCK-SSO", "24075");
    let (ground_addr, flight_addr) = (free_udp_addr(), free_udp_addr());
    let key = LinkKey::from_bytes(rand::random());
    let mut em = system(
        "em",
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:9".parse().unwrap(),
        LinkKey::from_bytes([7; 32]),
    );
    em.contact = Contact::Always;
    em.rate_bits_per_sec = Some(80_000);
    let mut sat = system("sat", ground_addr, flight_addr, key.clone());
    // Up for a moment at the start, long enough for the two endpoints to prove their runs to
    // each other (a peer's new run is heard only once it answered this side's Hello); then down,
    // as the test's clock says (between passes), so nothing queued leaves.
    let handshake_until = SystemTime::now() + Duration::from_secs(3);
    sat.contact = Contact::Windows(vec![(SystemTime::now(), handshake_until)]);
    sat.orbit = Some(SystemOrbit {
        tle: iss.clone(),
        stations: stations(),
    });
    let mut stale = system(
        "stale",
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:9".parse().unwrap(),
        LinkKey::from_bytes([8; 32]),
    );
    stale.orbit = Some(SystemOrbit {
        tle: old,
        stations: stations(),
    });
    // The ISS elements as if published 29.5 days before the clock: good for a day, not a week.
    let mut aging = system(
        "aging",
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:9".parse().unwrap(),
        LinkKey::from_bytes([9; 32]),
    );
    aging.orbit = Some(SystemOrbit {
        tle: orbit::Tle {
            epoch: iss.epoch.plus_seconds(-29.5 * 86_400.0),
            ..iss.clone()
        },
        stations: stations(),
    });
    let mut g = ground_with(vec![em, sat, stale, aging]).await;
    let now = UNIX_EPOCH + Duration::from_secs_f64(iss.epoch.unix_seconds());
    // Executions on `sat` go at once: these tests are about the queue, not the approval gate
    // (tests/roles.rs).
    g.ground = g
        .ground
        .clone()
        .with_clock(Arc::new(move || now))
        .with_approvals([("sat".to_string(), ground::Approval::NotRequired)].into());

    let dir = tempfile::tempdir().unwrap();
    let (flight, flight_rx) = spawn_endpoint(EndpointConfig {
        bind: flight_addr,
        peer: ground_addr,
        key,
        sends: Direction::Down,
        state_dir: dir.path().join("state"),
        objects: ObjectLayout::new(dir.path().join("objects")),
        rate_bits_per_sec: None,
        contact: Contact::Always,
        settings: link::LinkSettings::STANDARD,
        admit: None,
    })
    .await
    .unwrap();
    if let Ok(left) = handshake_until.duration_since(SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_millis(300)).await;
    }
    Setup {
        g,
        now,
        flight,
        _flight_rx: flight_rx,
        _flight_dir: dir,
    }
}

fn time(v: &Value) -> f64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let t = humantime::parse_rfc3339(s).unwrap();
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[tokio::test]
async fn passes_come_sorted_with_their_capacity() {
    let s = setup().await;
    let t = s.g.login("alice").await;
    let r = s.g.get("/api/v1/systems/sat/passes?hours=24", &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["system"].as_str(), v["always_in_contact"].as_bool()),
        (Some("sat"), Some(false))
    );
    assert!((time(&v["generated_at"]) - seconds(s.now)).abs() < 0.001);
    let passes = v["passes"].as_array().unwrap();
    assert!(passes.len() >= 4, "few passes in a day: {v}");
    let now = seconds(s.now);
    let mut last_aos = f64::MIN;
    let mut stations_seen = HashSet::new();
    for p in passes {
        let (aos, los) = (time(&p["aos"]), time(&p["los"]));
        assert!(aos >= last_aos, "not sorted by AOS: {v}");
        last_aos = aos;
        assert!(los > now && aos < now + 24.0 * 3600.0 && los > aos, "{p}");
        let duration = p["duration_s"].as_f64().unwrap();
        assert!((duration - (los - aos)).abs() < 0.002, "{p}");
        assert!(duration < 20.0 * 60.0, "{p}");
        assert!(p["max_elevation_deg"].as_f64().unwrap() >= 10.0, "{p}");
        assert_eq!(p["uplink_bps"].as_f64(), Some(UPLINK_BPS));
        assert_eq!(p["downlink_bps"].as_f64(), Some(DOWNLINK_BPS));
        for (bytes, bps) in [("up_bytes", UPLINK_BPS), ("down_bytes", DOWNLINK_BPS)] {
            let expected = bps * duration / 8.0;
            let got = p[bytes].as_u64().unwrap() as f64;
            assert!(
                (got - expected).abs() <= 1.0 + bps * 0.001 / 8.0,
                "{bytes} {got} is not rate × duration / 8 = {expected}: {p}"
            );
        }
        stations_seen.insert(p["station"].as_str().unwrap().to_string());
    }
    assert_eq!(
        stations_seen,
        HashSet::from(["darmstadt".to_string(), "santiago".to_string()])
    );

    // A longer horizon starts with the same passes.
    let longer =
        s.g.get("/api/v1/systems/sat/passes?hours=72", &t)
            .await
            .json();
    let longer = longer["passes"].as_array().unwrap();
    assert!(longer.len() > passes.len());
    assert_eq!(&longer[..passes.len()], &passes[..]);

    // The Engineering Model has no orbit.
    let em = s.g.get("/api/v1/systems/em/passes", &t).await;
    assert_eq!(em.status, StatusCode::OK);
    let em = em.json();
    assert_eq!(
        (em["passes"].clone(), em["always_in_contact"].clone()),
        (json!([]), json!(true))
    );

    for bad in ["hours=0", "hours=169", "hours=x"] {
        let r =
            s.g.get(&format!("/api/v1/systems/sat/passes?{bad}"), &t)
                .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
    }
    let r = s.g.get("/api/v1/systems/nope/passes", &t).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = s.g.get("/api/v1/systems/sat/passes", "not-a-token").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn elements_too_old_for_the_query_are_a_clear_error() {
    let s = setup().await;
    let t = s.g.login("alice").await;
    for route in ["passes", "track"] {
        let r = s.g.get(&format!("/api/v1/systems/stale/{route}"), &t).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{route}: {}",
            r.text()
        );
        let v = r.json();
        assert_eq!(v["error"]["code"], "unprocessable");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(
            m.contains("system 'stale'")
                && m.contains("days from the element epoch")
                && m.contains("fresh TLE"),
            "{m}"
        );
    }
}

#[tokio::test]
async fn elements_good_for_a_day_answer_for_a_day_only() {
    let s = setup().await;
    let t = s.g.login("alice").await;
    let r = s.g.get("/api/v1/systems/aging/passes?hours=12", &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(!r.json()["passes"].as_array().unwrap().is_empty());
    let r = s.g.get("/api/v1/systems/aging/passes?hours=168", &t).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let m = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        m.contains("system 'aging'") && m.contains("30.0 days"),
        "{m}"
    );
}

#[tokio::test]
async fn the_ground_track_follows_the_orbit() {
    let s = setup().await;
    let t = s.g.login("alice").await;
    let v =
        s.g.get("/api/v1/systems/sat/track?minutes=90&step_s=30", &t)
            .await
            .json();
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 181, "{v}");
    assert!((time(&points[0]["time"]) - seconds(s.now)).abs() < 0.001);
    assert!((time(&points[180]["time"]) - time(&points[0]["time"]) - 5400.0).abs() < 0.001);
    for p in points {
        let (lat, lon) = (p["lat"].as_f64().unwrap(), p["lon"].as_f64().unwrap());
        assert!(lat.abs() <= 52.0 && (-180.0..=180.0).contains(&lon), "{p}");
    }
    let em = s.g.get("/api/v1/systems/em/track", &t).await.json();
    assert_eq!(em["points"], json!([]));
    for bad in ["minutes=0", "step_s=0", "minutes=1440&step_s=1"] {
        let r =
            s.g.get(&format!("/api/v1/systems/sat/track?{bad}"), &t)
                .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
    }
}

/// Uploads `files` into the tenant's namespace, applies an operation uplinking them, and starts
/// it on `system`; returns the execution id.
async fn start_uplink(
    g: &TestGround,
    token: &str,
    ns: &str,
    files: &[(&str, &[u8])],
    system: &str,
) -> String {
    let entries: Vec<Entry<'_>> = files
        .iter()
        .map(|(path, data)| Entry::File(path, data, 0o644))
        .collect();
    let r = g.upload_tar(ns, "", token, tar(&entries)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let yaml = format!(
        "id: up\nnamespace: {ns}\ntasks:\n- id: up\n  type: uplink\n  source: /data\n  destination: in\n"
    );
    let r = g.post_yaml("/api/v1/operations", token, &yaml).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = g
        .post_json(
            "/api/v1/executions",
            Some(token),
            json!({"namespace": ns, "operation": "up", "system": system}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

/// Polls the queue until it shows `mine` transfers of the caller and `others` of other tenants.
async fn queue_with(g: &TestGround, token: &str, system: &str, mine: usize, others: u64) -> Value {
    let uri = format!("/api/v1/systems/{system}/queue");
    for _ in 0..400 {
        let v = g.get(&uri, token).await.json();
        if v["transfers"].as_array().map(Vec::len) == Some(mine)
            && v["other_tenants"]["transfers"] == others
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the queue never showed {mine} + {others}: {}",
        g.get(&uri, token).await.text()
    );
}

#[tokio::test]
async fn the_queue_shows_the_callers_transfers_with_etas_and_hides_other_tenants() {
    let s = setup().await;
    let alice = s.g.login("alice").await;
    let bob = s.g.login("bob").await;
    // 1.5 MB at 9.6 kbit/s takes more than one pass.
    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    let small = b"alice's small file".to_vec();
    let bobs = vec![7u8; 200_000];
    let a = start_uplink(
        &s.g,
        &alice,
        "alice-ns",
        &[("data/big.bin", &big), ("data/small.txt", &small)],
        "sat",
    )
    .await;
    let b = start_uplink(&s.g, &bob, "bob-ns", &[("data/bob.bin", &bobs)], "sat").await;

    // Both plans are queued (the link is down); the agent asks for every object.
    let wanted = vec![Digest::of(&big), Digest::of(&small), Digest::of(&bobs)];
    s.flight
        .send(wire::encode_message(&Message::Need {
            digests: wanted.clone(),
        }))
        .await
        .unwrap();

    let v = queue_with(&s.g, &alice, "sat", 3, 2).await;
    assert_eq!(
        (v["always_in_contact"].clone(), v["link_up"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(v["eta_error"], Value::Null);
    let text = v.to_string();
    assert!(
        !text.contains(&b) && !text.contains(&Digest::of(&bobs).to_string()),
        "bob shows: {text}"
    );
    let transfers = v["transfers"].as_array().unwrap();
    // Sending order: plans first (alice's, then bob's), then the objects as asked for.
    let got: Vec<(bool, &str, u64)> = transfers
        .iter()
        .map(|t| {
            (
                t["message"].as_bool().unwrap(),
                t["execution"].as_str().unwrap(),
                t["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    let plan_size = got[0].2;
    assert_eq!(
        got,
        vec![
            (true, a.as_str(), plan_size),
            (false, a.as_str(), 1_500_000),
            (false, a.as_str(), small.len() as u64)
        ]
    );
    assert_eq!(transfers[1]["digest"], Digest::of(&big).to_string());
    for t in transfers {
        assert_eq!(t["remaining"], t["bytes"]);
    }

    // Bob sees his two and alice's three as a total.
    let bv = queue_with(&s.g, &bob, "sat", 2, 3).await;
    let bob_plan = bv["transfers"][0]["bytes"].as_u64().unwrap();
    assert_eq!(bv["transfers"][0]["execution"], b.as_str());
    assert!(!bv.to_string().contains(&a));
    assert_eq!(
        bv["other_tenants"]["bytes"].as_u64().unwrap(),
        plan_size + 1_500_000 + small.len() as u64
    );
    // Bob's plan is ahead of alice's objects.
    assert_eq!(
        v["other_tenants"]["bytes"].as_u64(),
        Some(bob_plan + 200_000)
    );
    assert_eq!(v["other_tenants"]["bytes_ahead"].as_u64(), Some(bob_plan));
    assert_eq!(transfers[0]["other_bytes_ahead"], 0);
    assert_eq!(transfers[1]["other_bytes_ahead"].as_u64(), Some(bob_plan));

    // Every ETA is in one of the listed passes, in order, and the big file needs more than one.
    let passes =
        s.g.get("/api/v1/systems/sat/passes?hours=72", &alice)
            .await
            .json();
    let passes = passes["passes"].as_array().unwrap();
    let mut last = seconds(s.now);
    let mut used = Vec::new();
    for t in transfers {
        let pass = &t["eta"]["pass"];
        let index = passes
            .iter()
            .position(|p| {
                p["station"] == pass["station"]
                    && p["aos"] == pass["aos"]
                    && p["los"] == pass["los"]
            })
            .unwrap_or_else(|| panic!("ETA pass {pass} is not a listed pass"));
        let done = time(&t["eta"]["completion"]);
        assert!(
            done >= last && done >= time(&pass["aos"]) && done <= time(&pass["los"]) + 0.001,
            "{t}"
        );
        last = done;
        used.push(index);
    }
    assert!(
        used[1] > used[0],
        "1.5 MB at 9.6 kbit/s fits one pass? {used:?}"
    );
    // Alice's execution says when its last transfer lands; bob's does not show alice's.
    let e =
        s.g.get(&format!("/api/v1/executions/{a}"), &alice)
            .await
            .json();
    let eta = &e["uplink_eta"];
    assert_eq!(
        eta["remaining_bytes"].as_u64(),
        Some(plan_size + 1_500_000 + small.len() as u64),
        "{e}"
    );
    assert_eq!(eta["completion"], transfers[2]["eta"]["completion"]);
    assert_eq!(eta["pass"], transfers[2]["eta"]["pass"]);
    let e =
        s.g.get(&format!("/api/v1/executions/{b}"), &bob)
            .await
            .json();
    assert_eq!(
        e["uplink_eta"]["remaining_bytes"].as_u64(),
        Some(bob_plan + 200_000)
    );

    // The dashboard's systems page shows the passes, the track and alice's queue, not bob's.
    let page =
        s.g.send(
            axum::http::Request::builder()
                .uri("/systems")
                .header("cookie", format!("orbitdock_session={alice}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .text();
    for want in [
        "<h3 id=\"sat\">sat</h3>",
        "Max elevation",
        "darmstadt",
        "<svg",
        // The map has land under the track and a labelled graticule (Europe's outline passes
        // through whole-degree points; 30°E and 60°N are labelled).
        "fill=\"#d5dccb\"",
        ">60°E</text>",
        ">60°N</text>",
        "Always in contact",
        &a,
        "other tenants: ",
    ] {
        assert!(page.contains(want), "the dashboard lacks {want}: {page}");
    }
    assert!(!page.contains(&b));
    assert!(
        page.contains("elements of system 'stale' are too old"),
        "{page}"
    );
}

#[tokio::test]
async fn an_always_in_contact_system_predicts_from_its_rate() {
    let s = setup().await;
    let t = s.g.login("alice").await;
    let id = start_uplink(&s.g, &t, "alice-ns", &[("data/x.txt", b"x")], "em").await;
    let v = queue_with(&s.g, &t, "em", 1, 0).await;
    assert_eq!(v["always_in_contact"], true);
    let tr = &v["transfers"][0];
    assert_eq!(
        (tr["message"].clone(), tr["execution"].clone()),
        (json!(true), json!(id))
    );
    assert_eq!(tr["eta"]["pass"], Value::Null);
    let remaining = tr["remaining"].as_f64().unwrap();
    let expected = seconds(s.now) + remaining / (80_000.0 * EFFICIENCY / 8.0);
    assert!(
        (time(&tr["eta"]["completion"]) - expected).abs() < 0.002,
        "{v}"
    );
    let e =
        s.g.get(&format!("/api/v1/executions/{id}"), &t)
            .await
            .json();
    assert_eq!(e["uplink_eta"]["completion"], tr["eta"]["completion"]);
}

/// A nadir trigger is predicted as any other; a trigger with telemetry tests is predicted by the
/// rest of its condition (when it may fire), its tests named as decided onboard, not predicted.
#[tokio::test]
async fn nadir_is_predicted_and_telemetry_is_decided_onboard() {
    let s = setup().await;
    let t = s.g.login("alice").await;
    let yaml = "id: charged\nnamespace: orbits\nsystem: sat\ntasks:\n\
         - id: look\n  type: pod.run\n  image: busybox\n  trigger:\n    nadir: {latitude: 46.27, longitude: 6.96, within_deg: 40}\n    deadline: 24h\n\
         - id: dark\n  type: camera.capture\n  destination: dark.png\n  trigger:\n    eclipse: true\n    telemetry: {battery_soc_percent: {min: 60}}\n";
    let r = s.g.post_yaml("/api/v1/operations/validate", &t, yaml).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    let triggers = v["triggers"].as_array().unwrap_or_else(|| panic!("{v}"));
    let elements = orbit::elements_of(&reference_tle("ISS (ZARYA)", "24180"));
    let propagator = orbit::Propagator::new(&orbit::parse_elements(&elements).unwrap()).unwrap();
    let now = orbit::Epoch::from_unix_seconds(seconds(s.now));
    let look = &triggers[0];
    assert_eq!(
        look["condition"], "pointing within 40° of 46.2700,6.9600",
        "{look}"
    );
    assert_eq!(look.get("decided_onboard"), None, "{look}");
    let near = wire::Condition::Nadir(wire::Nadir {
        target: wire::GeoPoint::from_degrees(46.27, 6.96).unwrap(),
        altitude_m: 0,
        within_mdeg: 40_000,
    });
    let first = orbit::next_firing(&propagator, &near, now, now.plus_seconds(86_400.0))
        .unwrap()
        .expect("over Geneva within a day");
    assert!(
        (time(&look["firings"][0]["start"]) - first.start.unix_seconds()).abs() < 0.002,
        "{look}"
    );
    let dark = &triggers[1];
    assert_eq!(
        dark["condition"], "in eclipse and battery_soc_percent at least 60 %",
        "{dark}"
    );
    assert_eq!(
        dark["decided_onboard"],
        json!(["battery_soc_percent at least 60 %"]),
        "{dark}"
    );
    let shadow = orbit::next_firing(
        &propagator,
        &wire::Condition::Eclipse,
        now,
        now.plus_seconds(86_400.0),
    )
    .unwrap()
    .expect("a shadow within a day");
    assert!(
        (time(&dark["firings"][0]["start"]) - shadow.start.unix_seconds()).abs() < 0.002,
        "{dark}"
    );
}

/// Each task's trigger is predicted before anything goes up, on the operation's system, from
/// the element set the plan would carry (what the agent fires by): `op validate` and `op apply`
/// answer with the firings; a system without an orbit cannot judge a trigger, and an execution
/// of one there is refused.
#[tokio::test]
async fn triggers_are_predicted_before_uplink() {
    let s = setup().await;
    let t = s.g.login("alice").await;
    let yaml = |system: &str| {
        format!(
            "id: watch\nnamespace: orbits\nsystem: {system}\ntasks:\n\
             - id: over\n  type: pod.run\n  image: busybox\n  trigger:\n    location: {{latitude: 46.27, longitude: 6.96, radius_km: 800}}\n    deadline: 24h\n\
             - id: dark\n  type: camera.capture\n  destination: dark.png\n  trigger: {{eclipse: true}}\n"
        )
    };
    let r =
        s.g.post_yaml("/api/v1/operations/validate", &t, &yaml("sat"))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    let triggers = v["triggers"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(triggers.len(), 2, "{v}");
    let elements = orbit::elements_of(&reference_tle("ISS (ZARYA)", "24180"));
    let propagator = orbit::Propagator::new(&orbit::parse_elements(&elements).unwrap()).unwrap();
    let now = orbit::Epoch::from_unix_seconds(seconds(s.now));
    for (p, (index, hours, condition)) in triggers.iter().zip([
        (0, 24.0, "within 800 km of 46.2700,6.9600"),
        (1, 168.0, "in eclipse"),
    ]) {
        assert_eq!(p["index"], index, "{p}");
        assert_eq!(p["condition"], condition, "{p}");
        assert!((time(&p["from"]) - seconds(s.now)).abs() < 0.001, "{p}");
        assert!(
            (time(&p["until"]) - seconds(s.now) - hours * 3600.0).abs() < 0.001,
            "{p}"
        );
        let when = if index == 0 {
            wire::Condition::Location(wire::Location {
                area: wire::Area::Point {
                    at: wire::GeoPoint::from_degrees(46.27, 6.96).unwrap(),
                    altitude_m: 0,
                    radius_m: Some(800_000),
                },
                min_elevation_mdeg: None,
                min_sun_elevation_mdeg: None,
            })
        } else {
            wire::Condition::Eclipse
        };
        let first = orbit::next_firing(&propagator, &when, now, now.plus_seconds(hours * 3600.0))
            .unwrap()
            .expect("it fires");
        let firings = p["firings"].as_array().unwrap();
        assert!(!firings.is_empty() && firings.len() <= 10, "{p}");
        assert!(
            (time(&firings[0]["start"]) - first.start.unix_seconds()).abs() < 0.002,
            "{p}"
        );
        assert!(
            (time(&firings[0]["end"]) - first.end.unix_seconds()).abs() < 0.002,
            "{p}"
        );
    }

    // The dashboard's operation page shows the same.
    let r = s.g.post_yaml("/api/v1/operations", &t, &yaml("sat")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let first = triggers[0]["firings"][0]["start"]
        .as_str()
        .unwrap()
        .to_string();
    let r =
        s.g.call(
            axum::http::Method::POST,
            "/login",
            None,
            Some("application/x-www-form-urlencoded"),
            b"user=alice&password=pw-alice".to_vec(),
        )
        .await;
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    let pair = cookie.split(';').next().unwrap().to_string();
    let page =
        s.g.send(
            axum::http::Request::builder()
                .uri("/operations/orbits/watch")
                .header("cookie", pair)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .text();
    assert!(page.contains("<h2>Triggers on sat</h2>"), "{page}");
    assert!(page.contains(&format!("<td>{first}</td>")), "{page}");

    // An execution shows them too until its tasks run onboard (here its plan waits for a pass).
    let r =
        s.g.post_json(
            "/api/v1/executions",
            Some(&t),
            json!({"namespace": "orbits", "operation": "watch", "system": "sat", "force": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let e = r.json();
    assert_eq!(e["state"], "SCHEDULED", "{e}");
    assert_eq!(
        e["triggers"][0]["firings"][0]["start"],
        first.as_str(),
        "{e}"
    );
    assert_eq!(e["triggers"][1]["condition"], "in eclipse", "{e}");

    // The Engineering Model has no orbit: nothing to predict with, and nothing to run by.
    let r =
        s.g.post_yaml("/api/v1/operations/validate", &t, &yaml("em"))
            .await;
    let v = r.json();
    let error = v["triggers"][0]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(error.contains("system 'em' has no orbit"), "{error}");
    let r = s.g.post_yaml("/api/v1/operations", &t, &yaml("em")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["triggers"].as_array().map(Vec::len), Some(2));
    let r =
        s.g.post_json(
            "/api/v1/executions",
            Some(&t),
            json!({"namespace": "orbits", "operation": "watch", "system": "em", "force": true}),
        )
        .await;
    r.assert_answer(
        StatusCode::BAD_REQUEST,
        "task 'over' has a trigger, but system 'em' has no orbit",
    );
}
