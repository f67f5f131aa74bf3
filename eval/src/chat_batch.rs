//! `assist-eval chat-batch`: what the largest legal chat batch costs the
//! other people on a node.
//!
//! Starts the real server (SQLite, the embedder from the model cache, the
//! sample lexicon approved so the semantic detector runs as in production).
//! Rep B posts one-message chats one after another, first alone, then while
//! rep A posts the largest batch the limits allow (`chat_max_batch_chars`
//! of text: as few long messages as `chat_max_chars` allows, or as many
//! short ones as `chat_max_batch` allows). Reported: how long the batch
//! takes, and rep B's p50 / p95 alone and meanwhile.
//!
//! The peer, measured in the same run, is the embedder as it was before the
//! batch limits and job splitting (issue 21): the same texts embedded as one
//! job on the model's thread while rep B chats. A second pair of figures is
//! about cancellation: a request for the old largest batch (500 × 5,000
//! characters) is given up after 2 s; how long the model stays busy after
//! that, split into jobs (ours) and as one job (peer).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use assist_models::embed::{Embed, EmbedKind};
use assist_protocol::Role;
use assist_server::config::Config;
use assist_server::state::AppState;
use serde_json::{Value, json};

use crate::alert_latency::approve_lexicon;
use crate::report::{Better, Figure, Report};

/// p50 and p95, milliseconds.
fn percentiles(ms: Vec<f64>) -> (f64, f64) {
    let (p50, p95, _) = crate::alert_latency::percentiles(ms);
    (p50, p95)
}

pub fn run(model_dir: PathBuf, data: &Path, out: &Path, alone: usize) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(model_dir, data, out, alone))
}

/// Chat lines of the evaluation set, joined until `chars` characters.
fn text_of(lines: &[String], start: usize, chars: usize) -> String {
    let mut out = String::new();
    for l in lines.iter().cycle().skip(start) {
        if out.chars().count() >= chars {
            break;
        }
        out.push_str(l);
        out.push('，');
    }
    out.chars().take(chars).collect()
}

fn message(id: String, text: String) -> Value {
    json!({"client_message_id": id, "sender": "customer", "text": text,
           "sent_at": "2026-11-24T09:30:00+08:00"})
}

struct Node {
    base: String,
    http: reqwest::Client,
    rep_a: String,
    rep_b: String,
}

