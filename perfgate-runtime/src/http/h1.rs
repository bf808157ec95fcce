//! A lean HTTP/1.1 client connection for the keep-alive pool to the service under test.
//!
//! Why not hyper here: its HTTP/1.1 client runs every connection as a task of its own and hands
//! each request to it over a channel, with a oneshot back for the response; in a closed loop that
//! machinery (tasks, wakers, channel, `Request` building) was about a fifth of the generator's CPU.
//! Here the request's own future writes the request and reads the response on the connection it
//! checked out of the pool. Message framing follows RFC 9112.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::sync::Arc;

use bytes::{Buf as _, Bytes, BytesMut};
use hyper::header::{
    GetAll, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING,
    USER_AGENT,
};
use hyper::http::response::Parts;
use hyper::{HeaderMap, Method, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::error::{ErrorKind, ExchangeError};
use crate::http::budget::{too_long_body, Bodies, Held, MAX_BODY};
use crate::http::stream::Stream;

/// Largest response head (status line and header fields) accepted; also bounds a trailer section.
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in one response head (hyper's default too).
const MAX_HEADERS: usize = 100;
/// Most interim (1xx) responses before the final one: a peer must not keep us looping.
const MAX_INTERIM: usize = 32;
/// Longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Spare room in the read buffer below which it grows before a read, and how much it grows by.
const MIN_SPARE: usize = 1024;
pub(crate) const READ_CHUNK: usize = 8 * 1024;
/// Most the read buffer grows by at once for a declared length: the rest comes as data arrives.
const MAX_RESERVE: usize = 1 << 20;

/// One request, borrowed from the caller for the exchange.
pub(crate) struct Request<'a> {
    method: &'a Method,
    target: &'a str,
    host: &'a HeaderValue,
    user_agent: &'a HeaderValue,
    headers: &'a HeaderMap,
    body: &'a [u8],
    /// The body goes chunked: the scenario set a Transfer-Encoding.
    chunked: bool,
    /// The client adds the Content-Length: there is a body and the scenario declared none.
    add_length: bool,
}

impl<'a> Request<'a> {
    /// `target` in origin-form (path and query); `host` and `user_agent` are sent unless `headers`
    /// (the scenario's) carry their own. Checked here, before a connection is taken for it.
    pub(crate) fn new(
        method: &'a Method,
        target: &'a str,
        host: &'a HeaderValue,
        user_agent: &'a HeaderValue,
        headers: &'a HeaderMap,
        body: &'a Bytes,
    ) -> Result<Request<'a>, ExchangeError> {
        // The body's framing is the client's to write, as hyper did: a scenario's Transfer-Encoding
        // makes it chunked (and drops its Content-Length); without a body it is dropped; a
        // Content-Length of the scenario's must match the body, or the stream would fall out of step.
        let chunked = !body.is_empty() && headers.contains_key(TRANSFER_ENCODING);
        let declared = if chunked {
            None
        } else {
            content_length(headers.get_all(CONTENT_LENGTH))
                .map_err(|e| other(format!("the request's {e}")))?
        };
        if let Some(n) = declared.filter(|&n| n != body.len() as u64) {
            return Err(other(format!(
                "the request's Content-Length ({n}) differs from its body's length ({})",
                body.len()
            )));
        }
        Ok(Request {
            method,
            target,
            host,
            user_agent,
            headers,
            body,
            chunked,
            add_length: declared.is_none() && !body.is_empty(),
        })
    }
}

/// A complete response.
pub(crate) struct Response {
    pub(crate) parts: Parts,
    pub(crate) body: Bytes,
    /// Whether the connection may carry another request.
    pub(crate) reusable: bool,
}

/// A failed exchange.
pub(crate) struct Failure {
    pub(crate) error: ExchangeError,
    /// Nothing of a response arrived, and the request was either not written at all or is
    /// idempotent: sending it again on another connection cannot do anything twice that matters.
    pub(crate) retryable: bool,
}

/// An HTTP/1.1 connection. If an [`exchange`](Conn::exchange) does not complete (an error, or its
/// future dropped), the stream is at an unknown point of a message: drop the connection. Generic over
/// the stream so that the fuzz harness can feed it from memory; the pool's is a [`Stream`].
pub(crate) struct Conn<S = Stream> {
    stream: S,
    read_buf: BytesMut,
    write_buf: Vec<u8>,
    /// Whether any byte of the current request was written, and any byte of a response read.
    wrote: bool,
    received: bool,
}

fn other(message: impl Into<String>) -> ExchangeError {
    (ErrorKind::Other, message.into())
}

fn closed_early() -> ExchangeError {
    other("connection closed before the response was complete")
}

