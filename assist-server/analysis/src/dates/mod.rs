//! Due dates and times in Chinese and English, resolved against a reference
//! time (the call's start, in the org's time zone).
//!
//! [`find_due_dates`] scans a text with a fixed set of regular expressions
//! ([`zh`] and [`en`], both applied to every text so mixed text such as
//! "周五 EOD" works) that recognise *atoms* — a date ("下周三", "March 15"), a
//! time ("下午三点", "3pm", "EOD"), a duration ("三天内", "in 3 days"), a
//! deadline marker ("前", "by"), "ASAP", or something that cannot be resolved
//! ("节后"). Overlapping atoms keep the leftmost, then the longest. Adjacent
//! atoms (separated by nothing, white space, "的" or ",") are grouped into one
//! expression: `[marker] [date] [time] [marker]`, the time may also come first
//! ("3pm tomorrow", "EOD Friday"). Each group becomes one [`DueExpression`]
//! with character offsets into the input and the matched text.
//!
//! # Conventions
//!
//! - **Weeks run Monday–Sunday.** "这周五"/"this Friday" is Friday of the
//!   current week, even if it has passed. "下周三"/"next Wednesday" is
//!   Wednesday of the following week: said on Sunday 2025-03-16 it is
//!   2025-03-19 (three days later), said on Monday 2025-03-17 it is
//!   2025-03-26. A bare weekday ("周五", "by Friday") is the next such day on
//!   or after the reference date (today included).
//! - **周末 / weekend** is the coming Saturday (today on a Saturday or Sunday);
//!   as a deadline ("周末前", "before the weekend") it is the Friday before.
//! - **A whole week** ("下周", "本周内", "end of the week", "EOW") is its
//!   Friday; a **whole month** ("下个月", "本月内") is its last day.
//! - **月底 / end of the month** is the month's last day; **月初** the 5th,
//!   **上旬** the 10th, **月中 / mid-month** the 15th, **中旬** the 20th,
//!   **下旬** the last day. A bare 月初/月中 whose day has passed means next
//!   month's.
//! - **A bare day of month** ("15号", "the 15th") is this month's if not yet
//!   past, else next month's; a day the month does not have is clamped to its
//!   last day ("31号" in April = April 30). **A month and day without a year**
//!   ("3月15日", "March 15", "3/15") is the next such date on or after the
//!   reference date. An impossible explicit date ("2月30日") is
//!   [`UnresolvedReason::InvalidDate`].
//! - **"3/15"** is month/day (US order); when the first number is over 12 it
//!   is day/month ("15/3").
//! - **Without a time, a date is due at 18:00** (end of the business day):
//!   [`ResolvedDue::time`] is `None` and [`ResolvedDue::at`] is that day at
//!   18:00. So "月底" is the last day at 18:00.
//! - **EOD / COB / end of day / 下班前** is 18:00; **noon / 中午12点** is 12:00;
//!   **midnight** is 23:59 of that day, and so is "晚上12点".
//! - **A part of the day without an hour** is a range: 凌晨 00–06, 早上/上午/
//!   morning 08–12, 中午 12:00, 下午/afternoon 13–18, 傍晚/晚上/evening/tonight
//!   18–22. A deadline takes the end ("明天上午前" = 12:00), a point in time
//!   the start ("明天下午给您打电话" = 13:00); precision is
//!   [`Precision::PartOfDay`].
//! - **An hour without 上午/下午/am/pm**: 1–6 is afternoon (三点 = 15:00),
//!   7–12 as said, 13–23 as said. A Chinese-numeral hour alone ("三点",
//!   which is also "three points") only counts next to a date or a marker
//!   ("三点前"); "3点" with digits always counts. "at 3" counts only with
//!   "o'clock" or next to a date or marker.
//! - **A time without a date** is today; "at 3pm" said after 15:00 is
//!   tomorrow (only for clock times, not for parts of the day).
//! - **Durations**: "两天后"/"in 2 days" is a point that many days after the
//!   reference date; "三天内"/"within 3 days" the same date as a deadline;
//!   "一周内" is +7 days, "半个月" +15 days, "N个月" calendar months,
//!   "N个工作日" skips Saturdays and Sundays (no holiday calendar), "两个小时内"
//!   / "in 2 hours" is to the minute.
//! - **Deadline or point**: a deadline when marked (前/之前/以前/为止/内/之内/
//!   以内/最晚/最迟/截止/by/before/until/no later than/at the latest) or when
//!   the expression is one by nature (EOD, 下班前, "within"); a point in time
//!   otherwise.
//! - **ASAP** (尽快, 马上, 越快越好, as soon as possible, right away) has no
//!   date: [`Resolution::Asap`].
//! - **Unresolvable**: holidays (节后, 年后, 国庆后, "after the holiday") need a
//!   holiday calendar we do not have; vague phrases (回头, 改天, 过几天,
//!   "later", "soon") have no date. Both are reported, with a reason, so a
//!   caller can say "due: unclear" instead of inventing a date.
//!
//! ```
//! use assist_analysis::dates::{find_due_dates, reference_time, org_time_zone, DueKind};
//!
//! let tz = org_time_zone(None)?; // Asia/Shanghai
//! let reference = reference_time("2025-03-16T10:00:00+08:00", &tz)?; // a Sunday
//! let found = find_due_dates("好的，我下周三前把报价发您", &reference);
//! assert_eq!(found[0].text, "下周三前");
//! assert_eq!((found[0].char_start, found[0].char_end), (4, 8));
//! assert_eq!(found[0].kind, DueKind::Deadline);
//! let due = found[0].resolved().unwrap();
//! assert_eq!(due.date.to_string(), "2025-03-19");
//! assert_eq!(due.at.to_string(), "2025-03-19T10:00:00Z"); // 18:00 in Shanghai
//! # Ok::<(), assist_analysis::AnalysisError>(())
//! ```

