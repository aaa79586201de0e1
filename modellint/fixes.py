"""``modellint fix``: apply the rules' fixes to a copy of the graph, and write the result.

The loop is ruff's: run the rules, apply the fix of the most important fixable finding,
run the rules again on the edited graph, until nothing fixable is left (each finding is
fixed at most once, so it ends). Each change records the layer table before and after
(parameters, MACs, receptive field) and what happened to each layer's weights.
Writing goes through the emitters (:mod:`modellint.emit`), in the model's own framework.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .edit import FRESH, KEPT, REFOLDED, REMOVED, GraphEditor
from .errors import ConfigError, ModelLintError
from .graph import Graph

#: The order fixes are applied in: the head first (it decides what the rest trains for), then the
#: input, the normalization layout, the non-linearities, the width, the receptive field last
#: (its new stages take the width and the layout the earlier fixes settled).
ORDER = ("ML304", "ML302", "ML301", "ML305", "ML303", "ML205", "ML101", "ML802", "ML104", "ML105", "ML202",
         "ML103", "ML102", "ML201", "ML502", "ML404", "ML401", "ML602")
MAX_ROUNDS = 40


@dataclass
class Change:
    code: str
    title: str
    applicability: str
    weights: str
    finding: str          # the finding's message
    lines: list           # what the edit did, one line each
    before: dict          # layer table rows and totals before the change (see _table)
    after: dict

    def to_dict(self) -> dict:
        return {"code": self.code, "title": self.title, "applicability": self.applicability,
                "weights": self.weights, "finding": self.finding, "changes": list(self.lines),
                "before": self.before["totals"], "after": self.after["totals"]}


@dataclass
class FixResult:
    graph: Graph                     # the fixed graph
    original: Graph
    changes: list = field(default_factory=list)
    weights: Optional[dict] = None   # edited copies, None when the model's weights were not read
    weight_status: dict = field(default_factory=dict)  # layer -> kept / refolded / initialised / removed
    findings_before: list = field(default_factory=list)
    findings_after: list = field(default_factory=list)
    written: list = field(default_factory=list)  # paths
    notes: list = field(default_factory=list)

    @property
    def path(self) -> Optional[Path]:
        """The fixed model's main file: the ``.keras`` for Keras, the ``.py`` for PyTorch (None if not written)."""
        return self.written[0] if self.written else None

    def layer_weights(self) -> dict:
        """Every layer with parameters in the fixed model -> kept / refolded / initialised
        (``initialised`` for all when no weights were read)."""
        out = {}
        for node in self.graph:
            if node.params and not node.shares_params_with:
                status = self.weight_status.get(node.name, KEPT)
                if self.weights is None or (status == KEPT and not self.weights.get(node.name)):
                    status = FRESH   # nothing read for it: the written model initialises it
                out[node.name] = status
        return out

    def to_dict(self) -> dict:
        return {"changes": [c.to_dict() for c in self.changes], "weights": self.layer_weights(),
                "removed": sorted(n for n, s in self.weight_status.items() if s == REMOVED),
                "findings_before": [f.code for f in self.findings_before],
                "findings_after": [f.code for f in self.findings_after],
                "written": [str(p) for p in self.written], "notes": list(self.notes)}


def fixable(rules) -> list:
    return [r for r in rules if r.fix is not None and r.fix.applicability != "display-only"]


def apply_fixes(graph: Graph, dataset=None, rules=None, select=None, weights: Optional[dict] = None,
                max_rounds: int = MAX_ROUNDS, probes: Optional[dict] = None) -> FixResult:
    """Fix a copy of ``graph``: ``rules`` to run (default: all), ``select`` the codes whose
    fixes to apply (default: every fixable one), ``weights`` the model's arrays per node,
    ``probes`` probe results (:func:`modellint.probes.api.probe_inputs`) for the probe rules
    (ML024's fix sets the range test's learning rate; without probes it never fires)."""
    from .engine import run_rules, select_rules
    from .rules import REGISTRY
    from .rules.fixing import FixContext

    rules = rules if rules is not None else select_rules()
    chosen = {r.code for r in fixable(select_rules(select=select) if select else rules)}
    g = graph.copy()
    editor = GraphEditor(g, weights)
    first = run_rules(g, rules, dataset, probes=probes)
    result = FixResult(graph=g, original=graph, findings_before=list(first.findings))
    done: set = set()
    report = first
    for _ in range(max_rounds):
        todo = [f for f in report.findings if f.code in chosen and (f.code, tuple(f.layers)) not in done
                and REGISTRY[f.code].fix.applies_to(f)]
        if not todo:
            break
        finding = min(todo, key=lambda f: (ORDER.index(f.code) if f.code in ORDER else len(ORDER), f.code))
        done.add((finding.code, tuple(finding.layers)))
        fix = REGISTRY[finding.code].fix
        before = _table(g, dataset)
        lines = fix.edit(FixContext(editor, finding, dataset)) or []
        problems = g.lint()
        if problems:
            raise ModelLintError(f"fix {finding.code} left the graph unsound: {problems[0]} (a bug; please report)")
        if lines:
            result.changes.append(Change(finding.code, fix.title, fix.applicability, fix.weights, finding.message,
                                         list(lines), before, _table(g, dataset)))
            report = run_rules(g, rules, dataset, probes=probes)
    result.findings_after = list(report.findings)
    result.weights = editor.weights
    result.weight_status = dict(editor.weight_status)
    return result


