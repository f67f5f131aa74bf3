//! Running the service: data-directory lock, listener, workers, graceful shutdown.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http::app::app;
use crate::jobs::{JobHandler, JobRunner};
use crate::state::AppState;

/// An exclusive lock on a data directory, held for the life of a server, so
/// two servers never write the same embedded database and indexes.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
    node_id: String,
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        crate::private_files::secure_data_dir(data_dir)?;
        let path = data_dir.join("assist.lock");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                anyhow::bail!(
                    "another `assist serve` is already using the data directory {} ({}); \
                     stop it first or pass a different --data-dir",
                    data_dir.display(),
                    if holder.trim().is_empty() {
                        "lock held".to_string()
                    } else {
                        format!("pid {}", holder.trim())
                    }
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        file.set_len(0).ok();
        let _ = write!(file, "{}", std::process::id());
        let _ = file.flush();
        let node_id = node_id(data_dir)?;
        Ok(DataDirLock {
            _file: file,
            path,
            node_id,
        })
    }

    /// The stable id of the node serving this data directory (the same
    /// after a restart): job leases carry it.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Read `<data_dir>/node-id`, creating it on first use.
fn node_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => {
            let id = format!("node-{}", uuid::Uuid::new_v4().simple());
            std::fs::write(&path, &id)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
    }
}

/// A server started in this process.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    server: JoinHandle<std::io::Result<()>>,
    workers: Vec<JoinHandle<()>>,
    grace: Duration,
}

impl Running {
    /// Begin shutdown: report not-ready, stop accepting, let in-flight
    /// requests and jobs finish (up to the grace period), close the database.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.state.readiness.set_draining();
        self.state.shutdown.cancel();
        self.wait().await
    }

    /// Wait until the server stops (after a signal or `shutdown`).
    pub async fn wait(self) -> anyhow::Result<()> {
        let grace = self.grace;
        let server = self.server;
        let served = server.await.context("server task failed")?;
        let workers = futures_join_all(self.workers);
        if tokio::time::timeout(grace, workers).await.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "job runners did not finish in time; their leases will expire and the jobs will be retried"
            );
        }
        if let Some(search) = &self.state.search {
            search.shutdown();
        }
        if let Some(speech) = &self.state.speech {
            speech.shutdown();
        }
        if let Some(llm) = &self.state.llm {
            llm.shutdown();
        }
        self.state.db.close().await;
        served.context("server error")?;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn futures_join_all(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

/// Start serving `state` on `listener` with job `handlers`. Returns once the
/// listener is accepting.
pub fn start(
    state: AppState,
    listener: TcpListener,
    handlers: Vec<Arc<dyn JobHandler>>,
) -> anyhow::Result<Running> {
    let addr = listener.local_addr()?;
    let cfg = state.config.clone();
    if cfg.models.verify_models_on_start {
        state.readiness.spawn_verification(state.models.clone());
    } else {
        state.readiness.skip_verification();
    }
    // One set of runners per queue, so a long transcription never holds up
    // a webhook delivery behind it.
    let poll = Duration::from_millis(cfg.jobs.job_poll_ms.max(10));
    let workers = handlers
        .into_iter()
        .flat_map(|h| {
            JobRunner::new(state.jobs.clone(), vec![h], poll)
                .spawn(cfg.jobs.job_workers, state.shutdown.clone())
        })
        .collect();
    let router = app(state.clone());
    let shutdown = state.shutdown.clone();
    let readiness = state.readiness.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.cancelled().await;
                readiness.set_draining();
                tracing::info!("shutting down: finishing in-flight requests");
            })
            .await
    });
    tracing::info!(%addr, "listening");
    Ok(Running {
        addr,
        state,
        server,
        workers,
        grace: Duration::from_secs(cfg.server.shutdown_grace_secs),
    })
}

/// `assist serve`: lock the data directory, open everything, serve until
/// SIGINT/SIGTERM, then shut down gracefully.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let lock = DataDirLock::acquire(&config.storage.data_dir)?;
    tracing::info!(lock = %lock.path().display(), "data directory locked");
    let mut state = AppState::open(&config).await?;
    state.jobs = state.jobs.clone().on_node(lock.node_id());
    let reclaimed = state.jobs.reclaim_node().await?;
    if reclaimed > 0 {
        tracing::info!(
            reclaimed,
            "jobs this node held when it stopped are taken back now"
        );
    }
    // One database lookup per stored file: in the background, so a data
    // directory with many recordings does not hold up startup.
    {
        let (db, data_dir) = (state.db.clone(), config.storage.data_dir.clone());
        tokio::spawn(async move {
            let swept =
                crate::calls::sweep_stray_files(&db, &data_dir, Duration::from_secs(600)).await;
            if swept > 0 {
                tracing::info!(swept, "files left by a crash were removed");
            }
        });
    }
    state.start_search().await?;
    state.start_speech().await?;
    state.start_llm().await?;
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    state.start_alerts().await?;
    let handlers = state.job_handlers()?;
    let running = start(state, listener, handlers)?;
    let shutdown = running.state.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
    });
    running.wait().await?;
    drop(lock);
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
