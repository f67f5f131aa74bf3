//! The `assist-device` binary against the fake server.

mod common;

use std::process::Output;

use assist_device_sdk::protocol::guard::{GuardAlternative, GuardRule, GuardRules};
use common::{FakeServer, TOKEN};

fn wav(path: &std::path::Path, rate: u32, channels: u16, seconds: u32) {
    let frames = rate * seconds;
    let data_len = frames * u32::from(channels) * 2;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    b.extend_from_slice(&(channels * 2).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames * u32::from(channels) {
        b.extend_from_slice(&(((i % 200) as i16 - 100) * 50).to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

async fn run(server: &FakeServer, dir: &std::path::Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_assist-device"))
        .env("ASSIST_SERVER", server.url())
        .env("ASSIST_DEVICE_TOKEN", TOKEN)
        .env("ASSIST_DEVICE_DATA_DIR", dir)
        .args(args)
        .output()
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_streams_prints_and_uploads() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("call.wav");
    wav(&audio, 8000, 2, 3);
    let out = run(
        &server,
        &dir.path().join("data"),
        &[
            "call",
            "--audio",
            audio.to_str().unwrap(),
            "--layout",
            "rep_left",
            "--client-call-id",
            "call-cli-1",
        ],
    )
    .await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("s] final    Rep: ch1:0"), "{t}");
    assert!(
        t.contains("recording call-cli-1 → call call_call-cli-1"),
        "{t}"
    );
    server.with(|f| {
        let s = &f.live.sessions["live_1"];
        // 3 s at 16 kHz per channel (resampled from 8 kHz), within a frame.
        let ms = s.audio[&1].len() as i64 / 32;
        assert!((ms - 3000).abs() <= 200, "{ms} ms");
        assert_eq!(f.calls["call-cli-1"], 1);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_send_blocks_with_the_alternative_and_exit_code_2() {
    let server = FakeServer::start().await;
    server.publish(GuardRules {
        org_id: "org_a".into(),
        version: 1,
        issued_at: "2026-11-24T12:00:00Z".into(),
        key_id: String::new(),
        rules: vec![GuardRule {
            id: "lex_9".into(),
            category: "private_contact".into(),
            severity: "high".into(),
            match_mode: "phrase".into(),
            pattern: "加我微信".into(),
            language: "zh".into(),
        }],
        alternatives: vec![GuardAlternative {
            category: "private_contact".into(),
            script_id: "scr_1".into(),
            text: "请通过公司企业微信联系我".into(),
        }],
        signature: String::new(),
    });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(
        &server,
        &data,
        &["chat", "send", "--conversation", "c1", "加 我 v 信"],
    )
    .await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("lex_9") && t.contains("请通过公司企业微信联系我"),
        "{t}"
    );
    server.with(|f| {
        assert!(f.chats.is_empty());
        let e = f.events.values().next().expect("the block was reported");
        assert_eq!(e["type"], "guard_blocked");
    });
    let out = run(
        &server,
        &data,
        &["chat", "send", "--conversation", "c1", "报价单已发您邮箱"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(server.with(|f| f.chats.len()), 1);
    let out = run(&server, &data, &["outbox", "status"]).await;
    assert!(text(&out).contains("total 0 of"), "{}", text(&out));
}

#[tokio::test]
async fn missing_token_and_bad_files_are_clear_errors() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_assist-device"))
        .env_remove("ASSIST_DEVICE_TOKEN")
        .env("ASSIST_SERVER", server.url())
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "outbox",
            "flush",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("no device token"), "{}", text(&out));
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, b"junk").unwrap();
    let out = run(
        &server,
        dir.path(),
        &["call", "--audio", junk.to_str().unwrap()],
    )
    .await;
    assert!(!out.status.success());
    assert!(text(&out).contains("not a recording"), "{}", text(&out));
}
