"""Receptive field of every node, over a DAG.

For a chain, r = 1 + sum_l (k_l - 1) * d_l * prod_{i<l} s_i (Araujo et al.,
Distill 2019). Each node carries, per spatial axis, its receptive-field size
``size`` and effective stride ``stride`` (the distance in input pixels between
neighbouring outputs, "jump"). Where paths merge we take the maximum over paths.
Upsampling and transposed convolutions divide the stride. Padding does not
change the size. Ops that end the spatial grid (flatten, global pooling, dense
on a vector) have no receptive field.

Unknown means unknown: a window whose size or stride the source could not tell (a
pasted summary, ``Node.unknown_attrs``) and an ``unknown`` node (a custom or Lambda layer, an operation
modellint cannot read) may mix positions in any way, so its receptive field and
that of every node downstream of it is not a number. They are ``None`` like the
nodes without a grid, and :attr:`ReceptiveFields.unknown` names them, so a rule
can tell "no spatial grid" from "cannot be known" (and skip with a note).

Where the grid ends, :func:`aggregations` says how: global pooling averages
features that each see only their own window, so the receptive field at the
pooling is what the classifier can see whole. A Dense over a flattened map, an
attention or a recurrent layer instead combines every position with its own
weights: the receptive field after them is the whole input.
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


class ReceptiveFields(dict):
    """``{node name: ReceptiveField or None}``; :attr:`unknown` holds the names of the
    nodes whose receptive field cannot be known (an ``unknown`` node on a path to them)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unknown: set = set()

    def is_unknown(self, name: str) -> bool:
        return name in self.unknown


#: attributes a window's receptive field needs: unknown in a pasted summary when its numbers allow
#: several values (Node.unknown_attrs); the field is then not a number, from there on
_WINDOW_ATTRS = frozenset({"kernel", "strides", "pool_size", "dilation", "size", "inputs"})


def _window_unknown(node) -> bool:
    return bool(node.attrs.get("provenance")) and bool(node.unknown_attrs() & _WINDOW_ATTRS)


def _num(x):
    return int(x) if float(x).is_integer() else round(float(x), 4)


def _spatial_rank(shape) -> int:
    return len(shape) - 2 if shape is not None and len(shape) >= 3 else 0


def receptive_fields(graph: Graph) -> ReceptiveFields:
    """``{node name: ReceptiveField or None}`` for every node (see :class:`ReceptiveFields`)."""
    out = ReceptiveFields()
    for node in graph:
        if node.op == "input":
            rank = _spatial_rank(node.output_shape)
            out[node.name] = ReceptiveField((1,) * rank, (1,) * rank) if rank else None
            continue
        producers = [split_ref(r)[0] for r in node.inputs]
        if node.op == "unknown" or any(p in out.unknown for p in producers):
            out[node.name] = None  # through an unknown node: no number, not "pointwise"
            out.unknown.add(node.name)
            continue
        ins = [out.get(p) for p in producers]
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
        if _window_unknown(node):  # a grid reaches a window whose size or stride the source did not tell
            out[node.name] = None
            out.unknown.add(node.name)
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
        if window is None:
            out[node.name] = None
            continue
        new_size, new_stride = [], []
        for i, (k, s, d) in enumerate(window):
            new_size.append(size[i] + (k - 1) * d * stride[i] if s >= 1 else size[i] + (k - 1) * d * stride[i] * s)
            new_stride.append(stride[i] * s)
        out[node.name] = ReceptiveField(tuple(new_size), tuple(new_stride))
    return out


def last_spatial(graph: Graph, rfs: Optional[dict] = None):
    """The last node (in order) that still has a spatial receptive field, with it.

    ``(None, None)`` when there is none, or when a node after it in the graph has a
    spatial (or unknown) shape but a receptive field that cannot be known: the last
    spatial layer then lies past an ``unknown`` node and its field is not a number.
    """
    rfs = rfs if rfs is not None else receptive_fields(graph)
    unknown = getattr(rfs, "unknown", set())
    last, seen_last = None, False
    for node in graph:
        if rfs.get(node.name) is not None and node.op != "input":
            last, seen_last = node, True
        elif node.name in unknown and (node.output_shape is None or _spatial_rank(node.output_shape)):
            seen_last = False  # a grid we cannot follow comes later
    if last is None or not seen_last:
        return None, None
    return last, rfs[last.name]


#: ops a walk from the end of the grid passes through to find what aggregates it
_PASS_KINDS = (ops.RESHAPE, ops.REGULARIZATION, ops.NORMALIZATION, ops.ACTIVATION, ops.MERGE)
_PASS_OPS = ("identity", "scale")


