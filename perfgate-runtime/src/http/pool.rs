//! The keep-alive pool of one worker's connections to the service.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::http::response::Parts;
use hyper::http::uri::Authority;
use hyper::{HeaderMap, Method, Uri};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::error::{lock, ErrorKind, ExchangeError};
use crate::http::budget::Bodies;
use crate::http::h1;
use crate::http::stream::Stream;
use crate::http::tls::{Alpn, Tls};

/// Connections of one worker to the service. Why not hyper-util's pool: it takes a keyed map and a
/// lock per request, scans its idle list on every checkout, and races a new connection against every
/// wait for an idle one, which under a burst opens thousands of connections and feeds the overload.
/// Here idle HTTP/1.1 connections are a stack (the most recently used first: warm, and as few as the
/// load needs), and a new one is opened only when none is idle. (With HTTP/2 the client shares one
/// connection to the pool's address instead.)
/// A stack never shrinks on its own, though: a service that stalls for a second at 1,000 requests/s
/// makes the pool open a connection per waiting request, and kept, those hundreds of sockets and
/// their buffers would stay for the rest of the run, here and in the service, as a step in both
/// processes' memory that a soak's leak check would see. So a connection left unused at the bottom
/// of the stack for [`IDLE_TIMEOUT`] is closed (the [`KEEP_IDLE`] most recent ones never are).
/// HTTP/1.1 goes through [`h1::Conn`], not hyper: the request's own future does the exchange.
pub(super) struct Pool {
    authority: Authority,
    /// `http` or `https`.
    scheme: &'static str,
    /// `host:port` to connect to.
    addr: String,
    /// Set for `https://`: every connection speaks TLS.
    tls: Option<Arc<Tls>>,
    /// The process's bound on buffered response bodies.
    bodies: Arc<Bodies>,
    /// Sent unless the scenario's headers carry their own.
    host: HeaderValue,
    user_agent: &'static HeaderValue,
    connect_timeout: Duration,
    /// The idle connections with when each was last returned: the most recent at the back, so
    /// the front holds the longest unused.
    idle: Mutex<VecDeque<(Instant, h1::Conn)>>,
}

/// How long an idle connection beyond the [`KEEP_IDLE`] most recently used is kept: past a stall
/// or a burst, the surplus goes within this time; a load that needs its connections uses them far
/// more often (longer than hyper-util's 90 s would hold a stall's sockets through most of a smoke
/// run).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle connections never closed for being unused: a few users with long think times reuse these.
const KEEP_IDLE: usize = 8;

/// At most this many connections closed when one is returned: the return ends a request, and
/// closing hundreds of sockets there would add to its latency.
const CLOSE_PER_RETURN: usize = 4;

