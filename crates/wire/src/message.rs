use serde::{Deserialize, Serialize};

use crate::inventory::{FileDigest, InventorySummary, VolumeRef};
use crate::{
    BaseImage, Digest, ElementsOrder, EngineReport, ErrorCode, TelemetryDigest, Trigger,
    TriggerFired,
};

/// The largest encoded [`Message`] either side accepts. Objects travel beside messages as
/// transfers of their own, so this bounds plans and listings, not files.
pub const MAX_MESSAGE: usize = 4 << 20;

/// The most executions a [`Message::Hello`] lists as held: the agent's plan queue is smaller
/// (a plan beyond its bound is refused), so in practice the list is whole.
pub const MAX_HELD_PLANS: usize = 512;

/// The smallest picture [`TaskKind::CameraCapture`] takes, in pixels a side.
pub const CAMERA_MIN_SIZE: u32 = 64;
/// The largest picture [`TaskKind::CameraCapture`] takes, in pixels a side.
pub const CAMERA_MAX_SIZE: u32 = 2048;

/// What ground and flight say to each other. Every message crosses the link whole, in order,
/// exactly once per session (the transfer layer in `sync` sees to that).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Flight → ground, at start and then periodically: who the agent is and which base images
    /// it holds.
    Hello {
        /// The agent's name (the system it runs as, e.g. `em`).
        agent: String,
        /// `os/arch` of the onboard runtime.
        platform: String,
        /// The onboard base-image catalogue with digests.
        catalogue: Vec<BaseImage>,
        /// Drawn at every start of the agent. A new value tells the ground that the agent
        /// restarted: the ground sends again the plans of its unfinished executions that
        /// `holds` does not name (the agent replays the events of any it finished).
        boot: u64,
        /// The executions whose plans the agent holds and has not finished, at most
        /// [`MAX_HELD_PLANS`] (the ground reads no more).
        holds: Vec<String>,
        /// What the engine really holds (base images, platform, builder): the ground compares
        /// it with the system's declaration and shows the drift.
        engine: EngineReport,
    },
    /// Ground → flight: an execution compiled into tasks for the agent to run.
    Plan(Plan),
    /// Either way: the sender lacks these objects and asks for them; they come back as object
    /// transfers of the link session, not as messages.
    Need {
        /// Objects wanted, in the order wanted.
        digests: Vec<Digest>,
    },
    /// Flight → ground: a task changed state.
    TaskEvent {
        /// The execution's id.
        execution: String,
        /// Index of the task in the plan.
        task: u32,
        /// The new state.
        state: TaskState,
        /// When, in milliseconds since the Unix epoch (onboard clock).
        at_ms: u64,
        /// Why the task failed, when `state` is `Failed`.
        error: Option<TaskError>,
        /// What the task produced, when it finished.
        outputs: Option<TaskOutputs>,
    },
    /// Flight → ground: the execution as a whole changed state.
    ExecutionEvent {
        /// The execution's id.
        execution: String,
        /// The new state.
        state: ExecutionState,
        /// When, in milliseconds since the Unix epoch (onboard clock).
        at_ms: u64,
    },
    /// Flight → ground: the files in one tenant volume, after a task changed them.
    VolumeListing {
        /// The tenant owning the volume.
        tenant: String,
        /// The volume's name.
        volume: String,
        /// Every file and folder in the volume (bounded by the agent).
        files: Vec<FileEntry>,
    },
    /// Flight → ground: the sender lacks these objects and asks for each in the form the ground
    /// finds smallest: the object itself, the object compressed, or a patch against an object
    /// the flight holds (one of each wanted object's `bases`, or none). A patch is announced by
    /// [`Message::Patches`] and travels as an object transfer of its own, named by its own
    /// digest; an object sent as itself needs no announcement. ([`Message::Need`] asks for the
    /// objects themselves.)
    Want {
        /// Objects wanted, in the order wanted.
        objects: Vec<WantedObject>,
    },
    /// Ground → flight: objects asked for with [`Message::Want`] come as these patches. The
    /// flight applies each once both it and its base are onboard, stores the result only once
    /// its sha256 is the wanted digest, and asks for the object itself (a [`WantedObject`] with
    /// `whole`) when a patch does not apply or verify.
    Patches {
        /// One per wanted object sent as a patch.
        patches: Vec<PatchOffer>,
    },
    /// Flight → ground: the digests of the files of one tenant volume, sent after its
    /// [`Message::VolumeListing`] (files the agent could not hash yet are left out).
    VolumeDigests {
        /// The tenant owning the volume.
        tenant: String,
        /// The volume's name.
        volume: String,
        /// Files with their digests, by the listing's paths.
        files: Vec<FileDigest>,
    },
    /// Flight → ground, after each `Hello`: what the system holds, in short. The ground
    /// compares it with its mirror and asks for what differs ([`Message::InventoryRequest`]).
    InventorySummary(InventorySummary),
    /// Ground → flight: the mirror differs from the summary; send the object list (`objects`)
    /// and these volumes' listings and digests again.
    InventoryRequest {
        /// Send [`Message::Inventory`].
        objects: bool,
        /// Send a `VolumeListing` and its `VolumeDigests` for each.
        volumes: Vec<VolumeRef>,
    },
    /// Flight → ground, when asked: the objects onboard (when asked for), and every tenant
    /// volume there is (a volume the ground mirrors that is not named is gone).
    Inventory {
        /// The objects' digests, at most
        /// [`MAX_INVENTORY_OBJECTS`](crate::MAX_INVENTORY_OBJECTS); `None` when not asked for.
        objects: Option<Vec<Digest>>,
        /// Whether `objects` is every object (else the store holds more).
        complete: bool,
        /// Every tenant volume onboard.
        volumes: Vec<VolumeRef>,
    },
    /// Ground → flight: stop an execution (see [`CancelOrder`]). Its tasks not started never
    /// start, a running one is stopped, and they all end `Cancelled`, as does the execution; a
    /// cancel that comes before its plan keeps that plan from ever running, and one that comes
    /// after the execution ended changes nothing (its final events are sent again). Added last,
    /// so that every other message keeps its encoding; an agent that predates it cannot decode
    /// it and drops it, logged.
    Cancel(CancelOrder),
    /// Ground → flight: a newer element set for the system (see [`ElementsOrder`]), sent on its
    /// own: the agent propagates it, instead of any older element set of the same satellite, for
    /// the triggers it waits for and for its telemetry. Added after `Cancel`, so that every
    /// other message keeps its encoding.
    Elements(ElementsOrder),
    /// Flight → ground: buckets of the onboard telemetry history not sent before (see
    /// [`TelemetryDigest`]); the ground keeps them (a bucket it has is replaced by the same
    /// bucket again) and plots them. Added after `Elements`, so that every other message keeps
    /// its encoding; a ground that predates it cannot decode it and drops it, logged.
    TelemetryDigest(TelemetryDigest),
    /// Flight → ground, after each `Hello`: the layers (DiffIDs: the sha256 of each layer's
    /// uncompressed tar, as the engine records them) of the catalogue's base images present
    /// onboard, which the agent can export from its engine. The ground leaves them out of the
    /// `docker save` archives it sends up (`delta`'s layers kind); only catalogue images are
    /// listed, never a tenant's. Added after `TelemetryDigest`, so that every other message keeps
    /// its encoding; a ground that predates it cannot decode it and drops it, logged.
    BaseLayers {
        /// At most [`MAX_ENGINE_IMAGES`](crate::MAX_ENGINE_IMAGES) images.
        images: Vec<ImageLayers>,
    },
}

