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
//!
//! The same counter is published on a `tokio::sync::watch` channel ([`Views::changes`]): what
//! follows an execution live (its server-sent events) wakes on each bump and reads the execution
//! again. A watch holds only the latest value, so a slow follower skips bumps rather than
//! queueing them: the memory is one counter however many events land. At most [`FOLLOWERS`]
//! follow at once, and at most [`FOLLOWERS_PER_USER`] of them for one user, so no one user can
//! take every place ([`Views::follow`]).
//!
//! On PostgreSQL, several replicas may serve one database: each local change is also announced
//! to the others, and theirs bump this one's generation (`replicas`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

/// How long a view is served at most, events or not.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(30);

/// Listeners following executions live at once, at most.
pub(crate) const FOLLOWERS: usize = 256;
/// The most followers of one user at once.
pub(crate) const FOLLOWERS_PER_USER: usize = 8;

/// The cache, shared by the HTTP handlers and the link handlers (in `Core`).
#[derive(Debug)]
pub(crate) struct Views {
    generation: AtomicU64,
    home: Mutex<HashMap<String, Entry>>,
    /// The generation, for those who wait for the next event.
    changes: watch::Sender<u64>,
    /// A permit per follower.
    followers: Arc<Semaphore>,
    /// How many each user has.
    per_user: Arc<Mutex<HashMap<String, usize>>>,
    /// Woken at each local change, to tell the other replicas (`replicas`); unset on SQLite.
    announce: OnceLock<Arc<Notify>>,
}

impl Default for Views {
    fn default() -> Views {
        Views {
            generation: AtomicU64::new(0),
            home: Mutex::default(),
            changes: watch::Sender::new(0),
            followers: Arc::new(Semaphore::new(FOLLOWERS)),
            per_user: Arc::default(),
            announce: OnceLock::new(),
        }
    }
}

/// One who follows events: woken on each (`changes.changed().await`), counted among the
/// [`FOLLOWERS`] until dropped.
#[derive(Debug)]
pub(crate) struct Follower {
    pub(crate) changes: watch::Receiver<u64>,
    _permit: OwnedSemaphorePermit,
    user: String,
    per_user: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        let mut counts = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.user);
            }
        }
    }
}

#[derive(Debug)]
struct Entry {
    generation: u64,
    made: Instant,
    html: Arc<str>,
}

impl Views {
    /// Something changed here: no view computed before now is served again, and the other
    /// replicas are told (`replicas`).
    pub(crate) fn invalidate(&self) {
        self.bump();
        if let Some(wake) = self.announce.get() {
            wake.notify_one();
        }
    }

    /// Something changed, here or on another replica: no view computed before now is served
    /// again, and followers wake.
    pub(crate) fn bump(&self) {
        let now = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        // Followers see the newest generation; concurrent bumps never move it backwards.
        self.changes.send_if_modified(|g| {
            let newer = now > *g;
            if newer {
                *g = now;
            }
            newer
        });
    }

    /// Wakes `wake` at each local change from now on (once; later calls change nothing).
    pub(crate) fn announce_to(&self, wake: Arc<Notify>) {
        let _ = self.announce.set(wake);
    }

    /// A follower of the events from now on, for `user`; `None` when [`FOLLOWERS`] follow
    /// already, or [`FOLLOWERS_PER_USER`] of `user`'s.
    pub(crate) fn follow(&self, user: &str) -> Option<Follower> {
        let mut counts = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        if counts.get(user).is_some_and(|&n| n >= FOLLOWERS_PER_USER) {
            return None;
        }
        let permit = self.followers.clone().try_acquire_owned().ok()?;
        *counts.entry(user.to_string()).or_default() += 1;
        Some(Follower {
            changes: self.changes.subscribe(),
            _permit: permit,
            user: user.to_string(),
            per_user: self.per_user.clone(),
        })
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

    #[tokio::test]
    async fn followers_wake_on_events_and_skip_what_they_missed() {
        let v = Views::default();
        let mut follower = v.follow("alice").unwrap();
        let f = &mut follower.changes;
        v.invalidate();
        f.changed().await.unwrap();
        assert_eq!(*f.borrow_and_update(), 1);
        // Three events while the follower was busy: it wakes once, at the newest.
        v.invalidate();
        v.invalidate();
        v.invalidate();
        f.changed().await.unwrap();
        assert_eq!(*f.borrow_and_update(), 4);
        assert!(!f.has_changed().unwrap());
    }

    #[test]
    fn followers_are_bounded() {
        let v = Views::default();
        let mine: Vec<Follower> = (0..FOLLOWERS_PER_USER)
            .map(|_| v.follow("alice").unwrap())
            .collect();
        assert!(v.follow("alice").is_none(), "one user's bound");
        drop(mine);
        let all: Vec<Follower> = (0..FOLLOWERS)
            .map(|i| v.follow(&format!("u{}", i / FOLLOWERS_PER_USER)).unwrap())
            .collect();
        assert!(
            v.follow("bob").is_none(),
            "one more than the bound is refused"
        );
        drop(all);
        assert!(v.follow("bob").is_some(), "a follower gone frees its place");
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
