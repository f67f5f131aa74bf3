//! Retrieval over approved scripts for the assist service.
//!
//! How the pieces fit together:
//!
//! - [`bm25::Bm25Index`] is the lexical half: Tantivy on disk, jieba
//!   segmentation for Chinese, stemming for English, keyword fields for the
//!   organisation, language, scenario and products.
//! - [`vector`] is the semantic half: a [`vector::VectorIndex`] trait with an
//!   embedded Qdrant Edge shard (default) and a Qdrant server backend.
//! - [`fuse`] combines the two rankings with weighted reciprocal-rank fusion
//!   and keeps, for every hit, why it was found (its rank in each list).
//!
//! Both halves accept only [`ApprovedScript`] (the knowledge base's proof of
//! approval), so unapproved text cannot be suggested.
//!
//! ```
//! use assist_indexer::{FusionWeights, fuse};
//! let bm25 = vec!["a".to_string(), "b".to_string(), "c".to_string()];
//! let vector = vec!["b".to_string(), "d".to_string()];
//! let hits = fuse(&bm25, &vector, FusionWeights::default(), 10);
//! assert_eq!(hits[0].id, "b");
//! assert_eq!((hits[0].bm25_rank, hits[0].vector_rank), (Some(2), Some(1)));
//! ```

pub mod bm25;
pub mod retriever;
pub mod vector;

use std::collections::HashMap;

pub use assist_knowledge_base::ApprovedScript;
use serde::Serialize;

/// Errors of the indexer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("index at {path} is unusable: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("{0}")]
    Io(String),
    #[error("search engine failure: {0}")]
    Engine(String),
}

/// Weights of the two rankings in the fusion, and the RRF constant `k`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FusionWeights {
    pub bm25: f64,
    pub vector: f64,
    /// Larger `k` flattens the advantage of the very top ranks (60 is the
    /// value from the original RRF paper).
    pub k: f64,
}

impl Default for FusionWeights {
    fn default() -> Self {
        FusionWeights {
            bm25: 1.0,
            vector: 1.0,
            k: 60.0,
        }
    }
}

/// A fused hit and why it was found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FusedHit {
    pub id: String,
    pub score: f64,
    /// 1-based rank in the BM25 list, if it was there.
    pub bm25_rank: Option<usize>,
    /// 1-based rank in the vector list, if it was there.
    pub vector_rank: Option<usize>,
}

/// Weighted reciprocal-rank fusion: each list contributes `w / (k + rank)`.
/// Ties are broken by the better single rank, then by id, so results are stable.
pub fn fuse(bm25: &[String], vector: &[String], w: FusionWeights, limit: usize) -> Vec<FusedHit> {
    let mut hits: HashMap<&str, FusedHit> = HashMap::new();
    for (i, id) in bm25.iter().enumerate() {
        let h = hits.entry(id).or_insert_with(|| FusedHit {
            id: id.clone(),
            score: 0.0,
            bm25_rank: None,
            vector_rank: None,
        });
        if h.bm25_rank.is_none() {
            h.bm25_rank = Some(i + 1);
            h.score += w.bm25 / (w.k + (i + 1) as f64);
        }
    }
    for (i, id) in vector.iter().enumerate() {
        let h = hits.entry(id).or_insert_with(|| FusedHit {
            id: id.clone(),
            score: 0.0,
            bm25_rank: None,
            vector_rank: None,
        });
        if h.vector_rank.is_none() {
            h.vector_rank = Some(i + 1);
            h.score += w.vector / (w.k + (i + 1) as f64);
        }
    }
    let mut out: Vec<FusedHit> = hits.into_values().collect();
    let best = |h: &FusedHit| {
        h.bm25_rank
            .unwrap_or(usize::MAX)
            .min(h.vector_rank.unwrap_or(usize::MAX))
    };
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(best(a).cmp(&best(b)))
            .then(a.id.cmp(&b.id))
    });
    out.truncate(limit);
    out
}

/// Backwards-compatible plain RRF over string slices.
pub fn fuse_rrf<'a>(rankings: &[&[&'a str]], k: f64) -> Vec<(&'a str, f64)> {
    let mut scores: HashMap<&'a str, f64> = HashMap::new();
    for ranking in rankings {
        for (i, id) in ranking.iter().enumerate() {
            *scores.entry(id).or_default() += 1.0 / (k + (i + 1) as f64);
        }
    }
    let mut out: Vec<_> = scores.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_shift_the_fusion() {
        let bm25 = vec!["lex".to_string(), "both".to_string()];
        let vector = vec!["sem".to_string(), "both".to_string()];
        let even = fuse(&bm25, &vector, FusionWeights::default(), 10);
        assert_eq!(even[0].id, "both");
        let lexical = fuse(
            &bm25,
            &vector,
            FusionWeights {
                bm25: 1.0,
                vector: 0.0,
                k: 60.0,
            },
            10,
        );
        assert_eq!(lexical[0].id, "lex");
        // A small k sharpens the top: rank 1 in one list beats rank 2 in both.
        let sharp = fuse(
            &bm25,
            &vector,
            FusionWeights {
                bm25: 2.0,
                vector: 0.5,
                k: 1.0,
            },
            10,
        );
        assert_eq!(sharp[0].id, "lex");
        let only_vec = fuse(&[], &vector, FusionWeights::default(), 1);
        assert_eq!(only_vec.len(), 1);
        assert_eq!(only_vec[0].bm25_rank, None);
    }
}
