//! The local guard: the organisation's signed block rules, checked on the
//! phone before a message leaves it.
//!
//! Matching mirrors the server's risk lexicon exactly (same normaliser from
//! [`assist_protocol::normalize`]): a `phrase` rule matches when its
//! [`View::Compact`] form is a substring of the message's compact form (all
//! overlapping matches are considered, as on the server, so a short rule
//! cannot hide a longer one that overlaps it), and a phrase that starts or ends
//! with a Latin letter or digit must not be glued to another one in the
//! original text (an English inflection `s`, `es`, `ed`, `d`, `ing` after it
//! is allowed). A `regex` rule runs case-insensitively on the compact view
//! for `zh` and on the spaced view for `en`.
//!
//! Decisions: a rule of severity `high` or `critical` **blocks**, `low` or
//! `medium` **warns** (an unknown severity blocks). With several hits the most
//! severe wins. The approved alternative of the rule's category comes with it.
//!
//! Trust: the document is verified against a pinned Ed25519 key (pinned on
//! first contact from `GET /v1/guard/public-key` unless provisioned with
//! [`Guard::pin_key`]), must name the pinned organisation, and may not go
//! back in version. The pin, the organisation and the last good document are
//! kept in the outbox database and re-verified when loaded.

use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};
use assist_protocol::Me;
use assist_protocol::device::DeviceEventKind;
use assist_protocol::guard::{GuardAlternative, GuardPublicKey, GuardRule, GuardRules, verify};
use assist_protocol::normalize::{Normalized, View, is_latin_alnum, normalize, word_bounded};
use regex::{Regex, RegexBuilder};
use reqwest::Method;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde::Serialize;

use crate::flush::blocking;
use crate::{Client, Error, Outbox, Result};

/// Largest compiled size of one rule's regex (as on the server).
const REGEX_SIZE_LIMIT: usize = 2 * 1024 * 1024;

const KV_KEY: &str = "guard.public_key";
const KV_ORG: &str = "guard.org_id";
const KV_DOC: &str = "guard.doc";
const KV_ETAG: &str = "guard.etag";

/// The rule that decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardHit {
    pub rule_id: String,
    pub category: String,
    pub severity: String,
    /// The words of the message that matched (original spelling).
    pub matched: String,
    /// Character offsets in the message, `[start, end)`.
    pub start: usize,
    pub end: usize,
}

/// What the guard says about an outgoing message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum GuardDecision {
    Allow,
    Warn {
        rule: GuardHit,
        alternative: Option<GuardAlternative>,
    },
    Block {
        rule: GuardHit,
        alternative: Option<GuardAlternative>,
    },
}

impl GuardDecision {
    pub fn is_block(&self) -> bool {
        matches!(self, GuardDecision::Block { .. })
    }
}

/// Result of [`Client::update_guard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardUpdate {
    /// A new document is in force.
    Updated {
        version: u64,
        rules: usize,
        /// Rules this device could not compile (id, why); the others apply.
        skipped: Vec<(String, String)>,
    },
    /// The server has nothing newer (304).
    NotModified { version: u64 },
}

#[derive(Debug, Default)]
struct Compiled {
    doc: Option<GuardRules>,
    phrases: Option<AhoCorasick>,
    /// Per automaton pattern: rule indexes, starts / ends with a Latin alnum.
    phrase_rules: Vec<(Vec<usize>, bool, bool)>,
    regexes: Vec<(usize, Regex, View)>,
    needs_spaced: bool,
    skipped: Vec<(String, String)>,
}

/// The local guard (cheap to clone).
#[derive(Debug, Clone)]
pub struct Guard {
    outbox: Outbox,
    compiled: Arc<RwLock<Arc<Compiled>>>,
}

