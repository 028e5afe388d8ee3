//! Issue 11, bounded disks on the receiving side: an object offer the store has no room for is
//! refused with its reason, which the sender hears once and reports (it drops the transfer, no
//! endless retry); the same object offered again once there is room comes whole. A spool that
//! made no progress for the session's `spool_expiry` is dropped, its space freed, and its
//! transfer starts again from nothing when its sender comes back, whether the sender restarted
//! meanwhile or kept its belief of what had arrived.

mod common;

use std::time::{Duration, Instant};

use sync::{Event, Session, SessionConfig};
use wire::{Digest, Direction, LinkKey};

use common::Shared;

const EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

fn config(sends: Direction, incarnation: u64) -> SessionConfig {
    SessionConfig {
        key: LinkKey::from_bytes([8; 32]),
        sends,
        incarnation,
        datagram_bytes: 1200,
        reorder_window: Duration::from_millis(50),
        ack_every: 16,
        ack_delay: Duration::from_millis(20),
        persist_bytes: 16 << 10,
        persist_interval: Duration::from_secs(1),
        spool_expiry: EXPIRY,
    }
}

fn object(len: usize, salt: u8) -> (Digest, Vec<u8>) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(17).wrapping_add(salt))
        .collect();
    (Digest::of(&bytes), bytes)
}

/// A ground and a flight, with the link up at `rate`, each on a store the test keeps.
fn pair(now: Instant, ground: &Shared, flight: &Shared, rate: Option<u64>) -> [Session; 2] {
    let mut g = Session::new(config(Direction::Up, 1), Box::new(ground.clone())).unwrap();
    let mut f = Session::new(config(Direction::Down, 2), Box::new(flight.clone())).unwrap();
    g.set_link(now, true, rate);
    f.set_link(now, true, rate);
    [g, f]
}

/// Runs both sides for `steps` steps of 20 ms (the link up or not), handing each side's events
/// to `seen` (true: the ground's).
fn run(
    now: &mut Instant,
    steps: usize,
    s: &mut [Session; 2],
    up: bool,
    seen: &mut dyn FnMut(bool, Event),
) {
    for _ in 0..steps {
        *now += Duration::from_millis(20);
        for side in s.iter_mut() {
            side.handle_timeout(*now);
        }
        if up {
            for _ in 0..10_000 {
                let mut moved = false;
                while let Some(p) = s[0].poll_transmit(*now) {
                    s[1].handle_datagram(*now, &p);
                    moved = true;
                }
                while let Some(p) = s[1].poll_transmit(*now) {
                    s[0].handle_datagram(*now, &p);
                    moved = true;
                }
                if !moved {
                    break;
                }
            }
        }
        for (i, side) in s.iter_mut().enumerate() {
            while let Some(e) = side.poll_event() {
                seen(i == 0, e);
            }
        }
    }
}

#[test]
fn an_object_without_room_is_refused_once_with_its_reason() {
    let mut now = Instant::now();
    let (ground, flight) = (Shared::default(), Shared::default());
    let (small, small_bytes) = object(30_000, 1);
    let (big, big_bytes) = object(80_000, 2);
    ground.with(|s| {
        s.objects.insert(small, small_bytes.clone());
        s.objects.insert(big, big_bytes.clone());
    });
    flight.with(|s| s.room = Some(100_000));
    let mut s = pair(now, &ground, &flight, None);
    s[0].send_object(small, small_bytes.len() as u64, 1)
        .unwrap();
    s[0].send_object(big, big_bytes.len() as u64, 2).unwrap();
    let mut events = Vec::new();
    run(&mut now, 100, &mut s, true, &mut |g, e| events.push((g, e)));
    // The small one came; the big one would take the store past its room.
    assert!(events.contains(&(
        false,
        Event::ObjectReceived {
            digest: small,
            size: small_bytes.len() as u64
        }
    )));
    let refused: Vec<&(bool, Event)> = events
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                Event::ObjectRefused { .. } | Event::ObjectDeclined { .. }
            )
        })
        .collect();
    assert_eq!(refused.len(), 2, "one refusal each side: {events:?}");
    for (ground_side, e) in refused {
        let (digest, reason) = match e {
            Event::ObjectRefused { digest, reason } => (digest, reason),
            Event::ObjectDeclined {
                digest,
                reason,
                size,
            } => {
                assert_eq!(*size, big_bytes.len() as u64);
                (digest, reason)
            }
            _ => unreachable!(),
        };
        assert_eq!(*ground_side, matches!(e, Event::ObjectRefused { .. }));
        assert_eq!(*digest, big);
        assert!(
            reason.contains("no room for an object of 80000 bytes") && reason.contains("100000"),
            "{reason}"
        );
    }
    assert!(s[0].is_idle(), "the refused object left the outbox");
    assert_eq!(s[1].stats().offers_refused, 1);
    // Nothing more goes on about it: no retry.
    let sent = s[0].stats().payload_sent;
    let before = events.len();
    run(&mut now, 500, &mut s, true, &mut |g, e| events.push((g, e)));
    assert_eq!(s[0].stats().payload_sent, sent);
    assert_eq!(events.len(), before, "{:?}", &events[before..]);
    assert!(
        flight.with(|f| f.persisted(1).is_none()),
        "no spool of it kept"
    );

    // Room made onboard: sent again, it comes whole.
    flight.with(|f| {
        f.objects.remove(&small);
        f.room = Some(100_000);
    });
    s[0].send_object(big, big_bytes.len() as u64, 2).unwrap();
    run(&mut now, 200, &mut s, true, &mut |g, e| events.push((g, e)));
    assert!(events.contains(&(true, Event::ObjectDelivered { digest: big })));
    assert_eq!(
        flight.with(|f| f.objects.get(&big).cloned()),
        Some(big_bytes)
    );
}

