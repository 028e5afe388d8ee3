//! The handshake: the `Hello` this side sends at each contact (naming the transfers whose fate it
//! must learn), the peer's `Hello` (a new incarnation means the peer restarted, and what it
//! acknowledged without persisting is gone), and status answers, given once settled.
//!
//! It also carries the stream marks, so that losing the counters file (or restoring an old copy
//! of it) loses no message and reuses no transfer id: the `Hello` says below which sequence
//! number all of its sender's messages were committed by the peer, so a receiver that lost its
//! delivered mark skips what it cannot hold any more; the `HelloAck` says which transfer ids and
//! message sequence numbers of the `Hello`'s sender the peer has seen, and what this side queued
//! before hearing it waits and is renumbered above them when they are ahead of its counters.
//!
//! And it proves the peer's epochs. A packet of an epoch the opener does not know is a
//! *candidate*: the peer's new run, or a recording of a run long gone replayed by someone. Only
//! its handshake is read (`receive_from_candidate`) until it answers, with a `HelloAck`, a
//! `Hello` this run sent since the last promotion: no recording holds that. Then it becomes the
//! peer's current epoch and what a restart of the peer means is done. Both sides answer a candidate's
//! `Hello` and send their own, so two sides that restarted at once prove each other in one
//! round trip. Once the peer has answered a `Hello` of this epoch from its proven epoch, since
//! the last time a candidate appeared (the peer may have restarted and forgotten this epoch),
//! this side seals in the short form, without the epoch; packets carrying a `Hello` or
//! `HelloAck` always go in the long form, so that a peer that lost this epoch meets it again.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use wire::{Chunk, MAX_CANDIDATES, MAX_LIST, TransferKind};

use super::{CandidateHello, Event, Session, packet_count, payload_size};

use crate::ranges::RangeSet;

/// Probe timeouts transfers queued before the peer's `HelloAck` wait for it.
const MARKS_WAIT_PTOS: u32 = 3;

impl Session {
    /// Queues our `Hello` when one is pending and the last went unanswered for a probe timeout.
    pub(super) fn queue_hello(&mut self, now: Instant, pto: Duration) {
        if self.hello_pending && self.hello_sent_at.is_none_or(|t| now >= t + pto) {
            self.hello_sent_at = Some(now);
            // Only an answer to this Hello (or a later one) ends the wait: it goes in a packet
            // numbered from here.
            self.hello_asked_from = self.next_pn;
            if !self.marks_known && self.marks_deadline.is_none() {
                self.marks_deadline = Some(now + pto * MARKS_WAIT_PTOS);
            }
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
            let unacked_seq = self
                .out
                .values()
                .filter_map(|o| match o.entry.offer.kind {
                    TransferKind::Message { seq } => Some(seq),
                    TransferKind::Object => None,
                })
                .min()
                .unwrap_or(self.counters.next_message_seq)
                .min(self.counters.next_message_seq);
            self.control.push_back(Chunk::Hello {
                incarnation: self.config.incarnation,
                resume,
                unacked_seq,
                replay_floor: self.opener.floor(),
                datagram_bytes: self.config.datagram_bytes as u64,
            });
        }
    }

    /// The peer refuses this run's packets numbered at or below the floor it names (it restarted
    /// and raised its replay floor over what it may have accepted, see `persist`): the next ones
    /// are numbered above it. A floor for another epoch (an older run of this side) says nothing.
    pub(super) fn number_above(&mut self, replay_floor: Option<(u64, u64)>) {
        if let Some((epoch, floor)) = replay_floor
            && epoch == self.config.incarnation
            && floor >= self.next_pn
        {
            self.next_pn = floor.saturating_add(1);
        }
    }

    /// Queues the status answers asked for, once every packet sent before the question has had
    /// time to arrive.
    pub(super) fn queue_status_answers(&mut self) {
        let settled = self.settled;
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .pending_status
            .drain(..)
            .partition(|&(_, pn)| settled >= pn);
        self.pending_status = waiting;
        let mut answered = HashSet::new();
        for (t, _) in ready {
            // A refused transfer is answered with its refusal.
            if answered.insert(t) && !self.queue_refusal(t) {
                let s = self.status_of(t);
                self.control.push_back(Chunk::Status(s));
            }
        }
    }

