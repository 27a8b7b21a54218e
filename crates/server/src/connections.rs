//! Accepting connections, with the limits that keep one client from taking
//! the server down (a "slowloris" holds connections open by sending headers
//! or a body a byte at a time; twenty thousand of them exhaust the file
//! descriptors and nothing else gets answered).
//!
//! - **Connection cap**: at most `max_connections` are served at once; past
//!   the cap a new connection is closed at once (and counted), so the ones
//!   being served keep their answers and `/health` keeps answering.
//! - **Header-read timeout**: the whole request head must arrive within
//!   `header_read_timeout` of the connection opening (hyper's timer).
//! - **Idle timeout**: a connection that neither sends nor receives a byte
//!   for `idle_timeout` (an idle keep-alive connection, a stalled body) is
//!   closed gracefully: a request in flight still gets its answer.
//! - The body-read timeout and the per-request timeout are applied to each
//!   request by the router (`lib.rs`).
//!
//! This is axum's `serve` loop plus those limits; axum's own gives no
//! header timer and no cap.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

/// Connection-level limits (every one a `serve` flag).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits { max_connections: 4096, header_read_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(60) }
    }
}

/// What the accept loop reports to the metrics.
pub trait ConnectionEvents: Send + Sync + 'static {
    fn opened(&self);
    fn closed(&self);
    fn refused(&self);
}

/// Serve `router` on `listener` until `shutdown` resolves, then stop
/// accepting, let every connection finish the request it is on (up to
/// `drain`), and return.
pub async fn serve(listener: TcpListener, router: Router, limits: ConnectionLimits, events: Arc<dyn ConnectionEvents>, shutdown: impl Future<Output = ()>, drain: Duration) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let mut last_refusal_log = None::<Instant>;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors (or a transient error): do not
                    // spin on accept; connections closing will free some.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            events.refused();
            if last_refusal_log.is_none_or(|at: Instant| at.elapsed() > Duration::from_secs(10)) {
                tracing::warn!(%peer, max_connections = limits.max_connections, "connection cap reached; closing new connections until some finish (`--max-connections`)");
                last_refusal_log = Some(Instant::now());
            }
            drop(stream);
            continue;
        };
        // Responses are small and latency-bound: never let Nagle hold one back.
        let _ = stream.set_nodelay(true);
        events.opened();
        let events = events.clone();
        let router = router.clone();
        let limits = limits.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let opened_at = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let activity = Arc::new(AtomicU64::new(opened_at));
            let io = TokioIo::new(Tracked { inner: stream, activity: activity.clone(), started });
            let mut builder = http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true).max_headers(1_000);
            let connection = builder.serve_connection(io, TowerToHyperService::new(router));
            tokio::pin!(connection);
            let mut ticker = tokio::time::interval(limits.idle_timeout.min(Duration::from_secs(1)).max(Duration::from_millis(10)));
            let mut closing = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!(%peer, %error, "connection ended with an error");
                        }
                        break;
                    }
                    _ = ticker.tick(), if !closing => {
                        let idle = started.elapsed().saturating_sub(Duration::from_millis(activity.load(Ordering::Relaxed)));
                        if idle >= limits.idle_timeout {
                            tracing::debug!(%peer, "closing an idle connection");
                            connection.as_mut().graceful_shutdown();
                            closing = true;
                        }
                    }
                    _ = stop.changed(), if !closing => {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
            events.closed();
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it is closed: wait for them all.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(drain, permits.acquire_many(all)).await.is_err() {
        tracing::warn!(seconds = drain.as_secs(), "some connections were still open after the drain period");
    }
    Ok(())
}

/// A stream that records when it last moved a byte (milliseconds since the
/// server started), for the idle timeout.
struct Tracked {
    inner: TcpStream,
    activity: Arc<AtomicU64>,
    started: Instant,
}

impl Tracked {
    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.store(now, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        result
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
