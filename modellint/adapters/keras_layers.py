"""Keras layer configs -> canonical ops and attributes.

One table, :data:`LAYERS`, maps a Keras ``class_name`` to a function that reads
the layer's ``config`` dict and returns ``(op, attrs)``. It covers the Keras 1.2
names and argument spellings (``Convolution2D``, ``nb_filter``, ``border_mode``,
``subsample``, ``output_dim``, ``dim_ordering``...) as well as Keras 2 and 3, so
the graph builder never branches on versions.

Nothing here imports Keras: configs are plain JSON.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Optional

_MISSING = object()


class BadValue(ValueError):
    """A layer argument no Keras version writes: a size that is not a finite integer
    (``Infinity``, ``NaN``, ``2.5``, a string, a list). The graph builder refuses the
    file, naming the layer; the range (``units`` >= 1, ...) is checked on the built
    graph (:func:`modellint.adapters.common.check_graph`)."""


def integer(value, what: str) -> int:
    """A size argument as an int: a JSON integer, or a float with an integral value
    (some old files write ``32.0``). ``None`` (an argument a Keras version does not
    write) is a TypeError, as ``int(None)`` was, so that the layer reads as unknown."""
    if value is None:
        raise TypeError(f"{what} missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadValue(f"{what} {_short(value)} is not an integer")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise BadValue(f"{what} {_short(value)} is not an integer")
    return int(value)


def _short(value, limit: int = 40) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else "Infinity" if value > 0 else "-Infinity"   # as JSON spells them
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def get(cfg: dict, *names, default=None):
    """The first of ``names`` present in ``cfg`` (Keras renamed arguments over versions)."""
    for n in names:
        v = cfg.get(n, _MISSING)
        if v is not _MISSING:
            return v
    return default


def tup(value, n: int, what: str = "size") -> tuple:
    if value is None:
        return (1,) * n
    if isinstance(value, (list, tuple)):
        value = tuple(integer(v, what) for v in value)
        return value if len(value) == n else value * n if len(value) == 1 else value
    return (integer(value, what),) * n


def activation_name(value) -> str:
    """Normalise a serialised activation (string, dict, None) to a name."""
    if value is None:
        return "linear"
    if isinstance(value, dict):  # Keras 3 may serialise functions as objects
        inner = value.get("config")
        if isinstance(inner, str):
            value = inner
        elif isinstance(inner, dict) and "name" in inner:
            value = inner["name"]
        else:
            value = value.get("class_name", "unknown")
    name = str(value).lower()
    return {"swish": "silu", "leakyrelu": "leaky_relu", "hard_swish": "hard_silu"}.get(name, name)


def data_format(cfg: dict):
    """``channels_first`` / ``channels_last`` where the layer says (Keras 1: ``th`` / ``tf``)."""
    fmt = cfg.get("data_format")
    if fmt in ("channels_first", "channels_last"):
        return fmt
    return {"th": "channels_first", "tf": "channels_last"}.get(cfg.get("dim_ordering"))


def initializer_name(value) -> Optional[str]:
    """``"he_normal"`` from ``"he_normal"``, ``{"class_name": "HeNormal", ...}`` or Keras 1 ``init``."""
    if value is None:
        return None
    if isinstance(value, dict):
        name = value.get("class_name", "")
        cfg = value.get("config") or {}
        if name == "VarianceScaling":  # He/LeCun/Glorot are VarianceScaling presets
            scale, mode = cfg.get("scale", 1.0), cfg.get("mode", "fan_in")
            dist = "normal" if "normal" in str(cfg.get("distribution", "")) else "uniform"
            family = {(2.0, "fan_in"): "he", (1.0, "fan_in"): "lecun", (1.0, "fan_avg"): "glorot"}.get(
                (float(scale), mode))
            return f"{family}_{dist}" if family else "variance_scaling"
        if name == "Constant":
            return "zeros" if not cfg.get("value") else "constant"
        value = name
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", str(value)).lower()
    return {"zero": "zeros", "one": "ones", "uniform": "random_uniform", "normal": "random_normal"}.get(s, s)


def _weights_setup(cfg, init_key) -> dict:
    """Initializer and regulariser of a learnable layer's kernel (for rules)."""
    return {
        "kernel_initializer": initializer_name(get(cfg, init_key, "init", default="glorot_uniform")),
        "kernel_regularizer": bool(get(cfg, "kernel_regularizer", "W_regularizer", "depthwise_regularizer")),
    }