mod atoms;
pub mod en;
mod grammar;
pub mod numerals;
mod resolve;
pub mod zh;

#[cfg(test)]
mod tests;

use jiff::civil::{Date, Time};
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, Zoned};
use serde::{Deserialize, Serialize};

use super::AnalysisError;

pub(crate) use atoms::{DateSpec, DurUnit, Item, Made, MonthRef, Pod, Rule, TimeSpec, WeekRef};

/// The time zone used when the org has none configured.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

/// When a date has no time: 18:00, the end of the business day.
pub const END_OF_BUSINESS_DAY: Time = Time::constant(18, 0, 0, 0);

/// One date/time expression found in a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DueExpression {
    /// The matched text, exactly as in the input.
    pub text: String,
    /// Character (not byte) offset of the first matched character.
    pub char_start: usize,
    /// Character offset just past the last matched character.
    pub char_end: usize,
    /// Deadline ("by Friday", "周五前") or point in time ("明天下午三点").
    pub kind: DueKind,
    pub resolution: Resolution,
}

impl DueExpression {
    /// The resolved date and time, if there is one.
    pub fn resolved(&self) -> Option<&ResolvedDue> {
        match &self.resolution {
            Resolution::Resolved(r) => Some(r),
            _ => None,
        }
    }

    /// The instant to remind at: the resolved time, or 18:00 of the date.
    pub fn at(&self) -> Option<Timestamp> {
        self.resolved().map(|r| r.at)
    }

    /// "ASAP", "尽快", …
    pub fn is_urgent(&self) -> bool {
        matches!(self.resolution, Resolution::Asap)
    }
}

/// Whether an expression is a deadline or a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DueKind {
    Deadline,
    Point,
}

/// What an expression resolved to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Resolution {
    /// A date (and perhaps a time) in the reference's time zone.
    Resolved(ResolvedDue),
    /// Urgent, without a date ("ASAP", "尽快").
    Asap,
    /// Recognised but not resolvable to a date.
    Unresolved { reason: UnresolvedReason },
}

/// A resolved date and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedDue {
    /// The civil date in the reference's time zone.
    pub date: Date,
    /// The time said (or implied by "EOD", "下午"), if any.
    pub time: Option<Time>,
    /// `date` at `time`, or at 18:00 when there is no time, as an instant.
    pub at: Timestamp,
    /// How precise the expression was.
    pub precision: Precision,
}

/// How precise a resolved expression is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// A clock time ("三点半", "3pm", "EOD").
    Time,
    /// A part of the day ("下午", "this afternoon").
    PartOfDay,
    /// A day.
    Day,
    /// A whole week ("下周"): resolved to its Friday.
    Week,
    /// A whole month ("下个月"): resolved to its last day.
    Month,
}

/// Why an expression has no date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnresolvedReason {
    /// Relative to a holiday ("节后", "国庆后"): needs a holiday calendar.
    Holiday,
    /// No date was said ("回头", "改天", "later").
    Vague,
    /// A date that does not exist ("2月30日").
    InvalidDate,
}

/// The org's time zone: `name`, or [`DEFAULT_TIME_ZONE`] when `None`. If the
/// default is not in the system's time zone database (a minimal container),
/// falls back to the fixed UTC+8 offset it has had since 1991.
pub fn org_time_zone(name: Option<&str>) -> Result<TimeZone, AnalysisError> {
    match name {
        Some(name) => TimeZone::get(name).map_err(|_| AnalysisError::UnknownTimeZone {
            name: name.to_string(),
        }),
        None => Ok(TimeZone::get(DEFAULT_TIME_ZONE)
            .unwrap_or_else(|_| TimeZone::fixed(Offset::constant(8)))),
    }
}

/// Parse an RFC 3339 instant (a call's start) into the org's time zone.
pub fn reference_time(rfc3339: &str, time_zone: &TimeZone) -> Result<Zoned, AnalysisError> {
    let ts: Timestamp =
        rfc3339
            .trim()
            .parse()
            .map_err(|e: jiff::Error| AnalysisError::InvalidReferenceTime {
                text: rfc3339.to_string(),
                message: e.to_string(),
            })?;
    Ok(ts.to_zoned(time_zone.clone()))
}

/// Every date/time expression in `text`, in order, resolved against
/// `reference` (its time zone is the one dates are meant in).
pub fn find_due_dates(text: &str, reference: &Zoned) -> Vec<DueExpression> {
    let atoms = grammar::select(grammar::scan(text));
    grammar::group(text, atoms)
        .iter()
        .filter_map(|g| resolve::build(text, g, reference))
        .collect()
}
