//! The one error type of the SDK.

use std::path::PathBuf;
use std::time::Duration;

use assist_protocol::ErrorCode;

/// What can go wrong. Every variant says what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input from the app (an empty text, an id with forbidden characters …):
    /// fix the call; retrying will not help.
    #[error("{0}")]
    Invalid(String),
    /// The outbox has no room for this item under its limits and policy. Nothing
    /// was stored; the refusal is counted and reported to the server.
    #[error(
        "the outbox is full: a {item} of {needed} bytes does not fit ({items} items, {used} of {max_bytes} bytes used, at most {max_items} items); flush it or raise the limits"
    )]
    OutboxFull {
        item: &'static str,
        needed: u64,
        used: u64,
        max_bytes: u64,
        items: u64,
        max_items: u64,
    },
    /// The outbox database failed (disk full, corrupt file …).
    #[error("outbox database: {0}")]
    Storage(#[from] rusqlite::Error),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No answer from the server (DNS, refused, reset, timeout). Queued items
    /// stay queued and are retried.
    #[error("cannot reach the server at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The server answered with an error.
    #[error("the server answered {status}{}: {message}", code.map(|c| format!(" ({c})")).unwrap_or_default())]
    Api {
        status: u16,
        code: Option<ErrorCode>,
        message: String,
        retry_after: Option<Duration>,
    },
    /// A guard-rules document was refused (bad signature, other organisation,
    /// older version …). The rules held before stay in force.
    #[error("guard rules refused: {0}")]
    GuardRefused(String),
    /// The live session ended with a close code a client must not retry
    /// (or could not resume within the server's window).
    #[error("live session closed ({code}): {reason}")]
    LiveClosed { code: u16, reason: String },
    /// The live session task is gone (ended or failed before).
    #[error("the live session has ended")]
    LiveEnded,
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the same request may succeed later (network trouble, a
    /// retryable server code, an HTTP 5xx/429/408 without a code).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Api { status, code, .. } => match code {
                Some(c) => c.is_retryable(),
                None => *status >= 500 || *status == 429 || *status == 408,
            },
            Error::LiveClosed { code, .. } => assist_protocol::live::close::is_retryable(*code),
            _ => false,
        }
    }

    /// The server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
