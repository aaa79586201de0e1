"""PyTorch modules and functions -> canonical ops and attributes.

Two tables, both keyed by name so nothing here imports torch:

* :data:`MODULES` maps a ``torch.nn`` class name (``"Conv2d"``) to a reader
  ``f(module, call) -> (op, attrs)`` that reads the module's own attributes
  (``kernel_size``, ``stride``, ``padding``, ``groups``, ``bias``...). It serves
  live modules and scripted TorchScript modules (whose constants keep the same
  names).
* :data:`FUNCTIONS` maps a function's base name (``"relu"``, ``"add"``,
  ``"conv2d"``, ``"view"``) to a reader ``f(call) -> (op, attrs)``. One name
  serves Python functions (``F.relu``, ``torch.flatten``, ``operator.add``, the
  Tensor method ``x.view``) and ATen ops (``aten.add_.Tensor`` from
  ``torch.export``, ``aten::_convolution`` from TorchScript): :func:`function_key`
  normalises them, and :attr:`Call.dialect` tells a reader whose argument order
  it sees where the two differ (``batch_norm``).

Readers see a :class:`Call`: positional and keyword arguments with tensors
replaced by :class:`TArg` (an activation, a parameter/buffer or a constant, each
with its shape in the source layout, NCHW), and the activation shapes in and
out. Attributes follow :mod:`modellint.ops`: canonical axes are channels-last,
paddings are per-dim ``((lo, hi), ...)``. An activation also carries its layout
(:class:`Layout`): channels first (``(N, C, ...)``, a conv feature map) or
features last (``(N, T, F)`` sequences, NHWC tensors), and a reader turns source
axes into canonical ones by the layout of the call's input (:meth:`Call.canon_axis`).
A reader that cannot make sense of a call raises; the graph builder then keeps an
``unknown`` node. Shapes are the graph builder's business (a traced call knows them).
"""

from __future__ import annotations

import re
from typing import Callable, Optional

from .. import ops

# ---------------------------------------------------------------------------
# what a reader sees
# ---------------------------------------------------------------------------


CF, FL = "channels_first", "features_last"


class Layout:
    """Where a captured tensor keeps its features: ``CF`` (dim 1: conv feature maps,
    ``(N, C, L)``), ``FL`` (the last dim: ``(N, T, F)`` sequences out of ``nn.Linear``,
    ``nn.LSTM``, attention; NHWC tensors) or ``None``, not known yet (a graph input, or
    what shape-only ops made of it, until a layer that reads it says).

    Layouts are linked by the ops between tensors (an element-wise op keeps its
    input's; ``transpose(1, 2)`` swaps it); when one is learnt, :meth:`resolve`
    passes it along every link. A link maps a layout to the other tensor's
    (``OTHER``: features neither at dim 1 nor last, kept as the source has them).


    A tensor whose features a permute moved to neither place (channel shuffle's
    ``(N, g, C/g, H, W).transpose(1, 2)``) is kept as the source has it (``FL``) and
    remembers the axis that holds them (:attr:`axis`, from an ``(OTHER, axis)`` value), so
    that the reshape that merges the groups back (``.view(N, C, H, W)``) finds the features
    at dim 1 again instead of taking the size that happens to sit last (the width) for them.
    """

    __slots__ = ("value", "links", "axis")

    def __init__(self, value: Optional[str] = None):
        self.value = value
        self.links: list = []
        self.axis: Optional[int] = None  # where value came from (OTHER, axis): the source axis of the features

    @property
    def state(self):
        """The value as links map it: ``CF``, ``FL``, ``(OTHER, axis)`` or None."""
        return (OTHER, self.axis) if self.axis is not None else self.value

    def resolve(self, value) -> None:
        stack = [(self, value)]
        while stack:
            lay, v = stack.pop()
            if lay.value is not None or v is None:
                continue
            if is_other(v):
                lay.value = FL
                lay.axis = v[1] if isinstance(v, tuple) else None
            else:
                lay.value = v
            stack.extend((other, fmap.get(v)) for other, fmap in lay.links)

    def __repr__(self):
        return f"Layout({self.value}{'' if self.axis is None else f', axis {self.axis}'})"


OTHER = "other"


def is_other(v) -> bool:
    """Is ``v`` a layout with the features neither at dim 1 nor last (``OTHER`` or ``(OTHER, axis)``)?"""
    return v == OTHER or (isinstance(v, tuple) and len(v) == 2 and v[0] == OTHER)


class _Same(dict):
    """The identity map of layouts (an element-wise op): ``(OTHER, axis)`` maps to itself."""

    def get(self, key, default=None):
        return key if is_other(key) else super().get(key, default)


SAME = _Same({CF: CF, FL: FL})


def link(src: "Layout", dst: "Layout", fmap: dict) -> None:
    """``dst``'s layout is ``fmap[src's]``; learning either tells the other where ``fmap`` is one to one."""
    if isinstance(fmap, _Same):
        fmap = back = SAME
    else:
        inverse: dict = {}
        for u, v in fmap.items():
            if v in (CF, FL) or is_other(v):
                inverse.setdefault(v, []).append(u)
        back = {v: us[0] for v, us in inverse.items() if len(us) == 1}
        fmap = dict(fmap)
    src.links.append((dst, fmap))
    dst.links.append((src, back))
    if src.value is not None:
        dst.resolve(fmap.get(src.state))
    elif dst.value is not None:
        src.resolve(back.get(dst.state))


class TArg:
    """A tensor argument: ``kind`` is ``"act"`` (an activation in the graph),
    ``"param"`` (a parameter or buffer) or ``"const"`` (anything else). An
    activation's ``lay`` is its :class:`Layout` (None: channels first)."""

    __slots__ = ("kind", "shape", "ref", "name", "key", "numel", "trainable", "counted", "extra", "lay")

    def __init__(self, kind, shape=None, *, ref=None, name=None, key=None, numel=0, trainable=False,
                 counted=False, extra=(), lay=None):
        self.lay = lay
        self.kind = kind
        self.shape = tuple(shape) if shape is not None else None
        self.ref = ref  # graph ref of an activation
        self.name = name  # a parameter's qualified name
        self.key = key  # identity of a parameter, to count it once
        self.numel = numel
        self.trainable = trainable
        self.counted = counted  # parameters and running statistics count; other buffers do not
        self.extra = tuple(extra)  # more parameters folded into this value (``cat([w1, w2])``)

    def params(self):
        """This parameter and those folded into it."""
        yield self
        for p in self.extra:
            yield from p.params()

    def __repr__(self):
        return f"TArg({self.kind}, {self.shape}, {self.ref or self.name})"


class Call:
    """One module or function call as a reader sees it (shapes in the source layout)."""

    def __init__(self, name: str, *, dialect: str = "python", args=(), kwargs=None, module=None,
                 out_shapes=None):
        self.name = name
        self.dialect = dialect  # "module", "python" (F.*, torch.*, Tensor methods) or "aten"
        self.args = list(args)
        self.kwargs = dict(kwargs or {})
        self.module = module
        self.out_shapes = out_shapes  # None where unknown (TorchScript: inferred afterwards)
        # the example batch size where the shapes are traced sizes (a None there is a data-dependent
        # size, the number of boxes of a detection model, not the batch); None where not known
        self.batch = None

    # -- arguments ----------------------------------------------------------
    def arg(self, pos: Optional[int], key: Optional[str] = None, default=None):
        if key is not None and key in self.kwargs:
            return self.kwargs[key]
        if pos is not None and pos < len(self.args):
            return self.args[pos]
        return default

    def tensors(self, kind: str = "act") -> list:
        return [t for t in _flat((self.args, list(self.kwargs.values()))) if isinstance(t, TArg) and t.kind == kind]

    @property
    def in_shapes(self) -> list:
        return [t.shape for t in self.tensors()]

    @property
    def in_shape(self):
        acts = self.tensors()
        return acts[0].shape if acts else None

    @property
    def rank(self) -> int:
        s = self.in_shape
        if s is None:
            raise ValueError("input shape unknown")
        return len(s)

    @property
    def out_shape(self):
        return self.out_shapes[0] if self.out_shapes else None

    @property
    def layout(self) -> str:
        """The layout of the (first) input activation: ``FL`` or ``CF`` (also where not known yet)."""
        acts = self.tensors()
        lay = acts[0].lay if acts else None
        return FL if lay is not None and lay.value == FL else CF

    def canon_axis(self, axis, rank: Optional[int] = None):
        """A source axis of the input as a negative canonical one (its features last)."""
        rank = self.rank if rank is None else rank
        return ops.canon_axis(axis, rank, "channels_last" if self.layout == FL else "channels_first")


def _flat(obj):
    if isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _flat(v)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _flat(v)
    else:
        yield obj


def canon_axis(axis, rank: int):
    """A source (channels-first) axis as a negative canonical (channels-last) axis."""
    return ops.canon_axis(axis, rank, "channels_first")


def tup(value, n: int) -> tuple:
    if isinstance(value, (list, tuple)):
        value = tuple(int(v) for v in value)
        return value if len(value) == n else value * n if len(value) == 1 else value
    return (int(value),) * n


def conv_padding(padding, rank: int):
    """``padding=1`` -> ``((1, 1), (1, 1))``; ``"same"`` / ``"valid"`` stay strings; all zeros -> ``"valid"``."""
    if isinstance(padding, str):
        return padding.lower()
    p = tup(padding, rank)
    if len(p) == 2 * rank:  # explicit (lo, hi) pairs
        pairs = tuple((p[2 * i], p[2 * i + 1]) for i in range(rank))
    else:
        pairs = tuple((v, v) for v in p)
    return "valid" if all(lo == 0 and hi == 0 for lo, hi in pairs) else pairs


def pad_pairs(pad, rank: int) -> tuple:
    """``F.pad`` / ``ZeroPad2d`` padding (last dim first: left, right, top, bottom, ...) -> per-dim pairs."""
    if isinstance(pad, int):
        return ((pad, pad),) * rank
    pad = [int(v) for v in pad]
    if len(pad) == rank and rank != 2:  # ZeroPad3d(int) expanded by torch to 6; keep per-dim symmetric
        return tuple((v, v) for v in pad)
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]  # last dim first
    pairs = list(reversed(pairs))
    while len(pairs) < rank:
        pairs.insert(0, (0, 0))
    return tuple(pairs[-rank:])


