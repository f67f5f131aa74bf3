//! Reading Silero VAD weights out of the files the `silero-vad` package ships.
//!
//! Three weight sets come in the wheel, and they differ (see the module docs
//! of [`super`] for which one is loaded and why):
//!
//! - `silero_vad.onnx` (opset 16): the weights are `Constant` nodes inside the
//!   two branches of an `If` on the sample rate, named
//!   `If_0_then_branch__Inline_0__encoder.0.reparam_conv.weight` and so on;
//! - `silero_vad_op18_ifless.onnx` (opset 18): graph initializers named
//!   `model.encoder.0.reparam_conv.weight` (16 kHz) and `model_8k.…` (8 kHz);
//! - `silero_vad_16k.safetensors`: the tinygrad port's names
//!   (`stft_conv.weight`, `conv1.weight`, `lstm_cell.weight_ih`, …), 16 kHz
//!   only.
//!
//! ONNX files are protobuf: [`onnx`] declares the few messages and fields of
//! `onnx.proto` needed to reach every tensor (graph initializers and
//! `Constant` nodes, in sub-graphs too) and decodes them with prost. Every
//! named float tensor is collected, then grouped by the prefix before a known
//! parameter name; a group holding all fifteen parameters of the network is
//! one [`Branch`], and the shape of its STFT basis says which sample rate it
//! serves. Shapes are checked against the architecture, so a file with other
//! dimensions is refused with the tensor that is wrong.

use std::collections::BTreeMap;
use std::path::Path;

use prost::Message;

use crate::{Error, Result};

/// A float tensor read from a file: row-major data and its shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Array {
    fn new(shape: Vec<usize>, data: Vec<f32>) -> std::result::Result<Self, String> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(format!(
                "shape {shape:?} needs {n} values, the file holds {}",
                data.len()
            ));
        }
        Ok(Array { shape, data })
    }
}

/// The fifteen parameters of one branch (one sample rate) of the network, in
/// the order of [`PARAMS`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Branch {
    /// STFT filter bank, `[2 * bins, 1, n_fft]`: the real parts' filters, then
    /// the imaginary parts'.
    pub stft: Array,
    /// The four encoder convolutions: weight `[out, in, 3]` and bias `[out]`.
    pub encoder: [(Array, Array); 4],
    /// LSTM cell, PyTorch layout (gates i, f, g, o): `[512, 128]` twice, then
    /// `[512]` twice.
    pub weight_ih: Array,
    pub weight_hh: Array,
    pub bias_ih: Array,
    pub bias_hh: Array,
    /// The 1×1 output convolution: `[1, 128, 1]` and `[1]`.
    pub out_weight: Array,
    pub out_bias: Array,
}

impl Branch {
    /// FFT length of the branch's STFT (256 at 16 kHz, 128 at 8 kHz).
    pub fn n_fft(&self) -> usize {
        self.stft.shape[2]
    }
}

/// Parameter slots: the name in the ONNX graphs (after a prefix) and the name
/// in the tinygrad safetensors.
const PARAMS: [(&str, &str); 15] = [
    ("stft.forward_basis_buffer", "stft_conv.weight"),
    ("encoder.0.reparam_conv.weight", "conv1.weight"),
    ("encoder.0.reparam_conv.bias", "conv1.bias"),
    ("encoder.1.reparam_conv.weight", "conv2.weight"),
    ("encoder.1.reparam_conv.bias", "conv2.bias"),
    ("encoder.2.reparam_conv.weight", "conv3.weight"),
    ("encoder.2.reparam_conv.bias", "conv3.bias"),
    ("encoder.3.reparam_conv.weight", "conv4.weight"),
    ("encoder.3.reparam_conv.bias", "conv4.bias"),
    ("decoder.rnn.weight_ih", "lstm_cell.weight_ih"),
    ("decoder.rnn.weight_hh", "lstm_cell.weight_hh"),
    ("decoder.rnn.bias_ih", "lstm_cell.bias_ih"),
    ("decoder.rnn.bias_hh", "lstm_cell.bias_hh"),
    ("decoder.decoder.2.weight", "final_conv.weight"),
    ("decoder.decoder.2.bias", "final_conv.bias"),
];

/// LSTM width of every Silero VAD v5/v6 branch.
pub(crate) const HIDDEN: usize = 128;