# -- the layer table, before and after ------------------------------------------

def _table(graph: Graph, dataset=None) -> dict:
    from .reports.summary import summarize

    s = summarize(graph, dataset)
    rows = {r.name: {"type": r.type, "shape": r.output_shape, "params": r.params,
                     "rf": (r.receptive_field or {}).get("size"), "macs": r.macs} for r in s.rows}
    rf = s.last_spatial
    return {"rows": rows, "order": [r.name for r in s.rows],
            "totals": {"params": graph.total_params, "macs": s.macs,
                       "receptive_field": rf["size"] if rf else None,
                       "coverage": rf.get("coverage") if rf else None}}


def _shape(shape) -> str:
    return "?" if shape is None else "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _rf(rf) -> str:
    return "×".join(str(int(x)) for x in rf) if rf else "—"


def table_diff(before: dict, after: dict) -> list:
    """The rows of the layer table that a change added (+), removed (-) or changed (~)."""
    from .reports.summary import human

    out = []
    b, a = before["rows"], after["rows"]
    order = list(after["order"]) + [n for n in before["order"] if n not in a]

    def row(mark, name, r):
        return (f"{mark} {name} ({r['type']})", _shape(r["shape"]), f"{r['params']:,}", _rf(r["rf"]),
                human(r["macs"]) if r["macs"] else "0")

    for name in order:
        if name not in b:
            out.append(row("+", name, a[name]))
        elif name not in a:
            out.append(row("-", name, b[name]))
        elif a[name] != b[name]:
            x, y = b[name], a[name]
            out.append((f"~ {name} ({y['type']})",
                        _arrow(_shape(x["shape"]), _shape(y["shape"])),
                        _arrow(f"{x['params']:,}", f"{y['params']:,}"), _arrow(_rf(x["rf"]), _rf(y["rf"])),
                        _arrow(human(x["macs"]) if x["macs"] else "0", human(y["macs"]) if y["macs"] else "0")))
    return out


def _arrow(x: str, y: str) -> str:
    return x if x == y else f"{x} → {y}"


def totals_text(before: dict, after: dict) -> str:
    from .reports.summary import human

    tb, ta = before["totals"], after["totals"]
    parts = [f"params {tb['params']:,} → {ta['params']:,}", f"MACs {human(tb['macs'])} → {human(ta['macs'])}"]
    if tb["receptive_field"] or ta["receptive_field"]:
        cov = lambda t: f" ({t['coverage']:.0%})" if t.get("coverage") is not None else ""  # noqa: E731
        parts.append(f"receptive field {_rf(tb['receptive_field'])}{cov(tb)} → {_rf(ta['receptive_field'])}{cov(ta)}")
    return " · ".join(parts)


def render(result: FixResult, source: str = "") -> str:
    """The text ``modellint fix`` prints."""
    out = []
    if not result.changes:
        out.append(f"{source}: nothing to fix" + (f" ({len(result.findings_before)} findings have no mechanical "
                                                   "fix)" if result.findings_before else ""))
        return "\n".join(out)
    for i, c in enumerate(result.changes, 1):
        out.append(f"{i}. {c.code}  {c.title}  [{c.applicability}; weights {c.weights}]")
        out.append(f"   finding: {c.finding}")
        for line in c.lines:
            out.append(f"   - {line}")
        rows = table_diff(c.before, c.after)
        if rows:
            widths = [max(len(r[k]) for r in rows) for k in range(5)]
            for r in rows:
                out.append("     " + "  ".join(
                    (f"{r[k]:<{widths[k]}}" if k < 2 else f"{r[k]:>{widths[k]}}") for k in range(5)).rstrip())
        out.append(f"   {totals_text(c.before, c.after)}")
    first, last = result.changes[0].before, result.changes[-1].after
    out.append("")
    out.append(f"Model: {totals_text(first, last)}")
    status = result.layer_weights()
    if result.weights is None:
        out.append("Weights: none read; every layer is freshly initialised when the written model is built")
    else:
        groups: dict = {}
        for name, s in status.items():
            groups.setdefault(s, []).append(name)
        for s in (KEPT, REFOLDED, FRESH):
            if groups.get(s):
                label = {KEPT: "kept", REFOLDED: "refolded (exact)", FRESH: "freshly initialised"}[s]
                out.append(f"Weights {label}: {', '.join(groups[s])}")
        removed = sorted(n for n, s in result.weight_status.items() if s == REMOVED)
        if removed:
            out.append(f"Weights dropped with their layers: {', '.join(removed)}")
    codes = lambda fs: ", ".join(sorted({f.code for f in fs})) or "none"  # noqa: E731
    out.append(f"Findings: {len(result.findings_before)} before ({codes(result.findings_before)}) → "
               f"{len(result.findings_after)} after ({codes(result.findings_after)})")
    for note in result.notes:
        out.append(f"Note: {note}")
    for path in result.written:
        out.append(f"wrote {path}")
    return "\n".join(out)


