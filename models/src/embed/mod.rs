//! Text embeddings for retrieval: multilingual-e5-small on candle.
//!
//! How the types fit together:
//!
//! - [`E5s1File`] reads and validates the `E5S1` container the embedder
//!   package ships (hyper-parameters, tensor directory, Q4_0 blocks); the
//!   module docs of [`e5s1`] describe the layout.
//! - [`Embedder`] is the model: the tokenizer from `tokenizer.json`, a
//!   BERT/XLM-R encoder whose linear layers are the Q4_0 weights expanded
//!   once to f32 (or f16, or kept Q4_0: see [`Compute`]), mean (or CLS)
//!   pooling and L2 normalisation. [`Embedder::load`] takes our
//!   `E5S1` directory or a Hugging Face directory (safetensors + config.json +
//!   tokenizer.json, BERT or XLM-R, e.g. all-MiniLM-L6-v2 or bge-m3).
//! - [`EmbedKind`] says whether a text is a query (a customer utterance, a
//!   question) or a passage (a script in the library): e5 was trained with
//!   `query: ` / `passage: ` prefixes and [`Embedder`] adds them.
//! - [`Embed`] is the interface both [`Embedder`] and, with the `testing`
//!   feature, the deterministic `FakeEmbedder` implement.
//! - [`EmbedHandle`] is what async code holds: the model runs on its own
//!   thread behind a [`ModelHandle`](crate::worker::ModelHandle), and a full
//!   queue is [`Error::Overloaded`](crate::Error::Overloaded).
//!
//! ```no_run
//! use assist_models::embed::{EmbedHandle, EmbedKind, Embedder};
//! use assist_models::worker::WorkerConfig;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> assist_models::Result<()> {
//! let dir = std::path::Path::new("/var/cache/assist/models/multilingual-e5-small");
//! // Blocking use, e.g. in an indexing job:
//! let mut embedder = Embedder::load(dir)?;
//! let scripts = embedder.embed(&["您觉得价格偏高的话，我们可以申请优惠"], EmbedKind::Passage)?;
//! assert_eq!(scripts[0].len(), embedder.dim());
//!
//! // From async code, on the model's owner thread:
//! let handle = EmbedHandle::spawn(WorkerConfig::new("embedder", 32), dir)?;
//! let query = handle.embed_one("这个价格太贵了，能便宜点吗".into(), EmbedKind::Query).await?;
//! let cosine: f32 = query.iter().zip(&scripts[0]).map(|(a, b)| a * b).sum();
//! # let _ = cosine;
//! # Ok(())
//! # }
//! ```

pub mod e5s1;
mod encoder;
#[cfg(any(test, feature = "testing"))]
mod fake;
mod handle;
mod hf;

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams};

pub use e5s1::{E5s1DType, E5s1File, E5s1Header, E5s1Specials, E5s1Tensor, dequantize_q4_0};
pub use encoder::Compute;
#[cfg(any(test, feature = "testing"))]
pub use fake::FakeEmbedder;
pub use handle::EmbedHandle;

// The trait and the query/passage kind live in the candle-free API crate.
pub use assist_model_api::embed::{Embed, EmbedKind};

use crate::{Error, Result};
use encoder::Encoder;

/// Longest input, in tokens with specials; longer texts are truncated.
pub const MAX_TOKENS: usize = 512;
/// The `E5S1` weights file in an embedder directory.
pub const E5S1_FILE_NAME: &str = "e5-small-q4.bin";
/// Texts per forward pass when embedding many.
const BATCH: usize = 32;
/// Padded tokens per forward pass (bounds memory for long passages).
const BATCH_TOKENS: usize = 8 * 1024;
/// Forward passes of at most this many padded tokens (a query: ≈ 17) run on
/// the embedder's one-thread pool; larger ones (passage batches) on candle's
/// default threads. See [`Embedder::one_thread_up_to`].
const ONE_THREAD_TOKENS: usize = 56;

/// How token vectors become one text vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Average over the real (unpadded) tokens, specials included: e5, MiniLM.
    Mean,
    /// The first token's vector: bge-m3.
    Cls,
}

/// A sentence embedder on candle; see the [module docs](self).
pub struct Embedder {
    encoder: Encoder,
    tokenizer: Tokenizer,
    pooling: Pooling,
    /// Query and passage prefixes, `None` for models trained without them.
    prefixes: Option<(String, String)>,
    name: String,
    /// A rayon pool of one thread, built once: gemm splits every matmul over
    /// the *current* rayon pool, and for a short query the split costs more
    /// than the second core gives (`benches/query_embed.rs`).
    one_thread: rayon::ThreadPool,
    /// Largest forward pass (padded tokens) run on `one_thread`.
    one_thread_tokens: usize,
}

