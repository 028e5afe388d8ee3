//! Two ends whose `datagram_bytes` differ (a system configured differently on the ground and
//! onboard). Each says its size in its `Hello`; both warn once and use the smaller, so transfers
//! complete instead of every data chunk being taken for malformed at the other end. A size
//! changed at one end in the middle of a transfer starts what was in progress again, at the
//! new size, at both ends.

mod common;

use std::time::{Duration, Instant};

use sync::{Event, Session, SessionConfig};
use wire::{Digest, Direction, LinkKey};

use common::Shared;

fn config(sends: Direction, incarnation: u64, datagram_bytes: usize) -> SessionConfig {
    SessionConfig {
        key: LinkKey::from_bytes([2; 32]),
        sends,
        incarnation,
        datagram_bytes,
        reorder_window: Duration::from_millis(50),
        ack_every: 16,
        ack_delay: Duration::from_millis(20),
        persist_bytes: 16 << 10,
        persist_interval: Duration::from_secs(1),
        spool_expiry: Duration::from_secs(7 * 24 * 3600),
    }
}

fn object(len: usize, salt: u8) -> (Digest, Vec<u8>) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(salt))
        .collect();
    (Digest::of(&bytes), bytes)
}

/// What a run saw: each side's events, and the largest datagram each sent after its first
/// mismatch event.
#[derive(Default)]
struct Seen {
    events: [Vec<Event>; 2],
    largest_after_mismatch: [usize; 2],
}

/// Runs both sides, lossless and without delay, in steps of 10 ms, until `done` or `steps`.
fn run(
    now: &mut Instant,
    s: &mut [Session; 2],
    seen: &mut Seen,
    steps: usize,
    done: impl Fn(&Seen) -> bool,
) {
    for _ in 0..steps {
        *now += Duration::from_millis(10);
        for side in s.iter_mut() {
            side.handle_timeout(*now);
        }
        loop {
            let mut moved = false;
            for i in 0..2 {
                while let Some(p) = s[i].poll_transmit(*now) {
                    let told = seen.events[i]
                        .iter()
                        .any(|e| matches!(e, Event::DatagramMismatch { .. }));
                    if told {
                        let l = &mut seen.largest_after_mismatch[i];
                        *l = (*l).max(p.len());
                    }
                    s[1 - i].handle_datagram(*now, &p);
                    moved = true;
                }
                while let Some(e) = s[i].poll_event() {
                    if let Event::Message { seq, .. } = e {
                        s[i].message_done(seq);
                    }
                    seen.events[i].push(e);
                }
            }
            if !moved {
                break;
            }
        }
        if done(seen) {
            return;
        }
    }
}

fn mismatches(events: &[Event]) -> Vec<(usize, usize, usize)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::DatagramMismatch { ours, peers, using } => Some((*ours, *peers, *using)),
            _ => None,
        })
        .collect()
}

#[test]
fn ends_configured_with_different_datagram_sizes_agree_on_the_smaller() {
    let mut now = Instant::now();
    let (ground, flight) = (Shared::default(), Shared::default());
    let (up, up_bytes) = object(60_000, 1);
    let (down, down_bytes) = object(40_000, 2);
    ground.with(|s| s.objects.insert(up, up_bytes.clone()));
    flight.with(|s| s.objects.insert(down, down_bytes.clone()));
    let mut s = [
        Session::new(config(Direction::Up, 1, 1500), Box::new(ground.clone())).unwrap(),
        Session::new(config(Direction::Down, 2, 512), Box::new(flight.clone())).unwrap(),
    ];
    for side in s.iter_mut() {
        side.set_link(now, true, Some(1_000_000));
    }
    s[0].send_object(up, up_bytes.len() as u64, 1).unwrap();
    s[0].send_message(vec![5; 3000]).unwrap();
    s[1].send_object(down, down_bytes.len() as u64, 1).unwrap();
    let mut seen = Seen::default();
    let both = |seen: &Seen| {
        seen.events[1]
            .iter()
            .any(|e| matches!(e, Event::ObjectReceived { digest, .. } if *digest == up))
            && seen.events[0]
                .iter()
                .any(|e| matches!(e, Event::ObjectReceived { digest, .. } if *digest == down))
            && seen.events[1]
                .iter()
                .any(|e| matches!(e, Event::Message { .. }))
    };
    run(&mut now, &mut s, &mut seen, 3000, both);
    assert!(
        both(&seen),
        "ground {:?}, flight {:?}",
        s[0].stats(),
        s[1].stats()
    );
    assert_eq!(flight.with(|f| f.objects.get(&up).cloned()), Some(up_bytes));
    assert_eq!(
        ground.with(|g| g.objects.get(&down).cloned()),
        Some(down_bytes)
    );
    // Each side told once, and the ground sent nothing larger than the flight takes since.
    assert_eq!(mismatches(&seen.events[0]), [(1500, 512, 512)]);
    assert_eq!(mismatches(&seen.events[1]), [(512, 1500, 512)]);
    assert!(
        seen.largest_after_mismatch[0] <= 512,
        "{}",
        seen.largest_after_mismatch[0]
    );
    for side in &s {
        assert_eq!(side.stats().malformed, 0, "{:?}", side.stats());
    }
}

#[test]
fn a_size_changed_at_one_end_mid_transfer_starts_the_transfer_again_at_both() {
    let mut now = Instant::now();
    let (ground, flight) = (Shared::default(), Shared::default());
    let (up, up_bytes) = object(300_000, 3);
    ground.with(|s| s.objects.insert(up, up_bytes.clone()));
    let mut s = [
        Session::new(config(Direction::Up, 1, 1200), Box::new(ground.clone())).unwrap(),
        Session::new(config(Direction::Down, 2, 1200), Box::new(flight.clone())).unwrap(),
    ];
    for side in s.iter_mut() {
        side.set_link(now, true, Some(400_000));
    }
    s[0].send_object(up, up_bytes.len() as u64, 1).unwrap();
    let mut seen = Seen::default();
    let half = up_bytes.len() as u64 / 2;
    while s[1].stats().payload_received < half {
        run(&mut now, &mut s, &mut seen, 1, |_| false);
    }
    // The flight's persist interval passes: half the object is in its spool, durably.
    run(&mut now, &mut s, &mut seen, 150, |_| false);
    assert!(flight.with(|f| f.persisted(0).is_some_and(|r| !r.is_empty())));
    // Its operators change its datagram size; it restarts with it.
    s[1] = Session::new(config(Direction::Down, 3, 600), Box::new(flight.clone())).unwrap();
    s[1].set_link(now, true, Some(400_000));
    let received = |seen: &Seen| {
        seen.events[1]
            .iter()
            .any(|e| matches!(e, Event::ObjectReceived { digest, .. } if *digest == up))
    };
    run(&mut now, &mut s, &mut seen, 5000, received);
    assert!(
        received(&seen),
        "ground {:?}, flight {:?}",
        s[0].stats(),
        s[1].stats()
    );
    assert_eq!(flight.with(|f| f.objects.get(&up).cloned()), Some(up_bytes));
    assert_eq!(mismatches(&seen.events[0]), [(1200, 600, 600)]);
    assert_eq!(mismatches(&seen.events[1]), [(600, 1200, 600)]);
    assert_eq!(s[1].stats().digest_mismatches, 0, "{:?}", s[1].stats());
}
