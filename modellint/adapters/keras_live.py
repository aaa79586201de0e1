"""Live ``keras.Model`` objects -> Graph, through Keras' own serialisation.

The config goes through the same builder as saved files, so a live model and
its saved file give the same graph. Shapes the config cannot tell (custom or
Lambda layers) are then filled from the built model's own output shapes.
"""

from __future__ import annotations

import json

from ..errors import InputError
from ..graph import Graph
from .keras_config import KerasConfigError, graph_from_config, training_from_compile_config


def graph_from_keras_model(model) -> Graph:
    try:
        model_cfg = json.loads(model.to_json())
    except Exception as exc:  # a live object may fail to serialise in many ways
        raise InputError(getattr(model, "name", "model"), f"Keras could not serialise the model ({exc})") from None
    training = None
    get_compile = getattr(model, "get_compile_config", None)
    if callable(get_compile):
        try:
            training = training_from_compile_config(get_compile())
        except Exception:  # not compiled, or an old Keras
            training = None
    try:
        version = __import__("keras").__version__
    except Exception:
        version = None
    try:
        graph = graph_from_config(model_cfg, training=training, source_format="live",
                                  framework_version=version, known_shapes=_unknown_layer_shapes(model))
    except KerasConfigError as exc:
        raise InputError(getattr(model, "name", "model"), str(exc)) from None
    return graph


def _unknown_layer_shapes(model) -> dict:
    """Output shapes (source layout) and weight counts of layers the table does not know."""
    from .keras_layers import LAYERS, MODEL_CLASSES

    shapes = {}
    for layer in getattr(model, "layers", []):
        cls = type(layer).__name__
        if cls in LAYERS or cls in MODEL_CLASSES or cls in ("InputLayer", "Bidirectional", "TimeDistributed"):
            continue
        try:
            out = layer.output
            outs = out if isinstance(out, (list, tuple)) else [out]
            shapes[layer.name] = {"shapes": [tuple(o.shape) for o in outs],
                                  "params": (_size(layer.weights), _size(layer.trainable_weights))}
        except Exception:  # a layer never called, or called several times
            continue
    return shapes


def _size(weights) -> int:
    total = 0
    for w in weights:
        n = 1
        for d in w.shape:
            n *= int(d)
        total += n
    return total
