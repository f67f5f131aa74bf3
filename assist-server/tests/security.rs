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
