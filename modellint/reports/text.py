"""`modellint check` as text: a header per model, one block per finding, a summary line.

::

    examples/seed_cnn.h5  Sequential · 13 layers · 168,793 params (168,339 trainable) · 184.0 M MACs · input 128×128×3
    examples/seed_cnn.h5:conv2d_1: ML102 [warning] conv2d_1 … conv2d_4 (4 layers): bias is cancelled ...
        wasted_params: 224
        A per-channel bias passes unchanged through pooling and dropout, and the next
        BatchNormalization subtracts the channel mean: 224 parameters that never matter.
        fix  Drop the bias of layers that feed BatchNormalization.
             Conv2D(filters, 3, padding='same', use_bias=False)

    6 findings: 4 warnings, 2 info · 31 rules ran · 4 skipped (need --data)

The finding line is ``path:layer: CODE [severity] message`` so editors and grep can
jump to it; ``quiet=True`` prints only those lines. Output is a pure function of the
reports, in ``report.findings`` order.
"""

from __future__ import annotations

import collections
import math
import textwrap
from typing import Iterable

from .summary import human, layer_count, summarize, weights_block, weights_line

INDENT = "    "
WIDTH = 100
_SEVERITY_ORDER = ("error", "warning", "info")
_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def render(reports: Iterable, *, quiet: bool = False, explain: bool = False, show_evidence: bool = True) -> str:
    """Render one or more :class:`~modellint.engine.Report` objects as text (no trailing
    newline: ``print()`` adds it)."""
    reports = list(reports)
    out: list = []
    for i, report in enumerate(reports):
        if not quiet:
            if i:
                out.append("")
            out.append(header(report))
            out.extend(source_lines(report))
            wl = weights_line(weights_block(report))
            if wl:
                out.append(INDENT + wl)
            if getattr(getattr(report, "probes", None), "interrupted", False):
                out.append(f"{INDENT}! probes interrupted (Ctrl-C): results are partial; the probes that did "
                           "not finish gave no findings")
            out.extend(verdict_block(report))
            if report.findings:
                out.append("")
        for j, f in enumerate(report.findings):
            if j and not quiet:
                out.append("")
            out.extend(finding_lines(report, f, quiet=quiet, show_evidence=show_evidence))
        if not quiet:
            for err in report.errors:
                out.append(f"{INDENT}! rule crashed (a modellint bug, please report): {oneline(str(err))}")
    if not quiet:
        out.append("")
        out.append(summary_line(reports))
        if explain:
            out.extend(skipped_lines(reports))
            out.extend(rule_pages(reports))
    return "\n".join(out)


def verdict_block(report) -> list:
    """The measured verdict (:mod:`.verdict`) under the header, when probes or a comparison ran."""
    from .verdict import lines

    items = lines(report)
    if not items:
        return []
    out = ["", "verdict (measured on your data):"]
    for item in items:
        out.extend(_wrap(f"{item['label']}: {item['text']}", f"{INDENT}{item['mark']} ", INDENT + "  "))
    c = getattr(report, "comparison", None)
    if c is not None and getattr(c, "status", "") == "ok":
        out.extend(comparison_table(c))
    return out


def comparison_table(c) -> list:
    """Per seed: both models' validation accuracy and loss."""
    by = {}
    for r in c.runs:
        by.setdefault(r["seed"], {})[r["role"]] = r
    names = c.names
    out = [f"{INDENT}  seed  {names['model'][:28]:>28}  {names['other'][:28]:>28}   (validation accuracy / loss)"]
    for seed in sorted(by):
        row = by[seed]
        cells = [f"{100 * row[k]['val_accuracy']:6.1f} % / {row[k]['val_loss']:.3f}" if k in row else "-"
                 for k in ("model", "other")]
        out.append(f"{INDENT}  {seed:>4}  {cells[0]:>28}  {cells[1]:>28}")
    a, lo = c.accuracy, c.loss
    out.append(f"{INDENT}  mean  {100 * a['model_mean']:6.1f} ± {100 * a['model_spread']:.1f} %".ljust(36 + len(INDENT))
               + f"  {100 * a['other_mean']:6.1f} ± {100 * a['other_spread']:.1f} %".rjust(28)
               + f"   loss {lo['diff']:+.3f} ± {lo['diff_spread']:.3f}")
    return out


