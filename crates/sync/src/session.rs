//! The transfer session: resumable, paced, authenticated transfer of messages and objects over a
//! datagram link. See the crate documentation for the model; the comments here record why.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::io;
use std::time::{Duration, Instant};

use wire::{
    AckRanges, Chunk, DATA_CHUNK_OVERHEAD, Digest, Direction, LinkKey, MAX_BODY, MAX_LIST,
    MAX_RANGES, Offer, Opener, PacketError, Sealer, Status, StatusState, TransferKind, chunk_len,
    decode_chunks, encode_chunk,
};

use crate::ranges::RangeSet;
use crate::store::{Commit, Counters, OutboxEntry, Store};

/// How a [`Session`] behaves. No `Default`: each driver states its values.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The satellite's link key.
    pub key: LinkKey,
    /// The direction of the packets this side sends (ground: `Up`, flight: `Down`).
    pub sends: Direction,
    /// Drawn at every start; never 0.
    pub incarnation: u64,
    /// Payload bytes per data packet; both sides must agree. At most
    /// `MAX_BODY - DATA_CHUNK_OVERHEAD`.
    pub packet_size: usize,
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
    /// Bytes of handshake chunks (hello, hello-ack, status requests and statuses) sent.
    pub handshake_bytes: u64,
    /// Packets received and accepted.
    pub packets_received: u64,
    /// Payload bytes received for the first time.
    pub payload_received: u64,
    /// Data chunks received again.
    pub duplicates: u64,
    /// Refused: longer than the maximum.
    pub rejected_oversized: u64,
    /// Refused: shorter than a header.
    pub rejected_truncated: u64,
    /// Refused: bad checksum (line corruption).
    pub rejected_checksum: u64,
    /// Refused: unknown version or direction.
    pub rejected_unknown: u64,
    /// Refused: failed authentication.
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
    /// Storage failures.
    pub store_errors: u64,
}

/// A resumable, paced, authenticated transfer session with one peer. See the crate documentation.
pub struct Session {
    config: SessionConfig,
    store: Box<dyn Store>,
    sealer: Sealer,
    opener: Opener,
    counters: Counters,
    next_pn: u64,
    // Link and pacing.
    link_up: bool,
    rate: f64,
    tokens: f64,
    last_refill: Option<Instant>,
    // Handshake.
    peer_incarnation: u64,
    hello_pending: bool,
    hello_sent_at: Option<Instant>,
    // Sending.
    out: BTreeMap<u64, Out>,
    in_flight: BTreeMap<u64, Sent>,
    flight_by_packet: HashMap<(u64, u32), u64>,
    floor_sent: u64,
    srtt: Option<Duration>,
    control: VecDeque<Chunk>,
    // Receiving.
    rx: RangeSet,
    rx_largest: u64,
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
    committed: HashSet<u64>,
    committed_order: VecDeque<u64>,
    pending_status: Vec<(u64, u64)>,
    inbox: BTreeMap<u64, Vec<u8>>,
    /// The next inbox message to hand to the application (at or above `delivered_seq`).
    next_emit: u64,
    replay_saved: u64,
    events: VecDeque<Event>,
    stats: SessionStats,
}

struct Out {
    entry: OutboxEntry,
    packets: u32,
    next_new: u32,
    received: RangeSet,
    lost: BTreeSet<u32>,
    /// Sent before a restart (ours or the peer's): fate unknown until a status settled past
    /// `unknown_bound`.
    unknown: RangeSet,
    unknown_bound: u64,
    offer_due: bool,
    status_asked_at: Option<Instant>,
    last_sent_at: Option<Instant>,
}

struct Sent {
    transfer: u64,
    index: u32,
    at: Instant,
}

struct Spool {
    offer: Option<Offer>,
    received: RangeSet,
    dirty: u64,
    dirty_since: Option<Instant>,
    /// When a chunk of it last arrived (at open: none).
    active_at: Option<Instant>,
}

const MAX_SPOOLS: usize = 4096;
const MAX_OUT: usize = 1 << 16;
const COMMITTED_MEMORY: usize = 4096;
const PN_RESERVATION: u64 = 1024;
const HWM_RESERVATION: u32 = 64;
const MAX_ARRIVALS: usize = 1 << 16;
const MAX_RX_RANGES: usize = 8192;
const INITIAL_RTT: Duration = Duration::from_millis(500);
const MAX_ACK_DELAY: Duration = Duration::from_secs(10);

