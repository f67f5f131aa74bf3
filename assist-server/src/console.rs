//! Console sign-in and sessions, without HTTP: passwords, lockout,
//! invitations, and the session that becomes a [`Caller`].
//!
//! - Passwords are hashed with **argon2id** (the `argon2` crate of the
//!   RustCrypto project: pure Rust, maintained, the algorithm OWASP
//!   recommends first) with its default cost (19 MiB, 2 passes), stored as a
//!   PHC string so the cost can be raised later without a migration.
//!   Hashing runs on the blocking pool: it is deliberately slow.
//! - A sign-in name is locked for `console_lockout_minutes` after
//!   `console_max_failures` failures in a row; an unknown name costs the
//!   same hash as a known one, and both say the same thing, so names cannot
//!   be probed by timing or message.
//! - A session is a random 256-bit cookie secret (stored hashed) with its
//!   own synchronizer CSRF token, an idle limit (`console_idle_minutes`,
//!   checked against the last request) and an absolute one
//!   (`console_session_hours`). [`ConsoleSession::caller`] is the same
//!   [`Caller`] a bearer token gives, so every page goes through the same
//!   role and organisation checks (and audit records) as the API.
//! - The access reason (`X-Access-Reason` for the API) is asked once per
//!   session and carried by its `Caller` into every audit record.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use assist_protocol::Role;
use rand::RngCore;

use crate::caller::Caller;
use crate::config::ConsoleConfig;
use crate::db::Db;
use crate::db::audit::AuditRecord;
use crate::db::console::{LoginRow, SessionRow};
use crate::db::identity::{UserRow, hash_secret};
use crate::error::ApiError;
use crate::time::now_ms;

/// Shortest and longest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 256;

/// The limits of sign-in and sessions, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub idle_ms: i64,
    pub absolute_ms: i64,
    pub max_failures: i64,
    pub lockout_ms: i64,
    pub invite_ms: i64,
}

impl Policy {
    pub fn from_config(c: &ConsoleConfig) -> Policy {
        // Capped at ten years, so no sum of times can overflow.
        let minutes = |m: u64| i64::try_from(m.clamp(1, 10 * 366 * 1440)).unwrap_or(1) * 60_000;
        Policy {
            idle_ms: minutes(c.console_idle_minutes),
            absolute_ms: minutes(c.console_session_hours.saturating_mul(60)),
            max_failures: i64::from(c.console_max_failures.max(1)),
            lockout_ms: minutes(c.console_lockout_minutes),
            invite_ms: minutes(c.console_invite_hours.saturating_mul(60)),
        }
    }
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Check a new password's length (characters, so Chinese passwords count
/// fairly).
pub fn check_password(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(ApiError::invalid(format!(
            "a password has at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// An argon2id PHC string for `password` (on the blocking pool).
pub async fn hash_password(password: &str) -> Result<String, ApiError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| ApiError::internal(anyhow_of(e)))?;
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(anyhow_of(e)))
    })
    .await
    .map_err(ApiError::internal)?
}

fn anyhow_of(e: argon2::password_hash::Error) -> anyhow::Error {
    anyhow::anyhow!("argon2: {e}")
}

/// Whether `password` matches the PHC string `hash` (on the blocking pool).
pub async fn verify_password(hash: &str, password: &str) -> bool {
    let (hash, password) = (hash.to_string(), password.to_string());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// Compared against when the name is unknown, so a miss costs a hash too.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

async fn dummy_hash() -> String {
    if let Some(h) = DUMMY_HASH.get() {
        return h.clone();
    }
    let h = hash_password("not a password of anyone")
        .await
        .unwrap_or_default();
    DUMMY_HASH.get_or_init(|| h).clone()
}

/// 256 random bits as hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Constant-time equality of two strings (CSRF tokens).
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a sign-in was refused. The page says the first two the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInError {
    /// Unknown name, wrong password, or no password set yet.
    Invalid,
    /// Too many failures; try again after this time (unix ms).
    Locked {
        until: i64,
    },
    /// An admin switched this sign-in off.
    Disabled,
    Internal(String),
}

impl From<crate::db::DbError> for SignInError {
    fn from(e: crate::db::DbError) -> Self {
        SignInError::Internal(e.to_string())
    }
}

/// A new session: the cookie secret (shown to the browser only) and its row.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub secret: String,
    pub session: SessionRow,
    pub user: UserRow,
}

