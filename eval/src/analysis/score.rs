//! Scoring of `assist-eval analysis`, as `eval/data/analysis/README.md`
//! ("Scoring") defines it: one-to-one task matching on owner + title
//! similarity (character-bigram Dice ≥ 0.5, or overlapping source quotes),
//! strict (same due) and lenient; due-date agreement; micro-averaged
//! precision / recall / F1; verbatim evidence.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::{Offset, TimeZone};
use serde::Serialize;

/// True / false positives and false negatives, micro-averaged by adding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Prf {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

impl Prf {
    pub fn add(&mut self, o: Prf) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
    }

    /// 1 when nothing was predicted (no false alarm was possible).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// 1 when there was nothing to find.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    pub fn f1(&self) -> f64 {
        let d = 2 * self.tp + self.fp + self.fn_;
        ratio(2 * self.tp, d)
    }
}

/// `a / b`, 1 for 0 / 0.
pub fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// Lower case, punctuation and white space removed (the same rule for
/// Chinese and English): what titles and quotes are compared on.
pub fn normalise(s: &str) -> Vec<char> {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Character bigrams, sorted (a multiset). A one-character text is its
/// own single "bigram" so that "发" still compares with "发".
fn bigrams(chars: &[char]) -> Vec<(char, char)> {
    let mut b: Vec<(char, char)> = if chars.len() == 1 {
        vec![(chars[0], '\0')]
    } else {
        chars.windows(2).map(|w| (w[0], w[1])).collect()
    };
    b.sort_unstable();
    b
}

/// Size of the multiset intersection of two sorted lists.
fn common<T: Ord>(a: &[T], b: &[T]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// Dice coefficient of the character bigrams of the normalised texts.
pub fn dice(a: &str, b: &str) -> f64 {
    let (a, b) = (bigrams(&normalise(a)), bigrams(&normalise(b)));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    2.0 * common(&a, &b) as f64 / (a.len() + b.len()) as f64
}

/// How much two source quotes overlap, 0–1: 1 when one contains the other
/// (after normalising), else the share of the shorter one's bigrams that the
/// other has. They "overlap" at ≥ 0.5.
pub fn quote_overlap(a: &str, b: &str) -> f64 {
    let (na, nb) = (normalise(a), normalise(b));
    if na.is_empty() || nb.is_empty() {
        return 0.0;
    }
    let (short, long) = if na.len() <= nb.len() {
        (&na, &nb)
    } else {
        (&nb, &na)
    };
    if long.windows(short.len()).any(|w| w == short.as_slice()) {
        return 1.0;
    }
    let (bs, bl) = (bigrams(short), bigrams(long));
    common(&bs, &bl) as f64 / bs.len() as f64
}

/// A follow-up task, predicted or referenced, as scoring sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredTask {
    pub title: String,
    pub owner: String,
    pub due: Due,
    pub source_quote: Option<String>,
}

/// A due: a reference's day or minute, or a prediction's instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// A day (a reference `YYYY-MM-DD`).
    Day(Date),
    /// An instant, milliseconds (a reference timestamp or any prediction).
    At(i64),
    None,
}

impl Due {
    /// A reference `due`: `YYYY-MM-DD`, an RFC 3339 timestamp, or null.
    pub fn parse_reference(due: Option<&str>) -> anyhow::Result<Due> {
        let Some(s) = due.map(str::trim) else {
            return Ok(Due::None);
        };
        if s.len() == 10 {
            return Ok(Due::Day(s.parse()?));
        }
        Ok(Due::At(s.parse::<Timestamp>()?.as_millisecond()))
    }

    pub fn from_ms(ms: Option<i64>) -> Due {
        ms.map(Due::At).unwrap_or(Due::None)
    }
}

/// Whether a predicted due meets the reference's: a day by any time on that
/// day in the conversation's offset, a timestamp by the same minute, null by
/// null.
pub fn due_met(reference: Due, predicted: Due, offset_s: i32) -> bool {
    match (reference, predicted) {
        (Due::None, Due::None) => true,
        (Due::Day(d), Due::At(ms)) => local_date(ms, offset_s) == Some(d),
        (Due::At(r), Due::At(p)) => r.div_euclid(60_000) == p.div_euclid(60_000),
        (Due::Day(a), Due::Day(b)) => a == b,
        _ => false,
    }
}

/// The day of `ms` at a fixed offset.
pub fn local_date(ms: i64, offset_s: i32) -> Option<Date> {
    let ts = Timestamp::from_millisecond(ms).ok()?;
    let tz = TimeZone::fixed(Offset::from_seconds(offset_s).ok()?);
    Some(ts.to_zoned(tz).date())
}

