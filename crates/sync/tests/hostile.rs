//! Datagrams an attacker or a bad line could produce: each is refused, counted by kind, and
//! changes nothing.

use std::time::{Duration, Instant};

use sync::{Event, MemStore, Session, SessionConfig};
use wire::{Direction, LinkKey, MAX_PACKET, SHORT_PACKET_HEADER, Sealer};

fn config(sends: Direction, incarnation: u64, key: u8) -> SessionConfig {
    SessionConfig {
        key: LinkKey::from_bytes([key; 32]),
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

#[test]
fn forged_replayed_truncated_oversized_and_corrupted_packets_are_refused_and_counted() {
    let now = Instant::now();
    let mut ground = Session::new(config(Direction::Up, 1, 7), Box::new(MemStore::new())).unwrap();
    let mut flight =
        Session::new(config(Direction::Down, 2, 7), Box::new(MemStore::new())).unwrap();
    ground.set_link(now, true, None);
    flight.set_link(now, true, None);
    // The handshake first: what a session queues waits for the peer's marks (its HelloAck).
    let hello = ground.poll_transmit(now).expect("the ground's hello");
    flight.handle_datagram(now, &hello);
    let hello_ack = flight
        .poll_transmit(now)
        .expect("the flight's hello and hello-ack");
    ground.handle_datagram(now, &hello_ack);
    ground.send_message(b"a plan".to_vec()).unwrap();
    let first = ground.poll_transmit(now).expect("a packet");
    flight.handle_datagram(now, &first);
    let delivered: Vec<Event> = std::iter::from_fn(|| flight.poll_event()).collect();
    assert_eq!(
        delivered.len(),
        1,
        "the genuine packet delivers its message"
    );

    // Replayed: the same packet again.
    flight.handle_datagram(now, &first);
    // Forged: sealed under another key (with a fresh packet number).
    let forged = Sealer::new(&LinkKey::from_bytes([8; 32]), Direction::Up, 1)
        .seal(1_000, &first[SHORT_PACKET_HEADER..first.len() - 16]);
    flight.handle_datagram(now, &forged);
    // Truncated, oversized, and corrupted on the line (which fails the tag, as a forgery does).
    flight.handle_datagram(now, &first[..12]);
    flight.handle_datagram(now, &vec![0x20; MAX_PACKET + 1]);
    let mut corrupted = ground
        .poll_transmit(now + Duration::from_secs(5))
        .unwrap_or_else(|| first.clone());
    corrupted[9] ^= 0x10;
    flight.handle_datagram(now, &corrupted);
    // A packet travelling the other way (a reflection of the flight's own).
    let mut reflected = hello_ack.clone();
    flight.handle_datagram(now, &reflected);
    reflected.clear();

    let s = flight.stats();
    assert_eq!(s.rejected_replayed, 1, "{s:?}");
    assert_eq!(
        s.rejected_forged, 2,
        "the forgery and the corrupted packet: {s:?}"
    );
    assert_eq!(s.rejected_truncated, 1, "{s:?}");
    assert_eq!(s.rejected_oversized, 1, "{s:?}");
    assert_eq!(s.rejected_unknown, 1, "{s:?}");
    assert_eq!(
        (s.candidate_packets, s.packets_received),
        (1, 1),
        "only the hello (from the ground's epoch, not yet proven) and the genuine packet (which \
         proved it with its HelloAck) were accepted"
    );
    assert_eq!(s.peer_epochs_proven, 1, "{s:?}");
    assert!(
        flight.poll_event().is_none(),
        "nothing was delivered twice or forged into existence"
    );
}

#[test]
fn authenticated_but_absurd_chunks_neither_panic_nor_confuse() {
    use wire::{AckRanges, Chunk, Status, StatusState, encode_chunk};
    let now = Instant::now();
    let mut ground = Session::new(config(Direction::Up, 1, 7), Box::new(MemStore::new())).unwrap();
    ground.set_link(now, true, None);
    ground.send_object(wire::Digest::of(b"x"), 1, 2).ok();
    let hello = ground.poll_transmit(now).expect("the ground's hello");
    let hello_pn = wire::PacketHeader::peek(&hello).expect("well framed").pn;
    // A peer holding the key (or a bug) sends extreme values, once it has proven its epoch by
    // answering the ground's Hello.
    let flight_sealer = Sealer::new(&LinkKey::from_bytes([7; 32]), Direction::Down, 9);
    let mut pn = 1;
    let mut send = |chunk: Chunk, ground: &mut Session| {
        let mut body = Vec::new();
        encode_chunk(&chunk, &mut body);
        ground.handle_datagram(now, &flight_sealer.seal(pn, &body));
        pn += 1;
    };
    send(
        Chunk::HelloAck {
            incarnation: 1,
            hello_pn,
            next_transfer: 0,
            next_seq: 0,
        },
        &mut ground,
    );
    assert_eq!(ground.stats().peer_epochs_proven, 1);
    let low_above_largest = AckRanges {
        largest: 10,
        settled: 10,
        low: 11,
        delay_ms: 0,
        ranges: vec![],
    };
    send(Chunk::Ack(low_above_largest), &mut ground);
    let huge = AckRanges {
        largest: u64::MAX - 1,
        settled: u64::MAX - 1,
        low: 0,
        delay_ms: u64::MAX,
        ranges: vec![(u64::MAX - 1, u64::MAX - 1)],
    };
    send(Chunk::Ack(huge), &mut ground);
    let status = Status {
        transfer: 0,
        settled: u64::MAX,
        state: StatusState::Partial,
        upto: u32::MAX,
        ranges: vec![(0, u32::MAX)],
    };
    send(Chunk::Status(status), &mut ground);
    send(Chunk::Floor { pn: u64::MAX }, &mut ground);
    assert!(
        ground.stats().malformed >= 1,
        "an ack whose low is above its largest is malformed"
    );
    // The session still works.
    let _ = ground.poll_transmit(now + Duration::from_secs(1));
    let _ = ground.poll_timeout();
}
