//! The phone's outbox against the real `assist serve`, through a proxy that
//! cuts connections, with the server SIGKILLed three times: 1,000 queued
//! items (600 chat messages over 12 conversations, 397 device events, 3
//! recordings) are each stored exactly once after recovery, and each
//! recording is stored byte for byte as one call.
//!
//! - The proxy gives every connection a random byte budget per direction and
//!   drops it when one runs out (mid-request or mid-answer). It also drops
//!   the answer of a few chosen requests after the server has committed them,
//!   so resends of stored items certainly happen.
//! - Kill 1: at the 8th chat `POST`, a few ms after forwarding it.
//! - Kill 2: at the first upload `PUT` after the server confirmed part of a
//!   recording (0 < offset ≤ size / 2): the `PUT` head is forwarded, then the
//!   server dies. The database is then read to show an upload part-way
//!   (0 < received < size), and the phone app is "restarted" (outbox reopened).
//! - Kill 3: 0–12 ms after forwarding the `PUT` that completes a recording,
//!   while the server checks it and turns it into a call.
//!
//! Recordings need the speech model (`asr`) in `$ASSIST_MODEL_DIR` or
//! `~/.cache/assist/models` (`scripts/test` fetches it); without it that part
//! is skipped, saying so on stderr. The seed of the proxy's random cuts is
//! printed; set `ASSIST_TEST_SEED` to replay one. The server runs without job
//! runners (transcriptions stay queued) and without the LLM.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use assist_device_sdk::protocol::device::{
    ChatChannel, ChatSender, DeviceEventKind, UploadMetadata,
};
use assist_device_sdk::{
    Client, ClientConfig, FlushProgress, NewChat, NewRecording, Outbox, OutboxConfig,
};
use assist_protocol::Role;
use assist_server::db::Db;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

