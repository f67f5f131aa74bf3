//! `assist-eval retrieval-bench`: speed of script search at 10k and 100k scripts.
//!
//! What is measured, per corpus size:
//! - **build**: BM25 (Tantivy + jieba, on disk) and vectors (Qdrant Edge, on disk, HNSW built at
//!   the final flush), wall time; passage embedding is measured on a sample and projected, since
//!   embedding 100k passages on 2 cores takes most of an hour and says nothing new about the index;
//! - **query latency**, one query after another, *including the query embedding*
//!   (multilingual-e5-small on candle), for BM25 only, vectors only and hybrid, run the way
//!   assist-server runs them: in hybrid, BM25 on a second thread while the query is embedded,
//!   then the vector search and fusion; the query embedding's own p50/p95 is reported beside;
//! - **memory**: resident set growth while building and the index size on disk.
//!
//! The peer, measured in the same run, is the same hybrid search with an exact vector scan in
//! place of the HNSW graph (what a brute-force implementation would cost); HNSW recall@10
//! against that exact scan is reported beside it.
//!
//! Corpus: the 333 labelled scripts of `eval/data/retrieval` multiplied into synthetic variants —
//! each variant takes a base script, swaps in one of 40 product names, appends a sentence of
//! another script of the same language, and spreads over 4 organisations (50/25/15/10 %). Its
//! vector is the base script's real passage embedding mixed with the donor's and a little noise,
//! so neighbourhoods look like real sentence embeddings. Queries are the 387 real customer
//! utterances, each embedded at query time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use assist_indexer::bm25::{Bm25Index, SearchFilter};
use assist_indexer::retriever::{Mode, Retriever};
use assist_indexer::vector::{EdgeOptions, EdgeVectorIndex};
use assist_indexer::{FusedHit, FusionWeights, fuse};
use assist_knowledge_base::workflow::restore_approved;
use assist_knowledge_base::{ScriptContent, Status};
use assist_models::embed::{EmbedKind, Embedder};

use crate::report::{Better, Figure, Report};

const ORGS: [(&str, f64); 4] = [
    ("org_a", 0.5),
    ("org_b", 0.25),
    ("org_c", 0.15),
    ("org_d", 0.1),
];
const K: usize = 5;
/// The service's default fusion (config `index.fusion_vector_weight` = 1.5).
const SERVICE_WEIGHTS: FusionWeights = FusionWeights {
    bm25: 1.0,
    vector: 1.5,
    k: 60.0,
};

/// Deterministic generator (SplitMix64), so every run builds the same corpus.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f32 {
        let u1 = self.unit().max(1e-12);
        let u2 = self.unit();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

fn org_for(rng: &mut Rng) -> &'static str {
    let x = rng.unit();
    let mut acc = 0.0;
    for (org, share) in ORGS {
        acc += share;
        if x < acc {
            return org;
        }
    }
    ORGS[0].0
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// Latency percentiles of a set of samples, milliseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Percentiles {
    p50: f64,
    p95: f64,
    p99: f64,
}

fn percentiles(mut ms: Vec<f64>) -> Percentiles {
    if ms.is_empty() {
        return Percentiles::default();
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
    }
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn du(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Exact filtered top-k by cosine (vectors are unit length), the peer's vector side.
fn exact_top(
    vectors: &[Vec<f32>],
    ids: &[String],
    orgs: &[&str],
    org: &str,
    q: &[f32],
    n: usize,
) -> Vec<String> {
    let mut scored: Vec<(f32, usize)> = vectors
        .iter()
        .enumerate()
        .filter(|(i, _)| orgs[*i] == org)
        .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), i))
        .collect();
    let n = n.min(scored.len());
    if n == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(n - 1, |a, b| b.0.total_cmp(&a.0));
    scored.truncate(n);
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().map(|(_, i)| ids[i].clone()).collect()
}

