"""How every number of a layer table comes about: ``modellint summary --explain``.

For each layer: the arithmetic of its parameter count (``3·3·3·32 + 32 = 896``;
BatchNorm ``4·32 = 128``, of which 64 are moving statistics), of its output shape
(padding, stride, pooling), of its receptive-field step (``r = r_prev + (k−1)·d·j``) and
of its MACs; then two paragraphs: what the totals mean, and where the parameters and
the compute are concentrated. Pure function of the graph and its analyses; the text,
JSON and HTML writers only format :func:`explain`'s result.

For a graph read from a pasted summary, attributes that were inferred or assumed say
so (``attrs["provenance"]``), and an unknown one gives "unknown" with the reason.
"""

from __future__ import annotations

from typing import Optional

from .. import ops
from ..graph import Graph, split_ref
from .cost import node_costs
from .receptive_field import receptive_fields


def _d(*xs) -> str:
    return "·".join(str(x) for x in xs)


def _n(x) -> str:
    return f"{x:,}" if isinstance(x, int) else str(x)


def _hw(shape) -> str:
    return "×".join("?" if d is None else str(d) for d in shape)


def _spatial(shape):
    return tuple(shape[1:-1]) if shape is not None and len(shape) >= 3 else ()


def _first(v):
    return v[0] if isinstance(v, (list, tuple)) else v


def params_text(graph: Graph, node) -> str:
    p = node.params
    x = graph.shape_of(node.inputs[0]) if node.inputs else None
    y = node.output_shape
    a = node.attrs
    cin = x[-1] if x is not None else None
    torch = graph.framework == "torch"
    if node.shares_params_with:
        return f"0: shares the weights of {node.shares_params_with}"
    try:
        if node.op == "conv" and "kernel" in a and cin:
            g = a.get("groups", 1) or 1
            k = list(a["kernel"])
            cout = a.get("filters") or y[-1]
            cpg = cin // g
            w = ops._prod(k) * cpg * cout
            expr = _d(*k, cpg, cout) + (f" + {cout}" if a.get("use_bias", True) else "")
            total = w + (cout if a.get("use_bias", True) else 0)
            if total == p:
                what = "kernel × input channels" + (f" per group ({g} groups)" if g > 1 else "") + \
                    " × filters" + (" + one bias per filter" if a.get("use_bias", True) else " (no bias)")
                return f"{expr} = {_n(p)}  ({what})"
        if node.op == "depthwise_conv" and "kernel" in a and cin:
            dm = a.get("depth_multiplier", 1)
            k = list(a["kernel"])
            cout = cin * dm
            total = ops._prod(k) * cin * dm + (cout if a.get("use_bias", True) else 0)
            if total == p:
                return (f"{_d(*k, cin, dm)}" + (f" + {cout}" if a.get("use_bias", True) else "") +
                        f" = {_n(p)}  (one {_hw(k)} filter per input channel" +
                        (", + bias)" if a.get("use_bias", True) else ")"))
        if node.op == "separable_conv" and "kernel" in a and cin:
            dm = a.get("depth_multiplier", 1)
            k = list(a["kernel"])
            cout = a.get("filters") or y[-1]
            total = ops._prod(k) * cin * dm + cin * dm * cout + (cout if a.get("use_bias", True) else 0)
            if total == p:
                return (f"{_d(*k, cin, dm)} + {_d(cin * dm, cout)}" + (f" + {cout}" if a.get("use_bias", True) else "")
                        + f" = {_n(p)}  (depthwise, then pointwise 1×1)")
        if node.op == "dense" and cin:
            units = a.get("units") or y[-1]
            bias = a.get("use_bias", True)
            if cin * units + (units if bias else 0) == p:
                return f"{_d(cin, units)}" + (f" + {units}" if bias else "") + \
                    f" = {_n(p)}  (inputs × units" + (" + one bias per unit)" if bias else ", no bias)")
        if node.op == "batchnorm" and y is not None and y[-1]:
            c = y[-1]
            if p == 4 * c:
                return (f"4·{c} = {_n(p)}  (γ and β trainable: {2 * c:,}; moving mean and variance: {2 * c:,}, "
                        "non-trainable, updated by averaging, not by gradients)")
            if p == 2 * c:
                extra = " (running mean and variance are buffers, not parameters)" if torch else ""
                return f"2·{c} = {_n(p)}  (γ and β){extra}"
        if node.op in ("layernorm", "groupnorm") and y is not None and p == 2 * (y[-1] or 0):
            return f"2·{y[-1]} = {_n(p)}  (γ and β per channel)"
    except (TypeError, KeyError, IndexError):
        pass
    if p == 0:
        return "0  (no weights)"
    unknown = node.unknown_attrs()
    if unknown & {"kernel", "use_bias"}:
        return f"{_n(p)}  (read; the kernel cannot be told from it: {_prov_why(node, 'kernel')})"
    return f"{_n(p)}  (as the source counts them)"


