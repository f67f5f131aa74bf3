//! The simulated calls: who says what, when, and the audio of both legs.
//!
//! A call alternates a rep line (`eval/data/asr/<lang>.txt`, sales-call
//! sentences) and a customer line (the customer utterances of
//! `eval/data/retrieval/queries.jsonl`, which the sample script library
//! answers) with short pauses. For audio, each line is spoken by espeak-ng
//! (a male voice for the rep, a female one for the customer), put through
//! the telephone band, trimmed to its speech by energy and placed on its
//! speaker's leg with digital silence on the other leg: the end of every
//! customer utterance in the audio is known to the sample.

use std::path::Path;

use anyhow::Context;
use assist_models::audio::{DecodeOptions, decode_file};
use assist_protocol::live::Speaker;

use crate::audio::{espeak, telephone};
use crate::setup::{audio_cache, cache_key, read_lines};

/// 16 kHz mono, as the live protocol carries it.
pub const RATE: f64 = 16_000.0;
/// Silence before the first line.
const LEAD_S: f64 = 1.0;
/// Pause after each line (longer than the streamer's 0.6 s endpoint).
const GAP_S: f64 = 0.8;
/// Silence after the last line, so its final can come before `end`.
const TAIL_S: f64 = 2.0;

/// One line of the call.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub speaker: Speaker,
    pub text: String,
    pub start_s: f64,
    pub end_s: f64,
    /// A rep line the sample lexicon flags (its alert is timed).
    pub risky: bool,
}

/// Rep lines that offer a side deal in the sample lexicon's words: the
/// second rep line of every call is one of these (one per call, so the
/// per-conversation alert dedup never hides one).
const RISKY: [(&str, &str); 2] = [
    (
        "en",
        "We can sign it off the books and skip the company contract.",
    ),
    (
        "en",
        "Don't tell the company, I can give you a private discount.",
    ),
];

/// A whole simulated call.
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// `en` or `zh`, declared in `start`.
    pub language: String,
    pub turns: Vec<Turn>,
    pub duration_s: f64,
    /// Each leg's samples (empty for text calls).
    pub rep: Vec<f32>,
    pub customer: Vec<f32>,
}

impl CallPlan {
    pub fn customer_turns(&self) -> impl Iterator<Item = &Turn> {
        self.turns.iter().filter(|t| t.speaker == Speaker::Customer)
    }

    /// The rep's risky lines.
    pub fn risky_turns(&self) -> impl Iterator<Item = &Turn> {
        self.turns.iter().filter(|t| t.risky)
    }

    /// The first `seconds` of the call (whole lines only), for a warm-up.
    pub fn truncated(&self, seconds: f64) -> CallPlan {
        let turns: Vec<Turn> = self
            .turns
            .iter()
            .filter(|t| t.end_s <= seconds)
            .cloned()
            .collect();
        let duration_s = turns.last().map_or(LEAD_S, |t| t.end_s) + TAIL_S;
        let n = ((duration_s * RATE) as usize).min(self.rep.len());
        CallPlan {
            language: self.language.clone(),
            turns,
            duration_s,
            rep: self.rep[..n].to_vec(),
            customer: self.customer[..n.min(self.customer.len())].to_vec(),
        }
    }
}

/// What the two sides say in one language.
#[derive(Debug, Clone)]
pub struct Lines {
    pub language: String,
    pub rep: Vec<String>,
    pub customer: Vec<String>,
}

impl Lines {
    /// Rep lines from `asr_data/<language>.txt`, customer lines from the
    /// queries of `retrieval_data` in that language.
    pub fn load(retrieval_data: &Path, asr_data: &Path, language: &str) -> anyhow::Result<Lines> {
        let rep = read_lines(&asr_data.join(format!("{language}.txt")))?;
        let path = retrieval_data.join("queries.jsonl");
        let mut customer = Vec::new();
        for line in std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let v: serde_json::Value = serde_json::from_str(line).context("queries.jsonl")?;
            if v["language"] == language
                && let Some(t) = v["text"].as_str()
            {
                customer.push(t.to_string());
            }
        }
        anyhow::ensure!(
            !rep.is_empty() && !customer.is_empty(),
            "no {language} lines in {} / {}",
            asr_data.display(),
            path.display()
        );
        Ok(Lines {
            language: language.to_string(),
            rep,
            customer,
        })
    }

    /// The `j`-th line of each side for call `call`: calls start at
    /// different places so concurrent calls say different things.
    fn pick(&self, call: usize, j: usize) -> (&str, &str) {
        let r = &self.rep[(call * 5 + j) % self.rep.len()];
        let c = &self.customer[(call * 13 + j) % self.customer.len()];
        (r.as_str(), c.as_str())
    }
}

/// Lay the lines of call `call` out on a timeline of about `seconds`,
/// each line lasting what `length` says.
fn lay_out(
    lines: &Lines,
    call: usize,
    seconds: f64,
    mut length: impl FnMut(Speaker, &str) -> anyhow::Result<f64>,
) -> anyhow::Result<(Vec<Turn>, f64)> {
    let mut turns = Vec::new();
    let mut t = LEAD_S;
    let mut j = 0;
    while t < seconds || turns.is_empty() {
        let (mut rep, customer) = lines.pick(call, j);
        let risky = j == 1 && RISKY.iter().any(|(l, _)| *l == lines.language);
        if risky {
            let pool: Vec<&str> = RISKY
                .iter()
                .filter(|(l, _)| *l == lines.language)
                .map(|(_, t)| *t)
                .collect();
            rep = pool[call % pool.len()];
        }
        for (speaker, text) in [(Speaker::Rep, rep), (Speaker::Customer, customer)] {
            let d = length(speaker, text)?;
            turns.push(Turn {
                speaker,
                text: text.to_string(),
                start_s: t,
                end_s: t + d,
                risky: risky && speaker == Speaker::Rep,
            });
            t += d + GAP_S;
        }
        j += 1;
    }
    Ok((turns, t - GAP_S + TAIL_S))
}

