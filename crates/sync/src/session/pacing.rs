//! Pacing: whether the link is up and its rate, the token bucket that spaces packets at that rate
//! (a scheduled radio link is not a shared network: no loss-based congestion control), and the
//! probe timeout derived from the round trip.
//!
//! A pass without a configured rate (the Engineering Model's, or a link whose rate nobody knows)
//! is paced to the delivery-rate estimate (`estimate`), and its data in flight is held to what
//! the estimate says the link holds: a round trip and the acknowledgements' spacing of it, twice,
//! and the queue the estimate allows (`estimate`'s `QUEUE_ALLOWANCE`, or a few datagrams' time on
//! the air when longer). So the link's queue holds about that
//! much at most, and a message queued behind an object waits no longer. Control (acknowledgements,
//! handshakes) is never held back by it, only by the pace.

use std::time::{Duration, Instant};

use super::estimate::INITIAL_WINDOW;
use super::{INITIAL_RTT, Session};

/// The pace of a pass without a configured rate before its first sample, bytes/s: ten full
/// datagrams per initial round trip.
pub const INITIAL_PACE: f64 = 10.0 * wire::MAX_PACKET as f64 / 0.5;
/// Probe timeouts without an acknowledgement after which the data in flight, or a packet of it,
/// holds nothing back.
pub(super) const SILENT_PTOS: u32 = 4;

impl Session {
    // --- application commands ---

    /// Tells the session whether the link is up (a contact window is open) and its rate in bit/s
    /// (`None`: paced to the delivery-rate estimate).
    pub fn set_link(&mut self, now: Instant, up: bool, rate_bits_per_sec: Option<u64>) {
        self.configured_rate = rate_bits_per_sec.is_some();
        self.rate = match rate_bits_per_sec {
            Some(r) => r as f64 / 8.0,
            None => self.estimated_pace(),
        };
        if up && !self.link_up {
            // A new contact: introduce ourselves so a peer that restarted meanwhile learns of it,
            // and start the pass with a full burst allowance.
            self.hello_pending = true;
            self.hello_sent_at = None;
            self.tokens = self.burst();
            self.last_refill = Some(now);
            // No spare copies of what went before the gap: the peer may hold it by now, and
            // only a status round trip says so (nothing it holds is sent again).
            self.spare_exhausted = true;
            self.spare_cursor = None;
            if let Some((t, index)) = self.spare_next.take()
                && let Some(o) = self.out.get_mut(&t)
            {
                o.lost.remove(&index);
            }
        }
        if !up && self.link_up {
            self.persist_all(now, true);
        }
        self.link_up = up;
    }

    /// The delivery-rate estimate in bytes/s (what a pass without a configured rate is paced
    /// to; 0 before the first sample).
    pub fn delivery_rate(&self) -> f64 {
        self.delivery.estimate()
    }

    // --- internals ---

    /// The pace of a pass without a configured rate: the estimate times this round's gain, at
    /// least a datagram every four seconds (one a second would overrun a 9.6 kbit/s link that
    /// sends 1500-byte datagrams, and fill its queue to the cap of the data in flight).
    fn estimated_pace(&self) -> f64 {
        let est = self.delivery.estimate();
        if est <= 0.0 {
            return INITIAL_PACE;
        }
        (self.delivery.gain() * est).max(self.datagram as f64 / 4.0)
    }

    /// Data packets were acknowledged: `bytes` of them, the newest sent with `newest`.
    pub(super) fn on_delivered(
        &mut self,
        now: Instant,
        bytes: u64,
        newest: super::estimate::SendState,
    ) {
        self.delivery.on_ack(now, bytes, newest);
        // The drain after startup ends once what startup queued has gone: the data in flight,
        // just after an acknowledgement, down to what the path holds (a round trip at the
        // estimate, and two datagrams), measured now rather than a round trip late.
        if self.delivery.draining() {
            let est = self.delivery.estimate();
            let path = self.delivery.min_rtt().unwrap_or(INITIAL_RTT).as_secs_f64();
            let holds = est * path + 2.0 * self.datagram as f64;
            if (self.young_in_flight(now) as f64) <= holds {
                self.delivery.drained();
            }
        }
        if !self.configured_rate {
            self.rate = self.estimated_pace();
        }
    }

    /// Whether, without a configured rate, more data is in flight than the estimate says the
    /// link holds (see the module documentation), counting what went within [`SILENT_PTOS`]
    /// probe timeouts, while acknowledgements still come (after as long a silence, nothing is
    /// held back).
    pub(super) fn over_the_pipe(&self, now: Instant) -> bool {
        if self.configured_rate || !self.link_up {
            return false;
        }
        // Acknowledgements that stopped for long (the peer gone, or cut off) say nothing of the
        // link any more; before the first, the initial window holds (status answers free it too).
        if self
            .last_ack_at
            .is_some_and(|a| now >= a + self.pto() * SILENT_PTOS)
        {
            return false;
        }
        // What went [`SILENT_PTOS`] probe timeouts ago without an acknowledgement is no longer
        // on its way (lost, or below what acknowledgements still describe, left to status
        // answers): it holds nothing back, or a transfer could wait on it for ever.
        let in_flight = self.young_in_flight(now);
        let est = self.delivery.estimate();
        let datagram = self.datagram;
        let cap = if est <= 0.0 {
            INITIAL_WINDOW * datagram
        } else {
            // What is on its way (the path's round trip), delivered but not acknowledged yet (the
            // acknowledgements' spacing), and the queue allowed.
            // A safety net: the pace keeps the queue short (it drains when the round trip says
            // data waits); this holds what the estimate allows on its way, twice over.
            let path = self.delivery.min_rtt().unwrap_or(INITIAL_RTT)
                + self.ack_gap.unwrap_or(self.config.ack_delay);
            let secs = 2.0 * path.as_secs_f64() + self.delivery.allowance().as_secs_f64();
            (est * secs) as usize + 2 * datagram
        };
        in_flight >= cap
    }

    /// Bytes of data in flight sent within [`SILENT_PTOS`] probe timeouts (what went before is
    /// no longer on its way: lost, or left to status answers).
    fn young_in_flight(&self, now: Instant) -> usize {
        self.in_flight.young_bytes(now, self.pto() * SILENT_PTOS)
    }

    /// The probe timeout: how long an answer may take (twice the smoothed round trip, the reorder
    /// window and the peer's acknowledgement pace).
    pub(super) fn pto(&self) -> Duration {
        self.srtt.unwrap_or(INITIAL_RTT) * 2
            + self.config.reorder_window
            + self
                .ack_gap
                .unwrap_or(self.config.ack_delay)
                .max(self.config.ack_delay)
    }

    fn burst(&self) -> f64 {
        if self.rate.is_finite() {
            (self.rate * 0.02).max(self.datagram as f64)
        } else {
            f64::INFINITY
        }
    }

    pub(super) fn refill(&mut self, now: Instant) {
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
}
