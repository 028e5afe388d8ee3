//! The content-addressed blob store: every ground file version and every object received from a
//! system is a file named by its sha256 under `blobs/sha256/<aa>/<hex>`.
//!
//! Blobs are written to a temporary file first, hashed as they are written, synced, and then
//! renamed into place, so a blob that exists is always complete and matches its name. The folders
//! the renames changed are synced ([`DirSync`]) before a database row may refer to the blob, so
//! a row that survives a crash never names a blob that did not. The same
//! folder is every system link's object directory ([`BlobStore::layout`]): the link reads the
//! objects it sends from it and commits the objects it receives, verified, into it.
//!
//! With an S3-compatible store ([`s3`], `--blob-url`), that folder is a cache of the store, which
//! every replica shares: a new blob is uploaded before anything refers to it ([`BlobStore::push`]:
//! an upload before its `201`, a downlinked object when it lands), and a blob missing here is
//! fetched, its digest checked, when it is needed ([`BlobStore::size`], [`BlobStore::ensure`]).

mod s3;

use std::io;
use std::path::{Path, PathBuf};

pub(crate) use cas::{CopyError as WriteError, DirSync, Hashed as Written};
use cas::{HashingWriter, ObjectLayout};
use wire::Digest;

pub(crate) use self::s3::RemoteError;
use crate::config::S3Settings;

/// The largest blob fetched from the store: bounds what a store that returns endless bytes costs.
const FETCH_LIMIT: u64 = 1 << 40;

