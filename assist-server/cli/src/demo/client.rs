//! The demo's HTTP client and how it prints an answer.

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub(super) struct Client {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
}

impl Client {
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Body>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, Value, String)> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match body {
            Some(Body::Json(v)) => req = req.json(&v),
            Some(Body::Raw(ct, text)) => req = req.header("content-type", ct).body(text),
            None => {}
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, value, text))
    }
}

pub(super) enum Body {
    Json(Value),
    Raw(&'static str, String),
}

pub(super) fn show(label: &str, status: StatusCode, detail: impl std::fmt::Display) {
    println!("  {label:<58} → {} {detail}", status.as_u16());
}

pub(super) fn error_text(v: &Value) -> String {
    format!(
        "{}: {}",
        v["code"].as_str().unwrap_or("?"),
        v["message"].as_str().unwrap_or("")
    )
}
