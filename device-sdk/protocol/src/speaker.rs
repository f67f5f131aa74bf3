//! Who spoke a line: one type for call segments, chat messages, live finals
//! and the risk engine's context rules.

use serde::{Deserialize, Serialize};

/// Which side of a conversation said a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// Our sales rep or service agent.
    Rep,
    /// The customer.
    Customer,
    /// Not known (a mixed channel, an undiarised call segment): the risk
    /// engine treats it like the rep.
    Unknown,
}

impl Speaker {
    /// The stored and wire form: `rep`, `customer`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Speaker::Rep => "rep",
            Speaker::Customer => "customer",
            Speaker::Unknown => "unknown",
        }
    }

    /// Parses the wire form and the usual synonyms in English and Chinese
    /// (`agent`, `销售`, `客户`, …); an empty string is [`Speaker::Unknown`].
    pub fn parse(s: &str) -> Option<Speaker> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "rep" | "agent" | "sales" | "staff" | "销售" | "坐席" => Speaker::Rep,
            "customer" | "client" | "客户" => Speaker::Customer,
            "unknown" | "" => Speaker::Unknown,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips() {
        for s in [Speaker::Rep, Speaker::Customer, Speaker::Unknown] {
            assert_eq!(Speaker::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(Speaker::parse(" 客户 "), Some(Speaker::Customer));
        assert_eq!(Speaker::parse("boss"), None);
    }
}
