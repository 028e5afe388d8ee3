//! Persistence: opening a session from what its store persisted (repairing counters a crash left
//! behind, reserving packet numbers ahead), and making spools and the opener's memory of the
//! peer's epochs durable.
//!
//! # The replay mark
//!
//! A receiver that crashes must not accept again a packet of the peer's current epoch that it
//! accepted before the crash: a recording of it would otherwise be handled twice. Saving the
//! highest packet number accepted after every packet costs a write each; saving it now and then
//! leaves the packets accepted since the last save open to replay. So the mark is reserved ahead,
//! as packet numbers are on the send side: before a packet above the saved mark is handled, the
//! mark is moved [`REPLAY_RESERVATION`] above it and written (a packet whose write fails is
//! dropped, as if lost). The saved mark is never below a number accepted, and a restarted
//! receiver refuses everything of that epoch at or below it. The peer has not necessarily used
//! those numbers yet: the restarted side's `Hello` tells it the floor, and it numbers its next
//! packets above (`Session::number_above`), so the cost of a crash is a skip in the peer's
//! numbering, never a packet accepted twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io;
use std::time::{Duration, Instant};

use wire::{Opener, Sealer, TransferKind};

use super::{
    HWM_RESERVATION, Out, PN_RESERVATION, REPLAY_RESERVATION, Session, SessionConfig, SessionStats,
    Spool, packet_count, payload_size,
};
use crate::ranges::RangeSet;
use crate::store::Store;

