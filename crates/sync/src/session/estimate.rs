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
//! it stops growing by a quarter for [`FULL_ROUNDS`] rounds or a queue of half the allowance
//! shows (in a packet sent once the initial window was delivered: one sent before queued behind
//! it, whatever the pace); then a drain at [`DRAIN_GAIN`] until the data in flight is down to
//! what the path holds (the session judges it at each acknowledgement), one round at most; then a
//! cycle of [`CYCLE`] rounds paces one at 0.75 times the estimate (to drain what was queued), six
//! at the estimate and one at 1.25 (to find more). Each round's gain is chosen when it begins.
//!
//! The queue is the latest round trip's excess over the least, both measured on data packets,
//! without what the receiver held its acknowledgements for (it says so in each, and it answers a
//! transfer's first data at once, so that one round trip is measured on a packet nothing queued
//! ahead of). The least is that of a window: a round trip leaves it once older than
//! [`MIN_RTT_ROUNDS`] rounds and [`MIN_RTT_TIME`] both, so a path whose round trip grows for good
//! is not taken for a queue for ever. The queue allowed is [`QUEUE_ALLOWANCE`], or
//! [`ALLOWANCE_DATAGRAMS`] datagrams' time on the air at the estimate when that is longer (1500
//! bytes take 1.25 s at 9.6 kbit/s, and a packet may wait for the one before it). A queue over
//! it drains for one round, never two in a row.
//!
//! (The least round trip once came from the handshake too, whose small packets cross before any
//! queue builds, and never expired, and a queue over the allowance drained every round for as
//! long as it lasted. On a slow link a data packet's own time on the air then looked like a
//! queue for ever, and so did a round trip that stepped up: every round drained at 0.75, each
//! measured 0.75 of the last, and the estimate decayed to its floor.)

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Rounds the maximum filter remembers.
const FILTER_ROUNDS: u64 = 10;
/// Rounds of the probing cycle.
const CYCLE: u64 = 8;
/// A round trip counts for the least for this many rounds...
const MIN_RTT_ROUNDS: u64 = 10;
/// ...and at least this long.
const MIN_RTT_TIME: Duration = Duration::from_secs(10);
/// Round trips remembered for the least (the candidates to be it: each smaller than every later
/// one).
const MIN_RTT_SAMPLES: usize = 64;
/// Rounds without a quarter's growth that end startup.
const FULL_ROUNDS: u32 = 3;
/// The shortest time a sample may span (below it, timer resolution is the measure).
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// The queueing delay the pace aims to stay under (at least; see [`DeliveryRate::allowance`]):
/// past half of it startup ends and no probe goes above the estimate; past it the pace drains
/// (for a round).
const QUEUE_ALLOWANCE: Duration = Duration::from_millis(500);
/// The queue allowed is at least this many datagrams' time on the air.
const ALLOWANCE_DATAGRAMS: f64 = 2.0;
/// Datagrams of data in flight before the first sample.
pub(super) const INITIAL_WINDOW: usize = 10;
/// The pace of the drain after startup, relative to the estimate.
const DRAIN_GAIN: f64 = 0.5;
/// The pace of a round that drains while cruising (the cycle's first, or one a queue over the
/// allowance asks for).
const CRUISE_DRAIN_GAIN: f64 = 0.75;

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

/// Where the estimate is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Pacing at twice the estimate until it stops growing, or a queue shows.
    Startup,
    /// Pacing at [`DRAIN_GAIN`] until what startup queued has gone (the session sees the data in
    /// flight fall to what the link holds), one round at most: since the round this began in.
    Drain(u64),
    /// The probing cycle.
    Cruise,
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
    phase: Phase,
    /// The estimate startup last saw grow by a quarter, and the rounds since.
    full: f64,
    full_rounds: u32,
    /// The round cruising began in: the probing cycle counts from it.
    cruise_from: u64,
    /// Round trips of data packets that may be the least, oldest first, each smaller than every
    /// later one: (round, when, round trip). The first is the least.
    rtts: VecDeque<(u64, Instant, Duration)>,
    /// The latest round trip's excess over the least: how long data now waits in the link's
    /// queue (none before the first round trip measured).
    queue: Option<Duration>,
    /// This round's pace relative to the estimate.
    round_gain: f64,
    /// The round that last drained while cruising.
    drained_in: Option<u64>,
    /// The largest datagram, bytes: the allowance covers a few of them.
    datagram: usize,
}

