//! Issue 17, responsive under load (simulated time): through the link model with a radio's
//! bounded drop-tail queue, at 9.6 kbit/s, 256 kbit/s and 2 Mbit/s and round trips of 80 and
//! 600 ms, a 100-byte message queued in the middle of a bulk object reaches the other side within
//! a round trip and about a second, whether the pass has a configured rate or is paced to the
//! delivery-rate estimate, and the object still goes at close to the link's rate (a cold start
//! without a configured rate at 9.6 kbit/s less so: see the test).
//!
//! And the estimate does not collapse where a datagram alone takes longer than the queue the
//! pace allows to cross the link (1500 bytes at 9.6 kbit/s: 1.25 s), nor when the path's round
//! trip steps up for good in the middle of a transfer: the object goes on at close to the rate.

use std::time::{Duration, Instant};

use link::sim::SessionParams;
use link::{Deliveries, LinkModel, LinkModelConfig};
use sync::{Event, MemStore, Session, SessionConfig};
use wire::{Digest, Direction, LinkKey};

/// What one run measured.
struct Run {
    /// From queueing the message to its arrival.
    message_latency: Duration,
    /// Object bytes over the time to deliver them, as a share of the link rate.
    goodput: f64,
    /// The same from the message on (the transfer's second half, past its cold start, and past
    /// the round trip's step when there is one).
    goodput_after: f64,
    /// Datagrams the radio's queue dropped.
    overflowed: u64,
}

/// One object of 40 s of the link's capacity from the ground, and a message queued in its
/// middle; the pass paced at `rate` (`None`: the estimate). `datagram`: the link's datagram size.
fn run(rate: u64, rtt: Duration, configured: bool, datagram: usize) -> Run {
    run_with(rate, rtt, configured, datagram, 40.0, Duration::ZERO)
}

