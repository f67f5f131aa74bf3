//! Sign-in, sign-out, invitations, the access reason, the language switch,
//! home pages per role, and the error page.

use assist_knowledge_base::Kind;
use assist_protocol::Role;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::i18n::Lang;
use super::layout::{html_response, notice, page};
use super::session::{
    Ctx, LANG_COOKIE, PRE_COOKIE, SESSION_COOKIE, Signed, cookie, same_origin, set_cookie,
};
use crate::console::{self, SignInError, new_secret, same_secret};
use crate::db::audit::AuditQuery;
use crate::error::ApiError;
use crate::http::status::status_for;
use crate::state::AppState;

/// Percent-encode a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where to go after a form: a path on this site, else home.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".into(),
    }
}

/// 303 to `to` (after a POST, so a reload does not post again).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn error_headline(lang: Lang, status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => lang.t("请先登录", "Please sign in"),
        403 => lang.t("没有权限", "Not allowed"),
        404 => lang.t("找不到该内容", "Not found"),
        409 => lang.t("状态已经变化", "It has changed meanwhile"),
        413 | 422 | 400 => lang.t("输入有误", "Please check your input"),
        429 => lang.t("尝试次数过多", "Too many attempts"),
        503 => lang.t("服务暂不可用", "Temporarily unavailable"),
        _ => lang.t("服务器出错", "Server error"),
    }
}

/// An [`ApiError`] as a page, with the status the API would give it.
pub fn error_page(lang: Lang, err: &ApiError) -> Response {
    let status = status_for(err.code());
    let detail = match err {
        ApiError::Internal(e) => {
            tracing::error!(error = %format!("{e:#}"), "internal error");
            lang.t(
                "服务器内部错误，日志中有详细信息。",
                "Internal error; the server log has the details.",
            )
            .to_string()
        }
        other => other.to_string(),
    };
    let title = error_headline(lang, status);
    let markup = html! {
        (maud::DOCTYPE)
        html lang=(lang.html()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                main #main.narrow {
                    h1 { (title) }
                    p.notice.error role="alert" data-testid="error" { (detail) }
                    p { a href="/" { (lang.t("返回首页", "Back to home")) } }
                }
            }
        }
    };
    html_response(status, markup)
}

/// A page of `status` for a signed-in person.
pub fn signed_page(s: &Signed, status: StatusCode, title: &str, main: Markup) -> Response {
    html_response(status, page(&s.ctx, Some(s), title, main))
}

#[derive(Debug, Deserialize)]
pub struct LangQuery {
    next: Option<String>,
}

/// `GET /lang/{zh|en}?next=`: remember the language, go back.
pub async fn set_lang(ctx: Ctx, Path(code): Path<String>, Query(q): Query<LangQuery>) -> Response {
    let Some(lang) = Lang::parse(&code) else {
        return error_page(ctx.lang, &ApiError::not_found("no such language"));
    };
    let mut resp = see_other(&safe_next(q.next.as_deref()));
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LANG_COOKIE, lang.code(), 365 * 86_400, ctx.secure, false),
    );
    resp
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    why: Option<String>,
    bye: Option<String>,
    invited: Option<String>,
    changed: Option<String>,
    user: Option<String>,
}

/// The pre-session CSRF token: the request's own, or a new one to set.
fn pre_token(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, PRE_COOKIE) {
        Some(t) if t.len() == 64 => (t.to_string(), false),
        _ => (new_secret(), true),
    }
}

struct LoginForm<'a> {
    next: &'a str,
    username: &'a str,
    error: Option<String>,
    info: Option<&'a str>,
}