/// The most layers one [`ImageLayers`] lists (the ground reads no more).
pub const MAX_IMAGE_LAYERS: usize = 128;

/// A base image onboard and its layers, in [`Message::BaseLayers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLayers {
    /// The catalogue name it is held under.
    pub name: String,
    /// Its image id, `sha256:<hex>`.
    pub id: String,
    /// Its layers' DiffIDs, bottom first; at most [`MAX_IMAGE_LAYERS`].
    pub layers: Vec<Digest>,
}

/// The longest name [`CancelOrder::by`] may carry; a longer one is cut by the ground and
/// refused by the agent.
pub const MAX_CANCEL_BY: usize = 256;

/// An order to cancel an execution, signed by the ground as a plan is (see
/// [`PlanSigner::sign_cancel`](crate::PlanSigner::sign_cancel)): holding the link key is not
/// enough to stop what runs onboard. It names no sequence number: cancelling twice is cancelling
/// once, so a replayed order changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOrder {
    /// The execution's id.
    pub execution: String,
    /// The system it runs on; another system ignores the order.
    pub system: String,
    /// Who asked, for the record (at most [`MAX_CANCEL_BY`] bytes).
    pub by: String,
    /// When the ground issued it, in milliseconds since the Unix epoch: the agent keeps an
    /// order whose plan has not come for [`PLAN_VALIDITY_MS`] after this, since any plan of the
    /// execution was issued before it and has expired by then.
    pub issued_ms: u64,
    /// The ground's ed25519 signature over every other field; empty when unsigned.
    pub signature: Vec<u8>,
}

