//! The onboard telemetry digest end to end: the real flight agent on a simulated mission clock
//! (300× the host's) samples its telemetry once an operator sends it an element set, downlinks
//! the closed one-minute buckets over the real link and emulator, and the ground serves them
//! (`GET /api/v1/systems/fm/telemetry`) and plots them on the Systems page. The agent is
//! stopped as a crash would stop it and started again: the buckets go on without a gap, each
//! whole, none twice.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{Stack, later, unique};

/// Mission seconds per host second.
const SCALE: f64 = 300.0;
/// How long the test waits for what must happen, host time: generous, for a loaded machine.
const PATIENCE: Duration = Duration::from_secs(120);

fn ms(time: &str) -> i64 {
    orbit::Epoch::parse_iso8601(time)
        .unwrap_or_else(|| panic!("not a time: {time}"))
        .unix_millis()
}

/// The battery's buckets as the API serves them (the default window: the last 24 hours by the
/// ground's clock).
async fn battery(user: &support::User) -> Vec<api::TelemetryPoint> {
    let (status, body) = user
        .get("/api/v1/systems/fm/telemetry?data_type=battery_soc_percent")
        .await;
    assert_eq!(status, 200, "{body}");
    let t: api::Telemetry = support::assert_schema(&body);
    assert_eq!(t.step_s, 60, "{body}");
    t.series
        .into_iter()
        .next()
        .expect("the series asked for")
        .points
}

/// Waits until the battery has a bucket starting at or after `after_ms` and `more` buckets in
/// all; returns them.
async fn wait_for_buckets(
    user: &support::User,
    after_ms: i64,
    more: usize,
) -> Vec<api::TelemetryPoint> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let points = battery(user).await;
        let newest = points.last().map_or(i64::MIN, |p| ms(&p.start));
        if newest >= after_ms && points.len() >= more {
            return points;
        }
        assert!(
            Instant::now() < deadline,
            "no bucket from {after_ms} in {PATIENCE:?} ({} buckets, newest {newest})",
            points.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agents_telemetry_comes_down_in_buckets_and_is_plotted() {
    let text = include_str!("../../orbit/tests/data/reference_tles.txt");
    let iss = orbit::parse_tle_text(text).unwrap().remove(0);
    let newer = later(&iss, 1.0);
    let start = iss.epoch.plus_seconds(3600.0);
    // The ground's clock runs as the mission clock does, from a little before the agent's
    // anchor: the buckets are always in its past.
    let anchor = SystemTime::now();
    let ground_now = move || {
        let elapsed = anchor.elapsed().unwrap_or_default().as_secs_f64();
        UNIX_EPOCH + Duration::from_secs_f64(start.unix_seconds() + elapsed * SCALE)
    };
    let mut stack = Stack::start_flying(
        "fm",
        Some(ground::SystemOrbit {
            tle: iss.clone(),
            stations: Vec::new(),
        }),
        link::Contact::Always,
        flight::ClockConfig::simulated(start.unix_millis() as u64, SCALE).unwrap(),
        |g| {
            g.with_clock(Arc::new(ground_now))
                .with_approvals([("fm".to_string(), ground::Approval::NotRequired)].into())
        },
    )
    .await;
    let ops = stack.operator(&unique("ops")).await;
    let viewer = stack.user(&unique("viewer")).await;

    // Nothing yet: the agent samples nothing until it has an element set.
    assert!(battery(&viewer).await.is_empty());
    let page = |user: &support::User| {
        support::http_client()
            .get(format!("{}/systems", user.url))
            .header("cookie", format!("orbitdock_session={}", user.token))
            .send()
    };
    let html = page(&viewer).await.unwrap().text().await.unwrap();
    assert!(html.contains("no telemetry received yet"), "{html}");

    let e = orbit::elements_of(&newer);
    let sent = ops
        .http(reqwest::Method::PUT, "/api/v1/systems/fm/elements")
        .json(&api::SendElements {
            tle: format!("{}\n{}\n", e.line1, e.line2),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200, "{}", sent.text().await.unwrap());

    // Twenty minutes of mission time come down.
    let before = wait_for_buckets(&viewer, i64::MIN, 20).await;
    let newest_before = ms(&before.last().unwrap().start);

    // A crash and a restart: the agent goes on from its mark.
    stack.stop_flight().await;
    stack.start_flight();
    let after = wait_for_buckets(&viewer, newest_before + 30 * 60_000, 0).await;

    println!(
        "{} buckets before the restart, {} after",
        before.len(),
        after.len()
    );
    // One bucket a minute, none missing, none partial but the first (sampling started within
    // it), each a whole minute of samples (one every 10 s), across the restart.
    let starts: Vec<i64> = after.iter().map(|p| ms(&p.start)).collect();
    for pair in starts.windows(2) {
        assert_eq!(pair[1] - pair[0], 60_000, "a gap or an overlap: {starts:?}");
    }
    for p in &after[1..] {
        assert_eq!(p.count, 6, "{p:?}");
    }
    for p in &after {
        assert!(
            0.0 <= p.min && p.min <= p.mean && p.mean <= p.max && p.max <= 100.0,
            "{p:?}"
        );
    }
    // The same buckets as before the restart, where they overlap.
    assert_eq!(&after[..before.len()], &before[..]);

    // Any user sees the plot of the battery and of the on-board computer's temperature.
    let html = page(&viewer).await.unwrap().text().await.unwrap();
    assert!(html.contains("data-type=\"battery_soc_percent\""), "{html}");
    assert!(html.contains("data-type=\"temperature_sensor0\""), "{html}");
    assert!(html.contains("<polyline class=\"mean\""), "{html}");
    assert!(!html.contains("no telemetry received yet"), "{html}");
}
