//! Executions: an operation's latest revision compiled into a `wire::Plan`, recorded with one row
//! per task, and handed to the system's link.
//!
//! Compilation resolves uplink sources against the namespace's latest file versions and places
//! each file by [`landing_path`] (the destination followed by its whole namespace path). A source
//! that does not exist fails its task (and the execution) before anything is sent.

use std::collections::HashMap;

use serde_json::json;
use wire::names::{NamespacePath, TenantImage, VolumeName, VolumePath};
use wire::{ErrorCode, ImageRef, Plan, PlanTask, TaskError, TaskKind, TaskState, UplinkFile};

use crate::approval::Approval;
use crate::db::{self, ExecutionRow, FileRow, HistoryEntry, TaskRow};
use crate::error::ApiError;
use crate::operation::{self, Operation, TaskSpec};
use crate::{Ground, auth, config::limits, time};

/// What an uplink source names in the namespace.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// One file (its latest version).
    File(FileRow),
    /// A folder: the latest version of every file under it.
    Folder(Vec<FileRow>),
    /// Nothing.
    Missing,
}

/// A task that could not be compiled: it fails, and the execution with it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompileFailure {
    pub(crate) task: usize,
    pub(crate) error: TaskError,
}

/// The message of tasks that never ran because an earlier one failed.
pub(crate) const NOT_RUN: &str = "not run: an earlier task failed (on_failure: stop)";

