//! Device-side rules: the signed, versioned rule set a phone enforces locally.
//!
//! How the pieces fit together:
//!
//! - [`approved_lexicon`] reads the live (approved) version of every lexicon
//!   entry of an organisation; [`block_rules`] keeps those whose action is
//!   `block` and that a phone can match (phrases and regular expressions —
//!   semantic exemplars need the embedding model and stay server-side).
//! - [`ServerKey::load_or_create`] returns the Ed25519 key named
//!   [`GUARD_KEY_NAME`], creating it on first use from 32 random bytes. It
//!   lives in the database (`server_keys`), so every node on one PostgreSQL
//!   signs with the same key; concurrent first use inserts at most one row
//!   and everyone re-reads the winner.
//! - [`publish`] gives the rule set a version: the latest row of
//!   `guard_rule_sets` when its digest matches, otherwise a new row with the
//!   next version. Versions only grow, so a device can refuse an older
//!   document; the same rule set always yields byte-identical documents.
//! - [`signed_rules`] puts it together as an
//!   [`assist_protocol::guard::GuardRules`] signed over
//!   [`assist_protocol::guard::signed_bytes`]; [`etag`] is its strong ETag.
//!
//! The wire format and exactly what is signed are documented in
//! [`assist_protocol::guard`], next to the `verify` function devices use.

