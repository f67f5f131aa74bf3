//! Negation and speaker-role context: when a hit is not a risk.
//!
//! **Negation.** A hit is *negated* when its clause (text between 。，！？;,
//! line breaks …) has a negation cue shortly before it ("我们**不能**私下交易",
//! "请**不要**转到个人账户", "we **can't** offer kickbacks") or a prohibition
//! right after it ("私下交易是**违规**的", "kickbacks are **not allowed**").
//! Not negations: A-not-A questions (能不能, 可不可以, 要不要), fixed words
//! (不好意思, 不如, 要不, 不然, 别的, why not) and requests phrased as a
//! negative question ("你们不能私下便宜点吗？", "can't you just pay me
//! directly?"). A negated hit is returned with [`Suppression::Negated`]: the
//! rep said the compliant thing, nobody is alerted.
//!
//! **Role.** Reps (our staff) are who the lexicon is about. For the
//! customer's side of a conversation, per category ([`role_effect`]):
//!
//! | category | rep / unknown | customer |
//! |---|---|---|
//! | side_deal, kickback, private_contact | as the entry says | one severity lower: the customer *asking* is a warning sign, the rep's answer is what matters |
//! | abuse | as the entry says | as the entry says (reps are protected too) |
//! | competitor, over_promising, compliance_phrase | as the entry says | suppressed ([`Suppression::Role`]): a customer naming a competitor or asking for a guarantee is ordinary talk |
//!
//! Contact details the customer gives (their own phone number) are
//! suppressed by the pattern detectors themselves.

use assist_knowledge_base::{RiskCategory, Severity};
use serde::{Deserialize, Serialize};

use super::normalize::{View, normalize};

pub use assist_protocol::Speaker;

/// Why a hit raises no alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppression {
    /// Said in the negative: a compliance statement, not a risk.
    Negated,
    /// The category does not apply to what this speaker says.
    Role,
}

/// What the speaker's role does to a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleEffect {
    Keep,
    Downgrade,
    Suppress,
}

/// See the table in the [module docs](self).
pub fn role_effect(category: RiskCategory, role: Speaker) -> RoleEffect {
    match (role, category) {
        (Speaker::Rep | Speaker::Unknown, _) => RoleEffect::Keep,
        (
            Speaker::Customer,
            RiskCategory::SideDeal | RiskCategory::Kickback | RiskCategory::PrivateContact,
        ) => RoleEffect::Downgrade,
        (Speaker::Customer, RiskCategory::Abuse) => RoleEffect::Keep,
        (
            Speaker::Customer,
            RiskCategory::Competitor | RiskCategory::OverPromising | RiskCategory::CompliancePhrase,
        ) => RoleEffect::Suppress,
    }
}

/// One step lower, never below low.
pub fn downgrade(s: Severity) -> Severity {
    match s {
        Severity::Critical => Severity::High,
        Severity::High => Severity::Medium,
        Severity::Medium | Severity::Low => Severity::Low,
    }
}

fn is_boundary(c: char) -> bool {
    matches!(
        c,
        '。' | '！'
            | '？'
            | '!'
            | '?'
            | ';'
            | '；'
            | ','
            | '，'
            | '、'
            | '\n'
            | '\r'
            | '…'
            | '～'
            | '~'
            | '.'
    )
}

/// Chinese negation cues (on compact normalised text).
const ZH_CUES: &[&str] = &[
    "不能",
    "不可以",
    "不可",
    "不会",
    "不要",
    "不得",
    "不允许",
    "不准",
    "不许",
    "不让",
    "不接受",
    "不收",
    "不做",
    "不给",
    "不提供",
    "不搞",
    "不应该",
    "不应",
    "不该",
    "不加",
    "不私下",
    "不存在",
    "没有",
    "没法",
    "没办法",
    "从没",
    "别",
    "勿",
    "禁止",
    "严禁",
    "拒绝",
    "杜绝",
    "无法",
    "绝不",
    "从不",
    "不是",
];

/// Cues that make a request when the clause is a question ("不能…吗？").
const ZH_REQUEST_CUES: &[&str] = &["不能", "不可以", "不可", "不会", "不给", "不加", "不是"];

