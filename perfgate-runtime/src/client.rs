//! The scenario context and its HTTP client.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::http::uri::Authority;
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::engine::Run;
use crate::error::{chain, lock, Error, ErrorKind, Result};
use crate::h1;

/// The only header the client adds on its own (besides Host and the body's length and type):
/// defaults such as `Accept-Encoding` change what a service does, so they are the scenario's call.
const USER_AGENT_VALUE: &str = concat!("perfgate/", env!("CARGO_PKG_VERSION"));
static USER_AGENT_HEADER: HeaderValue = HeaderValue::from_static(USER_AGENT_VALUE);

/// One worker's HTTP client. Requests to the service go through the worker's own pool of
/// connections to it; an absolute URL to another host goes through hyper's general client.
pub(crate) struct HttpClient {
    pool: Option<Pool>,
    other: Client<HttpConnector, Full<Bytes>>,
}

/// Why an exchange failed: the kind and what hyper or the OS said.
pub(crate) type ExchangeError = (ErrorKind, String);

/// A keep-alive pool over HTTP/1.1, or HTTP/2 with prior knowledge when `http2`.
pub(crate) fn build_client(base_url: &str, connect_timeout: Duration, http2: bool) -> HttpClient {
    let mut connector = HttpConnector::new();
    // Small requests must not wait for Nagle's algorithm: that would be measured as latency.
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(http2);
    HttpClient {
        pool: Pool::new(base_url, connect_timeout, http2),
        other: builder.build(connector),
    }
}

impl HttpClient {
    /// Sends the request and reads the whole response.
    pub(crate) async fn exchange(
        &self,
        method: &Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> std::result::Result<(hyper::http::response::Parts, Bytes), ExchangeError> {
        if let Some(pool) = self.pool.as_ref().filter(|p| p.serves(&uri)) {
            return pool.exchange(method, uri, headers, body).await;
        }
        let request = hyper_request(method, uri, headers, body);
        let response = self.other.request(request).await.map_err(|e| {
            let kind = if e.is_connect() {
                ErrorKind::Connect
            } else {
                ErrorKind::Other
            };
            (kind, chain(&e))
        })?;
        let (parts, body) = response.into_parts();
        Ok((parts, read_body(body).await?))
    }
}

async fn read_body(body: Incoming) -> std::result::Result<Bytes, ExchangeError> {
    match body.collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err((ErrorKind::Other, format!("reading the body: {}", chain(&e)))),
    }
}

/// Connections of one worker to the service. Why not hyper-util's pool: it takes a keyed map and a
/// lock per request, scans its idle list on every checkout, and races a new connection against every
/// wait for an idle one, which under a burst opens thousands of connections and feeds the overload.
/// Here idle HTTP/1.1 connections are a stack (the most recently used first: warm, and as few as the
/// load needs), a new one is opened only when none is idle, and HTTP/2 shares one connection.
/// HTTP/1.1 goes through [`h1::Conn`], not hyper: the request's own future does the exchange.
struct Pool {
    authority: Authority,
    /// `host:port` to connect to.
    addr: String,
    host: HeaderValue,
    http2: bool,
    connect_timeout: Duration,
    idle: Mutex<Vec<h1::Conn>>,
    h2: Mutex<Option<http2::SendRequest<Full<Bytes>>>>,
}

impl Pool {
    fn new(base_url: &str, connect_timeout: Duration, http2: bool) -> Option<Pool> {
        let uri: Uri = base_url.parse().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let authority = uri.authority()?.clone();
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        Some(Pool {
            host: HeaderValue::from_str(authority.as_str()).ok()?,
            authority,
            addr,
            http2,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
        })
    }

    fn serves(&self, uri: &Uri) -> bool {
        uri.scheme_str() == Some("http") && uri.authority() == Some(&self.authority)
    }