impl Conn<Stream> {
    /// Whether an idle connection still looks usable (see [`Stream::is_open`]).
    pub(crate) fn is_open(&mut self) -> bool {
        self.stream.is_open()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// What the read buffer has allocated (the fuzz harness checks it stays bounded).
    #[cfg(any(test, feature = "fuzz"))]
    pub(crate) fn read_capacity(&self) -> usize {
        self.read_buf.capacity()
    }

    /// Wraps a connected stream (the caller has set TCP_NODELAY on it).
    pub(crate) fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            write_buf: Vec::with_capacity(512),
            wrote: false,
            received: false,
        }
    }

    /// Sends the request and reads the whole response.
    /// The body is counted against `bodies` (the process's bound on buffered bodies).
    pub(crate) async fn exchange(
        &mut self,
        req: &Request<'_>,
        bodies: &Arc<Bodies>,
    ) -> Result<Response, Failure> {
        debug_assert!(
            self.read_buf.is_empty(),
            "an idle connection holds no bytes"
        );
        self.wrote = false;
        self.received = false;
        let body = self.encode(req);
        let result = match self.write_request(body).await {
            Ok(()) => self.read_response(req, bodies).await,
            Err(e) => Err(other(format!("writing the request: {e}"))),
        };
        result.map_err(|error| Failure {
            error,
            retryable: !self.received && (!self.wrote || req.method.is_idempotent()),
        })
    }

    /// Writes the request head (and a chunked body) into the write buffer; returns the body still
    /// to be written after it.
    fn encode<'a>(&mut self, req: &Request<'a>) -> &'a [u8] {
        let (headers, body, chunked) = (req.headers, req.body, req.chunked);
        let w = &mut self.write_buf;
        w.clear();
        w.extend_from_slice(req.method.as_str().as_bytes());
        w.push(b' ');
        w.extend_from_slice(req.target.as_bytes());
        w.extend_from_slice(b" HTTP/1.1\r\n");
        if !headers.contains_key(HOST) {
            put_field(w, HOST.as_str(), req.host.as_bytes());
        }
        for (name, value) in headers {
            let framing = (*name == TRANSFER_ENCODING && body.is_empty())
                || (*name == CONTENT_LENGTH && chunked);
            if !framing {
                put_field(w, name.as_str(), value.as_bytes());
            }
        }
        if !headers.contains_key(USER_AGENT) {
            put_field(w, USER_AGENT.as_str(), req.user_agent.as_bytes());
        }
        if chunked {
            // A further field line appends to the list: chunked must be the final coding.
            if !last_token_is(headers.get_all(TRANSFER_ENCODING), b"chunked") {
                put_field(w, TRANSFER_ENCODING.as_str(), b"chunked");
            }
        } else if req.add_length {
            w.extend_from_slice(b"content-length: ");
            put_digits::<10>(w, body.len() as u64);
            w.extend_from_slice(b"\r\n");
        }
        w.extend_from_slice(b"\r\n");
        if !chunked {
            return body;
        }
        // One chunk and the last one: rare enough (a scenario asking for it) to copy the body.
        put_digits::<16>(w, body.len() as u64);
        w.extend_from_slice(b"\r\n");
        w.extend_from_slice(body);
        w.extend_from_slice(b"\r\n0\r\n\r\n");
        &[]
    }

    /// Writes the encoded head and then `body`, both in one syscall when the socket takes them.
    async fn write_request(&mut self, body: &[u8]) -> io::Result<()> {
        let head_len = self.write_buf.len();
        let total = head_len + body.len();
        let mut done = 0;
        while done < total {
            let n = if done >= head_len {
                self.stream.write(&body[done - head_len..]).await?
            } else if body.is_empty() {
                self.stream.write(&self.write_buf[done..]).await?
            } else {
                let slices = [IoSlice::new(&self.write_buf[done..]), IoSlice::new(body)];
                self.stream.write_vectored(&slices).await?
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.wrote = true;
            done += n;
        }
        // A TLS stream may hold the end of the request in its session when the socket was full.
        self.stream.flush().await
    }

    /// Reads more into the read buffer, making room for about `hint` bytes; false at EOF.
    async fn fill(&mut self, hint: usize) -> Result<bool, ExchangeError> {
        let want = hint.clamp(MIN_SPARE, MAX_RESERVE);
        if self.read_buf.capacity() - self.read_buf.len() < want {
            self.read_buf.reserve(want.max(READ_CHUNK));
        }
        match self.stream.read_buf(&mut self.read_buf).await {
            Ok(0) => Ok(false),
            Ok(_) => {
                self.received = true;
                Ok(true)
            }
            Err(e) => Err(other(format!("reading the response: {e}"))),
        }
    }

    async fn read_response(
        &mut self,
        req: &Request<'_>,
        bodies: &Arc<Bodies>,
    ) -> Result<Response, ExchangeError> {
        let mut interim = 0;
        let head = loop {
            match self.take_head()? {
                Some(head) if head.status == StatusCode::SWITCHING_PROTOCOLS => {
                    return Err(other("unexpected 101 Switching Protocols response"));
                }
                // 100 Continue, 103 Early Hints, ...: the final response follows.
                Some(head) if head.status.is_informational() => {
                    interim += 1;
                    if interim > MAX_INTERIM {
                        return Err(other(format!(
                            "more than {MAX_INTERIM} interim (1xx) responses"
                        )));
                    }
                }
                Some(head) => break head,
                None => {
                    if !self.fill(0).await? {
                        return Err(closed_early());
                    }
                }
            }
        };
        let Head {
            status,
            version,
            headers,
        } = head;

        let says = |token: &[u8]| has_token(headers.get_all(CONNECTION), token);
        let mut reusable = if version == Version::HTTP_11 {
            !says(b"close")
        } else {
            says(b"keep-alive") && !says(b"close")
        };
        // The service closes after answering a request that asked it to.
        if has_token(req.headers.get_all(CONNECTION), b"close") {
            reusable = false;
        }

        // RFC 9112 §6.3, in its order.
        let mut held = Held::default();
        let body = if *req.method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            Bytes::new()
        } else if headers.contains_key(TRANSFER_ENCODING) {
            // Both framings at once, or chunked in HTTP/1.0, is how responses get split: read this
            // one as the Transfer-Encoding says, then trust the connection no further.
            if headers.contains_key(CONTENT_LENGTH) || version != Version::HTTP_11 {
                reusable = false;
            }
            if last_token_is(headers.get_all(TRANSFER_ENCODING), b"chunked") {
                self.read_chunked(bodies, &mut held).await?
            } else {
                reusable = false;
                self.read_to_eof(bodies, &mut held).await?
            }
        } else if let Some(n) = content_length(headers.get_all(CONTENT_LENGTH)).map_err(other)? {
            if n > MAX_BODY {
                return Err(too_long_body());
            }
            held.grow_to(bodies, n)?;
            self.read_exact(n as usize).await?
        } else {
            reusable = false;
            self.read_to_eof(bodies, &mut held).await?
        };
        // Bytes past the response's end: the next response could not be told from them.
        if !self.read_buf.is_empty() {
            reusable = false;
        }

        let mut response = hyper::http::Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        let (parts, ()) = response.into_parts();
        Ok(Response {
            parts,
            body: held.attach(body),
            reusable,
        })
    }

    /// Parses a complete response head at the start of the read buffer and takes it off the
    /// buffer; `None` while incomplete. Header values share the buffer's memory (no copies).
    fn take_head(&mut self) -> Result<Option<Head>, ExchangeError> {
        // Nothing read yet (the usual state right after the request went out): no parse.
        if self.read_buf.is_empty() {
            return Ok(None);
        }
        let limit = self.read_buf.len().min(MAX_HEAD);
        // Offsets of each field's name and value in the head, so that the head can be split off
        // the buffer once httparse's borrow of it ends.
        let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
        let (len, code, minor, count) = {
            // Left uninitialised: httparse writes only the fields it finds. Filling all 100 first
            // was about 5% of a request's instructions in a closed loop (callgrind).
            let mut fields = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
            let mut raw = httparse::Response::new(&mut []);
            let buf = &self.read_buf[..limit];
            let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut raw,
                buf,
                &mut fields,
            );
            let len = match parsed {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if limit == MAX_HEAD => {
                    return Err(other("response head exceeds 64 KiB"));
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(other(format!(
                        "response has more than {MAX_HEADERS} header fields"
                    )));
                }
                Err(e) => return Err(other(format!("malformed response head: {e}"))),
            };
            let base = buf.as_ptr() as usize;
            // An empty slice may not point into the buffer: its span is empty wherever it is.
            let at = |s: &[u8]| {
                (s.as_ptr() as usize)
                    .checked_sub(base)
                    .filter(|&o| !s.is_empty() && o <= buf.len())
                    .unwrap_or(0) as u32
            };
            for (span, field) in spans.iter_mut().zip(raw.headers.iter()) {
                let (name, value) = (field.name.as_bytes(), field.value);
                *span = (
                    at(name),
                    at(name) + name.len() as u32,
                    at(value),
                    at(value) + value.len() as u32,
                );
            }
            // A complete parse has both; the defaults only keep this panic-free.
            (
                len,
                raw.code.unwrap_or(0),
                raw.version.unwrap_or(1),
                raw.headers.len(),
            )
        };
        let head = self.read_buf.split_to(len).freeze();
        let status = StatusCode::from_u16(code)
            .map_err(|_| other(format!("malformed response head: status code {code}")))?;
        let version = if minor == 0 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        let mut headers = HeaderMap::with_capacity(count);
        for &(ns, ne, vs, ve) in &spans[..count] {
            let name = HeaderName::from_bytes(&head[ns as usize..ne as usize]);
            let value = HeaderValue::from_maybe_shared(head.slice(vs as usize..ve as usize));
            match (name, value) {
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                _ => return Err(other("malformed response head: invalid header field")),
            }
        }
        Ok(Some(Head {
            status,
            version,
            headers,
        }))
    }

    async fn read_exact(&mut self, n: usize) -> Result<Bytes, ExchangeError> {
        while self.read_buf.len() < n {
            if !self.fill(n - self.read_buf.len()).await? {
                return Err(closed_early());
            }
        }
        Ok(self.read_buf.split_to(n).freeze())
    }

    async fn read_to_eof(
        &mut self,
        bodies: &Arc<Bodies>,
        held: &mut Held,
    ) -> Result<Bytes, ExchangeError> {
        while self.fill(0).await? {
            if self.read_buf.len() as u64 > MAX_BODY {
                return Err(too_long_body());
            }
            held.grow_to(bodies, self.read_buf.len() as u64)?;
        }
        Ok(self.read_buf.split().freeze())
    }

    /// Decodes a chunked body (RFC 9112 §7.1): extensions ignored, trailer fields read and dropped.
    async fn read_chunked(
        &mut self,
        bodies: &Arc<Bodies>,
        held: &mut Held,
    ) -> Result<Bytes, ExchangeError> {
        let mut body = BytesMut::new();
        loop {
            let end = self
                .line(MAX_CHUNK_LINE, "chunk-size line exceeds 4 KiB")
                .await?;
            let size = chunk_size(&self.read_buf[..end])?;
            self.read_buf.advance(end + 1);
            if size == 0 {
                break;
            }
            if body.len() as u64 + size > MAX_BODY {
                return Err(too_long_body());
            }
            held.grow_to(bodies, body.len() as u64 + size)?;
            let mut left = size as usize;
            body.reserve(left.min(MAX_RESERVE));
            while left > 0 {
                if self.read_buf.is_empty() && !self.fill(left).await? {
                    return Err(closed_early());
                }
                let n = left.min(self.read_buf.len());
                body.extend_from_slice(&self.read_buf[..n]);
                self.read_buf.advance(n);
                left -= n;
            }
            // The chunk's data ends with a line break.
            loop {
                match self.read_buf[..] {
                    [b'\r', b'\n', ..] => self.read_buf.advance(2),
                    [b'\n', ..] => self.read_buf.advance(1),
                    [] | [b'\r'] => {
                        if !self.fill(0).await? {
                            return Err(closed_early());
                        }
                        continue;
                    }
                    _ => return Err(other("chunk data longer than its declared size")),
                }
                break;
            }
        }
        // Trailer section: field lines up to an empty line, bounded like a head.
        let mut budget = MAX_HEAD;
        loop {
            let end = self.line(budget, "trailer section exceeds 64 KiB").await?;
            let empty = end == 0 || (end == 1 && self.read_buf[0] == b'\r');
            self.read_buf.advance(end + 1);
            budget -= end + 1;
            if empty {
                break;
            }
        }
        Ok(body.freeze())
    }

    /// The index of the next LF in the read buffer, reading until one comes within `limit` bytes
    /// (`too_long` otherwise).
    async fn line(&mut self, limit: usize, too_long: &str) -> Result<usize, ExchangeError> {
        // Only new bytes are searched: a line trickling in byte by byte costs linear time.
        let mut searched = 0;
        loop {
            let end = self.read_buf.len().min(limit);
            if let Some(i) = self.read_buf[searched..end]
                .iter()
                .position(|&b| b == b'\n')
            {
                return Ok(searched + i);
            }
            if end == limit {
                return Err(other(too_long));
            }
            searched = end;
            if !self.fill(0).await? {
                return Err(closed_early());
            }
        }
    }
}

