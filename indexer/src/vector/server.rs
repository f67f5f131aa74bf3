//! [`QdrantServerIndex`]: the same [`VectorIndex`] on a Qdrant server or cluster, over gRPC with
//! `qdrant-client`.
//!
//! `qdrant-client` is async; [`VectorIndex`] is blocking. Each index owns a small tokio runtime
//! (one worker thread, named `qdrant-client`) that drives the gRPC connections. A call spawns its
//! request on that runtime and waits for the answer on a plain channel. Reasons for this choice,
//! rather than `Handle::block_on` on the caller's runtime:
//!
//! * it never panics, whatever thread calls it (`block_on` panics inside an async task);
//! * it does not depend on the caller having a runtime at all (CLI tools, tests);
//! * the connection pool lives on one runtime for the life of the index instead of on whichever
//!   runtime happened to make the first call.
//!
//! Async callers still use `spawn_blocking`, as for the embedded engine: the wait blocks the
//! calling thread. The runtime is shut down in the background on drop, so dropping the index in
//! async code is safe too.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, HnswConfigDiffBuilder,
    KeywordIndexParamsBuilder, ListValue, PayloadIncludeSelector, PointId, PointStruct,
    PointsIdsList, Query, QueryPointsBuilder, ScrollPointsBuilder, SearchParamsBuilder,
    UpsertPointsBuilder, Value,
};
use qdrant_client::{Payload, Qdrant, QdrantError};

use super::{
    Error, Result, VectorFilter, VectorHit, VectorIndex, VectorPoint, check_points, check_query,
    field, point_uuid,
};

const BACKEND: &str = "qdrant-server";
/// Points per request when upserting or scrolling.
const PAGE: usize = 256;

/// Connection and collection settings of a [`QdrantServerIndex`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServerOptions {
    /// Per-request timeout; a request over it is [`Error::Unreachable`].
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// HNSW settings used when this index creates the collection.
    pub hnsw_m: u64,
    pub hnsw_ef_construct: u64,
    /// HNSW search beam width (raised to `k` when `k` is larger).
    pub search_ef: u64,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            hnsw_m: 16,
            hnsw_ef_construct: 100,
            search_ef: 128,
        }
    }
}

/// Script vectors in a collection of a Qdrant server (cosine distance, keyword payload indexes;
/// `org_id` is a tenant index). Writes wait until the server has applied them.
pub struct QdrantServerIndex {
    client: Qdrant,
    /// `Some` until drop, which shuts it down in the background.
    runtime: Option<tokio::runtime::Runtime>,
    url: String,
    collection: String,
    dim: usize,
    options: ServerOptions,
}