def _prov_why(node, attr) -> str:
    return ((node.attrs.get("provenance") or {}).get(attr) or {}).get("why", "")


def shape_text(graph: Graph, node) -> str:
    y = node.output_shape
    if y is None:
        return "unknown"
    x = graph.shape_of(node.inputs[0]) if node.inputs else None
    a = node.attrs
    op = node.op
    sx, sy = _spatial(x), _spatial(y)
    if op == "input":
        return f"{_hw(y[1:])}: the input"
    if op in ("conv", "depthwise_conv", "separable_conv", "pool_max", "pool_avg") and sx and sy:
        k = a.get("kernel") or a.get("pool_size")
        s = a.get("strides") or (a.get("pool_size") if op.startswith("pool") else None)
        pad = a.get("padding")
        if k is None or s is None:
            return f"{_hw(sx)} → {_hw(sy)}: window or stride unknown ({_prov_why(node, 'strides') or _prov_why(node, 'kernel') or _prov_why(node, 'pool_size')})"
        k0, s0 = _first(k), _first(s)
        d0 = _first(a.get("dilation", 1)) or 1
        n0 = sx[0]
        if pad == "same":
            how = f"padding 'same': ⌈{n0}/{s0}⌉ = {sy[0]}"
        elif pad == "valid" or pad is None:
            eff = f"{k0}" if d0 == 1 else f"({k0}−1)·{d0}+1"
            how = f"padding 'valid': ⌊({n0} − {eff})/{s0}⌋ + 1 = {sy[0]}"
        elif isinstance(pad, (list, tuple)):
            lo, hi = pad[0] if isinstance(pad[0], (list, tuple)) else (pad[0], pad[0])
            how = f"padding {lo}+{hi}: ⌊({n0} + {lo + hi} − {(k0 - 1) * d0 + 1})/{s0}⌋ + 1 = {sy[0]}"
        else:
            how = f"padding {pad}"
        ch = f"; {y[-1]} channels" + (" (one per filter)" if op == "conv" else "")
        what = "pool" if op.startswith("pool") else "kernel"
        return f"{_hw(sx)} → {_hw(sy)}: {what} {_hw(k)}, stride {_hw(s) if isinstance(s, (list, tuple)) else s}, {how}{ch}"
    if op == "global_pool":
        return f"one value per channel over {_hw(sx) if sx else 'all'} positions → {y[-1]} features"
    if op == "flatten" and x is not None:
        return f"{_d(*[d for d in x[1:]])} = {y[-1]} values in one vector"
    if op == "dense":
        return f"{y[-1]} units on the last axis"
    if op == "pad" and sx:
        return f"{_hw(sx)} → {_hw(sy)}: zeros added at the borders"
    if op == "upsample" and sx:
        return f"{_hw(sx)} → {_hw(sy)}: each position repeated"
    if op == "concat":
        parts = [graph.shape_of(r) for r in node.inputs]
        if all(p is not None for p in parts):
            return " + ".join(str(p[-1]) for p in parts) + f" = {y[-1]} channels stacked"
    if op in ("add", "multiply", "subtract", "average", "maximum", "minimum"):
        return f"element-wise over {len(node.inputs)} inputs of the same shape"
    if x is not None and tuple(x[1:]) == tuple(y[1:]):
        return "same as its input"
    return _hw(y[1:])


