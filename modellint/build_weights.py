"""Small weight arrays for rule examples and tests: a builder model with its weights.

A weight rule's example is a :class:`WeightsExample`: the model (builder source, see
:mod:`modellint.build`) and a weights spec, a Python expression (our own source, never a
model file's) giving the changes from *trained-looking* weights::

    WeightsExample("seq(inp(32, 32, 3), conv(32, act='relu'), gap(), dense(10))",
                   "{'conv_1': dead(8)}")

Every layer not named in the spec gets deterministic trained-looking weights (heavy-tailed
kernels at a usual scale, units of unequal norm, BatchNorm γ around 1, running variance
around 1); ``'*'`` applies a change to every layer. The changes:

``nan(n)`` / ``inf(n)``: the first ``n`` kernel values; ``dead(n)``: zero the first ``n``
units; ``tiny(n)``: shrink them 10⁻⁴×; ``duplicate(n)``: units 1..n copies of unit 0 (scaled);
``scaled(f)``: the kernel × f; ``gamma_zero(n)`` / ``var_zero(n)``: BatchNorm channels;
``at_init(name)``: kernel freshly drawn from an initializer (``"glorot_uniform"``,
``"he_normal"``, ``"torch_default"``...; default the framework's), bias as initialised,
BatchNorm γ = 1, β = 0.
"""

from __future__ import annotations

import math
import zlib
from typing import Optional

import numpy as np

from .graph import Graph, Node


class WeightsExample(tuple):
    """``(model source, weights spec)``: a rule example that carries weights."""

    def __new__(cls, model: str, weights: str = "{}"):
        return super().__new__(cls, (model, weights))

    @property
    def model(self) -> str:
        return self[0]

    @property
    def spec(self) -> str:
        return self[1]

    def graph(self) -> Graph:
        from .build import example

        return example(self.model)

    def arrays(self, graph: Optional[Graph] = None) -> dict:
        graph = graph if graph is not None else self.graph()
        return example_weights(graph, self.spec)

    def store(self, graph: Optional[Graph] = None):
        from .analysis.weights import WeightStore

        graph = graph if graph is not None else self.graph()
        return WeightStore.from_arrays(self.arrays(graph), graph, what="example weights")


# -- shapes in each framework's layout -----------------------------------------------------------

def _cin(graph: Graph, node: Node) -> int:
    prods = graph.producers(node)
    shape = prods[0].output_shape if prods else None
    return int(shape[-1]) if shape and shape[-1] else 1


