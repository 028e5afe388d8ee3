//! Triggers against the real agent and the real Docker Engine, on a simulated mission clock and
//! a real element set (the ISS, from the orbit tests' reference file): a location trigger and an
//! eclipse trigger and a nadir trigger fire within 5 s (mission time) of the ground's prediction
//! (`orbit::firings` on the element set as the plan carries it, what the ground calls) and of
//! Skyfield's (`tests/triggers_skyfield.py`); a telemetry trigger fires at the first sample of
//! the simulated battery that passes it, and fails at its deadline saying what it read; a trigger neither lost nor fired twice across restarts; and
//! the deadline's failure. The agent runs here without any link: every trigger fires out of
//! contact.
//!
//! Needs `python3` with Skyfield (`pip install skyfield skyfield-data`, as `.ci/run` installs)
//! and the Docker Engine; fails, never skips, without them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wire::{
    Area, Condition, Deadline, ErrorCode, GeoPoint, ImageRef, Location, Measured, Message, Nadir,
    OnFailure, Plan, PlanTask, TaskKind, TaskOutputs, TaskState, TelemetryTest, Trigger,
    TriggerFired,
};

use flight::{Agent, AgentConfig, ClockConfig, Outgoing};

mod common;
use common::Cleanup;

/// How far the onboard firing may be from the predictions, mission seconds (issue 13).
const TOLERANCE_S: f64 = 5.0;
/// How fast the mission clock runs in these tests: 5 mission seconds are half a host second,
/// far more than a wake-up takes.
const SCALE: f64 = 10.0;

const REFERENCE: &str = include_str!("../../orbit/tests/data/reference_tles.txt");

fn iss() -> orbit::Tle {
    orbit::parse_tle_text(REFERENCE).unwrap().remove(0)
}

/// What the ground would put in the plan and predict from.
fn elements() -> wire::Elements {
    orbit::elements_of(&iss())
}

fn propagator() -> orbit::Propagator {
    orbit::Propagator::new(&orbit::parse_elements(&elements()).unwrap()).unwrap()
}

/// Geneva, the reference's own example of a location trigger, with a radius.
const LAT: f64 = 46.27;
const LON: f64 = 6.96;
const RADIUS_KM: f64 = 800.0;

fn over_geneva() -> Condition {
    Condition::Location(Location {
        area: Area::Point {
            at: GeoPoint::from_degrees(LAT, LON).unwrap(),
            altitude_m: 372,
            radius_m: Some((RADIUS_KM * 1000.0) as u32),
        },
        min_elevation_mdeg: None,
        min_sun_elevation_mdeg: None,
    })
}

/// The ground's prediction: the first interval that starts after `from` (not one `from` is
/// already in) in which `when` holds.
fn predicted(when: &Condition, from: orbit::Epoch) -> orbit::Firing {
    orbit::firings(&propagator(), when, from, from.plus_seconds(86_400.0))
        .unwrap()
        .into_iter()
        .find(|f| f.start > from)
        .expect("it starts to hold within a day")
}

/// Skyfield's first location entry and shadow entry in `[from, to]`, Unix seconds.
fn skyfield(from: f64, to: f64) -> (Option<f64>, Option<f64>) {
    let e = elements();
    let v = ask_skyfield(serde_json::json!({
        "name": e.name, "line1": e.line1, "line2": e.line2,
        "location": {"latitude": LAT, "longitude": LON, "radius_km": RADIUS_KM, "from": from, "to": to},
        "shadow": {"from": from, "to": to},
    }));
    (v["location_entry"].as_f64(), v["shadow_entry"].as_f64())
}

/// Skyfield's first instant in `[from, to]` at which Geneva is within `within_deg` of nadir.
fn skyfield_nadir(within_deg: f64, from: f64, to: f64) -> Option<f64> {
    let e = elements();
    let v = ask_skyfield(serde_json::json!({
        "name": e.name, "line1": e.line1, "line2": e.line2,
        "nadir": {"latitude": LAT, "longitude": LON, "altitude_m": 372, "within_deg": within_deg,
                  "from": from, "to": to},
    }));
    v["nadir_entry"].as_f64()
}

