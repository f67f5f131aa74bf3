//! What trainers curate: scripts (话术) and risk-lexicon entries.

use serde::{Deserialize, Serialize};

/// Workflow state of a script or a lexicon entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    InReview,
    Approved,
    Retired,
}

impl Status {
    /// Whether the workflow allows `self → to`. An edit of approved content
    /// starts a new draft version (the approved one stays live until the edit
    /// is approved); retired content can be revived only as a new draft.
    pub fn can_move_to(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Draft, InReview)
                | (InReview, Draft)
                | (InReview, Approved)
                | (Approved, Draft)
                | (Approved, Retired)
                | (Draft, Retired)
                | (InReview, Retired)
                | (Retired, Draft)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::InReview => "in_review",
            Status::Approved => "approved",
            Status::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "draft" => Status::Draft,
            "in_review" => Status::InReview,
            "approved" => Status::Approved,
            "retired" => Status::Retired,
            _ => return None,
        })
    }
}

/// Language of a script or lexicon entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Zh,
    En,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::En => "en",
        }
    }

    /// Accepts `zh`, `zh-CN`, `中文`, `en`, `en-US`, `英文`, case-insensitive.
    pub fn parse(s: &str) -> Option<Language> {
        let l = s.trim().to_ascii_lowercase();
        match l.as_str() {
            "zh" | "zh-cn" | "zh-hans" | "cn" | "chinese" | "中文" | "汉语" => {
                Some(Language::Zh)
            }
            "en" | "en-us" | "en-gb" | "english" | "英文" | "英语" => Some(Language::En),
            _ => None,
        }
    }
}

/// When a script is used in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// 开场白
    Opening,
    /// 需求挖掘
    NeedsDiscovery,
    /// 产品介绍
    ProductIntro,
    /// 价格异议
    PriceObjection,
    /// 竞品对比
    CompetitorComparison,
    /// 信任建立
    Trust,
    /// 促成成交
    Closing,
    /// 售后服务
    AfterSales,
    /// 投诉处理
    Complaint,
    /// 物流交付
    Delivery,
    /// 付款与发票
    Payment,
    /// 跟进回访
    FollowUp,
}

impl Scenario {
    pub const ALL: [Scenario; 12] = [
        Scenario::Opening,
        Scenario::NeedsDiscovery,
        Scenario::ProductIntro,
        Scenario::PriceObjection,
        Scenario::CompetitorComparison,
        Scenario::Trust,
        Scenario::Closing,
        Scenario::AfterSales,
        Scenario::Complaint,
        Scenario::Delivery,
        Scenario::Payment,
        Scenario::FollowUp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Opening => "opening",
            Scenario::NeedsDiscovery => "needs_discovery",
            Scenario::ProductIntro => "product_intro",
            Scenario::PriceObjection => "price_objection",
            Scenario::CompetitorComparison => "competitor_comparison",
            Scenario::Trust => "trust",
            Scenario::Closing => "closing",
            Scenario::AfterSales => "after_sales",
            Scenario::Complaint => "complaint",
            Scenario::Delivery => "delivery",
            Scenario::Payment => "payment",
            Scenario::FollowUp => "follow_up",
        }
    }

    /// The Chinese label trainers use.
    pub fn label_zh(self) -> &'static str {
        match self {
            Scenario::Opening => "开场白",
            Scenario::NeedsDiscovery => "需求挖掘",
            Scenario::ProductIntro => "产品介绍",
            Scenario::PriceObjection => "价格异议",
            Scenario::CompetitorComparison => "竞品对比",
            Scenario::Trust => "信任建立",
            Scenario::Closing => "促成成交",
            Scenario::AfterSales => "售后服务",
            Scenario::Complaint => "投诉处理",
            Scenario::Delivery => "物流交付",
            Scenario::Payment => "付款发票",
            Scenario::FollowUp => "跟进回访",
        }
    }

    /// Accepts the snake_case name or the Chinese label.
    pub fn parse(s: &str) -> Option<Scenario> {
        let t = s.trim();
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.as_str().eq_ignore_ascii_case(t) || sc.label_zh() == t)
    }
}

