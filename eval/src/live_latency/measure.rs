//! Joining what the phone saw with what it said: which final and which
//! suggestions belong to which customer utterance, and the percentiles.
//!
//! Pure functions of times in seconds since the call's stream start, so
//! they are tested without a server or a clock.

use assist_protocol::live::{ServerMessage, Speaker};

/// A customer utterance: where it lies in the call's audio (seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub start_s: f64,
    pub end_s: f64,
}

/// A final may begin a little before the utterance (the streamer keeps a
/// 0.3 s pre-roll) and its word times are Whisper's, so an utterance is
/// found by its start with this much slack.
const START_SLACK_S: f64 = 0.4;

/// What happened to one customer utterance, seconds after its reference
/// time (the end of the utterance in the audio, or the moment its text turn
/// was sent). `None`: it never came.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcome {
    /// The final that completed the utterance arrived.
    pub to_final: Option<f64>,
    /// The suggestions for that final arrived.
    pub to_suggestions: Option<f64>,
    /// From the final's arrival to its suggestions' arrival.
    pub final_to_suggestions: Option<f64>,
}

/// Audio calls: each customer final belongs to the utterance with the
/// latest start at or before its `end_s`; the last such final completes the
/// utterance (earlier ones are prefixes committed while it was spoken), and
/// its suggestions (matched by `final_seq`) are the ones that count.
/// `events` are (arrival, message) in arrival order.
pub fn attribute_audio(spans: &[Span], events: &[(f64, ServerMessage)]) -> Vec<Outcome> {
    // Per utterance: (arrival, seq) of its last final.
    let mut closing: Vec<Option<(f64, u64)>> = vec![None; spans.len()];
    for (at, msg) in events {
        if let ServerMessage::Final(p) = msg
            && p.speaker != Speaker::Rep
            && let Some(u) = spans
                .iter()
                .rposition(|s| s.start_s - START_SLACK_S <= p.end_s)
        {
            closing[u] = Some((*at, p.seq));
        }
    }
    spans
        .iter()
        .zip(closing)
        .map(|(span, c)| outcome(span.end_s, c, events))
        .collect()
}

/// Text turns: a final repeats the text the phone sent, so it is matched
/// by text; `sent` holds each customer turn's text and send time.
pub fn attribute_text(sent: &[(String, f64)], events: &[(f64, ServerMessage)]) -> Vec<Outcome> {
    let mut closing: Vec<Option<(f64, u64)>> = vec![None; sent.len()];
    for (at, msg) in events {
        if let ServerMessage::Final(p) = msg
            && p.speaker != Speaker::Rep
            && let Some(u) = sent.iter().position(|(t, _)| t.trim() == p.text.trim())
            && closing[u].is_none()
        {
            closing[u] = Some((*at, p.seq));
        }
    }
    sent.iter()
        .zip(closing)
        .map(|((_, at), c)| outcome(*at, c, events))
        .collect()
}

fn outcome(
    reference: f64,
    closing: Option<(f64, u64)>,
    events: &[(f64, ServerMessage)],
) -> Outcome {
    let Some((final_at, seq)) = closing else {
        return Outcome::default();
    };
    let suggested = events.iter().find_map(|(at, m)| match m {
        ServerMessage::Suggestions { final_seq, .. } if *final_seq == seq => Some(*at),
        _ => None,
    });
    Outcome {
        to_final: Some(final_at - reference),
        to_suggestions: suggested.map(|s| s - reference),
        final_to_suggestions: suggested.map(|s| s - final_at),
    }
}

/// Risky rep lines: the first risk finding on the phone for a rep final that
/// overlaps the line. Returns, per line, the seconds from the line's end to
/// that finding and the final's `seq` (to find its alert on the manager's
/// stream), or `None`.
pub fn attribute_risk(spans: &[Span], events: &[(f64, ServerMessage)]) -> Vec<Option<(f64, u64)>> {
    let finals: Vec<(u64, f64, f64)> = events
        .iter()
        .filter_map(|(_, m)| match m {
            ServerMessage::Final(p) if p.speaker == Speaker::Rep => {
                Some((p.seq, p.start_s, p.end_s))
            }
            _ => None,
        })
        .collect();
    spans
        .iter()
        .map(|span| {
            events.iter().find_map(|(at, m)| match m {
                ServerMessage::Risk(r) if r.speaker == Speaker::Rep => {
                    let &(seq, start_s, end_s) =
                        finals.iter().find(|(seq, _, _)| *seq == r.final_seq)?;
                    (start_s - START_SLACK_S <= span.end_s && end_s + START_SLACK_S >= span.start_s)
                        .then_some((at - span.end_s, seq))
                }
                _ => None,
            })
        })
        .collect()
}

/// The `q` quantile of sorted values (nearest rank, as the other latency
/// reports); NaN when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// p50 and p95 of what arrived, in milliseconds, and how many did not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub arrived: usize,
    pub missing: usize,
}