impl Embedder {
    /// Load from a model directory: our `E5S1` layout (`e5-small-q4.bin` +
    /// `tokenizer.json`) or a Hugging Face one (`config.json` + `*.safetensors`
    /// + `tokenizer.json`).
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, Compute::default())
    }

    /// [`Embedder::load`] with a choice of compute path for Q4_0 weights
    /// (f32 through a two-thread sgemm is the default; candle's f16 and f32
    /// gemm and its Q4_0 kernel are there to measure against;
    /// Hugging Face weights are f32 anyway).
    pub fn load_with(dir: &Path, compute: Compute) -> Result<Self> {
        let e5s1 = dir.join(E5S1_FILE_NAME);
        let mut specials = None;
        let (encoder, pooling, e5_prefixes, name) = if e5s1.is_file() {
            let file = E5s1File::read(&e5s1)?;
            specials = Some(*file.specials());
            let encoder = Encoder::from_e5s1(&file, compute)?;
            (
                encoder,
                Pooling::Mean,
                true,
                "multilingual-e5-small".to_string(),
            )
        } else if dir.join("config.json").is_file() {
            let m = hf::load(dir)?;
            (m.encoder, m.pooling, m.e5_prefixes, m.name)
        } else {
            return Err(Error::BadLayout {
                dir: dir.to_path_buf(),
                reason: format!("neither {E5S1_FILE_NAME} nor config.json is there"),
            });
        };
        let tokenizer = load_tokenizer(dir, encoder.config.max_tokens)?;
        if let Some(sp) = specials {
            // The file's own tokenizer and tokenizer.json must agree on the
            // sentence markers the weights were trained with.
            let ids = (tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>"));
            if ids != (Some(sp.bos), Some(sp.eos)) {
                return Err(Error::BadLayout {
                    dir: dir.to_path_buf(),
                    reason: format!(
                        "tokenizer.json has <s>, </s> = {ids:?}, the weights expect {}, {}",
                        sp.bos, sp.eos
                    ),
                });
            }
        }
        let prefixes = e5_prefixes.then(|| ("query: ".to_string(), "passage: ".to_string()));
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "embed-1t".into())
            .build()
            .map_err(|e| Error::Load {
                model: name.clone(),
                reason: format!("one-thread pool: {e}"),
            })?;
        tracing::debug!(model = %name, ?pooling, layers = encoder.config.layers, "embedder loaded");
        Ok(Embedder {
            encoder,
            tokenizer,
            pooling,
            prefixes,
            name,
            one_thread,
            one_thread_tokens: ONE_THREAD_TOKENS,
        })
    }

    /// Run forward passes of at most `tokens` padded tokens (batch × longest
    /// text, specials included) on one thread instead of candle's default
    /// threads; 0 runs everything on the default threads. The default, 56,
    /// covers a query (≈ 17 tokens) or a few short ones; passage batches stay
    /// parallel.
    ///
    /// Candle 0.11 hands gemm `Parallelism::Rayon(n)` with `n` from
    /// `RAYON_NUM_THREADS` or the core count, not from the current pool, but
    /// gemm's work items then run on the current rayon pool, so inside the
    /// one-thread pool the matmuls run on that one thread (`benches/query_embed.rs`:
    /// 0.1 ms CPU per query on other threads, against 17–22 ms on rayon's
    /// global pool without it). Handing the pass to the pool thread costs a
    /// wake-up: ~1 ms at p50 and ~6 ms at p95 on a machine loaded 6 on 2 cores,
    /// where the one-thread path's p95 was worse than two threads'. Candle's own barrier pool, which
    /// splits element-wise ops of ≥ 64 Ki values, ignores rayon pools; for
    /// e5-small the largest such op is the QKV bias add, `tokens × 1152`
    /// values, below 64 Ki up to 56 tokens (FFN bias + GELU is our own op).
    pub fn one_thread_up_to(mut self, tokens: usize) -> Self {
        self.one_thread_tokens = tokens;
        self
    }

    /// Embed `texts` as queries or passages: one L2-normalised vector each.
    ///
    /// Texts are truncated to [`Embedder::max_tokens`]; similar lengths are
    /// batched together to limit padding.
    pub fn embed(&mut self, texts: &[&str], kind: EmbedKind) -> Result<Vec<Vec<f32>>> {
        let ids = self.tokenize(texts, kind)?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut out = vec![Vec::new(); ids.len()];
        let mut start = 0;
        while start < order.len() {
            // Longest first: the first text of a batch sets its padded length.
            let seq = ids[order[start]].len();
            let n = BATCH.min((BATCH_TOKENS / seq.max(1)).max(1));
            let end = (start + n).min(order.len());
            let batch = &order[start..end];
            for (slot, v) in batch.iter().zip(self.run_batch(&ids, batch)?) {
                out[*slot] = v;
            }
            start = end;
        }
        Ok(out)
    }

    /// Length of the vectors (384 for multilingual-e5-small).
    pub fn dim(&self) -> usize {
        self.encoder.config.hidden
    }

    /// Longest input in tokens, specials included.
    pub fn max_tokens(&self) -> usize {
        self.encoder.config.max_tokens
    }

    /// The model's name, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How token vectors are pooled.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// The text put before queries and passages (`query: `, `passage: ` for e5;
    /// empty for models trained without prefixes).
    pub fn prefix(&self, kind: EmbedKind) -> &str {
        match (&self.prefixes, kind) {
            (None, _) => "",
            (Some((q, _)), EmbedKind::Query) => q,
            (Some((_, p)), EmbedKind::Passage) => p,
        }
    }

    /// Token ids (specials included, truncated) of each prefixed text.
    pub fn tokenize(&self, texts: &[&str], kind: EmbedKind) -> Result<Vec<Vec<u32>>> {
        let prefix = self.prefix(kind);
        texts
            .iter()
            .map(|text| {
                let input = format!("{prefix}{text}");
                let enc = self
                    .tokenizer
                    .encode(input, true)
                    .map_err(|e| self.inference_error(format!("tokenizer: {e}")))?;
                Ok(enc.get_ids().to_vec())
            })
            .collect()
    }

    fn run_batch(&self, ids: &[Vec<u32>], batch: &[usize]) -> Result<Vec<Vec<f32>>> {
        let seq = batch.iter().map(|&i| ids[i].len()).max().unwrap_or(0);
        let d = self.dim();
        if seq == 0 {
            return Err(self.inference_error("the tokenizer produced no tokens".into()));
        }
        let pad = 0u32; // any in-vocabulary id: padded positions are masked
        let mut flat = Vec::with_capacity(batch.len() * seq);
        let mut lens = Vec::with_capacity(batch.len());
        for &i in batch {
            flat.extend_from_slice(&ids[i]);
            flat.extend(std::iter::repeat_n(pad, seq - ids[i].len()));
            lens.push(ids[i].len());
        }
        let hidden = if batch.len() * seq <= self.one_thread_tokens {
            self.one_thread
                .install(|| self.encoder.forward(&flat, &lens, seq))?
        } else {
            self.encoder.forward(&flat, &lens, seq)?
        };
        Ok(lens
            .iter()
            .enumerate()
            .map(|(b, &len)| {
                let rows = &hidden[b * seq * d..(b * seq + len) * d];
                let mut v = match self.pooling {
                    Pooling::Cls => rows[..d].to_vec(),
                    Pooling::Mean => mean_rows(rows, d),
                };
                l2_normalize(&mut v);
                v
            })
            .collect())
    }

    fn inference_error(&self, reason: String) -> Error {
        Error::Inference {
            model: self.name.clone(),
            reason,
        }
    }
}

