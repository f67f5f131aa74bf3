//! In-process API tests: error bodies, authentication, roles and
//! organisations, audit, health and readiness — on SQLite and (when
//! configured) PostgreSQL.

mod common;

use assist_server::db::testing;
use common::{assert_error, setup, setup_with};
use serde_json::json;

#[tokio::test]
async fn every_failure_has_a_json_error_body() {
    for t in testing::all("every_failure_has_a_json_error_body").await {
        let app = setup(t.db.clone()).await;
        let admin = Some(app.tokens.admin.as_str());

        let r = app.get("/no/such/route", admin).await;
        assert_error(&r, 404, "not_found");

        let r = app.send_json("PUT", "/v1/me", admin, &json!({})).await;
        assert_error(&r, 405, "method_not_allowed");

        let r = app
            .send_raw(
                "POST",
                "/v1/admin/teams",
                admin,
                Some("application/json"),
                b"{\"name\": ".to_vec(),
            )
            .await;
        assert_error(&r, 400, "invalid_json");

        let r = app
            .send_json("POST", "/v1/admin/teams", admin, &json!({"nome": "typo"}))
            .await;
        assert_error(&r, 400, "invalid_json");
        assert!(
            r.json["message"].as_str().unwrap().contains("name"),
            "{}",
            r.text
        );

        let r = app
            .send_raw(
                "POST",
                "/v1/admin/teams",
                admin,
                Some("text/plain"),
                b"name=x".to_vec(),
            )
            .await;
        assert_error(&r, 415, "unsupported_media_type");

        let r = app
            .send_raw("POST", "/v1/admin/teams", admin, None, b"{}".to_vec())
            .await;
        assert_error(&r, 415, "unsupported_media_type");

        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
        let r = app
            .send_raw(
                "POST",
                "/v1/admin/teams",
                admin,
                Some("application/json"),
                big.into_bytes(),
            )
            .await;
        assert_error(&r, 413, "payload_too_large");

        let r = app
            .send_json("POST", "/v1/admin/teams", admin, &json!({"name": "  "}))
            .await;
        assert_error(&r, 422, "invalid_request");

        let r = app
            .send_json(
                "POST",
                "/v1/admin/teams",
                admin,
                &json!({"name": "华东一组"}),
            )
            .await;
        assert_error(&r, 409, "conflict");

        let r = app
            .get("/v1/audit?limit=0", Some(&app.tokens.compliance))
            .await;
        assert_error(&r, 422, "invalid_request");
        let r = app
            .get("/v1/audit?from=yesterday", Some(&app.tokens.compliance))
            .await;
        assert_error(&r, 422, "invalid_request");
        assert!(r.text.contains("RFC 3339"), "{}", r.text);

        // Every response carries a request id.
        assert!(r.headers.contains_key("x-request-id"));
    }
}

