//! The session [`Store`] on disk.
//!
//! Layout under the state directory:
//!
//! ```text
//! counters.json            packet-number reservation, transfer and message counters, the peer's
//!                          epochs (current with its replay mark, retired), the datagram sizes,
//!                          how long the link has run in all (what spools' idle time counts)
//! outbox/<t>.json          an outgoing transfer (offer, high-water mark); messages keep their
//! outbox/<t>.body          bytes beside it
//! spool/<t>.data           received bytes, written at their offsets
//! spool/<t>.json           the offer, the ranges received durably, the running time of its last
//!                          progress (its files' age is never looked at: the wall clock may jump)
//! inbox/<seq>.msg          committed messages not yet handled
//! committed.json           the last transfers committed (so a resumed sender hears "committed")
//! ```
//!
//! Objects live in the application's content-addressed directory ([`cas::ObjectLayout`]). Every
//! metadata file is replaced atomically (write, fsync, rename); spool data is fsynced before the
//! ranges that claim it.
//!
//! A file that cannot be read or parsed at start is set aside ([`cas::set_aside`]) with a
//! warning naming it and why, and the store opens without it: counters start again (the
//! handshake's stream marks and the per-run sealing epoch make that safe), a spool restarts from
//! nothing, an outbox entry is dropped (the application re-sends what it still needs).

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cas::DirSync;
pub(crate) use cas::ObjectLayout;
use serde::{Deserialize, Serialize};
use sync::{Commit, Counters, OutboxEntry, Persisted, SpoolEntry, Store};
use wire::{Digest, Offer, RETIRED_EPOCHS, ReplayMemory, TransferKind};

use crate::settings::{Admission, DEFAULT_MAX_INCOMING, DEFAULT_MAX_OBJECT};

/// A [`Store`] on the filesystem. See the module documentation for the layout.
pub struct FileStore {
    dir: PathBuf,
    objects: ObjectLayout,
    spool_files: HashMap<u64, File>,
    committed: VecDeque<u64>,
    admit: Option<Admission>,
    /// Objects admitted in this run by the default judgement (no [`Admission`]) whose spools
    /// may not hold their offer on disk yet: transfer, declared size.
    admitted: HashMap<u64, u64>,
    /// `<dir>/lock`, locked exclusively for as long as the store is open: one session on a
    /// state directory at a time, across processes and machines sharing it (the OS releases the
    /// lock of a process that dies).
    _lock: File,
}

const COMMITTED_MEMORY: usize = 4096;

#[derive(Serialize, Deserialize, Default)]
struct CountersFile {
    pn_reserved: u64,
    next_transfer: u64,
    next_message_seq: u64,
    delivered_seq: u64,
    /// The peer's current epoch and its replay mark: at or above every packet number accepted
    /// in it (reserved ahead, see `sync`'s persistence), so a restart refuses everything of that
    /// epoch up to it. (Files of version 2 of the framing held a `replay_floor` without epoch:
    /// it is ignored.)
    #[serde(default)]
    peer_epoch: Option<(u64, u64)>,
    /// Epochs the peer left behind, most recent first.
    #[serde(default)]
    retired_epochs: Vec<u64>,
    /// The largest datagram the peer said it sends (0: not said yet).
    #[serde(default)]
    peer_datagram: u64,
    /// The datagram size spools and outbox marks are in (0: not saved yet).
    #[serde(default)]
    datagram: u64,
    /// How long sessions on this store have run, in all, in milliseconds: the clock spools'
    /// idle time is measured on.
    #[serde(default)]
    running_ms: u64,
}

#[derive(Serialize, Deserialize, Clone)]
struct OfferFile {
    transfer: u64,
    message_seq: Option<u64>,
    size: u64,
    priority: u8,
    digest: Digest,
}

impl From<&Offer> for OfferFile {
    fn from(o: &Offer) -> OfferFile {
        OfferFile {
            transfer: o.transfer,
            message_seq: match o.kind {
                TransferKind::Message { seq } => Some(seq),
                TransferKind::Object => None,
            },
            size: o.size,
            priority: o.priority,
            digest: o.digest,
        }
    }
}

