use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use wire::MAX_DATAGRAM;

/// The link between ground and flight: two UDP ports, one facing each side.
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
    /// Uplink rate (ground → flight) in bits per second, or unlimited.
    pub up_bps: Option<u64>,
    /// Downlink rate (flight → ground) in bits per second, or unlimited.
    pub down_bps: Option<u64>,
    /// One-way delay.
    pub delay: Duration,
    /// Probability that a datagram is lost, each way.
    pub loss: f64,
}

/// Datagram counts, shared with the running emulator.
#[derive(Debug, Default)]
pub struct EmulatorStats {
    /// Datagrams forwarded ground → flight.
    pub up_forwarded: AtomicU64,
    /// Datagrams forwarded flight → ground.
    pub down_forwarded: AtomicU64,
    /// Datagrams dropped by the loss model.
    pub dropped: AtomicU64,
}

/// Binds both ports and forwards until the task is dropped.
pub async fn run_emulator(config: EmulatorConfig, stats: Arc<EmulatorStats>) -> io::Result<()> {
    let ground_sock = Arc::new(UdpSocket::bind(config.ground_side).await?);
    let flight_sock = Arc::new(UdpSocket::bind(config.flight_side).await?);
    tracing::info!(
        ground_side = %config.ground_side,
        flight_side = %config.flight_side,
        "link emulator up"
    );
    let up = tokio::spawn(direction(
        ground_sock.clone(),
        config.ground,
        flight_sock.clone(),
        config.flight,
        config.up_bps,
        config.clone(),
        stats.clone(),
        true,
    ));
    let down = tokio::spawn(direction(
        flight_sock,
        config.flight,
        ground_sock,
        config.ground,
        config.down_bps,
        config,
        stats,
        false,
    ));
    let (a, b) = tokio::join!(up, down);
    a.map_err(io::Error::other)??;
    b.map_err(io::Error::other)??;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn direction(
    from_sock: Arc<UdpSocket>,
    from: SocketAddr,
    to_sock: Arc<UdpSocket>,
    to: SocketAddr,
    bps: Option<u64>,
    config: EmulatorConfig,
    stats: Arc<EmulatorStats>,
    up: bool,
) -> io::Result<()> {
    // Datagrams leave in arrival order, each at its due time.
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(4096);
    let stats2 = stats.clone();
    tokio::spawn(async move {
        while let Some((due, d)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to_sock.send_to(&d, to).await.is_ok() {
                let c = if up {
                    &stats2.up_forwarded
                } else {
                    &stats2.down_forwarded
                };
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut free_at = Instant::now();
    loop {
        let (n, src) = from_sock.recv_from(&mut buf).await?;
        if src != from {
            continue;
        }
        if config.loss > 0.0 && rand::rng().random_bool(config.loss.min(1.0)) {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let now = Instant::now();
        let start = free_at.max(now);
        let airtime = bps.map_or(Duration::ZERO, |b| {
            Duration::from_secs_f64((n as f64 * 8.0) / b.max(1) as f64)
        });
        free_at = start + airtime;
        // A full queue behaves like a radio buffer overflowing: the datagram is lost.
        if tx
            .try_send((free_at + config.delay, buf[..n].to_vec()))
            .is_err()
        {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