impl Session {
    /// Opens a session on `store`, resuming whatever it persisted.
    pub fn new(config: SessionConfig, mut store: Box<dyn Store>) -> io::Result<Session> {
        assert!(config.incarnation != 0, "incarnation 0 means unknown");
        let packet_size = config.packet_size.clamp(1, MAX_BODY - DATA_CHUNK_OVERHEAD);
        let config = SessionConfig {
            packet_size,
            ..config
        };
        let persisted = store.load()?;
        let mut counters = persisted.counters;
        // Repair counters a crash left behind the outbox (see send_message).
        for e in &persisted.outbox {
            counters.next_transfer = counters.next_transfer.max(e.offer.transfer + 1);
            if let TransferKind::Message { seq } = e.offer.kind {
                counters.next_message_seq = counters.next_message_seq.max(seq + 1);
            }
        }
        for &(seq, _) in &persisted.inbox {
            if seq < counters.delivered_seq {
                store.inbox_remove(seq)?;
            }
        }
        // Everything below the reservation may have been used: start above it, and reserve.
        let next_pn = counters.pn_reserved.max(1);
        counters.pn_reserved = next_pn + PN_RESERVATION;
        store.save_counters(&counters)?;
        let mut out = BTreeMap::new();
        for entry in persisted.outbox {
            let packets = packet_count(entry.offer.size, packet_size);
            let hwm = entry.sent_hwm.min(packets);
            out.insert(
                entry.offer.transfer,
                Out {
                    packets,
                    next_new: hwm,
                    received: RangeSet::new(),
                    lost: BTreeSet::new(),
                    unknown: RangeSet::from_ranges([(0, u64::from(hwm))]),
                    unknown_bound: next_pn,
                    offer_due: true,
                    status_asked_at: None,
                    last_sent_at: None,
                    entry,
                },
            );
        }
        let spools = persisted
            .spools
            .into_iter()
            .map(|s| {
                let received = RangeSet::from_ranges(
                    s.received
                        .iter()
                        .map(|&(a, b)| (u64::from(a), u64::from(b))),
                );
                (
                    s.transfer,
                    Spool {
                        offer: s.offer,
                        received,
                        dirty: 0,
                        dirty_since: None,
                        active_at: None,
                    },
                )
            })
            .collect();
        let committed_order: VecDeque<u64> = persisted.committed.into_iter().collect();
        Ok(Session {
            sealer: Sealer::new(&config.key, config.sends),
            opener: Opener::new(&config.key, config.sends.reverse(), counters.replay_floor),
            replay_saved: counters.replay_floor.unwrap_or(0),
            counters,
            next_pn,
            link_up: false,
            rate: 0.0,
            tokens: 0.0,
            last_refill: None,
            peer_incarnation: 0,
            hello_pending: true,
            hello_sent_at: None,
            out,
            in_flight: BTreeMap::new(),
            flight_by_packet: HashMap::new(),
            floor_sent: 0,
            srtt: None,
            control: VecDeque::new(),
            rx: RangeSet::new(),
            rx_largest: 0,
            rx_known_from: None,
            arrivals: VecDeque::new(),
            settled: 0,
            peer_floor: 0,
            ack_pending: 0,
            ack_due: None,
            arrival_gap: None,
            last_arrival: None,
            ack_gap: None,
            last_ack_at: None,
            spools,
            committed: committed_order.iter().copied().collect(),
            committed_order,
            pending_status: Vec::new(),
            inbox: persisted
                .inbox
                .into_iter()
                .filter(|&(seq, _)| seq >= counters.delivered_seq)
                .collect(),
            next_emit: counters.delivered_seq,
            events: VecDeque::new(),
            stats: SessionStats::default(),
            store,
            config,
        })
        .map(|mut s| {
            s.deliver_messages();
            s
        })
    }

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

