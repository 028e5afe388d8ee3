//! The peer's epochs: a recording of a run of the peer older than the receiver remembers,
//! replayed in the middle of a transfer, authenticates but changes nothing (it is a candidate
//! epoch that never proves itself live); the transfer completes and nothing is sent twice. And
//! once the peer knows a run's epoch again, that run's packets go in the short form.

use std::time::{Duration, Instant};

use sync::{Counters, Event, MemStore, Session, SessionConfig, Store};
use wire::{Digest, Direction, LinkKey, PacketHeader, RETIRED_EPOCHS, ReplayMemory};

fn config(sends: Direction, incarnation: u64) -> SessionConfig {
    SessionConfig {
        key: LinkKey::from_bytes([7; 32]),
        sends,
        incarnation,
        datagram_bytes: 1200,
        reorder_window: Duration::from_millis(50),
        ack_every: 16,
        ack_delay: Duration::from_millis(20),
        persist_bytes: 64 << 10,
        persist_interval: Duration::from_secs(1),
        spool_expiry: Duration::from_secs(7 * 24 * 3600),
    }
}

/// Both sides send until neither has anything to say at `now`; every datagram the flight
/// sends is recorded in `tape`.
fn exchange(now: Instant, ground: &mut Session, flight: &mut Session, tape: &mut Vec<Vec<u8>>) {
    for _ in 0..10_000 {
        let mut moved = false;
        while let Some(p) = ground.poll_transmit(now) {
            flight.handle_datagram(now, &p);
            moved = true;
        }
        while let Some(p) = flight.poll_transmit(now) {
            tape.push(p.clone());
            ground.handle_datagram(now, &p);
            moved = true;
        }
        if !moved {
            return;
        }
    }
    panic!("the sessions never went quiet");
}

/// Runs both sides for `steps` of 20 ms from `now`, returning the time reached.
fn run(
    mut now: Instant,
    steps: u32,
    ground: &mut Session,
    flight: &mut Session,
    tape: &mut Vec<Vec<u8>>,
) -> Instant {
    for _ in 0..steps {
        now += Duration::from_millis(20);
        ground.handle_timeout(now);
        flight.handle_timeout(now);
        exchange(now, ground, flight, tape);
    }
    now
}

fn messages(s: &mut Session) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            Event::Message { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect()
}

#[test]
fn an_old_run_replayed_mid_transfer_changes_nothing() {
    let mut now = Instant::now();
    let object: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = Digest::of(&object);
    let mut store = MemStore::new();
    store.objects.insert(digest, object.clone());
    let mut ground = Session::new(config(Direction::Up, 1), Box::new(store)).unwrap();
    // A rate so high that the object goes in one burst, unpaced, and the replay lands mid-way.
    ground.set_link(now, true, Some(1 << 50));
    // The flight's first run, recorded by someone listening, then more restarts than the
    // ground remembers retired epochs.
    let mut recorded = Vec::new();
    let mut flight = None;
    for n in 0..=RETIRED_EPOCHS as u64 + 2 {
        let mut f =
            Session::new(config(Direction::Down, 1000 + n), Box::new(MemStore::new())).unwrap();
        f.set_link(now, true, None);
        f.send_message(format!("run {n}").into_bytes()).unwrap();
        let mut tape = Vec::new();
        now = run(now, 20, &mut ground, &mut f, &mut tape);
        if n == 0 {
            recorded = tape;
        }
        assert_eq!(
            messages(&mut ground),
            vec![format!("run {n}").into_bytes()],
            "run {n}: ground {:?} flight {:?}",
            ground.stats(),
            f.stats()
        );
        flight = Some(f);
    }
    let mut flight = flight.unwrap();
    let s = ground.stats();
    assert_eq!(s.peer_epochs_proven, RETIRED_EPOCHS as u64 + 3, "{s:?}");
    assert!(recorded.len() >= 2, "the first run said something");

    // A transfer from the ground, and in its middle every datagram of the first run replayed.
    let before = ground.stats().clone();
    ground.send_object(digest, object.len() as u64, 1).unwrap();
    now += Duration::from_millis(20);
    let mut sent = 0;
    while let Some(p) = ground.poll_transmit(now) {
        flight.handle_datagram(now, &p);
        sent += 1;
        if sent == 30 {
            for d in &recorded {
                ground.handle_datagram(now, d);
            }
            // Twice: the second time, each is a replay within the candidate's own window.
            for d in &recorded {
                ground.handle_datagram(now, d);
            }
        }
    }
    assert!(sent > 30, "the replay came in the middle of the transfer");
    now = run(now, 100, &mut ground, &mut flight, &mut Vec::new());
    let received: Vec<Event> = std::iter::from_fn(|| flight.poll_event()).collect();
    assert!(
        received.contains(&Event::ObjectReceived {
            digest,
            size: object.len() as u64
        }),
        "the transfer completed: {received:?}"
    );
    assert!(ground.is_idle(), "the flight's acknowledgements were heard");
    let g = ground.stats();
    assert_eq!(g.payload_resent, 0, "nothing was sent twice: {g:?}");
    // The only packets that arrived twice are the spare copies the ground sent once its data
    // was all on its way (at a configured rate; each carries at least a byte of payload).
    assert!(
        flight.stats().duplicates <= g.payload_spare,
        "{:?} {g:?}",
        flight.stats()
    );
    assert_eq!(
        g.candidate_packets - before.candidate_packets,
        recorded.len() as u64,
        "each recorded datagram authenticated once, as a candidate's: {g:?}"
    );
    assert_eq!(
        g.rejected_replayed - before.rejected_replayed,
        recorded.len() as u64,
        "and was refused the second time: {g:?}"
    );
    assert_eq!(g.peer_epochs_proven, before.peer_epochs_proven, "{g:?}");
    assert_eq!(g.peer_restarts, before.peer_restarts, "{g:?}");

    // The link still works both ways, and after one more Hello round trip (the candidate made
    // the ground unsure that the flight still knows its epoch) the ground's packets are short.
    flight.send_message(b"still there".to_vec()).unwrap();
    now = run(now, 50, &mut ground, &mut flight, &mut Vec::new());
    assert_eq!(messages(&mut ground), vec![b"still there".to_vec()]);
    ground.send_message(b"and back".to_vec()).unwrap();
    now += Duration::from_millis(20);
    let p = ground.poll_transmit(now).expect("the message");
    assert_eq!(
        PacketHeader::peek(&p).map(|h| h.epoch),
        Some(None),
        "short form"
    );
    flight.handle_datagram(now, &p);
    run(now, 10, &mut ground, &mut flight, &mut Vec::new());
    assert_eq!(messages(&mut flight), vec![b"and back".to_vec()]);
}

