//! Device-side rules through the API: only approved `block` entries of the
//! caller's organisation are published, the document verifies with the
//! server's public key (and fails once changed), ETag / 304 follow the rule
//! set, and every authenticated caller (device tokens included) may read it —
//! on both backends.

mod common;

use assist_protocol::Role;
use assist_protocol::guard::{GuardPublicKey, GuardRule, GuardRules, VerifyError, verify};
use assist_server::db::testing;
use assist_server::guard::{GUARD_KEY_NAME, ServerKey};
use axum::body::Body;
use axum::http::Request;
use common::{Resp, TestApp, assert_error, setup_with};
use serde_json::{Value, json};
use sqlx::Row;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Draft,
    InReview,
    Approved,
}

/// Tests approve their own entries (the four-eyes rule has its own tests).
async fn app_for(db: assist_server::db::Db) -> TestApp {
    setup_with(db, |c| c.kb.kb_allow_self_approval = true).await
}

fn entry(pattern: &str, mode: &str, action: &str) -> Value {
    json!({
        "pattern": pattern,
        "category": "side_deal",
        "severity": "critical",
        "match_mode": mode,
        "action": action,
        "language": "zh",
        "note": "for reviewers only",
    })
}

/// Create a lexicon entry and move it to `stage`; returns its id.
async fn lexicon(app: &TestApp, token: &str, body: Value, stage: Stage) -> String {
    let r = app
        .send_json("POST", "/v1/kb/lexicon", Some(token), &body)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    if stage >= Stage::InReview {
        step(app, token, &id, "submit", 1).await;
    }
    if stage >= Stage::Approved {
        step(app, token, &id, "approve", 1).await;
    }
    id
}

async fn step(app: &TestApp, token: &str, id: &str, action: &str, version: i64) {
    let r = app
        .send_json(
            "POST",
            &format!("/v1/kb/lexicon/{id}/{action}"),
            Some(token),
            &json!({"expected_version": version}),
        )
        .await;
    assert_eq!(r.status, 200, "{action} {id}: {}", r.text);
}

/// A trainer token in the other organisation.
async fn other_trainer(app: &TestApp) -> String {
    let db = &app.state.db;
    let u = db
        .create_user(&app.other_org_id, "other-trainer", Role::Trainer, None)
        .await
        .unwrap();
    db.create_token(&app.other_org_id, &u.id, None, None, None)
        .await
        .unwrap()
        .1
}

/// A token bound to a work phone of the rep.
async fn device_token(app: &TestApp) -> String {
    let db = &app.state.db;
    let device = db
        .create_device(&app.org_id, &app.rep_id, "rep phone")
        .await
        .unwrap();
    db.create_token(&app.org_id, &app.rep_id, Some(&device.id), None, None)
        .await
        .unwrap()
        .1
}

async fn get_rules(app: &TestApp, token: &str, if_none_match: Option<&str>) -> Resp {
    let mut b = Request::get("/v1/guard/rules").header("authorization", format!("Bearer {token}"));
    if let Some(tag) = if_none_match {
        b = b.header("if-none-match", tag);
    }
    app.request(b.body(Body::empty()).unwrap()).await
}

fn document(r: &Resp) -> GuardRules {
    assert_eq!(r.status, 200, "{}", r.text);
    serde_json::from_str(&r.text).unwrap()
}

async fn pinned_key(app: &TestApp, token: &str) -> [u8; 32] {
    let r = app.get("/v1/guard/public-key", Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["algorithm"], "ed25519");
    let key: GuardPublicKey = serde_json::from_str(&r.text).unwrap();
    key.key_bytes().unwrap()
}