/// One search as `SearchService::search` in assist-server runs it: for hybrid, BM25 on another
/// thread while this one embeds the query, then the vector search, then fusion. Returns the hits
/// and, when the query was embedded, the milliseconds the embedding took.
fn search_as_served(
    retriever: &Retriever,
    embedder: &mut Embedder,
    mode: Mode,
    text: &str,
    filter: &SearchFilter,
    k: usize,
) -> anyhow::Result<(Vec<FusedHit>, Option<f64>)> {
    let n = retriever.candidates_for(k);
    let mut embed_ms = None;
    let mut embed_and_search = |embedder: &mut Embedder| -> anyhow::Result<Vec<String>> {
        let t = Instant::now();
        let qv = embedder.embed(&[text], EmbedKind::Query)?.remove(0);
        embed_ms = Some(t.elapsed().as_secs_f64() * 1e3);
        Ok(retriever.semantic(&qv, filter, n)?)
    };
    let (lexical, semantic) = match mode {
        Mode::Bm25 => (retriever.lexical(text, filter, n)?, Vec::new()),
        Mode::Vector => (Vec::new(), embed_and_search(embedder)?),
        Mode::Hybrid => std::thread::scope(|s| -> anyhow::Result<_> {
            let lexical = s.spawn(|| retriever.lexical(text, filter, n));
            let semantic = embed_and_search(embedder)?;
            let lexical = lexical
                .join()
                .map_err(|_| anyhow::anyhow!("the BM25 search panicked"))??;
            Ok((lexical, semantic))
        })?,
    };
    Ok((retriever.fuse(mode, &lexical, &semantic, k), embed_ms))
}

