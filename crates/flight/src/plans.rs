//! Plans on disk: the queue survives a crash.
//!
//! Each accepted plan is a JSON record in `state_dir/plans/<execution>.json`, rewritten
//! atomically after every task with the index of the next task and the final event of each task
//! that ran. A finished plan moves to `plans/done/` (the last [`MAX_DONE`] are kept), so a plan
//! the ground sends again is recognised and its events can be sent again instead of running it
//! twice.
//!
//! Beyond those, [`Sequences`] remembers which plan sequence numbers were accepted: the
//! high-water mark and every number of the last [`SEQUENCE_WINDOW`] below it. A plan whose record
//! was forgotten long ago is still recognised by its number, and refused.
//!
//! A plan's number is saved (synced) before its record is filed or queued, so no crash can leave
//! a record, or a plan running, whose number is not marked. Until the record is filed the number
//! is kept as *being filed* with the plan's digest ([`Sequences::filing`]): a crash in between
//! leaves the plan's message unacknowledged, the link delivers it again, and that same plan (and
//! no other under its number) is filed then instead of being refused as a replay.
//!
//! # Two copies of the sequences
//!
//! They are kept in two files, `state_dir/plan-sequences.a.json` and `.b.json`, written in turn,
//! each with a generation number and the sha256 of its content: the newest copy that verifies is
//! read. One copy lost (unreadable, truncated, not matching its checksum) loses nothing: it is set
//! aside, the other copy is at most one save older, and what that save added, the number of the
//! last plan accepted, is in that plan's record, still filed (pending, or among the last
//! [`MAX_DONE`] finished). Both lost, the numbers are rebuilt from the records filed, and since a
//! replayed plan whose record was pruned could then pass, every plan *issued* before a floor is
//! refused from then on (`Sequences::issued_floor_ms`, kept in the copies too): the later of the
//! newest issue time among the plans filed (a replay of an older plan cannot be told from a new
//! one any more) and the loss less the plans' validity window ([`DEFAULT_PLAN_WINDOW_MS`], or the
//! longest window of a plan on file if longer; a plan that old has expired by the onboard clock
//! anyway). The first does not depend on the onboard clock, so it holds if that clock is wrong or
//! set back. A plan issued before the newest one filed but not yet delivered when the copies were
//! lost is refused too: the ground runs it again as a new execution if it must.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wire::{Digest, Plan, TaskError, TaskKind, TaskOutputs, TaskState};

use crate::error::Error;
use crate::fsutil;

/// Finished plans kept for recognising a plan sent again.
const MAX_DONE: usize = 1000;

/// How many accepted sequence numbers [`Sequences`] remembers one by one. Plans may arrive out of
/// order (two executions started at once on the ground, or a plan re-sent after a later one), so
/// a number below the high-water mark is not refused for that alone; one below the window is.
pub(crate) const SEQUENCE_WINDOW: usize = 4096;

/// How long a plan is valid after it is issued when no plan on file says longer: the window
/// the ground gives its plans ([`wire::PLAN_VALIDITY_MS`], a week). Plans carry their own issue
/// time and expiry; this only bounds how far back the floor of [`Sequences::issued_floor_ms`]
/// reaches after both copies are lost.
pub(crate) const DEFAULT_PLAN_WINDOW_MS: u64 = wire::PLAN_VALIDITY_MS;

/// The plan sequence numbers accepted: every one above `floor` is remembered in `seen`, and
/// nothing at or below `floor` is ever accepted again; nor any plan issued before
/// `issued_floor_ms` (set when both copies were lost).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sequences {
    floor: u64,
    seen: BTreeSet<u64>,
    /// Plans issued before this (milliseconds since the Unix epoch) are refused: 0 until the
    /// record of accepted numbers was lost.
    #[serde(default)]
    issued_floor_ms: u64,
    /// Numbers saved before their plan's record was filed, with that plan's digest: the plan
    /// delivered again after a crash in between is filed then (see the module's documentation).
    /// Written only when not empty, so a copy of an earlier version verifies as it was sealed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    filing: Vec<Filing>,
    /// Counts the saves: the copy with the higher one is the newer.
    #[serde(default)]
    generation: u64,
    /// Marked since last saved.
    #[serde(skip)]
    dirty: bool,
    /// The next save writes both copies (the first after a start, or after a copy was lost).
    #[serde(skip)]
    write_both: bool,
}