    pub(super) fn receive_hello(
        &mut self,
        pn: u64,
        incarnation: u64,
        resume: &[u64],
        unacked_seq: u64,
        datagram_bytes: u64,
    ) {
        if incarnation != self.peer_incarnation {
            if self.peer_incarnation != 0 {
                self.stats.peer_restarts += 1;
                self.forget_peer();
            }
            self.peer_incarnation = incarnation;
        }
        self.apply_hello(pn, resume, unacked_seq, datagram_bytes);
        self.queue_hello_ack(incarnation, pn);
        self.hello_answered();
    }

    /// This run answers a `Hello` of the peer's live run: the answer proves this run's epoch
    /// to the peer (should it hold it as a candidate), and data may go with it or after it.
    fn hello_answered(&mut self) {
        self.peer_accepts_run = true;
    }

    /// What a `Hello` of the peer's current run says: below which sequence number its messages
    /// were committed here, which transfers it asks the fate of, and the datagrams it sends.
    fn apply_hello(&mut self, pn: u64, resume: &[u64], unacked_seq: u64, datagram_bytes: u64) {
        self.peer_datagram(datagram_bytes);
        if unacked_seq > self.peer_unacked_seq {
            self.peer_unacked_seq = unacked_seq;
            self.deliver_messages();
        }
        self.pending_status.extend(resume.iter().map(|&t| (t, pn)));
    }

    /// The peer sends datagrams of at most `peers` bytes. Both sides use the smaller of the two
    /// sizes (a datagram larger than the peer's may not cross its radio, and the payload of a
    /// data packet must be the same at both ends): a mismatch is told once a run for each size
    /// the peer says (the driver logs it), and remembered, so that a restart uses the size at
    /// once.
    fn peer_datagram(&mut self, peers: u64) {
        let peers = usize::try_from(peers)
            .unwrap_or(usize::MAX)
            .clamp(wire::MIN_DATAGRAM, wire::MAX_PACKET);
        let ours = self.config.datagram_bytes;
        let using = ours.min(peers);
        if peers != ours && self.mismatch_told != Some(peers) {
            self.mismatch_told = Some(peers);
            self.events
                .push_back(Event::DatagramMismatch { ours, peers, using });
        }
        if using != self.datagram {
            self.use_datagram(using);
        }
        if (self.counters.peer_datagram, self.counters.datagram) != (peers as u64, using as u64) {
            self.counters.peer_datagram = peers as u64;
            self.counters.datagram = using as u64;
            if self.store.save_counters(&self.counters).is_err() {
                self.stats.store_errors += 1;
            }
        }
    }

    /// Changes the datagram size in use. Indexes of data packets mean offsets only at one size,
    /// so what was cut at the other starts again: outgoing transfers are offered and sent anew
    /// from their first packet, and incoming spools are dropped (their senders, which change
    /// size as this side does, hear "unknown" and send them again). A chunk cut at the old size
    /// that still arrives and fits is caught by the digest, as any corruption is.
    pub(super) fn use_datagram(&mut self, datagram: usize) {
        self.datagram = datagram;
        self.packet_size = payload_size(datagram);
        self.max_body = datagram - wire::PACKET_OVERHEAD;
        self.delivery.set_datagram(datagram);
        for o in self.out.values_mut() {
            o.packets = packet_count(o.entry.offer.size, self.packet_size);
            o.next_new = 0;
            o.received = RangeSet::new();
            o.acked_to = 0;
            o.lost.clear();
            o.unknown = RangeSet::new();
            o.maybe_unsent.clear();
            o.offer_due = true;
            o.status_asked_at = None;
        }
        self.in_flight.clear();
        self.flight_by_packet.clear();
        self.offers_in_flight.clear();
        for (t, _) in std::mem::take(&mut self.spools) {
            if self.store.spool_drop(t).is_err() {
                self.stats.store_errors += 1;
            }
        }
    }

