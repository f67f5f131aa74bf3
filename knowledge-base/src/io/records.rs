//! From raw records to validated content, shared by every format: a reader
//! (`csv.rs`, `jsonl.rs`, `markdown.rs`) turns a file into raw key/value
//! records; this module reads the id and the fields of each, checks them,
//! and collects every problem of every record.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::{Parsed, Record, RecordError};
use crate::model::{
    Language, LexiconContent, MatchMode, RiskAction, RiskCategory, Scenario, ScriptContent,
    Severity,
};
use crate::validate::{FieldError, Limits, validate_lexicon, validate_script};

/// One record as a reader found it: field name to value.
pub(super) type Raw = BTreeMap<String, Value>;

/// A raw record with the line it starts on, or what stopped the reader from
/// making one (at that line).
pub(super) type RawResult = Result<(usize, Raw), (usize, Vec<FieldError>)>;

/// Number the records, check ids (unique within the file), convert each
/// with `convert`, and keep every error of every record.
pub(super) fn finish<T>(
    raws: Vec<RawResult>,
    convert: impl Fn(&Raw) -> Result<T, Vec<FieldError>>,
) -> Parsed<T> {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in raws.into_iter().enumerate() {
        let record = i + 1;
        let (line, raw) = match raw {
            Ok(found) => found,
            Err((line, errs)) => {
                errors.push(RecordError {
                    record,
                    line,
                    errors: errs,
                });
                continue;
            }
        };
        let mut errs = Vec::new();
        let id = record_id(&raw, &mut errs);
        if let Some(id) = &id {
            if let Some(first) = seen.get(id) {
                errs.push(FieldError::new(
                    "id",
                    format!("duplicate id `{id}` (first used in record {first})"),
                ));
            } else {
                seen.insert(id.clone(), record);
            }
        }
        match convert(&raw) {
            Ok(content) if errs.is_empty() => records.push(Record {
                record,
                line,
                id,
                content,
            }),
            Ok(_) => errors.push(RecordError {
                record,
                line,
                errors: errs,
            }),
            Err(more) => {
                errs.extend(more);
                errors.push(RecordError {
                    record,
                    line,
                    errors: errs,
                });
            }
        }
    }
    Parsed { records, errors }
}

/// The caller's id of a record, if it has a non-blank one (text or number).
fn record_id(raw: &Raw, errors: &mut Vec<FieldError>) -> Option<String> {
    match raw.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            errors.push(FieldError::new("id", "must be text"));
            None
        }
    }
}

fn text_field(raw: &Raw, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match raw.get(field) {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            errors.push(FieldError::new(field, "must be text"));
            None
        }
    }
}

fn list_field(raw: &Raw, field: &str, errors: &mut Vec<FieldError>) -> Vec<String> {
    match raw.get(field) {
        None | Some(Value::Null) => Vec::new(),
        // CSV cells: "a|b", "a;b", "a, b" or "a，b".
        Some(Value::String(s)) => s
            .split(['|', ';', ',', '，', '、'])
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => {
                    errors.push(FieldError::new(field, "must be a list of text"));
                    None
                }
            })
            .collect(),
        Some(_) => {
            errors.push(FieldError::new(field, "must be a list"));
            Vec::new()
        }
    }
}

fn enum_field<T>(
    raw: &Raw,
    field: &str,
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let text = text_field(raw, field, errors)?;
    let parsed = parse(&text);
    if parsed.is_none() {
        errors.push(FieldError::new(
            field,
            format!("unknown value `{text}` (expected one of {expected})"),
        ));
    }
    parsed
}

fn unknown_fields(raw: &Raw, allowed: &[&str], errors: &mut Vec<FieldError>) {
    for key in raw.keys() {
        if !allowed.contains(&key.as_str()) {
            errors.push(FieldError::new(
                key.clone(),
                format!("unknown field (expected {})", allowed.join(", ")),
            ));
        }
    }
}

const SCRIPT_FIELDS: &[&str] = &[
    "id", "title", "body", "scenario", "tags", "products", "language", "status", "version",
];
const LEXICON_FIELDS: &[&str] = &[
    "id",
    "pattern",
    "category",
    "severity",
    "match_mode",
    "action",
    "language",
    "note",
    "status",
    "version",
];

fn scenario_names() -> String {
    Scenario::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn category_names() -> String {
    RiskCategory::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn script_from_raw(
    raw: &Raw,
    limits: &Limits,
) -> Result<ScriptContent, Vec<FieldError>> {
    let mut errors = Vec::new();
    unknown_fields(raw, SCRIPT_FIELDS, &mut errors);
    let title = text_field(raw, "title", &mut errors);
    let body = text_field(raw, "body", &mut errors);
    let scenario = enum_field(
        raw,
        "scenario",
        Scenario::parse,
        &scenario_names(),
        &mut errors,
    );
    let language = enum_field(raw, "language", Language::parse, "zh, en", &mut errors);
    let tags = list_field(raw, "tags", &mut errors);
    let products = list_field(raw, "products", &mut errors);
    let (Some(title), Some(body), Some(scenario), Some(language)) =
        (title, body, scenario, language)
    else {
        return Err(errors);
    };
    let content = ScriptContent {
        title,
        body,
        scenario,
        tags,
        products,
        language,
    };
    with_earlier_errors(validate_script(&content, limits), errors)
}

pub(super) fn lexicon_from_raw(
    raw: &Raw,
    limits: &Limits,
) -> Result<LexiconContent, Vec<FieldError>> {
    let mut errors = Vec::new();
    unknown_fields(raw, LEXICON_FIELDS, &mut errors);
    let pattern = text_field(raw, "pattern", &mut errors);
    let category = enum_field(
        raw,
        "category",
        RiskCategory::parse,
        &category_names(),
        &mut errors,
    );
    let severity = enum_field(
        raw,
        "severity",
        Severity::parse,
        "low, medium, high, critical",
        &mut errors,
    );
    let match_mode = enum_field(
        raw,
        "match_mode",
        MatchMode::parse,
        "phrase, regex, semantic",
        &mut errors,
    );
    let action = enum_field(
        raw,
        "action",
        RiskAction::parse,
        "alert, block",
        &mut errors,
    );
    let language = enum_field(raw, "language", Language::parse, "zh, en", &mut errors);
    let note = match raw.get("note") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let (
        Some(pattern),
        Some(category),
        Some(severity),
        Some(match_mode),
        Some(action),
        Some(language),
    ) = (pattern, category, severity, match_mode, action, language)
    else {
        return Err(errors);
    };
    let content = LexiconContent {
        pattern,
        category,
        severity,
        match_mode,
        action,
        language,
        note,
    };
    with_earlier_errors(validate_lexicon(&content, limits), errors)
}

/// The validated content, unless reading the fields already found errors:
/// then those, followed by the validator's.
fn with_earlier_errors<T>(
    validated: Result<T, Vec<FieldError>>,
    mut errors: Vec<FieldError>,
) -> Result<T, Vec<FieldError>> {
    match validated {
        Ok(c) if errors.is_empty() => Ok(c),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            Err(errors)
        }
    }
}
