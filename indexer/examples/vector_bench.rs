//! Embedded vector index benchmark: build time, filtered search latency, recall and memory.
//!
//! ```sh
//! cargo run --release -p assist-indexer --example vector_bench -- 10000
//! cargo run --release -p assist-indexer --example vector_bench -- 100000 --queries 2000
//! # tuning: --m 16 --ef-construct 100 --ef 64 --dir /tmp/somewhere (kept afterwards), then
//! # --dir /tmp/somewhere --reuse --ef 128 to try search settings without rebuilding
//! ```
//!
//! Data: N unit vectors of dim 384 in N/50 clusters (nearer to real sentence embeddings than
//! uniform noise), spread over 4 organisations (50/25/15/10 %), zh/en (70/30 %), 12 scenarios
//! and 1–2 of 30 products. Queries are perturbed copies of stored vectors; recall@10 is against
//! an exact scan of the same filtered set. Single-threaded searches, one after another.

use std::time::{Duration, Instant};

use assist_indexer::vector::{
    EdgeOptions, EdgeVectorIndex, VectorFilter, VectorIndex, VectorPoint,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 384;

/// Builds a query's filter from the stored point the query was made from.
type MakeFilter = fn(&VectorPoint) -> VectorFilter;
const ORGS: [(&str, f64); 4] = [
    ("org_a", 0.5),
    ("org_b", 0.25),
    ("org_c", 0.15),
    ("org_d", 0.1),
];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut n = 10_000usize;
    let mut queries = 1000usize;
    let mut dir: Option<std::path::PathBuf> = None;
    let mut reuse = false;
    let mut options = EdgeOptions {
        durable_writes: false,
        ..EdgeOptions::default()
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--queries" => queries = value()?.parse()?,
            "--m" => options.hnsw_m = value()?.parse()?,
            "--ef-construct" => options.hnsw_ef_construct = value()?.parse()?,
            "--ef" => options.search_ef = value()?.parse()?,
            "--full-scan-kb" => options.full_scan_threshold_kb = value()?.parse()?,
            "--dir" => dir = Some(value()?.into()),
            // Search an index a previous run left in --dir (same n, same seed) without rebuilding.
            "--reuse" => reuse = true,
            other => n = other.parse()?,
        }
    }
    let tmp = tempfile::tempdir()?;
    let path = dir.unwrap_or_else(|| tmp.path().join("vectors"));
    println!("vector_bench: n={n} dim={DIM} queries={queries} options={options:?}");

    let mut rng = StdRng::seed_from_u64(42);
    let points = make_points(&mut rng, n);
    let rss_data = rss_kib();

    let index = EdgeVectorIndex::open_with(&path, DIM, options.clone())?;
    let already = reuse && index.count()? == n;
    let t = Instant::now();
    for chunk in points.chunks(1000).filter(|_| !already) {
        index.upsert(chunk)?;
    }
    let upsert = t.elapsed();
    let t = Instant::now();
    index.flush()?; // persists and builds HNSW
    let flush = t.elapsed();
    println!(
        "build: upsert {:.2}s + flush/optimize {:.2}s = {:.2}s ({:.0} points/s); indexed {}/{}",
        upsert.as_secs_f64(),
        flush.as_secs_f64(),
        (upsert + flush).as_secs_f64(),
        n as f64 / (upsert + flush).as_secs_f64(),
        index.indexed_count(),
        index.count()?
    );

    let filters: [(&str, MakeFilter); 3] = [
        ("org+language", |p| {
            VectorFilter::org(&p.org_id).language(&p.language)
        }),
        ("org+language+scenario", |p| {
            VectorFilter::org(&p.org_id)
                .language(&p.language)
                .scenario(&p.scenario)
        }),
        ("org+product", |p| {
            VectorFilter::org(&p.org_id).product(&p.products[0])
        }),
    ];
    for (name, make_filter) in filters {
        run_queries(&index, &points, &mut rng, queries, name, make_filter)?;
    }
    println!(
        "memory: RSS {} MiB (of which test data ~{} MiB), peak {} MiB",
        rss_kib() / 1024,
        rss_data / 1024,
        peak_kib() / 1024
    );

    drop(index);
    let t = Instant::now();
    let index = EdgeVectorIndex::open_with(&path, DIM, options)?;
    let reopen = t.elapsed();
    println!(
        "reopen: {:.0} ms, count {}, disk {} MiB (wal {} MiB)",
        reopen.as_secs_f64() * 1e3,
        index.count()?,
        du(&path) / (1 << 20),
        du(&path.join("wal")) / (1 << 20)
    );
    run_queries(
        &index,
        &points,
        &mut rng,
        queries.min(500),
        "after reopen, org+language",
        |p| VectorFilter::org(&p.org_id).language(&p.language),
    )?;
    Ok(())
}

