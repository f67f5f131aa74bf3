//! The assist service: HTTP API, storage, job queue, access control and the
//! `assist` command line.
//!
//! How the pieces fit together:
//!
//! - [`config::Config`] is the one configuration struct (flags, `ASSIST_*`
//!   environment, optional TOML file).
//! - [`db::Db`] opens the embedded SQLite database (default) or PostgreSQL and
//!   runs the versioned migrations; [`jobs::JobQueue`] is the durable queue on
//!   top of it and [`jobs::JobRunner`] leases and runs jobs.
//! - [`state::AppState`] holds the database, the model store and everything a
//!   handler needs; [`app::app`] turns it into an axum `Router`.
//! - [`error::ApiError`] is what every handler returns on failure; its HTTP
//!   status is decided in exactly one place, [`http_status`].
//! - [`serve::serve`] runs the server with graceful shutdown; [`cli`] wires the
//!   subcommands (`serve`, `models`, `admin`, `demo`).
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use assist_server::{app::app, config::Config, state::AppState};
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