/// Half an object in, the link goes down for longer than the spool expiry.
fn half_then_silence(restart_sender: bool) {
    let mut now = Instant::now();
    let (ground, flight) = (Shared::default(), Shared::default());
    let (digest, bytes) = object(200_000, 3);
    ground.with(|s| {
        s.objects.insert(digest, bytes.clone());
    });
    let mut s = pair(now, &ground, &flight, Some(800_000));
    s[0].send_object(digest, bytes.len() as u64, 1).unwrap();
    while s[1].stats().payload_received < bytes.len() as u64 / 2 {
        run(&mut now, 1, &mut s, true, &mut |_, _| {});
    }
    for side in s.iter_mut() {
        side.set_link(now, false, None);
    }
    run(&mut now, 10, &mut s, false, &mut |_, _| {});
    assert!(flight.with(|f| f.persisted(0).is_some()), "spooled");
    now += EXPIRY;
    run(&mut now, 1, &mut s, false, &mut |_, _| {});
    assert_eq!(s[1].stats().spools_expired, 1);
    assert!(
        flight.with(|f| f.persisted(0).is_none()),
        "the expired spool's space is freed"
    );
    if restart_sender {
        let g = Session::new(config(Direction::Up, 3), Box::new(ground.clone())).unwrap();
        s[0] = g;
    }
    for side in s.iter_mut() {
        side.set_link(now, true, Some(800_000));
    }
    let mut done = false;
    run(&mut now, 2000, &mut s, true, &mut |g, e| {
        done |= !g
            && e == Event::ObjectReceived {
                digest,
                size: bytes.len() as u64,
            };
    });
    assert!(done, "the transfer completed again: {:?}", s[1].stats());
    assert_eq!(
        flight.with(|f| f.objects.get(&digest).cloned()),
        Some(bytes)
    );
}

#[test]
fn an_idle_spool_expires_and_its_sender_sends_it_again_after_a_restart() {
    half_then_silence(true);
}

#[test]
fn an_idle_spool_expires_and_a_sender_that_kept_running_sends_it_again() {
    half_then_silence(false);
}

/// A spool's idle time is the time the link ran without progress: it adds up across restarts
/// (the store keeps the running time), and a power-off (or a wall clock that jumps) counts for
/// nothing.
#[test]
fn an_idle_spool_expires_by_the_time_the_link_ran_across_restarts() {
    let mut now = Instant::now();
    let (ground, flight) = (Shared::default(), Shared::default());
    let (digest, bytes) = object(200_000, 4);
    ground.with(|s| {
        s.objects.insert(digest, bytes.clone());
    });
    let mut s = pair(now, &ground, &flight, Some(800_000));
    s[0].send_object(digest, bytes.len() as u64, 1).unwrap();
    while s[1].stats().payload_received < bytes.len() as u64 / 2 {
        run(&mut now, 1, &mut s, true, &mut |_, _| {});
    }
    for side in s.iter_mut() {
        side.set_link(now, false, None);
    }
    let idle = |now: &mut Instant, flight: &mut Session, d: Duration| {
        let until = *now + d;
        while *now < until {
            *now += Duration::from_secs(60);
            flight.handle_timeout(*now);
        }
    };
    idle(&mut now, &mut s[1], EXPIRY * 6 / 10);
    assert_eq!(s[1].stats().spools_expired, 0);
    // The flight restarts after a long power-off.
    let mut flight_session =
        Session::new(config(Direction::Down, 5), Box::new(flight.clone())).unwrap();
    now += EXPIRY * 10;
    flight_session.handle_timeout(now);
    assert_eq!(
        flight_session.stats().spools_expired,
        0,
        "the time it was off counts for nothing"
    );
    assert!(flight.with(|f| f.persisted(0).is_some()));
    idle(&mut now, &mut flight_session, EXPIRY * 5 / 10);
    assert_eq!(
        flight_session.stats().spools_expired,
        1,
        "idle for the expiry, over two runs"
    );
    assert!(flight.with(|f| f.persisted(0).is_none()));
}