impl Node {
    /// One one-message chat of rep B; its latency in ms.
    async fn small(&self, i: usize) -> anyhow::Result<f64> {
        let t0 = Instant::now();
        let r = self
            .http
            .post(format!("{}/v1/conversations/small/messages", self.base))
            .bearer_auth(&self.rep_b)
            .json(&json!({"channel": "wechat",
                "messages": [message(format!("m{i}"), "你们的价格能再优惠一点吗？加我私人微信聊".into())]}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "small chat: {}", r.text().await?);
        Ok(t0.elapsed().as_secs_f64() * 1000.0)
    }

    /// Rep B chats until `busy` ends; latencies in ms.
    async fn small_until(&self, next: &mut usize, busy: &AtomicBool) -> anyhow::Result<Vec<f64>> {
        let mut ms = Vec::new();
        while busy.load(Ordering::SeqCst) {
            ms.push(self.small(*next).await?);
            *next += 1;
        }
        Ok(ms)
    }
}

async fn run_async(
    model_dir: PathBuf,
    data: &Path,
    out: &Path,
    alone: usize,
) -> anyhow::Result<Report> {
    let lines: Vec<String> = std::fs::read_to_string(data.join("conversations.jsonl"))
        .with_context(|| format!("cannot read {}", data.join("conversations.jsonl").display()))?
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|c| {
            c["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|m| m["text"].as_str().map(str::to_string))
        })
        .collect();
    anyhow::ensure!(!lines.is_empty(), "no chat lines in {}", data.display());
    let lexicon = std::fs::read_to_string(data.join("lexicon.jsonl"))?;

    let scratch = std::env::temp_dir().join(format!("assist-chat-batch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut config = Config::default();
    config.models.model_dir = model_dir;
    config.models.required_models = Vec::new();
    config.models.verify_models_on_start = false;
    config.storage.data_dir = scratch.clone();
    config.storage.database_url = None;
    let limits = config.alerts.clone();
    let timeout_s = config.server.request_timeout_secs;
    let mut state = AppState::open(&config).await?;
    state.start_search().await?;
    let Some(embedder) = state.search.as_ref().map(|s| s.embedder().clone()) else {
        anyhow::bail!(
            "the embedder is not in the model cache; run `assist models fetch --only embedder`"
        );
    };
    state.start_alerts().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handlers = state.job_handlers()?;
    let running = assist_server::serve::start(state.clone(), listener, handlers)?;
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_s + 30))
        .build()?;

    let db = &state.db;
    let org = db.create_org("chat-batch").await?;
    let team = db.create_team(&org.id, "team").await?;
    let trainer = db
        .create_user(&org.id, "trainer", Role::Trainer, None)
        .await?;
    let (_, trainer_t) = db
        .create_token(&org.id, &trainer.id, None, None, None)
        .await?;
    approve_lexicon(&http, &base, db, &org.id, &trainer.id, &trainer_t, lexicon).await?;
    let mut tokens = Vec::new();
    for name in ["rep-a", "rep-b"] {
        let u = db
            .create_user(&org.id, name, Role::Rep, Some(&team.id))
            .await?;
        tokens.push(db.create_token(&org.id, &u.id, None, None, None).await?.1);
    }
    let node = Arc::new(Node {
        base: base.clone(),
        http: http.clone(),
        rep_a: tokens[0].clone(),
        rep_b: tokens[1].clone(),
    });

    // Rep B alone (after a warm-up).
    let mut next = 0;
    for _ in 0..3 {
        node.small(next).await?;
        next += 1;
    }
    let mut solo = Vec::new();
    for _ in 0..alone {
        solo.push(node.small(next).await?);
        next += 1;
    }
    let (solo50, solo95) = percentiles(solo);
    println!("chat-batch: rep B alone p50 {solo50:.0} ms, p95 {solo95:.0} ms");

    // The largest legal batches, with rep B meanwhile.
    let per = limits.chat_max_chars;
    let long_n = (limits.chat_max_batch_chars / per).clamp(1, limits.chat_max_batch);
    let short_len = (limits.chat_max_batch_chars / limits.chat_max_batch).max(1);
    let shapes = [
        ("long", long_n, per),
        ("many", limits.chat_max_batch, short_len),
    ];
    let mut report = Report::new(
        "chat-batch",
        "The largest legal chat batch on the real server (SQLite, e5-small semantic detector): its time, and another rep's one-message chat latency alone and meanwhile",
    );
    let mut long_texts = Vec::new();
    for (shape, n, chars) in shapes {
        let texts: Vec<String> = (0..n).map(|i| text_of(&lines, i * 7, chars)).collect();
        if shape == "long" {
            long_texts = texts.clone();
        }
        let batch: Vec<Value> = texts
            .into_iter()
            .enumerate()
            .map(|(i, t)| message(format!("{shape}-{i}"), t))
            .collect();
        let busy = Arc::new(AtomicBool::new(true));
        let started = Instant::now();
        let big = {
            let (node, busy) = (node.clone(), busy.clone());
            tokio::spawn(async move {
                let r = node
                    .http
                    .post(format!(
                        "{}/v1/conversations/big-{shape}/messages",
                        node.base
                    ))
                    .bearer_auth(&node.rep_a)
                    .json(&json!({"channel": "wechat", "messages": batch}))
                    .send()
                    .await;
                busy.store(false, Ordering::SeqCst);
                let r = r?;
                let status = r.status();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                anyhow::Ok((status, body, started.elapsed().as_secs_f64()))
            })
        };
        let during = node.small_until(&mut next, &busy).await?;
        let (status, body, secs) = big.await??;
        anyhow::ensure!(status.is_success(), "the {shape} batch: {status} {body}");
        let (d50, d95) = percentiles(during.clone());
        println!(
            "chat-batch: {shape}: {n} × {chars} characters in {secs:.1} s ({} accepted); rep B meanwhile p50 {d50:.0} ms, p95 {d95:.0} ms over {} chats",
            body["accepted"],
            during.len()
        );
        report.push(Figure::new(
            format!("largest legal batch, {shape} ({n} × {chars} chars) time"),
            "s",
            secs,
            Better::Lower,
        ));
        report.push(
            Figure::new(
                format!("other rep's chat p95 during the {shape} batch"),
                "ms",
                d95,
                Better::Lower,
            )
            .peer("the same rep alone", solo95),
        );
        report.push(Figure::new(
            format!("other rep's chat p50 during the {shape} batch"),
            "ms",
            d50,
            Better::Lower,
        ));
    }

    // Peer: the long batch's texts as one job on the embedder's thread, as
    // before the split, while rep B chats.
    let busy = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let job = {
        let busy = busy.clone();
        let texts = long_texts.clone();
        let worker = embedder.worker().clone();
        tokio::spawn(async move {
            let r = worker
                .run(move |m: &mut Box<dyn Embed>| {
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    m.embed(&refs, EmbedKind::Query)
                })
                .await;
            busy.store(false, Ordering::SeqCst);
            r.map(|_| started.elapsed().as_secs_f64())
        })
    };
    let during = node.small_until(&mut next, &busy).await?;
    let peer_secs = job.await??;
    let (p50, p95) = percentiles(during.clone());
    println!(
        "chat-batch: peer (one job): {peer_secs:.1} s of embedding; rep B meanwhile p50 {p50:.0} ms, p95 {p95:.0} ms over {} chats",
        during.len()
    );
    if let Some(f) = report
        .figures
        .iter_mut()
        .find(|f| f.metric == "other rep's chat p95 during the long batch")
    {
        *f = Figure::new(f.metric.clone(), "ms", f.ours, Better::Lower)
            .peer("one embedding job per request (before)", p95);
    }
    report.push(Figure::new(
        "other rep's chat p95 alone",
        "ms",
        solo95,
        Better::Lower,
    ));

    // Cancellation: the old largest batch (500 × 5,000 characters) is given
    // up after 2 s; how long is the model busy after that?
    let old: Vec<String> = (0..500).map(|i| text_of(&lines, i, 5000)).collect();
    let give_up = Duration::from_secs(2);
    // Seconds from giving up until the embedder's queue is empty.
    async fn idle_after(e: &assist_models::embed::EmbedHandle) -> f64 {
        let at = Instant::now();
        while e.worker().queue_depth() > 0 && at.elapsed() < Duration::from_secs(600) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        at.elapsed().as_secs_f64()
    }
    let ours_after = {
        let texts = old.clone();
        let _ = tokio::time::timeout(give_up, embedder.embed(texts, EmbedKind::Query)).await;
        idle_after(&embedder).await
    };
    node.small(next).await?;
    next += 1;
    println!(
        "chat-batch: split into jobs, the model was busy {ours_after:.2} s after the request was given up"
    );
    let peer_after = {
        let worker = embedder.worker().clone();
        let texts = old.clone();
        let _ = tokio::time::timeout(
            give_up,
            worker.run(move |m: &mut Box<dyn Embed>| {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                m.embed(&refs, EmbedKind::Query)
            }),
        )
        .await;
        idle_after(&embedder).await
    };
    node.small(next).await?;
    println!(
        "chat-batch: after giving up on 500 × 5,000 characters at 2 s, the model stayed busy {ours_after:.2} s (split) vs {peer_after:.1} s (one job)"
    );
    report.push(
        Figure::new(
            "model busy after a 500 × 5,000-char request is given up at 2 s",
            "s",
            ours_after,
            Better::Lower,
        )
        .peer("one embedding job per request (before)", peer_after),
    );
    report.note(format!(
        "Limits: chat_max_batch {}, chat_max_chars {}, chat_max_batch_chars {}; request timeout {timeout_s} s. \
         Rep B posts one message at a time (alone: {alone} chats after 3 warm-up ones). Texts are chat lines of {} joined to length. \
         The peer runs on the same model thread in the same process: the batch's texts as one job, the way every request was embedded before.",
        limits.chat_max_batch,
        limits.chat_max_chars,
        limits.chat_max_batch_chars,
        data.join("conversations.jsonl").display(),
    ));
    println!("{}", report.markdown());
    let (json_path, md_path) = report.finish(out)?;
    println!("wrote {} and {}", json_path.display(), md_path.display());

    running.shutdown().await?;
    drop(state);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(report)
}