fn login_page(ctx: &Ctx, csrf: &str, f: LoginForm<'_>) -> Markup {
    let lang = ctx.lang;
    page(
        ctx,
        None,
        lang.t("登录", "Sign in"),
        html! {
            div.narrow {
                h1 { (lang.t("登录会话助手", "Sign in to Assist")) }
                @if let Some(info) = f.info { (notice("info", info)) }
                @if let Some(err) = &f.error { (notice("error", err)) }
                form.stack method="post" action="/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="next" value=(f.next);
                    label for="username" { (lang.t("登录名", "Sign-in name")) }
                    input #username name="username" type="text" autocomplete="username" required
                        autofocus[f.username.is_empty()] value=(f.username) autocapitalize="none" spellcheck="false";
                    label for="password" { (lang.t("密码", "Password")) }
                    input #password name="password" type="password" autocomplete="current-password" required
                        autofocus[!f.username.is_empty()];
                    button.primary type="submit" { (lang.t("登录", "Sign in")) }
                }
                p.hint { (lang.t(
                    "没有账号或忘记密码？请联系管理员发送邀请链接。",
                    "No account, or forgot your password? Ask an admin for an invitation link.",
                )) }
            }
        },
    )
}

fn with_pre_cookie(mut resp: Response, token: &str, set: bool, secure: bool) -> Response {
    if set {
        resp.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(PRE_COOKIE, token, 2 * 3600, secure, true),
        );
    }
    resp
}

/// `GET /login`
pub async fn login_form(ctx: Ctx, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    if ctx.session.is_some() {
        return see_other(&next);
    }
    let lang = ctx.lang;
    let info = match (q.why.as_deref(), q.bye.is_some(), q.invited.is_some()) {
        (Some("idle"), _, _) => Some(lang.t(
            "长时间未操作，会话已结束，请重新登录。",
            "Your session ended after a while without activity; please sign in again.",
        )),
        (Some("expired"), _, _) => Some(lang.t(
            "会话已到最长时限，请重新登录。",
            "Your session reached its time limit; please sign in again.",
        )),
        (_, true, _) => Some(lang.t("你已退出登录。", "You have signed out.")),
        (_, _, true) => Some(lang.t(
            "密码已设置，请用新密码登录。",
            "Your password is set; sign in with it.",
        )),
        _ if q.changed.is_some() => Some(lang.t(
            "密码已修改，请用新密码登录。",
            "Your password is changed; sign in with the new one.",
        )),
        _ => None,
    };
    let (token, set) = pre_token(&headers);
    let username = q.user.unwrap_or_default();
    let markup = login_page(
        &ctx,
        &token,
        LoginForm {
            next: &next,
            username: &username,
            error: None,
            info,
        },
    );
    with_pre_cookie(
        html_response(StatusCode::OK, markup),
        &token,
        set,
        ctx.secure,
    )
}

