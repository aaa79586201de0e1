"""A given input shape checked against the weights a model stores (issue 11).

A TorchScript archive does not record its input shape: the user passes one
(``--input-shape 1,3,32,32``) and shapes are inferred from it without running
anything. A wrong one (1 channel into a 3-channel conv, 32×32 into a flatten
whose ``nn.Linear`` was sized for 16×16) would make torch fail at the first
layer it reaches, but shape inference reads a layer's output size from the layer
alone, so the graph came out whole and every count after it was for a model that
cannot run. :func:`check_input_shape` compares what reaches each layer with
what its weights say it takes, in the graph's order, and refuses the first
layer that disagrees:

==========================================  ====================================  ===================
layer                                       the weights say                       input axis read
==========================================  ====================================  ===================
``Conv1d/2d/3d``                            ``weight.shape[1] × groups`` channels  1 (channels)
``ConvTranspose1d/2d/3d``                   ``weight.shape[0]`` channels          1
``BatchNorm*``, ``InstanceNorm*``,          ``weight`` / ``running_mean`` length   1
``GroupNorm``, ``SyncBatchNorm``
``Linear``                                  ``weight.shape[1]`` features          last
``LSTM``, ``GRU``, ``RNN``                  ``weight_ih_l0.shape[1]`` features    last
``MultiheadAttention``                      ``in_proj_weight.shape[1]`` (query)   last
``LayerNorm``                               ``weight.shape`` (the trailing dims)  last ``weight.dim()``
==========================================  ====================================  ===================

Layers are found by the graph's node names, which for TorchScript are module
paths (``features.0``; a second call is ``features.0@1``); a node that is no
submodule (an ATen op between modules) is not checked, and neither is a layer
whose input shape is unknown. Nothing here runs the model.
"""

from __future__ import annotations

import re
from typing import Optional

from ..errors import InputError
from ..graph import Graph, split_ref

CONV = re.compile(r"^Conv[123]d$")
CONV_T = re.compile(r"^ConvTranspose[123]d$")
NORM_C = re.compile(r"^(BatchNorm[123]d|SyncBatchNorm|InstanceNorm[123]d|GroupNorm)$")
RNN = ("LSTM", "GRU", "RNN")


def _dims(shape) -> str:
    return "×".join("?" if d is None else str(d) for d in shape)


def _kind(module) -> str:
    return getattr(module, "original_name", None) or type(module).__name__


def _tensor(module, name: str):
    t = getattr(module, name, None)
    return t if t is not None and hasattr(t, "shape") and hasattr(t, "dim") else None


def _groups(module, node) -> Optional[int]:
    g = getattr(module, "groups", None)
    if not isinstance(g, int):
        g = node.attrs.get("groups")
    return g if isinstance(g, int) and g > 0 else None


def expectation(module, node) -> Optional[tuple]:
    """What a layer's weights say its (first) input must hold:
    ``(axis, expected, noun, weight_text)``, ``expected`` an int or, for LayerNorm, the
    trailing dims (a tuple); None for a layer this module does not check."""
    kind = _kind(module)
    if CONV.match(kind):
        w = _tensor(module, "weight")
        groups = _groups(module, node)
        if w is None or w.dim() < 3 or groups is None:
            return None
        return 1, int(w.shape[1]) * groups, "input channels", \
            f"its weight is {_dims(w.shape)}" + (f", groups={groups}" if groups > 1 else "")
    if CONV_T.match(kind):
        w = _tensor(module, "weight")
        if w is None or w.dim() < 3:
            return None
        return 1, int(w.shape[0]), "input channels", f"its weight is {_dims(w.shape)}"
    if NORM_C.match(kind):
        for name in ("weight", "running_mean"):
            w = _tensor(module, name)
            if w is not None and w.dim() == 1:
                return 1, int(w.shape[0]), "channels", f"its {name} has {int(w.shape[0])}"
        return None
    if kind == "Linear":
        w = _tensor(module, "weight")
        if w is None or w.dim() != 2:
            return None
        return -1, int(w.shape[1]), "input features", f"its weight is {_dims(w.shape)}"
    if kind in RNN:
        w = _tensor(module, "weight_ih_l0")
        if w is None or w.dim() != 2:
            return None
        return -1, int(w.shape[1]), "input features", f"its weight_ih_l0 is {_dims(w.shape)}"
    if kind == "MultiheadAttention":
        for name in ("in_proj_weight", "q_proj_weight"):
            w = _tensor(module, name)
            if w is not None and w.dim() == 2:
                return -1, int(w.shape[1]), "query features", f"its {name} is {_dims(w.shape)}"
        return None
    if kind == "LayerNorm":
        w = _tensor(module, "weight")
        if w is None or w.dim() < 1:
            return None
        return -w.dim(), tuple(int(d) for d in w.shape), "trailing dims", f"its weight is {_dims(w.shape)}"
    return None


