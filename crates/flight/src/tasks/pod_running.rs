//! The detached pods the agent supervises (see `pods`), and which volumes they hold.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use super::TaskResult;
use crate::volumes::Owner;

/// The detached pods the agent supervises, by tenant and pod name; an entry stays after its
/// pod ended (its outcome, for a later pod.stop or pod.logs) until a new run of the same name.
#[derive(Default)]
pub(crate) struct RunningPods {
    pub(super) pods: Mutex<HashMap<(String, String), Running>>,
    /// Held from making a tenant's network to starting a pod on it, and while removing one:
    /// a network is never removed between another pod's making sure of it and its start (plans
    /// run side by side, and a detached pod ends whenever it ends).
    pub(super) network: tokio::sync::Mutex<()>,
}

pub(super) struct Running {
    /// The execution whose pod.run started it.
    pub(super) execution: String,
    pub(super) container: String,
    /// Set to the grace to stop the pod with.
    pub(super) stop: watch::Sender<Option<Duration>>,
    /// The pod's outcome, once it ended.
    pub(super) done: watch::Receiver<Option<TaskResult>>,
    pub(super) root: PathBuf,
    pub(super) owner: Owner,
}

impl RunningPods {
    /// Asks every pod `execution` started detached that still runs to stop, with `grace`
    /// between SIGTERM and SIGKILL; returns how many were asked.
    pub(crate) fn stop_execution(&self, execution: &str, grace: Duration) -> usize {
        let mut asked = 0;
        for r in self.lock().values() {
            if r.execution == execution && r.done.borrow().is_none() {
                r.stop.send_replace(Some(grace));
                asked += 1;
            }
        }
        asked
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Running>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }
}
