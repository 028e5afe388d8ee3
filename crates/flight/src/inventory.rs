//! What the agent knows of its volumes' content: each file's sha256, hashed once and trusted
//! while the file keeps the same identity (device, inode, size, modification and change times,
//! to the nanosecond), as git's index trusts a file's stat data.
//!
//! The digests are refreshed with each volume listing (after every task that may change a
//! volume): files met for the first time or changed since are hashed, within a budget per
//! listing. They serve two ends: a `Want` names, for each object it asks for, the object now at
//! the path where it will land (its previous version, which the ground can send a delta
//! against); and the ground's mirror of what is onboard.
//!
//! Files are opened beneath the volume's folder without following any symlink (`openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), so a tenant's pod that swaps a folder for a symlink
//! cannot make the agent hash, or report, a file outside the volume. Each volume's digests are
//! kept in `state_dir/file-digests/<tenant>/<volume>.json`; it is a cache: a lost or unreadable
//! one costs a hash of each file again, nothing more.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use wire::{Digest, FileEntry, VolumeRef};

use crate::volumes::{RelPath, VolumeDir};
use crate::{fsutil, names};

/// How many bytes one refresh hashes at most; files beyond wait for the next one.
const HASH_BUDGET: u64 = 2 << 30;

/// A file's identity: while it is the same, so is its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Known {
    digest: Digest,
    stamp: Stamp,
    /// Hashed within [`RACY_NS`] of its last change: a write in the same clock tick would leave
    /// the stamp as it is, so the next refresh hashes it again (git's "racily clean" entries).
    /// A lookup still trusts it: a base named wrongly costs a larger patch, never a wrong file
    /// (the flight applies patches to the object named, not to the file).
    racy: bool,
}

/// How close to its last change a file's hash is not trusted by the next refresh.
const RACY_NS: i128 = 2_000_000_000;

/// One volume's digests, by path below its root (no leading `/`).
type VolumeDigests = BTreeMap<String, Known>;

/// The digests of every volume's files (see the module documentation). Cheap to share.
#[derive(Debug)]
pub(crate) struct FileDigests {
    dir: PathBuf,
    /// `<volumes_dir>`, whose `<tenant>/<volume>` folders are the volumes.
    volumes_dir: PathBuf,
    volumes: Mutex<HashMap<(String, String), VolumeDigests>>,
}

/// Opens `rel` (below `root`, no leading `/`) for reading, never through a symlink, never
/// outside `root`; only a regular file (the volumes' one way in, `volumes::VolumeDir`).
fn open_beneath(root: &Path, rel: &str) -> io::Result<(File, fs::Metadata)> {
    let rel = RelPath::parse(rel).map_err(io::Error::other)?;
    let (file, _) = VolumeDir::open_path(root)?
        .open_file(&rel)
        .map_err(|e| io::Error::other(e.message().to_string()))?;
    let meta = file.metadata()?;
    Ok((file, meta))
}

impl FileDigests {
    /// The digests of the volumes under `volumes_dir`, kept under `state_dir`.
    pub(crate) fn open(state_dir: &Path, volumes_dir: &Path) -> FileDigests {
        FileDigests {
            dir: state_dir.join("file-digests"),
            volumes_dir: volumes_dir.to_path_buf(),
            volumes: Mutex::default(),
        }
    }

    /// Every tenant volume there is (folders whose names are valid), sorted. Blocking.
    pub(crate) fn volumes(&self) -> Vec<VolumeRef> {
        let names = |dir: &Path| -> Vec<String> {
            let Ok(entries) = fs::read_dir(dir) else {
                return Vec::new();
            };
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        };
        let mut out = Vec::new();
        for tenant in names(&self.volumes_dir) {
            if names::check_tenant(&tenant).is_err() {
                continue;
            }
            for volume in names(&self.volumes_dir.join(&tenant)) {
                if names::check_volume(&volume).is_ok() {
                    out.push(VolumeRef {
                        tenant: tenant.clone(),
                        volume,
                    });
                }
            }
        }
        out.sort();
        out.truncate(wire::MAX_INVENTORY_VOLUMES);
        out
    }