impl From<OfferFile> for Offer {
    fn from(o: OfferFile) -> Offer {
        Offer {
            transfer: o.transfer,
            kind: o
                .message_seq
                .map_or(TransferKind::Object, |seq| TransferKind::Message { seq }),
            size: o.size,
            priority: o.priority,
            digest: o.digest,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct OutboxFile {
    offer: OfferFile,
    sent_hwm: u32,
}

#[derive(Serialize, Deserialize)]
struct SpoolFile {
    offer: Option<OfferFile>,
    received: Vec<(u32, u32)>,
    /// The store's running time at the spool's last progress, in milliseconds (not the wall
    /// clock's: see `sync::Counters::running`).
    #[serde(default)]
    progress_ms: Option<u64>,
}

impl FileStore {
    /// The bytes of the objects still arriving in the store at `dir` (its spools), each counted
    /// at the larger of its offered size and the bytes its spool file holds (what it takes on
    /// the disk, not its length: a chunk far into a transfer leaves a hole, not bytes): what the
    /// object directory will have to take once they commit. A spool whose metadata cannot be
    /// read, holds no offer yet, or is a message's, counts its data file's bytes. Blocking;
    /// never fails (a missing folder holds nothing).
    pub fn incoming_object_bytes(dir: &Path) -> u64 {
        incoming_objects(dir)
            .into_iter()
            .map(|(_, bytes)| bytes)
            .fold(0u64, u64::saturating_add)
    }

    /// The objects the store at `dir` has outgoing transfers of (its outbox), each once, in
    /// transfer order: what a session opened on it reads from the object directory. A replica
    /// taking a link over makes them local before it opens the session. Blocking; never fails
    /// (a missing folder or an unreadable entry holds nothing).
    pub fn outgoing_objects(dir: &Path) -> Vec<Digest> {
        let outbox = dir.join("outbox");
        let Ok(files) = outbox_files(&outbox) else {
            return Vec::new();
        };
        let mut seen = std::collections::HashSet::new();
        files
            .filter_map(|(_, f)| f.ok())
            .filter(|f| f.offer.message_seq.is_none())
            .map(|f| f.offer.digest)
            .filter(|d| seen.insert(*d))
            .collect()
    }

    /// Opens (creating) a store in `dir`, with objects kept as `objects` says.
    pub fn open(dir: &Path, objects: ObjectLayout) -> io::Result<FileStore> {
        fs::create_dir_all(dir)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "another link endpoint has the session in {} open",
                        dir.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        for sub in ["outbox", "spool", "inbox"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        fs::create_dir_all(objects.root())?;
        let committed_path = dir.join("committed.json");
        let committed = match read_json::<Vec<u64>>(&committed_path) {
            Ok(c) => c.into(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => VecDeque::new(),
            Err(e) => {
                set_aside(&committed_path, &e);
                VecDeque::new()
            }
        };
        Ok(FileStore {
            dir: dir.to_path_buf(),
            objects,
            spool_files: HashMap::new(),
            committed,
            admit: None,
            admitted: HashMap::new(),
            _lock: lock,
        })
    }

    /// The store, judging the objects the peer offers with `admit` (`None`: taking every one).
    pub fn admitting(self, admit: Option<Admission>) -> FileStore {
        FileStore { admit, ..self }
    }

    /// The judgement of an endpoint without an [`Admission`]: objects of at most
    /// [`DEFAULT_MAX_OBJECT`] bytes, at most [`DEFAULT_MAX_INCOMING`] of them arriving at once.
    fn admit_by_default(&mut self, offer: &Offer) -> Result<(), String> {
        if offer.size > DEFAULT_MAX_OBJECT {
            return Err(format!(
                "an object of {} bytes is larger than the {DEFAULT_MAX_OBJECT} this side takes",
                offer.size
            ));
        }
        let mut incoming: HashMap<u64, u64> = incoming_objects(&self.dir).into_iter().collect();
        for (&t, &size) in &self.admitted {
            let counted = incoming.entry(t).or_default();
            *counted = (*counted).max(size);
        }
        // This transfer counts at its declared size, whatever of it arrived before its offer.
        incoming.remove(&offer.transfer);
        let arriving = incoming.values().fold(0u64, |a, &b| a.saturating_add(b));
        if arriving.saturating_add(offer.size) > DEFAULT_MAX_INCOMING {
            return Err(format!(
                "no room for an object of {} bytes: {arriving} bytes of objects are arriving, and this side takes {DEFAULT_MAX_INCOMING} at once",
                offer.size
            ));
        }
        self.admitted.insert(offer.transfer, offer.size);
        Ok(())
    }

    fn spool_data(&self, t: u64) -> PathBuf {
        self.dir.join("spool").join(format!("{t}.data"))
    }

    fn spool_meta(&self, t: u64) -> PathBuf {
        self.dir.join("spool").join(format!("{t}.json"))
    }

    fn spool_file(&mut self, t: u64) -> io::Result<&mut File> {
        if !self.spool_files.contains_key(&t) {
            if self.spool_files.len() >= 64 {
                self.spool_files.clear();
            }
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(self.spool_data(t))?;
            self.spool_files.insert(t, f);
        }
        self.spool_files
            .get_mut(&t)
            .ok_or_else(|| io::Error::other("spool file vanished"))
    }
}

/// Each spool of the store at `dir` with the object bytes it counts for (see
/// [`FileStore::incoming_object_bytes`]).
fn incoming_objects(dir: &Path) -> Vec<(u64, u64)> {
    let spool = dir.join("spool");
    let Ok(numbers) = numbered(&spool, "data") else {
        return Vec::new();
    };
    numbers
        .into_iter()
        .map(|t| {
            let data =
                fs::metadata(spool.join(format!("{t}.data"))).map_or(0, |m| stored_bytes(&m));
            let offered = read_json::<SpoolFile>(&spool.join(format!("{t}.json")))
                .ok()
                .and_then(|f| f.offer);
            let bytes = match offered {
                // A message never reaches the object directory, but its spool takes the disk
                // while it arrives (at most `MAX_MESSAGE` bytes): counted as it stands.
                Some(o) if o.message_seq.is_some() => data,
                Some(o) => o.size.max(data),
                None => data,
            };
            (t, bytes)
        })
        .collect()
}

/// The bytes a file takes on the disk, at most its length: a file written at scattered offsets
/// (a spool) has holes.
fn stored_bytes(m: &fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        m.len().min(m.blocks().saturating_mul(512))
    }
    #[cfg(not(unix))]
    {
        m.len()
    }
}

/// Sets an unreadable state file aside with a warning naming it and why.
fn set_aside(path: &Path, error: &io::Error) {
    cas::set_aside_with_warning(path, "link state file", error);
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Replaces `path` atomically with `bytes`.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    serde_json::from_slice(&fs::read(path)?)
        .map_err(|e| invalid(format!("{}: {e}", path.display())))
}

/// The outgoing transfers' files in `outbox`, in transfer order: each one's path and what it
/// reads as (a transfer's message body, if any, is beside it as `<t>.body`).
fn outbox_files(
    outbox: &Path,
) -> io::Result<impl Iterator<Item = (PathBuf, io::Result<OutboxFile>)> + '_> {
    Ok(numbered(outbox, "json")?.into_iter().map(move |t| {
        let meta = outbox.join(format!("{t}.json"));
        let file = read_json::<OutboxFile>(&meta);
        (meta, file)
    }))
}

/// Files of `dir` named `<number>.<ext>`, by number.
fn numbered(dir: &Path, ext: &str) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_suffix(ext)
            .and_then(|s| s.strip_suffix('.'))
            .and_then(|s| s.parse().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl Store for FileStore {
    fn load(&mut self) -> io::Result<Persisted> {
        let counters_path = self.dir.join("counters.json");
        let c: CountersFile = match read_json(&counters_path) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => CountersFile::default(),
            Err(e) => {
                set_aside(&counters_path, &e);
                CountersFile::default()
            }
        };
        let mut outbox = Vec::new();
        let outbox_dir = self.dir.join("outbox");
        for (meta, file) in outbox_files(&outbox_dir)? {
            let body_path = meta.with_extension("body");
            let entry = file.and_then(|f| {
                let offer: Offer = f.offer.into();
                let body = match offer.kind {
                    TransferKind::Message { .. } => Some(fs::read(&body_path)?),
                    TransferKind::Object => None,
                };
                Ok(OutboxEntry {
                    offer,
                    sent_hwm: f.sent_hwm,
                    body,
                })
            });
            match entry {
                Ok(e) => outbox.push(e),
                Err(e) => {
                    set_aside(&meta, &e);
                    if body_path.exists() {
                        set_aside(&body_path, &e);
                    }
                }
            }
        }
        let mut spools = Vec::new();
        for t in numbered(&self.dir.join("spool"), "json")? {
            match read_json::<SpoolFile>(&self.spool_meta(t)) {
                Ok(f) => spools.push(SpoolEntry {
                    transfer: t,
                    offer: f.offer.map(Into::into),
                    received: f.received,
                    progress_at: f.progress_ms.map(Duration::from_millis),
                }),
                Err(e) => {
                    // The transfer starts again from nothing: its sender hears "unknown".
                    set_aside(&self.spool_meta(t), &e);
                    let _ = fs::remove_file(self.spool_data(t));
                }
            }
        }
        let mut inbox = Vec::new();
        for seq in numbered(&self.dir.join("inbox"), "msg")? {
            inbox.push((
                seq,
                fs::read(self.dir.join("inbox").join(format!("{seq}.msg")))?,
            ));
        }
        Ok(Persisted {
            counters: Counters {
                pn_reserved: c.pn_reserved,
                next_transfer: c.next_transfer,
                next_message_seq: c.next_message_seq,
                replay: {
                    let mut retired = [0; RETIRED_EPOCHS];
                    for (slot, &e) in retired.iter_mut().zip(&c.retired_epochs) {
                        *slot = e;
                    }
                    ReplayMemory {
                        current: c.peer_epoch,
                        retired,
                    }
                },
                delivered_seq: c.delivered_seq,
                peer_datagram: c.peer_datagram,
                datagram: c.datagram,
                running: Duration::from_millis(c.running_ms),
            },
            outbox,
            spools,
            committed: self.committed.iter().copied().collect(),
            inbox,
        })
    }

    fn save_counters(&mut self, c: &Counters) -> io::Result<()> {
        let f = CountersFile {
            pn_reserved: c.pn_reserved,
            next_transfer: c.next_transfer,
            next_message_seq: c.next_message_seq,
            delivered_seq: c.delivered_seq,
            peer_epoch: c.replay.current,
            retired_epochs: c
                .replay
                .retired
                .iter()
                .copied()
                .filter(|&e| e != 0)
                .collect(),
            peer_datagram: c.peer_datagram,
            datagram: c.datagram,
            running_ms: u64::try_from(c.running.as_millis()).unwrap_or(u64::MAX),
        };
        write_atomic(
            &self.dir.join("counters.json"),
            &serde_json::to_vec(&f).map_err(invalid)?,
        )
    }

    fn outbox_put(&mut self, e: &OutboxEntry) -> io::Result<()> {
        let t = e.offer.transfer;
        let base = self.dir.join("outbox");
        let meta = base.join(format!("{t}.json"));
        if let Some(body) = &e.body {
            // Written with the entry's first metadata, and kept while that exists (later puts
            // only move the high-water mark). A body without metadata is a leftover of a crash
            // between the two writes, of another message that got the same transfer number
            // again (its number was never saved): it is replaced, or this entry would carry
            // that message's bytes after a restart, never verify at the peer, and hold every
            // later message back.
            let body_path = base.join(format!("{t}.body"));
            if !meta.exists() || !body_path.exists() {
                write_atomic(&body_path, body)?;
            }
        }
        let f = OutboxFile {
            offer: (&e.offer).into(),
            sent_hwm: e.sent_hwm,
        };
        write_atomic(&meta, &serde_json::to_vec(&f).map_err(invalid)?)
    }

    fn outbox_remove(&mut self, t: u64) -> io::Result<()> {
        let base = self.dir.join("outbox");
        for name in [format!("{t}.json"), format!("{t}.body")] {
            match fs::remove_file(base.join(name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn read_object(&mut self, d: &Digest, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut f = File::open(self.objects.path(d))?;
        f.seek(SeekFrom::Start(offset))?;
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }

    fn has_object(&mut self, d: &Digest) -> bool {
        self.objects.path(d).is_file()
    }

    fn spool_write(&mut self, t: u64, offset: u64, data: &[u8]) -> io::Result<()> {
        let f = self.spool_file(t)?;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(data)
    }

    fn spool_persist(
        &mut self,
        t: u64,
        offer: Option<&Offer>,
        received: &[(u32, u32)],
        progress_at: Duration,
    ) -> io::Result<()> {
        self.spool_file(t)?.sync_data()?;
        let f = SpoolFile {
            offer: offer.map(Into::into),
            received: received.to_vec(),
            progress_ms: Some(u64::try_from(progress_at.as_millis()).unwrap_or(u64::MAX)),
        };
        write_atomic(
            &self.spool_meta(t),
            &serde_json::to_vec(&f).map_err(invalid)?,
        )
    }

    fn spool_commit(&mut self, offer: &Offer) -> io::Result<Commit> {
        let t = offer.transfer;
        self.spool_files.remove(&t);
        self.admitted.remove(&t);
        let data = self.spool_data(t);
        let file = OpenOptions::new().read(true).write(true).open(&data)?;
        file.set_len(offer.size)?;
        file.sync_all()?;
        let ok = cas::hash_reader(&mut io::BufReader::with_capacity(1 << 16, file))?.digest
            == offer.digest;
        let result = if !ok {
            Commit::Mismatch
        } else {
            match offer.kind {
                TransferKind::Object => {
                    // The object is durable before anything records it as committed.
                    let mut dirs = DirSync::default();
                    self.objects.publish(&data, &offer.digest, &mut dirs)?;
                    dirs.sync()?;
                    Commit::Object
                }
                TransferKind::Message { seq } => {
                    let bytes = fs::read(&data)?;
                    write_atomic(&self.dir.join("inbox").join(format!("{seq}.msg")), &bytes)?;
                    Commit::Message(bytes)
                }
            }
        };
        if ok {
            self.committed.push_back(t);
            while self.committed.len() > COMMITTED_MEMORY {
                self.committed.pop_front();
            }
            let list: Vec<u64> = self.committed.iter().copied().collect();
            write_atomic(
                &self.dir.join("committed.json"),
                &serde_json::to_vec(&list).map_err(invalid)?,
            )?;
        }
        let _ = fs::remove_file(&data);
        let _ = fs::remove_file(self.spool_meta(t));
        Ok(result)
    }

    fn spool_drop(&mut self, t: u64) -> io::Result<()> {
        self.spool_files.remove(&t);
        self.admitted.remove(&t);
        let _ = fs::remove_file(self.spool_data(t));
        let _ = fs::remove_file(self.spool_meta(t));
        Ok(())
    }

    fn inbox_remove(&mut self, seq: u64) -> io::Result<()> {
        match fs::remove_file(self.dir.join("inbox").join(format!("{seq}.msg"))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn admit(&mut self, offer: &Offer) -> Result<(), String> {
        match &self.admit {
            Some(a) => a.admit(offer.size),
            None => self.admit_by_default(offer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_store_at_a_time_on_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ObjectLayout::new(dir.path().join("objects"));
        let first = FileStore::open(dir.path(), layout.clone()).unwrap();
        let Err(e) = FileStore::open(dir.path(), layout.clone()) else {
            panic!("a second store opened on a directory in use");
        };
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(e.to_string().contains("another link endpoint"), "{e}");
        drop(first);
        FileStore::open(dir.path(), layout).unwrap();
    }

    #[test]
    fn survives_a_reopen() {
        let dir = std::env::temp_dir().join(format!("orbitdock-store-{}", rand::random::<u64>()));
        let layout = ObjectLayout::new(dir.join("objects"));
        let offer = Offer {
            transfer: 3,
            kind: TransferKind::Object,
            size: 10,
            priority: 1,
            digest: Digest::of(b"0123456789"),
        };
        {
            let mut s = FileStore::open(&dir, layout.clone()).unwrap();
            s.spool_write(3, 5, b"56789").unwrap();
            s.spool_persist(3, Some(&offer), &[(1, 2)], Duration::ZERO)
                .unwrap();
            s.save_counters(&Counters {
                pn_reserved: 77,
                ..Counters::default()
            })
            .unwrap();
        }
        let mut s = FileStore::open(&dir, layout.clone()).unwrap();
        let p = s.load().unwrap();
        assert_eq!(p.counters.pn_reserved, 77);
        assert_eq!(p.spools[0].received, vec![(1, 2)]);
        s.spool_write(3, 0, b"01234").unwrap();
        assert_eq!(s.spool_commit(&offer).unwrap(), Commit::Object);
        let mut buf = [0u8; 4];
        assert_eq!(s.read_object(&offer.digest, 6, &mut buf).unwrap(), 4);
        assert_eq!(&buf, b"6789");
        drop(s);
        assert!(
            FileStore::open(&dir, layout)
                .unwrap()
                .load()
                .unwrap()
                .committed
                .contains(&3)
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn incoming_objects_count_at_their_offered_size() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ObjectLayout::new(dir.path().join("objects"));
        assert_eq!(FileStore::incoming_object_bytes(dir.path()), 0);
        let mut s = FileStore::open(dir.path(), layout).unwrap();
        let offer = |transfer, kind, size| Offer {
            transfer,
            kind,
            size,
            priority: 1,
            digest: Digest::of(b"x"),
        };
        // An object of 1 MiB, 10 bytes in.
        s.spool_write(1, 0, &[7; 10]).unwrap();
        s.spool_persist(
            1,
            Some(&offer(1, TransferKind::Object, 1 << 20)),
            &[(0, 1)],
            Duration::ZERO,
        )
        .unwrap();
        // A message: never an object, counted for the bytes its spool holds, not its size.
        s.spool_write(2, 0, &[7; 100]).unwrap();
        s.spool_persist(
            2,
            Some(&offer(2, TransferKind::Message { seq: 4 }, 5000)),
            &[(0, 1)],
            Duration::ZERO,
        )
        .unwrap();
        // Data whose metadata is not written yet counts as written.
        s.spool_write(3, 990, &[7; 10]).unwrap();
        assert_eq!(
            FileStore::incoming_object_bytes(dir.path()),
            (1 << 20) + 100 + 1000
        );
        // A chunk far into a transfer leaves a hole, not bytes: it counts for what it holds.
        s.spool_write(4, 1 << 40, &[7; 10]).unwrap();
        let counted = FileStore::incoming_object_bytes(dir.path()) - (1 << 20) - 100 - 1000;
        assert!(
            counted <= 64 << 10,
            "{counted} bytes counted for a 10-byte chunk"
        );
    }

    /// Without the application's admission, objects are bounded all the same: each, and all
    /// arriving at once.
    #[test]
    fn without_an_admission_incoming_objects_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ObjectLayout::new(dir.path().join("objects"));
        let mut s = FileStore::open(dir.path(), layout).unwrap();
        let offer = |transfer, size| Offer {
            transfer,
            kind: TransferKind::Object,
            size,
            priority: 1,
            digest: Digest::of(b"x"),
        };
        let too_big = s.admit(&offer(1, DEFAULT_MAX_OBJECT + 1)).unwrap_err();
        assert!(too_big.contains("larger than"), "{too_big}");
        // Objects admitted count while they arrive, persisted or not.
        let mut admitted = 0;
        let mut t = 2;
        while admitted + DEFAULT_MAX_OBJECT <= DEFAULT_MAX_INCOMING {
            s.admit(&offer(t, DEFAULT_MAX_OBJECT)).unwrap();
            if t == 2 {
                s.spool_write(t, 0, &[7; 10]).unwrap();
                s.spool_persist(
                    t,
                    Some(&offer(t, DEFAULT_MAX_OBJECT)),
                    &[(0, 1)],
                    Duration::ZERO,
                )
                .unwrap();
            }
            admitted += DEFAULT_MAX_OBJECT;
            t += 1;
        }
        let full = s.admit(&offer(t, 1)).unwrap_err();
        assert!(full.contains("no room"), "{full}");
        // One gone, there is room again.
        s.spool_drop(2).unwrap();
        assert_eq!(s.admit(&offer(t, 1)), Ok(()));
    }

    /// Issue 11: every state file the store reads at start, truncated or garbage, is set aside
    /// and the store opens without it.
    #[test]
    fn unreadable_files_are_set_aside_and_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let layout = ObjectLayout::new(dir.path().join("objects"));
        {
            let mut s = FileStore::open(&state, layout.clone()).unwrap();
            s.save_counters(&Counters {
                next_transfer: 9,
                ..Counters::default()
            })
            .unwrap();
        }
        let files = [
            "counters.json",
            "committed.json",
            "outbox/4.json",
            "spool/7.json",
        ];
        for (i, f) in files.iter().enumerate() {
            let bad: &[u8] = if i % 2 == 0 {
                b"{\"pn_res"
            } else {
                b"\x00\xff garbage"
            };
            fs::write(state.join(f), bad).unwrap();
        }
        fs::write(state.join("outbox/4.body"), b"a message").unwrap();
        fs::write(state.join("spool/7.data"), b"partial").unwrap();
        let mut s = FileStore::open(&state, layout).unwrap();
        let p = s.load().unwrap();
        assert_eq!(p.counters, Counters::default());
        assert!(p.outbox.is_empty() && p.spools.is_empty() && p.committed.is_empty());
        for f in files.iter().chain(&["outbox/4.body"]) {
            let path = state.join(f);
            assert!(!path.exists(), "{f} still in place");
            let (folder, name) = (path.parent().unwrap(), path.file_name().unwrap());
            let aside = fs::read_dir(folder).unwrap().flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{}.corrupt-", name.to_string_lossy()))
            });
            assert!(aside, "{f} was not set aside");
        }
        assert!(!state.join("spool/7.data").exists());
        // The store works on: a fresh save reads back.
        s.save_counters(&Counters {
            delivered_seq: 3,
            ..Counters::default()
        })
        .unwrap();
        assert_eq!(s.load().unwrap().counters.delivered_seq, 3);
    }

    /// Issue 11 (the crash test): a kill between a message's body and its metadata leaves the
    /// body alone; the next message gets the same transfer number and must not inherit it.
    #[test]
    fn a_body_left_by_a_crash_is_not_taken_for_the_next_message() {
        let dir = std::env::temp_dir().join(format!("orbitdock-store-{}", rand::random::<u64>()));
        let layout = ObjectLayout::new(dir.join("objects"));
        let entry = |bytes: &[u8]| OutboxEntry {
            offer: Offer {
                transfer: 116,
                kind: TransferKind::Message { seq: 112 },
                size: bytes.len() as u64,
                priority: 0,
                digest: Digest::of(bytes),
            },
            sent_hwm: 0,
            body: Some(bytes.to_vec()),
        };
        {
            let mut s = FileStore::open(&dir, layout.clone()).unwrap();
            // What the killed process wrote of its message: the body only.
            write_atomic(&dir.join("outbox/116.body"), b"the lost message").unwrap();
            assert!(s.load().unwrap().outbox.is_empty());
            s.outbox_put(&entry(b"the next message")).unwrap();
            // Later puts keep the body.
            let mut moved = entry(b"the next message");
            moved.sent_hwm = 1;
            s.outbox_put(&moved).unwrap();
        }
        let loaded = FileStore::open(&dir, layout).unwrap().load().unwrap();
        assert_eq!(loaded.outbox.len(), 1);
        assert_eq!(
            loaded.outbox[0].body.as_deref(),
            Some(&b"the next message"[..])
        );
        assert_eq!(loaded.outbox[0].sent_hwm, 1);
        let _ = fs::remove_dir_all(dir);
    }
}
