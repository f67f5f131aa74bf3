//! `assist-eval alert-latency`: how long a risky chat message takes to reach
//! a manager, end to end over HTTP.
//!
//! Starts the real server (SQLite in a scratch directory, the embedder from
//! the model cache so the semantic detector runs as in production), imports
//! and approves the sample lexicon, registers a webhook on a local receiver,
//! opens one alert stream (SSE) as compliance, then drives `conversations`
//! concurrent simulated chats from `eval/data/risk/conversations.jsonl`: each
//! posts its messages one at a time with a think time between them, the way
//! a work phone uploads a chat as it happens. For every alert it joins the
//! message's send time with the arrival of its `alert.created` event on the
//! stream and of its webhook delivery, and reports p50 / p95 / p99.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use assist_protocol::Role;
use assist_server::config::Config;
use assist_server::state::AppState;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::report::{Better, Figure, Report};

#[derive(Debug, Deserialize)]
struct Conversation {
    id: String,
    messages: Vec<Message>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    text: String,
    #[serde(default)]
    labels: Vec<String>,
}

/// Import `lexicon` (JSONL) over HTTP as `trainer` and approve every entry,
/// so the semantic detector has its exemplars as in production. Shared by
/// the benchmarks that start a real server with the sample lexicon.
pub(crate) async fn approve_lexicon(
    http: &reqwest::Client,
    base: &str,
    db: &assist_server::db::Db,
    org_id: &str,
    trainer_id: &str,
    trainer_token: &str,
    lexicon: String,
) -> anyhow::Result<()> {
    let resp = http
        .post(format!("{base}/v1/kb/lexicon/import?format=jsonl"))
        .bearer_auth(trainer_token)
        .header("content-type", "application/x-ndjson")
        .body(lexicon)
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "lexicon import: {}",
        resp.text().await?
    );
    for item in db
        .kb_list(
            org_id,
            assist_knowledge_base::Kind::Lexicon,
            &assist_server::db::kb::KbFilter {
                limit: 10_000,
                ..Default::default()
            },
        )
        .await?
    {
        db.kb_submit_and_approve(
            org_id,
            &item,
            trainer_id,
            trainer_id,
            assist_knowledge_base::ReviewPolicy {
                allow_self_approval: true,
            },
            None,
            None,
        )
        .await?;
    }
    Ok(())
}

/// Latency percentiles, milliseconds.
pub(crate) fn percentiles(mut ms: Vec<f64>) -> (f64, f64, f64) {
    if ms.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.95), at(0.99))
}

/// Arrival times of alerts, keyed by the server's message id.
pub(crate) type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// Open `/v1/alerts/stream` with `token` and note when each new alert
/// arrives, by its evidence's `message_id` (a chat message's id, or
/// `<live session>#<final seq>` for a live call), for as long as it runs.
pub(crate) async fn follow_alert_stream(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<Arrivals> {
    let arrivals: Arrivals = Arc::default();
    let mut stream = http
        .get(format!("{base}/v1/alerts/stream"))
        .bearer_auth(token)
        .send()
        .await?;
    anyhow::ensure!(stream.status().is_success(), "stream: {}", stream.status());
    let seen = Arc::clone(&arrivals);
    tokio::spawn(async move {
        let mut buf = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            let at = Instant::now();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let created = block.lines().any(|l| l == "event: alert.created");
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if created
                    && let Ok(v) = serde_json::from_str::<Value>(&data)
                    && let Some(m) = v["evidence"]["message_id"].as_str()
                {
                    seen.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(m.to_string())
                        .or_insert(at);
                }
            }
        }
    });
    Ok(arrivals)
}

/// One posted message: server id, when it was sent, labelled risky, POST latency (ms).
type Sent = (String, Instant, bool, f64);

pub fn run(
    model_dir: PathBuf,
    data: &Path,
    out: &Path,
    conversations: usize,
    think_ms: (u64, u64),
    semantic: bool,
) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(
        model_dir,
        data,
        out,
        conversations,
        think_ms,
        semantic,
    ))
}

