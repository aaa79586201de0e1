"""The canonical op vocabulary and what each op does to shapes, parameters,
compute and the receptive field.

One table, :data:`OPS`, holds one :class:`OpSpec` per canonical op. Adapters map
their framework's layers to these ops and canonical attributes; everything else
(analyses, rules, reports) asks this table instead of branching on layer types.

Canonical attributes (all optional unless the op needs them)

=================  ==========================================================
``rank``           number of spatial dims (1, 2, 3) of a conv or pool
``filters``        output channels of a conv / separable conv
``units``          output features of a dense layer or RNN
``kernel``         tuple of kernel sizes, one per spatial dim
``strides``        tuple of strides
``dilation``       tuple of dilation rates
``padding``        ``"same"``, ``"valid"``, ``"causal"`` or per-dim ``((lo, hi), ...)``
``ceil_mode``      pools: round the output length up (PyTorch ``ceil_mode=True``)
``output_padding`` transposed convs: extra size added to one side of the output
``groups``         grouped convolution
``depth_multiplier`` depthwise / separable convs
``use_bias``       bool
``activation``     the function fused in the source layer (``"linear"`` if none)
``function``       for ``activation`` nodes: ``relu``, ``softmax``, ...
``rate``           dropout rate
``axis``           normalisation / concat axis, canonical layout
``data_format``    the layer's own layout where it says (``channels_last`` ops in a
                   ``channels_first`` graph read the source axes)
``output_shape``   attention output feature dims (int or tuple; default: the query's)
``return_attention_scores`` attention also outputs ``(batch, heads, Tq, Tk)``
=================  ==========================================================

Shapes are canonical: batch first (``None``), channels last.

Conventions for cost: 1 multiply-add = 1 MAC; FLOPs = 2 x MACs. Only layers with
weights (conv, dense, RNN, attention) and the pairwise products of attention are
counted; element-wise ops, normalisation and pooling count zero MACs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .graph import FeaturesLast

Shape = tuple


class ShapeError(ValueError):
    """Shape inference could not proceed (bad attrs or incompatible inputs)."""


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

def _prod(values) -> Optional[int]:
    out = 1
    for v in values:
        if v is None:
            return None
        out *= int(v)
    return out


def _tuple(value, n: int) -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) == n:
            return tuple(value)
        if len(value) == 1:
            return tuple(value) * n
    return (value,) * n


def conv_out_len(length, kernel, stride, dilation, padding, ceil_mode=False) -> Optional[int]:
    """Output length of a conv/pool window along one axis (Keras/TF rules;
    ``ceil_mode`` as PyTorch pools: round up, but the last window must start
    inside the input or its left padding)."""
    if length is None:
        return None
    eff = (kernel - 1) * dilation + 1
    if padding == "same" or padding == "causal":
        return -(-length // stride)
    if ceil_mode and not isinstance(padding, (tuple, list)):
        padding = (0, 0)
    if isinstance(padding, (tuple, list)):
        lo, hi = padding
        span = length + lo + hi - eff
        if span < 0:
            raise ShapeError(f"window of {eff} does not fit an axis of length {length + lo + hi}")
        if not ceil_mode:
            return span // stride + 1
        out = -(-span // stride) + 1
        return out - 1 if (out - 1) * stride >= length + lo else out
    # valid
    if length < eff:
        raise ShapeError(f"window of {eff} does not fit an axis of length {length}")
    return (length - eff) // stride + 1


def deconv_out_len(length, kernel, stride, dilation, padding, output_padding=None) -> Optional[int]:
    if length is None:
        return None
    eff = (kernel - 1) * dilation + 1
    if isinstance(padding, (tuple, list)):  # explicit (PyTorch/ONNX): output_padding adds to the end
        return (length - 1) * stride + eff - padding[0] - padding[1] + (output_padding or 0)
    if output_padding is None:
        if padding == "same":
            return length * stride
        return length * stride + max(eff - stride, 0)
    pad = (eff // 2) if padding == "same" else 0
    return (length - 1) * stride + eff - 2 * pad + output_padding


def _spatial(shape: Shape) -> tuple:
    return tuple(shape[1:-1])


def _channels(shape: Shape):
    return shape[-1]


def _one(in_shapes) -> Shape:
    if not in_shapes or in_shapes[0] is None:
        raise ShapeError("input shape unknown")
    return in_shapes[0]


def to_source(shape: Optional[Shape], layout: str) -> Optional[Shape]:
    """A canonical (channels-last) shape in the source layout (a :class:`FeaturesLast` one is already)."""
    if shape is None or layout != "channels_first" or len(shape) < 3 or isinstance(shape, FeaturesLast):
        return shape
    return (shape[0], shape[-1], *shape[1:-1])


def to_canonical(shape: Optional[Shape], layout: str) -> Optional[Shape]:
    """A source-layout shape in the canonical (channels-last) layout (a :class:`FeaturesLast` one is already)."""
    if shape is None or layout != "channels_first" or len(shape) < 3 or isinstance(shape, FeaturesLast):
        return shape
    return (shape[0], *shape[2:], shape[1])


def canon_axis(axis, rank: int, layout: str = "channels_first"):
    """A source axis (or list of axes) as a negative canonical (channels-last) axis."""
    if isinstance(axis, (list, tuple)):
        return [canon_axis(a, rank, layout) for a in axis]
    axis = int(axis)
    if axis < 0:
        axis += rank
    if layout == "channels_first" and rank >= 3:
        axis = rank - 1 if axis == 1 else axis - 1 if axis >= 2 else axis
    return axis - rank


# ---------------------------------------------------------------------------
# shape inference: f(attrs, input_shapes) -> list of output shapes
# ---------------------------------------------------------------------------

def _shape_identity(a, s):
    return [_one(s)]


def _shape_conv(a, s):
    x = _one(s)
    r = a.get("rank", len(x) - 2)
    k, st, d = _tuple(a["kernel"], r), _tuple(a.get("strides", 1), r), _tuple(a.get("dilation", 1), r)
    pad = a.get("padding", "valid")
    pads = pad if isinstance(pad, (tuple, list)) else [pad] * r
    spatial = [conv_out_len(n, k[i], st[i], d[i], pads[i]) for i, n in enumerate(_spatial(x))]
    out_c = a.get("filters")
    if out_c is None:  # depthwise
        c = _channels(x)
        out_c = None if c is None else c * a.get("depth_multiplier", 1)
    return [(x[0], *spatial, out_c)]


def _shape_conv_transpose(a, s):
    x = _one(s)
    r = a.get("rank", len(x) - 2)
    k, st, d = _tuple(a["kernel"], r), _tuple(a.get("strides", 1), r), _tuple(a.get("dilation", 1), r)
    op = a.get("output_padding")
    op = _tuple(op, r) if op is not None else (None,) * r
    pad = a.get("padding", "valid")
    pads = pad if isinstance(pad, (tuple, list)) else [pad] * r
    spatial = [deconv_out_len(n, k[i], st[i], d[i], pads[i], op[i]) for i, n in enumerate(_spatial(x))]
    return [(x[0], *spatial, a["filters"])]


def _shape_pool(a, s):
    x = _one(s)
    r = a.get("rank", len(x) - 2)
    k = _tuple(a["pool_size"], r)
    st = _tuple(a.get("strides") or a["pool_size"], r)
    d = _tuple(a.get("dilation", 1), r)
    pad = a.get("padding", "valid")
    pads = pad if isinstance(pad, (tuple, list)) else [pad] * r
    ceil = bool(a.get("ceil_mode"))
    spatial = [conv_out_len(n, k[i], st[i], d[i], pads[i], ceil) for i, n in enumerate(_spatial(x))]
    return [(x[0], *spatial, _channels(x))]


def _shape_global_pool(a, s):
    x = _one(s)
    if a.get("keepdims"):
        return [(x[0], *([1] * (len(x) - 2)), x[-1])]
    return [(x[0], x[-1])]


def _shape_dense(a, s):
    x = _one(s)
    return [(*x[:-1], a["units"])]


def _shape_flatten(a, s):
    x = _one(s)
    return [(x[0], _prod(x[1:]))]


def _shape_reshape(a, s):
    x = _one(s)
    target = list(a["target_shape"])
    if -1 in target:
        total = _prod(x[1:])
        known = _prod([t for t in target if t != -1])
        target[target.index(-1)] = None if total is None or not known else total // known
    return [(x[0], *target)]


def _shape_permute(a, s):
    x = _one(s)
    dims = a["dims"]  # 1-based, as in Keras
    return [(x[0], *[x[d] for d in dims])]


def _broadcast(shapes) -> Shape:
    rank = max(len(sh) for sh in shapes)
    out = []
    for i in range(rank):
        dims = [sh[i - rank + len(sh)] for sh in shapes if i - rank + len(sh) >= 0]
        known = [d for d in dims if d not in (None, 1)]
        if known:
            out.append(max(known))
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def _shape_elementwise(a, s):
    if any(sh is None for sh in s):
        raise ShapeError("input shape unknown")
    return [_broadcast(s)]


def _shape_concat(a, s):
    if any(sh is None for sh in s):
        raise ShapeError("input shape unknown")
    axis = a.get("axis", -1)
    rank = len(s[0])
    axis = axis % rank
    out = list(s[0])
    total = 0
    for sh in s:
        if sh[axis] is None:
            total = None
            break
        total += sh[axis]
    out[axis] = total
    return [tuple(out)]


def _shape_pad(a, s):
    x = _one(s)
    pads = a["padding"]  # ((lo, hi), ...) per spatial dim
    spatial = [None if n is None else n + lo + hi for n, (lo, hi) in zip(_spatial(x), pads)]
    return [(x[0], *spatial, x[-1])]


def _shape_crop(a, s):
    x = _one(s)
    crops = a["cropping"]
    spatial = [None if n is None else n - lo - hi for n, (lo, hi) in zip(_spatial(x), crops)]
    return [(x[0], *spatial, x[-1])]


def _shape_upsample(a, s):
    x = _one(s)
    size = _tuple(a["size"], len(x) - 2)
    spatial = [None if n is None else n * f for n, f in zip(_spatial(x), size)]
    return [(x[0], *spatial, x[-1])]


def _shape_resize(a, s):
    x = _one(s)
    return [(x[0], a["height"], a["width"], x[-1])]


def _shape_augment(a, s):
    x = _one(s)
    if a.get("height") is not None:  # RandomCrop-style layers set the output size
        return [(x[0], a["height"], a["width"], x[-1])]
    return [x]


def _shape_embedding(a, s):
    x = _one(s)
    return [(*x, a["output_dim"])]


def _shape_rnn(a, s):
    x = _one(s)
    bi = bool(a.get("bidirectional"))
    merge = a.get("merge_mode", "concat") if bi else "concat"
    units = a["units"] * (2 if bi and merge == "concat" else 1)
    out = (x[0], x[1], units) if a.get("return_sequences") else (x[0], units)
    outs = [out, out] if bi and merge is None else [out]  # merge_mode=None: forward, backward
    if a.get("return_state"):
        n_states = {"lstm": 2}.get(a.get("cell"), 1) * (2 if a.get("bidirectional") else 1)
        outs += [(x[0], a["units"])] * n_states
    return outs


def _attention_out(a, q) -> tuple:
    """Output feature dims of attention: ``output_shape`` (int or tuple) or the query's."""
    out = a.get("output_shape") or a.get("output_dim")
    if out is None:
        return (q[-1],)
    return tuple(out) if isinstance(out, (list, tuple)) else (out,)


