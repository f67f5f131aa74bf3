//! Whisper's encoder and decoder on candle, with a key/value cache for the
//! decoder's self-attention.
//!
//! Weights use the Hugging Face layout (`model.encoder.layers.0.self_attn.q_proj.weight`,
//! ...), the same names `candle_transformers::models::whisper::model::Whisper`
//! loads, so a standard HF Whisper directory and our CTranslate2 conversion
//! load the same way. We run our own forward pass rather than candle's
//! because candle's decoder recomputes every earlier token at each step
//! (no self-attention cache), which costs ~20× more on a 30-second window,
//! and because linear layers here may be quantized (`QMatMul`, q8_0).

use candle_core::{DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, Embedding, LayerNorm, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::ops::BiasGelu;
use attention::Attention;
use layers::{Proj, Quant, Weight, layer_norm};

mod attention;
mod layers;

pub use candle_transformers::models::whisper::Config;

/// How the linear layers' weights are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in f32.
    F32,
    /// Every linear layer and the output projection quantized to q8_0.
    Q8,
    /// The default: f32 for every product of several rows (the encoder, the
    /// cross-attention keys and values, a window's prompt), where candle's
    /// f32 GEMM is fastest, plus a q8_0 copy of the decoder's matrices for
    /// its one-token steps, where reading the weights is the cost: an int8
    /// copy is a quarter of the bytes ([`crate::kernels::q8`]). Where the CPU has
    /// neither AVX2 nor AVX-512 VNNI this is `F32`.
    #[default]
    Mixed,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "q8" | "q8_0" => Ok(Precision::Q8),
            "mixed" => Ok(Precision::Mixed),
            other => Err(format!("unknown precision `{other}` (f32, q8, mixed)")),
        }
    }
}

#[derive(Debug, Clone)]
struct Block {
    attn: Attention,
    attn_ln: LayerNorm,
    cross: Option<(Attention, LayerNorm)>,
    /// `fc1`'s weight alone: its bias goes into `fc1_act`.
    fc1: Proj,
    /// `gelu(x + fc1 bias)` in one pass with a vectorised erf (candle's
    /// `gelu_erf` calls libm's scalar `erf` per value: 4 % of a whole
    /// transcription's CPU in perf).
    fc1_act: BiasGelu,
    fc2: Proj,
    mlp_ln: LayerNorm,
}

impl Block {
    fn load(
        vb: VarBuilder,
        n_state: usize,
        n_head: usize,
        cross: bool,
        quant: Quant,
    ) -> Result<Self> {
        let cross = if cross {
            Some((
                Attention::load(vb.pp("encoder_attn"), n_state, n_head, quant)?,
                layer_norm(vb.pp("encoder_attn_layer_norm"), n_state)?,
            ))
        } else {
            None
        };
        Ok(Block {
            attn: Attention::load(vb.pp("self_attn"), n_state, n_head, quant)?,
            attn_ln: layer_norm(vb.pp("self_attn_layer_norm"), n_state)?,
            cross,
            fc1: Proj::load(&vb.pp("fc1"), n_state, 4 * n_state, false, quant)?,
            fc1_act: BiasGelu {
                bias: vb.pp("fc1").get(4 * n_state, "bias")?.to_vec1::<f32>()?,
            },
            fc2: Proj::load(&vb.pp("fc2"), 4 * n_state, n_state, true, quant)?,
            mlp_ln: layer_norm(vb.pp("final_layer_norm"), n_state)?,
        })
    }

    fn forward(
        &mut self,
        x: &Tensor,
        xa: Option<&Tensor>,
        mask: Option<&Tensor>,
        cached: bool,
    ) -> Result<Tensor> {
        let h = self.attn_ln.forward(x)?;
        let mut x = (x + self.attn.self_attend(&h, mask, cached)?)?;
        if let (Some((attn, ln)), Some(xa)) = (&mut self.cross, xa) {
            let h = ln.forward(&x)?;
            x = (&x + attn.cross_attend(&h, xa)?)?;
        }
        let h = self
            .fc1
            .forward(&self.mlp_ln.forward(&x)?)?
            .contiguous()?
            .apply_op1_no_bwd(&self.fc1_act)?;
        x + self.fc2.forward(&h)?
    }

    fn reset(&mut self) {
        self.attn.cache = None;
        if let Some((attn, _)) = &mut self.cross {
            attn.kv = None;
        }
    }
}

/// The audio encoder: mel spectrogram → audio features.
#[derive(Debug, Clone)]
pub struct Encoder {
    conv1: Conv1d,
    conv2: Conv1d,
    positions: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
}

impl Encoder {
    fn load(vb: VarBuilder, cfg: &Config, quant: Quant) -> Result<Self> {
        let n = cfg.d_model;
        let conv = |name: &str, n_in: usize, stride: usize| -> Result<Conv1d> {
            let vb = vb.pp(name);
            let cfg = Conv1dConfig {
                padding: 1,
                stride,
                ..Default::default()
            };
            Ok(Conv1d::new(
                vb.get((n, n_in, 3), "weight")?,
                Some(vb.get(n, "bias")?),
                cfg,
            ))
        };
        let positions = if vb.contains_tensor("embed_positions.weight") {
            vb.get((cfg.max_source_positions, n), "embed_positions.weight")?
        } else {
            sinusoids(cfg.max_source_positions, n, vb.device())?
        };
        Ok(Encoder {
            conv1: conv("conv1", cfg.num_mel_bins, 1)?,
            conv2: conv("conv2", n, 2)?,
            positions,
            blocks: (0..cfg.encoder_layers)
                .map(|i| {
                    Block::load(
                        vb.pp(format!("layers.{i}")),
                        n,
                        cfg.encoder_attention_heads,
                        false,
                        quant,
                    )
                })
                .collect::<Result<_>>()?,
            ln: layer_norm(vb.pp("layer_norm"), n)?,
        })
    }

