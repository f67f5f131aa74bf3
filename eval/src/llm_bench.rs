//! `assist-eval llm-bench`: our LLM engine (candle, `assist_models::llm`)
//! against llama.cpp (llama-cpp-python) on the same GGUF, the same prompt
//! token ids and the same number of threads.
//!
//! How it measures, so both sides pay the same costs:
//! - The prompt is a synthetic sales-call transcript with an instruction to
//!   write a long summary, as ChatML ids from our tokenizer. Both engines get
//!   exactly these ids (the peer reads them from a JSON file), so tokenizer
//!   differences cannot change the work.
//! - Each engine runs in its own child process: ours is this binary's hidden
//!   `llm-run` subcommand (`RAYON_NUM_THREADS` = threads), llama.cpp is a
//!   short Python script in the venv `~/.cache/assist/venvs/llamacpp`
//!   (created on first use with `pip install llama-cpp-python`, which compiles
//!   llama.cpp: about ten minutes on two cores), with `n_threads` =
//!   `n_threads_batch` = threads.
//! - Per round: reset the cache, read the prompt (prompt tokens/s), then decode
//!   greedily one token at a time (generation tokens/s = one-token forward
//!   passes per second after the first token). The peer decodes as many tokens
//!   as ours did, greedy (argmax) too, so both outputs can be compared. Each
//!   round is a fresh child process of each engine, alternating (ours, peer,
//!   ours, peer, ...) so that other work on a shared machine hits both alike;
//!   the best round counts; load time and peak memory are reported apart.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use assist_models::llm::{GenerateOptions, Llm, LlmLoadOptions, Message};
use serde::{Deserialize, Serialize};

use crate::report::{Better, Figure, Report};
use crate::setup::{cache_root, ensure_venv, model_path, peak_rss_kb};

/// The llama.cpp side: load, then per round eval the prompt and decode greedily.
const PEER_SCRIPT: &str = r#"
import json, sys, time, resource
import numpy as np
from llama_cpp import Llama
args = json.load(open(sys.argv[1]))
t0 = time.perf_counter()
llm = Llama(model_path=args["model"], n_ctx=len(args["prompt_ids"]) + args["gen_tokens"] + 16,
            n_threads=args["threads"], n_threads_batch=args["threads"], n_batch=512,
            verbose=False)
load_s = time.perf_counter() - t0
n_vocab = llm.n_vocab()
def last_argmax():
    # Without logits_all only the last position's logits exist (llama_get_logits).
    return int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))))
rounds = []
for _ in range(args["rounds"]):
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(args["prompt_ids"])
    prompt_s = time.perf_counter() - t0
    ids = []
    tok = last_argmax()
    first_s = time.perf_counter() - t0
    ids.append(tok)
    t1 = time.perf_counter()
    for _ in range(args["gen_tokens"] - 1):
        llm.eval([tok])
        tok = last_argmax()
        ids.append(tok)
    gen_s = time.perf_counter() - t1
    rounds.append({"prompt_tokens": len(args["prompt_ids"]), "prompt_s": prompt_s,
                   "ttft_s": first_s, "gen_steps": len(ids) - 1, "gen_s": gen_s, "ids": ids})
print(json.dumps({"engine": "llama.cpp (llama-cpp-python)", "load_s": load_s,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "threads": args["threads"], "rounds": rounds}))
"#;

/// The llama-cpp-python venv (its name under `~/.cache/assist/venvs`) and
/// the CMake flags it is built with: every SIMD extension this CPU has, as a
/// native build would pick, except AMX. A native build on a Sapphire Rapids
/// VM here crashed on the first prompt (SIGSEGV in `ggml_backend_amx_mul_mat`),
/// and ggml's `GGML_AMX_*` switches only apply with `GGML_NATIVE=OFF`.
fn peer_build() -> (String, String) {
    let mut flags = vec!["-DGGML_NATIVE=OFF".to_string()];
    #[cfg(not(target_arch = "x86_64"))]
    let tag = "generic";
    #[cfg(target_arch = "x86_64")]
    let tag = {
        use std::arch::is_x86_feature_detected as has;
        let features = [
            ("AVX", has!("avx")),
            ("AVX2", has!("avx2")),
            ("FMA", has!("fma")),
            ("F16C", has!("f16c")),
            ("BMI2", has!("bmi2")),
            ("AVX_VNNI", has!("avxvnni")),
            (
                "AVX512",
                has!("avx512f") && has!("avx512bw") && has!("avx512vl"),
            ),
            ("AVX512_VBMI", has!("avx512vbmi")),
            ("AVX512_VNNI", has!("avx512vnni")),
            ("AVX512_BF16", has!("avx512bf16")),
        ];
        for (name, on) in features {
            flags.push(format!("-DGGML_{name}={}", if on { "ON" } else { "OFF" }));
        }
        if has!("avx512f") {
            "avx512"
        } else if has!("avx2") {
            "avx2"
        } else {
            "sse"
        }
    };
    (format!("llamacpp-{tag}"), flags.join(" "))
}