def rule_pages(reports) -> list:
    """``--explain``: the page of every rule that reported something (as ``ruff --explain``)."""
    from ..rules import get_rule
    from ..rules.docs import render_rule_page

    codes = sorted({f.code for r in reports for f in r.findings})
    out = []
    for code in codes:
        rule = get_rule(code)
        if rule is not None:
            out += ["", "─" * 72, render_rule_page(rule).rstrip()]
    return out


# -- pieces ---------------------------------------------------------------------

def oneline(text: str) -> str:
    """Names and messages on a finding line stay on one line (control characters escaped)."""
    return "".join(_CONTROL.get(c, c) for c in str(text))


def location(report, finding) -> str:
    return oneline(finding.path or report.graph.source_path or report.graph.name or "<model>")


def header(report) -> str:
    g = report.graph
    s = summarize(g)
    n_layers = layer_count(s)
    parts = [f"{g.model_class or g.framework or 'model'}", f"{n_layers} layers",
             f"{g.total_params:,} params ({g.trainable_params:,} trainable)", f"{human(s.macs)} MACs"]
    shapes = []
    for name in g.inputs:
        shape = g.display_shape(g[name].output_shape)
        if shape is not None:
            shapes.append("×".join("?" if d is None else str(d) for d in list(shape)[1:]))
    if shapes:
        parts.append("input " + ", ".join(shapes))
    task = summarize(g, report.dataset).task
    if task is not None and task.task != "unknown":
        parts.append(f"task {task.task}" + (" (stated)" if task.source == "stated" else
                                            " (assumed)" if task.source == "assumed" else ""))
    return f"{oneline(g.source_path or g.name)}  " + " · ".join(parts)


def source_lines(report) -> list:
    """What a source could not show (a pasted model.summary(): activations, loss...), the rules
    that skipped for it, what was assumed, and the dataset facts read from the prose around it."""
    g = report.graph
    facts = getattr(g, "unknown_facts", None) or {}
    if not facts:
        return []
    out = [f"{INDENT}read from a pasted summary table: shapes and parameter counts are the table's, kernels, "
           "strides and pool windows inferred from them (modellint summary --explain shows the arithmetic)"]
    by_fact: dict = {}
    for code, reason in sorted(report.rules_skipped.items()):
        for fact in facts:
            if reason.startswith("needs the model's") and fact in reason.split(":")[0]:
                by_fact.setdefault(fact, []).append(code)
    for fact, why in facts.items():
        codes = by_fact.get(fact, [])
        if codes:
            out.extend(_wrap(f"not in a summary: {fact}. {why[0].upper() + why[1:]}. Skipped: "
                             f"{', '.join(codes)}" + (" (ML201, no non-linearity between layers, needs the "
                                                      "model file to decide)" if "ML201" in codes else ""),
                             INDENT, INDENT + "  "))
    assumed = {}
    for node in g:
        for attr, p in (node.attrs.get("provenance") or {}).items():
            if isinstance(p, dict) and p.get("how") == "assumed":
                assumed.setdefault(attr, []).append(node.name)
    if assumed:
        out.extend(_wrap("assumed, not shown by the table: " + "; ".join(
            f"{attr} on {len(names)} layer{'s' if len(names) > 1 else ''} ({names[0]}"
            f"{' …' if len(names) > 1 else ''}): {_first_why(g, names[0], attr)}" for attr, names in assumed.items()),
            INDENT, INDENT + "  "))
    if report.dataset is not None and "text around the table" in (report.dataset.source or ""):
        out.extend(_wrap(f"dataset facts from {report.dataset.source} (flags override them)", INDENT, INDENT + "  "))
    return out


def _first_why(g, name: str, attr: str) -> str:
    return g[name].attrs["provenance"][attr].get("why", "")


