//! Word and character error rates, with the normalisation that makes two
//! transcripts of the same speech compare equal:
//!
//! - English: lower case, numbers spelled out (`$2,500` → "two thousand five
//!   hundred dollars", `31st` → "thirty first", `15%` → "fifteen percent"),
//!   common contractions expanded, punctuation removed; WER = word edits /
//!   reference words.
//! - Mandarin: Traditional → Simplified, punctuation and spaces removed,
//!   Arabic numbers read out in Chinese (`199` → 一百九十九, long digit strings
//!   digit by digit), 两 → 二; CER = character edits / reference characters.
//!
//! Shared by `asr` (against references) and `asr-bench`/`asr-stream`
//! (between two engines' transcripts).

// ------------------------------------------------------------- normalising

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// An integer in English words, without "and".
fn en_number(n: u64) -> String {
    fn below_1000(n: u64) -> String {
        let mut parts = Vec::new();
        if n >= 100 {
            parts.push(format!("{} hundred", ONES[(n / 100) as usize]));
        }
        let r = n % 100;
        if r >= 20 {
            parts.push(TENS[(r / 10) as usize].to_string());
            if !r.is_multiple_of(10) {
                parts.push(ONES[(r % 10) as usize].to_string());
            }
        } else if r > 0 || n == 0 {
            parts.push(ONES[r as usize].to_string());
        }
        parts.join(" ")
    }
    if n == 0 {
        return "zero".into();
    }
    let scales = [
        (1_000_000_000, "billion"),
        (1_000_000, "million"),
        (1_000, "thousand"),
    ];
    let mut rest = n;
    let mut parts = Vec::new();
    for (size, name) in scales {
        if rest >= size {
            parts.push(format!("{} {name}", below_1000(rest / size)));
            rest %= size;
        }
    }
    if rest > 0 {
        parts.push(below_1000(rest));
    }
    parts.join(" ")
}

/// "one" → "first", "twenty three" → "twenty third".
fn en_ordinal(words: &str) -> String {
    let (head, last) = match words.rsplit_once(' ') {
        Some((h, l)) => (format!("{h} "), l),
        None => (String::new(), words),
    };
    let ord = match last {
        "one" => "first".to_string(),
        "two" => "second".to_string(),
        "three" => "third".to_string(),
        "five" => "fifth".to_string(),
        "eight" => "eighth".to_string(),
        "nine" => "ninth".to_string(),
        "twelve" => "twelfth".to_string(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    };
    format!("{head}{ord}")
}

/// A run of digits (commas allowed inside) in words: digit by digit when it
/// starts with 0 or is longer than 9 digits, else as a number.
fn en_digits(digits: &str) -> String {
    let d: String = digits.chars().filter(|c| c.is_ascii_digit()).collect();
    if d.is_empty() {
        return String::new();
    }
    if (d.len() > 1 && d.starts_with('0')) || d.len() > 9 {
        return d
            .chars()
            .map(|c| ONES[c.to_digit(10).unwrap_or(0) as usize])
            .collect::<Vec<_>>()
            .join(" ");
    }
    en_number(d.parse().unwrap_or(0))
}

/// Normalise English text into words for WER.
pub fn normalize_en(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace(['’', '‘'], "'");
    let lower = lower
        .replace("a.m.", " am ")
        .replace("p.m.", " pm ")
        .replace("e-mail", "email");
    let chars: Vec<char> = lower.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let dollar = c == '$' && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit());
        if c.is_ascii_digit() || dollar {
            let start = if dollar { i + 1 } else { i };
            let mut j = start;
            while j < chars.len()
                && (chars[j].is_ascii_digit()
                    || (chars[j] == ',' && chars.get(j + 1).is_some_and(|c| c.is_ascii_digit())))
            {
                j += 1;
            }
            let int_part: String = chars[start..j].iter().collect();
            let mut words = en_digits(&int_part);
            // Decimals: "49.99" → "forty nine point nine nine".
            if chars.get(j) == Some(&'.') && chars.get(j + 1).is_some_and(|c| c.is_ascii_digit()) {
                let mut k = j + 1;
                let mut frac = Vec::new();
                while k < chars.len() && chars[k].is_ascii_digit() {
                    frac.push(ONES[chars[k].to_digit(10).unwrap_or(0) as usize]);
                    k += 1;
                }
                words = format!("{words} point {}", frac.join(" "));
                j = k;
            }
            // Ordinals: 1st, 2nd, 3rd, 12th.
            let suffix: String = chars[j..(j + 2).min(chars.len())].iter().collect();
            if matches!(suffix.as_str(), "st" | "nd" | "rd" | "th")
                && !chars.get(j + 2).is_some_and(|c| c.is_alphabetic())
            {
                words = en_ordinal(&words);
                j += 2;
            }
            out.push(' ');
            out.push_str(&words);
            if dollar {
                out.push_str(" dollars");
            }
            out.push(' ');
            i = j;
            continue;
        }
        match c {
            '%' => out.push_str(" percent "),
            '&' => out.push_str(" and "),
            c if c.is_alphanumeric() || c == '\'' => out.push(c),
            _ => out.push(' '),
        }
        i += 1;
    }
    let mut words = Vec::new();
    for w in out.split_whitespace() {
        let w = w.trim_matches('\'');
        let expanded: &[&str] = match w {
            "i'll" => &["i", "will"],
            "i'm" => &["i", "am"],
            "i've" => &["i", "have"],
            "we'll" => &["we", "will"],
            "we're" => &["we", "are"],
            "we've" => &["we", "have"],
            "you're" => &["you", "are"],
            "you'll" => &["you", "will"],
            "it's" => &["it", "is"],
            "that's" => &["that", "is"],
            "don't" => &["do", "not"],
            "doesn't" => &["does", "not"],
            "can't" => &["can", "not"],
            "cannot" => &["can", "not"],
            "won't" => &["will", "not"],
            "let's" => &["let", "us"],
            "okay" | "ok" => &["okay"],
            "licenses" => &["licences"],
            "license" => &["licence"],
            "" => &[],
            _ => {
                words.push(w.to_string());
                continue;
            }
        };
        words.extend(expanded.iter().map(|s| s.to_string()));
    }
    words
}