    async fn connect(&self) -> std::result::Result<TcpStream, ExchangeError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&*self.addr))
            .await
            .map_err(|_| {
                (
                    ErrorKind::Connect,
                    "client error (Connect): timed out".into(),
                )
            })?
            .map_err(|e| (ErrorKind::Connect, format!("client error (Connect): {e}")))?;
        // Small requests must not wait for Nagle's algorithm: that would be measured as latency.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn exchange(
        &self,
        method: &Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> std::result::Result<(hyper::http::response::Parts, Bytes), ExchangeError> {
        if self.http2 {
            // Boxed, like the connect path below: an HTTP/2 handshake is a large future, and
            // inlined it would make every request's future (moved at each await and spawn) larger.
            let request = hyper_request(method, uri, headers, body);
            return Box::pin(self.exchange_h2(request)).await;
        }
        let target = origin_form(&uri);
        let request = h1::Request::new(
            method,
            &target,
            &self.host,
            &USER_AGENT_HEADER,
            &headers,
            &body,
        )?;
        let (mut conn, mut reused) = self.checkout().await?;
        // At most two passes: a reused connection that failed before any response byte (the
        // service had closed it) gets the request once more on a new connection, if that is safe.
        loop {
            match conn.exchange(&request).await {
                Ok(response) => {
                    // Only a complete exchange returns its connection: one whose future was
                    // dropped mid-way (a timeout) is dropped with it.
                    if response.reusable {
                        lock(&self.idle).push(conn);
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
            let idle = lock(&self.idle).pop();
            let Some(conn) = idle else { break };
            if conn.is_open() {
                return Ok((conn, true));
            }
        }
        Box::pin(self.connect_h1()).await.map(|c| (c, false))
    }

    async fn connect_h1(&self) -> std::result::Result<h1::Conn, ExchangeError> {
        Ok(h1::Conn::new(self.connect().await?))
    }

    async fn exchange_h2(
        &self,
        request: Request<Full<Bytes>>,
    ) -> std::result::Result<(hyper::http::response::Parts, Bytes), ExchangeError> {
        let shared = lock(&self.h2).clone().filter(|s| !s.is_closed());
        let mut sender = match shared {
            Some(s) => s,
            None => {
                let io = TokioIo::new(self.connect().await?);
                let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| (ErrorKind::Connect, chain(&e)))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                *lock(&self.h2) = Some(sender.clone());
                sender
            }
        };
        sender
            .ready()
            .await
            .map_err(|e| (ErrorKind::Other, chain(&e)))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| (ErrorKind::Other, chain(&e)))?;
        let (parts, body) = response.into_parts();
        Ok((parts, read_body(body).await?))
    }
}

type StateMap = HashMap<TypeId, Box<dyn Any + Send>>;

/// What a scenario gets for each iteration: the HTTP client bound to the service, the iteration's
/// identity, a way to time any async step, and per-user state. Cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    run: Arc<Run>,
    iteration: u64,
    user: u64,
    /// Whether this iteration is in the measured window (warmup iterations record nothing).
    measured: bool,
    state: Arc<Mutex<StateMap>>,
}

pub(crate) type UserState = Arc<Mutex<StateMap>>;

pub(crate) fn new_state() -> UserState {
    Arc::new(Mutex::new(HashMap::new()))
}

impl Ctx {
    pub(crate) fn new(
        run: Arc<Run>,
        iteration: u64,
        user: u64,
        measured: bool,
        state: UserState,
    ) -> Self {
        Ctx {
            run,
            iteration,
            user,
            measured,
            state,
        }
    }

    pub(crate) fn measured(&self) -> bool {
        self.measured
    }

    pub fn get(&self, path: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    pub fn put(&self, path: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::PUT, path)
    }

