//! What `list` and `verify` report about each model.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::Layout;

/// One row of `assist models list` / `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelStatus {
    /// Manifest id, or the directory name of a registered model.
    pub id: String,
    pub role: String,
    /// Manifest format, or the detected layout of a registered model
    /// (`unknown` if none was detected).
    pub format: String,
    pub optional: bool,
    #[serde(flatten)]
    pub state: ModelState,
    /// Size of the model's files: the pinned size for manifest models (also
    /// when not fetched yet), the files found for registered ones.
    pub size_bytes: u64,
    /// Where the model is (or will be once fetched).
    pub path: PathBuf,
    pub source: Source,
}

/// Where a model comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The repository's manifest; fetched into the cache.
    Manifest,
    /// A directory the user registered.
    Registered,
}

/// The state of one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ModelState {
    /// Nothing downloaded.
    Missing,
    /// Ready to load.
    Ready,
    /// `ready.json` is present but a file is missing or has the wrong size
    /// (`list`), or a file's sha256 is wrong (`verify`, which then moves the
    /// directory to quarantine).
    Corrupt { reason: String },
    /// Some of the model's wheels are downloaded; it is not assembled.
    Partial,
    /// A registered directory with a supported layout.
    Registered { layout: Layout },
    /// A registered directory without a supported layout.
    Invalid { reason: String },
}

impl ModelState {
    /// Whether the model can be loaded (`Ready` or a valid `Registered`).
    pub fn is_usable(&self) -> bool {
        matches!(self, ModelState::Ready | ModelState::Registered { .. })
    }
}

impl fmt::Display for ModelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelState::Missing => f.write_str("missing"),
            ModelState::Ready => f.write_str("ready"),
            ModelState::Corrupt { reason } => write!(f, "corrupt: {reason}"),
            ModelState::Partial => f.write_str("partial"),
            ModelState::Registered { layout } => write!(f, "registered ({layout})"),
            ModelState::Invalid { reason } => write!(f, "invalid: {reason}"),
        }
    }
}
