//! [`EdgeVectorIndex`]: Qdrant Edge (`qdrant-edge` 0.7.2) inside the process, one shard in a
//! directory.
//!
//! Engine facts this file is built around (read from the 0.7.2 source):
//!
//! * New points land in a plain (brute-force) appendable segment; HNSW graphs are built only by
//!   [`EdgeShard::optimize`], which is blocking and never runs by itself. [`VectorIndex::flush`]
//!   runs it, so bulk loads build each graph once, at the end.
//! * `EdgeShard::flush` (also called on drop) panics instead of failing when the WAL or segment
//!   lock is held elsewhere or the disk fails. Every write and flush here holds one writer mutex
//!   (no lock contention inside the shard), and the panic of a failing flush is caught and
//!   returned as [`Error::Engine`].
//! * Every update is appended to the WAL first, but 0.7.2 never replays (or truncates) its WAL on
//!   load: what is durable is what was flushed. With [`EdgeOptions::durable_writes`] (default)
//!   each `upsert`/`delete` call ends with a flush; either way a crash leaves a loadable shard,
//!   and the startup check ([`VectorIndex::ids`] against the scripts database) re-upserts
//!   whatever is missing or stale.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use qdrant_edge::{
    Condition, CountRequest, DEFAULT_VECTOR_NAME, Distance, EdgeConfig, EdgeOptimizersConfig,
    EdgeShard, EdgeVectorParams, FieldCondition, FieldIndexOperations, Filter, HnswIndexConfig,
    JsonPath, KeywordIndexParams, Match, PayloadFieldSchema, PayloadSchemaParams, PointId,
    PointInsertOperations, PointOperations, PointStruct, QueryEnum, QueryRequest, ScoringQuery,
    ScrollRequest, SearchParams, UpdateOperation, WithPayloadInterface, WithVector,
};
use serde_json::{Value, json};

use super::{
    Error, Result, VectorFilter, VectorHit, VectorIndex, VectorPoint, check_points, check_query,
    field, point_uuid,
};

const BACKEND: &str = "qdrant-edge";
/// Points per scroll page in [`VectorIndex::ids`].
const SCROLL_PAGE: usize = 1024;

/// Tuning of the embedded engine, measured with `examples/vector_bench.rs` (384-dim, 100k
/// clustered points, filter org+language ≈ 20k matching, k = 10, one thread, 2 busy cores):
/// `search_ef` 64 → recall@10 0.83, p95 2.4 ms; 128 (default) → 0.88, p95 6.9 ms;
/// 256 → 0.92, p95 7.4 ms. Narrower filters (≈ 1.5k points) are scanned exactly: recall 0.95–1.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeOptions {
    /// HNSW links per node.
    pub hnsw_m: usize,
    /// HNSW build beam width.
    pub hnsw_ef_construct: usize,
    /// HNSW search beam width (raised to `k` when `k` is larger).
    pub search_ef: usize,
    /// Below this many KiB of matching vectors (1 KiB ≈ 0.67 vectors of dim 384) a filtered search
    /// scores the matching points exactly instead of walking the graph.
    pub full_scan_threshold_kb: usize,
    /// A plain segment above this size (KiB of vectors) gets an HNSW graph at the next flush.
    pub indexing_threshold_kb: usize,
    /// Flush after every `upsert`/`delete` call (see the module docs). Turn off only for bulk
    /// loads that end with an explicit [`VectorIndex::flush`].
    pub durable_writes: bool,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        Self {
            hnsw_m: 16,
            hnsw_ef_construct: 100,
            search_ef: 128,
            full_scan_threshold_kb: 10_000,
            indexing_threshold_kb: 10_000,
            durable_writes: true,
        }
    }
}

/// Script vectors in an embedded Qdrant Edge shard on disk (cosine distance, keyword payload
/// indexes on `org_id` (tenant), `language`, `scenario` and `products`).
pub struct EdgeVectorIndex {
    /// `Some` until drop (see the `Drop` impl).
    shard: Option<EdgeShard>,
    /// Serialises updates, flushes and optimisation; searches never take it.
    writer: Mutex<()>,
    dim: usize,
    path: PathBuf,
    options: EdgeOptions,
}

impl fmt::Debug for EdgeVectorIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdgeVectorIndex")
            .field("path", &self.path)
            .field("dim", &self.dim)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Drop for EdgeVectorIndex {
    /// `EdgeShard`'s own drop flushes and panics if that fails (disk full, directory removed).
    /// Contain that panic here: a process that is shutting down should not die of it. Call
    /// [`VectorIndex::flush`] before dropping to see such errors.
    fn drop(&mut self) {
        if let Some(shard) = self.shard.take() {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(shard)));
        }
    }
}

impl EdgeVectorIndex {
    fn shard(&self) -> &EdgeShard {
        self.shard
            .as_ref()
            .unwrap_or_else(|| unreachable!("the shard is taken only in drop"))
    }

    /// Opens the shard in `path`, creating the directory and the shard if missing.
    pub fn open(path: impl AsRef<Path>, dim: usize) -> Result<Self> {
        Self::open_with(path, dim, EdgeOptions::default())
    }

