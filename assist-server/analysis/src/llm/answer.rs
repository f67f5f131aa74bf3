//! Reading the model's answer: cut out the JSON object, repair what small
//! models get wrong (cut-off answers, stray quotes, trailing commas) and read
//! each field leniently.

use super::*;

/// Cut the first JSON object out of `text`; close it if the answer was cut off.
pub(crate) fn json_object(text: &str) -> Option<(String, bool)> {
    let start = text.find('{')?;
    let body = &text[start..];
    // Walk the text tracking strings and nesting (hand-written: no crate
    // repairs truncated JSON, and this is small). Each comma outside a
    // string is a place the answer can be cut back to, with the brackets
    // open there.
    let mut stack = Vec::new();
    let mut commas: Vec<(usize, Vec<char>)> = Vec::new();
    let mut strings = Strings::default();
    for (i, c) in body.char_indices() {
        if strings.inside(c) {
            continue;
        }
        match c {
            '{' => stack.push('}'),
            '[' => stack.push(']'),
            ',' => commas.push((i, stack.clone())),
            '}' | ']' => {
                stack.pop();
                if stack.is_empty() {
                    return Some((body[..=i].to_string(), false));
                }
            }
            _ => {}
        }
    }
    // Cut off. Close the open string and brackets; when that does not parse
    // (the cut fell inside a key, or an answer stopped for looping ends in
    // `{"`), drop the element being written: cut back to a comma and close
    // there, trying the latest commas first.
    let full = close_cut_off(body, strings.in_str, strings.escaped, stack);
    if parses(&full) {
        return Some((full, true));
    }
    for (at, open) in commas.into_iter().rev().take(64) {
        let cut = close_cut_off(&body[..at], false, false, open);
        if parses(&cut) {
            return Some((cut, true));
        }
    }
    Some((full, true))
}

/// Close a cut-off JSON text: end the open string, drop a dangling comma,
/// give a dangling key a null value, close the open brackets.
pub(crate) fn close_cut_off(
    body: &str,
    in_str: bool,
    escaped: bool,
    mut stack: Vec<char>,
) -> String {
    let mut out = body.trim_end().to_string();
    if escaped {
        out.pop();
    }
    if in_str {
        out.push('"');
    }
    loop {
        let len = out.trim_end().len();
        out.truncate(len);
        if out.ends_with(',') {
            out.pop();
            continue;
        }
        if out.ends_with(':') {
            // `"key":` with no value: give it null.
            out.push_str(" null");
        }
        break;
    }
    while let Some(close) = stack.pop() {
        out.push(close);
    }
    out
}

/// Escape quotes that a model left bare inside a string (`"it says
/// "permission denied" when ..."`): a quote that would end a string but is
/// not followed by `,` `:` `}` `]` or the end is taken as part of the text.
/// Hand-written, like [`json_object`]; used only when the answer does not
/// parse as it is.
pub(crate) fn escape_stray_quotes(text: &str) -> String {
    let Some(start) = text.find('{') else {
        return text.to_string();
    };
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(&text[..start]);
    let body = &text[start..];
    let mut strings = Strings::default();
    for (i, c) in body.char_indices() {
        if strings.in_str && !strings.escaped && c == '"' {
            let next = body[i + 1..].chars().find(|c| !c.is_whitespace());
            if !matches!(next, None | Some(',' | ':' | '}' | ']')) {
                out.push_str("\\\"");
                continue;
            }
        }
        strings.inside(c);
        out.push(c);
    }
    out
}

/// Where a character-by-character walk of JSON text is relative to its
/// strings (the one piece of lexing the repairs here need).
#[derive(Debug, Default)]
pub(crate) struct Strings {
    in_str: bool,
    /// The previous character was a backslash inside a string.
    escaped: bool,
}

impl Strings {
    /// Feed one character; `true` when it belongs to a string (its quotes
    /// included), so it is text, not structure.
    fn inside(&mut self, c: char) -> bool {
        if self.in_str {
            match (self.escaped, c) {
                (true, _) => self.escaped = false,
                (false, '\\') => self.escaped = true,
                (false, '"') => self.in_str = false,
                _ => {}
            }
            true
        } else {
            self.in_str = c == '"';
            self.in_str
        }
    }
}

/// `json` as a value, forgiving trailing commas.
pub(crate) fn to_value(json: &str) -> Option<Value> {
    serde_json::from_str(json)
        .or_else(|_| serde_json::from_str(&drop_trailing_commas(json)))
        .ok()
}

