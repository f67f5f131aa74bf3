#!/usr/bin/env python3
"""Validate the post-call analysis evaluation set (transcripts.jsonl) and print statistics.

Usage: python3 check.py             # validate, print statistics, exit 1 on any error
       python3 check.py --markdown  # the statistics as Markdown tables (for README.md)
       python3 check.py --no-counts # skip the minimum counts (while the set is being written)

Standard library only. Besides the schema, it checks that every source_quote, evidence_quote and
due_text is a verbatim substring of a segment, that segment times are consistent, and that every
due date whose due_text it can read agrees with the conventions of README.md (its own small resolver
is a cross-check of the hand-resolved references, not the product's extractor).
"""
import calendar
import collections
import datetime as dt
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FILE = "transcripts.jsonl"

PRODUCTS = {"zh": {"云客CRM", "智能外呼", "工作手机", "企业宽带", "商用净水器"},
            "en": {"Yunke CRM", "Smart Dialer", "Work Phone", "Business Broadband",
                   "Commercial Water Purifier"}}
CATEGORIES = {"side_deal", "kickback", "private_contact", "competitor", "abuse",
              "over_promising", "compliance_phrase"}
SENTIMENTS = {"positive", "neutral", "negative", "improving", "worsening"}
TOP_FIELDS = {"id", "language", "kind", "started_at", "product", "segments", "reference"}
SEG_FIELDS = {"start_ms", "end_ms", "speaker", "text"}
REF_FIELDS = {"summary", "customer_needs", "objections", "tasks", "risk_tags", "sentiment",
              "next_best_action"}
TASK_FIELDS = {"title", "owner", "due", "due_text", "source_quote"}
ID_RE = re.compile(r"^(zh|en)-\d{3}$")
STARTED_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
DUE_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DUE_TS_RE = STARTED_RE
CJK = re.compile(r"[\u4e00-\u9fff]")
KANA = re.compile(r"[\u3040-\u30ff]")
LATIN = re.compile(r"[A-Za-z]")
CANTONESE = re.compile(r"[唔咁嘅喺冇哋嗰啲乜嘢咗]")

# Required counts (the brief: >= 64 transcripts, about 40 zh / 24 en, 3 long, 3 very short,
# about a third with a risk tag).
MIN_TOTAL, MIN_ZH, MIN_EN, MIN_LONG, MIN_SHORT = 64, 38, 22, 3, 3
LONG_SEGS, SHORT_SEGS = 60, 3
MIN_RISK_SHARE = 0.30

errors, warnings = [], []


def err(msg):
    errors.append(msg)


def warn(msg):
    warnings.append(msg)


# ---------------------------------------------------------------------------------------------
# Due-date resolver (the conventions of README.md, for the phrasings this set uses)

CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
             "七": 7, "八": 8, "九": 9, "十": 10}
ZH_WEEKDAY = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
EN_WEEKDAY = {d.lower(): i for i, d in enumerate(calendar.day_name)}
EN_HOURS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
            "twelve"]
EN_NUM = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
          "ten": 10, "twenty-four": 24, "24": 24, "48": 48}
UNRESOLVABLE = re.compile(r"过几天|过两天|尽快|晚点|稍后|回头|到时候|一会儿|改天|有空|"
                          r"\bsoon\b|\basap\b|\blater\b|\bsometime\b|\bat some point\b|"
                          r"\bwhen\b|\bshortly\b|\bin a bit\b", re.I)
NOT_RECOGNISED = object()


def cn_number(s):
    """'15', '十五', '二十八', '三' -> int; None if not a number."""
    if s.isdigit():
        return int(s)
    if not s or any(c not in CN_DIGITS for c in s):
        return None
    if "十" not in s:
        v = 0
        for c in s:
            v = v * 10 + CN_DIGITS[c]
        return v
    tens, _, ones = s.partition("十")
    return (CN_DIGITS[tens] if tens else 1) * 10 + (CN_DIGITS[ones] if ones else 0)


def week_day(today, week_offset, weekday):
    monday = today - dt.timedelta(days=today.weekday())
    return monday + dt.timedelta(days=7 * week_offset + weekday)


def bare_weekday(today, weekday):
    return week_day(today, 0 if weekday >= today.weekday() else 1, weekday)


def month_end(year, month):
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def day_of_month(today, day):
    y, m = today.year, today.month
    if day < today.day:
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return dt.date(y, m, day)


def add_working_days(today, n):
    d = today
    while n > 0:
        d += dt.timedelta(days=1)
        if d.weekday() < 5:
            n -= 1
    return d


