//! Script search for suggestions: the embedder's owner thread plus the hybrid
//! retriever (Tantivy + Qdrant), kept in step with what the database says
//! is approved.
//!
//! The index lives under `<data_dir>/index/` (`bm25/` and `vectors/`). At
//! startup [`SearchService::reconcile`] compares it with the approved scripts
//! in the database and repairs any difference (e.g. after a crash between
//! an approval and its indexing); every approve / retire updates it at once.

use std::sync::Arc;
use std::time::Instant;

use assist_indexer::bm25::{Bm25Index, SearchFilter};
use assist_indexer::retriever::{Mode, Repair, Retriever};
use assist_indexer::vector::{VectorBackend, open_vector_index};
use assist_indexer::{FusedHit, FusionWeights};
use assist_knowledge_base::{ApprovedScript, Language, Scenario, ScriptContent};
use assist_models::embed::{EmbedHandle, EmbedKind};
use assist_models::worker::WorkerConfig;
use serde::Serialize;

use crate::config::Config;
use crate::db::Db;
use crate::db::kb::KbContent;
use crate::error::ApiError;

/// Embedder + retriever.
#[derive(Clone)]
pub struct SearchService {
    retriever: Arc<Retriever>,
    embedder: EmbedHandle,
}

impl std::fmt::Debug for SearchService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchService")
            .field("retriever", &self.retriever)
            .finish()
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(anyhow::anyhow!("{e}"))
}

impl SearchService {
    /// Open the index in the data directory and start the embedder from the
    /// model store (blocking: call at startup).
    pub fn open(config: &Config, embedder_dir: &std::path::Path) -> anyhow::Result<SearchService> {
        let embedder = EmbedHandle::spawn(
            WorkerConfig::new("embedder", config.models.model_queue_capacity),
            embedder_dir,
        )?;
        Self::with_embedder(config, embedder)
    }

    /// The embedder this service runs (shared with risk screening).
    pub fn embedder(&self) -> &EmbedHandle {
        &self.embedder
    }

    /// Open the index around an already running embedder (tests use the fake one).
    pub fn with_embedder(config: &Config, embedder: EmbedHandle) -> anyhow::Result<SearchService> {
        let root = config.storage.data_dir.join("index");
        let bm25 = Bm25Index::open(&root.join("bm25"))?;
        let backend = match &config.index.qdrant_url {
            Some(url) => VectorBackend::Server {
                url: url.clone(),
                api_key: config.index.qdrant_api_key.clone(),
                collection: config.index.qdrant_collection.clone(),
            },
            None => VectorBackend::Edge {
                path: root.join("vectors"),
            },
        };
        let vectors = open_vector_index(backend, embedder.dim())?;
        let retriever = Retriever::new(
            bm25,
            vectors,
            FusionWeights {
                bm25: config.index.fusion_bm25_weight,
                vector: config.index.fusion_vector_weight,
                k: 60.0,
            },
        );
        Ok(SearchService {
            retriever: Arc::new(retriever),
            embedder,
        })
    }

    fn passage(s: &ApprovedScript) -> String {
        format!("{}\n{}", s.title(), s.body())
    }

    /// Index approved scripts (embedding them on the embedder's thread).
    pub async fn index(&self, scripts: Vec<ApprovedScript>) -> Result<(), ApiError> {
        if scripts.is_empty() {
            return Ok(());
        }
        let mut vectors = Vec::with_capacity(scripts.len());
        for chunk in scripts.chunks(32) {
            let texts = chunk.iter().map(Self::passage).collect();
            vectors.extend(self.embedder.embed(texts, EmbedKind::Passage).await?);
        }
        let retriever = Arc::clone(&self.retriever);
        tokio::task::spawn_blocking(move || {
            retriever.upsert(&scripts, &vectors)?;
            retriever
                .vectors()
                .flush()
                .map_err(|e| assist_indexer::Error::Engine(e.to_string()))
        })
        .await
        .map_err(internal)?
        .map_err(internal)
    }

