//! The alert inbox: a filtered list that grows live (SSE), one alert with
//! its evidence, and the forms to acknowledge, resolve and judge it. Every
//! read and change goes through [`crate::alerts::manage`], like the API.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use maud::{Markup, html};
use serde::Deserialize;

use super::i18n::Lang;
use super::layout::notice;
use super::pages::{encode, error_page, need_reason, safe_next, see_other, signed_page};
use super::session::{Signed, same_origin};
use crate::alerts::AlertStatus;
use crate::alerts::manage::{self, SEVERITIES, STATUSES, Verdict};
use crate::db::alerts::AlertRow;
use crate::error::ApiError;
use crate::state::AppState;

const CATEGORIES: [&str; 7] = [
    "side_deal",
    "kickback",
    "private_contact",
    "competitor",
    "abuse",
    "over_promising",
    "compliance_phrase",
];

/// The inbox filters (from the query string; empty means any).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub rep: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
}

impl Filters {
    fn query(&self) -> manage::ListQuery {
        manage::ListQuery {
            status: self.status.clone(),
            team: self.team.clone(),
            severity: self.severity.clone(),
            category: self.category.clone(),
            rep: self.rep.clone(),
            limit: 200,
            ..Default::default()
        }
    }

    /// As a query string (without `?`).
    fn to_query(&self) -> String {
        [
            ("status", &self.status),
            ("severity", &self.severity),
            ("category", &self.category),
            ("rep", &self.rep),
            ("team", &self.team),
        ]
        .iter()
        .filter_map(|(k, v)| {
            v.as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", encode(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
    }

    /// Whether `a` belongs in the list these filters show.
    fn admits(&self, a: &AlertRow) -> bool {
        let ok = |f: &Option<String>, v: &str| f.as_deref().is_none_or(|f| f.is_empty() || f == v);
        ok(&self.status, &a.status)
            && ok(&self.severity, &a.severity)
            && ok(&self.category, &a.category)
            && ok(&self.rep, &a.rep_user_id)
            && ok(&self.team, a.team_id.as_deref().unwrap_or(""))
    }
}

/// People of the organisation by id, for names.
async fn names(state: &AppState, org_id: &str) -> Result<HashMap<String, String>, ApiError> {
    Ok(state
        .db
        .list_users(org_id, None)
        .await?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect())
}

fn name<'a>(names: &'a HashMap<String, String>, id: &str, lang: Lang) -> &'a str {
    names
        .get(id)
        .map(String::as_str)
        .unwrap_or_else(|| lang.t("（未知人员）", "(unknown person)"))
}

/// One row of the inbox; the stream sends the same markup.
fn row(
    a: &AlertRow,
    names: &HashMap<String, String>,
    lang: Lang,
    csrf: &str,
    back: &str,
) -> Markup {
    html! {
        tr id=(format!("alert-{}", a.id)) class=(format!("sev-{} st-{}", a.severity, a.status)) data-alert=(a.id) {
            td.nowrap { (lang.time(a.created_at)) }
            td { span class=(format!("badge sev-{}", a.severity)) { (lang.severity(&a.severity)) } }
            td { (lang.category(&a.category)) }
            td data-testid="rep" { (name(names, &a.rep_user_id, lang)) }
            td { (lang.source(&a.source)) }
            td.snippet { a href=(format!("/alerts/{}", a.id)) { (a.snippet) } }
            td {
                span.status data-testid="status" { (lang.status(&a.status)) }
                @if a.occurrences > 1 { " " span.tag { "×" (a.occurrences) } }
                @if let Some(v) = &a.verdict { " " span class=(format!("tag verdict-{v}")) { (lang.verdict(v)) } }
            }
            td.actions {
                @if a.status == "open" {
                    form.inline method="post" action=(format!("/alerts/{}/ack", a.id)) {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="next" value=(back);
                        button type="submit" data-testid="ack" { (lang.t("确认收到", "Acknowledge")) }
                    }
                }
                a href=(format!("/alerts/{}", a.id)) { (lang.t("详情", "Details")) }
            }
        }
    }
}

fn select(
    lang: Lang,
    id: &str,
    label: &str,
    current: &Option<String>,
    options: &[(String, String)],
) -> Markup {
    let cur = current.as_deref().unwrap_or("");
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(id) {
                option value="" selected[cur.is_empty()] { (lang.t("全部", "Any")) }
                @for (v, text) in options {
                    option value=(v) selected[cur == v] { (text) }
                }
            }
        }
    }
}

