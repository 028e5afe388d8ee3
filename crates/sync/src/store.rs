use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::time::Duration;

use wire::{Digest, Offer, ReplayMemory, TransferKind};

/// Counters a [`Session`](crate::Session) keeps across restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packet numbers below this may have been used: a restart continues from here. Nonces do
    /// not depend on it (each run seals under its own epoch's subkey): it only keeps numbers
    /// increasing across ordinary restarts.
    pub pn_reserved: u64,
    /// The next outgoing transfer id.
    pub next_transfer: u64,
    /// The next outgoing message sequence number.
    pub next_message_seq: u64,
    /// What the packet opener knew of the peer's epochs (replay protection across restarts of
    /// this side; losing it loses no nonce safety).
    pub replay: ReplayMemory,
    /// Incoming messages below this sequence number were delivered.
    pub delivered_seq: u64,
    /// The largest datagram the peer said (in its latest `Hello`) it sends; 0 before it said.
    /// A restarted session uses the smaller of it and its own from the start, so its data
    /// packets agree with the peer's before the next `Hello`.
    pub peer_datagram: u64,
    /// The datagram size in use when these counters were saved (0: not saved yet): data packet
    /// indexes of spools and the outbox's marks are in packets of it, so a session that opens
    /// with another size starts what was in progress again.
    pub datagram: u64,
    /// How long sessions on this store have run, in all: the clock a spool's idle time is
    /// measured on (see [`SpoolEntry::progress_at`]), which no jump of the wall clock moves.
    /// Saved now and then while spools wait, so a crash loses a little of it (and a spool lives
    /// that much longer).
    pub running: Duration,
}

/// An outgoing transfer as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// What it is.
    pub offer: Offer,
    /// Packet indexes at or above this were never sent.
    pub sent_hwm: u32,
    /// A message's bytes (objects are read from the store by digest).
    pub body: Option<Vec<u8>>,
}

/// An incoming transfer as persisted: what was received durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolEntry {
    /// The transfer id.
    pub transfer: u64,
    /// Its offer, once received.
    pub offer: Option<Offer>,
    /// Packet indexes durably received.
    pub received: Vec<(u32, u32)>,
    /// The store's running time ([`Counters::running`]) at its last progress, as saved with its
    /// ranges; `None` when the store has none (it is idle from the session's start). A spool
    /// idle for the session's `spool_expiry` of running time is dropped.
    pub progress_at: Option<Duration>,
}

/// Everything a session reloads at start.
#[derive(Debug, Clone, Default)]
pub struct Persisted {
    /// The counters.
    pub counters: Counters,
    /// Outgoing transfers not yet committed by the peer.
    pub outbox: Vec<OutboxEntry>,
    /// Incoming transfers in progress.
    pub spools: Vec<SpoolEntry>,
    /// Incoming transfers committed recently (bounded), so a resumed sender hears "committed".
    pub committed: Vec<u64>,
    /// Committed incoming messages not yet delivered, by sequence number.
    pub inbox: Vec<(u64, Vec<u8>)>,
}

