//! Import and export: CSV, JSON Lines, and Markdown with YAML front matter.
//!
//! Parsing never stops at the first bad record: every record is checked and
//! every problem is reported with its record number and line, so a trainer
//! can fix a whole file in one go. Callers import nothing from a file with
//! errors unless they explicitly skip invalid records.
//!
//! A file is read in two steps: a format's reader (`csv.rs`, `jsonl.rs`,
//! `markdown.rs`) turns the text into raw key/value records, each with its
//! line; `records.rs`, shared by all three, then checks ids and fields and
//! collects the errors. Each format's file also writes it. This file holds
//! the public types and the functions that pick the format.

mod csv;
mod jsonl;
mod markdown;
mod records;

use std::path::Path;

use serde::Serialize;

use crate::model::{Kind, LexiconContent, ScriptContent, Status};
use crate::validate::{FieldError, Limits};

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
    Markdown,
}

impl Format {
    /// From a file extension (`.csv`, `.jsonl`/`.ndjson`, `.md`/`.markdown`).
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "md" | "markdown" => Some(Format::Markdown),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "md" | "markdown" => Some(Format::Markdown),
            _ => None,
        }
    }
}

/// A record that parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<T> {
    /// 1-based record number in the file.
    pub record: usize,
    /// 1-based line where the record starts.
    pub line: usize,
    /// Caller-chosen stable id (for updates and duplicate detection), if given.
    pub id: Option<String>,
    pub content: T,
}

/// Everything wrong with one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordError {
    pub record: usize,
    pub line: usize,
    pub errors: Vec<FieldError>,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {} (line {}): ", self.record, self.line)?;
        let parts: Vec<String> = self.errors.iter().map(|e| e.to_string()).collect();
        f.write_str(&parts.join("; "))
    }
}

/// The outcome of parsing a whole file.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    pub records: Vec<Record<T>>,
    pub errors: Vec<RecordError>,
}

impl<T> Parsed<T> {
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Decode bytes as UTF-8, or say on which line the first bad byte is.
pub fn decode_utf8(bytes: &[u8]) -> Result<&str, RecordError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        RecordError {
            record: 0,
            line,
            errors: vec![FieldError::new(
                "file",
                format!(
                    "invalid UTF-8 at byte {} (save the file as UTF-8)",
                    e.valid_up_to()
                ),
            )],
        }
    })
}

/// Parse scripts from `text` in `format`.
pub fn parse_scripts(text: &str, format: Format, limits: &Limits) -> Parsed<ScriptContent> {
    let raws = match format {
        Format::Csv => csv::read(text),
        Format::Jsonl => jsonl::read(text),
        Format::Markdown => markdown::read(text),
    };
    records::finish(raws, |raw| records::script_from_raw(raw, limits))
}

/// Parse lexicon entries from `text` (CSV or JSON Lines).
pub fn parse_lexicon(text: &str, format: Format, limits: &Limits) -> Parsed<LexiconContent> {
    let raws = match format {
        Format::Csv => csv::read(text),
        Format::Jsonl => jsonl::read(text),
        Format::Markdown => {
            return Parsed {
                records: Vec::new(),
                errors: vec![RecordError {
                    record: 0,
                    line: 1,
                    errors: vec![FieldError::new(
                        "file",
                        "the risk lexicon is imported from CSV or JSON Lines, not Markdown",
                    )],
                }],
            };
        }
    };
    records::finish(raws, |raw| records::lexicon_from_raw(raw, limits))
}

/// One stored item to export.
#[derive(Debug, Clone, Serialize)]
pub struct ExportItem<'a, T: Serialize> {
    pub id: &'a str,
    pub status: Status,
    pub version: u32,
    #[serde(flatten)]
    pub content: &'a T,
}

/// Write scripts in `format`. Markdown writes one document after another,
/// which [`parse_scripts`] reads back.
pub fn export_scripts(
    items: &[ExportItem<'_, ScriptContent>],
    format: Format,
) -> Result<String, String> {
    match format {
        Format::Jsonl => jsonl::write(items),
        Format::Csv => csv::write_scripts(items),
        Format::Markdown => markdown::write_scripts(items),
    }
}

/// Write lexicon entries as CSV or JSON Lines.
pub fn export_lexicon(
    items: &[ExportItem<'_, LexiconContent>],
    format: Format,
) -> Result<String, String> {
    match format {
        Format::Jsonl => jsonl::write(items),
        Format::Csv => csv::write_lexicon(items),
        Format::Markdown => Err("the risk lexicon is exported as CSV or JSON Lines".into()),
    }
}

/// Which kind a file holds, guessed from its header/fields.
pub fn guess_kind(text: &str) -> Option<Kind> {
    let head: String = text.chars().take(2000).collect();
    if head.contains("pattern") && head.contains("category") {
        Some(Kind::Lexicon)
    } else if head.contains("title") && head.contains("scenario") {
        Some(Kind::Script)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_names_the_line() {
        let bytes = b"id,title\n1,ok\n2,\xff\xfe\n";
        let err = decode_utf8(bytes).unwrap_err();
        assert_eq!(err.line, 3);
    }
}
