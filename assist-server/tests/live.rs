//! Live call assist over a real WebSocket (`/v1/live`), device events and
//! resumable uploads, on a real listener: a customer's utterance gets
//! approved scripts, a rep's risky words reach the manager's alerts with the
//! call's reserved id, feedback is stored once, a cut connection resumes
//! without losing finals, live audio is transcribed, and bad input closes
//! with the protocol's codes while other sessions go on.

mod common;

use std::time::Duration;

use assist_models::embed::EmbedHandle;
use assist_models::speech::FakeTranscriber;
use assist_models::worker::WorkerConfig;
use assist_protocol::live::{
    AudioFormat, AudioLayout, ClientMessage, Feedback, FeedbackAction, Resume, ServerMessage,
    Speaker, Start, close,
};
use assist_server::db::testing;
use assist_server::speech::SpeechService;
use assist_server::suggest::SearchService;
use common::{TestApp, assert_error, setup_with};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Live {
    app: TestApp,
    addr: std::net::SocketAddr,
    device_token: String,
    _data: tempfile::TempDir,
}

/// A served app with the fake embedder, fake Whisper, an approved price
/// script and the sample lexicon; a rep with a bound phone.
async fn live_app(db: assist_server::db::Db) -> Live {
    live_app_with(db, |_| {}).await
}

