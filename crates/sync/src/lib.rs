//! Transfer state machines, sans-IO.
//!
//! `sync` turns messages into datagrams and back. It never touches a socket, reads no clock and
//! spawns nothing: a driver (in `link`) feeds it datagrams and the current time, and polls it for
//! datagrams to send, delivered messages and its next deadline, in the manner of quinn-proto.
//!
//! [`Channel`] is a reliable, ordered message stream between two incarnations of two peers:
//! messages are split into chunks that fit a datagram, sent within a window, acknowledged
//! cumulatively and selectively, and retransmitted on timeout. Each side names itself by an
//! *incarnation* id drawn at start; when a peer restarts, the stream towards it starts over and
//! every message it had not fully acknowledged is sent again from the beginning.
//!
//! Methods follow quinn's order: `handle_*` feed inputs, `poll_*` drain outputs; call
//! [`Channel::poll_transmit`] until `None` after every input, and wake at
//! [`Channel::poll_timeout`].

mod channel;
mod ranges;
mod session;
mod store;

pub use channel::{Channel, ChannelConfig, ChannelStats};
pub use ranges::RangeSet;
pub use session::{Event, Session, SessionConfig, SessionStats, packet_count};
pub use store::{Commit, Counters, MemStore, OutboxEntry, Persisted, SpoolEntry, Store};
