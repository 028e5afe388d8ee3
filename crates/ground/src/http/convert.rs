//! The API's twins of the ground's own types: database rows and computed views turned into the
//! body types of the `api` crate. Pure functions; the handlers call them last.
//!
//! A value the ground recorded and can no longer read is shown as empty (a JSON column, logged
//! by `db::from_json`) or refused as an internal error (a state), never as a panic.

use crate::db::{self, ExecutionRow, FileRow, HistoryEntry, OperationRow, TaskRow, VolumeFileRow};
use crate::error::ApiError;
use crate::operation::{self, Diagnostic};
use crate::passes::rfc3339;
use crate::preflight_check::PreflightFinding;
use crate::queue::{Eta, PassRef, QueueView, UplinkEta};
use crate::time;
use crate::upload::StoredFile;

/// A count or size the database keeps as `i64`, never negative.
pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A task's state as the database records it.
pub(super) fn state(s: &str) -> Result<api::State, ApiError> {
    s.parse()
        .map_err(|e| ApiError::internal(format!("recorded state: {e}")))
}

/// An execution's state as the database records it, named as an execution's
/// (`COMPLETED` for a success, see [`api::State::of_execution`]).
pub(super) fn execution_state(s: &str) -> Result<api::State, ApiError> {
    state(s).map(api::State::of_execution)
}

impl Diagnostic {
    /// The diagnostic as the API shows it.
    pub(crate) fn to_api(&self) -> api::Diagnostic {
        api::Diagnostic {
            severity: match self.severity {
                operation::Severity::Error => api::Severity::Error,
                operation::Severity::Warning => api::Severity::Warning,
            },
            line: u32::try_from(self.line).unwrap_or(u32::MAX),
            column: u32::try_from(self.column).unwrap_or(u32::MAX),
            task: self.task.clone(),
            message: self.message.clone(),
        }
    }
}

impl PreflightFinding {
    /// The finding as the API shows it.
    pub(crate) fn to_api(&self) -> api::PreflightFinding {
        api::PreflightFinding {
            task: self.task.clone(),
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            code: self.code.to_string(),
            severity: match self.severity {
                preflight::Severity::Error => api::Severity::Error,
                preflight::Severity::Warning => api::Severity::Warning,
                preflight::Severity::Info => api::Severity::Info,
            },
            message: self.message.clone(),
            help: self.help.clone(),
        }
    }
}

pub(super) fn findings(list: &[PreflightFinding]) -> Vec<api::PreflightFinding> {
    list.iter().map(PreflightFinding::to_api).collect()
}

// ---- namespaces and files ----

pub(super) fn namespace(name: &str, owner: &str, created_at: i64) -> api::Namespace {
    api::Namespace {
        name: name.to_string(),
        owner: owner.to_string(),
        created_at: time::rfc3339(created_at),
    }
}

pub(super) fn namespace_file(f: &FileRow) -> api::NamespaceFile {
    api::NamespaceFile {
        path: f.path.clone(),
        version: count(f.version),
        versions: count(f.versions),
        size: count(f.size),
        digest: f.digest.clone(),
        mode: format!("{:o}", f.mode),
        created_at: time::rfc3339(f.created_at),
    }
}

pub(super) fn uploaded_file(f: &StoredFile) -> api::UploadedFile {
    api::UploadedFile {
        path: f.path.clone(),
        version: count(f.version),
        size: f.size,
        digest: f.digest.to_string(),
        mode: format!("{:o}", f.mode),
        created_at: time::rfc3339(f.created_at),
    }
}

// ---- operations ----

pub(super) fn operation_summary(o: &OperationRow) -> api::OperationSummary {
    api::OperationSummary {
        namespace: o.namespace.clone(),
        id: o.id.clone(),
        revision: count(o.revision),
        created_at: time::rfc3339(o.created_at),
        updated_at: time::rfc3339(o.updated_at),
    }
}

pub(super) fn applied_operation(
    row: OperationRow,
    found: &[PreflightFinding],
    triggers: Vec<api::TriggerPrediction>,
) -> api::AppliedOperation {
    api::AppliedOperation {
        namespace: row.namespace,
        id: row.id,
        revision: count(row.revision),
        created_at: time::rfc3339(row.created_at),
        updated_at: time::rfc3339(row.updated_at),
        preflight: findings(found),
        triggers,
    }
}