@dataclass(frozen=True)
class Aggregation:
    """Where a spatial grid ends and what ends it.

    ``node``: the last node on the path with a spatial receptive field (the features
    that are aggregated); ``rf``: its receptive field (``None`` when unknown);
    ``by``: the node that ends the grid; ``kind``: what combines the positions:

    * ``"global_pool"``: global pooling; each feature still sees only ``rf``;
    * ``"dense"``: a Dense/Linear over the flattened map: it weighs every position, so
      the field after it is the whole input;
    * ``"attention"`` / ``"rnn"``: attention or a recurrent layer over the positions
      (as tokens or time steps): the whole input as well;
    * ``"unknown"``: an ``unknown`` node on the way: cannot be known;
    * ``"output"``: the flattened or reshaped map is a model output;
    * ``"other"``: anything else (e.g. a convolution over the reshaped grid).
    """

    node: object
    rf: Optional[ReceptiveField]
    by: object
    kind: str

    @property
    def whole_input(self) -> bool:
        """True when the layer that aggregates sees every position of the input."""
        return self.kind in ("dense", "attention", "rnn")


def _classify(graph: Graph, start) -> str:
    """What first combines the positions of the grid that ends at ``start``.

    One pass in graph (topological) order over what ``start`` reaches, with a state per
    node: ``local`` (each feature still sees its own window), ``whole`` (a Dense over the
    flattened positions, an attention or a recurrent layer has mixed every position in)
    or ``unknown``. At a merge the largest field wins, as in :func:`receptive_fields`: a
    residual sum around an attention layer is ``whole``. A global pooling of ``local``
    features is what ML401 is about; one of ``whole`` features is not.
    """
    outputs = {split_ref(r)[0] for r in graph.outputs}
    state = {start.name: "local"}
    found, mixed_by = set(), []
    rank = {"whole": 2, "unknown": 1, "local": 0}
    for n in graph:
        if n.name == start.name:
            ins = ["local"]
        else:
            ins = [state[p] for p in (split_ref(r)[0] for r in n.inputs) if state.get(p) is not None]
            if not ins:
                continue
        here = max(ins, key=rank.__getitem__)
        if here == "local":
            src = graph.shape_of(n.inputs[0]) if n.inputs else None
            if n.op == "global_pool":
                found.add("global_pool")
                continue  # ML401's case: the pooled features each see only their window
            if n.op == "unknown":
                here = "unknown"
            elif n.op in ("attention", "rnn") or (n.op == "dense" and src is not None and len(src) == 2):
                here = "whole"  # a Dense on tokens (batch, positions, channels) acts on each alone: stays local
                mixed_by.append("dense" if n.op == "dense" else n.op)
            elif n.op != "dense" and ops.spec(n.op).kind not in _PASS_KINDS and n.op not in _PASS_OPS:
                found.add("other")
                continue
        if here == "unknown":
            found.add("unknown")
        if here == "local" and n.name in outputs:
            found.add("output")
        state[n.name] = here
    for kind in ("unknown", "global_pool", "other"):
        if kind in found:  # the least favourable reading first: unknown beats everything
            return kind
    return mixed_by[0] if mixed_by else "output"


def aggregations(graph: Graph, rfs: Optional[dict] = None) -> list:
    """Every place where a spatial grid ends, as :class:`Aggregation` (in graph order).

    The grid ends at a node whose consumer has no receptive field: a global pooling,
    a flatten or reshape, an ``unknown`` node. Nodes with a receptive field that feed
    back into a grid (a squeeze-and-excitation branch: global pooling, dense layers,
    then a multiply onto the map) are not aggregations of the model's features: a
    grid that continues downstream is followed to its own end instead. Inputs are not
    counted (a model that flattens its input image is an MLP).
    """
    rfs = rfs if rfs is not None else receptive_fields(graph)
    unknown = getattr(rfs, "unknown", set())
    found = []
    for node in graph:
        rf = rfs.get(node.name)
        if rf is None or node.op == "input":
            continue
        for c in graph.consumers(node):
            if rfs.get(c.name) is not None:
                continue
            if c.name in unknown:
                found.append(Aggregation(node, rf, c, "unknown"))
                continue
            if _regains_grid(graph, c, rfs):
                continue  # squeeze-and-excitation and the like: the grid goes on
            found.append(Aggregation(node, rf, c, _classify(graph, c)))
    return found


def _regains_grid(graph: Graph, start, rfs) -> bool:
    seen, stack = set(), [start]
    while stack:
        n = stack.pop()
        if n.name in seen:
            continue
        seen.add(n.name)
        for c in graph.consumers(n):
            if rfs.get(c.name) is not None:
                return True
            stack.append(c)
    return False
