//! Chinese date and time rules (see the [module docs](super) for the
//! conventions).

use std::sync::LazyLock;

use regex::Captures;

use super::numerals::{NUM, parse_number};
use super::{
    DateSpec, DurUnit, Item, Made, MonthRef, Pod, Rule, TimeSpec, UnresolvedReason, WeekRef,
};

/// Parts of the day that may stand before an hour.
/// Cantonese words are included (上昼 morning, 下昼/晏昼 afternoon): calls
/// from Guangdong and Hong Kong mix them into Mandarin.
const POD: &str = "凌晨|早上|早晨|上午|上昼|中午|下午|下昼|晏昼|傍晚|晚上|夜里|夜间|晚";

pub(crate) fn rules() -> &'static [Rule] {
    static RULES: LazyLock<Vec<Rule>> = LazyLock::new(build);
    &RULES
}

fn num(caps: &Captures<'_>, name: &str) -> Option<u32> {
    caps.name(name).and_then(|m| parse_number(m.as_str()))
}

fn week_offset(prefix: Option<&str>) -> WeekRef {
    match prefix {
        None => WeekRef::Upcoming,
        Some("这" | "本") => WeekRef::Offset(0),
        Some("下") => WeekRef::Offset(1),
        Some("下下") => WeekRef::Offset(2),
        Some("上") => WeekRef::Offset(-1),
        Some(_) => WeekRef::Upcoming,
    }
}

fn month_offset(prefix: &str) -> i64 {
    match prefix.trim_end_matches('个') {
        "下" => 1,
        "下下" => 2,
        "上" => -1,
        _ => 0,
    }
}

fn weekday(c: &str) -> Option<i8> {
    Some(match c {
        "一" | "1" => 0,
        "二" | "2" => 1,
        "三" | "3" => 2,
        "四" | "4" => 3,
        "五" | "5" => 4,
        "六" | "6" => 5,
        "日" | "天" | "7" => 6,
        _ => return None,
    })
}

pub(crate) fn pod(word: &str) -> Option<Pod> {
    Some(match word {
        "凌晨" => Pod::EarlyMorning,
        "早上" | "早晨" | "上午" | "上昼" | "早" => Pod::Morning,
        "中午" => Pod::Noon,
        "下午" | "下昼" | "晏昼" => Pod::Afternoon,
        "傍晚" | "晚上" | "夜里" | "夜间" | "晚" => Pod::Evening,
        _ => return None,
    })
}

fn year(caps: &Captures<'_>) -> Option<Option<i16>> {
    match caps.name("y") {
        None => Some(None),
        Some(m) => Some(Some(i16::try_from(parse_number(m.as_str())?).ok()?)),
    }
}