pub(super) fn operation_detail(
    row: OperationRow,
    yaml: String,
    executions: &[ExecutionRow],
) -> Result<api::OperationDetail, ApiError> {
    let executions = executions
        .iter()
        .map(|e| {
            Ok(api::OperationExecution {
                id: e.id.clone(),
                state: execution_state(&e.state)?,
                system: e.system.clone(),
                created_at: time::rfc3339(e.created_at),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(api::OperationDetail {
        namespace: row.namespace,
        id: row.id,
        revision: count(row.revision),
        yaml,
        created_at: time::rfc3339(row.created_at),
        updated_at: time::rfc3339(row.updated_at),
        executions,
    })
}

// ---- executions ----

/// A recorded history, each state read by `state` (a task's or an execution's).
fn history(
    text: &str,
    state: fn(&str) -> Result<api::State, ApiError>,
) -> Result<Vec<api::HistoryEntry>, ApiError> {
    let h: Vec<HistoryEntry> = db::json_or_default(text);
    h.iter()
        .map(|e| {
            Ok(api::HistoryEntry {
                state: state(&e.state)?,
                at: time::rfc3339(e.at),
                by: e.by.clone(),
                reason: e.reason.clone(),
            })
        })
        .collect()
}

fn task(t: &TaskRow) -> Result<api::Task, ApiError> {
    Ok(api::Task {
        index: u32::try_from(t.idx).unwrap_or(0),
        id: t.id.clone(),
        task_type: t.ty.clone(),
        state: state(&t.state)?,
        started_at: time::rfc3339_opt(t.started_at),
        finished_at: time::rfc3339_opt(t.finished_at),
        history: history(&t.history, state)?,
        error: t.error.as_deref().and_then(db::from_json),
        outputs: t.outputs.as_deref().and_then(db::from_json),
    })
}

/// The execution with its tasks and, while some of its transfers are queued, its uplink ETA.
pub(super) fn execution(
    e: &ExecutionRow,
    tasks: &[TaskRow],
    uplink_eta: Option<&UplinkEta>,
) -> Result<api::Execution, ApiError> {
    Ok(api::Execution {
        id: e.id.clone(),
        tenant: e.tenant.clone(),
        namespace: e.namespace.clone(),
        operation: e.operation.clone(),
        revision: count(e.revision),
        system: e.system.clone(),
        state: execution_state(&e.state)?,
        created_at: time::rfc3339(e.created_at),
        scheduled_at: time::rfc3339_opt(e.scheduled_at),
        started_at: time::rfc3339_opt(e.started_at),
        finished_at: time::rfc3339_opt(e.finished_at),
        history: history(&e.history, execution_state)?,
        errors: db::json_or_default(&e.errors),
        tasks: tasks.iter().map(task).collect::<Result<_, _>>()?,
        uplink_eta: uplink_eta.map(|u| {
            let eta = u.eta.to_api();
            api::UplinkEta {
                remaining_bytes: u.remaining_bytes,
                completion: eta.completion,
                pass: eta.pass,
                error: u.error.clone(),
            }
        }),
        uplink: None,
        triggers: Vec::new(),
    })
}

pub(super) fn execution_summary(e: &ExecutionRow) -> Result<api::ExecutionSummary, ApiError> {
    Ok(api::ExecutionSummary {
        id: e.id.clone(),
        tenant: e.tenant.clone(),
        namespace: e.namespace.clone(),
        operation: e.operation.clone(),
        system: e.system.clone(),
        state: execution_state(&e.state)?,
        created_at: time::rfc3339(e.created_at),
    })
}

// ---- users and quotas ----

pub(super) fn user(u: &db::UserRow) -> api::User {
    api::User {
        name: u.name.clone(),
        role: api::Role::parse(&u.role).unwrap_or(api::Role::Tenant),
        created_at: time::rfc3339(u.created_at),
        disabled_at: time::rfc3339_opt(u.disabled_at),
    }
}

pub(super) fn quota(q: &db::QuotaRow) -> api::Quota {
    let limit = |v: Option<i64>| v.map(count);
    api::Quota {
        tenant: q.tenant.clone(),
        limits: api::Limits {
            volume_bytes: limit(q.volume_bytes),
            image_bytes: limit(q.image_bytes),
            compute_seconds_per_day: limit(q.compute_seconds_per_day),
            downlink_bytes_per_day: limit(q.downlink_bytes_per_day),
        },
        updated_at: time::rfc3339_opt(q.updated_at),
        updated_by: q.updated_by.clone(),
    }
}

// ---- systems: catalogue, passes, track, queue, volumes ----

pub(super) fn catalogue_image(b: &wire::BaseImage) -> api::CatalogueImage {
    api::CatalogueImage {
        name: b.name.clone(),
        platform: b.platform.clone(),
        digest: b.digest.map(|d| d.to_string()),
        description: b.description.clone(),
    }
}

pub(super) fn declaration(d: &wire::SystemDescription) -> api::Declaration {
    api::Declaration {
        platform: d.platform.clone(),
        builder: d.builder.to_string(),
        catalogue: d
            .catalogue
            .iter()
            .map(|e| api::DeclaredImage {
                name: e.name.clone(),
                digest: e.digest.map(|d| d.to_string()),
                platform: e.platform.clone().unwrap_or_else(|| d.platform.clone()),
                shell: e.shell,
                libraries: e.libraries.clone(),
                glibc: e.glibc.clone(),
                interpreters: e.interpreters.clone(),
                layers: e.layers.iter().map(|l| l.to_string()).collect(),
            })
            .collect(),
        gpu: d.gpu,
    }
}

pub(super) fn engine_report(e: &wire::EngineReport) -> api::EngineReport {
    api::EngineReport {
        platform: e.platform.clone(),
        builder: e.builder.to_string(),
        images: e
            .images
            .iter()
            .map(|i| api::EngineImage {
                name: i.name.clone(),
                id: i.id.clone(),
                platform: i.platform.clone(),
            })
            .collect(),
    }
}

pub(super) fn drift(d: &crate::declared::Drift) -> api::Drift {
    api::Drift {
        kind: d.kind.as_str().to_string(),
        subject: d.subject.clone(),
        declared: d.declared.clone(),
        reported: d.reported.clone(),
        message: d.message(),
    }
}

pub(super) fn track_point(p: &orbit::TrackPoint) -> api::TrackPoint {
    api::TrackPoint {
        lat: (p.position.latitude_deg * 1e4).round() / 1e4,
        lon: (p.position.longitude_deg * 1e4).round() / 1e4,
        time: rfc3339(p.epoch),
    }
}

impl PassRef {
    fn to_api(&self) -> api::PassRef {
        api::PassRef {
            station: self.station.clone(),
            aos: rfc3339(self.aos),
            los: rfc3339(self.los),
        }
    }
}

impl Eta {
    fn to_api(&self) -> api::Eta {
        api::Eta {
            pass: self.pass.as_ref().map(PassRef::to_api),
            completion: self.completion.map(rfc3339),
        }
    }
}

/// The queue of `system` as the caller sees it.
pub(super) fn queue(system: String, v: &QueueView) -> api::Queue {
    let transfers = v
        .mine
        .iter()
        .map(|t| api::QueuedTransfer {
            digest: t.digest.to_string(),
            message: t.message,
            execution: t.execution.clone(),
            tenant: t.tenant.clone(),
            bytes: t.bytes,
            remaining: t.remaining,
            other_bytes_ahead: t.other_bytes_ahead,
            eta: t.eta.to_api(),
        })
        .collect();
    api::Queue {
        system,
        generated_at: rfc3339(v.now),
        link_up: v.link_up,
        always_in_contact: v.always_in_contact,
        eta_error: v.eta_error.clone(),
        transfers,
        other_tenants: api::OtherTenants {
            transfers: v.others as u64,
            bytes: v.other_bytes,
            bytes_ahead: v.other_bytes_ahead,
        },
    }
}

pub(super) fn volume(name: String, files: i64, bytes: i64) -> api::Volume {
    api::Volume {
        name,
        files: count(files),
        bytes: count(bytes),
    }
}

pub(super) fn volume_file(f: VolumeFileRow) -> api::VolumeFile {
    api::VolumeFile {
        path: f.path,
        size: count(f.size),
        is_dir: f.is_dir,
        modified: time::rfc3339(f.modified_ms),
        digest: f.digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task_row() -> TaskRow {
        TaskRow {
            idx: 2,
            id: "build".into(),
            ty: "docker.build".into(),
            state: "FAILED".into(),
            started_at: Some(0),
            finished_at: None,
            history: r#"[{"state":"CREATED","at":0},{"state":"FAILED","at":1500}]"#.into(),
            error: None,
            outputs: None,
            spec: "{}".into(),
        }
    }

    #[test]
    fn counts_are_never_negative() {
        assert_eq!((count(-1), count(0), count(7)), (0, 0, 7));
    }

    #[test]
    fn a_task_shows_its_recorded_columns() {
        let t = task(&task_row()).unwrap();
        assert_eq!((t.index, t.state), (2, api::State::Failed));
        assert_eq!(t.started_at.as_deref(), Some("1970-01-01T00:00:00.000Z"));
        assert_eq!(t.finished_at, None);
        let history: Vec<_> = t.history.iter().map(|h| (h.state, h.at.as_str())).collect();
        assert_eq!(
            history,
            [
                (api::State::Created, "1970-01-01T00:00:00.000Z"),
                (api::State::Failed, "1970-01-01T00:00:01.500Z")
            ]
        );
        assert!(t.error.is_none() && t.outputs.is_none());
    }

    #[test]
    fn unreadable_json_columns_show_as_empty() {
        let row = TaskRow {
            history: "not json".into(),
            error: Some("{\"code\":".into()),
            outputs: Some("42".into()),
            ..task_row()
        };
        let t = task(&row).unwrap();
        assert!(t.history.is_empty() && t.error.is_none() && t.outputs.is_none());
    }

    #[test]
    fn an_unknown_recorded_state_is_an_internal_error() {
        let row = TaskRow {
            state: "LOST".into(),
            ..task_row()
        };
        let e = task(&row).unwrap_err();
        assert_eq!(e.code(), api::ErrorCode::Internal);
    }

    #[test]
    fn modes_are_octal_and_diagnostics_clamp() {
        let f = FileRow {
            path: "/run.sh".into(),
            version: 3,
            digest: "d".into(),
            size: 5,
            mode: 0o755,
            created_at: 0,
            versions: 3,
        };
        assert_eq!(namespace_file(&f).mode, "755");
        let d = Diagnostic {
            severity: operation::Severity::Warning,
            line: usize::MAX,
            column: 4,
            task: None,
            message: "m".into(),
        };
        let d = d.to_api();
        assert_eq!(
            (d.severity, d.line, d.column),
            (api::Severity::Warning, u32::MAX, 4)
        );
    }
}
