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
//!
//! [`Config`] gathers the sections: the service's own in [`service`]
//! (`[server]`, `[storage]`, `[jobs]`, `[log]`) and the capabilities' in
//! [`features`] (`[models]`, `[speech]`, `[index]`, `[kb]`, `[alerts]`,
//! `[analysis]`, `[live]`, `[console]`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};

pub mod features;
pub mod service;

pub use features::*;
pub use service::*;

/// All settings of the service. Sections map to TOML tables.
#[derive(Clone, Args, Deserialize, Serialize, Default)]
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
    #[command(flatten)]
    pub console: ConsoleConfig,
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
            .field("console", &self.console)
            .finish()
    }
}

impl Config {
    /// The effective settings as a TOML config file that `--config` reads
    /// back to the same settings. Secrets are not printed: a database URL
    /// keeps its password hidden and the Qdrant API key is left out, each as
    /// a comment saying where to give it.
    pub fn to_toml(&self) -> String {
        let mut table = match toml::Table::try_from(self) {
            Ok(t) => t,
            // Every field is a plain value; this cannot fail.
            Err(e) => return format!("# cannot render the configuration: {e}\n"),
        };
        let mut notes: Vec<(&str, String)> = Vec::new();
        if let Some(toml::Value::Table(storage)) = table.get_mut("storage")
            && let Some(toml::Value::String(url)) = storage.get("database_url").cloned()
            && redact_url(&url) != url
        {
            storage.remove("database_url");
            notes.push((
                "storage",
                format!(
                    "# database_url = {:?}  (password hidden: give the URL in ASSIST_DATABASE_URL or here)",
                    redact_url(&url)
                ),
            ));
        }
        if let Some(toml::Value::Table(storage)) = table.get_mut("storage")
            && storage.remove("secret_key").is_some()
        {
            notes.push((
                "storage",
                "# secret_key = \"***\"  (hidden: give it in ASSIST_SECRET_KEY, or use secret_key_file)"
                    .into(),
            ));
        }
        if let Some(toml::Value::Table(index)) = table.get_mut("index")
            && index.remove("qdrant_api_key").is_some()
        {
            notes.push((
                "index",
                "# qdrant_api_key = \"***\"  (hidden: give it in ASSIST_QDRANT_API_KEY or here)"
                    .into(),
            ));
        }
        let mut out = String::from(
            "# assist configuration: the effective settings (flags, ASSIST_* environment,\n# config file, defaults). Use it with `assist --config FILE`.\n",
        );
        for (section, value) in &table {
            out.push_str(&format!("\n[{section}]\n"));
            if let toml::Value::Table(fields) = value {
                for (key, v) in fields {
                    out.push_str(&format!("{key} = {v}\n"));
                }
            }
            for (_, note) in notes.iter().filter(|(s, _)| s == section) {
                out.push_str(note);
                out.push('\n');
            }
        }
        out
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
/// `(argument id, values)` pairs to install as clap defaults: one value for a
/// scalar, one per item for a list (none for `[]`, so an empty list in the
/// file stays empty).
pub fn file_defaults(path: &Path) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
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
            let values = match value {
                toml::Value::String(s) => vec![s],
                toml::Value::Integer(i) => vec![i.to_string()],
                toml::Value::Float(f) => vec![f.to_string()],
                toml::Value::Boolean(b) => vec![b.to_string()],
                toml::Value::Array(items) => items
                    .into_iter()
                    .map(|v| match v {
                        toml::Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect(),
                other => {
                    return Err(invalid(format!(
                        "[{section}] {key} has an unsupported value {other}"
                    )));
                }
            };
            out.push((arg_id(&key).to_string(), values));
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
    fn printed_toml_reads_back_to_the_same_settings() {
        let mut config = Config::default();
        config.storage.database_url = Some("postgres://assist:hunter2@db:5432/assist".into());
        config.index.qdrant_api_key = Some("k3y".into());
        config.storage.secret_key = Some("c2VhbGluZw==".into());
        config.models.model_paths = vec!["asr=/srv/whisper".into()];
        let text = config.to_toml();
        assert!(
            !text.contains("hunter2") && !text.contains("k3y") && !text.contains("c2VhbGluZw"),
            "{text}"
        );
        assert!(text.contains("# database_url = \"postgres://assist:***@db:5432/assist\""));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("assist.toml");
        std::fs::write(&path, &text).unwrap();
        let defaults = file_defaults(&path).expect("the printed file is valid");
        assert!(
            defaults
                .iter()
                .any(|(id, v)| id == "model_paths" && *v == ["asr=/srv/whisper"])
        );
        assert!(
            defaults
                .iter()
                .any(|(id, v)| id == "speech_vocabulary" && v.is_empty())
        );
        let back: Config = toml::from_str(&text).unwrap();
        let mut expected = config.clone();
        expected.storage.database_url = None;
        expected.index.qdrant_api_key = None;
        expected.storage.secret_key = None;
        assert_eq!(back.to_toml(), expected.to_toml());
    }

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
