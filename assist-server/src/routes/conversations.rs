//! Chats captured on work phones: `POST /v1/conversations/{id}/messages`
//! (a batch, stored once per client message id and risk-checked at once),
//! `GET /v1/conversations` and `GET /v1/conversations/{id}`.
//!
//! Who sees which conversations: a rep their own; a manager their team's;
//! compliance and admins the organisation's (audited with the caller's
//! `X-Access-Reason`); trainers none. Only reps (and their work phones) post.

use std::collections::HashSet;

use crate::extract::Query;
use assist_protocol::Role;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::alerts::{HitInContext, Origin, raise};
use crate::auth::Caller;
use crate::db::alerts::RiskEventRow;
use crate::db::chats::{
    Channel, ConversationRow, MessageRow, NewConversation, NewMessage, Sender, ensure_conversation,
    insert_message,
};
use crate::error::ApiError;
use crate::extract::Json;
use crate::risk::SpeakerRole;
use crate::state::AppState;
use crate::time::{now_ms, parse_rfc3339, rfc3339};

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

/// A batch of messages from one chat.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBatch {
    /// `wechat`, `wecom`, `sms` or `other`; needed when the conversation is new.
    pub channel: Option<Channel>,
    /// The customer's reference in your CRM.
    pub customer_ref: Option<String>,
    pub messages: Vec<IncomingMessage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomingMessage {
    /// The phone's id for the message; a resent message with the same id is stored once.
    pub client_message_id: String,
    pub sender: Sender,
    pub text: String,
    /// When it was sent (RFC 3339). Batches may arrive out of order.
    pub sent_at: String,
}

/// What happened to one message of a batch.
#[derive(Debug, Serialize)]
pub struct MessageResult {
    pub client_message_id: String,
    /// The server's id (absent for a duplicate within this batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Already stored by an earlier batch (or earlier in this one).
    pub duplicate: bool,
    /// Risks found in this message (only when it was new).
    pub risks: Vec<RiskSummary>,
}

/// A risk found in a message, as the sending phone sees it.
#[derive(Debug, Serialize)]
pub struct RiskSummary {
    pub category: String,
    pub severity: String,
    /// `alert` or `block`.
    pub action: String,
    pub char_start: i64,
    pub char_end: i64,
    /// Why it raised no alert (`negated`, `role`, `rate_limited`), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<String>,
}

impl From<&RiskEventRow> for RiskSummary {
    fn from(e: &RiskEventRow) -> Self {
        RiskSummary {
            category: e.category.clone(),
            severity: e.severity.clone(),
            action: e.action.clone(),
            char_start: e.char_start,
            char_end: e.char_end,
            suppressed: e.suppressed.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BatchResult {
    pub conversation_id: String,
    pub accepted: usize,
    pub duplicates: usize,
    /// Alerts raised or repeated by this batch.
    pub alerts: usize,
    pub messages: Vec<MessageResult>,
}

fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    if assist_protocol::is_valid_conversation_id(id) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{what} `{}` must be {}",
            id.chars().take(64).collect::<String>(),
            assist_protocol::CONVERSATION_ID_RULE
        )))
    }
}

struct Checked {
    msg: NewMessage,
    duplicate_in_batch: bool,
}

/// Validate every message; the first problem is reported with its index.
fn validate(state: &AppState, batch: MessageBatch) -> Result<Vec<Checked>, ApiError> {
    let cfg = &state.config.alerts;
    if batch.messages.is_empty() {
        return Err(ApiError::invalid("`messages` is empty"));
    }
    if batch.messages.len() > cfg.chat_max_batch {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} messages in one batch; send at most {} per request",
            batch.messages.len(),
            cfg.chat_max_batch
        )));
    }
    let future_limit = now_ms() + 24 * 3600 * 1000;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(batch.messages.len());
    for (i, m) in batch.messages.into_iter().enumerate() {
        check_id(
            &format!("messages[{i}].client_message_id"),
            &m.client_message_id,
        )?;
        if m.text.trim().is_empty() {
            return Err(ApiError::invalid(format!(
                "messages[{i}].text is empty; send only text messages (describe media as text, e.g. \"[image]\")"
            )));
        }
        let chars = m.text.chars().count();
        if chars > cfg.chat_max_chars {
            return Err(ApiError::invalid(format!(
                "messages[{i}].text has {chars} characters; the limit is {}",
                cfg.chat_max_chars
            )));
        }
        let sent_at = parse_rfc3339(&m.sent_at).ok_or_else(|| {
            ApiError::invalid(format!(
                "messages[{i}].sent_at `{}` is not an RFC 3339 time such as 2026-11-24T09:30:00+08:00",
                m.sent_at.chars().take(64).collect::<String>()
            ))
        })?;
        if sent_at > future_limit {
            return Err(ApiError::invalid(format!(
                "messages[{i}].sent_at {} is more than a day in the future; check the phone's clock",
                m.sent_at
            )));
        }
        let duplicate_in_batch = !seen.insert(m.client_message_id.clone());
        out.push(Checked {
            msg: NewMessage {
                id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
                client_message_id: m.client_message_id,
                sender: m.sender,
                text: m.text,
                sent_at,
            },
            duplicate_in_batch,
        });
    }
    Ok(out)
}

