//! One branch of Silero VAD as a candle forward pass.
//!
//! Per window (context + frame samples): reflect-pad the right end by a
//! quarter of the FFT length, STFT as a strided 1-D convolution with the
//! model's filter bank, magnitude, four 1-D convolutions with ReLU (strides
//! 1, 2, 2, 1) down to one time step, one LSTM cell step, ReLU, a 1×1
//! convolution and a sigmoid. The only step done by hand is the reflect
//! padding (candle has zero and edge padding, not reflection); the rest is
//! candle's CPU ops.

use candle_core::{D, DType, Device, Tensor};

use super::weights::{Array, Branch, HIDDEN};

type CResult<T> = candle_core::Result<T>;

/// The tensors of one branch, laid out for the forward pass.
#[derive(Debug, Clone)]
pub(crate) struct Net {
    n_fft: usize,
    /// `[2 * bins, 1, n_fft]`.
    stft: Tensor,
    /// Weight `[out, in, 3]`, bias `[1, out, 1]`, stride.
    encoder: [(Tensor, Tensor, usize); 4],
    /// `[w_ih | w_hh]ᵀ`: `[2 * HIDDEN, 4 * HIDDEN]`, so that one product of
    /// `[x | h]` gives the four gates.
    lstm_w: Tensor,
    /// `b_ih + b_hh`, `[1, 4 * HIDDEN]`.
    lstm_b: Tensor,
    /// `[HIDDEN, 1]`.
    out_w: Tensor,
    /// `[1, 1]`.
    out_b: Tensor,
}

fn tensor(a: &Array) -> CResult<Tensor> {
    Tensor::from_slice(&a.data, a.shape.as_slice(), &Device::Cpu)
}

impl Net {
    pub fn new(b: &Branch) -> CResult<Net> {
        let strides = [1, 2, 2, 1];
        let enc = |i: usize| -> CResult<(Tensor, Tensor, usize)> {
            let (w, bias) = &b.encoder[i];
            let n = bias.data.len();
            Ok((tensor(w)?, tensor(bias)?.reshape((1, n, 1))?, strides[i]))
        };
        let lstm_w = Tensor::cat(&[tensor(&b.weight_ih)?, tensor(&b.weight_hh)?], 1)?
            .t()?
            .contiguous()?;
        let lstm_b = (tensor(&b.bias_ih)? + tensor(&b.bias_hh)?)?.reshape((1, 4 * HIDDEN))?;
        Ok(Net {
            n_fft: b.n_fft(),
            stft: tensor(&b.stft)?,
            encoder: [enc(0)?, enc(1)?, enc(2)?, enc(3)?],
            lstm_w,
            lstm_b,
            out_w: tensor(&b.out_weight)?.reshape((HIDDEN, 1))?,
            out_b: tensor(&b.out_bias)?.reshape((1, 1))?,
        })
    }

    /// FFT length (256 at 16 kHz, 128 at 8 kHz).
    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    /// Zero LSTM state, `[1, HIDDEN]` each for `h` and `c`.
    pub fn zero_state() -> CResult<(Tensor, Tensor)> {
        let z = Tensor::zeros((1, HIDDEN), DType::F32, &Device::Cpu)?;
        Ok((z.clone(), z))
    }

    /// Speech probability of `window` (context followed by the frame) and the
    /// next LSTM state.
    pub fn forward(
        &self,
        window: &[f32],
        h: &Tensor,
        c: &Tensor,
    ) -> CResult<(f32, Tensor, Tensor)> {
        let pad = self.n_fft / 4;
        let padded = reflect_right(window, pad);
        let len = padded.len();
        let x = Tensor::from_vec(padded, (1, 1, len), &Device::Cpu)?;
        // STFT: real parts in the first half of the channels, imaginary in the second.
        let spec = x.conv1d(&self.stft, 0, self.n_fft / 2, 1, 1)?;
        let bins = self.n_fft / 2 + 1;
        let re = spec.narrow(1, 0, bins)?;
        let im = spec.narrow(1, bins, bins)?;
        let mut y = (re.sqr()? + im.sqr()?)?.sqrt()?;
        for (w, b, stride) in &self.encoder {
            y = y.conv1d(w, 1, *stride, 1, 1)?.broadcast_add(b)?.relu()?;
        }
        // One time step is left: [1, HIDDEN, 1] → [1, HIDDEN].
        let x = y.squeeze(D::Minus1)?;
        let gates = Tensor::cat(&[&x, h], 1)?
            .matmul(&self.lstm_w)?
            .broadcast_add(&self.lstm_b)?;
        let gate = |i: usize| gates.narrow(1, i * HIDDEN, HIDDEN);
        let i = candle_nn::ops::sigmoid(&gate(0)?)?;
        let f = candle_nn::ops::sigmoid(&gate(1)?)?;
        let g = gate(2)?.tanh()?;
        let o = candle_nn::ops::sigmoid(&gate(3)?)?;
        let c = ((f * c)? + (i * g)?)?;
        let h = (o * c.tanh()?)?;
        let logit = h.relu()?.matmul(&self.out_w)?.broadcast_add(&self.out_b)?;
        let p = candle_nn::ops::sigmoid(&logit)?
            .flatten_all()?
            .to_vec1::<f32>()?[0];
        Ok((p, h, c))
    }
}

