//! Operations: applying, validating and reading them, with what validation and preflight find.

use serde::{Deserialize, Serialize};

use crate::executions::State;

/// How bad a [`Diagnostic`] or a [`PreflightFinding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The operation cannot be saved (a diagnostic), or the task would fail onboard (a finding).
    Error,
    /// Worth knowing; nothing is refused.
    Warning,
    /// For information only (preflight findings).
    Info,
}

impl Severity {
    /// The severity as the JSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One problem in an operation's YAML, where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Diagnostic {
    /// `error` or `warning`.
    pub severity: Severity,
    /// 1-based line of the offending node.
    pub line: u32,
    /// 1-based column of the offending node.
    pub column: u32,
    /// The task concerned; `null` for operation-level problems.
    pub task: Option<String>,
    /// What is wrong; it names the task and line too.
    pub message: String,
}

/// What preflight says a `docker.build` or `docker.load` task would hit onboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreflightFinding {
    /// The id of the task.
    pub task: String,
    /// A path in the task's volume (`Dockerfile`, `images/app.tar`).
    pub file: String,
    /// 1-based line, or 0 when the finding is about the whole file.
    pub line: u32,
    /// 1-based column, or 0 with a line of 0.
    pub column: u32,
    /// The preflight rule (`OD201`, see `crates/preflight/RULES.md`).
    pub code: String,
    /// `error` (the task would fail onboard), `warning` or `info`.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// What to do about it; `null` when there is nothing to add.
    pub help: Option<String>,
}

/// `POST /api/v1/operations`: the operation as saved, and what preflight finds in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppliedOperation {
    /// Its namespace.
    pub namespace: String,
    /// Its id in the namespace.
    pub id: String,
    /// The latest revision (unchanged when the YAML text was).
    pub revision: u64,
    /// When the first revision was saved.
    pub created_at: String,
    /// When the latest revision was saved.
    pub updated_at: String,
    /// What its builds and loads would hit onboard; never a reason to refuse the apply.
    pub preflight: Vec<PreflightFinding>,
    /// When each task's trigger would fire on the operation's system (`docs/triggers.md`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerPrediction>,
}

/// `POST /api/v1/operations/validate`: nothing is saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Validation {
    /// False when there are diagnostics or preflight finds an error.
    pub valid: bool,
    /// Every problem of the YAML, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
    /// What preflight finds (empty when the YAML is invalid).
    pub preflight: Vec<PreflightFinding>,
    /// When each task's trigger would fire on the operation's system (empty when the YAML is
    /// invalid or no task has a trigger).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerPrediction>,
}

/// When a task's trigger would fire, predicted on the ground from the element set the plan
/// carries up (the agent fires from its own propagation of the same set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TriggerPrediction {
    /// The task's index in the operation, from 0.
    pub index: u32,
    /// The task's id.
    pub task: String,
    /// The condition, for a person.
    pub condition: String,
    /// The system predicted for.
    pub system: String,
    /// From when the firings are predicted (RFC 3339): now, as if the task were ready now.
    pub from: String,
    /// Until when (the deadline, counted from `from` when it is relative).
    pub until: String,
    /// The first intervals in which the condition holds (at most ten); the first one's `start`
    /// is when the trigger would fire if the task were ready at `from`.
    pub firings: Vec<TriggerWindow>,
    /// Why nothing can be predicted (no orbit, elements too old); absent when it can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The condition's telemetry tests (`battery_soc_percent at least 60 %`), which the agent
    /// decides onboard from its telemetry and the ground does not predict: `firings` are then
    /// when the rest holds, the times the trigger may fire, and it fires at the first instant
    /// in them at which the tests pass too. Absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decided_onboard: Vec<String>,
}

/// An interval in which a trigger's condition holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TriggerWindow {
    /// When it starts to hold, RFC 3339 with milliseconds.
    pub start: String,
    /// When it stops holding.
    pub end: String,
}

/// An entry of [`OperationList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OperationSummary {
    /// Its namespace.
    pub namespace: String,
    /// Its id in the namespace.
    pub id: String,
    /// The latest revision.
    pub revision: u64,
    /// When the first revision was saved.
    pub created_at: String,
    /// When the latest revision was saved.
    pub updated_at: String,
}

/// `GET /api/v1/operations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OperationList {
    /// The caller's operations (of one namespace when asked).
    pub operations: Vec<OperationSummary>,
}

/// `GET /api/v1/operations/{ns}/{id}`: the latest revision and the newest executions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OperationDetail {
    /// Its namespace.
    pub namespace: String,
    /// Its id in the namespace.
    pub id: String,
    /// The latest revision.
    pub revision: u64,
    /// The YAML text of the latest revision.
    pub yaml: String,
    /// When the first revision was saved.
    pub created_at: String,
    /// When the latest revision was saved.
    pub updated_at: String,
    /// Its 100 newest executions, newest first.
    pub executions: Vec<OperationExecution>,
}

/// An execution as [`OperationDetail`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OperationExecution {
    /// The execution's id.
    pub id: String,
    /// Where it is.
    pub state: State,
    /// The system it runs on.
    pub system: String,
    /// When it was created.
    pub created_at: String,
}

/// `GET /api/v1/operations/{ns}/{id}/revisions/{revision}`: one revision's YAML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OperationRevision {
    /// Its namespace.
    pub namespace: String,
    /// Its id in the namespace.
    pub id: String,
    /// The revision.
    pub revision: u64,
    /// Its YAML text.
    pub yaml: String,
    /// When it was saved.
    pub created_at: String,
}