/// A store that remembers the peer's epoch `peer_epoch` as current, as one persisted by a run
/// that talked with it.
fn remembering(peer_epoch: u64) -> MemStore {
    let mut store = MemStore::new();
    let counters = Counters {
        replay: ReplayMemory {
            current: Some((peer_epoch, 40)),
            ..ReplayMemory::default()
        },
        ..Counters::default()
    };
    store.save_counters(&counters).unwrap();
    store
}

#[test]
fn both_sides_restarting_at_once_prove_each_other() {
    let now = Instant::now();
    // Each remembers the other's previous run; both restarted, so each meets a candidate.
    let mut ground = Session::new(config(Direction::Up, 11), Box::new(remembering(20))).unwrap();
    let mut flight = Session::new(config(Direction::Down, 21), Box::new(remembering(10))).unwrap();
    ground.set_link(now, true, None);
    flight.set_link(now, true, None);
    ground.send_message(b"up".to_vec()).unwrap();
    flight.send_message(b"down".to_vec()).unwrap();
    let mut tape = Vec::new();
    let now = run(now, 10, &mut ground, &mut flight, &mut tape);
    assert_eq!(messages(&mut flight), vec![b"up".to_vec()]);
    assert_eq!(messages(&mut ground), vec![b"down".to_vec()]);
    for s in [ground.stats(), flight.stats()] {
        assert_eq!(s.peer_epochs_proven, 1, "{s:?}");
        assert_eq!(s.payload_resent, 0, "{s:?}");
    }
    // The ground spoke first: its Hello was a candidate's at the flight, answered there; the
    // flight's answer proved the flight's epoch to the ground at once.
    assert_eq!(flight.stats().candidate_packets, 1, "{:?}", flight.stats());
    assert_eq!(ground.stats().candidate_packets, 0, "{:?}", ground.stats());
    // Both now seal in the short form: each peer answered a Hello of their epochs.
    assert!(
        tape.iter()
            .rev()
            .take(2)
            .any(|d| PacketHeader::peek(d).is_some_and(|h| h.epoch.is_none())),
        "the flight's last packets are short"
    );
    ground.send_message(b"again".to_vec()).unwrap();
    let p = ground
        .poll_transmit(now + Duration::from_millis(20))
        .expect("the message");
    assert_eq!(PacketHeader::peek(&p).map(|h| h.epoch), Some(None));
}
