//! Tests of the streaming transcriber on scripted audio.

use super::*;
use crate::speech::FakeTranscriber;

/// A recogniser for synthetic audio in which word `k` is a run of the
/// constant sample value `0.2 + 0.01 k` (0.4 s long) and silence is 0.
/// It names a word `w<k>` once its whole run is in the buffer, and guesses
/// wrongly (`guess<k>x<n>`) while the run is cut off by the buffer's end —
/// Whisper's unstable last word. Slivers under 0.1 s are not heard. Every
/// three words make one segment.
#[derive(Debug, Default)]
struct ScriptedAsr {
    decodes: usize,
    prompts: Vec<String>,
}

const WORD_S: f64 = 0.4;

fn word_audio(k: usize) -> Vec<f32> {
    vec![0.2 + 0.01 * k as f32; (WORD_S * 16_000.0) as usize]
}

impl Transcribe for ScriptedAsr {
    fn transcribe(&mut self, samples: &[f32], opts: &TranscribeOptions) -> Result<Transcript> {
        self.transcribe_window(samples, opts)
    }

    fn transcribe_window(
        &mut self,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript> {
        self.decodes += 1;
        self.prompts
            .push(opts.initial_prompt.clone().unwrap_or_default());
        let mut words = Vec::new();
        let mut i = 0;
        while i < samples.len() {
            if samples[i] == 0.0 {
                i += 1;
                continue;
            }
            let v = samples[i];
            let start = i;
            while i < samples.len() && samples[i] == v {
                i += 1;
            }
            if i - start < 1_600 {
                // A sliver left by a cut: too short to be heard as a word.
                continue;
            }
            let k = ((v - 0.2) / 0.01).round() as usize;
            let complete = i < samples.len() && (i - start) as f64 / 16_000.0 >= WORD_S - 0.01;
            // An incomplete word is guessed differently every 0.1 s.
            let name = if complete {
                format!("w{k}")
            } else {
                format!("guess{k}x{}", (i - start) / 1_600)
            };
            words.push((start as f64 / 16_000.0, i as f64 / 16_000.0, name));
        }
        let segments = words
            .chunks(3)
            .map(|c| Segment {
                start_s: c[0].0,
                end_s: c[c.len() - 1].1,
                text: c.iter().map(|w| w.2.as_str()).collect::<Vec<_>>().join(" "),
                avg_logprob: -0.1,
                no_speech_prob: 0.0,
                temperature: 0.0,
                channel: None,
            })
            .collect();
        Ok(Transcript {
            language: "en".into(),
            duration_s: samples.len() as f64 / 16_000.0,
            segments,
        })
    }
}

fn opts() -> StreamingOptions {
    StreamingOptions {
        transcribe: TranscribeOptions {
            language: Some("en".into()),
            ..Default::default()
        },
        min_step_s: 0.5,
        ..Default::default()
    }
}

/// Words 0..n, each followed by 0.15 s of silence (too short to end a
/// phrase); 0.55 s per word, so 0.5 s chunks often cut a word.
fn phrase(from: usize, n: usize) -> Vec<f32> {
    let mut a = Vec::new();
    for k in from..from + n {
        a.extend(word_audio(k));
        a.extend(vec![0.0; 2_400]);
    }
    a
}

fn run(asr: &mut ScriptedAsr, s: &mut StreamingTranscriber, audio: &[f32]) -> Vec<StreamUpdate> {
    audio
        .chunks(8_000)
        .map(|c| s.feed(asr, c).unwrap())
        .collect()
}

#[test]
fn agreement_commits_stable_prefixes_and_never_revises() {
    let mut asr = ScriptedAsr::default();
    let mut s = StreamingTranscriber::new(opts());
    let mut updates = run(&mut asr, &mut s, &phrase(0, 12));
    updates.push(s.finish(&mut asr).unwrap());
    let finals: Vec<String> = updates
        .iter()
        .flat_map(|u| u.finals.iter().map(|f| f.text.clone()))
        .collect();
    let expected: Vec<String> = (0..12).map(|k| format!("w{k}")).collect();
    assert_eq!(finals.join(" "), expected.join(" "), "{updates:#?}");
    assert_eq!(s.committed_text(), expected.join(" "));
    // Unstable guesses are shown as partials but never committed.
    assert!(
        updates
            .iter()
            .any(|u| u.partial.as_ref().is_some_and(|p| p.text.contains("guess")))
    );
    assert!(!finals.iter().any(|f| f.contains("guess")));
    // Whatever becomes final was a prefix of the partial shown before it
    // (except at finish, which commits the rest).
    let mut last_partial: Option<String> = None;
    for u in &updates[..updates.len() - 1] {
        for f in &u.finals {
            let p = last_partial.clone().unwrap_or_default();
            assert!(
                p.starts_with(&f.text),
                "final `{}` not a prefix of partial `{p}`",
                f.text
            );
        }
        if u.decoded {
            last_partial = u.partial.as_ref().map(|p| p.text.clone());
        }
    }
    // Times are absolute and in order (word times inside a Whisper
    // segment are interpolated, so neighbours may overlap a little).
    let segs = s.transcript().segments;
    assert!(
        segs.windows(2).all(|w| w[0].start_s <= w[1].start_s),
        "{segs:?}"
    );
    assert!(segs.last().unwrap().end_s > 5.0);
}

#[test]
fn buffer_is_cut_at_committed_segments_and_context_becomes_prompt() {
    let mut asr = ScriptedAsr::default();
    let mut s = StreamingTranscriber::new(opts());
    run(&mut asr, &mut s, &phrase(0, 30));
    // 30 words × 0.5 s = 15 s pushed, but the buffer holds only the tail.
    assert!(
        s.buffer.len() < 16_000 * 4,
        "{} samples left",
        s.buffer.len()
    );
    assert!(s.buffer_start_s > 10.0);
    assert!(
        asr.prompts.last().unwrap().contains("w20"),
        "{:?}",
        asr.prompts.last()
    );
    s.finish(&mut asr).unwrap();
    let expected: Vec<String> = (0..30).map(|k| format!("w{k}")).collect();
    assert_eq!(s.committed_text(), expected.join(" "));
}

#[test]
fn silence_is_never_decoded_and_a_pause_ends_the_phrase() {
    let mut asr = ScriptedAsr::default();
    let mut s = StreamingTranscriber::new(opts());
    let ups = run(&mut asr, &mut s, &vec![0.0; 16_000 * 10]);
    assert_eq!(asr.decodes, 0);
    assert!(
        ups.iter()
            .all(|u| u.finals.is_empty() && u.partial.is_none())
    );
    assert!(s.buffer.len() <= 16_000, "silence is dropped");

    // Two words then a pause: committed during the pause, without finish().
    let mut audio = phrase(0, 2);
    audio.extend(vec![0.0; 16_000]);
    let ups = run(&mut asr, &mut s, &audio);
    assert_eq!(s.committed_text(), "w0 w1", "{ups:#?}");
    let t = s.finish(&mut asr).unwrap();
    assert!(t.finals.is_empty());
    // Stream times count the leading silence.
    assert!(s.transcript().segments[0].start_s >= 10.0);
}

#[test]
fn a_run_on_longer_than_the_buffer_is_committed() {
    let mut asr = ScriptedAsr::default();
    let mut s = StreamingTranscriber::new(StreamingOptions {
        max_buffer_s: 3.0,
        ..opts()
    });
    // One continuous 6 s "word" the recogniser never completes (nor agrees on).
    let audio = vec![0.25; 16_000 * 6];
    run(&mut asr, &mut s, &audio);
    assert!(s.buffer.len() <= 16_000 * 4);
    assert!(!s.committed_text().is_empty());
}

#[test]
fn works_with_the_fake_transcriber_and_finish_flushes() {
    let mut fake = FakeTranscriber::default();
    let mut s = StreamingTranscriber::new(opts());
    let tone: Vec<f32> = (0..8_000).map(|i| (i as f32 * 0.1).sin() * 0.3).collect();
    let u = s.feed(&mut fake, &tone).unwrap();
    assert!(u.finals.is_empty());
    assert_eq!(u.partial.unwrap().text, "fake speech 1");
    let u = s.finish(&mut fake).unwrap();
    assert!(u.decoded);
    assert_eq!(s.committed_text(), "fake speech 1");
    // After finish, more silence changes nothing.
    s.feed(&mut fake, &[0.0; 16_000]).unwrap();
    assert_eq!(s.finish(&mut fake).unwrap(), StreamUpdate::default());
}

#[test]
fn words_split_by_script_and_rejoin() {
    let w = split_words("您好，我是 Acme 的小王。", 1.0, 2.0);
    let keys: Vec<&str> = w.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, ["您", "好", "我", "是", "acme", "的", "小", "王"]);
    assert_eq!(w[1].text, "好，");
    assert_eq!(join_words(&w), "您好，我是Acme的小王。");
    assert!((w[0].start_s - 1.0).abs() < 1e-9 && (w[7].end_s - 2.0).abs() < 1e-9);
    let e = split_words("Hello, world. It's $20!", 0.0, 1.0);
    assert_eq!(join_words(&e), "Hello, world. It's $20!");
    assert_eq!(e[3].key, "20");
}

#[test]
fn alignment_skips_repeated_committed_words_even_if_revised() {
    let w = |k: &str| Word {
        text: k.into(),
        key: k.into(),
        start_s: 0.0,
        end_s: 0.0,
    };
    let committed = [w("the"), w("price"), w("is")];
    let hyp = [w("the"), w("prize"), w("is"), w("ten"), w("dollars")];
    assert_eq!(align_prefix(&committed, &hyp), 3);
    assert_eq!(align_prefix(&[], &hyp), 0);
    let dropped = [w("price"), w("is"), w("ten")];
    assert_eq!(align_prefix(&committed, &dropped), 2);
}
