//! The embedder's loaders on a tiny synthetic model, no downloads needed:
//! the same random weights written as an `E5S1` file and as Hugging Face
//! directories (XLM-RoBERTa with its position offset of 2, and BERT) must
//! give the same vectors.

use std::collections::HashMap;
use std::path::Path;

use assist_models::embed::{Compute, E5s1File, EmbedKind, Embedder, cosine, dequantize_q4_0};
use candle_core::{Device, Tensor};

const HIDDEN: usize = 64;
const HEADS: usize = 4;
const LAYERS: usize = 2;
const FF: usize = 128;
const POSITIONS: usize = 24;
const WORDS: &[&str] = &[
    "<s>", "<pad>", "</s>", "<unk>", "query", "passage", ":", "price", "too", "high", "discount",
    "delivery", "tomorrow", "hotline", "refund", "please", "call", "back", "the", "is",
];

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn f32s(&mut self, n: usize, scale: f32, offset: f32) -> Vec<f32> {
        (0..n).map(|_| offset + scale * self.unit()).collect()
    }

    /// Random Q4_0 blocks for `n` weights.
    fn q4_0(&mut self, n: usize, scale: f32) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..n / 32 {
            let d = half::f16::from_f32(scale * (0.5 + 0.5 * self.unit().abs()));
            out.extend(d.to_le_bytes());
            out.extend((0..16).map(|_| (self.next() >> 56) as u8));
        }
        out
    }
}

enum Data {
    F32(Vec<f32>),
    Q4(Vec<u8>),
}

/// The tensors of an `E5S1` file, in its order.
fn tiny_model() -> Vec<(String, Data)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (d, ff) = (HIDDEN, FF);
    let mut t = vec![
        (
            "emb.word".to_string(),
            Data::Q4(rng.q4_0(WORDS.len() * d, 0.05)),
        ),
        (
            "emb.pos".into(),
            Data::F32(rng.f32s(POSITIONS * d, 0.1, 0.0)),
        ),
        ("emb.type".into(), Data::F32(rng.f32s(2 * d, 0.1, 0.0))),
        ("emb.ln.w".into(), Data::F32(rng.f32s(d, 0.2, 1.0))),
        ("emb.ln.b".into(), Data::F32(rng.f32s(d, 0.1, 0.0))),
    ];
    for l in 0..LAYERS {
        for (m, out, inp) in [
            ("q", d, d),
            ("k", d, d),
            ("v", d, d),
            ("ao", d, d),
            ("fi", ff, d),
            ("fo", d, ff),
        ] {
            t.push((format!("l{l}.{m}.w"), Data::Q4(rng.q4_0(out * inp, 0.03))));
            t.push((format!("l{l}.{m}.b"), Data::F32(rng.f32s(out, 0.05, 0.0))));
            if m == "ao" {
                t.push((format!("l{l}.aln.w"), Data::F32(rng.f32s(d, 0.2, 1.0))));
                t.push((format!("l{l}.aln.b"), Data::F32(rng.f32s(d, 0.1, 0.0))));
            }
        }
        t.push((format!("l{l}.oln.w"), Data::F32(rng.f32s(d, 0.2, 1.0))));
        t.push((format!("l{l}.oln.b"), Data::F32(rng.f32s(d, 0.1, 0.0))));
    }
    t
}

fn bytes(data: &Data) -> Vec<u8> {
    match data {
        Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::Q4(b) => b.clone(),
    }
}

fn values(data: &Data) -> Vec<f32> {
    match data {
        Data::F32(v) => v.clone(),
        Data::Q4(b) => {
            let mut out = vec![0f32; b.len() / 18 * 32];
            dequantize_q4_0(b, &mut out);
            out
        }
    }
}

