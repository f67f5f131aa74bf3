//! Personal contacts stay on the phone.
//!
//! The rep keeps an exclusion list in the outbox database: phone numbers
//! (normalised to digits), contact ids, number prefixes, and whether contacts
//! the phone marks as personal are excluded (default: yes). A call or chat
//! with an excluded party is never queued; only the count is reported, as
//! [`DeviceEventKind::PrivacyExcluded`](assist_protocol::device::DeviceEventKind)
//! events, so managers see that something was excluded but never what.
//!
//! Number matching: all but digits is dropped (`+86 138-0013-8000` →
//! `8613800138000`; a leading international `00` is dropped too). Two numbers
//! match when equal, or when the shorter has at least 7 digits and is the
//! tail of the other (so a number saved with or without the country code
//! still matches — privacy errs on the side of excluding). A prefix matches
//! the start of the digits, and for a number written with `+`/`00` and the
//! home country code (default 86) also the start of the national part.

use std::path::Path;

use rusqlite::params;
use serde::Serialize;

use crate::outbox::{Enqueued, NewChat, NewRecording};
use crate::{Error, Outbox, Result};

/// Shortest number that matches another by its tail.
const MIN_TAIL_DIGITS: usize = 7;
const KV_MARKED: &str = "privacy.exclude_marked_personal";
const KV_COUNTRY: &str = "privacy.country_code";

/// The other side of a call or chat.
#[derive(Debug, Clone, Copy, Default)]
pub struct Party<'a> {
    pub phone: Option<&'a str>,
    pub contact_id: Option<&'a str>,
    /// The phone's contact book marks this contact as personal.
    pub marked_personal: bool,
}

/// Calls or chats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivateItem {
    Call,
    Chat,
}

impl PrivateItem {
    pub fn as_str(self) -> &'static str {
        match self {
            PrivateItem::Call => "call",
            PrivateItem::Chat => "chat",
        }
    }
}

/// Why a party is excluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", content = "value", rename_all = "snake_case")]
pub enum Exclusion {
    Number(String),
    Prefix(String),
    Contact(String),
    MarkedPersonal,
}

/// The exclusion list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PrivacyList {
    pub numbers: Vec<String>,
    pub prefixes: Vec<String>,
    pub contacts: Vec<String>,
    pub exclude_marked_personal: bool,
    pub country_code: String,
    /// Excluded so far (calls, chats), since the list was created.
    pub excluded_calls: u64,
    pub excluded_chats: u64,
}

/// What happened to an item offered through [`Privacy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screened {
    Queued(Enqueued),
    /// Not queued; counted.
    Excluded(Exclusion),
}

/// The rep's exclusion list (cheap to clone).
#[derive(Debug, Clone)]
pub struct Privacy {
    outbox: Outbox,
}

/// Digits only, without a leading international `00`.
pub fn normalize_number(number: &str) -> String {
    let digits: String = number.chars().filter(|c| c.is_ascii_digit()).collect();
    match digits.strip_prefix("00") {
        Some(rest) if number.trim_start().starts_with("00") => rest.to_string(),
        _ => digits,
    }
}

fn is_international(number: &str) -> bool {
    let t = number.trim_start();
    t.starts_with('+') || t.starts_with("00") || t.starts_with('＋')
}

impl Privacy {
    pub fn new(outbox: &Outbox) -> Privacy {
        Privacy {
            outbox: outbox.clone(),
        }
    }

    fn add(&self, kind: &str, value: &str) -> Result<bool> {
        let n = self.outbox.conn().execute(
            "INSERT INTO privacy (kind, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![kind, value],
        )?;
        Ok(n > 0)
    }

    fn remove(&self, kind: &str, value: &str) -> Result<bool> {
        let n = self.outbox.conn().execute(
            "DELETE FROM privacy WHERE kind = ?1 AND value = ?2",
            params![kind, value],
        )?;
        Ok(n > 0)
    }

