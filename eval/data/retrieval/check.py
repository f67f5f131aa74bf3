#!/usr/bin/env python3
"""Validate the retrieval evaluation set (scripts.jsonl, queries.jsonl) and print statistics.

Usage: python3 check.py            # validate, print statistics, exit 1 on any error
       python3 check.py --markdown # the same statistics as Markdown tables (for README.md)
"""
import collections
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = ["opening", "needs_discovery", "product_intro", "price_objection",
             "competitor_comparison", "trust", "closing", "after_sales", "complaint",
             "delivery", "payment", "follow_up"]
PRODUCTS = {  # zh name -> en name
    "云客CRM": "Yunke CRM",
    "智能外呼": "Smart Dialer",
    "工作手机": "Work Phone",
    "企业宽带": "Business Broadband",
    "商用净水器": "Commercial Water Purifier",
}
EN_TO_ZH = {v: k for k, v in PRODUCTS.items()}
SCRIPT_FIELDS = {"id", "title", "body", "scenario", "tags", "products", "language"}
QUERY_FIELDS = {"id", "text", "language", "product", "difficulty", "relevant"}
QUERY_LANGS = {"zh", "en", "mixed"}
DIFFICULTIES = ["easy", "paraphrase", "keyword"]
MIN_SCRIPTS = MIN_QUERIES = 320
SCRIPT_ID = re.compile(r"^(zh|en)-[a-z]+-[a-z_]+-\d{3}$")
QUERY_ID = re.compile(r"^q-(zh|en|mix)-\d{3}$")
CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")

errors, warnings = [], []


def err(msg):
    errors.append(msg)


def warn(msg):
    warnings.append(msg)


def load_jsonl(name):
    path = os.path.join(HERE, name)
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                err(f"{name}:{n}: blank line")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                err(f"{name}:{n}: invalid JSON: {e}")
                continue
            if not isinstance(obj, dict):
                err(f"{name}:{n}: not a JSON object")
                continue
            rows.append((n, obj))
    return rows


def product_key(name):
    """Canonical (zh) product name for either language."""
    return EN_TO_ZH.get(name, name)


def check_scripts(rows):
    scripts, seen_body = {}, {}
    for n, s in rows:
        where = f"scripts.jsonl:{n}"
        if set(s) != SCRIPT_FIELDS:
            err(f"{where}: fields {sorted(s)} != {sorted(SCRIPT_FIELDS)}")
            continue
        sid = s["id"]
        if not isinstance(sid, str) or not SCRIPT_ID.match(sid):
            err(f"{where}: bad id {sid!r}")
            continue
        if sid in scripts:
            err(f"{where}: duplicate id {sid}")
        for f in ("title", "body"):
            if not isinstance(s[f], str) or not s[f].strip() or s[f] != s[f].strip():
                err(f"{where} {sid}: {f} must be non-empty trimmed text")
        if s["scenario"] not in SCENARIOS:
            err(f"{where} {sid}: scenario {s['scenario']!r} not allowed")
        lang = s["language"]
        if lang not in ("zh", "en"):
            err(f"{where} {sid}: language {lang!r} not allowed")
            continue
        if not sid.startswith(lang + "-"):
            err(f"{where} {sid}: id prefix does not match language {lang}")
        if not isinstance(s["tags"], list) or not s["tags"] or not all(
                isinstance(t, str) and t.strip() and len(t) <= 40 for t in s["tags"]):
            err(f"{where} {sid}: tags must be a non-empty list of short strings")
        elif len(s["tags"]) > 20 or len(set(s["tags"])) != len(s["tags"]):
            err(f"{where} {sid}: at most 20 distinct tags")
        prods = s["products"]
        if not isinstance(prods, list) or len(prods) > 2 or len(set(prods)) != len(prods):
            err(f"{where} {sid}: products must be a list of 0-2 distinct names")
        else:
            allowed = set(PRODUCTS) if lang == "zh" else set(PRODUCTS.values())
            for p in prods:
                if p not in allowed:
                    err(f"{where} {sid}: product {p!r} is not a {lang} product name")
        body, title = s["body"], s["title"]
        if lang == "zh":
            if not 40 <= len(body) <= 200:
                err(f"{where} {sid}: zh body has {len(body)} characters (40-200)")
            if not CJK.search(body) or not CJK.search(title):
                err(f"{where} {sid}: zh script without Chinese text")
            if len(title) > 30:
                err(f"{where} {sid}: zh title longer than 30 characters")
        else:
            words = len(body.split())
            if not 25 <= words <= 120:
                err(f"{where} {sid}: en body has {words} words (25-120)")
            if CJK.search(body) or CJK.search(title):
                err(f"{where} {sid}: en script contains Chinese characters")
            if len(title) > 80:
                err(f"{where} {sid}: en title longer than 80 characters")
        if body in seen_body:
            err(f"{where} {sid}: same body as {seen_body[body]}")
        seen_body[body] = sid
        scripts[sid] = s
    return scripts


