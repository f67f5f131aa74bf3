//! Organisations, teams, users, devices and API tokens.
//!
//! Token secrets are 256 random bits shown once; only their SHA-256 is stored.
//! (A fast hash is right here: the secret has full entropy, so there is nothing
//! to brute-force, and every request must look one up.)

use assist_protocol::Role;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, DbResult, is_foreign_key_violation, is_unique_violation};
use crate::time::now_ms;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub org_id: String,
    pub team_id: Option<String>,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub device_id: Option<String>,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// Prefix of every secret, so leaked tokens are easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "ast_";

fn new_id(kind: &str) -> String {
    format!("{kind}_{}", uuid::Uuid::now_v7().simple())
}

/// SHA-256 of a token secret, hex.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

fn org_row(r: &AnyRow) -> DbResult<OrgRow> {
    Ok(OrgRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
    })
}

fn team_row(r: &AnyRow) -> DbResult<TeamRow> {
    Ok(TeamRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
    })
}

fn user_row(r: &AnyRow) -> DbResult<UserRow> {
    let role: String = r.try_get("role")?;
    Ok(UserRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        team_id: r.try_get("team_id")?,
        name: r.try_get("name")?,
        role: role
            .parse()
            .map_err(|e: String| DbError::Invalid(format!("stored user role: {e}")))?,
        created_at: r.try_get("created_at")?,
    })
}

fn device_row(r: &AnyRow) -> DbResult<DeviceRow> {
    Ok(DeviceRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
    })
}

fn token_row(r: &AnyRow) -> DbResult<TokenRow> {
    Ok(TokenRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        user_id: r.try_get("user_id")?,
        device_id: r.try_get("device_id")?,
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

fn check_name(what: &str, name: &str) -> DbResult<()> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(DbError::Invalid(format!("{what} name must not be empty")));
    }
    if trimmed.chars().count() > 200 {
        return Err(DbError::Invalid(format!(
            "{what} name is longer than 200 characters"
        )));
    }
    Ok(())
}

