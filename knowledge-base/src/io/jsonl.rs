//! JSON Lines: one JSON object per line; blank lines are skipped. Written
//! as the [`ExportItem`] of each item, one per line.

use serde::Serialize;
use serde_json::Value;

use super::ExportItem;
use super::records::RawResult;
use crate::validate::FieldError;

/// Raw records of a JSON Lines file; a line that is not a JSON object is an
/// error of its own record.
pub(super) fn read(text: &str) -> Vec<RawResult> {
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

pub(super) fn write<T: Serialize>(items: &[ExportItem<'_, T>]) -> Result<String, String> {
    let mut out = String::new();
    for it in items {
        out.push_str(&serde_json::to_string(it).map_err(|e| e.to_string())?);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::io::{Format, parse_lexicon};
    use crate::model::RiskAction;
    use crate::validate::Limits;

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
}