/// A call of text turns (the phone recognises speech itself): line lengths
/// are estimated from the text at a conversational pace.
pub fn text_call(lines: &Lines, call: usize, seconds: f64) -> anyhow::Result<CallPlan> {
    let zh = lines.language == "zh";
    let (turns, duration_s) = lay_out(lines, call, seconds, |_, text| {
        Ok(if zh {
            0.25 * text.chars().filter(|c| c.is_alphanumeric()).count() as f64
        } else {
            0.4 * text.split_whitespace().count() as f64
        }
        .max(0.8))
    })?;
    Ok(CallPlan {
        language: lines.language.clone(),
        turns,
        duration_s,
        rep: Vec::new(),
        customer: Vec::new(),
    })
}

/// A spoken call (English: espeak-ng speaks it well enough for Whisper).
pub fn audio_call(lines: &Lines, call: usize, seconds: f64) -> anyhow::Result<CallPlan> {
    anyhow::ensure!(
        lines.language == "en",
        "audio calls are spoken by espeak-ng, which speaks English only"
    );
    let mut clips: Vec<Vec<f32>> = Vec::new();
    let (turns, duration_s) = lay_out(lines, call, seconds, |speaker, text| {
        let clip = spoken(speaker, text)?;
        let d = clip.len() as f64 / RATE;
        clips.push(clip);
        Ok(d)
    })?;
    let n = (duration_s * RATE).ceil() as usize;
    let (mut rep, mut customer) = (vec![0.0f32; n], vec![0.0f32; n]);
    for (turn, clip) in turns.iter().zip(&clips) {
        let leg = if turn.speaker == Speaker::Rep {
            &mut rep
        } else {
            &mut customer
        };
        let at = (turn.start_s * RATE).round() as usize;
        let end = (at + clip.len()).min(n);
        leg[at..end].copy_from_slice(&clip[..end - at]);
    }
    Ok(CallPlan {
        language: lines.language.clone(),
        turns,
        duration_s,
        rep,
        customer,
    })
}

/// One line spoken by the speaker's voice through the telephone band,
/// trimmed to its speech (cached under the eval audio cache).
fn spoken(speaker: Speaker, text: &str) -> anyhow::Result<Vec<f32>> {
    let (voice, wpm) = match speaker {
        Speaker::Rep => ("en-us+m3", 165),
        _ => ("en+f3", 155),
    };
    let key = cache_key(&[text, voice, &wpm.to_string(), "live-v1"]);
    let path = audio_cache().join(format!("live-{key}.wav"));
    if !path.is_file() {
        std::fs::create_dir_all(audio_cache())?;
        let raw = path.with_extension("raw.wav");
        espeak(text, voice, wpm, &raw)?;
        // Noise far below the streamer's speech gate: the pauses stay silent.
        telephone(&raw, &path, -70.0)?;
        let _ = std::fs::remove_file(raw);
    }
    let samples = decode_file(&path, &DecodeOptions::default())
        .with_context(|| format!("decoding {}", path.display()))?
        .mono();
    let (a, b) = speech_bounds(&samples);
    Ok(samples[a..b].to_vec())
}

/// First and last sample of speech: 20 ms frames louder than 0.02 RMS.
pub fn speech_bounds(samples: &[f32]) -> (usize, usize) {
    const FRAME: usize = 320;
    let loud = |i: usize| {
        let f = &samples[i..(i + FRAME).min(samples.len())];
        (f.iter().map(|x| x * x).sum::<f32>() / f.len().max(1) as f32).sqrt() > 0.02
    };
    let frames: Vec<usize> = (0..samples.len()).step_by(FRAME).collect();
    let first = frames.iter().copied().find(|&i| loud(i));
    let last = frames.iter().copied().rev().find(|&i| loud(i));
    match (first, last) {
        (Some(a), Some(b)) => (a, (b + FRAME).min(samples.len())),
        _ => (0, samples.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_is_found_between_silences() {
        let mut s = vec![0.0f32; 16_000];
        for (i, x) in s.iter_mut().enumerate().take(12_000).skip(4_000) {
            *x = if i % 2 == 0 { 0.3 } else { -0.3 };
        }
        let (a, b) = speech_bounds(&s);
        assert_eq!((a, b), (3_840, 12_160));
        assert_eq!(speech_bounds(&[0.0; 100]), (0, 100));
    }

    #[test]
    fn lines_alternate_and_calls_differ() {
        let lines = Lines {
            language: "en".into(),
            rep: vec!["hello there".into(), "our price".into()],
            customer: (0..40).map(|i| format!("customer line {i}")).collect(),
        };
        let a = text_call(&lines, 0, 10.0).unwrap();
        let b = text_call(&lines, 1, 10.0).unwrap();
        assert_eq!(a.turns[0].speaker, Speaker::Rep);
        assert_eq!(a.turns[1].speaker, Speaker::Customer);
        assert!(a.turns.windows(2).all(|w| w[1].start_s > w[0].end_s));
        assert!(a.turns.last().unwrap().end_s >= 10.0 - 2.0 * GAP_S - 3.0);
        assert!(a.duration_s > a.turns.last().unwrap().end_s);
        assert_ne!(a.turns[1].text, b.turns[1].text);
        let short = a.truncated(4.0);
        assert!(short.turns.iter().all(|t| t.end_s <= 4.0));
    }
}
