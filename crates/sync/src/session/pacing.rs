//! Pacing: whether the link is up and its rate, the token bucket that spaces packets at that rate
//! (a scheduled radio link is not a shared network: no loss-based congestion control), and the
//! probe timeout derived from the round trip.

use std::time::{Duration, Instant};

use super::{INITIAL_RTT, Session};

impl Session {
    // --- application commands ---

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

    // --- internals ---

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
            (self.rate * 0.02).max(2.0 * self.config.datagram_bytes as f64)
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
