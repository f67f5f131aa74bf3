//! `POST /v1/suggest` and `GET /v1/kb/search`: approved scripts for what the
//! customer just said, best first, each with why it was found.

use crate::extract::Query;
use assist_indexer::bm25::SearchFilter;
use assist_indexer::retriever::Mode;
use assist_knowledge_base::{Language, Scenario, ScriptContent};
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::db::kb::KbContent;
use crate::error::ApiError;
use crate::extract::Json;
use crate::search::SearchService;
use crate::state::AppState;

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

#[derive(Debug, Serialize)]
pub struct Why {
    pub bm25_rank: Option<usize>,
    pub vector_rank: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct Suggestion {
    pub script_id: String,
    pub version: i64,
    pub title: String,
    pub body: String,
    pub scenario: Scenario,
    pub language: Language,
    pub products: Vec<String>,
    pub score: f64,
    pub why: Why,
}

#[derive(Debug, Serialize)]
pub struct SuggestResponse {
    pub suggestions: Vec<Suggestion>,
    pub mode: Mode,
    pub took_ms: f64,
}

fn service(state: &AppState) -> Result<&SearchService, ApiError> {
    state.search.as_ref().ok_or_else(|| {
        ApiError::ModelMissing(
            "script search is not running: the embedder is not ready; run `assist models fetch --only embedder` and restart".into(),
        )
    })
}

fn check_filters(language: &Option<String>, scenario: &Option<String>) -> Result<(), ApiError> {
    if let Some(l) = language
        && Language::parse(l).is_none()
    {
        return Err(ApiError::invalid(format!(
            "unknown language `{l}` (zh or en)"
        )));
    }
    if let Some(s) = scenario
        && Scenario::parse(s).is_none()
    {
        return Err(ApiError::invalid(format!("unknown scenario `{s}`")));
    }
    Ok(())
}

/// Short utterances lean on the turn before them.
pub(crate) fn query_text(utterance: &str, last_turns: &[String]) -> String {
    let u = utterance.trim();
    if u.chars().filter(|c| c.is_alphanumeric()).count() < 6
        && let Some(prev) = last_turns.last()
    {
        return format!("{} {u}", prev.trim());
    }
    u.to_string()
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    state: &AppState,
    caller: &Caller,
    mode: Mode,
    text: &str,
    language: Option<String>,
    product: Option<String>,
    scenario: Option<String>,
    k: usize,
) -> Result<SuggestResponse, ApiError> {
    check_filters(&language, &scenario)?;
    let search = service(state)?;
    let filter = SearchFilter {
        org_id: caller.org_id().to_string(),
        language: language
            .as_deref()
            .and_then(Language::parse)
            .map(|l| l.as_str().to_string()),
        scenario: scenario
            .as_deref()
            .and_then(Scenario::parse)
            .map(|s| s.as_str().to_string()),
        product,
    };
    let (hits, took_ms) = search.search(mode, text, filter, k).await?;
    let mut suggestions = Vec::with_capacity(hits.len());
    for hit in hits {
        // Always the approved version: an edit under review is never shown.
        let item = match state.db.kb_get(caller.org_id(), &hit.id).await {
            Ok(item) => item,
            Err(_) => continue,
        };
        let Some(version) = item.approved_version else {
            continue;
        };
        let content: ScriptContent = match item.approved.unwrap_or(item.head) {
            KbContent::Script(c) => c,
            KbContent::Lexicon(_) => continue,
        };
        suggestions.push(Suggestion {
            script_id: item.external_id.unwrap_or(item.id),
            version,
            title: content.title,
            body: content.body,
            scenario: content.scenario,
            language: content.language,
            products: content.products,
            score: hit.score,
            why: Why {
                bm25_rank: hit.bm25_rank,
                vector_rank: hit.vector_rank,
            },
        });
    }
    Ok(SuggestResponse {
        suggestions,
        mode,
        took_ms,
    })
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
    let out = run(
        &state,
        &caller,
        req.mode.unwrap_or(Mode::Hybrid),
        &text,
        req.language,
        req.product,
        req.scenario,
        k,
    )
    .await?;
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
    let out = run(
        &state,
        &caller,
        p.mode.unwrap_or(Mode::Hybrid),
        &p.q,
        p.language,
        p.product,
        p.scenario,
        k,
    )
    .await?;
    Ok(Json(out))
}
