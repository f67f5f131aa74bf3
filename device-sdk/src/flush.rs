//! Delivering the outbox: `Client::flush` and the background loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use assist_protocol::ErrorCode;
use assist_protocol::device::{
    ChatBatch, ChatBatchResult, DeviceEvent, DeviceEventBatch, DeviceEventBatchResult,
};
use reqwest::Method;
use serde::Serialize;
use tokio::sync::{Mutex, Notify};

use crate::client::Client;
use crate::outbox::{ItemKind, Row, StoredChat};
use crate::util::now_ms;
use crate::{Error, Result};

/// Largest JSON body of one chat batch (the server accepts 8 MiB).
const MAX_CHAT_BODY: usize = 4 * 1024 * 1024;
/// Most message text, in characters, in one chat batch: the server's
/// default `chat_max_batch_chars`. A server configured lower answers 413
/// and the batch is sent in halves.
const MAX_CHAT_CHARS: usize = 20_000;

/// What one flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlushReport {
    /// Items the server stored now.
    pub sent: u64,
    /// Items the server already had (a resend): delivered too.
    pub duplicates: u64,
    /// Items that failed for a passing reason and are scheduled again.
    pub failed: u64,
    /// Items the server refused for good (now `dead`, see `Outbox::status`).
    pub dead: u64,
    /// Items still queued after this flush (pending, not dead).
    pub remaining: u64,
    /// Calls created by completed uploads: `(upload_key, call_id)`.
    pub calls: Vec<(String, String)>,
    /// Why the flush stopped before everything due was tried (server
    /// unreachable, overloaded, token refused …).
    pub stopped: Option<String>,
    /// The token was refused (401): nothing is marked dead, fix the token.
    pub unauthorized: bool,
    /// The server asked for a pause until then (Unix ms).
    pub held_until: Option<i64>,
}

/// Progress of a flush, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushProgress {
    /// Items delivered (or given up) so far, of those due when it started.
    Items { done: u64, total: u64 },
    /// Bytes of one recording the server holds.
    Upload {
        upload_key: String,
        offset: u64,
        size: u64,
    },
}

/// How a batch ended, for the flush loop.
pub(crate) enum Step {
    Continue,
    /// Stop this flush (the server is unreachable or asked for a pause).
    Stop,
}

impl Client {
    /// Deliver everything due now: device events, then chats (grouped per
    /// conversation), then recordings (resumable uploads).
    pub async fn flush(&self) -> Result<FlushReport> {
        self.flush_with(&|_| {}).await
    }