    fn file(&self, tenant: &str, volume: &str) -> PathBuf {
        self.dir.join(tenant).join(format!("{volume}.json"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), VolumeDigests>> {
        self.volumes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The volume's digests as known, read from the state folder the first time.
    fn known(&self, tenant: &str, volume: &str) -> VolumeDigests {
        let key = (tenant.to_string(), volume.to_string());
        if let Some(v) = self.lock().get(&key) {
            return v.clone();
        }
        let loaded: VolumeDigests = fs::read(self.file(tenant, volume))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        self.lock().entry(key).or_insert(loaded).clone()
    }

    /// The digest of the file at `rel` in the volume at `root`, if known and the file has not
    /// changed since it was hashed. Blocking (an open and a stat).
    pub(crate) fn lookup(
        &self,
        tenant: &str,
        volume: &str,
        root: &Path,
        rel: &str,
    ) -> Option<Digest> {
        let rel = rel.trim_start_matches('/');
        let (_, meta) = open_beneath(root, rel).ok()?;
        let known = {
            let key = (tenant.to_string(), volume.to_string());
            let cached = self.lock().get(&key).and_then(|v| v.get(rel).copied());
            match cached {
                Some(k) => Some(k),
                None => self.known(tenant, volume).get(rel).copied(),
            }
        }?;
        (known.stamp == Stamp::of(&meta)).then_some(known.digest)
    }

    /// Brings the volume's digests up to date with its listing (`entries`, paths with or
    /// without a leading `/`): files not known or changed are hashed, within [`HASH_BUDGET`];
    /// files no longer listed are forgotten. Returns each listed file's digest when known, in
    /// the listing's order. Blocking.
    pub(crate) fn refresh(
        &self,
        tenant: &str,
        volume: &str,
        root: &Path,
        entries: &[FileEntry],
    ) -> Vec<(String, Digest)> {
        let before = self.known(tenant, volume);
        let mut after = VolumeDigests::new();
        let mut budget = HASH_BUDGET;
        let mut out = Vec::new();
        let now_ns = i128::from(fsutil::now_ms()) * 1_000_000;
        for e in entries.iter().filter(|e| !e.is_dir) {
            let rel = e.path.trim_start_matches('/');
            let Ok((mut file, meta)) = open_beneath(root, rel) else {
                continue;
            };
            let stamp = Stamp::of(&meta);
            let digest = match before.get(rel) {
                Some(k) if k.stamp == stamp && !k.racy => Some(k.digest),
                _ if meta.size() <= budget => {
                    budget -= meta.size();
                    // Trusted only if the file did not change while it was read.
                    cas::hash_reader(&mut file)
                        .ok()
                        .filter(|h| h.size == meta.size())
                        .filter(|_| file.metadata().is_ok_and(|m| Stamp::of(&m) == stamp))
                        .map(|h| h.digest)
                }
                _ => None,
            };
            if let Some(digest) = digest {
                let ns = |(s, n): (i64, i64)| i128::from(s) * 1_000_000_000 + i128::from(n);
                let changed = ns(stamp.mtime).max(ns(stamp.ctime));
                let racy = now_ns - changed < RACY_NS;
                after.insert(
                    rel.to_string(),
                    Known {
                        digest,
                        stamp,
                        racy,
                    },
                );
                out.push((e.path.clone(), digest));
            }
        }
        if after != before {
            let path = self.file(tenant, volume);
            let saved = fs::create_dir_all(self.dir.join(tenant)).and_then(|()| {
                fsutil::write_atomic(&path, &serde_json::to_vec(&after).unwrap_or_default())
            });
            if let Err(e) = saved {
                tracing::warn!(path = %path.display(), error = %e, "cannot keep the volume's file digests");
            }
        }
        self.lock()
            .insert((tenant.to_string(), volume.to_string()), after);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            size: 0,
            is_dir: false,
            modified_ms: 0,
        }
    }

    #[test]
    fn digests_follow_the_files_and_never_leave_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("vol");
        fs::create_dir_all(root.join("in")).unwrap();
        fs::write(root.join("in/a.txt"), b"version 1").unwrap();
        fs::write(dir.path().join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        let d = FileDigests::open(&dir.path().join("state"), dir.path());
        let listed = [entry("/in/a.txt"), entry("/link"), entry("/up/secret")];
        let got = d.refresh("alice", "pvc", &root, &listed);
        assert_eq!(got, [("/in/a.txt".to_string(), Digest::of(b"version 1"))]);
        assert_eq!(
            d.lookup("alice", "pvc", &root, "in/a.txt"),
            Some(Digest::of(b"version 1"))
        );
        assert_eq!(d.lookup("alice", "pvc", &root, "up/secret"), None);

        // Kept across a restart of the agent.
        let d = FileDigests::open(&dir.path().join("state"), dir.path());
        assert_eq!(
            d.lookup("alice", "pvc", &root, "/in/a.txt"),
            Some(Digest::of(b"version 1"))
        );
        // Changed: no longer trusted until hashed again.
        fs::write(root.join("in/a.txt"), b"version 2, longer").unwrap();
        assert_eq!(d.lookup("alice", "pvc", &root, "in/a.txt"), None);
        let got = d.refresh("alice", "pvc", &root, &listed);
        assert_eq!(
            got,
            [("/in/a.txt".to_string(), Digest::of(b"version 2, longer"))]
        );
        // Changed again within the same clock tick, keeping its size: hashed again all the
        // same, the last hash being racy.
        fs::write(root.join("in/a.txt"), b"version 3, longer").unwrap();
        let got = d.refresh("alice", "pvc", &root, &listed);
        assert_eq!(
            got,
            [("/in/a.txt".to_string(), Digest::of(b"version 3, longer"))]
        );
        // Gone: forgotten.
        fs::remove_file(root.join("in/a.txt")).unwrap();
        assert!(d.refresh("alice", "pvc", &root, &listed).is_empty());
        assert_eq!(d.lookup("alice", "pvc", &root, "in/a.txt"), None);
    }
}
