//! Running the model over a transcript: chunks for long calls, a guard
//! against looping answers, one repair turn, and the merge of chunk answers.

use super::*;

/// Split turns into chunks whose prompts fit `budget` tokens (estimated:
/// one token per CJK character, one per four other characters).
pub fn chunks(turns: &[Turn], budget: usize) -> Vec<&[Turn]> {
    let cost = |t: &Turn| {
        let cjk = t.text.chars().filter(|c| *c as u32 >= 0x2E80).count();
        let other = t.text.chars().count() - cjk;
        cjk + other / 4 + 8
    };
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, t) in turns.iter().enumerate() {
        let c = cost(t);
        if used + c > budget && i > start {
            out.push(&turns[start..i]);
            start = i;
            used = 0;
        }
        used += c;
    }
    if start < turns.len() {
        out.push(&turns[start..]);
    }
    out
}

/// Watches an answer as it streams and says when it has started looping:
/// small models sometimes repeat one JSON line (the same risk tag, say)
/// until the token limit, which on a 5-minute call doubled the analysis
/// time. A "unit" is the text up to a newline or a closing brace; the third
/// copy of a unit of 16 characters or more stops the answer, and so does a
/// unit whose last 24 characters came twice before in it (a phrase looping
/// inside one string). The parser closes what came before (repeated list
/// items are merged away anyway).
#[derive(Debug, Default)]
pub(crate) struct RepeatGuard {
    unit: String,
    /// Characters in `unit` (counted as pushed, not recounted per character).
    unit_chars: usize,
    seen: std::collections::HashMap<String, usize>,
}

impl RepeatGuard {
    const MIN_CHARS: usize = 16;
    const COPIES: usize = 3;

    /// A loop inside one unit ("the rep the rep the rep …" in a string):
    /// its last 24 characters already occur twice before in it.
    fn looping_inside(&self) -> bool {
        const TAIL: usize = 24;
        let chars = self.unit_chars;
        if chars < 4 * TAIL || !chars.is_multiple_of(8) {
            return false;
        }
        let start = self
            .unit
            .char_indices()
            .nth(chars - TAIL)
            .map_or(0, |(i, _)| i);
        self.unit.matches(&self.unit[start..]).count() >= Self::COPIES
    }

    /// Feed a text delta; `true` once the answer is looping.
    pub(crate) fn push(&mut self, delta: &str) -> bool {
        for c in delta.chars() {
            if c != '\n' {
                self.unit.push(c);
                self.unit_chars += 1;
                if self.looping_inside() {
                    return true;
                }
            }
            if c == '\n' || c == '}' {
                let unit = self.unit.trim().trim_start_matches(',').trim().to_string();
                self.unit.clear();
                self.unit_chars = 0;
                if unit.chars().count() >= Self::MIN_CHARS {
                    let n = self.seen.entry(unit).or_insert(0);
                    *n += 1;
                    if *n >= Self::COPIES {
                        return true;
                    }
                }
            }
        }
        false
    }
}

/// One model answer, stopped early if it starts looping ([`RepeatGuard`]);
/// the flag says it was.
pub(crate) async fn guarded_answer(
    llm: &LlmHandle,
    messages: Vec<Message>,
    opts: GenerateOptions,
) -> Result<(assist_models::llm::Generation, bool), assist_models::Error> {
    let mut stream = llm.chat_stream(messages, opts)?;
    let mut guard = RepeatGuard::default();
    while let Some(delta) = stream.next().await {
        if guard.push(&delta) {
            return Ok((stream.cancel().await?, true));
        }
    }
    Ok((stream.finish().await?, false))
}

/// The user turn that asks again after an answer that did not parse.
pub const REPAIR_REQUEST: &str = "That was not one valid JSON object. Answer again with only the JSON object, following the schema.";

/// Tokens of transcript per prompt; longer transcripts are chunked.
pub const CHUNK_TOKENS: usize = 2500;
/// Most tokens the model may answer per chunk.
pub const ANSWER_TOKENS: usize = 700;

