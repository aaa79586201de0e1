"""The HTML report: one self-contained file (inline CSS, inline SVG, no JavaScript, no network).

``render([report])`` returns a whole document; ``render([report], fragment=True)`` the
``<div class="mlr">`` inside it (what Jupyter shows through ``Report._repr_html_``).
The page is a pure function of the report: the same model and data give the same
bytes (no timestamps unless ``generated=`` is passed, no random ids).

Structure (templates in ``templates/``, Jinja2 with ``autoescape=True``)::

    report.html.j2        document shell, inlines report.css, includes model.html.j2 per report
    model.html.j2         one model: the sections below, in this order
      _header.html.j2       #summary          identity, params, MACs, input, RF vs input
        _verdict.html.j2    #verdict          first, when probes or --compare ran: the measured verdict,
                                              both models' runs and curves (reports/verdict.py)
      _findings.html.j2     #recommendations  ranked: what to change first (macros.finding)
                            #findings         all findings by severity, then category
      _layers.html.j2       #layers           the layer table; rows named in findings marked
      _weights.html.j2      #weights          when weights were read: per-layer spectral α (healthy band
                                              shaded) and dead-unit share (summary.weights_block)
                            #graph            the layer-graph diagram
                            #charts-rf        receptive field growth against the input size
                            #charts-cost      parameters and MACs per layer
      _probes.html.j2       #probes           probe-summary, probe-lr, probe-training, probe-gradients,
                                              probe-dead, probe-scaling, probe-confusion, data-checks
    _rules.html.j2        #rules             after the models: the pages of the rules they link to
                                             (#rule-ML401...), from the rules' docstrings
    macros.html.j2        finding card, evidence list

Escaping: every string that comes from a model or data file reaches the page through
Jinja2's autoescape or, inside SVG, through :func:`charts._e`; nothing from a model is
ever marked safe. Only the SVG strings built by :mod:`charts` (escaped inside) and the
rule pages (modellint's own docstrings, escaped before their Markdown is turned into tags)
are.

Facts are not re-derived here: the layer table, totals and receptive field come from
:func:`~modellint.reports.summary.summarize`, evidence formatting from
:mod:`~modellint.reports.text`, the ranking from the engine (``report.findings`` order).
"""

from __future__ import annotations

import math
import numbers
import re
from pathlib import Path
from typing import Iterable, Optional

from markupsafe import Markup, escape

from . import charts
from .summary import _rf_text, _shape_text, human, human_bytes, layer_count, summarize, weights_block, weights_line
from .text import _value, summary_line

TEMPLATES = Path(__file__).resolve().parent / "templates"
SEVERITIES = ("error", "warning", "info")
#: The rule pages of the rules a report mentions are part of the page (``#rule-ML401``), so its links
#: work offline; ``rule_base`` (or :data:`modellint.reports.sarif.HELP_BASE_URI`) links elsewhere.
RULE_ANCHOR = "rule-"
IMPACT_WORDS = {3: "high", 2: "medium", 1: "low"}
MAX_RECOMMENDATIONS = 10
MAX_EVIDENCE_CHARS = 600
MAX_FILES = 20
MANY_LAYERS = 60  # above this many weighted layers the cost chart switches to compact columns
PAIR_WIDTH = 520  # the two training charts side by side at their own size (10 px text stays 10 px)

_env = None


def _environment():
    global _env
    if _env is None:
        from jinja2 import Environment, FileSystemLoader, StrictUndefined

        _env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                           trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
        _env.filters["num"] = _num
        _env.filters["pct"] = _pct
        _env.filters["human"] = human
    return _env


# -- public -------------------------------------------------------------------------

def render(reports: Iterable, *, fragment: bool = False, title: Optional[str] = None,
           generated: Optional[str] = None, rule_base: Optional[str] = None) -> str:
    """HTML for one or more :class:`~modellint.engine.Report` objects.

    ``generated``: a caption (e.g. a timestamp) shown in the footer; omitted by default so
    the output is reproducible. ``rule_base``: URL prefix of the rule pages (``<base>ML401.md``)."""
    from .. import __version__

    reports = list(reports)
    models = [model_context(r, suffix="" if i == 0 else f"-{i + 1}", rule_base=rule_base)
              for i, r in enumerate(reports)]
    if title is None:
        title = "modellint: " + ", ".join(m["header"]["file"] for m in models) if models else "modellint"
    codes = sorted({c for m in models for c in m["rule_codes"]})
    tpl = _environment().get_template("report.html.j2")
    return tpl.render(models=models, fragment=fragment, title=title, generated=generated, version=__version__,
                      rules=[] if _external_base(rule_base) else rule_pages(codes))


