use super::*;

/// Wednesday 2025-03-12 10:00 in Shanghai.
const WED: &str = "2025-03-12T10:00:00+08:00";
/// Sunday 2025-03-16 10:00.
const SUN: &str = "2025-03-16T10:00:00+08:00";
/// Monday 2025-03-17 10:00.
const MON: &str = "2025-03-17T10:00:00+08:00";

fn reference(at: &str) -> Zoned {
    reference_time(at, &org_time_zone(None).unwrap()).unwrap()
}

use DueKind::{Deadline as D, Point as P};
use Precision::{Day, Month, PartOfDay, Time as T, Week};

/// (input, matched text, kind, date, time, precision)
type Case = (
    &'static str,
    &'static str,
    DueKind,
    &'static str,
    Option<&'static str>,
    Precision,
);

fn check(at: &str, cases: &[Case]) {
    let reference = reference(at);
    for &(input, text, kind, date, time, precision) in cases {
        let found = find_due_dates(input, &reference);
        assert_eq!(found.len(), 1, "{input:?}: {found:#?}");
        let e = &found[0];
        assert_eq!(e.text, text, "{input:?}");
        assert_eq!(e.kind, kind, "{input:?}");
        let r = e.resolved().unwrap_or_else(|| panic!("{input:?}: {e:?}"));
        assert_eq!(r.date.to_string(), date, "{input:?}");
        assert_eq!(
            r.time.map(|t| t.strftime("%H:%M").to_string()).as_deref(),
            time,
            "{input:?}"
        );
        assert_eq!(r.precision, precision, "{input:?}");
        // `at` is the date at the time, or at 18:00.
        let want_at = r
            .date
            .to_datetime(r.time.unwrap_or(END_OF_BUSINESS_DAY))
            .to_zoned(reference.time_zone().clone())
            .unwrap()
            .timestamp();
        assert_eq!(r.at, want_at, "{input:?}");
    }
}

#[test]
fn chinese_relative_days() {
    check(
        WED,
        &[
            ("今天", "今天", P, "2025-03-12", None, Day),
            ("明天给您回电话", "明天", P, "2025-03-13", None, Day),
            ("后天", "后天", P, "2025-03-14", None, Day),
            ("大后天", "大后天", P, "2025-03-15", None, Day),
            ("昨天发的", "昨天", P, "2025-03-11", None, Day),
            ("明天前", "明天前", D, "2025-03-13", None, Day),
            ("今天之内", "今天之内", D, "2025-03-12", None, Day),
        ],
    );
}

#[test]
fn chinese_weeks_from_a_wednesday() {
    check(
        WED,
        &[
            ("下周三前", "下周三前", D, "2025-03-19", None, Day),
            ("下周三", "下周三", P, "2025-03-19", None, Day),
            ("下个礼拜一", "下个礼拜一", P, "2025-03-17", None, Day),
            ("下下周一", "下下周一", P, "2025-03-24", None, Day),
            ("这周五", "这周五", P, "2025-03-14", None, Day),
            ("本周五之前", "本周五之前", D, "2025-03-14", None, Day),
            ("这周一", "这周一", P, "2025-03-10", None, Day),
            ("周五前", "周五前", D, "2025-03-14", None, Day),
            ("星期天", "星期天", P, "2025-03-16", None, Day),
            ("周一", "周一", P, "2025-03-17", None, Day),
            ("周三", "周三", P, "2025-03-12", None, Day),
            ("周末", "周末", P, "2025-03-15", None, Day),
            ("周末前", "周末前", D, "2025-03-14", None, Day),
            ("下周末", "下周末", P, "2025-03-22", None, Day),
            ("下周", "下周", P, "2025-03-21", None, Week),
            ("本周内", "本周内", D, "2025-03-14", None, Week),
        ],
    );
}

