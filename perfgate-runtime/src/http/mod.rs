//! The HTTP client behind [`Ctx`](crate::Ctx), one per worker. Requests to the service go through
//! the worker's keep-alive pool of lean HTTP/1.1 connections ([`pool`], [`h1`]), or, with HTTP/2,
//! through one shared hyper HTTP/2 connection; an absolute URL to another host goes through hyper's
//! general client. `https://` speaks TLS on each of these paths ([`tls`], [`stream`]).

mod budget;
#[cfg(any(test, feature = "fuzz"))]
pub(crate) mod fuzz;
mod h1;
mod pool;
mod stream;
mod tls;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
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

use self::budget::{too_long_body, Held, MAX_BODY};
pub(crate) use self::budget::{Bodies, DEFAULT_MAX_BUFFERED};
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
    /// The one bound on response bodies buffered at once, across the workers.
    pub(crate) bodies: Arc<Bodies>,
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
            &transport.bodies,
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
    // hyper-rustls sets the ALPN protocols itself, from the versions enabled below.
    let mut config = (*transport.tls.config(Alpn::Http1)?).clone();
    config.alpn_protocols.clear();
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
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
        read_whole(response, &self.transport.bodies).await
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
        read_whole(response, &self.transport.bodies).await
    }
}

/// The response with its whole body read, within the per-body cap and the process's bound.
async fn read_whole(
    response: hyper::Response<Incoming>,
    bodies: &Arc<Bodies>,
) -> std::result::Result<(Parts, Bytes), ExchangeError> {
    let (parts, mut body) = response.into_parts();
    let mut held = Held::default();
    // A body of one frame (the usual small response) is kept as it came, without a copy.
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| (ErrorKind::Other, format!("reading the body: {}", chain(&e))))?;
        // Trailers are read and dropped, as on the HTTP/1.1 path.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len += data.len() as u64;
        if len > MAX_BODY {
            return Err(too_long_body());
        }
        held.grow_to(bodies, len)?;
        match first.take() {
            None if rest.is_empty() => first = Some(data),
            earlier => {
                if let Some(f) = earlier {
                    rest.extend_from_slice(&f);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    let whole = first.unwrap_or_else(|| rest.freeze());
    Ok((parts, held.attach(whole)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::h1::tests::bounded;
    use hyper::service::service_fn;
    use hyper_util::server::conn::auto;

    const MIB: usize = 1 << 20;

    /// A server answering `/<n>` with a body of `n` bytes, over HTTP/1.1 or HTTP/2 (prior knowledge).
    async fn sized_server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = service_fn(|req: Request<Incoming>| async move {
                        let n: usize = req.uri().path()[1..].parse().unwrap_or(0);
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(vec![b'x'; n]),
                        )))
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        format!("http://{addr}")
    }

    async fn get(client: &HttpClient, url: &str) -> Result<(Parts, Bytes), ExchangeError> {
        client
            .exchange(
                &Method::GET,
                url.parse().unwrap(),
                HeaderMap::new(),
                Bytes::new(),
            )
            .await
    }

    /// Every path (the lean HTTP/1.1 pool, HTTP/2, hyper to another host) counts its bodies against
    /// one bound: a body that fits passes, one that would go over it fails with the bound named, a
    /// held body counts until dropped, and nothing stays counted after an error.
    #[tokio::test]
    async fn one_bound_on_buffered_bodies_on_every_path() {
        bounded(async {
            let server = sized_server().await;
            for (path, base, http2) in [
                ("h1", server.clone(), false),
                ("h2", server.clone(), true),
                // An unused address as the base: the server is "another host".
                ("other host", "http://127.0.0.1:9".to_owned(), false),
            ] {
                let bodies = Bodies::new(MIB as u64);
                let transport = Transport {
                    http2,
                    tls: Arc::new(Tls::new(None)),
                    bodies: bodies.clone(),
                };
                let client = build_client(&base, Duration::from_secs(5), &transport);
                let (_, small) = get(&client, &format!("{server}/100")).await.unwrap();
                assert_eq!(small.len(), 100);
                assert_eq!(bodies.used(), 0, "{path}: a small body is not counted");

                let (_, held) = get(&client, &format!("{server}/{}", 600 * 1024))
                    .await
                    .unwrap();
                assert_eq!(held.len(), 600 * 1024, "{path}");
                assert_eq!(bodies.used(), 600 * 1024, "{path}: counted while held");
                let (kind, message) = get(&client, &format!("{server}/{}", 600 * 1024))
                    .await
                    .unwrap_err();
                assert_eq!(kind, ErrorKind::Other, "{path}");
                assert!(
                    message.contains("bound of 1.00MiB") && message.contains("--max-body-memory"),
                    "{path}: {message}"
                );
                assert_eq!(
                    bodies.used(),
                    600 * 1024,
                    "{path}: the failed body is not counted"
                );
                drop(held);
                assert_eq!(bodies.used(), 0, "{path}");
                let (_, again) = get(&client, &format!("{server}/{}", 600 * 1024))
                    .await
                    .unwrap();
                assert_eq!(again.len(), 600 * 1024, "{path}: room again once dropped");
                drop(again);

                // A huge body alone fails, and the client goes on.
                let (kind, message) = get(&client, &format!("{server}/{}", 16 * MIB))
                    .await
                    .unwrap_err();
                assert_eq!(kind, ErrorKind::Other, "{path}");
                assert!(message.contains("bound of 1.00MiB"), "{path}: {message}");
                assert_eq!(bodies.used(), 0, "{path}");
                let (_, after) = get(&client, &format!("{server}/10")).await.unwrap();
                assert_eq!(after.len(), 10, "{path}");
            }
        })
        .await;
    }
}