# -- reading weights, writing the fixed model --------------------------------------

def read_model_weights(source, graph: Graph, weights_file=None):
    """The model's arrays per node (modellint.weights), or (None, why). ``weights_file``: a
    state_dict (``torch.save`` or ``.safetensors``) for a code target or a PyTorch source
    without weights; unreadable, or holding no weight of the model, is bad input (raised)."""
    try:
        from .weights import read_weights
    except ImportError:
        return None, "weights not read (modellint.weights is not available)"
    if weights_file is not None:
        weights = read_weights(weights_file, graph)   # WeightsError: one line, exit 2
        if not weights:
            raise ConfigError(f"--weights {weights_file}: no weight in it belongs to a layer of the model")
        return weights, None
    from .adapters import CODE_TARGET, is_keras_model, is_torch_module

    if is_torch_module(source) or is_keras_model(source):
        try:
            return read_weights(source, graph) or None, None
        except ModelLintError as exc:
            return None, f"weights not read ({exc})"
    if not isinstance(source, (str, os.PathLike)):
        return None, "weights not read (a live model)"
    if isinstance(source, str) and CODE_TARGET.match(source) and not Path(source).exists():
        return None, ("weights not read (a code target builds fresh weights; pass --weights FILE, a state_dict "
                      "saved with torch.save or safetensors, to keep them)")
    try:
        import inspect

        params = inspect.signature(read_weights).parameters
        weights = read_weights(source, graph) if len(params) >= 2 else read_weights(source)
    except ModelLintError as exc:
        return None, f"weights not read ({exc})"
    except Exception as exc:  # a reader bug must not stop the fix of the architecture
        return None, f"weights not read ({type(exc).__name__}: {exc})"
    return (weights or None), None if weights else "the file holds no weights"


def out_paths(graph: Graph, out, weights: bool = False) -> list:
    """The files to write for output stem ``out`` (an existing directory: ``<model>_fixed`` in it);
    ``weights``: a PyTorch model's weights were read, and go to ``OUT.pt`` beside ``OUT.py``."""
    base = Path(out)
    if base.is_dir():
        base = base / default_out(graph.source_path or graph.name or "model").name
    if base.suffix in (".keras", ".py"):
        base = base.with_suffix("")
    if graph.framework == "torch":
        return [base.with_suffix(".py")] + ([base.with_suffix(".pt")] if weights else [])
    if graph.framework == "keras":
        return [base.with_suffix(".keras"), base.with_suffix(".py")]
    raise ConfigError(f"fix writes Keras and PyTorch models; this is a {graph.framework or 'unknown'} model "
                      "(use --dry-run to see the changes)")


def default_out(source) -> Path:
    p = Path(str(source))
    return p.with_name(p.stem + "_fixed")


def check_targets(paths: list, source, force: bool) -> None:
    src = Path(str(source)).resolve() if isinstance(source, (str, os.PathLike)) else None
    for p in paths:
        if src is not None and p.resolve() == src:
            raise ConfigError(f"{p}: refusing to overwrite the input model")
        if p.exists() and not force:
            raise ConfigError(f"{p} exists (pass --force to overwrite it)")
        if not p.parent.is_dir():
            raise ConfigError(f"{p.parent}: no such directory")