/// Which parameter slot a tensor name fills, and the prefix before it.
fn slot_of(name: &str) -> Option<(usize, &str)> {
    PARAMS.iter().enumerate().find_map(|(i, (onnx, tiny))| {
        if name == *tiny {
            return Some((i, ""));
        }
        let prefix = name.strip_suffix(onnx)?;
        // `model.encoder…`, `If_0_then_branch__Inline_0__encoder…`, or bare.
        (prefix.is_empty() || prefix.ends_with(['.', '_'])).then_some((i, prefix))
    })
}

/// Group named tensors into complete branches, checking every shape.
///
/// Tensors that fill no slot are ignored (graph constants such as padding
/// sizes). A group with some but not all parameters, a wrong shape, or two
/// groups for the same FFT length are errors.
pub(crate) fn branches(
    tensors: impl IntoIterator<Item = (String, Array)>,
) -> std::result::Result<Vec<Branch>, String> {
    let mut groups: BTreeMap<String, [Option<Array>; 15]> = BTreeMap::new();
    for (name, array) in tensors {
        let Some((slot, prefix)) = slot_of(&name) else {
            continue;
        };
        let group = groups
            .entry(prefix.to_string())
            .or_insert_with(|| std::array::from_fn(|_| None));
        if group[slot].replace(array).is_some() {
            return Err(format!("tensor `{name}` appears twice"));
        }
    }
    let mut out: Vec<Branch> = Vec::new();
    for (prefix, group) in groups {
        let missing: Vec<String> = group
            .iter()
            .zip(PARAMS)
            .filter(|(a, _)| a.is_none())
            .map(|(_, (onnx, _))| format!("{prefix}{onnx}"))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the weights under `{prefix}` lack {}",
                missing.join(", ")
            ));
        }
        let [
            stft,
            w0,
            b0,
            w1,
            b1,
            w2,
            b2,
            w3,
            b3,
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            out_weight,
            out_bias,
        ] = group.map(|a| a.expect("checked above"));
        let branch = Branch {
            stft,
            encoder: [(w0, b0), (w1, b1), (w2, b2), (w3, b3)],
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            out_weight,
            out_bias,
        };
        check_shapes(&branch).map_err(|e| format!("the weights under `{prefix}`: {e}"))?;
        if out.iter().any(|b| b.n_fft() == branch.n_fft()) {
            return Err(format!(
                "two weight sets with a {}-point STFT (one under `{prefix}`)",
                branch.n_fft()
            ));
        }
        out.push(branch);
    }
    if out.is_empty() {
        return Err("no Silero VAD weights in it".into());
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.n_fft()));
    Ok(out)
}

/// The shapes of the v5/v6 architecture, for an STFT whose length is a multiple of 4.
fn check_shapes(b: &Branch) -> std::result::Result<(), String> {
    let s = &b.stft.shape;
    if s.len() != 3 || s[1] != 1 || s[2] < 4 || !s[2].is_multiple_of(4) || s[0] != s[2] + 2 {
        return Err(format!(
            "STFT basis has shape {s:?}, expected [n_fft + 2, 1, n_fft] with n_fft a multiple of 4"
        ));
    }
    let bins = s[2] / 2 + 1;
    let h = HIDDEN;
    let expect: [(&str, &Array, Vec<usize>); 14] = [
        ("encoder.0 weight", &b.encoder[0].0, vec![128, bins, 3]),
        ("encoder.0 bias", &b.encoder[0].1, vec![128]),
        ("encoder.1 weight", &b.encoder[1].0, vec![64, 128, 3]),
        ("encoder.1 bias", &b.encoder[1].1, vec![64]),
        ("encoder.2 weight", &b.encoder[2].0, vec![64, 64, 3]),
        ("encoder.2 bias", &b.encoder[2].1, vec![64]),
        ("encoder.3 weight", &b.encoder[3].0, vec![h, 64, 3]),
        ("encoder.3 bias", &b.encoder[3].1, vec![h]),
        ("LSTM weight_ih", &b.weight_ih, vec![4 * h, h]),
        ("LSTM weight_hh", &b.weight_hh, vec![4 * h, h]),
        ("LSTM bias_ih", &b.bias_ih, vec![4 * h]),
        ("LSTM bias_hh", &b.bias_hh, vec![4 * h]),
        ("output weight", &b.out_weight, vec![1, h, 1]),
        ("output bias", &b.out_bias, vec![1]),
    ];
    for (what, a, want) in expect {
        if a.shape != want {
            return Err(format!("{what} has shape {:?}, expected {want:?}", a.shape));
        }
    }
    Ok(())
}

