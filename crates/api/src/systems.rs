//! Systems: what the ground knows of each, the caller's onboard volumes and their files, passes,
//! the ground track and the uplink queue.

use serde::{Deserialize, Serialize};

/// A base image preloaded onboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CatalogueImage {
    /// `name:tag`.
    pub name: String,
    /// `os/arch` (`linux/arm64`).
    pub platform: String,
    /// The image id onboard; `null` until the system has reported it.
    pub digest: Option<String>,
    /// One line on what it offers.
    pub description: String,
}

/// A system the ground has a link to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct System {
    /// Its name (`em`, `fm`).
    pub name: String,
    /// `os/arch` as its agent said; `null` before it has said hello.
    pub platform: Option<String>,
    /// When its agent last said hello; `null` before it has.
    pub last_seen: Option<String>,
    /// Its base images (the default catalogue before its agent has said hello).
    pub catalogue: Vec<CatalogueImage>,
    /// What the systems file declares it to be (the default file when it says nothing).
    pub declared: Declaration,
    /// What its agent reported its engine holds, at its last hello; `null` before any.
    pub engine: Option<EngineReport>,
    /// Every difference between `declared` and `engine`; empty before the first report.
    pub drift: Vec<Drift>,
    /// How the ground's mirror of what the system holds compares with what it last reported;
    /// `null` before its first report.
    #[serde(default)]
    pub inventory: Option<Inventory>,
    /// `required` when an operator must approve each execution before it is sent (a flight
    /// system's default), `none` when executions go at once (the EM's).
    #[serde(default)]
    pub approval: String,
    /// Which ground replica runs the system's link (holds its lease), for operators;
    /// `null` for a tenant, and before any replica took it.
    #[serde(default)]
    pub link: Option<LinkOwner>,
    /// The element set the system propagates for its triggers and telemetry: the newer, by
    /// epoch, of the systems file's and the one last sent on its own; `null` when it has
    /// neither (the Engineering Model).
    #[serde(default)]
    pub elements: Option<SystemElements>,
}

/// The ground replica holding a system's link lease (docs/scale-out.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LinkOwner {
    /// The replica's name (`orbitdock ground --replica`).
    pub replica: String,
    /// The lease's generation: raised at every taking, so a takeover shows.
    pub generation: u64,
    /// When the lease expires unless renewed (every 2 s while its holder lives).
    pub expires_at: String,
    /// Whether the lease is held now; `false` once it expired or was released.
    pub live: bool,
}

/// `PUT /api/v1/systems/{system}/elements`: a newer element set for a system, sent on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SendElements {
    /// One two- or three-line element set (CelesTrak's text form; a name line first is
    /// optional). Its epoch must be later than that of the set in use.
    pub tle: String,
}

/// An element set of a system, and where the ground has it from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SystemElements {
    /// `declared` (the systems file's) or `sent` (sent on its own by an operator).
    pub source: String,
    /// The name line, if any.
    pub name: Option<String>,
    /// Line 1.
    pub line1: String,
    /// Line 2.
    pub line2: String,
    /// The NORAD catalog number of the satellite.
    pub catalog_number: u32,
    /// The elements' epoch, RFC 3339.
    pub epoch: String,
    /// When it was sent; `null` for the declared set.
    pub sent_at: Option<String>,
    /// Who sent it; `null` for the declared set.
    pub sent_by: Option<String>,
}

/// How the ground's mirror of what a system holds onboard (objects, each volume file with its
/// digest) compared with the summary the system sent after its last hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Inventory {
    /// When the last summary came.
    pub compared_at: String,
    /// The objects the system holds, as it said.
    pub objects: u64,
    /// The objects the mirror holds for it.
    pub mirrored_objects: u64,
    /// Whether the mirror is exact: `drift` is empty.
    pub in_sync: bool,
    /// What differs now (the ground has asked for it again).
    pub drift: Vec<String>,
    /// Since when something differs; `null` when in sync.
    pub drift_since: Option<String>,
    /// What differed last, repaired since; empty when nothing ever differed.
    pub repaired: Vec<String>,
    /// When it was repaired; `null` when nothing ever was.
    pub repaired_at: Option<String>,
}

