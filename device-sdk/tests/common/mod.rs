//! An in-process fake of the assist server's device endpoints, written from
//! the protocol docs, with fault injection: 503 + Retry-After, connections
//! cut mid-answer, 409 on an offset mismatch, WebSocket cuts.
#![allow(dead_code, clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use assist_protocol::device::{
    ChatBatchResult, ChatMessageResult, CreateUpload, DeviceEventBatch, DeviceEventBatchResult,
    DeviceEventResult, UploadStatus,
};
use assist_protocol::guard::{GuardPublicKey, GuardRules, key_id, signed_bytes};
use assist_protocol::live::{
    ClientMessage, Limits, Ready, ServerMessage, Speaker, TranscriptPiece, close,
};
use assist_protocol::{ErrorBody, ErrorCode};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

pub const TOKEN: &str = "tok-device-1";

/// What the next matching request gets instead of a normal answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer normally (a placeholder to reach a later request).
    Passthrough,
    /// 503 overloaded with this Retry-After value.
    Overloaded(String),
    /// Process the request, then cut the connection while sending the answer.
    CutAfter,
    /// Cut the connection without processing.
    CutBefore,
    /// 400 invalid_request.
    Invalid,
}

#[derive(Debug)]
pub struct Upload {
    pub status: UploadStatus,
    pub sha256: String,
    pub data: Vec<u8>,
    pub bytes_received: u64,
    pub puts: u32,
}

#[derive(Debug, Default)]
pub struct Fake {
    /// Requests per path kind ("chat", "events", "upload_put" …).
    pub requests: HashMap<String, u32>,
    /// Faults queued per path kind.
    pub faults: HashMap<String, VecDeque<Fault>>,
    /// (conversation, client_message_id) → times stored as new (must be 1).
    pub chats: HashMap<(String, String), u32>,
    /// Raw receipts (with resends).
    pub chat_receipts: u32,
    /// Messages whose text contains this are refused (400).
    pub refuse_text: Option<String>,
    pub events: BTreeMap<String, serde_json::Value>,
    pub event_receipts: u32,
    pub uploads: HashMap<String, Upload>,
    /// upload_key → calls created (must be 1).
    pub calls: HashMap<String, u32>,
    /// After this many stored chunks the next PUT forgets the last chunk (server data loss → 409).
    pub forget_after_chunks: Option<u32>,
    // Guard
    pub guard_doc: Option<GuardRules>,
    pub guard_304: u32,
    // Live
    pub live: LiveFake,
}

#[derive(Debug, Default)]
pub struct LiveFake {
    pub sessions: HashMap<String, LiveSessionFake>,
    /// Cut the socket after this many audio frames (once per entry).
    pub cut_after_frames: VecDeque<u32>,
    /// Close the next start with this code.
    pub close_start_with: Option<u16>,
    /// Server "loses" this many ms of the audio it had when cut (the phone must resend).
    pub lose_ms_on_cut: u64,
    pub starts: u32,
    pub resumes: u32,
    pub feedback: Vec<String>,
}

#[derive(Debug, Default, Clone)]
pub struct LiveSessionFake {
    /// PCM bytes per channel, in order.
    pub audio: BTreeMap<u8, Vec<u8>>,
    pub events: Vec<ServerMessage>,
    pub seq: u64,
    pub texts: Vec<String>,
    pub ended: bool,
}

#[derive(Clone)]
pub struct FakeServer {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<Fake>>,
    pub key: Arc<SigningKey>,
}