def write(reports: Iterable, path, **kwargs) -> str:
    html = render(reports, **kwargs)
    Path(path).write_text(html, encoding="utf-8")
    return html


# -- building the page's data ---------------------------------------------------------------

def _external_base(rule_base: Optional[str] = None) -> Optional[str]:
    from .sarif import HELP_BASE_URI

    return rule_base or (HELP_BASE_URI.rstrip("/") + "/" if HELP_BASE_URI else None)


def rule_url(code: str, rule_base: Optional[str] = None) -> str:
    base = _external_base(rule_base)
    return f"{base}{code}.md" if base else f"#{RULE_ANCHOR}{code}"


def rule_pages(codes) -> list:
    """The pages of rules ``codes`` for the end of the report: title, metadata, and the docstring's
    sections (``## What it does`` ...) as HTML (paragraphs, bullet lists, `code` and **bold**)."""
    from ..rules import get_rule

    pages = []
    for code in codes:
        try:
            rule = get_rule(code)
        except Exception:
            continue
        sections, title, paras = [], None, []
        for block in re.split(r"\n\s*\n", rule.doc().strip()):
            lines = block.strip().splitlines()
            if lines and lines[0].startswith("## "):
                if title is not None or paras:
                    sections.append({"title": title, "paragraphs": paras})
                title, paras, lines = lines[0][3:].strip(), [], lines[1:]
            if lines:
                paras.append(_md_block(lines))
        if title is not None or paras:
            sections.append({"title": title, "paragraphs": paras})
        pages.append({"code": rule.code, "name": rule.name, "category": rule.category, "severity": rule.severity,
                      "anchor": RULE_ANCHOR + rule.code, "sections": sections,
                      "references": [str(r) for r in rule.references]})
    return pages


def _md_inline(text: str) -> Markup:
    out = str(escape(text))
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return Markup(re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out))


def _md_block(lines: list) -> Markup:
    """One Markdown paragraph or bullet list of a rule's docstring as HTML."""
    if all(re.match(r"\s*[-*] ", ln) or ln.startswith("  ") for ln in lines) and re.match(r"\s*[-*] ", lines[0]):
        items = []
        for ln in lines:
            if re.match(r"\s*[-*] ", ln):
                items.append(re.sub(r"^\s*[-*] ", "", ln))
            else:
                items[-1] += " " + ln.strip()
        return Markup("<ul>" + "".join(f"<li>{_md_inline(i)}</li>" for i in items) + "</ul>")
    return Markup(f"<p>{_md_inline(' '.join(ln.strip() for ln in lines))}</p>")


def model_context(report, *, suffix: str = "", rule_base: Optional[str] = None) -> dict:
    g = report.graph
    s = summarize(g, report.dataset)
    rows = s.rows
    index = {r.name: i for i, r in enumerate(rows)}
    for node in g:  # fused activations point at their layer's row
        if node.fused_into and node.fused_into in index:
            index[node.name] = index[node.fused_into]
    hits: dict = {}  # row index -> codes
    for f in report.findings:
        for name in f.layers:
            i = index.get(name)
            if i is not None and f.code not in hits.setdefault(i, []):
                hits[i].append(f.code)

    def anchor(i: int) -> str:
        return f"L{i}{suffix}"

    findings = [_finding(report, f, index, anchor, rule_base) for f in report.findings]
    for n, f in enumerate(findings, 1):
        f["rank"] = n
    recs = [f for f in findings if f["severity"] in ("error", "warning")][:MAX_RECOMMENDATIONS]
    if not recs:
        recs = findings[:3]
    groups = []
    for sev in SEVERITIES:
        of_sev = [f for f in findings if f["severity"] == sev]
        if not of_sev:
            continue
        cats = []
        for cat in _categories(of_sev):
            cats.append({"category": cat, "findings": [f for f in of_sev if f["category"] == cat]})
        groups.append({"severity": sev, "count": len(of_sev), "categories": cats})

    from ..analysis.explain import explain as explain_graph

    explained = explain_graph(g)  # how each number comes about: an expandable cell per row
    layer_rows = [{"i": i, "anchor": anchor(i), "name": r.name, "type": r.type, "shape": _shape_text(r.output_shape),
                   "params": r.params, "rf": _rf_text(r.receptive_field), "macs": r.macs,
                   "codes": hits.get(i, []), "notes": r.notes, "explain": explained["rows"].get(r.name)}
                  for i, r in enumerate(rows)]
    return {
        "sfx": suffix,
        "header": _header(report, s),
        "recommendations": recs,
        "groups": groups,
        "n_findings": len(findings),
        "layers": layer_rows,
        "explain": {"totals": explained["totals"], "concentration": explained["concentration"]},
        "graph_svg": _graph(g, rows, index, hits, anchor),
        "rf_chart": _rf_chart(s, hits),
        "cost_chart": _cost_chart(rows, hits),
        "weights": _weights(report),
        "probes": _probes(report, index, hits),
        "verdict": _verdict(report),
        "errors": [str(e) for e in report.errors],
        "skipped": sorted(report.rules_skipped.items()),
        # the rules this model's part links to (findings and data checks): their pages end the report
        "rule_codes": sorted({f.code for f in report.findings} | {
            str(c.get("code")) for c in (getattr(getattr(report, "probes", None), "data", None) or {}).get("checks")
            or [] if c.get("code")}),
    }


