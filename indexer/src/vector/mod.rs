//! Vector side of the script search: storage of script embeddings and filtered nearest-neighbour
//! search, behind one trait so the rest of the code does not care which engine holds them.
//!
//! How the types fit together:
//!
//! * [`VectorPoint`] is one approved script's embedding (multilingual-e5-small, 384-dim, unit
//!   norm) plus what search filters on: organisation, language, scenario, products, and the
//!   script version (so a startup check can compare the index with the scripts database).
//! * [`VectorIndex`] stores points and answers [`VectorIndex::search`] with a mandatory
//!   organisation in the [`VectorFilter`], so one company's scripts never reach another's phone.
//!   Scores are cosine similarities, best first, as [`VectorHit`]s.
//! * Two engines implement it: [`EdgeVectorIndex`] (Qdrant Edge inside the process, a directory
//!   on disk; the default) and [`QdrantServerIndex`] (a Qdrant server or cluster over gRPC).
//!   [`open_vector_index`] picks one from a [`VectorBackend`] (configuration).
//! * Script ids are strings (`"scr_01a2…"`); Qdrant wants a UUID or an integer, so each id maps
//!   to a UUID v5 ([`point_uuid`]) and the string itself rides in the payload.
//! * Methods are blocking. Async callers run them in `tokio::task::spawn_blocking`.
//!
//! ```
//! use assist_indexer::vector::{open_vector_index, VectorBackend, VectorFilter, VectorPoint};
//!
//! # fn main() -> Result<(), assist_indexer::vector::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let index = open_vector_index(VectorBackend::Edge { path: dir.path().join("vectors") }, 3)?;
//! let point = |id: &str, vector: Vec<f32>| VectorPoint {
//!     id: id.into(),
//!     vector,
//!     org_id: "org_a".into(),
//!     language: "zh".into(),
//!     scenario: "price_objection".into(),
//!     products: vec!["broadband".into()],
//!     version: 1,
//! };
//! index.upsert(&[point("scr_1", vec![1.0, 0.0, 0.0]), point("scr_2", vec![0.0, 1.0, 0.0])])?;
//! index.flush()?;
//!
//! let hits = index.search(&[0.9, 0.1, 0.0], &VectorFilter::org("org_a"), 5)?;
//! assert_eq!(hits[0].id, "scr_1");
//! // Another organisation sees nothing.
//! assert!(index.search(&[0.9, 0.1, 0.0], &VectorFilter::org("org_b"), 5)?.is_empty());
//! # Ok(())
//! # }
//! ```

mod edge;
mod error;
mod server;

use std::path::PathBuf;

pub use edge::{EdgeOptions, EdgeVectorIndex};
pub use error::{Error, Result};
pub use server::{QdrantServerIndex, ServerOptions};

/// Payload keys stored with every point (shared by both engines).
pub(crate) mod field {
    pub const SCRIPT_ID: &str = "script_id";
    pub const ORG_ID: &str = "org_id";
    pub const LANGUAGE: &str = "language";
    pub const SCENARIO: &str = "scenario";
    pub const PRODUCTS: &str = "products";
    pub const VERSION: &str = "version";
    /// Keyword-indexed fields, in creation order.
    pub const KEYWORDS: [&str; 4] = [ORG_ID, LANGUAGE, SCENARIO, PRODUCTS];
}

/// One script's embedding and the fields search can filter on.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorPoint {
    /// Script id, e.g. `"scr_01a2…"`.
    pub id: String,
    /// The embedding; must have the index's dimension. Cosine distance, so the norm does not
    /// matter, but it must not be zero.
    pub vector: Vec<f32>,
    pub org_id: String,
    /// BCP-47-ish language tag as the knowledge base stores it (`"zh"`, `"en"`).
    pub language: String,
    pub scenario: String,
    pub products: Vec<String>,
    /// Script version; [`VectorIndex::ids`] reports it back.
    pub version: u32,
}

/// Which points a search may return. `org_id` is mandatory; the rest narrow further.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VectorFilter {
    pub org_id: String,
    pub language: Option<String>,
    pub scenario: Option<String>,
    /// Matches points whose `products` contain this one.
    pub product: Option<String>,
}

impl VectorFilter {
    /// Everything of one organisation.
    pub fn org(org_id: impl Into<String>) -> Self {
        Self {
            org_id: org_id.into(),
            ..Self::default()
        }
    }

    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    pub fn scenario(mut self, scenario: impl Into<String>) -> Self {
        self.scenario = Some(scenario.into());
        self
    }

    pub fn product(mut self, product: impl Into<String>) -> Self {
        self.product = Some(product.into());
        self
    }

