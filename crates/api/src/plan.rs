//! Planning an uplink: how files would cross the link to a system, and when they would arrive.

use serde::{Deserialize, Serialize};

use crate::systems::PassRef;

/// `POST /api/v1/plan`: the files to plan for (namespace files or folders) and where they would
/// land.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// The system to send to (a `cg2.` prefix is ignored).
    pub system: String,
    /// `namespace:/path`, each a file or a folder (every file under it, latest versions).
    pub sources: Vec<String>,
    /// The volume they would land in; the caller's default `<tenant>-pvc` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// The folder they would land under, as an uplink's `destination`; `/` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// The answer to `POST /api/v1/plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UplinkPlan {
    /// The system.
    pub system: String,
    /// The volume.
    pub volume: String,
    /// When the plan was made (and from when the ETA is predicted).
    pub generated_at: String,
    /// Each file, in the order given (a folder's files by path).
    pub files: Vec<PlannedFile>,
    /// All of them.
    pub total: PlanTotal,
    /// When the bytes to send would arrive, queued behind what the system's uplink holds now.
    pub eta: PlanEta,
}

/// How one file would be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlannedFile {
    /// `namespace:/path` of the file.
    pub source: String,
    /// Where it would land in the volume, `/a/b`.
    pub path: String,
    /// Its content, `sha256:<hex>`.
    pub digest: String,
    /// Its bytes.
    pub size: u64,
    /// `nothing` (the same content is at that path onboard), `reference` (an identical
    /// object is onboard, or earlier in this plan), a delta against `base` (`zstd-ref`,
    /// `bsdiff`, `exe`), `layers` (a `docker save` archive without the layers of the
    /// catalogue's images onboard, against `base` when it names one), `whole-zstd`
    /// (compressed) or `raw` (as itself).
    pub encoding: String,
    /// The object onboard a delta would be made against; `null` otherwise.
    pub base: Option<String>,
    /// The bytes that would cross the link for it.
    pub bytes: u64,
}

/// The totals of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanTotal {
    /// Files planned.
    pub files: u64,
    /// Their bytes.
    pub size: u64,
    /// The bytes that would cross the link for them (the plan message, a few hundred bytes,
    /// not counted).
    pub bytes: u64,
}

/// When a plan's bytes would arrive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanEta {
    /// Whether the system is always in contact (the Engineering Model): no passes.
    pub always_in_contact: bool,
    /// Bytes already queued on the system's uplink, sent first.
    pub queued_bytes_ahead: u64,
    /// When the last byte would arrive; `null` when it cannot be predicted.
    pub completion: Option<String>,
    /// The pass it would arrive in; `null` for a system always in contact, or when unknown.
    pub pass: Option<PassRef>,
    /// Which pass from now that is (1: the current or next one); `null` for a system always in
    /// contact, or when unknown.
    pub passes: Option<u32>,
    /// Why no ETA can be predicted; absent when one can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