def _spatial_rank(call, default=2) -> int:
    s = call.in_shape
    return len(s) - 2 if s is not None and len(s) >= 3 else default


# ---------------------------------------------------------------------------
# torch.nn modules
# ---------------------------------------------------------------------------

def _conv(rank, transposed=False):
    def read(m, call):
        attrs = {
            "rank": rank,
            "filters": int(m.out_channels),
            "kernel": tup(m.kernel_size, rank),
            "strides": tup(m.stride, rank),
            "dilation": tup(m.dilation, rank),
            "padding": conv_padding(m.padding, rank),
            "groups": int(m.groups),
            "use_bias": m.bias is not None,
            "activation": "linear",
        }
        mode = getattr(m, "padding_mode", "zeros")
        if mode != "zeros":
            attrs["padding_mode"] = mode
        if transposed:
            op = tup(getattr(m, "output_padding", 0), rank)
            if any(op):
                attrs["output_padding"] = op
            return "conv_transpose", attrs
        return "conv", attrs

    return read


def _linear(m, call):
    return "dense", {"units": int(m.out_features), "use_bias": m.bias is not None, "activation": "linear"}


def _batchnorm(m, call):
    return "batchnorm", {"axis": -1, "center": bool(m.affine), "scale": bool(m.affine), "epsilon": float(m.eps),
                         "momentum": m.momentum, "track_running_stats": bool(m.track_running_stats)}


def _instancenorm(m, call):
    return "groupnorm", {"groups": int(m.num_features), "axis": -1, "center": bool(m.affine),
                         "scale": bool(m.affine), "epsilon": float(m.eps), "kind": "instance"}


def _norm_axes(normalized_shape, call):
    rank = call.rank
    n = len(tuple(normalized_shape)) if isinstance(normalized_shape, (list, tuple)) else 1
    axes = call.canon_axis(list(range(rank - n, rank)), rank)
    return axes[0] if len(axes) == 1 else axes


def _layernorm(m, call):
    affine = bool(m.elementwise_affine)
    return "layernorm", {"axis": _norm_axes(m.normalized_shape, call), "center": affine and m.bias is not None,
                         "scale": affine, "epsilon": float(m.eps)}


def _rmsnorm(m, call):
    return "layernorm", {"axis": _norm_axes(m.normalized_shape, call), "center": False,
                         "scale": bool(m.elementwise_affine), "epsilon": m.eps, "rms": True}


def _groupnorm(m, call):
    return "groupnorm", {"groups": int(m.num_groups), "axis": -1, "center": bool(m.affine),
                         "scale": bool(m.affine), "epsilon": float(m.eps)}


def _act(fn, **fields):
    """An activation module: ``fields`` maps attrs to module attributes (value: default)."""
    def read(m, call):
        attrs = {"function": fn}
        for key, (attr, default) in fields.items():
            attrs[key] = getattr(m, attr, default)
        if getattr(m, "inplace", False):
            attrs["inplace"] = True
        return "activation", attrs

    return read


def _softmax_module(fn):
    def read(m, call):
        dim = getattr(m, "dim", None)
        rank = len(call.in_shape) if call.in_shape is not None else None
        if dim is None:  # legacy implicit dim: 0 for rank 0, 1, 3, else 1
            dim = 0 if rank in (0, 1, 3) else 1
        return "activation", {"function": fn, "axis": call.canon_axis(dim, rank) if rank else dim}

    return read


def _leaky(m, call):
    return "activation", {"function": "leaky_relu", "negative_slope": float(m.negative_slope),
                          **({"inplace": True} if getattr(m, "inplace", False) else {})}


def _hardtanh(m, call):
    lo, hi = float(m.min_val), float(m.max_val)
    fn = "relu6" if (lo, hi) == (0.0, 6.0) else "hard_tanh"
    return "activation", {"function": fn, "min_val": lo, "max_val": hi}


def _threshold(m, call):
    fn = "thresholded_relu" if float(m.value) == 0.0 else "threshold"
    return "activation", {"function": fn, "theta": float(m.threshold), "value": float(m.value)}


def _prelu(m, call):
    rank = call.rank
    n = int(m.num_parameters)
    shared = list(range(1, rank)) if n == 1 else [a % rank for a in canon_axis(list(range(2, rank)), rank)]
    return "activation", {"function": "prelu", "shared_axes": shared or None}


def _pool(rank, op):
    def read(m, call):
        k = tup(m.kernel_size, rank)
        stride = getattr(m, "stride", None)
        attrs = {"rank": rank, "pool_size": k, "strides": tup(stride, rank) if stride else k,
                 "padding": conv_padding(getattr(m, "padding", 0), rank)}
        if op == "pool_max":
            d = tup(getattr(m, "dilation", 1), rank)
            if any(v != 1 for v in d):
                attrs["dilation"] = d
        if getattr(m, "ceil_mode", False):
            attrs["ceil_mode"] = True
        if op == "pool_avg" and not getattr(m, "count_include_pad", True):
            attrs["count_include_pad"] = False
        return op, attrs

    return read