def rf_text(graph: Graph, node, rfs, prev_rf) -> str:
    rf = rfs.get(node.name)
    if node.name in getattr(rfs, "unknown", set()):
        why = [f"{a}: {_prov_why(node, a)}" for a in sorted(node.unknown_attrs()) if a in
               ("kernel", "strides", "pool_size", "dilation", "inputs", "size")]
        return "unknown" + (f" ({'; '.join(why)})" if why else " (an unknown layer before it)")
    if rf is None:
        return "" if node.op != "global_pool" else "ends the grid: each feature keeps the field of its input"
    if node.op == "input":
        return "r = 1, j = 1 (one pixel)"
    if prev_rf is None:
        return f"r = {_hw(rf.size)}"
    try:
        window = ops.rf_window(node.op, node.attrs, len(rf.size))
    except (KeyError, TypeError):
        window = None
    if not window:
        return f"r = {_num(prev_rf.size[0])}"
    k, s, d = window[0]
    r0, j0 = prev_rf.size[0], prev_rf.stride[0]
    if k == 1 and s == 1:
        return f"r = {_num(rf.size[0])} (pointwise)"
    dil = f"·{d}" if d != 1 else ""
    jump = f", j = {_num(j0)}·{_num(s)} = {_num(rf.stride[0])}" if s != 1 else f", j = {_num(rf.stride[0])}"
    return f"r = {_num(r0)} + ({k}−1){dil}·{_num(j0)} = {_num(rf.size[0])}{jump}"


def _num(x):
    return int(x) if float(x).is_integer() else round(float(x), 3)


def macs_text(graph: Graph, node, cost) -> str:
    if not cost.macs_known:
        return "unknown"
    m = cost.macs
    if m == 0:
        return "0"
    y = node.output_shape
    sy = _spatial(y)
    weights = node.params - (y[-1] if node.attrs.get("use_bias", True) and node.op in ("conv", "dense",
                                                                                         "depthwise_conv") else 0)
    if node.op in ("conv", "depthwise_conv") and sy and all(sy):
        pos = ops._prod(sy)
        if pos * weights == m:
            return f"{_hw(sy)} positions × {weights:,} weights = {m:,}"
    if node.op == "dense" and y is not None and len(y) == 2 and weights == m:
        return f"{weights:,} (one multiply-add per weight)"
    return f"{m:,}"


def explain(graph: Graph, rfs=None, costs=None) -> dict:
    """``{"rows": {name: {"params", "shape", "receptive_field", "macs", "provenance"}},
    "totals": paragraph, "concentration": paragraph}``."""
    rfs = rfs if rfs is not None else receptive_fields(graph)
    costs = costs if costs is not None else node_costs(graph)
    rows = {}
    for node in graph:
        if node.fused_into:
            continue
        prev = None
        for ref in node.inputs:
            r = rfs.get(split_ref(ref)[0])
            if r is not None and (prev is None or r.size[0] > prev.size[0]):
                prev = r
        prov = {a: f"{p.get('how')}: {p.get('why')}" for a, p in (node.attrs.get("provenance") or {}).items()
                if isinstance(p, dict) and p.get("how") in ("inferred", "assumed", "unknown")}
        rows[node.name] = {
            "params": params_text(graph, node),
            "shape": shape_text(graph, node),
            "receptive_field": rf_text(graph, node, rfs, prev),
            "macs": macs_text(graph, node, costs[node.name]),
            **({"provenance": prov} if prov else {}),
        }
    return {"rows": rows, "totals": totals_paragraph(graph, costs), "concentration": concentration_paragraph(graph, costs)}