/// Run the bench at each size and write one report.
pub fn run(
    model_dir: PathBuf,
    data: &Path,
    sizes: &[usize],
    queries_per_size: usize,
    query_all_threads: bool,
    out: &Path,
) -> anyhow::Result<Report> {
    let (base, queries) = crate::retrieval::load(data)?;
    anyhow::ensure!(!base.is_empty(), "no scripts in {}", data.display());
    let store = assist_models::store::ModelStore::new(
        model_dir,
        assist_models::store::StoreOptions::default(),
    )?;
    let dir = store.ready_path("embedder")?;
    let mut embedder = Embedder::load(&dir)?;
    if query_all_threads {
        embedder = embedder.one_thread_up_to(0);
    }
    let dim = embedder.dim();

    // Real passage embeddings of the base scripts; their throughput projects the build cost.
    eprintln!("embedding {} base scripts ...", base.len());
    let started = Instant::now();
    let passages: Vec<String> = base
        .iter()
        .map(|(_, s)| format!("{}\n{}", s.title(), s.body()))
        .collect();
    let mut base_vecs = Vec::with_capacity(passages.len());
    for chunk in passages.chunks(32) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        base_vecs.extend(embedder.embed(&refs, EmbedKind::Passage)?);
    }
    let passages_per_s = base.len() as f64 / started.elapsed().as_secs_f64();

    // Query embeddings are timed inside the search loop; warm the model first.
    embedder.embed(&["warm up"], EmbedKind::Query)?;

    let mut report = Report::new(
        "retrieval-bench",
        format!(
            "Hybrid script search speed (BM25 Tantivy+jieba on disk, Qdrant Edge HNSW on disk, \
             weighted RRF) at {sizes:?} synthetic scripts from the {} labelled ones; query latency \
             includes the e5-small query embedding; queries one after another, each run as the \
             server runs it (hybrid: BM25 on a second thread while the query is embedded). Peer: \
             the same search with an exact vector scan instead of HNSW.",
            base.len()
        ),
    );
    report.note(format!(
        "passage embedding throughput {passages_per_s:.1} scripts/s (measured on the {} base \
         scripts); projected embedding time is size / throughput",
        base.len()
    ));
    let mut table = vec![
        "| scripts | build s (index) | + embedding s (projected) | RSS growth MiB | disk MiB | bm25 p50/p95/p99 ms | vector p50/p95/p99 ms | hybrid p50/p95/p99 ms | exact-scan hybrid p95 ms | query embedding p50/p95 ms | HNSW recall@10 |".to_string(),
        "|---:|---:|---:|---:|---:|---|---|---|---:|---|---:|".to_string(),
    ];

    for &size in sizes {
        eprintln!("building {size} synthetic scripts ...");
        let mut rng = Rng(0x5EED ^ size as u64);
        let products: Vec<String> = (0..40).map(|i| format!("产品{i:02}")).collect();
        let mut scripts = Vec::with_capacity(size);
        let mut vectors = Vec::with_capacity(size);
        let mut orgs = Vec::with_capacity(size);
        for i in 0..size {
            let b = i % base.len();
            let (_, bs) = &base[b];
            // A donor of the same language lends a sentence and some of its meaning.
            let mut d = rng.below(base.len());
            for _ in 0..8 {
                if base[d].1.language() == bs.language() {
                    break;
                }
                d = rng.below(base.len());
            }
            let (_, ds) = &base[d];
            let donor_sentence = ds
                .body()
                .split(['。', '.', '！', '!', '？', '?'])
                .find(|s| !s.trim().is_empty())
                .unwrap_or("")
                .trim();
            let product = &products[rng.below(products.len())];
            let content = ScriptContent {
                title: format!("{} ({product})", bs.title()),
                body: format!("{} {donor_sentence}", bs.body()),
                scenario: bs.scenario(),
                tags: bs.tags().to_vec(),
                products: vec![product.clone()],
                language: bs.language(),
            };
            let org = org_for(&mut rng);
            let id = format!("syn-{i:06}");
            scripts.push(
                restore_approved(&id, org, 1, Status::Approved, content)
                    .context("synthetic script")?,
            );
            let mut v: Vec<f32> = base_vecs[b]
                .iter()
                .zip(&base_vecs[d])
                .map(|(x, y)| 0.85 * x + 0.15 * y + 0.02 * rng.normal())
                .collect();
            normalise(&mut v);
            vectors.push(v);
            orgs.push(org);
        }
        let ids: Vec<String> = scripts.iter().map(|s| s.id().to_string()).collect();

        let tmp = tempfile_dir(size)?;
        let rss_before = status_kib("VmRSS:");
        let t = Instant::now();
        let vindex = EdgeVectorIndex::open_with(
            tmp.join("vectors"),
            dim,
            EdgeOptions {
                durable_writes: false,
                ..EdgeOptions::default()
            },
        )?;
        let retriever = Retriever::new(
            Bm25Index::open(&tmp.join("bm25"))?,
            Box::new(vindex),
            SERVICE_WEIGHTS,
        );
        for (s, v) in scripts.chunks(5000).zip(vectors.chunks(5000)) {
            retriever.upsert(s, v)?;
        }
        retriever.vectors().flush()?;
        let build_s = t.elapsed().as_secs_f64();
        let rss_growth_mib = status_kib("VmRSS:").saturating_sub(rss_before) as f64 / 1024.0;
        let disk_mib = du(&tmp) as f64 / (1024.0 * 1024.0);

        let mut lat: [Vec<f64>; 4] = Default::default();
        // Query embedding alone, inside the vector and hybrid searches above.
        let mut embed_lat = Vec::new();
        let (mut found, mut possible) = (0usize, 0usize);
        let mut qrng = Rng(7);
        for qi in 0..queries_per_size {
            let q = &queries[qi % queries.len()];
            let org = org_for(&mut qrng);
            let filter = SearchFilter {
                org_id: org.into(),
                ..SearchFilter::default()
            };
            for (slot, mode) in [(0, Mode::Bm25), (1, Mode::Vector), (2, Mode::Hybrid)] {
                let t = Instant::now();
                let (hits, embed_ms) =
                    search_as_served(&retriever, &mut embedder, mode, &q.text, &filter, K)?;
                lat[slot].push(t.elapsed().as_secs_f64() * 1e3);
                if let Some(ms) = embed_ms {
                    embed_lat.push(ms);
                }
                std::hint::black_box(hits);
            }
            // Peer: same hybrid, exact vector scan.
            let t = Instant::now();
            let (lexical, qv) = std::thread::scope(|s| -> anyhow::Result<_> {
                let lexical = s.spawn(|| retriever.lexical(&q.text, &filter, 50));
                let qv = embedder
                    .embed(&[q.text.as_str()], EmbedKind::Query)?
                    .remove(0);
                let lexical = lexical
                    .join()
                    .map_err(|_| anyhow::anyhow!("the BM25 search panicked"))??;
                Ok((lexical, qv))
            })?;
            let exact = exact_top(&vectors, &ids, &orgs, org, &qv, 50);
            let fused = fuse(&lexical, &exact, SERVICE_WEIGHTS, K);
            lat[3].push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(fused);
            // HNSW recall@10 against the exact scan (not timed).
            let approx: Vec<String> = retriever
                .search(Mode::Vector, &q.text, Some(&qv), &filter, 10)?
                .into_iter()
                .map(|h| h.id)
                .collect();
            found += exact
                .iter()
                .take(10)
                .filter(|id| approx.contains(id))
                .count();
            possible += exact.len().min(10);
        }
        drop(retriever);
        let _ = std::fs::remove_dir_all(&tmp);
        let [b, v, h, e] = lat.map(percentiles);
        let qe = percentiles(embed_lat);
        let recall = found as f64 / possible.max(1) as f64;
        let embed_projected = size as f64 / passages_per_s;
        eprintln!(
            "{size}: build {build_s:.1}s, hybrid p50 {:.1} p95 {:.1} p99 {:.1} ms, exact p95 {:.1} ms, query embedding p50 {:.1} p95 {:.1} ms, recall@10 {recall:.3}",
            h.p50, h.p95, h.p99, e.p95, qe.p50, qe.p95
        );
        table.push(format!(
            "| {size} | {build_s:.1} | {embed_projected:.0} | {rss_growth_mib:.0} | {disk_mib:.0} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.1} | {:.1} / {:.1} | {recall:.3} |",
            b.p50, b.p95, b.p99, v.p50, v.p95, v.p99, h.p50, h.p95, h.p99, e.p95, qe.p50, qe.p95
        ));
        report.push(
            Figure::new(format!("hybrid p95 at {size}"), "ms", h.p95, Better::Lower)
                .peer("exact-scan hybrid p95", e.p95),
        );
        report.push(
            Figure::new(format!("hybrid p50 at {size}"), "ms", h.p50, Better::Lower)
                .peer("exact-scan hybrid p50", e.p50),
        );
        report.push(
            Figure::new(format!("hybrid p99 at {size}"), "ms", h.p99, Better::Lower)
                .peer("exact-scan hybrid p99", e.p99),
        );
        report.push(Figure::new(
            format!("HNSW recall@10 at {size}"),
            "",
            recall,
            Better::Higher,
        ));
        report.push(Figure::new(
            format!("index build at {size}"),
            "s",
            build_s,
            Better::Lower,
        ));
        report.push(Figure::new(
            format!("RSS growth at {size}"),
            "MiB",
            rss_growth_mib,
            Better::Lower,
        ));
    }
    report.note(format!("per size:\n\n{}", table.join("\n")));
    report.note(format!(
        "peak RSS of the whole run {:.0} MiB",
        status_kib("VmHWM:") as f64 / 1024.0
    ));
    report.finish(out)?;
    Ok(report)
}

fn tempfile_dir(size: usize) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "assist-eval-retrieval-bench-{}-{size}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let p = percentiles((1..=100).map(f64::from).collect());
        assert_eq!(p.p50, 51.0);
        assert_eq!(p.p95, 95.0);
        assert_eq!(p.p99, 99.0);
    }

    #[test]
    fn exact_scan_filters_by_org_and_orders_by_cosine() {
        let vectors = vec![vec![1.0, 0.0], vec![0.8, 0.6], vec![0.0, 1.0]];
        let ids = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let orgs = vec!["x", "x", "y"];
        let top = exact_top(&vectors, &ids, &orgs, "x", &[0.0, 1.0], 5);
        assert_eq!(top, vec!["b".to_string(), "a".to_string()]);
    }
}
