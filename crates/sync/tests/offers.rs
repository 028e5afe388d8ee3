//! Data that comes before its transfer's offer: nothing bounds the transfer then, so only the
//! first [`OFFERLESS_WINDOW`] packets of it are taken (what an offer overtaken on the way, or
//! lost, leaves behind it); a chunk numbered far beyond is dropped before any spool is written,
//! and a message offer longer than any message is refused. A sender whose offer was lost with
//! its packet offers again as soon as the loss is judged, so the rest of the transfer is not
//! dropped for want of it.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sync::{
    Commit, Counters, Event, MemStore, OFFERLESS_WINDOW, OutboxEntry, Persisted, Session,
    SessionConfig, Store, payload_size,
};
use wire::{
    Chunk, Digest, Direction, LinkKey, Offer, Opener, ReplayMemory, Sealer, Status, StatusState,
    TransferKind, decode_chunks, encode_chunk,
};

const KEY: [u8; 32] = [6; 32];
const DATAGRAM: usize = 1200;

fn config(sends: Direction, incarnation: u64) -> SessionConfig {
    SessionConfig {
        key: LinkKey::from_bytes(KEY),
        sends,
        incarnation,
        datagram_bytes: DATAGRAM,
        reorder_window: Duration::from_millis(50),
        ack_every: 16,
        ack_delay: Duration::from_millis(20),
        persist_bytes: 64 << 10,
        persist_interval: Duration::from_secs(1),
        spool_expiry: Duration::from_secs(7 * 24 * 3600),
    }
}

/// A [`MemStore`] that records every spool write: (transfer, offset, length).
#[derive(Clone, Default)]
struct Recording {
    store: Arc<Mutex<MemStore>>,
    writes: Arc<Mutex<Vec<(u64, u64, usize)>>>,
}

impl Recording {
    fn with<R>(&self, f: impl FnOnce(&mut MemStore) -> R) -> R {
        f(&mut self.store.lock().unwrap())
    }
}

impl Store for Recording {
    fn load(&mut self) -> io::Result<Persisted> {
        self.with(|s| s.load())
    }
    fn save_counters(&mut self, c: &Counters) -> io::Result<()> {
        self.with(|s| s.save_counters(c))
    }
    fn outbox_put(&mut self, e: &OutboxEntry) -> io::Result<()> {
        self.with(|s| s.outbox_put(e))
    }
    fn outbox_remove(&mut self, t: u64) -> io::Result<()> {
        self.with(|s| s.outbox_remove(t))
    }
    fn read_object(&mut self, d: &Digest, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.with(|s| s.read_object(d, offset, buf))
    }
    fn has_object(&mut self, d: &Digest) -> bool {
        self.with(|s| s.has_object(d))
    }
    fn spool_write(&mut self, t: u64, offset: u64, data: &[u8]) -> io::Result<()> {
        self.writes.lock().unwrap().push((t, offset, data.len()));
        self.with(|s| s.spool_write(t, offset, data))
    }
    fn spool_persist(
        &mut self,
        t: u64,
        o: Option<&Offer>,
        r: &[(u32, u32)],
        at: Duration,
    ) -> io::Result<()> {
        self.with(|s| s.spool_persist(t, o, r, at))
    }
    fn spool_commit(&mut self, o: &Offer) -> io::Result<Commit> {
        self.with(|s| s.spool_commit(o))
    }
    fn spool_drop(&mut self, t: u64) -> io::Result<()> {
        self.with(|s| s.spool_drop(t))
    }
    fn inbox_remove(&mut self, seq: u64) -> io::Result<()> {
        self.with(|s| s.inbox_remove(seq))
    }
}

