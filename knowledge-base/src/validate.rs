//! Field-level validation of scripts and lexicon entries. Every problem is
//! reported (not only the first), each naming its field.

use serde::Serialize;

use crate::model::{LexiconContent, MatchMode, ScriptContent};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Size limits for curated content.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_title_chars: usize,
    pub max_body_chars: usize,
    pub max_tags: usize,
    pub max_tag_chars: usize,
    pub max_pattern_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_title_chars: 200,
            max_body_chars: 4000,
            max_tags: 20,
            max_tag_chars: 40,
            max_pattern_chars: 500,
        }
    }
}

fn clean_list(
    field: &str,
    items: &[String],
    limits: &Limits,
    errors: &mut Vec<FieldError>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let t = item.trim();
        if t.is_empty() {
            continue;
        }
        if t.chars().count() > limits.max_tag_chars {
            errors.push(FieldError::new(
                field,
                format!("`{t}` is longer than {} characters", limits.max_tag_chars),
            ));
            continue;
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    if out.len() > limits.max_tags {
        errors.push(FieldError::new(
            field,
            format!("at most {} entries (got {})", limits.max_tags, out.len()),
        ));
    }
    out
}

fn has_control_chars(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
}

/// Check a script and return it normalised (trimmed, duplicate tags removed).
pub fn validate_script(
    c: &ScriptContent,
    limits: &Limits,
) -> Result<ScriptContent, Vec<FieldError>> {
    let mut errors = Vec::new();
    let title = c.title.trim().to_string();
    let body = c.body.trim().to_string();
    if title.is_empty() {
        errors.push(FieldError::new("title", "must not be empty"));
    } else if title.chars().count() > limits.max_title_chars {
        errors.push(FieldError::new(
            "title",
            format!("is longer than {} characters", limits.max_title_chars),
        ));
    }
    if body.is_empty() {
        errors.push(FieldError::new("body", "must not be empty"));
    } else if body.chars().count() > limits.max_body_chars {
        errors.push(FieldError::new(
            "body",
            format!(
                "is {} characters; a script is at most {} (split long material into several scripts)",
                body.chars().count(),
                limits.max_body_chars
            ),
        ));
    }
    if has_control_chars(&title) || has_control_chars(&body) {
        errors.push(FieldError::new("body", "contains control characters"));
    }
    let tags = clean_list("tags", &c.tags, limits, &mut errors);
    let products = clean_list("products", &c.products, limits, &mut errors);
    if errors.is_empty() {
        Ok(ScriptContent {
            title,
            body,
            scenario: c.scenario,
            tags,
            products,
            language: c.language,
        })
    } else {
        Err(errors)
    }
}

/// Check a lexicon entry. Regular expressions are compiled here, so an
/// invalid one is rejected at save time with the character position.
pub fn validate_lexicon(
    c: &LexiconContent,
    limits: &Limits,
) -> Result<LexiconContent, Vec<FieldError>> {
    let mut errors = Vec::new();
    let pattern = c.pattern.trim().to_string();
    let chars = pattern.chars().count();
    if pattern.is_empty() {
        errors.push(FieldError::new("pattern", "must not be empty"));
    } else if chars > limits.max_pattern_chars {
        errors.push(FieldError::new(
            "pattern",
            format!("is longer than {} characters", limits.max_pattern_chars),
        ));
    } else {
        match c.match_mode {
            MatchMode::Phrase => {
                if chars > 100 {
                    errors.push(FieldError::new(
                        "pattern",
                        "a phrase is at most 100 characters; use a semantic exemplar for sentences",
                    ));
                }
            }
            MatchMode::Regex => {
                if let Err(message) = check_regex(&pattern) {
                    errors.push(FieldError::new("pattern", message));
                }
            }
            MatchMode::Semantic => {
                if chars < 4 {
                    errors.push(FieldError::new(
                        "pattern",
                        "a semantic exemplar should be a whole sentence (at least 4 characters)",
                    ));
                }
            }
        }
    }
    if has_control_chars(&pattern) {
        errors.push(FieldError::new("pattern", "contains control characters"));
    }
    if errors.is_empty() {
        Ok(LexiconContent {
            pattern,
            note: c
                .note
                .as_ref()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty()),
            ..c.clone()
        })
    } else {
        Err(errors)
    }
}

/// Parse a regular expression with `regex-syntax` (the parser of the `regex`
/// crate the risk engine uses) and report the 1-based character position of
/// the first error.
pub fn check_regex(pattern: &str) -> Result<(), String> {
    let ast = regex_syntax::ast::parse::Parser::new()
        .parse(pattern)
        .map_err(|e| {
            format!(
                "invalid regular expression at character {}: {}",
                char_pos(pattern, e.span().start.offset),
                e.kind()
            )
        })?;
    regex_syntax::hir::translate::Translator::new()
        .translate(pattern, &ast)
        .map_err(|e| {
            format!(
                "invalid regular expression at character {}: {}",
                char_pos(pattern, e.span().start.offset),
                e.kind()
            )
        })?;
    Ok(())
}

fn char_pos(s: &str, byte_offset: usize) -> usize {
    s.char_indices()
        .take_while(|(i, _)| *i < byte_offset)
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn script() -> ScriptContent {
        ScriptContent {
            title: " 价格异议：强调价值 ".into(),
            body: "您好，我理解您对价格的顾虑……".into(),
            scenario: Scenario::PriceObjection,
            tags: vec!["价格".into(), "价格".into(), " ".into()],
            products: vec!["云客CRM".into()],
            language: Language::Zh,
        }
    }

    #[test]
    fn scripts_are_trimmed_and_deduplicated() {
        let ok = validate_script(&script(), &Limits::default()).unwrap();
        assert_eq!(ok.title, "价格异议：强调价值");
        assert_eq!(ok.tags, vec!["价格".to_string()]);
    }

    #[test]
    fn every_problem_is_reported() {
        let mut s = script();
        s.title = "  ".into();
        s.body = "x".repeat(5000);
        s.tags = (0..30).map(|i| format!("t{i}")).collect();
        let errs = validate_script(&s, &Limits::default()).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["title", "body", "tags"], "{errs:?}");
    }

    #[test]
    fn invalid_regex_names_the_position() {
        let entry = LexiconContent {
            pattern: "加我(微信|vx".into(),
            category: RiskCategory::PrivateContact,
            severity: Severity::High,
            match_mode: MatchMode::Regex,
            action: RiskAction::Alert,
            language: Language::Zh,
            note: None,
        };
        let errs = validate_lexicon(&entry, &Limits::default()).unwrap_err();
        assert_eq!(errs[0].field, "pattern");
        assert!(
            errs[0].message.contains("character 3"),
            "{}",
            errs[0].message
        );
        let mut ok = entry.clone();
        ok.pattern = r"加我(微信|vx|v信)\d*".into();
        assert!(validate_lexicon(&ok, &Limits::default()).is_ok());
        ok.pattern = r"\p{NoSuchClass}".into();
        let errs = validate_lexicon(&ok, &Limits::default()).unwrap_err();
        assert!(
            errs[0].message.contains("character 1"),
            "{}",
            errs[0].message
        );
    }
}
