use super::*;
use crate::{ItemKind, OutboxConfig};
use assist_protocol::guard::{key_id, signed_bytes};
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};

fn rule(id: &str, severity: &str, mode: &str, pattern: &str, language: &str) -> GuardRule {
    GuardRule {
        id: id.into(),
        category: if id.starts_with("pc") {
            "private_contact".into()
        } else {
            "side_deal".into()
        },
        severity: severity.into(),
        match_mode: mode.into(),
        pattern: pattern.into(),
        language: language.into(),
    }
}

fn signed(key: &SigningKey, org: &str, version: u64, rules: Vec<GuardRule>) -> GuardRules {
    let mut doc = GuardRules {
        org_id: org.into(),
        version,
        issued_at: "2026-11-24T12:00:00Z".into(),
        key_id: key_id(&key.verifying_key().to_bytes()),
        rules,
        alternatives: vec![GuardAlternative {
            category: "private_contact".into(),
            script_id: "scr_1".into(),
            text: "您可以通过公司企业微信联系我".into(),
        }],
        signature: String::new(),
    };
    doc.signature =
        base64::engine::general_purpose::STANDARD.encode(key.sign(&signed_bytes(&doc)).to_bytes());
    doc
}

fn public(key: &SigningKey) -> GuardPublicKey {
    let bytes = key.verifying_key().to_bytes();
    GuardPublicKey {
        key_id: key_id(&bytes),
        algorithm: "ed25519".into(),
        public_key: base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

fn rules() -> Vec<GuardRule> {
    vec![
        rule("pc1", "high", "phrase", "加我微信", "zh"),
        rule("pc2", "medium", "phrase", "私人号码", "zh"),
        rule("sd1", "critical", "phrase", "kickback", "en"),
        rule("sd2", "high", "regex", r"\bpay me directly\b", "en"),
        rule("sd3", "critical", "regex", r"私下.{0,3}交易", "zh"),
        rule("sd4", "low", "phrase", "加微信", "zh"),
        rule("sd5", "critical", "phrase", "微信号", "zh"),
    ]
}

fn setup() -> (tempfile::TempDir, Outbox, Guard, SigningKey) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), OutboxConfig::default()).unwrap();
    let guard = Guard::load(&outbox).unwrap();
    let key = SigningKey::from_bytes(&[9; 32]);
    guard.pin_key(&public(&key)).unwrap();
    guard.pin_org("org_a").unwrap();
    guard.install(signed(&key, "org_a", 3, rules())).unwrap();
    (dir, outbox, guard, key)
}

fn rule_of(d: &GuardDecision) -> Option<(&str, &str)> {
    match d {
        GuardDecision::Allow => None,
        GuardDecision::Warn { rule, .. } => Some(("warn", rule.rule_id.as_str())),
        GuardDecision::Block { rule, .. } => Some(("block", rule.rule_id.as_str())),
    }
}