fn build() -> Vec<Rule> {
    vec![
        // 今天 明天 后天 大后天 昨天 前天; Cantonese 听日 (tomorrow), 後日,
        // 寻日/琴日 (yesterday)
        Rule::new(
            "大后天|后天|後日|明天|明日|明儿个?|听日|聽日|今天|今日|今儿个?|昨天|昨日|寻日|尋日|琴日|前天",
            |c, _| {
                let n = match &c[0] {
                    "大后天" => 3,
                    "后天" | "後日" => 2,
                    "明天" | "明日" | "明儿" | "明儿个" | "听日" | "聽日" => 1,
                    "昨天" | "昨日" | "寻日" | "尋日" | "琴日" => -1,
                    "前天" => -2,
                    _ => 0,
                };
                Made::strong(Item::Date(DateSpec::Rel(n)))
            },
        ),
        // 今晚 明早 …
        Rule::new("今晚|今夜|今早|明早|明晨|明晚", |c, _| {
            let (d, p) = match &c[0] {
                "今晚" | "今夜" => (0, Pod::Evening),
                "今早" => (0, Pod::Morning),
                "明晚" => (1, Pod::Evening),
                _ => (1, Pod::Morning),
            };
            Made::strong(Item::DateTime(DateSpec::Rel(d), TimeSpec::Pod(p)))
        }),
        // 下周三 这周五 周五 星期天 下个礼拜一
        Rule::new(
            "(?:(?P<pre>这|本|下下|下|上)个?)?(?:周|星期|礼拜)(?P<d>[一二三四五六日天1-7])",
            |c, _| {
                let week = week_offset(c.name("pre").map(|m| m.as_str()));
                let weekday = weekday(&c["d"])?;
                Made::strong(Item::Date(DateSpec::Weekday { week, weekday }))
            },
        ),
        // 周末 这周末 下周末
        Rule::new(
            "(?:(?P<pre>这|本|下)个?)?(?:周末|礼拜天?末)",
            |c, _| {
                let week = week_offset(c.name("pre").map(|m| m.as_str()));
                Made::strong(Item::Date(DateSpec::Weekend { week }))
            },
        ),
        // 下周 本周 这个星期 (a whole week)
        Rule::new(
            "(?P<pre>这|本|下下|下)个?(?:周|星期|礼拜)",
            |c, _| {
                let offset = match week_offset(Some(&c["pre"])) {
                    WeekRef::Offset(n) => n,
                    WeekRef::Upcoming => 0,
                };
                Made::strong(Item::Date(DateSpec::Week { offset }))
            },
        ),
        // 月底 下个月初 3月底 本月中旬
        Rule::new(
            &format!(
                "(?:(?P<pre>这个|本|这|下下个?|下个?)|(?P<m>{NUM}))?月份?(?P<part>底|末|初|中旬|中|上旬|下旬)"
            ),
            |c, _| {
                let day = match &c["part"] {
                    "初" => Some(5),
                    "上旬" => Some(10),
                    "中" => Some(15),
                    "中旬" => Some(20),
                    _ => None,
                };
                let month = if let Some(m) = c.name("m") {
                    let m = parse_number(m.as_str())?;
                    if !(1..=12).contains(&m) {
                        return None;
                    }
                    MonthRef::Abs {
                        year: None,
                        month: i8::try_from(m).ok()?,
                    }
                } else if let Some(pre) = c.name("pre") {
                    MonthRef::Offset(month_offset(pre.as_str()))
                } else if day.is_none() {
                    MonthRef::Offset(0)
                } else {
                    MonthRef::Bare
                };
                Made::strong(Item::Date(DateSpec::MonthDay { month, day }))
            },
        ),
        // 下个月5号 本月15日
        Rule::new(
            &format!("(?P<pre>这个|本|下下个?|下个?)月(?P<d>{NUM})(?:号|日)?"),
            |c, _| {
                let day = num(c, "d")?;
                let month = MonthRef::Offset(month_offset(&c["pre"]));
                Made::strong(Item::Date(DateSpec::MonthDay {
                    month,
                    day: Some(day),
                }))
            },
        ),
        // 3月15日 三月十五号 2025年3月15日
        Rule::new(
            &format!(
                "(?:(?P<y>[0-9]{{4}}|[〇零一二三四五六七八九]{{4}})年)?(?P<m>{NUM})月(?P<d>{NUM})(?:号|日)?"
            ),
            |c, after| {
                // 一月一次 is "once a month", not January 1st.
                let suffixed = c[0].ends_with('号') || c[0].ends_with('日');
                if !suffixed
                    && [
                        "次", "个", "份", "趟", "遍", "张", "家", "台", "套", "批", "件", "万",
                        "千", "百",
                    ]
                    .iter()
                    .any(|s| after.starts_with(s))
                {
                    return None;
                }
                let month = num(c, "m")?;
                if !(1..=12).contains(&month) {
                    return None;
                }
                let year = year(c)?;
                let day = num(c, "d")?;
                Made::strong(Item::Date(DateSpec::MonthDay {
                    month: MonthRef::Abs {
                        year,
                        month: i8::try_from(month).ok()?,
                    },
                    day: Some(day),
                }))
            },
        ),
        // 15号 十五日 (not 15号楼, 3号线)
        Rule::new(&format!("(?P<d>{NUM})(?:号|日)"), |c, after| {
            if [
                "楼", "线", "码", "房", "窗", "机", "门", "车", "馆", "店", "位", "桌", "床",
            ]
            .iter()
            .any(|s| after.starts_with(s))
            {
                return None;
            }
            let day = num(c, "d")?;
            if !(1..=31).contains(&day) {
                return None;
            }
            Made::strong(Item::Date(DateSpec::MonthDay {
                month: MonthRef::Bare,
                day: Some(day),
            }))
        }),
        // 下个月 本月
        Rule::new("(?P<pre>这个|本|下下个?|下个?)月", |c, _| {
            Made::strong(Item::Date(DateSpec::Month {
                offset: month_offset(&c["pre"]),
            }))
        }),
        // 年底 今年年底 明年年底
        Rule::new(
            "(?P<pre>今年|明年)?年?(?:年底|年末)|(?P<pre2>今年|明年)底",
            |c, _| {
                let offset = match c.name("pre").or_else(|| c.name("pre2")).map(|m| m.as_str()) {
                    Some("明年") => 1,
                    _ => 0,
                };
                Made::strong(Item::Date(DateSpec::YearEnd { offset }))
            },
        ),
        // 两天后 三天内 一周内 半个月内 三个工作日内 两个小时内
        Rule::new(
            &format!(
                "(?P<n>{NUM}|半|几)个?(?P<u>分钟|小时|钟头|工作日|天|日|周|星期|礼拜|月|年)(?P<rel>之内|以内|内|之后|以后|后)"
            ),
            |c, _| {
                let within = matches!(&c["rel"], "之内" | "以内" | "内");
                let item = duration(&c["n"], &c["u"])?;
                if within || matches!(item, Item::Unresolved(_)) {
                    Made::deadline(item)
                } else {
                    Made::strong(item)
                }
            },
        ),
        // 过两天 过几天
        Rule::new(&format!("过(?P<n>{NUM}|几)天"), |c, _| {
            duration(&c["n"], "天").and_then(Made::strong)
        }),
        // 下午三点半 晚上8点 15:30 十点一刻
        Rule::new(
            &format!(
                "(?P<pod>{POD})?(?P<h>{NUM})(?P<unit>点钟|点|时)(?:(?P<half>半)|(?P<q>一刻|三刻)|(?P<mi>{NUM})分?)?"
            ),
            |c, _| {
                let hour = num(c, "h")?;
                let minute = if c.name("half").is_some() {
                    30
                } else if let Some(q) = c.name("q") {
                    if q.as_str() == "一刻" { 15 } else { 45 }
                } else {
                    c.name("mi").map_or(Some(0), |m| parse_number(m.as_str()))?
                };
                let pod = c.name("pod").and_then(|m| pod(m.as_str()));
                let spelled = !c["h"]
                    .chars()
                    .any(|ch| ch.is_ascii_digit() || ('０'..='９').contains(&ch));
                let bare = pod.is_none()
                    && c.name("half").is_none()
                    && c.name("q").is_none()
                    && c.name("mi").is_none()
                    && &c["unit"] != "点钟";
                let item = Item::Time(TimeSpec::At { hour, minute, pod });
                if spelled && bare {
                    Made::weak(item)
                } else {
                    Made::strong(item)
                }
            },
        ),
        Rule::new(
            &format!("(?P<pod>{POD})?(?P<h>[0-9]{{1,2}})[:：](?P<mi>[0-9]{{2}})"),
            |c, _| {
                let pod = c.name("pod").and_then(|m| pod(m.as_str()));
                Made::strong(Item::Time(TimeSpec::At {
                    hour: num(c, "h")?,
                    minute: num(c, "mi")?,
                    pod,
                }))
            },
        ),
        // 下午 晚上 (not 下午好)
        Rule::new(
            "凌晨|早上|早晨|上午|上昼|中午|下午|下昼|晏昼|傍晚|晚上|夜里",
            |c, after| {
                if after.starts_with('好') {
                    return None;
                }
                Made::strong(Item::Time(TimeSpec::Pod(pod(&c[0])?)))
            },
        ),
        // 下班前 / 下班后
        Rule::new(
            "下班(?P<rel>前|之前|以前|后|之后|以后)",
            |c, _| {
                if c["rel"].contains('前') {
                    Made::deadline(Item::Time(TimeSpec::Eod))
                } else {
                    Made::strong(Item::Time(TimeSpec::Eod))
                }
            },
        ),
        // Deadline markers.
        Rule::new(
            "最晚|最迟|截止到?|截至|不晚于|不迟于",
            |_, _| Made::strong(Item::Before),
        ),
        Rule::new("之前|以前|前|为止|之内|以内|内", |c, after| {
            if &c[0] == "前"
                && ["天", "往", "面", "边", "台", "期"]
                    .iter()
                    .any(|s| after.starts_with(s))
            {
                return None;
            }
            Made::strong(Item::After)
        }),
        // ASAP.
        Rule::new(
            "尽快|尽早|越快越好|马上|立刻|立即|赶紧|第一时间|抓紧",
            |_, _| Made::strong(Item::Asap),
        ),
        // Holidays.
        Rule::new(
            "节后|节前|假期(?:后|之后|结束后|回来)|(?:春节|国庆|中秋|端午|五一|十一|元旦|清明|过年|放假|长假)(?:前|后|之前|之后|以后|以前|回来|结束)|过完年|年后|年前|开年",
            |_, _| Made::strong(Item::Unresolved(UnresolvedReason::Holiday)),
        ),
        // Vague.
        Rule::new(
            "改天|回头|晚点|晚些时候|稍后|过段时间|过阵子|抽空|有空的时候",
            |_, _| Made::strong(Item::Unresolved(UnresolvedReason::Vague)),
        ),
    ]
}

fn duration(n: &str, unit: &str) -> Option<Item> {
    if n == "几" {
        return Some(Item::Unresolved(UnresolvedReason::Vague));
    }
    if n == "半" {
        let (amount, unit) = match unit {
            "小时" | "钟头" => (30, DurUnit::Minute),
            "天" | "日" => (12, DurUnit::Hour),
            "月" => (15, DurUnit::Day),
            "年" => (6, DurUnit::Month),
            _ => return None,
        };
        return Some(Item::Duration { amount, unit });
    }
    let amount = i64::from(parse_number(n)?);
    let unit = match unit {
        "分钟" => DurUnit::Minute,
        "小时" | "钟头" => DurUnit::Hour,
        "工作日" => DurUnit::BusinessDay,
        "天" | "日" => DurUnit::Day,
        "周" | "星期" | "礼拜" => DurUnit::Week,
        "月" => DurUnit::Month,
        "年" => DurUnit::Year,
        _ => return None,
    };
    Some(Item::Duration { amount, unit })
}
