"""Keras files read without Keras or TensorFlow: legacy HDF5, ``.keras`` zips, JSON.

Only h5py, zipfile and json are used. Nothing in a file is executed: Lambda
layers keep their (marshalled) code as an opaque string in the config, which we
never decode.

Hostile input is bounded:

* JSON (a ``.json`` file, ``config.json`` in an archive, the ``model_config``
  attribute of an ``.h5``) is size-checked and its objects, values and nesting
  counted before and after parsing (the caps below), so a small file cannot make
  a huge or deeply nested object tree;
* archive members are read only up to a cap, checked against the size the
  archive declares and again while reading (a declared size can lie);
* h5py runs only in a child process (:func:`_h5py_child`), stopped after
  :data:`H5PY_TIMEOUT_S` and limited to :data:`H5PY_CHILD_MEMORY` of address
  space: libhdf5 can loop forever, or crash, on a damaged file. The usual
  ``.h5`` never gets there: its root attributes are read in pure Python
  (:mod:`.hdf5_attrs`), which refuses a certainly damaged file itself.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Optional

from ..errors import InputError, NoArchitecture
from ..graph import Graph
from .keras_config import (KerasConfigError, graph_from_config, is_model_config,
                           training_from_compile_config, training_from_h5)
from .keras_registered import graph_from_registered, registered_name

# -- caps on what a file may make us read --------------------------------------------------
#: Bytes of one JSON model config (a .json file, config.json, an .h5's model_config).
#: The largest Keras application config (NASNetLarge) is 2 MB.
MAX_JSON_BYTES = 32 << 20
#: Objects and arrays in one JSON config (NASNetLarge: 42,000). A parsed one costs
#: 60-200 bytes, so this keeps a parsed config under ~200 MiB whatever its shape.
MAX_JSON_CONTAINERS = 1_000_000
#: Values in one JSON config, counted by their separators (NASNetLarge: 186,000).
MAX_JSON_ITEMS = 4_000_000
#: Nesting of one JSON config (Keras configs nest ~15 levels, each nested model ~4
#: more). Python's parser and the graph builder recurse once per level.
MAX_JSON_DEPTH = 500
#: metadata.json of a .keras archive (Keras writes ~100 bytes).
MAX_METADATA_BYTES = 1 << 20
#: A compressed model.weights.h5 is decompressed into memory (in the h5py child) to
#: count the weights of layers the config cannot size, up to this size; a larger one
#: is left unread with a note. Keras stores members uncompressed, and those are read
#: in place, at any size.
MAX_INFLATED_WEIGHTS_BYTES = 256 << 20
#: Seconds h5py may take to read an HDF5 file's attributes or weight shapes (a
#: healthy file takes milliseconds; libhdf5 loops forever on some damaged ones).
#: The environment variable MODELLINT_H5PY_TIMEOUT overrides it.
H5PY_TIMEOUT_S = 30
#: Address space of the h5py child: h5py and numpy take ~160 MiB of it.
H5PY_CHILD_MEMORY = 1 << 30


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
    """Parse one JSON config, refusing one too large, too big once parsed, or too deep."""
    if text is None:
        return None
    if len(text) > MAX_JSON_BYTES:
        raise InputError(path, f"{what} is {len(text):,} characters, more than the {MAX_JSON_BYTES >> 20} MiB "
                         "a model config may have")
    containers = text.count("{") + text.count("[")
    if containers > MAX_JSON_CONTAINERS:
        raise InputError(path, f"{what} holds {containers:,} JSON objects and arrays, more than the "
                         f"{MAX_JSON_CONTAINERS:,} a model config may have")
    items = text.count(",") + text.count(":")
    if items > MAX_JSON_ITEMS:
        raise InputError(path, f"{what} holds {items:,} JSON values, more than the {MAX_JSON_ITEMS:,} "
                         "a model config may have")
    try:
        value = json.loads(text)
    except RecursionError:
        raise InputError(path, f"{what} is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            raise InputError(path, f"{what} is not valid JSON ({exc.msg} at char {exc.pos})") from None
        digits = re.search(r"value has (\d+) digits", str(exc))
        if digits:  # Python's cap on converting long digit strings to int
            raise InputError(path, f"{what} holds a number of {int(digits.group(1)):,} digits, more than "
                             f"the {sys.get_int_max_str_digits():,} a JSON number may have here") from None
        raise InputError(path, f"{what} is not valid JSON ({exc})") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise InputError(path, f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def _depth(value) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    best, stack = 0, [(value, 1)]
    while stack:
        obj, d = stack.pop()
        if isinstance(obj, dict):
            obj = obj.values()
        elif not isinstance(obj, list):
            continue
        best = max(best, d)
        stack.extend((v, d + 1) for v in obj if isinstance(v, (dict, list)))
    return best


def _build(path, model, **fields) -> Graph:
    try:
        return graph_from_config(model, **fields)
    except KerasConfigError as exc:
        raise InputError(path, str(exc)) from None
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise InputError(path, f"malformed Keras model config ({type(exc).__name__}: {exc})") from None


def _training(path, read, cfg, what: str):
    try:
        return read(cfg)
    except KerasConfigError as exc:
        raise InputError(path, f"{what}: {exc}") from None


def h5_layer_names(attrs) -> list:
    """``layer_names`` of a legacy weights group, joined when split into ``layer_names0..N``."""
    if "layer_names" in attrs:
        return [_text(n) for n in attrs["layer_names"]]
    names, i = [], 0
    while f"layer_names{i}" in attrs:
        names.extend(_text(n) for n in attrs[f"layer_names{i}"])
        i += 1
    return names


# -- HDF5 ------------------------------------------------------------------------------------

def _root_attrs_fast(path: Path) -> Optional[dict]:
    """Root attributes read without h5py and numpy (see :mod:`.hdf5_attrs`); None
    when the fast reader cannot read the file, so that h5py decides. A file the
    fast reader finds certainly damaged is refused here, never handed to h5py."""
    from .hdf5_attrs import Corrupt, Unsupported, read_root_attrs

    try:
        return read_root_attrs(path, ("model_config", "training_config", "keras_version"), scalar_only=True)
    except Corrupt as exc:
        raise InputError(path, f"not a readable HDF5 file, truncated or corrupt ({exc})") from None
    except Unsupported:
        return None


def _h5py_failure(path, result: dict, doing: str) -> str:
    """The problem text for a failed h5py child."""
    kind, message = result.get("error"), result.get("message", "")
    if kind == "timeout":
        return (f"HDF5 file is malformed: h5py did not finish {doing} within {_h5py_timeout():g} s "
                "(libhdf5 loops forever on some damaged files)")
    if kind == "crash":
        return f"HDF5 file is malformed: the HDF5 library failed {doing} ({message})"
    if kind == "open":
        return f"not a readable HDF5 file, truncated or corrupt ({message})"
    return f"corrupt HDF5 file ({message})"


def _root_attrs_h5py(path: Path) -> tuple:
    """(root attributes as text, number of weight layers listed) through h5py."""
    result = _h5py_child({"op": "root", "path": str(path)})
    if "error" in result:
        raise InputError(path, _h5py_failure(path, result, "reading its attributes"))
    return result["attrs"], result["weight_layers"]


def read_h5(path: Path, config_path: Optional[Path] = None) -> Graph:
    attrs = _root_attrs_fast(path)
    weight_layers = 0
    if not attrs or "model_config" not in attrs:
        attrs, weight_layers = _root_attrs_h5py(path)
    if "model_config" in attrs:
        training = _training(path, training_from_h5, _json(path, attrs.get("training_config"), "training_config"),
                             "training_config")
        model = _json(path, attrs["model_config"], "model_config")
        if not is_model_config(model) and registered_name(model):
            return graph_from_registered(path, model, source_format="h5", training=training,
                                         framework_version=_version(attrs.get("keras_version")))
        if not is_model_config(model):
            raise InputError(path, "model_config is not a Keras model config")
        graph = _build(path, model, training=training, source_format="h5", source_path=str(path),
                       framework_version=_version(attrs.get("keras_version")))
        if _needs_weights(graph):
            _params_from_stored_weights(graph, path, "model_weights")
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
        raise NoArchitecture(path, "holds weights only (no model_config attribute), so it has no "
                         "architecture; pass it with its architecture JSON: --config model.json")
    raise NoArchitecture(path, "HDF5 file is not a Keras model (no model_config attribute)")


def _version(value) -> Optional[str]:
    return value[:64] if isinstance(value, str) else None


def _weights_wanted(graph: Graph) -> list:
    """Names (as stored: the first call's, without ``@k``) of layers whose
    parameters only the stored weights can tell."""
    out = []
    for node in graph:
        if node.params or node.shares_params_with or node.fused_into:
            continue
        if node.op != "unknown" and not any(n.startswith("parameters unknown") for n in node.notes):
            continue
        name = node.name.split("@")[0]
        if name not in out:
            out.append(name)
    return out


def weight_sizes(weights, names) -> dict:
    """``{name: (total, trainable)}`` of the weight datasets under ``weights[name]``
    (an h5py group); only shapes are read, never data."""
    import h5py

    out = {}
    for name in names:
        group = weights.get(name)
        if not isinstance(group, h5py.Group):
            continue
        sizes = {}
        group.visititems(lambda key, obj: sizes.__setitem__(key, obj.size)
                         if isinstance(obj, h5py.Dataset) else None)
        if sizes:
            out[name] = (int(sum(sizes.values())), int(sum(v for k, v in sizes.items() if "moving_" not in k)))
    return out


def _apply_weight_sizes(graph: Graph, sizes: dict) -> None:
    for node in graph:
        if node.params or node.shares_params_with or node.fused_into:
            continue
        if node.op != "unknown" and not any(n.startswith("parameters unknown") for n in node.notes):
            continue
        found = sizes.get(node.name.split("@")[0])
        if not found:
            continue
        frozen = bool(node.attrs.get("frozen"))
        node.params, node.trainable_params = int(found[0]), 0 if frozen else int(found[1])
        node.notes = [n for n in node.notes if not n.startswith("parameters unknown")]
        node.notes.append("parameters counted from the weights stored in the file"
                          + ("; the layer is frozen (trainable: false), so none train" if frozen else
                             "; the file does not record which of its weights train: all but moving "
                             "statistics counted trainable"))


def params_from_weights(graph: Graph, weights) -> None:
    """Count the parameters of layers the config cannot size (custom layers, layers
    after a Lambda) from the weight datasets' shapes in ``weights``, an open h5py
    group the caller trusts. No data is read."""
    _apply_weight_sizes(graph, weight_sizes(weights, _weights_wanted(graph)))


def _params_from_stored_weights(graph: Graph, path: Path, group: str, member: Optional[dict] = None,
                                keys: Optional[dict] = None) -> None:
    """Weight shapes of ``group`` in the HDF5 file at ``path`` (or in the archive
    member ``member`` of it), read by the h5py child; unreadable weights are a note.
    ``keys`` maps a layer name to the group its weights are stored under, where that differs."""
    keys = keys or {}
    wanted = _weights_wanted(graph)
    result = _h5py_child({"op": "sizes", "path": str(path), "member": member, "group": group,
                          "names": [keys.get(n, n) for n in wanted]})
    if "sizes" in result:
        result["sizes"] = {n: result["sizes"][keys.get(n, n)] for n in wanted if keys.get(n, n) in result["sizes"]}
    if "error" in result:
        why = _h5py_failure(path, result, "reading its weights").split(": ", 1)[-1]
        where = "weights file in the archive" if member else "stored weights"
        graph.notes.append(f"{where} unreadable ({why[:120]}); unknown layers' parameters not counted")
        return
    _apply_weight_sizes(graph, result["sizes"])


# -- the h5py child ----------------------------------------------------------------------------

def _h5py_child(task: dict) -> dict:
    """Run one h5py ``task`` in a child Python, bounded by H5PY_TIMEOUT_S and
    H5PY_CHILD_MEMORY: ``{"error": "timeout" | "crash" | "open" | "corrupt", "message"}``
    or the task's result. Costs ~0.2 s (a fresh interpreter importing h5py); only
    files the pure-Python reader cannot read, and weights of layers the config
    cannot size, come here. A frozen application, which has no Python to start,
    runs the task in process."""
    if getattr(sys, "frozen", False):
        return _run_task(task)
    root = str(Path(__file__).resolve().parents[2])
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from modellint.adapters.keras_files import _child_main; _child_main()")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               HDF5_USE_FILE_LOCKING="FALSE")
    try:
        proc = subprocess.run([sys.executable, "-P", "-c", code, root], input=json.dumps(task).encode(),
                              capture_output=True, timeout=_h5py_timeout(), env=env)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    except OSError:
        return _run_task(task)
    if proc.returncode != 0:
        rc = proc.returncode
        how = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
        last = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        return {"error": "crash", "message": f"{how}{': ' + last[0][:120] if last[0] else ''}"}
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return {"error": "crash", "message": "no result"}


def _h5py_timeout() -> float:
    try:
        value = float(os.environ.get("MODELLINT_H5PY_TIMEOUT", H5PY_TIMEOUT_S))
    except ValueError:
        return H5PY_TIMEOUT_S
    return value if value > 0 and value == value else H5PY_TIMEOUT_S


def _child_main() -> None:
    """Entry point of the h5py child: a task as JSON on stdin, the result on stdout."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = H5PY_CHILD_MEMORY if hard == resource.RLIM_INFINITY else min(H5PY_CHILD_MEMORY, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass
    task = json.loads(sys.stdin.buffer.read())
    sys.stdout.write(json.dumps(_run_task(task)))
    sys.stdout.flush()


def _hdf5_reason(exc: BaseException) -> str:
    """libhdf5's own words from an h5py exception (``Unable to synchronously open object
    (unable to determine object type)`` -> ``unable to determine object type``)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    inner = text[text.rfind("(") + 1:].rstrip(") \n") if text.rstrip().endswith(")") and "(" in text else text
    return " ".join((inner or type(exc).__name__).split())[:160]


def _run_task(task: dict) -> dict:
    import h5py

    doing = "opening it"
    try:
        fileobj = _member_file(task["path"], task.get("member"))
        try:
            f = h5py.File(fileobj if fileobj is not None else task["path"], "r")
        except OSError as exc:
            reason = str(exc).split("(")[0].strip().rstrip(":") or "unreadable"
            return {"error": "open", "message": reason}
        with f:
            if task["op"] == "root":
                attrs = {}
                for key in ("model_config", "training_config", "keras_version"):
                    doing = f"reading the {key} attribute"
                    if key in f.attrs:
                        raw = f.attrs.get(key)
                        try:
                            attrs[key] = _text(raw)
                        except UnicodeDecodeError as exc:
                            return {"error": "corrupt", "message": f"the {key} attribute is not UTF-8 text: "
                                    f"byte 0x{exc.object[exc.start]:02x} at {exc.start:,}"}
                        if attrs[key] is not None and len(attrs[key]) > MAX_JSON_BYTES:
                            return {"error": "corrupt", "message": f"{key} attribute larger than "
                                    f"{MAX_JSON_BYTES >> 20} MiB"}
                doing = "reading the layer_names attribute"
                names = h5_layer_names(f.attrs)
                doing = "looking for the weights groups"
                weights_only = bool(names or "model_weights" in f or "layers" in f or "vars" in f)
                return {"attrs": attrs, "weight_layers": (len(names) or -1) if weights_only else 0}
            doing = f"reading the {task['group']} group"
            group = f[task["group"]] if task["group"] in f else None
            sizes = weight_sizes(group, task["names"]) if isinstance(group, h5py.Group) else {}
            return {"sizes": sizes}
    except MemoryError:
        return {"error": "corrupt", "message": f"out of memory {doing} (the child's cap is "
                f"{H5PY_CHILD_MEMORY >> 20} MiB)"}
    except UnicodeDecodeError:
        return {"error": "corrupt", "message": f"text that is not UTF-8 {doing}"}
    except Exception as exc:  # damaged structures inside a readable file, in libhdf5's words
        return {"error": "corrupt", "message": f"{doing}: {_hdf5_reason(exc)}"}


class _Window(io.RawIOBase):
    """Bytes ``offset .. offset + size`` of a file, as a read-only file (an archive
    member stored uncompressed, handed to h5py without copying it)."""

    def __init__(self, path, offset: int, size: int):
        self.f = open(path, "rb")
        self.offset, self.size, self.pos = offset, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, pos, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + pos)
        return self.pos

    def tell(self):
        return self.pos

    def readinto(self, buf):
        n = max(0, min(len(buf), self.size - self.pos))
        self.f.seek(self.offset + self.pos)
        data = self.f.read(n)
        buf[:len(data)] = data
        self.pos += len(data)
        return len(data)

    def close(self):
        self.f.close()
        super().close()


def _member_file(path, member: Optional[dict]):
    """None (the file itself), or the archive member ``member`` as a file: in place
    when stored, else decompressed into memory up to MAX_INFLATED_WEIGHTS_BYTES."""
    if member is None:
        return None
    if "offset" in member:
        return _Window(path, member["offset"], member["size"])
    with zipfile.ZipFile(path) as zf:
        return io.BytesIO(read_member(zf, zf.getinfo(member["name"]), MAX_INFLATED_WEIGHTS_BYTES))


# -- .keras archives ---------------------------------------------------------------------------

class MemberTooLarge(ValueError):
    pass


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """The bytes of an archive member, refused above ``cap``: first by the size the
    archive declares, then while reading (a declared size can lie)."""
    if info.file_size > cap:
        raise MemberTooLarge(f"{info.filename} is {info.file_size:,} bytes uncompressed, more than the "
                             f"{_size_text(cap)} modellint reads (a zip bomb?)")
    out = io.BytesIO()
    with zf.open(info) as f:
        while True:
            chunk = f.read(min(1 << 20, cap + 1 - out.tell()))
            if not chunk:
                break
            out.write(chunk)
            if out.tell() > cap:
                raise MemberTooLarge(f"{info.filename} decompresses to more than {_size_text(cap)} "
                                     "(more than the archive declares)")
    return out.getvalue()


def _size_text(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def _stored_span(path: Path, info: zipfile.ZipInfo) -> Optional[dict]:
    """Where an uncompressed, unencrypted member's bytes lie in the archive file."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1 or info.compress_size != info.file_size:
        return None
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(info.header_offset)
        head = f.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        return None
    name_len, extra_len = struct.unpack_from("<HH", head, 26)
    offset = info.header_offset + 30 + name_len + extra_len
    if offset + info.file_size > size:
        return None
    return {"offset": offset, "size": info.file_size}


def read_keras_zip(path: Path) -> Graph:
    config_text, meta_text, members = _keras_zip_texts(path)
    model = _json(path, config_text, "config.json")
    meta = _json(path, meta_text, "metadata.json") if meta_text else {}
    version = _version(meta.get("keras_version") if isinstance(meta, dict) else None)
    if not is_model_config(model):
        if registered_name(model):
            training = _training(path, training_from_compile_config, model.get("compile_config"), "compile_config")
            return graph_from_registered(path, model, source_format="keras", training=training,
                                         framework_version=version)
        raise InputError(path, "config.json is not a Keras model config")
    training = _training(path, training_from_compile_config, model.get("compile_config"), "compile_config")
    graph = _build(path, model, training=training, source_format="keras", source_path=str(path),
                   framework_version=version)
    weights = members.get("model.weights.h5")
    if weights is not None and _needs_weights(graph):
        _params_from_keras_weights(path, graph, weights, _keras_weight_keys(model))
    return graph


def _snake(name: str) -> str:
    """Keras 3's ``naming.to_snake_case``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras_weight_keys(model: dict) -> dict:
    """Where a ``.keras`` archive stores each top-level layer's weights: Keras 3 names the group
    after the layer's class, not the layer (``layers/dense_1`` for the second Dense, whatever its
    name), numbered in the order of the model's layer list."""
    layers = model.get("config", {}).get("layers") if isinstance(model.get("config"), dict) else None
    out, used = {}, {}
    for entry in layers if isinstance(layers, list) else []:
        cls, name = entry.get("class_name"), entry.get("name") or (entry.get("config") or {}).get("name")
        if not isinstance(cls, str) or not isinstance(name, str):
            continue
        key = _snake(cls.split(">")[-1])
        used[key] = used.get(key, -1) + 1
        out[name] = f"{key}_{used[key]}" if used[key] else key
    return out


