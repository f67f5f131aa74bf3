//! The web console, served by `assist serve` at `/` on the API's port.
//!
//! Why it is built this way:
//!
//! - **Server-rendered HTML** from the same process and the same services as
//!   the API: no second build tool, no npm, nothing to start, nothing fetched
//!   at run time. Pages work without JavaScript (plain forms, POST then
//!   redirect); a small script of our own (`assets/console.js`, ~100 lines,
//!   no library) adds live updates to the alert inbox over Server-Sent Events.
//! - **Templates with `maud`**: the HTML is a Rust macro checked at compile
//!   time, every value is escaped unless marked otherwise, and a template
//!   cannot refer to a field that does not exist. It is well kept and has no
//!   run-time template files to ship (askama would do as well; minijinja
//!   checks templates only at run time).
//! - **Assets in the binary** (`include_str!`), served with a strict
//!   Content-Security-Policy: scripts and styles from this origin only.
//! - **Sessions** ([`crate::console`]): argon2id passwords, sessions in the
//!   database with idle and absolute expiry, lockout after repeated
//!   failures; the session becomes the same [`crate::caller::Caller`] a
//!   bearer token gives, so the role and organisation checks and audit
//!   records are the API's own (there is no second authorisation path).
//! - **CSRF**: every form of a signed-in page carries the session's
//!   synchronizer token; the sign-in and invitation forms a double-submit
//!   token; a form whose `Origin` is another site is refused.
//! - **Chinese first**, English by the switch or `Accept-Language`
//!   ([`i18n`]).
//!
//! Routes: `/` (home by role), `/login`, `/logout`, `/lang/{zh|en}`,
//! `/reason`, `/invite/{secret}`, `/admin/invite`, `/account` (own password), `/alerts` (inbox),
//! `/alerts/stream` (SSE), `/alerts/{id}` and its `ack`, `resolve`,
//! `verdict` forms, `/audit` and `/audit.csv` (the audit log, compliance
//! and admins), `/assets/console.{css,js}`.

mod alerts;
mod audit;
pub mod i18n;
mod layout;
mod pages;
mod session;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use session::{PRE_COOKIE, SESSION_COOKIE};

use crate::state::AppState;

/// Every console route.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/lang/{code}", get(pages::set_lang))
        .route("/reason", get(pages::reason_form).post(pages::reason))
        .route(
            "/invite/{secret}",
            get(pages::invite_form).post(pages::invite_accept),
        )
        .route("/admin/invite", post(pages::admin_invite))
        .route("/account", get(pages::account))
        .route("/account/password", post(pages::change_password))
        .route("/alerts", get(alerts::inbox))
        .route("/alerts/stream", get(alerts::stream))
        .route("/alerts/{id}", get(alerts::detail))
        .route("/alerts/{id}/ack", post(alerts::ack))
        .route("/alerts/{id}/resolve", post(alerts::resolve))
        .route("/alerts/{id}/verdict", post(alerts::verdict))
        .route("/audit", get(audit::page))
        .route("/audit.csv", get(audit::csv))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response();
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

async fn css() -> Response {
    asset(layout::CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(layout::JS, "text/javascript; charset=utf-8")
}
