"""`modellint summary`: a layer table that answers more than ``model.summary()``.

Per layer: name, type (with its fused activation), output shape in the model's
own layout, parameters, receptive field and MACs; then totals and the receptive
field of the last spatial layer against the input size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from ..analysis import node_costs, receptive_fields
from ..analysis.receptive_field import last_spatial
from ..graph import Graph


@dataclass
class Row:
    name: str
    type: str
    op: str
    output_shape: Optional[list]
    params: int
    trainable_params: int
    receptive_field: Optional[dict]
    macs: int
    activation_bytes: int
    notes: list = field(default_factory=list)
    explain: Optional[dict] = None  # analysis.explain: params/shape/receptive_field/macs arithmetic


@dataclass
class Summary:
    graph: Graph
    rows: list
    macs: int
    activation_bytes: int
    last_spatial: Optional[dict]
    task: Optional[object] = None  # analysis.task.TaskAnalysis
    explained: Optional[dict] = None  # analysis.explain.explain(): rows + the two paragraphs

    def layer_dicts(self) -> list:
        out = []
        for r in self.rows:
            d = dict(r.__dict__)
            if d.get("explain") is None:
                d.pop("explain", None)
            out.append(d)
        return out

    def to_dict(self) -> dict:
        g = self.graph
        return {
            "model": {"name": g.name, "path": g.source_path, "framework": g.framework,
                      "format": g.source_format, "class": g.model_class, "layout": g.layout,
                      "framework_version": g.framework_version},
            "params": {"total": g.total_params, "trainable": g.trainable_params,
                       "non_trainable": g.non_trainable_params},
            "macs": self.macs,
            "flops": 2 * self.macs,
            "conventions": {"macs": "1 multiply-add = 1 MAC, batch 1", "flops": "2 x MACs",
                            "activation_bytes": "output size at batch 1, float32"},
            "activation_bytes": self.activation_bytes,
            "inputs": [{"name": n, "shape": _list(g.display_shape(g[n].output_shape))} for n in g.inputs],
            "receptive_field": self.last_spatial,
            "training": g.training.to_dict() if g.training else None,
            "task": self.task.to_dict() if self.task is not None else None,
            "layers": self.layer_dicts(),
            "notes": list(g.notes),
            **({"explain": {"totals": self.explained["totals"],
                            "concentration": self.explained["concentration"]}} if self.explained else {}),
            **({"unknown_facts": dict(g.unknown_facts)} if getattr(g, "unknown_facts", None) else {}),
        }


def _list(shape):
    return None if shape is None else list(shape)


def summarize(graph: Graph, dataset=None, explain: bool = False) -> Summary:
    """The layer table and totals; ``dataset`` (DatasetFacts: classes, a stated task) sharpens the task;
    ``explain``: each row's arithmetic and the two paragraphs (:mod:`modellint.analysis.explain`)."""
    from ..analysis.task import analyse

    rfs = receptive_fields(graph)
    costs = node_costs(graph)
    rows = []
    by_name = {}
    for node in graph:
        if node.fused_into:  # shown as part of its layer
            row = by_name.get(node.fused_into)
            if row is not None:
                row.type += f" · {node.attrs.get('function')}"
            continue
        rf = rfs.get(node.name)
        row = Row(
            name=node.name,
            type=node.source_type or node.op,
            op=node.op,
            output_shape=_list(graph.display_shape(node.output_shape)),
            params=node.params,
            trainable_params=node.trainable_params,
            receptive_field=rf.to_dict() if rf else None,
            macs=costs[node.name].macs,
            activation_bytes=costs[node.name].activation_bytes,
            notes=list(node.notes),
        )
        rows.append(row)
        by_name[node.name] = row
    node, rf = last_spatial(graph, rfs)
    spatial = None
    if node is not None:
        inp = graph.input_shapes()[0] if graph.inputs else None
        in_size = list(inp[1:-1]) if inp is not None and len(inp) >= 3 else None
        spatial = {"layer": node.name, "size": rf.to_dict()["size"], "stride": rf.to_dict()["stride"],
                   "input_size": in_size}
        if in_size and all(in_size):
            spatial["coverage"] = round(min(s / i for s, i in zip(rf.size, in_size)), 4)
    explained = None
    if explain:
        from ..analysis.explain import explain as explain_graph

        explained = explain_graph(graph, rfs, costs)
        for row in rows:
            row.explain = explained["rows"].get(row.name)
    return Summary(graph=graph, rows=rows, macs=sum(c.macs for c in costs.values()),
                   activation_bytes=sum(c.activation_bytes for c in costs.values()), last_spatial=spatial,
                   task=analyse(graph, dataset), explained=explained)


