use assist_knowledge_base::{MatchMode, RiskAction, RiskCategory as Cat, Severity};
use assist_models::embed::FakeEmbedder;

use super::*;

fn entry(pattern: &str, category: Cat, mode: MatchMode, language: Language) -> LexiconContent {
    LexiconContent {
        pattern: pattern.into(),
        category,
        severity: Severity::High,
        match_mode: mode,
        action: RiskAction::Alert,
        language,
        note: None,
    }
}

fn engine() -> RiskEngine {
    use Language::{En, Zh};
    use MatchMode::{Phrase, Regex, Semantic};
    let entries = vec![
        ("pc-1", entry("加我微信", Cat::PrivateContact, Phrase, Zh)),
        ("pc-2", entry("私人微信", Cat::PrivateContact, Phrase, Zh)),
        (
            "pc-3",
            entry("add me on wechat", Cat::PrivateContact, Phrase, En),
        ),
        ("sd-1", entry("私下交易", Cat::SideDeal, Phrase, Zh)),
        ("sd-2", entry("side deal", Cat::SideDeal, Phrase, En)),
        ("kb-1", entry("返点", Cat::Kickback, Phrase, Zh)),
        ("kb-2", entry("回扣", Cat::Kickback, Phrase, Zh)),
        ("kb-3", entry("kickback", Cat::Kickback, Phrase, En)),
        (
            "co-1",
            entry("友商的产品很垃圾", Cat::Competitor, Phrase, Zh),
        ),
        (
            "op-1",
            entry("保证(收益|赚钱|回本)", Cat::OverPromising, Regex, Zh),
        ),
        (
            "op-2",
            entry(
                r"\bguaranteed? (returns?|profits?)\b",
                Cat::OverPromising,
                Regex,
                En,
            ),
        ),
        ("ab-1", entry("滚", Cat::Abuse, Phrase, Zh)),
        (
            "se-1",
            entry("我们私下把这单做了，不走公司", Cat::SideDeal, Semantic, Zh),
        ),
    ];
    RiskEngine::build(entries, EngineOptions::default()).expect("engine builds")
}

fn alerts(text: &str, role: Speaker) -> Vec<(Cat, String)> {
    engine()
        .check(text, role, None)
        .into_iter()
        .filter(RiskHit::is_alert)
        .map(|h| (h.category, evidence(text, &h)))
        .collect()
}

fn cats(text: &str, role: Speaker) -> Vec<Cat> {
    let mut c: Vec<Cat> = alerts(text, role).into_iter().map(|a| a.0).collect();
    c.dedup();
    c
}

#[test]
fn engine_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RiskEngine>();
}

#[test]
fn evasions_match_with_offsets_into_the_original() {
    let text = "王总您好😊，加 我 V X 吧";
    let a = alerts(text, Speaker::Rep);
    assert_eq!(a, vec![(Cat::PrivateContact, "加 我 V X".to_string())]);
    let text = "有需要可以+我薇信";
    assert_eq!(alerts(text, Speaker::Rep)[0].1, "+我薇信");
    let text = "返﹏點的事好商量"; // Traditional + inserted symbol
    assert_eq!(
        alerts(text, Speaker::Rep),
        vec![(Cat::Kickback, "返﹏點".into())]
    );
    let text = "ＫＩＣＫＢＡＣＫ is fine";
    assert_eq!(cats(text, Speaker::Rep), vec![Cat::Kickback]);
    let text = "可以私.下.交.易";
    assert_eq!(alerts(text, Speaker::Rep)[0].1, "私.下.交.易");
    let text = "我们可以fandian给您";
    assert_eq!(cats(text, Speaker::Rep), vec![Cat::Kickback]);
}

#[test]
fn latin_phrases_respect_word_boundaries() {
    assert_eq!(
        cats("our kickbacks are generous", Speaker::Rep),
        vec![Cat::Kickback]
    );
    assert!(cats("the outside dealer network", Speaker::Rep).is_empty());
    assert_eq!(
        cats("we can do a side-deal", Speaker::Rep),
        vec![Cat::SideDeal]
    );
}

#[test]
fn negation_is_compliance_not_risk() {
    let e = engine();
    let hits = e.check("我们不能私下交易，都要走公司合同", Speaker::Rep, None);
    assert_eq!(hits.len(), 1);
    assert!(hits[0].negated);
    assert_eq!(hits[0].suppressed, Some(Suppression::Negated));
    assert!(cats("公司严禁收取回扣", Speaker::Rep).is_empty());
    assert!(cats("We can't offer kickbacks, sorry.", Speaker::Rep).is_empty());
    assert!(cats("私人微信是不允许的，请加企业微信", Speaker::Rep).is_empty());
    // a negated clause does not cover the next one
    assert_eq!(
        cats("不好意思，加我微信吧", Speaker::Rep),
        vec![Cat::PrivateContact]
    );
    assert_eq!(
        cats("这个价格不能再低了，私下给你返点", Speaker::Rep),
        vec![Cat::Kickback]
    );
}

