//! Coaching metrics of one call from its speaker-labelled segments, and their
//! aggregation per rep and per team ([`aggregate`]).
//!
//! Definitions (all times in milliseconds, from the segments' own clock):
//!
//! - **Timeline**: from the first segment's start (or 0 when
//!   [`CoachingOptions::call_duration_ms`] is given) to the last segment's end
//!   (or the call's duration, if later). `duration_ms` is its length.
//!   A segment whose end is before its start counts as zero-length.
//! - **Talk time** per speaker is the length of the union of that speaker's
//!   segments (overlapping segments of one speaker are not counted twice);
//!   `overlap_ms` is the time rep and customer talk at once.
//! - **Talk/listen ratio** is rep talk ÷ customer talk (`None` without customer
//!   talk); `rep_talk_share` is rep ÷ (rep + customer), 0–1. Unknown
//!   speakers count in neither.
//! - **Backchannels** — a segment of at most
//!   [`CoachingOptions::backchannel_max_ms`] whose text is only 嗯/对/好/是的/
//!   uh-huh/yeah/ok… — count as talk but do not end the other speaker's
//!   monologue, start a turn or count as an interruption.
//! - **Turns**: maximal runs of one speaker's (non-backchannel) segments in
//!   start order; unknown is a speaker of its own. `turn_count` counts them.
//! - **Monologue**: a turn, split where the speaker pauses longer than
//!   [`CoachingOptions::monologue_max_pause_ms`]; its length runs from its
//!   first start to its last end.
//! - **Interruption**: at a change of turn between rep and customer, the new
//!   speaker starts before the other's segments so far have ended, or within
//!   [`CoachingOptions::interruption_gap_ms`] (200) after. Counted for the
//!   speaker who starts.
//! - **Questions** (per sentence, see [`is_question`]): ？/? at the end; in
//!   Chinese a final 吗/么/呢, an A-not-A form (是不是, 有没有, 能不能 …) or a
//!   question word (什么, 怎么, 多少, 为什么, 哪, 几点 …) not used as an
//!   indefinite (没什么, 什么都); in English a leading wh-word or an auxiliary
//!   followed by a pronoun ("do you", "can we", "is that").
//! - **Speech rate**: per speaker, Chinese characters per minute over the
//!   segments that are mostly Chinese, and English words per minute over
//!   the others (`None` without such segments).
//! - **Silence**: timeline time covered by nobody's segment; `silence_share`
//!   is its part of the timeline; `longest_silence_ms` the longest such gap.
//! - **Customer sentiment**: [`sentiment::score`] per customer segment; the
//!   trend compares the mean score of customer segments whose midpoint lies
//!   in the first third of the timeline with those in the last third:
//!   improving at a difference of +0.2 or more, declining at −0.2 or less.

pub mod aggregate;
mod questions;
pub mod sentiment;

pub use questions::is_question;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use super::text::{Lang, cjk_chars, detect_lang, latin_words, sentences};
use super::{Segment, Speaker};

/// Thresholds for [`analyze_call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoachingOptions {
    /// A turn starting this soon after the other's end is an interruption.
    pub interruption_gap_ms: i64,
    /// Longest segment that can be a backchannel ("嗯", "uh-huh").
    pub backchannel_max_ms: i64,
    /// A pause longer than this ends a monologue.
    pub monologue_max_pause_ms: i64,
    /// The recording's length, if known: silence before the first and after
    /// the last segment then counts too.
    pub call_duration_ms: Option<i64>,
}

impl Default for CoachingOptions {
    fn default() -> Self {
        CoachingOptions {
            interruption_gap_ms: 200,
            backchannel_max_ms: 1_500,
            monologue_max_pause_ms: 5_000,
            call_duration_ms: None,
        }
    }
}

