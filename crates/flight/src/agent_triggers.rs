//! Waiting for a task's trigger onboard (`docs/triggers.md`): the agent propagates the element
//! set its plan carries with `orbit` (the evaluator the ground predicts with), finds the next
//! time the condition holds from now on its mission clock (`clock`), sleeps until then, in
//! contact or not, and fires: the task runs and its outputs say when and why.
//!
//! A telemetry test (`telemetry:` in the trigger) is judged onboard only, from the telemetry
//! service's newest sample (`Telemetry::latest_reading`): while the rest of the condition holds
//! by the orbit, the agent reads it again as each new sample is due (every 10 s of mission time)
//! and fires at the first that passes, its record naming the values read. A sample older than
//! [`STALE_MS`] passes no test, so a stopped sampler cannot fire a trigger on old news.
//!
//! Nothing is lost or done twice across restarts: the plan's record keeps, for the task waiting,
//! when it became ready (a relative deadline counts from then, not from the restart) and, once
//! fired, the firing, saved before the task starts. A restarted agent resumes the plan at that
//! task: a pending trigger is searched for again from the mission time now, and a fired one is
//! not fired again (the task is taken up as any task cut short is, a pod never run twice).
//!
//! A plan waiting for a trigger gives up its running slot (a week of waiting for an eclipse must
//! not keep other tenants' plans from running), and takes one again once its trigger fired,
//! before its task starts: so no more than [`super::MAX_RUNNING_PLANS`] plans ever run work,
//! and at most [`MAX_AWAITING_TRIGGERS`] more wait beside them.

use serde::{Deserialize, Serialize};
use wire::{
    ErrorCode, Light, Measured, PlanTask, TaskError, TaskState, TelemetryTest, Trigger,
    TriggerFired,
};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Agent, task_event};
use crate::plans::PlanRecord;
use crate::tasks::TaskResult;
use crate::telemetry::Reading;

/// The trigger of the task a plan waits at, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TriggerRecord {
    /// The task's index.
    pub(crate) task: u32,
    /// When the task became ready, mission ms.
    pub(crate) armed_ms: u64,
    /// The firing, once it fired.
    pub(crate) fired: Option<TriggerFired>,
}

/// The most plans waiting for a trigger, beside those that run.
pub(crate) const MAX_AWAITING_TRIGGERS: usize = 64;

/// The running slots: a plan starts only with one, holds it while it runs, and gives it up
/// while it waits for a trigger.
pub(crate) struct PlanSlots {
    free: Arc<Semaphore>,
    held: Mutex<HashMap<String, OwnedSemaphorePermit>>,
}

impl PlanSlots {
    pub(crate) fn new(slots: usize) -> PlanSlots {
        PlanSlots {
            free: Arc::new(Semaphore::new(slots)),
            held: Mutex::default(),
        }
    }

    /// A free slot, if there is one.
    pub(crate) fn try_take(&self) -> Option<OwnedSemaphorePermit> {
        self.free.clone().try_acquire_owned().ok()
    }

    /// `execution` holds `slot` until [`release`](PlanSlots::release).
    pub(crate) fn hold(&self, execution: &str, slot: OwnedSemaphorePermit) {
        self.lock().insert(execution.to_string(), slot);
    }

    /// Frees the slot `execution` holds, if it holds one.
    pub(crate) fn release(&self, execution: &str) {
        self.lock().remove(execution);
    }