/// The most base candidates a [`WantedObject`] names; the ground reads no more.
pub const MAX_WANT_BASES: usize = 4;

/// The largest object the ground sends as a patch (compressed or a delta): a larger one crosses
/// the link as itself. The flight applies a patch in memory (about three times the object at
/// most), so this bounds what an apply may allocate; both sides use it.
pub const MAX_PATCHED_OBJECT: u64 = 256 << 20;

/// An object a [`Message::Want`] asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WantedObject {
    /// The object wanted.
    pub digest: Digest,
    /// Objects the sender holds that the object may be made from (the content now at the path
    /// where it will land, i.e. its previous version, first), at most [`MAX_WANT_BASES`].
    pub bases: Vec<Digest>,
    /// Send the object itself: a patch for it did not apply or verify.
    pub whole: bool,
}

/// A wanted object sent as a patch (see [`Message::Patches`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchOffer {
    /// The object wanted: what the patch makes.
    pub target: Digest,
    /// The patch, an object of its own (`delta`'s self-describing format).
    pub patch: Digest,
    /// The object the patch is made against; `None` for the object compressed.
    pub base: Option<Digest>,
    /// The patch's size in bytes.
    pub size: u64,
}

/// How long a plan stays valid after the ground issued it, in milliseconds (a week): the
/// ground sets `expires_ms` this far after `issued_ms`, and the flight agent, having lost its
/// record of accepted plans, refuses every plan issued this long before the loss.
pub const PLAN_VALIDITY_MS: u64 = 7 * 24 * 3600 * 1000;

/// An execution compiled for the flight agent.
///
/// The signature covers every other field, so a plan is bound to its target: the system it is
/// for, when it was issued, when it expires, and its place in that system's sequence of plans
/// (which the agent never accepts twice; see [`Plan::check_binding`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The execution's id (a UUID).
    pub execution: String,
    /// The tenant the execution runs for: it names their volumes and prefixes their images.
    pub tenant: String,
    /// Tasks, run in order.
    pub tasks: Vec<PlanTask>,
    /// The system the plan is for (e.g. `em`); another system refuses it.
    pub system: String,
    /// The plan's number among the plans the ground issued for `system`, from 1; 0 when not
    /// yet sealed.
    pub sequence: u64,
    /// When the ground issued it, in milliseconds since the Unix epoch.
    pub issued_ms: u64,
    /// When it stops being valid, in milliseconds since the Unix epoch (onboard clock): a plan
    /// that arrives later is refused.
    pub expires_ms: u64,
    /// The system's element set as the ground holds it, for the agent's own propagation of
    /// its tasks' triggers (and the ground's prediction of them); `None` when no task has a
    /// trigger or the system has no orbit. (Absent from records written before triggers.)
    #[serde(default)]
    pub elements: Option<Elements>,
    /// The ground's ed25519 signature (see [`PlanSigner`](crate::PlanSigner)); empty when
    /// unsigned.
    pub signature: Vec<u8>,
}

/// One task of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanTask {
    /// The task's id in its operation.
    pub id: String,
    /// What to do with the rest of the plan when this task fails.
    pub on_failure: OnFailure,
    /// When the task may start: the agent waits for it, in contact or not (`docs/triggers.md`).
    /// (Absent from records written before triggers.)
    #[serde(default)]
    pub trigger: Option<Trigger>,
    /// What the task does.
    pub kind: TaskKind,
}

