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
        })
    }
}