    /// Waits for a free slot and gives it to `execution`.
    async fn take_again(&self, execution: &str) {
        // The semaphore is never closed, so the wait ends with a slot.
        if let Ok(slot) = self.free.clone().acquire_owned().await {
            self.hold(execution, slot);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, OwnedSemaphorePermit>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Agent {
    /// Runs task `index` of `record`'s plan once its trigger fired, if it has one (it stays
    /// scheduled meanwhile), saying it runs once it starts; its outputs say how the trigger
    /// fired.
    pub(super) async fn start_when_triggered(
        &self,
        record: &mut PlanRecord,
        index: usize,
        task: &PlanTask,
    ) -> TaskResult {
        let fired = match &task.trigger {
            Some(trigger) => {
                // A cancel ends the wait: the task never starts (as a scheduled start's wait).
                let cancels = self.inner.exec.cancels.clone();
                let execution = record.plan.execution.clone();
                // The slot is given up for the wait, and the plan loop told it can start another.
                self.inner.slots.release(&execution);
                self.inner.queued.notify_one();
                let fired = tokio::select! {
                    fired = self.await_trigger(record, index, trigger) => fired,
                    () = cancels.cancelled(&execution) => {
                        return TaskResult::cancelled(
                            "not started: the execution was cancelled while its trigger was awaited",
                        );
                    }
                };
                // Whatever follows (the task, or the tasks after a failed wait) runs in a slot.
                tokio::select! {
                    () = self.inner.slots.take_again(&execution) => {}
                    () = cancels.cancelled(&execution) => {
                        return TaskResult::cancelled(
                            "not started: the execution was cancelled while its task waited for a running slot",
                        );
                    }
                }
                Some(fired)
            }
            None => None,
        };
        let (execution, tenant) = (record.plan.execution.clone(), record.plan.tenant.clone());
        self.send(task_event(&execution, index, TaskState::Running, None))
            .await;
        match fired {
            Some(Err(error)) => TaskResult {
                error: Some(error),
                outputs: Default::default(),
            },
            Some(Ok(fired)) => {
                let mut result = self.inner.exec.run(&tenant, &execution, index, task).await;
                result.outputs.trigger = Some(Box::new(fired));
                result
            }
            None => self.inner.exec.run(&tenant, &execution, index, task).await,
        }
    }

    /// Waits for the trigger of task `index` of `record`'s plan and says how it fired, or fails
    /// with [`ErrorCode::TriggerDeadline`] (it cannot fire before its deadline) or a validation
    /// error (no usable element set). Saves the record as the trigger is armed and as it fires.
    pub(super) async fn await_trigger(
        &self,
        record: &mut PlanRecord,
        index: usize,
        trigger: &Trigger,
    ) -> Result<TriggerFired, TaskError> {
        let clock = self.inner.exec.clock;
        let kept = record.trigger.as_ref().filter(|t| t.task as usize == index);
        if let Some(fired) = kept.and_then(|t| t.fired.clone()) {
            tracing::info!(
                execution = record.plan.execution,
                task = index,
                "the task's trigger fired before the restart; not fired again"
            );
            return Ok(fired);
        }
        let armed_ms = match kept {
            Some(t) => t.armed_ms,
            None => {
                let armed = TriggerRecord {
                    task: index as u32,
                    armed_ms: clock.now_ms(),
                    fired: None,
                };
                let armed_ms = armed.armed_ms;
                record.trigger = Some(armed);
                self.save_record(record);
                armed_ms
            }
        };
        // Never waiting longer than a week, whatever the deadline says (the ground predicts no
        // further either).
        let deadline_ms = trigger.deadline_ms(armed_ms);
        let reason = trigger.when.describe();
        let tests = trigger.when.telemetry_tests();
        tracing::info!(
            execution = record.plan.execution,
            task = index,
            condition = reason,
            deadline = wire::rfc3339(deadline_ms),
            "waiting for a trigger"
        );
        // Where the orbit's part holds (the telemetry tests taken as passing), while it lasts.
        let mut orbit_part: Option<(u64, u64)> = None;
        let mut newest: Option<Reading> = None;
        let renewed = self.inner.exec.telemetry.renewed();
        loop {
            // A newer element set of the satellite, sent meanwhile, wakes the wait: the search
            // starts again from now with it.
            let renewal = renewed.notified();
            tokio::pin!(renewal);
            renewal.as_mut().enable();
            // Sleeps until the mission time `$t`, unless a newer element set of the satellite
            // comes first: then the search starts again from now, with it.
            macro_rules! sleep_until {
                ($t:expr) => {
                    tokio::select! {
                        () = clock.sleep_until($t) => {}
                        () = &mut renewal => {
                            tracing::info!(execution = record.plan.execution, task = index, "a newer element set came: the trigger is searched for again");
                            orbit_part = None;
                            continue;
                        }
                    }
                };
            }
            let propagator = self.trigger_propagator(&record.plan)?;
            let now = clock.now_ms();
            if now >= deadline_ms {
                return Err(deadline_error(format!(
                    "the trigger ({reason}) did not fire before its deadline {}{}",
                    wire::rfc3339(deadline_ms),
                    telemetry_note(&tests, newest.as_ref(), now)
                )));
            }
            let (when, horizon) = if tests.is_empty() {
                (trigger.when.clone(), deadline_ms)
            } else {
                // The orbit's part first: where it cannot hold, no reading helps.
                let (start, end) = match orbit_part.filter(|&(s, e)| s <= now && now < e) {
                    Some(part) => part,
                    None => {
                        let Some(part) =
                            search(&propagator, &trigger.when, now, deadline_ms).await?
                        else {
                            return Err(deadline_error(format!(
                                "the trigger ({reason}) cannot fire before its deadline {}, whatever its telemetry reads: by the plan's element set the rest of the condition does not hold from {} until then",
                                wire::rfc3339(deadline_ms),
                                wire::rfc3339(now)
                            )));
                        };
                        orbit_part = Some(part);
                        part
                    }
                };
                if start > now {
                    sleep_until!(start);
                    continue;
                }
                newest = self.inner.exec.telemetry.latest_reading();
                let fresh = newest.as_ref().filter(|r| is_fresh(r, now));
                let when = trigger
                    .when
                    .judged(&|t| fresh.is_some_and(|r| passes(r, t)));
                // Judged again just after the next sample is due.
                let next = fresh
                    .map_or(now, |r| r.t_ms + crate::telemetry::SAMPLE_EVERY_MS)
                    .max(now)
                    + crate::telemetry::SAMPLE_EVERY_MS / 10;
                (when, next.min(end).min(deadline_ms))
            };
            let Some((since_ms, until_ms)) = search(&propagator, &when, now, horizon).await? else {
                if tests.is_empty() {
                    return Err(deadline_error(format!(
                        "the trigger ({reason}) cannot fire before its deadline {}: by the plan's element set the condition does not hold from {} until then",
                        wire::rfc3339(deadline_ms),
                        wire::rfc3339(now)
                    )));
                }
                sleep_until!(horizon);
                continue;
            };
            if !tests.is_empty() && since_ms > now {
                // It holds later by the orbit, as the telemetry reads now: read it again then.
                sleep_until!(since_ms);
                continue;
            }
            sleep_until!(since_ms);
            let fired_ms = clock.now_ms();
            if fired_ms > until_ms && until_ms < deadline_ms {
                // Overslept the whole interval (a suspended host): search again from now.
                continue;
            }
            let reason = match newest.as_ref().filter(|_| !tests.is_empty()) {
                Some(r) => format!(
                    "{reason}; telemetry at {}: {}",
                    wire::rfc3339(r.t_ms),
                    readings(r, &tests)
                ),
                None => reason.clone(),
            };
            let fired = TriggerFired {
                since_ms,
                fired_ms,
                reason: reason.clone(),
            };
            record.trigger = Some(TriggerRecord {
                task: index as u32,
                armed_ms,
                fired: Some(fired.clone()),
            });
            // Saved before the task starts: a restart from here on does not fire it again. A
            // firing that cannot be saved does not start the task, which a restart could then
            // start a second time.
            if let Err(e) = self.inner.plans.save(record) {
                return Err(TaskError {
                    code: ErrorCode::ExecutionError,
                    message: format!(
                        "the trigger ({reason}) fired at {} but its firing could not be recorded, so the task was not started: {e}",
                        wire::rfc3339(fired_ms)
                    ),
                    log_tail: Vec::new(),
                });
            }
            tracing::info!(
                execution = record.plan.execution,
                task = index,
                since = wire::rfc3339(since_ms),
                fired = wire::rfc3339(fired_ms),
                condition = reason,
                "a trigger fired"
            );
            return Ok(fired);
        }
    }

    fn save_record(&self, record: &PlanRecord) {
        if let Err(e) = self.inner.plans.save(record) {
            tracing::error!(execution = record.plan.execution, error = %e, "cannot persist a trigger's state");
        }
    }
}

/// The first interval of `[from, until]` (mission ms) in which `when` holds, by the plan's
/// element set, searched off the async workers.
async fn search(
    p: &orbit::Propagator,
    when: &wire::Condition,
    from: u64,
    until: u64,
) -> Result<Option<(u64, u64)>, TaskError> {
    let (p, when) = (p.clone(), when.clone());
    let found = tokio::task::spawn_blocking(move || {
        orbit::next_firing(
            &p,
            &when,
            orbit::Epoch::from_unix_millis(from as i64),
            orbit::Epoch::from_unix_millis(until as i64),
        )
    })
    .await
    .map_err(|e| validation(format!("the trigger's search failed: {e}")))?
    .map_err(|e| validation(format!("the element set cannot be propagated: {e}")))?;
    Ok(found.map(|f| {
        (
            f.start.unix_millis().max(0) as u64,
            f.end.unix_millis().max(0) as u64,
        )
    }))
}

/// A sample older than this (mission ms) judges no telemetry test: the sampler has stopped.
const STALE_MS: u64 = 3 * crate::telemetry::SAMPLE_EVERY_MS;

fn is_fresh(r: &Reading, now_ms: u64) -> bool {
    now_ms.saturating_sub(r.t_ms) <= STALE_MS
}

/// Whether the reading passes `test`.
fn passes(r: &Reading, test: &TelemetryTest) -> bool {
    test.passes(|m| value(r, m), Light::from_name(&r.illumination))
}

fn value(r: &Reading, m: Measured) -> Option<f64> {
    match m {
        Measured::BatterySocPercent => Some(r.battery_soc_percent),
        Measured::Temperature(i) => r.temperatures_c.get(usize::from(i)).copied(),
    }
}

/// What the reading says of the values `tests` test, for the firing's record:
/// `battery_soc_percent 61.02 %, illumination sunlit`.
fn readings(r: &Reading, tests: &[TelemetryTest]) -> String {
    let mut out: Vec<String> = Vec::new();
    for t in tests {
        let said = match *t {
            TelemetryTest::Range { value: m, .. } => match value(r, m) {
                Some(v) if matches!(m, Measured::BatterySocPercent) => {
                    format!("{} {v:.2} %", m.name())
                }
                Some(v) => format!("{} {v:.2} °C", m.name()),
                None => format!("{} unmeasured", m.name()),
            },
            TelemetryTest::Illumination(_) => format!("illumination {}", r.illumination),
        };
        if !out.contains(&said) {
            out.push(said);
        }
    }
    out.join(", ")
}

/// Why the telemetry kept a trigger from firing, for its deadline's error.
fn telemetry_note(tests: &[TelemetryTest], newest: Option<&Reading>, now_ms: u64) -> String {
    if tests.is_empty() {
        return String::new();
    }
    match newest {
        None => "; the onboard telemetry had no sample to judge its telemetry tests by (it samples once it has an element set)".into(),
        Some(r) if !is_fresh(r, now_ms) => format!(
            "; the onboard telemetry's newest sample ({}) was too old to judge its telemetry tests by",
            wire::rfc3339(r.t_ms)
        ),
        Some(r) => format!(
            "; its telemetry tests did not pass while the rest held (newest sample at {}: {})",
            wire::rfc3339(r.t_ms),
            readings(r, tests)
        ),
    }
}

impl Agent {
    /// The propagator of the plan's element set, or of a newer one of the same satellite sent
    /// since (`agent_elements`).
    fn trigger_propagator(&self, plan: &wire::Plan) -> Result<orbit::Propagator, TaskError> {
        let elements = plan.elements.as_ref().ok_or_else(|| {
            validation("the task has a trigger but its plan carries no element set to judge it by")
        })?;
        propagator(&self.inner.exec.telemetry.newest_of_satellite(elements))
    }
}

/// The propagator of an element set.
fn propagator(elements: &wire::Elements) -> Result<orbit::Propagator, TaskError> {
    let tle = orbit::parse_elements(elements)
        .map_err(|e| validation(format!("the plan's element set is not valid: {e}")))?;
    orbit::Propagator::new(&tle)
        .map_err(|e| validation(format!("the plan's element set cannot be propagated: {e}")))
}

fn validation(message: impl Into<String>) -> TaskError {
    TaskError {
        code: ErrorCode::ValidationError,
        message: message.into(),
        log_tail: Vec::new(),
    }
}

fn deadline_error(message: String) -> TaskError {
    TaskError {
        code: ErrorCode::TriggerDeadline,
        message,
        log_tail: Vec::new(),
    }
}