def mismatch(module, node, shape) -> Optional[tuple]:
    """``(expected_text, got_text)`` when ``shape`` (the layer's first input, in the
    source's own layout, batch first) disagrees with the layer's weights; else None."""
    exp = expectation(module, node)
    if exp is None or shape is None:
        return None
    axis, expected, noun, weight = exp
    rank = len(shape)
    if isinstance(expected, tuple):
        if rank < len(expected):
            got = None
        else:
            got = tuple(shape[axis:])
            if any(d is None for d in got) or got == expected:
                return None
        return (f"expects its input to end in {_dims(expected)} ({weight})",
                f"{_dims(got)}" if got is not None else f"rank {rank}")
    if axis == 1 and rank < 2:
        return None
    got = shape[axis]
    if got is None or got == expected:
        return None
    if expected == 1:
        noun = noun[:-1]  # "1 input channel"
    return f"expects {expected} {noun} ({weight})", str(got)


def _input_text(input_shape) -> str:
    shapes = [input_shape] if all(isinstance(d, int) for d in input_shape) else list(input_shape)
    return " ".join(",".join(str(int(d)) for d in s) for s in shapes)


def _count(dims) -> Optional[int]:
    out = 1
    for d in dims:
        if not isinstance(d, int) or d < 0:
            return None
        out *= d
    return out


def _reshape_problem(graph: Graph, node, batch: Optional[int]) -> Optional[tuple]:
    """``(refusal, note)`` for a reshape whose input holds a number of values its target
    cannot take: not a multiple of the target's sizes (torch refuses it: a wrong input
    shape), or a multiple other than one (each sample becomes several rows)."""
    target = node.attrs.get("target_shape")
    shape = graph.shape_of(node.inputs[0]) if node.inputs else None
    out = node.output_shape
    if not isinstance(target, (tuple, list)) or not target or shape is None or len(shape) < 2 \
            or shape[0] is not None or out is None or out[0] is not None:
        return None  # only a reshape between batch-first tensors (a seq-first (T, N, F) one keeps T first)
    values = _count(shape[1:])
    known = _count([t for t in target if t != -1])
    if not values or not known:
        return None
    source = graph.display_shape(shape)[1:]
    block = f"{known:,}" if len(target) == 1 else f"{_dims(target)} ({known:,} values)"
    where = f"`{node.name}` reshapes {_dims(source)} ({values:,} values a sample) into blocks of {block}"
    total = (batch or 1) * values
    if total % known:
        return f"{where}, which torch refuses: {total:,} values are no multiple of {known:,}", None
    if -1 not in target and values != known and batch:
        return None, (f"{where}: a batch of {batch} becomes {total // known:,} rows, and shapes after it are "
                      "per row (a model that folds samples, or one sized for another input shape)")
    return None


#: Modules whose reading from a traced TorchScript module's ATen ops (its attributes are gone) gives
#: exact output shapes. Past any other module read so (a traced ``nn.MultiheadAttention`` is read as
#: its input projection, 3× too wide), shapes are not trusted enough to refuse a file over.
TRACE_EXACT = re.compile(r"^(Conv(Transpose)?[123]d|Linear|BatchNorm[123]d|SyncBatchNorm|InstanceNorm[123]d|"
                         r"GroupNorm|LayerNorm|Dropout[123]?d?|AlphaDropout|(Max|Avg|AdaptiveMax|AdaptiveAvg)Pool"
                         r"[123]d|Flatten|Identity|ReLU6?|LeakyReLU|P?ReLU|GELU|SiLU|Mish|ELU|SELU|CELU|Sigmoid|"
                         r"Tanh|Softmax|LogSoftmax|Hardswish|Hardsigmoid|Hardtanh|Softplus|Upsample(Nearest|"
                         r"Bilinear)?2d|Upsample|(Zero|Constant|Reflection|Replication)Pad[123]d)$")
UNREAD = "module attributes unreadable"


