"""Build a :class:`~modellint.graph.Graph` from a Keras model config (plain JSON).

Shared by every Keras source: ``.h5`` (``model_config``), ``.keras``
(``config.json``), ``model.to_json()`` and live models. Handles:

* Keras 1.2 / 2.x / tf.keras / Keras 3 dialects (layer argument names live in
  :mod:`.keras_layers`; ``inbound_nodes`` as nested lists or as
  ``__keras_tensor__`` / ``keras_history`` objects);
* Sequential (with or without an ``InputLayer``) and Functional models, several
  inputs and outputs, shared layers (one node per call), nested models (inlined
  under a ``outer/`` name scope), ``Bidirectional`` and ``TimeDistributed``;
* ``channels_first`` models (shapes are stored channels-last, see graph.py).

Lambda layers and custom objects become ``unknown`` nodes: their config is kept
as data and nothing in it is ever executed.
"""

from __future__ import annotations

import math
import re
from collections import deque
from typing import Optional

from .. import ops
from ..graph import DuplicateNodeError, Graph, Node, TrainingConfig, split_ref
from .common import MAX_DIM, add_with_activation, count_node, infer_node
from .keras_layers import CALL_ATTRS, CODE_LAYERS, LAYERS, MODEL_CLASSES, BadValue, activation_name, read_layer
from .keras_ops import is_operation, read_operation

AXIS_OPS = frozenset({"batchnorm", "layernorm", "groupnorm", "normalization", "concat", "unitnorm"})

#: Models nested inside models: real ones nest a few levels; the builder recurses
#: once per level, so a hostile file nesting thousands must stop well before
#: Python's recursion limit.
MAX_NESTING = 64
#: Layers in one model (nested ones included). The largest Keras application
#: (NASNetLarge) has about 1,000; a graph of this many still analyses in seconds.
MAX_LAYERS = 100_000


class KerasConfigError(ValueError):
    """The JSON is not a Keras model config we can read."""


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_model_config(obj) -> bool:
    return isinstance(obj, dict) and obj.get("class_name") in MODEL_CLASSES and "config" in obj


def graph_from_config(model: dict, *, training: Optional[TrainingConfig] = None,
                      known_shapes: Optional[dict] = None, **graph_fields) -> Graph:
    """``model`` is ``{"class_name": ..., "config": ...}`` as Keras serialises it.

    ``known_shapes`` maps a top-level layer name to ``{"shapes": [...], "params":
    (total, trainable)}`` in the source layout (a live model knows them); used
    only for layers the config cannot size.
    """
    if not is_model_config(model):
        raise KerasConfigError("not a Keras model config (expected class_name Sequential, Functional or Model)")
    cfg = model["config"]
    name = cfg.get("name", "model") if isinstance(cfg, dict) else "sequential"
    graph = Graph(name=name, framework="keras", model_class=model["class_name"],
                  layout=_detect_layout(model), training=training, **graph_fields)
    builder = _Builder(graph, known_shapes or {})
    try:
        outputs = builder.model(model["class_name"], cfg, None, prefix="", trainable=True, share_prefix=None)
    except DuplicateNodeError as exc:
        raise KerasConfigError(f"two layers have one name ({exc})") from None
    graph.outputs = outputs
    return graph


# ---------------------------------------------------------------------------

def _detect_layout(model) -> str:
    """channels_first if any layer says so (data_format or Keras 1 dim_ordering)."""
    stack = [model]
    while stack:
        obj = stack.pop()
        if isinstance(obj, dict):
            if obj.get("data_format") == "channels_first" or obj.get("dim_ordering") == "th":
                return "channels_first"
            stack.extend(v for v in obj.values() if isinstance(v, (dict, list)))
        elif isinstance(obj, list):
            stack.extend(v for v in obj if isinstance(v, (dict, list)))
    return "channels_last"


def _layer_name(entry: dict) -> str:
    if not isinstance(entry, dict):
        raise KerasConfigError(f"a layer entry is {_short(entry)}, not an object")
    cfg = entry.get("config")
    name = entry.get("name") or (cfg.get("name") if isinstance(cfg, dict) else None)
    if not name:
        raise KerasConfigError("a layer has no name")
    if not isinstance(name, str):
        raise KerasConfigError(f"a layer's name is {_short(name)}, not a string")
    return name


