//! The service's own settings: `[server]`, `[storage]`, `[jobs]`, `[log]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use super::{default_data_dir, redact_url};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured on a terminal.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[server]`: the HTTP listener and request limits.
#[derive(Debug, Clone, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[command(next_help_heading = "Settings [server]")]
pub struct ServerConfig {
    /// Address to listen on.
    #[arg(
        long,
        env = "ASSIST_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,
    /// Largest JSON request body in bytes (413 above it).
    #[arg(long, env = "ASSIST_MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_body_bytes: usize,
    /// Largest upload (recordings) in bytes (413 above it).
    #[arg(long, env = "ASSIST_MAX_UPLOAD_BYTES", default_value_t = 512 * 1024 * 1024, global = true)]
    pub max_upload_bytes: usize,
    /// Per-request timeout in seconds for ordinary API calls.
    #[arg(
        long,
        env = "ASSIST_REQUEST_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub request_timeout_secs: u64,
    /// How long shutdown waits for in-flight requests and jobs, in seconds.
    #[arg(
        long,
        env = "ASSIST_SHUTDOWN_GRACE_SECS",
        default_value_t = 30,
        global = true
    )]
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            max_upload_bytes: 512 * 1024 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 30,
        }
    }
}

/// `[storage]`: where state lives.
#[derive(Clone, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[command(next_help_heading = "Settings [storage]")]
pub struct StorageConfig {
    /// Directory for the embedded database, indexes and uploads.
    #[arg(long, env = "ASSIST_DATA_DIR", default_value_os_t = default_data_dir(), global = true)]
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://PATH` or `postgres://…`. Default: SQLite in the data directory.
    #[arg(long, env = "ASSIST_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Connections in the database pool.
    #[arg(
        long,
        env = "ASSIST_DB_MAX_CONNECTIONS",
        default_value_t = 8,
        global = true
    )]
    pub db_max_connections: u32,
    /// Key file that seals secrets at rest (webhook signing secrets, the
    /// guard signing key); created 0600 when absent, refused when others can
    /// read it. Default: `assist.key` beside the config file, else
    /// `secret.key` in the data directory. Back it up apart from the database.
    #[arg(long, env = "ASSIST_SECRET_KEY_FILE", global = true)]
    pub secret_key_file: Option<PathBuf>,
    /// The sealing key itself (base64 of 32 bytes) instead of a file; set it
    /// in the environment, not on the command line.
    #[arg(long, env = "ASSIST_SECRET_KEY", hide_env_values = true, global = true)]
    pub secret_key: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: default_data_dir(),
            database_url: None,
            db_max_connections: 8,
            secret_key_file: None,
            secret_key: None,
        }
    }
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("db_max_connections", &self.db_max_connections)
            .field("secret_key_file", &self.secret_key_file)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl StorageConfig {
    /// The database URL to use: the configured one, or SQLite in the data directory.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("assist.db").display()),
        }
    }

    /// The key file that seals secrets (see `secret_key_file`).
    pub fn effective_secret_key_file(&self) -> PathBuf {
        self.secret_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secret.key"))
    }
}

/// `[jobs]`: the durable job queue.
#[derive(Debug, Clone, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[command(next_help_heading = "Settings [jobs]")]
pub struct JobsConfig {
    /// Concurrent job runners in this process (0 = this node runs no jobs).
    #[arg(long, env = "ASSIST_JOB_WORKERS", default_value_t = 2, global = true)]
    pub job_workers: usize,
    /// A leased job that sends no heartbeat for this long is retried elsewhere, in seconds.
    #[arg(
        long,
        env = "ASSIST_JOB_LEASE_SECS",
        default_value_t = 60,
        global = true
    )]
    pub job_lease_secs: u64,
    /// Attempts before a job is dead-lettered.
    #[arg(
        long,
        env = "ASSIST_JOB_MAX_ATTEMPTS",
        default_value_t = 5,
        global = true
    )]
    pub job_max_attempts: u32,
    /// First retry delay in seconds; doubles per attempt (with jitter).
    #[arg(
        long,
        env = "ASSIST_JOB_RETRY_BASE_SECS",
        default_value_t = 5,
        global = true
    )]
    pub job_retry_base_secs: u64,
    /// How often an idle runner polls for work, in milliseconds.
    #[arg(long, env = "ASSIST_JOB_POLL_MS", default_value_t = 500, global = true)]
    pub job_poll_ms: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            job_workers: 2,
            job_lease_secs: 60,
            job_max_attempts: 5,
            job_retry_base_secs: 5,
            job_poll_ms: 500,
        }
    }
}

/// `[log]`: logging.
#[derive(Debug, Clone, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[command(next_help_heading = "Settings [log]")]
pub struct LogConfig {
    /// Log format.
    #[arg(long, env = "ASSIST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `assist_server=debug,info`.
    #[arg(
        long,
        env = "ASSIST_LOG",
        default_value = "info,qdrant_edge=error",
        global = true
    )]
    pub log_level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            log_format: LogFormat::Pretty,
            log_level: "info,qdrant_edge=error".into(),
        }
    }
}
