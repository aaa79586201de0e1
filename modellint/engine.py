"""Selects rules, runs them on a graph, and gathers a :class:`Report`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Optional

from .errors import ConfigError
from .graph import Graph
from .rules import REGISTRY, all_rules
from .rules.base import CATEGORIES, SEVERITY_RANK, Finding
from .rules.context import Context, DatasetFacts


def _matches(code: str, category: str, selector: str) -> bool:
    s = selector.strip()
    return s.upper() == "ALL" or code.startswith(s.upper()) or s.lower() == category


def validate_selectors(selectors: Iterable[str], option: str) -> list:
    out = []
    for s in selectors or ():
        s = s.strip()
        if not s:
            continue
        if not (s.upper() == "ALL" or s.lower() in CATEGORIES
                or any(code.startswith(s.upper()) for code in REGISTRY)):
            raise ConfigError(f"{option}: {s!r} is not a rule code, code prefix or category")
        out.append(s)
    return out


def select_rules(select=None, ignore=None, extend_select=None) -> list:
    """Rule classes chosen by code, code prefix or category (``ruff`` semantics:
    ``select`` replaces the default set of all rules, ``extend_select`` adds, ``ignore`` removes;
    the most specific selector wins is not needed here: ignore always wins)."""
    select = validate_selectors(select, "select") or ["ALL"]
    extend = validate_selectors(extend_select, "extend-select")
    ignore = validate_selectors(ignore, "ignore")
    chosen = []
    for rule in all_rules():
        picked = any(_matches(rule.code, rule.category, s) for s in select + extend)
        if picked and not any(_matches(rule.code, rule.category, s) for s in ignore):
            chosen.append(rule)
    return chosen


@dataclass
class Report:
    """Everything one analysis found: the graph, the findings, what ran and what did not."""

    graph: Graph
    findings: list = field(default_factory=list)
    rules_run: list = field(default_factory=list)  # codes
    rules_skipped: dict = field(default_factory=dict)  # code -> reason
    dataset: DatasetFacts = field(default_factory=DatasetFacts)
    errors: list = field(default_factory=list)  # rules that crashed (a bug of ours)
    probes: Optional[object] = None  # a probes.suite.ProbeReport, when probes ran
    weights: Optional[object] = None  # the analysis.weights.WeightStore the weight rules read, when any
    comparison: Optional[object] = None  # a probes.compare.Comparison, from probe --compare

    @property
    def path(self) -> Optional[str]:
        return self.graph.source_path

    def counts(self) -> dict:
        out = {s: 0 for s in ("error", "warning", "info")}
        for f in self.findings:
            out[f.severity] += 1
        return out

    def at_or_above(self, severity: str) -> list:
        return [f for f in self.findings if SEVERITY_RANK[f.severity] >= SEVERITY_RANK[severity]]

    def to_dict(self) -> dict:
        from .reports.summary import summarize, weights_block

        s = summarize(self.graph, self.dataset).to_dict()
        return {
            "model": s["model"],
            "task": s["task"],
            "params": s["params"],
            "macs": s["macs"],
            "receptive_field": s["receptive_field"],
            "dataset": self.dataset.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
            "counts": self.counts(),
            "rules_run": list(self.rules_run),
            "rules_skipped": dict(self.rules_skipped),
            "errors": list(self.errors),
            "weights": weights_block(self),
            "probes": self.probes.to_dict() if self.probes is not None else None,
            "comparison": self.comparison.to_dict() if self.comparison is not None else None,
        }

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_sarif(self) -> dict:
        from .reports.sarif import to_sarif

        return to_sarif([self])

    def __repr__(self) -> str:
        c = self.counts()
        where = self.path or self.graph.name
        return (f"<Report {where}: {len(self.findings)} findings ({c['error']} errors, {c['warning']} warnings, "
                f"{c['info']} info), {len(self.rules_run)} rules ran>")

    def __str__(self) -> str:
        """``print(report)`` shows what ``modellint check`` prints."""
        return self.to_text()

    def to_text(self, **kwargs) -> str:
        """The terminal text of ``modellint check`` (``quiet=True``: one line per finding;
        ``explain=True``: also skipped rules and the page of every reported rule)."""
        from .reports.text import render

        return render([self], **kwargs)

    def to_html(self, path=None, **kwargs) -> str:
        """The HTML report (one self-contained file); written to ``path`` when given.
        ``kwargs``: ``title``, ``generated`` (a caption such as a timestamp; none by default),
        ``rule_base`` (URL prefix of the rule pages)."""
        from .reports.html import render, write

        return write([self], path, **kwargs) if path is not None else render([self], **kwargs)

    def _repr_html_(self) -> str:  # Jupyter
        from .reports.html import render

        return render([self], fragment=True)


def run_rules(graph: Graph, rules: list, dataset: Optional[DatasetFacts] = None,
              probes: Optional[dict] = None, weights=None) -> Report:
    """Run ``rules`` on ``graph``; ``probes`` are probe results (name -> result dict) for probe rules;
    ``weights`` the model's :class:`~modellint.analysis.weights.WeightStore` for weight rules."""
    dataset = dataset or DatasetFacts()
    ctx = Context(graph, dataset, probes, weights=weights)
    report = Report(graph=graph, dataset=dataset, weights=weights)
    order = {n.name: i for i, n in enumerate(graph)}
    ctx.findings = report.findings  # what the rules before this one found (probe rules name static causes)
    # Static rules first, then the probe rules, which read the static findings (a head error explains a
    # failed training probe: "likely caused by ML302").
    for rule_cls in sorted(rules, key=lambda r: "probes" in r.needs):
        if "probes" in rule_cls.needs and probes is None:
            report.rules_skipped[rule_cls.code] = "needs probe results: modellint probe MODEL --data DIR"
            continue
        blind = [fact for fact in rule_cls.model_facts() if fact in getattr(graph, "unknown_facts", {})]
        if blind:
            why = graph.unknown_facts[blind[0]]
            report.rules_skipped[rule_cls.code] = f"needs the model's {' and '.join(blind)}: {why}"
            continue
        if "weights" in rule_cls.needs and (weights is None or weights.empty):
            report.rules_skipped[rule_cls.code] = _no_weights(weights)
            continue
        missing = [need for need in rule_cls.needs if need not in ("probes", "weights") and not dataset.has(need)]
        covered = getattr(rule_cls, "covered_by_data_checks", ())
        if missing and covered and probes is not None:
            report.rules_skipped[rule_cls.code] = (f"covered by the data checks {', '.join(covered)}, which "
                                                   "compared every image with the model input")
            continue
        if missing:
            flags = ", ".join("--" + m.replace("_", "-") for m in missing)
            report.rules_skipped[rule_cls.code] = f"needs dataset facts: {flags} (or --data DIR)"
            continue
        rule = rule_cls()
        try:
            found = list(rule.check(ctx))
        except Exception as exc:  # a rule bug must not hide the other findings
            report.errors.append(f"{rule_cls.code}: {type(exc).__name__}: {exc}")
            continue
        report.rules_run.append(rule_cls.code)
        for f in group_repeats(found):
            f.path = graph.source_path
            report.findings.append(f)
    # Ranking: severity, then the rule's expected impact on results, then the evidence (a probe's
    # measurement before an inference from the architecture), then position in the model.
    impact = {r.code: r.impact for r in rules}
    measured = {r.code for r in rules if "probes" in r.needs}
    report.findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity], -impact.get(f.code, 2),
                                        f.code not in measured, _first_layer(f, order), f.code))
    return report


