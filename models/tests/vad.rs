//! Real-weight tests of Silero VAD (`silero-vad`, role `vad`). They print
//! "skipped: …" and pass when the model is not ready in `$ASSIST_MODEL_DIR`
//! or `~/.cache/assist/models` (a failure where models are expected: see
//! assist-testkit).
//!
//! The probabilities pinned here were computed by onnxruntime 1.32 on the
//! package's `silero_vad.onnx` for the same generated signal (the formula is
//! [`buzz`]); `assist-eval vad-agree` makes the same comparison frame by
//! frame on real recorded speech.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use assist_models::audio::{DecodeOptions, decode_file};
use assist_models::vad::{
    EndReason, EndpointOptions, MODEL_FILE, SampleRate, Segmenter, SileroModel, Utterance,
};
use assist_testkit::{Kind, skip};

fn model_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("ASSIST_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home).join(".cache/assist/models")
}

/// The VAD model, when it is ready.
fn model() -> Option<SileroModel> {
    let dir = model_root().join("silero-vad");
    if !(dir.join("ready.json").is_file() && dir.join(MODEL_FILE).is_file()) {
        skip(
            Kind::Model,
            format!(
                "silero-vad is not ready in {} (run `assist models fetch --only vad`)",
                dir.display()
            ),
        );
        return None;
    }
    Some(SileroModel::load(&dir).expect("load silero_vad.onnx"))
}

/// A voiced buzz (140 Hz and nine harmonics) in two bursts per second, one
/// second long, computed in f64 and rounded to f32: the same formula gave
/// onnxruntime's figures below.
fn buzz(rate: u32) -> Vec<f32> {
    (0..rate)
        .map(|n| {
            let t = f64::from(n) / f64::from(rate);
            let voiced: f64 = (1..=10)
                .map(|k| {
                    (2.0 * std::f64::consts::PI * f64::from(k) * 140.0 * t).sin() / f64::from(k)
                })
                .sum();
            let env = (2.0 * std::f64::consts::PI * 2.0 * t).sin().max(0.0);
            (0.25 * voiced * env) as f32
        })
        .collect()
}

/// onnxruntime on `silero_vad.onnx`, frame by frame with the wrapper's
/// context handling, the last frame zero-padded.
const ORT_16K: [f64; 32] = [
    0.4336101, 0.5904798, 0.3189247, 0.3169656, 0.1453171, 0.1195208, 0.0357919, 0.3641756,
    0.1873542, 0.0589465, 0.0432370, 0.0253594, 0.0125281, 0.0093541, 0.0095298, 0.1124395,
    0.2866799, 0.1255480, 0.0450826, 0.0272211, 0.0253283, 0.0071883, 0.0227783, 0.0447306,
    0.0195691, 0.0051057, 0.0053469, 0.0046767, 0.0031199, 0.0027050, 0.0026822, 0.0028678,
];
const ORT_8K: [f64; 32] = [
    0.5721302, 0.6835190, 0.6063912, 0.2380897, 0.0877762, 0.0306022, 0.0436803, 0.2337238,
    0.2400491, 0.1179939, 0.0659279, 0.0442934, 0.0320109, 0.0232071, 0.0173779, 0.1241815,
    0.6027712, 0.3580361, 0.0728505, 0.0341304, 0.0213574, 0.0142005, 0.0315005, 0.0928148,
    0.1009245, 0.0288894, 0.0166933, 0.0080555, 0.0059300, 0.0047654, 0.0036004, 0.0029128,
];

