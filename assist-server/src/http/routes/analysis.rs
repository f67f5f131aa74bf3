//! Post-call analysis, follow-up tasks and coaching reports:
//! `GET /v1/calls/{id}/analysis`, `GET /v1/tasks`, `PATCH /v1/tasks/{id}`,
//! `GET /v1/reports/reps/{id}?from&to` and `GET /v1/reports/teams/{id}?from&to`.
//!
//! Who sees what: a call's analysis as its call (the rep, their team's
//! manager, compliance and admins — audited for the last two). Tasks: a rep
//! their own, a manager their team's. Reports are aggregates of the coaching
//! metrics (no transcript text): a rep their own, a manager their team's and
//! its reps', compliance and admins any.

use crate::http::extract::Query;
use assist_protocol::Role;
use assist_protocol::analysis::AnalysisDocument;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, patch};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::caller::Caller;
use crate::db::analysis::{TaskFilter, TaskRow};
use crate::error::ApiError;
use crate::http::extract::Json;
use crate::state::AppState;
use crate::time::{now_ms, parse_rfc3339, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/calls/{id}/analysis", get(call_analysis))
        .route("/tasks", get(list_tasks))
        .route("/tasks/{id}", patch(update_task))
        .route("/reports/reps/{id}", get(rep_report))
        .route("/reports/teams/{id}", get(team_report))
}

async fn call_analysis(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<CallAnalysisView>, ApiError> {
    let call = state
        .db
        .get_call(&id)
        .await
        .map_err(|_| ApiError::not_found(format!("no call `{id}`")))?;
    crate::http::routes::calls::may_see(&caller, &call)?;
    // The analysis quotes the call: audited like the transcript, whoever reads it.
    state
        .db
        .audit(caller.audit("analysis.read", "call", Some(&call.id)))
        .await?;
    let Some(a) = state.db.analysis_for_call(&id).await? else {
        let why = if call.transcribed_at.is_none() {
            "the call is not transcribed yet; its analysis follows the transcript"
        } else {
            "the analysis is not ready yet; it runs after transcription (see GET /v1/calls/{id})"
        };
        return Err(ApiError::not_found(why));
    };
    let document: AnalysisDocument =
        serde_json::from_str(&a.document).map_err(ApiError::internal)?;
    // Tasks as they are now (a rep may have completed some).
    let tasks = state
        .db
        .list_tasks(
            caller.org_id(),
            &TaskFilter {
                call_id: Some(id.clone()),
                limit: 1000,
                ..TaskFilter::default()
            },
        )
        .await?;
    Ok(axum::Json(CallAnalysisView {
        document: document.with_tasks(tasks.into_iter().map(TaskView::from).collect()),
        coaching: serde_json::from_str(&a.metrics).unwrap_or(Value::Null),
        analysed_at: rfc3339(a.created_at),
    }))
}

/// `GET /v1/calls/{id}/analysis`: the stored document with each task as it
/// is now, the coaching metrics and when the analysis ran.
#[derive(Debug, Serialize)]
pub struct CallAnalysisView {
    #[serde(flatten)]
    pub document: AnalysisDocument<TaskView>,
    pub coaching: Value,
    pub analysed_at: String,
}

/// A task as the API shows it.
#[derive(Debug, Serialize)]
pub struct TaskView {
    #[serde(flatten)]
    pub task: TaskRow,
    pub due: Option<String>,
    /// Open and past its due time.
    pub overdue: bool,
}

impl From<TaskRow> for TaskView {
    fn from(task: TaskRow) -> Self {
        TaskView {
            due: task.due_at.map(rfc3339),
            overdue: task.status == "open" && task.due_at.is_some_and(|d| d < now_ms()),
            task,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    /// `open`, `done` or `dismissed`.
    pub status: Option<String>,
    /// Only open tasks past their due time.
    #[serde(default)]
    pub overdue: bool,
    /// Only tasks due before this time (RFC 3339): upcoming reminders.
    pub due_before: Option<String>,
    pub call_id: Option<String>,
    /// Managers, compliance and admins: one rep's tasks.
    pub rep: Option<String>,
    pub limit: Option<i64>,
}

fn check_status(s: &str) -> Result<(), ApiError> {
    if ["open", "done", "dismissed"].contains(&s) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "status `{s}` is not one of open, done, dismissed"
        )))
    }
}