/// Every named float tensor of an ONNX model: graph initializers and
/// `Constant` node values, in sub-graphs (`If` branches) too.
pub(crate) fn onnx_tensors(bytes: &[u8]) -> std::result::Result<Vec<(String, Array)>, String> {
    let model = onnx::ModelProto::decode(bytes).map_err(|e| format!("not an ONNX model: {e}"))?;
    let graph = model
        .graph
        .ok_or_else(|| "the ONNX model has no graph".to_string())?;
    let mut out = Vec::new();
    collect(&graph, &mut out)?;
    Ok(out)
}

fn collect(
    graph: &onnx::GraphProto,
    out: &mut Vec<(String, Array)>,
) -> std::result::Result<(), String> {
    for t in &graph.initializer {
        if let Some(a) = float_array(t)? {
            out.push((t.name.clone().unwrap_or_default(), a));
        }
    }
    for node in &graph.node {
        for attr in &node.attribute {
            if node.op_type.as_deref() == Some("Constant")
                && attr.name.as_deref() == Some("value")
                && let Some(t) = &attr.t
                && let Some(a) = float_array(t)?
            {
                // A Constant's tensor is known by the node's output.
                let name = node.output.first().cloned().unwrap_or_default();
                out.push((name, a));
            }
            if let Some(g) = &attr.g {
                collect(g, out)?;
            }
            for g in &attr.graphs {
                collect(g, out)?;
            }
        }
    }
    Ok(())
}

/// A float32 tensor's values (`raw_data` little-endian or `float_data`);
/// `None` for other element types.
fn float_array(t: &onnx::TensorProto) -> std::result::Result<Option<Array>, String> {
    if t.data_type != Some(onnx::FLOAT) {
        return Ok(None);
    }
    let name = t.name.as_deref().unwrap_or("");
    if t.data_location == Some(onnx::EXTERNAL) {
        return Err(format!("tensor `{name}` is stored outside the file"));
    }
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("tensor `{name}` has dimension {d}")))
        .collect::<std::result::Result<Vec<usize>, String>>()?;
    let data = match &t.raw_data {
        Some(raw) if !raw.is_empty() || t.float_data.is_empty() => {
            if !raw.len().is_multiple_of(4) {
                return Err(format!(
                    "tensor `{name}` has {} bytes, not whole floats",
                    raw.len()
                ));
            }
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        }
        _ => t.float_data.clone(),
    };
    Array::new(shape, data)
        .map(Some)
        .map_err(|e| format!("tensor `{name}`: {e}"))
}

/// The named tensors of a safetensors file (any float dtype, read as f32).
pub(crate) fn safetensors_tensors(path: &Path) -> Result<Vec<(String, Array)>> {
    let fail = |reason: String| Error::ModelFormat {
        path: path.to_path_buf(),
        reason,
    };
    let tensors = candle_core::safetensors::load(path, &candle_core::Device::Cpu)
        .map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let shape = t.dims().to_vec();
        let data = t
            .to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .map_err(|e| fail(format!("tensor `{name}`: {e}")))?;
        out.push((name, Array::new(shape, data).map_err(fail)?));
    }
    Ok(out)
}

