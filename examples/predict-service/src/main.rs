//! `predict-service [--host ADDR] [--port N] [--model small|large]`
//!
//! Port: `--port`, else `$PORT`, else 8080 (0 picks a free one). Model: `--model`, else
//! `$PREDICT_MODEL`, else `small`. `PREDICT_LEAK=1` keeps every prediction forever instead of the
//! last 1024 (a deliberate memory leak, for perfgate's leak check). Prints one line once it
//! accepts connections; SIGTERM or Ctrl-C stops accepting, lets in-flight requests finish (up to
//! 5 s) and exits 0.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use predict_service::catalogue::Catalogue;
use predict_service::model::{Model, ModelKind};
use predict_service::recent::RecentPredictions;
use predict_service::routes::{self, AppState};

const USAGE: &str = "usage: predict-service [--host ADDR] [--port N] [--model small|large]
                       [--workers N] [--queue N]
  --host ADDR     address to bind (default 127.0.0.1: loopback only)
  --port N        port (default $PORT, else 8080; 0 = any free port)
  --model KIND    small (naive Bayes, default) or large (k-NN over word and char n-grams:
                  milliseconds per message, ~60 MB more memory); default $PREDICT_MODEL
  --workers N     predictions of the large model that may run at once (default 1)
  --queue N       large-model requests that may wait for a worker; more get 503 (default 32)
environment:
  PREDICT_LEAK=1  never evict recent predictions: a deliberate memory leak";

/// How long in-flight connections get to finish after a shutdown signal.
const GRACE: Duration = Duration::from_secs(5);

struct Args {
    addr: SocketAddr,
    model: ModelKind,
    workers: usize,
    queue: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut host: IpAddr = [127, 0, 0, 1].into();
    let mut port = std::env::var("PORT").ok();
    let mut model = std::env::var("PREDICT_MODEL").ok();
    let mut workers = 1;
    let mut queue = 32;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--host" => {
                let v = value("--host")?;
                host = v
                    .parse()
                    .map_err(|_| format!("--host: not an IP address: {v:?}"))?;
            }
            "--port" => port = Some(value("--port")?),
            "--model" => model = Some(value("--model")?),
            "--workers" => {
                let v = value("--workers")?;
                workers = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--workers: not a positive number: {v:?}"))?;
            }
            "--queue" => {
                let v = value("--queue")?;
                queue = v
                    .parse()
                    .map_err(|_| format!("--queue: not a number: {v:?}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("port: not a port number: {p:?}"))?,
        None => 8080,
    };
    let model = model.as_deref().unwrap_or("small").parse()?;
    Ok(Args {
        addr: SocketAddr::new(host, port),
        model,
        workers,
        queue,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("predict-service: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("predict-service: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let started = Instant::now();
    // Load before binding, so "listening" (and the ready probe) means able to serve.
    let model = Model::load(args.model)?;
    let mut state = AppState::new(model, Catalogue::bundled()?, args.workers, args.queue);
    if std::env::var("PREDICT_LEAK").is_ok_and(|v| v == "1") {
        state = state.with_recent(RecentPredictions::never_evicting());
    }
    let leaking = if state.recent.evicts() {
        ""
    } else {
        ", PREDICT_LEAK=1: recent predictions are never evicted"
    };
    let state = Arc::new(state);
    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot bind {}: {e}", args.addr))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "predict-service listening on http://{local} (model: {}, loaded in {:.0?}{leaking})",
        args.model,
        started.elapsed()
    );

    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Typically EMFILE under a connection storm: back off instead of spinning.
                        eprintln!("predict-service: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Small request/response pairs: don't let Nagle add latency.
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                let service = service_fn(move |req| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, std::convert::Infallible>(routes::handle(state, req).await) }
                });
                let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    // Client resets are routine under load; nothing to report.
                    let _ = conn.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(GRACE) => eprintln!("predict-service: connections still open after {GRACE:?}; exiting"),
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
