use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use wire::{Ack, DataChunk, Frame, MAX_MESSAGE, MAX_SACK_RANGES};

/// How a [`Channel`] behaves. No `Default`: a driver states each value.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// This side's incarnation id: random, drawn once per process start, never 0.
    pub incarnation: u64,
    /// Payload bytes per data chunk (at most [`Frame::MAX_PAYLOAD`]).
    pub chunk_size: usize,
    /// Chunks sent and not yet acknowledged, at most.
    pub window: usize,
    /// Retransmission timeout before the first round-trip time is measured.
    pub initial_rto: Duration,
    /// Send rate limit in bytes per second of datagrams, or none.
    pub rate_bytes_per_sec: Option<u64>,
    /// How long a receiver may hold back an acknowledgement.
    pub ack_delay: Duration,
}

/// Counters for observation and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Data chunks sent for the first time.
    pub chunks_sent: u64,
    /// Data chunks sent again.
    pub chunks_resent: u64,
    /// Acknowledgements sent.
    pub acks_sent: u64,
    /// Datagrams that failed to decode.
    pub frames_rejected: u64,
    /// Data for another incarnation of this side, dropped.
    pub frames_stale: u64,
    /// Messages delivered.
    pub messages_delivered: u64,
    /// Times the peer was seen to restart.
    pub peer_restarts: u64,
}

/// A reliable ordered message stream to one peer. See the crate documentation.
#[derive(Debug)]
pub struct Channel {
    config: ChannelConfig,
    /// The peer's incarnation as last seen; 0 before first contact.
    peer: u64,
    tx: Sender,
    rx: Receiver,
    stats: ChannelStats,
}

#[derive(Debug)]
struct Sender {
    /// Messages not yet fully acknowledged, oldest first, with their first chunk's seq once
    /// chunked.
    messages: VecDeque<OutMessage>,
    /// Chunks in flight or waiting for retransmission, by seq.
    in_flight: BTreeMap<u64, InFlight>,
    next_seq: u64,
    /// Every seq below this is acknowledged.
    acked_below: u64,
    srtt: Option<Duration>,
    backoff: u32,
    tokens: f64,
    last_refill: Option<Instant>,
    last_probe: Option<Instant>,
}

#[derive(Debug)]
struct OutMessage {
    bytes: Vec<u8>,
    /// Seq of the chunk after this message's last, once chunked.
    end_seq: Option<u64>,
    /// Bytes already cut into chunks.
    cut: usize,
}

#[derive(Debug)]
struct InFlight {
    payload: Vec<u8>,
    last: bool,
    sent_at: Option<Instant>,
    resent: bool,
    sacked: bool,
}

#[derive(Debug)]
struct Receiver {
    /// The sender incarnation whose stream this tracks; 0 for none.
    sender: u64,
    next_expected: u64,
    out_of_order: BTreeMap<u64, DataChunk>,
    partial: Vec<u8>,
    /// The partial message overflowed [`MAX_MESSAGE`]; drop until its last chunk.
    discarding: bool,
    delivered: VecDeque<Vec<u8>>,
    ack_due: Option<Instant>,
    unacked_chunks: u32,
    /// Reply to a peer that does not know us yet, once.
    hello_due: bool,
}

impl Channel {
    /// A channel that has heard nothing from its peer yet.
    pub fn new(config: ChannelConfig) -> Channel {
        assert!(config.incarnation != 0, "incarnation 0 means unknown");
        let chunk_size = config.chunk_size.clamp(1, Frame::MAX_PAYLOAD);
        Channel {
            config: ChannelConfig {
                chunk_size,
                window: config.window.max(1),
                ..config
            },
            peer: 0,
            tx: Sender {
                messages: VecDeque::new(),
                in_flight: BTreeMap::new(),
                next_seq: 0,
                acked_below: 0,
                srtt: None,
                backoff: 0,
                tokens: 0.0,
                last_refill: None,
                last_probe: None,
            },
            rx: Receiver {
                sender: 0,
                next_expected: 0,
                out_of_order: BTreeMap::new(),
                partial: Vec::new(),
                discarding: false,
                delivered: VecDeque::new(),
                ack_due: None,
                unacked_chunks: 0,
                hello_due: false,
            },
            stats: ChannelStats::default(),
        }
    }