NUM = r"(\d{1,2}|[零〇一二两三四五六七八九十]{1,3})"


def resolve(text, started):
    """Return the due date the conventions give for `text` (str, or None when the words name no
    resolvable date) or NOT_RECOGNISED when this small resolver does not know the phrasing."""
    today = started.date()
    t = text.strip()
    low = t.lower()
    date, hour, minute, exact = None, None, 0, None

    # --- Chinese (and the Cantonese 听日 / 上昼 / 下昼)
    m = re.search(r"下下(?:周|星期|礼拜)([一二三四五六日天])", t)
    if m:
        date = week_day(today, 2, ZH_WEEKDAY[m.group(1)])
    if date is None:
        m = re.search(r"下(?:个)?(?:周|星期|礼拜)([一二三四五六日天])", t)
        if m:
            date = week_day(today, 1, ZH_WEEKDAY[m.group(1)])
    if date is None:
        m = re.search(r"(?:这|本)(?:个)?(?:周|星期|礼拜)([一二三四五六日天])", t)
        if m:
            date = week_day(today, 0, ZH_WEEKDAY[m.group(1)])
    if date is None:
        m = re.search(r"(?:周|星期|礼拜)([一二三四五六日天])", t)
        if m:
            date = bare_weekday(today, ZH_WEEKDAY[m.group(1)])
    if date is None:
        if "大后天" in t:
            date = today + dt.timedelta(days=3)
        elif "后天" in t:
            date = today + dt.timedelta(days=2)
        elif re.search(r"明天|明早|明儿|明晚|听日", t):
            date = today + dt.timedelta(days=1)
        elif re.search(r"今天|今晚|今儿|今日|下班前|下班之前", t):
            date = today
        elif re.search(r"^(?:上午|下午|晚上|早上|上昼|下昼)", t):
            date = today
    if date is None and re.search(r"(?:这|本)(?:个)?(?:周|星期|礼拜)(?:内|之内)", t):
        date = max(today, week_day(today, 0, 4))
    if date is None and re.search(r"下个?(?:周|星期|礼拜)(?![一二三四五六日天])", t):
        date = week_day(today, 1, 4)
    if date is None and re.search(r"下个?月底", t):
        y, mo = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
        date, hour = month_end(y, mo), 18
    if date is None and "月底" in t:
        date, hour = month_end(today.year, today.month), 18
    if date is None:
        m = re.search(NUM + r"月" + NUM + r"[号日]", t)
        if m:
            mo, d = cn_number(m.group(1)), cn_number(m.group(2))
            y = today.year + (1 if (mo, d) < (today.month, today.day) else 0)
            date = dt.date(y, mo, d)
    if date is None:
        m = re.search(NUM + r"号", t)
        if m:
            date = day_of_month(today, cn_number(m.group(1)))
    if date is None:
        m = re.search(NUM + r"个工作日", t)
        if m:
            date = add_working_days(today, cn_number(m.group(1)))
    if date is None:
        m = re.search(NUM + r"天(?:内|之内|以内)", t)
        if m:
            date = today + dt.timedelta(days=cn_number(m.group(1)))
    m = re.search(r"(上午|早上|中午|下午|晚上|今晚|明晚|上昼|下昼)?" + NUM + r"点(半)?", t)
    if m:
        hour = cn_number(m.group(2))
        if m.group(1) in ("下午", "晚上", "今晚", "明晚", "下昼") and hour < 12:
            hour += 12
        if m.group(1) == "中午" and hour < 6:
            hour += 12
        minute = 30 if m.group(3) else 0
    elif "中午" in t:
        hour = 12
    elif re.search(r"下班前|下班之前", t):
        hour = 18

    # --- English
    if date is None:
        m = re.search(r"\bnext (monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", low)
        if m:
            date = week_day(today, 1, EN_WEEKDAY[m.group(1)])
    if date is None:
        m = re.search(r"\bthis (monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", low)
        if m:
            date = week_day(today, 0, EN_WEEKDAY[m.group(1)])
    if date is None:
        m = re.search(r"\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", low)
        if m:
            date = bare_weekday(today, EN_WEEKDAY[m.group(1)])
    if date is None:
        if "day after tomorrow" in low:
            date = today + dt.timedelta(days=2)
        elif "tomorrow" in low:
            date = today + dt.timedelta(days=1)
        elif re.search(r"\btoday\b|\btonight\b|\beod\b|end of (the )?day|close of business|\bcob\b|"
                       r"\bthis (morning|afternoon|evening)\b", low):
            date = today
    if date is None and re.search(r"\bnext week\b", low):
        date = week_day(today, 1, 4)
    if date is None and re.search(r"end of (this|the) week|\bthis week\b", low):
        date = max(today, week_day(today, 0, 4))
    if date is None and re.search(r"end of (the|this) month|month[- ]end", low):
        date, hour = month_end(today.year, today.month), 18
    if date is None and re.search(r"\b(?:within|in) (?:the|an|one) hour\b", low):
        exact = started + dt.timedelta(hours=1)
    if date is None and exact is None:
        m = re.search(r"\b(?:in|within) (\w+(?:-\w+)?) (hours?|days?|business days?|working days?)\b", low)
        if m and m.group(1) in EN_NUM or (m and m.group(1).isdigit()):
            n = EN_NUM.get(m.group(1)) or int(m.group(1))
            if m.group(2).startswith("hour"):
                exact = started + dt.timedelta(hours=n)
            elif m.group(2).startswith(("business", "working")):
                date = add_working_days(today, n)
            else:
                date = today + dt.timedelta(days=n)
    if date is None:
        m = re.search(r"\b(january|february|march|april|may|june|july|august|september|october|"
                      r"november|december) (\d{1,2})(?:st|nd|rd|th)?\b", low)
        if m:
            mo = list(calendar.month_name).index(m.group(1).capitalize())
            d = int(m.group(2))
            y = today.year + (1 if (mo, d) < (today.month, today.day) else 0)
            date = dt.date(y, mo, d)
    if date is None:
        m = re.search(r"\b(?:the )?(\d{1,2})(?:st|nd|rd|th)\b", low)
        if m:
            date = day_of_month(today, int(m.group(1)))
    m = re.search(r"\b(\d{1,2}|" + "|".join(EN_HOURS) + r")(?::(\d\d))? ?(am|pm|a\.m\.|p\.m\.)", low)
    if m:
        h = EN_HOURS.index(m.group(1)) + 1 if m.group(1) in EN_HOURS else int(m.group(1))
        hour = h % 12 + (12 if m.group(3).startswith("p") else 0)
        minute = int(m.group(2) or 0)
    elif re.search(r"\bnoon\b|\bmidday\b", low):
        hour = 12
    elif re.search(r"\beod\b|end of (the )?day|close of business|\bcob\b", low):
        hour = 18

    if exact is not None:
        return exact.isoformat()
    if date is None and hour is not None:
        date = today
    if date is None:
        if UNRESOLVABLE.search(t):
            return None
        return NOT_RECOGNISED
    if hour is None:
        return date.isoformat()
    tz = started.strftime("%z")
    tz = tz[:3] + ":" + tz[3:]
    return f"{date.isoformat()}T{hour:02d}:{minute:02d}:00{tz}"


