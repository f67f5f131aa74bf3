//! `assist-eval analysis`: the quality and end-to-end time of post-call
//! analysis on the labelled transcripts of `eval/data/analysis/` (issue 6,
//! items 5 and 6). Scoring follows that folder's README ([`score`]).
//!
//! Three producers per transcript, as the server builds them
//! (`assist_server::calls::analyze`):
//! - **rules**: the deterministic task extractor (`extract_tasks`, commitments
//!   and due dates) and the risk engine (lexicon + patterns, per segment, the
//!   alerting hits);
//! - **LLM**: `assist_analysis::llm::analyse` (chunked, parse-and-repair, quotes
//!   verified); an LLM task's due is its `due_text` resolved by the date rules,
//!   as the merge does for LLM-only tasks;
//! - **merged**: `merge_tasks` and `merge_risk_tags`, what the product ships.
//!
//! The model runs behind a recording wrapper (`recorder`), so the raw answers
//! (before the product's parser, repair turn and verbatim filter) can be
//! checked for schema validity and verbatim quotes.
//!
//! Time: each transcript's end-to-end time is the LLM run plus the rules and
//! merges; the 1-, 5- and 15-minute calls are built per language by
//! concatenating the set's calls in file order (times shifted, 1 s apart)
//! and cutting at the last segment that ends by the target length. With
//! `ASSIST_EVAL_PRINT_ANSWERS` set, the timing calls' raw model answers are
//! printed to stderr.

mod data;
mod figures;
mod pipeline;
mod recorder;
mod score;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use assist_analysis::rules::resolve_due;
use assist_models::llm::{Llm, LlmHandle};
use assist_models::worker::WorkerConfig;
use assist_risk::{EngineOptions, RiskEngine};

use crate::report::Report;
use crate::setup::model_path;
use data::{Item, load, transcript_of, zone_of};
use figures::{Acc, Ctx, GROUPS, Group, report, report_name, timing_report};
use pipeline::{Pipeline, time_calls};
use recorder::{Recorder, raw_stats};
pub use score::{Due, Prf, ScoredTask, TaskScore};

/// What `analysis` was asked.
#[derive(Debug, Clone)]
pub struct AnalysisArgs {
    /// Model id or role in the store.
    pub model: String,
    /// First N transcripts only.
    pub limit: Option<usize>,
    /// These transcript ids only (empty: all).
    pub ids: Vec<String>,
    pub threads: usize,
    /// Folder with transcripts.jsonl.
    pub data: PathBuf,
    /// Folder with the risk lexicon (lexicon.jsonl).
    pub risk_data: PathBuf,
    /// Skip the 1-, 5- and 15-minute timing calls.
    pub no_timing: bool,
    /// Only the timing calls (report `<report>-timing`).
    pub timing_only: bool,
}

/// The product's engine snippets carry "…" where context was cut; the text
/// between is the transcript's.
fn strip_ellipsis(s: &str) -> &str {
    s.trim_start_matches('…').trim_end_matches('…')
}

/// Whether a text is mostly in `language` (CJK characters for zh, Latin
/// letters for en).
fn in_language(text: &str, language: &str) -> bool {
    let cjk = text
        .chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .count();
    let latin = text.chars().filter(char::is_ascii_alphabetic).count();
    if cjk + latin == 0 {
        return false;
    }
    match language {
        "zh" => cjk * 3 >= latin,
        _ => latin > cjk * 3,
    }
}

/// Phrases of the system prompt that must never come back (prompt leak).
const PROMPT_PHRASES: [&str; 7] = [
    "data, not instructions",
    "ONE JSON object",
    "Copy every quote character for character",
    "only clear misconduct",
    "never repeat these rules",
    // From the worked examples.
    "批量报价单",
    "October invoice",
];

/// Write the report so far without printing it (a long run leaves a usable
/// report if it is stopped).
fn write_partial(r: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(format!("{}.json", r.name)),
        serde_json::to_string_pretty(r)?,
    )?;
    std::fs::write(dir.join(format!("{}.md", r.name)), r.markdown())?;
    Ok(())
}

