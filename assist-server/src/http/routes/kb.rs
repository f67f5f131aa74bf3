//! `/v1/kb/{scripts|lexicon}`: the curated knowledge base.
//!
//! Trainers create and edit (every save is a new version), submit for review,
//! approve (a different trainer, unless self-approval is configured), reject
//! back to draft, and retire. Writes carry `expected_version` — the head the
//! editor saw — so a concurrent edit is a 409, never a silent overwrite.
//! Managers read scripts; compliance and admins read both kinds.

use crate::http::extract::Query;
use assist_knowledge_base::io::{Format, decode_utf8, parse_lexicon, parse_scripts};
use assist_knowledge_base::validate::Limits;
use assist_knowledge_base::{Kind, LexiconContent, ReviewPolicy, ScriptContent, Status};
use assist_protocol::{ErrorCode, Role};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::caller::Caller;
use crate::db::kb::{KbContent, KbFilter, KbItem};
use crate::error::ApiError;
use crate::http::extract::Json;
use crate::http::status::status_for;
use crate::state::AppState;
use crate::time::rfc3339;

pub fn router(max_import_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/kb/{kind}", get(list).post(create))
        .route(
            "/kb/{kind}/import",
            post(import).layer(DefaultBodyLimit::max(max_import_bytes)),
        )
        .route("/kb/{kind}/export", get(export))
        .route("/kb/{kind}/{id}", get(get_item).put(update))
        .route("/kb/{kind}/{id}/history", get(history))
        .route("/kb/{kind}/{id}/{action}", post(transition))
}

fn kind_of(path: &str) -> Result<Kind, ApiError> {
    match path {
        "scripts" | "script" => Ok(Kind::Script),
        "lexicon" | "risk-lexicon" => Ok(Kind::Lexicon),
        other => Err(ApiError::not_found(format!(
            "no knowledge-base collection `{other}` (use scripts or lexicon)"
        ))),
    }
}

fn may_read(caller: &Caller, kind: Kind) -> Result<(), ApiError> {
    match kind {
        Kind::Script => {
            caller.require(&[Role::Trainer, Role::Manager, Role::Compliance, Role::Admin])
        }
        Kind::Lexicon => caller.require(&[Role::Trainer, Role::Compliance, Role::Admin]),
    }
}

fn may_edit(caller: &Caller) -> Result<(), ApiError> {
    caller.require(&[Role::Trainer])
}

/// An item as the API shows it.
#[derive(Debug, Serialize)]
pub struct ItemView {
    id: String,
    external_id: Option<String>,
    kind: Kind,
    status: Status,
    version: i64,
    approved_version: Option<i64>,
    author_id: String,
    created_at: String,
    updated_at: String,
    content: KbContent,
    /// The live (approved) content while an edit of it is being reviewed.
    #[serde(skip_serializing_if = "Option::is_none")]
    live_content: Option<KbContent>,
}

fn view(i: KbItem) -> ItemView {
    ItemView {
        id: i.id,
        external_id: i.external_id,
        kind: i.kind,
        status: i.status,
        version: i.head_version,
        approved_version: i.approved_version,
        author_id: i.head_author_id,
        created_at: rfc3339(i.created_at),
        updated_at: rfc3339(i.updated_at),
        content: i.head,
        live_content: i.approved,
    }
}

