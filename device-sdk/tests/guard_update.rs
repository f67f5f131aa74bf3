//! Fetching the signed rules: pin on first contact, ETag, refusals.

mod common;

use assist_device_sdk::protocol::guard::{GuardRule, GuardRules};
use assist_device_sdk::{Error, Guard, GuardDecision, GuardUpdate};
use common::{FakeServer, client_for};

fn doc(org: &str, version: u64, pattern: &str) -> GuardRules {
    GuardRules {
        org_id: org.into(),
        version,
        issued_at: "2026-11-24T12:00:00Z".into(),
        key_id: String::new(),
        rules: vec![GuardRule {
            id: "lex_1".into(),
            category: "side_deal".into(),
            severity: "critical".into(),
            match_mode: "phrase".into(),
            pattern: pattern.into(),
            language: "zh".into(),
        }],
        alternatives: vec![],
        signature: String::new(),
    }
}

#[tokio::test]
async fn rules_are_pinned_cached_by_etag_and_never_loosened() {
    let server = FakeServer::start().await;
    server.publish(doc("org_a", 1, "私下交易"));
    let dir = tempfile::tempdir().unwrap();
    let (outbox, client) = client_for(&server, dir.path());
    let guard = Guard::load(&outbox).unwrap();
    let update = client.update_guard(&guard).await.unwrap();
    assert!(matches!(
        update,
        GuardUpdate::Updated {
            version: 1,
            rules: 1,
            ..
        }
    ));
    assert!(guard.check("我们私下交易吧").is_block());
    assert_eq!(server.requests("guard_key"), 1);
    // Nothing changed: 304, no body.
    let update = client.update_guard(&guard).await.unwrap();
    assert_eq!(update, GuardUpdate::NotModified { version: 1 });
    assert_eq!(server.with(|f| f.guard_304), 1);
    assert_eq!(
        server.requests("guard_key"),
        1,
        "the key is pinned, not fetched again"
    );
    // A new version replaces the rules.
    server.publish(doc("org_a", 2, "回扣"));
    client.update_guard(&guard).await.unwrap();
    assert_eq!(guard.check("我们私下交易吧"), GuardDecision::Allow);
    assert!(guard.check("给你回扣").is_block());
    // An older version (a replay) and another organisation are refused;
    // the rules in force stay.
    server.publish(doc("org_a", 1, "私下交易"));
    assert!(matches!(
        client.update_guard(&guard).await,
        Err(Error::GuardRefused(_))
    ));
    server.publish(doc("org_b", 5, "x"));
    let err = client.update_guard(&guard).await.unwrap_err();
    assert!(err.to_string().contains("org_b"), "{err}");
    assert_eq!(guard.version(), Some(2));
    // After a restart the pinned rules are in force before any network.
    let again = Guard::load(&outbox).unwrap();
    assert!(again.check("给你回扣").is_block());
}