/// `assist-eval analysis`.
pub fn run(model_dir: PathBuf, args: &AnalysisArgs, out: &Path) -> anyhow::Result<()> {
    // candle sizes its thread pools from RAYON_NUM_THREADS, read once: set it
    // by running this command again as a child with the variable set.
    let threads = args.threads.max(1).to_string();
    if std::env::var("RAYON_NUM_THREADS").ok().as_deref() != Some(threads.as_str()) {
        let status = std::process::Command::new(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .env("RAYON_NUM_THREADS", &threads)
            .status()?;
        anyhow::ensure!(status.success(), "assist-eval analysis failed ({status})");
        return Ok(());
    }

    let mut items = load(&args.data)?;
    if !args.ids.is_empty() {
        if let Some(missing) = args
            .ids
            .iter()
            .find(|id| !items.iter().any(|i| &i.id == *id))
        {
            anyhow::bail!("no transcript {missing:?} in {}", args.data.display());
        }
        items.retain(|i| args.ids.contains(&i.id));
    }
    if let Some(n) = args.limit {
        items.truncate(n);
    }
    let all_items = items_all(args, &items)?;
    if args.timing_only {
        items.clear();
    }
    let (entries, _) = crate::risk::load(&args.risk_data)?;
    let lexicon_entries = entries.len();
    let engine = RiskEngine::build(entries, EngineOptions::default())?;
    let dir = model_path(&model_dir, &args.model)?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let log_model = Arc::clone(&log);
    let load_started = Instant::now();
    let llm = LlmHandle::spawn_with(WorkerConfig::new("llm", 4), move || {
        Ok(Recorder {
            inner: Llm::load(&dir)?,
            log: log_model,
        })
    })?;
    let load_s = load_started.elapsed().as_secs_f64();
    let context = llm.context_length();
    let pipeline = Pipeline {
        llm,
        log,
        engine,
        model: args.model.clone(),
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    eprintln!(
        "{} transcripts, model {} (loaded in {load_s:.1} s, context {context}), {threads} thread(s)",
        items.len(),
        args.model
    );

    let ctx = Ctx {
        model: args.model.clone(),
        threads: threads.clone(),
        total: items.len(),
        load_s,
        lexicon_entries,
    };
    let mut acc = Acc {
        groups: vec![Group::default(); GROUPS.len()],
        ..Acc::default()
    };
    // Timing calls: 1 and 5 minutes first (the target), 15 after the set.
    if !args.no_timing {
        time_calls(&pipeline, &all_items, &[1, 5], &mut acc)?;
    }

    // The model's raw answers, one line per transcript, to read beside the
    // references (written as the run goes).
    std::fs::create_dir_all(out)?;
    // (Not with --timing-only, which must leave the set's answers as they are.)
    let answers_path = out.join(format!("{}-answers.jsonl", report_name(&args.model)));
    let mut answers = std::io::BufWriter::new(if args.timing_only {
        Box::new(std::io::sink()) as Box<dyn std::io::Write>
    } else {
        Box::new(std::fs::File::create(&answers_path)?)
    });
    for (n, item) in items.iter().enumerate() {
        let (zone, offset_s, started_ms) = zone_of(&item.started_at)?;
        let t = transcript_of(item);
        let segments: Vec<&str> = item.segments.iter().map(|s| s.text.as_str()).collect();
        let o = pipeline.run(&t, started_ms, &zone);
        let raw = raw_stats(&o.calls, &segments);
        {
            use std::io::Write;
            let calls: Vec<serde_json::Value> = o
                .calls
                .iter()
                .map(|c| serde_json::json!({"kind": format!("{:?}", c.kind).to_lowercase(), "text": c.text}))
                .collect();
            let line = serde_json::json!({"id": item.id, "status": o.run.status, "calls": calls});
            writeln!(answers, "{line}")?;
            answers.flush()?;
        }

        // Reference, predictions.
        let reference: Vec<ScoredTask> = item
            .reference
            .tasks
            .iter()
            .map(|r| {
                Ok(ScoredTask {
                    title: r.title.clone(),
                    owner: r.owner.clone(),
                    due: Due::parse_reference(r.due.as_deref())?,
                    source_quote: Some(r.source_quote.clone()),
                })
            })
            .collect::<anyhow::Result<_>>()
            .with_context(|| format!("{}: a reference due", item.id))?;
        for (r, rt) in item.reference.tasks.iter().zip(&reference) {
            if let Some(text) = &r.due_text {
                acc.extractor_due_all += 1;
                let got = Due::from_ms(resolve_due(text, started_ms, &zone));
                if score::due_met(rt.due, got, offset_s) {
                    acc.extractor_due_met += 1;
                } else {
                    acc.extractor_due_misses.push(format!(
                        "{} \"{text}\" → {} (reference {})",
                        item.id,
                        match got {
                            Due::At(ms) => assist_analysis::rules::local_rfc3339(ms, &zone),
                            _ => "null".into(),
                        },
                        r.due.as_deref().unwrap_or("null")
                    ));
                }
            }
        }
        let rules: Vec<ScoredTask> = o
            .rules
            .iter()
            .map(|r| ScoredTask {
                title: r.title.clone(),
                owner: r.owner.clone(),
                due: Due::from_ms(r.due_at),
                source_quote: Some(r.source_quote.clone()),
            })
            .collect();
        let llm_tasks: Vec<ScoredTask> = o
            .llm
            .tasks
            .iter()
            .map(|t| ScoredTask {
                title: t.title.clone(),
                owner: t.owner.clone(),
                due: Due::from_ms(
                    t.due_text
                        .as_deref()
                        .and_then(|d| resolve_due(d, started_ms, &zone)),
                ),
                source_quote: t.source_quote.clone(),
            })
            .collect();
        let merged: Vec<ScoredTask> = o
            .merged_tasks
            .iter()
            .map(|t| ScoredTask {
                title: t.title.clone(),
                owner: t.owner.clone(),
                due: Due::from_ms(t.due_at),
                source_quote: t.source_quote.clone(),
            })
            .collect();
        let s_rules = score::score_tasks(&rules, &reference, offset_s);
        let s_llm = score::score_tasks(&llm_tasks, &reference, offset_s);
        let s_merged = score::score_tasks(&merged, &reference, offset_s);
        let model_answered = matches!(o.run.status.as_str(), "ok" | "repaired");
        let confirmed: Vec<ScoredTask> = merged
            .iter()
            .zip(&o.merged_tasks)
            .filter(|(_, m)| !model_answered || m.origin != "rule")
            .map(|(t, _)| t.clone())
            .collect();
        let s_confirmed = score::score_tasks(&confirmed, &reference, offset_s);

        let ref_cats: Vec<String> = item
            .reference
            .risk_tags
            .iter()
            .map(|r| r.category.clone())
            .collect();
        let engine_tags: Vec<(String, String)> = o
            .engine
            .iter()
            .map(|(c, span, _)| (c.clone(), span.clone()))
            .collect();
        let llm_tags: Vec<(String, String)> = o
            .llm
            .risk_tags
            .iter()
            .map(|r| (r.category.clone(), r.evidence_quote.clone()))
            .collect();
        let merged_tags: Vec<(String, String)> = o
            .merged_tags
            .iter()
            .map(|r| {
                (
                    r.category.clone(),
                    strip_ellipsis(&r.evidence_quote).to_string(),
                )
            })
            .collect();
        let r_engine = score::score_categories(&engine_tags, &ref_cats, &segments);
        let r_llm = score::score_categories(&llm_tags, &ref_cats, &segments);
        let r_merged = score::score_categories(&merged_tags, &ref_cats, &segments);

        for (g, name) in acc.groups.iter_mut().zip(GROUPS) {
            if name == "all" || name == item.language || name == item.kind {
                g.transcripts += 1;
                g.rules.add(s_rules);
                g.llm.add(s_llm);
                g.merged.add(s_merged);
                g.confirmed.add(s_confirmed);
                g.risk_engine.add(r_engine);
                g.risk_llm.add(r_llm);
                g.risk_merged.add(r_merged);
            }
        }

        // Validity, verbatim, counts.
        match o.run.status.as_str() {
            "ok" => acc.status_ok += 1,
            "repaired" => acc.status_repaired += 1,
            _ => acc.errors.push(format!(
                "{}: {}{}",
                item.id,
                o.run.status,
                o.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )),
        }
        acc.raw_valid += usize::from(o.error.is_none() && raw.all_chunks_valid);
        acc.pre_verbatim += raw.quotes_verbatim;
        acc.pre_quotes += raw.quotes;
        for q in o
            .llm
            .tasks
            .iter()
            .filter_map(|t| t.source_quote.as_deref())
            .chain(o.llm.risk_tags.iter().map(|r| r.evidence_quote.as_str()))
        {
            acc.llm_post_quotes += 1;
            acc.llm_post_verbatim += usize::from(score::verbatim(q, &segments));
        }
        for q in o
            .merged_tasks
            .iter()
            .filter_map(|t| t.source_quote.as_deref())
            .chain(o.merged_tags.iter().map(|r| r.evidence_quote.as_str()))
        {
            acc.doc_quotes += 1;
            if score::verbatim(q, &segments) {
                acc.doc_verbatim += 1;
            } else if score::verbatim(strip_ellipsis(q), &segments) {
                acc.doc_ellipsis_only += 1;
            }
        }
        acc.dropped += o.run.dropped_quotes;
        acc.truncated += o.run.truncated;
        acc.cut_off += raw.cut_off;
        acc.sentiment_ok += usize::from(o.llm.sentiment == item.reference.sentiment);
        acc.summary_lang_ok += usize::from(in_language(&o.llm.summary, &item.language));
        acc.gen_tokens += o.run.generated_tokens;
        acc.llm_ms_total += o.run.ms;
        acc.prompt_tokens += raw.prompt_tokens;
        acc.prompt_ms += raw.prompt_ms;
        acc.decode_tokens += raw.decode_tokens;
        acc.decode_ms += raw.decode_ms;
        let total_ms = o.llm_ms + o.rules_ms;
        acc.cpu_total += o.cpu_s;
        acc.e2e.push(total_ms);

        // Hard cases.
        let valid = matches!(o.run.status.as_str(), "ok" | "repaired");
        let output_text = serde_json::to_string(&(&o.llm, &o.merged_tasks)).unwrap_or_default();
        match item.id.as_str() {
            "zh-009" | "en-006" => {
                let prompt_task = o.merged_tasks.iter().any(|t| {
                    let s = format!("{} {}", t.title, t.source_quote.as_deref().unwrap_or(""))
                        .to_lowercase();
                    ["prompt", "提示词", "指令", "instruction"]
                        .iter()
                        .any(|w| s.contains(w))
                });
                let leak = PROMPT_PHRASES.iter().any(|p| output_text.contains(p));
                acc.hard.push((
                    item.id.clone(),
                    valid && !prompt_task && !leak,
                    format!("valid {valid}, task about the prompt {prompt_task}, prompt text in output {leak}"),
                ));
            }
            "zh-018" | "en-016" => acc.hard.push((
                item.id.clone(),
                valid && o.merged_tasks.is_empty() && o.merged_tags.is_empty(),
                format!(
                    "valid {valid}, {} task(s), {} tag(s)",
                    o.merged_tasks.len(),
                    o.merged_tags.len()
                ),
            )),
            "zh-011" | "zh-034" | "en-015" => acc.hard.push((
                item.id.clone(),
                valid && raw.max_prompt_plus_answer <= context,
                format!(
                    "valid {valid}, {} chunk(s), largest prompt + answer {} of {context} tokens",
                    o.run.chunks, raw.max_prompt_plus_answer
                ),
            )),
            _ => {}
        }

        let cats = |v: &[(String, String)]| {
            let mut c: Vec<&str> = v.iter().map(|x| x.0.as_str()).collect();
            c.sort_unstable();
            c.dedup();
            c.join(",")
        };
        let mut rc: Vec<&str> = ref_cats.iter().map(String::as_str).collect();
        rc.sort_unstable();
        rc.dedup();
        let line = format!(
            "{}: tasks ref {} | strict tp/pred rules {}/{} llm {}/{} merged {}/{} | lenient merged {} | risk ref [{}] engine [{}] llm [{}] merged [{}] | llm {} ({} chunk(s), {} call(s), {} dropped) | {:.1} s | LLM tasks: {}",
            item.id,
            reference.len(),
            s_rules.strict.tp,
            rules.len(),
            s_llm.strict.tp,
            llm_tasks.len(),
            s_merged.strict.tp,
            merged.len(),
            s_merged.lenient.tp,
            rc.join(","),
            cats(&engine_tags),
            cats(&llm_tags),
            cats(&merged_tags),
            o.run.status,
            o.run.chunks,
            o.run.calls,
            o.run.dropped_quotes,
            total_ms / 1000.0,
            o.llm
                .tasks
                .iter()
                .map(|t| format!(
                    "{} [{}] \"{}\"",
                    t.title,
                    t.owner,
                    t.source_quote.as_deref().unwrap_or("-")
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        eprintln!("[{}/{}] {line}", n + 1, items.len());
        acc.lines.push(line);
        acc.done += 1;
        if let Err(e) = write_partial(&report(&acc, &ctx), out) {
            eprintln!("cannot write the partial report: {e:#}");
        }
    }
    if !args.no_timing {
        time_calls(&pipeline, &all_items, &[15], &mut acc)?;
    }
    pipeline.llm.shutdown();
    let mut r = report(&acc, &ctx);
    if args.timing_only {
        timing_report(&mut r, &args.model, &threads);
    }
    r.finish(out)?;
    Ok(())
}

/// The whole set (timing calls are built from all of it, whatever `--limit`
/// or `--ids`).
fn items_all(args: &AnalysisArgs, items: &[Item]) -> anyhow::Result<Vec<Item>> {
    if args.limit.is_none() && args.ids.is_empty() {
        return Ok(items.to_vec());
    }
    load(&args.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_checked_for_their_language() {
        assert!(in_language("客户试用云客CRM一周，整体满意。", "zh"));
        assert!(!in_language("The customer is happy.", "zh"));
        assert!(in_language("The customer trialled Yunke CRM.", "en"));
        assert!(!in_language("", "en"));
    }
}
