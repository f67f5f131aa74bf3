//! [`Segmenter`]: one audio channel in, utterances out.
//!
//! It runs a detector on every 32 ms frame (Silero VAD, or an energy gate
//! where its weights are absent), gives the probabilities to an
//! [`Endpointer`] and keeps just the audio an utterance may still need: from
//! the start of the open utterance, or the pre-roll while nobody speaks. So
//! minutes of silence cost a few kilobytes, and an utterance leaves as one
//! slice of audio, resampled to 16 kHz for Whisper when the channel is 8 kHz.

use super::endpoint::{EndReason, EndpointEvent, EndpointOptions, Endpointer};
use super::{FrameProb, SampleRate, SileroModel, VadStream};
use crate::{Error, Result};

/// Samples per second of the audio an [`Utterance`] carries.
pub const OUTPUT_RATE: u32 = 16_000;

/// A stretch of speech ready for the recogniser.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    /// Counts the channel's utterances from 1; a partial has its final's index.
    pub index: u64,
    pub start_ms: u64,
    pub end_ms: u64,
    /// `None` for a partial or a tentative end, else why it ended.
    pub end: Option<EndReason>,
    /// The speaker paused: this is the final's audio unless speech resumes
    /// (see [`EndpointEvent::Tentative`]).
    pub tentative: bool,
    /// 16 kHz mono samples from `start_ms` to `end_ms`.
    pub samples: Vec<f32>,
}

impl Utterance {
    pub fn is_final(&self) -> bool {
        self.end.is_some()
    }

    pub fn duration_ms(&self) -> u64 {
        self.end_ms.saturating_sub(self.start_ms)
    }
}

/// Where the speech probabilities come from.
#[derive(Debug, Clone)]
enum Detector {
    Silero(Box<VadStream>),
    Energy(EnergyGate),
}

/// The fallback detector: a 32 ms frame is speech (probability 1) when its
/// RMS is above −40 dBFS and three times a tracked noise floor. Crude next
/// to Silero (it takes loud noise for speech), but needs no weights.
#[derive(Debug, Clone)]
pub struct EnergyGate {
    frame_len: usize,
    rate_hz: u32,
    pending: Vec<f32>,
    floor: f32,
    next_sample: u64,
    index: u64,
}

impl EnergyGate {
    pub fn new(rate: SampleRate) -> EnergyGate {
        EnergyGate {
            frame_len: rate.frame_len(),
            rate_hz: rate.hz(),
            pending: Vec::new(),
            floor: 0.0025,
            next_sample: 0,
            index: 0,
        }
    }

    fn push(&mut self, pcm: &[f32]) -> Vec<FrameProb> {
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(pcm);
        let mut out = Vec::new();
        let mut at = 0;
        while at + self.frame_len <= pending.len() {
            out.push(self.frame(&pending[at..at + self.frame_len]));
            at += self.frame_len;
        }
        pending.drain(..at);
        self.pending = pending;
        out
    }

    fn finish(&mut self) -> Option<FrameProb> {
        if self.pending.is_empty() {
            return None;
        }
        let mut frame = std::mem::take(&mut self.pending);
        frame.resize(self.frame_len, 0.0);
        Some(self.frame(&frame))
    }

    fn frame(&mut self, frame: &[f32]) -> FrameProb {
        let rms = (frame.iter().map(|x| x * x).sum::<f32>() / frame.len() as f32).sqrt();
        // The floor follows quiet frames at once and loud ones very slowly.
        self.floor = if rms < self.floor {
            rms.max(1e-5)
        } else {
            self.floor * 0.9995 + rms * 0.0005
        };
        let speech = rms >= 0.01f32.max(self.floor * 3.0);
        let p = FrameProb {
            index: self.index,
            start_sample: self.next_sample,
            len: frame.len() as u32,
            rate_hz: self.rate_hz,
            prob: if speech { 1.0 } else { 0.0 },
        };
        self.index += 1;
        self.next_sample += frame.len() as u64;
        p
    }
}

