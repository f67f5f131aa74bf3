//! Human-readable diffs between versions, for the version history.

use similar::TextDiff;

use crate::model::{LexiconContent, ScriptContent};

/// The text a reviewer compares: metadata lines, then the body.
pub fn script_text(c: &ScriptContent) -> String {
    format!(
        "title: {}\nscenario: {}\nlanguage: {}\ntags: {}\nproducts: {}\n\n{}\n",
        c.title,
        c.scenario.as_str(),
        c.language.as_str(),
        c.tags.join(", "),
        c.products.join(", "),
        c.body
    )
}

pub fn lexicon_text(c: &LexiconContent) -> String {
    format!(
        "pattern: {}\ncategory: {}\nseverity: {}\nmatch_mode: {}\naction: {}\nlanguage: {}\nnote: {}\n",
        c.pattern,
        c.category.as_str(),
        c.severity.as_str(),
        c.match_mode.as_str(),
        c.action.as_str(),
        c.language.as_str(),
        c.note.as_deref().unwrap_or("")
    )
}

/// Unified diff from `old` to `new` (empty when equal). Chinese bodies
/// rarely have line breaks, so the body is compared by character runs when
/// it is a single line.
pub fn unified(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Language, Scenario};

    #[test]
    fn diff_shows_changed_lines_only() {
        let a = ScriptContent {
            title: "价格异议".into(),
            body: "我们的价格包含三年维保。".into(),
            scenario: Scenario::PriceObjection,
            tags: vec![],
            products: vec![],
            language: Language::Zh,
        };
        let mut b = a.clone();
        b.body = "我们的价格包含五年维保。".into();
        let d = unified(&script_text(&a), &script_text(&b), "v1", "v2");
        assert!(d.contains("-我们的价格包含三年维保。"), "{d}");
        assert!(d.contains("+我们的价格包含五年维保。"), "{d}");
        assert!(!d.contains("-title"), "{d}");
        assert_eq!(unified("x", "x", "a", "b"), "");
    }
}
