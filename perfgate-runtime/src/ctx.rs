//! The scenario API: [`Ctx`], what a scenario gets for each iteration, and the request and response
//! it sends and checks.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Method, StatusCode, Uri};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{lock, Error, ErrorKind, Result};
use crate::http::{build_client, HttpClient, Transport};
use crate::record::Recorder;

/// Called after each request (and `ctx.time` step) with its series name and whether it was in the
/// measured window; the cost mode uses it to count each request in a window of its own.
pub(crate) type AfterRequest = Arc<dyn Fn(&str, bool) + Send + Sync>;

/// What the iterations of one worker share (one per worker thread, so its reference count and its
/// client's pool stay on one core).
pub(crate) struct Run {
    client: HttpClient,
    base_url: String,
    timeout: Duration,
    pub(crate) recorder: Arc<Recorder>,
    after_request: Option<AfterRequest>,
}

impl Run {
    /// `timeout`: the scenario's per-request timeout, also the connect timeout; `transport`: how
    /// the client speaks (HTTP/2, TLS).
    pub(crate) fn new(
        base_url: &str,
        timeout: Duration,
        transport: &Transport,
        recorder: Arc<Recorder>,
    ) -> Self {
        Run {
            client: build_client(base_url, timeout, transport),
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout,
            recorder,
            after_request: None,
        }
    }

    pub(crate) fn with_after_request(mut self, hook: AfterRequest) -> Self {
        self.after_request = Some(hook);
        self
    }

    fn after_request(&self, name: &str, measured: bool) {
        if let Some(hook) = &self.after_request {
            hook(name, measured);
        }
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
    /// `http://` or `https://` URL.
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
        self.run.after_request(name, self.measured);
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
        match &outcome {
            Ok(_) => record(elapsed, None),
            Err(e) => record(elapsed, Some(e)),
        }
        run.after_request(&name, ctx.measured);
        let (parts, body) = outcome?;
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
            name,
            ctx: ctx.clone(),
        })
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