#[tokio::test]
async fn authentication_failures_are_401_with_the_reason() {
    for t in testing::all("authentication_failures_are_401_with_the_reason").await {
        let app = setup(t.db.clone()).await;
        let r = app.get("/v1/me", None).await;
        assert_error(&r, 401, "unauthorized");
        assert!(r.text.contains("Authorization"), "{}", r.text);

        let r = app.get("/v1/me", Some("ast_0000")).await;
        assert_error(&r, 401, "unauthorized");
        assert!(r.text.contains("unknown token"), "{}", r.text);

        let r = app
            .request(
                axum::http::Request::get("/v1/me")
                    .header("authorization", "Basic abc")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_error(&r, 401, "unauthorized");

        // Expired token.
        let db = &app.state.db;
        let (_, expired) = db
            .create_token(
                &app.org_id,
                &app.rep_id,
                None,
                None,
                Some(assist_server::time::now_ms() - 1000),
            )
            .await
            .unwrap();
        let r = app.get("/v1/me", Some(&expired)).await;
        assert_error(&r, 401, "unauthorized");
        assert!(r.text.contains("expired"), "{}", r.text);

        // Revoked token: works, is revoked through the API, then fails.
        let created = app
            .send_json(
                "POST",
                "/v1/admin/tokens",
                Some(&app.tokens.admin),
                &json!({"user_id": app.rep_id, "name": "phone", "expires_in_days": 30}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let secret = created.json["secret"].as_str().unwrap().to_string();
        assert!(secret.starts_with("ast_"));
        assert!(created.json["expires_at"].is_string());
        let r = app.get("/v1/me", Some(&secret)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["user"]["name"], "rep");
        let id = created.json["id"].as_str().unwrap();
        let r = app
            .send_json(
                "DELETE",
                &format!("/v1/admin/tokens/{id}"),
                Some(&app.tokens.admin),
                &json!({}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.json["revoked_at"].is_string());
        let r = app.get("/v1/me", Some(&secret)).await;
        assert_error(&r, 401, "unauthorized");
        assert!(r.text.contains("revoked"), "{}", r.text);
        let r = app
            .send_json(
                "DELETE",
                &format!("/v1/admin/tokens/{id}"),
                Some(&app.tokens.admin),
                &json!({}),
            )
            .await;
        assert_error(&r, 409, "conflict");

        // The secret is never listed, only its prefix.
        let r = app.get("/v1/admin/tokens", Some(&app.tokens.admin)).await;
        assert_eq!(r.status, 200);
        assert!(!r.text.contains(&secret));
        assert!(r.text.contains(&secret[..12]));
    }
}

#[tokio::test]
async fn roles_are_allowed_and_denied_per_endpoint() {
    for t in testing::all("roles_are_allowed_and_denied_per_endpoint").await {
        let app = setup(t.db.clone()).await;
        let tk = &app.tokens;
        // (endpoint, token, expected status)
        let team = format!("/v1/teams/{}", app.team_id);
        let other_team = format!("/v1/teams/{}", app.other_team_id);
        let cases: Vec<(&str, &str, &str, u16)> = vec![
            ("GET", "/v1/me", &tk.rep, 200),
            ("GET", "/v1/me", &tk.trainer, 200),
            ("GET", "/v1/admin/users", &tk.admin, 200),
            ("GET", "/v1/admin/users", &tk.compliance, 200),
            ("GET", "/v1/admin/users", &tk.manager, 403),
            ("GET", "/v1/admin/users", &tk.rep, 403),
            ("GET", "/v1/admin/users", &tk.trainer, 403),
            ("GET", "/v1/admin/tokens", &tk.admin, 200),
            ("GET", "/v1/admin/tokens", &tk.compliance, 403),
            ("GET", "/v1/admin/jobs", &tk.admin, 200),
            ("GET", "/v1/admin/jobs", &tk.manager, 403),
            ("GET", "/v1/audit", &tk.compliance, 200),
            ("GET", "/v1/audit", &tk.admin, 200),
            ("GET", "/v1/audit", &tk.manager, 403),
            ("GET", "/v1/audit", &tk.rep, 403),
            ("GET", "/v1/audit", &tk.trainer, 403),
            ("GET", &team, &tk.manager, 200),
            ("GET", &team, &tk.compliance, 200),
            ("GET", &team, &tk.rep, 403),
            ("GET", &other_team, &tk.manager, 403),
            // Cross-organisation: a valid admin of another organisation.
            ("GET", &team, &tk.other_admin, 403),
        ];
        for (method, path, token, expected) in cases {
            let r = app.send_json(method, path, Some(token), &json!({})).await;
            let r = if method == "GET" {
                app.get(path, Some(token)).await
            } else {
                r
            };
            assert_eq!(r.status.as_u16(), expected, "{method} {path}: {}", r.text);
            if expected == 403 {
                assert_error(&r, 403, "forbidden");
            }
        }

        // Writes: only admins create users; a rep cannot make themselves admin.
        let body = json!({"name": "new rep", "role": "rep", "team_id": app.team_id});
        for (token, expected) in [
            (&tk.rep, 403),
            (&tk.manager, 403),
            (&tk.trainer, 403),
            (&tk.compliance, 403),
            (&tk.admin, 201),
        ] {
            let r = app
                .send_json("POST", "/v1/admin/users", Some(token), &body)
                .await;
            assert_eq!(r.status.as_u16(), expected, "{}", r.text);
        }
        // An admin of another organisation cannot place users in our team,
        // nor mint tokens for our users.
        let r = app
            .send_json(
                "POST",
                "/v1/admin/users",
                Some(&tk.other_admin),
                &json!({"name": "x", "role": "rep", "team_id": app.team_id}),
            )
            .await;
        assert_error(&r, 404, "not_found");
        let r = app
            .send_json(
                "POST",
                "/v1/admin/tokens",
                Some(&tk.other_admin),
                &json!({"user_id": app.rep_id}),
            )
            .await;
        assert_error(&r, 404, "not_found");
        // Devices bind to reps only.
        let r = app
            .send_json(
                "POST",
                "/v1/admin/devices",
                Some(&tk.admin),
                &json!({"user_id": app.manager_id, "name": "x"}),
            )
            .await;
        assert_error(&r, 422, "invalid_request");
        let r = app
            .send_json(
                "POST",
                "/v1/admin/devices",
                Some(&tk.admin),
                &json!({"user_id": app.rep_id, "name": "rep phone"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let device_id = r.json["id"].as_str().unwrap().to_string();
        let r = app
            .send_json(
                "POST",
                "/v1/admin/tokens",
                Some(&tk.admin),
                &json!({"user_id": app.rep_id, "device_id": device_id}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let device_token = r.json["secret"].as_str().unwrap().to_string();
        let r = app.get("/v1/me", Some(&device_token)).await;
        assert_eq!(r.json["device_id"], device_id.as_str());
    }
}

#[tokio::test]
async fn content_reads_and_admin_actions_are_audited() {
    for t in testing::all("content_reads_and_admin_actions_are_audited").await {
        let app = setup(t.db.clone()).await;
        let r = app
            .send_json(
                "POST",
                "/v1/admin/teams",
                Some(&app.tokens.admin),
                &json!({"name": "新团队"}),
            )
            .await;
        assert_eq!(r.status, 201);
        let req = axum::http::Request::get("/v1/audit?limit=10")
            .header("authorization", format!("Bearer {}", app.tokens.compliance))
            .header("x-access-reason", "季度审查")
            .body(axum::body::Body::empty())
            .unwrap();
        let r = app.request(req).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let items = r.json["items"].as_array().unwrap();
        // Newest first: the read itself, then the team creation.
        assert_eq!(items[0]["action"], "audit.read");
        assert_eq!(items[0]["reason"], "季度审查");
        assert_eq!(items[1]["action"], "team.create");
        // The other organisation sees none of it.
        let r = app.get("/v1/audit", Some(&app.tokens.other_admin)).await;
        let items = r.json["items"].as_array().unwrap();
        assert!(
            items
                .iter()
                .all(|e| e["org_id"] == app.other_org_id.as_str()),
            "{}",
            r.text
        );
        // Paging with a cursor.
        let r = app
            .get("/v1/audit?limit=1", Some(&app.tokens.compliance))
            .await;
        let cursor = r.json["next_cursor"].as_str().unwrap().to_string();
        let r2 = app
            .get(
                &format!("/v1/audit?limit=1&cursor={cursor}"),
                Some(&app.tokens.compliance),
            )
            .await;
        assert_eq!(r2.status, 200);
        assert!(r2.json["items"][0]["id"].as_i64().unwrap() < cursor.parse::<i64>().unwrap());
    }
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let t = testing::sqlite().await;
    let app = setup(t.db.clone()).await;
    let r = app.get("/healthz", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["status"], "ok");
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["ready"], true);
    assert_eq!(r.json["checks"][0]["name"], "database");
    let _ = app.get("/v1/me", Some(&app.tokens.rep)).await;
    let r = app.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("assist_http_requests_total"), "{}", r.text);
    assert!(r.text.contains("route=\"/v1/me\""), "{}", r.text);
}

#[tokio::test]
async fn readyz_names_the_fetch_command_for_missing_models() {
    let t = testing::sqlite().await;
    let app = setup_with(t.db.clone(), |c| {
        c.models.required_models = vec!["asr".into(), "llm".into()]
    })
    .await;
    let r = app.get("/readyz", None).await;
    assert_error(&r, 503, "not_ready");
    assert_eq!(r.json["ready"], false);
    let msg = r.json["message"].as_str().unwrap();
    assert!(msg.contains("assist models fetch --only asr"), "{msg}");
    assert!(msg.contains("assist models fetch --only llm"), "{msg}");
    assert_eq!(
        r.json["checks"][0]["ok"], true,
        "database is fine: {}",
        r.text
    );
}

#[tokio::test]
async fn readyz_accepts_a_registered_model_directory() {
    let t = testing::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.gguf"), b"GGUF").unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), b"{}").unwrap();
    let path = dir.path().display().to_string();
    let app = setup_with(t.db.clone(), move |c| {
        c.models.required_models = vec!["llm".into()];
        c.models.model_paths = vec![format!("llm={path}")];
    })
    .await;
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