/// The editable content of a script. Versions store one of these each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptContent {
    pub title: String,
    pub body: String,
    pub scenario: Scenario,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub products: Vec<String>,
    pub language: Language,
}

/// What a risk entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskCategory {
    /// 飞单 / 私下交易: taking a deal off the company's books.
    SideDeal,
    /// 返点 / 回扣
    Kickback,
    /// 加私人微信 / 私号
    PrivateContact,
    /// Disparaging or steering to competitors.
    Competitor,
    /// Insults, threats.
    Abuse,
    /// 保证收益 / 绝对 / 百分百: promises the company cannot keep.
    OverPromising,
    /// Phrases compliance requires (or forbids) — e.g. recorded-call notice.
    CompliancePhrase,
}

impl RiskCategory {
    pub const ALL: [RiskCategory; 7] = [
        RiskCategory::SideDeal,
        RiskCategory::Kickback,
        RiskCategory::PrivateContact,
        RiskCategory::Competitor,
        RiskCategory::Abuse,
        RiskCategory::OverPromising,
        RiskCategory::CompliancePhrase,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RiskCategory::SideDeal => "side_deal",
            RiskCategory::Kickback => "kickback",
            RiskCategory::PrivateContact => "private_contact",
            RiskCategory::Competitor => "competitor",
            RiskCategory::Abuse => "abuse",
            RiskCategory::OverPromising => "over_promising",
            RiskCategory::CompliancePhrase => "compliance_phrase",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            RiskCategory::SideDeal => "飞单",
            RiskCategory::Kickback => "返点",
            RiskCategory::PrivateContact => "私号",
            RiskCategory::Competitor => "竞品",
            RiskCategory::Abuse => "辱骂",
            RiskCategory::OverPromising => "过度承诺",
            RiskCategory::CompliancePhrase => "合规用语",
        }
    }

    pub fn parse(s: &str) -> Option<RiskCategory> {
        let t = s.trim();
        RiskCategory::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(t) || c.label_zh() == t)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "low" | "低" => Severity::Low,
            "medium" | "中" => Severity::Medium,
            "high" | "高" => Severity::High,
            "critical" | "严重" => Severity::Critical,
            _ => return None,
        })
    }
}

/// How a lexicon entry matches text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// Literal phrase after normalisation (Aho-Corasick).
    Phrase,
    /// A regular expression (validated at save time).
    Regex,
    /// An example sentence; text close to it in embedding space matches.
    Semantic,
}

impl MatchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchMode::Phrase => "phrase",
            MatchMode::Regex => "regex",
            MatchMode::Semantic => "semantic",
        }
    }

    pub fn parse(s: &str) -> Option<MatchMode> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "phrase" => MatchMode::Phrase,
            "regex" => MatchMode::Regex,
            "semantic" | "semantic_exemplar" | "exemplar" => MatchMode::Semantic,
            _ => return None,
        })
    }
}

/// What happens on a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskAction {
    /// Raise an alert to managers / compliance.
    Alert,
    /// Block on the device before sending (and alert).
    Block,
}

impl RiskAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskAction::Alert => "alert",
            RiskAction::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<RiskAction> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "alert" => RiskAction::Alert,
            "block" => RiskAction::Block,
            _ => return None,
        })
    }
}

/// The editable content of a risk-lexicon entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LexiconContent {
    /// The phrase, regular expression or exemplar sentence.
    pub pattern: String,
    pub category: RiskCategory,
    pub severity: Severity,
    pub match_mode: MatchMode,
    pub action: RiskAction,
    pub language: Language,
    /// Why this entry exists, for reviewers.
    #[serde(default)]
    pub note: Option<String>,
}

/// Which kind of content a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Script,
    Lexicon,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Script => "script",
            Kind::Lexicon => "lexicon",
        }
    }
}