#[test]
fn phrases_match_through_the_shared_normaliser() {
    let (_d, _o, g, _k) = setup();
    let d = g.check("您好，加 我 V 信 吧");
    assert_eq!(rule_of(&d), Some(("block", "pc1")));
    match d {
        GuardDecision::Block { rule, alternative } => {
            assert_eq!(rule.matched, "加 我 V 信");
            assert_eq!(alternative.unwrap().script_id, "scr_1");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rule_of(&g.check("這是我的私人號碼")), Some(("warn", "pc2")));
    assert_eq!(g.check("我们明天见"), GuardDecision::Allow);
}

#[test]
fn latin_phrases_respect_word_edges_like_the_server() {
    let (_d, _o, g, _k) = setup();
    assert_eq!(
        rule_of(&g.check("no KICKBACK here")),
        Some(("block", "sd1"))
    );
    assert_eq!(
        rule_of(&g.check("kickbacks are banned")),
        Some(("block", "sd1"))
    );
    assert_eq!(g.check("kickbacker"), GuardDecision::Allow);
    assert_eq!(g.check("akickback"), GuardDecision::Allow);
    assert_eq!(rule_of(&g.check("给你kickback")), Some(("block", "sd1")));
}

#[test]
fn regexes_use_the_view_of_their_language() {
    let (_d, _o, g, _k) = setup();
    assert_eq!(
        rule_of(&g.check("Please PAY me,  directly!")),
        Some(("block", "sd2"))
    );
    assert_eq!(g.check("pay mediately"), GuardDecision::Allow);
    assert_eq!(
        rule_of(&g.check("我们私 下 做个交易")),
        Some(("block", "sd3"))
    );
}

#[test]
fn an_overlapping_severe_rule_wins_over_a_mild_one() {
    let (_d, _o, g, _k) = setup();
    // A leftmost-longest scan would stop at 加微信 (low) and miss 微信号.
    assert_eq!(rule_of(&g.check("加微信号")), Some(("block", "sd5")));
    assert_eq!(rule_of(&g.check("可以加微信")), Some(("warn", "sd4")));
}

#[test]
fn documents_are_verified_pinned_and_never_go_back() {
    let (_d, outbox, g, key) = setup();
    let mut forged = signed(&key, "org_a", 4, vec![]);
    forged.rules.push(rule("x", "low", "phrase", "x", "zh"));
    assert!(matches!(g.install(forged), Err(Error::GuardRefused(_))));
    let other_org = signed(&key, "org_b", 9, vec![]);
    assert!(matches!(g.install(other_org), Err(Error::GuardRefused(m)) if m.contains("org_b")));
    assert!(matches!(
        g.install(signed(&key, "org_a", 2, vec![])),
        Err(Error::GuardRefused(_))
    ));
    let stranger = SigningKey::from_bytes(&[1; 32]);
    assert!(g.install(signed(&stranger, "org_a", 5, vec![])).is_err());
    assert!(
        g.pin_key(&public(&stranger)).is_err(),
        "a pin is not replaced silently"
    );
    assert_eq!(g.version(), Some(3));
    // The rules in force survive a restart.
    let again = Guard::load(&outbox).unwrap();
    assert_eq!(again.version(), Some(3));
    assert_eq!(rule_of(&again.check("加我微信")), Some(("block", "pc1")));
    // A tampered stored document is refused at load.
    let mut doc = again.rules().unwrap();
    doc.rules.clear();
    outbox
        .kv_set(KV_DOC, &serde_json::to_string(&doc).unwrap())
        .unwrap();
    assert!(Guard::load(&outbox).is_err());
}

#[test]
fn blocked_and_warned_attempts_are_queued_without_the_text() {
    let (_d, outbox, g, _k) = setup();
    assert!(
        g.check_outgoing("加我微信 13800138000", Some("conv-1"))
            .unwrap()
            .is_block()
    );
    g.check_outgoing("私人号码", None).unwrap();
    g.check_outgoing("你好", None).unwrap();
    let rows = outbox.due(ItemKind::Event, i64::MAX, 10).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].payload.contains(r#""type":"guard_blocked","rule_id":"pc1","category":"private_contact","decision":"block","conversation_id":"conv-1","rules_version":3"#), "{}", rows[0].payload);
    assert!(rows[1].payload.contains(r#""decision":"warn""#));
    assert!(
        !rows
            .iter()
            .any(|r| r.payload.contains("13800138000") || r.payload.contains("加我"))
    );
}

#[test]
fn no_rules_allow_everything() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), OutboxConfig::default()).unwrap();
    let g = Guard::load(&outbox).unwrap();
    assert_eq!(g.check("加我微信"), GuardDecision::Allow);
    assert_eq!(g.version(), None);
}

/// Micro benchmark: `cargo test -p assist-device-sdk --release -- --ignored guard_check_speed --nocapture`.
#[test]
#[ignore = "benchmark: prints ns per check"]
fn guard_check_speed() {
    let (_d, _o, g, _k) = setup();
    let texts = [
        "您好，这款产品的价格已经是最低了，我们可以给您申请一个优惠",
        "加 我 V 信 吧，私下给你返点",
        "Please pay me directly and I'll give you a kickback",
        "好的，明天下午三点我们电话确认合同细节",
    ];
    let n = 20_000;
    let t = std::time::Instant::now();
    let mut blocks = 0;
    for i in 0..n {
        if g.check(texts[i % texts.len()]).is_block() {
            blocks += 1;
        }
    }
    let per = t.elapsed().as_nanos() / n as u128;
    println!("guard check: {per} ns/check over {n} checks ({blocks} blocked)");
}
