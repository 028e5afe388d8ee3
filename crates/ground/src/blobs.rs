//! The content-addressed blob store: every ground file version and every object received from a
//! system is a file named by its sha256 under `blobs/sha256/<aa>/<hex>`.
//!
//! Blobs are written to a temporary file first, hashed as they are written, synced, and then
//! renamed into place, so a blob that exists is always complete and matches its name. The folders
//! the renames changed are synced ([`DirSync`]) before a database row may refer to the blob, so
//! a row that survives a crash never names a blob that did not. The same
//! folder is every system link's object directory ([`BlobStore::layout`]): the link reads the
//! objects it sends from it and commits the objects it receives, verified, into it.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wire::Digest;

/// The blob store.
#[derive(Debug, Clone)]
pub(crate) struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

/// A file written to a temporary place, with its digest and size.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
}

/// Writing stopped because the content went over its limit.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("more than {0} bytes")]
    TooLarge(u64),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl BlobStore {
    /// Opens the store under `data_dir`, creating its folders and clearing leftover temporary
    /// files.
    pub(crate) async fn open(data_dir: &Path) -> io::Result<BlobStore> {
        let root = data_dir.join("blobs").join("sha256");
        let tmp = data_dir.join("tmp");
        tokio::fs::create_dir_all(&root).await?;
        if tokio::fs::try_exists(&tmp).await? {
            tokio::fs::remove_dir_all(&tmp).await?;
        }
        tokio::fs::create_dir_all(&tmp).await?;
        // `blobs/sha256` may have just been created: make its entries durable once, here.
        let mut dirs = DirSync::default();
        dirs.add(data_dir);
        dirs.add(&data_dir.join("blobs"));
        dirs.sync().await?;
        Ok(BlobStore { root, tmp })
    }

    /// Where the blob lives (whether or not it exists).
    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// The store as a link's object directory: the same `<aa>/<hex>` paths as [`BlobStore::path`].
    pub(crate) fn layout(&self) -> ::link::ObjectLayout {
        ::link::ObjectLayout {
            root: self.root.clone(),
            fanout: true,
        }
    }

    /// The blob's size, if the store has it.
    pub(crate) async fn size(&self, digest: &Digest) -> Option<u64> {
        tokio::fs::metadata(self.path(digest))
            .await
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// A fresh folder for staging, removed when the returned guard drops.
    pub(crate) async fn staging_dir(&self) -> io::Result<TempDir> {
        let path = self.tmp.join(uuid::Uuid::new_v4().simple().to_string());
        tokio::fs::create_dir(&path).await?;
        Ok(TempDir { path })
    }

    /// Moves a complete, synced file whose content has `digest` into the store, durably: when
    /// this returns, the blob survives a crash.
    #[cfg(test)]
    pub(crate) async fn commit(&self, file: &Path, digest: &Digest) -> io::Result<()> {
        let mut dirs = DirSync::default();
        self.commit_deferred(file, digest, &mut dirs).await?;
        dirs.sync().await
    }

    /// Moves a complete, synced file whose content has `digest` into the store, adding the
    /// folders whose entries changed to `dirs`. The blob is durable only once `dirs` is synced,
    /// which must happen before anything that refers to it is committed; a batch of commits
    /// shares one [`DirSync`], so each folder is synced once.
    pub(crate) async fn commit_deferred(
        &self,
        file: &Path,
        digest: &Digest,
        dirs: &mut DirSync,
    ) -> io::Result<()> {
        let target = self.path(digest);
        let parent = target.parent().unwrap_or(&self.root).to_path_buf();
        // The fan-out folder may be new (here or in a concurrent commit whose sync has not run
        // yet): its entry in the root must be durable too. One sync per batch.
        dirs.add(&self.root);
        if tokio::fs::try_exists(&target).await? {
            // Already stored, perhaps by a concurrent commit that has not synced its folder
            // yet: sync it as well before referring to it.
            tokio::fs::remove_file(file).await?;
            dirs.add(&parent);
            return Ok(());
        }
        tokio::fs::create_dir_all(&parent).await?;
        // The content was synced by its writer (`write_sync`, `AsyncWriter::finish`) before
        // the rename publishes it under its digest.
        tokio::fs::rename(file, &target).await?;
        dirs.add(&parent);
        Ok(())
    }

    /// Stores `bytes` (small contents and tests).
    #[cfg(test)]
    pub(crate) async fn put(&self, bytes: &[u8]) -> io::Result<Digest> {
        let dir = self.staging_dir().await?;
        let path = dir.path().join("blob");
        let data = bytes.to_vec();
        let p = path.clone();
        let written =
            tokio::task::spawn_blocking(move || write_sync(&p, &mut data.as_slice(), u64::MAX))
                .await
                .map_err(io::Error::other)?
                .map_err(|e| match e {
                    WriteError::Io(e) => e,
                    other => io::Error::other(other),
                })?;
        self.commit(&path, &written.digest).await?;
        Ok(written.digest)
    }
}

/// Folders to sync (`fsync` on the directory) so that renames into them survive a crash.
#[derive(Debug, Default)]
pub(crate) struct DirSync {
    dirs: BTreeSet<PathBuf>,
}

impl DirSync {
    /// Adds a folder; each distinct folder is synced once.
    pub(crate) fn add(&mut self, dir: &Path) {
        if !self.dirs.contains(dir) {
            self.dirs.insert(dir.to_path_buf());
        }
    }

    /// The folders to sync, in order.
    #[cfg(test)]
    pub(crate) fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(PathBuf::as_path)
    }

    /// Syncs every folder added. Blocking work runs off the async runtime.
    pub(crate) async fn sync(self) -> io::Result<()> {
        if self.dirs.is_empty() {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || {
            for dir in &self.dirs {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// Copies `reader` into a new file at `path`, hashing as it goes, and syncs it. Fails once more
/// than `limit` bytes have been read. Blocking.
pub(crate) fn write_sync(
    path: &Path,
    reader: &mut dyn Read,
    limit: u64,
) -> Result<Written, WriteError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        size += n as u64;
        if size > limit {
            return Err(WriteError::TooLarge(limit));
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
    }
    file.sync_all()?;
    Ok(Written {
        digest: Digest(hasher.finalize().into()),
        size,
    })
}

/// An async file being written while hashed (multipart uploads).
pub(crate) struct AsyncWriter {
    file: tokio::fs::File,
    hasher: Sha256,
    size: u64,
    limit: u64,
}

impl AsyncWriter {
    pub(crate) async fn create(path: &Path, limit: u64) -> io::Result<AsyncWriter> {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .await?;
        Ok(AsyncWriter {
            file,
            hasher: Sha256::new(),
            size: 0,
            limit,
        })
    }

    pub(crate) async fn write(&mut self, data: &[u8]) -> Result<(), WriteError> {
        use tokio::io::AsyncWriteExt;
        self.size += data.len() as u64;
        if self.size > self.limit {
            return Err(WriteError::TooLarge(self.limit));
        }
        self.hasher.update(data);
        self.file.write_all(data).await?;
        Ok(())
    }

    pub(crate) async fn finish(mut self) -> io::Result<Written> {
        use tokio::io::AsyncWriteExt;
        self.file.flush().await?;
        self.file.sync_all().await?;
        Ok(Written {
            digest: Digest(self.hasher.finalize().into()),
            size: self.size,
        })
    }
}

/// A temporary folder, removed with everything in it when dropped.
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove a staging folder");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_by_digest_and_cleans_staging() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).await.unwrap();
        let d = store.put(b"hello").await.unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        let path = store.path(&d);
        assert!(path.ends_with(format!("blobs/sha256/2c/{}", d.hex())));
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        assert_eq!(store.size(&d).await, Some(5));
        // The link commits received objects exactly where the store looks for them.
        assert_eq!(store.layout().path(&d), path);
        // Storing the same content again is a no-op, and staging folders disappear.
        store.put(b"hello").await.unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn a_batch_of_commits_syncs_each_touched_folder_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).await.unwrap();
        let staging = store.staging_dir().await.unwrap();
        let contents: Vec<Vec<u8>> = (0..300u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let mut digests = Vec::new();
        let mut dirs = DirSync::default();
        for (i, c) in contents.iter().enumerate() {
            let tmp = staging.path().join(i.to_string());
            let w = write_sync(&tmp, &mut c.as_slice(), u64::MAX).unwrap();
            store
                .commit_deferred(&tmp, &w.digest, &mut dirs)
                .await
                .unwrap();
            digests.push(w.digest);
        }
        // The same content again (already stored): its folder is still synced before use.
        let again = staging.path().join("again");
        let w = write_sync(&again, &mut contents[0].as_slice(), u64::MAX).unwrap();
        store
            .commit_deferred(&again, &w.digest, &mut dirs)
            .await
            .unwrap();
        assert!(!again.exists());

        let want: BTreeSet<PathBuf> = digests
            .iter()
            .map(|d| store.path(d).parent().unwrap().to_path_buf())
            .chain([store.root.clone()])
            .collect();
        let got: Vec<&Path> = dirs.dirs().collect();
        // Every blob's folder and the root (for new fan-out folders), each exactly once.
        assert_eq!(got.len(), want.len());
        assert!(got.iter().all(|d| want.contains(*d)));
        assert!(
            got.len() < digests.len(),
            "folders are shared, not synced per file"
        );
        dirs.sync().await.unwrap();
        for (d, c) in digests.iter().zip(&contents) {
            assert_eq!(&std::fs::read(store.path(d)).unwrap(), c);
        }
    }

    #[tokio::test]
    async fn a_folder_that_cannot_be_synced_is_an_error() {
        // The upload handler syncs before its transaction commits: a failure must surface, so
        // no row is committed for a blob that might not survive a crash.
        let dir = tempfile::tempdir().unwrap();
        let mut dirs = DirSync::default();
        dirs.add(&dir.path().join("missing"));
        assert!(dirs.sync().await.is_err());
        DirSync::default().sync().await.unwrap();
    }

    #[test]
    fn write_sync_enforces_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let r = write_sync(&dir.path().join("x"), &mut &b"12345"[..], 4);
        assert!(matches!(r, Err(WriteError::TooLarge(4))));
        let w = write_sync(&dir.path().join("y"), &mut &b"1234"[..], 4).unwrap();
        assert_eq!((w.digest, w.size), (Digest::of(b"1234"), 4));
    }
}
