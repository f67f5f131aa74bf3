//! `assist-eval verify-bench`: how fast the model store verifies a model
//! (the work `/readyz` waits for at startup), against coreutils `sha256sum`
//! on the same files in the same run.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use assist_models::store::{ModelStore, ProgressMode, StoreOptions};

use crate::report::{Better, Figure, Report};

/// Run the benchmark on model `id_or_role` (it must be ready).
pub fn run(
    model_dir: PathBuf,
    id_or_role: &str,
    rounds: usize,
    out: &std::path::Path,
) -> anyhow::Result<Report> {
    let store = ModelStore::new(
        model_dir,
        StoreOptions {
            progress: ProgressMode::Silent,
            ..StoreOptions::default()
        },
    )?;
    let dir = store
        .ready_path(id_or_role)
        .with_context(|| format!("model `{id_or_role}` must be ready for this benchmark"))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "ready.json"))
        .collect();
    files.sort();
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let mb = bytes as f64 / 1e6;
    let rounds = rounds.max(1);

    // Warm the page cache so both sides read from memory.
    let _ = store.verify(&[id_or_role.to_string()])?;
    let mut ours = Vec::new();
    let mut peer = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let statuses = store.verify(&[id_or_role.to_string()])?;
        ours.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            statuses
                .iter()
                .all(|s| matches!(s.state, assist_models::store::ModelState::Ready)),
            "verification failed: {statuses:?}"
        );
        let t = Instant::now();
        let status = Command::new("sha256sum")
            .args(&files)
            .stdout(std::process::Stdio::null())
            .status()
            .context("sha256sum (coreutils) is needed as the peer")?;
        peer.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(status.success(), "sha256sum failed");
    }
    let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    let mut r = Report::new(
        "verify-bench",
        format!(
            "SHA-256 verification of model `{id_or_role}` ({} files, {:.1} MB), best of {rounds}, page cache warm.",
            files.len(),
            mb
        ),
    );
    r.push(
        Figure::new(
            "verify throughput",
            "MB/s",
            mb / best(&ours),
            Better::Higher,
        )
        .peer("sha256sum (coreutils)", mb / best(&peer)),
    );
    r.push(
        Figure::new("verify time", "s", best(&ours), Better::Lower)
            .peer("sha256sum (coreutils)", best(&peer)),
    );
    r.finish(out)?;
    Ok(r)
}
