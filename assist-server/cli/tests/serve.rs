//! The real binary: `assist serve` answers, refuses a second server on the
//! same data directory, and shuts down cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn assist() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_assist"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir());
    c
}

/// Start `assist serve` on a free port and return it with its address, read
/// from the "listening" log line. The caller owns the child and waits for it.
#[allow(clippy::zombie_processes)]
fn start(
    data_dir: &std::path::Path,
    model_dir: &std::path::Path,
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let mut child = assist()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--required-models",
            "",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--model-dir")
        .arg(model_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start assist serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("server did not log `listening` in time");
        if line.contains("\"listening\"") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let addr = v["addr"].as_str().unwrap().to_string();
            return (child, addr, rx);
        }
    }
}

#[tokio::test]
async fn serve_answers_refuses_a_second_instance_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let (mut child, addr, logs) = start(data.path(), models.path());

    let client = reqwest::Client::new();
    let health: serde_json::Value = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready = client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // A second server on the same data directory is refused with a clear error.
    let second = assist()
        .args(["serve", "--listen", "127.0.0.1:0", "--required-models", ""])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--model-dir")
        .arg(models.path())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already using the data directory"), "{err}");

    // SIGTERM: graceful stop, exit 0.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "server did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");
    let all: Vec<String> = logs.try_iter().collect();
    assert!(
        all.iter().any(|l| l.contains("SIGTERM received")),
        "{all:?}"
    );
    assert!(all.iter().any(|l| l.contains("\"stopped\"")), "{all:?}");
    // The lock is released: a new server can start.
    let (mut again, _, _) = start(data.path(), models.path());
    again.kill().unwrap();
    let _ = again.wait();
}

#[test]
fn missing_models_and_bad_config_are_clear_errors() {
    let models = tempfile::tempdir().unwrap();
    let out = assist()
        .args(["models", "list"])
        .arg("--model-dir")
        .arg(models.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("whisper-base") && text.contains("missing"),
        "{text}"
    );

    let cfg = models.path().join("bad.toml");
    std::fs::write(&cfg, "[server]\nlisten_addr = \"x\"\n").unwrap();
    let out = assist()
        .args(["--config"])
        .arg(&cfg)
        .arg("config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen_addr"), "{err}");
}