def _no_weights(store) -> str:
    if store is not None and store.error:
        return f"needs the model's weights, which could not be read: {store.error}"
    if store is not None:
        return "needs the model's weights: the source holds none (a state_dict: --weights FILE)"
    return ("needs the model's weights: none read (--no-weights, or a source without them; "
            "a state_dict: --weights FILE)")


#: A rule that reports this many findings of one severity says one thing many times: they
#: become one finding listing every layer (one root cause, one finding).
GROUP_AT = 3


def group_repeats(found: list) -> list:
    """Findings of one rule, with repeats of one severity folded into one finding: the
    first one's message, explanation and fix, every layer, and the other messages as
    evidence (``also``). Order of first appearance is kept."""
    by_severity: dict = {}
    for f in found:
        by_severity.setdefault(f.severity, []).append(f)
    out = []
    for f in found:
        same = by_severity.get(f.severity)
        if not same or len(same) < GROUP_AT:
            out.append(f)
            continue
        if same[0] is not f:
            continue
        layers = list(dict.fromkeys(name for g in same for name in g.layers))
        first = same[0]
        merged = Finding(code=first.code, category=first.category, severity=first.severity,
                         message=f"{first.message} (and {len(same) - 1} more like it: "
                                 f"{_names([n for n in layers if n not in first.layers])})",
                         layers=layers, evidence={**first.evidence, "repeats": len(same),
                                                  "also": [g.message for g in same[1:21]]},
                         explanation=first.explanation, fix=first.fix, snippets=dict(first.snippets),
                         references=list(first.references))
        out.append(merged)
    return out


def _names(layers: list) -> str:
    if len(layers) <= 3:
        return ", ".join(layers)
    return f"{layers[0]} … {layers[-1]} ({len(layers)} layers)"


def _first_layer(f: Finding, order: dict) -> int:
    return min((order.get(name, len(order)) for name in f.layers), default=-1)