#[test]
fn next_weekday_from_a_sunday_and_a_monday() {
    check(
        SUN,
        &[
            ("下周三", "下周三", P, "2025-03-19", None, Day),
            (
                "next Wednesday",
                "next Wednesday",
                P,
                "2025-03-19",
                None,
                Day,
            ),
            ("这周五", "这周五", P, "2025-03-14", None, Day),
            ("周五", "周五", P, "2025-03-21", None, Day),
            ("周末", "周末", P, "2025-03-16", None, Day),
            ("下周", "下周", P, "2025-03-21", None, Week),
            ("this week", "this week", P, "2025-03-16", None, Week),
        ],
    );
    check(
        MON,
        &[
            ("下周三", "下周三", P, "2025-03-26", None, Day),
            (
                "next Wednesday",
                "next Wednesday",
                P,
                "2025-03-26",
                None,
                Day,
            ),
            ("周三", "周三", P, "2025-03-19", None, Day),
            ("by Wednesday", "by Wednesday", D, "2025-03-19", None, Day),
        ],
    );
}

#[test]
fn chinese_months_and_days() {
    check(
        WED,
        &[
            ("月底", "月底", P, "2025-03-31", None, Day),
            ("月底前", "月底前", D, "2025-03-31", None, Day),
            ("这个月底", "这个月底", P, "2025-03-31", None, Day),
            ("下个月底", "下个月底", P, "2025-04-30", None, Day),
            ("月初", "月初", P, "2025-04-05", None, Day),
            ("下个月初", "下个月初", P, "2025-04-05", None, Day),
            ("月中", "月中", P, "2025-03-15", None, Day),
            ("下月中旬", "下月中旬", P, "2025-04-20", None, Day),
            ("3月底", "3月底", P, "2025-03-31", None, Day),
            ("二月底", "二月底", P, "2026-02-28", None, Day),
            ("下个月5号", "下个月5号", P, "2025-04-05", None, Day),
            ("下个月五号", "下个月五号", P, "2025-04-05", None, Day),
            ("本月二十号", "本月二十号", P, "2025-03-20", None, Day),
            ("3月15日", "3月15日", P, "2025-03-15", None, Day),
            ("三月十五号", "三月十五号", P, "2025-03-15", None, Day),
            ("三月十五", "三月十五", P, "2025-03-15", None, Day),
            ("3月10日", "3月10日", P, "2026-03-10", None, Day),
            ("2025年3月10日", "2025年3月10日", P, "2025-03-10", None, Day),
            (
                "二〇二六年一月二日",
                "二〇二六年一月二日",
                P,
                "2026-01-02",
                None,
                Day,
            ),
            ("15号", "15号", P, "2025-03-15", None, Day),
            ("十五号", "十五号", P, "2025-03-15", None, Day),
            ("二十一号前", "二十一号前", D, "2025-03-21", None, Day),
            ("三十一号", "三十一号", P, "2025-03-31", None, Day),
            ("10号", "10号", P, "2025-04-10", None, Day),
            ("十二号", "十二号", P, "2025-03-12", None, Day),
            ("下个月", "下个月", P, "2025-04-30", None, Month),
            ("本月内", "本月内", D, "2025-03-31", None, Month),
            ("年底", "年底", P, "2025-12-31", None, Day),
            ("年底前", "年底前", D, "2025-12-31", None, Day),
            ("明年年底", "明年年底", P, "2026-12-31", None, Day),
        ],
    );
}

#[test]
fn a_day_the_month_lacks_is_clamped() {
    check(
        "2025-04-12T10:00:00+08:00",
        &[("31号", "31号", P, "2025-04-30", None, Day)],
    );
    check(
        "2025-01-31T10:00:00+08:00",
        &[("下个月底", "下个月底", P, "2025-02-28", None, Day)],
    );
}

