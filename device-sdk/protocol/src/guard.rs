//! Device-side rules: the signed document of `GET /v1/guard/rules`.
//!
//! The server publishes the approved risk-lexicon entries of an organisation
//! whose action is `block` as one [`GuardRules`] document. The phone enforces
//! them before a message leaves it, so the document must be trustworthy even
//! when it was cached, relayed or stored on the device: it carries an Ed25519
//! signature made with the server's `guard-rules` key, whose public half is
//! served by `GET /v1/guard/public-key` ([`GuardPublicKey`]) and should be
//! pinned on the device (provisioning or first contact).
//!
//! # What is signed
//!
//! The signature is over bytes built from the decoded field values, not over
//! the JSON text, so re-serialising the JSON (field order, escapes, spacing)
//! never breaks it and any language can rebuild them. [`signed_bytes`] is the
//! one implementation; the server signs with it and [`verify`] checks with it.
//!
//! ```text
//! signed = "assist.guard.rules.v1" 0x00            (SIGNING_CONTEXT, 22 bytes)
//!          str(org_id) u64(version) str(issued_at) str(key_id)
//!          u32(number of rules)
//!          for each rule, in document order:
//!              str(id) str(category) str(severity) str(match_mode) str(pattern) str(language)
//!          only when `alternatives` is not empty:
//!          u32(number of alternatives)
//!          for each alternative, in document order:
//!              str(category) str(script_id) str(text)
//!
//! str(s) = u32(byte length of s as UTF-8) followed by those bytes, exactly as
//!          decoded from the JSON (no trimming or Unicode normalisation)
//! u32(n), u64(n) = big-endian unsigned integers
//! ```
//!
//! `signature` is the standard base64 (with padding) of the 64-byte Ed25519
//! signature of `signed`. `key_id` is [`key_id`] of the signing key: the first
//! 16 hex digits of SHA-256 of the 32-byte public key.
//!
//! # What a device does with a document
//!
//! 1. [`verify`] it against the pinned public key (this also checks `key_id`);
//! 2. check that `org_id` is its own organisation;
//! 3. refuse a `version` lower than the one it already holds (`version` grows
//!    by one each time the organisation's rule set changes, so an old signed
//!    document cannot be replayed to loosen the rules);
//! 4. enforce `rules`: `phrase` rules match the normalised text, `regex` rules
//!    are regular expressions (validated by the server at save time).
//!
//! ```
//! use assist_protocol::guard::{GuardRule, GuardRules, VerifyError, key_id, signed_bytes, verify};
//! use base64::Engine as _;
//! use ed25519_dalek::{Signer, SigningKey};
//!
//! let key = SigningKey::from_bytes(&[7; 32]);
//! let public = key.verifying_key().to_bytes();
//! let mut doc = GuardRules {
//!     org_id: "org_1".into(),
//!     version: 3,
//!     issued_at: "2026-11-24T12:00:00Z".into(),
//!     key_id: key_id(&public),
//!     rules: vec![GuardRule {
//!         id: "lex_1".into(),
//!         category: "private_contact".into(),
//!         severity: "high".into(),
//!         match_mode: "phrase".into(),
//!         pattern: "加我微信".into(),
//!         language: "zh".into(),
//!     }],
//!     alternatives: vec![],
//!     signature: String::new(),
//! };
//! let signature = key.sign(&signed_bytes(&doc));
//! doc.signature = base64::engine::general_purpose::STANDARD.encode(signature.to_bytes());
//! assert_eq!(verify(&doc, &public), Ok(()));
//!
//! doc.rules[0].pattern = "加我QQ".into();
//! assert_eq!(verify(&doc, &public), Err(VerifyError::BadSignature));
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain separation: the first bytes of [`signed_bytes`], so a guard-rules
/// signature can never be mistaken for a signature over anything else.
pub const SIGNING_CONTEXT: &[u8] = b"assist.guard.rules.v1\0";

/// The only signature algorithm, as named in [`GuardPublicKey::algorithm`].
pub const ALGORITHM_ED25519: &str = "ed25519";

/// One rule the device enforces locally: an approved lexicon entry whose
/// action is `block`. The enumerations are the knowledge base's snake_case
/// names; they are plain strings here so an older device still verifies a
/// document that uses a category it does not know yet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GuardRule {
    /// The lexicon entry id; stable across versions of the entry.
    pub id: String,
    /// `side_deal`, `kickback`, `private_contact`, `competitor`, `abuse`,
    /// `over_promising` or `compliance_phrase`.
    pub category: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// `phrase` or `regex`.
    pub match_mode: String,
    /// The phrase or the regular expression.
    pub pattern: String,
    /// `zh` or `en`.
    pub language: String,
}

/// The signed rule set of one organisation (`GET /v1/guard/rules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardRules {
    pub org_id: String,
    /// Grows by one each time the organisation's rule set changes.
    pub version: u64,
    /// When this version was first published (RFC 3339, UTC).
    pub issued_at: String,
    /// Which key signed it: [`key_id`] of the public key.
    pub key_id: String,
    /// Sorted by `id`.
    pub rules: Vec<GuardRule>,
    /// What to say instead: an approved script per category, shown with a
    /// block or warning. Signed too, so a relay cannot put words in a rep's mouth.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<GuardAlternative>,
    /// Base64 Ed25519 signature of [`signed_bytes`] of this document.
    pub signature: String,
}