/// Starts an execution; returns its id.
pub(crate) async fn start(
    ground: &Ground,
    tenant: &str,
    req: api::StartExecution,
) -> Result<String, ApiError> {
    auth::check_namespace(ground, tenant, &req.namespace).await?;
    let Some((mut op_row, mut yaml)) =
        db::operation(ground.db(), &req.namespace, &req.operation).await?
    else {
        return Err(ApiError::not_found(format!(
            "operation '{}/{}' not found",
            req.namespace, req.operation
        )));
    };
    if let Some(revision) = req.revision.filter(|&r| r as i64 != op_row.revision) {
        let found = match i64::try_from(revision) {
            Ok(r) => db::operation_revision(ground.db(), &req.namespace, &req.operation, r).await?,
            Err(_) => None,
        };
        let Some((text, _)) = found else {
            return Err(ApiError::not_found(format!(
                "operation '{}/{}' has no revision {revision}",
                req.namespace, req.operation
            )));
        };
        (op_row.revision, yaml) = (revision as i64, text);
    }
    let op = operation::parse(&yaml).map_err(|diagnostics| ApiError::Invalid {
        message: "the operation's revision no longer validates; apply it again".into(),
        diagnostics,
    })?;
    let system = req
        .system
        .clone()
        .or_else(|| op.system.as_ref().map(|s| s.to_string()))
        .unwrap_or_else(|| "em".to_string());
    let system = system.strip_prefix("cg2.").unwrap_or(&system).to_string();
    if ground.system(&system).is_none() {
        return Err(ApiError::bad(format!(
            "unknown system '{system}'; configured: {}",
            ground.system_names().collect::<Vec<_>>().join(", ")
        )));
    }

    let sources = resolve_sources(ground, &req.namespace, &op).await?;
    if !req.force {
        crate::preflight_check::gate(ground, tenant, &op, &system, &sources).await?;
    }
    let id = uuid::Uuid::new_v4().to_string();
    let now = time::now_ms();
    let compiled = compile(&op, tenant, &id, &sources);

    let history = |state: TaskState| {
        db::to_json(&vec![HistoryEntry {
            state: state.as_str().into(),
            at: now,
            by: None,
            reason: None,
        }])
    };
    let mut exec = ExecutionRow {
        id: id.clone(),
        tenant: tenant.to_string(),
        namespace: op_row.namespace.clone(),
        operation: op_row.id.clone(),
        revision: op_row.revision,
        system: system.clone(),
        state: TaskState::Created.as_str().into(),
        created_at: now,
        scheduled_at: None,
        started_at: None,
        finished_at: None,
        history: history(TaskState::Created),
        errors: "[]".into(),
    };
    let mut tasks: Vec<TaskRow> = op
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| TaskRow {
            idx: i as i64,
            id: t.id.to_string(),
            ty: t.spec.type_name().to_string(),
            state: TaskState::Created.as_str().into(),
            started_at: None,
            finished_at: None,
            history: history(TaskState::Created),
            error: None,
            outputs: None,
            spec: db::to_json(&match &t.spec {
                TaskSpec::Downlink { destination, .. } => {
                    json!({ "destination": destination.as_str() })
                }
                _ => json!({}),
            }),
        })
        .collect();

    let plan = match compiled {
        Ok(plan) => plan,
        Err(failure) => {
            // Nothing is sent: the failing task carries the error, every other task "not run".
            let failed_id = tasks
                .get(failure.task)
                .map(|t| t.id.clone())
                .unwrap_or_default();
            for t in &mut tasks {
                let error = if t.idx == failure.task as i64 {
                    failure.error.clone()
                } else {
                    TaskError {
                        code: ErrorCode::ExecutionError,
                        message: format!("not run: task '{failed_id}' could not be compiled"),
                        log_tail: Vec::new(),
                    }
                };
                finish(t, TaskState::Failed, now, Some(&error));
            }
            let errors = vec![error_json(Some(&failed_id), &failure.error)];
            set_state(&mut exec, TaskState::Failed, now);
            exec.errors = db::to_json(&errors);
            let mut tx = db::write_tx(ground.db()).await?;
            db::insert_execution(&mut tx, &exec).await?;
            for t in &tasks {
                db::insert_task(&mut tx, &id, t).await?;
            }
            tx.commit().await?;
            return Ok(id);
        }
    };

    let mut plan = plan;
    // Triggers are judged onboard from the system's element set, which goes up with the plan.
    plan.elements = crate::triggers::elements_for(ground, &system, &plan)?;
    if let Some(declared) = plan.elements.take() {
        // A newer set sent on its own since (`elements`) is the one in use.
        plan.elements = Some(crate::elements::newest(ground, &system, declared).await?);
    }
    if ground.approval(&system) == Approval::Required {
        // Held, compiled but unsigned, until an operator approves it (`approval`).
        crate::approval::hold(ground, &mut exec, &tasks, &plan).await?;
        return Ok(id);
    }
    let mut tx = db::write_tx(ground.db()).await?;
    ground.seal_plan(&mut tx, &system, &mut plan).await?;
    db::insert_execution(&mut tx, &exec).await?;
    for t in &tasks {
        db::insert_task(&mut tx, &id, t).await?;
    }
    crate::queue::record(&mut tx, &id, &plan).await?;
    // Scheduled before the plan leaves, so that events answering it always find it so, and in
    // the transaction that creates it: no cancel can land between and be written over.
    mark_scheduled(&mut tx, &mut exec, &mut tasks, time::now_ms(), None).await?;
    tx.commit().await?;
    send(ground, exec, tasks, plan).await?;
    Ok(id)
}

/// An execution's stored state as users read it: the Clustergate-2 name (`COMPLETED` for a
/// successful execution, not `SUCCESS`); text that names no state, as it is.
pub(crate) fn shown_state(state: &str) -> &str {
    state
        .parse::<api::State>()
        .map_or(state, |s| s.of_execution().as_str())
}

/// Moves an execution and its tasks to SCHEDULED at `now`, in `tx`; `by` names the operator
/// whose approval scheduled it.
pub(crate) async fn mark_scheduled(
    tx: &mut db::Tx,
    exec: &mut ExecutionRow,
    tasks: &mut [TaskRow],
    now: i64,
    by: Option<&str>,
) -> Result<(), sqlx::Error> {
    set_state(exec, TaskState::Scheduled, now);
    if let Some(by) = by {
        mark_last(&mut exec.history, Some(by), None);
    }
    exec.scheduled_at = Some(now);
    db::update_execution(tx, exec).await?;
    for t in tasks {
        push_history(&mut t.history, TaskState::Scheduled, now);
        t.state = TaskState::Scheduled.as_str().into();
        db::update_task(tx, &exec.id, t).await?;
    }
    Ok(())
}

