//! The demo's risk-alert step: a trainer imports the sample risk lexicon, a
//! second trainer approves it, compliance registers a webhook (a receiver in
//! this process that checks the signature), the manager opens the alert
//! stream, and a chat from the rep's phone raises alerts on both — with the
//! time each took. Then the manager acknowledges one and the phone fetches
//! its signed device-side rules.

use std::time::{Duration, Instant};

use anyhow::Context;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use assist_server::state::AppState;

/// The sample lexicon in `eval/data/risk/lexicon.jsonl` (written for this project).
const SAMPLE_LEXICON: &str = include_str!("../../../../eval/data/risk/lexicon.jsonl");

/// Who takes part.
#[derive(Debug)]
pub struct People<'a> {
    pub org_id: &'a str,
    pub trainer_id: &'a str,
    pub reviewer_id: &'a str,
    pub trainer: &'a str,
    pub rep: &'a str,
    pub manager: &'a str,
    pub compliance: &'a str,
}

struct Api<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
}

impl Api<'_> {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

/// A webhook receiver on a local port: what it got and when.
async fn receiver() -> anyhow::Result<(
    String,
    mpsc::UnboundedReceiver<(HeaderMap, String, Instant)>,
)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let router = axum::Router::new().route(
        "/alerts-hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body, Instant::now()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/alerts-hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((url, rx))
}

/// Read SSE events from a streaming response into a channel.
fn read_events(mut resp: reqwest::Response) -> mpsc::UnboundedReceiver<(String, Value, Instant)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !event.is_empty() {
                    let value = serde_json::from_str(&data).unwrap_or(Value::Null);
                    let _ = tx.send((event, value, Instant::now()));
                }
            }
        }
    });
    rx
}

