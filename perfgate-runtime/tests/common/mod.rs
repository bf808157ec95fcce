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
    let handler = Arc::new(handler);
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
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                tokio::spawn(async move {
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
                                method: parts.method.to_string(),
                                version: format!("{:?}", parts.version),
                                path: parts.uri.path().to_owned(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("").to_owned())
                                    })
                                    .collect(),
                                body,
                            };
                            let (status, body) = handler(req).await;
                            let mut resp = Response::new(Full::new(Bytes::from(body)));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    // HTTP/1.1, or HTTP/2 with prior knowledge, whichever the client speaks.
                    let _ = Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    let addr = rx.recv().unwrap();
    format!("http://{addr}")
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
