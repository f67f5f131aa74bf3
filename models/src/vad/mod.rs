//! Voice activity detection: Silero VAD v6 on candle, at 16 kHz and 8 kHz.
//!
//! How the pieces fit together:
//!
//! - [`SileroModel`] holds the weights of both sample rates, read once from
//!   the model store's `vad` model (`silero_vad.onnx` from the PyPI package
//!   `silero-vad==6.2.3`, MIT). Cheap to clone: its tensors are shared, so
//!   every call channel can have its own detector on the same weights.
//! - [`SileroVad`] is one detector's state: the LSTM state and the last
//!   context samples (64 at 16 kHz, 32 at 8 kHz) that the reference prepends
//!   to every window. [`SileroVad::prob`] takes exactly one frame (512
//!   samples at 16 kHz, 256 at 8 kHz: 32 ms) and returns the probability that
//!   it holds speech, exactly as the package's `OnnxWrapper.__call__` does.
//! - [`Endpointer`] turns a channel's frame probabilities into utterances
//!   (start, end after trailing silence, maximum length, partials), and
//!   [`Segmenter`] puts a detector, an endpointer and the audio together:
//!   PCM in, [`Utterance`]s out (see [`endpoint`] and [`segment`]).
//! - [`VadStream`] takes PCM chunks of any length (f32 or 16-bit), cuts them
//!   into frames and yields one [`FrameProb`] per frame; [`VadStream::finish`]
//!   zero-pads a last partial frame the way the reference's `audio_forward`
//!   pads the end of a recording.
//!
//! # Which weights, and 8 kHz
//!
//! The wheel carries three weight sets that differ: `silero_vad.onnx`
//! (opset 16, the package's default ONNX model, weights as constants inside
//! an `If` on the sample rate), `silero_vad_op18_ifless.onnx` (the same 16 kHz
//! weights, *other* 8 kHz weights) and `silero_vad_16k.safetensors` (other
//! 16 kHz weights, no 8 kHz ones). The loader reads any of them (see
//! `weights.rs`: the ONNX protobuf is decoded with prost, the safetensors
//! with candle), and `assist-eval vad-agree` measured each against
//! onnxruntime running `silero_vad.onnx` on real speech
//! (`eval/reports/vad-agree.md`): we load `silero_vad.onnx`, whose 16 kHz
//! and native 8 kHz branches both agree with onnxruntime to about 1e-6 per
//! frame. 8 kHz phone audio runs on the native 8 kHz branch; the other path,
//! resampling to 16 kHz first, disagrees with onnxruntime's 8 kHz output by
//! far more (figures in the report), so it is not offered.
//!
//! # Speed
//!
//! One 32 ms frame costs about 0.7 million multiply-adds (the STFT
//! convolution, the first encoder convolution and the LSTM are most of it).
//! The forward pass is candle's CPU ops; the only hand-written step is the
//! reflect padding (candle has no reflection). Measured on one core
//! (`taskset -c 0 assist-eval vad-agree`, `eval/reports/vad-agree.md`, while
//! another build ran): 235 µs per 16 kHz frame and 211 µs per 8 kHz frame
//! with candle's default threads, but 94 µs and 44 µs with
//! `RAYON_NUM_THREADS=1` (onnxruntime from Python: 122–151 µs and
//! 87–101 µs). Candle hands each of these tiny products to gemm with its
//! thread count, and the split costs more than the work; running the
//! forward inside a one-thread rayon pool did not help (gemm is told the
//! count, not the pool). Either way a frame costs well under 1 ms.
//!
//! ```no_run
//! use assist_models::vad::{SampleRate, SileroModel};
//!
//! # fn main() -> assist_models::Result<()> {
//! let model = SileroModel::load("/var/cache/assist/models/silero-vad")?;
//! let mut stream = model.stream(SampleRate::Hz8000)?;
//! let pcm16: Vec<i16> = vec![0; 800]; // 100 ms of phone audio
//! for frame in stream.push_i16(&pcm16)? {
//!     println!("{} ms: {:.3}", frame.start_ms(), frame.prob);
//! }
//! # Ok(())
//! # }
//! ```