def _output_agrees(module, node, graph: Graph) -> bool:
    """Whether a layer's inferred output has the size its weights give it (a check on the
    inference itself, so that a misread layer cannot make a right input shape look wrong)."""
    kind = _kind(module)
    out = graph.display_shape(node.output_shape)
    if out is None or len(out) < 2:
        return out is not None
    if CONV.match(kind) or CONV_T.match(kind) or kind == "Linear":
        w = _tensor(module, "weight")
        if w is None or w.dim() < 2:
            return True
        if CONV_T.match(kind):
            groups = _groups(module, node)
            size = int(w.shape[1]) * groups if groups else None
        else:
            size = int(w.shape[0])
        got = out[-1] if kind == "Linear" else out[1]
        return size is None or got is None or got == size
    if kind == "MultiheadAttention":
        proj = getattr(module, "out_proj", None)
        w = _tensor(proj, "weight") if proj is not None else None
        return w is None or out[-1] in (None, int(w.shape[0]))
    if NORM_C.match(kind) or kind == "LayerNorm":
        src = graph.shape_of(node.inputs[0]) if node.inputs else None
        return src is not None and tuple(src) == tuple(node.output_shape)
    return True


def input_shape_problems(graph: Graph, root, input_shape) -> tuple:
    """``(problem, notes)``: the first layer of ``graph`` (built from the module ``root``,
    TorchScript or live, for ``input_shape``) whose input disagrees with its weights, or
    whose reshape torch would refuse, said as one problem line (None if none does); and
    notes on reshapes that change the number of samples.

    Only shapes the inference is sure of are held against the weights: a node's output is
    trusted when its inputs are, its op and shapes are known, a layer with weights gives
    the output size they say (:func:`_output_agrees`), and a module read from its ATen ops
    alone is one of :data:`TRACE_EXACT`. Past an untrusted node nothing is refused."""
    modules = dict(root.named_modules())
    batch = None
    if input_shape:
        first = input_shape if all(isinstance(d, int) for d in input_shape) else input_shape[0]
        batch = int(first[0]) if first else None
    given = f"--input-shape {_input_text(input_shape)}: " if input_shape else ""
    notes = []
    trusted = set(graph.inputs)
    for node in graph.nodes.values():
        if node.op == "input" or not node.inputs:
            continue
        if not all(split_ref(r)[0] in trusted for r in node.inputs):
            continue
        base = node.name.split("@", 1)[0]
        module = modules.get(base) if base else None
        if node.op == "reshape":
            found = _reshape_problem(graph, node, batch)
            if found and found[0]:
                return given + found[0], notes
            if found:
                notes.append(found[1])
        elif module is not None:
            problem = _layer_problem(graph, node, module, batch)
            if problem:
                return given + problem, notes
        if node.op == "unknown" or not node.output_shapes or any(s is None for s in node.output_shapes):
            continue
        if module is not None:
            if any(n.startswith(UNREAD) for n in node.notes) and not TRACE_EXACT.match(_kind(module)):
                continue
            if not _output_agrees(module, node, graph):
                continue
        trusted.add(node.name)
    return None, notes


def _layer_problem(graph: Graph, node, module, batch: Optional[int]) -> Optional[str]:
    ref = node.inputs[0]
    shape = graph.display_shape(graph.shape_of(ref))
    if shape is None:
        return None
    shape = tuple(shape)
    if shape and shape[0] is None and batch is not None:
        shape = (batch, *shape[1:])
    found = mismatch(module, node, shape)
    if found is None:
        return None
    expected, got = found
    label = f"{_kind(module)} `{node.name}`"
    producer = graph.nodes.get(split_ref(ref)[0])
    if producer is not None and producer.op == "input":
        where = f"the input has {got}" if len(graph.inputs) < 2 else f"input `{producer.name}` has {got}"
    else:
        who = producer.name if producer is not None else ref
        where = f"the input shape gives it {got} (`{who}` outputs {_dims(shape)})"
    return f"{label} {expected}, {where}"


def check_input_shape(graph: Graph, root, input_shape, source) -> None:
    """Refuse (:class:`~modellint.errors.InputError` naming ``source``) a graph whose
    given ``input_shape`` disagrees with a layer's stored weights or makes a reshape
    torch would refuse; note a reshape that changes the number of samples."""
    if input_shape is None:
        return
    problem, notes = input_shape_problems(graph, root, input_shape)
    if problem:
        raise InputError(source, problem)
    graph.notes.extend(n for n in notes if n not in graph.notes)


__all__ = ["check_input_shape", "expectation", "input_shape_problems", "mismatch"]
