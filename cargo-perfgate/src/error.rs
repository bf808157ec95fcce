//! Errors of `cargo perfgate` and the exit codes they map to (documented in the README).

use std::path::PathBuf;

/// Exit codes: the product's contract with CI.
pub mod exit {
    /// Every check passed.
    pub const PASS: i32 = 0;
    /// The gate failed: an SLO was breached, a regression against the baseline, or the service died.
    pub const FAIL: i32 = 1;
    /// perfgate could not do its job: bad input, build or start failure, missing results.
    pub const ERROR: i32 = 2;
    /// No decision: the measurement is invalid (the generator could not keep its schedule), or with
    /// `--strict` an undecided regression check or no comparable baseline.
    pub const INCONCLUSIVE: i32 = 3;
    /// Interrupted by Ctrl-C / SIGTERM (after killing every spawned process).
    pub const INTERRUPTED: i32 = 130;
}

/// An error that stops the whole run. Each message says what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("could not read the cargo workspace: {0}")]
    Metadata(#[source] cargo_metadata::Error),
    #[error("invalid [package.metadata.perfgate] in {manifest}: {msg}")]
    Config { manifest: PathBuf, msg: String },
    #[error("build failed: {0}")]
    Build(String),
    #[error("{0}")]
    Discovery(String),
    /// A service or a dependency that did not start, never got ready, or whose setup failed.
    #[error("{what} did not start: {cause}\n{log_tail}")]
    Start {
        /// "service `api`", "dependency `db`"
        what: String,
        cause: String,
        log_tail: String,
    },
    #[error("scenario binary failed: {0}")]
    Scenario(String),
    /// The baseline could not be found, read or written (git lookup, unreadable file, refused drop).
    #[error("{0}")]
    Baseline(String),
    /// A baseline or results file holds a value no measurement can produce (named in the message).
    #[error("{0}")]
    Corrupt(String),
    /// Another run holds the target directory's lock and `--no-wait` was given.
    #[error("{0}")]
    Busy(String),
    #[error("interrupted; the service and scenario processes were stopped")]
    Interrupted,
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    /// The documented exit code of each kind of error: the one place that decides it.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_)
            | Error::Metadata(_)
            | Error::Config { .. }
            | Error::Build(_)
            | Error::Discovery(_)
            | Error::Start { .. }
            | Error::Scenario(_)
            | Error::Baseline(_)
            | Error::Corrupt(_)
            | Error::Busy(_)
            | Error::Io { .. } => exit::ERROR,
            Error::Interrupted => exit::INTERRUPTED,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
