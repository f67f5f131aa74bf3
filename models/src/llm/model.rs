//! [`Llm`]: quantized GGUF weights on candle, with their tokenizer.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_qwen3;
use serde::Serialize;

use super::chat::{QWEN_DEFAULT_SYSTEM, format_chatml};
use super::generate::{Forward, run};
use super::qwen2::Qwen2;
use super::requant;
use super::tokenizer::LlmTokenizer;
use super::{Generate, GenerateOptions, Generation, Message, StreamToken};
use crate::{Error, Result};

/// The weights file of an LLM in the model store.
pub const GGUF_FILE_NAME: &str = "model.gguf";

/// Model families this build can run from GGUF (`general.architecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Qwen2 / Qwen2.5 (the manifest's Qwen2.5-Coder models).
    Qwen2,
    /// Qwen3.
    Qwen3,
}

impl Architecture {
    fn from_gguf(name: &str) -> Option<Self> {
        match name {
            "qwen2" => Some(Architecture::Qwen2),
            "qwen3" => Some(Architecture::Qwen3),
            _ => None,
        }
    }

    /// The GGUF metadata prefix (`qwen2`, `qwen3`).
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
        }
    }
}

/// How to load an [`Llm`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmLoadOptions {
    /// Re-quantize Q4_1/Q5_0/Q5_1 matrices to Q8_0 at load time: candle has
    /// only scalar kernels for those block types (see `requant`). On by
    /// default; off to measure the difference.
    pub requantize_slow_blocks: bool,
    /// Also keep each layer's matrices as f32 for reading prompts, which
    /// then run on candle's f32 GEMM (several times faster on long prompts;
    /// about 4 bytes per parameter more memory: 1.4 GB for the 0.5B model,
    /// 5.2 GB for the 1.5B). Qwen2 only. On by default.
    pub dense_prefill: bool,
    /// Run Q4_K and Q6_K matrices (a Q4_K_M model's) on our AVX-512 VNNI
    /// kernels where the CPU has them (`qk`), for decoding and prompts
    /// alike; such matrices then need no dense copy. Qwen2 only. On by
    /// default; off to measure candle's own k-quant kernels.
    pub kquant_kernels: bool,
}

impl Default for LlmLoadOptions {
    fn default() -> Self {
        LlmLoadOptions {
            requantize_slow_blocks: true,
            dense_prefill: true,
            kquant_kernels: true,
        }
    }
}

/// What was loaded.
#[derive(Debug, Clone, Serialize)]
pub struct LlmInfo {
    /// `general.name` of the GGUF, else its file name.
    pub name: String,
    pub architecture: Architecture,
    /// Tokens of prompt plus generated text the model can attend to.
    pub context_length: usize,
    pub layers: usize,
    pub embedding_length: usize,
    /// Rows of the embedding matrix (may exceed the tokenizer's vocabulary).
    pub vocab_size: usize,
    /// The GGUF file.
    pub path: PathBuf,
    pub file_bytes: u64,
    /// Whether the tokenizer came from a `tokenizer.json` (else GGUF metadata).
    pub tokenizer_json: bool,
    /// Matrices re-quantized to Q8_0 at load time (see [`LlmLoadOptions`]).
    pub requantized_tensors: usize,
    /// Q4_K/Q6_K matrices on our AVX-512 VNNI kernels, for prompts and
    /// decoding (see [`LlmLoadOptions::kquant_kernels`]); the rest run on
    /// candle's kernels, with a dense f32 copy for prompts if asked.
    pub kquant_tensors: usize,
}

enum Weights {
    /// Our own forward pass (in-place cache, prefix reuse): see `qwen2`.
    Qwen2(Qwen2),
    Qwen3(quantized_qwen3::ModelWeights),
}

struct Engine {
    weights: Weights,
    device: Device,
    /// The token ids whose keys and values the cache holds, in order.
    cached: Vec<u32>,
}

impl Forward for Engine {
    fn forward(&mut self, ids: &[u32], pos: usize) -> candle_core::Result<Tensor> {
        self.cached.truncate(pos);
        let logits = match &mut self.weights {
            Weights::Qwen2(w) => w.forward(ids, pos)?,
            Weights::Qwen3(w) => {
                let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
                w.forward(&input, pos)?.flatten_all()?
            }
        };
        self.cached.extend_from_slice(ids);
        Ok(logits)
    }

    fn reset(&mut self) {
        self.cached.clear();
        match &mut self.weights {
            Weights::Qwen2(w) => w.clear(),
            Weights::Qwen3(w) => w.clear_kv_cache(),
        }
    }

    fn reuse_prefix(&mut self, prompt: &[u32]) -> usize {
        let Weights::Qwen2(w) = &mut self.weights else {
            self.reset();
            return 0;
        };
        // At least the prompt's last token is fed again: its logits start the answer.
        let keep = self
            .cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len().saturating_sub(1))
            .min(w.len());
        self.cached.truncate(keep);
        w.truncate(keep);
        keep
    }
}

