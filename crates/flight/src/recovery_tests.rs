//! Issue 11, "corrupt or unreadable state is set aside with a clear log line and the agent comes
//! up": every state file the agent reads at start, truncated or garbage, is set aside as
//! `<file>.corrupt-<secs>` with a warning naming it, and the agent starts without it; what was
//! lost comes back from the ground (a plan whose record was lost is accepted again, once), and a
//! lost tenant id map is rebuilt from the owners of the tenants' folders, so no tenant gets
//! another's folder.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use wire::{Message, OnFailure, Plan, PlanTask, TaskKind, TaskState};

use super::{Agent, Outgoing};
use crate::config::AgentConfig;
use crate::runtime::fake::FakeRuntime;
use crate::volumes::Volumes;

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs `f` with its log captured.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    (out, captured.text())
}

const GROUND_KEY: [u8; 32] = [1; 32];

fn start(dir: &Path) -> (Result<Agent, crate::Error>, mpsc::Receiver<Outgoing>) {
    let (tx, rx) = mpsc::channel(1024);
    let config = AgentConfig {
        system: "em".into(),
        state_dir: dir.join("state"),
        volumes_dir: dir.join("volumes"),
        plan_verifier: Some(wire::PlanSigner::from_bytes(GROUND_KEY).verifier()),
        builder: wire::Builder::Classic,
        catalogue: None,
        limits: crate::DiskLimits::default(),
        quotas: crate::Quotas::none(),
        clock: crate::ClockConfig::Host,
    };
    (
        Agent::with_runtime(&config, Arc::new(FakeRuntime::default()), tx),
        rx,
    )
}

/// A signed plan of one listing task, numbered `sequence`.
fn plan(execution: &str, sequence: u64) -> Plan {
    let now = crate::fsutil::now_ms();
    let mut plan = Plan {
        execution: execution.into(),
        tenant: "alice".into(),
        tasks: vec![PlanTask {
            id: "ls".into(),
            on_failure: OnFailure::Stop,
            trigger: None,
            kind: TaskKind::FilesList {
                volume: None,
                folder: String::new(),
                depth: 1,
            },
        }],
        system: "em".into(),
        sequence,
        elements: None,
        issued_ms: now,
        expires_ms: now + 3_600_000,
        signature: Vec::new(),
    };
    wire::PlanSigner::from_bytes(GROUND_KEY).sign(&mut plan);
    plan
}

/// The files of `folder` whose names begin with `<name>.corrupt-`.
fn set_aside_copies(path: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}.corrupt-", path.file_name().unwrap().to_string_lossy());
    std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// The state files a running agent leaves: the two copies of the sequence numbers, a plan's
/// record and the tenant id map.
const STATE_FILES: [&str; 4] = [
    "plan-sequences.a.json",
    "plan-sequences.b.json",
    "plans/e-held.json",
    "tenants.json",
];

/// A state directory as a running agent leaves it: a plan accepted and not run (its record and
/// the record of sequence numbers), and the tenant id map.
fn seeded_state(dir: &Path) {
    let (agent, _rx) = start(dir);
    let agent = agent.unwrap();
    agent
        .handle_message(Message::Plan(plan("e-held", 7)))
        .unwrap();
    agent
        .inner
        .exec
        .volumes
        .ensure_volume("alice", "pvc")
        .unwrap();
    for f in STATE_FILES {
        assert!(dir.join("state").join(f).is_file(), "{f} was written");
    }
}