def finding_lines(report, f, *, quiet: bool = False, show_evidence: bool = True) -> list:
    layer = oneline(f.layers[0]) if f.layers else "(model)"
    lines = [f"{location(report, f)}:{layer}: {f.code} [{f.severity}] {oneline(f.message)}"]
    if quiet:
        return lines
    if show_evidence:
        ev = evidence_text(f)
        if ev:
            lines.extend(_wrap(ev, INDENT))
    if f.explanation:
        lines.extend(_wrap(f.explanation, INDENT))
    if f.fix or f.snippets:
        fix = f.fix or "see below"
        first = _wrap(fix, INDENT + "fix  ", INDENT + "     ")
        lines.extend(first)
        snippet = _snippet_for(report, f)
        if snippet:
            lines.extend(INDENT + "     " + s for s in snippet.splitlines())
    return lines


def _snippet_for(report, f) -> str:
    if not f.snippets:
        return ""
    framework = report.graph.framework or ""
    if framework in f.snippets:
        return f.snippets[framework]
    return ""


def evidence_text(f) -> str:
    items = []
    for key, value in f.evidence.items():
        if key == "layers" and isinstance(value, (list, tuple)) and list(value) == list(f.layers):
            continue  # already on the finding line / in the message
        items.append(f"{key}: {_value(value)}")
    return " · ".join(items)


def _value(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_value(x)}" for k, x in v.items()) + "}"
    if hasattr(v, "item"):  # numpy scalar
        return _value(v.item())
    return oneline(str(v))


def _wrap(text: str, first: str, rest: str = None) -> list:
    rest = INDENT if rest is None else rest
    out = []
    for i, para in enumerate(str(text).splitlines() or [""]):
        wrapped = textwrap.wrap(para, width=WIDTH, initial_indent=first if i == 0 else rest,
                                subsequent_indent=rest, break_long_words=False, break_on_hyphens=False)
        out.extend(wrapped or [(first if i == 0 else rest).rstrip()])
    return out


def _plural(n: int, word: str) -> str:
    if word == "info":
        return f"{n} info"
    return f"{n} {word}" + ("" if n == 1 else "s")


def summary_line(reports: list) -> str:
    counts = {s: 0 for s in _SEVERITY_ORDER}
    for r in reports:
        for sev, n in r.counts().items():
            counts[sev] = counts.get(sev, 0) + n
    total = sum(counts.values())
    head = _plural(total, "finding")
    if total:
        head += ": " + ", ".join(_plural(counts[s], s) for s in _SEVERITY_ORDER if counts.get(s))
    if len(reports) > 1:
        head += f" in {len(reports)} models"
    ran = sorted({c for r in reports for c in r.rules_run})
    skipped = {}
    for r in reports:
        for code, reason in r.rules_skipped.items():
            skipped.setdefault(code, reason)
    parts = [head, f"{len(ran)} rule{'' if len(ran) == 1 else 's'} ran"]
    if skipped:
        counts = collections.Counter(_skip_kind(reason) for reason in skipped.values())
        why = [f"{counts[kind]} {label}" for kind, label in _SKIP_KINDS if counts[kind]]
        if counts[None]:
            why.append(f"{counts[None]} more: --explain says why")
        parts.append(f"{len(skipped)} skipped ({', '.join(why)})")
    errors = sum(len(r.errors) for r in reports)
    if errors:
        parts.append(f"{errors} crashed")
    return " · ".join(parts)


def skipped_lines(reports: list) -> list:
    skipped = {}
    for r in reports:
        for code, reason in r.rules_skipped.items():
            skipped.setdefault(code, reason)
    if not skipped:
        return []
    return ["skipped:"] + [f"{INDENT}{code}  {oneline(reason)}" for code, reason in sorted(skipped.items())]


# Why a rule was skipped, as the one-line summary counts it: (kind, label), read from the
# engine's reason by the phrase in _SKIP_PHRASES.
_SKIP_KINDS = (("data", "need --data"), ("probes", "need probes"), ("weights", "need weights"),
               ("checked", "covered by the data checks"))
_SKIP_PHRASES = (("dataset facts", "data"), ("probe results", "probes"), ("model's weights", "weights"),
                 ("covered by the data checks", "checked"))


def _skip_kind(reason: str):
    return next((kind for phrase, kind in _SKIP_PHRASES if phrase in reason), None)