def _weights(report) -> Optional[dict]:
    """The weights section (#weights): None when no weights were read. Numbers from
    :func:`~modellint.reports.summary.weights_block`, as in the JSON and text reports."""
    block = weights_block(report)
    if block is None:
        return None
    lo, hi = block["range"]
    # one row per layer with a kernel (conv, dense...): BatchNorm has no spectrum and no units to die
    names = [n for n, v in block["layers"].items() if v["role"] not in ("batchnorm", "other") and v["units"]]
    flagged = {name for f in report.findings if f.code.startswith(("ML96", "ML97")) for name in f.layers}
    alphas = [block["layers"][n]["alpha"] for n in names]
    dead = [block["layers"][n]["dead_units"] / block["layers"][n]["units"] for n in names]
    top = max([a for a in alphas if _finite(a)] + [hi]) * 1.1
    svg = charts.bars(names, [
        {"title": "spectral α (power-law exponent of WᵀW)", "values": alphas, "max": top, "band": (lo, hi),
         "band_label": f"healthy {lo:g}–{hi:g}", "fmt": lambda v: f"{v:.2f}"},
        {"title": "dead units (share of the layer's)", "values": dead, "max": 1.0, "fmt": _pct}],
        [i for i, n in enumerate(names) if n in flagged],
        label="spectral alpha and dead units per layer") if names else Markup("")
    no_alpha = [n for n, a in zip(names, alphas) if a is None]
    return {"line": weights_line(block), "source": block["source"], "svg": svg, "no_alpha": no_alpha,
            "range": f"{lo:g}–{hi:g}", "at_init": block["at_init"], "n_layers": len(block["layers"])}


def _categories(findings) -> list:
    from ..rules.base import CATEGORIES

    present = {f["category"] for f in findings}
    return [c for c in CATEGORIES if c in present] + sorted(present - set(CATEGORIES))


def _header(report, s) -> dict:
    g = report.graph
    inputs = []
    for name in g.inputs:
        shape = g.display_shape(g[name].output_shape)
        inputs.append({"name": name, "shape": _shape_text(shape)})
    rf = s.last_spatial
    rf_view = None
    if rf:
        rf_view = {"layer": rf["layer"], "size": "×".join(str(x) for x in rf["size"]),
                   "stride": "×".join(str(x) for x in rf["stride"]),
                   "input": "×".join(str(x) for x in rf["input_size"]) if rf.get("input_size") else None,
                   "coverage": rf.get("coverage"),
                   "svg": charts.rf_box(rf["size"], rf.get("input_size") or [])}
    t = g.training
    training = None
    if t:
        training = {"loss": t.loss, "from_logits": t.from_logits, "optimizer": t.optimizer,
                    "lr": t.learning_rate, "assumed": t.assumed,
                    "label": "Compiled with" if g.framework == "keras" and not t.assumed else "Trained with"}
    task = s.task.text() if s.task is not None else None
    ds = report.dataset
    dataset = None
    if ds is not None and any(ds.has(k) for k in ("samples", "classes", "image_size")):
        dataset = {"samples": ds.samples, "classes": ds.classes,
                   "image_size": "×".join(str(x) for x in ds.image_size) if ds.image_size else None,
                   "source": ds.source}
    probes = report.probes
    return {
        "task": task,
        "file": g.source_path or g.name or "model",
        "name": g.name,
        "framework": g.framework or "?",
        "framework_version": g.framework_version,
        "format": g.source_format,
        "model_class": g.model_class,
        "n_layers": layer_count(s),
        "params": g.total_params, "trainable": g.trainable_params, "non_trainable": g.non_trainable_params,
        "macs": human(s.macs), "flops": human(2 * s.macs), "macs_raw": s.macs,
        "activation": human_bytes(s.activation_bytes),
        "inputs": inputs,
        "rf": rf_view,
        "training": training,
        "dataset": dataset,
        "summary_line": summary_line([report]),
        "probes_ran": probes is not None,
        "notes": list(g.notes),
    }


