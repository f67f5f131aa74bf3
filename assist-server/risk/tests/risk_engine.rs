//! The risk engine with the sample lexicon of `eval/data/risk/`, as the
//! server will use it: built once, shared across threads, rebuilt on change.
//! The semantic test with real weights prints "skipped: …" and passes when
//! multilingual-e5-small is not ready in `$ASSIST_MODEL_DIR` or
//! `~/.cache/assist/models`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use assist_knowledge_base::io::{Format, parse_lexicon};
use assist_knowledge_base::validate::Limits;
use assist_knowledge_base::{Language, LexiconContent, MatchMode, RiskCategory};
use assist_models::embed::{Embedder, FakeEmbedder};
use assist_risk::{
    Detector, EngineOptions, ModelEmbedder, RiskEngine, RiskError, Speaker, Suppression,
};
use assist_testkit::{Kind, skip};

fn sample_lexicon() -> Vec<(String, LexiconContent)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../eval/data/risk/lexicon.jsonl");
    let text = std::fs::read_to_string(&path).expect("sample lexicon");
    let parsed = parse_lexicon(&text, Format::Jsonl, &Limits::default());
    assert!(parsed.is_clean(), "{:?}", parsed.errors);
    parsed
        .records
        .into_iter()
        .map(|r| (r.id.expect("ids in the sample"), r.content))
        .collect()
}

fn alert_categories(engine: &RiskEngine, text: &str, role: Speaker) -> Vec<RiskCategory> {
    let mut c: Vec<RiskCategory> = engine
        .check(text, role, None)
        .into_iter()
        .filter(|h| h.is_alert())
        .map(|h| h.category)
        .collect();
    c.sort_by_key(|c| c.as_str());
    c.dedup();
    c
}

#[test]
fn sample_lexicon_catches_evasions_and_spares_hard_negatives() {
    let engine = RiskEngine::build(sample_lexicon(), EngineOptions::default()).unwrap();
    use RiskCategory::*;
    use Speaker::{Customer, Rep};
    let cases: &[(&str, Speaker, &[RiskCategory])] = &[
        (
            "加 我 V 信 吧，这个号不方便",
            Rep,
            &[CompliancePhrase, PrivateContact],
        ),
        ("我們可以私下簽，價格再低一點", Rep, &[SideDeal]),
        ("给你 hui kou 百分之五", Rep, &[Kickback]),
        (
            "王总，我手机一三八 一二三四 五六七八",
            Rep,
            &[PrivateContact],
        ),
        ("尾款转我个人支付宝就行", Rep, &[SideDeal]),
        ("国庆快乐！给您发个红包", Rep, &[Kickback]),
        ("能不能给点返点？", Customer, &[Kickback]),
        (
            "Add me on WeChat, this phone is monitored",
            Rep,
            &[CompliancePhrase, PrivateContact],
        ),
        (
            "This is guaranteed to double your sales",
            Rep,
            &[OverPromising],
        ),
        (
            "Let's turn off the recording for a minute",
            Rep,
            &[CompliancePhrase],
        ),
        // hard negatives
        ("我们不能私下交易，一切以合同为准", Rep, &[]),
        ("You can add my WeCom account, chats are archived", Rep, &[]),
        ("您可以加我企业微信，聊天记录公司都有存档", Rep, &[]),
        ("我们的营销插件支持红包封面和红包雨", Rep, &[]),
        ("设备返厂维修，运费我们承担", Rep, &[]),
        ("订单 13800138000 的物流到哪了？", Customer, &[]),
        ("我的手机号13912345678，发货前打我电话", Customer, &[]),
        ("投诉热线是400-800-1234", Rep, &[]),
        ("We can't offer kickbacks or personal rebates.", Rep, &[]),
        ("你们能保证一年回本吗？", Customer, &[]),
    ];
    for (text, role, want) in cases {
        assert_eq!(&alert_categories(&engine, text, *role), want, "{text}");
    }
}

#[test]
fn engine_is_shared_across_threads_and_swapped_on_change() {
    let entries = sample_lexicon();
    let shared = Arc::new(RwLock::new(Arc::new(
        RiskEngine::build(entries.clone(), EngineOptions::default()).unwrap(),
    )));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let engine = shared.read().unwrap().clone();
                engine.check("加我微信", Speaker::Rep, None).len()
            })
        })
        .collect();
    for w in workers {
        assert!(w.join().unwrap() >= 1);
    }
    // A trainer retires every private-contact entry: rebuild and swap.
    let fewer: Vec<_> = entries
        .into_iter()
        .filter(|(_, c)| c.category != RiskCategory::PrivateContact)
        .collect();
    *shared.write().unwrap() =
        Arc::new(RiskEngine::build(fewer, EngineOptions::default()).unwrap());
    let engine = shared.read().unwrap().clone();
    assert!(
        engine
            .check("加我微信", Speaker::Rep, None)
            .iter()
            .all(|h| h.detector != Detector::Lexicon)
    );
}