/// The similarity used to rank a candidate pair, or `None` when the pair
/// cannot match: owners must be equal and the titles similar (Dice ≥ 0.5) or
/// the source quotes overlapping (≥ 0.5).
pub fn pair_similarity(p: &ScoredTask, r: &ScoredTask) -> Option<f64> {
    if p.owner != r.owner {
        return None;
    }
    let d = dice(&p.title, &r.title);
    let q = match (&p.source_quote, &r.source_quote) {
        (Some(a), Some(b)) => quote_overlap(a, b),
        _ => 0.0,
    };
    (d >= 0.5 || q >= 0.5).then_some(d.max(q))
}

/// One-to-one matching, highest similarity first. With `strict` the pair must
/// also have the same due. Returns the matched (predicted, reference) indices.
pub fn match_tasks(
    predicted: &[ScoredTask],
    reference: &[ScoredTask],
    strict: bool,
    offset_s: i32,
) -> Vec<(usize, usize)> {
    let mut cands = Vec::new();
    for (i, p) in predicted.iter().enumerate() {
        for (j, r) in reference.iter().enumerate() {
            if strict && !due_met(r.due, p.due, offset_s) {
                continue;
            }
            if let Some(s) = pair_similarity(p, r) {
                cands.push((s, i, j));
            }
        }
    }
    // Highest first; ties in input order so the result is deterministic.
    cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let (mut used_p, mut used_r) = (vec![false; predicted.len()], vec![false; reference.len()]);
    let mut out = Vec::new();
    for (_, i, j) in cands {
        if !used_p[i] && !used_r[j] {
            used_p[i] = true;
            used_r[j] = true;
            out.push((i, j));
        }
    }
    out.sort_unstable();
    out
}

/// Task counts of one transcript for one producer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TaskScore {
    pub strict: Prf,
    pub lenient: Prf,
    /// Lenient pairs whose due agrees / all lenient pairs.
    pub due_met: usize,
    pub due_pairs: usize,
}

impl TaskScore {
    pub fn add(&mut self, o: TaskScore) {
        self.strict.add(o.strict);
        self.lenient.add(o.lenient);
        self.due_met += o.due_met;
        self.due_pairs += o.due_pairs;
    }
}

pub fn score_tasks(predicted: &[ScoredTask], reference: &[ScoredTask], offset_s: i32) -> TaskScore {
    let prf = |n: usize| Prf {
        tp: n,
        fp: predicted.len() - n,
        fn_: reference.len() - n,
    };
    let strict = match_tasks(predicted, reference, true, offset_s);
    let lenient = match_tasks(predicted, reference, false, offset_s);
    let due_met = lenient
        .iter()
        .filter(|&&(i, j)| due_met(reference[j].due, predicted[i].due, offset_s))
        .count();
    TaskScore {
        strict: prf(strict.len()),
        lenient: prf(lenient.len()),
        due_met,
        due_pairs: lenient.len(),
    }
}

/// Whether `quote` is an exact substring of one segment's text.
pub fn verbatim(quote: &str, segments: &[&str]) -> bool {
    !quote.is_empty() && segments.iter().any(|s| s.contains(quote))
}

