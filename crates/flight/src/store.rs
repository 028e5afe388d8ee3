//! The onboard object store: content-addressed files under `state_dir/objects/sha256/<aa>/<hex>`
//! (the layout of `cas`, the same as the ground's blobs).
//!
//! The directory is also the link endpoint's object directory ([`ObjectStore::layout`]): the
//! link verifies each arriving object's sha256 before it renames it there, then reports it
//! ([`link::LinkEvent::ObjectReceived`]), and the agent wakes whoever waits for it
//! ([`ObjectStore::arrived`]). Objects the agent sends come from the same directory: a downlink
//! makes each file an object first ([`ObjectStore::add_file`]), hashed while it is copied into a
//! temporary file of the directory and only then renamed to its digest. The store never holds an
//! object whose name is not its digest.
//!
//! An object the link refused to take (no room for it onboard, see `disk::admission`) is
//! *declined* ([`ObjectStore::declined`]): whoever waits for it stops waiting, and the reason is
//! kept until it is taken ([`ObjectStore::take_declined`]), the object asked for again
//! ([`ObjectStore::asking`]) or the object arrives after all.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use cas::{DirSync, ObjectLayout};
use tokio::sync::watch;
use wire::Digest;

use crate::error::Error;

/// How much longer than the first the interval between two stall reports of
/// [`ObjectStore::wait_for`] may grow (it doubles after each report).
const MAX_STALL_FACTOR: u32 = 8;

/// Content-addressed objects under the state directory.
#[derive(Debug)]
pub(crate) struct ObjectStore {
    layout: ObjectLayout,
    /// How many objects arrived (or were declined), and the last one: a waiter that sees the
    /// count grow by one needs to look at that object only.
    arrived: watch::Sender<(u64, Option<Digest>)>,
    /// Objects the link refused to take, with the reason.
    declined: Mutex<HashMap<Digest, String>>,
    /// The objects [`ObjectStore::wait_for`] waits for now, with how many waiters: never
    /// removed as spent patches (see [`ObjectStore::remove_spent`]).
    waited: Mutex<HashMap<Digest, usize>>,
}

/// Unregisters what a [`ObjectStore::wait_for`] waited for when it ends.
struct Waiting<'a> {
    store: &'a ObjectStore,
    digests: Vec<Digest>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waited = self.store.lock_waited();
        for d in &self.digests {
            if let Some(n) = waited.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    waited.remove(d);
                }
            }
        }
    }
}

impl ObjectStore {
    /// Opens (creating) `state_dir/objects/sha256` (adopting objects of the flat layout of earlier
    /// versions, see `cas::ObjectLayout::open`), removing temporary files left by a previous
    /// run and the spool of the former part-by-part protocol (`state_dir/spool`), whose parts
    /// nothing can complete now.
    pub(crate) fn open(state_dir: &Path) -> Result<ObjectStore, Error> {
        let root = state_dir.join("objects").join("sha256");
        let layout =
            ObjectLayout::open(root.clone()).map_err(|e| Error::io("cannot open", &root, e))?;
        let _ = fs::remove_dir_all(state_dir.join("spool"));
        Ok(ObjectStore {
            layout,
            arrived: watch::channel((0, None)).0,
            waited: Mutex::default(),
            declined: Mutex::new(HashMap::new()),
        })
    }

