//! Call uploads through the API with the deterministic fake recogniser (the
//! real-weight runs are in `calls_real.rs`): upload → 202 → job → stored
//! speaker-labelled transcript; who may see which call; idempotent retries;
//! every bad input; a failing recogniser retried then dead-lettered with the
//! reason visible; the OpenAI-compatible endpoint's formats.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use assist_models::speech::{FakeTranscriber, Transcribe, TranscribeOptions, Transcript};
use assist_protocol::Role;
use assist_server::db::Db;
use assist_server::db::testing;
use assist_server::jobs::JobRunner;
use assist_server::speech::SpeechService;
use axum::body::Body;
use axum::http::Request;
use common::{Resp, TestApp, assert_error, setup_with};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A 16-bit PCM WAV: `channels[c]` holds that channel's samples at `rate`.
fn wav(rate: u32, channels: &[Vec<f32>]) -> Vec<u8> {
    let n = channels[0].len();
    let ch = channels.len() as u16;
    let data_len = (n * channels.len() * 2) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&ch.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(ch) * 2).to_le_bytes());
    out.extend_from_slice(&(ch * 2).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..n {
        for c in channels {
            out.extend_from_slice(&((c[i].clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
        }
    }
    out
}

fn tone(rate: u32, seconds: f64, hz: f32, amp: f32) -> Vec<f32> {
    (0..(f64::from(rate) * seconds) as usize)
        .map(|i| amp * (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin())
        .collect()
}

/// A two-party call: the rep talks in the first half, the customer after.
fn stereo_call() -> Vec<u8> {
    let rate = 8000;
    let mut rep = tone(rate, 6.0, 440.0, 0.3);
    rep.extend(vec![0.0; 6 * rate as usize]);
    let mut customer = vec![0.0; 6 * rate as usize];
    customer.extend(tone(rate, 6.0, 660.0, 0.3));
    wav(rate, &[rep, customer])
}

struct Part<'a> {
    name: &'a str,
    filename: Option<&'a str>,
    bytes: Vec<u8>,
}

fn form(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "assist-test-boundary-7f3a";
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match p.filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                    p.name
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{}\"\r\n\r\n", p.name).as_bytes(),
            ),
        }
        body.extend_from_slice(&p.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_form(
    app: &TestApp,
    path: &str,
    token: &str,
    parts: &[Part<'_>],
    headers: &[(&str, &str)],
) -> Resp {
    let (ct, body) = form(parts);
    let mut b = Request::post(path)
        .header("content-type", ct)
        .header("authorization", format!("Bearer {token}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    app.request(b.body(Body::from(body)).unwrap()).await
}

fn audio(bytes: Vec<u8>) -> Part<'static> {
    Part {
        name: "audio",
        filename: Some("call.wav"),
        bytes,
    }
}

fn metadata(v: Value) -> Part<'static> {
    Part {
        name: "metadata",
        filename: None,
        bytes: v.to_string().into_bytes(),
    }
}

async fn with_speech(
    db: Db,
    data: &std::path::Path,
    tweak: impl FnOnce(&mut assist_server::config::Config),
    asr: impl FnOnce() -> Box<dyn Transcribe> + Send + 'static,
) -> TestApp {
    let data = data.to_path_buf();
    let mut app = setup_with(db, move |c| {
        c.storage.data_dir = data;
        c.jobs.job_retry_base_secs = 0;
        c.jobs.job_poll_ms = 20;
        tweak(c);
    })
    .await;
    let speech = SpeechService::spawn(&app.state.config, "fake-asr", move || Ok(asr())).unwrap();
    app.state.speech = Some(speech);
    app.router = assist_server::http::app::app(app.state.clone());
    app
}

fn fake() -> Box<dyn Transcribe> {
    Box::new(FakeTranscriber::default())
}

/// Run the job runners until the call's status is final (or time runs out).
async fn settle(app: &TestApp, id: &str, token: &str) -> Resp {
    let stop = CancellationToken::new();
    let runner = JobRunner::new(
        app.state.jobs.clone(),
        app.state.job_handlers().unwrap(),
        Duration::from_millis(20),
    );
    let handles = runner.spawn(1, stop.clone());
    let mut last = None;
    for _ in 0..1500 {
        let r = app.get(&format!("/v1/calls/{id}"), Some(token)).await;
        let status = r.json["status"].as_str().unwrap_or("").to_string();
        last = Some(r);
        if status == "transcribed" || status == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    for h in handles {
        let _ = h.await;
    }
    last.unwrap()
}

async fn second_rep(app: &TestApp) -> String {
    let db = &app.state.db;
    let u = db
        .create_user(&app.org_id, "rep2", Role::Rep, Some(&app.team_id))
        .await
        .unwrap();
    db.create_token(&app.org_id, &u.id, None, None, None)
        .await
        .unwrap()
        .1
}

async fn a_stereo_call_is_transcribed_per_speaker_and_scoped_by_role(db: Db) {
    let data = tempfile::tempdir().unwrap();
    let app = with_speech(db, data.path(), |_| {}, fake).await;
    let r = post_form(
        &app,
        "/v1/calls",
        &app.tokens.rep,
        &[
            audio(stereo_call()),
            metadata(json!({"customer_ref": "CRM-1001", "direction": "outbound",
                "started_at": "2026-11-24T09:30:00+08:00", "channel_layout": "rep_left"})),
        ],
        &[("idempotency-key", "phone-42-call-7")],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    assert_eq!(r.json["status"], "queued");
    assert_eq!(r.json["channel_layout"], "rep_left");
    assert_eq!(r.json["duration_s"], 12.0);
    assert_eq!(r.json["direction"], "outbound");

    // A retried upload (same key) finds the first call, not a second one.
    let again = post_form(
        &app,
        "/v1/calls",
        &app.tokens.rep,
        &[audio(stereo_call())],
        &[("idempotency-key", "phone-42-call-7")],
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["id"], id.as_str());

    let done = settle(&app, &id, &app.tokens.rep).await;
    assert_eq!(done.json["status"], "transcribed", "{}", done.text);
    let segs = done.json["segments"].as_array().unwrap();
    assert!(!segs.is_empty(), "{}", done.text);
    // The rep speaks first (left channel), the customer second (right).
    assert_eq!(segs[0]["speaker"], "rep", "{}", done.text);
    assert_eq!(segs.last().unwrap()["speaker"], "customer", "{}", done.text);
    assert!(segs[0]["start_s"].as_f64().unwrap() < 6.0);
    assert!(segs.last().unwrap()["start_s"].as_f64().unwrap() >= 6.0);
    assert!(done.json["text"].as_str().unwrap().contains("fake speech"));
    assert_eq!(done.json["model"], "fake-asr");

    // Who sees it.
    let manager = app
        .get(&format!("/v1/calls/{id}"), Some(&app.tokens.manager))
        .await;
    assert_eq!(manager.status, 200, "{}", manager.text);
    let compliance = app
        .get(&format!("/v1/calls/{id}"), Some(&app.tokens.compliance))
        .await;
    assert_eq!(compliance.status, 200);
    assert_error(
        &app.get(&format!("/v1/calls/{id}"), Some(&app.tokens.trainer))
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &app.get(&format!("/v1/calls/{id}"), Some(&app.tokens.other_admin))
            .await,
        404,
        "not_found",
    );
    let rep2 = second_rep(&app).await;
    assert_error(
        &app.get(&format!("/v1/calls/{id}"), Some(&rep2)).await,
        404,
        "not_found",
    );
    // Listings follow the same scopes.
    let mine = app.get("/v1/calls", Some(&app.tokens.rep)).await;
    assert_eq!(
        mine.json["calls"].as_array().unwrap().len(),
        1,
        "{}",
        mine.text
    );
    let theirs = app.get("/v1/calls", Some(&rep2)).await;
    assert_eq!(theirs.json["calls"].as_array().unwrap().len(), 0);
    // Reads are audited.
    let audit = app
        .get("/v1/audit?limit=50", Some(&app.tokens.compliance))
        .await;
    assert!(audit.text.contains("call.read"), "{}", audit.text);
    assert!(audit.text.contains("call.upload"), "{}", audit.text);
}

#[tokio::test]
async fn stereo_call_sqlite() {
    let t = testing::sqlite().await;
    a_stereo_call_is_transcribed_per_speaker_and_scoped_by_role(t.db.clone()).await;
}

#[tokio::test]
async fn stereo_call_postgres() {
    let Some(t) = testing::postgres("stereo_call").await else {
        return;
    };
    a_stereo_call_is_transcribed_per_speaker_and_scoped_by_role(t.db.clone()).await;
}

#[tokio::test]
async fn bad_uploads_get_clear_errors() {
    let t = testing::sqlite().await;
    let data = tempfile::tempdir().unwrap();
    let app = with_speech(
        t.db.clone(),
        data.path(),
        |c| {
            c.speech.speech_max_seconds = 15.0;
            c.server.max_upload_bytes = 2 * 1024 * 1024;
        },
        fake,
    )
    .await;
    let rep = app.tokens.rep.clone();
    let post = |parts: Vec<Part<'static>>| {
        let app = &app;
        let rep = rep.clone();
        async move { post_form(app, "/v1/calls", &rep, &parts, &[]).await }
    };
    // Empty, truncated and corrupt files.
    let r = post(vec![audio(Vec::new())]).await;
    assert_error(&r, 422, "invalid_request");
    assert!(
        r.json["message"].as_str().unwrap().contains("empty"),
        "{}",
        r.text
    );
    let mut truncated = wav(16000, &[tone(16000, 2.0, 300.0, 0.3)]);
    truncated.truncate(30);
    assert_error(&post(vec![audio(truncated)]).await, 422, "invalid_request");
    assert_error(
        &post(vec![audio(
            b"this is not audio at all, just text".repeat(20),
        )])
        .await,
        422,
        "invalid_request",
    );
    // Longer than the limit → 413.
    let long = post(vec![audio(wav(8000, &[tone(8000, 20.0, 300.0, 0.3)]))]).await;
    assert_error(&long, 413, "payload_too_large");
    // Bigger than the upload limit → 413.
    let huge = post(vec![audio(vec![0u8; 3 * 1024 * 1024])]).await;
    assert_error(&huge, 413, "payload_too_large");
    // Wrong channel layout for the file.
    let r = post(vec![
        audio(wav(16000, &[tone(16000, 1.0, 300.0, 0.3)])),
        metadata(json!({"channel_layout": "rep_left"})),
    ])
    .await;
    assert_error(&r, 422, "invalid_request");
    assert!(
        r.json["message"].as_str().unwrap().contains("stereo"),
        "{}",
        r.text
    );
    // Bad metadata.
    let r = post(vec![
        audio(stereo_call()),
        metadata(json!({"channel_layout": "quad"})),
    ])
    .await;
    assert_error(&r, 400, "invalid_json");
    let r = post(vec![
        audio(stereo_call()),
        metadata(json!({"started_at": "yesterday"})),
    ])
    .await;
    assert_error(&r, 422, "invalid_request");
    let r = post(vec![
        audio(stereo_call()),
        metadata(json!({"colour": "red"})),
    ])
    .await;
    assert_error(&r, 400, "invalid_json");
    // No audio, unknown parts.
    assert_error(
        &post(vec![metadata(json!({}))]).await,
        422,
        "invalid_request",
    );
    let r = post(vec![Part {
        name: "video",
        filename: Some("x.mp4"),
        bytes: vec![1, 2, 3],
    }])
    .await;
    assert_error(&r, 422, "invalid_request");
    // Not multipart at all.
    let r = app
        .send_json("POST", "/v1/calls", Some(&rep), &json!({"audio": "x"}))
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    assert!(r.json["code"].is_string(), "{}", r.text);
    // Roles: a trainer may not upload; a manager must name the rep.
    let r = post_form(
        &app,
        "/v1/calls",
        &app.tokens.trainer,
        &[audio(stereo_call())],
        &[],
    )
    .await;
    assert_error(&r, 403, "forbidden");
    let r = post_form(
        &app,
        "/v1/calls",
        &app.tokens.manager,
        &[audio(stereo_call())],
        &[],
    )
    .await;
    assert_error(&r, 422, "invalid_request");
    let r = post_form(
        &app,
        "/v1/calls",
        &app.tokens.manager,
        &[audio(stereo_call()), metadata(json!({"rep": "rep"}))],
        &[],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    // Nothing of the refused uploads was stored.
    let calls = app.get("/v1/calls", Some(&app.tokens.compliance)).await;
    assert_eq!(
        calls.json["calls"].as_array().unwrap().len(),
        1,
        "{}",
        calls.text
    );
    let stored = std::fs::read_dir(data.path().join("audio").join(&app.org_id))
        .unwrap()
        .count();
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn silence_gives_an_empty_transcript() {
    let t = testing::sqlite().await;
    let data = tempfile::tempdir().unwrap();
    let app = with_speech(t.db.clone(), data.path(), |_| {}, fake).await;
    let r = post_form(
        &app,
        "/v1/calls",
        &app.tokens.rep,
        &[audio(wav(16000, &[vec![0.0; 16000 * 3]]))],
        &[],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    let done = settle(&app, &id, &app.tokens.rep).await;
    assert_eq!(done.json["status"], "transcribed", "{}", done.text);
    assert_eq!(done.json["segments"].as_array().unwrap().len(), 0);
    assert_eq!(done.json["text"], "");
}

/// Fails every time, counting its attempts.
struct Broken(Arc<AtomicUsize>);

impl Transcribe for Broken {
    fn transcribe(
        &mut self,
        _: &[f32],
        _: &TranscribeOptions,
    ) -> assist_models::Result<Transcript> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(assist_models::Error::Inference {
            model: "broken".into(),
            reason: "the decoder ran out of luck".into(),
        })
    }

    fn transcribe_window(
        &mut self,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> assist_models::Result<Transcript> {
        self.transcribe(samples, opts)
    }
}

#[tokio::test]
async fn a_failing_transcription_is_retried_then_dead_lettered_with_its_reason() {
    let t = testing::sqlite().await;
    let data = tempfile::tempdir().unwrap();
    let tries = Arc::new(AtomicUsize::new(0));
    let counter = tries.clone();
    let app = with_speech(
        t.db.clone(),
        data.path(),
        |c| c.jobs.job_max_attempts = 3,
        move || Box::new(Broken(counter)) as Box<dyn Transcribe>,
    )
    .await;
    let r = post_form(
        &app,
        "/v1/calls",
        &app.tokens.rep,
        &[audio(wav(16000, &[tone(16000, 2.0, 300.0, 0.3)]))],
        &[],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    let done = settle(&app, &id, &app.tokens.rep).await;
    assert_eq!(done.json["status"], "failed", "{}", done.text);
    assert_eq!(done.json["attempts"], 3);
    assert!(
        done.json["last_error"]
            .as_str()
            .unwrap()
            .contains("ran out of luck"),
        "{}",
        done.text
    );
    assert_eq!(tries.load(Ordering::SeqCst), 3);
    assert!(done.json.get("segments").is_none());
}

#[tokio::test]
async fn without_a_speech_model_uploads_say_what_to_fetch() {
    let t = testing::sqlite().await;
    let app = common::setup(t.db.clone()).await;
    let r = post_form(
        &app,
        "/v1/calls",
        &app.tokens.rep,
        &[audio(stereo_call())],
        &[],
    )
    .await;
    assert_error(&r, 503, "model_missing");
    assert!(
        r.text.contains("assist models fetch --only asr"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn the_openai_shaped_endpoint_answers_in_each_format() {
    let t = testing::sqlite().await;
    let data = tempfile::tempdir().unwrap();
    let app = with_speech(t.db.clone(), data.path(), |_| {}, fake).await;
    let file = || Part {
        name: "file",
        filename: Some("a.wav"),
        bytes: wav(16000, &[tone(16000, 7.0, 300.0, 0.3)]),
    };
    let field = |name: &'static str, v: &str| Part {
        name,
        filename: None,
        bytes: v.as_bytes().to_vec(),
    };
    let path = "/v1/audio/transcriptions";
    let r = post_form(
        &app,
        path,
        &app.tokens.rep,
        &[file(), field("model", "whisper-1")],
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["text"], "fake speech 1 fake speech 2");
    let r = post_form(
        &app,
        path,
        &app.tokens.rep,
        &[
            file(),
            field("model", "whisper-1"),
            field("response_format", "text"),
        ],
        &[],
    )
    .await;
    assert_eq!(r.text, "fake speech 1 fake speech 2\n");
    let r = post_form(
        &app,
        path,
        &app.tokens.rep,
        &[
            file(),
            field("model", "whisper-1"),
            field("response_format", "srt"),
        ],
        &[],
    )
    .await;
    assert!(
        r.text
            .starts_with("1\n00:00:00,000 --> 00:00:05,000\nfake speech 1\n"),
        "{}",
        r.text
    );
    let r = post_form(
        &app,
        path,
        &app.tokens.rep,
        &[
            file(),
            field("model", "whisper-1"),
            field("response_format", "verbose_json"),
            field("language", "en"),
        ],
        &[],
    )
    .await;
    assert_eq!(r.json["language"], "english", "{}", r.text);
    assert_eq!(r.json["segments"].as_array().unwrap().len(), 2);
    assert_eq!(r.json["duration"], 7.0);
    // Bad requests.
    assert_error(
        &post_form(&app, path, &app.tokens.rep, &[file()], &[]).await,
        422,
        "invalid_request",
    );
    assert_error(
        &post_form(
            &app,
            path,
            &app.tokens.rep,
            &[
                file(),
                field("model", "whisper-1"),
                field("response_format", "xml"),
            ],
            &[],
        )
        .await,
        422,
        "invalid_request",
    );
    assert_error(
        &post_form(
            &app,
            path,
            &app.tokens.rep,
            &[
                file(),
                field("model", "whisper-1"),
                field("temperature", "7"),
            ],
            &[],
        )
        .await,
        422,
        "invalid_request",
    );
    assert_error(
        &post_form(
            &app,
            path,
            &app.tokens.rep,
            &[field("model", "whisper-1")],
            &[],
        )
        .await,
        422,
        "invalid_request",
    );
    // No token, no transcription.
    let (ct, body) = form(&[file(), field("model", "whisper-1")]);
    let r = app.send_raw("POST", path, None, Some(&ct), body).await;
    assert_error(&r, 401, "unauthorized");
}