/// Per transcript: the set of predicted categories (each with at least one
/// verbatim evidence quote) against the reference set.
pub fn score_categories(
    predicted: &[(String, String)],
    reference: &[String],
    segments: &[&str],
) -> Prf {
    let mut pred: Vec<&str> = predicted
        .iter()
        .filter(|(_, q)| verbatim(q, segments))
        .map(|(c, _)| c.as_str())
        .collect();
    pred.sort_unstable();
    pred.dedup();
    let mut refs: Vec<&str> = reference.iter().map(String::as_str).collect();
    refs.sort_unstable();
    refs.dedup();
    let tp = pred.iter().filter(|c| refs.contains(c)).count();
    Prf {
        tp,
        fp: pred.len() - tp,
        fn_: refs.len() - tp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(title: &str, owner: &str, due: Due, quote: Option<&str>) -> ScoredTask {
        ScoredTask {
            title: title.into(),
            owner: owner.into(),
            due,
            source_quote: quote.map(Into::into),
        }
    }

    const CN: i32 = 8 * 3600;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn dice_ignores_case_punctuation_and_spaces() {
        assert_eq!(dice("发送报价", "发送报价！"), 1.0);
        assert_eq!(dice("Send the Quote", "send the quote."), 1.0);
        // 发送报价 / 发报价: bigrams {发送, 送报, 报价} vs {发报, 报价}: 2·1/5.
        assert!((dice("发送报价", "发报价") - 0.4).abs() < 1e-9);
        assert_eq!(dice("", "x"), 0.0);
        assert_eq!(dice("发", "发"), 1.0);
        // Repeated bigrams count as a multiset.
        assert!((dice("aaa", "aa") - 2.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn quotes_overlap_by_containment_or_shared_bigrams() {
        assert_eq!(
            quote_overlap("我明天上午把报价发您", "那我明天上午把报价发您邮箱"),
            1.0
        );
        assert!(quote_overlap("I'll send it tomorrow", "send it tomorrow, I'll") >= 0.5);
        assert!(quote_overlap("发报价", "打电话") < 0.5);
        assert_eq!(quote_overlap("", "x"), 0.0);
    }

    #[test]
    fn dues_compare_by_day_minute_or_null() {
        let day = Due::parse_reference(Some("2026-11-17")).unwrap();
        let at = Due::parse_reference(Some("2026-11-17T15:00:00+08:00")).unwrap();
        // The extractor's 18:00 for a date meets the day.
        assert!(due_met(day, Due::At(ms("2026-11-17T18:00:00+08:00")), CN));
        // 23:30 UTC on the 16th is the 17th in +08:00.
        assert!(due_met(day, Due::At(ms("2026-11-16T23:30:00Z")), CN));
        assert!(!due_met(day, Due::At(ms("2026-11-18T09:00:00+08:00")), CN));
        assert!(!due_met(day, Due::None, CN));
        assert!(due_met(at, Due::At(ms("2026-11-17T15:00:59+08:00")), CN));
        assert!(!due_met(at, Due::At(ms("2026-11-17T15:01:00+08:00")), CN));
        assert!(due_met(Due::None, Due::None, CN));
        assert!(!due_met(Due::None, Due::At(0), CN));
        assert!(Due::parse_reference(Some("tomorrow")).is_err());
    }

    #[test]
    fn matching_is_one_to_one_best_first_and_needs_the_owner() {
        let d = Due::At(ms("2026-11-17T18:00:00+08:00"));
        let refs = vec![
            task(
                "发送报价",
                "rep",
                Due::Day("2026-11-17".parse().unwrap()),
                None,
            ),
            task(
                "确认席位数",
                "customer",
                Due::None,
                Some("这周五之前给你个准数吧"),
            ),
        ];
        let preds = vec![
            task("发送报价单", "rep", d, None),
            task("发送报价", "rep", Due::None, None),
            // Different title, same quote: similar through the quote.
            task(
                "给准数",
                "customer",
                Due::None,
                Some("这周五之前给你个准数"),
            ),
            // Right title, wrong owner.
            task("确认席位数", "rep", Due::None, None),
        ];
        // Lenient: the exact title wins the reference task over the near one.
        assert_eq!(match_tasks(&preds, &refs, false, CN), vec![(1, 0), (2, 1)]);
        // Strict: only the prediction with the right day can take it.
        assert_eq!(match_tasks(&preds, &refs, true, CN), vec![(0, 0), (2, 1)]);
        let s = score_tasks(&preds, &refs, CN);
        assert_eq!(
            s.lenient,
            Prf {
                tp: 2,
                fp: 2,
                fn_: 0
            }
        );
        assert_eq!(
            s.strict,
            Prf {
                tp: 2,
                fp: 2,
                fn_: 0
            }
        );
        // Of the lenient pairs, (1, 0) has no due: one of two met.
        assert_eq!((s.due_met, s.due_pairs), (1, 2));
    }

    #[test]
    fn prf_is_micro_averaged() {
        let mut p = Prf {
            tp: 1,
            fp: 1,
            fn_: 0,
        };
        p.add(Prf {
            tp: 2,
            fp: 0,
            fn_: 2,
        });
        assert!((p.precision() - 0.75).abs() < 1e-9);
        assert!((p.recall() - 0.6).abs() < 1e-9);
        assert!((p.f1() - 6.0 / 9.0).abs() < 1e-9);
        assert_eq!(Prf::default().f1(), 1.0);
    }

    #[test]
    fn categories_need_verbatim_evidence_and_count_once() {
        let segs = ["你加我私人微信 返点私下给你", "好的"];
        let pred = vec![
            ("kickback".to_string(), "返点私下给你".to_string()),
            ("kickback".to_string(), "返点私下给你".to_string()),
            ("private_contact".to_string(), "加我私人微信吧".to_string()), // not verbatim
            ("abuse".to_string(), "好的".to_string()),
        ];
        let refs = vec!["kickback".to_string(), "private_contact".to_string()];
        assert_eq!(
            score_categories(&pred, &refs, &segs),
            Prf {
                tp: 1,
                fp: 1,
                fn_: 1
            }
        );
        assert!(verbatim("好的", &segs));
        assert!(!verbatim("", &segs));
        assert!(!verbatim("返点私下给你 好的", &segs));
    }
}
