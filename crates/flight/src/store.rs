//! The onboard object store: content-addressed files, and the spool where objects arrive.
//!
//! An object arrives as [`wire::Message::Object`] parts in order of offset. Parts are appended to
//! `spool/<hex>.part`; a part whose offset is not the spool's length restarts the object (offset
//! 0) or drops the spool (any other offset) so the caller can ask for it again. When the last part
//! is in, the spool's sha256 is checked against the digest and only then is it renamed into
//! `objects/sha256/<hex>`: the store never holds an unverified object. Waiters learn of every
//! commit through a [`tokio::sync::watch`] counter.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use wire::Digest;

use crate::error::Error;

/// The largest object the store accepts.
pub(crate) const MAX_OBJECT: u64 = 16 << 30;
/// The most objects that may be partly received at once.
const MAX_SPOOLED: usize = 4096;

/// What became of a received part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Received {
    /// Appended; more parts are due.
    Partial,
    /// The object is complete, verified and committed.
    Committed,
    /// The store already holds the object; the part was ignored.
    AlreadyHave,
    /// The part did not follow the spool; the spool was dropped and the object must be asked
    /// for again.
    OutOfOrder,
    /// The bytes did not hash to the digest; the spool was dropped and the object must be asked
    /// for again.
    Corrupt,
    /// The part cannot be accepted (too large, inconsistent sizes, too many spools).
    Rejected(String),
}

/// Content-addressed objects under the state directory.
#[derive(Debug)]
pub(crate) struct ObjectStore {
    objects: PathBuf,
    spool: PathBuf,
    committed: watch::Sender<u64>,
}

impl ObjectStore {
    /// Opens (creating) `state_dir/objects/sha256` and `state_dir/spool`.
    pub(crate) fn open(state_dir: &Path) -> Result<ObjectStore, Error> {
        let objects = state_dir.join("objects").join("sha256");
        let spool = state_dir.join("spool");
        for dir in [&objects, &spool] {
            fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        }
        Ok(ObjectStore {
            objects,
            spool,
            committed: watch::channel(0).0,
        })
    }

    /// Where the object lives once committed.
    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.objects.join(digest.hex())
    }

    /// Whether the store holds the object.
    pub(crate) fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The digests of `wanted` that the store does not hold, without duplicates, in order.
    pub(crate) fn missing(&self, wanted: impl IntoIterator<Item = Digest>) -> Vec<Digest> {
        let mut out: Vec<Digest> = Vec::new();
        for d in wanted {
            if !out.contains(&d) && !self.has(&d) {
                out.push(d);
            }
        }
        out
    }

    /// How many bytes of the object have arrived so far (0 when committed or unknown).
    pub(crate) fn spooled(&self, digest: &Digest) -> u64 {
        fs::metadata(self.spool_path(digest))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Takes one part of an object. Blocking: call from a blocking-friendly context.
    pub(crate) fn receive(
        &self,
        digest: &Digest,
        offset: u64,
        total: u64,
        data: &[u8],
    ) -> Result<Received, Error> {
        if self.has(digest) {
            return Ok(Received::AlreadyHave);
        }
        if total > MAX_OBJECT {
            return Ok(Received::Rejected(format!(
                "object {digest} of {total} bytes exceeds the {MAX_OBJECT}-byte limit"
            )));
        }
        let end = offset.checked_add(data.len() as u64);
        if end.is_none_or(|end| end > total) {
            return Ok(Received::Rejected(format!(
                "object {digest}: part at {offset} of {} bytes overruns its total {total}",
                data.len()
            )));
        }
        let spool = self.spool_path(digest);
        let have = match fs::metadata(&spool) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("cannot read", &spool, e)),
        };
        if have.is_none() && self.spool_count() >= MAX_SPOOLED {
            return Ok(Received::Rejected(format!(
                "object {digest}: {MAX_SPOOLED} objects are already arriving"
            )));
        }
        let mut file = match (offset, have) {
            // A new object, or one sent again from its start: begin afresh.
            (0, _) => File::create(&spool),
            (o, Some(h)) if o == h => OpenOptions::new().append(true).open(&spool),
            _ => {
                let _ = fs::remove_file(&spool);
                return Ok(Received::OutOfOrder);
            }
        }
        .map_err(|e| Error::io("cannot open", &spool, e))?;
        file.write_all(data)
            .map_err(|e| Error::io("cannot write", &spool, e))?;
        if offset + (data.len() as u64) < total {
            return Ok(Received::Partial);
        }
        file.sync_all()
            .map_err(|e| Error::io("cannot sync", &spool, e))?;
        drop(file);
        if hash_file(&spool)
            .map_err(|e| Error::io("cannot read", &spool, e))?
            .0
            != *digest
        {
            let _ = fs::remove_file(&spool);
            return Ok(Received::Corrupt);
        }
        let target = self.path(digest);
        fs::rename(&spool, &target).map_err(|e| Error::io("cannot commit", &target, e))?;
        if let Ok(dir) = File::open(&self.objects) {
            let _ = dir.sync_all();
        }
        self.committed.send_modify(|n| *n += 1);
        Ok(Received::Committed)
    }

    /// Waits until every digest is in the store, or `timeout` passes; returns the ones still
    /// missing. `on_stall` is called every `stall` with the digests that made no progress since
    /// the last call (so the caller can ask for them again).
    pub(crate) async fn wait_for(
        &self,
        digests: &[Digest],
        timeout: Duration,
        stall: Duration,
        on_stall: &mut (dyn FnMut(Vec<Digest>) + Send),
    ) -> Vec<Digest> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.committed.subscribe();
        let mut progress: Vec<(Digest, u64)> = Vec::new();
        let mut next_check = tokio::time::Instant::now() + stall;
        loop {
            rx.borrow_and_update();
            let missing = self.missing(digests.iter().copied());
            if missing.is_empty() || tokio::time::Instant::now() >= deadline {
                return missing;
            }
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(deadline.min(next_check)) => {}
            }
            if tokio::time::Instant::now() >= next_check {
                next_check = tokio::time::Instant::now() + stall;
                let now: Vec<(Digest, u64)> = self
                    .missing(digests.iter().copied())
                    .into_iter()
                    .map(|d| (d, self.spooled(&d)))
                    .collect();
                let stalled: Vec<Digest> = now
                    .iter()
                    .filter(|x| progress.contains(x) || x.1 == 0)
                    .map(|x| x.0)
                    .collect();
                progress = now;
                if !stalled.is_empty() {
                    on_stall(stalled);
                }
            }
        }
    }

    /// Puts bytes in the store directly (what arrives whole, and tests). Blocking.
    #[cfg(test)]
    pub(crate) fn put(&self, data: &[u8]) -> Digest {
        let d = Digest::of(data);
        assert_eq!(
            self.receive(&d, 0, data.len() as u64, data).unwrap(),
            Received::Committed
        );
        d
    }

    fn spool_path(&self, digest: &Digest) -> PathBuf {
        self.spool.join(format!("{}.part", digest.hex()))
    }

    fn spool_count(&self) -> usize {
        fs::read_dir(&self.spool).map(|rd| rd.count()).unwrap_or(0)
    }
}

