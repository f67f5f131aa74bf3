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
/// 0600; a directory open to others is refused at start, and files an
/// earlier version left readable are tightened.
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

    // Looser than 0700: refused, saying what to run.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = DataDirLock::acquire(&data).unwrap_err().to_string();
    assert!(err.contains("chmod 700"), "{err}");

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
    use assist_server::cli::{AdminCommand, admin_with};
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
        admin_with(db, AdminCommand::RotateGuardKey).await.unwrap();
        let r = app.get("/v1/guard/public-key", Some(&app.tokens.rep)).await;
        assert_ne!(r.json["key_id"].as_str().unwrap(), key_id);
        admin_with(
            db,
            AdminCommand::RotateWebhookSecret {
                org: app.org_id.clone(),
                webhook: hook_id.clone(),
            },
        )
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
