//! Idempotency keys belong to whoever sent them (issue 21, finding 2): a key
//! another rep used gives the caller their own new resource, never the other
//! rep's; the same key with different content is a 409
//! `idempotency_conflict`, and nothing the caller sent is dropped silently.
//! One test per path: calls, resumable uploads, chats, device events.

mod common;

use assist_models::speech::FakeTranscriber;
use assist_protocol::Role;
use assist_server::db::Db;
use assist_server::db::testing;
use assist_server::speech::SpeechService;
use axum::body::Body;
use axum::http::Request;
use common::{Resp, TestApp, assert_error, setup_with};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One second of a 16 kHz mono tone at `hz`: a different `hz` is a
/// different recording.
fn wav(hz: f32) -> Vec<u8> {
    let n = 16_000usize;
    let data_len = (n * 2) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..n {
        let v = (0.3 * (std::f32::consts::TAU * hz * i as f32 / 16_000.0).sin() * 32767.0) as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

async fn app_with_speech(db: Db, data: &std::path::Path) -> TestApp {
    let data = data.to_path_buf();
    let mut app = setup_with(db, move |c| c.storage.data_dir = data).await;
    let speech = SpeechService::spawn(&app.state.config, "fake-asr", || {
        Ok(Box::new(FakeTranscriber::default()))
    })
    .unwrap();
    app.state.speech = Some(speech);
    app.router = assist_server::http::app::app(app.state.clone());
    app
}

/// A second rep of the same team, and their token.
async fn rep_b(app: &TestApp) -> (String, String) {
    let db = &app.state.db;
    let u = db
        .create_user(&app.org_id, "rep-b", Role::Rep, Some(&app.team_id))
        .await
        .unwrap();
    let token = db
        .create_token(&app.org_id, &u.id, None, None, None)
        .await
        .unwrap()
        .1;
    (u.id, token)
}

async fn upload_call(
    app: &TestApp,
    token: &str,
    audio: Vec<u8>,
    meta: Value,
    key: Option<&str>,
) -> Resp {
    let boundary = "assist-idem-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{meta}\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"call.wav\"\r\n\
             Content-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&audio);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut b = Request::post("/v1/calls")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("authorization", format!("Bearer {token}"));
    if let Some(k) = key {
        b = b.header("idempotency-key", k);
    }
    app.request(b.body(Body::from(body)).unwrap()).await
}

async fn count(db: &Db, sql: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sql)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap()
}

#[tokio::test]
async fn call_keys_belong_to_their_uploader() {
    for t in testing::all("call_keys_belong_to_their_uploader").await {
        let data = tempfile::tempdir().unwrap();
        let app = app_with_speech(t.db.clone(), data.path()).await;
        let (b_id, b) = rep_b(&app).await;
        let a = app.tokens.rep.clone();

        let r = upload_call(
            &app,
            &a,
            wav(440.0),
            json!({"customer_ref": "CRM-A"}),
            Some("k-1"),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.text);
        let a_call = r.json["id"].as_str().unwrap().to_string();

        // Rep B sends the same key with their own recording: their own call,
        // not rep A's (before the fix: A's call with 200, B's audio dropped).
        let r = upload_call(&app, &b, wav(550.0), json!({}), Some("k-1")).await;
        assert_eq!(r.status, 202, "{}", r.text);
        let b_call = r.json["id"].as_str().unwrap().to_string();
        assert_ne!(a_call, b_call);
        assert!(!r.text.contains("CRM-A"), "{}", r.text);
        let r = app.get(&format!("/v1/calls/{b_call}"), Some(&b)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["rep_user_id"], b_id.as_str(), "{}", r.text);
        // The same key in `client_call_id` is the same key.
        let r = upload_call(&app, &b, wav(550.0), json!({"client_call_id": "k-1"}), None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["id"], b_call.as_str());

        // Rep A retries: their first call. Rep A reuses the key for another
        // recording: 409, naming their own call, and nothing is stored.
        let r = upload_call(&app, &a, wav(440.0), json!({}), Some("k-1")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["id"], a_call.as_str());
        let calls_before = count(&t.db, "SELECT COUNT(*) FROM calls").await;
        let r = upload_call(&app, &a, wav(660.0), json!({}), Some("k-1")).await;
        assert_error(&r, 409, "idempotency_conflict");
        assert!(r.text.contains(&a_call), "{}", r.text);
        assert!(!r.text.contains(&b_call), "{}", r.text);
        assert_eq!(
            count(&t.db, "SELECT COUNT(*) FROM calls").await,
            calls_before
        );

        // The team's manager uploading for rep A with A's key: the manager's
        // own key space, so a new call of rep A, not A's earlier one.
        let r = upload_call(
            &app,
            &app.tokens.manager,
            wav(770.0),
            json!({"rep": "rep"}),
            Some("k-1"),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.text);
        assert_ne!(r.json["id"], a_call.as_str());
        assert_ne!(r.json["id"], b_call.as_str());
    }
}

async fn put_all(app: &TestApp, token: &str, id: &str, file: &[u8]) -> Resp {
    let req = Request::put(format!("/v1/uploads/{id}"))
        .header("authorization", format!("Bearer {token}"))
        .header(
            "content-range",
            format!("bytes 0-{}/{}", file.len() - 1, file.len()),
        )
        .header("content-type", "application/octet-stream")
        .body(Body::from(file.to_vec()))
        .unwrap();
    app.request(req).await
}

fn create_upload(key: &str, file: &[u8]) -> Value {
    json!({
        "upload_key": key,
        "size": file.len(),
        "sha256": hex::encode(Sha256::digest(file)),
        "filename": "call.wav",
    })
}

#[tokio::test]
async fn upload_keys_belong_to_their_uploader() {
    for t in testing::all("upload_keys_belong_to_their_uploader").await {
        let data = tempfile::tempdir().unwrap();
        let app = app_with_speech(t.db.clone(), data.path()).await;
        let (b_id, b) = rep_b(&app).await;
        let a = app.tokens.rep.clone();
        let (fa, fb) = (wav(440.0), wav(550.0));

        let r = app
            .send_json(
                "POST",
                "/v1/uploads",
                Some(&a),
                &create_upload("rec-1", &fa),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let r = put_all(&app, &a, r.json["upload_id"].as_str().unwrap(), &fa).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let a_call = r.json["call_id"].as_str().unwrap().to_string();

        // Rep B's upload under the same key becomes rep B's own call (before
        // the fix it was marked complete with rep A's call id).
        let r = app
            .send_json(
                "POST",
                "/v1/uploads",
                Some(&b),
                &create_upload("rec-1", &fb),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let r = put_all(&app, &b, r.json["upload_id"].as_str().unwrap(), &fb).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let b_call = r.json["call_id"].as_str().unwrap().to_string();
        assert_ne!(a_call, b_call);
        let r = app.get(&format!("/v1/calls/{b_call}"), Some(&b)).await;
        assert_eq!(r.json["rep_user_id"], b_id.as_str(), "{}", r.text);
        assert_eq!(
            r.json["audio_sha256"].as_str(),
            Some(hex::encode(Sha256::digest(&fb)).as_str()),
            "{}",
            r.text
        );

        // Rep A reuses the key for another file: 409 at the first request.
        let r = app
            .send_json(
                "POST",
                "/v1/uploads",
                Some(&a),
                &create_upload("rec-1", &fb),
            )
            .await;
        assert_error(&r, 409, "idempotency_conflict");
        // A multipart upload with the key of A's earlier upload but another
        // recording: 409, not A's call.
        let r = upload_call(&app, &a, fb.clone(), json!({}), Some("rec-1")).await;
        assert_error(&r, 409, "idempotency_conflict");
        // An upload whose key an earlier multipart upload used for another
        // recording fails visibly when its last byte lands, with the reason
        // on the upload (the phone's outbox shows it), never a silent success.
        let r = upload_call(&app, &a, wav(880.0), json!({}), Some("rec-2")).await;
        assert_eq!(r.status, 202, "{}", r.text);
        let r = app
            .send_json(
                "POST",
                "/v1/uploads",
                Some(&a),
                &create_upload("rec-2", &fa),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let upload = r.json["upload_id"].as_str().unwrap().to_string();
        let r = put_all(&app, &a, &upload, &fa).await;
        assert_error(&r, 409, "idempotency_conflict");
        let r = app.get(&format!("/v1/uploads/{upload}"), Some(&a)).await;
        assert_eq!(r.json["state"], "failed", "{}", r.text);
        assert!(
            r.json["error"].as_str().unwrap_or("").contains("rec-2"),
            "{}",
            r.text
        );
    }
}

fn batch(messages: Value) -> Value {
    json!({"channel": "wechat", "messages": messages})
}

fn msg(id: &str, text: &str) -> Value {
    json!({"client_message_id": id, "sender": "customer", "text": text,
           "sent_at": "2026-11-24T09:30:00+08:00"})
}

#[tokio::test]
async fn chat_ids_are_never_someone_elses_conversation() {
    for t in testing::all("chat_ids_are_never_someone_elses_conversation").await {
        let app = setup_with(t.db.clone(), |_| {}).await;
        let (_, b) = rep_b(&app).await;
        let a = app.tokens.rep.clone();
        let path = "/v1/conversations/wx-123/messages";

        let r = app
            .send_json(
                "POST",
                path,
                Some(&a),
                &batch(json!([msg("m1", "你好，价格多少？")])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["accepted"], 1);

        // Rep B's phone used the same conversation id: a 409 that says what
        // to do, and nothing of rep A's conversation in the answer.
        let r = app
            .send_json("POST", path, Some(&b), &batch(json!([msg("m1", "在吗")])))
            .await;
        assert_error(&r, 409, "idempotency_conflict");
        assert!(!r.text.contains("价格"), "{}", r.text);

        // A resend is a duplicate; the same id with other text is refused,
        // and the whole batch with it (nothing stored, so nothing is lost
        // when the phone fixes the id and sends again).
        let r = app
            .send_json(
                "POST",
                path,
                Some(&a),
                &batch(json!([msg("m1", "你好，价格多少？")])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["duplicates"], 1, "{}", r.text);
        let r = app
            .send_json(
                "POST",
                path,
                Some(&a),
                &batch(json!([msg("m2", "好的"), msg("m1", "我改主意了")])),
            )
            .await;
        assert_error(&r, 409, "idempotency_conflict");
        assert!(r.text.contains("messages[1]"), "{}", r.text);
        // Within one batch too.
        let r = app
            .send_json(
                "POST",
                path,
                Some(&a),
                &batch(json!([msg("m3", "一"), msg("m3", "二")])),
            )
            .await;
        assert_error(&r, 409, "idempotency_conflict");
        assert_eq!(
            count(&t.db, "SELECT COUNT(*) FROM chat_messages").await,
            1,
            "a refused batch stored nothing"
        );
    }
}

async fn device_token(app: &TestApp, user_id: &str, name: &str) -> String {
    let db = &app.state.db;
    let device = db.create_device(&app.org_id, user_id, name).await.unwrap();
    db.create_token(&app.org_id, user_id, Some(&device.id), None, None)
        .await
        .unwrap()
        .1
}

fn dropped(id: &str, count: u64) -> Value {
    json!({"event_id": id, "occurred_at": "2026-11-24T09:30:00+08:00",
           "type": "outbox_dropped", "item": "event", "count": count,
           "policy": "drop_oldest_events"})
}

#[tokio::test]
async fn device_event_ids_are_per_phone_and_never_reused_silently() {
    for t in testing::all("device_event_ids_are_per_phone_and_never_reused_silently").await {
        let app = setup_with(t.db.clone(), |_| {}).await;
        let (b_id, _) = rep_b(&app).await;
        let phone_a = device_token(&app, &app.rep_id.clone(), "phone a").await;
        let phone_b = device_token(&app, &b_id, "phone b").await;
        let send = |token: String, events: Value| {
            let app = &app;
            async move {
                app.send_json(
                    "POST",
                    "/v1/device/events",
                    Some(&token),
                    &json!({ "events": events }),
                )
                .await
            }
        };

        let r = send(phone_a.clone(), json!([dropped("e1", 3)])).await;
        assert_eq!(r.json["accepted"], 1, "{}", r.text);
        let r = send(phone_a.clone(), json!([dropped("e1", 3)])).await;
        assert_eq!(r.json["duplicates"], 1, "{}", r.text);
        // Another phone's e1 is its own event.
        let r = send(phone_b.clone(), json!([dropped("e1", 9)])).await;
        assert_eq!(r.json["accepted"], 1, "{}", r.text);
        // Phone A reusing e1 for a different event: 409, not a "duplicate".
        let r = send(phone_a.clone(), json!([dropped("e2", 1), dropped("e1", 4)])).await;
        assert_error(&r, 409, "idempotency_conflict");
        assert!(r.text.contains("e1"), "{}", r.text);
        let r = send(phone_a.clone(), json!([dropped("e5", 1), dropped("e5", 2)])).await;
        assert_error(&r, 409, "idempotency_conflict");
        assert_eq!(
            count(&t.db, "SELECT COUNT(*) FROM device_events").await,
            2,
            "refused batches stored nothing"
        );
    }
}