#[test]
fn role_context() {
    let e = engine();
    // A customer asking for a kickback: still risk, one severity lower.
    let hits = e.check("能不能给点返点？", Speaker::Customer, None);
    assert_eq!(hits.len(), 1);
    assert!(hits[0].is_alert());
    assert_eq!(hits[0].severity, Severity::Medium);
    let rep = e.check("能不能给点返点？", Speaker::Rep, None);
    assert_eq!(rep[0].severity, Severity::High);
    // A customer naming a competitor or asking for a guarantee is ordinary talk.
    let hits = e.check("你能保证赚钱吗", Speaker::Customer, None);
    assert_eq!(hits[0].suppressed, Some(Suppression::Role));
    assert_eq!(cats("这个保证赚钱", Speaker::Rep), vec![Cat::OverPromising]);
    // Abuse counts from either side.
    assert_eq!(cats("你给我滚", Speaker::Customer), vec![Cat::Abuse]);
    // Unknown speakers are treated like reps.
    assert_eq!(
        cats("这个保证赚钱", Speaker::Unknown),
        vec![Cat::OverPromising]
    );
}

#[test]
fn phone_numbers_including_chinese_numerals() {
    for (text, evidence) in [
        ("我手机13812345678", "13812345678"),
        ("打我电话 138 1234 5678", "138 1234 5678"),
        ("号码是一三八一二三四五六七八", "一三八一二三四五六七八"),
        ("幺三九，零零一二，三四五六", "幺三九，零零一二，三四五六"),
        ("+86 139-0012-3456 随时打", "86 139-0012-3456"),
        ("①③⑧①②③④⑤⑥⑦⑧", "①③⑧①②③④⑤⑥⑦⑧"),
    ] {
        let a = alerts(text, Speaker::Rep);
        assert_eq!(
            a,
            vec![(Cat::PrivateContact, evidence.to_string())],
            "{text}"
        );
    }
    // the customer's own number is theirs to give
    let hits = engine().check("我电话13812345678", Speaker::Customer, None);
    assert_eq!(hits[0].suppressed, Some(Suppression::Role));
}

#[test]
fn numbers_that_are_not_phones() {
    for text in [
        "订单号13812345678已发货",
        "您的订单号 202405120000123454 已出库",
        "报价是13800元，数量12套",
        "快递单号：SF 1381234567890",
        "一年一千三百八十元",
        "型号13912345678的配件",
    ] {
        assert!(cats(text, Speaker::Rep).is_empty(), "{text}");
    }
    let opts = EngineOptions {
        allowed_numbers: vec!["138-1234-5678".into()],
        ..EngineOptions::default()
    };
    let e = RiskEngine::build(Vec::<(String, LexiconContent)>::new(), opts).unwrap();
    assert!(
        e.check("我的工作号13812345678", Speaker::Rep, None)
            .is_empty()
    );
}

#[test]
fn bank_cards_need_luhn_and_a_cue() {
    assert_eq!(
        cats("钱打到我卡号6222020200112233446就行", Speaker::Rep),
        vec![Cat::SideDeal]
    );
    assert_eq!(
        cats("6230 6157 1000 1234 564", Speaker::Rep),
        vec![Cat::SideDeal]
    );
    // fails Luhn
    assert!(cats("卡号6222020200112233445", Speaker::Rep).is_empty());
    // customer giving a card for a refund
    let hits = engine().check("退款打到我卡号6222020200112233446", Speaker::Customer, None);
    assert!(hits.iter().all(|h| !h.is_alert()));
}

#[test]
fn wechat_ids_qq_and_payment_patterns() {
    assert_eq!(
        cats("我微信号：wang_sales88", Speaker::Rep),
        vec![Cat::PrivateContact]
    );
    assert_eq!(
        cats("vx: abc12345", Speaker::Rep),
        vec![Cat::PrivateContact]
    );
    assert_eq!(
        cats("扣扣 八七六五四三二一", Speaker::Rep),
        vec![Cat::PrivateContact]
    );
    assert_eq!(
        cats("扫我的个人收款码付款就行", Speaker::Rep),
        vec![Cat::SideDeal]
    );
    assert_eq!(
        cats("直接转我个人支付宝", Speaker::Rep),
        vec![Cat::SideDeal]
    );
    assert_eq!(
        cats("Just pay me directly", Speaker::Rep),
        vec![Cat::SideDeal]
    );
    assert_eq!(cats("过节给您发个红包", Speaker::Rep), vec![Cat::Kickback]);
    assert_eq!(
        cats("I'll send you a red envelope", Speaker::Rep),
        vec![Cat::Kickback]
    );
}

