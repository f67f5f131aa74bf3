//! `assist-device`: a work phone on the command line — live calls from an
//! audio file, chats through the local guard, the outbox, the guard rules and
//! the privacy list. See device-sdk/README.md.

mod audio;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use assist_device_sdk::protocol::device::{ChatChannel, ChatSender, UploadMetadata};
use assist_device_sdk::protocol::live::{
    AUDIO_CHANNEL_CUSTOMER, AUDIO_CHANNEL_MIXED, AUDIO_CHANNEL_REP, AudioFormat, AudioLayout,
    ServerMessage, Start,
};
use assist_device_sdk::{
    Client, ClientConfig, Error, FlushProgress, FlushReport, Guard, GuardDecision, LiveEvent,
    LiveOptions, LiveSession, NewChat, NewRecording, Outbox, OutboxConfig, Party, Privacy,
    Screened, rfc3339_ms,
};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "assist-device",
    version,
    about = "A work phone of the assist service, on the command line"
)]
struct Cli {
    /// The assist server, e.g. https://assist.example.com
    #[arg(long, env = "ASSIST_SERVER", global = true)]
    server: Option<String>,
    /// The phone's device token (a rep's device token).
    #[arg(
        long,
        env = "ASSIST_DEVICE_TOKEN",
        global = true,
        hide_env_values = true
    )]
    token: Option<String>,
    /// Where the outbox, the guard rules and the privacy list live.
    #[arg(long, env = "ASSIST_DEVICE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stream a recording as a live call, print what the server says, then upload it.
    Call(CallArgs),
    /// Chats.
    #[command(subcommand)]
    Chat(ChatCommand),
    /// The outbox of items waiting for the server.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The local guard (signed block rules).
    #[command(subcommand)]
    Guard(GuardCommand),
    /// The personal-contact exclusion list.
    #[command(subcommand)]
    Privacy(PrivacyCommand),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Layout {
    Mixed,
    #[value(name = "rep_left")]
    RepLeft,
    #[value(name = "rep_right")]
    RepRight,
}

