//! The library behind `cargo perfgate`; `main.rs` only calls [`main_with_args`].

pub mod error;