#[test]
fn data_far_past_an_offer_not_yet_seen_is_not_spooled() {
    let now = Instant::now();
    let flight_store = Recording::default();
    let mut ground = Session::new(config(Direction::Up, 1), Box::new(MemStore::new())).unwrap();
    let mut flight =
        Session::new(config(Direction::Down, 2), Box::new(flight_store.clone())).unwrap();
    ground.set_link(now, true, None);
    flight.set_link(now, true, None);
    // The handshake, then a message that proves the ground's epoch to the flight.
    let hello = ground.poll_transmit(now).expect("the ground's hello");
    flight.handle_datagram(now, &hello);
    let answer = flight.poll_transmit(now).expect("the flight's hello-ack");
    ground.handle_datagram(now, &answer);
    ground.send_message(b"a plan".to_vec()).unwrap();
    let first = ground.poll_transmit(now).expect("a packet");
    flight.handle_datagram(now, &first);
    assert_eq!(flight.stats().peer_epochs_proven, 1);
    let written = flight_store.writes.lock().unwrap().len();

    // What a peer holding the key (or a bug) could send: chunks of transfers never offered.
    let sealer = Sealer::new(&LinkKey::from_bytes(KEY), Direction::Up, 1);
    let mut pn = 10_000;
    let mut send = |chunk: Chunk, flight: &mut Session| {
        let mut body = Vec::new();
        encode_chunk(&chunk, &mut body);
        flight.handle_datagram(now, &sealer.seal(pn, &body));
        pn += 1;
    };
    let p = payload_size(DATAGRAM);
    for index in [u32::MAX - 1, OFFERLESS_WINDOW, 1 << 20] {
        send(
            Chunk::Data {
                transfer: 40,
                index,
                payload: vec![1; p],
            },
            &mut flight,
        );
    }
    // A message offer larger than any message.
    send(
        Chunk::Offer(Offer {
            transfer: 41,
            kind: TransferKind::Message { seq: 1 },
            size: 1 << 40,
            priority: 0,
            digest: Digest::of(b"never"),
        }),
        &mut flight,
    );
    assert_eq!(
        flight_store.writes.lock().unwrap()[written..],
        [],
        "nothing spooled past the window"
    );
    let s = flight.stats();
    assert_eq!(s.data_before_offer, 3, "{s:?}");
    assert_eq!(s.malformed, 1, "the message offer: {s:?}");

    // Within the window, data before its offer is kept, and the offer completes it.
    let bytes: Vec<u8> = (0..3 * p).map(|i| (i % 251) as u8).collect();
    for index in [2, 1] {
        let start = index as usize * p;
        send(
            Chunk::Data {
                transfer: 42,
                index,
                payload: bytes[start..start + p].to_vec(),
            },
            &mut flight,
        );
    }
    send(
        Chunk::Offer(Offer {
            transfer: 42,
            kind: TransferKind::Object,
            size: bytes.len() as u64,
            priority: 1,
            digest: Digest::of(&bytes),
        }),
        &mut flight,
    );
    send(
        Chunk::Data {
            transfer: 42,
            index: 0,
            payload: bytes[..p].to_vec(),
        },
        &mut flight,
    );
    let events: Vec<Event> = std::iter::from_fn(|| flight.poll_event()).collect();
    assert!(
        events.contains(&Event::ObjectReceived {
            digest: Digest::of(&bytes),
            size: bytes.len() as u64
        }),
        "{events:?}"
    );
}

#[test]
fn an_offer_lost_with_its_packet_is_sent_again_before_the_rest_goes_by() {
    let mut now = Instant::now();
    let bytes: Vec<u8> = (0..400 * payload_size(DATAGRAM))
        .map(|i| (i * 7 % 253) as u8)
        .collect();
    let digest = Digest::of(&bytes);
    let mut store = MemStore::new();
    store.objects.insert(digest, bytes.clone());
    let mut ground = Session::new(config(Direction::Up, 1), Box::new(store)).unwrap();
    let mut flight = Session::new(config(Direction::Down, 2), Box::new(MemStore::new())).unwrap();
    ground.set_link(now, true, Some(2_000_000));
    flight.set_link(now, true, Some(2_000_000));
    // The link loses the packet that carries the object's offer (the first time only).
    let mut monitor = Opener::new(
        &LinkKey::from_bytes(KEY),
        Direction::Up,
        ReplayMemory::default(),
    );
    let mut dropped = false;
    let mut received = false;
    for step in 0..2000 {
        // The handshake first (the object waits for it anyway).
        if step == 10 {
            ground.send_object(digest, bytes.len() as u64, 1).unwrap();
        }
        now += Duration::from_millis(10);
        ground.handle_timeout(now);
        flight.handle_timeout(now);
        while let Some(p) = ground.poll_transmit(now) {
            let opened = monitor.open(&p).ok();
            if let Some(o) = opened.as_ref().filter(|o| !o.proven) {
                monitor.promote(o.epoch);
            }
            let offer = opened
                .and_then(|o| decode_chunks(&o.body).ok())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| matches!(c, Chunk::Offer(o) if o.kind == TransferKind::Object))
                });
            if offer && !dropped {
                dropped = true;
                continue;
            }
            flight.handle_datagram(now, &p);
        }
        while let Some(p) = flight.poll_transmit(now) {
            ground.handle_datagram(now, &p);
        }
        while let Some(e) = flight.poll_event() {
            received |= e
                == Event::ObjectReceived {
                    digest,
                    size: bytes.len() as u64,
                };
        }
        if received {
            break;
        }
    }
    assert!(dropped && received, "{:?}", flight.stats());
    let (g, f) = (ground.stats(), flight.stats());
    // Only what went before the loss was judged is sent again, not the whole transfer.
    assert!(
        f.data_before_offer < u64::from(OFFERLESS_WINDOW) / 2,
        "{f:?}"
    );
    assert!(g.payload_resent < bytes.len() as u64 / 10, "{g:?}");
}

/// Seals chunks as the side `from` of incarnation `epoch` would (what a test forges).
fn forged(from: Direction, epoch: u64, pn: u64, chunks: &[Chunk]) -> Vec<u8> {
    let mut body = Vec::new();
    for c in chunks {
        encode_chunk(c, &mut body);
    }
    Sealer::new(&LinkKey::from_bytes(KEY), from, epoch).seal(pn, &body)
}