impl Db {
    pub async fn create_org(&self, name: &str) -> DbResult<OrgRow> {
        check_name("organisation", name)?;
        let row = OrgRow {
            id: new_id("org"),
            name: name.trim().to_string(),
            created_at: now_ms(),
        };
        sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&row.id)
            .bind(&row.name)
            .bind(row.created_at)
            .execute(self.pool())
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    DbError::Conflict(format!("an organisation named `{}` exists", row.name))
                } else {
                    e.into()
                }
            })?;
        Ok(row)
    }

    pub async fn get_org(&self, id: &str) -> DbResult<OrgRow> {
        let r = sqlx::query("SELECT id, name, created_at FROM orgs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| DbError::NotFound(format!("no organisation `{id}`")))?;
        org_row(&r)
    }

    /// Find an organisation by id or by name.
    pub async fn find_org(&self, id_or_name: &str) -> DbResult<OrgRow> {
        let r = sqlx::query("SELECT id, name, created_at FROM orgs WHERE id = $1 OR name = $1")
            .bind(id_or_name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| DbError::NotFound(format!("no organisation `{id_or_name}`")))?;
        org_row(&r)
    }

    pub async fn list_orgs(&self) -> DbResult<Vec<OrgRow>> {
        let rows = sqlx::query("SELECT id, name, created_at FROM orgs ORDER BY created_at")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(org_row).collect()
    }

    pub async fn create_team(&self, org_id: &str, name: &str) -> DbResult<TeamRow> {
        check_name("team", name)?;
        let row = TeamRow {
            id: new_id("team"),
            org_id: org_id.to_string(),
            name: name.trim().to_string(),
            created_at: now_ms(),
        };
        sqlx::query("INSERT INTO teams (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&row.id)
            .bind(&row.org_id)
            .bind(&row.name)
            .bind(row.created_at)
            .execute(self.pool())
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    DbError::Conflict(format!("a team named `{}` exists", row.name))
                } else if is_foreign_key_violation(&e) {
                    DbError::NotFound(format!("no organisation `{org_id}`"))
                } else {
                    e.into()
                }
            })?;
        Ok(row)
    }

    pub async fn get_team(&self, id: &str) -> DbResult<TeamRow> {
        let r = sqlx::query("SELECT id, org_id, name, created_at FROM teams WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| DbError::NotFound(format!("no team `{id}`")))?;
        team_row(&r)
    }

    /// Find a team of `org_id` by id or name.
    pub async fn find_team(&self, org_id: &str, id_or_name: &str) -> DbResult<TeamRow> {
        let r = sqlx::query(
            "SELECT id, org_id, name, created_at FROM teams WHERE org_id = $1 AND (id = $2 OR name = $2)",
        )
        .bind(org_id)
        .bind(id_or_name)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| DbError::NotFound(format!("no team `{id_or_name}` in this organisation")))?;
        team_row(&r)
    }

    pub async fn list_teams(&self, org_id: &str) -> DbResult<Vec<TeamRow>> {
        let rows = sqlx::query(
            "SELECT id, org_id, name, created_at FROM teams WHERE org_id = $1 ORDER BY name",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(team_row).collect()
    }

    pub async fn create_user(
        &self,
        org_id: &str,
        name: &str,
        role: Role,
        team_id: Option<&str>,
    ) -> DbResult<UserRow> {
        check_name("user", name)?;
        if let Some(team_id) = team_id {
            let team = self.get_team(team_id).await?;
            if team.org_id != org_id {
                return Err(DbError::NotFound(format!(
                    "no team `{team_id}` in this organisation"
                )));
            }
        }
        let row = UserRow {
            id: new_id("user"),
            org_id: org_id.to_string(),
            team_id: team_id.map(str::to_string),
            name: name.trim().to_string(),
            role,
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO users (id, org_id, team_id, name, role, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&row.id)
        .bind(&row.org_id)
        .bind(row.team_id.as_deref())
        .bind(&row.name)
        .bind(row.role.as_str())
        .bind(row.created_at)
        .execute(self.pool())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                DbError::Conflict(format!("a user named `{}` exists in this organisation", row.name))
            } else if is_foreign_key_violation(&e) {
                DbError::NotFound(format!("no organisation `{org_id}`"))
            } else {
                e.into()
            }
        })?;
        Ok(row)
    }

    pub async fn get_user(&self, id: &str) -> DbResult<UserRow> {
        let r = sqlx::query(
            "SELECT id, org_id, team_id, name, role, created_at FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| DbError::NotFound(format!("no user `{id}`")))?;
        user_row(&r)
    }

    /// Find a user of `org_id` by id or name.
    pub async fn find_user(&self, org_id: &str, id_or_name: &str) -> DbResult<UserRow> {
        let r = sqlx::query(
            "SELECT id, org_id, team_id, name, role, created_at FROM users WHERE org_id = $1 AND (id = $2 OR name = $2)",
        )
        .bind(org_id)
        .bind(id_or_name)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| DbError::NotFound(format!("no user `{id_or_name}` in this organisation")))?;
        user_row(&r)
    }

    pub async fn list_users(&self, org_id: &str, team_id: Option<&str>) -> DbResult<Vec<UserRow>> {
        let rows = match team_id {
            Some(team) => sqlx::query(
                "SELECT id, org_id, team_id, name, role, created_at FROM users WHERE org_id = $1 AND team_id = $2 ORDER BY name",
            )
            .bind(org_id)
            .bind(team)
            .fetch_all(self.pool())
            .await?,
            None => sqlx::query(
                "SELECT id, org_id, team_id, name, role, created_at FROM users WHERE org_id = $1 ORDER BY name",
            )
            .bind(org_id)
            .fetch_all(self.pool())
            .await?,
        };
        rows.iter().map(user_row).collect()
    }

    /// Bind a work phone to a rep of the same organisation.
    pub async fn create_device(
        &self,
        org_id: &str,
        user_id: &str,
        name: &str,
    ) -> DbResult<DeviceRow> {
        check_name("device", name)?;
        let user = self.get_user(user_id).await?;
        if user.org_id != org_id {
            return Err(DbError::NotFound(format!(
                "no user `{user_id}` in this organisation"
            )));
        }
        if user.role != Role::Rep {
            return Err(DbError::Invalid(format!(
                "devices are bound to reps; `{}` is a {}",
                user.name, user.role
            )));
        }
        let row = DeviceRow {
            id: new_id("dev"),
            org_id: org_id.to_string(),
            user_id: user_id.to_string(),
            name: name.trim().to_string(),
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO devices (id, org_id, user_id, name, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&row.id)
        .bind(&row.org_id)
        .bind(&row.user_id)
        .bind(&row.name)
        .bind(row.created_at)
        .execute(self.pool())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                DbError::Conflict(format!("a device named `{}` exists in this organisation", row.name))
            } else {
                e.into()
            }
        })?;
        Ok(row)
    }

    pub async fn get_device(&self, id: &str) -> DbResult<DeviceRow> {
        let r =
            sqlx::query("SELECT id, org_id, user_id, name, created_at FROM devices WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .ok_or_else(|| DbError::NotFound(format!("no device `{id}`")))?;
        device_row(&r)
    }

    pub async fn list_devices(&self, org_id: &str) -> DbResult<Vec<DeviceRow>> {
        let rows = sqlx::query(
            "SELECT id, org_id, user_id, name, created_at FROM devices WHERE org_id = $1 ORDER BY name",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(device_row).collect()
    }

    /// Create a token for a user (optionally bound to one of their devices).
    /// Returns the stored row and the secret, which is never stored.
    pub async fn create_token(
        &self,
        org_id: &str,
        user_id: &str,
        device_id: Option<&str>,
        name: Option<&str>,
        expires_at: Option<i64>,
    ) -> DbResult<(TokenRow, String)> {
        let user = self.get_user(user_id).await?;
        if user.org_id != org_id {
            return Err(DbError::NotFound(format!(
                "no user `{user_id}` in this organisation"
            )));
        }
        if let Some(device_id) = device_id {
            let device = self.get_device(device_id).await?;
            if device.org_id != org_id || device.user_id != user_id {
                return Err(DbError::Invalid(format!(
                    "device `{device_id}` is not bound to user `{user_id}`"
                )));
            }
        }
        let secret = new_secret();
        let now = now_ms();
        let row = TokenRow {
            id: new_id("tok"),
            org_id: org_id.to_string(),
            user_id: user_id.to_string(),
            device_id: device_id.map(str::to_string),
            name: name.unwrap_or("api").trim().to_string(),
            prefix: secret.chars().take(TOKEN_PREFIX.len() + 8).collect(),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        sqlx::query(
            "INSERT INTO api_tokens (id, org_id, user_id, device_id, name, prefix, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&row.id)
        .bind(&row.org_id)
        .bind(&row.user_id)
        .bind(row.device_id.as_deref())
        .bind(&row.name)
        .bind(&row.prefix)
        .bind(hash_secret(&secret))
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(self.pool())
        .await?;
        Ok((row, secret))
    }

    pub async fn list_tokens(&self, org_id: &str) -> DbResult<Vec<TokenRow>> {
        let rows = sqlx::query(
            "SELECT id, org_id, user_id, device_id, name, prefix, created_at, expires_at, revoked_at, last_used_at \
             FROM api_tokens WHERE org_id = $1 ORDER BY created_at",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(token_row).collect()
    }

    /// Revoke a token of `org_id`. Revoking twice is a conflict.
    pub async fn revoke_token(&self, org_id: &str, token_id: &str) -> DbResult<TokenRow> {
        let now = now_ms();
        let updated = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(token_id)
        .bind(org_id)
        .execute(self.pool())
        .await?
        .rows_affected();
        let r = sqlx::query(
            "SELECT id, org_id, user_id, device_id, name, prefix, created_at, expires_at, revoked_at, last_used_at \
             FROM api_tokens WHERE id = $1 AND org_id = $2",
        )
        .bind(token_id)
        .bind(org_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| DbError::NotFound(format!("no token `{token_id}` in this organisation")))?;
        if updated == 0 {
            return Err(DbError::Conflict(format!(
                "token `{token_id}` is already revoked"
            )));
        }
        token_row(&r)
    }

    /// The token and user for a presented secret, if the token exists (whether
    /// or not it is expired or revoked: the caller decides and says why).
    pub async fn lookup_token(&self, secret: &str) -> DbResult<Option<(TokenRow, UserRow)>> {
        let r = sqlx::query(
            "SELECT t.id, t.org_id, t.user_id, t.device_id, t.name, t.prefix, t.created_at, t.expires_at, \
                    t.revoked_at, t.last_used_at, \
                    u.id AS u_id, u.org_id AS u_org_id, u.team_id AS u_team_id, u.name AS u_name, \
                    u.role AS u_role, u.created_at AS u_created_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.secret_hash = $1",
        )
        .bind(hash_secret(secret))
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = r else { return Ok(None) };
        let token = token_row(&r)?;
        let role: String = r.try_get("u_role")?;
        let user = UserRow {
            id: r.try_get("u_id")?,
            org_id: r.try_get("u_org_id")?,
            team_id: r.try_get("u_team_id")?,
            name: r.try_get("u_name")?,
            role: role
                .parse()
                .map_err(|e: String| DbError::Invalid(format!("stored user role: {e}")))?,
            created_at: r.try_get("u_created_at")?,
        };
        Ok(Some((token, user)))
    }

    /// Record that a token was used (callers throttle this to once a minute).
    pub async fn touch_token(&self, token_id: &str, at: i64) -> DbResult<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(token_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
