//! Streaming transcription with real weights (tests named `real_weights_*`):
//! Whisper tiny.en hears an espeak-ng sentence in 0.5 s chunks.
//!
//! They skip with "skipped: ..." unless `whisper-tiny-en` is ready in
//! `$ASSIST_MODEL_DIR` or `~/.cache/assist/models` (`assist models fetch --only asr-en`)
//! and espeak-ng is on PATH. No wall-clock assertions: latency is measured by
//! `assist-eval asr-stream`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use assist_models::audio::{DecodeOptions, decode_file};
use assist_models::speech::{
    LoadOptions, StreamUpdate, StreamingOptions, StreamingTranscriber, TranscribeOptions,
    Transcriber,
};
use assist_testkit::{Kind, skip};

fn model_root() -> PathBuf {
    std::env::var_os("ASSIST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/assist/models")
        })
}

fn setup() -> Option<Transcriber> {
    let dir = model_root().join("whisper-tiny-en");
    if !dir.join("ready.json").is_file() {
        skip(
            Kind::Model,
            format!(
                "model whisper-tiny-en is not ready in {} (assist models fetch)",
                model_root().display()
            ),
        );
        return None;
    }
    let espeak = Command::new("espeak-ng")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !espeak {
        skip(
            Kind::Tool,
            "espeak-ng is not installed (scripts/install-deps)",
        );
        return None;
    }
    // The first load converts the CTranslate2 model into a staging folder
    // named after the process; two tests converting at once would collide.
    static CONVERTING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = CONVERTING.lock().unwrap_or_else(|e| e.into_inner());
    Some(Transcriber::load(&dir, &LoadOptions::default()).unwrap())
}

fn speak(dir: &Path, text: &str) -> Vec<f32> {
    let out = dir.join("s.wav");
    let st = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&out)
        .arg(text)
        .status()
        .unwrap();
    assert!(st.success());
    decode_file(&out, &DecodeOptions::default()).unwrap().mono()
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn edit_distance(a: &[String], b: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn options() -> StreamingOptions {
    StreamingOptions {
        transcribe: TranscribeOptions {
            language: Some("en".into()),
            ..Default::default()
        },
        min_step_s: 0.5,
        ..Default::default()
    }
}

const SENTENCE: &str = "Please send me the price list for the premium plan by Friday.";

#[test]
fn real_weights_streaming_tiny_en_matches_the_sentence_with_stable_prefixes() {
    let Some(mut asr) = setup() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut audio = vec![0.0f32; 8_000];
    audio.extend(speak(tmp.path(), SENTENCE));
    audio.extend(vec![0.0f32; 16_000]);

    let mut stream = StreamingTranscriber::new(options());
    let mut updates: Vec<StreamUpdate> = Vec::new();
    for chunk in audio.chunks(8_000) {
        updates.push(stream.feed(&mut asr, chunk).unwrap());
    }
    updates.push(stream.finish(&mut asr).unwrap());
    for (i, u) in updates.iter().enumerate() {
        println!(
            "{i}: finals {:?} partial {:?}",
            u.finals.iter().map(|s| &s.text).collect::<Vec<_>>(),
            u.partial.as_ref().map(|s| &s.text)
        );
    }
    let text = stream.committed_text();
    println!("streamed: {text:?}");
    let got = words(&text);
    let want = words(SENTENCE);
    // tiny.en on a synthetic voice: allow two word errors in twelve.
    assert!(
        edit_distance(&got, &want) <= 2,
        "streamed {got:?}, expected {want:?}"
    );

    // Finals only ever append, and each was a prefix of the partial shown before it.
    let mut shown: Option<String> = None;
    let mut so_far = String::new();
    for u in &updates {
        for f in &u.finals {
            if let Some(p) = &shown {
                assert!(
                    words(p).starts_with(&words(&f.text)),
                    "final {:?} was not a prefix of the partial {p:?}",
                    f.text
                );
            }
            so_far = format!("{so_far} {}", f.text);
            shown = shown.as_ref().map(|p| {
                let rest = words(p);
                rest[words(&f.text).len().min(rest.len())..].join(" ")
            });
        }
        if u.decoded {
            shown = u.partial.as_ref().map(|p| p.text.clone());
        }
    }
    assert_eq!(words(&so_far), got);
    // The 1 s pause after the sentence committed it before finish().
    assert!(
        updates[..updates.len() - 1]
            .iter()
            .any(|u| !u.finals.is_empty()),
        "nothing was final before finish()"
    );
}

#[test]
fn real_weights_streaming_silence_and_noise_floor_yield_nothing() {
    let Some(mut asr) = setup() else { return };
    let mut stream = StreamingTranscriber::new(options());
    // 10 s of near-silence (hiss at −60 dBFS), then finish.
    let mut seed = 1u32;
    let hiss: Vec<f32> = (0..16_000 * 10)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.002
        })
        .collect();
    for chunk in hiss.chunks(8_000) {
        let u = stream.feed(&mut asr, chunk).unwrap();
        assert!(u.finals.is_empty() && u.partial.is_none(), "{u:?}");
        assert!(!u.decoded, "silence reached the model");
    }
    assert_eq!(stream.finish(&mut asr).unwrap(), StreamUpdate::default());
    assert_eq!(stream.committed_text(), "");
}
