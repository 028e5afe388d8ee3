//! The transfer session: resumable, paced, authenticated transfer of messages and objects over a
//! datagram link. See the crate documentation for the model; the comments here record why.
//!
//! This module owns the session's types, its state and limits, its getters and the outputs that
//! span every concern ([`Session::poll_event`], [`Session::poll_timeout`], the timer table).
//! `impl Session` continues in one module per concern:
//!
//! - `send`: application commands, the outbox, building packets (`poll_transmit`), probes, and
//!   the receiver's word about our transfers (acknowledgements, statuses);
//! - `receive`: incoming datagrams, spools, commits, the inbox and message delivery,
//!   acknowledgements to send and the settled mark;
//! - `pacing`: whether the link is up, its rate (configured, or the delivery-rate estimate of
//!   `estimate`), the token bucket, the data in flight (`flight`, which keeps its totals as it
//!   changes), the probe timeout;
//! - `handshake`: `Hello`s and status answers, forgetting a peer that restarted, the stream
//!   marks that let a side with lost or restored counters resume, proving the peer's candidate
//!   epochs, and which header form to seal in;
//! - `persist`: opening a session from its store, and persisting spools and the opener's memory
//!   of the peer's epochs;
//! - `control`: the queue of control chunks, counting the refusals and statuses in it.

mod control;
mod estimate;
mod flight;
mod handshake;
mod pacing;
mod persist;
mod receive;
mod send;

pub use pacing::INITIAL_PACE;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use wire::{Digest, Direction, LinkKey, Offer, Opener, Sealer};

use crate::ranges::RangeSet;
use crate::store::{Counters, OutboxEntry, Store};

/// How a [`Session`] behaves. No `Default`: each driver states its values.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The satellite's link key.
    pub key: LinkKey,
    /// The direction of the packets this side sends (ground: `Up`, flight: `Down`).
    pub sends: Direction,
    /// Drawn at random at every start; never 0. It is also the epoch of the packets this run
    /// seals: their subkey is derived from `key` and it, so a run never reuses a nonce of
    /// another, whatever the store held.
    pub incarnation: u64,
    /// The largest datagram this side sends (the system's `datagram_bytes`, up to the radio's
    /// frame size): between `wire::MIN_DATAGRAM` and `wire::MAX_PACKET` (clamped). The payload of
    /// a data packet follows from it ([`payload_size`]), so both sides must agree on it: each
    /// says its own in its `Hello`, and when they differ both use the smaller
    /// ([`Event::DatagramMismatch`]).
    pub datagram_bytes: usize,
    /// The longest a datagram may be overtaken by a later one. A packet is judged lost only this
    /// long after a later one arrived, so nothing that merely arrives late is sent twice.
    pub reorder_window: Duration,
    /// Acknowledge after this many packets that ask for it...
    pub ack_every: u32,
    /// ...or this long after the first of them.
    pub ack_delay: Duration,
    /// Persist a spool after this many new bytes...
    pub persist_bytes: u64,
    /// ...or this long after its first unpersisted byte.
    pub persist_interval: Duration,
    /// A spool (an incoming transfer) that made no progress for this long is dropped and its
    /// space freed: its sender is gone, or gave up on it. Should it come back, the transfer
    /// starts again from nothing. Time counts while sessions on the store run
    /// ([`crate::Counters::running`]): a wall clock that jumps, or a long power-off, expires
    /// nothing.
    pub spool_expiry: Duration,
}

