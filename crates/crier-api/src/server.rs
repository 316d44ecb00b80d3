//! The HTTP server: accepts TCP connections and serves the router on them over HTTP/1.1, with
//! the limits `axum::serve` does not set.
//!
//! - **Header read timeout.** A request's head must arrive within `header_read_timeout`, or the
//!   connection is closed. hyper starts this timer whenever it waits for a head, so it also
//!   bounds how long a kept-alive connection may sit between requests.
//! - **Connection cap.** At most `max_connections` connections are served at once. At the cap
//!   the server stops accepting: new connections wait in the kernel's listen backlog (they are
//!   not refused) until a served one closes, which the timeouts guarantee happens.
//! - **Connections per address.** One client address (an IPv4 address, an IPv6 /64) holds at
//!   most `max_connections_per_address` of them (by default [`MAX_CONNECTIONS_PER_ADDRESS`],
//!   an eighth of the cap); past it a new connection from that address is answered `429` at
//!   once and closed, so one client cannot take every slot. Peers in `uncapped_peers` (the
//!   trusted proxies and loopback, through which every client comes) are not counted.
//! - **Idle timeout.** A connection on which no byte moved either way for `idle_timeout` is
//!   closed: a client that stalls in the middle of a body, or stops reading a response. A
//!   handler that works longer than this without the client sending or reading anything is cut
//!   off too, so keep it above the slowest handler (outgoing calls time out at 15 s).
//! - **A slow body.** A request body must arrive at `body_min_rate` on average once
//!   `body_grace` has passed (by default [`BODY_MIN_RATE`] and [`BODY_GRACE`]): past that, reading it fails with [`BodyTooSlow`] (the handler
//!   answers `400`) and the connection closes after the answer. The idle timeout alone let a
//!   client hold a connection slot for weeks by sending one byte a minute, and the whole
//!   server with 1,024 of them.
//! - **A slow reader.** An answer the client reads slower than `send_min_rate` on average, over
//!   the time the server waited for it to read (its writes blocked on a full socket), is cut
//!   off once `send_grace` of such waiting has passed (by default [`SEND_MIN_RATE`] and
//!   [`SEND_GRACE`]). The idle timeout alone let a client hold a connection for days by
//!   reading a large answer (a media file) a few bytes a minute.
//! - **A body left unread.** A handler that answers without reading the whole request body (a
//!   `401` to a POST without a key, a `413`) gives it back: beside the answer, the server reads
//!   the rest, up to [`LINGER_BYTES`] and [`LINGER_TIME`], so the connection can serve the
//!   client's next request. A declared rest past that bound, or a client waiting for
//!   `100 Continue`, gets `Connection: close` on the answer instead. hyper alone would close
//!   the connection without a word whenever the body's rest had not arrived yet, and a pooled
//!   client's next request on it (an MCP SDK's discovery after its first `401`) failed with
//!   "server disconnected". A request whose connection ends after it anyway (`Connection:
//!   close`, HTTP/1.0) is not read on. Still ending the connection after the answer without
//!   notice, because it could not be known in time: a chunked body that turns out longer than
//!   the bound, and a rest that takes longer than [`LINGER_TIME`] to arrive.
//! - **Graceful shutdown with a deadline.** On shutdown the listener closes, connections finish
//!   the request they are serving, and whatever is still open after `shutdown_grace` is closed.
//!
//! HTTP/2 is not served: a cleartext HTTP/2 connection would escape the header read timeout,
//! which hyper applies to HTTP/1 only; put a proxy in front for HTTP/2 or TLS.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Version, header};
use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

/// The server's limits; see the module documentation.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
    /// How long a request body may take before `body_min_rate` (bytes a second, on average
    /// since its reading began) applies to it.
    pub body_grace: Duration,
    pub body_min_rate: u64,
    /// How long the server may wait in all for a client to read its answers before
    /// `send_min_rate` (bytes a second, on average over that waiting) applies.
    pub send_grace: Duration,
    pub send_min_rate: u64,
    /// Connections one client address may hold at once.
    pub max_connections_per_address: usize,
    /// Peers whose connections are not counted per address (proxies every client comes
    /// through).
    pub uncapped_peers: Vec<ipnet::IpNet>,
}

