//! Task triggers on the ground: the element set a plan carries up, and the prediction of when
//! each trigger would fire (`docs/triggers.md`), computed by `orbit::firings`, the evaluator
//! the flight agent fires with, from that same element set. Computation only: no HTTP, no SQL.
//!
//! Telemetry tests are not predicted: the battery's charge depends on the satellite's state,
//! which only the agent knows (its telemetry's newest sample). `orbit::firings` takes them as
//! passing, so a prediction lists when the rest holds (when the trigger may fire) and names
//! the tests decided onboard (`decided_onboard`).

use orbit::Epoch;

use crate::error::ApiError;
use crate::operation::Operation;
use crate::passes::Sky;
use crate::{Ground, time};

/// The most firing intervals a prediction lists.
const MAX_LISTED: usize = 10;

/// The element set to carry in a plan for `system` with `plan`'s tasks: `None` when no task
/// has a trigger; an error when one has and the system has no orbit (the Engineering Model), or
/// its elements cannot be propagated.
pub(crate) fn elements_for(
    ground: &Ground,
    system: &str,
    plan: &wire::Plan,
) -> Result<Option<wire::Elements>, ApiError> {
    let Some(task) = plan.tasks.iter().find(|t| t.trigger.is_some()) else {
        return Ok(None);
    };
    match ground.orbits().sky(system) {
        Some(Sky::Orbit(flying)) => {
            flying.propagator()?;
            Ok(Some(orbit::elements_of(&flying.orbit().tle)))
        }
        _ => Err(ApiError::bad(no_orbit(system, &task.id))),
    }
}

fn no_orbit(system: &str, task: &str) -> String {
    format!(
        "task '{task}' has a trigger, but system '{system}' has no orbit: triggers are judged from the system's element set (declare its 'tle' in the systems file)"
    )
}

/// [`predict`] for an operation's YAML text, on its own system; nothing for a YAML that does
/// not validate.
pub(crate) async fn predict_yaml(
    ground: &Ground,
    yaml: String,
) -> Result<Vec<api::TriggerPrediction>, ApiError> {
    Ok(match crate::operation::parse_off_workers(yaml).await? {
        Ok(op) => {
            let system = crate::preflight_check::operation_system(&op);
            predict(ground, &op, &system).await
        }
        Err(_) => Vec::new(),
    })
}

/// When each trigger of `op` would fire on `system`, if its task were ready now.
pub(crate) async fn predict(
    ground: &Ground,
    op: &Operation,
    system: &str,
) -> Vec<api::TriggerPrediction> {
    let triggered: Vec<(usize, String, wire::Trigger)> = op
        .tasks
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((i, t.id.to_string(), t.trigger.clone()?)))
        .collect();
    if triggered.is_empty() {
        return Vec::new();
    }
    let elements = match ground.orbits().sky(system) {
        Some(Sky::Orbit(flying)) => Some(orbit::elements_of(&flying.orbit().tle)),
        _ => None,
    };
    predict_tasks(ground, triggered, elements, system).await
}

/// When each trigger of a compiled plan (awaiting approval, or queued for its system) would
/// fire, from now, with the element set the plan carries.
pub(crate) async fn predict_plan(
    ground: &Ground,
    plan: &wire::Plan,
    system: &str,
) -> Vec<api::TriggerPrediction> {
    let triggered: Vec<(usize, String, wire::Trigger)> = plan
        .tasks
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((i, t.id.clone(), t.trigger.clone()?)))
        .collect();
    if triggered.is_empty() {
        return Vec::new();
    }
    predict_tasks(ground, triggered, plan.elements.clone(), system).await
}

async fn predict_tasks(
    ground: &Ground,
    triggered: Vec<(usize, String, wire::Trigger)>,
    elements: Option<wire::Elements>,
    system: &str,
) -> Vec<api::TriggerPrediction> {
    let now = ground.now();
    // What the agent propagates: the element set as the plan carries it, or a newer one of the
    // same satellite sent on its own since (`elements`).
    let elements = match elements {
        Some(e) => crate::elements::newest(ground, system, e.clone())
            .await
            .ok()
            .or(Some(e)),
        None => None,
    };
    let propagator = match elements {
        Some(e) => orbit::parse_elements(&e)
            .map_err(|e| e.to_string())
            .and_then(|tle| orbit::Propagator::new(&tle).map_err(|e| e.to_string())),
        None => Err(String::new()),
    };
    let system = system.to_string();
    let work = move || {
        triggered
            .into_iter()
            .map(|(index, task, trigger)| {
                // The wait onboard's own bound, as if the task were ready now.
                let armed_ms = now.unix_millis().max(0) as u64;
                let until_ms = trigger.deadline_ms(armed_ms).min(i64::MAX as u64);
                let until = Epoch::from_unix_millis(until_ms as i64);
                let found = match &propagator {
                    Ok(p) => {
                        orbit::firings(p, &trigger.when, now, until).map_err(|e| e.to_string())
                    }
                    Err(e) if e.is_empty() => Err(no_orbit(&system, &task)),
                    Err(e) => Err(e.clone()),
                };
                let (firings, error) = match found {
                    Ok(f) => (f, None),
                    Err(e) => (Vec::new(), Some(e)),
                };
                api::TriggerPrediction {
                    index: index as u32,
                    task,
                    condition: trigger.when.describe(),
                    system: system.clone(),
                    from: time::rfc3339(now.unix_millis()),
                    until: time::rfc3339(until.unix_millis()),
                    firings: firings
                        .iter()
                        .take(MAX_LISTED)
                        .map(|f| api::TriggerWindow {
                            start: time::rfc3339(f.start.unix_millis()),
                            end: time::rfc3339(f.end.unix_millis()),
                        })
                        .collect(),
                    error,
                    decided_onboard: trigger
                        .when
                        .telemetry_tests()
                        .iter()
                        .map(|t| t.describe())
                        .collect(),
                }
            })
            .collect()
    };
    // One prediction at a time: a search over a week of orbits is CPU-bound, and requests must
    // not add up to every core.
    static ONE_AT_A_TIME: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
    let Ok(_turn) = ONE_AT_A_TIME.acquire().await else {
        return Vec::new();
    };
    tokio::task::spawn_blocking(work).await.unwrap_or_default()
}