#[derive(Debug, Args)]
struct CallArgs {
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

#[derive(Debug, Subcommand)]
enum ChatCommand {
    /// Check a message with the guard, queue it and send it.
    Send {
        #[arg(long)]
        conversation: String,
        #[arg(long, value_parser = ["rep", "customer"], default_value = "rep")]
        sender: String,
        #[arg(long, value_parser = ["wechat", "wecom", "sms", "other"], default_value = "wechat")]
        channel: String,
        /// The other side's number (checked against the privacy list).
        #[arg(long)]
        phone: Option<String>,
        /// The other side's contact id (checked against the privacy list).
        #[arg(long)]
        contact: Option<String>,
        text: String,
    },
}

#[derive(Debug, Subcommand)]
enum OutboxCommand {
    /// Counts per kind and state, bytes, drops, dead items with their errors.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Deliver everything now (ignores backoff, honours nothing but the server).
    Flush,
    /// Move dead items back to pending.
    RetryDead,
    /// Delete dead items (counted and reported as dropped).
    PurgeDead,
}

#[derive(Debug, Subcommand)]
enum GuardCommand {
    /// What the guard says about a message (no network).
    Check { text: String },
    /// Fetch, verify and install the newest rules.
    Update,
}

#[derive(Debug, Subcommand)]
enum PrivacyCommand {
    /// Exclude a number, a prefix or a contact.
    Add(PrivacyValue),
    /// Stop excluding it.
    Remove(PrivacyValue),
    /// Show the list and how many items it kept on the phone.
    List,
    /// Whether contacts the phone marks personal are excluded.
    MarkedPersonal {
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct PrivacyValue {
    #[arg(long)]
    number: Option<String>,
    #[arg(long)]
    prefix: Option<String>,
    #[arg(long)]
    contact: Option<String>,
}

struct Ctx {
    cli_server: Option<String>,
    cli_token: Option<String>,
    outbox: Outbox,
}

impl Ctx {
    fn client(&self) -> Result<Client> {
        let server = self
            .cli_server
            .clone()
            .ok_or_else(|| anyhow!("no server: pass --server URL or set ASSIST_SERVER"))?;
        let token = self
            .cli_token
            .clone()
            .ok_or_else(|| anyhow!("no device token: pass --token or set ASSIST_DEVICE_TOKEN"))?;
        Ok(Client::new(
            ClientConfig::new(server, token),
            self.outbox.clone(),
        )?)
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ASSIST_LOG")
                .unwrap_or_else(|_| "warn,symphonia=off,symphonia_core=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn data_dir(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = given {
        return Ok(d);
    }
    let home =
        std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set: pass --data-dir"))?;
    Ok(PathBuf::from(home).join(".local/share/assist-device"))
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let dir = data_dir(cli.data_dir)?;
    let outbox = Outbox::open(&dir, OutboxConfig::default())
        .with_context(|| format!("cannot open the outbox in {}", dir.display()))?;
    let ctx = Ctx {
        cli_server: cli.server,
        cli_token: cli.token,
        outbox,
    };
    match cli.command {
        Command::Call(args) => call(&ctx, args).await,
        Command::Chat(ChatCommand::Send {
            conversation,
            sender,
            channel,
            phone,
            contact,
            text,
        }) => chat_send(&ctx, conversation, &sender, &channel, phone, contact, text).await,
        Command::Outbox(c) => outbox_cmd(&ctx, c).await,
        Command::Guard(c) => guard_cmd(&ctx, c).await,
        Command::Privacy(c) => privacy_cmd(&ctx, c),
    }
}

// ---- call ----

fn print_event(t0: Instant, e: &LiveEvent) {
    let t = t0.elapsed().as_secs_f64();
    let line = match e {
        LiveEvent::Message(m) => match m {
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
        },
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

async fn call(ctx: &Ctx, args: CallArgs) -> Result<ExitCode> {
    let client = ctx.client()?;
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
        return Ok(ExitCode::SUCCESS);
    }
    let path = args.audio.clone();
    let channels = tokio::task::spawn_blocking(move || audio::decode_16k(&path)).await??;
    let (layout, streams): (AudioLayout, Vec<(u8, Vec<i16>)>) = match args.layout {
        Layout::Mixed => (
            AudioLayout::Mixed,
            vec![(AUDIO_CHANNEL_MIXED, audio::to_i16(&audio::mix(&channels)))],
        ),
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
            (
                AudioLayout::PerSpeaker,
                vec![
                    (AUDIO_CHANNEL_REP, audio::to_i16(&channels[rep])),
                    (AUDIO_CHANNEL_CUSTOMER, audio::to_i16(&channels[cust])),
                ],
            )
        }
    };
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
    if args.no_upload {
        return Ok(if live.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
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
    let (outbox, path, key) = (ctx.outbox.clone(), args.audio.clone(), call_id.clone());
    let queued = tokio::task::spawn_blocking(move || {
        outbox.enqueue_recording(
            &path,
            NewRecording {
                upload_key: Some(key),
                metadata: meta,
            },
        )
    })
    .await??;
    println!("recording queued for upload as {}", queued.key);
    let report = client.flush().await?;
    print_report(&report);
    Ok(if live.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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

fn uuid_like() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

// ---- chat ----

async fn chat_send(
    ctx: &Ctx,
    conversation: String,
    sender: &str,
    channel: &str,
    phone: Option<String>,
    contact: Option<String>,
    text: String,
) -> Result<ExitCode> {
    let client = ctx.client()?;
    let guard = Guard::load(&ctx.outbox)?;
    if guard.version().is_none()
        && let Err(e) = client.update_guard(&guard).await
    {
        eprintln!(
            "note: no guard rules on this phone yet and cannot fetch them ({e}); the server still checks"
        );
    }
    let sender = if sender == "customer" {
        ChatSender::Customer
    } else {
        ChatSender::Rep
    };
    if sender == ChatSender::Rep {
        match guard.check_outgoing(&text, Some(&conversation))? {
            GuardDecision::Allow => {}
            GuardDecision::Warn { rule, alternative } => {
                println!(
                    "warning: \"{}\" matches rule {} ({}, {}); sending anyway",
                    rule.matched, rule.rule_id, rule.category, rule.severity
                );
                if let Some(a) = alternative {
                    println!("  suggested instead: {}", a.text);
                }
            }
            GuardDecision::Block { rule, alternative } => {
                println!(
                    "blocked: \"{}\" matches rule {} ({}, {}); the message was not sent",
                    rule.matched, rule.rule_id, rule.category, rule.severity
                );
                match alternative {
                    Some(a) => println!("  say instead: {}", a.text),
                    None => println!("  (no approved alternative for {})", rule.category),
                }
                let _ = client.flush().await; // report the blocked attempt
                return Ok(ExitCode::from(2));
            }
        }
    }
    let channel = match channel {
        "wecom" => ChatChannel::Wecom,
        "sms" => ChatChannel::Sms,
        "other" => ChatChannel::Other,
        _ => ChatChannel::Wechat,
    };
    let party = Party {
        phone: phone.as_deref(),
        contact_id: contact.as_deref(),
        marked_personal: false,
    };
    let chat = NewChat {
        conversation_id: conversation,
        channel: Some(channel),
        customer_ref: None,
        sender,
        text,
        sent_at: None,
        client_message_id: None,
    };
    match Privacy::new(&ctx.outbox).enqueue_chat(&party, chat)? {
        Screened::Excluded(why) => {
            println!("excluded by the privacy list ({why:?}): kept on the phone, only counted");
            return Ok(ExitCode::SUCCESS);
        }
        Screened::Queued(q) => println!("queued {}", q.key),
    }
    let report = client.flush().await?;
    print_report(&report);
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &FlushReport) {
    println!(
        "sent {}, duplicates {}, failed {}, dead {}, still queued {}",
        r.sent, r.duplicates, r.failed, r.dead, r.remaining
    );
    for (key, call) in &r.calls {
        println!("  recording {key} → call {call}");
    }
    if let Some(why) = &r.stopped {
        if let Some(reason) = why.strip_suffix("; queued, will retry") {
            println!("queued, will retry ({reason})");
        } else {
            println!("stopped: {why}");
        }
    }
    if r.dead > 0 {
        println!("  see `assist-device outbox status` for the dead items and their errors");
    }
}

// ---- outbox ----

async fn outbox_cmd(ctx: &Ctx, c: OutboxCommand) -> Result<ExitCode> {
    match c {
        OutboxCommand::Status { json } => {
            let st = ctx.outbox.status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("outbox {}", ctx.outbox.dir().display());
            println!(
                "{:<10} {:>8} {:>6} {:>12}",
                "kind", "pending", "dead", "bytes"
            );
            for (kind, k) in &st.per_kind {
                println!(
                    "{:<10} {:>8} {:>6} {:>12}",
                    kind.as_str(),
                    k.pending,
                    k.dead,
                    k.bytes
                );
            }
            println!(
                "total {} of {} items, {} of {} bytes",
                st.items, st.max_items, st.bytes, st.max_bytes
            );
            println!(
                "dropped: {} events, {} chats, {} recordings; refused when full: {} events, {} chats, {} recordings",
                st.dropped.event,
                st.dropped.chat,
                st.dropped.recording,
                st.refused.event,
                st.refused.chat,
                st.refused.recording
            );
            for u in &st.uploads {
                println!(
                    "upload {}: {} of {} bytes on the server",
                    u.upload_key, u.offset, u.size
                );
            }
            if let Some(t) = st.next_attempt_at {
                println!("next attempt: {}", rfc3339_ms(t));
            }
            if let Some(t) = st.held_until {
                println!("the server asked to wait until {}", rfc3339_ms(t));
            }
            for d in &st.dead {
                println!(
                    "dead {} {} after {} attempt(s): {}",
                    d.kind.as_str(),
                    d.key,
                    d.attempts,
                    d.error
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        OutboxCommand::Flush => {
            let client = ctx.client()?;
            ctx.outbox.make_due_now()?;
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} items {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let report = client
                .flush_with(&|p| match p {
                    FlushProgress::Items { done, total } => {
                        bar.set_length(total);
                        bar.set_position(done);
                    }
                    FlushProgress::Upload {
                        upload_key,
                        offset,
                        size,
                    } => {
                        bar.set_message(format!(
                            "{upload_key}: {}/{} KiB",
                            offset / 1024,
                            size / 1024
                        ));
                    }
                })
                .await?;
            bar.finish_and_clear();
            print_report(&report);
            Ok(if report.unauthorized {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        OutboxCommand::RetryDead => {
            println!(
                "{} dead item(s) back in the queue",
                ctx.outbox.retry_dead()?
            );
            Ok(ExitCode::SUCCESS)
        }
        OutboxCommand::PurgeDead => {
            println!(
                "{} dead item(s) deleted (reported as dropped)",
                ctx.outbox.purge_dead()?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

// ---- guard ----

async fn guard_cmd(ctx: &Ctx, c: GuardCommand) -> Result<ExitCode> {
    let guard = Guard::load(&ctx.outbox)?;
    match c {
        GuardCommand::Check { text } => {
            match guard.version() {
                Some(v) => println!("rules version {v}"),
                None => println!("no rules on this phone yet (run `assist-device guard update`)"),
            }
            let t = Instant::now();
            let d = guard.check(&text);
            let us = t.elapsed().as_micros();
            match &d {
                GuardDecision::Allow => println!("allow ({us} µs)"),
                GuardDecision::Warn { rule, alternative }
                | GuardDecision::Block { rule, alternative } => {
                    let word = if d.is_block() { "block" } else { "warn" };
                    println!(
                        "{word}: \"{}\" matches rule {} ({}, {}) ({us} µs)",
                        rule.matched, rule.rule_id, rule.category, rule.severity
                    );
                    if let Some(a) = alternative {
                        println!("  say instead: {}", a.text);
                    }
                }
            }
            Ok(if d.is_block() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        GuardCommand::Update => {
            let client = ctx.client()?;
            match client.update_guard(&guard).await? {
                assist_device_sdk::GuardUpdate::Updated {
                    version,
                    rules,
                    skipped,
                } => {
                    println!("rules version {version} installed ({rules} rules)");
                    for (id, why) in skipped {
                        println!("  rule {id} skipped: {why}");
                    }
                }
                assist_device_sdk::GuardUpdate::NotModified { version } => {
                    println!("rules version {version} are current")
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

// ---- privacy ----

fn privacy_cmd(ctx: &Ctx, c: PrivacyCommand) -> Result<ExitCode> {
    let p = Privacy::new(&ctx.outbox);
    match c {
        PrivacyCommand::Add(v) => {
            if let Some(n) = v.number {
                println!("excluding number {}", p.add_number(&n)?);
            } else if let Some(x) = v.prefix {
                println!("excluding numbers starting with {}", p.add_prefix(&x)?);
            } else if let Some(c) = v.contact {
                p.add_contact(&c)?;
                println!("excluding contact {c}");
            }
        }
        PrivacyCommand::Remove(v) => {
            let removed = if let Some(n) = v.number {
                p.remove_number(&n)?
            } else if let Some(x) = v.prefix {
                p.remove_prefix(&x)?
            } else if let Some(c) = v.contact {
                p.remove_contact(&c)?
            } else {
                false
            };
            println!(
                "{}",
                if removed {
                    "removed"
                } else {
                    "was not on the list"
                }
            );
        }
        PrivacyCommand::List => {
            let l = p.list()?;
            println!("numbers:  {}", join(&l.numbers));
            println!("prefixes: {}", join(&l.prefixes));
            println!("contacts: {}", join(&l.contacts));
            println!(
                "contacts marked personal: {}",
                if l.exclude_marked_personal {
                    "excluded"
                } else {
                    "not excluded"
                }
            );
            println!(
                "kept on the phone so far: {} calls, {} chats",
                l.excluded_calls, l.excluded_chats
            );
        }
        PrivacyCommand::MarkedPersonal { state } => {
            p.set_exclude_marked_personal(state == "on")?;
            println!(
                "contacts marked personal: {}",
                if state == "on" {
                    "excluded"
                } else {
                    "not excluded"
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn join(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}