/// Write `tensors` as an `E5S1` file the way `e5.c` reads it (an empty
/// embedded tokenizer: we tokenize with tokenizer.json).
fn write_e5s1(path: &Path, tensors: &[(String, Data)]) {
    let mut h = Vec::new();
    h.extend(b"E5S1");
    h.extend(1u32.to_le_bytes());
    for v in [HIDDEN, LAYERS, HEADS, FF, WORDS.len(), POSITIONS, 2] {
        h.extend((v as i32).to_le_bytes());
    }
    h.extend(1e-12f32.to_le_bytes());
    h.extend(32i32.to_le_bytes());
    for v in [0i32, 0, 2, 1, 3] {
        h.extend(v.to_le_bytes()); // pieces, bos, eos, pad, unk
    }
    h.extend(0u64.to_le_bytes()); // piece blob
    h.extend(0u32.to_le_bytes()); // one piece offset
    h.extend(0i32.to_le_bytes()); // normalisation entries
    h.extend(0u32.to_le_bytes()); // normalisation bytes
    h.extend((tensors.len() as i32).to_le_bytes());
    let dir_len: usize = tensors.iter().map(|(n, _)| 2 + n.len() + 1 + 4 + 16).sum();
    let mut offset = (h.len() + dir_len).next_multiple_of(32);
    let mut data = Vec::new();
    for (name, t) in tensors {
        let b = bytes(t);
        h.extend((name.len() as u16).to_le_bytes());
        h.extend(name.as_bytes());
        let (dtype, n) = match t {
            Data::F32(v) => (0u8, v.len()),
            Data::Q4(b) => (1u8, b.len() / 18 * 32),
        };
        h.push(dtype);
        h.extend((n as u32).to_le_bytes());
        h.extend((offset as u64).to_le_bytes());
        h.extend((b.len() as u64).to_le_bytes());
        let padded = b.len().next_multiple_of(32);
        data.push(b);
        offset += padded;
    }
    let mut file = h;
    file.resize(file.len().next_multiple_of(32), 0);
    for b in data {
        let padded = b.len().next_multiple_of(32);
        file.extend(&b);
        file.resize(file.len() + padded - b.len(), 0);
    }
    std::fs::write(path, file).unwrap();
}

fn write_tokenizer(dir: &Path) {
    let vocab: serde_json::Map<String, serde_json::Value> = WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), i.into()))
        .collect();
    let special = |id: usize, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0, "<s>"), special(1, "<pad>"), special(2, "</s>"), special(3, "<unk>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                               "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
}

