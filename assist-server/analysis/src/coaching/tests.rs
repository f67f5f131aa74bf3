use super::aggregate::{CallRecord, Period, aggregate, rep_reports, team_reports};
use super::*;

use Speaker::{Customer as C, Rep as R, Unknown as U};

fn s(start_ms: i64, end_ms: i64, speaker: Speaker, text: &str) -> Segment<'_> {
    Segment {
        start_ms,
        end_ms,
        speaker,
        text,
    }
}

fn run(segments: &[Segment<'_>]) -> CallMetrics {
    analyze_call(segments, &CoachingOptions::default())
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn empty_call() {
    let m = run(&[]);
    assert_eq!(m, CallMetrics::default());
    let m = analyze_call(
        &[],
        &CoachingOptions {
            call_duration_ms: Some(60_000),
            ..Default::default()
        },
    );
    assert_eq!(m.duration_ms, 60_000);
    assert_eq!(m.silence_ms, 60_000);
    assert!(close(m.silence_share, 1.0));
    assert_eq!(m.talk_listen_ratio, None);
}

#[test]
fn one_line() {
    let m = run(&[s(1_000, 4_000, R, "您好，这里是某某公司，请问是王先生吗？")]);
    assert_eq!(m.duration_ms, 3_000);
    assert_eq!(m.rep_talk_ms, 3_000);
    assert_eq!(m.customer_talk_ms, 0);
    assert_eq!(m.talk_listen_ratio, None);
    assert!(close(m.rep_talk_share, 1.0));
    assert_eq!(m.turn_count, 1);
    assert_eq!(m.longest_rep_monologue_ms, 3_000);
    assert_eq!(m.rep_questions, 1);
    assert_eq!(m.silence_ms, 0);
    assert!(m.customer_sentiment.is_empty());
    assert_eq!(m.sentiment_trend, None);
    // 16 CJK characters in 3 s = 320 per minute.
    assert!(close(m.rep_zh_chars_per_min, 320.0));
    assert_eq!(m.rep_en_words_per_min, None);
}

#[test]
fn talk_silence_turns_and_monologues() {
    let segs = [
        s(0, 10_000, R, "我先介绍一下我们的产品"),
        s(10_500, 20_000, R, "它主要有三个功能"),
        s(23_000, 24_000, C, "嗯"), // backchannel after a pause: talk, not a turn
        s(25_000, 30_000, R, "您看怎么样"),
        s(32_000, 40_000, C, "听起来不错，价格是多少"),
        s(45_000, 50_000, R, "一年三万"),
    ];
    let m = run(&segs);
    assert_eq!(m.duration_ms, 50_000);
    assert_eq!(m.rep_talk_ms, 10_000 + 9_500 + 5_000 + 5_000);
    assert_eq!(m.customer_talk_ms, 1_000 + 8_000);
    assert_eq!(m.silence_ms, 500 + 3_000 + 1_000 + 2_000 + 5_000);
    assert_eq!(m.longest_silence_ms, 5_000);
    assert!(close(m.silence_share, 11_500.0 / 50_000.0));
    assert!(close(m.talk_listen_ratio, 29_500.0 / 9_000.0));
    assert_eq!(m.turn_count, 3);
    // 0–20 s is one monologue; the 5 s pause before 25 s does not exceed 5 s.
    assert_eq!(m.longest_rep_monologue_ms, 30_000);
    assert_eq!(m.longest_customer_monologue_ms, 8_000);
    assert_eq!(m.rep_questions, 1);
    assert_eq!(m.customer_questions, 1);
    assert_eq!(m.rep_interruptions + m.customer_interruptions, 0);
}

#[test]
fn long_pauses_split_monologues() {
    let m = run(&[s(0, 10_000, R, "第一段"), s(20_000, 25_000, R, "第二段")]);
    assert_eq!(m.turn_count, 1);
    assert_eq!(m.longest_rep_monologue_ms, 10_000);
}

#[test]
fn interruptions_and_overlap() {
    let segs = [
        s(0, 5_000, R, "我们这个方案呢主要是"),
        s(4_000, 6_000, C, "等一下，我想问一下价格"), // starts before the rep ends
        s(6_100, 9_000, R, "价格是每年三万"),         // within 200 ms
        s(9_500, 12_000, C, "太贵了"),                // 500 ms later: fine
        s(12_000, 14_000, U, "（杂音）"),
        s(14_050, 15_000, R, "我们可以打折"), // after an unknown: not counted
    ];
    let m = run(&segs);
    assert_eq!(m.customer_interruptions, 1);
    assert_eq!(m.rep_interruptions, 1);
    assert_eq!(m.overlap_ms, 1_000);
    assert_eq!(m.rep_talk_ms, 5_000 + 2_900 + 950);
    assert_eq!(m.customer_talk_ms, 2_000 + 2_500);
    assert_eq!(m.unknown_talk_ms, 2_000);
    assert_eq!(m.turn_count, 6);
    let gap = analyze_call(
        &segs,
        &CoachingOptions {
            interruption_gap_ms: 1_000,
            ..Default::default()
        },
    );
    assert_eq!(gap.customer_interruptions, 2);
}

#[test]
fn backchannels_are_not_interruptions() {
    let segs = [
        s(0, 10_000, R, "这个产品的优势主要在三个方面"),
        s(3_000, 3_500, C, "嗯嗯"),
        s(6_000, 6_400, C, "对"),
        s(8_000, 8_300, C, "uh-huh"),
        s(10_100, 12_000, R, "第一是价格"),
    ];
    let m = run(&segs);
    assert_eq!(m.customer_interruptions, 0);
    assert_eq!(m.rep_interruptions, 0);
    assert_eq!(m.turn_count, 1);
    assert_eq!(m.longest_rep_monologue_ms, 12_000);
    assert_eq!(m.customer_talk_ms, 500 + 400 + 300);
    for (text, want) in [
        ("嗯", true),
        ("对对对。", true),
        ("好的", true),
        ("OK", true),
        ("Mm-hmm", true),
        ("", false),
        ("好的，我明天发您", false),
        ("Yes, send it", false),
    ] {
        assert_eq!(is_backchannel(text), want, "{text:?}");
    }
}

#[test]
fn overlapping_segments_of_one_speaker_count_once() {
    let m = run(&[
        s(0, 10_000, R, "a b c"),
        s(5_000, 12_000, R, "d e f"),
        s(2_000, 3_000, R, "g"),
    ]);
    assert_eq!(m.rep_talk_ms, 12_000);
    assert_eq!(m.silence_ms, 0);
    assert_eq!(m.segment_count, 3);
}

#[test]
fn reversed_and_unsorted_segments() {
    let m = run(&[
        s(5_000, 6_000, C, "好"),
        s(3_000, 1_000, R, "坏数据"),
        s(0, 1_000, R, "您好"),
    ]);
    assert_eq!(m.rep_talk_ms, 1_000); // the reversed one is zero-length
    assert_eq!(m.duration_ms, 6_000);
    assert_eq!(m.silence_ms, 4_000);
}

#[test]
fn recording_length_adds_leading_and_trailing_silence() {
    let m = analyze_call(
        &[s(5_000, 10_000, R, "您好")],
        &CoachingOptions {
            call_duration_ms: Some(30_000),
            ..Default::default()
        },
    );
    assert_eq!(m.duration_ms, 30_000);
    assert_eq!(m.silence_ms, 25_000);
    assert_eq!(m.longest_silence_ms, 20_000);
}

#[test]
fn questions() {
    for (text, want) in [
        ("价格是多少？", true),
        ("价格是多少", true),
        ("您觉得怎么样", true),
        ("您是王先生吗", true),
        ("有没有预算", true),
        ("您那边方便吗。", true),
        ("您几点有空", true),
        ("没什么问题", false),
        ("什么都可以", false),
        ("我不知道怎么办", false),
        ("好的，我明天发您", false),
        ("What is your budget", true),
        ("So how many users do you have", true),
        ("Do you have a minute", true),
        ("Is that right", true),
        ("Can we meet tomorrow", true),
        ("You have a minute?", true),
        ("I know what you mean", false),
        ("Thanks, that works", false),
        ("Do", false),
        ("", false),
    ] {
        assert_eq!(is_question(text), want, "{text:?}");
    }
    let m = run(&[s(
        0,
        5_000,
        R,
        "您好。请问您贵姓？现在方便吗？我们聊两分钟。What's your timeline?",
    )]);
    assert_eq!(m.rep_questions, 3);
}

#[test]
fn speech_rate_by_language() {
    let m = run(&[
        s(0, 30_000, R, &"好".repeat(100)),
        s(
            30_000,
            60_000,
            R,
            "we can do this for you by next week then",
        ),
        s(60_000, 90_000, C, "okay"),
    ]);
    assert!(close(m.rep_zh_chars_per_min, 200.0));
    assert!(close(m.rep_en_words_per_min, 20.0));
    assert!(close(m.customer_en_words_per_min, 2.0));
    assert_eq!(m.customer_zh_chars_per_min, None);
}

#[test]
fn sentiment_trend() {
    let segs = [
        s(0, 10_000, C, "太贵了，我很失望"),
        s(10_000, 20_000, R, "我理解"),
        s(40_000, 50_000, C, "嗯"),
        s(50_000, 60_000, R, "我们可以打八折"),
        s(80_000, 90_000, C, "那挺好的，谢谢"),
    ];
    let m = run(&segs);
    assert_eq!(m.customer_sentiment.len(), 3);
    assert_eq!(m.customer_sentiment[0].score, -1.0);
    assert_eq!(m.customer_sentiment[2].score, 1.0);
    assert_eq!(m.customer_sentiment[2].segment_index, 4);
    assert!(close(m.customer_sentiment_mean, 0.0));
    let t = m.sentiment_trend.unwrap();
    assert_eq!(
        (t.first_third_mean, t.last_third_mean, t.delta),
        (-1.0, 1.0, 2.0)
    );
    assert_eq!(t.direction, TrendDirection::Improving);

    let reversed = [
        s(0, 10_000, C, "Sounds great"),
        s(80_000, 90_000, C, "This is too expensive, I'm disappointed"),
    ];
    assert_eq!(
        run(&reversed).sentiment_trend.unwrap().direction,
        TrendDirection::Declining
    );
    let flat = [s(0, 10_000, C, "ok"), s(80_000, 90_000, C, "fine")];
    assert_eq!(
        run(&flat).sentiment_trend.unwrap().direction,
        TrendDirection::Steady
    );
    // Customer only in the first third: no trend.
    let early = [s(0, 10_000, C, "太贵了"), s(10_000, 90_000, R, "我们看看")];
    assert_eq!(run(&early).sentiment_trend, None);
}

/// A two-hour call built programmatically: 2 400 exchanges of 3 s.
#[test]
fn two_hour_call() {
    let texts = [
        "您好，请问预算大概多少？",
        "大概十万左右，不过有点贵",
        "我们可以分期付款",
        "那挺好的",
    ];
    let segs: Vec<Segment<'_>> = (0..2_400)
        .map(|i| {
            let start = i as i64 * 3_000;
            s(
                start,
                start + 2_500,
                if i % 2 == 0 { R } else { C },
                texts[i % 4],
            )
        })
        .collect();
    let m = run(&segs);
    assert_eq!(m.duration_ms, 2_399 * 3_000 + 2_500);
    assert_eq!(m.rep_talk_ms, 1_200 * 2_500);
    assert_eq!(m.customer_talk_ms, 1_200 * 2_500);
    assert!(close(m.talk_listen_ratio, 1.0));
    assert_eq!(m.turn_count, 2_400);
    assert_eq!(m.rep_questions, 600);
    assert_eq!(m.rep_interruptions + m.customer_interruptions, 0);
    assert_eq!(m.silence_ms, 2_399 * 500);
    assert_eq!(m.longest_silence_ms, 500);
    assert_eq!(m.longest_rep_monologue_ms, 2_500);
    assert_eq!(m.customer_sentiment.len(), 1_200);
    assert_eq!(m.sentiment_trend.unwrap().direction, TrendDirection::Steady);
}

#[test]
fn serialises_with_units_in_names() {
    let m = run(&[s(0, 1_000, R, "您好"), s(1_000, 2_000, C, "你好")]);
    let json = serde_json::to_value(&m).unwrap();
    for key in [
        "duration_ms",
        "rep_talk_ms",
        "customer_talk_ms",
        "talk_listen_ratio",
        "longest_rep_monologue_ms",
        "rep_questions",
        "rep_interruptions",
        "rep_zh_chars_per_min",
        "silence_ms",
        "silence_share",
        "longest_silence_ms",
        "turn_count",
        "customer_sentiment",
        "sentiment_trend",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    let back: CallMetrics = serde_json::from_value(json).unwrap();
    assert_eq!(back, m);
}

fn record(call: &str, rep: &str, team: Option<&str>, day: i8, m: CallMetrics) -> CallRecord {
    CallRecord {
        call_id: call.into(),
        rep_id: rep.into(),
        team_id: team.map(Into::into),
        started_at: jiff::civil::date(2025, 3, day)
            .at(10, 0, 0, 0)
            .in_tz("Asia/Shanghai")
            .unwrap()
            .timestamp(),
        metrics: m,
    }
}

#[test]
fn aggregation() {
    let a = run(&[
        s(0, 60_000, R, "我们的产品怎么样？"),
        s(60_000, 90_000, C, "挺好的"),
    ]);
    let b = run(&[s(0, 30_000, R, "您好"), s(30_000, 90_000, C, "太贵了")]);
    let c = run(&[s(0, 10_000, R, "hello")]); // no customer: no ratio
    let agg = aggregate([&a, &b, &c]);
    assert_eq!(agg.call_count, 3);
    assert_eq!(agg.total_rep_talk_ms, 100_000);
    assert_eq!(agg.total_customer_talk_ms, 90_000);
    assert!(close(agg.mean_talk_listen_ratio, (2.0 + 0.5) / 2.0));
    assert!(close(
        agg.mean_rep_talk_share,
        (60.0 / 90.0 + 30.0 / 90.0 + 1.0) / 3.0
    ));
    assert!(close(agg.overall_rep_talk_share, 100.0 / 190.0));
    assert_eq!(agg.max_longest_rep_monologue_ms, 60_000);
    assert_eq!(agg.total_rep_questions, 1);
    assert!(close(agg.rep_questions_per_hour, 3_600_000.0 / 190_000.0));
    assert!(close(agg.mean_customer_sentiment, 0.0));
    assert!(close(agg.mean_duration_ms, 190_000.0 / 3.0));
    assert_eq!(aggregate([]), Default::default());

    let records = vec![
        record("c1", "rep-a", Some("t1"), 3, a.clone()),
        record("c2", "rep-b", Some("t1"), 4, b.clone()),
        record("c3", "rep-a", Some("t1"), 20, c.clone()),
        record("c4", "rep-z", None, 5, c.clone()),
    ];
    let march_first_half = Period {
        from: Some("2025-03-01T00:00:00+08:00".parse().unwrap()),
        to: Some("2025-03-15T00:00:00+08:00".parse().unwrap()),
    };
    let reps = rep_reports(&records, march_first_half);
    let ids: Vec<(&str, usize)> = reps
        .iter()
        .map(|r| (r.rep_id.as_str(), r.metrics.call_count))
        .collect();
    assert_eq!(ids, [("rep-a", 1), ("rep-b", 1), ("rep-z", 1)]);
    assert_eq!(
        rep_reports(&records, Period::default())[0]
            .metrics
            .call_count,
        2
    );
    let teams = team_reports(&records, Period::default());
    assert_eq!(teams.len(), 1);
    assert_eq!(teams[0].team_id, "t1");
    assert_eq!(teams[0].metrics.call_count, 3);
    assert_eq!(teams[0].reps.len(), 2);
    assert!(
        team_reports(
            &records,
            Period {
                from: march_first_half.to,
                to: None
            }
        )[0]
        .reps
        .len()
            == 1
    );
    let json = serde_json::to_value(&teams[0]).unwrap();
    assert_eq!(json["metrics"]["call_count"], 3);
    assert!(json["metrics"].get("mean_talk_listen_ratio").is_some());
}
