//! Hybrid retrieval: BM25 and vectors searched side by side and fused.
//!
//! The retriever is synchronous and engine-agnostic: the caller embeds the
//! query (on the embedder's owner thread) and passes the vector in. The
//! halves are separate calls ([`Retriever::lexical`], [`Retriever::semantic`],
//! [`Retriever::fuse`]) so that BM25 can run on a blocking thread while the
//! query is being embedded; [`Retriever::search`] runs them one after the
//! other. Writes take approved scripts with their passage vectors, so both
//! halves always hold the same versions.

use std::collections::{HashMap, HashSet};

use assist_knowledge_base::ApprovedScript;
use serde::Serialize;

use crate::bm25::{Bm25Index, SearchFilter};
use crate::vector::{VectorFilter, VectorIndex, VectorPoint};
use crate::{Error, FusedHit, FusionWeights, fuse};

/// Which rankings to use (the evaluation compares all three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Bm25,
    Vector,
    Hybrid,
}

/// What the startup consistency check found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// Approved in the database but missing or stale in an index.
    pub reindexed: Vec<String>,
    /// In an index but no longer approved.
    pub removed: Vec<String>,
}

/// BM25 + vectors + fusion.
pub struct Retriever {
    bm25: Bm25Index,
    vectors: Box<dyn VectorIndex>,
    pub weights: FusionWeights,
    /// How many candidates each half contributes before fusion.
    pub candidates: usize,
}

impl std::fmt::Debug for Retriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retriever")
            .field("bm25", &self.bm25)
            .field("weights", &self.weights)
            .field("candidates", &self.candidates)
            .finish()
    }
}

fn vector_filter(f: &SearchFilter) -> VectorFilter {
    VectorFilter {
        org_id: f.org_id.clone(),
        language: f.language.clone(),
        scenario: f.scenario.clone(),
        product: f.product.clone(),
    }
}

fn engine(e: impl std::fmt::Display) -> Error {
    Error::Engine(e.to_string())
}

impl Retriever {
    pub fn new(bm25: Bm25Index, vectors: Box<dyn VectorIndex>, weights: FusionWeights) -> Self {
        Retriever {
            bm25,
            vectors,
            weights,
            candidates: 50,
        }
    }

    pub fn bm25(&self) -> &Bm25Index {
        &self.bm25
    }

    pub fn vectors(&self) -> &dyn VectorIndex {
        self.vectors.as_ref()
    }

    /// Candidates each half contributes for a top-`k` search.
    pub fn candidates_for(&self, k: usize) -> usize {
        self.candidates.max(k)
    }

    /// The lexical half of a search: ids of the `n` best BM25 hits.
    ///
    /// Needs no query embedding, so callers run it while the query is being
    /// embedded and fuse with [`Retriever::fuse`] afterwards.
    pub fn lexical(
        &self,
        text: &str,
        filter: &SearchFilter,
        n: usize,
    ) -> Result<Vec<String>, Error> {
        Ok(self
            .bm25
            .search(text, filter, n)?
            .into_iter()
            .map(|h| h.id)
            .collect())
    }

    /// The semantic half of a search: ids of the `n` nearest vectors.
    pub fn semantic(
        &self,
        query_vector: &[f32],
        filter: &SearchFilter,
        n: usize,
    ) -> Result<Vec<String>, Error> {
        Ok(self
            .vectors
            .search(query_vector, &vector_filter(filter), n)
            .map_err(engine)?
            .into_iter()
            .map(|h| h.id)
            .collect())
    }