# -- text -------------------------------------------------------------------

def human(n: float, unit: str = "") -> str:
    for div, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= div:
            return f"{n / div:.1f}{suffix}{unit}"
    return f"{n:g}{' ' + unit if unit else ''}"


def human_bytes(n: float) -> str:
    for div, suffix in ((2**30, " GiB"), (2**20, " MiB"), (2**10, " KiB")):
        if n >= div:
            return f"{n / div:.1f}{suffix}"
    return f"{int(n)} B"


def _shape_text(shape) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _rf_text(rf) -> str:
    if not rf:
        return ""
    return "×".join(str(s) for s in rf["size"])


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_text(summary: Summary) -> str:
    g = summary.graph
    header = ("Layer (type)", "Output shape", "Param #", "RF", "MACs")
    body = []
    for r in summary.rows:
        body.append((f"{r.name} ({r.type})", _shape_text(r.output_shape), f"{r.params:,}",
                     _rf_text(r.receptive_field), human(r.macs) if r.macs else "0"))
    w0 = min(max(len(header[0]), *(len(b[0]) for b in body)) if body else len(header[0]), 56)
    w1 = max(len(header[1]), *(len(b[1]) for b in body)) if body else len(header[1])
    w2 = max(len(header[2]), *(len(b[2]) for b in body)) if body else len(header[2])
    w3 = max(len(header[3]), *(len(b[3]) for b in body)) if body else len(header[3])
    w4 = max(len(header[4]), *(len(b[4]) for b in body)) if body else len(header[4])

    def line(cols):
        return (f"{_cut(cols[0], w0):<{w0}}  {cols[1]:<{w1}}  {cols[2]:>{w2}}  "
                f"{cols[3]:>{w3}}  {cols[4]:>{w4}}").rstrip()

    rule = "─" * (w0 + w1 + w2 + w3 + w4 + 8)
    title = f"{g.source_path or g.name}  {g.framework} {g.model_class} · {layer_count(summary)} layers"
    out = [title, rule, line(header), rule]
    for r, b in zip(summary.rows, body):
        out.append(line(b))
        if r.explain:
            out += explain_lines(r.explain)
    out.append(rule)
    out.append(f"Total params: {g.total_params:,}  (trainable {g.trainable_params:,}, "
               f"non-trainable {g.non_trainable_params:,})")
    out.append(f"Compute: {human(summary.macs)} MACs = {human(2 * summary.macs)} FLOPs per sample "
               f"(1 multiply-add = 1 MAC)")
    out.append(f"Activation memory: {human_bytes(summary.activation_bytes)} per sample (float32 outputs)")
    for name in g.inputs:
        out.append(f"Input {name}: {_shape_text(g.display_shape(g[name].output_shape))}")
    s = summary.last_spatial
    if s:
        size = "×".join(str(x) for x in s["size"])
        text = f"Receptive field at {s['layer']} (last spatial layer): {size} px, effective stride {'×'.join(str(x) for x in s['stride'])}"
        if s.get("input_size") and s.get("coverage") is not None:
            text += f"; input {'×'.join(str(x) for x in s['input_size'])} → covers {s['coverage']:.0%}"
        out.append(text)
    if g.training:
        out.append(training_text(g))
    if summary.task is not None:
        out.append(f"Task: {summary.task.text()}")
    if summary.explained:
        import textwrap

        for key in ("totals", "concentration"):
            out.append("")
            out += textwrap.wrap(summary.explained[key], width=100)
    if getattr(g, "unknown_facts", None):
        out.append("Not in the source (rules that need them are skipped): " + ", ".join(g.unknown_facts))
    unknown = [r.name for r in summary.rows if r.op == "unknown"]
    if unknown:
        out.append(f"Unknown layers (kept as opaque nodes, never executed): {', '.join(unknown[:8])}"
                   + (" …" if len(unknown) > 8 else ""))
    return "\n".join(out)


_EXPLAIN_LABELS = (("params", "params"), ("shape", "shape"), ("receptive_field", "RF"), ("macs", "MACs"))


