//! Uploads into a namespace: a tar stream or multipart `file` parts ([`store`]); the EM API's
//! uplink stages its own form ([`stage_form`] by its [`FormRules`]) and [`commit`]s it the same
//! way.
//!
//! Every entry is validated and its content written to a staging folder while it is hashed; the
//! staged files are committed (blobs, then one transaction of rows) only when the whole upload
//! has passed. Anything rejected leaves nothing behind: the staging folder is removed when
//! [`Staged`] drops. Bodies are streamed, never held in memory.

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use wire::Digest;
use wire::names::{NamespaceName, NamespacePath, VolumePath};

use crate::blobs::{self, AsyncWriter, BlobStore, TempDir, WriteError};
use crate::config::limits;
use crate::error::ApiError;
use crate::{Ground, auth, db, time};

/// A file an upload stored: the new version of its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredFile {
    /// The namespace path (`/app/main.rs`).
    pub(crate) path: String,
    pub(crate) version: i64,
    pub(crate) size: u64,
    pub(crate) digest: Digest,
    /// Permission bits (`0o755` for an executable).
    pub(crate) mode: u32,
    /// Milliseconds since the Unix epoch.
    pub(crate) created_at: i64,
}

/// Stores the upload `req` carries (a tar body, or multipart `file` parts, by its content type)
/// into `user`'s namespace `ns` under folder `to` (`/` when `None`), creating the namespace if it
/// does not exist. Another tenant's namespace is refused before a byte of the body is read.
/// Either every file becomes a new version or none does.
pub(crate) async fn store(
    g: &Ground,
    user: &str,
    ns: &str,
    to: Option<&str>,
    req: Request,
) -> Result<Vec<StoredFile>, ApiError> {
    NamespaceName::new(ns).map_err(|e| ApiError::bad(e.to_string()))?;
    // Refuse another tenant's namespace before reading a byte of the body.
    if let Some(owner) = db::namespace_owner(g.db(), ns).await?
        && owner != user
    {
        return Err(ApiError::forbidden(format!(
            "namespace '{ns}' belongs to another tenant"
        )));
    }

    let prefix = NamespacePath::parse(to.unwrap_or("/"))
        .map_err(|e| ApiError::bad(format!("'to' is not a valid folder: {}", e.reason())))?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let staged = if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(req, g).await?;
        stage_form(g.blobs(), &prefix, &mut multipart, NAMESPACE_FORM)
            .await?
            .staged
    } else if [
        "application/x-tar",
        "application/tar",
        "application/octet-stream",
    ]
    .iter()
    .any(|t| content_type.starts_with(t))
    {
        stage_tar(g.blobs(), &prefix, req.into_body()).await?
    } else {
        return Err(ApiError::bad(
            "send a tar (Content-Type: application/x-tar) or multipart/form-data with 'file' parts",
        ));
    };
    commit(g, user, ns, &staged).await
}

/// Commits staged files into `user`'s namespace `ns` (created if it does not exist): the blobs,
/// then one transaction of new versions. Either every file becomes a new version or none does.
pub(crate) async fn commit(
    g: &Ground,
    user: &str,
    ns: &str,
    staged: &Staged,
) -> Result<Vec<StoredFile>, ApiError> {
    // The blobs must be durable before the rows naming them are: sync every folder the renames
    // touched (once each, however many files share it) before the transaction commits.
    let mut dirs = blobs::DirSync::default();
    for f in &staged.files {
        g.blobs()
            .commit_deferred(&f.tmp, &f.digest, &mut dirs)
            .await?;
    }
    blobs::sync_dirs(dirs).await?;
    // ... and in the shared store, if there is one, so that every replica finds them.
    let digests: Vec<wire::Digest> = staged.files.iter().map(|f| f.digest).collect();
    g.blobs()
        .push(&digests)
        .await
        .map_err(|e| ApiError::internal(format!("storing the upload in {ns}: {e}")))?;
    let now = time::now_ms();
    let mut tx = db::write_tx(g.db()).await?;
    auth::claim_namespace(&mut tx, user, ns, now).await?;
    let mut out = Vec::with_capacity(staged.files.len());
    for f in &staged.files {
        let size = i64::try_from(f.size).unwrap_or(i64::MAX);
        let version = db::add_file_version(
            &mut tx,
            ns,
            &f.path,
            &f.digest.to_string(),
            size,
            i64::from(f.mode),
            now,
        )
        .await?;
        out.push(StoredFile {
            path: f.path.clone(),
            version,
            size: f.size,
            digest: f.digest,
            mode: f.mode,
            created_at: now,
        });
    }
    tx.commit().await?;
    tracing::info!(namespace = %ns, files = out.len(), "upload stored");
    Ok(out)
}

