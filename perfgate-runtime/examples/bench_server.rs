//! The benchmark's target: a minimal HTTP/1.1 hyper server on one current-thread runtime (pin it to
//! one core with `taskset`), answering `200 hello` to everything.
//!
//! `bench_server PORT [STALL_AFTER_MS STALL_MS]`: with a stall, the server freezes (answers nothing)
//! for STALL_MS starting STALL_AFTER_MS after the first request it receives, so that every generator
//! sees the stall at the same point of its own run.

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

static FIRST: OnceLock<Instant> = OnceLock::new();

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = args.first().and_then(|p| p.parse().ok()).unwrap_or(8080);
    let stall_after = args
        .get(1)
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    let stall_for = args
        .get(2)
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    let stall = stall_after.zip(stall_for);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        // A deep accept queue (the kernel caps it at net.core.somaxconn): during a stall an open
        // model opens a connection per start, thousands at once, and an overflowing queue drops SYNs,
        // which the client retries a second later; that second would be the generator's error, not
        // the stall's.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .expect("bind");
        let listener = socket.listen(65_535).expect("listen");
        eprintln!("bench_server on http://{}", listener.local_addr().unwrap());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<Incoming>| async move {
                    if let Some((after, len)) = stall {
                        let first = *FIRST.get_or_init(Instant::now);
                        let (from, to) = (first + after, first + after + len);
                        let now = Instant::now();
                        if now >= from && now < to {
                            tokio::time::sleep_until(to.into()).await;
                        }
                    }
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
