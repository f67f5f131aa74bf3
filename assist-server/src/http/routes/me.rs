//! `GET /v1/me`: who am I?

use assist_protocol::Me;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::caller::Caller;
use crate::error::ApiError;
use crate::http::extract::Json;
use crate::http::routes::admin::{org_view, user_view};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/me", get(me))
}

async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>, ApiError> {
    let org = state.db.get_org(caller.org_id()).await?;
    Ok(Json(Me {
        user: user_view(&caller.user),
        org: org_view(&org),
        device_id: caller.device_id.clone(),
    }))
}