    // --- getters ---

    /// Counters since the channel was made.
    pub fn stats(&self) -> &ChannelStats {
        &self.stats
    }

    /// The peer's incarnation, once heard from.
    pub fn peer(&self) -> Option<u64> {
        (self.peer != 0).then_some(self.peer)
    }

    /// Bytes of messages queued or in flight, not yet acknowledged.
    pub fn unacked_bytes(&self) -> usize {
        self.tx.messages.iter().map(|m| m.bytes.len()).sum()
    }

    /// Whether everything queued has been acknowledged.
    pub fn is_idle(&self) -> bool {
        self.tx.messages.is_empty()
    }

    // --- application commands ---

    /// Queues a message (at most [`MAX_MESSAGE`] bytes; longer ones are the caller's bug and are
    /// dropped).
    pub fn send(&mut self, message: Vec<u8>) {
        if message.len() > MAX_MESSAGE {
            return;
        }
        self.tx.messages.push_back(OutMessage {
            bytes: message,
            end_seq: None,
            cut: 0,
        });
    }

    // --- inputs ---

    /// Feeds one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        let frame = match Frame::decode(datagram) {
            Ok(f) => f,
            Err(_) => {
                self.stats.frames_rejected += 1;
                return;
            }
        };
        let (session, peer_session) = match &frame {
            Frame::Data {
                session,
                peer_session,
                ..
            }
            | Frame::Ack {
                session,
                peer_session,
                ..
            } => (*session, *peer_session),
        };
        if session == 0 {
            self.stats.frames_rejected += 1;
            return;
        }
        if session != self.peer {
            if self.peer != 0 {
                self.stats.peer_restarts += 1;
            }
            self.peer = session;
            self.restart_stream();
        }
        match frame {
            Frame::Data { chunk, .. } => {
                if peer_session != self.config.incarnation {
                    // Meant for an earlier incarnation of ours, or the peer does not know us:
                    // say who we are.
                    self.stats.frames_stale += 1;
                    self.rx.hello_due = true;
                    return;
                }
                self.receive_chunk(now, chunk);
            }
            Frame::Ack { ack, .. } => {
                if peer_session == self.config.incarnation {
                    self.receive_ack(now, &ack);
                }
            }
        }
    }

    /// Tells the channel that `now` has passed its deadline. Retransmissions and delayed
    /// acknowledgements are decided in [`Channel::poll_transmit`]; this only records time.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.refill(now);
    }

    // --- outputs ---

    /// The next datagram to send, if any is due now.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some(ack) = self.poll_ack(now) {
            return Some(ack);
        }
        self.refill(now);
        if self.config.rate_bytes_per_sec.is_some() && self.tx.tokens < 1.0 {
            return None;
        }
        let datagram = self.poll_data(now)?;
        if self.config.rate_bytes_per_sec.is_some() {
            self.tx.tokens -= datagram.len() as f64;
        }
        Some(datagram)
    }

    /// The next message received whole, in order.
    #[must_use]
    pub fn poll_message(&mut self) -> Option<Vec<u8>> {
        self.rx.delivered.pop_front()
    }

    /// When the channel next needs [`Channel::handle_timeout`] (and a round of
    /// [`Channel::poll_transmit`]); `None` when nothing is pending.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = self.rx.ack_due;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if self.tx.messages.is_empty() {
            return next;
        }
        let rto = self.rto();
        if self.peer == 0 {
            if let Some(p) = self.tx.last_probe {
                consider(p + rto);
            }
            return next;
        }
        for f in self.tx.in_flight.values() {
            if !f.sacked
                && let Some(at) = f.sent_at
            {
                consider(at + rto);
            }
        }
        if let (Some(rate), Some(last)) = (self.config.rate_bytes_per_sec, self.tx.last_refill)
            && self.tx.tokens < 1.0
            && rate > 0
        {
            let wait = (1.0 - self.tx.tokens) / rate as f64;
            consider(last + Duration::from_secs_f64(wait.max(0.0001)));
        }
        next
    }

    // --- internals ---

    fn rto(&self) -> Duration {
        let base = match self.tx.srtt {
            Some(s) => (s * 2 + Duration::from_millis(20)).max(Duration::from_millis(50)),
            None => self.config.initial_rto,
        };
        (base * 2u32.saturating_pow(self.tx.backoff.min(5))).min(Duration::from_secs(10))
    }

    fn refill(&mut self, now: Instant) {
        let Some(rate) = self.config.rate_bytes_per_sec else {
            return;
        };
        let burst = (self.config.chunk_size as f64 * 4.0).max(rate as f64 / 50.0);
        if let Some(last) = self.tx.last_refill {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tx.tokens = (self.tx.tokens + dt * rate as f64).min(burst);
        } else {
            self.tx.tokens = burst;
        }
        self.tx.last_refill = Some(now);
    }

    /// The peer is a new incarnation: every message it has not fully acknowledged goes again
    /// from seq 0.
    fn restart_stream(&mut self) {
        let tx = &mut self.tx;
        tx.in_flight.clear();
        tx.next_seq = 0;
        tx.acked_below = 0;
        tx.backoff = 0;
        for m in &mut tx.messages {
            m.end_seq = None;
            m.cut = 0;
        }
    }

    fn receive_chunk(&mut self, now: Instant, chunk: DataChunk) {
        let rx = &mut self.rx;
        if self.peer != rx.sender {
            rx.sender = self.peer;
            rx.next_expected = 0;
            rx.out_of_order.clear();
            rx.partial.clear();
            rx.discarding = false;
        }
        let limit = rx.next_expected + 4 * self.config.window as u64;
        if chunk.seq < rx.next_expected || chunk.seq >= limit {
            // A duplicate (or beyond any window): acknowledge at once so the sender stops.
            rx.ack_due = Some(now);
            return;
        }
        let in_order = chunk.seq == rx.next_expected;
        rx.out_of_order.insert(chunk.seq, chunk);
        while let Some(c) = rx.out_of_order.remove(&rx.next_expected) {
            rx.next_expected += 1;
            if !rx.discarding {
                if rx.partial.len() + c.payload.len() > MAX_MESSAGE {
                    rx.discarding = true;
                    rx.partial = Vec::new();
                } else {
                    rx.partial.extend_from_slice(&c.payload);
                }
            }
            if c.last {
                if rx.discarding {
                    rx.discarding = false;
                } else {
                    rx.delivered.push_back(std::mem::take(&mut rx.partial));
                    self.stats.messages_delivered += 1;
                }
            }
        }
        rx.unacked_chunks += 1;
        let due = if !in_order || rx.unacked_chunks >= 8 {
            now
        } else {
            now + self.config.ack_delay
        };
        rx.ack_due = Some(rx.ack_due.map_or(due, |d| d.min(due)));
    }

    fn receive_ack(&mut self, now: Instant, ack: &Ack) {
        let tx = &mut self.tx;
        if ack.next_expected > tx.next_seq {
            return; // acknowledges chunks never sent: not for this stream
        }
        let mut progressed = false;
        while let Some((&seq, _)) = tx.in_flight.first_key_value() {
            if seq >= ack.next_expected {
                break;
            }
            if let Some(f) = tx.in_flight.remove(&seq) {
                progressed = true;
                if let (false, Some(at)) = (f.resent, f.sent_at) {
                    let sample = now.saturating_duration_since(at);
                    tx.srtt = Some(match tx.srtt {
                        Some(s) => (s * 7 + sample) / 8,
                        None => sample,
                    });
                }
            }
        }
        for &(s, e) in &ack.ranges {
            for (_, f) in tx.in_flight.range_mut(s..e) {
                f.sacked = true;
            }
        }
        tx.acked_below = tx.acked_below.max(ack.next_expected);
        if progressed {
            tx.backoff = 0;
        }
        while let Some(m) = tx.messages.front() {
            match m.end_seq {
                Some(end) if end <= tx.acked_below => {
                    tx.messages.pop_front();
                }
                _ => break,
            }
        }
    }

    fn poll_ack(&mut self, now: Instant) -> Option<Vec<u8>> {
        let rx = &mut self.rx;
        if rx.hello_due {
            rx.hello_due = false;
            self.stats.acks_sent += 1;
            return Some(
                Frame::Ack {
                    session: self.config.incarnation,
                    peer_session: 0,
                    ack: Ack {
                        next_expected: 0,
                        ranges: Vec::new(),
                    },
                }
                .encode(),
            );
        }
        let due = rx.ack_due?;
        if due > now {
            return None;
        }
        rx.ack_due = None;
        rx.unacked_chunks = 0;
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &seq in rx.out_of_order.keys() {
            match ranges.last_mut() {
                Some((_, end)) if *end == seq => *end += 1,
                _ => {
                    if ranges.len() == MAX_SACK_RANGES {
                        break;
                    }
                    ranges.push((seq, seq + 1));
                }
            }
        }
        self.stats.acks_sent += 1;
        Some(
            Frame::Ack {
                session: self.config.incarnation,
                peer_session: rx.sender,
                ack: Ack {
                    next_expected: rx.next_expected,
                    ranges,
                },
            }
            .encode(),
        )
    }

    fn poll_data(&mut self, now: Instant) -> Option<Vec<u8>> {
        let rto = self.rto();
        if self.peer == 0 {
            // Nobody heard yet: probe with the first chunk once per timeout.
            if self.tx.messages.is_empty() || self.tx.last_probe.is_some_and(|p| now < p + rto) {
                return None;
            }
            self.tx.last_probe = Some(now);
            self.fill_window();
            let (&seq, f) = self.tx.in_flight.first_key_value()?;
            return Some(self.data_frame(seq, &f.payload.clone(), f.last));
        }
        // Retransmit the oldest chunk whose timer ran out.
        let expired = self
            .tx
            .in_flight
            .iter()
            .find(|(_, f)| !f.sacked && f.sent_at.is_some_and(|at| now >= at + rto))
            .map(|(&s, _)| s);
        if let Some(seq) = expired {
            let f = self.tx.in_flight.get_mut(&seq)?;
            f.sent_at = Some(now);
            f.resent = true;
            let (payload, last) = (f.payload.clone(), f.last);
            self.tx.backoff += 1;
            self.stats.chunks_resent += 1;
            return Some(self.data_frame(seq, &payload, last));
        }
        self.fill_window();
        let seq = self
            .tx
            .in_flight
            .iter()
            .find(|(_, f)| f.sent_at.is_none())
            .map(|(&s, _)| s)?;
        let f = self.tx.in_flight.get_mut(&seq)?;
        f.sent_at = Some(now);
        let (payload, last) = (f.payload.clone(), f.last);
        self.stats.chunks_sent += 1;
        Some(self.data_frame(seq, &payload, last))
    }

    /// Cuts queued messages into chunks until the window is full.
    fn fill_window(&mut self) {
        let chunk_size = self.config.chunk_size;
        let tx = &mut self.tx;
        for m in tx.messages.iter_mut() {
            if m.end_seq.is_some() {
                continue;
            }
            while tx.in_flight.len() < self.config.window {
                let end = (m.cut + chunk_size).min(m.bytes.len());
                let last = end == m.bytes.len();
                tx.in_flight.insert(
                    tx.next_seq,
                    InFlight {
                        payload: m.bytes[m.cut..end].to_vec(),
                        last,
                        sent_at: None,
                        resent: false,
                        sacked: false,
                    },
                );
                tx.next_seq += 1;
                m.cut = end;
                if last {
                    m.end_seq = Some(tx.next_seq);
                    break;
                }
            }
            if m.end_seq.is_none() {
                break;
            }
        }
    }

    fn data_frame(&self, seq: u64, payload: &[u8], last: bool) -> Vec<u8> {
        Frame::Data {
            session: self.config.incarnation,
            peer_session: self.peer,
            chunk: DataChunk {
                seq,
                last,
                payload: payload.to_vec(),
            },
        }
        .encode()
    }
}
