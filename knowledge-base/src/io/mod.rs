//! Import and export: CSV, JSON Lines, and Markdown with YAML front matter.
//!
//! Parsing never stops at the first bad record: every record is checked and
//! every problem is reported with its record number and line, so a trainer
//! can fix a whole file in one go. Callers import nothing from a file with
//! errors unless they explicitly skip invalid records.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::model::{
    Kind, Language, LexiconContent, MatchMode, RiskAction, RiskCategory, Scenario, ScriptContent,
    Severity, Status,
};
use crate::validate::{FieldError, Limits, validate_lexicon, validate_script};

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

type Raw = BTreeMap<String, Value>;

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
        Format::Csv => raw_csv(text),
        Format::Jsonl => raw_jsonl(text),
        Format::Markdown => raw_markdown(text),
    };
    finish(raws, |raw| script_from_raw(raw, limits))
}

/// Parse lexicon entries from `text` (CSV or JSON Lines).
pub fn parse_lexicon(text: &str, format: Format, limits: &Limits) -> Parsed<LexiconContent> {
    let raws = match format {
        Format::Csv => raw_csv(text),
        Format::Jsonl => raw_jsonl(text),
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
    finish(raws, |raw| lexicon_from_raw(raw, limits))
}

type RawResult = Result<(usize, Raw), (usize, Vec<FieldError>)>;

fn finish<T>(
    raws: Vec<RawResult>,
    convert: impl Fn(&Raw) -> Result<T, Vec<FieldError>>,
) -> Parsed<T> {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in raws.into_iter().enumerate() {
        let record = i + 1;
        match raw {
            Err((line, errs)) => errors.push(RecordError {
                record,
                line,
                errors: errs,
            }),
            Ok((line, raw)) => {
                let mut errs = Vec::new();
                let id = match raw.get("id") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if s.trim().is_empty() => None,
                    Some(Value::String(s)) => Some(s.trim().to_string()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(_) => {
                        errs.push(FieldError::new("id", "must be text"));
                        None
                    }
                };
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
        }
    }
    Parsed { records, errors }
}

fn raw_csv(text: &str) -> Vec<RawResult> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::Headers)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_ascii_lowercase()).collect(),
        Err(e) => return vec![Err((1, vec![FieldError::new("header", e.to_string())]))],
    };
    let mut out = Vec::new();
    for row in reader.records() {
        match row {
            Ok(row) => {
                let line = row.position().map(|p| p.line() as usize).unwrap_or(0);
                let mut raw = Raw::new();
                for (h, v) in headers.iter().zip(row.iter()) {
                    if !v.trim().is_empty() {
                        raw.insert(h.clone(), Value::String(v.to_string()));
                    }
                }
                out.push(Ok((line, raw)));
            }
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                out.push(Err((line, vec![FieldError::new("row", e.to_string())])));
            }
        }
    }
    out
}

fn raw_jsonl(text: &str) -> Vec<RawResult> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let t = line.trim().trim_start_matches('\u{feff}');
        if t.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(t) {
            Ok(Value::Object(map)) => out.push(Ok((line_no, map.into_iter().collect()))),
            Ok(_) => out.push(Err((
                line_no,
                vec![FieldError::new("line", "must be a JSON object")],
            ))),
            Err(e) => out.push(Err((
                line_no,
                vec![FieldError::new("line", format!("invalid JSON: {e}"))],
            ))),
        }
    }
    out
}