/// A system's declaration: the systems file's `platform`, `builder`, `catalogue` and `gpu`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Declaration {
    /// `os/arch` of its engine.
    pub platform: String,
    /// `classic` or `buildkit`.
    pub builder: String,
    /// Its preloaded base images.
    pub catalogue: Vec<DeclaredImage>,
    /// Whether a pod of node `GPU` gets a GPU there; `null`: not declared.
    pub gpu: Option<bool>,
}

/// A declared base image and what is inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeclaredImage {
    /// `name:tag`.
    pub name: String,
    /// The image id the operator pinned; `null`: any.
    pub digest: Option<String>,
    /// `os/arch`.
    pub platform: String,
    /// Whether `/bin/sh` exists.
    pub shell: bool,
    /// Shared libraries present (file-name patterns).
    pub libraries: Vec<String>,
    /// glibc `major.minor`; `null` without glibc.
    pub glibc: Option<String>,
    /// Script interpreters present.
    pub interpreters: Vec<String>,
    /// Its layers' digests.
    pub layers: Vec<String>,
}

/// What a flight agent's engine holds, as it reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EngineReport {
    /// `os/arch` of the engine.
    pub platform: String,
    /// `classic` or `buildkit`.
    pub builder: String,
    /// The images present (not the tenants' own).
    pub images: Vec<EngineImage>,
}

/// One image an engine holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EngineImage {
    /// `name:tag`.
    pub name: String,
    /// The image id, `sha256:<hex>`.
    pub id: String,
    /// `os/arch`; empty when the engine did not say.
    pub platform: String,
}

/// One difference between a system's declaration and its engine's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Drift {
    /// `missing_image`, `digest_mismatch`, `undeclared_image`, `image_platform_mismatch`,
    /// `platform_mismatch` or `builder_mismatch`.
    pub kind: String,
    /// The image's name, or `platform` / `builder`.
    pub subject: String,
    /// What the declaration says; `null` for an undeclared image.
    pub declared: Option<String>,
    /// What the engine reported; `null` for a missing image.
    pub reported: Option<String>,
    /// One sentence for a person.
    pub message: String,
}

/// `GET /api/v1/systems`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SystemList {
    /// Every system, by name.
    pub systems: Vec<System>,
}

/// One of the caller's volumes onboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// How many files it holds.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// `GET /api/v1/systems/{system}/volumes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VolumeList {
    /// The caller's volumes.
    pub volumes: Vec<Volume>,
}

/// An entry of a volume: in the ground's mirror, and in a `files.list` task's outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VolumeFile {
    /// Relative to the volume's root.
    pub path: String,
    /// Bytes (0 for a folder).
    pub size: u64,
    /// Whether it is a folder.
    pub is_dir: bool,
    /// When it last changed.
    pub modified: String,
    /// Its content's sha256, `sha256:<hex>`, as the system reported it; absent for folders,
    /// in a `files.list`'s outputs, and while the system has not reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// `GET /api/v1/systems/{system}/volumes/{volume}/files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VolumeFileList {
    /// The ground's mirror of the volume.
    pub files: Vec<VolumeFile>,
}

/// One pass of a system over one station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Pass {
    /// The station's name.
    pub station: String,
    /// Acquisition of signal.
    pub aos: String,
    /// Loss of signal.
    pub los: String,
    /// Seconds from AOS to LOS (to the millisecond).
    pub duration_s: f64,
    /// The highest elevation, degrees (to the hundredth).
    pub max_elevation_deg: f64,
    /// The station's uplink rate, bits a second.
    pub uplink_bps: f64,
    /// The station's downlink rate, bits a second.
    pub downlink_bps: f64,
    /// What the whole pass carries up, bytes.
    pub up_bytes: u64,
    /// What the whole pass carries down, bytes.
    pub down_bytes: u64,
}

/// `GET /api/v1/systems/{system}/passes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Passes {
    /// The system.
    pub system: String,
    /// The ground's now, from which the passes are predicted.
    pub generated_at: String,
    /// How far ahead, hours.
    pub hours: u32,
    /// True for a system without an orbit: then there are no passes.
    pub always_in_contact: bool,
    /// The passes still open now that start within `hours`, by AOS.
    pub passes: Vec<Pass>,
    /// The passages through the Earth's shadow still under way now that begin within `hours`,
    /// in time order (none for a system without an orbit).
    #[serde(default)]
    pub eclipses: Vec<EclipseInterval>,
}

