//! Recordings of old runs of the peer replayed without limit: each costs a bounded amount (what
//! the session queues stays bounded, the link keeps its pace), a replay cannot hide a real
//! restart of the peer, and the peer's live run ends the `Hello`s a candidate asked for. And
//! what the receiver knows of the peer's epochs is written again when a write failed (nothing
//! of the peer's is handled until it is), and a receiver that crashes refuses again every
//! packet of the peer's current epoch it may have accepted.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sync::{
    Commit, Counters, Event, MemStore, OutboxEntry, Persisted, Session, SessionConfig, Store,
};
use wire::{Digest, Direction, LinkKey, Offer, PacketHeader};

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

/// Both sides send until neither has anything to say at `now`; what the ground sends goes
/// through `seen`.
fn exchange(now: Instant, ground: &mut Session, flight: &mut Session, seen: &mut dyn FnMut(&[u8])) {
    for _ in 0..10_000 {
        let mut moved = false;
        while let Some(p) = ground.poll_transmit(now) {
            seen(&p);
            flight.handle_datagram(now, &p);
            moved = true;
        }
        while let Some(p) = flight.poll_transmit(now) {
            ground.handle_datagram(now, &p);
            moved = true;
        }
        if !moved {
            return;
        }
    }
    panic!("the sessions never went quiet");
}

/// One 20 ms step: timers, then both sides send.
fn step(now: Instant, ground: &mut Session, flight: &mut Session, seen: &mut dyn FnMut(&[u8])) {
    ground.handle_timeout(now);
    flight.handle_timeout(now);
    exchange(now, ground, flight, seen);
}

/// The first datagram of each of `runs` runs of the flight (a `Hello`, long form), as someone
/// listening recorded them.
fn first_datagrams(now: Instant, runs: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    runs.map(|epoch| {
        let mut f =
            Session::new(config(Direction::Down, epoch), Box::new(MemStore::new())).unwrap();
        f.set_link(now, true, None);
        f.send_message(b"old".to_vec()).unwrap();
        let p = f.poll_transmit(now).expect("a first datagram");
        assert_eq!(PacketHeader::peek(&p).and_then(|h| h.epoch), Some(epoch));
        p
    })
    .collect()
}

/// A ground and a flight that have met (each proved the other's epoch).
fn pair(now: Instant, ground_store: MemStore) -> (Session, Session, Instant) {
    let mut ground = Session::new(config(Direction::Up, 1), Box::new(ground_store)).unwrap();
    let mut flight =
        Session::new(config(Direction::Down, 1000), Box::new(MemStore::new())).unwrap();
    ground.set_link(now, true, None);
    flight.set_link(now, true, None);
    flight.send_message(b"hi".to_vec()).unwrap();
    let mut t = now;
    for _ in 0..20 {
        t += Duration::from_millis(20);
        step(t, &mut ground, &mut flight, &mut |_| {});
    }
    let got: Vec<Event> = std::iter::from_fn(|| ground.poll_event()).collect();
    assert!(
        matches!(&got[..], [Event::Message { bytes, .. }] if bytes == b"hi"),
        "{got:?}"
    );
    assert_eq!(ground.stats().peer_epochs_proven, 1);
    (ground, flight, t)
}

#[test]
fn a_cycle_of_old_runs_replayed_with_the_link_down_queues_a_bounded_answer() {
    let now = Instant::now();
    let recorded = first_datagrams(now, 500..505);
    let (mut ground, mut flight, mut now) = pair(now, MemStore::new());
    ground.set_link(now, false, None);
    let before = ground.stats().clone();
    for i in 0..20_000 {
        if i % 100 == 0 {
            now += Duration::from_millis(20);
        }
        ground.handle_datagram(now, &recorded[i % recorded.len()]);
    }
    let s = ground.stats();
    assert_eq!(
        s.candidate_packets - before.candidate_packets,
        recorded.len() as u64,
        "each recorded datagram authenticated once: {s:?}"
    );
    assert_eq!(
        s.rejected_replayed - before.rejected_replayed,
        20_000 - recorded.len() as u64,
        "then was refused, evicted or not: {s:?}"
    );
    // The link comes up: what was queued meanwhile fits in a packet or two.
    now += Duration::from_millis(20);
    ground.set_link(now, true, None);
    let mut packets = 0;
    while let Some(p) = ground.poll_transmit(now) {
        flight.handle_datagram(now, &p);
        packets += 1;
    }
    let s = ground.stats();
    assert!(packets <= 2, "{packets} packets: {s:?}");
    assert!(
        s.handshake_bytes - before.handshake_bytes < 400,
        "a bounded answer: {s:?}"
    );
    assert_eq!(s.peer_epochs_proven, before.peer_epochs_proven);
    assert_eq!(s.peer_restarts, 0);
}

