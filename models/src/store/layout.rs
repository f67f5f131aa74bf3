//! Standard model directory layouts that users can register instead of the
//! manifest's models (for example a larger Whisper, Qwen or bge-m3 obtained
//! elsewhere).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A model directory layout the product can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Hugging Face layout: `config.json`, `tokenizer.json` and one or more
    /// `*.safetensors` files (sharded checkpoints included).
    HfSafetensors,
    /// Exactly one `*.gguf` file plus `tokenizer.json`.
    Gguf,
}

impl Layout {
    /// The manifest `format` name of this layout (`hf-safetensors`, `gguf`).
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::HfSafetensors => "hf-safetensors",
            Layout::Gguf => "gguf",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tell which [`Layout`] a model directory has.
///
/// A directory with any `*.gguf` file is judged as GGUF, else as HF
/// safetensors. Anything incomplete is an [`Error::BadLayout`] whose reason
/// lists what is missing.
pub fn detect_layout(dir: &Path) -> Result<Layout> {
    let bad = |reason: String| Error::BadLayout {
        dir: dir.to_path_buf(),
        reason,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad("the directory does not exist".into()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(bad("not a directory".into()));
        }
        Err(e) => return Err(Error::io("reading model directory", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("reading model directory", dir, e))?;
        // Follow symlinks: people link weights in from elsewhere.
        if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let has = |name: &str| names.iter().any(|n| n == name);
    let with_ext = |ext: &str| -> Vec<&str> {
        names
            .iter()
            .filter(|n| {
                Path::new(n.as_str())
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case(ext))
            })
            .map(String::as_str)
            .collect()
    };
    let ggufs = with_ext("gguf");
    let safetensors = with_ext("safetensors");

    if !ggufs.is_empty() {
        let mut missing = Vec::new();
        if ggufs.len() > 1 {
            missing.push(format!(
                "exactly one *.gguf file (found {}: {})",
                ggufs.len(),
                ggufs.join(", ")
            ));
        }
        if !has("tokenizer.json") {
            missing.push("tokenizer.json".to_string());
        }
        return if missing.is_empty() {
            Ok(Layout::Gguf)
        } else {
            Err(bad(format!("GGUF layout needs {}", missing.join(" and "))))
        };
    }

    let mut missing = Vec::new();
    for name in ["config.json", "tokenizer.json"] {
        if !has(name) {
            missing.push(name);
        }
    }
    if safetensors.is_empty() {
        missing.push("a *.safetensors file");
    }
    if missing.is_empty() {
        Ok(Layout::HfSafetensors)
    } else if missing.len() == 3 {
        Err(bad(
            "no model found: expected config.json + tokenizer.json + *.safetensors \
             (Hugging Face layout) or one *.gguf + tokenizer.json (GGUF layout)"
                .into(),
        ))
    } else {
        Err(bad(format!(
            "Hugging Face layout is missing {}",
            missing.join(", ")
        )))
    }
}

/// Total size of the regular files directly in `dir` (0 if unreadable).
pub(crate) fn dir_files_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::metadata(e.path()).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}
