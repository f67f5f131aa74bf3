//! Built-in pattern detectors: things a word list cannot express.
//!
//! | detector | finds | category |
//! |---|---|---|
//! | `phone_number` | mainland mobile numbers (`+86`, spaced, Chinese numerals 一三八…) | private_contact |
//! | `wechat_id` | a WeChat id after 微信/vx/wx… ("微信号 abc123") | private_contact |
//! | `qq_number` | a QQ number after qq/扣扣/企鹅号 | private_contact |
//! | `qr_code` | "scan my (personal) QR code"; with payment words it is side_deal | private_contact / side_deal |
//! | `bank_card` | 16–19 digits passing the Luhn check, next to a card/account word or UnionPay-prefixed | side_deal |
//! | `personal_payment` | payment to a personal account, 个人收款码, "pay me directly" | side_deal |
//! | `red_packet` | giving someone a red packet (红包), not 红包 as a product feature | kickback |
//!
//! All run on the compact normalised text (Chinese) or the spaced one
//! (English). Numbers next to order / invoice / tracking words are not phone
//! numbers; numbers on the operator's allow-list (hotlines, registered work
//! phones) are ignored. Contact details and card numbers that a *customer*
//! gives are their own: those hits come back suppressed for the role.

use std::collections::HashSet;
use std::sync::Arc;

use assist_knowledge_base::{RiskAction, RiskCategory, Severity};
use regex::Regex;

use super::normalize::Normalized;
use super::{Candidate, Detector};

/// Words before a digit run that make it a reference number, not a contact.
const REFERENCE_CUES: &[&str] = &[
    "订单",
    "单号",
    "运单",
    "快递",
    "物流",
    "编号",
    "工号",
    "流水",
    "发票",
    "合同",
    "型号",
    "序列号",
    "批次",
    "工单",
    "税号",
    "票号",
    "价格",
    "金额",
    "报价",
    "order",
    "invoice",
    "tracking",
    "ticket",
    "ref",
    "sku",
    "serial",
    "po",
];

/// Words before a digit run that make it a card or account number.
const CARD_CUES: &[&str] = &[
    "卡号",
    "银行卡",
    "卡",
    "账号",
    "账户",
    "工行",
    "建行",
    "农行",
    "中行",
    "招行",
    "交行",
    "邮储",
    "card",
    "account",
    "acct",
];

const PAYMENT_WORDS: &[&str] = &["收款", "付款", "转账", "支付", "付钱", "打款"];

/// Features of 红包 as a product, not a gift.
const RED_PACKET_PRODUCT: &[&str] = &[
    "封面", "雨", "功能", "活动", "模板", "插件", "营销", "裂变", "卡券", "玩法", "工具", "模块",
];

/// The compiled detectors. Cheap to clone (regexes are reference counted).
#[derive(Debug, Clone)]
pub(crate) struct Patterns {
    digits: Regex,
    wechat: Regex,
    qq: Regex,
    qr: Regex,
    red_zh: Regex,
    red_en: Regex,
    pay_zh: Regex,
    pay_en: Regex,
    allowed: Arc<HashSet<String>>,
}

fn rx(s: &str) -> Regex {
    Regex::new(s).expect("built-in detector regexes are valid (covered by tests)")
}

impl Patterns {
    pub fn new(allowed_numbers: &[String]) -> Self {
        let allowed = allowed_numbers
            .iter()
            .map(|n| n.chars().filter(char::is_ascii_digit).collect::<String>())
            .filter(|n| !n.is_empty())
            .collect();
        Patterns {
            digits: rx(r"[0-9]+"),
            wechat: rx(r"微信(号|id)?(是|为|搜|搜索|is)?([a-z][a-z0-9]{5,19})"),
            qq: rx(r"qq(号码|号)?(是|为|is)?([1-9][0-9]{4,10})"),
            qr: rx(r"扫(一下|一扫)?我(的)?(个人|私人)?(微信|支付宝)?(收款|付款)?(二维码|码)"),
            red_zh: rx(
                r"(发|给|包|塞|转|私发)(你|您)(发|包)?(一)?(个|了)?(大|小)?红包|红包(发|给|转)(你|您)|(发|给|包)(一)?个(大|小)?红包(给|表示|意思)",
            ),
            red_en: rx(
                r"\b(send|give|slip|transfer)\s+you\s+(a\s+)?(little\s+|small\s+|big\s+)?(red\s+(envelope|packet)s?|hongbao|红包|lucky\s+money)\b",
            ),
            pay_zh: rx(
                r"(转|打|汇|付)(账|款|钱)?(到|给|进)?我(的)?(个人|私人|自己)(的)?(账户|账号|卡|银行卡|微信|支付宝)|(个人|私人|我的)(微信|支付宝)?收款(码|二维码)|收款(码|二维码).{0,8}(个人|私人)|(直接|私下)(转账|打款|付款|转钱|打钱|付钱|转|付)(给)?我",
            ),
            pay_en: rx(
                r"\b(pay|transfer|send|wire)\b(\s+\w+){0,3}?\s+(to\s+|into\s+)?my\s+(own\s+|personal\s+|private\s+)(bank\s+)?(account|card|alipay|支付宝|wechat|微信|paypal)\b|\bpay\s+me\s+(directly|personally|in\s+cash)\b|\bpay\s+(the\s+rest\s+|the\s+difference\s+|cash\s+|it\s+)?(to\s+me|directly\s+to\s+me)\b|\bmy\s+(personal\s+)?(payment|pay|微信|支付宝)\s+qr\b",
            ),
            allowed: Arc::new(allowed),
        }
    }

