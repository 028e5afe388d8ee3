//! What the outbox says about the messages in it: the application asks whether a message's bytes
//! already wait there before queuing them again.

use std::time::{Duration, Instant};

use sync::{Event, MemStore, Session, SessionConfig};
use wire::{Digest, Direction, LinkKey};

fn config(sends: Direction, incarnation: u64) -> SessionConfig {
    SessionConfig {
        key: LinkKey::from_bytes([5; 32]),
        sends,
        incarnation,
        datagram_bytes: 1500,
        reorder_window: Duration::from_millis(50),
        ack_every: 1,
        ack_delay: Duration::from_millis(20),
        persist_bytes: 64 << 10,
        persist_interval: Duration::from_secs(1),
        spool_expiry: Duration::from_secs(7 * 24 * 3600),
    }
}

#[test]
fn a_message_waits_in_the_outbox_until_the_peer_commits_it() {
    let now = Instant::now();
    let mut ground = Session::new(config(Direction::Up, 1), Box::new(MemStore::new())).unwrap();
    let mut flight = Session::new(config(Direction::Down, 2), Box::new(MemStore::new())).unwrap();
    ground.set_link(now, true, None);
    flight.set_link(now, true, None);
    let plan = b"a plan".to_vec();
    let digest = Digest::of(&plan);
    assert!(!ground.has_outgoing_message(&digest));
    ground.send_message(plan.clone()).unwrap();
    assert!(ground.has_outgoing_message(&digest));
    assert!(!ground.has_outgoing_message(&Digest::of(b"another")));

    // Drive both until the ground's outbox is empty (a bounded number of rounds).
    let mut t = now;
    for _ in 0..200 {
        while let Some(p) = ground.poll_transmit(t) {
            flight.handle_datagram(t, &p);
        }
        while let Some(p) = flight.poll_transmit(t) {
            ground.handle_datagram(t, &p);
        }
        if ground.is_idle() {
            break;
        }
        t += Duration::from_millis(10);
        ground.handle_timeout(t);
        flight.handle_timeout(t);
    }
    assert!(ground.is_idle());
    assert!(!ground.has_outgoing_message(&digest));
    let delivered: Vec<Event> = std::iter::from_fn(|| flight.poll_event()).collect();
    assert_eq!(
        delivered,
        [Event::Message {
            seq: 0,
            bytes: plan
        }]
    );
}