impl Guard {
    /// The guard with the rules last stored in `outbox` (none on a new phone:
    /// everything is allowed until [`Client::update_guard`] succeeds).
    pub fn load(outbox: &Outbox) -> Result<Guard> {
        let guard = Guard {
            outbox: outbox.clone(),
            compiled: Arc::new(RwLock::new(Arc::new(Compiled::default()))),
        };
        if let (Some(key), Some(doc)) = (guard.pinned_key()?, outbox.kv_get(KV_DOC)?) {
            let doc: GuardRules = serde_json::from_str(&doc)
                .map_err(|e| Error::GuardRefused(format!("the stored rules are corrupt: {e}")))?;
            verify(&doc, &key)
                .map_err(|e| Error::GuardRefused(format!("the stored rules do not verify: {e}")))?;
            guard.set(compile(doc));
        }
        Ok(guard)
    }

    /// The pinned public key, if any.
    pub fn pinned_key(&self) -> Result<Option<[u8; 32]>> {
        let Some(hex_key) = self.outbox.kv_get(KV_KEY)? else {
            return Ok(None);
        };
        let bytes = hex::decode(hex_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| Error::GuardRefused("the pinned key is corrupt".into()))?;
        Ok(Some(bytes))
    }

    /// Pin the server's key (provisioning). Refuses to replace another pin:
    /// a changed server key needs [`Guard::unpin`] first, on purpose.
    pub fn pin_key(&self, key: &GuardPublicKey) -> Result<()> {
        let bytes = key
            .key_bytes()
            .map_err(|e| Error::GuardRefused(e.to_string()))?;
        match self.pinned_key()? {
            Some(old) if old != bytes => Err(Error::GuardRefused(format!(
                "another key is pinned; the server now offers `{}`: unpin only if the server key was really replaced",
                key.key_id
            ))),
            Some(_) => Ok(()),
            None => self.outbox.kv_set(KV_KEY, &hex::encode(bytes)),
        }
    }

    /// Pin the organisation whose rules this phone accepts.
    pub fn pin_org(&self, org_id: &str) -> Result<()> {
        match self.outbox.kv_get(KV_ORG)? {
            Some(old) if old != org_id => Err(Error::GuardRefused(format!(
                "this phone belongs to organisation `{old}`, not `{org_id}`"
            ))),
            Some(_) => Ok(()),
            None => self.outbox.kv_set(KV_ORG, org_id),
        }
    }

    /// Forget the key, the organisation and the rules (a re-provisioned phone).
    pub fn unpin(&self) -> Result<()> {
        let conn = self.outbox.conn();
        conn.execute("DELETE FROM kv WHERE key LIKE 'guard.%'", [])?;
        drop(conn);
        self.set(Compiled::default());
        Ok(())
    }

    /// The version of the rules in force.
    pub fn version(&self) -> Option<u64> {
        self.get().doc.as_ref().map(|d| d.version)
    }

    /// The rules in force.
    pub fn rules(&self) -> Option<GuardRules> {
        self.get().doc.clone()
    }

    /// Rules that could not be compiled (id, why).
    pub fn skipped(&self) -> Vec<(String, String)> {
        self.get().skipped.clone()
    }

    /// Verify and put `doc` in force (what [`Client::update_guard`] does with
    /// a fetched document). Needs a pinned key.
    pub fn install(&self, doc: GuardRules) -> Result<GuardUpdate> {
        let key = self
            .pinned_key()?
            .ok_or_else(|| Error::GuardRefused("no public key is pinned".into()))?;
        verify(&doc, &key).map_err(|e| Error::GuardRefused(e.to_string()))?;
        match self.outbox.kv_get(KV_ORG)? {
            Some(org) if org != doc.org_id => {
                return Err(Error::GuardRefused(format!(
                    "the rules are for organisation `{}`, this phone belongs to `{org}`",
                    doc.org_id
                )));
            }
            Some(_) => {}
            None => self.outbox.kv_set(KV_ORG, &doc.org_id)?,
        }
        if let Some(held) = self.version()
            && doc.version < held
        {
            return Err(Error::GuardRefused(format!(
                "version {} is older than the version {held} in force",
                doc.version
            )));
        }
        let json = serde_json::to_string(&doc).map_err(|e| Error::Invalid(e.to_string()))?;
        let (version, rules) = (doc.version, doc.rules.len());
        let compiled = compile(doc);
        let skipped = compiled.skipped.clone();
        self.outbox.kv_set(KV_DOC, &json)?;
        self.set(compiled);
        Ok(GuardUpdate::Updated {
            version,
            rules,
            skipped,
        })
    }

