//! `assist transcribe FILE…`: transcribe recordings on this machine, no
//! server needed, with a progress bar per file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use assist_models::audio::decode_file;
use assist_models::speech::{LoadOptions, Progress, Transcriber};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use assist_server::config::Config;
use assist_server::db::calls::ChannelLayout;
use assist_server::speech::formats::{ResponseFormat, render};
use assist_server::speech::{
    check_language, decode_options, resolve_layout, transcribe_layout, transcribe_options,
};

#[derive(Debug, clap::Args)]
pub struct TranscribeArgs {
    /// Audio files (WAV, MP3, M4A/AAC, FLAC, OGG/Opus; AMR with ffmpeg).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Force the language (`zh`, `en`); default detects it per file.
    #[arg(long)]
    pub language: Option<String>,
    /// Output: text, json, verbose_json, srt or vtt.
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Model id or role (default: `[speech] speech_model`).
    #[arg(long)]
    pub model: Option<String>,
    /// `mono`, `rep_left` or `rep_right` (stereo call recordings: one
    /// speaker per channel). Default: mono for one channel, rep_left for two.
    #[arg(long)]
    pub channels: Option<String>,
    /// Write `<name>.<format>` files into this directory instead of printing.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn extension(format: ResponseFormat) -> &'static str {
    match format {
        ResponseFormat::Json | ResponseFormat::VerboseJson => "json",
        ResponseFormat::Text => "txt",
        ResponseFormat::Srt => "srt",
        ResponseFormat::Vtt => "vtt",
    }
}

fn bar(multi: &MultiProgress, name: &str, seconds: f64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = multi.add(ProgressBar::new((seconds * 10.0).round() as u64));
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:<24!} [{bar:32}] {percent:>3}% audio, {elapsed} elapsed, eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(name.to_string());
    bar
}

/// Run `assist transcribe`.
pub async fn run(config: &Config, args: TranscribeArgs) -> anyhow::Result<()> {
    let format = ResponseFormat::parse(&args.format).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown --format `{}` (text, json, verbose_json, srt, vtt)",
            args.format
        )
    })?;
    let layout = match &args.channels {
        None => None,
        Some(c) => Some(ChannelLayout::parse(c).ok_or_else(|| {
            anyhow::anyhow!("unknown --channels `{c}` (mono, rep_left, rep_right)")
        })?),
    };
    let language = args
        .language
        .as_deref()
        .map(check_language)
        .transpose()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for f in &args.files {
        anyhow::ensure!(f.is_file(), "{} is not a file", f.display());
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    }
    let model = args
        .model
        .clone()
        .unwrap_or_else(|| config.speech.speech_model.clone());
    let store = crate::context::model_store(config)?;
    let dir = store
        .ready_path(&model)
        .map_err(|e| anyhow::anyhow!("{e}; fetch it with `assist models fetch --only {model}`"))?;
    let config = config.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let started = Instant::now();
        eprintln!("loading {model} ...");
        let mut asr = Transcriber::load(
            &dir,
            &LoadOptions {
                name: model.clone(),
                ..LoadOptions::default()
            },
        )?;
        eprintln!("loaded in {:.1} s", started.elapsed().as_secs_f64());
        let multi = MultiProgress::new();
        let mut failed = 0usize;
        for file in &args.files {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let audio = match decode_file(file, &decode_options(&config)) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    failed += 1;
                    continue;
                }
            };
            let layout = match resolve_layout(layout, audio.channels.len()) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    failed += 1;
                    continue;
                }
            };
            let tracks = match layout {
                ChannelLayout::Mono => 1.0,
                _ => 2.0,
            };
            let pb = bar(&multi, &name, audio.duration_s * tracks);
            let progress_bar = pb.clone();
            // Channels run one after another: count the audio done across them.
            let mut base = 0.0;
            let mut last = 0.0;
            asr.set_progress(Some(Progress(Box::new(move |done, total| {
                if done < last {
                    base += total;
                }
                last = done;
                progress_bar.set_position(((base + done) * 10.0).round() as u64);
            }))));
            let opts = transcribe_options(&config, language.clone());
            let t = Instant::now();
            let result = transcribe_layout(&mut asr, &audio, layout, &opts);
            asr.set_progress(None);
            pb.finish_and_clear();
            let transcript = match result {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    failed += 1;
                    continue;
                }
            };
            let secs = t.elapsed().as_secs_f64();
            eprintln!(
                "{}: {:.1} s of audio ({}) in {:.1} s, real-time factor {:.2}",
                file.display(),
                audio.duration_s,
                transcript.language,
                secs,
                secs / audio.duration_s.max(1e-9)
            );
            let (_, mut body) = render(&transcript, format, &model);
            if layout != ChannelLayout::Mono && format == ResponseFormat::Text {
                body = transcript
                    .segments
                    .iter()
                    .map(|s| {
                        format!(
                            "[{:>7.2}] {}: {}\n",
                            s.start_s,
                            layout.speaker(s.channel).as_str(),
                            s.text.trim()
                        )
                    })
                    .collect();
            }
            if !body.ends_with('\n') {
                body.push('\n');
            }
            match &args.out {
                Some(dir) => {
                    let stem = file
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "audio".into());
                    let path = dir.join(format!("{stem}.{}", extension(format)));
                    std::fs::write(&path, body)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("  → {}", path.display());
                }
                None => print!("{body}"),
            }
        }
        anyhow::ensure!(
            failed == 0,
            "{failed} of {} files could not be transcribed",
            args.files.len()
        );
        Ok(())
    })
    .await?
}
