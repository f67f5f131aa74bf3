//! CSV: one record per row under a header row; list cells are split on
//! `|`, `;` or commas (see `records.rs`). Written with `|` between list items.
//!
//! (`::csv` below is the csv crate, not this module.)

use serde_json::Value;

use super::ExportItem;
use super::records::{Raw, RawResult};
use crate::model::{LexiconContent, ScriptContent};
use crate::validate::FieldError;

/// Raw records of a CSV file (an optional byte-order mark is skipped;
/// headers are trimmed and lower-cased; empty cells are left out).
pub(super) fn read(text: &str) -> Vec<RawResult> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = ::csv::ReaderBuilder::new()
        .flexible(false)
        .trim(::csv::Trim::Headers)
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

pub(super) fn write_scripts(items: &[ExportItem<'_, ScriptContent>]) -> Result<String, String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record([
        "id", "title", "body", "scenario", "tags", "products", "language", "status", "version",
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

pub(super) fn write_lexicon(items: &[ExportItem<'_, LexiconContent>]) -> Result<String, String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
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

#[cfg(test)]
mod tests {
    use crate::io::{Format, parse_scripts};
    use crate::model::Scenario;
    use crate::validate::Limits;

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
}
