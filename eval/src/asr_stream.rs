//! `assist-eval asr-stream`: latency of the streaming transcriber, from the
//! end of a spoken phrase to the final segment that commits it.
//!
//! A call of several espeak-ng phrases separated by pauses (telephone band,
//! as in `asr-bench`) is fed in chunks to a
//! [`StreamingTranscriber`](assist_models::speech::StreamingTranscriber) on a
//! simulated real-time clock: chunk `i` arrives when its audio has been spoken,
//! a step starts when both the chunk and the previous step are there, and
//! ends after its measured compute time. A phrase's latency is the end of the
//! step whose finals reach the phrase's last speech (energy-detected),
//! minus that time. The peer is the same model transcribing the whole file
//! offline (quality of the streamed text against it).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use assist_models::audio::{DecodeOptions, decode_file};
use assist_models::speech::{
    LoadOptions, StreamingOptions, StreamingTranscriber, Transcribe, TranscribeOptions, Transcriber,
};

use crate::audio::{concat_with_gaps, espeak, telephone, wav_seconds};
use crate::error_rate::wer;
use crate::report::{Better, Figure, Report};
use crate::setup::{audio_cache, cache_key, load_conditions, model_path, read_lines, tool};

/// Options of `assist-eval asr-stream`.
#[derive(Debug, Clone)]
pub struct StreamArgs {
    pub model: String,
    pub phrases: usize,
    pub chunk_s: f64,
    pub step_s: f64,
    pub pause_s: f64,
    pub precision: String,
    pub data: PathBuf,
}

/// Build the call: `n` sentences of en.txt, pauses between. Returns the WAV
/// and each phrase's (start, duration) in the file.
fn call(sentences: &[String], pause_s: f64) -> anyhow::Result<(PathBuf, Vec<(f64, f64)>)> {
    let key = cache_key(&[&sentences.join("\n"), &pause_s.to_string(), "stream-v1"]);
    let dst = audio_cache().join(format!("stream-en-{key}.wav"));
    std::fs::create_dir_all(audio_cache())?;
    let mut parts = Vec::new();
    let mut spans = Vec::new();
    let mut at = pause_s;
    for (i, text) in sentences.iter().enumerate() {
        let raw = dst.with_extension(format!("raw{i}.wav"));
        let p = dst.with_extension(format!("p{i}.wav"));
        espeak(
            text,
            if i % 2 == 0 { "en-us+m3" } else { "en+f3" },
            160,
            &raw,
        )?;
        let (r, o) = (raw.to_string_lossy(), p.to_string_lossy());
        tool("sox", &[&r, "-r", "16000", "-c", "1", "-b", "16", &o])?;
        let _ = std::fs::remove_file(&raw);
        let d = wav_seconds(&p)?;
        spans.push((at, d));
        at += d + pause_s;
        parts.push(p);
    }
    if !dst.is_file() {
        // Leading and trailing pause too.
        let lead = dst.with_extension("lead.wav");
        tool(
            "sox",
            &[
                "-n",
                "-r",
                "16000",
                "-c",
                "1",
                "-b",
                "16",
                &lead.to_string_lossy(),
                "trim",
                "0",
                &pause_s.to_string(),
            ],
        )?;
        let mut all = vec![lead.clone()];
        all.extend(parts.iter().cloned());
        all.push(lead.clone());
        let joined = dst.with_extension("joined.wav");
        concat_with_gaps(&all, pause_s, &joined)?;
        telephone(&joined, &dst, -45.0)?;
        let _ = std::fs::remove_file(joined);
        let _ = std::fs::remove_file(lead);
    }
    for p in parts {
        let _ = std::fs::remove_file(p);
    }
    // concat_with_gaps puts a gap after the lead-in too.
    let spans = spans.into_iter().map(|(s, d)| (s + pause_s, d)).collect();
    Ok((dst, spans))
}

/// Last time in [start, start + dur] where a 20 ms frame is louder than 0.02 RMS.
fn speech_end(samples: &[f32], start: f64, dur: f64) -> f64 {
    let (a, b) = (
        (start * 16_000.0) as usize,
        (((start + dur) * 16_000.0) as usize).min(samples.len()),
    );
    let mut end = start + dur;
    let mut i = a;
    while i + 320 <= b {
        let rms = (samples[i..i + 320].iter().map(|x| x * x).sum::<f32>() / 320.0).sqrt();
        if rms > 0.02 {
            end = (i + 320) as f64 / 16_000.0;
        }
        i += 320;
    }
    end
}