/// What `llm-bench` was asked.
#[derive(Debug, Clone)]
pub struct LlmBenchArgs {
    /// Model id or role in the store.
    pub model: String,
    pub threads: usize,
    /// Approximate prompt length, tokens.
    pub prompt_tokens: usize,
    /// Tokens to generate.
    pub gen_tokens: usize,
    pub rounds: usize,
    pub python: String,
    /// Measure ours only.
    pub skip_peer: bool,
    /// Load our weights as they are in the file (no Q5_0 → Q8_0 re-quantization).
    pub no_requant: bool,
    /// Read prompts with the quantized kernels (no dense f32 weights).
    pub no_dense_prefill: bool,
    /// Run Q4_K/Q6_K matrices on candle's kernels instead of ours.
    pub candle_kquants: bool,
}

/// One engine's rounds (ours and the peer print the same JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LlmRun {
    pub engine: String,
    pub load_s: f64,
    pub peak_rss_kb: u64,
    pub threads: usize,
    pub rounds: Vec<LlmRound>,
    /// The prompt ids (ours only; the peer is given them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_ids: Vec<u32>,
}

/// One prompt + greedy decode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LlmRound {
    pub prompt_tokens: usize,
    pub prompt_s: f64,
    pub ttft_s: f64,
    /// One-token forward passes after the first token.
    pub gen_steps: usize,
    pub gen_s: f64,
    /// Generated ids, first token included.
    pub ids: Vec<u32>,
}

impl LlmRound {
    fn prompt_tps(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_s.max(1e-9)
    }
    fn gen_tps(&self) -> f64 {
        self.gen_steps as f64 / self.gen_s.max(1e-9)
    }
}

impl LlmRun {
    fn best(&self, f: impl Fn(&LlmRound) -> f64) -> f64 {
        self.rounds.iter().map(f).fold(0.0, f64::max)
    }
    fn best_ttft(&self) -> f64 {
        self.rounds
            .iter()
            .map(|r| r.ttft_s)
            .fold(f64::INFINITY, f64::min)
    }
}

/// A sales-call transcript of about `tokens` tokens (Chinese and English
/// turns), with the instruction to summarise it at length.
pub fn bench_messages(llm: &Llm, tokens: usize) -> anyhow::Result<Vec<Message>> {
    const TURNS: &[&str] = &[
        "销售：您好，我是云启科技的小王，请问现在方便聊几分钟吗？",
        "客户：可以，你们上次发的报价我看了，价格有点高。",
        "Sales: I understand. Could you tell me which modules your team actually needs?",
        "Customer: Mainly call recording and the analytics dashboard, maybe 50 seats.",
        "销售：好的，五十个坐席的话我们可以申请阶梯价，下周三前我把新报价发给您。",
        "客户：另外合同里的数据保留期限要写清楚，我们法务很关心这个。",
        "Sales: Sure, retention is configurable, 180 days by default, and we can put that in writing.",
        "客户：还有售后响应时间，上次供应商拖了一周才处理。",
        "销售：我们承诺工作日四小时内响应，紧急问题有专人跟进。",
        "Customer: Alright. Send me the revised quote and a draft contract by Friday EOD.",
    ];
    let instruction = "\n\nWrite a detailed summary of this call of at least 400 words: the customer's needs, every objection and how it was answered, all follow-up tasks with owners and due dates, and the risks.";
    let mut transcript = String::from("Transcript:\n");
    let mut turn = 0;
    loop {
        let messages = vec![
            Message::system("You are an assistant that analyses sales calls."),
            Message::user(format!("{transcript}{instruction}")),
        ];
        if llm.encode_chat(&messages)?.len() >= tokens || turn > 10_000 {
            return Ok(messages);
        }
        transcript.push_str(TURNS[turn % TURNS.len()]);
        transcript.push('\n');
        turn += 1;
    }
}