/// A safe, approved thing to say instead of what a rule stopped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GuardAlternative {
    /// The rule category it answers (`side_deal`, `private_contact` …).
    pub category: String,
    /// The approved script it comes from.
    pub script_id: String,
    pub text: String,
}

/// The public half of the guard-rules signing key (`GET /v1/guard/public-key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardPublicKey {
    pub key_id: String,
    /// Always [`ALGORITHM_ED25519`].
    pub algorithm: String,
    /// Standard base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
}

impl GuardPublicKey {
    /// The 32 key bytes, after checking the algorithm, the encoding and that
    /// `key_id` belongs to this key.
    pub fn key_bytes(&self) -> Result<[u8; 32], VerifyError> {
        if self.algorithm != ALGORITHM_ED25519 {
            return Err(VerifyError::UnsupportedAlgorithm(self.algorithm.clone()));
        }
        let bytes = STANDARD
            .decode(self.public_key.as_bytes())
            .map_err(|_| VerifyError::BadPublicKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| VerifyError::BadPublicKey)?;
        VerifyingKey::from_bytes(&key).map_err(|_| VerifyError::BadPublicKey)?;
        if key_id(&key) != self.key_id {
            return Err(VerifyError::KeyMismatch {
                document: self.key_id.clone(),
                key: key_id(&key),
            });
        }
        Ok(key)
    }
}