/// One passage through the Earth's shadow (conical model: penumbra and umbra).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EclipseInterval {
    /// The Earth's limb starts to cover the Sun.
    pub penumbra_entry: String,
    /// The whole disc is hidden (absent when the satellite stays in penumbra).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umbra_entry: Option<String>,
    /// The disc starts to reappear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umbra_exit: Option<String>,
    /// The disc is whole again.
    pub penumbra_exit: String,
    /// Seconds from penumbra entry to exit (to the millisecond).
    pub duration_s: f64,
}

/// A sub-satellite point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackPoint {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// When the satellite is over it.
    pub time: String,
}

/// `GET /api/v1/systems/{system}/track`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Track {
    /// The system.
    pub system: String,
    /// The ground's now: the first point's time.
    pub generated_at: String,
    /// True for a system without an orbit: then there are no points.
    pub always_in_contact: bool,
    /// The ground track.
    pub points: Vec<TrackPoint>,
}

/// `GET /api/v1/systems/{system}/telemetry`: what the system's onboard telemetry read, from the
/// digests it downlinked (`docs/telemetry.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Telemetry {
    /// The system.
    pub system: String,
    /// The window's start (inclusive): points start at or after it.
    pub from: String,
    /// The window's end (exclusive).
    pub to: String,
    /// How much mission time a point spans, seconds: the buckets of each such slot (a whole
    /// multiple of it since the Unix epoch) merged, so that a series has at most 1,441 points.
    pub step_s: u64,
    /// One per data type asked for, or per data type the system sent when none was.
    pub series: Vec<TelemetrySeries>,
}

/// One data type's points, oldest first; a slot without samples has no point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TelemetrySeries {
    /// What is measured, its unit in its name (`battery_soc_percent`, `temperature_sensor0` in
    /// °C, `altitude_km`, `solar_w`, `sunlit_fraction` from 0 to 1).
    pub data_type: String,
    /// The points.
    pub points: Vec<TelemetryPoint>,
}

/// The samples of one slot of mission time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TelemetryPoint {
    /// The start of its first bucket.
    pub start: String,
    /// Samples in it.
    pub count: u64,
    /// The smallest reading.
    pub min: f64,
    /// The mean reading.
    pub mean: f64,
    /// The largest reading.
    pub max: f64,
}

/// A pass as an ETA names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PassRef {
    /// The station's name.
    pub station: String,
    /// Acquisition of signal.
    pub aos: String,
    /// Loss of signal.
    pub los: String,
}

/// When a queued transfer is predicted to complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Eta {
    /// The pass it completes in; `null` for a system always in contact, or when unknown.
    pub pass: Option<PassRef>,
    /// When its last byte arrives; `null` when the passes within the horizon cannot carry it.
    pub completion: Option<String>,
}

/// One of the caller's queued uplink transfers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueuedTransfer {
    /// What it sends, `sha256:<hex>`.
    pub digest: String,
    /// True for an execution's plan, false for an object its uplink tasks need.
    pub message: bool,
    /// The caller's earliest running execution that needs it.
    pub execution: String,
    /// That execution's tenant: the caller's own, or for an operator anyone's.
    pub tenant: String,
    /// Its size.
    pub bytes: u64,
    /// The bytes the system has not acknowledged.
    pub remaining: u64,
    /// Other tenants' bytes queued before it.
    pub other_bytes_ahead: u64,
    /// When it is predicted to complete.
    pub eta: Eta,
}

/// Everyone else's queued transfers, as totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OtherTenants {
    /// How many.
    pub transfers: u64,
    /// Their remaining bytes.
    pub bytes: u64,
    /// Those queued before the caller's last transfer (all of them when the caller has none).
    pub bytes_ahead: u64,
}

/// `GET /api/v1/systems/{system}/queue`: the system's uplink queue as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Queue {
    /// The system.
    pub system: String,
    /// The ground's now, from which the ETAs are predicted.
    pub generated_at: String,
    /// Whether the link is up now.
    pub link_up: bool,
    /// True for a system without an orbit.
    pub always_in_contact: bool,
    /// Why nothing can be predicted; `null` when ETAs could be.
    pub eta_error: Option<String>,
    /// The caller's transfers, in sending order.
    pub transfers: Vec<QueuedTransfer>,
    /// Everyone else's.
    pub other_tenants: OtherTenants,
}