def _keras_zip_texts(path: Path) -> tuple:
    """(config.json text, metadata.json text or None, {name: ZipInfo}) of a .keras archive, read
    within the caps; a damaged or hostile archive is an InputError."""
    from . import check_zip

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable zip archive ({exc})") from None
    with zf:
        infos = zf.infolist()
        check_zip(path, infos)
        members = {i.filename: i for i in infos}
        if "config.json" not in members:
            if any(n.endswith("data.pkl") or n.endswith(".data/version") or n.endswith("/version") for n in members):
                raise InputError(path, "zip archive looks like a PyTorch checkpoint, not a Keras "
                                 ".keras archive (no config.json)")
            raise InputError(path, "zip archive has no config.json: not a Keras .keras archive")
        for name in ("config.json", "metadata.json"):
            if name in members:
                _check_member(path, members[name])
        try:
            config_text = read_member(zf, members["config.json"], MAX_JSON_BYTES).decode("utf-8")
            meta_text = (read_member(zf, members["metadata.json"], MAX_METADATA_BYTES).decode("utf-8")
                         if "metadata.json" in members else None)
        except MemberTooLarge as exc:
            raise InputError(path, f"refused: {exc}") from None
        except UnicodeDecodeError:
            raise InputError(path, "corrupt .keras archive (config.json or metadata.json is not UTF-8)") from None
        except OSError as exc:  # a member whose data lies past the end, or a read error
            raise InputError(path, f"corrupt .keras archive (config.json or metadata.json cannot be read: "
                             f"{exc.strerror or exc})") from None
        except zipfile.BadZipFile as exc:  # a bad CRC, a bad local header
            raise InputError(path, f"corrupt .keras archive ({exc})") from None
        except Exception as exc:  # zlib.error, EOFError...
            raise InputError(path, f"corrupt .keras archive ({type(exc).__name__}: {exc})") from None
    return config_text, meta_text, members


