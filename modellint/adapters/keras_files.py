"""Keras files read without Keras or TensorFlow: legacy HDF5, ``.keras`` zips, JSON.

Only h5py, zipfile and json are used. Nothing in a file is executed: Lambda
layers keep their (marshalled) code as an opaque string in the config, which we
never decode.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Optional

from ..errors import InputError
from ..graph import Graph
from .keras_config import (KerasConfigError, graph_from_config, is_model_config,
                           training_from_compile_config, training_from_h5)


def _text(value) -> Optional[str]:
    """HDF5 attributes are str with h5py 3, bytes in files from older stacks."""
    if value is None:
        return None
    if hasattr(value, "tobytes") and not isinstance(value, (bytes, str)):
        value = value.tobytes() if getattr(value, "ndim", 1) == 0 else value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _json(path, text: Optional[str], what: str):
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError(path, f"{what} is not valid JSON ({exc.msg} at char {exc.pos})") from None


def _build(path, model, **fields) -> Graph:
    try:
        return graph_from_config(model, **fields)
    except KerasConfigError as exc:
        raise InputError(path, str(exc)) from None
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise InputError(path, f"malformed Keras model config ({type(exc).__name__}: {exc})") from None


def h5_layer_names(attrs) -> list:
    """``layer_names`` of a legacy weights group, joined when split into ``layer_names0..N``."""
    if "layer_names" in attrs:
        return [_text(n) for n in attrs["layer_names"]]
    names, i = [], 0
    while f"layer_names{i}" in attrs:
        names.extend(_text(n) for n in attrs[f"layer_names{i}"])
        i += 1
    return names


def _open_h5(path: Path):
    import h5py  # a core dependency, imported late to keep `import modellint` light

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        reason = str(exc).split("(")[0].strip().rstrip(":") or "unreadable"
        raise InputError(path, f"not a readable HDF5 file, truncated or corrupt ({reason})") from None


def _root_attrs_fast(path: Path) -> Optional[dict]:
    """Root attributes read without h5py and numpy (see :mod:`.hdf5_attrs`); None
    when the fast reader cannot read the file, so that h5py decides."""
    from .hdf5_attrs import Unsupported, read_root_attrs

    try:
        return read_root_attrs(path, ("model_config", "training_config", "keras_version"), scalar_only=True)
    except Unsupported:
        return None


def _root_attrs_h5py(path: Path) -> tuple:
    """(root attributes as text, number of weight layers listed) through h5py."""
    try:
        with _open_h5(path) as f:
            attrs = {k: _text(f.attrs.get(k)) for k in ("model_config", "training_config", "keras_version")
                     if k in f.attrs}
            names = h5_layer_names(f.attrs)
            weights_only = bool(names or "model_weights" in f or "layers" in f or "vars" in f)
            return attrs, (len(names) or -1) if weights_only else 0
    except (RuntimeError, KeyError, ValueError) as exc:  # damaged structures inside a valid file
        raise InputError(path, f"corrupt HDF5 file ({type(exc).__name__}: {exc})") from None


def read_h5(path: Path, config_path: Optional[Path] = None) -> Graph:
    attrs = _root_attrs_fast(path)
    weight_layers = 0
    if not attrs or "model_config" not in attrs:
        attrs, weight_layers = _root_attrs_h5py(path)
    if "model_config" in attrs:
        training = training_from_h5(_json(path, attrs.get("training_config"), "training_config"))
        model = _json(path, attrs["model_config"], "model_config")
        if not is_model_config(model):
            raise InputError(path, "model_config is not a Keras model config")
        graph = _build(path, model, training=training, source_format="h5", source_path=str(path),
                       framework_version=attrs.get("keras_version"))
        if _needs_weights(graph):
            try:
                with _open_h5(path) as f:
                    if "model_weights" in f:
                        params_from_weights(graph, f["model_weights"])
            except (RuntimeError, KeyError, ValueError):
                graph.notes.append("stored weights unreadable; unknown layers' parameters not counted")
        return graph
    if config_path is not None:
        graph = read_json(config_path)
        graph.source_format = "h5+json"
        graph.notes.append(f"architecture from {config_path}, weights file {path}")
        if weight_layers > 0:
            graph.notes.append(f"weights file lists {weight_layers} layers")
        graph.source_path = str(path)
        return graph
    if weight_layers:
        raise InputError(path, "holds weights only (no model_config attribute), so it has no "
                         "architecture; pass it with its architecture JSON: --config model.json")
    raise InputError(path, "HDF5 file is not a Keras model (no model_config attribute)")


def params_from_weights(graph: Graph, weights) -> None:
    """Count the parameters of layers the config cannot size (custom layers, layers
    after a Lambda) from the weight datasets' shapes. No data is read."""
    import h5py

    for node in graph:
        if node.params or node.shares_params_with or node.fused_into:
            continue
        if node.op != "unknown" and not any(n.startswith("parameters unknown") for n in node.notes):
            continue
        group = weights.get(node.name.split("@")[0])
        if not isinstance(group, h5py.Group):
            continue
        sizes = {}
        group.visititems(lambda name, obj: sizes.__setitem__(name, obj.size)
                         if isinstance(obj, h5py.Dataset) else None)
        if not sizes:
            continue
        node.params = sum(sizes.values())
        node.trainable_params = sum(v for k, v in sizes.items() if "moving_" not in k)
        node.notes = [n for n in node.notes if not n.startswith("parameters unknown")]
        node.notes.append("parameters counted from the weights stored in the file")