/// Like [`run`], with an object of `seconds` of the link's capacity, and a path whose round
/// trip grows by `step` when the message is queued (each way by half).
fn run_with(
    rate: u64,
    rtt: Duration,
    configured: bool,
    datagram: usize,
    seconds: f64,
    step: Duration,
) -> Run {
    let t0 = Instant::now();
    let mut c = LinkModelConfig::ideal(rtt / 2);
    c.up_bps = Some(rate);
    c.down_bps = Some(rate);
    (c.queue_packets, c.queue_bytes) = LinkModelConfig::default_queue(Some(rate));
    let mut m = LinkModel::new(c, 1, t0);
    let params = SessionParams::standard();
    let config = |sends, inc| SessionConfig {
        key: LinkKey::from_bytes([9; 32]),
        sends,
        incarnation: inc,
        datagram_bytes: datagram,
        reorder_window: params.reorder_window,
        ack_every: params.ack_every,
        ack_delay: params.ack_delay,
        persist_bytes: params.persist_bytes,
        persist_interval: params.persist_interval,
        spool_expiry: params.spool_expiry,
    };
    let size = (rate as f64 / 8.0 * seconds) as usize;
    let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let digest = Digest::of(&bytes);
    let mut store = MemStore::new();
    store.objects.insert(digest, bytes);
    let mut ground = Session::new(config(Direction::Up, 1), Box::new(store)).expect("memory store");
    let mut flight =
        Session::new(config(Direction::Down, 2), Box::new(MemStore::new())).expect("memory store");
    let session_rate = configured.then_some(rate);
    ground.set_link(t0, true, session_rate);
    flight.set_link(t0, true, session_rate);
    ground
        .send_object(digest, size as u64, 2)
        .expect("memory store");
    let message_at = t0 + Duration::from_secs_f64(seconds / 2.0);
    let mut message_sent = false;
    let (mut message_latency, mut object_done) = (None, None);
    let mut received_at_message = 0;
    let mut heap: Deliveries<(bool, Vec<u8>)> = Deliveries::new();
    let mut now = t0;
    while now < t0 + Duration::from_secs(600)
        && (message_latency.is_none() || object_done.is_none())
    {
        if !message_sent && now >= message_at {
            ground.send_message(vec![7; 100]).expect("memory store");
            message_sent = true;
            received_at_message = flight.stats().payload_received;
        }
        // The path's round trip after the step.
        let extra = if message_sent {
            step / 2
        } else {
            Duration::ZERO
        };
        for (is_ground, s) in [(true, &mut ground), (false, &mut flight)] {
            s.handle_timeout(now);
            while let Some(p) = s.poll_transmit(now) {
                let dir = if is_ground {
                    Direction::Up
                } else {
                    Direction::Down
                };
                for (at, b) in m.transmit(now, dir, &p) {
                    heap.push(at + extra, (!is_ground, b));
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
    let after = done.saturating_sub(message_at.duration_since(t0));
    Run {
        message_latency: message_latency.expect("the message arrives"),
        goodput: size as f64 / done.as_secs_f64() / (rate as f64 / 8.0),
        goodput_after: (size as u64).saturating_sub(received_at_message) as f64
            / after.as_secs_f64()
            / (rate as f64 / 8.0),
        overflowed: m.stats(Direction::Up).overflowed,
    }
}

#[test]
fn a_message_does_not_wait_behind_an_object_at_any_rate() {
    let mut failures = Vec::new();
    for rate in [9_600, 256_000, 2_000_000] {
        // At 9.6 kbit/s a 1500-byte datagram takes 1.25 s on the air by itself: such a link
        // declares smaller ones (the systems file's datagram_bytes).
        let datagram = if rate < 64_000 { 512 } else { 1500 };
        for rtt in [Duration::from_millis(80), Duration::from_millis(600)] {
            for configured in [true, false] {
                let r = run(rate, rtt, configured, datagram);
                let bound = rtt + Duration::from_secs(1);
                println!(
                    "{rate:>9} bit/s, RTT {rtt:>5?}, {:<10}: message after {:.2} s (bound {:.2} s), object goodput {:.3}, queue overflows {}",
                    if configured {
                        "configured"
                    } else {
                        "estimated"
                    },
                    r.message_latency.as_secs_f64(),
                    bound.as_secs_f64(),
                    r.goodput,
                    r.overflowed
                );
                // A cold start without a configured rate at 9.6 kbit/s learns slowly: its first ten
                // datagrams are seconds of data there, and acknowledgements come seconds apart.
                // Every flight system has a configured rate (its stations'); the estimate is for
                // links like the Engineering Model's.
                let least = match (configured, rate) {
                    (true, _) => 0.9,
                    (false, 9_600) => 0.7,
                    (false, _) => 0.85,
                };
                if r.message_latency > bound || r.goodput < least {
                    failures.push((rate, rtt, configured, r.message_latency, r.goodput));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// Issue 17, the estimate's collapse: at 9.6 kbit/s a 1500-byte datagram alone is 1.25 s on the
/// air, longer than the queue the pace allowed, and a round trip measured on the small handshake
/// packets was never forgotten, so the queue seemed always full, every round drained at 0.75 and
/// the estimate fell to its floor; a path whose round trip steps up for good did the same. The
/// least round trip is now the data's, over a window; the allowance is at least a few
/// datagrams' time on the air; a drain lasts one round.
#[test]
fn the_estimate_holds_with_long_datagrams_and_a_round_trip_that_steps_up() {
    let mut failures = Vec::new();
    for datagram in [1500, 512] {
        for (rtt, step) in [
            (Duration::from_millis(80), Duration::ZERO),
            (Duration::from_millis(80), Duration::from_millis(800)),
            (Duration::from_millis(600), Duration::from_secs(2)),
        ] {
            let r = run_with(9_600, rtt, false, datagram, 240.0, step);
            println!(
                "9600 bit/s, {datagram:>4} B datagrams, RTT {rtt:>5?} then {:>5?}: goodput {:.3}, from the middle on {:.3}, message after {:.2} s, queue overflows {}",
                rtt + step,
                r.goodput,
                r.goodput_after,
                r.message_latency.as_secs_f64(),
                r.overflowed
            );
            if r.goodput_after < 0.85 {
                failures.push((datagram, rtt, step, r.goodput_after));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}
