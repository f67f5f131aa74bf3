//! Chinese commitment and request patterns.

use std::sync::LazyLock;

use regex::Regex;

use super::{ClauseHit, Owner, TaskKind, without};

/// Action verbs a first-person commitment needs (longest first within a
/// prefix so 发送 wins over 发).
const COMMIT_VERBS: &[&str] = &[
    "打电话",
    "回电话",
    "回电",
    "回复",
    "答复",
    "回您",
    "回你",
    "联系",
    "发给",
    "发送",
    "发过去",
    "发到",
    "发",
    "寄给",
    "寄过去",
    "寄",
    "传给",
    "传",
    "转发",
    "转给",
    "安排",
    "确认",
    "核实",
    "核对",
    "问问",
    "问一下",
    "请示",
    "申请",
    "查一下",
    "查查",
    "查",
    "跟进",
    "准备",
    "整理",
    "提交",
    "处理",
    "落实",
    "对接",
    "沟通",
    "约",
    "预约",
    "拜访",
    "上门",
    "出方案",
    "报价",
    "修改",
    "改",
    "更新",
    "签",
    "盖章",
    "反馈",
    "同步",
    "汇报",
    "演示",
    "开通",
    "办理",
    "提供",
    "通知",
    "告诉",
    "给您",
    "给你",
    "帮您",
    "帮你",
    "让",
    "叫",
    "找",
    "过去",
    "过来",
    "付款",
    "打款",
    "转账",
    "汇款",
];

/// Extra verbs for requests ("您看一下合同", "考虑一下").
const REQUEST_ONLY_VERBS: &[&str] = &["看一下", "看看", "考虑", "填", "签字", "留", "加"];

/// Words that negate an action when they come between subject and verb.
const NEGATIONS: &[&str] = &[
    "不能",
    "不会",
    "不了",
    "没法",
    "没办法",
    "无法",
    "没有",
    "没",
    "不太",
    "不一定",
    "不用",
    "不必",
    "不要",
    "别",
    "来不及",
    "做不到",
    "不",
];

/// Signs of a future action in a first-person clause.
const COMMIT_SIGNALS: &[&str] = &[
    "会",
    "来",
    "去",
    "马上",
    "尽快",
    "这就",
    "回头",
    "稍后",
    "待会",
    "等会",
    "一会",
    "等下",
    "晚点",
    "把",
    "给您",
    "给你",
    "帮您",
    "帮你",
    "负责",
    "一下",
    "再",
    "争取",
    "保证",
    "一定",
    "肯定",
    "到时候",
    "先",
    "现在",
    "立刻",
];

/// Markers that make a commitment more certain.
const STRONG: &[&str] = &["把", "会", "给您", "给你", "马上", "一定", "保证", "负责"];

/// Signs that a second-person clause asks for something.
const REQUEST_SIGNALS: &[&str] = &[
    "把",
    "能",
    "可以",
    "帮",
    "记得",
    "一下",
    "尽快",
    "麻烦",
    "请",
    "给我",
    "发我",
    "告诉我",
    "先",
    "再",
    "要",
];

/// Question words that make a first-person clause a question, not a promise.
const QUESTION_WORDS: &[&str] = &[
    "什么",
    "怎么",
    "为什么",
    "哪",
    "几点",
    "几号",
    "多少",
    "是不是",
    "要不要",
    "能不能",
    "可不可以",
    "行不行",
    "多久",
];

/// Characters before 我/你 that make it an object ("发我", "给你").
const OBJECT_BEFORE: &[char] = &[
    '给', '发', '帮', '跟', '和', '对', '问', '找', '叫', '让', '请', '被', '诉', '知', '系', '同',
    '向', '替', '寄', '传',
];

/// Leading words dropped from a title.
const LEADING: &[&str] = &[
    "这边",
    "会",
    "来",
    "去",
    "就",
    "马上",
    "尽快",
    "这就",
    "回头",
    "稍后",
    "待会儿",
    "待会",
    "等会儿",
    "等会",
    "一会儿",
    "等下",
    "晚点",
    "先",
    "再",
    "一定",
    "肯定",
    "争取",
    "负责",
    "能不能",
    "可不可以",
    "能",
    "可以",
    "帮忙",
    "麻烦",
    "请",
    "记得",
    "也",
    "还",
    "都",
    "要",
    "立刻",
    "现在",
    "的",
    "们",
];

/// Trailing particles dropped from a title.
const TRAILING: &[&str] = &[
    "可以吗",
    "好不好",
    "行不行",
    "好吗",
    "行吗",
    "好吧",
    "吧",
    "啊",
    "哈",
    "哦",
    "呢",
    "吗",
    "呀",
    "嘛",
    "啦",
    "了",
    "的",
    "哈",
];

