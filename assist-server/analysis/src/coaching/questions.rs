//! Whether a sentence is a question (see the [module docs](super)).

use crate::text::{Lang, detect_lang};

const ZH_A_NOT_A: &[&str] = &[
    "是不是",
    "有没有",
    "能不能",
    "可不可以",
    "要不要",
    "对不对",
    "好不好",
    "行不行",
    "会不会",
    "需不需要",
    "用不用",
    "想不想",
    "愿不愿意",
];
const ZH_QUESTION_WORDS: &[&str] = &[
    "为什么",
    "什么",
    "怎么",
    "多少",
    "哪",
    "几点",
    "几号",
    "几个",
    "几天",
    "多久",
    "多长",
    "啥",
    "咋",
];
const EN_WH: &[&str] = &[
    "what", "why", "how", "when", "where", "who", "whom", "which", "whose",
];
const EN_AUX: &[&str] = &[
    "do",
    "does",
    "did",
    "is",
    "are",
    "was",
    "were",
    "can",
    "could",
    "would",
    "will",
    "should",
    "have",
    "has",
    "had",
    "may",
    "shall",
    "might",
    "am",
    "isn't",
    "aren't",
    "don't",
    "doesn't",
    "didn't",
    "won't",
    "wouldn't",
    "can't",
    "couldn't",
    "shouldn't",
];
const EN_SUBJECTS: &[&str] = &[
    "you",
    "i",
    "we",
    "they",
    "he",
    "she",
    "it",
    "there",
    "this",
    "that",
    "these",
    "those",
    "the",
    "your",
    "anyone",
    "anybody",
    "someone",
    "everything",
    "everyone",
];

/// Whether one sentence is a question (see the module docs).
pub fn is_question(sentence: &str) -> bool {
    let t = sentence.trim();
    if t.ends_with(['？', '?']) {
        return true;
    }
    match detect_lang(t) {
        Lang::Zh => {
            let core =
                t.trim_end_matches(|c: char| c.is_whitespace() || "，,。.！!、~～…".contains(c));
            if core.ends_with(['吗', '么', '呢'])
                && !core.ends_with("什么")
                && !core.ends_with("怎么")
            {
                return true;
            }
            if ZH_A_NOT_A.iter().any(|w| core.contains(w)) {
                return true;
            }
            ZH_QUESTION_WORDS.iter().any(|w| {
                core.match_indices(w).any(|(i, _)| {
                    let before = core[..i].chars().next_back();
                    let after = &core[i + w.len()..];
                    !before.is_some_and(|c| "没不".contains(c))
                        && !after.starts_with(['都', '也'])
                        && !core[..i].ends_with("不知道")
                })
            })
        }
        Lang::En => {
            let words: Vec<String> = t
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '\'' || c == '’'))
                .filter(|w| !w.is_empty())
                .map(|w| w.to_ascii_lowercase().replace('’', "'"))
                .skip_while(|w| {
                    [
                        "so", "and", "but", "ok", "okay", "well", "um", "uh", "then", "also",
                    ]
                    .contains(&w.as_str())
                })
                .take(2)
                .collect();
            match words.as_slice() {
                [first, ..] if EN_WH.contains(&first.as_str()) => true,
                [first, second] => {
                    EN_AUX.contains(&first.as_str()) && EN_SUBJECTS.contains(&second.as_str())
                }
                _ => false,
            }
        }
    }
}