/// Check a name and password; on success open a session.
pub async fn sign_in(
    db: &Db,
    policy: &Policy,
    username: &str,
    password: &str,
) -> Result<NewSession, SignInError> {
    let now = now_ms();
    let found = db.login_by_username(username.trim()).await?;
    let Some((login, user)) = found else {
        let _ = verify_password(&dummy_hash().await, password).await;
        return Err(SignInError::Invalid);
    };
    if login.disabled_at.is_some() {
        return Err(SignInError::Disabled);
    }
    if let Some(until) = login.locked_until
        && until > now
    {
        return Err(SignInError::Locked { until });
    }
    let ok = match &login.password_hash {
        Some(hash) => verify_password(hash, password).await,
        None => {
            let _ = verify_password(&dummy_hash().await, password).await;
            false
        }
    };
    if !ok {
        let after = db
            .record_login_failure(&login.user_id, now, policy.max_failures, policy.lockout_ms)
            .await?;
        audit_plain(db, &user, "console.sign_in_failed").await;
        if let Some(until) = after.locked_until
            && until > now
        {
            audit_plain(db, &user, "console.locked").await;
            return Err(SignInError::Locked { until });
        }
        return Err(SignInError::Invalid);
    }
    db.record_login_success(&login.user_id).await?;
    let secret = new_secret();
    let session = SessionRow {
        id_hash: hash_secret(&secret),
        user_id: user.id.clone(),
        org_id: user.org_id.clone(),
        csrf_token: new_secret(),
        access_reason: None,
        created_at: now,
        last_seen_at: now,
        expires_at: now + policy.absolute_ms,
        ended_at: None,
    };
    db.create_session(&session).await?;
    audit_plain(db, &user, "console.sign_in").await;
    Ok(NewSession {
        secret,
        session,
        user,
    })
}

async fn audit_plain(db: &Db, user: &UserRow, action: &str) {
    let rec = AuditRecord {
        org_id: &user.org_id,
        actor_user_id: Some(&user.id),
        action,
        resource_type: "console_session",
        resource_id: None,
        reason: None,
    };
    if let Err(err) = db.audit(rec).await {
        tracing::warn!(error = %err, action, "could not write the audit record");
    }
}

/// A live console session and its user.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub session: SessionRow,
    pub user: UserRow,
}

/// Why a cookie gives no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// No such session, or signed out.
    Unknown,
    Idle,
    Expired,
}

/// Touch `last_seen_at` at most this often, to keep writes rare.
const TOUCH_EVERY_MS: i64 = 30_000;

/// The session for a cookie secret, if it is still live (and mark it used).
pub async fn session(
    db: &Db,
    policy: &Policy,
    secret: &str,
) -> Result<Result<ConsoleSession, SessionEnd>, ApiError> {
    let now = now_ms();
    let Some((session, user)) = db.session_by_secret(secret).await? else {
        return Ok(Err(SessionEnd::Unknown));
    };
    if session.ended_at.is_some() {
        return Ok(Err(SessionEnd::Unknown));
    }
    if session.expires_at <= now {
        db.end_session(&session.id_hash, now).await?;
        return Ok(Err(SessionEnd::Expired));
    }
    if session.last_seen_at + policy.idle_ms <= now {
        db.end_session(&session.id_hash, now).await?;
        return Ok(Err(SessionEnd::Idle));
    }
    if now - session.last_seen_at > TOUCH_EVERY_MS {
        db.touch_session(&session.id_hash, now).await?;
    }
    Ok(Ok(ConsoleSession { session, user }))
}