/// Run the measurement and write `asr-stream.{json,md}`.
pub fn run(model_dir: PathBuf, args: &StreamArgs, out: &Path) -> anyhow::Result<Report> {
    let model = model_path(&model_dir, &args.model)?;
    let sentences: Vec<String> = read_lines(&args.data.join("en.txt"))?
        .into_iter()
        .take(args.phrases)
        .collect();
    let (wav, spans) = call(&sentences, args.pause_s)?;
    let samples = decode_file(&wav, &DecodeOptions::default())
        .with_context(|| format!("decoding {}", wav.display()))?
        .mono();
    let audio_s = samples.len() as f64 / 16_000.0;
    let ends: Vec<f64> = spans
        .iter()
        .map(|&(s, d)| speech_end(&samples, s, d))
        .collect();

    let mut asr = Transcriber::load(
        &model,
        &LoadOptions {
            precision: args.precision.parse().map_err(anyhow::Error::msg)?,
            ..LoadOptions::default()
        },
    )?;
    let transcribe = TranscribeOptions {
        language: Some("en".into()),
        ..TranscribeOptions::default()
    };
    let mut stream = StreamingTranscriber::new(StreamingOptions {
        transcribe: transcribe.clone(),
        min_step_s: args.step_s,
        ..StreamingOptions::default()
    });
    let chunk = ((args.chunk_s * 16_000.0) as usize).max(160);
    let mut clock = 0.0f64;
    let mut compute = 0.0f64;
    let mut decodes = 0usize;
    let mut latency: Vec<Option<f64>> = vec![None; ends.len()];
    let mut first_partial: Vec<Option<f64>> = vec![None; ends.len()];
    let mut record = |finals: &[assist_models::speech::Segment],
                      partial: bool,
                      done: f64,
                      latency: &mut Vec<Option<f64>>| {
        for (i, &(start, _)) in spans.iter().enumerate() {
            if partial && first_partial[i].is_none() && done > start {
                first_partial[i] = Some(done - start);
            }
            if latency[i].is_none() && finals.iter().any(|f| f.end_s >= ends[i] - 0.3) {
                latency[i] = Some(done - ends[i]);
            }
        }
    };
    for (i, c) in samples.chunks(chunk).enumerate() {
        let arrival = ((i * chunk + c.len()) as f64) / 16_000.0;
        let started = Instant::now();
        let u = stream.feed(&mut asr, c)?;
        let took = started.elapsed().as_secs_f64();
        compute += took;
        decodes += usize::from(u.decoded);
        clock = clock.max(arrival) + took;
        record(&u.finals, u.partial.is_some(), clock, &mut latency);
    }
    let started = Instant::now();
    let u = stream.finish(&mut asr)?;
    clock += started.elapsed().as_secs_f64();
    record(&u.finals, false, clock, &mut latency);
    let streamed = stream.committed_text();

    let offline = asr.transcribe(&samples, &transcribe)?.text();
    let reference = sentences.join(" ");
    let lat: Vec<f64> = latency.iter().flatten().copied().collect();
    let mut sorted = lat.clone();
    sorted.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let mut r = Report::new(
        "asr-stream",
        format!(
            "Streaming transcription with Whisper `{}` ({}): {} espeak-ng phrases with {:.1} s pauses ({audio_s:.0} s, telephone band), \
             fed in {:.1} s chunks, decoding every {:.1} s of new audio, on a simulated real-time clock (compute measured, 2 CPU threads).",
            args.model,
            args.precision,
            sentences.len(),
            args.pause_s,
            args.chunk_s,
            args.step_s
        ),
    );
    r.push(Figure::new(
        "final latency after phrase end, median",
        "s",
        pct(0.5),
        Better::Lower,
    ));
    r.push(Figure::new(
        "final latency after phrase end, max",
        "s",
        pct(1.0),
        Better::Lower,
    ));
    let fp: Vec<f64> = first_partial.iter().flatten().copied().collect();
    r.push(Figure::new(
        "first partial after phrase start, mean",
        "s",
        fp.iter().sum::<f64>() / fp.len().max(1) as f64,
        Better::Lower,
    ));
    r.push(Figure::new(
        "streaming compute / audio",
        "RTF",
        compute / audio_s,
        Better::Lower,
    ));
    r.push(
        Figure::new(
            "WER vs reference",
            "% words",
            100.0 * wer(&reference, &streamed),
            Better::Lower,
        )
        .peer(
            "same model, offline whole file",
            100.0 * wer(&reference, &offline),
        ),
    );
    r.note(format!(
        "{decodes} decodes for {} chunks; phrases committed: {}/{}; per-phrase latency (s): {}",
        samples.len().div_ceil(chunk),
        lat.len(),
        ends.len(),
        latency
            .iter()
            .map(|l| l.map(|v| format!("{v:.2}")).unwrap_or_else(|| "—".into()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    r.note(format!("streamed: {streamed}"));
    r.note(format!("offline: {offline}"));
    r.note(load_conditions());
    r.finish(out)?;
    Ok(r)
}