impl FakeServer {
    pub async fn start() -> FakeServer {
        let state = Arc::new(Mutex::new(Fake::default()));
        let key = Arc::new(SigningKey::from_bytes(&[42; 32]));
        let app = Router::new()
            .route("/v1/conversations/{id}/messages", post(chat))
            .route("/v1/device/events", post(events))
            .route("/v1/uploads", post(create_upload))
            .route("/v1/uploads/{id}", get(get_upload).put(put_upload))
            .route("/v1/guard/rules", get(guard_rules))
            .route("/v1/guard/public-key", get(guard_key))
            .route("/v1/me", get(me))
            .route("/v1/live", get(live))
            .with_state(AppState {
                fake: state.clone(),
                key: key.clone(),
            })
            .layer(axum::extract::DefaultBodyLimit::max(64 << 20));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeServer { addr, state, key }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn fault(&self, kind: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(kind.into())
            .or_default()
            .push_back(fault);
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Fake) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub fn requests(&self, kind: &str) -> u32 {
        self.with(|f| f.requests.get(kind).copied().unwrap_or(0))
    }

    /// Publish a signed rules document.
    pub fn publish(&self, mut doc: GuardRules) {
        doc.key_id = key_id(&self.key.verifying_key().to_bytes());
        doc.signature = base64::engine::general_purpose::STANDARD
            .encode(self.key.sign(&signed_bytes(&doc)).to_bytes());
        self.with(|f| f.guard_doc = Some(doc));
    }
}

#[derive(Clone)]
struct AppState {
    fake: Arc<Mutex<Fake>>,
    key: Arc<SigningKey>,
}

fn error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            code,
            message: message.into(),
        }),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> Result<(), Response> {
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    if ok {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "unknown token",
        ))
    }
}

/// Count the request and take its fault, if any.
fn begin(st: &AppState, kind: &str) -> Option<Fault> {
    let mut f = st.fake.lock().unwrap();
    *f.requests.entry(kind.into()).or_default() += 1;
    f.faults.get_mut(kind).and_then(|q| q.pop_front())
}

/// A response whose body fails half-way: the client sees a cut connection.
fn cut() -> Response {
    let stream = futures_util::stream::iter(vec![
        Ok::<Bytes, std::io::Error>(Bytes::from_static(b"{\"partial\":")),
        Err(std::io::Error::other("cut")),
    ]);
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, "1000")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn pre_fault(fault: &Option<Fault>) -> Option<Response> {
    match fault {
        Some(Fault::Overloaded(ra)) => {
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Overloaded,
                "busy",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, ra.parse().unwrap());
            Some(r)
        }
        Some(Fault::CutBefore) => Some(cut()),
        Some(Fault::Invalid) => Some(error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "refused by the fake",
        )),
        _ => None,
    }
}

fn answer<T: serde::Serialize>(fault: &Option<Fault>, status: StatusCode, body: T) -> Response {
    if matches!(fault, Some(Fault::CutAfter)) {
        return cut();
    }
    (status, axum::Json(body)).into_response()
}

async fn chat(
    State(st): State<AppState>,
    Path(conv): Path<String>,
    headers: HeaderMap,
    axum::Json(batch): axum::Json<assist_protocol::device::ChatBatch>,
) -> Response {
    if let Err(r) = authorized(&headers) {
        return r;
    }
    let fault = begin(&st, "chat");
    if let Some(r) = pre_fault(&fault) {
        return r;
    }
    let mut f = st.fake.lock().unwrap();
    if batch.messages.len() > 500 {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "too many",
        );
    }
    if let Some(bad) = &f.refuse_text
        && batch.messages.iter().any(|m| m.text.contains(bad.as_str()))
    {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "messages[0].text is refused",
        );
    }
    let mut results = Vec::new();
    for m in &batch.messages {
        f.chat_receipts += 1;
        let key = (conv.clone(), m.client_message_id.clone());
        let dup = f.chats.contains_key(&key);
        *f.chats.entry(key).or_default() += u32::from(!dup);
        results.push(ChatMessageResult {
            client_message_id: m.client_message_id.clone(),
            id: (!dup).then(|| format!("msg_{}", m.client_message_id)),
            duplicate: dup,
        });
    }
    let accepted = results.iter().filter(|r| !r.duplicate).count();
    let body = ChatBatchResult {
        conversation_id: conv,
        accepted,
        duplicates: results.len() - accepted,
        messages: results,
    };
    answer(&fault, StatusCode::OK, body)
}

