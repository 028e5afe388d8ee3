//! Issue 11, "no nonce reuse, ever": two endpoints on loopback joined through a tap that records
//! every datagram. The flight endpoint restarts three times: normally, after its state file
//! (`counters.json`) was deleted, and after an old copy of it was restored. Its packet numbers
//! start over, yet no two packets are ever sealed under one (subkey, nonce): each run seals under
//! the subkey of its own random epoch; and no message is lost either way, because the handshake
//! carries the stream marks the state file held. The ground refuses a packet of the flight's retired
//! epoch, a replay within the current one, and forgeries.

use std::net::{SocketAddr, UdpSocket as StdSocket};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use link::{
    Contact, EndpointConfig, LinkEvent, LinkSettings, MessageReceiver, MessageSender, ObjectLayout,
    spawn_endpoint,
};
use tokio::net::UdpSocket;
use wire::{Direction, EpochKey, LinkKey, Opener, PacketHeader, ReplayMemory, Sealer};

const KEY: [u8; 32] = [5; 32];

fn free_addr() -> SocketAddr {
    StdSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn config(dir: &Path, bind: SocketAddr, peer: SocketAddr, sends: Direction) -> EndpointConfig {
    EndpointConfig {
        bind,
        peer,
        key: LinkKey::from_bytes(KEY),
        sends,
        state_dir: dir.join("state"),
        objects: ObjectLayout::new(dir.join("objects")),
        rate_bits_per_sec: None,
        contact: Contact::Always,
        settings: LinkSettings::STANDARD,
        admit: None,
    }
}

/// Forwards datagrams between the two endpoints (each has the tap as its peer) and records
/// every one it forwards. Of the ground's, it forwards as many as `budget` says (`u64::MAX`: all)
/// and drops the rest.
struct Tap {
    socket: Arc<UdpSocket>,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    budget: Arc<AtomicU64>,
    ground: SocketAddr,
    flight: SocketAddr,
}

impl Tap {
    async fn start(addr: SocketAddr, ground: SocketAddr, flight: SocketAddr) -> Tap {
        let socket = Arc::new(UdpSocket::bind(addr).await.unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let budget = Arc::new(AtomicU64::new(u64::MAX));
        let (s, record, left) = (socket.clone(), seen.clone(), budget.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, from)) = s.recv_from(&mut buf).await else {
                    return;
                };
                let spend = |b: u64| match b {
                    0 => None,
                    u64::MAX => Some(b),
                    b => Some(b - 1),
                };
                if from == ground
                    && left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, spend)
                        .is_err()
                {
                    continue;
                }
                let to = if from == ground { flight } else { ground };
                record.lock().unwrap().push(buf[..n].to_vec());
                let _ = s.send_to(&buf[..n], to).await;
            }
        });
        Tap {
            socket,
            seen,
            budget,
            ground,
            flight,
        }
    }

    /// Forwards `n` more of the ground's datagrams (`u64::MAX`: all of them), and drops the
    /// rest.
    fn pass_ground(&self, n: u64) {
        self.budget.store(n, Ordering::SeqCst);
    }

    /// How many more of the ground's datagrams it forwards.
    fn ground_budget(&self) -> u64 {
        self.budget.load(Ordering::SeqCst)
    }

    /// Every datagram of the ground the tap forwarded, in order.
    fn ground_datagrams(&self) -> Vec<Vec<u8>> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|d| PacketHeader::peek(d).is_some_and(|h| h.direction == Direction::Up))
            .cloned()
            .collect()
    }

    fn headers(&self) -> Vec<PacketHeader> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .map(|d| PacketHeader::peek(d).expect("every datagram on the tap is well framed"))
            .collect()
    }

    /// Every datagram on the tap with the epoch it was sealed in: named by a long header, found
    /// for a short one as a receiver finds it, by trying the keys of the epochs seen so far;
    /// the header with its whole packet number (a short one holds its low 16 bits).
    fn sealed(&self, key: &LinkKey) -> Vec<(PacketHeader, u64)> {
        let seen = self.seen.lock().unwrap();
        let mut monitors = [
            Opener::new(key, Direction::Up, ReplayMemory::default()),
            Opener::new(key, Direction::Down, ReplayMemory::default()),
        ];
        seen.iter()
            .map(|d| {
                let h = PacketHeader::peek(d).expect("every datagram on the tap is well framed");
                let m = &mut monitors[usize::from(h.direction == Direction::Down)];
                let o = m
                    .open(d)
                    .unwrap_or_else(|e| panic!("{h:?} does not open: {e}"));
                if !o.proven {
                    m.promote(o.epoch);
                }
                assert!(h.epoch.is_none_or(|e| e == o.epoch));
                // A short header holds the number's low 16 bits: the whole one is the opener's.
                assert_eq!(
                    h.pn,
                    if h.epoch.is_some() {
                        o.pn
                    } else {
                        o.pn & 0xffff
                    }
                );
                (PacketHeader { pn: o.pn, ..h }, o.epoch)
            })
            .collect()
    }

    /// The long datagrams the flight sealed in `epoch` (those that name it).
    fn flight_packets(&self, epoch: u64) -> Vec<Vec<u8>> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|d| {
                PacketHeader::peek(d)
                    .is_some_and(|h| h.direction == Direction::Down && h.epoch == Some(epoch))
            })
            .cloned()
            .collect()
    }

    /// Sends a datagram to the ground as if the flight had.
    async fn inject(&self, datagram: &[u8]) {
        self.socket.send_to(datagram, self.ground).await.unwrap();
    }

    /// Sends a datagram to the flight as if the ground had.
    async fn inject_to_flight(&self, datagram: &[u8]) {
        self.socket.send_to(datagram, self.flight).await.unwrap();
    }
}

