//! Issue 17, pacing without a configured rate over real UDP on loopback: a 600 KB object crosses
//! paced to the delivery-rate estimate, and the estimate grows past the initial pace. (The first
//! attempt measured bytes per round of a fixed length, took no sample when acknowledgements came
//! further apart than four such rounds, which on loopback they always do, and crawled at its
//! initial pace: 20 s for this object. See `sync`'s `session/estimate.rs`.) What it asserts is
//! the session's word, not a duration: the time it took is printed, for `docs/benchmarks.md`.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use link::{Contact, EndpointConfig, LinkEvent, LinkSettings, ObjectLayout, spawn_endpoint};
use wire::{Direction, LinkKey};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_without_a_configured_rate_crosses_loopback_at_its_estimate() {
    let (g, f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ga, fa) = (free_addr(), free_addr());
    let ground_config = config(g.path(), ga, fa, Direction::Up);
    let (ground, _ground_rx) = spawn_endpoint(ground_config.clone()).await.unwrap();
    let (_flight, mut flight_rx) = spawn_endpoint(config(f.path(), fa, ga, Direction::Down))
        .await
        .unwrap();
    let object: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let digest = ground_config.objects.put(&object).unwrap();
    let start = Instant::now();
    ground
        .send_object(digest, object.len() as u64, 2)
        .await
        .unwrap();
    loop {
        // A guard against a hang (a stall fails here), not a measure.
        let ev = tokio::time::timeout(Duration::from_secs(120), flight_rx.recv())
            .await
            .expect("the object arrives")
            .expect("the endpoint runs");
        if ev == LinkEvent::ObjectReceived(digest) {
            break;
        }
    }
    let took = start.elapsed();
    let stats = ground.stats_now().await.unwrap();
    let s = &stats.session;
    println!(
        "600 KB in {took:?}: {} packets, {} payload bytes sent again, estimate {:.0} bytes/s",
        s.packets_sent, s.payload_resent, stats.delivery_rate
    );
    // The estimate left the initial pace behind (it once never took a sample on loopback).
    assert!(
        stats.delivery_rate > 4.0 * sync::INITIAL_PACE,
        "estimate {:.0} bytes/s, the initial pace {:.0}: {s:?}",
        stats.delivery_rate,
        sync::INITIAL_PACE
    );
    // Every byte sent once as new, and no storm of resending (a pace that overran the
    // receiver's socket again and again would send the object twice over; a burst lost while
    // the machine is busy costs a few percent).
    assert_eq!(s.payload_sent, object.len() as u64, "{s:?}");
    assert!(s.payload_resent <= object.len() as u64 / 2, "{s:?}");
}
