//! What a person may do with alerts, for the API and the console alike:
//! who sees which alerts ([`scope`]), listing with filters, opening one with
//! its evidence, acknowledging and resolving, a verdict (confirmed / false
//! positive), and following the alert log. Every read of content is
//! audited with the caller's reason. `http/routes/alerts.rs` and the
//! console's pages are thin wrappers around these; there is no second path.

use std::collections::VecDeque;

use assist_protocol::Role;
use futures_util::Stream;
use tokio_util::sync::CancellationToken;

use super::hub::AlertHub;
use super::ingest::AlertIngest;
use super::status::AlertStatus;
use crate::caller::Caller;
use crate::db::Db;
use crate::db::alerts::{AlertFilter, AlertLogRow, AlertRow, RiskEventRow};
use crate::error::ApiError;
use crate::time::now_ms;

/// The team filter for the caller: `Some(team)` for a manager, `None` for
/// compliance and admins; 403 for everyone else.
pub fn scope(caller: &Caller) -> Result<Option<String>, ApiError> {
    match caller.role() {
        Role::Manager => caller.user.team_id.clone().map(Some).ok_or_else(|| {
            ApiError::forbidden("you manage no team yet; an admin can put you in one")
        }),
        Role::Compliance | Role::Admin => Ok(None),
        Role::Rep | Role::Trainer => Err(ApiError::forbidden(
            "alerts are for managers, compliance and admins",
        )),
    }
}

/// Filters a person can ask for.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// `open`, `acknowledged` or `resolved`.
    pub status: Option<String>,
    /// Compliance and admins: one team only.
    pub team: Option<String>,
    pub conversation_id: Option<String>,
    pub call_id: Option<String>,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: Option<String>,
    pub category: Option<String>,
    /// One rep's alerts.
    pub rep: Option<String>,
    pub limit: i64,
}

pub const STATUSES: [&str; 3] = ["open", "acknowledged", "resolved"];
pub const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The caller's alerts, newest first (audited: each carries a snippet).
pub async fn list(db: &Db, caller: &Caller, q: &ListQuery) -> Result<Vec<AlertRow>, ApiError> {
    let team = match scope(caller)? {
        Some(own) => {
            if nonempty(&q.team).is_some_and(|t| t != own) {
                return Err(ApiError::forbidden(
                    "managers see the alerts of their own team only",
                ));
            }
            Some(own)
        }
        None => nonempty(&q.team),
    };
    let status = nonempty(&q.status);
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::invalid(format!(
            "status `{s}` is not one of open, acknowledged, resolved"
        )));
    }
    let severity = nonempty(&q.severity);
    if let Some(s) = &severity
        && !SEVERITIES.contains(&s.as_str())
    {
        return Err(ApiError::invalid(format!(
            "severity `{s}` is not one of low, medium, high, critical"
        )));
    }
    let rows = db
        .list_alerts(
            caller.org_id(),
            &AlertFilter {
                team_id: team,
                status,
                conversation_id: nonempty(&q.conversation_id),
                call_id: nonempty(&q.call_id),
                severity,
                category: nonempty(&q.category),
                rep_user_id: nonempty(&q.rep),
                limit: q.limit,
            },
        )
        .await?;
    db.audit(caller.audit("alert.list", "alert", None)).await?;
    Ok(rows)
}

/// The alert if the caller may see it (404 otherwise, so ids do not leak).
pub async fn visible(db: &Db, caller: &Caller, id: &str) -> Result<AlertRow, ApiError> {
    let team = scope(caller)?;
    let alert = db.get_alert(id).await?;
    let hidden = alert.org_id != caller.org_id()
        || team
            .as_ref()
            .is_some_and(|t| alert.team_id.as_ref() != Some(t));
    if hidden {
        return Err(ApiError::not_found(format!("no alert `{id}`")));
    }
    Ok(alert)
}

/// One alert and its evidence (audited).
pub async fn show(
    db: &Db,
    caller: &Caller,
    id: &str,
) -> Result<(AlertRow, Vec<RiskEventRow>), ApiError> {
    let alert = visible(db, caller, id).await?;
    db.audit(caller.audit("alert.read", "alert", Some(&alert.id)))
        .await?;
    let events = db
        .risk_events(caller.org_id(), Some(&alert.id), None, None)
        .await?;
    Ok((alert, events))
}

/// Longest note on an alert.
pub const MAX_NOTE_CHARS: usize = 4000;

