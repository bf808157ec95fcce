//! The error type of scenarios: every failure is counted by kind, never stops the run.

use std::fmt;
use std::sync::{Mutex, MutexGuard};

/// `Result<()>` by default: the return type of a scenario.
pub type Result<T = (), E = Error> = std::result::Result<T, E>;

/// What went wrong, as counted in [`ErrorCounts`](crate::format::ErrorCounts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The connection could not be made (refused, unreachable, DNS, too many open files).
    Connect,
    /// The request (or the iteration, at the end of the window) did not finish in time.
    Timeout,
    /// An unexpected status (`expect_status`).
    Status,
    /// A failed expectation in the scenario (decoding, assertions, any `?` on a foreign error).
    Check,
    /// The iteration panicked.
    Panic,
    /// Anything else (a broken connection, an invalid request).
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status => "status",
            ErrorKind::Check => "check",
            ErrorKind::Panic => "panic",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an HTTP exchange failed: the kind and what hyper or the OS said. The request's method and URL
/// are added when it becomes an [`Error`].
pub(crate) type ExchangeError = (ErrorKind, String);

/// A scenario error: a kind and a message.
///
/// Like `anyhow::Error` it does not implement `std::error::Error`, which is what lets any
/// `std::error::Error` convert into it, so `?` works on `serde_json`, `std::io`, … (as a
/// [`ErrorKind::Check`]: a failed expectation in the scenario's own code).
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// A failed expectation: `return Err(Error::check("cart is empty"))`.
    pub fn check(message: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Check, message.to_string())
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(e: E) -> Self {
        Error::new(ErrorKind::Check, chain(&e))
    }
}

/// An error and its sources on one line: hyper's top-level messages ("client error (Connect)")
/// say little without them.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

/// Locks a mutex even if a holder panicked. A panic (an iteration's, counted like any failure) must
/// not stop the run, and nothing these locks guard (idle connections, a user's state, recorded
/// histograms) is left by one cut short in a state that matters more than losing the run would.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
