//! Everything that speaks HTTP: the router, bearer-token extraction, the
//! JSON body extractor, the one mapping from error codes to statuses, and
//! thin route modules that parse a request, call one service and render
//! its answer.
//!
//! The web console (`console/`) is served from the same router: HTML pages
//! over the same services.
//!
//! Nothing outside this folder knows a status code or reads a header.

pub mod app;
pub mod auth;
pub mod console;
pub mod error;
pub mod extract;
pub mod routes;
pub mod status;

pub use app::app;