    /// Check a message (pure, no I/O; microseconds).
    pub fn check(&self, text: &str) -> GuardDecision {
        let c = self.get();
        let Some(doc) = &c.doc else {
            return GuardDecision::Allow;
        };
        let original: Vec<char> = text.chars().collect();
        let compact = normalize(text, View::Compact);
        let spaced = c.needs_spaced.then(|| normalize(text, View::Spaced));
        let mut best: Option<(u8, usize, usize, usize)> = None; // rank, start, end, rule
        let mut consider = |rule: usize, start: usize, end: usize| {
            let rank = severity_rank(&doc.rules[rule].severity);
            let better = match best {
                None => true,
                Some((r, s, _, _)) => rank > r || (rank == r && start < s),
            };
            if better {
                best = Some((rank, start, end, rule));
            }
        };
        if let Some(ac) = &c.phrases {
            for m in ac.find_overlapping_iter(compact.as_str()) {
                let (rules, latin_start, latin_end) = &c.phrase_rules[m.pattern().as_usize()];
                let (start, end) = compact.original_span(m.start(), m.end());
                if !word_bounded(&original, start, end, *latin_start, *latin_end) {
                    continue;
                }
                for &r in rules {
                    consider(r, start, end);
                }
            }
        }
        for (rule, regex, view) in &c.regexes {
            let n: &Normalized = match (view, &spaced) {
                (View::Spaced, Some(s)) => s,
                _ => &compact,
            };
            for m in regex.find_iter(n.as_str()) {
                if m.start() == m.end() {
                    continue;
                }
                let (start, end) = n.original_span(m.start(), m.end());
                consider(*rule, start, end);
            }
        }
        let Some((_, start, end, rule)) = best else {
            return GuardDecision::Allow;
        };
        let r: &GuardRule = &doc.rules[rule];
        let hit = GuardHit {
            rule_id: r.id.clone(),
            category: r.category.clone(),
            severity: r.severity.clone(),
            matched: original[start..end.min(original.len())].iter().collect(),
            start,
            end,
        };
        let alternative = doc
            .alternatives
            .iter()
            .find(|a| a.category == r.category)
            .cloned();
        if blocks(&r.severity) {
            GuardDecision::Block {
                rule: hit,
                alternative,
            }
        } else {
            GuardDecision::Warn {
                rule: hit,
                alternative,
            }
        }
    }

    /// [`Guard::check`], and a block or warning is queued as a
    /// [`DeviceEventKind::GuardBlocked`] event (rule and place only, never
    /// the text).
    pub fn check_outgoing(
        &self,
        text: &str,
        conversation_id: Option<&str>,
    ) -> Result<GuardDecision> {
        let decision = self.check(text);
        let (rule, word) = match &decision {
            GuardDecision::Allow => return Ok(decision),
            GuardDecision::Warn { rule, .. } => (rule, "warn"),
            GuardDecision::Block { rule, .. } => (rule, "block"),
        };
        self.outbox.enqueue_event(DeviceEventKind::GuardBlocked {
            rule_id: rule.rule_id.clone(),
            category: rule.category.clone(),
            decision: word.into(),
            conversation_id: conversation_id.map(str::to_string),
            rules_version: self.version().unwrap_or(0),
        })?;
        Ok(decision)
    }

    fn get(&self) -> Arc<Compiled> {
        self.compiled
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, c: Compiled) {
        *self.compiled.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(c);
    }
}