#: zip compression methods Python's zipfile (and so Keras) can read
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                zipfile.ZIP_LZMA: "LZMA"}
_OTHER_METHODS = {1: "Shrink", 6: "Implode", 9: "Deflate64", 10: "PKWARE DCL Implode", 18: "IBM TERSE",
                  19: "IBM LZ77", 93: "Zstandard", 95: "xz", 96: "JPEG", 97: "WavPack", 98: "PPMd",
                  99: "AES encryption"}


def _check_member(path: Path, info: zipfile.ZipInfo) -> None:
    """Refuse, naming why, an archive member zipfile cannot read: encrypted, compressed with a
    method it lacks, or placed by the archive's directory outside the file (bytes cut or inserted)."""
    name = info.filename
    if info.flag_bits & 0x1 or info.compress_type == 99:
        raise InputError(path, f"corrupt .keras archive ({name} is encrypted; Keras archives never are)")
    if info.compress_type not in _ZIP_METHODS:
        method = _OTHER_METHODS.get(info.compress_type, "unknown")
        raise InputError(path, f"corrupt .keras archive ({name} is compressed with method {info.compress_type} "
                         f"({method}), which Python's zipfile and Keras cannot read)")
    try:
        size = path.stat().st_size
    except OSError:
        return
    if not 0 <= info.header_offset <= size - 30:
        raise InputError(path, f"corrupt .keras archive (its directory places {name} at byte "
                         f"{info.header_offset:,}, outside the {size:,}-byte file: bytes cut or inserted?)")


