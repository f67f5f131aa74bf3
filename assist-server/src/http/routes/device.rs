//! `POST /v1/device/events`: what a phone's outbox sends besides chats and
//! recordings — suggestion taps made offline, local guard blocks, privacy
//! and outbox-drop counts. Stored once per (device, event id).

use assist_protocol::Role;
use assist_protocol::device::{
    DeviceEventBatch, DeviceEventBatchResult, DeviceEventKind, DeviceEventResult,
};
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use axum::{Json, Router};

use crate::caller::Caller;
use crate::db::device::NewDeviceEvent;
use crate::error::ApiError;
use crate::http::extract::Json as AppJson;
use crate::state::AppState;
use crate::time::now_ms;

/// Most events in one batch.
pub const MAX_EVENTS: usize = 500;
const MAX_BATCH_BYTES: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/device/events",
        post(post_events).layer(DefaultBodyLimit::max(MAX_BATCH_BYTES)),
    )
}

/// 403 unless the caller is a rep's work phone; returns the device id.
pub(crate) fn device_of(caller: &Caller) -> Result<String, ApiError> {
    caller.require(&[Role::Rep])?;
    caller.device_id.clone().ok_or_else(|| {
        ApiError::forbidden("this needs a work phone's device token, not a user token")
    })
}

/// Ids the phone chooses must pass [`assist_protocol::is_valid_client_id`].
pub(crate) fn check_client_id(what: &str, id: &str) -> Result<(), ApiError> {
    if assist_protocol::is_valid_client_id(id) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{what} `{}` must be {}",
            id.chars().take(64).collect::<String>(),
            assist_protocol::CLIENT_ID_RULE
        )))
    }
}

fn kind_name(kind: &DeviceEventKind) -> &'static str {
    match kind {
        DeviceEventKind::SuggestionFeedback { .. } => "suggestion_feedback",
        DeviceEventKind::GuardBlocked { .. } => "guard_blocked",
        DeviceEventKind::PrivacyExcluded { .. } => "privacy_excluded",
        DeviceEventKind::OutboxDropped { .. } => "outbox_dropped",
    }
}

async fn post_events(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(batch): AppJson<DeviceEventBatch>,
) -> Result<Json<DeviceEventBatchResult>, ApiError> {
    let device_id = device_of(&caller)?;
    if batch.events.is_empty() {
        return Err(ApiError::invalid("`events` is empty"));
    }
    if batch.events.len() > MAX_EVENTS {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} events in one batch; send at most {MAX_EVENTS}",
            batch.events.len()
        )));
    }
    let mut rows = Vec::with_capacity(batch.events.len());
    let mut seen = std::collections::HashMap::new();
    for (i, e) in batch.events.iter().enumerate() {
        check_client_id(&format!("events[{i}].event_id"), &e.event_id)?;
        let occurred_at = crate::time::parse_rfc3339(&e.occurred_at).ok_or_else(|| {
            ApiError::invalid(format!(
                "events[{i}].occurred_at `{}` is not an RFC 3339 time",
                e.occurred_at.chars().take(64).collect::<String>()
            ))
        })?;
        let feedback = match &e.kind {
            DeviceEventKind::SuggestionFeedback {
                suggestion_id,
                action,
            } => Some((
                suggestion_id.clone(),
                serde_json::to_value(action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            )),
            DeviceEventKind::GuardBlocked { decision, .. }
                if decision != "block" && decision != "warn" =>
            {
                return Err(ApiError::invalid(format!(
                    "events[{i}].decision `{decision}` must be `block` or `warn`"
                )));
            }
            DeviceEventKind::PrivacyExcluded { item, .. } if item != "call" && item != "chat" => {
                return Err(ApiError::invalid(format!(
                    "events[{i}].item `{item}` must be `call` or `chat`"
                )));
            }
            _ => None,
        };
        let payload = serde_json::to_string(e).map_err(ApiError::internal)?;
        if let Some(first) = seen.get(e.event_id.as_str()) {
            // Repeated within the batch: the first one counts, if it is the
            // same event.
            let f: &NewDeviceEvent = &rows[*first];
            if f.payload != payload {
                return Err(ApiError::IdempotencyConflict(format!(
                    "events[{i}] reuses event_id `{}` of an earlier event in this batch for a different event",
                    e.event_id
                )));
            }
            continue;
        }
        seen.insert(e.event_id.as_str(), rows.len());
        rows.push(NewDeviceEvent {
            event_id: e.event_id.clone(),
            kind: kind_name(&e.kind).to_string(),
            payload,
            occurred_at,
            feedback,
        });
    }
    let new = state
        .db
        .insert_device_events(
            caller.org_id(),
            &caller.user.id,
            &device_id,
            &rows,
            now_ms(),
        )
        .await?;
    let fresh: std::collections::HashSet<&str> = rows
        .iter()
        .zip(&new)
        .filter(|(_, n)| **n)
        .map(|(r, _)| r.event_id.as_str())
        .collect();
    let mut first = std::collections::HashSet::new();
    let results: Vec<DeviceEventResult> = batch
        .events
        .iter()
        .map(|e| {
            let counted = first.insert(e.event_id.as_str()) && fresh.contains(e.event_id.as_str());
            DeviceEventResult {
                event_id: e.event_id.clone(),
                duplicate: !counted,
            }
        })
        .collect();
    let accepted = results.iter().filter(|r| !r.duplicate).count();
    metrics::counter!("assist_device_events_total").increment(accepted as u64);
    Ok(Json(DeviceEventBatchResult {
        accepted,
        duplicates: results.len() - accepted,
        results,
    }))
}
