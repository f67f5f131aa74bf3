//! The risk engine: from a chat message or a transcribed utterance to risk
//! hits with evidence.
//!
//! How the pieces fit together:
//!
//! - [`normalize`] turns text into the form everything matches on
//!   (Simplified, half-width, lower case, separators and emoji dropped,
//!   Chinese numerals in number runs as digits, evasions such as "V X", 薇信,
//!   扣扣 in canonical form) and keeps a map back to the original characters.
//! - [`lexicon`] compiles the trainer-curated entries
//!   ([`LexiconContent`]): phrases into one Aho-Corasick automaton, regular
//!   expressions with `regex`, semantic exemplars for [`semantic`].
//! - [`patterns`] holds the built-in detectors (phone numbers, WeChat / QQ
//!   ids, bank cards with the Luhn check, QR codes, payments to personal
//!   accounts, red packets).
//! - [`context`] decides when a hit is not a risk: said in the negative
//!   ("我们不能私下交易") or by a speaker the category does not apply to.
//! - [`RiskEngine`] ties them together. Build it once per lexicon version
//!   ([`RiskEngine::build`]); it is immutable, `Send + Sync` and cheap to
//!   rebuild, so the server keeps it behind an `ArcSwap` or `RwLock<Arc<_>>`
//!   and swaps in a new one when the lexicon changes.
//!
//! [`RiskEngine::check`] returns every [`RiskHit`], suppressed ones included
//! (for audit and appeals); [`RiskHit::is_alert`] says which should reach a
//! manager. Offsets are character (not byte) offsets into the text as given.
//!
//! ```
//! use assist_knowledge_base::{Language, LexiconContent, MatchMode, RiskAction, RiskCategory, Severity};
//! use assist_risk::{RiskEngine, EngineOptions, Speaker, Suppression};
//!
//! let entry = LexiconContent {
//!     pattern: "加我微信".into(),
//!     category: RiskCategory::PrivateContact,
//!     severity: Severity::High,
//!     match_mode: MatchMode::Phrase,
//!     action: RiskAction::Block,
//!     language: Language::Zh,
//!     note: None,
//! };
//! let engine = RiskEngine::build([("pc-001", entry)], EngineOptions::default())?;
//!
//! let hits = engine.check("王总，加 我 V 信 聊吧", Speaker::Rep, None);
//! assert!(hits[0].is_alert());
//! assert_eq!(hits[0].category, RiskCategory::PrivateContact);
//! assert_eq!((hits[0].char_start, hits[0].char_end), (3, 10)); // "加 我 V 信"
//!
//! let hits = engine.check("公司规定不能加我微信的，请用企业微信", Speaker::Rep, None);
//! assert_eq!(hits[0].suppressed, Some(Suppression::Negated));
//! # Ok::<(), assist_risk::RiskError>(())
//! ```

pub mod context;
pub mod lexicon;
pub mod normalize;
pub mod patterns;
pub mod semantic;

use std::sync::Arc;

use assist_knowledge_base::{Language, LexiconContent, RiskAction, RiskCategory, Severity};
use serde::Serialize;

pub use context::{Speaker, Suppression};
pub use semantic::{DEFAULT_SEMANTIC_THRESHOLD, ModelEmbedder, SEMANTIC_KIND, TextEmbedder};

use context::RoleEffect;
use lexicon::Lexicon;
use normalize::{View, char_slice, normalize};
use patterns::Patterns;
use semantic::SemanticIndex;

/// Errors while building the engine or embedding exemplars.
#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    /// A regex entry does not compile (the knowledge base rejects these at
    /// save time; an engine built from unchecked input still refuses them).
    #[error("lexicon entry `{entry}`: invalid regular expression: {message}")]
    InvalidRegex { entry: String, message: String },
    /// A phrase that is only punctuation, spaces or emoji.
    #[error("lexicon entry `{entry}`: the phrase is empty after normalisation")]
    EmptyPhrase { entry: String },
    #[error("cannot build the phrase automaton: {0}")]
    Automaton(String),
    #[error("embedding the exemplars failed: {0}")]
    Embed(String),
    #[error("expected {expected} exemplar vectors, got {got}")]
    VectorCount { expected: usize, got: usize },
    #[error("exemplar vectors differ in length: {expected} and {got}")]
    Dimension { expected: usize, got: usize },
}

