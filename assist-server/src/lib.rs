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
pub mod analysis;
pub mod analyze;
pub mod app;
pub mod auth;
pub mod calls;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod demo_alerts;
pub mod demo_live;
pub mod error;
pub mod extract;
pub mod extractors;
pub mod guard;
pub mod http_status;
pub mod jobs;
pub mod kb_cli;
pub mod live;
pub mod postcall;
pub mod private_files;
pub mod readiness;
pub mod risk;
pub mod routes;
pub mod screening;
pub mod search;
pub mod secrets;
pub mod serve;
pub mod speech;
pub mod state;
pub mod telemetry;
pub mod time;
pub mod transcribe_cli;
pub mod webhook_target;