/// Mode given to files uploaded without one (multipart).
const DEFAULT_MODE: u32 = 0o644;

/// The most bytes of one text field of a form.
const MAX_TEXT_FIELD: usize = 64 << 10;

/// How a multipart form carries its files, and what else it may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FormRules {
    /// The names of the parts that carry files.
    pub(crate) file_fields: &'static [&'static str],
    /// Whether parts without a filename (text fields) are returned, rather than refused.
    pub(crate) text_fields: bool,
    /// Whether a file keeps only the last component of its name (as Django keeps it), rather
    /// than its name as a path below the folder.
    pub(crate) base_names: bool,
    /// Bytes of file content allowed in all.
    pub(crate) max_bytes: u64,
}

/// The namespace upload's form: `file` parts named by their path below the folder.
const NAMESPACE_FORM: FormRules = FormRules {
    file_fields: &["file"],
    text_fields: false,
    base_names: false,
    max_bytes: limits::UPLOAD_BYTES,
};

/// A staged form: its files and its text fields, in order.
#[derive(Debug)]
pub(crate) struct Form {
    pub(crate) staged: Staged,
    pub(crate) fields: Vec<(String, String)>,
}

/// Files validated and written to a staging folder, not yet committed.
#[derive(Debug)]
pub(crate) struct Staged {
    /// Removed (with any file not yet committed) on drop.
    _dir: TempDir,
    pub(crate) files: Vec<StagedFile>,
}

/// One staged file.
#[derive(Debug)]
pub(crate) struct StagedFile {
    /// The namespace path it will have (`/app/main.rs`).
    pub(crate) path: String,
    /// Where its content waits.
    pub(crate) tmp: PathBuf,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    /// Permission bits (`0o755` for an executable).
    pub(crate) mode: u32,
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UploadError {
    #[error("entry '{entry}' rejected: {reason}; nothing of this upload was stored")]
    Entry { entry: String, reason: String },
    #[error(
        "entry '{entry}' rejected: the upload exceeds {limit} bytes; nothing of this upload was stored"
    )]
    TooLarge { entry: String, limit: u64 },
    #[error("the request body exceeds {0} bytes; nothing of this upload was stored")]
    BodyTooLarge(usize),
    #[error("entry '{0}' rejected: an upload holds at most {max} entries; nothing of this upload was stored", max = limits::UPLOAD_ENTRIES)]
    TooMany(String),
    #[error("{0}; nothing of this upload was stored")]
    Malformed(String),
    #[error("the upload holds no files")]
    Empty,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> ApiError {
        match e {
            UploadError::Io(e) => ApiError::from(e),
            UploadError::TooLarge { .. } | UploadError::BodyTooLarge(_) => {
                ApiError::TooLarge(e.to_string())
            }
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

fn entry_error(name: &str, reason: impl Into<String>) -> UploadError {
    UploadError::Entry {
        entry: display_name(name.as_bytes()),
        reason: reason.into(),
    }
}

/// A printable, bounded rendering of an entry name.
fn display_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(200)
        .collect();
    s
}

/// The namespace path of an entry named `raw` in an upload to folder `prefix`; `None` for the
/// folder itself (`./`).
pub(crate) fn entry_path(prefix: &str, raw: &[u8]) -> Result<Option<String>, String> {
    let s = std::str::from_utf8(raw).map_err(|_| "the name is not UTF-8".to_string())?;
    if s.starts_with('/') {
        return Err("absolute paths are not allowed".into());
    }
    // The rules of `wire::names`, the same the flight agent places files by.
    let rel = VolumePath::parse(s).map_err(|e| e.reason().to_string())?;
    if rel.is_root() {
        return Ok(None);
    }
    let prefix = NamespacePath::parse(prefix).map_err(|e| e.reason().to_string())?;
    prefix
        .join(&rel)
        .map(|p| Some(p.to_string()))
        .ok_or_else(|| format!("the path is longer than {} bytes", limits::PATH_BYTES))
}

/// Bounds and de-duplicates entries across one upload.
struct Tally {
    entries: usize,
    bytes: u64,
    max_bytes: u64,
    seen: HashSet<String>,
}

impl Tally {
    fn new(max_bytes: u64) -> Tally {
        Tally {
            entries: 0,
            bytes: 0,
            max_bytes,
            seen: HashSet::new(),
        }
    }

    fn entry(&mut self, name: &str) -> Result<(), UploadError> {
        self.entries += 1;
        if self.entries > limits::UPLOAD_ENTRIES {
            return Err(UploadError::TooMany(display_name(name.as_bytes())));
        }
        Ok(())
    }

    fn file(&mut self, name: &str, path: &str) -> Result<(), UploadError> {
        if !self.seen.insert(path.to_string()) {
            return Err(entry_error(name, "the path appears twice in the upload"));
        }
        Ok(())
    }

    fn remaining(&self) -> u64 {
        self.max_bytes.saturating_sub(self.bytes)
    }
}

/// Stages a tar body. The archive is read on a blocking thread fed by the body stream.
async fn stage_tar(store: &BlobStore, prefix: &str, body: Body) -> Result<Staged, UploadError> {
    let dir = store.staging_dir().await?;
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let (dir_path, prefix_owned) = (dir.path().to_path_buf(), prefix.to_string());
    let reader = tokio::task::spawn_blocking(move || {
        read_tar(
            ChannelReader {
                rx,
                current: Bytes::new(),
            },
            &dir_path,
            &prefix_owned,
        )
    });
    let mut stream = body.into_data_stream();
    let mut raw = 0usize;
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                raw += chunk.len();
                if raw > limits::UPLOAD_BODY {
                    failure = Some(UploadError::BodyTooLarge(limits::UPLOAD_BODY));
                    break;
                }
                if tx.send(chunk).await.is_err() {
                    break; // The reader has stopped; its result says why.
                }
            }
            Err(e) => {
                failure = Some(UploadError::Malformed(format!(
                    "could not read the request body: {e}"
                )));
                break;
            }
        }
    }
    drop(tx);
    let result = reader
        .await
        .map_err(|e| io::Error::other(format!("tar reader failed: {e}")))?;
    // A body that broke off must not pass for a shorter archive.
    if let Some(f) = failure {
        return Err(f);
    }
    let files = result?;
    if files.is_empty() {
        return Err(UploadError::Empty);
    }
    Ok(Staged { _dir: dir, files })
}

