//! Skips that a test run can count.
//!
//! Some tests need what a machine may lack: real model weights, a tool such as
//! `espeak-ng` or `ffmpeg`, a PostgreSQL or Qdrant server, a CPU feature. Such
//! a test calls [`skip`] and returns early. libtest still reports it as
//! passed, so [`skip`] makes the skip visible:
//!
//! 1. it prints `skipped: <reason>` on stderr (libtest shows it for failing
//!    tests and with `--nocapture`);
//! 2. when `ASSIST_SKIP_LOG` names a file, it appends one line
//!    `<kind>\t<binary>/<test>\t<reason>` to it. `scripts/test` sets the
//!    variable to a fresh file and prints the skips of the whole run by kind
//!    and reason at the end;
//! 3. a missing model ([`Kind::Model`]) is a failure rather than a skip where
//!    the models are expected to be there: [`skip`] panics when
//!    [`models_required`] says why.
//!
//! # The log
//!
//! - `<kind>` is [`Kind::as_str`].
//! - `<binary>` is the test executable's name without cargo's `-<hash>`
//!   suffix (`llm`, `assist_models`); `<test>` is the name libtest gives the
//!   thread running the test (`real_weights_tiny_en_transcribes_english_speech`,
//!   `simd::tests::avx2_softmax_matches_the_portable_one`). A program without
//!   the test harness (a bench) logs its binary only.
//! - Tabs and line breaks in the fields become spaces, so a line is always
//!   three fields.
//! - Each line is one `write` to a file opened in append mode: the kernel
//!   places every such write at the end of the file as a whole, so lines from
//!   the parallel threads of one test binary and from the test binaries
//!   running at once never interleave.
//! - If the file cannot be written, [`skip`] panics: a skip that cannot be
//!   counted would be a silent pass again.
//!
//! # When a missing model fails
//!
//! - `ASSIST_REQUIRE_MODELS=1` (or `true`): always. `scripts/test` sets it
//!   when `CI=true`, after fetching the models.
//! - `ASSIST_REQUIRE_MODELS=0` (or `false`): never, for a machine whose cache
//!   holds only some of the models on purpose.
//! - Otherwise: when the model cache holds a ready model (a directory with
//!   the `ready.json` that `assist models fetch` writes last). Someone fetched
//!   models there, so a test that still cannot find its model is looking in
//!   the wrong place or for the wrong files, or the fetch is unfinished.
//!
//! The cache is `$ASSIST_MODEL_DIR` when set, else both
//! `$XDG_CACHE_HOME/assist/models` (where the `assist` binary fetches when
//! `XDG_CACHE_HOME` is set) and `~/.cache/assist/models` (where the tests
//! look): see [`model_cache_dirs`].
//!
//! # Example
//!
//! ```
//! use std::process::Command;
//!
//! use assist_testkit::{Kind, skip};
//!
//! /// Whether espeak-ng (which speaks the test sentences) is installed;
//! /// reports the skip when it is not.
//! fn have_espeak_ng() -> bool {
//!     let ok = Command::new("espeak-ng")
//!         .arg("--version")
//!         .output()
//!         .is_ok_and(|o| o.status.success());
//!     if !ok {
//!         skip(Kind::Tool, "espeak-ng is not installed (scripts/install-deps)");
//!     }
//!     ok
//! }
//!
//! // In a test:
//! fn transcribes_speech() {
//!     if !have_espeak_ng() {
//!         return;
//!     }
//!     // ...
//! }
//! # let _ = transcribes_speech;
//! ```

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file [`skip`] appends its lines to, when set.
pub const SKIP_LOG_ENV: &str = "ASSIST_SKIP_LOG";
/// `1` makes every missing model a failure, `0` never; see the crate docs.
pub const REQUIRE_MODELS_ENV: &str = "ASSIST_REQUIRE_MODELS";
/// The model cache root, as for the `assist` binary.
pub const MODEL_DIR_ENV: &str = "ASSIST_MODEL_DIR";

