//! CTranslate2 Whisper → Hugging Face Whisper layout, and where converted
//! models live.
//!
//! CTranslate2's `WhisperSpec` stores fused projections and its own names;
//! [`ct2_to_hf`] maps them onto the HF layout (what
//! `candle_transformers::models::whisper::model::Whisper::load` and our
//! [`super::model::Whisper`] read):
//!
//! | CTranslate2 | Hugging Face |
//! |---|---|
//! | `encoder/conv{1,2}/{weight,bias}` | `model.encoder.conv{1,2}.*` |
//! | `encoder/position_encodings/encodings` | `model.encoder.embed_positions.weight` |
//! | `{enc,dec}oder/layer_N/self_attention/linear_0` (q,k,v fused on rows) | `…layers.N.self_attn.{q,k,v}_proj` (k has no bias) |
//! | `…/self_attention/linear_1` | `…self_attn.out_proj` |
//! | `…/self_attention/layer_norm/{gamma,beta}` | `…self_attn_layer_norm.{weight,bias}` |
//! | `decoder/layer_N/attention/linear_0` | `…encoder_attn.q_proj` |
//! | `decoder/layer_N/attention/linear_1` (k,v fused) | `…encoder_attn.{k,v}_proj` |
//! | `decoder/layer_N/attention/linear_2` | `…encoder_attn.out_proj` |
//! | `decoder/layer_N/attention/layer_norm` | `…encoder_attn_layer_norm` |
//! | `…/ffn/linear_{0,1}`, `…/ffn/layer_norm` | `…fc1`, `…fc2`, `…final_layer_norm` |
//! | `{enc,dec}oder/layer_norm` | `model.{enc,dec}oder.layer_norm` |
//! | `decoder/embeddings/weight` (= `decoder/projection/weight`, an alias) | `model.decoder.embed_tokens.weight` |
//! | `decoder/position_encodings/encodings` | `model.decoder.embed_positions.weight` |
//!
//! The dimensions of the [`Config`] come from the tensor shapes (and the
//! `num_heads` scalars), never from a table of known models.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{D, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::ct2::Ct2Model;
use super::model::Config;
use crate::{Error, Result};

/// Written next to converted weights; a conversion is reused only while the
/// source file's sha256 and the converter version match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversionMarker {
    pub converter: String,
    pub source: PathBuf,
    pub source_sha256: String,
}

/// Bumped whenever the converted output would change.
const CONVERTER: &str = "assist-ct2-whisper-1";
const MARKER: &str = "converted.json";
const WEIGHTS: &str = "model.safetensors";

/// The files of a Whisper model in HF layout, ready to load.
#[derive(Debug, Clone)]
pub struct HfWhisperFiles {
    pub weights: Vec<PathBuf>,
    pub config: PathBuf,
    pub tokenizer: PathBuf,
}

