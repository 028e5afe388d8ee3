//! The link as a model: what happens to a datagram between ground and flight. Sans-IO and
//! seeded, so the UDP emulator, the simulations and the benchmarks share one behaviour.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wire::Direction;

/// How datagrams are lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Nothing is lost.
    None,
    /// Each datagram is lost independently with this probability.
    Random(f64),
    /// Gilbert–Elliott: a good and a bad state with their own loss rates; bursts.
    GilbertElliott {
        /// Probability of moving good → bad per datagram.
        p_good_to_bad: f64,
        /// Probability of moving bad → good per datagram.
        p_bad_to_good: f64,
        /// Loss probability in the good state.
        loss_good: f64,
        /// Loss probability in the bad state.
        loss_bad: f64,
    },
}

impl Loss {
    /// A Gilbert–Elliott model with mean loss `mean` in bursts of `burst` datagrams on average
    /// (good-state loss 0.5 %, bad-state loss 50 %): a stay in the bad state lasts `burst`
    /// datagrams on average, and loses half of them. Below 0.5 % mean loss there is no bad state.
    pub fn bursty(mean: f64, burst: f64) -> Loss {
        let (lg, lb) = (0.005, 0.5);
        // Stationary share of time in the bad state: pi_b = (mean - lg) / (lb - lg).
        let pi_b = ((mean - lg) / (lb - lg)).clamp(0.0, 0.99);
        let p_bg = 1.0 / burst.max(1.0);
        let p_gb = if pi_b <= 0.0 {
            0.0
        } else {
            p_bg * pi_b / (1.0 - pi_b)
        };
        Loss::GilbertElliott {
            p_good_to_bad: p_gb,
            p_bad_to_good: p_bg,
            loss_good: lg,
            loss_bad: lb,
        }
    }
}

/// The link's behaviour. A plain options struct: every field says one thing.
#[derive(Debug, Clone)]
pub struct LinkModelConfig {
    /// Uplink (ground → flight) rate in bit/s; `None` is unlimited.
    pub up_bps: Option<u64>,
    /// Downlink (flight → ground) rate in bit/s; `None` is unlimited.
    pub down_bps: Option<u64>,
    /// One-way delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `[0, jitter]` per datagram: datagrams overtake each other
    /// by at most this much.
    pub jitter: Duration,
    /// The loss model, each way.
    pub loss: Loss,
    /// Probability that any one bit of a delivered datagram is flipped.
    pub bit_error_rate: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Contact windows as (start, end) offsets from the model's start, sorted and disjoint;
    /// `None`: always in contact.
    pub windows: Option<Vec<(Duration, Duration)>>,
    /// Scripted cuts (start, end): no contact, whatever the windows say.
    pub cuts: Vec<(Duration, Duration)>,
    /// Half-duplex: one direction transmits at a time, switching costs this long. `None`: full
    /// duplex.
    pub half_duplex_turnaround: Option<Duration>,
    /// The radio's queue, each way, in datagrams (like netem's `limit`): a datagram that finds
    /// this many still waiting for the transmitter is dropped (drop-tail). `None`: unbounded.
    pub queue_packets: Option<usize>,
    /// The same in bytes: a datagram that would take the bytes waiting over this is dropped.
    /// `None`: unbounded.
    pub queue_bytes: Option<u64>,
}

impl LinkModelConfig {
    /// A perfect, always-up link with the given one-way delay.
    pub fn ideal(delay: Duration) -> LinkModelConfig {
        LinkModelConfig {
            up_bps: None,
            down_bps: None,
            delay,
            jitter: Duration::ZERO,
            loss: Loss::None,
            bit_error_rate: 0.0,
            duplicate: 0.0,
            windows: None,
            cuts: Vec::new(),
            half_duplex_turnaround: None,
            queue_packets: None,
            queue_bytes: None,
        }
    }

    /// The radio queue a real link would have: about one second of data at `bps` (at least 16
    /// full datagrams), and at most 1000 datagrams, as netem's default.
    pub fn default_queue(bps: Option<u64>) -> (Option<usize>, Option<u64>) {
        let bytes = bps.map(|b| (b / 8).max(16 * wire::MAX_PACKET as u64));
        (Some(1000), bytes)
    }
}

/// Counts, each direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelStats {
    /// Datagrams offered to the link.
    pub offered: u64,
    /// Bytes offered to the link.
    pub offered_bytes: u64,
    /// Datagrams delivered (a duplicate counts twice).
    pub delivered: u64,
    /// Lost to the loss model.
    pub lost: u64,
    /// Lost because no contact was open.
    pub no_contact: u64,
    /// Delivered with flipped bits.
    pub corrupted: u64,
    /// Delivered twice.
    pub duplicated: u64,
    /// Dropped because the radio's queue was full.
    pub overflowed: u64,
}

