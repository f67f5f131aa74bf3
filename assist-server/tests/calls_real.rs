//! A real stereo call through the API with the real Whisper base model: the
//! rep's and the customer's words come back in their own segments.
//! Skips (saying so) unless `asr` is ready in `$ASSIST_MODEL_DIR` or
//! `~/.cache/assist/models`; `scripts/test` fetches it first.

mod common;

use std::time::Duration;

use assist_server::db::testing;
use assist_server::jobs::JobRunner;
use assist_server::speech::SpeechService;
use assist_testkit::{Kind, skip};
use axum::body::Body;
use axum::http::Request;
use common::setup_with;
use tokio_util::sync::CancellationToken;

const SAMPLE_CALL: &[u8] = include_bytes!("../../eval/data/calls/sample-call-en.ogg");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stereo_sample_call_is_transcribed_by_whisper_base() {
    let root = std::env::var_os("ASSIST_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(assist_server::config::default_model_dir);
    let store =
        assist_models::store::ModelStore::new(&root, assist_models::store::StoreOptions::default())
            .unwrap();
    let Ok(dir) = store.ready_path("asr") else {
        skip(
            Kind::Model,
            format!(
                "asr is not ready in {} (assist models fetch --only asr)",
                root.display()
            ),
        );
        return;
    };
    let t = testing::sqlite().await;
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_path_buf();
    let mut app = setup_with(t.db.clone(), move |c| {
        c.storage.data_dir = data_dir;
        c.jobs.job_poll_ms = 50;
    })
    .await;
    let config = app.state.config.clone();
    let speech = tokio::task::spawn_blocking(move || SpeechService::open(&config, &dir, "asr"))
        .await
        .unwrap()
        .unwrap();
    app.state.speech = Some(speech);
    app.router = assist_server::http::app::app(app.state.clone());

    let boundary = "sample-call-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n\
         {{\"channel_layout\": \"rep_left\", \"language\": \"en\"}}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"call.ogg\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(SAMPLE_CALL);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = app
        .request(
            Request::post("/v1/calls")
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .header("authorization", format!("Bearer {}", app.tokens.rep))
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();

    let stop = CancellationToken::new();
    let runner = JobRunner::new(
        app.state.jobs.clone(),
        app.state.job_handlers().unwrap(),
        Duration::from_millis(50),
    );
    let handles = runner.spawn(1, stop.clone());
    let mut done = None;
    for _ in 0..1200 {
        let r = app
            .get(&format!("/v1/calls/{id}"), Some(&app.tokens.rep))
            .await;
        if matches!(r.json["status"].as_str(), Some("transcribed" | "failed")) {
            done = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.cancel();
    for h in handles {
        let _ = h.await;
    }
    let done = done.expect("transcription did not finish in 5 minutes");
    assert_eq!(done.json["status"], "transcribed", "{}", done.text);
    let text_of = |who: &str| -> String {
        done.json["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["speaker"] == who)
            .map(|s| s["text"].as_str().unwrap().to_lowercase())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rep = text_of("rep");
    let customer = text_of("customer");
    println!("rep: {rep}\ncustomer: {customer}");
    // espeak-ng at telephone band is hard on names ("Anna") and on
    // "rebate"; these words come through reliably.
    for word in ["cloud crm", "trial account", "yearly", "monthly"] {
        assert!(rep.contains(word), "rep missing `{word}`: {rep}");
    }
    for word in ["price", "too high", "20", "week"] {
        assert!(
            customer.contains(word),
            "customer missing `{word}`: {customer}"
        );
    }
    assert!(
        !rep.contains("rebate"),
        "the customer's words leaked into the rep's channel: {rep}"
    );
    // The turns alternate in time: rep, customer, rep, customer.
    let speakers: Vec<&str> = done.json["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["speaker"].as_str().unwrap())
        .collect();
    assert_eq!(speakers.first(), Some(&"rep"), "{speakers:?}");
    assert_eq!(speakers.last(), Some(&"customer"), "{speakers:?}");
}
