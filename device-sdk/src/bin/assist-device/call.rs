//! `assist-device call`: stream a recording as a live call, print what the
//! server says as it says it, then queue the recording for upload and flush.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use assist_device_sdk::protocol::device::UploadMetadata;
use assist_device_sdk::protocol::live::{
    AUDIO_CHANNEL_CUSTOMER, AUDIO_CHANNEL_MIXED, AUDIO_CHANNEL_REP, AudioFormat, AudioLayout,
    ServerMessage, Start,
};
use assist_device_sdk::{
    Client, Enqueued, Error, LiveEvent, LiveOptions, LiveSession, NewRecording, Party, Privacy,
};
use clap::{Args, ValueEnum};

use crate::outbox::print_report;
use crate::{Ctx, audio};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Layout {
    Mixed,
    #[value(name = "rep_left")]
    RepLeft,
    #[value(name = "rep_right")]
    RepRight,
}

#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// The recording (wav, mp3, m4a, ogg, flac …).
    #[arg(long)]
    audio: PathBuf,
    /// Send at real speed (default: as fast as the server reads).
    #[arg(long)]
    realtime: bool,
    /// mixed: one channel with both sides; rep_left/rep_right: stereo, the rep on that side.
    #[arg(long, value_enum, default_value = "mixed")]
    layout: Layout,
    /// zh or en (default: the server detects it).
    #[arg(long, value_parser = ["zh", "en"])]
    language: Option<String>,
    /// The phone's id for the call (links the live session and the recording).
    #[arg(long)]
    client_call_id: Option<String>,
    /// Do not queue the recording for upload.
    #[arg(long)]
    no_upload: bool,
    /// The other side's number (checked against the privacy list).
    #[arg(long)]
    phone: Option<String>,
}

/// One PCM stream per live-protocol audio channel.
type Streams = Vec<(u8, Vec<i16>)>;

pub(crate) async fn run(ctx: &Ctx, args: CallArgs) -> Result<ExitCode> {
    let client = ctx.client()?;
    if excluded_by_privacy(ctx, &args)? {
        return Ok(ExitCode::SUCCESS);
    }
    let path = args.audio.clone();
    let channels = tokio::task::spawn_blocking(move || audio::decode_16k(&path)).await??;
    let (layout, streams) = streams_for(&args, &channels)?;
    let seconds = streams[0].1.len() as f64 / f64::from(audio::RATE);
    let call_id = args
        .client_call_id
        .clone()
        .unwrap_or_else(|| format!("call-{}", uuid_like()));
    println!(
        "call {call_id}: {} ({seconds:.1} s, {} channel(s) sent)",
        args.audio.display(),
        streams.len()
    );
    let started_at = jiff::Timestamp::now().to_string();
    let start = Start {
        client_call_id: call_id.clone(),
        language: args.language.clone(),
        audio: AudioFormat::pcm16(layout),
        product: None,
        top_k: None,
        resume: None,
    };
    let live = stream_call(&client, start, &streams, args.realtime).await;
    if let Err(e) = &live {
        eprintln!("live session: {e:#}");
    }
    let code = if live.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if args.no_upload {
        return Ok(code);
    }
    let queued = queue_recording(ctx, &args, call_id, started_at).await?;
    println!("recording queued for upload as {}", queued.key);
    let report = client.flush().await?;
    print_report(&report);
    Ok(code)
}

/// Whether the other side's number is on the privacy list; if so the call is
/// only counted, and the rep told so.
fn excluded_by_privacy(ctx: &Ctx, args: &CallArgs) -> Result<bool> {
    let privacy = Privacy::new(&ctx.outbox);
    if let Some(p) = &args.phone
        && let Some(why) = privacy.exclusion(&Party {
            phone: Some(p),
            ..Party::default()
        })?
    {
        privacy.count_excluded(assist_device_sdk::PrivateItem::Call)?;
        println!(
            "excluded by the privacy list ({why:?}): not streamed, not uploaded; only counted"
        );
        return Ok(true);
    }
    Ok(false)
}

/// The streams to send for `--layout`: all channels mixed into one, or the
/// rep's and the customer's side of a stereo recording.
fn streams_for(args: &CallArgs, channels: &[Vec<f32>]) -> Result<(AudioLayout, Streams)> {
    match args.layout {
        Layout::Mixed => Ok((
            AudioLayout::Mixed,
            vec![(AUDIO_CHANNEL_MIXED, audio::to_i16(&audio::mix(channels)))],
        )),
        Layout::RepLeft | Layout::RepRight => {
            if channels.len() != 2 {
                bail!(
                    "--layout {:?} needs a stereo recording; {} has {} channel(s) (use --layout mixed)",
                    args.layout,
                    args.audio.display(),
                    channels.len()
                );
            }
            let (rep, cust) = match args.layout {
                Layout::RepLeft => (0, 1),
                _ => (1, 0),
            };
            Ok((
                AudioLayout::PerSpeaker,
                vec![
                    (AUDIO_CHANNEL_REP, audio::to_i16(&channels[rep])),
                    (AUDIO_CHANNEL_CUSTOMER, audio::to_i16(&channels[cust])),
                ],
            ))
        }
    }
}