    pub fn find(&self, compact: &Normalized, spaced: &Normalized, out: &mut Vec<Candidate>) {
        let c = compact.as_str();
        for view in [compact, spaced] {
            for m in self.digits.find_iter(view.as_str()) {
                self.number(view, m.start(), m.end(), out);
            }
        }
        for caps in self.wechat.captures_iter(c) {
            let (m, id) = (caps.get(0).expect("match"), &caps[3]);
            let marked = caps.get(1).is_some() || caps.get(2).is_some();
            if before(c, m.start(), 2).ends_with("企业")
                || before(c, m.start(), 2).ends_with("公众")
            {
                continue;
            }
            if !marked && !id.chars().any(|ch| ch.is_ascii_digit()) {
                continue;
            }
            out.push(pattern(
                compact,
                m.start(),
                m.end(),
                "wechat_id",
                RiskCategory::PrivateContact,
                Severity::High,
                0.85,
                true,
            ));
        }
        for m in self.qq.find_iter(c) {
            out.push(pattern(
                compact,
                m.start(),
                m.end(),
                "qq_number",
                RiskCategory::PrivateContact,
                Severity::High,
                0.85,
                true,
            ));
        }
        for m in self.qr.find_iter(c) {
            let around = format!("{}{}", m.as_str(), after(c, m.end(), 6));
            if PAYMENT_WORDS.iter().any(|w| around.contains(w)) {
                out.push(pattern(
                    compact,
                    m.start(),
                    m.end(),
                    "qr_code",
                    RiskCategory::SideDeal,
                    Severity::High,
                    0.85,
                    false,
                ));
            } else {
                out.push(pattern(
                    compact,
                    m.start(),
                    m.end(),
                    "qr_code",
                    RiskCategory::PrivateContact,
                    Severity::Medium,
                    0.75,
                    false,
                ));
            }
        }
        for m in self.red_zh.find_iter(c) {
            let next = after(c, m.end(), 3);
            if RED_PACKET_PRODUCT.iter().any(|w| next.starts_with(w)) {
                continue;
            }
            out.push(pattern(
                compact,
                m.start(),
                m.end(),
                "red_packet",
                RiskCategory::Kickback,
                Severity::High,
                0.8,
                false,
            ));
        }
        for m in self.red_en.find_iter(spaced.as_str()) {
            out.push(pattern(
                spaced,
                m.start(),
                m.end(),
                "red_packet",
                RiskCategory::Kickback,
                Severity::High,
                0.8,
                false,
            ));
        }
        for m in self.pay_zh.find_iter(c) {
            out.push(pattern(
                compact,
                m.start(),
                m.end(),
                "personal_payment",
                RiskCategory::SideDeal,
                Severity::High,
                0.85,
                false,
            ));
        }
        for m in self.pay_en.find_iter(spaced.as_str()) {
            out.push(pattern(
                spaced,
                m.start(),
                m.end(),
                "personal_payment",
                RiskCategory::SideDeal,
                Severity::High,
                0.85,
                false,
            ));
        }
    }

    /// A maximal run of ASCII digits at `[start, end)` of `view`.
    fn number(&self, view: &Normalized, start: usize, end: usize, out: &mut Vec<Candidate>) {
        let s = view.as_str();
        let digits = &s[start..end];
        let prefix = before(s, start, 8);
        if REFERENCE_CUES.iter().any(|w| prefix.contains(w)) {
            return;
        }
        let mobile = match digits.len() {
            11 => Some(digits),
            13 if digits.starts_with("86") => Some(&digits[2..]),
            _ => None,
        }
        .filter(|d| d.starts_with('1') && matches!(d.as_bytes()[1], b'3'..=b'9'));
        if let Some(d) = mobile {
            if !self.allowed.contains(d) && !self.allowed.contains(digits) {
                out.push(pattern(
                    view,
                    start,
                    end,
                    "phone_number",
                    RiskCategory::PrivateContact,
                    Severity::Medium,
                    0.9,
                    true,
                ));
            }
            return;
        }
        if (16..=19).contains(&digits.len()) && luhn(digits) {
            let cue = CARD_CUES.iter().any(|w| before(s, start, 10).contains(w));
            if cue || digits.starts_with("62") {
                out.push(pattern(
                    view,
                    start,
                    end,
                    "bank_card",
                    RiskCategory::SideDeal,
                    Severity::High,
                    0.9,
                    true,
                ));
            }
        }
    }
}

/// Up to `n` chars of `s` before byte `at`.
fn before(s: &str, at: usize, n: usize) -> String {
    let head = &s[..at];
    let skip = head.chars().count().saturating_sub(n);
    head.chars().skip(skip).collect()
}

/// Up to `n` chars of `s` from byte `at`.
fn after(s: &str, at: usize, n: usize) -> String {
    s[at..].chars().take(n).collect()
}

#[allow(clippy::too_many_arguments)]
fn pattern(
    view: &Normalized,
    start: usize,
    end: usize,
    name: &'static str,
    category: RiskCategory,
    severity: Severity,
    confidence: f32,
    customer_exempt: bool,
) -> Candidate {
    let (start, end) = view.original_span(start, end);
    Candidate {
        category,
        severity,
        action: RiskAction::Alert,
        detector: Detector::Pattern,
        rule: Arc::from(name),
        confidence,
        start,
        end,
        customer_exempt,
    }
}

/// The Luhn checksum of a card number (digits only).
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let Some(d) = (b as char).to_digit(10) else {
            return false;
        };
        sum += if i % 2 == 1 {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        } else {
            d
        };
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_checks() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("79927398713"));
        assert!(!luhn("79927398710"));
        assert!(!luhn(""));
        assert!(!luhn("12a4"));
    }

    #[test]
    fn built_in_regexes_compile() {
        let _ = Patterns::new(&["400-800-1234".into()]);
    }
}
