//! `assist-eval analysis`: the quality and end-to-end time of post-call
//! analysis on the labelled transcripts of `eval/data/analysis/` (issue 6,
//! items 5 and 6). Scoring follows that folder's README ([`score`]).
//!
//! Three producers per transcript, as the server builds them
//! (`assist_server::analyze`):
//! - **rules**: the deterministic task extractor (`extract_tasks`, commitments
//!   and due dates) and the risk engine (lexicon + patterns, per segment, the
//!   alerting hits);
//! - **LLM**: `postcall::analyse` (chunked, parse-and-repair, quotes
//!   verified); an LLM task's due is its `due_text` resolved by the date rules,
//!   as the merge does for LLM-only tasks;
//! - **merged**: `merge_tasks` and `merge_risk_tags`, what the product ships.
//!
//! The model runs behind a recording [`Generate`] wrapper, so the raw answers
//! (before the product's parser, repair turn and verbatim filter) can be
//! checked for schema validity and verbatim quotes.
//!
//! Time: each transcript's end-to-end time is the LLM run plus the rules and
//! merges; the 1-, 5- and 15-minute calls are built per language by
//! concatenating the set's calls in file order (times shifted, 1 s apart)
//! and cutting at the last segment that ends by the target length. With
//! `ASSIST_EVAL_PRINT_ANSWERS` set, the timing calls' raw model answers are
//! printed to stderr.

mod score;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use assist_models::llm::{
    FinishReason, Generate, GenerateOptions, Generation, Llm, LlmHandle, Message, StreamToken,
};
use assist_models::worker::WorkerConfig;
use assist_server::analyze::{DocRiskTag, merge_risk_tags, merge_tasks};
use assist_server::extractors::{extract_tasks, resolve_due};
use assist_server::postcall::{
    LlmAnalysis, LlmRun, RISK_CATEGORIES, Transcript, Turn, analyse, parse_answer,
};
use assist_server::risk::{EngineOptions, RiskEngine, SpeakerRole};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use crate::report::{Better, Figure, Report};
use crate::setup::model_path;
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

#[derive(Debug, Clone, Deserialize)]
struct Item {
    id: String,
    language: String,
    kind: String,
    started_at: String,
    segments: Vec<Segment>,
    reference: Reference,
}