def model_architecture(path) -> tuple:
    """``("keras" | "h5", model config JSON text)`` of a ``.keras`` archive or a legacy ``.h5``,
    read as :func:`read_keras_zip` / :func:`read_h5` read it (within the same caps, a damaged file
    refused with the same InputError) and checked to parse as a Keras model config. Nothing else
    in the file is read: not one byte of the weights.

    The probes' Keras runner builds its model from this text instead of calling
    ``keras.saving.load_model`` on the file: the probes re-initialise every weight anyway, and
    Keras reading a damaged weights file in process (libhdf5) can loop forever or exhaust memory,
    where the adapter's reads are bounded."""
    path = Path(path)
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror or exc})") from None
    if is_zip:
        text = _keras_zip_texts(path)[0]
        kind = "keras"
    else:
        attrs = _root_attrs_fast(path)
        if not attrs or "model_config" not in attrs:
            attrs, weight_layers = _root_attrs_h5py(path)
            if "model_config" not in attrs:
                raise InputError(path, "holds weights only (no model_config attribute): the probes need the "
                                 "architecture in the file" if weight_layers else
                                 "HDF5 file is not a Keras model (no model_config attribute)")
        text, kind = attrs["model_config"], "h5"
    if not is_model_config(_json(path, text, "config.json" if kind == "keras" else "model_config")):
        raise InputError(path, f"{'config.json' if kind == 'keras' else 'model_config'} is not a Keras model config")
    return kind, text