#[test]
fn chinese_times() {
    check(
        WED,
        &[
            (
                "明天下午三点",
                "明天下午三点",
                P,
                "2025-03-13",
                Some("15:00"),
                T,
            ),
            ("晚上8点半", "晚上8点半", P, "2025-03-12", Some("20:30"), T),
            ("下午三点", "下午三点", P, "2025-03-12", Some("15:00"), T),
            ("3点", "3点", P, "2025-03-12", Some("15:00"), T),
            ("三点前", "三点前", D, "2025-03-12", Some("15:00"), T),
            ("三点钟", "三点钟", P, "2025-03-12", Some("15:00"), T),
            ("十点一刻", "十点一刻", P, "2025-03-12", Some("10:15"), T),
            (
                "八点四十五分",
                "八点四十五分",
                P,
                "2025-03-13",
                Some("08:45"),
                T,
            ),
            ("早上9点", "早上9点", P, "2025-03-13", Some("09:00"), T),
            ("下午2:30", "下午2:30", P, "2025-03-12", Some("14:30"), T),
            ("14:30", "14:30", P, "2025-03-12", Some("14:30"), T),
            ("中午12点", "中午12点", P, "2025-03-12", Some("12:00"), T),
            ("晚上12点", "晚上12点", P, "2025-03-12", Some("23:59"), T),
            ("凌晨两点", "凌晨两点", P, "2025-03-13", Some("02:00"), T),
            (
                "下周三上午10点前",
                "下周三上午10点前",
                D,
                "2025-03-19",
                Some("10:00"),
                T,
            ),
            (
                "明天的下午三点",
                "明天的下午三点",
                P,
                "2025-03-13",
                Some("15:00"),
                T,
            ),
            (
                "明天 下午 3点",
                "明天 下午 3点",
                P,
                "2025-03-13",
                Some("15:00"),
                T,
            ),
            ("今晚", "今晚", P, "2025-03-12", Some("18:00"), PartOfDay),
            ("今晚8点", "今晚8点", P, "2025-03-12", Some("20:00"), T),
            (
                "明天下午",
                "明天下午",
                P,
                "2025-03-13",
                Some("13:00"),
                PartOfDay,
            ),
            (
                "明天上午前",
                "明天上午前",
                D,
                "2025-03-13",
                Some("12:00"),
                PartOfDay,
            ),
            ("明早", "明早", P, "2025-03-13", Some("08:00"), PartOfDay),
            ("下班前", "下班前", D, "2025-03-12", Some("18:00"), T),
            (
                "明天下班前",
                "明天下班前",
                D,
                "2025-03-13",
                Some("18:00"),
                T,
            ),
        ],
    );
}

#[test]
fn chinese_durations() {
    check(
        WED,
        &[
            ("两天后", "两天后", P, "2025-03-14", None, Day),
            ("三天内", "三天内", D, "2025-03-15", None, Day),
            ("过两天", "过两天", P, "2025-03-14", None, Day),
            ("一周内", "一周内", D, "2025-03-19", None, Day),
            ("一个星期之内", "一个星期之内", D, "2025-03-19", None, Day),
            ("半个月内", "半个月内", D, "2025-03-27", None, Day),
            ("两个月后", "两个月后", P, "2025-05-12", None, Day),
            ("三个工作日内", "三个工作日内", D, "2025-03-17", None, Day),
            (
                "两个小时内",
                "两个小时内",
                D,
                "2025-03-12",
                Some("12:00"),
                T,
            ),
            ("半小时后", "半小时后", P, "2025-03-12", Some("10:30"), T),
            ("十五天内", "十五天内", D, "2025-03-27", None, Day),
        ],
    );
}

#[test]
fn chinese_markers() {
    check(
        WED,
        &[
            ("最晚周五", "最晚周五", D, "2025-03-14", None, Day),
            ("最迟明天", "最迟明天", D, "2025-03-13", None, Day),
            ("截止到月底", "截止到月底", D, "2025-03-31", None, Day),
            ("明天为止", "明天为止", D, "2025-03-13", None, Day),
        ],
    );
}

fn special(at: &str, input: &str) -> Vec<(String, Resolution)> {
    find_due_dates(input, &reference(at))
        .into_iter()
        .map(|e| (e.text, e.resolution))
        .collect()
}

#[test]
fn unresolvable_and_urgent() {
    let holiday = Resolution::Unresolved {
        reason: UnresolvedReason::Holiday,
    };
    let vague = Resolution::Unresolved {
        reason: UnresolvedReason::Vague,
    };
    let invalid = Resolution::Unresolved {
        reason: UnresolvedReason::InvalidDate,
    };
    for (input, text, want) in [
        ("节后再说", "节后", holiday.clone()),
        ("国庆后给您答复", "国庆后", holiday.clone()),
        ("年后吧", "年后", holiday.clone()),
        ("after the holidays", "after the holidays", holiday.clone()),
        ("回头我让技术给您打电话", "回头", vague.clone()),
        ("改天", "改天", vague.clone()),
        ("过几天", "过几天", vague.clone()),
        ("几天内", "几天内", vague.clone()),
        ("in a few days", "in a few days", vague.clone()),
        ("I'll get back to you later", "later", vague.clone()),
        ("尽快发我", "尽快", Resolution::Asap),
        ("马上", "马上", Resolution::Asap),
        ("ASAP", "ASAP", Resolution::Asap),
        (
            "as soon as possible",
            "as soon as possible",
            Resolution::Asap,
        ),
        ("2月30日", "2月30日", invalid.clone()),
        ("February 30", "February 30", invalid),
    ] {
        assert_eq!(
            special(WED, input),
            vec![(text.to_string(), want)],
            "{input:?}"
        );
    }
    let asap = &find_due_dates("ASAP", &reference(WED))[0];
    assert!(asap.is_urgent());
    assert_eq!(asap.at(), None);
}

