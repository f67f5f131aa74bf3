//! Embedder speed, printed (never asserted). Ignored by default; run with
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo test -p assist-models --release --test embed_bench -- --ignored --nocapture
//! ```
//!
//! Prints per-query latency (p50/p95 over 200 short Chinese and English
//! utterances, batch 1) and passage throughput at batch 32, for the default
//! compute path or those listed in `EMBED_BENCH_COMPUTE` (`f32,q4_0`).

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
    if dir.join("ready.json").is_file() {
        Some(dir)
    } else {
        skip(
            Kind::Model,
            format!("multilingual-e5-small is not ready in {}", dir.display()),
        );
        None
    }
}

/// 200 short utterances, half Chinese, half English, as heard on sales calls.
fn utterances() -> Vec<String> {
    let zh_subjects = [
        "这个价格",
        "你们的套餐",
        "这款手机",
        "年费",
        "物流",
        "售后",
        "合同",
        "保单",
        "优惠活动",
        "分期付款",
    ];
    let zh_predicates = [
        "太贵了，能便宜点吗",
        "我还要再考虑一下",
        "什么时候能送到",
        "有没有别的选择",
        "跟别家比怎么样",
        "可以先试用吗",
        "我需要跟老板商量",
        "退款要多久",
        "能不能开发票",
        "有没有隐藏费用",
    ];
    let en_subjects = [
        "The price",
        "Your plan",
        "This phone",
        "The annual fee",
        "Shipping",
        "Support",
        "The contract",
        "The policy",
        "The promotion",
        "Financing",
    ];
    let en_predicates = [
        "is too expensive, can you do better?",
        "needs more thought on my side.",
        "when will it arrive?",
        "do you have other options?",
        "how does it compare to your competitor?",
        "can I try it first?",
        "I need to check with my boss.",
        "how long does a refund take?",
        "can you send an invoice?",
        "are there any hidden fees?",
    ];
    let mut out = Vec::new();
    for s in zh_subjects {
        for p in zh_predicates {
            out.push(format!("{s}{p}"));
        }
    }
    for s in en_subjects {
        for p in en_predicates {
            out.push(format!("{s} {p}"));
        }
    }
    out
}

fn passages() -> Vec<String> {
    utterances()
        .iter()
        .enumerate()
        .map(|(i, u)| {
            if i % 2 == 0 {
                format!("{u}。您好，关于这个问题，我们可以为您申请专属优惠，并且今天下单还赠送一年延保服务。")
            } else {
                format!("{u} I understand. Let me explain how our plan works and what discount I can offer today.")
            }
        })
        .collect()
}

/// CPU seconds used by this process so far (user + system), on Linux.
/// Unlike wall time it barely moves when other processes share the cores.
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    let idx = ((sorted_ms.len() as f64 - 1.0) * p).round() as usize;
    sorted_ms[idx]
}

fn bench(dir: &Path, compute: Compute) {
    let t = Instant::now();
    let mut m = Embedder::load_with(dir, compute).unwrap();
    println!(
        "{compute:?}: loaded in {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let queries = utterances();
    for q in queries.iter().take(10) {
        m.embed(&[q.as_str()], EmbedKind::Query).unwrap(); // warm-up
    }
    let mut ms = Vec::new();
    let mut tokens = 0;
    let cpu0 = cpu_secs();
    for q in &queries {
        tokens += m.tokenize(&[q.as_str()], EmbedKind::Query).unwrap()[0].len();
        let t = Instant::now();
        m.embed(&[q.as_str()], EmbedKind::Query).unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let cpu_ms = cpu0
        .zip(cpu_secs())
        .map(|(a, b)| (b - a) * 1e3 / queries.len() as f64);
    ms.sort_by(f64::total_cmp);
    println!(
        "{compute:?}: query latency, batch 1, {} utterances ({:.1} tokens avg): p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms; CPU {} ms/query",
        queries.len(),
        tokens as f64 / queries.len() as f64,
        percentile(&ms, 0.5),
        percentile(&ms, 0.95),
        ms[ms.len() - 1],
        cpu_ms.map_or("?".into(), |c| format!("{c:.1}"))
    );
    let docs = passages();
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let tokens: usize = m
        .tokenize(&refs, EmbedKind::Passage)
        .unwrap()
        .iter()
        .map(Vec::len)
        .sum();
    let t = Instant::now();
    let cpu0 = cpu_secs();
    for chunk in refs.chunks(32) {
        m.embed(chunk, EmbedKind::Passage).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu0.zip(cpu_secs()).map(|(a, b)| b - a);
    println!(
        "{compute:?}: passages, batch 32, {} texts ({:.1} tokens avg): {:.1} texts/s; {} texts per CPU second",
        refs.len(),
        tokens as f64 / refs.len() as f64,
        refs.len() as f64 / secs,
        cpu.map_or("?".into(), |c| format!("{:.1}", refs.len() as f64 / c))
    );
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn embed_speed() {
    let Some(dir) = e5_dir() else { return };
    let which = std::env::var("EMBED_BENCH_COMPUTE").unwrap_or_else(|_| "default".into());
    for name in which.split(',') {
        let compute = match name.trim() {
            "default" => Compute::default(),
            "f32" => Compute::F32,
            "q4_0" => Compute::Quantized,
            other => panic!("EMBED_BENCH_COMPUTE: unknown `{other}` (default, f32, q4_0)"),
        };
        bench(&dir, compute);
    }
}