def _shape_attention(a, s):
    q = _one(s)
    outs = [(*q[:-1], *_attention_out(a, q))]
    if a.get("return_attention_scores"):  # (batch, heads, query steps, key steps)
        k = s[2] if len(s) > 2 and s[2] is not None else s[1] if len(s) > 1 and s[1] is not None else q
        outs.append((q[0], a["num_heads"], q[1], k[1]))
    return outs


def _shape_dot(a, s):
    x, y = s[0], s[1]
    axes = a.get("axes", -1)
    axes = _tuple(axes, 2)
    ax0, ax1 = axes[0] % len(x), axes[1] % len(y)
    out = [d for i, d in enumerate(x) if i != ax0] + [d for i, d in enumerate(y[1:], 1) if i != ax1]
    if len(out) == 1:
        out.append(1)
    return [tuple(out)]


def _shape_unknown(a, s):
    raise ShapeError("shape of an unknown layer cannot be inferred")


# ---------------------------------------------------------------------------
# parameters: f(attrs, input_shapes, output_shapes) -> (trainable, non_trainable)
# ---------------------------------------------------------------------------

def _params_none(a, s, o):
    return 0, 0


def _need(value, what):
    if value is None:
        raise ShapeError(f"{what} unknown")
    return value


def _params_conv(a, s, o):
    x = _one(s)
    c_in = _need(_channels(x), "input channels")
    k = _prod(_tuple(a["kernel"], a.get("rank", len(x) - 2)))
    groups = a.get("groups", 1)
    w = k * (c_in // groups) * a["filters"]
    return w + (a["filters"] if a.get("use_bias", True) else 0), 0


def _params_conv_transpose(a, s, o):
    x = _one(s)
    c_in = _need(_channels(x), "input channels")
    k = _prod(_tuple(a["kernel"], a.get("rank", len(x) - 2)))
    groups = a.get("groups", 1)
    w = k * c_in * (a["filters"] // groups)
    return w + (a["filters"] if a.get("use_bias", True) else 0), 0


def _params_depthwise(a, s, o):
    x = _one(s)
    c_in = _need(_channels(x), "input channels")
    k = _prod(_tuple(a["kernel"], a.get("rank", len(x) - 2)))
    dm = a.get("depth_multiplier", 1)
    return k * c_in * dm + (c_in * dm if a.get("use_bias", True) else 0), 0


def _params_separable(a, s, o):
    x = _one(s)
    c_in = _need(_channels(x), "input channels")
    k = _prod(_tuple(a["kernel"], a.get("rank", len(x) - 2)))
    dm = a.get("depth_multiplier", 1)
    return k * c_in * dm + c_in * dm * a["filters"] + (a["filters"] if a.get("use_bias", True) else 0), 0


def _params_dense(a, s, o):
    c_in = _need(_one(s)[-1], "input features")
    return c_in * a["units"] + (a["units"] if a.get("use_bias", True) else 0), 0


def _norm_size(a, x):
    axes = a.get("axis", -1)
    axes = axes if isinstance(axes, (list, tuple)) else [axes]
    return _need(_prod(x[ax] for ax in axes), "normalised axis")


def _params_batchnorm(a, s, o):
    n = _norm_size(a, _one(s))
    return n * (int(a.get("center", True)) + int(a.get("scale", True))), 2 * n


def _params_layernorm(a, s, o):
    n = _norm_size(a, _one(s))
    return n * (int(a.get("center", True)) + int(a.get("scale", True))), 0


def _params_groupnorm(a, s, o):
    n = _need(_channels(_one(s)), "channels")
    return n * (int(a.get("center", True)) + int(a.get("scale", True))), 0


def _params_normalization(a, s, o):
    # Keras Normalization: mean and variance per feature along `axis`, plus a
    # count; none of them are weights when mean and variance were given as constants.
    if a.get("mean") is not None:
        return 0, 0
    n = _norm_size(a, _one(s))
    return 0, 2 * n + 1


def _params_activation(a, s, o):
    if a.get("function") != "prelu":
        return 0, 0
    x = _one(s)
    shared = set(a.get("shared_axes") or [])
    dims = [d for i, d in enumerate(x[1:], 1) if i not in shared]
    return _need(_prod(dims), "prelu shape"), 0


def _params_scale(a, s, o):
    return _need(_channels(_one(s)), "channels"), 0


def _params_embedding(a, s, o):
    return a["input_dim"] * a["output_dim"], 0


def _params_rnn(a, s, o):
    f = _need(_one(s)[-1], "input features")
    u = a["units"]
    cell = a.get("cell", "simple")
    bias = a.get("use_bias", True)
    dirs = 2 if a.get("bidirectional") else 1
    total = 0
    for _ in range(int(a.get("num_layers") or 1)):  # PyTorch's num_layers: layer i > 0 reads units * dirs
        if cell == "lstm":  # cuDNN's LSTM keeps an input and a recurrent bias: 8×units
            n = 4 * (u * f + u * u) + ((8 if a.get("double_bias") else 4) * u if bias else 0)
        elif cell == "gru":
            b = (6 * u if a.get("reset_after", True) else 3 * u) if bias else 0
            n = 3 * (u * f + u * u) + b
        else:
            n = u * f + u * u + (u if bias else 0)
        total += n * dirs
        f = u * dirs
    return total, 0


def _params_attention(a, s, o):
    q = _one(s)
    v = s[1] if len(s) > 1 and s[1] is not None else q
    k = s[2] if len(s) > 2 and s[2] is not None else v
    h, kd = a["num_heads"], a["key_dim"]
    vd = a.get("value_dim") or kd
    out = _need(_prod(_attention_out(a, q)), "attention output size")
    b = a.get("use_bias", True)
    n = q[-1] * h * kd + (h * kd if b else 0)
    n += k[-1] * h * kd + (h * kd if b else 0)
    n += v[-1] * h * vd + (h * vd if b else 0)
    n += h * vd * out + (out if b else 0)
    return n, 0


# ---------------------------------------------------------------------------
# MACs: f(attrs, input_shapes, output_shapes) -> int (batch 1)
# ---------------------------------------------------------------------------

def _macs_none(a, s, o):
    return 0


def _macs_conv(a, s, o):
    x, y = _one(s), o[0]
    k = _prod(_tuple(a["kernel"], a.get("rank", len(x) - 2)))
    out_pos = _prod(_spatial(y)) or 0
    return out_pos * k * (x[-1] // a.get("groups", 1)) * a["filters"]


def _macs_conv_transpose(a, s, o):
    x = _one(s)
    k = _prod(_tuple(a["kernel"], a.get("rank", len(x) - 2)))
    return (_prod(_spatial(x)) or 0) * k * x[-1] * (a["filters"] // a.get("groups", 1))


def _macs_depthwise(a, s, o):
    x, y = _one(s), o[0]
    k = _prod(_tuple(a["kernel"], a.get("rank", len(x) - 2)))
    return (_prod(_spatial(y)) or 0) * k * y[-1]


def _macs_separable(a, s, o):
    x, y = _one(s), o[0]
    k = _prod(_tuple(a["kernel"], a.get("rank", len(x) - 2)))
    mid = x[-1] * a.get("depth_multiplier", 1)
    return (_prod(_spatial(y)) or 0) * (k * mid + mid * a["filters"])


def _macs_dense(a, s, o):
    x = _one(s)
    return (_prod(x[1:-1]) or 0 if len(x) > 2 else 1) * x[-1] * a["units"]


def _macs_dot(a, s, o):
    """A batched dot product: one multiply-add per output value and contracted index (batch 1)."""
    x, y = _one(s), o[0]
    ax = _tuple(a.get("axes", -1), 2)[0]
    return (_prod(y[1:]) or 0) * (x[ax % len(x)] or 0)


def _macs_rnn(a, s, o):
    """Steps x each layer's per-step products (PyTorch's ``num_layers``: layer i > 0 reads the
    previous layer's hidden state of every direction; ``proj_size``: an LSTM's projected state)."""
    x = _one(s)
    steps, f, u = x[1] or 0, x[-1], a["units"]
    gates = {"lstm": 4, "gru": 3}.get(a.get("cell"), 1)
    dirs = 2 if a.get("bidirectional") else 1
    r = a.get("proj_size") or u  # the recurrent state's size
    per_step = 0
    for _ in range(int(a.get("num_layers") or 1)):
        per_step += dirs * (gates * (f * u + r * u) + (r * u if a.get("proj_size") else 0))
        f = r * dirs
    return steps * per_step


def _macs_attention(a, s, o):
    q = _one(s)
    v = s[1] if len(s) > 1 and s[1] is not None else q
    h, kd = a["num_heads"], a["key_dim"]
    vd = a.get("value_dim") or kd
    out = _prod(_attention_out(a, q)) or 0
    tq, tv = _prod(q[1:-1]) or 0, _prod(v[1:-1]) or 0
    proj = tq * q[-1] * h * kd + tv * v[-1] * h * (kd + vd) + tq * h * vd * out
    return proj + h * tq * tv * (kd + vd)


# ---------------------------------------------------------------------------
# receptive field: f(attrs, rank) -> per-dim list of (kernel, stride, dilation)
# A stride < 1 (as a fraction) means upsampling. None: the op ends spatial
# structure (the output no longer has a receptive field on the input grid).
# ---------------------------------------------------------------------------

def _rf_window(a, rank):
    k = _tuple(a["kernel"], rank)
    st = _tuple(a.get("strides", 1), rank)
    d = _tuple(a.get("dilation", 1), rank)
    return [(k[i], st[i], d[i]) for i in range(rank)]


def _rf_pool(a, rank):
    k = _tuple(a["pool_size"], rank)
    st = _tuple(a.get("strides") or a["pool_size"], rank)
    d = _tuple(a.get("dilation", 1), rank)
    return [(k[i], st[i], d[i]) for i in range(rank)]


def _rf_transpose(a, rank):
    k = _tuple(a["kernel"], rank)
    st = _tuple(a.get("strides", 1), rank)
    return [(k[i], 1.0 / st[i], 1) for i in range(rank)]


def _rf_upsample(a, rank):
    size = _tuple(a["size"], rank)
    return [(1, 1.0 / size[i], 1) for i in range(rank)]


def _rf_identity(a, rank):
    return [(1, 1, 1)] * rank


# ---------------------------------------------------------------------------
# ops read from traced PyTorch functions (issue 12): they read the source layout
# (``source_axes``), so ``dim`` attrs are source dims, non-negative
# ---------------------------------------------------------------------------

def _shape_split(a, s):
    x = list(_one(s))
    d = a["dim"]
    if a.get("squeeze"):  # unbind: one slice per index, the dim removed
        return [tuple(x[:d] + x[d + 1:])] * a["parts"]
    return [tuple(x[:d] + [n] + x[d + 1:]) for n in a["sizes"]]


def _shape_transpose(a, s):
    x = _one(s)
    return [tuple(x[d] for d in a["dims"])]


def _shape_reduce(a, s):
    x = _one(s)
    dims = set(a["dims"])
    if a.get("keepdims"):
        return [tuple(1 if i in dims else n for i, n in enumerate(x))]
    return [tuple(n for i, n in enumerate(x) if i not in dims)]


def _shape_sort(a, s):
    x = list(_one(s))
    d = a["dim"]
    if a.get("k") is not None:
        x[d] = a["k"]
    return [tuple(x)] * (1 if a.get("indices_only") else 2)


def _shape_stack(a, s):
    x = list(_one(s))
    d = a["dim"]
    return [tuple(x[:d] + [len(s)] + x[d:])]


def _shape_sdpa(a, s):
    q = _one(s)
    v = s[2] if len(s) > 2 and s[2] is not None else q
    return [(*q[:-1], v[-1])]


def _macs_sdpa(a, s, o):
    """q k^T and the weighted sum of v: (batch 1) heads x Tq x Tk x (key dim + value dim)."""
    q = _one(s)
    k = s[1] if len(s) > 1 and s[1] is not None else q
    v = s[2] if len(s) > 2 and s[2] is not None else k
    return (_prod(q[1:-1]) or 0) * (k[-2] or 0) * (q[-1] + v[-1])


def einsum_sizes(equation: str, shapes: list) -> dict:
    """{index letter: size} of an einsum (``...`` broadcast dims as letters of their own)."""
    lhs = equation.replace(" ", "").split("->")[0]
    sizes: dict = {}
    for term, shape in zip(lhs.split(","), shapes):
        if shape is None:
            continue
        letters = list(term.replace("...", ""))
        extra = len(shape) - len(letters)
        if "..." in term:
            at = term.index("...")
            letters = letters[:at] + [f"_{i}" for i in range(extra)] + letters[at:]
        for letter, n in zip(letters, shape):
            if n is not None and (sizes.get(letter) in (None, 1)):
                sizes[letter] = n
            else:
                sizes.setdefault(letter, n)
    return sizes


def _einsum_out(equation: str, shapes: list) -> tuple:
    eq = equation.replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    sizes = einsum_sizes(eq, shapes)
    if not _:
        letters = sorted(ch for ch in set(lhs.replace(",", "").replace("...", "")) if lhs.count(ch) == 1)
        rhs = letters
    out = []
    for letter in (rhs if isinstance(rhs, list) else list(rhs.replace("...", "."))):
        if letter == ".":
            out.extend(sizes[k] for k in sorted(k for k in sizes if k.startswith("_")))
        else:
            out.append(sizes.get(letter))
    return tuple(out)


def _shape_einsum(a, s):
    return [_einsum_out(a["equation"], a["operand_shapes"])]


def _macs_einsum(a, s, o):
    """One multiply-add per combination of index values (batch 1: an unknown size counts 1)."""
    if len(a["operand_shapes"]) < 2:
        return 0
    sizes = einsum_sizes(a["equation"], a["operand_shapes"])
    return _prod(1 if n is None else n for n in sizes.values())


def _macs_window_attention(a, s, o):
    """Swin's shifted-window attention: q/k/v and output projections at every position,
    and the pairwise products within each window only."""
    x = _one(s)
    c = x[-1]
    positions = _prod(x[1:-1]) or 0
    area = _prod(a["window_size"])
    return positions * (4 * c * c + 2 * area * c)


# ---------------------------------------------------------------------------
# Keras layers beyond the classic set (issue 12): convolutional LSTMs, attention
# without projections, slicing, keras-hub's position embedding and composite layers
# ---------------------------------------------------------------------------

def _shape_conv_rnn(a, s):
    """ConvLSTM1D/2D/3D on (batch, time, *spatial, channels): the input conv sets the grid
    (the recurrent conv is 'same', stride 1); (batch, [time,] *grid, filters), then h and c."""
    x = _one(s)
    r = a["conv_rank"]
    k, st, d = _tuple(a["kernel"], r), _tuple(a.get("strides", 1), r), _tuple(a.get("dilation", 1), r)
    grid = tuple(conv_out_len(n, k[i], st[i], d[i], a.get("padding", "valid")) for i, n in enumerate(x[2:-1]))
    step = (x[0], *grid, a["filters"])
    outs = [(x[0], x[1], *grid, a["filters"]) if a.get("return_sequences") else step]
    if a.get("return_state"):
        outs += [step, step]
    return outs


def _params_conv_rnn(a, s, o):
    x = _one(s)
    k = _prod(_tuple(a["kernel"], a["conv_rank"]))
    f, c = a["filters"], _need(x[-1], "input channels")
    return 4 * (k * c * f + k * f * f) + (4 * f if a.get("use_bias", True) else 0), 0


def _macs_conv_rnn(a, s, o):
    x = _one(s)
    k = _prod(_tuple(a["kernel"], a["conv_rank"]))
    grid = _prod(o[-1][1:-1] if a.get("return_state") else (o[0][2:-1] if a.get("return_sequences") else o[0][1:-1]))
    return (x[1] or 0) * (grid or 0) * 4 * k * (x[-1] + a["filters"]) * a["filters"]


def _shape_dot_attention(a, s):
    """Keras Attention / AdditiveAttention: [query (B, Tq, D), value (B, Tv, Dv), key?] ->
    (B, Tq, Dv), and the scores (B, Tq, Tv) with return_attention_scores."""
    q = _one(s)
    v = s[1] if len(s) > 1 and s[1] is not None else q
    outs = [(*q[:-1], v[-1])]
    if a.get("return_attention_scores"):
        outs.append((*q[:-1], v[-2]))
    return outs


def _params_dot_attention(a, s, o):
    if a.get("score_mode") == "concat":   # one scalar weight on the tanh of the sum
        return (1 if a.get("use_scale") else 0) + 1, 0
    if not a.get("use_scale"):
        return 0, 0
    return (_need(_one(s)[-1], "query features") if a.get("additive") else 1), 0


def _macs_dot_attention(a, s, o):
    q = _one(s)
    v = s[1] if len(s) > 1 and s[1] is not None else q
    tq, tv = _prod(q[1:-1]) or 0, v[-2] or 0
    return tq * tv * (q[-1] + v[-1])


def _shape_slice(a, s):
    """``x[key]`` (Keras' GetItem): key items ("slice", start, stop, step) / ("index", i) from
    axis 0 on; the axes after the key are kept."""
    x = _one(s)
    out = []
    for i, item in enumerate(a["key"]):
        n = x[i]
        if item[0] == "index":
            continue
        start, stop, step = item[1:]
        if start is None and stop is None and step in (None, 1):
            out.append(n)
        else:
            out.append(None if n is None else len(range(n)[slice(start, stop, step)]))
    return [(*out, *x[len(a["key"]):])]


def _params_position_embedding(a, s, o):
    return a["sequence_length"] * _need(_one(s)[-1], "features"), 0


def _shape_block(a, s):
    return [tuple(o) if o is not None else None for o in a["output_shapes"]]


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------

# kinds: what role an op plays; rules ask for kinds, not op names.
LEARNABLE = "learnable"  # has weights that transform features (conv, dense, rnn, ...)
NORMALIZATION = "normalization"
ACTIVATION = "activation"
POOLING = "pooling"
RESHAPE = "reshape"  # moves values around without changing them
MERGE = "merge"
REGULARIZATION = "regularization"  # only active in training (dropout, noise)
PREPROCESSING = "preprocessing"  # scaling, resizing, augmentation
IO = "io"
OTHER = "other"


@dataclass(frozen=True)
class OpSpec:
    name: str
    kind: str
    shape: Callable = _shape_identity
    params: Callable = _params_none
    macs: Callable = _macs_none
    rf: Optional[Callable] = _rf_identity  # None: output has no spatial grid
    linear: bool = True  # is the op linear (affine) in its input?
    doc: str = ""
    # True: the op has no data_format; its rules read the source layout's own
    # axes (a Dense acts on the last source axis even in a channels_first model)
    source_axes: bool = False


OPS: dict[str, OpSpec] = {}


def _op(name, kind, doc="", **kw):
    OPS[name] = OpSpec(name=name, kind=kind, doc=doc, **kw)


_op("input", IO, "model input")
_op("conv", LEARNABLE, "convolution (1D/2D/3D, grouped)", shape=_shape_conv, params=_params_conv, macs=_macs_conv, rf=_rf_window)
_op("conv_transpose", LEARNABLE, "transposed convolution", shape=_shape_conv_transpose, params=_params_conv_transpose, macs=_macs_conv_transpose, rf=_rf_transpose)
_op("depthwise_conv", LEARNABLE, "depthwise convolution", shape=_shape_conv, params=_params_depthwise, macs=_macs_depthwise, rf=_rf_window)
_op("separable_conv", LEARNABLE, "depthwise then pointwise convolution", shape=_shape_conv, params=_params_separable, macs=_macs_separable, rf=_rf_window)
_op("dense", LEARNABLE, "fully connected, on the last axis", shape=_shape_dense, params=_params_dense, macs=_macs_dense, source_axes=True)
_op("embedding", LEARNABLE, "lookup table", shape=_shape_embedding, params=_params_embedding, rf=None, linear=False, source_axes=True)
_op("rnn", LEARNABLE, "recurrent layer (simple, LSTM, GRU; maybe bidirectional)", shape=_shape_rnn, params=_params_rnn, macs=_macs_rnn, rf=None, linear=False, source_axes=True)
_op("attention", LEARNABLE, "multi-head attention", shape=_shape_attention, params=_params_attention, macs=_macs_attention, rf=None, linear=False, source_axes=True)
_op("batchnorm", NORMALIZATION, "batch normalisation", params=_params_batchnorm)
_op("layernorm", NORMALIZATION, "layer normalisation", params=_params_layernorm, linear=False)
_op("groupnorm", NORMALIZATION, "group normalisation", params=_params_groupnorm, linear=False)
_op("unitnorm", NORMALIZATION, "unit-norm / L2 normalisation", linear=False)
_op("normalization", PREPROCESSING, "fixed input standardisation (adapted mean/variance)", params=_params_normalization)
_op("rescaling", PREPROCESSING, "fixed input scaling")
_op("resize", PREPROCESSING, "image resizing", shape=_shape_resize, rf=None)
_op("augment", PREPROCESSING, "random augmentation (training only)", shape=_shape_augment)
_op("scale", OTHER, "learnable per-channel scale (LayerScale)", params=_params_scale, source_axes=True)
_op("activation", ACTIVATION, "non-linearity (function in attrs)", params=_params_activation, linear=False)
_op("dropout", REGULARIZATION, "dropout family and noise layers")
_op("pool_max", POOLING, "max pooling", shape=_shape_pool, rf=_rf_pool, linear=False)
_op("pool_avg", POOLING, "average pooling", shape=_shape_pool, rf=_rf_pool)
_op("global_pool", POOLING, "global pooling over all spatial positions", shape=_shape_global_pool, rf=None)
_op("flatten", RESHAPE, "flatten to (batch, features)", shape=_shape_flatten, rf=None)
_op("reshape", RESHAPE, "reshape", shape=_shape_reshape, rf=None, source_axes=True)
_op("permute", RESHAPE, "permute axes", shape=_shape_permute, rf=None, source_axes=True)
_op("repeat", RESHAPE, "repeat a vector along a new time axis",
    shape=lambda a, s: [(_one(s)[0], a["n"], _one(s)[-1])], rf=None, source_axes=True)
_op("pad", RESHAPE, "zero padding", shape=_shape_pad)
_op("crop", RESHAPE, "cropping", shape=_shape_crop)
_op("upsample", RESHAPE, "nearest/bilinear upsampling", shape=_shape_upsample, rf=_rf_upsample)
_op("identity", OTHER, "passes its input through (masking, regularisers, wrappers)")
_op("add", MERGE, "element-wise sum", shape=_shape_elementwise)
_op("subtract", MERGE, "element-wise difference", shape=_shape_elementwise)
_op("multiply", MERGE, "element-wise product", shape=_shape_elementwise, linear=False)
_op("average", MERGE, "element-wise mean", shape=_shape_elementwise)
_op("maximum", MERGE, "element-wise max", shape=_shape_elementwise, linear=False)
_op("minimum", MERGE, "element-wise min", shape=_shape_elementwise, linear=False)
_op("concat", MERGE, "concatenation along an axis", shape=_shape_concat)
_op("dot", MERGE, "batched dot product", shape=_shape_dot, macs=_macs_dot, rf=None, linear=False, source_axes=True)
_op("split", RESHAPE, "split into parts along a dim (chunk, split, unbind)", shape=_shape_split, source_axes=True)
_op("transpose", RESHAPE, "permute axes, the batch axis among them (q/k/v heads first)", shape=_shape_transpose, rf=None, source_axes=True)
_op("stack", MERGE, "stack tensors along a new dim", shape=_shape_stack, rf=None, source_axes=True)
_op("reduce", OTHER, "reduction along dims (mean, sum, max...) other than every position", shape=_shape_reduce, rf=None, linear=False, source_axes=True)
_op("sort", OTHER, "sort or top-k along a dim: values and indices", shape=_shape_sort, rf=None, linear=False, source_axes=True)
_op("elementwise", OTHER, "element-wise math (pow, sqrt, exp, ...; function in attrs)", linear=False)
_op("sdpa", MERGE, "scaled dot-product attention of given q, k, v (no weights)", shape=_shape_sdpa, macs=_macs_sdpa, rf=None, linear=False, source_axes=True)
_op("einsum", MERGE, "Einstein summation (equation in attrs)", shape=_shape_einsum, macs=_macs_einsum, rf=None, linear=False, source_axes=True)
_op("window_attention", LEARNABLE, "shifted-window multi-head attention (Swin)", macs=_macs_window_attention, rf=None, linear=False, source_axes=True)
_op("roi_align", POOLING, "pools a fixed-size map per region of interest (RoIAlign / RoIPool, torchvision's MultiScaleRoIAlign; the number of regions is data-dependent)", rf=None, linear=False)
_op("nms", OTHER, "non-maximum suppression: the indices of the boxes kept (data-dependent count; no weights)", rf=None, linear=False)
_op("paste_masks", OTHER, "instance masks resized to their boxes and pasted into image-sized canvases (Mask R-CNN post-processing; one per box: data-dependent count; no weights)", rf=None, linear=False)
_op("heatmap_keypoints", OTHER, "keypoint coordinates and scores from per-box keypoint heatmaps (Keypoint R-CNN post-processing: each heatmap resized to its box, its argmax; no weights)", rf=None, linear=False)
_op("anchors", OTHER, "anchor / default box generation from the image and feature-map sizes (no weights; output not computed from the values)", rf=None, linear=False)
_op("conv_rnn", LEARNABLE, "convolutional LSTM (ConvLSTM1D/2D/3D)", shape=_shape_conv_rnn, params=_params_conv_rnn, macs=_macs_conv_rnn, rf=None, linear=False)
_op("dot_attention", MERGE, "attention of given query, value (and key) without projections: Keras Attention, AdditiveAttention", shape=_shape_dot_attention, params=_params_dot_attention, macs=_macs_dot_attention, rf=None, linear=False, source_axes=True)
_op("slice", RESHAPE, "x[key]: slices and indices along the leading axes (Keras GetItem)", shape=_shape_slice, rf=None, source_axes=True)
_op("position_embedding", OTHER, "adds a learned embedding per position (keras-hub PositionEmbedding)", params=_params_position_embedding, rf=None, source_axes=True)
_op("block", OTHER, "a layer built of known layers, read as a whole (keras-hub's TransformerEncoder, MBConvBlock...): "
    "shapes and parameters from the built layer, MACs the sum of its sublayers'", shape=_shape_block,
    params=lambda a, s, o: (a["trainable_params"], a["params"] - a["trainable_params"]),
    macs=lambda a, s, o: a.get("macs") or 0, rf=None, linear=False, source_axes=True)
_op("unknown", OTHER, "a layer modellint does not know (custom, Lambda, ...)", shape=_shape_unknown, rf=None, linear=False)


def spec(op: str) -> OpSpec:
    return OPS.get(op, OPS["unknown"])


class _Frame:
    """Graph shapes (canonical) <-> the shapes an op's rules read.

    Most ops read canonical channels-last shapes. In a ``channels_first`` graph an
    op without a data_format (``source_axes``) or one whose ``data_format`` attr
    says ``channels_last`` reads the source layout as it is, and a
    ``TimeDistributed`` op reads one time step: the time axis is source axis 1,
    so it is stripped in the source layout, and the step is made canonical
    again for ops that read channels. A :class:`FeaturesLast` input is its source
    shape already; a node with ``attrs["layout"] == "features_last"`` gives its
    outputs as the op computes them, features last, as :class:`FeaturesLast`.
    """

    def __init__(self, op: str, attrs: dict, layout: str):
        cf = layout == "channels_first"
        own = spec(op).source_axes or attrs.get("data_format") == "channels_last"
        self.layout = layout
        self.td = bool(attrs.get("time_distributed"))
        self.source = cf and (self.td or own)
        self.recanon = cf and self.td and not own
        self.features_last = cf and attrs.get("layout") == "features_last"
        self.steps = None

    def into(self, shapes: list) -> list:
        out = []
        for sh in shapes:
            if sh is not None:
                if self.source:
                    sh = to_source(sh, self.layout)
                if self.td:
                    self.steps = sh[1] if self.steps is None else self.steps
                    sh = (sh[0], *sh[2:])
                if self.recanon:
                    sh = to_canonical(sh, self.layout)
            out.append(sh)
        return out

    def back(self, shapes: list) -> list:
        out = []
        for sh in shapes:
            if sh is not None and self.features_last:
                sh = FeaturesLast(sh) if len(sh) >= 3 else tuple(sh)
            elif sh is not None:
                if self.recanon:
                    sh = to_source(sh, self.layout)
                if self.td:
                    sh = (sh[0], self.steps, *sh[1:])
                if self.source:
                    sh = to_canonical(sh, self.layout)
            out.append(sh)
        return out


def infer_shapes(op: str, attrs: dict, in_shapes: list, layout: str = "channels_last") -> list:
    """Canonical output shapes from canonical input shapes; ``layout`` is the graph's."""
    frame = _Frame(op, attrs, layout)
    return frame.back(spec(op).shape(attrs, frame.into(in_shapes)))


def count_params(op: str, attrs: dict, in_shapes: list, out_shapes: list,
                 layout: str = "channels_last") -> tuple:
    """(trainable, non_trainable) parameters of a layer that is itself trainable."""
    frame = _Frame(op, attrs, layout)
    return spec(op).params(attrs, frame.into(in_shapes), frame.into(out_shapes))


def _batch_first(shapes: list, axis, rank: int) -> list:
    """Shapes of ``rank`` with their batch at axis 0, for a node whose ``batch_axis`` attr says where
    it is in its (source-layout) input: an axis number (a ``(seq, batch, features)`` tensor: 1), or
    None where the tensor has no batch axis of its own (a batch of 1 merged into another axis, as
    ``(seq * batch * heads, ...)``): a batch of 1 is put in front, so every other axis counts; or
    ``(axis, k)`` where a symbolic batch is merged into an axis holding ``k`` per sample."""
    out = []
    for sh in shapes:
        if sh is None or len(sh) != rank:
            out.append(sh)
        elif axis is None:
            out.append((1, *sh))
        elif isinstance(axis, (tuple, list)):  # (axis, k): the batch merged into an axis of k * batch
            out.append((1, *sh[:axis[0]], axis[1], *sh[axis[0] + 1:]))
        else:
            out.append((sh[axis], *sh[:axis], *sh[axis + 1:]))
    return out


def _with_sizes(shape, sizes, rank: int):
    """``shape`` (of ``rank``) with its unknown dims at the axes of ``sizes`` (``[(axis, size)]``) filled."""
    if shape is None or len(shape) != rank:
        return shape
    shape = list(shape)
    for axis, n in sizes:
        if 0 <= axis < rank and shape[axis] is None:
            shape[axis] = n
    return tuple(shape)


def count_macs(op: str, attrs: dict, in_shapes: list, out_shapes: list,
               layout: str = "channels_last") -> int:
    """Multiply-adds of one call at batch 1 (0 where unknown)."""
    try:
        frame = _Frame(op, attrs, layout)
        ins, outs = frame.into(in_shapes), frame.into(out_shapes)
        if "batch_axis" in attrs and ins and ins[0] is not None:
            if attrs.get("traced_sizes"):  # dims shown as the batch that the node reads as data
                ins = [_with_sizes(sh, attrs["traced_sizes"], len(ins[0])) for sh in ins]
                outs = [_with_sizes(sh, attrs["traced_sizes"], len(ins[0])) for sh in outs]
            ins, outs = _batch_first(ins, attrs["batch_axis"], len(ins[0])), _batch_first(outs, attrs["batch_axis"],
                                                                                          len(ins[0]))
        steps = (frame.steps or 0) if frame.td else 1
        return steps * int(spec(op).macs(attrs, ins, outs) or 0)
    except (TypeError, KeyError, IndexError, ShapeError):
        return 0


def rf_window(op: str, attrs: dict, rank: int):
    fn = spec(op).rf
    return None if fn is None else fn(attrs, rank)


def is_linear(op: str, attrs: dict) -> bool:
    if op == "activation":
        return attrs.get("function") in LINEAR_ACTIVATIONS
    return spec(op).linear


# Activation functions that are (affine-)linear: they add no non-linearity.
LINEAR_ACTIVATIONS = frozenset({"linear", "identity", None})

# Activation functions by family, for rules (initialisers, saturation).
ACTIVATION_FAMILY = {
    "relu": "relu", "relu6": "relu", "leaky_relu": "relu", "prelu": "relu", "elu": "relu",
    "selu": "selu", "gelu": "relu", "silu": "relu", "swish": "relu", "hard_swish": "relu",
    "hard_silu": "relu", "mish": "relu", "softplus": "relu", "celu": "relu", "thresholded_relu": "relu",
    "tanh": "tanh", "sigmoid": "sigmoid", "hard_sigmoid": "sigmoid", "softsign": "tanh",
    "softmax": "softmax", "log_softmax": "softmax", "linear": "linear", "exponential": "other",
}