#[test]
fn english() {
    check(
        WED,
        &[
            ("tomorrow", "tomorrow", P, "2025-03-13", None, Day),
            (
                "the day after tomorrow",
                "the day after tomorrow",
                P,
                "2025-03-14",
                None,
                Day,
            ),
            (
                "by Friday EOD",
                "by Friday EOD",
                D,
                "2025-03-14",
                Some("18:00"),
                T,
            ),
            (
                "EOD Friday",
                "EOD Friday",
                D,
                "2025-03-14",
                Some("18:00"),
                T,
            ),
            (
                "by end of day",
                "by end of day",
                D,
                "2025-03-12",
                Some("18:00"),
                T,
            ),
            (
                "by COB tomorrow",
                "by COB tomorrow",
                D,
                "2025-03-13",
                Some("18:00"),
                T,
            ),
            ("next Tuesday", "next Tuesday", P, "2025-03-18", None, Day),
            ("this Friday", "this Friday", P, "2025-03-14", None, Day),
            ("on Monday", "on Monday", P, "2025-03-17", None, Day),
            ("before Monday", "before Monday", D, "2025-03-17", None, Day),
            (
                "end of the month",
                "end of the month",
                D,
                "2025-03-31",
                None,
                Day,
            ),
            (
                "by the end of next month",
                "by the end of next month",
                D,
                "2025-04-30",
                None,
                Day,
            ),
            (
                "early next month",
                "early next month",
                P,
                "2025-04-05",
                None,
                Day,
            ),
            ("next month", "next month", P, "2025-04-30", None, Month),
            ("next week", "next week", P, "2025-03-21", None, Week),
            (
                "by the end of the week",
                "by the end of the week",
                D,
                "2025-03-14",
                None,
                Week,
            ),
            ("this weekend", "this weekend", P, "2025-03-15", None, Day),
            ("in 3 days", "in 3 days", P, "2025-03-15", None, Day),
            ("within a week", "within a week", D, "2025-03-19", None, Day),
            (
                "within two business days",
                "within two business days",
                D,
                "2025-03-14",
                None,
                Day,
            ),
            (
                "in a couple of weeks",
                "in a couple of weeks",
                P,
                "2025-03-26",
                None,
                Day,
            ),
            (
                "two weeks from now",
                "two weeks from now",
                P,
                "2025-03-26",
                None,
                Day,
            ),
            (
                "in half an hour",
                "in half an hour",
                P,
                "2025-03-12",
                Some("10:30"),
                T,
            ),
            (
                "within 2 hours",
                "within 2 hours",
                D,
                "2025-03-12",
                Some("12:00"),
                T,
            ),
            ("on March 15", "on March 15", P, "2025-03-15", None, Day),
            (
                "March 15th, 2026",
                "March 15th, 2026",
                P,
                "2026-03-15",
                None,
                Day,
            ),
            ("Mar. 3", "Mar. 3", P, "2026-03-03", None, Day),
            ("15 March", "15 March", P, "2025-03-15", None, Day),
            (
                "the 20th of March",
                "the 20th of March",
                P,
                "2025-03-20",
                None,
                Day,
            ),
            ("3/15", "3/15", P, "2025-03-15", None, Day),
            ("15/3", "15/3", P, "2025-03-15", None, Day),
            ("4/1/2025", "4/1/2025", P, "2025-04-01", None, Day),
            ("2025-04-01", "2025-04-01", P, "2025-04-01", None, Day),
            ("the 20th", "the 20th", P, "2025-03-20", None, Day),
            (
                "no later than March 20",
                "no later than March 20",
                D,
                "2025-03-20",
                None,
                Day,
            ),
            ("end of year", "end of year", D, "2025-12-31", None, Day),
            ("at 3pm", "at 3pm", P, "2025-03-12", Some("15:00"), T),
            ("3:30 p.m.", "3:30 p.m.", P, "2025-03-12", Some("15:30"), T),
            ("at 9am", "at 9am", P, "2025-03-13", Some("09:00"), T),
            ("at 12am", "at 12am", P, "2025-03-13", Some("00:00"), T),
            ("at 15:00", "at 15:00", P, "2025-03-12", Some("15:00"), T),
            (
                "at 3 o'clock",
                "at 3 o'clock",
                P,
                "2025-03-12",
                Some("15:00"),
                T,
            ),
            (
                "tomorrow at 3",
                "tomorrow at 3",
                P,
                "2025-03-13",
                Some("15:00"),
                T,
            ),
            (
                "tomorrow at 3pm",
                "tomorrow at 3pm",
                P,
                "2025-03-13",
                Some("15:00"),
                T,
            ),
            (
                "3pm tomorrow",
                "3pm tomorrow",
                P,
                "2025-03-13",
                Some("15:00"),
                T,
            ),
            ("by noon", "by noon", D, "2025-03-12", Some("12:00"), T),
            (
                "by midnight",
                "by midnight",
                D,
                "2025-03-12",
                Some("23:59"),
                T,
            ),
            (
                "this afternoon",
                "this afternoon",
                P,
                "2025-03-12",
                Some("13:00"),
                PartOfDay,
            ),
            (
                "tonight",
                "tonight",
                P,
                "2025-03-12",
                Some("18:00"),
                PartOfDay,
            ),
            (
                "tomorrow morning",
                "tomorrow morning",
                P,
                "2025-03-13",
                Some("08:00"),
                PartOfDay,
            ),
            (
                "by tomorrow morning",
                "by tomorrow morning",
                D,
                "2025-03-13",
                Some("12:00"),
                PartOfDay,
            ),
            (
                "Friday afternoon at 4",
                "Friday afternoon at 4",
                P,
                "2025-03-14",
                Some("16:00"),
                T,
            ),
            ("TOMORROW", "TOMORROW", P, "2025-03-13", None, Day),
            (
                "by Friday at the latest",
                "by Friday at the latest",
                D,
                "2025-03-14",
                None,
                Day,
            ),
        ],
    );
}