/// A chat LLM on candle (CPU): weights, key/value cache and tokenizer. Meant
/// to live on one owner thread; see the [module docs](super).
pub struct Llm {
    engine: Engine,
    tokenizer: LlmTokenizer,
    default_system: Option<String>,
    info: LlmInfo,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("info", &self.info)
            .field("tokenizer", &self.tokenizer)
            .finish_non_exhaustive()
    }
}

impl Llm {
    /// Load from the model store's directory (`model.gguf`), a directory
    /// holding one `*.gguf` (and optionally `tokenizer.json`), or a `.gguf`
    /// file. A `tokenizer.json` beside the GGUF is used when present; else
    /// the tokenizer is built from the GGUF's metadata.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &LlmLoadOptions::default())
    }

    /// [`Llm::load`] with options.
    pub fn load_with(path: &Path, opts: &LlmLoadOptions) -> Result<Self> {
        let (gguf, tokenizer_json) = locate(path)?;
        Self::load_files(&gguf, tokenizer_json.as_deref(), opts)
    }

    /// Load the GGUF at `gguf` with the tokenizer from `tokenizer_json`, or
    /// from the GGUF's metadata when `None`.
    pub fn load_files(
        gguf: &Path,
        tokenizer_json: Option<&Path>,
        opts: &LlmLoadOptions,
    ) -> Result<Self> {
        let started = std::time::Instant::now();
        let mut file = std::fs::File::open(gguf).map_err(|e| Error::io("opening GGUF", gguf, e))?;
        let file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let content = gguf_file::Content::read(&mut file).map_err(|e| Error::ModelFormat {
            path: gguf.to_path_buf(),
            reason: format!("not a readable GGUF file: {e}"),
        })?;
        let bad = |reason: String| Error::ModelFormat {
            path: gguf.to_path_buf(),
            reason,
        };
        let md = &content.metadata;
        let arch_name = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        let architecture = Architecture::from_gguf(&arch_name).ok_or_else(|| {
            bad(format!(
                "architecture `{arch_name}` is not supported (qwen2 and qwen3 are)"
            ))
        })?;
        let prefix = architecture.as_str();
        let usize_of = |key: &str| -> Result<usize> {
            md.get(&format!("{prefix}.{key}"))
                .and_then(|v| v.to_u32().ok())
                .map(|v| v as usize)
                .ok_or_else(|| bad(format!("no `{prefix}.{key}` in the metadata")))
        };
        let context_length = usize_of("context_length")?;
        let layers = usize_of("block_count")?;
        let embedding_length = usize_of("embedding_length")?;
        let vocab_size = content
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .ok_or_else(|| bad("no token_embd.weight tensor".into()))?;
        let name = md
            .get("general.name")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| {
                gguf.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
        let default_system = md
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .filter(|t| t.contains(QWEN_DEFAULT_SYSTEM))
            .map(|_| QWEN_DEFAULT_SYSTEM.to_string());

        let tokenizer = match tokenizer_json {
            Some(json) => LlmTokenizer::from_tokenizer_json(json, Some(&content))?,
            None => LlmTokenizer::from_gguf(&content, gguf)?,
        };
        if tokenizer.vocab_size() > vocab_size {
            return Err(bad(format!(
                "the tokenizer has {} tokens but the weights only {vocab_size}",
                tokenizer.vocab_size()
            )));
        }

        let device = Device::Cpu;
        let load_err = |e: candle_core::Error| Error::Load {
            model: name.clone(),
            reason: e.to_string(),
        };
        let slow = if opts.requantize_slow_blocks {
            requant::slow_tensors(&content)
        } else {
            Vec::new()
        };
        let weights = if slow.is_empty() {
            load_weights(architecture, content, &mut file, &device, opts).map_err(load_err)?
        } else {
            let mut image = requant::requantize(&content, &mut file, &slow, gguf)?;
            drop(content);
            let content = gguf_file::Content::read(&mut image).map_err(load_err)?;
            load_weights(architecture, content, &mut image, &device, opts).map_err(load_err)?
        };
        let info = LlmInfo {
            name,
            architecture,
            context_length,
            layers,
            embedding_length,
            vocab_size,
            path: gguf.to_path_buf(),
            file_bytes,
            tokenizer_json: tokenizer_json.is_some(),
            requantized_tensors: slow.len(),
            kquant_tensors: match &weights {
                Weights::Qwen2(w) => w.kquant_matrices(),
                Weights::Qwen3(_) => 0,
            },
        };
        tracing::info!(
            model = %info.name,
            arch = architecture.as_str(),
            layers,
            context_length,
            tokenizer_json = info.tokenizer_json,
            requantized = slow.len(),
            kquant = info.kquant_tensors,
            load_ms = started.elapsed().as_millis() as u64,
            "llm loaded"
        );
        Ok(Llm {
            engine: Engine {
                weights,
                device,
                cached: Vec::new(),
            },
            tokenizer,
            default_system,
            info,
        })
    }

    /// Answer `messages`: ChatML prompt, then [`Llm::generate`].
    pub fn chat(
        &mut self,
        messages: &[Message],
        opts: &GenerateOptions,
        on_token: &mut dyn FnMut(StreamToken<'_>) -> bool,
    ) -> Result<Generation> {
        let prompt = self.encode_chat(messages)?;
        self.generate(&prompt, opts, on_token)
    }

    /// Continue the token ids `prompt` (which must already hold any chat
    /// template). Every call is independent: for Qwen2 the keys and values of
    /// the longest prefix shared with the previous call (a common system
    /// prompt) are reused instead of recomputed, which changes the result only
    /// by float rounding; other models start from an empty cache.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        opts: &GenerateOptions,
        on_token: &mut dyn FnMut(StreamToken<'_>) -> bool,
    ) -> Result<Generation> {
        run(
            &mut self.engine,
            &self.tokenizer,
            prompt,
            self.info.context_length,
            opts,
            on_token,
            &self.info.name,
        )
    }

    /// Forget the key/value cache, so the next call computes its whole
    /// prompt (benchmarks measure prompt speed this way).
    pub fn clear_cache(&mut self) {
        self.engine.reset();
    }

    /// The prompt ids of `messages`, with the generation prompt.
    pub fn encode_chat(&self, messages: &[Message]) -> Result<Vec<u32>> {
        self.tokenizer
            .encode_chat(messages, self.default_system.as_deref(), true)
    }

    /// The prompt of `messages` as text (for logs and debugging).
    pub fn format_prompt(&self, messages: &[Message]) -> String {
        format_chatml(messages, self.default_system.as_deref(), true)
    }

    /// The system prompt used when a conversation has none (Qwen2.5's
    /// template has one; Qwen3's does not).
    pub fn default_system(&self) -> Option<&str> {
        self.default_system.as_deref()
    }

    /// Replace (or with `None` drop) the default system prompt.
    pub fn set_default_system(&mut self, system: Option<String>) {
        self.default_system = system;
    }

    pub fn tokenizer(&self) -> &LlmTokenizer {
        &self.tokenizer
    }

    pub fn info(&self) -> &LlmInfo {
        &self.info
    }
}

impl Generate for Llm {
    fn chat(
        &mut self,
        messages: &[Message],
        opts: &GenerateOptions,
        on_token: &mut dyn FnMut(StreamToken<'_>) -> bool,
    ) -> Result<Generation> {
        Llm::chat(self, messages, opts, on_token)
    }

    fn count_chat_tokens(&self, messages: &[Message]) -> Result<usize> {
        Ok(self.encode_chat(messages)?.len())
    }

    fn context_length(&self) -> usize {
        self.info.context_length
    }

    fn name(&self) -> &str {
        &self.info.name
    }
}

fn load_weights<R: std::io::Read + std::io::Seek>(
    architecture: Architecture,
    content: gguf_file::Content,
    reader: &mut R,
    device: &Device,
    opts: &LlmLoadOptions,
) -> candle_core::Result<Weights> {
    Ok(match architecture {
        Architecture::Qwen2 => Weights::Qwen2(Qwen2::from_gguf(
            content,
            reader,
            device,
            opts.dense_prefill,
            opts.kquant_kernels,
        )?),
        Architecture::Qwen3 => Weights::Qwen3(quantized_qwen3::ModelWeights::from_gguf(
            content, reader, device,
        )?),
    })
}

/// The GGUF file and optional `tokenizer.json` for `path`.
pub(crate) fn locate(path: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    let bad = |reason: String| Error::BadLayout {
        dir: path.to_path_buf(),
        reason,
    };
    let beside = |dir: &Path| {
        let json = dir.join("tokenizer.json");
        json.is_file().then_some(json)
    };
    if path.is_file() {
        let dir = path.parent().unwrap_or(Path::new("."));
        return Ok((path.to_path_buf(), beside(dir)));
    }
    if !path.is_dir() {
        return Err(bad("does not exist".into()));
    }
    let store_file = path.join(GGUF_FILE_NAME);
    if store_file.is_file() {
        return Ok((store_file, beside(path)));
    }
    let mut ggufs: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::io("reading model directory", path, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        })
        .collect();
    ggufs.sort();
    match ggufs.len() {
        0 => Err(bad("no *.gguf file in it".into())),
        1 => Ok((ggufs.remove(0), beside(path))),
        n => Err(bad(format!(
            "{n} *.gguf files in it; name the one to use: {}",
            ggufs
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