def _finding(report, f, index, anchor, rule_base) -> dict:
    from ..rules import REGISTRY
    from ..rules.docs import doc_sections, first_sentence

    rule = REGISTRY.get(f.code)
    measured = bool(rule is not None and "probes" in rule.needs)
    needs_data = bool(rule is not None and any(n != "probes" for n in rule.needs))
    impact = getattr(rule, "impact", 2) if rule is not None else 2
    what = ""
    if rule is not None:
        what = first_sentence(doc_sections(rule.doc()).get("What it does", "").strip()) or rule.name
    framework = report.graph.framework or ""
    snippet, others = None, []
    if f.snippets:
        if framework in f.snippets:
            snippet = {"framework": framework, "code": f.snippets[framework]}
        others = [{"framework": k, "code": v} for k, v in sorted(f.snippets.items()) if k != framework]
    evidence, files = [], []
    for key, value in f.evidence.items():
        if key == "layers" and list(value or []) == list(f.layers):
            continue
        if key == "measured_effect":  # shown in place of the expected effect
            continue
        if key == "files" and isinstance(value, (list, tuple)):
            files = [str(x) for x in value][:MAX_FILES]
            continue
        evidence.append({"key": str(key), "value": _clip(_value(value))})
    layers = [{"name": name, "anchor": anchor(index[name]) if name in index else None} for name in f.layers]
    if measured:
        basis = "measured by a probe on your data"
    elif needs_data:
        basis = "from the architecture and the dataset facts"
    else:
        basis = "from the architecture alone (not measured)"
    return {
        "code": f.code, "severity": f.severity, "category": f.category, "message": f.message,
        "rule_name": rule.name if rule is not None else "", "rule_what": what,
        "url": rule_url(f.code, rule_base), "layers": layers, "evidence": evidence, "files": files,
        "explanation": f.explanation, "fix": f.fix, "snippet": snippet, "other_snippets": others,
        "references": [str(r) for r in f.references], "impact": IMPACT_WORDS.get(impact, str(impact)),
        "measured": measured, "basis": basis, "measured_effect": f.evidence.get("measured_effect"),
    }


# -- the verdict and the comparison ---------------------------------------------------------------

def _verdict(report) -> dict:
    """The measured verdict (:mod:`.verdict`) and, with ``--compare``, both models' runs and curves."""
    from .verdict import lines

    items = lines(report)
    c = getattr(report, "comparison", None)
    out = {"lines": items, "comparison": None}
    if c is None:
        return out
    d = c.to_dict() if hasattr(c, "to_dict") else dict(c)
    cmp = {"names": d["names"], "sources": d["sources"], "status": d["status"], "why": d.get("why"),
           "plan": d.get("plan") or {}, "verdict": d.get("verdict"), "executor": d.get("executor"),
           "notes": d.get("notes") or [], "fixed_codes": d.get("fixed_codes") or [], "rows": [], "charts": []}
    out["comparison"] = cmp
    if d["status"] != "ok":
        return out
    runs = d.get("runs") or []
    by_seed: dict = {}
    for r in runs:
        by_seed.setdefault(r["seed"], {})[r["role"]] = r
    cmp["rows"] = [{"seed": seed, "model": row.get("model"), "other": row.get("other")}
                   for seed, row in sorted(by_seed.items())]
    cmp["accuracy"], cmp["loss"] = d.get("accuracy") or {}, d.get("loss") or {}
    loss_series, acc_series = [], []
    for role, cls in (("model", "s1"), ("other", "s0")):
        mine = [r for r in runs if r["role"] == role]
        for k, r in enumerate(sorted(mine, key=lambda r: r["seed"])):
            cv = r.get("curves") or {}
            loss = cv.get("loss") or []
            name = f"{d['names'][role]} seed {r['seed']}"
            loss_series.append({"name": name, "x": list(range(1, len(loss) + 1)), "y": loss,
                                "cls": cls + ("" if k == 0 else " thin")})
            acc_series.append({"name": name, "x": cv.get("val_step") or [], "y": cv.get("val_accuracy") or [],
                               "cls": cls, "dots": True})
    steps = (d.get("plan") or {}).get("steps")
    cmp["charts"] = [
        {"title": f"Training loss per step ({steps} steps, every seed)",
         "svg": charts.line_chart(loss_series, xlabel="step", ylabel="training loss", width=PAIR_WIDTH,
                                  label="training loss of both models")},
        {"title": "Validation accuracy during training",
         "svg": charts.line_chart(acc_series, xlabel="step", ylabel="validation accuracy", width=PAIR_WIDTH,
                                  ymin=0.0, label="validation accuracy of both models")}]
    return out


