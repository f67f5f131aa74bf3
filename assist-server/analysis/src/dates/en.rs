//! English date and time rules (see the [module docs](super) for the
//! conventions). All are case-insensitive and use ASCII word boundaries, so
//! they also match right next to Chinese text ("周五EOD前", "截止3/15").

use std::sync::LazyLock;

use regex::Captures;

use super::numerals::{parse_english_number, parse_number};
use super::{
    DateSpec, DurUnit, Item, Made, MonthRef, Pod, Rule, TimeSpec, UnresolvedReason, WeekRef,
};

const WEEKDAYS: &str = "monday|tuesday|wednesday|thursday|friday|saturday|sunday";
const MONTHS: &str = "january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec";
/// Hours written as words ("two pm", "three o'clock").
const HOUR_WORDS: &str = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve";
const COUNT: &str = r"a\s+couple\s+of|a\s+couple|couple\s+of|a\s+few|few|several|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\d+";

pub(crate) fn rules() -> &'static [Rule] {
    static RULES: LazyLock<Vec<Rule>> = LazyLock::new(build);
    &RULES
}

fn weekday(name: &str) -> Option<i8> {
    let i = WEEKDAYS
        .split('|')
        .position(|w| w.eq_ignore_ascii_case(name))?;
    i8::try_from(i).ok()
}

