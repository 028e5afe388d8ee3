//! Pacing without a configured rate (simulated time): through a 256 kbit/s link with a radio's
//! bounded queue, a 100-byte message queued in the middle of a 1.5 MB object reaches the other
//! side within a round trip and about a second, and the object still goes at close to the link's
//! rate.

use std::time::{Duration, Instant};

use link::sim::SessionParams;
use link::{Deliveries, LinkModel, LinkModelConfig};
use sync::{Event, MemStore, Session, SessionConfig};
use wire::{Digest, Direction, LinkKey};

const RATE: u64 = 256_000;
const DELAY: Duration = Duration::from_millis(300);
const OBJECT: usize = 1_500_000;

struct Run {
    /// From queueing the message to its arrival.
    message_latency: Duration,
    /// Object bytes over the time to deliver them, as a share of the link rate.
    goodput: f64,
    overflowed: u64,
}

fn run(session_rate: Option<u64>, queue: bool) -> Run {
    let t0 = Instant::now();
    let mut c = LinkModelConfig::ideal(DELAY);
    c.up_bps = Some(RATE);
    c.down_bps = Some(RATE);
    if queue {
        let (p, b) = LinkModelConfig::default_queue(Some(RATE));
        c.queue_packets = p;
        c.queue_bytes = b;
    }
    let mut m = LinkModel::new(c, 1, t0);
    let params = SessionParams::standard();
    let config = |sends, inc| SessionConfig {
        key: LinkKey::from_bytes([9; 32]),
        sends,
        incarnation: inc,
        packet_size: params.packet_size,
        reorder_window: params.reorder_window,
        ack_every: params.ack_every,
        ack_delay: params.ack_delay,
        persist_bytes: params.persist_bytes,
        persist_interval: params.persist_interval,
    };
    let bytes: Vec<u8> = (0..OBJECT).map(|i| (i * 31 % 251) as u8).collect();
    let digest = Digest::of(&bytes);
    let mut store = MemStore::new();
    store.objects.insert(digest, bytes);
    let mut ground = Session::new(config(Direction::Up, 1), Box::new(store)).expect("memory store");
    let mut flight =
        Session::new(config(Direction::Down, 2), Box::new(MemStore::new())).expect("memory store");
    ground.set_link(t0, true, session_rate);
    flight.set_link(t0, true, session_rate);
    ground
        .send_object(digest, OBJECT as u64, 2)
        .expect("memory store");
    let message_at = t0 + Duration::from_secs(20);
    let mut message_sent = false;
    let (mut message_latency, mut object_done) = (None, None);
    let mut heap: Deliveries<(bool, Vec<u8>)> = Deliveries::new();
    let mut now = t0;
    while now < t0 + Duration::from_secs(600)
        && (message_latency.is_none() || object_done.is_none())
    {
        if !message_sent && now >= message_at {
            ground.send_message(vec![7; 100]).expect("memory store");
            message_sent = true;
        }
        for (is_ground, s) in [(true, &mut ground), (false, &mut flight)] {
            s.handle_timeout(now);
            while let Some(p) = s.poll_transmit(now) {
                let dir = if is_ground {
                    Direction::Up
                } else {
                    Direction::Down
                };
                for (at, b) in m.transmit(now, dir, &p) {
                    heap.push(at, (!is_ground, b));
                }
            }
        }
        while let Some(e) = flight.poll_event() {
            match e {
                Event::Message { seq, .. } => {
                    message_latency = Some(now.duration_since(message_at));
                    flight.message_done(seq);
                }
                Event::ObjectReceived { .. } => object_done = Some(now.duration_since(t0)),
                _ => {}
            }
        }
        while ground.poll_event().is_some() {}
        let mut next = heap.next_at();
        for t in [
            ground.poll_timeout(),
            flight.poll_timeout(),
            Some(message_at),
        ]
        .into_iter()
        .flatten()
        .filter(|&t| t > now || !message_sent)
        {
            next = Some(next.map_or(t, |n: Instant| n.min(t)));
        }
        let mut next = next.unwrap_or(now + Duration::from_millis(100));
        if next <= now {
            next = now + Duration::from_micros(50);
        }
        now = next;
        while let Some((to_ground, b)) = heap.pop_due(now) {
            if to_ground {
                ground.handle_datagram(now, &b);
            } else {
                flight.handle_datagram(now, &b);
            }
        }
    }
    let done = object_done.expect("the object arrives");
    Run {
        message_latency: message_latency.expect("the message arrives"),
        goodput: OBJECT as f64 / done.as_secs_f64() / (RATE as f64 / 8.0),
        overflowed: m.stats(Direction::Up).overflowed,
    }
}

#[test]
fn a_message_does_not_wait_behind_an_unpaced_object() {
    let configured = run(Some(RATE), true);
    let estimated = run(None, true);
    let unbounded = run(None, false);
    for (name, r) in [
        ("configured rate, bounded queue", &configured),
        ("estimated rate, bounded queue", &estimated),
        ("estimated rate, unbounded queue", &unbounded),
    ] {
        println!(
            "{name}: message after {:.2} s, object goodput {:.3}, queue overflows {}",
            r.message_latency.as_secs_f64(),
            r.goodput,
            r.overflowed
        );
    }
    let bound = 2 * DELAY + Duration::from_secs(1);
    assert!(
        estimated.message_latency <= bound,
        "message waited {:?} behind the object (bound {bound:?})",
        estimated.message_latency
    );
    assert!(
        unbounded.message_latency <= bound,
        "message waited {:?} behind the object without a queue limit",
        unbounded.message_latency
    );
    assert!(
        estimated.goodput >= 0.85 && unbounded.goodput >= 0.85,
        "goodput {:.3} / {:.3}",
        estimated.goodput,
        unbounded.goodput
    );
}