    pub fn patch(&self, path: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::PATCH, path)
    }

    pub fn delete(&self, path: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// A request with any method. `path` is relative to the base URL (`/items/42`), or an absolute
    /// `http://` URL.
    pub fn request(&self, method: Method, path: impl AsRef<str>) -> RequestBuilder {
        RequestBuilder {
            ctx: self.clone(),
            method,
            target: path.as_ref().to_owned(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            name: None,
            timeout: None,
            error: None,
        }
    }

    /// The service's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> &str {
        &self.run.base_url
    }

    /// Number of this iteration in the run (warmup included), unique, from 0. In the open models it
    /// is the start's index in the schedule; in the closed model the numbers are roughly in start
    /// order (each worker thread numbers its own iterations, interleaved with the others').
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// The virtual user running this iteration: 0..users in the closed model. In the open models each
    /// iteration is an independent arrival, so this is the iteration index.
    pub fn user(&self) -> u64 {
        self.user
    }

    /// This user's state of type `T` (created with `Default` on first use). It persists across the
    /// iterations of one user in the closed model (a session token, a cart); in the open models it is
    /// fresh for every iteration. A closure rather than a guard, so it cannot be held across an await.
    pub fn with_state<T: Default + Send + 'static, R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut map = lock(&self.state);
        let slot = map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()));
        f(slot
            .downcast_mut::<T>()
            .expect("state stored under its own TypeId"))
    }

    /// Times any async step (a database call, a gRPC call) into the series `name`. The time counts
    /// whatever the future returns; errors it returns are the scenario's to propagate.
    pub async fn time<T>(&self, name: &str, fut: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = fut.await;
        if self.measured {
            self.run.recorder.request(name, start.elapsed(), None);
        }
        out
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("base_url", &self.run.base_url)
            .field("iteration", &self.iteration)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A request being built; nothing is sent before [`send`](RequestBuilder::send).
#[must_use = "a request does nothing until `.send().await`"]
pub struct RequestBuilder {
    ctx: Ctx,
    method: Method,
    target: String,
    headers: HeaderMap,
    body: Bytes,
    name: Option<String>,
    timeout: Option<Duration>,
    /// A builder mistake (bad header, unserialisable body), reported by `send`.
    error: Option<Error>,
}

impl RequestBuilder {
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        let (name, value) = (name.as_ref(), value.as_ref());
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => self.fail(Error::new(
                ErrorKind::Other,
                format!("invalid header `{name}: {value}`"),
            )),
        }
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// A JSON body; sets `content-type: application/json` unless already set.
    pub fn json(mut self, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(v) => {
                self.body = v.into();
                if !self.headers.contains_key(CONTENT_TYPE) {
                    self.headers
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
            }
            Err(e) => self.fail(Error::new(
                ErrorKind::Other,
                format!("cannot serialise the JSON body: {e}"),
            )),
        }
        self
    }

    /// The series this request is recorded in. Default: method and path template (`GET /items/{id}`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Overrides the scenario's per-request timeout for this request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn fail(&mut self, e: Error) {
        self.error.get_or_insert(e);
    }

    /// Sends the request and reads the whole body (so the time includes it). Any status is `Ok`:
    /// use [`Response::expect_status`] to check it.
    pub async fn send(self) -> Result<Response> {
        let RequestBuilder {
            ctx,
            method,
            target,
            headers,
            body,
            name,
            timeout,
            error,
        } = self;
        let name = name.unwrap_or_else(|| default_name(&method, &target));
        let run = &ctx.run;
        let record = |elapsed: Duration, e: Option<&Error>| {
            if ctx.measured {
                run.recorder.request(&name, elapsed, e);
            }
        };
        let uri = match error {
            Some(e) => Err(e),
            None => parse_url(&run.base_url, &target),
        };
        let uri = match uri {
            Ok(r) => r,
            Err(e) => {
                record(Duration::ZERO, Some(&e));
                return Err(e);
            }
        };
        // The URL is spelled out only for an error message, not on every request.
        let url = Lazy(|| full_url(&run.base_url, &target));
        let timeout = timeout.unwrap_or(run.timeout);
        let start = Instant::now();
        // Boxed: the exchange is a future of a few KB, which `timeout` and every await up to the
        // iteration would otherwise copy; one allocation costs less than those copies (profiled).
        let exchange = Box::pin(async {
            run.client
                .exchange(&method, uri, headers, body)
                .await
                .map_err(|(kind, detail)| Error::new(kind, format!("{method} {url}: {detail}")))
        });
        let outcome = match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{method} {url}: no complete response within {}",
                    crate::format::format_ms(timeout.as_secs_f64() * 1000.0)
                ),
            )),
        };
        let elapsed = start.elapsed();
        match outcome {
            Ok((parts, body)) => {
                record(elapsed, None);
                Ok(Response {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                    name,
                    ctx: ctx.clone(),
                })
            }
            Err(e) => {
                record(elapsed, Some(&e));
                Err(e)
            }
        }
    }
}

/// The request's absolute URL.
fn parse_url(base_url: &str, target: &str) -> Result<Uri> {
    // From the String itself: no copy of the URL on every request.
    Uri::try_from(full_url(base_url, target)).map_err(|e| {
        let url = full_url(base_url, target);
        Error::new(ErrorKind::Other, format!("invalid URL `{url}`: {e}"))
    })
}

