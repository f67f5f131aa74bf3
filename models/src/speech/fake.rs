//! A deterministic stand-in for [`super::Transcriber`] (feature `testing`).

use super::{Segment, Transcribe, TranscribeOptions, Transcript};
use crate::Result;

/// Returns a transcript built only from the audio: one segment per
/// `segment_s` seconds of non-silent audio, with the text
/// `"<prefix> <n>"`. Silent audio (RMS below 1e-4) gives no segments, like
/// the real model's no-speech gate. No weights, no threads, instant.
#[derive(Debug, Clone)]
pub struct FakeTranscriber {
    pub prefix: String,
    pub segment_s: f64,
}

impl Default for FakeTranscriber {
    fn default() -> Self {
        FakeTranscriber {
            prefix: "fake speech".to_string(),
            segment_s: 5.0,
        }
    }
}

impl FakeTranscriber {
    fn build(&self, samples: &[f32], opts: &TranscribeOptions) -> Transcript {
        let duration_s = samples.len() as f64 / 16_000.0;
        let rms = if samples.is_empty() {
            0.0
        } else {
            (samples
                .iter()
                .map(|&x| (x as f64) * (x as f64))
                .sum::<f64>()
                / samples.len() as f64)
                .sqrt()
        };
        let mut segments = Vec::new();
        if rms >= 1e-4 {
            let mut start = 0.0;
            let mut n = 1;
            while start < duration_s {
                let end = (start + self.segment_s).min(duration_s);
                segments.push(Segment {
                    start_s: start,
                    end_s: end,
                    text: format!("{} {n}", self.prefix),
                    avg_logprob: -0.1,
                    no_speech_prob: 0.01,
                    temperature: 0.0,
                    channel: None,
                });
                start = end;
                n += 1;
            }
        }
        Transcript {
            language: opts.language.clone().unwrap_or_else(|| "en".to_string()),
            duration_s,
            segments,
        }
    }
}

impl Transcribe for FakeTranscriber {
    fn transcribe(&mut self, samples: &[f32], opts: &TranscribeOptions) -> Result<Transcript> {
        Ok(self.build(samples, opts))
    }

    fn transcribe_window(
        &mut self,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript> {
        let n = samples.len().min(30 * 16_000);
        Ok(self.build(&samples[..n], opts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_is_deterministic_and_silent_on_silence() {
        let mut fake = FakeTranscriber::default();
        let opts = TranscribeOptions::default();
        let tone: Vec<f32> = (0..16_000 * 12)
            .map(|i| (i as f32 * 0.1).sin() * 0.3)
            .collect();
        let a = fake.transcribe(&tone, &opts).unwrap();
        assert_eq!(a, fake.transcribe(&tone, &opts).unwrap());
        assert_eq!(a.segments.len(), 3);
        assert_eq!(a.segments[2].text, "fake speech 3");
        assert_eq!(a.segments[2].end_s, 12.0);
        assert!(
            fake.transcribe(&vec![0.0; 16_000], &opts)
                .unwrap()
                .segments
                .is_empty()
        );
        let both = fake
            .transcribe_channels(&[tone.clone(), tone[..16_000 * 6].to_vec()], &opts)
            .unwrap();
        assert_eq!(both.segments.len(), 5);
        assert_eq!(both.segments[0].channel, Some(0));
        assert_eq!(both.segments[1].channel, Some(1));
    }
}
