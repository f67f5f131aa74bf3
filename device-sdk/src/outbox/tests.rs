use super::*;
use assist_protocol::device::{ChatChannel, ChatSender, CreateUpload, DeviceEventKind};
use sha2::{Digest, Sha256};

fn open(dir: &Path, config: OutboxConfig) -> Outbox {
    Outbox::open(dir, config).unwrap()
}

fn chat(conv: &str, text: &str) -> NewChat {
    NewChat {
        conversation_id: conv.into(),
        channel: Some(ChatChannel::Wechat),
        customer_ref: None,
        sender: ChatSender::Rep,
        text: text.into(),
        sent_at: None,
        client_message_id: None,
    }
}

fn feedback() -> DeviceEventKind {
    DeviceEventKind::SuggestionFeedback {
        suggestion_id: "sug_1".into(),
        action: assist_protocol::live::FeedbackAction::Used,
    }
}

#[test]
fn items_survive_reopening_with_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let keys = {
        let o = open(dir.path(), OutboxConfig::default());
        let a = o.enqueue_chat(chat("conv-1", "您好")).unwrap();
        let b = o.enqueue_event(feedback()).unwrap();
        assert!(a.key.starts_with("msg-") && b.key.starts_with("evt-"));
        vec![a.key, b.key]
    };
    let o = open(dir.path(), OutboxConfig::default());
    let st = o.status().unwrap();
    assert_eq!(st.per_kind[&ItemKind::Chat].pending, 1);
    assert_eq!(st.per_kind[&ItemKind::Event].pending, 1);
    let rows = o.due(ItemKind::Chat, i64::MAX, 10).unwrap();
    assert_eq!(rows[0].key, keys[0]);
    assert_eq!(rows[0].conversation_id.as_deref(), Some("conv-1"));
}

#[test]
fn enqueue_is_idempotent_per_key_and_checks_input() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path(), OutboxConfig::default());
    let mut c = chat("conv-1", "hi");
    c.client_message_id = Some("m-1".into());
    assert!(!o.enqueue_chat(c.clone()).unwrap().already_queued);
    assert!(o.enqueue_chat(c).unwrap().already_queued);
    assert_eq!(o.status().unwrap().items, 1);
    assert!(matches!(
        o.enqueue_chat(chat("conv 1", "x")),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        o.enqueue_chat(chat("c", "  ")),
        Err(Error::Invalid(_))
    ));
    let mut bad_time = chat("c", "x");
    bad_time.sent_at = Some("yesterday".into());
    assert!(matches!(o.enqueue_chat(bad_time), Err(Error::Invalid(_))));
    assert!(matches!(
        o.enqueue_event_with_id("has space".into(), feedback()),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn recordings_are_copied_hashed_and_independent_of_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("call.wav");
    std::fs::write(&src, b"RIFF....WAVEdata").unwrap();
    let o = open(&dir.path().join("box"), OutboxConfig::default());
    let e = o
        .enqueue_recording(
            &src,
            NewRecording {
                upload_key: Some("call-42".into()),
                ..NewRecording::default()
            },
        )
        .unwrap();
    assert_eq!(e.key, "call-42");
    std::fs::remove_file(&src).unwrap();
    let rows = o.due(ItemKind::Recording, i64::MAX, 10).unwrap();
    let copy = o.file_path(&rows[0]).unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), b"RIFF....WAVEdata");
    let up: CreateUpload = serde_json::from_str(&rows[0].payload).unwrap();
    assert_eq!(up.size, 16);
    assert_eq!(up.sha256, hex::encode(Sha256::digest(b"RIFF....WAVEdata")));
    assert_eq!(up.filename.as_deref(), Some("call.wav"));
    // Same key again: nothing new.
    std::fs::write(&src, b"other").unwrap();
    let again = o
        .enqueue_recording(
            &src,
            NewRecording {
                upload_key: Some("call-42".into()),
                ..NewRecording::default()
            },
        )
        .unwrap();
    assert!(again.already_queued);
    // Empty files and missing files are refused with a clear error.
    std::fs::write(&src, b"").unwrap();
    assert!(matches!(
        o.enqueue_recording(&src, NewRecording::default()),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        o.enqueue_recording(&dir.path().join("nope.wav"), NewRecording::default()),
        Err(Error::Io { .. })
    ));
    // Delivered: the copy goes.
    o.confirm(&[&rows[0]]).unwrap();
    assert!(!copy.exists());
}

#[test]
fn orphan_copies_from_a_crash_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path(), OutboxConfig::default());
    let orphan = dir.path().join(RECORDINGS).join("rec-x.part");
    std::fs::write(&orphan, b"half").unwrap();
    drop(o);
    let _o = open(dir.path(), OutboxConfig::default());
    assert!(!orphan.exists());
}

