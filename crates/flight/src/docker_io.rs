//! The Docker adapter's plumbing: calls bounded in time, the engine's errors mapped to the
//! agent's, its timestamps read, request bodies streamed from files, progress drained.

use std::path::Path;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncReadExt;

use super::*;

/// Runs a short call within [`CALL_TIMEOUT`].
pub(super) async fn bounded<T>(
    what: &str,
    fut: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> RtResult<T> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(r) => r.map_err(|e| map_error(what, e)),
        Err(_) => Err(RuntimeError {
            kind: RuntimeErrorKind::Timeout,
            message: format!("{what}: no answer from the Docker Engine within {CALL_TIMEOUT:?}"),
        }),
    }
}

pub(super) fn map_error(what: &str, e: bollard::errors::Error) -> RuntimeError {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError {
            status_code: 404,
            message,
        } => RuntimeError {
            kind: RuntimeErrorKind::NotFound,
            message,
        },
        E::DockerResponseServerError { message, .. } => RuntimeError::failed(message),
        E::DockerStreamError { error } => RuntimeError::failed(error),
        E::RequestTimeoutError => RuntimeError {
            kind: RuntimeErrorKind::Timeout,
            message: format!("{what}: the Docker Engine did not answer in time"),
        },
        other => RuntimeError::failed(format!("{what}: {other}")),
    }
}

/// An RFC 3339 instant as the engine writes it (`2026-01-02T03:04:05.123456789Z`) in
/// milliseconds since the Unix epoch; `None` for its zero time (`0001-01-01T00:00:00Z`, never
/// started) or anything that does not read.
pub(super) fn rfc3339_ms(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    u64::try_from(ms).ok().filter(|&ms| ms > 0)
}

/// A file as a stream of chunks, for a request body.
pub(super) async fn file_stream(
    path: &Path,
) -> RtResult<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| RuntimeError::failed(format!("cannot open {}: {e}", path.display())))?;
    Ok(futures_util::stream::try_unfold(
        file,
        |mut file| async move {
            let mut buf = vec![0u8; BODY_CHUNK];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            Ok(Some((Bytes::from(buf), file)))
        },
    ))
}

/// Drains a build or load progress stream into `log` (and a build's step images into
/// `steps`); the first error ends it.
pub(super) async fn drain_progress(
    what: &str,
    stream: impl Stream<Item = Result<bollard::models::BuildInfo, bollard::errors::Error>>,
    log: &LogBook,
    steps: Option<&StepImages>,
) -> RtResult<()> {
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(s) = info.stream {
                    log.push_bytes(s.as_bytes());
                    if let Some(steps) = steps {
                        s.lines().for_each(|line| steps.note(line));
                    }
                }
                if let Some(s) = info.status {
                    log.push_line(&s);
                }
            }
            Err(e) => {
                let e = map_error(what, e);
                log.push_line(&e.message);
                return Err(e);
            }
        }
    }
    Ok(())
}