/// Metrics of one call. Ratios are `None` when their denominator is zero.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CallMetrics {
    pub duration_ms: i64,
    pub segment_count: usize,
    pub turn_count: usize,
    pub rep_talk_ms: i64,
    pub customer_talk_ms: i64,
    pub unknown_talk_ms: i64,
    /// Rep and customer talking at once.
    pub overlap_ms: i64,
    /// Rep talk ÷ customer talk.
    pub talk_listen_ratio: Option<f64>,
    /// Rep talk ÷ (rep + customer talk), 0–1.
    pub rep_talk_share: Option<f64>,
    pub longest_rep_monologue_ms: i64,
    pub longest_customer_monologue_ms: i64,
    pub rep_questions: usize,
    pub customer_questions: usize,
    pub rep_interruptions: usize,
    pub customer_interruptions: usize,
    pub rep_zh_chars_per_min: Option<f64>,
    pub rep_en_words_per_min: Option<f64>,
    pub customer_zh_chars_per_min: Option<f64>,
    pub customer_en_words_per_min: Option<f64>,
    pub silence_ms: i64,
    /// Silence ÷ duration, 0–1.
    pub silence_share: Option<f64>,
    pub longest_silence_ms: i64,
    /// One entry per customer segment, in order.
    pub customer_sentiment: Vec<SegmentSentiment>,
    /// Mean score over customer segments.
    pub customer_sentiment_mean: Option<f64>,
    pub sentiment_trend: Option<SentimentTrend>,
}

/// The sentiment of one customer segment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SegmentSentiment {
    /// Index in the input slice.
    pub segment_index: usize,
    pub start_ms: i64,
    pub positive: usize,
    pub negative: usize,
    /// −1 … 1.
    pub score: f64,
}

/// First third of the call against the last third.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SentimentTrend {
    pub first_third_mean: f64,
    pub last_third_mean: f64,
    /// `last_third_mean − first_third_mean`.
    pub delta: f64,
    pub direction: TrendDirection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrendDirection {
    Improving,
    Steady,
    Declining,
}

/// Difference in mean sentiment that counts as a trend.
pub const TREND_THRESHOLD: f64 = 0.2;

