//! Markdown with YAML front matter, for scripts only: each script is a
//! `---` line, its fields as YAML, a closing `---` line, then the body.
//! Several scripts follow each other in one file.

use serde_json::Value;

use super::ExportItem;
use super::records::{Raw, RawResult};
use crate::model::ScriptContent;
use crate::validate::FieldError;

/// One script per document: `---` YAML front matter `---`, then the body.
/// Several documents may follow each other in one file, each starting with
/// a `---` line directly followed by front matter.
pub(super) fn read(text: &str) -> Vec<RawResult> {
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
        let j = body_end(&lines, fm_end + 1);
        let body = lines[fm_end + 1..j].join("\n");
        out.push(document(&yaml, &body, start));
        i = j;
    }
    out
}

/// Where a body that starts at `from` ends: at the next `---` that opens
/// another front matter (a `---` line followed by a `key:` line), or the end.
fn body_end(lines: &[&str], from: usize) -> usize {
    let mut j = from;
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
    j
}

/// The raw record of one document whose front matter starts on line `start`.
fn document(yaml: &str, body: &str, start: usize) -> RawResult {
    match serde_yaml_ng::from_str::<Value>(yaml) {
        Ok(Value::Object(map)) => {
            let mut raw: Raw = map.into_iter().collect();
            if raw.contains_key("body") {
                Err((
                    start,
                    vec![FieldError::new(
                        "body",
                        "the body is the text after the front matter, not a front-matter key",
                    )],
                ))
            } else {
                raw.insert("body".into(), Value::String(body.trim().to_string()));
                Ok((start, raw))
            }
        }
        Ok(_) => Err((
            start,
            vec![FieldError::new("front_matter", "must be a YAML mapping")],
        )),
        Err(e) => {
            let line = e.location().map(|l| start + l.line()).unwrap_or(start);
            Err((
                line,
                vec![FieldError::new(
                    "front_matter",
                    format!("invalid YAML: {e}"),
                )],
            ))
        }
    }
}

/// One document per script, one after another, which [`read`] reads back.
pub(super) fn write_scripts(items: &[ExportItem<'_, ScriptContent>]) -> Result<String, String> {
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

#[cfg(test)]
mod tests {
    use crate::io::{ExportItem, Format, export_scripts, parse_scripts};
    use crate::model::{ScriptContent, Status};
    use crate::validate::Limits;

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
}
