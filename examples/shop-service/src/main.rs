//! `shop-service [--host ADDR] [--port N] [--database-url URL] [--line-queries batched|per-line]`
//!
//! A shop's HTTP API on axum over PostgreSQL (tokio-postgres, a deadpool pool): category pages,
//! search and checkout. Port: `--port`, else `$PORT`, else 8080. Database: `--database-url`, else
//! `$DATABASE_URL`. It prints one line once it accepts connections; SIGTERM or Ctrl-C stops accepting,
//! lets in-flight requests finish and prints what it changed in the database before exiting 0.

mod checkout;
mod db;
mod routes;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use checkout::LineQueries;

const USAGE: &str = "usage: shop-service [--host ADDR] [--port N] [--database-url URL]
                    [--pool N] [--line-queries batched|per-line]
  --host ADDR          address to bind (default 127.0.0.1: loopback only)
  --port N             port (default $PORT, else 8080; 0 = any free port)
  --database-url URL   postgres://user@host:port/db (default $DATABASE_URL)
  --pool N             database connections (default $SHOP_POOL_SIZE, else 8)
  --line-queries HOW   how checkout reads and writes an order's lines: batched (one query per step
                       for all lines, the default) or per-line (queries in a loop over the lines: the
                       N+1 regression); default $SHOP_LINE_QUERIES";

pub struct AppState {
    pub pool: deadpool_postgres::Pool,
    pub line_queries: LineQueries,
    /// Orders this process placed: compared at exit with the orders the database gained.
    pub checkouts: AtomicU64,
}

struct Args {
    addr: SocketAddr,
    database_url: String,
    pool: usize,
    line_queries: LineQueries,
}

fn parse_args() -> Result<Args, String> {
    let mut host: IpAddr = [127, 0, 0, 1].into();
    let mut port = std::env::var("PORT").ok();
    let mut database_url = std::env::var("DATABASE_URL").ok();
    let mut pool = std::env::var("SHOP_POOL_SIZE").ok();
    let mut line_queries = std::env::var("SHOP_LINE_QUERIES").ok();
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
            "--database-url" => database_url = Some(value("--database-url")?),
            "--pool" => pool = Some(value("--pool")?),
            "--line-queries" => line_queries = Some(value("--line-queries")?),
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
            .map_err(|_| format!("not a port number: {p:?}"))?,
        None => 8080,
    };
    let database_url =
        database_url.ok_or("no database: set DATABASE_URL or pass --database-url postgres://…")?;
    let pool = match pool {
        Some(p) => p.parse::<usize>().ok().filter(|&n| n > 0).ok_or(format!(
            "the pool size must be a positive number, not {p:?}"
        ))?,
        None => 8,
    };
    let line_queries = match line_queries.as_deref() {
        None | Some("") => checkout::DEFAULT_LINE_QUERIES,
        Some(v) => LineQueries::parse(v).ok_or(format!(
            "line queries must be `batched` or `per-line`, not {v:?}"
        ))?,
    };
    Ok(Args {
        addr: SocketAddr::new(host, port),
        database_url,
        pool,
        line_queries,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shop-service: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shop-service: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shop-service: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let pool = db::pool(&args.database_url, args.pool)?;
    // Fail at start, not on the first request, when the database is not there or not seeded.
    let before = db::counts(&pool).await?;
    let state = Arc::new(AppState {
        pool,
        line_queries: args.line_queries,
        checkouts: AtomicU64::new(0),
    });
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("could not listen on {}: {e}", args.addr))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("no local address: {e}"))?;
    println!(
        "shop-service listening on http://{local} (database {}: {} products, {} orders; checkout line queries: {})",
        db::describe_target(&args.database_url),
        before.products,
        before.orders,
        args.line_queries.as_str()
    );
    axum::serve(listener, routes::router(Arc::clone(&state)))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("serving: {e}"))?;
    let after = db::counts(&state.pool).await?;
    println!(
        "shop-service stopped: {} checkouts served; the database gained {} orders",
        state.checkouts.load(Ordering::Relaxed),
        after.orders - before.orders
    );
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