#[test]
fn mixed_language() {
    check(
        WED,
        &[
            ("周五 EOD", "周五 EOD", D, "2025-03-14", Some("18:00"), T),
            ("3/15前", "3/15前", D, "2025-03-15", None, Day),
        ],
    );
}

#[test]
fn nothing_to_find() {
    let r = reference(WED);
    for input in [
        "",
        "   ",
        "好的，没问题",
        "一月一次",
        "在15号楼",
        "地铁3号线",
        "下午好",
        "Good morning, how are you?",
        "我说三点建议",
        "我们前期沟通过",
        "at 3 locations",
        "the morning meeting",
        "1,000 units",
        "I'll call you by phone",
    ] {
        assert!(
            find_due_dates(input, &r).is_empty(),
            "{input:?}: {:?}",
            find_due_dates(input, &r)
        );
    }
}

#[test]
fn several_expressions_with_char_offsets() {
    let text = "我明天先给您打电话，下周三前把合同发过去";
    let found = find_due_dates(text, &reference(WED));
    let spans: Vec<(&str, usize, usize, DueKind)> = found
        .iter()
        .map(|e| (e.text.as_str(), e.char_start, e.char_end, e.kind))
        .collect();
    assert_eq!(spans, [("明天", 1, 3, P), ("下周三前", 10, 14, D)]);
    for e in &found {
        let chars: String = text
            .chars()
            .skip(e.char_start)
            .take(e.char_end - e.char_start)
            .collect();
        assert_eq!(chars, e.text);
    }
    let text = "I'll send it tomorrow, and the contract by Friday.";
    let found = find_due_dates(text, &reference(WED));
    let spans: Vec<(&str, usize)> = found
        .iter()
        .map(|e| (e.text.as_str(), e.char_start))
        .collect();
    assert_eq!(spans, [("tomorrow", 13), ("by Friday", 40)]);
}

