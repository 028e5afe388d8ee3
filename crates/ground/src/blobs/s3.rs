//! Blobs in an S3-compatible store (`--blob-url s3://BUCKET/PREFIX`), shared by every ground
//! replica: the key of a blob is `PREFIX/sha256/<aa>/<hex>`, as in the local layout.
//!
//! The store is never trusted: every object fetched is hashed as it is written to a staging file
//! and lands in the local layout only when its digest is the one asked for. An object the store
//! already holds with the right size is not uploaded again.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};
use tokio::io::AsyncReadExt;
use wire::Digest;

use super::{AsyncWriter, WriteError};
use crate::config::S3Settings;

/// Objects up to this size go up in one request; larger ones in parts of this size.
const PART_BYTES: usize = 8 << 20;
/// Parts of one object in flight at once.
const PARTS_IN_FLIGHT: usize = 4;
/// A request fails (and is retried) when the store sends nothing for this long: a stalled
/// connection. There is no bound on a whole request, which a blob of gigabytes may need.
const STALLED_AFTER: Duration = Duration::from_secs(30);

/// An S3 bucket (and prefix) holding blobs.
#[derive(Clone)]
pub(crate) struct Remote {
    store: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
    endpoint: String,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Remote({}, {})", self.endpoint, self.location(""))
    }
}

