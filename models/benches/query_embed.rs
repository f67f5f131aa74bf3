//! Query-embedding latency of multilingual-e5-small, batch 1, on the 387 customer utterances of
//! `eval/data/retrieval/queries.jsonl` (what `assist-eval retrieval-bench` embeds per query).
//!
//! ```sh
//! cargo bench -p assist-models --bench query_embed
//! EMBED_BENCH_COMPUTE=f32,q4_0 EMBED_BENCH_ROUNDS=3 cargo bench -p assist-models --bench query_embed
//! EMBED_BENCH_COMPUTE=f32:all,f16:all,f32,f16 cargo bench -p assist-models --bench query_embed
//! ```
//!
//! A path is `default`, `sgemm`, `f32`, `f16` or `q4_0`, run as the embedder runs it (queries on its
//! one-thread pool), or with `:all` to run queries on candle's default threads
//! ([`Embedder::one_thread_up_to`]`(0)`, what the embedder did before).
//!
//! Prints, per path, p50 / p95 / p99 of the whole `embed` call, the tokenizer's share, CPU
//! milliseconds per query (and how much of it ran on threads other than the caller and the
//! one-thread pool), CPU time over wall time (1.0: one thread busy); the paths are
//! measured interleaved (query by query) so a shared machine's load hits them alike, and the
//! last line is the ratio of the first two. Skips (and says so) when the model is not in
//! `$ASSIST_MODEL_DIR` or `~/.cache/assist/models`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use assist_models::embed::{Compute, EmbedKind, Embedder};
use assist_testkit::{Kind, skip};

fn e5_dir() -> Option<PathBuf> {
    let root = std::env::var_os("ASSIST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cache/assist/models")
        });
    let dir = root.join("multilingual-e5-small");
    dir.join("ready.json").is_file().then_some(dir)
}

/// The `text` of every line of `eval/data/retrieval/<file>`.
fn texts(file: &str, field: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../eval/data/retrieval")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v[field].as_str().expect("a text field").to_string()
        })
        .collect()
}

/// User + system CPU seconds in a `/proc/.../stat` line.
fn stat_secs(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU seconds used by this process so far, and the part of it used by threads other than
/// the calling (main) thread and the embedder's one-thread pool (`embed-1t`): rayon's global
/// pool and candle's barrier pool. Linux only.
fn cpu_secs() -> Option<(f64, f64)> {
    let total = stat_secs(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let main = std::process::id().to_string();
    let mut other = 0.0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if task.file_name().to_str() == Some(main.as_str()) || comm.trim() == "embed-1t" {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        other += stat_secs(&stat).unwrap_or(0.0);
    }
    Some((total, other))
}

fn at(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

struct Variant {
    name: String,
    model: Embedder,
    ms: Vec<f64>,
    tokenize_ms: Vec<f64>,
    cpu_s: f64,
    /// CPU seconds on threads other than the caller and the one-thread pool.
    other_cpu_s: f64,
}

fn main() {
    let Some(dir) = e5_dir() else {
        skip(
            Kind::Model,
            "multilingual-e5-small is not ready (run `assist models fetch --only embedder`)",
        );
        return;
    };
    let which = std::env::var("EMBED_BENCH_COMPUTE").unwrap_or_else(|_| "default".into());
    let rounds: usize = std::env::var("EMBED_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    let mut paths: Vec<Variant> = which
        .split(',')
        .map(|spec| {
            let spec = spec.trim();
            let (name, all_threads) = match spec.strip_suffix(":all") {
                Some(name) => (name, true),
                None => (spec, false),
            };
            let compute = match name {
                "default" => Compute::default(),
                "f32" => Compute::F32,
                "f16" => Compute::F16,
                "q4_0" => Compute::Quantized,
                "sgemm" => Compute::Sgemm,
                other => panic!(
                    "EMBED_BENCH_COMPUTE: unknown `{other}` (default, f32, f16, q4_0, sgemm)"
                ),
            };
            let model = Embedder::load_with(&dir, compute).expect("load e5");
            Variant {
                name: format!("{compute:?}/{}", if all_threads { "all" } else { "1t" }),
                model: if all_threads {
                    model.one_thread_up_to(0)
                } else {
                    model
                },
                ms: Vec::new(),
                tokenize_ms: Vec::new(),
                cpu_s: 0.0,
                other_cpu_s: 0.0,
            }
        })
        .collect();
    let queries = texts("queries.jsonl", "text");
    for p in &mut paths {
        for q in queries.iter().take(20) {
            p.model.embed(&[q.as_str()], EmbedKind::Query).unwrap();
        }
    }
    let tokens: usize = paths[0]
        .model
        .tokenize(
            &queries.iter().map(String::as_str).collect::<Vec<_>>(),
            EmbedKind::Query,
        )
        .unwrap()
        .iter()
        .map(Vec::len)
        .sum();
    for _ in 0..rounds {
        for q in &queries {
            for p in &mut paths {
                let t = Instant::now();
                p.model.tokenize(&[q.as_str()], EmbedKind::Query).unwrap();
                p.tokenize_ms.push(t.elapsed().as_secs_f64() * 1e3);
                let cpu = cpu_secs();
                let t = Instant::now();
                std::hint::black_box(p.model.embed(&[q.as_str()], EmbedKind::Query).unwrap());
                p.ms.push(t.elapsed().as_secs_f64() * 1e3);
                if let (Some(a), Some(b)) = (cpu, cpu_secs()) {
                    p.cpu_s += b.0 - a.0;
                    p.other_cpu_s += b.1 - a.1;
                }
            }
        }
    }
    println!(
        "{} queries × {rounds} rounds, {:.1} tokens avg (prefix and specials included), threads {}",
        queries.len(),
        tokens as f64 / queries.len() as f64,
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into()),
    );
    let mut p50s = Vec::new();
    for p in &mut paths {
        p.ms.sort_by(f64::total_cmp);
        p.tokenize_ms.sort_by(f64::total_cmp);
        let n = p.ms.len() as f64;
        println!(
            "{}: query embedding p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms (tokenizer p50 {:.3} ms); CPU {:.1} ms/query ({:.1} on other threads), CPU/wall {:.2}",
            p.name,
            at(&p.ms, 0.5),
            at(&p.ms, 0.95),
            at(&p.ms, 0.99),
            at(&p.tokenize_ms, 0.5),
            p.cpu_s * 1e3 / n,
            p.other_cpu_s * 1e3 / n,
            p.cpu_s * 1e3 / p.ms.iter().sum::<f64>(),
        );
        p50s.push((p.name.clone(), at(&p.ms, 0.5), at(&p.ms, 0.95)));
    }
    // Passages (scripts) in batches of 32, as indexing embeds them: throughput per path.
    let scripts: Vec<String> = texts("scripts.jsonl", "body")
        .into_iter()
        .take(96)
        .collect();
    let refs: Vec<&str> = scripts.iter().map(String::as_str).collect();
    for p in &mut paths {
        let t = Instant::now();
        for chunk in refs.chunks(32) {
            std::hint::black_box(p.model.embed(chunk, EmbedKind::Passage).unwrap());
        }
        println!(
            "{}: passages, batch 32: {:.1} scripts/s",
            p.name,
            refs.len() as f64 / t.elapsed().as_secs_f64()
        );
    }
    if let [(a, a50, a95), (b, b50, b95), ..] = p50s.as_slice() {
        println!(
            "ratio {a}/{b}: p50 {:.2}×, p95 {:.2}×",
            a50 / b50,
            a95 / b95
        );
    }
}