const ZH_DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// An integer read out in Chinese (二 for 2, as after normalising 两).
fn zh_number(n: u64) -> String {
    fn below_10000(n: u64, leading: bool) -> String {
        let units = ['千', '百', '十'];
        let divs = [1000, 100, 10];
        let mut s = String::new();
        let mut zero = false;
        let mut started = false;
        for (u, d) in units.iter().zip(divs) {
            let digit = (n / d) % 10;
            if digit == 0 {
                if started {
                    zero = true;
                }
                continue;
            }
            if zero {
                s.push('零');
                zero = false;
            }
            // 十五, not 一十五, at the start of a number.
            if !(d == 10 && digit == 1 && !started && leading) {
                s.push(ZH_DIGITS[digit as usize]);
            }
            s.push(*u);
            started = true;
        }
        let last = n % 10;
        if last != 0 {
            if zero {
                s.push('零');
            }
            s.push(ZH_DIGITS[last as usize]);
        }
        s
    }
    if n == 0 {
        return "零".into();
    }
    let mut parts = Vec::new();
    let (yi, wan, rest) = (n / 100_000_000, (n / 10_000) % 10_000, n % 10_000);
    if yi > 0 {
        parts.push(format!("{}亿", zh_number(yi)));
    }
    if wan > 0 {
        let zero = yi > 0 && wan < 1000;
        parts.push(format!(
            "{}{}万",
            if zero { "零" } else { "" },
            below_10000(wan, yi == 0)
        ));
    } else if yi > 0 && rest > 0 {
        parts.push("零".into());
    }
    if rest > 0 {
        let zero = n >= 10_000 && rest < 1000 && wan > 0;
        parts.push(format!(
            "{}{}",
            if zero { "零" } else { "" },
            below_10000(rest, n < 10_000)
        ));
    }
    parts.concat()
}