/// Feeds a blocking reader from the body stream.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

fn read_tar(reader: impl Read, dir: &Path, prefix: &str) -> Result<Vec<StagedFile>, UploadError> {
    use tar::EntryType as T;
    let malformed = |e: io::Error| UploadError::Malformed(format!("not a valid tar archive: {e}"));
    let mut archive = tar::Archive::new(reader);
    let mut tally = Tally::new(limits::UPLOAD_BYTES);
    let mut files = Vec::new();
    for entry in archive.entries().map_err(malformed)? {
        let mut entry = entry.map_err(malformed)?;
        let raw = entry.path_bytes().into_owned();
        let name = display_name(&raw);
        tally.entry(&name)?;
        let kind = entry.header().entry_type();
        let is_file = match kind {
            T::Regular | T::Continuous => true,
            T::Directory => false,
            T::XGlobalHeader => continue,
            T::Symlink => return Err(entry_error(&name, "symbolic links are not allowed")),
            T::Link => return Err(entry_error(&name, "hard links are not allowed")),
            T::Char | T::Block => return Err(entry_error(&name, "device files are not allowed")),
            T::Fifo => return Err(entry_error(&name, "fifos are not allowed")),
            T::GNUSparse => return Err(entry_error(&name, "sparse files are not supported")),
            _ => {
                return Err(entry_error(
                    &name,
                    "only regular files and folders are allowed",
                ));
            }
        };
        let path = entry_path(prefix, &raw).map_err(|reason| entry_error(&name, reason))?;
        if !is_file {
            continue;
        }
        let path = path.ok_or_else(|| entry_error(&name, "a file needs a name"))?;
        tally.file(&name, &path)?;
        let mode = entry.header().mode().map_err(malformed)? & 0o777;
        let declared = entry.size();
        if declared > tally.remaining() {
            return Err(UploadError::TooLarge {
                entry: name,
                limit: limits::UPLOAD_BYTES,
            });
        }
        let tmp = dir.join(files.len().to_string());
        let written = blobs::write_sync(&tmp, &mut entry, declared).map_err(|e| match e {
            WriteError::TooLarge(_) => {
                entry_error(&name, "the entry holds more bytes than its header says")
            }
            WriteError::Io(e) => malformed(e),
        })?;
        if written.size != declared {
            return Err(entry_error(&name, "the archive ends inside this entry"));
        }
        tally.bytes += written.size;
        files.push(StagedFile {
            path,
            tmp,
            digest: written.digest,
            size: written.size,
            mode,
        });
    }
    Ok(files)
}

