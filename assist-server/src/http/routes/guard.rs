//! Device-side rules: `GET /v1/guard/rules` and `GET /v1/guard/public-key`.
//!
//! `GET /v1/guard/rules` returns the caller's organisation's approved
//! risk-lexicon entries whose action is `block` (phrases and regular
//! expressions) as one signed [`GuardRules`] document, for the device SDK to
//! enforce before a message is sent. The body is signed with the server's
//! Ed25519 `guard-rules` key over the bytes defined in
//! [`assist_protocol::guard`]; devices check it with
//! [`assist_protocol::guard::verify`] against the key from
//! `GET /v1/guard/public-key` (`{key_id, algorithm: "ed25519", public_key}`).
//!
//! Caching: the response has a strong `ETag` (the version plus a digest of
//! the signed bytes) and `Cache-Control: no-cache`; a request whose
//! `If-None-Match` names the current tag gets `304 Not Modified` without a
//! body, so a phone can poll cheaply. The tag changes when an approval,
//! edit or retirement changes the organisation's rule set.
//!
//! Roles: any authenticated caller, device tokens included; everyone gets
//! their own organisation's rules only.
//!
//! [`GuardRules`]: assist_protocol::guard::GuardRules

use assist_protocol::guard::GuardPublicKey;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::caller::Caller;
use crate::error::ApiError;
use crate::guard::{self, GUARD_KEY_NAME, ServerKey};
use crate::http::extract::Json;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/guard/rules", get(rules))
        .route("/guard/public-key", get(public_key))
}

async fn rules(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = ServerKey::load_or_create(&state.db, GUARD_KEY_NAME).await?;
    let mut doc = guard::current_rules(&state.db, caller.org_id()).await?;
    doc.key_id = key.key_id().to_string();
    let etag = guard::etag(&doc);
    let etag_value = HeaderValue::from_str(&etag).map_err(ApiError::internal)?;
    let cache = [
        (header::ETAG, etag_value),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::VARY, HeaderValue::from_static("authorization")),
    ];
    if if_none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    key.sign(&mut doc);
    tracing::debug!(
        version = doc.version,
        rules = doc.rules.len(),
        device = caller.device_id.as_deref(),
        "serving device rules"
    );
    Ok((cache, Json(doc)).into_response())
}

async fn public_key(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<GuardPublicKey>, ApiError> {
    let key = ServerKey::load_or_create(&state.db, GUARD_KEY_NAME).await?;
    Ok(Json(key.public_key()))
}

/// Whether `If-None-Match` matches `etag` (weak comparison, as RFC 9110
/// prescribes for this header: a `W/` prefix is ignored; `*` matches).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_weak_tags_and_star() {
        let tag = "\"3-abc\"";
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(if_none_match(&h("\"3-abc\""), tag));
        assert!(if_none_match(&h("W/\"3-abc\""), tag));
        assert!(if_none_match(&h("\"2-old\", \"3-abc\""), tag));
        assert!(if_none_match(&h("*"), tag));
        assert!(!if_none_match(&h("\"2-old\""), tag));
        assert!(!if_none_match(&h("3-abc"), tag));
        assert!(!if_none_match(&HeaderMap::new(), tag));
    }
}
