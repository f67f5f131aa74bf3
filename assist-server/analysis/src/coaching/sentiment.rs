//! A small lexicon-based sentiment score for customer segments.
//!
//! Phrases (Chinese and English) are matched with one Aho-Corasick automaton
//! (leftmost-longest, ASCII case-insensitive; English phrases only at word
//! boundaries). A phrase preceded by a negation within three characters
//! (不/没/别) or two words (not, n't, never, no) counts for the other side:
//! "不太满意" and "not happy" are negative, "not bad" positive. The score is
//! `(positive − negative) / (positive + negative)`, 0 when nothing matched.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::{Deserialize, Serialize};

const POSITIVE: &[&str] = &[
    "满意",
    "不错",
    "挺好",
    "很好",
    "太好了",
    "非常好",
    "感谢",
    "谢谢",
    "喜欢",
    "放心",
    "没问题",
    "合适",
    "划算",
    "实惠",
    "靠谱",
    "专业",
    "方便",
    "期待",
    "同意",
    "好啊",
    "行啊",
    "可以啊",
    "认可",
    "开心",
    "高兴",
    "棒",
    "值得",
    "周到",
    "及时",
    "清楚了",
    "明白了",
    "感兴趣",
    "有兴趣",
    "great",
    "good",
    "thanks",
    "thank you",
    "perfect",
    "excellent",
    "sounds good",
    "happy",
    "interested",
    "love",
    "appreciate",
    "awesome",
    "helpful",
    "fantastic",
    "wonderful",
    "nice",
    "glad",
    "agree",
    "makes sense",
    "fair enough",
];

const NEGATIVE: &[&str] = &[
    "不满意",
    "太贵",
    "贵了",
    "有点贵",
    "失望",
    "投诉",
    "生气",
    "气人",
    "太麻烦",
    "很麻烦",
    "垃圾",
    "太差",
    "很差",
    "差劲",
    "退款",
    "退货",
    "骗子",
    "骗人",
    "不行",
    "算了",
    "没兴趣",
    "不感兴趣",
    "不需要",
    "不想要",
    "烦",
    "太慢",
    "糟糕",
    "不靠谱",
    "坑人",
    "忽悠",
    "后悔",
    "担心",
    "不放心",
    "不合适",
    "不划算",
    "不好",
    "不舒服",
    "拒绝",
    "取消",
    "别打了",
    "不要再打",
    "骚扰",
    "expensive",
    "disappointed",
    "disappointing",
    "angry",
    "complaint",
    "complain",
    "cancel",
    "refund",
    "terrible",
    "awful",
    "bad",
    "not interested",
    "waste",
    "frustrated",
    "frustrating",
    "annoyed",
    "annoying",
    "unhappy",
    "worried",
    "concerned",
    "confusing",
    "too slow",
    "ridiculous",
    "horrible",
    "worst",
    "useless",
    "scam",
    "unacceptable",
    "stop calling",
    "problem",
];

const NEGATORS_ZH: &[char] = &['不', '没', '别', '未'];
const NEGATORS_EN: &[&str] = &[
    "not", "never", "no", "don't", "didn't", "isn't", "wasn't", "aren't", "won't", "doesn't",
];

struct Lexicon {
    automaton: AhoCorasick,
    /// Positive (true) or negative (false), per pattern.
    positive: Vec<bool>,
    /// Pattern is ASCII (needs word boundaries).
    ascii: Vec<bool>,
}

static LEXICON: LazyLock<Lexicon> = LazyLock::new(|| {
    let patterns: Vec<&str> = POSITIVE.iter().chain(NEGATIVE).copied().collect();
    Lexicon {
        automaton: AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(true)
            .build(&patterns)
            .expect("sentiment lexicon"),
        positive: (0..patterns.len()).map(|i| i < POSITIVE.len()).collect(),
        ascii: patterns.iter().map(|p| p.is_ascii()).collect(),
    }
});

/// Counts and score of one text.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Sentiment {
    pub positive: usize,
    pub negative: usize,
    /// −1 (all negative) … 1 (all positive); 0 when nothing matched.
    pub score: f64,
}

fn negated(text: &str, start: usize, ascii: bool) -> bool {
    let before = &text[..start];
    if ascii {
        let words: Vec<String> = before
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '\''))
            .filter(|w| !w.is_empty())
            .rev()
            .take(2)
            .map(|w| w.to_ascii_lowercase())
            .collect();
        words
            .iter()
            .any(|w| NEGATORS_EN.contains(&w.as_str()) || w.ends_with("n't"))
    } else {
        before
            .chars()
            .rev()
            .take(3)
            .any(|c| NEGATORS_ZH.contains(&c))
    }
}

/// Score `text`.
pub fn score(text: &str) -> Sentiment {
    let lex = &*LEXICON;
    let mut s = Sentiment::default();
    for m in lex.automaton.find_iter(text) {
        let i = m.pattern().as_usize();
        if lex.ascii[i] {
            let before = text[..m.start()].chars().next_back();
            let after = text[m.end()..].chars().next();
            if before.is_some_and(|c| c.is_ascii_alphanumeric())
                || after.is_some_and(|c| c.is_ascii_alphanumeric())
            {
                continue;
            }
        }
        let positive = lex.positive[i] != negated(text, m.start(), lex.ascii[i]);
        if positive {
            s.positive += 1;
        } else {
            s.negative += 1;
        }
    }
    let total = s.positive + s.negative;
    if total > 0 {
        s.score = (s.positive as f64 - s.negative as f64) / total as f64;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores() {
        for (text, pos, neg) in [
            ("", 0, 0),
            ("嗯嗯", 0, 0),
            ("挺好的，谢谢", 2, 0),
            ("太贵了，不满意", 0, 2),
            ("不太满意", 0, 1),
            ("我不是很满意", 0, 1),
            ("没问题", 1, 0),
            ("这个不错", 1, 0),
            ("That sounds good, thanks!", 2, 0),
            ("It's not bad", 1, 0),
            ("I'm not happy with this", 0, 1),
            ("Too expensive, I want a refund", 0, 2),
            ("badge number", 0, 0),
            ("GREAT", 1, 0),
        ] {
            let s = score(text);
            assert_eq!((s.positive, s.negative), (pos, neg), "{text:?}");
        }
        assert_eq!(score("挺好的").score, 1.0);
        assert_eq!(score("太贵").score, -1.0);
        assert_eq!(score("挺好的，就是太贵").score, 0.0);
    }
}