use assist_knowledge_base::{LexiconContent, MatchMode, RiskAction};
use assist_protocol::guard::{
    ALGORITHM_ED25519, GuardAlternative, GuardPublicKey, GuardRule, GuardRules, key_id,
    signed_bytes,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::{Db, DbError, DbResult};
use crate::time::{now_ms, rfc3339};

/// `server_keys.name` of the key that signs device rules.
pub const GUARD_KEY_NAME: &str = "guard-rules";

/// How often [`publish`] retries when another node publishes at the same time.
const PUBLISH_ATTEMPTS: usize = 8;

/// A stored value that cannot be read back is a server fault (500), not a
/// caller error.
fn corrupt(what: String) -> DbError {
    DbError::Sqlx(sqlx::Error::Decode(what.into()))
}

/// A signing key of the server. The secret never appears in `Debug` output.
pub struct ServerKey {
    name: String,
    key_id: String,
    signing: SigningKey,
    created_at: i64,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKey")
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .field("created_at", &self.created_at)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl ServerKey {
    /// The key called `name`, created on first use. Several nodes may call
    /// this at once: the insert is "if absent", then everyone reads the row
    /// that won.
    pub async fn load_or_create(db: &Db, name: &str) -> DbResult<ServerKey> {
        if let Some(key) = Self::load(db, name).await? {
            return Ok(key);
        }
        let mut seed: [u8; 32] = rand::random();
        let signing = SigningKey::from_bytes(&seed);
        seed.fill(0);
        let public = signing.verifying_key().to_bytes();
        let inserted = sqlx::query(
            "INSERT INTO server_keys (name, algorithm, secret, public_key, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(ALGORITHM_ED25519)
        .bind(db.seal_secret(
            &crate::db::secrets::server_key_owner(name),
            STANDARD.encode(signing.to_bytes()).as_bytes(),
        )?)
        .bind(STANDARD.encode(public))
        .bind(now_ms())
        .execute(db.pool())
        .await?
        .rows_affected();
        let key = Self::load(db, name)
            .await?
            .ok_or_else(|| corrupt(format!("server key `{name}` vanished after insert")))?;
        if inserted == 1 {
            tracing::info!(name, key_id = %key.key_id, "created server signing key");
        }
        Ok(key)
    }

    async fn load(db: &Db, name: &str) -> DbResult<Option<ServerKey>> {
        let Some(r) = sqlx::query(
            "SELECT algorithm, secret, public_key, created_at FROM server_keys WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(db.pool())
        .await?
        else {
            return Ok(None);
        };
        let algorithm: String = r.try_get("algorithm")?;
        if algorithm != ALGORITHM_ED25519 {
            return Err(corrupt(format!(
                "server key `{name}` uses `{algorithm}`, expected {ALGORITHM_ED25519}"
            )));
        }
        let stored: String = r.try_get("secret")?;
        let secret = db.open_secret(&crate::db::secrets::server_key_owner(name), &stored)?;
        let seed: [u8; 32] = STANDARD
            .decode(&secret)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt(format!("server key `{name}` has an unreadable secret")))?;
        let signing = SigningKey::from_bytes(&seed);
        let public = signing.verifying_key().to_bytes();
        let stored_public: String = r.try_get("public_key")?;
        if STANDARD.encode(public) != stored_public {
            return Err(corrupt(format!(
                "server key `{name}`: the stored public key does not match the secret"
            )));
        }
        Ok(Some(ServerKey {
            name: name.to_string(),
            key_id: key_id(&public),
            signing,
            created_at: r.try_get("created_at")?,
        }))
    }

    /// Replace the key called `name` with a fresh one (after a suspected
    /// leak). Documents are signed per request, so the next one carries the
    /// new key id; phones that pinned the old key refuse it until they are
    /// provisioned again (unpin, then pin `GET /v1/guard/public-key`).
    pub async fn rotate(db: &Db, name: &str) -> DbResult<ServerKey> {
        let mut seed: [u8; 32] = rand::random();
        let signing = SigningKey::from_bytes(&seed);
        seed.fill(0);
        let public = signing.verifying_key().to_bytes();
        let sealed = db.seal_secret(
            &crate::db::secrets::server_key_owner(name),
            STANDARD.encode(signing.to_bytes()).as_bytes(),
        )?;
        sqlx::query(
            "INSERT INTO server_keys (name, algorithm, secret, public_key, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET \
             algorithm = excluded.algorithm, secret = excluded.secret, \
             public_key = excluded.public_key, created_at = excluded.created_at",
        )
        .bind(name)
        .bind(ALGORITHM_ED25519)
        .bind(sealed)
        .bind(STANDARD.encode(public))
        .bind(now_ms())
        .execute(db.pool())
        .await?;
        Self::load(db, name)
            .await?
            .ok_or_else(|| corrupt(format!("server key `{name}` vanished after rotation")))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public half, as served by `GET /v1/guard/public-key`.
    pub fn public_key(&self) -> GuardPublicKey {
        GuardPublicKey {
            key_id: self.key_id.clone(),
            algorithm: ALGORITHM_ED25519.to_string(),
            public_key: STANDARD.encode(self.signing.verifying_key().to_bytes()),
        }
    }

    /// Set `doc.key_id` to this key and `doc.signature` to the signature of
    /// its signed bytes.
    pub fn sign(&self, doc: &mut GuardRules) {
        doc.key_id = self.key_id.clone();
        let signature = self.signing.sign(&signed_bytes(doc));
        doc.signature = STANDARD.encode(signature.to_bytes());
    }
}

/// The approved (live) version of every lexicon entry of `org_id`, by id.
/// An entry whose edit is still in review contributes its approved version;
/// drafts never approved and retired entries contribute nothing.
pub async fn approved_lexicon(db: &Db, org_id: &str) -> DbResult<Vec<(String, LexiconContent)>> {
    let rows = sqlx::query(
        "SELECT i.id, v.content FROM kb_items i \
         JOIN kb_versions v ON v.item_id = i.id AND v.version = i.approved_version \
         WHERE i.org_id = $1 AND i.kind = 'lexicon' AND i.approved_version IS NOT NULL \
         ORDER BY i.id",
    )
    .bind(org_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            let content: LexiconContent = serde_json::from_str(&r.try_get::<String, _>("content")?)
                .map_err(|e| corrupt(format!("stored lexicon entry `{id}` is unreadable: {e}")))?;
            Ok((id, content))
        })
        .collect()
}

/// The entries a phone enforces: action `block`, matched by phrase or regex.
/// The order of `entries` is kept (callers pass them sorted by id).
pub fn block_rules(entries: &[(String, LexiconContent)]) -> Vec<GuardRule> {
    entries
        .iter()
        .filter(|(_, e)| e.action == RiskAction::Block)
        .filter(|(_, e)| match e.match_mode {
            MatchMode::Phrase | MatchMode::Regex => true,
            MatchMode::Semantic => false,
        })
        .map(|(id, e)| GuardRule {
            id: id.clone(),
            category: e.category.as_str().to_string(),
            severity: e.severity.as_str().to_string(),
            match_mode: e.match_mode.as_str().to_string(),
            pattern: e.pattern.clone(),
            language: e.language.as_str().to_string(),
        })
        .collect()
}

/// SHA-256 (hex) of a rule list, to tell whether the rule set changed.
fn rules_digest(rules: &[GuardRule], alternatives: &[GuardAlternative]) -> String {
    let mut h = Sha256::new();
    for a in alternatives {
        for field in [&a.category, &a.script_id, &a.text] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
    }
    for r in rules {
        for field in [
            &r.id,
            &r.category,
            &r.severity,
            &r.match_mode,
            &r.pattern,
            &r.language,
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
    }
    hex::encode(h.finalize())
}

/// A published version of an organisation's rule set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub version: u64,
    /// Unix milliseconds.
    pub issued_at: i64,
}

/// The version of `rules` for `org_id`: the latest published one when it
/// has the same content, otherwise a newly published `latest + 1`. Safe to
/// call from several nodes at once (the primary key decides who publishes a
/// version; the others re-read).
pub async fn publish(
    db: &Db,
    org_id: &str,
    rules: &[GuardRule],
    alternatives: &[GuardAlternative],
) -> DbResult<Published> {
    let digest = rules_digest(rules, alternatives);
    for _ in 0..PUBLISH_ATTEMPTS {
        let latest = sqlx::query(
            "SELECT version, rules_sha256, issued_at FROM guard_rule_sets \
             WHERE org_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(org_id)
        .fetch_optional(db.pool())
        .await?;
        let (next, not_before) = match &latest {
            Some(r) => {
                let version: i64 = r.try_get("version")?;
                let issued_at: i64 = r.try_get("issued_at")?;
                if r.try_get::<String, _>("rules_sha256")? == digest {
                    return Ok(Published {
                        version: u64::try_from(version).unwrap_or(0),
                        issued_at,
                    });
                }
                (version + 1, issued_at)
            }
            None => (1, 0),
        };
        // Never earlier than the previous version, even if node clocks differ.
        let issued_at = now_ms().max(not_before);
        let inserted = sqlx::query(
            "INSERT INTO guard_rule_sets (org_id, version, rules_sha256, rule_count, issued_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, version) DO NOTHING",
        )
        .bind(org_id)
        .bind(next)
        .bind(&digest)
        .bind(i64::try_from(rules.len()).unwrap_or(i64::MAX))
        .bind(issued_at)
        .execute(db.pool())
        .await?
        .rows_affected();
        if inserted == 1 {
            tracing::info!(
                org_id,
                version = next,
                rules = rules.len(),
                "published device rules"
            );
            return Ok(Published {
                version: u64::try_from(next).unwrap_or(0),
                issued_at,
            });
        }
    }
    Err(DbError::Conflict(
        "the device rules changed repeatedly while being published; retry".into(),
    ))
}

/// The current rule document of `org_id`, unsigned (empty `signature`, empty
/// `key_id`): enough to compute the [`etag`] once `key_id` is set.
pub async fn current_rules(db: &Db, org_id: &str) -> DbResult<GuardRules> {
    let rules = block_rules(&approved_lexicon(db, org_id).await?);
    let alternatives = alternatives_for(&rules, &db.kb_approved_scripts(Some(org_id)).await?);
    let published = publish(db, org_id, &rules, &alternatives).await?;
    Ok(GuardRules {
        org_id: org_id.to_string(),
        version: published.version,
        issued_at: rfc3339(published.issued_at),
        key_id: String::new(),
        rules,
        alternatives,
        signature: String::new(),
    })
}

/// Tag that makes an approved script the safe alternative shown when a rule
/// of a category blocks a message: `guard:private_contact`, `guard:side_deal` ….
pub const ALTERNATIVE_TAG: &str = "guard:";

/// For each category that has rules, the first approved script (by id)
/// tagged `guard:<category>`.
pub fn alternatives_for(
    rules: &[GuardRule],
    scripts: &[assist_knowledge_base::workflow::ApprovedScript],
) -> Vec<GuardAlternative> {
    let mut categories: Vec<&str> = rules.iter().map(|r| r.category.as_str()).collect();
    categories.sort_unstable();
    categories.dedup();
    categories
        .into_iter()
        .filter_map(|category| {
            let tag = format!("{ALTERNATIVE_TAG}{category}");
            scripts
                .iter()
                .filter(|s| s.tags().contains(&tag))
                .min_by(|a, b| a.id().cmp(b.id()))
                .map(|s| GuardAlternative {
                    category: category.to_string(),
                    script_id: s.id().to_string(),
                    text: s.body().to_string(),
                })
        })
        .collect()
}

/// The signed rule document of `org_id`.
pub async fn signed_rules(db: &Db, org_id: &str) -> DbResult<GuardRules> {
    let key = ServerKey::load_or_create(db, GUARD_KEY_NAME).await?;
    let mut doc = current_rules(db, org_id).await?;
    key.sign(&mut doc);
    Ok(doc)
}

/// The strong ETag of a document: its version and a digest of its signed
/// bytes (which include the organisation and the key, so two organisations
/// or two keys never share a tag). Ed25519 signatures are deterministic, so
/// equal signed bytes mean an identical body.
pub fn etag(doc: &GuardRules) -> String {
    let digest = Sha256::digest(signed_bytes(doc));
    format!("\"{}-{}\"", doc.version, hex::encode(&digest[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use assist_knowledge_base::{Language, RiskCategory, Severity};

    fn entry(pattern: &str, mode: MatchMode, action: RiskAction) -> LexiconContent {
        LexiconContent {
            pattern: pattern.into(),
            category: RiskCategory::SideDeal,
            severity: Severity::High,
            match_mode: mode,
            action,
            language: Language::Zh,
            note: Some("reviewer note stays on the server".into()),
        }
    }

    #[test]
    fn only_block_phrases_and_regexes_reach_the_device() {
        let entries = vec![
            (
                "a".into(),
                entry("私下交易", MatchMode::Phrase, RiskAction::Block),
            ),
            (
                "b".into(),
                entry("回扣", MatchMode::Phrase, RiskAction::Alert),
            ),
            (
                "c".into(),
                entry("走私(账|户)", MatchMode::Regex, RiskAction::Block),
            ),
            (
                "d".into(),
                entry("我们私下聊聊价格吧", MatchMode::Semantic, RiskAction::Block),
            ),
        ];
        let rules = block_rules(&entries);
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(rules[1].match_mode, "regex");
        assert_eq!(rules[0].category, "side_deal");
        assert_eq!(rules[0].severity, "high");
    }

    #[test]
    fn a_script_tagged_for_a_category_is_its_alternative() {
        use assist_knowledge_base::workflow::restore_approved;
        use assist_knowledge_base::{Scenario, ScriptContent, Status};
        let script = |id: &str, tags: &[&str], body: &str| {
            restore_approved(
                id,
                "org",
                1,
                Status::Approved,
                ScriptContent {
                    title: "t".into(),
                    body: body.into(),
                    scenario: Scenario::Trust,
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                    products: vec![],
                    language: Language::Zh,
                },
            )
            .unwrap()
        };
        let rules = block_rules(&[(
            "a".into(),
            entry("私下", MatchMode::Phrase, RiskAction::Block),
        )]);
        let scripts = [
            script("s2", &["guard:side_deal"], "公司规定所有交易都走对公账户。"),
            script(
                "s1",
                &["guard:side_deal", "trust"],
                "我们只走公司合同，这样对您更有保障。",
            ),
            script("s0", &["guard:private_contact"], "请在企业微信里联系我。"),
        ];
        let alts = alternatives_for(&rules, &scripts);
        assert_eq!(alts.len(), 1);
        assert_eq!(alts[0].category, "side_deal");
        assert_eq!(alts[0].script_id, "s1");
        // Alternatives are part of what makes a new version.
        assert_ne!(rules_digest(&rules, &alts), rules_digest(&rules, &[]));
    }

    #[test]
    fn digest_separates_fields() {
        let mut a = block_rules(&[(
            "ab".into(),
            entry("x", MatchMode::Phrase, RiskAction::Block),
        )]);
        let b = a.clone();
        assert_eq!(rules_digest(&a, &[]), rules_digest(&b, &[]));
        a[0].id = "a".into();
        a[0].category = format!("b{}", a[0].category);
        assert_ne!(rules_digest(&a, &[]), rules_digest(&b, &[]));
    }
}