#[test]
fn full_outbox_drops_oldest_events_and_refuses_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let config = OutboxConfig {
        max_items: 5,
        max_bytes: 10_000,
        policy: FullPolicy::default(),
    };
    let o = open(dir.path(), config);
    let first = o.enqueue_event(feedback()).unwrap().key;
    for _ in 0..3 {
        o.enqueue_event(feedback()).unwrap();
    }
    o.enqueue_chat(chat("c1", "hello")).unwrap();
    // Full by count: a new chat pushes out the oldest event.
    o.enqueue_chat(chat("c1", "world")).unwrap();
    let st = o.status().unwrap();
    assert_eq!(st.items, 5);
    assert_eq!(st.dropped.event, 1);
    let events = o.due(ItemKind::Event, i64::MAX, 10).unwrap();
    assert!(
        events.iter().all(|r| r.key != first),
        "the oldest went first"
    );
    // A recording that only fits if everything went: refused, nothing dropped.
    let src = dir.path().join("big.wav");
    std::fs::write(&src, vec![1u8; 9_000]).unwrap();
    let err = o
        .enqueue_recording(&src, NewRecording::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutboxFull {
                item: "recording",
                ..
            }
        ),
        "{err}"
    );
    let st = o.status().unwrap();
    assert_eq!(st.items, 5);
    assert_eq!(st.dropped.event, 1);
    assert_eq!(st.refused.recording, 1);
    // A recording larger than the whole outbox is refused too.
    std::fs::write(&src, vec![1u8; 20_000]).unwrap();
    assert!(o.enqueue_recording(&src, NewRecording::default()).is_err());
    assert_eq!(o.status().unwrap().refused.recording, 2);
    // No copy is left behind by a refusal.
    assert_eq!(
        std::fs::read_dir(dir.path().join(RECORDINGS))
            .unwrap()
            .count(),
        0
    );
    // Drops and refusals become reports, which the policy never drops.
    assert_eq!(o.materialize_reports().unwrap(), 2);
    assert_eq!(
        o.materialize_reports().unwrap(),
        0,
        "one unsent report per counter"
    );
    let reports: Vec<String> = o
        .due(ItemKind::Event, i64::MAX, 100)
        .unwrap()
        .into_iter()
        .map(|r| r.payload)
        .filter(|p| p.contains("outbox_dropped"))
        .collect();
    assert_eq!(reports.len(), 2);
    assert!(
        reports
            .iter()
            .any(|p| p.contains(r#""item":"event","count":1,"policy":"drop_oldest_events""#))
    );
    assert!(
        reports
            .iter()
            .any(|p| p.contains(r#""item":"recording","count":2,"policy":"refuse_new""#))
    );
    // Counts survive a restart.
    drop(o);
    let o = open(dir.path(), OutboxConfig::default());
    assert_eq!(o.status().unwrap().dropped.event, 1);
}

#[test]
fn without_event_dropping_a_full_outbox_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let config = OutboxConfig {
        max_items: 2,
        max_bytes: 1 << 20,
        policy: FullPolicy {
            drop_oldest_events: false,
            drop_oldest_recordings: false,
        },
    };
    let o = open(dir.path(), config);
    o.enqueue_event(feedback()).unwrap();
    o.enqueue_event(feedback()).unwrap();
    let err = o.enqueue_chat(chat("c", "x")).unwrap_err();
    assert!(matches!(err, Error::OutboxFull { item: "chat", .. }));
    assert_eq!(o.status().unwrap().refused.chat, 1);
}

#[test]
fn dead_items_are_kept_reported_and_can_be_retried_or_purged() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path(), OutboxConfig::default());
    o.enqueue_chat(chat("c", "x")).unwrap();
    let rows = o.due(ItemKind::Chat, i64::MAX, 10).unwrap();
    o.mark_dead(&[&rows[0]], "invalid_request: too long")
        .unwrap();
    let st = o.status().unwrap();
    assert_eq!(st.dead.len(), 1);
    assert_eq!(st.dead[0].error, "invalid_request: too long");
    assert!(o.due(ItemKind::Chat, i64::MAX, 10).unwrap().is_empty());
    assert_eq!(o.retry_dead().unwrap(), 1);
    assert_eq!(o.due(ItemKind::Chat, i64::MAX, 10).unwrap().len(), 1);
    let rows = o.due(ItemKind::Chat, i64::MAX, 10).unwrap();
    o.mark_dead(&[&rows[0]], "again").unwrap();
    assert_eq!(o.purge_dead().unwrap(), 1);
    let st = o.status().unwrap();
    assert_eq!(st.items, 0);
    assert_eq!(st.dropped.chat, 1);
}

#[test]
fn schedules_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let later = now_ms() + 60_000;
    {
        let o = open(dir.path(), OutboxConfig::default());
        o.enqueue_event(feedback()).unwrap();
        let rows = o.due(ItemKind::Event, now_ms(), 10).unwrap();
        o.reschedule(&[&rows[0]], later, "overloaded").unwrap();
        o.set_hold(later).unwrap();
    }
    let o = open(dir.path(), OutboxConfig::default());
    assert!(o.due(ItemKind::Event, now_ms(), 10).unwrap().is_empty());
    let st = o.status().unwrap();
    assert_eq!(st.next_attempt_at, Some(later));
    assert_eq!(st.held_until, Some(later));
    let rows = o.due(ItemKind::Event, later, 10).unwrap();
    assert_eq!(rows[0].attempts, 1);
}
