//! What an endpoint is told besides its addresses and key: the per-system settings of the link
//! (the systems file's, see `docs/systems.md`) and the application's admission of incoming
//! objects.

use std::sync::Arc;
use std::time::Duration;

/// A system's link settings, as its systems file declares them; both ends of a link read the
/// same file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSettings {
    /// The largest datagram either end sends, up to the radio's frame size: between
    /// [`wire::MIN_DATAGRAM`] and [`wire::MAX_PACKET`]. The payload of a data packet follows from
    /// it, so both ends must use the same: each says its own in its `Hello`, and when they
    /// differ both use the smaller, the endpoint logs an error naming both, and transfers in
    /// progress start again.
    pub datagram_bytes: usize,
    /// An incoming transfer whose spool made no progress for this long is dropped and its space
    /// freed; its sender, should it come back, sends it again from nothing.
    pub spool_expiry: Duration,
}

impl LinkSettings {
    /// The settings of a system whose systems file says nothing of its link: datagrams of
    /// [`wire::MAX_PACKET`] bytes; spools expire after seven days without progress.
    pub const STANDARD: LinkSettings = LinkSettings {
        datagram_bytes: wire::MAX_PACKET,
        spool_expiry: Duration::from_secs(7 * 24 * 3600),
    };

    /// Refuses settings that cannot work, saying which and why.
    pub fn check(&self) -> Result<(), String> {
        if !(wire::MIN_DATAGRAM..=wire::MAX_PACKET).contains(&self.datagram_bytes) {
            return Err(format!(
                "a datagram of {} bytes is outside {}..={}",
                self.datagram_bytes,
                wire::MIN_DATAGRAM,
                wire::MAX_PACKET
            ));
        }
        if self.spool_expiry < Duration::from_secs(60) {
            return Err(format!(
                "a spool expiry of {:?} would drop transfers between two packets: at least a minute",
                self.spool_expiry
            ));
        }
        Ok(())
    }
}

/// The largest object an endpoint without an [`Admission`] takes (the ground's), on its declared
/// size: above the largest file the ground takes in an upload (5 GiB), which is the largest it
/// sends, and the largest a flight agent downlinks unless its operators raise
/// `downlink_file_bytes` (2 GiB).
pub const DEFAULT_MAX_OBJECT: u64 = 16 << 30;

/// The most object bytes an endpoint without an [`Admission`] has arriving at once: its spools
/// of objects, each at its declared size (its spool file's bytes before its offer). So a peer
/// holding the link key, or a bug, cannot fill the receiver's disk with spools; objects come one
/// after another, and a sender's backlog waits in its outbox, not here.
pub const DEFAULT_MAX_INCOMING: u64 = 64 << 30;

/// The application's judgement of an object the peer offers, on its declared size: `Ok` to take
/// it, `Err(reason)` to refuse it (the peer drops it and reports the reason). Called on the
/// blocking pool when the offer first arrives; the flight agent checks its object store's cap and
/// the disk's reserve for its own state. Without one, an endpoint takes objects of at most
/// [`DEFAULT_MAX_OBJECT`] bytes, [`DEFAULT_MAX_INCOMING`] of them at once. Cheap to clone.
#[derive(Clone)]
pub struct Admission(Arc<dyn Fn(u64) -> Result<(), String> + Send + Sync>);

impl Admission {
    /// An admission that asks `judge` with each offered object's size.
    pub fn new(judge: impl Fn(u64) -> Result<(), String> + Send + Sync + 'static) -> Admission {
        Admission(Arc::new(judge))
    }

    /// Whether an object of `size` bytes may come.
    pub fn admit(&self, size: u64) -> Result<(), String> {
        (self.0)(size)
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admission(…)")
    }
}