def check_queries(rows, scripts):
    queries, seen_text = {}, {}
    for n, q in rows:
        where = f"queries.jsonl:{n}"
        if set(q) != QUERY_FIELDS:
            err(f"{where}: fields {sorted(q)} != {sorted(QUERY_FIELDS)}")
            continue
        qid = q["id"]
        if not isinstance(qid, str) or not QUERY_ID.match(qid):
            err(f"{where}: bad id {qid!r}")
            continue
        if qid in queries:
            err(f"{where}: duplicate id {qid}")
        text, lang = q["text"], q["language"]
        if not isinstance(text, str) or not text.strip():
            err(f"{where} {qid}: empty text")
            continue
        if text in seen_text:
            err(f"{where} {qid}: same text as {seen_text[text]}")
        seen_text[text] = qid
        if lang not in QUERY_LANGS:
            err(f"{where} {qid}: language {lang!r} not allowed")
            continue
        if qid.split("-")[1] != {"zh": "zh", "en": "en", "mixed": "mix"}[lang]:
            err(f"{where} {qid}: id does not match language {lang}")
        has_cjk, has_latin = bool(CJK.search(text)), bool(LATIN_WORD.search(text))
        if lang == "zh" and not has_cjk:
            err(f"{where} {qid}: zh query without Chinese text")
        if lang == "en" and has_cjk:
            err(f"{where} {qid}: en query contains Chinese characters")
        if lang == "mixed" and not (has_cjk and has_latin):
            err(f"{where} {qid}: mixed query must contain both Chinese and English words")
        if q["difficulty"] not in DIFFICULTIES:
            err(f"{where} {qid}: difficulty {q['difficulty']!r} not allowed")
        prod = q["product"]
        if prod is not None:
            ok = prod in (PRODUCTS.values() if lang == "en" else PRODUCTS)
            if not ok:
                err(f"{where} {qid}: product {prod!r} not allowed for a {lang} query")
        rel = q["relevant"]
        if not isinstance(rel, dict) or not rel:
            err(f"{where} {qid}: relevant must be a non-empty object")
            continue
        langs = set()
        for sid, g in rel.items():
            if sid not in scripts:
                err(f"{where} {qid}: unknown script id {sid}")
                continue
            if not isinstance(g, int) or isinstance(g, bool) or g not in (1, 2, 3):
                err(f"{where} {qid}: grade for {sid} must be 1, 2 or 3")
            langs.add(scripts[sid]["language"])
        if 3 not in rel.values():
            err(f"{where} {qid}: no grade-3 script")
        if lang in ("zh", "en") and langs - {lang}:
            err(f"{where} {qid}: {lang} query has relevant scripts in {sorted(langs - {lang})}")
        if lang == "mixed":
            best = {scripts[s]["language"] for s, g in rel.items() if g == 3 and s in scripts}
            if best != {"zh", "en"}:
                err(f"{where} {qid}: mixed query needs a grade-3 script in both zh and en")
        # The script a good rep would use should be about the product on the call (or generic).
        if prod is not None:
            for sid, g in rel.items():
                if g == 3 and sid in scripts:
                    sp = {product_key(p) for p in scripts[sid]["products"]}
                    if sp and product_key(prod) not in sp:
                        err(f"{where} {qid}: grade-3 {sid} is about {sorted(sp)}, query is about {prod}")
        queries[qid] = q
    return queries


