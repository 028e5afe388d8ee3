//! The tokio driver of a [`sync::Session`] over a UDP socket and a [`FileStore`].
//!
//! # Where the session runs
//!
//! Nearly every call into the session touches its store: spool writes, fsyncs and atomic renames
//! of its metadata, hashing a whole object when it commits. None of that may run on an async
//! worker thread (the same threads serve the ground's HTTP API), so the endpoint has two halves:
//!
//! - the *driver*, an async task, does only socket I/O, timers and channels. It gathers what
//!   comes in (datagrams from the peer, each stamped with its arrival time, and one command of
//!   the application at a time) into a bounded batch, and sends the datagrams the session made;
//! - the *core* (the session, and the events it produced that the application has not taken
//!   yet) runs in steps on tokio's blocking pool. A step feeds the session the batch in order,
//!   handing the application what each datagram completed as soon as it is complete; then it
//!   tells the session whether the link is up and what time it is, takes its datagrams, and
//!   returns with them and its next deadline.
//!
//! One step runs at a time: the driver moves the core into `spawn_blocking` as soon as it holds a
//! batch, a deadline has come or the application has made room for events, and gets the core
//! back when the step ends; what arrives meanwhile waits for the next step. Under load a step so
//! takes many datagrams at once, and the cost of the hand-over (tens of microseconds) is paid per
//! batch, not per datagram: a few thousand datagrams a second cost the runtime a few hundred
//! steps at most. Commands that queue a message or an object go one per step because each costs
//! fsyncs: the datagrams of one leave before the next is taken, so the peer works on the first
//! message of a burst while this side queues the second, as when the session ran on the driver
//! (acknowledgements and snapshot requests ride along with them). Opening the store and the session at
//! start is a blocking task too.
//!
//! The link never looks inside a message: it takes bytes ([`MessageSender::send`]) and hands
//! bytes over with their sequence number ([`LinkEvent::Message`]); the application encodes and
//! decodes them. When the application's channel is full, the core keeps the events (at most
//! [`PENDING_EVENTS`], then the session keeps them, persisted) and the driver waits for room.
//!
//! # Acknowledgement by the application
//!
//! A message is handled when the application has committed what it means (a database commit, a
//! state file synced), not when it reached the application's channel: the application says so
//! with [`MessageSender::done`], and until then the session keeps the message in its inbox and
//! delivers it again after a restart. `done(seq)` covers every message up to `seq`, so the
//! application handles messages in order and acknowledges each after its commit; a message it
//! cannot handle it retries, and after [`MESSAGE_ATTEMPTS`] failures gives up on with an error
//! logged and counted and acknowledges all the same, so that one poison message cannot wedge the
//! link. Acknowledgements travel in the command channel, in order with the application's other
//! commands: one sent after queuing messages (the ground re-sending plans in answer to a Hello)
//! takes effect only once those are in the session's outbox, on disk. They are cheap: the ones a
//! step gathers become one update of the session's counters.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sync::{Event, Session, SessionConfig, SessionStats};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use wire::{Digest, Direction, LinkKey, MAX_PACKET};

use crate::settings::{Admission, LinkSettings};
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
    /// The system's link settings (the systems file's; [`LinkSettings::STANDARD`] when it
    /// says nothing).
    pub settings: LinkSettings,
    /// Whether an object the peer offers may come (its declared size against the room this side
    /// has); `None` takes objects of at most [`crate::DEFAULT_MAX_OBJECT`] bytes, at most
    /// [`crate::DEFAULT_MAX_INCOMING`] arriving at once.
    pub admit: Option<Admission>,
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
    /// application's. It is delivered again after a restart until the application acknowledges
    /// it with [`MessageSender::done`].
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
    /// The peer refused an object this side sent (it has no room for it), with its reason; it
    /// was dropped from the outbox and is not sent again unless queued again.
    ObjectRefused(Digest, String),
    /// This side refused an object the peer offered ([`EndpointConfig::admit`] said no), with
    /// the reason the peer was given.
    ObjectDeclined(Digest, String),
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
    /// The delivery-rate estimate, bytes/s, that a pass without a configured rate is paced to
    /// (0 before its first sample; see `sync::Session::delivery_rate`).
    pub delivery_rate: f64,
    /// Messages and objects the application asked to send that the session could not queue
    /// (its store failed, or a message was too long), since the endpoint started: an
    /// application that must know its message is on disk compares it around
    /// [`MessageSender::stats_now`].
    pub not_queued: u64,
}

