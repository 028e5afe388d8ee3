//! Executions: starting one, listing them, and one with its tasks, history, errors, outputs and
//! uplink ETA.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::systems::PassRef;

/// The state of an execution or a task, named as Clustergate-2 names them: a task goes
/// `CREATED → SCHEDULED → RUNNING → SUCCESS | FAILED`, an execution
/// `CREATED → SCHEDULED → RUNNING → COMPLETED | FAILED`. On a system that needs an operator's
/// approval an execution waits `AWAITING_APPROVAL` after `CREATED`, and ends `REJECTED` when an
/// operator refuses it. One called off ends `CANCELLED`: at once when it was never sent, else
/// once its system confirms, showing `CANCELLING` meanwhile (orbitdock's names: Clustergate-2
/// names none). The tasks of a rejected or cancelled execution that had not finished end
/// `CANCELLED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Recorded on the ground.
    Created,
    /// Its plan is queued on the system's link.
    Scheduled,
    /// The system has started it.
    Running,
    /// A task that finished well.
    Success,
    /// An execution that finished well: every task it ran succeeded (or failed with
    /// `on_failure: continue`).
    Completed,
    /// Finished badly, or never ran.
    Failed,
    /// An execution waiting for an operator's approval before it is sent.
    AwaitingApproval,
    /// An execution an operator refused: never sent.
    Rejected,
    /// Called off: never sent, or stopped by its system.
    Cancelled,
    /// An execution whose cancel was sent to its system, which has not confirmed it yet: it
    /// ends `CANCELLED` once the system stopped it (or as it ended, when it ended first).
    Cancelling,
}

impl State {
    /// Every state, in lifecycle order.
    pub const ALL: [State; 10] = [
        State::Created,
        State::AwaitingApproval,
        State::Scheduled,
        State::Running,
        State::Cancelling,
        State::Success,
        State::Completed,
        State::Failed,
        State::Rejected,
        State::Cancelled,
    ];

    /// The state as the JSON writes it (`SUCCESS`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "CREATED",
            State::Scheduled => "SCHEDULED",
            State::Running => "RUNNING",
            State::Success => "SUCCESS",
            State::Completed => "COMPLETED",
            State::Failed => "FAILED",
            State::AwaitingApproval => "AWAITING_APPROVAL",
            State::Rejected => "REJECTED",
            State::Cancelled => "CANCELLED",
            State::Cancelling => "CANCELLING",
        }
    }

    /// Whether nothing follows it (`SUCCESS`, `COMPLETED`, `FAILED`, `REJECTED` or
    /// `CANCELLED`).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Success | State::Completed | State::Failed | State::Rejected | State::Cancelled
        )
    }

    /// The state as an execution shows it: a successful end is `COMPLETED` (Clustergate-2's
    /// name for an execution's), every other state is the same for tasks and executions.
    pub fn of_execution(self) -> State {
        match self {
            State::Success => State::Completed,
            other => other,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A text that names no [`State`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownState(pub String);

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown state {:?}", self.0)
    }
}

impl std::error::Error for UnknownState {}

impl FromStr for State {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<State, UnknownState> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// `POST /api/v1/executions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartExecution {
    /// The operation's namespace.
    pub namespace: String,
    /// The operation's id.
    pub operation: String,
    /// The system to run on: the operation's when absent, else `em` (a `cg2.` prefix is
    /// ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Start even when preflight finds errors.
    #[serde(default)]
    pub force: bool,
    /// The revision to run [default: the latest]: a script that applies and then starts names
    /// the revision it applied, so that another apply in between does not change what runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

/// One state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// The state entered.
    pub state: State,
    /// When (the system's clock for what the system reports).
    pub at: String,
    /// Who made the change, when a person did: the operator who approved (`SCHEDULED` after
    /// `AWAITING_APPROVAL`) or rejected it, the user who cancelled it (`CANCELLED`, or
    /// `CANCELLING` while the system has not confirmed). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Why, when given: a rejection's reason, or on a final state reached while `CANCELLING`,
    /// that the cancel came too late. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A task's error: a Clustergate-2 error code (or one of ours) with its name, a message and the
/// end of the log. In an execution's `errors`, it names its task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskError {
    /// The task's id: present in an execution's `errors`, absent in a task's own `error` and
    /// for an error of the whole execution (its link stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The numeric code (`12`).
    pub code: u16,
    /// The code's name (`DOCKER_BUILD_FAILED`).
    pub name: String,
    /// What happened.
    pub message: String,
    /// The last lines of the build or container log.
    pub log_tail: Vec<String>,
}

/// A file of a task's outputs: one a downlink brought down, or one a `files.list` found.
///
/// `uri`, `contentType` and `contentLength` are Clustergate-2's names and keep its spelling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutputFile {
    /// Where it landed in the namespace (downlink); its path in the volume while it has not
    /// landed yet, and for a `files.list`.
    pub path: String,
    /// `sha256:<hex>`; `null` for a `files.list` (the listing carries no digests).
    pub digest: Option<String>,
    /// Bytes.
    pub size: u64,
    /// The namespace version it landed as; absent until it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Where to download it from the ground, once it is there: the path of
    /// `GET /api/v1/namespaces/{ns}/files/{path}?version=N` (percent-encoded); `null` before it
    /// has landed and for a `files.list` (the file is onboard only).
    #[serde(default)]
    pub uri: Option<String>,
    /// The media type `uri` answers with (`application/octet-stream`); `null` without a `uri`.
    #[serde(default, rename = "contentType")]
    pub content_type: Option<String>,
    /// Its length in bytes (the same as `size`).
    #[serde(default, rename = "contentLength")]
    pub content_length: u64,
}

