//! An [`ApiError`] as an HTTP response: the JSON body `{ code, message }`,
//! the status from [`status_for`], `Retry-After` when overloaded, and a
//! generic message for internal errors (the log keeps the cause).

use assist_protocol::{ErrorBody, ErrorCode};
use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::status::status_for;
use crate::error::ApiError;

/// The JSON error response for a code and message.
pub fn error_response(code: ErrorCode, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        code,
        message: message.into(),
    };
    (status_for(code), Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        match self {
            ApiError::Internal(err) => {
                // The caller sees a generic message; the log keeps the cause.
                tracing::error!(error = %format!("{err:#}"), "internal error");
                error_response(code, "internal error; the server log has the details")
            }
            ApiError::Overloaded {
                message,
                retry_after_secs,
            } => {
                let mut resp = error_response(code, message);
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                resp
            }
            other => {
                let message = other.to_string();
                error_response(code, message)
            }
        }
    }
}