/// Which detector found a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// A phrase or regex entry of the lexicon.
    Lexicon,
    /// A built-in pattern detector.
    Pattern,
    /// Embedding similarity to a semantic exemplar of the lexicon.
    Semantic,
}

/// One risk event found in a text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskHit {
    pub category: RiskCategory,
    /// Severity after role context (one step lower for a customer's request).
    pub severity: Severity,
    /// From the lexicon entry; pattern and semantic hits only alert.
    pub action: RiskAction,
    pub detector: Detector,
    /// The lexicon entry id, or the pattern detector's name (`phone_number`, …).
    pub rule: String,
    /// 0–1: fixed per detector for lexicon and patterns, scaled cosine for semantic.
    pub confidence: f32,
    /// Character offsets into the original text, `[char_start, char_end)`.
    pub char_start: usize,
    pub char_end: usize,
    /// The evidence with up to [`SNIPPET_CONTEXT`] characters either side.
    pub snippet: String,
    /// Said in the negative ("不能私下交易").
    pub negated: bool,
    /// Why this hit raises no alert, if it doesn't.
    pub suppressed: Option<Suppression>,
}

impl RiskHit {
    /// Whether this hit should reach managers.
    pub fn is_alert(&self) -> bool {
        self.suppressed.is_none()
    }
}

/// Characters of context either side of the evidence in [`RiskHit::snippet`].
pub const SNIPPET_CONTEXT: usize = 12;

/// Operator settings for the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Cosine similarity for the semantic detector.
    pub semantic_threshold: f32,
    /// Phone numbers that are never private contact (hotlines, registered work phones).
    pub allowed_numbers: Vec<String>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            semantic_threshold: DEFAULT_SEMANTIC_THRESHOLD,
            allowed_numbers: Vec::new(),
        }
    }
}

/// Which detectors a check runs (the eval compares mixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detectors {
    pub lexicon: bool,
    pub patterns: bool,
    pub semantic: bool,
}

impl Detectors {
    pub const ALL: Detectors = Detectors {
        lexicon: true,
        patterns: true,
        semantic: true,
    };
    pub const LEXICON: Detectors = Detectors {
        lexicon: true,
        patterns: false,
        semantic: false,
    };
    pub const LEXICON_PATTERNS: Detectors = Detectors {
        lexicon: true,
        patterns: true,
        semantic: false,
    };
}

/// Per-check choices beyond the text itself.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions<'a> {
    pub detectors: Detectors,
    /// The message embedded as [`SEMANTIC_KIND`]; without it the semantic
    /// detector is skipped.
    pub query_vector: Option<&'a [f32]>,
}

impl Default for CheckOptions<'_> {
    fn default() -> Self {
        CheckOptions {
            detectors: Detectors::ALL,
            query_vector: None,
        }
    }
}

/// A match before context is applied.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub category: RiskCategory,
    pub severity: Severity,
    pub action: RiskAction,
    pub detector: Detector,
    pub rule: Arc<str>,
    pub confidence: f32,
    pub start: usize,
    pub end: usize,
    /// The customer's own contact or card details: suppressed for customers.
    pub customer_exempt: bool,
}

/// The compiled lexicon and detectors; see the [module docs](self).
#[derive(Debug)]
pub struct RiskEngine {
    lexicon: Lexicon,
    patterns: Patterns,
    semantic: Option<SemanticIndex>,
    options: EngineOptions,
}

