"""How far modellint's findings can be trusted, measured on the labelled corpus (issue 11).

    python benchmarks/bench_diagnosis.py                      # everything: Keras and PyTorch
    python benchmarks/bench_diagnosis.py --framework torch    # one framework
    python benchmarks/bench_diagnosis.py --only k-wrong-units # one case, with every finding
    python benchmarks/bench_diagnosis.py --json results.json  # per-case results

Builds every model of ``tests/corpus`` in this one process (Keras live models, PyTorch
modules), runs ``modellint.analyze`` with the case's dataset facts (and, for PyTorch, the
stated loss and optimizer; see ``tests/corpus/runner.py``) and prints:

* per category: recall on the buggy models of file-visible faults (a fault counts as
  flagged when a finding of severity ``warning`` or ``error`` in the labelled category is
  reported; ``info`` where the label's ``min_severity`` says so), a looser "any category"
  recall, the clean rate of the fixed twins (no warning or error at all), and findings
  per model;
* per sound design: every warning, explained (the manifest says why it is right) or not;
* the totals against the issue's targets, the most common false warnings, the missed
  faults by kind (the worklist), and whether the Keras file routes (``.keras``, ``.h5``)
  agree with the live route on a sample.

A case that fails to build or analyse is an error row and counts against the numbers
(a buggy model as missed, a fixed twin as not clean, a sound design as warned).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PYTHONWARNINGS", "ignore")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the corpus package and tests/torch_resnet.py
sys.path.insert(0, str(ROOT))

TARGETS = {"recall": 0.95, "fixed_clean": 0.90, "sound_unexplained": 0, "median_findings": 5}
RANK = {"info": 0, "warning": 1, "error": 2}


def _finding(f) -> dict:
    return {"code": f.code, "category": f.category, "severity": f.severity, "message": f.message,
            "layers": list(f.layers)}


def _warnings(findings) -> list:
    return [f for f in findings if RANK[f["severity"]] >= RANK["warning"]]


def _git_state() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "modellint"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return f"{head}{' + uncommitted changes under modellint/' if dirty else ''}"
    except Exception:
        return "unknown"


def _quiet_frameworks(frameworks) -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("tensorflow", "absl"):  # absl: Keras' "HDF5 is legacy" on every .h5 save
        logging.getLogger(name).setLevel(logging.ERROR)
    if "torch" in frameworks:
        import torch

        torch.set_num_threads(1)  # tiny models; keep off the other people's cores


def run_case(entry, variant, runner, file_route: bool, tmp) -> dict:
    row = {"id": entry.id, "framework": entry.framework, "variant": variant,
           "kind": "sound" if variant is None else "pair", "status": "ok", "findings": [], "rule_errors": []}
    if variant is not None:
        row.update(category=entry.category, visible=entry.visible, min_severity=entry.min_severity)
    t0 = time.perf_counter()
    try:
        built = runner.build(entry, variant)
        row["build_s"] = round(time.perf_counter() - t0, 3)
        t1 = time.perf_counter()
        report = runner.analyze_case(entry, variant, built)
        row["analyze_s"] = round(time.perf_counter() - t1, 3)
        row["findings"] = [_finding(f) for f in report.findings]
        row["rule_errors"] = list(report.errors)
        row["params"] = report.graph.total_params
        row["skipped"] = sorted(report.rules_skipped)
    except Exception as exc:
        row["status"] = "error"
        row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        row["traceback"] = traceback.format_exc(limit=6)
        return row
    if file_route:
        routes = runner.keras_file_routes(entry, variant, built, tmp)
        live = sorted((f["code"], f["severity"], tuple(f["layers"])) for f in row["findings"])
        row["file_routes"] = {}
        for ext, rep in routes.items():
            if isinstance(rep, Exception):
                row["file_routes"][ext] = {"agrees": False, "error": f"{type(rep).__name__}: {rep}"[:300]}
                continue
            got = sorted((f.code, f.severity, tuple(f.layers)) for f in rep.findings)
            row["file_routes"][ext] = {"agrees": got == live,
                                       "only_live": [list(x[:2]) for x in live if x not in got],
                                       "only_file": [list(x[:2]) for x in got if x not in live]}
    return row


def score_pair(buggy: dict, fixed: dict) -> dict:
    cat, floor = buggy["category"], RANK[buggy["min_severity"]]
    if buggy["status"] == "ok":
        in_cat = [f for f in buggy["findings"] if f["category"] == cat and RANK[f["severity"]] >= floor]
        anywhere = in_cat + _warnings(buggy["findings"])
    else:
        in_cat = anywhere = []
    fixed_warn = _warnings(fixed["findings"]) if fixed["status"] == "ok" else [{"code": "ERROR"}]
    fixed_cat = [f for f in fixed_warn if f.get("category") == cat]
    return {"flagged": bool(in_cat), "flagged_any": bool(anywhere), "flagged_by": sorted({f["code"] for f in in_cat}),
            "fixed_clean": fixed["status"] == "ok" and not fixed_warn,
            "distinguishes": bool(in_cat) and not fixed_cat}


def _pct(n, d) -> str:
    return f"{n}/{d} = {100 * n / d:.0f}%" if d else "—"


def _codes(findings, floor="info") -> str:
    shown = [f for f in findings if RANK[f["severity"]] >= RANK[floor]]
    if not shown:
        return "–"
    c = Counter(f"{f['code']}{f['severity'][0].upper()}" for f in shown)
    return " ".join(k if n == 1 else f"{k}×{n}" for k, n in sorted(c.items()))


def summarize(rows, entries) -> dict:
    by = {(r["id"], r["variant"]): r for r in rows}
    pairs, sound = [], []
    for e in entries:
        if hasattr(e, "category"):
            b, f = by.get((e.id, "buggy")), by.get((e.id, "fixed"))
            if b and f:
                pairs.append((e, b, f, score_pair(b, f)))
        elif (e.id, None) in by:
            sound.append((e, by[(e.id, None)]))
    models = [r for r in rows]
    counts = [len(r["findings"]) for r in models if r["status"] == "ok"]
    visible = [p for p in pairs if p[0].visible]
    out = {
        "pairs": len(pairs), "visible_pairs": len(visible),
        "recall": sum(p[3]["flagged"] for p in visible), "recall_any": sum(p[3]["flagged_any"] for p in visible),
        "hidden_flagged": sum(p[3]["flagged"] for p in pairs if not p[0].visible),
        "fixed_clean": sum(p[3]["fixed_clean"] for p in pairs),
        "distinguishes": sum(p[3]["distinguishes"] for p in visible),
        "sound": len(sound),
        "sound_unexplained": sum(1 for e, r in sound if _unexplained(e, r)),
        "median_findings": statistics.median(counts) if counts else None,
        "max_findings": max(counts) if counts else None,
        "errors": sum(r["status"] != "ok" for r in rows),
    }
    return {"totals": out, "pairs": pairs, "sound": sound}


def _unexplained(entry, row) -> list:
    if row["status"] != "ok":
        return [{"code": "ERROR", "severity": "error", "message": row.get("error", ""), "category": "-"}]
    return [f for f in _warnings(row["findings"]) if f["code"] not in entry.allowed]


def print_report(summary, rows, meta, file_route_rows) -> None:
    t = summary["totals"]
    pairs, sound = summary["pairs"], summary["sound"]
    w = print
    w("modellint diagnosis benchmark (issue 11)")
    w(f"  modellint {meta['modellint']} · git {meta['git']} · keras {meta.get('keras', '-')} · "
      f"torch {meta.get('torch', '-')} · python {meta['python']}")
    w(f"  {meta['mechanism']}")
    w(f"  corpus: {t['pairs']} buggy/fixed pairs ({t['visible_pairs']} file-visible), {t['sound']} sound designs, "
      f"{len(rows)} models analysed, {t['errors']} errors")
    w("")

    # -- per pair ---------------------------------------------------------------------------------
    w("Pairs  (flag: in category / any category / fixed twin clean; codes with E/W/I severity)")
    width = max((len(e.id) for e, *_ in pairs), default=10)
    for e, b, f, s in pairs:
        mark = "".join("✓" if s[k] else "✗" for k in ("flagged", "flagged_any", "fixed_clean"))
        hidden = "" if e.visible else " (not visible)"
        bc = b.get("error", "ERROR") if b["status"] != "ok" else _codes(b["findings"])
        fc = f.get("error", "ERROR") if f["status"] != "ok" else _codes(f["findings"])
        w(f"  {mark} {e.id:<{width}} {e.category:<15} buggy: {bc:<34} fixed: {fc}{hidden}")
    w("")

    # -- per category -----------------------------------------------------------------------------
    w("Per category (recall over file-visible faults; fixed clean over all pairs)")
    header = f"  {'category':<16}{'pairs':>6}{'visible':>8}{'recall':>13}{'any cat.':>13}{'fixed clean':>14}" \
             f"{'findings med/max':>18}"
    w(header)
    cats = defaultdict(list)
    for p in pairs:
        cats[p[0].category].append(p)
    for cat in sorted(cats):
        ps = cats[cat]
        vis = [p for p in ps if p[0].visible]
        counts = [len(r["findings"]) for _, b, f, _ in ps for r in (b, f) if r["status"] == "ok"]
        w(f"  {cat:<16}{len(ps):>6}{len(vis):>8}"
          f"{_pct(sum(p[3]['flagged'] for p in vis), len(vis)):>13}"
          f"{_pct(sum(p[3]['flagged_any'] for p in vis), len(vis)):>13}"
          f"{_pct(sum(p[3]['fixed_clean'] for p in ps), len(ps)):>14}"
          f"{(f'{statistics.median(counts):g}/{max(counts)}' if counts else '—'):>18}")
    for fw in ("keras", "torch"):
        ps = [p for p in pairs if p[0].framework == fw]
        if not ps:
            continue
        vis = [p for p in ps if p[0].visible]
        counts = [len(r["findings"]) for _, b, f, _ in ps for r in (b, f) if r["status"] == "ok"]
        w(f"  {'(' + fw + ')':<16}{len(ps):>6}{len(vis):>8}"
          f"{_pct(sum(p[3]['flagged'] for p in vis), len(vis)):>13}"
          f"{_pct(sum(p[3]['flagged_any'] for p in vis), len(vis)):>13}"
          f"{_pct(sum(p[3]['fixed_clean'] for p in ps), len(ps)):>14}"
          f"{(f'{statistics.median(counts):g}/{max(counts)}' if counts else '—'):>18}")
    w("")

    # -- sound designs ----------------------------------------------------------------------------
    w("Sound designs  (warnings and errors; 'explained' = the manifest says why the warning is right)")
    for e, r in sound:
        un = _unexplained(e, r)
        explained = [f for f in _warnings(r["findings"]) if f["code"] in e.allowed] if r["status"] == "ok" else []
        infos = sum(1 for f in r["findings"] if f["severity"] == "info")
        w(f"  {'✓' if not un else '✗'} {e.id:<30} {e.framework:<6} {len(un)} unexplained, {len(explained)} "
          f"explained, {infos} info")
        for f in un:
            w(f"      {f['code']} [{f['severity']}] {f['category']}: {f['message'][:150]}")
        for code, n in sorted(Counter(f["code"] for f in explained).items()):
            w(f"      ({code} ×{n} explained: {e.allowed[code][:120]})")
    w("")

    # -- false warnings ---------------------------------------------------------------------------
    def tally(items):
        models, findings = Counter(), Counter()
        cat = {}
        for fs in items:
            for f in fs:
                findings[f["code"]] += 1
                cat[f["code"]] = f.get("category", "-")
            for code in {f["code"] for f in fs}:
                models[code] += 1
        return models, findings, cat

    w("Most common false warnings (warning/error findings on sound designs and fixed twins)")
    sm, sf, scat = tally([_unexplained(e, r) for e, r in sound])
    fm, ff, fcat = tally([_warnings(f["findings"]) if f["status"] == "ok" else
                          [{"code": "ERROR", "category": "-"}] for _, _, f, _ in pairs])
    allcodes = sorted(set(sm) | set(fm), key=lambda c: -(sm[c] + fm[c]))
    w(f"  {'code':<7}{'category':<17}{'sound designs':>15}{'fixed twins':>13}{'findings':>10}")
    for code in allcodes:
        w(f"  {code:<7}{scat.get(code, fcat.get(code, '-')):<17}{sm[code]:>15}{fm[code]:>13}{sf[code] + ff[code]:>10}")
    w("")

    # -- worklist ---------------------------------------------------------------------------------
    w("Missed file-visible faults (worklist): id · category · what was reported instead")
    missed = [p for p in pairs if p[0].visible and not p[3]["flagged"]]
    for e, b, f, s in sorted(missed, key=lambda p: (p[0].category, p[0].id)):
        got = b.get("error", "ERROR") if b["status"] != "ok" else _codes(b["findings"], "warning")
        w(f"  {e.id:<{width}} {e.category:<15} reported: {got}")
        w(f"      {e.description}")
    w("")
    w("Flagged in category but the fixed twin is flagged in that category too (the rule does not tell them apart):")
    same = [p for p in pairs if p[3]["flagged"] and not p[3]["distinguishes"]]
    for e, b, f, s in same:
        w(f"  {e.id:<{width}} {e.category:<15} fixed: {_codes(_warnings(f['findings']))}")
    if not same:
        w("  none")
    w("")
    w("Faults not visible in the file (not in the recall target): id · category · reported")
    for e, b, f, s in pairs:
        if not e.visible:
            w(f"  {e.id:<{width}} {e.category:<15} {'flagged' if s['flagged'] else 'not flagged'}: "
              f"{_codes(b['findings'], 'warning') if b['status'] == 'ok' else b.get('error')}")
    w("")

    # -- errors -----------------------------------------------------------------------------------
    errs = [r for r in rows if r["status"] != "ok"]
    crashes = [(r, e) for r in rows for e in r.get("rule_errors", [])]
    if errs or crashes:
        w("Errors")
        for r in errs:
            w(f"  ERROR {r['id']} {r['variant'] or ''}: {r['error']}")
        for r, e in crashes:
            w(f"  rule crashed on {r['id']} {r['variant'] or ''}: {e}")
        w("")

    # -- file routes ------------------------------------------------------------------------------
    if file_route_rows:
        agree = sum(all(v["agrees"] for v in r["file_routes"].values()) for r in file_route_rows)
        w(f"Keras file routes (.keras and .h5 re-read) against the live route: {agree}/{len(file_route_rows)} "
          "models agree on every finding (code, severity, layers)")
        for r in file_route_rows:
            for ext, v in r["file_routes"].items():
                if not v["agrees"]:
                    detail = v.get("error") or f"only live {v['only_live']}, only file {v['only_file']}"
                    w(f"  {r['id']} {r['variant'] or ''} .{ext}: {detail}")
        w("")

    # -- totals -----------------------------------------------------------------------------------
    def verdict(ok):
        return "PASS" if ok else "FAIL"

    rec = t["recall"] / t["visible_pairs"] if t["visible_pairs"] else 0
    clean = t["fixed_clean"] / t["pairs"] if t["pairs"] else 0
    w("Totals against the issue's targets")
    w(f"  file-visible faults flagged in their category   {_pct(t['recall'], t['visible_pairs']):>14}   "
      f"target ≥ 95 %   {verdict(rec >= TARGETS['recall'])}")
    w(f"    (flagged in any category                     {_pct(t['recall_any'], t['visible_pairs']):>14};"
      f" flagged in category and fixed twin quiet there {_pct(t['distinguishes'], t['visible_pairs'])})")
    w(f"  fixed twins clean (no warning/error)             {_pct(t['fixed_clean'], t['pairs']):>14}   "
      f"target ≥ 90 %   {verdict(clean >= TARGETS['fixed_clean'])}")
    w(f"  sound designs with an unexplained warning        {t['sound_unexplained']:>7} of {t['sound']:<4}   "
      f"target 0        {verdict(t['sound_unexplained'] == 0)}")
    w(f"  findings per model (all severities), median/max  {t['median_findings']!s:>8} / {t['max_findings']!s:<4}  "
      f"target ≤ 5      {verdict(t['median_findings'] is not None and t['median_findings'] <= 5)}")
    w(f"  not-visible faults flagged anyway                {t['hidden_flagged']:>7} of "
      f"{t['pairs'] - t['visible_pairs']}")
    w("")
    w(f"Run time: {meta['wall_s']:.1f} s (imports {meta['import_s']:.1f} s, builds {meta['build_s']:.1f} s, "
      f"analyses {meta['analyze_s']:.1f} s, file routes {meta['file_route_s']:.1f} s)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="FILE", help="write per-case results and the totals as JSON")
    ap.add_argument("--only", metavar="ID", help="run one case (a pair id or a sound design id)")
    ap.add_argument("--framework", choices=("keras", "torch"), help="only this framework's cases")
    ap.add_argument("--file-route", choices=("sample", "all", "none"), default="sample",
                    help="also save Keras models as .keras and .h5 and compare: every 5th pair and 3rd sound "
                         "design (sample, default), all, or none")
    ap.add_argument("--no-slow", action="store_true", help="skip the large models (ResNet-50, EfficientNetB0)")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    from corpus import manifest, runner
    import modellint

    cases = runner.case_list(framework=args.framework, only=args.only, include_slow=not args.no_slow)
    if not cases:
        known = ", ".join(e.id for e in manifest.ALL)
        print(f"no case matches (--only {args.only!r}, --framework {args.framework}); known ids: {known}")
        return 2
    frameworks = {e.framework for e, _ in cases}
    meta = {"modellint": modellint.__version__, "git": _git_state(), "python": sys.version.split()[0],
            "mechanism": runner.mechanism()}
    t_imp = time.perf_counter()
    if "keras" in frameworks:
        import keras

        meta["keras"] = keras.__version__
    if "torch" in frameworks:
        import torch

        meta["torch"] = torch.__version__
    _quiet_frameworks(frameworks)
    meta["import_s"] = time.perf_counter() - t_imp

    entries = []
    for e, _ in cases:
        if e not in entries:
            entries.append(e)
    sample_pairs = {e.id for i, e in enumerate(manifest.PAIRS) if i % 5 == 0}
    sample_sound = {e.id for i, e in enumerate(manifest.SOUND) if i % 3 == 0}
    rows, file_rows = [], []
    t_file = 0.0
    with tempfile.TemporaryDirectory(prefix="bench_diagnosis_") as tmp:
        for e, variant in cases:
            route = e.framework == "keras" and (args.file_route == "all" or (
                args.file_route == "sample" and (e.id in sample_pairs or e.id in sample_sound)))
            t0 = time.perf_counter()
            row = run_case(e, variant, runner, route, tmp)
            if route and "file_routes" in row:
                t_file += time.perf_counter() - t0 - row.get("build_s", 0) - row.get("analyze_s", 0)
                file_rows.append(row)
            rows.append(row)
            if args.only:
                print(f"== {e.id} {variant or ''}  ({row['status']})")
                for f in row["findings"]:
                    print(f"   {f['code']} [{f['severity']}] {f['category']}: {f['message']}")
                if row["status"] != "ok":
                    print(row.get("traceback", ""))
    meta["build_s"] = sum(r.get("build_s", 0) for r in rows)
    meta["analyze_s"] = sum(r.get("analyze_s", 0) for r in rows)
    meta["file_route_s"] = t_file
    meta["wall_s"] = time.perf_counter() - t_start
    summary = summarize(rows, entries)
    if args.only:
        print()
    print_report(summary, rows, meta, file_rows)
    if args.json:
        data = {"meta": meta, "totals": summary["totals"], "targets": TARGETS,
                "pairs": [{"id": e.id, "framework": e.framework, "category": e.category, "visible": e.visible,
                           **s} for e, b, f, s in summary["pairs"]],
                "sound": [{"id": e.id, "framework": e.framework,
                           "unexplained": [f["code"] for f in _unexplained(e, r)],
                           "explained": sorted(e.allowed)} for e, r in summary["sound"]],
                "cases": [{k: v for k, v in r.items() if k != "traceback"} for r in rows]}
        Path(args.json).write_text(json.dumps(data, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