#[test]
fn an_upload_on_a_slow_link_completes_while_old_runs_are_replayed() {
    let now = Instant::now();
    // More old runs than the ground remembers evicted candidates: some come back as new.
    let recorded = first_datagrams(now, 500..(500 + wire::EVICTED_EPOCHS as u64 + 8));
    let object: Vec<u8> = (0..20_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let digest = Digest::of(&object);
    let mut store = MemStore::new();
    store.objects.insert(digest, object.clone());
    let (mut ground, mut flight, mut now) = pair(now, store);
    let rate = Some(9600);
    ground.set_link(now, true, rate);
    flight.set_link(now, true, rate);
    ground.send_object(digest, object.len() as u64, 1).unwrap();
    let start = now;
    let mut replayed = 0usize;
    let mut done = false;
    // 250 replays a second, 60 simulated seconds at most.
    for _ in 0..3000 {
        now += Duration::from_millis(20);
        for _ in 0..5 {
            ground.handle_datagram(now, &recorded[replayed % recorded.len()]);
            replayed += 1;
        }
        step(now, &mut ground, &mut flight, &mut |_| {});
        if std::iter::from_fn(|| flight.poll_event())
            .any(|e| matches!(e, Event::ObjectReceived { digest: d, .. } if d == digest))
        {
            done = true;
            break;
        }
    }
    let s = ground.stats();
    let took = now - start;
    assert!(done, "the upload completed within 60 s: {s:?}");
    // 20 KB at 1200 bytes a second is about 17 s on an idle link.
    assert!(took < Duration::from_secs(30), "took {took:?}: {s:?}");
    assert!(
        s.handshake_bytes < 4000,
        "replays kept the handshake a small share: {s:?}"
    );
    assert_eq!(s.peer_epochs_proven, 1, "{s:?}");
    assert_eq!(s.payload_resent, 0, "{s:?}");
}

#[test]
fn a_replay_crowding_out_the_hello_of_a_restarted_peer_does_not_hide_the_restart() {
    let now = Instant::now();
    let recorded = first_datagrams(now, 500..(500 + wire::MAX_CANDIDATES as u64));
    let object: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = Digest::of(&object);
    let mut store = MemStore::new();
    store.objects.insert(digest, object.clone());
    let (mut ground, mut flight, mut now) = pair(now, store);
    // Half the object reaches the flight and is acknowledged, not persisted (a spool is
    // persisted every 64 KiB or second).
    ground.send_object(digest, object.len() as u64, 1).unwrap();
    for _ in 0..5 {
        let Some(p) = ground.poll_transmit(now) else {
            break;
        };
        flight.handle_datagram(now, &p);
    }
    while let Some(p) = ground.poll_transmit(now) {
        drop(p);
    }
    now += Duration::from_millis(40);
    flight.handle_timeout(now);
    while let Some(p) = flight.poll_transmit(now) {
        ground.handle_datagram(now, &p);
    }
    // The flight restarts with nothing of the first run: its new run's first packet (a Hello)
    // reaches the ground, then a replay of old runs crowds its epoch out of the candidates.
    let mut flight =
        Session::new(config(Direction::Down, 2000), Box::new(MemStore::new())).unwrap();
    flight.set_link(now, true, None);
    let hello = flight.poll_transmit(now).expect("the new run's Hello");
    ground.handle_datagram(now, &hello);
    for d in &recorded {
        ground.handle_datagram(now, d);
    }
    let mut received = false;
    for _ in 0..200 {
        now += Duration::from_millis(20);
        step(now, &mut ground, &mut flight, &mut |_| {});
        received |= std::iter::from_fn(|| flight.poll_event())
            .any(|e| matches!(e, Event::ObjectReceived { digest: d, .. } if d == digest));
        if received {
            break;
        }
    }
    let s = ground.stats();
    assert!(received, "the transfer resumed in the same contact: {s:?}");
    assert_eq!(s.peer_epochs_proven, 2, "{s:?}");
    assert_eq!(s.peer_restarts, 1, "the restart was seen: {s:?}");
}

#[test]
fn candidate_packets_do_not_keep_the_hello_going() {
    let now = Instant::now();
    // A long run of an old flight, recorded: a stream of distinct packets of one candidate.
    let object: Vec<u8> = (0..400_000u32).map(|i| (i * 3 % 251) as u8).collect();
    let digest = Digest::of(&object);
    let mut old_store = MemStore::new();
    old_store.objects.insert(digest, object.clone());
    let mut old_ground =
        Session::new(config(Direction::Up, 77), Box::new(MemStore::new())).unwrap();
    let mut old_flight = Session::new(config(Direction::Down, 500), Box::new(old_store)).unwrap();
    old_ground.set_link(now, true, None);
    old_flight.set_link(now, true, None);
    old_flight
        .send_object(digest, object.len() as u64, 1)
        .unwrap();
    let mut tape = Vec::new();
    let mut t = now;
    for _ in 0..50 {
        t += Duration::from_millis(20);
        old_ground.handle_timeout(t);
        old_flight.handle_timeout(t);
        // The old flight's packets, recorded; the old ground's answers.
        exchange(t, &mut old_flight, &mut old_ground, &mut |p| {
            tape.push(p.to_vec())
        });
    }
    assert!(tape.len() > 300, "{}", tape.len());

    let (mut ground, mut flight, mut now) = pair(now, MemStore::new());
    let mut long_headers = 0;
    let mut packets = 0;
    for (i, d) in tape.iter().enumerate() {
        now += Duration::from_millis(20);
        ground.handle_datagram(now, d);
        // Some traffic of the live run all along.
        if i % 10 == 0 {
            ground.send_message(format!("m{i}").into_bytes()).unwrap();
        }
        let late = i >= 100;
        step(now, &mut ground, &mut flight, &mut |p| {
            if late {
                packets += 1;
                if PacketHeader::peek(p).is_some_and(|h| h.epoch.is_some()) {
                    long_headers += 1;
                }
            }
        });
    }
    let s = ground.stats();
    assert!(s.candidate_packets > 300, "{s:?}");
    assert!(packets > 20, "{packets}");
    // Past the first seconds, the live flight answered: no Hello, short headers.
    assert_eq!(long_headers, 0, "{long_headers} of {packets} long: {s:?}");
}

/// A store whose counters writes fail while `failing` is set; the counters it holds can be read.
struct FlakyStore {
    inner: Arc<Mutex<MemStore>>,
    failing: Arc<AtomicBool>,
}

impl Store for FlakyStore {
    fn load(&mut self) -> io::Result<Persisted> {
        self.inner.lock().unwrap().load()
    }
    fn save_counters(&mut self, counters: &Counters) -> io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(io::Error::other("disk full"));
        }
        self.inner.lock().unwrap().save_counters(counters)
    }
    fn outbox_put(&mut self, entry: &OutboxEntry) -> io::Result<()> {
        self.inner.lock().unwrap().outbox_put(entry)
    }
    fn outbox_remove(&mut self, transfer: u64) -> io::Result<()> {
        self.inner.lock().unwrap().outbox_remove(transfer)
    }
    fn read_object(&mut self, digest: &Digest, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.lock().unwrap().read_object(digest, offset, buf)
    }
    fn has_object(&mut self, digest: &Digest) -> bool {
        self.inner.lock().unwrap().has_object(digest)
    }
    fn spool_write(&mut self, transfer: u64, offset: u64, data: &[u8]) -> io::Result<()> {
        self.inner
            .lock()
            .unwrap()
            .spool_write(transfer, offset, data)
    }
    fn spool_persist(
        &mut self,
        transfer: u64,
        offer: Option<&Offer>,
        received: &[(u32, u32)],
        progress_at: Duration,
    ) -> io::Result<()> {
        self.inner
            .lock()
            .unwrap()
            .spool_persist(transfer, offer, received, progress_at)
    }
    fn spool_commit(&mut self, offer: &Offer) -> io::Result<Commit> {
        self.inner.lock().unwrap().spool_commit(offer)
    }
    fn spool_drop(&mut self, transfer: u64) -> io::Result<()> {
        self.inner.lock().unwrap().spool_drop(transfer)
    }
    fn inbox_remove(&mut self, seq: u64) -> io::Result<()> {
        self.inner.lock().unwrap().inbox_remove(seq)
    }
}

