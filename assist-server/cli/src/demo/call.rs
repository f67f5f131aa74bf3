//! Step 7 of the demo, after the live call: the recording uploaded by the
//! phone's outbox, transcribed per speaker, risk-checked and analysed.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use super::client::Client;

/// A two-party sample call (rep left, customer right; espeak-ng voices,
/// telephone band), made by `eval/data/calls/make-sample.sh`.
pub(super) const SAMPLE_CALL: &[u8] =
    include_bytes!("../../../../eval/data/calls/sample-call-en.ogg");

/// A multipart body with the recording and its metadata.
pub(super) async fn recorded_call(
    client: &Client,
    rep: &str,
    manager: &str,
    scratch: &std::path::Path,
) -> anyhow::Result<()> {
    println!(
        "[7/7] a live call on the rep's work phone (device SDK → WebSocket /v1/live), then its recording:"
    );
    let id = super::live::run(&client.base, rep, scratch, SAMPLE_CALL).await?;
    let started = Instant::now();
    let v = loop {
        let (s, v, _) = client
            .call(
                Method::GET,
                &format!("/v1/calls/{id}"),
                Some(manager),
                None,
                &[],
            )
            .await?;
        let status = v["status"].as_str().unwrap_or("").to_string();
        if s != StatusCode::OK || status == "transcribed" || status == "failed" {
            break v;
        }
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("the call was not transcribed within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    println!(
        "  GET /v1/calls/{id} (manager 李强) → {} after {:.1} s ({}, language {})",
        v["status"].as_str().unwrap_or(""),
        started.elapsed().as_secs_f64(),
        v["model"].as_str().unwrap_or("-"),
        v["detected_language"].as_str().unwrap_or("-"),
    );
    if let Some(err) = v["last_error"].as_str() {
        println!("      last error: {err}");
    }
    for seg in v["segments"].as_array().cloned().unwrap_or_default() {
        println!(
            "      [{:>5.1}–{:>5.1}] {:<8} {}",
            seg["start_s"].as_f64().unwrap_or(0.0),
            seg["end_s"].as_f64().unwrap_or(0.0),
            seg["speaker"].as_str().unwrap_or(""),
            seg["text"].as_str().unwrap_or("")
        );
    }
    call_analysis(client, &id, rep).await?;
    let (s, alerts, _) = client
        .call(
            Method::GET,
            &format!("/v1/alerts?call_id={id}"),
            Some(manager),
            None,
            &[],
        )
        .await?;
    let alerts = alerts.as_array().cloned().unwrap_or_default();
    println!(
        "  GET /v1/alerts?call_id={id} (manager 李强) → {}: {}",
        s.as_u16(),
        if alerts.is_empty() {
            "no risk alerts in this call (the transcript was risk-checked)".to_string()
        } else {
            alerts
                .iter()
                .map(|a| {
                    format!(
                        "{} «{}»",
                        a["category"].as_str().unwrap_or(""),
                        a["snippet"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        }
    );
    Ok(())
}

/// Wait for the call's analysis (LLM + rules) and print it.
pub(super) async fn call_analysis(client: &Client, id: &str, rep: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let v = loop {
        let (s, v, _) = client
            .call(
                Method::GET,
                &format!("/v1/calls/{id}/analysis"),
                Some(rep),
                None,
                &[],
            )
            .await?;
        if s == StatusCode::OK {
            break v;
        }
        if started.elapsed() > Duration::from_secs(600) {
            println!("  GET /v1/calls/{id}/analysis → not ready within 10 minutes");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let llm = &v["llm"];
    println!(
        "  GET /v1/calls/{id}/analysis (rep 张伟) → ready {:.1} s after the transcript; LLM {} ({}), {} prompt + {} generated tokens in {:.1} s",
        started.elapsed().as_secs_f64(),
        llm["model"].as_str().unwrap_or("-"),
        llm["status"].as_str().unwrap_or("-"),
        llm["prompt_tokens"],
        llm["generated_tokens"],
        llm["ms"].as_f64().unwrap_or(0.0) / 1000.0
    );
    println!("      summary: {}", v["summary"].as_str().unwrap_or(""));
    for t in v["tasks"].as_array().cloned().unwrap_or_default() {
        println!(
            "      task ({}, {}): {} — due {} «{}»",
            t["owner"].as_str().unwrap_or(""),
            t["origin"].as_str().unwrap_or(""),
            t["title"].as_str().unwrap_or(""),
            t["due"].as_str().unwrap_or("-"),
            t["source_quote"].as_str().unwrap_or("")
        );
    }
    for r in v["risk_tags"].as_array().cloned().unwrap_or_default() {
        println!(
            "      risk tag ({}): {} «{}»",
            r["origin"].as_str().unwrap_or(""),
            r["category"].as_str().unwrap_or(""),
            r["evidence_quote"].as_str().unwrap_or("")
        );
    }
    let c = &v["coaching"];
    println!(
        "      coaching: {}",
        serde_json::to_string(c)
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect::<String>()
    );
    Ok(())
}
