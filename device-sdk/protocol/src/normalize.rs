//! Text normalisation for risk matching, with a map back to the original.
//!
//! Both the message and every lexicon phrase go through the same steps, so a
//! phrase written once matches its evasive spellings:
//!
//! 1. Traditional → Simplified (`zhconv`), NFKC (full-width → half-width,
//!    circled digits → digits), lower case.
//! 2. Separators (spaces, punctuation, symbols, emoji, zero-width characters)
//!    are dropped ([`View::Compact`]) or collapsed to one space
//!    ([`View::Spaced`], for English regexes that need word boundaries).
//!    `+` before a letter reads as 加 ("+v", "+我").
//! 3. Runs of five or more digits and Chinese numerals (一三八…, 幺, 两, 壹…)
//!    become ASCII digits; shorter runs stay words (一定, 三四个).
//! 4. Homophone and pinyin evasions become their canonical form (v信, vx,
//!    wx, 薇信, 威信 → 微信; 扣扣, 企鹅号 → qq; fandian → 返点 …).
//!
//! Every normalised character keeps the range of original characters it came
//! from, so a match on the normalised text maps back to character offsets in
//! the text the user wrote. The substitution table and the numeral rule are
//! hand-written: no crate covers Chinese chat evasions.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};
use unicode_normalization::UnicodeNormalization;

/// How separators are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Separators removed: "加 我 v 信" → "加我微信". Phrases and Chinese regexes.
    Compact,
    /// Separators collapsed to one space: English regexes with `\b`.
    Spaced,
}

/// A normalised text and where each of its characters came from.
#[derive(Debug, Clone)]
pub struct Normalized {
    text: String,
    /// Per normalised char: `[start, end)` in original chars.
    spans: Vec<(usize, usize)>,
    /// Byte offset of each normalised char, plus `text.len()` at the end.
    bytes: Vec<usize>,
}

impl Normalized {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Number of normalised characters.
    pub fn char_len(&self) -> usize {
        self.spans.len()
    }

    /// Index of the normalised char starting at byte `b` (or the one containing it).
    pub fn char_at_byte(&self, b: usize) -> usize {
        match self.bytes.binary_search(&b) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        }
    }

    /// Byte offset of normalised char `i` (`text.len()` for `i == char_len()`).
    pub fn byte_of_char(&self, i: usize) -> usize {
        self.bytes[i.min(self.spans.len())]
    }

    /// Original char range of the normalised byte range `[start, end)`.
    pub fn original_span(&self, start: usize, end: usize) -> (usize, usize) {
        let a = self.char_at_byte(start);
        let b = self.char_at_byte(end.max(start + 1) - 1);
        (self.spans[a].0, self.spans[b.max(a)].1)
    }

    /// Original char range of normalised char `i`.
    pub fn span_of_char(&self, i: usize) -> (usize, usize) {
        self.spans[i]
    }

    /// The normalised char index whose original range starts at or after
    /// original char `orig` (`char_len()` if none).
    pub fn char_from_original(&self, orig: usize) -> usize {
        self.spans.partition_point(|s| s.0 < orig)
    }
}

/// Canonical forms of common evasions, applied after steps 1–3 (keys are
/// already lower-case and Simplified).
const SUBSTITUTIONS: &[(&str, &str)] = &[
    // WeChat
    ("v信", "微信"),
    ("v芯", "微信"),
    ("vx", "微信"),
    ("wx", "微信"),
    ("weixin", "微信"),
    ("wei信", "微信"),
    ("wechat", "微信"),
    ("vchat", "微信"),
    ("微x", "微信"),
    ("薇信", "微信"),
    ("威信", "微信"),
    ("维信", "微信"),
    ("徽信", "微信"),
    ("卫信", "微信"),
    ("危信", "微信"),
    ("围信", "微信"),
    ("加v", "加微信"),
    // QQ
    ("扣扣", "qq"),
    ("抠抠", "qq"),
    ("企鹅号", "qq号"),
    // Alipay
    ("zfb", "支付宝"),
    ("alipay", "支付宝"),
    ("吱付宝", "支付宝"),
    ("支fu宝", "支付宝"),
    // Pinyin and homophones of lexicon words
    ("fandian", "返点"),
    ("反点", "返点"),
    ("huikou", "回扣"),
    ("sixia", "私下"),
    ("feidan", "飞单"),
    ("飞蛋", "飞单"),
    ("hongbao", "红包"),
    ("zhuanzhang", "转账"),
    ("shoukuanma", "收款码"),
];

