//! The report of `live-latency`: per level p50 / p95 and the parts of the
//! latency, the largest sustained level, and how the run was made.

use std::collections::BTreeMap;

use super::calls::CallPlan;
use super::client::Mode;
use super::measure::Summary;
use super::{LiveArgs, SEARCH_TARGET_MS};
use crate::report::{Better, Figure, Report};

/// One concurrency level's results.
#[derive(Debug)]
pub struct Level {
    pub calls: usize,
    pub utterances: usize,
    /// Utterance end (or text sent) → suggestions.
    pub suggest: Summary,
    /// Its p95 with missing suggestions counted as infinitely late.
    pub p95_all_ms: f64,
    pub to_final: Summary,
    pub final_to_suggestions: Summary,
    /// The rep's risky lines.
    pub risky_lines: usize,
    /// Risky line end → risk finding on the phone.
    pub risk_phone: Summary,
    /// Risky line end → alert on the manager's SSE stream.
    pub risk_sse: Summary,
    /// Close codes (with reason) and how many calls got each.
    pub closes: BTreeMap<String, usize>,
    pub failures: Vec<String>,
    /// `error` frames from the server, by message.
    pub errors: BTreeMap<String, usize>,
    pub dropped_partials: u64,
    pub calls_ended: usize,
    /// The first call's utterances in order: seconds to suggestions.
    pub first_call: Vec<Option<f64>>,
    /// The customer finals of the first call, as the server transcribed them.
    pub heard: String,
    pub load_start: String,
    pub load_end: String,
    /// This process's CPU time over wall time, in cores.
    pub cores_busy: f64,
    /// The live recogniser's highest busy share over a 20 s window.
    pub asr_busy: f64,
    pub wall_s: f64,
}

impl Level {
    pub fn sustained(&self, bound_ms: f64) -> bool {
        self.p95_all_ms <= bound_ms
    }
}