fn content_from(kind: Kind, fields: Map<String, Value>) -> Result<KbContent, ApiError> {
    let value = Value::Object(fields);
    let parsed = match kind {
        Kind::Script => serde_json::from_value::<ScriptContent>(value).map(KbContent::Script),
        Kind::Lexicon => serde_json::from_value::<LexiconContent>(value).map(KbContent::Lexicon),
    };
    parsed.map_err(|e| ApiError::InvalidJson(format!("invalid {}: {e}", kind.as_str())))
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    /// Your own stable id (optional).
    id: Option<String>,
    #[serde(flatten)]
    fields: Map<String, Value>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Json<ItemView>), ApiError> {
    let kind = kind_of(&kind)?;
    may_edit(&caller)?;
    let content = content_from(kind, body.fields)?;
    let item = state
        .db
        .kb_create(
            caller.org_id(),
            &content,
            &caller.user.id,
            body.id.as_deref(),
            &Limits::default(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(item))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<Status>,
    scenario: Option<String>,
    category: Option<String>,
    language: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    params: Result<Query<ListParams>, ApiError>,
) -> Result<Json<Vec<ItemView>>, ApiError> {
    let kind = kind_of(&kind)?;
    may_read(&caller, kind)?;
    let Query(p) = params?;
    let filter = KbFilter {
        status: p.status,
        label: p.scenario.or(p.category),
        language: p.language,
        limit: crate::http::extract::page_limit(p.limit, 100, 1000)?,
        offset: p.offset.unwrap_or(0),
    };
    let items = state.db.kb_list(caller.org_id(), kind, &filter).await?;
    Ok(Json(items.into_iter().map(view).collect()))
}

async fn get_item(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Json<ItemView>, ApiError> {
    let kind = kind_of(&kind)?;
    may_read(&caller, kind)?;
    let item = state.db.kb_get(caller.org_id(), &id).await?;
    if item.kind != kind {
        return Err(ApiError::not_found(format!("no {} `{id}`", kind.as_str())));
    }
    Ok(Json(view(item)))
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    expected_version: i64,
    #[serde(flatten)]
    fields: Map<String, Value>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, id)): Path<(String, String)>,
    Json(body): Json<UpdateBody>,
) -> Result<Json<ItemView>, ApiError> {
    let kind = kind_of(&kind)?;
    may_edit(&caller)?;
    let content = content_from(kind, body.fields)?;
    let item = state
        .db
        .kb_update(
            caller.org_id(),
            &id,
            body.expected_version,
            &content,
            &caller.user.id,
            &Limits::default(),
        )
        .await?;
    Ok(Json(view(item)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionBody {
    expected_version: i64,
    note: Option<String>,
}

async fn transition(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, id, action)): Path<(String, String, String)>,
    Json(body): Json<TransitionBody>,
) -> Result<Json<ItemView>, ApiError> {
    let kind = kind_of(&kind)?;
    may_edit(&caller)?;
    let org = caller.org_id();
    let note = body.note.as_deref();
    let item = match action.as_str() {
        "submit" => {
            state
                .db
                .kb_transition(
                    org,
                    &id,
                    body.expected_version,
                    Status::InReview,
                    &caller.user.id,
                    note,
                )
                .await?
        }
        "reject" => {
            state
                .db
                .kb_transition(
                    org,
                    &id,
                    body.expected_version,
                    Status::Draft,
                    &caller.user.id,
                    note,
                )
                .await?
        }
        "retire" => {
            let item = state
                .db
                .kb_transition(
                    org,
                    &id,
                    body.expected_version,
                    Status::Retired,
                    &caller.user.id,
                    note,
                )
                .await?;
            if let Some(search) = &state.search
                && item.kind == Kind::Script
            {
                search.remove(vec![item.id.clone()]).await?;
            }
            if item.kind == Kind::Lexicon {
                state.screening.invalidate(org);
            }
            state
                .db
                .audit(caller.audit("kb.retire", kind.as_str(), Some(&item.id)))
                .await?;
            item
        }
        "approve" => {
            let policy = ReviewPolicy {
                allow_self_approval: state.config.kb.kb_allow_self_approval,
            };
            let (item, approved) = state
                .db
                .kb_approve(
                    org,
                    &id,
                    body.expected_version,
                    &caller.user.id,
                    policy,
                    note,
                )
                .await?;
            // Index at once; if this fails the startup check repairs it.
            if let (Some(search), Some(script)) = (&state.search, approved)
                && let Err(err) = search.index(vec![script]).await
            {
                tracing::error!(error = %err, item = %item.id, "approved script not indexed yet");
            }
            if item.kind == Kind::Lexicon {
                state.screening.invalidate(org);
            }
            state
                .db
                .audit(caller.audit("kb.approve", kind.as_str(), Some(&item.id)))
                .await?;
            item
        }
        other => {
            return Err(ApiError::not_found(format!(
                "no action `{other}` (use submit, approve, reject or retire)"
            )));
        }
    };
    if item.kind != kind {
        return Err(ApiError::not_found(format!("no {} `{id}`", kind.as_str())));
    }
    Ok(Json(view(item)))
}

async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let kind = kind_of(&kind)?;
    may_read(&caller, kind)?;
    let (item, versions, events) = state.db.kb_history(caller.org_id(), &id).await?;
    let mut out = Vec::new();
    let mut previous: Option<String> = None;
    for v in &versions {
        let text = v.content.diff_text();
        let diff = match &previous {
            Some(prev) => assist_knowledge_base::diff::unified(
                prev,
                &text,
                &format!("v{}", v.version - 1),
                &format!("v{}", v.version),
            ),
            None => String::new(),
        };
        out.push(json!({
            "version": v.version,
            "author_id": v.author_id,
            "created_at": rfc3339(v.created_at),
            "content": v.content,
            "diff": diff,
            "events": events.iter().filter(|e| e.version == v.version).map(|e| json!({
                "from": e.from_status, "to": e.to_status, "actor_id": e.actor_id,
                "note": e.note, "at": rfc3339(e.at),
            })).collect::<Vec<_>>(),
        }));
        previous = Some(text);
    }
    Ok(Json(json!({ "item": view(item), "versions": out })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportParams {
    format: Option<String>,
    #[serde(default)]
    skip_invalid: bool,
}

/// `POST /v1/kb/{kind}/import?format=csv|jsonl|markdown&skip_invalid=false`
/// with the file as the body. Every bad record is reported by number and
/// line; with errors nothing is imported unless `skip_invalid=true`.
async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    params: Result<Query<ImportParams>, ApiError>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let kind = kind_of(&kind)?;
    may_edit(&caller)?;
    let Query(p) = params?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!(
                "the import file is larger than {} bytes",
                state.config.kb.kb_max_import_bytes
            ))
        } else {
            ApiError::invalid(e.body_text())
        }
    })?;
    let format = match p.format.as_deref() {
        Some(f) => Format::parse(f).ok_or_else(|| {
            ApiError::invalid(format!("unknown format `{f}` (csv, jsonl, markdown)"))
        })?,
        None => {
            return Err(ApiError::invalid(
                "`format` is required (csv, jsonl or markdown)",
            ));
        }
    };
    let text = match decode_utf8(&body) {
        Ok(t) => t,
        Err(e) => return Ok(import_rejected(vec![e], 0)),
    };
    let limits = Limits::default();
    let (records, errors): (Vec<(Option<String>, KbContent)>, _) = match kind {
        Kind::Script => {
            let p = parse_scripts(text, format, &limits);
            (
                p.records
                    .into_iter()
                    .map(|r| (r.id, KbContent::Script(r.content)))
                    .collect(),
                p.errors,
            )
        }
        Kind::Lexicon => {
            let p = parse_lexicon(text, format, &limits);
            (
                p.records
                    .into_iter()
                    .map(|r| (r.id, KbContent::Lexicon(r.content)))
                    .collect(),
                p.errors,
            )
        }
    };
    if !errors.is_empty() && !p.skip_invalid {
        return Ok(import_rejected(errors, records.len()));
    }
    let summary = state
        .db
        .kb_import(caller.org_id(), &records, &caller.user.id, &|_| {})
        .await?;
    state
        .db
        .audit(caller.audit("kb.import", kind.as_str(), None))
        .await?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({
            "created": summary.created,
            "updated": summary.updated,
            "unchanged": summary.unchanged,
            "skipped": errors.len(),
            "errors": errors,
        })),
    )
        .into_response())
}