static SUBST: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(SUBSTITUTIONS.iter().map(|(k, _)| *k))
        .expect("the substitution table is a valid automaton")
});

fn numeral_digit(c: char) -> Option<char> {
    Some(match c {
        '0'..='9' => c,
        '零' | '〇' => '0',
        '一' | '幺' | '壹' => '1',
        '二' | '两' | '贰' => '2',
        '三' | '叁' => '3',
        '四' | '肆' => '4',
        '五' | '伍' => '5',
        '六' | '陆' => '6',
        '七' | '柒' => '7',
        '八' | '捌' => '8',
        '九' | '玖' => '9',
        _ => return None,
    })
}

/// Shortest run of digits / Chinese numerals that is read as a number.
const NUMERAL_RUN: usize = 5;

fn is_zero_width(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{FE00}'..='\u{FE0F}'
    )
}

/// Traditional → Simplified, one output char per input char.
fn simplified_chars(text: &str) -> Vec<char> {
    let orig: Vec<char> = text.chars().collect();
    if text.is_ascii() {
        return orig;
    }
    let whole: Vec<char> = zhconv::zhconv(text, zhconv::Variant::ZhHans)
        .chars()
        .collect();
    if whole.len() == orig.len() {
        return whole;
    }
    // The phrase table changed the length somewhere: convert char by char.
    orig.iter()
        .map(|c| {
            if c.is_ascii() {
                return *c;
            }
            let mut buf = [0u8; 4];
            let s = zhconv::zhconv(c.encode_utf8(&mut buf), zhconv::Variant::ZhHans);
            let mut it = s.chars();
            match (it.next(), it.next()) {
                (Some(one), None) => one,
                _ => *c,
            }
        })
        .collect()
}

/// Normalise `text` (see the [module docs](self)).
pub fn normalize(text: &str, view: View) -> Normalized {
    let chars = simplified_chars(text);
    // Step 1–2.
    let mut out: Vec<(char, usize, usize)> = Vec::with_capacity(chars.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == '+' || c == '＋' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if next.is_some_and(|n| n.is_alphabetic()) {
                out.push(('加', i, i + 1));
                continue;
            }
        }
        if is_zero_width(c) {
            continue;
        }
        for k in std::iter::once(c).nfkc() {
            for ch in k.to_lowercase() {
                if ch.is_alphanumeric() {
                    out.push((ch, i, i + 1));
                } else if view == View::Spaced && out.last().is_some_and(|l| l.0 != ' ') {
                    out.push((' ', i, i + 1));
                }
            }
        }
    }
    if out.last().is_some_and(|l| l.0 == ' ') {
        out.pop();
    }
    // Step 3: numeral runs (spaces inside a run are allowed in the spaced view).
    let mut i = 0;
    while i < out.len() {
        if numeral_digit(out[i].0).is_none() {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut count = 0;
        let mut last = i;
        while j < out.len() {
            if numeral_digit(out[j].0).is_some() {
                count += 1;
                last = j;
            } else if out[j].0 != ' ' {
                break;
            }
            j += 1;
        }
        if count >= NUMERAL_RUN {
            for item in &mut out[i..=last] {
                if let Some(d) = numeral_digit(item.0) {
                    item.0 = d;
                }
            }
        }
        i = last + 1;
    }
    // Step 4: substitutions.
    let staged: String = out.iter().map(|c| c.0).collect();
    let mut byte_to_idx = Vec::with_capacity(staged.len() + 1);
    for (idx, (_, c)) in staged.char_indices().enumerate() {
        byte_to_idx.extend(std::iter::repeat_n(idx, c.len_utf8()));
    }
    byte_to_idx.push(out.len());
    let mut text = String::with_capacity(staged.len());
    let mut spans = Vec::with_capacity(out.len());
    let mut bytes = Vec::with_capacity(out.len() + 1);
    let mut push = |ch: char, span: (usize, usize), text: &mut String| {
        bytes.push(text.len());
        text.push(ch);
        spans.push(span);
    };
    let mut pos = 0; // index into `out`
    for m in SUBST.find_iter(&staged) {
        let (a, b) = (byte_to_idx[m.start()], byte_to_idx[m.end()]);
        while pos < a {
            push(out[pos].0, (out[pos].1, out[pos].2), &mut text);
            pos += 1;
        }
        let span = (out[a].1, out[b - 1].2);
        for ch in SUBSTITUTIONS[m.pattern().as_usize()].1.chars() {
            push(ch, span, &mut text);
        }
        pos = b;
    }
    while pos < out.len() {
        push(out[pos].0, (out[pos].1, out[pos].2), &mut text);
        pos += 1;
    }
    bytes.push(text.len());
    Normalized { text, spans, bytes }
}

