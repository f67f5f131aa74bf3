//! The demo's live call: the rep's phone, through the device SDK, streams
//! the sample stereo call to `/v1/live` while two Chinese turns arrive as
//! text (as from on-device recognition), prints what comes back with the time
//! it arrived, taps a suggestion, then uploads the recording through the
//! SDK's durable outbox (resumable chunks). The upload becomes the call the
//! live session reserved, which the demo then follows through transcription
//! and analysis.

use std::path::Path;
use std::time::{Duration, Instant};

use assist_device_sdk::live::{LiveEvent, LiveOptions, LiveSession};
use assist_device_sdk::{Client, ClientConfig, NewRecording, Outbox, OutboxConfig};
use assist_models::audio::{DecodeOptions, decode_bytes};
use assist_protocol::device::UploadMetadata;
use assist_protocol::live::{
    AUDIO_CHANNEL_CUSTOMER, AUDIO_CHANNEL_REP, AudioFormat, AudioLayout, FeedbackAction,
    ServerMessage, Speaker, Start,
};

/// The client call id the live session and the upload share.
pub const CLIENT_CALL_ID: &str = "demo-live-call-1";

fn to_pcm16(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
        .collect()
}

/// Run the live call; returns the id of the call the recording became.
pub async fn run(
    base: &str,
    device_token: &str,
    scratch: &Path,
    recording: &[u8],
) -> anyhow::Result<String> {
    let outbox = Outbox::open(scratch.join("phone-outbox"), OutboxConfig::default())?;
    let client = Client::new(ClientConfig::new(base, device_token), outbox)?;
    let audio = decode_bytes(recording, &DecodeOptions::default())?;
    anyhow::ensure!(audio.channels.len() == 2, "the sample call must be stereo");
    let start = Start {
        client_call_id: CLIENT_CALL_ID.into(),
        language: Some("en".into()),
        audio: AudioFormat::pcm16(AudioLayout::PerSpeaker),
        product: None,
        top_k: Some(2),
        resume: None,
    };
    let began = Instant::now();
    let (session, mut events) =
        LiveSession::connect(&client, start, LiveOptions::default()).await?;
    println!(
        "  connected to /v1/live as 张伟's phone: session {} (speech on the server: {})",
        session.session_id(),
        session.ready().speech
    );

    // Two turns as text, as a phone with on-device recognition sends them.
    session.send_text(Speaker::Customer, "你们这个价格太贵了，还能再优惠点吗？")?;
    session.send_text(Speaker::Rep, "要不你加我私人微信，返点私下转给你")?;

    // The recording, both legs at once, paced by the SDK and the server.
    let sender = {
        let session = session.clone();
        let rep = to_pcm16(&audio.channels[0]);
        let customer = to_pcm16(&audio.channels[1]);
        tokio::spawn(async move {
            let step = 3_200; // 200 ms
            for i in (0..rep.len().max(customer.len())).step_by(step) {
                // At real time, as a phone in a call sends it: each 200 ms
                // frame once it has been spoken.
                let due = began + Duration::from_secs_f64((i + step) as f64 / 16_000.0);
                tokio::time::sleep_until(due.into()).await;
                for (ch, pcm) in [
                    (AUDIO_CHANNEL_REP, &rep),
                    (AUDIO_CHANNEL_CUSTOMER, &customer),
                ] {
                    if i < pcm.len() {
                        session
                            .send_audio(ch, &pcm[i..(i + step).min(pcm.len())])
                            .await?;
                    }
                }
            }
            session.end()?;
            anyhow::Ok(())
        })
    };

    let mut tapped = false;
    let mut partials = 0u32;
    while let Some(event) = tokio::time::timeout(Duration::from_secs(600), events.next())
        .await
        .map_err(|_| anyhow::anyhow!("no event from the live session for 10 minutes"))?
    {
        let t = began.elapsed().as_secs_f64();
        match event {
            LiveEvent::Message(ServerMessage::Partial(_)) => partials += 1,
            LiveEvent::Message(ServerMessage::Final(p)) => {
                // Audio finals are whole sentences, cut where the speaker
                // paused; the audio is sent at real time from `began`, so
                // `t - end_s` is how long after the sentence ended it came.
                let lag = if p.end_s > 0.0 {
                    format!(
                        " (said {:.1}–{:.1} s, here {:.1} s after it ended)",
                        p.start_s,
                        p.end_s,
                        t - p.end_s
                    )
                } else {
                    " (text turn)".to_string()
                };
                println!(
                    "  [{t:6.2}s] final      {:<8} {}{lag}",
                    p.speaker.as_str(),
                    p.text
                );
            }
            LiveEvent::Message(ServerMessage::Suggestions { suggestions, .. }) => {
                for s in &suggestions {
                    println!(
                        "  [{t:6.2}s] suggestion → {} (score {:.3}; bm25 #{}, vector #{})",
                        s.title,
                        s.score,
                        s.bm25_rank.map_or("-".into(), |r| r.to_string()),
                        s.vector_rank.map_or("-".into(), |r| r.to_string())
                    );
                }
                if !tapped && let Some(first) = suggestions.first() {
                    session.feedback(&first.suggestion_id, FeedbackAction::Used)?;
                    tapped = true;
                }
            }
            LiveEvent::Message(ServerMessage::Risk(r)) => println!(
                "  [{t:6.2}s] risk       {} {} «{}»{} — and an alert on the manager's stream",
                r.category,
                r.severity,
                r.evidence,
                r.suppressed
                    .map(|s| format!(" (suppressed: {s})"))
                    .unwrap_or_default()
            ),
            LiveEvent::Message(ServerMessage::FeedbackAck { duplicate, .. }) => {
                println!(
                    "  [{t:6.2}s] tap «used» on the first suggestion stored (duplicate: {duplicate})"
                )
            }
            LiveEvent::Message(ServerMessage::Dropped { partials: n }) => {
                println!("  [{t:6.2}s] {n} partials dropped (the phone read slowly)")
            }
            LiveEvent::Message(ServerMessage::Error { code, message }) => {
                println!("  [{t:6.2}s] error {code}: {message}")
            }
            LiveEvent::Message(ServerMessage::Ended {
                finals,
                suggestions,
                risks,
                ..
            }) => println!(
                "  [{t:6.2}s] ended: {finals} finals, {suggestions} suggestions, {risks} risks ({partials} partials shown on the way)"
            ),
            LiveEvent::Message(_) => {}
            other => println!("  [{t:6.2}s] {other:?}"),
        }
    }
    sender.await??;
    session.finish().await?;

    // After the call: the recording goes through the outbox, in resumable chunks.
    let file = scratch.join("demo-live-call.ogg");
    std::fs::write(&file, recording)?;
    client.outbox().enqueue_recording(
        &file,
        NewRecording {
            upload_key: Some(CLIENT_CALL_ID.into()),
            metadata: UploadMetadata {
                customer_ref: Some("CRM-20931".into()),
                direction: Some("outbound".into()),
                channel_layout: Some("rep_left".into()),
                ..UploadMetadata::default()
            },
        },
    )?;
    let report = client.flush().await?;
    let call_id = report
        .calls
        .iter()
        .find(|(key, _)| key == CLIENT_CALL_ID)
        .map(|(_, id)| id.clone())
        .ok_or_else(|| anyhow::anyhow!("the recording was not uploaded: {report:?}"))?;
    println!(
        "  outbox: recording uploaded in {} KiB chunks → call {call_id} (the id the live session reserved)",
        client.config().chunk_bytes / 1024
    );
    Ok(call_id)
}