/// The part of `onnx.proto` (ONNX IR, proto2) needed to find tensors; field
/// numbers are the specification's. prost skips every field not declared.
pub(crate) mod onnx {
    /// `TensorProto.DataType.FLOAT`.
    pub const FLOAT: i32 = 1;
    /// `TensorProto.DataLocation.EXTERNAL`.
    pub const EXTERNAL: i32 = 1;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, optional, tag = "4")]
        pub op_type: Option<String>,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(message, optional, tag = "5")]
        pub t: Option<TensorProto>,
        #[prost(message, optional, tag = "6")]
        pub g: Option<GraphProto>,
        #[prost(message, repeated, tag = "11")]
        pub graphs: Vec<GraphProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, packed = "false", tag = "1")]
        pub dims: Vec<i64>,
        #[prost(int32, optional, tag = "2")]
        pub data_type: Option<i32>,
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        #[prost(string, optional, tag = "8")]
        pub name: Option<String>,
        #[prost(bytes = "vec", optional, tag = "9")]
        pub raw_data: Option<Vec<u8>>,
        #[prost(int32, optional, tag = "14")]
        pub data_location: Option<i32>,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::onnx::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};
    use super::*;

    /// A small deterministic pseudo-random sequence (no rand dependency).
    pub(crate) fn values(seed: u32, n: usize, scale: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32 - 0.5) * 2.0 * scale
            })
            .collect()
    }

    /// The parameter shapes of a branch with this FFT length, in [`PARAMS`] order.
    pub(crate) fn shapes(n_fft: usize) -> Vec<Vec<usize>> {
        let bins = n_fft / 2 + 1;
        vec![
            vec![n_fft + 2, 1, n_fft],
            vec![128, bins, 3],
            vec![128],
            vec![64, 128, 3],
            vec![64],
            vec![64, 64, 3],
            vec![64],
            vec![128, 64, 3],
            vec![128],
            vec![512, 128],
            vec![512, 128],
            vec![512],
            vec![512],
            vec![1, 128, 1],
            vec![1],
        ]
    }

    /// Random weights for one branch, named `prefix` + the ONNX names.
    pub(crate) fn named(prefix: &str, n_fft: usize, seed: u32) -> Vec<(String, Array)> {
        PARAMS
            .iter()
            .zip(shapes(n_fft))
            .enumerate()
            .map(|(i, ((onnx, _), shape))| {
                let n = shape.iter().product();
                let fan_in = shape.iter().skip(1).product::<usize>().max(1);
                let data = values(seed + i as u32, n, 1.0 / (fan_in as f32).sqrt());
                (format!("{prefix}{onnx}"), Array { shape, data })
            })
            .collect()
    }

    fn tensor(name: &str, a: &Array, raw: bool) -> TensorProto {
        TensorProto {
            dims: a.shape.iter().map(|&d| d as i64).collect(),
            data_type: Some(onnx::FLOAT),
            float_data: if raw { Vec::new() } else { a.data.clone() },
            name: Some(name.to_string()),
            raw_data: raw.then(|| a.data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            data_location: None,
        }
    }

    fn constant(name: &str, a: &Array) -> NodeProto {
        NodeProto {
            input: vec![],
            output: vec![name.to_string()],
            op_type: Some("Constant".into()),
            attribute: vec![AttributeProto {
                name: Some("value".into()),
                t: Some(tensor("", a, true)),
                g: None,
                graphs: vec![],
            }],
        }
    }

    /// An opset-16-like model: both branches' weights as Constants inside
    /// the `then` / `else` graphs of an `If` (float_data in one, raw_data in
    /// the other), plus an int64 constant that must be ignored.
    pub(crate) fn if_model(w16: &[(String, Array)], w8: &[(String, Array)]) -> Vec<u8> {
        let branch = |w: &[(String, Array)]| GraphProto {
            node: w.iter().map(|(n, a)| constant(n, a)).collect(),
            initializer: vec![],
        };
        let int_const = TensorProto {
            dims: vec![1],
            data_type: Some(7),
            name: Some("pad".into()),
            ..TensorProto::default()
        };
        let model = ModelProto {
            graph: Some(GraphProto {
                node: vec![NodeProto {
                    input: vec!["cond".into()],
                    output: vec!["out".into()],
                    op_type: Some("If".into()),
                    attribute: vec![
                        AttributeProto {
                            name: Some("then_branch".into()),
                            t: None,
                            g: Some(branch(w16)),
                            graphs: vec![],
                        },
                        AttributeProto {
                            name: Some("else_branch".into()),
                            t: None,
                            g: Some(branch(w8)),
                            graphs: vec![],
                        },
                    ],
                }],
                initializer: vec![int_const],
            }),
        };
        model.encode_to_vec()
    }

    /// An opset-18-like model: named initializers.
    pub(crate) fn initializer_model(w: &[(String, Array)]) -> Vec<u8> {
        ModelProto {
            graph: Some(GraphProto {
                node: vec![],
                initializer: w
                    .iter()
                    .enumerate()
                    .map(|(i, (n, a))| tensor(n, a, i % 2 == 0))
                    .collect(),
            }),
        }
        .encode_to_vec()
    }

    #[test]
    fn names_map_to_slots_with_their_prefix() {
        assert_eq!(
            slot_of("model.encoder.0.reparam_conv.weight"),
            Some((1, "model."))
        );
        assert_eq!(
            slot_of("model_8k.decoder.decoder.2.bias"),
            Some((14, "model_8k."))
        );
        assert_eq!(
            slot_of("If_0_else_branch__Inline_0__stft.forward_basis_buffer"),
            Some((0, "If_0_else_branch__Inline_0__"))
        );
        assert_eq!(slot_of("lstm_cell.bias_hh"), Some((12, "")));
        assert_eq!(slot_of("decoder.rnn.weight_hh"), Some((10, "")));
        // Not a parameter, or a name that merely ends alike.
        assert_eq!(slot_of("val_7"), None);
        assert_eq!(slot_of("xencoder.0.reparam_conv.weight"), None);
    }

    #[test]
    fn constants_in_if_branches_become_two_branches() {
        let w16 = named("If_0_then_branch__Inline_0__", 256, 1);
        let w8 = named("If_0_else_branch__Inline_0__", 128, 100);
        let tensors = onnx_tensors(&if_model(&w16, &w8)).unwrap();
        assert_eq!(tensors.len(), 30, "the int64 constant is skipped");
        let b = branches(tensors).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].n_fft(), b[1].n_fft()), (256, 128));
        // Values survive the round trip bit for bit, from raw_data.
        assert_eq!(b[0].stft, w16[0].1);
        assert_eq!(b[1].encoder[0].0, w8[1].1);
        assert_eq!(b[1].out_bias, w8[14].1);
        assert_eq!(b[0].weight_hh, w16[10].1);
    }

    #[test]
    fn initializers_with_float_or_raw_data_become_branches() {
        let mut w = named("model.", 256, 7);
        w.extend(named("model_8k.", 128, 70));
        let b = branches(onnx_tensors(&initializer_model(&w)).unwrap()).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].encoder[3].1, w[8].1);
        assert_eq!(b[1].bias_ih, w[15 + 11].1);
    }

    #[test]
    fn tinygrad_names_make_a_16k_branch() {
        let w: Vec<(String, Array)> = named("", 256, 3)
            .into_iter()
            .zip(PARAMS)
            .map(|((_, a), (_, tiny))| (tiny.to_string(), a))
            .collect();
        let b = branches(w.clone()).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].n_fft(), 256);
        assert_eq!(b[0].weight_ih, w[9].1);
    }

    #[test]
    fn broken_weights_are_refused_with_the_reason() {
        // A parameter missing.
        let mut w = named("model.", 256, 1);
        w.remove(12);
        let err = branches(w).unwrap_err();
        assert!(err.contains("model.decoder.rnn.bias_hh"), "{err}");
        // A wrong shape.
        let mut w = named("model.", 256, 1);
        w[3].1.shape = vec![64, 129, 3];
        w[3].1.data.truncate(64 * 129 * 3);
        let err = branches(w).unwrap_err();
        assert!(
            err.contains("encoder.1 weight has shape [64, 129, 3]"),
            "{err}"
        );
        // Two sets for one rate.
        let mut w = named("a.", 128, 1);
        w.extend(named("b.", 128, 2));
        let err = branches(w).unwrap_err();
        assert!(
            err.contains("two weight sets with a 128-point STFT"),
            "{err}"
        );
        // A duplicate name.
        let mut w = named("m.", 128, 1);
        w.push(w[0].clone());
        assert!(branches(w).unwrap_err().contains("appears twice"));
        // Nothing at all.
        assert!(branches(Vec::new()).unwrap_err().contains("no Silero VAD"));
        // A tensor whose data does not fill its shape.
        let mut t = tensor("x", &named("", 128, 1)[2].1, true);
        t.raw_data.as_mut().unwrap().pop();
        assert!(float_array(&t).unwrap_err().contains("not whole floats"));
        t.raw_data.as_mut().unwrap().truncate(8);
        assert!(float_array(&t).unwrap_err().contains("needs 128 values"));
        // Not protobuf.
        assert!(
            onnx_tensors(b"\xff\xff\xff")
                .unwrap_err()
                .contains("not an ONNX model")
        );
    }
}