#[test]
fn every_unreadable_state_file_is_set_aside_and_the_agent_comes_up() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    for file in STATE_FILES {
        for damage in ["truncated", "garbage", "unreadable"] {
            if damage == "unreadable" && file.starts_with("plans/") {
                // A plan record is a file of its folder: anything else there is not one.
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            seeded_state(dir.path());
            let path = dir.path().join("state").join(file);
            match damage {
                "truncated" => {
                    let bytes = std::fs::read(&path).unwrap();
                    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
                }
                "garbage" => std::fs::write(&path, b"\x00\xffnot json at all").unwrap(),
                // A folder where the file should be: reading it fails.
                _ => {
                    std::fs::remove_file(&path).unwrap();
                    std::fs::create_dir(&path).unwrap();
                }
            }
            let ((agent, _rx), log) = logged(|| start(dir.path()));
            let agent = agent.unwrap_or_else(|e| panic!("{file} {damage}: the agent failed: {e}"));
            let copies = set_aside_copies(&path);
            assert_eq!(copies.len(), 1, "{file} {damage}: set aside once");
            // Gone, or written afresh from what the agent knows (the sequences of its plans,
            // the tenant ids of the folders).
            if path.exists() {
                let fresh = std::fs::read(&path).unwrap();
                let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&fresh);
                assert!(parsed.is_ok(), "{file} {damage}: rewritten whole");
            }
            let line = log
                .lines()
                .find(|l| l.contains("set aside") && l.contains(&path.display().to_string()))
                .unwrap_or_else(|| panic!("{file} {damage}: no log line naming it in {log}"));
            assert!(line.contains("WARN"), "{line}");
            assert!(line.contains(&copies[0].display().to_string()), "{line}");
            // The agent works: it answers its Hello, and takes a new plan.
            let hello = runtime.block_on(agent.hello());
            let Message::Hello { holds, .. } = hello else {
                panic!("not a hello")
            };
            if file == "plans/e-held.json" {
                assert!(holds.is_empty(), "the lost plan is not claimed: {holds:?}");
            } else {
                assert_eq!(holds, ["e-held"]);
            }
            agent
                .handle_message(Message::Plan(plan("e-new", 8)))
                .unwrap();
            assert!(agent.inner.plans.find("e-new").is_some(), "{file} {damage}");
            // A lost tenant map is rebuilt from the folder owners: alice keeps her id.
            let alice = agent.inner.exec.volumes.owner("alice").unwrap();
            assert_eq!(alice.uid, 200_000, "{file} {damage}");
        }
    }
}

/// The ground sends again the plan of an execution the agent no longer holds; its number was
/// seen, but its record was set aside, so it is accepted and runs, once.
#[tokio::test]
async fn a_plan_whose_record_was_set_aside_is_accepted_again_once() {
    let dir = tempfile::tempdir().unwrap();
    seeded_state(dir.path());
    let record = dir.path().join("state/plans/e-held.json");
    std::fs::write(&record, b"{\"seq\": 1, \"pla").unwrap();
    let (agent, mut rx) = start(dir.path());
    let agent = agent.unwrap();
    let Message::Hello { holds, .. } = agent.hello().await else {
        panic!("not a hello")
    };
    assert!(
        holds.is_empty(),
        "the Hello claims nothing: the ground re-sends"
    );
    agent
        .handle_message(Message::Plan(plan("e-held", 7)))
        .unwrap();
    assert!(
        rx.try_recv().is_err(),
        "accepted without a refusal (a listing plan asks for no object)"
    );
    assert_eq!(agent.inner.plans.held(10), ["e-held"]);
    assert!(set_aside_copies(&record).is_empty(), "marked recovered");
    // It runs to its end.
    let worker = {
        let a = agent.clone();
        tokio::spawn(async move { a.run_plans().await })
    };
    let mut finished = false;
    for _ in 0..6000 {
        match tokio::time::timeout(Duration::from_millis(10), rx.recv()).await {
            Ok(Some(Outgoing::Message(Message::ExecutionEvent { state, .. })))
                if state != TaskState::Running =>
            {
                assert_eq!(state, TaskState::Success);
                finished = true;
                break;
            }
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => break,
        }
    }
    worker.abort();
    assert!(finished, "the recovered plan ran to its end");
    // The same plan again is the finished one: its events are sent again, it does not run.
    agent
        .handle_message(Message::Plan(plan("e-held", 7)))
        .unwrap();
    assert!(agent.lock_queue().is_empty());
}

