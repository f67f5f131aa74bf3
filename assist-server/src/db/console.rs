//! The web console's tables: sign-in names with their password hashes and
//! failure counts, one-time invitations, and browser sessions.
//!
//! Cookie and invitation secrets are stored as their SHA-256 only (the
//! secrets carry 256 random bits, so there is nothing to brute-force);
//! passwords as argon2id PHC strings made by [`crate::console`].

use sqlx::Row;
use sqlx::any::AnyRow;

use super::identity::{UserRow, hash_secret};
use super::{Db, DbError, DbResult, is_unique_violation};

/// A person's console sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRow {
    pub user_id: String,
    pub org_id: String,
    pub username: String,
    /// `None` until a password is set.
    pub password_hash: Option<String>,
    pub password_set_at: Option<i64>,
    pub failed_attempts: i64,
    pub locked_until: Option<i64>,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
}

/// A browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id_hash: String,
    pub user_id: String,
    pub org_id: String,
    pub csrf_token: String,
    pub access_reason: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
}

const LOGIN_COLUMNS: &str = "user_id, org_id, username, password_hash, password_set_at, failed_attempts, \
     locked_until, disabled_at, created_at";
const SESSION_COLUMNS: &str = "id_hash, user_id, org_id, csrf_token, access_reason, created_at, last_seen_at, \
     expires_at, ended_at";

fn login_row(r: &AnyRow) -> DbResult<LoginRow> {
    Ok(LoginRow {
        user_id: r.try_get("user_id")?,
        org_id: r.try_get("org_id")?,
        username: r.try_get("username")?,
        password_hash: r.try_get("password_hash")?,
        password_set_at: r.try_get("password_set_at")?,
        failed_attempts: r.try_get("failed_attempts")?,
        locked_until: r.try_get("locked_until")?,
        disabled_at: r.try_get("disabled_at")?,
        created_at: r.try_get("created_at")?,
    })
}

fn session_row(r: &AnyRow) -> DbResult<SessionRow> {
    Ok(SessionRow {
        id_hash: r.try_get("id_hash")?,
        user_id: r.try_get("user_id")?,
        org_id: r.try_get("org_id")?,
        csrf_token: r.try_get("csrf_token")?,
        access_reason: r.try_get("access_reason")?,
        created_at: r.try_get("created_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        expires_at: r.try_get("expires_at")?,
        ended_at: r.try_get("ended_at")?,
    })
}

/// A sign-in name: 2–64 characters, no spaces or control characters
/// (Chinese names are fine).
pub fn check_username(username: &str) -> DbResult<()> {
    let n = username.chars().count();
    if !(2..=64).contains(&n) {
        return Err(DbError::Invalid(
            "a sign-in name has 2 to 64 characters".into(),
        ));
    }
    if username
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(DbError::Invalid(
            "a sign-in name has no spaces or control characters".into(),
        ));
    }
    Ok(())
}

