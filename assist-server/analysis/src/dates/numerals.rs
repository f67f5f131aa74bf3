//! Numbers as people write and say them: ASCII and full-width digits,
//! Chinese numerals (三, 十五, 二十一, 两, 一百零五, 二〇二五) and English number
//! words (one … twelve, a / an, a couple).

/// The regular-expression fragment that matches one number in any of the
/// forms [`parse_number`] accepts (digits or Chinese numerals).
pub const NUM: &str = "(?:[0-9０-９]+|[零〇一二两三四五六七八九十百]+)";

/// Parse digits (ASCII or full-width) or Chinese numerals. `None` for
/// anything else, an empty string or a number that does not fit a `u32`.
pub fn parse_number(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.chars()
        .all(|c| c.is_ascii_digit() || ('０'..='９').contains(&c))
    {
        let mut n: u32 = 0;
        for c in s.chars() {
            let d = if c.is_ascii_digit() {
                c as u32 - '0' as u32
            } else {
                c as u32 - '０' as u32
            };
            n = n.checked_mul(10)?.checked_add(d)?;
        }
        return Some(n);
    }
    parse_chinese(s)
}

fn chinese_digit(c: char) -> Option<u32> {
    Some(match c {
        '零' | '〇' => 0,
        '一' => 1,
        '二' | '两' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

fn parse_chinese(s: &str) -> Option<u32> {
    let has_unit = s.chars().any(|c| matches!(c, '十' | '百' | '千'));
    if !has_unit {
        // Positional: 二〇二五, 三.
        let mut n: u32 = 0;
        for c in s.chars() {
            n = n.checked_mul(10)?.checked_add(chinese_digit(c)?)?;
        }
        return Some(n);
    }
    let mut total: u32 = 0;
    let mut current: Option<u32> = None;
    for c in s.chars() {
        let unit = match c {
            '十' => 10,
            '百' => 100,
            '千' => 1000,
            _ => {
                current = Some(chinese_digit(c)?);
                continue;
            }
        };
        // 十五 = 15: a unit without a digit before it counts once.
        total = total.checked_add(current.unwrap_or(1).checked_mul(unit)?)?;
        current = None;
    }
    total.checked_add(current.unwrap_or(0))
}

/// English number words used in durations: "a", "an", "one" … "twelve",
/// "couple" (2). Digits are accepted too.
pub fn parse_english_number(word: &str) -> Option<u32> {
    let w = word.trim().to_ascii_lowercase();
    Some(match w.as_str() {
        "a" | "an" | "one" => 1,
        "two" | "couple" | "a couple" | "a couple of" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        _ => return parse_number(&w),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        for (text, want) in [
            ("3", Some(3)),
            ("15", Some(15)),
            ("１５", Some(15)),
            ("三", Some(3)),
            ("两", Some(2)),
            ("十", Some(10)),
            ("十五", Some(15)),
            ("二十", Some(20)),
            ("二十一", Some(21)),
            ("三十一", Some(31)),
            ("一百零五", Some(105)),
            ("二〇二五", Some(2025)),
            ("零五", Some(5)),
            ("", None),
            ("三a", None),
            ("99999999999", None),
        ] {
            assert_eq!(parse_number(text), want, "{text:?}");
        }
    }

    #[test]
    fn english_words() {
        for (text, want) in [
            ("a", Some(1)),
            ("an", Some(1)),
            ("Three", Some(3)),
            ("twelve", Some(12)),
            ("couple", Some(2)),
            ("7", Some(7)),
            ("few", None),
        ] {
            assert_eq!(parse_english_number(text), want, "{text:?}");
        }
    }
}
