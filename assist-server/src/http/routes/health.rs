//! `/healthz` (the process is alive), `/readyz` (it can do its job) and `/metrics`.

use assist_protocol::{ErrorCode, ReadinessCheck};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::http::status::status_for;
use crate::state::AppState;
use crate::telemetry::prometheus;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// 200 with the checks when ready; otherwise 503 with `{code: "not_ready",
/// message, ready: false, checks}` so the error-body contract holds too.
async fn readyz(State(state): State<AppState>) -> Response {
    let mut checks = Vec::new();
    checks.push(match state.db.ping().await {
        Ok(()) => ReadinessCheck {
            name: "database".into(),
            ok: true,
            detail: format!("{} open", state.db.backend().name()),
        },
        Err(err) => ReadinessCheck {
            name: "database".into(),
            ok: false,
            detail: err.to_string(),
        },
    });
    if state.readiness.is_draining() {
        checks.push(ReadinessCheck {
            name: "shutdown".into(),
            ok: false,
            detail: "the service is shutting down".into(),
        });
    }
    let models = state.models.clone();
    let readiness = state.readiness.clone();
    let model_checks = tokio::task::spawn_blocking(move || readiness.model_checks(&models))
        .await
        .unwrap_or_default();
    checks.extend(model_checks);
    checks.push(search_check(&state));
    let ready = checks.iter().all(|c| c.ok);
    if ready {
        (
            StatusCode::OK,
            axum::Json(json!({ "ready": true, "checks": checks })),
        )
            .into_response()
    } else {
        let failing: Vec<String> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        (
            status_for(ErrorCode::NotReady),
            axum::Json(json!({
                "code": ErrorCode::NotReady,
                "message": failing.join("; "),
                "ready": false,
                "checks": checks,
            })),
        )
            .into_response()
    }
}

/// Script search: is the embedder loaded on its owner thread and the index open?
/// Only a failing check when the embedder is a required model.
fn search_check(state: &AppState) -> ReadinessCheck {
    let required = state.readiness.required().iter().any(|m| m == "embedder");
    match &state.search {
        Some(search) => ReadinessCheck {
            name: "script-search".into(),
            ok: true,
            detail: format!(
                "embedder loaded; {} approved scripts indexed",
                search.indexed()
            ),
        },
        None => ReadinessCheck {
            name: "script-search".into(),
            ok: !required,
            detail: "embedder not loaded: suggestions are off (run `assist models fetch --only embedder`, then restart)".into(),
        },
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    if let Ok(counts) = state.jobs.counts().await {
        for (job_state, n) in counts {
            metrics::gauge!("assist_jobs", "state" => job_state.as_str()).set(n as f64);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        prometheus().render(),
    )
        .into_response()
}
