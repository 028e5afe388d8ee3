use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use sync::{Channel, ChannelConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use wire::{MAX_DATAGRAM, Message};

/// Where an endpoint listens and whom it talks to.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The local UDP address.
    pub bind: SocketAddr,
    /// The peer's UDP address (the link emulator's port facing this side).
    pub peer: SocketAddr,
    /// Send rate limit in bytes per second, or none.
    pub rate_bytes_per_sec: Option<u64>,
}

/// Sends messages to the peer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MessageSender {
    tx: mpsc::Sender<Message>,
}

/// The endpoint has stopped.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the link endpoint has stopped")]
pub struct SendError;

impl MessageSender {
    /// Queues a message; waits while too much is unacknowledged.
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        self.tx.send(message).await.map_err(|_| SendError)
    }
}

/// Messages received from the peer, whole and in order.
#[derive(Debug)]
pub struct MessageReceiver {
    rx: mpsc::Receiver<Message>,
}

impl MessageReceiver {
    /// The next message; `None` once the endpoint has stopped.
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}

/// Bytes queued in the channel before senders are made to wait.
const MAX_UNACKED_BYTES: usize = 8 << 20;
/// Messages buffered between the endpoint and the application, each way.
const QUEUE: usize = 64;

/// Binds the socket and spawns the task that drives the channel. The task ends when every
/// [`MessageSender`] and the [`MessageReceiver`] are dropped.
pub async fn spawn_endpoint(
    config: EndpointConfig,
) -> io::Result<(MessageSender, MessageReceiver)> {
    let socket = UdpSocket::bind(config.bind).await?;
    let (out_tx, out_rx) = mpsc::channel(QUEUE);
    let (in_tx, in_rx) = mpsc::channel(QUEUE);
    let channel = Channel::new(ChannelConfig {
        incarnation: loop {
            let id: u64 = rand::random();
            if id != 0 {
                break id;
            }
        },
        chunk_size: 1200,
        window: 256,
        initial_rto: Duration::from_millis(300),
        rate_bytes_per_sec: config.rate_bytes_per_sec,
        ack_delay: Duration::from_millis(10),
    });
    tokio::spawn(drive(socket, config.peer, channel, out_rx, in_tx));
    Ok((MessageSender { tx: out_tx }, MessageReceiver { rx: in_rx }))
}

async fn drive(
    socket: UdpSocket,
    peer: SocketAddr,
    mut channel: Channel,
    mut outgoing: mpsc::Receiver<Message>,
    incoming: mpsc::Sender<Message>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut outgoing_open = true;
    loop {
        let now = Instant::now();
        while let Some(d) = channel.poll_transmit(now.into_std()) {
            if let Err(e) = socket.send_to(&d, peer).await {
                tracing::debug!(%peer, error = %e, "send failed");
            }
        }
        while let Some(bytes) = channel.poll_message() {
            match wire::decode_message(&bytes) {
                Ok(m) => {
                    if incoming.send(m).await.is_err() && !outgoing_open {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "dropped an undecodable message"),
            }
        }
        if !outgoing_open && incoming.is_closed() {
            return;
        }
        let deadline = channel.poll_timeout().map(Instant::from_std);
        let room = channel.unacked_bytes() < MAX_UNACKED_BYTES;
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) if from == peer => channel.handle_datagram(Instant::now().into_std(), &buf[..n]),
                Ok((_, from)) => tracing::debug!(%from, "datagram from a stranger dropped"),
                Err(e) => tracing::debug!(error = %e, "receive failed"),
            },
            m = outgoing.recv(), if outgoing_open && room => match m {
                Some(m) => channel.send(wire::encode_message(&m)),
                None => outgoing_open = false,
            },
            _ = sleep_until(deadline) => channel.handle_timeout(Instant::now().into_std()),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
