//! The assist service library, laid out by flow (see `ARCHITECTURE.md` at
//! the root of the repository for the crate map and the three flows).
//!
//! How the pieces fit together:
//!
//! - [`config::Config`] is the one configuration struct (flags, `ASSIST_*`
//!   environment, optional TOML file).
//! - [`db::Db`] opens the embedded SQLite database (default) or PostgreSQL and
//!   runs the versioned migrations; [`jobs::JobQueue`] is the durable queue on
//!   top of it and [`jobs::JobRunner`] leases and runs jobs.
//! - The flows: [`calls`] (intake, transcription, analysis jobs), [`chats`],
//!   [`live`] (live call sessions), each raising alerts through the one path
//!   [`alerts::AlertIngest`]; [`suggest`] finds approved scripts.
//! - [`state::AppState`] holds the database, the models and everything a
//!   request needs; [`http::app()`] turns it into an axum `Router`. Only
//!   [`http`] speaks HTTP: services return [`error::ApiError`] kinds, whose
//!   status is decided in one place, [`http::status`].
//! - [`serve::serve`] runs the server with graceful shutdown; the `assist`
//!   binary and its commands are the `assist-cli` crate.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use assist_server::{config::Config, http::app, state::AppState};
//! let config = Config::default();
//! let state = AppState::open(&config).await?;
//! let router = app(state);
//! # let _ = router; Ok(()) }
//! ```

pub mod alerts;
pub mod caller;
pub mod calls;
pub mod chats;
pub mod config;
pub mod console;
pub mod db;
pub mod error;
pub mod guard;
pub mod http;
pub mod jobs;
pub mod kb;
pub mod live;
pub mod private_files;
pub mod readiness;
pub mod secrets;
pub mod serve;
pub mod speech;
pub mod state;
pub mod suggest;
pub mod telemetry;
pub mod time;
pub mod webhook_target;