/// What a task produced, as the system reported it, with Clustergate-2's task outputs beside
/// ours (`files`, `uri`, `contentType`, `contentLength`; `message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskOutputs {
    /// The files of a downlink, or the files (not folders) a `files.list` found.
    pub files: Vec<OutputFile>,
    /// The listing of a `files.list`, folders included.
    pub listing: Vec<crate::systems::VolumeFile>,
    /// The onboard image built or loaded.
    pub image: Option<String>,
    /// A one-line result (or what a downlink still waits for).
    pub message: Option<String>,
    /// The container's exit code (`pod.run`).
    pub exit_code: Option<i64>,
    /// The last lines of the build or container log.
    pub log_tail: Vec<String>,
    /// The tenant's images (`docker.image.list`); absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<TenantImage>,
    /// Clustergate-2's archive of the task's files. orbitdock lands a downlink's files one by
    /// one, each with its own `uri` in `files`, and keeps no archive: always `null`.
    #[serde(default)]
    pub uri: Option<String>,
    /// The media type of `uri`: `null` with it.
    #[serde(default, rename = "contentType")]
    pub content_type: Option<String>,
    /// The bytes of `files`, together; `null` when the task has no files.
    #[serde(default, rename = "contentLength")]
    pub content_length: Option<u64>,
    /// When and why the task's trigger fired onboard; absent for a task without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerFired>,
}

/// A trigger's firing as the agent recorded it (`docs/triggers.md`), by the onboard clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TriggerFired {
    /// When its condition started to hold (or when the task became ready, if it held then).
    pub since: String,
    /// When the agent fired it and started the task.
    pub fired: String,
    /// The condition, for a person.
    pub reason: String,
}

/// One of the tenant's images onboard, as `docker.image.list` reports it (Clustergate-2's
/// field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantImage {
    /// The name, as the tenant writes it in `pod.run` (no onboard prefix).
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The image id, `sha256:<hex>`.
    pub id: String,
    /// When it was created.
    pub created: String,
    /// Bytes.
    pub size: u64,
}

/// The path part of a URI for `path` (`/a b/c` → `/a%20b/c`): every byte but unreserved
/// characters and `/` percent-encoded.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The URI of version `version` of the namespace file `path` (absolute in the namespace) on the
/// ground: `/api/v1/namespaces/{namespace}/files{path}?version={version}`.
pub fn namespace_file_uri(namespace: &str, path: &str, version: u64) -> String {
    format!(
        "/api/v1/namespaces/{}/files{}?version={version}",
        encode_path(namespace),
        encode_path(path)
    )
}

/// One task of an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    /// Its position in the operation, from 0.
    pub index: u32,
    /// Its id in the operation.
    pub id: String,
    /// Its type, without the `dphi.space.cg2.` prefix (`docker.build`).
    #[serde(rename = "type")]
    pub task_type: String,
    /// Where it is.
    pub state: State,
    /// When it started; `null` until it has.
    pub started_at: Option<String>,
    /// When it finished; `null` until it has.
    pub finished_at: Option<String>,
    /// Every state change, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Why it failed; `null` until it reports an error.
    pub error: Option<TaskError>,
    /// What it produced; `null` until it reports outputs.
    pub outputs: Option<TaskOutputs>,
}

