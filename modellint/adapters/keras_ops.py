"""Keras operation layers -> canonical ops.

A functional Keras model that calls an op on a tensor (``x / 127.5 - 1``,
``keras.ops.mean(x, axis=[1, 2])``, ``keras.applications.*.preprocess_input``)
stores each call as a layer of its own: in Keras 3 a class of ``keras.src.ops.*``
(``TrueDivide``, ``Subtract``, ``Mean``, ``Transpose``...), in tf.keras 2 a
``TFOpLambda`` naming the TensorFlow function (``math.truediv``,
``__operators__.add``, ``math.reduce_mean``). These carry configuration, not
code: they are read from their name, their config and the constants of their call,
never executed.

One table per dialect maps the op's name to a reader ``(config, constants, n
tensors) -> (op, attrs)``; an op outside the tables stays ``unknown`` (its shape
comes from the next layer's record of its input).
"""

from __future__ import annotations

from typing import Callable, Optional

# -- reading the call --------------------------------------------------------------------


def call_constants(call) -> list:
    """The non-tensor arguments of one call: Keras 3 ``{"args": [...], "kwargs": {...}}``
    positional constants then keyword values; tf.keras 2 ``[[layer, i, j, {"y": 127.5}]]``
    keyword values. Tensors (``__keras_tensor__`` objects, ``[layer, i, j]`` refs) are left out."""
    out: list = []
    if isinstance(call, dict):
        for v in list(call.get("args") or []) + list((call.get("kwargs") or {}).values()):
            if not _is_tensor(v):
                out.append(v)
    elif isinstance(call, list):
        for item in call:
            if isinstance(item, list) and len(item) > 3 and isinstance(item[3], dict):
                out.extend(v for k, v in item[3].items() if k != "name" and not _is_tensor(v))
    return out


def _is_tensor(v) -> bool:
    if isinstance(v, dict):
        return v.get("class_name") == "__keras_tensor__"
    return isinstance(v, list) and 3 <= len(v) <= 4 and isinstance(v[0], str) and isinstance(v[1], int)


def _number(values) -> Optional[float]:
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


# -- readers -------------------------------------------------------------------------------

def _arith(kind: str) -> Callable:
    """``x op c`` with a constant: an element-wise affine rescaling (as a ``Rescaling`` layer);
    two tensors: the merge of that name."""
    def read(cfg, consts, n_tensors):
        if n_tensors >= 2:
            return {"add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "multiply",
                    "maximum": "maximum", "minimum": "minimum"}[kind], {}
        c = _number(consts)
        if c is None:
            return "unknown", {}
        scale, offset = {"add": (1.0, c), "subtract": (1.0, -c), "multiply": (c, 0.0),
                         "divide": (1.0 / c if c else None, 0.0)}.get(kind, (None, None))
        if scale is None:
            return "unknown", {}
        return "rescaling", {"scale": scale, "offset": offset, "from_op": kind}
    return read


def _reduce(mode: str) -> Callable:
    """A mean / max over axes: a global pooling when it removes every axis between batch
    and features (``axis=[1, 2]`` on an image, ``axis=1`` on a sequence)."""
    def read(cfg, consts, n_tensors, rank=None):
        axis = cfg.get("axis", cfg.get("reduction_indices"))
        if axis is None:
            axis = next((c for c in consts if isinstance(c, (int, list))), None)
        keepdims = bool(cfg.get("keepdims", cfg.get("keep_dims", False)))
        axes = sorted(axis if isinstance(axis, list) else [axis]) if isinstance(axis, (int, list)) else None
        if rank and axes and all(isinstance(a, int) for a in axes):
            axes = sorted(a % rank for a in axes)
            if axes == list(range(1, rank - 1)):
                return "global_pool", {"mode": mode, "keepdims": keepdims}
        return "unknown", {}
    return read


def _activation(function: str) -> Callable:
    return lambda cfg, consts, n, rank=None: ("activation", {"function": function})


def _transpose(cfg, consts, n_tensors, rank=None):
    axes = cfg.get("axes", cfg.get("perm"))
    if axes is None:
        axes = next((c for c in consts if isinstance(c, list)), None)
    if isinstance(axes, list) and axes and axes[0] == 0 and all(isinstance(a, int) for a in axes):
        return "permute", {"dims": tuple(axes[1:])}
    return "unknown", {}


def _concat(cfg, consts, n_tensors, rank=None):
    axis = cfg.get("axis", _number(consts))
    return "concat", {"axis": int(axis) if isinstance(axis, (int, float)) else -1}


def _identity(cfg, consts, n_tensors, rank=None):
    return "identity", {}


def _getitem(cfg, consts, n_tensors, rank=None):
    """``x[:, 0]``: Keras 3 records the key as the call's second argument, slices as
    ``{"class_name": "__slice__", ...}``; ``...`` and new axes stay unknown."""
    key = consts[0] if consts else None
    key = key if isinstance(key, list) else [key]
    items = []
    for k in key:
        if isinstance(k, int) and not isinstance(k, bool):
            items.append(("index", k))
        elif isinstance(k, dict) and k.get("class_name") == "__slice__" and isinstance(k.get("config"), dict):
            c = k["config"]
            bounds = (c.get("start"), c.get("stop"), c.get("step"))
            if not all(b is None or (isinstance(b, int) and not isinstance(b, bool)) for b in bounds) or bounds[2] == 0:
                return "unknown", {}
            items.append(("slice", *bounds))
        else:
            return "unknown", {}
    if not items or items[0] != ("slice", None, None, None) or (rank is not None and len(items) > rank):
        return "unknown", {}   # the batch axis sliced, or a key longer than the tensor
    return "slice", {"key": tuple(items)}