/// Write the model as a Hugging Face directory of `model_type`.
fn write_hf(dir: &Path, tensors: &[(String, Data)], model_type: &str, prefix: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let get = |name: &str| values(&tensors.iter().find(|(n, _)| n == name).unwrap().1);
    let dev = Device::Cpu;
    let mut out: HashMap<String, Tensor> = HashMap::new();
    let mut put = |name: String, v: Vec<f32>, shape: &[usize]| {
        out.insert(
            format!("{prefix}{name}"),
            Tensor::from_vec(v, shape, &dev).unwrap(),
        );
    };
    let (d, ff) = (HIDDEN, FF);
    // XLM-R counts positions from padding_idx + 1 = 2: two leading rows it never uses.
    let offset = if model_type == "bert" { 0 } else { 2 };
    let mut pos = vec![1e3f32; offset * d];
    pos.extend(get("emb.pos"));
    put(
        "embeddings.word_embeddings.weight".into(),
        get("emb.word"),
        &[WORDS.len(), d],
    );
    put(
        "embeddings.position_embeddings.weight".into(),
        pos,
        &[POSITIONS + offset, d],
    );
    put(
        "embeddings.token_type_embeddings.weight".into(),
        get("emb.type"),
        &[2, d],
    );
    put("embeddings.LayerNorm.weight".into(), get("emb.ln.w"), &[d]);
    put("embeddings.LayerNorm.bias".into(), get("emb.ln.b"), &[d]);
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}.");
        for (ours, theirs, o, i) in [
            ("q", "attention.self.query", d, d),
            ("k", "attention.self.key", d, d),
            ("v", "attention.self.value", d, d),
            ("ao", "attention.output.dense", d, d),
            ("fi", "intermediate.dense", ff, d),
            ("fo", "output.dense", d, ff),
        ] {
            put(
                format!("{p}{theirs}.weight"),
                get(&format!("l{l}.{ours}.w")),
                &[o, i],
            );
            put(
                format!("{p}{theirs}.bias"),
                get(&format!("l{l}.{ours}.b")),
                &[o],
            );
        }
        for (ours, theirs) in [
            ("aln", "attention.output.LayerNorm"),
            ("oln", "output.LayerNorm"),
        ] {
            put(
                format!("{p}{theirs}.weight"),
                get(&format!("l{l}.{ours}.w")),
                &[d],
            );
            put(
                format!("{p}{theirs}.bias"),
                get(&format!("l{l}.{ours}.b")),
                &[d],
            );
        }
    }
    candle_core::safetensors::save(&out, dir.join("model.safetensors")).unwrap();
    let config = serde_json::json!({
        "model_type": model_type, "hidden_size": d, "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS, "intermediate_size": ff,
        "max_position_embeddings": POSITIONS + offset, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12, "pad_token_id": 1, "hidden_act": "gelu",
        "_name_or_path": "tiny-e5-test"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    write_tokenizer(dir);
}

const TEXTS: &[&str] = &[
    "price too high",
    "the price is too high please discount",
    "delivery tomorrow",
    "refund",
    "",
    "call back the hotline please call back the hotline please call back the hotline please \
     call back the hotline please call back the hotline please",
];

fn embed_all(m: &mut Embedder) -> Vec<Vec<f32>> {
    let mut out = m.embed(TEXTS, EmbedKind::Query).unwrap();
    out.extend(m.embed(TEXTS, EmbedKind::Passage).unwrap());
    out
}

#[test]
fn e5s1_and_hf_layouts_give_the_same_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    let tensors = tiny_model();
    let e5 = tmp.path().join("tiny-e5s1");
    std::fs::create_dir_all(&e5).unwrap();
    write_e5s1(&e5.join("e5-small-q4.bin"), &tensors);
    write_tokenizer(&e5);

    let file = E5s1File::read(&e5.join("e5-small-q4.bin")).unwrap();
    assert_eq!(file.header().hidden, HIDDEN);
    assert_eq!(file.header().max_positions, POSITIONS);
    assert_eq!(file.tensors().len(), tensors.len());
    let fi = &tensors.iter().find(|(n, _)| n == "l1.fi.w").unwrap().1;
    assert_eq!(file.dequantized("l1.fi.w").unwrap(), values(fi));

    let mut ours = Embedder::load_with(&e5, Compute::F32).unwrap();
    assert_eq!(ours.dim(), HIDDEN);
    assert_eq!(ours.max_tokens(), POSITIONS);
    let long = ours.tokenize(&[TEXTS[5]], EmbedKind::Passage).unwrap();
    assert_eq!(long[0].len(), POSITIONS, "truncated to the position table");
    let reference = embed_all(&mut ours);

    for (model_type, prefix) in [("xlm-roberta", "roberta."), ("bert", "")] {
        let hf = tmp.path().join(format!("hf-{model_type}"));
        write_hf(&hf, &tensors, model_type, prefix);
        let mut m = Embedder::load(&hf).unwrap();
        assert_eq!(m.prefix(EmbedKind::Query), "query: ", "an e5 model by name");
        for (i, (a, b)) in embed_all(&mut m).iter().zip(&reference).enumerate() {
            let c = cosine(a, b);
            assert!(c > 0.99999, "{model_type} text {i}: cosine {c}");
        }
    }

    // The default path (f32 sgemm split over threads) and candle's f16 gemm
    // agree with candle's f32 gemm.
    for compute in [Compute::Sgemm, Compute::F16] {
        let mut m = Embedder::load_with(&e5, compute).unwrap();
        for (i, (a, b)) in embed_all(&mut m).iter().zip(&reference).enumerate() {
            let c = cosine(a, b);
            assert!(c > 0.9999, "{compute:?} text {i}: cosine {c}");
        }
    }

    // Q4_0 × Q8_0 matmuls quantise activations: close, not equal.
    let mut q = Embedder::load_with(&e5, Compute::Quantized).unwrap();
    for (i, (a, b)) in embed_all(&mut q).iter().zip(&reference).enumerate() {
        let c = cosine(a, b);
        assert!(c > 0.995, "quantized text {i}: cosine {c}");
    }
}

#[test]
fn damaged_files_are_refused_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("e5-small-q4.bin");
    let tensors = tiny_model();
    write_e5s1(&path, &tensors);
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() - 100]).unwrap();
    let err = E5s1File::read(&path).unwrap_err().to_string();
    assert!(err.contains("runs past the end"), "{err}");

    let mut missing = tensors;
    missing.retain(|(n, _)| n != "l1.fo.b");
    write_e5s1(&path, &missing);
    let err = E5s1File::read(&path).unwrap_err().to_string();
    assert!(err.contains("`l1.fo.b` is missing"), "{err}");

    let err = Embedder::load(tmp.path().join("nowhere").as_path()).unwrap_err();
    assert!(err.to_string().contains("neither"), "{err}");
}
