//! Plans on disk: the queue survives a crash.
//!
//! Each accepted plan is a JSON record in `state_dir/plans/<execution>.json`, rewritten
//! atomically after every task with the index of the next task and the final event of each task
//! that ran. A finished plan moves to `plans/done/` (the last [`MAX_DONE`] are kept), so a plan
//! the ground sends again is recognised and its events can be sent again instead of running it
//! twice.
//!
//! Beyond those, [`Sequences`] (in `state_dir/plan-sequences.json`) remembers which plan sequence numbers
//! were accepted: the high-water mark and every number of the last [`SEQUENCE_WINDOW`] below it.
//! A plan whose record was forgotten long ago is still recognised by its number, and refused.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wire::{Plan, TaskError, TaskOutputs, TaskState};

use crate::error::Error;
use crate::fsutil;

/// Finished plans kept for recognising a plan sent again.
const MAX_DONE: usize = 1000;

/// How many accepted sequence numbers [`Sequences`] remembers one by one. Plans may arrive out of
/// order (two executions started at once on the ground, or a plan re-sent after a later one), so
/// a number below the high-water mark is not refused for that alone; one below the window is.
pub(crate) const SEQUENCE_WINDOW: usize = 4096;

/// The plan sequence numbers accepted: every one above `floor` is remembered in `seen`, and
/// nothing at or below `floor` is ever accepted again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sequences {
    floor: u64,
    seen: BTreeSet<u64>,
    /// Marked since last saved.
    #[serde(skip)]
    dirty: bool,
}

impl Sequences {
    /// Whether a plan numbered `seq` may be accepted: above the floor and never accepted.
    pub(crate) fn is_new(&self, seq: u64) -> bool {
        seq > self.floor && !self.seen.contains(&seq)
    }

    /// Remembers that `seq` was accepted; beyond [`SEQUENCE_WINDOW`] numbers the oldest becomes
    /// the floor.
    pub(crate) fn mark(&mut self, seq: u64) {
        if !self.is_new(seq) {
            return;
        }
        self.seen.insert(seq);
        while self.seen.len() > SEQUENCE_WINDOW {
            if let Some(oldest) = self.seen.pop_first() {
                self.floor = oldest;
            }
        }
        self.dirty = true;
    }

    /// The highest number accepted (0 before any).
    pub(crate) fn high_water(&self) -> u64 {
        self.seen.last().copied().unwrap_or(self.floor)
    }
}

/// A plan and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PlanRecord {
    /// Arrival order.
    pub(crate) seq: u64,
    pub(crate) plan: Plan,
    /// Index of the next task to run.
    pub(crate) next: usize,
    /// Whether a task failed.
    pub(crate) failed: bool,
    /// Whether the execution has ended.
    pub(crate) finished: bool,
    /// The final event of each task that ran, in order.
    pub(crate) events: Vec<TaskRecord>,
}

/// The final state of one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskRecord {
    pub(crate) task: u32,
    pub(crate) state: TaskState,
    pub(crate) at_ms: u64,
    pub(crate) error: Option<TaskError>,
    pub(crate) outputs: Option<TaskOutputs>,
}

/// The plan records under the state directory.
#[derive(Debug)]
pub(crate) struct PlanStore {
    pending: PathBuf,
    done: PathBuf,
    sequences: PathBuf,
}

impl PlanStore {
    /// Opens (creating) `state_dir/plans` and `state_dir/plans/done`.
    pub(crate) fn open(state_dir: &Path) -> Result<PlanStore, Error> {
        let pending = state_dir.join("plans");
        let done = pending.join("done");
        fs::create_dir_all(&done).map_err(|e| Error::io("cannot create", &done, e))?;
        // Beside the folder of records, so that no execution's name can be its name.
        let sequences = state_dir.join("plan-sequences.json");
        Ok(PlanStore {
            pending,
            done,
            sequences,
        })
    }