#[derive(Debug, Deserialize)]
pub struct LoginBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `POST /login`
pub async fn login(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Form(body): Form<LoginBody>,
) -> Response {
    let lang = ctx.lang;
    let pre = cookie(&headers, PRE_COOKIE).unwrap_or("");
    if let Err(err) = same_origin(&headers) {
        return error_page(lang, &err);
    }
    if pre.is_empty() || !same_secret(pre, &body.csrf) {
        return error_page(
            lang,
            &ApiError::forbidden(
                "the sign-in form is stale or came from elsewhere (CSRF check failed); open the sign-in page again",
            ),
        );
    }
    let next = safe_next(body.next.as_deref());
    match console::sign_in(&state.db, &ctx.policy, &body.username, &body.password).await {
        Ok(new) => {
            let mut resp = see_other(&next);
            resp.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    SESSION_COOKIE,
                    &new.secret,
                    ctx.policy.absolute_ms / 1000,
                    ctx.secure,
                    true,
                ),
            );
            // The pre-session token is spent.
            resp.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(PRE_COOKIE, "", 0, ctx.secure, true),
            );
            resp
        }
        Err(err) => {
            let (status, message) = match err {
                SignInError::Invalid => (
                    StatusCode::UNAUTHORIZED,
                    lang.t("登录名或密码不正确。", "Wrong sign-in name or password.")
                        .to_string(),
                ),
                SignInError::Locked { until } => {
                    let minutes = ((until - crate::time::now_ms()) / 60_000).max(0) + 1;
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        match lang {
                            Lang::Zh => format!(
                                "连续失败次数过多，该账号已暂时锁定，请 {minutes} 分钟后再试，或联系管理员。"
                            ),
                            Lang::En => format!(
                                "Too many failed attempts: this sign-in is locked; try again in {minutes} min or ask an admin."
                            ),
                        },
                    )
                }
                SignInError::Disabled => (
                    StatusCode::FORBIDDEN,
                    lang.t(
                        "该账号已停用，请联系管理员。",
                        "This sign-in is disabled; ask an admin.",
                    )
                    .to_string(),
                ),
                SignInError::Internal(e) => {
                    tracing::error!(error = %e, "sign-in failed");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        lang.t("服务器出错，请稍后再试。", "Server error; try again later.")
                            .to_string(),
                    )
                }
            };
            let markup = login_page(
                &ctx,
                pre,
                LoginForm {
                    next: &next,
                    username: body.username.trim(),
                    error: Some(message),
                    info: None,
                },
            );
            html_response(status, markup)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfBody {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`
pub async fn logout(
    State(state): State<AppState>,
    s: Signed,
    headers: HeaderMap,
    Form(body): Form<CsrfBody>,
) -> Response {
    if let Err(err) = same_origin(&headers).and_then(|_| s.check_csrf(&body.csrf)) {
        return error_page(s.lang(), &err);
    }
    if let Err(err) = s.session.sign_out(&state.db).await {
        return error_page(s.lang(), &err);
    }
    let mut resp = see_other("/login?bye=1");
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, s.ctx.secure, true),
    );
    resp
}

/// Send a person without a reason for this session to the reason form.
pub fn need_reason(s: &Signed) -> Option<Response> {
    if s.session.session.access_reason.is_some() {
        return None;
    }
    Some(see_other(&format!("/reason?next={}", encode(&s.ctx.here))))
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Common reasons, offered as suggestions.
const REASONS: &[(&str, &str)] = &[
    ("处理风险提醒", "Handling risk alerts"),
    ("辅导复盘", "Coaching review"),
    ("质检抽查", "Quality spot check"),
    ("客户投诉核查", "Checking a customer complaint"),
    ("合规调查", "Compliance investigation"),
];

fn reason_page(s: &Signed, next: &str, error: Option<String>) -> Markup {
    let lang = s.lang();
    page(
        &s.ctx,
        Some(s),
        lang.t("查看原因", "Reason for access"),
        html! {
            div.narrow {
                h1 { (lang.t("为什么查看会话内容？", "Why are you opening conversation content?")) }
                p { (lang.t(
                    "会话内容涉及客户和员工隐私。每次登录只需填写一次，之后的每次查看都会连同原因记入审计日志。",
                    "Conversations hold customers' and colleagues' private words. You say why once per sign-in; every read is then recorded with it in the audit log.",
                )) }
                @if let Some(e) = &error { (notice("error", e)) }
                form.stack method="post" action="/reason" {
                    input type="hidden" name="csrf" value=(s.csrf());
                    input type="hidden" name="next" value=(next);
                    label for="reason" { (lang.t("原因", "Reason")) }
                    input #reason name="reason" type="text" list="reasons" required minlength="2" maxlength="500" autofocus;
                    datalist #reasons {
                        @for (zh, en) in REASONS { option value=(lang.t(zh, en)) {} }
                    }
                    button.primary type="submit" { (lang.t("继续", "Continue")) }
                }
            }
        },
    )
}

/// `GET /reason?next=`
pub async fn reason_form(s: Signed, Query(q): Query<NextQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    html_response(StatusCode::OK, reason_page(&s, &next, None))
}

#[derive(Debug, Deserialize)]
pub struct ReasonBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    next: Option<String>,
}

/// `POST /reason`
pub async fn reason(
    State(state): State<AppState>,
    mut s: Signed,
    headers: HeaderMap,
    Form(body): Form<ReasonBody>,
) -> Response {
    if let Err(err) = same_origin(&headers).and_then(|_| s.check_csrf(&body.csrf)) {
        return error_page(s.lang(), &err);
    }
    let next = safe_next(body.next.as_deref());
    match s.session.set_reason(&state.db, &body.reason).await {
        Ok(()) => see_other(&next),
        Err(ApiError::InvalidRequest(_)) => {
            let msg = s
                .lang()
                .t("请用几个字说明原因。", "Say in a few words why.")
                .to_string();
            html_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                reason_page(&s, &next, Some(msg)),
            )
        }
        Err(err) => error_page(s.lang(), &err),
    }
}

/// `GET /`: the home page of the signed-in person's role.
pub async fn home(State(state): State<AppState>, s: Signed) -> Response {
    match home_body(&state, &s).await {
        Ok(body) => signed_page(&s, StatusCode::OK, s.lang().t("首页", "Home"), body),
        Err(err) => error_page(s.lang(), &err),
    }
}

async fn home_body(state: &AppState, s: &Signed) -> Result<Markup, ApiError> {
    let lang = s.lang();
    let user = &s.session.user;
    let caller = s.caller();
    let db = &state.db;
    let team = match &user.team_id {
        Some(t) => Some(db.get_team(t).await?),
        None => None,
    };
    let greeting = html! {
        h1 data-testid="home-title" {
            (lang.t("你好，", "Hello, ")) (user.name)
        }
        p.sub {
            (lang.role(user.role))
            @if let Some(t) = &team { " · " (t.name) }
        }
    };
    let body = match user.role {
        Role::Manager => {
            let team_id = user.team_id.as_deref();
            let open = match team_id {
                Some(t) => db.count_alerts(caller.org_id(), Some(t), "open").await?,
                None => 0,
            };
            let acked = match team_id {
                Some(t) => {
                    db.count_alerts(caller.org_id(), Some(t), "acknowledged")
                        .await?
                }
                None => 0,
            };
            let members = match team_id {
                Some(t) => db.list_users(caller.org_id(), Some(t)).await?,
                None => Vec::new(),
            };
            html! {
                (greeting)
                section.cards aria-label=(lang.t("概览", "Overview")) {
                    a.card href="/alerts?status=open" {
                        span.big data-testid="open-alerts" { (open) }
                        span { (lang.t("条待处理提醒", "open alerts")) }
                    }
                    a.card href="/alerts?status=acknowledged" {
                        span.big { (acked) }
                        span { (lang.t("条已确认、待处理完毕", "acknowledged, not yet resolved")) }
                    }
                }
                @if team_id.is_none() {
                    (notice("info", lang.t("你还没有负责的团队，请联系管理员。", "You manage no team yet; ask an admin.")))
                }
                h2 { (lang.t("团队成员", "Your team")) }
                ul.people {
                    @for m in members.iter().filter(|m| m.id != user.id) {
                        li { span.name { (m.name) } " " span.tag { (lang.role(m.role)) } }
                    }
                }
            }
        }
        Role::Trainer => {
            let scripts = db.kb_status_counts(caller.org_id(), Kind::Script).await?;
            let lexicon = db.kb_status_counts(caller.org_id(), Kind::Lexicon).await?;
            let count = |rows: &[(String, i64)], s: &str| {
                rows.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n)
            };
            html! {
                (greeting)
                p { (lang.t(
                    "你负责话术库和风险词库：起草、提交审核，并审核其他培训师的修改。",
                    "You curate the script library and the risk lexicon: draft, submit for review, and review other trainers' changes.",
                )) }
                table.grid {
                    caption { (lang.t("内容状态", "Content by state")) }
                    thead { tr {
                        th scope="col" { "" }
                        th scope="col" { (lang.t("草稿", "Draft")) }
                        th scope="col" { (lang.t("待审核", "In review")) }
                        th scope="col" { (lang.t("已上线", "Approved")) }
                        th scope="col" { (lang.t("已停用", "Retired")) }
                    } }
                    tbody {
                        @for (label, rows) in [(lang.t("话术", "Scripts"), &scripts), (lang.t("风险词条", "Lexicon entries"), &lexicon)] {
                            tr {
                                th scope="row" { (label) }
                                @for st in ["draft", "in_review", "approved", "retired"] {
                                    td.num { (count(rows.as_slice(), st)) }
                                }
                            }
                        }
                    }
                }
                p.hint { (lang.t(
                    "话术编辑器和词库编辑器即将在控制台上线；目前可用 `assist kb` 命令或 API。",
                    "The script and lexicon editors are coming to the console; until then use `assist kb` or the API.",
                )) }
            }
        }
        Role::Compliance | Role::Admin => {
            let entries = crate::caller::read_audit_log(
                db,
                &caller,
                &AuditQuery {
                    limit: 15,
                    ..Default::default()
                },
            )
            .await?;
            let people = db.list_users(caller.org_id(), None).await?;
            let name_of = |id: &Option<String>| -> String {
                match id {
                    None => lang.t("命令行", "command line").to_string(),
                    Some(id) => people.iter().find(|p| &p.id == id).map_or_else(
                        || lang.t("（已删除）", "(removed)").to_string(),
                        |p| p.name.clone(),
                    ),
                }
            };
            let open = db.count_alerts(caller.org_id(), None, "open").await?;
            let admin_part = if user.role == Role::Admin {
                Some(admin_people(state, s, &people).await?)
            } else {
                None
            };
            html! {
                (greeting)
                section.cards aria-label=(lang.t("概览", "Overview")) {
                    a.card href="/alerts?status=open" {
                        span.big data-testid="open-alerts" { (open) }
                        span { (lang.t("条待处理提醒（全公司）", "open alerts (whole organisation)")) }
                    }
                }
                @if let Some(part) = admin_part { (part) }
                h2 { (lang.t("最近的审计记录", "Latest audit records")) " " a.more href="/audit" { (lang.t("全部记录", "All records")) } }
                p.hint { (lang.t("查看审计日志本身也会被记录。", "Reading the audit log is itself recorded.")) }
                div.scroll {
                    table.grid data-testid="audit" {
                        thead { tr {
                            th scope="col" { (lang.t("时间", "Time")) }
                            th scope="col" { (lang.t("人员", "Person")) }
                            th scope="col" { (lang.t("操作", "Action")) }
                            th scope="col" { (lang.t("原因", "Reason")) }
                        } }
                        tbody {
                            @for e in &entries {
                                tr {
                                    td.nowrap { (crate::time::parse_rfc3339(&e.at).map_or_else(|| e.at.clone(), |ms| lang.time(ms))) }
                                    td { (name_of(&e.actor_user_id)) }
                                    td { code { (e.action) } }
                                    td { (e.reason.clone().unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
            }
        }
        Role::Rep => {
            let devices: Vec<_> = db
                .list_devices(caller.org_id())
                .await?
                .into_iter()
                .filter(|d| d.user_id == user.id)
                .collect();
            html! {
                (greeting)
                p { (lang.t(
                    "通话和聊天由工作手机上传，系统会给出话术建议和风险提示。你的通话记录、任务和辅导报告即将在这里显示。",
                    "Your work phone uploads calls and chats; you get script suggestions and risk warnings. Your calls, tasks and coaching report will show here soon.",
                )) }
                h2 { (lang.t("你的工作手机", "Your work phones")) }
                @if devices.is_empty() {
                    p { (lang.t("还没有绑定工作手机，请联系管理员。", "No work phone is bound to you yet; ask an admin.")) }
                } @else {
                    ul.people { @for d in &devices { li { (d.name) } } }
                }
            }
        }
    };
    Ok(body)
}

/// The admin's part of the home page: people and their console sign-ins,
/// with an invitation form per person.
async fn admin_people(
    state: &AppState,
    s: &Signed,
    people: &[crate::db::identity::UserRow],
) -> Result<Markup, ApiError> {
    let lang = s.lang();
    let logins = state.db.list_logins(s.caller().org_id()).await?;
    let teams = state.db.list_teams(s.caller().org_id()).await?;
    let now = crate::time::now_ms();
    Ok(html! {
        h2 #people { (lang.t("人员与登录", "People and sign-ins")) }
        div.scroll {
            table.grid data-testid="people" {
                thead { tr {
                    th scope="col" { (lang.t("姓名", "Name")) }
                    th scope="col" { (lang.t("角色", "Role")) }
                    th scope="col" { (lang.t("团队", "Team")) }
                    th scope="col" { (lang.t("登录名", "Sign-in name")) }
                    th scope="col" { (lang.t("状态", "State")) }
                    th scope="col" { (lang.t("邀请", "Invite")) }
                } }
                tbody {
                    @for p in people {
                        @let login = logins.iter().find(|l| l.user_id == p.id);
                        @let team = p.team_id.as_ref().and_then(|t| teams.iter().find(|x| &x.id == t)).map(|t| t.name.clone()).unwrap_or_default();
                        @let state_text = match login {
                            None => lang.t("无登录", "no sign-in"),
                            Some(l) if l.locked_until.is_some_and(|u| u > now) => lang.t("已锁定", "locked"),
                            Some(l) if l.password_hash.is_none() => lang.t("已邀请", "invited"),
                            Some(_) => lang.t("可登录", "active"),
                        };
                        tr {
                            td { (p.name) }
                            td { (lang.role(p.role)) }
                            td { (team) }
                            td { (login.map(|l| l.username.clone()).unwrap_or_default()) }
                            td { (state_text) }
                            td {
                                form.inline method="post" action="/admin/invite" {
                                    input type="hidden" name="csrf" value=(s.csrf());
                                    input type="hidden" name="user_id" value=(p.id);
                                    @let label_id = format!("u-{}", p.id);
                                    label.sr-only for=(label_id) { (lang.t("登录名", "Sign-in name")) }
                                    input id=(label_id) name="username" type="text" size="10" required
                                        value=(login.map(|l| l.username.clone()).unwrap_or_else(|| p.name.split_whitespace().collect::<String>()));
                                    button type="submit" { (lang.t("生成邀请链接", "Invitation link")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

#[derive(Debug, Deserialize)]
pub struct InviteBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    username: String,
}

/// `POST /admin/invite`: an admin makes a one-time link for a person.
pub async fn admin_invite(
    State(state): State<AppState>,
    s: Signed,
    headers: HeaderMap,
    Form(body): Form<InviteBody>,
) -> Response {
    let lang = s.lang();
    if let Err(err) = same_origin(&headers).and_then(|_| s.check_csrf(&body.csrf)) {
        return error_page(lang, &err);
    }
    let secret = match console::invite(
        &state.db,
        &s.ctx.policy,
        &s.caller(),
        &body.user_id,
        &body.username,
    )
    .await
    {
        Ok(secret) => secret,
        Err(err) => return error_page(lang, &err),
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    let scheme = if s.ctx.secure { "https" } else { "http" };
    let link = format!("{scheme}://{host}/invite/{secret}");
    let hours = state.config.console.console_invite_hours;
    signed_page(
        &s,
        StatusCode::OK,
        lang.t("邀请链接", "Invitation link"),
        html! {
            div.narrow {
                h1 { (lang.t("邀请链接已生成", "Invitation link created")) }
                p { (match lang {
                    Lang::Zh => format!("请把下面的链接私下发给对方（登录名：{}）。链接只能使用一次，{hours} 小时内有效，只显示这一次。", body.username.trim()),
                    Lang::En => format!("Send this link privately (sign-in name: {}). It works once, for {hours} hours, and is shown only now.", body.username.trim()),
                }) }
                p { input.copy type="text" readonly value=(link) aria-label=(lang.t("邀请链接", "Invitation link")) data-testid="invite-link"; }
                p { a href="/#people" { (lang.t("返回人员列表", "Back to people")) } }
            }
        },
    )
}

fn invite_page(
    ctx: &Ctx,
    csrf: &str,
    secret: &str,
    name: &str,
    username: &str,
    error: Option<&str>,
) -> Markup {
    let lang = ctx.lang;
    page(
        ctx,
        None,
        lang.t("设置密码", "Set your password"),
        html! {
            div.narrow {
                h1 { (lang.t("设置密码", "Set your password")) }
                p {
                    (name) " · " (lang.t("登录名：", "sign-in name: ")) strong { (username) }
                }
                @if let Some(e) = error { (notice("error", e)) }
                form.stack method="post" action=(format!("/invite/{secret}")) {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="password" { (lang.t("新密码（至少 8 个字符）", "New password (at least 8 characters)")) }
                    input #password name="password" type="password" autocomplete="new-password" required minlength="8" autofocus;
                    label for="confirm" { (lang.t("再输入一次", "Repeat it")) }
                    input #confirm name="confirm" type="password" autocomplete="new-password" required minlength="8";
                    button.primary type="submit" { (lang.t("保存密码", "Save password")) }
                }
            }
        },
    )
}

/// `GET /invite/{secret}`
pub async fn invite_form(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(secret): Path<String>,
) -> Response {
    let lang = ctx.lang;
    match console::invitation(&state.db, &secret).await {
        Ok(Some((user, login))) => {
            let (token, set) = pre_token(&headers);
            let markup = invite_page(&ctx, &token, &secret, &user.name, &login.username, None);
            with_pre_cookie(
                html_response(StatusCode::OK, markup),
                &token,
                set,
                ctx.secure,
            )
        }
        Ok(None) => error_page(
            lang,
            &ApiError::not_found(lang.t(
                "该邀请链接已使用、已过期或不存在，请联系管理员重新发送。",
                "This invitation link is used, expired or unknown; ask an admin for a new one.",
            )),
        ),
        Err(err) => error_page(lang, &err),
    }
}

#[derive(Debug, Deserialize)]
pub struct SetPasswordBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /invite/{secret}`
pub async fn invite_accept(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(secret): Path<String>,
    Form(body): Form<SetPasswordBody>,
) -> Response {
    let lang = ctx.lang;
    let pre = cookie(&headers, PRE_COOKIE).unwrap_or("");
    if let Err(err) = same_origin(&headers) {
        return error_page(lang, &err);
    }
    if pre.is_empty() || !same_secret(pre, &body.csrf) {
        return error_page(
            lang,
            &ApiError::forbidden("the form is stale or came from elsewhere (CSRF check failed)"),
        );
    }
    let problem = if body.password != body.confirm {
        Some(lang.t("两次输入的密码不一致。", "The two passwords differ."))
    } else if console::check_password(&body.password).is_err() {
        Some(lang.t(
            "密码至少需要 8 个字符。",
            "A password needs at least 8 characters.",
        ))
    } else {
        None
    };
    if let Some(msg) = problem {
        return match console::invitation(&state.db, &secret).await {
            Ok(Some((user, login))) => html_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                invite_page(&ctx, pre, &secret, &user.name, &login.username, Some(msg)),
            ),
            _ => error_page(
                lang,
                &ApiError::not_found("this invitation is used, expired or unknown"),
            ),
        };
    }
    match console::accept_invite(&state.db, &secret, &body.password).await {
        Ok(user) => {
            let username = state
                .db
                .login_of_user(&user.id)
                .await
                .ok()
                .flatten()
                .map(|l| l.username)
                .unwrap_or_default();
            see_other(&format!("/login?invited=1&user={}", encode(&username)))
        }
        Err(err) => error_page(lang, &err),
    }
}

