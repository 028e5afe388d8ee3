//! The agent's side of a cancel: a [`Message::Cancel`] checked as a plan is, kept on disk
//! (`crate::cancels`) before anything else, then carried out wherever its execution is.
//!
//! - Its signature first (an order the ground did not sign is logged and dropped, nothing
//!   recorded, nothing answered), then the system it names, its execution id and who it names.
//! - Ended already: nothing to stop. The execution's final events are sent again, so the ground,
//!   which shows it `CANCELLING`, learns how it ended.
//! - Queued, not started: it ends here, every task `Cancelled` ("not run"), never started.
//! - Running: its signal stops what runs (an attached pod: SIGTERM, the grace, SIGKILL; a build
//!   or a load: its request dropped; an uplink's wait for objects), the pods it started detached
//!   are stopped the same way, and the plan's task ends it: the task cut short and every task
//!   after it end `Cancelled`, then the execution.
//! - Not here: its plan has not come (or was refused, leaving no record). The execution is
//!   reported `Cancelled` at once, and its plan, if it comes, is filed cancelled, never run.
//!
//! After a restart, a plan whose cancel is on file is not resumed: [`Agent::run_plans`] first
//! stops and removes the containers of it the restart left, then ends it as above.

use wire::{CancelOrder, Message, Plan, TaskError, TaskState};

use super::{Agent, execution_event, record_event, replay};
use crate::cancels::CANCEL_GRACE;
use crate::error::Error;
use crate::fsutil::now_ms;
use crate::names;
use crate::plans::{PlanRecord, TaskRecord};
use crate::tasks::EXECUTION_LABEL;

impl Agent {
    /// Takes a cancel order (see the module's documentation). An error means the order could
    /// not be kept: nothing was done, and the same message may be handled again.
    pub(super) fn cancel(&self, order: CancelOrder) -> Result<(), Error> {
        if let Some(Err(e)) = self
            .inner
            .verifier
            .as_ref()
            .map(|v| v.verify_cancel(&order))
        {
            tracing::warn!(
                claimed_execution = order.execution,
                error = %e,
                "refused a cancel order that is not the ground's; nothing recorded, nothing answered"
            );
            return Ok(());
        }
        if order.system != self.inner.system {
            tracing::warn!(
                execution = order.execution,
                system = order.system,
                "refused a cancel order for another system"
            );
            return Ok(());
        }
        if let Err(m) = names::check_execution(&order.execution) {
            tracing::warn!(error = %m, "refused a cancel order");
            return Ok(());
        }
        if order.by.len() > wire::MAX_CANCEL_BY {
            tracing::warn!(
                execution = order.execution,
                "refused a cancel order naming its requester in more than {} bytes",
                wire::MAX_CANCEL_BY
            );
            return Ok(());
        }
        let execution = order.execution.clone();
        if let Some(known) = self.inner.plans.find(&execution)
            && known.finished
        {
            tracing::info!(
                execution,
                by = order.by,
                "a cancel came after the execution ended; nothing to stop, its end is sent again"
            );
            self.send_soon(replay(&known));
            return Ok(());
        }
        // Kept before anything is done: a restart from here on does not resume the execution.
        self.inner.exec.cancels.record(&order)?;
        let (queued, running) = {
            let running = self.lock_running();
            let mut queue = self.lock_queue();
            let queued = queue
                .iter()
                .position(|r| r.plan.execution == execution)
                .and_then(|i| queue.remove(i));
            (queued, running.iter().any(|(e, _)| *e == execution))
        };
        if let Some(mut record) = queued {
            tracing::info!(
                execution,
                by = order.by,
                "cancelled a plan before it started"
            );
            let messages = cancel_rest(&mut record, &order.by);
            if let Err(e) = self.inner.plans.finish(&record) {
                // Back in the queue: its task sees the cancel and ends it.
                let mut record = record;
                record.finished = false;
                record.cancelled = false;
                self.lock_queue().push_front(record);
                self.inner.queued.notify_one();
                return Err(e);
            }
            self.send_soon(messages);
            self.inner.exec.cancels.settle(&execution, true);
            return Ok(());
        }
        if running {
            let detached = self
                .inner
                .exec
                .pods
                .stop_execution(&execution, CANCEL_GRACE);
            tracing::info!(
                execution,
                by = order.by,
                detached,
                "cancelling a running plan: what runs is stopped"
            );
            return Ok(());
        }
        if self.inner.plans.find(&execution).is_none() {
            tracing::info!(
                execution,
                by = order.by,
                "a cancel came before its plan: the plan, if it comes, never runs"
            );
            self.send_soon(vec![execution_event(&execution, TaskState::Cancelled)]);
        }
        Ok(())
    }

