//! Risk screening for the service: one compiled [`RiskEngine`] per
//! organisation, built from its approved lexicon and rebuilt when the
//! lexicon changes, plus the embedder for the semantic detector.
//!
//! Engines are cached. A check re-reads the lexicon's stamp (entry count and
//! newest update) at most once per [`STAMP_TTL`], so an approval on any
//! server node reaches every node within that time, and the approving node
//! at once (the KB routes call [`Screening::invalidate`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assist_models::embed::EmbedHandle;

use crate::config::AlertsConfig;
use crate::db::Db;
use crate::error::ApiError;
use assist_risk::{
    CheckOptions, Detectors, EngineOptions, RiskEngine, RiskHit, SEMANTIC_KIND, Speaker,
};

/// How long a cached engine is trusted without re-reading the lexicon stamp.
pub const STAMP_TTL: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Cached {
    engine: Arc<RiskEngine>,
    stamp: (i64, i64),
    checked: Instant,
}

/// Per-organisation risk engines. Cheap to clone.
#[derive(Clone)]
pub struct Screening {
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    /// Serialises builds so a burst of checks builds an engine once.
    build: Arc<tokio::sync::Mutex<()>>,
    embedder: Option<EmbedHandle>,
    semantic: bool,
    allowed_numbers: Vec<String>,
}

impl std::fmt::Debug for Screening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screening")
            .field("semantic", &(self.semantic && self.embedder.is_some()))
            .finish()
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(anyhow::anyhow!("{e}"))
}

impl Screening {
    pub fn new(config: &AlertsConfig) -> Self {
        Screening {
            cache: Arc::default(),
            build: Arc::default(),
            embedder: None,
            semantic: config.risk_semantic,
            allowed_numbers: config.risk_allowed_numbers.clone(),
        }
    }

    /// Use `embedder` for the semantic detector (exemplars and messages).
    pub fn set_embedder(&mut self, embedder: EmbedHandle) {
        self.embedder = Some(embedder);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Forget the organisation's engine (its lexicon changed).
    pub fn invalidate(&self, org_id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(org_id);
    }

    /// The organisation's engine, built or rebuilt when needed.
    pub async fn engine(&self, db: &Db, org_id: &str) -> Result<Arc<RiskEngine>, ApiError> {
        if let Some(engine) = self.fresh(org_id) {
            return Ok(engine);
        }
        let stamp = db.kb_lexicon_stamp(org_id).await?;
        if let Some(engine) = self.same_stamp(org_id, stamp) {
            return Ok(engine);
        }
        let _building = self.build.lock().await;
        if let Some(engine) = self.same_stamp(org_id, stamp) {
            return Ok(engine);
        }
        let entries = db.kb_approved_lexicon(org_id).await?;
        let mut engine = RiskEngine::build(
            entries,
            EngineOptions {
                allowed_numbers: self.allowed_numbers.clone(),
                ..EngineOptions::default()
            },
        )
        .map_err(internal)?;
        if let Some(embedder) = self.semantic_embedder() {
            let texts: Vec<String> = engine
                .exemplar_texts()
                .into_iter()
                .map(str::to_string)
                .collect();
            if !texts.is_empty() {
                let vectors = embedder
                    .embed(texts, SEMANTIC_KIND)
                    .await
                    .map_err(internal)?;
                engine.attach_exemplar_vectors(vectors).map_err(internal)?;
            }
        }
        tracing::info!(
            org_id,
            entries = engine.entry_count(),
            semantic = engine.semantic_ready(),
            "risk engine built"
        );
        let engine = Arc::new(engine);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(
            org_id.to_string(),
            Cached {
                engine: engine.clone(),
                stamp,
                checked: Instant::now(),
            },
        );
        Ok(engine)
    }

    fn fresh(&self, org_id: &str) -> Option<Arc<RiskEngine>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(org_id)
            .filter(|c| c.checked.elapsed() < STAMP_TTL)
            .map(|c| c.engine.clone())
    }

    fn same_stamp(&self, org_id: &str, stamp: (i64, i64)) -> Option<Arc<RiskEngine>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let c = cache.get_mut(org_id).filter(|c| c.stamp == stamp)?;
        c.checked = Instant::now();
        Some(c.engine.clone())
    }

    fn semantic_embedder(&self) -> Option<&EmbedHandle> {
        self.embedder.as_ref().filter(|_| self.semantic)
    }

    /// Check texts with every detector (semantic too when the embedder is
    /// loaded and the lexicon has exemplars). One result per input, in order.
    pub async fn check_all(
        &self,
        db: &Db,
        org_id: &str,
        texts: &[(&str, Speaker)],
    ) -> Result<Vec<Vec<RiskHit>>, ApiError> {
        let engine = self.engine(db, org_id).await?;
        let vectors = match self.semantic_embedder() {
            Some(embedder) if engine.semantic_ready() && !texts.is_empty() => Some(
                embedder
                    .embed(
                        texts.iter().map(|(t, _)| t.to_string()).collect(),
                        SEMANTIC_KIND,
                    )
                    .await?,
            ),
            _ => None,
        };
        Ok(texts
            .iter()
            .enumerate()
            .map(|(i, (text, role))| {
                engine.check_with(
                    text,
                    *role,
                    None,
                    &CheckOptions {
                        detectors: Detectors::ALL,
                        query_vector: vectors.as_ref().map(|v| v[i].as_slice()),
                    },
                )
            })
            .collect())
    }
}
