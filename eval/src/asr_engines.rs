//! Running a Whisper engine over a list of WAV files in a child process —
//! ours (this binary's hidden `asr-run`) or faster-whisper (in its venv) —
//! and reading back the same JSON from both: an [`EngineRun`]. Used by
//! `asr` and `asr-bench`, so both engines always pay the same costs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::setup::{cache_root, ensure_venv, peak_rss_kb};

/// The faster-whisper runner, shipped inside the binary and written next to its venv.
const FW_SCRIPT: &str = include_str!("../scripts/fw_transcribe.py");

/// One engine's run over a list of files (ours and faster-whisper print the same JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineRun {
    pub engine: String,
    pub load_s: f64,
    pub peak_rss_kb: u64,
    pub threads: usize,
    pub results: Vec<FileResult>,
}

/// One transcription of one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileResult {
    pub file: PathBuf,
    pub duration_s: f64,
    pub wall_s: f64,
    pub language: String,
    pub text: String,
}

impl EngineRun {
    /// Best (smallest) wall time per file, in the order files first appear,
    /// with that file's transcription.
    pub fn best_per_file(&self) -> Vec<FileResult> {
        let mut best: Vec<FileResult> = Vec::new();
        for r in &self.results {
            match best.iter_mut().find(|b| b.file == r.file) {
                Some(b) if r.wall_s < b.wall_s => *b = r.clone(),
                Some(_) => {}
                None => best.push(r.clone()),
            }
        }
        best
    }
}

/// The faster-whisper venv's interpreter and the runner script beside it.
pub fn faster_whisper(base_python: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let python = ensure_venv(
        "faster-whisper",
        base_python,
        "import faster_whisper",
        &["faster-whisper"],
        &[],
    )?;
    let script = cache_root().join("venvs/faster-whisper/fw_transcribe.py");
    if std::fs::read_to_string(&script).ok().as_deref() != Some(FW_SCRIPT) {
        std::fs::write(&script, FW_SCRIPT)?;
    }
    Ok((python, script))
}

// ---------------------------------------------------------------- engines

/// How both engines are asked to transcribe.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The store's CTranslate2 model directory.
    pub model: PathBuf,
    pub threads: usize,
    /// Forced language, or `None` to detect.
    pub language: Option<String>,
    /// Initial prompt given to both (ours adds the Mandarin hint by default;
    /// passing it explicitly keeps the two engines' inputs identical).
    pub prompt: Option<String>,
    /// Weight precision for ours (`f32`, `q8`, `mixed`; the product uses `mixed`).
    pub precision: String,
    /// Each file is one live utterance: ours decodes it as the live
    /// pipeline does (`full` or `fit` encoder window), faster-whisper with
    /// its Silero VAD filter, greedy, no timestamps. `None`: long-form.
    pub utterance: Option<String>,
}

/// Run ours in a child process (this binary's `asr-run`), so its peak memory
/// is its own; `files` may repeat to time several rounds.
pub fn run_ours(spec: &RunSpec, files: &[PathBuf]) -> anyhow::Result<EngineRun> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("asr-run")
        .arg("--model")
        .arg(&spec.model)
        .arg("--threads")
        .arg(spec.threads.to_string())
        .arg("--precision")
        .arg(&spec.precision)
        // candle's CPU kernels (gemm, conv) size their pools from this.
        .env("RAYON_NUM_THREADS", spec.threads.to_string());
    if let Some(l) = &spec.language {
        cmd.arg("--language").arg(l);
    }
    if let Some(p) = &spec.prompt {
        cmd.arg("--prompt").arg(p);
    }
    if let Some(u) = &spec.utterance {
        cmd.arg("--utterance").arg(u);
    }
    cmd.args(files);
    run_json(cmd, "ours (assist-eval asr-run)")
}

