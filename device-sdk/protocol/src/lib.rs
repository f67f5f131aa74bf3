//! Wire types shared by the assist server and the phone-side SDK.
//!
//! Everything here is plain data with `serde` derives and nothing else, so
//! the device SDK can depend on it without pulling in any server or model code.
//!
//! The most important type is [`ErrorCode`]: every failed HTTP request returns an
//! [`ErrorBody`] whose `code` is one of these stable snake_case strings. Clients
//! decide whether to retry from the code (see [`ErrorCode::is_retryable`]), never
//! from the human-readable message.
//!
//! ```
//! use assist_protocol::{ErrorBody, ErrorCode};
//! let body: ErrorBody = serde_json::from_str(r#"{"code":"overloaded","message":"busy"}"#).unwrap();
//! assert_eq!(body.code, ErrorCode::Overloaded);
//! assert!(body.code.is_retryable());
//! ```

use serde::{Deserialize, Serialize};

pub mod analysis;
pub mod device;
pub mod guard;
mod identity;
pub mod live;
pub mod normalize;
mod speaker;
pub use identity::*;
pub use speaker::Speaker;

/// Stable, machine-readable error codes. Adding a variant is an API change;
/// renaming one is a breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is well-formed JSON but a field is missing or has a bad value.
    InvalidRequest,
    /// The body is not valid JSON, or does not match the expected shape.
    InvalidJson,
    /// The query string does not parse, or a parameter has the wrong type.
    InvalidQuery,
    /// The URL (with its query string) is longer than the server accepts.
    UriTooLong,
    /// The request did not finish within the server's request timeout.
    RequestTimeout,
    /// The `Content-Type` header is missing or not one this endpoint accepts.
    UnsupportedMediaType,
    /// The request body (or an uploaded file) is larger than the configured limit.
    PayloadTooLarge,
    /// No token, an unknown token, a revoked token or an expired token.
    Unauthorized,
    /// The token is valid but its role or organisation may not do this.
    Forbidden,
    /// No such resource (or route).
    NotFound,
    /// The route exists but not for this HTTP method.
    MethodNotAllowed,
    /// The resource already exists, or a concurrent edit won.
    Conflict,
    /// An idempotency key (`Idempotency-Key`, `client_call_id`, `upload_key`,
    /// a chat's `client_message_id` or conversation id, a device `event_id`)
    /// was already used by this caller for a different body, or by another
    /// caller. Not retryable: send the new content with a new key.
    IdempotencyConflict,
    /// A worker queue is full; retry after the `Retry-After` header.
    Overloaded,
    /// The service is starting up or shutting down, or a dependency is down.
    NotReady,
    /// A model the request needs is not fetched or not verified.
    ModelMissing,
    /// Too many requests from this client; retry later.
    RateLimited,
    /// An unexpected server-side failure; details are in the server log only.
    Internal,
}

impl ErrorCode {
    /// Whether a client should retry the same request later (with backoff).
    pub fn is_retryable(self) -> bool {
        match self {
            ErrorCode::Overloaded
            | ErrorCode::RequestTimeout
            | ErrorCode::NotReady
            | ErrorCode::RateLimited
            | ErrorCode::Internal => true,
            ErrorCode::InvalidRequest
            | ErrorCode::InvalidJson
            | ErrorCode::InvalidQuery
            | ErrorCode::UriTooLong
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::PayloadTooLarge
            | ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::MethodNotAllowed
            | ErrorCode::Conflict
            | ErrorCode::IdempotencyConflict
            | ErrorCode::ModelMissing => false,
        }
    }

    /// The snake_case string used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::NotReady => "not_ready",
            ErrorCode::ModelMissing => "model_missing",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an id the phone chooses (`client_message_id`, `event_id`,
/// `upload_key`, `client_call_id`, `utterance_id`, `feedback_id`) is
/// acceptable: 1–200 characters of ASCII letters, digits and `-_.:`.
/// The server refuses others with [`ErrorCode::InvalidRequest`].
pub fn is_valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// What [`is_valid_client_id`] asks for, for error messages.
pub const CLIENT_ID_RULE: &str = "1–200 characters of letters, digits and - _ . :";

/// Whether a chat's conversation id (chosen by the phone, the chat thread it
/// captured) is acceptable: 1–200 characters of ASCII letters, digits and
/// `-_.:@+=/`. The chat route also accepts message ids by this rule.
pub fn is_valid_conversation_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:@+=/".contains(c))
}

/// What [`is_valid_conversation_id`] asks for, for error messages.
pub const CONVERSATION_ID_RULE: &str = "1–200 characters of letters, digits and - _ . : @ + = /";

/// The JSON body of every failed request: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// Health and readiness report returned by `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// `true` when every check passed.
    pub ready: bool,
    pub checks: Vec<ReadinessCheck>,
}

/// One line of the readiness report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessCheck {
    /// What was checked, e.g. `database` or `model:asr`.
    pub name: String,
    pub ok: bool,
    /// Why it failed, or a short description of what is there.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_as_snake_case() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidJson,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::PayloadTooLarge,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Conflict,
            ErrorCode::IdempotencyConflict,
            ErrorCode::Overloaded,
            ErrorCode::NotReady,
            ErrorCode::ModelMissing,
            ErrorCode::RateLimited,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, code);
        }
    }
}