/// By default, connections one client address may hold at once: an eighth of the default
/// cap.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 128;

/// Loopback, whose connections are not counted per address by default: a proxy on the same
/// machine is every client's address.
pub fn loopback() -> Vec<ipnet::IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .map(|n| n.parse().expect("a valid network"))
        .collect()
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            body_grace: BODY_GRACE,
            body_min_rate: BODY_MIN_RATE,
            send_grace: SEND_GRACE,
            send_min_rate: SEND_MIN_RATE,
            max_connections_per_address: MAX_CONNECTIONS_PER_ADDRESS,
            uncapped_peers: loopback(),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains connections for at
/// most `config.shutdown_grace`. Each request carries the peer address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let per_address = PerAddress::new(
        config.max_connections_per_address.max(1),
        config.uncapped_peers.clone(),
    );
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        // Take a slot before accepting: at the cap, new connections wait in the backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(held) = per_address.take(peer.ip()) else {
            tracing::debug!(peer = %peer, "too many connections from this address");
            refuse_crowded(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let router = router.clone();
        let pace = (config.body_grace, config.body_min_rate.max(1));
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            answer(router.clone(), req, pace)
        });
        let conn = graceful.watch(http.serve_connection(io, service));
        let idle = config.idle_timeout;
        let send_pace = (config.send_grace, config.send_min_rate.max(1));
        connections.spawn(async move {
            let _slot = slot;
            let _held = held;
            tokio::select! {
                served = conn => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, peer = %peer, "connection ended with an error");
                    }
                }
                () = activity.idle_for(idle) => {
                    tracing::debug!(peer = %peer, "closing an idle connection");
                }
                () = activity.reads_too_slowly(send_pace) => {
                    tracing::debug!(peer = %peer, "closing a connection that reads too slowly");
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown grace period; closing them"
        );
    }
    connections.shutdown().await;
}

/// The connections each client address holds.
#[derive(Clone)]
struct PerAddress {
    held: crier_core::tally::Tally<std::net::IpAddr>,
    cap: usize,
    uncapped: Arc<[ipnet::IpNet]>,
}

impl PerAddress {
    fn new(cap: usize, uncapped: Vec<ipnet::IpNet>) -> Self {
        Self {
            held: Default::default(),
            cap,
            uncapped: uncapped.into(),
        }
    }

    /// Counts a connection from `ip` (by [`crier_core::net::client_block`]) until the
    /// returned turn is dropped, or `Err` when its address holds the cap already. Connections
    /// from uncapped peers are not counted (`Ok(None)`).
    fn take(
        &self,
        ip: std::net::IpAddr,
    ) -> Result<Option<crier_core::tally::Turn<std::net::IpAddr>>, ()> {
        let ip = crier_core::net::canonical(ip);
        if self.uncapped.iter().any(|n| n.contains(&ip)) {
            return Ok(None);
        }
        self.held
            .take(crier_core::net::client_block(ip), self.cap)
            .map(Some)
            .ok_or(())
    }
}

