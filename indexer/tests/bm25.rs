//! The lexical index: Chinese segmentation, English stemming, filters,
//! tenant isolation, replace/delete, and persistence on disk.

use assist_indexer::bm25::{Bm25Index, SearchFilter};
use assist_knowledge_base::workflow::restore_approved;
use assist_knowledge_base::{ApprovedScript, Language, Scenario, ScriptContent, Status};

#[allow(clippy::too_many_arguments)]
fn script(
    id: &str,
    org: &str,
    version: u32,
    title: &str,
    body: &str,
    scenario: Scenario,
    lang: Language,
    products: &[&str],
) -> ApprovedScript {
    restore_approved(
        id,
        org,
        version,
        Status::Approved,
        ScriptContent {
            title: title.into(),
            body: body.into(),
            scenario,
            tags: vec![],
            products: products.iter().map(|s| s.to_string()).collect(),
            language: lang,
        },
    )
    .unwrap()
}

fn sample() -> Vec<ApprovedScript> {
    vec![
        script(
            "s1",
            "o1",
            1,
            "价格异议：按年付更划算",
            "如果按年付费，每个席位每年只要1980元，比按月付便宜两成。",
            Scenario::PriceObjection,
            Language::Zh,
            &["云客CRM"],
        ),
        script(
            "s2",
            "o1",
            1,
            "宽带安装时间",
            "企业宽带下单后三个工作日内上门安装，加急可以第二天装好。",
            Scenario::Delivery,
            Language::Zh,
            &["企业宽带"],
        ),
        script(
            "s3",
            "o1",
            1,
            "Annual billing saves money",
            "If you pay annually, each seat costs 1,980 yuan a year, about 20% less than paying monthly.",
            Scenario::PriceObjection,
            Language::En,
            &["Yunke CRM"],
        ),
        script(
            "s4",
            "o1",
            1,
            "Installation lead time",
            "We install business broadband within three working days of your order.",
            Scenario::Delivery,
            Language::En,
            &["Business Broadband"],
        ),
        script(
            "s5",
            "o2",
            1,
            "价格异议：另一家公司的话术",
            "按年付费更便宜。",
            Scenario::PriceObjection,
            Language::Zh,
            &["云客CRM"],
        ),
    ]
}

fn filter(org: &str) -> SearchFilter {
    SearchFilter {
        org_id: org.into(),
        ..SearchFilter::default()
    }
}

#[test]
fn chinese_is_segmented_and_english_is_stemmed() {
    let idx = Bm25Index::in_memory().unwrap();
    let terms = idx.terms("你们的宽带安装要多久啊？");
    assert!(terms.contains(&"宽带".to_string()), "{terms:?}");
    assert!(terms.contains(&"安装".to_string()), "{terms:?}");
    assert!(
        !terms.iter().any(|t| t == "啊" || t == "？"),
        "fillers and punctuation are dropped: {terms:?}"
    );
    let terms = idx.terms("Installing the Broadband connections");
    assert!(
        terms.contains(&"instal".to_string()) || terms.contains(&"install".to_string()),
        "{terms:?}"
    );
    assert!(terms.contains(&"connect".to_string()), "{terms:?}");
}

#[test]
fn search_finds_the_right_script_within_filters_and_org() {
    let idx = Bm25Index::in_memory().unwrap();
    idx.upsert(&sample()).unwrap();
    let hits = idx.search("宽带多久能装好", &filter("o1"), 5).unwrap();
    assert_eq!(hits[0].id, "s2", "{hits:?}");
    let hits = idx
        .search("how long does installation take", &filter("o1"), 5)
        .unwrap();
    assert_eq!(hits[0].id, "s4", "{hits:?}");
    let hits = idx.search("按年付费是不是便宜", &filter("o1"), 5).unwrap();
    assert_eq!(hits[0].id, "s1", "{hits:?}");
    assert!(
        hits.iter().all(|h| h.id != "s5"),
        "another organisation's script leaked: {hits:?}"
    );
    // Filters.
    let f = SearchFilter {
        language: Some("en".into()),
        ..filter("o1")
    };
    let hits = idx.search("1980 annual seat price 按年", &f, 5).unwrap();
    assert!(
        hits.iter().all(|h| h.id == "s3" || h.id == "s4"),
        "{hits:?}"
    );
    let f = SearchFilter {
        product: Some("企业宽带".into()),
        ..filter("o1")
    };
    let hits = idx.search("安装 价格", &f, 5).unwrap();
    assert_eq!(
        hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
        vec!["s2"]
    );
    let f = SearchFilter {
        scenario: Some("price_objection".into()),
        ..filter("o1")
    };
    assert!(idx.search("安装", &f, 5).unwrap().is_empty());
    // Query syntax in customer text is just text.
    assert!(
        idx.search("price: \"AND\" -(OR) [1 TO 2]", &filter("o1"), 5)
            .is_ok()
    );
    assert!(idx.search("！？。", &filter("o1"), 5).unwrap().is_empty());
}

#[test]
fn replace_delete_and_reopen_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let idx = Bm25Index::open(dir.path()).unwrap();
        idx.upsert(&sample()).unwrap();
        let v2 = script(
            "s2",
            "o1",
            2,
            "宽带安装时间（新）",
            "下单后两个工作日内上门安装。",
            Scenario::Delivery,
            Language::Zh,
            &["企业宽带"],
        );
        idx.upsert(&[v2]).unwrap();
        idx.delete(&["s4".to_string()]).unwrap();
        assert_eq!(idx.count(), 4);
    }
    let idx = Bm25Index::open(dir.path()).unwrap();
    let mut ids = idx.ids().unwrap();
    ids.sort();
    assert_eq!(
        ids,
        vec![
            ("s1".to_string(), 1),
            ("s2".to_string(), 2),
            ("s3".to_string(), 1),
            ("s5".to_string(), 1)
        ]
    );
    let hits = idx.search("两个工作日", &filter("o1"), 5).unwrap();
    assert_eq!(hits[0].id, "s2");
    idx.clear().unwrap();
    assert_eq!(idx.count(), 0);
}
