//! Frames from a stream of PCM chunks of any length.

use super::{SampleRate, SileroVad};
use crate::{Error, Result};

/// The speech probability of one frame of a stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameProb {
    /// Frames since the start (or the last reset) of the stream.
    pub index: u64,
    /// The frame's first sample, counted from the start of the stream.
    pub start_sample: u64,
    /// Samples in the frame.
    pub len: u32,
    /// The stream's sample rate, Hz.
    pub rate_hz: u32,
    /// Probability that the frame holds speech.
    pub prob: f32,
}

impl FrameProb {
    /// Where the frame starts, milliseconds from the start of the stream.
    pub fn start_ms(&self) -> u64 {
        self.start_sample * 1000 / u64::from(self.rate_hz)
    }

    /// Where the frame ends, milliseconds from the start of the stream.
    pub fn end_ms(&self) -> u64 {
        (self.start_sample + u64::from(self.len)) * 1000 / u64::from(self.rate_hz)
    }
}

/// A [`SileroVad`] fed with chunks of any length: samples wait until a whole
/// frame is there, and each frame's probability comes out once.
#[derive(Debug, Clone)]
pub struct VadStream {
    vad: SileroVad,
    /// Samples received but not yet a whole frame (less than one frame).
    pending: Vec<f32>,
    frames: u64,
}

impl VadStream {
    /// A stream over `vad` (its state is used as it is).
    pub fn new(vad: SileroVad) -> VadStream {
        let cap = vad.frame_len();
        VadStream {
            vad,
            pending: Vec::with_capacity(cap),
            frames: 0,
        }
    }

    /// The stream's sample rate.
    pub fn rate(&self) -> SampleRate {
        self.vad.rate()
    }

    /// Samples waiting for the rest of their frame.
    pub fn pending_samples(&self) -> usize {
        self.pending.len()
    }

    /// Frames analysed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Add samples in [-1, 1]; returns the probabilities of the frames they
    /// complete, in order. A chunk with a non-finite sample is an
    /// [`Error::InvalidAudio`] and is dropped whole, leaving the stream as it
    /// was.
    pub fn push(&mut self, pcm: &[f32]) -> Result<Vec<FrameProb>> {
        if let Some(i) = pcm.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidAudio(format!(
                "sample {i} of the chunk is {}",
                pcm[i]
            )));
        }
        let n = self.vad.frame_len();
        let mut out = Vec::with_capacity((self.pending.len() + pcm.len()) / n);
        let mut rest = pcm;
        if !self.pending.is_empty() {
            let take = (n - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < n {
                return Ok(out);
            }
            // Borrowing `pending` while `frame` borrows `self` mutably is not
            // allowed; take it and give its buffer back.
            let frame = std::mem::take(&mut self.pending);
            let p = self.frame(&frame);
            self.pending = frame;
            self.pending.clear();
            out.push(p?);
        }
        let mut frames = rest.chunks_exact(n);
        for frame in frames.by_ref() {
            out.push(self.frame(frame)?);
        }
        self.pending.extend_from_slice(frames.remainder());
        Ok(out)
    }

    /// [`VadStream::push`] for 16-bit PCM (as phones send it), scaled by
    /// 1/32768 like the reference's audio reader.
    pub fn push_i16(&mut self, pcm: &[i16]) -> Result<Vec<FrameProb>> {
        let samples: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
        self.push(&samples)
    }

    /// The end of the stream: a partial last frame is completed with zeros
    /// (as the reference pads the end of a recording) and analysed. `None`
    /// when no samples were waiting. The stream then goes on as if the
    /// zeros had been sent.
    pub fn finish(&mut self) -> Result<Option<FrameProb>> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let mut frame = std::mem::take(&mut self.pending);
        frame.resize(self.vad.frame_len(), 0.0);
        let p = self.frame(&frame);
        frame.clear();
        self.pending = frame;
        p.map(Some)
    }

    /// Back to the start: detector state, waiting samples and frame count.
    pub fn reset(&mut self) {
        self.vad.reset();
        self.pending.clear();
        self.frames = 0;
    }

    fn frame(&mut self, frame: &[f32]) -> Result<FrameProb> {
        let prob = self.vad.prob(frame)?;
        let len = frame.len() as u64;
        let out = FrameProb {
            index: self.frames,
            start_sample: self.frames * len,
            len: len as u32,
            rate_hz: self.vad.rate().hz(),
            prob,
        };
        self.frames += 1;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::random_model;
    use super::super::weights::tests::values;
    use super::*;

    #[test]
    fn chunks_of_any_length_give_the_frames_of_one_call_each() {
        let model = random_model();
        for rate in SampleRate::ALL {
            let n = rate.frame_len();
            let audio = values(77, n * 5 + n / 3, 0.4);
            // Frame by frame, by hand.
            let mut vad = model.vad(rate).unwrap();
            let mut want: Vec<f32> = audio
                .chunks_exact(n)
                .map(|f| vad.prob(f).unwrap())
                .collect();
            let mut last = audio.chunks_exact(n).remainder().to_vec();
            last.resize(n, 0.0);
            want.push(vad.prob(&last).unwrap());
            // Awkward chunk sizes: 1, 7, 160 (10 ms at 16 kHz), 1000, …
            for sizes in [
                vec![1usize],
                vec![7, 160],
                vec![1000, 3, n],
                vec![audio.len()],
            ] {
                let mut stream = model.stream(rate).unwrap();
                let mut got = Vec::new();
                let mut at = 0;
                for size in sizes.iter().cycle() {
                    if at >= audio.len() {
                        break;
                    }
                    let end = (at + size).min(audio.len());
                    got.extend(stream.push(&audio[at..end]).unwrap());
                    at = end;
                }
                assert_eq!(stream.pending_samples(), n / 3);
                got.extend(stream.finish().unwrap());
                assert_eq!(stream.finish().unwrap(), None);
                let probs: Vec<f32> = got.iter().map(|f| f.prob).collect();
                assert_eq!(probs, want, "{rate:?} in chunks of {sizes:?}");
                for (i, f) in got.iter().enumerate() {
                    assert_eq!(f.index, i as u64);
                    assert_eq!(f.start_sample, (i * n) as u64);
                    assert_eq!(f.start_ms(), 32 * i as u64);
                    assert_eq!(f.end_ms(), 32 * (i as u64 + 1));
                }
            }
        }
    }

    #[test]
    fn pcm16_is_scaled_like_the_reference_and_bad_chunks_change_nothing() {
        let model = random_model();
        let pcm: Vec<i16> = (0..600).map(|i| ((i * 37) % 2000) as i16 - 1000).collect();
        let floats: Vec<f32> = pcm.iter().map(|&s| s as f32 / 32768.0).collect();
        let mut a = model.stream(SampleRate::Hz8000).unwrap();
        let mut b = model.stream(SampleRate::Hz8000).unwrap();
        let err = a.push(&[0.0, f32::INFINITY]).unwrap_err().to_string();
        assert!(err.contains("sample 1"), "{err}");
        assert_eq!(a.pending_samples(), 0);
        assert_eq!(a.push_i16(&pcm).unwrap(), b.push(&floats).unwrap());
        assert_eq!(a.frames(), 2);
        a.reset();
        assert_eq!((a.frames(), a.pending_samples()), (0, 0));
    }
}
