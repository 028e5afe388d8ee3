//! The content-addressed blob store: every ground file version and every object received from a
//! system is a file named by its sha256 under `blobs/sha256/<aa>/<hex>`.
//!
//! Blobs are written to a temporary file first, hashed as they are written, synced, and then
//! renamed into place, so a blob that exists is always complete and matches its name. The folders
//! the renames changed are synced ([`DirSync`]) before a database row may refer to the blob, so
//! a row that survives a crash never names a blob that did not. The same
//! folder is every system link's object directory ([`BlobStore::layout`]): the link reads the
//! objects it sends from it and commits the objects it receives, verified, into it.

use std::io;
use std::path::{Path, PathBuf};

pub(crate) use cas::{CopyError as WriteError, DirSync, Hashed as Written};
use cas::{HashingWriter, ObjectLayout};
use wire::Digest;

/// The blob store.
#[derive(Debug, Clone)]
pub(crate) struct BlobStore {
    layout: ObjectLayout,
    tmp: PathBuf,
}

impl BlobStore {
    /// Opens the store under `data_dir`, creating its folders and clearing leftover temporary
    /// files.
    pub(crate) async fn open(data_dir: &Path) -> io::Result<BlobStore> {
        let data_dir = data_dir.to_path_buf();
        blocking(move || {
            let layout = ObjectLayout::open(data_dir.join("blobs").join("sha256"))?;
            let tmp = data_dir.join("tmp");
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp)?;
            }
            std::fs::create_dir_all(&tmp)?;
            // `blobs/sha256` may have just been created: make its entries durable once, here.
            let mut dirs = DirSync::default();
            dirs.add(&data_dir);
            dirs.add(&data_dir.join("blobs"));
            dirs.sync()?;
            Ok(BlobStore { layout, tmp })
        })
        .await
    }

    /// Where the blob lives (whether or not it exists).
    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.layout.path(digest)
    }

    /// The store as a link's object directory: the same paths as [`BlobStore::path`].
    pub(crate) fn layout(&self) -> ObjectLayout {
        self.layout.clone()
    }

    /// The blob's size, if the store has it.
    pub(crate) async fn size(&self, digest: &Digest) -> Option<u64> {
        let layout = self.layout.clone();
        let digest = *digest;
        blocking(move || Ok(layout.size(&digest)))
            .await
            .ok()
            .flatten()
    }

    /// A fresh folder for staging, removed when the returned guard drops.
    pub(crate) async fn staging_dir(&self) -> io::Result<TempDir> {
        let path = self.tmp.join(uuid::Uuid::new_v4().simple().to_string());
        tokio::fs::create_dir(&path).await?;
        Ok(TempDir { path })
    }

    /// Moves a complete, synced file whose content has `digest` into the store, adding the
    /// folders whose entries changed to `dirs` ([`cas::ObjectLayout::publish`]). The blob is
    /// durable only once `dirs` is synced ([`sync_dirs`]), which must happen before anything
    /// that refers to it is committed; a batch of commits shares one [`DirSync`], so each
    /// folder is synced once.
    pub(crate) async fn commit_deferred(
        &self,
        file: &Path,
        digest: &Digest,
        dirs: &mut DirSync,
    ) -> io::Result<()> {
        let layout = self.layout.clone();
        let (file, digest) = (file.to_path_buf(), *digest);
        // A copy goes to the blocking thread: if it fails to come back, `dirs` still holds every
        // folder of the batch so far.
        let mut batch = dirs.clone();
        let (result, batch) = tokio::task::spawn_blocking(move || {
            let r = layout.publish(&file, &digest, &mut batch);
            (r, batch)
        })
        .await
        .map_err(io::Error::other)?;
        *dirs = batch;
        result
    }

    /// Stores `bytes` (small contents and tests).
    #[cfg(test)]
    pub(crate) async fn put(&self, bytes: &[u8]) -> io::Result<Digest> {
        let layout = self.layout.clone();
        let data = bytes.to_vec();
        blocking(move || layout.put(&data)).await
    }
}

/// Syncs every folder of `dirs`, off the async runtime.
pub(crate) async fn sync_dirs(dirs: DirSync) -> io::Result<()> {
    if dirs.is_empty() {
        return Ok(());
    }
    blocking(move || dirs.sync()).await
}

/// Copies `reader` into a new file at `path`, hashing as it goes, and syncs it. Fails once more
/// than `limit` bytes have been read. Blocking.
pub(crate) fn write_sync(
    path: &Path,
    reader: &mut dyn std::io::Read,
    limit: u64,
) -> Result<Written, WriteError> {
    cas::write_new(path, reader, limit)
}

/// An async file being written while hashed (multipart uploads), with the same hasher and
/// limit as every other object writer ([`cas::HashingWriter`]).
pub(crate) struct AsyncWriter {
    file: tokio::fs::File,
    hasher: HashingWriter<io::Sink>,
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
            hasher: HashingWriter::new(io::sink(), limit),
        })
    }

    pub(crate) async fn write(&mut self, data: &[u8]) -> Result<(), WriteError> {
        use tokio::io::AsyncWriteExt;
        self.hasher.push(data)?;
        self.file.write_all(data).await?;
        Ok(())
    }

    pub(crate) async fn finish(mut self) -> io::Result<Written> {
        use tokio::io::AsyncWriteExt;
        self.file.flush().await?;
        self.file.sync_all().await?;
        Ok(self.hasher.finish().0)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
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
    use std::collections::BTreeSet;

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
            .chain([store.layout.root().to_path_buf()])
            .collect();
        let got: Vec<&Path> = dirs.dirs().collect();
        // Every blob's folder and the root (for new fan-out folders), each exactly once.
        assert_eq!(got.len(), want.len());
        assert!(got.iter().all(|d| want.contains(*d)));
        assert!(
            got.len() < digests.len(),
            "folders are shared, not synced per file"
        );
        sync_dirs(dirs).await.unwrap();
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
        assert!(sync_dirs(dirs).await.is_err());
        sync_dirs(DirSync::default()).await.unwrap();
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