/// A parsed response head.
struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
}

fn put_field(w: &mut Vec<u8>, name: &str, value: &[u8]) {
    w.extend_from_slice(name.as_bytes());
    w.extend_from_slice(b": ");
    w.extend_from_slice(value);
    w.extend_from_slice(b"\r\n");
}

/// `n` in base `RADIX` (10 or 16, lowercase hex), without leading zeros. A constant radix keeps
/// the division a multiplication.
fn put_digits<const RADIX: u64>(w: &mut Vec<u8>, mut n: u64) {
    // Room for u64::MAX in decimal.
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(n % RADIX) as usize];
        n /= RADIX;
        if n == 0 {
            break;
        }
    }
    w.extend_from_slice(&digits[i..]);
}

/// The list elements of all the field's lines, trimmed, empty ones skipped (RFC 9110 §5.6.1).
fn tokens<'a>(values: GetAll<'a, HeaderValue>) -> impl Iterator<Item = &'a [u8]> {
    values
        .into_iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn has_token(values: GetAll<'_, HeaderValue>, token: &[u8]) -> bool {
    tokens(values).any(|t| t.eq_ignore_ascii_case(token))
}

fn last_token_is(values: GetAll<'_, HeaderValue>, token: &[u8]) -> bool {
    tokens(values)
        .last()
        .is_some_and(|t| t.eq_ignore_ascii_case(token))
}

