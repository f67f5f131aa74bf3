//! Integration tests of the model store, without network or real pip.
//!
//! Each test builds small wheels (zip files) in a "fake index" directory and a
//! fake `python3` shell script that understands `-m pip download ... -d DIR
//! NAME==VER`: it logs the call, fails for the specs listed in a file (an
//! unreachable index or an interruption), and otherwise copies the wheel from
//! the fake index into DIR through `$TMPDIR`, as pip does.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use assist_models::Error;
use assist_models::store::{
    FetchAction, FileSpec, Layout, Manifest, ModelSpec, ModelState, ModelStore, PackageSpec,
    PartSpec, ProgressMode, Source, StoreOptions, detect_layout,
};
use assist_testkit::{Kind, skip};
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

const PLATFORM: &str = "manylinux2014_x86_64";

// ---------------------------------------------------------------- fixture --

/// A temp directory with a cache root, a fake index, a fake python and a
/// manifest of three small models:
///
/// - `alpha` (role `asr`): `model.bin` = part in `alpha-part1` (stored) +
///   part in `alpha-part2` (deflated); `tokenizer.json` from `alpha-part2`.
/// - `beta` (role `llm`): `model.gguf` = `beta-part1` (a platform wheel) +
///   `beta-part2`; `tokenizer.json` from `beta-part2`.
/// - `gamma` (role `embedder-en`, optional): one wheel, HF files.
struct Fixture {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    index: PathBuf,
    python: PathBuf,
    log: PathBuf,
    fail: PathBuf,
    manifest: Manifest,
    /// Expected bytes of each assembled file, by `model/file`.
    expected: HashMap<String, Vec<u8>>,
}

struct WheelDef {
    name: &'static str,
    version: &'static str,
    platform: Option<&'static str>,
    /// (entry path, content, deflate?)
    entries: Vec<(String, Vec<u8>, bool)>,
}

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn wheel_file_name(name: &str, version: &str, platform: Option<&str>) -> String {
    let dist = name.replace(['-', '.'], "_");
    match platform {
        Some(p) => format!("{dist}-{version}-py3-none-manylinux_2_17_x86_64.{p}.whl"),
        None => format!("{dist}-{version}-py3-none-any.whl"),
    }
}

fn build_wheel(path: &Path, def: &WheelDef) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let dist = def.name.replace('-', "_");
    zip.start_file(format!("{dist}/__init__.py"), SimpleFileOptions::default())
        .unwrap();
    zip.write_all(b"").unwrap();
    for (entry, content, deflate) in &def.entries {
        let method = if *deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        zip.start_file(
            entry.as_str(),
            SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        zip.write_all(content).unwrap();
    }
    zip.start_file(
        format!("{dist}-{}.dist-info/METADATA", def.version),
        SimpleFileOptions::default(),
    )
    .unwrap();
    zip.write_all(format!("Name: {}\nVersion: {}\n", def.name, def.version).as_bytes())
        .unwrap();
    zip.finish().unwrap();
}

/// The fake `python3`; `@LOG@`, `@FAIL@` and `@INDEX@` are filled in per test.
const FAKE_PYTHON: &str = include_str!("fixtures/fake-python.sh");

