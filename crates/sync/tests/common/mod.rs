//! What the session tests share: a [`MemStore`] that outlives the sessions on it.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sync::{Commit, Counters, MemStore, OutboxEntry, Persisted, Store};
use wire::{Digest, Offer};

/// A [`MemStore`] that outlives the session on it (a restart opens another on the same).
#[derive(Clone, Default)]
pub(crate) struct Shared(Arc<Mutex<MemStore>>);

impl Shared {
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut MemStore) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
}

impl Store for Shared {
    fn load(&mut self) -> io::Result<Persisted> {
        self.with(|s| s.load())
    }
    fn save_counters(&mut self, c: &Counters) -> io::Result<()> {
        self.with(|s| s.save_counters(c))
    }
    fn outbox_put(&mut self, e: &OutboxEntry) -> io::Result<()> {
        self.with(|s| s.outbox_put(e))
    }
    fn outbox_remove(&mut self, t: u64) -> io::Result<()> {
        self.with(|s| s.outbox_remove(t))
    }
    fn read_object(&mut self, d: &Digest, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.with(|s| s.read_object(d, offset, buf))
    }
    fn has_object(&mut self, d: &Digest) -> bool {
        self.with(|s| s.has_object(d))
    }
    fn spool_write(&mut self, t: u64, offset: u64, data: &[u8]) -> io::Result<()> {
        self.with(|s| s.spool_write(t, offset, data))
    }
    fn spool_persist(
        &mut self,
        t: u64,
        o: Option<&Offer>,
        r: &[(u32, u32)],
        at: Duration,
    ) -> io::Result<()> {
        self.with(|s| s.spool_persist(t, o, r, at))
    }
    fn spool_commit(&mut self, o: &Offer) -> io::Result<Commit> {
        self.with(|s| s.spool_commit(o))
    }
    fn spool_drop(&mut self, t: u64) -> io::Result<()> {
        self.with(|s| s.spool_drop(t))
    }
    fn inbox_remove(&mut self, seq: u64) -> io::Result<()> {
        self.with(|s| s.inbox_remove(seq))
    }
    fn admit(&mut self, o: &Offer) -> Result<(), String> {
        self.with(|s| s.admit(o))
    }
}