def _padding(cfg):
    return str(get(cfg, "padding", "border_mode", default="valid")).lower()


# -- handlers ---------------------------------------------------------------

def _conv(rank, op="conv"):
    def read(cfg):
        if rank == 2 and "nb_row" in cfg:  # Keras 1
            kernel = (cfg["nb_row"], cfg["nb_col"])
        elif rank == 1 and "filter_length" in cfg:
            kernel = (cfg["filter_length"],)
        elif rank == 3 and "kernel_dim1" in cfg:
            kernel = (cfg["kernel_dim1"], cfg["kernel_dim2"], cfg["kernel_dim3"])
        else:
            kernel = tup(get(cfg, "kernel_size"), rank, "kernel_size")
        attrs = {
            "rank": rank,
            "kernel": tup(kernel, rank, "kernel_size"),
            "strides": tup(get(cfg, "strides", "subsample", "subsample_length", default=1), rank, "strides"),
            "dilation": tup(get(cfg, "dilation_rate", "atrous_rate", default=1), rank, "dilation_rate"),
            "padding": _padding(cfg),
            "use_bias": bool(get(cfg, "use_bias", "bias", default=True)),
            "activation": activation_name(cfg.get("activation")),
            **_weights_setup(cfg, "depthwise_initializer" if op == "depthwise_conv" else "kernel_initializer"),
        }
        if op != "depthwise_conv":
            attrs["filters"] = integer(get(cfg, "filters", "nb_filter"), "filters")
        if op in ("depthwise_conv", "separable_conv"):
            attrs["depth_multiplier"] = integer(get(cfg, "depth_multiplier", default=1), "depth_multiplier")
        if op == "conv":
            attrs["groups"] = integer(get(cfg, "groups", default=1), "groups")
        if op == "conv_transpose":
            if cfg.get("output_padding") is not None:
                attrs["output_padding"] = tup(cfg["output_padding"], rank, "output_padding")
        return op, attrs

    return read


def _dense(cfg):
    return "dense", {
        "units": integer(get(cfg, "units", "output_dim"), "units"),
        "use_bias": bool(get(cfg, "use_bias", "bias", default=True)),
        "activation": activation_name(cfg.get("activation")),
        **_weights_setup(cfg, "kernel_initializer"),
    }


def _batchnorm(cfg):
    return "batchnorm", {
        "axis": get(cfg, "axis", default=-1),
        "center": bool(cfg.get("center", True)),
        "scale": bool(cfg.get("scale", True)),
        "epsilon": cfg.get("epsilon"),
        "momentum": cfg.get("momentum"),
    }


def _layernorm(cfg):
    rms = bool(cfg.get("rms_scaling", False))  # Keras 3: gamma only, no beta
    return "layernorm", {
        "axis": get(cfg, "axis", default=-1),
        "center": bool(cfg.get("center", True)) and not rms,
        "scale": bool(cfg.get("scale", True)) or rms,
        "epsilon": cfg.get("epsilon"),
    }


def _rmsnorm(cfg):
    return "layernorm", {"axis": get(cfg, "axis", default=-1), "center": False, "scale": True,
                         "epsilon": cfg.get("epsilon"), "rms": True}


def _groupnorm(cfg):
    groups = cfg.get("groups")
    return "groupnorm", {"groups": integer(groups, "groups") if groups is not None else None,
                         "axis": cfg.get("axis", -1),
                         "center": bool(cfg.get("center", True)), "scale": bool(cfg.get("scale", True))}


def _normalization(cfg):
    axis = cfg.get("axis", -1)
    return "normalization", {"axis": axis if axis is not None else -1, "mean": cfg.get("mean"),
                             "variance": cfg.get("variance"), "invert": cfg.get("invert", False)}


