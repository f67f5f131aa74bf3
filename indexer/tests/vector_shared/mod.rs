//! Behaviour every [`VectorIndex`] must have, shared by the embedded (`tests/vector.rs`) and the
//! server (`tests/vector_server.rs`) tests. Synthetic, deterministic unit vectors; no model.
#![allow(dead_code)] // each test binary uses a different subset

use assist_indexer::vector::{Error, VectorFilter, VectorIndex, VectorPoint};

pub const DIM: usize = 384;

/// A deterministic pseudo-random unit vector (splitmix64, then normalised).
pub fn unit(seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
        })
        .collect();
    normalise(&mut v);
    v
}

/// `base` moved a little towards another random direction, normalised again.
pub fn near(base: &[f32], seed: u64, amount: f32) -> Vec<f32> {
    let noise = unit(seed ^ 0xDEAD_BEEF);
    let mut v: Vec<f32> = base
        .iter()
        .zip(&noise)
        .map(|(a, b)| a + amount * b)
        .collect();
    normalise(&mut v);
    v
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn point(id: &str, org: &str, lang: &str, scenario: &str, products: &[&str]) -> VectorPoint {
    VectorPoint {
        id: id.to_string(),
        vector: unit(seed_of(id)),
        org_id: org.to_string(),
        language: lang.to_string(),
        scenario: scenario.to_string(),
        products: products.iter().map(|p| p.to_string()).collect(),
        version: 1,
    }
}

pub fn seed_of(id: &str) -> u64 {
    id.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    })
}

/// 40 scripts over two organisations, two languages, four scenarios, three products.
pub fn corpus() -> Vec<VectorPoint> {
    let scenarios = ["greeting", "price_objection", "closing", "complaint"];
    let products: [&[&str]; 3] = [&["broadband"], &["mobile", "broadband"], &["tv"]];
    (0..40)
        .map(|i| {
            let org = if i % 2 == 0 { "org_a" } else { "org_b" };
            let lang = if i % 4 < 2 { "zh" } else { "en" };
            point(
                &format!("scr_{org}_{i:03}"),
                org,
                lang,
                scenarios[(i / 4) % 4],
                products[i % 3],
            )
        })
        .collect()
}

fn ids(hits: &[assist_indexer::vector::VectorHit]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

pub fn nearest_first(index: &dyn VectorIndex) {
    let points = corpus();
    index.upsert(&points).unwrap();
    index.flush().unwrap();
    assert_eq!(index.count().unwrap(), points.len());

    let target = &points[10]; // org_a
    let query = near(&target.vector, 7, 0.05);
    let hits = index
        .search(&query, &VectorFilter::org("org_a"), 5)
        .unwrap();
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0].id, target.id);
    assert!(hits[0].score > 0.95, "score {}", hits[0].score);
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "{hits:?}"
    );
    // Scores are cosine similarities.
    let expected = cosine(&query, &target.vector);
    assert!(
        (hits[0].score - expected).abs() < 1e-3,
        "{} vs {expected}",
        hits[0].score
    );
}

pub fn filters(index: &dyn VectorIndex) {
    let points = corpus();
    index.upsert(&points).unwrap();
    index.flush().unwrap();
    let by_id = |id: &str| points.iter().find(|p| p.id == id).unwrap();

    // An org_a vector searched by org_b never returns org_a's script.
    let a = &points[0];
    let hits = index
        .search(&a.vector, &VectorFilter::org("org_b"), 40)
        .unwrap();
    assert_eq!(hits.len(), 20);
    assert!(
        hits.iter().all(|h| by_id(&h.id).org_id == "org_b"),
        "{:?}",
        ids(&hits)
    );
    assert!(
        index
            .search(&a.vector, &VectorFilter::org("org_c"), 40)
            .unwrap()
            .is_empty()
    );

    let cases = [
        VectorFilter::org("org_a").language("en"),
        VectorFilter::org("org_a").scenario("closing"),
        VectorFilter::org("org_b").product("broadband"),
        VectorFilter::org("org_a").language("zh").product("mobile"),
    ];
    for filter in cases {
        let expected: Vec<&VectorPoint> = points
            .iter()
            .filter(|p| {
                p.org_id == filter.org_id
                    && filter.language.as_ref().is_none_or(|l| &p.language == l)
                    && filter.scenario.as_ref().is_none_or(|s| &p.scenario == s)
                    && filter
                        .product
                        .as_ref()
                        .is_none_or(|x| p.products.contains(x))
            })
            .collect();
        assert!(!expected.is_empty(), "{filter:?}");
        let hits = index.search(&a.vector, &filter, 40).unwrap();
        let mut got = ids(&hits);
        got.sort();
        let mut want: Vec<&str> = expected.iter().map(|p| p.id.as_str()).collect();
        want.sort();
        assert_eq!(got, want, "{filter:?}");
    }
}