static BA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        "^把(?P<obj>.+?)(?P<verb>发送给|发给|发到|发过去|发送|发|寄给|寄到|寄过去|寄|传给|传|转发给|转发|转给|转|交给|带给|带|送到|送给|送)",
    )
    .expect("把 pattern")
});

fn leftmost(hay: &str, words: &[&str]) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    for w in words {
        if let Some(i) = hay.find(w) {
            let better = match best {
                None => true,
                Some((b, e)) => i < b || (i == b && i + w.len() > e),
            };
            if better {
                best = Some((i, i + w.len()));
            }
        }
    }
    best
}

fn contains_any(hay: &str, words: &[&str]) -> bool {
    words.iter().any(|w| hay.contains(w))
}

const PUNCT: &str = "，,。.！!？?；;、：~～…";

/// Strip final punctuation.
fn trim_punct(s: &str) -> &str {
    s.trim_end_matches(|c: char| c.is_whitespace() || PUNCT.contains(c))
}

/// Ends in 了 (before final punctuation and soft particles): 发您了啊.
fn ends_with_le(s: &str) -> bool {
    let mut s = trim_punct(s);
    while let Some(c) = s
        .chars()
        .next_back()
        .filter(|c| "啊哈哦呀啦嘛吧".contains(*c))
    {
        s = trim_punct(&s[..s.len() - c.len_utf8()]);
    }
    s.ends_with('了')
}

/// Strip final punctuation and particles.
fn trim_end(s: &str) -> &str {
    let mut s = trim_punct(s);
    loop {
        let before = s.len();
        for p in TRAILING {
            s = s.strip_suffix(p).unwrap_or(s);
        }
        s = trim_punct(s);
        if s.len() == before {
            return s;
        }
    }
}

