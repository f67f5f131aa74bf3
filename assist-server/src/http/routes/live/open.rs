//! Starting or resuming a connection's session.

use super::*;

/// Check what `start` declares; a close code and reason otherwise.
pub(super) fn check_start(state: &AppState, start: &Start) -> Result<(), (u16, String)> {
    if start.audio.layout != AudioLayout::None
        && (start.audio.encoding != "pcm_s16le" || !SAMPLE_RATES.contains(&start.audio.sample_rate))
    {
        return Err((
            close::UNSUPPORTED_AUDIO,
            format!(
                "audio {} at {} Hz is not supported; send pcm_s16le at {SAMPLE_RATE} Hz (or 8000 Hz telephone audio)",
                start.audio.encoding, start.audio.sample_rate
            ),
        ));
    }
    check_client_id("client_call_id", &start.client_call_id)
        .map_err(|e| (close::BAD_START, e.to_string()))?;
    if let Some(l) = &start.language {
        crate::speech::check_language(l).map_err(|e| (close::BAD_START, e.to_string()))?;
    }
    if let Some(k) = start.top_k
        && !(1..=10).contains(&k)
    {
        return Err((close::BAD_START, "top_k must be between 1 and 10".into()));
    }
    let _ = state;
    Ok(())
}

/// Resume the named session, continue this device's session of the same
/// call, or begin a new one. Returns it, whether it was resumed and the
/// phone's last seen `seq`.
pub(super) async fn open_session(
    state: &AppState,
    caller: &Caller,
    device_id: &str,
    start: Start,
) -> Result<(Arc<Mutex<Session>>, bool, u64), (u16, String)> {
    if let Some(resume) = &start.resume {
        let Some(slot) = state.live.get(&resume.session_id) else {
            return Err((
                close::UNKNOWN_SESSION,
                format!(
                    "no live session `{}` here (ended or expired); start anew",
                    resume.session_id
                ),
            ));
        };
        {
            let s = slot.lock().await;
            if s.row.device_id != device_id || s.ended {
                return Err((
                    close::UNKNOWN_SESSION,
                    format!("no live session `{}` for this device", resume.session_id),
                ));
            }
        }
        return Ok((slot, true, resume.last_seq));
    }
    if let Some(slot) = state.live.find(device_id, &start.client_call_id).await {
        // The same call again without resume: a fresh event stream.
        return Ok((slot, false, 0));
    }
    if start.audio.layout != AudioLayout::None
        && let Some(why) = state.live.asr.saturated(state.config.live.live_admit_busy)
    {
        // Admission follows measured speech capacity: a call that cannot be
        // served in time is refused before it starts, not slowed for all.
        metrics::counter!("assist_live_sessions_refused_total").increment(1);
        return Err((
            close::OVERLOADED,
            format!("{why}; try again shortly, or send text turns"),
        ));
    }
    let top_k = start
        .top_k
        .unwrap_or(state.config.live.live_top_k)
        .clamp(1, 10);
    let layout = match start.audio.layout {
        AudioLayout::None => "none",
        AudioLayout::Mixed => "mixed",
        AudioLayout::PerSpeaker => "per_speaker",
    };
    let row = LiveSessionRow {
        id: format!("live_{}", uuid::Uuid::now_v7().simple()),
        org_id: caller.org_id().to_string(),
        rep_user_id: caller.user.id.clone(),
        team_id: caller.user.team_id.clone(),
        device_id: device_id.to_string(),
        client_call_id: start.client_call_id.clone(),
        call_id: format!("call_{}", uuid::Uuid::now_v7().simple()),
        language: start.language.clone(),
        audio_layout: layout.into(),
        started_at: now_ms(),
        ended_at: None,
        end_reason: None,
    };
    let internal = |e: crate::db::DbError| {
        tracing::error!(error = %e, "cannot open a live session");
        (
            close::OVERLOADED,
            "the server could not open the session; retry".to_string(),
        )
    };
    let (row, created) = state.db.create_live_session(&row).await.map_err(internal)?;
    if row.ended_at.is_some() {
        return Err((
            close::BAD_START,
            format!(
                "call `{}` already ended; use a new client_call_id",
                row.client_call_id
            ),
        ));
    }
    let vad = state.speech.as_ref().and_then(|s| s.vad());
    let mut session = Session::new(&state.config, vad, row, caller.clone(), start, top_k);
    if !created {
        // This node restarted mid-call: continue the stored numbering.
        let segments = state
            .db
            .live_segments(&session.row.id)
            .await
            .map_err(internal)?;
        session.skip_to(segments.last().map_or(0, |s| s.seq as u64) + 1);
    }
    metrics::counter!("assist_live_sessions_total").increment(1);
    Ok((state.live.insert(session), false, 0))
}
