//! Chats captured on work phones: a batch of one conversation's messages is
//! validated, stored once per client message id and risk-checked, and its
//! alerts are raised in the same transaction
//! ([`crate::alerts::AlertIngest`]).

use assist_protocol::{Role, Speaker};
use serde::{Deserialize, Serialize};

use crate::alerts::{AlertIngest, Commit, Line, Origin, Owner, Writes, Written};
use crate::caller::Caller;
use crate::config::AlertsConfig;
use crate::db::alerts::RiskEventRow;
use crate::db::chats::{
    Channel, ConversationRow, NewConversation, NewMessage, Sender, ensure_conversation,
    insert_message, taken_conversation,
};
use crate::error::ApiError;
use crate::time::{now_ms, parse_rfc3339};

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

struct Incoming {
    msg: NewMessage,
    duplicate_in_batch: bool,
}

/// Validate every message; the first problem is reported with its index.
fn validate(cfg: &AlertsConfig, batch: MessageBatch) -> Result<Vec<Incoming>, ApiError> {
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
    let total: usize = batch.messages.iter().map(|m| m.text.chars().count()).sum();
    if total > cfg.chat_max_batch_chars {
        return Err(ApiError::PayloadTooLarge(format!(
            "the batch's messages have {total} characters together; send at most {} per request (split the batch)",
            cfg.chat_max_batch_chars
        )));
    }
    let future_limit = now_ms() + 24 * 3600 * 1000;
    let mut seen = std::collections::HashMap::new();
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
        let duplicate_in_batch = match seen.get(&m.client_message_id) {
            None => {
                seen.insert(m.client_message_id.clone(), out.len());
                false
            }
            Some(&first) => {
                let f: &Incoming = &out[first];
                if f.msg.sender != m.sender || f.msg.text != m.text || f.msg.sent_at != sent_at {
                    return Err(ApiError::IdempotencyConflict(format!(
                        "messages[{i}] and messages[{first}] share client_message_id `{}` but differ",
                        m.client_message_id
                    )));
                }
                true
            }
        };
        out.push(Incoming {
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

/// Store a batch of one chat's messages (each once per client message id)
/// and raise alerts for what the new ones say, in one transaction.
pub async fn post_messages(
    ingest: AlertIngest<'_>,
    caller: &Caller,
    conversation_id: &str,
    batch: MessageBatch,
) -> Result<BatchResult, ApiError> {
    let received = std::time::Instant::now();
    caller.require(&[Role::Rep])?;
    check_id("the conversation id", conversation_id)?;
    if let Some(c) = &batch.customer_ref
        && c.chars().count() > 200
    {
        return Err(ApiError::invalid(
            "customer_ref is longer than 200 characters",
        ));
    }
    let db = ingest.db;
    let org_id = caller.org_id().to_string();
    let existing = match db.get_conversation(&org_id, conversation_id).await {
        Ok(c) => Some(c),
        Err(crate::db::DbError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(c) = &existing
        && c.rep_user_id != caller.user.id
    {
        return Err(ApiError::IdempotencyConflict(taken_conversation(
            conversation_id,
        )));
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
    let incoming = validate(ingest.config, batch)?;

    // Risk-check only messages not stored before (embedding is the costly part).
    let ids: Vec<&str> = incoming
        .iter()
        .map(|c| c.msg.client_message_id.as_str())
        .collect();
    let known = if existing.is_some() {
        db.known_messages(&org_id, conversation_id, &ids).await?
    } else {
        Default::default()
    };
    // A resent message is stored once; an id reused for another message is
    // refused with its index (nothing is stored), never dropped silently.
    for (i, c) in incoming.iter().enumerate() {
        let reused = match known.get(&c.msg.client_message_id) {
            Some(stored) => !stored.is(&c.msg),
            None => false,
        };
        if reused {
            return Err(ApiError::IdempotencyConflict(format!(
                "messages[{i}].client_message_id `{}` was already used for a different message in this conversation",
                c.msg.client_message_id
            )));
        }
    }
    // Line `l` of the check is message `line_msg[l]` of the batch.
    let line_msg: Vec<usize> = (0..incoming.len())
        .filter(|&i| {
            let c = &incoming[i];
            !c.duplicate_in_batch && !known.contains_key(&c.msg.client_message_id)
        })
        .collect();
    let lines: Vec<Line<'_>> = line_msg
        .iter()
        .map(|&i| {
            let c = &incoming[i];
            Line {
                origin: Origin::Chat {
                    conversation_id: conversation_id.to_string(),
                    message_id: c.msg.id.clone(),
                },
                speaker: Speaker::from(c.msg.sender),
                text: &c.msg.text,
            }
        })
        .collect();
    // Alerts go to the conversation's team (a rep who moved keeps old chats there).
    let owner = Owner {
        org_id: &org_id,
        rep_user_id: &caller.user.id,
        team_id: match &existing {
            Some(c) => c.team_id.as_deref(),
            None => caller.user.team_id.as_deref(),
        },
    };
    let checked = ingest.check(owner, &lines).await?;
    drop(lines);

    let new_conversation = NewConversation {
        org_id: org_id.clone(),
        id: conversation_id.to_string(),
        rep_user_id: caller.user.id.clone(),
        team_id: caller.user.team_id.clone(),
        device_id: caller.device_id.clone(),
        channel,
        customer_ref,
    };
    let msg_of_line = line_msg.clone();
    let writes: Writes<Stored> = Box::new(move |tx| {
        Box::pin(async move {
            let now = now_ms();
            let conversation = ensure_conversation(tx, &new_conversation, now).await?;
            let mut new = Vec::with_capacity(incoming.len());
            for c in &incoming {
                new.push(
                    !c.duplicate_in_batch
                        && insert_message(tx, &org_id, &conversation.id, &c.msg, now).await?,
                );
            }
            let new_lines = msg_of_line.iter().map(|&i| new[i]).collect();
            Ok(Written {
                value: Stored {
                    conversation,
                    incoming,
                    new,
                },
                new_lines: Some(new_lines),
            })
        })
    });
    let ingested = ingest.commit(checked, Commit::New, writes).await?;
    let Stored {
        conversation,
        incoming,
        new,
    } = ingested.value;
    let raised = ingested.raised;
    if !raised.alerts.is_empty() {
        // Request received → alert committed and streams woken.
        metrics::histogram!("assist_alert_publish_seconds", "source" => "chat")
            .record(received.elapsed().as_secs_f64());
    }
    let mut results: Vec<MessageResult> = incoming
        .iter()
        .zip(&new)
        .map(|(c, &new)| MessageResult {
            client_message_id: c.msg.client_message_id.clone(),
            id: new.then(|| c.msg.id.clone()),
            duplicate: !new,
            risks: Vec::new(),
        })
        .collect();
    for (line, event) in ingested.event_lines.iter().zip(&raised.events) {
        results[line_msg[*line]]
            .risks
            .push(RiskSummary::from(event));
    }
    let accepted = new.iter().filter(|n| **n).count();
    metrics::counter!("assist_chat_messages_total").increment(accepted as u64);
    Ok(BatchResult {
        conversation_id: conversation.id,
        accepted,
        duplicates: results.len() - accepted,
        alerts: raised.alerts.len(),
        messages: results,
    })
}

/// What the batch's transaction stored.
struct Stored {
    conversation: ConversationRow,
    incoming: Vec<Incoming>,
    /// Per message: stored now (not a duplicate).
    new: Vec<bool>,
}
