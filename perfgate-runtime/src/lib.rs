//! perfgate's runtime: what a service's crate depends on to declare load scenarios.
//!
//! ```ignore
//! use perfgate_runtime::{perf_test, Ctx};
//!
//! #[perf_test(rate = 300, duration = "20s", warmup = "3s", p99 < "40ms", errors < "0.5%")]
//! async fn checkout(ctx: Ctx) -> perfgate_runtime::Result {
//!     ctx.get("/items/42").send().await?.expect_status(200)?;
//!     Ok(())
//! }
//! ```
//!
//! `cargo perfgate` discovers these scenarios, starts the service and drives them as HTTP load.
//! With the `engine` feature off, only [`format`](mod@format) is compiled: the versioned data the
//! CLI reads.
//!
//! # Writing a scenario
//! One call of the annotated fn is one iteration. [`Ctx`] sends requests to the service
//! (`ctx.get("/items/42")`, `.post(..).json(&body)`, `.header(..)`, `.name("pay")`, `.send().await`),
//! checks responses ([`Response::expect_status`], [`Response::json`]), times any other async step
//! ([`Ctx::time`]) and keeps per-user state in the closed model ([`Ctx::with_state`]).
//!
//! Every failure is an [`Error`] of some [`ErrorKind`], counted and never fatal to the run; `?` on
//! any `std::error::Error` gives a [`ErrorKind::Check`] error. Each request is recorded in a series
//! named by `.name(..)`, by default the method and path template (`GET /items/{id}`).
//!
//! The client sends what the scenario asks for, plus `Host`, `User-Agent: perfgate/<version>` and
//! the body's `Content-Length`: no `Accept-Encoding` or other defaults that would change what the
//! service does. Connections are kept alive and pooled; HTTP/1.1, or HTTP/2 (prior knowledge) with
//! `PERFGATE_HTTP2=1`. `https://` speaks TLS (rustls) with the system's trust roots plus
//! `PERFGATE_CA_CERT`; response bodies buffered at once are bounded by `PERFGATE_MAX_BODY_BYTES`
//! (see [`format::env`]).

pub mod format;

#[cfg(feature = "engine")]
mod ctx;
#[cfg(feature = "engine")]
mod engine;
#[cfg(feature = "engine")]
mod error;
#[cfg(feature = "engine")]
mod http;
#[cfg(feature = "engine")]
mod record;

#[cfg(feature = "engine")]
pub use bytes::Bytes;
#[cfg(feature = "engine")]
pub use ctx::{Ctx, RequestBuilder, Response};
#[cfg(feature = "engine")]
pub use engine::default_max_in_flight;
#[cfg(feature = "engine")]
pub use error::{Error, ErrorKind, Result};
#[cfg(feature = "engine")]
pub use hyper::{HeaderMap, Method};
#[cfg(feature = "engine")]
pub use perfgate_macros::perf_test;

/// The parsers' entry points for the fuzz targets (`fuzz/`). Not a stable API.
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::http::fuzz::check_h1_response;
}

/// What `#[perf_test]` expands to call. Not a stable API.
#[cfg(feature = "engine")]
#[doc(hidden)]
pub mod __private;
