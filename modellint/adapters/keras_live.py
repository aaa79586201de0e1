"""Live ``keras.Model`` objects -> Graph, through Keras' own serialisation.

The config goes through the same builder as saved files, so a live model and
its saved file give the same graph. Shapes the config cannot tell (custom or
Lambda layers) are then filled from the built model's own output shapes.
"""

from __future__ import annotations

import json

from ..errors import InputError
from ..graph import Graph
from .keras_config import KerasConfigError, graph_from_config, is_model_config, training_from_compile_config


def _layer_config(model) -> tuple:
    """(the model's config as a layer list, the class name when it is a Functional subclass that
    serialises its constructor arguments instead: keras-hub's backbones)."""
    model_cfg = json.loads(model.to_json())
    if is_model_config(model_cfg):
        return model_cfg, None
    import keras

    if isinstance(model, keras.Model) and hasattr(model, "_nodes") and getattr(model, "_inputs_struct", None) is not None:
        # the same layers and calls, as a plain Functional: it serialises its layer list
        plain = keras.Model(inputs=model._inputs_struct, outputs=model._outputs_struct, name=model.name)
        plain.trainable = model.trainable
        return json.loads(plain.to_json()), type(model).__name__
    return model_cfg, None


def graph_from_keras_model(model) -> Graph:
    try:
        model_cfg, subclass = _layer_config(model)
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
    if subclass:
        graph.model_class = subclass
    return graph


def _unknown_layer_shapes(model) -> dict:
    """Output shapes (source layout) and weight counts of layers the table does not know, and
    what such a layer is where the live object tells (``"as"``: ``(op, attrs, note)``): a
    subclass of a Keras layer the table knows, or a layer built of known layers (a ``block``)."""
    from .keras_layers import LAYERS, MODEL_CLASSES

    shapes = {}
    for layer in getattr(model, "layers", []):
        cls = type(layer).__name__
        if cls in LAYERS or cls in MODEL_CLASSES or cls in ("InputLayer", "Bidirectional", "TimeDistributed"):
            continue
        if _registered(layer) in LAYERS:
            continue
        try:
            out = layer.output
            outs = out if isinstance(out, (list, tuple)) else [out]
            entry = {"shapes": [tuple(o.shape) for o in outs],
                     "params": (_size(layer.weights), _size(layer.trainable_weights))}
        except Exception:  # a layer never called, or called several times
            continue
        try:
            entry["as"] = _what_it_is(layer, entry)
        except Exception:  # a layer whose config or sublayers cannot be read: it stays unknown
            entry["as"] = None
        if entry["as"] is None:
            del entry["as"]
        shapes[layer.name] = entry
    return shapes


def _registered(layer):
    try:
        import keras

        return keras.saving.get_registered_name(type(layer))
    except Exception:
        return None


def _keras_base(layer):
    """The nearest Keras class (``keras.src.*``) the table knows among the layer's bases."""
    from .keras_layers import LAYERS

    for base in type(layer).__mro__[1:]:
        if (base.__module__ or "").startswith("keras.") and base.__name__ in LAYERS:
            return base.__name__
    return None


def _known(layer):
    """``(op, attrs)`` of a layer the table reads by its class, registered name or Keras base; None."""
    from .keras_layers import LAYERS, read_layer

    name = type(layer).__name__
    for key in (_registered(layer), name if (type(layer).__module__ or "").startswith("keras.") else None,
                _keras_base(layer)):
        if key in LAYERS:
            op, attrs = read_layer(key, layer.get_config())
            if op != "unknown":
                return op, attrs
    return None


def _what_it_is(layer, entry):
    """A subclass of a known Keras layer read as its base (when the base's shapes and counts
    agree with the built layer), or a layer made of known layers as a ``block``; None."""
    from .. import ops

    base = _keras_base(layer)
    if base is not None:
        from .keras_layers import read_layer

        op, attrs = read_layer(base, layer.get_config())
        ins = _build_input_shapes(layer)
        if op != "unknown" and ins is not None:
            try:
                outs = ops.infer_shapes(op, attrs, ins)
                tr, ntr = ops.count_params(op, attrs, ins, outs)
            except Exception:
                outs, tr, ntr = None, None, None
            if outs == [tuple(s) for s in entry["shapes"]] and (tr + ntr, tr) == entry["params"]:
                return op, attrs, f"{type(layer).__name__}: read as its Keras base class {base}"
    macs, kinds, unknown, counted = 0, {}, [], []

    def walk(parent) -> bool:
        nonlocal macs
        for sub in parent._flatten_layers(include_self=False, recursive=False):
            found = _known(sub)
            if found is None:
                if list(sub._flatten_layers(include_self=False, recursive=False)):
                    if not walk(sub):
                        return False
                elif sub.weights:
                    return False   # weights in a layer nobody knows: not a block of known layers
                else:
                    unknown.append(type(sub).__name__)
                continue
            counted.extend(sub.weights)
            kinds[type(sub).__name__] = kinds.get(type(sub).__name__, 0) + 1
            ins = _build_input_shapes(sub)
            if ins is not None:
                try:
                    outs = ops.infer_shapes(*found, ins)
                    macs += ops.count_macs(*found, ins, outs)
                except Exception:
                    pass
        return True

    if not walk(layer) or not counted:
        return None
    own = entry["params"][0] - _size({id(w): w for w in counted}.values())
    parts = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in sorted(kinds.items()))
    note = f"{type(layer).__name__}: a layer built of known Keras layers ({parts})"
    if own:
        note += f"; {own:,} parameters held by the layer itself"
    if unknown:
        note += f"; weightless layers not counted in MACs: {', '.join(sorted(set(unknown)))}"
    attrs = {"output_shapes": [list(s) for s in entry["shapes"]], "params": entry["params"][0],
             "trainable_params": entry["params"][1], "macs": macs, "sublayers": kinds,
             "class": type(layer).__name__}
    return "block", attrs, note + "; shapes and parameters from the built layer, MACs its sublayers' sum"


def _build_input_shapes(layer):
    """The input shapes a built layer was built with (its build config), as a list."""
    try:
        cfg = layer.get_build_config() or {}
    except Exception:
        return None
    if "input_shape" in cfg:
        shape = cfg["input_shape"]
        if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
            return [tuple(s) for s in shape]
        return [tuple(shape)] if shape is not None else None
    shapes = cfg.get("shapes_dict")
    if isinstance(shapes, dict):  # MultiHeadAttention: query, value, key
        order = [shapes.get(k) for k in ("query_shape", "value_shape", "key_shape")]
        if order[0] is not None:
            return [tuple(s) if s is not None else None for s in order if s is not None]
    return None


def _size(weights) -> int:
    total = 0
    for w in weights:
        n = 1
        for d in w.shape:
            n *= int(d)
        total += n
    return total