async fn events(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::Json(batch): axum::Json<DeviceEventBatch>,
) -> Response {
    if let Err(r) = authorized(&headers) {
        return r;
    }
    let fault = begin(&st, "events");
    if let Some(r) = pre_fault(&fault) {
        return r;
    }
    if batch.events.len() > 500 {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "too many",
        );
    }
    let mut f = st.fake.lock().unwrap();
    let mut results = Vec::new();
    for e in batch.events {
        f.event_receipts += 1;
        let dup = f.events.contains_key(&e.event_id);
        if !dup {
            f.events
                .insert(e.event_id.clone(), serde_json::to_value(&e).unwrap());
        }
        results.push(DeviceEventResult {
            event_id: e.event_id,
            duplicate: dup,
        });
    }
    let accepted = results.iter().filter(|r| !r.duplicate).count();
    answer(
        &fault,
        StatusCode::OK,
        DeviceEventBatchResult {
            accepted,
            duplicates: results.len() - accepted,
            results,
        },
    )
}

async fn create_upload(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::Json(req): axum::Json<CreateUpload>,
) -> Response {
    if let Err(r) = authorized(&headers) {
        return r;
    }
    let fault = begin(&st, "upload_create");
    if let Some(r) = pre_fault(&fault) {
        return r;
    }
    let mut f = st.fake.lock().unwrap();
    let id = format!("upl_{}", req.upload_key);
    let (code, status) = match f.uploads.get(&id) {
        Some(u) => (StatusCode::OK, u.status.clone()),
        None => {
            let status = UploadStatus {
                upload_id: id.clone(),
                upload_key: req.upload_key.clone(),
                size: req.size,
                offset: 0,
                state: "receiving".into(),
                call_id: None,
                error: None,
            };
            f.uploads.insert(
                id,
                Upload {
                    status: status.clone(),
                    sha256: req.sha256.clone(),
                    data: Vec::new(),
                    bytes_received: 0,
                    puts: 0,
                },
            );
            (StatusCode::CREATED, status)
        }
    };
    answer(&fault, code, status)
}

async fn get_upload(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorized(&headers) {
        return r;
    }
    let fault = begin(&st, "upload_get");
    if let Some(r) = pre_fault(&fault) {
        return r;
    }
    let f = st.fake.lock().unwrap();
    match f.uploads.get(&id) {
        Some(u) => answer(&fault, StatusCode::OK, u.status.clone()),
        None => error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no upload"),
    }
}

async fn put_upload(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorized(&headers) {
        return r;
    }
    let fault = begin(&st, "upload_put");
    if let Some(r) = pre_fault(&fault) {
        return r;
    }
    let range = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some("application/octet-stream")
    {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "octet-stream please",
        );
    }
    let mut f = st.fake.lock().unwrap();
    let forget = f.forget_after_chunks;
    let Some(u) = f.uploads.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no upload");
    };
    let rest = range.strip_prefix("bytes ").unwrap_or("");
    let (span, total) = rest.split_once('/').unwrap_or(("", ""));
    let total: u64 = total.parse().unwrap_or(u64::MAX);
    if total != u.status.size {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "bad total",
        );
    }
    if u.status.state != "receiving" {
        return answer(&fault, StatusCode::OK, u.status.clone());
    }
    if span != "*" {
        let (a, b) = span.split_once('-').unwrap();
        let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
        assert_eq!(
            b - a + 1,
            body.len() as u64,
            "Content-Range matches the body"
        );
        if a > u.status.offset {
            return error(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "chunk starts after the server's offset; GET the offset",
            );
        }
        u.bytes_received += body.len() as u64;
        u.puts += 1;
        if b + 1 > u.status.offset {
            let skip = (u.status.offset - a) as usize;
            u.data.extend_from_slice(&body[skip..]);
            u.status.offset = b + 1;
        }
        if forget.is_some_and(|n| u.puts == n) && u.status.offset < u.status.size {
            // Simulated server-side loss of this chunk after the answer
            // named its end: the phone's next chunk starts after the
            // server's offset → 409.
            let answered = u.status.clone();
            u.data.truncate(a as usize);
            u.status.offset = a;
            return answer(&fault, StatusCode::OK, answered);
        }
    }
    if u.status.offset == u.status.size {
        let digest = hex::encode(Sha256::digest(&u.data));
        if digest != u.sha256 {
            u.status.state = "failed".into();
            u.status.error = Some("checksum mismatch".into());
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                "the received file's SHA-256 differs",
            );
        }
        u.status.state = "complete".into();
        u.status.call_id = Some(format!("call_{}", u.status.upload_key));
        let key = u.status.upload_key.clone();
        let status = u.status.clone();
        *f.calls.entry(key).or_default() += 1;
        return answer(&fault, StatusCode::CREATED, status);
    }
    answer(&fault, StatusCode::OK, u.status.clone())
}

