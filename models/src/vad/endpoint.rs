//! Endpointing: from per-frame speech probabilities to utterances.
//!
//! An [`Endpointer`] watches the probabilities of one channel (Silero's, or
//! the energy gate's where the weights are absent) and decides where an
//! utterance starts and ends:
//!
//! - **start**: a frame at or above [`EndpointOptions::threshold`]. The
//!   utterance is *confirmed* once it holds [`EndpointOptions::min_speech_ms`]
//!   of such frames; a shorter burst (a click, a cough) that falls silent is
//!   dropped without a word. The utterance begins
//!   [`EndpointOptions::pre_roll_ms`] before its first speech frame, so a
//!   soft onset is not clipped;
//! - **hangover**: frames between the two thresholds neither end nor extend
//!   speech; only frames below [`EndpointOptions::neg_threshold`] count as
//!   silence (Silero's own iterator uses the same two-threshold rule);
//! - **end**: after [`EndpointOptions::end_silence_ms`] of silence, cut
//!   [`EndpointOptions::post_roll_ms`] after the last speech frame. This is
//!   the trade-off between latency and whole sentences: a hesitation longer
//!   than it splits a sentence, and every millisecond of it is waited before
//!   the sentence reaches the recogniser (`assist-eval endpoint` measures it);
//! - **maximum length**: an utterance reaching
//!   [`EndpointOptions::max_utterance_ms`] (music, noise, a monologue) is
//!   cut at its quietest frame of the last two seconds and a new one goes
//!   on from there, so nothing grows without bound;
//! - **tentative end**: after [`EndpointOptions::tentative_ms`] of silence,
//!   an [`EndpointEvent::Tentative`] with the times the `End` will have if
//!   the silence lasts, so a recogniser with time to spare can decode the
//!   utterance while the endpointer is still waiting; speech that resumes
//!   simply makes it stale;
//! - **partials**: while an utterance is longer than
//!   [`EndpointOptions::partial_after_ms`], a [`EndpointEvent::Partial`] at
//!   most every [`EndpointOptions::partial_every_ms`], for a transcript that
//!   grows while the person talks.
//!
//! Times are milliseconds of stream time.

use std::collections::VecDeque;

use super::FrameProb;

/// How utterances are cut. See the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointOptions {
    /// A frame at or above this is speech.
    pub threshold: f32,
    /// A frame below this is silence (between the two: neither).
    pub neg_threshold: f32,
    /// Speech needed before an utterance counts.
    pub min_speech_ms: u32,
    /// Silence that ends an utterance.
    pub end_silence_ms: u32,
    /// Longest utterance before it is cut.
    pub max_utterance_ms: u32,
    /// Audio kept before the first speech frame.
    pub pre_roll_ms: u32,
    /// Audio kept after the last speech frame.
    pub post_roll_ms: u32,
    /// An utterance this long gets partials...
    pub partial_after_ms: u32,
    /// ...at most this often (0: never).
    pub partial_every_ms: u32,
    /// Silence after which the utterance is offered as *tentative*: it will
    /// be final unless speech resumes before `end_silence_ms`, so a
    /// recogniser with time to spare can start on it early (0: never).
    pub tentative_ms: u32,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech_ms: 200,
            end_silence_ms: 400,
            max_utterance_ms: 15_000,
            pre_roll_ms: 200,
            post_roll_ms: 150,
            partial_after_ms: 2_500,
            partial_every_ms: 2_000,
            tentative_ms: 160,
        }
    }
}

/// Why an utterance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Trailing silence.
    Silence,
    /// It reached the maximum length.
    MaxLength,
    /// The stream ended while it went on.
    Flush,
}

/// What a frame (or the end of the stream) decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EndpointEvent {
    /// A confirmed utterance began at `start_ms`.
    Start { start_ms: u64 },
    /// The utterance so far, for a partial transcript.
    Partial { start_ms: u64, end_ms: u64 },
    /// The speaker has paused: unless speech resumes, the utterance will end
    /// exactly here (the same `start_ms` and `end_ms` as its `End`).
    Tentative { start_ms: u64, end_ms: u64 },
    /// A whole utterance.
    End {
        start_ms: u64,
        end_ms: u64,
        reason: EndReason,
    },
}