def _index(value) -> bool:
    """A node or tensor index: a non-negative int."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_DIM


def _is_tensor_ref(v) -> bool:
    return (isinstance(v, list) and 3 <= len(v) <= 4 and isinstance(v[0], str)
            and isinstance(v[1], int) and isinstance(v[2], int))


def _history(hist) -> tuple:
    """``keras_history`` ``[layer, node_index, tensor_index]`` -> a ref, or KerasConfigError."""
    if (not isinstance(hist, (list, tuple)) or len(hist) != 3 or not isinstance(hist[0], str)
            or not _index(hist[1]) or not _index(hist[2])):
        raise KerasConfigError(f"malformed keras_history {_short(hist)} "
                               "(expected [layer name, node index, tensor index])")
    return hist[0], hist[1], hist[2]


def parse_call(node) -> list:
    """One entry of ``inbound_nodes`` -> list of (layer, node_index, tensor_index)."""
    refs: list = []
    if isinstance(node, dict):  # Keras 3
        def walk(obj):
            if isinstance(obj, dict):
                if obj.get("class_name") == "__keras_tensor__":
                    cfg = obj.get("config")
                    refs.append(_history(cfg.get("keras_history") if isinstance(cfg, dict) else None))
                else:
                    for v in obj.values():
                        walk(v)
            elif isinstance(obj, (list, tuple)):
                for v in obj:
                    walk(v)

        walk(node.get("args", []))
        kwargs = node.get("kwargs", {}) or {}
        if not isinstance(kwargs, dict):
            raise KerasConfigError(f"call kwargs {_short(kwargs)} are not an object")
        for key in ("inputs", "query", "value", "key"):
            if key in kwargs:
                walk(kwargs[key])
        return refs
    # Keras 1/2: a list of [layer, node_index, tensor_index, kwargs]
    if not isinstance(node, list):
        raise KerasConfigError(f"inbound node {_short(node)} is not a list of tensor references")
    for item in node:
        if _is_tensor_ref(item):
            refs.append(_history(item[:3]))
            kwargs = item[3] if len(item) > 3 and isinstance(item[3], dict) else {}
            for key in ("value", "key"):
                v = kwargs.get(key)
                if _is_tensor_ref(v):
                    refs.append(_history(v[:3]))
    return refs


def call_shapes(node) -> list:
    """The shapes Keras 3 records on each input tensor of one call (``__keras_tensor__``
    ``config.shape``), in :func:`parse_call`'s order; None where not recorded. Keras writes them
    in ``.keras`` and in Keras 3 ``.h5`` configs alike."""
    out: list = []
    if not isinstance(node, dict):
        return out

    def walk(obj):
        if isinstance(obj, dict):
            if obj.get("class_name") == "__keras_tensor__":
                cfg = obj.get("config")
                shape = cfg.get("shape") if isinstance(cfg, dict) else None
                out.append(shape if isinstance(shape, list) else None)
            else:
                for v in obj.values():
                    walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    walk(node.get("args", []))
    kwargs = node.get("kwargs", {}) or {}
    if isinstance(kwargs, dict):
        for key in ("inputs", "query", "value", "key"):
            if key in kwargs:
                walk(kwargs[key])
    return out


def call_kwargs(entry: dict, call_idx: int) -> dict:
    """Keyword arguments of one call of a layer (Keras 3 ``kwargs``; Keras 2 the
    dict after the first tensor reference). Empty in Sequential configs."""
    nodes = entry.get("inbound_nodes") or []
    if not isinstance(nodes, list):  # a Sequential entry's are never read; a Functional's are checked
        return {}
    node = nodes[call_idx] if call_idx < len(nodes) else None
    if isinstance(node, dict):
        kwargs = node.get("kwargs")
        return kwargs if isinstance(kwargs, dict) else {}
    if isinstance(node, list):
        for item in node:
            if _is_tensor_ref(item) and len(item) > 3 and isinstance(item[3], dict):
                return item[3]
    return {}


def _ref_list(value, what: str) -> list:
    """``input_layers`` / ``output_layers``: one [name, node, tensor] or a list of them."""
    if not value:
        return []
    if isinstance(value, dict):  # Keras 3 models with named inputs/outputs: {name: [layer, node, tensor]},
        value = [value[k] for k in sorted(value)]   # in the order Keras flattens them (sorted keys)
    if not isinstance(value, list):
        raise KerasConfigError(f"{what} {_short(value)} is not a list of [layer, node, tensor]")
    try:
        if isinstance(value[0], str):
            return [_history(value)]
        out = []
        for v in value:
            if isinstance(v, dict):  # some Keras 3 versions nest keras tensors here too
                out.extend(parse_call({"args": [v]}))
            else:
                out.append(_history(v))
        return out
    except KerasConfigError as exc:
        raise KerasConfigError(f"{what}: {exc}") from None


def _canon_axis(axis, rank: int, layout: str):
    return ops.canon_axis(axis, rank, layout)  # negative form: stable under batch-dim conventions


class _Builder:
    def __init__(self, graph: Graph, known_shapes: dict):
        self.g = graph
        self.layout = graph.layout
        self.known_shapes = known_shapes

    # -- shapes in and out of the canonical layout --------------------------
    def canon(self, shape, what="shape"):
        if shape is None:
            return None
        if not isinstance(shape, (list, tuple)) or not all(
                d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in shape):
            raise KerasConfigError(f"{what} {_short(shape)} is not a list of sizes (integers, null for unknown)")
        if not all(d is None or -1 <= d <= MAX_DIM for d in shape):
            raise KerasConfigError(f"{what} {_short(shape)} has a size out of range (0 to {MAX_DIM})")
        shape = tuple(None if d is None or d == -1 else d for d in shape)
        if self.layout == "channels_first" and len(shape) >= 3:
            return (shape[0], *shape[2:], shape[1])
        return shape

    # -- models -----------------------------------------------------------
    def model(self, class_name, cfg, in_refs, *, prefix, trainable, share_prefix):
        if isinstance(cfg, dict):
            trainable = trainable and cfg.get("trainable", True) is not False
        if prefix.count("/") > MAX_NESTING:
            raise KerasConfigError(f"models nested more than {MAX_NESTING} deep")
        if class_name == "Sequential":
            return self.sequential(cfg, in_refs, prefix, trainable, share_prefix)
        return self.functional(cfg, in_refs, prefix, trainable, share_prefix)

    def sequential(self, cfg, in_refs, prefix, trainable, share_prefix):
        layers = cfg if isinstance(cfg, list) else cfg.get("layers") if isinstance(cfg, dict) else None
        if not isinstance(layers, list):
            raise KerasConfigError("Sequential config has no layer list")
        if len(layers) + len(self.g.nodes) > MAX_LAYERS:
            raise KerasConfigError(f"more than {MAX_LAYERS:,} layers")
        for entry in layers:
            _layer_name(entry)   # every entry an object with a name
        refs = in_refs
        start = 0
        if layers and layers[0].get("class_name") == "InputLayer":
            if refs is None:
                refs = [self.input_node(layers[0], prefix)]
            start = 1
        elif refs is None:
            first = layers[0].get("config", {}) if layers else {}
            if not isinstance(first, dict):
                raise KerasConfigError(f"layer {_layer_name(layers[0])!r}: config is not an object")
            shape = (first.get("batch_input_shape") or first.get("batch_shape")
                     or (cfg.get("build_input_shape") if isinstance(cfg, dict) else None))
            if shape is None and first.get("input_shape") is not None:
                if not isinstance(first["input_shape"], (list, tuple)):
                    raise KerasConfigError(f"input_shape {_short(first['input_shape'])} is not a list of sizes")
                shape = [None, *first["input_shape"]]
            if shape is None:
                raise KerasConfigError("Sequential model has no input shape (not built)")
            if not layers:
                raise KerasConfigError("Sequential model has an input shape but no layers")
            name = f"{_layer_name(layers[0])}_input"
            refs = [self.add_input(prefix + name, shape, first.get("dtype"))]
        for entry in layers[start:]:
            refs = self.call(entry, refs, prefix, trainable, share_prefix, call_idx=0)
        return refs

    def functional(self, cfg, in_refs, prefix, trainable, share_prefix):
        if not isinstance(cfg, dict):
            raise KerasConfigError("Functional config is not an object")
        layers = cfg.get("layers")
        if not isinstance(layers, list):
            raise KerasConfigError("Functional config has no layer list")
        inputs = _ref_list(cfg.get("input_layers"), "input_layers")
        outputs = _ref_list(cfg.get("output_layers"), "output_layers")
        tensors: dict = {}  # (layer, node_index) -> list of refs
        input_pos = {name: i for i, (name, _, _) in enumerate(inputs)}
        # layer name -> how many calls (inbound nodes) it declares; an InputLayer has one
        calls = {}
        input_names = set()
        for entry in layers:
            name = _layer_name(entry)
            if name in calls:
                raise KerasConfigError(f"two layers are named {name!r}")
            nodes = entry.get("inbound_nodes") or []
            if not isinstance(nodes, list):
                raise KerasConfigError(f"layer {name!r}: inbound_nodes {_short(nodes)} is not a list")
            calls[name] = 1 if entry.get("class_name") == "InputLayer" else len(nodes)
            if entry.get("class_name") == "InputLayer":
                input_names.add(name)
        for name in input_pos:
            if name not in input_names:
                raise KerasConfigError(f"input_layers names {name!r}, which is not an input layer of the model")
        pending = []
        built = {}                # layer name -> calls built
        for entry in layers:
            name = _layer_name(entry)
            if entry.get("class_name") == "InputLayer":
                if in_refs is not None and name in input_pos and input_pos[name] < len(in_refs):
                    tensors[(name, 0)] = [in_refs[input_pos[name]]]
                else:
                    tensors[(name, 0)] = [self.input_node(entry, prefix)]
                built[name] = 1
                continue
            for idx, node in enumerate(entry.get("inbound_nodes") or []):
                try:
                    pending.append((entry, idx, parse_call(node)))
                except KerasConfigError as exc:
                    raise KerasConfigError(f"layer {name!r}: {exc}") from None
        if len(pending) + len(self.g.nodes) > MAX_LAYERS:
            raise KerasConfigError(f"more than {MAX_LAYERS:,} layer calls")
        # Build each call once its inputs exist. A call whose input is not built yet
        # waits on that input's key and is queued again when it is built, so a file
        # listing its layers in any order takes linear time.
        ready = deque(pending)
        waiting: dict = {}        # (layer, node index) or (layer, None) for "all its calls" -> items
        while ready:
            item = ready.popleft()
            entry, idx, refs = item
            resolved = []
            for r in refs:
                ref = self.resolve(tensors, calls, built, r)
                if ref is None:
                    key = (r[0], r[1] if r[1] < calls.get(r[0], 0) else None)
                    waiting.setdefault(key, []).append(item)
                    break
                resolved.append(ref)
            else:
                name = _layer_name(entry)
                tensors[(name, idx)] = self.call(entry, resolved, prefix, trainable, share_prefix, call_idx=idx)
                built[name] = built.get(name, 0) + 1
                ready.extend(waiting.pop((name, idx), ()))
                if built[name] == calls[name]:
                    ready.extend(waiting.pop((name, None), ()))
        if waiting:
            left = [item for items in waiting.values() for item in items]
            missing = sorted({r[0] for _, _, refs in left for r in refs
                              if self.resolve(tensors, calls, built, r) is None})
            raise KerasConfigError(f"layer inputs never produced: {', '.join(missing[:5])}")
        out = []
        for r in outputs:
            ref = self.resolve(tensors, calls, built, r)
            if ref is None:
                raise KerasConfigError(f"model output {r[0]!r} is not produced by any layer")
            out.append(ref)
        return out

    def resolve(self, tensors, calls, built, ref):
        """The graph ref of ``(layer, node_index, tensor_index)``; None while the call
        that makes it has not been built yet (or the layer does not exist)."""
        name, node_idx, tensor_idx = ref
        outs = tensors.get((name, node_idx))
        if outs is None:
            n_calls = calls.get(name)
            if n_calls is None or node_idx < n_calls:
                return None   # no such layer (reported later), or that call is not built yet
            if built.get(name, 0) < n_calls:
                return None   # wait for all its calls before reading past them
            # tf.keras numbers a nested model's calls after its own construction
            # node, so a reference may be one past the calls listed: the last call.
            # Anything further is a broken reference.
            if node_idx == n_calls and n_calls:
                outs = tensors[(name, n_calls - 1)]
            else:
                raise KerasConfigError(f"tensor reference {list(ref)!r} reads call {node_idx} of {name!r}, "
                                       f"which has {n_calls} call{'s' if n_calls != 1 else ''}")
        if tensor_idx < len(outs):
            return outs[tensor_idx]
        producer = self.g.nodes.get(split_ref(outs[-1])[0])
        if producer is not None and producer.op == "unknown":
            return outs[-1]   # a custom layer: how many outputs it has is unknown
        raise KerasConfigError(f"tensor reference {list(ref)!r} reads output {tensor_idx} of {name!r}, "
                               f"which has {len(outs)} output{'s' if len(outs) != 1 else ''}")

    # -- inputs -------------------------------------------------------------
    def input_node(self, entry, prefix):
        cfg = entry.get("config", {})
        if not isinstance(cfg, dict):
            raise KerasConfigError(f"input {_layer_name(entry)!r}: config is not an object")
        shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
        if shape is None and cfg.get("shape") is not None:
            if not isinstance(cfg["shape"], (list, tuple)):
                raise KerasConfigError(f"input {_layer_name(entry)!r}: shape {_short(cfg['shape'])} "
                                       "is not a list of sizes")
            shape = [None, *cfg["shape"]]
        if shape is None:
            raise KerasConfigError(f"input {_layer_name(entry)!r} has no shape")
        return self.add_input(prefix + _layer_name(entry), shape, cfg.get("dtype"))

    def add_input(self, name, shape, dtype):
        if isinstance(dtype, dict):
            dtype = (dtype.get("config") or {}).get("name")
        node = Node(name=name, op="input", source_type="InputLayer",
                    attrs={"dtype": dtype or "float32"},
                    output_shapes=[self.canon(shape, f"input {name!r}: batch shape")])
        self.g.add(node)
        self.g.inputs.append(name)
        return name

    # -- one layer call -----------------------------------------------------
    def call(self, entry, in_refs, prefix, trainable, share_prefix, call_idx):
        lname = _layer_name(entry)
        class_name = entry.get("class_name", "")
        if not isinstance(class_name, str):
            raise KerasConfigError(f"layer {lname!r}: class_name {_short(class_name)} is not a string")
        cfg = entry.get("config") or {}
        if not isinstance(cfg, dict) and not (class_name == "Sequential" and isinstance(cfg, list)):
            raise KerasConfigError(f"layer {lname!r} ({class_name}): config {_short(cfg)} is not an object")
        build_config = entry.get("build_config") or {}
        if not isinstance(build_config, dict):
            raise KerasConfigError(f"layer {lname!r} ({class_name}): build_config {_short(build_config)} "
                                   "is not an object")
        node_name = prefix + lname + (f"@{call_idx}" if call_idx else "")
        shared = None
        if call_idx:
            shared = prefix + lname
        elif share_prefix is not None:
            shared = share_prefix + lname
        layer_trainable = trainable and (cfg.get("trainable", True) if isinstance(cfg, dict) else True) is not False

        if class_name in MODEL_CLASSES:
            if class_name == "Sequential" and not isinstance(cfg, list) and not isinstance(cfg.get("layers"), list):
                raise KerasConfigError(f"layer {lname!r} (Sequential): its config has no layer list")
            scope = node_name + "/"
            first = (prefix + lname + "/") if call_idx else None
            if share_prefix is not None and not call_idx:
                first = share_prefix + lname + "/"
            outs = self.model(class_name, cfg, in_refs, prefix=scope,
                              trainable=layer_trainable, share_prefix=first)
            self.g.submodels[node_name] = {"class": class_name, "outputs": list(outs)}
            return outs

        attrs_extra = {}
        known_as = None
        try:
            if class_name in ("Bidirectional", "TimeDistributed"):
                inner = cfg.get("layer", {})
                if not isinstance(inner, dict) or not isinstance(inner.get("config", {}), dict):
                    raise KerasConfigError("the wrapped layer's config is not an object")
                op, attrs = read_layer(inner.get("class_name", ""), inner.get("config", {}))
                if class_name == "Bidirectional":
                    attrs.update(bidirectional=True, merge_mode=cfg.get("merge_mode", "concat"))
                else:
                    attrs["time_distributed"] = True
                    attrs_extra["inner"] = inner.get("class_name")
            elif is_operation(class_name, entry.get("module"), len(in_refs)):  # x / 127.5, keras.ops.mean, TFOpLambda
                nodes = entry.get("inbound_nodes") if isinstance(entry.get("inbound_nodes"), list) else []
                first = self.g.shape_of(in_refs[0]) if in_refs else None
                op, attrs = read_operation(class_name, entry.get("module"), cfg,
                                           nodes[call_idx] if call_idx < len(nodes) else None, len(in_refs),
                                           len(first) if first else None)
            else:
                registered = entry.get("registered_name")
                known_as = (self.known_shapes.get(node_name) or {}).get("as")
                try:
                    if isinstance(registered, str) and ">" in registered and registered in LAYERS:
                        op, attrs = read_layer(registered, cfg)   # a library's layer (keras_hub>...)
                    elif known_as is not None and class_name not in LAYERS:
                        op, attrs = known_as[0], dict(known_as[1])   # the live model told what it is
                        if op == "block":
                            attrs["output_shapes"] = [self.canon(x, f"layer {lname!r}: output shape")
                                                      for x in attrs["output_shapes"]]
                    else:
                        op, attrs = read_layer(class_name, cfg)
                except (KeyError, TypeError, ValueError) as exc:
                    if isinstance(exc, BadValue):
                        raise
                    op, attrs = "unknown", {"error": f"unreadable {class_name} config: {exc}"}
        except (BadValue, KerasConfigError) as exc:
            raise KerasConfigError(f"layer {lname!r} ({class_name}): {exc}") from None
        attrs.update(attrs_extra)
        attrs.update({k: v for k, v in call_kwargs(entry, call_idx).items() if k in CALL_ATTRS})

        node = Node(name=node_name, op=op, source_type=class_name, attrs=attrs,
                    inputs=list(in_refs), shares_params_with=shared,
                    scope=prefix)
        if op == "unknown" and attrs.get("operation"):
            node.attrs["kind"] = "operation"
            node.notes.append(f"operation {attrs['operation']}: not in modellint's op table; read, never run")
        elif op == "unknown":
            if not layer_trainable:
                node.attrs["frozen"] = True   # weights counted from a file later are all non-trainable
            kind = "code" if class_name in CODE_LAYERS else "custom"
            node.attrs.setdefault("kind", kind)
            node.notes.append(
                f"{class_name} layer: {'code is never executed; ' if kind == 'code' else ''}"
                "shape and parameters unknown unless the file says")
            if class_name in ("Lambda",) and isinstance(cfg.get("output_shape"), (list, tuple)):
                node.attrs["declared_output_shape"] = cfg.get("output_shape")

        in_shapes = [self.g.shape_of(r) for r in in_refs]
        build = build_config.get("input_shape")
        if build is not None and any(s is None for s in in_shapes):
            self._fill_from_build_config(in_refs, in_shapes, build)
        if any(s is None for s in in_shapes):  # after an unknown layer: the shapes its call recorded
            nodes = entry.get("inbound_nodes") if isinstance(entry.get("inbound_nodes"), list) else []
            recorded = call_shapes(nodes[call_idx]) if call_idx < len(nodes) else []
            if len(recorded) == len(in_refs):
                self._fill_from_build_config(in_refs, in_shapes, recorded, "call record")

        rank = len(in_shapes[0]) if in_shapes and in_shapes[0] is not None else 0
        if op in AXIS_OPS and "axis" in node.attrs and rank:
            node.attrs["axis"] = self.axis(node.attrs["axis"], rank, lname, class_name, "axis")
        if op == "activation" and node.attrs.get("function") == "prelu" and node.attrs.get("shared_axes") and rank:
            shared = node.attrs["shared_axes"]
            shared = shared if isinstance(shared, (list, tuple)) else [shared]
            node.attrs["shared_axes"] = [a % rank for a in self.axis(shared, rank, lname, class_name, "shared_axes")]
        if known_as is not None and op == known_as[0] and known_as[2]:
            node.notes.append(known_as[2])
        infer_node(node, in_shapes, self.layout)
        known = self.known_shapes.get(node_name) if node.op == "unknown" else None
        if known and not node.output_shapes:
            node.output_shapes = [self.canon(s, f"layer {lname!r}: output shape") for s in known["shapes"]]
            node.notes.append("output shape taken from the live model")
        count_node(node, in_shapes, layer_trainable, self.layout)
        if known and known.get("params"):
            node.params, node.trainable_params = known["params"]
            node.notes.append("parameters counted from the live model's weights")
        out = add_with_activation(self.g, node)
        if out != node_name:
            return [out]
        if len(node.output_shapes) > 1:
            return [f"{node_name}:{i}" if i else node_name for i in range(len(node.output_shapes))]
        return [node_name]

    def axis(self, axis, rank, lname, class_name, what):
        """A source axis (or list of axes) of a rank-``rank`` input as a canonical one."""
        axes = axis if isinstance(axis, (list, tuple)) else [axis]
        if not all(isinstance(a, int) and not isinstance(a, bool) and -rank <= a < rank for a in axes):
            raise KerasConfigError(f"layer {lname!r} ({class_name}): {what} {_short(axis)} is not an axis "
                                   f"of its rank-{rank} input")
        return _canon_axis(axis, rank, self.layout)

    def _fill_from_build_config(self, in_refs, in_shapes, build, what="build_config"):
        if what == "build_config":
            shapes = (build if len(in_refs) > 1 and isinstance(build, list) and build and isinstance(build[0], list)
                      else [build])
            if isinstance(build, dict):
                shapes = list(build.values())
        else:
            shapes = build
        for i, ref in enumerate(in_refs):
            if in_shapes[i] is None and i < len(shapes) and isinstance(shapes[i], list):
                in_shapes[i] = self.canon(shapes[i], f"{what} input_shape")
                producer = self.g.nodes.get(ref.split(":")[0] if ":" in ref else ref)
                if producer is not None and not producer.output_shapes:
                    producer.output_shapes = [in_shapes[i]]
                    producer.notes.append(f"output shape taken from the next layer's {what}")


# ---------------------------------------------------------------------------
# training configuration
# ---------------------------------------------------------------------------

def _snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return s.lower()


_LOSS_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error",
                 "mape": "mean_absolute_percentage_error", "msle": "mean_squared_logarithmic_error",
                 "bce": "binary_crossentropy", "kld": "kl_divergence",
                 "kullback_leibler_divergence": "kl_divergence"}


def _loss(value) -> tuple:
    """(name, from_logits, config) of a serialised loss (string, dict, list/dict per output)."""
    if value is None:
        return None, None, {}
    if isinstance(value, str):
        name = value.lower()
        return _LOSS_ALIASES.get(name, name), (False if "crossentropy" in name else None), {}
    if isinstance(value, dict) and "class_name" in value:
        cfg = value.get("config") or {}
        if isinstance(cfg, str):  # a function serialised by name
            return _loss(cfg)
        if not isinstance(value["class_name"], str) or not isinstance(cfg, dict):
            raise KerasConfigError(f"loss {_short(value)} is not a Keras loss config")
        name = _snake(value["class_name"])
        if name == "function":
            name = str(cfg.get("name", "function"))
        name = _LOSS_ALIASES.get(name, name)
        return name, cfg.get("from_logits", False if "crossentropy" in name else None), cfg
    if isinstance(value, dict):  # one loss per output
        parts = [_loss(v) for v in value.values()]
    elif isinstance(value, (list, tuple)):
        parts = [_loss(v) for v in value]
    else:
        return str(value), None, {}
    parts = [p for p in parts if p[0]]
    if not parts:
        return None, None, {}
    return parts[0][0], parts[0][1], {"per_output": [p[0] for p in parts]}


def _optimizer(value) -> tuple:
    """(name, learning_rate, config)."""
    if value is None:
        return None, None, {}
    if isinstance(value, str):
        return value.lower(), None, {}
    cfg = value.get("config") if isinstance(value, dict) else None
    if not isinstance(value, dict) or not isinstance(cfg or {}, dict):
        raise KerasConfigError(f"optimizer {_short(value)} is not a Keras optimizer config")
    cfg = dict(cfg or {})
    name = value.get("class_name", cfg.get("name", "unknown"))
    if not isinstance(name, str):
        raise KerasConfigError(f"optimizer class_name {_short(name)} is not a string")
    lr = cfg.get("learning_rate", cfg.get("lr"))
    if isinstance(lr, dict):  # a schedule
        inner = lr.get("config") if isinstance(lr.get("config"), dict) else {}
        cfg["learning_rate_schedule"] = lr.get("class_name")
        lr = inner.get("initial_learning_rate", inner.get("learning_rate"))
    try:
        lr = float(lr) if lr is not None else None
    except (TypeError, ValueError, OverflowError):
        lr = None
    if lr is not None and not math.isfinite(lr):
        lr = None   # Infinity or NaN: no learning rate anyone set
    if lr is not None:
        lr = float(f"{lr:.6g}")  # configs store float32 values (0.0010000000474974513)
    cfg.pop("name", None)  # an instance name ("adam_3" after a few optimizers in one process), not a setting
    if "use_ema" in cfg:  # Keras >= 2.11 optimizers apply weight_decay decoupled (AdamW-style)
        cfg["decoupled_weight_decay"] = True
    return name.lower(), lr, cfg


def _metrics(value) -> list:
    out = []

    def walk(v):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict) and "class_name" in v:
            cfg = v.get("config") or {}
            if isinstance(cfg, dict) and isinstance(cfg.get("name"), str) and cfg.get("name"):
                out.append(cfg["name"])
            elif isinstance(v["class_name"], str):
                out.append(_snake(v["class_name"]))
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(value)
    return out


def training_from_h5(cfg: Optional[dict]) -> Optional[TrainingConfig]:
    """``training_config`` of a legacy ``.h5`` (Keras 1/2/3)."""
    if not isinstance(cfg, dict):
        return None
    loss, logits, loss_cfg = _loss(cfg.get("loss"))
    opt, lr, opt_cfg = _optimizer(cfg.get("optimizer_config"))
    return TrainingConfig(loss=loss, from_logits=logits, optimizer=opt, learning_rate=lr,
                          metrics=_metrics(cfg.get("metrics")), optimizer_config=opt_cfg,
                          loss_config=loss_cfg)


def training_from_compile_config(cfg: Optional[dict]) -> Optional[TrainingConfig]:
    """``compile_config`` of a ``.keras`` archive or ``model.get_compile_config()``."""
    if not isinstance(cfg, dict):
        return None
    loss, logits, loss_cfg = _loss(cfg.get("loss"))
    opt, lr, opt_cfg = _optimizer(cfg.get("optimizer"))
    return TrainingConfig(loss=loss, from_logits=logits, optimizer=opt, learning_rate=lr,
                          metrics=_metrics(cfg.get("metrics")), optimizer_config=opt_cfg,
                          loss_config=loss_cfg)


__all__ = ["graph_from_config", "is_model_config", "training_from_h5",
           "training_from_compile_config", "KerasConfigError", "activation_name"]
