//! Chats captured on work phones: conversations and their messages.
//!
//! A conversation's id is chosen by the device (the chat thread it captured),
//! unique within an organisation. A message's `client_message_id` is unique
//! within its conversation: a retried batch stores each message once
//! (`INSERT … ON CONFLICT DO NOTHING`), so devices can resend freely.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, DbResult};

/// Where a chat happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Wechat,
    Wecom,
    Sms,
    Other,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Wechat => "wechat",
            Channel::Wecom => "wecom",
            Channel::Sms => "sms",
            Channel::Other => "other",
        }
    }

    fn parse(s: &str) -> DbResult<Self> {
        Ok(match s {
            "wechat" => Channel::Wechat,
            "wecom" => Channel::Wecom,
            "sms" => Channel::Sms,
            "other" => Channel::Other,
            other => return Err(DbError::Invalid(format!("unknown channel `{other}`"))),
        })
    }
}

/// Who sent a chat message (the wire type: rep or customer, never unknown).
pub use assist_protocol::device::ChatSender as Sender;

fn parse_sender(s: &str) -> DbResult<Sender> {
    match s {
        "rep" => Ok(Sender::Rep),
        "customer" => Ok(Sender::Customer),
        other => Err(DbError::Invalid(format!("unknown sender `{other}`"))),
    }
}

/// A conversation row.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationRow {
    pub id: String,
    pub org_id: String,
    pub rep_user_id: String,
    pub team_id: Option<String>,
    pub device_id: Option<String>,
    pub channel: Channel,
    pub customer_ref: Option<String>,
    pub created_at: i64,
    pub last_message_at: i64,
}

/// Who owns a new conversation (taken from the first batch that names it).
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub org_id: String,
    pub id: String,
    pub rep_user_id: String,
    pub team_id: Option<String>,
    pub device_id: Option<String>,
    pub channel: Channel,
    pub customer_ref: Option<String>,
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub client_message_id: String,
    pub sender: Sender,
    pub text: String,
    /// When the phone says it was sent (unix ms); may be out of order.
    pub sent_at: i64,
}

/// What a stored message said, to tell a retry from a reused id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredContent {
    pub sender: String,
    pub text: String,
    pub sent_at: i64,
}

impl StoredContent {
    /// Whether `m` is this message sent again.
    pub fn is(&self, m: &NewMessage) -> bool {
        self.sender == m.sender.as_str() && self.text == m.text && self.sent_at == m.sent_at
    }
}

fn stored_content(r: &AnyRow) -> DbResult<StoredContent> {
    Ok(StoredContent {
        sender: r.try_get("sender")?,
        text: r.try_get("text")?,
        sent_at: r.try_get("sent_at")?,
    })
}

/// A stored message.
#[derive(Debug, Clone, Serialize)]
pub struct MessageRow {
    pub id: String,
    pub conversation_id: String,
    pub client_message_id: String,
    pub sender: Sender,
    pub text: String,
    pub sent_at: i64,
    pub received_at: i64,
}

const CONVERSATION_COLUMNS: &str = "id, org_id, rep_user_id, team_id, device_id, channel, customer_ref, created_at, last_message_at";
const MESSAGE_COLUMNS: &str =
    "id, conversation_id, client_message_id, sender, text, sent_at, received_at";

fn conversation_row(r: &AnyRow) -> DbResult<ConversationRow> {
    Ok(ConversationRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        rep_user_id: r.try_get("rep_user_id")?,
        team_id: r.try_get("team_id")?,
        device_id: r.try_get("device_id")?,
        channel: Channel::parse(&r.try_get::<String, _>("channel")?)?,
        customer_ref: r.try_get("customer_ref")?,
        created_at: r.try_get("created_at")?,
        last_message_at: r.try_get("last_message_at")?,
    })
}

fn message_row(r: &AnyRow) -> DbResult<MessageRow> {
    Ok(MessageRow {
        id: r.try_get("id")?,
        conversation_id: r.try_get("conversation_id")?,
        client_message_id: r.try_get("client_message_id")?,
        sender: parse_sender(&r.try_get::<String, _>("sender")?)?,
        text: r.try_get("text")?,
        sent_at: r.try_get("sent_at")?,
        received_at: r.try_get("received_at")?,
    })
}

