//! Step 5 of the demo: a trainer imports the sample script library, a
//! second trainer approves it, and the rep's customer utterances get
//! suggestions.

use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::json;

use assist_server::state::AppState;

use super::client::{Body, Client, error_text, show};

/// The sample library in `eval/data/retrieval/scripts.jsonl` (synthetic, written for this project).
pub(super) const SAMPLE_SCRIPTS: &str =
    include_str!("../../../../eval/data/retrieval/scripts.jsonl");

pub(super) async fn knowledge_base(
    client: &Client,
    state: &AppState,
    org_name: &str,
    trainer: &str,
    reviewer: &str,
    rep: &str,
) -> anyhow::Result<()> {
    println!("[5/7] knowledge base and in-call suggestions:");
    let started = Instant::now();
    let (s, v, _) = client
        .call(
            Method::POST,
            "/v1/kb/scripts/import?format=jsonl",
            Some(trainer),
            Some(Body::Raw(
                "application/x-ndjson",
                SAMPLE_SCRIPTS.to_string(),
            )),
            &[],
        )
        .await?;
    show(
        "POST /v1/kb/scripts/import (trainer 陈静, sample library)",
        s,
        format!("{} created, {} unchanged", v["created"], v["unchanged"]),
    );
    let (_, items, _) = client
        .call(
            Method::GET,
            "/v1/kb/scripts?status=draft&limit=1000",
            Some(trainer),
            None,
            &[],
        )
        .await?;
    let items = items.as_array().cloned().unwrap_or_default();
    // Three go through the API one by one (each indexed on approval) ...
    let mut approved = 0usize;
    for (i, item) in items.iter().take(3).enumerate() {
        let id = item["id"].as_str().unwrap_or_default();
        let version = item["version"].as_i64().unwrap_or(1);
        client
            .call(
                Method::POST,
                &format!("/v1/kb/scripts/{id}/submit"),
                Some(trainer),
                Some(Body::Json(json!({"expected_version": version}))),
                &[],
            )
            .await?;
        if i == 0 {
            let (s2, v2, _) = client
                .call(
                    Method::POST,
                    &format!("/v1/kb/scripts/{id}/approve"),
                    Some(trainer),
                    Some(Body::Json(json!({"expected_version": version}))),
                    &[],
                )
                .await?;
            show(
                "POST …/approve (the author approves own draft)",
                s2,
                error_text(&v2),
            );
        }
        let (s, v, _) = client
            .call(
                Method::POST,
                &format!("/v1/kb/scripts/{id}/approve"),
                Some(reviewer),
                Some(Body::Json(json!({"expected_version": version}))),
                &[],
            )
            .await?;
        if i == 0 {
            show(
                "POST …/approve (second trainer 孙悦)",
                s,
                format!("status {}", v["status"].as_str().unwrap_or("?")),
            );
        }
        approved += usize::from(s == StatusCode::OK);
    }
    // ... the rest in bulk, the way `assist kb import --approve` does; the
    // consistency check then indexes them in batches.
    let org_id = state.db.find_org(org_name).await?.id;
    let trainer_id = state.db.find_user(&org_id, "陈静").await?.id;
    let reviewer_id = state.db.find_user(&org_id, "孙悦").await?.id;
    for item in items.iter().skip(3) {
        let id = item["id"].as_str().unwrap_or_default();
        let it = state
            .db
            .kb_transition(
                &org_id,
                id,
                1,
                assist_knowledge_base::Status::InReview,
                &trainer_id,
                None,
            )
            .await?;
        state
            .db
            .kb_approve(
                &org_id,
                id,
                it.head_version,
                &reviewer_id,
                assist_knowledge_base::ReviewPolicy::default(),
                None,
            )
            .await?;
        approved += 1;
    }
    if let Some(search) = &state.search {
        let repair = search
            .reconcile(&state.db)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        show(
            "approve the rest in bulk; consistency check indexes them",
            StatusCode::OK,
            format!(
                "{approved}/{} approved, {} indexed in batches, {:.1} s in all",
                items.len(),
                repair.reindexed.len(),
                started.elapsed().as_secs_f64()
            ),
        );
    }
    for (utterance, language) in [
        ("你们这个也太贵了吧，隔壁那家便宜一半", "zh"),
        ("宽带装好要等多久啊，我们下周就搬了", "zh"),
        (
            "can u guys do monthly billing? annual is too much upfront",
            "en",
        ),
    ] {
        let (s, v, _) = client
            .call(
                Method::POST,
                "/v1/suggest",
                Some(rep),
                Some(Body::Json(
                    json!({"utterance": utterance, "language": language, "k": 2}),
                )),
                &[],
            )
            .await?;
        println!(
            "  POST /v1/suggest (rep 张伟) «{utterance}» → {} in {:.0} ms",
            s.as_u16(),
            v["took_ms"].as_f64().unwrap_or(0.0)
        );
        if s != StatusCode::OK {
            println!("      {}", error_text(&v));
            continue;
        }
        for sug in v["suggestions"].as_array().cloned().unwrap_or_default() {
            let body: String = sug["body"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(60)
                .collect();
            println!(
                "      • {} — {}…  (bm25 #{}, vector #{})",
                sug["title"].as_str().unwrap_or(""),
                body,
                sug["why"]["bm25_rank"]
                    .as_u64()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "–".into()),
                sug["why"]["vector_rank"]
                    .as_u64()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "–".into()),
            );
        }
    }
    Ok(())
}
