//! Issue 11, bounded disks on the receiving side, over real UDP on loopback: an endpoint whose
//! application does not admit an offered object refuses it, and the sender hears the reason and
//! drops it; a spool left idle longer than the system's spool expiry (of the link's running
//! time, across a restart, whatever the wall clock did) is deleted when the endpoint opens, and
//! one still fresh is kept.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, SystemTime};

use link::{
    Admission, Contact, EndpointConfig, FileStore, LinkEvent, LinkSettings, MessageReceiver,
    ObjectLayout, spawn_endpoint,
};
use sync::Store;
use wire::{Digest, Direction, LinkKey, Offer, TransferKind};

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
        key: LinkKey::from_bytes([4; 32]),
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
        .expect("an event within 30 s")
        .expect("the endpoint runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_the_receiver_does_not_admit_is_refused_with_its_reason() {
    let (g, f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ga, fa) = (free_addr(), free_addr());
    let ground_config = config(g.path(), ga, fa, Direction::Up);
    let mut flight_config = config(f.path(), fa, ga, Direction::Down);
    flight_config.admit = Some(Admission::new(|size| {
        if size > 100_000 {
            Err(format!("an object of {size} bytes does not fit"))
        } else {
            Ok(())
        }
    }));
    let (ground, mut ground_rx) = spawn_endpoint(ground_config.clone()).await.unwrap();
    let (_flight, mut flight_rx) = spawn_endpoint(flight_config.clone()).await.unwrap();
    let big = vec![1u8; 300_000];
    let small = vec![2u8; 50_000];
    let big_digest = ground_config.objects.put(&big).unwrap();
    let small_digest = ground_config.objects.put(&small).unwrap();
    ground
        .send_object(big_digest, big.len() as u64, 1)
        .await
        .unwrap();
    ground
        .send_object(small_digest, small.len() as u64, 2)
        .await
        .unwrap();
    let why = "an object of 300000 bytes does not fit".to_string();
    let (mut refused, mut delivered) = (false, false);
    while !(refused && delivered) {
        match next(&mut ground_rx).await {
            LinkEvent::ObjectRefused(d, reason) => {
                assert_eq!((d, &reason), (big_digest, &why));
                refused = true;
            }
            LinkEvent::ObjectDelivered(d) => {
                assert_eq!(d, small_digest);
                delivered = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let (mut declined, mut received) = (false, false);
    while !(declined && received) {
        match next(&mut flight_rx).await {
            LinkEvent::ObjectDeclined(d, reason) => {
                assert_eq!((d, &reason), (big_digest, &why));
                declined = true;
            }
            LinkEvent::ObjectReceived(d) => {
                assert_eq!(d, small_digest);
                received = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let stats = ground.stats_now().await.unwrap();
    assert_eq!(stats.outgoing, 0, "the refused object left the outbox");
    assert!(!flight_config.objects.contains(&big_digest));
    let spools = std::fs::read_dir(flight_config.state_dir.join("spool"))
        .unwrap()
        .count();
    assert_eq!(spools, 0, "nothing of the refused object stays spooled");
}

/// How long the store has run, in all, when the endpoint starts.
const RUNNING: Duration = Duration::from_secs(10 * 3600);

/// Writes a spool of transfer `t` holding its first packet, idle for `idle` of the store's
/// running time, with files whose modification time says `modified`.
fn spool(dir: &Path, objects: &ObjectLayout, t: u64, idle: Duration, modified: SystemTime) {
    let mut store = FileStore::open(dir, objects.clone()).unwrap();
    let offer = Offer {
        transfer: t,
        kind: TransferKind::Object,
        size: 5000,
        priority: 1,
        digest: Digest::of(b"never whole"),
    };
    store.spool_write(t, 0, &[9; 1460]).unwrap();
    store
        .spool_persist(t, Some(&offer), &[(0, 1)], RUNNING - idle)
        .unwrap();
    let mut counters = store.load().unwrap().counters;
    counters.running = RUNNING;
    store.save_counters(&counters).unwrap();
    for ext in ["data", "json"] {
        let file = std::fs::File::options()
            .write(true)
            .open(dir.join("spool").join(format!("{t}.{ext}")))
            .unwrap();
        file.set_modified(modified).unwrap();
    }
}

/// Issue 11 and the wall clock: a spool is judged by the time the link ran without progress,
/// not by its files' age, so a clock that jumped forward at boot (the files look ten years old)
/// drops nothing, and a spool idle past the expiry while the link ran goes, however fresh its
/// files look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_idle_past_the_expiry_is_deleted_at_start_whatever_the_wall_clock_says() {
    let f = tempfile::tempdir().unwrap();
    let mut c = config(f.path(), free_addr(), free_addr(), Direction::Down);
    c.settings.spool_expiry = Duration::from_secs(3600);
    let now = SystemTime::now();
    let ten_years = Duration::from_secs(10 * 365 * 24 * 3600);
    spool(
        &c.state_dir,
        &c.objects,
        7,
        Duration::from_secs(2 * 3600),
        now,
    );
    spool(
        &c.state_dir,
        &c.objects,
        8,
        Duration::from_secs(60),
        now - ten_years,
    );
    let (flight, _rx) = spawn_endpoint(c.clone()).await.unwrap();
    let spool_dir = c.state_dir.join("spool");
    // The first step judges the spools: wait for it to be taken.
    let mut stats = flight.stats_now().await.unwrap();
    for _ in 0..100 {
        if stats.session.spools_expired > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        stats = flight.stats_now().await.unwrap();
    }
    assert_eq!(stats.session.spools_expired, 1, "{:?}", stats.session);
    assert!(!spool_dir.join("7.data").exists() && !spool_dir.join("7.json").exists());
    assert!(spool_dir.join("8.data").exists() && spool_dir.join("8.json").exists());
    assert_eq!(FileStore::incoming_object_bytes(&c.state_dir), 5000);
}

#[test]
fn settings_that_cannot_work_are_refused() {
    assert_eq!(LinkSettings::STANDARD.check(), Ok(()));
    let mut s = LinkSettings::STANDARD;
    s.spool_expiry = Duration::from_secs(1);
    assert!(s.check().unwrap_err().contains("at least a minute"));
    for bytes in [wire::MIN_DATAGRAM - 1, wire::MAX_PACKET + 1] {
        let s = LinkSettings {
            datagram_bytes: bytes,
            ..LinkSettings::STANDARD
        };
        assert_eq!(
            s.check(),
            Err(format!("a datagram of {bytes} bytes is outside 320..=1500"))
        );
    }
}