impl DeliveryRate {
    pub(super) fn new(datagram: usize) -> DeliveryRate {
        DeliveryRate {
            delivered: 0,
            delivered_at: None,
            first_sent_at: None,
            round: 0,
            next_round_delivered: 0,
            samples: VecDeque::new(),
            phase: Phase::Startup,
            full: 0.0,
            full_rounds: 0,
            cruise_from: 0,
            rtts: VecDeque::new(),
            queue: None,
            round_gain: 2.0,
            drained_in: None,
            datagram,
        }
    }

    /// The datagram size changed (see the session's handshake).
    pub(super) fn set_datagram(&mut self, datagram: usize) {
        self.datagram = datagram;
    }

    /// The estimate in bytes/s: the largest recent sample (0 before the first).
    pub(super) fn estimate(&self) -> f64 {
        self.samples.iter().map(|&(_, s)| s).fold(0.0, f64::max)
    }

    /// The least round trip of the window (see the module documentation).
    pub(super) fn min_rtt(&self) -> Option<Duration> {
        self.rtts.front().map(|&(_, _, rtt)| rtt)
    }

    /// The queueing delay the pace allows: [`QUEUE_ALLOWANCE`], or [`ALLOWANCE_DATAGRAMS`]
    /// datagrams' time on the air at the estimate when longer.
    pub(super) fn allowance(&self) -> Duration {
        let est = self.estimate();
        if est <= 0.0 {
            return QUEUE_ALLOWANCE;
        }
        let air = Duration::try_from_secs_f64(ALLOWANCE_DATAGRAMS * self.datagram as f64 / est)
            .unwrap_or(Duration::MAX);
        QUEUE_ALLOWANCE.max(air)
    }

    /// The pace relative to the estimate, this round.
    pub(super) fn gain(&self) -> f64 {
        self.round_gain
    }

    /// Whether the drain after startup is on: the session ends it ([`DeliveryRate::drained`])
    /// once the data in flight is down to what the link holds.
    pub(super) fn draining(&self) -> bool {
        matches!(self.phase, Phase::Drain(_))
    }

    /// What startup queued has gone: the probing cycle begins, at the estimate.
    pub(super) fn drained(&mut self) {
        if self.draining() {
            self.cruise();
        }
    }

    /// Startup is over (the estimate stopped growing, or a queue showed): what it queued drains
    /// from now.
    fn end_startup(&mut self) {
        self.phase = Phase::Drain(self.round);
        self.round_gain = DRAIN_GAIN;
    }

    /// Cruising from this round on, at the estimate; the cycle's first drain is a cycle away.
    fn cruise(&mut self) {
        self.phase = Phase::Cruise;
        self.cruise_from = self.round;
        self.drained_in = Some(self.round);
        self.round_gain = 1.0;
    }

