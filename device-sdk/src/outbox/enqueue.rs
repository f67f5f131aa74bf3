//! The app's side of the outbox: checking and storing new chats, device
//! events and recordings, each under its idempotency id, within the limits.

use std::io::{Read, Write};
use std::path::Path;

use assist_protocol::device::{ChatMessage, CreateUpload, DeviceEvent, DeviceEventKind};
use rusqlite::{OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};

use super::{Enqueued, ItemKind, NewChat, NewRecording, Outbox, RECORDINGS, StoredChat, store};
use crate::util::{check_client_id, new_id, now_ms, now_rfc3339};
use crate::{Error, Result};

impl Outbox {
    /// Queue a chat message.
    pub fn enqueue_chat(&self, chat: NewChat) -> Result<Enqueued> {
        check_conversation_id(&chat.conversation_id)?;
        check_chat_text(&chat.text)?;
        let key = given_or_new_id("client_message_id", chat.client_message_id, "msg")?;
        let sent_at = match chat.sent_at {
            Some(t) => {
                t.parse::<jiff::Timestamp>().map_err(|_| {
                    Error::Invalid(format!(
                        "sent_at `{t}` is not an RFC 3339 time such as 2026-11-24T09:30:00+08:00"
                    ))
                })?;
                t
            }
            None => now_rfc3339(),
        };
        let stored = StoredChat {
            channel: chat.channel,
            customer_ref: chat.customer_ref,
            message: ChatMessage {
                client_message_id: key.clone(),
                sender: chat.sender,
                text: chat.text,
                sent_at,
            },
        };
        let payload = serde_json::to_string(&stored).map_err(|e| Error::Invalid(e.to_string()))?;
        self.insert(store::NewRow {
            kind: ItemKind::Chat,
            key,
            conversation_id: Some(chat.conversation_id),
            payload,
            file: None,
            file_bytes: 0,
            report: None,
        })
    }

    /// Queue a device event with a fresh `event_id`.
    pub fn enqueue_event(&self, kind: DeviceEventKind) -> Result<Enqueued> {
        self.enqueue_event_with_id(new_id("evt"), kind)
    }

    /// Queue a device event under the caller's id (e.g. a feedback tap's
    /// `feedback_id`, so a tap sent both live and later is stored once).
    pub fn enqueue_event_with_id(
        &self,
        event_id: String,
        kind: DeviceEventKind,
    ) -> Result<Enqueued> {
        check_client_id("event_id", &event_id)?;
        let event = DeviceEvent {
            event_id: event_id.clone(),
            occurred_at: now_rfc3339(),
            kind,
        };
        let payload = serde_json::to_string(&event).map_err(|e| Error::Invalid(e.to_string()))?;
        self.insert(store::NewRow {
            kind: ItemKind::Event,
            key: event_id,
            conversation_id: None,
            payload,
            file: None,
            file_bytes: 0,
            report: None,
        })
    }

    /// Queue a recording: the file is copied into the outbox (fsync'd) and
    /// its SHA-256 computed, so the app may delete `path` once this returns.
    /// Blocking (file copy); call it from `spawn_blocking` in async code.
    pub fn enqueue_recording(&self, path: &Path, rec: NewRecording) -> Result<Enqueued> {
        let key = given_or_new_id("upload_key", rec.upload_key, "rec")?;
        if let Some(existing) = self.find_key(ItemKind::Recording, &key)? {
            return Ok(existing);
        }
        let len = recording_len(path)?;
        if len > self.inner.config.max_bytes {
            self.count_refused(ItemKind::Recording)?;
            return Err(self.full_error(ItemKind::Recording, len)?);
        }
        let filename = path
            .file_name()
            .map(|f| f.to_string_lossy().chars().take(255).collect::<String>());
        let file = format!("{key}{}", recording_extension(path));
        let dest = self.inner.dir.join(RECORDINGS).join(&file);
        let (size, sha256) = copy_durably(path, &dest)?;
        let upload = CreateUpload {
            upload_key: key.clone(),
            size,
            sha256,
            filename,
            metadata: rec.metadata,
        };
        let payload = serde_json::to_string(&upload).map_err(|e| Error::Invalid(e.to_string()))?;
        let result = self.insert(store::NewRow {
            kind: ItemKind::Recording,
            key,
            conversation_id: None,
            payload,
            file: Some(file),
            file_bytes: size,
            report: None,
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&dest);
        }
        result
    }

