"""A tiny, framework-free model builder, for rule examples and tests.

Rule examples read like the models they describe::

    seq(inp(128, 128, 3), bn(), conv(32, 3), pool(2), conv(64, 3, act="relu"),
        gap(), dense(13, act="softmax"), loss="categorical_crossentropy")

Layers are described by small factory functions returning :class:`Layer` specs;
:func:`seq` chains them into a :class:`~modellint.graph.Graph` using the same
op table and node-building steps as the real adapters (so shapes, parameter
counts and fused activations come out exactly as for a loaded Keras model).
:func:`residual` wraps layers in a skip connection (``x + f(x)``).

Names default to Keras-style ``conv_1``, ``dense_2``...; pass ``name=`` to choose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .infer import add_with_activation, count_node, infer_node
from .graph import Graph, Node, TrainingConfig


@dataclass
class Layer:
    op: str
    attrs: dict = field(default_factory=dict)
    name: Optional[str] = None
    source_type: str = ""
    trainable: bool = True


@dataclass
class Residual:
    layers: tuple
    name: Optional[str] = None


def _t(v, n=2):
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n


# -- layer factories ----------------------------------------------------------

def inp(*shape, name: str = "input", dtype: str = "float32") -> Layer:
    """Input of shape (H, W, C) or (features,) etc., batch dimension implied."""
    return Layer("input", {"shape": (None, *shape), "dtype": dtype}, name, "InputLayer")


def conv(filters, kernel=3, strides=1, padding="same", act="linear", bias=True, dilation=1, groups=1,
         init="glorot_uniform", name=None, rank=2, **extra) -> Layer:
    return Layer("conv", {"rank": rank, "filters": filters, "kernel": _t(kernel, rank),
                          "strides": _t(strides, rank), "dilation": _t(dilation, rank), "padding": padding,
                          "groups": groups, "use_bias": bias, "activation": act, "kernel_initializer": init,
                          **extra}, name, f"Conv{rank}D")


def dwconv(kernel=3, strides=1, padding="same", act="linear", bias=True, multiplier=1, name=None) -> Layer:
    return Layer("depthwise_conv", {"rank": 2, "kernel": _t(kernel), "strides": _t(strides),
                                    "dilation": (1, 1), "padding": padding, "use_bias": bias,
                                    "activation": act, "depth_multiplier": multiplier},
                 name, "DepthwiseConv2D")


def sepconv(filters, kernel=3, strides=1, padding="same", act="linear", bias=True, name=None) -> Layer:
    return Layer("separable_conv", {"rank": 2, "filters": filters, "kernel": _t(kernel), "strides": _t(strides),
                                    "dilation": (1, 1), "padding": padding, "use_bias": bias,
                                    "activation": act, "depth_multiplier": 1}, name, "SeparableConv2D")


def dense(units, act="linear", bias=True, init="glorot_uniform", name=None, **extra) -> Layer:
    return Layer("dense", {"units": units, "use_bias": bias, "activation": act, "kernel_initializer": init,
                           **extra}, name, "Dense")


def rnn(units, cell="lstm", return_sequences=True, bidirectional=False, batch_first=None, name=None) -> Layer:
    """A recurrent layer on ``(time, features)`` inputs: ``cell`` "lstm", "gru" or "simple".
    ``batch_first`` as PyTorch's RNNs say it (``False``: their default, time-major input);
    None for a Keras layer, which has no such argument."""
    attrs = {"cell": cell, "units": units, "return_sequences": return_sequences, "return_state": False,
             "bidirectional": bidirectional, "use_bias": True, "activation": "tanh"}
    if batch_first is not None:
        attrs["batch_first"] = bool(batch_first)
    kind = {"lstm": "LSTM", "gru": "GRU", "simple": "SimpleRNN"}[cell]
    return Layer("rnn", attrs, name, kind if batch_first is None else f"torch.nn.{kind.replace('SimpleRNN', 'RNN')}")


def bn(name=None, trainable=True) -> Layer:
    return Layer("batchnorm", {"axis": -1, "center": True, "scale": True}, name, "BatchNormalization",
                 trainable=trainable)


def embed(vocab, dim, name=None) -> Layer:
    """Token ids -> vectors (``Embedding``)."""
    return Layer("embedding", {"input_dim": vocab, "output_dim": dim}, name, "Embedding")


def mha(heads=2, key_dim=16, name=None) -> Layer:
    """Self-attention over the positions (``MultiHeadAttention(heads, key_dim)(x, x)``)."""
    return Layer("attention", {"num_heads": heads, "key_dim": key_dim}, name, "MultiHeadAttention")


def posadd(name=None) -> Layer:
    """A learned positional encoding added to every position (``x + self.pos``: one graph input)."""
    return Layer("add", {"constant_operand": True}, name, "PositionAdd")


def ln(name=None) -> Layer:
    return Layer("layernorm", {"axis": -1, "center": True, "scale": True}, name, "LayerNormalization")


def act(function, name=None) -> Layer:
    return Layer("activation", {"function": function}, name, "Activation")


def relu(name=None) -> Layer:
    return act("relu", name)


def softmax(name=None) -> Layer:
    return act("softmax", name)


def pool(size=2, strides=None, kind="max", padding="valid", name=None) -> Layer:
    op = "pool_max" if kind == "max" else "pool_avg"
    return Layer(op, {"rank": 2, "pool_size": _t(size), "strides": _t(strides or size), "padding": padding},
                 name, "MaxPooling2D" if kind == "max" else "AveragePooling2D")


def upsample(size=2, name=None) -> Layer:
    return Layer("upsample", {"size": size, "interpolation": "nearest"}, name, "UpSampling2D")


def gap(name=None) -> Layer:
    return Layer("global_pool", {"mode": "avg", "keepdims": False}, name, "GlobalAveragePooling2D")


def gmp(name=None) -> Layer:
    return Layer("global_pool", {"mode": "max", "keepdims": False}, name, "GlobalMaxPooling2D")


def flatten(name=None) -> Layer:
    return Layer("flatten", {}, name, "Flatten")


def dropout(rate=0.5, name=None) -> Layer:
    return Layer("dropout", {"variant": "dropout", "rate": rate}, name, "Dropout")


def spatial_dropout(rate=0.2, name=None) -> Layer:
    return Layer("dropout", {"variant": "spatial", "rate": rate}, name, "SpatialDropout2D")


def rescale(scale=1 / 255, offset=0.0, name=None) -> Layer:
    return Layer("rescaling", {"scale": scale, "offset": offset}, name, "Rescaling")


def normalize(name=None) -> Layer:
    return Layer("normalization", {"axis": -1, "mean": None}, name, "Normalization")


def augment(kind="flip", name=None) -> Layer:
    return Layer("augment", {"kind": kind}, name, f"Random{kind.capitalize()}")


def residual(*layers, name=None) -> Residual:
    """``x + f(x)`` where f is the chain of ``layers``."""
    return Residual(layers, name)


# -- assembling ---------------------------------------------------------------

_PREFIX = {"conv": "conv", "depthwise_conv": "dwconv", "separable_conv": "sepconv", "dense": "dense",
           "batchnorm": "bn", "layernorm": "ln", "activation": "act", "pool_max": "pool", "pool_avg": "pool",
           "global_pool": "gap", "flatten": "flatten", "dropout": "dropout", "rescaling": "rescale",
           "normalization": "norm", "augment": "aug", "add": "add"}


class _Chain:
    def __init__(self, graph: Graph):
        self.g = graph
        self.counts: dict = {}

    def name(self, layer_name, op):
        if layer_name:
            return layer_name
        prefix = _PREFIX.get(op, op)
        self.counts[prefix] = self.counts.get(prefix, 0) + 1
        return f"{prefix}_{self.counts[prefix]}"

    def add(self, spec: Layer, ref: Optional[str]) -> str:
        if spec.op == "input":
            node = Node(name=spec.name, op="input", source_type="InputLayer", attrs={"dtype": spec.attrs["dtype"]},
                        output_shapes=[tuple(spec.attrs["shape"])])
            self.g.add(node)
            self.g.inputs.append(node.name)
            return node.name
        node = Node(name=self.name(spec.name, spec.op), op=spec.op, source_type=spec.source_type,
                    attrs=dict(spec.attrs), inputs=[ref])
        in_shapes = [self.g.shape_of(ref)]
        infer_node(node, in_shapes)
        count_node(node, in_shapes, spec.trainable)
        return add_with_activation(self.g, node)

    def residual(self, block: Residual, ref: str) -> str:
        out = ref
        for spec in block.layers:
            out = self.add(spec, out)
        node = Node(name=self.name(block.name, "add"), op="add", source_type="Add", inputs=[ref, out])
        infer_node(node, [self.g.shape_of(ref), self.g.shape_of(out)])
        self.g.add(node)
        return node.name


def seq(*layers, name: str = "model", loss: Optional[str] = None, optimizer: Optional[str] = None,
        lr: Optional[float] = None, from_logits: Optional[bool] = None, framework: str = "keras",
        metrics: Optional[tuple] = None, **optimizer_config) -> Graph:
    """Chain ``layers`` (the first one an :func:`inp`) into a Graph.

    ``loss``/``optimizer``/``lr``/``from_logits`` fill ``Graph.training`` as a
    compiled Keras model would (``framework="torch"``: a PyTorch model with the loss its
    user states, e.g. ``loss="CrossEntropyLoss"``); ``metrics`` as compiled (``("accuracy",)``);
    extra keywords go to the optimizer config
    (``momentum=0.9``, ``weight_decay=1e-4``, ``epsilon=1e-7``).
    """
    if not layers or not isinstance(layers[0], Layer) or layers[0].op != "input":
        raise ValueError("seq() starts with inp(...)")
    g = Graph(name=name, framework=framework, source_format="builder", model_class="Sequential")
    chain = _Chain(g)
    ref = None
    for spec in layers:
        ref = chain.residual(spec, ref) if isinstance(spec, Residual) else chain.add(spec, ref)
    g.outputs = [ref]
    if loss is not None or optimizer is not None or metrics:
        if from_logits is None and loss and "crossentropy" in loss and framework == "keras":
            from_logits = False
        g.training = TrainingConfig(loss=loss, from_logits=from_logits, optimizer=optimizer, learning_rate=lr,
                                    optimizer_config=dict(optimizer_config), metrics=list(metrics or []))
    return g


#: Everything a rule example may use (rule docs show examples in this vocabulary).
NAMESPACE = {f.__name__: f for f in (inp, embed, mha, posadd, conv, dwconv, sepconv, dense, rnn, bn, ln, act, relu, softmax, pool,
                                     upsample, gap, gmp, flatten, dropout, spatial_dropout, rescale, normalize,
                                     augment, residual, seq)}


def example_facts(source: str) -> dict:
    """The dataset facts an example states in a trailing comment:
    ``seq(...)  # with classes=10, task=regression`` -> ``{"classes": 10, "task": "regression"}``."""
    _, sep, comment = source.partition("# with ")
    facts = {}
    for part in comment.split(",") if sep else ():
        key, _, value = part.strip().partition("=")
        if key and value:
            facts[key.strip()] = int(value) if value.strip().isdigit() else value.strip()
    return facts


def example(source: str) -> Graph:
    """Evaluate a rule example written in the builder vocabulary."""
    return eval(source, {"__builtins__": {}}, dict(NAMESPACE))  # our own example strings only