# -- layer graph and static charts ----------------------------------------------------------

def _graph(g, rows, index, hits, anchor) -> Markup:
    from ..graph import split_ref

    nodes = [{"name": r.name, "type": r.type, "codes": hits.get(i, [])} for i, r in enumerate(rows)]
    edges = []
    seen = set()
    for i, r in enumerate(rows):
        node = g.nodes.get(r.name)
        if node is None:
            continue
        for ref in node.inputs:
            src = index.get(split_ref(ref)[0])
            if src is not None and src != i and (src, i) not in seen:
                seen.add((src, i))
                edges.append((src, i))
    return charts.graph_diagram(nodes, edges, anchor=anchor)


def _rf_chart(s, hits) -> Markup:
    pts = []
    for i, r in enumerate(s.rows):
        rf = r.receptive_field
        if not rf or r.op == "input" or not rf.get("size"):
            continue
        pts.append((r.name, max(rf["size"]), max(rf["stride"]), bool(hits.get(i))))
    inp = None
    if s.last_spatial and s.last_spatial.get("input_size") and all(s.last_spatial["input_size"]):
        inp = max(s.last_spatial["input_size"])
    return charts.rf_growth(pts, inp)


def _cost_chart(rows, hits) -> Markup:
    picked = [(i, r) for i, r in enumerate(rows) if r.params or r.macs]
    if not picked:
        return Markup("")
    labels = [r.name for _, r in picked]
    hit_rows = [k for k, (i, _) in enumerate(picked) if hits.get(i)]
    cols = [{"title": "parameters", "values": [r.params for _, r in picked]},
            {"title": "MACs (batch 1)", "values": [r.macs for _, r in picked]}]
    if len(picked) > MANY_LAYERS:
        return charts.columns(labels, cols, hit_rows, label="parameters and MACs per layer")
    return charts.bars(labels, cols, hit_rows, label="parameters and MACs per layer")


# -- probes -------------------------------------------------------------------------------

PROBE_SECTIONS = (
    ("probe-summary", "Probe summary", "loss at init, one-batch overfit, zero-input and linear baselines"),
    ("probe-lr", "Learning-rate range test", "loss against an exponentially growing learning rate"),
    ("probe-training", "Training and validation", "loss curves of a short training run"),
    ("probe-gradients", "Gradients and updates per layer", "gradient norm and update/weight ratio per layer"),
    ("probe-dead", "Dead and saturated units", "share of units that never fire or saturate, per layer"),
    ("probe-scaling", "Data-scaling learning curve", "accuracy when training on 25 / 50 / 100 % of the data"),
    ("probe-confusion", "Confusion matrix", "true class against predicted class on the validation split"),
    ("data-checks", "Data checks", "class balance, unreadable files, duplicates, sizes, channels, pixel statistics"),
)


def _as_dict(probes) -> dict:
    if probes is None:
        return {}
    return probes.to_dict() if hasattr(probes, "to_dict") else dict(probes)


def _ok(results: dict, name: str) -> Optional[dict]:
    r = results.get(name)
    return r if r and r.get("status", "ok") == "ok" else None


def _why_not(results: dict, names) -> str:
    for name in names:
        r = results.get(name)
        if r is None:
            continue
        if r.get("status") != "ok":
            note = "; ".join(str(n) for n in r.get("notes") or [])
            return f"{name} {r.get('status')}" + (f": {note}" if note else "")
    return f"{' / '.join(names)} not run (not selected with --probes)"