#[test]
fn an_invalid_regex_fails_the_build_with_the_entry_id() {
    let mut entries = sample_lexicon();
    let mut bad = entries[0].1.clone();
    bad.match_mode = MatchMode::Regex;
    bad.pattern = "(返点|回扣".into();
    entries.push(("bad-regex".into(), bad));
    match RiskEngine::build(entries, EngineOptions::default()) {
        Err(RiskError::InvalidRegex { entry, .. }) => assert_eq!(entry, "bad-regex"),
        other => panic!("expected InvalidRegex, got {other:?}"),
    }
}

#[test]
fn every_hit_points_at_its_evidence() {
    let engine = RiskEngine::build(sample_lexicon(), EngineOptions::default()).unwrap();
    let text = "😀亲，加我Ｗ Ｘ：ｌｉｍｉｎｇ６６６，私 下 交 易更划算";
    let hits = engine.check(text, Speaker::Rep, None);
    assert!(!hits.is_empty());
    let chars: Vec<char> = text.chars().collect();
    for h in &hits {
        assert!(
            h.char_start < h.char_end && h.char_end <= chars.len(),
            "{h:?}"
        );
        let evidence: String = chars[h.char_start..h.char_end].iter().collect();
        assert!(h.snippet.contains(&evidence), "{h:?}");
    }
    let evidence: Vec<String> = hits
        .iter()
        .map(|h| chars[h.char_start..h.char_end].iter().collect())
        .collect();
    assert!(evidence.iter().any(|e| e == "私 下 交 易"), "{evidence:?}");
    assert!(evidence.iter().any(|e| e.contains("Ｗ Ｘ")), "{evidence:?}");
}

#[test]
fn semantic_with_the_fake_embedder() {
    let mut engine = RiskEngine::build(sample_lexicon(), EngineOptions::default()).unwrap();
    let mut fake = FakeEmbedder::new();
    engine
        .embed_exemplars(&mut ModelEmbedder(&mut fake))
        .unwrap();
    assert!(engine.semantic_ready());
    let exemplar = engine.exemplar_texts()[0].to_string();
    let hits = engine
        .check_embedded(&exemplar, Speaker::Rep, None, &mut ModelEmbedder(&mut fake))
        .unwrap();
    assert!(hits.iter().any(|h| h.is_alert()), "{hits:?}");
}

fn e5_dir() -> Option<PathBuf> {
    let root = std::env::var_os("ASSIST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cache/assist/models")
        });
    let dir = root.join("multilingual-e5-small");
    let ready = dir.join("ready.json").is_file() && dir.join("tokenizer.json").is_file();
    if !ready {
        skip(
            Kind::Model,
            format!(
                "multilingual-e5-small is not ready in {} (run `assist models fetch --only embedder`)",
                dir.display()
            ),
        );
    }
    ready.then_some(dir)
}

#[test]
fn semantic_with_real_e5_weights_finds_a_paraphrase() {
    let Some(dir) = e5_dir() else { return };
    let mut model = Embedder::load(&dir).expect("load e5");
    let mut engine = RiskEngine::build(sample_lexicon(), EngineOptions::default()).unwrap();
    engine
        .embed_exemplars(&mut ModelEmbedder(&mut model))
        .unwrap();
    let text = "这一单咱们私下弄，你把款打给我，我单独给你办，价格比公司系统里低";
    let hits = engine
        .check_embedded(
            text,
            Speaker::Rep,
            Some(Language::Zh),
            &mut ModelEmbedder(&mut model),
        )
        .unwrap();
    assert!(
        hits.iter()
            .any(|h| h.category == RiskCategory::SideDeal && h.is_alert()),
        "{hits:?}"
    );
    let refusal = "这一单不能私下做，必须通过公司系统下单，钱也只能打到公司账户";
    let hits = engine
        .check_embedded(
            refusal,
            Speaker::Rep,
            Some(Language::Zh),
            &mut ModelEmbedder(&mut model),
        )
        .unwrap();
    assert!(
        hits.iter()
            .filter(|h| h.detector == Detector::Semantic)
            .all(|h| h.suppressed == Some(Suppression::Negated)),
        "{hits:?}"
    );
}
