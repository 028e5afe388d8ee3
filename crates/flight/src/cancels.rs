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
//! the execution, issued before it, has expired by then, and is refused if it comes) and at most
//! [`MAX_CANCELS`] are kept, the oldest forgotten first.

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

/// The cancel orders kept, and each execution's signal.
pub(crate) struct Cancels {
    dir: PathBuf,
    orders: Mutex<HashMap<String, CancelOrder>>,
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
    /// older than the plans' validity at `now_ms`. An order that does not read is set aside
    /// with a warning.
    pub(crate) fn open(state_dir: &Path, now_ms: u64) -> Result<Cancels, Error> {
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
            {
                Ok(o) => o,
                Err(e) => {
                    cas::set_aside_with_warning(&path, "cancel order", &e);
                    continue;
                }
            };
            if order.issued_ms.saturating_add(wire::PLAN_VALIDITY_MS) < now_ms {
                let _ = fs::remove_file(&path);
                continue;
            }
            orders.insert(order.execution.clone(), order);
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
            self.lock_orders()
                .insert(order.execution.clone(), order.clone());
            self.prune();
        }
        self.sender(&order.execution)
            .send_replace(Some(CANCEL_GRACE));
        Ok(())
    }

    /// Who cancelled `execution`, if it is cancelled.
    pub(crate) fn by(&self, execution: &str) -> Option<String> {
        self.lock_orders().get(execution).map(|o| o.by.clone())
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

    /// Forgets the execution's signal (its plan has finished); its order stays on disk.
    pub(crate) fn forget_signal(&self, execution: &str) {
        self.signals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(execution);
    }

    fn sender(&self, execution: &str) -> watch::Sender<Option<Duration>> {
        let cancelled = self.lock_orders().contains_key(execution);
        let mut signals = self.signals.lock().unwrap_or_else(|p| p.into_inner());
        signals
            .entry(execution.to_string())
            .or_insert_with(|| watch::Sender::new(cancelled.then_some(CANCEL_GRACE)))
            .clone()
    }

    fn path(&self, execution: &str) -> PathBuf {
        self.dir.join(format!("{execution}.json"))
    }

    fn lock_orders(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancelOrder>> {
        self.orders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the oldest orders beyond [`MAX_CANCELS`].
    fn prune(&self) {
        let mut orders = self.lock_orders();
        if orders.len() <= MAX_CANCELS {
            return;
        }
        let mut by_age: Vec<(u64, String)> = orders
            .values()
            .map(|o| (o.issued_ms, o.execution.clone()))
            .collect();
        by_age.sort();
        for (_, execution) in by_age.iter().take(orders.len() - MAX_CANCELS) {
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
        let cancels = Cancels::open(dir.path(), now).unwrap();
        let mut signal = cancels.watch("e1");
        assert_eq!(*signal.borrow_and_update(), None);
        cancels.record(&order("e1", now)).unwrap();
        cancels.record(&order("old", 1)).unwrap();
        assert!(signal.has_changed().unwrap());
        assert_eq!(*signal.borrow(), Some(CANCEL_GRACE));
        cancels.cancelled("e1").await;
        assert_eq!(cancels.by("e1").as_deref(), Some("alice"));
        assert_eq!(cancels.by("e2"), None);

        let reopened = Cancels::open(dir.path(), now + 1).unwrap();
        assert_eq!(reopened.by("e1").as_deref(), Some("alice"));
        assert_eq!(*reopened.watch("e1").borrow(), Some(CANCEL_GRACE));
        assert_eq!(reopened.by("old"), None, "older than a plan's validity");
        assert!(!dir.path().join("cancels/old.json").exists());
    }

    #[test]
    fn an_unreadable_order_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("cancels")).unwrap();
        fs::write(dir.path().join("cancels/e1.json"), b"{not json").unwrap();
        let cancels = Cancels::open(dir.path(), 0).unwrap();
        assert_eq!(cancels.by("e1"), None);
        assert!(!dir.path().join("cancels/e1.json").exists());
    }
}