    /// [`Self::open`] with explicit tuning. An existing shard keeps its dimension and distance
    /// (a different `dim` is [`Error::Incompatible`]); HNSW and optimizer settings are updated.
    pub fn open_with(path: impl AsRef<Path>, dim: usize, options: EdgeOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if dim == 0 {
            return Err(Error::InvalidInput("vector dimension must be > 0".into()));
        }
        std::fs::create_dir_all(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let config = edge_config(dim, &options);
        let exists = path.join("edge_config.json").exists() || path.join("segments").exists();
        let shard = if exists {
            let shard = EdgeShard::load(&path, None).map_err(engine("load"))?;
            check_compatible(&shard, &path, dim)?;
            shard
                .set_hnsw_config(config.hnsw_config)
                .map_err(engine("load"))?;
            shard
                .set_optimizers_config(config.optimizers.clone())
                .map_err(engine("load"))?;
            shard
        } else {
            EdgeShard::new(&path, config).map_err(engine("create"))?
        };
        let index = Self {
            shard: Some(shard),
            writer: Mutex::new(()),
            dim,
            path,
            options,
        };
        index.ensure_payload_indexes()?;
        Ok(index)
    }

    /// The directory of the shard.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Points already in an HNSW graph (the rest are scanned exactly until the next flush).
    pub fn indexed_count(&self) -> usize {
        self.shard().info().indexed_vectors_count
    }

    /// Runs the engine's optimizers now (HNSW build, segment merge, vacuum) and persists the
    /// result. Returns whether anything changed. [`VectorIndex::flush`] calls this.
    pub fn optimize(&self) -> Result<bool> {
        let _guard = self.lock();
        let changed = self.shard().optimize().map_err(engine("optimize"))?;
        if changed {
            self.persist()?;
        }
        Ok(changed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot leave it inconsistent.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Flushes WAL and segments; call with the writer lock held.
    fn persist(&self) -> Result<()> {
        catch_unwind(AssertUnwindSafe(|| self.shard().flush())).map_err(|panic| Error::Engine {
            backend: BACKEND,
            operation: "flush",
            message: panic_message(panic.as_ref()),
        })
    }

    fn update(&self, operation: UpdateOperation, what: &'static str) -> Result<()> {
        self.shard().update(operation).map_err(engine(what))
    }

    fn ensure_payload_indexes(&self) -> Result<()> {
        let _guard = self.lock();
        let existing = self.shard().info().payload_schema;
        let mut created = false;
        for name in field::KEYWORDS {
            let key = key_path(name);
            if existing.contains_key(&key) {
                continue;
            }
            let params = KeywordIndexParams {
                is_tenant: Some(name == field::ORG_ID),
                // Extra per-value HNSW links only for the tenant field; the others are always
                // combined with an organisation and are narrow enough to scan exactly.
                enable_hnsw: Some(name == field::ORG_ID),
                ..KeywordIndexParams::default()
            };
            let op = FieldIndexOperations::CreateIndex(qdrant_edge::CreateIndex {
                field_name: key,
                field_schema: Some(PayloadFieldSchema::FieldParams(
                    PayloadSchemaParams::Keyword(params),
                )),
            });
            self.update(
                UpdateOperation::FieldIndexOperation(op),
                "create payload index",
            )?;
            created = true;
        }
        if created {
            self.persist()?;
        }
        Ok(())
    }
}

impl VectorIndex for EdgeVectorIndex {
    fn upsert(&self, points: &[VectorPoint]) -> Result<()> {
        check_points(points, self.dim)?;
        if points.is_empty() {
            return Ok(());
        }
        let persisted = points
            .iter()
            .map(|p| {
                PointStruct::new(
                    PointId::Uuid(point_uuid(&p.id)),
                    p.vector.clone(),
                    payload(p),
                )
                .into()
            })
            .collect();
        let op = PointOperations::UpsertPoints(PointInsertOperations::PointsList(persisted));
        let _guard = self.lock();
        self.update(UpdateOperation::PointOperation(op), "upsert")?;
        if self.options.durable_writes {
            self.persist()?;
        }
        Ok(())
    }

    fn delete(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.iter().map(|id| PointId::Uuid(point_uuid(id))).collect();
        let _guard = self.lock();
        self.update(
            UpdateOperation::PointOperation(PointOperations::DeletePoints { ids }),
            "delete",
        )?;
        if self.options.durable_writes {
            self.persist()?;
        }
        Ok(())
    }

    fn search(&self, query: &[f32], filter: &VectorFilter, k: usize) -> Result<Vec<VectorHit>> {
        check_query(query, self.dim)?;
        let filter = edge_filter(filter)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::from(query.to_vec()))),
            filter: Some(filter),
            score_threshold: None,
            limit: k,
            offset: 0,
            params: Some(SearchParams {
                hnsw_ef: Some(self.options.search_ef.max(k)),
                ..SearchParams::default()
            }),
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Fields(vec![key_path(field::SCRIPT_ID)]),
        };
        let points = self.shard().query(request).map_err(engine("search"))?;
        points
            .into_iter()
            .map(|p| {
                let id = p
                    .payload
                    .as_ref()
                    .and_then(|pl| pl.0.get(field::SCRIPT_ID))
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing_payload(&p.id, field::SCRIPT_ID))?;
                Ok(VectorHit {
                    id: id.to_string(),
                    score: p.score,
                })
            })
            .collect()
    }

    fn ids(&self, org_id: Option<&str>) -> Result<Vec<(String, u32)>> {
        let filter = org_id.map(|org| Filter::new_must(keyword_condition(field::ORG_ID, org)));
        let mut out = Vec::new();
        let mut offset = None;
        loop {
            let request = ScrollRequest {
                offset,
                limit: Some(SCROLL_PAGE),
                filter: filter.clone(),
                with_payload: Some(WithPayloadInterface::Fields(vec![
                    key_path(field::SCRIPT_ID),
                    key_path(field::VERSION),
                ])),
                with_vector: WithVector::Bool(false),
                order_by: None,
            };
            let (records, next) = self.shard().scroll(request).map_err(engine("scroll"))?;
            for r in records {
                let payload = r.payload.as_ref().map(|pl| &pl.0);
                let id = payload
                    .and_then(|pl| pl.get(field::SCRIPT_ID))
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing_payload(&r.id, field::SCRIPT_ID))?;
                let version = payload
                    .and_then(|pl| pl.get(field::VERSION))
                    .and_then(Value::as_u64)
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| missing_payload(&r.id, field::VERSION))?;
                out.push((id.to_string(), version));
            }
            match next {
                Some(next) => offset = Some(next),
                None => return Ok(out),
            }
        }
    }

    fn count(&self) -> Result<usize> {
        self.shard()
            .count(CountRequest {
                filter: None,
                exact: true,
            })
            .map_err(engine("count"))
    }

    fn flush(&self) -> Result<()> {
        let _guard = self.lock();
        self.persist()?;
        if self.shard().optimize().map_err(engine("optimize"))? {
            self.persist()?;
        }
        Ok(())
    }
}