/// A plan whose number was saved before its record was filed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Filing {
    sequence: u64,
    /// Its execution: filed when a record of it is.
    execution: String,
    /// The sha256 of the plan ([`plan_digest`]): only this plan is filed under the number.
    digest: String,
}

/// The most numbers kept as being filed (plans are filed one at a time; a few at most are
/// between their number and their record when the agent stops).
const MAX_FILING: usize = 64;

/// The sha256 of a plan as the agent holds it (its JSON), naming it among plans of one number.
pub(crate) fn plan_digest(plan: &Plan) -> String {
    // Plain data: serialising it cannot fail.
    wire::Digest::of(&serde_json::to_vec(plan).unwrap_or_default()).hex()
}

/// One copy on disk: [`Sequences`] and the sha256 of its JSON with `sha256` empty.
#[derive(Debug, Serialize, Deserialize)]
struct Copy {
    #[serde(flatten)]
    sequences: Sequences,
    sha256: String,
}

impl Copy {
    fn seal(sequences: &Sequences) -> Copy {
        let mut copy = Copy {
            sequences: sequences.clone(),
            sha256: String::new(),
        };
        copy.sha256 = copy.digest();
        copy
    }

    fn digest(&self) -> String {
        let unsealed = Copy {
            sequences: self.sequences.clone(),
            sha256: String::new(),
        };
        // Plain data: serialising it cannot fail.
        wire::Digest::of(&serde_json::to_vec(&unsealed).unwrap_or_default()).hex()
    }

    /// Reads and verifies a copy.
    fn open(bytes: &[u8]) -> Result<Sequences, String> {
        let copy: Copy = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if copy.digest() != copy.sha256 {
            return Err("its content does not match its sha256".into());
        }
        Ok(copy.sequences)
    }
}

impl Sequences {
    /// Whether a plan numbered `seq` may be accepted: above the floor and never accepted.
    pub(crate) fn is_new(&self, seq: u64) -> bool {
        seq > self.floor && !self.seen.contains(&seq)
    }