    /// The outgoing transfers in the order they will be sent (priority, then age), with the
    /// bytes of each not yet known to be received: what an ETA is computed from.
    pub fn outgoing_transfers(&self) -> Vec<OutgoingTransfer> {
        let p = self.config.packet_size as u64;
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
                    .saturating_sub(known * self.config.packet_size as u64)
            })
            .sum()
    }

    // --- application commands ---

    /// Queues a message. Messages are delivered in order, before objects of lower priority.
    pub fn send_message(&mut self, bytes: Vec<u8>) -> io::Result<u64> {
        if bytes.len() > wire::MAX_MESSAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a message of {} bytes exceeds the {}-byte limit",
                    bytes.len(),
                    wire::MAX_MESSAGE
                ),
            ));
        }
        if self.out.len() >= MAX_OUT {
            return Err(io::Error::other("too many outgoing transfers"));
        }
        let seq = self.counters.next_message_seq;
        let offer = Offer {
            transfer: self.counters.next_transfer,
            kind: TransferKind::Message { seq },
            size: bytes.len() as u64,
            priority: 0,
            digest: Digest::of(&bytes),
        };
        // The outbox entry first: a crash before the counters are saved is repaired at load
        // (counters are raised above every outbox entry), so no number is ever skipped or reused.
        self.enqueue(OutboxEntry {
            offer,
            sent_hwm: 0,
            body: Some(bytes),
        })?;
        self.counters.next_message_seq += 1;
        self.counters.next_transfer += 1;
        self.store.save_counters(&self.counters)?;
        Ok(seq)
    }

    /// Queues an object the store holds. Lower `priority` goes first (messages are 0).
    pub fn send_object(&mut self, digest: Digest, size: u64, priority: u8) -> io::Result<u64> {
        if let Some(o) = self
            .out
            .values()
            .find(|o| o.entry.offer.digest == digest && o.entry.body.is_none())
        {
            return Ok(o.entry.offer.transfer);
        }
        let offer = Offer {
            transfer: self.counters.next_transfer,
            kind: TransferKind::Object,
            size,
            priority,
            digest,
        };
        let transfer = offer.transfer;
        self.enqueue(OutboxEntry {
            offer,
            sent_hwm: 0,
            body: None,
        })?;
        self.counters.next_transfer += 1;
        self.store.save_counters(&self.counters)?;
        Ok(transfer)
    }

    /// Tells the session whether the link is up (a contact window is open) and its rate in bit/s
    /// (`None`: unpaced).
    pub fn set_link(&mut self, now: Instant, up: bool, rate_bits_per_sec: Option<u64>) {
        self.rate = rate_bits_per_sec.map_or(f64::INFINITY, |r| r as f64 / 8.0);
        if up && !self.link_up {
            // A new contact: introduce ourselves so a peer that restarted meanwhile learns of it,
            // and start the pass with a full burst allowance.
            self.hello_pending = true;
            self.hello_sent_at = None;
            self.tokens = self.burst();
            self.last_refill = Some(now);
        }
        if !up && self.link_up {
            self.persist_all(now, true);
        }
        self.link_up = up;
    }

    /// Records that the application has handled message `seq` (and every one before it): it will
    /// not be delivered again.
    pub fn message_done(&mut self, seq: u64) {
        let before = self.counters.delivered_seq;
        while self.counters.delivered_seq <= seq && self.counters.delivered_seq < self.next_emit {
            self.counters.delivered_seq += 1;
        }
        if self.counters.delivered_seq == before {
            return;
        }
        // The counter first: a crash after it leaves stale inbox files (dropped at the next
        // start), never a gap in the sequence.
        if self.store.save_counters(&self.counters).is_err() {
            self.stats.store_errors += 1;
            self.counters.delivered_seq = before;
            return;
        }
        for s in before..self.counters.delivered_seq {
            self.inbox.remove(&s);
            let _ = self.store.inbox_remove(s);
        }
    }

    // --- inputs ---

    /// Feeds one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        let (pn, body) = match self.opener.open(datagram) {
            Ok(x) => x,
            Err(e) => {
                let s = &mut self.stats;
                *match e {
                    PacketError::Oversized => &mut s.rejected_oversized,
                    PacketError::Truncated => &mut s.rejected_truncated,
                    PacketError::Checksum => &mut s.rejected_checksum,
                    PacketError::Forged => &mut s.rejected_forged,
                    PacketError::Replayed => &mut s.rejected_replayed,
                    _ => &mut s.rejected_unknown,
                } += 1;
                return;
            }
        };
        let chunks = match decode_chunks(&body) {
            Ok(c) => c,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        self.stats.packets_received += 1;
        self.rx.insert_one(pn);
        self.rx_known_from = Some(self.rx_known_from.map_or(pn, |k| k.min(pn)));
        if self.rx.range_count() > MAX_RX_RANGES {
            let drop_below = self.rx.iter().nth(MAX_RX_RANGES / 2).map_or(0, |(s, _)| s);
            self.rx.remove_below(drop_below);
            self.rx_known_from = self.rx_known_from.map(|k| k.max(drop_below));
        }
        self.rx_largest = self.rx_largest.max(pn);
        self.arrivals.push_back((pn, now));
        if self.arrivals.len() > MAX_ARRIVALS
            && let Some((p, _)) = self.arrivals.pop_front()
        {
            self.settled = self.settled.max(p);
        }
        let mut ack_eliciting = false;
        let mut touched = Vec::new();
        for chunk in chunks {
            ack_eliciting |= !matches!(
                chunk,
                Chunk::Ack(_) | Chunk::HelloAck { .. } | Chunk::Floor { .. }
            );
            match chunk {
                Chunk::Data {
                    transfer,
                    index,
                    payload,
                } => {
                    if self.receive_data(now, transfer, index, &payload) {
                        touched.push(transfer);
                    }
                }
                Chunk::Offer(o) => {
                    let t = o.transfer;
                    if self.receive_offer(o) {
                        touched.push(t);
                    }
                }
                Chunk::Ack(a) => self.receive_ack(now, &a),
                Chunk::Status(s) => self.receive_status(&s),
                Chunk::Hello {
                    incarnation,
                    resume,
                } => self.receive_hello(pn, incarnation, &resume),
                Chunk::HelloAck { incarnation } => {
                    if incarnation == self.config.incarnation {
                        self.hello_pending = false;
                    }
                }
                Chunk::StatusRequest { transfers } => {
                    self.pending_status
                        .extend(transfers.into_iter().map(|t| (t, pn)));
                }
                Chunk::Floor { pn: floor } => {
                    self.peer_floor = self.peer_floor.max(floor);
                    self.rx.remove_below(self.peer_floor);
                }
            }
        }
        if ack_eliciting {
            if let Some(last) = self.last_arrival {
                let gap = now.saturating_duration_since(last);
                self.arrival_gap = Some(self.arrival_gap.map_or(gap, |g| (g * 7 + gap) / 8));
            }
            self.last_arrival = Some(now);
            self.ack_pending += 1;
            let delay = self.arrival_gap.map_or(self.config.ack_delay, |g| {
                (g * 8).clamp(self.config.ack_delay, MAX_ACK_DELAY)
            });
            let due = if self.ack_pending >= self.config.ack_every {
                now
            } else {
                now + delay
            };
            self.ack_due = Some(self.ack_due.map_or(due, |d| d.min(due)));
        }
        touched.sort_unstable();
        touched.dedup();
        for t in touched {
            self.try_commit(now, t);
        }
        self.persist_all(now, false);
        self.save_replay_floor(false);
    }

    /// Tells the session that `now` has come; timers are acted on in
    /// [`Session::poll_transmit`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_settled(now);
        self.persist_all(now, false);
    }

    // --- outputs ---

    /// The next datagram to send now, if any.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.advance_settled(now);
        if !self.link_up {
            return None;
        }
        self.refill(now);
        if self.tokens <= 0.0 {
            return None;
        }
        self.queue_control(now);
        let mut body = Vec::with_capacity(MAX_BODY);
        let mut handshake = 0usize;
        while let Some(c) = self.control.front() {
            let len = chunk_len(c);
            if body.len() + len > MAX_BODY {
                break;
            }
            if matches!(
                c,
                Chunk::Hello { .. }
                    | Chunk::HelloAck { .. }
                    | Chunk::Status(_)
                    | Chunk::StatusRequest { .. }
            ) {
                handshake += len;
            }
            let c = self.control.pop_front()?;
            encode_chunk(&c, &mut body);
        }
        let data = self.fill_data(now, &mut body);
        if body.is_empty() {
            return None;
        }
        let pn = self.take_pn()?;
        for &(transfer, index, resent, len) in &data {
            self.in_flight.insert(
                pn,
                Sent {
                    transfer,
                    index,
                    at: now,
                },
            );
            if let Some(old) = self.flight_by_packet.insert((transfer, index), pn) {
                self.in_flight.remove(&old);
            }
            if resent {
                self.stats.payload_resent += len as u64;
            } else {
                self.stats.payload_sent += len as u64;
            }
        }
        let packet = self.sealer.seal(pn, &body);
        self.tokens -= packet.len() as f64;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += packet.len() as u64;
        self.stats.handshake_bytes += handshake as u64;
        Some(packet)
    }

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
        let pto = self.pto();
        if self.hello_pending {
            at(self.hello_sent_at.map_or_else(
                || self.last_refill.unwrap_or_else(Instant::now),
                |s| s + pto,
            ));
        }
        let mut sendable = !self.control.is_empty();
        for o in self.out.values() {
            if !o.lost.is_empty() || o.next_new < o.packets || (o.offer_due && o.packets == 0) {
                sendable = true;
            }
            if let Some(t) = self.probe_due_at(o, pto) {
                at(t);
            }
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

    // --- internals: sending ---

    fn enqueue(&mut self, entry: OutboxEntry) -> io::Result<()> {
        if self.out.len() >= MAX_OUT {
            return Err(io::Error::other("too many outgoing transfers"));
        }
        self.store.outbox_put(&entry)?;
        let packets = packet_count(entry.offer.size, self.config.packet_size);
        self.out.insert(
            entry.offer.transfer,
            Out {
                entry,
                packets,
                next_new: 0,
                received: RangeSet::new(),
                lost: BTreeSet::new(),
                unknown: RangeSet::new(),
                unknown_bound: 0,
                offer_due: true,
                status_asked_at: None,
                last_sent_at: None,
            },
        );
        Ok(())
    }

    fn take_pn(&mut self) -> Option<u64> {
        if self.next_pn >= self.counters.pn_reserved {
            self.counters.pn_reserved = self.next_pn + PN_RESERVATION;
            if self.store.save_counters(&self.counters).is_err() {
                self.stats.store_errors += 1;
                return None;
            }
        }
        let pn = self.next_pn;
        self.next_pn += 1;
        Some(pn)
    }

    fn pto(&self) -> Duration {
        self.srtt.unwrap_or(INITIAL_RTT) * 2
            + self.config.reorder_window
            + self
                .ack_gap
                .unwrap_or(self.config.ack_delay)
                .max(self.config.ack_delay)
    }

    fn burst(&self) -> f64 {
        if self.rate.is_finite() {
            (self.rate * 0.02).max(2.0 * wire::MAX_PACKET as f64)
        } else {
            f64::INFINITY
        }
    }

    fn refill(&mut self, now: Instant) {
        if !self.rate.is_finite() {
            self.tokens = f64::INFINITY;
            self.last_refill = Some(now);
            return;
        }
        let burst = self.burst();
        match self.last_refill {
            Some(last) => {
                let dt = now.saturating_duration_since(last).as_secs_f64();
                self.tokens = (self.tokens + dt * self.rate).min(burst);
            }
            None => self.tokens = burst,
        }
        self.last_refill = Some(now);
    }

    /// When transfer `o` next needs a status request, if it is waiting on one.
    fn probe_due_at(&self, o: &Out, pto: Duration) -> Option<Instant> {
        let waiting =
            !o.unknown.is_empty() || (!o.offer_due && o.lost.is_empty() && o.next_new >= o.packets);
        if !waiting {
            return None;
        }
        match (o.status_asked_at, o.last_sent_at) {
            (Some(a), Some(s)) => Some(a.max(s) + pto),
            (Some(a), None) => Some(a + pto),
            (None, Some(s)) => Some(s + pto),
            (None, None) => Some(self.last_refill.unwrap_or_else(Instant::now)),
        }
    }

    /// Queues acknowledgements, the hello, status answers that have settled, probes and the floor.
    fn queue_control(&mut self, now: Instant) {
        let pto = self.pto();
        if self.hello_pending && self.hello_sent_at.is_none_or(|t| now >= t + pto) {
            self.hello_sent_at = Some(now);
            let resume: Vec<u64> = self
                .out
                .iter()
                .filter(|(_, o)| !o.unknown.is_empty())
                .map(|(&t, _)| t)
                .take(MAX_LIST)
                .collect();
            for t in &resume {
                if let Some(o) = self.out.get_mut(t) {
                    o.status_asked_at = Some(now);
                }
            }
            self.control.push_back(Chunk::Hello {
                incarnation: self.config.incarnation,
                resume,
            });
        }
        // Status answers, once every packet sent before the question has had time to arrive.
        let settled = self.settled;
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .pending_status
            .drain(..)
            .partition(|&(_, pn)| settled >= pn);
        self.pending_status = waiting;
        let mut answered = HashSet::new();
        for (t, _) in ready {
            if answered.insert(t) {
                let s = self.status_of(t);
                self.control.push_back(Chunk::Status(s));
            }
        }
        // Probes: transfers waiting on the receiver's word.
        let mut asks = Vec::new();
        let mut offers = Vec::new();
        for (&t, o) in &self.out {
            if self.probe_due_at(o, pto).is_some_and(|due| now >= due) && asks.len() < MAX_LIST {
                asks.push(t);
                offers.push(o.entry.offer.clone());
            }
        }
        for t in &asks {
            if let Some(o) = self.out.get_mut(t) {
                o.status_asked_at = Some(now);
            }
        }
        if !asks.is_empty() {
            // The offer rides along: the receiver may have lost it.
            self.control.extend(offers.into_iter().map(Chunk::Offer));
            self.control
                .push_back(Chunk::StatusRequest { transfers: asks });
        }
        if self.ack_due.is_some_and(|d| now >= d) && self.rx_largest > 0 {
            self.ack_due = None;
            self.ack_pending = 0;
            let ack = self.build_ack();
            self.control.push_front(Chunk::Ack(ack));
        }
        let floor = self
            .in_flight
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next_pn);
        if floor >= self.floor_sent + 256 {
            self.floor_sent = floor;
            self.control.push_back(Chunk::Floor { pn: floor });
        }
    }

    /// Adds data chunks to `body` while there is room: lost packets first, then new ones, by
    /// priority and age. Returns (transfer, index, resent, bytes) for each.
    fn fill_data(&mut self, now: Instant, body: &mut Vec<u8>) -> Vec<(u64, u32, bool, usize)> {
        let mut sent = Vec::new();
        let p = self.config.packet_size;
        let mut order: Vec<(u8, u64)> = self
            .out
            .iter()
            .map(|(&t, o)| (o.entry.offer.priority, t))
            .collect();
        order.sort_unstable();
        let mut failed = Vec::new();
        'transfers: for (_, t) in order {
            loop {
                let Some(o) = self.out.get_mut(&t) else {
                    continue 'transfers;
                };
                if o.offer_due {
                    let c = Chunk::Offer(o.entry.offer.clone());
                    if body.len() + chunk_len(&c) > MAX_BODY {
                        break 'transfers;
                    }
                    encode_chunk(&c, body);
                    o.offer_due = false;
                    o.last_sent_at = Some(now);
                }
                let (index, resent) = if let Some(i) = o.lost.pop_first() {
                    (i, true)
                } else if o.next_new < o.packets {
                    (o.next_new, false)
                } else {
                    continue 'transfers;
                };
                let offset = u64::from(index) * p as u64;
                let len = (o.entry.offer.size - offset).min(p as u64) as usize;
                if body.len() + DATA_CHUNK_OVERHEAD + len > MAX_BODY {
                    if resent {
                        o.lost.insert(index);
                    }
                    break 'transfers;
                }
                let mut payload = vec![0u8; len];
                let read = match &o.entry.body {
                    Some(b) => {
                        payload.copy_from_slice(&b[offset as usize..offset as usize + len]);
                        Ok(len)
                    }
                    None => self
                        .store
                        .read_object(&o.entry.offer.digest, offset, &mut payload),
                };
                match read {
                    Ok(n) if n == len => {}
                    Ok(n) => {
                        failed.push((t, format!("object is {n} bytes short at offset {offset}")));
                        continue 'transfers;
                    }
                    Err(e) => {
                        failed.push((t, e.to_string()));
                        continue 'transfers;
                    }
                }
                if !resent {
                    if index >= o.entry.sent_hwm {
                        o.entry.sent_hwm = (index + HWM_RESERVATION).min(o.packets);
                        if self.store.outbox_put(&o.entry).is_err() {
                            self.stats.store_errors += 1;
                            break 'transfers;
                        }
                    }
                    o.next_new += 1;
                }
                o.last_sent_at = Some(now);
                encode_chunk(
                    &Chunk::Data {
                        transfer: t,
                        index,
                        payload,
                    },
                    body,
                );
                sent.push((t, index, resent, len));
            }
        }
        for (t, error) in failed {
            if let Some(o) = self.out.remove(&t) {
                let _ = self.store.outbox_remove(t);
                self.events.push_back(Event::ObjectFailed {
                    digest: o.entry.offer.digest,
                    error,
                });
            }
        }
        sent
    }

    // --- internals: the receiver's word about our transfers ---

    fn receive_ack(&mut self, now: Instant, a: &AckRanges) {
        if let Some(last) = self.last_ack_at {
            let gap = now.saturating_duration_since(last).min(MAX_ACK_DELAY);
            self.ack_gap = Some(self.ack_gap.map_or(gap, |g| (g * 7 + gap) / 8));
        }
        self.last_ack_at = Some(now);
        let received =
            RangeSet::from_ranges(a.ranges.iter().map(|&(lo, hi)| (lo, hi.saturating_add(1))));
        let judged: Vec<u64> = self
            .in_flight
            .range(a.low..=a.largest)
            .map(|(&pn, _)| pn)
            .collect();
        for pn in judged {
            let got = received.contains(pn);
            if !got && pn > a.settled {
                continue;
            }
            let Some(sent) = self.in_flight.remove(&pn) else {
                continue;
            };
            if self.flight_by_packet.get(&(sent.transfer, sent.index)) == Some(&pn) {
                self.flight_by_packet.remove(&(sent.transfer, sent.index));
            }
            if got && pn == a.largest {
                let sample = now.saturating_duration_since(sent.at);
                self.srtt = Some(self.srtt.map_or(sample, |s| (s * 7 + sample) / 8));
            }
            if let Some(o) = self.out.get_mut(&sent.transfer) {
                if got {
                    o.received.insert_one(u64::from(sent.index));
                } else if !o.received.contains(u64::from(sent.index)) {
                    o.lost.insert(sent.index);
                }
            }
        }
    }

    fn receive_status(&mut self, s: &Status) {
        let Some(o) = self.out.get_mut(&s.transfer) else {
            return;
        };
        match s.state {
            StatusState::Committed => {
                let o = self.out.remove(&s.transfer);
                let _ = self.store.outbox_remove(s.transfer);
                self.in_flight.retain(|_, f| f.transfer != s.transfer);
                self.flight_by_packet.retain(|&(t, _), _| t != s.transfer);
                if let Some(o) = o
                    && o.entry.body.is_none()
                {
                    self.events.push_back(Event::ObjectDelivered {
                        digest: o.entry.offer.digest,
                    });
                }
                return;
            }
            StatusState::Unknown | StatusState::Reset => {
                o.received = RangeSet::new();
                o.offer_due = true;
            }
            StatusState::Partial => {
                for &(a, b) in &s.ranges {
                    o.received.insert(u64::from(a), u64::from(b.min(s.upto)));
                }
            }
        }
        let upto = if s.state == StatusState::Partial {
            s.upto.min(o.next_new)
        } else {
            o.next_new
        };
        let unknown_settled = s.settled.saturating_add(1) >= o.unknown_bound;
        for index in 0..upto {
            let i = u64::from(index);
            if o.received.contains(i) || o.lost.contains(&index) {
                continue;
            }
            if o.unknown.contains(i) {
                if unknown_settled {
                    o.lost.insert(index);
                }
                continue;
            }
            match self.flight_by_packet.get(&(s.transfer, index)) {
                Some(&pn) if pn > s.settled => {} // still on its way
                Some(&pn) => {
                    self.in_flight.remove(&pn);
                    self.flight_by_packet.remove(&(s.transfer, index));
                    o.lost.insert(index);
                }
                None => {
                    o.lost.insert(index);
                }
            }
        }
        if unknown_settled && upto >= o.next_new {
            o.unknown = RangeSet::new();
        }
    }

    fn receive_hello(&mut self, pn: u64, incarnation: u64, resume: &[u64]) {
        if incarnation != self.peer_incarnation {
            if self.peer_incarnation != 0 {
                self.stats.peer_restarts += 1;
                self.forget_peer();
            }
            self.peer_incarnation = incarnation;
        }
        self.control.push_back(Chunk::HelloAck { incarnation });
        self.pending_status.extend(resume.iter().map(|&t| (t, pn)));
    }

    /// The peer restarted: whatever it acknowledged but had not persisted is gone, so every
    /// packet sent becomes unknown until its status says otherwise.
    fn forget_peer(&mut self) {
        let bound = self.next_pn;
        for o in self.out.values_mut() {
            o.received = RangeSet::new();
            o.lost.clear();
            o.unknown = RangeSet::from_ranges([(0, u64::from(o.next_new))]);
            o.unknown_bound = bound;
            o.offer_due = true;
            o.status_asked_at = None;
        }
        self.in_flight.clear();
        self.flight_by_packet.clear();
        self.hello_pending = true;
        self.hello_sent_at = None;
    }

    // --- internals: receiving ---

    fn receive_data(&mut self, now: Instant, transfer: u64, index: u32, payload: &[u8]) -> bool {
        if self.committed.contains(&transfer) {
            self.stats.duplicates += 1;
            self.queue_committed(transfer);
            return false;
        }
        let p = self.config.packet_size;
        if !self.make_room_for(transfer) {
            return false;
        }
        let spool = self.spools.entry(transfer).or_insert_with(|| Spool {
            offer: None,
            received: RangeSet::new(),
            dirty: 0,
            dirty_since: None,
            active_at: None,
        });
        spool.active_at = Some(now);
        if spool.received.contains(u64::from(index)) {
            self.stats.duplicates += 1;
            return false;
        }
        let expected_ok = match &spool.offer {
            Some(o) => {
                let offset = u64::from(index) * p as u64;
                offset < o.size && payload.len() as u64 == (o.size - offset).min(p as u64)
            }
            None => !payload.is_empty() && payload.len() <= p,
        };
        if !expected_ok {
            self.stats.malformed += 1;
            return false;
        }
        if self
            .store
            .spool_write(transfer, u64::from(index) * p as u64, payload)
            .is_err()
        {
            self.stats.store_errors += 1;
            return false;
        }
        spool.received.insert_one(u64::from(index));
        spool.dirty += payload.len() as u64;
        spool.dirty_since.get_or_insert(now);
        self.stats.payload_received += payload.len() as u64;
        true
    }

    fn receive_offer(&mut self, o: Offer) -> bool {
        let t = o.transfer;
        if self.committed.contains(&t) {
            self.queue_committed(t);
            return false;
        }
        let already = match o.kind {
            TransferKind::Message { seq } => {
                seq < self.counters.delivered_seq || self.inbox.contains_key(&seq)
            }
            TransferKind::Object => self.store.has_object(&o.digest),
        };
        if already {
            if self.spools.remove(&t).is_some() {
                let _ = self.store.spool_drop(t);
            }
            self.remember_committed(t);
            self.queue_committed(t);
            return false;
        }
        if !self.make_room_for(t) {
            return false;
        }
        let spool = self.spools.entry(t).or_insert_with(|| Spool {
            offer: None,
            received: RangeSet::new(),
            dirty: 0,
            dirty_since: None,
            active_at: None,
        });
        match &spool.offer {
            Some(existing) if *existing != o => {
                self.stats.malformed += 1;
                false
            }
            Some(_) => true,
            None => {
                spool.offer = Some(o);
                true
            }
        }
    }

    /// Whether transfer `t` may have a spool: it has one, there is room, or the least recently
    /// active spool (an orphan of a transfer its sender dropped, most likely) was evicted to make
    /// room. An evicted transfer that comes back is asked for again from nothing.
    fn make_room_for(&mut self, t: u64) -> bool {
        if self.spools.contains_key(&t) || self.spools.len() < MAX_SPOOLS {
            return true;
        }
        let Some((&victim, _)) = self.spools.iter().min_by_key(|(_, s)| s.active_at) else {
            return false;
        };
        self.spools.remove(&victim);
        if self.store.spool_drop(victim).is_err() {
            self.stats.store_errors += 1;
        }
        true
    }

    fn try_commit(&mut self, now: Instant, t: u64) {
        let p = self.config.packet_size;
        let Some(spool) = self.spools.get(&t) else {
            return;
        };
        let Some(offer) = spool.offer.clone() else {
            return;
        };
        if !spool
            .received
            .covers(u64::from(packet_count(offer.size, p)))
        {
            return;
        }
        self.persist(now, t);
        match self.store.spool_commit(&offer) {
            Ok(Commit::Mismatch) => {
                self.stats.digest_mismatches += 1;
                self.spools.remove(&t);
                let settled = self.settled;
                self.control.push_back(Chunk::Status(Status {
                    transfer: t,
                    settled,
                    state: StatusState::Reset,
                    upto: 0,
                    ranges: Vec::new(),
                }));
            }
            Ok(commit) => {
                self.spools.remove(&t);
                self.remember_committed(t);
                self.queue_committed(t);
                match (commit, offer.kind) {
                    (Commit::Message(bytes), TransferKind::Message { seq }) => {
                        if seq >= self.counters.delivered_seq {
                            self.inbox.insert(seq, bytes);
                        }
                        self.deliver_messages();
                    }
                    _ => {
                        self.stats.objects_committed += 1;
                        self.events.push_back(Event::ObjectReceived {
                            digest: offer.digest,
                            size: offer.size,
                        });
                    }
                }
            }
            Err(_) => self.stats.store_errors += 1,
        }
    }

    fn deliver_messages(&mut self) {
        while let Some(bytes) = self.inbox.get(&self.next_emit) {
            let seq = self.next_emit;
            self.next_emit += 1;
            self.stats.messages_delivered += 1;
            self.events.push_back(Event::Message {
                seq,
                bytes: bytes.clone(),
            });
        }
    }

    fn remember_committed(&mut self, t: u64) {
        if self.committed.insert(t) {
            self.committed_order.push_back(t);
            if self.committed_order.len() > COMMITTED_MEMORY
                && let Some(old) = self.committed_order.pop_front()
            {
                self.committed.remove(&old);
            }
        }
    }

    fn queue_committed(&mut self, t: u64) {
        let already = self
            .control
            .iter()
            .any(|c| matches!(c, Chunk::Status(s) if s.transfer == t));
        if !already {
            let settled = self.settled;
            self.control.push_back(Chunk::Status(Status {
                transfer: t,
                settled,
                state: StatusState::Committed,
                upto: 0,
                ranges: Vec::new(),
            }));
        }
    }

    fn status_of(&self, t: u64) -> Status {
        let settled = self.settled;
        if self.committed.contains(&t) {
            return Status {
                transfer: t,
                settled,
                state: StatusState::Committed,
                upto: 0,
                ranges: Vec::new(),
            };
        }
        match self.spools.get(&t) {
            None => Status {
                transfer: t,
                settled,
                state: StatusState::Unknown,
                upto: 0,
                ranges: Vec::new(),
            },
            Some(s) => {
                let all: Vec<(u64, u64)> = s.received.iter().collect();
                let upto = if all.len() > MAX_RANGES {
                    all[MAX_RANGES - 1].1
                } else {
                    u64::from(u32::MAX)
                };
                let ranges = all
                    .iter()
                    .take(MAX_RANGES)
                    .map(|&(a, b)| {
                        (
                            a.min(u64::from(u32::MAX)) as u32,
                            b.min(u64::from(u32::MAX)) as u32,
                        )
                    })
                    .collect();
                Status {
                    transfer: t,
                    settled,
                    state: StatusState::Partial,
                    upto: upto as u32,
                    ranges,
                }
            }
        }
    }

    fn build_ack(&self) -> AckRanges {
        let largest = self.rx_largest;
        // Below what this incarnation saw, or what the sender no longer asks about, say nothing.
        let floor = self
            .peer_floor
            .max(self.rx_known_from.unwrap_or(largest))
            .min(largest);
        let mut ranges = Vec::new();
        let mut low = floor;
        for (s, e) in self.rx.iter().rev() {
            if e <= floor {
                break;
            }
            if ranges.len() == MAX_RANGES {
                // Truncated: the ranges speak only down to the last one included.
                low = ranges.last().map_or(floor, |&(lo, _)| lo);
                break;
            }
            ranges.push((s.max(floor), e - 1));
        }
        AckRanges {
            largest,
            settled: self.settled.min(largest),
            low,
            ranges,
        }
    }

    fn advance_settled(&mut self, now: Instant) {
        let before = self.settled;
        while let Some(&(pn, at)) = self.arrivals.front() {
            if now < at + self.config.reorder_window {
                break;
            }
            self.arrivals.pop_front();
            self.settled = self.settled.max(pn);
        }
        if self.settled > before
            && !self
                .rx
                .gaps(
                    before.max(self.peer_floor).saturating_add(1),
                    self.settled.saturating_add(1),
                )
                .is_empty()
        {
            // A loss has settled: tell the sender now.
            self.ack_due = Some(now);
        }
    }

    fn persist(&mut self, _now: Instant, t: u64) {
        let Some(s) = self.spools.get_mut(&t) else {
            return;
        };
        let ranges: Vec<(u32, u32)> = s
            .received
            .iter()
            .map(|(a, b)| {
                (
                    a.min(u64::from(u32::MAX)) as u32,
                    b.min(u64::from(u32::MAX)) as u32,
                )
            })
            .collect();
        if self
            .store
            .spool_persist(t, s.offer.as_ref(), &ranges)
            .is_err()
        {
            self.stats.store_errors += 1;
            return;
        }
        s.dirty = 0;
        s.dirty_since = None;
        self.save_replay_floor(true);
    }

    fn persist_all(&mut self, now: Instant, force: bool) {
        let due: Vec<u64> = self
            .spools
            .iter()
            .filter(|(_, s)| {
                s.dirty_since.is_some()
                    && (force
                        || s.dirty >= self.config.persist_bytes
                        || s.dirty_since
                            .is_some_and(|d| now >= d + self.config.persist_interval))
            })
            .map(|(&t, _)| t)
            .collect();
        for t in due {
            self.persist(now, t);
        }
    }

    fn save_replay_floor(&mut self, force: bool) {
        let Some(h) = self.opener.highest() else {
            return;
        };
        if force || h >= self.replay_saved + 4096 {
            self.counters.replay_floor = Some(h);
            self.replay_saved = h;
            if self.store.save_counters(&self.counters).is_err() {
                self.stats.store_errors += 1;
            }
        }
    }
}

/// Packets needed for `size` bytes at `packet_size` each.
pub fn packet_count(size: u64, packet_size: usize) -> u32 {
    size.div_ceil(packet_size as u64).min(u64::from(u32::MAX)) as u32
}
