//! The console's request context: language, session cookie, CSRF checks.
//!
//! Cookies are few and fixed, so they are read and written here by hand
//! (a cookie crate would add parsing we do not need):
//!
//! - `assist_session`: the session secret; `HttpOnly; SameSite=Lax; Path=/`,
//!   `Secure` when `console_secure_cookies` is set or the request came through
//!   a TLS proxy (`X-Forwarded-Proto: https`). Lax, not Strict, so a link to
//!   an alert pasted into a chat opens signed in; every state change is a
//!   POST that also needs the session's CSRF token, which a cross-site page
//!   cannot read.
//! - `assist_pre`: before sign-in (the sign-in and invitation forms), a
//!   double-submit CSRF token: the form's hidden field must equal the cookie.
//! - `assist_lang`: `zh` or `en`, chosen with the switch; without it the
//!   `Accept-Language` header decides, Chinese first.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::i18n::Lang;
use crate::console::{ConsoleSession, Policy, SessionEnd, same_secret};
use crate::error::ApiError;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "assist_session";
pub const PRE_COOKIE: &str = "assist_pre";
pub const LANG_COOKIE: &str = "assist_lang";

/// The value of cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value. `max_age` 0 deletes the cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    max_age_secs: i64,
    secure: bool,
    http_only: bool,
) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; SameSite=Lax; Max-Age={max_age_secs}");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// What every console page knows about its request.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Lang,
    /// Whether cookies must be `Secure`.
    pub secure: bool,
    /// The signed-in session, if any.
    pub session: Option<ConsoleSession>,
    /// Why a presented session cookie gave no session.
    pub ended: Option<SessionEnd>,
    /// Path and query of this request (where to come back after sign-in).
    pub here: String,
    pub policy: Policy,
}

fn lang_of(headers: &HeaderMap) -> Lang {
    if let Some(l) = cookie(headers, LANG_COOKIE).and_then(Lang::parse) {
        return l;
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Lang::from_accept_language(accept)
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Ctx, Response> {
        let headers = &parts.headers;
        let lang = lang_of(headers);
        let forwarded_tls = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
        let policy = Policy::from_config(&state.config.console);
        let (session, ended) = match cookie(headers, SESSION_COOKIE) {
            Some(secret) if !secret.is_empty() => {
                match crate::console::session(&state.db, &policy, secret).await {
                    Ok(Ok(s)) => (Some(s), None),
                    Ok(Err(end)) => (None, Some(end)),
                    Err(err) => return Err(super::pages::error_page(lang, &err)),
                }
            }
            _ => (None, None),
        };
        Ok(Ctx {
            lang,
            secure: state.config.console.console_secure_cookies || forwarded_tls,
            session,
            ended,
            here: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into()),
            policy,
        })
    }
}

/// A signed-in request: anything else is sent to the sign-in page (GET) or
/// refused (other methods).
#[derive(Debug, Clone)]
pub struct Signed {
    pub ctx: Ctx,
    pub session: ConsoleSession,
}

impl Signed {
    pub fn caller(&self) -> crate::caller::Caller {
        self.session.caller()
    }

    pub fn lang(&self) -> Lang {
        self.ctx.lang
    }

    pub fn csrf(&self) -> &str {
        &self.session.session.csrf_token
    }

    /// 403 unless `token` is this session's CSRF token.
    pub fn check_csrf(&self, token: &str) -> Result<(), ApiError> {
        if same_secret(token, &self.session.session.csrf_token) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this form is stale or did not come from this console (CSRF check failed); reload the page and try again",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Signed, Response> {
        let ctx = Ctx::from_request_parts(parts, state).await?;
        match ctx.session.clone() {
            Some(session) => Ok(Signed { ctx, session }),
            None => {
                let why = match ctx.ended {
                    Some(SessionEnd::Idle) => "&why=idle",
                    Some(SessionEnd::Expired) => "&why=expired",
                    _ => "",
                };
                if parts.method == axum::http::Method::GET {
                    let next = super::pages::encode(&ctx.here);
                    Err(Redirect::to(&format!("/login?next={next}{why}")).into_response())
                } else {
                    Err(super::pages::error_page(
                        ctx.lang,
                        &ApiError::Unauthorized("your session has ended; sign in again".into()),
                    ))
                }
            }
        }
    }
}

/// Refuse a form posted from another site: when the browser says where the
/// form came from (`Origin`), it must be this host.
pub fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    if origin == "null" || (!host.is_empty() && origin_host != host) {
        return Err(ApiError::forbidden(
            "this form was sent from another site and is refused",
        ));
    }
    Ok(())
}