/// `GET /alerts`
pub async fn inbox(State(state): State<AppState>, s: Signed, Query(f): Query<Filters>) -> Response {
    if let Some(redirect) = need_reason(&s) {
        return redirect;
    }
    let lang = s.lang();
    match inbox_body(&state, &s, &f).await {
        Ok(body) => signed_page(&s, StatusCode::OK, lang.t("风险提醒", "Alerts"), body),
        Err(err) => error_page(lang, &err),
    }
}

async fn inbox_body(state: &AppState, s: &Signed, f: &Filters) -> Result<Markup, ApiError> {
    let lang = s.lang();
    let caller = s.caller();
    let rows = manage::list(&state.db, &caller, &f.query()).await?;
    let head = state.db.alert_log_head().await?;
    let names = names(state, caller.org_id()).await?;
    let scope = manage::scope(&caller)?;
    let reps: Vec<(String, String)> = state
        .db
        .list_users(caller.org_id(), scope.as_deref())
        .await?
        .into_iter()
        .filter(|u| u.role == assist_protocol::Role::Rep)
        .map(|u| (u.id, u.name))
        .collect();
    let back = s.ctx.here.clone();
    let q = f.to_query();
    let stream = if q.is_empty() {
        "/alerts/stream".to_string()
    } else {
        format!("/alerts/stream?{q}")
    };
    Ok(html! {
        h1 { (lang.t("风险提醒", "Alerts")) }
        p.sub {
            (lang.t("查看原因：", "Reason: "))
            (s.session.session.access_reason.clone().unwrap_or_default())
        }
        form.filters method="get" action="/alerts" aria-label=(lang.t("筛选", "Filters")) {
            (select(lang, "status", lang.t("状态", "State"), &f.status,
                &STATUSES.iter().map(|v| (v.to_string(), lang.status(v))).collect::<Vec<_>>()))
            (select(lang, "severity", lang.t("严重程度", "Severity"), &f.severity,
                &SEVERITIES.iter().map(|v| (v.to_string(), lang.severity(v))).collect::<Vec<_>>()))
            (select(lang, "category", lang.t("类别", "Category"), &f.category,
                &CATEGORIES.iter().map(|v| (v.to_string(), lang.category(v))).collect::<Vec<_>>()))
            (select(lang, "rep", lang.t("销售代表", "Rep"), &f.rep, &reps))
            div.field { button type="submit" { (lang.t("筛选", "Filter")) } }
        }
        p.live-state aria-live="polite" data-testid="live-state" data-connecting=(lang.t("正在连接实时更新…", "Connecting to live updates…"))
            data-live=(lang.t("实时更新中", "Live")) data-lost=(lang.t("连接中断，正在重连…", "Connection lost; reconnecting…")) {}
        div #announce.sr-only aria-live="assertive" data-new=(lang.t("新提醒", "New alert")) {}
        div.scroll {
            table.grid.alerts data-stream=(stream) data-last-event-id=(head) {
                caption.sr-only { (lang.t("风险提醒列表，最新的在上面", "Alerts, newest first")) }
                thead { tr {
                    th scope="col" { (lang.t("时间", "Time")) }
                    th scope="col" { (lang.t("严重程度", "Severity")) }
                    th scope="col" { (lang.t("类别", "Category")) }
                    th scope="col" { (lang.t("销售代表", "Rep")) }
                    th scope="col" { (lang.t("来源", "Source")) }
                    th scope="col" { (lang.t("内容摘录", "Excerpt")) }
                    th scope="col" { (lang.t("状态", "State")) }
                    th scope="col" { span.sr-only { (lang.t("操作", "Actions")) } }
                } }
                tbody #alert-rows {
                    @for a in &rows { (row(a, &names, lang, s.csrf(), &back)) }
                }
            }
        }
        @if rows.is_empty() {
            p.empty #empty { (lang.t("没有符合条件的提醒。新提醒会自动出现在这里。", "No alerts match. New ones appear here by themselves.")) }
        }
    })
}

#[derive(Debug, Deserialize)]
pub struct DetailQuery {
    done: Option<String>,
}