/// The child side of our engine: load, run the rounds, print JSON.
pub fn llm_run(
    model: &Path,
    threads: usize,
    prompt_tokens: usize,
    gen_tokens: usize,
    rounds: usize,
    opts: &LlmLoadOptions,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut llm = Llm::load_with(model, opts)?;
    let load_s = started.elapsed().as_secs_f64();
    let messages = bench_messages(&llm, prompt_tokens)?;
    let prompt_ids = llm.encode_chat(&messages)?;
    let mut out = Vec::new();
    for _ in 0..rounds.max(1) {
        // Every round reads the whole prompt, as the peer's does after reset().
        llm.clear_cache();
        let mut ids = Vec::new();
        let g = llm.generate(
            &prompt_ids,
            &GenerateOptions::greedy(gen_tokens),
            &mut |t| {
                ids.push(t.id);
                true
            },
        )?;
        out.push(LlmRound {
            prompt_tokens: g.prompt_tokens,
            prompt_s: g.prompt_ms / 1e3,
            ttft_s: g.time_to_first_token_ms / 1e3,
            gen_steps: g.generated_tokens.saturating_sub(1),
            gen_s: (g.total_ms - g.time_to_first_token_ms) / 1e3,
            ids,
        });
    }
    let run = LlmRun {
        engine: format!(
            "ours (candle, {} tensors re-quantized to Q8_0, {} Q4_K/Q6_K matrices on our AVX-512 VNNI kernels, other prompts on {})",
            llm.info().requantized_tensors,
            llm.info().kquant_tensors,
            if opts.dense_prefill {
                "dense f32 weights"
            } else {
                "the quantized kernels"
            }
        ),
        load_s,
        peak_rss_kb: peak_rss_kb(),
        threads,
        rounds: out,
        prompt_ids,
    };
    println!("{}", serde_json::to_string(&run)?);
    Ok(())
}

fn run_json(mut cmd: Command, what: &str) -> anyhow::Result<LlmRun> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("reading {what}'s output: {line:.200}"))
}

fn run_peer(
    args: &LlmBenchArgs,
    gguf: &Path,
    prompt_ids: &[u32],
    gen_tokens: usize,
) -> anyhow::Result<LlmRun> {
    let (venv, cmake_args) = peer_build();
    eprintln!(
        "llama.cpp peer: venv ~/.cache/assist/venvs/{venv} (the first run compiles llama-cpp-python with {cmake_args})"
    );
    let python = ensure_venv(
        &venv,
        &args.python,
        "import llama_cpp, numpy",
        &["llama-cpp-python", "numpy"],
        &[("CMAKE_ARGS", cmake_args.as_str())],
    )?;
    let dir = cache_root().join("venvs").join(&venv);
    let script = dir.join("llm_peer.py");
    if std::fs::read_to_string(&script).ok().as_deref() != Some(PEER_SCRIPT) {
        std::fs::write(&script, PEER_SCRIPT)?;
    }
    let input = dir.join("llm_peer_input.json");
    std::fs::write(
        &input,
        serde_json::to_string(&serde_json::json!({
            "model": gguf,
            "threads": args.threads,
            "prompt_ids": prompt_ids,
            "gen_tokens": gen_tokens,
            "rounds": 1,
        }))?,
    )?;
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg(&input)
        .env("OMP_NUM_THREADS", args.threads.to_string());
    run_json(cmd, "llama.cpp (llama-cpp-python)")
}

/// Rounds of two runs of one engine as one run: the fastest load, the
/// highest memory, all rounds.
fn merge(acc: Option<LlmRun>, next: LlmRun) -> LlmRun {
    match acc {
        None => next,
        Some(mut acc) => {
            acc.load_s = acc.load_s.min(next.load_s);
            acc.peak_rss_kb = acc.peak_rss_kb.max(next.peak_rss_kb);
            acc.rounds.extend(next.rounds);
            acc
        }
    }
}