def pct(a, b):
    return f"{100.0 * a / b:.1f}%" if b else "-"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def main_scenario(q, scripts):
    """Scenario of the query: that of its grade-3 script(s) (the first one on ties)."""
    best = [s for s, g in q["relevant"].items() if g == 3]
    return scripts[best[0]]["scenario"]


def statistics(scripts, queries):
    S, Q = list(scripts.values()), list(queries.values())
    lines = []
    lines.append(f"scripts: {len(S)}    queries: {len(Q)}\n")

    # scripts: scenario x language
    by = collections.Counter((s["scenario"], s["language"]) for s in S)
    rows = [[sc, by[(sc, "zh")], by[(sc, "en")], by[(sc, "zh")] + by[(sc, "en")]] for sc in SCENARIOS]
    nz = sum(1 for s in S if s["language"] == "zh")
    rows.append(["**total**", f"{nz} ({pct(nz, len(S))})", f"{len(S) - nz} ({pct(len(S) - nz, len(S))})", len(S)])
    lines.append("Scripts per scenario and language\n")
    lines.append(table(["scenario", "zh", "en", "total"], rows) + "\n")

    # scripts: product x language
    byp = collections.Counter()
    for s in S:
        keys = [product_key(p) for p in s["products"]] or ["(product-agnostic)"]
        for k in keys:
            byp[(k, s["language"])] += 1
    names = list(PRODUCTS) + ["(product-agnostic)"]
    rows = [[k if k not in PRODUCTS else f"{k} / {PRODUCTS[k]}", byp[(k, "zh")], byp[(k, "en")],
             byp[(k, "zh")] + byp[(k, "en")]] for k in names]
    lines.append("Scripts per product and language (a script naming two products counts for both)\n")
    lines.append(table(["product", "zh", "en", "total"], rows) + "\n")

    # coverage: scenario x product (zh+en)
    cov = collections.Counter()
    for s in S:
        for p in s["products"]:
            cov[(s["scenario"], product_key(p))] += 1
    rows = [[sc] + [cov[(sc, p)] for p in PRODUCTS] for sc in SCENARIOS]
    lines.append("Scripts per scenario and product (zh + en)\n")
    lines.append(table(["scenario"] + list(PRODUCTS), rows) + "\n")

    # queries: language x difficulty
    byd = collections.Counter((q["language"], q["difficulty"]) for q in Q)
    rows = []
    for lang in ("zh", "en", "mixed"):
        n = sum(byd[(lang, d)] for d in DIFFICULTIES)
        rows.append([lang] + [byd[(lang, d)] for d in DIFFICULTIES] + [f"{n} ({pct(n, len(Q))})"])
    tot = [sum(byd[(l, d)] for l in ("zh", "en", "mixed")) for d in DIFFICULTIES]
    rows.append(["**total**"] + [f"{t} ({pct(t, len(Q))})" for t in tot] + [len(Q)])
    lines.append("Queries per language and difficulty\n")
    lines.append(table(["language"] + DIFFICULTIES + ["total"], rows) + "\n")

    # queries: scenario (of the grade-3 script) x language
    bys = collections.Counter((main_scenario(q, scripts), q["language"]) for q in Q)
    rows = [[sc, bys[(sc, "zh")], bys[(sc, "en")], bys[(sc, "mixed")],
             bys[(sc, "zh")] + bys[(sc, "en")] + bys[(sc, "mixed")]] for sc in SCENARIOS]
    lines.append("Queries per scenario (of the grade-3 script) and language\n")
    lines.append(table(["scenario", "zh", "en", "mixed", "total"], rows) + "\n")

    # queries: product
    byq = collections.Counter(product_key(q["product"]) if q["product"] else "(none)" for q in Q)
    rows = [[k if k not in PRODUCTS else f"{k} / {PRODUCTS[k]}", byq[k]] for k in list(PRODUCTS) + ["(none)"]]
    lines.append("Queries per product on the call\n")
    lines.append(table(["product", "queries"], rows) + "\n")

    # relevance judgements
    grades = collections.Counter(g for q in Q for g in q["relevant"].values())
    sizes = collections.Counter(len(q["relevant"]) for q in Q)
    n3 = collections.Counter(sum(1 for g in q["relevant"].values() if g == 3) for q in Q)
    judged = {s for q in Q for s in q["relevant"]}
    rows = [["judgements (grade 3 / 2 / 1)", f"{sum(grades.values())} ({grades[3]} / {grades[2]} / {grades[1]})"],
            ["judged scripts per query (mean)", f"{sum(len(q['relevant']) for q in Q) / len(Q):.2f}"],
            ["queries with 1 / 2 / 3 / 4+ judged scripts",
             f"{sizes[1]} / {sizes[2]} / {sizes[3]} / {sum(v for k, v in sizes.items() if k >= 4)}"],
            ["queries with more than one grade-3 script", sum(v for k, v in n3.items() if k > 1)],
            ["scripts judged relevant to at least one query", f"{len(judged)} of {len(S)}"]]
    lines.append("Relevance judgements\n")
    lines.append(table(["measure", "value"], rows) + "\n")
    return "\n".join(lines)