impl Pool {
    /// None unless `base_url` is `http://host[:port]` or `https://host[:port]`.
    pub(super) fn new(
        base_url: &str,
        connect_timeout: Duration,
        user_agent: &'static HeaderValue,
        tls: &Arc<Tls>,
        bodies: &Arc<Bodies>,
    ) -> Option<Pool> {
        let uri: Uri = base_url.parse().ok()?;
        let (scheme, port, tls) = match uri.scheme_str() {
            Some("http") => ("http", 80, None),
            Some("https") => ("https", 443, Some(tls.clone())),
            _ => return None,
        };
        let authority = uri.authority()?.clone();
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(port)
        );
        Some(Pool {
            host: HeaderValue::from_str(authority.as_str()).ok()?,
            authority,
            scheme,
            addr,
            tls,
            bodies: bodies.clone(),
            user_agent,
            connect_timeout,
            idle: Mutex::new(VecDeque::new()),
        })
    }

    pub(super) fn serves(&self, uri: &Uri) -> bool {
        // The URL is usually built from the base URL, so the bytes match and one comparison of
        // them does; `Authority`'s own equality ignores case byte by byte (2% of a request's
        // instructions in a closed loop).
        uri.scheme_str() == Some(self.scheme)
            && uri
                .authority()
                .is_some_and(|a| a.as_str() == self.authority.as_str() || *a == self.authority)
    }

    /// A new connection to the service: TCP, and the TLS handshake offering `alpn` for `https://`,
    /// both within the connect timeout. Its time counts in the latency of the request that opens it.
    pub(super) async fn connect(&self, alpn: Alpn) -> std::result::Result<Stream, ExchangeError> {
        let deadline = Instant::now() + self.connect_timeout;
        let timed_out = |what: &str| {
            (
                ErrorKind::Connect,
                format!("client error (Connect): {what} timed out"),
            )
        };
        let stream = tokio::time::timeout_at(deadline, TcpStream::connect(&*self.addr))
            .await
            .map_err(|_| timed_out("connecting"))?
            .map_err(|e| (ErrorKind::Connect, format!("client error (Connect): {e}")))?;
        // Small requests must not wait for Nagle's algorithm: that would be measured as latency.
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Stream::Plain(stream));
        };
        let handshake = tls.handshake(stream, &self.authority, alpn);
        let stream = tokio::time::timeout_at(deadline, handshake)
            .await
            .map_err(|_| timed_out("the TLS handshake"))??;
        Ok(Stream::Tls(Box::new(stream)))
    }

    /// Sends the request over HTTP/1.1 and reads the whole response.
    pub(super) async fn exchange(
        &self,
        method: &Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> std::result::Result<(Parts, Bytes), ExchangeError> {
        let target = origin_form(&uri);
        let request = h1::Request::new(
            method,
            &target,
            &self.host,
            self.user_agent,
            &headers,
            &body,
        )?;
        let (mut conn, mut reused) = self.checkout().await?;
        // At most two passes: a reused connection that failed before any response byte (the
        // service had closed it) gets the request once more on a new connection, if that is safe.
        loop {
            match conn.exchange(&request, &self.bodies).await {
                Ok(response) => {
                    // Only a complete exchange returns its connection: one whose future was
                    // dropped mid-way (a timeout) is dropped with it.
                    if response.reusable {
                        self.checkin(conn);
                    }
                    return Ok((response.parts, response.body));
                }
                Err(failure) if reused && failure.retryable => {
                    conn = Box::pin(self.connect_h1()).await?;
                    reused = false;
                }
                Err(failure) => return Err(failure.error),
            }
        }
    }

    /// An idle connection that still looks open (and true), or a new one.
    async fn checkout(&self) -> std::result::Result<(h1::Conn, bool), ExchangeError> {
        // Bounded by the idle stack: each pass takes one connection off it, and drops it if the
        // service has closed it meanwhile.
        loop {
            let idle = lock(&self.idle).pop_back();
            let Some((_, mut conn)) = idle else { break };
            if conn.is_open() {
                return Ok((conn, true));
            }
        }
        Box::pin(self.connect_h1()).await.map(|c| (c, false))
    }

    /// Returns a connection to the top of the stack and closes up to [`CLOSE_PER_RETURN`] of those
    /// unused for [`IDLE_TIMEOUT`] at its bottom.
    fn checkin(&self, conn: h1::Conn) {
        let now = Instant::now();
        let mut surplus = Vec::new();
        {
            let mut idle = lock(&self.idle);
            idle.push_back((now, conn));
            while surplus.len() < CLOSE_PER_RETURN
                && idle.len() > KEEP_IDLE
                && idle
                    .front()
                    .is_some_and(|(at, _)| now.duration_since(*at) > IDLE_TIMEOUT)
            {
                surplus.extend(idle.pop_front());
            }
        }
        // Closed outside the lock: each is a system call.
        drop(surplus);
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        lock(&self.idle).len()
    }

    async fn connect_h1(&self) -> std::result::Result<h1::Conn, ExchangeError> {
        Ok(h1::Conn::new(self.connect(Alpn::Http1).await?))
    }
}