impl RiskEngine {
    /// Compile `(entry id, content)` pairs. Fails on an invalid regex or a
    /// phrase that normalises to nothing; never panics on user input.
    pub fn build<I, S>(entries: I, options: EngineOptions) -> Result<Self, RiskError>
    where
        I: IntoIterator<Item = (S, LexiconContent)>,
        S: Into<String>,
    {
        let entries = entries.into_iter().map(|(id, c)| (id.into(), c)).collect();
        Ok(RiskEngine {
            lexicon: Lexicon::build(entries)?,
            patterns: Patterns::new(&options.allowed_numbers),
            semantic: None,
            options,
        })
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Change the semantic threshold (calibration); everything else stays compiled.
    pub fn set_semantic_threshold(&mut self, threshold: f32) {
        self.options.semantic_threshold = threshold;
    }

    /// Number of lexicon entries compiled.
    pub fn entry_count(&self) -> usize {
        self.lexicon.entries.len()
    }

    /// The semantic exemplars to embed (as [`SEMANTIC_KIND`]), in order.
    pub fn exemplar_texts(&self) -> Vec<&str> {
        self.lexicon
            .exemplars
            .iter()
            .map(|&e| self.lexicon.entries[e].pattern.as_str())
            .collect()
    }

    /// Attach one vector per [`RiskEngine::exemplar_texts`] entry.
    pub fn attach_exemplar_vectors(&mut self, vectors: Vec<Vec<f32>>) -> Result<(), RiskError> {
        let exemplars: Vec<_> = self
            .lexicon
            .exemplars
            .iter()
            .map(|&e| {
                let m = &self.lexicon.entries[e];
                (e, m.category, m.language)
            })
            .collect();
        self.semantic = Some(SemanticIndex::new(&exemplars, vectors)?);
        Ok(())
    }

    /// Embed the exemplars with `embedder` and attach them.
    pub fn embed_exemplars(&mut self, embedder: &mut dyn TextEmbedder) -> Result<(), RiskError> {
        let texts = self.exemplar_texts();
        let vectors = if texts.is_empty() {
            Vec::new()
        } else {
            embedder.embed_texts(&texts).map_err(RiskError::Embed)?
        };
        self.attach_exemplar_vectors(vectors)
    }

    /// Whether exemplar vectors are attached (the semantic detector can run).
    pub fn semantic_ready(&self) -> bool {
        self.semantic.as_ref().is_some_and(|s| !s.rows.is_empty())
    }

    /// Lexicon and pattern detectors (semantic needs a vector: [`RiskEngine::check_with`]).
    pub fn check(&self, text: &str, role: Speaker, language: Option<Language>) -> Vec<RiskHit> {
        self.check_with(text, role, language, &CheckOptions::default())
    }

    /// Embed `text` with `embedder` and run every detector.
    pub fn check_embedded(
        &self,
        text: &str,
        role: Speaker,
        language: Option<Language>,
        embedder: &mut dyn TextEmbedder,
    ) -> Result<Vec<RiskHit>, RiskError> {
        let vector = if self.semantic_ready() {
            embedder
                .embed_texts(&[text])
                .map_err(RiskError::Embed)?
                .pop()
        } else {
            None
        };
        Ok(self.check_with(
            text,
            role,
            language,
            &CheckOptions {
                detectors: Detectors::ALL,
                query_vector: vector.as_deref(),
            },
        ))
    }

    /// Run the chosen detectors. `language` only narrows the semantic
    /// exemplars: phrases and regexes of every language run on every text,
    /// because chats mix scripts ("加我wechat").
    pub fn check_with(
        &self,
        text: &str,
        role: Speaker,
        language: Option<Language>,
        opts: &CheckOptions<'_>,
    ) -> Vec<RiskHit> {
        let original: Vec<char> = text.chars().collect();
        let compact = normalize(text, View::Compact);
        let spaced = normalize(text, View::Spaced);
        let mut found = Vec::new();
        if opts.detectors.lexicon {
            self.lexicon.find(&original, &compact, &spaced, &mut found);
        }
        if opts.detectors.patterns {
            self.patterns.find(&compact, &spaced, &mut found);
        }
        let mut hits: Vec<RiskHit> = found
            .into_iter()
            .map(|c| self.contextualise(text, &original, c, role))
            .collect();
        hits = merge(hits);
        if opts.detectors.semantic
            && let (Some(index), Some(q)) = (&self.semantic, opts.query_vector)
        {
            self.semantic_hits(text, &original, role, language, index, q, &mut hits);
        }
        hits.sort_by_key(|h| (h.char_start, h.char_end));
        hits
    }

    fn contextualise(&self, text: &str, original: &[char], c: Candidate, role: Speaker) -> RiskHit {
        let negated = context::is_negated(text, c.start, c.end);
        let mut severity = c.severity;
        let mut suppressed = negated.then_some(Suppression::Negated);
        match context::role_effect(c.category, role) {
            _ if c.customer_exempt && role == Speaker::Customer => {
                suppressed = suppressed.or(Some(Suppression::Role));
            }
            RoleEffect::Keep => {}
            RoleEffect::Downgrade => severity = context::downgrade(severity),
            RoleEffect::Suppress => suppressed = suppressed.or(Some(Suppression::Role)),
        }
        RiskHit {
            category: c.category,
            severity,
            action: c.action,
            detector: c.detector,
            rule: c.rule.to_string(),
            confidence: c.confidence,
            char_start: c.start,
            char_end: c.end,
            snippet: snippet(original, c.start, c.end),
            negated,
            suppressed,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn semantic_hits(
        &self,
        text: &str,
        original: &[char],
        role: Speaker,
        language: Option<Language>,
        index: &SemanticIndex,
        query: &[f32],
        hits: &mut Vec<RiskHit>,
    ) {
        let threshold = self.options.semantic_threshold;
        let refusal = context::has_refusal(text);
        let start = original.iter().take_while(|c| c.is_whitespace()).count();
        let end = original.len()
            - original
                .iter()
                .rev()
                .take_while(|c| c.is_whitespace())
                .count();
        if start >= end {
            return;
        }
        for (entry, category, cos) in index.nearest(query, language) {
            if cos < threshold {
                break;
            }
            if hits.iter().any(|h| h.category == category && h.is_alert()) {
                continue; // already evidenced by a lexicon or pattern hit
            }
            let negated = refusal
                || hits
                    .iter()
                    .any(|h| h.category == category && h.suppressed == Some(Suppression::Negated));
            let confidence =
                0.5 + 0.5 * ((cos - threshold) / (1.0 - threshold).max(1e-6)).clamp(0.0, 1.0);
            let c = self
                .lexicon
                .candidate(entry, Detector::Semantic, confidence, start, end);
            let mut hit = self.contextualise(text, original, c, role);
            if negated {
                hit.negated = true;
                hit.suppressed = Some(Suppression::Negated);
            }
            hits.push(hit);
        }
    }
}

fn snippet(original: &[char], start: usize, end: usize) -> String {
    let a = start.saturating_sub(SNIPPET_CONTEXT);
    let b = (end + SNIPPET_CONTEXT).min(original.len());
    let mut s = String::new();
    if a > 0 {
        s.push('…');
    }
    s.extend(&original[a..b]);
    if b < original.len() {
        s.push('…');
    }
    s
}

/// One hit per category and overlapping span: the alerting one first, then
/// the highest severity, confidence and longest span.
fn merge(mut hits: Vec<RiskHit>) -> Vec<RiskHit> {
    let rank = |h: &RiskHit| {
        (
            h.is_alert(),
            h.severity,
            (h.confidence * 1000.0) as i32,
            h.char_end - h.char_start,
        )
    };
    hits.sort_by_key(|h| std::cmp::Reverse(rank(h)));
    let mut kept: Vec<RiskHit> = Vec::with_capacity(hits.len());
    for h in hits {
        let overlaps = kept.iter().any(|k| {
            k.category == h.category && k.char_start < h.char_end && h.char_start < k.char_end
        });
        if !overlaps {
            kept.push(h);
        }
    }
    kept
}

/// The original text of a hit's span (for callers holding only offsets).
pub fn evidence(text: &str, hit: &RiskHit) -> String {
    char_slice(text, hit.char_start, hit.char_end)
}

#[cfg(test)]
mod tests;