    /// Queues the answer to a `Hello` of `incarnation` carried by packet `hello_pn`. One answer
    /// per incarnation waits at a time (a later `Hello` updates it in place), and at most
    /// [`MAX_CANDIDATES`] to incarnations other than the peer's current one (the oldest gives
    /// way): whatever a replay sends, `control` stays bounded.
    fn queue_hello_ack(&mut self, incarnation: u64, hello_pn: u64) {
        let queued = self
            .control
            .position(|c| matches!(c, Chunk::HelloAck { incarnation: i, .. } if *i == incarnation));
        if let Some(i) = queued {
            if let Some(&Chunk::HelloAck { hello_pn: old, .. }) = self.control.get(i) {
                let ack = self.hello_ack(incarnation, hello_pn.max(old));
                self.control.replace(i, ack);
            }
            return;
        }
        if incarnation != self.peer_incarnation {
            let peer = self.peer_incarnation;
            let foreign =
                |c: &Chunk| matches!(c, Chunk::HelloAck { incarnation: i, .. } if *i != peer);
            if self.control.iter().filter(|c| foreign(c)).count() >= MAX_CANDIDATES
                && let Some(i) = self.control.position(foreign)
            {
                self.control.remove(i);
            }
        }
        let ack = self.hello_ack(incarnation, hello_pn);
        self.control.push_back(ack);
    }

    /// The answer to a `Hello` of `incarnation` carried by packet `hello_pn`: what this side has
    /// seen of the peer's transfers and messages.
    fn hello_ack(&self, incarnation: u64, hello_pn: u64) -> Chunk {
        let next_transfer = self
            .committed
            .iter()
            .chain(self.spools.keys())
            .max()
            .map_or(0, |&t| t.saturating_add(1));
        let spooled_seq = self
            .spools
            .values()
            .filter_map(|s| match s.offer.as_ref()?.kind {
                TransferKind::Message { seq } => Some(seq.saturating_add(1)),
                TransferKind::Object => None,
            })
            .max()
            .unwrap_or(0);
        let next_seq = self
            .next_emit
            .max(self.counters.delivered_seq)
            .max(
                self.inbox
                    .keys()
                    .next_back()
                    .map_or(0, |&s| s.saturating_add(1)),
            )
            .max(spooled_seq);
        Chunk::HelloAck {
            incarnation,
            hello_pn,
            next_transfer,
            next_seq,
        }
    }

    /// A `HelloAck` of the peer's proven epoch answering a `Hello` of this run.
    pub(super) fn receive_hello_ack(&mut self, hello_pn: u64, next_transfer: u64, next_seq: u64) {
        if hello_pn >= self.hello_asked_from {
            self.hello_pending = false;
        }
        if hello_pn >= self.long_from {
            // The peer's live run heard a packet sealed in this epoch since it was last unsure.
            self.short_header = true;
        }
        self.note_peer_acked(hello_pn);
        self.confirm_marks(next_transfer, next_seq);
    }

    /// Seals a packet body: in the short form once the peer knows this epoch, unless it carries
    /// a `Hello` or `HelloAck`, or its number lies so far above the highest the peer
    /// acknowledged that the peer could not read it from 16 bits (`wire::SHORT_PN_REACH`).
    pub(super) fn seal(&self, pn: u64, body: &[u8], handshake: bool) -> Vec<u8> {
        let readable = self
            .peer_acked
            .is_some_and(|a| pn < a.saturating_add(wire::SHORT_PN_REACH));
        if self.short_header && !handshake && readable {
            self.sealer.seal_short(pn, body)
        } else {
            self.sealer.seal(pn, body)
        }
    }

    /// The peer accepted this run's packet `pn` (an acknowledgement or a `HelloAck` says so; one
    /// naming a number this run never used is not believed past the last used).
    pub(super) fn note_peer_acked(&mut self, pn: u64) {
        let pn = pn.min(self.next_pn.saturating_sub(1));
        self.peer_acked = Some(self.peer_acked.map_or(pn, |p| p.max(pn)));
    }

    /// Sends a `Hello` until one queued from now on is answered (the answer to one queued
    /// before does not do); `now` sends it at once rather than a probe timeout after the last.
    pub(super) fn ask_hello(&mut self, now: bool) {
        if !self.hello_pending {
            // A Hello already sent may be answered, but it was not asked for: a new one is.
            self.hello_asked_from = u64::MAX;
        }
        self.hello_pending = true;
        if now {
            self.hello_sent_at = None;
        }
    }

