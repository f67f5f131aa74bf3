//! Chats → risk events → alerts, through the API on both backends: a risky
//! message reaches a manager's SSE stream and a signed webhook; resent
//! messages are stored once; compliance statements and customers' own
//! details raise nothing; repeats count on one alert and a conversation
//! cannot flood anyone; streams resume with `Last-Event-ID`; acknowledge and
//! resolve; failing and hanging webhook endpoints end in a visible failed
//! delivery while the alert stays; every bad input is a clear error.

mod common;

use std::sync::Arc;
use std::time::Duration;

use assist_knowledge_base::Kind;
use assist_knowledge_base::io::{Format, parse_lexicon};
use assist_knowledge_base::validate::Limits;
use assist_knowledge_base::workflow::ReviewPolicy;
use assist_protocol::Role;
use assist_server::db::kb::KbContent;
use assist_server::db::testing;
use assist_server::jobs::JobRunner;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::{TestApp, assert_error, setup_with};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The sample lexicon of `eval/data/risk`, imported and approved.
async fn with_lexicon(
    db: assist_server::db::Db,
    tweak: impl FnOnce(&mut assist_server::config::Config),
) -> TestApp {
    let app = setup_with(db, |c| {
        c.kb.kb_allow_self_approval = true;
        c.jobs.job_retry_base_secs = 0;
        c.jobs.job_poll_ms = 20;
        // The test receivers listen on loopback, over plain HTTP.
        c.alerts.webhook_allow_http = true;
        c.alerts.webhook_allow_private_targets = true;
        tweak(c);
    })
    .await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../eval/data/risk/lexicon.jsonl"
    ))
    .unwrap();
    let parsed = parse_lexicon(&text, Format::Jsonl, &Limits::default());
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let records: Vec<_> = parsed
        .records
        .into_iter()
        .map(|r| (r.id, KbContent::Lexicon(r.content)))
        .collect();
    let db = &app.state.db;
    let trainer = db.find_user(&app.org_id, "trainer").await.unwrap();
    db.kb_import(&app.org_id, &records, &trainer.id, &|_| {})
        .await
        .unwrap();
    let items = db
        .kb_list(
            &app.org_id,
            Kind::Lexicon,
            &assist_server::db::kb::KbFilter {
                limit: 10_000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(items.len(), records.len());
    for item in items {
        db.kb_submit_and_approve(
            &app.org_id,
            &item,
            &trainer.id,
            &trainer.id,
            ReviewPolicy {
                allow_self_approval: true,
            },
            None,
            None,
        )
        .await
        .unwrap();
    }
    app
}

fn msg(id: &str, sender: &str, text: &str) -> Value {
    json!({"client_message_id": id, "sender": sender, "text": text, "sent_at": "2026-11-24T09:30:00+08:00"})
}

async fn post_batch(app: &TestApp, conv: &str, messages: Vec<Value>) -> common::Resp {
    app.send_json(
        "POST",
        &format!("/v1/conversations/{conv}/messages"),
        Some(&app.tokens.rep),
        &json!({"channel": "wecom", "messages": messages}),
    )
    .await
}

/// An open SSE response body, read event by event.
struct EventStream {
    body: Body,
    buf: String,
}

#[derive(Debug)]
struct Sse {
    id: i64,
    event: String,
    data: Value,
}

impl EventStream {
    async fn open(app: &TestApp, token: &str, last_event_id: Option<i64>) -> EventStream {
        let mut b =
            Request::get("/v1/alerts/stream").header("authorization", format!("Bearer {token}"));
        if let Some(id) = last_event_id {
            b = b.header("last-event-id", id.to_string());
        }
        let resp = app
            .router
            .clone()
            .oneshot(b.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        EventStream {
            body: resp.into_body(),
            buf: String::new(),
        }
    }

    /// The next event, or `None` if none arrives within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(id) = id {
                    return Some(Sse {
                        id,
                        event,
                        data: serde_json::from_str(&data).unwrap(),
                    });
                }
                continue; // a keep-alive comment
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??
                .ok()?;
            if let Ok(data) = frame.into_data() {
                self.buf.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}

/// A webhook endpoint on a local port that records what it receives and
/// answers with `status` after `delay`.
struct Receiver {
    url: String,
    rx: mpsc::UnboundedReceiver<(HeaderMap, String)>,
}

async fn receiver(status: u16, delay: Duration) -> Receiver {
    let (tx, rx) = mpsc::unbounded_channel();
    let tx = Arc::new(tx);
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                tokio::time::sleep(delay).await;
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Receiver {
        url: format!("http://{addr}/hook"),
        rx,
    }
}

fn run_jobs(app: &TestApp) -> CancellationToken {
    let stop = CancellationToken::new();
    JobRunner::new(
        app.state.jobs.clone(),
        app.state.job_handlers().unwrap(),
        Duration::from_millis(20),
    )
    .spawn(1, stop.clone());
    stop
}

async fn create_webhook(app: &TestApp, url: &str, extra: Value) -> Value {
    let mut body = json!({"url": url});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = app
        .send_json("POST", "/v1/webhooks", Some(&app.tokens.compliance), &body)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json["secret"].as_str().unwrap().starts_with("whsec_"));
    r.json
}

#[tokio::test]
async fn a_risky_chat_message_reaches_the_stream_and_a_signed_webhook() {
    for t in testing::all("alerts_stream_webhook").await {
        let app = with_lexicon(t.db.clone(), |_| {}).await;
        let mut hook = receiver(200, Duration::ZERO).await;
        let webhook = create_webhook(&app, &hook.url, json!({})).await;
        let secret = webhook["secret"].as_str().unwrap().to_string();
        let stop = run_jobs(&app);
        let mut stream = EventStream::open(&app, &app.tokens.manager, None).await;

        let r = post_batch(
            &app,
            "wecom:chat-001",
            vec![
                msg("m1", "customer", "你好，这款设备什么时候能发货？"),
                msg("m2", "rep", "王总，这单我们私下交易，加 我 V 信 细聊"),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["accepted"], 2);
        assert!(
            r.json["messages"][0]["risks"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{}",
            r.text
        );
        let risks = r.json["messages"][1]["risks"].as_array().unwrap();
        let cats: Vec<&str> = risks
            .iter()
            .map(|x| x["category"].as_str().unwrap())
            .collect();
        assert!(
            cats.contains(&"side_deal") && cats.contains(&"private_contact"),
            "{}",
            r.text
        );

        // The manager's stream gets both alerts, with evidence.
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let ev = stream
                .next(Duration::from_secs(10))
                .await
                .expect("alert on the stream");
            assert_eq!(ev.event, "alert.created");
            assert_eq!(ev.data["alert"]["conversation_id"], "wecom:chat-001");
            assert_eq!(ev.data["alert"]["team_id"], app.team_id.as_str());
            assert!(
                ev.data["evidence"]["snippet"]
                    .as_str()
                    .unwrap()
                    .contains("私下交易")
            );
            assert_eq!(ev.data["evidence"]["speaker"], "rep");
            seen.push(ev.data["alert"]["category"].as_str().unwrap().to_string());
        }
        seen.sort();
        assert_eq!(seen, ["private_contact", "side_deal"]);

        // Both reach the webhook, signed with the secret.
        for _ in 0..2 {
            let (headers, body) = tokio::time::timeout(Duration::from_secs(10), hook.rx.recv())
                .await
                .expect("webhook delivery")
                .unwrap();
            assert_eq!(headers["x-assist-event"], "alert.created");
            let sig = headers["x-assist-signature"].to_str().unwrap();
            let t: i64 = sig
                .split(',')
                .next()
                .unwrap()
                .trim_start_matches("t=")
                .parse()
                .unwrap();
            assert_eq!(sig, assist_server::alerts::signature(&secret, t, &body));
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["event"], "alert.created");
            assert!(
                v["data"]["evidence"]["snippet"]
                    .as_str()
                    .unwrap()
                    .contains("私下交易")
            );
        }
        // The delivery log says delivered.
        let id = webhook["id"].as_str().unwrap();
        let mut delivered = 0;
        for _ in 0..100 {
            let r = app
                .get(
                    &format!("/v1/webhooks/{id}/deliveries"),
                    Some(&app.tokens.compliance),
                )
                .await;
            delivered = r
                .json
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["status"] == "delivered")
                .count();
            if delivered == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(delivered, 2);

        // A resumed stream replays from the given id; the list agrees.
        let mut replay = EventStream::open(&app, &app.tokens.compliance, Some(0)).await;
        let first = replay.next(Duration::from_secs(5)).await.unwrap();
        let second = replay.next(Duration::from_secs(5)).await.unwrap();
        assert!(first.id < second.id);
        let mut resumed = EventStream::open(&app, &app.tokens.compliance, Some(first.id)).await;
        assert_eq!(
            resumed.next(Duration::from_secs(5)).await.unwrap().id,
            second.id
        );
        let list = app.get("/v1/alerts", Some(&app.tokens.manager)).await;
        assert_eq!(list.json.as_array().unwrap().len(), 2, "{}", list.text);
        stop.cancel();
    }
}

#[tokio::test]
async fn resent_messages_are_stored_once_and_repeats_do_not_flood() {
    for t in testing::all("alerts_dedup").await {
        let app = with_lexicon(t.db.clone(), |c| c.alerts.alert_max_per_conversation = 2).await;
        let batch = vec![
            msg("a1", "rep", "这单走私下交易吧"),
            msg("a1", "rep", "这单走私下交易吧"),
        ];
        let r = post_batch(&app, "conv-1", batch.clone()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            (r.json["accepted"].as_i64(), r.json["duplicates"].as_i64()),
            (Some(1), Some(1))
        );
        // The phone retries the whole batch: nothing new.
        let r = post_batch(&app, "conv-1", batch).await;
        assert_eq!(
            (r.json["accepted"].as_i64(), r.json["duplicates"].as_i64()),
            (Some(0), Some(2))
        );
        // The same category again counts on the open alert.
        post_batch(
            &app,
            "conv-1",
            vec![msg("a2", "rep", "还是私下交易比较划算")],
        )
        .await;
        let alerts = app
            .get(
                "/v1/alerts?conversation_id=conv-1",
                Some(&app.tokens.compliance),
            )
            .await;
        let list = alerts.json.as_array().unwrap();
        assert_eq!(list.len(), 1, "{}", alerts.text);
        assert_eq!(list[0]["occurrences"], 2);
        // New categories: the second is raised, the third is rate limited.
        post_batch(
            &app,
            "conv-1",
            vec![msg("a3", "rep", "成交后给你返点百分之五")],
        )
        .await;
        let r = post_batch(&app, "conv-1", vec![msg("a4", "rep", "你这个蠢货")]).await;
        let risks = r.json["messages"][0]["risks"].as_array().unwrap();
        assert!(!risks.is_empty(), "{}", r.text);
        assert!(
            risks.iter().all(|x| x["suppressed"] == "rate_limited"),
            "{}",
            r.text
        );
        let alerts = app
            .get(
                "/v1/alerts?conversation_id=conv-1",
                Some(&app.tokens.compliance),
            )
            .await;
        assert_eq!(alerts.json.as_array().unwrap().len(), 2, "{}", alerts.text);
        // The conversation keeps every message once, in sent order.
        let c = app
            .get("/v1/conversations/conv-1", Some(&app.tokens.rep))
            .await;
        assert_eq!(
            c.json["messages"].as_array().unwrap().len(),
            4,
            "{}",
            c.text
        );
    }
}

#[tokio::test]
async fn compliance_statements_and_customers_details_raise_nothing() {
    for t in testing::all("alerts_negatives").await {
        let app = with_lexicon(t.db.clone(), |_| {}).await;
        let r = post_batch(
            &app,
            "conv-neg",
            vec![
                msg("n1", "rep", "公司规定我们不能私下交易，请走官方合同"),
                msg("n2", "customer", "我的手机号是13812345678，方便联系"),
                msg("n3", "rep", "好的，稍后把报价单发到您邮箱 😀"),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        for m in r.json["messages"].as_array().unwrap() {
            for risk in m["risks"].as_array().unwrap() {
                assert!(risk["suppressed"].is_string(), "{}", r.text);
            }
        }
        let alerts = app.get("/v1/alerts", Some(&app.tokens.compliance)).await;
        assert!(
            alerts.json.as_array().unwrap().is_empty(),
            "{}",
            alerts.text
        );
        // The suppressed events are kept for audit and appeals.
        let c = app
            .get("/v1/conversations/conv-neg", Some(&app.tokens.compliance))
            .await;
        let events = c.json["risk_events"].as_array().unwrap();
        assert!(
            events.iter().any(|e| e["suppressed"] == "negated"),
            "{}",
            c.text
        );
    }
}

#[tokio::test]
async fn roles_scope_alerts_and_ack_resolve_follow_the_workflow() {
    for t in testing::all("alerts_roles").await {
        let app = with_lexicon(t.db.clone(), |_| {}).await;
        post_batch(
            &app,
            "conv-r",
            vec![msg("r1", "rep", "加我私人微信，我们私下交易")],
        )
        .await;
        let db = &app.state.db;
        let other = db
            .create_user(
                &app.org_id,
                "other-manager",
                Role::Manager,
                Some(&app.other_team_id),
            )
            .await
            .unwrap();
        let (_, other_mgr) = db
            .create_token(&app.org_id, &other.id, None, None, None)
            .await
            .unwrap();

        let mine = app.get("/v1/alerts", Some(&app.tokens.manager)).await;
        let alerts = mine.json.as_array().unwrap().clone();
        assert!(!alerts.is_empty(), "{}", mine.text);
        let theirs = app.get("/v1/alerts", Some(&other_mgr)).await;
        assert!(
            theirs.json.as_array().unwrap().is_empty(),
            "{}",
            theirs.text
        );
        let id = alerts[0]["id"].as_str().unwrap();
        assert_error(
            &app.get(&format!("/v1/alerts/{id}"), Some(&other_mgr)).await,
            404,
            "not_found",
        );
        assert_error(
            &app.get(&format!("/v1/alerts/{id}"), Some(&app.tokens.other_admin))
                .await,
            404,
            "not_found",
        );
        assert_error(
            &app.get("/v1/alerts", Some(&app.tokens.rep)).await,
            403,
            "forbidden",
        );
        assert_error(
            &app.get("/v1/alerts/stream", Some(&app.tokens.trainer))
                .await,
            403,
            "forbidden",
        );
        assert_error(
            &app.get("/v1/alerts/stream", None).await,
            401,
            "unauthorized",
        );
        assert_error(
            &app.get("/v1/conversations/conv-r", Some(&other_mgr)).await,
            404,
            "not_found",
        );

        let detail = app
            .get(&format!("/v1/alerts/{id}"), Some(&app.tokens.manager))
            .await;
        assert!(
            !detail.json["evidence"].as_array().unwrap().is_empty(),
            "{}",
            detail.text
        );

        let path = |a: &str| format!("/v1/alerts/{id}/{a}");
        let r = app
            .send_json(
                "POST",
                &path("resolve"),
                Some(&app.tokens.manager),
                &json!({}),
            )
            .await;
        assert_error(&r, 422, "invalid_request");
        let r = app
            .send_json(
                "POST",
                &path("ack"),
                Some(&app.tokens.manager),
                &json!({"note": "看到了，找他谈"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["status"], "acknowledged");
        let r = app
            .send_json("POST", &path("ack"), Some(&app.tokens.manager), &json!({}))
            .await;
        assert_error(&r, 409, "conflict");
        let r = app
            .send_json(
                "POST",
                &path("resolve"),
                Some(&app.tokens.manager),
                &json!({"note": "已谈话，属误会"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["status"], "resolved");
        assert_eq!(r.json["note"], "已谈话，属误会");
        let r = app
            .send_json(
                "POST",
                &path("resolve"),
                Some(&app.tokens.manager),
                &json!({"note": "again"}),
            )
            .await;
        assert_error(&r, 409, "conflict");
        // The stream from the start shows created, acknowledged, resolved.
        let mut s = EventStream::open(&app, &app.tokens.manager, Some(0)).await;
        let mut kinds = Vec::new();
        while let Some(ev) = s.next(Duration::from_millis(500)).await {
            if ev.data["alert"]["id"] == id {
                kinds.push(ev.event);
            }
        }
        assert_eq!(
            kinds,
            ["alert.created", "alert.acknowledged", "alert.resolved"]
        );
    }
}

#[tokio::test]
async fn failing_and_hanging_webhooks_end_in_a_visible_failed_delivery() {
    for t in testing::all("alerts_webhook_failures").await {
        let app = with_lexicon(t.db.clone(), |c| {
            c.alerts.webhook_max_attempts = 2;
            c.alerts.webhook_timeout_secs = 1;
        })
        .await;
        let mut failing = receiver(500, Duration::ZERO).await;
        let mut hanging = receiver(200, Duration::from_secs(30)).await;
        let w500 = create_webhook(&app, &failing.url, json!({})).await;
        let wslow = create_webhook(&app, &hanging.url, json!({"min_severity": "low"})).await;
        let stop = run_jobs(&app);
        post_batch(&app, "conv-w", vec![msg("w1", "rep", "我们私下交易")]).await;
        for (w, rx) in [(&w500, &mut failing.rx), (&wslow, &mut hanging.rx)] {
            let id = w["id"].as_str().unwrap();
            let mut last = Value::Null;
            for _ in 0..300 {
                let r = app
                    .get(
                        &format!("/v1/webhooks/{id}/deliveries"),
                        Some(&app.tokens.admin),
                    )
                    .await;
                last = r.json[0].clone();
                if last["status"] == "failed" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(last["status"], "failed", "{last}");
            assert_eq!(last["attempts"], 2, "{last}");
            assert!(last["last_error"].as_str().unwrap().len() > 5, "{last}");
            // Both attempts reached the endpoint.
            assert!(rx.recv().await.is_some() && rx.recv().await.is_some());
        }
        // The alert itself is there.
        let alerts = app.get("/v1/alerts", Some(&app.tokens.compliance)).await;
        assert_eq!(alerts.json.as_array().unwrap().len(), 1, "{}", alerts.text);
        stop.cancel();
    }
}

#[tokio::test]
async fn bad_batches_are_clear_errors() {
    for t in testing::all("alerts_bad_input").await {
        let app = with_lexicon(t.db.clone(), |c| c.alerts.chat_max_batch = 5).await;
        let many: Vec<Value> = (0..6)
            .map(|i| msg(&format!("b{i}"), "rep", "你好"))
            .collect();
        assert_error(
            &post_batch(&app, "c1", many).await,
            413,
            "payload_too_large",
        );
        assert_error(
            &post_batch(&app, "c1", vec![]).await,
            422,
            "invalid_request",
        );
        assert_error(
            &post_batch(&app, "c1", vec![msg("x", "rep", "   ")]).await,
            422,
            "invalid_request",
        );
        assert_error(
            &post_batch(&app, "c1", vec![msg("", "rep", "你好")]).await,
            422,
            "invalid_request",
        );
        assert_error(
            &post_batch(&app, "bad%20id!", vec![msg("x", "rep", "你好")]).await,
            422,
            "invalid_request",
        );
        let mut bad_time = msg("x", "rep", "你好");
        bad_time["sent_at"] = json!("yesterday");
        let r = post_batch(&app, "c1", vec![bad_time]).await;
        assert_error(&r, 422, "invalid_request");
        assert!(r.text.contains("messages[0].sent_at"), "{}", r.text);
        assert_error(
            &post_batch(&app, "c1", vec![msg("x", "bot", "你好")]).await,
            400,
            "invalid_json",
        );
        // A new conversation needs its channel.
        let r = app
            .send_json(
                "POST",
                "/v1/conversations/c2/messages",
                Some(&app.tokens.rep),
                &json!({"messages": [msg("x", "rep", "你好")]}),
            )
            .await;
        assert_error(&r, 422, "invalid_request");
        // Only reps post; nothing above was stored.
        let r = app
            .send_json(
                "POST",
                "/v1/conversations/c1/messages",
                Some(&app.tokens.manager),
                &json!({"channel": "sms", "messages": [msg("x", "rep", "你好")]}),
            )
            .await;
        assert_error(&r, 403, "forbidden");
        assert_error(
            &app.get("/v1/conversations/c1", Some(&app.tokens.rep)).await,
            404,
            "not_found",
        );
        // Out-of-order timestamps, emoji and mixed scripts are fine.
        let mut late = msg("o2", "customer", "OK 👍 明天 call 你");
        late["sent_at"] = json!("2026-11-24T09:31:00+08:00");
        let mut early = msg("o1", "rep", "Hi 王总，报价发您了📄");
        early["sent_at"] = json!("2026-11-24T09:29:00+08:00");
        let r = post_batch(&app, "c1", vec![late, early]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let c = app.get("/v1/conversations/c1", Some(&app.tokens.rep)).await;
        let ids: Vec<&str> = c.json["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["client_message_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["o1", "o2"]);
        // Webhook registration checks its input.
        for body in [
            json!({"url": "ftp://example.invalid/x"}),
            json!({"url": "not a url"}),
            json!({"url": "https://u:p@example.invalid/x"}),
            json!({"url": "https://example.invalid/x", "events": ["alert.exploded"]}),
            json!({"url": "https://example.invalid/x", "min_severity": "urgent"}),
        ] {
            let r = app
                .send_json("POST", "/v1/webhooks", Some(&app.tokens.admin), &body)
                .await;
            assert_error(&r, 422, "invalid_request");
        }
        let r = app
            .send_json(
                "POST",
                "/v1/webhooks",
                Some(&app.tokens.manager),
                &json!({"url": "https://example.invalid/x"}),
            )
            .await;
        assert_error(&r, 403, "forbidden");
    }
}