async fn run_async(
    model_dir: PathBuf,
    data: &Path,
    out: &Path,
    conversations: usize,
    think_ms: (u64, u64),
    semantic: bool,
) -> anyhow::Result<Report> {
    let convs: Vec<Conversation> = std::fs::read_to_string(data.join("conversations.jsonl"))
        .with_context(|| format!("cannot read {}", data.join("conversations.jsonl").display()))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("conversations.jsonl")?;
    let lexicon = std::fs::read_to_string(data.join("lexicon.jsonl"))?;

    let scratch = std::env::temp_dir().join(format!("assist-alert-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut config = Config::default();
    config.models.model_dir = model_dir;
    config.models.required_models = Vec::new();
    config.models.verify_models_on_start = false;
    config.storage.data_dir = scratch.clone();
    config.storage.database_url = None;
    // The measured webhook receiver listens on loopback, over plain HTTP.
    config.alerts.webhook_allow_http = true;
    config.alerts.webhook_allow_private_targets = true;
    config.alerts.risk_semantic = semantic;
    config.jobs.job_poll_ms = 50;
    let mut state = AppState::open(&config).await?;
    if semantic {
        state.start_search().await?;
        if state.search.is_none() {
            anyhow::bail!(
                "the embedder is not in the model cache; run `assist models fetch --only embedder` or pass --no-semantic"
            );
        }
    }
    state.start_alerts().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handlers = state.job_handlers()?;
    let running = assist_server::serve::start(state.clone(), listener, handlers)?;
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();

    // People and the approved lexicon.
    let db = &state.db;
    let org = db.create_org("latency").await?;
    let team = db.create_team(&org.id, "team").await?;
    let trainer = db
        .create_user(&org.id, "trainer", Role::Trainer, None)
        .await?;
    let (_, trainer_t) = db
        .create_token(&org.id, &trainer.id, None, None, None)
        .await?;
    let compliance = db
        .create_user(&org.id, "compliance", Role::Compliance, None)
        .await?;
    let (_, compliance_t) = db
        .create_token(&org.id, &compliance.id, None, None, None)
        .await?;
    approve_lexicon(&http, &base, db, &org.id, &trainer.id, &trainer_t, lexicon).await?;
    let mut reps = Vec::new();
    for i in 0..conversations {
        let rep = db
            .create_user(&org.id, &format!("rep-{i}"), Role::Rep, Some(&team.id))
            .await?;
        let (_, t) = db.create_token(&org.id, &rep.id, None, None, None).await?;
        reps.push(t);
    }

    // The webhook receiver and the stream.
    let hooks: Arrivals = Arc::default();
    let hook_url = {
        let hooks = hooks.clone();
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let hooks = hooks.clone();
                async move {
                    let at = Instant::now();
                    if let Ok(v) = serde_json::from_str::<Value>(&body)
                        && let Some(m) = v["data"]["evidence"]["message_id"].as_str()
                    {
                        hooks.lock().unwrap().entry(m.to_string()).or_insert(at);
                    }
                    "ok"
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", l.local_addr()?);
        tokio::spawn(async move { axum::serve(l, router).await });
        url
    };
    let resp = http
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(&compliance_t)
        .json(&json!({"url": hook_url}))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "webhook: {}",
        resp.text().await?
    );
    let streamed = follow_alert_stream(&http, &base, &compliance_t).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Drive the conversations.
    println!(
        "alert-latency: {conversations} concurrent chats, think time {}–{} ms, semantic detector {}",
        think_ms.0,
        think_ms.1,
        if semantic { "on" } else { "off" }
    );
    let sends: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, token) in reps.into_iter().enumerate() {
        let conv = &convs[i % convs.len()];
        let messages: Vec<(String, String, bool)> = conv
            .messages
            .iter()
            .map(|m| (m.role.clone(), m.text.clone(), !m.labels.is_empty()))
            .collect();
        let conv_id = format!("{}-{i}", conv.id);
        let http = http.clone();
        let base = base.clone();
        let sends = sends.clone();
        tasks.push(tokio::spawn(async move {
            // Spread the starts so the chats interleave.
            let mut seed = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let span = think_ms.1.saturating_sub(think_ms.0).max(1);
            tokio::time::sleep(Duration::from_millis(next() % span)).await;
            for (j, (role, text, risky)) in messages.into_iter().enumerate() {
                let body = json!({"channel": "wechat", "messages": [{
                    "client_message_id": format!("m{j}"), "sender": role, "text": text,
                    "sent_at": jiff::Timestamp::now().to_string()}]});
                let sent = Instant::now();
                let resp = http
                    .post(format!("{base}/v1/conversations/{conv_id}/messages"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                let took = sent.elapsed().as_secs_f64() * 1000.0;
                match resp {
                    Ok(r) if r.status().is_success() => {
                        let v: Value = r.json().await.unwrap_or_default();
                        if let Some(id) = v["messages"][0]["id"].as_str() {
                            sends
                                .lock()
                                .unwrap()
                                .push((id.to_string(), sent, risky, took));
                        }
                    }
                    Ok(r) => eprintln!(
                        "post failed: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    ),
                    Err(e) => eprintln!("post failed: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(think_ms.0 + next() % span)).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let wall = started.elapsed().as_secs_f64();
    // Let the last deliveries land.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let sends = sends.lock().unwrap().clone();
    let streamed = streamed.lock().unwrap().clone();
    let hooks = hooks.lock().unwrap().clone();
    let mut to_stream = Vec::new();
    let mut to_hook = Vec::new();
    let mut labelled_alerted = 0;
    let labelled = sends.iter().filter(|s| s.2).count();
    for (id, sent, risky, _) in &sends {
        if let Some(at) = streamed.get(id) {
            to_stream.push(at.duration_since(*sent).as_secs_f64() * 1000.0);
            labelled_alerted += usize::from(*risky);
        }
        if let Some(at) = hooks.get(id) {
            to_hook.push(at.duration_since(*sent).as_secs_f64() * 1000.0);
        }
    }
    let posts: Vec<f64> = sends.iter().map(|s| s.3).collect();
    let (s50, s95, s99) = percentiles(to_stream.clone());
    let (h50, h95, h99) = percentiles(to_hook.clone());
    let (p50, p95, p99) = percentiles(posts);

    let mut report = Report::new(
        "alert-latency",
        "Risky chat message → alert on a manager's SSE stream and on a webhook, over HTTP on the real server (SQLite)",
    );
    for (name, v) in [
        ("chat → SSE alert p50", s50),
        ("chat → SSE alert p95 (target ≤ 1000)", s95),
        ("chat → SSE alert p99", s99),
        ("chat → webhook p50", h50),
        ("chat → webhook p95", h95),
        ("chat → webhook p99", h99),
        ("POST messages p50", p50),
        ("POST messages p95", p95),
        ("POST messages p99", p99),
    ] {
        report.push(Figure::new(name, "ms", v, Better::Lower));
    }
    report.push(Figure::new(
        "messages posted",
        "count",
        sends.len() as f64,
        Better::Higher,
    ));
    report.push(Figure::new(
        "alerts on the stream",
        "count",
        to_stream.len() as f64,
        Better::Higher,
    ));
    report.push(Figure::new(
        "message rate",
        "msg/s",
        sends.len() as f64 / wall,
        Better::Higher,
    ));
    report.note(format!(
        "{conversations} concurrent conversations from {} ({} labelled risky messages, {labelled_alerted} of them alerted; \
         the others are misses of the detectors, see the `risk` report). Think time {}–{} ms between a chat's messages; \
         semantic detector {}. The live-call figure (end of a spoken phrase → alert) needs the live audio path of the \
         device-SDK issue and is not measured here.",
        data.join("conversations.jsonl").display(),
        labelled,
        think_ms.0,
        think_ms.1,
        if semantic { "on (one embedding per message)" } else { "off" }
    ));
    println!("{}", report.markdown());
    let (json_path, md_path) = report.finish(out)?;
    println!("wrote {} and {}", json_path.display(), md_path.display());

    running.shutdown().await?;
    drop(state);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(report)
}
