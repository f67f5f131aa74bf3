//! From a group of atoms to a [`DueExpression`]: dates, times and durations
//! resolved against the reference time, following the conventions in the
//! [module docs](super).

use jiff::civil::{Date, Time};
use jiff::{ToSpan, Zoned};

use super::atoms::{DateSpec, DurUnit, Item, MonthRef, Pod, TimeSpec, WeekRef};
use super::grammar::Group;
use super::{
    DueExpression, DueKind, END_OF_BUSINESS_DAY, Precision, Resolution, ResolvedDue,
    UnresolvedReason,
};

// Resolution.

pub(super) fn build(text: &str, g: &Group, reference: &Zoned) -> Option<DueExpression> {
    let kind = if g.before || g.after || g.deadline {
        DueKind::Deadline
    } else {
        DueKind::Point
    };
    let resolution = match &g.special {
        Some(Item::Asap) => Resolution::Asap,
        Some(Item::Unresolved(reason)) => Resolution::Unresolved { reason: *reason },
        _ => match resolve(g, kind, reference) {
            Some(r) => Resolution::Resolved(r),
            None => Resolution::Unresolved {
                reason: UnresolvedReason::InvalidDate,
            },
        },
    };
    Some(DueExpression {
        text: text[g.start..g.end].to_string(),
        char_start: crate::text::char_offset(text, g.start),
        char_end: crate::text::char_offset(text, g.end),
        kind,
        resolution,
    })
}

fn resolve(g: &Group, kind: DueKind, reference: &Zoned) -> Option<ResolvedDue> {
    let tz = reference.time_zone().clone();
    let today = reference.date();
    if let Some((amount, unit)) = g.duration {
        return resolve_duration(amount, unit, reference);
    }
    let (mut date, mut precision) = match g.date {
        Some(spec) => resolve_date(spec, kind, today)?,
        None => (today, Precision::Day),
    };
    let mut time = None;
    if let Some(spec) = g.time {
        let (t, p) = resolve_time(spec, kind)?;
        time = Some(t);
        precision = p;
        // A clock time without a date that has passed means tomorrow.
        if g.date.is_none()
            && matches!(spec, TimeSpec::At { .. })
            && date.to_datetime(t) < reference.datetime()
        {
            date = date.tomorrow().ok()?;
        }
    }
    let at = date
        .to_datetime(time.unwrap_or(END_OF_BUSINESS_DAY))
        .to_zoned(tz)
        .ok()?
        .timestamp();
    Some(ResolvedDue {
        date,
        time,
        at,
        precision,
    })
}

fn monday_of(date: Date) -> Option<Date> {
    date.checked_sub(i64::from(date.weekday().to_monday_zero_offset()).days())
        .ok()
}

fn plus_days(date: Date, days: i64) -> Option<Date> {
    date.checked_add(days.days()).ok()
}

fn resolve_date(spec: DateSpec, kind: DueKind, today: Date) -> Option<(Date, Precision)> {
    let wd_today = i64::from(today.weekday().to_monday_zero_offset());
    let week_day = |week: WeekRef, wd: i64| -> Option<Date> {
        match week {
            WeekRef::Upcoming => plus_days(today, (wd - wd_today).rem_euclid(7)),
            WeekRef::Offset(n) => plus_days(monday_of(today)?, 7 * n + wd),
        }
    };
    Some(match spec {
        DateSpec::Rel(n) => (plus_days(today, n)?, Precision::Day),
        DateSpec::Weekday { week, weekday } => {
            (week_day(week, i64::from(weekday))?, Precision::Day)
        }
        DateSpec::Weekend { week } => {
            let saturday = match week {
                // On a Saturday or Sunday "周末" is today.
                WeekRef::Upcoming | WeekRef::Offset(0) if wd_today >= 5 => today,
                _ => week_day(week, 5)?,
            };
            if kind == DueKind::Deadline {
                // Before the weekend: the Friday before (today if that passed).
                (plus_days(saturday, -1)?.max(today), Precision::Day)
            } else {
                (saturday, Precision::Day)
            }
        }
        DateSpec::Week { offset } => {
            let friday = plus_days(monday_of(today)?, 7 * offset + 4)?;
            (friday.max(today), Precision::Week)
        }
        DateSpec::Month { offset } => {
            let first = today.first_of_month().checked_add(offset.months()).ok()?;
            (first.last_of_month(), Precision::Month)
        }
        DateSpec::YearEnd { offset } => {
            let year = i16::try_from(i64::from(today.year()) + offset).ok()?;
            (Date::new(year, 12, 31).ok()?, Precision::Day)
        }
        DateSpec::MonthDay { month, day } => (month_day(month, day, today)?, Precision::Day),
    })
}

/// Day `day` (None = last day) of `first`'s month, clamped to its length.
fn day_in(first: Date, day: Option<u32>) -> Option<Date> {
    let last = first.last_of_month();
    match day {
        None => Some(last),
        Some(d) => {
            let d = i8::try_from(d.min(31)).ok()?.min(last.day());
            Date::new(first.year(), first.month(), d).ok()
        }
    }
}

