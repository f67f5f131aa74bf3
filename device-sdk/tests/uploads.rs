//! Resumable recording uploads against the fake server.

mod common;

use assist_device_sdk::{FlushProgress, NewRecording, Outbox};
use common::{FakeServer, Fault, TOKEN};
use sha2::{Digest, Sha256};

fn client(
    server: &FakeServer,
    dir: &std::path::Path,
    chunk: usize,
) -> (Outbox, assist_device_sdk::Client) {
    let outbox = Outbox::open(dir, Default::default()).unwrap();
    let mut cfg = assist_device_sdk::ClientConfig::new(server.url(), TOKEN);
    cfg.chunk_bytes = chunk;
    let c = assist_device_sdk::Client::new(cfg, outbox.clone()).unwrap();
    (outbox, c)
}

fn recording(dir: &std::path::Path, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    let path = dir.join("call.m4a");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

#[tokio::test]
async fn a_recording_uploads_in_chunks_and_becomes_a_call() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (outbox, client) = client(&server, &dir.path().join("box"), 1000);
    let (path, bytes) = recording(dir.path(), 4500);
    outbox
        .enqueue_recording(
            &path,
            NewRecording {
                upload_key: Some("call-1".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let offsets = std::sync::Mutex::new(Vec::new());
    let report = client
        .flush_with(&|p| {
            if let FlushProgress::Upload { offset, .. } = p {
                offsets.lock().unwrap().push(offset)
            }
        })
        .await
        .unwrap();
    assert_eq!(
        report.calls,
        vec![("call-1".to_string(), "call_call-1".to_string())]
    );
    assert_eq!(*offsets.lock().unwrap(), vec![0, 1000, 2000, 3000, 4000]);
    server.with(|f| {
        let u = &f.uploads["upl_call-1"];
        assert_eq!(u.data, bytes);
        assert_eq!(u.sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(u.puts, 5);
        assert_eq!(f.calls["call-1"], 1);
    });
    assert_eq!(outbox.status().unwrap().items, 0);
}

#[tokio::test]
async fn a_cut_upload_resumes_from_the_servers_offset_after_a_restart() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let boxdir = dir.path().join("box");
    let (path, bytes) = recording(dir.path(), 10_000);
    {
        let (outbox, client) = client(&server, &boxdir, 1000);
        outbox
            .enqueue_recording(&path, NewRecording::default())
            .unwrap();
        // Three chunks go through; the 4th is stored but its answer is cut.
        let report = flush_with_cut(&server, &client, 4).await;
        assert_eq!(report.sent, 0);
        assert_eq!(report.failed, 1);
        let st = outbox.status().unwrap();
        assert_eq!(st.uploads.len(), 1);
        assert_eq!(
            st.uploads[0].offset, 3000,
            "the last confirmed offset is stored"
        );
    }
    std::fs::remove_file(&path).unwrap(); // the app's copy is gone; the outbox has its own
    let (outbox, client) = client(&server, &boxdir, 1000);
    outbox.make_due_now().unwrap();
    let report = client.flush().await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    server.with(|f| {
        let u = f.uploads.values().next().unwrap();
        assert_eq!(u.data, bytes);
        // Resumed: the server got each byte at most twice (the lost answer's chunk).
        assert!(u.bytes_received <= 11_000, "{}", u.bytes_received);
        assert_eq!(f.requests["upload_get"], 1, "one GET after the restart");
    });
}

/// Flush once with the `cut_at`-th PUT processed but its answer cut.
async fn flush_with_cut(
    server: &FakeServer,
    client: &assist_device_sdk::Client,
    cut_at: usize,
) -> assist_device_sdk::FlushReport {
    server.with(|f| {
        let q = f.faults.entry("upload_put".into()).or_default();
        q.clear();
    });
    // Faults are taken per request in order; pad with no-op faults.
    server.with(|f| {
        let q = f.faults.entry("upload_put".into()).or_default();
        for _ in 1..cut_at {
            q.push_back(Fault::Passthrough);
        }
        q.push_back(Fault::CutAfter);
    });
    client.flush().await.unwrap()
}

#[tokio::test]
async fn a_409_after_server_side_loss_is_resolved_with_a_get() {
    let server = FakeServer::start().await;
    server.with(|f| f.forget_after_chunks = Some(2));
    let dir = tempfile::tempdir().unwrap();
    let (outbox, client) = client(&server, &dir.path().join("box"), 1000);
    let (path, bytes) = recording(dir.path(), 5000);
    outbox
        .enqueue_recording(&path, NewRecording::default())
        .unwrap();
    let report = client.flush().await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    server.with(|f| {
        let u = f.uploads.values().next().unwrap();
        assert_eq!(u.data, bytes);
        assert_eq!(f.requests["upload_get"], 1, "one GET after the 409");
    });
}

#[tokio::test]
async fn a_recording_the_server_cannot_use_goes_dead_with_the_reason() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (outbox, client) = client(&server, &dir.path().join("box"), 1000);
    let (path, _) = recording(dir.path(), 2500);
    outbox
        .enqueue_recording(&path, NewRecording::default())
        .unwrap();
    // Corrupt the outbox's copy after enqueue: the checksum no longer matches.
    let copy = std::fs::read_dir(dir.path().join("box/recordings"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut data = std::fs::read(&copy).unwrap();
    data[10] ^= 0xff;
    std::fs::write(&copy, data).unwrap();
    let report = client.flush().await.unwrap();
    assert_eq!(report.dead, 1);
    let st = outbox.status().unwrap();
    assert!(st.dead[0].error.contains("SHA-256"), "{}", st.dead[0].error);
    assert!(copy.exists(), "a dead recording keeps its file");
}

#[tokio::test]
async fn an_overloaded_server_delays_the_upload_without_losing_progress() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (outbox, client) = client(&server, &dir.path().join("box"), 1000);
    let (path, bytes) = recording(dir.path(), 3000);
    outbox
        .enqueue_recording(&path, NewRecording::default())
        .unwrap();
    server.with(|f| {
        let q = f.faults.entry("upload_put".into()).or_default();
        q.push_back(Fault::Passthrough);
        q.push_back(Fault::Overloaded("1".into()));
    });
    let report = client.flush().await.unwrap();
    assert_eq!((report.sent, report.failed), (0, 1));
    assert!(report.held_until.is_some());
    assert_eq!(outbox.status().unwrap().uploads[0].offset, 1000);
    outbox.make_due_now().unwrap();
    assert_eq!(client.flush().await.unwrap().sent, 1);
    server.with(|f| assert_eq!(f.uploads.values().next().unwrap().data, bytes));
}