/// Run faster-whisper in its venv on the same files.
pub fn run_faster_whisper(
    base_python: &str,
    spec: &RunSpec,
    files: &[PathBuf],
) -> anyhow::Result<EngineRun> {
    let (python, script) = faster_whisper(base_python)?;
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg("--model")
        .arg(&spec.model)
        .arg("--threads")
        .arg(spec.threads.to_string())
        .arg("--beam-size")
        .arg("1")
        .env("OMP_NUM_THREADS", spec.threads.to_string());
    if let Some(l) = &spec.language {
        cmd.arg("--language").arg(l);
    }
    if let Some(p) = &spec.prompt {
        cmd.arg("--initial-prompt").arg(p);
    }
    if spec.utterance.is_some() {
        cmd.arg("--utterance");
    }
    cmd.args(files);
    run_json(cmd, "faster-whisper")
}

fn run_json(mut cmd: Command, what: &str) -> anyhow::Result<EngineRun> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({})", out.status);
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let line = line
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("reading {what}'s output: {line:.200}"))
}

/// The child side of [`run_ours`]: load, transcribe each file, print JSON.
pub fn asr_run(
    model: &Path,
    threads: usize,
    language: Option<String>,
    prompt: Option<String>,
    precision: &str,
    utterance: Option<&str>,
    files: &[PathBuf],
) -> anyhow::Result<()> {
    use assist_models::audio::{DecodeOptions, decode_file};
    use assist_models::speech::{LoadOptions, Transcribe, TranscribeOptions, Transcriber};

    let load_opts = LoadOptions {
        precision: precision.parse().map_err(anyhow::Error::msg)?,
        ..LoadOptions::default()
    };
    // Convert once (cached) before timing the load, as faster-whisper's
    // directory is ready to load too.
    if model.join("model.bin").is_file() {
        assist_models::speech::convert_ct2(
            model,
            &assist_models::speech::converted_dir_for(model),
        )?;
    }
    let started = Instant::now();
    let mut asr = Transcriber::load(model, &load_opts)?;
    let load_s = started.elapsed().as_secs_f64();
    let mut opts = TranscribeOptions {
        language,
        initial_prompt: prompt,
        ..TranscribeOptions::default()
    };
    match utterance {
        None => {}
        Some(window @ ("full" | "fit")) => {
            // As `assist_server::live::asr` decodes a live utterance.
            opts.timestamps = false;
            opts.condition_on_previous_text = false;
            opts.temperatures = vec![0.0];
            opts.max_tokens_per_window = 160;
            if window == "fit" {
                opts.fit_window = Some(assist_models::speech::FitWindow::default());
            }
        }
        Some(other) => anyhow::bail!("--utterance is `full` or `fit`, not `{other}`"),
    }
    let mut results = Vec::new();
    for file in files {
        let audio = decode_file(file, &DecodeOptions::default())?;
        let samples = audio.mono();
        let started = Instant::now();
        let t = if utterance.is_some() {
            asr.transcribe_window(&samples, &opts)?
        } else {
            asr.transcribe(&samples, &opts)?
        };
        let wall_s = started.elapsed().as_secs_f64();
        results.push(FileResult {
            file: file.clone(),
            duration_s: samples.len() as f64 / 16_000.0,
            wall_s,
            text: t.text(),
            language: t.language,
        });
    }
    let run = EngineRun {
        engine: format!("ours (candle, {precision})"),
        load_s,
        peak_rss_kb: peak_rss_kb(),
        threads,
        results,
    };
    println!("{}", serde_json::to_string(&run)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_per_file_keeps_the_fastest_round_in_order() {
        let f = |file: &str, wall_s: f64| FileResult {
            file: file.into(),
            duration_s: 10.0,
            wall_s,
            language: "en".into(),
            text: format!("{file} {wall_s}"),
        };
        let run = EngineRun {
            engine: "x".into(),
            load_s: 0.0,
            peak_rss_kb: 0,
            threads: 2,
            results: vec![f("a", 3.0), f("b", 2.0), f("a", 1.0), f("b", 4.0)],
        };
        let best = run.best_per_file();
        assert_eq!(best.len(), 2);
        assert_eq!((best[0].file.to_str(), best[0].wall_s), (Some("a"), 1.0));
        assert_eq!((best[1].file.to_str(), best[1].wall_s), (Some("b"), 2.0));
    }
}
