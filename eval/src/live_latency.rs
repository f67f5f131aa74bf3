//! `assist-eval live-latency`: end of a customer utterance → suggestions on
//! the phone, over the live WebSocket `/v1/live` of the real server, with N
//! concurrent simulated calls.
//!
//! Starts the real server in process (SQLite in a scratch directory, the
//! embedder and Whisper from the model cache, fetched once if missing),
//! imports and approves the sample script library and risk lexicon, gives
//! every simulated phone a rep, a device and a device token, then runs a
//! ladder of concurrency levels. At each level N phones stream their calls
//! ([`calls`]) at real time:
//!
//! - **audio** (default): both legs as PCM16 16 kHz, 200 ms frames
//!   (`per_speaker`: channel 1 the rep, 2 the customer), so the server's
//!   Whisper transcribes and every customer final is searched. An
//!   utterance's latency is the arrival of the suggestions for the final that
//!   completes it minus (stream start + the utterance's end in the audio),
//!   split into utterance end → final (ASR) and final → suggestions;
//! - **text**: the phone sends each line as a `text` turn when it ends
//!   (on-device ASR); latency is turn sent → suggestions received: the
//!   server's share alone, to compare with the 300 ms target.
//!
//! A level is *sustained* when the p95 (an utterance without suggestions
//! counting as later than all) stays within `--bound-ms` (2 s); the report
//! names the largest sustained N. Levels stop at the first one that is not,
//! unless `--full-ladder`.

pub mod calls;
mod client;
pub mod measure;
mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use assist_protocol::Role;
use assist_protocol::live::{ServerMessage, Speaker};
use assist_server::config::Config;
use assist_server::state::AppState;

use self::calls::{CallPlan, Lines};
use self::client::{CallLog, Mode, run_call, secs_since};
use self::measure::{Outcome, Span, Summary, attribute_audio, attribute_risk, attribute_text};
use self::report::Level;
use crate::report::Report;

/// The architecture's target for the server's share (final → suggestions).
pub(crate) const SEARCH_TARGET_MS: f64 = 300.0;

/// Options of `assist-eval live-latency`.
#[derive(Debug, Clone)]
pub struct LiveArgs {
    /// `audio` or `text`.
    pub mode: String,
    /// Concurrency levels, in order.
    pub calls: Vec<usize>,
    /// Audio per call, seconds.
    pub seconds: f64,
    /// Whisper model (id or role) for audio calls.
    pub speech_model: String,
    /// p95 bound of a sustained level, ms.
    pub bound_ms: f64,
    /// How long a call may take to flush after `end`, seconds.
    pub drain_s: f64,
    /// Run every level even after one is not sustained.
    pub full_ladder: bool,
    /// Folder with scripts.jsonl and queries.jsonl.
    pub retrieval_data: PathBuf,
    /// Folder with en.txt and zh.txt (rep lines).
    pub asr_data: PathBuf,
    /// Folder with lexicon.jsonl.
    pub risk_data: PathBuf,
}

pub fn run(model_dir: PathBuf, args: &LiveArgs, out: &Path) -> anyhow::Result<Report> {
    let send = match args.mode.as_str() {
        "audio" => Mode::Audio,
        "text" => Mode::Text,
        other => anyhow::bail!("--mode is `audio` or `text`, not `{other}`"),
    };
    anyhow::ensure!(!args.calls.is_empty(), "--calls needs at least one level");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(model_dir, args, send, out))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The plans of every phone slot.
fn plans(args: &LiveArgs, send: Mode, n: usize) -> anyhow::Result<Vec<Arc<CallPlan>>> {
    let en = Lines::load(&args.retrieval_data, &args.asr_data, "en")?;
    let mut out = Vec::new();
    match send {
        Mode::Audio => {
            eprintln!(
                "speaking {n} calls of ~{:.0} s with espeak-ng (cached)",
                args.seconds
            );
            for i in 0..n {
                out.push(Arc::new(calls::audio_call(&en, i, args.seconds)?));
            }
        }
        Mode::Text => {
            let zh = Lines::load(&args.retrieval_data, &args.asr_data, "zh")?;
            for i in 0..n {
                let lines = if i % 2 == 0 { &zh } else { &en };
                out.push(Arc::new(calls::text_call(lines, i, args.seconds)?));
            }
        }
    }
    Ok(out)
}