/// The chunks of every packet `session` sends now, opened by `opener`.
fn sent_chunks(session: &mut Session, opener: &mut Opener, now: Instant) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    while let Some(p) = session.poll_transmit(now) {
        let Ok(o) = opener.open(&p) else { continue };
        if !o.proven {
            opener.promote(o.epoch);
        }
        chunks.extend(decode_chunks(&o.body).unwrap());
    }
    chunks
}

/// A spool begun by data alone (its offer lost, or its spool dropped after the offer came and
/// begun again by data) says so when its sender asks, and the sender offers the transfer again
/// at once, sending only what is missing: what follows the first packets is not dropped for
/// want of an offer until the spool expires.
#[test]
fn a_spool_without_its_offer_asks_for_the_offer_again() {
    let now = Instant::now();
    let p = payload_size(DATAGRAM);

    // The receiver: data of transfer 50 without its offer, then the sender asks.
    let mut flight = Session::new(config(Direction::Down, 2), Box::new(MemStore::new())).unwrap();
    flight.set_link(now, true, None);
    let mut down = Opener::new(
        &LinkKey::from_bytes(KEY),
        Direction::Down,
        ReplayMemory::default(),
    );
    let mut ground = Session::new(config(Direction::Up, 1), Box::new(MemStore::new())).unwrap();
    ground.set_link(now, true, None);
    let hello = ground.poll_transmit(now).expect("the ground's hello");
    flight.handle_datagram(now, &hello);
    let answer = flight.poll_transmit(now).expect("the flight's hello-ack");
    let opened = down.open(&answer).unwrap();
    down.promote(opened.epoch);
    ground.handle_datagram(now, &answer);
    ground.send_message(b"a plan".to_vec()).unwrap();
    let first = ground.poll_transmit(now).expect("a packet");
    flight.handle_datagram(now, &first);
    assert_eq!(flight.stats().peer_epochs_proven, 1);
    sent_chunks(&mut flight, &mut down, now);
    let data = Chunk::Data {
        transfer: 50,
        index: 1,
        payload: vec![7; p],
    };
    let ask = Chunk::StatusRequest {
        transfers: vec![50],
    };
    flight.handle_datagram(now, &forged(Direction::Up, 1, 10_000, &[data]));
    flight.handle_datagram(now, &forged(Direction::Up, 1, 10_001, &[ask]));
    // The answer waits for what was sent before the question (the reorder window).
    let later = now + Duration::from_secs(1);
    flight.handle_timeout(later);
    let status = sent_chunks(&mut flight, &mut down, later)
        .into_iter()
        .find_map(|c| match c {
            Chunk::Status(s) if s.transfer == 50 => Some(s),
            _ => None,
        })
        .expect("a status of transfer 50");
    assert_eq!(status.state, StatusState::Offerless, "{status:?}");
    assert_eq!(status.ranges, [(1, 2)], "{status:?}");

    // The sender: told so, it offers again and sends only what is missing.
    let bytes: Vec<u8> = (0..3 * p).map(|i| (i % 241) as u8).collect();
    let digest = Digest::of(&bytes);
    let mut store = MemStore::new();
    store.objects.insert(digest, bytes.clone());
    let mut ground = Session::new(config(Direction::Up, 3), Box::new(store)).unwrap();
    let mut flight = Session::new(config(Direction::Down, 4), Box::new(MemStore::new())).unwrap();
    ground.set_link(now, true, None);
    flight.set_link(now, true, None);
    let mut up = Opener::new(
        &LinkKey::from_bytes(KEY),
        Direction::Up,
        ReplayMemory::default(),
    );
    for _ in 0..4 {
        while let Some(d) = ground.poll_transmit(now) {
            if let Ok(o) = up.open(&d)
                && !o.proven
            {
                up.promote(o.epoch);
            }
            flight.handle_datagram(now, &d);
        }
        while let Some(d) = flight.poll_transmit(now) {
            ground.handle_datagram(now, &d);
        }
    }
    let t = ground.send_object(digest, bytes.len() as u64, 1).unwrap();
    // Everything of it is lost on the way.
    let first: Vec<Chunk> = sent_chunks(&mut ground, &mut up, now);
    assert!(
        first
            .iter()
            .any(|c| matches!(c, Chunk::Offer(o) if o.transfer == t)),
        "{first:?}"
    );
    let told = Chunk::Status(Status {
        transfer: t,
        settled: 0,
        state: StatusState::Offerless,
        upto: u32::MAX,
        ranges: vec![(1, 3)],
    });
    ground.handle_datagram(now, &forged(Direction::Down, 4, 10_000, &[told]));
    let soon = now + Duration::from_millis(5);
    ground.handle_timeout(soon);
    let again = sent_chunks(&mut ground, &mut up, soon);
    assert!(
        again
            .iter()
            .any(|c| matches!(c, Chunk::Offer(o) if o.transfer == t)),
        "offered again: {again:?}"
    );
    assert!(
        !again.iter().any(
            |c| matches!(c, Chunk::Data { transfer, index, .. } if *transfer == t && *index > 0)
        ),
        "what the receiver holds is not sent again: {again:?}"
    );
}
