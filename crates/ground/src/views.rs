//! Cached views: what the dashboard's Home shows a user, rendered once and served again until
//! an event changes what it would show.
//!
//! Every event that changes the database bumps one generation counter ([`Views::invalidate`]):
//! each write request through the HTTP surface (API, dashboard forms, the EM API), once
//! answered, and each link event from a system (task and execution events, listings, hellos,
//! objects), once handled. A cached view is served only while the generation it was computed
//! at is current, and for at most [`MAX_AGE`], since part of it follows the clock alone (the
//! day of the usage charts, the next pass). The generation is read before the view is computed,
//! so a view computed while an event lands is kept under the old generation and never served.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a view is served at most, events or not.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(30);

/// The cache, shared by the HTTP handlers and the link handlers (in `Core`).
#[derive(Debug, Default)]
pub(crate) struct Views {
    generation: AtomicU64,
    home: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    generation: u64,
    made: Instant,
    html: Arc<str>,
}

impl Views {
    /// Something changed: no view computed before now is served again.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The current generation, read before computing a view to keep.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// `user`'s Home body, when one is cached that is still current.
    pub(crate) fn home(&self, user: &str) -> Option<Arc<str>> {
        let now = self.generation();
        let map = self.home.lock().ok()?;
        let e = map.get(user)?;
        (e.generation == now && e.made.elapsed() < MAX_AGE).then(|| e.html.clone())
    }

    /// Keeps `user`'s Home body, computed at `generation`.
    pub(crate) fn keep_home(&self, user: &str, generation: u64, html: Arc<str>) {
        if let Ok(mut map) = self.home.lock() {
            // Entries of older generations are dead weight: drop them while here.
            map.retain(|_, e| e.generation >= generation);
            map.insert(
                user.to_string(),
                Entry {
                    generation,
                    made: Instant::now(),
                    html,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_is_served_until_an_event() {
        let v = Views::default();
        assert!(v.home("alice").is_none());
        let g = v.generation();
        v.keep_home("alice", g, Arc::from("<p>a</p>"));
        assert_eq!(v.home("alice").as_deref(), Some("<p>a</p>"));
        assert!(v.home("bob").is_none(), "each user has their own");
        v.invalidate();
        assert!(v.home("alice").is_none());
    }

    #[test]
    fn a_view_computed_across_an_event_is_never_served() {
        let v = Views::default();
        let g = v.generation();
        // The event lands while the view is being computed.
        v.invalidate();
        v.keep_home("alice", g, Arc::from("stale"));
        assert!(v.home("alice").is_none());
    }
}