    /// A round begins: its gain is chosen. Startup doubles; the drain after it lasts one round
    /// at most. Cruising, a queue over the allowance drains for this round, never two rounds in
    /// a row (a round trip that stays up may be the path's, until the window forgets the least,
    /// and a drained round's samples are lower: rounds that all drained would decay the
    /// estimate); the cycle drains first, probes last, and never while data already waits.
    fn begin_round(&mut self) {
        let queue = self.queue.unwrap_or_default();
        let allowance = self.allowance();
        match self.phase {
            Phase::Startup => self.round_gain = 2.0,
            Phase::Drain(from) if self.round <= from + 1 => self.round_gain = DRAIN_GAIN,
            Phase::Drain(_) => self.cruise(),
            Phase::Cruise => {
                let may_drain = self.drained_in.is_none_or(|d| d + 1 < self.round);
                let phase = (self.round - self.cruise_from) % CYCLE;
                self.round_gain = if (queue > allowance && may_drain) || phase == 0 {
                    self.drained_in = Some(self.round);
                    CRUISE_DRAIN_GAIN
                } else if phase == CYCLE - 1 && queue <= allowance / 2 {
                    1.25
                } else {
                    1.0
                };
            }
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

    /// A round trip measured at `now` (of the newest data packet an acknowledgement covers, less
    /// what the receiver held the acknowledgement for): the least of the window is the path's,
    /// the excess the queue's. A queue past half the allowance ends startup: the link is full.
    pub(super) fn on_rtt(&mut self, now: Instant, rtt: Duration, sent: SendState) {
        let round = self.round;
        // Expired: older than both the rounds and the time of the window.
        while let Some(&(r, at, _)) = self.rtts.front() {
            if r + MIN_RTT_ROUNDS > round || now < at + MIN_RTT_TIME {
                break;
            }
            self.rtts.pop_front();
        }
        // A later, smaller round trip outlasts a larger one: it can never be the least again.
        while self.rtts.back().is_some_and(|&(_, _, b)| b >= rtt) {
            self.rtts.pop_back();
        }
        if self.rtts.len() >= MIN_RTT_SAMPLES {
            self.rtts.pop_front();
        }
        self.rtts.push_back((round, now, rtt));
        let queue = rtt.saturating_sub(self.min_rtt().unwrap_or(rtt));
        self.queue = Some(queue);
        // A packet sent before the initial window was delivered queued behind it (it went at
        // the initial pace, before any estimate): the queue it found says nothing of the pace.
        let paced = sent.delivered >= (INITIAL_WINDOW * self.datagram) as u64;
        if self.phase == Phase::Startup
            && paced
            && queue > self.allowance() / 2
            && self.estimate() > 0.0
        {
            self.end_startup();
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
        if new_round {
            if self.phase == Phase::Startup && !newest.app_limited {
                let est = self.estimate();
                if est >= self.full * 1.25 {
                    self.full = est;
                    self.full_rounds = 0;
                } else {
                    self.full_rounds += 1;
                    if self.full_rounds >= FULL_ROUNDS {
                        self.end_startup();
                    }
                }
            }
            self.begin_round();
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
        let mut d = DeliveryRate::new(1500);
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
        assert_eq!(d.phase, Phase::Cruise);
        // An application-limited sample below it does not lower it; silence neither.
        let low = d.on_send(now, false, true);
        now += Duration::from_millis(400);
        d.on_ack(now, 1000, low);
        assert_eq!(d.estimate(), est);
    }

    /// Issue 17, the collapse: a path whose round trip steps up for good, on a link where a
    /// datagram is long on the air. No two rounds in a row drain, and the estimate holds.
    #[test]
    fn a_round_trip_that_steps_up_for_good_does_not_collapse_the_estimate() {
        let t0 = Instant::now();
        let link = 1200.0; // bytes/s: 9.6 kbit/s
        let mut d = DeliveryRate::new(1500);
        let mut now = t0;
        let mut sent = d.on_send(now, true, false);
        let mut gains = Vec::new();
        for i in 0..200 {
            // A round trip of 1.3 s (1.25 of it a datagram on the air), 3.3 s from the 60th on.
            let rtt = Duration::from_millis(if i < 60 { 1300 } else { 3300 });
            now += Duration::from_secs(2);
            let pace = if d.estimate() > 0.0 {
                d.gain() * d.estimate()
            } else {
                3000.0
            };
            let next = d.on_send(now, false, false);
            d.on_rtt(now, rtt, sent);
            d.on_ack(now, (pace.min(link) * 2.0) as u64, sent);
            if d.phase == Phase::Cruise {
                gains.push((d.round, d.gain()));
            }
            sent = next;
        }
        let est = d.estimate();
        assert!(est > link * 0.95, "{est}");
        gains.dedup_by_key(|g| g.0);
        for w in gains.windows(2) {
            assert!(
                !(w[0].1 < 1.0 && w[1].1 < 1.0),
                "two rounds in a row drained: {w:?}"
            );
        }
    }
}
