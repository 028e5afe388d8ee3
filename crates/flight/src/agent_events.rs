//! The events a plan's run sends the ground: a task's or the execution's new state, and the
//! recorded final events of a plan sent again (after a restart, or when the ground asks again).

use wire::{ExecutionState, Message, TaskError, TaskKind, TaskState};

use crate::fsutil::now_ms;
use crate::plans::{PlanRecord, TaskRecord};

/// The recorded final events of a finished plan, to send again.
pub(super) fn replay(record: &PlanRecord) -> Vec<Message> {
    let execution = &record.plan.execution;
    let state = if record.cancelled {
        TaskState::Cancelled
    } else if record.failed {
        TaskState::Failed
    } else {
        TaskState::Success
    };
    let events = record
        .events
        .iter()
        .flat_map(|e| replayed_events(execution, e));
    events
        .chain(std::iter::once(execution_event(execution, state)))
        .collect()
}

/// The volume a task may change, for a fresh listing after it.
pub(super) fn changed_volume(kind: &TaskKind) -> Option<&str> {
    match kind {
        TaskKind::Uplink { volume, .. }
        | TaskKind::PodRun { volume, .. }
        | TaskKind::FilesDelete { volume, .. }
        | TaskKind::PodLogs { volume, .. }
        | TaskKind::FilesMove { volume, .. }
        | TaskKind::CameraCapture { volume, .. } => Some(volume),
        _ => None,
    }
}

pub(super) fn execution_event(execution: &str, state: ExecutionState) -> Message {
    Message::ExecutionEvent {
        execution: execution.into(),
        state,
        at_ms: now_ms(),
    }
}

pub(super) fn task_event(
    execution: &str,
    task: usize,
    state: TaskState,
    error: Option<TaskError>,
) -> Message {
    Message::TaskEvent {
        execution: execution.into(),
        task: task as u32,
        state,
        at_ms: now_ms(),
        error,
        outputs: None,
    }
}

/// A recorded task's events to send again: its `RUNNING` (lost with a restart as easily as the
/// final event, and the ground ignores it when it has it), then its final event. A task that
/// never ran (its plan refused: no outputs) gets only its final event.
pub(super) fn replayed_events(execution: &str, r: &TaskRecord) -> Vec<Message> {
    let mut out = Vec::with_capacity(2);
    if r.outputs.is_some() {
        out.push(Message::TaskEvent {
            execution: execution.into(),
            task: r.task,
            state: TaskState::Running,
            // When it started is not recorded; it started no later than it ended.
            at_ms: r.at_ms,
            error: None,
            outputs: None,
        });
    }
    out.push(record_event(execution, r));
    out
}

pub(super) fn record_event(execution: &str, r: &TaskRecord) -> Message {
    Message::TaskEvent {
        execution: execution.into(),
        task: r.task,
        state: r.state,
        at_ms: r.at_ms,
        error: r.error.clone(),
        outputs: r.outputs.clone(),
    }
}