def _needs_weights(graph: Graph) -> bool:
    return any(n.op == "unknown" or any(x.startswith("parameters unknown") for x in n.notes) for n in graph)


def _params_from_keras_weights(path: Path, graph: Graph, info: zipfile.ZipInfo, keys: Optional[dict] = None) -> None:
    """Weights of a .keras archive live under layers/<name>/vars/<i>; shapes only are read."""
    member = _stored_span(path, info)
    if member is None:
        if info.file_size > MAX_INFLATED_WEIGHTS_BYTES:
            graph.notes.append(f"weights file in the archive is compressed and {info.file_size:,} bytes, more "
                               f"than the {_size_text(MAX_INFLATED_WEIGHTS_BYTES)} modellint decompresses; "
                               "unknown layers' parameters not counted")
            return
        member = {"name": info.filename}
    _params_from_stored_weights(graph, path, "layers", member, keys)


def read_json(path: Path) -> Graph:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_JSON_BYTES:
                raise InputError(path, f"JSON file is {size:,} bytes, more than the {MAX_JSON_BYTES >> 20} MiB "
                                 "a model config may have")
            data = f.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text, so not a model JSON") from None
    model = _json(path, text, "file")
    if isinstance(model, dict) and (is_model_config(model) or registered_name(model)):
        training = _training(path, training_from_compile_config, model.get("compile_config"), "compile_config")
        if not is_model_config(model):
            return graph_from_registered(path, model, source_format="json", training=training,
                                         framework_version=_version(model.get("keras_version")))
        return _build(path, model, training=training, source_format="json", source_path=str(path),
                      framework_version=_version(model.get("keras_version")))
    raise InputError(path, "JSON is not a Keras model (expected an object with class_name "
                     "Sequential/Functional/Model and config, as written by model.to_json())")