fn make_points(rng: &mut StdRng, n: usize) -> Vec<VectorPoint> {
    let centres: Vec<Vec<f32>> = (0..(n / 50).max(1)).map(|_| random_unit(rng)).collect();
    (0..n)
        .map(|i| {
            let centre = &centres[rng.random_range(0..centres.len())];
            let noise = random_unit(rng);
            let mut vector: Vec<f32> = centre
                .iter()
                .zip(&noise)
                .map(|(c, e)| c + 0.6 * e)
                .collect();
            normalise(&mut vector);
            let r: f64 = rng.random();
            let mut acc = 0.0;
            let org = ORGS
                .iter()
                .find(|(_, w)| {
                    acc += w;
                    r < acc
                })
                .map_or("org_d", |(o, _)| o);
            let mut products = vec![format!("prod_{:02}", rng.random_range(0..30))];
            if rng.random_bool(0.3) {
                products.push(format!("prod_{:02}", rng.random_range(0..30)));
            }
            VectorPoint {
                id: format!("scr_{i:07}"),
                vector,
                org_id: org.to_string(),
                language: if rng.random_bool(0.7) { "zh" } else { "en" }.to_string(),
                scenario: format!("scenario_{:02}", rng.random_range(0..12)),
                products,
                version: 1,
            }
        })
        .collect()
}

fn run_queries(
    index: &EdgeVectorIndex,
    points: &[VectorPoint],
    rng: &mut StdRng,
    queries: usize,
    name: &str,
    make_filter: MakeFilter,
) -> anyhow::Result<()> {
    let k = 10;
    let mut times = Vec::with_capacity(queries);
    let mut found = 0usize;
    let mut wanted = 0usize;
    let mut matching = 0usize;
    for _ in 0..queries {
        let target = &points[rng.random_range(0..points.len())];
        let noise = random_unit(rng);
        let mut query: Vec<f32> = target
            .vector
            .iter()
            .zip(&noise)
            .map(|(a, b)| a + 0.3 * b)
            .collect();
        normalise(&mut query);
        let filter = make_filter(target);
        let t = Instant::now();
        let hits = index.search(&query, &filter, k)?;
        times.push(t.elapsed());

        let mut exact: Vec<(f32, &str)> = points
            .iter()
            .filter(|p| matches(p, &filter))
            .map(|p| (dot(&p.vector, &query), p.id.as_str()))
            .collect();
        matching += exact.len();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        exact.truncate(k);
        wanted += exact.len();
        found += exact
            .iter()
            .filter(|(_, id)| hits.iter().any(|h| h.id == *id))
            .count();
    }
    times.sort();
    let pct =
        |p: f64| ms(times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1]);
    println!(
        "search [{name}] k={k}: p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  recall@10 {:.3}  (avg {} matching points)",
        pct(0.50),
        pct(0.95),
        pct(0.99),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
        found as f64 / wanted.max(1) as f64,
        matching / queries.max(1)
    );
    Ok(())
}

fn matches(p: &VectorPoint, f: &VectorFilter) -> bool {
    p.org_id == f.org_id
        && f.language.as_ref().is_none_or(|l| &p.language == l)
        && f.scenario.as_ref().is_none_or(|s| &p.scenario == s)
        && f.product.as_ref().is_none_or(|x| p.products.contains(x))
}

fn random_unit(rng: &mut StdRng) -> Vec<f32> {
    // Sum of uniforms: close enough to Gaussian for direction sampling.
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| (0..4).map(|_| rng.random::<f32>() - 0.5).sum())
        .collect();
    normalise(&mut v);
    v
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

fn peak_kib() -> u64 {
    status_kib("VmHWM:")
}

fn du(path: &std::path::Path) -> u64 {
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