fn ask_skyfield(request: serde_json::Value) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/triggers_skyfield.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 with Skyfield: pip install skyfield skyfield-data");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "triggers_skyfield.py failed: pip install skyfield skyfield-data"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One test's agent world: a state and volumes folder, a tenant, the agent on the real engine
/// with a simulated clock, its plan loop.
struct World {
    dir: tempfile::TempDir,
    tenant: String,
    clock: ClockConfig,
    agent: Option<(Agent, JoinHandle<()>)>,
    outbox: Option<mpsc::Receiver<Outgoing>>,
    _cleanup: Cleanup,
}

impl World {
    async fn new(start: orbit::Epoch) -> World {
        World::at_scale(start, SCALE).await
    }

    async fn at_scale(start: orbit::Epoch, scale: f64) -> World {
        let mut lines = Vec::new();
        standins::seed_bases(&mut |l: &str| lines.push(l.to_string()))
            .await
            .unwrap_or_else(|e| panic!("seed-bases needs the Docker Engine: {e} {lines:?}"));
        let tenant = format!("t{:010x}", rand::random::<u64>() >> 24);
        let mut w = World {
            dir: tempfile::tempdir().unwrap(),
            _cleanup: Cleanup(tenant.clone()),
            tenant,
            clock: ClockConfig::simulated(start.unix_millis() as u64, scale).unwrap(),
            agent: None,
            outbox: None,
        };
        w.start().await;
        w
    }

    /// Starts the agent (again) on the world's folders, with its plan loop.
    async fn start(&mut self) {
        let (tx, rx) = mpsc::channel(4096);
        let config = AgentConfig {
            system: "fm".into(),
            state_dir: self.dir.path().join("state"),
            volumes_dir: self.dir.path().join("volumes"),
            plan_verifier: None,
            builder: wire::Builder::Classic,
            catalogue: None,
            limits: flight::DiskLimits::default(),
            quotas: flight::Quotas::none(),
            clock: self.clock,
        };
        let agent = Agent::connect(config, tx)
            .await
            .expect("an agent on the engine");
        let runner = agent.clone();
        let plans = tokio::spawn(async move { runner.run_plans().await });
        self.agent = Some((agent, plans));
        self.outbox = Some(rx);
    }

    /// Stops the agent as a crash would: its plan loop aborted, whatever it ran cut short.
    async fn crash(&mut self) {
        if let Some((agent, plans)) = self.agent.take() {
            plans.abort();
            let _ = plans.await;
            drop(agent);
        }
        self.outbox = None;
    }

    fn agent(&self) -> &Agent {
        &self.agent.as_ref().expect("running").0
    }

    fn plan(&self, execution: &str, tasks: Vec<PlanTask>) -> Plan {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        Plan {
            execution: execution.into(),
            tenant: self.tenant.clone(),
            tasks,
            system: "fm".into(),
            sequence: rand::random::<u32>() as u64 + 1,
            elements: Some(elements()),
            issued_ms: now,
            expires_ms: now + 3_600_000,
            signature: Vec::new(),
        }
    }

    fn volume(&self) -> PathBuf {
        self.dir
            .path()
            .join("volumes")
            .join(&self.tenant)
            .join("pvc")
    }

    /// The final events of the execution's tasks, by task, once it ended (at most `wait`).
    async fn outcome(
        &mut self,
        execution: &str,
        wait: Duration,
    ) -> Vec<(u32, TaskState, Option<wire::TaskError>, Option<TaskOutputs>)> {
        let until = Instant::now() + wait;
        let rx = self.outbox.as_mut().expect("running");
        let mut tasks = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let out = tokio::time::timeout(left, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("the execution did not end; tasks so far {tasks:?}"))
                .expect("the agent's outbox");
            match out {
                Outgoing::Message(Message::TaskEvent {
                    execution: e,
                    task,
                    state,
                    error,
                    outputs,
                    ..
                }) if e == execution && state.is_final() => {
                    tasks.push((task, state, error, outputs))
                }
                Outgoing::Message(Message::ExecutionEvent {
                    execution: e,
                    state,
                    ..
                }) if e == execution && state.is_final() => return tasks,
                _ => {}
            }
        }
    }
}