fn account_page(s: &Signed, username: &str, error: Option<&str>) -> Markup {
    let lang = s.lang();
    let session = &s.session.session;
    page(
        &s.ctx,
        Some(s),
        lang.t("我的账号", "My account"),
        html! {
            div.narrow {
                h1 { (lang.t("我的账号", "My account")) }
                dl.facts {
                    dt { (lang.t("姓名", "Name")) } dd { (s.session.user.name) }
                    dt { (lang.t("角色", "Role")) } dd { (lang.role(s.session.role())) }
                    dt { (lang.t("登录名", "Sign-in name")) } dd { (username) }
                    dt { (lang.t("本次登录于", "Signed in at")) } dd { (lang.time(session.created_at)) }
                    dt { (lang.t("最迟退出于", "Session ends by")) } dd { (lang.time(session.expires_at)) }
                }
                h2 { (lang.t("修改密码", "Change your password")) }
                @if let Some(e) = error { (notice("error", e)) }
                form.stack method="post" action="/account/password" {
                    input type="hidden" name="csrf" value=(s.csrf());
                    label for="current" { (lang.t("当前密码", "Current password")) }
                    input #current name="current" type="password" autocomplete="current-password" required;
                    label for="password" { (lang.t("新密码（至少 8 个字符）", "New password (at least 8 characters)")) }
                    input #password name="password" type="password" autocomplete="new-password" required minlength="8";
                    label for="confirm" { (lang.t("再输入一次", "Repeat it")) }
                    input #confirm name="confirm" type="password" autocomplete="new-password" required minlength="8";
                    button.primary type="submit" { (lang.t("修改密码", "Change password")) }
                }
                p.hint { (lang.t("修改后所有设备上的登录都会结束，需要用新密码重新登录。", "Changing it signs you out everywhere; sign in again with the new one.")) }
            }
        },
    )
}