/// The utterance state of one audio channel. See the module docs.
#[derive(Debug, Clone)]
pub struct Segmenter {
    detector: Detector,
    endpointer: Endpointer,
    rate: SampleRate,
    /// Audio at the channel's rate, from sample `buf_start`.
    buf: Vec<f32>,
    buf_start: u64,
    received: u64,
    index: u64,
    events: Vec<EndpointEvent>,
}

impl Segmenter {
    /// A channel at `rate` with Silero VAD from `model`, or the energy gate
    /// when `model` is `None`.
    pub fn new(
        model: Option<&SileroModel>,
        rate: SampleRate,
        opts: EndpointOptions,
    ) -> Result<Segmenter> {
        let detector = match model {
            Some(m) => Detector::Silero(Box::new(m.stream(rate)?)),
            None => Detector::Energy(EnergyGate::new(rate)),
        };
        Ok(Segmenter {
            detector,
            endpointer: Endpointer::new(opts),
            rate,
            buf: Vec::new(),
            buf_start: 0,
            received: 0,
            index: 0,
            events: Vec::new(),
        })
    }

    /// How utterances are cut.
    pub fn options(&self) -> &EndpointOptions {
        self.endpointer.options()
    }

    /// Whether Silero (not the energy gate) decides.
    pub fn uses_silero(&self) -> bool {
        matches!(self.detector, Detector::Silero(_))
    }

    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// Stream time of everything received, milliseconds.
    pub fn received_ms(&self) -> u64 {
        self.received * 1000 / u64::from(self.rate.hz())
    }

    /// Whether a confirmed utterance is going on.
    pub fn in_speech(&self) -> bool {
        self.endpointer.in_speech()
    }

    /// The end of the open utterance's last speech frame, ms (speech that
    /// resumed after a tentative end moves it past that end).
    pub fn last_voice_end_ms(&self) -> Option<u64> {
        self.endpointer.last_voice_end_ms()
    }

    /// Samples held (the open utterance, or the pre-roll).
    pub fn buffered_samples(&self) -> usize {
        self.buf.len()
    }