pub fn build(
    args: &LiveArgs,
    send: Mode,
    levels: &[Level],
    load_at_start: &str,
    plan: &CallPlan,
) -> Report {
    let audio = send == Mode::Audio;
    let name = match (audio, args.speech_model.as_str()) {
        (false, _) => "live-latency-text".to_string(),
        (true, "asr" | "whisper-base") => "live-latency".to_string(),
        (true, m) => format!("live-latency-{m}"),
    };
    let what = if audio {
        format!(
            "Customer utterance end in the audio → suggestions on the phone, over WebSocket /v1/live on the real server \
             (SQLite, Whisper `{}` streaming both legs, hybrid search over the approved 333-script sample library, risk check), \
             N concurrent simulated calls streaming PCM16 at real time",
            args.speech_model
        )
    } else {
        "Customer text turn sent (on-device ASR) → suggestions on the phone, over WebSocket /v1/live on the real server \
         (SQLite, hybrid search over the approved 333-script sample library, risk check), N concurrent simulated calls"
            .to_string()
    };
    let mut r = Report::new(name, what);
    let sustained = levels
        .iter()
        .take_while(|l| l.sustained(args.bound_ms))
        .last()
        .map_or(0, |l| l.calls);
    for l in levels {
        let n = l.calls;
        let head = if audio {
            "utterance end → suggestions"
        } else {
            "text sent → suggestions"
        };
        r.push(Figure::new(
            format!("N={n}: {head} p50"),
            "ms",
            l.suggest.p50_ms,
            Better::Lower,
        ));
        let p95 = Figure::new(
            format!("N={n}: {head} p95 (no suggestion = ∞)"),
            "ms",
            l.p95_all_ms,
            Better::Lower,
        );
        r.push(if audio {
            p95.peer("bound for a sustained level", args.bound_ms)
        } else {
            p95.peer("architecture target", SEARCH_TARGET_MS)
        });
        if audio {
            r.push(Figure::new(
                format!("N={n}: utterance end → final p50 (ASR)"),
                "ms",
                l.to_final.p50_ms,
                Better::Lower,
            ));
            r.push(Figure::new(
                format!("N={n}: utterance end → final p95 (ASR)"),
                "ms",
                l.to_final.p95_ms,
                Better::Lower,
            ));
            r.push(
                Figure::new(
                    format!("N={n}: final → suggestions p95"),
                    "ms",
                    l.final_to_suggestions.p95_ms,
                    Better::Lower,
                )
                .peer("architecture target", SEARCH_TARGET_MS),
            );
        }
        if l.risky_lines > 0 {
            let head = if audio {
                "risky spoken phrase end"
            } else {
                "risky text turn sent"
            };
            r.push(Figure::new(
                format!("N={n}: {head} → manager's SSE alert p50"),
                "ms",
                l.risk_sse.p50_ms,
                Better::Lower,
            ));
            r.push(
                Figure::new(
                    format!("N={n}: {head} → manager's SSE alert p95"),
                    "ms",
                    l.risk_sse.p95_ms,
                    Better::Lower,
                )
                .peer("target", 2000.0),
            );
            r.push(Figure::new(
                format!("N={n}: {head} → risk finding on the phone p95"),
                "ms",
                l.risk_phone.p95_ms,
                Better::Lower,
            ));
            r.push(Figure::new(
                format!("N={n}: risky lines without an alert on the stream"),
                "count",
                l.risk_sse.missing as f64,
                Better::Lower,
            ));
        }
        r.push(Figure::new(
            format!("N={n}: customer utterances without suggestions"),
            "count",
            l.suggest.missing as f64,
            Better::Lower,
        ));
        if audio {
            r.push(Figure::new(
                format!("N={n}: live recogniser busy, highest 20 s share"),
                "%",
                l.asr_busy * 100.0,
                Better::Lower,
            ));
        }
        r.push(Figure::new(
            format!("N={n}: server process CPU"),
            "cores",
            l.cores_busy,
            Better::Lower,
        ));
    }
    let ran_out = levels.last().is_some_and(|l| l.sustained(args.bound_ms));
    r.push(Figure::new(
        format!(
            "sustained concurrent live calls (p95 ≤ {:.0} ms){}",
            args.bound_ms,
            if ran_out { ", at least" } else { "" }
        ),
        "calls",
        sustained as f64,
        Better::Higher,
    ));
    for l in levels {
        r.note(format!(
            "N={}: {} customer utterances, {} with suggestions (p50 {:.0} ms, p95 of those {:.0} ms); final → suggestions p50 {:.0} ms; \
             {} of {} calls got `ended`; closes {:?}; server error frames {:?}; partials dropped {}; {:.0} s wall; \
             load average {} → {} (1/5/15 min){}",
            l.calls,
            l.utterances,
            l.suggest.arrived,
            l.suggest.p50_ms,
            l.suggest.p95_ms,
            l.final_to_suggestions.p50_ms,
            l.calls_ended,
            l.calls,
            l.closes,
            l.errors,
            l.dropped_partials,
            l.wall_s,
            l.load_start,
            l.load_end,
            if l.failures.is_empty() {
                String::new()
            } else {
                format!("; client side: {}", l.failures.join("; "))
            }
        ));
    }
    if let Some(l) = levels.first() {
        let seq: Vec<String> = l
            .first_call
            .iter()
            .map(|v| v.map_or("none".into(), |s| format!("{s:.1}")))
            .collect();
        let said: Vec<&str> = plan.customer_turns().map(|t| t.text.as_str()).collect();
        r.note(format!(
            "First call at N={}, utterance by utterance, seconds to suggestions: {}. Said: «{}». {}",
            l.calls,
            seq.join(", "),
            clip(&said.join(" | "), 400),
            if audio {
                format!("Customer finals: «{}».", clip(&l.heard, 400))
            } else {
                String::new()
            }
        ));
    }
    let customer = plan.customer_turns().count();
    r.note(if audio {
        format!(
            "Calls: English, espeak-ng voices through the telephone band (rep male, customer female), rep and customer lines \
             alternating with {:.1} s pauses, ~{:.0} s and {customer} customer utterances per call (eval/data/asr/en.txt for \
             the rep, the English customer utterances of {} for the customer); both legs streamed in 200 ms PCM16 frames \
             (`per_speaker`), digital silence on the leg not speaking. The rep's second line in every call offers a side \
             deal in the sample lexicon's words (its end → the team manager's SSE alert is timed). Utterance ends are exact (clips trimmed to their speech \
             by energy). The frame holding an utterance's end is sent when that frame has been spoken, so up to 200 ms of \
             every figure is the phone's framing.",
            0.8,
            plan.duration_s,
            args.retrieval_data.join("queries.jsonl").display()
        )
    } else {
        format!(
            "Calls: text turns (`layout: none`), rep and customer lines alternating at a conversational pace, every line sent \
             when it would have ended; even calls Mandarin, odd calls English (customer lines: the queries of {}), \
             ~{:.0} s and {customer} customer turns per call.",
            args.retrieval_data.join("queries.jsonl").display(),
            plan.duration_s
        )
    });
    r.note(format!(
        "An utterance's suggestions are those of the last customer final that falls in it (earlier finals are prefixes \
         committed while it was spoken); the p95 counts an utterance without them as later than all, so a level with more \
         than 5% missing is not sustained. Levels stop at the first one whose p95 passes {:.0} ms{}.",
        args.bound_ms,
        if args.full_ladder { " (here: --full-ladder)" } else { "" }
    ));
    let cpus = r.machine.cpus;
    r.note(format!(
        "Load average {load_at_start} (1/5/15 min) at the start. Server, phones and any other work on the machine share \
         its {cpus} CPUs: on a 2-core machine that is also building or running other jobs, these figures are pessimistic."
    ));
    r
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
