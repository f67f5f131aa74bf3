//! Small text helpers shared by the extractors: character offsets, script
//! detection and sentence / clause splitting that keeps offsets.

use serde::{Deserialize, Serialize};

/// The language of a piece of text, as far as the extractors care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    /// Chinese (any text with more CJK characters than Latin words).
    Zh,
    /// English (everything else).
    En,
}

/// Whether `c` is a CJK ideograph (the basic block, extension A and the
/// compatibility block).
pub fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}' | '\u{f900}'..='\u{faff}')
}

/// Number of CJK ideographs in `text`.
pub fn cjk_chars(text: &str) -> usize {
    text.chars().filter(|&c| is_cjk(c)).count()
}

/// Number of Latin words (runs of ASCII letters, digits and apostrophes that
/// contain a letter) in `text`.
pub fn latin_words(text: &str) -> usize {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '\'' || c == '’'))
        .filter(|w| w.chars().any(|c| c.is_ascii_alphabetic()))
        .count()
}

/// Chinese when the text has at least one CJK character and no more Latin
/// words than CJK characters; English otherwise.
pub fn detect_lang(text: &str) -> Lang {
    let cjk = cjk_chars(text);
    if cjk > 0 && cjk >= latin_words(text) {
        Lang::Zh
    } else {
        Lang::En
    }
}

/// Character offset of byte offset `byte` in `text`.
pub fn char_offset(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

/// Byte ranges of the sentences of `text`: split after 。！？!?；; and line
/// breaks, and after a `.` followed by white space or the end; surrounding
/// white space is trimmed and empty pieces are dropped.
pub fn sentences(text: &str) -> Vec<(usize, usize)> {
    split(text, |c, next| {
        matches!(
            c,
            '。' | '！' | '？' | '!' | '?' | '；' | ';' | '\n' | '\r' | '…'
        ) || (c == '.' && next.is_none_or(char::is_whitespace))
    })
}

/// Byte ranges of the clauses of `text`: sentences further split at commas
/// (，, 、) and colons.
pub fn clauses(text: &str) -> Vec<(usize, usize)> {
    split(text, |c, next| {
        matches!(
            c,
            '。' | '！'
                | '？'
                | '!'
                | '?'
                | '；'
                | ';'
                | '\n'
                | '\r'
                | '…'
                | '，'
                | ','
                | '、'
                | '：'
        ) || (c == '.' && next.is_none_or(char::is_whitespace))
    })
}

fn split(text: &str, is_end: impl Fn(char, Option<char>) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        if is_end(c, next) {
            push_trimmed(text, start, i + c.len_utf8(), &mut out);
            start = i + c.len_utf8();
        }
    }
    push_trimmed(text, start, text.len(), &mut out);
    out
}

fn push_trimmed(text: &str, start: usize, end: usize, out: &mut Vec<(usize, usize)>) {
    let piece = &text[start..end];
    let lead = piece.len() - piece.trim_start().len();
    let trail = piece.len() - piece.trim_end().len();
    if lead + trail < piece.len() {
        out.push((start + lead, end - trail));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_detection() {
        for (text, lang) in [
            ("我明天发您", Lang::Zh),
            ("I'll send it", Lang::En),
            ("这个 PDF 我发您", Lang::Zh),
            ("OK", Lang::En),
            ("", Lang::En),
            ("send the 报价 to the customer tomorrow", Lang::En),
        ] {
            assert_eq!(detect_lang(text), lang, "{text}");
        }
    }

    #[test]
    fn sentences_keep_offsets_and_trim() {
        let text = " 好的。我明天发您！ Thanks. 3.5 percent?";
        let got: Vec<&str> = sentences(text)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect();
        assert_eq!(got, ["好的。", "我明天发您！", "Thanks.", "3.5 percent?"]);
        assert!(sentences("").is_empty());
        assert!(sentences("  。 ").len() == 1);
    }

    #[test]
    fn clauses_split_at_commas() {
        let text = "好的，我明天把报价发您，您看可以吗？";
        let got: Vec<&str> = clauses(text)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect();
        assert_eq!(got, ["好的，", "我明天把报价发您，", "您看可以吗？"]);
    }

    #[test]
    fn counts() {
        assert_eq!(cjk_chars("我们 OK 吗"), 3);
        assert_eq!(latin_words("I'll send 3 files, OK?"), 4);
        assert_eq!(char_offset("我们ab", "我们".len()), 2);
    }
}