pub(crate) fn parses(json: &str) -> bool {
    to_value(json).is_some()
}

pub(crate) fn drop_trailing_commas(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut strings = Strings::default();
    for (i, c) in s.char_indices() {
        if !strings.inside(c) && c == ',' {
            let next = s[i + 1..].chars().find(|c| !c.is_whitespace());
            if matches!(next, Some('}' | ']')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

pub(crate) fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().filter_map(text_of).collect(),
        other => text_of(other).into_iter().collect(),
    }
}

pub(crate) fn objects(v: &Value) -> Vec<&serde_json::Map<String, Value>> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default()
}

/// Parse a model answer leniently. `None` when no JSON object is in it.
/// The flag says the answer was cut off and closed by the parser.
pub fn parse_answer(text: &str) -> Option<(LlmAnalysis, bool)> {
    let value = |text: &str| {
        let (json, truncated) = json_object(text)?;
        Some((to_value(&json)?, truncated))
    };
    let (v, truncated) = value(text).or_else(|| value(&escape_stray_quotes(text)))?;
    let o = v.as_object()?;
    let get = |k: &str| o.get(k).unwrap_or(&Value::Null);
    let owner =
        |m: &serde_json::Map<String, Value>| match m.get("owner").and_then(text_of).as_deref() {
            Some("customer") | Some("客户") => "customer".to_string(),
            _ => "rep".to_string(),
        };
    let analysis = LlmAnalysis {
        summary: text_of(get("summary")).unwrap_or_default(),
        customer_needs: texts(get("customer_needs")),
        objections: objects(get("objections"))
            .into_iter()
            .filter_map(|m| {
                Some(Objection {
                    objection: m.get("objection").and_then(text_of)?,
                    answer: m.get("answer").and_then(text_of),
                })
            })
            .collect(),
        tasks: objects(get("tasks"))
            .into_iter()
            .filter_map(|m| {
                Some(LlmTask {
                    title: m.get("title").and_then(text_of)?,
                    owner: owner(m),
                    due_text: m.get("due_text").or_else(|| m.get("due")).and_then(text_of),
                    source_quote: m.get("source_quote").and_then(text_of),
                })
            })
            .collect(),
        risk_tags: objects(get("risk_tags"))
            .into_iter()
            .filter_map(|m| {
                let category = m.get("category").and_then(text_of)?.to_lowercase();
                if !RISK_CATEGORIES.contains(&category.as_str()) {
                    return None;
                }
                Some(LlmRiskTag {
                    category,
                    evidence_quote: m.get("evidence_quote").and_then(text_of)?,
                    confidence: m
                        .get("confidence")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.5)
                        .clamp(0.0, 1.0),
                })
            })
            .collect(),
        sentiment: text_of(get("sentiment"))
            .map(|s| s.to_lowercase())
            .filter(|s| SENTIMENTS.contains(&s.as_str()))
            .unwrap_or_else(|| "neutral".into()),
        next_best_action: text_of(get("next_best_action")).unwrap_or_default(),
    };
    Some((drop_placeholders(analysis), truncated))
}

/// Small models sometimes copy the schema's descriptions instead of
/// answering; those are not content.
pub(crate) fn is_placeholder(s: &str) -> bool {
    let t = s.trim().trim_matches('.').trim().to_lowercase();
    t.is_empty()
        || t.starts_with("short action")
        || t.starts_with("2-4 sentences")
        || t.starts_with("one sentence")
        || t.starts_with("how the rep answered")
        || t.starts_with("exact words")
        || t.starts_with("the exact words")
}

pub(crate) fn drop_placeholders(mut a: LlmAnalysis) -> LlmAnalysis {
    if is_placeholder(&a.summary) {
        a.summary.clear();
    }
    if is_placeholder(&a.next_best_action) {
        a.next_best_action.clear();
    }
    a.customer_needs.retain(|n| !is_placeholder(n));
    a.objections.retain(|o| !is_placeholder(&o.objection));
    for o in &mut a.objections {
        if o.answer.as_deref().is_some_and(is_placeholder) {
            o.answer = None;
        }
    }
    a.tasks.retain(|t| !is_placeholder(&t.title));
    for t in &mut a.tasks {
        if t.source_quote.as_deref().is_some_and(is_placeholder) {
            t.source_quote = None;
        }
        if t.due_text.as_deref().is_some_and(is_placeholder) {
            t.due_text = None;
        }
    }
    a.risk_tags.retain(|r| !is_placeholder(&r.evidence_quote));
    a
}