/// Words containing a cue that are not negations, blanked before the search.
const ZH_NOT_CUES: &[&str] = &[
    "能不能",
    "可不可以",
    "可不可",
    "要不要",
    "会不会",
    "给不给",
    "加不加",
    "是不是",
    "行不行",
    "好不好",
    "有没有",
    "不好意思",
    "不如",
    "要不",
    "不然",
    "不妨",
    "别的",
    "别人",
    "别家",
    "特别",
    "区别",
    "分别",
    "级别",
    "类别",
    "识别",
    "个别",
    "告别",
    "差别",
    "不会吧",
    "不是吗",
];

/// Prohibitions after the hit ("私下交易是违规的").
const ZH_POST_CUES: &[&str] = &[
    "违规",
    "违反",
    "禁止",
    "不允许",
    "不可以",
    "不行",
    "不能",
    "不合规",
    "不被允许",
    "严禁",
];

/// English negation tokens (apostrophes removed).
const EN_CUES: &[&str] = &[
    "not",
    "no",
    "never",
    "dont",
    "cant",
    "cannot",
    "wont",
    "shouldnt",
    "mustnt",
    "isnt",
    "arent",
    "doesnt",
    "didnt",
    "wouldnt",
    "couldnt",
    "neither",
    "nor",
    "without",
    "refuse",
    "refuses",
    "prohibited",
    "forbidden",
];

const EN_POST_CUES: &[&str] = &[
    "prohibited",
    "forbidden",
    "against",
    "banned",
    "illegal",
    "violates",
    "violation",
];

/// Zh window: cue end to hit start, in normalised chars.
const ZH_WINDOW: usize = 14;
/// En window: tokens before the hit.
const EN_WINDOW: usize = 6;

/// Clause around original char range `[start, end)`: (clause start, clause end, is a question).
fn clause(chars: &[char], start: usize, end: usize) -> (usize, usize, bool) {
    let mut a = start.min(chars.len());
    while a > 0 && !is_boundary(chars[a - 1]) {
        a -= 1;
    }
    let mut b = end.min(chars.len());
    while b < chars.len() && !is_boundary(chars[b]) {
        b += 1;
    }
    let tail: String = chars[end.min(b)..b]
        .iter()
        .filter(|c| c.is_alphanumeric())
        .collect();
    let question = chars.get(b).is_some_and(|c| matches!(c, '?' | '？'))
        || tail.ends_with('吗')
        || tail.ends_with('嘛')
        || tail.ends_with('么');
    (a, b, question)
}

fn blank_not_cues(s: &str) -> String {
    let mut s = s.to_string();
    for w in ZH_NOT_CUES {
        if s.contains(w) {
            s = s.replace(w, &"_".repeat(w.chars().count()));
        }
    }
    s
}

fn en_tokens(s: &str) -> Vec<String> {
    s.to_lowercase()
        .replace(['\'', '’', '`'], "")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether a negation cue in `pre` (text before the hit in its clause) governs it.
fn pre_negated(pre: &str, question: bool) -> bool {
    // Chinese: cues near the end of the compact text.
    let compact = blank_not_cues(normalize(pre, View::Compact).as_str());
    let n = compact.chars().count();
    for cue in ZH_CUES {
        for (byte, _) in compact.match_indices(cue) {
            let cue_end = compact[..byte].chars().count() + cue.chars().count();
            if n - cue_end > ZH_WINDOW {
                continue;
            }
            if question && ZH_REQUEST_CUES.contains(cue) {
                continue;
            }
            return true;
        }
    }
    // English: cue tokens among the last few words.
    let toks = en_tokens(pre);
    let from = toks.len().saturating_sub(EN_WINDOW);
    for i in from..toks.len() {
        let t = toks[i].as_str();
        if !EN_CUES.contains(&t) {
            continue;
        }
        let prev = i.checked_sub(1).map(|p| toks[p].as_str());
        let next = toks.get(i + 1).map(String::as_str);
        if prev == Some("why") {
            continue; // why not, why don't we
        }
        if t == "no" && matches!(next, Some("problem" | "worries" | "doubt")) {
            continue;
        }
        if t == "not" && next == Some("only") {
            continue;
        }
        if question
            && matches!(t, "cant" | "couldnt" | "wont" | "dont" | "cannot")
            && matches!(next, Some("you" | "we" | "i"))
        {
            continue;
        }
        return true;
    }
    false
}

fn post_negated(post: &str, question: bool) -> bool {
    if question {
        return false;
    }
    let compact = normalize(post, View::Compact);
    let head: String = compact.as_str().chars().take(ZH_WINDOW).collect();
    if ZH_POST_CUES.iter().any(|c| head.contains(c)) {
        return true;
    }
    let toks = en_tokens(post);
    let head = &toks[..toks.len().min(EN_WINDOW + 2)];
    head.iter().any(|t| EN_POST_CUES.contains(&t.as_str()))
        || head
            .windows(2)
            .any(|w| w[0] == "not" && matches!(w[1].as_str(), "allowed" | "permitted" | "ok"))
}

/// Whether the hit at original chars `[start, end)` of `text` is said in the negative.
pub fn is_negated(text: &str, start: usize, end: usize) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let (a, b, question) = clause(&chars, start, end);
    let pre: String = chars[a..start.min(chars.len())].iter().collect();
    let post: String = chars[end.min(b)..b].iter().collect();
    pre_negated(&pre, question) || post_negated(&post, question)
}

