//! The HTTP/1.1 server loop under `ground::serve`: accepts connections, gives every request the
//! address it came from ([`ConnectInfo`]), and bounds each connection in time: headers (and the
//! wait for the next request on a kept-alive connection) within [`HttpTimeouts::headers`], and an
//! answer the client takes no byte of for [`HttpTimeouts::write_stall`] ends it. Request bodies
//! are bounded by `body_timeout`, a layer of the router.
//!
//! `axum::serve` sets no timer on hyper, so it has neither bound: this is that loop with them.
//!
//! With a [`TlsConfig`] every connection is HTTPS: the handshake runs in the connection's own
//! task (never in the accept loop), within the headers' bound, and each request carries
//! [`OverTls`], so the session cookie is `Secure`.
//!
//! Each request also carries [`Closing`]: an answer that streams for as long as the client
//! listens (an execution's server-sent events) ends when the server stops, so that stopping,
//! which waits for every answer under way, is not held open by a listener.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Sleep;
use tower::Service;

use super::tls::TlsConfig;
use crate::config::HttpTimeouts;

/// Marks a request that came over the ground's own TLS (a request extension).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OverTls;

/// Becomes `true` when the server stops (a request extension): a streaming answer ends then.
#[derive(Debug, Clone)]
pub(crate) struct Closing(pub(crate) watch::Receiver<bool>);

impl Closing {
    /// Completes once the server stops; never, for a request not served by [`serve`] (a test's
    /// `oneshot`).
    pub(crate) async fn wait(mut self) {
        if self.0.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown` completes; then
/// stops accepting, lets every open connection finish the request it is serving, and returns
/// when all have closed.
pub(crate) async fn serve(
    app: Router,
    listener: TcpListener,
    timeouts: HttpTimeouts,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server_config()));
    let (closing_tx, closing_rx) = watch::channel(false);
    // Every connection task holds a sender; `recv` answers `None` once all have ended.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let closing = closing_rx.clone();
        let open = open_tx.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let io = StallGuard::new(stream, timeouts.write_stall);
            match acceptor {
                None => serve_connection(app, io, remote, timeouts, false, closing).await,
                Some(acceptor) => {
                    // A client that never finishes its handshake is bounded like one that
                    // never sends its headers.
                    match tokio::time::timeout(timeouts.headers, acceptor.accept(io)).await {
                        Ok(Ok(tls)) => {
                            serve_connection(app, tls, remote, timeouts, true, closing).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                }
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    drop(open_tx);
    let _ = open_rx.recv().await;
    Ok(())
}

async fn serve_connection<I>(
    app: Router,
    io: I,
    remote: SocketAddr,
    timeouts: HttpTimeouts,
    over_tls: bool,
    mut closing: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stopping = Closing(closing.clone());
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        req.extensions_mut().insert(stopping.clone());
        if over_tls {
            req.extensions_mut().insert(OverTls);
        }
        let mut app = app.clone();
        async move { Service::call(&mut app, req.map(Body::new)).await }
    });
    let io = TokioIo::new(io);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.headers)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = async {
            let _ = closing.wait_for(|c| *c).await;
        } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%remote, error = %e, "connection ended");
    }
}

/// What to do when `accept` fails: a connection that went away before it was accepted is
/// nothing; anything else (out of file descriptors) is logged and waited out a moment rather
/// than retried in a tight loop.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting an HTTP connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// A connection whose writes fail once the client has taken no byte for `limit`: an answer
/// the client does not read cannot hold the connection for ever. Reads pass through (hyper
/// bounds headers, `body_timeout` bodies).
struct StallGuard {
    io: TcpStream,
    limit: Duration,
    /// Running while a write (or flush) waits on the client.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl StallGuard {
    fn new(io: TcpStream, limit: Duration) -> StallGuard {
        StallGuard {
            io,
            limit,
            stalled: None,
        }
    }

    /// Passes `r` on, and on `Pending` fails once the stall has lasted `limit`.
    fn guard<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client took no byte of the answer for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.guard(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.guard(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.guard(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
