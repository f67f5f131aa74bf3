//! Evidence must be verbatim: quotes are located in the transcript or dropped.

use super::*;

pub(crate) fn is_noise(c: char) -> bool {
    c.is_whitespace() || c.is_ascii_punctuation() || "，。！？、；：“”‘’（）《》…—·".contains(c)
}

/// The transcript's exact words for `quote`: itself if verbatim, else the
/// span that matches once spaces and punctuation are ignored, else `None`.
pub fn locate_quote(turns: &[Turn], quote: &str) -> Option<String> {
    let quote = quote.trim();
    if quote.is_empty() {
        return None;
    }
    if turns.iter().any(|t| t.text.contains(quote)) {
        return Some(quote.to_string());
    }
    let want: Vec<char> = quote
        .chars()
        .filter(|c| !is_noise(*c))
        .flat_map(char::to_lowercase)
        .collect();
    if want.len() < 2 {
        return None;
    }
    for t in turns {
        // Kept characters of the line with their byte offsets.
        let kept: Vec<(usize, char)> = t
            .text
            .char_indices()
            .filter(|(_, c)| !is_noise(*c))
            .flat_map(|(i, c)| c.to_lowercase().map(move |l| (i, l)))
            .collect();
        if kept.len() < want.len() {
            continue;
        }
        for s in 0..=kept.len() - want.len() {
            if kept[s..s + want.len()]
                .iter()
                .map(|(_, c)| *c)
                .eq(want.iter().copied())
            {
                let from = kept[s].0;
                let (last_i, _) = kept[s + want.len() - 1];
                let to = last_i
                    + t.text[last_i..]
                        .chars()
                        .next()
                        .map(char::len_utf8)
                        .unwrap_or(1);
                return Some(t.text[from..to].to_string());
            }
        }
    }
    None
}

/// Replace quotes by the transcript's exact words; drop what is not there.
/// Returns how many quotes were dropped.
pub fn verify_quotes(a: &mut LlmAnalysis, turns: &[Turn]) -> usize {
    let mut dropped = 0;
    for task in &mut a.tasks {
        if let Some(q) = task.source_quote.take() {
            match locate_quote(turns, &q) {
                Some(exact) => task.source_quote = Some(exact),
                None => dropped += 1,
            }
        }
        if let Some(d) = task.due_text.take() {
            task.due_text = locate_quote(turns, &d).or(Some(d));
        }
    }
    let before = a.risk_tags.len();
    a.risk_tags
        .retain_mut(|r| match locate_quote(turns, &r.evidence_quote) {
            Some(exact) => {
                r.evidence_quote = exact;
                true
            }
            None => false,
        });
    dropped + (before - a.risk_tags.len())
}