    /// Fuse the two halves as `mode` asks (a half `mode` does not use is ignored).
    pub fn fuse(
        &self,
        mode: Mode,
        lexical: &[String],
        semantic: &[String],
        k: usize,
    ) -> Vec<FusedHit> {
        let weights = match mode {
            Mode::Bm25 => FusionWeights {
                vector: 0.0,
                ..self.weights
            },
            Mode::Vector => FusionWeights {
                bm25: 0.0,
                ..self.weights
            },
            Mode::Hybrid => self.weights,
        };
        let (lexical, semantic) = match mode {
            Mode::Bm25 => (lexical, &[][..]),
            Mode::Vector => (&[][..], semantic),
            Mode::Hybrid => (lexical, semantic),
        };
        fuse(lexical, semantic, weights, k)
    }

    /// Search in `mode`, one half after the other: [`Retriever::lexical`],
    /// [`Retriever::semantic`], [`Retriever::fuse`]. `query_vector` is needed
    /// for `Vector` and `Hybrid`; without it hybrid falls back to BM25 alone.
    pub fn search(
        &self,
        mode: Mode,
        text: &str,
        query_vector: Option<&[f32]>,
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<FusedHit>, Error> {
        let n = self.candidates_for(k);
        let lexical = match mode {
            Mode::Bm25 | Mode::Hybrid => self.lexical(text, filter, n)?,
            Mode::Vector => Vec::new(),
        };
        let semantic = match (mode, query_vector) {
            (Mode::Vector | Mode::Hybrid, Some(v)) => self.semantic(v, filter, n)?,
            (Mode::Vector, None) => {
                return Err(Error::Engine(
                    "vector search needs the query embedding".into(),
                ));
            }
            _ => Vec::new(),
        };
        Ok(self.fuse(mode, &lexical, &semantic, k))
    }

    /// Index approved scripts with their passage embeddings (same order).
    pub fn upsert(&self, scripts: &[ApprovedScript], embeddings: &[Vec<f32>]) -> Result<(), Error> {
        if scripts.len() != embeddings.len() {
            return Err(Error::Engine(format!(
                "{} scripts but {} embeddings",
                scripts.len(),
                embeddings.len()
            )));
        }
        let points: Vec<VectorPoint> = scripts
            .iter()
            .zip(embeddings)
            .map(|(s, v)| VectorPoint {
                id: s.id().to_string(),
                vector: v.clone(),
                org_id: s.org_id().to_string(),
                language: s.language().as_str().to_string(),
                scenario: s.scenario().as_str().to_string(),
                products: s.products().to_vec(),
                version: s.version(),
            })
            .collect();
        // Vectors first: a crash between the two leaves BM25 stale, which the
        // consistency check repairs; never a vector without its text.
        self.vectors.upsert(&points).map_err(engine)?;
        self.bm25.upsert(scripts)
    }

    /// Remove scripts from both halves.
    pub fn delete(&self, ids: &[String]) -> Result<(), Error> {
        self.bm25.delete(ids)?;
        self.vectors.delete(ids).map_err(engine)
    }

    /// Compare what the database says is approved (`id`, `version`) with both
    /// indexes. Returns the ids to (re)index and removes extras at once.
    pub fn reconcile(&self, approved: &[(String, u32)]) -> Result<Repair, Error> {
        let want: HashMap<&str, u32> = approved.iter().map(|(id, v)| (id.as_str(), *v)).collect();
        let lexical: HashMap<String, u32> = self.bm25.ids()?.into_iter().collect();
        let semantic: HashMap<String, u32> = self
            .vectors
            .ids(None)
            .map_err(engine)?
            .into_iter()
            .collect();
        let mut repair = Repair::default();
        for (id, v) in &want {
            if lexical.get(*id) != Some(v) || semantic.get(*id) != Some(v) {
                repair.reindexed.push(id.to_string());
            }
        }
        let extra: HashSet<&String> = lexical
            .keys()
            .chain(semantic.keys())
            .filter(|id| !want.contains_key(id.as_str()))
            .collect();
        repair.removed = extra.into_iter().cloned().collect();
        repair.removed.sort();
        repair.reindexed.sort();
        if !repair.removed.is_empty() {
            self.delete(&repair.removed)?;
        }
        Ok(repair)
    }
}