#[derive(Debug)]
enum Command {
    Message {
        bytes: Vec<u8>,
        /// Not queued when a message with the same bytes waits in the outbox.
        once: bool,
    },
    Object {
        digest: Digest,
        size: u64,
        priority: u8,
    },
    /// The application has handled every message up to this sequence number.
    Done(u64),
    /// Answer with a fresh snapshot once the commands before this one are taken.
    Snapshot(oneshot::Sender<LinkStats>),
    /// Makes the step that takes it panic: how a test reaches the recovery from a failed step.
    #[cfg(test)]
    Panic,
}

/// How many times an application tries to handle one message before it gives up on it (logs it,
/// counts it and acknowledges it anyway, so a poison message cannot wedge the link). Ground and
/// flight both follow it.
pub const MESSAGE_ATTEMPTS: u32 = 5;

/// How long an application waits before its second attempt at a message; the wait doubles before
/// each further attempt (0.2 + 0.4 + 0.8 + 1.6 s before the fifth).
pub const MESSAGE_RETRY_AFTER: Duration = Duration::from_millis(200);

impl MessageSender {
    /// Queues a message's bytes (at most [`wire::MAX_MESSAGE`]; a longer one is logged and
    /// dropped); they are kept on disk until the peer has them.
    pub async fn send(&self, message: Vec<u8>) -> Result<(), SendError> {
        self.command(Command::Message {
            bytes: message,
            once: false,
        })
        .await
    }

    /// Like [`send`](MessageSender::send), unless a message with the same bytes (the same
    /// sha256) already waits in the outbox: then nothing is queued, so the outbox never holds two
    /// copies of it.
    pub async fn send_once(&self, message: Vec<u8>) -> Result<(), SendError> {
        self.command(Command::Message {
            bytes: message,
            once: true,
        })
        .await
    }

    /// Acknowledges every message of the peer up to `seq`: the application has committed what
    /// they mean, and they are not delivered again, even after a restart. It takes effect after
    /// the commands queued before it.
    pub async fn done(&self, seq: u64) -> Result<(), SendError> {
        self.command(Command::Done(seq)).await
    }

    /// Waits until the endpoint has taken every command queued before this call, and returns a
    /// snapshot made then (the one of [`stats`](MessageSender::stats) may be up to a second old).
    pub async fn stats_now(&self) -> Result<LinkStats, SendError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Snapshot(tx)).await?;
        rx.await.map_err(|_| SendError)
    }

    async fn command(&self, command: Command) -> Result<(), SendError> {
        self.tx.send(command).await.map_err(|_| SendError)
    }

    /// Queues an object of the object directory; lower `priority` goes first (messages are 0).
    pub async fn send_object(
        &self,
        digest: Digest,
        size: u64,
        priority: u8,
    ) -> Result<(), SendError> {
        self.command(Command::Object {
            digest,
            size,
            priority,
        })
        .await
    }

    /// The latest snapshot of the endpoint.
    pub fn stats(&self) -> LinkStats {
        self.stats.borrow().clone()
    }
}

