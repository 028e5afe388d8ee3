//! Two endpoints on loopback, joined directly (no emulator), on the test's single-threaded
//! runtime: the session of each runs in steps on the blocking pool, the driver on the runtime.
//! Messages cross as opaque bytes with their sequence numbers, in order, even when the
//! application lets hundreds pile up; objects cross verified; a message the application
//! acknowledged is not delivered again after a restart, and one it did not acknowledge is.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use link::{
    Contact, EndpointConfig, LinkEvent, LinkSettings, MessageReceiver, MessageSender, ObjectLayout,
    spawn_endpoint,
};
use wire::{Direction, LinkKey};

/// A free UDP port on 127.0.0.1.
fn free_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn config(dir: &Path, bind: SocketAddr, peer: SocketAddr, sends: Direction) -> EndpointConfig {
    EndpointConfig {
        bind,
        peer,
        key: LinkKey::from_bytes([3; 32]),
        sends,
        state_dir: dir.join("state"),
        objects: ObjectLayout::new(dir.join("objects")),
        rate_bits_per_sec: None,
        contact: Contact::Always,
        settings: LinkSettings::STANDARD,
        admit: None,
    }
}

async fn next(rx: &mut MessageReceiver) -> LinkEvent {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("the peer said nothing for 30 s")
        .expect("the endpoint stopped")
}

/// Every message of `n`, numbered, so each is told apart.
fn message(i: usize) -> Vec<u8> {
    format!("message {i}").into_bytes()
}

#[tokio::test]
async fn messages_cross_in_order_as_bytes_and_only_unacknowledged_ones_come_again() {
    let (ground_dir, flight_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ground_addr, flight_addr) = (free_addr(), free_addr());
    let ground_config = config(ground_dir.path(), ground_addr, flight_addr, Direction::Up);
    let flight_config = config(flight_dir.path(), flight_addr, ground_addr, Direction::Down);
    let (ground, _ground_rx): (MessageSender, MessageReceiver) =
        spawn_endpoint(ground_config).await.unwrap();
    let (flight_tx, mut flight_rx) = spawn_endpoint(flight_config.clone()).await.unwrap();

    // More than the application's channel (256) holds: the endpoint keeps the rest until there
    // is room.
    const N: usize = 300;
    for i in 0..N {
        ground.send(message(i)).await.unwrap();
    }
    let object = vec![7u8; 100_000];
    let digest = ObjectLayout::new(ground_dir.path().join("objects"))
        .put(&object)
        .unwrap();
    ground
        .send_object(digest, object.len() as u64, 2)
        .await
        .unwrap();

    // Read nothing until the flight side has committed everything: its channel is full, and the
    // rest waits in the endpoint. (Every byte was sent: several small messages may share a
    // packet, paced to the delivery estimate.)
    let payload = (0..N).map(|i| message(i).len() as u64).sum::<u64>() + object.len() as u64;
    loop {
        let stats = ground.stats();
        if stats.outgoing == 0 && stats.session.payload_sent >= payload {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut seqs = Vec::new();
    let mut object_arrived = false;
    while seqs.len() < N || !object_arrived {
        match next(&mut flight_rx).await {
            LinkEvent::Message { seq, bytes } => {
                assert_eq!(bytes, message(seqs.len()), "in order, unaltered");
                seqs.push(seq);
            }
            LinkEvent::ObjectReceived(d) => {
                assert_eq!(d, digest);
                let path = ObjectLayout::new(flight_dir.path().join("objects")).path(&d);
                assert_eq!(std::fs::read(path).unwrap(), object);
                object_arrived = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seqs, (0..N as u64).collect::<Vec<_>>());

    // The application acknowledges all but the last ten (handled, say, but not committed when
    // it stops).
    const UNACKED: usize = 10;
    flight_tx.done((N - UNACKED - 1) as u64).await.unwrap();
    flight_tx.stats_now().await.unwrap();

    // Stop the flight side and start it again on the same state and address (binding succeeds
    // once the old endpoint has closed its session and socket). The acknowledged messages stay
    // handled; the others come again, in order, before anything new.
    drop((flight_tx, flight_rx));
    let restart = async || loop {
        match spawn_endpoint(flight_config.clone()).await {
            Ok(endpoint) => break endpoint,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("restart: {e}"),
        }
    };
    let (flight_tx, mut flight_rx) = restart().await;
    ground.send(b"after the restart".to_vec()).await.unwrap();
    let mut again = Vec::new();
    loop {
        match next(&mut flight_rx).await {
            LinkEvent::Message { seq, bytes } if seq < N as u64 => {
                assert_eq!(bytes, message(seq as usize));
                again.push(seq);
            }
            LinkEvent::Message { seq, bytes } => {
                assert_eq!(
                    (seq, bytes.as_slice()),
                    (N as u64, &b"after the restart"[..])
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(again, ((N - UNACKED) as u64..N as u64).collect::<Vec<_>>());

    // Everything acknowledged now: a restart delivers nothing old.
    flight_tx.done(N as u64).await.unwrap();
    flight_tx.stats_now().await.unwrap();
    drop((flight_tx, flight_rx));
    let (_flight_tx, mut flight_rx) = restart().await;
    ground.send(b"last".to_vec()).await.unwrap();
    assert_eq!(
        next(&mut flight_rx).await,
        LinkEvent::Message {
            seq: N as u64 + 1,
            bytes: b"last".to_vec()
        }
    );
}

/// `send_once` queues nothing while a message with the same bytes waits in the outbox; a fresh
/// snapshot counts what the commands before it queued.
#[tokio::test]
async fn a_message_sent_once_is_not_queued_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), free_addr(), free_addr(), Direction::Up);
    // Never in contact: everything stays queued.
    c.contact = Contact::Windows(Vec::new());
    let (tx, _rx) = spawn_endpoint(c).await.unwrap();
    let messages = |stats: &link::LinkStats| stats.transfers.iter().filter(|t| t.message).count();
    for _ in 0..3 {
        tx.send_once(b"plan a".to_vec()).await.unwrap();
        tx.send_once(b"plan b".to_vec()).await.unwrap();
    }
    assert_eq!(messages(&tx.stats_now().await.unwrap()), 2);
    // Plain sends queue every copy.
    tx.send(b"plan a".to_vec()).await.unwrap();
    tx.send(b"plan a".to_vec()).await.unwrap();
    assert_eq!(messages(&tx.stats_now().await.unwrap()), 4);
}