/// A failed exchange with the store, or an object it returned that is not what was asked for.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoteError {
    /// The settings cannot make a client (a malformed URL, say).
    #[error("the blob store {url}: {message}")]
    Settings { url: String, message: String },
    /// A request failed: what, where, and the store's answer (its status among it).
    #[error("{op} {location} at {endpoint}: {source}")]
    Request {
        op: &'static str,
        location: String,
        endpoint: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// The store returned other bytes than the object named by the key.
    #[error(
        "{location} at {endpoint} holds content of digest {got} ({size} bytes), not the blob it is named for"
    )]
    Mismatch {
        location: String,
        endpoint: String,
        got: Digest,
        size: u64,
    },
    /// A local file could not be read or written.
    #[error("{what}: {source}")]
    Local {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Remote {
    /// A client for `settings`; each setting not given comes from the `AWS_*` environment
    /// variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...).
    pub(crate) fn new(settings: &S3Settings) -> Result<Remote, RemoteError> {
        let bad = |message: String| RemoteError::Settings {
            url: settings.url.clone(),
            message,
        };
        let (bucket, prefix) = parse_url(&settings.url).map_err(bad)?;
        // The TLS of the client is rustls with ring, the workspace's one provider; a process
        // that installed it already (the CLI does) keeps its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_retry(RetryConfig {
                backoff: Default::default(),
                max_retries: 3,
                retry_timeout: Duration::from_secs(60),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_timeout_disabled()
                    .with_read_timeout(STALLED_AFTER),
            );
        if let Some(endpoint) = &settings.endpoint {
            b = b.with_endpoint(endpoint);
        }
        if let Some(region) = &settings.region {
            b = b.with_region(region);
        }
        if let Some(id) = &settings.access_key_id {
            b = b.with_access_key_id(id);
        }
        if let Some(secret) = &settings.secret_access_key {
            b = b.with_secret_access_key(secret);
        }
        if let Some(token) = &settings.session_token {
            b = b.with_token(token);
        }
        let endpoint = b
            .get_config_value(&object_store::aws::AmazonS3ConfigKey::Endpoint)
            .unwrap_or_else(|| "AWS S3".to_string());
        // A plain-HTTP endpoint (a store on the loopback, a test's) is allowed when named so.
        b = b.with_allow_http(endpoint.starts_with("http://"));
        let store = b.build().map_err(|e| bad(e.to_string()))?;
        Ok(Remote {
            store: Arc::new(store),
            bucket,
            prefix,
            endpoint,
        })
    }

    /// Checks that the bucket answers a listing of the prefix (which a missing bucket or wrong
    /// credentials fail), at start.
    pub(crate) async fn check(&self) -> Result<(), RemoteError> {
        let key = self.key_of("sha256");
        match self.store.list_with_delimiter(Some(&key)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.failed("listing", &key, e)),
        }
    }

    /// `s3://BUCKET/PREFIX/sha256/<aa>/<hex>`, for messages.
    pub(crate) fn location_of(&self, digest: &Digest) -> String {
        self.location(self.key(digest).as_ref())
    }

    /// Uploads the blob in `file` (of `size` bytes, content `digest`) unless the store already
    /// holds an object of that size under its key.
    pub(crate) async fn upload(
        &self,
        file: &Path,
        digest: &Digest,
        size: u64,
    ) -> Result<(), RemoteError> {
        let key = self.key(digest);
        match self.store.head(&key).await {
            Ok(meta) if meta.size == size => return Ok(()),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.failed("checking", &key, e)),
        }
        let local = |source| RemoteError::Local {
            what: format!("reading {} to upload it", file.display()),
            source,
        };
        let mut f = tokio::fs::File::open(file).await.map_err(local)?;
        if size <= PART_BYTES as u64 {
            let mut data = Vec::with_capacity(size as usize);
            f.read_to_end(&mut data).await.map_err(local)?;
            self.store
                .put(&key, PutPayload::from(data))
                .await
                .map_err(|e| self.failed("uploading", &key, e))?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| self.failed("starting the upload of", &key, e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buf = vec![0u8; 1 << 20];
        let sent: Result<(), RemoteError> = async {
            loop {
                let n = f.read(&mut buf).await.map_err(local)?;
                if n == 0 {
                    return Ok(());
                }
                w.wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.failed("uploading", &key, e))?;
                w.write(&buf[..n]);
            }
        }
        .await;
        match sent {
            Ok(()) => {
                w.finish()
                    .await
                    .map_err(|e| self.failed("finishing the upload of", &key, e))?;
                Ok(())
            }
            Err(e) => {
                if let Err(abort) = w.abort().await {
                    tracing::warn!(key = %self.location(key.as_ref()), error = %abort, "could not abort an unfinished upload");
                }
                Err(e)
            }
        }
    }

    /// Downloads the blob `digest` into the new file `into`, checking its digest, at most
    /// `limit` bytes. `Ok(false)`: the store does not hold it.
    pub(crate) async fn download(
        &self,
        digest: &Digest,
        into: &Path,
        limit: u64,
    ) -> Result<bool, RemoteError> {
        let key = self.key(digest);
        let got = match self.store.get(&key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(self.failed("downloading", &key, e)),
        };
        let local = |source| RemoteError::Local {
            what: format!("writing {} from the blob store", into.display()),
            source,
        };
        let mut w = AsyncWriter::create(into, limit).await.map_err(local)?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.failed("downloading", &key, e))?;
            w.write(&chunk).await.map_err(|e| match e {
                WriteError::TooLarge(_) => RemoteError::Local {
                    what: format!("{} from the blob store", self.location(key.as_ref())),
                    source: std::io::Error::other(format!("larger than {limit} bytes")),
                },
                e => local(e.into_io()),
            })?;
        }
        let written = w.finish().await.map_err(local)?;
        if written.digest != *digest {
            return Err(RemoteError::Mismatch {
                location: self.location(key.as_ref()),
                endpoint: self.endpoint.clone(),
                got: written.digest,
                size: written.size,
            });
        }
        Ok(true)
    }

    fn key(&self, digest: &Digest) -> Key {
        let hex = digest.hex();
        self.key_of(&format!("sha256/{}/{hex}", &hex[..2]))
    }

    fn key_of(&self, rest: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(rest)
        } else {
            Key::from(format!("{}/{rest}", self.prefix))
        }
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn failed(&self, op: &'static str, key: &Key, source: object_store::Error) -> RemoteError {
        RemoteError::Request {
            op,
            location: self.location(key.as_ref()),
            endpoint: self.endpoint.clone(),
            source: Box::new(source),
        }
    }

    /// The client itself, for tests that tamper with the store.
    #[cfg(test)]
    pub(crate) async fn put_raw(&self, digest: &Digest, data: Vec<u8>) {
        self.store
            .put(&self.key(digest), PutPayload::from(data))
            .await
            .unwrap();
    }
}

/// `s3://BUCKET[/PREFIX]` as the bucket and the prefix (without slashes at its ends).
fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| "expected s3://BUCKET/PREFIX".to_string())?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
    if !valid_bucket {
        return Err(format!(
            "'{bucket}' is not a bucket name (3 to 63 lowercase letters, digits, '-' and '.')"
        ));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p == "." || p == "..")
        || prefix.contains("//")
        || prefix.chars().any(char::is_control)
    {
        return Err(format!("'{prefix}' is not a usable key prefix"));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        let ok = |u: &str| parse_url(u).unwrap();
        assert_eq!(ok("s3://blobs"), ("blobs".into(), "".into()));
        assert_eq!(ok("s3://blobs/"), ("blobs".into(), "".into()));
        assert_eq!(
            ok("s3://my.blobs/ground/a/"),
            ("my.blobs".into(), "ground/a".into())
        );
        for bad in [
            "blobs",
            "file:///x",
            "s3://",
            "s3://Blobs/x",
            "s3://ab",
            "s3://b_b/x",
            "s3://blobs/a//b",
            "s3://blobs/../x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