/// The Content-Length, if any: every value (lines, list elements) must be the same decimal.
fn content_length(values: GetAll<'_, HeaderValue>) -> Result<Option<u64>, String> {
    let mut found = None;
    for value in values {
        for t in value
            .as_bytes()
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
        {
            let n = (!t.is_empty() && t.len() <= 19 && t.iter().all(u8::is_ascii_digit))
                .then(|| t.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
                .ok_or_else(|| format!("invalid Content-Length `{}`", t.escape_ascii()))?;
            match found {
                Some(m) if m != n => {
                    return Err(format!("differing Content-Length values ({m}, {n})"))
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// A chunk-size line without its LF: hex digits, then optional whitespace and extensions.
fn chunk_size(line: &[u8]) -> Result<u64, ExchangeError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = line[digits..].trim_ascii_start();
    let bad = || other(format!("invalid chunk size line `{}`", line.escape_ascii()));
    if digits == 0 || !(rest.is_empty() || rest[0] == b';') || rest.contains(&b'\r') {
        return Err(bad());
    }
    // Leading zeros are allowed; anything above the body cap is refused by the caller.
    let significant = line[..digits].iter().skip_while(|&&b| b == b'0').count();
    if significant > 15 {
        return Err(other("chunk size exceeds 1 GiB"));
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| bad())?;
    u64::from_str_radix(hex, 16).map_err(|_| bad())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::http::budget::DEFAULT_MAX_BUFFERED;
    use std::future::Future;
    use std::time::Duration;
    use tokio::net::{TcpListener, TcpStream};

    /// Every test is bounded in time: a framing bug must fail, not hang.
    pub(in crate::http) async fn bounded<T>(f: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("test timed out")
    }

    pub(in crate::http) async fn listen() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        (listener, addr)
    }

    async fn connect(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Conn::new(Stream::Plain(stream))
    }

    /// Reads one request (head, and a body of its Content-Length) off the server's side.
    pub(in crate::http) async fn read_request(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
        next_request(stream).await.expect("request cut short")
    }

    /// [`read_request`], or None when the client closed the connection before a whole head.
    pub(in crate::http) async fn next_request(
        stream: &mut (impl AsyncRead + Unpin),
    ) -> Option<Vec<u8>> {
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                return None;
            }
            got.push(byte[0]);
        }
        let head = String::from_utf8(got.clone()).unwrap().to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0; len];
        stream.read_exact(&mut body).await.unwrap();
        got.extend_from_slice(&body);
        Some(got)
    }

    /// A server answering each request of one connection with the next of `replies`, then
    /// closing it.
    async fn canned(replies: Vec<Vec<u8>>) -> String {
        let (listener, addr) = listen().await;
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            for reply in replies {
                read_request(&mut stream).await;
                stream.write_all(&reply).await.unwrap();
            }
        });
        addr
    }

    struct Req {
        method: Method,
        target: &'static str,
        headers: HeaderMap,
        body: Bytes,
    }

    fn get() -> Req {
        Req {
            method: Method::GET,
            target: "/",
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    async fn send(conn: &mut Conn, req: &Req) -> Result<Response, Failure> {
        send_within(conn, req, &Bodies::new(DEFAULT_MAX_BUFFERED)).await
    }

    async fn send_within(
        conn: &mut Conn,
        req: &Req,
        bodies: &Arc<Bodies>,
    ) -> Result<Response, Failure> {
        let host = HeaderValue::from_static("svc:8080");
        let ua = HeaderValue::from_static("perfgate/test");
        let request = Request::new(&req.method, req.target, &host, &ua, &req.headers, &req.body)
            .map_err(|error| Failure {
                error,
                retryable: false,
            })?;
        conn.exchange(&request, bodies).await
    }

    async fn one(reply: &[u8], req: Req) -> Result<Response, Failure> {
        let addr = canned(vec![reply.to_vec()]).await;
        send(&mut connect(&addr).await, &req).await
    }

    /// The response to `req` from a server that sends `reply`; panics on a failed exchange.
    async fn answered(reply: &[u8], req: Req) -> Response {
        match one(reply, req).await {
            Ok(r) => r,
            Err(f) => panic!("expected a response, got: {}", f.error.1),
        }
    }

    fn error(r: Result<Response, Failure>) -> String {
        match r {
            Ok(r) => panic!("expected an error, got status {}", r.parts.status),
            Err(f) => {
                assert_eq!(f.error.0, ErrorKind::Other);
                f.error.1
            }
        }
    }

    #[test]
    fn numbers_in_decimal_and_hex() {
        let digits = |put: fn(&mut Vec<u8>, u64), n| {
            let mut w = Vec::new();
            put(&mut w, n);
            String::from_utf8(w).unwrap()
        };
        assert_eq!(digits(put_digits::<10>, 0), "0");
        assert_eq!(digits(put_digits::<10>, 1207), "1207");
        assert_eq!(digits(put_digits::<10>, u64::MAX), u64::MAX.to_string());
        assert_eq!(digits(put_digits::<16>, 0), "0");
        assert_eq!(digits(put_digits::<16>, 0xbeef), "beef");
        assert_eq!(digits(put_digits::<16>, u64::MAX), "ffffffffffffffff");
    }

    #[tokio::test]
    async fn empty_header_values_are_kept() {
        bounded(async {
            let r = answered(
                b"HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Blank:   \r\nContent-Length: 2\r\n\r\nok",
                get(),
            )
            .await;
            assert_eq!(r.parts.headers["x-empty"], "");
            assert_eq!(r.parts.headers["x-blank"], "");
            assert_eq!(&r.body[..], b"ok");
        })
        .await;
    }

    #[tokio::test]
    async fn content_length_body() {
        bounded(async {
            let r = answered(
                b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
                get(),
            )
            .await;
            assert_eq!(r.parts.status, 201);
            assert_eq!(r.parts.version, Version::HTTP_11);
            assert_eq!(r.parts.headers["x-a"], "b");
            assert_eq!(&r.body[..], b"hello");
            assert!(r.reusable);
        })
        .await;
    }

    #[tokio::test]
    async fn chunked_body_with_extension_and_trailers_arriving_in_pieces() {
        bounded(async {
            let (listener, addr) = listen().await;
            tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                read_request(&mut s).await;
                let pieces: [&[u8]; 5] = [
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;name=v",
                    b"al\r\nhel",
                    b"lo\r\n7\r\n, world\r\n1",
                    b"0\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n",
                    b"\r\n",
                ];
                for piece in pieces {
                    s.write_all(piece).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                read_request(&mut s).await;
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
                    .await
                    .unwrap();
            });
            let mut conn = connect(&addr).await;
            let r = send(&mut conn, &get()).await.ok().unwrap();
            assert_eq!(&r.body[..], b"hello, world0123456789abcdef");
            assert!(r.reusable);
            // The trailers were consumed: the next response parses from its first byte.
            let r = send(&mut conn, &get()).await.ok().unwrap();
            assert_eq!(&r.body[..], b"next");
        })
        .await;
    }

    #[tokio::test]
    async fn bodies_over_the_bound_fail_in_every_framing() {
        bounded(async {
            let kib = |n: usize| vec![b'x'; n * 1024];
            let mut length = b"HTTP/1.1 200 OK\r\nContent-Length: 122880\r\n\r\n".to_vec();
            length.extend(kib(120));
            let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..3 {
                chunked.extend_from_slice(b"a000\r\n");
                chunked.extend(kib(40));
                chunked.extend_from_slice(b"\r\n");
            }
            chunked.extend_from_slice(b"0\r\n\r\n");
            let mut to_eof = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
            to_eof.extend(kib(120));
            for reply in [length, chunked, to_eof] {
                let bodies = Bodies::new(100 * 1024);
                let addr = canned(vec![reply.clone()]).await;
                let failed = send_within(&mut connect(&addr).await, &get(), &bodies).await;
                let e = error(failed);
                assert!(e.contains("bound of 100KiB"), "{e}");
                assert_eq!(bodies.used(), 0);
                // Within a larger bound the same reply passes, counted until the body is dropped.
                let bodies = Bodies::new(200 * 1024);
                let addr = canned(vec![reply]).await;
                let r = send_within(&mut connect(&addr).await, &get(), &bodies)
                    .await
                    .ok()
                    .unwrap();
                assert_eq!(r.body.len(), 120 * 1024);
                assert_eq!(bodies.used(), 120 * 1024);
                drop(r);
                assert_eq!(bodies.used(), 0);
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_close_delimited_body_reads_to_eof_and_is_not_reusable() {
        bounded(async {
            let r = one(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", get())
                .await
                .ok()
                .unwrap();
            assert_eq!(&r.body[..], b"until the end");
            assert!(!r.reusable);
            // A Transfer-Encoding not ending in chunked is close-delimited too.
            let r = answered(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nraw",
                get(),
            )
            .await;
            assert_eq!(&r.body[..], b"raw");
            assert!(!r.reusable);
        })
        .await;
    }

    #[tokio::test]
    async fn head_reads_no_body_and_stays_reusable() {
        bounded(async {
            let addr = canned(vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec(),
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            ])
            .await;
            let mut conn = connect(&addr).await;
            let mut head = get();
            head.method = Method::HEAD;
            let r = send(&mut conn, &head).await.ok().unwrap();
            assert_eq!(r.parts.headers["content-length"], "1000");
            assert!(r.body.is_empty() && r.reusable);
            let r = send(&mut conn, &get()).await.ok().unwrap();
            assert_eq!(&r.body[..], b"ok");
        })
        .await;
    }

    #[tokio::test]
    async fn no_content_and_not_modified_have_no_body() {
        bounded(async {
            let addr = canned(vec![
                b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n".to_vec(),
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            ])
            .await;
            let mut conn = connect(&addr).await;
            let r = send(&mut conn, &get()).await.ok().unwrap();
            assert_eq!((r.parts.status.as_u16(), r.body.len()), (204, 0));
            assert!(r.reusable);
            let r = send(&mut conn, &get()).await.ok().unwrap();
            assert_eq!((r.parts.status.as_u16(), r.body.len()), (304, 0));
            assert!(r.reusable);
            let r = send(&mut conn, &get()).await.ok().unwrap();
            assert_eq!(&r.body[..], b"ok");
        })
        .await;
    }

    #[tokio::test]
    async fn interim_responses_are_skipped() {
        bounded(async {
            let r = answered(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
                  HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                get(),
            )
            .await;
            assert_eq!(r.parts.status, 200);
            assert!(!r.parts.headers.contains_key("link"));
            assert_eq!(&r.body[..], b"ok");
            assert!(r.reusable);
            let e = error(one(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", get()).await);
            assert!(e.contains("101"), "{e}");
        })
        .await;
    }

    #[tokio::test]
    async fn connection_close_is_not_reusable() {
        bounded(async {
            let r = answered(
                b"HTTP/1.1 200 OK\r\nConnection: foo, Close\r\nContent-Length: 2\r\n\r\nok",
                get(),
            )
            .await;
            assert_eq!(&r.body[..], b"ok");
            assert!(!r.reusable);
            // Nor is a connection whose request asked for the close.
            let mut req = get();
            req.headers
                .insert(CONNECTION, HeaderValue::from_static("close"));
            let r = one(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", req)
                .await
                .ok()
                .unwrap();
            assert!(!r.reusable);
        })
        .await;
    }

    #[tokio::test]
    async fn http_1_0_responses_keep_alive_only_when_they_say_so() {
        bounded(async {
            let r = one(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", get())
                .await
                .ok()
                .unwrap();
            assert_eq!(r.parts.version, Version::HTTP_10);
            assert_eq!(&r.body[..], b"ok");
            assert!(!r.reusable);
            let r = answered(
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
                get(),
            )
            .await;
            assert!(r.reusable);
        })
        .await;
    }

    #[tokio::test]
    async fn two_requests_on_one_connection() {
        bounded(async {
            let (listener, addr) = listen().await;
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut seen = Vec::new();
                for body in ["first", "second"] {
                    let req = read_request(&mut s).await;
                    seen.push(String::from_utf8(req).unwrap());
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    s.write_all(reply.as_bytes()).await.unwrap();
                }
                seen
            });
            let mut conn = connect(&addr).await;
            let mut req = get();
            req.target = "/one";
            assert_eq!(
                &send(&mut conn, &req).await.ok().unwrap().body[..],
                b"first"
            );
            req.target = "/two";
            assert_eq!(
                &send(&mut conn, &req).await.ok().unwrap().body[..],
                b"second"
            );
            let seen = server.await.unwrap();
            assert!(seen[0].starts_with("GET /one ") && seen[1].starts_with("GET /two "));
        })
        .await;
    }

    #[tokio::test]
    async fn malformed_heads_are_errors() {
        bounded(async {
            let e = error(one(b"HTTP/1.1 2x0 OK\r\n\r\n", get()).await);
            assert!(e.starts_with("malformed response head"), "{e}");
            let e = error(one(b"HTTP/2.0 200 OK\r\n\r\n", get()).await);
            assert!(e.starts_with("malformed response head"), "{e}");
            let e = error(one(b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", get()).await);
            assert!(e.starts_with("malformed response head"), "{e}");
            let e = error(
                one(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
                    get(),
                )
                .await,
            );
            assert!(e.contains("differing Content-Length"), "{e}");
            let e = error(one(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", get()).await);
            assert!(e.contains("invalid Content-Length"), "{e}");
            let e = error(
                one(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1073741825\r\n\r\n",
                    get(),
                )
                .await,
            );
            assert!(e.contains("exceeds 1 GiB"), "{e}");
        })
        .await;
    }

    #[tokio::test]
    async fn heads_over_the_limits_are_errors() {
        bounded(async {
            let mut big = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
            big.resize(big.len() + 70 * 1024, b'a');
            let e = error(one(&big, get()).await);
            assert_eq!(e, "response head exceeds 64 KiB");
            let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
            for i in 0..=MAX_HEADERS {
                many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
            }
            many.extend_from_slice(b"\r\n");
            let e = error(one(&many, get()).await);
            assert!(e.contains("more than 100 header fields"), "{e}");
        })
        .await;
    }

    #[tokio::test]
    async fn bad_chunks_are_errors() {
        bounded(async {
            let chunked = |rest: &str| {
                format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{rest}").into_bytes()
            };
            let e = error(one(&chunked("zz\r\nhi\r\n0\r\n\r\n"), get()).await);
            assert!(e.contains("invalid chunk size"), "{e}");
            let e = error(one(&chunked("2 x\r\nhi\r\n0\r\n\r\n"), get()).await);
            assert!(e.contains("invalid chunk size"), "{e}");
            let e = error(one(&chunked("1ffffffffffffffffff\r\n"), get()).await);
            assert!(e.contains("exceeds 1 GiB"), "{e}");
            let e = error(one(&chunked("40000001\r\n"), get()).await);
            assert!(e.contains("exceeds 1 GiB"), "{e}");
            let e = error(one(&chunked("2\r\nhello\r\n0\r\n\r\n"), get()).await);
            assert!(e.contains("longer than its declared size"), "{e}");
            let long = format!("1;{}\r\n", "x".repeat(MAX_CHUNK_LINE));
            let e = error(one(&chunked(&long), get()).await);
            assert_eq!(e, "chunk-size line exceeds 4 KiB");
            let e = error(one(&chunked("5\r\nhel"), get()).await);
            assert_eq!(e, "connection closed before the response was complete");
        })
        .await;
    }

    #[tokio::test]
    async fn the_exact_bytes_of_a_get_and_a_post() {
        bounded(async {
            let (listener, addr) = listen().await;
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut seen = Vec::new();
                for _ in 0..2 {
                    seen.push(read_request(&mut s).await);
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .await
                        .unwrap();
                }
                seen
            });
            let mut conn = connect(&addr).await;
            let mut req = get();
            req.target = "/a?x=1";
            send(&mut conn, &req).await.ok().unwrap();
            let mut headers = HeaderMap::new();
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            let post = Req {
                method: Method::POST,
                target: "/b",
                headers,
                body: Bytes::from_static(b"{\"k\":1}"),
            };
            send(&mut conn, &post).await.ok().unwrap();
            let seen = server.await.unwrap();
            assert_eq!(
                String::from_utf8_lossy(&seen[0]),
                "GET /a?x=1 HTTP/1.1\r\nhost: svc:8080\r\nuser-agent: perfgate/test\r\n\r\n"
            );
            assert_eq!(
                String::from_utf8_lossy(&seen[1]),
                "POST /b HTTP/1.1\r\nhost: svc:8080\r\ncontent-type: application/json\r\n\
                 user-agent: perfgate/test\r\ncontent-length: 7\r\n\r\n{\"k\":1}"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_scenarios_framing_headers_are_checked_or_honoured() {
        bounded(async {
            let mut req = get();
            req.method = Method::POST;
            req.body = Bytes::from_static(b"abc");
            req.headers
                .insert(CONTENT_LENGTH, HeaderValue::from_static("2"));
            let e = error(one(b"HTTP/1.1 200 OK\r\n\r\n", req).await);
            assert!(e.contains("differs from its body's length"), "{e}");

            let (listener, addr) = listen().await;
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut got = vec![0u8; 1024];
                let mut n = 0;
                while !got[..n].ends_with(b"0\r\n\r\n") {
                    n += s.read(&mut got[n..]).await.unwrap();
                }
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .await
                    .unwrap();
                got.truncate(n);
                got
            });
            let mut req = get();
            req.method = Method::POST;
            req.body = Bytes::from_static(b"abc");
            req.headers
                .insert(TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
            send(&mut connect(&addr).await, &req).await.ok().unwrap();
            let got = String::from_utf8(server.await.unwrap()).unwrap();
            assert!(
                got.ends_with(
                    "transfer-encoding: gzip\r\nuser-agent: perfgate/test\r\n\
                     transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                ),
                "{got}"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_closed_idle_connection_fails_the_liveness_check() {
        bounded(async {
            let (listener, addr) = listen().await;
            let (close, closed) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                read_request(&mut s).await;
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .unwrap();
                let _ = closed.await;
            });
            let mut conn = connect(&addr).await;
            assert!(send(&mut conn, &get()).await.ok().unwrap().reusable);
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(conn.is_open(), "a healthy idle connection passes");
            drop(close);
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(!conn.is_open(), "one the peer closed does not");
        })
        .await;
    }
}