/// Answers a connection past its address's cap with `429` (as much of it as the socket takes
/// at once: nothing waits on this client) and closes it.
fn refuse_crowded(stream: TcpStream) {
    let id = crier_core::ids::RequestId::generate();
    let body = format!(
        "{{\"error\":{{\"code\":\"rate_limited\",\"message\":\"Too many connections from this \
         address; close some before opening more.\",\"request_id\":\"{id}\"}}}}"
    );
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         x-request-id: {id}\r\nretry-after: 1\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// How much of a request body a handler left unread the server reads on, and for how long at
/// most, to keep the connection; see the module documentation.
pub const LINGER_BYTES: u64 = 256 * 1024;
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// By default, how long a request body may take before [`BODY_MIN_RATE`] applies, and the
/// average rate (bytes a second, since its reading began) it must keep after: a 1 MiB JSON
/// body may take 30 s + 128 s, a 100 MiB upload 3.6 hours.
pub const BODY_GRACE: Duration = Duration::from_secs(30);
pub const BODY_MIN_RATE: u64 = 8 * 1024;

/// By default, how long in all the server waits for a client to read before
/// [`SEND_MIN_RATE`] applies, and the average rate (bytes a second, over that waiting) it must
/// read at after: a 10 MiB media file may take 30 s + 85 minutes to a client that reads it
/// while the server waits. Answers the kernel's buffers take whole never wait.
pub const SEND_GRACE: Duration = Duration::from_secs(30);
pub const SEND_MIN_RATE: u64 = 2 * 1024;

/// Why reading a request body failed: it arrived slower than the server's minimum rate.
#[derive(Debug)]
pub struct BodyTooSlow {
    grace: Duration,
    min_rate: u64,
}

impl std::fmt::Display for BodyTooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the body arrived slower than {} bytes a second after the first {} seconds",
            self.min_rate,
            self.grace.as_secs_f64()
        )
    }
}

impl std::error::Error for BodyTooSlow {}

/// The router's answer to `req`. A body the handler dropped before its end comes back here.
/// If what is left is within [`LINGER_BYTES`], it is read to its end beside the answer (the
/// answer is not held back), and the connection serves the next request once it is;
/// otherwise, or if the client waits for `100 Continue` before sending it, the answer says
/// the connection closes after it.
async fn answer(
    router: Router,
    req: Request<Incoming>,
    (grace, min_rate): (Duration, u64),
) -> Result<axum::response::Response, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return router
            .oneshot(Request::from_parts(parts, Body::new(body)))
            .await;
    }
    let waits_for_continue = parts.headers.contains_key(header::EXPECT);
    let ends_anyway = parts.version < Version::HTTP_11 || asks_to_close(&parts.headers);
    let back = Arc::new(Mutex::new(None));
    let lent = Lent {
        body: Some(body),
        back: back.clone(),
        pace: Pace {
            grace,
            min_rate,
            began: None,
            received: 0,
            timer: None,
        },
    };
    let mut resp = router
        .oneshot(Request::from_parts(parts, Body::new(lent)))
        .await?;
    let unread = back.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(rest) = unread {
        if ends_anyway {
            // The client expects the close; reading on would only hold the connection.
            drop(rest);
        } else if waits_for_continue || rest.size_hint().lower() > LINGER_BYTES {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        } else {
            // Dropped before its end (past a bound), the body makes hyper close the
            // connection after the answer.
            tokio::spawn(async move {
                let mut rest = Body::new(rest).into_data_stream();
                crate::extract::drain(&mut rest, LINGER_BYTES, LINGER_TIME).await;
            });
        }
    }
    Ok(resp)
}

/// Whether a request's `Connection` header lists `close`.
fn asks_to_close(headers: &axum::http::HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"))
        })
    })
}

/// A request body lent to the router: dropped before its end, it goes back to `back`.
struct Lent {
    body: Option<Incoming>,
    back: Arc<Mutex<Option<Incoming>>>,
    pace: Pace,
}

