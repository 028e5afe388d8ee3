//! Transfer state machines, sans-IO.
//!
//! `sync` moves messages and content-addressed objects between ground and flight over a lossy,
//! intermittent datagram link. It never touches a socket or a file, reads no clock and spawns
//! nothing: a driver (in `link`) feeds a [`Session`] datagrams and the current time, and polls it
//! for datagrams to send, [`Event`]s and its next deadline, in the manner of quinn-proto. Storage
//! is the [`Store`] trait, injected (a file store in `link`, [`MemStore`] for simulations).
//!
//! The model:
//!
//! - Everything is a *transfer*: a message (delivered in order, redelivered after a restart until
//!   the application calls [`Session::message_done`]) or an object (committed to the store only
//!   once its sha256 verifies). A transfer is cut into packets of a fixed payload size.
//! - Every packet carries a packet number, never reused (reserved ahead on disk). The receiver
//!   acknowledges packet numbers in ranges together with a *settled* mark: every packet number
//!   up to it that is missing is lost, because the receiver waited out the reorder window. The
//!   sender resends exactly those, so a packet that merely arrives late is never sent twice.
//! - The receiver persists what it received (data first, then the ranges); the sender persists
//!   its outbox and a high-water mark of what it ever sent. After loss of signal or a restart of
//!   either side, a `Hello` exchange and per-transfer `Status` reports (answered only once
//!   settled) tell the sender exactly what is missing: no persisted payload byte is sent again.
//! - Sending is paced at the pass's scheduled rate (no loss-based congestion control: a
//!   scheduled radio link is not a shared network), or, where none is configured, to an
//!   estimate of the rate the link delivers (in the spirit of BBR), keeping about half a second
//!   of data queued in the link at most (two datagrams' time on the air where that is longer);
//!   messages go before objects, objects by priority, then age.
//!
//! Methods follow quinn's order: `handle_*` feed inputs, `poll_*` drain outputs; call
//! [`Session::poll_transmit`] until `None` after every input, and wake at
//! [`Session::poll_timeout`].

mod ranges;
mod session;
mod store;

pub use ranges::RangeSet;
pub use session::{
    Event, INITIAL_PACE, OFFERLESS_WINDOW, OutgoingTransfer, Session, SessionConfig, SessionStats,
    packet_count, payload_size,
};
pub use store::{Commit, Counters, MemStore, OutboxEntry, Persisted, SpoolEntry, Store};
