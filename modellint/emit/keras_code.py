"""Graph -> functional Keras 3 code: the inverse of the Keras adapters.

:func:`emit_keras` writes a module with ``build_model()`` (``keras.Input`` then
one ``layers.X(...)(...)`` call per node, layer names kept) and
``compile_model(model)`` (the loss, optimizer and metrics of ``graph.training``).
A fused activation node (``dense_1.activation``) goes back into its layer's
``activation=`` argument. :func:`save_keras` runs that code (modellint's own, never
a file's), assigns the kept weights by layer name and saves a ``.keras`` file.

Shapes: a Keras graph is written in its own layout (its layers carry
``data_format``); a graph from another framework is written channels-last, the
graph's canonical layout.
"""

from __future__ import annotations

import re
from typing import Optional

from ..graph import Graph, Node, split_ref
from .common import EmitError, Names, canonical_to_source_axis, header, lit, plain_name, topo_nodes

# activation functions Keras 3 knows by name (keras.activations.get)
KERAS_ACTIVATIONS = frozenset({
    "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "hard_silu", "hard_swish",
    "mish", "softplus", "softsign", "tanh", "sigmoid", "hard_sigmoid", "softmax", "log_softmax",
    "linear", "exponential", "celu", "glu", "hard_tanh", "log_sigmoid", "sparse_plus", "squareplus",
    "tanh_shrink", "hard_shrink", "soft_shrink", "threshold",
})
_ACT_ALIASES = {"logsigmoid": "log_sigmoid", "hardtanh": "hard_tanh", "hardsigmoid": "hard_sigmoid",
                "hardswish": "hard_silu", "tanhshrink": "tanh_shrink", "identity": "linear"}

_INITIALIZERS = frozenset({
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
    "zeros", "ones", "orthogonal", "random_normal", "random_uniform", "truncated_normal",
})

_OPTIMIZERS = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adamw": "AdamW", "adagrad": "Adagrad",
               "adadelta": "Adadelta", "adamax": "Adamax", "nadam": "Nadam", "ftrl": "Ftrl", "lion": "Lion",
               "adafactor": "Adafactor", "lamb": "Lamb"}
_OPTIMIZER_ARGS = ("momentum", "nesterov", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm",
                   "beta_1", "beta_2", "epsilon", "amsgrad", "rho", "centered")
_LOGIT_LOSSES = {"categorical_crossentropy": "CategoricalCrossentropy",
                 "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
                 "binary_crossentropy": "BinaryCrossentropy",
                 "binary_focal_crossentropy": "BinaryFocalCrossentropy",
                 "categorical_focal_crossentropy": "CategoricalFocalCrossentropy"}

_MERGES = {"add": "Add", "subtract": "Subtract", "multiply": "Multiply", "average": "Average",
           "maximum": "Maximum", "minimum": "Minimum", "concat": "Concatenate", "dot": "Dot"}
_DROPOUTS = {"dropout": "Dropout", "gaussian": "GaussianDropout", "alpha": "AlphaDropout"}
_AUGMENT = {"flip": "RandomFlip", "rotation": "RandomRotation", "zoom": "RandomZoom",
            "translation": "RandomTranslation", "contrast": "RandomContrast", "brightness": "RandomBrightness",
            "height": "RandomHeight", "width": "RandomWidth", "crop": "RandomCrop"}


def keras_layer_names(graph: Graph) -> dict:
    """``{node name: Keras layer name}`` as :func:`emit_keras` writes them (Keras
    refuses ``/`` in a name: a nested model's ``outer/conv`` becomes ``outer_conv``)."""
    out, used = {}, set()
    for node in graph:
        base = node.name.replace("/", "_") or "layer"
        name, i = base, 1
        while name in used:
            i += 1
            name = f"{base}_{i}"
        used.add(name)
        out[node.name] = name
    return out


def _activation_name(fn, node) -> str:
    fn = _ACT_ALIASES.get(fn, fn)
    if fn not in KERAS_ACTIVATIONS:
        raise EmitError(node, f"activation {fn!r} has no Keras equivalent")
    return fn


