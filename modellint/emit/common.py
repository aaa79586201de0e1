"""What both emitters share: literals that cannot carry code, identifiers made
from untrusted names, and the one error an emitter raises.

Everything an emitter writes that comes from a graph (layer names, attribute
values, loss and metric names) passes through :func:`lit` or :func:`ident`. A
graph read from a hostile file can hold any string; :func:`lit` writes it with
``repr()`` (a Python string literal, which cannot end early), and accepts only
plain data (None, bools, ints, finite floats, strings and tuples/lists/dicts of
them), so no attribute can smuggle an expression into the generated script.
"""

from __future__ import annotations

import keyword
import math
import re
from typing import Optional

from ..graph import Graph, Node, split_ref


class EmitError(ValueError):
    """The graph holds an op (or attribute) an emitter cannot write. The message
    names the node and the op, on one line."""

    def __init__(self, node: Optional[Node], why: str):
        where = f"layer {node.name!r} (op {node.op}" + (f", {node.source_type}" if node.source_type else "") + ")" \
            if node is not None else "model"
        super().__init__(f"cannot emit {where}: {why}")
        self.node = node.name if node is not None else None
        self.op = node.op if node is not None else None


_MAX_DEPTH = 6
_MAX_ITEMS = 100_000


def lit(value, node: Optional[Node] = None, _depth: int = 0) -> str:
    """``value`` as a Python literal: plain data only, strings through ``repr()``."""
    if _depth > _MAX_DEPTH:
        raise EmitError(node, "an attribute nests too deep to write")
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "float('-inf')"
        return repr(float(value))
    if isinstance(value, str):
        return repr(str(value))
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return lit(value.item(), node, _depth)
    if isinstance(value, (list, tuple)):
        if len(value) > _MAX_ITEMS:
            raise EmitError(node, "an attribute is too long to write")
        items = [lit(v, node, _depth + 1) for v in value]
        if isinstance(value, list):
            return "[" + ", ".join(items) + "]"
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{lit(str(k), node, _depth + 1)}: {lit(v, node, _depth + 1)}"
                               for k, v in value.items()) + "}"
    raise EmitError(node, f"an attribute value of type {type(value).__name__} is not plain data")


_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def plain_name(value) -> bool:
    """A snake_case-like name (an activation, loss, initializer) safe to pass to a framework."""
    return isinstance(value, str) and len(value) <= 100 and bool(_PLAIN_NAME.match(value))


class Names:
    """Python identifiers made from node names: ``conv2d_1`` stays, ``x"); os...``
    becomes ``x_os_``; clashes with keywords, reserved words and each other get a
    suffix."""

    def __init__(self, reserved=()):
        self.used = set(reserved) | set(keyword.kwlist) | {"self", "torch", "nn", "F", "keras", "layers"}
        self.by_key: dict = {}

    def __call__(self, key: str, hint: Optional[str] = None) -> str:
        if key in self.by_key:
            return self.by_key[key]
        base = re.sub(r"\W+", "_", hint if hint is not None else key, flags=re.ASCII).strip("_")[:48] or "t"
        if base[0].isdigit():
            base = "t_" + base
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        self.by_key[key] = name
        return name


def topo_nodes(graph: Graph) -> list:
    """The graph's nodes in an order where every producer comes first (the dict order
    of a built graph already is; an edited one may not be)."""
    order, seen, visiting = [], set(), set()
    nodes = graph.nodes

    def visit(name):
        stack = [(name, iter(nodes[name].inputs))]
        visiting.add(name)
        while stack:
            cur, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                visiting.discard(cur)
                seen.add(cur)
                order.append(nodes[cur])
                continue
            p = split_ref(nxt)[0]
            if p in seen:
                continue
            if p in visiting:
                raise EmitError(nodes[cur], f"the graph has a cycle through {p!r}")
            if p not in nodes:
                raise EmitError(nodes[cur], f"its input {p!r} is not in the graph")
            visiting.add(p)
            stack.append((p, iter(nodes[p].inputs)))

    for name in nodes:
        if name not in seen:
            visit(name)
    return order


def canonical_to_source_axis(axis: int, rank: int, layout: str) -> int:
    """The inverse of :func:`modellint.ops.canon_axis`: a canonical (negative,
    channels-last) axis as the source's non-negative axis."""
    p = int(axis) % rank
    if layout == "channels_first" and rank >= 3:
        return 1 if p == rank - 1 else p + 1 if p >= 1 else 0
    return p


def header(graph: Graph, what: str) -> str:
    src = graph.source_path or graph.name
    return ('"""' + f"{what}, written by modellint from the layer graph of {_doc_safe(src)}.\n\n"
            "Generated code: read it, edit it, run it. Layer names are the source model's.\n" + '"""\n')


def _doc_safe(text) -> str:
    """A name inside a docstring: printable ASCII only, no quotes or backslashes."""
    text = re.sub(r"[^A-Za-z0-9_.\-/ :+]", "_", str(text))[:120]
    return text or "model"