    /// Why a plan issued at `issued_ms` is refused whatever its number: issued before the floor
    /// set when the record of accepted numbers was lost.
    pub(crate) fn issued_too_early(&self, issued_ms: u64) -> Option<String> {
        (issued_ms < self.issued_floor_ms).then(|| {
            format!(
                "the plan was issued at {issued_ms} ms since the epoch, before {} ms: the agent \
                 lost its record of the plans it accepted, and refuses every plan issued before \
                 the newest it had filed, or long before the loss (a possible replay)",
                self.issued_floor_ms
            )
        })
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

    /// Marks `seq` as accepted for `plan`, whose record is about to be filed.
    pub(crate) fn mark_filing(&mut self, seq: u64, plan: &Plan) {
        self.mark(seq);
        let filing = Filing {
            sequence: seq,
            execution: plan.execution.clone(),
            digest: plan_digest(plan),
        };
        if !self.filing.contains(&filing) {
            self.filing.retain(|f| f.sequence != seq);
            self.filing.push(filing);
            if self.filing.len() > MAX_FILING {
                self.filing.remove(0);
            }
            self.dirty = true;
        }
    }

    /// Whether `plan`, under a number already marked, is the plan that number was saved for
    /// before its record was filed (delivered again after a crash in between).
    pub(crate) fn was_being_filed(&self, plan: &Plan) -> bool {
        self.filing.iter().any(|f| {
            f.sequence == plan.sequence
                && f.execution == plan.execution
                && f.digest == plan_digest(plan)
        })
    }

    /// Says that the record of the plan numbered `seq` is filed.
    pub(crate) fn filed(&mut self, seq: u64) {
        self.mark(seq);
        let before = self.filing.len();
        self.filing.retain(|f| f.sequence != seq);
        if self.filing.len() != before {
            self.dirty = true;
        }
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
    /// Whether the execution was cancelled (it ended `Cancelled`, whatever its tasks did).
    #[serde(default)]
    pub(crate) cancelled: bool,
    /// The trigger of the task at `next`, once it is armed (see `agent_triggers`); one of an
    /// earlier task is left until the next is armed, and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) trigger: Option<crate::agent::triggering::TriggerRecord>,
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
    /// The two copies of the sequences, written in turn (the one of an even generation first).
    copies: [PathBuf; 2],
    /// Where one file held them before there were two copies; read when neither copy exists.
    legacy: PathBuf,
}

impl PlanStore {
    /// Opens (creating) `state_dir/plans` and `state_dir/plans/done`.
    pub(crate) fn open(state_dir: &Path) -> Result<PlanStore, Error> {
        let pending = state_dir.join("plans");
        let done = pending.join("done");
        fs::create_dir_all(&done).map_err(|e| Error::io("cannot create", &done, e))?;
        // Beside the folder of records, so that no execution's name can be theirs.
        let copies = [
            state_dir.join("plan-sequences.a.json"),
            state_dir.join("plan-sequences.b.json"),
        ];
        Ok(PlanStore {
            pending,
            done,
            copies,
            legacy: state_dir.join("plan-sequences.json"),
        })
    }

    /// The sequence numbers accepted, as last saved, with those of `pending` and of the finished
    /// plans filed marked (a crash may have come between saving a plan and saving its number,
    /// and a lost copy lacks the last number saved in the other). A copy that cannot be read or
    /// verified is set aside ([`cas::set_aside`]) with a warning; the newest that verifies is
    /// used. When none does, but plans were accepted before (a copy existed, or records are
    /// filed), the numbers are rebuilt from the records and plans issued before `now_ms` less the
    /// plans' validity window are refused from then on.
    pub(crate) fn load_sequences(&self, pending: &[PlanRecord], now_ms: u64) -> Sequences {
        const WHAT: &str = "copy of the plan sequences";
        let (mut found, mut missing) = (Vec::new(), Vec::new());
        let mut lost = false;
        for path in &self.copies {
            match fs::read(path) {
                Ok(bytes) => match Copy::open(&bytes) {
                    Ok(s) => found.push(s),
                    Err(e) => {
                        set_aside(path, WHAT, &e);
                        lost = true;
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(path),
                Err(e) => {
                    set_aside(path, WHAT, &e);
                    lost = true;
                }
            }
        }
        // Every save after a start writes both copies first: one without the other was lost.
        if let ([_], [gone]) = (found.as_slice(), missing.as_slice()) {
            tracing::warn!(file = %gone.display(), "a copy of the plan sequences is missing");
            lost = true;
        }
        if found.is_empty() && !lost {
            // Before two copies, one file without a checksum.
            match fs::read(&self.legacy) {
                Ok(bytes) => match serde_json::from_slice::<Sequences>(&bytes) {
                    Ok(s) => found.push(s),
                    Err(e) => {
                        set_aside(&self.legacy, "record of plan sequences", &e);
                        lost = true;
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    set_aside(&self.legacy, "record of plan sequences", &e);
                    lost = true;
                }
            }
        }
        // Read only when something was lost: up to `MAX_DONE` records, each up to a plan's size.
        let done = if lost || found.is_empty() {
            self.done_records()
        } else {
            Vec::new()
        };
        let mut s = match found.into_iter().max_by_key(|s| s.generation) {
            Some(s) => {
                if lost {
                    tracing::warn!("one copy of the plan sequences was lost; the other holds them");
                }
                s
            }
            // Nothing was ever saved: a new agent (no records filed either) starts empty.
            None if !lost && done.is_empty() && pending.is_empty() => Sequences::default(),
            None => {
                let window = done
                    .iter()
                    .chain(pending)
                    .map(|r| r.plan.expires_ms.saturating_sub(r.plan.issued_ms))
                    // A plan that never expires says nothing of the window.
                    .filter(|w| *w < 10 * DEFAULT_PLAN_WINDOW_MS)
                    .fold(DEFAULT_PLAN_WINDOW_MS, u64::max);
                // The newest plan filed was issued before the loss, whatever the clock says.
                let newest = done.iter().chain(pending).map(|r| r.plan.issued_ms).max();
                let mut s = Sequences {
                    issued_floor_ms: now_ms.saturating_sub(window).max(newest.unwrap_or(0)),
                    ..Sequences::default()
                };
                tracing::warn!(
                    issued_floor_ms = s.issued_floor_ms,
                    newest_filed_ms = newest,
                    records = done.len() + pending.len(),
                    "the plan sequences were lost; rebuilt from the plans filed, and plans issued \
                     before the floor are refused from now on"
                );
                s.dirty = true;
                s
            }
        };
        for r in done.iter().chain(pending) {
            s.mark(r.plan.sequence);
        }
        // Numbers whose plan was filed after all (a crash after its record, before the save
        // that said so).
        let before = s.filing.len();
        s.filing.retain(|f| self.find(&f.execution).is_none());
        if s.filing.len() != before {
            s.dirty = true;
        }
        if lost {
            s.dirty = true;
        }
        s.write_both = true;
        s
    }

    /// The finished plans still filed: what can be known of the accepted numbers once their
    /// record is lost.
    fn done_records(&self) -> Vec<PlanRecord> {
        json_files(&self.done)
            .iter()
            .filter_map(|p| read(p).ok())
            .collect()
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

    /// Saves the sequence numbers if any was marked since the last save: the next generation,
    /// into the copy that does not hold the last one (into both, the first time after a start).
    pub(crate) fn save_sequences(&self, s: &mut Sequences) -> Result<(), Error> {
        if !s.dirty {
            return Ok(());
        }
        let mut next = s.clone();
        next.generation += 1;
        let bytes = serde_json::to_vec(&Copy::seal(&next))
            .map_err(|e| Error::io("cannot encode", &self.copies[0], e))?;
        let slot = (next.generation % 2) as usize;
        let targets: &[usize] = if s.write_both {
            &[slot, 1 - slot]
        } else {
            &[slot]
        };
        for &i in targets {
            let path = &self.copies[i];
            fsutil::write_atomic(path, &bytes).map_err(|e| Error::io("cannot write", path, e))?;
        }
        if s.write_both {
            // Both copies now hold what the single file did.
            let _ = fs::remove_file(&self.legacy);
        }
        s.generation = next.generation;
        s.dirty = false;
        s.write_both = false;
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
    #[cfg(test)]
    pub(crate) fn load_pending(&self) -> Vec<PlanRecord> {
        self.load_pending_signed(|_| true)
    }

    /// The pending records whose plan `signed` accepts; any other is set aside, never run (the
    /// agent files a plan only after verifying it, so one that does not verify was put there by
    /// something else).
    pub(crate) fn load_pending_signed(&self, signed: impl Fn(&Plan) -> bool) -> Vec<PlanRecord> {
        let mut records: Vec<PlanRecord> = json_files(&self.pending)
            .into_iter()
            .filter_map(|path| match read(&path) {
                Ok(r) if signed(&r.plan) => Some(r),
                Ok(_) => {
                    set_aside(
                        &path,
                        "plan record",
                        &"its plan does not bear the ground's signature",
                    );
                    None
                }
                Err(e) => {
                    set_aside(&path, "plan record", &e);
                    None
                }
            })
            .collect();
        records.sort_by_key(|r| r.seq);
        records
    }

    /// The objects the unfinished plans refer to: their uplinks' files and the files their
    /// downlinks sent (which the link may still be sending). An unreadable record is skipped
    /// here (it is set aside when the plans are loaded). Blocking.
    pub(crate) fn held_objects(&self) -> HashSet<Digest> {
        let mut objects = HashSet::new();
        for record in json_files(&self.pending)
            .iter()
            .filter_map(|p| read(p).ok())
        {
            for task in &record.plan.tasks {
                if let TaskKind::Uplink { files, .. } = &task.kind {
                    objects.extend(files.iter().map(|f| f.digest));
                }
            }
            objects.extend(downlinked(&record));
        }
        objects
    }

    /// The objects the finished plans on file downlinked: the link may still be sending them.
    /// Blocking.
    pub(crate) fn done_downlinks(&self) -> HashSet<Digest> {
        json_files(&self.done)
            .iter()
            .filter_map(|p| read(p).ok())
            .flat_map(|r| downlinked(&r).collect::<Vec<_>>())
            .collect()
    }

    /// Whether a plan of `execution` is on file, and finished or not.
    pub(crate) fn standing(&self, execution: &str) -> crate::cancels::PlanStanding {
        use crate::cancels::PlanStanding;
        let name = format!("{execution}.json");
        if self.pending.join(&name).exists() {
            PlanStanding::Unfinished
        } else if self.done.join(&name).exists() {
            PlanStanding::Ended
        } else {
            PlanStanding::Absent
        }
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

/// The objects a plan's downlinks sent, as its record says.
fn downlinked(record: &PlanRecord) -> impl Iterator<Item = Digest> + '_ {
    record
        .events
        .iter()
        .filter_map(|e| e.outputs.as_ref())
        .flat_map(|o| o.files.iter().map(|f| f.digest))
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
            cancelled: false,
            seq,
            plan: Plan {
                execution: execution.into(),
                tenant: "alice".into(),
                tasks: vec![],
                system: "em".into(),
                sequence: seq,
                elements: None,
                issued_ms: 0,
                expires_ms: u64::MAX,
                signature: Vec::new(),
            },
            next: 0,
            failed: false,
            finished: false,
            events: vec![],
            trigger: None,
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

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn a_pending_record_whose_plan_does_not_verify_is_set_aside_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path()).unwrap();
        store.save(&record("signed", 1)).unwrap();
        store.save(&record("planted", 2)).unwrap();
        let kept = store.load_pending_signed(|plan| plan.execution == "signed");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].plan.execution, "signed");
        let left: Vec<String> = fs::read_dir(&store.pending)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            left.iter().any(|n| n.starts_with("planted.json.corrupt-")),
            "set aside, kept for a look: {left:?}"
        );
        assert_eq!(store.load_pending().len(), 1, "never loaded again");
    }

    #[test]
    fn sequences_survive_a_restart_and_pending_plans_are_marked() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path()).unwrap();
        let mut s = store.load_sequences(&[], NOW);
        assert!(
            s.floor == 0 && s.seen.is_empty() && s.issued_floor_ms == 0,
            "a new agent starts empty: {s:?}"
        );
        s.mark(7);
        store.save_sequences(&mut s).unwrap();
        assert!(
            store.copies.iter().all(|c| c.is_file()),
            "both copies written"
        );
        // A plan saved just before a crash, its number not yet saved.
        store.save(&record("late", 9)).unwrap();
        let store = PlanStore::open(dir.path()).unwrap();
        let pending = store.load_pending();
        assert_eq!(pending.len(), 1);
        let s = store.load_sequences(&pending, NOW);
        assert!(!s.is_new(7) && !s.is_new(9) && s.is_new(8));
        assert_eq!(s.issued_too_early(0), None, "nothing was lost");
    }

    /// Accepts and files plans 1 to 5, each number saved as the agent saves it; returns the
    /// copy that holds the newest generation and the other.
    fn five_plans(store: &PlanStore) -> (PathBuf, PathBuf) {
        let mut s = store.load_sequences(&[], NOW);
        for seq in 1..=5 {
            let mut r = record(&format!("e{seq}"), seq);
            store.save(&r).unwrap();
            s.mark(seq);
            store.save_sequences(&mut s).unwrap();
            r.finished = true;
            store.finish(&r).unwrap();
        }
        let generation = |p: &PathBuf| Copy::open(&fs::read(p).unwrap()).unwrap().generation;
        let [a, b] = store.copies.clone();
        assert_ne!(generation(&a), generation(&b), "written in turn");
        if generation(&a) > generation(&b) {
            (a, b)
        } else {
            (b, a)
        }
    }

    #[test]
    fn one_lost_copy_loses_nothing() {
        for damage in ["garbage", "truncated", "checksum", "deleted"] {
            for lose_newest in [true, false] {
                let dir = tempfile::tempdir().unwrap();
                let store = PlanStore::open(dir.path()).unwrap();
                let (newest, older) = five_plans(&store);
                let older_copy = Copy::open(&fs::read(&older).unwrap()).unwrap();
                assert!(older_copy.is_new(5), "the older copy lacks the last number");
                let path = if lose_newest { &newest } else { &older };
                let bytes = fs::read(path).unwrap();
                match damage {
                    "garbage" => fs::write(path, b"\x00\xffnot json").unwrap(),
                    "truncated" => fs::write(path, &bytes[..bytes.len() / 2]).unwrap(),
                    // Valid JSON whose content no longer matches its checksum.
                    "checksum" => {
                        let text = String::from_utf8(bytes).unwrap().replace("[1,", "[");
                        fs::write(path, text).unwrap();
                    }
                    _ => fs::remove_file(path).unwrap(),
                }
                // Older records pruned: only the last plan's is still filed.
                for seq in 1..=4 {
                    fs::remove_file(dir.path().join(format!("plans/done/e{seq}.json"))).unwrap();
                }
                let store = PlanStore::open(dir.path()).unwrap();
                let mut s = store.load_sequences(&[], NOW);
                let case = format!("{damage}, newest lost: {lose_newest}");
                for seq in 1..=5 {
                    assert!(!s.is_new(seq), "{case}: {seq} is still known");
                }
                assert!(s.is_new(6), "{case}");
                assert_eq!(
                    s.issued_too_early(0),
                    None,
                    "{case}: no floor on issue times"
                );
                if damage != "deleted" {
                    assert!(set_aside_beside(path), "{case}");
                }
                // Both copies are whole again after the next save.
                store.save_sequences(&mut s).unwrap();
                for c in &store.copies {
                    let copy = Copy::open(&fs::read(c).unwrap()).unwrap();
                    assert!(!copy.is_new(5), "{case}: {}", c.display());
                }
            }
        }
    }

    #[test]
    fn both_copies_lost_refuse_plans_issued_before_the_loss_less_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path()).unwrap();
        five_plans(&store);
        // A finished plan valid for ten days: the window reaches that far back. (Issued before
        // that, so the window, not its issue time, makes the floor.)
        let mut long = record("long", 6);
        long.plan.issued_ms = NOW - 20 * 24 * 3600 * 1000;
        long.plan.expires_ms = long.plan.issued_ms + 10 * 24 * 3600 * 1000;
        long.finished = true;
        store.finish(&long).unwrap();
        for c in &store.copies {
            fs::write(c, b"{").unwrap();
        }
        let store = PlanStore::open(dir.path()).unwrap();
        let mut s = store.load_sequences(&[], NOW);
        let floor = NOW - 10 * 24 * 3600 * 1000;
        let refused = s
            .issued_too_early(floor - 1)
            .expect("issued before the floor");
        assert!(refused.contains(&format!("before {floor} ms")), "{refused}");
        assert_eq!(s.issued_too_early(floor), None);
        // The numbers filed are still known.
        assert!((1..=6).all(|seq| !s.is_new(seq)) && s.is_new(7));
        assert!(store.copies.iter().all(|c| set_aside_beside(c)));
        // The floor is kept: a restart with good copies refuses the same plans.
        store.save_sequences(&mut s).unwrap();
        let s = PlanStore::open(dir.path())
            .unwrap()
            .load_sequences(&[], NOW + 1);
        assert!(s.issued_too_early(floor - 1).is_some());