#[derive(Debug, Clone, Deserialize)]
struct Segment {
    start_ms: i64,
    end_ms: i64,
    speaker: String,
    text: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Reference {
    tasks: Vec<RefTask>,
    risk_tags: Vec<RefTag>,
    sentiment: String,
}

#[derive(Debug, Clone, Deserialize)]
struct RefTask {
    title: String,
    owner: String,
    due: Option<String>,
    due_text: Option<String>,
    source_quote: String,
}

#[derive(Debug, Clone, Deserialize)]
struct RefTag {
    category: String,
}

fn load(data: &Path) -> anyhow::Result<Vec<Item>> {
    let path = data.join("transcripts.jsonl");
    std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

/// The conversation's UTC offset (seconds) and an IANA zone with that offset
/// at that time, for the extractors (which take a zone name).
fn zone_of(started_at: &str) -> anyhow::Result<(String, i32, i64)> {
    let ts: Timestamp = started_at.parse()?;
    let tail = &started_at[started_at.len().saturating_sub(6)..];
    let offset_s = if tail.ends_with('Z') {
        0
    } else {
        let sign = if tail.starts_with('-') { -1 } else { 1 };
        let h: i32 = tail[1..3].parse()?;
        let m: i32 = tail[4..6].parse()?;
        sign * (h * 3600 + m * 60)
    };
    let name = match offset_s {
        28_800 => "Asia/Shanghai".to_string(),
        19_800 => "Asia/Kolkata".to_string(),
        32_400 => "Asia/Tokyo".to_string(),
        0 => "Etc/UTC".to_string(),
        s if s % 3600 == 0 => format!("Etc/GMT{:+}", -s / 3600),
        s => bail!("no zone for offset {s} s"),
    };
    let tz = jiff::tz::TimeZone::get(&name)?;
    anyhow::ensure!(
        tz.to_offset(ts).seconds() == offset_s,
        "{name} is not at {offset_s} s on {started_at}"
    );
    Ok((name, offset_s, ts.as_millisecond()))
}

// ------------------------------------------------------------ recording LLM

/// One model call as the wrapper saw it.
#[derive(Debug, Clone)]
struct Call {
    kind: CallKind,
    text: String,
    generation: Generation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallKind {
    /// The first answer for a chunk.
    Chunk,
    /// The repair turn after an unparseable answer.
    Repair,
    /// Combining chunk summaries.
    Reduce,
}

/// The model, recording every answer.
struct Recorder {
    inner: Llm,
    log: Arc<Mutex<Vec<Call>>>,
}

impl Generate for Recorder {
    fn chat(
        &mut self,
        messages: &[Message],
        opts: &GenerateOptions,
        on_token: &mut dyn FnMut(StreamToken<'_>) -> bool,
    ) -> assist_models::Result<Generation> {
        let generation = self.inner.chat(messages, opts, on_token)?;
        let kind = if messages
            .first()
            .is_some_and(|m| m.content.starts_with("Combine partial summaries"))
        {
            CallKind::Reduce
        } else if messages
            .last()
            .is_some_and(|m| m.content == assist_server::postcall::REPAIR_REQUEST)
        {
            CallKind::Repair
        } else {
            CallKind::Chunk
        };
        if let Ok(mut log) = self.log.lock() {
            log.push(Call {
                kind,
                text: generation.text.clone(),
                generation: generation.clone(),
            });
        }
        Ok(generation)
    }

    fn count_chat_tokens(&self, messages: &[Message]) -> assist_models::Result<usize> {
        self.inner.count_chat_tokens(messages)
    }

    fn context_length(&self) -> usize {
        self.inner.context_length()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

/// Whether a raw answer is, as it stands, one JSON object with every field of
/// the output schema in the right type (no fences, no chatter, no repair).
fn schema_valid(text: &str) -> bool {
    let Ok(Value::Object(o)) = serde_json::from_str::<Value>(text.trim()) else {
        return false;
    };
    let is_str = |k: &str| o.get(k).is_some_and(Value::is_string);
    let objs = |k: &str, f: &dyn Fn(&serde_json::Map<String, Value>) -> bool| {
        o.get(k)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().all(|v| v.as_object().is_some_and(f)))
    };
    let s = |m: &serde_json::Map<String, Value>, k: &str| m.get(k).is_some_and(Value::is_string);
    is_str("summary")
        && is_str("sentiment")
        && is_str("next_best_action")
        && o.get("customer_needs").is_some_and(Value::is_array)
        && objs("objections", &|m| s(m, "objection"))
        && objs("tasks", &|m| s(m, "title") && s(m, "owner"))
        && objs("risk_tags", &|m| {
            s(m, "evidence_quote")
                && m.get("category")
                    .and_then(Value::as_str)
                    .is_some_and(|c| RISK_CATEGORIES.contains(&c))
        })
}

/// What the raw answers of one transcript show.
#[derive(Debug, Default, Clone)]
struct RawStats {
    /// Every chunk's first answer is schema-valid as it stands.
    all_chunks_valid: bool,
    /// Quotes in the parsed answers before the verbatim filter: (verbatim, all).
    quotes_verbatim: usize,
    quotes: usize,
    cut_off: usize,
    max_prompt_plus_answer: usize,
    prompt_tokens: usize,
    prompt_ms: f64,
    decode_tokens: usize,
    decode_ms: f64,
}

fn raw_stats(calls: &[Call], segments: &[&str]) -> RawStats {
    let mut s = RawStats {
        all_chunks_valid: true,
        ..RawStats::default()
    };
    let mut pending = false;
    let count = |a: &LlmAnalysis, s: &mut RawStats| {
        for q in a.quotes() {
            s.quotes += 1;
            s.quotes_verbatim += usize::from(score::verbatim(q, segments));
        }
    };
    for c in calls {
        s.cut_off += usize::from(c.generation.finish_reason == FinishReason::Length);
        s.max_prompt_plus_answer = s
            .max_prompt_plus_answer
            .max(c.generation.prompt_tokens + c.generation.generated_tokens);
        s.prompt_tokens += c.generation.prompt_tokens;
        s.prompt_ms += c.generation.prompt_ms;
        s.decode_tokens += c.generation.generated_tokens.saturating_sub(1);
        s.decode_ms += (c.generation.total_ms - c.generation.time_to_first_token_ms).max(0.0);
        match c.kind {
            CallKind::Chunk => {
                s.all_chunks_valid &= schema_valid(&c.text);
                match parse_answer(&c.text) {
                    Some((a, _)) => {
                        count(&a, &mut s);
                        pending = false;
                    }
                    None => pending = true,
                }
            }
            CallKind::Repair if pending => {
                if let Some((a, _)) = parse_answer(&c.text) {
                    count(&a, &mut s);
                }
                pending = false;
            }
            _ => {}
        }
    }
    s
}

// ------------------------------------------------------------ one transcript

/// Everything one transcript's analysis produced, with its times.
struct Outcome {
    llm: LlmAnalysis,
    run: LlmRun,
    error: Option<String>,
    rules: Vec<assist_server::extractors::RuleTask>,
    engine: Vec<(String, String, DocRiskTag)>,
    merged_tasks: Vec<assist_server::analyze::MergedTask>,
    merged_tags: Vec<DocRiskTag>,
    llm_ms: f64,
    /// CPU seconds of this process (all threads) for the whole analysis.
    cpu_s: f64,
    rules_ms: f64,
    calls: Vec<Call>,
}

struct Pipeline {
    llm: LlmHandle,
    log: Arc<Mutex<Vec<Call>>>,
    engine: RiskEngine,
    model: String,
    rt: tokio::runtime::Runtime,
}

impl Pipeline {
    /// Analyse one conversation the way the server's `analyze` job does.
    fn run(&self, t: &Transcript, started_ms: i64, zone: &str) -> Outcome {
        if let Ok(mut l) = self.log.lock() {
            l.clear();
        }
        let t0 = Instant::now();
        let cpu0 = cpu_seconds();
        let (llm, run, error) = match self.rt.block_on(analyse(&self.llm, &self.model, t)) {
            Ok((a, r)) => (a, r, None),
            Err(e) => (
                LlmAnalysis::default(),
                LlmRun {
                    model: self.model.clone(),
                    status: "error".into(),
                    ..LlmRun::default()
                },
                Some(e.to_string()),
            ),
        };
        let llm_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let t1 = Instant::now();
        let rules = extract_tasks(&t.turns, started_ms, zone);
        let mut engine = Vec::new();
        for turn in &t.turns {
            let role = SpeakerRole::parse(&turn.speaker).unwrap_or(SpeakerRole::Unknown);
            for h in self.engine.check(&turn.text, role, None) {
                if !h.is_alert() {
                    continue;
                }
                let span: String = turn
                    .text
                    .chars()
                    .skip(h.char_start)
                    .take(h.char_end - h.char_start)
                    .collect();
                let category = h.category.as_str().to_string();
                let doc = DocRiskTag {
                    category: category.clone(),
                    evidence_quote: h.snippet.clone(),
                    confidence: f64::from(h.confidence),
                    origin: "engine".into(),
                };
                engine.push((category, span, doc));
            }
        }
        let merged_tasks = merge_tasks(rules.clone(), &llm.tasks, started_ms, zone);
        // As the server does: the model's tags join only when it is trusted
        // with them (`AnalysisConfig::llm_risk_tags`, unset).
        let merged_tags = merge_risk_tags(
            engine.iter().map(|(_, _, d)| d.clone()).collect(),
            &llm.risk_tags,
            assist_server::postcall::trusts_risk_tags(&self.model),
        );
        let rules_ms = t1.elapsed().as_secs_f64() * 1000.0;
        let calls = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        Outcome {
            llm,
            run,
            error,
            rules,
            engine,
            merged_tasks,
            merged_tags,
            llm_ms,
            cpu_s: cpu_seconds() - cpu0,
            rules_ms,
            calls,
        }
    }
}

fn transcript_of(item: &Item) -> Transcript {
    Transcript {
        language: item.language.clone(),
        started_at: item.started_at.clone(),
        turns: item
            .segments
            .iter()
            .map(|s| Turn {
                speaker: s.speaker.clone(),
                text: s.text.clone(),
                start_ms: s.start_ms,
                end_ms: s.end_ms,
            })
            .collect(),
    }
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

fn pct(a: usize, b: usize) -> f64 {
    100.0 * score::ratio(a, b)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * p).round() as usize]
}

/// Per group (all, zh, en, call, chat) sums.
#[derive(Debug, Default, Clone)]
struct Group {
    transcripts: usize,
    rules: TaskScore,
    llm: TaskScore,
    merged: TaskScore,
    /// A merge the server does not ship, measured to decide whether it
    /// should: the rules' tasks kept only where the model confirmed them
    /// (origin `both`), plus the model's own.
    confirmed: TaskScore,
    risk_engine: Prf,
    risk_llm: Prf,
    risk_merged: Prf,
}

const GROUPS: [&str; 5] = ["all", "zh", "en", "call", "chat"];

/// A synthetic call of about `target_ms` in one language: the set's calls in
/// file order, 1 s apart, cut at the last segment ending by the target.
fn long_call(items: &[Item], language: &str, target_ms: i64) -> Option<(Transcript, i64, String)> {
    let calls: Vec<&Item> = items
        .iter()
        .filter(|i| i.kind == "call" && i.language == language)
        .collect();
    let first = calls.first()?;
    let mut turns = Vec::new();
    let mut base = 0;
    'outer: for c in calls.iter().cycle().take(200) {
        for s in &c.segments {
            if base + s.end_ms > target_ms {
                break 'outer;
            }
            turns.push(Turn {
                speaker: s.speaker.clone(),
                text: s.text.clone(),
                start_ms: base + s.start_ms,
                end_ms: base + s.end_ms,
            });
        }
        base = turns.last().map(|t: &Turn| t.end_ms).unwrap_or(0) + 1000;
    }
    let end = turns.last()?.end_ms;
    let t = Transcript {
        language: language.into(),
        started_at: first.started_at.clone(),
        turns,
    };
    Some((t, end, first.started_at.clone()))
}

/// What the run has measured so far.
#[derive(Debug, Default)]
struct Acc {
    done: usize,
    groups: Vec<Group>,
    lines: Vec<String>,
    hard: Vec<(String, bool, String)>,
    errors: Vec<String>,
    status_ok: usize,
    status_repaired: usize,
    raw_valid: usize,
    pre_verbatim: usize,
    pre_quotes: usize,
    doc_verbatim: usize,
    doc_quotes: usize,
    doc_ellipsis_only: usize,
    llm_post_verbatim: usize,
    llm_post_quotes: usize,
    dropped: usize,
    truncated: usize,
    cut_off: usize,
    sentiment_ok: usize,
    summary_lang_ok: usize,
    gen_tokens: usize,
    llm_ms_total: f64,
    prompt_tokens: usize,
    prompt_ms: f64,
    decode_tokens: usize,
    decode_ms: f64,
    e2e: Vec<f64>,
    extractor_due_met: usize,
    extractor_due_all: usize,
    extractor_due_misses: Vec<String>,
    timing: Vec<Timing>,
    cpu_total: f64,
}

/// One timing call: language, minutes, spoken ms, segments, seconds end to end, the LLM run, rules ms.
type Timing = (&'static str, i64, i64, usize, f64, LlmRun, f64, f64, f64);

/// What the report says about the run besides the measurements.
struct Ctx {
    model: String,
    threads: String,
    total: usize,
    load_s: f64,
    lexicon_entries: usize,
}

/// `analysis` for the 0.5B model, `analysis-<model>` for any other.
fn report_name(model: &str) -> String {
    if model == "llm-small" {
        "analysis".to_string()
    } else {
        format!("analysis-{model}")
    }
}

fn report(a: &Acc, ctx: &Ctx) -> Report {
    let (threads, total, load_s, lexicon_entries) =
        (&ctx.threads, ctx.total, ctx.load_s, ctx.lexicon_entries);
    let args_model = &ctx.model;
    let groups = &a.groups;
    let lines = &a.lines;
    let hard = &a.hard;
    let errors = &a.errors;
    let status_ok = a.status_ok;
    let status_repaired = a.status_repaired;
    let raw_valid = a.raw_valid;
    let pre_verbatim = a.pre_verbatim;
    let pre_quotes = a.pre_quotes;
    let doc_verbatim = a.doc_verbatim;
    let doc_quotes = a.doc_quotes;
    let doc_ellipsis_only = a.doc_ellipsis_only;
    let llm_post_verbatim = a.llm_post_verbatim;
    let llm_post_quotes = a.llm_post_quotes;
    let dropped = a.dropped;
    let truncated = a.truncated;
    let cut_off = a.cut_off;
    let sentiment_ok = a.sentiment_ok;
    let summary_lang_ok = a.summary_lang_ok;
    let gen_tokens = a.gen_tokens;
    let llm_ms_total = a.llm_ms_total;
    let prompt_tokens = a.prompt_tokens;
    let prompt_ms = a.prompt_ms;
    let decode_tokens = a.decode_tokens;
    let decode_ms = a.decode_ms;
    let e2e = &a.e2e;
    let extractor_due_met = a.extractor_due_met;
    let extractor_due_all = a.extractor_due_all;
    let extractor_due_misses = &a.extractor_due_misses;
    let timing = &a.timing;
    let name = report_name(args_model);
    let all = &groups[0];
    let partial = if a.done < total {
        format!(
            "PARTIAL (run in progress or stopped): {} of {total} transcripts scored. ",
            a.done
        )
    } else {
        String::new()
    };
    let mut r = Report::new(
        &name,
        format!(
            "{partial}Post-call analysis quality on eval/data/analysis ({} transcripts, {} reference tasks, {} reference risk categories) with `{}` \
             on {threads} thread(s): the deterministic rules alone (task extractor + risk engine), the LLM alone, and the merge the server ships; \
             scoring as in eval/data/analysis/README.md. Peer = the rules alone (measured in the same run); for the 5-minute call the peer is the issue's 30 s target.",
            a.done,
            all.merged.strict.tp + all.merged.strict.fn_,
            all.risk_engine.tp + all.risk_engine.fn_,
            args_model
        ),
    );
    let prf_figs = |r: &mut Report, what: &str, ours: &Prf, peer: &Prf, peer_name: &str| {
        r.push(
            Figure::new(
                format!("{what} precision"),
                "0-1",
                ours.precision(),
                Better::Higher,
            )
            .peer(peer_name, peer.precision()),
        );
        r.push(
            Figure::new(
                format!("{what} recall"),
                "0-1",
                ours.recall(),
                Better::Higher,
            )
            .peer(peer_name, peer.recall()),
        );
        r.push(
            Figure::new(format!("{what} F1"), "0-1", ours.f1(), Better::Higher)
                .peer(peer_name, peer.f1()),
        );
    };
    prf_figs(
        &mut r,
        "task strict, merged",
        &all.merged.strict,
        &all.rules.strict,
        "rules alone",
    );
    prf_figs(
        &mut r,
        "task strict, LLM alone",
        &all.llm.strict,
        &all.rules.strict,
        "rules alone",
    );
    prf_figs(
        &mut r,
        "task strict, variant: rule tasks only when the model confirms them",
        &all.confirmed.strict,
        &all.merged.strict,
        "merged as shipped",
    );
    prf_figs(
        &mut r,
        "task lenient, merged",
        &all.merged.lenient,
        &all.rules.lenient,
        "rules alone",
    );
    prf_figs(
        &mut r,
        "task lenient, variant: rule tasks only when the model confirms them",
        &all.confirmed.lenient,
        &all.merged.lenient,
        "merged as shipped",
    );
    prf_figs(
        &mut r,
        "task lenient, LLM alone",
        &all.llm.lenient,
        &all.rules.lenient,
        "rules alone",
    );
    let due = |s: &TaskScore| score::ratio(s.due_met, s.due_pairs);
    r.push(
        Figure::new(
            "due-date accuracy on lenient pairs, merged",
            "0-1",
            due(&all.merged),
            Better::Higher,
        )
        .peer("rules alone", due(&all.rules)),
    );
    r.push(
        Figure::new(
            "due-date accuracy on lenient pairs, LLM alone",
            "0-1",
            due(&all.llm),
            Better::Higher,
        )
        .peer("rules alone", due(&all.rules)),
    );
    r.push(Figure::new(
        format!(
            "due-date accuracy of the extractor on the {extractor_due_all} reference due_texts"
        ),
        "0-1",
        score::ratio(extractor_due_met, extractor_due_all),
        Better::Higher,
    ));
    prf_figs(
        &mut r,
        "risk-category, merged",
        &all.risk_merged,
        &all.risk_engine,
        "engine alone",
    );
    prf_figs(
        &mut r,
        "risk-category, LLM alone",
        &all.risk_llm,
        &all.risk_engine,
        "engine alone",
    );
    for (g, name) in groups.iter().zip(GROUPS).skip(1) {
        r.push(
            Figure::new(
                format!(
                    "task strict F1, merged, {name} ({} transcripts)",
                    g.transcripts
                ),
                "0-1",
                g.merged.strict.f1(),
                Better::Higher,
            )
            .peer("rules alone", g.rules.strict.f1()),
        );
        r.push(
            Figure::new(
                format!("task strict F1, LLM alone, {name}"),
                "0-1",
                g.llm.strict.f1(),
                Better::Higher,
            )
            .peer("rules alone", g.rules.strict.f1()),
        );
        r.push(
            Figure::new(
                format!("risk F1, merged, {name}"),
                "0-1",
                g.risk_merged.f1(),
                Better::Higher,
            )
            .peer("engine alone", g.risk_engine.f1()),
        );
        r.push(
            Figure::new(
                format!("risk F1, LLM alone, {name}"),
                "0-1",
                g.risk_llm.f1(),
                Better::Higher,
            )
            .peer("engine alone", g.risk_engine.f1()),
        );
    }
    r.push(Figure::new(
        "JSON validity, raw first answers (schema as is, no repair)",
        "%",
        pct(raw_valid, a.done),
        Better::Higher,
    ));
    r.push(Figure::new(
        "JSON validity after parse-and-repair (status ok or repaired)",
        "%",
        pct(status_ok + status_repaired, a.done),
        Better::Higher,
    ));
    r.push(Figure::new(
        "answers needing the repair turn (status repaired)",
        "count",
        status_repaired as f64,
        Better::Lower,
    ));
    r.push(Figure::new(
        format!("evidence verbatim before the filter ({pre_quotes} LLM quotes)"),
        "%",
        pct(pre_verbatim, pre_quotes),
        Better::Higher,
    ));
    r.push(Figure::new(
        format!("evidence verbatim, LLM after the filter ({llm_post_quotes} quotes)"),
        "%",
        pct(llm_post_verbatim, llm_post_quotes),
        Better::Higher,
    ));
    r.push(Figure::new(
        format!("evidence verbatim in the merged documents ({doc_quotes} quotes)"),
        "%",
        pct(doc_verbatim, doc_quotes),
        Better::Higher,
    ));
    r.push(Figure::new(
        "quotes dropped by the verbatim filter",
        "count",
        dropped as f64,
        Better::Lower,
    ));
    r.push(Figure::new(
        "answers cut off at the token limit (closed by the parser / all)",
        "count",
        truncated as f64,
        Better::Lower,
    ));
    r.push(Figure::new(
        "sentiment agreement",
        "%",
        pct(sentiment_ok, a.done),
        Better::Higher,
    ));
    r.push(Figure::new(
        "summary in the transcript's language",
        "%",
        pct(summary_lang_ok, a.done),
        Better::Higher,
    ));
    r.push(Figure::new(
        "end-to-end time per transcript, mean",
        "s",
        e2e.iter().sum::<f64>() / e2e.len().max(1) as f64 / 1000.0,
        Better::Lower,
    ));
    r.push(Figure::new(
        "end-to-end time per transcript, median",
        "s",
        percentile(e2e, 0.5) / 1000.0,
        Better::Lower,
    ));
    r.push(Figure::new(
        "end-to-end time per transcript, p95",
        "s",
        percentile(e2e, 0.95) / 1000.0,
        Better::Lower,
    ));
    r.push(Figure::new(
        "end-to-end time per transcript, max",
        "s",
        percentile(e2e, 1.0) / 1000.0,
        Better::Lower,
    ));
    r.push(Figure::new(
        "LlmRun generated tokens / LLM wall time",
        "tokens/s",
        gen_tokens as f64 / (llm_ms_total / 1000.0).max(1e-9),
        Better::Higher,
    ));
    r.push(Figure::new(
        "prompt reading",
        "tokens/s",
        prompt_tokens as f64 / (prompt_ms / 1000.0).max(1e-9),
        Better::Higher,
    ));
    r.push(Figure::new(
        "decoding",
        "tokens/s",
        decode_tokens as f64 / (decode_ms / 1000.0).max(1e-9),
        Better::Higher,
    ));
    r.push(Figure::new(
        "CPU time per transcript, mean (all threads)",
        "CPU s",
        a.cpu_total / a.done.max(1) as f64,
        Better::Lower,
    ));
    r.push(Figure::new("model load", "s", load_s, Better::Lower));
    for (language, minutes, end_ms, segs, s, run, rules_ms, cpu, load) in timing {
        let f = Figure::new(
            format!(
                "{minutes}-minute {language} call end to end ({:.0} s spoken, {segs} segments, {} chunk(s), {} LLM call(s), rules {rules_ms:.0} ms)",
                *end_ms as f64 / 1000.0,
                run.chunks,
                run.calls
            ),
            "s",
            *s,
            Better::Lower,
        );
        r.push(if *minutes == 5 {
            f.peer("issue target (2 cores)", 30.0)
        } else {
            f
        });
        r.push(Figure::new(
            format!("{minutes}-minute {language} call, CPU time of the analysis (load average {load:.1} when it ended)"),
            "CPU s",
            *cpu,
            Better::Lower,
        ));
    }

    // Notes.
    let five: Vec<String> = timing
        .iter()
        .filter(|t| t.1 == 5)
        .map(|t| {
            format!(
                "{} {:.1} s wall ({}), {:.1} CPU s (load average {:.1}; on {threads} idle cores the wall time would be about {:.0}–{:.0} s: {})",
                t.0,
                t.4,
                if t.4 <= 30.0 { "meets" } else { "misses" },
                t.7,
                t.8,
                t.7 / threads.parse::<f64>().unwrap_or(2.0),
                t.7,
                if t.7 <= 30.0 {
                    "meets"
                } else if t.7 / threads.parse::<f64>().unwrap_or(2.0) <= 30.0 {
                    "borderline"
                } else {
                    "misses"
                }
            )
        })
        .collect();
    if !five.is_empty() {
        r.note(format!(
            "5-minute call target (≤ 30 s on 2 cores) with `{}` on {threads} thread(s): {}.",
            args_model,
            five.join(", ")
        ));
    }
    r.note(format!(
        "Timing calls: per language, the set's calls concatenated in file order (1 s apart, times shifted) and cut at the last segment ending by 1, 5 or 15 minutes; \
         end to end = postcall::analyse + extract_tasks + the risk engine over every segment + merge_tasks / merge_risk_tags (no database). \
         The one-minute load average after each timing call was at most {max_load:.1} on 2 cores (above ~2 other work shared the cores and wall times are upper bounds); CPU time (all threads of this process, from /proc/self/stat) is given beside them. Model load ({load_s:.1} s) is not included.",
        max_load = a.timing.iter().map(|t| t.8).fold(0.0, f64::max),
    ));
    r.note(format!(
        "Counts (all {} scored): tasks strict tp/fp/fn rules {:?}, LLM {:?}, merged {:?}; lenient rules {:?}, LLM {:?}, merged {:?}; \
         due met / lenient pairs: rules {}/{}, LLM {}/{}, merged {}/{}; risk tp/fp/fn engine {:?}, LLM {:?}, merged {:?}.",
        a.done, all.rules.strict, all.llm.strict, all.merged.strict, all.rules.lenient, all.llm.lenient, all.merged.lenient,
        all.rules.due_met, all.rules.due_pairs, all.llm.due_met, all.llm.due_pairs, all.merged.due_met, all.merged.due_pairs,
        all.risk_engine, all.risk_llm, all.risk_merged
    ));
    r.note(format!(
        "LLM status: ok {status_ok}, repaired {status_repaired}, other {} ; answers that hit the token limit (finish = length, any call): {cut_off}.",
        errors.len()
    ));
    for e in errors {
        r.note(format!("invalid or failed: {e}"));
    }
    r.note(format!(
        "Evidence in the merged documents: {doc_verbatim}/{doc_quotes} verbatim; {doc_ellipsis_only} more are risk-engine snippets that the product stores with \"…\" \
         where it cut the context (verbatim once the \"…\" is removed, which is how the merged risk F1 counts them); the rest are not in the transcript."
    ));
    if !assist_server::postcall::trusts_risk_tags(args_model) {
        r.note(format!(
            "The merged risk tags are the engine's alone: the server leaves `{args_model}`'s own risk tags out unless \
             `analysis_llm_risk_tags = true` (they are still scored above as \"LLM alone\")."
        ));
    }
    r.note("Risk engine: lexicon eval/data/risk/lexicon.jsonl (".to_string() + &lexicon_entries.to_string() + " entries) + pattern detectors, no semantic detector, per segment with the segment's speaker role, alerting hits only; its evidence for scoring is the hit's span.");
    r.note("LLM tasks' due = their due_text resolved by the date rules (resolve_due), as merge_tasks does for LLM-only tasks. Raw JSON validity: every chunk's first answer is one JSON object with all seven fields in the right types, as it stands.");
    for (id, pass, what) in hard {
        r.note(format!(
            "hard case {id}: {} ({what})",
            if *pass { "pass" } else { "FAIL" }
        ));
    }
    if !extractor_due_misses.is_empty() {
        r.note(format!(
            "extractor due_text misses ({}): {}",
            extractor_due_misses.len(),
            extractor_due_misses.join("; ")
        ));
    }
    for l in lines {
        r.note(l);
    }
    r
}

/// CPU seconds (user + system, all threads) of this process so far, from
/// /proc/self/stat (clock ticks of 1/100 s); 0 where there is no /proc.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ")".
    (tick(11) + tick(12)) / 100.0
}

/// The one-minute load average (how shared the machine was).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Time the pipeline on synthetic calls of `minutes` in each language.
fn time_calls(
    pipeline: &Pipeline,
    items: &[Item],
    minutes: &[i64],
    acc: &mut Acc,
) -> anyhow::Result<()> {
    // Minutes outside, language inside: consecutive calls then share only
    // the system prompt in the model's cache (as different calls do in
    // service), not the opening of the same concatenated transcript.
    for &minutes in minutes {
        for language in ["zh", "en"] {
            let Some((t, end_ms, started_at)) = long_call(items, language, minutes * 60_000) else {
                continue;
            };
            let (zone, _, started_ms) = zone_of(&started_at)?;
            let o = pipeline.run(&t, started_ms, &zone);
            let s = (o.llm_ms + o.rules_ms) / 1000.0;
            let raw = raw_stats(&o.calls, &[]);
            if std::env::var_os("ASSIST_EVAL_PRINT_ANSWERS").is_some() {
                for c in &o.calls {
                    eprintln!("----- answer:\n{}\n-----", c.text);
                }
            }
            eprintln!(
                "{minutes}-minute {language} call ({:.0} s spoken, {} segments, {} chars): {s:.1} s end to end (LLM {:.1} s, {} chunk(s), {} call(s), {} prompt ({} reused from the cache) + {} generated tokens, status {}, stopped looping: {}), rules {:.1} ms",
                end_ms as f64 / 1000.0,
                t.turns.len(),
                t.turns
                    .iter()
                    .map(|x| x.text.chars().count())
                    .sum::<usize>(),
                o.llm_ms / 1000.0,
                o.run.chunks,
                o.run.calls,
                raw.prompt_tokens,
                o.run.cached_prompt_tokens,
                o.run.generated_tokens,
                o.run.status,
                o.run.stopped_repeating,
                o.rules_ms
            );
            acc.timing.push((
                language,
                minutes,
                end_ms,
                t.turns.len(),
                s,
                o.run.clone(),
                o.rules_ms,
                o.cpu_s,
                load_average(),
            ));
        }
    }
    Ok(())
}

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
                            Due::At(ms) => assist_server::extractors::local_rfc3339(ms, &zone),
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

/// Keep only the timing calls' figures and notes (`--timing-only`: no
/// transcript was scored, so the quality figures would be empty ratios).
fn timing_report(r: &mut Report, model: &str, threads: &str) {
    let timing = |m: &str| {
        ["1-minute", "5-minute", "15-minute", "model load"]
            .iter()
            .any(|p| m.starts_with(p))
    };
    r.figures.retain(|f| timing(&f.metric));
    r.notes
        .retain(|n| n.starts_with("5-minute call target") || n.starts_with("Timing calls"));
    r.name = format!("{}-timing", report_name(model));
    r.description = format!(
        "End-to-end post-call analysis time with `{model}` on {threads} thread(s) for 1-, 5- and 15-minute calls in Chinese and English \
         (`assist-eval analysis --model {model} --timing-only`). Peer for the 5-minute call: the issue's 30 s target on 2 cores."
    );
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
    fn raw_answers_must_have_every_field_to_be_valid() {
        let ok = r#"{"summary": "s", "customer_needs": [], "objections": [{"objection": "贵", "answer": null}],
            "tasks": [{"title": "发报价", "owner": "rep", "due_text": null, "source_quote": "x"}],
            "risk_tags": [{"category": "kickback", "evidence_quote": "返点", "confidence": 0.9}],
            "sentiment": "neutral", "next_best_action": "n"}"#;
        assert!(schema_valid(ok));
        assert!(!schema_valid(&format!("```json\n{ok}\n```")));
        assert!(!schema_valid(&ok.replace("kickback", "bribery")));
        assert!(!schema_valid(r#"{"summary": "s"}"#));
    }

    #[test]
    fn zones_follow_the_offset() {
        assert_eq!(
            zone_of("2026-11-16T10:30:00+08:00").unwrap().0,
            "Asia/Shanghai"
        );
        let (name, off, _) = zone_of("2026-11-18T10:00:00-05:00").unwrap();
        assert_eq!((name.as_str(), off), ("Etc/GMT+5", -5 * 3600));
        assert_eq!(zone_of("2026-11-20T17:02:00+05:30").unwrap().1, 19_800);
        assert_eq!(zone_of("2026-11-24T14:20:00+00:00").unwrap().0, "Etc/UTC");
    }

    #[test]
    fn the_dataset_loads_and_every_reference_due_parses() {
        let items = load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/analysis"
        )))
        .unwrap();
        assert_eq!(items.len(), 64);
        for i in &items {
            zone_of(&i.started_at).unwrap();
            for t in &i.reference.tasks {
                Due::parse_reference(t.due.as_deref()).unwrap();
            }
        }
        let (t, end, _) = long_call(&items, "zh", 300_000).unwrap();
        assert!(end <= 300_000 && end > 240_000, "{end}");
        assert!(
            t.turns
                .windows(2)
                .all(|w| w[0].start_ms <= w[1].start_ms + 3000)
        );
    }

    #[test]
    fn summaries_are_checked_for_their_language() {
        assert!(in_language("客户试用云客CRM一周，整体满意。", "zh"));
        assert!(!in_language("The customer is happy.", "zh"));
        assert!(in_language("The customer trialled Yunke CRM.", "en"));
        assert!(!in_language("", "en"));
    }
}
