//! Errors of the vector side, with variants a caller can act on.

use std::path::PathBuf;

/// Result of every vector-store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a vector store, grouped by what the caller should do.
///
/// * caller bugs, never worth retrying: [`Error::DimensionMismatch`], [`Error::InvalidVector`],
///   [`Error::InvalidInput`];
/// * configuration problems that need an operator: [`Error::Incompatible`], [`Error::Io`];
/// * transient, retry later (the scripts database stays the source of truth):
///   [`Error::Unreachable`];
/// * anything else the engine reported: [`Error::Engine`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vector (stored or query) does not have the index's dimension.
    #[error("vector {id:?} has dimension {got}, the index expects {expected}")]
    DimensionMismatch {
        /// Script id, or `"<query>"` for a search vector.
        id: String,
        expected: usize,
        got: usize,
    },
    /// A vector contains NaN or infinity, or is all zeros (no direction for cosine).
    #[error("vector {id:?} is not usable: {reason}")]
    InvalidVector { id: String, reason: &'static str },
    /// A request that can never succeed as given (for example an empty `org_id`).
    #[error("invalid request: {0}")]
    InvalidInput(String),
    /// The existing index or collection was built with other settings (dimension, distance).
    #[error("existing vector index {location} is incompatible: {reason}")]
    Incompatible { location: String, reason: String },
    /// The index directory could not be created or read.
    #[error("vector index directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The Qdrant server did not answer (connection refused, timeout, unavailable). Retry later.
    #[error("qdrant server {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    /// The engine failed (embedded qdrant-edge or a Qdrant server error response).
    #[error("{backend} vector engine failed during {operation}: {message}")]
    Engine {
        backend: &'static str,
        operation: &'static str,
        message: String,
    },
}

impl Error {
    /// True when the same call may succeed later without any change (server restarts, network).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }
}