impl Embed for Embedder {
    fn embed(&mut self, texts: &[&str], kind: EmbedKind) -> Result<Vec<Vec<f32>>> {
        Embedder::embed(self, texts, kind)
    }

    fn dim(&self) -> usize {
        Embedder::dim(self)
    }
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("name", &self.name)
            .field("encoder", &self.encoder)
            .field("pooling", &self.pooling)
            .field("prefixes", &self.prefixes)
            .finish_non_exhaustive()
    }
}

fn load_tokenizer(dir: &Path, max_tokens: usize) -> Result<Tokenizer> {
    let path = dir.join("tokenizer.json");
    let load_err = |reason: String| Error::Load {
        model: dir.display().to_string(),
        reason,
    };
    let mut tokenizer =
        Tokenizer::from_file(&path).map_err(|e| load_err(format!("{}: {e}", path.display())))?;
    // Some tokenizer.json files pin their own padding/truncation (MiniLM: 128); ours rule.
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..TruncationParams::default()
        }))
        .map_err(|e| load_err(format!("truncation: {e}")))?;
    Ok(tokenizer)
}

fn mean_rows(rows: &[f32], d: usize) -> Vec<f32> {
    let mut sum = vec![0f32; d];
    let n = rows.len() / d;
    for row in rows.chunks_exact(d) {
        for (s, x) in sum.iter_mut().zip(row) {
            *s += x;
        }
    }
    let inv = 1.0 / n.max(1) as f32;
    sum.iter_mut().for_each(|s| *s *= inv);
    sum
}

/// Scale `v` to unit length (a zero vector stays zero).
pub(crate) fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Cosine similarity of two vectors (their dot product when both are unit length).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}
