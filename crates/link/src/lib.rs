//! UDP endpoints and the link emulator.
//!
//! `link` owns every socket. [`spawn_endpoint`] drives a `sync::Channel` over a UDP socket and
//! hands the application typed [`wire::Message`]s; [`run_emulator`] sits between ground and
//! flight and forwards datagrams with the rate, delay and loss of a space link. Neither knows
//! what a message means.

pub mod bench;
mod emulator;
mod endpoint;
mod model;
pub mod sim;

pub use emulator::{EmulatorConfig, EmulatorStats, run_emulator};
pub use endpoint::{EndpointConfig, MessageReceiver, MessageSender, SendError, spawn_endpoint};
pub use model::{Deliveries, LinkModel, LinkModelConfig, Loss, ModelStats};
