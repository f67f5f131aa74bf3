//! English commitment and request patterns.

use std::sync::LazyLock;

use regex::Regex;

use super::{ClauseHit, Owner, TaskKind, without};

/// Action verbs (first word of the predicate).
const VERBS: &[&str] = &[
    "send",
    "resend",
    "email",
    "e-mail",
    "mail",
    "forward",
    "share",
    "call",
    "ring",
    "phone",
    "text",
    "message",
    "get",
    "follow",
    "check",
    "double-check",
    "confirm",
    "ask",
    "prepare",
    "draft",
    "write",
    "set",
    "schedule",
    "reschedule",
    "arrange",
    "book",
    "deliver",
    "ship",
    "update",
    "review",
    "look",
    "find",
    "reach",
    "contact",
    "talk",
    "speak",
    "sign",
    "submit",
    "provide",
    "put",
    "fix",
    "have",
    "loop",
    "pass",
    "let",
    "come",
    "visit",
    "demo",
    "quote",
    "circle",
    "touch",
    "investigate",
    "escalate",
    "organize",
    "organise",
    "process",
    "issue",
    "refund",
    "upload",
    "give",
    "bring",
    "transfer",
    "pay",
    "approve",
    "reply",
    "respond",
    "run",
    "sort",
    "make",
    "order",
    "cancel",
    "renew",
    "install",
    "configure",
    "activate",
    "verify",
    "compile",
    "ping",
    "drop",
];

/// Extra verbs for requests.
const REQUEST_ONLY_VERBS: &[&str] = &[
    "fill", "complete", "think", "consider", "read", "return", "tell", "remind",
];

/// Adverbs and helpers skipped before the verb.
const SKIP: &[&str] = &[
    "definitely",
    "certainly",
    "just",
    "also",
    "personally",
    "quickly",
    "then",
    "go ahead and",
    "make sure to",
    "try to",
    "be sure to",
    "be able to",
    "first",
    "still",
    "probably",
    "gladly",
    "happily",
    "need to",
    "have to",
    "please",
    "kindly",
    "maybe",
    "also",
    "immediately",
    "personally",
    "try and",
    "go and",
];

struct Pattern {
    re: Regex,
    kind: TaskKind,
    adjust: f32,
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |re: &str, kind, adjust| Pattern {
        re: Regex::new(re).expect("commitment pattern"),
        kind,
        adjust,
    };
    use TaskKind::{Commitment as C, Request as R};
    vec![
        p(
            r"(?i)\b(?:i|we)(?:'ll|’ll|\s+will|\s+shall)\s+(?P<rest>.+)$",
            C,
            0.1,
        ),
        p(
            r"(?i)\b(?:i|we)(?:'m|’m|\s+am|'re|’re|\s+are)\s+(?:going\s+to|gonna)\s+(?P<rest>.+)$",
            C,
            0.1,
        ),
        p(
            r"(?i)\b(?:i|we)(?:'d|’d|\s+would)\s+be\s+happy\s+to\s+(?P<rest>.+)$",
            C,
            0.0,
        ),
        p(r"(?i)\blet\s+me\s+(?P<rest>.+)$", C, 0.0),
        p(r"(?i)\b(?:i|we)\s+can\s+(?P<rest>.+)$", C, -0.15),
        p(r"(?i)\blet's\s+(?P<rest>.+)$", C, -0.15),
        p(
            r"(?i)\b(?:can|could|would|will)\s+you\s+(?P<rest>.+)$",
            R,
            0.0,
        ),
        p(r"(?i)\b(?:i|we)\s+need\s+you\s+to\s+(?P<rest>.+)$", R, 0.1),
        p(
            r"(?i)\b(?:i'd|i\s+would|we'd|we\s+would)\s+like\s+you\s+to\s+(?P<rest>.+)$",
            R,
            0.0,
        ),
        p(
            r"(?i)\byou\s+(?:should|need\s+to|have\s+to|must)\s+(?P<rest>.+)$",
            R,
            0.0,
        ),
        p(
            r"(?i)\b(?:make\s+sure\s+(?:you|to)|(?:don't|do\s+not)\s+forget\s+to|remember\s+to)\s+(?P<rest>.+)$",
            R,
            0.0,
        ),
        p(
            r"(?i)^(?:(?:ok|okay|so|and|then|yes|sure)\W+)*please\s+(?P<rest>.+)$",
            R,
            0.0,
        ),
    ]
});