def _activation(cfg):
    return "activation", {"function": activation_name(cfg.get("activation"))}


def _relu(cfg):
    max_value = cfg.get("max_value")
    slope = float(cfg.get("negative_slope") or 0.0)
    fn = "relu6" if max_value == 6 else "leaky_relu" if slope else "relu"
    return "activation", {"function": fn, "max_value": max_value, "negative_slope": slope,
                          "threshold": cfg.get("threshold", 0.0)}


def _fixed_activation(fn, **extra):
    def read(cfg):
        attrs = {"function": fn}
        for key in extra:
            attrs[key] = cfg.get(key, extra[key])
        return "activation", attrs

    return read


def _prelu(cfg):
    return "activation", {"function": "prelu", "shared_axes": cfg.get("shared_axes")}


def number(value, what: str) -> float:
    """A real-valued argument (a rate, a slope): a finite JSON number, else BadValue."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadValue(f"{what} {_short(value)} is not a finite number")
    return value


def _dropout(variant):
    def read(cfg):
        rate = get(cfg, "rate", "p", "stddev", default=0.0)
        return "dropout", {"variant": variant, "rate": number(rate, "rate") if rate is not None else 0.0}

    return read


def _pool(rank, op):
    def read(cfg):
        size = get(cfg, "pool_size", "pool_length", default=2)
        strides = get(cfg, "strides", "stride")
        return op, {
            "rank": rank,
            "pool_size": tup(size, rank, "pool_size"),
            "strides": tup(strides if strides is not None else size, rank, "strides"),
            "padding": _padding(cfg),
        }

    return read


def _global_pool(mode):
    def read(cfg):
        return "global_pool", {"mode": mode, "keepdims": bool(cfg.get("keepdims", False))}

    return read


def _pad_like(op, key, rank):
    def read(cfg):
        value = cfg.get(key, 1 if op == "pad" else 0)
        if not isinstance(value, (list, tuple)):
            value = integer(value, key)
            pairs = ((value, value),) * rank
        else:
            pairs = []
            for v in value:
                if isinstance(v, (list, tuple)):
                    pairs.append((integer(v[0], key), integer(v[1], key)))
                else:
                    v = integer(v, key)
                    pairs.append((v, v))
            if len(pairs) == 2 and rank == 1:  # Cropping1D/ZeroPadding1D take (lo, hi)
                pairs = [(pairs[0][0], pairs[1][0])]
            pairs = tuple(pairs)
        attrs = {"rank": rank, key: pairs}
        if rank == 1:  # Cropping1D (and ZeroPadding1D before Keras 3) act on axis 1 whatever the layout
            attrs["data_format"] = data_format(cfg) or "channels_last"
        return op, attrs

    return read


def _upsample(rank):
    def read(cfg):
        attrs = {"rank": rank, "size": tup(get(cfg, "size", "length", default=2), rank, "size"),
                 "interpolation": cfg.get("interpolation", "nearest")}
        if rank == 1:  # UpSampling1D has no data_format: it always repeats axis 1
            attrs["data_format"] = "channels_last"
        return "upsample", attrs

    return read


def _merge(op):
    def read(cfg):
        attrs = {}
        if op == "concat":
            attrs["axis"] = get(cfg, "axis", "concat_axis", default=-1)
        if op == "dot":
            attrs["axes"] = cfg.get("axes", -1)
            attrs["normalize"] = cfg.get("normalize", False)
        return op, attrs

    return read


_KERAS1_MERGE_MODES = {"sum": "add", "mul": "multiply", "concat": "concat", "ave": "average",
                       "max": "maximum", "dot": "dot", "cos": "dot"}


def _keras1_merge(cfg):
    op = _KERAS1_MERGE_MODES.get(cfg.get("mode"), "unknown")
    attrs = {"axis": cfg.get("concat_axis", -1)} if op == "concat" else {}
    if op == "dot":
        attrs["axes"] = cfg.get("dot_axes", -1)
    return op, attrs


def _sizes(value, what) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise BadValue(f"{what} {_short(value)} is not a list of sizes")
    return tuple(integer(v, what) for v in value)


def _reshape(cfg):
    return "reshape", {"target_shape": _sizes(cfg["target_shape"], "target_shape")}


def _permute(cfg):
    return "permute", {"dims": _sizes(cfg["dims"], "dims")}


def _repeat(cfg):
    return "repeat", {"n": integer(cfg["n"], "n")}


def _embedding(cfg):
    return "embedding", {"input_dim": integer(cfg["input_dim"], "input_dim"),
                         "output_dim": integer(cfg["output_dim"], "output_dim")}


def _rnn(cell, cudnn=False):
    """``cudnn``: Keras 2's CuDNNLSTM/CuDNNGRU keep cuDNN's two bias vectors (input and
    recurrent): 8×units for an LSTM, 6×units for a GRU (always reset-after)."""
    def read(cfg):
        if cudnn:
            return "rnn", {"cell": cell, "units": integer(cfg.get("units"), "units"),
                           "return_sequences": bool(cfg.get("return_sequences", False)),
                           "return_state": bool(cfg.get("return_state", False)), "use_bias": True,
                           "reset_after": True, "double_bias": True, "activation": "tanh"}
        return "rnn", {
            "cell": cell,
            "units": integer(get(cfg, "units", "output_dim"), "units"),
            "return_sequences": bool(cfg.get("return_sequences", False)),
            "return_state": bool(cfg.get("return_state", False)),
            "use_bias": bool(get(cfg, "use_bias", "bias", default=True)),
            "reset_after": bool(cfg.get("reset_after", cell == "gru" and "reset_after" in cfg)),
            "activation": activation_name(cfg.get("activation", "tanh")),
        }

    return read


def _attention(cfg):
    out = cfg.get("output_shape")  # None, an int or a tuple of feature dims
    if isinstance(out, (list, tuple)):
        out = tuple(integer(d, "output_shape") for d in out) or None
    elif out is not None:
        out = integer(out, "output_shape")
    value_dim = cfg.get("value_dim") or None
    return "attention", {
        "num_heads": integer(cfg["num_heads"], "num_heads"),
        "key_dim": integer(cfg["key_dim"], "key_dim"),
        "value_dim": integer(value_dim, "value_dim") if value_dim is not None else None,
        "output_shape": out,
        "use_bias": bool(cfg.get("use_bias", True)),
        "dropout": cfg.get("dropout", 0.0),
    }


def _conv_rnn(rank):
    def read(cfg):
        return "conv_rnn", {   # conv_rank, not rank: the input has a time axis besides batch and channels
            "conv_rank": rank, "filters": integer(cfg.get("filters"), "filters"),
            "kernel": tup(cfg.get("kernel_size"), rank, "kernel_size"),
            "strides": tup(cfg.get("strides", 1), rank, "strides"),
            "dilation": tup(cfg.get("dilation_rate", 1), rank, "dilation_rate"),
            "padding": _padding(cfg), "use_bias": bool(cfg.get("use_bias", True)),
            "return_sequences": bool(cfg.get("return_sequences", False)),
            "return_state": bool(cfg.get("return_state", False)),
            "activation": activation_name(cfg.get("activation", "tanh")), "cell": "lstm",
        }

    return read


def _dot_attention(additive):
    def read(cfg):
        return "dot_attention", {"additive": additive, "use_scale": bool(cfg.get("use_scale", additive)),
                                 "score_mode": "additive" if additive else cfg.get("score_mode", "dot"),
                                 "dropout": cfg.get("dropout", 0.0)}

    return read


def _position_embedding(cfg):
    """keras-hub's PositionEmbedding: a learned (sequence_length, features) table added per position."""
    return "position_embedding", {"sequence_length": integer(cfg.get("sequence_length"), "sequence_length")}