fn etag(r: &Resp) -> String {
    r.headers["etag"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn only_approved_block_entries_of_the_org_are_published() {
    for t in testing::all("only_approved_block_entries_of_the_org_are_published").await {
        let app = app_for(t.db.clone()).await;
        let tr = app.tokens.trainer.clone();
        let phrase = lexicon(
            &app,
            &tr,
            entry("私下交易", "phrase", "block"),
            Stage::Approved,
        )
        .await;
        let regex = lexicon(
            &app,
            &tr,
            entry("转到?(个人|私人)账户", "regex", "block"),
            Stage::Approved,
        )
        .await;
        lexicon(&app, &tr, entry("回扣", "phrase", "alert"), Stage::Approved).await;
        lexicon(&app, &tr, entry("飞单", "phrase", "block"), Stage::Draft).await;
        lexicon(&app, &tr, entry("返点", "phrase", "block"), Stage::InReview).await;
        // Semantic exemplars need the embedding model: they stay server-side.
        lexicon(
            &app,
            &tr,
            entry("我们可以私下谈个更低的价格", "semantic", "block"),
            Stage::Approved,
        )
        .await;
        let retired = lexicon(
            &app,
            &tr,
            entry("私下转账", "phrase", "block"),
            Stage::Approved,
        )
        .await;
        step(&app, &tr, &retired, "retire", 1).await;
        // An approved entry being edited: the approved version stays live.
        let mut edit = entry("私下交易（改）", "phrase", "block");
        edit["expected_version"] = json!(1);
        let r = app
            .send_json("PUT", &format!("/v1/kb/lexicon/{phrase}"), Some(&tr), &edit)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let other = other_trainer(&app).await;
        let theirs = lexicon(
            &app,
            &other,
            entry("加我微信", "phrase", "block"),
            Stage::Approved,
        )
        .await;

        let r = get_rules(&app, &app.tokens.rep, None).await;
        let doc = document(&r);
        assert_eq!(doc.org_id, app.org_id);
        let mut want = vec![
            GuardRule {
                id: phrase.clone(),
                category: "side_deal".into(),
                severity: "critical".into(),
                match_mode: "phrase".into(),
                pattern: "私下交易".into(),
                language: "zh".into(),
            },
            GuardRule {
                id: regex.clone(),
                category: "side_deal".into(),
                severity: "critical".into(),
                match_mode: "regex".into(),
                pattern: "转到?(个人|私人)账户".into(),
                language: "zh".into(),
            },
        ];
        want.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(doc.rules, want);
        // Compact: reviewer notes and the action are not sent.
        assert!(r.json["rules"][0].get("note").is_none(), "{}", r.text);
        assert!(r.json["rules"][0].get("action").is_none(), "{}", r.text);

        // The other organisation gets its own rules only.
        let doc = document(&get_rules(&app, &app.tokens.other_admin, None).await);
        assert_eq!(doc.org_id, app.other_org_id);
        let ids: Vec<&str> = doc.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, [theirs.as_str()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signature_verifies_with_the_public_key_and_fails_after_tampering() {
    for t in testing::all("signature_verifies_with_the_public_key_and_fails_after_tampering").await
    {
        let db = t.db.clone();
        // Several nodes starting at once still end up with one key.
        let mut racers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let db = db.clone();
            racers.spawn(async move { ServerKey::load_or_create(&db, GUARD_KEY_NAME).await });
        }
        let keys = racers.join_all().await;
        let first = keys[0].as_ref().unwrap().key_id().to_string();
        for k in &keys {
            assert_eq!(k.as_ref().unwrap().key_id(), first);
        }
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM server_keys")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        assert_eq!(n, 1);
        // The secret stays out of Debug output.
        let secret: String = sqlx::query("SELECT secret FROM server_keys")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get("secret")
            .unwrap();
        let debug = format!("{:?}", keys[0].as_ref().unwrap());
        assert!(!debug.contains(&secret), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");

        let app = app_for(db.clone()).await;
        let tr = app.tokens.trainer.clone();
        lexicon(
            &app,
            &tr,
            entry("私下交易", "phrase", "block"),
            Stage::Approved,
        )
        .await;
        lexicon(&app, &tr, entry("走账", "phrase", "block"), Stage::Approved).await;
        let device = device_token(&app).await;
        let public = pinned_key(&app, &device).await;
        let r = app.get("/v1/guard/public-key", Some(&device)).await;
        assert_eq!(r.json["key_id"], first.as_str());

        let doc = document(&get_rules(&app, &device, None).await);
        assert_eq!(doc.key_id, first);
        assert_eq!(doc.rules.len(), 2);
        assert_eq!(verify(&doc, &public), Ok(()));

        let mut d = doc.clone();
        d.rules[0].pattern = "私下交易吗".into();
        assert_eq!(verify(&d, &public), Err(VerifyError::BadSignature));
        let mut d = doc.clone();
        d.rules.pop();
        assert_eq!(verify(&d, &public), Err(VerifyError::BadSignature));
        let mut d = doc.clone();
        d.version += 1;
        assert_eq!(verify(&d, &public), Err(VerifyError::BadSignature));
        let mut d = doc.clone();
        d.org_id = app.other_org_id.clone();
        assert_eq!(verify(&d, &public), Err(VerifyError::BadSignature));
        // Tampering with the JSON text itself is caught the same way.
        let r = get_rules(&app, &device, None).await;
        let forged: GuardRules = serde_json::from_str(&r.text.replace("走账", "走帐")).unwrap();
        assert_eq!(verify(&forged, &public), Err(VerifyError::BadSignature));
        // A key the document was not signed with.
        let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32])
            .verifying_key()
            .to_bytes();
        assert!(matches!(
            verify(&doc, &stranger),
            Err(VerifyError::KeyMismatch { .. })
        ));

        // A second node on the same database signs with the same key.
        let again = ServerKey::load_or_create(&db, GUARD_KEY_NAME)
            .await
            .unwrap();
        assert_eq!(again.public_key(), keys[0].as_ref().unwrap().public_key());
    }
}

#[tokio::test]
async fn etag_gives_304_until_the_rule_set_changes() {
    for t in testing::all("etag_gives_304_until_the_rule_set_changes").await {
        let app = app_for(t.db.clone()).await;
        let tr = app.tokens.trainer.clone();
        let rep = app.tokens.rep.clone();
        lexicon(
            &app,
            &tr,
            entry("私下交易", "phrase", "block"),
            Stage::Approved,
        )
        .await;

        let r = get_rules(&app, &rep, None).await;
        let tag = etag(&r);
        assert!(tag.starts_with('"') && tag.ends_with('"'), "strong: {tag}");
        assert_eq!(r.headers["cache-control"], "no-cache");
        let v1 = document(&r).version;
        // The same rule set gives the identical body and tag.
        let again = get_rules(&app, &rep, None).await;
        assert_eq!(etag(&again), tag);
        assert_eq!(again.text, r.text);

        let r = get_rules(&app, &rep, Some(&tag)).await;
        assert_eq!(r.status, 304);
        assert!(r.text.is_empty(), "{}", r.text);
        assert_eq!(etag(&r), tag);
        assert_eq!(r.headers["cache-control"], "no-cache");
        let r = get_rules(&app, &rep, Some(&format!("\"0-old\", W/{tag}"))).await;
        assert_eq!(r.status, 304);

        // Another organisation never matches our tag.
        let r = get_rules(&app, &app.tokens.other_admin, Some(&tag)).await;
        assert_eq!(r.status, 200, "{}", r.text);

        // Approving an alert-only entry, or a draft of a block entry, changes nothing.
        lexicon(&app, &tr, entry("回扣", "phrase", "alert"), Stage::Approved).await;
        lexicon(&app, &tr, entry("飞单", "phrase", "block"), Stage::InReview).await;
        assert_eq!(get_rules(&app, &rep, Some(&tag)).await.status, 304);

        // A newly approved block entry: a new tag and the next version.
        let added = lexicon(&app, &tr, entry("走账", "phrase", "block"), Stage::Approved).await;
        let r = get_rules(&app, &rep, Some(&tag)).await;
        let doc = document(&r);
        let tag2 = etag(&r);
        assert_ne!(tag2, tag);
        assert_eq!(doc.version, v1 + 1);
        assert!(doc.rules.iter().any(|rule| rule.id == added));
        assert_eq!(get_rules(&app, &rep, Some(&tag2)).await.status, 304);

        // Retiring it returns to the earlier rules, but never to an earlier
        // version: a device can refuse anything older than what it holds.
        step(&app, &tr, &added, "retire", 1).await;
        let r = get_rules(&app, &rep, Some(&tag2)).await;
        let doc = document(&r);
        assert_eq!(doc.version, v1 + 2);
        assert_ne!(etag(&r), tag);
        assert!(doc.rules.iter().all(|rule| rule.id != added));
    }
}

#[tokio::test]
async fn every_authenticated_caller_may_read_the_rules() {
    let t = testing::sqlite().await;
    let app = app_for(t.db.clone()).await;
    let tk = &app.tokens;
    let device = device_token(&app).await;
    for path in ["/v1/guard/rules", "/v1/guard/public-key"] {
        let r = app.get(path, None).await;
        assert_error(&r, 401, "unauthorized");
        let r = app.get(path, Some("not-a-token")).await;
        assert_error(&r, 401, "unauthorized");
        for token in [
            &tk.rep,
            &tk.manager,
            &tk.trainer,
            &tk.compliance,
            &tk.admin,
            &tk.other_admin,
            &device,
        ] {
            let r = app.get(path, Some(token)).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
        }
    }
    // A revoked token is refused.
    let (token_row, secret) = app
        .state
        .db
        .create_token(&app.org_id, &app.rep_id, None, None, None)
        .await
        .unwrap();
    app.state
        .db
        .revoke_token(&app.org_id, &token_row.id)
        .await
        .unwrap();
    assert_error(&get_rules(&app, &secret, None).await, 401, "unauthorized");
    let r = app
        .send_json("POST", "/v1/guard/rules", Some(&tk.rep), &json!({}))
        .await;
    assert_error(&r, 405, "method_not_allowed");
}
