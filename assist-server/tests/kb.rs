//! The knowledge base through the API: the review workflow, versions and
//! diffs, optimistic concurrency, import/export, roles — on both backends.

mod common;

use assist_protocol::Role;
use assist_server::db::testing;
use common::{TestApp, assert_error, setup};
use serde_json::{Value, json};

async fn second_trainer(app: &TestApp) -> String {
    let db = &app.state.db;
    let u = db
        .create_user(&app.org_id, "trainer-2", Role::Trainer, None)
        .await
        .unwrap();
    db.create_token(&app.org_id, &u.id, None, None, None)
        .await
        .unwrap()
        .1
}

fn script(title: &str) -> Value {
    json!({
        "title": title,
        "body": "您好，我理解您对价格的顾虑。我们的报价包含三年免费维保和上门培训。",
        "scenario": "price_objection",
        "tags": ["价格", "维保"],
        "products": ["云客CRM"],
        "language": "zh"
    })
}

#[tokio::test]
async fn review_workflow_versions_and_conflicts() {
    for t in testing::all("review_workflow_versions_and_conflicts").await {
        let app = setup(t.db.clone()).await;
        let author = app.tokens.trainer.clone();
        let reviewer = second_trainer(&app).await;

        let r = app
            .send_json(
                "POST",
                "/v1/kb/scripts",
                Some(&author),
                &script("价格异议：强调价值"),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.json["status"], "draft");
        assert_eq!(r.json["version"], 1);
        let id = r.json["id"].as_str().unwrap().to_string();
        let base = format!("/v1/kb/scripts/{id}");

        // Approving a draft is not a valid transition.
        let r = app
            .send_json(
                "POST",
                &format!("{base}/approve"),
                Some(&reviewer),
                &json!({"expected_version": 1}),
            )
            .await;
        assert_error(&r, 409, "conflict");
        let r = app
            .send_json(
                "POST",
                &format!("{base}/submit"),
                Some(&author),
                &json!({"expected_version": 1}),
            )
            .await;
        assert_eq!(r.json["status"], "in_review", "{}", r.text);
        // The author cannot approve their own draft.
        let r = app
            .send_json(
                "POST",
                &format!("{base}/approve"),
                Some(&author),
                &json!({"expected_version": 1}),
            )
            .await;
        assert_error(&r, 403, "forbidden");
        let r = app
            .send_json(
                "POST",
                &format!("{base}/approve"),
                Some(&reviewer),
                &json!({"expected_version": 1, "note": "ok"}),
            )
            .await;
        assert_eq!(r.json["status"], "approved", "{}", r.text);
        assert_eq!(r.json["approved_version"], 1);

        // Two editors start from version 1; the second save is a conflict.
        let mut edit = script("价格异议：强调价值（新版）");
        edit["body"] = json!("您好，我理解您对价格的顾虑。我们的报价包含五年免费维保。");
        edit["expected_version"] = json!(1);
        let r = app.send_json("PUT", &base, Some(&author), &edit).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["version"], 2);
        assert_eq!(r.json["status"], "draft");
        // The approved version stays live while the edit is reviewed.
        assert_eq!(r.json["approved_version"], 1);
        assert_eq!(r.json["live_content"]["title"], "价格异议：强调价值");
        let r = app.send_json("PUT", &base, Some(&reviewer), &edit).await;
        assert_error(&r, 409, "conflict");
        assert!(r.text.contains("latest is 2"), "{}", r.text);

        // History: both versions with a diff, and the workflow events.
        let r = app
            .get(&format!("{base}/history"), Some(&app.tokens.manager))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let versions = r.json["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 2);
        let diff = versions[1]["diff"].as_str().unwrap();
        assert!(
            diff.contains("+您好，我理解您对价格的顾虑。我们的报价包含五年免费维保。"),
            "{diff}"
        );
        let v1_events: Vec<&str> = versions[0]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["to"].as_str().unwrap())
            .collect();
        assert_eq!(v1_events, vec!["draft", "in_review", "approved"]);

        // Retire, and retiring twice is a clear conflict.
        let r = app
            .send_json(
                "POST",
                &format!("{base}/retire"),
                Some(&author),
                &json!({"expected_version": 2}),
            )
            .await;
        assert_eq!(r.json["status"], "retired", "{}", r.text);
        assert!(r.json["approved_version"].is_null());
        let r = app
            .send_json(
                "POST",
                &format!("{base}/retire"),
                Some(&author),
                &json!({"expected_version": 2}),
            )
            .await;
        assert_error(&r, 409, "conflict");
        assert!(r.text.contains("already retired"), "{}", r.text);
    }
}

#[tokio::test]
async fn bad_content_is_rejected_field_by_field() {
    for t in testing::all("bad_content_is_rejected_field_by_field").await {
        let app = setup(t.db.clone()).await;
        let tr = Some(app.tokens.trainer.as_str());
        let mut s = script("x");
        s["scenario"] = json!("pricing");
        let r = app.send_json("POST", "/v1/kb/scripts", tr, &s).await;
        assert_error(&r, 400, "invalid_json");
        assert!(r.text.contains("pricing"), "{}", r.text);
        let mut s = script("  ");
        s["body"] = json!("");
        let r = app.send_json("POST", "/v1/kb/scripts", tr, &s).await;
        assert_error(&r, 422, "invalid_request");
        assert!(
            r.text.contains("title") && r.text.contains("body"),
            "{}",
            r.text
        );
        let r = app
            .send_json(
                "POST",
                "/v1/kb/lexicon",
                tr,
                &json!({"pattern": "加我(微信|vx", "category": "private_contact", "severity": "high",
                        "match_mode": "regex", "action": "alert", "language": "zh"}),
            )
            .await;
        assert_error(&r, 422, "invalid_request");
        assert!(r.text.contains("character 3"), "{}", r.text);
        // Duplicate external ids.
        let mut s = script("a");
        s["id"] = json!("price-1");
        assert_eq!(
            app.send_json("POST", "/v1/kb/scripts", tr, &s).await.status,
            201
        );
        let r = app.send_json("POST", "/v1/kb/scripts", tr, &s).await;
        assert_error(&r, 409, "conflict");
        // A 10 MB body.
        let mut s = script("big");
        s["body"] = json!("长".repeat(3_500_000));
        let r = app.send_json("POST", "/v1/kb/scripts", tr, &s).await;
        assert_error(&r, 413, "payload_too_large");
        // Nothing half-written: only the one good script exists.
        let r = app.get("/v1/kb/scripts", tr).await;
        assert_eq!(r.json.as_array().unwrap().len(), 1, "{}", r.text);
    }
}

