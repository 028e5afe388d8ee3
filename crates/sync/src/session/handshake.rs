//! The handshake: the `Hello` this side sends at each contact (naming the transfers whose fate it
//! must learn), the peer's `Hello` (a new incarnation means the peer restarted, and what it
//! acknowledged without persisting is gone), and status answers, given once settled.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use wire::{Chunk, MAX_LIST};

use super::Session;
use crate::ranges::RangeSet;

impl Session {
    /// Queues our `Hello` when one is pending and the last went unanswered for a probe timeout.
    pub(super) fn queue_hello(&mut self, now: Instant, pto: Duration) {
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

    pub(super) fn receive_hello(&mut self, pn: u64, incarnation: u64, resume: &[u64]) {
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
}