/// The blob store.
#[derive(Debug, Clone)]
pub(crate) struct BlobStore {
    layout: ObjectLayout,
    tmp: PathBuf,
    /// The shared store of which `layout` is a cache, if any.
    remote: Option<s3::Remote>,
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
            Ok(BlobStore {
                layout,
                tmp,
                remote: None,
            })
        })
        .await
    }

    /// The same store as a cache of the S3-compatible store `settings` names, once it answers.
    pub(crate) async fn with_remote(self, settings: &S3Settings) -> Result<BlobStore, RemoteError> {
        let remote = s3::Remote::new(settings)?;
        remote.check().await?;
        Ok(BlobStore {
            remote: Some(remote),
            ..self
        })
    }

    /// Makes the blob `digest` local, fetching it from the shared store if there is one.
    /// `Ok(false)`: neither here nor there. The digest of what the store returns is checked.
    pub(crate) async fn ensure(&self, digest: &Digest) -> Result<bool, RemoteError> {
        if self.local_size(digest).await.is_some() {
            return Ok(true);
        }
        let Some(remote) = &self.remote else {
            return Ok(false);
        };
        let staging = self
            .staging_dir()
            .await
            .map_err(|source| RemoteError::Local {
                what: "making a staging folder".into(),
                source,
            })?;
        let file = staging.path().join("fetched");
        if !remote.download(digest, &file, FETCH_LIMIT).await? {
            return Ok(false);
        }
        let mut dirs = DirSync::default();
        let published = async {
            self.commit_deferred(&file, digest, &mut dirs).await?;
            sync_dirs(dirs).await
        };
        published.await.map_err(|source| RemoteError::Local {
            what: format!(
                "storing {} fetched from {}",
                digest,
                remote.location_of(digest)
            ),
            source,
        })?;
        tracing::debug!(%digest, "blob fetched from the shared store");
        Ok(true)
    }

    /// Uploads each of `digests` (all local) to the shared store, if there is one, unless it holds
    /// them already. Whatever refers to a new blob waits for this, so that every replica finds it.
    pub(crate) async fn push(&self, digests: &[Digest]) -> Result<(), RemoteError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        for digest in digests {
            let path = self.path(digest);
            let Some(size) = self.local_size(digest).await else {
                return Err(RemoteError::Local {
                    what: format!("uploading {digest}"),
                    source: io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{} is missing", path.display()),
                    ),
                });
            };
            remote.upload(&path, digest, size).await?;
        }
        Ok(())
    }

    /// Opens the blob `digest` for reading, fetching it from the shared store first if it is only
    /// there.
    pub(crate) async fn open_file(&self, digest: &Digest) -> io::Result<tokio::fs::File> {
        if !self.ensure(digest).await.map_err(io::Error::other)? {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("blob {digest} is in no store"),
            ));
        }
        tokio::fs::File::open(self.path(digest)).await
    }

    /// Whether blobs are shared through an S3-compatible store.
    pub(crate) fn is_shared(&self) -> bool {
        self.remote.is_some()
    }

    /// Where the blob lives (whether or not it exists).
    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.layout.path(digest)
    }

    /// The store as a link's object directory: the same paths as [`BlobStore::path`].
    pub(crate) fn layout(&self) -> ObjectLayout {
        self.layout.clone()
    }

    /// The blob's size, if the store has it: fetched from the shared store first if it is only
    /// there. A failure to fetch it is logged and taken for "not here" (where that only costs
    /// an optimisation; see [`BlobStore::fetched_size`] otherwise).
    pub(crate) async fn size(&self, digest: &Digest) -> Option<u64> {
        match self.fetched_size(digest).await {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(%digest, error = %e, "could not fetch a blob from the shared store");
                None
            }
        }
    }

    /// The blob's size, `None` when no store has it, fetched from the shared store first if it
    /// is only there; a failure to reach that store is an error, not "not here", so that what
    /// asked for the blob (a system's `Need`, a `Want`) is tried again rather than dropped.
    pub(crate) async fn fetched_size(&self, digest: &Digest) -> Result<Option<u64>, RemoteError> {
        Ok(if self.ensure(digest).await? {
            self.local_size(digest).await
        } else {
            None
        })
    }

    /// The blob's size, if it is in the local folder.
    async fn local_size(&self, digest: &Digest) -> Option<u64> {
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

/// The S3 side against a real S3-compatible server (`ORBITDOCK_TEST_S3_URL`, see .ci/s3.sh):
/// passed over without one, failed without one under `ORBITDOCK_REQUIRE_S3=1`.
#[cfg(test)]
mod shared_tests {
    use super::*;

    fn settings(bucket_and_prefix: &str) -> Option<S3Settings> {
        let endpoint = match std::env::var("ORBITDOCK_TEST_S3_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert!(
                    std::env::var("ORBITDOCK_REQUIRE_S3").as_deref() != Ok("1"),
                    "ORBITDOCK_REQUIRE_S3=1 but ORBITDOCK_TEST_S3_URL is not set (.ci/s3.sh)"
                );
                return None;
            }
        };
        Some(S3Settings {
            url: format!("s3://{bucket_and_prefix}"),
            endpoint: Some(endpoint),
            region: Some("us-east-1".into()),
            access_key_id: Some("orbitdock-test".into()),
            secret_access_key: Some("orbitdock-test-secret".into()),
            session_token: None,
        })
    }

    fn bucket() -> String {
        std::env::var("ORBITDOCK_TEST_S3_BUCKET").unwrap_or_else(|_| "orbitdock-test".into())
    }

    /// Two replicas' stores (separate folders) sharing one prefix of the test bucket.
    async fn pair() -> Option<(tempfile::TempDir, BlobStore, tempfile::TempDir, BlobStore)> {
        let prefix = format!("unit/{}", uuid::Uuid::new_v4().simple());
        let s = settings(&format!("{}/{prefix}", bucket()))?;
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = BlobStore::open(da.path()).await.unwrap();
        let a = a.with_remote(&s).await.unwrap();
        let b = BlobStore::open(db.path()).await.unwrap();
        let b = b.with_remote(&s).await.unwrap();
        Some((da, a, db, b))
    }

    #[tokio::test]
    async fn a_blob_pushed_by_one_replica_is_fetched_by_another() {
        let Some((_da, a, _db, b)) = pair().await else {
            return;
        };
        // Small (one request) and larger than a part (a multipart upload).
        let small = b"hello, shared store".to_vec();
        let large: Vec<u8> = (0..(9u32 << 20) + 3).map(|i| (i % 251) as u8).collect();
        for content in [small, large] {
            let d = a.put(&content).await.unwrap();
            assert!(a.is_shared());
            assert_eq!(b.size(&d).await, None, "not pushed yet");
            a.push(&[d]).await.unwrap();
            // Pushing again finds it there and sends nothing.
            a.push(&[d]).await.unwrap();
            assert!(!b.path(&d).exists(), "cold cache");
            assert_eq!(b.size(&d).await, Some(content.len() as u64));
            assert_eq!(std::fs::read(b.path(&d)).unwrap(), content);
            // Fetched: served from the folder from now on.
            assert!(b.ensure(&d).await.unwrap());
        }
        assert_eq!(
            std::fs::read_dir(_db.path().join("tmp")).unwrap().count(),
            0,
            "staging folders are removed"
        );
    }

    #[tokio::test]
    async fn missing_and_wrong_objects_are_told_apart() {
        let Some((_da, a, _db, b)) = pair().await else {
            return;
        };
        let absent = Digest::of(b"never stored");
        assert!(!b.ensure(&absent).await.unwrap());
        let e = b.open_file(&absent).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);

        // The store returns other bytes than the key names: refused, nothing lands.
        let claimed = Digest::of(b"the real content");
        let remote = a.remote.as_ref().unwrap();
        remote.put_raw(&claimed, b"tampered".to_vec()).await;
        let e = b.ensure(&claimed).await.unwrap_err();
        assert!(matches!(e, RemoteError::Mismatch { .. }), "{e}");
        let message = e.to_string();
        assert!(message.contains(&claimed.hex()), "{message}");
        assert!(
            message.contains(&Digest::of(b"tampered").to_string()),
            "{message}"
        );
        assert!(!b.path(&claimed).exists());
        assert_eq!(b.size(&claimed).await, None);

        // An object that is not here cannot be pushed.
        let e = a.push(&[absent]).await.unwrap_err();
        assert!(e.to_string().contains(&absent.to_string()), "{e}");
    }

    #[tokio::test]
    async fn a_store_that_does_not_answer_fails_the_start_clearly() {
        let Some(good) = settings(&format!("{}/x", bucket())) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).await.unwrap();
        // A bucket the server does not have.
        let s = S3Settings {
            url: "s3://orbitdock-no-such-bucket/p".into(),
            ..good.clone()
        };
        let e = store.clone().with_remote(&s).await.unwrap_err().to_string();
        assert!(e.contains("s3://orbitdock-no-such-bucket/p/sha256"), "{e}");
        assert!(e.contains(good.endpoint.as_deref().unwrap()), "{e}");
        assert!(e.contains("404") || e.contains("NoSuchBucket"), "{e}");
        // Nobody listening.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let s = S3Settings {
            endpoint: Some(url.clone()),
            ..good.clone()
        };
        let e = store.clone().with_remote(&s).await.unwrap_err().to_string();
        assert!(e.contains(&url), "{e}");
        // Not a URL of a bucket.
        let s = S3Settings {
            url: "https://example/x".into(),
            ..good
        };
        let e = store.with_remote(&s).await.unwrap_err().to_string();
        assert!(e.contains("expected s3://BUCKET/PREFIX"), "{e}");
    }
}
