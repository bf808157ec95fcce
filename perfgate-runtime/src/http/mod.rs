//! The HTTP client behind [`Ctx`](crate::Ctx), one per worker. Requests to the service go through
//! the worker's keep-alive pool of lean HTTP/1.1 connections ([`pool`], [`h1`]), or, with HTTP/2,
//! through one shared hyper HTTP/2 connection; an absolute URL to another host goes through hyper's
//! general client. `https://` speaks TLS on each of these paths ([`tls`], [`stream`]).

mod h1;
mod pool;
mod stream;
mod tls;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper::header::{HeaderValue, USER_AGENT};
use hyper::http::response::Parts;
use hyper::{HeaderMap, Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use self::pool::Pool;
pub(crate) use self::tls::Tls;
use self::tls::{certificate_hint, Alpn};
use crate::error::{chain, lock, ErrorKind, ExchangeError};

/// The only header the client adds on its own (besides Host and the body's length and type):
/// defaults such as `Accept-Encoding` change what a service does, so they are the scenario's call.
const USER_AGENT_VALUE: &str = concat!("perfgate/", env!("CARGO_PKG_VERSION"));
static USER_AGENT_HEADER: HeaderValue = HeaderValue::from_static(USER_AGENT_VALUE);

/// How every worker's client speaks, shared by the run's workers.
#[derive(Clone)]
pub(crate) struct Transport {
    /// HTTP/2 to the service: with prior knowledge over `http://`, agreed by ALPN over `https://`.
    pub(crate) http2: bool,
    pub(crate) tls: Arc<Tls>,
}

type OtherClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One worker's HTTP client. Requests to the service go through the worker's own connections to
/// it; an absolute URL to another host goes through hyper's general client.
pub(crate) struct HttpClient {
    /// The service's address and HTTP/1.1 connections; None when the base URL is not
    /// `http(s)://host[:port]` (every request then goes through `other`).
    pool: Option<Pool>,
    /// HTTP/2: the service's requests share one connection (`h2`) instead of the pool's HTTP/1.1
    /// ones.
    h2: Mutex<Option<http2::SendRequest<Full<Bytes>>>>,
    transport: Transport,
    connect_timeout: Duration,
    /// Built on the first request to another host: most scenarios never make one.
    other: OnceLock<Result<OtherClient, String>>,
}

/// A keep-alive pool over HTTP/1.1, or one HTTP/2 connection with `transport.http2`.
pub(crate) fn build_client(
    base_url: &str,
    connect_timeout: Duration,
    transport: &Transport,
) -> HttpClient {
    HttpClient {
        pool: Pool::new(
            base_url,
            connect_timeout,
            &USER_AGENT_HEADER,
            &transport.tls,
        ),
        h2: Mutex::new(None),
        transport: transport.clone(),
        connect_timeout,
        other: OnceLock::new(),
    }
}

/// hyper's general client, for absolute URLs to other hosts: `http://`, or `https://` with the
/// run's TLS settings.
fn other_client(transport: &Transport, connect_timeout: Duration) -> Result<OtherClient, String> {
    let mut connector = HttpConnector::new();
    // Small requests must not wait for Nagle's algorithm: that would be measured as latency.
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    // The TLS layer takes https:// URLs to the plain connector under it.
    connector.enforce_http(false);
    let alpn = if transport.http2 {
        Alpn::H2
    } else {
        Alpn::Http1
    };
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*transport.tls.config(alpn)?).clone())
        .https_or_http();
    let connector = if transport.http2 {
        builder.enable_http2().wrap_connector(connector)
    } else {
        builder.enable_http1().wrap_connector(connector)
    };
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(transport.http2);
    Ok(builder.build(connector))
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
            if self.transport.http2 {
                // Boxed, like the pool's connect path: an HTTP/2 handshake is a large future, and
                // inlined it would make every request's future (moved at each await and spawn) larger.
                let request = hyper_request(method, uri, headers, body);
                return Box::pin(self.exchange_h2(pool, request)).await;
            }
            return pool.exchange(method, uri, headers, body).await;
        }
        let other = self
            .other
            .get_or_init(|| other_client(&self.transport, self.connect_timeout))
            .as_ref()
            .map_err(|e| (ErrorKind::Connect, format!("TLS setup: {e}")))?;
        let request = hyper_request(method, uri, headers, body);
        let response = other.request(request).await.map_err(|e| {
            let kind = if e.is_connect() {
                ErrorKind::Connect
            } else {
                ErrorKind::Other
            };
            let mut message = chain(&e);
            if let Some(hint) = certificate_hint(&e) {
                message.push_str("; ");
                message.push_str(hint);
            }
            (kind, message)
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
                let io = TokioIo::new(pool.connect(Alpn::H2).await?);
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