/// The original text of char range `[start, end)`.
pub fn char_slice(text: &str, start: usize, end: usize) -> String {
    text.chars()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect()
}

/// Whether `c` is an ASCII letter or digit (for word boundaries of Latin phrases).
pub fn is_latin_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// Inflections allowed after a Latin phrase ("kickback" matches "kickbacks").
pub const LATIN_SUFFIXES: &[&str] = &["s", "es", "ed", "d", "ing"];

/// Whether a phrase match at `[start, end)` of `original` (characters)
/// respects word boundaries: a phrase starting (`latin_start`) or ending
/// (`latin_end`) with a Latin letter or digit must not start inside a word,
/// and may run on only into one of [`LATIN_SUFFIXES`]. The server's lexicon
/// and the phone's guard both decide phrase matches with this.
pub fn word_bounded(
    original: &[char],
    start: usize,
    end: usize,
    latin_start: bool,
    latin_end: bool,
) -> bool {
    if latin_start && start > 0 && is_latin_alnum(original[start - 1]) {
        return false;
    }
    if latin_end && end < original.len() && is_latin_alnum(original[end]) {
        let tail: String = original[end..]
            .iter()
            .take_while(|c| is_latin_alnum(**c))
            .collect::<String>()
            .to_ascii_lowercase();
        return LATIN_SUFFIXES.contains(&tail.as_str());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        normalize(s, View::Compact).as_str().to_string()
    }

    #[test]
    fn evasions_become_canonical() {
        assert_eq!(c("加我v信"), "加我微信");
        assert_eq!(c("加 我 V X"), "加我微信");
        assert_eq!(c("加我薇信吧"), "加我微信吧");
        assert_eq!(c("+V：abc"), "加微信abc");
        assert_eq!(c("扣扣号"), "qq号");
        assert_eq!(c("企鹅号"), "qq号");
        assert_eq!(c("加我wx"), "加我微信");
        assert_eq!(c("返🔥点"), "返点");
        assert_eq!(c("私\u{200B}下"), "私下");
        assert_eq!(c("ＡＢＣ１２３"), "abc123");
        assert_eq!(c("私下交易"), "私下交易");
        assert_eq!(c("私下交易"), c("私下交易"));
        assert_eq!(c("加我微信"), c("加我微信"));
        assert_eq!(c("回扣"), c("回扣"));
        assert_eq!(c("給個回扣"), "给个回扣");
    }

    #[test]
    fn numerals_in_runs_become_digits() {
        assert_eq!(c("一三八 一二三四 五六七八"), "13812345678");
        assert_eq!(c("幺三九零零"), "13900");
        assert_eq!(c("①③⑧"), "138");
        assert_eq!(c("一定"), "一定");
        assert_eq!(c("三四个人"), "三四个人");
        assert_eq!(c("138一二三四5678"), "13812345678");
    }

    #[test]
    fn spaced_view_keeps_words() {
        let n = normalize("Pay  me, DIRECTLY!", View::Spaced);
        assert_eq!(n.as_str(), "pay me directly");
    }

    #[test]
    fn spans_point_into_the_original() {
        let text = "您好😀，加 我 V X：abc";
        let n = normalize(text, View::Compact);
        let s = n.as_str();
        let b = s.find("微信").unwrap();
        let (start, end) = n.original_span(b, b + "微信".len());
        assert_eq!(char_slice(text, start, end), "V X");
        let b = s.find("加我").unwrap();
        let (start, end) = n.original_span(b, b + "加我".len());
        assert_eq!(char_slice(text, start, end), "加 我");
    }

    #[test]
    fn traditional_length_is_kept() {
        let text = "我們私下交易，別讓公司知道";
        let n = normalize(text, View::Compact);
        assert_eq!(n.as_str(), "我们私下交易别让公司知道");
        let b = n.as_str().find("别让").unwrap();
        let (start, _) = n.original_span(b, b + 6);
        assert_eq!(char_slice(text, start, start + 2), "別讓");
    }
}
