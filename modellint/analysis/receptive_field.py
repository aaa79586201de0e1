"""Receptive field of every node, over a DAG.

For a chain, r = 1 + sum_l (k_l - 1) * d_l * prod_{i<l} s_i (Araujo et al.,
Distill 2019). Each node carries, per spatial axis, its receptive-field size
``size`` and effective stride ``stride`` (the distance in input pixels between
neighbouring outputs, "jump"). Where paths merge we take the maximum over paths.
Upsampling and transposed convolutions divide the stride. Padding does not
change the size. Ops that end the spatial grid (flatten, global pooling, dense
on a vector) have no receptive field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .. import ops
from ..graph import Graph, split_ref


@dataclass(frozen=True)
class ReceptiveField:
    size: tuple  # per spatial axis, in input pixels
    stride: tuple  # per spatial axis, in input pixels

    @property
    def max_size(self):
        return max(self.size)

    def to_dict(self) -> dict:
        return {"size": [_num(s) for s in self.size], "stride": [_num(s) for s in self.stride]}


def _num(x):
    return int(x) if float(x).is_integer() else round(float(x), 4)


def _spatial_rank(shape) -> int:
    return len(shape) - 2 if shape is not None and len(shape) >= 3 else 0


def receptive_fields(graph: Graph) -> dict:
    """``{node name: ReceptiveField or None}`` for every node."""
    out: dict = {}
    for node in graph:
        if node.op == "input":
            rank = _spatial_rank(node.output_shape)
            out[node.name] = ReceptiveField((1,) * rank, (1,) * rank) if rank else None
            continue
        ins = [out.get(split_ref(r)[0]) for r in node.inputs]
        ins = [rf for rf in ins if rf is not None]
        shape = node.output_shape
        rank = _spatial_rank(shape)
        if not ins or not rank:
            out[node.name] = None
            continue
        ins = [rf for rf in ins if len(rf.size) == rank]
        if not ins:
            out[node.name] = None
            continue
        size = tuple(max(rf.size[i] for rf in ins) for i in range(rank))
        stride = tuple(max(rf.stride[i] for rf in ins) for i in range(rank))
        if node.attrs.get("time_distributed"):
            out[node.name] = None
            continue
        try:
            window = ops.rf_window(node.op, node.attrs, rank)
        except (KeyError, TypeError):
            window = None
        if window is None and node.op == "unknown" and _same_grid(graph, node):
            window = [(1, 1, 1)] * rank  # assume a custom layer that keeps the grid is pointwise
        if window is None:
            out[node.name] = None
            continue
        new_size, new_stride = [], []
        for i, (k, s, d) in enumerate(window):
            new_size.append(size[i] + (k - 1) * d * stride[i] if s >= 1 else size[i] + (k - 1) * d * stride[i] * s)
            new_stride.append(stride[i] * s)
        out[node.name] = ReceptiveField(tuple(new_size), tuple(new_stride))
    return out


def _same_grid(graph: Graph, node) -> bool:
    shapes = [graph.shape_of(r) for r in node.inputs]
    out = node.output_shape
    return bool(shapes) and all(s is not None and out is not None and s[1:-1] == out[1:-1] for s in shapes)


def last_spatial(graph: Graph, rfs: Optional[dict] = None):
    """The last node (in order) that still has a spatial receptive field, with it."""
    rfs = rfs if rfs is not None else receptive_fields(graph)
    last = None
    for node in graph:
        if rfs.get(node.name) is not None and node.op != "input":
            last = node
    return (last, rfs[last.name]) if last is not None else (None, None)
