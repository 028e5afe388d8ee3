//! Issue 17, the tail of a transfer at a configured rate (simulated time): once every packet of
//! an object is on its way, the link would idle for a round trip until the receiver's word comes
//! back, and a loss among the last packets would cost that round trip, a probe timeout and
//! another round trip to repair. The idle time carries spare copies of the packets in flight,
//! newest first, so the object completes about when it would have without the loss.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sync::{Event, MemStore, Session, SessionConfig};
use wire::{Digest, Direction, LinkKey};

const RATE: u64 = 256_000;
const ONE_WAY: Duration = Duration::from_millis(300);

fn config(sends: Direction, incarnation: u64) -> SessionConfig {
    SessionConfig {
        key: LinkKey::from_bytes([8; 32]),
        sends,
        incarnation,
        datagram_bytes: 1500,
        reorder_window: Duration::from_millis(50),
        ack_every: 16,
        ack_delay: Duration::from_millis(20),
        persist_bytes: 64 << 10,
        persist_interval: Duration::from_secs(1),
        spool_expiry: Duration::from_secs(7 * 24 * 3600),
    }
}

/// What one run saw.
struct Tail {
    /// When the last of the object's first transmissions left the ground.
    last_new_sent: Duration,
    /// When the flight had the whole object.
    received: Duration,
    ground: sync::SessionStats,
    flight: sync::SessionStats,
}

/// An object of `packets` full data packets up a link of `RATE` and `ONE_WAY` each way, the
/// ground paced at a configured rate (`configured`) or to its estimate; the first transmissions
/// of the last `lost` data packets are lost.
fn run(packets: usize, lost: usize, configured: bool) -> Tail {
    let t0 = Instant::now();
    let payload = sync::payload_size(1500);
    let object: Vec<u8> = (0..packets * payload).map(|i| (i % 253) as u8).collect();
    let digest = Digest::of(&object);
    let mut store = MemStore::new();
    store.objects.insert(digest, object.clone());
    let mut ground = Session::new(config(Direction::Up, 1), Box::new(store)).unwrap();
    let mut flight = Session::new(config(Direction::Down, 2), Box::new(MemStore::new())).unwrap();
    let rate = configured.then_some(RATE);
    ground.set_link(t0, true, rate);
    flight.set_link(t0, true, rate);
    // The handshake first, so that the object's packets are counted from the first.
    ground.send_message(b"hello".to_vec()).unwrap();
    let mut in_transit: BTreeMap<(Instant, u64), (bool, Vec<u8>)> = BTreeMap::new();
    let mut n = 0u64;
    let mut now = t0;
    let mut object_sent = false;
    let (mut data_packets, mut last_new_sent, mut received) = (0usize, None, None);
    while now < t0 + Duration::from_secs(120) && received.is_none() {
        if !object_sent && ground.is_idle() {
            ground.send_object(digest, object.len() as u64, 2).unwrap();
            object_sent = true;
        }
        for (up, s) in [(true, &mut ground), (false, &mut flight)] {
            s.handle_timeout(now);
            while let Some(p) = s.poll_transmit(now) {
                if up && object_sent && p.len() > 1000 {
                    data_packets += 1;
                    if data_packets == packets {
                        last_new_sent = Some(now.duration_since(t0));
                    }
                    // The first transmissions of the last `lost` packets are lost.
                    if data_packets > packets - lost && data_packets <= packets {
                        continue;
                    }
                }
                // Each side is paced to the link's rate: the datagram arrives after its time on
                // the air and the delay.
                let air = Duration::from_secs_f64(p.len() as f64 * 8.0 / RATE as f64);
                n += 1;
                in_transit.insert((now + air + ONE_WAY, n), (!up, p));
            }
        }
        while let Some(e) = flight.poll_event() {
            match e {
                Event::ObjectReceived { digest: d, .. } if d == digest => {
                    received = Some(now.duration_since(t0));
                }
                Event::Message { seq, .. } => flight.message_done(seq),
                _ => {}
            }
        }
        while ground.poll_event().is_some() {}
        let mut next = in_transit.keys().next().map(|&(t, _)| t);
        for t in [ground.poll_timeout(), flight.poll_timeout()]
            .into_iter()
            .flatten()
        {
            next = Some(next.map_or(t, |n: Instant| n.min(t)));
        }
        now = next
            .unwrap_or(now + Duration::from_millis(10))
            .max(now + Duration::from_micros(50));
        while let Some(entry) = in_transit.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (to_ground, p) = entry.remove();
            if to_ground {
                ground.handle_datagram(now, &p);
            } else {
                flight.handle_datagram(now, &p);
            }
        }
    }
    Tail {
        last_new_sent: last_new_sent.expect("every packet went"),
        received: received.expect("the object arrives"),
        ground: ground.stats().clone(),
        flight: flight.stats().clone(),
    }
}

#[test]
fn losses_at_the_end_of_a_transfer_cost_no_round_trip_at_a_configured_rate() {
    let rtt = 2 * ONE_WAY;
    for lost in [0, 1, 3] {
        let t = run(40, lost, true);
        let tail = t.received - t.last_new_sent;
        println!(
            "{lost} of the last packets lost: received {:.2} s after the last new packet left, {} spare bytes, {} duplicates",
            tail.as_secs_f64(),
            t.ground.payload_spare,
            t.flight.duplicates
        );
        // The last packet's own trip is a one-way delay and its time on the air; each lost one
        // is copied in the next slots. Repairing from the receiver's word would take a round
        // trip more at least (the loss is heard of a round trip after it), and the probe
        // timeout besides when the very last packets are lost.
        let air = Duration::from_secs_f64(1500.0 * 8.0 / RATE as f64);
        let bound = ONE_WAY + air * (lost as u32 + 2);
        assert!(
            tail <= bound,
            "{lost} lost: {tail:?} after the last new packet, over {bound:?} (a round trip is {rtt:?}): {:?}",
            t.ground
        );
        assert_eq!(t.ground.payload_resent, 0, "{:?}", t.ground);
        if lost > 0 {
            assert!(t.ground.payload_spare > 0, "{:?}", t.ground);
        }
    }
}

/// Without a configured rate the link may be shared with whatever the estimate measures: no
/// spare copies, and a loss at the end is repaired from the receiver's word.
#[test]
fn no_spare_copies_without_a_configured_rate() {
    let t = run(40, 1, false);
    assert_eq!(t.ground.payload_spare, 0, "{:?}", t.ground);
    assert!(t.ground.payload_resent > 0, "{:?}", t.ground);
    assert!(
        t.received - t.last_new_sent > 2 * ONE_WAY,
        "the loss was repaired from the receiver's word, a round trip at least"
    );
}