/// One script per document: `---` YAML front matter `---`, then the body.
/// Several documents may follow each other in one file, each starting with
/// a `---` line directly followed by front matter.
fn raw_markdown(text: &str) -> Vec<RawResult> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() && lines[i].trim().is_empty() {
        i += 1;
    }
    if i >= lines.len() {
        return out;
    }
    if lines[i].trim() != "---" {
        return vec![Err((
            i + 1,
            vec![FieldError::new(
                "front_matter",
                "a script file starts with a `---` line and YAML front matter",
            )],
        ))];
    }
    while i < lines.len() {
        let start = i + 1; // 1-based line of the opening ---
        let fm_start = i + 1;
        let Some(fm_len) = lines[fm_start..].iter().position(|l| l.trim() == "---") else {
            out.push(Err((
                start,
                vec![FieldError::new("front_matter", "no closing `---` line")],
            )));
            break;
        };
        let fm_end = fm_start + fm_len;
        let yaml = lines[fm_start..fm_end].join("\n");
        // The body runs until the next `---` that opens another front matter
        // (a `---` line followed by a `key:` line), or the end.
        let mut j = fm_end + 1;
        while j < lines.len() {
            if lines[j].trim() == "---"
                && lines.get(j + 1).is_some_and(|n| {
                    let n = n.trim();
                    !n.is_empty() && n.contains(':') && !n.starts_with('#')
                })
            {
                break;
            }
            j += 1;
        }
        let body = lines[fm_end + 1..j].join("\n");
        match serde_yaml_ng::from_str::<Value>(&yaml) {
            Ok(Value::Object(map)) => {
                let mut raw: Raw = map.into_iter().collect();
                if raw.contains_key("body") {
                    out.push(Err((
                        start,
                        vec![FieldError::new(
                            "body",
                            "the body is the text after the front matter, not a front-matter key",
                        )],
                    )));
                } else {
                    raw.insert("body".into(), Value::String(body.trim().to_string()));
                    out.push(Ok((start, raw)));
                }
            }
            Ok(_) => out.push(Err((
                start,
                vec![FieldError::new("front_matter", "must be a YAML mapping")],
            ))),
            Err(e) => {
                let line = e.location().map(|l| start + l.line()).unwrap_or(start);
                out.push(Err((
                    line,
                    vec![FieldError::new(
                        "front_matter",
                        format!("invalid YAML: {e}"),
                    )],
                )));
            }
        }
        i = j;
    }
    out
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

fn script_from_raw(raw: &Raw, limits: &Limits) -> Result<ScriptContent, Vec<FieldError>> {
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
    match validate_script(&content, limits) {
        Ok(c) if errors.is_empty() => Ok(c),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            Err(errors)
        }
    }
}

fn lexicon_from_raw(raw: &Raw, limits: &Limits) -> Result<LexiconContent, Vec<FieldError>> {
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
    match validate_lexicon(&content, limits) {
        Ok(c) if errors.is_empty() => Ok(c),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            Err(errors)
        }
    }
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
        Format::Jsonl => export_jsonl(items),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record([
                "id", "title", "body", "scenario", "tags", "products", "language", "status",
                "version",
            ])
            .map_err(|e| e.to_string())?;
            for it in items {
                let c = it.content;
                w.write_record([
                    it.id,
                    &c.title,
                    &c.body,
                    c.scenario.as_str(),
                    &c.tags.join("|"),
                    &c.products.join("|"),
                    c.language.as_str(),
                    it.status.as_str(),
                    &it.version.to_string(),
                ])
                .map_err(|e| e.to_string())?;
            }
            let bytes = w.into_inner().map_err(|e| e.to_string())?;
            String::from_utf8(bytes).map_err(|e| e.to_string())
        }
        Format::Markdown => {
            let mut out = String::new();
            for it in items {
                let c = it.content;
                let fm = serde_json::json!({
                    "id": it.id,
                    "title": c.title,
                    "scenario": c.scenario,
                    "tags": c.tags,
                    "products": c.products,
                    "language": c.language,
                    "status": it.status,
                    "version": it.version,
                });
                let yaml = serde_yaml_ng::to_string(&fm).map_err(|e| e.to_string())?;
                out.push_str("---\n");
                out.push_str(&yaml);
                out.push_str("---\n");
                out.push_str(&c.body);
                out.push_str("\n\n");
            }
            Ok(out)
        }
    }
}

/// Write lexicon entries as CSV or JSON Lines.
pub fn export_lexicon(
    items: &[ExportItem<'_, LexiconContent>],
    format: Format,
) -> Result<String, String> {
    match format {
        Format::Jsonl => export_jsonl(items),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record([
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
            ])
            .map_err(|e| e.to_string())?;
            for it in items {
                let c = it.content;
                w.write_record([
                    it.id,
                    &c.pattern,
                    c.category.as_str(),
                    c.severity.as_str(),
                    c.match_mode.as_str(),
                    c.action.as_str(),
                    c.language.as_str(),
                    c.note.as_deref().unwrap_or(""),
                    it.status.as_str(),
                    &it.version.to_string(),
                ])
                .map_err(|e| e.to_string())?;
            }
            let bytes = w.into_inner().map_err(|e| e.to_string())?;
            String::from_utf8(bytes).map_err(|e| e.to_string())
        }
        Format::Markdown => Err("the risk lexicon is exported as CSV or JSON Lines".into()),
    }
}