/// A seeded link model. Feed it every datagram sent; it says when (and whether, and how) each
/// arrives.
#[derive(Debug)]
pub struct LinkModel {
    config: LinkModelConfig,
    start: Instant,
    rng: StdRng,
    bad: [bool; 2],
    free_at: [Instant; 2],
    /// Datagrams accepted and not yet through the transmitter: (when done, bytes), each way.
    backlog: [std::collections::VecDeque<(Instant, usize)>; 2],
    backlog_bytes: [u64; 2],
    stats: [ModelStats; 2],
}

fn idx(d: Direction) -> usize {
    match d {
        Direction::Up => 0,
        Direction::Down => 1,
    }
}

impl LinkModel {
    /// A model starting at `start`, drawing from `seed`.
    pub fn new(config: LinkModelConfig, seed: u64, start: Instant) -> LinkModel {
        LinkModel {
            config,
            start,
            rng: StdRng::seed_from_u64(seed),
            bad: [false; 2],
            free_at: [start; 2],
            backlog: Default::default(),
            backlog_bytes: [0; 2],
            stats: [ModelStats::default(); 2],
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LinkModelConfig {
        &self.config
    }

    /// Counts for one direction.
    pub fn stats(&self, d: Direction) -> ModelStats {
        self.stats[idx(d)]
    }

    /// The rate of a direction in bit/s, if limited.
    pub fn rate(&self, d: Direction) -> Option<u64> {
        match d {
            Direction::Up => self.config.up_bps,
            Direction::Down => self.config.down_bps,
        }
    }

    /// Whether a contact is open at `now`.
    pub fn in_contact(&self, now: Instant) -> bool {
        let t = now.saturating_duration_since(self.start);
        if self.config.cuts.iter().any(|&(a, b)| t >= a && t < b) {
            return false;
        }
        match &self.config.windows {
            None => true,
            Some(w) => {
                // Windows are sorted by start: find the last one starting at or before `t`.
                let i = w.partition_point(|&(a, _)| a <= t);
                i > 0 && t < w[i - 1].1
            }
        }
    }

    /// The next instant after `now` at which contact opens or closes.
    pub fn next_change(&self, now: Instant) -> Option<Instant> {
        let t = now.saturating_duration_since(self.start);
        let cut = self
            .config
            .cuts
            .iter()
            .flat_map(|&(a, b)| [a, b])
            .filter(|&e| e > t)
            .min();
        let window = self.config.windows.as_ref().and_then(|w| {
            let i = w.partition_point(|&(_, b)| b <= t);
            w.get(i).map(|&(a, b)| if a > t { a } else { b })
        });
        [cut, window]
            .into_iter()
            .flatten()
            .min()
            .map(|e| self.start + e)
    }

    /// A datagram sent at `now` in direction `d`: the copies that arrive, with their arrival times
    /// (none if lost; two if duplicated; bits possibly flipped).
    pub fn transmit(
        &mut self,
        now: Instant,
        d: Direction,
        datagram: &[u8],
    ) -> Vec<(Instant, Vec<u8>)> {
        let i = idx(d);
        self.stats[i].offered += 1;
        self.stats[i].offered_bytes += datagram.len() as u64;
        while let Some(&(done, len)) = self.backlog[i].front() {
            if done > now {
                break;
            }
            self.backlog[i].pop_front();
            self.backlog_bytes[i] -= len as u64;
        }
        let full_packets = self
            .config
            .queue_packets
            .is_some_and(|l| self.backlog[i].len() >= l);
        let full_bytes = self
            .config
            .queue_bytes
            .is_some_and(|l| self.backlog_bytes[i] + datagram.len() as u64 > l);
        if full_packets || full_bytes {
            self.stats[i].overflowed += 1;
            return Vec::new();
        }
        let mut start = now.max(self.free_at[i]);
        if let Some(turn) = self.config.half_duplex_turnaround {
            let other = self.free_at[1 - i];
            if other > now {
                start = start.max(other + turn);
            }
        }
        let airtime = self.rate(d).map_or(Duration::ZERO, |bps| {
            Duration::from_secs_f64(datagram.len() as f64 * 8.0 / bps.max(1) as f64)
        });
        let done = start + airtime;
        self.free_at[i] = done;
        if done > now {
            self.backlog[i].push_back((done, datagram.len()));
            self.backlog_bytes[i] += datagram.len() as u64;
        }
        if !self.in_contact(start) || !self.in_contact(done) {
            self.stats[i].no_contact += 1;
            return Vec::new();
        }
        if self.lose(i) {
            self.stats[i].lost += 1;
            return Vec::new();
        }
        let copies = if self.config.duplicate > 0.0
            && self.rng.random_bool(self.config.duplicate.min(1.0))
        {
            self.stats[i].duplicated += 1;
            2
        } else {
            1
        };
        let mut out = Vec::with_capacity(copies);
        for _ in 0..copies {
            let jitter = if self.config.jitter.is_zero() {
                Duration::ZERO
            } else {
                self.config.jitter.mul_f64(self.rng.random::<f64>())
            };
            let mut bytes = datagram.to_vec();
            if self.config.bit_error_rate > 0.0 {
                let p_any = 1.0 - (1.0 - self.config.bit_error_rate).powf(bytes.len() as f64 * 8.0);
                if self.rng.random_bool(p_any.clamp(0.0, 1.0)) {
                    let bit = self.rng.random_range(0..bytes.len() * 8);
                    bytes[bit / 8] ^= 1 << (bit % 8);
                    self.stats[i].corrupted += 1;
                }
            }
            self.stats[i].delivered += 1;
            out.push((done + self.config.delay + jitter, bytes));
        }
        out
    }

    fn lose(&mut self, i: usize) -> bool {
        match self.config.loss {
            Loss::None => false,
            Loss::Random(p) => p > 0.0 && self.rng.random_bool(p.clamp(0.0, 1.0)),
            Loss::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let flip = if self.bad[i] {
                    p_bad_to_good
                } else {
                    p_good_to_bad
                };
                if flip > 0.0 && self.rng.random_bool(flip.clamp(0.0, 1.0)) {
                    self.bad[i] = !self.bad[i];
                }
                let p = if self.bad[i] { loss_bad } else { loss_good };
                p > 0.0 && self.rng.random_bool(p.clamp(0.0, 1.0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_delays_and_windows() {
        let t0 = Instant::now();
        let mut c = LinkModelConfig::ideal(Duration::from_millis(40));
        c.up_bps = Some(8000); // 1000 bytes/s
        c.windows = Some(vec![(Duration::from_secs(1), Duration::from_secs(3))]);
        let mut m = LinkModel::new(c, 1, t0);
        assert!(
            m.transmit(t0, Direction::Up, &[0; 100]).is_empty(),
            "no contact before the window"
        );
        let t1 = t0 + Duration::from_secs(1);
        let a = m.transmit(t1, Direction::Up, &[0; 100]);
        let b = m.transmit(t1, Direction::Up, &[0; 100]);
        assert_eq!(a[0].0, t1 + Duration::from_millis(140));
        assert_eq!(
            b[0].0,
            t1 + Duration::from_millis(240),
            "queued behind the first"
        );
        assert_eq!(m.next_change(t1), Some(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn a_burst_over_the_queue_loses_exactly_the_excess() {
        let t0 = Instant::now();
        let mut c = LinkModelConfig::ideal(Duration::from_millis(10));
        c.up_bps = Some(80_000); // 10,000 bytes/s: 100 ms per 1000-byte datagram
        c.queue_packets = Some(20);
        let mut m = LinkModel::new(c.clone(), 1, t0);
        let delivered = (0..50)
            .filter(|_| !m.transmit(t0, Direction::Up, &[0; 1000]).is_empty())
            .count();
        assert_eq!(delivered, 20);
        assert_eq!(m.stats(Direction::Up).overflowed, 30);
        // The other way is a queue of its own.
        assert_eq!(m.transmit(t0, Direction::Down, &[0; 1000]).len(), 1);
        // Once two datagrams went out, two fit again, and no more.
        let t1 = t0 + Duration::from_millis(200);
        let accepted = (0..5)
            .filter(|_| !m.transmit(t1, Direction::Up, &[0; 1000]).is_empty())
            .count();
        assert_eq!(accepted, 2);
        assert_eq!(m.stats(Direction::Up).overflowed, 33);

        // In bytes: 5,000 bytes hold five 1000-byte datagrams.
        c.queue_packets = None;
        c.queue_bytes = Some(5_000);
        let mut m = LinkModel::new(c, 1, t0);
        let delivered = (0..12)
            .filter(|_| !m.transmit(t0, Direction::Up, &[0; 1000]).is_empty())
            .count();
        assert_eq!(delivered, 5);
        assert_eq!(m.stats(Direction::Up).overflowed, 7);
        assert_eq!(m.stats(Direction::Up).delivered, 5);
    }

    /// Gilbert–Elliott as configured by [`Loss::bursty`]: over a long run, the share lost is the
    /// mean asked for, a stay in the bad state lasts the burst length asked for on average, and
    /// losses cluster (a lost datagram is followed by another far more often than the mean rate).
    #[test]
    fn bursty_loss_has_its_mean_and_burst_length() {
        for (mean, burst, seed) in [
            (0.01, 8.0, 1),
            (0.10, 8.0, 2),
            (0.10, 3.0, 3),
            (0.05, 20.0, 4),
        ] {
            let mut c = LinkModelConfig::ideal(Duration::ZERO);
            c.loss = Loss::bursty(mean, burst);
            let mut m = LinkModel::new(c, seed, Instant::now());
            let now = Instant::now();
            let n = 2_000_000;
            let (mut lost, mut lost_after_lost, mut was_lost) = (0u64, 0u64, false);
            let (mut stays, mut bad_datagrams) = (0u64, 0u64);
            let mut was_bad = false;
            for _ in 0..n {
                let gone = m.transmit(now, Direction::Up, &[0]).is_empty();
                let bad = m.bad[0];
                if bad {
                    bad_datagrams += 1;
                    if !was_bad {
                        stays += 1;
                    }
                }
                if gone {
                    lost += 1;
                    if was_lost {
                        lost_after_lost += 1;
                    }
                }
                (was_lost, was_bad) = (gone, bad);
            }
            let rate = lost as f64 / n as f64;
            assert!(
                (rate - mean).abs() < mean * 0.08,
                "mean {mean}, burst {burst}: lost {rate}"
            );
            let stay = bad_datagrams as f64 / stays as f64;
            assert!(
                (stay - burst).abs() < burst * 0.08,
                "mean {mean}, burst {burst}: bad-state stays of {stay} datagrams"
            );
            // Independent loss would follow a loss with one at the mean rate.
            let p_again = lost_after_lost as f64 / lost as f64;
            assert!(
                p_again > 2.0 * mean,
                "mean {mean}, burst {burst}: a loss follows a loss with p {p_again}"
            );
        }
    }

    /// The same seed draws the same losses; another seed, others.
    #[test]
    fn bursty_loss_is_seeded() {
        let pattern = |seed| {
            let mut c = LinkModelConfig::ideal(Duration::ZERO);
            c.loss = Loss::bursty(0.1, 8.0);
            let mut m = LinkModel::new(c, seed, Instant::now());
            let now = Instant::now();
            (0..10_000)
                .map(|_| m.transmit(now, Direction::Up, &[0]).is_empty())
                .collect::<Vec<bool>>()
        };
        assert_eq!(pattern(5), pattern(5));
        assert_ne!(pattern(5), pattern(6));
    }

    #[test]
    fn bursty_loss_hits_its_mean() {
        let mut c = LinkModelConfig::ideal(Duration::ZERO);
        c.loss = Loss::bursty(0.10, 8.0);
        let mut m = LinkModel::new(c, 7, Instant::now());
        let now = Instant::now();
        let n = 200_000;
        let lost = (0..n)
            .filter(|_| m.transmit(now, Direction::Up, &[0]).is_empty())
            .count();
        let rate = lost as f64 / n as f64;
        assert!((rate - 0.10).abs() < 0.01, "mean loss {rate}");
    }
}

/// Datagrams on their way, released in arrival order (ties in sending order).
#[derive(Debug, Default)]
pub struct Deliveries<T> {
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, u64, DeliveryItem<T>)>>,
    order: u64,
}

/// Wraps a payload so the heap orders by time and sending order only.
#[derive(Debug)]
struct DeliveryItem<T>(T);

impl<T> PartialEq for DeliveryItem<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T> Eq for DeliveryItem<T> {}
impl<T> PartialOrd for DeliveryItem<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for DeliveryItem<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<T> Deliveries<T> {
    /// Nothing on its way.
    pub fn new() -> Deliveries<T> {
        Deliveries {
            heap: std::collections::BinaryHeap::new(),
            order: 0,
        }
    }

    /// Something arriving at `at`.
    pub fn push(&mut self, at: Instant, item: T) {
        self.order += 1;
        self.heap
            .push(std::cmp::Reverse((at, self.order, DeliveryItem(item))));
    }

    /// When the next arrival is due.
    pub fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|r| r.0.0)
    }

    /// The next arrival due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.next_at()? > now {
            return None;
        }
        self.heap.pop().map(|r| (r.0.2).0)
    }
}