/// The origin-form request target (RFC 9112 §3.2.1): path and query, the path at least `/`.
fn origin_form(uri: &Uri) -> Cow<'_, str> {
    match uri.path_and_query() {
        Some(pq) if pq.as_str().starts_with('/') => Cow::Borrowed(pq.as_str()),
        _ => {
            let mut target = String::from(uri.path());
            if !target.starts_with('/') {
                target.insert(0, '/');
            }
            if let Some(query) = uri.query() {
                target.push('?');
                target.push_str(query);
            }
            Cow::Owned(target)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::budget::DEFAULT_MAX_BUFFERED;
    use crate::http::h1::tests::{bounded, listen, next_request, read_request};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncWriteExt as _;

    static USER_AGENT: HeaderValue = HeaderValue::from_static("perfgate/test");

    fn new_pool(addr: &str) -> Pool {
        Pool::new(
            &format!("http://{addr}"),
            Duration::from_secs(2),
            &USER_AGENT,
            &Arc::new(Tls::new(None)),
            &Bodies::new(DEFAULT_MAX_BUFFERED),
        )
        .expect("an http:// base URL")
    }

    async fn exchange(
        pool: &Pool,
        addr: &str,
        method: Method,
    ) -> Result<(Parts, Bytes), ExchangeError> {
        let uri = format!("http://{addr}/x").parse().unwrap();
        pool.exchange(&method, uri, HeaderMap::new(), Bytes::new())
            .await
    }

    /// A server whose connection number `i` runs `plan[i]`: a list of replies, `None` meaning
    /// "read the request, then close without answering"; the connection closes after its
    /// list. Returns the address and the count of accepted connections.
    async fn scripted(plan: Vec<Vec<Option<&'static [u8]>>>) -> (String, Arc<AtomicUsize>) {
        let (listener, addr) = listen().await;
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            for replies in plan {
                let (mut s, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    for reply in replies {
                        read_request(&mut s).await;
                        match reply {
                            Some(bytes) => s.write_all(bytes).await.unwrap(),
                            None => return,
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    const OK: Option<&[u8]> = Some(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");

    #[tokio::test]
    async fn an_idle_connection_the_peer_closed_is_discarded_at_checkout() {
        bounded(async {
            let (addr, accepted) = scripted(vec![vec![OK], vec![OK]]).await;
            let pool = new_pool(&addr);
            assert!(exchange(&pool, &addr, Method::GET).await.is_ok());
            // The server has closed connection 1; let the runtime see it.
            tokio::time::sleep(Duration::from_millis(100)).await;
            // A POST is never retried: only the liveness check can make it succeed.
            let (parts, body) = exchange(&pool, &addr, Method::POST).await.unwrap();
            assert_eq!((parts.status.as_u16(), &body[..]), (200, &b"ok"[..]));
            assert_eq!(accepted.load(Ordering::SeqCst), 2);
        })
        .await;
    }

    #[tokio::test]
    async fn a_reused_connection_dying_unanswered_retries_only_idempotent_requests() {
        bounded(async {
            // Connection 1 answers, then reads the next request and closes unanswered.
            let (addr, accepted) = scripted(vec![vec![OK, None], vec![OK]]).await;
            let pool = new_pool(&addr);
            assert!(exchange(&pool, &addr, Method::GET).await.is_ok());
            assert!(exchange(&pool, &addr, Method::GET).await.is_ok());
            assert_eq!(accepted.load(Ordering::SeqCst), 2);

            let (addr, accepted) = scripted(vec![vec![OK, None], vec![OK]]).await;
            let pool = new_pool(&addr);
            assert!(exchange(&pool, &addr, Method::POST).await.is_ok());
            let (kind, message) = exchange(&pool, &addr, Method::POST).await.unwrap_err();
            assert_eq!(kind, ErrorKind::Other);
            assert_eq!(
                message,
                "connection closed before the response was complete"
            );
            assert_eq!(accepted.load(Ordering::SeqCst), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn a_connection_whose_exchange_was_dropped_is_not_reused() {
        bounded(async {
            let (listener, addr) = listen().await;
            let accepted = Arc::new(AtomicUsize::new(0));
            let count = accepted.clone();
            tokio::spawn(async move {
                // Connection 1 sends half a response and stalls; connection 2 answers.
                let (mut s1, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                read_request(&mut s1).await;
                s1.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
                    .await
                    .unwrap();
                let (mut s2, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                read_request(&mut s2).await;
                s2.write_all(OK.unwrap()).await.unwrap();
                // Keep connection 1 open: a reuse would hang rather than fail fast.
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(s1);
            });
            let pool = new_pool(&addr);
            let cut = tokio::time::timeout(
                Duration::from_millis(200),
                exchange(&pool, &addr, Method::GET),
            )
            .await;
            assert!(cut.is_err(), "the first exchange should time out");
            let (_, body) = exchange(&pool, &addr, Method::GET).await.unwrap();
            assert_eq!(&body[..], b"ok");
            assert_eq!(accepted.load(Ordering::SeqCst), 2);
        })
        .await;
    }

    /// A server that holds the first answer of every connection until `together` requests wait,
    /// then answers each request, counting the connections the client closed.
    async fn holding(together: usize) -> (String, Arc<AtomicUsize>) {
        let (listener, addr) = listen().await;
        let barrier = Arc::new(tokio::sync::Barrier::new(together));
        let closed = Arc::new(AtomicUsize::new(0));
        let count = closed.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let (barrier, count) = (barrier.clone(), count.clone());
                tokio::spawn(async move {
                    let mut first = true;
                    while next_request(&mut s).await.is_some() {
                        if std::mem::take(&mut first) {
                            barrier.wait().await;
                        }
                        s.write_all(OK.unwrap()).await.unwrap();
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        (addr, closed)
    }

    #[tokio::test]
    async fn connections_a_stall_opened_are_closed_once_they_sit_unused() {
        let (addr, closed) = holding(20).await;
        let pool = Arc::new(new_pool(&addr));
        bounded(async {
            // 20 requests at once, as when the service stalled: a connection each.
            let mut all = tokio::task::JoinSet::new();
            for _ in 0..20 {
                let (pool, addr) = (pool.clone(), addr.clone());
                all.spawn(async move { exchange(&pool, &addr, Method::GET).await.is_ok() });
            }
            while let Some(ok) = all.join_next().await {
                assert!(ok.unwrap());
            }
            assert_eq!(pool.idle_count(), 20);
            // Recently used, every one stays.
            for _ in 0..3 {
                assert!(exchange(&pool, &addr, Method::GET).await.is_ok());
            }
            assert_eq!(pool.idle_count(), 20);
        })
        .await;

        // Past the idle timeout, each return closes a few of the unused, down to the floor.
        tokio::time::pause();
        tokio::time::advance(IDLE_TIMEOUT + Duration::from_secs(1)).await;
        tokio::time::resume();
        bounded(async {
            let mut counts = Vec::new();
            for _ in 0..4 {
                assert!(exchange(&pool, &addr, Method::GET).await.is_ok());
                counts.push(pool.idle_count());
            }
            assert_eq!(counts, [16, 12, KEEP_IDLE, KEEP_IDLE]);
            // The server sees them closed.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(closed.load(Ordering::SeqCst), 20 - KEEP_IDLE);
        })
        .await;
    }

    #[test]
    fn serves_its_own_address_in_any_case_and_nothing_else() {
        let pool = new_pool("Localhost:8080");
        let serves = |url: &str| pool.serves(&url.parse().unwrap());
        assert!(serves("http://Localhost:8080/x"));
        // Host names compare without case: the byte comparison is only the fast path.
        assert!(serves("http://LOCALHOST:8080/x?q=1"));
        assert!(!serves("http://localhost:8081/x"));
        assert!(!serves("https://localhost:8080/x"));
        assert!(!serves("http://127.0.0.1:8080/x"));
    }

    #[tokio::test]
    async fn connect_failures_are_connect_errors() {
        bounded(async {
            let (listener, addr) = listen().await;
            drop(listener);
            let pool = new_pool(&addr);
            let (kind, _) = exchange(&pool, &addr, Method::GET).await.unwrap_err();
            assert_eq!(kind, ErrorKind::Connect);
        })
        .await;
    }
}
