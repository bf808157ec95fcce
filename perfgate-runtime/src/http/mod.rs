//! The HTTP client behind [`Ctx`](crate::Ctx), one per worker. Requests to the service go through
//! the worker's keep-alive pool of lean HTTP/1.1 connections ([`pool`], [`h1`]), or, with HTTP/2,
//! through one shared hyper HTTP/2 connection; an absolute URL to another host goes through hyper's
//! general client.

mod h1;
mod pool;

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper::header::{HeaderValue, USER_AGENT};
use hyper::http::response::Parts;
use hyper::{HeaderMap, Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use self::pool::Pool;
use crate::error::{chain, lock, ErrorKind, ExchangeError};

/// The only header the client adds on its own (besides Host and the body's length and type):
/// defaults such as `Accept-Encoding` change what a service does, so they are the scenario's call.
const USER_AGENT_VALUE: &str = concat!("perfgate/", env!("CARGO_PKG_VERSION"));
static USER_AGENT_HEADER: HeaderValue = HeaderValue::from_static(USER_AGENT_VALUE);

/// One worker's HTTP client. Requests to the service go through the worker's own connections to
/// it; an absolute URL to another host goes through hyper's general client.
pub(crate) struct HttpClient {
    /// The service's address and HTTP/1.1 connections; None when the base URL is not
    /// `http://host[:port]` (every request then goes through `other`).
    pool: Option<Pool>,
    /// HTTP/2 with prior knowledge: the service's requests share one connection (`h2`) instead of
    /// the pool's HTTP/1.1 ones.
    http2: bool,
    h2: Mutex<Option<http2::SendRequest<Full<Bytes>>>>,
    other: Client<HttpConnector, Full<Bytes>>,
}

/// A keep-alive pool over HTTP/1.1, or HTTP/2 with prior knowledge when `http2`.
pub(crate) fn build_client(base_url: &str, connect_timeout: Duration, http2: bool) -> HttpClient {
    let mut connector = HttpConnector::new();
    // Small requests must not wait for Nagle's algorithm: that would be measured as latency.
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(http2);
    HttpClient {
        pool: Pool::new(base_url, connect_timeout, &USER_AGENT_HEADER),
        http2,
        h2: Mutex::new(None),
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
    ) -> std::result::Result<(Parts, Bytes), ExchangeError> {
        if let Some(pool) = self.pool.as_ref().filter(|p| p.serves(&uri)) {
            if self.http2 {
                // Boxed, like the pool's connect path: an HTTP/2 handshake is a large future, and
                // inlined it would make every request's future (moved at each await and spawn) larger.
                let request = hyper_request(method, uri, headers, body);
                return Box::pin(self.exchange_h2(pool, request)).await;
            }
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
        read_whole(response).await
    }

    /// Through the shared HTTP/2 connection to the service, opened (on the pool's address) when
    /// there is none yet or the last one closed.
    async fn exchange_h2(
        &self,
        pool: &Pool,
        request: Request<Full<Bytes>>,
    ) -> std::result::Result<(Parts, Bytes), ExchangeError> {
        let shared = lock(&self.h2).clone().filter(|s| !s.is_closed());
        let mut sender = match shared {
            Some(s) => s,
            None => {
                let io = TokioIo::new(pool.connect().await?);
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
        read_whole(response).await
    }
}

/// The response with its whole body read.
async fn read_whole(
    response: hyper::Response<Incoming>,
) -> std::result::Result<(Parts, Bytes), ExchangeError> {
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(b) => Ok((parts, b.to_bytes())),
        Err(e) => Err((ErrorKind::Other, format!("reading the body: {}", chain(&e)))),
    }
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
