//! The labelled set: transcripts with their reference tasks, risk tags and
//! sentiment (`eval/data/analysis/transcripts.jsonl`), as the product's
//! [`Transcript`], and the long synthetic calls the timing is measured on.

use std::path::Path;

use anyhow::{Context, bail};
use assist_analysis::llm::{Transcript, Turn};
use jiff::Timestamp;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Item {
    pub(super) id: String,
    pub(super) language: String,
    pub(super) kind: String,
    pub(super) started_at: String,
    pub(super) segments: Vec<Segment>,
    pub(super) reference: Reference,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Segment {
    pub(super) start_ms: i64,
    pub(super) end_ms: i64,
    pub(super) speaker: String,
    pub(super) text: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Reference {
    pub(super) tasks: Vec<RefTask>,
    pub(super) risk_tags: Vec<RefTag>,
    pub(super) sentiment: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct RefTask {
    pub(super) title: String,
    pub(super) owner: String,
    pub(super) due: Option<String>,
    pub(super) due_text: Option<String>,
    pub(super) source_quote: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct RefTag {
    pub(super) category: String,
}

pub(super) fn load(data: &Path) -> anyhow::Result<Vec<Item>> {
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
pub(super) fn zone_of(started_at: &str) -> anyhow::Result<(String, i32, i64)> {
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

pub(super) fn transcript_of(item: &Item) -> Transcript {
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

/// A synthetic call of about `target_ms` in one language: the set's calls in
/// file order, 1 s apart, cut at the last segment ending by the target.
pub(super) fn long_call(
    items: &[Item],
    language: &str,
    target_ms: i64,
) -> Option<(Transcript, i64, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::score::Due;

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
}