def main():
    markdown = "--markdown" in sys.argv
    scripts = check_scripts(load_jsonl("scripts.jsonl"))
    queries = check_queries(load_jsonl("queries.jsonl"), scripts)
    if len(scripts) < MIN_SCRIPTS:
        err(f"only {len(scripts)} scripts (need at least {MIN_SCRIPTS})")
    if len(queries) < MIN_QUERIES:
        err(f"only {len(queries)} queries (need at least {MIN_QUERIES})")
    # every scenario x product combination must be covered several times (zh + en)
    cov = collections.Counter()
    for s in scripts.values():
        for p in s["products"]:
            cov[(s["scenario"], product_key(p))] += 1
    for sc in SCENARIOS:
        for p in PRODUCTS:
            if cov[(sc, p)] < 3:
                err(f"scenario {sc} x product {p}: only {cov[(sc, p)]} scripts (need 3)")
    # language balance (targets: ~60% zh / ~40% en; ~5% mixed queries)
    if scripts:
        zh = sum(1 for s in scripts.values() if s["language"] == "zh") / len(scripts)
        if not 0.55 <= zh <= 0.65:
            warn(f"scripts are {zh:.0%} zh (target about 60%)")
    if queries:
        c = collections.Counter(q["language"] for q in queries.values())
        zh = (c["zh"]) / len(queries)
        mixed = c["mixed"] / len(queries)
        if not 0.52 <= zh <= 0.65:
            warn(f"queries are {zh:.0%} zh (target about 60%)")
        if not 0.03 <= mixed <= 0.08:
            warn(f"queries are {mixed:.0%} mixed-language (target about 5%)")
        d = collections.Counter(q["difficulty"] for q in queries.values())
        for name, target in (("easy", 0.30), ("paraphrase", 0.40), ("keyword", 0.30)):
            share = d[name] / len(queries)
            if abs(share - target) > 0.07:
                warn(f"{name} queries are {share:.0%} (target about {target:.0%})")
    if not errors:
        print(statistics(scripts, queries) if markdown else statistics(scripts, queries).replace("**", ""))
    for w in warnings:
        print("WARNING:", w)
    for e in errors:
        print("ERROR:", e)
    if errors:
        print(f"{len(errors)} error(s)")
        sys.exit(1)
    print("OK" if not warnings else f"OK with {len(warnings)} warning(s)")


if __name__ == "__main__":
    main()