impl ConsoleSession {
    /// The caller this session acts as: the same checks as a bearer token.
    pub fn caller(&self) -> Caller {
        Caller {
            user: self.user.clone(),
            token_id: format!("console:{}", &self.session.id_hash[..12]),
            device_id: None,
            reason: self.session.access_reason.clone(),
        }
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    /// Record why this person opens conversation content, for the rest of
    /// the session.
    pub async fn set_reason(&mut self, db: &Db, reason: &str) -> Result<(), ApiError> {
        let reason: String = reason.trim().chars().take(500).collect();
        if reason.chars().count() < 2 {
            return Err(ApiError::invalid("say in a few words why you open content"));
        }
        db.set_session_reason(&self.session.id_hash, &reason)
            .await?;
        self.session.access_reason = Some(reason);
        let caller = self.caller();
        db.audit(caller.audit("console.reason", "console_session", None))
            .await?;
        Ok(())
    }

    pub async fn sign_out(&self, db: &Db) -> Result<(), ApiError> {
        db.end_session(&self.session.id_hash, now_ms()).await?;
        db.audit(
            self.caller()
                .audit("console.sign_out", "console_session", None),
        )
        .await?;
        Ok(())
    }
}

/// Give a user a sign-in name and password (the admin command line, the
/// demo). Ends the user's open sessions.
pub async fn set_password(
    db: &Db,
    user: &UserRow,
    username: &str,
    password: &str,
) -> Result<LoginRow, ApiError> {
    check_password(password)?;
    let now = now_ms();
    db.upsert_login(&user.org_id, &user.id, username, now)
        .await?;
    let hash = hash_password(password).await?;
    db.set_password_hash(&user.id, &hash, now).await?;
    db.end_user_sessions(&user.id, now).await?;
    db.login_of_user(&user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("no sign-in"))
}

/// A signed-in person changes their own password: the current one must be
/// right (a wrong one counts towards the lockout, so a left-open session
/// cannot be used to guess it). Every session of theirs ends, this one too.
pub async fn change_password(
    db: &Db,
    policy: &Policy,
    session: &ConsoleSession,
    current: &str,
    new: &str,
) -> Result<(), ApiError> {
    check_password(new)?;
    let now = now_ms();
    let user = &session.user;
    let login = db
        .login_of_user(&user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("you have no console sign-in"))?;
    let ok = match &login.password_hash {
        Some(hash) => verify_password(hash, current).await,
        None => false,
    };
    if !ok {
        db.record_login_failure(&user.id, now, policy.max_failures, policy.lockout_ms)
            .await?;
        audit_plain(db, user, "console.password_change_failed").await;
        return Err(ApiError::forbidden("the current password is not right"));
    }
    let hash = hash_password(new).await?;
    db.set_password_hash(&user.id, &hash, now).await?;
    db.end_user_sessions(&user.id, now).await?;
    db.audit(
        session
            .caller()
            .audit("console.password_change", "user", Some(&user.id)),
    )
    .await?;
    Ok(())
}

/// Give `user` the sign-in name `username` and a one-time link secret to
/// choose a password with (no role check: the command line and [`invite`]).
pub async fn create_invitation(
    db: &Db,
    policy: &Policy,
    user: &UserRow,
    username: &str,
    created_by: Option<&str>,
) -> Result<String, ApiError> {
    let now = now_ms();
    db.upsert_login(&user.org_id, &user.id, username.trim(), now)
        .await?;
    let secret = new_secret();
    db.create_invite(
        &user.org_id,
        &user.id,
        &secret,
        created_by,
        now,
        now + policy.invite_ms,
    )
    .await?;
    Ok(secret)
}

/// An admin invites a user of their organisation: the user gets the sign-in
/// name `username` and a one-time link secret to choose a password with.
pub async fn invite(
    db: &Db,
    policy: &Policy,
    caller: &Caller,
    user_id: &str,
    username: &str,
) -> Result<String, ApiError> {
    caller.require(&[Role::Admin])?;
    let user = db.get_user(user_id).await?;
    caller
        .same_org(&user.org_id)
        .map_err(|_| ApiError::not_found(format!("no user `{user_id}`")))?;
    let secret = create_invitation(db, policy, &user, username, Some(&caller.user.id)).await?;
    db.audit(caller.audit("console.invite", "user", Some(&user.id)))
        .await?;
    Ok(secret)
}

/// Who an invitation is for (its user and sign-in), if it can still be used.
pub async fn invitation(db: &Db, secret: &str) -> Result<Option<(UserRow, LoginRow)>, ApiError> {
    let Some(user_id) = db.peek_invite(secret, now_ms()).await? else {
        return Ok(None);
    };
    let user = db.get_user(&user_id).await?;
    let Some(login) = db.login_of_user(&user_id).await? else {
        return Ok(None);
    };
    Ok(Some((user, login)))
}

/// Use an invitation to set a password (once).
pub async fn accept_invite(db: &Db, secret: &str, password: &str) -> Result<UserRow, ApiError> {
    check_password(password)?;
    let now = now_ms();
    let user_id = db
        .take_invite(secret, now)
        .await?
        .ok_or_else(|| ApiError::not_found("this invitation is used, expired or unknown"))?;
    let user = db.get_user(&user_id).await?;
    let hash = hash_password(password).await?;
    db.set_password_hash(&user.id, &hash, now).await?;
    db.end_user_sessions(&user.id, now).await?;
    db.audit(AuditRecord {
        org_id: &user.org_id,
        actor_user_id: Some(&user.id),
        action: "console.invite_accepted",
        resource_type: "user",
        resource_id: Some(&user.id),
        reason: None,
    })
    .await?;
    Ok(user)
}
