//! UDP endpoints and the link emulator.
//!
//! `link` owns every socket and the session's files. [`spawn_endpoint`] drives a
//! `sync::Session` over a UDP socket and a [`FileStore`], taking message bytes and objects from
//! the application and handing it [`LinkEvent`]s; [`run_emulator`] sits between ground and flight
//! and forwards datagrams through the [`LinkModel`] (rate, delay, loss, contact windows). [`sim`]
//! and [`bench`] run the same sessions and model in simulated time.
//!
//! None of it knows what a message means: a message is opaque bytes with a sequence number, and
//! the application encodes and decodes it (ground and flight use `wire::Message`) and
//! acknowledges it once handled ([`MessageSender::done`]); until then it is delivered again
//! after a restart. Storage I/O
//! (fsyncs, renames, hashing an object on commit) never runs on an async worker thread: the
//! endpoint's session runs in steps on tokio's blocking pool (see `endpoint.rs`).

pub mod bench;
mod emulator;
mod endpoint;
mod model;
mod settings;
pub mod sim;
mod store;

pub use cas::ObjectLayout;
pub use emulator::{EmulatorConfig, EmulatorStats, run_emulator};
pub use endpoint::{
    Contact, EndpointConfig, LinkEvent, LinkStats, MESSAGE_ATTEMPTS, MESSAGE_RETRY_AFTER,
    MessageReceiver, MessageSender, SendError, spawn_endpoint,
};
pub use model::{Deliveries, LinkModel, LinkModelConfig, Loss, ModelStats};
pub use settings::{Admission, DEFAULT_MAX_INCOMING, DEFAULT_MAX_OBJECT, LinkSettings};
pub use store::FileStore;

/// Whether a link endpoint's UDP address is free now: bound and released at once (a process
/// that starts a moment later can still lose a race for it).
pub fn udp_address_free(addr: std::net::SocketAddr) -> std::io::Result<()> {
    std::net::UdpSocket::bind(addr).map(drop)
}

/// A UDP address on 127.0.0.1 free now (the system's choice, bound and released at once; the
/// same race as [`udp_address_free`]).
pub fn free_udp_address() -> std::io::Result<std::net::SocketAddr> {
    std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()
}
