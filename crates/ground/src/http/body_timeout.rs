//! Request bodies bounded in time: a layer over every route that fails a body when no byte of
//! it has come for [`HttpTimeouts::body_idle`], or when it has not all come by
//! `body_grace + bytes / body_min_rate` after its headers; the answer is then `408` and the
//! connection is closed. A slow-loris body cannot hold a connection, a request or an upload's
//! staging folder for ever: the upload fails like any broken body and removes what it staged.
//!
//! Only the client's time counts: while the handler does not ask for more (writing a staged file,
//! say), neither bound runs.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes, HttpBody as _};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::config::HttpTimeouts;
use crate::error::ApiError;

/// The layer: wraps the body of `req`, and answers `408` when its timer fired, whatever the
/// handler made of the failed body.
pub(super) async fn bound(
    State(timeouts): State<HttpTimeouts>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    if body.size_hint().exact() == Some(0) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let verdict = Arc::new(OnceLock::new());
    let timed = TimedBody::new(body.into_data_stream(), timeouts, verdict.clone());
    let response = next
        .run(Request::from_parts(parts, Body::from_stream(timed)))
        .await;
    match verdict.get() {
        Some(why) => ApiError::RequestTimeout(why.clone()).into_response(),
        None => response,
    }
}

struct TimedBody {
    inner: BodyDataStream,
    timeouts: HttpTimeouts,
    /// Set to the earlier of the two deadlines whenever the body is asked for more.
    timer: Pin<Box<Sleep>>,
    started: Instant,
    /// Time the handler spent not asking for more: added to the rate deadline.
    paused: Duration,
    received: u64,
    /// When the last chunk was handed to the handler, until it asks for the next.
    handed_at: Option<Instant>,
    /// When the body was last asked for more after a chunk (the idle bound runs from there).
    waiting_since: Instant,
    /// Why the body failed, for the layer's answer.
    verdict: Arc<OnceLock<String>>,
    done: bool,
}

impl TimedBody {
    fn new(
        inner: BodyDataStream,
        timeouts: HttpTimeouts,
        verdict: Arc<OnceLock<String>>,
    ) -> TimedBody {
        let now = Instant::now();
        let mut body = TimedBody {
            inner,
            timeouts,
            timer: Box::pin(tokio::time::sleep_until(now)),
            started: now,
            paused: Duration::ZERO,
            received: 0,
            handed_at: None,
            waiting_since: now,
            verdict,
            done: false,
        };
        let (at, _) = body.deadline();
        body.timer.as_mut().reset(at);
        body
    }

    /// The earlier deadline, and what passing it means.
    fn deadline(&self) -> (Instant, String) {
        let t = &self.timeouts;
        let idle = (
            self.waiting_since + t.body_idle,
            format!(
                "no byte of the request body came for {} s",
                t.body_idle.as_secs_f64()
            ),
        );
        if t.body_min_rate == 0 {
            return idle;
        }
        let allowed = Duration::from_secs_f64(self.received as f64 / t.body_min_rate as f64);
        let rate = (
            self.started + self.paused + t.body_grace + allowed,
            format!(
                "the request body came slower than {} bytes/s after its first {} s",
                t.body_min_rate,
                t.body_grace.as_secs_f64()
            ),
        );
        if rate.0 < idle.0 { rate } else { idle }
    }
}

impl Stream for TimedBody {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(handed) = this.handed_at.take() {
            let now = Instant::now();
            this.paused += now - handed;
            this.waiting_since = now;
            let (at, _) = this.deadline();
            this.timer.as_mut().reset(at);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.received += chunk.len() as u64;
                this.handed_at = Some(Instant::now());
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(other) => {
                this.done = true;
                Poll::Ready(other)
            }
            Poll::Pending => {
                if this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.done = true;
                let (_, why) = this.deadline();
                tracing::info!(bytes = this.received, "{why}: request refused");
                let _ = this.verdict.set(why.clone());
                Poll::Ready(Some(Err(axum::Error::new(io::Error::new(
                    io::ErrorKind::TimedOut,
                    why,
                )))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn timeouts() -> HttpTimeouts {
        HttpTimeouts {
            headers: Duration::from_secs(30),
            body_idle: Duration::from_secs(10),
            body_grace: Duration::from_secs(20),
            body_min_rate: 100,
            write_stall: Duration::from_secs(30),
        }
    }

    /// A body fed by hand through a channel.
    fn body() -> (
        tokio::sync::mpsc::Sender<Result<Bytes, io::Error>>,
        TimedBody,
        Arc<OnceLock<String>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let verdict = Arc::new(OnceLock::new());
        let body = TimedBody::new(
            Body::from_stream(stream).into_data_stream(),
            timeouts(),
            verdict.clone(),
        );
        (tx, body, verdict)
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_fails_after_the_idle_bound() {
        let (tx, mut body, verdict) = body();
        tx.send(Ok(Bytes::from_static(b"abc"))).await.unwrap();
        assert_eq!(body.next().await.unwrap().unwrap(), "abc");
        let asked = Instant::now();
        assert!(body.next().await.unwrap().is_err());
        assert_eq!(Instant::now() - asked, Duration::from_secs(10));
        assert_eq!(
            verdict.get().unwrap(),
            "no byte of the request body came for 10 s"
        );
        assert!(body.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_fails_once_it_falls_below_the_rate() {
        let (tx, mut body, verdict) = body();
        let start = Instant::now();
        // A byte every 5 s: never idle for 10 s, but far below 100 bytes/s.
        let feeder = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if tx.send(Ok(Bytes::from_static(b"x"))).await.is_err() {
                    break;
                }
            }
        });
        let mut got = 0;
        let err = loop {
            match body.next().await.unwrap() {
                Ok(b) => got += b.len(),
                Err(e) => break e,
            }
        };
        feeder.abort();
        assert_eq!(
            verdict.get().unwrap(),
            "the request body came slower than 100 bytes/s after its first 20 s"
        );
        assert!(err.to_string().contains("slower than"), "{err}");
        // The grace plus what the bytes that came earned at 100 bytes/s.
        assert_eq!(got, 4);
        assert_eq!(
            Instant::now() - start,
            Duration::from_secs(20) + Duration::from_millis(40)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_handler_spends_is_not_the_clients() {
        let (tx, mut body, verdict) = body();
        tx.send(Ok(Bytes::from_static(b"abc"))).await.unwrap();
        assert_eq!(body.next().await.unwrap().unwrap(), "abc");
        // The handler is busy for a minute before it asks for more, which is waiting.
        tx.send(Ok(Bytes::from_static(b"def"))).await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(body.next().await.unwrap().unwrap(), "def");
        drop(tx);
        assert!(body.next().await.is_none());
        assert!(verdict.get().is_none());
    }
}
