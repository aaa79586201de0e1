"""SARIF 2.1.0 output, for GitHub code scanning and other SARIF viewers.

One run; ``tool.driver.rules`` lists every registered rule (so a viewer can show
the documentation of rules that found nothing), one ``result`` per finding. The
model file is the result's physical location (a relative, forward-slash URI; a
model file has no lines, so there is no region) and each layer the finding names
is a logical location of kind ``member``. Evidence, explanation, fix and snippets
ride along in the result's property bag. The log validates against the official
OASIS SARIF 2.1.0 schema (tests/test_reports.py).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional
from urllib.parse import quote

from .. import __version__

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
LEVELS = {"error": "error", "warning": "warning", "info": "note"}

#: Absolute URL of the rule reference (``<base>/ML101.md``). SARIF's ``helpUri`` must be an
#: absolute URI, so it is left out until the project has a public home; ``help.markdown``
#: carries the whole rule page either way.
HELP_BASE_URI: Optional[str] = None
INFORMATION_URI: Optional[str] = None


def to_sarif(reports: Iterable, *, base_dir: Optional[str] = None, help_base_uri: Optional[str] = None) -> dict:
    """A SARIF log (a JSON-ready dict) for one or more :class:`~modellint.engine.Report` objects.

    ``base_dir`` (default: the working directory) is what model paths are made relative to.
    ``help_base_uri`` (absolute) adds ``helpUri = <base>/<CODE>.md`` to every rule.
    """
    from ..rules import all_rules
    from ..rules.docs import render_rule_page

    reports = list(reports)
    help_base_uri = help_base_uri or HELP_BASE_URI
    rules, index = [], {}
    for rule in all_rules():
        index[rule.code] = len(rules)
        rules.append(_descriptor(rule, render_rule_page(rule), help_base_uri))

    results, exec_notes, config_notes = [], [], []
    for report in reports:
        uri = artifact_uri(report.graph.source_path, base_dir)
        for f in report.findings:
            if f.code not in index:  # e.g. a probe's finding without a registered rule
                index[f.code] = len(rules)
                rules.append({"id": f.code, "defaultConfiguration": {"level": LEVELS[f.severity]},
                              "properties": {"category": f.category, "tags": [f.category]}})
            results.append(_result(f, index[f.code], uri, report))
        for err in report.errors:
            code = str(err).split(":", 1)[0]
            note = {"level": "error", "message": {"text": f"rule crashed: {err}"}}
            if code in index:
                note["associatedRule"] = {"id": code, "index": index[code]}
            exec_notes.append(note)
        for code, reason in sorted(report.rules_skipped.items()):
            note = {"level": "note", "message": {"text": f"{code} skipped: {reason}"}}
            if code in index:
                note["descriptor"] = {"id": code, "index": index[code]}
            if note not in config_notes:
                config_notes.append(note)

    driver = {"name": "modellint", "version": __version__, "semanticVersion": __version__, "rules": rules}
    if INFORMATION_URI:
        driver["informationUri"] = INFORMATION_URI
    invocation = {"executionSuccessful": not exec_notes}
    if exec_notes:
        invocation["toolExecutionNotifications"] = exec_notes
    if config_notes:
        invocation["toolConfigurationNotifications"] = config_notes
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION,
            "runs": [{"tool": {"driver": driver}, "invocations": [invocation], "results": results}]}


def _descriptor(rule, page: str, help_base_uri: Optional[str]) -> dict:
    from ..rules.docs import doc_sections, first_sentence

    sections = doc_sections(rule.doc())
    what = sections.get("What it does", "").strip()
    short = first_sentence(what) or rule.name
    full = "\n\n".join(_unwrap(s) for s in (what, sections.get("Why is this bad", "")) if s.strip()) or short
    d = {"id": rule.code, "name": rule.name,
         "shortDescription": {"text": short},
         "fullDescription": {"text": full},
         "help": {"text": _unwrap(sections.get("Fix", "")) or full, "markdown": page},
         "defaultConfiguration": {"level": LEVELS[rule.severity]},
         "properties": {"category": rule.category, "tags": [rule.category],
                        "needs": list(rule.needs), "references": list(rule.references)}}
    if help_base_uri:
        d["helpUri"] = help_base_uri.rstrip("/") + f"/{rule.code}.md"
    return d


def _unwrap(text: str) -> str:
    """Hard-wrapped docstring paragraphs as one line each."""
    paras = [" ".join(p.split()) for p in text.strip().split("\n\n")]
    return "\n\n".join(p for p in paras if p)


def _result(f, rule_index: int, uri: Optional[str], report) -> dict:
    loc: dict = {}
    if uri is not None:
        loc["physicalLocation"] = {"artifactLocation": {"uri": uri}}
    if f.layers:
        model = report.graph.name or "model"
        loc["logicalLocations"] = [{"name": str(layer), "fullyQualifiedName": f"{model}/{layer}", "kind": "member"}
                                   for layer in f.layers]
    props = {"category": f.category, "layers": [str(x) for x in f.layers], "evidence": jsonable(f.evidence)}
    for key in ("explanation", "fix"):
        if getattr(f, key):
            props[key] = getattr(f, key)
    if f.snippets:
        props["snippets"] = jsonable(f.snippets)
    if f.references:
        props["references"] = [str(r) for r in f.references]
    result = {"ruleId": f.code, "ruleIndex": rule_index, "level": LEVELS[f.severity],
              "message": {"text": _message(f)},
              "locations": [loc] if loc else [],
              "partialFingerprints": {"modellintFinding/v1": fingerprint(f, uri)},
              "properties": props}
    return result


def _message(f) -> str:
    text = f.message
    if f.fix:
        text += f"\nFix: {f.fix}"
    return text


def fingerprint(f, uri: Optional[str]) -> str:
    """Stable across runs and machines: rule, model path, layers (not the wording)."""
    key = "\x1f".join([f.code, uri or "", *map(str, f.layers)])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def artifact_uri(path: Optional[str], base_dir: Optional[str] = None) -> Optional[str]:
    """A model path as a SARIF URI: relative to ``base_dir`` with forward slashes where it
    lies below it, a ``file://`` URI otherwise; percent-encoded either way."""
    if not path:
        return None
    p = Path(path)
    base = Path(base_dir or os.getcwd())
    if p.is_absolute():
        try:
            p = p.relative_to(base.resolve())
        except ValueError:
            try:
                p = p.resolve().relative_to(base.resolve())
            except ValueError:
                return p.as_uri()
    posix = PurePosixPath(*p.parts).as_posix() if p.parts else str(p)
    posix = posix.replace("\\", "/")
    return quote(posix, safe="/-_.~")


def jsonable(value):
    """Evidence as plain JSON (tuples to lists, numpy scalars to numbers, inf/nan to strings)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "tolist"):  # numpy scalar or array
        return jsonable(value.tolist())
    return str(value)