/// Write an executable script and wait until it can be executed.
///
/// Another test thread forking while the file was open for writing can make
/// `exec` fail with ETXTBSY for a moment; probing until it works avoids that.
fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    for _ in 0..200 {
        match std::process::Command::new(path).arg("--probe").status() {
            Ok(_) => return,
            Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("cannot run {}: {e}", path.display()),
        }
    }
    panic!("{} stayed busy", path.display());
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let root = base.join("cache");
        let index = base.join("index");
        std::fs::create_dir_all(&index).unwrap();
        let log = base.join("pip-calls.log");
        let fail = base.join("fail.txt");
        let python = base.join("python3");
        let script = FAKE_PYTHON
            .replace("@LOG@", &log.display().to_string())
            .replace("@FAIL@", &fail.display().to_string())
            .replace("@INDEX@", &index.display().to_string());
        write_script(&python, &script);

        let a1 = bytes(1, 70_000);
        let a2 = bytes(2, 50_001);
        let a_tok = br#"{"model": "alpha tokenizer"}"#.repeat(100);
        let b1 = bytes(3, 40_000);
        let b2 = bytes(4, 33_333);
        let b_tok = br#"{"model": "beta tokenizer"}"#.to_vec();
        let g_st = bytes(5, 20_000);
        let g_cfg = br#"{"hidden_size": 8}"#.to_vec();
        let g_tok = br#"{"model": "gamma"}"#.to_vec();

        let wheels = vec![
            WheelDef {
                name: "alpha-part1",
                version: "1.0.0",
                platform: None,
                entries: vec![("alpha_part1/data/model.bin.part1".into(), a1.clone(), false)],
            },
            WheelDef {
                name: "alpha-part2",
                version: "1.0.0",
                platform: None,
                entries: vec![
                    ("alpha_part2/data/model.bin.part2".into(), a2.clone(), true),
                    (
                        "alpha_part2/data/tokenizer.json".into(),
                        a_tok.clone(),
                        true,
                    ),
                ],
            },
            WheelDef {
                name: "beta-part1",
                version: "0.2.0",
                platform: Some(PLATFORM),
                entries: vec![("beta_part1/data/part01.bin".into(), b1.clone(), true)],
            },
            WheelDef {
                name: "beta-part2",
                version: "0.2.0",
                platform: None,
                entries: vec![
                    ("beta_part2/data/part02.bin".into(), b2.clone(), false),
                    (
                        "beta_part2/data/tokenizer.json".into(),
                        b_tok.clone(),
                        false,
                    ),
                ],
            },
            WheelDef {
                name: "gamma",
                version: "0.1.0",
                platform: None,
                entries: vec![
                    ("gamma/model/model.safetensors".into(), g_st.clone(), true),
                    ("gamma/model/config.json".into(), g_cfg.clone(), true),
                    ("gamma/model/tokenizer.json".into(), g_tok.clone(), true),
                ],
            },
        ];
        let mut packages: HashMap<&str, PackageSpec> = HashMap::new();
        for def in &wheels {
            let path = index.join(wheel_file_name(def.name, def.version, def.platform));
            build_wheel(&path, def);
            let data = std::fs::read(&path).unwrap();
            packages.insert(
                def.name,
                PackageSpec {
                    name: def.name.into(),
                    version: def.version.into(),
                    sha256: sha256(&data),
                    size: data.len() as u64,
                    platform: def.platform.map(str::to_string),
                },
            );
        }
        let part = |package: &str, path: &str| PartSpec {
            package: package.into(),
            path: path.into(),
        };
        let file = |name: &str, content: &[u8], parts: Vec<PartSpec>| FileSpec {
            name: name.into(),
            size: content.len() as u64,
            sha256: sha256(content),
            parts,
        };
        let model =
            |id: &str, role: &str, format: &str, optional: bool, pkgs: &[&str], files| ModelSpec {
                id: id.into(),
                role: role.into(),
                description: format!("test model {id}"),
                format: format.into(),
                license: "MIT".into(),
                optional,
                packages: pkgs.iter().map(|p| packages[p].clone()).collect(),
                files,
            };
        let a_model = [a1.as_slice(), a2.as_slice()].concat();
        let b_model = [b1.as_slice(), b2.as_slice()].concat();
        let manifest = Manifest {
            models: vec![
                model(
                    "alpha",
                    "asr",
                    "ct2-whisper",
                    false,
                    &["alpha-part1", "alpha-part2"],
                    vec![
                        file(
                            "model.bin",
                            &a_model,
                            vec![
                                part("alpha-part1", "alpha_part1/data/model.bin.part1"),
                                part("alpha-part2", "alpha_part2/data/model.bin.part2"),
                            ],
                        ),
                        file(
                            "tokenizer.json",
                            &a_tok,
                            vec![part("alpha-part2", "alpha_part2/data/tokenizer.json")],
                        ),
                    ],
                ),
                model(
                    "beta",
                    "llm",
                    "gguf",
                    false,
                    &["beta-part1", "beta-part2"],
                    vec![
                        file(
                            "model.gguf",
                            &b_model,
                            vec![
                                part("beta-part1", "beta_part1/data/part01.bin"),
                                part("beta-part2", "beta_part2/data/part02.bin"),
                            ],
                        ),
                        file(
                            "tokenizer.json",
                            &b_tok,
                            vec![part("beta-part2", "beta_part2/data/tokenizer.json")],
                        ),
                    ],
                ),
                model(
                    "gamma",
                    "embedder-en",
                    "hf-safetensors",
                    true,
                    &["gamma"],
                    vec![
                        file(
                            "model.safetensors",
                            &g_st,
                            vec![part("gamma", "gamma/model/model.safetensors")],
                        ),
                        file(
                            "config.json",
                            &g_cfg,
                            vec![part("gamma", "gamma/model/config.json")],
                        ),
                        file(
                            "tokenizer.json",
                            &g_tok,
                            vec![part("gamma", "gamma/model/tokenizer.json")],
                        ),
                    ],
                ),
            ],
        };
        manifest.validate().unwrap();
        let expected = HashMap::from([
            ("alpha/model.bin".to_string(), a_model),
            ("alpha/tokenizer.json".to_string(), a_tok),
            ("beta/model.gguf".to_string(), b_model),
            ("beta/tokenizer.json".to_string(), b_tok),
            ("gamma/model.safetensors".to_string(), g_st),
            ("gamma/config.json".to_string(), g_cfg),
            ("gamma/tokenizer.json".to_string(), g_tok),
        ]);
        Fixture {
            _tmp: tmp,
            base,
            root,
            index,
            python,
            log,
            fail,
            manifest,
            expected,
        }
    }

    fn opts(&self) -> StoreOptions {
        StoreOptions {
            python: self.python.display().to_string(),
            progress: ProgressMode::Silent,
            registered: Vec::new(),
        }
    }

    fn store(&self) -> ModelStore {
        self.store_with(self.manifest.clone(), self.opts())
    }

    fn store_with(&self, manifest: Manifest, opts: StoreOptions) -> ModelStore {
        ModelStore::with_manifest(&self.root, manifest, opts).unwrap()
    }

    /// Every pip call so far, one line each.
    fn pip_calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Number of pip calls for this package spec.
    fn calls_for(&self, spec: &str) -> usize {
        self.pip_calls()
            .iter()
            .filter(|l| l.split(' ').any(|w| w == spec))
            .count()
    }

    fn fail_for(&self, specs: &[&str]) {
        std::fs::write(&self.fail, specs.join("\n") + "\n").unwrap();
    }

    fn index_wheel(&self, name: &str, version: &str, platform: Option<&str>) -> PathBuf {
        self.index.join(wheel_file_name(name, version, platform))
    }

    fn quarantine_names(&self) -> Vec<String> {
        dir_names(&self.root.join("quarantine"))
    }

    fn state(&self, store: &ModelStore, id: &str) -> ModelState {
        store
            .list()
            .into_iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("{id} not listed"))
            .state
    }

    fn assert_files_exact(&self, id: &str) {
        let dir = self.root.join(id);
        for (key, want) in &self.expected {
            if let Some(name) = key.strip_prefix(&format!("{id}/")) {
                let got = std::fs::read(dir.join(name)).unwrap();
                assert!(got == *want, "{key} differs from the expected bytes");
            }
        }
    }
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ------------------------------------------------------------------ tests --