fn export_jsonl<T: Serialize>(items: &[ExportItem<'_, T>]) -> Result<String, String> {
    let mut out = String::new();
    for it in items {
        out.push_str(&serde_json::to_string(it).map_err(|e| e.to_string())?);
        out.push('\n');
    }
    Ok(out)
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
    fn csv_scripts_with_every_error_reported_by_line() {
        let csv = "id,title,body,scenario,tags,products,language\n\
                   s1,价格异议,您好，理解您的顾虑,价格异议,价格|优惠,CRM,zh\n\
                   s2,,body,closing,,,en\n\
                   s1,dup,body,closing,,,en\n\
                   s4,Bad scenario,body,pricing,,,fr\n\
                   s5,\"多行\n正文\",\"第一行\n第二行\",trust,,,zh\n";
        let p = parse_scripts(csv, Format::Csv, &Limits::default());
        assert_eq!(p.records.len(), 2, "{:?}", p.errors);
        assert_eq!(p.records[0].content.scenario, Scenario::PriceObjection);
        assert_eq!(p.records[0].content.tags, vec!["价格", "优惠"]);
        assert_eq!(p.records[1].id.as_deref(), Some("s5"));
        assert_eq!(p.errors.len(), 3);
        assert_eq!((p.errors[0].record, p.errors[0].line), (2, 3));
        assert_eq!(p.errors[0].errors[0].field, "title");
        assert!(p.errors[1].errors[0].message.contains("duplicate id `s1`"));
        let fields: Vec<&str> = p.errors[2]
            .errors
            .iter()
            .map(|e| e.field.as_str())
            .collect();
        assert_eq!(fields, vec!["scenario", "language"]);
        assert!(p.errors[2].to_string().contains("record 4 (line 5)"));
    }

    #[test]
    fn jsonl_lexicon_rejects_bad_regex_and_unknown_fields() {
        let text = r#"{"pattern":"私下交易","category":"side_deal","severity":"high","match_mode":"phrase","action":"block","language":"zh"}
{"pattern":"加我(微信","category":"私号","severity":"high","match_mode":"regex","action":"alert","language":"zh"}
not json
{"pattern":"x","category":"kickback","severity":"high","match_mode":"phrase","action":"alert","language":"zh","colour":"red"}
"#;
        let p = parse_lexicon(text, Format::Jsonl, &Limits::default());
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.records[0].content.action, RiskAction::Block);
        assert_eq!(p.errors.len(), 3);
        assert!(
            p.errors[0].errors[0].message.contains("character 3"),
            "{}",
            p.errors[0]
        );
        assert_eq!(p.errors[1].line, 3);
        assert_eq!(p.errors[2].errors[0].field, "colour");
    }

    #[test]
    fn markdown_round_trip() {
        let md = "---\nid: m1\ntitle: Closing the deal\nscenario: closing\ntags: [close, urgency]\nlanguage: en\n---\nShall we get the paperwork started today?\n\n---\nid: m2\ntitle: 信任建立\nscenario: 信任建立\nlanguage: zh\n---\n我们是上市公司，合同有法律保障。\n";
        let p = parse_scripts(md, Format::Markdown, &Limits::default());
        assert!(p.is_clean(), "{:?}", p.errors);
        assert_eq!(p.records.len(), 2);
        assert_eq!(
            p.records[0].content.body,
            "Shall we get the paperwork started today?"
        );
        assert_eq!(p.records[1].line, 10);
        let items: Vec<ExportItem<'_, ScriptContent>> = p
            .records
            .iter()
            .map(|r| ExportItem {
                id: r.id.as_deref().unwrap(),
                status: Status::Approved,
                version: 1,
                content: &r.content,
            })
            .collect();
        for format in [Format::Markdown, Format::Csv, Format::Jsonl] {
            let text = export_scripts(&items, format).unwrap();
            let back = parse_scripts(&text, format, &Limits::default());
            assert!(back.is_clean(), "{format:?}: {:?}\n{text}", back.errors);
            assert_eq!(back.records.len(), 2);
            assert_eq!(back.records[1].content, p.records[1].content, "{format:?}");
        }
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let bytes = b"id,title\n1,ok\n2,\xff\xfe\n";
        let err = decode_utf8(bytes).unwrap_err();
        assert_eq!(err.line, 3);
    }
}