#[derive(Debug, Clone)]
struct Speech {
    start_ms: u64,
    /// Speech frames' total length.
    voiced_ms: u64,
    confirmed: bool,
    /// End of the last frame at or above the threshold.
    last_voice_end_ms: u64,
    /// Start of the current run of silence frames.
    silence_from_ms: Option<u64>,
    last_partial_ms: u64,
    /// A tentative end was offered for the current pause.
    tentative_sent: bool,
    /// (end, probability) of recent frames, for the max-length cut.
    recent: VecDeque<(u64, f32)>,
}

/// The endpointing state of one channel.
#[derive(Debug, Clone)]
pub struct Endpointer {
    opts: EndpointOptions,
    speech: Option<Speech>,
    /// End of the last frame seen.
    now_ms: u64,
}

impl Endpointer {
    pub fn new(opts: EndpointOptions) -> Endpointer {
        Endpointer {
            opts,
            speech: None,
            now_ms: 0,
        }
    }

    pub fn options(&self) -> &EndpointOptions {
        &self.opts
    }

    /// Whether a confirmed utterance is going on.
    pub fn in_speech(&self) -> bool {
        self.speech.as_ref().is_some_and(|s| s.confirmed)
    }

    /// The end of the open utterance's last speech frame, if any.
    pub fn last_voice_end_ms(&self) -> Option<u64> {
        self.speech.as_ref().map(|s| s.last_voice_end_ms)
    }

    /// Where the current utterance (confirmed or not) would begin, if any.
    pub fn open_start_ms(&self) -> Option<u64> {
        self.speech.as_ref().map(|s| s.start_ms)
    }

    /// One frame's probability; events it causes are appended to `out`.
    pub fn push(&mut self, frame: &FrameProb, out: &mut Vec<EndpointEvent>) {
        self.push_prob(frame.start_ms(), frame.end_ms(), frame.prob, out);
    }

    /// [`Endpointer::push`] with the frame's times given directly.
    pub fn push_prob(
        &mut self,
        start_ms: u64,
        end_ms: u64,
        prob: f32,
        out: &mut Vec<EndpointEvent>,
    ) {
        let o = &self.opts;
        self.now_ms = end_ms;
        let frame_ms = end_ms.saturating_sub(start_ms);
        let Some(s) = &mut self.speech else {
            if prob >= o.threshold {
                let mut s = Speech {
                    start_ms: start_ms.saturating_sub(u64::from(o.pre_roll_ms)),
                    voiced_ms: frame_ms,
                    confirmed: false,
                    last_voice_end_ms: end_ms,
                    silence_from_ms: None,
                    last_partial_ms: start_ms,
                    tentative_sent: false,
                    recent: VecDeque::new(),
                };
                s.recent.push_back((end_ms, prob));
                if s.voiced_ms >= u64::from(o.min_speech_ms) {
                    s.confirmed = true;
                    out.push(EndpointEvent::Start {
                        start_ms: s.start_ms,
                    });
                }
                self.speech = Some(s);
            }
            return;
        };
        s.recent.push_back((end_ms, prob));
        while s.recent.front().is_some_and(|(e, _)| e + 2_000 < end_ms) {
            s.recent.pop_front();
        }
        if prob >= o.threshold {
            s.voiced_ms += frame_ms;
            s.last_voice_end_ms = end_ms;
            s.silence_from_ms = None;
            s.tentative_sent = false;
            if !s.confirmed && s.voiced_ms >= u64::from(o.min_speech_ms) {
                s.confirmed = true;
                out.push(EndpointEvent::Start {
                    start_ms: s.start_ms,
                });
            }
        } else if prob < o.neg_threshold {
            s.silence_from_ms.get_or_insert(start_ms);
        }
        if let Some(from) = s.silence_from_ms
            && end_ms.saturating_sub(from) >= u64::from(o.end_silence_ms)
        {
            let s = self.speech.take().expect("in speech");
            if s.confirmed {
                out.push(EndpointEvent::End {
                    start_ms: s.start_ms,
                    end_ms: (s.last_voice_end_ms + u64::from(o.post_roll_ms)).min(end_ms),
                    reason: EndReason::Silence,
                });
            }
            return;
        }
        if let Some(from) = s.silence_from_ms
            && s.confirmed
            && !s.tentative_sent
            && o.tentative_ms > 0
            && end_ms.saturating_sub(from) >= u64::from(o.tentative_ms)
        {
            s.tentative_sent = true;
            out.push(EndpointEvent::Tentative {
                start_ms: s.start_ms,
                end_ms: (s.last_voice_end_ms + u64::from(o.post_roll_ms)).min(end_ms),
            });
        }
        if !s.confirmed {
            // An unconfirmed burst that drags on without enough speech is noise.
            if end_ms.saturating_sub(s.start_ms) > u64::from(o.max_utterance_ms) {
                self.speech = None;
            }
            return;
        }
        if end_ms.saturating_sub(s.start_ms) >= u64::from(o.max_utterance_ms) {
            // Cut at the quietest recent frame (a breath), else here.
            let earliest = s.start_ms + u64::from(o.max_utterance_ms) / 2;
            let cut = s
                .recent
                .iter()
                .filter(|(e, p)| *e > earliest && *e < end_ms && *p < o.threshold)
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(end_ms, |(e, _)| *e);
            out.push(EndpointEvent::End {
                start_ms: s.start_ms,
                end_ms: cut,
                reason: EndReason::MaxLength,
            });
            s.start_ms = cut;
            s.voiced_ms = end_ms - cut;
            s.last_partial_ms = cut;
            s.tentative_sent = false;
            s.recent.retain(|(e, _)| *e > cut);
            out.push(EndpointEvent::Start { start_ms: cut });
            return;
        }
        if o.partial_every_ms > 0
            && prob >= o.neg_threshold
            && end_ms.saturating_sub(s.start_ms) >= u64::from(o.partial_after_ms)
            && end_ms.saturating_sub(s.last_partial_ms) >= u64::from(o.partial_every_ms)
        {
            s.last_partial_ms = end_ms;
            out.push(EndpointEvent::Partial {
                start_ms: s.start_ms,
                end_ms,
            });
        }
    }