class _KerasWriter:
    def __init__(self, graph: Graph):
        self.g = graph
        self.layout = graph.layout if graph.framework == "keras" else "channels_last"
        self.names = keras_layer_names(graph)
        self.vars = Names(reserved={"x", "inputs", "outputs", "model"})
        self.lines: list = []
        self.alias: dict = {}       # fused activation node -> its layer
        self.fused: dict = {}       # layer -> activation function folded into it

    # -- helpers -------------------------------------------------------------------
    def in_shape(self, node: Node, i: int = 0):
        return self.g.shape_of(node.inputs[i]) if len(node.inputs) > i else None

    def rank(self, node: Node) -> int:
        r = node.attrs.get("rank")
        if isinstance(r, int) and not isinstance(r, bool):
            return r
        x = self.in_shape(node)
        if x is None:
            raise EmitError(node, "its input shape is unknown, so its rank is")
        return len(x) - 2

    def axis(self, node: Node, axis):
        x = self.in_shape(node)
        if axis is None or x is None:
            return axis
        rank = len(x)
        if isinstance(axis, (list, tuple)):
            return [self.axis(node, a) for a in axis]
        p = canonical_to_source_axis(axis, rank, self.layout)
        return -1 if p == rank - 1 else p

    def common(self, node: Node, kw: list) -> list:
        fmt = node.attrs.get("data_format")
        if fmt == "channels_first" and self.layout == "channels_first":
            kw.append(f"data_format={lit(fmt)}")
        kw.append(f"name={lit(self.names[node.name])}")
        return kw

    def act_kw(self, node: Node) -> list:
        fn = self.fused.get(node.name, "linear")
        return [f"activation={lit(_activation_name(fn, node))}"] if fn != "linear" else []

    def init_kw(self, node: Node, key="kernel_initializer", default="glorot_uniform") -> list:
        init = node.attrs.get(key)
        if init and init != default and init in _INITIALIZERS:
            return [f"{key}={lit(init)}"]
        return []

    def padding(self, node: Node, rank: int, pool=False):
        """(keras padding string, ZeroPadding pairs to put first or None)."""
        pad = node.attrs.get("padding", "valid")
        if isinstance(pad, str):
            pad = pad.lower()
            if pad not in ("same", "valid", "causal"):
                raise EmitError(node, f"padding {pad!r} has no Keras equivalent")
            return pad, None
        pairs = tuple(tuple(int(v) for v in (p if isinstance(p, (list, tuple)) else (p, p))) for p in pad)
        if len(pairs) == 1 and rank > 1:
            pairs = pairs * rank
        if all(lo == 0 and hi == 0 for lo, hi in pairs):
            return "valid", None
        size = node.attrs.get("pool_size" if pool else "kernel") or (1,) * rank
        size = tuple(size) if isinstance(size, (list, tuple)) else (size,) * rank
        strides = node.attrs.get("strides") or (1,) * rank
        strides = tuple(strides) if isinstance(strides, (list, tuple)) else (strides,) * rank
        dil = node.attrs.get("dilation") or (1,) * rank
        dil = tuple(dil) if isinstance(dil, (list, tuple)) else (dil,) * rank
        if all(s == 1 for s in strides) and all(
                lo == hi and 2 * lo == d * (k - 1) for (lo, hi), k, d in zip(pairs, size, dil)):
            return "same", None
        if pool:
            raise EmitError(node, f"pooling with explicit padding {pairs} has no Keras equivalent")
        return "valid", pairs

    def var_of(self, ref: str) -> str:
        name, idx = split_ref(ref)
        name = self.alias.get(name, name)
        node = self.g.nodes[name]
        v = self.vars(name)
        return f"{v}[{idx}]" if len(node.output_shapes) > 1 or idx else v

    def args_of(self, node: Node) -> str:
        ins = [self.var_of(r) for r in node.inputs]
        if node.op in _MERGES:
            return "[" + ", ".join(ins) + "]"
        if node.op == "attention":
            return ", ".join(ins)
        if len(ins) != 1:
            raise EmitError(node, f"{len(ins)} inputs to a one-input layer")
        return ins[0]

    # -- one node --------------------------------------------------------------------
    def layer_expr(self, node: Node):
        """``(expression of the layer, [ZeroPadding line before it] or None)``."""
        a, op = node.attrs, node.op
        kw: list = []
        if op in ("conv", "depthwise_conv", "separable_conv", "conv_transpose"):
            r = self.rank(node)
            if a.get("time_distributed") or a.get("bidirectional"):
                raise EmitError(node, "a wrapped convolution (TimeDistributed) is not written yet")
            pad, pre = self.padding(node, r)
            cls = {"conv": f"Conv{r}D", "depthwise_conv": f"DepthwiseConv{r}D",
                   "separable_conv": f"SeparableConv{r}D", "conv_transpose": f"Conv{r}DTranspose"}[op]
            if op == "depthwise_conv" and r not in (1, 2):
                raise EmitError(node, f"Keras has no {r}-D depthwise convolution")
            pos = [] if op == "depthwise_conv" else [lit(a["filters"], node)]
            pos.append(lit(tuple(a["kernel"]), node))
            strides = tuple(a.get("strides") or (1,) * r)
            kw = [f"strides={lit(strides, node)}"] if any(x != 1 for x in strides) else []
            kw += [f"padding={lit(pad)}"] if pad != "valid" else []
            if op == "conv_transpose" and a.get("output_padding") is not None:
                kw.append(f"output_padding={lit(tuple(a['output_padding']), node)}")
            dil = tuple(a.get("dilation") or (1,) * r)
            if any(d != 1 for d in dil):
                kw.append(f"dilation_rate={lit(dil, node)}")
            if op == "conv" and (a.get("groups") or 1) != 1:
                kw.append(f"groups={lit(a['groups'], node)}")
            if op in ("depthwise_conv", "separable_conv") and (a.get("depth_multiplier") or 1) != 1:
                kw.append(f"depth_multiplier={lit(a['depth_multiplier'], node)}")
            kw += self.act_kw(node)
            if not a.get("use_bias", True):
                kw.append("use_bias=False")
            kw += self.init_kw(node, "depthwise_initializer" if op == "depthwise_conv" else "kernel_initializer") \
                if op != "depthwise_conv" else []
            return f"layers.{cls}({', '.join(pos + self.common(node, kw))})", pre
        if op == "dense":
            if a.get("time_distributed"):
                raise EmitError(node, "a TimeDistributed Dense is not written yet")
            kw = [lit(a["units"], node)] + self.act_kw(node)
            if not a.get("use_bias", True):
                kw.append("use_bias=False")
            kw += self.init_kw(node)
            return f"layers.Dense({', '.join(self.common(node, kw))})", None
        if op == "batchnorm":
            axis = self.axis(node, a.get("axis", -1))
            if axis != -1:
                kw.append(f"axis={lit(axis, node)}")
            mom = a.get("momentum")
            if mom is not None and self.g.framework == "torch":
                mom = 1.0 - float(mom)            # torch's momentum weighs the new batch, Keras' the old average
            if mom is not None and mom != 0.99:
                kw.append(f"momentum={lit(float(mom), node)}")
            eps = a.get("epsilon")
            if eps is not None and eps != 1e-3:
                kw.append(f"epsilon={lit(float(eps), node)}")
            if not a.get("center", True):
                kw.append("center=False")
            if not a.get("scale", True):
                kw.append("scale=False")
            return f"layers.BatchNormalization({', '.join(self.common(node, kw))})", None
        if op == "layernorm":
            axis = self.axis(node, a.get("axis", -1))
            eps = a.get("epsilon")
            if a.get("rms"):
                kw = [f"axis={lit(axis, node)}"] + ([f"epsilon={lit(float(eps), node)}"] if eps is not None else [])
                return f"layers.RMSNormalization({', '.join(self.common(node, kw))})", None
            if axis != -1:
                kw.append(f"axis={lit(axis, node)}")
            if eps is not None and eps != 1e-3:
                kw.append(f"epsilon={lit(float(eps), node)}")
            if not a.get("center", True):
                kw.append("center=False")
            if not a.get("scale", True):
                kw.append("scale=False")
            return f"layers.LayerNormalization({', '.join(self.common(node, kw))})", None
        if op == "groupnorm":
            kw = [f"groups={lit(a.get('groups'), node)}", f"axis={lit(self.axis(node, a.get('axis', -1)), node)}"]
            if not a.get("center", True):
                kw.append("center=False")
            if not a.get("scale", True):
                kw.append("scale=False")
            return f"layers.GroupNormalization({', '.join(self.common(node, kw))})", None
        if op == "unitnorm":
            kw = [f"axis={lit(self.axis(node, a.get('axis', -1)), node)}"]
            return f"layers.UnitNormalization({', '.join(self.common(node, kw))})", None
        if op == "activation":
            return self.activation_expr(node), None
        if op == "dropout":
            variant = a.get("variant", "dropout")
            rate = float(a.get("rate") or 0.0)
            if variant == "spatial":
                return f"layers.SpatialDropout{self.rank(node)}D({', '.join(self.common(node, [lit(rate)]))})", None
            if variant == "noise":
                return f"layers.GaussianNoise({', '.join(self.common(node, [lit(rate)]))})", None
            if variant not in _DROPOUTS:
                raise EmitError(node, f"dropout variant {variant!r} has no Keras layer")
            return f"layers.{_DROPOUTS[variant]}({', '.join(self.common(node, [lit(rate)]))})", None
        if op in ("pool_max", "pool_avg"):
            r = self.rank(node)
            if a.get("ceil_mode"):
                raise EmitError(node, "ceil_mode pooling has no Keras equivalent")
            pad, _ = self.padding(node, r, pool=True)
            size = tuple(a.get("pool_size") or (2,) * r)
            strides = tuple(a.get("strides") or size)
            kw = [lit(size, node)]
            if strides != size:
                kw.append(f"strides={lit(strides, node)}")
            if pad != "valid":
                kw.append(f"padding={lit(pad)}")
            cls = ("MaxPooling" if op == "pool_max" else "AveragePooling") + f"{r}D"
            return f"layers.{cls}({', '.join(self.common(node, kw))})", None
        if op == "global_pool":
            r = self.rank(node)
            if r not in (1, 2, 3):
                raise EmitError(node, f"global pooling over {r} spatial dims")
            cls = ("GlobalAveragePooling" if a.get("mode", "avg") == "avg" else "GlobalMaxPooling") + f"{r}D"
            if a.get("mode", "avg") not in ("avg", "max"):
                raise EmitError(node, f"global {a.get('mode')} pooling has no Keras layer")
            kw = ["keepdims=True"] if a.get("keepdims") else []
            return f"layers.{cls}({', '.join(self.common(node, kw))})", None
        if op == "flatten":
            return f"layers.Flatten({', '.join(self.common(node, []))})", None
        if op == "reshape":
            target = a.get("target_shape")
            if not isinstance(target, (list, tuple)):
                raise EmitError(node, "its target shape is unknown")
            return f"layers.Reshape({', '.join(self.common(node, [lit(tuple(target), node)]))})", None
        if op == "permute":
            return f"layers.Permute({', '.join(self.common(node, [lit(tuple(a['dims']), node)]))})", None
        if op == "repeat":
            return f"layers.RepeatVector({', '.join(self.common(node, [lit(a['n'], node)]))})", None
        if op in ("pad", "crop"):
            r = self.rank(node)
            key = "padding" if op == "pad" else "cropping"
            pairs = tuple(tuple(p) for p in a[key])
            cls = ("ZeroPadding" if op == "pad" else "Cropping") + f"{r}D"
            val = pairs[0] if r == 1 else pairs
            return f"layers.{cls}({', '.join(self.common(node, [lit(val, node)]))})", None
        if op == "upsample":
            r = self.rank(node)
            kw = [lit(tuple(a.get("size") or (2,) * r) if r > 1 else (a.get("size") or (2,))[0], node)]
            if r == 2 and a.get("interpolation", "nearest") != "nearest":
                kw.append(f"interpolation={lit(a['interpolation'], node)}")
            return f"layers.UpSampling{r}D({', '.join(self.common(node, kw))})", None
        if op in _MERGES:
            if a.get("scale") is not None:
                raise EmitError(node, "a scaled sum (CustomScaleLayer) has no Keras layer")
            if op == "concat":
                axis = self.axis(node, a.get("axis", -1))
                kw = [f"axis={lit(axis, node)}"] if axis != -1 else []
            elif op == "dot":
                kw = [f"axes={lit(a.get('axes', -1), node)}"]
                if a.get("normalize"):
                    kw.append("normalize=True")
            return f"layers.{_MERGES[op]}({', '.join(self.common(node, kw))})", None
        if op == "embedding":
            kw = [lit(a["input_dim"], node), lit(a["output_dim"], node)]
            return f"layers.Embedding({', '.join(self.common(node, kw))})", None
        if op == "rnn":
            return self.rnn_expr(node), None
        if op == "rescaling":
            scale = a.get("scale")
            if not isinstance(scale, (int, float)) or isinstance(scale, bool):
                raise EmitError(node, "its scale is not one number")
            kw = [lit(float(scale), node)]
            off = a.get("offset") or 0.0
            if off:
                kw.append(f"offset={lit(float(off), node)}")
            return f"layers.Rescaling({', '.join(self.common(node, kw))})", None
        if op == "normalization":
            kw = []
            axis = a.get("axis", -1)
            if axis is not None and axis != -1:
                kw.append(f"axis={lit(self.axis(node, axis), node)}")
            if a.get("mean") is not None:
                kw += [f"mean={lit(a['mean'], node)}", f"variance={lit(a.get('variance'), node)}"]
            if a.get("invert"):
                kw.append("invert=True")
            return f"layers.Normalization({', '.join(self.common(node, kw))})", None
        if op == "attention":
            kw = [f"num_heads={lit(a['num_heads'], node)}", f"key_dim={lit(a['key_dim'], node)}"]
            if a.get("value_dim") is not None:
                kw.append(f"value_dim={lit(a['value_dim'], node)}")
            if a.get("output_shape") is not None:
                kw.append(f"output_shape={lit(a['output_shape'], node)}")
            if not a.get("use_bias", True):
                kw.append("use_bias=False")
            if a.get("dropout"):
                kw.append(f"dropout={lit(float(a['dropout']), node)}")
            if a.get("return_attention_scores"):
                raise EmitError(node, "attention returning its scores is not written yet")
            return f"layers.MultiHeadAttention({', '.join(self.common(node, kw))})", None
        if op == "identity":
            kind = a.get("kind")
            if kind == "masking":
                kw = [f"mask_value={lit(float(a.get('mask_value', 0.0)), node)}"]
                return f"layers.Masking({', '.join(self.common(node, kw))})", None
            return f"layers.Identity({', '.join(self.common(node, []))})", None
        if op == "augment":
            return self.augment_expr(node), None
        if op == "resize":
            kw = [lit(a["height"], node), lit(a["width"], node)]
            cls = "CenterCrop" if node.source_type == "CenterCrop" else "Resizing"
            if cls == "Resizing" and a.get("interpolation") not in (None, "bilinear"):
                kw.append(f"interpolation={lit(a['interpolation'], node)}")
            return f"layers.{cls}({', '.join(self.common(node, kw))})", None
        if op == "unknown":
            raise EmitError(node, "modellint does not know this layer, so cannot write it")
        raise EmitError(node, "no Keras layer is written for this op yet")

    def activation_expr(self, node: Node) -> str:
        a = node.attrs
        fn = a.get("function")
        st = node.source_type
        if fn == "prelu":
            kw = []
            if a.get("shared_axes"):
                x = self.in_shape(node)
                axes = a["shared_axes"]
                if x is not None:   # stored as canonical non-negative axes; Keras counts from 1 without batch
                    axes = [canonical_to_source_axis(ax - len(x), len(x), self.layout) for ax in axes]
                kw.append(f"shared_axes={lit(list(axes), node)}")
            return f"layers.PReLU({', '.join(self.common(node, kw))})"
        if st == "ReLU" or (fn in ("relu", "relu6", "leaky_relu") and st == "ReLU"):
            kw = []
            if a.get("max_value") is not None:
                kw.append(f"max_value={lit(float(a['max_value']), node)}")
            if a.get("negative_slope"):
                kw.append(f"negative_slope={lit(float(a['negative_slope']), node)}")
            if a.get("threshold"):
                kw.append(f"threshold={lit(float(a['threshold']), node)}")
            return f"layers.ReLU({', '.join(self.common(node, kw))})"
        if fn == "leaky_relu" and (st == "LeakyReLU" or a.get("negative_slope") not in (None, 0.2)):
            slope = a.get("negative_slope", a.get("alpha"))
            kw = [f"negative_slope={lit(float(slope), node)}"] if slope is not None else []
            return f"layers.LeakyReLU({', '.join(self.common(node, kw))})"
        if fn == "elu" and st == "ELU":
            kw = [f"alpha={lit(float(a.get('alpha', 1.0)), node)}"] if a.get("alpha", 1.0) != 1.0 else []
            return f"layers.ELU({', '.join(self.common(node, kw))})"
        if fn == "softmax" and (st == "Softmax" or a.get("axis") not in (None, -1)):
            axis = a.get("axis", -1)
            kw = [f"axis={lit(axis, node)}"] if axis != -1 else []
            return f"layers.Softmax({', '.join(self.common(node, kw))})"
        return f"layers.Activation({', '.join(self.common(node, [lit(_activation_name(fn, node))]))})"

    def rnn_expr(self, node: Node) -> str:
        a = node.attrs
        cell = a.get("cell")
        cls = {"lstm": "LSTM", "gru": "GRU", "simple": "SimpleRNN"}.get(cell)
        if cls is None:
            raise EmitError(node, f"recurrent cell {cell!r} has no Keras layer")
        if a.get("double_bias") and cell == "lstm":
            raise EmitError(node, "a cuDNN LSTM's two bias vectors have no Keras 3 layer")
        if (a.get("num_layers") or 1) != 1:
            raise EmitError(node, "a stacked recurrent module is not written as Keras layers yet")
        if a.get("time_distributed"):
            raise EmitError(node, "a TimeDistributed recurrent layer is not written")
        kw = [lit(a["units"], node)]
        if a.get("return_sequences"):
            kw.append("return_sequences=True")
        if a.get("return_state"):
            kw.append("return_state=True")
        act = a.get("activation", "tanh")
        if act not in (None, "tanh"):
            kw.append(f"activation={lit(_activation_name(act, node))}")
        if not a.get("use_bias", True):
            kw.append("use_bias=False")
        if cell == "gru":
            kw.append(f"reset_after={bool(a.get('reset_after', True))!r}")
        if a.get("bidirectional"):
            inner = f"layers.{cls}({', '.join(kw)})"
            merge = a.get("merge_mode", "concat")
            return (f"layers.Bidirectional({inner}, merge_mode={lit(merge)}, "
                    f"name={lit(self.names[node.name])})")
        return f"layers.{cls}({', '.join(self.common(node, kw))})"

    def augment_expr(self, node: Node) -> str:
        a = node.attrs
        kind = a.get("kind")
        cls = _AUGMENT.get(kind)
        if cls is None:
            raise EmitError(node, f"augmentation {node.source_type or kind!r} is not written yet")
        kw = []
        if kind == "crop":
            kw = [lit(a["height"], node), lit(a["width"], node)]
        elif kind == "flip":
            kw = [lit(a.get("mode") or "horizontal_and_vertical")]
        elif kind in ("zoom", "translation"):
            if a.get("height_factor") is None:
                raise EmitError(node, "its factors were not read from the source")
            kw = [lit(a["height_factor"], node)]
            if a.get("width_factor") is not None:
                kw.append(f"width_factor={lit(a['width_factor'], node)}")
        else:
            factor = a.get("factor")
            if factor is None:
                raise EmitError(node, "its factor was not read from the source")
            kw = [lit(factor, node)]
        return f"layers.{cls}({', '.join(self.common(node, kw))})"

    # -- the module ----------------------------------------------------------------------
    def plan(self) -> list:
        order = topo_nodes(self.g)
        for node in order:
            if node.op == "activation" and node.fused_into and node.inputs and \
                    split_ref(node.inputs[0])[0] == node.fused_into and node.fused_into in self.g.nodes:
                layer = self.g.nodes[node.fused_into]
                if layer.op in ("conv", "conv_transpose", "depthwise_conv", "separable_conv", "dense") \
                        and layer.name not in self.fused and len(node.inputs) == 1:
                    self.fused[layer.name] = node.attrs.get("function", "linear")
                    self.alias[node.name] = layer.name
        return [n for n in order if n.name not in self.alias]

    def write(self) -> str:
        emitted = self.plan()
        outputs = [self.alias.get(split_ref(r)[0], split_ref(r)[0]) for r in self.g.outputs]
        uses: dict = {}
        for n in emitted:
            for r in n.inputs:
                p = self.alias.get(split_ref(r)[0], split_ref(r)[0])
                uses.setdefault(p, []).append(n.name)
        # a value used once, by the very next line, is `x`
        for i, n in enumerate(emitted):
            nxt = emitted[i + 1] if i + 1 < len(emitted) else None
            if (n.op != "input" and nxt is not None and uses.get(n.name) == [nxt.name] and n.name not in outputs
                    and len(n.output_shapes) <= 1 and len(nxt.inputs) == 1):
                self.vars.by_key[n.name] = "x"
        body = []
        input_vars = []
        for node in emitted:
            if node.op == "input":
                shape = node.output_shape
                if shape is None:
                    raise EmitError(node, "the input's shape is unknown")
                src = self.g.display_shape(shape) if self.layout == "channels_first" else shape
                v = self.vars(node.name)
                input_vars.append(v)
                dtype = node.attrs.get("dtype") or "float32"
                kw = [f"shape={lit(tuple(src[1:]), node)}"]
                if dtype != "float32" and plain_name(dtype):
                    kw.append(f"dtype={lit(dtype)}")
                batch = src[0]
                if batch is not None:
                    kw.append(f"batch_size={lit(batch, node)}")
                kw.append(f"name={lit(self.names[node.name])}")
                body.append(f"{v} = keras.Input({', '.join(kw)})")
                continue
            expr, pre = self.layer_expr(node)
            args = self.args_of(node)
            if pre is not None:
                r = self.rank(node)
                pname = self.names[node.name] + "_pad"
                pv = self.vars(node.name + "\0pad", hint=pname)
                val = pre[0] if r == 1 else pre
                body.append(f"{pv} = layers.ZeroPadding{r}D({lit(val, node)}, name={lit(pname)})({args})")
                args = pv
            body.append(f"{self.vars(node.name)} = {expr}({args})")
        ins = input_vars[0] if len(input_vars) == 1 else "[" + ", ".join(input_vars) + "]"
        outs = [self.var_of(r) for r in self.g.outputs]
        if not outs:
            raise EmitError(None, "the graph has no outputs")
        outs_s = outs[0] if len(outs) == 1 else "[" + ", ".join(outs) + "]"
        body.append(f"return keras.Model({ins}, {outs_s}, name={lit(_model_name(self.g.name))})")
        lines = [header(self.g, "A Keras model"), "import keras", "from keras import layers", "", "",
                 "def build_model():", '    """The model\'s layers, in the functional API."""']
        lines += ["    " + b for b in body]
        lines += ["", ""] + self.compile_lines() + ["", "", 'if __name__ == "__main__":',
                                                    "    compile_model(build_model()).summary()", ""]
        return "\n".join(lines)

    def compile_lines(self) -> list:
        t = self.g.training
        lines = ["def compile_model(model):", '    """The loss, optimizer and metrics the source model was compiled with."""']
        if t is None or (not t.loss and not t.optimizer) or t.assumed:
            return lines + ["    return model  # the source recorded no training configuration"]
        kw = []
        if t.optimizer and t.optimizer.lower() in _OPTIMIZERS:
            okw = []
            if t.learning_rate is not None:
                okw.append(f"learning_rate={lit(float(t.learning_rate))}")
            cfg = t.optimizer_config or {}
            for key in _OPTIMIZER_ARGS:
                v = cfg.get(key)
                if isinstance(v, bool) or (isinstance(v, (int, float)) and v == v):
                    if v is False and key in ("nesterov", "amsgrad", "centered"):
                        continue
                    if key == "momentum" and v == 0:
                        continue
                    okw.append(f"{key}={lit(v)}")
            kw.append(f"optimizer=keras.optimizers.{_OPTIMIZERS[t.optimizer.lower()]}({', '.join(okw)})")
        if t.loss and plain_name(t.loss):
            if t.from_logits and t.loss in _LOGIT_LOSSES:
                kw.append(f"loss=keras.losses.{_LOGIT_LOSSES[t.loss]}(from_logits=True)")
            else:
                kw.append(f"loss={lit(t.loss)}")
        metrics = [m for m in (t.metrics or []) if plain_name(m)]
        if metrics:
            kw.append(f"metrics={lit(metrics)}")
        lines.append(f"    model.compile({', '.join(kw)})")
        return lines + ["    return model"]