fn month(name: &str) -> Option<i8> {
    let name = name.to_ascii_lowercase();
    let m = match &name[..name.len().min(3)] {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    Some(m)
}

fn lower(c: &Captures<'_>, name: &str) -> Option<String> {
    c.name(name).map(|m| m.as_str().to_ascii_lowercase())
}

fn abs_date(year: Option<&str>, month: i8, day: &str) -> Option<Made> {
    let year = match year {
        None => None,
        Some(y) => {
            let y = parse_number(y)?;
            Some(i16::try_from(if y < 100 { 2000 + y } else { y }).ok()?)
        }
    };
    let day = parse_number(day)?;
    if !(1..=31).contains(&day) {
        return None;
    }
    Made::strong(Item::Date(DateSpec::MonthDay {
        month: MonthRef::Abs { year, month },
        day: Some(day),
    }))
}

fn pod_word(w: &str) -> Option<Pod> {
    Some(match w {
        "morning" => Pod::Morning,
        "noon" | "lunchtime" | "lunch" => Pod::Noon,
        "afternoon" => Pod::Afternoon,
        "evening" | "night" | "tonight" => Pod::Evening,
        _ => return None,
    })
}

fn build() -> Vec<Rule> {
    vec![
        Rule::new(
            r"(?i)(?-u:\b)(?:the\s+)?day\s+after\s+tomorrow(?-u:\b)|(?-u:\b)today(?-u:\b)|(?-u:\b)tomorrow(?-u:\b)|(?-u:\b)tmrw?(?-u:\b)|(?-u:\b)yesterday(?-u:\b)",
            |c, _| {
                let w = c[0].to_ascii_lowercase();
                let n = if w.contains("after") {
                    2
                } else if w.starts_with("tom") || w.starts_with("tmr") {
                    1
                } else if w == "yesterday" {
                    -1
                } else {
                    0
                };
                Made::strong(Item::Date(DateSpec::Rel(n)))
            },
        ),
        Rule::new(
            r"(?i)(?-u:\b)tonight(?-u:\b)|(?-u:\b)this\s+(?P<p>morning|afternoon|evening)(?-u:\b)",
            |c, _| {
                let p = lower(c, "p").map_or(Some(Pod::Evening), |p| pod_word(&p))?;
                Made::strong(Item::DateTime(DateSpec::Rel(0), TimeSpec::Pod(p)))
            },
        ),
        // "in the afternoon" stands alone; "afternoon" only next to a date.
        Rule::new(
            r"(?i)(?-u:\b)(?P<in>in\s+the\s+)?(?P<p>morning|afternoon|evening|night)(?-u:\b)",
            |c, after| {
                let p = pod_word(&c["p"].to_ascii_lowercase())?;
                if after
                    .trim_start()
                    .starts_with(|ch: char| ch.is_ascii_alphabetic())
                    && c.name("in").is_none()
                    && !after.trim_start().to_ascii_lowercase().starts_with("at")
                {
                    // "morning meeting", "evening shift": not a time.
                    return None;
                }
                let item = Item::Time(TimeSpec::Pod(p));
                if c.name("in").is_some() {
                    Made::strong(item)
                } else {
                    Made::weak(item)
                }
            },
        ),
        // next Tuesday, this Friday, on Friday
        Rule::new(
            &format!(
                r"(?i)(?-u:\b)(?:on\s+)?(?:(?P<pre>this\s+coming|this|next|coming)\s+)?(?P<d>{WEEKDAYS})(?-u:\b)"
            ),
            |c, _| {
                let week = match lower(c, "pre").as_deref() {
                    Some("next") => WeekRef::Offset(1),
                    Some("this") => WeekRef::Offset(0),
                    _ => WeekRef::Upcoming,
                };
                Made::strong(Item::Date(DateSpec::Weekday {
                    week,
                    weekday: weekday(&c["d"])?,
                }))
            },
        ),
        // (this|next) weekend
        Rule::new(
            r"(?i)(?-u:\b)(?:(?P<pre>this|next)\s+|the\s+)?weekend(?-u:\b)",
            |c, _| {
                let week = match lower(c, "pre").as_deref() {
                    Some("next") => WeekRef::Offset(1),
                    _ => WeekRef::Upcoming,
                };
                Made::strong(Item::Date(DateSpec::Weekend { week }))
            },
        ),
        // this week, next week, end of the week, EOW
        Rule::new(
            r"(?i)(?-u:\b)(?:(?:the\s+)?end\s+of\s+(?:the\s+)?)?(?P<pre>this|next)\s+week(?-u:\b)|(?-u:\b)(?:the\s+)?end\s+of\s+(?:the\s+)?week(?-u:\b)|(?-u:\b)eow(?-u:\b)",
            |c, _| {
                let offset = if lower(c, "pre").as_deref() == Some("next") {
                    1
                } else {
                    0
                };
                let item = Item::Date(DateSpec::Week { offset });
                if c[0].to_ascii_lowercase().contains("end") || c[0].eq_ignore_ascii_case("eow") {
                    Made::deadline(item)
                } else {
                    Made::strong(item)
                }
            },
        ),
        // end of the month, end of next month, EOM, beginning of next month, mid-month
        Rule::new(
            r"(?i)(?-u:\b)(?:(?:the\s+)?(?P<part>end|beginning|start|middle)\s+of\s+(?:the\s+)?(?:(?P<pre>this|next)\s+)?month|(?P<early>early|mid|late)[-\s](?P<pre2>next\s+)?month|eom)(?-u:\b)",
            |c, _| {
                let part = lower(c, "part")
                    .or_else(|| lower(c, "early"))
                    .unwrap_or_else(|| "end".into());
                let day = match part.as_str() {
                    "beginning" | "start" | "early" => Some(5),
                    "middle" | "mid" => Some(15),
                    _ => None,
                };
                let next = c
                    .name("pre")
                    .is_some_and(|m| m.as_str().eq_ignore_ascii_case("next"))
                    || c.name("pre2").is_some();
                let month = if next {
                    MonthRef::Offset(1)
                } else if day.is_some() {
                    MonthRef::Bare
                } else {
                    MonthRef::Offset(0)
                };
                let item = Item::Date(DateSpec::MonthDay { month, day });
                if part == "end" {
                    Made::deadline(item)
                } else {
                    Made::strong(item)
                }
            },
        ),
        Rule::new(r"(?i)(?-u:\b)(?P<pre>this|next)\s+month(?-u:\b)", |c, _| {
            let offset = if c["pre"].eq_ignore_ascii_case("next") {
                1
            } else {
                0
            };
            Made::strong(Item::Date(DateSpec::Month { offset }))
        }),
        Rule::new(
            r"(?i)(?-u:\b)(?:(?:the\s+)?end\s+of\s+(?:the\s+)?(?:(?P<pre>this|next)\s+)?year|year[-\s]end|eoy)(?-u:\b)",
            |c, _| {
                let offset = if lower(c, "pre").as_deref() == Some("next") {
                    1
                } else {
                    0
                };
                Made::deadline(Item::Date(DateSpec::YearEnd { offset }))
            },
        ),
        // March 15, March 15th, 2025 ; on Mar. 3
        Rule::new(
            &format!(
                r"(?i)(?-u:\b)(?:on\s+)?(?P<m>{MONTHS})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?(?-u:\b)(?:,?\s+(?P<y>\d{{4}})(?-u:\b))?"
            ),
            |c, _| abs_date(c.name("y").map(|m| m.as_str()), month(&c["m"])?, &c["d"]),
        ),
        // 15 March, the 15th of March
        Rule::new(
            &format!(
                r"(?i)(?-u:\b)(?:on\s+)?(?:the\s+)?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m>{MONTHS})(?-u:\b)(?:,?\s+(?P<y>\d{{4}})(?-u:\b))?"
            ),
            |c, _| abs_date(c.name("y").map(|m| m.as_str()), month(&c["m"])?, &c["d"]),
        ),
        // 3/15, 15/3, 3/15/2025 (also in Chinese text)
        Rule::new(
            r"(?i)(?:(?-u:\b)on\s+)?(?-u:\b)(?P<a>\d{1,2})/(?P<b>\d{1,2})(?:/(?P<y>\d{4}|\d{2}))?(?-u:\b)",
            |c, _| {
                let a = parse_number(&c["a"])?;
                let b = parse_number(&c["b"])?;
                let (m, d) = if a > 12 && b <= 12 { (b, a) } else { (a, b) };
                if !(1..=12).contains(&m) {
                    return None;
                }
                abs_date(
                    c.name("y").map(|m| m.as_str()),
                    i8::try_from(m).ok()?,
                    &d.to_string(),
                )
            },
        ),
        // 2025-03-15
        Rule::new(
            r"(?-u:\b)(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?-u:\b)",
            |c, _| {
                let m = parse_number(&c["m"])?;
                if !(1..=12).contains(&m) {
                    return None;
                }
                abs_date(Some(&c["y"]), i8::try_from(m).ok()?, &c["d"])
            },
        ),
        // the 15th
        Rule::new(
            r"(?i)(?-u:\b)(?:on\s+)?the\s+(?P<d>\d{1,2})(?:st|nd|rd|th)(?-u:\b)",
            |c, _| {
                let day = parse_number(&c["d"])?;
                if !(1..=31).contains(&day) {
                    return None;
                }
                Made::strong(Item::Date(DateSpec::MonthDay {
                    month: MonthRef::Bare,
                    day: Some(day),
                }))
            },
        ),
        // in 3 days, within a week, in two business days, in half an hour
        Rule::new(
            &format!(
                r"(?i)(?-u:\b)(?P<rel>in|within)\s+(?:the\s+next\s+)?(?:(?P<half>half\s+an?)|(?P<n>{COUNT}))\s+(?P<biz>business\s+|working\s+)?(?P<u>minute|min|hour|hr|day|week|month|year)s?(?-u:\b)"
            ),
            |c, _| {
                let within = c["rel"].eq_ignore_ascii_case("within");
                let unit = c["u"].to_ascii_lowercase();
                let item = if c.name("half").is_some() {
                    match unit.as_str() {
                        "hour" | "hr" => Item::Duration {
                            amount: 30,
                            unit: DurUnit::Minute,
                        },
                        "day" => Item::Duration {
                            amount: 12,
                            unit: DurUnit::Hour,
                        },
                        "month" => Item::Duration {
                            amount: 15,
                            unit: DurUnit::Day,
                        },
                        "year" => Item::Duration {
                            amount: 6,
                            unit: DurUnit::Month,
                        },
                        _ => return None,
                    }
                } else {
                    match parse_english_number(
                        &c["n"].split_whitespace().collect::<Vec<_>>().join(" "),
                    ) {
                        None => Item::Unresolved(UnresolvedReason::Vague),
                        Some(n) => Item::Duration {
                            amount: i64::from(n),
                            unit: match unit.as_str() {
                                "minute" | "min" => DurUnit::Minute,
                                "hour" | "hr" => DurUnit::Hour,
                                "day" if c.name("biz").is_some() => DurUnit::BusinessDay,
                                "day" => DurUnit::Day,
                                "week" => DurUnit::Week,
                                "month" => DurUnit::Month,
                                _ => DurUnit::Year,
                            },
                        },
                    }
                };
                if within {
                    Made::deadline(item)
                } else {
                    Made::strong(item)
                }
            },
        ),
        // 3 days from now, two weeks later
        Rule::new(
            &format!(
                r"(?i)(?-u:\b)(?P<n>{COUNT})\s+(?P<u>day|week|month)s?\s+(?:from\s+now|later)(?-u:\b)"
            ),
            |c, _| {
                let n = parse_english_number(&c["n"]);
                let Some(n) = n else {
                    return Made::strong(Item::Unresolved(UnresolvedReason::Vague));
                };
                let unit = match c["u"].to_ascii_lowercase().as_str() {
                    "day" => DurUnit::Day,
                    "week" => DurUnit::Week,
                    _ => DurUnit::Month,
                };
                Made::strong(Item::Duration {
                    amount: i64::from(n),
                    unit,
                })
            },
        ),
        // 3pm, at 3:30 p.m., 10 am
        Rule::new(
            r"(?i)(?-u:\b)(?:at\s+|around\s+)?(?P<h>\d{1,2})(?::(?P<mi>\d{2}))?\s*(?P<ap>[ap]\.?m(?-u:\b)\.?)",
            |c, _| {
                let pod = if c["ap"].to_ascii_lowercase().starts_with('a') {
                    Pod::Am
                } else {
                    Pod::Pm
                };
                let hour = parse_number(&c["h"])?;
                if hour > 12 {
                    return None;
                }
                Made::strong(Item::Time(TimeSpec::At {
                    hour,
                    minute: c.name("mi").map_or(Some(0), |m| parse_number(m.as_str()))?,
                    pod: Some(pod),
                }))
            },
        ),
        // two pm, at three thirty p.m., around eleven am
        Rule::new(
            &format!(
                r"(?i)(?-u:\b)(?:at\s+|around\s+)?(?P<h>{HOUR_WORDS})(?:[\s-]+(?P<mi>fifteen|thirty|forty[\s-]five))?\s*(?P<ap>[ap]\.?m(?-u:\b)\.?)"
            ),
            |c, _| {
                let pod = if c["ap"].to_ascii_lowercase().starts_with('a') {
                    Pod::Am
                } else {
                    Pod::Pm
                };
                let minute = match c.name("mi").map(|m| m.as_str().to_ascii_lowercase()) {
                    None => 0,
                    Some(m) if m.starts_with("fif") => 15,
                    Some(m) if m.starts_with("thi") => 30,
                    Some(_) => 45,
                };
                Made::strong(Item::Time(TimeSpec::At {
                    hour: parse_english_number(&c["h"])?,
                    minute,
                    pod: Some(pod),
                }))
            },
        ),
        // at two o'clock, three o'clock
        Rule::new(
            &format!(r"(?i)(?-u:\b)(?:at\s+|around\s+)?(?P<h>{HOUR_WORDS})\s+o'?clock(?-u:\b)"),
            |c, _| {
                Made::strong(Item::Time(TimeSpec::At {
                    hour: parse_english_number(&c["h"])?,
                    minute: 0,
                    pod: None,
                }))
            },
        ),
        // within the hour, within the next hour
        Rule::new(
            r"(?i)(?-u:\b)within\s+the\s+(?:next\s+)?hour(?-u:\b)",
            |_, _| {
                Made::deadline(Item::Duration {
                    amount: 1,
                    unit: DurUnit::Hour,
                })
            },
        ),
        // at 15:00, 3:30
        Rule::new(
            r"(?i)(?-u:\b)(?:at\s+|around\s+)?(?P<h>\d{1,2}):(?P<mi>\d{2})(?-u:\b)",
            |c, _| {
                Made::strong(Item::Time(TimeSpec::At {
                    hour: parse_number(&c["h"])?,
                    minute: parse_number(&c["mi"])?,
                    pod: None,
                }))
            },
        ),
        // at 3, at 3 o'clock
        Rule::new(
            r"(?i)(?-u:\b)at\s+(?P<h>\d{1,2})(?P<oc>\s*o'?clock)?(?-u:\b)",
            |c, _| {
                let item = Item::Time(TimeSpec::At {
                    hour: parse_number(&c["h"])?,
                    minute: 0,
                    pod: None,
                });
                if c.name("oc").is_some() {
                    Made::strong(item)
                } else {
                    Made::weak(item)
                }
            },
        ),
        Rule::new(
            r"(?i)(?-u:\b)(?:at\s+)?(?P<w>noon|midday|midnight)(?-u:\b)",
            |c, _| {
                let item = if c["w"].eq_ignore_ascii_case("midnight") {
                    TimeSpec::Midnight
                } else {
                    TimeSpec::At {
                        hour: 12,
                        minute: 0,
                        pod: Some(Pod::Noon),
                    }
                };
                Made::strong(Item::Time(item))
            },
        ),
        // EOD, COB, end of (the) day, close of business
        Rule::new(
            r"(?i)(?-u:\b)(?:eod|cob|eob|(?:the\s+)?end\s+of\s+(?:the\s+)?(?:business\s+)?day|(?:the\s+)?(?:close|end)\s+of\s+business(?:\s+day)?)(?-u:\b)",
            |_, _| Made::deadline(Item::Time(TimeSpec::Eod)),
        ),
        // Deadline markers.
        Rule::new(
            r"(?i)(?-u:\b)(?:by|before|no\s+later\s+than|not\s+later\s+than|until|till|due)(?-u:\b)",
            |_, _| Made::strong(Item::Before),
        ),
        Rule::new(r"(?i)(?-u:\b)at\s+the\s+latest(?-u:\b)", |_, _| {
            Made::strong(Item::After)
        }),
        Rule::new(
            r"(?i)(?-u:\b)asap(?-u:\b)|(?-u:\b)a\.s\.a\.p\.?|(?-u:\b)as\s+soon\s+as\s+(?:possible|you\s+can|we\s+can|i\s+can)(?-u:\b)|(?-u:\b)right\s+away(?-u:\b)|(?-u:\b)immediately(?-u:\b)|(?-u:\b)urgently(?-u:\b)",
            |_, _| Made::strong(Item::Asap),
        ),
        Rule::new(
            r"(?i)(?-u:\b)after\s+the\s+(?:holiday|holidays|break|new\s+year|chinese\s+new\s+year|spring\s+festival|national\s+day|golden\s+week)(?-u:\b)",
            |_, _| Made::strong(Item::Unresolved(UnresolvedReason::Holiday)),
        ),
        Rule::new(
            r"(?i)(?-u:\b)later\s+on(?-u:\b)|(?-u:\b)later(?-u:\b)|(?-u:\b)soon(?-u:\b)|(?-u:\b)sometime(?-u:\b)|(?-u:\b)some\s+time(?-u:\b)|(?-u:\b)at\s+some\s+point(?-u:\b)",
            |_, _| Made::strong(Item::Unresolved(UnresolvedReason::Vague)),
        ),
    ]
}