    /// The stream ended: a confirmed utterance still going on ends here.
    pub fn flush(&mut self, out: &mut Vec<EndpointEvent>) {
        if let Some(s) = self.speech.take()
            && s.confirmed
        {
            out.push(EndpointEvent::End {
                start_ms: s.start_ms,
                end_ms: (s.last_voice_end_ms + u64::from(self.opts.post_roll_ms)).min(self.now_ms),
                reason: EndReason::Flush,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed 32 ms frames with the given probabilities; events with the frame index.
    fn run(opts: EndpointOptions, probs: &[f32], flush: bool) -> Vec<(usize, EndpointEvent)> {
        let mut ep = Endpointer::new(opts);
        let mut out = Vec::new();
        let mut events = Vec::new();
        for (i, &p) in probs.iter().enumerate() {
            ep.push_prob(i as u64 * 32, (i as u64 + 1) * 32, p, &mut out);
            events.extend(out.drain(..).map(|e| (i, e)));
        }
        if flush {
            ep.flush(&mut out);
            events.extend(out.drain(..).map(|e| (probs.len(), e)));
        }
        events
    }

    fn frames(spec: &[(f32, usize)]) -> Vec<f32> {
        spec.iter()
            .flat_map(|&(p, n)| std::iter::repeat_n(p, n))
            .collect()
    }

    #[test]
    fn a_sentence_with_a_short_pause_is_one_utterance() {
        // 1 s silence, 1 s speech, 0.25 s pause, 1 s speech, 1 s silence.
        let p = frames(&[(0.02, 31), (0.9, 31), (0.1, 8), (0.9, 31), (0.02, 31)]);
        let ev = run(EndpointOptions::default(), &p, false);
        let ends: Vec<_> = ev
            .iter()
            .filter(|(_, e)| matches!(e, EndpointEvent::End { .. }))
            .collect();
        assert_eq!(ends.len(), 1, "{ev:?}");
        let (
            at,
            EndpointEvent::End {
                start_ms,
                end_ms,
                reason,
            },
        ) = ends[0]
        else {
            unreachable!()
        };
        assert_eq!(*reason, EndReason::Silence);
        // Starts 200 ms before the first speech frame (31 × 32 = 992 ms).
        assert_eq!(*start_ms, 992 - 200);
        // Last speech frame ends at (31+31+8+31) × 32 = 3232 ms; + 150 ms.
        assert_eq!(*end_ms, 3232 + 150);
        // Decided after 400 ms of silence: the 13th silent frame.
        assert_eq!(*at, 31 + 31 + 8 + 31 + 12);
        assert!(matches!(ev[0].1, EndpointEvent::Start { start_ms: 792 }));
    }

    #[test]
    fn a_long_pause_splits_and_hangover_frames_do_not() {
        let opts = EndpointOptions::default();
        // A 0.5 s pause (> 400 ms) splits...
        let p = frames(&[(0.9, 20), (0.1, 16), (0.9, 20), (0.0, 20)]);
        let n = run(opts.clone(), &p, false)
            .iter()
            .filter(|(_, e)| matches!(e, EndpointEvent::End { .. }))
            .count();
        assert_eq!(n, 2);
        // ...but not when its frames sit between the two thresholds.
        let p = frames(&[(0.9, 20), (0.4, 16), (0.9, 20), (0.0, 20)]);
        let n = run(opts, &p, false)
            .iter()
            .filter(|(_, e)| matches!(e, EndpointEvent::End { .. }))
            .count();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_tentative_end_comes_early_with_the_final_times() {
        let p = frames(&[(0.0, 10), (0.9, 30), (0.1, 6), (0.9, 30), (0.0, 20)]);
        let ev = run(EndpointOptions::default(), &p, false);
        let tentative: Vec<(usize, u64)> = ev
            .iter()
            .filter_map(|(i, e)| match e {
                EndpointEvent::Tentative { end_ms, .. } => Some((*i, *end_ms)),
                _ => None,
            })
            .collect();
        // One in the short pause (speech resumed: stale), one at the end.
        assert_eq!(tentative.len(), 2, "{ev:?}");
        let Some((at, EndpointEvent::End { end_ms, .. })) = ev.last() else {
            panic!("{ev:?}")
        };
        assert_eq!(tentative[1].1, *end_ms);
        // 160 ms of silence (5 frames) instead of 400 ms (13 frames).
        assert_eq!(at - tentative[1].0, 8);
    }

    #[test]
    fn clicks_are_not_utterances() {
        let p = frames(&[(0.0, 10), (0.95, 3), (0.0, 30), (0.8, 2), (0.0, 30)]);
        assert!(run(EndpointOptions::default(), &p, true).is_empty());
    }

    #[test]
    fn endless_noise_is_cut_at_the_maximum_length() {
        let opts = EndpointOptions {
            max_utterance_ms: 5_000,
            partial_every_ms: 0,
            ..Default::default()
        };
        // 20 s of "speech" with a dip at 4.2 s.
        let mut p = vec![0.9f32; 625];
        p[131] = 0.3;
        let ev = run(opts, &p, true);
        let ends: Vec<_> = ev
            .iter()
            .filter_map(|(_, e)| match e {
                EndpointEvent::End {
                    start_ms,
                    end_ms,
                    reason,
                } => Some((*start_ms, *end_ms, *reason)),
                _ => None,
            })
            .collect();
        assert!(ends.len() >= 4, "{ends:?}");
        // The first cut is at the dip (end of frame 131), not at 5 s.
        assert_eq!(ends[0], (0, 132 * 32, EndReason::MaxLength));
        for w in ends.windows(2) {
            assert_eq!(w[0].1, w[1].0, "utterances are contiguous: {ends:?}");
            // The cut falls on the frame that reaches the limit.
            assert!(w[1].1 - w[1].0 < 5_000 + 32);
        }
        assert_eq!(ends.last().unwrap().2, EndReason::Flush);
        assert_eq!(ends.last().unwrap().1, 625 * 32);
    }

    #[test]
    fn a_call_that_ends_mid_sentence_flushes_it() {
        let p = frames(&[(0.0, 10), (0.9, 40)]);
        let ev = run(EndpointOptions::default(), &p, true);
        assert_eq!(
            ev.last().unwrap().1,
            EndpointEvent::End {
                start_ms: 320 - 200,
                end_ms: 50 * 32,
                reason: EndReason::Flush
            }
        );
    }

    #[test]
    fn partials_come_at_a_bounded_rate() {
        let opts = EndpointOptions::default();
        // 10.8 s of speech.
        let p = frames(&[(0.9, 340), (0.0, 20)]);
        let partials: Vec<u64> = run(opts, &p, false)
            .iter()
            .filter_map(|(_, e)| match e {
                EndpointEvent::Partial { end_ms, .. } => Some(*end_ms),
                _ => None,
            })
            .collect();
        // From 2.5 s on, every 2 s: 2.5, 4.5, 6.5, 8.5, 10.5 s (frame-rounded up).
        assert_eq!(partials.len(), 5, "{partials:?}");
        assert!(partials[0] >= 2_500 && partials[0] < 2_600);
        for w in partials.windows(2) {
            assert!(w[1] - w[0] >= 2_000);
        }
    }
}
