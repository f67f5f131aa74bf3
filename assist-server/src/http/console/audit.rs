//! The audit log for compliance and admins: filter by person and day,
//! export as CSV. Reads go through `caller::read_audit_log` and
//! `caller::export_audit_log`, like `GET /v1/audit`, and are recorded too.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::i18n::Lang;
use super::pages::{encode, error_page, signed_page};
use super::session::Signed;
use crate::db::audit::AuditQuery;
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::parse_rfc3339;

/// The filters (from the query string; empty means any).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    actor: Option<String>,
    /// A day, `YYYY-MM-DD` (Beijing time).
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

/// The start of a Beijing-time day in unix ms (`end`: the start of the next).
fn day_ms(day: &str, end: bool) -> Result<i64, ApiError> {
    let date: jiff::civil::Date = day
        .trim()
        .parse()
        .map_err(|_| ApiError::invalid(format!("`{day}` is not a day like 2026-11-24")))?;
    let date = if end {
        date.tomorrow()
            .map_err(|_| ApiError::invalid("that day is out of range"))?
    } else {
        date
    };
    let zoned = date
        .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)))
        .map_err(|_| ApiError::invalid("that day is out of range"))?;
    Ok(zoned.timestamp().as_millisecond())
}

impl Filters {
    fn query(&self, limit: i64) -> Result<AuditQuery, ApiError> {
        let some = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        Ok(AuditQuery {
            from_ms: some(&self.from).map(|d| day_ms(&d, false)).transpose()?,
            to_ms: some(&self.to).map(|d| day_ms(&d, true)).transpose()?,
            actor_user_id: some(&self.actor),
            before_id: None,
            limit,
        })
    }

    fn to_query(&self) -> String {
        [
            ("actor", &self.actor),
            ("from", &self.from),
            ("to", &self.to),
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
}

fn person(names: &HashMap<String, String>, id: &Option<String>, lang: Lang) -> String {
    match id {
        None => lang.t("命令行", "command line").to_string(),
        Some(id) => names
            .get(id)
            .cloned()
            .unwrap_or_else(|| lang.t("（未知人员）", "(unknown person)").to_string()),
    }
}

fn when(at: &str, lang: Lang) -> String {
    parse_rfc3339(at).map_or_else(|| at.to_string(), |ms| lang.time(ms))
}

/// `GET /audit`
pub async fn page(State(state): State<AppState>, s: Signed, Query(f): Query<Filters>) -> Response {
    let lang = s.lang();
    match body(&state, &s, &f).await {
        Ok(markup) => signed_page(&s, StatusCode::OK, lang.t("审计日志", "Audit log"), markup),
        Err(err) => error_page(lang, &err),
    }
}

async fn body(state: &AppState, s: &Signed, f: &Filters) -> Result<Markup, ApiError> {
    let lang = s.lang();
    let caller = s.caller();
    let entries = crate::caller::read_audit_log(&state.db, &caller, &f.query(200)?).await?;
    let people = state.db.list_users(caller.org_id(), None).await?;
    let names: HashMap<String, String> = people
        .iter()
        .map(|u| (u.id.clone(), u.name.clone()))
        .collect();
    let q = f.to_query();
    let csv = if q.is_empty() {
        "/audit.csv".to_string()
    } else {
        format!("/audit.csv?{q}")
    };
    let actor = f.actor.clone().unwrap_or_default();
    Ok(html! {
        h1 { (lang.t("审计日志", "Audit log")) }
        p.hint { (lang.t(
            "谁在何时、为何查看或更改了什么。查看和导出本身也会被记录。日期按北京时间。",
            "Who opened or changed what, when and why. Reading and exporting are recorded too. Days are Beijing time.",
        )) }
        form.filters method="get" action="/audit" aria-label=(lang.t("筛选", "Filters")) {
            div.field {
                label for="actor" { (lang.t("人员", "Person")) }
                select #actor name="actor" {
                    option value="" selected[actor.is_empty()] { (lang.t("全部", "Anyone")) }
                    @for p in &people {
                        option value=(p.id) selected[actor == p.id] { (p.name) " · " (lang.role(p.role)) }
                    }
                }
            }
            div.field {
                label for="from" { (lang.t("从", "From")) }
                input #from name="from" type="date" value=(f.from.clone().unwrap_or_default());
            }
            div.field {
                label for="to" { (lang.t("到", "To")) }
                input #to name="to" type="date" value=(f.to.clone().unwrap_or_default());
            }
            div.field { button type="submit" { (lang.t("筛选", "Filter")) } }
            div.field { a href=(csv) data-testid="csv" { (lang.t("导出 CSV", "Export CSV")) } }
        }
        div.scroll {
            table.grid data-testid="audit" {
                thead { tr {
                    th scope="col" { (lang.t("时间", "Time")) }
                    th scope="col" { (lang.t("人员", "Person")) }
                    th scope="col" { (lang.t("操作", "Action")) }
                    th scope="col" { (lang.t("对象", "Object")) }
                    th scope="col" { (lang.t("原因", "Reason")) }
                } }
                tbody {
                    @for e in &entries {
                        tr {
                            td.nowrap { (when(&e.at, lang)) }
                            td { (person(&names, &e.actor_user_id, lang)) }
                            td { code { (e.action) } }
                            td { (e.resource_type) }
                            td { (e.reason.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        @if entries.len() == 200 {
            p.hint { (lang.t("只显示最新的 200 条；缩小日期范围或导出 CSV 查看全部。", "Showing the newest 200; narrow the days or export CSV for all.")) }
        }
    })
}

/// One CSV field, quoted when it needs to be; a leading `=`, `+`, `-` or
/// `@` is defused so a spreadsheet does not run it as a formula.
fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// `GET /audit.csv`: every matching record (UTF-8 with a byte-order mark,
/// so spreadsheet programs read Chinese right).
pub async fn csv(State(state): State<AppState>, s: Signed, Query(f): Query<Filters>) -> Response {
    let lang = s.lang();
    let caller = s.caller();
    let result = async {
        let q = f.query(1000)?;
        let entries = crate::caller::export_audit_log(&state.db, &caller, &q).await?;
        let names: HashMap<String, String> = state
            .db
            .list_users(caller.org_id(), None)
            .await?
            .into_iter()
            .map(|u| (u.id, u.name))
            .collect();
        Ok::<_, ApiError>((entries, names))
    }
    .await;
    let (entries, names) = match result {
        Ok(x) => x,
        Err(err) => return error_page(lang, &err),
    };
    let mut out =
        String::from("\u{feff}time,person,person_id,action,resource_type,resource_id,reason\r\n");
    for e in &entries {
        let row = [
            e.at.clone(),
            person(&names, &e.actor_user_id, lang),
            e.actor_user_id.clone().unwrap_or_default(),
            e.action.clone(),
            e.resource_type.clone(),
            e.resource_id.clone().unwrap_or_default(),
            e.reason.clone().unwrap_or_default(),
        ];
        out.push_str(&row.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    let mut resp = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"audit.csv\""),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        out,
    )
        .into_response();
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=1+1"), "'=1+1");
        assert_eq!(field("客户投诉核查"), "客户投诉核查");
    }

    #[test]
    fn days_are_beijing_days() {
        // 2026-11-24 00:00 +08:00 is 2026-11-23 16:00 UTC.
        assert_eq!(day_ms("2026-11-24", false).unwrap(), 1_795_449_600_000);
        assert_eq!(
            day_ms("2026-11-24", true).unwrap() - day_ms("2026-11-24", false).unwrap(),
            86_400_000
        );
        assert!(day_ms("24/11/2026", false).is_err());
    }
}