/// An element set (a two-line element set with its optional name line), as text: the agent
/// parses it with the same parser the ground used.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Elements {
    /// Line 0, the object's name, if any.
    pub name: Option<String>,
    /// Line 1.
    pub line1: String,
    /// Line 2.
    pub line2: String,
}

/// What happens after a task fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnFailure {
    /// Stop the execution: it fails.
    Stop,
    /// Run the next task; the execution still ends failed.
    Continue,
}

/// An image named by a tenant: `name` without any tenant prefix, and a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// The name, e.g. `hello` or a catalogue name such as `busybox`.
    pub name: String,
    /// The tag, e.g. `latest`.
    pub tag: String,
}

/// A port a merged pod lets its tenant's other merged pods reach (`pod.run`'s `ports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PodPort {
    /// The port the pod listens on, 1 to 65535.
    pub container: u16,
    /// Its protocol.
    pub protocol: PortProtocol,
}

/// The protocol of a [`PodPort`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PortProtocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
}

impl PortProtocol {
    /// `tcp` or `udp`, as iptables and Docker spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
        }
    }
}

/// A file to place in a volume by an uplink task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UplinkFile {
    /// Path relative to the volume root, `/`-separated, with no `.`, `..` or empty components.
    pub path: String,
    /// The content's digest: the object to fetch.
    pub digest: Digest,
    /// The content's size in bytes.
    pub size: u64,
    /// Unix permission bits (e.g. `0o755` for a binary).
    pub mode: u32,
}

/// What a task does. Paths are relative to the volume root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// Place files (already resolved by the ground) in a volume.
    Uplink {
        /// The tenant's volume.
        volume: String,
        /// Files to place.
        files: Vec<UplinkFile>,
    },
    /// Send files of a volume down; `sources` may hold shell wildcards.
    Downlink {
        /// The tenant's volume.
        volume: String,
        /// Paths or patterns (`*.json`, `out/**`), relative to the volume root.
        sources: Vec<String>,
    },
    /// List a folder of a volume (or every volume of the tenant when `volume` is `None`).
    FilesList {
        /// The tenant's volume, or all of them.
        volume: Option<String>,
        /// Folder relative to the volume root (`""` is the root).
        folder: String,
        /// How many levels down to list.
        depth: u32,
    },
    /// Build an image air-gapped from a Dockerfile in a volume.
    DockerBuild {
        /// The tenant's volume.
        volume: String,
        /// Path of the Dockerfile.
        dockerfile: String,
        /// Path of the build context folder.
        context: String,
        /// The image to create (tenant-prefixed onboard).
        image: ImageRef,
        /// Stop the build after this long.
        max_duration_ms: Option<u64>,
    },
    /// Load a `docker save` archive from a volume.
    DockerLoad {
        /// The tenant's volume.
        volume: String,
        /// Path of the archive.
        tarfile: String,
        /// The image the archive must hold (as it was named when saved).
        image: ImageRef,
    },
    /// Run a container with the volume at `/data`.
    PodRun {
        /// The pod's name, unique within the execution.
        pod_name: String,
        /// The image: the tenant's own or a catalogue image.
        image: ImageRef,
        /// Replaces the image's entrypoint.
        command: Option<Vec<String>>,
        /// Replaces the image's command.
        args: Option<Vec<String>>,
        /// Environment variables.
        env: Vec<(String, String)>,
        /// The tenant's volume, mounted at `/data`.
        volume: String,
        /// Stop the pod (SIGTERM, a grace, then SIGKILL) after this long.
        max_duration_ms: Option<u64>,
        /// Start no earlier than this, in milliseconds since the Unix epoch by the onboard
        /// clock (the agent waits for it, in contact or not); `None` or a time past: now.
        scheduled_ms: Option<u64>,
        /// The task ends once the pod started, and the pod runs on under its `max_duration`
        /// until it exits or a `PodStop` ends it (the ground sets it on a merged pod.run that
        /// another merged pod.run follows, so that they start together). `false`: the task
        /// waits for the pod to end.
        detached: bool,
        /// The node class to run on (`default`, `MPU`, `FPGA`, `GPU`, any case); it sets the
        /// pod's CPU and memory limits. `None`: `default`.
        node: Option<String>,
        /// The pod joins its tenant's internal network, where the tenant's other merged pods
        /// reach it as `<tenant>-<pod_name>` (a merged pod.run); `false`: no network at all.
        merged: bool,
        /// The ports of a merged pod its tenant's other merged pods may reach; no other port
        /// of it is reachable. Nothing for a pod that is not merged (it has no network).
        #[serde(default)]
        ports: Vec<PodPort>,
    },
    /// Delete files or folders (with everything under them) of a volume; the volume root deletes
    /// the volume itself. Paths are literal: no wildcards.
    FilesDelete {
        /// The tenant's volume.
        volume: String,
        /// What to delete.
        paths: Vec<String>,
    },
    /// List the tenant's own images onboard (built or loaded; not the catalogue).
    ImageList,
    /// Move (rename) a file or a folder within a volume, atomically. `destination` is the new
    /// path of `source` itself, not a folder to move it into; an existing destination is never
    /// replaced. Paths are literal: no wildcards.
    FilesMove {
        /// The tenant's volume.
        volume: String,
        /// What to move.
        source: String,
        /// Its new path.
        destination: String,
    },
    /// Delete one of the tenant's own images (built or loaded), by its name as the tenant
    /// writes it; the layers only it held go with it. Catalogue images and other tenants'
    /// images are refused.
    ImageDelete {
        /// The image, without the onboard tenant prefix.
        image: ImageRef,
    },
    /// Capture a picture with the fisheye camera into a volume, as a PNG (simulated onboard
    /// until a camera is wired to the agent).
    CameraCapture {
        /// The tenant's volume.
        volume: String,
        /// Path of the picture, ending in `.png`; a file there is replaced.
        path: String,
        /// Pixels a side, [`CAMERA_MIN_SIZE`] to [`CAMERA_MAX_SIZE`].
        size: u32,
    },
    /// Stop a running pod of the tenant by its name: SIGTERM, `grace_ms`, then SIGKILL. Its
    /// log is kept and its container removed; the task's outputs are its exit code and tail.
    PodStop {
        /// The pod's name.
        pod_name: String,
        /// Between SIGTERM and SIGKILL; `None`: the agent's default.
        grace_ms: Option<u64>,
    },
    /// The output of a pod of the tenant: written to `<volume>/.logs/<pod_name>.log` (so that
    /// a downlink can take it) and returned as the task's log tail. A running pod's output so
    /// far, else what its last run left.
    PodLogs {
        /// The pod's name.
        pod_name: String,
        /// The volume the pod mounts (where its log is kept).
        volume: String,
    },
}

