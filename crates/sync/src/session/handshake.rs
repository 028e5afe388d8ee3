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

use std::collections::HashSet;
use std::time::{Duration, Instant};

use wire::{Chunk, MAX_LIST, TransferKind};

use super::Session;

/// Probe timeouts transfers queued before the peer's `HelloAck` wait for it.
const MARKS_WAIT_PTOS: u32 = 3;
use crate::ranges::RangeSet;

impl Session {
    /// Queues our `Hello` when one is pending and the last went unanswered for a probe timeout.
    pub(super) fn queue_hello(&mut self, now: Instant, pto: Duration) {
        if self.hello_pending && self.hello_sent_at.is_none_or(|t| now >= t + pto) {
            self.hello_sent_at = Some(now);
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
            });
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
            if answered.insert(t) {
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
    ) {
        if incarnation != self.peer_incarnation {
            if self.peer_incarnation != 0 {
                self.stats.peer_restarts += 1;
                self.forget_peer();
            }
            self.peer_incarnation = incarnation;
        }
        if unacked_seq > self.peer_unacked_seq {
            self.peer_unacked_seq = unacked_seq;
            self.deliver_messages();
        }
        // What this side has seen of the peer's transfers and messages.
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
        self.control.push_back(Chunk::HelloAck {
            incarnation,
            next_transfer,
            next_seq,
        });
        self.pending_status.extend(resume.iter().map(|&t| (t, pn)));
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
        let behind = self.counters.next_transfer < next_transfer
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
}
