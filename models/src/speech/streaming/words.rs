//! Words of a hypothesis and how two hypotheses agree: splitting a
//! segment's text into words (CJK: characters) with times, joining them
//! back, and the prefix comparisons local agreement is built on.

/// One word (or one CJK character) of a hypothesis, with absolute times.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Word {
    pub(super) text: String,
    /// Lower case, punctuation removed: what agreement compares.
    pub(super) key: String,
    pub(super) start_s: f64,
    pub(super) end_s: f64,
}

/// Number of leading words of `b` that agree with `a` (compared by key).
pub(super) fn common_prefix(a: &[Word], b: &[Word]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x.key == y.key).count()
}

/// How many leading words of `hyp` re-state `committed`: the prefix length
/// whose edit distance to `committed` is smallest (ties: closest to its length).
pub(super) fn align_prefix(committed: &[Word], hyp: &[Word]) -> usize {
    if committed.is_empty() {
        return 0;
    }
    let n = committed.len();
    // dist[j] = edit distance between committed and hyp[..j].
    let mut prev: Vec<usize> = (0..=hyp.len()).collect();
    let mut cur = vec![0; hyp.len() + 1];
    for (i, c) in committed.iter().enumerate() {
        cur[0] = i + 1;
        for (j, h) in hyp.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(c.key != h.key))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    (0..=hyp.len())
        .min_by_key(|&j| (prev[j], j.abs_diff(n)))
        .unwrap_or(0)
}

/// Punctuation that ends the word before it.
const CLOSING: &str = ",.!?;:，。！？；：、)]}”’»…";

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF)
}

/// Split a segment's text into words (CJK: characters) with times spread
/// over the segment in proportion to their length. Punctuation sticks to the
/// word before it.
pub(super) fn split_words(text: &str, start_s: f64, end_s: f64) -> Vec<Word> {
    let mut units: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c.is_whitespace() {
            if !cur.is_empty() {
                units.push(std::mem::take(&mut cur));
            }
        } else if is_cjk(c) {
            if !cur.is_empty() {
                units.push(std::mem::take(&mut cur));
            }
            units.push(c.to_string());
        } else if cur.is_empty() && CLOSING.contains(c) && !units.is_empty() {
            // Closing punctuation after a CJK character joins it.
            if let Some(u) = units.last_mut() {
                u.push(c);
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        units.push(cur);
    }
    let mut words: Vec<Word> = Vec::new();
    for u in units {
        let key: String = u
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        if key.is_empty() {
            if let Some(w) = words.last_mut() {
                w.text.push_str(&u);
            }
            continue;
        }
        words.push(Word {
            text: u,
            key,
            start_s: 0.0,
            end_s: 0.0,
        });
    }
    let total: usize = words.iter().map(|w| w.key.chars().count()).sum();
    let span = (end_s - start_s).max(0.0);
    let mut at = start_s;
    for w in &mut words {
        let share = span * w.key.chars().count() as f64 / total.max(1) as f64;
        w.start_s = at;
        at += share;
        w.end_s = at;
    }
    words
}

/// Words back into text: spaces between words, none around CJK characters.
pub(super) fn join_words(words: &[Word]) -> String {
    let mut out = String::new();
    for w in words {
        let cjk_edge = out
            .chars()
            .last()
            .is_some_and(|c| is_cjk(c) || (!c.is_alphanumeric() && !c.is_ascii()))
            || w.text.chars().next().is_some_and(is_cjk);
        if !out.is_empty() && !cjk_edge {
            out.push(' ');
        }
        out.push_str(&w.text);
    }
    out
}
