//! Storage: one code path over embedded SQLite (default) and PostgreSQL.
//!
//! Both backends go through sqlx's `Any` driver with the same SQL (numbered
//! `$1` placeholders, `RETURNING`, BIGINT unix-millisecond times, TEXT ids).
//! Each backend has its own migration directory because DDL differs
//! (identity columns); the schemas are kept equivalent by review and by the
//! tests, which run against both.
//!
//! SQLite is opened in WAL mode with a busy timeout and foreign keys on.

pub mod alerts;
pub mod analysis;
pub mod audit;
pub mod calls;
pub mod chats;
pub mod console;
pub mod device;
pub mod identity;
pub mod kb;
pub mod secrets;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

/// Which engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Storage errors a caller can act on, separate from database failures.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    /// A key the client chose is taken by other content or another caller.
    #[error("{0}")]
    KeyConflict(String),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type DbResult<T> = Result<T, DbError>;

/// A pool plus the backend it talks to.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// Seals the secrets stored in the database (see [`crate::secrets`]).
    secrets: Option<std::sync::Arc<crate::secrets::SecretKey>>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Db {
    /// Connect to `url` (`sqlite://PATH` or `postgres://…`), creating the
    /// SQLite file if needed, and run pending migrations.
    pub async fn open(url: &str, max_connections: u32) -> DbResult<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(DbError::Invalid(format!(
                "unsupported database URL `{}`: use sqlite://PATH or postgres://…",
                crate::config::redact_url(url)
            )));
        };
        let url = match backend {
            Backend::Sqlite => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                let path = path.split('?').next().unwrap_or(path);
                if let Some(parent) = Path::new(path).parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        DbError::Invalid(format!(
                            "cannot create database directory {}: {e}",
                            parent.display()
                        ))
                    })?;
                }
                if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                }
            }
            Backend::Postgres => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)?
            .log_statements(log::LevelFilter::Trace)
            .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // One writer at a time anyway; a few readers in WAL mode.
                Backend::Sqlite => max_connections.clamp(1, 8),
                Backend::Postgres => max_connections.max(1),
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let db = Db {
            pool,
            backend,
            secrets: None,
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> DbResult<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Close the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether an sqlx error is a unique-constraint violation.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db.code().as_deref() == Some("23505")
                || db.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

/// Whether an sqlx error is a foreign-key violation.
pub fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_foreign_key_violation()
                || db.code().as_deref() == Some("23503")
                || db.message().contains("FOREIGN KEY constraint failed")
        }
        _ => false,
    }
}

/// Test support: a fresh database on each backend that is available.
pub mod testing {
    use super::*;

    /// Environment variable naming a PostgreSQL server for the backend tests
    /// (`.ci/run` points it at the local server). Unset: PostgreSQL tests are skipped.
    pub const PG_ENV: &str = "ASSIST_TEST_POSTGRES_URL";

    /// A database for one test, removed when dropped (SQLite) or left in a
    /// uniquely named schema (PostgreSQL).
    #[derive(Debug)]
    pub struct TestDb {
        pub db: Db,
        _dir: Option<tempfile_dir::TempDir>,
    }

    mod tempfile_dir {
        /// Minimal temp dir so the library does not depend on `tempfile`.
        #[derive(Debug)]
        pub struct TempDir(pub std::path::PathBuf);
        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    /// A fresh SQLite database in a temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(format!("assist-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let url = format!("sqlite://{}", dir.join("test.db").display());
        let db = Db::open(&url, 4)
            .await
            .expect("open sqlite")
            .with_secret_key(crate::secrets::SecretKey::generate());
        TestDb {
            db,
            _dir: Some(tempfile_dir::TempDir(dir)),
        }
    }

    /// A fresh PostgreSQL schema, or `None` (a skip reported with
    /// `assist_testkit::skip`, which names the test) when [`PG_ENV`] is unset.
    pub async fn postgres(_test: &str) -> Option<TestDb> {
        let Ok(base) = std::env::var(PG_ENV) else {
            assist_testkit::skip(
                assist_testkit::Kind::Postgres,
                format!("the PostgreSQL backend: {PG_ENV} is not set"),
            );
            return None;
        };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        sqlx::any::install_default_drivers();
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&base)
            .await
            .expect("connect to the test PostgreSQL");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("create schema");
        admin.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        let db = Db::open(&url, 4)
            .await
            .expect("open postgres")
            .with_secret_key(crate::secrets::SecretKey::generate());
        Some(TestDb { db, _dir: None })
    }

    /// Every backend available to this test run.
    pub async fn all(test: &str) -> Vec<TestDb> {
        let mut out = vec![sqlite().await];
        if let Some(pg) = postgres(test).await {
            out.push(pg);
        }
        out
    }
}
