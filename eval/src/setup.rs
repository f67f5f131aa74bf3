//! What every benchmark needs around it: the cache directory outside the
//! checkout, ready models from the store, Python venvs for the peers,
//! external tools, reference inputs and the machine's load.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, ensure};
use assist_models::store::{ModelStore, ProgressMode, StoreOptions};

/// `~/.cache/assist` (outside the checkout).
pub fn cache_root() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/assist")
}

/// Where generated test audio is cached.
pub fn audio_cache() -> PathBuf {
    cache_root().join("eval-audio")
}

/// The ready store directory of a model role or id.
pub fn model_path(model_dir: &Path, id_or_role: &str) -> anyhow::Result<PathBuf> {
    let store = ModelStore::new(
        model_dir,
        StoreOptions {
            progress: ProgressMode::Silent,
            ..StoreOptions::default()
        },
    )?;
    store.ready_path(id_or_role).with_context(|| {
        format!("model `{id_or_role}` must be ready: assist models fetch --only {id_or_role}")
    })
}

// ------------------------------------------------------------------ venvs

/// A venv under `~/.cache/assist/venvs/<name>` in which `probe` imports;
/// created with `python3 -m venv` and filled with `pip install <packages>`
/// the first time (with `build_env` set for packages built from source).
/// Returns its interpreter.
pub fn ensure_venv(
    name: &str,
    base_python: &str,
    probe: &str,
    packages: &[&str],
    build_env: &[(&str, &str)],
) -> anyhow::Result<PathBuf> {
    let dir = cache_root().join("venvs").join(name);
    let python = dir.join("bin/python");
    let imports = |python: &Path| {
        Command::new(python)
            .args(["-c", probe])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.is_file() && imports(&python) {
        return Ok(python);
    }
    eprintln!("setting up the {name} venv in {} (once)", dir.display());
    if !python.is_file() {
        std::fs::create_dir_all(dir.parent().unwrap_or(&dir))?;
        let status = Command::new(base_python)
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .with_context(|| format!("running {base_python} -m venv"))?;
        ensure!(
            status.success(),
            "{base_python} -m venv {} failed",
            dir.display()
        );
    }
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        // A build with its own flags must not reuse a wheel pip cached from
        // a build without them.
        .args(if build_env.is_empty() {
            &[][..]
        } else {
            &["--no-cache-dir"][..]
        })
        .args(packages)
        .envs(build_env.iter().copied())
        .status()
        .context("running pip in the venv")?;
    ensure!(
        status.success(),
        "pip install {} failed in {}",
        packages.join(" "),
        dir.display()
    );
    ensure!(
        imports(&python),
        "`{probe}` still fails in {} after installing",
        dir.display()
    );
    Ok(python)
}

/// Run a tool, failing with its name and stderr.
pub fn tool(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("{program} is needed (scripts/install-deps)"))?;
    ensure!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// A short stable key for a cached file made from `parts`.
pub fn cache_key(parts: &[&str]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..6])
}

/// Reference sentences, one per line (blank lines and `#` comments skipped).
pub fn read_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

/// This process's peak resident memory (VmHWM), KiB.
pub fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// 1/5/15-minute load averages, to note beside the figures.
pub fn load_conditions() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            let v: Vec<&str> = s.split_whitespace().take(3).collect();
            format!("load average {} (1/5/15 min) at the start", v.join(" "))
        })
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_are_stable_and_distinct() {
        assert_eq!(cache_key(&["a", "b"]), cache_key(&["a", "b"]));
        assert_ne!(cache_key(&["a", "b"]), cache_key(&["ab"]));
    }
}