async fn list_tasks(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<TaskQuery>,
) -> Result<axum::Json<Vec<TaskView>>, ApiError> {
    let mut f = TaskFilter {
        status: q.status.clone(),
        call_id: q.call_id.clone(),
        limit: crate::http::extract::page_limit(q.limit, 200, 1000)?,
        ..TaskFilter::default()
    };
    if let Some(s) = &q.status {
        check_status(s)?;
    }
    if let Some(rep) = &q.rep {
        f.rep_user_id = Some(
            state
                .db
                .find_user(caller.org_id(), rep)
                .await
                .map_err(|_| ApiError::invalid(format!("no user `{rep}` in your organisation")))?
                .id,
        );
    }
    match caller.role() {
        Role::Rep => {
            if f.rep_user_id.as_ref().is_some_and(|r| *r != caller.user.id) {
                return Err(ApiError::forbidden("reps see their own tasks only"));
            }
            f.rep_user_id = Some(caller.user.id.clone());
        }
        Role::Manager => {
            f.team_id = Some(caller.user.team_id.clone().ok_or_else(|| {
                ApiError::forbidden("you manage no team yet; an admin can put you in one")
            })?);
        }
        Role::Compliance | Role::Admin => {}
        Role::Trainer => return Err(ApiError::forbidden("trainers have no follow-up tasks")),
    }
    if q.overdue {
        f.status = Some("open".into());
        f.due_before = Some(now_ms());
    }
    if let Some(t) = &q.due_before {
        let at = parse_rfc3339(t).ok_or_else(|| {
            ApiError::invalid(format!("due_before `{t}` is not an RFC 3339 time"))
        })?;
        f.due_before = Some(f.due_before.map_or(at, |d| d.min(at)));
    }
    let rows = state.db.list_tasks(caller.org_id(), &f).await?;
    // Tasks carry verbatim quotes of the call.
    state
        .db
        .audit(caller.audit("task.list", "task", f.call_id.as_deref()))
        .await?;
    Ok(axum::Json(rows.into_iter().map(TaskView::from).collect()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    pub status: Option<String>,
    pub title: Option<String>,
    /// RFC 3339, or `null` to clear.
    #[serde(default, with = "double_option")]
    pub due: Option<Option<String>>,
}

/// Tell "field absent" from "field is null".
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D>(d: D) -> Result<Option<Option<String>>, D::Error>
    where
        D: Deserializer<'de>,
    {
        Option::<String>::deserialize(d).map(Some)
    }
}

async fn update_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(p): Json<TaskPatch>,
) -> Result<axum::Json<TaskView>, ApiError> {
    let task = state.db.get_task(&id).await?;
    let hidden = || ApiError::not_found(format!("no task `{id}`"));
    if task.org_id != caller.org_id() {
        return Err(hidden());
    }
    match caller.role() {
        Role::Rep if task.rep_user_id == caller.user.id => {}
        Role::Manager if task.team_id.is_some() && task.team_id == caller.user.team_id => {}
        Role::Admin => {}
        _ => return Err(hidden()),
    }
    if let Some(s) = &p.status {
        check_status(s)?;
    }
    if let Some(t) = &p.title
        && (t.trim().is_empty() || t.chars().count() > 500)
    {
        return Err(ApiError::invalid("title must be 1–500 characters"));
    }
    let due_at = match &p.due {
        None => None,
        Some(None) => Some(None),
        Some(Some(t)) => Some(Some(parse_rfc3339(t).ok_or_else(|| {
            ApiError::invalid(format!("due `{t}` is not an RFC 3339 time"))
        })?)),
    };
    let updated = state
        .db
        .update_task(&id, p.status.as_deref(), p.title.as_deref(), due_at)
        .await?;
    state
        .db
        .audit(caller.audit("task.update", "task", Some(&id)))
        .await?;
    Ok(axum::Json(TaskView::from(updated)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// RFC 3339; default 30 days before `to`.
    pub from: Option<String>,
    /// RFC 3339; default now.
    pub to: Option<String>,
}

fn period(q: &ReportQuery) -> Result<(i64, i64), ApiError> {
    let parse = |t: &String| {
        parse_rfc3339(t).ok_or_else(|| ApiError::invalid(format!("`{t}` is not an RFC 3339 time")))
    };
    let to = q.to.as_ref().map(parse).transpose()?.unwrap_or_else(now_ms);
    let from = q
        .from
        .as_ref()
        .map(parse)
        .transpose()?
        .unwrap_or(to - 30 * 24 * 3600 * 1000);
    if from >= to {
        return Err(ApiError::invalid("`from` must be before `to`"));
    }
    Ok((from, to))
}

/// Means of every numeric coaching metric over the calls, plus totals.
fn aggregate(metrics: &[Value]) -> Value {
    let mut sums: Map<String, Value> = Map::new();
    let mut counts: std::collections::BTreeMap<String, f64> = Default::default();
    for m in metrics {
        if let Some(o) = m.as_object() {
            for (k, v) in o {
                if let Some(x) = v.as_f64() {
                    let s = sums.get(k).and_then(Value::as_f64).unwrap_or(0.0) + x;
                    sums.insert(k.clone(), Value::from(s));
                    *counts.entry(k.clone()).or_default() += 1.0;
                }
            }
        }
    }
    let means: Map<String, Value> = sums
        .iter()
        .filter_map(|(k, v)| {
            let n = counts.get(k)?;
            Some((k.clone(), Value::from(v.as_f64()? / n)))
        })
        .collect();
    serde_json::json!({ "calls": metrics.len(), "mean": means, "total": sums })
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub calls: usize,
    /// Coaching metrics: `mean` and `total` of each numeric metric.
    pub coaching: Value,
    pub risk_tags: std::collections::BTreeMap<String, usize>,
    pub tasks: TaskCounts,
    /// Live-call suggestions shown and what reps did with them.
    pub suggestions: SuggestionCounts,
    /// Per rep (team reports only): the same aggregates, no content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reps: Option<Vec<Value>>,
}

#[derive(Debug, Default, Serialize)]
pub struct TaskCounts {
    pub open: usize,
    pub done: usize,
    pub dismissed: usize,
    pub overdue: usize,
    /// done / (done + open), 0–1.
    pub completion_rate: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct SuggestionCounts {
    pub shown: i64,
    pub used: i64,
    pub dismissed: i64,
    /// used / shown, 0–1.
    pub adoption_rate: f64,
}

async fn build_report(
    state: &AppState,
    org_id: &str,
    rep: Option<&str>,
    team: Option<&str>,
    (from, to): (i64, i64),
) -> Result<Report, ApiError> {
    let rows = state
        .db
        .analyses_between(org_id, rep, team, from, to)
        .await?;
    let mut risk_tags = std::collections::BTreeMap::new();
    let metrics: Vec<Value> = rows
        .iter()
        .map(|a| {
            if let Ok(doc) = serde_json::from_str::<AnalysisDocument>(&a.document) {
                for r in doc.risk_tags {
                    *risk_tags.entry(r.category).or_insert(0) += 1;
                }
            }
            serde_json::from_str(&a.metrics).unwrap_or(Value::Null)
        })
        .collect();
    let mut tasks = TaskCounts::default();
    let now = now_ms();
    let all = state
        .db
        .list_tasks(
            org_id,
            &TaskFilter {
                rep_user_id: rep.map(str::to_string),
                team_id: team.map(str::to_string),
                limit: 1000,
                ..TaskFilter::default()
            },
        )
        .await?;
    for t in all
        .iter()
        .filter(|t| t.created_at >= from && t.created_at < to)
    {
        match t.status.as_str() {
            "open" => {
                tasks.open += 1;
                tasks.overdue += usize::from(t.due_at.is_some_and(|d| d < now));
            }
            "done" => tasks.done += 1,
            _ => tasks.dismissed += 1,
        }
    }
    if tasks.open + tasks.done > 0 {
        tasks.completion_rate = tasks.done as f64 / (tasks.open + tasks.done) as f64;
    }
    let (shown, used, dismissed) = state
        .db
        .suggestion_adoption(org_id, rep, team, from, to)
        .await?;
    let suggestions = SuggestionCounts {
        shown,
        used,
        dismissed,
        adoption_rate: if shown > 0 {
            used as f64 / shown as f64
        } else {
            0.0
        },
    };
    Ok(Report {
        from: rfc3339(from),
        to: rfc3339(to),
        calls: rows.len(),
        coaching: aggregate(&metrics),
        risk_tags,
        tasks,
        suggestions,
        reps: None,
    })
}

async fn rep_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<axum::Json<Report>, ApiError> {
    let rep = state
        .db
        .find_user(caller.org_id(), &id)
        .await
        .map_err(|_| ApiError::not_found(format!("no rep `{id}`")))?;
    let allowed = match caller.role() {
        Role::Rep => rep.id == caller.user.id,
        Role::Manager => rep.team_id.is_some() && rep.team_id == caller.user.team_id,
        Role::Compliance | Role::Admin => true,
        Role::Trainer => false,
    };
    if !allowed {
        return Err(ApiError::forbidden(
            "reports cover your own work (reps) or your team's (managers)",
        ));
    }
    let report = build_report(&state, caller.org_id(), Some(&rep.id), None, period(&q)?).await?;
    Ok(axum::Json(report))
}

async fn team_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<axum::Json<Report>, ApiError> {
    let team = state
        .db
        .find_team(caller.org_id(), &id)
        .await
        .map_err(|_| ApiError::not_found(format!("no team `{id}`")))?;
    let allowed = match caller.role() {
        Role::Manager => caller.user.team_id.as_deref() == Some(team.id.as_str()),
        Role::Compliance | Role::Admin => true,
        Role::Rep | Role::Trainer => false,
    };
    if !allowed {
        return Err(ApiError::forbidden(
            "team reports are for the team's manager, compliance and admins",
        ));
    }
    let range = period(&q)?;
    let mut report = build_report(&state, caller.org_id(), None, Some(&team.id), range).await?;
    let mut reps = Vec::new();
    for u in state.db.list_users(caller.org_id(), Some(&team.id)).await? {
        if u.role != Role::Rep {
            continue;
        }
        let r = build_report(&state, caller.org_id(), Some(&u.id), None, range).await?;
        reps.push(serde_json::json!({
            "rep_user_id": u.id, "name": u.name, "calls": r.calls,
            "coaching": r.coaching["mean"], "tasks": r.tasks, "risk_tags": r.risk_tags,
        }));
    }
    report.reps = Some(reps);
    Ok(axum::Json(report))
}
