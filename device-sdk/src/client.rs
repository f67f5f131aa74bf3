//! The HTTP client: one base URL, one device token, timeouts, and the
//! server's error bodies mapped to [`ErrorCode`](assist_protocol::ErrorCode).

use std::time::Duration;

use assist_protocol::ErrorBody;
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::outbox::Outbox;
use crate::{Backoff, Error, Result};

/// How to reach the server.
#[derive(Clone)]
pub struct ClientConfig {
    /// e.g. `https://assist.example.com` (the `/v1` prefix is added).
    pub base_url: String,
    /// A rep's device token (`Authorization: Bearer …`).
    pub token: String,
    /// Whole-request timeout (a chunk PUT included). Default 60 s.
    pub timeout: Duration,
    /// TCP + TLS connect timeout. Default 10 s.
    pub connect_timeout: Duration,
    /// Bytes per upload `PUT`. Default 256 KiB.
    pub chunk_bytes: usize,
    /// Most chat messages per request (the server's limit is 500).
    pub chat_batch: usize,
    /// Most device events per request (the server's limit is 500).
    pub event_batch: usize,
    pub backoff: Backoff,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("chunk_bytes", &self.chunk_bytes)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            token: token.into(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            chunk_bytes: 256 * 1024,
            chat_batch: 500,
            event_batch: 500,
            backoff: Backoff::default(),
        }
    }
}

/// The SDK's connection to the server, with the outbox it delivers.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) config: ClientConfig,
    pub(crate) outbox: Outbox,
    base: String,
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Answer<T> {
    pub body: T,
}

impl Client {
    pub fn new(config: ClientConfig, outbox: Outbox) -> Result<Client> {
        let base = config.base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Invalid(format!(
                "the server URL `{base}` must start with http:// or https://"
            )));
        }
        if config.token.trim().is_empty() {
            return Err(Error::Invalid(
                "no device token: set one (ASSIST_DEVICE_TOKEN or --token)".into(),
            ));
        }
        if config.chunk_bytes == 0 || config.chat_batch == 0 || config.event_batch == 0 {
            return Err(Error::Invalid(
                "chunk and batch sizes must be above zero".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("assist-device-sdk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            config,
            outbox,
            base,
        })
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// `base_url` + `/v1` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v1{path}", self.base)
    }

    /// The WebSocket URL of `path` (`ws://` or `wss://`).
    pub(crate) fn ws_url(&self, path: &str) -> String {
        let url = self.url(path);
        if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            url
        }
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.config.token)
    }

    /// Send and decode a JSON answer; any non-2xx is an [`Error::Api`]. A
    /// connection cut while the answer is read is [`Error::Unreachable`]; an
    /// unreadable 2xx answer is reported as a 502 (retryable: every request
    /// the SDK makes is idempotent, so sending it again is safe).
    pub(crate) async fn call<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<Answer<T>> {
        let resp = self.send(req).await?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        let body = serde_json::from_slice::<T>(&bytes).map_err(|e| Error::Api {
            status: 502,
            code: None,
            message: format!("the server's answer ({status}) is not what this SDK expects: {e}"),
            retry_after: None,
        })?;
        Ok(Answer { body })
    }

    pub(crate) async fn call_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<Answer<T>> {
        self.call(self.request(method, path).json(body)).await
    }

    /// Send; a non-2xx (other than 304) becomes [`Error::Api`] with the code
    /// from the body and the `Retry-After` header.
    pub(crate) async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        Err(api_error(resp).await)
    }

    pub(crate) fn unreachable(&self, e: reqwest::Error) -> Error {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Error::Unreachable {
            url: self.base.clone(),
            message,
        }
    }
}

/// Read an error answer: `{code, message}` when the server sent one.
pub(crate) async fn api_error(resp: Response) -> Error {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::util::parse_retry_after);
    let text = resp.text().await.unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => Error::Api {
            status,
            code: Some(body.code),
            message: body.message,
            retry_after,
        },
        Err(_) => Error::Api {
            status,
            code: None,
            message: if text.trim().is_empty() {
                format!("HTTP {status} without a body")
            } else {
                text.chars().take(300).collect()
            },
            retry_after,
        },
    }
}
