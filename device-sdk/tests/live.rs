//! The live session client against the fake `/v1/live`.

mod common;

use std::time::Duration;

use assist_device_sdk::protocol::live::{
    AUDIO_CHANNEL_CUSTOMER, AUDIO_CHANNEL_MIXED, AUDIO_CHANNEL_REP, AudioFormat, AudioLayout,
    FeedbackAction, ServerMessage, Speaker, Start, close,
};
use assist_device_sdk::{Error, ItemKind, LiveEvent, LiveEvents, LiveOptions, LiveSession};
use common::{FakeServer, client_for};

fn start(layout: AudioLayout) -> Start {
    Start {
        client_call_id: "call-7".into(),
        language: Some("zh".into()),
        audio: AudioFormat::pcm16(layout),
        product: None,
        top_k: None,
        resume: None,
    }
}

fn pcm(seconds: usize, seed: i16) -> Vec<i16> {
    (0..seconds * 16_000)
        .map(|i| (i as i16).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn bytes(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

async fn drain(mut events: LiveEvents) -> Vec<LiveEvent> {
    let mut all = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(20), events.next()).await {
        all.push(e);
    }
    all
}

fn finals(events: &[LiveEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            LiveEvent::Message(ServerMessage::Final(p)) => Some(p.text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_session_streams_audio_text_and_feedback_then_ends() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_outbox, client) = client_for(&server, dir.path());
    let (session, events) = LiveSession::connect(
        &client,
        start(AudioLayout::PerSpeaker),
        LiveOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(session.ready().session_id, "live_1");
    let collector = tokio::spawn(drain(events));
    let (rep, customer) = (pcm(3, 1), pcm(3, 2));
    for (r, c) in rep.chunks(3200).zip(customer.chunks(3200)) {
        session.send_audio(AUDIO_CHANNEL_REP, r).await.unwrap();
        session.send_audio(AUDIO_CHANNEL_CUSTOMER, c).await.unwrap();
    }
    assert!(matches!(
        session.send_audio(AUDIO_CHANNEL_MIXED, &[0; 10]).await,
        Err(Error::Invalid(_))
    ));
    session.send_text(Speaker::Customer, "太贵了").unwrap();
    let fb = session.feedback("sug_1", FeedbackAction::Used).unwrap();
    session.end().unwrap();
    let summary = session.finish().await.unwrap();
    assert_eq!(summary.session_id, "live_1");
    assert_eq!(summary.finals, 6);
    assert_eq!(summary.reconnects, 0);
    let events = collector.await.unwrap();
    let mut f = finals(&events);
    f.sort();
    assert_eq!(f, ["ch1:0", "ch1:1", "ch1:2", "ch2:0", "ch2:1", "ch2:2"]);
    assert!(events.iter().any(|e| matches!(e,
        LiveEvent::Message(ServerMessage::FeedbackAck { feedback_id, .. }) if *feedback_id == fb)));
    assert!(matches!(
        events.last(),
        Some(LiveEvent::Message(ServerMessage::Ended { .. }))
    ));
    server.with(|f| {
        let s = &f.live.sessions["live_1"];
        assert_eq!(s.audio[&AUDIO_CHANNEL_REP], bytes(&rep));
        assert_eq!(s.audio[&AUDIO_CHANNEL_CUSTOMER], bytes(&customer));
        assert_eq!(s.texts, ["太贵了"]);
        assert!(s.ended);
    });
    assert!(matches!(session.end(), Err(Error::LiveEnded)));
}

#[tokio::test]
async fn a_cut_connection_resumes_and_resends_exactly_the_missing_audio() {
    let server = FakeServer::start().await;
    server.with(|f| {
        f.live.cut_after_frames.push_back(12);
        f.live.cut_after_frames.push_back(9);
        f.live.lose_ms_on_cut = 300;
    });
    let dir = tempfile::tempdir().unwrap();
    let (_outbox, client) = client_for(&server, dir.path());
    let (session, events) =
        LiveSession::connect(&client, start(AudioLayout::Mixed), LiveOptions::default())
            .await
            .unwrap();
    let collector = tokio::spawn(drain(events));
    let audio = pcm(6, 3);
    for chunk in audio.chunks(3200) {
        session
            .send_audio(AUDIO_CHANNEL_MIXED, chunk)
            .await
            .unwrap();
    }
    session.end().unwrap();
    let summary = session.finish().await.unwrap();
    assert_eq!(summary.reconnects, 2);
    let events = collector.await.unwrap();
    let resumed = events
        .iter()
        .filter(|e| matches!(e, LiveEvent::Resumed { .. }))
        .count();
    assert_eq!(resumed, 2);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, LiveEvent::Disconnected { .. }))
    );
    // Every second once, although the server replayed one old event per resume.
    assert_eq!(
        finals(&events),
        (0..6).map(|s| format!("ch0:{s}")).collect::<Vec<_>>()
    );
    server.with(|f| {
        assert_eq!(f.live.resumes, 2);
        let s = &f.live.sessions["live_1"];
        assert_eq!(
            s.audio[&AUDIO_CHANNEL_MIXED],
            bytes(&audio),
            "no audio lost or doubled"
        );
    });
}

#[tokio::test]
async fn a_refused_token_is_a_clear_error() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = assist_device_sdk::Outbox::open(dir.path(), Default::default()).unwrap();
    let client = assist_device_sdk::Client::new(
        assist_device_sdk::ClientConfig::new(server.url(), "wrong"),
        outbox,
    )
    .unwrap();
    let err = LiveSession::connect(&client, start(AudioLayout::Mixed), LiveOptions::default())
        .await
        .unwrap_err();
    match err {
        Error::LiveClosed { code, reason } => {
            assert_eq!(code, close::UNAUTHORIZED);
            assert!(reason.contains("token"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_non_retryable_close_ends_the_session_and_taps_go_to_the_outbox() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (outbox, client) = client_for(&server, dir.path());
    let (session, events) =
        LiveSession::connect(&client, start(AudioLayout::Mixed), LiveOptions::default())
            .await
            .unwrap();
    let collector = tokio::spawn(drain(events));
    server.with(|f| {
        f.live.cut_after_frames.push_back(2);
        f.live.close_start_with = Some(close::FORBIDDEN);
    });
    for chunk in pcm(2, 0).chunks(3200) {
        if session
            .send_audio(AUDIO_CHANNEL_MIXED, chunk)
            .await
            .is_err()
        {
            break;
        }
    }
    let err = session.finish().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::LiveClosed {
                code: close::FORBIDDEN,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("rep's device token"), "{err}");
    let _ = collector.await;
    // The connection is gone: a tap is kept in the outbox under its own id.
    let fb = session
        .feedback("sug_9", FeedbackAction::Dismissed)
        .unwrap();
    let st = outbox.status().unwrap();
    assert_eq!(st.per_kind[&ItemKind::Event].pending, 1);
    let report = client.flush().await.unwrap();
    assert_eq!(report.sent, 1);
    server.with(|f| {
        let e = &f.events[&fb];
        assert_eq!(e["type"], "suggestion_feedback");
        assert_eq!(e["suggestion_id"], "sug_9");
        assert_eq!(e["action"], "dismissed");
    });
}