async fn guard_rules(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&headers) {
        return r;
    }
    let fault = begin(&st, "guard_rules");
    if let Some(r) = pre_fault(&fault) {
        return r;
    }
    let mut f = st.fake.lock().unwrap();
    let Some(doc) = f.guard_doc.clone() else {
        return error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no rules");
    };
    let etag = format!(
        "\"{}-{}\"",
        doc.version,
        &hex::encode(Sha256::digest(signed_bytes(&doc)))[..12]
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        f.guard_304 += 1;
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    ([(header::ETAG, etag)], axum::Json(doc)).into_response()
}

async fn guard_key(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&headers) {
        return r;
    }
    begin(&st, "guard_key");
    let public = st.key.verifying_key().to_bytes();
    axum::Json(GuardPublicKey {
        key_id: key_id(&public),
        algorithm: "ed25519".into(),
        public_key: base64::engine::general_purpose::STANDARD.encode(public),
    })
    .into_response()
}

async fn me(headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&headers) {
        return r;
    }
    axum::Json(serde_json::json!({
        "user": {"id": "usr_1", "org_id": "org_a", "team_id": null, "name": "Li", "role": "rep", "created_at": "2026-01-01T00:00:00Z"},
        "org": {"id": "org_a", "name": "Acme", "created_at": "2026-01-01T00:00:00Z"},
        "device_id": "dev_1"
    }))
    .into_response()
}

// ---- live ----

async fn live(State(st): State<AppState>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if let Err(r) = authorized(&headers) {
        return r;
    }
    ws.on_upgrade(move |socket| live_session(st, socket))
}

