//! What every handler can reach.

use std::sync::Arc;

use assist_models::store::{ModelStore, ProgressMode, StoreOptions};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::Db;
use crate::jobs::{JobQueue, QueueConfig};
use crate::readiness::Readiness;

/// Shared state of the service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub jobs: JobQueue,
    pub models: ModelStore,
    pub readiness: Readiness,
    /// Fires when the service begins shutting down.
    pub shutdown: CancellationToken,
    /// Script search; `None` until the embedder is loaded (suggestions then
    /// answer 503 `model_missing`).
    pub search: Option<crate::search::SearchService>,
}

impl AppState {
    /// Open the database (running migrations) and the model store.
    pub async fn open(config: &Config) -> anyhow::Result<AppState> {
        let db = Db::open(
            &config.storage.effective_database_url(),
            config.storage.db_max_connections,
        )
        .await?;
        Self::with_db(config, db)
    }

    /// Start script search: load the embedder (from `--model-path embedder=…`
    /// or the store), open the index and reconcile it with the database.
    /// Without a ready embedder the service runs without suggestions and
    /// says so in the log (and `/readyz` if the embedder is required).
    pub async fn start_search(&mut self) -> anyhow::Result<()> {
        let dir = match self.models.ready_path("embedder") {
            Ok(dir) => dir,
            Err(err) => {
                tracing::warn!(error = %err, "script search is off until the embedder is fetched");
                return Ok(());
            }
        };
        let config = self.config.clone();
        let search =
            tokio::task::spawn_blocking(move || crate::search::SearchService::open(&config, &dir))
                .await??;
        let repair = search
            .reconcile(&self.db)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tracing::info!(
            reindexed = repair.reindexed.len(),
            removed = repair.removed.len(),
            "script index consistent with the database"
        );
        self.search = Some(search);
        Ok(())
    }

    /// Build the state around an open database.
    pub fn with_db(config: &Config, db: Db) -> anyhow::Result<AppState> {
        let registered = config.models.registered().map_err(anyhow::Error::msg)?;
        let models = ModelStore::new(
            &config.models.model_dir,
            StoreOptions {
                python: config.models.python.clone(),
                // The server logs through tracing; no bars or plain lines.
                progress: ProgressMode::Silent,
                registered,
            },
        )?;
        let jobs = JobQueue::new(db.clone(), QueueConfig::from_config(&config.jobs));
        let readiness = Readiness::new(config.models.required_models.clone());
        Ok(AppState {
            config: Arc::new(config.clone()),
            db,
            jobs,
            models,
            readiness,
            shutdown: CancellationToken::new(),
            search: None,
        })
    }
}