    /// Add samples in [-1, 1] at the channel's rate; returns the utterances
    /// (finals and partials) they complete, in order. A chunk with a
    /// non-finite sample is refused whole.
    pub fn push(&mut self, pcm: &[f32]) -> Result<Vec<Utterance>> {
        if let Some(i) = pcm.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidAudio(format!(
                "sample {i} of the chunk is {}",
                pcm[i]
            )));
        }
        let frames = match &mut self.detector {
            Detector::Silero(s) => s.push(pcm)?,
            Detector::Energy(g) => g.push(pcm),
        };
        self.buf.extend_from_slice(pcm);
        self.received += pcm.len() as u64;
        for f in &frames {
            self.endpointer.push(f, &mut self.events);
        }
        let out = self.take_events()?;
        self.trim();
        Ok(out)
    }

    /// The end of the stream: the last frame is analysed and an utterance
    /// still going on ends here.
    pub fn finish(&mut self) -> Result<Vec<Utterance>> {
        let last = match &mut self.detector {
            Detector::Silero(s) => s.finish()?,
            Detector::Energy(g) => g.finish(),
        };
        if let Some(f) = last {
            self.endpointer.push(&f, &mut self.events);
        }
        self.endpointer.flush(&mut self.events);
        let out = self.take_events()?;
        self.trim();
        Ok(out)
    }

    fn take_events(&mut self) -> Result<Vec<Utterance>> {
        let mut out = Vec::new();
        for e in std::mem::take(&mut self.events) {
            let tentative = matches!(e, EndpointEvent::Tentative { .. });
            let (start_ms, end_ms, end) = match e {
                EndpointEvent::Start { .. } => {
                    self.index += 1;
                    continue;
                }
                EndpointEvent::Partial { start_ms, end_ms }
                | EndpointEvent::Tentative { start_ms, end_ms } => (start_ms, end_ms, None),
                EndpointEvent::End {
                    start_ms,
                    end_ms,
                    reason,
                } => (start_ms, end_ms, Some(reason)),
            };
            let samples = self.slice(start_ms, end_ms)?;
            out.push(Utterance {
                index: self.index,
                start_ms,
                end_ms,
                end,
                tentative,
                samples,
            });
        }
        Ok(out)
    }

    /// The held audio between two stream times, at 16 kHz.
    fn slice(&self, start_ms: u64, end_ms: u64) -> Result<Vec<f32>> {
        let hz = u64::from(self.rate.hz());
        let at = |ms: u64| {
            ((ms * hz / 1000).saturating_sub(self.buf_start) as usize).min(self.buf.len())
        };
        let piece = &self.buf[at(start_ms)..at(end_ms).max(at(start_ms))];
        if self.rate.hz() == OUTPUT_RATE || piece.is_empty() {
            return Ok(piece.to_vec());
        }
        let mut up = super::super::audio::resample(&[piece.to_vec()], self.rate.hz(), OUTPUT_RATE)?;
        Ok(up.pop().unwrap_or_default())
    }

    /// Drop audio no utterance can still need.
    fn trim(&mut self) {
        let hz = u64::from(self.rate.hz());
        let keep_from_ms = match self.endpointer.open_start_ms() {
            Some(start) => start,
            None => {
                // The pre-roll of an utterance that starts with the next frame.
                let pre = u64::from(self.endpointer.options().pre_roll_ms) + 64;
                self.received_ms().saturating_sub(pre)
            }
        };
        let keep_from = (keep_from_ms * hz / 1000).max(self.buf_start);
        let drop = ((keep_from - self.buf_start) as usize).min(self.buf.len());
        if drop > 0 {
            self.buf.drain(..drop);
            self.buf_start += drop as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(seconds: f64, rate: u32, amp: f32) -> Vec<f32> {
        (0..(seconds * f64::from(rate)) as usize)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * amp)
            .collect()
    }

    #[test]
    fn the_energy_gate_cuts_tone_bursts_into_utterances() {
        for rate in [SampleRate::Hz16000, SampleRate::Hz8000] {
            let hz = rate.hz();
            let mut seg = Segmenter::new(None, rate, EndpointOptions::default()).unwrap();
            assert!(!seg.uses_silero());
            let mut audio = vec![0.0; hz as usize];
            audio.extend(tone(1.5, hz, 0.3));
            audio.extend(vec![0.0; hz as usize]);
            audio.extend(tone(1.0, hz, 0.3));
            let mut got = Vec::new();
            let mut tentative = 0;
            // Phone-sized chunks of 200 ms.
            for chunk in audio.chunks(hz as usize / 5) {
                for u in seg.push(chunk).unwrap() {
                    if u.tentative {
                        tentative += 1;
                    } else {
                        got.push(u);
                    }
                }
            }
            // The first burst's end was offered early, with the same audio.
            assert_eq!(tentative, 1);
            // The second burst is still open until the stream ends.
            assert_eq!(got.len(), 1, "{rate:?}");
            got.extend(seg.finish().unwrap());
            assert_eq!(got.len(), 2);
            let first = &got[0];
            assert_eq!(first.index, 1);
            assert_eq!(first.end, Some(EndReason::Silence));
            // 1.0 s − 200 ms pre-roll to 2.5 s + 150 ms post-roll, frame-rounded.
            assert!((790..=810).contains(&first.start_ms), "{}", first.start_ms);
            assert!((2_640..=2_690).contains(&first.end_ms), "{}", first.end_ms);
            // Always 16 kHz out.
            let want = first.duration_ms() as usize * 16;
            assert!(first.samples.len().abs_diff(want) <= 32, "{rate:?}");
            assert_eq!(got[1].index, 2);
            assert_eq!(got[1].end, Some(EndReason::Flush));
            // Only the pre-roll is held after the stream.
            assert!(seg.buffered_samples() <= hz as usize / 2);
        }
    }

    #[test]
    fn minutes_of_silence_hold_almost_nothing() {
        let mut seg =
            Segmenter::new(None, SampleRate::Hz16000, EndpointOptions::default()).unwrap();
        let quiet = vec![0.001f32; 3_200];
        for _ in 0..(5 * 60 * 5) {
            assert!(seg.push(&quiet).unwrap().is_empty());
        }
        assert!(seg.buffered_samples() < 16_000);
        assert_eq!(seg.received_ms(), 300_000);
        assert!(seg.finish().unwrap().is_empty());
        assert!(seg.push(&[f32::NAN]).is_err());
    }
}
