//! The delivery-rate estimate that paces a pass without a configured rate, in the spirit of BBR.
//!
//! A rate sample is taken at every acknowledgement of data, from the newest packet it covers:
//! the bytes delivered since that packet was sent over the time since delivery last grew before
//! it was sent. So the sample spans the acknowledgements' own spacing, whatever it is: a receiver
//! that acknowledges every 400 ms (it spaces acknowledgements to the pace packets arrive at)
//! gives one sample per 400 ms of what was delivered in them, not nothing. (The first attempt
//! measured bytes per round of a fixed length and threw away any round four times longer than the
//! smoothed round trip: over loopback, where the round trip is a few milliseconds and the
//! acknowledgements come every few hundred, every sample was thrown away, the estimate stayed at
//! zero and the session crawled at its initial pace.)
//!
//! The estimate is the largest sample of the last [`FILTER_ROUNDS`] rounds; a round ends when a
//! packet sent after it began is acknowledged. A sample from a packet sent while the session had
//! nothing more to send (application-limited) only ever raises it. The filter forgets old samples
//! only as new ones come, so silence never lowers it. Startup paces at twice the estimate until
//! it stops growing by a quarter for [`FULL_ROUNDS`] rounds; then a cycle of eight rounds paces
//! one at 0.75 times the estimate (to drain what was queued), six at the estimate and one at 1.25
//! (to find more).
//!
//! The least round trip (what the data in flight is held to, in `pacing`) is measured without
//! what the receiver held its acknowledgements for (it says so in each), and from the handshake,
//! whose small packets cross before any queue builds.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Rounds the maximum filter remembers.
const FILTER_ROUNDS: u64 = 10;
/// Rounds without a quarter's growth that end startup.
const FULL_ROUNDS: u32 = 3;
/// The shortest time a sample may span (below it, timer resolution is the measure).
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// The queueing delay the pace aims to stay under: past half of it startup ends and no probe
/// goes above the estimate; past it the pace drains.
pub(super) const QUEUE_ALLOWANCE: Duration = Duration::from_millis(500);

/// What a data packet takes along of the estimate's state when it is sent.
#[derive(Debug, Clone, Copy)]
pub(super) struct SendState {
    /// When it was sent.
    sent_at: Instant,
    /// Bytes delivered when it was sent.
    delivered: u64,
    /// When delivery last grew before it was sent (or sending started again after an idle time).
    delivered_at: Instant,
    /// When the newest packet delivered by then had been sent.
    first_sent_at: Instant,
    /// Whether the session had nothing more to send.
    app_limited: bool,
}

/// The estimate and what it is made from.
#[derive(Debug)]
pub(super) struct DeliveryRate {
    /// Bytes of acknowledged data packets, in all.
    delivered: u64,
    delivered_at: Option<Instant>,
    /// When the newest packet delivered so far had been sent.
    first_sent_at: Option<Instant>,
    round: u64,
    /// A packet sent at or after this much was delivered ends the round when acknowledged.
    next_round_delivered: u64,
    /// (round, bytes/s), oldest first.
    samples: VecDeque<(u64, f64)>,
    startup: bool,
    /// The estimate startup last saw grow by a quarter, and the rounds since.
    full: f64,
    full_rounds: u32,
    /// The round startup ended in: the probing cycle counts from it.
    cruise_from: u64,
    /// The least round trip measured.
    min_rtt: Option<Duration>,
    /// The latest round trip's excess over the least: how long data now waits in the link's
    /// queue (none before the second round trip measured).
    queue: Option<Duration>,
}

impl DeliveryRate {
    pub(super) fn new() -> DeliveryRate {
        DeliveryRate {
            delivered: 0,
            delivered_at: None,
            first_sent_at: None,
            round: 0,
            next_round_delivered: 0,
            samples: VecDeque::new(),
            startup: true,
            full: 0.0,
            full_rounds: 0,
            cruise_from: 0,
            min_rtt: None,
            queue: None,
        }
    }

    /// The estimate in bytes/s: the largest recent sample (0 before the first).
    pub(super) fn estimate(&self) -> f64 {
        self.samples.iter().map(|&(_, s)| s).fold(0.0, f64::max)
    }

    /// The least round trip measured.
    pub(super) fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// The pace relative to the estimate, this round.
    pub(super) fn gain(&self) -> f64 {
        let queue = self.queue.unwrap_or_default();
        if queue > QUEUE_ALLOWANCE {
            return 0.75;
        }
        if self.startup {
            return 2.0;
        }
        // Draining first (what startup queued), probing last, so that each probe's queue is
        // drained in the round after it; no probe while data already waits in the queue.
        match (self.round - self.cruise_from) % 8 {
            0 => 0.75,
            7 if queue <= QUEUE_ALLOWANCE / 2 => 1.25,
            _ => 1.0,
        }
    }