#[test]
fn fresh_fetch_makes_default_models_ready_byte_exact() {
    let fx = Fixture::new();
    let store = fx.store();
    let out = store.fetch(&[]).unwrap();
    let ids: Vec<&str> = out.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(
        ids,
        ["alpha", "beta"],
        "optional gamma is not fetched by default"
    );
    assert!(out.iter().all(|o| o.action == FetchAction::Fetched));
    assert_eq!(out[0].path, fx.root.join("alpha"));
    assert_eq!(out[0].bytes, (70_000 + 50_001 + 2800) as u64);
    assert!(out[0].downloaded_bytes > 0);
    fx.assert_files_exact("alpha");
    fx.assert_files_exact("beta");

    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.root.join("alpha/ready.json")).unwrap()).unwrap();
    assert_eq!(record["id"], "alpha");
    assert_eq!(record["files"][0]["name"], "model.bin");
    assert_eq!(
        record["files"][0]["sha256"],
        fx.manifest.models[0].files[0].sha256.as_str()
    );
    assert_eq!(record["files"][0]["size"], 120_001);
    assert!(record["ready_at"].is_string());

    // pip was called once per wheel, with the flags it needs and TMPDIR in staging.
    let calls = fx.pip_calls();
    assert_eq!(calls.len(), 4, "{calls:#?}");
    for call in &calls {
        assert!(
            call.starts_with("-m pip download --no-deps --only-binary=:all: --no-input"),
            "{call}"
        );
        assert!(call.contains("--disable-pip-version-check"), "{call}");
        assert!(
            call.contains(&format!("-d {}", fx.root.join("packages").display())),
            "{call}"
        );
        assert!(
            call.contains(&format!(
                "TMPDIR={}",
                fx.root.join("staging/pip-tmp-").display()
            )),
            "{call}"
        );
    }
    let beta1 = calls
        .iter()
        .find(|c| c.contains("beta-part1==0.2.0"))
        .unwrap();
    assert!(beta1.contains(&format!("--platform {PLATFORM}")), "{beta1}");
    assert!(
        !calls
            .iter()
            .find(|c| c.contains("alpha-part1"))
            .unwrap()
            .contains("--platform")
    );

    // Nothing left behind in staging or quarantine.
    assert!(dir_names(&fx.root.join("staging")).is_empty());
    assert!(fx.quarantine_names().is_empty());
    assert_eq!(store.ready_path("asr").unwrap(), fx.root.join("alpha"));
    assert_eq!(store.ready_path("beta").unwrap(), fx.root.join("beta"));
}