static PRONOUN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(you|your|yours|me|my|us|our)\b").expect("pronoun pattern")
});

/// Strip skipped words from the front; return the offset where the verb starts.
fn skip_front(rest: &str) -> usize {
    let mut at = 0;
    loop {
        let s = &rest[at..];
        let lower = s.to_ascii_lowercase();
        let Some(w) = SKIP.iter().find(|w| {
            lower.starts_with(*w) && lower[w.len()..].starts_with(|c: char| c.is_whitespace())
        }) else {
            return at;
        };
        let after = &s[w.len()..];
        at += w.len() + (after.len() - after.trim_start().len());
    }
}

fn first_word(s: &str) -> String {
    s.split(|c: char| !(c.is_ascii_alphabetic() || c == '-' || c == '\''))
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

pub(super) fn analyse(clause: &str) -> Option<ClauseHit> {
    for p in PATTERNS.iter() {
        let Some(c) = p.re.captures(clause) else {
            continue;
        };
        let rest = c.name("rest").expect("rest group");
        let verb_at = rest.start() + skip_front(rest.as_str());
        let tail = &clause[verb_at..];
        let word = first_word(tail);
        if matches!(word.as_str(), "not" | "never" | "no") {
            return None;
        }
        let known = VERBS.contains(&word.as_str())
            || (p.kind == TaskKind::Request && REQUEST_ONLY_VERBS.contains(&word.as_str()));
        // "let me know" is a request to the other party, not a promise.
        let lower = tail.to_ascii_lowercase();
        if !known || (p.kind == TaskKind::Commitment && lower.starts_with("know")) {
            continue;
        }
        if p.kind == TaskKind::Commitment && word == "let" && !lower.starts_with("let you know") {
            continue;
        }
        let mut adjust = p.adjust;
        if p.kind == TaskKind::Commitment && clause.trim_end().ends_with('?') {
            adjust -= 0.15;
        }
        return Some(ClauseHit {
            kind: p.kind,
            predicate: (verb_at, clause.len()),
            adjust,
        });
    }
    None
}

/// The title: the predicate without the date, trailing politeness and
/// punctuation, pronouns from the owner's point of view, capitalised, at
/// most 60 characters (cut at a word).
pub(super) fn title(
    predicate: &str,
    dues: &[(usize, usize)],
    owner: Owner,
    kind: TaskKind,
) -> String {
    let cleaned = without(predicate, dues);
    let mut s = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    loop {
        let before = s.len();
        let t = s
            .trim_end_matches(|c: char| ".,;:!?)".contains(c) || c.is_whitespace())
            .to_string();
        let lower = t.to_ascii_lowercase();
        s = [
            " please",
            " for me",
            " okay",
            " ok",
            " thanks",
            " thank you",
            " then",
            " as well",
        ]
        .iter()
        .find(|w| lower.ends_with(*w))
        .map_or(t.clone(), |w| t[..t.len() - w.len()].to_string());
        if s.len() == before {
            break;
        }
    }
    let (them, their) = match owner {
        Owner::Rep => ("the customer", "the customer's"),
        Owner::Customer => ("us", "our"),
    };
    let s = PRONOUN.replace_all(&s, |c: &regex::Captures<'_>| {
        let w = c[1].to_ascii_lowercase();
        let other = match kind {
            // The speaker promised; "you" is the other party.
            TaskKind::Commitment => matches!(w.as_str(), "you" | "your" | "yours"),
            // The speaker asked; "me"/"us" is the other party.
            TaskKind::Request => matches!(w.as_str(), "me" | "my" | "us" | "our"),
        };
        if !other {
            return c[1].to_string();
        }
        match w.as_str() {
            "your" | "my" | "our" => their.to_string(),
            "yours" => format!("{their}s").replace("'ss", "'s"),
            _ => them.to_string(),
        }
    });
    let mut out = String::new();
    for word in s.split(' ') {
        if out.len() + word.len() + 1 > 60 {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    let mut chars = out.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => out,
    }
}
