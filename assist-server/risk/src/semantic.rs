//! The semantic detector: cosine similarity between a message and the
//! lexicon's exemplar sentences (`match_mode: semantic`).
//!
//! The engine does not own the embedding model. Exemplars are embedded once
//! when the engine is built ([`RiskEngine::embed_exemplars`](super::RiskEngine::embed_exemplars)
//! with any [`TextEmbedder`], or [`RiskEngine::attach_exemplar_vectors`](super::RiskEngine::attach_exemplar_vectors)
//! with vectors computed elsewhere, e.g. through an async
//! `assist_models::embed::EmbedHandle`); each message's vector is passed to
//! the check. Both sides are embedded as [`SEMANTIC_KIND`] — e5 uses the
//! `query: ` prefix on both sides for symmetric similarity.

use assist_knowledge_base::{Language, RiskCategory};
use assist_model_api::embed::{Embed, EmbedKind};

use super::RiskError;

/// How both exemplars and messages are embedded.
pub const SEMANTIC_KIND: EmbedKind = EmbedKind::Query;

/// Cosine similarity at or above which a message matches an exemplar.
/// Calibrated with `assist-eval risk` on the dev half of
/// `eval/data/risk/conversations.jsonl` for multilingual-e5-small.
pub const DEFAULT_SEMANTIC_THRESHOLD: f32 = 0.92;

/// Anything that turns texts into L2-normalised vectors, one per text.
///
/// Implemented for closures, so callers can wrap whatever owns the model:
/// `|texts: &[&str]| handle.embed_blocking(texts)`. [`ModelEmbedder`] wraps
/// an `assist_model_api::embed::Embed` directly.
pub trait TextEmbedder {
    fn embed_texts(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String>;
}

impl<F> TextEmbedder for F
where
    F: FnMut(&[&str]) -> Result<Vec<Vec<f32>>, String>,
{
    fn embed_texts(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        self(texts)
    }
}

/// A borrowed model (`Embedder`, or `FakeEmbedder` in tests) used with [`SEMANTIC_KIND`].
#[derive(Debug)]
pub struct ModelEmbedder<'a, E: Embed>(pub &'a mut E);

impl<E: Embed> TextEmbedder for ModelEmbedder<'_, E> {
    fn embed_texts(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        self.0
            .embed(texts, SEMANTIC_KIND)
            .map_err(|e| e.to_string())
    }
}

/// Exemplar vectors, aligned with the lexicon's exemplar entries.
#[derive(Debug, Clone)]
pub(crate) struct SemanticIndex {
    /// (lexicon entry index, category, language, vector)
    pub rows: Vec<(usize, RiskCategory, Language, Vec<f32>)>,
    pub dim: usize,
}

impl SemanticIndex {
    pub fn new(
        exemplars: &[(usize, RiskCategory, Language)],
        vectors: Vec<Vec<f32>>,
    ) -> Result<Self, RiskError> {
        if vectors.len() != exemplars.len() {
            return Err(RiskError::VectorCount {
                expected: exemplars.len(),
                got: vectors.len(),
            });
        }
        let dim = vectors.first().map_or(0, Vec::len);
        if let Some(bad) = vectors.iter().find(|v| v.len() != dim) {
            return Err(RiskError::Dimension {
                expected: dim,
                got: bad.len(),
            });
        }
        let rows = exemplars
            .iter()
            .zip(vectors)
            .map(|(&(e, c, l), v)| (e, c, l, v))
            .collect();
        Ok(SemanticIndex { rows, dim })
    }

    /// The most similar exemplar per category: (entry, category, cosine), best first.
    pub fn nearest(
        &self,
        query: &[f32],
        language: Option<Language>,
    ) -> Vec<(usize, RiskCategory, f32)> {
        let mut best: Vec<(usize, RiskCategory, f32)> = Vec::new();
        if query.len() != self.dim {
            return best;
        }
        for (entry, category, lang, v) in &self.rows {
            if language.is_some_and(|l| l != *lang) {
                continue;
            }
            let cos: f32 = query.iter().zip(v).map(|(a, b)| a * b).sum();
            match best.iter_mut().find(|b| b.1 == *category) {
                Some(b) if b.2 >= cos => {}
                Some(b) => *b = (*entry, *category, cos),
                None => best.push((*entry, *category, cos)),
            }
        }
        best.sort_by(|a, b| b.2.total_cmp(&a.2));
        best
    }
}