#[test]
fn second_fetch_is_a_no_op_without_pip() {
    let fx = Fixture::new();
    let store = fx.store();
    store.fetch(&strings(&["asr"])).unwrap();
    let calls = fx.pip_calls().len();
    let out = store.fetch(&strings(&["asr", "alpha"])).unwrap();
    assert_eq!(out.len(), 1, "an id and its role select the model once");
    assert_eq!(out[0].action, FetchAction::AlreadyReady);
    assert_eq!(out[0].downloaded_bytes, 0);
    assert_eq!(fx.pip_calls().len(), calls, "no pip call for a ready model");

    // Even with pip now unusable.
    std::fs::remove_file(&fx.python).unwrap();
    let out = store.fetch(&strings(&["alpha"])).unwrap();
    assert_eq!(out[0].action, FetchAction::AlreadyReady);
}

#[test]
fn interrupted_fetch_resumes_with_only_the_missing_wheel() {
    let fx = Fixture::new();
    let store = fx.store();
    fx.fail_for(&["alpha-part2==1.0.0"]);
    let err = store.fetch(&strings(&["alpha"])).unwrap_err();
    match &err {
        Error::Download { package, detail } => {
            assert_eq!(package, "alpha-part2==1.0.0");
            assert!(detail.contains("Could not find a version"), "{detail}");
            assert!(detail.contains("PIP_INDEX_URL"), "{detail}");
        }
        other => panic!("expected Download, got {other:?}"),
    }
    assert!(err.to_string().contains("alpha-part2==1.0.0"));
    assert!(!fx.root.join("alpha").exists(), "nothing is ready");
    assert_eq!(fx.state(&store, "alpha"), ModelState::Partial);
    assert!(matches!(
        store.ready_path("asr"),
        Err(Error::ModelMissing { .. })
    ));
    assert!(
        dir_names(&fx.root.join("staging")).is_empty(),
        "pip temp dirs removed"
    );

    fx.fail_for(&[]);
    let out = store.fetch(&strings(&["alpha"])).unwrap();
    assert_eq!(out[0].action, FetchAction::Fetched);
    assert_eq!(
        fx.calls_for("alpha-part1==1.0.0"),
        1,
        "the wheel already there is not downloaded again"
    );
    assert_eq!(fx.calls_for("alpha-part2==1.0.0"), 2);
    assert_eq!(
        out[0].downloaded_bytes,
        fx.manifest.models[0].packages[1].size
    );
    fx.assert_files_exact("alpha");
    assert_eq!(fx.state(&store, "alpha"), ModelState::Ready);
}

#[test]
fn corrupt_download_is_quarantined_and_nothing_is_ready() {
    let fx = Fixture::new();
    let store = fx.store();
    // The index serves different bytes than the manifest pins.
    let good = fx.index_wheel("beta-part2", "0.2.0", None);
    let original = std::fs::read(&good).unwrap();
    let mut tampered = original.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    std::fs::write(&good, &tampered).unwrap();

    let err = store.fetch(&strings(&["llm"])).unwrap_err();
    let Error::ChecksumMismatch {
        what,
        expected,
        actual,
        quarantined,
    } = &err
    else {
        panic!("expected ChecksumMismatch, got {err:?}");
    };
    assert!(what.contains("beta-part2==0.2.0"), "{what}");
    assert_eq!(expected, &fx.manifest.models[1].packages[1].sha256);
    assert_eq!(actual, &sha256(&tampered));
    assert!(quarantined.starts_with(fx.root.join("quarantine")));
    assert_eq!(std::fs::read(quarantined).unwrap(), tampered);
    assert!(!fx.root.join("beta").exists());
    assert!(
        !dir_names(&fx.root.join("packages"))
            .iter()
            .any(|n| n.starts_with("beta_part2")),
        "the bad wheel is not left in packages/"
    );

    // Once the index is right again, the next fetch downloads it again.
    std::fs::write(&good, &original).unwrap();
    store.fetch(&strings(&["llm"])).unwrap();
    assert_eq!(fx.calls_for("beta-part2==0.2.0"), 2);
    assert_eq!(fx.calls_for("beta-part1==0.2.0"), 1);
    fx.assert_files_exact("beta");
}