/// What the session tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message arrived whole; messages come in the order they were sent. Call
    /// [`Session::message_done`] once it is handled: until then it is redelivered after a restart.
    Message {
        /// Its sequence number.
        seq: u64,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// An object arrived, verified, and is committed to the store.
    ObjectReceived {
        /// Its digest.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// The peer committed an object this side sent.
    ObjectDelivered {
        /// Its digest.
        digest: Digest,
    },
    /// An outgoing object could not be read from the store and was dropped.
    ObjectFailed {
        /// Its digest.
        digest: Digest,
        /// Why.
        error: String,
    },
    /// The peer refused an object this side offered (it has no room for it): it was dropped
    /// from the outbox.
    ObjectRefused {
        /// Its digest.
        digest: Digest,
        /// The peer's reason.
        reason: String,
    },
    /// This side refused an object the peer offered (the store did not admit it); the peer
    /// was told why.
    ObjectDeclined {
        /// Its digest.
        digest: Digest,
        /// Its declared size.
        size: u64,
        /// Why.
        reason: String,
    },
    /// The peer's `Hello` says it sends datagrams of another size than this side's
    /// `datagram_bytes` (the two ends were configured differently). Both use the smaller from
    /// then on, and transfers in progress start again in packets of it (data cut to another
    /// size cannot be placed): a misconfiguration to fix, told once a run for each size the
    /// peer says.
    DatagramMismatch {
        /// This side's configured size.
        ours: usize,
        /// The peer's.
        peers: usize,
        /// The size both use now.
        using: usize,
    },
}

/// An outgoing transfer as the application may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingTransfer {
    /// The transfer id.
    pub transfer: u64,
    /// The digest of its bytes.
    pub digest: Digest,
    /// Whether it is a message (else an object).
    pub message: bool,
    /// Its size.
    pub size: u64,
    /// Bytes not yet known to be received.
    pub remaining: u64,
    /// Its priority (0 first).
    pub priority: u8,
}

/// Counters, for benchmarks, tests and telemetry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Packets sent.
    pub packets_sent: u64,
    /// Bytes of every packet sent.
    pub bytes_sent: u64,
    /// Payload bytes sent for the first time.
    pub payload_sent: u64,
    /// Payload bytes sent again after a loss.
    pub payload_resent: u64,
    /// Payload bytes of chunks this side may or may not have sent before it restarted (past the
    /// last chunk known sent, below the mark it had saved, which is reserved
    /// [`HWM_RESERVATION`] chunks ahead so that not every chunk costs a write), sent when the
    /// receiver said it lacks them: neither counted as sent for the first time nor as sent again.
    pub payload_unsure: u64,
    /// Payload bytes sent again while nothing else waited at a configured rate: spare copies of
    /// packets still in flight, in time the link would have been idle (see
    /// [`Session::poll_transmit`]).
    pub payload_spare: u64,
    /// Bytes of handshake chunks (hello, hello-ack, status requests and statuses) sent.
    pub handshake_bytes: u64,
    /// Packets received and accepted.
    pub packets_received: u64,
    /// Payload bytes received for the first time.
    pub payload_received: u64,
    /// Data chunks received again.
    pub duplicates: u64,
    /// Payload bytes of the data chunks received again.
    pub payload_duplicate: u64,
    /// Refused: longer than the maximum.
    pub rejected_oversized: u64,
    /// Refused: shorter than a header.
    pub rejected_truncated: u64,
    /// Refused: unknown version or direction.
    pub rejected_unknown: u64,
    /// Refused: failed authentication (corrupted on the line, or forged).
    pub rejected_forged: u64,
    /// Refused: packet number seen before.
    pub rejected_replayed: u64,
    /// Authenticated but undecodable bodies (a peer bug).
    pub malformed: u64,
    /// Objects committed.
    pub objects_committed: u64,
    /// Messages delivered.
    pub messages_delivered: u64,
    /// Complete transfers whose digest did not match.
    pub digest_mismatches: u64,
    /// Times the peer was seen to restart.
    pub peer_restarts: u64,
    /// Packets of a candidate epoch of the peer (a restarted peer's first packets, or a replay
    /// of an old run): only their handshake was read.
    pub candidate_packets: u64,
    /// Candidate epochs that proved themselves live and became the peer's current epoch.
    pub peer_epochs_proven: u64,
    /// Storage failures.
    pub store_errors: u64,
    /// Object offers of the peer this side refused (no room).
    pub offers_refused: u64,
    /// Spools dropped after making no progress for the `spool_expiry`.
    pub spools_expired: u64,
    /// Data chunks dropped because their transfer's offer had not come and they lay past the
    /// first [`OFFERLESS_WINDOW`] packets (the sender offers again and sends them again).
    pub data_before_offer: u64,
}