impl fmt::Debug for QdrantServerIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QdrantServerIndex")
            .field("url", &self.url)
            .field("collection", &self.collection)
            .field("dim", &self.dim)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Drop for QdrantServerIndex {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl QdrantServerIndex {
    /// Connects to `url` (gRPC, e.g. `http://127.0.0.1:6334`) and creates `collection` with its
    /// payload indexes if missing. An existing collection must hold `dim`-dim cosine vectors.
    pub fn connect(
        url: &str,
        api_key: Option<String>,
        collection: &str,
        dim: usize,
        options: ServerOptions,
    ) -> Result<Self> {
        if dim == 0 {
            return Err(Error::InvalidInput("vector dimension must be > 0".into()));
        }
        if collection.is_empty() {
            return Err(Error::InvalidInput("collection name is empty".into()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("qdrant-client")
            .enable_all()
            .build()
            .map_err(|e| Error::Engine {
                backend: BACKEND,
                operation: "start runtime",
                message: e.to_string(),
            })?;
        let client = {
            let _context = runtime.enter();
            Qdrant::from_url(url)
                .api_key(api_key)
                .timeout(options.timeout)
                .connect_timeout(options.connect_timeout)
                .skip_compatibility_check()
                .build()
                .map_err(|e| Error::InvalidInput(format!("qdrant url {url:?}: {e}")))?
        };
        let index = Self {
            client,
            runtime: Some(runtime),
            url: url.to_string(),
            collection: collection.to_string(),
            dim,
            options,
        };
        index.ensure_collection()?;
        Ok(index)
    }

    /// Name of the collection.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// Runs one client call on the internal runtime and waits for it.
    fn run<T, F, Fut>(&self, operation: &'static str, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Qdrant, String) -> Fut,
        Fut: Future<Output = Result<T, QdrantError>> + Send + 'static,
    {
        let runtime = self.runtime.as_ref().ok_or_else(|| Error::Engine {
            backend: BACKEND,
            operation,
            message: "client runtime is shut down".into(),
        })?;
        let future = call(self.client.clone(), self.collection.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            // The receiver only goes away if the caller is gone; nothing to report then.
            let _ = tx.send(future.await);
        });
        let answer = rx.recv().map_err(|_| Error::Engine {
            backend: BACKEND,
            operation,
            message: "client task ended without an answer".into(),
        })?;
        answer.map_err(|e| self.map_error(operation, e))
    }

    fn map_error(&self, operation: &'static str, e: QdrantError) -> Error {
        use tonic_code::is_unreachable;
        match &e {
            QdrantError::ResponseError { status }
                if is_unreachable(status.code(), status.message()) =>
            {
                Error::Unreachable {
                    url: self.url.clone(),
                    message: format!("{operation}: {}", status.message()),
                }
            }
            QdrantError::ResourceExhaustedError { .. } | QdrantError::Io(_) => Error::Unreachable {
                url: self.url.clone(),
                message: format!("{operation}: {e}"),
            },
            _ => Error::Engine {
                backend: BACKEND,
                operation,
                message: e.to_string(),
            },
        }
    }

    fn ensure_collection(&self) -> Result<()> {
        let exists = self.run("collection exists", |c, name| async move {
            c.collection_exists(name).await
        })?;
        if !exists {
            let dim = self.dim as u64;
            let hnsw = HnswConfigDiffBuilder::default()
                .m(self.options.hnsw_m)
                .ef_construct(self.options.hnsw_ef_construct);
            let created = self.run("create collection", move |c, name| async move {
                c.create_collection(
                    CreateCollectionBuilder::new(name)
                        .vectors_config(qdrant_client::qdrant::VectorParamsBuilder::new(
                            dim,
                            Distance::Cosine,
                        ))
                        .hnsw_config(hnsw)
                        .on_disk_payload(true),
                )
                .await
            });
            // Another node may have created it between the two calls; the check below decides.
            if let Err(e) = created
                && !self.run("collection exists", |c, name| async move {
                    c.collection_exists(name).await
                })?
            {
                return Err(e);
            }
        }
        let info = self.run("collection info", |c, name| async move {
            c.collection_info(name).await
        })?;
        let info = info
            .result
            .ok_or_else(|| self.incompatible("no collection info"))?;
        let params = info
            .config
            .as_ref()
            .and_then(|c| c.params.as_ref())
            .and_then(|p| p.vectors_config.as_ref())
            .and_then(|v| v.config.as_ref());
        match params {
            Some(VectorsConfigKind::Params(p)) => {
                if p.size != self.dim as u64 {
                    return Err(self.incompatible(&format!(
                        "it stores {}-dim vectors, {} requested",
                        p.size, self.dim
                    )));
                }
                if p.distance != Distance::Cosine as i32 {
                    return Err(self.incompatible("its distance is not cosine"));
                }
            }
            _ => return Err(self.incompatible("it has no single unnamed dense vector")),
        }
        for name in field::KEYWORDS {
            if info.payload_schema.contains_key(name) {
                continue;
            }
            let params = KeywordIndexParamsBuilder::default().is_tenant(name == field::ORG_ID);
            self.run("create payload index", move |c, collection| async move {
                c.create_field_index(
                    CreateFieldIndexCollectionBuilder::new(collection, name, FieldType::Keyword)
                        .field_index_params(params)
                        .wait(true),
                )
                .await
            })?;
        }
        Ok(())
    }

    fn incompatible(&self, reason: &str) -> Error {
        Error::Incompatible {
            location: format!("{}/collections/{}", self.url, self.collection),
            reason: reason.to_string(),
        }
    }
}

impl VectorIndex for QdrantServerIndex {
    fn upsert(&self, points: &[VectorPoint]) -> Result<()> {
        check_points(points, self.dim)?;
        for chunk in points.chunks(PAGE) {
            let structs: Vec<PointStruct> = chunk
                .iter()
                .map(|p| {
                    PointStruct::new(point_uuid(&p.id).to_string(), p.vector.clone(), payload(p))
                })
                .collect();
            self.run("upsert", move |c, name| async move {
                c.upsert_points(UpsertPointsBuilder::new(name, structs).wait(true))
                    .await
            })?;
        }
        Ok(())
    }

    fn delete(&self, ids: &[String]) -> Result<()> {
        for chunk in ids.chunks(PAGE) {
            let ids: Vec<PointId> = chunk
                .iter()
                .map(|id| PointId::from(point_uuid(id).to_string()))
                .collect();
            self.run("delete", move |c, name| async move {
                c.delete_points(
                    DeletePointsBuilder::new(name)
                        .points(PointsIdsList { ids })
                        .wait(true),
                )
                .await
            })?;
        }
        Ok(())
    }

    fn search(&self, query: &[f32], filter: &VectorFilter, k: usize) -> Result<Vec<VectorHit>> {
        check_query(query, self.dim)?;
        let filter = server_filter(filter)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let vector = query.to_vec();
        let ef = self.options.search_ef.max(k as u64);
        let response = self.run("search", move |c, name| async move {
            c.query(
                QueryPointsBuilder::new(name)
                    .query(Query::new_nearest(vector))
                    .filter(filter)
                    .limit(k as u64)
                    .params(SearchParamsBuilder::default().hnsw_ef(ef))
                    .with_payload(PayloadIncludeSelector {
                        fields: vec![field::SCRIPT_ID.to_string()],
                    }),
            )
            .await
        })?;
        response
            .result
            .into_iter()
            .map(|p| {
                let id = string_field(&p.payload, field::SCRIPT_ID)
                    .ok_or_else(|| missing_payload(p.id.as_ref(), field::SCRIPT_ID))?;
                Ok(VectorHit {
                    id: id.to_string(),
                    score: p.score,
                })
            })
            .collect()
    }

    fn ids(&self, org_id: Option<&str>) -> Result<Vec<(String, u32)>> {
        let filter =
            org_id.map(|org| Filter::must([Condition::matches(field::ORG_ID, org.to_string())]));
        let mut out = Vec::new();
        let mut offset: Option<PointId> = None;
        loop {
            let filter = filter.clone();
            let page_offset = offset.take();
            let response = self.run("scroll", move |c, name| async move {
                let mut request = ScrollPointsBuilder::new(name)
                    .limit(PAGE as u32)
                    .with_payload(PayloadIncludeSelector {
                        fields: vec![field::SCRIPT_ID.to_string(), field::VERSION.to_string()],
                    })
                    .with_vectors(false);
                if let Some(filter) = filter {
                    request = request.filter(filter);
                }
                if let Some(page_offset) = page_offset {
                    request = request.offset(page_offset);
                }
                c.scroll(request).await
            })?;
            for p in &response.result {
                let id = string_field(&p.payload, field::SCRIPT_ID)
                    .ok_or_else(|| missing_payload(p.id.as_ref(), field::SCRIPT_ID))?;
                let version = p
                    .payload
                    .get(field::VERSION)
                    .and_then(|v| match v.kind {
                        Some(Kind::IntegerValue(n)) => u32::try_from(n).ok(),
                        _ => None,
                    })
                    .ok_or_else(|| missing_payload(p.id.as_ref(), field::VERSION))?;
                out.push((id.to_string(), version));
            }
            match response.next_page_offset {
                Some(next) => offset = Some(next),
                None => return Ok(out),
            }
        }
    }

    fn count(&self) -> Result<usize> {
        let response = self.run("count", |c, name| async move {
            c.count(CountPointsBuilder::new(name).exact(true)).await
        })?;
        Ok(response.result.map_or(0, |r| r.count as usize))
    }

    /// The server persists every acknowledged write itself (`wait = true`): nothing to do.
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

fn payload(p: &VectorPoint) -> Payload {
    let products = Value {
        kind: Some(Kind::ListValue(ListValue {
            values: p.products.iter().map(|s| Value::from(s.clone())).collect(),
        })),
    };
    let map: HashMap<&str, Value> = HashMap::from([
        (field::SCRIPT_ID, Value::from(p.id.clone())),
        (field::ORG_ID, Value::from(p.org_id.clone())),
        (field::LANGUAGE, Value::from(p.language.clone())),
        (field::SCENARIO, Value::from(p.scenario.clone())),
        (field::PRODUCTS, products),
        (field::VERSION, Value::from(i64::from(p.version))),
    ]);
    Payload::from(map)
}

fn server_filter(filter: &VectorFilter) -> Result<Filter> {
    let conditions: Vec<Condition> = filter
        .conditions()?
        .into_iter()
        .map(|(key, value)| Condition::matches(key, value.to_string()))
        .collect();
    Ok(Filter::must(conditions))
}

fn string_field<'a>(payload: &'a HashMap<String, Value>, key: &str) -> Option<&'a str> {
    match payload.get(key)?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s),
        _ => None,
    }
}

fn missing_payload(id: Option<&PointId>, key: &str) -> Error {
    let id = match id.and_then(|i| i.point_id_options.as_ref()) {
        Some(PointIdOptions::Uuid(u)) => u.clone(),
        Some(PointIdOptions::Num(n)) => n.to_string(),
        None => "?".to_string(),
    };
    Error::Engine {
        backend: BACKEND,
        operation: "read payload",
        message: format!("point {id} has no usable {key:?} in its payload"),
    }
}

mod tonic_code {
    /// Statuses that mean "the server did not get to answer": worth a retry later.
    /// `qdrant-client` 1.20 reports a failed connect as `Internal` "Failed to connect to …".
    pub(super) fn is_unreachable(code: tonic::Code, message: &str) -> bool {
        match code {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                true
            }
            tonic::Code::Internal => message.starts_with("Failed to connect to"),
            _ => false,
        }
    }
}