/// What a skipped test was missing; the first field of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Real weights that `assist models fetch` brings by default are not in
    /// the cache. The only kind that can fail instead: see [`models_required`].
    Model,
    /// A model the default fetch leaves out (`optional = true` in
    /// `models/manifest.toml`, such as all-MiniLM-L6-v2). Never required.
    OptionalModel,
    /// A command-line tool: espeak-ng, sox, ffmpeg, a C compiler.
    Tool,
    /// No PostgreSQL server (`ASSIST_TEST_POSTGRES_URL` unset): the test ran
    /// on SQLite only.
    Postgres,
    /// No Qdrant server (`ASSIST_TEST_QDRANT_URL` unset).
    Qdrant,
    /// The CPU lacks the instructions a kernel needs (AVX2, AVX-512 VNNI).
    Cpu,
    /// An opt-in environment variable is unset or names nothing usable
    /// (`ASSIST_REAL_MODEL_PACKAGES`).
    Env,
}

impl Kind {
    /// Every kind, in the order of the enum.
    pub const ALL: [Kind; 7] = [
        Kind::Model,
        Kind::OptionalModel,
        Kind::Tool,
        Kind::Postgres,
        Kind::Qdrant,
        Kind::Cpu,
        Kind::Env,
    ];

    /// The name written to the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Model => "model",
            Kind::OptionalModel => "optional-model",
            Kind::Tool => "tool",
            Kind::Postgres => "postgres",
            Kind::Qdrant => "qdrant",
            Kind::Cpu => "cpu",
            Kind::Env => "env",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Report that the calling test (or a part of it) does not run here, then
/// let it return early: prints `skipped: <reason>` on stderr and appends a
/// line to `$ASSIST_SKIP_LOG` when set.
///
/// Write `reason` so that it reads after "skipped: " and is the same for
/// every test missing the same thing (the summary groups by it), e.g.
/// `"espeak-ng is not installed (scripts/install-deps)"`.
///
/// # Panics
///
/// For [`Kind::Model`] when [`models_required`] gives a reason (the test
/// fails instead of skipping), and when `$ASSIST_SKIP_LOG` cannot be written.
#[track_caller]
pub fn skip(kind: Kind, reason: impl fmt::Display) {
    let reason = reason.to_string();
    if kind == Kind::Model
        && let Some(why) = models_required()
    {
        panic!(
            "{reason}: a missing model fails the test because {why}; \
             fetch it (`assist models fetch`), or set {REQUIRE_MODELS_ENV}=0 to let it skip"
        );
    }
    eprintln!("skipped: {reason}");
    let Some(log) = std::env::var_os(SKIP_LOG_ENV).filter(|p| !p.is_empty()) else {
        return;
    };
    let log = PathBuf::from(log);
    let line = log_line(kind, &test_name(), &reason);
    if let Err(e) = append_line(&log, &line) {
        panic!(
            "cannot record this skip in {SKIP_LOG_ENV}={}: {e}",
            log.display()
        );
    }
}

/// The folder of real recorded speech (`refs.tsv` and WAVs) that tests read
/// in place: `$ASSIST_REAL_SPEECH`, else the first `shared/real-speech` found
/// beside the current directory or one of its ancestors (the project's
/// checkout sits next to `shared/`). `None` after recording a skip.
#[track_caller]
pub fn real_speech_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ASSIST_REAL_SPEECH").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if dir.join("refs.tsv").is_file() {
            return Some(dir);
        }
        skip(
            Kind::Env,
            format!("ASSIST_REAL_SPEECH={} holds no refs.tsv", dir.display()),
        );
        return None;
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let found = cwd
        .ancestors()
        .map(|a| a.join("shared/real-speech"))
        .find(|d| d.join("refs.tsv").is_file());
    if found.is_none() {
        skip(
            Kind::Env,
            "no real recorded speech (shared/real-speech beside the checkout, or ASSIST_REAL_SPEECH)",
        );
    }
    found
}