/// The request as hyper takes it (HTTP/2, and other hosts).
fn hyper_request(
    method: &Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    if !request.headers().contains_key(USER_AGENT) {
        request
            .headers_mut()
            .insert(USER_AGENT, USER_AGENT_HEADER.clone());
    }
    request
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

fn full_url(base_url: &str, target: &str) -> String {
    if target.starts_with("http://") || target.starts_with("https://") {
        target.to_owned()
    } else {
        let base = base_url.trim_end_matches('/');
        let slash = if target.starts_with('/') { "" } else { "/" };
        let mut url = String::with_capacity(base.len() + slash.len() + target.len());
        url.push_str(base);
        url.push_str(slash);
        url.push_str(target);
        url
    }
}

/// Displays what a closure returns, computed only when displayed.
struct Lazy<F>(F);

impl<F: Fn() -> String> std::fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&(self.0)())
    }
}

/// A complete response (the body has been read).
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    name: String,
    ctx: Ctx,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.status.as_u16()
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A header's value, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// The series this request was recorded in.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Ok(self)` when the status is `expected`; otherwise a [`ErrorKind::Status`] error, also counted
    /// against this request's series.
    pub fn expect_status(self, expected: u16) -> Result<Response> {
        if self.status.as_u16() == expected {
            return Ok(self);
        }
        let mut message = format!(
            "{}: expected status {expected}, got {}",
            self.name,
            self.status.as_u16()
        );
        let snippet = String::from_utf8_lossy(&self.body[..self.body.len().min(120)]);
        let snippet = snippet.trim();
        if !snippet.is_empty() {
            let _ = write!(message, " ({snippet})");
        }
        let e = Error::new(ErrorKind::Status, message);
        if self.ctx.measured {
            self.ctx.run.recorder.request_failed(&self.name, &e);
        }
        Err(e)
    }

    /// The body as JSON; a body that does not decode is a [`ErrorKind::Check`] error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::check(format!("{}: invalid JSON body: {e}", self.name)))
    }

    /// The body as UTF-8 text; invalid UTF-8 is a [`ErrorKind::Check`] error.
    pub fn text(&self) -> Result<String> {
        std::str::from_utf8(&self.body)
            .map(str::to_owned)
            .map_err(|e| Error::check(format!("{}: body is not UTF-8: {e}", self.name)))
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("name", &self.name)
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// `GET /items/{id}`: the method and the path with identifiers (numbers, UUIDs, long hex strings)
/// replaced, query and fragment dropped, so one endpoint is one series whatever ids it is called with.
pub(crate) fn default_name(method: &Method, target: &str) -> String {
    let path = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut name = String::with_capacity(method.as_str().len() + 1 + path.len());
    name.push_str(method.as_str());
    name.push(' ');
    if !path.starts_with('/') {
        name.push('/');
    }
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            name.push('/');
        }
        name.push_str(if is_id(segment) { "{id}" } else { segment });
    }
    name
}

fn is_id(segment: &str) -> bool {
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let uuid = segment.len() == 36
        && segment.split('-').map(str::len).eq([8, 4, 4, 4, 12])
        && segment.split('-').all(hex);
    !segment.is_empty()
        && (segment.bytes().all(|b| b.is_ascii_digit())
            || uuid
            || (segment.len() >= 16 && hex(segment)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_template_identifiers() {
        let get = Method::GET;
        assert_eq!(default_name(&get, "/items/42"), "GET /items/{id}");
        assert_eq!(default_name(&get, "/items/42?full=1#x"), "GET /items/{id}");
        assert_eq!(
            default_name(&get, "items/7/reviews"),
            "GET /items/{id}/reviews"
        );
        assert_eq!(
            default_name(
                &Method::POST,
                "/cart/550e8400-e29b-41d4-a716-446655440000/pay"
            ),
            "POST /cart/{id}/pay"
        );
        assert_eq!(
            default_name(&get, "/blobs/5f2b9c7e8a1d4e3f9b0c"),
            "GET /blobs/{id}"
        );
        assert_eq!(default_name(&get, "/v2/cafe"), "GET /v2/cafe");
        assert_eq!(
            default_name(&get, "http://host:8080/users/9?x"),
            "GET /users/{id}"
        );
        assert_eq!(default_name(&get, "http://host:8080"), "GET /");
        assert_eq!(default_name(&get, "/"), "GET /");
        assert_eq!(default_name(&get, ""), "GET /");
    }
}