def read_keras_zip(path: Path) -> Graph:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(path, f"not a readable zip archive ({exc})") from None
    with zf:
        names = set(zf.namelist())
        if "config.json" not in names:
            if any(n.endswith("data.pkl") or n.endswith(".data/version") or n.endswith("/version") for n in names):
                raise InputError(path, "zip archive looks like a PyTorch checkpoint, not a Keras "
                                 ".keras archive (no config.json)")
            raise InputError(path, "zip archive has no config.json: not a Keras .keras archive")
        try:
            config_text = zf.read("config.json").decode("utf-8")
            meta_text = zf.read("metadata.json").decode("utf-8") if "metadata.json" in names else None
        except (zipfile.BadZipFile, OSError, UnicodeDecodeError, EOFError) as exc:
            raise InputError(path, f"corrupt .keras archive ({exc})") from None
        except Exception as exc:  # zlib.error and friends from a damaged member
            raise InputError(path, f"corrupt .keras archive ({type(exc).__name__}: {exc})") from None
    model = _json(path, config_text, "config.json")
    meta = _json(path, meta_text, "metadata.json") if meta_text else {}
    if not is_model_config(model):
        raise InputError(path, "config.json is not a Keras model config")
    training = training_from_compile_config(model.get("compile_config"))
    graph = _build(path, model, training=training, source_format="keras", source_path=str(path),
                   framework_version=(meta or {}).get("keras_version"))
    if "model.weights.h5" in names and _needs_weights(graph):
        _params_from_keras_weights(path, graph)
    return graph


def _needs_weights(graph: Graph) -> bool:
    return any(n.op == "unknown" or any(x.startswith("parameters unknown") for x in n.notes) for n in graph)


def _params_from_keras_weights(path: Path, graph: Graph) -> None:
    """Weights of a .keras archive live under layers/<name>/vars/<i>; shapes only are read."""
    import io

    import h5py

    try:
        with zipfile.ZipFile(path) as zf, h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as f:
            if "layers" in f:
                params_from_weights(graph, f["layers"])
    except (OSError, KeyError, zipfile.BadZipFile):
        graph.notes.append("weights file in the archive is unreadable; unknown layers' parameters not counted")


def read_json(path: Path) -> Graph:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text, so not a model JSON") from None
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror})") from None
    model = _json(path, text, "file")
    if isinstance(model, dict) and is_model_config(model):
        training = training_from_compile_config(model.get("compile_config"))
        return _build(path, model, training=training, source_format="json", source_path=str(path),
                      framework_version=model.get("keras_version"))
    raise InputError(path, "JSON is not a Keras model (expected an object with class_name "
                     "Sequential/Functional/Model and config, as written by model.to_json())")
