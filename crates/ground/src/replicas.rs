//! Live updates across replicas: on PostgreSQL, every replica tells the others of its changes
//! and hears theirs, so that a page followed live on one replica (`http::live`) and the Home
//! cache (`views`) see what a request or a link event handled by another replica changed.
//!
//! Each local change ([`crate::views::Views::invalidate`]) wakes an announcer that sends one
//! `NOTIFY orbitdock_changes` with this replica's identity (PostgreSQL folds a burst of them
//! while the announcer is busy: the `Notify` it waits on holds one permit). A listener on its own
//! connection (`LISTEN orbitdock_changes`) bumps the local generation for each notification of
//! another replica ([`crate::views::Views::bump`]: no announcement back). A listener that lost its
//! connection cannot know what it missed: once connected again (and listening) it bumps the
//! generation anyway, so that a change announced after the bump is heard; meanwhile the Home
//! cache's age bound ([`crate::views::MAX_AGE`]) still holds.
//!
//! On SQLite there is one process per database: nothing to tell.
//!
//! Both tasks hold the ground weakly, and stop when the [`Tasks`] that [`spawn`] returns drops
//! (with the last handle on the ground): the listener's connection closes with them.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use crate::Core;
use crate::system_link::AbortTask;

/// The announcer and the listener; dropping it stops them.
#[derive(Debug)]
pub(crate) struct Tasks {
    _announce: AbortTask,
    _listen: AbortTask,
}

/// The channel replicas notify each other on.
pub(crate) const CHANNEL: &str = "orbitdock_changes";

/// The longest wait before connecting the listener again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts telling the other replicas on the PostgreSQL database at `url` of this one's changes,
/// and hearing theirs. Fails if the listener's first connection does.
pub(crate) async fn spawn(core: &Arc<Core>, url: &str) -> Result<Tasks, sqlx::Error> {
    let me = format!("{:016x}", rand::random::<u64>());
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    let wake = Arc::new(Notify::new());
    core.views.announce_to(wake.clone());
    let announcer = tokio::spawn(announce(Arc::downgrade(core), wake, me.clone()));
    let listener = tokio::spawn(listen(Arc::downgrade(core), listener, me));
    Ok(Tasks {
        _announce: AbortTask(announcer.abort_handle()),
        _listen: AbortTask(listener.abort_handle()),
    })
}

/// Sends a notification for each wake, while the ground lives.
async fn announce(core: Weak<Core>, wake: Arc<Notify>, me: String) {
    loop {
        wake.notified().await;
        let Some(core) = core.upgrade() else { return };
        // pg_notify answers `void`, which no driver decodes: select past it.
        if let Err(e) = sqlx::query("SELECT CAST(1 AS BIGINT) FROM (SELECT pg_notify($1, $2)) AS n")
            .bind(CHANNEL)
            .bind(&me)
            .execute(&core.db)
            .await
        {
            // The other replicas' caches age out (views::MAX_AGE); their live pages wait for
            // the next change that reaches them.
            tracing::warn!(error = %e, "could not tell the other replicas of a change");
        }
    }
}

/// Bumps the local generation for each change another replica announces.
async fn listen(core: Weak<Core>, mut listener: PgListener, me: String) {
    let mut backoff = Duration::from_millis(500);
    // The connection was lost: what was announced until it is back is unknown.
    let mut lost = false;
    loop {
        if lost {
            // Connected again, and listening, before the bump: a change announced after it is
            // heard.
            let again = sqlx::query("SELECT 1").execute(&mut listener).await;
            let Some(core) = core.upgrade() else { return };
            match again {
                Ok(_) => {
                    lost = false;
                    backoff = Duration::from_millis(500);
                    core.views.bump();
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot hear other replicas");
                    drop(core);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        // `try_recv` answers `None` when the connection was lost (and connects again at the next
        // call).
        let heard = listener.try_recv().await;
        let Some(core) = core.upgrade() else { return };
        match heard {
            Ok(Some(n)) => {
                backoff = Duration::from_millis(500);
                if n.payload() != me {
                    core.views.bump();
                }
            }
            Ok(None) => {
                tracing::warn!("lost the connection that hears other replicas; connecting again");
                lost = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot hear other replicas");
                lost = true;
                drop(core);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views;

    #[test]
    fn a_local_change_wakes_the_announcer_and_a_heard_one_does_not() {
        let v = views::Views::default();
        let wake = Arc::new(Notify::new());
        v.announce_to(wake.clone());
        let before = v.generation();
        v.bump();
        assert_eq!(v.generation(), before + 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let heard = tokio::time::timeout(Duration::from_millis(50), wake.notified()).await;
            assert!(heard.is_err(), "a bump announces nothing");
            v.invalidate();
            tokio::time::timeout(Duration::from_secs(1), wake.notified())
                .await
                .expect("a local change wakes the announcer");
        });
    }
}