async fn start(config: &EndpointConfig) -> (MessageSender, MessageReceiver) {
    loop {
        match spawn_endpoint(config.clone()).await {
            Ok(endpoint) => break endpoint,
            // The previous endpoint on this address is still closing.
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("start: {e}"),
        }
    }
}

/// The flight's epoch in the latest packets on the tap.
fn latest_flight_epoch(tap: &Tap) -> Option<u64> {
    tap.headers()
        .iter()
        .rev()
        .find_map(|h| h.epoch.filter(|_| h.direction == Direction::Down))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_or_restored_state_never_repeats_a_key_and_nonce() {
    let (ground_dir, flight_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ground_addr, flight_addr, tap_addr) = (free_addr(), free_addr(), free_addr());
    let tap = Tap::start(tap_addr, ground_addr, flight_addr).await;
    let ground_config = config(ground_dir.path(), ground_addr, tap_addr, Direction::Up);
    let flight_config = config(flight_dir.path(), flight_addr, tap_addr, Direction::Down);
    let counters = flight_config.state_dir.join("counters.json");
    let (ground, mut ground_rx) = start(&ground_config).await;
    // The ground takes and acknowledges what the flight says, as an application does.
    let heard = Arc::new(Mutex::new(std::collections::HashSet::new()));
    {
        let (heard, ground) = (heard.clone(), ground.clone());
        tokio::spawn(async move {
            while let Some(ev) = ground_rx.recv().await {
                if let LinkEvent::Message { seq, bytes } = ev {
                    heard
                        .lock()
                        .unwrap()
                        .insert(String::from_utf8(bytes).unwrap());
                    let _ = ground.done(seq).await;
                }
            }
        });
    }

    let mut epochs = Vec::new();
    let mut old_counters = None;
    for run in 0..4 {
        match run {
            // A restart with the state intact.
            1 => {}
            // The state file lost.
            2 => std::fs::remove_file(&counters).unwrap(),
            // An old copy of it restored.
            3 => std::fs::write(&counters, old_counters.as_ref().unwrap()).unwrap(),
            _ => {}
        }
        let (flight, mut flight_rx) = start(&flight_config).await;
        // Traffic both ways: messages, their data and acknowledgements, handshakes.
        for i in 0..20 {
            ground
                .send(format!("run {run} up {i}").into_bytes())
                .await
                .unwrap();
            flight
                .send(format!("run {run} down {i}").into_bytes())
                .await
                .unwrap();
        }
        // The flight takes and acknowledges what the ground says, as an application does:
        // every message of this run arrives, whatever became of its state file.
        let mut got = std::collections::HashSet::new();
        while got.len() < 20 {
            let ev = tokio::time::timeout(Duration::from_secs(120), flight_rx.recv())
                .await
                .unwrap_or_else(|_| panic!("run {run}: the flight heard {} of 20", got.len()))
                .expect("the endpoint runs");
            if let LinkEvent::Message { seq, bytes } = ev {
                let m = String::from_utf8(bytes).unwrap();
                if m.starts_with(&format!("run {run} up ")) {
                    got.insert(m);
                }
                flight.done(seq).await.unwrap();
            }
        }
        // And the ground hears all of the flight's.
        for _ in 0..2400 {
            let all = {
                let heard = heard.lock().unwrap();
                (0..20).all(|i| heard.contains(&format!("run {run} down {i}")))
            };
            if all {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let epoch = latest_flight_epoch(&tap).expect("the flight sent packets");
        assert!(!epochs.contains(&epoch), "run {run} sealed in a new epoch");
        epochs.push(epoch);
        flight.stats_now().await.unwrap();
        if run == 0 {
            old_counters = Some(std::fs::read(&counters).unwrap());
        }
        drop((flight, flight_rx));
    }

    // Every packet on the tap, with the subkey it was sealed under and its nonce.
    let key = LinkKey::from_bytes(KEY);
    let mut sealed = std::collections::HashMap::new();
    let mut numbers = std::collections::HashMap::<(Direction, u64), Vec<u64>>::new();
    let mut short = 0;
    for (h, epoch) in tap.sealed(&key) {
        let key_id = EpochKey::derive(&key, h.direction, epoch).id();
        // The nonce is the direction and the packet number, in either form.
        let nonce = (h.direction, h.pn);
        if let Some(e) = sealed.insert((key_id, nonce), epoch) {
            panic!("{nonce:?} sealed twice under one key (epochs {e:x} and {epoch:x})");
        }
        numbers.entry(nonce).or_default().push(epoch);
        short += usize::from(h.epoch.is_none());
    }
    assert!(
        short > 0,
        "once the peer knew an epoch, its packets went short"
    );
    assert_eq!(epochs.len(), 4);
    let distinct: std::collections::HashSet<_> = epochs.iter().collect();
    assert_eq!(
        distinct.len(),
        4,
        "each run draws its own epoch: {epochs:x?}"
    );
    // The runs did number packets alike: without per-run subkeys, these would be reused nonces.
    let repeated = numbers
        .iter()
        .filter(|((d, _), e)| *d == Direction::Down && e.len() > 1)
        .count();
    assert!(
        repeated > 0,
        "the lost and restored state files made packet numbers start over"
    );

    // The ground (whose endpoint never restarted) refuses what it must.
    let before = ground.stats_now().await.unwrap().session;
    // A packet of the flight's first run: its epoch is retired.
    let old = tap.flight_packets(epochs[0]);
    tap.inject(&old[old.len() / 2]).await;
    // A packet of the current run, again.
    let current = tap.flight_packets(epochs[3]);
    tap.inject(&current[0]).await;
    // Forged: sealed under another key, in the current epoch and in a new one.
    let wrong = LinkKey::from_bytes([6; 32]);
    tap.inject(&Sealer::new(&wrong, Direction::Down, epochs[3]).seal(1 << 40, b"\x00"))
        .await;
    tap.inject(&Sealer::new(&wrong, Direction::Down, 12345).seal(1, b"\x00"))
        .await;
    let mut after = before.clone();
    for _ in 0..200 {
        after = ground.stats_now().await.unwrap().session;
        if after.rejected_replayed >= before.rejected_replayed + 2
            && after.rejected_forged >= before.rejected_forged + 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        after.rejected_replayed,
        before.rejected_replayed + 2,
        "the old epoch's packet and the repeated one: {after:?}"
    );
    assert_eq!(
        after.rejected_forged,
        before.rejected_forged + 2,
        "{after:?}"
    );
    // Nothing the flight said was lost to the lost or restored marks of its message stream: its
    // new messages were numbered above what the ground had seen.
    let heard = heard.lock().unwrap().clone();
    for run in 0..4 {
        for i in 0..20 {
            let m = format!("run {run} down {i}");
            assert!(heard.contains(&m), "the ground never heard {m:?}");
        }
    }

    // The forgery under a new epoch did not displace the flight's current one: the link still
    // works.
    let (flight, mut flight_rx) = start(&flight_config).await;
    ground.send(b"still there".to_vec()).await.unwrap();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), flight_rx.recv())
            .await
            .expect("the ground's message within 30 s")
            .expect("the endpoint runs");
        match ev {
            LinkEvent::Message { bytes, .. } if bytes == b"still there" => break,
            LinkEvent::Message { seq, .. } => flight.done(seq).await.unwrap(),
            _ => {}
        }
    }
}