#[cfg(test)]
impl MessageSender {
    /// Makes the endpoint's next step panic.
    async fn fail_a_step(&self) -> Result<(), SendError> {
        self.command(Command::Panic).await
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
/// Events the core holds while the application is busy; beyond this it stops reading events
/// from the session (which keeps them, persisted) rather than blocking the link.
const PENDING_EVENTS: usize = 1024;
/// Datagrams gathered for one step; beyond this the driver stops reading the socket until the
/// running step ends (the socket's own buffer holds the rest).
const MAX_BATCH: usize = 1024;
/// Datagrams one step takes from the session; a session with more to send steps again at once.
const MAX_TRANSMITS: usize = 256;
/// How often the snapshot ([`LinkStats`]) is refreshed, at most...
const STATS_EVERY: Duration = Duration::from_millis(250);
/// ...and at least: the longest the driver waits between steps.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// How often the session's counters are logged, at most (target `link::stats`, debug level:
/// tests read them from a process's log).
const LOG_STATS_EVERY: Duration = Duration::from_secs(1);
/// The shortest wait between steps when the session's deadline is already past (it has done all
/// it could at that instant): tokio's timer resolution, so a wait for a future deadline is never
/// shortened, and a deadline the session cannot act on yet is not polled in a busy loop.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// Binds the socket, opens the session's store and spawns the driver. The driver ends when every
/// [`MessageSender`] and the [`MessageReceiver`] are dropped; its socket is closed after its
/// session, so an endpoint that could bind the address of one that stopped is the only one on
/// the state directory.
pub async fn spawn_endpoint(
    config: EndpointConfig,
) -> io::Result<(MessageSender, MessageReceiver)> {
    config
        .settings
        .check()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let socket = UdpSocket::bind(config.bind).await?;
    let session = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || open_session(&config))
            .await
            .map_err(io::Error::other)??
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(QUEUE);
    let (stats_tx, stats_rx) = watch::channel(LinkStats::default());
    let reopen = Reopen {
        config: config.clone(),
        events: ev_tx.clone(),
        stats: Arc::new(stats_tx),
    };
    let core = reopen.core(session);
    tokio::spawn(drive(socket, config.peer, core, cmd_rx, ev_tx, reopen));
    Ok((
        MessageSender {
            tx: cmd_tx,
            stats: stats_rx,
        },
        MessageReceiver { rx: ev_rx },
    ))
}

/// What opens the session again after a step failed (a panic: a bug, never input alone, since
/// decoders return errors): the endpoint's configuration and its channels. The state on disk is
/// what a restart would read, so the endpoint goes on as a restarted one would, without the
/// process around it having to stop.
struct Reopen {
    config: EndpointConfig,
    events: mpsc::Sender<LinkEvent>,
    stats: Arc<watch::Sender<LinkStats>>,
}

impl Reopen {
    fn core(&self, session: Session) -> Core {
        Core {
            session,
            contact: self.config.contact.clone(),
            rate_bits_per_sec: self.config.rate_bits_per_sec,
            up: None,
            now: Instant::now(),
            pending: VecDeque::new(),
            events: self.events.clone(),
            stats: self.stats.clone(),
            last_stats: None,
            last_logged: None,
            not_queued: 0,
        }
    }

    /// Opens the session again, waiting `wait` first and doubling it (to a minute) for as long
    /// as opening fails.
    async fn again(&self, mut wait: Duration) -> Core {
        loop {
            tokio::time::sleep(wait).await;
            let config = self.config.clone();
            match tokio::task::spawn_blocking(move || open_session(&config)).await {
                Ok(Ok(session)) => return self.core(session),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "the link session cannot be opened again")
                }
                Err(e) => tracing::error!(error = %e, "the link session cannot be opened again"),
            }
            wait = (wait * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
        }
    }
}

/// Opens the store and the session on it. Blocking.
fn open_session(config: &EndpointConfig) -> io::Result<Session> {
    let store =
        FileStore::open(&config.state_dir, config.objects.clone())?.admitting(config.admit.clone());
    Session::new(
        SessionConfig {
            key: config.key.clone(),
            sends: config.sends,
            incarnation: loop {
                let id: u64 = rand::random();
                if id != 0 {
                    break id;
                }
            },
            datagram_bytes: config.settings.datagram_bytes,
            reorder_window: Duration::from_millis(50),
            ack_every: 16,
            ack_delay: Duration::from_millis(20),
            persist_bytes: 256 << 10,
            persist_interval: Duration::from_secs(1),
            spool_expiry: config.settings.spool_expiry,
        },
        Box::new(store),
    )
}