    fn values(&self, kind: &str) -> Result<Vec<String>> {
        let conn = self.outbox.conn();
        let mut stmt = conn.prepare("SELECT value FROM privacy WHERE kind = ?1 ORDER BY value")?;
        let v = stmt
            .query_map([kind], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(v)
    }

    /// Exclude a phone number; returns its normalised form.
    pub fn add_number(&self, number: &str) -> Result<String> {
        let n = normalize_number(number);
        if n.len() < 3 {
            return Err(Error::Invalid(format!(
                "`{number}` is not a phone number (fewer than 3 digits)"
            )));
        }
        self.add("number", &n)?;
        Ok(n)
    }

    pub fn remove_number(&self, number: &str) -> Result<bool> {
        self.remove("number", &normalize_number(number))
    }

    /// Exclude every number starting with these digits (e.g. a family plan).
    pub fn add_prefix(&self, prefix: &str) -> Result<String> {
        let p = normalize_number(prefix);
        if p.is_empty() {
            return Err(Error::Invalid(format!("`{prefix}` has no digits")));
        }
        self.add("prefix", &p)?;
        Ok(p)
    }

    pub fn remove_prefix(&self, prefix: &str) -> Result<bool> {
        self.remove("prefix", &normalize_number(prefix))
    }

    /// Exclude a contact of the phone's address book by its id.
    pub fn add_contact(&self, contact_id: &str) -> Result<()> {
        let id = contact_id.trim();
        if id.is_empty() {
            return Err(Error::Invalid("the contact id is empty".into()));
        }
        self.add("contact", id).map(|_| ())
    }

    pub fn remove_contact(&self, contact_id: &str) -> Result<bool> {
        self.remove("contact", contact_id.trim())
    }

    /// Whether contacts marked personal are excluded (default: yes).
    pub fn set_exclude_marked_personal(&self, on: bool) -> Result<()> {
        self.outbox.kv_set(KV_MARKED, if on { "1" } else { "0" })
    }

    /// The home country code used to match prefixes (default `86`).
    pub fn set_country_code(&self, code: &str) -> Result<()> {
        let c = normalize_number(code);
        if c.is_empty() || c.len() > 3 {
            return Err(Error::Invalid(format!(
                "`{code}` is not a country code (1–3 digits)"
            )));
        }
        self.outbox.kv_set(KV_COUNTRY, &c)
    }

    pub fn list(&self) -> Result<PrivacyList> {
        Ok(PrivacyList {
            numbers: self.values("number")?,
            prefixes: self.values("prefix")?,
            contacts: self.values("contact")?,
            exclude_marked_personal: self.exclude_marked_personal()?,
            country_code: self.country_code()?,
            excluded_calls: self.outbox.counter("privacy_total.call")?,
            excluded_chats: self.outbox.counter("privacy_total.chat")?,
        })
    }

    fn exclude_marked_personal(&self) -> Result<bool> {
        Ok(self.outbox.kv_get(KV_MARKED)?.as_deref() != Some("0"))
    }

    fn country_code(&self) -> Result<String> {
        Ok(self
            .outbox
            .kv_get(KV_COUNTRY)?
            .unwrap_or_else(|| "86".into()))
    }

    /// Why `party` is excluded, if it is.
    pub fn exclusion(&self, party: &Party<'_>) -> Result<Option<Exclusion>> {
        if party.marked_personal && self.exclude_marked_personal()? {
            return Ok(Some(Exclusion::MarkedPersonal));
        }
        if let Some(id) = party.contact_id.map(str::trim).filter(|s| !s.is_empty())
            && self.values("contact")?.iter().any(|c| c == id)
        {
            return Ok(Some(Exclusion::Contact(id.to_string())));
        }
        if let Some(raw) = party.phone {
            let n = normalize_number(raw);
            if !n.is_empty() {
                for listed in self.values("number")? {
                    let (short, long) = if listed.len() <= n.len() {
                        (&listed, &n)
                    } else {
                        (&n, &listed)
                    };
                    if *short == *long
                        || (short.len() >= MIN_TAIL_DIGITS && long.ends_with(short.as_str()))
                    {
                        return Ok(Some(Exclusion::Number(listed)));
                    }
                }
                let cc = self.country_code()?;
                let national = if is_international(raw) {
                    n.strip_prefix(cc.as_str())
                } else {
                    None
                };
                for p in self.values("prefix")? {
                    if n.starts_with(&p) || national.is_some_and(|x| x.starts_with(&p)) {
                        return Ok(Some(Exclusion::Prefix(p)));
                    }
                }
            }
        }
        Ok(None)
    }

    pub fn is_excluded(&self, party: &Party<'_>) -> Result<bool> {
        Ok(self.exclusion(party)?.is_some())
    }

    /// Count one excluded item (reported to the server by the next flush).
    pub fn count_excluded(&self, item: PrivateItem) -> Result<()> {
        self.outbox
            .add_report(&format!("privacy.{}", item.as_str()), 1)?;
        self.outbox
            .add_counter(&format!("privacy_total.{}", item.as_str()), 1)
    }

    /// Queue a chat message unless the other side is excluded (then count it).
    pub fn enqueue_chat(&self, party: &Party<'_>, chat: NewChat) -> Result<Screened> {
        if let Some(why) = self.exclusion(party)? {
            self.count_excluded(PrivateItem::Chat)?;
            return Ok(Screened::Excluded(why));
        }
        Ok(Screened::Queued(self.outbox.enqueue_chat(chat)?))
    }

    /// Queue a call recording unless the other side is excluded (then count it).
    pub fn enqueue_recording(
        &self,
        party: &Party<'_>,
        path: &Path,
        rec: NewRecording,
    ) -> Result<Screened> {
        if let Some(why) = self.exclusion(party)? {
            self.count_excluded(PrivateItem::Call)?;
            return Ok(Screened::Excluded(why));
        }
        Ok(Screened::Queued(self.outbox.enqueue_recording(path, rec)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OutboxConfig;
    use assist_protocol::device::ChatSender;

    fn setup() -> (tempfile::TempDir, Outbox, Privacy) {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), OutboxConfig::default()).unwrap();
        let privacy = Privacy::new(&outbox);
        (dir, outbox, privacy)
    }

    fn phone(p: &str) -> Party<'_> {
        Party {
            phone: Some(p),
            ..Party::default()
        }
    }

    #[test]
    fn numbers_match_with_or_without_country_code() {
        let (_d, _o, p) = setup();
        assert_eq!(p.add_number("+86 138-0013-8000").unwrap(), "8613800138000");
        assert!(p.is_excluded(&phone("13800138000")).unwrap());
        assert!(p.is_excluded(&phone("0086 138 0013 8000")).unwrap());
        assert!(!p.is_excluded(&phone("13800138001")).unwrap());
        // A short number never matches by its tail.
        assert!(!p.is_excluded(&phone("8000")).unwrap());
        assert!(p.remove_number("8613800138000").unwrap());
        assert!(!p.is_excluded(&phone("13800138000")).unwrap());
        assert!(p.add_number("12").is_err());
    }

    #[test]
    fn prefixes_contacts_and_the_personal_flag() {
        let (_d, _o, p) = setup();
        p.add_prefix("139 1234").unwrap();
        assert_eq!(
            p.exclusion(&phone("13912345678")).unwrap(),
            Some(Exclusion::Prefix("1391234".into()))
        );
        assert!(p.is_excluded(&phone("+86 139 1234 0000")).unwrap());
        assert!(!p.is_excluded(&phone("13812345678")).unwrap());
        p.add_contact("contact:42").unwrap();
        let c = Party {
            contact_id: Some("contact:42"),
            ..Party::default()
        };
        assert_eq!(
            p.exclusion(&c).unwrap(),
            Some(Exclusion::Contact("contact:42".into()))
        );
        let marked = Party {
            marked_personal: true,
            ..Party::default()
        };
        assert!(p.is_excluded(&marked).unwrap());
        p.set_exclude_marked_personal(false).unwrap();
        assert!(!p.is_excluded(&marked).unwrap());
        let list = p.list().unwrap();
        assert_eq!(list.prefixes, vec!["1391234"]);
        assert_eq!(list.contacts, vec!["contact:42"]);
        assert!(!list.exclude_marked_personal);
    }

    #[test]
    fn excluded_items_are_counted_never_queued() {
        let (_d, outbox, p) = setup();
        p.add_number("13800138000").unwrap();
        let chat = |text: &str| NewChat {
            conversation_id: "c1".into(),
            channel: None,
            customer_ref: None,
            sender: ChatSender::Rep,
            text: text.into(),
            sent_at: None,
            client_message_id: None,
        };
        for _ in 0..3 {
            let s = p
                .enqueue_chat(&phone("138 0013 8000"), chat("晚上吃饭"))
                .unwrap();
            assert!(matches!(s, Screened::Excluded(Exclusion::Number(_))));
        }
        let s = p
            .enqueue_chat(&phone("13900000000"), chat("报价单"))
            .unwrap();
        assert!(matches!(s, Screened::Queued(_)));
        assert_eq!(outbox.status().unwrap().pending(), 1);
        assert_eq!(p.list().unwrap().excluded_chats, 3);
        // The next flush reports the count (and only the count).
        assert_eq!(outbox.materialize_reports().unwrap(), 1);
        let rows = outbox.due(crate::ItemKind::Event, i64::MAX, 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert!(
            rows[0]
                .payload
                .contains(r#""type":"privacy_excluded","item":"chat","count":3"#)
        );
        assert!(!rows[0].payload.contains("晚上"));
    }
}
