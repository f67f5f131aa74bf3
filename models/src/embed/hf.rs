//! Loading a BERT or XLM-RoBERTa sentence embedder from a Hugging Face
//! directory: `config.json`, `*.safetensors`, `tokenizer.json`, and when present
//! the sentence-transformers files `1_Pooling/config.json` (CLS or mean
//! pooling) and `sentence_bert_config.json` (`max_seq_length`).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::Pooling;
use super::encoder::{Compute, Encoder, EncoderConfig, LayerWeights, Weight, WordSource};
use crate::{Error, Result};

#[derive(Debug, Deserialize)]
struct Config {
    model_type: String,
    hidden_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    pad_token_id: Option<usize>,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default)]
    position_embedding_type: Option<String>,
    #[serde(default, rename = "_name_or_path")]
    name_or_path: String,
}

fn default_eps() -> f64 {
    1e-12
}

fn default_act() -> String {
    "gelu".into()
}

#[derive(Debug, Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// What the directory says about how to use the model, besides its weights.
#[derive(Debug)]
pub(crate) struct HfModel {
    pub encoder: Encoder,
    pub pooling: Pooling,
    /// Whether the model is an e5 model (trained with `query: ` / `passage: `).
    pub e5_prefixes: bool,
    /// Name for logs.
    pub name: String,
}

pub(crate) fn load(dir: &Path) -> Result<HfModel> {
    let bad = |reason: String| Error::BadLayout {
        dir: dir.to_path_buf(),
        reason,
    };
    let config: Config =
        read_json(&dir.join("config.json"))?.ok_or_else(|| bad("config.json is missing".into()))?;
    let position_offset = match config.model_type.as_str() {
        "bert" => 0,
        // RoBERTa-style models count positions from padding_idx + 1.
        "xlm-roberta" | "roberta" | "camembert" => config.pad_token_id.unwrap_or(1) + 1,
        other => {
            return Err(bad(format!(
                "model_type `{other}` is not a BERT or XLM-RoBERTa encoder"
            )));
        }
    };
    if config.hidden_act != "gelu" {
        return Err(bad(format!(
            "hidden_act `{}` is not supported (only gelu)",
            config.hidden_act
        )));
    }
    if let Some(kind) = &config.position_embedding_type
        && kind != "absolute"
    {
        return Err(bad(format!(
            "position_embedding_type `{kind}` is not supported"
        )));
    }
    if config.num_attention_heads == 0
        || !config
            .hidden_size
            .is_multiple_of(config.num_attention_heads)
    {
        return Err(bad(
            "hidden_size is not a multiple of the attention heads".into()
        ));
    }

    let mut tensors = HashMap::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("reading model directory", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(bad("no *.safetensors file".into()));
    }
    for file in &files {
        let loaded = candle_core::safetensors::load(file, &Device::Cpu)
            .map_err(|e| bad(format!("{}: {e}", file.display())))?;
        tensors.extend(loaded);
    }
    // Checkpoints differ in their prefix (`bert.`, `roberta.`, none).
    let prefix = tensors
        .keys()
        .find_map(|k| k.strip_suffix("embeddings.word_embeddings.weight"))
        .map(str::to_string)
        .ok_or_else(|| bad("no embeddings.word_embeddings.weight tensor".into()))?;
    let (d, ff) = (config.hidden_size, config.intermediate_size);
    let word_shape = tensors
        .get(&format!("{prefix}embeddings.word_embeddings.weight"))
        .map(|t| t.dims().to_vec())
        .unwrap_or_default();
    let vocab = word_shape.first().copied().unwrap_or(0);
    let types = tensors
        .get(&format!("{prefix}embeddings.token_type_embeddings.weight"))
        .map(|t| t.dims().first().copied().unwrap_or(0))
        .unwrap_or(0);
    let mut get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let full = format!("{prefix}{name}");
        let t = tensors
            .remove(&full)
            .ok_or_else(|| bad(format!("tensor `{full}` is missing")))?;
        if t.dims() != shape {
            return Err(bad(format!(
                "tensor `{full}` has shape {:?}, expected {shape:?}",
                t.dims()
            )));
        }
        to_f32(&t).map_err(|e| bad(format!("tensor `{full}`: {e}")))
    };
    let words = get("embeddings.word_embeddings.weight", &[vocab, d])?;
    let positions = get(
        "embeddings.position_embeddings.weight",
        &[config.max_position_embeddings, d],
    )?;
    let token_type = get("embeddings.token_type_embeddings.weight", &[types, d])?[..d].to_vec();
    let emb_norm = (
        get("embeddings.LayerNorm.weight", &[d])?,
        get("embeddings.LayerNorm.bias", &[d])?,
    );
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for l in 0..config.num_hidden_layers {
        let p = format!("encoder.layer.{l}.");
        let mut lin = |name: &str, out: usize, inp: usize| -> Result<(Weight, Vec<f32>)> {
            let values = get(&format!("{p}{name}.weight"), &[out, inp])?;
            let bias = get(&format!("{p}{name}.bias"), &[out])?;
            Ok((Weight::F32 { values, out, inp }, bias))
        };
        let linears = [
            lin("attention.self.query", d, d)?,
            lin("attention.self.key", d, d)?,
            lin("attention.self.value", d, d)?,
            lin("attention.output.dense", d, d)?,
            lin("intermediate.dense", ff, d)?,
            lin("output.dense", d, ff)?,
        ];
        let mut norm = |name: &str| -> Result<(Vec<f32>, Vec<f32>)> {
            Ok((
                get(&format!("{p}{name}.LayerNorm.weight"), &[d])?,
                get(&format!("{p}{name}.LayerNorm.bias"), &[d])?,
            ))
        };
        layers.push(LayerWeights {
            linears,
            attn_norm: norm("attention.output")?,
            ffn_norm: norm("output")?,
        });
    }

    let pooling = match read_json::<PoolingConfig>(&dir.join("1_Pooling").join("config.json"))? {
        Some(p) if p.pooling_mode_cls_token && !p.pooling_mode_mean_tokens => Pooling::Cls,
        _ => Pooling::Mean,
    };
    let mut max_tokens = config
        .max_position_embeddings
        .saturating_sub(position_offset)
        .min(super::MAX_TOKENS);
    if let Some(st) = read_json::<SentenceBertConfig>(&dir.join("sentence_bert_config.json"))?
        && let Some(n) = st.max_seq_length
    {
        max_tokens = max_tokens.min(n);
    }
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let e5_prefixes = [&dir_name, &config.name_or_path]
        .iter()
        .any(|n| n.to_ascii_lowercase().contains("e5"));
    let encoder = Encoder::build(
        EncoderConfig {
            hidden: d,
            heads: config.num_attention_heads,
            layers: config.num_hidden_layers,
            layer_norm_eps: config.layer_norm_eps,
            position_offset,
            max_tokens,
        },
        WordSource::F32(words),
        vocab,
        positions,
        token_type,
        emb_norm,
        layers,
        Compute::default(),
    )?;
    Ok(HfModel {
        encoder,
        pooling,
        e5_prefixes,
        name: dir_name,
    })
}

fn to_f32(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

/// Parse a JSON file; `None` when it does not exist.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::BadLayout {
            dir: path.parent().unwrap_or(path).to_path_buf(),
            reason: format!("{}: {e}", path.display()),
        })
}
