//! The error every service returns: a kind a caller can act on, each with
//! its stable API [`ErrorCode`]. Services know nothing of HTTP; `http::error`
//! renders an [`ApiError`] as a JSON body with the status that
//! `http::status` gives its code.

use assist_protocol::ErrorCode;

/// An API failure. User errors carry a message meant for the caller;
/// [`ApiError::Internal`] keeps its details for the log and shows the caller
/// only a generic message.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A key the caller chose was used before for other content or by
    /// another caller (409 `idempotency_conflict`).
    #[error("{0}")]
    IdempotencyConflict(String),
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    NotReady(String),
    #[error("{0}")]
    ModelMissing(String),
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            ApiError::InvalidJson(_) => ErrorCode::InvalidJson,
            ApiError::InvalidQuery(_) => ErrorCode::InvalidQuery,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::IdempotencyConflict(_) => ErrorCode::IdempotencyConflict,
            ApiError::Overloaded { .. } => ErrorCode::Overloaded,
            ApiError::NotReady(_) => ErrorCode::NotReady,
            ApiError::ModelMissing(_) => ErrorCode::ModelMissing,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }

    pub fn forbidden(msg: impl Into<String>) -> Self {
        ApiError::Forbidden(msg.into())
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        ApiError::NotFound(msg.into())
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        ApiError::InvalidRequest(msg.into())
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(err: crate::db::DbError) -> Self {
        use crate::db::DbError;
        match err {
            DbError::NotFound(what) => ApiError::NotFound(what),
            DbError::Conflict(what) => ApiError::Conflict(what),
            DbError::Invalid(what) => ApiError::InvalidRequest(what),
            DbError::Forbidden(what) => ApiError::Forbidden(what),
            DbError::KeyConflict(what) => ApiError::IdempotencyConflict(what),
            DbError::Sqlx(e) => ApiError::Internal(e.into()),
            DbError::Migrate(e) => ApiError::Internal(e.into()),
        }
    }
}

impl From<assist_models::Error> for ApiError {
    fn from(err: assist_models::Error) -> Self {
        use assist_models::Error as E;
        match err {
            E::Overloaded {
                retry_after_secs, ..
            } => ApiError::Overloaded {
                message: err.to_string(),
                retry_after_secs,
            },
            E::ModelMissing { .. } | E::UnknownModel(_) | E::BadLayout { .. } => {
                ApiError::ModelMissing(err.to_string())
            }
            E::WorkerStopped(_) => ApiError::NotReady(err.to_string()),
            E::InvalidAudio(_) => ApiError::InvalidRequest(err.to_string()),
            E::UnsupportedAudio { .. } => ApiError::UnsupportedMediaType(err.to_string()),
            E::AudioTooLong { .. } => ApiError::PayloadTooLarge(err.to_string()),
            other => ApiError::Internal(other.into()),
        }
    }
}
