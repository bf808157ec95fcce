//! Tiny in-process HTTP servers on 127.0.0.1:0 for the engine's tests, and a spec builder.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use perfgate_runtime::format::{LoadModel, ScenarioSpec};

/// A request as the handler sees it (body already read).
pub struct Req {
    /// The number of the connection it came on, from 0 in order of acceptance.
    pub connection: u64,
    pub method: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Starts a server on its own thread and runtime; returns its base URL. It lives until the test
/// process exits.
pub fn serve<H, Fut>(handler: H) -> String
where
    H: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (u16, String)> + Send + 'static,
{
    serve_on(None, handler)
}

/// [`serve`] over TLS when `tls` is given (its base URL is then `https://`).
pub fn serve_on<H, Fut>(tls: Option<tokio_rustls::TlsAcceptor>, handler: H) -> String
where
    H: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (u16, String)> + Send + 'static,
{
    let handler = Arc::new(handler);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            for connection in 0.. {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve_connection(stream, connection, handler).await,
                        // A failed handshake (a client that does not trust the certificate) ends
                        // only this connection.
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                serve_connection(stream, connection, handler).await;
                            }
                        }
                    }
                });
            }
        });
    });
    let addr = rx.recv().unwrap();
    format!("{scheme}://{addr}")
}

async fn serve_connection<IO, H, Fut>(io: IO, connection: u64, handler: Arc<H>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (u16, String)> + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let handler = handler.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let req = Req {
                connection,
                method: parts.method.to_string(),
                version: format!("{:?}", parts.version),
                path: parts.uri.path().to_owned(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                    .collect(),
                body,
            };
            let (status, body) = handler(req).await;
            let mut resp = Response::new(Full::new(Bytes::from(body)));
            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(resp)
        }
    });
    // HTTP/1.1, or HTTP/2 (prior knowledge, or agreed by ALPN), whichever the client speaks.
    let _ = Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// A CA made at test time, and a server certificate it signed for 127.0.0.1 and localhost.
pub struct TestPki {
    /// The CA's certificate, PEM: what `--ca-cert` takes.
    pub ca_pem: String,
    /// Serves the leaf certificate, offering HTTP/2 and HTTP/1.1 by ALPN.
    pub acceptor: tokio_rustls::TlsAcceptor,
}

pub fn test_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "perfgate test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TestPki {
        ca_pem: ca_cert.pem(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    }
}

/// A server answering 200 "ok" to everything.
pub fn ok_server() -> String {
    serve(|_req| async { (200, "ok".to_owned()) })
}

/// A loopback address nothing listens on.
pub fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

pub fn spec(load: LoadModel, duration_ms: u64) -> ScenarioSpec {
    ScenarioSpec {
        name: "scenario".into(),
        module_path: "tests".into(),
        file: file!().into(),
        line: 1,
        load,
        duration_ms,
        warmup_ms: 0,
        timeout_ms: 2_000,
        max_in_flight: None,
        slos: vec![],
        regression_pct: 10.0,
        service: None,
        data: vec![],
        cost_regression_pct: 1.0,
        tiers: Default::default(),
        trends: vec![],
    }
}

pub fn open(rate: f64, duration_ms: u64) -> ScenarioSpec {
    spec(LoadModel::Open { rate }, duration_ms)
}

/// Load tests share two cores: running them one at a time keeps their timing meaningful.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}