fn busybox() -> ImageRef {
    ImageRef {
        name: "busybox".into(),
        tag: "latest".into(),
    }
}

/// A pod.run under `trigger` that appends a line to `/data/<file>`, after `sleep_s`.
fn pod(id: &str, trigger: Option<Trigger>, file: &str, sleep_s: u32) -> PlanTask {
    PlanTask {
        id: id.into(),
        on_failure: OnFailure::Stop,
        trigger,
        kind: TaskKind::PodRun {
            pod_name: id.into(),
            image: busybox(),
            command: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("echo ran >> /data/{file}; sleep {sleep_s}"),
            ]),
            args: None,
            env: vec![],
            volume: "pvc".into(),
            max_duration_ms: Some(600_000),
            scheduled_ms: None,
            detached: false,
            node: None,
            merged: false,
            ports: vec![],
        },
    }
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn fired_of(outputs: &Option<TaskOutputs>) -> TriggerFired {
    outputs
        .as_ref()
        .and_then(|o| o.trigger.as_deref().cloned())
        .expect("the task's outputs say how its trigger fired")
}

/// Prints and checks an onboard firing against the ground's prediction and Skyfield's.
fn agrees(what: &str, fired: &TriggerFired, ground: f64, skyfield: f64) {
    let since = seconds(fired.since_ms);
    let at = seconds(fired.fired_ms);
    println!(
        "{what}: onboard since {since:.3} fired {at:.3}; ground {ground:.3} (Δ {:+.3} s); Skyfield {skyfield:.3} (Δ {:+.3} s)",
        at - ground,
        at - skyfield
    );
    for (name, reference) in [("the ground's prediction", ground), ("Skyfield", skyfield)] {
        assert!(
            (since - reference).abs() <= TOLERANCE_S,
            "{what}: the condition's onset onboard {since} is {} s from {name} {reference}",
            since - reference
        );
        assert!(
            (at - reference).abs() <= TOLERANCE_S,
            "{what}: fired onboard at {at}, {} s from {name} {reference}",
            at - reference
        );
    }
}

fn within_six_hours(when: Condition) -> Option<Trigger> {
    Some(Trigger {
        when,
        deadline: Some(Deadline::After(6 * 3_600_000)),
    })
}

/// A location trigger, the mission clock started two minutes before its predicted firing:
/// it fires within 5 s of the ground's and Skyfield's times, and its pod runs once.
#[tokio::test(flavor = "multi_thread")]
async fn a_location_trigger_fires_when_the_ground_and_skyfield_say() {
    let epoch = iss().epoch.plus_seconds(3600.0);
    let location = predicted(&over_geneva(), epoch);
    let from = location.start.unix_seconds() - 600.0;
    let (sky_location, _) = skyfield(from, from + 3600.0);
    let mut w = World::new(location.start.plus_seconds(-120.0)).await;
    let plan = w.plan(
        "e-location",
        vec![pod("over", within_six_hours(over_geneva()), "over.txt", 0)],
    );
    w.agent().handle_message(Message::Plan(plan)).unwrap();
    let tasks = w.outcome("e-location", Duration::from_secs(120)).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].1, TaskState::Success, "{tasks:?}");
    let fired = fired_of(&tasks[0].3);
    assert!(
        fired.reason.starts_with("within 800 km of 46.2700,6.9600"),
        "{fired:?}"
    );
    let sky_location = sky_location.expect("Skyfield sees the same pass");
    agrees(
        "location",
        &fired,
        location.start.unix_seconds(),
        sky_location,
    );
    assert_eq!(
        std::fs::read_to_string(w.volume().join("over.txt")).unwrap(),
        "ran\n"
    );
}