def _probes(report, index, hits) -> dict:
    if report.probes is None:
        return {"ran": False, "sections": [{"id": sid, "title": t, "what": w} for sid, t, w in PROBE_SECTIONS]}
    p = _as_dict(report.probes)
    results = p.get("results") or {}
    data = p.get("data") or {}
    classes = [str(c) for c in data.get("class_names") or []]
    out = {"ran": True, "settings": p.get("settings") or {}, "interrupted": p.get("interrupted"),
           "seconds": p.get("seconds"), "statuses": [
               {"name": k, "status": v.get("status"), "seconds": v.get("seconds"),
                "notes": [str(n) for n in v.get("notes") or []]} for k, v in results.items()]}
    hit_names = {name for name, i in index.items() if hits.get(i)}

    # summary table
    rows = []
    r = _ok(results, "init_loss")
    if r:
        m = r["metrics"]
        rows.append(("Loss at initialisation", f"{_num(m.get('loss'))} (uniform guess ln C = "
                     f"{_num(m.get('expected'))}); accuracy {_pct(m.get('accuracy'))}"))
    r = _ok(results, "overfit_batch")
    if r:
        m = r["metrics"]
        rows.append(("Overfit one batch", f"{m.get('batch')} images, {m.get('steps')} steps: loss "
                     f"{_num(m.get('initial_loss'))} → {_num(m.get('final_loss'))}, accuracy {_pct(m.get('accuracy'))}"))
    r = _ok(results, "zero_input")
    if r:
        m = r["metrics"]
        rows.append(("Real vs all-zero inputs", f"validation accuracy {_pct(m.get('real_val_accuracy'))} on real "
                     f"images, {_pct(m.get('zero_val_accuracy'))} on zeros ({m.get('steps')} steps each)"))
    td = _ok(results, "train_dynamics")
    if td:
        m = td["metrics"]
        rows.append(("Short training run", f"{m.get('steps')} steps at lr {_num(m.get('lr'))}: train loss "
                     f"{_num(m.get('first_loss'))} → {_num(m.get('final_loss'))}; validation loss "
                     f"{_num(m.get('val_loss'))}, accuracy {_pct(m.get('val_accuracy'))}"))
    r = _ok(results, "linear_baseline")
    if r:
        m = r["metrics"]
        rows.append(("Linear baseline", f"logistic regression on {m.get('features')} downsampled pixels "
                     f"({m.get('train_samples')} images): validation accuracy {_pct(m.get('val_accuracy'))}"))
    out["summary"] = rows

    # learning-rate range test
    lr = _ok(results, "lr_range")
    if lr:
        m, c = lr["metrics"], lr.get("curves") or {}
        vl = []
        if _finite(m.get("suggested_lr")):
            vl.append((m["suggested_lr"], f"suggested {charts.fmt(m['suggested_lr'])}", "good"))
        if _finite(m.get("configured_lr")):
            vl.append((m["configured_lr"], f"configured {charts.fmt(m['configured_lr'])}", "bad"))
        losses = [v for v in (c.get("smoothed") or c.get("loss") or []) if _finite(v)]
        ymax = None
        if losses:
            ymax = min(max(losses), 4 * min(losses) + 1e-9) * 1.1 if min(losses) > 0 else None
        # why there is no suggestion (the probe's own note), shown in its place
        none_why = next((n for n in lr.get("notes") or [] if n.startswith("no suggestion")), "no suggestion") \
            if not _finite(m.get("suggested_lr")) else None
        out["lr"] = {"metrics": m, "none_why": none_why, "svg": charts.line_chart(
            [{"name": "loss", "x": c.get("lr", []), "y": c.get("loss", []), "cls": "s3 thin"},
             {"name": "smoothed", "x": c.get("lr", []), "y": c.get("smoothed", []), "cls": "s0"}],
            xlog=True, xlabel="learning rate (log scale)", ylabel="training loss", vlines=vl, ymax=ymax,
            label="learning-rate range test")}
    else:
        out["lr_why"] = _why_not(results, ["lr_range"])

    # training / validation
    charts_t = []
    out["training_note"] = ""
    if td:
        m, c = td["metrics"], td.get("curves") or {}
        loss = c.get("loss") or []
        series = [{"name": "train loss", "x": list(range(len(loss))), "y": loss, "cls": "s0"}]
        val = _val_curve(c)
        pts = []
        if val:
            series.append({"name": "validation loss", "x": val[0], "y": val[1], "cls": "s1", "dots": True})
            title = f"Training and validation loss ({len(loss)} steps at lr {_num(m.get('lr'))})"
            acc = [a for a in c.get("val_accuracy") or [] if _finite(a)]
            out["training_note"] = (f"Training loss per step (blue) and validation loss measured at {len(val[0])} "
                                    "points of the run (orange dots)" +
                                    (f"; validation accuracy {_pct(acc[0])} → {_pct(acc[-1])}" if len(acc) > 1 else "")
                                    + ".")
        else:
            if _finite(m.get("val_loss")) and loss:
                pts.append((len(loss) - 1, m["val_loss"], f"validation {_num(m['val_loss'])}", "s1"))
            title = f"Training loss ({len(loss)} steps at lr {_num(m.get('lr'))}), validation loss at the end"
            out["training_note"] = ("The probes record the training loss per step and the validation loss and "
                                    "accuracy once, at the end of the run (the orange dot); the data-scaling curve "
                                    "below compares training and validation accuracy.")
        hl = []
        exp = (_ok(results, "init_loss") or {}).get("metrics", {}).get("expected")
        if _finite(exp):
            hl.append((exp, f"ln C = {_num(exp)}", "ref"))
        charts_t.append({"title": title,
                         "svg": charts.line_chart(series, xlabel="step", ylabel="loss", points=pts, hlines=hl,
                                                  width=PAIR_WIDTH, label="training and validation loss")})
    ob = _ok(results, "overfit_batch")
    if ob:
        loss = (ob.get("curves") or {}).get("loss") or []
        charts_t.append({"title": f"Overfitting one batch of {ob['metrics'].get('batch')} images",
                         "svg": charts.line_chart([{"name": "batch loss", "x": list(range(len(loss))),
                                                    "y": loss, "cls": "s2"}], xlabel="step", ylabel="loss",
                                                  width=PAIR_WIDTH, label="overfit one batch")})
    out["training"] = charts_t
    if not charts_t:
        out["training_why"] = _why_not(results, ["train_dynamics", "overfit_batch"])

    # gradients / updates
    if td:
        m = td["metrics"]
        gn, ur = m.get("grad_norm") or {}, m.get("update_ratio") or {}
        names = list(gn) + [k for k in ur if k not in gn]
        if names:
            hit_rows = [i for i, n in enumerate(names) if n in hit_names]
            out["gradients"] = {"svg": charts.bars(names, [
                {"title": "gradient norm (log)", "values": [gn.get(n) for n in names], "log": True},
                {"title": "update / weight per step (log)", "values": [ur.get(n) for n in names], "log": True,
                 "ref": 1e-3, "ref_label": "1e-3"}], hit_rows, label="gradient norm and update ratio per layer"),
                "first_last": m.get("first_last_grad_ratio")}
        dead, sat = m.get("dead_fraction") or {}, m.get("saturated_fraction") or {}
        if dead or sat:
            from ..rules.probes import DEAD_LAYER_SHARE, SATURATED_SHARE

            names = list(dead) + [k for k in sat if k not in dead]
            cols = []
            if dead:
                cols.append({"title": "dead units (ReLU family)", "values": [dead.get(n) for n in names],
                             "max": 1.0, "ref": DEAD_LAYER_SHARE, "fmt": _pct})
            if sat:
                cols.append({"title": "saturated units (tanh/sigmoid)", "values": [sat.get(n) for n in names],
                             "max": 1.0, "ref": SATURATED_SHARE, "fmt": _pct})
            out["dead"] = {"svg": charts.bars(names, cols, [i for i, n in enumerate(names) if n in hit_names],
                                              label="dead and saturated units per layer")}
        else:
            out["dead_why"] = "the model has no ReLU-family or tanh/sigmoid activations to measure"
    if "gradients" not in out:
        out["gradients_why"] = _why_not(results, ["train_dynamics"])
    if "dead" not in out and "dead_why" not in out:
        out["dead_why"] = _why_not(results, ["train_dynamics"])

    # data scaling
    ds = _ok(results, "data_scaling")
    if ds:
        rows_ = (ds.get("metrics") or {}).get("rows") or []
        xs = [r_["samples"] for r_ in rows_]
        hl = []
        lin = _ok(results, "linear_baseline")
        if lin and _finite(lin["metrics"].get("val_accuracy")):
            hl.append((lin["metrics"]["val_accuracy"], f"linear baseline {_pct(lin['metrics']['val_accuracy'])}",
                       "ref"))
        if classes:
            hl.append((1 / len(classes), f"chance {_pct(1 / len(classes))}", "ref2"))
        out["scaling"] = {"rows": rows_, "steps": ds["metrics"].get("steps"), "svg": charts.line_chart(
            [{"name": "train accuracy", "x": xs, "y": [r_["train_accuracy"] for r_ in rows_], "cls": "s2",
              "dots": True},
             {"name": "validation accuracy", "x": xs, "y": [r_["val_accuracy"] for r_ in rows_], "cls": "s0",
              "dots": True}],
            xlabel="training images", ylabel="accuracy", hlines=hl, ymin=0.0, ymax=1.0,
            label="data-scaling learning curve")}
    else:
        out["scaling_why"] = _why_not(results, ["data_scaling"])

    # confusion matrix: train_dynamics metrics["confusion"] (rows = true class, columns = predicted)
    conf = (td or {}).get("metrics", {}).get("confusion") if td else None
    if _is_matrix(conf):
        out["confusion"] = _confusion(conf, classes)
    else:
        out["confusion_why"] = ("train_dynamics recorded validation loss and accuracy but not per-class "
                                "predictions" if td else _why_not(results, ["train_dynamics"]))

    # data
    out["data"] = _data(data)
    for key in ("lr", "gradients", "dead", "scaling", "confusion"):
        out.setdefault(key, None)
        out.setdefault(key + "_why", "")
    out.setdefault("training_why", "")
    return out