#[test]
fn a_failed_write_of_the_peer_epochs_is_tried_again() {
    let now = Instant::now();
    let inner = Arc::new(Mutex::new(MemStore::new()));
    let failing = Arc::new(AtomicBool::new(false));
    let store = FlakyStore {
        inner: inner.clone(),
        failing: failing.clone(),
    };
    let mut ground = Session::new(config(Direction::Up, 1), Box::new(store)).unwrap();
    let mut flight =
        Session::new(config(Direction::Down, 1000), Box::new(MemStore::new())).unwrap();
    ground.set_link(now, true, None);
    flight.set_link(now, true, None);
    // The flight's epoch is proven while the disk refuses the write.
    failing.store(true, Ordering::SeqCst);
    flight.send_message(b"hi".to_vec()).unwrap();
    let mut t = now;
    for _ in 0..10 {
        t += Duration::from_millis(20);
        step(t, &mut ground, &mut flight, &mut |_| {});
    }
    assert_eq!(ground.stats().peer_epochs_proven, 1);
    assert!(ground.stats().store_errors > 0);
    let saved = |s: &Arc<Mutex<MemStore>>| s.lock().unwrap().load().unwrap().counters.replay;
    assert_eq!(saved(&inner).current, None, "not written yet");
    assert_eq!(
        ground.stats().packets_received,
        0,
        "nothing handled unsaved"
    );
    // The disk recovers: the next packet writes it.
    failing.store(false, Ordering::SeqCst);
    flight.send_message(b"again".to_vec()).unwrap();
    for _ in 0..200 {
        t += Duration::from_millis(20);
        step(t, &mut ground, &mut flight, &mut |_| {});
    }
    assert_eq!(saved(&inner).current.map(|(e, _)| e), Some(1000));
    // Meanwhile nothing of the flight's was handled (the mark did not cover it); now it is.
    let got: Vec<Event> = std::iter::from_fn(|| ground.poll_event()).collect();
    assert!(
        got.iter()
            .any(|e| matches!(e, Event::Message { bytes, .. } if bytes == b"again")),
        "{got:?}"
    );
}

