//! The use case behind Clustergate-2's EM API (`docs/em-api.md`, served by `http::em`): a call
//! becomes an operation, generated in the caller's EM namespace (`<tenant>-em`), applied like
//! any other (`apply`) and started on the Engineering Model with `executor::start`; the call then
//! waits, bounded, for the execution to end and reads how each task ended. Every call is thus an
//! execution the API and the dashboard show. Nothing here runs a task or knows HTTP: the executor
//! and the flight agent do the work, and `http::em` speaks Clustergate-2's shapes.
//!
//! The Engineering Model runs one plan at a time. Like Clustergate-2's EM, the API takes one
//! call at a time ([`hold`]) and refuses one while the EM still runs a task of an execution,
//! anyone's, from this API or not ([`CallError::Busy`], answered `423 Locked`).

use std::time::Duration;

use wire::TaskState;

use crate::db::{self, ExecutionRow, TaskRow};
use crate::error::{ApiError, Error};
use crate::{Ground, apply, auth, executor, time};

/// The system the EM API drives.
pub(crate) const SYSTEM: &str = "em";

/// Clustergate-2's bound on one uplink call: 2 GB (taken as GiB).
pub(crate) const UPLINK_BYTES: u64 = 2 << 30;

/// How often a waiting call looks at its execution.
const POLL: Duration = Duration::from_millis(100);

/// The operation every `/em/pod/run` generates; each pod is its task, named by the pod.
pub(crate) const POD_RUN: &str = "em-pod-run";

/// The EM API's state, shared by every clone of the ground.
#[derive(Debug)]
pub(crate) struct Em {
    lock: tokio::sync::Mutex<()>,
    uplink_bytes: u64,
}

impl Em {
    pub(crate) fn new(uplink_bytes: u64) -> Em {
        Em {
            lock: tokio::sync::Mutex::new(()),
            uplink_bytes,
        }
    }

    /// Bytes of file content one uplink call may carry.
    pub(crate) fn uplink_bytes(&self) -> u64 {
        self.uplink_bytes
    }
}

/// The EM, held by one call until it drops.
#[derive(Debug)]
pub(crate) struct Held<'a> {
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

/// Why a call did not get to an ended execution.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The EM is busy: another call, or an execution that has not ended.
    Busy(String),
    /// The execution did not end within the bound; it goes on.
    Timeout { execution: String, waited: Duration },
    /// The call could not start: a bad request (the generated operation did not validate, say)
    /// or an internal failure.
    Api(ApiError),
}

impl From<ApiError> for CallError {
    fn from(e: ApiError) -> CallError {
        CallError::Api(e)
    }
}

impl From<sqlx::Error> for CallError {
    fn from(e: sqlx::Error) -> CallError {
        CallError::Api(e.into())
    }
}

/// An operation to generate: its id, a description and its tasks, each a mapping as an
/// operation's YAML writes it (`id` and `type` first).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    pub(crate) operation: &'static str,
    pub(crate) description: String,
    pub(crate) tasks: Vec<Yaml>,
}

/// How an execution stands, task by task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ended {
    pub(crate) execution: String,
    pub(crate) state: TaskState,
    pub(crate) tasks: Vec<TaskEnd>,
}

impl Ended {
    /// The first task: the one task of every generated operation.
    pub(crate) fn first(&self) -> Option<&TaskEnd> {
        self.tasks.first()
    }
}

/// How one task stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskEnd {
    pub(crate) id: String,
    pub(crate) state: TaskState,
    pub(crate) started_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
    pub(crate) error: Option<api::TaskError>,
    pub(crate) outputs: Option<api::TaskOutputs>,
}

/// How long a refresh token lasts.
const REFRESH_MS: i64 = 7 * 24 * 3600 * 1000;

/// A refresh token for `user` (`POST /auth/`). It is kept like a session, under the hash of
/// `refresh:<token>`, so it never passes for an access token; a new password ends it too.
pub(crate) async fn issue_refresh(ground: &Ground, user: &str) -> Result<String, Error> {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let now = time::now_ms();
    db::insert_session(
        ground.db(),
        &refresh_hash(&token),
        user,
        now,
        now + REFRESH_MS,
    )
    .await?;
    Ok(token)
}

/// A new access token for the user of a valid refresh token (`POST /auth/refresh`).
pub(crate) async fn refresh(ground: &Ground, token: &str) -> Result<Option<String>, Error> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    match db::session_user(ground.db(), &refresh_hash(token), time::now_ms()).await? {
        Some(user) => auth::open_session(ground, &user).await.map(Some),
        None => Ok(None),
    }
}

fn refresh_hash(token: &str) -> String {
    auth::token_hash(&format!("refresh:{token}"))
}

