//! `assist-eval retrieval`: quality of script suggestions on the labelled set
//! in `eval/data/retrieval/` — BM25 only, vectors only and hybrid, side by side.
//!
//! Definitions (graded relevance 1–3 per query):
//! - recall@k: share of a query's scripts graded ≥ 2 that appear in the top k,
//!   averaged over queries;
//! - hit@1: the top result is graded 3;
//! - MRR: 1 / rank of the first grade-3 script (0 if not in the top 10);
//! - nDCG@5: gains 2^grade − 1, ideal order from the labels.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use assist_indexer::FusionWeights;
use assist_indexer::bm25::{Bm25Index, SearchFilter};
use assist_indexer::retriever::{Mode, Retriever};
use assist_indexer::vector::{VectorBackend, open_vector_index};
use assist_knowledge_base::io::{Format, parse_scripts};
use assist_knowledge_base::validate::Limits;
use assist_knowledge_base::workflow::restore_approved;
use assist_knowledge_base::{ApprovedScript, Status};
use assist_models::embed::{EmbedKind, Embedder};
use serde::{Deserialize, Serialize};

use crate::report::{Better, Figure, Report};

const ORG: &str = "eval";

#[derive(Debug, Deserialize)]
pub struct Query {
    pub id: String,
    pub text: String,
    pub language: String,
    #[serde(default)]
    pub difficulty: Option<String>,
    pub relevant: HashMap<String, u8>,
}

/// Metrics of one mode over a set of queries.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    pub queries: usize,
    pub hit_at_1: f64,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub mrr: f64,
    pub ndcg_at_5: f64,
}

fn dcg(grades: &[u8]) -> f64 {
    grades
        .iter()
        .enumerate()
        .map(|(i, g)| (2f64.powi(i32::from(*g)) - 1.0) / ((i + 2) as f64).log2())
        .sum()
}

/// Score one ranking against the labels.
pub fn score(ranking: &[String], relevant: &HashMap<String, u8>) -> Metrics {
    let good: Vec<&String> = relevant
        .iter()
        .filter(|(_, g)| **g >= 2)
        .map(|(id, _)| id)
        .collect();
    let recall = |k: usize| {
        if good.is_empty() {
            return 0.0;
        }
        let top: Vec<&String> = ranking.iter().take(k).collect();
        good.iter().filter(|id| top.contains(id)).count() as f64 / good.len() as f64
    };
    let first3 = ranking
        .iter()
        .take(10)
        .position(|id| relevant.get(id) == Some(&3))
        .map(|p| 1.0 / (p + 1) as f64)
        .unwrap_or(0.0);
    let got: Vec<u8> = ranking
        .iter()
        .take(5)
        .map(|id| *relevant.get(id).unwrap_or(&0))
        .collect();
    let mut ideal: Vec<u8> = relevant.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    ideal.truncate(5);
    let idcg = dcg(&ideal);
    Metrics {
        queries: 1,
        hit_at_1: f64::from(u8::from(
            ranking.first().and_then(|id| relevant.get(id)) == Some(&3),
        )),
        recall_at_1: recall(1),
        recall_at_5: recall(5),
        mrr: first3,
        ndcg_at_5: if idcg > 0.0 { dcg(&got) / idcg } else { 0.0 },
    }
}

fn mean(ms: &[Metrics]) -> Metrics {
    let n = ms.len().max(1) as f64;
    Metrics {
        queries: ms.len(),
        hit_at_1: ms.iter().map(|m| m.hit_at_1).sum::<f64>() / n,
        recall_at_1: ms.iter().map(|m| m.recall_at_1).sum::<f64>() / n,
        recall_at_5: ms.iter().map(|m| m.recall_at_5).sum::<f64>() / n,
        mrr: ms.iter().map(|m| m.mrr).sum::<f64>() / n,
        ndcg_at_5: ms.iter().map(|m| m.ndcg_at_5).sum::<f64>() / n,
    }
}

/// Scripts with their dataset ids, and the queries.
pub type Dataset = (Vec<(Option<String>, ApprovedScript)>, Vec<Query>);

/// A named subset of queries (by language and difficulty).
type Slice = (String, Box<dyn Fn(&str, &str) -> bool>);