def _model_name(name) -> str:
    name = str(name or "model").replace("/", "_")
    return name[:200] or "model"


def emit_keras(graph: Graph, weights: Optional[dict] = None) -> str:
    """Functional Keras 3 code that builds ``graph``'s model (``build_model()``) and
    compiles it as the source was (``compile_model(model)``). ``weights``
    (``{node: {name: array}}``) only changes the header comment: the arrays live in
    the ``.keras`` file :func:`save_keras` writes. Raises :class:`EmitError` for a
    node it cannot write."""
    src = _KerasWriter(graph).write()
    if weights is not None:
        kept = sorted(n for n in weights if n in graph.nodes)
        fresh = [n.name for n in graph if n.params and not n.shares_params_with and n.name not in weights]
        note = (f"# Weights: {len(kept)} layer(s) keep the source model's weights (in the .keras file); "
                f"{len(fresh)} start freshly initialised" + (": " + ", ".join(_comment_safe(n) for n in fresh[:20])
                                                              if fresh else "") + ".\n")
        first = src.index('"""\n', 3) + 4
        src = src[:first] + note + src[first:]
    return src


def _comment_safe(name: str) -> str:
    return re.sub(r"[^\x20-\x7e]", "?", name)[:60]


def build_keras(graph: Graph, weights: Optional[dict] = None):
    """The ``keras.Model`` of :func:`emit_keras`'s code, compiled, with ``weights`` assigned."""
    import keras  # noqa: F401 - the emitted code imports it too

    source = emit_keras(graph)
    namespace: dict = {"__name__": "modellint_emitted"}
    exec(compile(source, "<modellint emit_keras>", "exec"), namespace)   # our own generated code
    model = namespace["compile_model"](namespace["build_model"]())
    if weights:
        assign_keras_weights(model, graph, weights)
    return model