/// Copy the recording into the outbox under the call's id (blocking work,
/// off the async threads).
async fn queue_recording(
    ctx: &Ctx,
    args: &CallArgs,
    call_id: String,
    started_at: String,
) -> Result<Enqueued> {
    let meta = UploadMetadata {
        started_at: Some(started_at),
        channel_layout: Some(
            match args.layout {
                Layout::Mixed => "mono",
                Layout::RepLeft => "rep_left",
                Layout::RepRight => "rep_right",
            }
            .into(),
        ),
        language: args.language.clone(),
        ..UploadMetadata::default()
    };
    let (outbox, path) = (ctx.outbox.clone(), args.audio.clone());
    let queued = tokio::task::spawn_blocking(move || {
        outbox.enqueue_recording(
            &path,
            NewRecording {
                upload_key: Some(call_id),
                metadata: meta,
            },
        )
    })
    .await??;
    Ok(queued)
}

async fn stream_call(
    client: &Client,
    start: Start,
    streams: &[(u8, Vec<i16>)],
    realtime: bool,
) -> Result<()> {
    let (session, mut events) = LiveSession::connect(client, start, LiveOptions::default())
        .await
        .map_err(|e| match e {
            Error::Unreachable { .. } => {
                anyhow!("{e}: the live session needs the server (the recording is still queued)")
            }
            other => anyhow!(other),
        })?;
    let t0 = Instant::now();
    let printer = tokio::spawn(async move {
        while let Some(e) = events.next().await {
            print_event(t0, &e);
        }
    });
    let frame = (audio::RATE / 5) as usize; // 200 ms
    let frames = streams[0].1.len().div_ceil(frame);
    for k in 0..frames {
        if realtime {
            let due = t0 + Duration::from_millis(200 * k as u64);
            tokio::time::sleep_until(due.into()).await;
        }
        for (ch, pcm) in streams {
            let a = (k * frame).min(pcm.len());
            let b = ((k + 1) * frame).min(pcm.len());
            if a < b {
                session.send_audio(*ch, &pcm[a..b]).await?;
            }
        }
    }
    session.end()?;
    let summary = session.finish().await;
    let _ = printer.await;
    let s = summary?;
    println!(
        "session {}: {} finals, {} suggestions, {} risks, {} reconnect(s)",
        s.session_id, s.finals, s.suggestions, s.risks, s.reconnects
    );
    Ok(())
}

fn print_event(t0: Instant, e: &LiveEvent) {
    let t = t0.elapsed().as_secs_f64();
    let line = match e {
        LiveEvent::Message(m) => message_line(t, m),
        LiveEvent::Disconnected { reason } => format!("disconnected ({reason}); reconnecting"),
        LiveEvent::Resumed { resent_ms, .. } => {
            format!("resumed  (resent {resent_ms:?} ms of audio)")
        }
        LiveEvent::Restarted { session_id } => format!("restarted as a new session {session_id}"),
        LiveEvent::AudioGap { channel, lost_ms } => {
            format!("audio gap: {lost_ms} ms of channel {channel} could not be sent")
        }
    };
    if !line.is_empty() {
        println!("[{t:>6.2}s] {line}");
    }
}

/// The printed line(s) for a server message `t` seconds into the call
/// (several suggestions: one line each, each with the time).
fn message_line(t: f64, m: &ServerMessage) -> String {
    match m {
        ServerMessage::Ready(r) => {
            format!("ready    session {} (speech: {})", r.session_id, r.speech)
        }
        ServerMessage::Partial(p) => format!("partial  {:?}: {}", p.speaker, p.text),
        ServerMessage::Final(p) => format!("final    {:?}: {}", p.speaker, p.text),
        ServerMessage::Suggestions { suggestions, .. } => suggestions
            .iter()
            .map(|s| {
                let name = if s.scenario.is_empty() {
                    s.title.clone()
                } else {
                    format!("{}·{}", s.scenario, s.title)
                };
                format!("suggestion → {name} (score {:.3})", s.score)
            })
            .collect::<Vec<_>>()
            .join(&format!("\n[{t:>6.2}s] ")),
        ServerMessage::Risk(r) => format!(
            "risk ⚠  {} / {} ({:?}): \"{}\"{}",
            r.category,
            r.severity,
            r.speaker,
            r.evidence,
            r.suppressed
                .as_ref()
                .map(|s| format!(" [suppressed: {s}]"))
                .unwrap_or_default()
        ),
        ServerMessage::FeedbackAck { feedback_id, .. } => {
            format!("feedback stored {feedback_id}")
        }
        ServerMessage::Dropped { partials } => {
            format!("dropped  {partials} partials (reading too slowly)")
        }
        ServerMessage::Error { code, message } => format!("error    {code}: {message}"),
        ServerMessage::Ended {
            finals,
            suggestions,
            risks,
            ..
        } => {
            format!("ended    {finals} finals, {suggestions} suggestions, {risks} risks")
        }
    }
}

fn uuid_like() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