/// Hands a recorded, scheduled plan to its system's link. When the link has stopped, the
/// execution fails, and every task with it.
///
/// It runs on a task of its own, awaited: a request dropped meanwhile (its client gone) does not
/// stop a plan already recorded and scheduled on its way to the link.
pub(crate) async fn send(
    ground: &Ground,
    exec: ExecutionRow,
    tasks: Vec<TaskRow>,
    plan: Plan,
) -> Result<(), ApiError> {
    let ground = ground.clone();
    tokio::spawn(async move { send_now(&ground, exec, tasks, plan).await })
        .await
        .map_err(|e| ApiError::internal(format!("sending a plan failed: {e}")))?
}

async fn send_now(
    ground: &Ground,
    mut exec: ExecutionRow,
    mut tasks: Vec<TaskRow>,
    plan: Plan,
) -> Result<(), ApiError> {
    let sent = match ground.system(&exec.system) {
        Some(link) => link.send_plan(plan).await.is_ok(),
        None => false,
    };
    if sent {
        return Ok(());
    }
    let exec = &mut exec;
    let (id, system) = (exec.id.clone(), exec.system.clone());
    tracing::error!(execution = %id, %system, "the system's link has stopped; the plan was not sent");
    let now = time::now_ms();
    let error = TaskError {
        code: ErrorCode::TransferFailed,
        message: format!("the link to system '{system}' has stopped"),
        log_tail: Vec::new(),
    };
    let mut tx = db::write_tx(ground.db()).await?;
    set_state(exec, TaskState::Failed, now);
    exec.errors = db::to_json(&vec![error_json(None, &error)]);
    db::update_execution(&mut tx, exec).await?;
    for t in &mut tasks {
        finish(t, TaskState::Failed, now, Some(&error));
        db::update_task(&mut tx, &id, t).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Looks up every uplink source of the operation.
pub(crate) async fn resolve_sources(
    ground: &Ground,
    namespace: &str,
    op: &Operation,
) -> Result<HashMap<NamespacePath, Source>, ApiError> {
    let mut out = HashMap::new();
    for task in &op.tasks {
        let TaskSpec::Uplink { sources, .. } = &task.spec else {
            continue;
        };
        for src in sources {
            if out.contains_key(src) {
                continue;
            }
            let found = match db::file_version(ground.db(), namespace, src, None).await? {
                Some(file) => Source::File(file),
                None => {
                    let files = db::latest_files(
                        ground.db(),
                        namespace,
                        src,
                        limits::UPLOAD_ENTRIES as i64 + 1,
                        0,
                    )
                    .await?;
                    if files.is_empty() {
                        Source::Missing
                    } else {
                        Source::Folder(files)
                    }
                }
            };
            out.insert(src.clone(), found);
        }
    }
    Ok(out)
}

/// Where an uplinked namespace file lands in its volume: `destination` followed by the file's
/// whole namespace path, whether the task selected the file itself or a folder above it (as
/// Clustergate-2 keeps "the same directory layout"). `/in/input.txt` lands at `in/input.txt`
/// with destination `/`, at `x/in/input.txt` with destination `/x`; every file of a selected
/// folder `/my-app` lands under `my-app/`. `None` when the result is not a valid volume path
/// (too long).
///
/// The one rule: plan compilation places files by it, and everything else that needs to know
/// where a file lands (preflight's view of the volume, through [`compile`]) asks it.
pub(crate) fn landing_path(destination: &VolumePath, file: &str) -> Option<VolumePath> {
    let rel = NamespacePath::parse(file).ok()?.relative();
    destination.join(&rel)
}

/// The volume a task uses: the one it names, else the tenant's default `<tenant>-pvc` (as
/// Clustergate-2 names a user's default volume).
pub(crate) fn volume_or_default(volume: Option<&VolumeName>, tenant: &str) -> String {
    volume.map_or_else(|| format!("{tenant}-pvc"), |v| v.to_string())
}

/// Compiles a validated operation into a plan. Pure: every lookup is in `sources`.
pub(crate) fn compile(
    op: &Operation,
    tenant: &str,
    execution: &str,
    sources: &HashMap<NamespacePath, Source>,
) -> Result<Plan, CompileFailure> {
    let volume = |v: &Option<VolumeName>| volume_or_default(v.as_ref(), tenant);
    let mut tasks = Vec::with_capacity(op.tasks.len());
    for (index, task) in op.tasks.iter().enumerate() {
        let fail = |code, message: String| CompileFailure {
            task: index,
            error: TaskError {
                code,
                message,
                log_tail: Vec::new(),
            },
        };
        let kind = match &task.spec {
            TaskSpec::Uplink {
                sources: srcs,
                destination,
                volume: v,
            } => {
                let mut files: Vec<UplinkFile> = Vec::new();
                // Where each placed path sits in `files`: a later source placing it again wins.
                let mut placed: HashMap<String, usize> = HashMap::new();
                for src in srcs {
                    let selected: &[FileRow] = match sources.get(src) {
                        Some(Source::File(f)) => std::slice::from_ref(f),
                        Some(Source::Folder(list)) => list,
                        Some(Source::Missing) | None => {
                            return Err(fail(
                                ErrorCode::ExecutionError,
                                format!("File not found: {src}"),
                            ));
                        }
                    };
                    for f in selected {
                        let path = landing_path(destination, &f.path).ok_or_else(|| {
                            fail(
                                ErrorCode::ValidationError,
                                format!(
                                    "'{}' under '{}' is not a valid volume path (at most {} bytes, each component at most {})",
                                    f.path,
                                    destination.display(),
                                    wire::names::MAX_PATH_BYTES,
                                    wire::names::MAX_COMPONENT_BYTES
                                ),
                            )
                        })?;
                        let digest = f.digest.parse().map_err(|_| {
                            fail(
                                ErrorCode::TransferFailed,
                                format!("the ground's record of {} is damaged", f.path),
                            )
                        })?;
                        let file = UplinkFile {
                            path: path.into(),
                            digest,
                            size: u64::try_from(f.size).unwrap_or(0),
                            mode: u32::try_from(f.mode).unwrap_or(0o644),
                        };
                        match placed.get(&file.path) {
                            Some(&i) => files[i] = file,
                            None => {
                                placed.insert(file.path.clone(), files.len());
                                files.push(file);
                            }
                        }
                    }
                }
                TaskKind::Uplink {
                    volume: volume(v),
                    files,
                }
            }
            TaskSpec::Downlink {
                sources: srcs,
                volume: v,
                ..
            } => TaskKind::Downlink {
                volume: volume(v),
                sources: srcs.iter().map(|s| s.to_string()).collect(),
            },
            TaskSpec::FilesList {
                folder,
                depth,
                volume: v,
            } => TaskKind::FilesList {
                volume: v.as_ref().map(|v| v.to_string()),
                folder: folder.to_string(),
                depth: *depth,
            },
            TaskSpec::DockerBuild {
                dockerfile,
                context,
                image,
                volume: v,
                max_duration_ms,
            } => TaskKind::DockerBuild {
                volume: volume(v),
                dockerfile: dockerfile.to_string(),
                context: context.to_string(),
                image: image_ref(image),
                max_duration_ms: *max_duration_ms,
            },
            TaskSpec::DockerLoad {
                tarfile,
                image,
                volume: v,
            } => TaskKind::DockerLoad {
                volume: volume(v),
                tarfile: tarfile.to_string(),
                image: image_ref(image),
            },
            TaskSpec::PodRun {
                pod_name,
                image,
                command,
                args,
                env,
                volume: v,
                max_duration_ms,
                scheduled_ms,
                merge,
                node,
                ports,
            } => TaskKind::PodRun {
                pod_name: pod_name.to_string(),
                image: image.clone(),
                command: command.clone(),
                args: args.clone(),
                env: env.clone(),
                volume: volume(v),
                max_duration_ms: *max_duration_ms,
                scheduled_ms: *scheduled_ms,
                // Merged pods start together: each but the last of a run of adjacent merged
                // pod.run tasks ends once its pod started (docs/operations.md).
                detached: *merge
                    && matches!(
                        op.tasks.get(index + 1).map(|t| &t.spec),
                        Some(TaskSpec::PodRun { merge: true, .. })
                    ),
                node: node.clone(),
                merged: *merge,
                ports: ports.clone(),
            },
            TaskSpec::PodStop { pod_name, grace_ms } => TaskKind::PodStop {
                pod_name: pod_name.to_string(),
                grace_ms: *grace_ms,
            },
            TaskSpec::PodLogs {
                pod_name,
                volume: v,
            } => TaskKind::PodLogs {
                pod_name: pod_name.to_string(),
                volume: volume(v),
            },
            TaskSpec::FilesDelete {
                sources: paths,
                volume: v,
            } => TaskKind::FilesDelete {
                volume: volume(v),
                paths: paths.iter().map(|p| p.to_string()).collect(),
            },
            TaskSpec::ImageList => TaskKind::ImageList,
            TaskSpec::CameraCapture {
                destination,
                size,
                volume: v,
            } => TaskKind::CameraCapture {
                volume: volume(v),
                path: destination.to_string(),
                size: *size,
            },
            TaskSpec::ImageDelete { image } => TaskKind::ImageDelete {
                image: image_ref(image),
            },
            TaskSpec::FilesMove { paths, volume: v } => TaskKind::FilesMove {
                volume: volume(v),
                source: paths.source().to_string(),
                destination: paths.destination().to_string(),
            },
        };
        tasks.push(PlanTask {
            id: task.id.to_string(),
            on_failure: task.on_failure,
            trigger: task.trigger.clone(),
            kind,
        });
    }
    // Bound to its system and signed when recorded (`Ground::seal_plan`).
    let plan = Plan {
        execution: execution.to_string(),
        tenant: tenant.to_string(),
        tasks,
        system: String::new(),
        sequence: 0,
        elements: None,
        issued_ms: 0,
        expires_ms: 0,
        signature: Vec::new(),
    };
    let size = wire::encode_message(&wire::Message::Plan(plan.clone())).len();
    if size > wire::MAX_MESSAGE {
        let biggest = plan
            .tasks
            .iter()
            .enumerate()
            .max_by_key(|(_, t)| match &t.kind {
                TaskKind::Uplink { files, .. } => files.len(),
                _ => 0,
            })
            .map_or(0, |(i, _)| i);
        return Err(CompileFailure {
            task: biggest,
            error: TaskError {
                code: ErrorCode::ValidationError,
                message: format!(
                    "the plan is too large ({size} bytes, at most {}): uplink fewer files per execution",
                    wire::MAX_MESSAGE
                ),
                log_tail: Vec::new(),
            },
        });
    }
    Ok(plan)
}

/// The wire form of a tenant image.
fn image_ref(image: &TenantImage) -> ImageRef {
    ImageRef {
        name: image.name.to_string(),
        tag: image.tag.to_string(),
    }
}

/// A task error as the API shows it (and the database keeps it); `task` names the task in an
/// execution's error list.
pub(crate) fn error_json(task: Option<&str>, e: &TaskError) -> api::TaskError {
    api::TaskError {
        task: task.map(str::to_string),
        code: e.code.code(),
        name: e.code.name().to_string(),
        message: e.message.clone(),
        log_tail: e.log_tail.clone(),
    }
}

pub(crate) fn push_history(history: &mut String, state: TaskState, at: i64) {
    let mut h: Vec<HistoryEntry> = db::json_or_default(history);
    h.push(HistoryEntry {
        state: state.as_str().into(),
        at,
        by: None,
        reason: None,
    });
    *history = db::to_json(&h);
}

/// Names who made the last change of a history, and why.
pub(crate) fn mark_last(history: &mut String, by: Option<&str>, reason: Option<&str>) {
    let mut h: Vec<HistoryEntry> = db::json_or_default(history);
    if let Some(last) = h.last_mut() {
        last.by = by.map(str::to_string);
        last.reason = reason.map(str::to_string);
    }
    *history = db::to_json(&h);
}

/// Moves an execution to `state`, with the timestamps that go with it.
pub(crate) fn set_state(exec: &mut ExecutionRow, state: TaskState, at: i64) {
    exec.state = state.as_str().into();
    push_history(&mut exec.history, state, at);
    match state {
        TaskState::Running => exec.started_at = Some(at),
        s if s.is_final() => exec.finished_at = Some(at),
        _ => {}
    }
}

/// Moves a task to a final `state`, with its error.
pub(crate) fn finish(task: &mut TaskRow, state: TaskState, at: i64, error: Option<&TaskError>) {
    task.state = state.as_str().into();
    push_history(&mut task.history, state, at);
    task.finished_at = Some(at);
    if let Some(e) = error {
        task.error = Some(db::to_json(&error_json(None, e)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, mode: i64) -> FileRow {
        FileRow {
            path: path.into(),
            version: 1,
            digest: wire::Digest::of(path.as_bytes()).to_string(),
            size: 3,
            mode,
            created_at: 0,
            versions: 1,
        }
    }

    fn op(tasks: &str) -> Operation {
        operation::parse(&format!("id: o\nnamespace: ns\ntasks:\n{tasks}")).unwrap()
    }

    #[test]
    fn uplink_keeps_the_namespace_layout() {
        let op = op(concat!(
            "  - id: up\n    type: uplink\n    source: [/app, /cfg/a.json]\n    destination: /srv\n",
            "  - id: cg2\n    type: dphi.space.cg2.uplink\n    source: [/Dockerfile, /my-app, /in/input.txt]\n    destination: /\n",
            "  - id: all\n    type: uplink\n    source: [/, /in/input.txt]\n    destination: x\n",
        ));
        let sources = HashMap::from([
            (
                "/app".parse().unwrap(),
                Source::Folder(vec![file("/app/bin/run", 0o755), file("/app/x", 0o644)]),
            ),
            (
                "/cfg/a.json".parse().unwrap(),
                Source::File(file("/cfg/a.json", 0o644)),
            ),
            (
                "/Dockerfile".parse().unwrap(),
                Source::File(file("/Dockerfile", 0o644)),
            ),
            (
                "/my-app".parse().unwrap(),
                Source::Folder(vec![file("/my-app/bin/app", 0o755)]),
            ),
            (
                "/in/input.txt".parse().unwrap(),
                Source::File(file("/in/input.txt", 0o644)),
            ),
            (
                "/".parse().unwrap(),
                Source::Folder(vec![file("/in/input.txt", 0o644), file("/z", 0o600)]),
            ),
        ]);
        let plan = compile(&op, "alice", "e1", &sources).unwrap();
        let placed = |i: usize| {
            let TaskKind::Uplink { volume, files } = &plan.tasks[i].kind else {
                panic!()
            };
            assert_eq!(volume, "alice-pvc");
            files
                .iter()
                .map(|f| (f.path.clone(), f.mode))
                .collect::<Vec<_>>()
        };
        let p = |s: &str, m: u32| (s.to_string(), m);
        // A file keeps its folders, a folder its whole path, under the destination.
        assert_eq!(
            placed(0),
            [
                p("srv/app/bin/run", 0o755),
                p("srv/app/x", 0o644),
                p("srv/cfg/a.json", 0o644)
            ]
        );
        assert_eq!(
            placed(1),
            [
                p("Dockerfile", 0o644),
                p("my-app/bin/app", 0o755),
                p("in/input.txt", 0o644)
            ]
        );
        // The root sends the namespace as it is; a file selected again lands once.
        assert_eq!(placed(2), [p("x/in/input.txt", 0o644), p("x/z", 0o600)]);
        let TaskKind::Uplink { files, .. } = &plan.tasks[0].kind else {
            panic!()
        };
        assert_eq!(files[0].digest, wire::Digest::of(b"/app/bin/run"));
    }

    #[test]
    fn the_landing_rule() {
        let at = |dest: &str, file: &str| {
            landing_path(&VolumePath::parse(dest).unwrap(), file).map(String::from)
        };
        assert_eq!(at("/", "/in/input.txt").as_deref(), Some("in/input.txt"));
        assert_eq!(at("/x", "/in/input.txt").as_deref(), Some("x/in/input.txt"));
        assert_eq!(at("a/b/", "/c").as_deref(), Some("a/b/c"));
        let long = format!("/{}", "d/".repeat(2100));
        assert_eq!(at("/x", long.trim_end_matches('/')), None, "too long");
        assert_eq!(volume_or_default(None, "bob"), "bob-pvc");
    }

    /// Adjacent merged pod.run tasks start together: each but the last of a run ends once its
    /// pod started (`detached`); the last, an unmerged pod and a merged one followed by another
    /// type wait. pod.stop and pod.logs compile as written.
    #[test]
    fn merged_pods_start_together() {
        let pod = |id: &str, merge: bool| {
            format!(
                "  - id: {id}\n    type: pod.run\n    image: busybox:latest\n    merge: {merge}\n"
            )
        };
        let yaml = [
            pod("a", true),
            pod("b", true),
            pod("c", true),
            "  - id: ls\n    type: files.list\n".to_string(),
            pod("d", true),
            pod("e", false),
            pod("f", true),
            "  - id: stop\n    type: pod.stop\n    pod_name: a\n    grace: 1m\n".to_string(),
            "  - id: logs\n    type: pod.logs\n    pod_name: a\n".to_string(),
        ]
        .concat();
        let plan = compile(&op(&yaml), "alice", "e1", &HashMap::new()).unwrap();
        let detached: Vec<(String, bool)> = plan
            .tasks
            .iter()
            .filter_map(|t| match &t.kind {
                TaskKind::PodRun { detached, .. } => Some((t.id.clone(), *detached)),
                _ => None,
            })
            .collect();
        let want = [
            ("a", true),
            ("b", true),
            ("c", false),
            ("d", false),
            ("e", false),
            ("f", false),
        ];
        assert_eq!(detached, want.map(|(i, d)| (i.to_string(), d)).to_vec());
        assert_eq!(
            plan.tasks[7].kind,
            TaskKind::PodStop {
                pod_name: "a".into(),
                grace_ms: Some(60_000)
            }
        );
        assert_eq!(
            plan.tasks[8].kind,
            TaskKind::PodLogs {
                pod_name: "a".into(),
                volume: "alice-pvc".into()
            }
        );
    }

    #[test]
    fn missing_source_fails_its_task() {
        let op =
            op("  - id: ls\n    type: files.list\n  - id: up\n    type: uplink\n    source: /x\n");
        let sources = HashMap::from([("/x".parse().unwrap(), Source::Missing)]);
        let failure = compile(&op, "alice", "e1", &sources).unwrap_err();
        assert_eq!(failure.task, 1);
        assert_eq!(failure.error.code, ErrorCode::ExecutionError);
        assert_eq!(failure.error.message, "File not found: /x");
    }

    #[test]
    fn other_tasks_map_their_fields() {
        let op = op(concat!(
            "  - id: b\n    type: docker.build\n    image: hello:1\n    volume: work\n    max_duration: 2\n",
            "  - id: r\n    type: pod.run\n    image: hello:1\n    command: /hello\n    env: {K: v}\n    on_failure: continue\n",
            "  - id: d\n    type: downlink\n    source: /out/*.txt\n",
        ));
        let plan = compile(&op, "bob", "e2", &HashMap::new()).unwrap();
        assert_eq!(plan.tenant, "bob");
        assert_eq!(
            plan.tasks[0].kind,
            TaskKind::DockerBuild {
                volume: "work".into(),
                dockerfile: "Dockerfile".into(),
                context: String::new(),
                image: wire::ImageRef {
                    name: "hello".into(),
                    tag: "1".into()
                },
                max_duration_ms: Some(120_000),
            }
        );
        assert_eq!(plan.tasks[1].on_failure, wire::OnFailure::Continue);
        let TaskKind::PodRun {
            command,
            env,
            pod_name,
            ..
        } = &plan.tasks[1].kind
        else {
            panic!()
        };
        assert_eq!(
            (command.clone(), env.clone(), pod_name.as_str()),
            (
                Some(vec!["/hello".to_string()]),
                vec![("K".into(), "v".into())],
                "r"
            )
        );
        assert_eq!(
            plan.tasks[2].kind,
            TaskKind::Downlink {
                volume: "bob-pvc".into(),
                sources: vec!["out/*.txt".into()]
            }
        );
    }
}