    fn find_key(&self, kind: ItemKind, key: &str) -> Result<Option<Enqueued>> {
        let found: Option<String> = self
            .conn()
            .query_row("SELECT kind FROM items WHERE idem_key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?;
        match found.as_deref().and_then(ItemKind::parse) {
            Some(k) if k == kind => Ok(Some(Enqueued {
                kind,
                key: key.to_string(),
                already_queued: true,
            })),
            Some(other) => Err(Error::Invalid(format!(
                "the id `{key}` is already queued for a {other}"
            ))),
            None => Ok(None),
        }
    }

    fn insert(&self, row: store::NewRow) -> Result<Enqueued> {
        let kind = row.kind;
        let key = row.key.clone();
        let needed = row.payload.len() as u64 + row.file_bytes;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<String> = tx
            .query_row("SELECT kind FROM items WHERE idem_key = ?1", [&key], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(k) = existing {
            return if k == kind.as_str() {
                Ok(Enqueued {
                    kind,
                    key,
                    already_queued: true,
                })
            } else {
                Err(Error::Invalid(format!(
                    "the id `{key}` is already queued for a {k}"
                )))
            };
        }
        if !store::make_room(&tx, &self.inner.config, kind, needed)? {
            store::count_refused(&tx, kind)?;
            tx.commit()?;
            drop(conn);
            return Err(self.full_error(kind, needed)?);
        }
        store::insert_row(&tx, &row, needed, now_ms())?;
        tx.commit()?;
        // Recordings dropped to make room: their files go after the commit.
        for f in store::take_unlinks(&conn)? {
            let _ = std::fs::remove_file(self.inner.dir.join(RECORDINGS).join(f));
        }
        Ok(Enqueued {
            kind,
            key,
            already_queued: false,
        })
    }

    fn count_refused(&self, kind: ItemKind) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        store::count_refused(&tx, kind)?;
        tx.commit()?;
        Ok(())
    }

    fn full_error(&self, kind: ItemKind, needed: u64) -> Result<Error> {
        let (items, used) = store::usage(&self.conn())?;
        Ok(Error::OutboxFull {
            item: kind.as_str(),
            needed,
            used,
            max_bytes: self.inner.config.max_bytes,
            items,
            max_items: self.inner.config.max_items,
        })
    }
}

/// The caller's id for `field` (checked), or a fresh one with `prefix`.
fn given_or_new_id(field: &str, given: Option<String>, prefix: &str) -> Result<String> {
    match given {
        Some(k) => {
            check_client_id(field, &k)?;
            Ok(k)
        }
        None => Ok(new_id(prefix)),
    }
}

/// Conversation ids as the chat route accepts them.
fn check_conversation_id(id: &str) -> Result<()> {
    if assist_protocol::is_valid_conversation_id(id) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "the conversation id `{}` must be {}",
            id.chars().take(64).collect::<String>(),
            assist_protocol::CONVERSATION_ID_RULE
        )))
    }
}

/// A chat text the chat route accepts: not blank, at most 8000 characters.
fn check_chat_text(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::Invalid("the message text is empty".into()));
    }
    if text.chars().count() > 8000 {
        return Err(Error::Invalid(
            "the message is longer than 8000 characters".into(),
        ));
    }
    Ok(())
}

/// The size of the recording at `path`, which must be a non-empty file.
fn recording_len(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    if meta.len() == 0 {
        return Err(Error::Invalid(format!(
            "{} is empty: there is nothing to upload",
            path.display()
        )));
    }
    Ok(meta.len())
}

/// `.ext` of the recording for its copy's name, if it is short and plain
/// (letters and digits only); empty otherwise.
fn recording_extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(|e| format!(".{e}"))
        .unwrap_or_default()
}

/// Copy `src` to `dest` through a temporary name, fsync the file and the
/// directory, and return the size and the lower-case hex SHA-256.
fn copy_durably(src: &Path, dest: &Path) -> Result<(u64, String)> {
    let tmp = dest.with_extension("part");
    let mut input = std::fs::File::open(src).map_err(|e| Error::io(src, e))?;
    let mut out = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(|e| Error::io(src, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| Error::io(&tmp, e))?;
        size += n as u64;
    }
    out.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(out);
    std::fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))?;
    if let Some(dir) = dest.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))?;
    }
    Ok((size, hex::encode(hasher.finalize())))
}