async fn post_messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(conversation_id): Path<String>,
    Json(batch): Json<MessageBatch>,
) -> Result<axum::Json<BatchResult>, ApiError> {
    let received = std::time::Instant::now();
    caller.require(&[Role::Rep])?;
    check_id("the conversation id", &conversation_id)?;
    if let Some(c) = &batch.customer_ref
        && c.chars().count() > 200
    {
        return Err(ApiError::invalid(
            "customer_ref is longer than 200 characters",
        ));
    }
    let org_id = caller.org_id().to_string();
    let existing = match state.db.get_conversation(&org_id, &conversation_id).await {
        Ok(c) => Some(c),
        Err(crate::db::DbError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(c) = &existing
        && c.rep_user_id != caller.user.id
    {
        return Err(ApiError::forbidden(
            "this conversation belongs to another rep's phone",
        ));
    }
    let channel = match (batch.channel, &existing) {
        (Some(ch), _) => ch,
        (None, Some(c)) => c.channel,
        (None, None) => {
            return Err(ApiError::invalid(
                "a new conversation needs `channel` (wechat, wecom, sms or other)",
            ));
        }
    };
    let customer_ref = batch.customer_ref.clone();
    let checked = validate(&state, batch)?;

    // Risk-check only messages not stored before (embedding is the costly part).
    let ids: Vec<&str> = checked
        .iter()
        .map(|c| c.msg.client_message_id.as_str())
        .collect();
    let known = if existing.is_some() {
        state
            .db
            .known_client_ids(&org_id, &conversation_id, &ids)
            .await?
    } else {
        HashSet::new()
    };
    let fresh: Vec<usize> = (0..checked.len())
        .filter(|&i| {
            !checked[i].duplicate_in_batch && !known.contains(&checked[i].msg.client_message_id)
        })
        .collect();
    let texts: Vec<(&str, SpeakerRole)> = fresh
        .iter()
        .map(|&i| {
            let m = &checked[i].msg;
            let role = match m.sender {
                Sender::Rep => SpeakerRole::Rep,
                Sender::Customer => SpeakerRole::Customer,
            };
            (m.text.as_str(), role)
        })
        .collect();
    let hits = state
        .screening
        .check_all(&state.db, &org_id, &texts)
        .await?;
    let mut hits_of: Vec<Vec<crate::risk::RiskHit>> = vec![Vec::new(); checked.len()];
    for (&i, h) in fresh.iter().zip(hits) {
        hits_of[i] = h;
    }

    let new_conversation = NewConversation {
        org_id: org_id.clone(),
        id: conversation_id.clone(),
        rep_user_id: caller.user.id.clone(),
        team_id: caller.user.team_id.clone(),
        device_id: caller.device_id.clone(),
        channel,
        customer_ref,
    };
    let writer = state.alerts.writer().await;
    let mut tx = state.db.pool().begin().await.map_err(ApiError::internal)?;
    let now = now_ms();
    let conversation = ensure_conversation(&mut tx, &new_conversation, now).await?;
    let mut results = Vec::with_capacity(checked.len());
    let mut in_context = Vec::new();
    let mut stored_at = Vec::new();
    for (c, hits) in checked.iter().zip(hits_of) {
        let new = !c.duplicate_in_batch
            && insert_message(&mut tx, &org_id, &conversation.id, &c.msg, now).await?;
        if new {
            stored_at.push(results.len());
            for hit in hits {
                in_context.push((
                    results.len(),
                    HitInContext {
                        origin: Origin::Chat {
                            conversation_id: conversation.id.clone(),
                            message_id: c.msg.id.clone(),
                        },
                        rep_user_id: conversation.rep_user_id.clone(),
                        team_id: conversation.team_id.clone(),
                        speaker: c.msg.sender.as_str().to_string(),
                        hit,
                    },
                ));
            }
        }
        results.push(MessageResult {
            client_message_id: c.msg.client_message_id.clone(),
            id: new.then(|| c.msg.id.clone()),
            duplicate: !new,
            risks: Vec::new(),
        });
    }
    let owners: Vec<usize> = in_context.iter().map(|(i, _)| *i).collect();
    let raised = raise(
        &mut tx,
        &state.db,
        &state.config.alerts,
        &org_id,
        in_context.into_iter().map(|(_, h)| h).collect(),
    )
    .await?;
    tx.commit().await.map_err(ApiError::internal)?;
    drop(writer);
    state.publish_alerts(&raised).await;
    if !raised.alerts.is_empty() {
        // Request received → alert committed and streams woken.
        metrics::histogram!("assist_alert_publish_seconds", "source" => "chat")
            .record(received.elapsed().as_secs_f64());
    }
    for (owner, event) in owners.iter().zip(&raised.events) {
        results[*owner].risks.push(RiskSummary::from(event));
    }
    let accepted = stored_at.len();
    metrics::counter!("assist_chat_messages_total").increment(accepted as u64);
    Ok(axum::Json(BatchResult {
        conversation_id: conversation.id,
        accepted,
        duplicates: results.len() - accepted,
        alerts: raised.alerts.len(),
        messages: results,
    }))
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
            crate::extract::page_limit(q.limit, 100, 1000)?,
        )
        .await?;
    Ok(axum::Json(rows.into_iter().map(view).collect()))
}
