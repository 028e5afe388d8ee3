//! `GET /api/v1/executions/{id}/events`: an execution followed live, as server-sent events.
//!
//! The first event is the execution as `GET /api/v1/executions/{id}` answers it; each later one
//! is the execution again after an event changed it (a task's or the execution's state, its
//! outputs, its uplink). The stream ends after the event that shows a final state, and when the
//! server stops.
//!
//! No listener polls the database: each waits on the ground's events (`views::Views::follow`,
//! the generation the Home cache is invalidated by) and reads the execution once per wake. The
//! wake holds only the newest generation, so a listener that falls behind skips to the present
//! instead of queueing, and reads at most once per [`MIN_INTERVAL`]; an answer identical to the
//! last one sent is not sent again (trigger predictions' search bounds, which follow the clock,
//! aside). At most `views::FOLLOWERS` listen at once, `views::FOLLOWERS_PER_USER` of one user.
//!
//! The credential the stream was opened with is checked again at each wake: a session ended
//! (signed out, the user disabled, a new password, expired) ends the stream. And every stream
//! ends after [`MAX_LIFE`]; a browser's `EventSource` then connects again, authenticated anew.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream;
use tokio::time::Instant;

use super::P;
use super::executions::load;
use super::server::Closing;
use crate::Ground;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::views::Follower;

/// The shortest time between two reads of the execution for one listener: a burst of events
/// costs one read per listener.
const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// The longest one stream lasts.
const MAX_LIFE: Duration = Duration::from_secs(600);

/// How long a listener waits before trying again when all places are taken.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// What one listener follows, and what it was last sent.
struct Following {
    g: Ground,
    user: String,
    /// The token the stream was opened with, checked again at each wake.
    token: String,
    id: String,
    follower: Follower,
    /// The first answer, read before the stream began.
    first: Option<api::Execution>,
    /// What was last sent, as compared ([`compared`]).
    sent: String,
    last_read: Instant,
    ended: bool,
}

pub(super) async fn events(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P(id): P<String>,
    headers: axum::http::HeaderMap,
    closing: Option<Extension<Closing>>,
) -> Result<Response, ApiError> {
    // `AuthUser` found it.
    let token = crate::auth::request_token(&headers).ok_or(ApiError::Unauthorized)?;
    // Follow before the first read, so that an event landing in between wakes the stream.
    let follower = g.views().follow(&user).ok_or(ApiError::TooManyRequests {
        message: format!(
            "{} listeners follow executions already, or {} of yours; try again in {} s",
            crate::views::FOLLOWERS,
            crate::views::FOLLOWERS_PER_USER,
            RETRY_AFTER.as_secs()
        ),
        retry_after: RETRY_AFTER,
    })?;
    // The same answer as the execution itself: another tenant's is as good as absent.
    let first = load(&g, &user, &id).await?;
    let state = Following {
        g,
        user,
        token,
        id,
        follower,
        first: Some(first),
        sent: String::new(),
        last_read: Instant::now(),
        ended: false,
    };
    let stream = stream::unfold(state, next).map(Ok::<Event, Infallible>);
    let stopped = async move {
        let closed = async {
            match closing {
                Some(Extension(c)) => c.wait().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = closed => {}
            () = tokio::time::sleep(MAX_LIFE) => {}
        }
    };
    Ok(Sse::new(stream.take_until(stopped))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The next event: the execution once it differs from what was sent; `None` when it ended.
async fn next(mut f: Following) -> Option<(Event, Following)> {
    if f.ended {
        return None;
    }
    loop {
        let e = match f.first.take() {
            Some(e) => e,
            None => {
                // The ground dropping its sender means it is gone: so is the stream.
                f.follower.changes.changed().await.ok()?;
                tokio::time::sleep_until(f.last_read + MIN_INTERVAL).await;
                f.follower.changes.borrow_and_update();
                f.last_read = Instant::now();
                match crate::auth::user_for_token(&f.g, &f.token).await {
                    Ok(Some(u)) if u == f.user => {}
                    _ => return None,
                }
                match load(&f.g, &f.user, &f.id).await {
                    Ok(e) => e,
                    Err(e) => {
                        // Gone meanwhile, or the database failing: the client may ask again.
                        tracing::warn!(execution = %f.id, error = %e.message(), "stopped following an execution");
                        return None;
                    }
                }
            }
        };
        let (json, key) = match serde_json::to_string(&e).and_then(|j| Ok((j, compared(&e)?))) {
            Ok(j) => j,
            Err(err) => {
                tracing::error!(execution = %f.id, error = %err, "an execution did not serialize");
                return None;
            }
        };
        if key == f.sent {
            continue;
        }
        f.ended = e.state.is_final();
        let event = Event::default().event("execution").data(&json);
        f.sent = key;
        return Some((event, f));
    }
}

/// What tells two answers apart: the execution without its trigger predictions' search bounds,
/// which are the instant of the read and would make every read differ.
fn compared(e: &api::Execution) -> serde_json::Result<String> {
    let mut e = e.clone();
    for t in &mut e.triggers {
        t.from.clear();
        t.until.clear();
    }
    serde_json::to_string(&e)
}