/// What one step takes in: the datagrams that arrived since the last step began, in order, at
/// most one of the application's commands that queue something, and the acknowledgements and
/// snapshot requests that came before it (or after it, when it came first; both are applied
/// after it).
#[derive(Default)]
struct Batch {
    /// Datagrams from the peer, with the instant each arrived.
    datagrams: Vec<(Instant, Vec<u8>)>,
    /// A command that queues a message or an object.
    command: Option<Command>,
    /// The highest sequence number acknowledged.
    done: Option<u64>,
    /// Who waits for a snapshot made at the end of the step.
    snapshots: Vec<oneshot::Sender<LinkStats>>,
}

impl Command {
    /// A copy of a command that queues a message or an object.
    fn queued_copy(&self) -> Option<Command> {
        match self {
            Command::Message { bytes, once } => Some(Command::Message {
                bytes: bytes.clone(),
                once: *once,
            }),
            Command::Object {
                digest,
                size,
                priority,
            } => Some(Command::Object {
                digest: *digest,
                size: *size,
                priority: *priority,
            }),
            _ => None,
        }
    }
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
            && self.command.is_none()
            && self.done.is_none()
            && self.snapshots.is_empty()
    }

    /// Takes a command of the application; only one that queues something fills the batch.
    fn take(&mut self, command: Command) {
        match command {
            Command::Done(seq) => self.done = Some(self.done.map_or(seq, |d| d.max(seq))),
            Command::Snapshot(tx) => self.snapshots.push(tx),
            queuing => self.command = Some(queuing),
        }
    }
}

/// What one step gives back to the driver.
struct Stepped {
    /// Datagrams to send to the peer, in order.
    transmits: Vec<Vec<u8>>,
    /// When the next step is due if nothing arrives before.
    deadline: Instant,
    /// Whether events wait for room in the application's channel.
    blocked: bool,
}

/// The half of the endpoint that touches storage: it only ever runs on the blocking pool.
struct Core {
    session: Session,
    contact: Contact,
    rate_bits_per_sec: Option<u64>,
    /// Whether the link was up at the last step (`None` before the first).
    up: Option<bool>,
    /// The latest instant the session was given: time never goes backwards for it.
    now: Instant,
    /// Events taken from the session and not yet in the application's channel, in order.
    pending: VecDeque<LinkEvent>,
    events: mpsc::Sender<LinkEvent>,
    /// Shared with [`Reopen`], so the application's view survives a session opened again.
    stats: Arc<watch::Sender<LinkStats>>,
    last_stats: Option<Instant>,
    /// See [`LinkStats::not_queued`].
    not_queued: u64,
    /// When the session's counters were last logged (`link::stats`, at debug level).
    last_logged: Option<Instant>,
}