/// A resumable, paced, authenticated transfer session with one peer. See the crate documentation.
pub struct Session {
    config: SessionConfig,
    /// The datagram size in use: the configured one, or the peer's when smaller.
    datagram: usize,
    /// The peer's size last told to the application as a mismatch (once a run for each).
    mismatch_told: Option<usize>,
    /// Payload bytes per data packet: [`payload_size`] of the datagram size in use.
    packet_size: usize,
    /// The most body bytes a packet carries: the datagram size in use less a long packet's
    /// overhead.
    max_body: usize,
    store: Box<dyn Store>,
    sealer: Sealer,
    opener: Opener,
    counters: Counters,
    next_pn: u64,
    /// The first packet number of this run.
    run_first_pn: u64,
    /// Whether the peer accepts this run's packets: it acknowledged one, or this run answered
    /// a `Hello` of the peer's live run (the answer proves this run's epoch; data goes with it
    /// or after it). Until then the peer may hold this run's epoch as an unproven candidate and
    /// drop whatever its packets carry but the handshake (a restarted side's first burst would
    /// be lost, and sent again), so no data goes.
    peer_accepts_run: bool,
    // Link and pacing.
    link_up: bool,
    rate: f64,
    tokens: f64,
    /// When tokens were last added: set whenever the link is up (by [`Session::set_link`]),
    /// so it stands for "now" in a deadline that is due at once.
    last_refill: Option<Instant>,
    /// Whether the pass has a configured rate; if not, `rate` follows `delivery`.
    configured_rate: bool,
    delivery: estimate::DeliveryRate,
    /// Whether the last data packet left nothing more to send (its rate sample is then
    /// application-limited).
    drained: bool,
    // Handshake.
    peer_incarnation: u64,
    hello_pending: bool,
    /// Transfers queued in this run before the peer's first `HelloAck` told which ids and
    /// sequence numbers it has seen: not sent until then, and renumbered above the peer's marks
    /// if this side's counters were lost or restored (see `handshake`).
    unconfirmed: BTreeSet<u64>,
    /// Whether a `HelloAck` of this run has come (or the wait for it was given up).
    marks_known: bool,
    /// How long `unconfirmed` transfers wait for the `HelloAck`: set when the first `Hello` is
    /// queued. A peer that receives but cannot answer (its side of the contact is closed) must
    /// not hold them forever; past it they go with the numbers they have.
    marks_deadline: Option<Instant>,
    /// Every message of the peer below this sequence number was committed here (the peer's
    /// `Hello` says so): one missing from the inbox was delivered and its mark lost.
    peer_unacked_seq: u64,
    hello_sent_at: Option<Instant>,
    /// When a new candidate epoch last had our `Hello` sent at once (at most `MAX_CANDIDATES`
    /// times a probe timeout: replays must not unpace it).
    hello_rushed_at: Option<Instant>,
    /// A `HelloAck` answering a `Hello` carried at or above this packet number ends
    /// `hello_pending` (it was set when this was `next_pn`).
    hello_asked_from: u64,
    /// A `HelloAck` proves a candidate epoch only if it answers a `Hello` carried at or above
    /// this packet number: `next_pn` at the last promotion.
    proof_floor: u64,
    /// The latest `Hello` of each candidate epoch, applied if it is promoted.
    candidate_hellos: Vec<CandidateHello>,
    /// Whether the peer is known to hold this run's epoch: packets go in the short form.
    short_header: bool,
    /// The highest of this run's packet numbers the peer acknowledged: a short packet carries
    /// only 16 bits of its number, and is sent only within `wire::SHORT_PN_REACH` above it.
    peer_acked: Option<u64>,
    /// A `HelloAck` answering a `Hello` carried at or above this packet number (`next_pn` when a
    /// candidate epoch last appeared) shows that the peer holds this run's epoch.
    long_from: u64,
    // Sending.
    out: BTreeMap<u64, Out>,
    in_flight: flight::InFlight,
    flight_by_packet: HashMap<(u64, u32), u64>,
    /// Packets that carried offers with data (by packet number): the transfers they offered. A
    /// packet judged lost makes its offers due again, so that the receiver, which takes only a
    /// few packets of a transfer before its offer, hears it before the rest goes by.
    offers_in_flight: BTreeMap<u64, Vec<u64>>,
    floor_sent: u64,
    srtt: Option<Duration>,
    control: control::Control,
    /// The last packet carried control only while data waited: the next carries data first.
    data_turn: bool,
    /// Spare copies at a configured rate: the data chunk the packet being built copies...
    spare_next: Option<(u64, u32)>,
    /// ...the packet number below which the next one is looked for (`None`: below the newest)...
    spare_cursor: Option<u64>,
    /// ...and whether none is left to copy until new data goes.
    spare_exhausted: bool,
    // Receiving.
    rx: RangeSet,
    rx_largest: u64,
    /// When `rx_largest` arrived: an acknowledgement says how long it was held after it.
    largest_at: Option<Instant>,
    /// The lowest packet number this incarnation can vouch for: below it, nothing is known.
    rx_known_from: Option<u64>,
    arrivals: VecDeque<(u64, Instant)>,
    settled: u64,
    peer_floor: u64,
    ack_pending: u32,
    ack_due: Option<Instant>,
    /// Mean gap between ack-eliciting arrivals: on a slow link, acknowledgements are spaced out
    /// to a few packets' time so that they stay a small share of the return link.
    arrival_gap: Option<Duration>,
    last_arrival: Option<Instant>,
    /// Mean gap between acknowledgements received: the peer's acknowledgement pace.
    ack_gap: Option<Duration>,
    last_ack_at: Option<Instant>,
    spools: BTreeMap<u64, Spool>,
    /// The store's running time when the session opened ([`crate::Counters::running`]).
    clock_base: Duration,
    /// The first instant the session was given: its running time counts from it.
    opened_at: Option<Instant>,
    /// When spools were last looked at for expiry.
    expiry_checked_at: Option<Instant>,
    /// Object transfers of the peer refused, with the reason (at most [`REFUSED_MEMORY`]): what
    /// more arrives of them is answered with the refusal again.
    refused: HashMap<u64, String>,
    /// The transfers of `refused`, least recently refused first.
    refused_order: VecDeque<u64>,
    committed: HashSet<u64>,
    committed_order: VecDeque<u64>,
    pending_status: Vec<(u64, u64)>,
    inbox: BTreeMap<u64, Vec<u8>>,
    /// The next inbox message to hand to the application (at or above `delivered_seq`).
    next_emit: u64,
    /// What is saved of the opener's memory: for the peer's current epoch, a mark at or above
    /// every packet number accepted in it (see `persist`).
    replay_saved: wire::ReplayMemory,
    events: VecDeque<Event>,
    stats: SessionStats,
}