/// The state of a task. Every task goes `Created → Scheduled → Running → Success | Failed`.
/// On the ground an execution on a system that needs an operator's approval waits in
/// `AwaitingApproval` before it is scheduled, and ends `Rejected` when refused. An execution
/// called off ends `Cancelled` (its tasks not finished end `Cancelled` too): at once on the
/// ground when it was never sent, else once the flight agent confirms a [`Message::Cancel`],
/// the ground showing it `Cancelling` meanwhile. The flight agent sends `Cancelled`, never
/// `AwaitingApproval`, `Rejected` or `Cancelling`; the later states come last so that the
/// encoding of the others stays as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskState {
    /// Recorded on the ground, not yet sent.
    Created,
    /// Sent to (or queued for) the system.
    Scheduled,
    /// Running onboard.
    Running,
    /// Finished well.
    Success,
    /// Finished badly; see its error.
    Failed,
    /// Recorded on the ground, waiting for an operator's approval before it is sent.
    AwaitingApproval,
    /// An operator refused it: never sent.
    Rejected,
    /// Called off: never sent, or stopped onboard.
    Cancelled,
    /// Recorded on the ground only: a cancel was sent to the system, which has not confirmed it.
    Cancelling,
}

/// The state of an execution; the same lifecycle as its tasks.
pub type ExecutionState = TaskState;