def _rescaling(cfg):
    return "rescaling", {"scale": cfg.get("scale"), "offset": cfg.get("offset", 0.0)}


def _resize(cfg):
    return "resize", {"height": integer(cfg["height"], "height"), "width": integer(cfg["width"], "width"),
                      "interpolation": cfg.get("interpolation")}


def _augment(kind):
    def read(cfg):
        attrs = {"kind": kind}
        if kind == "crop":
            attrs.update(height=integer(cfg["height"], "height"), width=integer(cfg["width"], "width"))
        if kind in ("height", "width", "rotation", "zoom", "translation", "contrast", "brightness"):
            attrs["factor"] = cfg.get("factor")   # the emitters write the layer back with it
        if kind == "translation":
            attrs["height_factor"], attrs["width_factor"] = cfg.get("height_factor"), cfg.get("width_factor")
        if kind == "zoom":
            attrs["height_factor"], attrs["width_factor"] = cfg.get("height_factor"), cfg.get("width_factor")
        if kind == "flip":
            attrs["mode"] = cfg.get("mode")
        return "augment", attrs

    return read


def _identity(kind):
    def read(cfg):
        return "identity", {"kind": kind}

    return read


def _layer_scale(cfg):
    return "scale", {"init_values": cfg.get("init_values")}