/// The namespace the EM API keeps a tenant's operations and uplinked files in.
pub(crate) fn namespace(tenant: &str) -> String {
    // Tenant names have at most 59 characters; namespaces may have 64.
    format!("{tenant}-em")
}

/// Takes the EM for one call: refused while another call holds it or while the EM runs (or has
/// yet to run) a task of an execution (the message names it when it is the caller's).
pub(crate) async fn hold<'a>(ground: &'a Ground, tenant: &str) -> Result<Held<'a>, CallError> {
    let Ok(guard) = ground.em().lock.try_lock() else {
        return Err(CallError::Busy(
            "the Engineering Model is busy with another request; try again shortly".into(),
        ));
    };
    if let Some(id) = db::busy_execution(ground.db(), SYSTEM).await? {
        let own = db::execution(ground.db(), &id)
            .await?
            .is_some_and(|e| e.tenant == tenant);
        return Err(CallError::Busy(if own {
            format!(
                "the Engineering Model is busy with your execution {id}; try again when it has ended"
            )
        } else {
            "the Engineering Model is busy with another execution; try again when it has ended"
                .into()
        }));
    }
    Ok(Held { _guard: guard })
}

/// Generates the call's operation, applies it in the tenant's EM namespace and starts it on the
/// EM; returns the execution's id. Preflight does not gate it (`force`): the EM is where a
/// Clustergate-2 user learns what fails, from the real build's log.
pub(crate) async fn start(ground: &Ground, tenant: &str, call: &Call) -> Result<String, CallError> {
    let ns = namespace(tenant);
    let yaml = operation_yaml(&ns, call);
    apply::apply(ground, tenant, &yaml).await?;
    let id = executor::start(
        ground,
        tenant,
        api::StartExecution {
            revision: None,
            namespace: ns,
            operation: call.operation.to_string(),
            system: Some(SYSTEM.to_string()),
            force: true,
        },
    )
    .await?;
    tracing::info!(execution = %id, %tenant, operation = call.operation, "EM API call started");
    Ok(id)
}

/// Waits, at most `bound`, for the execution to end.
pub(crate) async fn wait(
    ground: &Ground,
    execution: &str,
    bound: Duration,
) -> Result<Ended, CallError> {
    let ended = async {
        loop {
            let now = snapshot(ground, execution).await?;
            if now.state.is_final() {
                return Ok::<_, ApiError>(now);
            }
            tokio::time::sleep(POLL).await;
        }
    };
    match tokio::time::timeout(bound, ended).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(CallError::Timeout {
            execution: execution.to_string(),
            waited: bound,
        }),
    }
}

/// How the execution stands now.
pub(crate) async fn snapshot(ground: &Ground, execution: &str) -> Result<Ended, ApiError> {
    let Some(row) = db::execution(ground.db(), execution).await? else {
        return Err(ApiError::internal(format!(
            "the EM API's execution {execution} is gone"
        )));
    };
    let tasks = db::tasks(ground.db(), execution).await?;
    Ok(ended(&row, &tasks))
}

/// The newest run of pod `pod` the tenant started through the EM API, as it stands now.
pub(crate) async fn latest_pod(
    ground: &Ground,
    tenant: &str,
    pod: &str,
) -> Result<Option<Ended>, ApiError> {
    let ns = namespace(tenant);
    let Some(row) = db::latest_execution_with_task(ground.db(), &ns, POD_RUN, pod).await? else {
        return Ok(None);
    };
    if row.tenant != tenant {
        return Ok(None);
    }
    let tasks = db::tasks(ground.db(), &row.id).await?;
    Ok(Some(ended(&row, &tasks)))
}

fn ended(row: &ExecutionRow, tasks: &[TaskRow]) -> Ended {
    let state = |s: &str| TaskState::parse(s).unwrap_or(TaskState::Created);
    Ended {
        execution: row.id.clone(),
        state: state(&row.state),
        tasks: tasks
            .iter()
            .map(|t| TaskEnd {
                id: t.id.clone(),
                state: state(&t.state),
                started_at: t.started_at,
                finished_at: t.finished_at,
                error: t.error.as_deref().and_then(db::from_json),
                outputs: t.outputs.as_deref().and_then(db::from_json),
            })
            .collect(),
    }
}

/// A value of a generated operation, kept in the order written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Yaml {
    Str(String),
    Int(i64),
    List(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    /// A mapping from `(key, value)` pairs.
    pub(crate) fn map<'k>(entries: impl IntoIterator<Item = (&'k str, Yaml)>) -> Yaml {
        Yaml::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    /// A string.
    pub(crate) fn str(s: impl Into<String>) -> Yaml {
        Yaml::Str(s.into())
    }

    /// A list of strings.
    pub(crate) fn strs<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Yaml {
        Yaml::List(items.into_iter().map(|s| Yaml::Str(s.into())).collect())
    }
}