def explain_lines(ex: dict, indent: str = "    ") -> list:
    """The arithmetic under one row of ``summary --explain``."""
    out = []
    for key, label in _EXPLAIN_LABELS:
        value = ex.get(key)
        if value and value != "0":
            out.append(f"{indent}{label:<7}{value}")
    prov = ex.get("provenance") or {}
    inferred = [a for a, how in prov.items() if how.startswith("inferred") and a not in ("output_shape", "params")]
    if inferred:
        out.append(f"{indent}{'':<7}inferred from the table: {', '.join(inferred)}")
    for attr, how in prov.items():
        if not how.startswith("inferred"):
            out.append(f"{indent}{'':<7}{attr} {how}")
    return out


def layer_count(summary: Summary) -> int:
    """Layers as every report counts them: the rows of the table without the inputs (as
    Keras' own ``model.summary()`` of a Sequential model, which shows no InputLayer)."""
    return sum(1 for r in summary.rows if r.op != "input")


def training_text(g: Graph) -> str:
    """``Compiled with: loss …`` for Keras; for PyTorch the loss its user states (or modellint assumes)."""
    t = g.training
    lr = f", learning rate {t.learning_rate:g}" if t.learning_rate is not None else ""
    opt = f", optimizer {t.optimizer}{lr}" if t.optimizer else ""
    if g.framework == "keras" and not t.assumed:
        return f"Compiled with: loss {t.loss}{' (from_logits=True)' if t.from_logits else ''}{opt}"
    said = "assumed" if t.assumed else "stated"
    return f"Trained with ({said}): loss {t.loss}{opt}"


def render_json(summary: Summary) -> str:
    return json.dumps(summary.to_dict(), indent=2)


# -- the weights block of a report (JSON, text and HTML all read this) ----------------------------

def weights_block(report) -> Optional[dict]:
    """What the weights in the file say, for the reports: None when no weights were read
    (none in the source, ``--no-weights``, or unreadable: ``rules_skipped`` says why), else::

        {"source": str,
         "layers": {node: {"alpha": float|None, "dead_units": int, "units": int,
                           "init": initializer name|None, "nonfinite": int, "role": str}},
         "average_alpha": float|None, "range": [2.0, 6.0],
         "dead_units": int, "units": int, "nonfinite": int, "at_init": bool}

    ``alpha`` and ``average_alpha`` are :func:`~modellint.rules.spectral.model_alpha`'s;
    ``dead_units`` counts the units (filters) ML962 calls dead; ``nonfinite`` the NaN and Inf
    values; ``at_init``: ML966 reported the whole model untrained."""
    store = getattr(report, "weights", None)
    if store is None or store.empty:
        return None
    from ..rules.spectral import ALPHA_HIGH, ALPHA_LOW, model_alpha

    spec = model_alpha(store) or {}
    alphas = spec.get("layers") or {}
    layers = {}
    for node, st in store.stats().items():
        a = (alphas.get(node) or {}).get("alpha")
        layers[node] = {"alpha": float(a) if a is not None else None, "dead_units": len(st.dead_units),
                        "units": int(st.units), "init": st.init.initializer if st.init is not None else None,
                        "nonfinite": int(sum(n + i for n, i in st.nonfinite.values())), "role": st.role}
    avg = spec.get("average_alpha")
    at_init = any(f.code == "ML966" and f.severity == "info" and not f.layers for f in report.findings)
    return {"source": store.what, "layers": layers, "average_alpha": float(avg) if avg is not None else None,
            "range": [float(ALPHA_LOW), float(ALPHA_HIGH)],
            "dead_units": sum(v["dead_units"] for v in layers.values()),
            "units": sum(v["units"] for v in layers.values() if v["role"] != "batchnorm"),
            "nonfinite": sum(v["nonfinite"] for v in layers.values()), "at_init": at_init}


def weights_line(block: Optional[dict]) -> Optional[str]:
    """The text report's one line about the weights (None without weights)."""
    if not block:
        return None
    n = len(block["layers"])
    parts = [f"weights: {n} layer{'' if n == 1 else 's'} read"]
    lo, hi = block["range"]
    if block["average_alpha"] is not None:
        parts.append(f"average α {block['average_alpha']:.2f} (healthy {lo:g}–{hi:g})")
    else:
        parts.append("average α — (no layer large enough to fit)")
    d = block["dead_units"]
    parts.append(f"{d} dead unit{'' if d == 1 else 's'}")
    if block["nonfinite"]:
        parts.append(f"{block['nonfinite']:,} NaN/Inf values")
    if block["at_init"]:
        parts.append("at initialisation")
    return " · ".join(parts)
