//! `assist-eval endpoint`: how long a pause must be before an utterance
//! ends — the trade-off between waiting and cutting sentences in half.
//!
//! Every millisecond of `live_end_silence_ms` is waited after each sentence
//! before it reaches the recogniser; too short a wait cuts a sentence at a
//! hesitation or a comma. This runs the live pipeline's own
//! [`Segmenter`] (Silero VAD on candle, the endpointer) over speech whose
//! sentences are known, at several end-silence settings, among them
//! sherpa-onnx's default (1.2 s) and FunASR's VAD default (0.8 s):
//!
//! - the simulated calls of `live-latency` (espeak-ng lines through the
//!   telephone band, each line one sentence, lines 0.8 s apart on a leg):
//!   the share of lines that came out as more than one final (*split*);
//! - the real 8 kHz recording of ten Harvard sentences read with pauses
//!   (`../shared/real-speech/en_osr_us_000_0034_8k.orig8k.wav`), at its
//!   native rate: how many utterances it gives (ten is right).
//!
//! No recogniser runs, so the figures are counts, not times.

use std::path::{Path, PathBuf};

use assist_models::audio::{DecodeOptions, decode_file};
use assist_models::vad::{EndpointOptions, SampleRate, Segmenter, SileroModel};
use assist_protocol::live::Speaker;

use crate::live_latency::calls::{Lines, audio_call};
use crate::report::{Better, Figure, Report};

/// End-silence settings tried, ms.
const SETTINGS: [u32; 7] = [200, 300, 400, 500, 600, 800, 1200];

/// Options of `assist-eval endpoint`.
#[derive(Debug, Clone)]
pub struct EndpointArgs {
    pub retrieval_data: PathBuf,
    pub asr_data: PathBuf,
    pub real: PathBuf,
    pub calls: usize,
}

/// Final utterances of `audio` as (start, end) seconds.
fn finals(
    model: &SileroModel,
    rate: SampleRate,
    audio: &[f32],
    silence_ms: u32,
) -> Vec<(f64, f64)> {
    let opts = EndpointOptions {
        end_silence_ms: silence_ms,
        partial_every_ms: 0,
        ..EndpointOptions::default()
    };
    let mut seg = Segmenter::new(Some(model), rate, opts).expect("weights for the rate");
    let mut out = Vec::new();
    for chunk in audio.chunks(rate.hz() as usize / 5) {
        out.extend(seg.push(chunk).expect("finite samples"));
    }
    out.extend(seg.finish().expect("finite samples"));
    out.into_iter()
        .filter(|u| u.is_final())
        .map(|u| (u.start_ms as f64 / 1000.0, u.end_ms as f64 / 1000.0))
        .collect()
}

pub fn run(model_dir: PathBuf, args: &EndpointArgs, out: &Path) -> anyhow::Result<Report> {
    let store_dir = model_dir.join("silero-vad");
    let model = SileroModel::load(&store_dir)
        .map_err(|e| anyhow::anyhow!("{e} (fetch it: `assist models fetch --only vad`)"))?;
    let en = Lines::load(&args.retrieval_data, &args.asr_data, "en")?;
    eprintln!("speaking {} calls with espeak-ng (cached)", args.calls);
    let plans = (0..args.calls)
        .map(|i| audio_call(&en, i, 60.0))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let osr = args.real.join("en_osr_us_000_0034_8k.orig8k.wav");
    let osr_audio = decode_file(
        &osr,
        &DecodeOptions {
            target_rate: 8_000,
            ..DecodeOptions::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", osr.display()))?
    .mono();
    let mut r = Report::new(
        "endpoint",
        "Live endpointing: end-of-utterance silence vs sentences cut in half, with the live pipeline's Segmenter \
         (Silero VAD on candle + endpointer) on the simulated calls of live-latency (espeak-ng, telephone band, \
         each line one sentence) and on a real 8 kHz recording of ten sentences read with pauses. The silence is \
         waited after every sentence before recognition starts.",
    );
    for &ms in &SETTINGS {
        let (mut lines, mut split, mut missed) = (0usize, 0usize, 0usize);
        for plan in &plans {
            for (leg, speaker) in [
                (&plan.rep, Speaker::Rep),
                (&plan.customer, Speaker::Customer),
            ] {
                let got = finals(&model, SampleRate::Hz16000, leg, ms);
                for t in plan.turns.iter().filter(|t| t.speaker == speaker) {
                    let n = got
                        .iter()
                        .filter(|(a, b)| *a < t.end_s && *b > t.start_s)
                        .count();
                    lines += 1;
                    if n == 0 {
                        missed += 1;
                    } else if n > 1 {
                        split += 1;
                    }
                }
            }
        }
        let osr_n = finals(&model, SampleRate::Hz8000, &osr_audio, ms).len();
        let label = match ms {
            1200 => " (sherpa-onnx's default)",
            800 => " (FunASR's default)",
            400 => " (ours)",
            _ => "",
        };
        r.push(Figure::new(
            format!("{ms} ms{label}: TTS call lines split into several finals ({lines} lines)"),
            "%",
            100.0 * split as f64 / lines.max(1) as f64,
            Better::Lower,
        ));
        r.push(Figure::new(
            format!("{ms} ms{label}: TTS call lines with no final"),
            "count",
            missed as f64,
            Better::Lower,
        ));
        r.push(
            Figure::new(
                format!("{ms} ms{label}: utterances in the real 10-sentence recording (8 kHz)"),
                "count",
                osr_n as f64,
                Better::Lower,
            )
            .peer("sentences read", 10.0),
        );
        println!(
            "{ms:>5} ms: {split}/{lines} lines split, {missed} missed; real recording: {osr_n} utterances for 10 sentences"
        );
    }
    r.note(
        "Fewer utterances than sentences in the real recording means sentences were merged (the pause between them was \
         shorter than the setting); more means sentences were cut. A split line's first part reaches the recogniser \
         (and the suggestions) without the rest.",
    );
    r.finish(out)?;
    Ok(r)
}