fn import_rejected(errors: Vec<assist_knowledge_base::io::RecordError>, valid: usize) -> Response {
    let first: Vec<String> = errors.iter().take(3).map(|e| e.to_string()).collect();
    (
        status_for(ErrorCode::InvalidRequest),
        axum::Json(json!({
            "code": ErrorCode::InvalidRequest,
            "message": format!(
                "{} invalid record(s), nothing imported ({} valid); fix them or pass skip_invalid=true. First: {}",
                errors.len(), valid, first.join(" | ")
            ),
            "errors": errors,
        })),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportParams {
    format: Option<String>,
    status: Option<Status>,
}

async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    params: Result<Query<ExportParams>, ApiError>,
) -> Result<Response, ApiError> {
    let kind = kind_of(&kind)?;
    may_read(&caller, kind)?;
    let Query(p) = params?;
    let format = match p.format.as_deref() {
        None => Format::Jsonl,
        Some(f) => Format::parse(f).ok_or_else(|| {
            ApiError::invalid(format!("unknown format `{f}` (csv, jsonl, markdown)"))
        })?,
    };
    let items = state
        .db
        .kb_list(
            caller.org_id(),
            kind,
            &KbFilter {
                status: p.status,
                limit: 10_000,
                ..KbFilter::default()
            },
        )
        .await?;
    let text = crate::kb::export_text(&items, kind, format).map_err(ApiError::invalid)?;
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Jsonl => "application/x-ndjson",
        Format::Markdown => "text/markdown; charset=utf-8",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}