    /// The state a data packet sent now takes along. `idle`: nothing was in flight, so the time
    /// since delivery last grew is idle time, not slow delivery: the clock starts again.
    pub(super) fn on_send(&mut self, now: Instant, idle: bool, app_limited: bool) -> SendState {
        if idle || self.delivered_at.is_none() {
            self.delivered_at = Some(now);
            self.first_sent_at = Some(now);
        }
        SendState {
            sent_at: now,
            delivered: self.delivered,
            delivered_at: self.delivered_at.unwrap_or(now),
            first_sent_at: self.first_sent_at.unwrap_or(now),
            app_limited,
        }
    }

    /// A round trip measured (of the newest packet an acknowledgement covers, less what the
    /// receiver held the acknowledgement for; or of the handshake): the least is the path's, the
    /// excess the queue's. A queue past half the allowance ends startup: the link is full.
    pub(super) fn on_rtt(&mut self, rtt: Duration) {
        let Some(min) = self.min_rtt.map(|m| m.min(rtt)) else {
            self.min_rtt = Some(rtt);
            return;
        };
        self.min_rtt = Some(min);
        let queue = rtt - min;
        self.queue = Some(queue);
        if self.startup && queue > QUEUE_ALLOWANCE / 2 && self.estimate() > 0.0 {
            self.startup = false;
            self.cruise_from = self.round;
        }
    }

    /// `bytes` of data packets were acknowledged at `now`; `newest` is what the newest of them
    /// took along when it was sent.
    pub(super) fn on_ack(&mut self, now: Instant, bytes: u64, newest: SendState) {
        if bytes == 0 {
            return;
        }
        self.delivered += bytes;
        self.delivered_at = Some(now);
        self.first_sent_at = Some(newest.sent_at);
        let new_round = newest.delivered >= self.next_round_delivered;
        if new_round {
            self.round += 1;
            self.next_round_delivered = self.delivered;
        }
        // Over the longer of the time the bytes took to be acknowledged and the time they took
        // to be sent: delivery is never measured faster than the sending that fed it (an
        // acknowledgement that came early after a late one would say so).
        let interval = now.saturating_duration_since(newest.delivered_at).max(
            newest
                .sent_at
                .saturating_duration_since(newest.first_sent_at),
        );
        if interval >= MIN_INTERVAL {
            let sample = (self.delivered - newest.delivered) as f64 / interval.as_secs_f64();
            if !newest.app_limited || sample > self.estimate() {
                let round = self.round;
                // Old samples go only as new ones come: silence does not lower the estimate.
                self.samples.retain(|&(r, _)| r + FILTER_ROUNDS > round);
                self.samples.push_back((round, sample));
            }
        }
        if new_round && self.startup && !newest.app_limited {
            let est = self.estimate();
            if est >= self.full * 1.25 {
                self.full = est;
                self.full_rounds = 0;
            } else {
                self.full_rounds += 1;
                if self.full_rounds >= FULL_ROUNDS {
                    self.startup = false;
                    self.cruise_from = self.round;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Acknowledgements far apart (the receiver paces them to the arrivals) still give samples,
    /// and startup doubles the pace until the link's rate is found.
    #[test]
    fn sparse_acknowledgements_still_measure_and_startup_finds_the_rate() {
        let t0 = Instant::now();
        let mut d = DeliveryRate::new();
        let link = 100_000.0; // bytes/s
        let mut now = t0;
        let mut sent = d.on_send(now, true, false);
        // Each 400 ms, an acknowledgement of what the pace let through (at most the link rate).
        for _ in 0..30 {
            let pace = if d.estimate() > 0.0 {
                d.gain() * d.estimate()
            } else {
                30_000.0
            };
            now += Duration::from_millis(400);
            let bytes = (pace.min(link) * 0.4) as u64;
            let next = d.on_send(now, false, false);
            d.on_ack(now, bytes, sent);
            sent = next;
        }
        let est = d.estimate();
        assert!((est - link).abs() < link * 0.05, "{est}");
        assert!(!d.startup);
        // An application-limited sample below it does not lower it; silence neither.
        let low = d.on_send(now, false, true);
        now += Duration::from_millis(400);
        d.on_ack(now, 1000, low);
        assert_eq!(d.estimate(), est);
    }
}