#[test]
fn hard_negatives() {
    for text in [
        "您可以加我企业微信，聊天都有存档",
        "返回首页就能看到",
        "设备返厂维修大概一周",
        "我们支持私有化部署，数据都在您自己的机房",
        "您的隐私我们严格保护",
        "我们的营销插件支持红包封面和红包雨",
        "扫码关注公众号领取资料",
        "微信支付和支付宝都可以，走公司对公账户",
        "return the device for a refund",
        "privacy policy attached",
    ] {
        assert!(
            cats(text, Speaker::Rep).is_empty(),
            "{text}: {:?}",
            alerts(text, Speaker::Rep)
        );
    }
}

#[test]
fn emoji_and_mixed_scripts() {
    let text = "亲😘 加我wechat吧👉 wx: sales_wang99 🙏";
    let a = alerts(text, Speaker::Rep);
    assert!(a.iter().all(|(c, _)| *c == Cat::PrivateContact), "{a:?}");
    assert!(a.iter().any(|(_, e)| e == "加我wechat"), "{a:?}");
    // offsets are chars, not bytes
    let hits = engine().check("👍👍私下交易", Speaker::Rep, None);
    assert_eq!((hits[0].char_start, hits[0].char_end), (2, 6));
    assert!(hits[0].snippet.contains("私下交易"));
    // empty and symbol-only text
    assert!(engine().check("", Speaker::Rep, None).is_empty());
    assert!(engine().check("🙂🙂 。。。", Speaker::Rep, None).is_empty());
}

#[test]
fn invalid_regex_is_an_error_not_a_panic() {
    let bad = entry(
        "保证(收益",
        Cat::OverPromising,
        MatchMode::Regex,
        Language::Zh,
    );
    let err = RiskEngine::build([("bad-1", bad)], EngineOptions::default()).unwrap_err();
    assert!(
        matches!(err, RiskError::InvalidRegex { ref entry, .. } if entry == "bad-1"),
        "{err}"
    );
    let empty = entry("！！！", Cat::Abuse, MatchMode::Phrase, Language::Zh);
    assert!(matches!(
        RiskEngine::build([("e", empty)], EngineOptions::default()),
        Err(RiskError::EmptyPhrase { .. })
    ));
}

#[test]
fn semantic_detector_with_a_fake_embedder() {
    let mut e = engine();
    assert!(!e.semantic_ready());
    let mut fake = FakeEmbedder::new();
    e.embed_exemplars(&mut ModelEmbedder(&mut fake)).unwrap();
    assert!(e.semantic_ready());
    assert_eq!(e.exemplar_texts(), vec!["我们私下把这单做了，不走公司"]);
    // the exemplar itself is similarity 1
    let text = "我们私下把这单做了，不走公司";
    let hits = e
        .check_embedded(text, Speaker::Rep, None, &mut ModelEmbedder(&mut fake))
        .unwrap();
    let sem: Vec<_> = hits
        .iter()
        .filter(|h| h.detector == Detector::Semantic)
        .collect();
    assert_eq!(sem.len(), 1, "{hits:?}");
    assert_eq!(sem[0].category, Cat::SideDeal);
    assert_eq!((sem[0].char_start, sem[0].char_end), (0, 14));
    // a refusal in the message suppresses the semantic hit
    let text = "我们不能私下把这单做了，不走公司";
    let hits = e
        .check_embedded(text, Speaker::Rep, None, &mut ModelEmbedder(&mut fake))
        .unwrap();
    assert!(hits.iter().all(|h| !h.is_alert()), "{hits:?}");
    // wrong vector counts are errors
    assert!(matches!(
        e.attach_exemplar_vectors(vec![]),
        Err(RiskError::VectorCount {
            expected: 1,
            got: 0
        })
    ));
    // closures are embedders too
    let mut calls = 0;
    let mut f = |t: &[&str]| {
        calls += 1;
        Ok::<_, String>(t.iter().map(|_| vec![1.0, 0.0]).collect())
    };
    e.embed_exemplars(&mut f).unwrap();
    assert_eq!(calls, 1);
}