pub mod endpoint;
mod net;
pub mod segment;
mod stream;
mod weights;

use std::path::{Path, PathBuf};

use candle_core::Tensor;

pub use endpoint::{EndReason, EndpointEvent, EndpointOptions, Endpointer};
pub use segment::{EnergyGate, Segmenter, Utterance};
pub use stream::{FrameProb, VadStream};

use crate::store::ModelStore;
use crate::{Error, Result};
use net::Net;

/// The store role of the VAD model.
pub const ROLE: &str = "vad";

/// The file [`SileroModel::load`] reads from a model directory.
pub const MODEL_FILE: &str = "silero_vad.onnx";

/// A sample rate Silero VAD has weights for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleRate {
    /// 16 kHz: 512-sample frames, 64 context samples.
    Hz16000,
    /// 8 kHz (telephone band): 256-sample frames, 32 context samples.
    Hz8000,
}

impl SampleRate {
    /// Both rates.
    pub const ALL: [SampleRate; 2] = [SampleRate::Hz16000, SampleRate::Hz8000];

    /// The rate for `hz`, if the model has weights for it.
    pub fn from_hz(hz: u32) -> Option<SampleRate> {
        match hz {
            16_000 => Some(SampleRate::Hz16000),
            8_000 => Some(SampleRate::Hz8000),
            _ => None,
        }
    }

    /// Samples per second.
    pub fn hz(self) -> u32 {
        match self {
            SampleRate::Hz16000 => 16_000,
            SampleRate::Hz8000 => 8_000,
        }
    }

    /// Samples in one frame given to [`SileroVad::prob`] (32 ms).
    pub fn frame_len(self) -> usize {
        self.n_fft() * 2
    }

    /// Samples of the previous frame prepended to each window.
    pub fn context_len(self) -> usize {
        self.n_fft() / 4
    }

    /// Length of one frame, milliseconds (32 at both rates).
    pub fn frame_ms(self) -> u32 {
        (self.frame_len() as u32) * 1000 / self.hz()
    }

    /// FFT length of the branch for this rate.
    fn n_fft(self) -> usize {
        match self {
            SampleRate::Hz16000 => 256,
            SampleRate::Hz8000 => 128,
        }
    }
}

/// Silero VAD weights for one or both sample rates. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SileroModel {
    hz16000: Option<Net>,
    hz8000: Option<Net>,
    source: PathBuf,
}

impl SileroModel {
    /// Load [`MODEL_FILE`] from a model directory (the store's `vad` model).
    pub fn load(dir: impl AsRef<Path>) -> Result<SileroModel> {
        SileroModel::from_file(dir.as_ref().join(MODEL_FILE))
    }

    /// Load the store's ready `vad` model.
    pub fn from_store(store: &ModelStore) -> Result<SileroModel> {
        SileroModel::load(store.ready_path(ROLE)?)
    }

    /// Load weights from any of the package's files: an `.onnx` graph (both
    /// rates when it has them) or the tinygrad `.safetensors` (16 kHz only).
    pub fn from_file(path: impl AsRef<Path>) -> Result<SileroModel> {
        let path = path.as_ref();
        let tensors = if path.extension().is_some_and(|e| e == "safetensors") {
            weights::safetensors_tensors(path)?
        } else {
            let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
            weights::onnx_tensors(&bytes).map_err(|reason| Error::ModelFormat {
                path: path.to_path_buf(),
                reason,
            })?
        };
        SileroModel::from_tensors(tensors, path)
    }

    /// Load the weights of an ONNX model held in memory; `name` is used in
    /// error messages.
    pub fn from_onnx_bytes(bytes: &[u8], name: impl AsRef<Path>) -> Result<SileroModel> {
        let name = name.as_ref();
        let tensors = weights::onnx_tensors(bytes).map_err(|reason| Error::ModelFormat {
            path: name.to_path_buf(),
            reason,
        })?;
        SileroModel::from_tensors(tensors, name)
    }

