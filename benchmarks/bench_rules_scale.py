"""How each rule's time grows with model depth (issue 10: ML201 took ~135 s on 2,000 blocks).

    .venv/bin/python benchmarks/bench_rules_scale.py                       # every rule, 250/500/1000/2000 blocks
    .venv/bin/python benchmarks/bench_rules_scale.py --rules ML201 --families preact
    .venv/bin/python benchmarks/bench_rules_scale.py --sizes 250,2000 --all-times

Builds graphs of N residual blocks with the rule-example builder (:mod:`modellint.build`, the same
node-building steps as the Keras adapter) in three families:

* ``preact``: pre-activation ResNet blocks, ``x + conv(relu(bn(conv(relu(bn(x))))))``: the adds form
  one linear path from the first block to the head (ML201's worst case before issue 10);
* ``mixed``: a rotation of post-activation basic blocks (ReLU after the add), 1x1-3x3-1x1 bottlenecks,
  dilated pre-activation blocks and blocks with plain Dropout on the feature map;
* ``mlp``: residual Dense blocks on vectors, ``x + dense(relu(dense(x)))``;
* ``plain``: no skips, ``conv, bn, conv, bn, relu`` blocks: a linear pair in every block (ML201
  reports them all).

For each family and N it times the shared analyses (receptive fields, costs) once, then each rule in
the registry alone on a context whose analyses are already computed (probe rules get no probe
results and are skipped, as ``modellint check`` skips them). Printed: seconds per rule at each N and
the ratio of the largest N to the smallest (linear growth gives about 8x from 250 to 2000 blocks);
rules whose ratio exceeds ``--flag`` (default 12; at least 50 ms at the largest N) are marked
``SUPER-LINEAR`` and make the exit status 1, unless their number of findings grew as fast (then the
output itself is super-linear, and the rule is listed apart: ML402 pairs every dilated conv with
each earlier one of the same rate that it reads through adds only). By default only rules that
take at least 5 ms at the largest N are listed (``--all-times`` lists every rule).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modellint.build import bn, conv, dense, dropout, gap, inp, relu, residual, seq  # noqa: E402
from modellint.dataset import facts_from_values  # noqa: E402
from modellint.rules import all_rules  # noqa: E402
from modellint.rules.context import Context  # noqa: E402

FAMILIES = ("preact", "mixed", "mlp", "plain")
WIDTH = 16


def _blocks_preact(n):
    return [residual(bn(), relu(), conv(WIDTH), bn(), relu(), conv(WIDTH)) for _ in range(n)]


def _blocks_mixed(n):
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:    # post-activation basic block
            out += [residual(conv(WIDTH), bn(), relu(), conv(WIDTH), bn()), relu()]
        elif kind == 1:  # bottleneck
            out += [residual(conv(WIDTH // 4, 1), bn(), relu(), conv(WIDTH // 4), bn(), relu(),
                             conv(WIDTH, 1), bn()), relu()]
        elif kind == 2:  # dilated pre-activation block
            out += [residual(bn(), relu(), conv(WIDTH, dilation=2), bn(), relu(), conv(WIDTH, dilation=2))]
        else:            # plain Dropout on the feature map
            out += [residual(conv(WIDTH, act="relu"), dropout(0.1), conv(WIDTH)), relu()]
    return out


def build(family: str, n: int):
    """The graph of ``n`` residual blocks of ``family``, with a classifier head."""
    kw = dict(loss="categorical_crossentropy", optimizer="adam", lr=1e-3)
    if family == "mlp":
        blocks = [residual(dense(64), relu(), dense(64)) for _ in range(n)]
        return seq(inp(64), dense(64, act="relu"), *blocks, dense(10, act="softmax"), **kw)
    if family == "plain":
        blocks = [layer for _ in range(n) for layer in (conv(WIDTH), bn(), conv(WIDTH), bn(), relu())]
        return seq(inp(32, 32, 3), *blocks, gap(), dense(10, act="softmax"), **kw)
    blocks = _blocks_preact(n) if family == "preact" else _blocks_mixed(n)
    return seq(inp(32, 32, 3), conv(WIDTH, act="relu"), *blocks, gap(), dense(10, act="softmax"), **kw)


def time_rules(graph, rules, facts) -> tuple:
    """(seconds for the shared analyses, {code: seconds}, {code: findings or error})."""
    ctx = Context(graph, facts)
    t0 = time.perf_counter()
    ctx.rf, ctx.costs  # noqa: B018 - computed once, shared by the rules as in run_rules
    analyses = time.perf_counter() - t0
    times, found = {}, {}
    for rule_cls in rules:
        if "probes" in rule_cls.needs:
            continue
        best = None
        for _ in range(3):  # the best of up to 3 runs: a millisecond rule is at the mercy of the collector
            gc.collect()
            t0 = time.perf_counter()
            try:
                found[rule_cls.code] = len(list(rule_cls().check(ctx)))
            except Exception as exc:  # noqa: BLE001 - reported, as run_rules does
                found[rule_cls.code] = f"{type(exc).__name__}: {exc}"
            took = time.perf_counter() - t0
            best = took if best is None else min(best, took)
            if took > 0.5:
                break
        times[rule_cls.code] = best
    return analyses, times, found


def _growth(findings: dict, code: str, lo: int, hi: int):
    """How many times more findings ``code`` gave at ``hi`` blocks than at ``lo`` (None: not counts)."""
    a, b = findings[lo].get(code), findings[hi].get(code)
    if not isinstance(a, int) or not isinstance(b, int):
        return None
    return b / max(a, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="250,500,1000,2000", help="residual block counts (default 250,500,1000,2000)")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset of: " + ", ".join(FAMILIES))
    ap.add_argument("--rules", help="comma-separated rule codes (default: every rule in the registry)")
    ap.add_argument("--flag", type=float, default=12.0,
                    help="mark a rule whose time ratio (largest / smallest N) exceeds this, when it takes at "
                         "least 50 ms at the largest N (default 12; linear is about 8 for 250 -> 2000)")
    ap.add_argument("--all-times", action="store_true", help="list every rule, not only those over 5 ms")
    args = ap.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",")]
    wanted = {c.strip().upper() for c in args.rules.split(",")} if args.rules else None
    rules = [r for r in all_rules() if wanted is None or r.code in wanted]
    facts = facts_from_values(samples=8000, classes=10, image_size="32x32", source="benchmark")
    flagged, output_bound = [], []
    for family in args.families.split(","):
        per_size, analyses, findings = {}, {}, {}
        print(f"== {family}: residual blocks {', '.join(map(str, sizes))}", flush=True)
        for n in sizes:
            t0 = time.perf_counter()
            graph = build(family, n)
            t_build = time.perf_counter() - t0
            analyses[n], per_size[n], findings[n] = time_rules(graph, rules, facts)
            total = sum(per_size[n].values())
            slowest = max(per_size[n], key=per_size[n].get)
            print(f"  {n:>5} blocks, {len(graph):>6} nodes: built in {t_build:.2f} s, analyses {analyses[n]:.2f} s, "
                  f"{len(per_size[n])} rules {total:.2f} s (slowest {slowest} {per_size[n][slowest]:.2f} s)",
                  flush=True)
        lo, hi = sizes[0], sizes[-1]
        print("  rule   " + "".join(f"{str(n) + ' s':>10}" for n in sizes) + f"{f'{hi}/{lo}':>11}  findings")
        rows = [("analyses", analyses)] + [(code, {n: per_size[n][code] for n in sizes}) for code in per_size[hi]]
        for code, t in rows:
            if not args.all_times and code != "analyses" and t[hi] < 0.005:
                continue
            ratio = t[hi] / t[lo] if t[lo] > 0 else float("inf")
            mark = ""
            if len(sizes) > 1 and ratio > args.flag and t[hi] >= 0.05:
                grown = _growth(findings, code, lo, hi)
                if grown is not None and grown > args.flag:
                    mark = f"  super-linear output: {grown:.0f}x the findings"
                    output_bound.append(f"{family}/{code}")
                else:
                    mark = "  SUPER-LINEAR"
                    flagged.append(f"{family}/{code}")
            found = "" if code == "analyses" else str(findings[hi][code])
            print(f"  {code:<7}" + "".join(f"{t[n]:>10.3f}" for n in sizes) + f"{ratio:>10.1f}x  {found}{mark}")
        print(flush=True)
    if output_bound:
        print("time follows the number of findings, which itself grows super-linearly: " + ", ".join(output_bound))
    if flagged:
        print("super-linear: " + ", ".join(flagged))
        return 1
    print(f"no rule grows faster than {args.flag:g}x from {sizes[0]} to {sizes[-1]} blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