impl Db {
    /// Give `user_id` the sign-in name `username` (creating the sign-in,
    /// or renaming it). A name taken by someone else is a conflict.
    pub async fn upsert_login(
        &self,
        org_id: &str,
        user_id: &str,
        username: &str,
        now: i64,
    ) -> DbResult<LoginRow> {
        check_username(username)?;
        let user = self.get_user(user_id).await?;
        if user.org_id != org_id {
            return Err(DbError::NotFound(format!(
                "no user `{user_id}` in this organisation"
            )));
        }
        let taken = |e: sqlx::Error| {
            if is_unique_violation(&e) {
                DbError::Conflict(format!("the sign-in name `{username}` is taken"))
            } else {
                e.into()
            }
        };
        let updated = sqlx::query("UPDATE console_logins SET username = $1 WHERE user_id = $2")
            .bind(username)
            .bind(user_id)
            .execute(self.pool())
            .await
            .map_err(taken)?
            .rows_affected();
        if updated == 0 {
            sqlx::query(
                "INSERT INTO console_logins (user_id, org_id, username, failed_attempts, created_at) \
                 VALUES ($1, $2, $3, 0, $4)",
            )
            .bind(user_id)
            .bind(org_id)
            .bind(username)
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(taken)?;
        }
        self.login_of_user(user_id)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("no sign-in for `{user_id}`")))
    }

    pub async fn login_of_user(&self, user_id: &str) -> DbResult<Option<LoginRow>> {
        let r = sqlx::query(&format!(
            "SELECT {LOGIN_COLUMNS} FROM console_logins WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        r.as_ref().map(login_row).transpose()
    }

    /// The sign-in and its user for a typed name.
    pub async fn login_by_username(&self, username: &str) -> DbResult<Option<(LoginRow, UserRow)>> {
        let r = sqlx::query(&format!(
            "SELECT {LOGIN_COLUMNS} FROM console_logins WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = r else { return Ok(None) };
        let login = login_row(&r)?;
        let user = self.get_user(&login.user_id).await?;
        Ok(Some((login, user)))
    }

    pub async fn list_logins(&self, org_id: &str) -> DbResult<Vec<LoginRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {LOGIN_COLUMNS} FROM console_logins WHERE org_id = $1 ORDER BY username"
        ))
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(login_row).collect()
    }

    /// Store a new password hash; clears failures and any lock.
    pub async fn set_password_hash(&self, user_id: &str, hash: &str, now: i64) -> DbResult<()> {
        let done = sqlx::query(
            "UPDATE console_logins SET password_hash = $1, password_set_at = $2, failed_attempts = 0, \
             locked_until = NULL WHERE user_id = $3",
        )
        .bind(hash)
        .bind(now)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!(
                "user `{user_id}` has no sign-in name yet"
            )));
        }
        Ok(())
    }

    /// Count a failed sign-in; the `max`-th failure in a row locks the
    /// sign-in until `now + lock_ms` (and starts the count again).
    pub async fn record_login_failure(
        &self,
        user_id: &str,
        now: i64,
        max: i64,
        lock_ms: i64,
    ) -> DbResult<LoginRow> {
        sqlx::query(
            "UPDATE console_logins SET \
               locked_until = CASE WHEN failed_attempts + 1 >= $1 THEN $2 ELSE locked_until END, \
               failed_attempts = CASE WHEN failed_attempts + 1 >= $1 THEN 0 ELSE failed_attempts + 1 END \
             WHERE user_id = $3",
        )
        .bind(max.max(1))
        .bind(now + lock_ms)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        self.login_of_user(user_id)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("no sign-in for `{user_id}`")))
    }

    pub async fn record_login_success(&self, user_id: &str) -> DbResult<()> {
        sqlx::query(
            "UPDATE console_logins SET failed_attempts = 0, locked_until = NULL WHERE user_id = $1",
        )
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Store an invitation for `user_id` (its secret is the caller's to show once).
    pub async fn create_invite(
        &self,
        org_id: &str,
        user_id: &str,
        secret: &str,
        created_by: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO console_invites (token_hash, user_id, org_id, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(hash_secret(secret))
        .bind(user_id)
        .bind(org_id)
        .bind(created_by)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The user an unused, unexpired invitation is for.
    pub async fn peek_invite(&self, secret: &str, now: i64) -> DbResult<Option<String>> {
        let r = sqlx::query(
            "SELECT user_id FROM console_invites WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(hash_secret(secret))
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        Ok(r.map(|r| r.try_get("user_id")).transpose()?)
    }

    /// Use an invitation: marks it used and returns its user, once.
    pub async fn take_invite(&self, secret: &str, now: i64) -> DbResult<Option<String>> {
        let r = sqlx::query(
            "UPDATE console_invites SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
        )
        .bind(now)
        .bind(hash_secret(secret))
        .fetch_optional(self.pool())
        .await?;
        Ok(r.map(|r| r.try_get("user_id")).transpose()?)
    }

    pub async fn create_session(&self, s: &SessionRow) -> DbResult<()> {
        sqlx::query(&format!(
            "INSERT INTO console_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&s.id_hash)
        .bind(&s.user_id)
        .bind(&s.org_id)
        .bind(&s.csrf_token)
        .bind(s.access_reason.as_deref())
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .bind(s.ended_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The session for a cookie secret and its user, whatever its state.
    pub async fn session_by_secret(&self, secret: &str) -> DbResult<Option<(SessionRow, UserRow)>> {
        let r = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM console_sessions WHERE id_hash = $1"
        ))
        .bind(hash_secret(secret))
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = r else { return Ok(None) };
        let session = session_row(&r)?;
        let user = self.get_user(&session.user_id).await?;
        Ok(Some((session, user)))
    }

    pub async fn touch_session(&self, id_hash: &str, now: i64) -> DbResult<()> {
        sqlx::query("UPDATE console_sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(id_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_session_reason(&self, id_hash: &str, reason: &str) -> DbResult<()> {
        sqlx::query("UPDATE console_sessions SET access_reason = $1 WHERE id_hash = $2")
            .bind(reason)
            .bind(id_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn end_session(&self, id_hash: &str, now: i64) -> DbResult<()> {
        sqlx::query(
            "UPDATE console_sessions SET ended_at = $1 WHERE id_hash = $2 AND ended_at IS NULL",
        )
        .bind(now)
        .bind(id_hash)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// End every session of a user (after a password change).
    pub async fn end_user_sessions(&self, user_id: &str, now: i64) -> DbResult<u64> {
        let done = sqlx::query(
            "UPDATE console_sessions SET ended_at = $1 WHERE user_id = $2 AND ended_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