    /// `mel`: `[1, n_mels, frames]` → `[1, frames / 2, d_model]`.
    pub fn forward(&mut self, mel: &Tensor) -> Result<Tensor> {
        let x = self.conv1.forward(mel)?.gelu_erf()?;
        let x = self.conv2.forward(&x)?.gelu_erf()?.transpose(1, 2)?;
        let len = x.dim(1)?;
        let mut x = x.broadcast_add(&self.positions.narrow(0, 0, len)?)?;
        for block in &mut self.blocks {
            x = block.forward(&x, None, None, false)?;
        }
        self.ln.forward(&x)
    }
}

/// The text decoder: tokens + audio features → next-token logits.
#[derive(Debug, Clone)]
pub struct Decoder {
    embed: Embedding,
    output: Weight,
    positions: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
    /// Tokens already in the self-attention cache.
    cached: usize,
}

impl Decoder {
    fn load(vb: VarBuilder, cfg: &Config, quant: Quant) -> Result<Self> {
        let n = cfg.d_model;
        let embed = vb.get((cfg.vocab_size, n), "embed_tokens.weight")?;
        Ok(Decoder {
            output: Weight::new(embed.clone(), quant)?,
            embed: Embedding::new(embed, n),
            positions: vb.get((cfg.max_target_positions, n), "embed_positions.weight")?,
            blocks: (0..cfg.decoder_layers)
                .map(|i| {
                    Block::load(
                        vb.pp(format!("layers.{i}")),
                        n,
                        cfg.decoder_attention_heads,
                        true,
                        quant,
                    )
                })
                .collect::<Result<_>>()?,
            ln: layer_norm(vb.pp("layer_norm"), n)?,
            cached: 0,
        })
    }

    /// Forget the cached tokens and audio features (before a new window).
    pub fn reset(&mut self) {
        self.cached = 0;
        for block in &mut self.blocks {
            block.reset();
        }
    }

    /// Number of tokens in the cache.
    pub fn cached_len(&self) -> usize {
        self.cached
    }

    /// Run `tokens` (continuing the cached ones) and return the final hidden
    /// states `[1, tokens.len(), d_model]`.
    pub fn forward(&mut self, tokens: &[u32], audio: &Tensor) -> Result<Tensor> {
        let device = audio.device();
        let t = tokens.len();
        let offset = self.cached;
        let ids = Tensor::new(tokens, device)?.unsqueeze(0)?;
        let mut x = self
            .embed
            .forward(&ids)?
            .broadcast_add(&self.positions.narrow(0, offset, t)?)?;
        let mask = if t > 1 {
            Some(causal_mask(t, offset, device)?)
        } else {
            None
        };
        for block in &mut self.blocks {
            x = block.forward(&x, Some(audio), mask.as_ref(), true)?;
        }
        self.cached += t;
        self.ln.forward(&x)
    }

    /// Logits `[vocab]` of one position of `hidden` (`[1, t, d]`).
    pub fn logits(&self, hidden: &Tensor, position: usize) -> Result<Tensor> {
        let h = hidden.i((.., position..position + 1, ..))?.contiguous()?;
        self.output.forward(&h)?.flatten_all()?.to_dtype(DType::F32)
    }
}

fn causal_mask(t: usize, offset: usize, device: &Device) -> Result<Tensor> {
    let s = offset + t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..s).map(move |j| {
                if j > offset + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (t, s), device)
}

fn sinusoids(length: usize, channels: usize, device: &Device) -> Result<Tensor> {
    let half = channels / 2;
    let step = 10000f64.ln() / (half - 1) as f64;
    let mut data = vec![0f32; length * channels];
    for p in 0..length {
        for i in 0..half {
            let angle = p as f64 * (-(i as f64) * step).exp();
            data[p * channels + i] = angle.sin() as f32;
            data[p * channels + half + i] = angle.cos() as f32;
        }
    }
    Tensor::from_vec(data, (length, channels), device)
}

/// Whisper: encoder + decoder.
#[derive(Debug, Clone)]
pub struct Whisper {
    pub encoder: Encoder,
    pub decoder: Decoder,
    pub config: Config,
}

impl Whisper {
    /// Build from HF-layout tensors (`model.encoder.*`, `model.decoder.*`).
    pub fn load(vb: VarBuilder, config: Config, precision: Precision) -> Result<Self> {
        let (enc_q, dec_q) = match precision {
            Precision::F32 => (Quant::None, Quant::None),
            Precision::Q8 => (Quant::Q8, Quant::Q8),
            Precision::Mixed => (Quant::None, Quant::F32AndRows),
        };
        Ok(Whisper {
            encoder: Encoder::load(vb.pp("model.encoder"), &config, enc_q)?,
            decoder: Decoder::load(vb.pp("model.decoder"), &config, dec_q)?,
            config,
        })
    }
}