def assign_keras_weights(model, graph: Graph, weights: dict) -> list:
    """Set each layer's variables from ``weights[node]`` by name (``kernel``, ``bias``,
    ``gamma``...; by position where the names are ``0``, ``1``...). Returns the node
    names assigned; a shape that disagrees is a ValueError naming the layer."""
    import numpy as np

    names = keras_layer_names(graph)
    done = []
    for node_name, arrays in weights.items():
        if node_name not in names or not arrays:
            continue
        try:
            layer = model.get_layer(names[node_name])
        except ValueError:
            continue
        variables = list(layer.weights)
        by_name = {}
        for v in variables:
            path = getattr(v, "path", v.name)
            by_name.setdefault(v.name.split(":")[0], v)
            by_name.setdefault(path.split("/")[-1].split(":")[0], v)
            parts = path.split("/")
            if len(parts) >= 2:   # forward_lstm/lstm_cell/kernel -> forward_kernel (Bidirectional)
                by_name.setdefault(f"{parts[-3] if len(parts) >= 3 else parts[-2]}/{parts[-1]}", v)
        positional = all(str(k).isdigit() for k in arrays)
        for i, (key, arr) in enumerate(arrays.items()):
            var = variables[int(key)] if positional and int(key) < len(variables) else by_name.get(key)
            if var is None:
                raise ValueError(f"layer {node_name!r}: the model has no weight {key!r} "
                                 f"(it has {', '.join(v.name for v in variables) or 'none'})")
            arr = np.asarray(arr)
            if tuple(var.shape) != tuple(arr.shape):
                raise ValueError(f"layer {node_name!r}: weight {key!r} is {tuple(arr.shape)}, the layer's "
                                 f"is {tuple(var.shape)}")
            var.assign(arr.astype(var.dtype if isinstance(var.dtype, str) else "float32", copy=False))
        done.append(node_name)
    return done


def save_keras(graph: Graph, path, weights: Optional[dict] = None):
    """Build the model from :func:`emit_keras`'s code, assign the kept ``weights``
    by layer name (layers without an entry stay freshly initialised) and save it as
    a ``.keras`` file at ``path``. Returns the model."""
    model = build_keras(graph, weights)
    model.save(str(path))
    return model
