"""Compute and memory per node.

Conventions: 1 multiply-add = 1 MAC, FLOPs = 2 x MACs, batch size 1. Only layers
with weights (conv, dense, RNN, attention, including attention's pairwise
products) are counted; element-wise ops, normalisation and pooling count zero.
Activation memory is the node's output size in bytes at batch 1, float32
unless the node says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import ops
from ..graph import Graph

BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8, "int32": 4, "int64": 8,
         "int8": 1, "uint8": 1, "bool": 1}


@dataclass(frozen=True)
class Cost:
    macs: int
    activation_bytes: int

    @property
    def flops(self) -> int:
        return 2 * self.macs


def _elements(shape) -> int:
    n = 1
    for d in shape[1:]:
        if d is None:
            return 0
        n *= d
    return n


def node_costs(graph: Graph) -> dict:
    """``{node name: Cost}``."""
    out = {}
    for node in graph:
        in_shapes = [graph.shape_of(r) for r in node.inputs]
        macs = 0
        if node.output_shapes and all(s is not None for s in in_shapes) and node.output_shape is not None:
            macs = ops.count_macs(node.op, node.attrs, in_shapes, node.output_shapes, graph.layout)
        width = BYTES.get(str(node.attrs.get("dtype", "float32")), 4)
        mem = sum(_elements(s) for s in node.output_shapes if s is not None) * width
        if node.fused_into:
            mem = 0  # an in-place activation of its layer's output
        out[node.name] = Cost(macs=macs, activation_bytes=mem)
    return out


def total_macs(graph: Graph, costs: dict = None) -> int:
    costs = costs if costs is not None else node_costs(graph)
    return sum(c.macs for c in costs.values())