/// An eclipse trigger, the mission clock started two minutes before the predicted shadow
/// entry: it fires within 5 s of the ground's and Skyfield's shadow entry.
#[tokio::test(flavor = "multi_thread")]
async fn an_eclipse_trigger_fires_at_the_shadow_entry() {
    let epoch = iss().epoch.plus_seconds(2.0 * 3600.0);
    let shadow = predicted(&Condition::Eclipse, epoch);
    let from = shadow.start.unix_seconds() - 600.0;
    let (_, sky_shadow) = skyfield(from, from + 3600.0);
    let mut w = World::new(shadow.start.plus_seconds(-120.0)).await;
    let plan = w.plan(
        "e-eclipse",
        vec![pod(
            "dark",
            within_six_hours(Condition::Eclipse),
            "dark.txt",
            0,
        )],
    );
    w.agent().handle_message(Message::Plan(plan)).unwrap();
    let tasks = w.outcome("e-eclipse", Duration::from_secs(120)).await;
    assert_eq!(tasks[0].1, TaskState::Success, "{tasks:?}");
    let fired = fired_of(&tasks[0].3);
    assert_eq!(fired.reason, "in eclipse");
    let sky_shadow = sky_shadow.expect("Skyfield sees the same shadow entry");
    agrees("eclipse", &fired, shadow.start.unix_seconds(), sky_shadow);
    assert_eq!(
        std::fs::read_to_string(w.volume().join("dark.txt")).unwrap(),
        "ran\n"
    );
}

/// A nadir trigger (Geneva within 40° of nadir), the mission clock started two minutes before
/// its predicted firing: it fires within 5 s of the ground's and Skyfield's times.
#[tokio::test(flavor = "multi_thread")]
async fn a_nadir_trigger_fires_when_the_ground_and_skyfield_say() {
    let near = Condition::Nadir(Nadir {
        target: GeoPoint::from_degrees(LAT, LON).unwrap(),
        altitude_m: 372,
        within_mdeg: 40_000,
    });
    let epoch = iss().epoch.plus_seconds(3600.0);
    let nadir = predicted(&near, epoch);
    let from = nadir.start.unix_seconds() - 600.0;
    let sky = skyfield_nadir(40.0, from, from + 3600.0).expect("Skyfield sees the same pass");
    let mut w = World::new(nadir.start.plus_seconds(-120.0)).await;
    let plan = w.plan(
        "e-nadir",
        vec![pod("look", within_six_hours(near), "look.txt", 0)],
    );
    w.agent().handle_message(Message::Plan(plan)).unwrap();
    let tasks = w.outcome("e-nadir", Duration::from_secs(120)).await;
    assert_eq!(tasks[0].1, TaskState::Success, "{tasks:?}");
    let fired = fired_of(&tasks[0].3);
    assert_eq!(fired.reason, "pointing within 40° of 46.2700,6.9600");
    agrees("nadir", &fired, nadir.start.unix_seconds(), sky);
}

/// How fast the mission clock runs for the battery's tests: an orbit in a minute.
const BATTERY_SCALE: f64 = 100.0;

fn battery_at_least(percent: i64) -> Condition {
    Condition::Telemetry(TelemetryTest::Range {
        value: Measured::BatterySocPercent,
        min_milli: Some(percent * 1000),
        max_milli: None,
    })
}

