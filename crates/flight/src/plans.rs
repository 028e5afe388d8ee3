//! Plans on disk: the queue survives a crash.
//!
//! Each accepted plan is a JSON record in `state_dir/plans/<execution>.json`, rewritten
//! atomically after every task with the index of the next task and the final event of each task
//! that ran. A finished plan moves to `plans/done/` (the last [`MAX_DONE`] are kept), so a plan
//! the ground sends again is recognised and its events can be sent again instead of running it
//! twice.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wire::{Plan, TaskError, TaskOutputs, TaskState};

use crate::error::Error;
use crate::fsutil;

/// Finished plans kept for recognising a plan sent again.
const MAX_DONE: usize = 1000;

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
}

impl PlanStore {
    /// Opens (creating) `state_dir/plans` and `state_dir/plans/done`.
    pub(crate) fn open(state_dir: &Path) -> Result<PlanStore, Error> {
        let pending = state_dir.join("plans");
        let done = pending.join("done");
        fs::create_dir_all(&done).map_err(|e| Error::io("cannot create", &done, e))?;
        Ok(PlanStore { pending, done })
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

    /// The unfinished plans, in arrival order. A record that cannot be read is set aside as
    /// `<name>.corrupt` with a warning.
    pub(crate) fn load_pending(&self) -> Vec<PlanRecord> {
        let mut records: Vec<PlanRecord> = json_files(&self.pending)
            .into_iter()
            .filter_map(|path| match read(&path) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "set aside an unreadable plan record");
                    let _ = fs::rename(&path, path.with_extension("corrupt"));
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
        assert!(dir.path().join("plans/junk.corrupt").exists());
        assert!(reopened.find("c").unwrap().finished);
        assert!(!reopened.find("a").unwrap().finished);
        assert!(reopened.find("zzz").is_none());
    }
}