struct Out {
    entry: OutboxEntry,
    packets: u32,
    next_new: u32,
    received: RangeSet,
    /// The highest packet number whose acknowledgement added to `received`: a status settled
    /// below it may predate what that acknowledgement said, and is not taken for the whole word.
    acked_to: u64,
    lost: BTreeSet<u32>,
    /// Sent before a restart (ours or the peer's): fate unknown until a status settled past
    /// `unknown_bound`.
    unknown: RangeSet,
    unknown_bound: u64,
    /// Chunks that may never have been sent before this side restarted: the
    /// [`HWM_RESERVATION`] below its saved outbox mark (saved that far ahead of the chunk
    /// about to go). Sent once a status
    /// says they are missing, they count as [`SessionStats::payload_unsure`].
    maybe_unsent: BTreeSet<u32>,
    offer_due: bool,
    status_asked_at: Option<Instant>,
    last_sent_at: Option<Instant>,
}

/// A `Hello` of a candidate epoch, answered and kept until the epoch is promoted.
struct CandidateHello {
    epoch: u64,
    pn: u64,
    incarnation: u64,
    resume: Vec<u64>,
    unacked_seq: u64,
    datagram_bytes: u64,
    /// When a `Hello` of this epoch was last answered.
    answered_at: Instant,
}