/// Normalise Chinese text into characters for CER.
pub fn normalize_zh(text: &str) -> Vec<char> {
    let simplified = zhconv::zhconv(text, zhconv::Variant::ZhHans).to_lowercase();
    let chars: Vec<char> = simplified.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len()
                && (chars[j].is_ascii_digit()
                    || (chars[j] == ',' && chars.get(j + 1).is_some_and(|c| c.is_ascii_digit())))
            {
                j += 1;
            }
            let digits: String = chars[i..j].iter().filter(|c| c.is_ascii_digit()).collect();
            let next = chars.get(j).copied();
            let by_digit = digits.len() > 8
                || (digits.len() > 1 && digits.starts_with('0'))
                || (digits.len() == 4 && next == Some('年'))
                || next == Some('折');
            let mut words = if by_digit {
                digits
                    .chars()
                    .map(|d| ZH_DIGITS[d.to_digit(10).unwrap_or(0) as usize])
                    .collect()
            } else {
                zh_number(digits.parse().unwrap_or(0))
            };
            if next == Some('.') && chars.get(j + 1).is_some_and(|c| c.is_ascii_digit()) {
                words.push('点');
                j += 1;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    words.push(ZH_DIGITS[chars[j].to_digit(10).unwrap_or(0) as usize]);
                    j += 1;
                }
            }
            if chars.get(j) == Some(&'%') {
                words = format!("百分之{words}");
                j += 1;
            }
            out.push_str(&words);
            i = j;
            continue;
        }
        if c.is_alphanumeric() {
            out.push(if c == '两' { '二' } else { c });
        }
        i += 1;
    }
    out.chars().collect()
}

fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Word edits and reference words, after [`normalize_en`].
pub fn word_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r = normalize_en(reference);
    let h = normalize_en(hypothesis);
    (edit_distance(&r, &h), r.len())
}

/// Character edits and reference characters, after [`normalize_zh`].
pub fn char_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r = normalize_zh(reference);
    let h = normalize_zh(hypothesis);
    (edit_distance(&r, &h), r.len())
}

/// Word error rate of one pair.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (e, n) = word_errors(reference, hypothesis);
    e as f64 / n.max(1) as f64
}

/// Character error rate of one pair.
pub fn cer(reference: &str, hypothesis: &str) -> f64 {
    let (e, n) = char_errors(reference, hypothesis);
    e as f64 / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_numbers_prices_and_ordinals_normalise_alike() {
        assert_eq!(
            normalize_en("The fee is $2,500, due March 31st."),
            normalize_en("the fee is two thousand five hundred dollars due march thirty first")
        );
        assert_eq!(
            normalize_en("15% off, I'll call at 6 p.m."),
            normalize_en("fifteen percent off i will call at six pm")
        );
        assert_eq!(
            normalize_en("0183 and 49.99"),
            [
                "zero", "one", "eight", "three", "and", "forty", "nine", "point", "nine", "nine"
            ]
        );
        assert_eq!(en_number(1_000_120), "one million one hundred twenty");
        assert_eq!(en_ordinal("twenty"), "twentieth");
    }

    #[test]
    fn chinese_numbers_and_scripts_normalise_alike() {
        assert_eq!(zh_number(199), "一百九十九");
        assert_eq!(zh_number(2500), "二千五百");
        assert_eq!(zh_number(10), "十");
        assert_eq!(zh_number(15), "十五");
        assert_eq!(zh_number(105), "一百零五");
        assert_eq!(zh_number(30_012), "三万零一十二");
        assert_eq!(zh_number(120_000), "十二万");
        let n = |s: &str| normalize_zh(s).into_iter().collect::<String>();
        assert_eq!(n("每個月199元，打85折！"), n("每个月一百九十九元打八五折"));
        assert_eq!(n("兩千五百元"), n("2500元"));
        assert_eq!(n("13800138000"), "一三八零零一三八零零零");
        assert_eq!(n("3月31號"), "三月三十一号");
        assert_eq!(n("15%"), "百分之十五");
    }

    #[test]
    fn error_rates_count_edits_against_the_reference() {
        assert_eq!(word_errors("a b c d", "a x c"), (2, 4));
        assert_eq!(char_errors("一二三四", "一二三四五"), (1, 4));
        assert_eq!(wer("same words", "Same, words."), 0.0);
        assert_eq!(cer("", ""), 0.0);
    }
}