/// The sha256 of a file's content and its size, read in chunks.
pub(crate) fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut size = 0;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((Digest(hasher.finalize().into()), size))
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
    fn commits_only_verified_objects() {
        let (_d, s) = store();
        let data = b"hello, orbit";
        let d = Digest::of(data);
        assert_eq!(s.receive(&d, 0, 12, &data[..5]).unwrap(), Received::Partial);
        assert!(!s.has(&d));
        assert_eq!(s.spooled(&d), 5);
        assert_eq!(
            s.receive(&d, 5, 12, &data[5..]).unwrap(),
            Received::Committed
        );
        assert!(s.has(&d));
        assert_eq!(fs::read(s.path(&d)).unwrap(), data);
        assert_eq!(s.receive(&d, 0, 12, data).unwrap(), Received::AlreadyHave);

        let wrong = Digest::of(b"something else");
        assert_eq!(s.receive(&wrong, 0, 12, data).unwrap(), Received::Corrupt);
        assert!(!s.has(&wrong));
        assert_eq!(s.spooled(&wrong), 0);
    }

    #[test]
    fn out_of_order_parts_drop_the_spool() {
        let (_d, s) = store();
        let data = b"0123456789";
        let d = Digest::of(data);
        assert_eq!(s.receive(&d, 0, 10, &data[..4]).unwrap(), Received::Partial);
        assert_eq!(
            s.receive(&d, 6, 10, &data[6..]).unwrap(),
            Received::OutOfOrder
        );
        assert_eq!(s.spooled(&d), 0);
        // Sent again from the start, it arrives whole.
        assert_eq!(s.receive(&d, 0, 10, &data[..4]).unwrap(), Received::Partial);
        assert_eq!(s.receive(&d, 0, 10, &data[..4]).unwrap(), Received::Partial);
        assert_eq!(
            s.receive(&d, 4, 10, &data[4..]).unwrap(),
            Received::Committed
        );
    }

    #[test]
    fn rejects_inconsistent_parts() {
        let (_d, s) = store();
        let d = Digest::of(b"x");
        assert!(matches!(
            s.receive(&d, 0, 2, b"abc").unwrap(),
            Received::Rejected(_)
        ));
        assert!(matches!(
            s.receive(&d, u64::MAX, 2, b"a").unwrap(),
            Received::Rejected(_)
        ));
        assert!(matches!(
            s.receive(&d, 0, MAX_OBJECT + 1, b"a").unwrap(),
            Received::Rejected(_)
        ));
    }

    #[tokio::test]
    async fn waiters_wake_on_commit() {
        let (_d, s) = store();
        let s = std::sync::Arc::new(s);
        let data = b"payload".to_vec();
        let d = Digest::of(&data);
        let s2 = s.clone();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            s2.receive(&Digest::of(&data), 0, data.len() as u64, &data)
                .unwrap()
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
        assert_eq!(writer.await.unwrap(), Received::Committed);

        let absent = Digest::of(b"never");
        let missing = s
            .wait_for(
                &[absent],
                Duration::from_millis(120),
                Duration::from_millis(30),
                &mut |x| stalls.push(x),
            )
            .await;
        assert_eq!(missing, vec![absent]);
        assert!(stalls.iter().any(|x| x == &vec![absent]));
    }
}