async fn run_async(
    model_dir: PathBuf,
    args: &LiveArgs,
    send: Mode,
    out: &Path,
) -> anyhow::Result<Report> {
    let load_at_start = load_average();
    let max_calls = args.calls.iter().copied().max().unwrap_or(1).max(1);
    let plans = plans(args, send, max_calls)?;

    // The server, as `assist serve` runs it, on a scratch SQLite.
    let scratch = std::env::temp_dir().join(format!("assist-live-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut config = Config::default();
    config.models.model_dir = model_dir;
    config.models.required_models = Vec::new();
    config.models.verify_models_on_start = false;
    config.storage.data_dir = scratch.clone();
    config.storage.database_url = None;
    config.speech.speech_model = args.speech_model.clone();
    let mut state = AppState::open(&config).await?;
    let mut wanted = vec!["embedder".to_string()];
    if send == Mode::Audio {
        wanted.push(args.speech_model.clone());
        wanted.push(assist_models::vad::ROLE.to_string());
    }
    let missing: Vec<String> = wanted
        .into_iter()
        .filter(|m| state.models.ready_path(m).is_err())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "fetching {} into the model cache (once)",
            missing.join(", ")
        );
        let store = state.models.clone();
        tokio::task::spawn_blocking(move || store.fetch(&missing)).await??;
    }
    state.start_search().await?;
    anyhow::ensure!(
        state.search.is_some(),
        "script search did not start (embedder)"
    );
    if send == Mode::Audio {
        state.start_speech().await?;
        anyhow::ensure!(
            state.speech.is_some(),
            "speech recognition did not start (`{}`)",
            args.speech_model
        );
    }
    state.start_alerts().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handlers = state.job_handlers()?;
    let running = assist_server::serve::start(state.clone(), listener, handlers)?;
    let base = format!("http://{}", running.addr);
    let ws_url = format!("ws://{}/v1/live", running.addr);
    let (phones, manager) = setup(&state, &base, args, max_calls).await?;
    // When each alert reached the team manager's stream.
    let alerts =
        crate::alert_latency::follow_alert_stream(&reqwest::Client::new(), &base, &manager).await?;

    // Warm-up (not measured): the first decode and search load lazily.
    let warm = plans[0].truncated(12.0);
    let log = run_call(
        &ws_url,
        &phones[0],
        "warm-up",
        &warm,
        send,
        Duration::from_secs(60),
    )
    .await;
    if let Some(f) = &log.failure {
        eprintln!("warm-up call: {f}");
    }
    wait_idle(&state).await;

    let mode = if send == Mode::Audio { "audio" } else { "text" };
    println!(
        "live-latency ({mode}{}): levels {:?}, ~{:.0} s per call, load average {load_at_start} at the start",
        if send == Mode::Audio {
            format!(", Whisper `{}`", args.speech_model)
        } else {
            String::new()
        },
        args.calls,
        plans[0].duration_s
    );
    println!(
        "{:>5} {:>6} {:>7} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10} {:>6} {:>9}",
        "calls",
        "utts",
        "no sugg",
        "p50 ms",
        "p95 ms",
        "final p50",
        "final p95",
        "f→s p50",
        "f→s p95",
        "cores",
        "load1"
    );
    let mut levels = Vec::new();
    for &n in &args.calls {
        let level = run_level(&state, &ws_url, &phones, &plans, n, send, args, &alerts).await;
        println!(
            "{:>5} {:>6} {:>7} {:>9.0} {:>9.0} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>6.2} {:>9}",
            level.calls,
            level.utterances,
            level.suggest.missing,
            level.suggest.p50_ms,
            level.p95_all_ms,
            level.to_final.p50_ms,
            level.to_final.p95_ms,
            level.final_to_suggestions.p50_ms,
            level.final_to_suggestions.p95_ms,
            level.cores_busy,
            level.load_end.split_whitespace().next().unwrap_or("?"),
        );
        println!(
            "      live recogniser busy at most {:.0} % of a 20 s window; risky lines {}: → SSE alert p50 {:.0} ms, p95 {:.0} ms, {} without",
            level.asr_busy * 100.0,
            level.risky_lines,
            level.risk_sse.p50_ms,
            level.risk_sse.p95_ms,
            level.risk_sse.missing
        );
        for f in level.failures.iter().take(3) {
            println!("      client: {f}");
        }
        let stop = !level.sustained(args.bound_ms) && !args.full_ladder;
        levels.push(level);
        if stop {
            println!(
                "      p95 past {:.0} ms: higher levels skipped",
                args.bound_ms
            );
            break;
        }
        wait_idle(&state).await;
    }

    let report = report::build(args, send, &levels, &load_at_start, &plans[0]);
    report.finish(out)?;
    running.shutdown().await?;
    drop(state);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(report)
}