/// Whether any clause of `text` is a refusal or prohibition. Used for hits
/// that have no span of their own (semantic similarity of a whole message).
pub fn has_refusal(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let mut a = 0;
    while a < chars.len() {
        let mut b = a;
        while b < chars.len() && !is_boundary(chars[b]) {
            b += 1;
        }
        if b > a {
            let (_, _, question) = clause(&chars, a, b);
            let s: String = chars[a..b].iter().collect();
            if pre_negated(&s, question) || post_negated(&s, question) {
                return true;
            }
        }
        a = b + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(text: &str, phrase: &str) -> bool {
        let byte = text.find(phrase).expect("phrase in text");
        let start = text[..byte].chars().count();
        is_negated(text, start, start + phrase.chars().count())
    }

    #[test]
    fn chinese_negation() {
        assert!(neg("我们不能私下交易", "私下交易"));
        assert!(neg("公司规定不得以任何形式收取客户回扣", "回扣"));
        assert!(neg("请不要把钱转到个人账户", "个人账户"));
        assert!(neg("私下交易是违规的，您放心", "私下交易"));
        assert!(neg("我們不能私下交易", "私下交易"));
        assert!(!neg("能不能给点返点", "返点"));
        assert!(!neg("不好意思，加我微信吧", "加我微信"));
        assert!(!neg("不如加我微信聊", "加我微信"));
        assert!(!neg("你们不能私下便宜点吗？", "私下"));
        assert!(!neg("这个不行，你私下转我吧", "私下"));
        assert!(!neg("返点不是问题", "返点"));
    }

    #[test]
    fn english_negation() {
        assert!(neg("We can't offer kickbacks.", "kickbacks"));
        assert!(neg("we don't do side deals", "side deals"));
        assert!(neg("Side deals are not allowed here", "Side deals"));
        assert!(!neg("Can't you just pay me directly?", "pay me directly"));
        assert!(!neg("why not add me on WeChat", "add me on WeChat"));
        assert!(!neg("No problem, add me on WeChat", "add me on WeChat"));
    }

    #[test]
    fn refusal_anywhere() {
        assert!(has_refusal("王总，这个我们真的不能私下操作，都要走合同"));
        assert!(!has_refusal("王总，私下操作一下，价格好说"));
        assert!(has_refusal(
            "Sorry, we cannot do that outside the contract."
        ));
    }

    #[test]
    fn role_policy() {
        assert_eq!(
            role_effect(RiskCategory::Kickback, Speaker::Customer),
            RoleEffect::Downgrade
        );
        assert_eq!(
            role_effect(RiskCategory::Competitor, Speaker::Customer),
            RoleEffect::Suppress
        );
        assert_eq!(
            role_effect(RiskCategory::Abuse, Speaker::Customer),
            RoleEffect::Keep
        );
        assert_eq!(
            role_effect(RiskCategory::OverPromising, Speaker::Unknown),
            RoleEffect::Keep
        );
        assert_eq!(downgrade(Severity::Low), Severity::Low);
        assert_eq!(downgrade(Severity::Critical), Severity::High);
    }
}