    /// [`Client::flush`] with progress reports.
    pub async fn flush_with(
        &self,
        progress: &(dyn Fn(FlushProgress) + Sync),
    ) -> Result<FlushReport> {
        let outbox = self.outbox.clone();
        let mut report = FlushReport::default();
        blocking(&outbox, |o| o.materialize_reports()).await?;
        if let Some(until) = blocking(&outbox, |o| o.held_until()).await? {
            report.held_until = Some(until);
            report.stopped = Some(format!(
                "the server asked to wait until {}",
                crate::util::rfc3339_ms(until)
            ));
            report.remaining = blocking(&outbox, |o| o.status()).await?.pending();
            return Ok(report);
        }
        let now = now_ms();
        let total = blocking(&outbox, move |o| {
            let mut n = 0;
            for k in ItemKind::ALL {
                n += o.due(k, now, usize::MAX >> 1)?.len() as u64;
            }
            Ok(n)
        })
        .await?;
        let mut done = 0u64;
        let tick = |report: &FlushReport, done: &mut u64| {
            *done = report.sent + report.duplicates + report.failed + report.dead;
            progress(FlushProgress::Items { done: *done, total });
        };
        progress(FlushProgress::Items { done: 0, total });
        'kinds: for kind in [ItemKind::Event, ItemKind::Chat, ItemKind::Recording] {
            // Items that failed in this flush are rescheduled into the future,
            // so `due` does not return them again: the loop ends.
            loop {
                let batch = match kind {
                    ItemKind::Event => self.config.event_batch,
                    ItemKind::Chat => self.config.chat_batch.max(1) * 4,
                    ItemKind::Recording => 1,
                };
                let rows = blocking(&outbox, move |o| o.due(kind, now, batch)).await?;
                if rows.is_empty() {
                    break;
                }
                let step = match kind {
                    ItemKind::Event => self.deliver_events(rows, &mut report).await?,
                    ItemKind::Chat => self.deliver_chats(rows, &mut report).await?,
                    ItemKind::Recording => {
                        let row = rows.into_iter().next().expect("one row");
                        self.upload(&row, &mut report, progress).await?
                    }
                };
                tick(&report, &mut done);
                if let Step::Stop = step {
                    break 'kinds;
                }
            }
        }
        let status = blocking(&outbox, |o| o.status()).await?;
        report.remaining = status.pending();
        report.held_until = report.held_until.or(status.held_until);
        Ok(report)
    }

    async fn deliver_events(&self, rows: Vec<Row>, report: &mut FlushReport) -> Result<Step> {
        let mut stack = vec![rows];
        while let Some(batch) = stack.pop() {
            let events: Vec<DeviceEvent> = batch
                .iter()
                .filter_map(|r| serde_json::from_str(&r.payload).ok())
                .collect();
            let sent = self
                .call_json::<_, DeviceEventBatchResult>(
                    Method::POST,
                    "/device/events",
                    &DeviceEventBatch { events },
                )
                .await;
            match sent {
                Ok(answer) => {
                    let results: HashMap<String, bool> = answer
                        .body
                        .results
                        .into_iter()
                        .map(|r| (r.event_id, r.duplicate))
                        .collect();
                    self.settle(&batch, &results, report).await?;
                }
                Err(e) => {
                    if let Step::Stop = self.failed(batch, &mut stack, e, report).await? {
                        return Ok(Step::Stop);
                    }
                }
            }
        }
        Ok(Step::Continue)
    }

    async fn deliver_chats(&self, rows: Vec<Row>, report: &mut FlushReport) -> Result<Step> {
        // Group per conversation, then cut into batches by count and size.
        let mut groups: Vec<(String, Vec<Row>)> = Vec::new();
        // Bytes and text characters of the last group.
        let (mut bytes, mut chars) = (0usize, 0usize);
        for row in rows {
            let conv = row.conversation_id.clone().unwrap_or_default();
            let size = row.payload.len();
            let text = serde_json::from_str::<StoredChat>(&row.payload)
                .map(|s| s.message.text.chars().count())
                .unwrap_or(0);
            match groups.last_mut() {
                Some((c, g))
                    if *c == conv
                        && g.len() < self.config.chat_batch
                        && bytes + size <= MAX_CHAT_BODY
                        && chars + text <= MAX_CHAT_CHARS =>
                {
                    g.push(row);
                    bytes += size;
                    chars += text;
                }
                _ => {
                    groups.push((conv, vec![row]));
                    (bytes, chars) = (size, text);
                }
            }
        }
        for (conv, group) in groups {
            let mut stack = vec![group];
            while let Some(batch) = stack.pop() {
                let stored: Vec<StoredChat> = batch
                    .iter()
                    .filter_map(|r| serde_json::from_str(&r.payload).ok())
                    .collect();
                let body = ChatBatch {
                    channel: stored.iter().find_map(|s| s.channel),
                    customer_ref: stored.iter().find_map(|s| s.customer_ref.clone()),
                    messages: stored.into_iter().map(|s| s.message).collect(),
                };
                let path = format!("/conversations/{}/messages", encode_path(&conv));
                match self
                    .call_json::<_, ChatBatchResult>(Method::POST, &path, &body)
                    .await
                {
                    Ok(answer) => {
                        let results: HashMap<String, bool> = answer
                            .body
                            .messages
                            .into_iter()
                            .map(|m| (m.client_message_id, m.duplicate))
                            .collect();
                        self.settle(&batch, &results, report).await?;
                    }
                    Err(e) => {
                        if let Step::Stop = self.failed(batch, &mut stack, e, report).await? {
                            return Ok(Step::Stop);
                        }
                    }
                }
            }
        }
        Ok(Step::Continue)
    }

    /// A 2xx answer: delete what it confirmed; anything it did not mention
    /// stays queued (retried later).
    async fn settle(
        &self,
        batch: &[Row],
        results: &HashMap<String, bool>,
        report: &mut FlushReport,
    ) -> Result<()> {
        let confirmed: Vec<Row> = batch
            .iter()
            .filter(|r| results.contains_key(&r.key))
            .cloned()
            .collect();
        let missing: Vec<Row> = batch
            .iter()
            .filter(|r| !results.contains_key(&r.key))
            .cloned()
            .collect();
        for r in &confirmed {
            if results[&r.key] {
                report.duplicates += 1;
            } else {
                report.sent += 1;
            }
        }
        blocking(&self.outbox, move |o| {
            o.confirm(&confirmed.iter().collect::<Vec<_>>())
        })
        .await?;
        if !missing.is_empty() {
            tracing::warn!(
                missing = missing.len(),
                "the server's answer did not mention every item"
            );
            report.failed += missing.len() as u64;
            let next = now_ms() + self.config.backoff.delay(0, None).as_millis() as i64;
            blocking(&self.outbox, move |o| {
                o.reschedule(
                    &missing.iter().collect::<Vec<_>>(),
                    next,
                    "not confirmed by the server",
                )
            })
            .await?;
        }
        Ok(())
    }

    /// A failed batch: stop on a token or server problem, bisect a refused
    /// batch so only the bad item goes dead.
    async fn failed(
        &self,
        batch: Vec<Row>,
        stack: &mut Vec<Vec<Row>>,
        e: Error,
        report: &mut FlushReport,
    ) -> Result<Step> {
        if is_unauthorized(&e) {
            report.unauthorized = true;
            report.stopped = Some(format!("the device token was refused: {e}"));
            return Ok(Step::Stop);
        }
        if e.is_retryable() {
            let mut all = batch;
            all.extend(stack.drain(..).flatten());
            let next = self.retry_at(&all, &e);
            report.failed += all.len() as u64;
            report.held_until = Some(next);
            report.stopped = Some(match &e {
                Error::Unreachable { .. } => format!("{e}; queued, will retry"),
                _ => format!("{e}; will retry at {}", crate::util::rfc3339_ms(next)),
            });
            let msg = e.to_string();
            blocking(&self.outbox, move |o| {
                o.reschedule(&all.iter().collect::<Vec<_>>(), next, &msg)?;
                o.set_hold(next)
            })
            .await?;
            return Ok(Step::Stop);
        }
        if batch.len() > 1 {
            let mut first = batch;
            let second = first.split_off(first.len() / 2);
            stack.push(second);
            stack.push(first);
            return Ok(Step::Continue);
        }
        report.dead += batch.len() as u64;
        let msg = e.to_string();
        tracing::warn!(key = %batch[0].key, error = %msg, "the server refused an item for good");
        blocking(&self.outbox, move |o| {
            o.mark_dead(&batch.iter().collect::<Vec<_>>(), &msg)
        })
        .await?;
        Ok(Step::Continue)
    }

    /// When to try again: backoff by the item's attempts, `Retry-After` wins
    /// when longer.
    pub(crate) fn retry_at(&self, rows: &[Row], e: &Error) -> i64 {
        let attempts = rows.iter().map(|r| r.attempts).max().unwrap_or(0);
        let delay = self.config.backoff.delay(attempts, e.retry_after());
        now_ms() + delay.as_millis() as i64
    }

    /// Flush now and then until [`Background::stop`]: every `interval`, or
    /// sooner after [`Background::wake`], and never before the next item is
    /// due or a server pause ends.
    pub fn spawn_background(&self, interval: Duration) -> Background {
        let wake = Arc::new(Notify::new());
        let stop = Arc::new(Notify::new());
        let last = Arc::new(Mutex::new(None));
        let client = self.clone();
        let (w, s, l) = (wake.clone(), stop.clone(), last.clone());
        let task = tokio::spawn(async move {
            loop {
                match client.flush().await {
                    Ok(r) => *l.lock().await = Some(r),
                    Err(e) => tracing::warn!(error = %e, "outbox flush failed"),
                }
                let status = blocking(&client.outbox, |o| o.status()).await.ok();
                let now = now_ms();
                let next = status
                    .and_then(|s| match (s.held_until, s.next_attempt_at) {
                        (Some(h), Some(n)) => Some(h.max(n)),
                        (h, n) => h.or(n),
                    })
                    .map(|t| Duration::from_millis((t - now).max(0) as u64))
                    .unwrap_or(interval)
                    .clamp(Duration::from_millis(50), interval);
                tokio::select! {
                    _ = tokio::time::sleep(next) => {}
                    _ = w.notified() => {}
                    _ = s.notified() => return,
                }
            }
        });
        Background {
            wake,
            stop,
            last,
            task: Mutex::new(Some(task)),
        }
    }
}

/// The background delivery loop of [`Client::spawn_background`].
#[derive(Debug)]
pub struct Background {
    wake: Arc<Notify>,
    stop: Arc<Notify>,
    last: Arc<Mutex<Option<FlushReport>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Background {
    /// Flush soon (call after enqueueing).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The report of the last flush.
    pub async fn last_report(&self) -> Option<FlushReport> {
        self.last.lock().await.clone()
    }

    /// Stop after the flush in progress.
    pub async fn stop(&self) {
        self.stop.notify_one();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

pub(crate) fn is_unauthorized(e: &Error) -> bool {
    matches!(
        e,
        Error::Api {
            code: Some(ErrorCode::Unauthorized),
            ..
        } | Error::Api {
            status: 401,
            code: None,
            ..
        }
    )
}

/// Run a (short, fsync'ing) outbox operation off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    outbox: &crate::Outbox,
    f: impl FnOnce(&crate::Outbox) -> Result<T> + Send + 'static,
) -> Result<T> {
    let o = outbox.clone();
    match tokio::task::spawn_blocking(move || f(&o)).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Error::Invalid("the async runtime is shutting down".into())),
    }
}

/// Percent-encode a path segment (ids may hold `/`, `+`, `@`, `:` …).
pub(crate) fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