# ---------------------------------------------------------------------------------------------

def load():
    rows = []
    with open(os.path.join(HERE, FILE), encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                err(f"{FILE}:{n}: blank line")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                err(f"{FILE}:{n}: invalid JSON: {e}")
                continue
            if not isinstance(obj, dict):
                err(f"{FILE}:{n}: not a JSON object")
                continue
            rows.append(obj)
    return rows


def is_str(v):
    return isinstance(v, str) and v.strip() != ""


def in_segments(quote, segs):
    return any(quote in s["text"] for s in segs)


def check_row(r, stats):
    rid = r.get("id", "?")
    where = f"{rid}:"
    if set(r) != TOP_FIELDS:
        err(f"{where} fields {sorted(r)} != {sorted(TOP_FIELDS)}")
        return
    if not isinstance(rid, str) or not ID_RE.match(rid):
        err(f"{where} bad id")
    lang = r["language"]
    if lang not in ("zh", "en"):
        err(f"{where} bad language {lang!r}")
        return
    if not rid.startswith(lang + "-"):
        err(f"{where} id prefix does not match language")
    if r["kind"] not in ("call", "chat"):
        err(f"{where} bad kind {r['kind']!r}")
    if not isinstance(r["started_at"], str) or not STARTED_RE.match(r["started_at"]):
        err(f"{where} started_at must be ISO 8601 with an offset")
        return
    started = dt.datetime.fromisoformat(r["started_at"])
    if lang == "zh" and not r["started_at"].endswith("+08:00"):
        err(f"{where} Chinese transcripts use +08:00")
    if r["product"] not in PRODUCTS[lang]:
        err(f"{where} product {r['product']!r} not one of {sorted(PRODUCTS[lang])}")

    segs = r["segments"]
    if not isinstance(segs, list) or not segs:
        err(f"{where} segments must be a non-empty list")
        return
    prev_start, max_end, max_end_speaker = -1, 0, None
    for i, s in enumerate(segs):
        w = f"{where} segment {i}:"
        if not isinstance(s, dict) or set(s) != SEG_FIELDS:
            err(f"{w} fields must be {sorted(SEG_FIELDS)}")
            return
        if s["speaker"] not in ("rep", "customer"):
            err(f"{w} bad speaker {s['speaker']!r}")
        if not is_str(s["text"]):
            err(f"{w} empty text")
        a, b = s["start_ms"], s["end_ms"]
        if not (isinstance(a, int) and isinstance(b, int)) or isinstance(a, bool) or isinstance(b, bool):
            err(f"{w} start_ms/end_ms must be integers")
            return
        if a < 0 or b < a:
            err(f"{w} negative time or duration ({a}..{b})")
        if a < prev_start:
            err(f"{w} starts before the previous segment")
        if r["kind"] == "chat":
            if a != b:
                err(f"{w} chat messages have start_ms == end_ms (the time the message was sent)")
        else:
            if b == a:
                err(f"{w} a call segment needs a duration")
            if i and a < max_end:
                if s["speaker"] == max_end_speaker:
                    err(f"{w} overlaps the same speaker's previous segment")
                else:
                    stats["interruptions"] += 1
                if max_end - a > 3000:
                    err(f"{w} overlap of {max_end - a} ms is too long for an interruption")
        prev_start = a
        if b >= max_end:
            max_end, max_end_speaker = b, s["speaker"]

    ref = r["reference"]
    if not isinstance(ref, dict) or set(ref) != REF_FIELDS:
        err(f"{where} reference fields must be {sorted(REF_FIELDS)}")
        return
    summary = ref["summary"]
    if not is_str(summary):
        err(f"{where} empty summary")
    else:
        if lang == "zh" and not CJK.search(summary):
            err(f"{where} a zh summary must be in Chinese")
        if lang == "en" and CJK.search(summary):
            err(f"{where} an en summary must be in English")
        n_sent = len(re.findall(r"[。！？]|[.!?](?=\s|$)", summary))
        if not 1 <= n_sent <= 4:
            warn(f"{where} summary has {n_sent} sentences (2-4 expected)")
    for need in ref["customer_needs"] if isinstance(ref["customer_needs"], list) else [None]:
        if not is_str(need):
            err(f"{where} customer_needs must be a list of strings")
    if not isinstance(ref["objections"], list):
        err(f"{where} objections must be a list")
    else:
        for o in ref["objections"]:
            if not isinstance(o, dict) or set(o) != {"objection", "answer"} or not is_str(o["objection"]) \
                    or not (o["answer"] is None or is_str(o["answer"])):
                err(f"{where} bad objection {o!r}")
    if ref["sentiment"] not in SENTIMENTS:
        err(f"{where} bad sentiment {ref['sentiment']!r}")
    if not is_str(ref["next_best_action"]):
        err(f"{where} empty next_best_action")

    tasks = ref["tasks"]
    if not isinstance(tasks, list):
        err(f"{where} tasks must be a list")
        tasks = []
    for t in tasks:
        if not isinstance(t, dict) or set(t) != TASK_FIELDS:
            err(f"{where} task fields must be {sorted(TASK_FIELDS)}: {t!r}")
            continue
        w = f"{where} task {t.get('title')!r}:"
        if not is_str(t["title"]):
            err(f"{w} empty title")
        if t["owner"] not in ("rep", "customer"):
            err(f"{w} bad owner")
        if not is_str(t["source_quote"]) or not in_segments(t["source_quote"], segs):
            err(f"{w} source_quote is not verbatim in a segment: {t['source_quote']!r}")
        due, due_text = t["due"], t["due_text"]
        if due_text is not None and (not is_str(due_text) or not in_segments(due_text, segs)):
            err(f"{w} due_text is not verbatim in a segment: {due_text!r}")
        if due is not None:
            if due_text is None:
                err(f"{w} a due date needs the due_text that sets it")
            if not isinstance(due, str) or not (DUE_DATE_RE.match(due) or DUE_TS_RE.match(due)):
                err(f"{w} due must be YYYY-MM-DD or a full ISO timestamp with offset: {due!r}")
                continue
            if DUE_TS_RE.match(due):
                if due[-6:] != r["started_at"][-6:]:
                    err(f"{w} due uses another time zone than started_at")
                if dt.datetime.fromisoformat(due) < started:
                    err(f"{w} due {due} is before the conversation started")
                stats["due_timestamp"] += 1
            else:
                if dt.date.fromisoformat(due) < started.date():
                    err(f"{w} due {due} is before the conversation's date")
                stats["due_date"] += 1
        elif due_text is not None:
            stats["due_null_with_text"] += 1
        else:
            stats["due_none"] += 1
        if due_text is not None:
            exp = resolve(due_text, started)
            if exp is NOT_RECOGNISED:
                stats["due_text_unchecked"] += 1
                warn(f"{w} the checker's resolver does not read {due_text!r}; check it by hand")
            else:
                stats["due_text_checked"] += 1
                if exp != due:
                    err(f"{w} due {due!r} but the conventions give {exp!r} for {due_text!r}")

    risks = ref["risk_tags"]
    if not isinstance(risks, list):
        err(f"{where} risk_tags must be a list")
        risks = []
    for k in risks:
        if not isinstance(k, dict) or set(k) != {"category", "evidence_quote"}:
            err(f"{where} bad risk tag {k!r}")
            continue
        if k["category"] not in CATEGORIES:
            err(f"{where} bad risk category {k['category']!r}")
        if not is_str(k["evidence_quote"]) or not in_segments(k["evidence_quote"], segs):
            err(f"{where} evidence_quote is not verbatim in a segment: {k['evidence_quote']!r}")


def length_class(n):
    if n <= SHORT_SEGS:
        return "very short (1-3)"
    if n >= LONG_SEGS:
        return "long (60+)"
    if n < 8:
        return "short (4-7)"
    if n <= 30:
        return "medium (8-30)"
    return "longer (31-59)"


def main():
    markdown = "--markdown" in sys.argv
    rows = load()
    stats = collections.Counter()
    seen = set()
    for r in rows:
        if r.get("id") in seen:
            err(f"{r.get('id')}: duplicate id")
        seen.add(r.get("id"))
        check_row(r, stats)
    if errors:
        for e in errors:
            print("ERROR", e)
        for w in warnings:
            print("warning", w)
        print(f"{len(errors)} error(s)")
        sys.exit(1)

    by_lang = collections.Counter(r["language"] for r in rows)
    by_lk = collections.Counter((r["language"], r["kind"]) for r in rows)
    by_len = collections.Counter((r["language"], length_class(len(r["segments"]))) for r in rows)
    risky = [r for r in rows if r["reference"]["risk_tags"]]
    risk_by_cat = collections.Counter(k["category"] for r in rows for k in r["reference"]["risk_tags"])
    ntasks = collections.Counter(min(len(r["reference"]["tasks"]), 5) for r in rows)
    owners = collections.Counter(t["owner"] for r in rows for t in r["reference"]["tasks"])
    sent = collections.Counter(r["reference"]["sentiment"] for r in rows)
    weekdays = collections.Counter(dt.datetime.fromisoformat(r["started_at"]).strftime("%a") for r in rows)
    mixed = [r["id"] for r in rows
             if sum(1 for s in r["segments"] if CJK.search(s["text"]) or KANA.search(s["text"]))
             and sum(1 for s in r["segments"] if not CJK.search(s["text"]) and LATIN.search(s["text"])
                     and len(LATIN.findall(s["text"])) > 8)]
    kana = [r["id"] for r in rows if any(KANA.search(s["text"]) for s in r["segments"])]
    canto = [r["id"] for r in rows if sum(1 for s in r["segments"] if CANTONESE.search(s["text"])) >= 3]
    nseg = sum(len(r["segments"]) for r in rows)
    n_long = sum(1 for r in rows if len(r["segments"]) >= LONG_SEGS)
    n_short = sum(1 for r in rows if len(r["segments"]) <= SHORT_SEGS)
    call_ms = [r["segments"][-1]["end_ms"] for r in rows if r["kind"] == "call"]

    for cond, msg in [(len(rows) >= MIN_TOTAL, f"at least {MIN_TOTAL} transcripts"),
                      (by_lang["zh"] >= MIN_ZH, f"at least {MIN_ZH} Chinese transcripts"),
                      (by_lang["en"] >= MIN_EN, f"at least {MIN_EN} English transcripts"),
                      (n_long >= MIN_LONG, f"at least {MIN_LONG} transcripts of {LONG_SEGS}+ segments"),
                      (n_short >= MIN_SHORT, f"at least {MIN_SHORT} transcripts of 1-{SHORT_SEGS} segments"),
                      (len(risky) >= MIN_RISK_SHARE * len(rows), f"at least {MIN_RISK_SHARE:.0%} with a risk tag"),
                      (ntasks[0] >= 3, "at least 3 transcripts without tasks"),
                      (sum(ntasks[k] for k in (3, 4, 5)) >= 8, "at least 8 transcripts with 3-5 tasks"),
                      (all(by_lk[(l, k)] for l in ("zh", "en") for k in ("call", "chat")), "calls and chats in both languages")]:
        if not cond and "--no-counts" not in sys.argv:
            err("count: need " + msg)
    if errors:
        for e in errors:
            print("ERROR", e)
        sys.exit(1)

    ntask_total = sum(len(r["reference"]["tasks"]) for r in rows)
    out = []
    out.append(f"transcripts: {len(rows)}    segments: {nseg}    tasks: {ntask_total}    "
               f"risk tags: {sum(risk_by_cat.values())}")
    out.append("")
    out.append("Transcripts per language and kind\n")
    out.append("| language | call | chat | total |\n|---|---|---|---|")
    for l in ("zh", "en"):
        out.append(f"| {l} | {by_lk[(l, 'call')]} | {by_lk[(l, 'chat')]} | {by_lang[l]} |")
    out.append(f"| **total** | {by_lk[('zh','call')] + by_lk[('en','call')]} | "
               f"{by_lk[('zh','chat')] + by_lk[('en','chat')]} | {len(rows)} |")
    out.append("\nTranscripts per length (segments)\n")
    classes = ["very short (1-3)", "short (4-7)", "medium (8-30)", "longer (31-59)", "long (60+)"]
    out.append("| length | zh | en | total |\n|---|---|---|---|")
    for c in classes:
        out.append(f"| {c} | {by_len[('zh', c)]} | {by_len[('en', c)]} | {by_len[('zh', c)] + by_len[('en', c)]} |")
    out.append("\nRisk\n")
    out.append("| measure | zh | en | total |\n|---|---|---|---|")
    rz = sum(1 for r in risky if r["language"] == "zh")
    out.append(f"| transcripts with >= 1 risk tag | {rz} | {len(risky) - rz} | {len(risky)} ({len(risky) / len(rows):.0%}) |")
    out.append("\n| category | tags |\n|---|---|")
    for c in sorted(CATEGORIES, key=lambda c: (-risk_by_cat[c], c)):
        out.append(f"| {c} | {risk_by_cat[c]} |")
    out.append("\nTasks\n")
    out.append("| measure | value |\n|---|---|")
    out.append(f"| tasks (owner rep / customer) | {ntask_total} ({owners['rep']} / {owners['customer']}) |")
    out.append("| transcripts with 0 / 1 / 2 / 3 / 4 / 5+ tasks | " +
               " / ".join(str(ntasks[k]) for k in range(6)) + " |")
    out.append(f"| due as date / as timestamp / null with due_text / null without | "
               f"{stats['due_date']} / {stats['due_timestamp']} / {stats['due_null_with_text']} / {stats['due_none']} |")
    out.append(f"| due_text cross-checked by the resolver in check.py / not read by it | "
               f"{stats['due_text_checked']} / {stats['due_text_unchecked']} |")
    out.append("\nOther\n")
    out.append("| measure | value |\n|---|---|")
    out.append("| sentiment | " + ", ".join(f"{k} {sent[k]}" for k in sorted(SENTIMENTS, key=lambda s: -sent[s])) + " |")
    out.append("| started_at weekday | " + ", ".join(f"{d} {weekdays[d]}" for d in
               ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")) + " |")
    out.append(f"| call length (min / median / max) | {min(call_ms) / 1000:.0f} s / "
               f"{sorted(call_ms)[len(call_ms) // 2] / 1000:.0f} s / {max(call_ms) / 1000:.0f} s |")
    out.append(f"| interruptions (overlapping call segments) | {stats['interruptions']} |")
    out.append(f"| mixed Chinese/Japanese and English lines | {len(mixed)} ({', '.join(mixed)}) |")
    out.append(f"| Cantonese-flavoured / Japanese | {', '.join(canto) or '-'} / {', '.join(kana) or '-'} |")
    text = "\n".join(out)
    if not markdown:
        text = re.sub(r"\*\*", "", text)
    print(text)
    if warnings and not markdown:
        print()
        for w in warnings:
            print("warning", w)


if __name__ == "__main__":
    main()