/// A lost or unreadable tenant id map is rebuilt from the owners of the tenant folders: no
/// tenant is handed another's folder, and a new tenant gets an id above every folder's.
#[test]
fn a_lost_tenant_map_hands_no_folder_to_another_tenant() {
    for lose in ["deleted", "garbage"] {
        let dir = tempfile::tempdir().unwrap();
        let (volumes_dir, state) = (dir.path().join("volumes"), dir.path().join("state"));
        std::fs::create_dir_all(&state).unwrap();
        {
            let v = Volumes::open(&volumes_dir, &state).unwrap();
            v.ensure_volume("alice", "pvc").unwrap();
            v.ensure_volume("bob", "pvc").unwrap();
            let uid = std::fs::metadata(volumes_dir.join("bob")).unwrap().uid();
            assert_eq!(
                uid, 200_001,
                "the agent (root, as onboard and in CI) gives folders to tenant ids"
            );
        }
        let map = state.join("tenants.json");
        match lose {
            "deleted" => std::fs::remove_file(&map).unwrap(),
            _ => std::fs::write(&map, b"{\"alice\": 2").unwrap(),
        }
        let (v, log) = logged(|| Volumes::open(&volumes_dir, &state).unwrap());
        // A new tenant first: it must not get alice's id.
        assert_eq!(v.owner("carol").unwrap().uid, 200_002, "{lose}");
        assert_eq!(v.owner("bob").unwrap().uid, 200_001, "{lose}");
        assert_eq!(v.owner("alice").unwrap().uid, 200_000, "{lose}");
        assert!(
            log.contains("tenant id recovered from the owner of its folder"),
            "{log}"
        );
        if lose == "garbage" {
            assert_eq!(set_aside_copies(&map).len(), 1);
            assert!(log.contains("set aside"), "{log}");
        }
        // The rebuilt map was saved.
        let saved: std::collections::BTreeMap<String, u32> =
            serde_json::from_slice(&std::fs::read(&map).unwrap()).unwrap();
        assert_eq!(saved.get("bob"), Some(&200_001));
    }
}

/// Both copies of the sequence numbers lost: the numbers come back from the plans filed, and a
/// plan issued before the loss less the validity window is refused even though it has not
/// expired (the ground's clock and the agent's disagree, or the window was longer), and so is
/// one issued before the newest plan filed; a new plan is accepted.
#[test]
fn plans_issued_long_before_a_total_loss_of_the_sequences_are_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let dir = tempfile::tempdir().unwrap();
    seeded_state(dir.path());
    for copy in ["plan-sequences.a.json", "plan-sequences.b.json"] {
        std::fs::write(dir.path().join("state").join(copy), b"{\"floor\": 0, \"se").unwrap();
    }
    let ((agent, mut rx), log) = logged(|| start(dir.path()));
    let agent = agent.unwrap();
    assert!(log.contains("the plan sequences were lost"), "{log}");
    let Message::Hello { holds, .. } = runtime.block_on(agent.hello()) else {
        panic!("not a hello")
    };
    assert_eq!(holds, ["e-held"]);
    // The held plan's number is known again: the same number under another execution is a
    // replay.
    agent
        .handle_message(Message::Plan(plan("e-other", 7)))
        .unwrap();
    assert!(agent.inner.plans.find("e-other").is_none());

    let now = crate::fsutil::now_ms();
    let mut old = plan("e-old", 50);
    old.issued_ms = now - crate::plans::DEFAULT_PLAN_WINDOW_MS - 60_000;
    old.expires_ms = now + 3_600_000;
    wire::PlanSigner::from_bytes(GROUND_KEY).sign(&mut old);
    while rx.try_recv().is_ok() {}
    agent.handle_message(Message::Plan(old)).unwrap();
    assert!(agent.inner.plans.find("e-old").is_none(), "refused");
    let mut refusal = None;
    while let Ok(o) = rx.try_recv() {
        if let Outgoing::Message(Message::TaskEvent { error: Some(e), .. }) = o {
            refusal = Some(e.message);
        }
    }
    let refusal = refusal.expect("the refusal is answered");
    assert!(
        refusal.contains("lost its record of the plans it accepted"),
        "{refusal}"
    );
    // Issued a second before the plan held, and well within the validity window: the newest
    // plan filed is a floor too, whatever the onboard clock says.
    let held_issued = agent.inner.plans.find("e-held").unwrap().plan.issued_ms;
    let mut recent = plan("e-recent", 51);
    recent.issued_ms = held_issued - 1_000;
    wire::PlanSigner::from_bytes(GROUND_KEY).sign(&mut recent);
    agent.handle_message(Message::Plan(recent)).unwrap();
    assert!(agent.inner.plans.find("e-recent").is_none(), "refused");
    agent
        .handle_message(Message::Plan(plan("e-new", 8)))
        .unwrap();
    assert!(agent.inner.plans.find("e-new").is_some());
}