async fn close_with(mut socket: WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

fn ms_of(bytes: usize) -> u64 {
    (bytes / 2) as u64 * 1000 / 16_000
}

async fn send_json(socket: &mut WebSocket, m: &ServerMessage) -> bool {
    socket
        .send(Message::Text(serde_json::to_string(m).unwrap().into()))
        .await
        .is_ok()
}

/// One final per second of audio per channel (text = "ch{channel}:{second}"),
/// so the test can check that no audio was lost or doubled.
async fn live_session(st: AppState, mut socket: WebSocket) {
    let Some(Ok(Message::Text(first))) = socket.recv().await else {
        return;
    };
    let Ok(ClientMessage::Start(start)) = serde_json::from_str::<ClientMessage>(&first) else {
        return close_with(socket, close::BAD_START, "first frame must be start").await;
    };
    let decided = {
        let mut f = st.fake.lock().unwrap();
        open_session(&mut f, &start)
    };
    let (session_id, replay, ready) = match decided {
        Ok(v) => v,
        Err((code, reason)) => return close_with(socket, code, reason).await,
    };
    if !send_json(&mut socket, &ServerMessage::Ready(ready)).await {
        return;
    }
    for e in replay {
        if !send_json(&mut socket, &e).await {
            return;
        }
    }
    let mut frames = 0u32;
    while let Some(Ok(msg)) = socket.recv().await {
        let mut out: Vec<ServerMessage> = Vec::new();
        let mut cut_now = false;
        match msg {
            Message::Binary(b) => {
                frames += 1;
                let mut f = st.fake.lock().unwrap();
                let lose = f.live.lose_ms_on_cut;
                let cut_at = f.live.cut_after_frames.front().copied();
                let s = f.live.sessions.get_mut(&session_id).unwrap();
                let ch = b[0];
                let audio = s.audio.entry(ch).or_default();
                let before = ms_of(audio.len()) / 1000;
                audio.extend_from_slice(&b[1..]);
                let after = ms_of(audio.len()) / 1000;
                for sec in before..after {
                    s.seq += 1;
                    let e = ServerMessage::Final(TranscriptPiece {
                        seq: s.seq,
                        speaker: if ch == 1 {
                            Speaker::Rep
                        } else {
                            Speaker::Customer
                        },
                        text: format!("ch{ch}:{sec}"),
                        start_s: sec as f64,
                        end_s: sec as f64 + 1.0,
                    });
                    s.events.push(e.clone());
                    out.push(e);
                }
                if cut_at == Some(frames) {
                    // Forget the tail the server had not made durable.
                    let keep = audio.len().saturating_sub((lose * 32) as usize) & !1;
                    audio.truncate(keep);
                    f.live.cut_after_frames.pop_front();
                    cut_now = true;
                }
            }
            Message::Text(t) => match serde_json::from_str::<ClientMessage>(&t) {
                Ok(ClientMessage::Text { text, .. }) => {
                    let mut f = st.fake.lock().unwrap();
                    let s = f.live.sessions.get_mut(&session_id).unwrap();
                    s.texts.push(text);
                }
                Ok(ClientMessage::Feedback(fb)) => {
                    let mut f = st.fake.lock().unwrap();
                    let dup = f.live.feedback.contains(&fb.feedback_id);
                    if !dup {
                        f.live.feedback.push(fb.feedback_id.clone());
                    }
                    out.push(ServerMessage::FeedbackAck {
                        feedback_id: fb.feedback_id,
                        duplicate: dup,
                    });
                }
                Ok(ClientMessage::End) => {
                    let ended = {
                        let mut f = st.fake.lock().unwrap();
                        let s = f.live.sessions.get_mut(&session_id).unwrap();
                        s.ended = true;
                        ServerMessage::Ended {
                            session_id: session_id.clone(),
                            finals: s.seq,
                            suggestions: 0,
                            risks: 0,
                        }
                    };
                    if send_json(&mut socket, &ended).await {
                        close_with(socket, close::NORMAL, "done").await;
                    }
                    return;
                }
                _ => {}
            },
            _ => {}
        }
        if cut_now {
            return; // dropped without a close frame
        }
        for e in out {
            if !send_json(&mut socket, &e).await {
                return;
            }
        }
    }
}

/// An outbox + client against the fake.
pub fn client_for(
    server: &FakeServer,
    dir: &std::path::Path,
) -> (assist_device_sdk::Outbox, assist_device_sdk::Client) {
    let outbox =
        assist_device_sdk::Outbox::open(dir, assist_device_sdk::OutboxConfig::default()).unwrap();
    let mut cfg = assist_device_sdk::ClientConfig::new(server.url(), TOKEN);
    cfg.timeout = std::time::Duration::from_secs(10);
    cfg.backoff = assist_device_sdk::Backoff {
        base: std::time::Duration::from_millis(20),
        max: std::time::Duration::from_millis(200),
    };
    let client = assist_device_sdk::Client::new(cfg, outbox.clone()).unwrap();
    (outbox, client)
}

type Opened = (String, Vec<ServerMessage>, Ready);

fn open_session(
    f: &mut Fake,
    start: &assist_protocol::live::Start,
) -> Result<Opened, (u16, &'static str)> {
    if let Some(code) = f.live.close_start_with.take() {
        return Err((code, "refused by the fake"));
    }
    let (id, replay, resumed) = match &start.resume {
        Some(r) => match f.live.sessions.get(&r.session_id).cloned() {
            Some(s) => {
                f.live.resumes += 1;
                let replay: Vec<ServerMessage> = s
                    .events
                    .iter()
                    // Replay one event too many: the phone must drop it by seq.
                    .filter(|e| e.seq().is_some_and(|q| q + 1 > r.last_seq))
                    .cloned()
                    .collect();
                (r.session_id.clone(), replay, true)
            }
            None => return Err((close::UNKNOWN_SESSION, "unknown session")),
        },
        None => {
            f.live.starts += 1;
            let id = format!("live_{}", f.live.starts);
            f.live
                .sessions
                .insert(id.clone(), LiveSessionFake::default());
            (id, vec![], false)
        }
    };
    let s = &f.live.sessions[&id];
    let ready = Ready {
        session_id: id.clone(),
        resumed,
        audio_received_samples: s
            .audio
            .iter()
            .map(|(c, a)| (c.to_string(), (a.len() / 2) as u64))
            .collect(),
        speech: true,
        limits: Limits {
            max_speed: 100.0,
            stall_timeout_s: 30,
            resume_window_s: 30,
        },
    };
    Ok((id, replay, ready))
}