#[test]
fn month_end_is_18_00_in_the_org_time_zone() {
    let e = &find_due_dates("月底", &reference(WED))[0];
    assert_eq!(e.at().unwrap().to_string(), "2025-03-31T10:00:00Z");
    let ny = org_time_zone(Some("America/New_York")).unwrap();
    let r = reference_time("2025-03-12T14:00:00Z", &ny).unwrap(); // 10:00 in New York
    let e = &find_due_dates("tomorrow EOD", &r)[0];
    assert_eq!(e.resolved().unwrap().date.to_string(), "2025-03-13");
    assert_eq!(e.at().unwrap().to_string(), "2025-03-13T22:00:00Z");
}

#[test]
fn reference_time_errors() {
    let tz = org_time_zone(None).unwrap();
    assert!(matches!(
        reference_time("yesterday", &tz),
        Err(AnalysisError::InvalidReferenceTime { .. })
    ));
    assert!(matches!(
        org_time_zone(Some("Mars/Olympus")),
        Err(AnalysisError::UnknownTimeZone { .. })
    ));
    // A call at 23:30 UTC is the next morning in Shanghai: "明天" is the day after that.
    let r = reference_time("2025-03-12T23:30:00Z", &tz).unwrap();
    let e = &find_due_dates("明天", &r)[0];
    assert_eq!(e.resolved().unwrap().date.to_string(), "2025-03-14");
}

#[test]
fn serialises_with_a_status_tag() {
    let e = &find_due_dates("明天下午三点前", &reference(WED))[0];
    let json = serde_json::to_value(e).unwrap();
    assert_eq!(json["kind"], "deadline");
    assert_eq!(json["resolution"]["status"], "resolved");
    assert_eq!(json["resolution"]["date"], "2025-03-13");
    assert_eq!(json["resolution"]["time"], "15:00:00");
    assert_eq!(json["resolution"]["precision"], "time");
    let back: DueExpression = serde_json::from_value(json).unwrap();
    assert_eq!(&back, e);
    let asap = serde_json::to_value(&find_due_dates("尽快", &reference(WED))[0]).unwrap();
    assert_eq!(asap["resolution"]["status"], "asap");
}

#[test]
fn full_width_digits_and_long_text() {
    check(
        WED,
        &[("３月１５日", "３月１５日", P, "2025-03-15", None, Day)],
    );
    let long = "好的。".repeat(5000) + "月底前";
    let found = find_due_dates(&long, &reference(WED));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].char_start, 15_000);
}

#[test]
fn english_next_to_chinese() {
    check(
        WED,
        &[
            ("截止3/15", "截止3/15", D, "2025-03-15", None, Day),
            ("周五EOD前", "周五EOD前", D, "2025-03-14", Some("18:00"), T),
            ("明天3pm", "明天3pm", P, "2025-03-13", Some("15:00"), T),
        ],
    );
}

#[test]
fn cantonese_hours_in_words_and_an_hour_after_a_question() {
    check(
        WED,
        &[
            (
                "听日上昼我喺公司",
                "听日上昼",
                P,
                "2025-03-13",
                Some("08:00"),
                PartOfDay,
            ),
            (
                "聽日下昼三点",
                "聽日下昼三点",
                P,
                "2025-03-13",
                Some("15:00"),
                T,
            ),
            (
                "周四上午可以吗，十点",
                "周四上午可以吗，十点",
                P,
                "2025-03-13",
                Some("10:00"),
                T,
            ),
            (
                "Friday at two pm works",
                "Friday at two pm",
                P,
                "2025-03-14",
                Some("14:00"),
                T,
            ),
            (
                "let's aim for three thirty pm",
                "three thirty pm",
                P,
                "2025-03-12",
                Some("15:30"),
                T,
            ),
            (
                "I'll call you back within the hour",
                "within the hour",
                D,
                "2025-03-12",
                Some("11:00"),
                T,
            ),
        ],
    );
    // A refusal between the part of the day and the hour does not join them.
    let found = find_due_dates("明天下午不行，十点吧", &reference(WED));
    assert!(
        found.iter().all(|d| d.text != "明天下午不行，十点"),
        "{found:#?}"
    );
}