/// `GET /alerts/{id}`
pub async fn detail(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Response {
    if let Some(redirect) = need_reason(&s) {
        return redirect;
    }
    let lang = s.lang();
    match detail_body(&state, &s, &id, q.done.as_deref()).await {
        Ok(body) => signed_page(&s, StatusCode::OK, lang.t("提醒详情", "Alert"), body),
        Err(err) => error_page(lang, &err),
    }
}

async fn detail_body(
    state: &AppState,
    s: &Signed,
    id: &str,
    done: Option<&str>,
) -> Result<Markup, ApiError> {
    let lang = s.lang();
    let caller = s.caller();
    let (a, events) = manage::show(&state.db, &caller, id).await?;
    let names = names(state, caller.org_id()).await?;
    let done_text = match done {
        Some("ack") => Some(lang.t("已确认收到。", "Acknowledged.")),
        Some("resolve") => Some(lang.t("已标记为处理完毕。", "Marked resolved.")),
        Some("verdict") => Some(lang.t("判定已保存。", "Verdict saved.")),
        _ => None,
    };
    let csrf = s.csrf();
    let here = format!("/alerts/{}", a.id);
    Ok(html! {
        p { a href="/alerts" { "← " (lang.t("返回提醒列表", "Back to alerts")) } }
        h1 {
            span class=(format!("badge sev-{}", a.severity)) { (lang.severity(&a.severity)) }
            " " (lang.category(&a.category))
        }
        @if let Some(t) = done_text { (notice("ok", t)) }
        dl.facts {
            dt { (lang.t("销售代表", "Rep")) } dd { (name(&names, &a.rep_user_id, lang)) }
            dt { (lang.t("来源", "Source")) } dd { (lang.source(&a.source)) }
            dt { (lang.t("首次出现", "First seen")) } dd { (lang.time(a.created_at)) }
            dt { (lang.t("出现次数", "Occurrences")) } dd { (a.occurrences) }
            dt { (lang.t("状态", "State")) } dd data-testid="status" { (lang.status(&a.status)) }
            @if let Some(by) = &a.acknowledged_by {
                dt { (lang.t("确认人", "Acknowledged by")) } dd { (name(&names, by, lang)) }
            }
            @if let Some(by) = &a.resolved_by {
                dt { (lang.t("处理人", "Resolved by")) } dd { (name(&names, by, lang)) }
            }
            dt { (lang.t("判定", "Verdict")) }
            dd data-testid="verdict" {
                @match &a.verdict {
                    Some(v) => {
                        (lang.verdict(v))
                        @if let Some(by) = &a.verdict_by { " · " (name(&names, by, lang)) }
                    }
                    None => { (lang.t("尚未判定", "Not judged yet")) }
                }
            }
            @if let Some(n) = &a.note { dt { (lang.t("备注", "Note")) } dd.note { (n) } }
        }
        h2 { (lang.t("证据", "Evidence")) }
        ol.evidence {
            @for e in &events {
                li {
                    blockquote { (e.snippet) }
                    p.sub {
                        (lang.speaker(&e.speaker)) " · "
                        (lang.t("检测器", "detector")) " " code { (e.detector) } " · "
                        (lang.t("规则", "rule")) " " code { (e.rule) }
                        @if let Some(ms) = e.start_ms { " · " (format!("{}:{:02}", ms / 60_000, (ms / 1000) % 60)) }
                        @if let Some(why) = &e.suppressed { " · " (lang.t("未提醒：", "not alerted: ")) (why) }
                    }
                }
            }
        }
        h2 { (lang.t("处理", "Handle it")) }
        div.actions-grid {
            @if a.status == "open" {
                form.stack method="post" action=(format!("/alerts/{}/ack", a.id)) {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="next" value=(here);
                    label for="ack-note" { (lang.t("备注（可选）", "Note (optional)")) }
                    textarea #ack-note name="note" rows="2" maxlength="4000" {}
                    button type="submit" { (lang.t("确认收到", "Acknowledge")) }
                }
            }
            @if a.status != "resolved" {
                form.stack method="post" action=(format!("/alerts/{}/resolve", a.id)) {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="next" value=(here);
                    label for="resolve-note" { (lang.t("处理说明（必填）", "What was found or done (required)")) }
                    textarea #resolve-note name="note" rows="2" required maxlength="4000" {}
                    button.primary type="submit" { (lang.t("标记为处理完毕", "Mark resolved")) }
                }
            }
            form.stack method="post" action=(format!("/alerts/{}/verdict", a.id)) {
                input type="hidden" name="csrf" value=(csrf);
                fieldset {
                    legend { (lang.t("这条提醒是否属实？", "Was this a real risk?")) }
                    label.radio { input type="radio" name="verdict" value="confirmed" required checked[a.verdict.as_deref() == Some("confirmed")]; " " (lang.verdict("confirmed")) }
                    label.radio { input type="radio" name="verdict" value="false_positive" checked[a.verdict.as_deref() == Some("false_positive")]; " " (lang.verdict("false_positive")) }
                }
                label for="verdict-note" { (lang.t("备注（可选）", "Note (optional)")) }
                textarea #verdict-note name="note" rows="2" maxlength="4000" {}
                button type="submit" { (lang.t("保存判定", "Save verdict")) }
            }
        }
    })
}

#[derive(Debug, Deserialize)]
pub struct ActionBody {
    #[serde(default)]
    csrf: String,
    note: Option<String>,
    verdict: Option<String>,
    next: Option<String>,
}

async fn act(
    state: &AppState,
    s: &Signed,
    headers: &HeaderMap,
    id: &str,
    body: &ActionBody,
    what: &str,
) -> Result<(), ApiError> {
    same_origin(headers)?;
    s.check_csrf(&body.csrf)?;
    let caller = s.caller();
    match what {
        "ack" => {
            manage::change(
                state.alert_ingest(),
                &caller,
                id,
                AlertStatus::Acknowledged,
                body.note.as_deref(),
            )
            .await?;
        }
        "resolve" => {
            manage::change(
                state.alert_ingest(),
                &caller,
                id,
                AlertStatus::Resolved,
                body.note.as_deref(),
            )
            .await?;
        }
        _ => {
            let verdict = Verdict::parse(body.verdict.as_deref().unwrap_or("").trim())?;
            manage::set_verdict(&state.db, &caller, id, verdict, body.note.as_deref()).await?;
        }
    }
    Ok(())
}

async fn action(
    state: AppState,
    s: Signed,
    headers: HeaderMap,
    id: String,
    body: ActionBody,
    what: &str,
) -> Response {
    match act(&state, &s, &headers, &id, &body, what).await {
        Ok(()) => {
            let next = match body.next.as_deref() {
                Some(n) if n.starts_with("/alerts/") => {
                    format!("{}?done={what}", safe_next(Some(n)))
                }
                Some(n) => safe_next(Some(n)),
                None => format!("/alerts/{id}?done={what}"),
            };
            see_other(&next)
        }
        Err(err) => error_page(s.lang(), &err),
    }
}

/// `POST /alerts/{id}/ack`
pub async fn ack(
    State(state): State<AppState>,
    s: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(body): Form<ActionBody>,
) -> Response {
    action(state, s, headers, id, body, "ack").await
}

/// `POST /alerts/{id}/resolve`
pub async fn resolve(
    State(state): State<AppState>,
    s: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(body): Form<ActionBody>,
) -> Response {
    action(state, s, headers, id, body, "resolve").await
}

/// `POST /alerts/{id}/verdict`
pub async fn verdict(
    State(state): State<AppState>,
    s: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(body): Form<ActionBody>,
) -> Response {
    action(state, s, headers, id, body, "verdict").await
}

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    rep: Option<String>,
    #[serde(default)]
    team: Option<String>,
    /// The log position the page was rendered at.
    #[serde(default)]
    after: Option<String>,
}