    /// The sequence numbers accepted, as last saved, with those of `pending` marked (a crash may
    /// have come between saving a plan and saving its number). An unreadable file is set aside
    /// ([`cas::set_aside`]) with a warning, and the numbers start again from those of `pending`.
    pub(crate) fn load_sequences(&self, pending: &[PlanRecord]) -> Sequences {
        let mut s = match fs::read(&self.sequences) {
            Ok(bytes) => match serde_json::from_slice::<Sequences>(&bytes) {
                Ok(s) => s,
                Err(e) => {
                    set_aside(&self.sequences, "record of plan sequences", &e);
                    self.sequences_of_done()
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Sequences::default(),
            Err(e) => {
                set_aside(&self.sequences, "record of plan sequences", &e);
                self.sequences_of_done()
            }
        };
        for r in pending {
            s.mark(r.plan.sequence);
        }
        s
    }

    /// The sequence numbers of the finished plans still filed: what can be known of the accepted
    /// numbers once their record is lost.
    fn sequences_of_done(&self) -> Sequences {
        let mut s = Sequences::default();
        for path in json_files(&self.done) {
            if let Ok(r) = read(&path) {
                s.mark(r.plan.sequence);
            }
        }
        s
    }

    /// Whether the record of `execution` (a checked id) was set aside as unreadable: the plan
    /// the ground sends again for it is then accepted although its number was seen.
    pub(crate) fn was_set_aside(&self, execution: &str) -> bool {
        let prefix = format!("{execution}.json.corrupt-");
        fs::read_dir(&self.pending)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
    }

    /// Says that the plan of `execution` came again and was filed anew: its set-aside records
    /// are renamed `<name>.json.recovered-<…>`, so that it is accepted again only once.
    pub(crate) fn mark_recovered(&self, execution: &str) {
        let prefix = format!("{execution}.json.corrupt-");
        for e in fs::read_dir(&self.pending).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix(&prefix) {
                let to = self
                    .pending
                    .join(format!("{execution}.json.recovered-{rest}"));
                if let Err(err) = fs::rename(e.path(), &to) {
                    tracing::warn!(file = %e.path().display(), error = %err, "cannot rename");
                }
            }
        }
    }

    /// Saves the sequence numbers if any was marked since the last save.
    pub(crate) fn save_sequences(&self, s: &mut Sequences) -> Result<(), Error> {
        if !s.dirty {
            return Ok(());
        }
        let path = &self.sequences;
        let bytes = serde_json::to_vec(s).map_err(|e| Error::io("cannot encode", path, e))?;
        fsutil::write_atomic(path, &bytes).map_err(|e| Error::io("cannot write", path, e))?;
        s.dirty = false;
        Ok(())
    }

    /// The executions of the unfinished plans, at most `limit` of them (in no particular order).
    pub(crate) fn held(&self, limit: usize) -> Vec<String> {
        json_files(&self.pending)
            .into_iter()
            .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
            .take(limit)
            .collect()
    }

    /// Writes the record of an unfinished plan (the execution id must have been checked).
    pub(crate) fn save(&self, record: &PlanRecord) -> Result<(), Error> {
        let path = self.pending.join(format!("{}.json", record.plan.execution));
        let bytes = serde_json::to_vec(record).map_err(|e| Error::io("cannot encode", &path, e))?;
        fsutil::write_atomic(&path, &bytes).map_err(|e| Error::io("cannot write", &path, e))
    }

    /// Files a finished plan under `done/` and forgets the oldest beyond [`MAX_DONE`].
    pub(crate) fn finish(&self, record: &PlanRecord) -> Result<(), Error> {
        let name = format!("{}.json", record.plan.execution);
        let path = self.done.join(&name);
        let bytes = serde_json::to_vec(record).map_err(|e| Error::io("cannot encode", &path, e))?;
        fsutil::write_atomic(&path, &bytes).map_err(|e| Error::io("cannot write", &path, e))?;
        match fs::remove_file(self.pending.join(&name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(Error::io("cannot remove", &self.pending.join(&name), e));
            }
            _ => {}
        }
        self.prune();
        Ok(())
    }

    /// The unfinished plans, in arrival order. A record that cannot be read is set aside
    /// ([`cas::set_aside`]) with a warning: the agent no longer holds that execution, says so in
    /// its `Hello`, and the ground sends the plan again.
    pub(crate) fn load_pending(&self) -> Vec<PlanRecord> {
        let mut records: Vec<PlanRecord> = json_files(&self.pending)
            .into_iter()
            .filter_map(|path| match read(&path) {
                Ok(r) => Some(r),
                Err(e) => {
                    set_aside(&path, "plan record", &e);
                    None
                }
            })
            .collect();
        records.sort_by_key(|r| r.seq);
        records
    }

    /// The record of an execution, pending or done.
    pub(crate) fn find(&self, execution: &str) -> Option<PlanRecord> {
        let name = format!("{execution}.json");
        read(&self.pending.join(&name))
            .or_else(|_| read(&self.done.join(&name)))
            .ok()
    }

    fn prune(&self) {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = json_files(&self.done)
            .into_iter()
            .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
            .collect();
        if files.len() <= MAX_DONE {
            return;
        }
        files.sort();
        for (_, p) in &files[..files.len() - MAX_DONE] {
            let _ = fs::remove_file(p);
        }
    }
}

/// Sets an unreadable state file aside with a warning naming it and why.
pub(crate) use cas::set_aside_with_warning as set_aside;

fn json_files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect()
}