pub fn delete_removes(index: &dyn VectorIndex) {
    let points = corpus();
    index.upsert(&points).unwrap();
    let gone = points[4].id.clone();
    index
        .delete(&[gone.clone(), "scr_never_stored".to_string()])
        .unwrap();
    index.flush().unwrap();
    assert_eq!(index.count().unwrap(), points.len() - 1);
    let hits = index
        .search(&points[4].vector, &VectorFilter::org("org_a"), 40)
        .unwrap();
    assert!(hits.iter().all(|h| h.id != gone));
    assert!(index.ids(None).unwrap().iter().all(|(id, _)| *id != gone));
    index.delete(&[]).unwrap();
}

pub fn reupsert_replaces(index: &dyn VectorIndex) {
    let points = corpus();
    index.upsert(&points).unwrap();
    let mut p = points[6].clone();
    p.vector = unit(999_999);
    p.version = 2;
    p.scenario = "closing".to_string();
    index.upsert(std::slice::from_ref(&p)).unwrap();
    index.flush().unwrap();
    assert_eq!(index.count().unwrap(), points.len());
    let versions = index.ids(Some(&p.org_id)).unwrap();
    assert!(versions.contains(&(p.id.clone(), 2)), "{versions:?}");
    let hits = index
        .search(&unit(999_999), &VectorFilter::org(&p.org_id), 1)
        .unwrap();
    assert_eq!(hits[0].id, p.id);
    assert!(hits[0].score > 0.999);
    // The payload was replaced too.
    let hits = index
        .search(
            &unit(999_999),
            &VectorFilter::org(&p.org_id).scenario("closing"),
            1,
        )
        .unwrap();
    assert_eq!(hits[0].id, p.id);
}

pub fn ids_list_everything(index: &dyn VectorIndex) {
    assert!(index.ids(None).unwrap().is_empty());
    let mut points = corpus();
    points[1].version = 7;
    index.upsert(&points).unwrap();
    index.flush().unwrap();
    let mut all = index.ids(None).unwrap();
    all.sort();
    let mut want: Vec<(String, u32)> = points.iter().map(|p| (p.id.clone(), p.version)).collect();
    want.sort();
    assert_eq!(all, want);
    let org_b = index.ids(Some("org_b")).unwrap();
    assert_eq!(org_b.len(), 20);
    assert!(org_b.iter().all(|(id, _)| id.starts_with("scr_org_b")));
    assert!(org_b.contains(&(points[1].id.clone(), 7)));
}

pub fn rejects_bad_input(index: &dyn VectorIndex) {
    let mut p = point("scr_short", "org_a", "zh", "greeting", &[]);
    p.vector.truncate(100);
    match index.upsert(&[p]) {
        Err(Error::DimensionMismatch { expected, got, .. }) => {
            assert_eq!((expected, got), (DIM, 100))
        }
        other => panic!("expected DimensionMismatch, got {other:?}"),
    }
    let err = index
        .search(&[0.5; 10], &VectorFilter::org("org_a"), 3)
        .unwrap_err();
    assert!(
        matches!(err, Error::DimensionMismatch { got: 10, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("384"), "{err}");

    let mut nan = point("scr_nan", "org_a", "zh", "greeting", &[]);
    nan.vector[3] = f32::NAN;
    assert!(matches!(
        index.upsert(&[nan]),
        Err(Error::InvalidVector { .. })
    ));
    let no_org = point("scr_no_org", "", "zh", "greeting", &[]);
    assert!(matches!(
        index.upsert(&[no_org]),
        Err(Error::InvalidInput(_))
    ));
    let err = index
        .search(&unit(1), &VectorFilter::org(""), 3)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    // A rejected batch writes nothing, not even its valid points.
    let good = point("scr_good", "org_a", "zh", "greeting", &[]);
    let mut bad = point("scr_bad", "org_a", "zh", "greeting", &[]);
    bad.vector.push(0.0);
    assert!(index.upsert(&[good, bad]).is_err());
    assert_eq!(index.count().unwrap(), 0);
}

pub fn empty_search(index: &dyn VectorIndex) {
    assert_eq!(index.count().unwrap(), 0);
    assert!(
        index
            .search(&unit(3), &VectorFilter::org("org_a"), 5)
            .unwrap()
            .is_empty()
    );
    index.upsert(&[]).unwrap();
    index.flush().unwrap();
    index.upsert(&corpus()).unwrap();
    assert!(
        index
            .search(&unit(3), &VectorFilter::org("org_a"), 0)
            .unwrap()
            .is_empty()
    );
}