/// `assist-eval llm-bench`.
pub fn run(model_dir: PathBuf, args: &LlmBenchArgs, out: &Path) -> anyhow::Result<Report> {
    let model = model_path(&model_dir, &args.model)?;
    eprintln!(
        "ours: {} threads, ~{} prompt tokens, {} generated, {} rounds",
        args.threads, args.prompt_tokens, args.gen_tokens, args.rounds
    );
    let ours_once = || -> anyhow::Result<LlmRun> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("llm-run")
            .arg("--model")
            .arg(&model)
            .arg("--threads")
            .arg(args.threads.to_string())
            .arg("--prompt-tokens")
            .arg(args.prompt_tokens.to_string())
            .arg("--gen-tokens")
            .arg(args.gen_tokens.to_string())
            .arg("--rounds")
            .arg("1")
            // candle's CPU kernels size their pools from this.
            .env("RAYON_NUM_THREADS", args.threads.to_string());
        if args.no_requant {
            cmd.arg("--no-requant");
        }
        if args.no_dense_prefill {
            cmd.arg("--no-dense-prefill");
        }
        if args.candle_kquants {
            cmd.arg("--candle-kquants");
        }
        run_json(cmd, "ours (assist-eval llm-run)")
    };
    let gguf = {
        let store_file = model.join("model.gguf");
        if store_file.is_file() {
            store_file
        } else {
            model.clone()
        }
    };

    // Rounds alternate between the engines (ours, peer, ours, peer, ...), so
    // a burst of other work on the machine hits both alike.
    let mut ours: Option<LlmRun> = None;
    let mut peer: Option<LlmRun> = None;
    let mut peer_failed = args.skip_peer;
    for round in 0..args.rounds.max(1) {
        eprintln!("round {}: ours", round + 1);
        let o = ours_once()?;
        let generated = o.rounds.first().map(|r| r.ids.len()).unwrap_or(0);
        let prompt_ids = o.prompt_ids.clone();
        ours = Some(merge(ours, o));
        if !peer_failed {
            eprintln!("round {}: llama.cpp", round + 1);
            match run_peer(args, &gguf, &prompt_ids, generated.max(2)) {
                Ok(p) => peer = Some(merge(peer, p)),
                Err(e) => {
                    eprintln!("no llama.cpp peer: {e:#}");
                    peer_failed = true;
                }
            }
        }
    }
    let ours = ours.context("no round of ours ran")?;

    let name = if args.model == "llm-small" {
        "llm-bench".to_string()
    } else {
        format!("llm-bench-{}", args.model)
    };
    let mut r = Report::new(
        &name,
        format!(
            "Local LLM speed: ours (candle, assist_models::llm) vs llama.cpp on the same GGUF ({}), the same {} prompt ids, greedy, {} thread(s); best of {} round(s).",
            args.model,
            ours.prompt_ids.len(),
            args.threads,
            args.rounds
        ),
    );
    let peer_name = "llama.cpp";
    let fig = |metric: &str, unit: &str, ours_v: f64, peer_v: Option<f64>, better| {
        let f = Figure::new(metric, unit, ours_v, better);
        match peer_v {
            Some(v) => f.peer(peer_name, v),
            None => f,
        }
    };
    let p = peer.as_ref();
    r.push(fig(
        "prompt processing",
        "tokens/s",
        ours.best(LlmRound::prompt_tps),
        p.map(|p| p.best(LlmRound::prompt_tps)),
        Better::Higher,
    ));
    r.push(fig(
        "generation",
        "tokens/s",
        ours.best(LlmRound::gen_tps),
        p.map(|p| p.best(LlmRound::gen_tps)),
        Better::Higher,
    ));
    r.push(fig(
        "time to first token",
        "ms",
        ours.best_ttft() * 1e3,
        p.map(|p| p.best_ttft() * 1e3),
        Better::Lower,
    ));
    r.push(fig(
        "load",
        "s",
        ours.load_s,
        p.map(|p| p.load_s),
        Better::Lower,
    ));
    r.push(fig(
        "peak memory",
        "MiB",
        ours.peak_rss_kb as f64 / 1024.0,
        p.map(|p| p.peak_rss_kb as f64 / 1024.0),
        Better::Lower,
    ));
    if let (Some(o), Some(pr)) = (ours.rounds.first(), p.and_then(|p| p.rounds.first())) {
        let same = o
            .ids
            .iter()
            .zip(&pr.ids)
            .take_while(|(a, b)| a == b)
            .count();
        r.note(format!(
            "greedy outputs agree on the first {same} of {} generated tokens (quantized kernels round differently, so long outputs may drift apart)",
            o.ids.len()
        ));
    }
    if peer.is_none() {
        r.note("llama.cpp was not measured in this run (--skip-peer, or llama-cpp-python could not be installed); no ratio".to_string());
    }
    r.note(format!("ours: {}", ours.engine));
    r.note(format!(
        "generated {} tokens per round; generation tokens/s counts the one-token forward passes after the first token",
        ours.rounds.first().map(|r| r.ids.len()).unwrap_or(0)
    ));
    r.finish(out)?;
    Ok(r)
}