impl Core {
    /// Feeds the session `batch`, lets its timers run, and takes what it has for the peer and
    /// for the application. Blocking: storage I/O happens here.
    fn step(&mut self, batch: Batch) -> Stepped {
        for (at, datagram) in batch.datagrams {
            // Stamped by the driver, possibly before the previous step took its own "now".
            self.now = self.now.max(at);
            self.session.handle_datagram(self.now.into_std(), &datagram);
            // What this datagram completed goes to the application at once, not after the rest.
            self.take_events();
            self.hand_over();
        }
        if let Some(command) = batch.command {
            match command {
                Command::Message { bytes, once } => {
                    #[cfg(test)]
                    if tests::FAIL_NEXT_MESSAGE.swap(false, std::sync::atomic::Ordering::SeqCst) {
                        panic!("a step fails while it queues a message, as a test asked");
                    }
                    let digest = Digest::of(&bytes);
                    if once && self.session.has_outgoing_message(&digest) {
                        tracing::debug!(%digest, "the message already waits in the outbox");
                    } else if let Err(e) = self.session.send_message(bytes) {
                        self.not_queued += 1;
                        tracing::error!(error = %e, "could not queue a message");
                    }
                }
                Command::Object {
                    digest,
                    size,
                    priority,
                } => {
                    if let Err(e) = self.session.send_object(digest, size, priority) {
                        self.not_queued += 1;
                        tracing::error!(%digest, error = %e, "could not queue an object");
                    }
                }
                Command::Done(_) | Command::Snapshot(_) => {}
                #[cfg(test)]
                Command::Panic => panic!("a step fails, as a test asked"),
            }
        }
        // After the command: an acknowledgement never takes effect before what was queued
        // ahead of it.
        if let Some(seq) = batch.done {
            self.session.message_done(seq);
        }
        let now = self.now.max(Instant::now());
        self.now = now;
        let wall = SystemTime::now();
        let is_up = self.contact.is_up(wall);
        if self.up != Some(is_up) {
            self.session
                .set_link(now.into_std(), is_up, self.rate_bits_per_sec);
            self.up = Some(is_up);
            tracing::info!(up = is_up, "link contact");
        }
        self.session.handle_timeout(now.into_std());
        let mut transmits = Vec::new();
        while transmits.len() < MAX_TRANSMITS {
            let Some(p) = self.session.poll_transmit(now.into_std()) else {
                break;
            };
            transmits.push(p);
        }
        let more = transmits.len() == MAX_TRANSMITS;
        self.take_events();
        let blocked = self.hand_over();
        if !batch.snapshots.is_empty() || self.last_stats.is_none_or(|t| now >= t + STATS_EVERY) {
            self.last_stats = Some(now);
            let stats = LinkStats {
                up: is_up,
                outgoing: self.session.outgoing(),
                outgoing_bytes: self.session.outgoing_bytes(),
                transfers: self.session.outgoing_transfers(),
                session: self.session.stats().clone(),
                delivery_rate: self.session.delivery_rate(),
                not_queued: self.not_queued,
            };
            if self.last_logged.is_none_or(|t| now >= t + LOG_STATS_EVERY) {
                self.last_logged = Some(now);
                let s = &stats.session;
                tracing::debug!(
                    target: "link::stats",
                    payload_sent = s.payload_sent,
                    payload_resent = s.payload_resent,
                    payload_unsure = s.payload_unsure,
                    payload_spare = s.payload_spare,
                    payload_received = s.payload_received,
                    payload_duplicate = s.payload_duplicate,
                    objects_committed = s.objects_committed,
                    "link stats"
                );
            }
            for tx in batch.snapshots {
                let _ = tx.send(stats.clone());
            }
            self.stats.send_replace(stats);
        }
        let mut deadline = now + MAX_WAIT;
        if let Some(t) = self.session.poll_timeout() {
            deadline = deadline.min(Instant::from_std(t));
        }
        if let Some(change) = self.contact.next_change(wall) {
            deadline = deadline.min(now + change.duration_since(wall).unwrap_or_default());
        }
        let deadline = if more {
            now
        } else {
            deadline.max(now + MIN_WAIT)
        };
        Stepped {
            transmits,
            deadline,
            blocked,
        }
    }