    /// Files a plan whose execution was cancelled before it came: finished, every task
    /// `Cancelled`, never run; its number is marked accepted as any plan's.
    pub(super) fn file_cancelled(&self, plan: Plan, by: &str) -> Result<(), Error> {
        let sequence = plan.sequence;
        self.mark_filing(&plan)?;
        let mut record = PlanRecord {
            seq: self
                .inner
                .next_seq
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            plan,
            next: 0,
            failed: false,
            finished: false,
            events: Vec::new(),
            cancelled: false,
            trigger: None,
        };
        let messages = cancel_rest(&mut record, by);
        self.inner.plans.finish(&record)?;
        self.inner.exec.cancels.settle(&record.plan.execution, true);
        tracing::info!(
            execution = record.plan.execution,
            "a plan came after its cancel: filed cancelled, never run"
        );
        self.send_soon(messages);
        self.mark_accepted(sequence)
    }

    /// Ends a cancelled plan from its task: the pods it started detached are stopped, every
    /// task not finished ends `Cancelled`, then the execution; the record is filed.
    pub(super) async fn end_cancelled(&self, mut record: PlanRecord, by: &str) {
        let execution = record.plan.execution.clone();
        self.inner
            .exec
            .pods
            .stop_execution(&execution, CANCEL_GRACE);
        for m in cancel_rest(&mut record, by) {
            self.send(m).await;
        }
        let filed = self.inner.plans.finish(&record);
        if let Err(e) = &filed {
            tracing::error!(execution, error = %e, "cannot record a cancelled plan");
        } else {
            self.inner.exec.forget_pods(&execution);
        }
        self.inner.exec.cancels.settle(&execution, filed.is_ok());
        tracing::info!(execution, by, "plan cancelled");
    }

    /// Ends the plans found cancelled at start: the containers of each that the restart left
    /// (a pod cut short, or started detached) are stopped, SIGTERM then SIGKILL after the grace,
    /// and removed; then the plan ends as [`end_cancelled`](Agent::end_cancelled) ends it.
    pub(super) async fn end_cancelled_at_start(&self) {
        let records = std::mem::take(
            &mut *self
                .inner
                .cancelled_at_start
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for mut record in records {
            let execution = record.plan.execution.clone();
            let by = self.inner.exec.cancels.by(&execution).unwrap_or_default();
            let stopped = self.stop_leftovers(&execution).await;
            if stopped > 0 && record.next < record.plan.tasks.len() {
                // The task the restart cut short ran: it was stopped, not left unstarted.
                let at_ms = now_ms();
                let event = TaskRecord {
                    task: record.next as u32,
                    state: TaskState::Cancelled,
                    at_ms,
                    error: Some(TaskError {
                        code: wire::ErrorCode::Cancelled,
                        message: format!(
                            "stopped after a restart of the agent: the execution was cancelled{}",
                            by_whom(&by)
                        ),
                        log_tail: Vec::new(),
                    }),
                    outputs: None,
                };
                self.send(record_event(&execution, &event)).await;
                record.events.push(event);
                record.next += 1;
            }
            tracing::info!(
                execution,
                stopped,
                "a plan cancelled before the restart is not resumed"
            );
            self.end_cancelled(record, &by).await;
        }
    }

    /// Stops and removes every container labelled with `execution`; returns how many.
    async fn stop_leftovers(&self, execution: &str) -> usize {
        let runtime = &self.inner.exec.runtime;
        let names = match runtime.list_containers(EXECUTION_LABEL, execution).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(execution, error = %e.message, "cannot list the containers of a cancelled execution");
                return 0;
            }
        };
        for name in &names {
            tracing::info!(
                execution,
                container = name,
                "stopping a container of a cancelled execution"
            );
            if let Err(e) = runtime.stop_container(name, CANCEL_GRACE).await {
                tracing::warn!(container = name, error = %e.message, "cannot stop a container");
            }
            if let Err(e) = runtime.remove_container(name).await {
                tracing::warn!(container = name, error = %e.message, "cannot remove a container");
            }
        }
        names.len()
    }
}

/// ` by <who>`, or nothing when the order named no one.
fn by_whom(by: &str) -> String {
    match by {
        "" => String::new(),
        by => format!(" by {by}"),
    }
}

/// Ends `record` cancelled: every task from its next on `Cancelled`, not run; returns their
/// events and the execution's, to send in order.
fn cancel_rest(record: &mut PlanRecord, by: &str) -> Vec<Message> {
    let at_ms = now_ms();
    let execution = record.plan.execution.clone();
    let mut out = Vec::new();
    for i in record.next..record.plan.tasks.len() {
        let event = TaskRecord {
            task: i as u32,
            state: TaskState::Cancelled,
            at_ms,
            error: Some(TaskError {
                code: wire::ErrorCode::Cancelled,
                message: format!("not run: the execution was cancelled{}", by_whom(by)),
                log_tail: Vec::new(),
            }),
            outputs: None,
        };
        out.push(record_event(&execution, &event));
        record.events.push(event);
    }
    record.next = record.plan.tasks.len();
    record.cancelled = true;
    record.finished = true;
    out.push(execution_event(&execution, TaskState::Cancelled));
    out
}