/// Why a missing model must fail the test, or `None` when it may skip: see
/// the crate docs.
pub fn models_required() -> Option<String> {
    match require_setting(std::env::var_os(REQUIRE_MODELS_ENV).as_deref()) {
        Some(true) => Some(format!("{REQUIRE_MODELS_ENV} is set")),
        Some(false) => None,
        None => filled_cache(&model_cache_dirs()),
    }
}

/// The directories that may hold fetched models: `$ASSIST_MODEL_DIR` alone
/// when set, else `$XDG_CACHE_HOME/assist/models` (when set) and
/// `~/.cache/assist/models`.
pub fn model_cache_dirs() -> Vec<PathBuf> {
    cache_dirs(
        std::env::var_os(MODEL_DIR_ENV),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// The ids of the ready models in the cache `root`: its directories that
/// hold a `ready.json`, sorted. Empty when `root` does not exist.
pub fn ready_models(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("ready.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    ids
}

/// `1`/`true` → required, `0`/`false` → never, anything else → decide from
/// the cache.
fn require_setting(value: Option<&OsStr>) -> Option<bool> {
    match value?.to_str()?.trim() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

fn cache_dirs(
    model_dir: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> Vec<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(model_dir) {
        return vec![dir];
    }
    let mut dirs = Vec::new();
    if let Some(xdg) = set(xdg_cache_home) {
        dirs.push(xdg.join("assist/models"));
    }
    if let Some(home) = set(home) {
        let dir = home.join(".cache/assist/models");
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// Why the cache counts as filled: the first of `roots` with a ready model.
fn filled_cache(roots: &[PathBuf]) -> Option<String> {
    roots.iter().find_map(|root| {
        let ready = ready_models(root);
        (!ready.is_empty()).then(|| {
            format!(
                "the model cache {} holds fetched models ({})",
                root.display(),
                ready.join(", ")
            )
        })
    })
}

/// `<binary>/<test>` for the running test; see the crate docs.
fn test_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(Path::file_stem)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    qualified_name(&stem, std::thread::current().name())
}

fn qualified_name(exe_stem: &str, thread: Option<&str>) -> String {
    let binary = without_hash(exe_stem);
    match thread {
        Some(test) if !test.is_empty() && test != "main" => format!("{binary}/{test}"),
        _ => binary.to_string(),
    }
}

/// `llm-0123456789abcdef` → `llm`: cargo names test executables
/// `<target>-<16 hex digits>`.
fn without_hash(stem: &str) -> &str {
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name
        }
        _ => stem,
    }
}

/// One log line, newline included; tabs and line breaks in the fields become
/// spaces.
fn log_line(kind: Kind, name: &str, reason: &str) -> String {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    format!("{kind}\t{}\t{}\n", clean(name), clean(reason))
}

/// Append `line` with a single write (see the crate docs on the log).
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_log_names_without_tabs() {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert!(names.iter().all(|n| !n.contains(char::is_whitespace)));
        assert_eq!(Kind::OptionalModel.to_string(), "optional-model");
    }

    #[test]
    fn a_log_line_is_three_tab_separated_fields() {
        let line = log_line(
            Kind::Tool,
            "audio/sox\ttones",
            "sox is not installed\n(scripts/install-deps)\r",
        );
        assert_eq!(
            line,
            "tool\taudio/sox tones\tsox is not installed (scripts/install-deps) \n"
        );
        assert_eq!(line.trim_end_matches('\n').split('\t').count(), 3);
    }

    #[test]
    fn the_name_is_the_binary_without_its_hash_and_the_test() {
        assert_eq!(
            qualified_name("llm-0123456789abcdef", Some("answers_42")),
            "llm/answers_42"
        );
        assert_eq!(
            qualified_name(
                "assist_models-fedcba9876543210",
                Some("simd::tests::avx2_softmax")
            ),
            "assist_models/simd::tests::avx2_softmax"
        );
        // A bench without the harness runs on the main thread.
        assert_eq!(
            qualified_name("query_embed-0123456789abcdef", Some("main")),
            "query_embed"
        );
        assert_eq!(qualified_name("query_embed", None), "query_embed");
        // Not a cargo hash: kept.
        assert_eq!(without_hash("device-sdk"), "device-sdk");
        assert_eq!(without_hash("x-0123456789abcdeg"), "x-0123456789abcdeg");
    }

    #[test]
    fn libtest_names_the_test_thread_after_the_test() {
        assert_eq!(
            std::thread::current().name(),
            Some("tests::libtest_names_the_test_thread_after_the_test")
        );
    }

    #[test]
    fn require_models_setting() {
        let v = |s: &str| require_setting(Some(OsStr::new(s)));
        assert_eq!(v("1"), Some(true));
        assert_eq!(v("true"), Some(true));
        assert_eq!(v("0"), Some(false));
        assert_eq!(v(" false "), Some(false));
        assert_eq!(v(""), None);
        assert_eq!(v("maybe"), None);
        assert_eq!(require_setting(None), None);
    }

    #[test]
    fn cache_dirs_follow_the_model_dir_then_xdg_and_home() {
        let s = |v: &str| Some(OsString::from(v));
        assert_eq!(cache_dirs(s("/m"), s("/x"), s("/h")), [PathBuf::from("/m")]);
        assert_eq!(
            cache_dirs(s(""), s("/x"), s("/h")),
            [
                PathBuf::from("/x/assist/models"),
                PathBuf::from("/h/.cache/assist/models")
            ]
        );
        assert_eq!(
            cache_dirs(None, s("/h/.cache"), s("/h")),
            [PathBuf::from("/h/.cache/assist/models")]
        );
        assert_eq!(
            cache_dirs(None, None, s("/h")),
            [PathBuf::from("/h/.cache/assist/models")]
        );
        assert!(cache_dirs(None, None, None).is_empty());
    }

    #[test]
    fn a_cache_counts_as_filled_once_a_model_is_ready() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("models");
        let missing = tmp.path().join("nowhere");
        assert!(ready_models(&root).is_empty());
        assert_eq!(filled_cache(&[missing.clone(), root.clone()]), None);

        // Being fetched (no ready.json yet), a stray file, the wheel store.
        std::fs::create_dir_all(root.join("whisper-base")).unwrap();
        std::fs::create_dir_all(root.join("packages")).unwrap();
        std::fs::write(root.join("ready.json"), "{}").unwrap();
        assert_eq!(filled_cache(std::slice::from_ref(&root)), None);

        for id in ["whisper-tiny-en", "multilingual-e5-small"] {
            std::fs::create_dir_all(root.join(id)).unwrap();
            std::fs::write(root.join(id).join("ready.json"), "{}").unwrap();
        }
        assert_eq!(
            ready_models(&root),
            ["multilingual-e5-small", "whisper-tiny-en"]
        );
        let why = filled_cache(&[missing, root.clone()]).unwrap();
        assert!(why.contains(&root.display().to_string()), "{why}");
        assert!(
            why.ends_with("(multilingual-e5-small, whisper-tiny-en)"),
            "{why}"
        );
    }

    #[test]
    fn parallel_appends_keep_every_line_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("skips.log");
        let (threads, lines) = (8, 200);
        std::thread::scope(|s| {
            for t in 0..threads {
                let log = &log;
                s.spawn(move || {
                    for i in 0..lines {
                        let reason = format!("thread {t} line {i} {}", "x".repeat(300));
                        append_line(log, &log_line(Kind::Tool, "bin/test", &reason)).unwrap();
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&log).unwrap();
        let mut seen: Vec<&str> = text.lines().collect();
        assert_eq!(seen.len(), threads * lines);
        for line in &seen {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 3, "{line}");
            assert_eq!(fields[..2], ["tool", "bin/test"]);
            assert!(fields[2].starts_with("thread ") && fields[2].ends_with('x'));
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), threads * lines);
    }
}