/// Why a document was refused. Any of these means: keep enforcing the rules
/// you already hold and fetch again later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The public key is not 32 bytes of valid base64, or not a valid point.
    BadPublicKey,
    /// The public key is not for [`ALGORITHM_ED25519`].
    UnsupportedAlgorithm(String),
    /// The document names another key (the server key was replaced: fetch and
    /// pin the new public key through a trusted channel).
    KeyMismatch { document: String, key: String },
    /// `signature` is not base64 of 64 bytes.
    BadSignatureEncoding,
    /// The signature does not match: the document was changed or forged.
    BadSignature,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::BadPublicKey => f.write_str("the public key is not a valid Ed25519 key"),
            VerifyError::UnsupportedAlgorithm(a) => {
                write!(f, "unsupported signature algorithm `{a}`")
            }
            VerifyError::KeyMismatch { document, key } => write!(
                f,
                "the document was signed with key `{document}`, not with the pinned key `{key}`"
            ),
            VerifyError::BadSignatureEncoding => {
                f.write_str("the signature is not base64 of 64 bytes")
            }
            VerifyError::BadSignature => f.write_str("the signature does not match the document"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// The key id of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(public_key: &[u8; 32]) -> String {
    let digest = Sha256::digest(public_key);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes the signature covers (see the [module docs](self)). The
/// `signature` field itself is not part of them.
pub fn signed_bytes(doc: &GuardRules) -> Vec<u8> {
    fn put_str(out: &mut Vec<u8>, s: &str) {
        // A string over 4 GiB cannot occur (request limits); saturating keeps
        // this total without a panic path.
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    let mut out = Vec::with_capacity(
        128 + doc
            .rules
            .iter()
            .map(|r| 64 + r.pattern.len() + r.id.len())
            .sum::<usize>(),
    );
    out.extend_from_slice(SIGNING_CONTEXT);
    put_str(&mut out, &doc.org_id);
    out.extend_from_slice(&doc.version.to_be_bytes());
    put_str(&mut out, &doc.issued_at);
    put_str(&mut out, &doc.key_id);
    let count = u32::try_from(doc.rules.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for r in &doc.rules {
        put_str(&mut out, &r.id);
        put_str(&mut out, &r.category);
        put_str(&mut out, &r.severity);
        put_str(&mut out, &r.match_mode);
        put_str(&mut out, &r.pattern);
        put_str(&mut out, &r.language);
    }
    if !doc.alternatives.is_empty() {
        let count = u32::try_from(doc.alternatives.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for a in &doc.alternatives {
            put_str(&mut out, &a.category);
            put_str(&mut out, &a.script_id);
            put_str(&mut out, &a.text);
        }
    }
    out
}

/// Check that `doc` was signed by `public_key` and not changed since.
///
/// Uses strict Ed25519 verification (no malleable signatures, no weak keys).
/// The caller still checks `org_id` and that `version` did not go back.
pub fn verify(doc: &GuardRules, public_key: &[u8; 32]) -> Result<(), VerifyError> {
    let expected = key_id(public_key);
    if doc.key_id != expected {
        return Err(VerifyError::KeyMismatch {
            document: doc.key_id.clone(),
            key: expected,
        });
    }
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| VerifyError::BadPublicKey)?;
    let raw = STANDARD
        .decode(doc.signature.as_bytes())
        .map_err(|_| VerifyError::BadSignatureEncoding)?;
    let raw: [u8; 64] = raw
        .try_into()
        .map_err(|_| VerifyError::BadSignatureEncoding)?;
    let signature = Signature::from_bytes(&raw);
    key.verify_strict(&signed_bytes(doc), &signature)
        .map_err(|_| VerifyError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn rule(id: &str, pattern: &str) -> GuardRule {
        GuardRule {
            id: id.into(),
            category: "side_deal".into(),
            severity: "critical".into(),
            match_mode: "phrase".into(),
            pattern: pattern.into(),
            language: "zh".into(),
        }
    }

    fn signed(key: &SigningKey, rules: Vec<GuardRule>) -> GuardRules {
        let mut doc = GuardRules {
            org_id: "org_a".into(),
            version: 7,
            issued_at: "2026-11-24T12:00:00.123Z".into(),
            key_id: key_id(&key.verifying_key().to_bytes()),
            rules,
            alternatives: vec![],
            signature: String::new(),
        };
        doc.signature = STANDARD.encode(key.sign(&signed_bytes(&doc)).to_bytes());
        doc
    }

    #[test]
    fn signed_bytes_are_length_prefixed_fields() {
        let doc = GuardRules {
            org_id: "o".into(),
            version: 258,
            issued_at: "t".into(),
            key_id: "k".into(),
            rules: vec![GuardRule {
                id: "i".into(),
                category: "c".into(),
                severity: "s".into(),
                match_mode: "m".into(),
                pattern: "私".into(),
                language: "l".into(),
            }],
            alternatives: vec![],
            signature: "ignored".into(),
        };
        let mut want = b"assist.guard.rules.v1\0".to_vec();
        want.extend_from_slice(&[0, 0, 0, 1, b'o']);
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2]);
        want.extend_from_slice(&[0, 0, 0, 1, b't', 0, 0, 0, 1, b'k']);
        want.extend_from_slice(&[0, 0, 0, 1]);
        for f in [b"i", b"c", b"s", b"m"] {
            want.extend_from_slice(&[0, 0, 0, 1]);
            want.extend_from_slice(f);
        }
        want.extend_from_slice(&[0, 0, 0, 3, 0xe7, 0xa7, 0x81]);
        want.extend_from_slice(&[0, 0, 0, 1, b'l']);
        assert_eq!(signed_bytes(&doc), want);

        // Alternatives follow the rules, and only when there are some.
        let mut with_alt = doc.clone();
        with_alt.alternatives = vec![GuardAlternative {
            category: "c".into(),
            script_id: "x".into(),
            text: "y".into(),
        }];
        want.extend_from_slice(&[0, 0, 0, 1]);
        for f in [b"c", b"x", b"y"] {
            want.extend_from_slice(&[0, 0, 0, 1]);
            want.extend_from_slice(f);
        }
        assert_eq!(signed_bytes(&with_alt), want);
    }

    #[test]
    fn verifies_and_survives_a_json_round_trip() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let doc = signed(&key, vec![rule("a", "私下\"交易\"\n"), rule("b", "回扣")]);
        let json = serde_json::to_string_pretty(&doc).unwrap();
        let back: GuardRules = serde_json::from_str(&json).unwrap();
        assert_eq!(verify(&back, &key.verifying_key().to_bytes()), Ok(()));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let key = SigningKey::from_bytes(&[2; 32]);
        let public = key.verifying_key().to_bytes();
        let doc = signed(&key, vec![rule("a", "私下交易"), rule("b", "回扣")]);
        let tampered: Vec<fn(&mut GuardRules)> = vec![
            |d| d.org_id = "org_b".into(),
            |d| d.version -= 1,
            |d| d.issued_at = "2027-01-01T00:00:00Z".into(),
            |d| {
                d.rules.pop();
            },
            |d| d.rules.swap(0, 1),
            |d| d.rules[0].severity = "low".into(),
            // Moving bytes between adjacent fields must not verify either.
            |d| {
                d.rules[0].id = "as".into();
                d.rules[0].category = "ide_deal".into();
            },
        ];
        for change in tampered {
            let mut d = doc.clone();
            change(&mut d);
            assert_eq!(verify(&d, &public), Err(VerifyError::BadSignature));
        }
        let mut d = doc.clone();
        d.signature = "bm90IGEgc2lnbmF0dXJl".into();
        assert_eq!(verify(&d, &public), Err(VerifyError::BadSignatureEncoding));
        let other = SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes();
        assert!(matches!(
            verify(&doc, &other),
            Err(VerifyError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn public_key_documents_decode_and_check_their_id() {
        let public = SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes();
        let mut doc = GuardPublicKey {
            key_id: key_id(&public),
            algorithm: ALGORITHM_ED25519.into(),
            public_key: STANDARD.encode(public),
        };
        assert_eq!(doc.key_bytes(), Ok(public));
        doc.key_id = "0000000000000000".into();
        assert!(matches!(
            doc.key_bytes(),
            Err(VerifyError::KeyMismatch { .. })
        ));
        doc.algorithm = "rsa".into();
        assert!(matches!(
            doc.key_bytes(),
            Err(VerifyError::UnsupportedAlgorithm(_))
        ));
    }
}