fn clean_note(note: Option<&str>) -> Result<Option<String>, ApiError> {
    let note = note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    {
        return Err(ApiError::invalid(format!(
            "the note is longer than {MAX_NOTE_CHARS} characters"
        )));
    }
    Ok(note)
}

/// open → acknowledged → resolved (open → resolved too); resolving needs a
/// note. Acknowledging an acknowledged alert or resolving a resolved one is
/// a conflict.
pub async fn change(
    ingest: AlertIngest<'_>,
    caller: &Caller,
    id: &str,
    to: AlertStatus,
    note: Option<&str>,
) -> Result<AlertRow, ApiError> {
    let note = clean_note(note)?;
    if to == AlertStatus::Resolved && note.is_none() {
        return Err(ApiError::invalid(
            "resolving an alert needs a `note` saying what was found or done",
        ));
    }
    visible(ingest.db, caller, id).await?;
    let updated = ingest
        .set_status(id, to, &caller.user.id, note.as_deref())
        .await?;
    let action = match to {
        AlertStatus::Resolved => "alert.resolve",
        AlertStatus::Acknowledged => "alert.acknowledge",
    };
    ingest
        .db
        .audit(caller.audit(action, "alert", Some(id)))
        .await?;
    Ok(updated)
}

/// A person's judgement of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Confirmed,
    FalsePositive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::FalsePositive => "false_positive",
        }
    }

    pub fn parse(s: &str) -> Result<Verdict, ApiError> {
        match s {
            "confirmed" => Ok(Verdict::Confirmed),
            "false_positive" => Ok(Verdict::FalsePositive),
            other => Err(ApiError::invalid(format!(
                "verdict `{other}` is not one of confirmed, false_positive"
            ))),
        }
    }
}

/// Mark an alert confirmed or a false positive (may be changed later; the
/// audit log keeps every change). A note, if given, replaces the alert's.
pub async fn set_verdict(
    db: &Db,
    caller: &Caller,
    id: &str,
    verdict: Verdict,
    note: Option<&str>,
) -> Result<AlertRow, ApiError> {
    let note = clean_note(note)?;
    visible(db, caller, id).await?;
    db.set_alert_verdict(
        id,
        verdict.as_str(),
        &caller.user.id,
        note.as_deref(),
        now_ms(),
    )
    .await?;
    let action = match verdict {
        Verdict::Confirmed => "alert.confirm",
        Verdict::FalsePositive => "alert.false_positive",
    };
    db.audit(caller.audit(action, "alert", Some(id))).await?;
    Ok(db.get_alert(id).await?)
}

/// Where a caller's stream of the alert log starts: after `resume` (a
/// `Last-Event-ID`), else at the log's head. Audited once per connection:
/// the stream carries every alert's evidence.
pub async fn follow_from(
    db: &Db,
    caller: &Caller,
    resume: Option<i64>,
) -> Result<(Option<String>, i64), ApiError> {
    let team = scope(caller)?;
    let after = match resume {
        Some(id) => id,
        None => db.alert_log_head().await?,
    };
    let from = after.to_string();
    db.audit(caller.audit("alert.stream", "alert_log", Some(&from)))
        .await?;
    Ok((team, after))
}

/// Streams also poll the log this often, for alerts raised on other nodes.
const POLL: std::time::Duration = std::time::Duration::from_secs(1);

struct Cursor {
    db: Db,
    shutdown: CancellationToken,
    org_id: String,
    team: Option<String>,
    after: i64,
    buffer: VecDeque<AlertLogRow>,
    head: tokio::sync::watch::Receiver<i64>,
}

/// The organisation's (or one team's) alert log after `after`, oldest first,
/// then every new row as it is committed, until shutdown.
pub fn follow(
    db: Db,
    hub: &AlertHub,
    shutdown: CancellationToken,
    org_id: String,
    team: Option<String>,
    after: i64,
) -> impl Stream<Item = AlertLogRow> + Send + use<> {
    let cursor = Cursor {
        head: hub.subscribe(),
        db,
        shutdown,
        org_id,
        team,
        after,
        buffer: VecDeque::new(),
    };
    futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(row) = c.buffer.pop_front() {
                return Some((row, c));
            }
            match c
                .db
                .alert_log_after(&c.org_id, c.team.as_deref(), c.after, 200)
                .await
            {
                Ok(rows) if !rows.is_empty() => {
                    c.after = rows.last().map(|r| r.seq).unwrap_or(c.after);
                    c.buffer.extend(rows);
                    continue;
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "alert stream could not read the log"),
            }
            tokio::select! {
                _ = c.head.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = c.shutdown.cancelled() => return None,
            }
        }
    })
}