/// How an execution's queued uplink transfers stand: `null` unless some are still queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UplinkEta {
    /// The bytes of its queued transfers not yet received.
    pub remaining_bytes: u64,
    /// When the last of them is predicted to arrive; `null` when it cannot be.
    pub completion: Option<String>,
    /// The pass it completes in; `null` for a system always in contact, or when unknown.
    pub pass: Option<PassRef>,
    /// Why no ETA can be predicted; absent when one can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/v1/executions/{id}`, and the answer to `POST /api/v1/executions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Execution {
    /// Its id.
    pub id: String,
    /// The tenant who started it (an operator sees every tenant's).
    pub tenant: String,
    /// The operation's namespace.
    pub namespace: String,
    /// The operation's id.
    pub operation: String,
    /// The operation's revision it runs.
    pub revision: u64,
    /// The system it runs on.
    pub system: String,
    /// Where it is.
    pub state: State,
    /// When it was created.
    pub created_at: String,
    /// When its plan was queued; `null` until then.
    pub scheduled_at: Option<String>,
    /// When the system started it; `null` until then.
    pub started_at: Option<String>,
    /// When it finished; `null` until then.
    pub finished_at: Option<String>,
    /// Every state change, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Every task error, each with its task id.
    pub errors: Vec<TaskError>,
    /// Its tasks, in order.
    pub tasks: Vec<Task>,
    /// How its queued uplink transfers stand; `null` when none is queued.
    pub uplink_eta: Option<UplinkEta>,
    /// What it sent up so far, and the bytes on the wire; `null` when it sends nothing (its
    /// plan was never compiled).
    #[serde(default)]
    pub uplink: Option<UplinkReport>,
    /// Until its tasks run onboard (awaiting approval, or scheduled), when each task's trigger
    /// would fire, predicted from now with the element set its plan carries
    /// (`docs/triggers.md`); absent when no task has one or the execution is running or ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<crate::TriggerPrediction>,
}

/// What an execution sends up: its plan, and for each object its uplinks need that the system
/// lacked, what crossed the link in its place (the object itself, compressed, or a delta
/// against an object onboard). Objects the system already held are not sent at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UplinkReport {
    /// The distinct objects its uplink tasks place.
    pub objects: u64,
    /// Their bytes.
    pub object_bytes: u64,
    /// The bytes of its plan message.
    pub plan_bytes: u64,
    /// The objects sent for it so far, in the order queued.
    pub sent: Vec<SentObject>,
    /// The bytes on the wire: its plan and every object sent for it, as transfer payload
    /// (packet headers and acknowledgements not counted).
    pub wire_bytes: u64,
}

/// An object an execution needed and what crossed the link in its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SentObject {
    /// The object needed, `sha256:<hex>`.
    pub digest: String,
    /// Its bytes.
    pub size: u64,
    /// How it was sent: `raw` (itself), `whole-zstd` (compressed), a delta against `base`:
    /// `zstd-ref`, `bsdiff` or `exe`, or `layers` (a `docker save` archive without the layers
    /// of the catalogue's images onboard; against `base` when it names one).
    pub encoding: String,
    /// What crossed the link: the object itself, or the patch, `sha256:<hex>`.
    pub object: String,
    /// The object onboard a delta was made against; `null` otherwise.
    pub base: Option<String>,
    /// The bytes sent.
    pub bytes: u64,
}

/// An entry of [`ExecutionList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutionSummary {
    /// Its id.
    pub id: String,
    /// The tenant who started it (an operator sees every tenant's).
    pub tenant: String,
    /// The operation's namespace.
    pub namespace: String,
    /// The operation's id.
    pub operation: String,
    /// The system it runs on.
    pub system: String,
    /// Where it is.
    pub state: State,
    /// When it was created.
    pub created_at: String,
}

/// `GET /api/v1/executions`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutionList {
    /// The caller's executions (of one namespace, in one state when asked); an operator's list
    /// holds every tenant's (of one tenant when asked).
    pub executions: Vec<ExecutionSummary>,
}

/// `POST /api/v1/executions/{id}/reject`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reject {
    /// Why, for the tenant: kept in the execution's history and errors (1 to 1000 bytes).
    pub reason: String,
}