    /// A packet of a candidate epoch of the peer: a restarted peer, or a replay of a run long
    /// gone. Only its handshake is read. A `HelloAck` answering a `Hello` this run sent since
    /// the last promotion is the proof that the epoch is live (a recording holds no such
    /// answer): the epoch is promoted and becomes the peer's incarnation (a restart of the peer
    /// when it is another, whatever `Hello` of it was kept), its latest `Hello` kept is applied,
    /// and the packet handled as any other (returns true). Otherwise (returns false) a `Hello` is
    /// answered, at most once a probe timeout per candidate, so that the peer can prove this
    /// side's own epoch, and remembered for the promotion, and this side sends its own `Hello`
    /// for the candidate to answer (at once for an epoch never met, at most [`MAX_CANDIDATES`]
    /// times a probe timeout); the rest is dropped unacknowledged (the peer sends it again) and the stream
    /// marks stay as they are. So a replay costs a bounded number of answers and `Hello`s a
    /// probe timeout, however fast it comes.
    pub(super) fn receive_from_candidate(
        &mut self,
        now: Instant,
        pn: u64,
        epoch: u64,
        new: bool,
        chunks: &[Chunk],
    ) -> bool {
        let proof = chunks.iter().any(|c| {
            matches!(c, Chunk::HelloAck { incarnation, hello_pn, .. }
                if *incarnation == self.config.incarnation && *hello_pn >= self.proof_floor)
        });
        if new && !proof {
            // The peer may have restarted without memory of this run's epoch: the long header,
            // until it shows it knows the epoch again. (A candidate whose first packet proves
            // it shows that at once.)
            self.short_header = false;
            self.long_from = self.next_pn;
            // (Data keeps going: `peer_accepts_run` stays, or a recording of an old run of the
            // peer replayed again and again would hold this run's data back.)
        }
        let candidates = self.opener.candidates();
        self.candidate_hellos
            .retain(|h| candidates.contains(&h.epoch));
        if proof && self.opener.promote(epoch) {
            // Answers to Hellos sent before this point prove no other epoch: the peer's older
            // runs are gone, and a recording of them must not displace this one.
            self.proof_floor = self.next_pn;
            self.stats.peer_epochs_proven += 1;
            self.peer_epoch_changed(pn);
            let hello = self
                .candidate_hellos
                .iter()
                .position(|h| h.epoch == epoch)
                .map(|i| self.candidate_hellos.swap_remove(i));
            // The run's epoch is its incarnation: a new one is a restart of the peer even if a
            // replay crowded its Hello out.
            if epoch != self.peer_incarnation {
                if self.peer_incarnation != 0 {
                    self.stats.peer_restarts += 1;
                    self.forget_peer();
                }
                self.peer_incarnation = epoch;
            }
            if let Some(h) = hello {
                self.apply_hello(h.pn, &h.resume, h.unacked_seq, h.datagram_bytes);
                self.queue_hello_ack(h.incarnation, h.pn);
                self.hello_answered();
            }
            return true;
        }
        self.stats.candidate_packets += 1;
        let pto = self.pto();
        let mut hello = false;
        for c in chunks {
            if let Chunk::Hello {
                incarnation,
                resume,
                unacked_seq,
                replay_floor,
                datagram_bytes,
            } = c
            {
                hello = true;
                // A restarted peer refuses our packets up to its floor: skipping numbers is
                // harmless, so even a candidate's word is taken.
                self.number_above(*replay_floor);
                let kept = self.candidate_hellos.iter().position(|h| h.epoch == epoch);
                let waiting = self.control.iter().any(
                    |c| matches!(c, Chunk::HelloAck { incarnation: i, .. } if i == incarnation),
                );
                let answer = waiting
                    || kept.is_none_or(|i| now >= self.candidate_hellos[i].answered_at + pto);
                if answer {
                    self.queue_hello_ack(*incarnation, pn);
                }
                // The latest Hello of each candidate still held: a later one of this epoch
                // replaces an earlier one.
                let hello = CandidateHello {
                    epoch,
                    pn,
                    incarnation: *incarnation,
                    resume: resume.clone(),
                    unacked_seq: *unacked_seq,
                    datagram_bytes: *datagram_bytes,
                    answered_at: now,
                };
                match kept {
                    None => self.candidate_hellos.push(hello),
                    Some(i) => {
                        let h = &mut self.candidate_hellos[i];
                        let answered_at = if answer { now } else { h.answered_at };
                        if pn > h.pn {
                            *h = hello;
                        }
                        h.answered_at = answered_at;
                    }
                }
            }
        }
        let rush = new
            && self
                .hello_rushed_at
                .is_none_or(|t| now >= t + pto / MAX_CANDIDATES as u32);
        if rush {
            self.hello_rushed_at = Some(now);
        }
        // A candidate that says nothing of itself (no Hello) and is not new has had this run's
        // Hellos since it appeared: asking again would only keep them coming.
        if new || hello {
            self.ask_hello(rush);
        }
        false
    }