/// Durable storage behind a session: the only way it touches the world.
///
/// Writes to a spool may be buffered; [`Store::spool_persist`] makes every write before it and
/// the given received set durable together (data first, then the set). Everything else is
/// durable when the call returns.
pub trait Store: Send {
    /// Loads everything persisted.
    fn load(&mut self) -> io::Result<Persisted>;
    /// Persists the counters.
    fn save_counters(&mut self, counters: &Counters) -> io::Result<()>;
    /// Adds or updates an outgoing transfer.
    fn outbox_put(&mut self, entry: &OutboxEntry) -> io::Result<()>;
    /// Forgets an outgoing transfer the peer committed.
    fn outbox_remove(&mut self, transfer: u64) -> io::Result<()>;
    /// Reads an object's bytes at `offset` into `buf`, returning how many were read.
    fn read_object(&mut self, digest: &Digest, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Whether an object is committed in the store.
    fn has_object(&mut self, digest: &Digest) -> bool;
    /// Writes received bytes into a transfer's spool.
    fn spool_write(&mut self, transfer: u64, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes the spool's writes and its received set durable, with the running time of its last
    /// progress ([`SpoolEntry::progress_at`]).
    fn spool_persist(
        &mut self,
        transfer: u64,
        offer: Option<&Offer>,
        received: &[(u32, u32)],
        progress_at: Duration,
    ) -> io::Result<()>;
    /// Verifies a complete spool against the offer's digest and commits it: an object into the
    /// object store, a message into the inbox; records the transfer as committed. When the bytes
    /// do not match, drops the spool and says so.
    fn spool_commit(&mut self, offer: &Offer) -> io::Result<Commit>;
    /// Drops a spool.
    fn spool_drop(&mut self, transfer: u64) -> io::Result<()>;
    /// Forgets a delivered inbox message.
    fn inbox_remove(&mut self, seq: u64) -> io::Result<()>;
    /// Whether there is room for the object `offer` describes (its declared size), checked when
    /// its offer first arrives; `Err` says why not, for the sender's people. The default admits
    /// everything.
    fn admit(&mut self, offer: &Offer) -> Result<(), String> {
        let _ = offer;
        Ok(())
    }
}

/// What [`Store::spool_commit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    /// The bytes did not match the digest; the spool is gone.
    Mismatch,
    /// An object is now in the store.
    Object,
    /// A message is in the inbox; here are its bytes.
    Message(Vec<u8>),
}

/// An in-memory [`Store`] that models a disk: spool writes are volatile until persisted, and
/// [`MemStore::crash`] loses exactly what a power cut would. For tests and simulations.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    /// Objects this side holds (to send, or received and committed).
    pub objects: HashMap<Digest, Vec<u8>>,
    counters: Counters,
    outbox: BTreeMap<u64, OutboxEntry>,
    /// Durable spool bytes and received sets.
    spools: BTreeMap<u64, DurableSpool>,
    /// Spool bytes written but not persisted.
    volatile: HashMap<u64, Vec<(u64, Vec<u8>)>>,
    committed: VecDeque<u64>,
    committed_set: HashSet<u64>,
    inbox: BTreeMap<u64, Vec<u8>>,
    /// Objects committed, in order, for checks.
    pub commits: Vec<Digest>,
    /// The most object bytes it admits: the objects it holds, the objects its spools were
    /// offered and the one offered now. `None`: no bound.
    pub room: Option<u64>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Loses everything not durable, as a power cut would.
    pub fn crash(&mut self) {
        self.volatile.clear();
    }

    /// Packet indexes durably received for a transfer.
    pub fn persisted(&self, transfer: u64) -> Option<&[(u32, u32)]> {
        self.spools.get(&transfer).map(|s| s.received.as_slice())
    }

    /// Whether a transfer was committed (recently).
    pub fn is_committed(&self, transfer: u64) -> bool {
        self.committed_set.contains(&transfer)
    }
}

const COMMITTED_MEMORY: usize = 4096;

/// A spool as a disk holds it.
#[derive(Debug, Clone, Default)]
struct DurableSpool {
    offer: Option<Offer>,
    received: Vec<(u32, u32)>,
    bytes: Vec<u8>,
    progress_at: Duration,
}

impl Store for MemStore {
    fn load(&mut self) -> io::Result<Persisted> {
        Ok(Persisted {
            counters: self.counters,
            outbox: self.outbox.values().cloned().collect(),
            spools: self
                .spools
                .iter()
                .map(|(&t, d)| SpoolEntry {
                    transfer: t,
                    offer: d.offer.clone(),
                    received: d.received.clone(),
                    progress_at: Some(d.progress_at),
                })
                .collect(),
            committed: self.committed.iter().copied().collect(),
            inbox: self.inbox.iter().map(|(&s, b)| (s, b.clone())).collect(),
        })
    }