struct Sent {
    transfer: u64,
    index: u32,
    at: Instant,
    /// The datagram's length.
    size: usize,
    /// What it took along of the delivery-rate estimate.
    state: estimate::SendState,
    /// A spare copy of a packet still in flight (see `send.rs`, `spare_copy`): never copied
    /// again, and the packet it copies stays in flight beside it.
    spare: bool,
}

struct Spool {
    offer: Option<Offer>,
    received: RangeSet,
    dirty: u64,
    dirty_since: Option<Instant>,
    /// The store's running time at its last progress (its offer, or a chunk of data).
    progress_at: Duration,
}

const MAX_SPOOLS: usize = 4096;
/// Packets of a transfer taken before its offer: indexes below this only. An offer goes in the
/// packet of the transfer's first data, or the one before it, so only reordering or the loss of
/// that packet brings data first; without the offer nothing bounds the transfer's size, and a
/// chunk numbered near `u32::MAX` would make a spool file of terabytes.
pub const OFFERLESS_WINDOW: u32 = 64;
const MAX_OUT: usize = 1 << 16;
const COMMITTED_MEMORY: usize = 4096;
const REFUSED_MEMORY: usize = 1024;
/// How often spools are looked at for expiry (and, while there are some, the running time is
/// saved: what a crash loses of it).
const EXPIRY_CHECK: Duration = Duration::from_secs(60);
const PN_RESERVATION: u64 = 1024;
/// How far ahead of the highest packet number accepted in the peer's current epoch the saved
/// replay mark is put: the counters are written once every this many packets, and a restart
/// refuses up to this many numbers the peer never sent (it numbers above them once told).
const REPLAY_RESERVATION: u64 = 4096;
const HWM_RESERVATION: u32 = 64;
const MAX_ARRIVALS: usize = 1 << 16;
const MAX_RX_RANGES: usize = 8192;
const INITIAL_RTT: Duration = Duration::from_millis(500);
const MAX_ACK_DELAY: Duration = Duration::from_secs(10);

impl Session {
    // --- getters ---

    /// Counters since the session opened.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// Whether every outgoing transfer was committed by the peer.
    pub fn is_idle(&self) -> bool {
        self.out.is_empty()
    }

    /// Outgoing transfers not yet committed by the peer.
    pub fn outgoing(&self) -> usize {
        self.out.len()
    }

    /// Whether a message whose bytes have this digest waits in the outbox (queued, or sent and
    /// not yet committed by the peer).
    pub fn has_outgoing_message(&self, digest: &Digest) -> bool {
        self.out
            .values()
            .any(|o| o.entry.body.is_some() && o.entry.offer.digest == *digest)
    }

    /// The outgoing transfers in the order they will be sent (priority, then age), with the
    /// bytes of each not yet known to be received: what an ETA is computed from.
    pub fn outgoing_transfers(&self) -> Vec<OutgoingTransfer> {
        let p = self.packet_size as u64;
        let mut v: Vec<OutgoingTransfer> = self
            .out
            .values()
            .map(|o| {
                let known = (o.received.len() * p).min(o.entry.offer.size);
                OutgoingTransfer {
                    transfer: o.entry.offer.transfer,
                    digest: o.entry.offer.digest,
                    message: o.entry.body.is_some(),
                    size: o.entry.offer.size,
                    remaining: o.entry.offer.size - known,
                    priority: o.entry.offer.priority,
                }
            })
            .collect();
        v.sort_by_key(|t| (t.priority, t.transfer));
        v
    }

