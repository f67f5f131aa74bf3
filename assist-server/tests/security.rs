//! Hardening found by a probe (issue 21): each test reproduces one finding
//! through the HTTP API, in-process, on every backend.

mod common;

use assist_protocol::Role;
use assist_server::db::testing;
use common::{TestApp, assert_error, setup};
use serde_json::{Value, json};

async fn user_token(app: &TestApp, name: &str, role: Role, team: Option<&str>) -> (String, String) {
    let db = &app.state.db;
    let u = db.create_user(&app.org_id, name, role, team).await.unwrap();
    let token = db
        .create_token(&app.org_id, &u.id, None, None, None)
        .await
        .unwrap()
        .1;
    (u.id, token)
}

fn script(title: &str, body: &str) -> Value {
    json!({
        "title": title,
        "body": body,
        "scenario": "price_objection",
        "tags": ["价格"],
        "products": ["云客CRM"],
        "language": "zh"
    })
}

/// Finding 4: trainer A writes, trainer B edits, trainer A approves. A wrote
/// a version under review, so A is not the second pair of eyes.
#[tokio::test]
async fn nobody_who_wrote_a_version_under_review_approves_it() {
    for t in testing::all("nobody_who_wrote_a_version_under_review_approves_it").await {
        let app = setup(t.db.clone()).await;
        let a = app.tokens.trainer.clone();
        let (_, b) = user_token(&app, "trainer-b", Role::Trainer, None).await;
        let (_, c) = user_token(&app, "trainer-c", Role::Trainer, None).await;

        let r = app
            .send_json(
                "POST",
                "/v1/kb/scripts",
                Some(&a),
                &script("价格异议", "您好，我们的报价包含三年免费维保。"),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.json["id"].as_str().unwrap().to_string();
        let base = format!("/v1/kb/scripts/{id}");
        let mut edit = script("价格异议", "您好，我们的报价包含五年免费维保。");
        edit["expected_version"] = json!(1);
        let r = app.send_json("PUT", &base, Some(&b), &edit).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = app
            .send_json(
                "POST",
                &format!("{base}/submit"),
                Some(&b),
                &json!({"expected_version": 2}),
            )
            .await;
        assert_eq!(r.json["status"], "in_review", "{}", r.text);

        // A wrote version 1, which has never been approved: under review too.
        let r = app
            .send_json(
                "POST",
                &format!("{base}/approve"),
                Some(&a),
                &json!({"expected_version": 2}),
            )
            .await;
        assert_error(&r, 403, "forbidden");
        let r = app
            .send_json(
                "POST",
                &format!("{base}/approve"),
                Some(&b),
                &json!({"expected_version": 2}),
            )
            .await;
        assert_error(&r, 403, "forbidden");
        let r = app
            .send_json(
                "POST",
                &format!("{base}/approve"),
                Some(&c),
                &json!({"expected_version": 2}),
            )
            .await;
        assert_eq!(r.json["status"], "approved", "{}", r.text);

        // After approval, only the versions since are under review: A edits,
        // so A may not approve, but B (who wrote only approved text) may.
        let mut edit = script("价格异议", "您好，我们的报价包含五年免费维保和培训。");
        edit["expected_version"] = json!(2);
        let r = app.send_json("PUT", &base, Some(&a), &edit).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = app
            .send_json(
                "POST",
                &format!("{base}/submit"),
                Some(&a),
                &json!({"expected_version": 3}),
            )
            .await;
        assert_eq!(r.json["status"], "in_review", "{}", r.text);
        let r = app
            .send_json(
                "POST",
                &format!("{base}/approve"),
                Some(&a),
                &json!({"expected_version": 3}),
            )
            .await;
        assert_error(&r, 403, "forbidden");
        let r = app
            .send_json(
                "POST",
                &format!("{base}/approve"),
                Some(&b),
                &json!({"expected_version": 3}),
            )
            .await;
        assert_eq!(r.json["status"], "approved", "{}", r.text);
    }
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Finding 3, files: the data directory is 0700, the database and its WAL
/// 0600; a directory open to others and files an earlier version left
/// readable are tightened at start.
#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_is_private_to_the_service() {
    use assist_server::serve::DataDirLock;
    use std::os::unix::fs::PermissionsExt;

    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = root.path().join("data");
    let lock = DataDirLock::acquire(&data).unwrap();
    assert_eq!(mode(&data), 0o700);
    let db =
        assist_server::db::Db::open(&format!("sqlite://{}", data.join("assist.db").display()), 2)
            .await
            .unwrap();
    db.create_org("Acme").await.unwrap();
    for f in ["assist.db", "assist.db-wal", "assist.lock"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    db.close().await;
    drop(lock);

    // Looser than 0700 (a directory made with umask 022): tightened at start.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(DataDirLock::acquire(&data).unwrap());
    assert_eq!(mode(&data), 0o700);

    // Files an earlier version wrote 0644 are tightened at start.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let audio = data.join("audio").join("org1");
    std::fs::create_dir_all(&audio).unwrap();
    std::fs::set_permissions(data.join("audio"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(audio.join("call.wav"), b"RIFF").unwrap();
    std::fs::set_permissions(
        audio.join("call.wav"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(
        data.join("assist.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let _lock = DataDirLock::acquire(&data).unwrap();
    assert_eq!(mode(&audio.join("call.wav")), 0o600);
    assert_eq!(mode(&data.join("assist.db")), 0o600);
    assert_eq!(mode(&data.join("audio")), 0o700);
}

/// Finding 3, secrets: the webhook signing secret and the guard's private
/// key are sealed in the database with a key kept outside it.
#[tokio::test]
async fn secrets_are_sealed_at_rest_and_rotate() {
    use sqlx::Row;

    for t in testing::all("secrets_are_sealed_at_rest_and_rotate").await {
        let app = setup(t.db.clone()).await;
        let db = &app.state.db;
        let r = app
            .send_json(
                "POST",
                "/v1/webhooks",
                Some(&app.tokens.compliance),
                &json!({"url": "https://203.0.113.7/hook"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let hook_id = r.json["id"].as_str().unwrap().to_string();
        let secret = r.json["secret"].as_str().unwrap().to_string();
        let r = app.get("/v1/guard/public-key", Some(&app.tokens.rep)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let key_id = r.json["key_id"].as_str().unwrap().to_string();

        let stored_hook: String = sqlx::query("SELECT secret FROM webhooks WHERE id = $1")
            .bind(&hook_id)
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get("secret");
        assert!(stored_hook.starts_with("sealed:v1:"), "{stored_hook}");
        assert!(!stored_hook.contains(&secret[6..]));
        let stored_key: String = sqlx::query("SELECT secret FROM server_keys")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get("secret");
        assert!(stored_key.starts_with("sealed:v1:"), "{stored_key}");
        // The server still signs with what it sealed.
        assert_eq!(
            db.get_webhook(&app.org_id, &hook_id).await.unwrap().secret,
            secret
        );

        // A row an earlier version wrote in clear text is sealed at start.
        sqlx::query("UPDATE webhooks SET secret = $1 WHERE id = $2")
            .bind("whsec_clear")
            .bind(&hook_id)
            .execute(db.pool())
            .await
            .unwrap();
        assert_eq!(db.seal_clear_secrets().await.unwrap(), 1);
        let stored: String = sqlx::query("SELECT secret FROM webhooks WHERE id = $1")
            .bind(&hook_id)
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get("secret");
        assert!(stored.starts_with("sealed:v1:"), "{stored}");
        assert_eq!(
            db.get_webhook(&app.org_id, &hook_id).await.unwrap().secret,
            "whsec_clear"
        );
        // Another key cannot open them: the database alone is not enough.
        let other = db
            .clone()
            .with_secret_key(assist_server::secrets::SecretKey::generate());
        assert!(other.get_webhook(&app.org_id, &hook_id).await.is_err());
        assert!(other.seal_clear_secrets().await.is_err());

        // Rotation.
        // What `assist admin rotate-guard-key` runs.
        assist_server::guard::ServerKey::rotate(db, assist_server::guard::GUARD_KEY_NAME)
            .await
            .unwrap();
        let r = app.get("/v1/guard/public-key", Some(&app.tokens.rep)).await;
        assert_ne!(r.json["key_id"].as_str().unwrap(), key_id);
        // What `assist admin rotate-webhook-secret` runs.
        db.rotate_webhook_secret(&app.org_id, &hook_id)
            .await
            .unwrap();
        let rotated = db.get_webhook(&app.org_id, &hook_id).await.unwrap().secret;
        assert!(rotated.starts_with("whsec_") && rotated != "whsec_clear");
    }
}

/// Finding 3, the sealing key: created 0600 beside the config when absent,
/// refused when other users can read it, or taken from the environment.
#[cfg(unix)]
#[test]
fn the_sealing_key_lives_outside_the_database() {
    use assist_server::config::StorageConfig;
    use assist_server::secrets::SecretKey;
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let storage = StorageConfig {
        data_dir: dir.path().join("data"),
        secret_key_file: Some(dir.path().join("assist.key")),
        ..StorageConfig::default()
    };
    let key = SecretKey::from_config(&storage).unwrap();
    assert_eq!(mode(&dir.path().join("assist.key")), 0o600);
    let sealed = key.seal("x", b"secret");
    let again = SecretKey::from_config(&storage).unwrap();
    assert_eq!(again.open("x", &sealed).unwrap(), b"secret");
    std::fs::set_permissions(
        dir.path().join("assist.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = SecretKey::from_config(&storage).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    let env = StorageConfig {
        secret_key: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
        ..storage
    };
    assert!(SecretKey::from_config(&env).is_ok());
}

/// Finding 6: webhooks go to public HTTPS receivers unless the operator
/// allows more; only admins and compliance create them.
#[tokio::test]
async fn webhooks_point_outside_over_https_only() {
    for t in testing::all("webhooks_point_outside_over_https_only").await {
        let app = setup(t.db.clone()).await;
        for url in [
            "http://203.0.113.7/hook",
            "https://127.0.0.1:9/hook",
            "https://[::1]/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.5/hook",
            "https://192.168.1.20/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://localhost:8443/hook",
        ] {
            let r = app
                .send_json(
                    "POST",
                    "/v1/webhooks",
                    Some(&app.tokens.compliance),
                    &json!({ "url": url }),
                )
                .await;
            assert_error(&r, 422, "invalid_request");
        }
        for token in [&app.tokens.manager, &app.tokens.rep, &app.tokens.trainer] {
            let r = app
                .send_json(
                    "POST",
                    "/v1/webhooks",
                    Some(token),
                    &json!({ "url": "https://203.0.113.7/hook" }),
                )
                .await;
            assert_error(&r, 403, "forbidden");
        }
        for token in [&app.tokens.compliance, &app.tokens.admin] {
            let r = app
                .send_json(
                    "POST",
                    "/v1/webhooks",
                    Some(token),
                    &json!({ "url": "https://203.0.113.7/hook" }),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
        }
    }
    // An operator may allow plain HTTP and internal receivers.
    let t = testing::sqlite().await;
    let app = common::setup_with(t.db.clone(), |c| {
        c.alerts.webhook_allow_http = true;
        c.alerts.webhook_allow_private_targets = true;
    })
    .await;
    let r = app
        .send_json(
            "POST",
            "/v1/webhooks",
            Some(&app.tokens.compliance),
            &json!({ "url": "http://127.0.0.1:9/hook" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// Finding 6, at delivery: a webhook registered while internal targets were
/// allowed is refused once they are not, and the delivery log says why.
#[tokio::test]
async fn deliveries_to_internal_addresses_are_refused() {
    use assist_server::webhook_target::{TargetPolicy, check_url};
    let strict = TargetPolicy::default();
    assert!(check_url("https://127.0.0.1/x", strict).is_err());
    assert!(check_url("http://203.0.113.7/x", strict).is_err());
    assert!(check_url("https://203.0.113.7/x", strict).is_ok());
    // The delivery client's resolver drops internal answers.
    let client = assist_server::webhook_target::guard_client(reqwest::Client::builder(), strict)
        .build()
        .unwrap();
    let err = client
        .post("https://localhost:9/hook")
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("no public address"), "{err:?}");
}

fn upload_body(key: &str, metadata: Value) -> Value {
    json!({
        "upload_key": key,
        "size": 1000,
        "sha256": "a".repeat(64),
        "metadata": metadata,
    })
}

/// Finding 7: checks at the door, not after the last byte or in a job.
#[tokio::test]
async fn bad_uploads_are_refused_at_their_first_request() {
    for t in testing::all("bad_uploads_are_refused_at_their_first_request").await {
        let app = setup(t.db.clone()).await;
        let (_, _) = user_token(&app, "rep-b", Role::Rep, Some(app.team_id.as_str())).await;
        // An unknown language would fail every transcription attempt.
        let r = app
            .send_json(
                "POST",
                "/v1/uploads",
                Some(&app.tokens.rep),
                &upload_body("k1", json!({"language": "xx"})),
            )
            .await;
        assert_error(&r, 422, "invalid_request");
        // A rep names another rep: refused now, not after the last byte.
        let r = app
            .send_json(
                "POST",
                "/v1/uploads",
                Some(&app.tokens.rep),
                &upload_body("k2", json!({"rep": "rep-b"})),
            )
            .await;
        assert_error(&r, 403, "forbidden");
        let r = app
            .send_json(
                "POST",
                "/v1/uploads",
                Some(&app.tokens.rep),
                &upload_body("k3", json!({"language": "zh"})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let upload = r.json["upload_id"].as_str().unwrap().to_string();
        // Only the uploader reads an upload's state (README: the uploader).
        let r = app
            .get(&format!("/v1/uploads/{upload}"), Some(&app.tokens.manager))
            .await;
        assert_error(&r, 404, "not_found");
        let r = app
            .get(&format!("/v1/uploads/{upload}"), Some(&app.tokens.admin))
            .await;
        assert_error(&r, 404, "not_found");
        let r = app
            .get(&format!("/v1/uploads/{upload}"), Some(&app.tokens.rep))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

/// Finding 7: one rule for `limit` on every list, and query-string errors
/// with their own code.
#[tokio::test]
async fn every_list_refuses_a_bad_limit_the_same_way() {
    for t in testing::all("every_list_refuses_a_bad_limit_the_same_way").await {
        let app = setup(t.db.clone()).await;
        let r = app
            .send_json(
                "POST",
                "/v1/webhooks",
                Some(&app.tokens.admin),
                &json!({"url": "https://203.0.113.7/hook"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let hook = r.json["id"].as_str().unwrap().to_string();
        let lists = [
            "/v1/calls".to_string(),
            "/v1/alerts".to_string(),
            "/v1/tasks".to_string(),
            "/v1/conversations".to_string(),
            "/v1/kb/scripts".to_string(),
            "/v1/audit".to_string(),
            "/v1/admin/jobs".to_string(),
            format!("/v1/webhooks/{hook}/deliveries"),
        ];
        for list in &lists {
            for bad in ["-1", "0", "100000"] {
                let r = app
                    .get(&format!("{list}?limit={bad}"), Some(&app.tokens.admin))
                    .await;
                assert_error(&r, 422, "invalid_request");
            }
            let r = app
                .get(&format!("{list}?limit=abc"), Some(&app.tokens.admin))
                .await;
            assert_error(&r, 400, "invalid_query");
            let r = app
                .get(&format!("{list}?limit=5"), Some(&app.tokens.admin))
                .await;
            assert_eq!(r.status, 200, "{list}: {}", r.text);
        }
        // A URL too long for the server still gets a JSON body.
        let r = app
            .get(
                &format!("/v1/calls?x={}", "a".repeat(20_000)),
                Some(&app.tokens.admin),
            )
            .await;
        assert_error(&r, 414, "uri_too_long");
        // The README's role table: device and token lists are the admin's.
        for list in ["/v1/admin/devices", "/v1/admin/tokens"] {
            let r = app.get(list, Some(&app.tokens.compliance)).await;
            assert_error(&r, 403, "forbidden");
            let r = app.get(list, Some(&app.tokens.admin)).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    }
}

/// Finding 7: a request past the timeout is 408 `request_timeout` (the
/// service is ready; the request was slow).
#[tokio::test]
async fn a_request_past_its_deadline_has_its_own_code() {
    use axum::body::{Body, Bytes};
    use axum::http::Request;
    let t = testing::sqlite().await;
    let app = common::setup_with(t.db.clone(), |c| c.server.request_timeout_secs = 1).await;
    let never = futures_util::stream::pending::<Result<Bytes, std::io::Error>>();
    let req = Request::post("/v1/conversations/wecom:slow/messages")
        .header("authorization", format!("Bearer {}", app.tokens.rep))
        .header("content-type", "application/json")
        .body(Body::from_stream(never))
        .unwrap();
    let r = app.request(req).await;
    assert_error(&r, 408, "request_timeout");
}

/// Finding 7: a node restarted after a crash takes its own jobs back at
/// once instead of waiting out their leases; other nodes' jobs stay theirs.
#[tokio::test]
async fn a_restarted_node_takes_its_own_jobs_back_at_once() {
    use assist_server::jobs::{JobQueue, NewJob, QueueConfig};
    use assist_server::serve::DataDirLock;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = DataDirLock::acquire(&data).unwrap().node_id().to_string();
    assert_eq!(DataDirLock::acquire(&data).unwrap().node_id(), node);

    let t = testing::sqlite().await;
    let config = QueueConfig {
        lease: Duration::from_secs(3600),
        ..QueueConfig::default()
    };
    let queue = JobQueue::new(t.db.clone(), config).on_node(node.clone());
    for _ in 0..2 {
        queue.enqueue(NewJob::new("q", json!({}))).await.unwrap();
    }
    let mine = queue
        .lease("q", &format!("{node}:111:0"))
        .await
        .unwrap()
        .unwrap();
    let theirs = queue.lease("q", "node-other:222:0").await.unwrap().unwrap();
    assert!(queue.lease("q", "x").await.unwrap().is_none());
    // Restart: the same node id, a new process.
    assert_eq!(queue.reclaim_node().await.unwrap(), 1);
    let again = queue
        .lease("q", &format!("{node}:333:0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, mine.id);
    assert_ne!(again.id, theirs.id);
    assert!(queue.lease("q", "x").await.unwrap().is_none());
}

/// Finding 5: every read of conversation content is audited — who, what,
/// when and the reason given — whatever the reader's role.
#[tokio::test]
async fn every_read_of_conversation_content_is_audited() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    for t in testing::all("every_read_of_conversation_content_is_audited").await {
        let app = setup(t.db.clone()).await;
        let r = app
            .send_json(
                "POST",
                "/v1/conversations/wecom:audit-1/messages",
                Some(&app.tokens.rep),
                &json!({"channel": "wecom", "messages": [{
                    "client_message_id": "m1",
                    "sender": "customer",
                    "text": "价格能再便宜点吗？",
                    "sent_at": "2026-11-24T09:30:00+08:00"
                }]}),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.text);
        let read = |path: &str| {
            Request::get(path)
                .header("authorization", format!("Bearer {}", app.tokens.manager))
                .header("x-access-reason", "辅导复盘")
                .body(Body::empty())
                .unwrap()
        };
        for path in ["/v1/conversations/wecom:audit-1", "/v1/alerts", "/v1/tasks"] {
            let r = app.request(read(path)).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
        }
        // The stream: answered with headers, its body never ends.
        let resp = app
            .router
            .clone()
            .oneshot(read("/v1/alerts/stream"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        drop(resp);

        let r = app
            .get(
                &format!("/v1/audit?limit=50&actor={}", app.manager_id),
                Some(&app.tokens.compliance),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let items = r.json["items"].as_array().unwrap();
        for (action, resource) in [
            ("conversation.read", Some("wecom:audit-1")),
            ("alert.list", None),
            ("task.list", None),
            ("alert.stream", None),
        ] {
            let e = items
                .iter()
                .find(|e| e["action"] == action)
                .unwrap_or_else(|| panic!("no {action} in {}", r.text));
            assert_eq!(e["actor_user_id"], app.manager_id.as_str());
            assert_eq!(e["reason"], "辅导复盘");
            assert!(e["at"].as_str().is_some());
            if resource.is_some() {
                assert!(e["resource_id"].is_string(), "{e}");
            }
        }
    }
}