/// Run the model over a transcript (map-reduce when long). Errors of the
/// model itself (overloaded, stopped) are returned; bad answers are not errors.
pub async fn analyse(
    llm: &LlmHandle,
    model: &str,
    t: &Transcript,
) -> Result<(LlmAnalysis, LlmRun), assist_models::Error> {
    let started = std::time::Instant::now();
    let mut run = LlmRun {
        model: model.to_string(),
        status: "ok".into(),
        ..LlmRun::default()
    };
    let mut merged = LlmAnalysis::default();
    let mut summaries = Vec::new();
    let parts = chunks(&t.turns, CHUNK_TOKENS);
    run.chunks = parts.len();
    let mut any_ok = false;
    for part in &parts {
        let messages = prompt(t, part);
        let (answer, looped) = guarded_answer(
            llm,
            messages.clone(),
            GenerateOptions::greedy(ANSWER_TOKENS),
        )
        .await?;
        run.stopped_repeating += usize::from(looped);
        run.calls += 1;
        run.prompt_tokens += answer.prompt_tokens;
        run.cached_prompt_tokens += answer.cached_prompt_tokens;
        run.generated_tokens += answer.generated_tokens;
        let mut parsed = parse_answer(&answer.text);
        if parsed.is_none() {
            // One repair turn: show the answer, ask for the JSON alone.
            let mut repair = messages;
            repair.push(Message::assistant(answer.text.clone()));
            repair.push(Message::user(REPAIR_REQUEST));
            let (again, looped) =
                guarded_answer(llm, repair, GenerateOptions::greedy(ANSWER_TOKENS)).await?;
            run.stopped_repeating += usize::from(looped);
            run.calls += 1;
            run.prompt_tokens += again.prompt_tokens;
            run.cached_prompt_tokens += again.cached_prompt_tokens;
            run.generated_tokens += again.generated_tokens;
            parsed = parse_answer(&again.text);
            if parsed.is_some() {
                run.status = "repaired".into();
            }
        }
        let Some((mut a, truncated)) = parsed else {
            continue;
        };
        any_ok = true;
        run.truncated += usize::from(truncated);
        run.dropped_quotes += verify_quotes(&mut a, part);
        if !a.summary.is_empty() {
            summaries.push(a.summary.clone());
        }
        merge_into(&mut merged, a);
    }
    if !any_ok {
        run.status = "invalid_output".into();
    } else if summaries.len() > 1 {
        // Reduce: one summary and next action from the chunk summaries.
        let lang = if t.language == "zh" {
            "Simplified Chinese"
        } else {
            "English"
        };
        let messages = vec![
            Message::system(format!(
                "Combine partial summaries of one sales conversation into one summary of 2-4 sentences in {lang}. Answer with JSON: {{\"summary\": \"...\", \"next_best_action\": \"...\"}}"
            )),
            Message::user(summaries.join("\n")),
        ];
        let answer = llm.chat(messages, GenerateOptions::greedy(300)).await?;
        run.calls += 1;
        run.prompt_tokens += answer.prompt_tokens;
        run.cached_prompt_tokens += answer.cached_prompt_tokens;
        run.generated_tokens += answer.generated_tokens;
        if let Some((a, _)) = parse_answer(&answer.text) {
            if !a.summary.is_empty() {
                merged.summary = a.summary;
            }
            if !a.next_best_action.is_empty() {
                merged.next_best_action = a.next_best_action;
            }
        }
    }
    run.ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok((merged, run))
}

pub(crate) fn merge_into(into: &mut LlmAnalysis, a: LlmAnalysis) {
    if into.summary.is_empty() {
        into.summary = a.summary;
    } else if !a.summary.is_empty() {
        into.summary = format!("{} {}", into.summary, a.summary);
    }
    for n in a.customer_needs {
        if !into.customer_needs.contains(&n) {
            into.customer_needs.push(n);
        }
    }
    for o in a.objections {
        if !into.objections.iter().any(|x| x.objection == o.objection) {
            into.objections.push(o);
        }
    }
    for t in a.tasks {
        let dup = into.tasks.iter().any(|x| {
            x.title == t.title || (x.source_quote.is_some() && x.source_quote == t.source_quote)
        });
        if !dup {
            into.tasks.push(t);
        }
    }
    for r in a.risk_tags {
        if !into
            .risk_tags
            .iter()
            .any(|x| x.category == r.category && x.evidence_quote == r.evidence_quote)
        {
            into.risk_tags.push(r);
        }
    }
    // The last chunk's view of how the conversation ends.
    if !a.sentiment.is_empty() {
        into.sentiment = a.sentiment;
    }
    if !a.next_best_action.is_empty() {
        into.next_best_action = a.next_best_action;
    }
}