    fn from_tensors(tensors: Vec<(String, weights::Array)>, path: &Path) -> Result<SileroModel> {
        let fail = |reason: String| Error::ModelFormat {
            path: path.to_path_buf(),
            reason,
        };
        let mut model = SileroModel {
            hz16000: None,
            hz8000: None,
            source: path.to_path_buf(),
        };
        for branch in weights::branches(tensors).map_err(fail)? {
            let net = Net::new(&branch).map_err(|e| fail(e.to_string()))?;
            match SampleRate::ALL
                .into_iter()
                .find(|r| r.n_fft() == net.n_fft())
            {
                Some(SampleRate::Hz16000) => model.hz16000 = Some(net),
                Some(SampleRate::Hz8000) => model.hz8000 = Some(net),
                None => {
                    return Err(fail(format!(
                        "weights with a {}-point STFT fit neither 16 kHz (256) nor 8 kHz (128)",
                        net.n_fft()
                    )));
                }
            }
        }
        Ok(model)
    }

    /// The rates this model has weights for.
    pub fn rates(&self) -> Vec<SampleRate> {
        SampleRate::ALL
            .into_iter()
            .filter(|r| self.net(*r).is_some())
            .collect()
    }

    /// The file the weights came from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// A detector at `rate`, in its initial state.
    pub fn vad(&self, rate: SampleRate) -> Result<SileroVad> {
        let net = self.net(rate).cloned().ok_or_else(|| Error::ModelFormat {
            path: self.source.clone(),
            reason: format!("it has no weights for {} Hz audio", rate.hz()),
        })?;
        SileroVad::with_net(net, rate)
    }

    /// A streaming detector at `rate`, in its initial state.
    pub fn stream(&self, rate: SampleRate) -> Result<VadStream> {
        Ok(VadStream::new(self.vad(rate)?))
    }

    fn net(&self, rate: SampleRate) -> Option<&Net> {
        match rate {
            SampleRate::Hz16000 => self.hz16000.as_ref(),
            SampleRate::Hz8000 => self.hz8000.as_ref(),
        }
    }
}

/// One Silero VAD detector: weights for one rate and the state carried from
/// frame to frame (LSTM state and context samples).
#[derive(Debug, Clone)]
pub struct SileroVad {
    net: Net,
    rate: SampleRate,
    /// Context samples followed by room for one frame.
    window: Vec<f32>,
    h: Tensor,
    c: Tensor,
}

impl SileroVad {
    /// Load [`MODEL_FILE`] from `dir` and make a detector at `rate`. To run
    /// many detectors, load a [`SileroModel`] once and call
    /// [`SileroModel::vad`].
    pub fn load(dir: impl AsRef<Path>, rate: SampleRate) -> Result<SileroVad> {
        SileroModel::load(dir)?.vad(rate)
    }

    fn with_net(net: Net, rate: SampleRate) -> Result<SileroVad> {
        let (h, c) = Net::zero_state().map_err(|e| inference(e.to_string()))?;
        Ok(SileroVad {
            net,
            rate,
            window: vec![0.0; rate.context_len() + rate.frame_len()],
            h,
            c,
        })
    }

    /// The rate of the frames this detector takes.
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// Samples per frame: 512 at 16 kHz, 256 at 8 kHz.
    pub fn frame_len(&self) -> usize {
        self.rate.frame_len()
    }

    /// Back to the initial state (zero LSTM state, zero context), as at the
    /// start of a new recording.
    pub fn reset(&mut self) {
        self.window.fill(0.0);
        // The zero state is built from a shape alone; it cannot fail.
        if let Ok((h, c)) = Net::zero_state() {
            self.h = h;
            self.c = c;
        }
    }

    /// The probability that `frame` (exactly [`SileroVad::frame_len`]
    /// samples in [-1, 1], following the previous call's frame) holds speech.
    ///
    /// A frame of the wrong length or with a non-finite sample is an
    /// [`Error::InvalidAudio`] and leaves the state as it was.
    pub fn prob(&mut self, frame: &[f32]) -> Result<f32> {
        let (ctx, n) = (self.rate.context_len(), self.rate.frame_len());
        if frame.len() != n {
            return Err(Error::InvalidAudio(format!(
                "a VAD frame at {} Hz has {n} samples, not {}",
                self.rate.hz(),
                frame.len()
            )));
        }
        if let Some(i) = frame.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidAudio(format!(
                "sample {i} of the VAD frame is {}",
                frame[i]
            )));
        }
        self.window[ctx..].copy_from_slice(frame);
        let (p, h, c) = self
            .net
            .forward(&self.window, &self.h, &self.c)
            .map_err(|e| inference(e.to_string()))?;
        // The last `ctx` samples of this window are the next one's context.
        self.window.copy_within(n.., 0);
        self.h = h;
        self.c = c;
        Ok(p)
    }
}