def _val_curve(curves: dict):
    """(steps, losses) of the validation loss measured during train_dynamics (``curves["val_step"]``,
    ``curves["val_loss"]``; steps indexed as ``curves["loss"]``, from 0), or None when not recorded."""
    vl, vs = curves.get("val_loss") or [], curves.get("val_step") or []
    if not vl or len(vs) != len(vl):  # without the steps the points have no place on the axis
        return None
    def num(v):  # numpy scalars too
        return float(v) if isinstance(v, numbers.Real) and not isinstance(v, bool) else None

    pairs = [(num(x), num(y)) for x, y in zip(vs, vl)]
    pairs = [(x, y) for x, y in pairs if _finite(x) and _finite(y)]
    if not pairs:
        return None
    return [x for x, _ in pairs], [y for _, y in pairs]


def _is_matrix(conf) -> bool:
    return (isinstance(conf, (list, tuple)) and len(conf) > 0
            and all(isinstance(r, (list, tuple)) and len(r) == len(conf) for r in conf))


def _confusion(conf, classes) -> dict:
    k = len(conf)
    names = classes if len(classes) == k else [str(i) for i in range(k)]
    rows = []
    for i, row in enumerate(conf):
        total = sum(v for v in row if _finite(v)) or 1
        cells = []
        for j, v in enumerate(row):
            share = (v / total) if _finite(v) else 0.0
            # the colour is computed from numbers only
            alpha = round(min(max(share, 0.0), 1.0) * 0.85 + (0.05 if v else 0.0), 3)
            cells.append({"v": v, "alpha": alpha, "diag": i == j, "share": share})
        correct = row[i] if i < len(row) and _finite(row[i]) else 0
        rows.append({"name": names[i] if i < len(names) else str(i), "cells": cells,
                     "recall": correct / total, "n": total})
    return {"names": names, "rows": rows}