impl Client {
    /// Fetch the rules (`If-None-Match` with the last `ETag`), verify them and
    /// put them in force. On a phone with no pinned key, the key is first
    /// fetched from `GET /v1/guard/public-key` and the organisation from
    /// `GET /v1/me`, and both are pinned.
    pub async fn update_guard(&self, guard: &Guard) -> Result<GuardUpdate> {
        if guard.pinned_key()?.is_none() {
            let key: GuardPublicKey = self
                .call(self.request(Method::GET, "/guard/public-key"))
                .await?
                .body;
            let me: Me = self.call(self.request(Method::GET, "/me")).await?.body;
            let g = guard.clone();
            blocking(&self.outbox, move |_| {
                g.pin_key(&key)?;
                g.pin_org(&me.org.id)
            })
            .await?;
        }
        let mut req = self.request(Method::GET, "/guard/rules");
        let etag = self.outbox.kv_get(KV_ETAG)?;
        if let (Some(tag), Some(_)) = (&etag, guard.version()) {
            req = req.header(IF_NONE_MATCH, tag);
        }
        let resp = self.send(req).await?;
        if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(GuardUpdate::NotModified {
                version: guard.version().unwrap_or(0),
            });
        }
        let new_tag = resp
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let doc: GuardRules = resp.json().await.map_err(|e| {
            Error::GuardRefused(format!("the rules document is not valid JSON: {e}"))
        })?;
        let g = guard.clone();
        blocking(&self.outbox, move |o| {
            let update = g.install(doc)?;
            if let Some(tag) = new_tag {
                o.kv_set(KV_ETAG, &tag)?;
            }
            Ok(update)
        })
        .await
    }
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "low" => 1,
        "medium" => 2,
        "high" => 3,
        "critical" => 4,
        _ => 3,
    }
}

fn blocks(severity: &str) -> bool {
    !matches!(severity, "low" | "medium")
}

fn compile(doc: GuardRules) -> Compiled {
    let mut keys: Vec<String> = Vec::new();
    let mut phrase_rules: Vec<(Vec<usize>, bool, bool)> = Vec::new();
    let mut regexes = Vec::new();
    let mut skipped = Vec::new();
    for (idx, rule) in doc.rules.iter().enumerate() {
        match rule.match_mode.as_str() {
            "phrase" => {
                let key = normalize(&rule.pattern, View::Compact).as_str().to_string();
                if key.is_empty() {
                    skipped.push((
                        rule.id.clone(),
                        "the phrase is empty once normalised".into(),
                    ));
                    continue;
                }
                if let Some(k) = keys.iter().position(|k| *k == key) {
                    phrase_rules[k].0.push(idx);
                } else {
                    let first = key.chars().next().is_some_and(is_latin_alnum);
                    let last = key.chars().next_back().is_some_and(is_latin_alnum);
                    keys.push(key);
                    phrase_rules.push((vec![idx], first, last));
                }
            }
            "regex" => match RegexBuilder::new(&rule.pattern)
                .case_insensitive(true)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
            {
                Ok(re) => {
                    let view = if rule.language == "en" {
                        View::Spaced
                    } else {
                        View::Compact
                    };
                    regexes.push((idx, re, view));
                }
                Err(e) => skipped.push((rule.id.clone(), e.to_string())),
            },
            other => skipped.push((rule.id.clone(), format!("unknown match mode `{other}`"))),
        }
    }
    let phrases = if keys.is_empty() {
        None
    } else {
        match AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&keys)
        {
            Ok(ac) => Some(ac),
            Err(e) => {
                skipped.push(("*phrases*".into(), e.to_string()));
                None
            }
        }
    };
    let needs_spaced = regexes.iter().any(|(_, _, v)| *v == View::Spaced);
    Compiled {
        doc: Some(doc),
        phrases,
        phrase_rules,
        regexes,
        needs_spaced,
        skipped,
    }
}

#[cfg(test)]
mod tests;