#[tokio::test]
async fn roles_on_the_knowledge_base() {
    let t = testing::sqlite().await;
    let app = setup(t.db.clone()).await;
    let tk = &app.tokens;
    for (token, status) in [
        (&tk.rep, 403),
        (&tk.manager, 403),
        (&tk.compliance, 403),
        (&tk.admin, 403),
        (&tk.trainer, 201),
    ] {
        let r = app
            .send_json("POST", "/v1/kb/scripts", Some(token), &script("t"))
            .await;
        assert_eq!(r.status.as_u16(), status, "{}", r.text);
    }
    for (path, token, status) in [
        ("/v1/kb/scripts", &tk.manager, 200),
        ("/v1/kb/scripts", &tk.rep, 403),
        ("/v1/kb/lexicon", &tk.manager, 403),
        ("/v1/kb/lexicon", &tk.compliance, 200),
        ("/v1/kb/lexicon", &tk.other_admin, 200),
        ("/v1/kb/nonsense", &tk.trainer, 404),
    ] {
        let r = app.get(path, Some(token)).await;
        assert_eq!(r.status.as_u16(), status, "{path}: {}", r.text);
    }
    // Another organisation sees none of our content.
    let r = app.get("/v1/kb/lexicon", Some(&tk.other_admin)).await;
    assert_eq!(r.json.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn import_is_all_or_nothing_and_exports_round_trip() {
    for t in testing::all("import_is_all_or_nothing_and_exports_round_trip").await {
        let app = setup(t.db.clone()).await;
        let tr = Some(app.tokens.trainer.as_str());
        let csv = "id,title,body,scenario,tags,language\n\
                   p1,价格异议,我们的价格包含三年维保,价格异议,价格,zh\n\
                   p2,,missing title,closing,,en\n\
                   p3,Trust,We are listed on the stock exchange,trust,,en\n";
        let r = app
            .send_raw(
                "POST",
                "/v1/kb/scripts/import?format=csv",
                tr,
                Some("text/csv"),
                csv.as_bytes().to_vec(),
            )
            .await;
        assert_error(&r, 422, "invalid_request");
        assert_eq!(r.json["errors"][0]["record"], 2);
        assert_eq!(r.json["errors"][0]["line"], 3);
        assert_eq!(
            app.get("/v1/kb/scripts", tr)
                .await
                .json
                .as_array()
                .unwrap()
                .len(),
            0
        );

        let r = app
            .send_raw(
                "POST",
                "/v1/kb/scripts/import?format=csv&skip_invalid=true",
                tr,
                Some("text/csv"),
                csv.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["created"], 2);
        assert_eq!(r.json["skipped"], 1);
        // Re-importing the same file changes nothing; an edited row is a new version.
        let r = app
            .send_raw(
                "POST",
                "/v1/kb/scripts/import?format=csv&skip_invalid=true",
                tr,
                Some("text/csv"),
                csv.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(r.json["unchanged"], 2, "{}", r.text);
        let edited = csv.replace("三年维保", "五年维保");
        let r = app
            .send_raw(
                "POST",
                "/v1/kb/scripts/import?format=csv&skip_invalid=true",
                tr,
                Some("text/csv"),
                edited.into_bytes(),
            )
            .await;
        assert_eq!(r.json["updated"], 1, "{}", r.text);
        let r = app.get("/v1/kb/scripts/p1", tr).await;
        assert_eq!(r.json["version"], 2);

        // Invalid UTF-8 names the line.
        let r = app
            .send_raw(
                "POST",
                "/v1/kb/scripts/import?format=csv",
                tr,
                Some("text/csv"),
                b"id,title\n1,\xff\n".to_vec(),
            )
            .await;
        assert_error(&r, 422, "invalid_request");
        assert_eq!(r.json["errors"][0]["line"], 2);

        for format in ["csv", "jsonl", "markdown"] {
            let r = app
                .get(&format!("/v1/kb/scripts/export?format={format}"), tr)
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            let back = assist_knowledge_base::io::parse_scripts(
                &r.text,
                assist_knowledge_base::io::Format::parse(format).unwrap(),
                &assist_knowledge_base::validate::Limits::default(),
            );
            assert!(back.is_clean(), "{format}: {:?}", back.errors);
            assert_eq!(back.records.len(), 2, "{format}");
        }
        // Lexicon import.
        let lex = "pattern,category,severity,match_mode,action,language\n私下交易,飞单,high,phrase,block,zh\n返点,kickback,high,phrase,alert,zh\n";
        let r = app
            .send_raw(
                "POST",
                "/v1/kb/lexicon/import?format=csv",
                tr,
                Some("text/csv"),
                lex.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(r.json["created"], 2, "{}", r.text);
    }
}