def weight_shapes(graph: Graph, node: Node) -> dict:
    """``{weight name: shape}`` of a node in its framework's layout (Keras or PyTorch)."""
    torch = graph.framework in ("torch", "onnx")
    a = node.attrs
    cin = _cin(graph, node)
    bias = a.get("use_bias", True)
    if node.op == "conv":
        k, f, g = tuple(a.get("kernel", (3, 3))), a["filters"], a.get("groups", 1) or 1
        w = (f, cin // g, *k) if torch else (*k, cin // g, f)
        return {("weight" if torch else "kernel"): w, **({"bias": (f,)} if bias else {})}
    if node.op == "depthwise_conv":
        k, m = tuple(a.get("kernel", (3, 3))), a.get("depth_multiplier", 1)
        w = (cin * m, 1, *k) if torch else (*k, cin, m)
        return {("weight" if torch else "kernel"): w, **({"bias": (cin * m,)} if bias else {})}
    if node.op == "separable_conv":
        k, f = tuple(a.get("kernel", (3, 3))), a["filters"]
        return {"depthwise_kernel": (*k, cin, 1), "pointwise_kernel": (1, 1, cin, f), **({"bias": (f,)} if bias else {})}
    if node.op == "dense":
        u = a["units"]
        return {("weight" if torch else "kernel"): ((u, cin) if torch else (cin, u)), **({"bias": (u,)} if bias else {})}
    if node.op == "embedding":
        return {("weight" if torch else "embeddings"): (a["input_dim"], a["output_dim"])}
    if node.op == "batchnorm":
        c = cin
        names = ("weight", "bias", "running_mean", "running_var") if torch else \
            ("gamma", "beta", "moving_mean", "moving_variance")
        return {n: (c,) for n in names}
    return {}


def _rng(node: str, seed: int = 0):
    return np.random.default_rng(zlib.crc32(node.encode()) + seed)


def trained(graph: Graph, node: Node) -> dict:
    """Trained-looking weights: heavy-tailed (Student t, 4 degrees of freedom) kernels at a usual
    scale (RMS × √fan_in ≈ 1), units of unequal norm, small biases; BatchNorm γ in [0.6, 1.4],
    running variance in [0.3, 2]."""
    rng = _rng(node.name)
    shapes = weight_shapes(graph, node)
    torch = graph.framework in ("torch", "onnx")
    out = {}
    for name, shape in shapes.items():
        if node.op == "batchnorm":
            lo, hi = {0: (0.6, 1.4), 1: (-0.2, 0.2), 2: (-0.5, 0.5), 3: (0.3, 2.0)}[
                list(shapes).index(name)]
            out[name] = rng.uniform(lo, hi, shape).astype(np.float32)
        elif len(shape) == 1:
            out[name] = (rng.standard_normal(shape) * 0.05).astype(np.float32)
        else:
            fan_in = _fan_in(shape, torch and name == "weight")
            w = rng.standard_t(4, shape) / math.sqrt(2) / math.sqrt(fan_in)
            units_axis = 0 if torch and name == "weight" else -1
            per = rng.uniform(0.5, 1.5, shape[units_axis])
            w = w * (per.reshape((-1,) + (1,) * (len(shape) - 1)) if units_axis == 0 else per)
            out[name] = w.astype(np.float32)
    return out


def _fan_in(shape, first: bool) -> int:
    if first:
        return int(shape[1] * (np.prod(shape[2:]) if len(shape) > 2 else 1))
    return int(shape[-2] * (np.prod(shape[:-2]) if len(shape) > 2 else 1))


# -- the changes -----------------------------------------------------------------------------------

def _kernel(arrays: dict) -> str:
    for k in ("pointwise_kernel", "kernel", "weight", "embeddings"):
        if k in arrays and arrays[k].ndim >= 2:
            return k
    raise ValueError(f"no kernel among {sorted(arrays)}")


def _units_view(arrays: dict, graph: Graph):
    k = _kernel(arrays)
    w = arrays[k]
    return (w if k == "weight" else np.moveaxis(w, -1, 0)), k   # units first (a view)


def nan(n: int = 1):
    def change(graph, node, arrays):
        arrays[_kernel(arrays)].reshape(-1)[:n] = np.nan
    return change


def inf(n: int = 1):
    def change(graph, node, arrays):
        arrays[_kernel(arrays)].reshape(-1)[:n] = np.inf
    return change


def dead(n: int):
    def change(graph, node, arrays):
        _units_view(arrays, graph)[0][:n] = 0
        if "bias" in arrays:
            arrays["bias"][:n] = 0
    return change


def tiny(n: int, factor: float = 1e-4):
    def change(graph, node, arrays):
        _units_view(arrays, graph)[0][:n] *= factor
    return change


def duplicate(n: int):
    def change(graph, node, arrays):
        w, _ = _units_view(arrays, graph)
        for i in range(1, n + 1):
            w[i] = w[0] * (0.5 + i / n)
    return change


def scaled(f: float):
    def change(graph, node, arrays):
        arrays[_kernel(arrays)] *= f
    return change


def gamma_zero(n: int):
    def change(graph, node, arrays):
        arrays["weight" if "weight" in arrays else "gamma"][:n] = 0
    return change


def var_zero(n: int):
    def change(graph, node, arrays):
        arrays["running_var" if "running_var" in arrays else "moving_variance"][:n] = 0
    return change


def at_init(name: Optional[str] = None):
    """The layer as its initializer left it (Keras' defaults: glorot_uniform kernel, zero bias;
    PyTorch's: kaiming_uniform(a=√5) weight and bias within 1/√fan_in; BatchNorm γ = 1, β = 0)."""
    def change(graph, node, arrays):
        torch = graph.framework in ("torch", "onnx")
        rng = _rng(node.name, 1)
        if node.op == "batchnorm":
            for k in arrays:
                arrays[k][...] = 1 if k in ("gamma", "weight", "moving_variance", "running_var") else 0
            return
        for k, w in arrays.items():
            if w.ndim < 2:
                continue
            first = torch and k == "weight"
            fi = _fan_in(w.shape, first)
            fo = int(w.shape[0 if first else -1] * (np.prod(w.shape[2:] if first else w.shape[:-2]) if w.ndim > 2 else 1))
            arrays[k] = draw(name or ("torch_default" if torch else "glorot_uniform"), w.shape, fi, fo, rng)
        if "bias" in arrays:
            b = 1 / math.sqrt(_fan_in(arrays[_kernel(arrays)].shape, torch))
            arrays["bias"] = (rng.uniform(-b, b, arrays["bias"].shape) if torch
                              else np.zeros_like(arrays["bias"])).astype(np.float32)
    return change


def draw(name: str, shape, fan_in: int, fan_out: int, rng) -> np.ndarray:
    """Values drawn as the named initializer draws them (Keras' normals truncated at 2σ)."""
    base, _, dist = name.rpartition("_")
    if name == "torch_default":
        b = 1 / math.sqrt(fan_in)
        return rng.uniform(-b, b, shape).astype(np.float32)
    n = {"glorot": (fan_in + fan_out) / 2, "he": fan_in / 2, "lecun": fan_in}[base]
    std = math.sqrt(1 / n)
    if dist == "uniform":
        return rng.uniform(-std * math.sqrt(3), std * math.sqrt(3), shape).astype(np.float32)
    s = std / 0.87962566103423978
    x = rng.standard_normal(int(np.prod(shape)) * 2)
    x = x[np.abs(x) <= 2][: int(np.prod(shape))]
    return (x * s).reshape(shape).astype(np.float32)


CHANGES = {f.__name__: f for f in (nan, inf, dead, tiny, duplicate, scaled, gamma_zero, var_zero, at_init)}


def example_weights(graph: Graph, spec: str = "{}") -> dict:
    """``{node: {weight name: ndarray}}`` for every weighted node of ``graph``: trained-looking,
    changed as ``spec`` says (see the module docstring)."""
    changes = eval(spec, {"__builtins__": {}}, dict(CHANGES))  # our own example source, never a model file's
    unknown = [k for k in changes if k != "*" and k not in graph.nodes]
    if unknown:
        raise ValueError(f"weights spec names no layer of the model: {unknown}")
    out = {}
    for node in graph:
        if node.shares_params_with or not weight_shapes(graph, node):
            continue
        arrays = trained(graph, node)
        for key in ("*", node.name):
            todo = changes.get(key)
            for change in (todo if isinstance(todo, (list, tuple)) else [todo] if todo else []):
                change(graph, node, arrays)
        out[node.name] = arrays
    return out


__all__ = ["WeightsExample", "example_weights", "weight_shapes", "trained", "draw", *CHANGES]
