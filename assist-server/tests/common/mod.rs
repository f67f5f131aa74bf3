//! Shared setup for the in-process API tests: a fresh database per backend,
//! a sample organisation with one user per role, and a second organisation.
#![allow(dead_code)]

use assist_protocol::Role;
use assist_server::config::Config;
use assist_server::db::Db;
use assist_server::http::app::app;
use assist_server::state::AppState;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub struct Tokens {
    pub admin: String,
    pub manager: String,
    pub rep: String,
    pub trainer: String,
    pub compliance: String,
    pub other_admin: String,
}

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub tokens: Tokens,
    pub org_id: String,
    pub other_org_id: String,
    pub team_id: String,
    pub other_team_id: String,
    pub rep_id: String,
    pub manager_id: String,
    pub model_dir: tempfile::TempDir,
}

/// A config for tests: no required models, a private model dir.
pub fn test_config(model_dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.models.model_dir = model_dir.to_path_buf();
    config.models.required_models = Vec::new();
    config.models.python = "/nonexistent/python-for-tests".into();
    config.server.max_body_bytes = 64 * 1024;
    config
}

pub async fn setup(db: Db) -> TestApp {
    setup_with(db, |_| {}).await
}

pub async fn setup_with(db: Db, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let model_dir = tempfile::tempdir().unwrap();
    let mut config = test_config(model_dir.path());
    tweak(&mut config);
    let state = AppState::with_db(&config, db.clone()).unwrap();
    state.readiness.skip_verification();
    let org = db.create_org("Acme 销售").await.unwrap();
    let team = db.create_team(&org.id, "华东一组").await.unwrap();
    let other_team = db.create_team(&org.id, "华西二组").await.unwrap();
    let mk = |name: &'static str, role: Role, team: Option<String>| {
        let db = db.clone();
        let org_id = org.id.clone();
        async move {
            let u = db
                .create_user(&org_id, name, role, team.as_deref())
                .await
                .unwrap();
            let (_, secret) = db
                .create_token(&org_id, &u.id, None, None, None)
                .await
                .unwrap();
            (u, secret)
        }
    };
    let (_, admin) = mk("admin", Role::Admin, None).await;
    let (manager_u, manager) = mk("manager", Role::Manager, Some(team.id.clone())).await;
    let (rep_u, rep) = mk("rep", Role::Rep, Some(team.id.clone())).await;
    let (_, trainer) = mk("trainer", Role::Trainer, None).await;
    let (_, compliance) = mk("compliance", Role::Compliance, None).await;
    let other = db.create_org("Other Co").await.unwrap();
    let oa = db
        .create_user(&other.id, "other-admin", Role::Admin, None)
        .await
        .unwrap();
    let (_, other_admin) = db
        .create_token(&other.id, &oa.id, None, None, None)
        .await
        .unwrap();
    TestApp {
        router: app(state.clone()),
        state,
        tokens: Tokens {
            admin,
            manager,
            rep,
            trainer,
            compliance,
            other_admin,
        },
        org_id: org.id,
        other_org_id: other.id,
        team_id: team.id,
        other_team_id: other_team.id,
        rep_id: rep_u.id,
        manager_id: manager_u.id,
        model_dir,
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl TestApp {
    pub async fn request(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            json,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        let mut b = Request::get(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        self.request(b.body(Body::empty()).unwrap()).await
    }

    pub async fn send_json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        self.request(b.body(Body::from(body.to_string())).unwrap())
            .await
    }

    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        self.request(b.body(Body::from(body)).unwrap()).await
    }
}

/// Assert the `{code, message}` error contract.
pub fn assert_error(resp: &Resp, status: u16, code: &str) {
    assert_eq!(resp.status.as_u16(), status, "body: {}", resp.text);
    assert_eq!(resp.json["code"], code, "body: {}", resp.text);
    assert!(
        resp.json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message missing: {}",
        resp.text
    );
}