/// A telemetry trigger (the battery at least 85 %), armed as the satellite enters the Earth's
/// shadow with the simulated battery at 80 %: the charge falls through the eclipse and rises in
/// the sunlight after it, and the trigger fires at the first sample that reaches 85 %, in that
/// sunlight; its record says what it read.
#[tokio::test(flavor = "multi_thread")]
async fn a_telemetry_trigger_fires_once_the_battery_is_charged() {
    let epoch = iss().epoch.plus_seconds(2.0 * 3600.0);
    let shadow = predicted(&Condition::Eclipse, epoch);
    let mut w = World::at_scale(shadow.start.plus_seconds(-30.0), BATTERY_SCALE).await;
    let plan = w.plan(
        "e-charged",
        vec![pod(
            "charged",
            within_six_hours(battery_at_least(85)),
            "charged.txt",
            0,
        )],
    );
    w.agent().handle_message(Message::Plan(plan)).unwrap();
    let tasks = w.outcome("e-charged", Duration::from_secs(240)).await;
    assert_eq!(tasks[0].1, TaskState::Success, "{tasks:?}");
    let fired = fired_of(&tasks[0].3);
    println!("{fired:?}; shadow {shadow:?}");
    let (said, read) = fired
        .reason
        .split_once("; telemetry at ")
        .unwrap_or_else(|| panic!("{fired:?}"));
    assert_eq!(said, "battery_soc_percent at least 85 %");
    let (at, values) = read.split_once(": ").unwrap();
    let soc: f64 = values
        .strip_prefix("battery_soc_percent ")
        .and_then(|v| v.strip_suffix(" %"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{fired:?}"));
    // The first sample at 85 % or more: the charge rises 0.077 % a sample in sunlight.
    assert!((85.0..85.08).contains(&soc), "{fired:?}");
    let at = orbit::Epoch::parse_iso8601(at).unwrap().unix_millis() as u64;
    assert!(
        fired.fired_ms >= at && fired.fired_ms - at < 10_000,
        "fired on that sample: {fired:?}"
    );
    // Only in the sunlight after the eclipse could the battery have charged.
    let exit = shadow.end.unix_millis() as u64;
    assert!(
        fired.fired_ms > exit,
        "{fired:?} before the shadow exit {exit}"
    );
    assert_eq!(
        std::fs::read_to_string(w.volume().join("charged.txt")).unwrap(),
        "ran\n"
    );
}

/// A telemetry trigger the battery cannot reach before its deadline fails its task with
/// TRIGGER_DEADLINE_EXCEEDED, saying what the telemetry last read.
#[tokio::test(flavor = "multi_thread")]
async fn a_telemetry_trigger_that_does_not_pass_by_its_deadline_says_what_it_read() {
    let epoch = iss().epoch.plus_seconds(2.0 * 3600.0);
    let shadow = predicted(&Condition::Eclipse, epoch);
    let mut w = World::at_scale(shadow.start.plus_seconds(-30.0), BATTERY_SCALE).await;
    let trigger = Trigger {
        when: battery_at_least(99),
        deadline: Some(Deadline::After(20 * 60_000)),
    };
    let plan = w.plan("e-flat", vec![pod("full", Some(trigger), "full.txt", 0)]);
    w.agent().handle_message(Message::Plan(plan)).unwrap();
    let tasks = w.outcome("e-flat", Duration::from_secs(120)).await;
    let error = tasks[0].2.clone().expect("the task failed");
    assert_eq!(error.code, ErrorCode::TriggerDeadline, "{error:?}");
    assert!(
        error.message.starts_with(
            "the trigger (battery_soc_percent at least 99 %) did not fire before its deadline"
        ) && error
            .message
            .contains("its telemetry tests did not pass while the rest held (newest sample at ")
            && error.message.contains(": battery_soc_percent 7"),
        "{}",
        error.message
    );
    assert!(!w.volume().join("full.txt").exists());
}

/// The record of the plan the agent keeps for `execution`, as JSON.
fn record(w: &World, execution: &str) -> serde_json::Value {
    let path = w.dir.path().join(format!("state/plans/{execution}.json"));
    std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let limit = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < limit, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A crash while the trigger is pending loses nothing (the agent started again fires it when
/// due); a crash after it fired, while its pod runs, does not fire it again: the firing stays
/// the one recorded before the crash and the pod ran once.
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_neither_loses_a_pending_trigger_nor_fires_it_twice() {
    let epoch = iss().epoch.plus_seconds(3.0 * 3600.0);
    let location = predicted(&over_geneva(), epoch);
    let mut w = World::new(location.start.plus_seconds(-300.0)).await;
    let trigger = Trigger {
        when: over_geneva(),
        deadline: Some(Deadline::After(3_600_000)),
    };
    let plan = w.plan("e-restart", vec![pod("once", Some(trigger), "once.txt", 8)]);
    w.agent().handle_message(Message::Plan(plan)).unwrap();
    until("the trigger armed", || {
        !record(&w, "e-restart")["trigger"]["armed_ms"].is_null()
    })
    .await;
    let armed = record(&w, "e-restart")["trigger"]["armed_ms"]
        .as_u64()
        .unwrap();
    w.crash().await;
    assert!(
        record(&w, "e-restart")["trigger"]["fired"].is_null(),
        "not fired yet"
    );

    w.start().await;
    let volume = w.volume();
    until("the pod ran", || volume.join("once.txt").exists()).await;
    let kept = record(&w, "e-restart")["trigger"].clone();
    assert_eq!(kept["armed_ms"].as_u64(), Some(armed), "armed once: {kept}");
    let fired: TriggerFired = serde_json::from_value(kept["fired"].clone()).expect("fired");
    w.crash().await;

    w.start().await;
    let tasks = w.outcome("e-restart", Duration::from_secs(120)).await;
    assert_eq!(tasks[0].1, TaskState::Success, "{tasks:?}");
    assert_eq!(
        fired_of(&tasks[0].3),
        fired,
        "the firing recorded before the crash"
    );
    assert_eq!(
        std::fs::read_to_string(volume.join("once.txt")).unwrap(),
        "ran\n"
    );
    let ground = location.start.unix_seconds();
    assert!(
        (seconds(fired.since_ms) - ground).abs() <= TOLERANCE_S,
        "{fired:?} vs the ground's {ground}"
    );
}

/// A trigger that cannot fire before its deadline fails its task with
/// TRIGGER_DEADLINE_EXCEEDED and a message that says so; the pod never runs, nor what follows.
#[tokio::test(flavor = "multi_thread")]
async fn a_trigger_that_cannot_fire_before_its_deadline_fails_its_task() {
    let epoch = iss().epoch.plus_seconds(3600.0);
    let shadow = predicted(&Condition::Eclipse, epoch);
    // Sunlit from the start until the shadow entry, with the deadline before it.
    let start = shadow.start.plus_seconds(-600.0);
    let mut w = World::new(start).await;
    let trigger = Trigger {
        when: Condition::Eclipse,
        deadline: Some(Deadline::At(shadow.start.unix_millis() as u64 - 300_000)),
    };
    let plan = w.plan(
        "e-late",
        vec![
            pod("dark", Some(trigger), "dark.txt", 0),
            pod("after", None, "after.txt", 0),
        ],
    );
    w.agent().handle_message(Message::Plan(plan)).unwrap();
    let tasks = w.outcome("e-late", Duration::from_secs(60)).await;
    let error = tasks[0]
        .2
        .clone()
        .unwrap_or_else(|| panic!("the task failed: {tasks:?} {shadow:?}"));
    assert_eq!(error.code, ErrorCode::TriggerDeadline, "{error:?}");
    assert_eq!(error.code.name(), "TRIGGER_DEADLINE_EXCEEDED");
    assert!(
        error
            .message
            .starts_with("the trigger (in eclipse) cannot fire before its deadline"),
        "{}",
        error.message
    );
    assert_eq!(tasks.len(), 1, "nothing after it ran: {tasks:?}");
    assert!(!w.volume().join("dark.txt").exists() && !w.volume().join("after.txt").exists());
}

/// A cancel ends the wait for a trigger: the task never starts, it and every task after it
/// end `CANCELLED`, and nothing runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_ends_the_wait_for_a_trigger() {
    let epoch = iss().epoch.plus_seconds(3600.0);
    let mut w = World::new(epoch).await;
    // Due five mission hours from now, half an hour of host time at this clock's scale.
    let due = epoch.plus_seconds(5.0 * 3600.0).unix_millis() as u64;
    let trigger = Trigger {
        when: Condition::Window {
            not_before_ms: Some(due),
            not_after_ms: None,
        },
        deadline: None,
    };
    let plan = w.plan(
        "e-cancel",
        vec![
            pod("waits", Some(trigger), "waits.txt", 0),
            pod("after", None, "after.txt", 0),
        ],
    );
    w.agent().handle_message(Message::Plan(plan)).unwrap();
    let record_armed = || record(&w, "e-cancel")["trigger"]["armed_ms"].is_u64();
    until("the trigger armed", record_armed).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    w.agent()
        .handle_message(Message::Cancel(wire::CancelOrder {
            execution: "e-cancel".into(),
            system: "fm".into(),
            by: "alice".into(),
            issued_ms: now,
            signature: Vec::new(),
        }))
        .unwrap();
    let tasks = w.outcome("e-cancel", Duration::from_secs(60)).await;
    let states: Vec<TaskState> = tasks.iter().map(|t| t.1).collect();
    assert_eq!(
        states,
        [TaskState::Cancelled, TaskState::Cancelled],
        "{tasks:?}"
    );
    assert!(!w.volume().join("waits.txt").exists() && !w.volume().join("after.txt").exists());
}

/// Plans waiting for a trigger hold no running slot: with more of them waiting than plans may
/// run at once (eight), another tenant's plan still runs at once.
#[tokio::test(flavor = "multi_thread")]
async fn plans_waiting_for_triggers_keep_no_other_plan_from_running() {
    let epoch = iss().epoch.plus_seconds(3600.0);
    let mut w = World::new(epoch).await;
    let due = epoch.plus_seconds(5.0 * 3600.0).unix_millis() as u64;
    for i in 0..9 {
        let trigger = Trigger {
            when: Condition::Window {
                not_before_ms: Some(due),
                not_after_ms: None,
            },
            deadline: None,
        };
        let mut plan = w.plan(
            &format!("e-wait{i}"),
            vec![pod("waits", Some(trigger), "waits.txt", 0)],
        );
        plan.tenant = format!("{}w{i}", w.tenant);
        w.agent().handle_message(Message::Plan(plan)).unwrap();
    }
    for i in 0..9 {
        let armed = || record(&w, &format!("e-wait{i}"))["trigger"]["armed_ms"].is_u64();
        until("every trigger armed", armed).await;
    }
    let plan = w.plan("e-now", vec![pod("now", None, "now.txt", 0)]);
    w.agent().handle_message(Message::Plan(plan)).unwrap();
    let tasks = w.outcome("e-now", Duration::from_secs(60)).await;
    assert_eq!(tasks[0].1, TaskState::Success, "{tasks:?}");
    assert!(w.volume().join("now.txt").exists());
}

/// A trigger whose plan carries no element set cannot be judged: its task fails as invalid,
/// saying why, and nothing runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_trigger_without_an_element_set_fails_as_invalid() {
    let mut w = World::new(iss().epoch).await;
    let mut plan = w.plan(
        "e-blind",
        vec![pod(
            "dark",
            within_six_hours(Condition::Eclipse),
            "dark.txt",
            0,
        )],
    );
    plan.elements = None;
    w.agent().handle_message(Message::Plan(plan)).unwrap();
    let tasks = w.outcome("e-blind", Duration::from_secs(60)).await;
    let error = tasks[0].2.clone().expect("the task failed");
    assert_eq!(error.code, ErrorCode::ValidationError, "{error:?}");
    assert_eq!(
        error.message,
        "the task has a trigger but its plan carries no element set to judge it by"
    );
    assert!(!w.volume().join("dark.txt").exists());
}
