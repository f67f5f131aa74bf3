//! `POST /v1/suggest` and `GET /v1/kb/search`: approved scripts for what the
//! customer just said, best first, each with why it was found.

use assist_indexer::retriever::Mode;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Deserialize;

use crate::caller::Caller;
use crate::error::ApiError;
use crate::http::extract::{Json, Query};
use crate::state::AppState;
use crate::suggest::{self, SuggestQuery, SuggestResponse, query_text};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/suggest", post(suggest))
        .route("/kb/search", get(kb_search))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestRequest {
    /// What the customer just said (a final transcript segment or a chat message).
    pub utterance: String,
    /// `zh` or `en`; restricts suggestions to that language.
    pub language: Option<String>,
    pub product: Option<String>,
    pub scenario: Option<String>,
    /// Earlier turns, oldest first; used when the utterance alone is too short
    /// to search on ("那怎么办？").
    #[serde(default)]
    pub last_turns: Vec<String>,
    /// How many suggestions (1–20, default 3).
    pub k: Option<usize>,
    /// `hybrid` (default), `bm25` or `vector`.
    pub mode: Option<Mode>,
}

async fn suggest(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<SuggestRequest>,
) -> Result<Json<SuggestResponse>, ApiError> {
    if req.utterance.trim().is_empty() {
        return Err(ApiError::invalid("`utterance` must not be empty"));
    }
    if req.utterance.chars().count() > 2000 {
        return Err(ApiError::invalid(
            "`utterance` is longer than 2000 characters",
        ));
    }
    let k = req.k.unwrap_or(3);
    if !(1..=20).contains(&k) {
        return Err(ApiError::invalid("`k` must be between 1 and 20"));
    }
    let text = query_text(&req.utterance, &req.last_turns);
    let query = SuggestQuery {
        mode: req.mode.unwrap_or(Mode::Hybrid),
        text,
        language: req.language,
        product: req.product,
        scenario: req.scenario,
        k,
    };
    let out = suggest::suggest(&state.db, state.search.as_ref(), caller.org_id(), query).await?;
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    q: String,
    language: Option<String>,
    product: Option<String>,
    scenario: Option<String>,
    k: Option<usize>,
    mode: Option<Mode>,
}

async fn kb_search(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<SearchParams>, ApiError>,
) -> Result<Json<SuggestResponse>, ApiError> {
    let Query(p) = params?;
    if p.q.trim().is_empty() {
        return Err(ApiError::invalid("`q` must not be empty"));
    }
    let k = p.k.unwrap_or(10);
    if !(1..=50).contains(&k) {
        return Err(ApiError::invalid("`k` must be between 1 and 50"));
    }
    let query = SuggestQuery {
        mode: p.mode.unwrap_or(Mode::Hybrid),
        text: p.q,
        language: p.language,
        product: p.product,
        scenario: p.scenario,
        k,
    };
    let out = suggest::suggest(&state.db, state.search.as_ref(), caller.org_id(), query).await?;
    Ok(Json(out))
}
