"""Node inference, below the adapters: size a node from its inputs, count its
parameters, and make a fused activation an explicit node.

Every graph builder (the Keras, PyTorch and ONNX adapters, :mod:`modellint.build`)
and the graph editor (:mod:`modellint.edit`) use these steps, so a node comes out
the same whether it was read from a file, built for an example or inserted by a fix.
"""

from __future__ import annotations

from . import ops
from .graph import Graph, Node

# Layers whose activation argument becomes its own node.
FUSABLE = frozenset({"conv", "conv_transpose", "depthwise_conv", "separable_conv", "dense"})

_SHAPE_ERRORS = (ops.ShapeError, KeyError, TypeError, ValueError, IndexError, ZeroDivisionError)


def infer_node(node: Node, in_shapes: list, layout: str = "channels_last") -> None:
    """Set ``node.output_shapes`` (``[None]`` with a note when it cannot be known;
    ``[]`` for an unknown op, which has no shape until someone tells it)."""
    unknown = node.op == "unknown"
    if any(s is None for s in in_shapes):
        node.output_shapes = [] if unknown else [None]
        if not unknown:
            node.notes.append("shape unknown: an input's shape is unknown")
        return
    try:
        node.output_shapes = ops.infer_shapes(node.op, node.attrs, in_shapes, layout)
    except _SHAPE_ERRORS as exc:
        node.output_shapes = [] if unknown else [None]
        if not unknown:
            node.notes.append(f"shape inference failed: {exc}")


def count_node(node: Node, in_shapes: list, trainable: bool = True, layout: str = "channels_last") -> None:
    """Set ``node.params`` / ``node.trainable_params`` (a frozen layer's are all non-trainable)."""
    if node.shares_params_with:
        return
    if any(s is None for s in in_shapes) and ops.spec(node.op).params is not ops._params_none:
        node.notes.append("parameters unknown: input shape unknown")
        return
    try:
        tr, ntr = ops.count_params(node.op, node.attrs, in_shapes, node.output_shapes, layout)
    except _SHAPE_ERRORS as exc:
        node.notes.append(f"parameters unknown: {exc}")
        return
    if not trainable:
        tr, ntr = 0, tr + ntr
    node.params = tr + ntr
    node.trainable_params = tr


def add_with_activation(graph: Graph, node: Node) -> str:
    """Add ``node``; if it fuses a non-linear activation, add that as ``<name>.activation``.

    Returns the ref that consumers of the layer's output should use.
    """
    graph.add(node)
    act = node.attrs.get("activation")
    if node.op in FUSABLE and act not in (None, "linear"):
        act_node = Node(name=node.name + ".activation", op="activation", source_type=node.source_type,
                        attrs={"function": act}, inputs=[node.name], output_shapes=list(node.output_shapes),
                        fused_into=node.name, scope=node.scope)
        graph.add(act_node)
        return act_node.name
    return node.name