    /// The conditions as (payload key, required value) pairs, organisation first.
    pub(crate) fn conditions(&self) -> Result<Vec<(&'static str, &str)>> {
        if self.org_id.is_empty() {
            return Err(Error::InvalidInput(
                "a vector search needs an org_id".to_string(),
            ));
        }
        let mut out = vec![(field::ORG_ID, self.org_id.as_str())];
        for (key, value) in [
            (field::LANGUAGE, &self.language),
            (field::SCENARIO, &self.scenario),
            (field::PRODUCTS, &self.product),
        ] {
            if let Some(value) = value {
                out.push((key, value.as_str()));
            }
        }
        Ok(out)
    }
}

/// A search result: script id and cosine similarity (higher is closer, at most 1).
#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    pub id: String,
    pub score: f32,
}

/// Storage of script vectors with filtered nearest-neighbour search.
///
/// All methods block; call them from `spawn_blocking` in async code. Implementations are
/// `Send + Sync` and may be shared between threads (`Arc<dyn VectorIndex>`).
pub trait VectorIndex: Send + Sync + std::fmt::Debug {
    /// Inserts or replaces (same id) a batch of points.
    fn upsert(&self, points: &[VectorPoint]) -> Result<()>;
    /// Removes points by script id; unknown ids are ignored.
    fn delete(&self, ids: &[String]) -> Result<()>;
    /// The `k` points closest to `query` among those matching `filter`, best first.
    fn search(&self, query: &[f32], filter: &VectorFilter, k: usize) -> Result<Vec<VectorHit>>;
    /// Every stored script id with its version (of one organisation, or all), in no particular
    /// order: for the startup consistency check against the scripts database.
    fn ids(&self, org_id: Option<&str>) -> Result<Vec<(String, u32)>>;
    /// Number of stored points.
    fn count(&self) -> Result<usize>;
    /// Makes everything written so far durable (and, for the embedded engine, fully indexed).
    fn flush(&self) -> Result<()>;
}

/// Which engine holds the vectors (from configuration).
#[derive(Clone, PartialEq, Eq)]
pub enum VectorBackend {
    /// Qdrant Edge in this process, persisted in `path` (created if missing).
    Edge { path: PathBuf },
    /// A Qdrant server or cluster, gRPC URL such as `http://127.0.0.1:6334`.
    Server {
        url: String,
        api_key: Option<String>,
        collection: String,
    },
}

impl std::fmt::Debug for VectorBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Edge { path } => f.debug_struct("Edge").field("path", path).finish(),
            Self::Server {
                url,
                api_key,
                collection,
            } => f
                .debug_struct("Server")
                .field("url", url)
                .field("api_key", &api_key.as_ref().map(|_| "<redacted>"))
                .field("collection", collection)
                .finish(),
        }
    }
}

/// Opens (creating if needed) the configured vector index for vectors of dimension `dim`.
pub fn open_vector_index(kind: VectorBackend, dim: usize) -> Result<Box<dyn VectorIndex>> {
    Ok(match kind {
        VectorBackend::Edge { path } => Box::new(EdgeVectorIndex::open(path, dim)?),
        VectorBackend::Server {
            url,
            api_key,
            collection,
        } => Box::new(QdrantServerIndex::connect(
            &url,
            api_key,
            &collection,
            dim,
            ServerOptions::default(),
        )?),
    })
}

/// Namespace for [`point_uuid`] (a fixed random UUID; changing it orphans every stored point).
const POINT_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5d3c_9b2e_4f1a_4c7e_9a0b_6e2d_8f41_c3a7);

/// The Qdrant point id of a script id: UUID v5, the same on every machine and engine.
pub fn point_uuid(script_id: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&POINT_ID_NAMESPACE, script_id.as_bytes())
}

/// Checks a vector's dimension and values; `id` names it in the error.
pub(crate) fn check_vector(id: &str, vector: &[f32], dim: usize) -> Result<()> {
    if vector.len() != dim {
        return Err(Error::DimensionMismatch {
            id: id.to_string(),
            expected: dim,
            got: vector.len(),
        });
    }
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(Error::InvalidVector {
            id: id.to_string(),
            reason: "contains NaN or infinity",
        });
    }
    if vector.iter().all(|x| *x == 0.0) {
        return Err(Error::InvalidVector {
            id: id.to_string(),
            reason: "is all zeros",
        });
    }
    Ok(())
}

/// Checks a whole batch before anything is written, so a bad point fails the batch cleanly.
pub(crate) fn check_points(points: &[VectorPoint], dim: usize) -> Result<()> {
    for p in points {
        if p.id.is_empty() {
            return Err(Error::InvalidInput(
                "a vector point needs an id".to_string(),
            ));
        }
        if p.org_id.is_empty() {
            return Err(Error::InvalidInput(format!(
                "vector point {:?} has no org_id",
                p.id
            )));
        }
        check_vector(&p.id, &p.vector, dim)?;
    }
    Ok(())
}

/// The query-side checks shared by both engines.
pub(crate) fn check_query(query: &[f32], dim: usize) -> Result<()> {
    check_vector("<query>", query, dim)
}
