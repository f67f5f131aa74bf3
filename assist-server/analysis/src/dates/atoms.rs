//! The atoms the rules in [`zh`](super::zh) and [`en`](super::en) recognise:
//! dates, times, durations, deadline markers, "ASAP" and unresolvable phrases.

use regex::{Captures, Regex};

use super::UnresolvedReason;

/// Which week a weekday or weekend is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WeekRef {
    /// The next one on or after today.
    Upcoming,
    /// 0 = this week, 1 = next week, -1 = last week.
    Offset(i64),
}

/// Which month a day of month is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MonthRef {
    /// Not said: this month, or next month if the day has passed.
    Bare,
    /// 0 = this month, 1 = next month.
    Offset(i64),
    /// A named month, with or without a year.
    Abs { year: Option<i16>, month: i8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateSpec {
    /// Days from the reference date (明天 = 1).
    Rel(i64),
    /// Weekday 0 = Monday … 6 = Sunday.
    Weekday {
        week: WeekRef,
        weekday: i8,
    },
    Weekend {
        week: WeekRef,
    },
    /// A whole week, 0 = this week.
    Week {
        offset: i64,
    },
    /// A day of a month; `day: None` is the last day.
    MonthDay {
        month: MonthRef,
        day: Option<u32>,
    },
    /// A whole month, 0 = this month.
    Month {
        offset: i64,
    },
    /// The last day of a year, 0 = this year.
    YearEnd {
        offset: i64,
    },
}

/// Part of the day; `Am` and `Pm` only qualify an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pod {
    EarlyMorning,
    Morning,
    Noon,
    Afternoon,
    Evening,
    Am,
    Pm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeSpec {
    At {
        hour: u32,
        minute: u32,
        pod: Option<Pod>,
    },
    Pod(Pod),
    /// End of the business day.
    Eod,
    /// 23:59.
    Midnight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DurUnit {
    Minute,
    Hour,
    Day,
    BusinessDay,
    Week,
    Month,
    Year,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    Date(DateSpec),
    Time(TimeSpec),
    DateTime(DateSpec, TimeSpec),
    Duration {
        amount: i64,
        unit: DurUnit,
    },
    /// "by", "最晚": marks a deadline, before the date.
    Before,
    /// "前", "at the latest": marks a deadline, after the date.
    After,
    Asap,
    Unresolved(UnresolvedReason),
}

/// What a rule made of a match.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Made {
    pub item: Item,
    /// Only counts next to a date or a deadline marker.
    pub weak: bool,
    /// A deadline by nature ("EOD", "三天内").
    pub deadline: bool,
}

impl Made {
    pub fn strong(item: Item) -> Option<Made> {
        Some(Made {
            item,
            weak: false,
            deadline: false,
        })
    }
    pub fn weak(item: Item) -> Option<Made> {
        Some(Made {
            item,
            weak: true,
            deadline: false,
        })
    }
    pub fn deadline(item: Item) -> Option<Made> {
        Some(Made {
            item,
            weak: false,
            deadline: true,
        })
    }
}

/// A rule: a regular expression and what a match means. `after` is the text
/// following the match (for guards such as "15号楼").
pub(crate) struct Rule {
    pub re: Regex,
    pub make: fn(&Captures<'_>, &str) -> Option<Made>,
}

impl Rule {
    pub fn new(pattern: &str, make: fn(&Captures<'_>, &str) -> Option<Made>) -> Rule {
        Rule {
            re: Regex::new(pattern).unwrap_or_else(|e| panic!("date rule `{pattern}`: {e}")),
            make,
        }
    }
}