#[test]
fn real_weights_match_onnxruntime_at_16k_and_8k() {
    let Some(model) = model() else { return };
    assert_eq!(model.rates(), SampleRate::ALL);
    for (rate, want) in [(SampleRate::Hz16000, ORT_16K), (SampleRate::Hz8000, ORT_8K)] {
        let mut stream = model.stream(rate).unwrap();
        let mut got: Vec<f32> = stream
            .push(&buzz(rate.hz()))
            .unwrap()
            .iter()
            .map(|f| f.prob)
            .collect();
        got.extend(stream.finish().unwrap().map(|f| f.prob));
        assert_eq!(got.len(), want.len());
        let max = got
            .iter()
            .zip(want)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0f64, f64::max);
        eprintln!("{} Hz: max |ours - onnxruntime| = {max:.2e}", rate.hz());
        // The figures are rounded to 7 decimals.
        assert!(max < 1e-5, "{} Hz: {got:?}", rate.hz());
    }
}

#[test]
fn real_weights_silence_is_not_speech_and_a_frame_is_fast() {
    let Some(model) = model() else { return };
    for rate in SampleRate::ALL {
        let mut vad = model.vad(rate).unwrap();
        let n = vad.frame_len();
        // Quiet noise, -60 dBFS-ish.
        let mut s = 12345u32;
        let noise: Vec<f32> = (0..n * 60)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 0.002 - 0.001
            })
            .collect();
        let start = Instant::now();
        let probs: Vec<f32> = noise
            .chunks_exact(n)
            .map(|f| vad.prob(f).unwrap())
            .collect();
        let per_frame = start.elapsed() / probs.len() as u32;
        eprintln!(
            "{} Hz: {:?} per 32 ms frame (tests run in parallel; the eval measures on one core)",
            rate.hz(),
            per_frame
        );
        let max = probs.iter().copied().fold(0.0f32, f32::max);
        assert!(max < 0.1, "{} Hz: silence scored {max}", rate.hz());
        // 32 ms of audio in far less than 32 ms, even with other tests on the cores.
        assert!(per_frame.as_millis() < 8, "{per_frame:?} per frame");
    }
}

fn have_espeak() -> bool {
    let ok = Command::new("espeak-ng")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(
            Kind::Tool,
            "espeak-ng is not installed (scripts/install-deps)",
        );
    }
    ok
}

#[test]
fn real_weights_find_the_speech_between_silences_at_both_rates() {
    let Some(model) = model() else { return };
    if !have_espeak() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("s.wav");
    let st = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg("Please send me the price list for the premium plan by Friday.")
        .status()
        .unwrap();
    assert!(st.success());
    for rate in SampleRate::ALL {
        let opts = DecodeOptions {
            target_rate: rate.hz(),
            ..DecodeOptions::default()
        };
        let speech = decode_file(&wav, &opts).unwrap().mono();
        let second = rate.hz() as usize;
        let mut audio = vec![0.0f32; second];
        audio.extend(&speech);
        audio.extend(vec![0.0f32; second]);
        let mut stream = model.stream(rate).unwrap();
        // 20 ms chunks, as a phone sends them.
        let mut frames = Vec::new();
        for chunk in audio.chunks(second / 50) {
            frames.extend(stream.push(chunk).unwrap());
        }
        let speech_start_ms = 1000;
        let speech_end_ms = 1000 + (speech.len() * 1000 / second) as u64;
        let inside: Vec<f32> = frames
            .iter()
            .filter(|f| f.start_ms() >= speech_start_ms + 100 && f.end_ms() <= speech_end_ms - 100)
            .map(|f| f.prob)
            .collect();
        let before = frames
            .iter()
            .filter(|f| f.end_ms() <= speech_start_ms)
            .map(|f| f.prob)
            .fold(0.0f32, f32::max);
        let after = frames
            .iter()
            .filter(|f| f.start_ms() >= speech_end_ms + 500)
            .map(|f| f.prob)
            .fold(0.0f32, f32::max);
        let share = inside.iter().filter(|p| **p > 0.5).count() as f32 / inside.len() as f32;
        eprintln!(
            "{} Hz: before {before:.3}, speech frames > 0.5: {:.0} %, after {after:.3}",
            rate.hz(),
            share * 100.0
        );
        assert!(before < 0.1 && after < 0.1, "{} Hz", rate.hz());
        assert!(share > 0.8, "{} Hz: {share}", rate.hz());
    }
}

