//! Request extractors whose rejections are our JSON error bodies.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Like `axum::Json`, but a bad body is `{code, message}`: `invalid_json`
/// (400), `unsupported_media_type` (415) or `payload_too_large` (413).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "expected a JSON body with `Content-Type: application/json`".into(),
        ),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::InvalidJson(format!("the body is not valid JSON: {}", e.body_text()))
        }
        JsonRejection::JsonDataError(e) => ApiError::InvalidJson(format!(
            "the JSON does not match what this endpoint expects: {}",
            e.body_text()
        )),
        JsonRejection::BytesRejection(e) => {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(
                    "the request body is larger than the configured limit".into(),
                )
            } else {
                ApiError::InvalidJson(format!("could not read the body: {}", e.body_text()))
            }
        }
        other => ApiError::InvalidJson(other.body_text()),
    }
}

/// Like `axum::extract::Query`, but a query string that does not parse is
/// `{code: "invalid_query"}` (400), not a JSON error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(rejection) => Err(ApiError::InvalidQuery(rejection.body_text())),
        }
    }
}

/// A list's `limit` query parameter: `default` when absent; anything
/// outside `1..=max` is refused (422) the same way on every list.
pub fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid(format!(
            "`limit` is {n}; it must be between 1 and {max}"
        ))),
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The error for a multipart upload that cannot be read: 413 past the body
/// limit (naming the setting), 422 otherwise.
pub fn multipart_err(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!(
            "the upload is larger than the limit ({e}); raise [server] max_upload_bytes or split the recording"
        ))
    } else {
        ApiError::invalid(format!("cannot read the multipart upload: {e}"))
    }
}