fn edge_config(dim: usize, options: &EdgeOptions) -> EdgeConfig {
    let hnsw = HnswIndexConfig {
        m: options.hnsw_m,
        ef_construct: options.hnsw_ef_construct,
        full_scan_threshold: options.full_scan_threshold_kb,
        ..HnswIndexConfig::default()
    };
    let vector = EdgeVectorParams::builder(dim, Distance::Cosine)
        .on_disk(false)
        .build();
    let optimizers = EdgeOptimizersConfig {
        indexing_threshold: Some(options.indexing_threshold_kb),
        ..EdgeOptimizersConfig::default()
    };
    EdgeConfig::builder()
        .on_disk_payload(true)
        .vector(DEFAULT_VECTOR_NAME, vector)
        .hnsw_config(hnsw)
        .optimizers(optimizers)
        .build()
}

fn check_compatible(shard: &EdgeShard, path: &Path, dim: usize) -> Result<()> {
    let config = shard.config();
    let incompatible = |reason: String| Error::Incompatible {
        location: path.display().to_string(),
        reason,
    };
    let Some(params) = config.vectors.get(DEFAULT_VECTOR_NAME) else {
        return Err(incompatible("it has no default dense vector".into()));
    };
    if params.size != dim {
        return Err(incompatible(format!(
            "it stores {}-dim vectors, {dim} requested",
            params.size
        )));
    }
    if params.distance != Distance::Cosine {
        return Err(incompatible(format!(
            "it uses {:?} distance, cosine expected",
            params.distance
        )));
    }
    Ok(())
}

fn payload(p: &VectorPoint) -> Value {
    json!({
        field::SCRIPT_ID: p.id,
        field::ORG_ID: p.org_id,
        field::LANGUAGE: p.language,
        field::SCENARIO: p.scenario,
        field::PRODUCTS: p.products,
        field::VERSION: p.version,
    })
}

fn keyword_condition(key: &str, value: &str) -> Condition {
    Condition::Field(FieldCondition::new_match(
        key_path(key),
        Match::from(value.to_string()),
    ))
}

fn edge_filter(filter: &VectorFilter) -> Result<Filter> {
    let must = filter
        .conditions()?
        .into_iter()
        .map(|(key, value)| keyword_condition(key, value))
        .collect();
    Ok(Filter {
        must: Some(must),
        ..Filter::new()
    })
}

fn engine(operation: &'static str) -> impl Fn(qdrant_edge::OperationError) -> Error {
    move |e| Error::Engine {
        backend: BACKEND,
        operation,
        message: e.to_string(),
    }
}

fn missing_payload(id: &PointId, key: &str) -> Error {
    Error::Engine {
        backend: BACKEND,
        operation: "read payload",
        message: format!("point {id:?} has no usable {key:?} in its payload"),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "engine panicked".to_string()
    }
}

/// A payload key as an engine path. Our keys are fixed identifiers, always valid paths.
fn key_path(key: &str) -> JsonPath {
    key.parse()
        .unwrap_or_else(|_| unreachable!("payload key {key:?} is a plain identifier"))
}