/// Byte offset of the first subject (a word from `subjects` not used as an
/// object and not possessive), and its end.
fn subject(clause: &str, subjects: &[&str], not_after: &[&str]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < clause.len() {
        let rest = &clause[i..];
        if let Some(w) = subjects.iter().find(|w| rest.starts_with(*w)) {
            let prev = clause[..i].chars().next_back();
            let after = &rest[w.len()..];
            let object = prev.is_some_and(|p| OBJECT_BEFORE.contains(&p));
            if !object && !not_after.iter().any(|n| after.starts_with(n)) {
                return Some((i, i + w.len()));
            }
            i += w.len();
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    None
}

/// Whether the verb at `verb` (in `window`) is a past or relative use:
/// 发了, 发过, 发的.
fn past_verb(window: &str, verb: (usize, usize)) -> bool {
    let after = &window[verb.1..];
    (after.starts_with('了') || after.starts_with('的'))
        || (after.starts_with('过') && !after.starts_with("过去") && !after.starts_with("过来"))
}

fn negated(window: &str, verb: (usize, usize)) -> bool {
    // 能不能 / 可不可以 ask, they do not negate.
    let mut before = window[..verb.0].to_string();
    for q in [
        "能不能",
        "可不可以",
        "要不要",
        "是不是",
        "会不会",
        "行不行",
        "好不好",
        "方不方便",
    ] {
        before = before.replace(q, "");
    }
    contains_any(&before, NEGATIONS)
        || ["不了", "不出", "不到", "不过去", "不过来"]
            .iter()
            .any(|n| window[verb.1..].starts_with(n))
}

/// `continues`: the previous clause of the sentence was a commitment, so a
/// clause without a subject continues it ("我明天发报价，下周安排技术上门").
pub(super) fn analyse(clause: &str, dues: &[(usize, usize)], continues: bool) -> Option<ClauseHit> {
    commitment(clause, dues, continues).or_else(|| request(clause, dues))
}

fn commitment(clause: &str, dues: &[(usize, usize)], continues: bool) -> Option<ClauseHit> {
    let found = subject(
        clause,
        &["我们这边", "我这边", "我们", "咱们", "我", "本人"],
        &["的", "们公司"],
    );
    let has_second_person =
        subject(clause, &["你们", "您们", "您", "你"], &["好"]).is_some_and(|(a, _)| a == 0);
    let s_end = match found {
        Some((_, e)) => e,
        None if continues && !has_second_person => {
            let lead = clause.trim_start_matches(|c: char| {
                c.is_whitespace() || "然后再还并且另外同时也那".contains(c)
            });
            clause.len() - lead.len()
        }
        None => return None,
    };
    let window = &clause[s_end..];
    // Dates are not verbs (周五 has no verb, but 明天 must not hide one).
    let window_dates: Vec<(usize, usize)> = dues
        .iter()
        .filter(|&&(a, _)| a >= s_end)
        .map(|&(a, b)| (a - s_end, b - s_end))
        .collect();
    let verb = leftmost(window, COMMIT_VERBS)?;
    if negated(window, verb) || past_verb(window, verb) {
        return None;
    }
    if contains_any(window, &["已经", "刚才", "刚刚", "之前", "昨天", "上次"]) {
        return None;
    }
    if contains_any(window, QUESTION_WORDS) {
        return None;
    }
    let future = contains_any(window, &["会", "马上", "就", "待会", "等会", "一会"]);
    if ends_with_le(window) && !future {
        return None;
    }
    let dated = !window_dates.is_empty();
    let after_verb = &window[verb.1..];
    let signal = dated
        || contains_any(window, COMMIT_SIGNALS)
        || after_verb.starts_with('您')
        || after_verb.starts_with('你');
    if !signal {
        return None;
    }
    let mut adjust = 0.0;
    if contains_any(window, STRONG) {
        adjust += 0.1;
    }
    if clause.trim_end().ends_with(['？', '?']) || trim_punct(clause).ends_with('吗') {
        adjust -= 0.15;
    }
    Some(ClauseHit {
        kind: TaskKind::Commitment,
        predicate: (s_end, clause.len()),
        adjust,
    })
}

fn request(clause: &str, dues: &[(usize, usize)]) -> Option<ClauseHit> {
    let lead =
        clause.trim_start_matches(|c: char| c.is_whitespace() || "那就好嗯对哦行喂".contains(c));
    let lead_at = clause.len() - lead.len();
    let imperative = ["麻烦", "请", "记得", "帮我", "帮忙", "把"]
        .iter()
        .find(|w| lead.starts_with(*w) && !lead.starts_with("请问"))
        .map(|_| lead_at);
    let start = match subject(
        clause,
        &["你们", "您们", "您", "你"],
        &[
            "好",
            "的",
            "说",
            "觉得",
            "看呢",
            "看可以",
            "看行",
            "看怎么",
            "知道",
        ],
    ) {
        Some((_, e)) => Some(e),
        None => imperative,
    }?;
    let window = &clause[start..];
    let mut verbs: Vec<&str> = COMMIT_VERBS.to_vec();
    verbs.extend_from_slice(REQUEST_ONLY_VERBS);
    let verb = leftmost(window, &verbs)?;
    if negated(window, verb) || past_verb(window, verb) {
        return None;
    }
    if contains_any(window, &["已经", "刚才", "刚刚", "昨天", "上次"]) {
        return None;
    }
    // "有什么可以帮您", "你们一般多久发货": questions about, not requests for.
    if contains_any(
        window,
        &[
            "什么",
            "怎么",
            "为什么",
            "哪",
            "多少",
            "多久",
            "几点",
            "几号",
        ],
    ) {
        return None;
    }
    let after_verb = &window[verb.1..];
    let dated = dues.iter().any(|&(a, _)| a >= start);
    let signal = imperative.is_some()
        || dated
        || contains_any(window, REQUEST_SIGNALS)
        || after_verb.starts_with('我')
        || trim_punct(window).ends_with(['吗', '呢']);
    if !signal {
        return None;
    }
    Some(ClauseHit {
        kind: TaskKind::Request,
        predicate: (start, clause.len()),
        adjust: 0.0,
    })
}

/// The title: predicate without dates, modal words and particles; 把 phrases
/// as verb + object; pronouns from the owner's point of view; at most 20
/// characters.
pub(super) fn title(
    predicate: &str,
    dues: &[(usize, usize)],
    owner: Owner,
    kind: TaskKind,
) -> String {
    let cleaned = without(predicate, dues);
    let mut s: &str = cleaned.trim();
    loop {
        let before = s.len();
        s = s.trim_start_matches(|c: char| c.is_whitespace() || "，,、".contains(c));
        for w in LEADING {
            s = s.strip_prefix(w).unwrap_or(s);
        }
        if s.len() == before {
            break;
        }
    }
    let s = trim_end(s);
    let mut title = match BA.captures(s) {
        Some(c) => {
            let verb = &c["verb"];
            let base = match verb {
                v if v.starts_with("发送") => "发送",
                v if v.starts_with("转发") => "转发",
                v => &v[..v.chars().next().map_or(0, char::len_utf8)],
            };
            format!("{base}{}", &c["obj"])
        }
        None => s.to_string(),
    };
    // Pronouns from the owner's point of view.
    let other = match owner {
        Owner::Rep => "客户",
        Owner::Customer => "我方",
    };
    for (from, to) in [
        ("发您", "发给您"),
        ("发你", "发给你"),
        ("寄您", "寄给您"),
        ("传您", "传给您"),
    ] {
        title = title.replace(from, to);
    }
    match kind {
        TaskKind::Commitment => {
            for p in ["您们", "你们", "您", "你"] {
                title = title.replace(p, other);
            }
        }
        TaskKind::Request => {
            for p in ["我们", "我"] {
                title = title.replace(p, other);
            }
            for p in ["您们", "你们", "您", "你"] {
                title = title.replace(p, "");
            }
        }
    }
    title.chars().take(20).collect()
}
