//! One module per resource. Each exposes `router()`.

use axum::Router;

use crate::state::AppState;

pub mod admin;
pub mod alerts;
pub mod analysis;
pub mod audit;
pub mod calls;
pub mod conversations;
pub mod device;
pub mod guard;
pub mod health;
pub mod kb;
pub mod live;
pub mod me;
pub mod suggest;
pub mod teams;
pub mod transcriptions;
pub mod uploads;
pub mod webhooks;

/// Everything under `/v1`.
pub fn v1_router(max_import_bytes: usize, max_upload_bytes: usize) -> Router<AppState> {
    Router::new()
        .merge(me::router())
        .merge(kb::router(max_import_bytes))
        .merge(suggest::router())
        .merge(admin::router())
        .merge(audit::router())
        .merge(teams::router())
        .merge(calls::router(max_upload_bytes))
        .merge(transcriptions::router(max_upload_bytes))
        .merge(conversations::router())
        .merge(alerts::router())
        .merge(webhooks::router())
        .merge(guard::router())
        .merge(analysis::router())
        .merge(device::router())
        .merge(uploads::router())
        .merge(live::router())
}
