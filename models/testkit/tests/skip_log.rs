//! `skip` as the tests of other crates meet it: in separate test processes
//! with the real environment. Each check runs this binary again with
//! `--exact child_calls_skip` and its own environment, so nothing here
//! changes the variables of the running process or writes to the log of the
//! run around it.

use std::path::Path;
use std::process::{Command, Output};

use assist_testkit::{Kind, skip};

/// `<kind>|<reason>` for the child; unset in a normal run.
const CHILD_ENV: &str = "ASSIST_TESTKIT_CHILD";

/// The child half of the checks below; does nothing on its own.
#[test]
#[ignore = "run by the other tests of this file as a child process"]
fn child_calls_skip() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (kind, reason) = spec.split_once('|').unwrap();
    let kind = Kind::ALL.into_iter().find(|k| k.as_str() == kind).unwrap();
    skip(kind, reason);
}

/// A child command with a controlled environment: its own log and model
/// cache, and no `ASSIST_REQUIRE_MODELS` unless a check sets one.
fn child(kind: Kind, reason: &str, log: &Path, model_dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_calls_skip", "--ignored", "--nocapture"])
        .env(CHILD_ENV, format!("{kind}|{reason}"))
        .env("ASSIST_SKIP_LOG", log)
        .env("ASSIST_MODEL_DIR", model_dir)
        .env_remove("ASSIST_REQUIRE_MODELS");
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

#[test]
fn parallel_processes_each_append_one_whole_line() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("skips.log");
    let models = tmp.path().join("models");
    let children: Vec<_> = (0..6)
        .map(|i| {
            child(
                Kind::Tool,
                &format!("tool {i} is not installed"),
                &log,
                &models,
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("skipped: tool {i} is not installed\n")),
            "{}",
            stderr(&out)
        );
    }
    let text = read_log(&log);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    let want: Vec<String> = (0..6)
        .map(|i| format!("tool\tskip_log/child_calls_skip\ttool {i} is not installed"))
        .collect();
    assert_eq!(lines, want);
}

#[test]
fn a_missing_model_skips_while_the_cache_is_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("skips.log");
    let models = tmp.path().join("models");
    // A model being fetched (no ready.json yet) does not fill the cache.
    std::fs::create_dir_all(models.join("whisper-base")).unwrap();
    let out = child(Kind::Model, "whisper-base is not ready", &log, &models)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        read_log(&log),
        "model\tskip_log/child_calls_skip\twhisper-base is not ready\n"
    );
}

#[test]
fn a_missing_model_fails_once_the_cache_holds_fetched_models() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("skips.log");
    let models = tmp.path().join("models");
    std::fs::create_dir_all(models.join("whisper-tiny-en")).unwrap();
    std::fs::write(models.join("whisper-tiny-en/ready.json"), "{}").unwrap();

    let out = child(Kind::Model, "whisper-base is not ready", &log, &models)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a model skip passed with a filled cache"
    );
    let err = stderr(&out);
    assert!(
        err.contains("whisper-base is not ready: a missing model fails"),
        "{err}"
    );
    assert!(
        err.contains("holds fetched models (whisper-tiny-en)"),
        "{err}"
    );
    assert!(!err.contains("skipped:"), "{err}");
    assert_eq!(read_log(&log), "", "a failure is not logged as a skip");

    // ASSIST_REQUIRE_MODELS=0 lets it skip; other kinds never fail.
    let out = child(Kind::Model, "whisper-base is not ready", &log, &models)
        .env("ASSIST_REQUIRE_MODELS", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = child(
        Kind::OptionalModel,
        "all-MiniLM-L6-v2 is not in",
        &log,
        &models,
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        read_log(&log),
        "model\tskip_log/child_calls_skip\twhisper-base is not ready\n\
         optional-model\tskip_log/child_calls_skip\tall-MiniLM-L6-v2 is not in\n"
    );
}

#[test]
fn require_models_fails_a_missing_model_even_with_an_empty_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("skips.log");
    let models = tmp.path().join("models");
    let out = child(Kind::Model, "asr is not ready", &log, &models)
        .env("ASSIST_REQUIRE_MODELS", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ASSIST_REQUIRE_MODELS is set"),
        "{}",
        stderr(&out)
    );
    assert_eq!(read_log(&log), "");

    // Only models: a missing tool still skips.
    let out = child(Kind::Tool, "sox is not installed", &log, &models)
        .env("ASSIST_REQUIRE_MODELS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        read_log(&log),
        "tool\tskip_log/child_calls_skip\tsox is not installed\n"
    );
}

#[test]
fn a_log_that_cannot_be_written_fails_the_skip() {
    let tmp = tempfile::tempdir().unwrap();
    // A directory is not a file one can append to.
    let out = child(Kind::Cpu, "no AVX2 on this CPU", tmp.path(), tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot record this skip in ASSIST_SKIP_LOG="),
        "{}",
        stderr(&out)
    );
}

#[test]
fn without_a_log_a_skip_only_prints() {
    let tmp = tempfile::tempdir().unwrap();
    let out = child(Kind::Env, "set SOMETHING", Path::new(""), tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("skipped: set SOMETHING\n"));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
