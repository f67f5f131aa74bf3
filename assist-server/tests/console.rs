//! The web console in process, on both backends: sign-in for every role and
//! its home page, sign-out, language, the CSRF refusals (a stolen cookie
//! alone cannot post), lockout after repeated failures, idle and absolute
//! expiry, invitations, role and team denials through the API's own checks,
//! the access reason asked once and written into every audit record, and
//! the manager's alert inbox: filters, live rows over SSE (resumable),
//! acknowledge, resolve with a note, confirmed / false positive.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use assist_protocol::Role;
use assist_server::db::testing;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{TestApp, setup};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse 电池";

/// A browser in miniature: a cookie jar over the in-process router.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: HashMap<String, String>,
    accept_language: Option<&'static str>,
}

#[derive(Debug)]
struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The first hidden `csrf` value of the page.
    fn csrf(&self) -> String {
        let at = self
            .text
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field in {}", self.text));
        let rest = &self.text[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            cookies: HashMap::new(),
            accept_language: None,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: axum::http::request::Builder, body: Body) -> Page {
        let mut req = req.header(header::HOST, "console.test");
        if !self.cookies.is_empty() {
            req = req.header(header::COOKIE, self.cookie_header());
        }
        if let Some(l) = self.accept_language {
            req = req.header(header::ACCEPT_LANGUAGE, l);
        }
        let resp = self
            .app
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        for v in headers.get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).to_string(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(Request::get(path), Body::empty()).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
            Body::from(body),
        )
        .await
    }

    /// Sign in through the form; panics unless it works.
    async fn sign_in(&mut self, username: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        let csrf = form.csrf();
        let done = self
            .post(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("username", username),
                    ("password", password),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
        assert!(self.cookies.contains_key("assist_session"));
        self.get("/").await
    }

    /// Give the access reason (asked once per session).
    async fn give_reason(&mut self) {
        let form = self.get("/reason?next=/alerts").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        let csrf = form.csrf();
        let done = self
            .post(
                "/reason",
                &[
                    ("csrf", &csrf),
                    ("reason", "处理风险提醒"),
                    ("next", "/alerts"),
                ],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
        assert_eq!(done.location(), "/alerts");
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every person of the sample organisation gets a sign-in: their name.
async fn with_logins(app: &TestApp) {
    let db = &app.state.db;
    for name in ["admin", "manager", "rep", "trainer", "compliance"] {
        let user = db.find_user(&app.org_id, name).await.unwrap();
        assist_server::console::set_password(db, &user, name, PASSWORD)
            .await
            .unwrap();
    }
}

/// The rep's phone posts a chat with a private WeChat id: one alert.
async fn raise_alert(app: &TestApp, conv: &str) -> String {
    let resp = app
        .send_json(
            "POST",
            &format!("/v1/conversations/{conv}/messages"),
            Some(&app.tokens.rep),
            &json!({"channel": "wecom", "messages": [{
                "client_message_id": format!("{conv}-1"), "sender": "rep",
                "text": "加我微信吧，微信号 zhangwei8899，私下聊", "sent_at": "2026-11-24T09:30:00+08:00"
            }]}),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text);
    let alerts = app
        .get(
            &format!("/v1/alerts?conversation_id={conv}"),
            Some(&app.tokens.manager),
        )
        .await;
    alerts.json[0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no alert raised: {}", alerts.text))
        .to_string()
}

#[tokio::test]
async fn each_role_signs_in_and_sees_its_home() {
    for t in testing::all("console_homes").await {
        let app = setup(t.db.clone()).await;
        with_logins(&app).await;
        let expect = [
            ("manager", "待处理提醒"),
            ("rep", "你的工作手机"),
            ("trainer", "话术"),
            ("compliance", "最近的审计记录"),
            ("admin", "人员与登录"),
        ];
        for (who, text) in expect {
            let mut b = Browser::new(&app);
            let login = b.get("/login").await;
            assert_eq!(login.status, StatusCode::OK);
            assert!(login.text.contains("<html lang=\"zh-CN\""));
            assert!(
                login.headers[header::CONTENT_SECURITY_POLICY]
                    .to_str()
                    .unwrap()
                    .contains("script-src 'self'")
            );
            let home = b.sign_in(who, PASSWORD).await;
            assert_eq!(home.status, StatusCode::OK, "{who}: {}", home.text);
            assert!(home.text.contains(&format!("你好，{who}")), "{}", home.text);
            assert!(home.text.contains(text), "{who} home lacks {text}");
            // Nobody is shown by bare id.
            assert!(!home.text.contains(">user_"), "{who}: {}", home.text);
            if who == "admin" {
                assert!(home.text.contains("compliance"));
            }
        }
    }
}

#[tokio::test]
async fn session_cookie_is_http_only_same_site_and_secure_behind_tls() {
    let t = testing::sqlite().await;
    let app = setup(t.db.clone()).await;
    with_logins(&app).await;
    let mut b = Browser::new(&app);
    let form = b.get("/login").await;
    let csrf = form.csrf();
    let resp = b
        .send(
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("x-forwarded-proto", "https"),
            Body::from(format!(
                "csrf={csrf}&username=manager&password={}",
                urlencode(PASSWORD)
            )),
        )
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text);
    let cookie = resp
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("assist_session="))
        .unwrap();
    for attr in [
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Path=/",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    // The database keeps only the hash of the secret.
    let secret = b.cookies["assist_session"].clone();
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM console_sessions WHERE id_hash = $1")
            .bind(&secret)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn signed_out_pages_send_to_sign_in_and_sign_out_ends_the_session() {
    let t = testing::sqlite().await;
    let app = setup(t.db.clone()).await;
    with_logins(&app).await;
    let mut b = Browser::new(&app);
    let home = b.get("/").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.location(), "/login?next=/");
    let alerts = b.get("/alerts?status=open").await;
    assert_eq!(alerts.location(), "/login?next=/alerts%3Fstatus%3Dopen");
    // A POST without a session is refused, not redirected.
    let post = b.post("/alerts/x/ack", &[("csrf", "x")]).await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);
    assert!(
        post.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    let home = b.sign_in("manager", PASSWORD).await;
    let csrf = home.csrf();
    let stolen = b.cookies["assist_session"].clone();
    let out = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/login?bye=1");
    assert!(!b.cookies.contains_key("assist_session"));
    // The old cookie is dead on the server too.
    b.cookies.insert("assist_session".into(), stolen);
    assert_eq!(b.get("/").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn wrong_passwords_lock_the_sign_in_and_unknown_names_read_the_same() {
    for t in testing::all("console_lockout").await {
        let app = setup(t.db.clone()).await;
        with_logins(&app).await;
        let mut b = Browser::new(&app);
        let form = b.get("/login").await;
        let csrf = form.csrf();
        let unknown = b
            .post(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("username", "nobody"),
                    ("password", "whatever1"),
                ],
            )
            .await;
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
        assert!(unknown.text.contains("登录名或密码不正确"));
        for i in 1..=5 {
            let wrong = b
                .post(
                    "/login",
                    &[
                        ("csrf", &csrf),
                        ("username", "rep"),
                        ("password", "wrong-password"),
                    ],
                )
                .await;
            if i < 5 {
                assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "attempt {i}");
                assert!(wrong.text.contains("登录名或密码不正确"));
                // The typed name is kept, the password is not.
                assert!(wrong.text.contains("value=\"rep\""));
                assert!(!wrong.text.contains("wrong-password"));
            } else {
                assert_eq!(wrong.status, StatusCode::TOO_MANY_REQUESTS, "attempt {i}");
                assert!(wrong.text.contains("锁定"), "{}", wrong.text);
            }
        }
        // Locked: even the right password is refused, and no session is made.
        let right = b
            .post(
                "/login",
                &[("csrf", &csrf), ("username", "rep"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(!b.cookies.contains_key("assist_session"));
        // Others are not locked.
        let mut other = Browser::new(&app);
        assert_eq!(
            other.sign_in("manager", PASSWORD).await.status,
            StatusCode::OK
        );
        // When the lock runs out, the right password works again.
        sqlx::query("UPDATE console_logins SET locked_until = 1 WHERE username = 'rep'")
            .execute(app.state.db.pool())
            .await
            .unwrap();
        let mut again = Browser::new(&app);
        assert_eq!(again.sign_in("rep", PASSWORD).await.status, StatusCode::OK);
        // The failures and the lock are in the audit log.
        let audit = app
            .get("/v1/audit?limit=200", Some(&app.tokens.compliance))
            .await;
        let actions: Vec<&str> = audit.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert!(actions.contains(&"console.locked"));
        assert!(actions.contains(&"console.sign_in_failed"));
        assert!(actions.contains(&"console.sign_in"));
    }
}

#[tokio::test]
async fn idle_and_absolute_expiry_end_a_session() {
    let t = testing::sqlite().await;
    let app = setup(t.db.clone()).await;
    with_logins(&app).await;
    let pool = app.state.db.pool().clone();

    let mut b = Browser::new(&app);
    b.sign_in("manager", PASSWORD).await;
    // 31 minutes without a request (the idle limit is 30).
    sqlx::query("UPDATE console_sessions SET last_seen_at = last_seen_at - 1860000")
        .execute(&pool)
        .await
        .unwrap();
    let page = b.get("/").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?next=/&why=idle");
    let login = b.get(page.location()).await;
    assert!(login.text.contains("长时间未操作"));

    let mut b = Browser::new(&app);
    b.sign_in("manager", PASSWORD).await;
    // Busy all along, but past the absolute limit.
    sqlx::query("UPDATE console_sessions SET expires_at = 1 WHERE ended_at IS NULL")
        .execute(&pool)
        .await
        .unwrap();
    let page = b.get("/").await;
    assert_eq!(page.location(), "/login?next=/&why=expired");
    // Setting a new password ends every session of that person.
    let mut b = Browser::new(&app);
    b.sign_in("rep", PASSWORD).await;
    let rep = app.state.db.find_user(&app.org_id, "rep").await.unwrap();
    assist_server::console::set_password(&app.state.db, &rep, "rep", "another password")
        .await
        .unwrap();
    assert_eq!(b.get("/").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn forms_without_the_csrf_token_or_from_another_site_are_refused() {
    for t in testing::all("console_csrf").await {
        let app = setup(t.db.clone()).await;
        with_logins(&app).await;
        let alert = raise_alert(&app, "c-csrf").await;

        // Sign-in form without its double-submit cookie or token.
        let mut b = Browser::new(&app);
        let refused = b
            .post("/login", &[("username", "manager"), ("password", PASSWORD)])
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.text.contains("CSRF"));

        let mut b = Browser::new(&app);
        b.sign_in("manager", PASSWORD).await;
        b.give_reason().await;
        // A stolen session cookie alone: every form is refused.
        let mut thief = Browser::new(&app);
        thief
            .cookies
            .insert("assist_session".into(), b.cookies["assist_session"].clone());
        for (path, form) in [
            (format!("/alerts/{alert}/ack"), vec![]),
            (
                format!("/alerts/{alert}/ack"),
                vec![("csrf", "0".repeat(64))],
            ),
            (
                format!("/alerts/{alert}/verdict"),
                vec![("verdict", "false_positive".to_string())],
            ),
            ("/logout".to_string(), vec![]),
            ("/reason".to_string(), vec![("reason", "x".repeat(10))]),
        ] {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let resp = thief.post(&path, &form).await;
            assert_eq!(resp.status, StatusCode::FORBIDDEN, "{path}: {}", resp.text);
        }
        // Nothing changed, and the session still works for its owner.
        let still = app
            .get(&format!("/v1/alerts/{alert}"), Some(&app.tokens.manager))
            .await;
        assert_eq!(still.json["status"], "open");
        assert!(still.json["verdict"].is_null());
        let inbox = b.get("/alerts").await;
        assert_eq!(inbox.status, StatusCode::OK);

        // The right token from another site's page: refused by Origin.
        let csrf = inbox.csrf();
        let resp = b
            .send(
                Request::post(format!("/alerts/{alert}/ack"))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::ORIGIN, "https://evil.example"),
                Body::from(format!("csrf={csrf}")),
            )
            .await;
        assert_eq!(resp.status, StatusCode::FORBIDDEN);
        // With it, from here, it works.
        let resp = b
            .send(
                Request::post(format!("/alerts/{alert}/ack"))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::ORIGIN, "http://console.test"),
                Body::from(format!("csrf={csrf}")),
            )
            .await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text);
    }
}

#[tokio::test]
async fn roles_and_teams_are_checked_like_the_api() {
    for t in testing::all("console_roles").await {
        let app = setup(t.db.clone()).await;
        with_logins(&app).await;
        let alert = raise_alert(&app, "c-roles").await;
        for who in ["rep", "trainer"] {
            let mut b = Browser::new(&app);
            b.sign_in(who, PASSWORD).await;
            b.give_reason().await;
            let inbox = b.get("/alerts").await;
            assert_eq!(inbox.status, StatusCode::FORBIDDEN, "{who}");
            assert!(inbox.text.contains("没有权限"));
            let one = b.get(&format!("/alerts/{alert}")).await;
            assert_eq!(one.status, StatusCode::FORBIDDEN, "{who}");
            // No alert navigation for them.
            let home = b.get("/").await;
            assert!(!home.text.contains("href=\"/alerts\""), "{who}");
            // Not an admin: no invitations.
            let csrf = home.csrf();
            let rep_id = app.rep_id.clone();
            let invite = b
                .post(
                    "/admin/invite",
                    &[("csrf", &csrf), ("user_id", &rep_id), ("username", "zz")],
                )
                .await;
            assert_eq!(invite.status, StatusCode::FORBIDDEN, "{who}");
        }
        // A manager of another team does not see the alert at all.
        let db = &app.state.db;
        let west = db
            .create_user(
                &app.org_id,
                "west-manager",
                Role::Manager,
                Some(&app.other_team_id),
            )
            .await
            .unwrap();
        assist_server::console::set_password(db, &west, "west", PASSWORD)
            .await
            .unwrap();
        let mut b = Browser::new(&app);
        b.sign_in("west", PASSWORD).await;
        b.give_reason().await;
        let inbox = b.get("/alerts").await;
        assert_eq!(inbox.status, StatusCode::OK);
        assert!(!inbox.text.contains(&alert));
        assert_eq!(
            b.get(&format!("/alerts/{alert}")).await.status,
            StatusCode::NOT_FOUND
        );
        let csrf = inbox.csrf();
        let ack = b
            .post(&format!("/alerts/{alert}/ack"), &[("csrf", &csrf)])
            .await;
        assert_eq!(ack.status, StatusCode::NOT_FOUND);
        // Another organisation's admin, the same.
        let other = db
            .find_user(&app.other_org_id, "other-admin")
            .await
            .unwrap();
        assist_server::console::set_password(db, &other, "other", PASSWORD)
            .await
            .unwrap();
        let mut b = Browser::new(&app);
        b.sign_in("other", PASSWORD).await;
        b.give_reason().await;
        assert_eq!(
            b.get(&format!("/alerts/{alert}")).await.status,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn the_manager_inbox_filters_acknowledges_resolves_and_judges() {
    for t in testing::all("console_inbox").await {
        let app = setup(t.db.clone()).await;
        with_logins(&app).await;
        let alert = raise_alert(&app, "c-inbox").await;
        let mut b = Browser::new(&app);
        b.sign_in("manager", PASSWORD).await;
        // Content needs a reason first, once per session.
        let first = b.get("/alerts").await;
        assert_eq!(first.status, StatusCode::SEE_OTHER);
        assert_eq!(first.location(), "/reason?next=/alerts");
        b.give_reason().await;
        let inbox = b.get("/alerts").await;
        assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.text);
        assert!(inbox.text.contains(&format!("id=\"alert-{alert}\"")));
        assert!(inbox.text.contains("私人联系方式"));
        // The rep by name.
        assert!(
            inbox.text.contains("data-testid=\"rep\">rep<"),
            "{}",
            inbox.text
        );
        assert!(inbox.text.contains("data-stream=\"/alerts/stream\""));
        // Filters: by category, severity, rep, state.
        let rep_id = app.rep_id.clone();
        for (q, shown) in [
            ("?category=private_contact".to_string(), true),
            ("?category=kickback".to_string(), false),
            (format!("?rep={rep_id}"), true),
            ("?rep=user_nobody".to_string(), false),
            ("?status=resolved".to_string(), false),
            ("?status=open&severity=".to_string(), true),
        ] {
            let page = b.get(&format!("/alerts{q}")).await;
            assert_eq!(page.status, StatusCode::OK, "{q}");
            assert_eq!(
                page.text.contains(&format!("id=\"alert-{alert}\"")),
                shown,
                "{q}"
            );
        }
        let sev = app
            .get(&format!("/v1/alerts/{alert}"), Some(&app.tokens.manager))
            .await;
        let severity = sev.json["severity"].as_str().unwrap().to_string();
        let page = b.get(&format!("/alerts?severity={severity}")).await;
        assert!(page.text.contains(&format!("id=\"alert-{alert}\"")));
        let bad = b.get("/alerts?severity=extreme").await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

        // Acknowledge from the list, with the row's own form.
        let csrf = inbox.csrf();
        let ack = b
            .post(
                &format!("/alerts/{alert}/ack"),
                &[("csrf", &csrf), ("next", "/alerts")],
            )
            .await;
        assert_eq!(ack.status, StatusCode::SEE_OTHER, "{}", ack.text);
        assert_eq!(ack.location(), "/alerts");
        let detail = b.get(&format!("/alerts/{alert}")).await;
        assert_eq!(detail.status, StatusCode::OK);
        assert!(detail.text.contains("已确认收到"));
        assert!(detail.text.contains("zhangwei8899"), "evidence shown");
        // Twice is a conflict, said on a page.
        let again = b
            .post(&format!("/alerts/{alert}/ack"), &[("csrf", &csrf)])
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        // Resolving needs a note.
        let no_note = b
            .post(
                &format!("/alerts/{alert}/resolve"),
                &[("csrf", &csrf), ("note", "  ")],
            )
            .await;
        assert_eq!(no_note.status, StatusCode::UNPROCESSABLE_ENTITY);
        let resolved = b
            .post(
                &format!("/alerts/{alert}/resolve"),
                &[
                    ("csrf", &csrf),
                    ("note", "已与张伟谈话"),
                    ("next", &format!("/alerts/{alert}")),
                ],
            )
            .await;
        assert_eq!(resolved.status, StatusCode::SEE_OTHER);
        assert_eq!(resolved.location(), format!("/alerts/{alert}?done=resolve"));
        // Verdict: stored, shown, and in the API.
        let judged = b
            .post(
                &format!("/alerts/{alert}/verdict"),
                &[("csrf", &csrf), ("verdict", "false_positive")],
            )
            .await;
        assert_eq!(judged.status, StatusCode::SEE_OTHER);
        let detail = b.get(&format!("/alerts/{alert}?done=verdict")).await;
        assert!(detail.text.contains("误报"));
        assert!(detail.text.contains("已与张伟谈话"));
        assert!(detail.text.contains("判定已保存"));
        let api = app
            .get(&format!("/v1/alerts/{alert}"), Some(&app.tokens.manager))
            .await;
        assert_eq!(api.json["status"], "resolved");
        assert_eq!(api.json["verdict"], "false_positive");
        assert_eq!(api.json["verdict_by"], app.manager_id.as_str());
        let bad = b
            .post(
                &format!("/alerts/{alert}/verdict"),
                &[("csrf", &csrf), ("verdict", "maybe")],
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

        // Every read and change is audited with the session's reason.
        let audit = app
            .get("/v1/audit?limit=500", Some(&app.tokens.compliance))
            .await;
        let items = audit.json["items"].as_array().unwrap();
        for action in [
            "alert.list",
            "alert.read",
            "alert.acknowledge",
            "alert.resolve",
            "alert.false_positive",
        ] {
            // (The test's own API reads carry no reason; the console's do.)
            assert!(
                items.iter().any(|e| e["action"] == action
                    && e["actor_user_id"] == app.manager_id.as_str()
                    && e["reason"] == "处理风险提醒"),
                "no {action} with the session's reason in {}",
                audit.text
            );
        }
    }
}

#[tokio::test]
async fn the_api_takes_the_same_verdicts_and_filters() {
    let t = testing::sqlite().await;
    let app = setup(t.db.clone()).await;
    let alert = raise_alert(&app, "c-api").await;
    let path = format!("/v1/alerts/{alert}/verdict");
    let ok = app
        .send_json(
            "POST",
            &path,
            Some(&app.tokens.manager),
            &json!({"verdict": "confirmed", "note": "属实"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.json["verdict"], "confirmed");
    let rep = app
        .send_json(
            "POST",
            &path,
            Some(&app.tokens.rep),
            &json!({"verdict": "confirmed"}),
        )
        .await;
    assert_eq!(rep.status, StatusCode::FORBIDDEN);
    let bad = app
        .send_json(
            "POST",
            &path,
            Some(&app.tokens.manager),
            &json!({"verdict": "perhaps"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let hit = app
        .get(
            "/v1/alerts?category=private_contact",
            Some(&app.tokens.manager),
        )
        .await;
    assert_eq!(hit.json.as_array().unwrap().len(), 1);
    let miss = app
        .get("/v1/alerts?category=kickback", Some(&app.tokens.manager))
        .await;
    assert_eq!(miss.json.as_array().unwrap().len(), 0);
    let by_rep = app
        .get(
            &format!("/v1/alerts?rep={}", app.rep_id),
            Some(&app.tokens.compliance),
        )
        .await;
    assert_eq!(by_rep.json.as_array().unwrap().len(), 1);
}

/// Read SSE blocks from a streaming body until one with `event: kind`.
async fn next_event(body: &mut Body, buf: &mut String, kind: &str) -> (String, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (String::new(), String::new(), Vec::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                }
            }
            if event == kind {
                return (id, data.join("\n"));
            }
        }
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("no event in time")
            .expect("stream ended")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            buf.push_str(&String::from_utf8_lossy(&data));
        }
    }
}

#[tokio::test]
async fn new_alerts_arrive_on_the_inbox_stream_and_it_resumes() {
    for t in testing::all("console_stream").await {
        let app = setup(t.db.clone()).await;
        with_logins(&app).await;
        let mut b = Browser::new(&app);
        b.sign_in("manager", PASSWORD).await;
        // No reason yet: no stream.
        let refused = b.get("/alerts/stream").await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        b.give_reason().await;
        let open = |b: &Browser, last: Option<&str>| {
            let mut req = Request::get("/alerts/stream?status=open")
                .header(header::COOKIE, b.cookie_header());
            if let Some(l) = last {
                req = req.header("last-event-id", l);
            }
            req.body(Body::empty()).unwrap()
        };
        let resp = app.router.clone().oneshot(open(&b, None)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
        let mut body = resp.into_body();
        let mut buf = String::new();
        let alert = raise_alert(&app, "c-stream").await;
        let (id, html) = next_event(&mut body, &mut buf, "upsert").await;
        assert!(html.contains(&format!("id=\"alert-{alert}\"")), "{html}");
        assert!(html.contains(">rep<"), "the rep by name: {html}");
        assert!(html.contains("name=\"csrf\""), "the row's own ack form");
        // Acknowledged elsewhere: it leaves the `open` list.
        let ack = app
            .send_json(
                "POST",
                &format!("/v1/alerts/{alert}/ack"),
                Some(&app.tokens.manager),
                &json!({}),
            )
            .await;
        assert_eq!(ack.status, StatusCode::OK);
        let (_, dropped) = next_event(&mut body, &mut buf, "drop").await;
        assert_eq!(dropped, format!("alert-{alert}"));
        drop(body);
        // Reconnect after the first event: the browser sends Last-Event-ID,
        // and what came after is replayed.
        let resp = app
            .router
            .clone()
            .oneshot(open(&b, Some(&id)))
            .await
            .unwrap();
        let mut body = resp.into_body();
        let mut buf = String::new();
        let (_, dropped) = next_event(&mut body, &mut buf, "drop").await;
        assert_eq!(dropped, format!("alert-{alert}"));
    }
}

#[tokio::test]
async fn an_admin_invites_and_the_link_sets_a_password_once() {
    for t in testing::all("console_invite").await {
        let app = setup(t.db.clone()).await;
        with_logins(&app).await;
        let db = &app.state.db;
        let newbie = db
            .create_user(&app.org_id, "新同事 小刘", Role::Rep, Some(&app.team_id))
            .await
            .unwrap();
        let mut admin = Browser::new(&app);
        let home = admin.sign_in("admin", PASSWORD).await;
        assert!(home.text.contains("新同事 小刘"));
        assert!(home.text.contains("无登录"));
        let csrf = home.csrf();
        let made = admin
            .post(
                "/admin/invite",
                &[
                    ("csrf", &csrf),
                    ("user_id", &newbie.id),
                    ("username", "xiaoliu"),
                ],
            )
            .await;
        assert_eq!(made.status, StatusCode::OK, "{}", made.text);
        let at = made
            .text
            .find("http://console.test/invite/")
            .expect("link shown");
        let link = &made.text[at + "http://console.test".len()..];
        let link = link[..link.find('"').unwrap()].to_string();
        // A taken sign-in name is a conflict.
        let taken = admin
            .post(
                "/admin/invite",
                &[
                    ("csrf", &csrf),
                    ("user_id", &newbie.id),
                    ("username", "manager"),
                ],
            )
            .await;
        assert_eq!(taken.status, StatusCode::CONFLICT);

        let mut b = Browser::new(&app);
        b.accept_language = Some("en-US,en;q=0.9");
        let form = b.get(&link).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        assert!(form.text.contains("Set your password"));
        assert!(form.text.contains("xiaoliu"));
        let csrf = form.csrf();
        let differ = b
            .post(
                &link,
                &[
                    ("csrf", &csrf),
                    ("password", "abcdefgh1"),
                    ("confirm", "abcdefgh2"),
                ],
            )
            .await;
        assert_eq!(differ.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(differ.text.contains("differ"));
        let short = b
            .post(
                &link,
                &[("csrf", &csrf), ("password", "abc"), ("confirm", "abc")],
            )
            .await;
        assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
        let done = b
            .post(
                &link,
                &[
                    ("csrf", &csrf),
                    ("password", "新密码 secret"),
                    ("confirm", "新密码 secret"),
                ],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
        assert_eq!(done.location(), "/login?invited=1&user=xiaoliu");
        let home = b.sign_in("xiaoliu", "新密码 secret").await;
        assert!(home.text.contains("Hello, 新同事 小刘"), "{}", home.text);
        // The link works once.
        let reused = Browser::new(&app).get(&link).await;
        assert_eq!(reused.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn language_follows_the_switch_then_accept_language() {
    let t = testing::sqlite().await;
    let app = setup(t.db.clone()).await;
    with_logins(&app).await;
    let mut b = Browser::new(&app);
    b.accept_language = Some("en-GB,en;q=0.8");
    let login = b.get("/login").await;
    assert!(login.text.contains("<html lang=\"en\""));
    assert!(login.text.contains("Sign in to Assist"));
    let switched = b.get("/lang/zh?next=/login").await;
    assert_eq!(switched.status, StatusCode::SEE_OTHER);
    assert_eq!(switched.location(), "/login");
    let login = b.get("/login").await;
    assert!(login.text.contains("登录会话助手"));
    // Only paths on this site are followed.
    let away = b.get("/lang/zh?next=//evil.example/x").await;
    assert_eq!(away.location(), "/");
    let home = b.sign_in("manager", PASSWORD).await;
    assert!(home.text.contains("你好，manager"));
    b.get("/lang/en?next=/").await;
    let home = b.get("/").await;
    assert!(home.text.contains("Hello, manager"));
    assert!(home.text.contains("open alerts"));
}

#[tokio::test]
async fn assets_are_built_in_and_unknown_pages_stay_json() {
    let t = testing::sqlite().await;
    let app = setup(t.db.clone()).await;
    let css = app.get("/assets/console.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let js = app.get("/assets/console.js", None).await;
    assert!(js.text.contains("EventSource"));
    let missing = app.get("/no/such/page", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json["code"], "not_found");
}

#[tokio::test]
async fn compliance_reads_filters_and_exports_the_audit_log() {
    for t in testing::all("console_audit").await {
        let app = setup(t.db.clone()).await;
        with_logins(&app).await;
        let mut m = Browser::new(&app);
        m.sign_in("manager", PASSWORD).await;
        m.give_reason().await;
        let mut b = Browser::new(&app);
        let home = b.sign_in("compliance", PASSWORD).await;
        assert!(home.text.contains("href=\"/audit\""));
        let page = b.get("/audit").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        // People by name, the reason they gave.
        assert!(page.text.contains("<td>manager</td>"), "{}", page.text);
        assert!(page.text.contains("处理风险提醒"));
        // Filter by person: the manager's records only.
        let only = b.get(&format!("/audit?actor={}", app.manager_id)).await;
        assert!(only.text.contains("console.reason"));
        assert!(!only.text.contains("<td>compliance</td>"));
        // A day with nothing in it; a malformed day.
        let empty = b.get("/audit?from=2001-01-01&to=2001-01-02").await;
        assert!(!empty.text.contains("console.sign_in"));
        let bad = b.get("/audit?from=yesterday").await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        // CSV: a BOM, a header, names, and the export recorded.
        let csv = b.get(&format!("/audit.csv?actor={}", app.manager_id)).await;
        assert_eq!(csv.status, StatusCode::OK);
        assert!(
            csv.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        assert!(csv.text.starts_with("\u{feff}time,person,person_id,action"));
        assert!(csv.text.contains(",manager,"));
        assert!(csv.text.contains("console.reason"));
        let audit = app
            .get("/v1/audit?limit=50", Some(&app.tokens.compliance))
            .await;
        assert!(audit.text.contains("audit.export"));
        // Not for managers, reps or trainers.
        for who in ["manager", "rep", "trainer"] {
            let mut x = Browser::new(&app);
            x.sign_in(who, PASSWORD).await;
            assert_eq!(x.get("/audit").await.status, StatusCode::FORBIDDEN, "{who}");
            assert_eq!(
                x.get("/audit.csv").await.status,
                StatusCode::FORBIDDEN,
                "{who}"
            );
        }
    }
}

#[tokio::test]
async fn people_change_their_own_password() {
    let t = testing::sqlite().await;
    let app = setup(t.db.clone()).await;
    with_logins(&app).await;
    let mut b = Browser::new(&app);
    b.sign_in("rep", PASSWORD).await;
    let page = b.get("/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("修改密码"));
    let csrf = page.csrf();
    let wrong = b
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", "not it at all"),
                ("password", "new password 1"),
                ("confirm", "new password 1"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(wrong.text.contains("当前密码不正确"));
    let differ = b
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("password", "new password 1"),
                ("confirm", "new password 2"),
            ],
        )
        .await;
    assert_eq!(differ.status, StatusCode::UNPROCESSABLE_ENTITY);
    let no_csrf = b
        .post(
            "/account/password",
            &[
                ("current", PASSWORD),
                ("password", "new password 1"),
                ("confirm", "new password 1"),
            ],
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let done = b
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("password", "new password 1"),
                ("confirm", "new password 1"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    assert_eq!(done.location(), "/login?changed=1");
    assert_eq!(b.get("/").await.status, StatusCode::SEE_OTHER);
    let mut again = Browser::new(&app);
    assert_eq!(
        again.sign_in("rep", "new password 1").await.status,
        StatusCode::OK
    );
}