/// People, the approved library and lexicon, and a device token per phone.
async fn setup(
    state: &AppState,
    base: &str,
    args: &LiveArgs,
    phones: usize,
) -> anyhow::Result<(Vec<String>, String)> {
    let db = &state.db;
    let http = reqwest::Client::new();
    let org = db.create_org("live-latency").await?;
    let team = db.create_team(&org.id, "team").await?;
    let trainer = db
        .create_user(&org.id, "trainer", Role::Trainer, None)
        .await?;
    let (_, trainer_t) = db
        .create_token(&org.id, &trainer.id, None, None, None)
        .await?;
    for (kind, what, file) in [
        (
            assist_knowledge_base::Kind::Script,
            "scripts",
            args.retrieval_data.join("scripts.jsonl"),
        ),
        (
            assist_knowledge_base::Kind::Lexicon,
            "lexicon",
            args.risk_data.join("lexicon.jsonl"),
        ),
    ] {
        let body = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let resp = http
            .post(format!("{base}/v1/kb/{what}/import?format=jsonl"))
            .bearer_auth(&trainer_t)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "{what} import: {}",
            resp.text().await?
        );
        let items = db
            .kb_list(
                &org.id,
                kind,
                &assist_server::db::kb::KbFilter {
                    limit: 10_000,
                    ..Default::default()
                },
            )
            .await?;
        for item in &items {
            db.kb_submit_and_approve(
                &org.id,
                item,
                &trainer.id,
                &trainer.id,
                assist_knowledge_base::ReviewPolicy {
                    allow_self_approval: true,
                },
                None,
                None,
            )
            .await?;
        }
        eprintln!("{} {what} imported and approved", items.len());
    }
    if let Some(search) = &state.search {
        let repair = search
            .reconcile(db)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        eprintln!("{} scripts indexed", repair.reindexed.len());
    }
    let mut tokens = Vec::new();
    for i in 0..phones {
        let rep = db
            .create_user(&org.id, &format!("rep-{i}"), Role::Rep, Some(&team.id))
            .await?;
        let device = db
            .create_device(&org.id, &rep.id, &format!("phone-{i}"))
            .await?;
        let (_, t) = db
            .create_token(&org.id, &rep.id, Some(&device.id), None, None)
            .await?;
        tokens.push(t);
    }
    let manager = db
        .create_user(&org.id, "manager", Role::Manager, Some(&team.id))
        .await?;
    let (_, manager_t) = db
        .create_token(&org.id, &manager.id, None, None, None)
        .await?;
    Ok((tokens, manager_t))
}

