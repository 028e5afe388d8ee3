//! The onboard agent of orbitdock.
//!
//! `flight` keeps tenant volumes, receives content-addressed objects and plans from the ground
//! over the link, and runs each plan's tasks against the local Docker Engine: uplinks into a
//! volume, downlinks out of it, air-gapped builds from the onboard catalogue, loads of
//! `docker save` archives, and pods with the volume at `/data`. It reports every task's state,
//! outputs and log tail back as [`wire::Message`]s.
//!
//! What it never does: know a tenant's password, the dashboard or the ground's database (a plan
//! names a tenant, and that name is all the agent trusts); pull an image; give a build a network,
//! or a pod any but its tenant's internal one (its merged pods and the onboard [`telemetry`]
//! service, nothing else). Tenants are kept apart by name-prefixed images (`tenants/<tenant>/<name>:<tag>`),
//! their own volume folders and uids, and paths that cannot leave a volume.
//!
//! Entry points:
//!
//! - [`run`]: the agent behind the link, until its task is aborted.
//! - [`catalogue_status`]: the onboard catalogue with the ids of the images present.
//! - [`Agent`]: the agent without the link, to run single tasks ([`Agent::run_task`]) or feed it
//!   the link's events ([`Agent::handle_event`]); used by tests and tools.
//!
//! `flight` is the only crate that knows bollard: every Docker Engine call goes through the
//! [`runtime::Runtime`] trait of its container-runtime adapter (with a recording fake for its own
//! tests), bounded in time. [`runtime`] is public for developer and EM tooling only (the
//! `standins` crate builds the catalogue's stand-in base images through it); the agent never
//! builds stand-ins. Every queue has a stated bound: [`run`]'s outbox holds 64 messages or
//! objects, the plan queue 256 plans, a log tail 100 lines, a listing 10,000 entries.

mod agent;
mod cancels;
mod catalogue;
mod clock;
mod config;
mod disk;
mod error;
mod fsutil;
mod inventory;
mod layer_source;
mod logbook;
mod names;
mod patches;
mod plans;
mod quota;
pub mod runtime;
mod schedule;
mod store;
mod tasks;
pub mod telemetry;
mod volumes;

pub use agent::{Agent, Outgoing, run};
pub use catalogue::catalogue_status;
pub use clock::{ClockConfig, MAX_CLOCK_SCALE, MissionClock};
pub use config::{AgentConfig, FlightConfig};
pub use disk::DiskLimits;
pub use error::{Error, ErrorKind};
pub use quota::{Quota, Quotas};
pub use tasks::TaskResult;