/// Load the labelled set.
pub fn load(data: &Path) -> anyhow::Result<Dataset> {
    let text = std::fs::read_to_string(data.join("scripts.jsonl"))
        .with_context(|| format!("cannot read {}/scripts.jsonl", data.display()))?;
    let parsed = parse_scripts(&text, Format::Jsonl, &Limits::default());
    anyhow::ensure!(
        parsed.is_clean(),
        "scripts.jsonl has invalid records: {:?}",
        parsed.errors
    );
    let scripts = parsed
        .records
        .into_iter()
        .map(|r| {
            let id = r.id.clone().unwrap_or_else(|| format!("rec{}", r.record));
            let s =
                restore_approved(&id, ORG, 1, Status::Approved, r.content).context("approved")?;
            Ok((r.id, s))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let queries = std::fs::read_to_string(data.join("queries.jsonl"))
        .with_context(|| format!("cannot read {}/queries.jsonl", data.display()))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Query>(l).context("bad query line"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((scripts, queries))
}

/// Run the evaluation and write the report.
pub fn run(
    model_dir: PathBuf,
    data: &Path,
    out: &Path,
    weights: FusionWeights,
) -> anyhow::Result<Report> {
    let (scripts, queries) = load(data)?;
    let scripts: Vec<ApprovedScript> = scripts.into_iter().map(|(_, s)| s).collect();
    let store = assist_models::store::ModelStore::new(
        model_dir,
        assist_models::store::StoreOptions::default(),
    )?;
    let dir = store.ready_path("embedder")?;
    let mut embedder = Embedder::load(&dir)?;
    let started = Instant::now();
    let passages: Vec<String> = scripts
        .iter()
        .map(|s| format!("{}\n{}", s.title(), s.body()))
        .collect();
    let mut vectors = Vec::with_capacity(passages.len());
    for chunk in passages.chunks(32) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        vectors.extend(embedder.embed(&refs, EmbedKind::Passage)?);
    }
    let embed_secs = started.elapsed().as_secs_f64();
    let tmp = std::env::temp_dir().join(format!("assist-eval-retrieval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let vindex = open_vector_index(
        VectorBackend::Edge {
            path: tmp.join("vectors"),
        },
        embedder.dim(),
    )?;
    let retriever = Retriever::new(Bm25Index::in_memory()?, vindex, weights);
    retriever.upsert(&scripts, &vectors)?;
    retriever.vectors().flush()?;

    let filter = SearchFilter {
        org_id: ORG.into(),
        ..SearchFilter::default()
    };
    let modes = [Mode::Bm25, Mode::Vector, Mode::Hybrid];
    let mut per_mode: HashMap<Mode, Vec<(String, String, Metrics)>> = HashMap::new();
    for q in &queries {
        let qv = embedder
            .embed(&[q.text.as_str()], EmbedKind::Query)?
            .remove(0);
        for mode in modes {
            let hits = retriever.search(mode, &q.text, Some(&qv), &filter, 10)?;
            let ranking: Vec<String> = hits.into_iter().map(|h| h.id).collect();
            per_mode.entry(mode).or_default().push((
                q.language.clone(),
                q.difficulty.clone().unwrap_or_else(|| "all".into()),
                score(&ranking, &q.relevant),
            ));
        }
    }
    // Close the shard before its directory goes.
    drop(retriever);
    let _ = std::fs::remove_dir_all(&tmp);
    let overall = |mode: Mode, pick: &dyn Fn(&str, &str) -> bool| {
        let ms: Vec<Metrics> = per_mode[&mode]
            .iter()
            .filter(|(l, d, _)| pick(l, d))
            .map(|(_, _, m)| m.clone())
            .collect();
        mean(&ms)
    };
    let mut r = Report::new(
        "retrieval",
        format!(
            "Script suggestion quality on eval/data/retrieval ({} scripts, {} customer utterances, graded relevance). \
             Hybrid = weighted RRF (bm25 {}, vector {}, k {}). Embedder multilingual-e5-small (E5S1, candle).",
            scripts.len(),
            queries.len(),
            weights.bm25,
            weights.vector,
            weights.k
        ),
    );
    let all = |_: &str, _: &str| true;
    let (b, v, h) = (
        overall(Mode::Bm25, &all),
        overall(Mode::Vector, &all),
        overall(Mode::Hybrid, &all),
    );
    for (name, get) in [
        (
            "recall@1",
            (|m: &Metrics| m.recall_at_1) as fn(&Metrics) -> f64,
        ),
        ("recall@5", |m: &Metrics| m.recall_at_5),
        ("hit@1 (grade 3)", |m: &Metrics| m.hit_at_1),
        ("MRR", |m: &Metrics| m.mrr),
        ("nDCG@5", |m: &Metrics| m.ndcg_at_5),
    ] {
        r.push(
            Figure::new(format!("hybrid {name}"), "", get(&h), Better::Higher)
                .peer("bm25 only", get(&b)),
        );
        r.push(
            Figure::new(format!("hybrid {name}"), "", get(&h), Better::Higher)
                .peer("vector only", get(&v)),
        );
    }
    let mut lines = vec![
        "| slice | n | bm25 recall@5 | vector recall@5 | hybrid recall@5 | bm25 MRR | vector MRR | hybrid MRR |".to_string(),
        "|---|---:|---:|---:|---:|---:|---:|---:|".to_string(),
    ];
    let mut slices: Vec<Slice> = vec![("all".into(), Box::new(|_: &str, _: &str| true))];
    for lang in ["zh", "en", "mixed"] {
        slices.push((
            format!("language {lang}"),
            Box::new(move |l: &str, _: &str| l == lang),
        ));
    }
    for diff in ["easy", "paraphrase", "keyword"] {
        slices.push((
            format!("difficulty {diff}"),
            Box::new(move |_: &str, d: &str| d == diff),
        ));
    }
    for (name, pick) in &slices {
        let (b, v, h) = (
            overall(Mode::Bm25, pick.as_ref()),
            overall(Mode::Vector, pick.as_ref()),
            overall(Mode::Hybrid, pick.as_ref()),
        );
        lines.push(format!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            h.queries, b.recall_at_5, v.recall_at_5, h.recall_at_5, b.mrr, v.mrr, h.mrr
        ));
    }
    r.note(format!(
        "passage embedding of {} scripts took {:.1} s",
        scripts.len(),
        embed_secs
    ));
    r.note(format!("per slice:\n\n{}", lines.join("\n")));
    r.finish(out)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_follow_their_definitions() {
        let rel: HashMap<String, u8> = [
            ("a".to_string(), 3),
            ("b".to_string(), 2),
            ("c".to_string(), 1),
        ]
        .into();
        let perfect = score(&["a".into(), "b".into(), "c".into()], &rel);
        assert_eq!(perfect.hit_at_1, 1.0);
        assert_eq!(perfect.recall_at_5, 1.0);
        assert!((perfect.ndcg_at_5 - 1.0).abs() < 1e-9);
        let late = score(&["x".into(), "y".into(), "a".into()], &rel);
        assert_eq!(late.hit_at_1, 0.0);
        assert!((late.mrr - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(late.recall_at_1, 0.0);
        assert_eq!(late.recall_at_5, 0.5);
        let none = score(&[], &rel);
        assert_eq!(none.mrr, 0.0);
    }
}