    /// Takes the session's events, as many as the core holds.
    fn take_events(&mut self) {
        while self.pending.len() < PENDING_EVENTS {
            let Some(ev) = self.session.poll_event() else {
                break;
            };
            self.pending.push_back(match ev {
                Event::DatagramMismatch { ours, peers, using } => {
                    // The application has nothing to do about it; the operators have.
                    tracing::error!(
                        ours,
                        peers,
                        using,
                        "the peer sends datagrams of {peers} bytes and this side's datagram_bytes \
                         is {ours}: both ends now use {using}, and transfers in progress start \
                         again; give the system the same datagram_bytes at both ends"
                    );
                    continue;
                }
                Event::Message { seq, bytes } => LinkEvent::Message { seq, bytes },
                Event::ObjectReceived { digest, .. } => LinkEvent::ObjectReceived(digest),
                Event::ObjectDelivered { digest } => LinkEvent::ObjectDelivered(digest),
                Event::ObjectFailed { digest, error } => {
                    tracing::warn!(%digest, %error, "an outgoing object could not be read");
                    LinkEvent::ObjectFailed(digest, error)
                }
                Event::ObjectRefused { digest, reason } => {
                    tracing::warn!(%digest, %reason, "the peer refused an object");
                    LinkEvent::ObjectRefused(digest, reason)
                }
                Event::ObjectDeclined {
                    digest,
                    size,
                    reason,
                } => {
                    tracing::warn!(%digest, size, %reason, "refused an object the peer offered");
                    LinkEvent::ObjectDeclined(digest, reason)
                }
            });
        }
    }

    /// Moves pending events into the application's channel while it has room (a message stays
    /// in the session's inbox until the application acknowledges it). Returns whether events
    /// wait for room.
    fn hand_over(&mut self) -> bool {
        while let Some(ev) = self.pending.pop_front() {
            match self.events.try_send(ev) {
                Ok(()) => {}
                Err(TrySendError::Full(ev)) => {
                    self.pending.push_front(ev);
                    return true;
                }
                Err(TrySendError::Closed(_)) => {
                    self.pending.clear();
                    return false;
                }
            }
        }
        false
    }
}

