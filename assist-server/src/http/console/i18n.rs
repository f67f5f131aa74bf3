//! Chinese first, English by the switch: each piece of copy is written in
//! both languages where it is used (`lang.t("中文", "English")`), so a page
//! reads as one text and nothing can be missing from a catalogue. Shared
//! words (roles, categories, severities, states) are here.

use assist_protocol::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The first of `zh*` / `en*` in an `Accept-Language` header by weight;
    /// Chinese when neither is there.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut it = part.trim().split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag.starts_with("zh") {
                Lang::Zh
            } else if tag.starts_with("en") {
                Lang::En
            } else {
                continue;
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Zh, |(_, l)| l)
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The HTML `lang` attribute.
    pub fn html(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    /// The copy in this language.
    pub fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    pub fn role(self, role: Role) -> &'static str {
        match role {
            Role::Rep => self.t("销售代表", "Rep"),
            Role::Manager => self.t("销售经理", "Manager"),
            Role::Trainer => self.t("培训师", "Trainer"),
            Role::Compliance => self.t("合规专员", "Compliance"),
            Role::Admin => self.t("管理员", "Admin"),
        }
    }

    pub fn category(self, c: &str) -> String {
        let s = match c {
            "side_deal" => self.t("飞单 / 私下交易", "Side deal"),
            "kickback" => self.t("返点 / 回扣", "Kickback"),
            "private_contact" => self.t("私人联系方式", "Private contact"),
            "competitor" => self.t("竞品 / 贬低对手", "Competitor"),
            "abuse" => self.t("辱骂 / 威胁", "Abuse"),
            "over_promising" => self.t("过度承诺", "Over-promising"),
            "compliance_phrase" => self.t("合规用语", "Compliance phrase"),
            other => other,
        };
        s.to_string()
    }

    pub fn severity(self, s: &str) -> String {
        let t = match s {
            "low" => self.t("低", "Low"),
            "medium" => self.t("中", "Medium"),
            "high" => self.t("高", "High"),
            "critical" => self.t("严重", "Critical"),
            other => other,
        };
        t.to_string()
    }

    pub fn status(self, s: &str) -> String {
        let t = match s {
            "open" => self.t("待处理", "Open"),
            "acknowledged" => self.t("已确认收到", "Acknowledged"),
            "resolved" => self.t("已处理", "Resolved"),
            other => other,
        };
        t.to_string()
    }

    pub fn verdict(self, v: &str) -> String {
        let t = match v {
            "confirmed" => self.t("属实", "Confirmed"),
            "false_positive" => self.t("误报", "False positive"),
            other => other,
        };
        t.to_string()
    }

    pub fn source(self, s: &str) -> String {
        let t = match s {
            "chat" => self.t("聊天", "Chat"),
            "call" => self.t("通话", "Call"),
            other => other,
        };
        t.to_string()
    }

    pub fn speaker(self, s: &str) -> String {
        let t = match s {
            "rep" => self.t("销售", "Rep"),
            "customer" => self.t("客户", "Customer"),
            _ => self.t("未知", "Unknown"),
        };
        t.to_string()
    }

    /// A unix-millisecond time as people read it (Beijing time for Chinese,
    /// UTC, labelled, for English).
    pub fn time(self, ms: i64) -> String {
        let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else {
            return String::new();
        };
        match self {
            Lang::Zh => {
                // China has one time zone and no daylight saving time.
                ts.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)))
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string()
            }
            Lang::En => ts
                .to_zoned(jiff::tz::TimeZone::UTC)
                .strftime("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_heaviest_known_language() {
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Lang::En);
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Lang::Zh
        );
        assert_eq!(Lang::from_accept_language("fr-FR,en;q=0.5"), Lang::En);
        assert_eq!(Lang::from_accept_language("de"), Lang::Zh);
        assert_eq!(Lang::from_accept_language(""), Lang::Zh);
        assert_eq!(Lang::from_accept_language("en;q=0.4,zh-TW;q=0.8"), Lang::Zh);
    }
}