/// Wait (at most a minute and a half) until no live session is left on the
/// node and its recogniser is idle, so one level's flushing does not run
/// into the next.
async fn wait_idle(state: &AppState) {
    let until = Instant::now() + Duration::from_secs(60);
    while state.live.active() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Admission looks at the recogniser's recent load: let the last level's
    // load leave the window before the next level's calls arrive.
    while state.live.asr.busy_share() > 0.1 && Instant::now() < until + Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[allow(clippy::too_many_arguments)]
async fn run_level(
    state: &AppState,
    ws_url: &str,
    phones: &[String],
    plans: &[Arc<CallPlan>],
    n: usize,
    send: Mode,
    args: &LiveArgs,
    alerts: &crate::alert_latency::Arrivals,
) -> Level {
    let load_start = load_average();
    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let drain = Duration::from_secs_f64(args.drain_s);
    // The live recogniser's busy share, sampled every second.
    let busy: Arc<std::sync::Mutex<Vec<f64>>> = Arc::default();
    let sampler = {
        let (busy, hub) = (Arc::clone(&busy), Arc::clone(&state.live));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let share = hub.asr.busy_share();
                busy.lock().unwrap_or_else(|p| p.into_inner()).push(share);
            }
        })
    };
    let mut tasks = Vec::new();
    for (i, (token, plan)) in phones.iter().zip(plans).take(n).enumerate() {
        let (url, token, plan) = (ws_url.to_string(), token.clone(), Arc::clone(plan));
        // Calls begin spread over two seconds, as real calls do not align.
        let delay = Duration::from_secs_f64(2.0 * i as f64 / n as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let id = format!("n{n}-call{i}");
            run_call(&url, &token, &id, &plan, send, drain).await
        }));
    }
    let mut logs = Vec::new();
    for t in tasks {
        logs.push(t.await.unwrap_or_else(|e| CallLog {
            failure: Some(format!("call task failed: {e}")),
            ..CallLog::default()
        }));
    }
    let wall_s = wall0.elapsed().as_secs_f64();
    let cores_busy = (cpu_seconds() - cpu0) / wall_s.max(1e-9);
    sampler.abort();
    let busy = busy.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let asr_busy = busy.iter().copied().fold(0.0, f64::max);

    let mut outcomes: Vec<Outcome> = Vec::new();
    let (mut risk_phone, mut risk_sse) = (Vec::new(), Vec::new());
    let mut closes = BTreeMap::new();
    let mut errors = BTreeMap::new();
    let mut failures = Vec::new();
    let mut dropped_partials = 0;
    let mut first_call = Vec::new();
    let mut heard = String::new();
    for (log, plan) in logs.iter().zip(plans) {
        let events = log.relative();
        let per_call = match send {
            Mode::Audio => {
                let spans: Vec<Span> = plan
                    .customer_turns()
                    .map(|t| Span {
                        start_s: t.start_s,
                        end_s: t.end_s,
                    })
                    .collect();
                attribute_audio(&spans, &events)
            }
            Mode::Text => {
                let t0 = log.t0.unwrap_or_else(Instant::now);
                let sent: Vec<(String, f64)> = log
                    .sent
                    .iter()
                    .map(|(t, at)| (t.clone(), secs_since(t0, *at)))
                    .collect();
                let mut o = attribute_text(&sent, &events);
                // Turns never sent (a failed call) are missing too.
                let planned = plan.customer_turns().count();
                o.resize(planned.max(o.len()), Outcome::default());
                o
            }
        };
        if first_call.is_empty() {
            first_call = per_call.iter().map(|o| o.to_suggestions).collect();
            let finals: Vec<&str> = log
                .events
                .iter()
                .filter_map(|(_, m)| match m {
                    ServerMessage::Final(p) if p.speaker != Speaker::Rep => Some(p.text.as_str()),
                    _ => None,
                })
                .collect();
            heard = finals.join(" | ");
        }
        outcomes.extend(per_call);
        // Risky rep lines → the finding on the phone and the alert on the
        // manager's stream.
        let risky: Vec<Span> = plan
            .risky_turns()
            .map(|t| Span {
                start_s: t.start_s,
                end_s: t.end_s,
            })
            .collect();
        let session = log.events.iter().find_map(|(_, m)| match m {
            ServerMessage::Ready(r) => Some(r.session_id.clone()),
            _ => None,
        });
        let found = attribute_risk(&risky, &events);
        for (span, f) in risky.iter().zip(found) {
            risk_phone.push(f.map(|(s, _)| s));
            let sse = f.and_then(|(_, seq)| {
                let key = format!("{}#{seq}", session.as_deref()?);
                let at = *alerts.lock().ok()?.get(&key)?;
                Some(secs_since(log.t0?, at) - span.end_s)
            });
            risk_sse.push(sse);
        }
        let close = log
            .close
            .as_ref()
            .map_or("none".to_string(), |(c, r)| format!("{c} {r}"));
        *closes.entry(close).or_insert(0) += 1;
        for (_, m) in &log.events {
            match m {
                ServerMessage::Error { code, message } => {
                    *errors.entry(format!("{code:?}: {message}")).or_insert(0) += 1;
                }
                ServerMessage::Dropped { partials } => dropped_partials += partials,
                _ => {}
            }
        }
        if let Some(f) = &log.failure {
            failures.push(f.clone());
        }
        if log.unreadable > 0 {
            failures.push(format!("{} unreadable server frames", log.unreadable));
        }
    }
    Level {
        calls: n,
        utterances: outcomes.len(),
        suggest: Summary::of(outcomes.iter().map(|o| o.to_suggestions)),
        p95_all_ms: Summary::p95_with_missing_ms(outcomes.iter().map(|o| o.to_suggestions)),
        to_final: Summary::of(outcomes.iter().map(|o| o.to_final)),
        final_to_suggestions: Summary::of(outcomes.iter().map(|o| o.final_to_suggestions)),
        risky_lines: risk_phone.len(),
        risk_phone: Summary::of(risk_phone),
        risk_sse: Summary::of(risk_sse),
        closes,
        failures,
        errors,
        dropped_partials,
        calls_ended: logs.iter().filter(|l| l.ended).count(),
        first_call,
        heard,
        load_start,
        load_end: load_average(),
        cores_busy,
        asr_busy,
        wall_s,
    }
}

/// CPU seconds (user + system, all threads) of this process so far.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}