    fn lock_waited(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, usize>> {
        self.waited.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a [`wait_for`](ObjectStore::wait_for) waits for the object now.
    pub(crate) fn is_waited(&self, digest: &Digest) -> bool {
        self.lock_waited().contains_key(digest)
    }

    /// Stores `bytes` (a patch's result, verified by its maker) durably as the object `expected`,
    /// and wakes the waiters. Fails, storing nothing under `expected`, when the bytes are not
    /// that object. Blocking.
    pub(crate) fn put_object(&self, bytes: &[u8], expected: &Digest) -> io::Result<()> {
        if Digest::of(bytes) != *expected {
            return Err(io::Error::other(format!(
                "the bytes are not the object {expected}"
            )));
        }
        let stored = self.layout.put(bytes)?;
        debug_assert_eq!(stored, *expected);
        self.arrived(expected);
        Ok(())
    }

    /// The digests of the objects held, at most `limit`, sorted; and whether that is all of
    /// them. Blocking.
    pub(crate) fn list(&self, limit: usize) -> (Vec<Digest>, bool) {
        let mut out = Vec::new();
        let Ok(fanout) = fs::read_dir(self.layout.root()) else {
            return (out, true);
        };
        for dir in fanout.flatten() {
            let Ok(entries) = fs::read_dir(dir.path()) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(digest) = name.to_str().and_then(|n| n.parse::<Digest>().ok()) else {
                    continue;
                };
                if e.file_type().is_ok_and(|t| t.is_file()) && self.path(&digest) == e.path() {
                    if out.len() == limit {
                        out.sort_unstable();
                        return (out, false);
                    }
                    out.push(digest);
                }
            }
        }
        out.sort_unstable();
        (out, true)
    }

    /// Removes an object the agent has no more use for (a patch, once applied or refused, that
    /// the caller found to be a patch no plan refers to), unless an uplink waits for it as an
    /// object of its own. Blocking.
    pub(crate) fn remove_spent(&self, digest: &Digest) {
        if self.is_waited(digest) {
            return;
        }
        match fs::remove_file(self.path(digest)) {
            Ok(()) => tracing::debug!(%digest, "removed a spent patch"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(%digest, error = %e, "cannot remove a spent patch"),
        }
    }

    /// Where the objects are, for the link endpoint.
    pub(crate) fn layout(&self) -> &ObjectLayout {
        &self.layout
    }

    /// Where the object lives.
    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.layout.path(digest)
    }

    /// Whether the store holds the object.
    pub(crate) fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The digests of `wanted` that the store does not hold, without duplicates, in order.
    pub(crate) fn missing(&self, wanted: impl IntoIterator<Item = Digest>) -> Vec<Digest> {
        let mut seen = HashSet::new();
        wanted
            .into_iter()
            .filter(|d| seen.insert(*d) && !self.has(d))
            .collect()
    }

    /// Says that an object was put in the directory (by the link): wakes the waiters.
    pub(crate) fn arrived(&self, digest: &Digest) {
        tracing::debug!(%digest, "object arrived");
        self.lock_declined().remove(digest);
        self.arrived
            .send_modify(|(n, last)| (*n, *last) = (n.wrapping_add(1), Some(*digest)));
    }

    /// Says that the link refused to take an object (no room for it, `reason` says more): wakes
    /// the waiters, who stop waiting for it.
    pub(crate) fn declined(&self, digest: &Digest, reason: &str) {
        self.lock_declined().insert(*digest, reason.to_string());
        self.arrived
            .send_modify(|(n, last)| (*n, *last) = (n.wrapping_add(1), Some(*digest)));
    }

    /// The objects of `digests` the link declined, with the reasons, forgotten once taken (in
    /// the order asked for, once each).
    pub(crate) fn take_declined(&self, digests: &[Digest]) -> Vec<(Digest, String)> {
        let mut declined = self.lock_declined();
        digests
            .iter()
            .filter_map(|d| declined.remove(d).map(|r| (*d, r)))
            .collect()
    }

    /// The objects of `digests` are asked for again: a refusal of before says nothing of them.
    pub(crate) fn asking(&self, digests: &[Digest]) {
        let mut declined = self.lock_declined();
        for d in digests {
            declined.remove(d);
        }
    }

    fn lock_declined(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, String>> {
        self.declined.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the open file `source` an object and returns its digest and size. The file is hashed
    /// first; when the store already holds that digest nothing is written. Otherwise it is
    /// copied into a temporary file of the object directory, hashed again while copied, and the
    /// copy renamed to the digest of what was copied (so a file changed meanwhile still yields a
    /// true object). Neither the hashing nor the copy reads more than `limit` bytes: a file
    /// that is (or grows) larger fails with [`cas::CopyError::TooLarge`] and leaves nothing
    /// behind. Blocking.
    pub(crate) fn add_file(
        &self,
        source: &mut File,
        limit: u64,
    ) -> Result<(Digest, u64), cas::CopyError> {
        use std::io::{Seek, SeekFrom};
        source.seek(SeekFrom::Start(0))?;
        let hashed = cas::copy_hashed(source, &mut io::sink(), limit)?;
        let (digest, size) = (hashed.digest, hashed.size);
        if self.has(&digest) {
            return Ok((digest, size));
        }
        let tmp = self.layout.temp_path();
        let result = (|| -> Result<(Digest, u64), cas::CopyError> {
            source.seek(SeekFrom::Start(0))?;
            let mut to = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            let copied = cas::copy_hashed(source, &mut to, limit)?;
            to.sync_all()?;
            drop(to);
            // The object is durable before the link may refer to it.
            let mut dirs = DirSync::default();
            self.layout.publish(&tmp, &copied.digest, &mut dirs)?;
            dirs.sync()?;
            Ok((copied.digest, copied.size))
        })();
        let (digest, size) = match result {
            Ok(object) => object,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        self.arrived(&digest);
        Ok((digest, size))
    }

    /// Waits until every digest is in the store, or `timeout` passes, or one of them is declined
    /// ([`ObjectStore::declined`]); returns the ones still missing. When none of them arrived for
    /// `stall`, `on_stall` is called with those still missing (so the caller can ask for them
    /// again); the interval then doubles, up to [`MAX_STALL_FACTOR`] times `stall`.
    pub(crate) async fn wait_for(
        &self,
        digests: &[Digest],
        timeout: Duration,
        stall: Duration,
        on_stall: &mut (dyn FnMut(Vec<Digest>) + Send),
    ) -> Vec<Digest> {
        let start = tokio::time::Instant::now();
        let deadline = start + timeout;
        {
            let mut waited = self.lock_waited();
            for d in digests {
                *waited.entry(*d).or_default() += 1;
            }
        }
        let _waiting = Waiting {
            store: self,
            digests: digests.to_vec(),
        };
        let mut rx = self.arrived.subscribe();
        let mut interval = stall;
        let mut stall_at = start + interval;
        let mut before = usize::MAX;
        let (mut count, _) = *rx.borrow_and_update();
        // Tracked incrementally: one arrival costs one look-up, not a pass over every digest.
        let mut missing: HashSet<Digest> =
            self.missing(digests.iter().copied()).into_iter().collect();
        let any_declined = |missing: &HashSet<Digest>| {
            let declined = self.lock_declined();
            missing.iter().any(|d| declined.contains_key(d))
        };
        let mut declined = any_declined(&missing);
        // The missing ones in the order asked for, without duplicates.
        let ordered = |missing: &HashSet<Digest>| -> Vec<Digest> {
            let mut seen = HashSet::new();
            digests
                .iter()
                .copied()
                .filter(|d| missing.contains(d) && seen.insert(*d))
                .collect()
        };
        loop {
            let (now_count, last) = *rx.borrow_and_update();
            if now_count != count {
                match last {
                    Some(d) if now_count == count.wrapping_add(1) => {
                        if missing.contains(&d) && self.has(&d) {
                            missing.remove(&d);
                        }
                        declined |= missing.contains(&d) && self.lock_declined().contains_key(&d);
                    }
                    // Several arrived since: look at every one still missing.
                    _ => {
                        missing.retain(|d| !self.has(d));
                        declined = any_declined(&missing);
                    }
                }
                count = now_count;
            }
            let now = tokio::time::Instant::now();
            if missing.is_empty() || now >= deadline || declined {
                return ordered(&missing);
            }
            if missing.len() < before {
                // Progress: the stall clock starts again.
                stall_at = now + interval;
                before = missing.len();
            } else if now >= stall_at {
                on_stall(ordered(&missing));
                interval = (interval * 2).min(stall * MAX_STALL_FACTOR);
                stall_at = now + interval;
            }
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(deadline.min(stall_at)) => {}
            }
        }
    }

    /// Puts bytes in the store directly, as the link would. Blocking.
    #[cfg(test)]
    pub(crate) fn put(&self, data: &[u8]) -> Digest {
        let d = self.layout.put(data).unwrap();
        self.arrived(&d);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ObjectStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = ObjectStore::open(dir.path()).unwrap();
        (dir, s)
    }

    #[test]
    fn files_become_objects_named_by_their_digest() {
        let (dir, s) = store();
        let source = dir.path().join("out.txt");
        fs::write(&source, b"hello, orbit").unwrap();
        let open = || File::open(&source).unwrap();
        let (d, size) = s.add_file(&mut open(), u64::MAX).unwrap();
        assert_eq!((d, size), (Digest::of(b"hello, orbit"), 12));
        assert!(s.has(&d));
        assert_eq!(fs::read(s.path(&d)).unwrap(), b"hello, orbit");
        assert_eq!(
            s.layout().path(&d),
            dir.path()
                .join(format!("objects/sha256/{}/{}", &d.hex()[..2], d.hex()))
        );
        // The same content again writes nothing; no temporary file is left behind.
        let before = fs::metadata(s.path(&d)).unwrap().modified().unwrap();
        assert_eq!(s.add_file(&mut open(), 12).unwrap(), (d, 12));
        assert!(matches!(
            s.add_file(&mut open(), 11),
            Err(cas::CopyError::TooLarge(11))
        ));
        assert_eq!(
            fs::metadata(s.path(&d)).unwrap().modified().unwrap(),
            before
        );
        assert_eq!(fs::read_dir(s.layout().root()).unwrap().count(), 1);
        assert_eq!(s.missing([d, Digest::of(b"x"), d]), [Digest::of(b"x")]);
    }

    fn numbered(n: u32) -> Digest {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_le_bytes());
        Digest(b)
    }

    #[test]
    fn missing_lists_each_absent_digest_once_in_order() {
        let (_d, s) = store();
        let wanted: Vec<Digest> = (0..40_000).map(numbered).collect();
        s.put(b"present");
        let present = Digest::of(b"present");
        let asked = wanted
            .iter()
            .chain([&present])
            .chain(wanted.iter())
            .copied();
        assert_eq!(s.missing(asked), wanted);
    }

    #[tokio::test]
    async fn waiters_track_many_arrivals() {
        let (_d, s) = store();
        let s = std::sync::Arc::new(s);
        let data: Vec<Vec<u8>> = (0..300u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let mut wanted: Vec<Digest> = data.iter().map(|d| Digest::of(d)).collect();
        wanted.push(wanted[0]);
        // Some before the wait, some one by one, some in bursts.
        s.put(&data[0]);
        let s2 = s.clone();
        let writer = tokio::spawn(async move {
            for (i, d) in data.iter().enumerate().skip(1) {
                s2.put(d);
                if i % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
        let missing = s
            .wait_for(
                &wanted,
                Duration::from_secs(20),
                Duration::from_secs(10),
                &mut |_| {},
            )
            .await;
        assert!(missing.is_empty(), "{missing:?}");
        writer.await.unwrap();
        // Nothing arrives: the missing ones come back in order, once each.
        let missing = s
            .wait_for(
                &[numbered(2), wanted[1], numbered(1), numbered(2)],
                Duration::from_millis(20),
                Duration::from_secs(10),
                &mut |_| {},
            )
            .await;
        assert_eq!(missing, [numbered(2), numbered(1)]);
    }

    /// In paused time: the wait ends when the object is declined, long before its timeout.
    #[tokio::test(start_paused = true)]
    async fn a_declined_object_ends_the_wait_until_it_is_asked_for_again() {
        let (_d, s) = store();
        let s = std::sync::Arc::new(s);
        let (a, b) = (numbered(1), numbered(2));
        let s2 = s.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            s2.declined(&b, "no room");
        });
        let wait = |s: std::sync::Arc<ObjectStore>| async move {
            s.wait_for(
                &[a, b],
                Duration::from_secs(30),
                Duration::from_secs(30),
                &mut |_| {},
            )
            .await
        };
        let start = tokio::time::Instant::now();
        assert_eq!(wait(s.clone()).await, [a, b]);
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(30),
            "ended when declined"
        );
        assert_eq!(s.take_declined(&[a, b]), [(b, "no room".to_string())]);
        assert!(s.take_declined(&[b]).is_empty(), "taken once");
        // Asked for again, or arrived after all: a refusal of before is forgotten.
        s.declined(&b, "no room");
        s.asking(&[b]);
        assert!(s.take_declined(&[b]).is_empty());
        let d = s.put(b"came after all");
        s.declined(&d, "no room");
        s.arrived(&d);
        assert!(s.take_declined(&[d]).is_empty());
    }

    #[test]
    fn opening_clears_temporaries_and_the_old_spool() {
        let dir = tempfile::tempdir().unwrap();
        let s = ObjectStore::open(dir.path()).unwrap();
        let d = s.put(b"kept");
        fs::write(s.layout().temp_path(), b"half").unwrap();
        fs::create_dir_all(dir.path().join("spool")).unwrap();
        fs::write(dir.path().join("spool/x.part"), b"part").unwrap();
        let s = ObjectStore::open(dir.path()).unwrap();
        assert!(s.has(&d));
        assert_eq!(fs::read_dir(s.layout().root()).unwrap().count(), 1);
        assert!(!dir.path().join("spool").exists());
    }

    #[tokio::test]
    async fn waiters_wake_on_arrival_and_report_stalls() {
        let (_d, s) = store();
        let s = std::sync::Arc::new(s);
        let data = b"payload".to_vec();
        let d = Digest::of(&data);
        let s2 = s.clone();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            s2.put(&data)
        });
        let mut stalls = Vec::new();
        let missing = s
            .wait_for(
                &[d],
                Duration::from_secs(10),
                Duration::from_secs(5),
                &mut |x| stalls.push(x),
            )
            .await;
        assert!(missing.is_empty());
        assert_eq!(writer.await.unwrap(), d);
        assert!(stalls.is_empty());

        // Stalls are reported at 50, 150 and 350 ms (the interval doubles), not in between.
        let absent = Digest::of(b"never");
        let missing = s
            .wait_for(
                &[absent, d],
                Duration::from_millis(500),
                Duration::from_millis(50),
                &mut |x| stalls.push(x),
            )
            .await;
        assert_eq!(missing, vec![absent]);
        assert_eq!(stalls, vec![vec![absent]; 3]);
    }
}