def _unknown(cfg):
    return "unknown", {}


# class_name -> reader. Nested models, Bidirectional and TimeDistributed are
# handled by the graph builder (they wrap other configs).
LAYERS: dict[str, Callable] = {}


def _register(names, reader):
    for n in names.split():
        LAYERS[n] = reader


_register("Conv1D Convolution1D", _conv(1))
_register("Conv2D Convolution2D AtrousConvolution2D", _conv(2))
_register("Conv3D Convolution3D", _conv(3))
_register("Conv1DTranspose", _conv(1, "conv_transpose"))
_register("Conv2DTranspose Deconvolution2D Deconv2D", _conv(2, "conv_transpose"))
_register("Conv3DTranspose Deconvolution3D", _conv(3, "conv_transpose"))
_register("DepthwiseConv1D", _conv(1, "depthwise_conv"))
_register("DepthwiseConv2D", _conv(2, "depthwise_conv"))
_register("SeparableConv1D SeparableConvolution1D", _conv(1, "separable_conv"))
_register("SeparableConv2D SeparableConvolution2D", _conv(2, "separable_conv"))
_register("Dense", _dense)
_register("BatchNormalization SyncBatchNormalization", _batchnorm)
_register("LayerNormalization", _layernorm)
_register("RMSNormalization", _rmsnorm)
_register("GroupNormalization", _groupnorm)
_register("UnitNormalization", lambda cfg: ("unitnorm", {"axis": cfg.get("axis", -1)}))
_register("Normalization", _normalization)
_register("Rescaling", _rescaling)
_register("Resizing CenterCrop", _resize)
_register("RandomCrop", _augment("crop"))
_register("RandomFlip", _augment("flip"))
_register("RandomRotation", _augment("rotation"))
_register("RandomZoom", _augment("zoom"))
_register("RandomTranslation", _augment("translation"))
_register("RandomContrast", _augment("contrast"))
_register("RandomBrightness", _augment("brightness"))
_register("RandomHeight", _augment("height"))
_register("RandomWidth", _augment("width"))
_register("RandomGrayscale RandomHue RandomSaturation RandomSharpness RandomShear "
          "RandomColorJitter RandomColorDegeneration RandomPosterization RandomInvert "
          "RandomErasing RandomGaussianBlur RandomPerspective RandomElasticTransform "
          "AutoContrast Solarization Equalization AugMix RandAugment MixUp CutMix",
          _augment("other"))