/// Metrics of one call. Segments may come in any order and may overlap.
pub fn analyze_call(segments: &[Segment<'_>], options: &CoachingOptions) -> CallMetrics {
    let mut m = CallMetrics {
        segment_count: segments.len(),
        ..CallMetrics::default()
    };
    // (start, end, index), zero-length for reversed segments, in start order.
    let mut order: Vec<(i64, i64, usize)> = segments
        .iter()
        .enumerate()
        .map(|(i, s)| (s.start_ms, s.end_ms.max(s.start_ms), i))
        .collect();
    order.sort();

    let (t0, t1) = match (order.first(), options.call_duration_ms) {
        (None, None) => (0, 0),
        (None, Some(d)) => (0, d.max(0)),
        (Some(_), d) => {
            let first = order.iter().map(|o| o.0).min().unwrap_or(0);
            let last = order.iter().map(|o| o.1).max().unwrap_or(0);
            match d {
                Some(d) => (0.min(first), last.max(d)),
                None => (first, last),
            }
        }
    };
    m.duration_ms = t1 - t0;

    // Talk time.
    let spans = |who: Option<Speaker>| -> Vec<(i64, i64)> {
        union(
            order
                .iter()
                .filter(|o| who.is_none_or(|w| segments[o.2].speaker == w))
                .map(|o| (o.0, o.1)),
        )
    };
    let rep = spans(Some(Speaker::Rep));
    let customer = spans(Some(Speaker::Customer));
    let all = spans(None);
    m.rep_talk_ms = length(&rep);
    m.customer_talk_ms = length(&customer);
    m.unknown_talk_ms = length(&spans(Some(Speaker::Unknown)));
    m.overlap_ms = intersection(&rep, &customer);
    m.talk_listen_ratio = ratio(m.rep_talk_ms, m.customer_talk_ms);
    m.rep_talk_share = ratio(m.rep_talk_ms, m.rep_talk_ms + m.customer_talk_ms);

    // Silence: gaps in the union of everybody's talk, within the timeline.
    let mut cursor = t0;
    for &(a, b) in &all {
        if a > cursor {
            m.silence_ms += a - cursor;
            m.longest_silence_ms = m.longest_silence_ms.max(a - cursor);
        }
        cursor = cursor.max(b);
    }
    if t1 > cursor {
        m.silence_ms += t1 - cursor;
        m.longest_silence_ms = m.longest_silence_ms.max(t1 - cursor);
    }
    m.silence_share = ratio(m.silence_ms, m.duration_ms);

    turns_and_interruptions(segments, &order, options, &mut m);
    questions_and_rates(segments, &mut m);
    sentiment(segments, t0, t1, &mut m);
    m
}

fn ratio(a: i64, b: i64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Merge intervals (given in start order) into a sorted disjoint union.
fn union(spans: impl Iterator<Item = (i64, i64)>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn length(spans: &[(i64, i64)]) -> i64 {
    spans.iter().map(|(a, b)| b - a).sum()
}

fn intersection(x: &[(i64, i64)], y: &[(i64, i64)]) -> i64 {
    let (mut i, mut j, mut total) = (0, 0, 0);
    while i < x.len() && j < y.len() {
        let a = x[i].0.max(y[j].0);
        let b = x[i].1.min(y[j].1);
        if b > a {
            total += b - a;
        }
        if x[i].1 < y[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    total
}

const BACKCHANNEL: &[&str] = &[
    "嗯",
    "恩",
    "嗯嗯",
    "哦",
    "噢",
    "喔",
    "啊",
    "对",
    "对对",
    "对对对",
    "是",
    "是的",
    "是是",
    "好",
    "好的",
    "好好",
    "行",
    "明白",
    "了解",
    "可以",
    "uh-huh",
    "uh huh",
    "mm-hmm",
    "mhm",
    "mm",
    "yeah",
    "yes",
    "yep",
    "ok",
    "okay",
    "right",
    "sure",
    "i see",
    "got it",
];

/// A short acknowledgement ("嗯", "对对", "uh-huh").
pub fn is_backchannel(text: &str) -> bool {
    let t: String = text
        .chars()
        .filter(|c| !(c.is_whitespace() || "，,。.！!？?、~～…".contains(*c)))
        .collect::<String>()
        .to_lowercase();
    if t.is_empty() {
        return false;
    }
    BACKCHANNEL.iter().any(|b| b.replace(' ', "") == t)
        || (t.chars().count() <= 4 && t.chars().all(|c| "嗯恩哦噢喔啊对是好".contains(c)))
}

fn turns_and_interruptions(
    segments: &[Segment<'_>],
    order: &[(i64, i64, usize)],
    options: &CoachingOptions,
    m: &mut CallMetrics,
) {
    let mut last_speaker: Option<Speaker> = None;
    // Latest end so far per known speaker.
    let mut rep_end: Option<i64> = None;
    let mut customer_end: Option<i64> = None;
    // Current monologue: (speaker, start, end).
    let mut mono: Option<(Speaker, i64, i64)> = None;
    let close = |mono: Option<(Speaker, i64, i64)>, m: &mut CallMetrics| {
        if let Some((who, a, b)) = mono {
            match who {
                Speaker::Rep => m.longest_rep_monologue_ms = m.longest_rep_monologue_ms.max(b - a),
                Speaker::Customer => {
                    m.longest_customer_monologue_ms = m.longest_customer_monologue_ms.max(b - a)
                }
                Speaker::Unknown => {}
            }
        }
    };
    for &(start, end, i) in order {
        let seg = &segments[i];
        let who = seg.speaker;
        if end - start <= options.backchannel_max_ms && is_backchannel(seg.text) {
            continue;
        }
        if last_speaker != Some(who) {
            m.turn_count += 1;
            let other_end = match (last_speaker, who) {
                (Some(Speaker::Customer), Speaker::Rep) => customer_end,
                (Some(Speaker::Rep), Speaker::Customer) => rep_end,
                _ => None,
            };
            if let Some(e) = other_end
                && start < e + options.interruption_gap_ms
            {
                match who {
                    Speaker::Rep => m.rep_interruptions += 1,
                    _ => m.customer_interruptions += 1,
                }
            }
            close(mono.take(), m);
            mono = Some((who, start, end));
        } else {
            mono = match mono {
                Some((w, a, b)) if start - b <= options.monologue_max_pause_ms => {
                    Some((w, a, b.max(end)))
                }
                other => {
                    close(other, m);
                    Some((who, start, end))
                }
            };
        }
        last_speaker = Some(who);
        match who {
            Speaker::Rep => rep_end = Some(rep_end.map_or(end, |e| e.max(end))),
            Speaker::Customer => customer_end = Some(customer_end.map_or(end, |e| e.max(end))),
            Speaker::Unknown => {}
        }
    }
    close(mono, m);
}

fn questions_and_rates(segments: &[Segment<'_>], m: &mut CallMetrics) {
    // (zh chars, zh ms, en words, en ms) per rep / customer.
    let mut rate = [(0usize, 0i64, 0usize, 0i64); 2];
    for seg in segments {
        let slot = match seg.speaker {
            Speaker::Rep => 0,
            Speaker::Customer => 1,
            Speaker::Unknown => continue,
        };
        let questions = sentences(seg.text)
            .into_iter()
            .filter(|&(a, b)| is_question(&seg.text[a..b]))
            .count();
        if slot == 0 {
            m.rep_questions += questions;
        } else {
            m.customer_questions += questions;
        }
        let ms = (seg.end_ms - seg.start_ms).max(0);
        if ms == 0 || seg.text.trim().is_empty() {
            continue;
        }
        let r = &mut rate[slot];
        match detect_lang(seg.text) {
            Lang::Zh => {
                r.0 += cjk_chars(seg.text);
                r.1 += ms;
            }
            Lang::En => {
                r.2 += latin_words(seg.text);
                r.3 += ms;
            }
        }
    }
    let per_min = |n: usize, ms: i64| (ms > 0).then(|| n as f64 * 60_000.0 / ms as f64);
    m.rep_zh_chars_per_min = per_min(rate[0].0, rate[0].1);
    m.rep_en_words_per_min = per_min(rate[0].2, rate[0].3);
    m.customer_zh_chars_per_min = per_min(rate[1].0, rate[1].1);
    m.customer_en_words_per_min = per_min(rate[1].2, rate[1].3);
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

fn sentiment(segments: &[Segment<'_>], t0: i64, t1: i64, m: &mut CallMetrics) {
    for (i, seg) in segments.iter().enumerate() {
        if seg.speaker != Speaker::Customer {
            continue;
        }
        let s = sentiment::score(seg.text);
        m.customer_sentiment.push(SegmentSentiment {
            segment_index: i,
            start_ms: seg.start_ms,
            positive: s.positive,
            negative: s.negative,
            score: s.score,
        });
    }
    m.customer_sentiment
        .sort_by_key(|s| (s.start_ms, s.segment_index));
    m.customer_sentiment_mean = mean(m.customer_sentiment.iter().map(|s| s.score));
    let span = t1 - t0;
    if span <= 0 {
        return;
    }
    let third = |s: &SegmentSentiment| {
        let seg = &segments[s.segment_index];
        let mid = (seg.start_ms + seg.end_ms.max(seg.start_ms)) / 2;
        (mid - t0) * 3 / span
    };
    let first = mean(
        m.customer_sentiment
            .iter()
            .filter(|s| third(s) <= 0)
            .map(|s| s.score),
    );
    let last = mean(
        m.customer_sentiment
            .iter()
            .filter(|s| third(s) >= 2)
            .map(|s| s.score),
    );
    if let (Some(first), Some(last)) = (first, last) {
        let delta = last - first;
        let direction = if delta >= TREND_THRESHOLD - 1e-9 {
            TrendDirection::Improving
        } else if delta <= -TREND_THRESHOLD + 1e-9 {
            TrendDirection::Declining
        } else {
            TrendDirection::Steady
        };
        m.sentiment_trend = Some(SentimentTrend {
            first_third_mean: first,
            last_third_mean: last,
            delta,
            direction,
        });
    }
}