impl HfWhisperFiles {
    /// The files of a standard HF Whisper directory (`config.json`,
    /// `tokenizer.json`, one or more `*.safetensors`).
    pub fn in_dir(dir: &Path) -> Result<Self> {
        let bad = |reason: &str| Error::BadLayout {
            dir: dir.to_path_buf(),
            reason: reason.to_string(),
        };
        let mut weights: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io("reading model directory", dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        weights.sort();
        if weights.is_empty() {
            return Err(bad("no *.safetensors file"));
        }
        for name in ["config.json", "tokenizer.json"] {
            if !dir.join(name).is_file() {
                return Err(bad(&format!("{name} is missing")));
            }
        }
        Ok(HfWhisperFiles {
            weights,
            config: dir.join("config.json"),
            tokenizer: dir.join("tokenizer.json"),
        })
    }
}

/// Where the conversion of the CTranslate2 model in `model_dir` is cached:
/// `<store root>/converted/<model id>/`, the store root being `model_dir`'s parent.
pub fn converted_dir_for(model_dir: &Path) -> PathBuf {
    let id = model_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".to_string());
    let root = model_dir.parent().unwrap_or(model_dir);
    root.join("converted").join(id)
}

/// Convert the CTranslate2 Whisper model in `src_dir` (`model.bin`,
/// `config.json`, `tokenizer.json`) into HF layout in `out_dir`, unless a
/// conversion of the same source is already there. Atomic: the output is
/// written to a staging directory beside `out_dir` and renamed into place.
pub fn convert_ct2(src_dir: &Path, out_dir: &Path) -> Result<HfWhisperFiles> {
    let model_bin = src_dir.join("model.bin");
    let sha = source_sha256(src_dir, &model_bin)?;
    if let Some(files) = reuse(out_dir, &sha) {
        return Ok(files);
    }
    let started = std::time::Instant::now();
    let ct2 = Ct2Model::read(&model_bin)?;
    let ct2_config: Ct2WhisperConfig = read_json(&src_dir.join("config.json")).unwrap_or_default();
    let (tensors, config) = ct2_to_hf(&ct2, &ct2_config).map_err(|reason| Error::ModelFormat {
        path: model_bin.clone(),
        reason,
    })?;

    let parent = out_dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
    let staging = parent.join(format!(
        ".staging-{}-{}",
        out_dir.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| Error::io("creating", &staging, e))?;
    let result = (|| -> Result<()> {
        candle_core::safetensors::save(&tensors, staging.join(WEIGHTS)).map_err(|e| Error::Io {
            action: "writing",
            path: staging.join(WEIGHTS),
            source: std::io::Error::other(e.to_string()),
        })?;
        write_json(&staging.join("config.json"), &config)?;
        let tok = src_dir.join("tokenizer.json");
        std::fs::copy(&tok, staging.join("tokenizer.json"))
            .map_err(|e| Error::io("copying", &tok, e))?;
        let marker = ConversionMarker {
            converter: CONVERTER.to_string(),
            source: model_bin.clone(),
            source_sha256: sha.clone(),
        };
        write_json(&staging.join(MARKER), &marker)?;
        if out_dir.exists() {
            std::fs::remove_dir_all(out_dir).map_err(|e| Error::io("removing", out_dir, e))?;
        }
        std::fs::rename(&staging, out_dir).map_err(|e| Error::io("renaming into", out_dir, e))
    })();
    if let Err(err) = result {
        let _ = std::fs::remove_dir_all(&staging);
        // Another process may have finished the same conversion first.
        return reuse(out_dir, &sha).ok_or(err);
    }
    tracing::info!(
        source = %model_bin.display(),
        out = %out_dir.display(),
        ms = started.elapsed().as_millis() as u64,
        "converted ctranslate2 whisper model"
    );
    reuse(out_dir, &sha).ok_or_else(|| Error::ModelFormat {
        path: out_dir.to_path_buf(),
        reason: "conversion finished but its output is incomplete".into(),
    })
}

fn reuse(out_dir: &Path, sha: &str) -> Option<HfWhisperFiles> {
    let marker: ConversionMarker = read_json(&out_dir.join(MARKER)).ok()?;
    if marker.converter != CONVERTER || marker.source_sha256 != sha {
        return None;
    }
    HfWhisperFiles::in_dir(out_dir).ok()
}

/// The source's sha256: from the store's `ready.json` when it lists
/// `model.bin` (the store verified it), else hashed here.
fn source_sha256(src_dir: &Path, model_bin: &Path) -> Result<String> {
    #[derive(Deserialize)]
    struct Ready {
        files: Vec<ReadyFile>,
    }
    #[derive(Deserialize)]
    struct ReadyFile {
        name: String,
        sha256: String,
    }
    if let Ok(ready) = read_json::<Ready>(&src_dir.join("ready.json"))
        && let Some(f) = ready.files.iter().find(|f| f.name == "model.bin")
    {
        return Ok(f.sha256.clone());
    }
    use sha2::Digest;
    let mut file =
        std::fs::File::open(model_bin).map_err(|e| Error::io("opening", model_bin, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("reading", model_bin, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::ModelFormat {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    std::fs::write(path, text).map_err(|e| Error::io("writing", path, e))
}

/// The parts of CTranslate2's Whisper `config.json` we use.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Ct2WhisperConfig {
    #[serde(default)]
    pub suppress_ids: Vec<u32>,
    #[serde(default)]
    pub suppress_ids_begin: Vec<u32>,
    #[serde(default)]
    pub lang_ids: Vec<u32>,
}

/// The `config.json` we write: the fields of candle's [`Config`] (HF names)
/// plus the token lists HF configs also carry. Reads HF Whisper configs too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhisperConfig {
    pub num_mel_bins: usize,
    pub max_source_positions: usize,
    pub d_model: usize,
    pub encoder_attention_heads: usize,
    pub encoder_layers: usize,
    pub vocab_size: usize,
    pub max_target_positions: usize,
    pub decoder_attention_heads: usize,
    pub decoder_layers: usize,
    #[serde(default)]
    pub suppress_tokens: Vec<u32>,
    #[serde(default)]
    pub begin_suppress_tokens: Vec<u32>,
}

impl WhisperConfig {
    /// candle's model config.
    pub fn model(&self) -> Config {
        Config {
            num_mel_bins: self.num_mel_bins,
            max_source_positions: self.max_source_positions,
            d_model: self.d_model,
            encoder_attention_heads: self.encoder_attention_heads,
            encoder_layers: self.encoder_layers,
            vocab_size: self.vocab_size,
            max_target_positions: self.max_target_positions,
            decoder_attention_heads: self.decoder_attention_heads,
            decoder_layers: self.decoder_layers,
            suppress_tokens: self.suppress_tokens.clone(),
        }
    }
}

/// Map CTranslate2 Whisper variables to HF names and derive the config.
/// Errors are human-readable reasons (missing variables, odd shapes).
pub fn ct2_to_hf(
    ct2: &Ct2Model,
    cfg: &Ct2WhisperConfig,
) -> std::result::Result<(HashMap<String, Tensor>, WhisperConfig), String> {
    if !ct2.spec.is_empty() && ct2.spec != "WhisperSpec" {
        return Err(format!("spec is {}, not WhisperSpec", ct2.spec));
    }
    let dev = Device::Cpu;
    let get = |name: &str| -> std::result::Result<Tensor, String> {
        let var = ct2
            .get(name)
            .ok_or_else(|| format!("variable {name} is missing"))?;
        var.to_tensor(&dev).map_err(|e| format!("{name}: {e}"))
    };
    let dims = |name: &str| -> std::result::Result<Vec<usize>, String> {
        Ok(ct2
            .get(name)
            .ok_or_else(|| format!("variable {name} is missing"))?
            .shape
            .clone())
    };
    let count_layers = |prefix: &str| {
        (0..)
            .take_while(|i| {
                ct2.variables
                    .contains_key(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))
            })
            .count()
    };
    let conv1 = dims("encoder/conv1/weight")?;
    let [d_model, n_mels, _] = conv1[..] else {
        return Err(format!("encoder/conv1/weight has shape {conv1:?}"));
    };
    let heads = |prefix: &str| {
        ct2.get(&format!("{prefix}/num_heads"))
            .and_then(|v| v.scalar_i64())
            .map(|h| h as usize)
            .unwrap_or(d_model / 64)
    };
    let vocab = dims("decoder/embeddings/weight")?[0];
    let config = WhisperConfig {
        num_mel_bins: n_mels,
        max_source_positions: dims("encoder/position_encodings/encodings")?[0],
        d_model,
        encoder_attention_heads: heads("encoder"),
        encoder_layers: count_layers("encoder"),
        vocab_size: vocab,
        max_target_positions: dims("decoder/position_encodings/encodings")?[0],
        decoder_attention_heads: heads("decoder"),
        decoder_layers: count_layers("decoder"),
        suppress_tokens: cfg.suppress_ids.clone(),
        begin_suppress_tokens: cfg.suppress_ids_begin.clone(),
    };
    if config.encoder_layers == 0 || config.decoder_layers == 0 {
        return Err("no encoder or decoder layers found".into());
    }

    let mut out = HashMap::new();
    let mut put = |name: String, t: Tensor| {
        out.insert(name, t);
    };
    let split = |t: &Tensor, parts: usize| -> std::result::Result<Vec<Tensor>, String> {
        let n = t.dim(0).map_err(|e| e.to_string())?;
        if n % parts != 0 || n / parts != d_model {
            return Err(format!(
                "fused projection of {n} rows is not {parts} × {d_model}"
            ));
        }
        (0..parts)
            .map(|i| {
                t.narrow(0, i * d_model, d_model)
                    .and_then(|t| t.contiguous())
            })
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(|e| e.to_string())
    };
    let norm = |src: &str, dst: &str, put: &mut dyn FnMut(String, Tensor)| {
        put(format!("{dst}.weight"), get(&format!("{src}/gamma"))?);
        put(format!("{dst}.bias"), get(&format!("{src}/beta"))?);
        Ok::<(), String>(())
    };
    let linear = |src: &str, dst: &str, put: &mut dyn FnMut(String, Tensor)| {
        put(format!("{dst}.weight"), get(&format!("{src}/weight"))?);
        put(format!("{dst}.bias"), get(&format!("{src}/bias"))?);
        Ok::<(), String>(())
    };

    for part in ["encoder", "decoder"] {
        let hf = format!("model.{part}");
        let layers = if part == "encoder" {
            config.encoder_layers
        } else {
            config.decoder_layers
        };
        for i in 0..layers {
            let src = format!("{part}/layer_{i}");
            let dst = format!("{hf}.layers.{i}");
            // Self-attention: q, k, v fused along the output rows.
            let sa = format!("{src}/self_attention");
            let w = split(&get(&format!("{sa}/linear_0/weight"))?, 3)?;
            let b = split_bias(&get(&format!("{sa}/linear_0/bias"))?, 3, d_model)?;
            check_zero(&b[1], &format!("{sa}/linear_0/bias (k part)"))?;
            put(format!("{dst}.self_attn.q_proj.weight"), w[0].clone());
            put(format!("{dst}.self_attn.k_proj.weight"), w[1].clone());
            put(format!("{dst}.self_attn.v_proj.weight"), w[2].clone());
            put(format!("{dst}.self_attn.q_proj.bias"), b[0].clone());
            put(format!("{dst}.self_attn.v_proj.bias"), b[2].clone());
            linear(
                &format!("{sa}/linear_1"),
                &format!("{dst}.self_attn.out_proj"),
                &mut put,
            )?;
            norm(
                &format!("{sa}/layer_norm"),
                &format!("{dst}.self_attn_layer_norm"),
                &mut put,
            )?;
            if part == "decoder" {
                let ca = format!("{src}/attention");
                linear(
                    &format!("{ca}/linear_0"),
                    &format!("{dst}.encoder_attn.q_proj"),
                    &mut put,
                )?;
                let w = split(&get(&format!("{ca}/linear_1/weight"))?, 2)?;
                let b = split_bias(&get(&format!("{ca}/linear_1/bias"))?, 2, d_model)?;
                check_zero(&b[0], &format!("{ca}/linear_1/bias (k part)"))?;
                put(format!("{dst}.encoder_attn.k_proj.weight"), w[0].clone());
                put(format!("{dst}.encoder_attn.v_proj.weight"), w[1].clone());
                put(format!("{dst}.encoder_attn.v_proj.bias"), b[1].clone());
                linear(
                    &format!("{ca}/linear_2"),
                    &format!("{dst}.encoder_attn.out_proj"),
                    &mut put,
                )?;
                norm(
                    &format!("{ca}/layer_norm"),
                    &format!("{dst}.encoder_attn_layer_norm"),
                    &mut put,
                )?;
            }
            linear(
                &format!("{src}/ffn/linear_0"),
                &format!("{dst}.fc1"),
                &mut put,
            )?;
            linear(
                &format!("{src}/ffn/linear_1"),
                &format!("{dst}.fc2"),
                &mut put,
            )?;
            norm(
                &format!("{src}/ffn/layer_norm"),
                &format!("{dst}.final_layer_norm"),
                &mut put,
            )?;
        }
        norm(
            &format!("{part}/layer_norm"),
            &format!("{hf}.layer_norm"),
            &mut put,
        )?;
        put(
            format!("{hf}.embed_positions.weight"),
            get(&format!("{part}/position_encodings/encodings"))?,
        );
    }
    for conv in ["conv1", "conv2"] {
        linear(
            &format!("encoder/{conv}"),
            &format!("model.encoder.{conv}"),
            &mut put,
        )?;
    }
    put(
        "model.decoder.embed_tokens.weight".into(),
        get("decoder/embeddings/weight")?,
    );
    // The output projection must be tied to the embeddings (Whisper's layout).
    if let Some(target) = ct2.aliases.get("decoder/projection/weight") {
        if target != "decoder/embeddings/weight" {
            return Err(format!("decoder/projection/weight is an alias of {target}"));
        }
    } else if ct2.variables.contains_key("decoder/projection/weight")
        && ct2.get("decoder/projection/weight") != ct2.get("decoder/embeddings/weight")
    {
        return Err("decoder/projection/weight differs from the embeddings (untied)".into());
    }
    Ok((out, config))
}

fn split_bias(b: &Tensor, parts: usize, d: usize) -> std::result::Result<Vec<Tensor>, String> {
    let n = b.dim(D::Minus1).map_err(|e| e.to_string())?;
    if n != parts * d {
        return Err(format!("fused bias of {n} values is not {parts} × {d}"));
    }
    (0..parts)
        .map(|i| b.narrow(0, i * d, d).and_then(|t| t.contiguous()))
        .collect::<candle_core::Result<Vec<_>>>()
        .map_err(|e| e.to_string())
}

/// Whisper's key projections have no bias; CTranslate2 stores zeros there.
fn check_zero(t: &Tensor, what: &str) -> std::result::Result<(), String> {
    let max = t
        .to_dtype(candle_core::DType::F32)
        .and_then(|t| t.abs()?.max_all()?.to_scalar::<f32>())
        .map_err(|e| e.to_string())?;
    if max > 1e-6 {
        return Err(format!(
            "{what} is not zero (max |x| = {max}); cannot drop it"
        ));
    }
    Ok(())
}