/// The async half: socket, timers and channels; the core runs in steps on the blocking pool.
async fn drive(
    socket: UdpSocket,
    peer: SocketAddr,
    core: Core,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<LinkEvent>,
    reopen: Reopen,
) {
    // Steps failed in a row: each waits longer before the session is opened again.
    let mut failures: u32 = 0;
    let mut buf = vec![0u8; MAX_PACKET + 1];
    // The core while no step runs; the step while one does. A local drops before an argument:
    // the session closes before the socket does.
    let mut core = Some(core);
    let mut step: Option<JoinHandle<(Core, Stepped)>> = None;
    let mut batch = Batch::default();
    let mut deadline = Instant::now();
    // The last step left events waiting for room; room has been seen since.
    let (mut blocked, mut room) = (false, false);
    let mut commands_open = true;
    // A copy of the queuing command the running step took, and one to take again: the
    // application was told it is queued, so a step that fails does not lose it.
    let (mut taken, mut redo): (Option<Command>, Option<Command>) = (None, None);
    loop {
        if step.is_none() {
            // Datagrams aside: a peer that keeps sending must not keep a closed endpoint alive.
            if !commands_open
                && events.is_closed()
                && batch.command.is_none()
                && batch.done.is_none()
                && redo.is_none()
            {
                return;
            }
            if !batch.is_empty() || redo.is_some() || room || Instant::now() >= deadline {
                let Some(mut c) = core.take() else {
                    return;
                };
                if let Some(again) = redo.take() {
                    // It goes first; a command taken since waits for the next step.
                    redo = batch.command.replace(again);
                }
                taken = batch.command.as_ref().and_then(Command::queued_copy);
                let b = std::mem::take(&mut batch);
                room = false;
                step = Some(tokio::task::spawn_blocking(move || {
                    let stepped = c.step(b);
                    (c, stepped)
                }));
            }
        }
        tokio::select! {
            r = socket.recv_from(&mut buf), if batch.datagrams.len() < MAX_BATCH => match r {
                Ok((n, from)) if from == peer => {
                    batch.datagrams.push((Instant::now(), buf[..n].to_vec()));
                }
                Ok((_, from)) => tracing::debug!(%from, "datagram from a stranger dropped"),
                Err(e) => tracing::debug!(error = %e, "receive failed"),
            },
            // One command that queues something per step: each costs fsyncs, and its datagrams
            // leave before the next is taken (the rest wait in the application's channel).
            // Acknowledgements and snapshot requests gather freely until then.
            c = commands.recv(), if commands_open && batch.command.is_none() => match c {
                Some(c) => batch.take(c),
                None => commands_open = false,
            },
            done = async { step.as_mut().expect("a step runs").await }, if step.is_some() => {
                step = None;
                let (c, stepped) = match done {
                    Ok(x) => {
                        failures = 0;
                        x
                    }
                    Err(e) => {
                        // The core went with the step; what it held in memory (events not yet
                        // handed over, a command being queued) is what a crash loses, and the
                        // protocol recovers it the same way: unacknowledged messages come again.
                        failures += 1;
                        tracing::error!(error = %e, failures, "a link step failed; the session is opened again from its state");
                        // Taken again once; a command that fails its step twice in a row is
                        // dropped (it may be what fails), with a line that says so.
                        match (taken.take(), failures) {
                            (Some(c), 1) => redo = Some(c),
                            (Some(_), _) => tracing::error!("a queued message or object is dropped after failing twice"),
                            (None, _) => {}
                        }
                        let wait = Duration::from_millis(100) * 2u32.pow(failures.min(10) - 1);
                        core = Some(reopen.again(wait.min(Duration::from_secs(60))).await);
                        deadline = Instant::now();
                        continue;
                    }
                };
                core = Some(c);
                for p in &stepped.transmits {
                    if let Err(e) = socket.send_to(p, peer).await {
                        tracing::debug!(%peer, error = %e, "send failed");
                    }
                }
                deadline = stepped.deadline;
                blocked = stepped.blocked;
            },
            // Room in the application's channel (or none ever again): the next step fills it.
            _ = events.reserve(), if blocked && !room && step.is_none() => room = true,
            _ = tokio::time::sleep_until(deadline), if step.is_none() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes the next step that queues a message panic, once.
    pub(super) static FAIL_NEXT_MESSAGE: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);

    fn config(
        dir: &std::path::Path,
        bind: SocketAddr,
        peer: SocketAddr,
        sends: Direction,
    ) -> EndpointConfig {
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

    fn free_addr() -> SocketAddr {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    async fn next_message(rx: &mut MessageReceiver) -> (u64, Vec<u8>) {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("the peer said nothing for 30 s")
                .expect("the endpoint stopped");
            if let LinkEvent::Message { seq, bytes } = event {
                return (seq, bytes);
            }
        }
    }

    /// A step that panics does not stop the endpoint: the session is opened again from its
    /// state, the message the failed step was queueing is queued again, and messages keep
    /// crossing both ways.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_step_opens_the_session_again_and_the_link_goes_on() {
        let (g, f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (ga, fa) = (free_addr(), free_addr());
        let (ground, mut ground_rx) = spawn_endpoint(config(g.path(), ga, fa, Direction::Up))
            .await
            .unwrap();
        let (flight, mut flight_rx) = spawn_endpoint(config(f.path(), fa, ga, Direction::Down))
            .await
            .unwrap();
        ground.send(b"before".to_vec()).await.unwrap();
        let (seq, bytes) = next_message(&mut flight_rx).await;
        assert_eq!(bytes, b"before");
        // Acknowledged, and the step that took the acknowledgement over: it is not delivered
        // again when the session is opened again.
        flight.done(seq).await.unwrap();
        flight.stats_now().await.unwrap();

        flight.fail_a_step().await.unwrap();
        // The ground's step fails while it queues "after": the message is queued all the same
        // once the session is open again.
        FAIL_NEXT_MESSAGE.store(true, std::sync::atomic::Ordering::SeqCst);
        ground.send(b"after".to_vec()).await.unwrap();
        flight.send(b"down".to_vec()).await.unwrap();
        assert_eq!(next_message(&mut flight_rx).await.1, b"after");
        assert_eq!(next_message(&mut ground_rx).await.1, b"down");
    }
}
