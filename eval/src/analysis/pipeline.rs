//! One transcript through the product's post-call analysis, as the server's
//! `analyze` job runs it: the LLM ([`analyse`]), the rules (task extractor,
//! risk engine) and the merges, timed; and the 1-, 5- and 15-minute timing
//! calls built from the set.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use assist_analysis::llm::{LlmAnalysis, LlmRun, Transcript, analyse};
use assist_analysis::merge::{RiskTag, merge_risk_tags, merge_tasks};
use assist_analysis::rules::extract_tasks;
use assist_models::llm::LlmHandle;
use assist_risk::{RiskEngine, Speaker};

use super::data::{Item, long_call, zone_of};
use super::figures::Acc;
use super::recorder::{Call, raw_stats};

/// Everything one transcript's analysis produced, with its times.
pub(super) struct Outcome {
    pub(super) llm: LlmAnalysis,
    pub(super) run: LlmRun,
    pub(super) error: Option<String>,
    pub(super) rules: Vec<assist_analysis::rules::RuleTask>,
    pub(super) engine: Vec<(String, String, RiskTag)>,
    pub(super) merged_tasks: Vec<assist_analysis::merge::MergedTask>,
    pub(super) merged_tags: Vec<RiskTag>,
    pub(super) llm_ms: f64,
    /// CPU seconds of this process (all threads) for the whole analysis.
    pub(super) cpu_s: f64,
    pub(super) rules_ms: f64,
    pub(super) calls: Vec<Call>,
}

pub(super) struct Pipeline {
    pub(super) llm: LlmHandle,
    pub(super) log: Arc<Mutex<Vec<Call>>>,
    pub(super) engine: RiskEngine,
    pub(super) model: String,
    pub(super) rt: tokio::runtime::Runtime,
}

impl Pipeline {
    /// Analyse one conversation the way the server's `analyze` job does.
    pub(super) fn run(&self, t: &Transcript, started_ms: i64, zone: &str) -> Outcome {
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
            let role = Speaker::parse(&turn.speaker).unwrap_or(Speaker::Unknown);
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
                let doc = RiskTag {
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
            assist_analysis::llm::trusts_risk_tags(&self.model),
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
pub(super) fn time_calls(
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
