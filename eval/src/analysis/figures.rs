//! What a run has measured so far ([`Acc`], per [`Group`] of transcripts)
//! and the report made of it: the quality figures against the references,
//! the raw answers' validity, and the timing calls.

use assist_analysis::llm::LlmRun;

use super::score::{self, Prf, TaskScore};
use crate::report::{Better, Figure, Report};

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
pub(super) struct Group {
    pub(super) transcripts: usize,
    pub(super) rules: TaskScore,
    pub(super) llm: TaskScore,
    pub(super) merged: TaskScore,
    /// A merge the server does not ship, measured to decide whether it
    /// should: the rules' tasks kept only where the model confirmed them
    /// (origin `both`), plus the model's own.
    pub(super) confirmed: TaskScore,
    pub(super) risk_engine: Prf,
    pub(super) risk_llm: Prf,
    pub(super) risk_merged: Prf,
}

pub(super) const GROUPS: [&str; 5] = ["all", "zh", "en", "call", "chat"];

/// What the run has measured so far.
#[derive(Debug, Default)]
pub(super) struct Acc {
    pub(super) done: usize,
    pub(super) groups: Vec<Group>,
    pub(super) lines: Vec<String>,
    pub(super) hard: Vec<(String, bool, String)>,
    pub(super) errors: Vec<String>,
    pub(super) status_ok: usize,
    pub(super) status_repaired: usize,
    pub(super) raw_valid: usize,
    pub(super) pre_verbatim: usize,
    pub(super) pre_quotes: usize,
    pub(super) doc_verbatim: usize,
    pub(super) doc_quotes: usize,
    pub(super) doc_ellipsis_only: usize,
    pub(super) llm_post_verbatim: usize,
    pub(super) llm_post_quotes: usize,
    pub(super) dropped: usize,
    pub(super) truncated: usize,
    pub(super) cut_off: usize,
    pub(super) sentiment_ok: usize,
    pub(super) summary_lang_ok: usize,
    pub(super) gen_tokens: usize,
    pub(super) llm_ms_total: f64,
    pub(super) prompt_tokens: usize,
    pub(super) prompt_ms: f64,
    pub(super) decode_tokens: usize,
    pub(super) decode_ms: f64,
    pub(super) e2e: Vec<f64>,
    pub(super) extractor_due_met: usize,
    pub(super) extractor_due_all: usize,
    pub(super) extractor_due_misses: Vec<String>,
    pub(super) timing: Vec<Timing>,
    pub(super) cpu_total: f64,
}

/// One timing call: language, minutes, spoken ms, segments, seconds end to end, the LLM run, rules ms.
pub(super) type Timing = (&'static str, i64, i64, usize, f64, LlmRun, f64, f64, f64);

/// What the report says about the run besides the measurements.
pub(super) struct Ctx {
    pub(super) model: String,
    pub(super) threads: String,
    pub(super) total: usize,
    pub(super) load_s: f64,
    pub(super) lexicon_entries: usize,
}

/// `analysis` for the 0.5B model, `analysis-<model>` for any other.
pub(super) fn report_name(model: &str) -> String {
    if model == "llm-small" {
        "analysis".to_string()
    } else {
        format!("analysis-{model}")
    }
}

pub(super) fn report(a: &Acc, ctx: &Ctx) -> Report {
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
         end to end = llm::analyse + extract_tasks + the risk engine over every segment + merge_tasks / merge_risk_tags (no database). \
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
    if !assist_analysis::llm::trusts_risk_tags(args_model) {
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

/// Keep only the timing calls' figures and notes (`--timing-only`: no
/// transcript was scored, so the quality figures would be empty ratios).
pub(super) fn timing_report(r: &mut Report, model: &str, threads: &str) {
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
