//! Accepting connections, with the limits that keep one client from taking
//! the server down (a "slowloris" holds connections open by sending headers
//! or a body a byte at a time; twenty thousand of them exhaust the file
//! descriptors and nothing else gets answered).
//!
//! - **Connection cap**: at most `max_connections` are served at once; past
//!   the cap a new connection is closed at once (and counted), so the ones
//!   being served keep their answers and `/health` keeps answering.
//! - **Header-read timeout**: a request head must arrive within
//!   `header_read_timeout` of the connection opening, or of the first byte
//!   of a next request on a keep-alive connection. The clock is kept here,
//!   not by hyper: hyper's timer also runs while a keep-alive connection
//!   waits for its next request, so it closed idle keep-alive connections
//!   after the header timeout instead of the idle timeout.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
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
            let clock = Arc::new(Clock::new(started));
            let io = TokioIo::new(Tracked { inner: stream, clock: clock.clone() });
            let mut builder = http1::Builder::new();
            builder.keep_alive(true).max_headers(1_000);
            let connection = builder.serve_connection(io, timed_service(router, clock.clone()));
            tokio::pin!(connection);
            let mut ticker = tokio::time::interval(tick_for(&limits));
            let mut closing = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!(%peer, %error, "connection ended with an error");
                        }
                        break;
                    }
                    _ = ticker.tick() => {
                        if clock.head_overdue(limits.header_read_timeout) {
                            // A head that never completes gets no answer:
                            // drop the connection (as hyper's own timer did).
                            tracing::debug!(%peer, "closing a connection whose request head did not arrive in time");
                            break;
                        }
                        if !closing && clock.idle() >= limits.idle_timeout {
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

/// How often a connection checks its clocks: fine enough for the shorter
/// of the two timeouts, never busier than every 10 ms.
fn tick_for(limits: &ConnectionLimits) -> Duration {
    (limits.idle_timeout.min(limits.header_read_timeout) / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// The router, with the head clock stopped when hyper hands it a complete
/// request head and armed again once the answer is ready.
fn timed_service(router: Router, clock: Arc<Clock>) -> impl hyper::service::Service<hyper::Request<hyper::body::Incoming>, Response = axum::response::Response, Error = std::convert::Infallible, Future: Send> + Clone {
    let inner = TowerToHyperService::new(router);
    hyper::service::service_fn(move |request| {
        clock.head_complete();
        let answer = hyper::service::Service::call(&inner, request);
        let clock = clock.clone();
        async move {
            let response = answer.await;
            clock.awaiting_next_request();
            response
        }
    })
}

/// Milliseconds since the server started, the unit of every [`Clock`] field.
fn millis_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
}

/// One connection's clocks: when it last moved a byte (idle timeout) and
/// since when it has been reading a request head (header-read timeout).
/// Shared by the stream, the service and the connection's task, so atomics.
struct Clock {
    started: Instant,
    last_activity: AtomicU64,
    /// When the head being read began; `NO_HEAD` while none is being read.
    head_since: AtomicU64,
    /// An answer was given and the next request has not sent a byte yet.
    between_requests: AtomicBool,
}

const NO_HEAD: u64 = u64::MAX;

impl Clock {
    /// A new connection is reading its first head from the moment it opens.
    fn new(started: Instant) -> Self {
        let now = millis_since(started);
        Clock { started, last_activity: AtomicU64::new(now), head_since: AtomicU64::new(now), between_requests: AtomicBool::new(false) }
    }

    fn moved_bytes(&self) {
        self.last_activity.store(millis_since(self.started), Ordering::Relaxed);
    }

    /// Bytes arrived: the first ones after an answer start the next head.
    fn read_bytes(&self) {
        self.moved_bytes();
        if self.between_requests.swap(false, Ordering::Relaxed) {
            self.head_since.store(millis_since(self.started), Ordering::Relaxed);
        }
    }

    fn head_complete(&self) {
        self.between_requests.store(false, Ordering::Relaxed);
        self.head_since.store(NO_HEAD, Ordering::Relaxed);
    }

    fn awaiting_next_request(&self) {
        self.between_requests.store(true, Ordering::Relaxed);
    }

    fn head_overdue(&self, limit: Duration) -> bool {
        let since = self.head_since.load(Ordering::Relaxed);
        since != NO_HEAD && Duration::from_millis(millis_since(self.started).saturating_sub(since)) >= limit
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(millis_since(self.started).saturating_sub(self.last_activity.load(Ordering::Relaxed)))
    }
}

/// A stream that tells its connection's [`Clock`] when bytes move.
struct Tracked {
    inner: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.read_bytes();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.moved_bytes();
        }
        result
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.moved_bytes();
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