def _data(data: dict) -> dict:
    if not data:
        return {}
    checks = []
    for c in data.get("checks") or []:
        ev = [{"key": str(k), "value": _clip(_value(v))}
              for k, v in (c.get("evidence") or {}).items() if k not in ("examples", "errors")]
        examples = []
        raw = (c.get("evidence") or {}).get("examples") or (c.get("evidence") or {}).get("errors") or []
        if isinstance(raw, dict):
            raw = [f"{k}: {v}" for k, v in raw.items()]
        for ex in list(raw)[:10]:
            if isinstance(ex, dict):
                examples.append(" · ".join(f"{k} → {v}" for k, v in ex.items()))
            elif isinstance(ex, (list, tuple)):
                examples.append(" = ".join(str(x) for x in ex))
            else:
                examples.append(str(ex))
        checks.append({"code": c.get("code", ""), "severity": c.get("severity", "info"),
                       "message": c.get("message", ""), "evidence": ev, "examples": examples,
                       "files": [str(x) for x in (c.get("files") or [])][:MAX_FILES],
                       "more_files": max(len(c.get("files") or []) - MAX_FILES, 0),
                       "url": rule_url(c.get("code", ""))})
    train = data.get("train_per_class") or {}
    val = data.get("val_per_class") or {}
    per_class = [{"name": str(n), "train": train.get(n), "val": val.get(n)} for n in (data.get("class_names") or [])]
    return {"source": data.get("source"), "classes": data.get("classes"), "image_shape": data.get("image_shape"),
            "train": data.get("train"), "val": data.get("val"), "per_class": per_class,
            "notes": [str(n) for n in data.get("notes") or []], "checks": checks}


# -- formatting ---------------------------------------------------------------------------------

def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _num(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
            return f"{v:.2e}"
        return f"{v:.4g}"
    return str(v)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EVIDENCE_CHARS else text[: MAX_EVIDENCE_CHARS - 1] + "…"


def _pct(v) -> str:
    return f"{v:.0%}" if _finite(v) else "—"