def write(result: FixResult, paths: list) -> list:
    """Write the fixed model through the emitters; all or nothing (temporary files renamed at the end)."""
    try:
        from .emit import emit_keras, emit_torch, save_keras
    except ImportError:
        raise ModelLintError("cannot write the fixed model: the emitters (modellint.emit) are not available; "
                             "--dry-run shows the changes") from None
    g = result.graph
    temps = []
    try:
        pt = next((p for p in paths if p.suffix == ".pt"), None) if g.framework == "torch" else None
        state, fresh = torch_state(result) if pt is not None else (None, ())
        for p in paths:
            tmp = p.with_name(f".{p.name}.tmp{os.getpid()}{p.suffix}")
            temps.append((tmp, p))
            if p.suffix == ".keras":
                save_keras(g, str(tmp), weights=result.weights)
            elif p is pt:
                import torch

                torch.save(state, str(tmp))
            elif g.framework == "torch":
                tmp.write_text(emit_torch(g, weights=result.weights if pt else None,
                                          weights_file=pt.name if pt else None, fresh=fresh), encoding="utf-8")
            else:
                tmp.write_text(emit_keras(g), encoding="utf-8")
        for tmp, p in temps:
            os.replace(tmp, p)
    except ModelLintError:
        raise
    except Exception as exc:
        raise ModelLintError(f"cannot write the fixed model: {type(exc).__name__}: {exc}") from None
    finally:
        for tmp, _ in temps:
            if tmp.exists():
                tmp.unlink()
    result.written = list(paths)
    return list(paths)


def torch_state(result: FixResult) -> tuple:
    """``(state_dict, fresh module paths)`` of the fixed PyTorch model: the kept and refolded
    weights under the emitted module's names, as tensors, each checked against the module
    :func:`~modellint.emit.build_torch` builds (names and shapes); a layer whose arrays do not
    fit is left freshly initialised (its status and a note say so)."""
    import numpy as np
    import torch

    from .emit.torch_code import build_torch, torch_module_names

    g = result.graph
    names = torch_module_names(g)
    own = build_torch(g).state_dict()
    state: dict = {}
    loaded: set = set()
    for node in g:
        path = names.get(node.name)
        arrays = (result.weights or {}).get(node.name)
        if path is None or not arrays or result.weight_status.get(node.name, KEPT) in (FRESH, REMOVED):
            continue
        entries = {f"{path}.{k}": v for k, v in arrays.items()}
        needed = {k for k in own if k.startswith(path + ".") and not k.endswith("num_batches_tracked")}
        fits = needed <= set(entries) and all(k in own and tuple(own[k].shape) == tuple(np.shape(v))
                                              for k, v in entries.items())
        if not fits:
            result.weight_status[node.name] = FRESH
            result.notes.append(f"{node.name}: the weights read do not fit the written module "
                                f"{path} (left freshly initialised)")
            continue
        for k, v in entries.items():
            state[k] = torch.as_tensor(np.ascontiguousarray(v)).to(own[k].dtype)
        loaded.add(path)
    fresh = tuple(p for n, p in names.items() if p not in loaded and any(k.startswith(p + ".") for k in own))
    return state, fresh


def fix(model, *, out=None, force: bool = False, dry_run: bool = False, dataset=None, select=None,
        task=None, loss=None, from_logits=None, weights=None, probes=None, **load_kwargs) -> FixResult:
    """The public API: load ``model`` (a path or a live model), apply the fixes, and write the
    result in its framework (``out``: a path stem; default ``<model>_fixed`` beside a file).
    ``dataset``/``task``/``loss`` as :func:`modellint.analyze`; ``select`` the codes whose fixes
    to apply; ``weights`` a state_dict file (``torch.save`` or ``.safetensors``) for a code
    target; ``probes`` probe results (:func:`modellint.probes.api.probe_inputs`), for the fixes of
    the probe rules (the range test's learning rate). A PyTorch model's kept weights go to ``OUT.pt`` beside ``OUT.py`` (a live module,
    a ``.pt2``, or ``weights``). Never overwrites the input; an existing output needs ``force=True``."""
    from . import _checked_task, load_graph
    from .dataset import facts_from_folder, facts_from_values
    from .rules.context import DatasetFacts

    graph = load_graph(model, **load_kwargs)
    if loss is not None:
        from .losses import stated_training

        graph.training = stated_training(loss, from_logits, graph.training, option="loss=")
    if isinstance(dataset, (str, os.PathLike)):
        facts = facts_from_folder(dataset)
    elif isinstance(dataset, dict):
        facts = facts_from_values(dataset.get("samples"), dataset.get("classes"), dataset.get("image_size"),
                                  source="fix(dataset=...)")
    else:
        facts = dataset
    if task is not None:
        facts = facts or DatasetFacts()
        facts.task = _checked_task(task)
    if not dry_run and out is None and not isinstance(model, (str, os.PathLike)):
        raise ConfigError("fix(out=...) is needed for a live model")
    arrays, why = read_model_weights(model, graph, weights)
    paths = None
    if not dry_run:
        paths = out_paths(graph, out if out is not None else default_out(model), weights=arrays is not None)
        check_targets(paths, model, force)
    result = apply_fixes(graph, facts, select=select, weights=arrays, probes=probes)
    if why:
        result.notes.append(why)
    if paths and result.changes:
        write(result, paths)
    return result