/// `GET /alerts/stream`: the inbox's rows as they change, rendered here.
/// Event `upsert` carries a row to insert or replace, `drop` the id of a
/// row that no longer matches the filters. Resumes with `Last-Event-ID`
/// (the browser sends it when it reconnects) or `?after=` (the page's head).
pub async fn stream(
    State(state): State<AppState>,
    s: Signed,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Response {
    let lang = s.lang();
    if s.session.session.access_reason.is_none() {
        return error_page(
            lang,
            &ApiError::forbidden("give a reason for opening content first"),
        );
    }
    let caller = s.caller();
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(q
            .after
            .as_deref()
            .and_then(|a| a.trim().parse::<i64>().ok()))
        .filter(|n| *n >= 0);
    let (team, after) = match manage::follow_from(&state.db, &caller, resume).await {
        Ok(x) => x,
        Err(err) => return error_page(lang, &err),
    };
    let names = match names(&state, caller.org_id()).await {
        Ok(n) => n,
        Err(err) => return error_page(lang, &err),
    };
    let csrf = s.csrf().to_string();
    let filters = Filters {
        status: q.status,
        severity: q.severity,
        category: q.category,
        rep: q.rep,
        team: q.team,
    };
    let back = {
        let q = filters.to_query();
        if q.is_empty() {
            "/alerts".to_string()
        } else {
            format!("/alerts?{q}")
        }
    };
    let db = state.db.clone();
    let events = manage::follow(
        db.clone(),
        &state.alerts,
        state.shutdown.clone(),
        caller.org_id().to_string(),
        team,
        after,
    )
    .then(move |log| {
        let (db, names, csrf, filters, back) = (
            db.clone(),
            names.clone(),
            csrf.clone(),
            filters.clone(),
            back.clone(),
        );
        async move {
            let event = Event::default().id(log.seq.to_string());
            let Ok(alert) = db.get_alert(&log.alert_id).await else {
                return Ok::<_, Infallible>(
                    event.event("drop").data(format!("alert-{}", log.alert_id)),
                );
            };
            if filters.admits(&alert) {
                let html = row(&alert, &names, lang, &csrf, &back).into_string();
                Ok(event.event("upsert").data(html))
            } else {
                Ok(event.event("drop").data(format!("alert-{}", alert.id)))
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
