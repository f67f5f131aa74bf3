//! The trainer-curated lexicon, compiled: phrases in one Aho-Corasick
//! automaton over normalised text, regular expressions, and the semantic
//! exemplars (embedded separately, see [`super::semantic`]).

use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use assist_knowledge_base::{
    Language, LexiconContent, MatchMode, RiskAction, RiskCategory, Severity,
};
use regex::{Regex, RegexBuilder};

use super::normalize::{Normalized, View, is_latin_alnum, normalize, word_bounded};
use super::{Candidate, Detector, RiskError};

/// Largest compiled size of one lexicon regex (the `regex` default is 10 MiB).
const REGEX_SIZE_LIMIT: usize = 2 * 1024 * 1024;

/// What every detector needs to know about an entry.
#[derive(Debug, Clone)]
pub(crate) struct EntryMeta {
    pub id: Arc<str>,
    pub category: RiskCategory,
    pub severity: Severity,
    pub action: RiskAction,
    pub language: Language,
    pub pattern: String,
}

#[derive(Debug)]
struct CompiledRegex {
    entry: usize,
    regex: Regex,
    view: View,
}

#[derive(Debug)]
pub(crate) struct Lexicon {
    pub entries: Vec<EntryMeta>,
    phrases: Option<AhoCorasick>,
    /// Per automaton pattern: the entries with that normalised phrase, and
    /// whether the phrase starts / ends with a Latin letter or digit.
    phrase_entries: Vec<(Vec<usize>, bool, bool)>,
    regexes: Vec<CompiledRegex>,
    /// Entries with `match_mode: semantic`, in the order of their vectors.
    pub exemplars: Vec<usize>,
}

impl Lexicon {
    pub fn build(entries: Vec<(String, LexiconContent)>) -> Result<Self, RiskError> {
        let mut metas = Vec::with_capacity(entries.len());
        let mut keys: Vec<String> = Vec::new();
        let mut phrase_entries: Vec<(Vec<usize>, bool, bool)> = Vec::new();
        let mut regexes = Vec::new();
        let mut exemplars = Vec::new();
        for (idx, (id, c)) in entries.into_iter().enumerate() {
            match c.match_mode {
                MatchMode::Phrase => {
                    let key = normalize(&c.pattern, View::Compact).as_str().to_string();
                    if key.is_empty() {
                        return Err(RiskError::EmptyPhrase { entry: id });
                    }
                    if let Some(k) = keys.iter().position(|k| *k == key) {
                        phrase_entries[k].0.push(idx);
                    } else {
                        let first = key.chars().next().is_some_and(is_latin_alnum);
                        let last = key.chars().next_back().is_some_and(is_latin_alnum);
                        keys.push(key);
                        phrase_entries.push((vec![idx], first, last));
                    }
                }
                MatchMode::Regex => {
                    let regex = RegexBuilder::new(&c.pattern)
                        .case_insensitive(true)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| RiskError::InvalidRegex {
                            entry: id.clone(),
                            message: e.to_string(),
                        })?;
                    let view = match c.language {
                        Language::Zh => View::Compact,
                        Language::En => View::Spaced,
                    };
                    regexes.push(CompiledRegex {
                        entry: idx,
                        regex,
                        view,
                    });
                }
                MatchMode::Semantic => exemplars.push(idx),
            }
            metas.push(EntryMeta {
                id: id.into(),
                category: c.category,
                severity: c.severity,
                action: c.action,
                language: c.language,
                pattern: c.pattern,
            });
        }
        let phrases = if keys.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&keys)
                    .map_err(|e| RiskError::Automaton(e.to_string()))?,
            )
        };
        Ok(Lexicon {
            entries: metas,
            phrases,
            phrase_entries,
            regexes,
            exemplars,
        })
    }

    /// Phrase and regex hits in one text.
    pub fn find(
        &self,
        original: &[char],
        compact: &Normalized,
        spaced: &Normalized,
        out: &mut Vec<Candidate>,
    ) {
        if let Some(ac) = &self.phrases {
            for m in ac.find_overlapping_iter(compact.as_str()) {
                let (entries, latin_start, latin_end) =
                    &self.phrase_entries[m.pattern().as_usize()];
                let (start, end) = compact.original_span(m.start(), m.end());
                if !word_bounded(original, start, end, *latin_start, *latin_end) {
                    continue;
                }
                for &e in entries {
                    out.push(self.candidate(e, Detector::Lexicon, 0.95, start, end));
                }
            }
        }
        for r in &self.regexes {
            let view = match r.view {
                View::Compact => compact,
                View::Spaced => spaced,
            };
            for m in r.regex.find_iter(view.as_str()) {
                if m.start() == m.end() {
                    continue;
                }
                let (start, end) = view.original_span(m.start(), m.end());
                out.push(self.candidate(r.entry, Detector::Lexicon, 0.9, start, end));
            }
        }
    }

    pub fn candidate(
        &self,
        entry: usize,
        detector: Detector,
        confidence: f32,
        start: usize,
        end: usize,
    ) -> Candidate {
        let e = &self.entries[entry];
        Candidate {
            category: e.category,
            severity: e.severity,
            action: e.action,
            detector,
            rule: e.id.clone(),
            confidence,
            start,
            end,
            customer_exempt: false,
        }
    }
}