pub async fn run(
    http: &reqwest::Client,
    base: &str,
    state: &AppState,
    who: People<'_>,
) -> anyhow::Result<()> {
    println!("[6/7] risk alerts from a chat on the rep's phone:");
    let api = Api { http, base };
    let started = Instant::now();
    let resp = http
        .post(format!("{base}/v1/kb/lexicon/import?format=jsonl"))
        .bearer_auth(who.trainer)
        .header("content-type", "application/x-ndjson")
        .body(SAMPLE_LEXICON)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    println!(
        "  POST /v1/kb/lexicon/import (trainer 陈静, sample lexicon) → {status}: {} entries",
        v["created"]
    );
    // Approve in bulk (the second trainer), as `assist kb import --approve` does.
    let items = state
        .db
        .kb_list(
            who.org_id,
            assist_knowledge_base::Kind::Lexicon,
            &assist_server::db::kb::KbFilter {
                limit: 10_000,
                ..Default::default()
            },
        )
        .await?;
    for item in &items {
        state
            .db
            .kb_submit_and_approve(
                who.org_id,
                item,
                who.trainer_id,
                who.reviewer_id,
                assist_knowledge_base::ReviewPolicy::default(),
                None,
                None,
            )
            .await?;
    }
    println!(
        "      {} entries approved by 孙悦 in {:.1} s",
        items.len(),
        started.elapsed().as_secs_f64()
    );
    // What a blocked rep may say instead: an approved script tagged
    // `guard:<category>` is signed into the phone's rules.
    let (s, script) = api
        .send(
            reqwest::Method::POST,
            "/v1/kb/scripts",
            who.trainer,
            Some(json!({
                "title": "合规：只走公司渠道",
                "body": "为了保障您的权益，沟通和付款都走公司企业微信和对公账户，我不能私下加个人微信，也不能私下给返点。优惠我帮您申请官方活动。",
                "scenario": "payment", "language": "zh",
                "tags": ["guard:private_contact", "guard:kickback", "guard:side_deal"]
            })),
        )
        .await?;
    if let Some(id) = script["id"].as_str() {
        let item = state.db.kb_get(who.org_id, id).await?;
        let (_, approved) = state
            .db
            .kb_submit_and_approve(
                who.org_id,
                &item,
                who.trainer_id,
                who.reviewer_id,
                assist_knowledge_base::ReviewPolicy::default(),
                None,
                None,
            )
            .await?;
        if let (Some(search), Some(approved)) = (&state.search, approved) {
            search.index(vec![approved]).await?;
        }
    }
    println!(
        "  POST /v1/kb/scripts (trainer 陈静, tagged guard:private_contact/kickback/side_deal) → {s}, approved by 孙悦"
    );

    let (url, mut hooks) = receiver().await?;
    let (s, hook) = api
        .send(
            reqwest::Method::POST,
            "/v1/webhooks",
            who.compliance,
            Some(json!({"url": url, "description": "demo receiver"})),
        )
        .await?;
    let secret = hook["secret"].as_str().unwrap_or_default().to_string();
    println!(
        "  POST /v1/webhooks (compliance 赵丽) → {s}: {}",
        hook["id"]
    );

    let stream = http
        .get(format!("{base}/v1/alerts/stream"))
        .bearer_auth(who.manager)
        .send()
        .await?;
    println!(
        "  GET /v1/alerts/stream (manager 李强) → {} {}",
        stream.status().as_u16(),
        stream
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    );
    let mut events = read_events(stream);
    // Let the stream's first poll settle so it is listening.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let chat = [
        ("customer", "这个价格还能再优惠点吗？"),
        ("rep", "公司规定不能私下交易，优惠只能走官方活动"),
        (
            "rep",
            "这样吧，你加我私人微信 zhangwei_1988，返点私下转给你",
        ),
    ];
    let messages: Vec<Value> = chat
        .iter()
        .enumerate()
        .map(|(i, (sender, text))| {
            json!({"client_message_id": format!("demo-msg-{i}"), "sender": sender, "text": text,
                   "sent_at": assist_server::time::rfc3339(assist_server::time::now_ms())})
        })
        .collect();
    let sent = Instant::now();
    let (s, v) = api
        .send(
            reqwest::Method::POST,
            "/v1/conversations/wecom:demo-chat-1/messages",
            who.rep,
            Some(json!({"channel": "wecom", "customer_ref": "CRM-20931", "messages": messages})),
        )
        .await?;
    println!(
        "  POST /v1/conversations/wecom:demo-chat-1/messages (rep 张伟, 3 messages) → {s} in {:.0} ms: {} stored, {} alerts",
        sent.elapsed().as_secs_f64() * 1000.0,
        v["accepted"],
        v["alerts"]
    );
    for (m, (sender, text)) in v["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .zip(chat)
    {
        let risks: Vec<String> = m["risks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|r| match r["suppressed"].as_str() {
                Some(why) => format!(
                    "{} (not an alert: {why})",
                    r["category"].as_str().unwrap_or("")
                ),
                None => format!(
                    "{} {}",
                    r["category"].as_str().unwrap_or(""),
                    r["severity"].as_str().unwrap_or("")
                ),
            })
            .collect();
        println!(
            "      {sender:<8} «{text}» → {}",
            if risks.is_empty() {
                "no risk".to_string()
            } else {
                risks.join(", ")
            }
        );
    }
    let expected = v["alerts"].as_u64().unwrap_or(0) as usize;
    let mut first_alert = None;
    for _ in 0..expected {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some((kind, data, at))) => {
                first_alert
                    .get_or_insert_with(|| data["alert"]["id"].as_str().unwrap_or("").to_string());
                println!(
                    "      stream: {kind} {} {} «{}» {:.0} ms after the POST",
                    data["alert"]["category"].as_str().unwrap_or(""),
                    data["alert"]["severity"].as_str().unwrap_or(""),
                    data["evidence"]["snippet"].as_str().unwrap_or(""),
                    at.duration_since(sent).as_secs_f64() * 1000.0
                );
            }
            _ => {
                println!("      stream: no event within 10 s");
                break;
            }
        }
    }
    for _ in 0..expected {
        match tokio::time::timeout(Duration::from_secs(10), hooks.recv()).await {
            Ok(Some((headers, body, at))) => {
                let sig = headers
                    .get("x-assist-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let t = sig
                    .split(',')
                    .next()
                    .and_then(|p| p.strip_prefix("t="))
                    .and_then(|t| t.parse::<i64>().ok())
                    .unwrap_or(0);
                let ok = assist_server::alerts::signature(&secret, t, &body) == sig;
                println!(
                    "      webhook: {} received {:.0} ms after the POST, signature {}",
                    headers
                        .get("x-assist-event")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or(""),
                    at.duration_since(sent).as_secs_f64() * 1000.0,
                    if ok { "verified" } else { "WRONG" }
                );
            }
            _ => {
                println!("      webhook: no delivery within 10 s");
                break;
            }
        }
    }
    if let Some(id) = first_alert {
        let (s, v) = api
            .send(
                reqwest::Method::POST,
                &format!("/v1/alerts/{id}/ack"),
                who.manager,
                Some(json!({"note": "已看到，今天找张伟谈"})),
            )
            .await?;
        println!(
            "  POST /v1/alerts/{id}/ack (manager 李强) → {s}: {}",
            v["status"].as_str().unwrap_or("")
        );
    }
    let (s, v) = api
        .send(reqwest::Method::GET, "/v1/alerts", who.rep, None)
        .await?;
    println!(
        "  GET /v1/alerts (rep 张伟) → {s}: {}",
        v["message"].as_str().unwrap_or("")
    );
    let (s, v) = api
        .send(reqwest::Method::GET, "/v1/guard/rules", who.rep, None)
        .await?;
    println!(
        "  GET /v1/guard/rules (rep's phone) → {s}: {} block rules, {} safe alternatives, version {}, signed by key {}",
        v["rules"].as_array().map(Vec::len).unwrap_or(0),
        v["alternatives"].as_array().map(Vec::len).unwrap_or(0),
        v["version"],
        v["key_id"].as_str().unwrap_or("")
    );
    Ok(())
}
