//! The ground's HTTP API (`docs/api.md`) as plain data: one serde type per JSON request and
//! response body, serialized by the ground and read by the CLI, so that a renamed field is a
//! compile error on both sides rather than a blank column.
//!
//! This crate does no I/O, holds no HTTP client, reads no clock and knows nothing of the ground's
//! database: it is types, their serde attributes, a few enums, and how the URI of a namespace
//! file is written ([`namespace_file_uri`], [`encode_path`]), which the ground writes and the CLI
//! requests. Times are RFC 3339 strings as the ground writes them (`2026-11-28T23:10:00.123Z`),
//! digests are `sha256:<hex>` strings, and task types and error names are plain strings, so the
//! API stays stable while the crates behind it change. Field names, `null`s and absent fields are those of `docs/api.md`: an `Option` the
//! document shows as `null` is written as `null`; one it says may be absent is left out when
//! `None`.
//!
//! The types that matter: [`ErrorBody`] (every error answer, with [`Diagnostic`]s and
//! [`PreflightFinding`]s), [`Execution`] (with its [`Task`]s, [`TaskError`]s, [`TaskOutputs`] and
//! [`UplinkEta`]), [`State`], [`Passes`], [`Track`] and [`Queue`].

mod error;
mod executions;
mod files;
mod operations;
mod plan;
mod session;
mod systems;
mod users;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use executions::{
    Execution, ExecutionList, ExecutionSummary, HistoryEntry, OutputFile, Reject, SentObject,
    StartExecution, State, Task, TaskError, TaskOutputs, TenantImage, TriggerFired, UnknownState,
    UplinkEta, UplinkReport, encode_path, namespace_file_uri,
};
pub use files::{
    CreateNamespace, FileList, MoveFiles, Moved, MovedPath, Namespace, NamespaceFile,
    NamespaceList, Removed, Uploaded, UploadedFile,
};
pub use operations::{
    AppliedOperation, Diagnostic, OperationDetail, OperationExecution, OperationList,
    OperationRevision, OperationSummary, PreflightFinding, Severity, TriggerPrediction,
    TriggerWindow, Validation,
};
pub use plan::{PlanEta, PlanRequest, PlanTotal, PlannedFile, UplinkPlan};
pub use session::{Health, LoginRequest, LoginResponse};
pub use systems::{
    CatalogueImage, Declaration, DeclaredImage, Drift, EclipseInterval, EngineImage, EngineReport,
    Eta, Inventory, LinkOwner, OtherTenants, Pass, PassRef, Passes, Queue, QueuedTransfer,
    SendElements, System, SystemElements, SystemList, Telemetry, TelemetryPoint, TelemetrySeries,
    Track, TrackPoint, Volume, VolumeFile, VolumeFileList, VolumeList,
};
pub use users::{CreateUser, Limits, Quota, QuotaList, Role, User, UserList};