async fn live_app_with(
    db: assist_server::db::Db,
    tweak: impl FnOnce(&mut assist_server::config::Config) + Send + 'static,
) -> Live {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_path_buf();
    let mut app = setup_with(db, move |c| {
        c.storage.data_dir = dir;
        c.kb.kb_allow_self_approval = true;
        c.live.live_resume_window_secs = 30;
        c.live.live_stall_timeout_secs = 2;
        tweak(c);
    })
    .await;
    let embedder = EmbedHandle::fake(WorkerConfig::new("embedder", 8)).unwrap();
    app.state.search =
        Some(SearchService::with_embedder(&app.state.config, embedder.clone()).unwrap());
    app.state.screening.set_embedder(embedder);
    let speech = SpeechService::spawn(&app.state.config, "fake-asr", || {
        Ok(Box::new(FakeTranscriber {
            prefix: "价格太贵了".into(),
            segment_s: 1.0,
        }) as Box<dyn assist_models::speech::Transcribe>)
    })
    .unwrap();
    app.state.speech = Some(speech);
    app.router = assist_server::http::app::app(app.state.clone());

    // One approved script, one approved lexicon entry.
    for (kind, body) in [
        (
            "scripts",
            json!({"title": "价格异议：按年付更划算", "body": "按年付费每席位每年1980元，比按月付便宜两成。",
                   "scenario": "price_objection", "products": ["云客CRM"], "language": "zh"}),
        ),
        (
            "lexicon",
            json!({"category": "private_contact", "severity": "high", "match_mode": "phrase",
                   "pattern": "加我私人微信", "action": "alert", "language": "zh"}),
        ),
    ] {
        let r = app
            .send_json(
                "POST",
                &format!("/v1/kb/{kind}"),
                Some(&app.tokens.trainer),
                &body,
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.json["id"].as_str().unwrap().to_string();
        for step in ["submit", "approve"] {
            let r = app
                .send_json(
                    "POST",
                    &format!("/v1/kb/{kind}/{id}/{step}"),
                    Some(&app.tokens.trainer),
                    &json!({"expected_version": 1}),
                )
                .await;
            assert_eq!(r.status, 200, "{step}: {}", r.text);
        }
    }
    let db = &app.state.db;
    let device = db
        .create_device(&app.org_id, &app.rep_id, "work phone")
        .await
        .unwrap();
    let (_, device_token) = db
        .create_token(&app.org_id, &app.rep_id, Some(&device.id), None, None)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Live {
        app,
        addr,
        device_token,
        _data: data,
    }
}

async fn connect(live: &Live, token: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{}/v1/live", live.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

fn start(call: &str, layout: AudioLayout) -> Start {
    Start {
        client_call_id: call.into(),
        language: Some("zh".into()),
        audio: AudioFormat::pcm16(layout),
        product: None,
        top_k: Some(2),
        resume: None,
    }
}

async fn send(ws: &mut Ws, m: &ClientMessage) {
    ws.send(Message::Text(serde_json::to_string(m).unwrap().into()))
        .await
        .unwrap();
}

/// The next server message, or the close code.
async fn next(ws: &mut Ws) -> Result<ServerMessage, Option<u16>> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("no message from the server within 20 s");
        match m {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

/// Read until `pick` matches, returning what it picked.
async fn until<T>(ws: &mut Ws, mut pick: impl FnMut(&ServerMessage) -> Option<T>) -> T {
    loop {
        let m = next(ws)
            .await
            .unwrap_or_else(|c| panic!("closed with {c:?}"));
        if let Some(v) = pick(&m) {
            return v;
        }
    }
}

fn text(speaker: Speaker, text: &str, id: &str) -> ClientMessage {
    ClientMessage::Text {
        speaker,
        text: text.into(),
        utterance_id: id.into(),
    }
}

#[tokio::test]
async fn a_live_call_gets_suggestions_alerts_and_feedback() {
    let t = testing::sqlite().await;
    let live = live_app(t.db.clone()).await;
    let mut ws = connect(&live, &live.device_token).await.unwrap();
    send(
        &mut ws,
        &ClientMessage::Start(start("call-1", AudioLayout::None)),
    )
    .await;
    let ready = until(&mut ws, |m| match m {
        ServerMessage::Ready(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert!(!ready.resumed);

    send(
        &mut ws,
        &text(Speaker::Customer, "你们这个价格太贵了", "u1"),
    )
    .await;
    let fin = until(&mut ws, |m| match m {
        ServerMessage::Final(p) => Some(p.clone()),
        _ => None,
    })
    .await;
    assert_eq!(fin.text, "你们这个价格太贵了");
    assert_eq!(fin.speaker, Speaker::Customer);
    let (final_seq, suggestions) = until(&mut ws, |m| match m {
        ServerMessage::Suggestions {
            final_seq,
            suggestions,
            ..
        } => Some((*final_seq, suggestions.clone())),
        _ => None,
    })
    .await;
    assert_eq!(final_seq, fin.seq);
    assert_eq!(suggestions[0].title, "价格异议：按年付更划算");
    let sid = suggestions[0].suggestion_id.clone();

    // A resent utterance is ignored; feedback is stored once.
    send(
        &mut ws,
        &text(Speaker::Customer, "你们这个价格太贵了", "u1"),
    )
    .await;
    for (fid, dup) in [("f1", false), ("f1", true)] {
        send(
            &mut ws,
            &ClientMessage::Feedback(Feedback {
                feedback_id: fid.into(),
                suggestion_id: sid.clone(),
                action: FeedbackAction::Used,
            }),
        )
        .await;
        let ack = until(&mut ws, |m| match m {
            ServerMessage::FeedbackAck { duplicate, .. } => Some(*duplicate),
            ServerMessage::Final(p) => panic!("a resent utterance came back: {p:?}"),
            _ => None,
        })
        .await;
        assert_eq!(ack, dup);
    }
    send(
        &mut ws,
        &ClientMessage::Feedback(Feedback {
            feedback_id: "f2".into(),
            suggestion_id: "sug_nope".into(),
            action: FeedbackAction::Dismissed,
        }),
    )
    .await;
    let err = until(&mut ws, |m| match m {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    })
    .await;
    assert_eq!(err, assist_protocol::ErrorCode::NotFound);

    // The rep's risky words: a risk for the phone, an alert for the manager.
    send(
        &mut ws,
        &text(Speaker::Rep, "你加我私人微信，我们私下聊", "u2"),
    )
    .await;
    let risk = until(&mut ws, |m| match m {
        ServerMessage::Risk(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(risk.category, "private_contact");
    assert_eq!(risk.evidence, "加我私人微信");
    assert_eq!(risk.suppressed, None);
    let alerts = live
        .app
        .get("/v1/alerts", Some(&live.app.tokens.manager))
        .await;
    assert_eq!(alerts.status, 200, "{}", alerts.text);
    let list = alerts.json.as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{}", alerts.text);
    assert_eq!(list[0]["category"], "private_contact");

    send(&mut ws, &ClientMessage::End).await;
    let ended = until(&mut ws, |m| match m {
        ServerMessage::Ended {
            finals,
            suggestions,
            risks,
            ..
        } => Some((*finals, *suggestions, *risks)),
        _ => None,
    })
    .await;
    assert_eq!(ended, (2, 1, 1));
    assert_eq!(next(&mut ws).await.unwrap_err(), Some(close::NORMAL));

    // Stored: the transcript, the suggestion with its feedback, the session's end.
    let session =
        t.db.find_live_session(
            &live
                .app
                .state
                .db
                .find_user(&live.app.org_id, "rep")
                .await
                .unwrap()
                .id,
            "call-1",
        )
        .await
        .unwrap();
    assert!(session.is_none(), "sessions are keyed by device, not user");
    let row = sqlx_live_session(&live).await;
    assert!(row.ended_at.is_some());
    assert_eq!(row.end_reason.as_deref(), Some("ended"));
    assert_eq!(list[0]["call_id"], row.call_id);
    let segs = t.db.live_segments(&row.id).await.unwrap();
    assert_eq!(segs.len(), 2);
    assert_eq!(
        t.db.live_suggestion_counts(&row.id).await.unwrap(),
        (1, 1, 0)
    );
}

async fn sqlx_live_session(live: &Live) -> assist_server::db::device::LiveSessionRow {
    let device = live
        .app
        .state
        .db
        .list_devices(&live.app.org_id)
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    live.app
        .state
        .db
        .find_live_session(&device.id, "call-1")
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_cut_connection_resumes_without_losing_finals() {
    let t = testing::sqlite().await;
    let live = live_app(t.db.clone()).await;
    let mut ws = connect(&live, &live.device_token).await.unwrap();
    send(
        &mut ws,
        &ClientMessage::Start(start("call-2", AudioLayout::None)),
    )
    .await;
    let ready = until(&mut ws, |m| match m {
        ServerMessage::Ready(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    send(&mut ws, &text(Speaker::Customer, "价格太贵了", "a1")).await;
    send(&mut ws, &text(Speaker::Customer, "能不能便宜点", "a2")).await;
    // Cut without reading anything more.
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut ws = connect(&live, &live.device_token).await.unwrap();
    let mut s = start("call-2", AudioLayout::None);
    s.resume = Some(Resume {
        session_id: ready.session_id.clone(),
        last_seq: 0,
    });
    send(&mut ws, &ClientMessage::Start(s)).await;
    let again = until(&mut ws, |m| match m {
        ServerMessage::Ready(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert!(again.resumed);
    assert_eq!(again.session_id, ready.session_id);
    // A cut can lose frames in flight (a reset discards what the server had
    // not read yet), so the phone sends its turns again; the server keeps
    // each utterance id once and replays what it had already handled.
    send(&mut ws, &text(Speaker::Customer, "价格太贵了", "a1")).await;
    send(&mut ws, &text(Speaker::Customer, "能不能便宜点", "a2")).await;
    send(&mut ws, &ClientMessage::End).await;
    let mut finals = Vec::new();
    loop {
        match next(&mut ws).await {
            Ok(ServerMessage::Final(p)) => finals.push(p.text),
            Ok(ServerMessage::Ended { finals: n, .. }) => assert_eq!(n, 2),
            Ok(_) => {}
            Err(code) => {
                assert_eq!(code, Some(close::NORMAL));
                break;
            }
        }
    }
    assert_eq!(finals, ["价格太贵了", "能不能便宜点"]);

    // An unknown session cannot be resumed.
    let mut ws2 = connect(&live, &live.device_token).await.unwrap();
    let mut s = start("call-3", AudioLayout::None);
    s.resume = Some(Resume {
        session_id: "live_nope".into(),
        last_seq: 0,
    });
    send(&mut ws2, &ClientMessage::Start(s)).await;
    assert_eq!(
        next(&mut ws2).await.unwrap_err(),
        Some(close::UNKNOWN_SESSION)
    );
}

#[tokio::test]
async fn live_audio_is_transcribed_per_speaker() {
    let t = testing::sqlite().await;
    let live = live_app(t.db.clone()).await;
    let mut ws = connect(&live, &live.device_token).await.unwrap();
    send(
        &mut ws,
        &ClientMessage::Start(start("call-4", AudioLayout::PerSpeaker)),
    )
    .await;
    until(&mut ws, |m| {
        matches!(m, ServerMessage::Ready(_)).then_some(())
    })
    .await;
    // 3 s of tone on the customer channel, in 200 ms frames.
    let samples: Vec<i16> = (0..48_000)
        .map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16)
        .collect();
    for chunk in samples.chunks(3_200) {
        let mut frame = vec![assist_protocol::live::AUDIO_CHANNEL_CUSTOMER];
        for s in chunk {
            frame.extend_from_slice(&s.to_le_bytes());
        }
        ws.send(Message::Binary(frame.into())).await.unwrap();
    }
    // A malformed frame is refused and the call goes on.
    ws.send(Message::Binary(vec![2u8, 1, 2, 3].into()))
        .await
        .unwrap();
    let err = until(&mut ws, |m| match m {
        ServerMessage::Error { code, message } => Some((*code, message.clone())),
        _ => None,
    })
    .await;
    assert_eq!(
        err.0,
        assist_protocol::ErrorCode::InvalidRequest,
        "{}",
        err.1
    );
    send(&mut ws, &ClientMessage::End).await;
    let mut finals = Vec::new();
    let mut suggested = 0;
    loop {
        match next(&mut ws).await {
            Ok(ServerMessage::Final(p)) => {
                assert_eq!(p.speaker, Speaker::Customer);
                finals.push(p.text)
            }
            Ok(ServerMessage::Suggestions { .. }) => suggested += 1,
            Ok(_) => {}
            Err(code) => {
                assert_eq!(code, Some(close::NORMAL));
                break;
            }
        }
    }
    assert!(!finals.is_empty(), "no finals from 3 s of audio");
    assert!(
        finals.iter().any(|f| f.contains("价格太贵了")),
        "{finals:?}"
    );
    assert!(suggested >= 1);
}

/// Send `samples` (at the session's rate) on `channel` in 200 ms frames.
async fn send_pcm(ws: &mut Ws, channel: u8, rate: usize, samples: &[f32]) {
    for chunk in samples.chunks(rate / 5) {
        let mut frame = vec![channel];
        for s in chunk {
            frame.extend_from_slice(&((s * 32767.0) as i16).to_le_bytes());
        }
        ws.send(Message::Binary(frame.into())).await.unwrap();
    }
}

fn tone(seconds: f64, rate: usize) -> Vec<f32> {
    (0..(seconds * rate as f64) as usize)
        .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.25)
        .collect()
}

/// Finals of the session until it ends: (text, start_s, end_s).
async fn finals_until_end(ws: &mut Ws) -> Vec<(String, f64, f64)> {
    send(ws, &ClientMessage::End).await;
    let mut finals = Vec::new();
    loop {
        match next(ws).await {
            Ok(ServerMessage::Final(p)) => finals.push((p.text, p.start_s, p.end_s)),
            Ok(_) => {}
            Err(code) => {
                assert_eq!(code, Some(close::NORMAL));
                return finals;
            }
        }
    }
}

/// Live audio that is not a tidy conversation: minutes of silence, noise
/// that never stops, 8 kHz telephone audio, a call that ends mid-sentence.
/// Each gives whole finals (or none), and a text call on the same node is
/// served all along.
#[tokio::test]
async fn difficult_live_audio_gives_whole_finals_and_the_node_stays_healthy() {
    let t = testing::sqlite().await;
    let live = live_app_with(t.db.clone(), |c| {
        // Audio much faster than real time, so minutes take seconds.
        c.live.live_max_speed = 1_000.0;
        c.live.live_max_utterance_secs = 5.0;
    })
    .await;
    let open = |call: &'static str, layout: AudioLayout, rate: u32| {
        let live = &live;
        async move {
            let mut ws = connect(live, &live.device_token).await.unwrap();
            let mut s = start(call, layout);
            s.audio.sample_rate = rate;
            send(&mut ws, &ClientMessage::Start(s)).await;
            until(&mut ws, |m| {
                matches!(m, ServerMessage::Ready(_)).then_some(())
            })
            .await;
            ws
        }
    };
    let mixed = assist_protocol::live::AUDIO_CHANNEL_MIXED;

    // Two minutes of near silence (a hiss at −60 dBFS), then one sentence.
    let mut ws = open("quiet", AudioLayout::Mixed, 16_000).await;
    let hiss: Vec<f32> = (0..16_000 * 120)
        .map(|i| if i % 2 == 0 { 0.001 } else { -0.001 })
        .collect();
    send_pcm(&mut ws, mixed, 16_000, &hiss).await;
    let mut sentence = tone(1.5, 16_000);
    sentence.extend(vec![0.0; 16_000]);
    send_pcm(&mut ws, mixed, 16_000, &sentence).await;
    let finals = finals_until_end(&mut ws).await;
    assert_eq!(finals.len(), 1, "{finals:?}");
    let (_, start_s, end_s) = finals[0];
    assert!((119.7..=120.0).contains(&start_s), "{finals:?}");
    assert!((121.4..=121.8).contains(&end_s), "{finals:?}");

    // Noise that never stops: cut at the 5 s maximum into whole pieces.
    let mut ws = open("noise", AudioLayout::Mixed, 16_000).await;
    send_pcm(&mut ws, mixed, 16_000, &tone(22.0, 16_000)).await;
    let finals = finals_until_end(&mut ws).await;
    assert!(finals.len() >= 4, "{finals:?}");
    for (_, a, b) in &finals {
        assert!(b - a <= 5.1, "{finals:?}");
    }

    // 8 kHz telephone audio: its times are right, and a text call meanwhile
    // gets its suggestions.
    let mut phone = open("phone-8k", AudioLayout::Mixed, 8_000).await;
    let mut text_call = open("text-call", AudioLayout::None, 16_000).await;
    let mut audio = vec![0.0; 8_000];
    audio.extend(tone(2.0, 8_000));
    audio.extend(vec![0.0; 8_000]);
    // The call ends mid-sentence: its last sentence still arrives.
    audio.extend(tone(1.0, 8_000));
    send_pcm(&mut phone, mixed, 8_000, &audio).await;
    send(
        &mut text_call,
        &text(Speaker::Customer, "你们的价格太贵了", "u-8k"),
    )
    .await;
    until(&mut text_call, |m| {
        matches!(m, ServerMessage::Suggestions { .. }).then_some(())
    })
    .await;
    let finals = finals_until_end(&mut phone).await;
    assert_eq!(finals.len(), 2, "{finals:?}");
    assert!((0.7..=1.0).contains(&finals[0].1), "{finals:?}");
    assert!((2.9..=3.3).contains(&finals[0].2), "{finals:?}");
    assert!((3.7..=4.0).contains(&finals[1].1), "{finals:?}");
    assert!(finals.iter().all(|f| f.0.contains("价格太贵了")));
}

#[tokio::test]
async fn bad_live_input_closes_with_clear_codes() {
    let t = testing::sqlite().await;
    let live = live_app(t.db.clone()).await;
    // A user token is not a phone: refused before the upgrade.
    let err = connect(&live, &live.app.tokens.rep).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert!(
        connect(&live, "nope")
            .await
            .unwrap_err()
            .to_string()
            .contains("401")
    );

    // 44.1 kHz audio (16 and 8 kHz are taken).
    let mut ws = connect(&live, &live.device_token).await.unwrap();
    let mut s = start("call-5", AudioLayout::Mixed);
    s.audio.sample_rate = 44_100;
    send(&mut ws, &ClientMessage::Start(s)).await;
    assert_eq!(
        next(&mut ws).await.unwrap_err(),
        Some(close::UNSUPPORTED_AUDIO)
    );

    // Something other than start first.
    let mut ws = connect(&live, &live.device_token).await.unwrap();
    send(&mut ws, &ClientMessage::End).await;
    assert_eq!(next(&mut ws).await.unwrap_err(), Some(close::BAD_START));

    // Not JSON: an error, the session goes on; start twice: closed.
    let mut ws = connect(&live, &live.device_token).await.unwrap();
    send(
        &mut ws,
        &ClientMessage::Start(start("call-6", AudioLayout::None)),
    )
    .await;
    ws.send(Message::Text("{oops".into())).await.unwrap();
    let code = until(&mut ws, |m| match m {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    })
    .await;
    assert_eq!(code, assist_protocol::ErrorCode::InvalidJson);
    send(
        &mut ws,
        &ClientMessage::Start(start("call-6", AudioLayout::None)),
    )
    .await;
    assert_eq!(next(&mut ws).await.unwrap_err(), Some(close::BAD_START));

    // A 16 MB frame (over the message limit): closed with 4413, not reset.
    let mut ws = connect(&live, &live.device_token).await.unwrap();
    send(
        &mut ws,
        &ClientMessage::Start(start("call-8", AudioLayout::Mixed)),
    )
    .await;
    until(&mut ws, |m| {
        matches!(m, ServerMessage::Ready(_)).then_some(())
    })
    .await;
    ws.send(Message::Binary(vec![0u8; 16_000_000].into()))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await.unwrap_err(),
        Some(close::FRAME_TOO_LARGE)
    );

    // The token is revoked mid-call.
    let mut ws = connect(&live, &live.device_token).await.unwrap();
    send(
        &mut ws,
        &ClientMessage::Start(start("call-7", AudioLayout::None)),
    )
    .await;
    until(&mut ws, |m| {
        matches!(m, ServerMessage::Ready(_)).then_some(())
    })
    .await;
    let token = live
        .app
        .state
        .db
        .lookup_token(&live.device_token)
        .await
        .unwrap()
        .unwrap()
        .0;
    live.app
        .state
        .db
        .revoke_token(&live.app.org_id, &token.id)
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await.unwrap_err(), Some(close::UNAUTHORIZED));
}

#[tokio::test]
async fn device_events_are_stored_once() {
    let t = testing::sqlite().await;
    let live = live_app(t.db.clone()).await;
    let ev = |id: &str| {
        json!({"event_id": id, "occurred_at": "2026-11-24T10:00:00+08:00", "type": "guard_blocked",
               "rule_id": "lex_1", "category": "private_contact", "decision": "block", "rules_version": 3})
    };
    let body = json!({"events": [ev("e1"), ev("e2"), ev("e1")]});
    let r = live
        .app
        .send_json("POST", "/v1/device/events", Some(&live.device_token), &body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["accepted"], 2);
    assert_eq!(r.json["duplicates"], 1);
    let r = live
        .app
        .send_json("POST", "/v1/device/events", Some(&live.device_token), &body)
        .await;
    assert_eq!(r.json["accepted"], 0);
    assert_eq!(r.json["duplicates"], 3);
    // Users are not phones; bad values name the event.
    let r = live
        .app
        .send_json(
            "POST",
            "/v1/device/events",
            Some(&live.app.tokens.rep),
            &body,
        )
        .await;
    assert_error(&r, 403, "forbidden");
    let mut bad = ev("e9");
    bad["decision"] = json!("maybe");
    let r = live
        .app
        .send_json(
            "POST",
            "/v1/device/events",
            Some(&live.device_token),
            &json!({"events": [bad]}),
        )
        .await;
    assert_error(&r, 422, "invalid_request");
    assert!(r.text.contains("events[0].decision"), "{}", r.text);
    let counts = t.db.device_event_counts(&live.app.org_id).await.unwrap();
    assert_eq!(counts, vec![("guard_blocked".to_string(), 2)]);
}

fn wav_tone(seconds: f64) -> Vec<u8> {
    let n = (16_000.0 * seconds) as usize;
    let mut out = Vec::new();
    let data_len = (n * 2) as u32;
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
        let v = ((i as f32 * 0.07).sin() * 6000.0) as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

async fn put(live: &Live, id: &str, range: &str, body: Vec<u8>) -> common::Resp {
    let req = axum::http::Request::put(format!("/v1/uploads/{id}"))
        .header("authorization", format!("Bearer {}", live.device_token))
        .header("content-range", range)
        .header("content-type", "application/octet-stream")
        .body(axum::body::Body::from(body))
        .unwrap();
    live.app.request(req).await
}

#[tokio::test]
async fn a_recording_uploads_in_resumable_chunks() {
    let t = testing::sqlite().await;
    let live = live_app(t.db.clone()).await;
    let file = wav_tone(2.0);
    let size = file.len();
    let sha = hex::encode(Sha256::digest(&file));
    let create = json!({"upload_key": "rec-1", "size": size, "sha256": sha, "filename": "call.wav",
                        "metadata": {"direction": "outbound", "customer_ref": "crm-9"}});
    let r = live
        .app
        .send_json("POST", "/v1/uploads", Some(&live.device_token), &create)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["upload_id"].as_str().unwrap().to_string();
    // Creating again finds the same upload.
    let r = live
        .app
        .send_json("POST", "/v1/uploads", Some(&live.device_token), &create)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["upload_id"], id);

    let r = put(
        &live,
        &id,
        &format!("bytes 0-9999/{size}"),
        file[..10_000].to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["offset"], 10_000);
    // A gap is refused with the way out; an overlapping resend is fine.
    let r = put(
        &live,
        &id,
        &format!("bytes 20000-29999/{size}"),
        file[20_000..30_000].to_vec(),
    )
    .await;
    assert_error(&r, 409, "conflict");
    assert!(r.text.contains("10000"), "{}", r.text);
    let r = put(
        &live,
        &id,
        &format!("bytes 5000-39999/{size}"),
        file[5_000..40_000].to_vec(),
    )
    .await;
    assert_eq!(r.json["offset"], 40_000, "{}", r.text);
    let r = live
        .app
        .get(&format!("/v1/uploads/{id}"), Some(&live.device_token))
        .await;
    assert_eq!(r.json["offset"], 40_000);
    assert_eq!(r.json["state"], "receiving");
    let last = size - 1;
    let r = put(
        &live,
        &id,
        &format!("bytes 40000-{last}/{size}"),
        file[40_000..].to_vec(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["state"], "complete");
    let call_id = r.json["call_id"].as_str().unwrap().to_string();
    // The last chunk again (its answer was lost): the same call.
    let r = put(
        &live,
        &id,
        &format!("bytes 40000-{last}/{size}"),
        file[40_000..].to_vec(),
    )
    .await;
    assert_eq!(r.json["call_id"], call_id.as_str());
    let r = live
        .app
        .get(&format!("/v1/calls/{call_id}"), Some(&live.app.tokens.rep))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["customer_ref"], "crm-9");

    // A file that does not match its checksum is refused, nothing is kept.
    let create = json!({"upload_key": "rec-2", "size": 4, "sha256": "0".repeat(64)});
    let r = live
        .app
        .send_json("POST", "/v1/uploads", Some(&live.device_token), &create)
        .await;
    let id = r.json["upload_id"].as_str().unwrap().to_string();
    let r = put(&live, &id, "bytes 0-3/4", b"abcd".to_vec()).await;
    assert_error(&r, 422, "invalid_request");
    assert!(r.text.contains("SHA-256"), "{}", r.text);
    // Bad requests.
    let r = put(&live, &id, "bytes 0-3", b"abcd".to_vec()).await;
    assert_error(&r, 422, "invalid_request");
    let r = live
        .app
        .send_json(
            "POST",
            "/v1/uploads",
            Some(&live.device_token),
            &json!({"upload_key": "rec-3", "size": 10, "sha256": "xyz"}),
        )
        .await;
    assert_error(&r, 422, "invalid_request");
    let r = live
        .app
        .send_json(
            "POST",
            "/v1/uploads",
            Some(&live.device_token),
            &json!({"upload_key": "rec-1", "size": 10, "sha256": "a".repeat(64)}),
        )
        .await;
    assert_error(&r, 409, "idempotency_conflict");
}