fn inference(reason: String) -> Error {
    Error::Inference {
        model: "silero-vad".into(),
        reason,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::weights::tests::{if_model, named};
    use super::*;

    /// A model with random weights for both rates, as the opset-16 file lays
    /// them out.
    pub(crate) fn random_model() -> SileroModel {
        let bytes = if_model(
            &named("If_0_then_branch__Inline_0__", 256, 21),
            &named("If_0_else_branch__Inline_0__", 128, 22),
        );
        SileroModel::from_onnx_bytes(&bytes, "random.onnx").unwrap()
    }

    #[test]
    fn rates_have_the_reference_frame_and_context_sizes() {
        assert_eq!(SampleRate::Hz16000.frame_len(), 512);
        assert_eq!(SampleRate::Hz16000.context_len(), 64);
        assert_eq!(SampleRate::Hz8000.frame_len(), 256);
        assert_eq!(SampleRate::Hz8000.context_len(), 32);
        assert_eq!(SampleRate::Hz16000.frame_ms(), 32);
        assert_eq!(SampleRate::Hz8000.frame_ms(), 32);
        assert_eq!(SampleRate::from_hz(8000), Some(SampleRate::Hz8000));
        assert_eq!(SampleRate::from_hz(44_100), None);
    }

    #[test]
    fn context_is_carried_and_reset_restores_the_start() {
        let model = random_model();
        assert_eq!(model.rates(), SampleRate::ALL);
        for rate in SampleRate::ALL {
            let n = rate.frame_len();
            let mut vad = model.vad(rate).unwrap();
            let frames: Vec<Vec<f32>> = (0..3)
                .map(|i| super::weights::tests::values(500 + i, n, 0.5))
                .collect();
            let first: Vec<f32> = frames.iter().map(|f| vad.prob(f).unwrap()).collect();
            // The context is the previous frame's tail: the window of the
            // second call is frame0[n-ctx..] ++ frame1.
            let ctx = rate.context_len();
            assert_eq!(vad.window[..ctx], frames[2][n - ctx..]);
            vad.reset();
            let again: Vec<f32> = frames.iter().map(|f| vad.prob(f).unwrap()).collect();
            assert_eq!(first, again);
            // State matters: the same frame gives another answer later on.
            let mut fresh = model.vad(rate).unwrap();
            assert_ne!(fresh.prob(&frames[1]).unwrap(), first[1]);
        }
    }

    #[test]
    fn bad_frames_are_refused_without_touching_the_state() {
        let model = random_model();
        let mut vad = model.vad(SampleRate::Hz8000).unwrap();
        let frame = super::weights::tests::values(9, 256, 0.5);
        let err = vad.prob(&frame[..255]).unwrap_err().to_string();
        assert!(err.contains("256 samples, not 255"), "{err}");
        let mut nan = frame.clone();
        nan[7] = f32::NAN;
        let err = vad.prob(&nan).unwrap_err().to_string();
        assert!(err.contains("sample 7"), "{err}");
        let mut clean = model.vad(SampleRate::Hz8000).unwrap();
        assert_eq!(vad.prob(&frame).unwrap(), clean.prob(&frame).unwrap());
    }

    #[test]
    fn a_16k_only_model_refuses_8k() {
        let bytes = super::weights::tests::initializer_model(&named("model.", 256, 3));
        let model = SileroModel::from_onnx_bytes(&bytes, "x.onnx").unwrap();
        assert_eq!(model.rates(), [SampleRate::Hz16000]);
        let err = model.vad(SampleRate::Hz8000).unwrap_err().to_string();
        assert!(err.contains("no weights for 8000 Hz"), "{err}");
    }
}
