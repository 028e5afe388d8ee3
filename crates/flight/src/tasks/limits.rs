//! The disk limits as the tasks meet them (see `crate::disk`): a file over a limit fails its task
//! with `4 EXECUTION_ERROR` and a message naming the file, its logical size and the limit; work
//! that writes into the volumes is refused while the disk is below the state reserve.

use std::io::{self, Write};

use super::*;
use crate::disk::{self, size};

/// `what` (a file, a context, a volume) of `bytes` is over `limit`, the limit `of`.
pub(super) fn over_limit(what: &str, bytes: u64, limit: u64, of: &str) -> TaskResult {
    TaskResult::fail(
        ErrorCode::ExecutionError,
        format!(
            "{what} is {}, over the limit of {} {of}",
            size(bytes),
            size(limit)
        ),
    )
}

impl Executor {
    /// Refuses work while free space under the volumes is below the state reserve.
    pub(super) async fn room_for_work(&self) -> Step<()> {
        let disk = self.disk.clone();
        blocking(move || disk.room_for_work())
            .await?
            .map_err(|m| TaskResult::fail(ErrorCode::ExecutionError, m))
    }

    /// The logical size of all of `tenant`'s volumes. Fails (closed) when not all of it could
    /// be counted: more than [`volumes::MAX_WALK`] entries, a folder that could not be read,
    /// folders nested deeper than the walk goes.
    pub(super) async fn tenant_usage(&self, tenant: &str) -> Step<u64> {
        let dir = self.volumes.tenant_dir(tenant);
        let (bytes, walked) = blocking(move || disk::logical_usage(&dir)).await?;
        match disk::unmeasured("your volumes", &walked) {
            Some(why) => Err(execution_error(why)),
            None => Ok(bytes),
        }
    }

    /// Refuses work for a tenant whose volumes are over its volume quota, or without one the
    /// tenant limit, already.
    pub(super) async fn tenant_within_limit(&self, tenant: &str) -> Step<()> {
        let used = self.tenant_usage(tenant).await?;
        self.volumes_within(tenant, used, "the content of your volumes", None)
    }
}

/// A writer that refuses to take more than `limit` bytes in all (an error of kind
/// `FileTooLarge`, before any of the excess is written).
pub(super) struct LimitedWriter<W> {
    inner: W,
    written: u64,
    limit: u64,
}

impl<W: Write> LimitedWriter<W> {
    pub(super) fn new(inner: W, limit: u64) -> LimitedWriter<W> {
        LimitedWriter {
            inner,
            written: 0,
            limit,
        }
    }

    pub(super) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for LimitedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written.saturating_add(buf.len() as u64) > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("over the limit of {}", size(self.limit)),
            ));
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
