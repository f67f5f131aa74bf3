//! `assist demo`: the product end to end on a scratch data directory.
//!
//! Fetches the models if needed (from the cache when present), starts the
//! real server on SQLite, sets up a sample organisation, and walks through it
//! with real HTTP requests, printing what each one answered.
//!
//! [`client`] is the small HTTP client the walk-through speaks with; the
//! steps of the walk-through are here, in [`kb`] (the script library and
//! suggestions), [`alerts`] (a risky chat reaching a manager and a webhook),
//! [`live`] (a live call from the phone) and [`call`] (its recording
//! transcribed and analysed).

mod alerts;
mod call;
mod client;
mod kb;
mod live;

use std::time::{Duration, Instant};

use anyhow::Context;
use assist_protocol::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;

use assist_server::config::Config;
use assist_server::serve::{DataDirLock, start};
use assist_server::state::AppState;

use client::{Body, Client, error_text, show};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep serving after the walk-through (until Ctrl-C).
    #[arg(long)]
    pub keep_serving: bool,
    /// Do not fetch models (the readiness check will then say what is missing).
    #[arg(long)]
    pub skip_fetch: bool,
}

/// Run the demo.
pub async fn run(mut config: Config, args: DemoArgs) -> anyhow::Result<()> {
    println!("assist demo — conversation assist for company work phones\n");

    // 1. Models. The demo analyses with the small LLM (0.5B): a walk-through
    // should not wait minutes; `assist serve` uses `analysis_model` (1.5B).
    config.analysis.analysis_model = "llm-small".into();
    config.models.required_models = config
        .models
        .required_models
        .iter()
        .map(|r| {
            if r == "llm" {
                "llm-small".to_string()
            } else {
                r.clone()
            }
        })
        .collect();
    let store = crate::context::model_store(&config)?;
    if args.skip_fetch {
        println!("[1/7] models: fetch skipped (--skip-fetch)");
    } else {
        println!(
            "[1/7] models: fetching what is missing into {} (cached copies are reused)",
            config.models.model_dir.display()
        );
        let required = config.models.required_models.clone();
        let fetch_store = store.clone();
        let started = Instant::now();
        let outcomes = tokio::task::spawn_blocking(move || fetch_store.fetch(&required))
            .await
            .context("model fetch task failed")?
            .context("fetching models failed")?;
        for o in &outcomes {
            println!("      {:<30} {:<10} {:?}", o.id, o.role, o.action);
        }
        println!("      done in {:.1} s", started.elapsed().as_secs_f64());
    }

    // 2. A scratch data directory and the real server on SQLite.
    let scratch = std::env::temp_dir().join(format!("assist-demo-{}", std::process::id()));
    if !args.keep_serving {
        config.storage.data_dir = scratch.clone();
        config.storage.database_url = None;
        // The scratch database's secrets are sealed with a scratch key.
        config.storage.secret_key_file = None;
        config.storage.secret_key = None;
    }
    // The demo's webhook receiver listens on loopback, over plain HTTP.
    config.alerts.webhook_allow_http = true;
    config.alerts.webhook_allow_private_targets = true;
    let lock = DataDirLock::acquire(&config.storage.data_dir)?;
    let mut state = AppState::open(&config).await?;
    state.start_search().await?;
    state.start_speech().await?;
    state.start_llm().await?;
    let listener = if args.keep_serving {
        TcpListener::bind(config.server.listen).await?
    } else {
        TcpListener::bind("127.0.0.1:0").await?
    };
    state.start_alerts().await?;
    let handlers = state.job_handlers()?;
    let running = start(state.clone(), listener, handlers)?;
    let base = format!("http://{}", running.addr);
    println!(
        "[2/7] server: listening on {base}, {} database in {}",
        state.db.backend().name(),
        config.storage.data_dir.display()
    );
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base: base.clone(),
    };

    // Wait for readiness (model verification re-hashes the files once).
    let started = Instant::now();
    let ready = loop {
        let (status, body, _) = client.call(Method::GET, "/readyz", None, None, &[]).await?;
        if status == StatusCode::OK {
            break body;
        }
        let still_verifying = body["checks"].as_array().is_some_and(|c| {
            c.iter().any(|c| {
                c["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("verifying"))
            })
        });
        if !still_verifying || started.elapsed() > Duration::from_secs(300) {
            println!(
                "      /readyz → {} {}",
                status.as_u16(),
                body["message"].as_str().unwrap_or("")
            );
            break body;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "      GET /readyz → ready={} after {:.1} s",
        ready["ready"],
        started.elapsed().as_secs_f64()
    );
    if let Some(checks) = ready["checks"].as_array() {
        for c in checks {
            println!(
                "        {} {:<18} {}",
                if c["ok"].as_bool() == Some(true) {
                    "ok "
                } else {
                    "NOT"
                },
                c["name"].as_str().unwrap_or(""),
                c["detail"].as_str().unwrap_or("")
            );
        }
    }

    // 3. A sample organisation, set up the way an operator would.
    let db = &state.db;
    let org = db.create_org("华东销售有限公司 (demo)").await?;
    let east = db.create_team(&org.id, "华东一组").await?;
    let west = db.create_team(&org.id, "华西二组").await?;
    let admin = db.create_user(&org.id, "王敏", Role::Admin, None).await?;
    let manager = db
        .create_user(&org.id, "李强", Role::Manager, Some(&east.id))
        .await?;
    let rep = db
        .create_user(&org.id, "张伟", Role::Rep, Some(&east.id))
        .await?;
    let trainer = db.create_user(&org.id, "陈静", Role::Trainer, None).await?;
    let compliance = db
        .create_user(&org.id, "赵丽", Role::Compliance, None)
        .await?;
    let phone = db.create_device(&org.id, &rep.id, "张伟的工作手机").await?;
    let (_, admin_t) = db
        .create_token(&org.id, &admin.id, None, Some("demo"), None)
        .await?;
    let (_, manager_t) = db
        .create_token(&org.id, &manager.id, None, Some("demo"), None)
        .await?;
    let (_, rep_t) = db
        .create_token(&org.id, &rep.id, Some(&phone.id), Some("work phone"), None)
        .await?;
    let (_, trainer_t) = db
        .create_token(&org.id, &trainer.id, None, Some("demo"), None)
        .await?;
    let reviewer = db.create_user(&org.id, "孙悦", Role::Trainer, None).await?;
    let (_, reviewer_t) = db
        .create_token(&org.id, &reviewer.id, None, Some("demo"), None)
        .await?;
    let (_, compliance_t) = db
        .create_token(&org.id, &compliance.id, None, Some("demo"), None)
        .await?;
    let other = db.create_org("另一家公司 (demo)").await?;
    let other_admin = db
        .create_user(&other.id, "Other Admin", Role::Admin, None)
        .await?;
    let (_, other_t) = db
        .create_token(&other.id, &other_admin.id, None, None, None)
        .await?;
    println!(
        "[3/7] sample organisation `{}`: teams 华东一组/华西二组; admin 王敏, manager 李强, rep 张伟 \
         (work phone bound), trainer 陈静, compliance 赵丽",
        org.name
    );

    // 4. Walk through the API.
    println!("[4/7] requests:");
    let (s, v, _) = client
        .call(Method::GET, "/v1/me", Some(&rep_t), None, &[])
        .await?;
    show(
        "GET /v1/me (rep's work-phone token)",
        s,
        format!(
            "{} ({}), device {}",
            v["user"]["name"].as_str().unwrap_or(""),
            v["user"]["role"].as_str().unwrap_or(""),
            v["device_id"].as_str().unwrap_or("-")
        ),
    );
    let (s, v, _) = client
        .call(
            Method::POST,
            "/v1/admin/users",
            Some(&admin_t),
            Some(Body::Json(json!({
                "name": "刘洋", "role": "rep", "team_id": west.id
            }))),
            &[],
        )
        .await?;
    show(
        "POST /v1/admin/users (admin adds a rep to 华西二组)",
        s,
        format!(
            "created {} {}",
            v["name"].as_str().unwrap_or(""),
            v["id"].as_str().unwrap_or("")
        ),
    );
    let team_path = format!("/v1/teams/{}", east.id);
    let (s, v, _) = client
        .call(Method::GET, &team_path, Some(&manager_t), None, &[])
        .await?;
    let members: Vec<String> = v["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|u| {
                    format!(
                        "{} ({})",
                        u["name"].as_str().unwrap_or(""),
                        u["role"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    show(
        "GET /v1/teams/华东一组 (its manager)",
        s,
        format!("members: {}", members.join(", ")),
    );
    let (s, v, _) = client
        .call(
            Method::GET,
            &format!("/v1/teams/{}", west.id),
            Some(&manager_t),
            None,
            &[],
        )
        .await?;
    show(
        "GET /v1/teams/华西二组 (manager of another team)",
        s,
        error_text(&v),
    );
    let (s, v, _) = client
        .call(Method::GET, &team_path, Some(&rep_t), None, &[])
        .await?;
    show("GET /v1/teams/华东一组 (a rep)", s, error_text(&v));
    let (s, v, _) = client
        .call(Method::GET, &team_path, Some(&other_t), None, &[])
        .await?;
    show(
        "GET /v1/teams/华东一组 (admin of another organisation)",
        s,
        error_text(&v),
    );
    let (s, v, _) = client
        .call(Method::GET, "/v1/audit", Some(&trainer_t), None, &[])
        .await?;
    show("GET /v1/audit (trainer)", s, error_text(&v));
    let (s, v, _) = client
        .call(
            Method::GET,
            "/v1/audit?limit=5",
            Some(&compliance_t),
            None,
            &[("x-access-reason", "季度合规审查")],
        )
        .await?;
    let actions: Vec<String> = v["items"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|e| e["action"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    show(
        "GET /v1/audit (compliance, with a reason)",
        s,
        format!("latest actions: {}", actions.join(", ")),
    );
    let (s, v, _) = client.call(Method::GET, "/v1/me", None, None, &[]).await?;
    show("GET /v1/me (no token)", s, error_text(&v));
    let (s, v, _) = client
        .call(
            Method::POST,
            "/v1/admin/teams",
            Some(&admin_t),
            Some(Body::Raw("application/json", "{\"name\": ".into())),
            &[],
        )
        .await?;
    show("POST /v1/admin/teams (truncated JSON)", s, error_text(&v));
    let (s, v, _) = client
        .call(
            Method::POST,
            "/v1/admin/teams",
            Some(&admin_t),
            Some(Body::Raw("text/plain", "name=x".into())),
            &[],
        )
        .await?;
    show(
        "POST /v1/admin/teams (wrong content type)",
        s,
        error_text(&v),
    );
    let big = format!(
        "{{\"name\": \"{}\"}}",
        "x".repeat(config.server.max_body_bytes + 1)
    );
    let (s, v, _) = client
        .call(
            Method::POST,
            "/v1/admin/teams",
            Some(&admin_t),
            Some(Body::Raw("application/json", big)),
            &[],
        )
        .await?;
    show(
        "POST /v1/admin/teams (body over the limit)",
        s,
        error_text(&v),
    );
    let (s, _, text) = client
        .call(Method::GET, "/metrics", None, None, &[])
        .await?;
    let requests = text
        .lines()
        .filter(|l| l.starts_with("assist_http_requests_total"))
        .count();
    show(
        "GET /metrics",
        s,
        format!("{requests} request counters, Prometheus text"),
    );

    // 5. The knowledge base: a trainer imports the sample library, a second
    // trainer approves it, and a rep's utterances find approved scripts.
    kb::knowledge_base(&client, &state, &org.name, &trainer_t, &reviewer_t, &rep_t).await?;

    // 6. Risk alerts: a chat from the rep's phone reaches the manager's
    // stream and a signed webhook.
    let reviewer_id = reviewer.id.clone();
    alerts::run(
        &client.http,
        &client.base,
        &state,
        alerts::People {
            org_id: &org.id,
            trainer_id: &trainer.id,
            reviewer_id: &reviewer_id,
            trainer: &trainer_t,
            rep: &rep_t,
            manager: &manager_t,
            compliance: &compliance_t,
        },
    )
    .await?;

    // 7. A live call from the rep's phone, then its recording transcribed per speaker.
    call::recorded_call(&client, &rep_t, &manager_t, &scratch).await?;

    if args.keep_serving {
        // The web console: a sign-in for each role, with a fresh password.
        println!("\nweb console: {base}/ — sign in as (name / password):");
        for (user, username) in [
            (&manager, "liqiang"),
            (&rep, "zhangwei"),
            (&trainer, "chenjing"),
            (&reviewer, "sunyue"),
            (&compliance, "zhaoli"),
            (&admin, "wangmin"),
        ] {
            let password = crate::admin::generated_password();
            assist_server::console::set_password(db, user, username, &password)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "      {:<11} {:<5} {username} / {password}",
                user.role.as_str(),
                user.name
            );
        }
        println!(
            "\nserving on {base} until Ctrl-C. Admin token for 王敏: {admin_t}\n\
             try: curl -H 'Authorization: Bearer {admin_t}' {base}/v1/me"
        );
        let shutdown = running.state.shutdown.clone();
        tokio::spawn(async move {
            assist_server::serve::wait_for_signal().await;
            shutdown.cancel();
        });
        running.wait().await?;
    } else {
        running.shutdown().await?;
        // Close the index (held by our copy of the state) before its directory goes.
        drop(state);
        drop(lock);
        let _ = std::fs::remove_dir_all(&scratch);
        println!(
            "\ndemo finished: server stopped gracefully, scratch data removed. \
             `assist serve` runs the service; `assist --help` lists every command."
        );
    }
    Ok(())
}