async fn username_of(state: &AppState, s: &Signed) -> String {
    state
        .db
        .login_of_user(&s.session.user.id)
        .await
        .ok()
        .flatten()
        .map(|l| l.username)
        .unwrap_or_default()
}

/// `GET /account`
pub async fn account(State(state): State<AppState>, s: Signed) -> Response {
    let username = username_of(&state, &s).await;
    html_response(StatusCode::OK, account_page(&s, &username, None))
}

#[derive(Debug, Deserialize)]
pub struct PasswordBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /account/password`
pub async fn change_password(
    State(state): State<AppState>,
    s: Signed,
    headers: HeaderMap,
    Form(body): Form<PasswordBody>,
) -> Response {
    let lang = s.lang();
    if let Err(err) = same_origin(&headers).and_then(|_| s.check_csrf(&body.csrf)) {
        return error_page(lang, &err);
    }
    let again = |status: StatusCode, msg: &str, username: &str| {
        html_response(status, account_page(&s, username, Some(msg)))
    };
    if body.password != body.confirm {
        let username = username_of(&state, &s).await;
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            lang.t("两次输入的新密码不一致。", "The two new passwords differ."),
            &username,
        );
    }
    match console::change_password(
        &state.db,
        &s.ctx.policy,
        &s.session,
        &body.current,
        &body.password,
    )
    .await
    {
        Ok(()) => {
            let mut resp = see_other("/login?changed=1");
            resp.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, "", 0, s.ctx.secure, true),
            );
            resp
        }
        Err(ApiError::InvalidRequest(_)) => {
            let username = username_of(&state, &s).await;
            again(
                StatusCode::UNPROCESSABLE_ENTITY,
                lang.t(
                    "新密码至少需要 8 个字符。",
                    "A password needs at least 8 characters.",
                ),
                &username,
            )
        }
        Err(ApiError::Forbidden(_)) => {
            let username = username_of(&state, &s).await;
            again(
                StatusCode::FORBIDDEN,
                lang.t("当前密码不正确。", "The current password is not right."),
                &username,
            )
        }
        Err(err) => error_page(lang, &err),
    }
}