    /// Take scripts off the index.
    pub async fn remove(&self, ids: Vec<String>) -> Result<(), ApiError> {
        let retriever = Arc::clone(&self.retriever);
        tokio::task::spawn_blocking(move || retriever.delete(&ids))
            .await
            .map_err(internal)?
            .map_err(internal)
    }

    /// Make the index match the database's approved scripts.
    pub async fn reconcile(&self, db: &Db) -> Result<Repair, ApiError> {
        let approved = db.kb_approved_scripts(None).await?;
        let wanted: Vec<(String, u32)> = approved
            .iter()
            .map(|s| (s.id().to_string(), s.version()))
            .collect();
        let retriever = Arc::clone(&self.retriever);
        let repair = tokio::task::spawn_blocking(move || retriever.reconcile(&wanted))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let stale: Vec<ApprovedScript> = approved
            .into_iter()
            .filter(|s| repair.reindexed.iter().any(|id| id == s.id()))
            .collect();
        self.index(stale).await?;
        Ok(repair)
    }

    /// Hybrid search for an utterance. Returns hits and the milliseconds taken.
    ///
    /// BM25 runs on a blocking thread while the embedder's owner thread embeds
    /// the query; the vector search follows the embedding, then both fuse.
    pub async fn search(
        &self,
        mode: Mode,
        text: &str,
        filter: SearchFilter,
        k: usize,
    ) -> Result<(Vec<FusedHit>, f64), ApiError> {
        let started = Instant::now();
        let n = self.retriever.candidates_for(k);
        let lexical = async {
            if mode == Mode::Vector {
                return Ok(Vec::new());
            }
            let retriever = Arc::clone(&self.retriever);
            let (text, filter) = (text.to_string(), filter.clone());
            tokio::task::spawn_blocking(move || retriever.lexical(&text, &filter, n))
                .await
                .map_err(internal)?
                .map_err(internal)
        };
        let semantic = async {
            if mode == Mode::Bm25 {
                return Ok(Vec::new());
            }
            let qv = self
                .embedder
                .embed_one(text.to_string(), EmbedKind::Query)
                .await?;
            let retriever = Arc::clone(&self.retriever);
            let filter = filter.clone();
            tokio::task::spawn_blocking(move || retriever.semantic(&qv, &filter, n))
                .await
                .map_err(internal)?
                .map_err(internal)
        };
        let (lexical, semantic) = tokio::try_join!(lexical, semantic)?;
        let hits = self.retriever.fuse(mode, &lexical, &semantic, k);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        metrics::histogram!("assist_suggest_seconds").record(ms / 1000.0);
        Ok((hits, ms))
    }

    /// Scripts in the lexical index (the cheap count; both halves agree after reconcile).
    pub fn indexed(&self) -> u64 {
        self.retriever.bm25().count()
    }

    /// Throw the index away and build it again from the database's approved
    /// scripts, `progress(done, total)` after every batch. For a damaged or
    /// lost index, or after changing the embedder; the caller holds the data
    /// directory lock so no server writes meanwhile.
    pub async fn rebuild(
        &self,
        db: &Db,
        progress: impl Fn(usize, usize),
    ) -> Result<Repair, ApiError> {
        let approved = db.kb_approved_scripts(None).await?;
        let retriever = Arc::clone(&self.retriever);
        // Reconciling against nothing removes every entry from both halves.
        let cleared = tokio::task::spawn_blocking(move || retriever.reconcile(&[]))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let total = approved.len();
        let mut repair = Repair {
            removed: cleared.removed,
            ..Repair::default()
        };
        progress(0, total);
        let mut done = 0;
        let mut rest = approved;
        while !rest.is_empty() {
            let batch: Vec<ApprovedScript> = rest.drain(..rest.len().min(256)).collect();
            done += batch.len();
            repair
                .reindexed
                .extend(batch.iter().map(|s| s.id().to_string()));
            self.index(batch).await?;
            progress(done, total);
        }
        Ok(repair)
    }

    pub fn shutdown(&self) {
        self.embedder.shutdown();
    }
}

