//! `POST /v1/audio/transcriptions`: the OpenAI API's shape, so existing
//! clients and SDKs work against the local Whisper model.
//!
//! Form fields: `file` (required), `model` (`whisper-1` or any name: the one
//! loaded model answers; the response says which), `language`, `prompt`,
//! `response_format` (`json` default, `text`, `srt`, `vtt`, `verbose_json`),
//! `temperature` (0 = greedy with the usual fallback; above 0 starts there).
//! Synchronous: the answer comes when the transcription is done (long
//! deadline, `[speech] speech_request_timeout_secs`). Nothing is stored but
//! the audit entry.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::caller::Caller;
use crate::db::calls::ChannelLayout;
use crate::error::ApiError;
use crate::http::extract::multipart_err;
use crate::speech::formats::{ResponseFormat, render};
use crate::speech::{check_language, decode_upload, transcribe_options};
use crate::state::AppState;

pub fn router(max_upload_bytes: usize) -> Router<AppState> {
    Router::new().route(
        "/audio/transcriptions",
        post(transcribe).layer(DefaultBodyLimit::max(max_upload_bytes)),
    )
}

async fn transcribe(
    State(state): State<AppState>,
    caller: Caller,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    let mut file = None;
    let mut model = None;
    let mut language = None;
    let mut prompt = None;
    let mut format = ResponseFormat::Json;
    let mut temperature = 0.0f64;
    while let Some(field) = form.next_field().await.map_err(multipart_err)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            file = Some(field.bytes().await.map_err(multipart_err)?);
            continue;
        }
        let value = field.text().await.map_err(multipart_err)?;
        match name.as_str() {
            "model" => model = Some(value),
            "language" if !value.trim().is_empty() => language = Some(check_language(&value)?),
            "language" => {}
            "prompt" => prompt = Some(value).filter(|p| !p.trim().is_empty()),
            "response_format" => {
                format = ResponseFormat::parse(value.trim()).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "response_format `{value}` is not one of json, text, srt, vtt, verbose_json"
                    ))
                })?
            }
            "temperature" => {
                temperature = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|t| (0.0..=1.0).contains(t))
                    .ok_or_else(|| {
                        ApiError::invalid(format!("temperature `{value}` must be between 0 and 1"))
                    })?
            }
            // Accepted for compatibility; segments always carry timestamps.
            "timestamp_granularities[]" | "timestamp_granularities" | "stream" => {}
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown form field `{other}` (file, model, language, prompt, response_format, temperature)"
                )));
            }
        }
    }
    let bytes = file.ok_or_else(|| ApiError::invalid("no `file` part in the form"))?;
    if model.as_deref().is_none_or(|m| m.trim().is_empty()) {
        return Err(ApiError::invalid(
            "`model` is required (any name, e.g. whisper-1: the loaded model answers)",
        ));
    }
    let Some(speech) = state.speech.clone() else {
        return Err(ApiError::ModelMissing(format!(
            "speech recognition is off: run `assist models fetch --only {}` and restart",
            state.config.speech.speech_model
        )));
    };
    let audio = decode_upload(&state.config, bytes).await?;
    let mut opts = transcribe_options(&state.config, language);
    opts.initial_prompt = prompt;
    opts.temperatures.retain(|t| *t >= temperature);
    if opts.temperatures.is_empty() {
        opts.temperatures = vec![temperature];
    }
    let transcript = speech.transcribe(audio, ChannelLayout::Mono, opts).await?;
    state
        .db
        .audit(caller.audit("audio.transcribe", "audio", None))
        .await?;
    let (content_type, body) = render(&transcript, format, speech.model());
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}
