//! The data directory holds transcripts, recordings and (sealed) secrets, so
//! it is private to the service's user: the directory 0700, every file 0600.
//!
//! [`secure_data_dir`] runs before anything opens the directory: it sets the
//! process umask to 077 (so the database, its WAL, audio, partial uploads and
//! indexes are created private, whoever creates them), creates the directory
//! 0700, tightens an existing directory open to other users and the files an
//! earlier version left readable, with a warning, and refuses to start when
//! it cannot (the message names the `chmod` to run).

use std::fs::File;
use std::path::{Path, PathBuf};

/// Create `dir` (and parents) with mode 0700 where they are new.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Create a new file with mode 0600 (fails if it exists).
pub fn create_new_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Make files this process creates private to its user (umask 077).
pub fn private_umask() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Prepare `data_dir` as described in the module docs.
pub fn secure_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    private_umask();
    let existed = data_dir.exists();
    create_private_dir(data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", data_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir)?.permissions().mode() & 0o777;
        // A directory made with the usual umask (0755) is ours to tighten;
        // one we cannot tighten is refused, with the command to run.
        if mode & 0o077 != 0
            && std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(mode & 0o700))
                .is_ok()
        {
            tracing::warn!(
                dir = %data_dir.display(),
                was = format!("{mode:o}"),
                "the data directory was open to other users; now 0700"
            );
        } else if mode & 0o077 != 0 {
            anyhow::bail!(
                "the data directory {} is open to other users (mode {mode:o}{}); it holds \
                 transcripts and recordings: run `chmod 700 {}` and start again",
                data_dir.display(),
                if existed {
                    ""
                } else {
                    ", set by a parent's ACL"
                },
                data_dir.display()
            );
        }
        let loose = tighten_files(data_dir);
        if !loose.is_empty() {
            tracing::warn!(
                files = loose.len(),
                first = %loose[0].display(),
                "files in the data directory were readable by other users; now 0600"
            );
        }
    }
    Ok(())
}

/// Drop group and other permissions from everything under `dir`; returns the paths changed. Model files are public
/// weights, but tightening them costs nothing.
#[cfg(unix)]
fn tighten_files(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let mut changed = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            let path = entry.path();
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                stack.push(path.clone());
            } else if !meta.is_file() {
                continue;
            }
            // Keep the owner's bits, drop everyone else's.
            if mode & 0o077 != 0
                && std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o700))
                    .is_ok()
            {
                changed.push(path);
            }
        }
    }
    changed
}
