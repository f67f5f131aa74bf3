//! The one place where error codes become HTTP statuses.
//!
//! The match has no catch-all arm on purpose: adding an [`ErrorCode`] breaks
//! the build here until someone decides which status it gets.

use assist_protocol::ErrorCode;
use axum::http::StatusCode;

/// HTTP status for an error code.
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidRequest => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidJson => StatusCode::BAD_REQUEST,
        ErrorCode::InvalidQuery => StatusCode::BAD_REQUEST,
        ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Conflict | ErrorCode::IdempotencyConflict => StatusCode::CONFLICT,
        ErrorCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ModelMissing => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The error code a bare HTTP status stands for, used to give a JSON body to
/// responses produced by layers outside our handlers (body limits, timeouts).
pub fn code_for_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        400 => ErrorCode::InvalidJson,
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        408 => ErrorCode::RequestTimeout,
        414 => ErrorCode::UriTooLong,
        503 | 504 => ErrorCode::NotReady,
        409 => ErrorCode::Conflict,
        413 => ErrorCode::PayloadTooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        422 => ErrorCode::InvalidRequest,
        429 => ErrorCode::RateLimited,
        s if (400..500).contains(&s) => ErrorCode::InvalidRequest,
        _ => ErrorCode::Internal,
    }
}
