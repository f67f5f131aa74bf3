//! Chats captured on work phones: `POST /v1/conversations/{id}/messages`
//! (a batch, stored once per client message id and risk-checked at once),
//! `GET /v1/conversations` and `GET /v1/conversations/{id}`.
//!
//! Who sees which conversations: a rep their own; a manager their team's;
//! compliance and admins the organisation's (audited with the caller's
//! `X-Access-Reason`); trainers none. Only reps (and their work phones) post.

use assist_protocol::Role;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::caller::Caller;
use crate::chats::{self, BatchResult, MessageBatch};
use crate::db::alerts::RiskEventRow;
use crate::db::chats::{Channel, ConversationRow, MessageRow, Sender};
use crate::error::ApiError;
use crate::http::extract::Json;
use crate::http::extract::Query;
use crate::state::AppState;
use crate::time::rfc3339;

/// Largest request body of a message batch.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/conversations", get(list))
        .route("/conversations/{id}", get(show))
        .route(
            "/conversations/{id}/messages",
            post(post_messages).layer(DefaultBodyLimit::max(MAX_BATCH_BYTES)),
        )
}

async fn post_messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(conversation_id): Path<String>,
    Json(batch): Json<MessageBatch>,
) -> Result<axum::Json<BatchResult>, ApiError> {
    let out = chats::post_messages(state.alert_ingest(), &caller, &conversation_id, batch).await?;
    Ok(axum::Json(out))
}

/// 404 (not 403) for conversations the caller may not see, so ids do not leak.
fn may_see(caller: &Caller, c: &ConversationRow) -> Result<(), ApiError> {
    let hidden = || ApiError::not_found(format!("no conversation `{}`", c.id));
    match caller.role() {
        Role::Rep if c.rep_user_id == caller.user.id => Ok(()),
        Role::Manager if c.team_id.is_some() && c.team_id == caller.user.team_id => Ok(()),
        Role::Compliance | Role::Admin => Ok(()),
        Role::Trainer => Err(ApiError::forbidden(
            "trainers do not read chats; the knowledge base is theirs",
        )),
        Role::Rep | Role::Manager => Err(hidden()),
    }
}

#[derive(Debug, Serialize)]
pub struct ConversationView {
    pub id: String,
    pub rep_user_id: String,
    pub team_id: Option<String>,
    pub device_id: Option<String>,
    pub channel: Channel,
    pub customer_ref: Option<String>,
    pub created_at: String,
    pub last_message_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<MessageView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_events: Option<Vec<RiskEventRow>>,
}

#[derive(Debug, Serialize)]
pub struct MessageView {
    pub id: String,
    pub client_message_id: String,
    pub sender: Sender,
    pub text: String,
    pub sent_at: String,
    pub received_at: String,
}

impl From<MessageRow> for MessageView {
    fn from(m: MessageRow) -> Self {
        MessageView {
            id: m.id,
            client_message_id: m.client_message_id,
            sender: m.sender,
            text: m.text,
            sent_at: rfc3339(m.sent_at),
            received_at: rfc3339(m.received_at),
        }
    }
}

fn view(c: ConversationRow) -> ConversationView {
    ConversationView {
        id: c.id,
        rep_user_id: c.rep_user_id,
        team_id: c.team_id,
        device_id: c.device_id,
        channel: c.channel,
        customer_ref: c.customer_ref,
        created_at: rfc3339(c.created_at),
        last_message_at: rfc3339(c.last_message_at),
        messages: None,
        risk_events: None,
    }
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<ConversationView>, ApiError> {
    let c = state.db.get_conversation(caller.org_id(), &id).await?;
    may_see(&caller, &c)?;
    // Every read of chat text is audited, whoever reads it.
    state
        .db
        .audit(caller.audit("conversation.read", "conversation", Some(&c.id)))
        .await?;
    let messages = state.db.conversation_messages(caller.org_id(), &id).await?;
    let events = state
        .db
        .risk_events(caller.org_id(), None, Some(&id), None)
        .await?;
    let mut v = view(c);
    v.messages = Some(messages.into_iter().map(MessageView::from).collect());
    v.risk_events = Some(events);
    Ok(axum::Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<ConversationView>>, ApiError> {
    let (rep, team) = match caller.role() {
        Role::Rep => (Some(caller.user.id.clone()), None),
        Role::Manager => match &caller.user.team_id {
            Some(t) => (None, Some(t.clone())),
            None => return Ok(axum::Json(Vec::new())),
        },
        Role::Compliance | Role::Admin => (None, None),
        Role::Trainer => {
            return Err(ApiError::forbidden(
                "trainers do not read chats; the knowledge base is theirs",
            ));
        }
    };
    let rows = state
        .db
        .list_conversations(
            caller.org_id(),
            rep.as_deref(),
            team.as_deref(),
            crate::http::extract::page_limit(q.limit, 100, 1000)?,
        )
        .await?;
    Ok(axum::Json(rows.into_iter().map(view).collect()))
}
