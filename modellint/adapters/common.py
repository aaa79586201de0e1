"""Steps every graph builder shares: the sanity check of a built graph, and (re-exported
from :mod:`modellint.infer`, where they live) sizing a node from its inputs, counting
its parameters and making a fused activation an explicit node."""

from __future__ import annotations

import math
import numbers

from ..graph import Graph

# Node inference lives below the adapters (modellint.infer); re-exported for the adapters.
from ..infer import _SHAPE_ERRORS, FUSABLE, add_with_activation, count_node, infer_node  # noqa: F401,E402


# -- sanity of a built graph -------------------------------------------------
#
# Hostile or broken files can declare sizes no model has (Infinity, -5, 10**30
# units). Shape inference and parameter counting use Python ints and cope, but
# the analyses and reports turn sizes into floats, indices and array shapes, so
# every graph is checked once, right after it is built, and an absurd value is
# refused there with the layer's name rather than crashing a rule later.

#: The largest size of one dimension, kernel, stride, units, filters...: the
#: int32 range, which frameworks index tensors with; no real layer comes close.
MAX_DIM = 2**31 - 1
#: The most elements in one tensor (batch excluded) and parameters in one layer:
#: exact in a float64 and within int64, so every sum and product later stays finite.
MAX_ELEMENTS = 2**53

# attr -> smallest allowed value. Scalars or sequences of numbers; None (unknown) is fine.
_SIZE_ATTRS = {"units": 1, "filters": 1, "depth_multiplier": 1, "groups": 1, "n": 1, "input_dim": 1,
               "output_dim": 1, "num_heads": 1, "key_dim": 1, "value_dim": 1, "height": 1, "width": 1,
               "kernel": 1, "strides": 1, "dilation": 1, "pool_size": 1, "size": 0, "output_padding": 0,
               "rank": 0, "output_shape": 1}
# attrs whose numbers may be negative (ONNX pads crop; Reshape's -1), within the same magnitude
_SIGNED_ATTRS = ("padding", "cropping", "target_shape", "dims")


class GraphError(ValueError):
    """A built graph holds a size no model can have."""


def _numbers(value, depth=0):
    """The numbers inside a scalar / nested list or tuple (strings and None are skipped)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, numbers.Number):
        yield value
    elif isinstance(value, (list, tuple)) and depth < 4:
        for v in value:
            yield from _numbers(v, depth + 1)


def _bad_number(value, lo: int) -> bool:
    if not isinstance(value, numbers.Real):
        return True
    if isinstance(value, numbers.Integral):
        return not lo <= value <= MAX_DIM
    return not (math.isfinite(value) and lo <= value <= MAX_DIM)


def check_graph(graph: Graph) -> None:
    """Raise :class:`GraphError` naming the first layer with an absurd size:
    a size attribute out of range, a negative or huge dimension, a tensor or a
    parameter count beyond :data:`MAX_ELEMENTS`."""
    for node in graph:
        where = f"layer {node.name!r}" + (f" ({node.source_type})" if node.source_type else "")
        for key, lo in _SIZE_ATTRS.items():
            if key == "output_shape" and node.op != "attention":
                continue
            for v in _numbers(node.attrs.get(key)):
                if _bad_number(v, lo) or (key == "size" and v == 0):   # an upsampling factor is > 0
                    raise GraphError(f"{where}: {key} {_short(node.attrs.get(key))} is out of range "
                                     f"(expected {lo} to {MAX_DIM})")
        for key in _SIGNED_ATTRS:
            for v in _numbers(node.attrs.get(key)):
                if _bad_number(abs(v) if isinstance(v, numbers.Real) else v, 0):
                    raise GraphError(f"{where}: {key} {_short(node.attrs.get(key))} is out of range")
        _check_window(graph, node, where)
        for shape in node.output_shapes:
            if shape is None:
                continue
            if not isinstance(shape, tuple):
                raise GraphError(f"{where}: output shape {_short(shape)} is not a shape")
            lo = 1 if node.op == "input" else 0
            n = 1
            for i, d in enumerate(shape):
                if d is None:
                    continue
                if isinstance(d, bool) or not isinstance(d, numbers.Integral) or not lo <= d <= MAX_DIM:
                    raise GraphError(f"{where}: output shape {_short(shape)} has a size out of range "
                                     f"(expected {lo} to {MAX_DIM})")
                n *= int(d) if i else 1   # the batch dimension is not counted
            if n > MAX_ELEMENTS:
                raise GraphError(f"{where}: output shape {_short(shape)} has more than 2**53 elements")
        for count in (node.params, node.trainable_params):
            if isinstance(count, bool) or not isinstance(count, numbers.Integral) or not 0 <= count <= MAX_ELEMENTS:
                raise GraphError(f"{where}: parameter count {_short(count)} is out of range")


_WINDOW_ATTRS = ("kernel", "strides", "dilation", "pool_size", "size", "output_padding")


def _check_window(graph: Graph, node, where: str) -> None:
    """A conv/pool/pad/upsample of ``rank`` spatial dims: one value (or one pair) per
    dim, on an input of rank + 2 dims (batch and channels), as every analysis assumes."""
    rank = node.attrs.get("rank")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1 or node.attrs.get("time_distributed"):
        return
    for key in _WINDOW_ATTRS + ("padding", "cropping"):
        value = node.attrs.get(key)
        if isinstance(value, (list, tuple)) and len(value) not in (1, rank):
            raise GraphError(f"{where}: {key} {_short(value)} does not have one entry per spatial dimension "
                             f"({rank})")
    x = graph.shape_of(node.inputs[0]) if node.inputs else None
    if x is not None and len(x) != rank + 2:
        raise GraphError(f"{where}: a {rank}-D window on a rank-{len(x)} input {_short(x)} "
                         f"(expected rank {rank + 2}: batch, {rank} spatial, channels)")


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
