//! Secrets stored in the database, sealed with the key from outside it
//! (see [`crate::secrets`]): webhook signing secrets and server signing keys.

use std::sync::Arc;

use sqlx::Row;

use super::{Db, DbError, DbResult};
use crate::secrets::{SecretError, SecretKey};

/// Owner names bound into each sealed value.
pub fn webhook_owner(id: &str) -> String {
    format!("webhook:{id}")
}

pub fn server_key_owner(name: &str) -> String {
    format!("server_key:{name}")
}

/// A key or sealed value that cannot be used is a server fault (500).
fn fault(e: SecretError) -> DbError {
    DbError::Sqlx(sqlx::Error::Decode(e.to_string().into()))
}

impl Db {
    /// This database with `key` sealing its secrets.
    pub fn with_secret_key(mut self, key: SecretKey) -> Db {
        self.secrets = Some(Arc::new(key));
        self
    }

    pub fn has_secret_key(&self) -> bool {
        self.secrets.is_some()
    }

    fn secret_key(&self) -> DbResult<&SecretKey> {
        self.secrets.as_deref().ok_or_else(|| {
            fault(SecretError::Key(
                "no key to seal secrets with was configured".into(),
            ))
        })
    }

    /// Seal `plain` as the secret of `owner`, for storing.
    pub fn seal_secret(&self, owner: &str, plain: &[u8]) -> DbResult<String> {
        Ok(self.secret_key()?.seal(owner, plain))
    }

    /// Open a stored secret of `owner` (sealed, or clear text from before).
    pub fn open_secret(&self, owner: &str, stored: &str) -> DbResult<Vec<u8>> {
        self.secret_key()?.open(owner, stored).map_err(fault)
    }

    /// Seal the secrets an earlier version stored in clear text, and check
    /// that the sealed ones open with this key (a wrong key fails here, at
    /// start, not at the first delivery). Returns how many were sealed.
    pub async fn seal_clear_secrets(&self) -> DbResult<usize> {
        let key = self.secret_key()?;
        let mut sealed = 0;
        for (table, id_col, owner) in [
            (
                "server_keys",
                "name",
                server_key_owner as fn(&str) -> String,
            ),
            ("webhooks", "id", webhook_owner),
        ] {
            let rows = sqlx::query(&format!("SELECT {id_col} AS id, secret FROM {table}"))
                .fetch_all(self.pool())
                .await?;
            for r in rows {
                let id: String = r.try_get("id")?;
                let stored: String = r.try_get("secret")?;
                let owner = owner(&id);
                if SecretKey::is_sealed(&stored) {
                    key.open(&owner, &stored).map_err(fault)?;
                    continue;
                }
                sqlx::query(&format!(
                    "UPDATE {table} SET secret = $1 WHERE {id_col} = $2 AND secret = $3"
                ))
                .bind(key.seal(&owner, stored.as_bytes()))
                .bind(&id)
                .bind(&stored)
                .execute(self.pool())
                .await?;
                sealed += 1;
            }
        }
        if sealed > 0 {
            tracing::info!(sealed, "secrets stored in clear text were sealed");
        }
        Ok(sealed)
    }

    /// Give webhook `id` a new signing secret; returns it (shown once).
    pub async fn rotate_webhook_secret(&self, org_id: &str, id: &str) -> DbResult<String> {
        let secret = crate::alerts::new_webhook_secret();
        let n = sqlx::query("UPDATE webhooks SET secret = $1 WHERE org_id = $2 AND id = $3")
            .bind(self.seal_secret(&webhook_owner(id), secret.as_bytes())?)
            .bind(org_id)
            .bind(id)
            .execute(self.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(DbError::NotFound(format!("no webhook `{id}`")));
        }
        Ok(secret)
    }
}