#[test]
fn corrupt_wheel_already_in_packages_is_replaced() {
    let fx = Fixture::new();
    let store = fx.store();
    let packages = fx.root.join("packages");
    std::fs::create_dir_all(&packages).unwrap();
    let name = wheel_file_name("alpha-part1", "1.0.0", None);
    std::fs::write(packages.join(&name), b"truncated download").unwrap();
    assert_eq!(
        fx.state(&store, "alpha"),
        ModelState::Missing,
        "wrong size is not a download"
    );

    store.fetch(&strings(&["alpha"])).unwrap();
    assert_eq!(fx.calls_for("alpha-part1==1.0.0"), 1);
    assert!(
        fx.quarantine_names().iter().any(|n| n.ends_with(&name)),
        "{:?}",
        fx.quarantine_names()
    );
    fx.assert_files_exact("alpha");
}

#[test]
fn assembled_checksum_mismatch_quarantines_file_and_wheels() {
    let fx = Fixture::new();
    let mut manifest = fx.manifest.clone();
    manifest.models[1].files[0].sha256 = sha256(b"something else");
    let store = fx.store_with(manifest, fx.opts());

    let err = store.fetch(&strings(&["beta"])).unwrap_err();
    let Error::ChecksumMismatch {
        what, quarantined, ..
    } = &err
    else {
        panic!("expected ChecksumMismatch, got {err:?}");
    };
    assert!(
        what.contains("model.gguf") && what.contains("beta"),
        "{what}"
    );
    assert_eq!(
        std::fs::read(quarantined).unwrap(),
        fx.expected["beta/model.gguf"]
    );
    assert!(!fx.root.join("beta").exists(), "nothing is ready");
    assert!(
        dir_names(&fx.root.join("staging")).is_empty(),
        "staging removed"
    );
    let q = fx.quarantine_names();
    assert!(q.iter().any(|n| n.ends_with("beta-model.gguf")), "{q:?}");
    assert!(q.iter().any(|n| n.contains("beta_part1-0.2.0")), "{q:?}");
    assert!(q.iter().any(|n| n.contains("beta_part2-0.2.0")), "{q:?}");
    assert_eq!(fx.state(&store, "beta"), ModelState::Missing);

    // The wheels that fed the bad file are downloaded again next time.
    assert!(store.fetch(&strings(&["beta"])).is_err());
    assert_eq!(fx.calls_for("beta-part1==0.2.0"), 2);
    assert_eq!(fx.calls_for("beta-part2==0.2.0"), 2);
}