#[derive(Debug, Serialize)]
pub struct Why {
    pub bm25_rank: Option<usize>,
    pub vector_rank: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct Suggestion {
    pub script_id: String,
    pub version: i64,
    pub title: String,
    pub body: String,
    pub scenario: Scenario,
    pub language: Language,
    pub products: Vec<String>,
    pub score: f64,
    pub why: Why,
}

#[derive(Debug, Serialize)]
pub struct SuggestResponse {
    pub suggestions: Vec<Suggestion>,
    pub mode: Mode,
    pub took_ms: f64,
}

fn running(search: Option<&SearchService>) -> Result<&SearchService, ApiError> {
    search.ok_or_else(|| {
        ApiError::ModelMissing(
            "script search is not running: the embedder is not ready; run `assist models fetch --only embedder` and restart".into(),
        )
    })
}

fn check_filters(language: &Option<String>, scenario: &Option<String>) -> Result<(), ApiError> {
    if let Some(l) = language
        && Language::parse(l).is_none()
    {
        return Err(ApiError::invalid(format!(
            "unknown language `{l}` (zh or en)"
        )));
    }
    if let Some(s) = scenario
        && Scenario::parse(s).is_none()
    {
        return Err(ApiError::invalid(format!("unknown scenario `{s}`")));
    }
    Ok(())
}

/// Short utterances lean on the turn before them.
pub fn query_text(utterance: &str, last_turns: &[String]) -> String {
    let u = utterance.trim();
    if u.chars().filter(|c| c.is_alphanumeric()).count() < 6
        && let Some(prev) = last_turns.last()
    {
        return format!("{} {u}", prev.trim());
    }
    u.to_string()
}

/// A search of an organisation's approved scripts.
#[derive(Debug, Clone)]
pub struct SuggestQuery {
    pub mode: Mode,
    /// What to search on (see [`query_text`] for a short utterance).
    pub text: String,
    /// `zh` or `en`.
    pub language: Option<String>,
    pub product: Option<String>,
    pub scenario: Option<String>,
    /// How many suggestions.
    pub k: usize,
}

/// The approved scripts that best answer `query`, best first. Used by
/// `POST /v1/suggest`, `GET /v1/kb/search` and the live session.
pub async fn suggest(
    db: &Db,
    search: Option<&SearchService>,
    org_id: &str,
    query: SuggestQuery,
) -> Result<SuggestResponse, ApiError> {
    let SuggestQuery {
        mode,
        text,
        language,
        product,
        scenario,
        k,
    } = query;
    check_filters(&language, &scenario)?;
    let search = running(search)?;
    let filter = SearchFilter {
        org_id: org_id.to_string(),
        language: language
            .as_deref()
            .and_then(Language::parse)
            .map(|l| l.as_str().to_string()),
        scenario: scenario
            .as_deref()
            .and_then(Scenario::parse)
            .map(|s| s.as_str().to_string()),
        product,
    };
    let (hits, took_ms) = search.search(mode, &text, filter, k).await?;
    let mut suggestions = Vec::with_capacity(hits.len());
    for hit in hits {
        // Always the approved version: an edit under review is never shown.
        let item = match db.kb_get(org_id, &hit.id).await {
            Ok(item) => item,
            Err(_) => continue,
        };
        let Some(version) = item.approved_version else {
            continue;
        };
        let content: ScriptContent = match item.approved.unwrap_or(item.head) {
            KbContent::Script(c) => c,
            KbContent::Lexicon(_) => continue,
        };
        suggestions.push(Suggestion {
            script_id: item.external_id.unwrap_or(item.id),
            version,
            title: content.title,
            body: content.body,
            scenario: content.scenario,
            language: content.language,
            products: content.products,
            score: hit.score,
            why: Why {
                bm25_rank: hit.bm25_rank,
                vector_rank: hit.vector_rank,
            },
        });
    }
    Ok(SuggestResponse {
        suggestions,
        mode,
        took_ms,
    })
}
