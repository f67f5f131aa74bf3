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
    pub search: Option<crate::suggest::SearchService>,
    /// Speech recognition for calls and `/v1/audio/transcriptions`; `None`
    /// until the Whisper model is loaded (uploads then answer 503 `model_missing`).
    pub speech: Option<crate::speech::SpeechService>,
    /// The LLM for post-call analysis; `None` when not configured or not
    /// fetched (analyses then carry the deterministic parts only).
    pub llm: Option<assist_models::llm::LlmHandle>,
    /// Risk engines per organisation (semantic detector once the embedder is loaded).
    pub screening: crate::alerts::screening::Screening,
    /// Wakes alert streams; serialises alert-log writers.
    pub alerts: crate::alerts::AlertHub,
    /// Live call-assist sessions on this node.
    pub live: Arc<crate::live::LiveHub>,
}

impl AppState {
    /// Open the database (running migrations) and the model store.
    pub async fn open(config: &Config) -> anyhow::Result<AppState> {
        let db = Db::open(
            &config.storage.effective_database_url(),
            config.storage.db_max_connections,
        )
        .await?
        .with_secret_key(crate::secrets::SecretKey::from_config(&config.storage)?);
        db.seal_clear_secrets().await?;
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
            tokio::task::spawn_blocking(move || crate::suggest::SearchService::open(&config, &dir))
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
        self.screening.set_embedder(search.embedder().clone());
        self.search = Some(search);
        Ok(())
    }

    /// Start speech recognition: load the configured Whisper model on its
    /// owner thread. Without it the service runs and says what to fetch.
    pub async fn start_speech(&mut self) -> anyhow::Result<()> {
        let model = self.config.speech.speech_model.clone();
        let dir = match self.models.ready_path(&model) {
            Ok(dir) => dir,
            Err(err) => {
                tracing::warn!(error = %err, "speech recognition is off until the model is fetched");
                return Ok(());
            }
        };
        let config = self.config.clone();
        // Silero VAD cuts live audio into utterances; without it an energy
        // gate does (worse with noise), and the log says what to fetch.
        let vad = match self.models.ready_path(assist_models::vad::ROLE) {
            Ok(vad_dir) => match assist_models::vad::SileroModel::load(&vad_dir) {
                Ok(v) => Some(v),
                Err(err) => {
                    tracing::warn!(error = %err, "live calls use an energy gate: the VAD model did not load");
                    None
                }
            },
            Err(err) => {
                tracing::warn!(error = %err, "live calls use an energy gate until the VAD model is fetched");
                None
            }
        };
        let speech = tokio::task::spawn_blocking(move || {
            crate::speech::SpeechService::open(&config, &dir, &model)
        })
        .await??
        .with_vad(vad);
        let requeued = crate::calls::requeue_orphans(&self.db, &self.jobs)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if requeued > 0 {
            tracing::info!(requeued, "calls without a transcription job were queued");
        }
        self.speech = Some(speech);
        Ok(())
    }

    /// Load the analysis LLM on its owner thread (when configured and in
    /// the store) and queue analyses that a stop left undone.
    pub async fn start_llm(&mut self) -> anyhow::Result<()> {
        let model = self.config.analysis.analysis_model.clone();
        if !model.is_empty() {
            match self.models.ready_path(&model) {
                Ok(dir) => {
                    let capacity = self.config.models.model_queue_capacity;
                    let llm = tokio::task::spawn_blocking(move || {
                        assist_models::llm::LlmHandle::spawn(
                            assist_models::worker::WorkerConfig::new("llm", capacity),
                            dir,
                        )
                    })
                    .await??;
                    self.llm = Some(llm);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "post-call analysis runs without the LLM until it is fetched");
                }
            }
        }
        let queued = crate::calls::analyze::requeue_missing(&self.db, &self.jobs)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if queued > 0 {
            tracing::info!(queued, "transcribed calls without an analysis were queued");
        }
        Ok(())
    }

    /// The job handlers this state can run: webhook deliveries always,
    /// transcription once speech is loaded.
    pub fn job_handlers(&self) -> anyhow::Result<Vec<std::sync::Arc<dyn crate::jobs::JobHandler>>> {
        let mut handlers: Vec<std::sync::Arc<dyn crate::jobs::JobHandler>> =
            vec![std::sync::Arc::new(crate::alerts::WebhookSender::new(
                self.db.clone(),
                &self.config.alerts,
            )?)];
        handlers.push(std::sync::Arc::new(crate::calls::analyze::AnalyzeCalls {
            config: self.config.clone(),
            llm: self.llm.clone(),
        }));
        if let Some(speech) = &self.speech {
            handlers.push(std::sync::Arc::new(crate::calls::TranscribeCalls {
                config: self.config.clone(),
                speech: speech.clone(),
                screening: self.screening.clone(),
                alerts: self.alerts.clone(),
                jobs: self.jobs.clone(),
            }));
        }
        Ok(handlers)
    }

    /// What recording intake needs.
    pub fn intake(&self) -> crate::calls::intake::Intake<'_> {
        crate::calls::intake::Intake {
            config: &self.config,
            db: &self.db,
            jobs: &self.jobs,
            speech_loaded: self.speech.is_some(),
        }
    }

    /// The one path from risky lines to alerts, on this state's engine,
    /// hub and queue.
    pub fn alert_ingest(&self) -> crate::alerts::AlertIngest<'_> {
        crate::alerts::AlertIngest {
            db: &self.db,
            screening: &self.screening,
            hub: &self.alerts,
            jobs: &self.jobs,
            config: &self.config.alerts,
        }
    }

    /// Startup repair for alerts: point the stream at the log's head and
    /// queue webhook deliveries a crash left without a job.
    pub async fn start_alerts(&self) -> anyhow::Result<()> {
        let head = self.db.alert_log_head().await?;
        self.alerts.published(head);
        let requeued = crate::alerts::requeue_deliveries(
            &self.db,
            &self.jobs,
            self.config.alerts.webhook_max_attempts,
        )
        .await?;
        if requeued > 0 {
            tracing::info!(requeued, "webhook deliveries without a job were queued");
        }
        Ok(())
    }

    /// Build the state around an open database (given the configured
    /// sealing key unless it has one).
    pub fn with_db(config: &Config, db: Db) -> anyhow::Result<AppState> {
        let db = if db.has_secret_key() {
            db
        } else {
            db.with_secret_key(crate::secrets::SecretKey::from_config(&config.storage)?)
        };
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
            speech: None,
            llm: None,
            screening: crate::alerts::screening::Screening::new(&config.alerts),
            alerts: crate::alerts::AlertHub::default(),
            live: Arc::new(crate::live::LiveHub::default()),
        })
    }
}