#[test]
fn verify_detects_a_file_modified_after_ready() {
    let fx = Fixture::new();
    let store = fx.store();
    store.fetch(&[]).unwrap();
    let model_bin = fx.root.join("alpha/model.bin");
    let mut data = std::fs::read(&model_bin).unwrap();
    data[1000] ^= 1; // same size: only a rehash can see it
    std::fs::write(&model_bin, &data).unwrap();
    assert_eq!(
        fx.state(&store, "alpha"),
        ModelState::Ready,
        "list does not hash"
    );

    let report = store.verify(&[]).unwrap();
    assert_eq!(report.len(), 3);
    let alpha = report.iter().find(|s| s.id == "alpha").unwrap();
    match &alpha.state {
        ModelState::Corrupt { reason } => assert!(reason.contains("model.bin"), "{reason}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        report.iter().find(|s| s.id == "beta").unwrap().state,
        ModelState::Ready
    );
    assert_eq!(
        report.iter().find(|s| s.id == "gamma").unwrap().state,
        ModelState::Missing
    );
    assert!(!fx.root.join("alpha").exists(), "moved aside");
    assert!(fx.quarantine_names().iter().any(|n| n.ends_with("-alpha")));
    assert_eq!(
        fx.state(&store, "alpha"),
        ModelState::Partial,
        "wheels are still there"
    );

    // The next fetch reassembles from the downloaded wheels, without pip.
    let calls = fx.pip_calls().len();
    store.fetch(&strings(&["alpha"])).unwrap();
    assert_eq!(fx.pip_calls().len(), calls);
    fx.assert_files_exact("alpha");
    assert_eq!(
        store.verify(&strings(&["asr"])).unwrap()[0].state,
        ModelState::Ready
    );
}

#[test]
fn list_reports_missing_partial_ready_and_corrupt() {
    let fx = Fixture::new();
    let store = fx.store();
    let rows = store.list();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .all(|r| r.state == ModelState::Missing && r.source == Source::Manifest)
    );
    assert!(rows[2].optional);
    assert_eq!(rows[0].path, fx.root.join("alpha"));
    assert_eq!(rows[0].size_bytes, 120_001 + 2800);

    fx.fail_for(&["beta-part2==0.2.0"]);
    store.fetch(&strings(&["alpha"])).unwrap();
    assert!(store.fetch(&strings(&["beta"])).is_err());
    assert_eq!(fx.state(&store, "alpha"), ModelState::Ready);
    assert_eq!(fx.state(&store, "beta"), ModelState::Partial);
    assert_eq!(fx.state(&store, "gamma"), ModelState::Missing);

    // A file that lost bytes is Corrupt without any hashing, and not usable.
    let tok = fx.root.join("alpha/tokenizer.json");
    std::fs::write(&tok, b"{}").unwrap();
    match fx.state(&store, "alpha") {
        ModelState::Corrupt { reason } => {
            assert!(reason.contains("tokenizer.json has 2 bytes"), "{reason}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let err = store.ready_path("alpha").unwrap_err();
    assert!(matches!(err, Error::ModelMissing { .. }), "{err:?}");
    // A missing file too; and fetch repairs it.
    std::fs::remove_file(&tok).unwrap();
    assert!(matches!(
        fx.state(&store, "alpha"),
        ModelState::Corrupt { .. }
    ));
    let out = store.fetch(&strings(&["alpha"])).unwrap();
    assert_eq!(out[0].action, FetchAction::Fetched);
    assert_eq!(fx.state(&store, "alpha"), ModelState::Ready);
}

#[test]
fn ready_path_names_the_fetch_command() {
    let fx = Fixture::new();
    let store = fx.store();
    for name in ["llm", "beta"] {
        let err = store.ready_path(name).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("assist models fetch --only llm"), "{msg}");
        assert!(matches!(err, Error::ModelMissing { ref id, .. } if id == "beta"));
    }
    assert!(matches!(
        store.ready_path("nope"),
        Err(Error::UnknownModel(_))
    ));
    assert!(matches!(
        store.fetch(&strings(&["nope"])),
        Err(Error::UnknownModel(_))
    ));
}

#[test]
fn registered_directories_layouts() {
    let fx = Fixture::new();
    let make = |name: &str, files: &[&str]| {
        let dir = fx.base.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::write(dir.join(f), b"{}").unwrap();
        }
        dir
    };
    let hf = make(
        "bge-m3",
        &[
            "config.json",
            "tokenizer.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ],
    );
    let gguf = make(
        "qwen-7b",
        &[
            "qwen2.5-7b-instruct-q4_k_m.gguf",
            "tokenizer.json",
            "README.md",
        ],
    );
    let hf_missing = make("half-hf", &["config.json", "model.safetensors"]);
    let gguf_missing = make("half-gguf", &["model.gguf"]);
    let two_gguf = make("two-gguf", &["a.gguf", "b.gguf", "tokenizer.json"]);
    let empty = make("empty", &[]);

    assert_eq!(detect_layout(&hf).unwrap(), Layout::HfSafetensors);
    assert_eq!(detect_layout(&gguf).unwrap(), Layout::Gguf);
    let reason = |dir: &Path| match detect_layout(dir) {
        Err(Error::BadLayout { reason, dir: d }) => {
            assert_eq!(d, dir);
            reason
        }
        other => panic!("expected BadLayout for {}, got {other:?}", dir.display()),
    };
    let r = reason(&hf_missing);
    assert!(
        r.contains("tokenizer.json") && !r.contains("config.json"),
        "{r}"
    );
    assert!(reason(&gguf_missing).contains("tokenizer.json"));
    assert!(reason(&two_gguf).contains("exactly one *.gguf"));
    let r = reason(&empty);
    assert!(
        r.contains("config.json") && r.contains("*.safetensors") && r.contains("*.gguf"),
        "{r}"
    );
    assert!(reason(&fx.base.join("does-not-exist")).contains("does not exist"));
}

#[test]
fn registered_directory_wins_for_its_role() {
    let fx = Fixture::new();
    let gguf = fx.base.join("my-llm");
    std::fs::create_dir_all(&gguf).unwrap();
    std::fs::write(gguf.join("model.gguf"), b"GGUF").unwrap();
    std::fs::write(gguf.join("tokenizer.json"), b"{}").unwrap();
    let broken = fx.base.join("my-embedder");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("config.json"), b"{}").unwrap();

    let mut opts = fx.opts();
    opts.registered = vec![
        ("llm".into(), gguf.clone()),
        ("embedder".into(), broken.clone()),
    ];
    let store = fx.store_with(fx.manifest.clone(), opts);
    store.fetch(&[]).unwrap();
    assert!(
        fx.root.join("beta/ready.json").exists(),
        "the manifest model is still fetched"
    );

    assert_eq!(store.ready_path("llm").unwrap(), gguf);
    assert_eq!(store.ready_path("my-llm").unwrap(), gguf);
    assert_eq!(
        store.ready_path("beta").unwrap(),
        fx.root.join("beta"),
        "by id: the manifest model"
    );
    assert!(matches!(
        store.ready_path("embedder"),
        Err(Error::BadLayout { .. })
    ));

    let rows = store.list();
    assert_eq!(rows.len(), 5);
    let mine = rows.iter().find(|r| r.id == "my-llm").unwrap();
    assert_eq!(mine.source, Source::Registered);
    assert_eq!(mine.role, "llm");
    assert_eq!(mine.format, "gguf");
    assert_eq!(
        mine.state,
        ModelState::Registered {
            layout: Layout::Gguf
        }
    );
    assert_eq!(mine.size_bytes, 6);
    let bad = rows.iter().find(|r| r.id == "my-embedder").unwrap();
    match &bad.state {
        ModelState::Invalid { reason } => assert!(reason.contains("tokenizer.json"), "{reason}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let verified = store.verify(&strings(&["llm"])).unwrap();
    assert_eq!(
        verified.len(),
        2,
        "the manifest llm and the registered one: {verified:#?}"
    );
}

#[test]
fn missing_python_is_a_clear_error() {
    let fx = Fixture::new();
    let mut opts = fx.opts();
    opts.python = fx.base.join("no-such-python3").display().to_string();
    let store = fx.store_with(fx.manifest.clone(), opts);
    let err = store.fetch(&strings(&["alpha"])).unwrap_err();
    assert!(matches!(err, Error::Python { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("python3 with pip is needed to fetch models"),
        "{msg}"
    );
    assert!(msg.contains("no-such-python3"), "{msg}");
    assert!(!fx.root.join("alpha").exists());
}

#[test]
fn python_without_pip_is_a_clear_error() {
    let fx = Fixture::new();
    let python = fx.base.join("python-without-pip");
    write_script(
        &python,
        "#!/bin/sh\n[ \"$1\" = --probe ] && exit 0\necho \"$0: No module named pip\" >&2\nexit 1\n",
    );
    let mut opts = fx.opts();
    opts.python = python.display().to_string();
    let err = fx
        .store_with(fx.manifest.clone(), opts)
        .fetch(&[])
        .unwrap_err();
    assert!(
        matches!(err, Error::Python { ref reason, .. } if reason.contains("No module named pip")),
        "{err:?}"
    );
}

#[test]
fn not_enough_disk_space_is_disk_full() {
    let fx = Fixture::new();
    let mut manifest = fx.manifest.clone();
    manifest.models[0].files[0].size = 1 << 60; // an exabyte
    let store = fx.store_with(manifest, fx.opts());
    let err = store.fetch(&strings(&["alpha"])).unwrap_err();
    match err {
        Error::DiskFull {
            needed, available, ..
        } => {
            assert!(needed > 1 << 60);
            assert!(available < needed);
        }
        other => panic!("expected DiskFull, got {other:?}"),
    }
    assert!(!fx.root.join("alpha").exists());
    assert!(dir_names(&fx.root.join("staging")).is_empty());
}

#[test]
fn stale_staging_is_cleared_and_optional_models_fetch_by_role() {
    let fx = Fixture::new();
    let stale = fx.root.join("staging/gamma-0123456789abcdef");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("model.safetensors"), b"half written").unwrap();
    let out = fx.store().fetch(&strings(&["embedder-en"])).unwrap();
    assert_eq!(out[0].id, "gamma");
    assert!(!stale.exists());
    assert!(dir_names(&fx.root.join("staging")).is_empty());
    fx.assert_files_exact("gamma");
    assert!(!fx.root.join("alpha").exists(), "only what was asked for");
}

#[test]
fn concurrent_fetch_waits_for_the_lock() {
    let fx = Fixture::new();
    std::fs::create_dir_all(&fx.root).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(fx.root.join(".fetch.lock"))
        .unwrap();
    lock.lock().unwrap();

    let store = fx.store();
    let done = Arc::new(AtomicBool::new(false));
    let worker = {
        let done = done.clone();
        std::thread::spawn(move || {
            let out = store.fetch(&strings(&["alpha"]));
            done.store(true, Ordering::SeqCst);
            out
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !done.load(Ordering::SeqCst),
        "fetch must wait while another holds the lock"
    );
    assert!(fx.pip_calls().is_empty());
    lock.unlock().unwrap();
    let out = worker.join().unwrap().unwrap();
    assert_eq!(out[0].action, FetchAction::Fetched);
}

#[test]
fn builtin_store_lists_every_manifest_model_as_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ModelStore::new(tmp.path(), StoreOptions::default()).unwrap();
    let rows = store.list();
    let roles: Vec<&str> = rows.iter().map(|r| r.role.as_str()).collect();
    assert_eq!(
        roles,
        [
            "asr",
            "asr-en",
            "llm",
            "llm-small",
            "embedder",
            "embedder-en",
            "vad"
        ]
    );
    assert!(rows.iter().all(|r| r.state == ModelState::Missing));
    let err = store.ready_path("asr").unwrap_err().to_string();
    assert!(err.contains("assist models fetch --only asr"), "{err}");
    assert!(
        !tmp.path().join("packages").exists(),
        "list creates nothing"
    );
}

/// Assembles the real whisper-base from the real wheels (about 150 MB) when
/// `ASSIST_REAL_MODEL_PACKAGES` names a directory holding them; pip must not
/// be needed since the wheels are already there.
#[test]
fn real_packages_assemble_whisper_base() {
    let Some(src) = std::env::var_os("ASSIST_REAL_MODEL_PACKAGES").map(PathBuf::from) else {
        skip(
            Kind::Env,
            "set ASSIST_REAL_MODEL_PACKAGES to a directory with the real wheels",
        );
        return;
    };
    if !src.is_dir() {
        skip(
            Kind::Env,
            format!(
                "ASSIST_REAL_MODEL_PACKAGES={} is not a directory",
                src.display()
            ),
        );
        return;
    }
    let manifest = Manifest::builtin().unwrap();
    let spec = manifest.get("whisper-base").unwrap().clone();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cache");
    let packages = root.join("packages");
    std::fs::create_dir_all(&packages).unwrap();
    for pkg in &spec.packages {
        let wheel = std::fs::read_dir(&src)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| pkg.matches_wheel(&p.file_name().unwrap().to_string_lossy()));
        let Some(wheel) = wheel else {
            skip(
                Kind::Model,
                format!("no wheel for {} in {}", pkg.requirement(), src.display()),
            );
            return;
        };
        let dest = packages.join(wheel.file_name().unwrap());
        if std::fs::hard_link(&wheel, &dest).is_err() {
            std::fs::copy(&wheel, &dest).unwrap();
        }
    }
    let called = tmp.path().join("python-was-called");
    let python = tmp.path().join("python3");
    write_script(
        &python,
        &format!(
            "#!/bin/sh\n[ \"$1\" = --probe ] && exit 0\ntouch '{}'\necho 'pip must not be called' >&2\nexit 1\n",
            called.display()
        ),
    );
    let opts = StoreOptions {
        python: python.display().to_string(),
        progress: ProgressMode::Silent,
        registered: Vec::new(),
    };
    let store = ModelStore::new(&root, opts).unwrap();
    let out = store.fetch(&strings(&["whisper-base"])).unwrap();
    assert!(
        !called.exists(),
        "pip was called although the wheels were there"
    );
    assert_eq!(out[0].action, FetchAction::Fetched);
    assert_eq!(out[0].downloaded_bytes, 0);
    let model = root.join("whisper-base/model.bin");
    let data = std::fs::read(&model).unwrap();
    assert_eq!(data.len(), 145_217_607);
    assert_eq!(
        sha256(&data),
        "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
    );
    assert_eq!(store.ready_path("asr").unwrap(), root.join("whisper-base"));
    let verified = store.verify(&strings(&["asr"])).unwrap();
    assert_eq!(verified[0].state, ModelState::Ready);
}
