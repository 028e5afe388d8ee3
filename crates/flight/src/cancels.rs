//! Cancel orders onboard: kept on disk, and signalled to what runs.
//!
//! An order the agent accepted (signed by the ground, for this system: see `agent_cancel`) is
//! written, synced, as `state_dir/cancels/<execution>.json` before anything else is done about
//! it, and only then acknowledged to the link. So a restart never resumes a cancelled
//! execution, and a plan that comes after its cancel (the ground sent it again, or the cancel
//! overtook it) is filed cancelled instead of running.
//!
//! Each execution has a signal (a `watch` channel) that what runs for it looks at: the task
//! loop between tasks, an attached pod's supervisor (it stops the pod, SIGTERM then SIGKILL after
//! [`CANCEL_GRACE`], as a pod that overruns its `max_duration` is stopped), a build or a load (its
//! request dropped, which stops it), an uplink waiting for objects. The signal carries the grace.
//!
//! Bounded: an order is kept for [`wire::PLAN_VALIDITY_MS`] after the ground issued it (a plan of
//! the execution, issued before it, has expired by then, and is refused if it comes), or for as
//! long as its plan is unfinished on file (an agent switched off for longer must not resume it),
//! and at most [`MAX_CANCELS`] are kept: beyond that the oldest orders whose plans have ended
//! (settled: kept only to answer a repeat) are forgotten first, and only then the oldest of the
//! rest. A signal exists only while something of the execution watches it.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use wire::CancelOrder;

use crate::error::Error;
use crate::fsutil;

/// The most cancel orders kept on disk.
pub(crate) const MAX_CANCELS: usize = 4096;

/// Between SIGTERM and SIGKILL for a pod stopped by a cancel: the grace a pod that overruns its
/// `max_duration` gets.
pub(crate) const CANCEL_GRACE: Duration = crate::tasks::STOP_GRACE;

/// Where an execution's plan stands, as far as its cancel order is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlanStanding {
    /// No plan of it is on file.
    Absent,
    /// Its plan is on file, unfinished.
    Unfinished,
    /// Its plan has ended.
    Ended,
}

/// A kept order, and whether its plan has ended.
struct Kept {
    order: CancelOrder,
    settled: bool,
}

/// The cancel orders kept, and each execution's signal.
pub(crate) struct Cancels {
    dir: PathBuf,
    orders: Mutex<HashMap<String, Kept>>,
    signals: Mutex<HashMap<String, watch::Sender<Option<Duration>>>>,
}