def _pad(cfg, consts, n_tensors, rank=None):
    """``keras.ops.pad`` of the spatial axes only (batch and channels unpadded): a padding layer."""
    width = cfg.get("pad_width")
    if (not isinstance(width, list) or not rank or len(width) != rank or rank < 3
            or any(not isinstance(p, list) or len(p) != 2 or not all(isinstance(v, int) for v in p) for p in width)
            or width[0] != [0, 0] or width[-1] != [0, 0]):
        return "unknown", {}
    return "pad", {"rank": rank - 2, "padding": tuple(tuple(p) for p in width[1:-1]), "mode": cfg.get("mode"),
                   "data_format": "channels_last"}


def _with_rank(reader):
    """Readers that do not need the input rank take it and ignore it."""
    return lambda cfg, consts, n, rank=None: reader(cfg, consts, n)


# Keras 3: class names of keras.src.ops.* (numpy, nn, math, core).
KERAS3 = {
    "Add": _with_rank(_arith("add")), "Subtract": _with_rank(_arith("subtract")),
    "Multiply": _with_rank(_arith("multiply")), "TrueDivide": _with_rank(_arith("divide")),
    "Divide": _with_rank(_arith("divide")), "Maximum": _with_rank(_arith("maximum")),
    "Minimum": _with_rank(_arith("minimum")),
    "Mean": _reduce("avg"), "Max": _reduce("max"), "Amax": _reduce("max"),
    "Transpose": _transpose, "Concatenate": _concat,
    "Relu": _activation("relu"), "Relu6": _activation("relu6"), "Sigmoid": _activation("sigmoid"),
    "Tanh": _activation("tanh"), "Softmax": _activation("softmax"), "LogSoftmax": _activation("log_softmax"),
    "Gelu": _activation("gelu"), "Silu": _activation("silu"), "Swish": _activation("silu"),
    "Softplus": _activation("softplus"), "Elu": _activation("elu"), "Selu": _activation("selu"),
    "LeakyRelu": _activation("leaky_relu"), "HardSigmoid": _activation("hard_sigmoid"),
    "HardSilu": _activation("hard_silu"), "Exp": _activation("exponential"),
    "Cast": _identity, "StopGradient": _identity, "ConvertToTensor": _identity,
    "GetItem": _getitem, "Pad": _pad,
}

# tf.keras 2: the TensorFlow function a TFOpLambda names (its config's "function").
TF2 = {
    "__operators__.add": _with_rank(_arith("add")), "math.add": _with_rank(_arith("add")),
    "math.subtract": _with_rank(_arith("subtract")), "__operators__.sub": _with_rank(_arith("subtract")),
    "math.multiply": _with_rank(_arith("multiply")), "__operators__.mul": _with_rank(_arith("multiply")),
    "math.truediv": _with_rank(_arith("divide")), "math.divide": _with_rank(_arith("divide")),
    "__operators__.truediv": _with_rank(_arith("divide")),
    "math.maximum": _with_rank(_arith("maximum")), "math.minimum": _with_rank(_arith("minimum")),
    "math.reduce_mean": _reduce("avg"), "math.reduce_max": _reduce("max"),
    "transpose": _transpose, "compat.v1.transpose": _transpose, "concat": _concat,
    "nn.relu": _activation("relu"), "nn.relu6": _activation("relu6"), "math.sigmoid": _activation("sigmoid"),
    "nn.sigmoid": _activation("sigmoid"), "math.tanh": _activation("tanh"), "nn.softmax": _activation("softmax"),
    "nn.log_softmax": _activation("log_softmax"), "nn.gelu": _activation("gelu"), "nn.silu": _activation("silu"),
    "nn.swish": _activation("silu"), "math.softplus": _activation("softplus"), "nn.elu": _activation("elu"),
    "nn.selu": _activation("selu"), "nn.leaky_relu": _activation("leaky_relu"),
    "cast": _identity, "identity": _identity, "stop_gradient": _identity,
}


def is_operation(class_name: str, module: Optional[str], n_tensors: int = 1) -> bool:
    """A Keras 3 operation layer (``module`` under ``keras.src.ops``) or a tf.keras 2 ``TFOpLambda``.
    Legacy ``.h5`` files drop the module: there an op name that is no layer name (``TrueDivide``,
    ``Mean``) is an operation, and so is a merge-named one (``Subtract``) called on one tensor."""
    from .keras_layers import LAYERS

    if class_name == "TFOpLambda" or (isinstance(module, str) and module.startswith("keras.src.ops")):
        return True
    return module is None and class_name in KERAS3 and (class_name not in LAYERS or n_tensors < 2)


def read_operation(class_name: str, module: Optional[str], cfg: dict, call, n_tensors: int,
                   rank: Optional[int] = None) -> tuple:
    """``(op, attrs)`` of an operation layer; ``("unknown", {...})`` for one outside the tables."""
    consts = call_constants(call)
    if class_name == "TFOpLambda":
        name = cfg.get("function")
        reader = TF2.get(name) if isinstance(name, str) else None
        label = f"TFOpLambda {name}"
    else:
        reader = KERAS3.get(class_name)
        label = class_name
    if reader is None:
        return "unknown", {"operation": label}
    try:
        op, attrs = reader(cfg, consts, n_tensors, rank)
    except (TypeError, ValueError, ZeroDivisionError):
        return "unknown", {"operation": label}
    attrs["operation"] = label
    return op, attrs