fn month_day(month: MonthRef, day: Option<u32>, today: Date) -> Option<Date> {
    if day.is_some_and(|d| d == 0 || d > 31) {
        return None;
    }
    let this_month = today.first_of_month();
    match month {
        MonthRef::Bare => {
            let date = day_in(this_month, day)?;
            if date >= today {
                Some(date)
            } else {
                day_in(this_month.checked_add(1.month()).ok()?, day)
            }
        }
        MonthRef::Offset(n) => day_in(this_month.checked_add(n.months()).ok()?, day),
        MonthRef::Abs { year, month } => {
            let in_year = |y: i16| -> Option<Date> {
                match day {
                    // An explicit date must exist: 2月30日 is invalid.
                    Some(d) => Date::new(y, month, i8::try_from(d).ok()?).ok(),
                    None => Some(Date::new(y, month, 1).ok()?.last_of_month()),
                }
            };
            match year {
                Some(y) => in_year(y),
                None => {
                    let date = in_year(today.year())?;
                    if date >= today {
                        Some(date)
                    } else {
                        in_year(today.year() + 1)
                    }
                }
            }
        }
    }
}

fn hm(hour: u32, minute: u32) -> Option<Time> {
    Time::new(i8::try_from(hour).ok()?, i8::try_from(minute).ok()?, 0, 0).ok()
}

fn pod_range(pod: Pod) -> (Time, Time) {
    let t = |h: i8| Time::constant(h, 0, 0, 0);
    match pod {
        Pod::EarlyMorning => (t(0), t(6)),
        Pod::Morning | Pod::Am => (t(8), t(12)),
        Pod::Noon => (t(12), t(12)),
        Pod::Afternoon | Pod::Pm => (t(13), t(18)),
        Pod::Evening => (t(18), t(22)),
    }
}

fn resolve_time(spec: TimeSpec, kind: DueKind) -> Option<(Time, Precision)> {
    Some(match spec {
        TimeSpec::Eod => (END_OF_BUSINESS_DAY, Precision::Time),
        TimeSpec::Midnight => (Time::constant(23, 59, 0, 0), Precision::Time),
        TimeSpec::Pod(pod) => {
            let (start, end) = pod_range(pod);
            let t = if kind == DueKind::Deadline {
                end
            } else {
                start
            };
            (t, Precision::PartOfDay)
        }
        TimeSpec::At { hour, minute, pod } => {
            if minute > 59 || hour > 24 {
                return None;
            }
            let hour = match pod {
                None if (1..=6).contains(&hour) => hour + 12,
                None => hour,
                Some(Pod::EarlyMorning) => hour % 12,
                Some(Pod::Morning) => hour,
                Some(Pod::Am) => hour % 12,
                Some(Pod::Noon) if hour <= 3 => hour + 12,
                Some(Pod::Noon) => hour,
                Some(Pod::Afternoon | Pod::Pm) if hour < 12 => hour + 12,
                Some(Pod::Afternoon | Pod::Pm) => hour,
                Some(Pod::Evening) if hour < 12 => hour + 12,
                Some(Pod::Evening) => 24,
            };
            if hour >= 24 {
                return Some((Time::constant(23, 59, 0, 0), Precision::Time));
            }
            (hm(hour, minute)?, Precision::Time)
        }
    })
}

fn resolve_duration(amount: i64, unit: DurUnit, reference: &Zoned) -> Option<ResolvedDue> {
    let today = reference.date();
    let tz = reference.time_zone().clone();
    let (date, time, precision) = match unit {
        DurUnit::Minute | DurUnit::Hour => {
            let span = if unit == DurUnit::Minute {
                amount.minutes()
            } else {
                amount.hours()
            };
            let z = reference.checked_add(span).ok()?;
            let t = z
                .time()
                .with()
                .second(0)
                .subsec_nanosecond(0)
                .build()
                .ok()?;
            (z.date(), Some(t), Precision::Time)
        }
        DurUnit::Day => (plus_days(today, amount)?, None, Precision::Day),
        DurUnit::Week => (plus_days(today, 7 * amount)?, None, Precision::Day),
        DurUnit::Month => (
            today.checked_add(amount.months()).ok()?,
            None,
            Precision::Day,
        ),
        DurUnit::Year => (
            today.checked_add(amount.years()).ok()?,
            None,
            Precision::Day,
        ),
        DurUnit::BusinessDay => {
            let mut date = today;
            let mut left = amount;
            while left > 0 {
                date = date.tomorrow().ok()?;
                if date.weekday().to_monday_zero_offset() < 5 {
                    left -= 1;
                }
            }
            (date, None, Precision::Day)
        }
    };
    let at = date
        .to_datetime(time.unwrap_or(END_OF_BUSINESS_DAY))
        .to_zoned(tz)
        .ok()?
        .timestamp();
    Some(ResolvedDue {
        date,
        time,
        at,
        precision,
    })
}