/// `x` followed by its last `pad` samples mirrored about the final one
/// (numpy / ONNX `reflect`: `… x[n-2], x[n-3], …, x[n-1-pad]`).
pub(crate) fn reflect_right(x: &[f32], pad: usize) -> Vec<f32> {
    let n = x.len();
    debug_assert!(n > pad, "reflect padding needs more samples than the pad");
    let mut out = Vec::with_capacity(n + pad);
    out.extend_from_slice(x);
    out.extend((0..pad).map(|k| x[n - 2 - k]));
    out
}

#[cfg(test)]
mod tests {
    use super::super::weights::{branches, tests as w};
    use super::*;

    /// The same network written as plain loops, straight from the
    /// reference's definition (PyTorch Conv1d / LSTMCell semantics).
    struct Plain<'a>(&'a Branch);

    fn conv1d(
        x: &[Vec<f32>],
        w: &Array,
        b: Option<&Array>,
        stride: usize,
        pad: usize,
    ) -> Vec<Vec<f32>> {
        let (out_c, in_c, k) = (w.shape[0], w.shape[1], w.shape[2]);
        let len = x[0].len();
        let out_len = (len + 2 * pad - k) / stride + 1;
        (0..out_c)
            .map(|o| {
                (0..out_len)
                    .map(|t| {
                        let mut s = b.map_or(0.0, |b| b.data[o]);
                        for (i, row) in x.iter().enumerate().take(in_c) {
                            for j in 0..k {
                                let pos = (t * stride + j) as isize - pad as isize;
                                if pos >= 0 && (pos as usize) < len {
                                    s += w.data[(o * in_c + i) * k + j] * row[pos as usize];
                                }
                            }
                        }
                        s
                    })
                    .collect()
            })
            .collect()
    }

    fn sigmoid(v: f32) -> f32 {
        1.0 / (1.0 + (-v).exp())
    }

    impl Plain<'_> {
        fn forward(&self, window: &[f32], h: &[f32], c: &[f32]) -> (f32, Vec<f32>, Vec<f32>) {
            let b = self.0;
            let n_fft = b.n_fft();
            let x = vec![reflect_right(window, n_fft / 4)];
            let spec = conv1d(&x, &b.stft, None, n_fft / 2, 0);
            let bins = n_fft / 2 + 1;
            let mut y: Vec<Vec<f32>> = (0..bins)
                .map(|f| {
                    (0..spec[0].len())
                        .map(|t| (spec[f][t].powi(2) + spec[f + bins][t].powi(2)).sqrt())
                        .collect()
                })
                .collect();
            for (i, stride) in [1, 2, 2, 1].into_iter().enumerate() {
                let (wt, bias) = &b.encoder[i];
                y = conv1d(&y, wt, Some(bias), stride, 1);
                y.iter_mut().flatten().for_each(|v| *v = v.max(0.0));
            }
            assert!(y.iter().all(|r| r.len() == 1));
            let x: Vec<f32> = y.iter().map(|r| r[0]).collect();
            let hd = HIDDEN;
            let gate = |g: usize, j: usize| {
                let row = g * hd + j;
                let mut s = b.bias_ih.data[row] + b.bias_hh.data[row];
                for k in 0..hd {
                    s += b.weight_ih.data[row * hd + k] * x[k]
                        + b.weight_hh.data[row * hd + k] * h[k];
                }
                s
            };
            let mut h2 = vec![0.0; hd];
            let mut c2 = vec![0.0; hd];
            for j in 0..hd {
                let (i, f, g, o) = (
                    sigmoid(gate(0, j)),
                    sigmoid(gate(1, j)),
                    gate(2, j).tanh(),
                    sigmoid(gate(3, j)),
                );
                c2[j] = f * c[j] + i * g;
                h2[j] = o * c2[j].tanh();
            }
            let logit = b.out_bias.data[0]
                + (0..hd)
                    .map(|j| b.out_weight.data[j] * h2[j].max(0.0))
                    .sum::<f32>();
            (sigmoid(logit), h2, c2)
        }
    }

    #[test]
    fn candle_forward_matches_plain_loops_over_several_steps() {
        for (n_fft, seed) in [(256, 11), (128, 12)] {
            let branch = &branches(w::named("m.", n_fft, seed)).unwrap()[0];
            let net = Net::new(branch).unwrap();
            let plain = Plain(branch);
            let (mut h, mut c) = Net::zero_state().unwrap();
            let (mut ph, mut pc) = (vec![0.0; HIDDEN], vec![0.0; HIDDEN]);
            for step in 0..4u32 {
                let window = w::values(1000 + step, n_fft * 2 + n_fft / 4, 0.3);
                let (p, h2, c2) = net.forward(&window, &h, &c).unwrap();
                let (pp, ph2, pc2) = plain.forward(&window, &ph, &pc);
                assert!(
                    (p - pp).abs() < 1e-5,
                    "n_fft {n_fft} step {step}: {p} vs {pp}"
                );
                let hv = h2.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let max = hv
                    .iter()
                    .zip(&ph2)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(max < 1e-4, "n_fft {n_fft} step {step}: h differs by {max}");
                (h, c, ph, pc) = (h2, c2, ph2, pc2);
            }
        }
    }

    #[test]
    fn reflect_padding_mirrors_about_the_last_sample() {
        assert_eq!(
            reflect_right(&[1.0, 2.0, 3.0, 4.0, 5.0], 3),
            [1.0, 2.0, 3.0, 4.0, 5.0, 4.0, 3.0, 2.0]
        );
    }
}
