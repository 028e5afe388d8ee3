//! The tokio driver of a [`sync::Session`] over a UDP socket and a [`FileStore`].
//!
//! The link never looks inside a message: it takes bytes ([`MessageSender::send`]) and hands
//! bytes over with their sequence number ([`LinkEvent::Message`]); the application encodes and
//! decodes them. A message is marked done with the session (it will not be delivered again, even
//! after a restart) as soon as its event is in the application's channel.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use sync::{Event, Session, SessionConfig, SessionStats};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use wire::{Digest, Direction, LinkKey, MAX_PACKET};

use crate::store::{FileStore, ObjectLayout};

/// Where an endpoint listens, whom it talks to, and where it keeps its state.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The local UDP address.
    pub bind: SocketAddr,
    /// The peer's UDP address (the link emulator's port facing this side).
    pub peer: SocketAddr,
    /// The satellite's link key.
    pub key: LinkKey,
    /// The direction this side sends: the ground `Up`, the flight agent `Down`.
    pub sends: Direction,
    /// Session state: counters, outbox, spools, inbox.
    pub state_dir: PathBuf,
    /// Where objects are read from and committed to.
    pub objects: ObjectLayout,
    /// The rate to pace sending at, in bit/s (`None`: unpaced).
    pub rate_bits_per_sec: Option<u64>,
    /// When the link is up.
    pub contact: Contact,
}

/// When the link is up.
#[derive(Debug, Clone, PartialEq)]
pub enum Contact {
    /// Always (the Engineering Model on the ground).
    Always,
    /// During these windows only (a flight system's contact plan).
    Windows(Vec<(SystemTime, SystemTime)>),
}

impl Contact {
    fn is_up(&self, now: SystemTime) -> bool {
        match self {
            Contact::Always => true,
            Contact::Windows(w) => w.iter().any(|&(a, b)| now >= a && now < b),
        }
    }

    fn next_change(&self, now: SystemTime) -> Option<SystemTime> {
        match self {
            Contact::Always => None,
            Contact::Windows(w) => w
                .iter()
                .flat_map(|&(a, b)| [a, b])
                .filter(|&t| t > now)
                .min(),
        }
    }
}

/// What the endpoint hands the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A message from the peer, in order. The link has not looked inside: decoding is the
    /// application's. By the time the application sees it, the link has marked it done: it will
    /// not be delivered again.
    Message {
        /// Its sequence number among the peer's messages (consecutive, from 0).
        seq: u64,
        /// Its bytes, as the peer gave them to [`MessageSender::send`].
        bytes: Vec<u8>,
    },
    /// An object arrived, verified, and is now in the object directory.
    ObjectReceived(Digest),
    /// The peer committed an object this side sent.
    ObjectDelivered(Digest),
    /// An object queued for sending could not be read; it was dropped.
    ObjectFailed(Digest, String),
}

/// Queues messages and objects for the peer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MessageSender {
    tx: mpsc::Sender<Command>,
    stats: watch::Receiver<LinkStats>,
}

/// Events from the peer, in order.
#[derive(Debug)]
pub struct MessageReceiver {
    rx: mpsc::Receiver<LinkEvent>,
}

/// The endpoint has stopped.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the link endpoint has stopped")]
pub struct SendError;

/// A snapshot of the endpoint, refreshed as it works.
#[derive(Debug, Clone, Default)]
pub struct LinkStats {
    /// Whether the link is up now.
    pub up: bool,
    /// Outgoing transfers not yet committed by the peer.
    pub outgoing: usize,
    /// Their bytes not yet known to be received.
    pub outgoing_bytes: u64,
    /// Each of them, in sending order.
    pub transfers: Vec<sync::OutgoingTransfer>,
    /// The session's counters.
    pub session: SessionStats,
}

#[derive(Debug)]
enum Command {
    Message(Vec<u8>),
    Object {
        digest: Digest,
        size: u64,
        priority: u8,
    },
}

impl MessageSender {
    /// Queues a message's bytes (at most [`wire::MAX_MESSAGE`]; a longer one is logged and
    /// dropped); they are kept on disk until the peer has them.
    pub async fn send(&self, message: Vec<u8>) -> Result<(), SendError> {
        self.tx
            .send(Command::Message(message))
            .await
            .map_err(|_| SendError)
    }

    /// Queues an object of the object directory; lower `priority` goes first (messages are 0).
    pub async fn send_object(
        &self,
        digest: Digest,
        size: u64,
        priority: u8,
    ) -> Result<(), SendError> {
        self.tx
            .send(Command::Object {
                digest,
                size,
                priority,
            })
            .await
            .map_err(|_| SendError)
    }

    /// The latest snapshot of the endpoint.
    pub fn stats(&self) -> LinkStats {
        self.stats.borrow().clone()
    }
}

impl MessageReceiver {
    /// The next event; `None` once the endpoint has stopped.
    pub async fn recv(&mut self) -> Option<LinkEvent> {
        self.rx.recv().await
    }
}

/// Commands and events buffered between the endpoint and the application, each way.
const QUEUE: usize = 256;
/// Events the driver holds while the application is busy; beyond this it stops reading events
/// from the session (which keeps them, persisted) rather than blocking the link.
const PENDING_EVENTS: usize = 1024;

