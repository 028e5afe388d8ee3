//! Pacing: whether the link is up and its rate, the token bucket that spaces packets at that rate
//! (a scheduled radio link is not a shared network: no loss-based congestion control), and the
//! probe timeout derived from the round trip.
//!
//! Where the pass has no configured rate, the session paces to an estimate of the rate the link
//! delivers, in the spirit of BBR: bytes acknowledged per round trip, the maximum over recent
//! rounds; a startup phase doubles the pace every round until the estimate stops growing, then the
//! pace follows the estimate, probing 25 % above it one round in eight and draining below it the
//! next. So the radio's queue holds little more than a round of data, and a message queued behind
//! an object waits at most about that long.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{INITIAL_RTT, Session};

impl Session {
    // --- application commands ---

    /// Tells the session whether the link is up (a contact window is open) and its rate in bit/s
    /// (`None`: unpaced).
    pub fn set_link(&mut self, now: Instant, up: bool, rate_bits_per_sec: Option<u64>) {
        self.configured_rate = rate_bits_per_sec.is_some();
        self.rate =
            rate_bits_per_sec.map_or_else(|| self.delivery.pacing_rate(), |r| r as f64 / 8.0);
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

    /// The delivery-rate estimate in bytes/s (what unconfigured passes are paced to).
    pub fn delivery_rate(&self) -> f64 {
        self.delivery.estimate()
    }

    // --- internals ---

    /// `bytes` of data packets were acknowledged at `now`: a delivery-rate sample, and the pace of
    /// a pass without a configured rate follows it.
    pub(super) fn on_delivered(&mut self, now: Instant, bytes: u64) {
        let round = self.srtt.unwrap_or(INITIAL_RTT).max(MIN_ROUND);
        let limited = std::mem::take(&mut self.pacing_limited);
        if let Some(srtt) = self.srtt {
            self.delivery.min_rtt = Some(self.delivery.min_rtt.map_or(srtt, |m| m.min(srtt)));
        }
        self.delivery.on_ack(now, bytes, round, limited);
        if !self.configured_rate {
            self.rate = self.delivery.pacing_rate();
        }
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
            (self.rate * 0.02).max(2.0 * wire::MAX_PACKET as f64)
        } else {
            f64::INFINITY
        }
    }

    /// Whether, without a configured rate, more data is on its way than the estimate says the
    /// link holds (a round trip of it and half a second queued; twice that in startup), while
    /// acknowledgements still come: the queue would only grow.
    fn over_the_pipe(&self, now: Instant) -> bool {
        let est = self.delivery.estimate();
        if self.configured_rate || est <= 0.0 {
            return false;
        }
        let acks_flow = self.last_ack_at.is_some_and(|a| now < a + self.pto());
        let in_flight =
            (self.in_flight.len() * (self.config.packet_size + wire::DATA_CHUNK_OVERHEAD)) as f64;
        let rtt = self.delivery.min_rtt.unwrap_or(INITIAL_RTT).as_secs_f64();
        let gain = if self.delivery.startup { 2.0 } else { 1.0 };
        acks_flow && in_flight > gain * est * (rtt + 0.5)
    }

    pub(super) fn refill(&mut self, now: Instant) {
        if self.over_the_pipe(now) {
            self.last_refill = Some(now);
            self.tokens = self.tokens.min(0.0);
            return;
        }
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

/// The shortest round a delivery-rate sample spans.
const MIN_ROUND: Duration = Duration::from_millis(50);
/// Rounds the maximum filter remembers.
const FILTER_ROUNDS: usize = 10;
/// The pace before any sample: ten full datagrams per initial round trip.
const INITIAL_PACE: f64 = 10.0 * wire::MAX_PACKET as f64 / 0.5;

/// The delivery-rate estimate of a pass without a configured rate.
#[derive(Debug)]
pub(super) struct DeliveryRate {
    /// When the current round began, and the bytes acknowledged since.
    round_start: Option<Instant>,
    round_bytes: u64,
    /// Whether the pace (not the application) limited sending during the round.
    round_limited: bool,
    /// Rates of the latest rounds, bytes/s.
    samples: VecDeque<f64>,
    pub(super) startup: bool,
    /// The least smoothed round trip seen.
    pub(super) min_rtt: Option<Duration>,
    /// The estimate startup last saw grow by a quarter, and the rounds since.
    full: f64,
    full_rounds: u32,
    /// Rounds since startup ended: the probing cycle.
    cycle: u64,
}

impl DeliveryRate {
    pub(super) fn new() -> DeliveryRate {
        DeliveryRate {
            round_start: None,
            round_bytes: 0,
            round_limited: false,
            samples: VecDeque::new(),
            startup: true,
            min_rtt: None,
            full: 0.0,
            full_rounds: 0,
            cycle: 0,
        }
    }

    /// The maximum over recent rounds, bytes/s (0 before the first sample).
    pub(super) fn estimate(&self) -> f64 {
        self.samples.iter().copied().fold(0.0, f64::max)
    }

    pub(super) fn pacing_rate(&self) -> f64 {
        let est = self.estimate();
        if self.startup {
            return (2.0 * est).max(INITIAL_PACE);
        }
        let gain = match self.cycle % 8 {
            0 => 1.25,
            1 => 0.75,
            _ => 1.0,
        };
        (gain * est).max(wire::MAX_PACKET as f64)
    }

    fn on_ack(&mut self, now: Instant, bytes: u64, round: Duration, limited: bool) {
        let Some(start) = self.round_start else {
            self.round_start = Some(now);
            self.round_bytes = 0;
            return;
        };
        self.round_bytes += bytes;
        self.round_limited |= limited;
        let elapsed = now.saturating_duration_since(start);
        if elapsed < round {
            return;
        }
        let sample = self.round_bytes as f64 / elapsed.as_secs_f64();
        let paced = std::mem::take(&mut self.round_limited);
        self.round_start = Some(now);
        self.round_bytes = 0;
        if elapsed > round * 4 {
            // Idle (or out of contact) for most of it: says nothing of the link.
            return;
        }
        if sample > 0.0 || paced {
            self.samples.push_back(sample);
            if self.samples.len() > FILTER_ROUNDS {
                self.samples.pop_front();
            }
        }
        if self.startup {
            let est = self.estimate();
            if est >= self.full * 1.25 {
                self.full = est;
                self.full_rounds = 0;
            } else if paced {
                // The pace was the limit and delivery did not follow: the link is full.
                self.full_rounds += 1;
                if self.full_rounds >= 3 {
                    self.startup = false;
                }
            }
        } else {
            self.cycle += 1;
        }
    }
}
