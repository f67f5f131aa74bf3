//! The router: `app(state) -> Router`, with every cross-cutting layer.

use std::time::{Duration, Instant};

use assist_protocol::ErrorCode;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::http::error::error_response;
use crate::http::routes;
use crate::http::status::code_for_status;
use crate::state::AppState;

/// Build the HTTP application for `state`.
pub fn app(state: AppState) -> Router {
    // Install the recorder before the first request is counted.
    let _ = crate::telemetry::prometheus();
    let cfg = &state.config.server;
    let body_limit = cfg.max_body_bytes;
    let timeout = Duration::from_secs(cfg.request_timeout_secs.max(1));
    let long_timeout = Duration::from_secs(state.config.speech.speech_request_timeout_secs.max(1));
    Router::new()
        .merge(routes::health::router())
        .merge(crate::http::console::router())
        .nest(
            "/v1",
            routes::v1_router(state.config.kb.kb_max_import_bytes, cfg.max_upload_bytes),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(uri_limit))
        .layer(middleware::from_fn(record_metrics))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            deadline(req, next, timeout, long_timeout)
        }))
        .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
            tracing::error!("handler panicked");
            error_response(ErrorCode::Internal, "internal error; the server log has the details")
        }))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "unmatched".into());
                let request_id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), route = %route, request_id = %request_id)
            })
            .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Millis))
            // 5xx are logged where they arise (internal errors) or are expected (503 while starting).
            .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Paths whose work grows with the upload (synchronous transcription) get
/// the long deadline; everything else the ordinary one. Past it: 408.
const LONG_REQUESTS: [&str; 1] = ["/v1/audio/transcriptions"];

async fn deadline(req: Request, next: Next, short: Duration, long: Duration) -> Response<Body> {
    let limit = if LONG_REQUESTS.contains(&req.uri().path()) {
        long
    } else {
        short
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            let mut resp = error_response(
                ErrorCode::RequestTimeout,
                format!("the request took longer than {} s", limit.as_secs()),
            );
            *resp.status_mut() = StatusCode::REQUEST_TIMEOUT;
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
    }
}

/// Longest URL (path and query string) served; longer ones get 414 with a
/// JSON body here, well below the HTTP server's own header limit (whose 431
/// would have no body).
pub const MAX_URI_BYTES: usize = 8 * 1024;

async fn uri_limit(req: Request, next: Next) -> Response<Body> {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_URI_BYTES {
        return error_response(
            ErrorCode::UriTooLong,
            format!("the URL is {len} bytes; at most {MAX_URI_BYTES} are accepted"),
        );
    }
    next.run(req).await
}

async fn not_found(req: Request) -> impl IntoResponse {
    error_response(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> impl IntoResponse {
    error_response(
        ErrorCode::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// Give every error response a JSON `{code, message}` body, including the ones
/// produced by layers and extractors outside our handlers. The console's
/// HTML error pages are left as they are.
async fn json_errors(req: Request, next: Next) -> Response<Body> {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/html"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match body.collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
        Err(_) => String::new(),
    };
    let code = code_for_status(status);
    let message = if text.is_empty() || text.len() > 500 {
        canonical(status)
    } else {
        text
    };
    let mut fixed = error_response(code, message);
    *fixed.status_mut() = status;
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if status == StatusCode::REQUEST_TIMEOUT {
        fixed
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    fixed
}

fn canonical(status: StatusCode) -> String {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than the configured limit".into()
        }
        StatusCode::REQUEST_TIMEOUT => "the request took longer than the configured timeout".into(),
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    }
}

async fn record_metrics(req: Request, next: Next) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("assist_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("assist_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}