impl TaskState {
    /// The upper-case name shown by the API (`CREATED`, `SCHEDULED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Created => "CREATED",
            TaskState::Scheduled => "SCHEDULED",
            TaskState::Running => "RUNNING",
            TaskState::Success => "SUCCESS",
            TaskState::Failed => "FAILED",
            TaskState::AwaitingApproval => "AWAITING_APPROVAL",
            TaskState::Rejected => "REJECTED",
            TaskState::Cancelled => "CANCELLED",
            TaskState::Cancelling => "CANCELLING",
        }
    }

    /// Parses [`TaskState::as_str`]'s names.
    pub fn parse(s: &str) -> Option<TaskState> {
        Some(match s {
            "CREATED" => TaskState::Created,
            "SCHEDULED" => TaskState::Scheduled,
            "RUNNING" => TaskState::Running,
            "SUCCESS" => TaskState::Success,
            "FAILED" => TaskState::Failed,
            "AWAITING_APPROVAL" => TaskState::AwaitingApproval,
            "REJECTED" => TaskState::Rejected,
            "CANCELLED" => TaskState::Cancelled,
            "CANCELLING" => TaskState::Cancelling,
            _ => return None,
        })
    }

    /// Whether the state is final.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Failed | TaskState::Rejected | TaskState::Cancelled
        )
    }
}

/// Why a task failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    /// The code (its number and name come from [`ErrorCode`]).
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
    /// The last lines of the build or container log (at most 100).
    pub log_tail: Vec<String>,
}

/// What a finished task produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutputs {
    /// Files sent down (downlink), with their digests; the objects precede this event.
    pub files: Vec<FileRef>,
    /// A folder listing (files.list).
    pub listing: Vec<FileEntry>,
    /// The onboard image reference built or loaded.
    pub image: Option<String>,
    /// A one-line result.
    pub message: Option<String>,
    /// The container's exit code (pod.run).
    pub exit_code: Option<i64>,
    /// The last lines of the build or container log (at most 100).
    pub log_tail: Vec<String>,
    /// The tenant's images (docker.image.list).
    #[serde(default)]
    pub images: Vec<ImageEntry>,
    /// When and why the task's trigger fired (a task with a trigger). Boxed: most tasks have
    /// none, and outputs travel inside every task event.
    #[serde(default)]
    pub trigger: Option<Box<TriggerFired>>,
}

/// One of a tenant's images onboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEntry {
    /// The name as the tenant writes it (without the onboard tenant prefix).
    pub name: String,
    /// The tag.
    pub tag: String,
    /// The image id, `sha256:<hex>`.
    pub id: String,
    /// When it was created, milliseconds since the Unix epoch (0 when unknown).
    pub created_ms: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// A file with its content digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Path relative to the volume root.
    pub path: String,
    /// Its content's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// One entry of a volume listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the volume root.
    pub path: String,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// Whether this is a folder.
    pub is_dir: bool,
    /// Last modification, milliseconds since the Unix epoch.
    pub modified_ms: u64,
}

/// A message that could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeMessageError {
    /// Longer than [`MAX_MESSAGE`].
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE}-byte limit")]
    TooLarge(usize),
    /// Not a valid encoding.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A valid encoding of a message that breaks one of its bounds (which, and how).
    #[error("invalid message: {0}")]
    Invalid(String),
}

/// Encodes a message with postcard.
pub fn encode_message(message: &Message) -> Vec<u8> {
    // Every type here is plain data that postcard can always serialise.
    postcard::to_allocvec(message).unwrap_or_default()
}

