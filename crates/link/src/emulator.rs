//! The link emulator over real UDP: two ports, one facing each side, and the [`LinkModel`]
//! between them.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use wire::{Direction, MAX_PACKET};

use crate::model::{Deliveries, LinkModel, LinkModelConfig};

/// Where the emulator listens and forwards, and how the link behaves.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The port the ground sends to.
    pub ground_side: SocketAddr,
    /// The ground endpoint's address.
    pub ground: SocketAddr,
    /// The port the flight agent sends to.
    pub flight_side: SocketAddr,
    /// The flight agent's address.
    pub flight: SocketAddr,
    /// The link's behaviour; windows are offsets from the emulator's start.
    pub model: LinkModelConfig,
    /// Seed of the loss, jitter and corruption draws.
    pub seed: u64,
    /// Model seconds per real second (1: real time; 60: an hour of passes in a minute, for
    /// endpoints that run on the same scaled clock).
    pub time_scale: f64,
}

/// Datagram counts, shared with the running emulator.
#[derive(Debug, Default)]
pub struct EmulatorStats {
    /// Datagrams forwarded ground → flight.
    pub up_forwarded: AtomicU64,
    /// Datagrams forwarded flight → ground.
    pub down_forwarded: AtomicU64,
    /// Datagrams dropped: lost, outside a contact, over the queue, or from a stranger.
    pub dropped: AtomicU64,
    /// Of those, dropped because the radio's queue was full.
    pub overflowed: AtomicU64,
}

/// Binds both ports and forwards until the task is dropped.
pub async fn run_emulator(config: EmulatorConfig, stats: Arc<EmulatorStats>) -> io::Result<()> {
    let ground_sock = UdpSocket::bind(config.ground_side).await?;
    let flight_sock = UdpSocket::bind(config.flight_side).await?;
    tracing::info!(ground_side = %config.ground_side, flight_side = %config.flight_side, "link emulator up");
    let start = Instant::now();
    let scale = if config.time_scale.is_finite() && config.time_scale > 0.0 {
        config.time_scale
    } else {
        1.0
    };
    let mut model = LinkModel::new(config.model.clone(), config.seed, start.into_std());
    let to_model = |real: Instant| start.into_std() + real.duration_since(start).mul_f64(scale);
    let to_real = |m: std::time::Instant| {
        start + m.saturating_duration_since(start.into_std()).div_f64(scale)
    };
    let mut queue: Deliveries<(Direction, Vec<u8>)> = Deliveries::new();
    let (mut gbuf, mut fbuf) = (vec![0u8; MAX_PACKET + 1], vec![0u8; MAX_PACKET + 1]);
    loop {
        let now = Instant::now();
        while let Some((dir, bytes)) = queue.pop_due(to_model(now)) {
            let (sock, to, counter) = match dir {
                Direction::Up => (&flight_sock, config.flight, &stats.up_forwarded),
                Direction::Down => (&ground_sock, config.ground, &stats.down_forwarded),
            };
            if sock.send_to(&bytes, to).await.is_ok() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        let wake = queue
            .next_at()
            .map_or(now + Duration::from_secs(3600), to_real);
        let (dir, n, from, expected) = tokio::select! {
            r = ground_sock.recv_from(&mut gbuf) => { let (n, f) = r?; (Direction::Up, n, f, config.ground) }
            r = flight_sock.recv_from(&mut fbuf) => { let (n, f) = r?; (Direction::Down, n, f, config.flight) }
            _ = tokio::time::sleep_until(wake) => continue,
        };
        if from != expected {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let bytes = match dir {
            Direction::Up => &gbuf[..n],
            Direction::Down => &fbuf[..n],
        };
        let overflowed = model.stats(dir).overflowed;
        let arrivals = model.transmit(to_model(Instant::now()), dir, bytes);
        if model.stats(dir).overflowed > overflowed {
            stats.overflowed.fetch_add(1, Ordering::Relaxed);
        }
        if arrivals.is_empty() {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        for (at, copy) in arrivals {
            queue.push(at, (dir, copy));
        }
    }
}