fn real_clip(dir: &Path, name: &str, rate: SampleRate) -> Vec<f32> {
    let opts = DecodeOptions {
        target_rate: rate.hz(),
        ..DecodeOptions::default()
    };
    decode_file(&dir.join(name), &opts)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .mono()
}

/// Utterances of `audio` streamed in 20 ms chunks, then the end of the stream.
fn segment(model: &SileroModel, rate: SampleRate, audio: &[f32]) -> Vec<Utterance> {
    let mut seg = Segmenter::new(Some(model), rate, EndpointOptions::default()).unwrap();
    assert!(seg.uses_silero());
    let mut out = Vec::new();
    for chunk in audio.chunks(rate.hz() as usize / 50) {
        out.extend(seg.push(chunk).unwrap());
    }
    out.extend(seg.finish().unwrap());
    out
}

#[test]
fn real_weights_cut_real_recordings_into_whole_sentences() {
    let Some(model) = model() else { return };
    let Some(dir) = assist_testkit::real_speech_dir() else {
        return;
    };
    let rate = SampleRate::Hz16000;
    let a = real_clip(&dir, "zh_aishell1_BAC009S0764W0121.wav", rate);
    let b = real_clip(&dir, "zh_aishell1_BAC009S0724W0121.wav", rate);
    let second = 16_000usize;
    let mut audio = vec![0.0f32; second];
    let a_at = audio.len();
    audio.extend(&a);
    audio.extend(vec![0.0f32; second * 6 / 5]);
    let b_at = audio.len();
    audio.extend(&b);
    audio.extend(vec![0.0f32; second * 3 / 2]);
    let finals: Vec<Utterance> = segment(&model, rate, &audio)
        .into_iter()
        .filter(|u| u.is_final())
        .collect();
    let spans: Vec<(u64, u64)> = finals.iter().map(|u| (u.start_ms, u.end_ms)).collect();
    eprintln!("utterances (ms): {spans:?}");
    // One final per sentence, none cut in half by its own short pauses.
    assert_eq!(finals.len(), 2, "{spans:?}");
    let ms = |samples: usize| (samples * 1000 / second) as u64;
    for (u, (at, len)) in finals.iter().zip([(a_at, a.len()), (b_at, b.len())]) {
        // Each lies on its own recording (give or take the pre-/post-roll).
        assert!(u.start_ms + 400 >= ms(at), "{spans:?}");
        assert!(u.end_ms <= ms(at + len) + 400, "{spans:?}");
        assert!(u.duration_ms() * 2 >= ms(len), "{spans:?}");
        assert_eq!(u.end, Some(EndReason::Silence));
        assert!(
            u.samples.len().abs_diff(u.duration_ms() as usize * 16) <= 16,
            "{} samples for {} ms",
            u.samples.len(),
            u.duration_ms()
        );
    }
}

#[test]
fn real_weights_segment_native_8k_telephone_audio() {
    let Some(model) = model() else { return };
    let Some(dir) = assist_testkit::real_speech_dir() else {
        return;
    };
    // Ten Harvard sentences read with pauses, recorded at 8 kHz.
    let rate = SampleRate::Hz8000;
    let audio = real_clip(&dir, "en_osr_us_000_0034_8k.orig8k.wav", rate);
    let utterances = segment(&model, rate, &audio);
    let finals: Vec<&Utterance> = utterances.iter().filter(|u| u.is_final()).collect();
    let spans: Vec<(u64, u64)> = finals.iter().map(|u| (u.start_ms, u.end_ms)).collect();
    eprintln!("8 kHz utterances (ms): {spans:?}");
    assert!((8..=12).contains(&finals.len()), "{spans:?}");
    for u in &finals {
        assert!(u.duration_ms() <= 15_000);
        // Given out at 16 kHz for Whisper.
        assert!(u.samples.len().abs_diff(u.duration_ms() as usize * 16) <= 32);
    }
    // In order, not overlapping, and together most of the recording's speech.
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{spans:?}");
}