/// The operation's YAML: block style, every string double-quoted with escapes (ASCII only), so
/// no value a caller sends can change its structure.
pub(crate) fn operation_yaml(namespace: &str, call: &Call) -> String {
    let op = Yaml::map([
        ("id", Yaml::str(call.operation)),
        ("namespace", Yaml::str(namespace)),
        ("system", Yaml::str(format!("cg2.{SYSTEM}"))),
        ("description", Yaml::str(&call.description)),
        ("tasks", Yaml::List(call.tasks.clone())),
    ]);
    let mut out = String::new();
    if let Yaml::Map(entries) = &op {
        mapping(&mut out, entries, String::new());
    }
    out
}

/// Writes a mapping whose first key follows `lead` (indentation, or a sequence's `- `); the
/// other keys line up under it.
fn mapping(out: &mut String, entries: &[(String, Yaml)], lead: String) {
    let width = lead.len();
    let mut lead = lead;
    for (key, value) in entries {
        out.push_str(&lead);
        lead = " ".repeat(width);
        out.push_str(&plain_key(key));
        out.push(':');
        match value {
            Yaml::Map(m) if !m.is_empty() => {
                out.push('\n');
                mapping(out, m, " ".repeat(width + 2));
            }
            Yaml::List(l) if !l.is_empty() => {
                out.push('\n');
                sequence(out, l, width + 2);
            }
            v => {
                out.push(' ');
                out.push_str(&scalar(v));
                out.push('\n');
            }
        }
    }
}

fn sequence(out: &mut String, items: &[Yaml], indent: usize) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Yaml::Map(m) if !m.is_empty() => mapping(out, m, format!("{pad}- ")),
            Yaml::List(l) if !l.is_empty() => {
                out.push_str(&format!("{pad}-\n"));
                sequence(out, l, indent + 2);
            }
            v => out.push_str(&format!("{pad}- {}\n", scalar(v))),
        }
    }
}

fn scalar(v: &Yaml) -> String {
    match v {
        Yaml::Str(s) => quote(s),
        Yaml::Int(i) => i.to_string(),
        Yaml::List(_) => "[]".into(),
        Yaml::Map(_) => "{}".into(),
    }
}

/// A key as written: bare when it is a plain identifier, else quoted.
fn plain_key(k: &str) -> String {
    let plain = k.starts_with(|c: char| c.is_ascii_alphabetic())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if plain { k.to_string() } else { quote(k) }
}

/// A YAML double-quoted scalar holding only printable ASCII.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::{self, TaskSpec};

    fn call(tasks: Vec<Yaml>) -> Call {
        Call {
            operation: "em-test",
            description: "EM API: test".into(),
            tasks,
        }
    }

    #[test]
    fn generated_operations_read_back_as_written() {
        let hostile = "a\"b\\c\nd: [x] # e\u{2028}é😀\t";
        let yaml = operation_yaml(
            "alice-em",
            &call(vec![Yaml::map([
                ("id", Yaml::str("run")),
                ("type", Yaml::str("dphi.space.cg2.pod.run")),
                ("image", Yaml::str("hello:v1")),
                ("command", Yaml::strs(["/bin/sh", "-c", hostile])),
                ("args", Yaml::List(Vec::new())),
                ("env", Yaml::Map(vec![("A_B".into(), Yaml::str(hostile))])),
                ("max_duration", Yaml::str("5")),
                ("volume", Yaml::str("alice-pvc")),
            ])]),
        );
        assert!(yaml.is_ascii(), "{yaml}");
        assert!(
            yaml.starts_with("id: \"em-test\"\nnamespace: \"alice-em\"\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("tasks:\n  - id: \"run\"\n    type: "),
            "{yaml}"
        );
        let op = operation::parse(&yaml).unwrap_or_else(|d| panic!("{d:?}\n{yaml}"));
        assert_eq!(op.namespace.to_string(), "alice-em");
        let TaskSpec::PodRun {
            command,
            args,
            env,
            max_duration_ms,
            ..
        } = &op.tasks[0].spec
        else {
            panic!("{op:?}")
        };
        assert_eq!(
            command.as_deref(),
            Some(&["/bin/sh".to_string(), "-c".into(), hostile.into()][..])
        );
        assert_eq!(args.as_deref(), Some(&[][..]));
        assert_eq!(env, &vec![("A_B".to_string(), hostile.to_string())]);
        assert_eq!(*max_duration_ms, Some(300_000));
    }

    #[test]
    fn keys_that_are_not_plain_are_quoted() {
        assert_eq!(plain_key("max_duration"), "max_duration");
        assert_eq!(plain_key("A-B"), "\"A-B\"");
        assert_eq!(plain_key("1x"), "\"1x\"");
        assert_eq!(quote("\u{1f600}"), "\"\\U0001f600\"");
    }
}