impl std::fmt::Debug for Cancels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancels")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Cancels {
    /// Opens (creating) `state_dir/cancels`, reading the orders kept there and forgetting those
    /// older than the plans' validity at `now_ms` unless `standing` says their plan is still
    /// unfinished. An order that does not read is set aside with a warning.
    pub(crate) fn open(
        state_dir: &Path,
        now_ms: u64,
        standing: impl Fn(&str) -> PlanStanding,
    ) -> Result<Cancels, Error> {
        let dir = state_dir.join("cancels");
        fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        let mut orders = HashMap::new();
        for entry in fs::read_dir(&dir)
            .map_err(|e| Error::io("cannot read", &dir, e))?
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let order: CancelOrder = match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                .and_then(|o: CancelOrder| {
                    // Named by its execution, which names files: it must be one, and this one.
                    let named = path.file_stem().and_then(|s| s.to_str());
                    match crate::names::check_execution(&o.execution) {
                        Ok(()) if named == Some(o.execution.as_str()) => Ok(o),
                        _ => Err(format!(
                            "it names execution {:?}, not its file's",
                            o.execution
                        )),
                    }
                }) {
                Ok(o) => o,
                Err(e) => {
                    cas::set_aside_with_warning(&path, "cancel order", &e);
                    continue;
                }
            };
            let plan = standing(&order.execution);
            if order.issued_ms.saturating_add(wire::PLAN_VALIDITY_MS) < now_ms
                && plan != PlanStanding::Unfinished
            {
                let _ = fs::remove_file(&path);
                continue;
            }
            let settled = plan == PlanStanding::Ended;
            orders.insert(order.execution.clone(), Kept { order, settled });
        }
        let cancels = Cancels {
            dir,
            orders: Mutex::new(orders),
            signals: Mutex::default(),
        };
        cancels.prune();
        Ok(cancels)
    }

    /// Keeps `order` (its execution id checked), synced, and signals the execution: from then
    /// on nothing of it starts. An order already kept is kept as it was.
    pub(crate) fn record(&self, order: &CancelOrder) -> Result<(), Error> {
        if !self.lock_orders().contains_key(&order.execution) {
            let path = self.path(&order.execution);
            let bytes =
                serde_json::to_vec(order).map_err(|e| Error::io("cannot encode", &path, e))?;
            fsutil::write_atomic(&path, &bytes).map_err(|e| Error::io("cannot write", &path, e))?;
            self.lock_orders().insert(
                order.execution.clone(),
                Kept {
                    order: order.clone(),
                    settled: false,
                },
            );
            self.prune();
        }
        // Only what watches is told; a signal made later starts cancelled.
        if let Some(signal) = self.lock_signals().get(&order.execution) {
            signal.send_replace(Some(CANCEL_GRACE));
        }
        Ok(())
    }

    /// Who cancelled `execution`, if it is cancelled.
    pub(crate) fn by(&self, execution: &str) -> Option<String> {
        self.lock_orders()
            .get(execution)
            .map(|k| k.order.by.clone())
    }

    /// The execution's signal: `Some(grace)` once it is cancelled.
    pub(crate) fn watch(&self, execution: &str) -> watch::Receiver<Option<Duration>> {
        self.sender(execution).subscribe()
    }

    /// Resolves once `execution` is cancelled; never, if it is not.
    pub(crate) async fn cancelled(&self, execution: &str) {
        let mut rx = self.watch(execution);
        // The sender lives in the map for as long as the execution may run.
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// The execution's plan has stopped running: its signal is forgotten. If its end is on file
    /// (`filed`), its order, if any, stays on disk only to answer a repeat (the first forgotten
    /// beyond [`MAX_CANCELS`]); if not, the plan is still pending on disk and its order keeps it
    /// from resuming after a restart.
    pub(crate) fn settle(&self, execution: &str, filed: bool) {
        self.lock_signals().remove(execution);
        if filed && let Some(kept) = self.lock_orders().get_mut(execution) {
            kept.settled = true;
        }
    }

    fn sender(&self, execution: &str) -> watch::Sender<Option<Duration>> {
        // The signals' lock is held while the orders are read, so an order recorded meanwhile
        // either is seen here or finds this signal to tell.
        let mut signals = self.lock_signals();
        let cancelled = self.lock_orders().contains_key(execution);
        signals
            .entry(execution.to_string())
            .or_insert_with(|| watch::Sender::new(cancelled.then_some(CANCEL_GRACE)))
            .clone()
    }

    fn path(&self, execution: &str) -> PathBuf {
        self.dir.join(format!("{execution}.json"))
    }

    fn lock_orders(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.orders.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_signals(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Option<Duration>>>> {
        self.signals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets orders beyond [`MAX_CANCELS`]: the settled first, each group oldest first.
    fn prune(&self) {
        let mut orders = self.lock_orders();
        if orders.len() <= MAX_CANCELS {
            return;
        }
        let mut by_age: Vec<(bool, u64, String)> = orders
            .values()
            .map(|k| (!k.settled, k.order.issued_ms, k.order.execution.clone()))
            .collect();
        by_age.sort();
        for (_, _, execution) in by_age.iter().take(orders.len() - MAX_CANCELS) {
            orders.remove(execution);
            let _ = fs::remove_file(self.path(execution));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(execution: &str, issued_ms: u64) -> CancelOrder {
        CancelOrder {
            execution: execution.into(),
            system: "em".into(),
            by: "alice".into(),
            issued_ms,
            signature: Vec::new(),
        }
    }

    #[tokio::test]
    async fn an_order_is_kept_across_a_restart_until_the_plans_would_have_expired() {
        let dir = tempfile::tempdir().unwrap();
        let now = 10 * wire::PLAN_VALIDITY_MS;
        let cancels = Cancels::open(dir.path(), now, |_| PlanStanding::Absent).unwrap();
        let mut signal = cancels.watch("e1");
        assert_eq!(*signal.borrow_and_update(), None);
        cancels.record(&order("e1", now)).unwrap();
        cancels.record(&order("old", 1)).unwrap();
        assert!(signal.has_changed().unwrap());
        assert_eq!(*signal.borrow(), Some(CANCEL_GRACE));
        cancels.cancelled("e1").await;
        assert_eq!(cancels.by("e1").as_deref(), Some("alice"));
        assert_eq!(cancels.by("e2"), None);

        let reopened = Cancels::open(dir.path(), now + 1, |_| PlanStanding::Absent).unwrap();
        assert_eq!(reopened.by("e1").as_deref(), Some("alice"));
        assert_eq!(*reopened.watch("e1").borrow(), Some(CANCEL_GRACE));
        assert_eq!(reopened.by("old"), None, "older than a plan's validity");
        assert!(!dir.path().join("cancels/old.json").exists());
    }

    #[test]
    fn an_old_order_stays_while_its_plan_is_unfinished_and_the_settled_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let now = 10 * wire::PLAN_VALIDITY_MS;
        let cancels = Cancels::open(dir.path(), now, |_| PlanStanding::Absent).unwrap();
        for e in ["unfinished", "ended", "absent"] {
            cancels.record(&order(e, 1)).unwrap();
        }
        assert!(
            cancels.lock_signals().is_empty(),
            "no signal made for no watcher"
        );
        let standing = |e: &str| match e {
            "unfinished" => PlanStanding::Unfinished,
            "ended" => PlanStanding::Ended,
            _ => PlanStanding::Absent,
        };
        let reopened = Cancels::open(dir.path(), now, standing).unwrap();
        assert_eq!(reopened.by("unfinished").as_deref(), Some("alice"));
        assert_eq!(reopened.by("ended"), None);
        assert_eq!(reopened.by("absent"), None);

        // Full: a settled order goes before an older one whose plan has not ended.
        for i in 0..MAX_CANCELS - 1 {
            reopened.record(&order(&format!("e{i}"), now + 2)).unwrap();
        }
        reopened.settle("e7", true);
        reopened.record(&order("last", now + 3)).unwrap();
        assert_eq!(reopened.lock_orders().len(), MAX_CANCELS);
        assert_eq!(reopened.by("e7"), None);
        assert!(reopened.by("unfinished").is_some());
        assert!(reopened.by("last").is_some());
    }

    #[test]
    fn an_unreadable_order_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("cancels")).unwrap();
        fs::write(dir.path().join("cancels/e1.json"), b"{not json").unwrap();
        let cancels = Cancels::open(dir.path(), 0, |_| PlanStanding::Absent).unwrap();
        assert_eq!(cancels.by("e1"), None);
        assert!(!dir.path().join("cancels/e1.json").exists());
    }
}
