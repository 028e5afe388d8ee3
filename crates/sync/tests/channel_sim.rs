//! Two channels on a simulated wire: seeded loss, duplication, reordering, corruption and
//! restarts. Every message must arrive whole, in order, exactly once per incarnation pair.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sync::{Channel, ChannelConfig};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy)]
struct Faults {
    loss: f64,
    duplicate: f64,
    corrupt: f64,
    max_jitter_ms: u64,
}

fn config(incarnation: u64) -> ChannelConfig {
    ChannelConfig {
        incarnation,
        chunk_size: 200,
        window: 32,
        initial_rto: Duration::from_millis(200),
        rate_bytes_per_sec: None,
        ack_delay: Duration::from_millis(5),
    }
}

struct InFlight {
    at: Instant,
    to_b: bool,
    bytes: Vec<u8>,
}

/// Sends `messages` from a to b through the faulty wire and returns what b delivered.
fn run(seed: u64, faults: Faults, messages: &[Vec<u8>]) -> (Vec<Vec<u8>>, sync::ChannelStats) {
    let mut rng = Rng(seed | 1);
    let start = Instant::now();
    let mut now = start;
    let mut a = Channel::new(config(1 + rng.below(1 << 40)));
    let mut b = Channel::new(config(1 + rng.below(1 << 40)));
    for m in messages {
        a.send(m.clone());
    }
    let mut wire: VecDeque<InFlight> = VecDeque::new();
    let mut delivered = Vec::new();
    let one_way = Duration::from_millis(40);
    for _step in 0..200_000 {
        for (from_a, ch) in [(true, &mut a), (false, &mut b)] {
            while let Some(d) = ch.poll_transmit(now) {
                if rng.chance(faults.loss) {
                    continue;
                }
                let copies = if rng.chance(faults.duplicate) { 2 } else { 1 };
                for _ in 0..copies {
                    let mut bytes = d.clone();
                    if rng.chance(faults.corrupt) {
                        let i = rng.below(bytes.len() as u64) as usize;
                        bytes[i] ^= 1 << rng.below(8);
                    }
                    let jitter = Duration::from_millis(rng.below(faults.max_jitter_ms + 1));
                    wire.push_back(InFlight {
                        at: now + one_way + jitter,
                        to_b: from_a,
                        bytes,
                    });
                }
            }
        }
        while let Some(m) = b.poll_message() {
            delivered.push(m);
        }
        if delivered.len() == messages.len() && a.is_idle() {
            return (delivered, a.stats().clone());
        }
        // Advance to the next event: a datagram's arrival or a channel deadline.
        let next_arrival = wire.iter().map(|f| f.at).min();
        let next = [next_arrival, a.poll_timeout(), b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("a stuck simulation: nothing in flight and no timer");
        now = now.max(next);
        let (due, rest): (Vec<_>, Vec<_>) = wire.drain(..).partition(|f| f.at <= now);
        wire = rest.into();
        for f in due {
            if f.to_b {
                b.handle_datagram(now, &f.bytes);
            } else {
                a.handle_datagram(now, &f.bytes);
            }
        }
        a.handle_timeout(now);
        b.handle_timeout(now);
    }
    panic!(
        "seed {seed}: not done after 200k steps ({} of {} delivered)",
        delivered.len(),
        messages.len()
    );
}

fn messages(rng: &mut Rng) -> Vec<Vec<u8>> {
    (0..1 + rng.below(12))
        .map(|i| {
            let len = rng.below(5000) as usize;
            (0..len).map(|j| (i as usize * 31 + j * 7) as u8).collect()
        })
        .collect()
}

#[test]
fn delivers_in_order_under_faults() {
    let scenarios = std::env::var("ORBITDOCK_SIM_SCENARIOS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300u64);
    for seed in 1..=scenarios {
        let mut rng = Rng(seed * 0x9E37_79B9);
        let faults = Faults {
            loss: rng.below(30) as f64 / 100.0,
            duplicate: rng.below(10) as f64 / 100.0,
            corrupt: rng.below(5) as f64 / 100.0,
            max_jitter_ms: rng.below(80),
        };
        let msgs = messages(&mut rng);
        let (got, _) = run(seed, faults, &msgs);
        assert_eq!(got, msgs, "seed {seed}: messages differ");
    }
}

#[test]
fn a_clean_wire_resends_nothing() {
    let mut rng = Rng(7);
    let msgs = messages(&mut rng);
    let faults = Faults {
        loss: 0.0,
        duplicate: 0.0,
        corrupt: 0.0,
        max_jitter_ms: 0,
    };
    let (got, stats) = run(7, faults, &msgs);
    assert_eq!(got, msgs);
    assert_eq!(stats.chunks_resent, 0);
}

#[test]
fn a_restarted_receiver_gets_every_unacknowledged_message_again() {
    let now = Instant::now();
    let mut a = Channel::new(config(11));
    let mut b = Channel::new(config(22));
    a.send(b"first".to_vec());
    // First contact: a probes, b says who it is, a sends for real.
    let probe = a.poll_transmit(now).unwrap();
    b.handle_datagram(now, &probe);
    let hello = b.poll_transmit(now).unwrap();
    a.handle_datagram(now, &hello);
    let data = a.poll_transmit(now).unwrap();
    b.handle_datagram(now, &data);
    assert_eq!(b.poll_message().as_deref(), Some(&b"first"[..]));

    // b restarts before acknowledging; a's next datagram meets a stranger.
    let mut b2 = Channel::new(config(33));
    a.send(b"second".to_vec());
    let t = now + Duration::from_millis(1);
    let mut got = Vec::new();
    let mut clock = t;
    for _ in 0..50 {
        while let Some(d) = a.poll_transmit(clock) {
            b2.handle_datagram(clock, &d);
        }
        while let Some(d) = b2.poll_transmit(clock) {
            a.handle_datagram(clock, &d);
        }
        while let Some(m) = b2.poll_message() {
            got.push(m);
        }
        clock += Duration::from_millis(100);
        a.handle_timeout(clock);
        b2.handle_timeout(clock);
    }
    assert_eq!(got, vec![b"first".to_vec(), b"second".to_vec()]);
    assert_eq!(a.stats().peer_restarts, 1);
    assert!(a.is_idle());
}