fn read(path: &Path) -> Result<PlanRecord, String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(execution: &str, seq: u64) -> PlanRecord {
        PlanRecord {
            seq,
            plan: Plan {
                execution: execution.into(),
                tenant: "alice".into(),
                tasks: vec![],
                system: "em".into(),
                sequence: seq,
                issued_ms: 0,
                expires_ms: u64::MAX,
                signature: Vec::new(),
            },
            next: 0,
            failed: false,
            finished: false,
            events: vec![],
        }
    }

    #[test]
    fn pending_plans_come_back_in_order_and_done_ones_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path()).unwrap();
        store.save(&record("b", 2)).unwrap();
        store.save(&record("a", 1)).unwrap();
        let mut c = record("c", 3);
        store.save(&c).unwrap();
        fs::write(dir.path().join("plans/junk.json"), b"{").unwrap();
        c.finished = true;
        store.finish(&c).unwrap();

        let reopened = PlanStore::open(dir.path()).unwrap();
        let pending: Vec<String> = reopened
            .load_pending()
            .into_iter()
            .map(|r| r.plan.execution)
            .collect();
        assert_eq!(pending, ["a", "b"]);
        assert!(set_aside_beside(&dir.path().join("plans/junk.json")));
        assert!(reopened.find("c").unwrap().finished);
        assert!(!reopened.find("a").unwrap().finished);
        assert!(reopened.find("zzz").is_none());
        let mut held = reopened.held(10);
        held.sort();
        assert_eq!(held, ["a", "b"]);
        assert_eq!(reopened.held(1).len(), 1);
    }

    #[test]
    fn sequences_are_accepted_once_in_any_order_within_the_window() {
        let mut s = Sequences::default();
        assert!(!s.is_new(0), "an unsealed plan has no number to accept");
        for seq in [5, 3, 4, 1] {
            assert!(s.is_new(seq));
            s.mark(seq);
            assert!(!s.is_new(seq));
        }
        assert!(s.is_new(2), "late, but never accepted");
        assert_eq!(s.high_water(), 5);
        // Beyond the window, the oldest numbers become the floor: a gap below it is closed.
        for seq in 6..=(SEQUENCE_WINDOW as u64 + 4) {
            s.mark(seq);
        }
        assert!(!s.is_new(2), "below the floor");
        assert!(!s.is_new(5));
        assert_eq!(s.seen.len(), SEQUENCE_WINDOW);
    }

    #[test]
    fn sequences_survive_a_restart_and_pending_plans_are_marked() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path()).unwrap();
        let mut s = store.load_sequences(&[]);
        s.mark(7);
        store.save_sequences(&mut s).unwrap();
        // A plan saved just before a crash, its number not yet saved.
        store.save(&record("late", 9)).unwrap();
        let store = PlanStore::open(dir.path()).unwrap();
        let pending = store.load_pending();
        assert_eq!(pending.len(), 1);
        let s = store.load_sequences(&pending);
        assert!(!s.is_new(7) && !s.is_new(9) && s.is_new(8));
        // An unreadable file is set aside; the agent still comes up.
        fs::write(dir.path().join("plan-sequences.json"), b"{").unwrap();
        let s = store.load_sequences(&[]);
        assert!(s.is_new(7));
        assert!(set_aside_beside(&dir.path().join("plan-sequences.json")));
    }

    /// Whether `<path>.corrupt-<secs>` exists beside `path`, and `path` does not.
    fn set_aside_beside(path: &Path) -> bool {
        let prefix = format!("{}.corrupt-", path.file_name().unwrap().to_string_lossy());
        !path.exists()
            && fs::read_dir(path.parent().unwrap())
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
    }
}
