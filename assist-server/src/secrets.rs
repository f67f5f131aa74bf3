//! Secrets at rest: webhook signing secrets and the server's signing keys
//! are stored sealed (XChaCha20-Poly1305) under a key that never enters the
//! database — from `ASSIST_SECRET_KEY` (base64 of 32 bytes) or a key file
//! (`--secret-key-file`, created 0600 on first start). A copy of the database
//! alone reveals none of them.
//!
//! A sealed value is `sealed:v1:<base64(nonce ‖ ciphertext)>`, bound to what
//! it belongs to (`webhook:<id>`, `server_key:<name>`) as associated data, so
//! a sealed value copied onto another row does not open. Values written by
//! earlier versions in clear text are sealed at start ([`crate::db::Db::seal_clear_secrets`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::config::StorageConfig;

/// Prefix of a sealed value.
pub const SEALED_PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 24;

/// Why a key or a sealed value could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret key: {0}")]
    Key(String),
    #[error(
        "a sealed secret of `{0}` does not open with this key (wrong ASSIST_SECRET_KEY or key file?)"
    )]
    Unreadable(String),
}

/// The key that seals secrets at rest. Never printed.
#[derive(Clone)]
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    fingerprint: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> SecretKey {
        let fingerprint = hex::encode(&Sha256::digest(bytes)[..4]);
        SecretKey {
            cipher: XChaCha20Poly1305::new(bytes.into()),
            fingerprint,
        }
    }

    /// A fresh random key (tests, and the first start without a key).
    pub fn generate() -> SecretKey {
        let mut bytes: [u8; 32] = rand::random();
        let key = SecretKey::from_bytes(&bytes);
        bytes.fill(0);
        key
    }

    /// Eight hex digits that tell keys apart in logs, revealing nothing.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The configured key: `secret_key` (environment) if set, else the key
    /// file, created with a fresh key (mode 0600) when absent. A key file
    /// that other users can read is refused.
    pub fn from_config(storage: &StorageConfig) -> Result<SecretKey, SecretError> {
        if let Some(b64) = storage.secret_key.as_deref().filter(|s| !s.is_empty()) {
            return decode(b64.trim())
                .map_err(|e| SecretError::Key(format!("ASSIST_SECRET_KEY: {e}")));
        }
        let path = storage.effective_secret_key_file();
        load_or_create_file(&path)
    }

    /// Seal `plain` as the secret of `owner`.
    pub fn seal(&self, owner: &str, plain: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: owner.as_bytes(),
                },
            )
            .expect("sealing a short value cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(out))
    }

    /// Open a value stored for `owner`: sealed, or clear text written before
    /// secrets were sealed (which start-up then seals).
    pub fn open(&self, owner: &str, stored: &str) -> Result<Vec<u8>, SecretError> {
        let Some(b64) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.as_bytes().to_vec());
        };
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| SecretError::Unreadable(owner.to_string()))?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Unreadable(owner.to_string()));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Unreadable(owner.to_string()))
    }

    /// Whether `stored` is sealed (else it is clear text from before).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }
}

fn decode(b64: &str) -> Result<SecretKey, String> {
    let bytes = STANDARD.decode(b64).map_err(|_| "not base64".to_string())?;
    let mut bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{} bytes, expected 32", b.len()))?;
    let key = SecretKey::from_bytes(&bytes);
    bytes.fill(0);
    Ok(key)
}

fn load_or_create_file(path: &Path) -> Result<SecretKey, SecretError> {
    let err =
        |what: &str, e: std::io::Error| SecretError::Key(format!("{what} {}: {e}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(text) => {
            check_private(path)?;
            decode(text.trim()).map_err(|e| SecretError::Key(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::private_files::create_private_dir(dir)
                    .map_err(|e| err("cannot create the directory of", e))?;
            }
            let mut bytes: [u8; 32] = rand::random();
            let text = STANDARD.encode(bytes);
            let key = SecretKey::from_bytes(&bytes);
            bytes.fill(0);
            let mut file = crate::private_files::create_new_private(path)
                .map_err(|e| err("cannot create secret key file", e))?;
            writeln!(file, "{text}")
                .and_then(|()| file.sync_all())
                .map_err(|e| err("cannot write secret key file", e))?;
            tracing::info!(
                path = %path.display(),
                fingerprint = key.fingerprint(),
                "created the key that seals secrets at rest; back it up apart from the database"
            );
            Ok(key)
        }
        Err(e) => Err(err("cannot read secret key file", e)),
    }
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| SecretError::Key(format!("{}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(SecretError::Key(format!(
            "{} is readable by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), SecretError> {
    Ok(())
}

/// Where the key file goes when none is configured: beside the config file
/// when there is one, else in the data directory.
pub fn default_key_file(config_file: Option<&Path>, data_dir: &Path) -> PathBuf {
    match config_file.and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("assist.key"),
        Some(_) => PathBuf::from("assist.key"),
        None => data_dir.join("secret.key"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_owner_and_key() {
        let key = SecretKey::generate();
        let sealed = key.seal("webhook:w1", b"whsec_abc");
        assert!(SecretKey::is_sealed(&sealed));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(key.open("webhook:w1", &sealed).unwrap(), b"whsec_abc");
        assert!(key.open("webhook:w2", &sealed).is_err());
        assert!(SecretKey::generate().open("webhook:w1", &sealed).is_err());
        // Clear text from before sealing reads as itself.
        assert_eq!(key.open("webhook:w1", "whsec_old").unwrap(), b"whsec_old");
    }
}