/// Opens the session's store, binds the socket and spawns the driver. The driver ends when every
/// [`MessageSender`] and the [`MessageReceiver`] are dropped.
pub async fn spawn_endpoint(
    config: EndpointConfig,
) -> io::Result<(MessageSender, MessageReceiver)> {
    let store = FileStore::open(&config.state_dir, config.objects.clone())?;
    let session = Session::new(
        SessionConfig {
            key: config.key.clone(),
            sends: config.sends,
            incarnation: loop {
                let id: u64 = rand::random();
                if id != 0 {
                    break id;
                }
            },
            packet_size: 1460,
            reorder_window: Duration::from_millis(50),
            ack_every: 16,
            ack_delay: Duration::from_millis(20),
            persist_bytes: 256 << 10,
            persist_interval: Duration::from_secs(1),
        },
        Box::new(store),
    )?;
    let socket = UdpSocket::bind(config.bind).await?;
    let (cmd_tx, cmd_rx) = mpsc::channel(QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(QUEUE);
    let (stats_tx, stats_rx) = watch::channel(LinkStats::default());
    tokio::spawn(drive(socket, config, session, cmd_rx, ev_tx, stats_tx));
    Ok((
        MessageSender {
            tx: cmd_tx,
            stats: stats_rx,
        },
        MessageReceiver { rx: ev_rx },
    ))
}

async fn drive(
    socket: UdpSocket,
    config: EndpointConfig,
    mut session: Session,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<LinkEvent>,
    stats: watch::Sender<LinkStats>,
) {
    let mut buf = vec![0u8; MAX_PACKET + 1];
    let mut pending: VecDeque<(Option<u64>, LinkEvent)> = VecDeque::new();
    let mut commands_open = true;
    let mut up = None;
    let mut last_stats = Instant::now() - Duration::from_secs(1);
    loop {
        let now = Instant::now();
        let wall = SystemTime::now();
        let is_up = config.contact.is_up(wall);
        if up != Some(is_up) {
            session.set_link(now.into_std(), is_up, config.rate_bits_per_sec);
            up = Some(is_up);
            tracing::info!(up = is_up, "link contact");
        }
        session.handle_timeout(now.into_std());
        while let Some(p) = session.poll_transmit(now.into_std()) {
            if let Err(e) = socket.send_to(&p, config.peer).await {
                tracing::debug!(peer = %config.peer, error = %e, "send failed");
            }
        }
        while pending.len() < PENDING_EVENTS {
            let Some(ev) = session.poll_event() else {
                break;
            };
            match ev {
                Event::Message { seq, bytes } => {
                    pending.push_back((Some(seq), LinkEvent::Message { seq, bytes }))
                }
                Event::ObjectReceived { digest, .. } => {
                    pending.push_back((None, LinkEvent::ObjectReceived(digest)))
                }
                Event::ObjectDelivered { digest } => {
                    pending.push_back((None, LinkEvent::ObjectDelivered(digest)))
                }
                Event::ObjectFailed { digest, error } => {
                    tracing::warn!(%digest, %error, "an outgoing object could not be read");
                    pending.push_back((None, LinkEvent::ObjectFailed(digest, error)))
                }
            }
        }
        if now >= last_stats + Duration::from_millis(250) {
            last_stats = now;
            stats.send_replace(LinkStats {
                up: is_up,
                outgoing: session.outgoing(),
                outgoing_bytes: session.outgoing_bytes(),
                transfers: session.outgoing_transfers(),
                session: session.stats().clone(),
            });
        }
        if !commands_open && events.is_closed() {
            return;
        }
        let mut deadline = session.poll_timeout().map(Instant::from_std);
        if let Some(change) = config.contact.next_change(wall) {
            let wait = change.duration_since(wall).unwrap_or_default();
            let t = now + wait;
            deadline = Some(deadline.map_or(t, |d| d.min(t)));
        }
        // Wake at least every second to refresh the snapshot.
        let deadline = deadline.map_or(now + Duration::from_secs(1), |d| {
            d.min(now + Duration::from_secs(1))
        });
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) if from == config.peer => session.handle_datagram(Instant::now().into_std(), &buf[..n]),
                Ok((_, from)) => tracing::debug!(%from, "datagram from a stranger dropped"),
                Err(e) => tracing::debug!(error = %e, "receive failed"),
            },
            c = commands.recv(), if commands_open => match c {
                Some(Command::Message(bytes)) => {
                    if let Err(e) = session.send_message(bytes) {
                        tracing::error!(error = %e, "could not queue a message");
                    }
                }
                Some(Command::Object { digest, size, priority }) => {
                    if let Err(e) = session.send_object(digest, size, priority) {
                        tracing::error!(%digest, error = %e, "could not queue an object");
                    }
                }
                None => commands_open = false,
            },
            permit = events.reserve(), if !pending.is_empty() => match permit {
                Ok(permit) => {
                    if let Some((seq, ev)) = pending.pop_front() {
                        permit.send(ev);
                        if let Some(seq) = seq {
                            session.message_done(seq);
                        }
                    }
                }
                Err(_) => pending.clear(),
            },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}