def totals_paragraph(graph: Graph, costs) -> str:
    total, train, non = graph.total_params, graph.trainable_params, graph.non_trainable_params
    bn = [n for n in graph if n.op == "batchnorm" and n.non_trainable_params]
    bn_sum = sum(n.non_trainable_params for n in bn)
    parts = [f"Total params {total:,} is the sum of the rows: every weight the model holds, "
             f"{human_bytes(4 * total)} at float32."]
    parts.append(f"{train:,} are trainable: the optimiser updates them from the gradients.")
    if non:
        if bn_sum == non and bn:
            chans = "+".join(str(n.output_shape[-1]) for n in bn if n.output_shape)
            parts.append(f"The {non:,} non-trainable ones are the BatchNorm layers' moving means and variances, "
                         f"2·({chans}) = {non:,}: averaged over batches during training and used at inference, "
                         "never updated by gradients.")
        elif bn_sum:
            parts.append(f"Of the {non:,} non-trainable ones, {bn_sum:,} are BatchNorm moving statistics; the other "
                         f"{non - bn_sum:,} belong to frozen layers (trainable=False).")
        else:
            parts.append(f"The {non:,} non-trainable ones are frozen (trainable=False) or fixed statistics.")
    known = all(c.macs_known for c in costs.values())
    macs = sum(c.macs for c in costs.values())
    inp = graph.input_shapes()[0] if graph.inputs else None
    per = f" per {_hw(graph.display_shape(inp)[1:])} input" if inp is not None and None not in inp[1:] else " per sample"
    if known:
        parts.append(f"One forward pass costs {human(macs)} multiply-adds (MACs){per}, {human(2 * macs)} FLOPs; "
                     "the parameter count says how much the model can store, the MACs how long it computes.")
    else:
        parts.append(f"At least {human(macs)} MACs{per}: some layers' cost is unknown.")
    return " ".join(parts)


def concentration_paragraph(graph: Graph, costs) -> str:
    layers = [n for n in graph if not n.fused_into and n.op != "input"]
    total = graph.total_params or 1
    by_p = sorted((n for n in layers if n.params), key=lambda n: -n.params)[:3]
    macs_total = sum(c.macs for c in costs.values()) or 1
    by_m = sorted((n for n in layers if costs[n.name].macs), key=lambda n: -costs[n.name].macs)[:3]
    out = []
    if by_p:
        share = sum(n.params for n in by_p) / total
        out.append("Parameters concentrate in " + ", ".join(f"{n.name} ({n.params:,}, {n.params / total:.0%})"
                                                            for n in by_p)
                   + f": {share:.0%} of the model in {len(by_p)} layer{'s' if len(by_p) > 1 else ''}.")
        dense = sum(n.params for n in layers if n.op == "dense")
        if dense / total > 0.5:
            out.append(f"Dense layers hold {dense / total:.0%} of the weights: a Flatten before a Dense multiplies "
                       "positions by units.")
    if by_m:
        out.append("Compute concentrates in " + ", ".join(f"{n.name} ({human(costs[n.name].macs)} MACs, "
                                                          f"{costs[n.name].macs / macs_total:.0%})" for n in by_m)
                   + ": a layer's MACs are its weights times the positions it runs at, so layers at high "
                     "resolution cost the most even with few parameters.")
        top_p = by_p[0] if by_p else None
        if top_p is not None and by_m[0] is not top_p:
            out.append(f"{top_p.name} holds the most parameters but {by_m[0].name} does the most work: "
                       "parameters and compute are different budgets.")
    return " ".join(out)


def human(n: float) -> str:
    for div, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= div:
            return f"{n / div:.1f}{suffix}"
    return f"{n:g}"


def human_bytes(n: float) -> str:
    for div, suffix in ((2**30, " GiB"), (2**20, " MiB"), (2**10, " KiB")):
        if n >= div:
            return f"{n / div:.1f}{suffix}"
    return f"{int(n)} B"


def row_explanation(explained: dict, name: str) -> Optional[dict]:
    return (explained or {}).get("rows", {}).get(name)