_register("Activation", _activation)
_register("ReLU", _relu)
_register("LeakyReLU", _fixed_activation("leaky_relu", negative_slope=0.3, alpha=0.3))
_register("PReLU", _prelu)
_register("ELU", _fixed_activation("elu", alpha=1.0))
_register("ThresholdedReLU", _fixed_activation("thresholded_relu", theta=1.0))
_register("Softmax", _fixed_activation("softmax", axis=-1))
_register("Dropout", _dropout("dropout"))
_register("SpatialDropout1D SpatialDropout2D SpatialDropout3D", _dropout("spatial"))
_register("GaussianDropout", _dropout("gaussian"))
_register("AlphaDropout", _dropout("alpha"))
_register("GaussianNoise", _dropout("noise"))
_register("MaxPooling1D MaxPool1D", _pool(1, "pool_max"))
_register("MaxPooling2D MaxPool2D", _pool(2, "pool_max"))
_register("MaxPooling3D MaxPool3D", _pool(3, "pool_max"))
_register("AveragePooling1D AvgPool1D", _pool(1, "pool_avg"))
_register("AveragePooling2D AvgPool2D", _pool(2, "pool_avg"))
_register("AveragePooling3D AvgPool3D", _pool(3, "pool_avg"))
_register("GlobalAveragePooling1D GlobalAveragePooling2D GlobalAveragePooling3D "
          "GlobalAvgPool1D GlobalAvgPool2D GlobalAvgPool3D", _global_pool("avg"))
_register("GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D "
          "GlobalMaxPool1D GlobalMaxPool2D GlobalMaxPool3D", _global_pool("max"))
_register("Flatten", lambda cfg: ("flatten", {}))
_register("Reshape", _reshape)
_register("Permute", _permute)
_register("RepeatVector", _repeat)
_register("ZeroPadding1D", _pad_like("pad", "padding", 1))
_register("ZeroPadding2D", _pad_like("pad", "padding", 2))
_register("ZeroPadding3D", _pad_like("pad", "padding", 3))
_register("Cropping1D", _pad_like("crop", "cropping", 1))
_register("Cropping2D", _pad_like("crop", "cropping", 2))
_register("Cropping3D", _pad_like("crop", "cropping", 3))
_register("UpSampling1D", _upsample(1))
_register("UpSampling2D", _upsample(2))
_register("UpSampling3D", _upsample(3))
_register("Add", _merge("add"))
_register("Subtract", _merge("subtract"))
_register("Multiply", _merge("multiply"))
_register("Average", _merge("average"))
_register("Maximum", _merge("maximum"))
_register("Minimum", _merge("minimum"))
_register("Concatenate", _merge("concat"))
_register("Dot", _merge("dot"))
_register("Merge", _keras1_merge)
_register("Embedding", _embedding)
_register("SimpleRNN", _rnn("simple"))
_register("LSTM", _rnn("lstm"))
_register("GRU", _rnn("gru"))
_register("CuDNNLSTM", _rnn("lstm", cudnn=True))
_register("CuDNNGRU", _rnn("gru", cudnn=True))
_register("MultiHeadAttention", _attention)
_register("Attention", _dot_attention(False))
_register("AdditiveAttention", _dot_attention(True))
_register("ConvLSTM1D", _conv_rnn(1))
_register("ConvLSTM2D", _conv_rnn(2))
_register("ConvLSTM3D", _conv_rnn(3))
# layers of installed libraries, by their registered name (package>Class), never by class name alone
_register("keras_hub>PositionEmbedding keras_nlp>PositionEmbedding", _position_embedding)
_register("Masking", _identity("masking"))
_register("ActivityRegularization", _identity("activity_regularization"))
_register("Identity", _identity("identity"))
_register("StochasticDepth", _dropout("stochastic_depth"))
_register("LayerScale", _layer_scale)
# keras.applications.inception_resnet_v2: inputs[0] + inputs[1] * scale
_register("CustomScaleLayer", lambda cfg: ("add", {"scale": cfg.get("scale")}))

# Call arguments (recorded with each call in a functional config, not in the
# layer's config) that change a layer's outputs; the builder copies them to attrs.
CALL_ATTRS = frozenset({"return_attention_scores"})

# Layers that carry code, not configuration: recorded, never deserialised.
CODE_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})

# Containers: the builder inlines their layers.
MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})


def read_layer(class_name: str, cfg: dict) -> tuple:
    reader = LAYERS.get(class_name)
    if reader is None:
        return "unknown", {}
    op, attrs = reader(cfg)
    fmt = data_format(cfg)
    if fmt:  # a channels_last layer in a channels_first graph reads the source axes
        attrs.setdefault("data_format", fmt)
    return op, attrs