impl Session {
    /// Opens a session on `store`, resuming whatever it persisted.
    pub fn new(config: SessionConfig, mut store: Box<dyn Store>) -> io::Result<Session> {
        assert!(config.incarnation != 0, "incarnation 0 means unknown");
        let datagram_bytes = config
            .datagram_bytes
            .clamp(wire::MIN_DATAGRAM, wire::MAX_PACKET);
        let config = SessionConfig {
            datagram_bytes,
            ..config
        };
        let persisted = store.load()?;
        let mut counters = persisted.counters;
        // The peer's size as its last Hello said: data packets agree with it from the start.
        let datagram = match usize::try_from(counters.peer_datagram) {
            Ok(peer) if peer > 0 => {
                datagram_bytes.min(peer.clamp(wire::MIN_DATAGRAM, wire::MAX_PACKET))
            }
            _ => datagram_bytes,
        };
        let packet_size = payload_size(datagram);
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
        // Spools and outbox marks saved at another size (this side's configuration changed, or
        // the peer's) cannot be placed: what was in progress starts again, below.
        // The new size is saved only once those spools are gone (below): a crash in between
        // finds the old size again and drops them then.
        let resized = counters.datagram != 0 && counters.datagram != datagram as u64;
        if !resized {
            counters.datagram = datagram as u64;
        }
        store.save_counters(&counters)?;
        let mut out = BTreeMap::new();
        for entry in persisted.outbox {
            let packets = packet_count(entry.offer.size, packet_size);
            let hwm = entry.sent_hwm.min(packets);
            // The mark was saved `HWM_RESERVATION` chunks past a chunk about to be sent (or at
            // the end): those before that one went; it and the rest below the mark may not have.
            let maybe_unsent: BTreeSet<u32> = (hwm.saturating_sub(HWM_RESERVATION)..hwm).collect();
            out.insert(
                entry.offer.transfer,
                Out {
                    packets,
                    next_new: hwm,
                    received: RangeSet::new(),
                    acked_to: 0,
                    lost: BTreeSet::new(),
                    unknown: RangeSet::from_ranges([(0, u64::from(hwm))]),
                    unknown_bound: next_pn,
                    maybe_unsent,
                    offer_due: true,
                    status_asked_at: None,
                    last_sent_at: None,
                    entry,
                },
            );
        }
        // A spool's progress saved after the running time was (a crash between the two) is not
        // in the future.
        let clock_base = persisted
            .spools
            .iter()
            .filter_map(|s| s.progress_at)
            .fold(counters.running, Duration::max);
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
                        progress_at: s.progress_at.unwrap_or(clock_base),
                    },
                )
            })
            .collect();
        let committed_order: VecDeque<u64> = persisted.committed.into_iter().collect();
        Ok(Session {
            // The incarnation, random at every start, is the epoch of this run's subkey.
            sealer: Sealer::new(&config.key, config.sends, config.incarnation),
            opener: Opener::new(&config.key, config.sends.reverse(), counters.replay),
            replay_saved: counters.replay,
            counters,
            next_pn,
            run_first_pn: next_pn,
            peer_accepts_run: false,
            link_up: false,
            rate: 0.0,
            tokens: 0.0,
            last_refill: None,
            configured_rate: false,
            delivery: super::estimate::DeliveryRate::new(datagram),
            drained: false,
            peer_incarnation: 0,
            hello_pending: true,
            hello_sent_at: None,
            hello_rushed_at: None,
            hello_asked_from: 0,
            proof_floor: 0,
            candidate_hellos: Vec::new(),
            short_header: false,
            peer_acked: None,
            long_from: 0,
            unconfirmed: BTreeSet::new(),
            marks_known: false,
            marks_deadline: None,
            peer_unacked_seq: 0,
            out,
            in_flight: super::flight::InFlight::new(),
            flight_by_packet: HashMap::new(),
            offers_in_flight: BTreeMap::new(),
            floor_sent: 0,
            srtt: None,
            control: super::control::Control::new(),
            data_turn: false,
            spare_next: None,
            spare_cursor: None,
            spare_exhausted: true,
            rx: RangeSet::new(),
            rx_largest: 0,
            largest_at: None,
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
            clock_base,
            opened_at: None,
            expiry_checked_at: None,
            refused: HashMap::new(),
            refused_order: VecDeque::new(),
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
            packet_size,
            max_body: datagram - wire::PACKET_OVERHEAD,
            datagram,
            mismatch_told: None,
            config,
        })
        .and_then(|mut s| {
            if resized {
                s.use_datagram(datagram);
                s.counters.datagram = datagram as u64;
                s.store.save_counters(&s.counters)?;
            }
            s.deliver_messages();
            Ok(s)
        })
    }

    pub(super) fn persist(&mut self, _now: Instant, t: u64) {
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
            .spool_persist(t, s.offer.as_ref(), &ranges, s.progress_at)
            .is_err()
        {
            self.stats.store_errors += 1;
            return;
        }
        s.dirty = 0;
        s.dirty_since = None;
    }

    /// The store's running time at `now` ([`crate::Counters::running`]): what it was when the
    /// session opened, and how long the session has run since its first instant.
    pub(super) fn running(&mut self, now: Instant) -> Duration {
        let opened = *self.opened_at.get_or_insert(now);
        self.clock_base + now.saturating_duration_since(opened)
    }

    pub(super) fn persist_all(&mut self, now: Instant, force: bool) {
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

    /// Makes sure the saved replay mark covers every packet the opener accepted, and that the
    /// epochs it retired are saved: writes the counters when not, with the mark of the peer's
    /// current epoch [`REPLAY_RESERVATION`] above the highest accepted (see the module
    /// documentation). Returns false when the write failed: the packet just accepted must not be
    /// handled (it is tried again, with the mark, at the next packet).
    pub(super) fn reserve_replay(&mut self) -> bool {
        let memory = self.opener.memory();
        let covered = match (memory.current, self.replay_saved.current) {
            (None, _) => true,
            (Some((e, h)), Some((saved_e, mark))) => e == saved_e && h <= mark,
            (Some(_), None) => false,
        };
        if covered && memory.retired == self.replay_saved.retired {
            return true;
        }
        let mut saved = memory;
        saved.current = memory.current.map(|(e, h)| {
            (
                e,
                h.saturating_add(REPLAY_RESERVATION)
                    .min(wire::MAX_PACKET_NUMBER),
            )
        });
        // Ahead is safe whenever it is written (with any other counter): it only refuses more.
        self.counters.replay = saved;
        if self.store.save_counters(&self.counters).is_err() {
            self.stats.store_errors += 1;
            return false;
        }
        self.replay_saved = saved;
        true
    }
}