/// Issue 11 (review): the receiver's replay mark is saved ahead of what it accepts, so a crash
/// between two saves leaves nothing of the peer's current epoch open to a replay. The flight
/// receives part of an object, crashes (its store loses what was not durable) and opens again
/// on its store: every datagram the ground sent before is refused, and the ground, told the
/// floor by the flight's `Hello`, numbers above it; the object completes.
#[test]
fn a_crashed_receiver_refuses_every_packet_it_may_have_accepted() {
    let now = Instant::now();
    let object: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let digest = Digest::of(&object);
    let mut ground_store = MemStore::new();
    ground_store.objects.insert(digest, object.clone());
    let mut ground = Session::new(config(Direction::Up, 1), Box::new(ground_store)).unwrap();
    let inner = Arc::new(Mutex::new(MemStore::new()));
    let store = |inner: &Arc<Mutex<MemStore>>| FlakyStore {
        inner: inner.clone(),
        failing: Arc::new(AtomicBool::new(false)),
    };
    let mut flight = Session::new(config(Direction::Down, 1000), Box::new(store(&inner))).unwrap();
    let rate = Some(400_000);
    ground.set_link(now, true, rate);
    flight.set_link(now, true, rate);
    ground.send_object(digest, object.len() as u64, 1).unwrap();
    let mut recorded = Vec::new();
    let mut t = now;
    while flight.stats().payload_received < object.len() as u64 / 2 {
        t += Duration::from_millis(20);
        step(t, &mut ground, &mut flight, &mut |p| {
            recorded.push(p.to_vec())
        });
    }
    assert!(flight.stats().packets_received > 50, "{:?}", flight.stats());

    // The crash: what was not durable is gone; a new run opens on the store.
    drop(flight);
    inner.lock().unwrap().crash();
    let mut flight = Session::new(config(Direction::Down, 1001), Box::new(store(&inner))).unwrap();
    flight.set_link(t, true, rate);
    for p in &recorded {
        flight.handle_datagram(t, p);
    }
    let s = flight.stats().clone();
    assert_eq!((s.packets_received, s.candidate_packets), (0, 0), "{s:?}");
    assert_eq!(s.rejected_replayed, recorded.len() as u64, "{s:?}");

    // The link goes on: the ground hears the floor and numbers above it.
    let mut done = false;
    for _ in 0..1000 {
        t += Duration::from_millis(20);
        step(t, &mut ground, &mut flight, &mut |_| {});
        if std::iter::from_fn(|| flight.poll_event())
            .any(|e| matches!(e, Event::ObjectReceived { digest: d, .. } if d == digest))
        {
            done = true;
            break;
        }
    }
    assert!(done, "the object completed: {:?}", flight.stats());
    assert_eq!(inner.lock().unwrap().objects.get(&digest), Some(&object));
}