    /// Stops holding back the transfers queued before the peer's marks once their deadline has
    /// passed: the peer hears but does not answer, and they go with the numbers they have (only
    /// a lost or restored counters file makes those stale).
    pub(super) fn give_up_on_marks(&mut self, now: Instant) {
        if !self.marks_known && self.marks_deadline.is_some_and(|d| now >= d) {
            self.unconfirmed.clear();
            self.marks_known = true;
        }
    }

    /// The peer answered this run's `Hello` with what it has seen of our transfers. Counters
    /// behind that (a lost or restored counters file) are raised above it, and the transfers
    /// queued before the answer, never sent yet, are renumbered above it in their order; then
    /// they may go.
    pub(super) fn confirm_marks(&mut self, next_transfer: u64, next_seq: u64) {
        // Behind: the counters, or a transfer queued before the answer under a number the peer
        // has already seen (counters lost, then as many transfers queued as the peer had seen).
        let reused = self
            .unconfirmed
            .iter()
            .filter_map(|t| self.out.get(t))
            .any(|o| {
                o.entry.offer.transfer < next_transfer
                    || matches!(o.entry.offer.kind, TransferKind::Message { seq } if seq < next_seq)
            });
        let behind = reused
            || self.counters.next_transfer < next_transfer
            || self.counters.next_message_seq < next_seq;
        if behind {
            let first_transfer = self.counters.next_transfer.max(next_transfer);
            let first_seq = self.counters.next_message_seq.max(next_seq);
            let stale: Vec<u64> = self
                .unconfirmed
                .iter()
                .copied()
                .filter(|t| self.out.contains_key(t))
                .collect();
            // Raised past every new number first: a crash below leaves numbers unused, never
            // used twice.
            let messages = stale
                .iter()
                .filter(|t| self.out[t].entry.body.is_some())
                .count() as u64;
            self.counters.next_transfer = first_transfer + stale.len() as u64;
            self.counters.next_message_seq = first_seq + messages;
            if self.store.save_counters(&self.counters).is_err() {
                self.stats.store_errors += 1;
                return;
            }
            let (mut t_new, mut seq_new) = (first_transfer, first_seq);
            for t in stale {
                let Some(mut o) = self.out.remove(&t) else {
                    continue;
                };
                o.entry.offer.transfer = t_new;
                if let TransferKind::Message { seq } = &mut o.entry.offer.kind {
                    *seq = seq_new;
                    seq_new += 1;
                }
                // The new entry before the old one goes: a crash between them sends the
                // transfer twice (a message is then delivered twice; handlers are idempotent),
                // never loses it.
                if self.store.outbox_put(&o.entry).is_err() {
                    self.stats.store_errors += 1;
                }
                if self.store.outbox_remove(t).is_err() {
                    self.stats.store_errors += 1;
                }
                self.out.insert(t_new, o);
                t_new += 1;
            }
        }
        self.unconfirmed.clear();
        self.marks_known = true;
    }

    /// The peer restarted: whatever it acknowledged but had not persisted is gone, so every
    /// packet sent becomes unknown until its status says otherwise.
    fn forget_peer(&mut self) {
        let bound = self.next_pn;
        for o in self.out.values_mut() {
            o.received = RangeSet::new();
            o.acked_to = 0;
            o.lost.clear();
            o.unknown = RangeSet::from_ranges([(0, u64::from(o.next_new))]);
            o.unknown_bound = bound;
            o.offer_due = true;
            o.status_asked_at = None;
        }
        self.in_flight.clear();
        self.flight_by_packet.clear();
        self.offers_in_flight.clear();
        self.ask_hello(true);
        // Only a Hello sent after this, with the transfers now unknown, answers it.
        self.hello_asked_from = u64::MAX;
    }
}
