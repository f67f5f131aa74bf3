//! `/v1/admin/…`: an organisation's admin manages teams, users, devices,
//! tokens, and looks after the job queue. Everything is scoped to the
//! admin's own organisation and recorded in the audit log.

use crate::http::extract::Query;
use assist_protocol::{
    CreateDevice, CreateTeam, CreateToken, CreateUser, CreatedToken, Device, Org, Role, Team,
    TokenInfo, User,
};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::Deserialize;

use crate::caller::Caller;
use crate::db::identity::{DeviceRow, OrgRow, TeamRow, TokenRow, UserRow};
use crate::error::ApiError;
use crate::http::extract::Json;
use crate::jobs::{JobRow, JobState};
use crate::state::AppState;
use crate::time::{now_ms, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/teams", get(list_teams).post(create_team))
        .route("/admin/users", get(list_users).post(create_user))
        .route("/admin/devices", get(list_devices).post(create_device))
        .route("/admin/tokens", get(list_tokens).post(create_token))
        .route("/admin/tokens/{id}", delete(revoke_token))
        .route("/admin/jobs", get(list_jobs))
        .route("/admin/jobs/{id}/retry", post(retry_job))
}

pub fn org_view(o: &OrgRow) -> Org {
    Org {
        id: o.id.clone(),
        name: o.name.clone(),
        created_at: rfc3339(o.created_at),
    }
}

pub fn team_view(t: &TeamRow) -> Team {
    Team {
        id: t.id.clone(),
        org_id: t.org_id.clone(),
        name: t.name.clone(),
        created_at: rfc3339(t.created_at),
    }
}

pub fn user_view(u: &UserRow) -> User {
    User {
        id: u.id.clone(),
        org_id: u.org_id.clone(),
        team_id: u.team_id.clone(),
        name: u.name.clone(),
        role: u.role,
        created_at: rfc3339(u.created_at),
    }
}

pub fn device_view(d: &DeviceRow) -> Device {
    Device {
        id: d.id.clone(),
        org_id: d.org_id.clone(),
        user_id: d.user_id.clone(),
        name: d.name.clone(),
        created_at: rfc3339(d.created_at),
    }
}

pub fn token_view(t: &TokenRow) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        user_id: t.user_id.clone(),
        device_id: t.device_id.clone(),
        name: t.name.clone(),
        prefix: t.prefix.clone(),
        created_at: rfc3339(t.created_at),
        expires_at: t.expires_at.map(rfc3339),
        revoked_at: t.revoked_at.map(rfc3339),
    }
}

async fn list_teams(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Team>>, ApiError> {
    caller.require(&[Role::Admin, Role::Compliance])?;
    let teams = state.db.list_teams(caller.org_id()).await?;
    Ok(Json(teams.iter().map(team_view).collect()))
}

async fn create_team(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateTeam>,
) -> Result<(StatusCode, Json<Team>), ApiError> {
    caller.require(&[Role::Admin])?;
    let team = state.db.create_team(caller.org_id(), &req.name).await?;
    state
        .db
        .audit(caller.audit("team.create", "team", Some(&team.id)))
        .await?;
    Ok((StatusCode::CREATED, Json(team_view(&team))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFilter {
    team_id: Option<String>,
}

async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<UserFilter>,
) -> Result<Json<Vec<User>>, ApiError> {
    caller.require(&[Role::Admin, Role::Compliance])?;
    let users = state
        .db
        .list_users(caller.org_id(), filter.team_id.as_deref())
        .await?;
    Ok(Json(users.iter().map(user_view).collect()))
}

async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    caller.require(&[Role::Admin])?;
    let user = state
        .db
        .create_user(caller.org_id(), &req.name, req.role, req.team_id.as_deref())
        .await?;
    state
        .db
        .audit(caller.audit("user.create", "user", Some(&user.id)))
        .await?;
    Ok((StatusCode::CREATED, Json(user_view(&user))))
}

async fn list_devices(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Device>>, ApiError> {
    caller.require(&[Role::Admin])?;
    let devices = state.db.list_devices(caller.org_id()).await?;
    Ok(Json(devices.iter().map(device_view).collect()))
}

async fn create_device(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateDevice>,
) -> Result<(StatusCode, Json<Device>), ApiError> {
    caller.require(&[Role::Admin])?;
    let device = state
        .db
        .create_device(caller.org_id(), &req.user_id, &req.name)
        .await?;
    state
        .db
        .audit(caller.audit("device.create", "device", Some(&device.id)))
        .await?;
    Ok((StatusCode::CREATED, Json(device_view(&device))))
}

async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    caller.require(&[Role::Admin])?;
    let tokens = state.db.list_tokens(caller.org_id()).await?;
    Ok(Json(tokens.iter().map(token_view).collect()))
}

async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    caller.require(&[Role::Admin])?;
    let expires_at = match req.expires_in_days {
        Some(0) => return Err(ApiError::invalid("`expires_in_days` must be at least 1")),
        Some(days) => Some(now_ms() + i64::from(days) * 86_400_000),
        None => None,
    };
    let (token, secret) = state
        .db
        .create_token(
            caller.org_id(),
            &req.user_id,
            req.device_id.as_deref(),
            req.name.as_deref(),
            expires_at,
        )
        .await?;
    state
        .db
        .audit(caller.audit("token.create", "token", Some(&token.id)))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id: token.id,
            user_id: token.user_id,
            device_id: token.device_id,
            secret,
            expires_at: token.expires_at.map(rfc3339),
        }),
    ))
}

async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    caller.require(&[Role::Admin])?;
    let token = state.db.revoke_token(caller.org_id(), &id).await?;
    state
        .db
        .audit(caller.audit("token.revoke", "token", Some(&token.id)))
        .await?;
    Ok(Json(token_view(&token)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFilter {
    state: Option<JobState>,
    limit: Option<i64>,
}

/// Job metadata for operators (payloads hold content and stay out of lists).
#[derive(Debug, serde::Serialize)]
struct JobView {
    id: i64,
    queue: String,
    state: JobState,
    attempts: i64,
    max_attempts: i64,
    last_error: Option<String>,
    run_at: String,
    created_at: String,
    updated_at: String,
}

fn job_view(j: &JobRow) -> JobView {
    JobView {
        id: j.id,
        queue: j.queue.clone(),
        state: j.state,
        attempts: j.attempts,
        max_attempts: j.max_attempts,
        last_error: j.last_error.clone(),
        run_at: rfc3339(j.run_at),
        created_at: rfc3339(j.created_at),
        updated_at: rfc3339(j.updated_at),
    }
}

async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<JobFilter>,
) -> Result<Json<Vec<JobView>>, ApiError> {
    caller.require(&[Role::Admin])?;
    let jobs = state
        .jobs
        .list(
            caller.org_id(),
            filter.state,
            crate::http::extract::page_limit(filter.limit, 100, 1000)?,
        )
        .await?;
    Ok(Json(jobs.iter().map(job_view).collect()))
}

async fn retry_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<JobView>, ApiError> {
    caller.require(&[Role::Admin])?;
    let job = state.jobs.retry_dead(caller.org_id(), id).await?;
    let id_text = id.to_string();
    state
        .db
        .audit(caller.audit("job.retry", "job", Some(&id_text)))
        .await?;
    Ok(Json(job_view(&job)))
}
