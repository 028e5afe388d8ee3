//! Receiving: incoming datagrams (opened, decoded and dispatched), spools and their commit once
//! the digest verifies, the inbox and in-order message delivery, the acknowledgements this side
//! owes, and the settled mark (below it, a missing packet is lost).

use std::time::Instant;

use wire::{
    AckRanges, Chunk, MAX_RANGES, Offer, PacketError, Status, StatusState, TransferKind,
    decode_chunks,
};

use super::{
    COMMITTED_MEMORY, EXPIRY_CHECK, Event, MAX_ACK_DELAY, MAX_ARRIVALS, MAX_RX_RANGES, MAX_SPOOLS,
    OFFERLESS_WINDOW, REFUSED_MEMORY, Session, Spool, packet_count,
};
use crate::ranges::RangeSet;
use crate::store::Commit;

impl Session {
    // --- application commands ---

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
        let opened = match self.opener.open(datagram) {
            Ok(x) => x,
            Err(e) => {
                let s = &mut self.stats;
                *match e {
                    PacketError::Oversized => &mut s.rejected_oversized,
                    PacketError::Truncated => &mut s.rejected_truncated,
                    PacketError::Forged => &mut s.rejected_forged,
                    PacketError::Replayed => &mut s.rejected_replayed,
                    _ => &mut s.rejected_unknown,
                } += 1;
                return;
            }
        };
        let pn = opened.pn;
        let chunks = match decode_chunks(&opened.body) {
            Ok(c) => c,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        if !opened.proven
            && !self.receive_from_candidate(now, pn, opened.epoch, opened.new_candidate, &chunks)
        {
            return;
        }
        // Nothing of a packet of the current epoch is handled before the saved replay mark
        // covers its number: a crash after this point must not let a recording of it in again.
        if !self.reserve_replay() {
            return;
        }
        self.stats.packets_received += 1;
        self.rx.insert_one(pn);
        self.rx_known_from = Some(self.rx_known_from.map_or(pn, |k| k.min(pn)));
        if self.rx.range_count() > MAX_RX_RANGES {
            let drop_below = self.rx.iter().nth(MAX_RX_RANGES / 2).map_or(0, |(s, _)| s);
            self.rx.remove_below(drop_below);
            self.rx_known_from = self.rx_known_from.map(|k| k.max(drop_below));
        }
        if pn > self.rx_largest || self.largest_at.is_none() {
            self.largest_at = Some(now);
        }
        self.rx_largest = self.rx_largest.max(pn);
        self.arrivals.push_back((pn, now));
        if self.arrivals.len() > MAX_ARRIVALS
            && let Some((p, _)) = self.arrivals.pop_front()
        {
            self.settled = self.settled.max(p);
        }
        let mut ack_eliciting = false;
        // Whether a transfer's first data came: acknowledged without the usual spacing, so that
        // its sender measures the path's round trip on a packet no queue held.
        let mut first_data = false;
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
                    let new = self
                        .spools
                        .get(&transfer)
                        .is_none_or(|s| s.received.is_empty());
                    if self.receive_data(now, transfer, index, &payload) {
                        first_data |= new;
                        touched.push(transfer);
                    }
                }
                Chunk::Offer(o) => {
                    let t = o.transfer;
                    if self.receive_offer(now, o) {
                        touched.push(t);
                    }
                }
                Chunk::Ack(a) => self.receive_ack(now, &a),
                Chunk::Status(s) => self.receive_status(&s),
                Chunk::Hello {
                    incarnation,
                    resume,
                    unacked_seq,
                    replay_floor,
                    datagram_bytes,
                } => {
                    self.number_above(replay_floor);
                    self.receive_hello(pn, incarnation, &resume, unacked_seq, datagram_bytes);
                }
                Chunk::HelloAck {
                    incarnation,
                    hello_pn,
                    next_transfer,
                    next_seq,
                } => {
                    if incarnation == self.config.incarnation {
                        self.receive_hello_ack(hello_pn, next_transfer, next_seq);
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
                Chunk::Refuse { transfer, reason } => self.receive_refusal(transfer, reason),
            }
        }
        if ack_eliciting {
            let mut pace = self.arrival_gap;
            if let Some(last) = self.last_arrival {
                let gap = now.saturating_duration_since(last);
                self.arrival_gap = Some(self.arrival_gap.map_or(gap, |g| (g * 7 + gap) / 8));
                // Arrivals that speed up (a sender finding the link's rate after a pause) are
                // answered at their new pace, not at the average's, which lags behind.
                pace = self.arrival_gap.map(|g| g.min(gap));
            }
            self.last_arrival = Some(now);
            self.ack_pending += 1;
            let delay = match pace {
                Some(g) if !first_data => (g * 8).clamp(self.config.ack_delay, MAX_ACK_DELAY),
                _ => self.config.ack_delay,
            };
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
    }