const CONVERSATIONS: usize = 12;
const CHATS: usize = 600;
const EVENTS: usize = 397;
const RECORDINGS: usize = 3;
/// Bytes per upload `PUT`: a 6 s recording takes 12 of them.
const CHUNK: usize = 16 * 1024;
/// The chat `POST` (counting resends) during which the server is killed.
const KILL_AT_CHAT_POST: usize = 8;
/// Requests whose answer the proxy drops after the server sent it.
const DROP_ANSWER_CHAT_POSTS: [usize; 3] = [3, 12, 20];
const DROP_ANSWER_EVENT_POSTS: [usize; 2] = [2, 5];
const DROP_ANSWER_UPLOAD_PUTS: [usize; 1] = [2];
/// The `PUT` completing a recording (counting resends) whose answer is dropped.
const DROP_ANSWER_FINAL_PUT: usize = 3;
/// The whole run gives up (with diagnostics) after this long.
const GIVE_UP: Duration = Duration::from_secs(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_queued_items_are_stored_once_despite_cuts_and_server_kills() {
    let seed = std::env::var("ASSIST_TEST_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        });
    eprintln!("device_outbox: proxy seed {seed} (ASSIST_TEST_SEED={seed} replays it)");
    let started = Instant::now();

    let model_dir = std::env::var_os("ASSIST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(assist_server::config::default_model_dir);
    let with_recordings = speech_model_ready(&model_dir);
    if !with_recordings {
        assist_testkit::skip(
            assist_testkit::Kind::Model,
            format!(
                "the recording part: the speech model `asr` is not ready in {} \
                 (assist models fetch --only asr); chats and events are still checked",
                model_dir.display()
            ),
        );
    }

    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let db_url = format!("sqlite://{}", data_dir.join("assist.db").display());
    let token = provision(&db_url).await;

    // Server on a free port A (read from its log), then the proxy on B → A.
    let server = Arc::new(Server::new(&data_dir, &model_dir, tmp.path()));
    server.spawn("127.0.0.1:0");
    let upstream = server.wait_listening(Duration::from_secs(120));
    healthz(&upstream).await;
    let faults = Arc::new(Faults::default());
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    tokio::spawn(run_proxy(
        proxy,
        upstream.clone(),
        server.clone(),
        faults.clone(),
        seed,
    ));

    // Everything is queued before the first flush.
    let outbox_dir = tmp.path().join("phone");
    let mut outbox = Outbox::open(&outbox_dir, OutboxConfig::default()).unwrap();
    let expected = enqueue_all(&outbox, tmp.path(), with_recordings);
    assert_eq!(
        outbox.status().unwrap().pending() as usize,
        CHATS + EVENTS + expected.uploads.len()
    );
    let mut client = client_for(&proxy_addr.to_string(), &token, &outbox);

    // Flush until everything is confirmed; restart the server after a kill.
    let progress_faults = faults.clone();
    let progress = move |p: FlushProgress| {
        if let FlushProgress::Upload { offset, size, .. } = p
            && offset > 0
            && offset <= size / 2
        {
            progress_faults
                .upload_kill_armed
                .store(true, Ordering::SeqCst);
        }
    };
    let mut totals = Totals::default();
    let mut kills_handled = 0;
    let mut down_flushes = 0;
    let mut snapshots: Vec<(Kill, Vec<UploadSnapshot>)> = Vec::new();
    loop {
        server.check_not_exited();
        if !server.is_running() {
            let kills = server.kills();
            if kills.len() > kills_handled {
                kills_handled = kills.len();
                let kill = *kills.last().unwrap();
                if kill != Kill::Chat {
                    // The server is down: read what it holds of the uploads.
                    snapshots.push((kill, uploads_snapshot(&db_url).await));
                }
                if kill == Kill::Upload {
                    // The phone app restarts too: the outbox keeps upload ids and offsets.
                    drop(client);
                    outbox = Outbox::open(&outbox_dir, OutboxConfig::default()).unwrap();
                    client = client_for(&proxy_addr.to_string(), &token, &outbox);
                }
            }
            // Keep flushing against the dead server for a moment, then restart it.
            down_flushes += 1;
            if down_flushes > 3 {
                down_flushes = 0;
                server.spawn(&upstream);
            }
        }
        let report = client.flush_with(&progress).await.unwrap();
        totals.add(&report);
        if report.remaining == 0 && report.stopped.is_none() {
            break;
        }
        assert!(
            !report.unauthorized,
            "the device token was refused: {report:?}"
        );
        if started.elapsed() > GIVE_UP {
            panic!(
                "not delivered in time\nlast report: {report:?}\nstatus: {:?}\nproxy: {}\nserver log tail:\n{}",
                outbox.status().unwrap(),
                faults.summary(),
                server.log_tail(60)
            );
        }
        outbox.make_due_now().unwrap();
        let pause = if server.listening().is_some() {
            20
        } else {
            150
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    server.terminate();

    // The phone holds nothing: no pending, dead, dropped or refused item.
    let status = outbox.status().unwrap();
    assert_eq!(status.pending(), 0, "{status:?}");
    assert_eq!(status.items, 0, "{status:?}");
    assert!(status.dead.is_empty(), "dead items: {:?}", status.dead);
    assert_eq!(status.dropped.total(), 0, "{status:?}");
    assert_eq!(status.refused.total(), 0, "{status:?}");
    assert!(status.uploads.is_empty(), "{status:?}");
    assert_eq!(totals.dead, 0, "{totals:?}");

    // The server holds each item exactly once.
    let db = Db::open(&db_url, 1).await.unwrap();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(db.pool())
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM chat_messages").await,
        CHATS as i64
    );
    assert_eq!(
        count("SELECT COUNT(DISTINCT client_message_id) FROM chat_messages").await,
        CHATS as i64
    );
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT conversation_id, client_message_id FROM chat_messages")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let stored: BTreeSet<(String, String)> = stored.into_iter().collect();
    assert_eq!(
        stored, expected.chats,
        "stored chats differ from the queued ones"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM conversations").await,
        CONVERSATIONS as i64
    );
    // The risk path ran on the messages, once per stored message.
    assert!(count("SELECT COUNT(*) FROM risk_events WHERE source = 'chat'").await > 0);
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM risk_events r WHERE r.source = 'chat' AND NOT EXISTS \
             (SELECT 1 FROM chat_messages m WHERE m.id = r.message_id)"
        )
        .await,
        0
    );

    assert_eq!(
        count("SELECT COUNT(*) FROM device_events").await,
        EVENTS as i64
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM device_events WHERE kind = 'outbox_dropped'").await,
        0
    );
    let events: Vec<String> = sqlx::query_scalar("SELECT event_id FROM device_events")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(
        events.into_iter().collect::<BTreeSet<_>>(),
        expected.events,
        "stored device events differ from the queued ones"
    );

    let uploads: Vec<(String, String, i64, i64, Option<String>)> =
        sqlx::query_as("SELECT upload_key, state, received, size, call_id FROM uploads")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(uploads.len(), expected.uploads.len(), "{uploads:?}");
    for (key, state, received, size, call_id) in &uploads {
        assert!(expected.uploads.contains_key(key), "{key}");
        assert_eq!(state, "complete", "upload {key}: {uploads:?}");
        assert_eq!(received, size, "upload {key}");
        assert!(call_id.is_some(), "upload {key} has no call");
    }
    let calls: Vec<(String, Option<String>, String)> =
        sqlx::query_as("SELECT id, idempotency_key, audio_path FROM calls")
            .fetch_all(db.pool())
            .await
            .unwrap();
    // Keys are stored scoped to the uploader: `<user id>/<key>`.
    let calls: Vec<(String, Option<String>, String)> = calls
        .into_iter()
        .map(|(id, k, path)| {
            let k = k.map(|k| {
                k.split_once('/')
                    .map_or(k.clone(), |(_, key)| key.to_string())
            });
            (id, k, path)
        })
        .collect();
    assert_eq!(calls.len(), expected.uploads.len(), "{calls:?}");
    let call_keys: BTreeSet<&String> = calls.iter().filter_map(|(_, k, _)| k.as_ref()).collect();
    assert_eq!(call_keys, expected.uploads.keys().collect());
    // Each call's stored audio is the phone's recording, byte for byte.
    for (id, key, path) in &calls {
        let stored = std::fs::read(path).unwrap_or_else(|e| panic!("call {id}: {path}: {e}"));
        assert_eq!(
            Some(&hex::encode(Sha256::digest(&stored))),
            key.as_ref().and_then(|k| expected.uploads.get(k)),
            "call {id} ({key:?}): the stored audio is not the recording"
        );
    }
    let upload_calls: BTreeMap<String, String> = uploads
        .iter()
        .map(|(k, _, _, _, c)| (k.clone(), c.clone().unwrap_or_default()))
        .collect();
    let call_of: BTreeMap<String, String> = calls
        .iter()
        .map(|(id, k, _)| (k.clone().unwrap_or_default(), id.clone()))
        .collect();
    assert_eq!(upload_calls, call_of, "each upload names its one call");
    // The phone was told the call of each upload it finished (a lost answer
    // is asked again), and only ever that call.
    for (key, call) in &totals.calls {
        assert_eq!(call_of.get(key), Some(call), "upload {key}");
    }
    assert_eq!(
        count("SELECT COUNT(*) FROM jobs WHERE queue = 'transcribe'").await,
        expected.uploads.len() as i64,
        "one transcription job per call"
    );
    db.close().await;
    // Files a kill may have left behind (reported, not asserted).
    let strays = stray_files(
        &data_dir,
        &calls.iter().map(|(_, _, p)| PathBuf::from(p)).collect(),
    );

    // The faults really happened: cuts, resends of stored items, the kills,
    // one with an upload part-way.
    let cuts = faults.cuts.load(Ordering::SeqCst);
    let dropped = faults.answers_dropped.load(Ordering::SeqCst);
    let kills = server.kills();
    eprintln!(
        "device_outbox: delivered in {:.1}s; {}; kills {:?}; flushes {}, sent {}, duplicates {}, failed {}; \
         uploads when killed: {snapshots:?}; stray files: {strays:?}",
        started.elapsed().as_secs_f64(),
        faults.summary(),
        kills,
        totals.flushes,
        totals.sent,
        totals.duplicates,
        totals.failed
    );
    assert!(
        cuts >= 20,
        "only {cuts} connections cut: {}",
        faults.summary()
    );
    let designated = DROP_ANSWER_CHAT_POSTS.len() + DROP_ANSWER_EVENT_POSTS.len();
    assert!(
        dropped >= designated,
        "only {dropped} answers dropped: {}",
        faults.summary()
    );
    assert!(
        totals.duplicates > 0,
        "no resend of a stored item: {totals:?}"
    );
    assert!(kills.contains(&Kill::Chat), "kills: {kills:?}");
    if with_recordings {
        assert_eq!(kills, vec![Kill::Chat, Kill::Upload, Kill::UploadEnd]);
        let (_, snapshot) = snapshots
            .iter()
            .find(|(k, _)| *k == Kill::Upload)
            .expect("the database was read after the upload kill");
        assert!(
            snapshot
                .iter()
                .any(|u| u.state == "receiving" && 0 < u.received && u.received < u.size),
            "no upload was part-way when the server was killed: {snapshot:?}"
        );
    }
}

/// What was queued, by the ids the server stores.
struct Expected {
    chats: BTreeSet<(String, String)>,
    events: BTreeSet<String>,
    /// Upload key → SHA-256 of the recording.
    uploads: BTreeMap<String, String>,
}

fn enqueue_all(outbox: &Outbox, tmp: &Path, with_recordings: bool) -> Expected {
    const PLAIN: [&str; 6] = [
        "您好，我是理财顾问小王，这是您咨询的产品资料",
        "Hi, this is Wang from the advisory desk, following up on your question.",
        "这款产品的风险等级是R3，适合稳健型投资者",
        "The fund's past performance does not guarantee future returns.",
        "明天下午三点方便通个电话吗？",
        "Sure, I'll send the brochure through the official app.",
    ];
    const RISKY: [&str; 3] = [
        "加我私人微信，私下给你返点",
        "Add my personal WeChat and I can guarantee 20% returns.",
        "保证收益，稳赚不赔，直接转账到我个人账户就行",
    ];
    let mut chats = BTreeSet::new();
    for i in 0..CHATS {
        let conversation = format!("conv-outbox-{:02}", i % CONVERSATIONS);
        let id = format!("msg-outbox-{i:04}");
        let text = if i % 10 == 7 {
            format!("{} ({i})", RISKY[i % RISKY.len()])
        } else {
            format!("{} #{i}", PLAIN[i % PLAIN.len()])
        };
        outbox
            .enqueue_chat(NewChat {
                conversation_id: conversation.clone(),
                channel: Some(ChatChannel::Wechat),
                customer_ref: Some(format!("crm-{}", i % CONVERSATIONS)),
                sender: if i % 2 == 0 {
                    ChatSender::Rep
                } else {
                    ChatSender::Customer
                },
                text,
                sent_at: None,
                client_message_id: Some(id.clone()),
            })
            .unwrap();
        chats.insert((conversation, id));
    }
    let mut events = BTreeSet::new();
    for i in 0..EVENTS {
        let id = format!("evt-outbox-{i:03}");
        let kind = if i % 3 == 0 {
            DeviceEventKind::PrivacyExcluded {
                item: if i % 2 == 0 { "call" } else { "chat" }.into(),
                count: 1,
            }
        } else {
            DeviceEventKind::GuardBlocked {
                rule_id: format!("rule-{}", i % 7),
                category: "private_contact".into(),
                decision: if i % 5 == 0 { "warn" } else { "block" }.into(),
                conversation_id: Some(format!("conv-outbox-{:02}", i % CONVERSATIONS)),
                rules_version: 3,
            }
        };
        outbox.enqueue_event_with_id(id.clone(), kind).unwrap();
        events.insert(id);
    }
    let mut uploads = BTreeMap::new();
    if with_recordings {
        for i in 0..RECORDINGS {
            let path = tmp.join(format!("call-{i}.wav"));
            let wav = quiet_wav(6, i as u32);
            std::fs::write(&path, &wav).unwrap();
            let key = format!("rec-outbox-{i}");
            outbox
                .enqueue_recording(
                    &path,
                    NewRecording {
                        upload_key: Some(key.clone()),
                        metadata: UploadMetadata {
                            direction: Some("outbound".into()),
                            channel_layout: Some("mono".into()),
                            language: Some("zh".into()),
                            ..UploadMetadata::default()
                        },
                    },
                )
                .unwrap();
            uploads.insert(key, hex::encode(Sha256::digest(&wav)));
        }
    }
    Expected {
        chats,
        events,
        uploads,
    }
}

fn client_for(addr: &str, token: &str, outbox: &Outbox) -> Client {
    let mut config = ClientConfig::new(format!("http://{addr}"), token);
    config.chunk_bytes = CHUNK;
    config.chat_batch = 20;
    config.event_batch = 25;
    config.timeout = Duration::from_secs(30);
    config.connect_timeout = Duration::from_secs(5);
    Client::new(config, outbox.clone()).unwrap()
}

/// Org, team, rep, the rep's phone and its token, written before the server starts.
async fn provision(db_url: &str) -> String {
    let db = Db::open(db_url, 2).await.unwrap();
    let org = db.create_org("Outbox Test").await.unwrap();
    let team = db.create_team(&org.id, "East").await.unwrap();
    let rep = db
        .create_user(&org.id, "zhang", Role::Rep, Some(&team.id))
        .await
        .unwrap();
    let device = db.create_device(&org.id, &rep.id, "phone-1").await.unwrap();
    let (_, secret) = db
        .create_token(&org.id, &rep.id, Some(&device.id), Some("phone"), None)
        .await
        .unwrap();
    db.close().await;
    secret
}

/// Upload parts and audio files that no call uses.
fn stray_files(data_dir: &Path, audio: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    let mut strays = Vec::new();
    for top in ["uploads", "audio"] {
        let mut dirs = vec![data_dir.join(top)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if !audio.contains(&path) {
                    strays.push(path.strip_prefix(data_dir).unwrap_or(&path).to_path_buf());
                }
            }
        }
    }
    strays
}

fn speech_model_ready(model_dir: &Path) -> bool {
    assist_models::store::ModelStore::new(model_dir, assist_models::store::StoreOptions::default())
        .and_then(|store| store.ready_path("asr"))
        .is_ok()
}

/// `seconds` of near-silence (faint noise), 16 kHz mono 16-bit WAV.
fn quiet_wav(seconds: u32, seed: u32) -> Vec<u8> {
    let rate = 16_000u32;
    let n = rate * seconds;
    let data_len = n * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    let mut x = 0x9E37_79B9u32 ^ seed.wrapping_mul(0x85EB_CA6B);
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let sample = (x % 41) as i16 - 20;
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

async fn healthz(addr: &str) {
    let body: serde_json::Value = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok", "{body}");
}

#[derive(Debug)]
#[allow(dead_code)] // `key` and `call` are for the report
struct UploadSnapshot {
    key: String,
    state: String,
    received: i64,
    size: i64,
    /// A call with the upload's key exists.
    call: bool,
}

/// The uploads table, read while the server is down.
async fn uploads_snapshot(db_url: &str) -> Vec<UploadSnapshot> {
    let db = Db::open(db_url, 1).await.unwrap();
    let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT u.upload_key, u.state, u.received, u.size, \
         (SELECT COUNT(*) FROM calls c WHERE c.idempotency_key = u.user_id || '/' || u.upload_key) \
         FROM uploads u ORDER BY u.upload_key",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    db.close().await;
    rows.into_iter()
        .map(|(key, state, received, size, calls)| UploadSnapshot {
            key,
            state,
            received,
            size,
            call: calls > 0,
        })
        .collect()
}

/// Sums over all flushes.
#[derive(Debug, Default)]
struct Totals {
    flushes: u64,
    sent: u64,
    duplicates: u64,
    failed: u64,
    dead: u64,
    calls: Vec<(String, String)>,
}

impl Totals {
    fn add(&mut self, r: &assist_device_sdk::FlushReport) {
        self.flushes += 1;
        self.sent += r.sent;
        self.duplicates += r.duplicates;
        self.failed += r.failed;
        self.dead += r.dead;
        self.calls.extend(r.calls.iter().cloned());
    }
}

// ---------------------------------------------------------------------------
// The server process.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    /// During the chats.
    Chat,
    /// With a recording part-way.
    Upload,
    /// Just after the last bytes of a recording.
    UploadEnd,
}

/// `assist serve` as a child process that the proxy may SIGKILL.
#[derive(Debug)]
struct Server {
    data_dir: PathBuf,
    model_dir: PathBuf,
    home: PathBuf,
    child: Mutex<Option<Child>>,
    /// Incremented per start; a log reader only reports its own start.
    generation: Arc<AtomicUsize>,
    listening: Arc<Mutex<Option<String>>>,
    logs: Arc<Mutex<VecDeque<String>>>,
    kills: Mutex<Vec<Kill>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Server {
    fn new(data_dir: &Path, model_dir: &Path, home: &Path) -> Server {
        Server {
            data_dir: data_dir.to_path_buf(),
            model_dir: model_dir.to_path_buf(),
            home: home.to_path_buf(),
            child: Mutex::new(None),
            generation: Arc::new(AtomicUsize::new(0)),
            listening: Arc::new(Mutex::new(None)),
            logs: Arc::new(Mutex::new(VecDeque::new())),
            kills: Mutex::new(Vec::new()),
        }
    }

    /// Start `assist serve` on `listen` (without waiting for it).
    fn spawn(&self, listen: &str) {
        let mut slot = lock(&self.child);
        assert!(slot.is_none(), "the server is already running");
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        *lock(&self.listening) = None;
        let mut child = Command::new(env!("CARGO_BIN_EXE_assist"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .args(["serve", "--listen", listen, "--log-format", "json"])
            // Readiness is not awaited; no LLM, and no job runners: the
            // transcriptions stay queued (this test is about delivery).
            .args(["--required-models", "", "--analysis-model", ""])
            .args(["--job-workers", "0"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--model-dir")
            .arg(&self.model_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start assist serve");
        let stderr = child.stderr.take().unwrap();
        let (gens, listening, logs) = (
            self.generation.clone(),
            self.listening.clone(),
            self.logs.clone(),
        );
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("\"listening\"")
                    && gens.load(Ordering::SeqCst) == generation
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(addr) = v["addr"].as_str()
                {
                    *lock(&listening) = Some(addr.to_string());
                }
                let mut logs = lock(&logs);
                if logs.len() >= 400 {
                    logs.pop_front();
                }
                logs.push_back(format!("[start {generation}] {line}"));
            }
        });
        *slot = Some(child);
    }

    fn wait_listening(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(addr) = self.listening() {
                return addr;
            }
            self.check_not_exited();
            assert!(
                Instant::now() < deadline,
                "the server did not listen in time:\n{}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn listening(&self) -> Option<String> {
        lock(&self.listening).clone()
    }

    fn is_running(&self) -> bool {
        lock(&self.child).is_some()
    }

    /// Panic (with the log) if the server stopped without being killed.
    fn check_not_exited(&self) {
        let mut slot = lock(&self.child);
        if let Some(child) = slot.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            slot.take();
            drop(slot);
            panic!(
                "the server exited by itself ({status}):\n{}",
                self.log_tail(60)
            );
        }
    }

    /// SIGKILL and reap.
    fn kill(&self, why: Kill) {
        let mut slot = lock(&self.child);
        if let Some(mut child) = slot.take() {
            child.kill().expect("SIGKILL the server");
            child.wait().expect("reap the server");
            *lock(&self.listening) = None;
            lock(&self.kills).push(why);
        }
    }

    fn kills(&self) -> Vec<Kill> {
        lock(&self.kills).clone()
    }

    /// SIGTERM and wait for a clean stop.
    fn terminate(&self) {
        let Some(mut child) = lock(&self.child).take() else {
            return;
        };
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        while sent && Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn log_tail(&self, n: usize) -> String {
        let logs = lock(&self.logs);
        let skip = logs.len().saturating_sub(n);
        logs.iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = lock(&self.child).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// The proxy that cuts connections.

/// What the proxy counted and the faults it has yet to inject.
#[derive(Debug, Default)]
struct Faults {
    connections: AtomicUsize,
    /// Connections dropped because a byte budget ran out.
    cuts: AtomicUsize,
    /// Answers dropped after the server had sent them.
    answers_dropped: AtomicUsize,
    /// Connections refused because the server was down.
    refused: AtomicUsize,
    chat_posts: AtomicUsize,
    event_posts: AtomicUsize,
    upload_puts: AtomicUsize,
    /// `PUT`s that complete a recording (last chunk or `bytes */TOTAL`).
    final_puts: AtomicUsize,
    /// Set once the server confirmed part of a recording.
    upload_kill_armed: AtomicBool,
    upload_kill_done: AtomicBool,
    upload_end_kill_done: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Chat,
    Events,
    UploadPut { last: bool },
}

#[derive(Debug, Default)]
struct Action {
    drop_answer: bool,
    kill: Option<Kill>,
}

impl Faults {
    fn on_request(&self, request: Request) -> Action {
        let mut action = Action::default();
        match request {
            Request::Chat => {
                let n = self.chat_posts.fetch_add(1, Ordering::SeqCst) + 1;
                action.drop_answer = DROP_ANSWER_CHAT_POSTS.contains(&n);
                if n == KILL_AT_CHAT_POST {
                    action.kill = Some(Kill::Chat);
                }
            }
            Request::Events => {
                let n = self.event_posts.fetch_add(1, Ordering::SeqCst) + 1;
                action.drop_answer = DROP_ANSWER_EVENT_POSTS.contains(&n);
            }
            Request::UploadPut { last } => {
                let n = self.upload_puts.fetch_add(1, Ordering::SeqCst) + 1;
                action.drop_answer = DROP_ANSWER_UPLOAD_PUTS.contains(&n);
                if last {
                    let n = self.final_puts.fetch_add(1, Ordering::SeqCst) + 1;
                    action.drop_answer = n == DROP_ANSWER_FINAL_PUT;
                    // The first completing `PUT` after the mid-upload kill.
                    if self.upload_kill_done.load(Ordering::SeqCst)
                        && !self.upload_end_kill_done.swap(true, Ordering::SeqCst)
                    {
                        action.kill = Some(Kill::UploadEnd);
                    }
                } else if self.upload_kill_armed.load(Ordering::SeqCst)
                    && !self.upload_kill_done.swap(true, Ordering::SeqCst)
                {
                    action.kill = Some(Kill::Upload);
                }
                if action.kill.is_some() {
                    action.drop_answer = false;
                }
            }
        }
        action
    }

    fn summary(&self) -> String {
        format!(
            "connections {}, cut {}, answers dropped {}, refused while down {}; requests seen: chat {}, events {}, upload PUT {}",
            self.connections.load(Ordering::SeqCst),
            self.cuts.load(Ordering::SeqCst),
            self.answers_dropped.load(Ordering::SeqCst),
            self.refused.load(Ordering::SeqCst),
            self.chat_posts.load(Ordering::SeqCst),
            self.event_posts.load(Ordering::SeqCst),
            self.upload_puts.load(Ordering::SeqCst),
        )
    }
}

async fn run_proxy(
    listener: TcpListener,
    upstream: String,
    server: Arc<Server>,
    faults: Arc<Faults>,
    seed: u64,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let n = faults.connections.fetch_add(1, Ordering::SeqCst) as u64;
        let rng = StdRng::seed_from_u64(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        tokio::spawn(relay(
            client,
            upstream.clone(),
            server.clone(),
            faults.clone(),
            rng,
        ));
    }
}

enum End {
    Closed,
    Cut,
    AnswerDropped,
}

async fn relay(
    client: TcpStream,
    upstream: String,
    server: Arc<Server>,
    faults: Arc<Faults>,
    mut rng: StdRng,
) {
    let Ok(up) = TcpStream::connect(&upstream).await else {
        faults.refused.fetch_add(1, Ordering::SeqCst);
        return;
    };
    let _ = (client.set_nodelay(true), up.set_nodelay(true));
    let c2s_budget = rng.random_range(256..40 * 1024);
    let s2c_budget = rng.random_range(64..6 * 1024);
    let chat_kill_delay = Duration::from_millis(rng.random_range(0..40));
    let end_kill_delay = Duration::from_millis(rng.random_range(0..12));
    let drop_answer = Arc::new(AtomicBool::new(false));
    let (cr, cw) = client.into_split();
    let (ur, uw) = up.into_split();
    let end = tokio::select! {
        e = client_to_server(cr, uw, c2s_budget, [chat_kill_delay, end_kill_delay], &server, &faults, &drop_answer) => e,
        e = server_to_client(ur, cw, s2c_budget, &drop_answer) => e,
    };
    match end {
        End::Cut => faults.cuts.fetch_add(1, Ordering::SeqCst),
        End::AnswerDropped => faults.answers_dropped.fetch_add(1, Ordering::SeqCst),
        End::Closed => 0,
    };
}

/// The request whose head is in `window` (past its first `carry` bytes,
/// which the previous read already inspected).
fn request_in(window: &[u8], carry: usize) -> Option<Request> {
    const HEADS: [&[u8]; 3] = [
        b"POST /v1/conversations/",
        b"POST /v1/device/events ",
        b"PUT /v1/uploads/",
    ];
    HEADS.iter().enumerate().find_map(|(kind, head)| {
        let at = window
            .windows(head.len())
            .enumerate()
            .position(|(i, w)| w == *head && i + head.len() > carry)?;
        Some(match kind {
            0 => Request::Chat,
            1 => Request::Events,
            _ => Request::UploadPut {
                last: completes_upload(&window[at..]),
            },
        })
    })
}

/// Whether the `PUT` starting `request` sends the last byte (or is the
/// `bytes */TOTAL` retry of the completion).
fn completes_upload(request: &[u8]) -> bool {
    const HEADER: &str = "content-range: bytes ";
    let head = String::from_utf8_lossy(&request[..request.len().min(2048)]).to_ascii_lowercase();
    let Some(at) = head.find(HEADER) else {
        return false;
    };
    let value = head[at + HEADER.len()..].split("\r\n").next().unwrap_or("");
    let Some((range, total)) = value.split_once('/') else {
        return false;
    };
    if range.trim() == "*" {
        return true;
    }
    let end = range
        .split_once('-')
        .and_then(|(_, end)| end.trim().parse::<u64>().ok());
    matches!((end, total.trim().parse::<u64>()), (Some(end), Ok(total)) if end + 1 == total)
}

async fn client_to_server(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    budget: usize,
    [chat_kill_delay, end_kill_delay]: [Duration; 2],
    server: &Arc<Server>,
    faults: &Faults,
    drop_answer: &AtomicBool,
) -> End {
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0usize;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return End::Closed,
            Ok(n) => n,
        };
        let mut window = std::mem::take(&mut tail);
        let carry = window.len();
        window.extend_from_slice(&buf[..n]);
        let action = match request_in(&window, carry) {
            Some(request) => faults.on_request(request),
            None => Action::default(),
        };
        tail = window[window.len().saturating_sub(32)..].to_vec();
        if action.drop_answer {
            drop_answer.store(true, Ordering::SeqCst);
        }
        // A request chosen for a kill or a dropped answer is not cut.
        if action.kill.is_none() && !drop_answer.load(Ordering::SeqCst) && sent + n > budget {
            let _ = to.write_all(&buf[..budget.saturating_sub(sent)]).await;
            return End::Cut;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return End::Closed;
        }
        sent += n;
        if let Some(kill) = action.kill {
            // Detached, so the kill happens even if this connection ends first.
            let server = server.clone();
            let delay = match kill {
                Kill::Chat => chat_kill_delay,
                Kill::UploadEnd => end_kill_delay,
                Kill::Upload => Duration::ZERO,
            };
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tokio::task::spawn_blocking(move || server.kill(kill)).await;
            });
        }
    }
}

async fn server_to_client(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    budget: usize,
    drop_answer: &AtomicBool,
) -> End {
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0usize;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return End::Closed,
            Ok(n) => n,
        };
        if drop_answer.swap(false, Ordering::SeqCst) {
            // The server has answered (so it has stored it): the phone gets
            // the first bytes only.
            let _ = to.write_all(&buf[..n.min(12)]).await;
            return End::AnswerDropped;
        }
        if sent + n > budget {
            let _ = to.write_all(&buf[..budget.saturating_sub(sent)]).await;
            return End::Cut;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return End::Closed;
        }
        sent += n;
    }
}
