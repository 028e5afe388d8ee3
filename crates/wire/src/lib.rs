//! The vocabulary shared by ground and flight: packets on the link and the messages they carry.
//!
//! `wire` knows how bytes look on the link and what they mean; it never does I/O, reads no clock
//! and spawns nothing. Three layers:
//!
//! - packets ([`Sealer`], [`Opener`]): one datagram, sealed with ChaCha20-Poly1305 under a
//!   subkey of the satellite's [`LinkKey`] for the sender's run (its epoch, named in the long
//!   header and found by trial for the short one),
//!   numbered, and checked against a [`ReplayWindow`] (the tag authenticates every byte: there
//!   is no separate checksum). Opening never panics and bounds every length.
//! - chunks ([`Chunk`]): what a packet body holds — transfer data, offers, acknowledgement ranges,
//!   status reports, the hello handshake — in a bounded, hand-specified varint layout.
//! - [`Message`]: what ground and flight say to each other (plans, task events, requests for
//!   objects, a [`TelemetryDigest`] of the onboard history), encoded with postcard and carried as
//!   message transfers of a `sync` session.
//!
//! It also holds the plain data both sides must agree on: [`Digest`], the onboard base-image
//! [`catalogue`] (the default file of [`SystemDescription`]s: systems as data), the error codes of [`ErrorCode`] (compatible with Clustergate-2's), and the
//! validated [`names`] of tenants, volumes, pods, images and paths.

mod catalogue_data;
mod chunk;
mod digest;
mod elements;
mod errors;
mod inventory;
mod message;
pub mod names;
mod packet;
mod plan_sig;
mod systems;
mod telemetry;
mod trigger;

pub use catalogue_data::{BaseImage, catalogue, normalize_image_ref, of_description};
pub use chunk::{
    AckRanges, Chunk, ChunkError, DATA_CHUNK_OVERHEAD, MAX_LIST, MAX_RANGES, MAX_REASON, Offer,
    Status, StatusState, TransferKind, chunk_len, data_chunk_len, decode_chunks, encode_chunk,
    encode_last_data,
};
pub use digest::{Digest, DigestParseError};
pub use elements::{ElementsOrder, MAX_ELEMENTS_BY};
pub use errors::ErrorCode;
pub use inventory::{
    FileDigest, InventorySummary, MAX_INVENTORY_OBJECTS, MAX_INVENTORY_VOLUMES, VolumeRef,
    VolumeSummary, objects_digest, volume_digest,
};
pub use message::{
    CAMERA_MAX_SIZE, CAMERA_MIN_SIZE, CancelOrder, DecodeMessageError, Elements, ExecutionState,
    FileEntry, FileRef, ImageEntry, ImageLayers, ImageRef, MAX_CANCEL_BY, MAX_HELD_PLANS,
    MAX_IMAGE_LAYERS, MAX_MESSAGE, MAX_PATCHED_OBJECT, MAX_WANT_BASES, Message, OnFailure,
    PLAN_VALIDITY_MS, PatchOffer, Plan, PlanTask, PodPort, PortProtocol, TaskError, TaskKind,
    TaskOutputs, TaskState, UplinkFile, WantedObject, decode_message, encode_message,
};
pub use names::{
    ExecutionId, FileMove, ImageName, ImageTag, MoveError, MoveField, NameError, NamespaceName,
    NamespacePath, OperationName, PodName, SystemName, TaskId, TenantImage, TenantName, VolumeName,
    VolumePath,
};
pub use packet::{
    Direction, EVICTED_EPOCHS, EpochKey, LinkKey, MAX_BODY, MAX_CANDIDATES, MAX_PACKET,
    MAX_PACKET_NUMBER, MIN_DATAGRAM, Opened, Opener, PACKET_HEADER, PACKET_OVERHEAD, PacketError,
    PacketHeader, RETIRED_EPOCHS, ReplayMemory, ReplayWindow, SHORT_PACKET_HEADER,
    SHORT_PACKET_OVERHEAD, SHORT_PN_REACH, Sealer,
};
pub use plan_sig::{PlanBindingError, PlanSignatureError, PlanSigner, PlanVerifier};
pub use systems::{
    Builder, CatalogueEntry, CatalogueError, CatalogueSource, DEFAULT_CATALOGUE_FILE, EngineImage,
    EngineReport, MAX_ENGINE_IMAGES, SystemDescription, check_catalogue, default_catalogue,
    is_platform, parse_catalogue, same_platform,
};
pub use telemetry::{
    DigestBucket, DigestError, DigestSeries, MAX_BUCKET_MS, MAX_DATA_TYPE, MAX_DIGEST_BUCKETS,
    MAX_DIGEST_SERIES, MIN_BUCKET_MS, TelemetryDigest, check_data_type,
};
pub use trigger::{
    Area, Condition, Deadline, GeoPoint, Light, Location, MAX_DECODE_DEPTH, MAX_POLYGON_VERTICES,
    MAX_TRIGGER_CONDITIONS, MAX_TRIGGER_DEPTH, MAX_TRIGGER_WAIT_MS, Measured, Nadir, TelemetryTest,
    Trigger, TriggerFired, polygon_fault, rfc3339,
};

/// The catalogue module: base images preloaded onboard.
pub mod catalogue {
    pub use crate::catalogue_data::{BaseImage, catalogue, normalize_image_ref, of_description};
}