/// Issue 11 (review): a receiver that crashes keeps, in its counters file, a floor for the
/// sender's current epoch above every packet it may have accepted (reserved ahead of use, as
/// packet numbers are on the send side). So after a crash (the endpoint dropped, nothing saved on
/// the way out) and a restart, a recording of everything the ground sent before the crash is
/// refused, every datagram of it, however recently it was accepted; the ground, told the floor
/// by the restarted flight's `Hello`, numbers its packets above it, and the transfer completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_receiver_refuses_a_replay_of_what_it_accepted() {
    let (ground_dir, flight_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ground_addr, flight_addr, tap_addr) = (free_addr(), free_addr(), free_addr());
    let tap = Tap::start(tap_addr, ground_addr, flight_addr).await;
    let mut ground_config = config(ground_dir.path(), ground_addr, tap_addr, Direction::Up);
    // Paced, so that the flight keeps up with what the tap forwards.
    ground_config.rate_bits_per_sec = Some(8_000_000);
    let flight_config = config(flight_dir.path(), flight_addr, tap_addr, Direction::Down);
    let (ground, mut ground_rx) = start(&ground_config).await;
    let (flight, flight_rx) = start(&flight_config).await;
    let object: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let digest = ground_config.objects.put(&object).unwrap();
    // About a third of it in (700 datagrams of the ground's, of some 2,100 the object takes),
    // the ground falls silent (its datagrams dropped from here on), the flight takes every one
    // that reached it, and crashes.
    tap.pass_ground(700);
    ground
        .send_object(digest, object.len() as u64, 2)
        .await
        .unwrap();
    for _ in 0..6000 {
        if tap.ground_budget() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(tap.ground_budget(), 0, "the ground sent its 700 datagrams");
    let recorded = tap.ground_datagrams();
    let taken = |s: &sync::SessionStats| {
        s.packets_received
            + s.candidate_packets
            + s.rejected_replayed
            + s.rejected_forged
            + s.rejected_unknown
            + s.rejected_truncated
            + s.rejected_oversized
            + s.malformed
            + s.store_errors
    };
    // Every one the tap forwarded taken (or, should the kernel have dropped some on a busy
    // machine, as many as came: those it never saw are below the mark it saved all the same).
    let mut before = flight.stats_now().await.unwrap().session;
    for _ in 0..1000 {
        if taken(&before) >= recorded.len() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        before = flight.stats_now().await.unwrap().session;
    }
    assert!(before.payload_received > 0, "{before:?}");
    assert!(before.payload_received < object.len() as u64, "{before:?}");
    drop((flight, flight_rx));

    // Restarted on the same state, it is sent the whole recording.
    let (flight, mut flight_rx) = start(&flight_config).await;
    // A few at a time: what a socket's receive buffer holds.
    for chunk in recorded.chunks(16) {
        for d in chunk {
            tap.inject_to_flight(d).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut after = flight.stats_now().await.unwrap().session;
    for _ in 0..400 {
        let refused = after.rejected_replayed + after.rejected_forged + after.rejected_unknown;
        if refused + after.packets_received + after.candidate_packets >= recorded.len() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        after = flight.stats_now().await.unwrap().session;
    }
    assert_eq!(
        (after.packets_received, after.candidate_packets),
        (0, 0),
        "of {} recorded datagrams, some were accepted again: {after:?}",
        recorded.len()
    );
    assert_eq!(after.rejected_replayed, recorded.len() as u64, "{after:?}");

    // The ground speaks again: above the floor, and the object arrives whole.
    tap.pass_ground(u64::MAX);
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(60), flight_rx.recv())
            .await
            .expect("the object within 60 s of the restart")
            .expect("the endpoint runs");
        if ev == LinkEvent::ObjectReceived(digest) {
            break;
        }
    }
    let path = flight_config.objects.path(&digest);
    assert_eq!(std::fs::read(path).unwrap(), object);
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), ground_rx.recv())
            .await
            .expect("the delivery within 30 s")
            .expect("the endpoint runs");
        if ev == LinkEvent::ObjectDelivered(digest) {
            break;
        }
    }
}