    /// Bytes of outgoing transfers not yet known to be received.
    pub fn outgoing_bytes(&self) -> u64 {
        self.out
            .values()
            .map(|o| {
                let known = o.received.len().min(u64::from(o.packets));
                o.entry
                    .offer
                    .size
                    .saturating_sub(known * self.packet_size as u64)
            })
            .sum()
    }

    // --- inputs ---

    /// Tells the session that `now` has come; timers are acted on in
    /// [`Session::poll_transmit`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.in_flight
            .go_silent(now, self.pto() * pacing::SILENT_PTOS);
        self.give_up_on_marks(now);
        self.advance_settled(now);
        self.persist_all(now, false);
        self.expire_spools(now);
    }

    // --- outputs ---

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When the session next needs [`Session::handle_timeout`] and a round of
    /// [`Session::poll_transmit`].
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(d) = self.ack_due {
            at(d);
        }
        if let Some(s) = self.spools.values().filter_map(|s| s.dirty_since).min() {
            at(s + self.config.persist_interval);
        }
        let waiting_to_settle = !self.pending_status.is_empty()
            || (self.rx_largest > self.settled
                && !self
                    .rx
                    .gaps(self.settled + 1, self.rx_largest + 1)
                    .is_empty());
        if waiting_to_settle && let Some(&(_, t)) = self.arrivals.front() {
            at(t + self.config.reorder_window);
        }
        if !self.link_up {
            return next;
        }
        if !self.unconfirmed.is_empty()
            && let Some(d) = self.marks_deadline
        {
            at(d);
        }
        let pto = self.pto();
        if self.hello_pending {
            // Never sent since the link came up: due at once, that is when the link came up.
            if let Some(t) = self.hello_sent_at.map(|s| s + pto).or(self.last_refill) {
                at(t);
            }
        }
        let mut sendable = !self.control.is_empty();
        // Data held back by the estimate waits for an acknowledgement, or for the oldest packet
        // in flight to count no more.
        let capped = self.last_refill.is_some_and(|t| self.over_the_pipe(t));
        if capped
            && let Some(now) = self.last_refill
            && let Some(t) = self.in_flight.next_silence(now, pto * pacing::SILENT_PTOS)
        {
            at(t);
        }
        for (t, o) in &self.out {
            if self.unconfirmed.contains(t) {
                continue;
            }
            let data = !o.lost.is_empty() || o.next_new < o.packets;
            if (data && !capped) || (o.offer_due && o.packets == 0) {
                sendable = true;
            }
            if let Some(t) = self.probe_due_at(o, pto) {
                at(t);
            }
        }
        // Spare copies go in time the link would have been idle.
        if self.configured_rate && !self.spare_exhausted && !self.in_flight.is_empty() {
            sendable = true;
        }
        if sendable {
            match self.last_refill {
                Some(last) if self.tokens <= 0.0 && self.rate.is_finite() && self.rate > 0.0 => {
                    at(last + Duration::from_secs_f64((-self.tokens + 1.0) / self.rate));
                }
                Some(last) => at(last),
                None => {}
            }
        }
        next
    }
}

/// Payload bytes of a data packet in datagrams of `datagram_bytes` (clamped to
/// `wire::MIN_DATAGRAM..=wire::MAX_PACKET`): what is left of a long packet once its header, tag
/// and the fields of a data chunk ending the body are counted, so that a full one always fits
/// a packet of its own.
pub fn payload_size(datagram_bytes: usize) -> usize {
    datagram_bytes.clamp(wire::MIN_DATAGRAM, wire::MAX_PACKET)
        - wire::PACKET_OVERHEAD
        - wire::DATA_CHUNK_OVERHEAD
}

/// Packets needed for `size` bytes at `packet_size` each.
pub fn packet_count(size: u64, packet_size: usize) -> u32 {
    size.div_ceil(packet_size as u64).min(u64::from(u32::MAX)) as u32
}