/// Create the conversation if it is new; return it either way.
pub async fn ensure_conversation(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    new: &NewConversation,
    now: i64,
) -> DbResult<ConversationRow> {
    sqlx::query(
        "INSERT INTO conversations (org_id, id, rep_user_id, team_id, device_id, channel, customer_ref, created_at, last_message_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (org_id, id) DO NOTHING",
    )
    .bind(&new.org_id)
    .bind(&new.id)
    .bind(&new.rep_user_id)
    .bind(&new.team_id)
    .bind(&new.device_id)
    .bind(new.channel.as_str())
    .bind(&new.customer_ref)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let r = sqlx::query(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE org_id = $1 AND id = $2"
    ))
    .bind(&new.org_id)
    .bind(&new.id)
    .fetch_one(&mut **tx)
    .await?;
    let row = conversation_row(&r)?;
    if row.rep_user_id != new.rep_user_id {
        // Another rep's phone created it first (perhaps a moment ago).
        return Err(DbError::KeyConflict(taken_conversation(&new.id)));
    }
    Ok(row)
}

/// Why a conversation id another rep's phone uses cannot be used.
pub fn taken_conversation(id: &str) -> String {
    format!(
        "conversation id `{id}` is already used by another rep's phone in this organisation; \
         choose ids unique to the phone (e.g. prefix them with the device id)"
    )
}

/// Store a message unless its client id is already in the conversation.
/// Returns `true` when it was new.
pub async fn insert_message(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    org_id: &str,
    conversation_id: &str,
    m: &NewMessage,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "INSERT INTO chat_messages (id, org_id, conversation_id, client_message_id, sender, text, sent_at, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (org_id, conversation_id, client_message_id) DO NOTHING",
    )
    .bind(&m.id)
    .bind(org_id)
    .bind(conversation_id)
    .bind(&m.client_message_id)
    .bind(m.sender.as_str())
    .bind(&m.text)
    .bind(m.sent_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let new = done.rows_affected() == 1;
    if !new {
        // Stored before (a retry, or a request racing this one): it must be
        // the same message, or the phone reused an id for another one.
        let r = sqlx::query(
            "SELECT sender, text, sent_at FROM chat_messages \
             WHERE org_id = $1 AND conversation_id = $2 AND client_message_id = $3",
        )
        .bind(org_id)
        .bind(conversation_id)
        .bind(&m.client_message_id)
        .fetch_one(&mut **tx)
        .await?;
        if !stored_content(&r)?.is(m) {
            return Err(DbError::KeyConflict(format!(
                "client_message_id `{}` was already used for a different message in this conversation",
                m.client_message_id
            )));
        }
    }
    if new {
        sqlx::query(
            "UPDATE conversations SET last_message_at = $1 WHERE org_id = $2 AND id = $3 AND last_message_at < $1",
        )
        .bind(m.sent_at.max(0))
        .bind(org_id)
        .bind(conversation_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(new)
}

impl Db {
    pub async fn get_conversation(&self, org_id: &str, id: &str) -> DbResult<ConversationRow> {
        let r = sqlx::query(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| DbError::NotFound(format!("no conversation `{id}`")))?;
        conversation_row(&r)
    }

    /// Messages of a conversation in the order they were sent (ties: arrival).
    pub async fn conversation_messages(
        &self,
        org_id: &str,
        conversation_id: &str,
    ) -> DbResult<Vec<MessageRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE org_id = $1 AND conversation_id = $2 \
             ORDER BY sent_at, received_at, id"
        ))
        .bind(org_id)
        .bind(conversation_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(message_row).collect()
    }

    /// Which of `client_ids` the conversation already holds.
    pub async fn known_messages(
        &self,
        org_id: &str,
        conversation_id: &str,
        client_ids: &[&str],
    ) -> DbResult<std::collections::HashMap<String, StoredContent>> {
        let mut known = std::collections::HashMap::new();
        // Chunks keep the statement under every backend's parameter limit.
        for chunk in client_ids.chunks(200) {
            let placeholders = (0..chunk.len())
                .map(|i| format!("${}", i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT client_message_id, sender, text, sent_at FROM chat_messages \
                 WHERE org_id = $1 AND conversation_id = $2 AND client_message_id IN ({placeholders})"
            );
            let mut q = sqlx::query(&sql).bind(org_id).bind(conversation_id);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(self.pool()).await? {
                known.insert(
                    r.try_get::<String, _>("client_message_id")?,
                    stored_content(&r)?,
                );
            }
        }
        Ok(known)
    }

    /// Conversations, newest activity first, optionally one rep's or one team's.
    pub async fn list_conversations(
        &self,
        org_id: &str,
        rep_user_id: Option<&str>,
        team_id: Option<&str>,
        limit: i64,
    ) -> DbResult<Vec<ConversationRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE org_id = $1 \
             AND ($2 = '' OR rep_user_id = $2) AND ($3 = '' OR team_id = $3) \
             ORDER BY last_message_at DESC LIMIT $4"
        ))
        .bind(org_id)
        .bind(rep_user_id.unwrap_or(""))
        .bind(team_id.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(conversation_row).collect()
    }
}