def adaptive_pool(rank, mode, output_size, call):
    """Adaptive pooling: to 1 -> global pooling (kept dims); an exact divisor of
    the input -> an ordinary pool; otherwise an unknown op with the traced shape."""
    out = output_size if isinstance(output_size, (list, tuple)) else (output_size,) * rank
    if all(o == 1 for o in out):
        return "global_pool", {"mode": mode, "keepdims": True, "rank": rank}
    src = call.in_shape
    if src is None:
        raise ValueError("adaptive pooling to a size other than 1 needs the input shape")
    spatial = src[-rank:]
    out = tuple(spatial[i] if o is None else int(o) for i, o in enumerate(out))
    if all(n is not None and o and n % o == 0 for n, o in zip(spatial, out)):
        k = tuple(n // o for n, o in zip(spatial, out))
        return ("pool_avg" if mode == "avg" else "pool_max"), {"rank": rank, "pool_size": k, "strides": k,
                                                               "padding": "valid", "adaptive": True}
    if rank == 2:  # overlapping windows of varying size: a resampling to a fixed grid
        return "resize", {"height": out[0], "width": out[1], "interpolation": f"adaptive_{mode}_pool"}
    return "unknown", {"kind": f"adaptive_{mode}_pool", "output_size": out}


def _adaptive(rank, mode):
    def read(m, call):
        return adaptive_pool(rank, mode, m.output_size, call)

    return read


def flatten_op(start, end, call):
    rank = len(call.in_shape) if call.in_shape is not None else None
    end_pos = end % rank if rank else end
    if start == 1 and (end == -1 or (rank is not None and end_pos == rank - 1)):
        return "flatten", {}
    return reshape_op(call)


def _flatten_module(m, call):
    return flatten_op(int(m.start_dim), int(m.end_dim), call)


def reshape_op(call, target=None):
    """A reshape to the traced output shape (or ``target`` sizes, source layout, batch first);
    ``(batch, everything)`` from a feature map is a flatten."""
    src = call.in_shape
    out = call.out_shape
    if out is not None:
        if src is not None and len(src) > 2 and len(out) == 2 and out[0] == src[0] and out[1] == _prod(src[1:]):
            return "flatten", {}
        return "reshape", {"target_shape": tuple(out[1:])}
    if target is None:
        raise ValueError("reshape target unknown")
    target = [-1 if v is None else int(v) for v in target]
    if src is not None and len(src) > 2 and len(target) == 2 and (target[1] == -1 or _prod(src[1:]) == target[1]):
        return "flatten", {}
    return "reshape", {"target_shape": tuple(target[1:])}


def _prod(values):
    out = 1
    for v in values:
        if v is None:
            return None
        out *= int(v)
    return out


def _dropout(variant):
    def read(m, call):
        return "dropout", {"variant": variant, "rate": float(m.p)}

    return read


def upsample_op(size, scale, mode, call):
    src = call.in_shape
    rank = len(src) - 2 if src is not None else None
    factors = None
    if scale is not None:
        scale = scale if isinstance(scale, (list, tuple)) else [scale] * (rank or 2)
        if all(float(s).is_integer() for s in scale):
            factors = tuple(int(s) for s in scale)
    elif size is not None and src is not None:
        size = size if isinstance(size, (list, tuple)) else [size] * rank
        sp = src[2:]
        if all(n and s % n == 0 for s, n in zip(size, sp)):
            factors = tuple(int(s) // int(n) for s, n in zip(size, sp))
        elif rank == 2:
            return "resize", {"height": int(size[0]), "width": int(size[1]), "interpolation": mode}
    if factors is None:
        out = call.out_shape
        if out is not None and src is not None and all(o % i == 0 for o, i in zip(out[2:], src[2:])):
            factors = tuple(o // i for o, i in zip(out[2:], src[2:]))
        elif out is not None and len(out) == 4:
            return "resize", {"height": out[2], "width": out[3], "interpolation": mode}
        else:
            raise ValueError("upsampling factor unknown")
    return "upsample", {"rank": len(factors), "size": factors, "interpolation": mode}


def _upsample_module(mode=None):
    def read(m, call):
        return upsample_op(m.size, m.scale_factor, mode or m.mode, call)

    return read


def _pad_module(rank, mode):
    def read(m, call):
        attrs = {"rank": rank, "padding": pad_pairs(m.padding, rank)}
        if mode != "zeros":
            attrs["mode"] = mode
            if mode == "constant" and float(getattr(m, "value", 0.0)) != 0.0:
                attrs["value"] = float(m.value)
        return "pad", attrs

    return read


def _embedding(m, call):
    attrs = {"input_dim": int(m.num_embeddings), "output_dim": int(m.embedding_dim)}
    if m.padding_idx is not None:
        attrs["padding_idx"] = int(m.padding_idx)
    return "embedding", attrs


def _rnn(cell):
    def read(m, call):
        mode = getattr(m, "mode", "")
        attrs = {"cell": cell, "units": int(m.hidden_size), "return_sequences": True, "return_state": True,
                 "bidirectional": bool(m.bidirectional), "use_bias": bool(m.bias), "num_layers": int(m.num_layers),
                 "batch_first": bool(m.batch_first), "dropout": float(m.dropout)}
        if cell == "gru":
            attrs["reset_after"] = True  # PyTorch applies the reset gate after the hidden matmul
        if cell == "simple":
            attrs["activation"] = "relu" if "RELU" in str(mode).upper() or getattr(m, "nonlinearity", "") == "relu" \
                else "tanh"
        else:
            attrs["activation"] = "tanh"
        if getattr(m, "proj_size", 0):
            attrs["proj_size"] = int(m.proj_size)
        return "rnn", attrs

    return read


def _mha(m, call):
    e, h = int(m.embed_dim), int(m.num_heads)
    attrs = {"num_heads": h, "key_dim": e // h, "value_dim": int(m.vdim) // h, "output_shape": e,
             "use_bias": m.in_proj_bias is not None, "dropout": float(m.dropout),
             "batch_first": bool(m.batch_first)}
    if call.out_shapes is not None and len([s for s in call.out_shapes if s is not None]) > 1:
        attrs["return_attention_scores"] = True
    return "attention", attrs


def _identity(kind):
    def read(m, call):
        return "identity", {"kind": kind}

    return read


MODULES: dict[str, Callable] = {}


def _register(table, names, reader):
    for n in names.split():
        table[n] = reader


_register(MODULES, "Conv1d", _conv(1))
_register(MODULES, "Conv2d", _conv(2))
_register(MODULES, "Conv3d", _conv(3))
_register(MODULES, "ConvTranspose1d", _conv(1, True))
_register(MODULES, "ConvTranspose2d", _conv(2, True))
_register(MODULES, "ConvTranspose3d", _conv(3, True))
_register(MODULES, "Linear NonDynamicallyQuantizableLinear", _linear)
_register(MODULES, "BatchNorm1d BatchNorm2d BatchNorm3d SyncBatchNorm", _batchnorm)
_register(MODULES, "InstanceNorm1d InstanceNorm2d InstanceNorm3d", _instancenorm)
_register(MODULES, "LayerNorm", _layernorm)
_register(MODULES, "RMSNorm", _rmsnorm)
_register(MODULES, "GroupNorm", _groupnorm)
_register(MODULES, "ReLU", _act("relu"))
_register(MODULES, "ReLU6", _act("relu6"))
_register(MODULES, "LeakyReLU", _leaky)
_register(MODULES, "PReLU", _prelu)
_register(MODULES, "ELU", _act("elu", alpha=("alpha", 1.0)))
_register(MODULES, "CELU", _act("celu", alpha=("alpha", 1.0)))
_register(MODULES, "SELU", _act("selu"))
_register(MODULES, "GELU", _act("gelu", approximate=("approximate", "none")))
_register(MODULES, "SiLU", _act("silu"))
_register(MODULES, "Mish", _act("mish"))
_register(MODULES, "Sigmoid", _act("sigmoid"))
_register(MODULES, "Tanh", _act("tanh"))
_register(MODULES, "Hardswish", _act("hard_silu"))
_register(MODULES, "Hardsigmoid", _act("hard_sigmoid"))
_register(MODULES, "Hardtanh", _hardtanh)
_register(MODULES, "Softplus", _act("softplus", beta=("beta", 1.0)))
_register(MODULES, "Softsign", _act("softsign"))
_register(MODULES, "LogSigmoid", _act("log_sigmoid"))
_register(MODULES, "Threshold", _threshold)
_register(MODULES, "Softmax", _softmax_module("softmax"))
_register(MODULES, "LogSoftmax", _softmax_module("log_softmax"))
_register(MODULES, "Softmax2d", lambda m, call: ("activation", {"function": "softmax", "axis": -1}))
for _r in (1, 2, 3):
    _register(MODULES, f"MaxPool{_r}d", _pool(_r, "pool_max"))
    _register(MODULES, f"AvgPool{_r}d", _pool(_r, "pool_avg"))
    _register(MODULES, f"AdaptiveAvgPool{_r}d", _adaptive(_r, "avg"))
    _register(MODULES, f"AdaptiveMaxPool{_r}d", _adaptive(_r, "max"))
    _register(MODULES, f"ZeroPad{_r}d", _pad_module(_r, "zeros"))
    _register(MODULES, f"ConstantPad{_r}d", _pad_module(_r, "constant"))
    _register(MODULES, f"ReflectionPad{_r}d", _pad_module(_r, "reflect"))
    _register(MODULES, f"ReplicationPad{_r}d", _pad_module(_r, "replicate"))
    _register(MODULES, f"CircularPad{_r}d", _pad_module(_r, "circular"))
_register(MODULES, "Flatten", _flatten_module)
_register(MODULES, "Unflatten", lambda m, call: reshape_op(call))
_register(MODULES, "Dropout", _dropout("dropout"))
_register(MODULES, "Dropout1d Dropout2d Dropout3d", _dropout("spatial"))
_register(MODULES, "AlphaDropout FeatureAlphaDropout", _dropout("alpha"))
_register(MODULES, "Identity", _identity("identity"))
_register(MODULES, "Upsample", _upsample_module())
_register(MODULES, "UpsamplingNearest2d", _upsample_module("nearest"))
_register(MODULES, "UpsamplingBilinear2d", _upsample_module("bilinear"))
_register(MODULES, "Embedding", _embedding)
_register(MODULES, "LSTM", _rnn("lstm"))
_register(MODULES, "GRU", _rnn("gru"))
_register(MODULES, "RNN", _rnn("simple"))
_register(MODULES, "MultiheadAttention", _mha)

_register(MODULES, "Unfold Fold", lambda m, call: reshape_op(call))  # im2col / col2im: values moved

# Modules that return their input: no node.
PASS_MODULES = frozenset({"Identity"})

# Containers are never leaves: their children are the calls.
CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"})

_MANGLE = re.compile(r"\.___torch_mangle_\d+")


def key_from_qualname(qualname: str) -> Optional[str]:
    """``torch.nn.modules.conv.Conv2d`` (export's nn_module_stack) or
    ``__torch__.torch.nn.modules.conv.___torch_mangle_3.Conv2d`` (TorchScript) -> ``"Conv2d"``."""
    qn = _MANGLE.sub("", str(qualname))
    if qn.startswith("__torch__."):
        qn = qn[len("__torch__."):]
    if qn.startswith(("torch.nn.", "torch.ao.nn.")):
        name = qn.rsplit(".", 1)[-1]
        if name in MODULES or name in CONTAINERS:
            return name
    return None


def module_key(module) -> Optional[str]:
    """The :data:`MODULES` key of a live module: its ``torch.nn`` class, or the
    ``torch.nn`` base class of a subclass that keeps the base's ``forward``."""
    cls = type(module)
    for base in cls.__mro__:
        mod = getattr(base, "__module__", "") or ""
        if mod.startswith(("torch.nn.", "torch.ao.nn.")) and base.__name__ in MODULES:
            if base is cls or getattr(cls, "forward", None) is getattr(base, "forward", None):
                return base.__name__
            return None
    return None


# ---------------------------------------------------------------------------
# modules outside torch.nn, recognised by what they compute
# ---------------------------------------------------------------------------
#
# Two ways, each checked against what the call did (its traced shapes), never by
# name alone:
#
# * a subclass of a torch.nn layer that overrides ``forward`` (timm's ``Linear``,
#   ``LayerNorm``, ``LayerNorm2d``, ``Conv2dSame``, ``StdConv2d``; torchvision's
#   ``LayerNorm2d``) is read as its base class from its own attributes, if its
#   output is what that layer makes of its input (:data:`BEHAVES`);
# * a class named in :data:`NAMED` (torchvision's ``StochasticDepth`` and
#   ``Permute``, timm's ``DropPath``) is read by its row, which checks its behaviour.
#
# Other modules without children are traced through (their functions are read
# one by one, and a module that ran one function is that function's node).

def _same_shape(call) -> bool:
    return call.out_shape is None or call.in_shape is None or tuple(call.out_shape) == tuple(call.in_shape)


def _stochastic_depth(rate_attr):
    """torchvision's StochasticDepth / timm's DropPath: drops whole residual branches while
    training, the identity at inference; a regularizer of the dropout family."""
    def read(m, call):
        if not _same_shape(call) or next(m.parameters(), None) is not None:
            raise ValueError("changes the shape or holds weights")
        attrs = {"variant": "stochastic_depth", "rate": float(getattr(m, rate_attr, 0.0) or 0.0)}
        mode = getattr(m, "mode", None)
        if isinstance(mode, str):
            attrs["mode"] = mode
        return "dropout", attrs

    return read


def _permute_module(m, call):
    """torchvision's ``Permute(dims)``: ``torch.permute(x, dims)``."""
    dims = [int(d) for d in m.dims]
    src, out = call.in_shape, call.out_shape
    if src is not None and out is not None and tuple(out) != tuple(src[d] for d in dims):
        raise ValueError("output is not the permuted input")
    if dims[0] != 0:
        return "transpose", {"dims": tuple(dims)}
    return "permute", {"dims": tuple(dims[1:])}


NAMED: dict[str, Callable] = {}
_register(NAMED, "StochasticDepth", _stochastic_depth("p"))
_register(NAMED, "DropPath", _stochastic_depth("drop_prob"))
_register(NAMED, "Permute", _permute_module)


def _roi_align_module(m, call):
    """torchvision's RoIAlign / RoIPool / MultiScaleRoIAlign (matched by name: modellint does not import it)."""
    size = getattr(m, "output_size", None)
    size = (size, size) if isinstance(size, int) else tuple(int(v) for v in size)
    attrs = {"pool_size": size, "function": type(m).__name__}
    for k in ("sampling_ratio", "spatial_scale", "aligned"):
        v = getattr(m, k, None)
        if isinstance(v, (int, float, bool)):
            attrs[k] = v
    names = getattr(m, "featmap_names", None)
    if names is not None:
        attrs["featmap_names"] = list(names)
    return "roi_align", attrs


def _anchors_module(m, call):
    return "anchors", {"function": type(m).__name__}


_register(NAMED, "RoIAlign RoIPool MultiScaleRoIAlign", _roi_align_module)
_register(NAMED, "AnchorGenerator DefaultBoxGenerator", _anchors_module)


def _window_check(m, call, attrs, conv: bool):
    """The traced spatial sizes are the layer's (its own padding, or TF's "same" that timm's
    ``Conv2dSame`` / ``MaxPool2dSame`` pad to at run time): the attrs, possibly with
    ``padding="same"``; else the module does something else."""
    src, out = call.in_shape, call.out_shape
    rank = attrs["rank"]
    if src is None or out is None or len(src) != rank + 2 or len(out) != rank + 2:
        raise ValueError("not a feature map")
    if conv and (src[1] != m.in_channels or out[1] != attrs["filters"]):
        raise ValueError("channels differ from the layer's")
    k = attrs["kernel"] if conv else attrs["pool_size"]
    st = attrs["strides"]
    d = attrs.get("dilation", (1,) * rank)
    ceil = bool(attrs.get("ceil_mode"))

    def fits(padding):
        pads = padding if isinstance(padding, (tuple, list)) else (padding,) * rank
        try:
            return all(ops.conv_out_len(src[2 + i], k[i], st[i], d[i], pads[i], ceil) == out[2 + i]
                       for i in range(rank))
        except (ops.ShapeError, TypeError, ValueError):
            return False

    if fits(attrs["padding"]):
        return attrs
    if fits("same"):
        return {**attrs, "padding": "same", "dynamic_padding": True}
    raise ValueError("output size is not the layer's")


def _behaves_dense(m, call, attrs):
    src, out = call.in_shape, call.out_shape
    if src is not None and out is not None and (src[-1] != m.in_features or out[-1] != attrs["units"]):
        raise ValueError("features differ from the layer's")
    return attrs


def _behaves_same_shape(m, call, attrs):
    if not _same_shape(call):
        raise ValueError("changes the shape")
    return attrs


def _behaves_embedding(m, call, attrs):
    src, out = call.in_shape, call.out_shape
    if src is not None and out is not None and tuple(out) != (*src, attrs["output_dim"]):
        raise ValueError("output is not a row per index")
    return attrs


# op -> f(module, call, attrs) -> attrs (adjusted) or raises: the call did what the base layer does
BEHAVES: dict[str, Callable] = {
    "conv": lambda m, call, attrs: _window_check(m, call, attrs, conv=True),
    "pool_max": lambda m, call, attrs: _window_check(m, call, attrs, conv=False),
    "pool_avg": lambda m, call, attrs: _window_check(m, call, attrs, conv=False),
    "dense": _behaves_dense,
    "embedding": _behaves_embedding,
    "batchnorm": _behaves_same_shape,
    "groupnorm": _behaves_same_shape,
    "layernorm": _behaves_same_shape,
    "activation": _behaves_same_shape,
    "dropout": _behaves_same_shape,
}


def _layernorm_any_axis(m, call):
    """A LayerNorm subclass: over the last dims as nn.LayerNorm, or (torchvision's and
    timm's ``LayerNorm2d``) over the channels of a feature map, permuted there and back."""
    norm = tuple(int(v) for v in m.normalized_shape)
    src = call.in_shape
    if src is not None and len(norm) == 1 and len(src) >= 3 and src[1] == norm[0] and \
            (call.layout == CF or src[-1] != norm[0]):
        rms = call.name == "RMSNorm"
        affine = bool(getattr(m, "elementwise_affine", True))
        attrs = {"axis": -1, "center": affine and getattr(m, "bias", None) is not None and not rms,
                 "scale": affine, "epsilon": float(m.eps) if m.eps is not None else None, "over": "channels"}
        if rms:
            attrs["rms"] = True
        return "layernorm", attrs
    return MODULES[call.name](m, call)


SUBCLASS_READERS: dict[str, Callable] = {"LayerNorm": _layernorm_any_axis, "RMSNorm": _layernorm_any_axis}
# bases whose input layout a subclass may not share (LayerNorm2d reads channels first)
_FREE_LAYOUT_BASES = frozenset(SUBCLASS_READERS)


def _torch_nn(cls) -> bool:
    return (getattr(cls, "__module__", "") or "").startswith(("torch.nn.", "torch.ao.nn."))


def recognise(module) -> tuple:
    """``(key, how)`` for a module :func:`module_key` does not know: ``how`` is ``"name"``
    (a :data:`NAMED` row) or ``"base"`` (a torch.nn base class whose ``forward`` it
    overrides); ``(None, None)`` otherwise."""
    cls = type(module)
    if _torch_nn(cls):
        return None, None
    if cls.__name__ in NAMED:
        return cls.__name__, "name"
    for base in cls.__mro__[1:]:
        if _torch_nn(base) and base.__name__ in MODULES and base.__name__ not in PASS_MODULES:
            return base.__name__, "base"
    return None, None


def layout_key(key: Optional[str], how: Optional[str]) -> Optional[str]:
    """The key whose input layout a recognised module's call imposes (None: none)."""
    if how == "name" or (how == "base" and key in _FREE_LAYOUT_BASES):
        return None
    return key


def read_recognised(key: str, how: str, module, call: Call) -> tuple:
    """(op, attrs) of a module :func:`recognise` named, checked against the call; raises if it
    does not behave as the row or base class says."""
    if how == "name":
        return NAMED[key](module, call)
    op, attrs = SUBCLASS_READERS.get(key, MODULES[key])(module, call)
    check = BEHAVES.get(op)
    if check is None:
        raise ValueError(f"no behaviour check for a {op} subclass")
    return op, check(module, call, attrs)


def source_type(qualname: str) -> str:
    """``torch.nn.modules.conv.Conv2d`` -> ``torch.nn.Conv2d``; user classes keep their module path."""
    qn = _MANGLE.sub("", str(qualname))
    if qn.startswith("__torch__."):
        qn = qn[len("__torch__."):]
    if qn.startswith("torch.nn.modules."):
        return "torch.nn." + qn.rsplit(".", 1)[-1]
    if qn.startswith("__main__."):
        return qn[len("__main__."):]
    return qn


# ---------------------------------------------------------------------------
# functions and ATen ops
# ---------------------------------------------------------------------------

_DUNDER = re.compile(r"^__(\w+)__$")
ALIASES = {
    "iadd": "add", "radd": "add", "isub": "sub", "subtract": "sub", "imul": "mul", "rmul": "mul",
    "multiply": "mul", "truediv": "div", "itruediv": "div", "true_divide": "div", "divide": "div",
    "concat": "cat", "concatenate": "cat", "_softmax": "softmax", "_log_softmax": "log_softmax",
    "special_softmax": "softmax", "_unsafe_view": "view", "view_as": "view", "reshape_as": "view",
    "reshape": "view", "_reshape_alias": "view", "swapaxes": "transpose", "swapdims": "transpose",
    "_adaptive_avg_pool2d": "adaptive_avg_pool2d", "_adaptive_avg_pool3d": "adaptive_avg_pool3d",
    "_max_pool1d": "max_pool1d", "_max_pool2d": "max_pool2d", "_max_pool3d": "max_pool3d",
    "max_pool1d_with_indices": "max_pool1d", "max_pool2d_with_indices": "max_pool2d",
    "max_pool3d_with_indices": "max_pool3d", "adaptive_max_pool1d_with_indices": "adaptive_max_pool1d",
    "_adaptive_max_pool2d": "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices": "adaptive_max_pool2d",
    "hardswish": "hard_silu", "hardsigmoid": "hard_sigmoid", "hardtanh": "hardtanh", "logsigmoid": "log_sigmoid",
    "native_batch_norm": "batch_norm", "_native_batch_norm_legit_no_training": "batch_norm",
    "_native_batch_norm_legit": "batch_norm", "_native_batch_norm_legit_functional": "batch_norm",
    "cudnn_batch_norm": "batch_norm", "native_layer_norm": "layer_norm", "native_group_norm": "group_norm",
    "native_dropout": "dropout", "feature_dropout": "dropout2d", "_convolution": "convolution",
    "conv_transpose1d": "conv_transpose", "conv_transpose2d": "conv_transpose", "conv_transpose3d": "conv_transpose",
    "conv1d": "conv", "conv2d": "conv", "conv3d": "conv",
    "upsample_nearest1d": "upsample_nearest", "upsample_nearest2d": "upsample_nearest",
    "upsample_nearest3d": "upsample_nearest", "upsample_bilinear2d": "upsample_bilinear",
    "upsample_bicubic2d": "upsample_bicubic", "upsample_linear1d": "upsample_linear",
    "upsample_trilinear3d": "upsample_trilinear", "constant_pad_nd": "pad",
    "reflection_pad1d": "reflection_pad", "reflection_pad2d": "reflection_pad", "reflection_pad3d": "reflection_pad",
    "replication_pad1d": "replication_pad", "replication_pad2d": "replication_pad",
    "replication_pad3d": "replication_pad", "rnn_tanh": "rnn_tanh", "scaled_dot_product_attention": "sdpa",
    "_scaled_dot_product_flash_attention_for_cpu": "sdpa", "_scaled_dot_product_efficient_attention": "sdpa",
    "_scaled_dot_product_flash_attention": "sdpa", "clip": "clamp", "amax": "max", "permute_copy": "permute",
    "view_copy": "view", "expand_copy": "expand", "unsqueeze_copy": "unsqueeze", "squeeze_copy": "squeeze",
    "t_copy": "t", "transpose_copy": "transpose", "select_copy": "select", "slice_copy": "slice",
    "alias_copy": "alias", "mT": "t", "T": "t", "mH": "t", "H": "t",
    "amin": "min", "split_with_sizes": "split", "unbind_copy": "unbind", "split_copy": "split",
    "split_with_sizes_copy": "split", "unsafe_split": "split", "unsafe_chunk": "chunk", "argsort": "sort",
    "msort": "sort", "pow_": "pow", "rpow": "pow", "special_erf": "erf", "linalg_vector_norm": "vector_norm",
    "scaled_dot_product_attention_math": "sdpa", "_scaled_dot_product_attention_math": "sdpa",
    "_scaled_dot_product_cudnn_attention": "sdpa", "unfold_copy": "unfold", "roll_copy": "roll",
    "iand": "and", "ior": "or", "ixor": "xor", "mod": "remainder", "floordiv": "floor_divide",
    "ifloordiv": "floor_divide", "bitwise_and": "and", "bitwise_or": "or", "bitwise_xor": "xor",
}

# Node names for ATen ops whose Python function has another name (same names whichever capture).
DISPLAY = {"upsample_nearest": "interpolate", "upsample_bilinear": "interpolate", "upsample_bicubic": "interpolate",
           "upsample_linear": "interpolate", "upsample_trilinear": "interpolate", "convolution": "conv",
           "constant_pad_nd": "pad"}

# Pure pass-throughs: no node; consumers read the input directly.
ELIDE = frozenset({"contiguous", "clone", "detach", "alias", "lift_fresh_copy", "lift_fresh", "_to_copy", "to",
                   "type_as", "float", "double", "half", "bfloat16", "long", "int", "short", "byte", "bool",
                   "cpu", "cuda", "requires_grad",
                   "data", "_assert_tensor_metadata", "dequantize", "identity", "_assert_async", "type",
                   "dropout_eval"})

# Functions whose output does not depend on the values of their tensor inputs.
CONSTANT_MAKERS = frozenset({"zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like",
                             "new_zeros", "new_ones", "new_empty", "new_full", "new_tensor", "zeros", "ones",
                             "empty", "full", "arange", "rand", "randn", "tensor", "scalar_tensor", "eye",
                             "linspace", "empty_strided", "randint"})


def function_key(raw: str) -> tuple:
    """A raw function name -> (table key, in-place?).

    ``"add_"`` -> ``("add", True)``; ``"__iadd__"`` -> ``("add", True)``;
    ``"aten::relu_"`` -> ``("relu", True)``; ``"flatten"`` -> ``("flatten", False)``.
    """
    name = str(raw)
    if "::" in name:
        name = name.split("::", 1)[1]
    name = name.split(".")[0]
    inplace = False
    m = _DUNDER.match(name)
    if m:
        name = m.group(1)
        if name in ("iadd", "isub", "imul", "itruediv", "ifloordiv", "iand", "ior"):
            inplace = True
    elif name.endswith("_") and not name.endswith("__") and len(name) > 1:
        name, inplace = name[:-1], True
    name = ALIASES.get(name, name)
    return name, inplace


def _is_scalar(x) -> bool:
    return isinstance(x, (int, float, bool)) and not isinstance(x, TArg)


def _num(x) -> Optional[float]:
    return float(x) if _is_scalar(x) else None


def _conv_fn(call):
    """F.conv2d / aten.conv2d / aten.convolution / aten._convolution (and transposed)."""
    w = call.arg(1, "weight")
    if not isinstance(w, TArg) or w.shape is None:
        raise ValueError("convolution weight unknown")
    rank = len(w.shape) - 2
    name_transposed = call.name == "conv_transpose"
    aten_conv = call.name == "convolution"
    transposed = bool(call.arg(6, "transposed", False)) if aten_conv else name_transposed
    bias = call.arg(2, "bias")
    stride = call.arg(3, "stride", 1)
    padding = call.arg(4, "padding", 0)
    if name_transposed:  # conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)
        out_pad, groups = call.arg(5, "output_padding", 0), call.arg(6, "groups", 1)
        dilation = call.arg(7, "dilation", 1)
    elif aten_conv:  # (input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, ...)
        dilation, out_pad = call.arg(5, "dilation", 1), call.arg(7, "output_padding", 0)
        groups = call.arg(8, "groups", 1)
    else:
        dilation, groups, out_pad = call.arg(5, "dilation", 1), call.arg(6, "groups", 1), 0
    groups = int(groups)
    attrs = {"rank": rank, "kernel": tuple(int(v) for v in w.shape[2:]), "strides": tup(stride, rank),
             "dilation": tup(dilation, rank), "padding": conv_padding(padding, rank), "groups": groups,
             "use_bias": isinstance(bias, TArg), "activation": "linear"}
    if transposed:
        attrs["filters"] = int(w.shape[1]) * groups
        op = tup(out_pad, rank)
        if any(op):
            attrs["output_padding"] = op
        return "conv_transpose", attrs
    attrs["filters"] = int(w.shape[0])
    return "conv", attrs


def _linear_fn(call):
    w = call.arg(1, "weight")
    if not isinstance(w, TArg) or w.shape is None:
        raise ValueError("linear weight unknown")
    return "dense", {"units": int(w.shape[0]), "use_bias": isinstance(call.arg(2, "bias"), TArg),
                     "activation": "linear"}


def _addmm_fn(call):  # addmm(bias, x, weight.t()): a traced Linear on 2-D input
    w = call.arg(2, "mat2")
    if isinstance(w, TArg) and w.kind == "param" and w.shape is not None:
        return "dense", {"units": int(w.shape[-1]), "use_bias": True, "activation": "linear"}
    raise ValueError("addmm of two activations")


def _matmul_fn(call):
    a, b = call.arg(0, "input"), call.arg(1, "other")
    if isinstance(b, TArg) and b.kind == "param" and b.shape is not None:
        return "dense", {"units": int(b.shape[-1]), "use_bias": False, "activation": "linear"}
    if isinstance(a, TArg) and isinstance(b, TArg) and a.kind == b.kind == "act":
        return "dot", {"axes": (-1, -2)}
    raise ValueError("matmul with a constant")


def _batch_norm_fn(call):
    if call.dialect == "aten":  # (input, weight, bias, running_mean, running_var, training, momentum, eps)
        weight, bias, eps = call.arg(1, "weight"), call.arg(2, "bias"), call.arg(7, "eps")
        momentum = call.arg(6, "momentum")
        if call.name != "batch_norm" or eps is None:
            eps = call.arg(7, "eps", call.arg(6, "eps"))
    else:  # F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
        weight, bias = call.arg(3, "weight"), call.arg(4, "bias")
        momentum, eps = call.arg(6, "momentum", 0.1), call.arg(7, "eps", 1e-5)
    return "batchnorm", {"axis": -1, "center": isinstance(bias, TArg), "scale": isinstance(weight, TArg),
                         "epsilon": _num(eps), "momentum": _num(momentum)}


def _layer_norm_fn(call):
    shape = call.arg(1, "normalized_shape")
    return "layernorm", {"axis": _norm_axes(shape, call), "center": isinstance(call.arg(3, "bias"), TArg),
                         "scale": isinstance(call.arg(2, "weight"), TArg), "epsilon": _num(call.arg(4, "eps"))}


def _rms_norm_fn(call):
    shape = call.arg(1, "normalized_shape")
    return "layernorm", {"axis": _norm_axes(shape, call), "center": False,
                         "scale": isinstance(call.arg(2, "weight"), TArg), "rms": True}


def _group_norm_fn(call):
    return "groupnorm", {"groups": int(call.arg(1, "num_groups")), "axis": -1,
                         "center": isinstance(call.arg(3, "bias"), TArg),
                         "scale": isinstance(call.arg(2, "weight"), TArg)}


def _instance_norm_fn(call):
    c = call.in_shape[1] if call.in_shape is not None else None
    # aten.instance_norm(input, weight, bias, ...); F.instance_norm(input, running_mean, running_var, weight, bias)
    w, b = (1, 2) if call.dialect == "aten" else (3, 4)
    return "groupnorm", {"groups": c, "axis": -1, "kind": "instance", "center": isinstance(call.arg(b, "bias"), TArg),
                         "scale": isinstance(call.arg(w, "weight"), TArg)}


def _act_fn(fn, **fields):
    """``fields``: attr -> (position, keyword, default)."""
    def read(call):
        attrs = {"function": fn}
        for key, (pos, kw, default) in fields.items():
            v = call.arg(pos, kw, default)
            attrs[key] = v if _is_scalar(v) or isinstance(v, str) or v is None else str(v)
        return "activation", attrs

    return read


def _softmax_fn(fn):
    def read(call):
        dim = call.arg(1, "dim")
        rank = len(call.in_shape) if call.in_shape is not None else None
        if dim is None:
            dim = 0 if rank in (0, 1, 3) else 1
        return "activation", {"function": fn, "axis": call.canon_axis(dim, rank) if rank else dim}

    return read


def _hardtanh_fn(call):
    lo, hi = _num(call.arg(1, "min_val", -1.0)), _num(call.arg(2, "max_val", 1.0))
    return "activation", {"function": "relu6" if (lo, hi) == (0.0, 6.0) else "hard_tanh", "min_val": lo,
                          "max_val": hi}


def _clamp_fn(call):
    lo, hi = call.arg(1, "min"), call.arg(2, "max")
    lo = _num(lo) if lo is not None else None
    hi = _num(hi) if hi is not None else None
    if lo == 0.0 and hi == 6.0:
        return "activation", {"function": "relu6"}
    if lo == 0.0 and hi is None:
        return "activation", {"function": "relu"}
    return "activation", {"function": "clamp", "min_val": lo, "max_val": hi}


def _threshold_fn(call):
    theta, value = _num(call.arg(1, "threshold")), _num(call.arg(2, "value"))
    return "activation", {"function": "thresholded_relu" if value == 0.0 else "threshold", "theta": theta,
                          "value": value}


def _prelu_fn(call):
    w = call.arg(1, "weight")
    rank = call.rank
    n = _prod(w.shape) if isinstance(w, TArg) and w.shape is not None else 1
    shared = list(range(1, rank)) if n == 1 else [a % rank for a in canon_axis(list(range(2, rank)), rank)]
    return "activation", {"function": "prelu", "shared_axes": shared or None}


def _dropout_fn(variant):
    def read(call):
        return "dropout", {"variant": variant, "rate": _num(call.arg(1, "p", 0.5))}

    return read


def _pool_fn(op):
    def read(call):
        rank = _spatial_rank(call, int(call.name[-2]) if call.name[-2].isdigit() else 2)
        k = tup(call.arg(1, "kernel_size"), rank)
        stride = call.arg(2, "stride")
        attrs = {"rank": rank, "pool_size": k, "strides": tup(stride, rank) if stride else k,
                 "padding": conv_padding(call.arg(3, "padding", 0), rank)}
        if op == "pool_max":
            d = tup(call.arg(4, "dilation", 1), rank)
            if any(v != 1 for v in d):
                attrs["dilation"] = d
            ceil = call.arg(5, "ceil_mode", False)
        else:
            ceil = call.arg(4, "ceil_mode", False)
        if ceil:
            attrs["ceil_mode"] = True
        return op, attrs

    return read


def _adaptive_fn(mode):
    def read(call):
        rank = int(call.name[-2]) if call.name[-2].isdigit() else _spatial_rank(call)
        return adaptive_pool(rank, mode, call.arg(1, "output_size"), call)

    return read


def _reduce_fn(mode):
    """mean / max over the spatial dims of a feature map (or the steps of a sequence) ->
    global pooling; any other reduction (over channels, over one axis, over all) -> ``reduce``."""
    def read(call):
        src = call.in_shape
        dims = call.arg(1, "dim")
        if isinstance(dims, TArg) and dims.kind == "act" and mode in ("max", "min"):  # torch.max(a, b)
            return ("maximum" if mode == "max" else "minimum"), {}
        if call.name in ("std", "var"):  # std(x, dim, unbiased, keepdim): keepdim by keyword in practice
            keep = bool(call.kwargs.get("keepdim", call.arg(3, None, False)))
        else:
            keep = bool(call.arg(2, "keepdim", False))
        if src is None or isinstance(dims, TArg):
            raise ValueError("input shape unknown")
        rank = len(src)
        if dims is None or (isinstance(dims, (list, tuple)) and not dims):
            dims = list(range(rank))
        dims = sorted({int(d) % rank for d in (dims if isinstance(dims, (list, tuple)) else [dims])})
        over = list(range(1, rank - 1)) if call.layout == FL else list(range(2, rank))
        if rank >= 3 and dims == over and mode in ("avg", "max"):  # every position of a feature map or a sequence
            return "global_pool", {"mode": mode, "keepdims": keep, "rank": rank - 2}
        return "reduce", {"mode": {"avg": "mean"}.get(mode, mode), "dims": tuple(dims), "keepdims": keep}

    return read


def _dim(call, pos: int, default=0) -> int:
    """A source dim argument, non-negative."""
    rank = call.rank
    d = call.arg(pos, "dim", default)
    return int(d) % rank if rank else int(d)


def _split_fn(call):
    """chunk / split / split_with_sizes / tensor_split / unbind: parts along a dim."""
    src = call.in_shape
    if src is None:
        raise ValueError("input shape unknown")
    if call.name == "unbind":
        dim = _dim(call, 1)
        if src[dim] is None and call.batch is not None and call.out_shapes:  # a data-dependent size: as traced
            return "split", {"dim": dim, "parts": len(call.out_shapes), "squeeze": True, "traced_parts": True}
        if src[dim] is None:
            raise ValueError("unbind along a dim of unknown size")
        return "split", {"dim": dim, "parts": int(src[dim]), "squeeze": True}
    dim = _dim(call, 2)
    if call.out_shapes:
        sizes = tuple(None if s[dim] is None else int(s[dim])  # None: a data-dependent size (boxes per image)
                      for s in call.out_shapes if s is not None)
    else:  # TorchScript: from the arguments
        n, arg = src[dim], call.arg(1)
        if isinstance(arg, (list, tuple)):
            sizes = tuple(int(v) for v in arg)
        elif n is None or not isinstance(arg, int) or arg <= 0:
            raise ValueError("split sizes unknown")
        elif call.name == "chunk":
            step = -(-n // arg)
            sizes = tuple(min(step, n - i) for i in range(0, n, step))
        else:
            sizes = tuple(min(arg, n - i) for i in range(0, n, arg))
    return "split", {"dim": dim, "sizes": sizes}


def _sort_fn(call):
    """sort / argsort / topk along a dim: values and indices (argsort: indices only)."""
    if call.name == "topk":
        attrs = {"k": int(call.arg(1, "k")), "dim": _dim(call, 2, -1),
                 "largest": bool(call.arg(3, "largest", True))}
    else:
        attrs = {"k": None, "dim": _dim(call, 1, -1), "descending": bool(call.kwargs.get("descending", False))}
        if call.out_shapes is not None and len(call.out_shapes) == 1:
            attrs["indices_only"] = True
    return "sort", attrs


def _stack_fn(call):
    seq = call.arg(0, "tensors")
    first = next((t for t in _flat(seq) if isinstance(t, TArg) and t.shape is not None), None)
    if first is None:
        raise ValueError("stacked shapes unknown")
    rank = len(first.shape) + 1
    return "stack", {"dim": int(call.arg(1, "dim", 0)) % rank}


def _einsum_fn(call):
    eq = call.arg(0, "equation")
    if not isinstance(eq, str):
        raise ValueError("einsum equation unknown")
    operands = [t for t in _flat(call.args[1:] or call.kwargs.get("tensors", [])) if isinstance(t, TArg)]
    if not operands or any(t.shape is None for t in operands):
        raise ValueError("einsum operand shapes unknown")
    shapes = [(None, *t.shape[1:]) if t.kind == "act" and t.shape else tuple(t.shape) for t in operands]
    return "einsum", {"equation": eq.replace(" ", ""), "operand_shapes": [list(s) for s in shapes]}


def _sdpa_fn(call):
    """F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale): (batch, heads, T, dim)."""
    q, k, v = (call.arg(i, key) for i, key in ((0, "query"), (1, "key"), (2, "value")))
    if not all(isinstance(t, TArg) and t.shape is not None for t in (q, k, v)):
        raise ValueError("query, key or value shape unknown")
    attrs = {"num_heads": int(q.shape[-3]) if len(q.shape) >= 4 else 1, "key_dim": int(q.shape[-1]),
             "value_dim": int(v.shape[-1])}
    causal = call.kwargs.get("is_causal", call.arg(5, None, False) if call.dialect == "python" else False)
    if causal is True:
        attrs["causal"] = True
    if isinstance(call.kwargs.get("attn_mask", call.arg(3, None) if call.dialect == "python" else None), TArg):
        attrs["masked"] = True
    return "sdpa", attrs


def _window_attention_fn(call):
    """torchvision's Swin ``shifted_window_attention(input, qkv_weight, proj_weight,
    relative_position_bias, window_size, num_heads, shift_size, ..., qkv_bias, proj_bias, logit_scale)``."""
    x = call.in_shape
    heads = int(call.arg(5, "num_heads"))
    window = tuple(int(v) for v in call.arg(4, "window_size"))
    attrs = {"num_heads": heads, "window_size": window, "shift_size": tuple(int(v) for v in call.arg(6, "shift_size")),
             "key_dim": int(x[-1]) // heads if x is not None else None,
             "use_bias": isinstance(call.arg(9, "qkv_bias"), TArg)}
    if isinstance(call.arg(11, "logit_scale"), TArg):
        attrs["cosine"] = True  # Swin V2: scaled cosine attention
    return "window_attention", attrs


def _elementwise_fn(call):
    fn = call.name
    attrs = {"function": fn}
    if fn == "pow":
        e = call.arg(1, "exponent")
        if _is_scalar(e):
            attrs["exponent"] = float(e)
    return "elementwise", attrs


def _norm_fn(call):
    """torch.norm(x, p, dim, keepdim) / linalg.vector_norm(x, ord, dim, keepdim): a reduction."""
    src = call.in_shape
    if src is None:
        raise ValueError("input shape unknown")
    rank = len(src)
    dims = call.arg(2, "dim")
    dims = list(range(rank)) if dims is None else dims if isinstance(dims, (list, tuple)) else [dims]
    return "reduce", {"mode": "norm", "dims": tuple(sorted({int(d) % rank for d in dims})),
                      "keepdims": bool(call.arg(3, "keepdim", False)), "p": _num(call.arg(1, "p", call.arg(1, "ord", 2.0)))}


def _normalize_fn(call):
    """F.normalize(x, p, dim): unit norm along a dim."""
    dim = call.arg(2, "dim", 1)
    return "unitnorm", {"axis": call.canon_axis(dim), "p": _num(call.arg(1, "p", 2.0))}


def _flatten_fn(call):
    return flatten_op(int(call.arg(1, "start_dim", 0)), int(call.arg(2, "end_dim", -1)), call)


def _view_fn(call):
    sizes = call.args[1:] if call.dialect == "python" and len(call.args) > 2 else call.arg(1, "shape",
                                                                                         call.kwargs.get("size"))
    if isinstance(sizes, TArg):  # view_as(other)
        sizes = sizes.shape
    if isinstance(sizes, int):
        sizes = [sizes]
    return reshape_op(call, list(sizes) if sizes is not None else None)


def permutation(call) -> list:
    """The source dims a permute / transpose / movedim / ``t`` call puts at each output position."""
    src = call.in_shape
    rank = len(src) if src is not None else None
    name = call.name
    if name == "permute":
        dims = call.args[1:] if call.dialect == "python" and len(call.args) > 2 else call.arg(1, "dims")
        dims = [int(d) % rank for d in dims]
    elif name == "t":
        dims = list(range(rank))
        dims[-2], dims[-1] = dims[-1], dims[-2]
    else:  # transpose(x, a, b), movedim(x, src, dst)
        a = int(call.arg(1, "dim0", call.arg(1, "source"))) % rank
        b = int(call.arg(2, "dim1", call.arg(2, "destination"))) % rank
        dims = list(range(rank))
        if name == "movedim":
            d = dims.pop(a)
            dims.insert(b, d)
        else:
            dims[a], dims[b] = dims[b], dims[a]
    return dims


def _permute_fn(call):
    dims = permutation(call)
    if dims[0] != 0:  # (B, N, 3, H, D) -> (3, B, H, N, D): q, k, v first
        return "transpose", {"dims": tuple(dims)}
    return "permute", {"dims": tuple(dims[1:])}


def _lead_not_batch(call) -> bool:
    """Is the leading axis of every input something else than the example batch (traced sizes: a
    data-dependent None, the boxes, detections or anchors of a detection model, or a size other
    than the batch's)?"""
    shapes = call.in_shapes
    return call.batch is not None and bool(shapes) and all(
        s is not None and len(s) >= 1 and (s[0] is None or s[0] != call.batch) for s in shapes)


def _cat_fn(call):
    dim = call.arg(1, "dim", 0)
    rank = len(call.in_shape) if call.in_shape is not None else None
    if int(dim) % (rank or 1) == 0 and rank and not _lead_not_batch(call):
        raise ValueError("concatenation along the batch axis")
    return "concat", {"axis": call.canon_axis(dim, rank) if rank else dim}


def _binary(kind):
    """add / sub / mul / div: two activations merge; an activation and a
    constant or scalar is a fixed rescaling; times a parameter is a learned scale."""
    def read(call):
        acts = call.tensors("act")
        params = call.tensors("param")
        if len(acts) >= 2:
            if kind == "div":
                return "multiply", {"function": "divide"}
            return {"add": "add", "sub": "subtract", "rsub": "subtract", "mul": "multiply"}[kind], {}
        if params:
            if kind == "mul":
                return "scale", {}
            if kind in ("add", "sub", "rsub"):
                return ("add" if kind == "add" else "subtract"), {"operand": "parameter"}
            return "multiply", {"function": "divide", "operand": "parameter"}
        other = [a for a in call.args[:2] if not (isinstance(a, TArg) and a.kind == "act")]
        other = other[0] if other else call.kwargs.get("other")
        attrs = {}
        if _is_scalar(other):
            v = float(other)
            if kind == "mul":
                attrs["scale"] = v
            elif kind == "div":
                attrs["scale"] = 1.0 / v if v else None
            elif kind == "add":
                attrs["offset"] = v * float(call.arg(2, "alpha", 1) or 1)
            else:
                attrs["offset"] = -v
        else:
            attrs["operand"] = "constant"
        return "rescaling", attrs

    return read


def _embedding_fn(call):
    w = call.arg(0 if call.dialect == "aten" else 1, "weight")
    if not isinstance(w, TArg) or w.shape is None:
        raise ValueError("embedding table unknown")
    return "embedding", {"input_dim": int(w.shape[0]), "output_dim": int(w.shape[1])}


def _interpolate_fn(call):
    if call.name == "interpolate":
        return upsample_op(call.arg(1, "size"), call.arg(2, "scale_factor"), call.arg(3, "mode", "nearest"), call)
    mode = call.name.split("_", 1)[1] if "_" in call.name else "nearest"
    # aten.upsample_*(input, output_size, [align_corners,] scales...) or .vec(input, output_size, scale_factors)
    size = call.arg(1, "output_size")
    scale = call.arg(2, "scale_factors")
    if not isinstance(scale, (list, tuple)):
        scale = None
    return upsample_op(size if size else None, scale, mode, call)


def _pad_fn(mode):
    def read(call):
        rank = _spatial_rank(call)
        pad = call.arg(1, "pad", call.arg(1, "padding"))
        m = call.arg(2, "mode", mode) if call.name == "pad" and call.dialect == "python" else mode
        attrs = {"rank": rank, "padding": pad_pairs(list(pad), rank)}
        if m not in ("constant", "zeros"):
            attrs["mode"] = m
        value = call.arg(3 if call.dialect == "python" else 2, "value")
        if _num(value):
            attrs["value"] = _num(value)
        return "pad", attrs

    return read


def _rnn_fn(cell):
    """aten.lstm.input(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
    (gru / rnn_tanh / rnn_relu take one hx tensor)."""
    def read(call):
        hx = call.arg(1, "hx")
        h = hx[0] if isinstance(hx, (list, tuple)) else hx
        if not isinstance(h, TArg) or h.shape is None:
            raise ValueError("hidden state shape unknown")
        bidirectional = bool(call.arg(7, "bidirectional"))
        attrs = {"cell": {"rnn_tanh": "simple", "rnn_relu": "simple"}.get(cell, cell), "units": int(h.shape[-1]),
                 "return_sequences": True, "return_state": True, "bidirectional": bidirectional,
                 "use_bias": bool(call.arg(3, "has_biases", True)), "num_layers": int(call.arg(4, "num_layers", 1)),
                 "batch_first": bool(call.arg(8, "batch_first", False)), "dropout": _num(call.arg(5, "dropout"))}
        if cell == "gru":
            attrs["reset_after"] = True
        attrs["activation"] = "relu" if cell == "rnn_relu" else "tanh"
        return "rnn", attrs

    return read


def _reshape_out(call):
    """Indexing, slicing, (un)squeezing...: values moved, not changed."""
    return reshape_op(call)


FUNCTIONS: dict[str, Callable] = {}
_register(FUNCTIONS, "conv conv_transpose convolution", _conv_fn)
_register(FUNCTIONS, "linear", _linear_fn)
_register(FUNCTIONS, "addmm", _addmm_fn)
_register(FUNCTIONS, "matmul mm bmm", _matmul_fn)
_register(FUNCTIONS, "batch_norm", _batch_norm_fn)
_register(FUNCTIONS, "layer_norm", _layer_norm_fn)
_register(FUNCTIONS, "rms_norm", _rms_norm_fn)
_register(FUNCTIONS, "group_norm", _group_norm_fn)
_register(FUNCTIONS, "instance_norm", _instance_norm_fn)
for _fn in ("relu", "relu6", "selu", "silu", "mish", "sigmoid", "tanh", "softsign", "hard_silu", "hard_sigmoid",
            "log_sigmoid"):
    _register(FUNCTIONS, _fn, _act_fn(_fn))
_register(FUNCTIONS, "leaky_relu", _act_fn("leaky_relu", negative_slope=(1, "negative_slope", 0.01)))
_register(FUNCTIONS, "elu", _act_fn("elu", alpha=(1, "alpha", 1.0)))
_register(FUNCTIONS, "celu", _act_fn("celu", alpha=(1, "alpha", 1.0)))
_register(FUNCTIONS, "gelu", _act_fn("gelu", approximate=(None, "approximate", "none")))
_register(FUNCTIONS, "softplus", _act_fn("softplus", beta=(1, "beta", 1.0)))
_register(FUNCTIONS, "swish", _act_fn("silu"))
_register(FUNCTIONS, "hardtanh", _hardtanh_fn)
_register(FUNCTIONS, "clamp", _clamp_fn)
_register(FUNCTIONS, "threshold", _threshold_fn)
_register(FUNCTIONS, "prelu _prelu_kernel", _prelu_fn)
_register(FUNCTIONS, "softmax", _softmax_fn("softmax"))
_register(FUNCTIONS, "log_softmax", _softmax_fn("log_softmax"))
_register(FUNCTIONS, "dropout alpha_dropout", _dropout_fn("dropout"))
_register(FUNCTIONS, "dropout1d dropout2d dropout3d feature_alpha_dropout", _dropout_fn("spatial"))
_register(FUNCTIONS, "max_pool1d max_pool2d max_pool3d", _pool_fn("pool_max"))
_register(FUNCTIONS, "avg_pool1d avg_pool2d avg_pool3d", _pool_fn("pool_avg"))
_register(FUNCTIONS, "adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d", _adaptive_fn("avg"))
_register(FUNCTIONS, "adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d", _adaptive_fn("max"))
_register(FUNCTIONS, "mean", _reduce_fn("avg"))
_register(FUNCTIONS, "max", _reduce_fn("max"))
_register(FUNCTIONS, "min", _reduce_fn("min"))
for _fn in ("sum", "std", "var", "prod", "logsumexp", "nansum", "nanmean", "any", "all"):
    _register(FUNCTIONS, _fn, _reduce_fn(_fn))
_register(FUNCTIONS, "chunk split tensor_split unbind", _split_fn)
_register(FUNCTIONS, "sort topk", _sort_fn)
_register(FUNCTIONS, "unique unique_consecutive",  # sorted distinct values (a data-dependent count)
          lambda call: ("sort", {"k": None, "dim": 0, "function": call.name}))
_register(FUNCTIONS, "stack", _stack_fn)
_register(FUNCTIONS, "einsum", _einsum_fn)
_register(FUNCTIONS, "sdpa", _sdpa_fn)
_register(FUNCTIONS, "shifted_window_attention shifted_window_attention_3d", _window_attention_fn)
_register(FUNCTIONS, "pow rsqrt sqrt exp exp2 expm1 log log2 log10 log1p abs square reciprocal erf sin cos sign "
                     "floor ceil round trunc frac remainder fmod floor_divide", _elementwise_fn)
# comparisons and masks (a detection model's score thresholds): element-wise, no weights
_register(FUNCTIONS, "gt lt ge le eq ne greater less greater_equal less_equal logical_and logical_or logical_not "
                     "logical_xor isnan isinf isfinite and or xor where", _elementwise_fn)
_register(FUNCTIONS, "nms qnms batched_nms", lambda call: ("nms", {"iou_threshold": call.arg(2, "iou_threshold")}))
# x[i] = v (the hooks capture records the write: what reads x afterwards reads its result)
_register(FUNCTIONS, "setitem index_put masked_fill masked_scatter index_fill scatter",
          lambda call: ("elementwise", {"function": call.name}))
# torchvision's detection post-processing, folded into one call each on meta tensors (torch_datadep.FOLDED)
_register(FUNCTIONS, "paste_masks_in_image", lambda call: ("paste_masks", {"padding": call.arg(3, "padding", 1)}))
_register(FUNCTIONS, "heatmaps_to_keypoints", lambda call: ("heatmap_keypoints", {}))
_register(FUNCTIONS, "normalize", _normalize_fn)
_register(FUNCTIONS, "norm vector_norm", _norm_fn)
# values moved, duplicated or dropped, not changed: torch's and torchvision's (Swin, MViT) own helpers
_register(FUNCTIONS, "roll flip repeat_interleave unfold tile gather take_along_dim _patch_merging_pad "
                     "_get_relative_position_bias _squeeze _unsqueeze pixel_shuffle pixel_unshuffle "
                     "channel_shuffle fold im2col col2im", _reshape_out)
_register(FUNCTIONS, "_add_shortcut", lambda call: ("add", {}))
_register(FUNCTIONS, "_add_rel_pos", lambda call: ("add", {"operand": "relative position bias"}))
_register(FUNCTIONS, "flatten", _flatten_fn)
_register(FUNCTIONS, "view", _view_fn)
_register(FUNCTIONS, "permute transpose t movedim", _permute_fn)
_register(FUNCTIONS, "unsqueeze squeeze expand expand_as repeat getitem select slice narrow index unflatten "
                     "index_select", _reshape_out)
_register(FUNCTIONS, "cat", _cat_fn)
_register(FUNCTIONS, "add", _binary("add"))
_register(FUNCTIONS, "sub", _binary("sub"))
_register(FUNCTIONS, "rsub", _binary("rsub"))
_register(FUNCTIONS, "mul", _binary("mul"))
_register(FUNCTIONS, "div", _binary("div"))
_register(FUNCTIONS, "neg", lambda call: ("rescaling", {"scale": -1.0}))
_register(FUNCTIONS, "embedding", _embedding_fn)
_register(FUNCTIONS, "interpolate upsample upsample_nearest upsample_bilinear upsample_bicubic upsample_linear "
                     "upsample_trilinear", _interpolate_fn)
_register(FUNCTIONS, "pad", _pad_fn("constant"))
_register(FUNCTIONS, "reflection_pad", _pad_fn("reflect"))
_register(FUNCTIONS, "replication_pad", _pad_fn("replicate"))
_register(FUNCTIONS, "lstm", _rnn_fn("lstm"))
_register(FUNCTIONS, "gru", _rnn_fn("gru"))
_register(FUNCTIONS, "rnn_tanh", _rnn_fn("rnn_tanh"))
_register(FUNCTIONS, "rnn_relu", _rnn_fn("rnn_relu"))

# Ops that define a leaf module when it is read from its ATen ops (an exported
# program or a traced TorchScript module keep no module attributes): the first
# of these in the module's ops names the module's canonical op.
PRINCIPAL = ("conv", "conv_transpose", "convolution", "linear", "addmm", "lstm", "gru", "rnn_tanh", "rnn_relu",
             "embedding", "batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm",
             "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
             "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
             "adaptive_max_pool2d", "adaptive_max_pool3d")


# ---------------------------------------------------------------------------
# layouts: where each captured tensor keeps its features
# ---------------------------------------------------------------------------

# Modules and functions that read dim 1 as channels: what they read is channels first.
_CF_MODULE_PREFIXES = ("Conv", "BatchNorm", "SyncBatchNorm", "InstanceNorm", "GroupNorm", "MaxPool", "AvgPool",
                       "AdaptiveAvgPool", "AdaptiveMaxPool", "Upsample", "UpsamplingNearest2d",
                       "UpsamplingBilinear2d", "ZeroPad", "ConstantPad", "ReflectionPad", "ReplicationPad",
                       "CircularPad", "Dropout1d", "Dropout2d", "Dropout3d", "Softmax2d")
_CF_FUNCTIONS = frozenset(
    "conv conv_transpose convolution batch_norm instance_norm group_norm max_pool1d max_pool2d max_pool3d "
    "avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d "
    "adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d interpolate upsample upsample_nearest "
    "upsample_bilinear upsample_bicubic upsample_linear upsample_trilinear reflection_pad replication_pad "
    "dropout1d dropout2d dropout3d pixel_shuffle pixel_unshuffle".split())
# ... and those that read the last dim as features: what they read is features last.
_FL_MODULES = frozenset({"Linear", "NonDynamicallyQuantizableLinear", "LSTM", "GRU", "RNN", "MultiheadAttention",
                         "Embedding"})
_FL_FUNCTIONS = frozenset({"linear", "addmm", "lstm", "gru", "rnn_tanh", "rnn_relu", "sdpa", "embedding",
                           "shifted_window_attention", "shifted_window_attention_3d"})
# Ops whose output keeps the features where the input has them (element-wise, norms, merges, pads).
KEEPS_LAYOUT = frozenset({"activation", "dropout", "identity", "add", "subtract", "multiply", "average", "maximum",
                          "minimum", "concat", "rescaling", "scale", "batchnorm", "layernorm", "groupnorm",
                          "unitnorm", "normalization", "global_pool", "pad", "crop", "elementwise"})
_FL_OUT_OPS = frozenset({"dense", "embedding", "rnn", "attention", "dot", "sdpa", "window_attention"})
_CF_OUT_OPS = frozenset({"conv", "conv_transpose", "depthwise_conv", "separable_conv", "pool_max", "pool_avg",
                         "upsample", "resize"})
PERMUTES = frozenset({"permute", "transpose", "t", "movedim"})


def _normalized_len(shape) -> Optional[int]:
    if isinstance(shape, int):
        return 1
    return len(shape) if isinstance(shape, (list, tuple)) else None


def _reduced_layout(call) -> Optional[str]:
    """mean / max over every position: of a feature map (dims 2..) or of a sequence (dims 1..-2)."""
    src = call.in_shape
    dims = call.arg(1, "dim")
    if src is None or len(src) < 3 or dims is None or isinstance(dims, TArg):
        return None
    rank = len(src)
    try:
        dims = sorted({int(d) % rank for d in (dims if isinstance(dims, (list, tuple)) else [dims])})
    except (TypeError, ValueError):
        return None
    if dims == list(range(2, rank)):
        return CF
    if dims == list(range(1, rank - 1)):
        return FL
    return None


def input_layout(call: Call, key: Optional[str] = None, module=None, inner=None) -> Optional[str]:
    """The layout a module (``key``) or function call reads its input in (None: it does not say)."""
    if key is not None:
        if key.startswith(_CF_MODULE_PREFIXES):
            return CF
        if key in _FL_MODULES:
            return FL
        if key in ("LayerNorm", "RMSNorm"):
            n = _normalized_len(getattr(module, "normalized_shape", None)) if module is not None else None
            for c in inner or ():
                if n is None and c.name in ("layer_norm", "rms_norm"):
                    n = _normalized_len(c.arg(1, "normalized_shape"))
            return FL if n == 1 else None
        return None
    name = call.name
    if name in _CF_FUNCTIONS:
        return CF
    if name in _FL_FUNCTIONS:
        return FL
    if name in ("layer_norm", "rms_norm"):
        return FL if _normalized_len(call.arg(1, "normalized_shape")) == 1 else None
    if name in ("matmul", "mm", "bmm"):
        b = call.arg(1, "other", call.arg(1, "mat2"))
        return FL if isinstance(b, TArg) and b.kind == "param" else None
    if name in ("mean", "max"):
        return _reduced_layout(call)
    return None


def constrain_inputs(call: Call, key: Optional[str] = None, module=None, inner=None) -> None:
    """Tell the input activations whose layout is not known yet the layout this call reads them in."""
    want = input_layout(call, key, module, inner)
    if want is None:
        return
    acts = call.tensors("act")
    for t in acts if want == FL else acts[:1]:
        if t.lay is not None and t.shape is not None and len(t.shape) >= 3:
            t.lay.resolve(want)


def output_layout(op: str, call: Call) -> Optional[str]:
    """The layout an op makes whatever its input's (None: it follows its input)."""
    if op in _FL_OUT_OPS or call.name == "sdpa":
        return FL
    if op in _CF_OUT_OPS:
        return CF
    return None


def permuted(dims: list, rank: int) -> dict:
    """Input layout -> output layout of a permutation (``dims[i]``: the input dim at output position i).
    Features that land neither at dim 1 nor last map to ``(OTHER, position)``; an input with its
    features at another axis (``(OTHER, axis)``) maps the same way."""
    def at(p):
        return FL if p == rank - 1 else CF if p == 1 else (OTHER, p)

    out = {CF: at(dims.index(1)), FL: at(dims.index(rank - 1))}
    for axis in range(rank):
        if axis not in (1, rank - 1):
            out[(OTHER, axis)] = at(dims.index(axis))
    return out


def _reshape_groups(src: tuple, out: tuple):
    """[(input dims, output dims)] that a reshape merges or splits into one another (sizes
    matched by their products, left to right); None where they cannot be matched (an
    unknown or zero size)."""
    if any(not isinstance(d, int) or d <= 0 for d in (*src, *out)):
        return None
    groups, i, j = [], 0, 0
    while i < len(src) and j < len(out):
        pa, pb, ia, jb = src[i], out[j], [i], [j]
        while pa != pb:
            if pa < pb:
                i += 1
                if i >= len(src):
                    return None
                pa *= src[i]
                ia.append(i)
            else:
                j += 1
                if j >= len(out):
                    return None
                pb *= out[j]
                jb.append(j)
        groups.append((ia, jb))
        i, j = i + 1, j + 1
    return groups


def reshaped(src: tuple, layout: str, out: tuple, axis: Optional[int] = None):
    """The layout of a reshape of a tensor: where the input's feature size turns up, else the input's.
    ``axis``: the input holds its features at this axis, neither dim 1 nor last (a channel shuffle's
    transposed groups): the output has them where the reshape puts that axis."""
    if axis is not None:
        for ia, jb in _reshape_groups(tuple(src), tuple(out)) or ():
            if axis in ia and (len(ia) == 1 or len(jb) == 1):  # merged into one dim, or split (the major part)
                p = jb[0]
                return CF if p == 1 else FL if p == len(out) - 1 else (OTHER, p)
    feat = src[1] if layout == CF else src[-1]
    if layout == FL and out[-1] == feat:
        return FL
    if layout == CF and out[1] == feat:
        return CF
    if out[-1] == feat:
        return FL
    if out[1] == feat:
        return CF
    return layout


def read_module(key: str, module, call: Call) -> tuple:
    return MODULES[key](module, call)


def read_function(call: Call) -> tuple:
    reader = FUNCTIONS.get(call.name)
    if reader is None:
        return "unknown", {"function": call.name}
    return reader(call)


__all__ = ["MODULES", "FUNCTIONS", "ELIDE", "CONSTANT_MAKERS", "PRINCIPAL", "Call", "TArg", "canon_axis",
           "function_key", "key_from_qualname", "module_key", "source_type", "read_module", "read_function"]