    /// A candidate epoch of the peer proved itself and was promoted: the peer restarted, and its
    /// old epoch's packets are refused from now on. When its packet numbers went back (it lost or
    /// restored its counters: nonces stay unique under the new subkey), what this side tracked
    /// of the old numbering is meaningless, and it starts over; the peer's Hello, first in its
    /// new run, resumes the transfers.
    pub(super) fn peer_epoch_changed(&mut self, pn: u64) {
        if pn > self.rx_largest {
            return;
        }
        self.rx = RangeSet::new();
        self.rx_largest = 0;
        self.largest_at = None;
        self.rx_known_from = None;
        self.arrivals.clear();
        self.settled = 0;
        self.peer_floor = 0;
        self.pending_status.clear();
        self.ack_pending = 0;
        self.ack_due = None;
    }

    /// Queues an acknowledgement, at the front, when one is due.
    pub(super) fn queue_ack(&mut self, now: Instant) {
        if self.ack_due.is_some_and(|d| now >= d) && self.rx_largest > 0 {
            self.ack_due = None;
            self.ack_pending = 0;
            let ack = self.build_ack(now);
            self.control.push_front(Chunk::Ack(ack));
        }
    }

    // --- internals: receiving ---

    fn receive_data(&mut self, now: Instant, transfer: u64, index: u32, payload: &[u8]) -> bool {
        if self.committed.contains(&transfer) {
            self.stats.duplicates += 1;
            self.stats.payload_duplicate += payload.len() as u64;
            self.queue_committed(transfer);
            return false;
        }
        if self.queue_refusal(transfer) {
            return false;
        }
        let p = self.packet_size;
        // Judged before a spool is made for it: what lies outside the transfer (or, before its
        // offer, beyond the first few packets) takes no room at all.
        match self.spools.get(&transfer).and_then(|s| s.offer.as_ref()) {
            Some(o) => {
                let offset = u64::from(index) * p as u64;
                if offset >= o.size || payload.len() as u64 != (o.size - offset).min(p as u64) {
                    self.stats.malformed += 1;
                    return false;
                }
            }
            None if payload.is_empty() || payload.len() > p => {
                self.stats.malformed += 1;
                return false;
            }
            // Before its offer nothing bounds a transfer: only the packets an offer overtaken
            // on the way could be followed by are taken (the sender offers again when the
            // packet that carried it is lost, and what this dropped is asked for again once the
            // offer has come, like any gap).
            None if index >= OFFERLESS_WINDOW => {
                self.stats.data_before_offer += 1;
                return false;
            }
            None => {}
        }
        if !self.make_room_for(transfer) {
            return false;
        }
        let running = self.running(now);
        let spool = self.spools.entry(transfer).or_insert_with(|| Spool {
            offer: None,
            received: RangeSet::new(),
            dirty: 0,
            dirty_since: None,
            progress_at: running,
        });
        spool.progress_at = running;
        if spool.received.contains(u64::from(index)) {
            self.stats.duplicates += 1;
            self.stats.payload_duplicate += payload.len() as u64;
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

    fn receive_offer(&mut self, now: Instant, o: Offer) -> bool {
        let t = o.transfer;
        if matches!(o.kind, TransferKind::Message { .. }) && o.size > wire::MAX_MESSAGE as u64 {
            // No message is longer (the sender refuses to queue one): a spool must not be.
            self.stats.malformed += 1;
            return false;
        }
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
        let first_offer = self.spools.get(&t).is_none_or(|s| s.offer.is_none());
        if o.kind == TransferKind::Object && first_offer {
            // Room is judged once, on the declared size, when the offer first comes (again, for
            // one refused before: room may have been freed since).
            if let Err(reason) = self.store.admit(&o) {
                self.refuse(&o, reason);
                return false;
            }
            if self.refused.remove(&t).is_some() {
                self.refused_order.retain(|&r| r != t);
            }
        }
        if !self.make_room_for(t) {
            return false;
        }
        let running = self.running(now);
        let spool = self.spools.entry(t).or_insert_with(|| Spool {
            offer: None,
            received: RangeSet::new(),
            dirty: 0,
            dirty_since: None,
            progress_at: running,
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

    /// Refuses the peer's object transfer `o` (the store has no room for it): whatever was
    /// spooled of it is dropped, the refusal remembered and sent, and the application told once.
    fn refuse(&mut self, o: &Offer, reason: String) {
        let t = o.transfer;
        if self.spools.remove(&t).is_some() && self.store.spool_drop(t).is_err() {
            self.stats.store_errors += 1;
        }
        if self.refused.remove(&t).is_some() {
            // Refused again (it was offered again): the most recent now.
            self.refused_order.retain(|&r| r != t);
        } else {
            self.stats.offers_refused += 1;
            self.events.push_back(Event::ObjectDeclined {
                digest: o.digest,
                size: o.size,
                reason: reason.clone(),
            });
        }
        if self.refused_order.len() >= REFUSED_MEMORY
            && let Some(oldest) = self.refused_order.pop_front()
        {
            self.refused.remove(&oldest);
        }
        self.refused_order.push_back(t);
        self.refused.insert(t, reason);
        self.queue_refusal(t);
    }

    /// When transfer `t` was refused, queues the refusal (once in the queue) and returns true.
    pub(super) fn queue_refusal(&mut self, t: u64) -> bool {
        let Some(reason) = self.refused.get(&t) else {
            return false;
        };
        if !self.control.has_refusal(t) {
            let reason = reason.clone();
            self.control.push_back(Chunk::Refuse {
                transfer: t,
                reason,
            });
        }
        true
    }

    /// Drops the spools that made no progress for the `spool_expiry` of running time (looked at
    /// once every [`EXPIRY_CHECK`]), freeing their space, and saves the running time while some
    /// wait. Their sender, if it comes back, hears "unknown" (or a status without what was
    /// dropped) and sends the transfer again from nothing.
    pub(super) fn expire_spools(&mut self, now: Instant) {
        let running = self.running(now);
        if self
            .expiry_checked_at
            .is_some_and(|c| now < c + EXPIRY_CHECK)
        {
            return;
        }
        self.expiry_checked_at = Some(now);
        let expiry = self.config.spool_expiry;
        let stale: Vec<u64> = self
            .spools
            .iter()
            .filter(|(_, s)| running.saturating_sub(s.progress_at) >= expiry)
            .map(|(&t, _)| t)
            .collect();
        for t in stale {
            self.spools.remove(&t);
            self.stats.spools_expired += 1;
            if self.store.spool_drop(t).is_err() {
                self.stats.store_errors += 1;
            }
        }
        // The clock spools are judged by, saved while they wait: a restart goes on from here
        // (a crash loses at most one check's worth).
        if !self.spools.is_empty() && running > self.counters.running {
            self.counters.running = running;
            if self.store.save_counters(&self.counters).is_err() {
                self.stats.store_errors += 1;
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
        let Some((&victim, _)) = self.spools.iter().min_by_key(|(_, s)| s.progress_at) else {
            return false;
        };
        self.spools.remove(&victim);
        if self.store.spool_drop(victim).is_err() {
            self.stats.store_errors += 1;
        }
        true
    }

    fn try_commit(&mut self, now: Instant, t: u64) {
        let p = self.packet_size;
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

    pub(super) fn deliver_messages(&mut self) {
        // Below the peer's unacknowledged mark, a message missing from the inbox was delivered
        // before this side lost the mark of it (a lost or restored counters file): skip it.
        while self.next_emit < self.peer_unacked_seq && !self.inbox.contains_key(&self.next_emit) {
            self.next_emit += 1;
        }
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
        if !self.control.has_status(t) {
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

    pub(super) fn status_of(&self, t: u64) -> Status {
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
                    // Data alone began it (its offer was lost, or came before the spool was
                    // dropped): the sender must offer it again, or what follows the first
                    // packets would be dropped for good.
                    state: if s.offer.is_some() {
                        StatusState::Partial
                    } else {
                        StatusState::Offerless
                    },
                    upto: upto as u32,
                    ranges,
                }
            }
        }
    }

    fn build_ack(&self, now: Instant) -> AckRanges {
        let largest = self.rx_largest;
        let delay_ms = self
            .largest_at
            .map_or(0, |t| now.saturating_duration_since(t).as_millis() as u64);
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
            delay_ms,
            ranges,
        }
    }

    pub(super) fn advance_settled(&mut self, now: Instant) {
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
}
