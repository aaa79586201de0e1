"""Compute and memory per node.

Conventions: 1 multiply-add = 1 MAC, FLOPs = 2 x MACs, batch size 1. Only layers
with weights (conv, dense, RNN, attention, including attention's pairwise
products) are counted; element-wise ops, normalisation and pooling count zero.
Activation memory is the node's output size in bytes at batch 1, float32
unless the node says otherwise (the batch dim is dim 0, or the one None of a
``(seq, None, dim)`` shape). MACs are per sample where a node records
``attrs["batch_axis"]`` (its input's batch is not dim 0: :func:`modellint.ops.count_macs`).

Unknown means unknown: an ``unknown`` node (a custom or Lambda layer) may compute
anything, so its MACs are not a number (``macs_known`` False), and neither are
those of a layer with weights whose shapes are unknown (shape inference stops past
an unknown node). :func:`total_macs` is then ``None``, not a sum that silently
counts them as 0. ``macs`` stays an int (0 where unknown) for writers that add it up;
read ``macs_known`` / :func:`total_macs` before trusting a total.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .. import ops
from ..graph import Graph

BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8, "int32": 4, "int64": 8,
         "int8": 1, "uint8": 1, "bool": 1}


@dataclass(frozen=True)
class Cost:
    macs: int  # 0 where not known: see macs_known
    activation_bytes: int  # 0 where not known: see bytes_known
    macs_known: bool = True
    bytes_known: bool = True

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def known_macs(self) -> Optional[int]:
        """The MACs, or None when they cannot be known."""
        return self.macs if self.macs_known else None


def _elements(shape) -> Optional[int]:
    """Elements of one sample: all dims but the batch's, dim 0, or the one None of a shape whose
    batch is elsewhere (a PyTorch ``(seq, None, dim)`` tensor)."""
    dims = list(shape)
    gaps = [i for i, d in enumerate(dims) if d is None]
    at = 0 if not dims or dims[0] is None or len(gaps) != 1 else gaps[0]
    n = 1
    for i, d in enumerate(dims):
        if i == at:
            continue
        if d is None:
            return None
        n *= d
    return n


def node_costs(graph: Graph) -> dict:
    """``{node name: Cost}``."""
    out = {}
    for node in graph:
        in_shapes = [graph.shape_of(r) for r in node.inputs]
        shapes_known = bool(node.output_shapes) and node.output_shape is not None \
            and all(s is not None for s in in_shapes)
        macs = 0
        if shapes_known:
            macs = ops.count_macs(node.op, node.attrs, in_shapes, node.output_shapes, graph.layout)
        # an op that never has MACs (element-wise, pooling...) costs 0 whatever its shapes
        macs_known = node.op != "unknown" and (shapes_known or ops.spec(node.op).macs is ops._macs_none)
        if macs_known and node.attrs.get("provenance") and "kernel" in node.unknown_attrs():
            macs_known = False  # a pasted summary's conv whose kernel the numbers do not tell
        width = BYTES.get(str(node.attrs.get("dtype", "float32")), 4)
        sizes = [_elements(s) if s is not None else None for s in node.output_shapes] or [None]
        bytes_known = all(n is not None for n in sizes)
        mem = sum(n for n in sizes if n is not None) * width
        if node.fused_into:
            mem, bytes_known = 0, True  # an in-place activation of its layer's output
        out[node.name] = Cost(macs=macs, activation_bytes=mem, macs_known=macs_known, bytes_known=bytes_known)
    return out


def total_macs(graph: Graph, costs: dict = None) -> Optional[int]:
    """Sum of MACs; ``None`` when any node's MACs cannot be known (an ``unknown`` node)."""
    costs = costs if costs is not None else node_costs(graph)
    if not all(c.macs_known for c in costs.values()):
        return None
    return sum(c.macs for c in costs.values())
