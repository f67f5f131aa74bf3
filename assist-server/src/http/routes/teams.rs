//! `GET /v1/teams/{id}`: a team and its members (no conversation content).
//! Admins and compliance see every team of their organisation; a manager sees
//! only the team they belong to.

use assist_protocol::{Role, Team, User};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::Serialize;

use crate::caller::Caller;
use crate::error::ApiError;
use crate::http::extract::Json;
use crate::http::routes::admin::{team_view, user_view};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/teams/{id}", get(get_team))
}

#[derive(Debug, Serialize)]
struct TeamDetail {
    team: Team,
    members: Vec<User>,
}

async fn get_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TeamDetail>, ApiError> {
    caller.require(&[Role::Admin, Role::Compliance, Role::Manager])?;
    let team = state.db.get_team(&id).await?;
    caller.same_org(&team.org_id)?;
    if caller.role() == Role::Manager && caller.user.team_id.as_deref() != Some(team.id.as_str()) {
        return Err(ApiError::forbidden("managers see their own team only"));
    }
    let members = state.db.list_users(&team.org_id, Some(&team.id)).await?;
    Ok(Json(TeamDetail {
        team: team_view(&team),
        members: members.iter().map(user_view).collect(),
    }))
}