    fn save_counters(&mut self, counters: &Counters) -> io::Result<()> {
        self.counters = *counters;
        Ok(())
    }

    fn outbox_put(&mut self, entry: &OutboxEntry) -> io::Result<()> {
        self.outbox.insert(entry.offer.transfer, entry.clone());
        Ok(())
    }

    fn outbox_remove(&mut self, transfer: u64) -> io::Result<()> {
        self.outbox.remove(&transfer);
        Ok(())
    }

    fn read_object(&mut self, digest: &Digest, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let obj = self
            .objects
            .get(digest)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such object"))?;
        let start = (offset as usize).min(obj.len());
        let n = buf.len().min(obj.len() - start);
        buf[..n].copy_from_slice(&obj[start..start + n]);
        Ok(n)
    }

    fn has_object(&mut self, digest: &Digest) -> bool {
        self.objects.contains_key(digest)
    }

    fn spool_write(&mut self, transfer: u64, offset: u64, data: &[u8]) -> io::Result<()> {
        self.volatile
            .entry(transfer)
            .or_default()
            .push((offset, data.to_vec()));
        Ok(())
    }

    fn spool_persist(
        &mut self,
        transfer: u64,
        offer: Option<&Offer>,
        received: &[(u32, u32)],
        progress_at: Duration,
    ) -> io::Result<()> {
        let entry = self.spools.entry(transfer).or_default();
        for (offset, data) in self.volatile.remove(&transfer).unwrap_or_default() {
            let end = offset as usize + data.len();
            if entry.bytes.len() < end {
                entry.bytes.resize(end, 0);
            }
            entry.bytes[offset as usize..end].copy_from_slice(&data);
        }
        if offer.is_some() {
            entry.offer = offer.cloned();
        }
        entry.received = received.to_vec();
        entry.progress_at = progress_at;
        Ok(())
    }

    fn spool_commit(&mut self, offer: &Offer) -> io::Result<Commit> {
        let Some(DurableSpool { mut bytes, .. }) = self.spools.remove(&offer.transfer) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such spool"));
        };
        self.volatile.remove(&offer.transfer);
        bytes.resize(offer.size as usize, 0);
        if Digest::of(&bytes) != offer.digest {
            return Ok(Commit::Mismatch);
        }
        let result = match offer.kind {
            TransferKind::Object => {
                self.commits.push(offer.digest);
                self.objects.insert(offer.digest, bytes);
                Commit::Object
            }
            TransferKind::Message { seq } => {
                self.inbox.insert(seq, bytes.clone());
                Commit::Message(bytes)
            }
        };
        if self.committed_set.insert(offer.transfer) {
            self.committed.push_back(offer.transfer);
            if self.committed.len() > COMMITTED_MEMORY
                && let Some(old) = self.committed.pop_front()
            {
                self.committed_set.remove(&old);
            }
        }
        Ok(result)
    }

    fn spool_drop(&mut self, transfer: u64) -> io::Result<()> {
        self.spools.remove(&transfer);
        self.volatile.remove(&transfer);
        Ok(())
    }

    fn inbox_remove(&mut self, seq: u64) -> io::Result<()> {
        self.inbox.remove(&seq);
        Ok(())
    }

    fn admit(&mut self, offer: &Offer) -> Result<(), String> {
        let Some(room) = self.room else {
            return Ok(());
        };
        let held: u64 = self.objects.values().map(|o| o.len() as u64).sum();
        let spooled: u64 = self
            .spools
            .values()
            .filter_map(|s| s.offer.as_ref())
            .filter(|o| o.kind == TransferKind::Object)
            .map(|o| o.size)
            .sum();
        let total = held + spooled + offer.size;
        if total > room {
            return Err(format!(
                "no room for an object of {} bytes: {total} bytes of objects, over the {room} the store takes",
                offer.size
            ));
        }
        Ok(())
    }
}