/// Decodes a message, bounding its size first, then checking the bounds of a
/// [`Message::TelemetryDigest`] ([`TelemetryDigest::check`]). Never panics.
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeMessageError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(DecodeMessageError::TooLarge(bytes.len()));
    }
    let message: Message =
        postcard::from_bytes(bytes).map_err(|e| DecodeMessageError::Malformed(e.to_string()))?;
    if let Message::TelemetryDigest(d) = &message {
        d.check()
            .map_err(|e| DecodeMessageError::Invalid(format!("telemetry digest: {e}")))?;
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = Message::Plan(Plan {
            execution: "e1".into(),
            tenant: "alice".into(),
            tasks: vec![PlanTask {
                id: "run".into(),
                on_failure: OnFailure::Stop,
                trigger: None,
                kind: TaskKind::PodRun {
                    pod_name: "p".into(),
                    image: ImageRef {
                        name: "hello".into(),
                        tag: "v1".into(),
                    },
                    command: None,
                    args: Some(vec!["--x".into()]),
                    env: vec![("A".into(), "b".into())],
                    volume: "alice-pvc".into(),
                    max_duration_ms: Some(60_000),
                    scheduled_ms: Some(1_800_000_100_000),
                    detached: true,
                    node: Some("GPU".into()),
                    merged: true,
                    ports: vec![PodPort {
                        container: 8080,
                        protocol: PortProtocol::Udp,
                    }],
                },
            }],
            system: "em".into(),
            sequence: 3,
            elements: None,
            issued_ms: 1_800_000_000_000,
            expires_ms: 1_800_086_400_000,
            signature: vec![7; 64],
        });
        let bytes = encode_message(&m);
        assert_eq!(decode_message(&bytes).unwrap(), m);
    }

    #[test]
    fn base_layers_round_trip_as_the_last_variant() {
        let m = Message::BaseLayers {
            images: vec![ImageLayers {
                name: "gcr.io/distroless/static-debian12".into(),
                id: format!("sha256:{}", Digest::of(b"config")),
                layers: vec![Digest::of(b"layer 1"), Digest::of(b"layer 2")],
            }],
        };
        let bytes = encode_message(&m);
        assert_eq!(decode_message(&bytes).unwrap(), m);
        // Appended: every earlier message keeps its variant index.
        let last = encode_message(&Message::TelemetryDigest(crate::TelemetryDigest {
            bucket_ms: 60_000,
            series: vec![],
        }));
        assert_eq!(bytes[0], last[0] + 1);
    }

    #[test]
    fn wants_and_patches_round_trip() {
        let (a, b) = (Digest::of(b"new"), Digest::of(b"old"));
        for m in [
            Message::Want {
                objects: vec![WantedObject {
                    digest: a,
                    bases: vec![b],
                    whole: false,
                }],
            },
            Message::Patches {
                patches: vec![PatchOffer {
                    target: a,
                    patch: Digest::of(b"patch"),
                    base: Some(b),
                    size: 123,
                }],
            },
        ] {
            assert_eq!(decode_message(&encode_message(&m)).unwrap(), m);
        }
    }

    #[test]
    fn a_cancel_round_trips_and_the_older_messages_keep_their_encoding() {
        let m = Message::Cancel(CancelOrder {
            execution: "e1".into(),
            system: "em".into(),
            by: "alice".into(),
            issued_ms: 1_800_000_000_000,
            signature: vec![9; 64],
        });
        let bytes = encode_message(&m);
        assert_eq!(decode_message(&bytes).unwrap(), m);
        // An order for a UUID crosses the link in one packet of the smallest datagram.
        let uuid = Message::Cancel(CancelOrder {
            execution: "6f1c2b9e-8a41-4d7f-9c3e-2b5d8e7a1f00".into(),
            system: "cg2fm".into(),
            by: "alice".into(),
            issued_ms: 1_800_000_000_000,
            signature: vec![9; 64],
        });
        let one = encode_message(&uuid).len();
        assert!(
            one + crate::PACKET_OVERHEAD + crate::DATA_CHUNK_OVERHEAD <= crate::MIN_DATAGRAM,
            "{one} bytes"
        );
        // Postcard numbers variants in order: the cancel came last (12), so an
        // InventoryRequest still starts with 10, as before it.
        assert_eq!(bytes[0], 12);
        let request = Message::InventoryRequest {
            objects: true,
            volumes: Vec::new(),
        };
        assert_eq!(encode_message(&request)[0], 10);
        // The states an agent sends keep their numbers too.
        let event = Message::ExecutionEvent {
            execution: "e".into(),
            state: TaskState::Failed,
            at_ms: 0,
        };
        assert_eq!(encode_message(&event)[3], 4);
        // A cut order is an error, never a panic.
        for len in 0..bytes.len() {
            assert!(decode_message(&bytes[..len]).is_err(), "{len}");
        }
    }

    #[test]
    fn an_element_set_order_comes_after_the_cancel_and_decodes_whole_or_not_at_all() {
        let m = Message::Elements(crate::ElementsOrder {
            system: "em".into(),
            elements: Elements {
                name: Some("ISS (ZARYA)".into()),
                line1: "1 25544U 98067A   24075.50000000  .00016717  00000+0  30275-3 0  9994"
                    .into(),
                line2: "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.50377579445214"
                    .into(),
            },
            by: "ops".into(),
            issued_ms: 1_800_000_000_000,
            signature: vec![9; 64],
        });
        let bytes = encode_message(&m);
        assert_eq!(bytes[0], 13);
        assert_eq!(decode_message(&bytes).unwrap(), m);
        for len in 0..bytes.len() {
            assert!(decode_message(&bytes[..len]).is_err(), "{len}");
        }
    }

    fn digest(series: usize, buckets: usize) -> crate::TelemetryDigest {
        crate::TelemetryDigest {
            bucket_ms: 60_000,
            series: (0..series)
                .map(|i| crate::DigestSeries {
                    data_type: format!("temperature_sensor{i}"),
                    buckets: (0..buckets as u64)
                        .map(|b| crate::DigestBucket {
                            start_ms: 1_796_256_000_000 + b * 60_000,
                            count: 6,
                            min: -35_250,
                            mean: 12_000,
                            max: 55_000,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    fn refusal(d: crate::TelemetryDigest) -> String {
        match decode_message(&encode_message(&Message::TelemetryDigest(d))) {
            Err(DecodeMessageError::Invalid(why)) => why,
            other => panic!("not refused as invalid: {other:?}"),
        }
    }

    #[test]
    fn a_telemetry_digest_comes_after_the_elements_and_its_bounds_are_checked() {
        let full = digest(crate::MAX_DIGEST_SERIES, crate::MAX_DIGEST_BUCKETS);
        let m = Message::TelemetryDigest(full.clone());
        let bytes = encode_message(&m);
        // Postcard numbers variants in order: the digest came last (14).
        assert_eq!(bytes[0], 14);
        assert_eq!(decode_message(&bytes).unwrap(), m);
        // Small on the link: a full digest is about 16 bytes a bucket.
        assert!(
            bytes.len() < 20 * full.bucket_count(),
            "{} bytes",
            bytes.len()
        );
        for len in (0..bytes.len()).step_by(97) {
            assert!(decode_message(&bytes[..len]).is_err(), "{len}");
        }

        let why = refusal(digest(crate::MAX_DIGEST_SERIES + 1, 1));
        assert_eq!(why, "telemetry digest: 17 series; at most 16");
        let why = refusal(digest(1, crate::MAX_DIGEST_BUCKETS + 1));
        assert_eq!(
            why,
            "telemetry digest: series 'temperature_sensor0' has 241 buckets; at most 240"
        );
        let mut d = digest(1, 1);
        d.series[0].data_type = "x".repeat(crate::MAX_DATA_TYPE + 1);
        assert!(refusal(d).contains("is longer than 40 bytes"));
        let mut d = digest(1, 1);
        d.series[0].data_type = "Temp C".into();
        assert!(refusal(d).contains("a character other than"));
        let mut d = digest(2, 1);
        d.series[1].data_type = d.series[0].data_type.clone();
        assert!(refusal(d).contains("comes twice"));
        let mut d = digest(1, 1);
        d.bucket_ms = 0;
        assert!(refusal(d).contains("bucket width 0 ms is out of range"));
        let mut d = digest(1, 3);
        d.series[0].buckets[2].start_ms = d.series[0].buckets[1].start_ms;
        assert!(refusal(d).contains("is not after the bucket before it"));
        let mut d = digest(1, 1);
        d.series[0].buckets[0].start_ms += 1;
        assert!(refusal(d).contains("multiple of the bucket width"));
        let mut d = digest(1, 1);
        d.series[0].buckets[0].count = 0;
        assert!(refusal(d).contains("holds no sample"));
        let mut d = digest(1, 1);
        d.series[0].buckets[0].mean = 60_000;
        assert!(refusal(d).contains("min <= mean <= max"));
        // An empty digest is valid (and useless).
        assert!(digest(0, 0).check().is_ok());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = decode_message(&junk);
        }
        assert!(matches!(
            decode_message(&vec![0; MAX_MESSAGE + 1]),
            Err(DecodeMessageError::TooLarge(_))
        ));
    }
}
