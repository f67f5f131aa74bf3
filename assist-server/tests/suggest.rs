//! Suggestions through the API with the deterministic fake embedder: only
//! approved versions are suggested, edits under review do not leak, retired
//! scripts disappear, organisations are isolated, and bad input is refused.

mod common;

use assist_models::embed::EmbedHandle;
use assist_models::worker::WorkerConfig;
use assist_protocol::Role;
use assist_server::db::testing;
use assist_server::suggest::SearchService;
use common::{TestApp, assert_error, setup_with};
use serde_json::{Value, json};

async fn with_search(db: assist_server::db::Db, data: &std::path::Path) -> TestApp {
    let data = data.to_path_buf();
    let mut app = setup_with(db, move |c| c.storage.data_dir = data).await;
    let embedder = EmbedHandle::fake(WorkerConfig::new("embedder", 8)).unwrap();
    let search = SearchService::with_embedder(&app.state.config, embedder).unwrap();
    app.state.search = Some(search);
    app.router = assist_server::http::app::app(app.state.clone());
    app
}

async fn approve(app: &TestApp, reviewer: &str, body: Value) -> String {
    let r = app
        .send_json("POST", "/v1/kb/scripts", Some(&app.tokens.trainer), &body)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    let r = app
        .send_json(
            "POST",
            &format!("/v1/kb/scripts/{id}/submit"),
            Some(&app.tokens.trainer),
            &json!({"expected_version": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .send_json(
            "POST",
            &format!("/v1/kb/scripts/{id}/approve"),
            Some(reviewer),
            &json!({"expected_version": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    id
}

#[tokio::test]
async fn suggestions_come_from_approved_scripts_only() {
    let t = testing::sqlite().await;
    let data = tempfile::tempdir().unwrap();
    let app = with_search(t.db.clone(), data.path()).await;
    let db = &app.state.db;
    let u = db
        .create_user(&app.org_id, "reviewer", Role::Trainer, None)
        .await
        .unwrap();
    let (_, reviewer) = db
        .create_token(&app.org_id, &u.id, None, None, None)
        .await
        .unwrap();

    let price = approve(
        &app,
        &reviewer,
        json!({
        "title": "价格异议：按年付更划算", "body": "按年付费每席位每年1980元，比按月付便宜两成。",
        "scenario": "price_objection", "products": ["云客CRM"], "language": "zh"}),
    )
    .await;
    let _install = approve(
        &app,
        &reviewer,
        json!({
        "title": "宽带安装时间", "body": "企业宽带下单后三个工作日内上门安装。",
        "scenario": "delivery", "products": ["企业宽带"], "language": "zh"}),
    )
    .await;
    // A draft never approved must never be suggested.
    let r = app.send_json("POST", "/v1/kb/scripts", Some(&app.tokens.trainer), &json!({
        "title": "价格 草稿", "body": "按年付费 价格 草稿内容 便宜", "scenario": "price_objection", "language": "zh"})).await;
    let draft = r.json["id"].as_str().unwrap().to_string();

    let r = app
        .send_json(
            "POST",
            "/v1/suggest",
            Some(&app.tokens.rep),
            &json!({"utterance": "按年付费的价格是多少", "k": 5}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ids: Vec<&str> = r.json["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["script_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], price, "{}", r.text);
    assert!(
        !ids.contains(&draft.as_str()),
        "a draft was suggested: {}",
        r.text
    );
    assert!(r.json["suggestions"][0]["why"]["bm25_rank"].is_number());
    assert!(r.json["took_ms"].is_number());

    // An edit under review: the approved text is still what reps get.
    let r = app.send_json("PUT", &format!("/v1/kb/scripts/{price}"), Some(&app.tokens.trainer), &json!({
        "expected_version": 1, "title": "价格异议：按年付更划算", "body": "按年付费 未审核的新说法。",
        "scenario": "price_objection", "products": ["云客CRM"], "language": "zh"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .send_json(
            "POST",
            "/v1/suggest",
            Some(&app.tokens.rep),
            &json!({"utterance": "按年付费的价格是多少"}),
        )
        .await;
    assert_eq!(
        r.json["suggestions"][0]["body"], "按年付费每席位每年1980元，比按月付便宜两成。",
        "{}",
        r.text
    );
    assert_eq!(r.json["suggestions"][0]["version"], 1);

    // Filters and organisation isolation.
    let r = app
        .send_json(
            "POST",
            "/v1/suggest",
            Some(&app.tokens.rep),
            &json!({"utterance": "按年付费的价格", "language": "en"}),
        )
        .await;
    assert_eq!(
        r.json["suggestions"].as_array().unwrap().len(),
        0,
        "{}",
        r.text
    );
    let r = app
        .send_json(
            "POST",
            "/v1/suggest",
            Some(&app.tokens.other_admin),
            &json!({"utterance": "按年付费的价格"}),
        )
        .await;
    assert_eq!(
        r.json["suggestions"].as_array().unwrap().len(),
        0,
        "{}",
        r.text
    );
    let r = app
        .get(
            "/v1/kb/search?q=%E5%AE%89%E8%A3%85&k=3",
            Some(&app.tokens.manager),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["suggestions"][0]["title"], "宽带安装时间");

    // Retire: gone from suggestions at once.
    let r = app
        .send_json(
            "POST",
            &format!("/v1/kb/scripts/{price}/retire"),
            Some(&app.tokens.trainer),
            &json!({"expected_version": 2}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .send_json(
            "POST",
            "/v1/suggest",
            Some(&app.tokens.rep),
            &json!({"utterance": "按年付费的价格是多少", "k": 5}),
        )
        .await;
    let ids: Vec<&str> = r.json["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["script_id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&price.as_str()), "{}", r.text);

    // Bad input.
    let r = app
        .send_json(
            "POST",
            "/v1/suggest",
            Some(&app.tokens.rep),
            &json!({"utterance": "  "}),
        )
        .await;
    assert_error(&r, 422, "invalid_request");
    let r = app
        .send_json(
            "POST",
            "/v1/suggest",
            Some(&app.tokens.rep),
            &json!({"utterance": "x", "k": 0}),
        )
        .await;
    assert_error(&r, 422, "invalid_request");
    let r = app
        .send_json(
            "POST",
            "/v1/suggest",
            Some(&app.tokens.rep),
            &json!({"utterance": "x", "language": "fr"}),
        )
        .await;
    assert_error(&r, 422, "invalid_request");
    let r = app
        .send_json("POST", "/v1/suggest", None, &json!({"utterance": "x"}))
        .await;
    assert_error(&r, 401, "unauthorized");
}

#[tokio::test]
async fn the_index_is_repaired_from_the_database_at_startup() {
    let t = testing::sqlite().await;
    let data = tempfile::tempdir().unwrap();
    let app = with_search(t.db.clone(), data.path()).await;
    let db = &app.state.db;
    let u = db
        .create_user(&app.org_id, "reviewer", Role::Trainer, None)
        .await
        .unwrap();
    let (_, reviewer) = db
        .create_token(&app.org_id, &u.id, None, None, None)
        .await
        .unwrap();
    let id = approve(
        &app,
        &reviewer,
        json!({
        "title": "信任建立", "body": "我们是上市公司，数据存储在境内并通过等保三级。",
        "scenario": "trust", "language": "zh"}),
    )
    .await;
    // Simulate a crash that lost the index entry: wipe both halves.
    let search = app.state.search.clone().unwrap();
    search.remove(vec![id.clone()]).await.unwrap();
    let r = app
        .send_json(
            "POST",
            "/v1/suggest",
            Some(&app.tokens.rep),
            &json!({"utterance": "数据安全吗 等保"}),
        )
        .await;
    assert_eq!(r.json["suggestions"].as_array().unwrap().len(), 0);
    let repair = search.reconcile(db).await.unwrap();
    assert_eq!(repair.reindexed, vec![id.clone()]);
    let r = app
        .send_json(
            "POST",
            "/v1/suggest",
            Some(&app.tokens.rep),
            &json!({"utterance": "数据安全吗 等保"}),
        )
        .await;
    assert_eq!(
        r.json["suggestions"][0]["script_id"],
        id.as_str(),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn without_an_embedder_suggestions_say_what_to_fetch() {
    let t = testing::sqlite().await;
    let app = common::setup(t.db.clone()).await;
    let r = app
        .send_json(
            "POST",
            "/v1/suggest",
            Some(&app.tokens.rep),
            &json!({"utterance": "多少钱"}),
        )
        .await;
    assert_error(&r, 503, "model_missing");
    assert!(
        r.text.contains("assist models fetch --only embedder"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn a_rebuild_replaces_a_damaged_index_and_reports_progress() {
    let t = testing::sqlite().await;
    let data = tempfile::tempdir().unwrap();
    let app = with_search(t.db.clone(), data.path()).await;
    let db = &app.state.db;
    let u = db
        .create_user(&app.org_id, "reviewer", Role::Trainer, None)
        .await
        .unwrap();
    let (_, reviewer) = db
        .create_token(&app.org_id, &u.id, None, None, None)
        .await
        .unwrap();
    let id = approve(
        &app,
        &reviewer,
        json!({
        "title": "售后响应", "body": "工单提交后两小时内有工程师联系您。",
        "scenario": "after_sales", "language": "zh"}),
    )
    .await;
    let search = app.state.search.clone().unwrap();
    // A stray entry the database knows nothing about (e.g. from an old index).
    let stray = assist_knowledge_base::workflow::restore_approved(
        "stray",
        &app.org_id,
        1,
        assist_knowledge_base::Status::Approved,
        assist_knowledge_base::ScriptContent {
            title: "工单 两小时".into(),
            body: "工单 两小时 工程师".into(),
            scenario: assist_knowledge_base::Scenario::AfterSales,
            tags: vec![],
            products: vec![],
            language: assist_knowledge_base::Language::Zh,
        },
    )
    .unwrap();
    search.index(vec![stray]).await.unwrap();
    assert_eq!(search.indexed(), 2);

    let seen = std::sync::Mutex::new(Vec::new());
    let repair = search
        .rebuild(db, |done, total| seen.lock().unwrap().push((done, total)))
        .await
        .unwrap();
    assert_eq!(repair.reindexed, vec![id.clone()]);
    assert_eq!(search.indexed(), 1);
    assert_eq!(*seen.lock().unwrap(), vec![(0, 1), (1, 1)]);
    let r = app
        .send_json(
            "POST",
            "/v1/suggest",
            Some(&app.tokens.rep),
            &json!({"utterance": "工单提交后多久有工程师联系"}),
        )
        .await;
    let ids: Vec<&str> = r.json["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["script_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()], "{}", r.text);

    // Readiness names the loaded search and how much it holds.
    let r = app.get("/readyz", None).await;
    let check = r.json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "script-search")
        .cloned()
        .unwrap();
    assert_eq!(check["ok"], true, "{}", r.text);
    assert!(
        check["detail"].as_str().unwrap().contains("1 approved"),
        "{check}"
    );
}