/// How fast a body arrives: when its reading began, what arrived, and the timer of the moment
/// it falls below `min_rate` (made at the first wait: most bodies never wait).
struct Pace {
    grace: Duration,
    min_rate: u64,
    began: Option<Instant>,
    received: u64,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Pace {
    /// Whether the body, now waiting for bytes, has fallen below the rate (`cx` is woken when
    /// it would).
    fn too_slow(&mut self, cx: &mut Context<'_>) -> bool {
        let began = *self.began.get_or_insert_with(Instant::now);
        let due = began + self.grace + Duration::from_millis(self.received * 1000 / self.min_rate);
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

impl hyper::body::Body for Lent {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = &mut *self;
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        this.pace.began.get_or_insert_with(Instant::now);
        let polled = Pin::new(body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.pace.received += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            // At its end, or broken: nothing to give back.
            Poll::Ready(None | Some(Err(_))) => this.body = None,
            Poll::Pending => {
                if this.pace.too_slow(cx) {
                    // Not given back: the connection closes after the answer.
                    this.body = None;
                    let slow = BodyTooSlow {
                        grace: this.pace.grace,
                        min_rate: this.pace.min_rate,
                    };
                    return Poll::Ready(Some(Err(Box::new(slow))));
                }
            }
        }
        polled.map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(body) = self.body.take().filter(|b| !b.is_end_stream()) {
            *self.back.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
        }
    }
}

/// When a connection last moved a byte, in milliseconds since it was accepted, and how its
/// client keeps up with reading its answers.
#[derive(Clone)]
struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
    reading: Arc<Reading>,
}

/// How a client reads: the server waits on it from the moment a write finds the socket full
/// until everything it had to send is written (a flush). Over the connection's life it sums
/// the time of those waits and what was written during them.
#[derive(Default)]
struct Reading {
    /// When the wait under way began (ms since accepted), or [`NOT_WAITING`].
    since_ms: AtomicU64,
    /// The waits that ended, in all (ms).
    waited_ms: AtomicU64,
    /// Bytes written during waits.
    written: AtomicU64,
}

const NOT_WAITING: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        let reading = Reading::default();
        reading.since_ms.store(NOT_WAITING, Ordering::Relaxed);
        Self {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
            reading: Arc::new(reading),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A write of `n` bytes went out.
    fn wrote(&self, n: usize) {
        self.touch();
        if self.reading.since_ms.load(Ordering::Relaxed) != NOT_WAITING {
            self.reading.written.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// A write found the socket full: the server waits on the client.
    fn blocked(&self) {
        let r = &self.reading;
        if r.since_ms.load(Ordering::Relaxed) == NOT_WAITING {
            r.since_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// Everything the server had to send is written: the wait (if any) ends.
    fn flushed(&self) {
        let r = &self.reading;
        let since = r.since_ms.swap(NOT_WAITING, Ordering::Relaxed);
        if since != NOT_WAITING {
            let waited = self.now_ms().saturating_sub(since);
            r.waited_ms.fetch_add(waited, Ordering::Relaxed);
        }
    }

    /// Completes once the client has kept the server waiting longer than `grace` plus the
    /// time what it read during the waits takes at `min_rate`, while a wait is under way.
    async fn reads_too_slowly(&self, (grace, min_rate): (Duration, u64)) {
        let r = &self.reading;
        loop {
            let since = r.since_ms.load(Ordering::Relaxed);
            if since == NOT_WAITING {
                // Nothing waits: a wait that begins now is not due before `grace` has passed.
                tokio::time::sleep(grace).await;
                continue;
            }
            let allowed_ms = grace.as_millis() as u64
                + r.written.load(Ordering::Relaxed).saturating_mul(1000) / min_rate;
            let waited_ms = r.waited_ms.load(Ordering::Relaxed);
            // The wait under way may last until this (ms since accepted).
            let due = since + allowed_ms.saturating_sub(waited_ms);
            if self.now_ms() >= due && r.since_ms.load(Ordering::Relaxed) == since {
                return;
            }
            tokio::time::sleep_until(self.start + Duration::from_millis(due)).await;
        }
    }

    /// Completes once no byte has moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.last_ms.load(Ordering::Relaxed);
            tokio::time::sleep_until(self.start + Duration::from_millis(last) + limit).await;
            if self.last_ms.load(Ordering::Relaxed) == last {
                return;
            }
        }
    }
}

/// A stream that records its activity.
struct Watched {
    inner: TcpStream,
    activity: Activity,
}

impl Watched {
    fn written(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(n)) if *n > 0 => self.activity.wrote(*n),
            Poll::Pending => self.activity.blocked(),
            _ => {}
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.written(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.written(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // hyper flushes the socket once its own buffer is written.
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(polled, Poll::Ready(Ok(()))) {
            self.activity.flushed();
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