        // Without any window on file (plans that never expire), the ground's week.
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path()).unwrap();
        five_plans(&store);
        for c in &store.copies {
            fs::remove_file(c).unwrap();
        }
        let s = store.load_sequences(&[], NOW);
        let floor = NOW - DEFAULT_PLAN_WINDOW_MS;
        assert!(s.issued_too_early(floor - 1).is_some() && s.issued_too_early(floor).is_none());
    }

    /// With both copies lost, the newest issue time among the plans filed is a floor too: a
    /// plan issued before it is refused even when the onboard clock says it is recent, or was
    /// set back.
    #[test]
    fn both_copies_lost_take_the_floor_from_the_newest_plan_filed() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path()).unwrap();
        let mut s = store.load_sequences(&[], NOW);
        for (execution, seq, issued) in [("a", 1, NOW - 5_000), ("b", 2, NOW - 1_000)] {
            let mut r = record(execution, seq);
            r.plan.issued_ms = issued;
            r.plan.expires_ms = issued + 3_600_000;
            store.save(&r).unwrap();
            s.mark(seq);
            store.save_sequences(&mut s).unwrap();
            if execution == "a" {
                r.finished = true;
                store.finish(&r).unwrap();
            }
        }
        for c in &store.copies {
            fs::remove_file(c).unwrap();
        }
        let pending = store.load_pending();
        for now in [NOW, NOW - 30 * 24 * 3600 * 1000] {
            let s = store.load_sequences(&pending, now);
            assert!(
                s.issued_too_early(NOW - 1_001).is_some(),
                "clock at {now}: issued before the newest filed"
            );
            assert_eq!(s.issued_too_early(NOW - 1_000), None);
            assert!(!s.is_new(1) && !s.is_new(2) && s.is_new(3));
        }
        // A clock far ahead: the window's floor is the stronger one.
        let s = store.load_sequences(&pending, NOW + 30 * 24 * 3600 * 1000);
        assert!(s.issued_too_early(NOW + 1_000).is_some());
    }

    /// A number saved before its record was filed (a crash in between): the same plan delivered
    /// again may be filed under it, no other plan; once the record is filed, nothing waits.
    #[test]
    fn a_number_saved_before_its_record_waits_for_that_plan_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = PlanStore::open(dir.path()).unwrap();
        let mut s = store.load_sequences(&[], NOW);
        let r = record("e1", 4);
        s.mark_filing(4, &r.plan);
        store.save_sequences(&mut s).unwrap();
        // The crash: no record.
        let s = PlanStore::open(dir.path())
            .unwrap()
            .load_sequences(&[], NOW);
        assert!(!s.is_new(4), "the number is saved");
        assert!(s.was_being_filed(&r.plan));
        let mut other = record("e2", 4);
        assert!(!s.was_being_filed(&other.plan), "another execution");
        other.plan.execution = "e1".into();
        other.plan.issued_ms = 1;
        assert!(
            !s.was_being_filed(&other.plan),
            "another plan of that execution"
        );
        // Filed, then a crash before the save that said so: the next start sees the record.
        store.save(&r).unwrap();
        let mut s = store.load_sequences(&store.load_pending(), NOW);
        assert!(!s.was_being_filed(&r.plan) && !s.is_new(4));
        assert!(s.dirty);
        store.save_sequences(&mut s).unwrap();
        let copy = Copy::open(&fs::read(&store.copies[0]).unwrap()).unwrap();
        assert!(copy.filing.is_empty());
        // An empty list is not written: a copy reads the same to an earlier version.
        assert!(
            !String::from_utf8(fs::read(&store.copies[0]).unwrap())
                .unwrap()
                .contains("filing")
        );
    }

    #[test]
    fn the_single_file_of_earlier_versions_is_read_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join("plan-sequences.json");
        fs::write(&legacy, br#"{"floor":2,"seen":[3,5]}"#).unwrap();
        let store = PlanStore::open(dir.path()).unwrap();
        let mut s = store.load_sequences(&[], NOW);
        assert!(!s.is_new(2) && !s.is_new(3) && s.is_new(4) && !s.is_new(5));
        assert_eq!(s.issued_too_early(0), None);
        s.mark(6);
        store.save_sequences(&mut s).unwrap();
        assert!(!legacy.exists());
        let s = store.load_sequences(&[], NOW);
        assert!(!s.is_new(3) && !s.is_new(6) && s.is_new(4));
        // Unreadable, it is a loss like any other.
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("plan-sequences.json"), b"{").unwrap();
        let s = PlanStore::open(dir.path())
            .unwrap()
            .load_sequences(&[], NOW);
        assert!(
            s.issued_too_early(NOW - DEFAULT_PLAN_WINDOW_MS - 1)
                .is_some()
        );
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
