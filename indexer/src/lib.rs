//! Retrieval over approved scripts for the assist service.
//!
//! The Knowledge issue fills this crate with a Tantivy index (jieba for
//! Chinese, stemming for English), vectors in Qdrant (embedded `qdrant-edge`
//! or a server through `qdrant-client`) and reciprocal-rank fusion. The input
//! type is already fixed: only [`assist_knowledge_base::ApprovedScript`] can be
//! indexed.
//!
//! ```
//! use assist_indexer::fuse_rrf;
//! // Two rankings of document ids; "b" is near the top of both.
//! let fused = fuse_rrf(&[&["a", "b", "c"], &["b", "d"]], 60.0);
//! assert_eq!(fused[0].0, "b");
//! ```

use std::collections::HashMap;

pub use assist_knowledge_base::ApprovedScript;

/// Reciprocal-rank fusion: each ranking contributes `1 / (k + rank)` (rank from
/// 1) to a document's score. Returns ids with fused scores, best first.
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

/// Errors of the indexer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("index at {path} is unusable: {reason}")]
    Corrupt { path: String, reason: String },
}
