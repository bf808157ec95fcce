//! predict-service: the example service perfgate's README and end-to-end tests drive.
//!
//! It routes customer-support messages to a queue with a small text classifier (`POST /predict`)
//! and serves a product catalogue (`GET /items/{id}`); recent predictions can be looked up again
//! (`GET /predictions/{id}`). Everything is testable without a socket: [`routes::handle`] takes a
//! `Request` and returns a `Response`.

pub mod catalogue;
pub mod model;
pub mod recent;
pub mod routes;
