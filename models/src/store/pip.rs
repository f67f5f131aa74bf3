//! Running `python -m pip download` for one package, with byte-level progress.
//!
//! pip downloads into a temporary directory and copies the finished wheel into
//! `-d DIR`. We point the child's `TMPDIR` at `staging/pip-tmp-<package>/` and
//! poll that directory's size every 200 ms to show how far the download is.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::manifest::PackageSpec;
use super::progress::Progress;
use crate::{Error, Result};

const POLL: Duration = Duration::from_millis(200);
const HINT: &str = "is the package index reachable? check `pip config list` / PIP_INDEX_URL";

/// Download `pkg` into `dest` with `python -m pip download`.
///
/// `staging` holds pip's temporary directory and its output log while it
/// runs; both are removed afterwards.
pub(crate) fn download(
    python: &str,
    pkg: &PackageSpec,
    dest: &Path,
    staging: &Path,
    progress: &Progress,
) -> Result<()> {
    let requirement = pkg.requirement();
    let tmp = staging.join(format!("pip-tmp-{}", pkg.name));
    let log_path = staging.join(format!("pip-{}.log", pkg.name));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
    let result = run(python, pkg, dest, &tmp, &log_path, progress);
    let log = std::fs::read(&log_path).unwrap_or_default();
    let log = String::from_utf8_lossy(&log);
    // Best effort: staging is cleared at the start of every fetch anyway.
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_file(&log_path);

    let status = result?;
    if status.success() {
        return Ok(());
    }
    if log.contains("No module named pip") {
        return Err(Error::Python {
            python: python.to_string(),
            reason: "pip is not installed for it (`No module named pip`)".into(),
        });
    }
    let tail = meaningful_tail(&log, 4);
    let detail = if tail.is_empty() {
        format!("pip exited with {status} and printed nothing; {HINT}")
    } else {
        format!("{tail} ({HINT})")
    };
    tracing::warn!(package = %requirement, %status, detail = %detail, "pip download failed");
    Err(Error::Download {
        package: requirement,
        detail,
    })
}

/// Spawn pip and wait for it, reporting download progress.
fn run(
    python: &str,
    pkg: &PackageSpec,
    dest: &Path,
    tmp: &Path,
    log_path: &Path,
    progress: &Progress,
) -> Result<std::process::ExitStatus> {
    let log = File::create(log_path).map_err(|e| Error::io("creating", log_path, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io("opening", log_path, e))?;
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--no-input", "--disable-pip-version-check", "-d"])
        .arg(dest);
    if let Some(platform) = &pkg.platform {
        cmd.args(["--platform", platform]);
    }
    cmd.arg(pkg.requirement())
        .env("PIP_NO_INPUT", "1")
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    tracing::debug!(command = ?cmd, "running pip");
    let mut child = cmd.spawn().map_err(|e| Error::Python {
        python: python.to_string(),
        reason: e.to_string(),
    })?;
    // Short first waits so that a quick pip (a wheel already cached) costs
    // little; then every POLL.
    let mut wait = Duration::from_millis(10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {
                progress.download_pos(tree_size(tmp).min(pkg.size));
                std::thread::sleep(wait);
                wait = (wait * 2).min(POLL);
            }
            Err(e) => return Err(Error::io("waiting for pip", tmp, e)),
        }
    }
}

/// Total size of the files under `dir` (what pip has received so far).
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// The last `n` lines of pip's output worth showing: no blank lines, progress
/// bars or `[notice]` chatter.
fn meaningful_tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| !l.starts_with("[notice]"))
        .filter(|l| !l.contains('━') && !l.contains('█') && !l.contains("|#"))
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::meaningful_tail;

    #[test]
    fn tail_keeps_the_error_lines() {
        let log = "Collecting foo==1\n   ━━━━━━━━ 1.2/3.4 MB\n\n\
                   ERROR: Could not find a version that satisfies the requirement foo==1 (from versions: none)\n\
                   ERROR: No matching distribution found for foo==1\n\
                   [notice] A new release of pip is available\n";
        assert_eq!(
            meaningful_tail(log, 2),
            "ERROR: Could not find a version that satisfies the requirement foo==1 (from versions: none) \
             | ERROR: No matching distribution found for foo==1"
        );
        assert_eq!(meaningful_tail("", 4), "");
    }
}