/// The agent saves a plan's number before it files the plan's record. Killed in between (the
/// number saved, no record), it comes up, the link delivers the plan again (never acknowledged),
/// and that plan is filed and run; the same number under another execution stays a replay.
#[test]
fn a_crash_between_a_plans_number_and_its_record_loses_neither() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let dir = tempfile::tempdir().unwrap();
    let held = plan("e-held", 7);
    {
        let (agent, _rx) = start(dir.path());
        let agent = agent.unwrap();
        // What `accept` does first, and then the crash.
        agent.mark_filing(&held).unwrap();
        assert!(agent.inner.plans.find("e-held").is_none());
    }
    let (agent, mut rx) = start(dir.path());
    let agent = agent.unwrap();
    assert!(!agent.lock_sequences().is_new(7), "the number survived");
    agent
        .handle_message(Message::Plan(plan("e-other", 7)))
        .unwrap();
    assert!(agent.inner.plans.find("e-other").is_none(), "a replay");
    while rx.try_recv().is_ok() {}
    let (handled, log) = logged(|| agent.handle_message(Message::Plan(held.clone())));
    handled.unwrap();
    assert!(log.contains("filing it now"), "{log}");
    assert!(agent.inner.plans.find("e-held").is_some(), "filed");
    assert_eq!(agent.lock_queue().len(), 1, "queued to run");
    assert!(!agent.lock_sequences().was_being_filed(&held));
    // Delivered once more, it is the plan already queued.
    agent.handle_message(Message::Plan(held)).unwrap();
    assert_eq!(agent.lock_queue().len(), 1);
}

/// A signed plan of alice's with the one task `kind`.
fn plan_of(execution: &str, sequence: u64, kind: TaskKind) -> Plan {
    let mut p = plan(execution, sequence);
    p.tasks[0].kind = kind;
    p.signature.clear();
    wire::PlanSigner::from_bytes(GROUND_KEY).sign(&mut p);
    p
}

/// Killed between storing a patch's result and removing the spent patch, the agent finds the
/// patch at its next start and removes it; objects that only look like patches stay while a
/// plan needs them: a tenant's patch file an unfinished plan uplinks, one a finished plan
/// downlinked (the link may still be sending it).
#[tokio::test]
async fn a_patch_a_crash_left_onboard_is_removed_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let v1: Vec<u8> = (0..20_000u32).flat_map(|i| (i * 3).to_le_bytes()).collect();
    let mut v2 = v1.clone();
    v2[100..104].copy_from_slice(b"v2!!");
    let spent = delta::make(Some(&v1), &v2);
    let uplinked = delta::make(Some(&v2), &v1);
    let downlinked = delta::make(None, b"a tenant's own patch file, downlinked");
    {
        let (agent, mut rx) = start(dir.path());
        let agent = agent.unwrap();
        let out = dir.path().join("volumes/alice/pvc/out.oddelta");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(&out, &downlinked).unwrap();
        let down = TaskKind::Downlink {
            volume: "pvc".into(),
            sources: vec!["out.oddelta".into()],
        };
        agent
            .handle_message(Message::Plan(plan_of("e-down", 1, down)))
            .unwrap();
        let worker = {
            let a = agent.clone();
            tokio::spawn(async move { a.run_plans().await })
        };
        let mut ended = None;
        while ended.is_none() {
            match rx.recv().await {
                Some(Outgoing::Message(Message::ExecutionEvent { state, .. }))
                    if state != TaskState::Running =>
                {
                    ended = Some(state)
                }
                Some(_) => {}
                None => break,
            }
        }
        worker.abort();
        assert_eq!(ended, Some(TaskState::Success));
        let up = TaskKind::Uplink {
            volume: "pvc".into(),
            files: vec![wire::UplinkFile {
                path: "in.oddelta".into(),
                digest: wire::Digest::of(&uplinked),
                size: uplinked.len() as u64,
                mode: 0o644,
            }],
        };
        agent
            .handle_message(Message::Plan(plan_of("e-up", 2, up)))
            .unwrap();
        let layout = agent.object_layout();
        for object in [&uplinked, &v1, &spent] {
            layout.put(object).unwrap();
        }
        // What an apply did before the kill: the result stored, the patch not yet removed.
        let store = &agent.inner.exec.store;
        store.put_object(&v2, &wire::Digest::of(&v2)).unwrap();
    }
    let ((agent, _rx), log) = logged(|| start(dir.path()));
    let store = &agent.unwrap().inner.exec.store;
    assert!(
        !store.has(&wire::Digest::of(&spent)),
        "the spent patch is gone"
    );
    for (name, kept) in [
        ("the base", &v1),
        ("the result", &v2),
        ("a held plan's uplink", &uplinked),
        ("a finished plan's downlink", &downlinked),
    ] {
        assert!(store.has(&wire::Digest::of(kept)), "{name} was removed");
    }
    assert!(
        log.contains("removed the spent patches a previous run left onboard removed=1"),
        "{log}"
    );
}
