use std::net::SocketAddr;
use std::path::PathBuf;

use crate::disk::DiskLimits;
use crate::quota::Quotas;

/// How the flight agent runs: its name, its directories, and its side of the link.
#[derive(Debug, Clone)]
pub struct FlightConfig {
    /// The system the agent runs as (e.g. `em`); sent in every `Hello`.
    pub system: String,
    /// Objects (`objects/sha256/`), the link session (`link/`), persisted plans, the tenant id
    /// map.
    pub state_dir: PathBuf,
    /// Tenant volumes: `<volumes_dir>/<tenant>/<volume>/` is what pods see at `/data`.
    pub volumes_dir: PathBuf,
    /// The local UDP address of the link endpoint.
    pub bind: SocketAddr,
    /// The link emulator's flight-side UDP address.
    pub link: SocketAddr,
    /// The satellite's link key, shared with the ground.
    pub key: wire::LinkKey,
    /// The rate to pace the downlink at, in bit/s (`None`: unpaced).
    pub rate_bits_per_sec: Option<u64>,
    /// When the link is up (the Engineering Model: [`link::Contact::Always`]).
    pub contact: link::Contact,
    /// The ground's public plan key: only plans it signed are run.
    pub plan_verifier: wire::PlanVerifier,
    /// The builder this system's engine builds with (the systems file's `builder`; classic
    /// unless it says otherwise): Dockerfiles are judged as it reads them, and every `Hello`
    /// reports it.
    pub builder: wire::Builder,
    /// The base images this system carries (the systems file's `catalogue`); `None`: the
    /// default catalogue for this machine's platform. Builds and pods are judged against it.
    pub catalogue: Option<Vec<wire::BaseImage>>,
    /// What the agent may copy and keep on its disks, and the reserve for its own state.
    pub limits: DiskLimits,
    /// What each tenant may use (the limits file's `quotas`).
    pub quotas: Quotas,
    /// The system's link settings (the systems file's).
    pub link_settings: link::LinkSettings,
    /// The mission clock triggers and `scheduled_time` are judged by: the host's, or a
    /// simulated one (`--clock-start`, `--clock-scale`).
    pub clock: crate::ClockConfig,
    /// The onboard telemetry service's address and first element set.
    pub telemetry: crate::telemetry::TelemetryConfig,
}

/// The directories an [`Agent`](crate::Agent) works in, and whose plans it accepts.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The system the agent runs as (e.g. `em`): a plan for another system is refused.
    pub system: String,
    /// Objects, persisted plans, the tenant id map.
    pub state_dir: PathBuf,
    /// Tenant volumes.
    pub volumes_dir: PathBuf,
    /// The ground's public plan key; plans that do not verify are refused. `None` accepts
    /// unsigned plans (only for driving the agent without a ground, as tests do).
    pub plan_verifier: Option<wire::PlanVerifier>,
    /// The builder the engine builds with (see [`FlightConfig::builder`]).
    pub builder: wire::Builder,
    /// The declared catalogue (see [`FlightConfig::catalogue`]).
    pub catalogue: Option<Vec<wire::BaseImage>>,
    /// What the agent may copy and keep on its disks, and the reserve for its own state.
    pub limits: DiskLimits,
    /// What each tenant may use (the limits file's `quotas`).
    pub quotas: Quotas,
    /// The mission clock (see [`FlightConfig::clock`]).
    pub clock: crate::ClockConfig,
}
