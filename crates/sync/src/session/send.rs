//! Sending: the application's commands (messages and objects), the outbox, building each packet
//! (control chunks, then lost and new data by priority and age), probing transfers whose fate is
//! unknown, and what the receiver says about our transfers (acknowledgements and statuses).

use std::collections::BTreeSet;
use std::io;
use std::time::{Duration, Instant};

use wire::{
    AckRanges, Chunk, Digest, MAX_LIST, Offer, Status, StatusState, TransferKind, chunk_len,
    data_chunk_len, encode_chunk, encode_last_data,
};

use super::{
    Event, HWM_RESERVATION, MAX_ACK_DELAY, MAX_OUT, Out, PN_RESERVATION, Sent, Session,
    packet_count,
};
use crate::ranges::RangeSet;
use crate::store::OutboxEntry;

impl Session {
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

    // --- outputs ---

    /// The next datagram to send now, if any.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.give_up_on_marks(now);
        self.advance_settled(now);
        if !self.link_up {
            return None;
        }
        self.refill(now);
        if self.tokens <= 0.0 {
            return None;
        }
        self.in_flight
            .go_silent(now, self.pto() * super::pacing::SILENT_PTOS);
        self.queue_control(now);
        let mut body = Vec::with_capacity(self.max_body);
        let mut handshake = 0usize;
        let mut hello = false;
        // A full data chunk leaves no room for control beside it: after a packet of control only
        // while data waited, the next carries data only, so that control (answers to a storm of
        // replayed handshakes, say) never starves the transfers.
        let mut data = Vec::new();
        let mut offered = Vec::new();
        if std::mem::take(&mut self.data_turn) {
            data = self.fill_data(now, &mut body, &mut offered);
        }
        while data.is_empty()
            && let Some(mut len) = self.control.front().map(chunk_len)
        {
            if len > self.max_body {
                // Longer than any packet of this link carries (small datagrams): cut to fit one.
                let c = self.control.pop_front()?;
                if let Some(c) = cut_to(c, self.max_body) {
                    len = chunk_len(&c);
                    self.control.push_front(c);
                } else {
                    self.stats.malformed += 1;
                    continue;
                }
            }
            if body.len() + len > self.max_body {
                break;
            }
            let Some(c) = self.control.front() else {
                break;
            };
            if matches!(
                c,
                Chunk::Hello { .. }
                    | Chunk::HelloAck { .. }
                    | Chunk::Status(_)
                    | Chunk::StatusRequest { .. }
            ) {
                handshake += len;
                hello |= matches!(c, Chunk::Hello { .. } | Chunk::HelloAck { .. });
            }
            let c = self.control.pop_front()?;
            encode_chunk(&c, &mut body);
        }
        if data.is_empty() {
            data = self.fill_data(now, &mut body, &mut offered);
            self.data_turn = data.is_empty() && !body.is_empty() && self.data_waiting();
        }
        if body.is_empty() {
            return None;
        }
        let pn = self.take_pn()?;
        if !offered.is_empty() {
            if self.offers_in_flight.len() >= MAX_OUT {
                self.offers_in_flight.pop_first();
            }
            self.offers_in_flight.insert(pn, offered);
        }
        let packet = self.seal(pn, &body, hello);
        if let Some(&(transfer, index, _, _)) = data.last() {
            let state = self
                .delivery
                .on_send(now, self.in_flight.is_empty(), self.drained);
            let spare_of = self.spare_next.take();
            let mut spare = false;
            for &(transfer, index, resent, len) in &data {
                // A spare copy leaves the packet it copies in flight: whichever arrives first
                // delivers the chunk.
                spare = spare_of == Some((transfer, index));
                if let Some(old) = self.flight_by_packet.insert((transfer, index), pn)
                    && !spare
                {
                    self.in_flight.remove(old);
                }
                if spare {
                    self.stats.payload_spare += len as u64;
                } else if resent
                    && self
                        .out
                        .get_mut(&transfer)
                        .is_some_and(|o| o.maybe_unsent.remove(&index))
                {
                    self.stats.payload_unsure += len as u64;
                } else if resent {
                    self.stats.payload_resent += len as u64;
                } else {
                    self.stats.payload_sent += len as u64;
                }
            }
            if !spare {
                // New or lost data went: what is in flight may be copied again, newest first.
                self.spare_cursor = None;
                self.spare_exhausted = false;
            }
            // The packet stands in flight for its last data chunk (each chunk finds its packet
            // in `flight_by_packet`).
            self.in_flight.insert(
                pn,
                Sent {
                    transfer,
                    index,
                    at: now,
                    size: packet.len(),
                    state,
                    spare,
                },
            );
        }
        self.tokens -= packet.len() as f64;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += packet.len() as u64;
        self.stats.handshake_bytes += handshake as u64;
        Some(packet)
    }

    // --- internals: sending ---

    fn enqueue(&mut self, entry: OutboxEntry) -> io::Result<()> {
        if self.out.len() >= MAX_OUT {
            return Err(io::Error::other("too many outgoing transfers"));
        }
        self.store.outbox_put(&entry)?;
        if !self.marks_known {
            self.unconfirmed.insert(entry.offer.transfer);
        }
        let packets = packet_count(entry.offer.size, self.packet_size);
        self.out.insert(
            entry.offer.transfer,
            Out {
                entry,
                packets,
                next_new: 0,
                received: RangeSet::new(),
                acked_to: 0,
                lost: BTreeSet::new(),
                unknown: RangeSet::new(),
                unknown_bound: 0,
                maybe_unsent: BTreeSet::new(),
                offer_due: true,
                status_asked_at: None,
                last_sent_at: None,
            },
        );
        Ok(())
    }

    fn take_pn(&mut self) -> Option<u64> {
        if self.next_pn > wire::MAX_PACKET_NUMBER {
            // This run's numbers are spent (the nonce holds 48 bits): it says nothing more.
            return None;
        }
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

    /// Whether a data chunk waits to be sent (lost, or never sent yet) and may go (the peer
    /// accepts this run's packets).
    fn data_waiting(&self) -> bool {
        self.peer_accepts_run
            && self.out.iter().any(|(t, o)| {
                !self.unconfirmed.contains(t) && (!o.lost.is_empty() || o.next_new < o.packets)
            })
    }

    /// When transfer `o` next needs a status request, if it is waiting on one.
    pub(super) fn probe_due_at(&self, o: &Out, pto: Duration) -> Option<Instant> {
        let waiting =
            !o.unknown.is_empty() || (!o.offer_due && o.lost.is_empty() && o.next_new >= o.packets);
        if !waiting {
            return None;
        }
        match (o.status_asked_at, o.last_sent_at) {
            (Some(a), Some(s)) => Some(a.max(s) + pto),
            (Some(a), None) => Some(a + pto),
            (None, Some(s)) => Some(s + pto),
            // Never sent nor asked about (since a restart): due at once.
            (None, None) => self.last_refill,
        }
    }

    /// Queues acknowledgements, the hello, status answers that have settled, probes and the floor.
    fn queue_control(&mut self, now: Instant) {
        let pto = self.pto();
        self.queue_hello(now, pto);
        self.queue_status_answers();
        self.queue_probes(now, pto);
        self.queue_ack(now);
        self.queue_floor();
    }

    /// Queues a status request, with the offers, for the transfers whose probe is due.
    fn queue_probes(&mut self, now: Instant, pto: Duration) {
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
    }

    /// Tells the receiver, every 256 packet numbers, below which nothing is in flight any more.
    fn queue_floor(&mut self) {
        let floor = self.in_flight.first().unwrap_or(self.next_pn);
        if floor >= self.floor_sent + 256 {
            self.floor_sent = floor;
            self.control.push_back(Chunk::Floor { pn: floor });
        }
    }

    /// Adds data chunks to `body` while there is room: lost packets first, then new ones, by
    /// priority and age, each transfer's offer before its data when due (added to `offered`).
    /// Returns (transfer, index, resent, bytes) for each data chunk.
    fn fill_data(
        &mut self,
        now: Instant,
        body: &mut Vec<u8>,
        offered: &mut Vec<u64>,
    ) -> Vec<(u64, u32, bool, usize)> {
        let mut sent = Vec::new();
        if !self.peer_accepts_run || self.over_the_pipe(now) {
            return sent;
        }
        // Set again below when the packet fills before the data runs out.
        self.drained = true;
        let p = self.packet_size;
        let mut order: Vec<(u8, u64)> = self
            .out
            .iter()
            .filter(|(t, _)| !self.unconfirmed.contains(t))
            .map(|(&t, o)| (o.entry.offer.priority, t))
            .collect();
        order.sort_unstable();
        let mut failed = Vec::new();
        // Where the last data chunk lies in the body: (start, end, transfer, index, length).
        let mut last_data = None;
        'transfers: for (_, t) in order {
            loop {
                let Some(o) = self.out.get_mut(&t) else {
                    continue 'transfers;
                };
                if o.offer_due {
                    let c = Chunk::Offer(o.entry.offer.clone());
                    if body.len() + chunk_len(&c) > self.max_body {
                        break 'transfers;
                    }
                    encode_chunk(&c, body);
                    o.offer_due = false;
                    o.last_sent_at = Some(now);
                    offered.push(t);
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
                // It fits as the body's last chunk (without its length), or not at all; one that
                // fits only so ends the body.
                if body.len() + data_chunk_len(t, index, len, true) > self.max_body {
                    if resent {
                        o.lost.insert(index);
                    }
                    self.drained = false;
                    break 'transfers;
                }
                let ends_body = body.len() + data_chunk_len(t, index, len, false) > self.max_body;
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
                let start = body.len();
                encode_chunk(
                    &Chunk::Data {
                        transfer: t,
                        index,
                        payload,
                    },
                    body,
                );
                last_data = Some((start, body.len(), t, index, len));
                sent.push((t, index, resent, len));
                if ends_body {
                    self.drained = false;
                    break 'transfers;
                }
            }
        }
        if sent.is_empty() && failed.is_empty() && self.spare_next.is_none() {
            return self.spare_copy(now, body, offered);
        }
        // The last chunk of the body, when it is data, goes without its length.
        if let Some((start, end, t, index, len)) = last_data
            && end == body.len()
        {
            let payload = body[end - len..end].to_vec();
            body.truncate(start);
            encode_last_data(t, index, &payload, body);
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

    /// At a configured rate, when no data waits (none lost, none new), the link would idle
    /// until the receiver's acknowledgements come back, a round trip after the last packet: a
    /// loss among the packets still in flight then costs that round trip and another to repair,
    /// and more when the repair is lost too. Instead the idle time carries spare copies of the
    /// packets in flight, newest first (those whose loss would be heard of last), each at most
    /// once: the pass's rate is this link's own, so they take no time from anything else, and a
    /// packet that waits (a message, new data, a loss the receiver reports) goes before the next
    /// copy. A transfer so completes, with loss, about when it would without. Without a
    /// configured rate the link is shared with whatever the estimate measures: no copies.
    fn spare_copy(
        &mut self,
        now: Instant,
        body: &mut Vec<u8>,
        offered: &mut Vec<u64>,
    ) -> Vec<(u64, u32, bool, usize)> {
        if !self.configured_rate || self.spare_exhausted {
            return Vec::new();
        }
        let mut found = None;
        let mut cursor = self.spare_cursor;
        for (&pn, s) in self.in_flight.newest_below(self.spare_cursor) {
            cursor = Some(pn);
            if s.spare || self.flight_by_packet.get(&(s.transfer, s.index)) != Some(&pn) {
                continue;
            }
            let Some(o) = self.out.get(&s.transfer) else {
                continue;
            };
            if self.unconfirmed.contains(&s.transfer)
                || o.received.contains(u64::from(s.index))
                || o.lost.contains(&s.index)
            {
                continue;
            }
            found = Some((s.transfer, s.index));
            break;
        }
        self.spare_cursor = cursor;
        let Some((t, index)) = found else {
            self.spare_exhausted = true;
            return Vec::new();
        };
        if let Some(o) = self.out.get_mut(&t) {
            o.lost.insert(index);
        }
        self.spare_next = Some((t, index));
        let sent = self.fill_data(now, body, offered);
        if sent.is_empty() {
            // It did not fit beside the control in this packet: it is no loss, and the next
            // packet looks again.
            self.spare_next = None;
            self.spare_cursor = None;
            if let Some(o) = self.out.get_mut(&t) {
                o.lost.remove(&index);
            }
        }
        sent
    }

    // --- internals: the receiver's word about our transfers ---

    pub(super) fn receive_ack(&mut self, now: Instant, a: &AckRanges) {
        if let Some(last) = self.last_ack_at {
            let gap = now.saturating_duration_since(last).min(MAX_ACK_DELAY);
            self.ack_gap = Some(self.ack_gap.map_or(gap, |g| (g * 7 + gap) / 8));
        }
        self.last_ack_at = Some(now);
        // The peer handled a packet of this run: it holds this run's epoch.
        self.peer_accepts_run |= a.largest >= self.run_first_pn;
        self.note_peer_acked(a.largest);
        self.in_flight
            .go_silent(now, self.pto() * super::pacing::SILENT_PTOS);
        let received =
            RangeSet::from_ranges(a.ranges.iter().map(|&(lo, hi)| (lo, hi.saturating_add(1))));
        let judged: Vec<u64> = self
            .in_flight
            .range(a.low..=a.largest)
            .map(|(&pn, _)| pn)
            .collect();
        // What the acknowledgement delivers, and what the newest packet it covers took along.
        let mut delivered = 0u64;
        let mut newest = None;
        for pn in judged {
            let got = received.contains(pn);
            if !got && pn > a.settled {
                continue;
            }
            let Some(sent) = self.in_flight.remove(pn) else {
                continue;
            };
            // A copy of it is still in flight (a spare copy): that copy's fate decides.
            let copied = self
                .flight_by_packet
                .get(&(sent.transfer, sent.index))
                .is_some_and(|&p| p != pn);
            if !copied {
                self.flight_by_packet.remove(&(sent.transfer, sent.index));
            }
            if got && pn == a.largest {
                let sample = now.saturating_duration_since(sent.at);
                self.srtt = Some(self.srtt.map_or(sample, |s| (s * 7 + sample) / 8));
                // The path's own round trip: without the time the receiver held the answer.
                let held = Duration::from_millis(a.delay_ms.min(MAX_ACK_DELAY.as_millis() as u64));
                self.delivery
                    .on_rtt(now, sample.saturating_sub(held), sent.state);
            }
            if got {
                delivered += sent.size as u64;
                newest = Some(sent.state);
            }
            if let Some(o) = self.out.get_mut(&sent.transfer) {
                if got {
                    o.received.insert_one(u64::from(sent.index));
                    o.acked_to = o.acked_to.max(pn);
                } else if !copied && !o.received.contains(u64::from(sent.index)) {
                    o.lost.insert(sent.index);
                }
            }
        }
        if let Some(newest) = newest {
            self.on_delivered(now, delivered, newest);
        }
        self.judge_offers(a, &received);
    }

    /// The packets that carried offers, as acknowledgement `a` (receiving `received`) describes
    /// them: one that arrived is forgotten, one judged lost makes its offers due again (the
    /// receiver takes only [`super::OFFERLESS_WINDOW`] packets of a transfer before its offer),
    /// and one below what the acknowledgement describes is left to the probes.
    fn judge_offers(&mut self, a: &AckRanges, received: &RangeSet) {
        let judged: Vec<u64> = self
            .offers_in_flight
            .range(..=a.largest)
            .map(|(&pn, _)| pn)
            .filter(|&pn| pn < a.low || received.contains(pn) || pn <= a.settled)
            .collect();
        for pn in judged {
            let Some(transfers) = self.offers_in_flight.remove(&pn) else {
                continue;
            };
            if pn < a.low || received.contains(pn) {
                continue;
            }
            for t in transfers {
                if let Some(o) = self.out.get_mut(&t) {
                    o.offer_due = true;
                }
            }
        }
    }

    /// The peer refused object transfer `t` (no room for it): it leaves the outbox, and the
    /// application hears why. A refusal naming a message is a peer bug: messages are bounded and
    /// always taken.
    pub(super) fn receive_refusal(&mut self, t: u64, reason: String) {
        match self.out.get(&t) {
            Some(o) if o.entry.body.is_none() => {}
            Some(_) => {
                self.stats.malformed += 1;
                return;
            }
            None => return,
        }
        let Some(o) = self.out.remove(&t) else {
            return;
        };
        if self.store.outbox_remove(t).is_err() {
            self.stats.store_errors += 1;
        }
        self.in_flight.retain(|_, f| f.transfer != t);
        self.flight_by_packet.retain(|&(x, _), _| x != t);
        self.events.push_back(Event::ObjectRefused {
            digest: o.entry.offer.digest,
            reason,
        });
    }

    pub(super) fn receive_status(&mut self, s: &Status) {
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
                o.acked_to = 0;
                o.offer_due = true;
            }
            StatusState::Partial | StatusState::Offerless => {
                if s.state == StatusState::Offerless {
                    o.offer_due = true;
                }
                // Below `upto` the ranges are the receiver's whole word, once settled past every
                // acknowledgement taken (an older status may lack what a newer acknowledgement
                // said): what it lacks there it lacks, whatever acknowledgements said (its spool
                // was dropped, idle too long or evicted, and started again), and it is sent again.
                let have = RangeSet::from_ranges(
                    s.ranges
                        .iter()
                        .map(|&(a, b)| (u64::from(a), u64::from(b.min(s.upto)))),
                );
                let upto = u64::from(s.upto);
                let lost_there = have
                    .gaps(0, upto.min(u64::from(o.packets)))
                    .into_iter()
                    .any(|(a, b)| o.received.gaps(a, b) != [(a, b)]);
                if lost_there && s.settled >= o.acked_to {
                    o.received = RangeSet::from_ranges(
                        o.received
                            .iter()
                            .map(|(a, b)| (a.max(upto), b))
                            .filter(|&(a, b)| a < b),
                    );
                }
                for (a, b) in have.iter() {
                    o.received.insert(a, b);
                }
            }
        }
        let upto = if matches!(s.state, StatusState::Partial | StatusState::Offerless) {
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
                    self.in_flight.remove(pn);
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
}

/// Cuts a control chunk to at most `budget` encoded bytes, keeping what it says true: an `Ack`
/// or a `Status` describes fewer ranges (its `low` or `upto` moved to the last one kept; an
/// `Ack` keeps at least the range of its largest packet number), a `Hello` or a `StatusRequest`
/// asks about fewer transfers (the others are probed later). `None` when it cannot be cut to fit
/// (no chunk the session makes, in datagrams of at least `wire::MIN_DATAGRAM`).
fn cut_to(mut c: Chunk, budget: usize) -> Option<Chunk> {
    while chunk_len(&c) > budget {
        match &mut c {
            Chunk::Ack(a) if a.ranges.len() > 1 => {
                a.ranges.pop();
                a.low = a.ranges.last().map_or(a.low, |&(lo, _)| lo);
            }
            Chunk::Status(s) if !s.ranges.is_empty() => {
                s.ranges.pop();
                s.upto = s.ranges.last().map_or(0, |&(_, end)| end);
            }
            Chunk::Hello { resume, .. } if !resume.is_empty() => {
                resume.pop();
            }
            Chunk::StatusRequest { transfers } if !transfers.is_empty() => {
                transfers.pop();
            }
            _ => return None,
        }
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use wire::{AckRanges, Chunk, MIN_DATAGRAM, PACKET_OVERHEAD, Status, StatusState, chunk_len};

    use super::cut_to;

    /// In the smallest datagrams, the longest control chunks are cut to fit, and still say only
    /// what is true.
    #[test]
    fn control_chunks_are_cut_to_the_smallest_datagram() {
        let budget = MIN_DATAGRAM - PACKET_OVERHEAD;
        // 128 ranges far apart: about 1,000 bytes.
        let ranges: Vec<(u64, u64)> = (0..128u64)
            .map(|i| (1_000_000 - i * 5000 - 10, 1_000_000 - i * 5000))
            .collect();
        let ack = Chunk::Ack(AckRanges {
            largest: 1_000_000,
            settled: 1_000_000,
            low: 0,
            delay_ms: 0,
            ranges: ranges.clone(),
        });
        assert!(chunk_len(&ack) > budget);
        let Some(Chunk::Ack(a)) = cut_to(ack, budget) else {
            panic!("an ack is always cut to fit");
        };
        assert!(chunk_len(&Chunk::Ack(a.clone())) <= budget);
        assert_eq!(a.ranges[..], ranges[..a.ranges.len()]);
        assert_eq!(
            a.low,
            a.ranges.last().unwrap().0,
            "nothing said below the last range"
        );
        let status = Chunk::Status(Status {
            transfer: 9,
            settled: 5,
            state: StatusState::Partial,
            upto: u32::MAX,
            ranges: (0..128u32)
                .map(|i| (i * 100_000, i * 100_000 + 7))
                .collect(),
        });
        let Some(Chunk::Status(s)) = cut_to(status, budget) else {
            panic!("a status is always cut to fit");
        };
        assert!(chunk_len(&Chunk::Status(s.clone())) <= budget);
        assert_eq!(
            s.upto,
            s.ranges.last().unwrap().1,
            "described only up to the last range"
        );
        let hello = Chunk::Hello {
            incarnation: 1,
            resume: (0..64).map(|i| u64::MAX - i).collect(),
            unacked_seq: 3,
            replay_floor: Some((u64::MAX, 1 << 47)),
            datagram_bytes: 1500,
        };
        let Some(Chunk::Hello { resume, .. }) = cut_to(hello, budget) else {
            panic!("a hello is always cut to fit");
        };
        assert!(!resume.is_empty() && resume.len() < 64);
        // What cannot be cut and does not fit is not sent.
        let huge = Chunk::Data {
            transfer: 1,
            index: 0,
            payload: vec![0; budget],
        };
        assert_eq!(cut_to(huge, budget), None);
    }
}