/// Stages a multipart form by `rules`: its file parts (each named by its filename, a path
/// relative to `prefix` or, with `base_names`, its last component) and its text fields.
pub(crate) async fn stage_form(
    store: &BlobStore,
    prefix: &str,
    multipart: &mut Multipart,
    rules: FormRules,
) -> Result<Form, UploadError> {
    let dir = store.staging_dir().await?;
    let mut tally = Tally::new(rules.max_bytes);
    let mut files = Vec::new();
    let mut fields = Vec::new();
    let bad_body = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            UploadError::BodyTooLarge(limits::UPLOAD_BODY)
        } else {
            UploadError::Malformed(format!("bad multipart body: {}", e.body_text()))
        }
    };
    let expected = rules
        .file_fields
        .iter()
        .map(|f| format!("'{f}'"))
        .collect::<Vec<_>>()
        .join(" or ");
    while let Some(mut field) = multipart.next_field().await.map_err(bad_body)? {
        let field_name = field.name().unwrap_or_default().to_string();
        let Some(file_name) = field.file_name().map(str::to_string) else {
            if !rules.text_fields {
                return Err(entry_error(
                    &field_name,
                    format!("a part without a filename; send files as {expected} parts"),
                ));
            }
            tally.entry(&field_name)?;
            let mut text = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(bad_body)? {
                text.extend_from_slice(&chunk);
                if text.len() > MAX_TEXT_FIELD {
                    return Err(entry_error(
                        &field_name,
                        format!("a text field holds at most {MAX_TEXT_FIELD} bytes"),
                    ));
                }
            }
            let text = String::from_utf8(text)
                .map_err(|_| entry_error(&field_name, "the field is not UTF-8"))?;
            fields.push((field_name, text));
            continue;
        };
        tally.entry(&file_name)?;
        if !rules.file_fields.contains(&field_name.as_str()) {
            return Err(entry_error(
                &file_name,
                format!(
                    "unexpected form field '{}'; send files as {expected} parts",
                    display_name(field_name.as_bytes())
                ),
            ));
        }
        let written_name = if rules.base_names {
            file_name.rsplit(['/', '\\']).next().unwrap_or_default()
        } else {
            file_name.as_str()
        };
        let path = entry_path(prefix, written_name.as_bytes())
            .map_err(|reason| entry_error(&file_name, reason))?
            .ok_or_else(|| entry_error(&file_name, "a file needs a name"))?;
        tally.file(&file_name, &path)?;
        let tmp = dir.path().join(files.len().to_string());
        let mut writer = AsyncWriter::create(&tmp, tally.remaining()).await?;
        while let Some(chunk) = field.chunk().await.map_err(bad_body)? {
            writer.write(&chunk).await.map_err(|e| match e {
                WriteError::TooLarge(_) => UploadError::TooLarge {
                    entry: display_name(file_name.as_bytes()),
                    limit: rules.max_bytes,
                },
                WriteError::Io(e) => UploadError::Io(e),
            })?;
        }
        let written = writer.finish().await?;
        tally.bytes += written.size;
        files.push(StagedFile {
            path,
            tmp,
            digest: written.digest,
            size: written.size,
            mode: DEFAULT_MODE,
        });
    }
    if files.is_empty() {
        return Err(UploadError::Empty);
    }
    Ok(Form {
        staged: Staged { _dir: dir, files },
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        let p = |prefix: &str, s: &str| entry_path(prefix, s.as_bytes());
        assert_eq!(p("/", "a/b.txt"), Ok(Some("/a/b.txt".into())));
        assert_eq!(p("/app", "./a//b/"), Ok(Some("/app/a/b".into())));
        assert_eq!(p("/", "./"), Ok(None));
        assert_eq!(p("/", "../x"), Err("'..' is not allowed".into()));
        assert_eq!(p("/", "a/../../x"), Err("'..' is not allowed".into()));
        assert_eq!(
            p("/", "/etc/passwd"),
            Err("absolute paths are not allowed".into())
        );
        assert_eq!(p("/", "a\nb"), Err("contains a control character".into()));
        // The flight's component bound holds on the ground too.
        assert!(p("/", &format!("a/{}", "b".repeat(256))).is_err());
        assert!(p("/", &format!("a/{}", "b".repeat(255))).is_ok());
        assert!(entry_path("/", b"\xff").is_err());
        assert!(p("/", &"a/".repeat(2100)).is_err());
    }
}