impl Summary {
    pub fn of(values: impl IntoIterator<Item = Option<f64>>) -> Summary {
        let mut got = Vec::new();
        let mut missing = 0;
        for v in values {
            match v {
                Some(s) => got.push(s * 1000.0),
                None => missing += 1,
            }
        }
        got.sort_by(f64::total_cmp);
        Summary {
            p50_ms: percentile(&got, 0.5),
            p95_ms: percentile(&got, 0.95),
            arrived: got.len(),
            missing,
        }
    }

    /// p95 when every missing value counts as later than all others: the
    /// figure a sustained load must keep under its bound.
    pub fn p95_with_missing_ms(values: impl IntoIterator<Item = Option<f64>>) -> f64 {
        let mut all: Vec<f64> = values
            .into_iter()
            .map(|v| v.map_or(f64::INFINITY, |s| s * 1000.0))
            .collect();
        all.sort_by(f64::total_cmp);
        percentile(&all, 0.95)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use assist_protocol::live::{Suggestion, TranscriptPiece};

    fn fin(seq: u64, speaker: Speaker, text: &str, start_s: f64, end_s: f64) -> ServerMessage {
        ServerMessage::Final(TranscriptPiece {
            seq,
            speaker,
            text: text.into(),
            start_s,
            end_s,
        })
    }

    fn sug(seq: u64, final_seq: u64) -> ServerMessage {
        ServerMessage::Suggestions {
            seq,
            final_seq,
            query: String::new(),
            suggestions: vec![Suggestion {
                suggestion_id: format!("s{seq}"),
                script_id: "x".into(),
                title: String::new(),
                body: String::new(),
                scenario: String::new(),
                score: 1.0,
                bm25_rank: None,
                vector_rank: None,
            }],
        }
    }

    #[test]
    fn the_last_final_of_an_utterance_and_its_suggestions_count() {
        let spans = [
            Span {
                start_s: 2.0,
                end_s: 5.0,
            },
            Span {
                start_s: 9.0,
                end_s: 12.0,
            },
            Span {
                start_s: 15.0,
                end_s: 17.0,
            },
        ];
        let events = vec![
            // A prefix of the first utterance, committed while it was spoken.
            (4.0, fin(1, Speaker::Customer, "can you", 1.8, 3.5)),
            (4.0, sug(2, 1)),
            // The rest: Whisper puts its end a little before the true end.
            (5.9, fin(3, Speaker::Customer, "do monthly", 3.5, 4.8)),
            (6.1, sug(4, 3)),
            // The rep between them is never attributed.
            (8.0, fin(5, Speaker::Rep, "sure", 6.0, 8.0)),
            // The second starts a little early (pre-roll): still the second.
            (12.5, fin(6, Speaker::Customer, "too expensive", 8.7, 11.9)),
            // No suggestions for it; the third is never transcribed.
        ];
        let out = attribute_audio(&spans, &events);
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-9;
        assert!(close(out[0].to_final, 0.9), "{out:?}");
        assert!(close(out[0].to_suggestions, 1.1), "{out:?}");
        assert!(close(out[0].final_to_suggestions, 0.2), "{out:?}");
        assert!(close(out[1].to_final, 0.5), "{out:?}");
        assert_eq!(out[1].to_suggestions, None);
        assert_eq!(out[2], Outcome::default());
    }

    #[test]
    fn text_turns_are_matched_by_their_text() {
        let sent = vec![("too expensive".to_string(), 3.0), ("ok".to_string(), 7.0)];
        let events = vec![
            (3.05, fin(1, Speaker::Customer, "too expensive", 0.0, 0.0)),
            (3.08, sug(2, 1)),
            (7.02, fin(3, Speaker::Customer, " ok ", 0.0, 0.0)),
        ];
        let out = attribute_text(&sent, &events);
        assert!((out[0].to_suggestions.unwrap() - 0.08).abs() < 1e-9);
        assert!((out[0].final_to_suggestions.unwrap() - 0.03).abs() < 1e-9);
        assert!((out[1].to_final.unwrap() - 0.02).abs() < 1e-9);
        assert_eq!(out[1].to_suggestions, None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank_and_count_what_is_missing() {
        let values: Vec<Option<f64>> = (1..=20).map(|i| Some(i as f64 / 10.0)).collect();
        let s = Summary::of(values.clone());
        assert_eq!((s.arrived, s.missing), (20, 0));
        assert_eq!(s.p50_ms, 1100.0);
        assert_eq!(s.p95_ms, 1900.0);
        assert_eq!(Summary::p95_with_missing_ms(values.clone()), 1900.0);
        // Two missing of 20 push the p95 past every value that arrived.
        let mut with_missing = values[..18].to_vec();
        with_missing.extend([None, None]);
        assert_eq!(Summary::of(with_missing.clone()).missing, 2);
        assert!(Summary::p95_with_missing_ms(with_missing).is_infinite());
        assert!(Summary::of(Vec::new()).p50_ms.is_nan());
    }
}
