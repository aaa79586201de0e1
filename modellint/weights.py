"""Weights per node: ``{node name: {weight name: numpy array}}`` read from a model
file or a live model, in the framework's own naming.

* Keras: ``kernel``, ``bias``, ``gamma``, ``beta``, ``moving_mean``,
  ``moving_variance``, ``recurrent_kernel``, ``embeddings``... A legacy ``.h5``
  names them (``weight_names``); a ``.keras`` archive's ``model.weights.h5`` stores
  ``vars/0, 1, ...``, named here from the layer type where the count matches
  (else left as ``"0"``, ``"1"``..., in the layer's own order).
* PyTorch: the state_dict names local to the module (``weight``, ``bias``,
  ``running_mean``, ``running_var``, ``num_batches_tracked``).
* ONNX: initializers, named by what follows the module path (``weight``), else
  by the initializer's own name.
* A ``torch.export`` archive (``.pt2``): its program's state_dict, named as a
  state_dict's; a ``.safetensors`` file (a state_dict's names, for a code target):
  its JSON header checked and capped, then raw bytes read with numpy.

Security, as for the architecture readers (issue 10): h5py reads untrusted files
only in a child process (:mod:`modellint.adapters.keras_files`' pattern), bounded
in time and address space, and hands the arrays back through a temporary ``.npz``
(numeric arrays only; loaded with ``allow_pickle=False``). A PyTorch file is read
with ``torch.load(weights_only=True)`` only, never with a full unpickler; a ``.pt2`` by
``torch.export.load`` only after the architecture reader's scan and under its guard
(:mod:`modellint.adapters.torch_files`), members torch would fully unpickle refused. Every
reader caps the bytes it reads: one tensor at :data:`MAX_TENSOR_BYTES`, all at
:data:`MAX_WEIGHT_BYTES`.

:func:`iter_weights` yields ``(node name, arrays)`` layer by layer (the parent
holds one layer's arrays at a time); :func:`read_weights` collects them.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Iterator, Optional

from .errors import InputError, ModelLintError
from .graph import Graph

#: The largest single weight tensor read (a 1 GiB embedding table is already rare).
MAX_TENSOR_BYTES = 1 << 30
#: All weights read from one file.
MAX_WEIGHT_BYTES = 8 << 30
#: Address space of the h5py weights child: h5py + numpy (~200 MiB) and one tensor twice.
CHILD_MEMORY = (1 << 30) + 2 * MAX_TENSOR_BYTES
WEIGHTS_TIMEOUT_S = 120

# Keras variables of a layer, in the order the layer creates them (for a .keras
# archive's positional vars/0, 1, ...). BatchNormalization depends on center/scale.
_KERAS_ORDER = {
    "Conv1D": ["kernel", "bias"], "Conv2D": ["kernel", "bias"], "Conv3D": ["kernel", "bias"],
    "Conv1DTranspose": ["kernel", "bias"], "Conv2DTranspose": ["kernel", "bias"],
    "Conv3DTranspose": ["kernel", "bias"], "Dense": ["kernel", "bias"],
    "DepthwiseConv1D": ["kernel", "bias"], "DepthwiseConv2D": ["kernel", "bias"],
    "SeparableConv1D": ["depthwise_kernel", "pointwise_kernel", "bias"],
    "SeparableConv2D": ["depthwise_kernel", "pointwise_kernel", "bias"],
    "LayerNormalization": ["gamma", "beta"], "GroupNormalization": ["gamma", "beta"],
    "RMSNormalization": ["scale"], "Embedding": ["embeddings"], "PReLU": ["alpha"],
    "LSTM": ["kernel", "recurrent_kernel", "bias"], "GRU": ["kernel", "recurrent_kernel", "bias"],
    "SimpleRNN": ["kernel", "recurrent_kernel", "bias"], "Normalization": ["mean", "variance", "count"],
    "LayerScale": ["gamma"],
}


class WeightsError(InputError):
    """The weights could not be read (unreadable, too large, not numeric)."""


# -- the public API ---------------------------------------------------------------------

def read_weights(source, graph: Optional[Graph] = None) -> dict:
    """``{node name: {weight name: ndarray}}`` of ``source`` (a ``.h5`` / ``.keras`` /
    ``.onnx`` / PyTorch state_dict file, or a live ``keras.Model`` / ``nn.Module``),
    each array mapped to its node of ``graph`` (by name when ``graph`` is None)."""
    return dict(iter_weights(source, graph))


def iter_weights(source, graph: Optional[Graph] = None) -> Iterator[tuple]:
    """``(node name, {weight name: ndarray})``, one layer at a time."""
    from .adapters import is_keras_model, is_torch_module

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise WeightsError(path, "no such file")
        suffix = path.suffix.lower()
        if suffix in (".h5", ".hdf5"):
            yield from _keras_h5(path, graph, member=None)
        elif suffix == ".keras":
            yield from _keras_archive(path, graph)
        elif suffix == ".onnx":
            yield from _onnx(path, graph)
        elif suffix == ".safetensors":
            yield from _safetensors(path, graph)
        elif suffix == ".pt2" or (suffix in (".pt", ".pth") and _is_pt2(path)):
            yield from _pt2(path, graph)
        elif suffix in (".pt", ".pth", ".bin", ".ckpt", ".tar"):
            yield from _torch_file(path, graph)
        else:
            raise WeightsError(path, f"weights are not read from {suffix or 'extension-less'} files")
    elif is_keras_model(source):
        yield from _keras_live(source, graph)
    elif is_torch_module(source):
        yield from _by_module_path(_state_items(source.state_dict()), graph, "module")
    elif isinstance(source, dict):
        yield from _by_module_path(_state_items(source), graph, "state_dict")
    else:
        raise WeightsError(repr(type(source).__name__), "not a model file path or a supported model object")


# -- Keras files: the h5py child ---------------------------------------------------------

def _keras_archive(path: Path, graph: Optional[Graph]):
    yield from _keras_h5(path, graph, member=_archive_member(path))


def _archive_member(path: Path) -> dict:
    from .adapters.keras_files import MAX_INFLATED_WEIGHTS_BYTES, _stored_span

    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("model.weights.h5")
    except KeyError:
        raise WeightsError(path, "the archive holds no model.weights.h5") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(path, f"not a readable .keras archive ({exc})") from None
    member = _stored_span(path, info)
    if member is None:
        if info.file_size > MAX_INFLATED_WEIGHTS_BYTES:
            raise WeightsError(path, f"model.weights.h5 is compressed and {info.file_size:,} bytes, more than "
                                     "modellint decompresses")
        member = {"name": info.filename}
    return member


#: h5py children started ahead of need (:func:`prefetch`): (path, member) -> (tmp dir, out, process)
_PREFETCHED: dict = {}


def _key(path, member) -> tuple:
    return str(Path(path).resolve()), json.dumps(member, sort_keys=True)


def _task(path, member, out) -> dict:
    return {"path": str(path), "member": member, "out": out, "max_tensor": MAX_TENSOR_BYTES,
            "max_total": MAX_WEIGHT_BYTES}


def prefetch(source) -> None:
    """Start reading a Keras file's weights in the background (the h5py child), so that the
    read overlaps whatever the caller does next (reading the architecture); :func:`iter_weights`
    on the same file then takes the child's result. Anything else is ignored, as are errors
    (the read itself reports them)."""
    try:
        path = Path(source)
        suffix = path.suffix.lower()
        if suffix not in (".h5", ".hdf5", ".keras") or not path.is_file():
            return
        member = _archive_member(path) if suffix == ".keras" else None
        key = _key(path, member)
        if key in _PREFETCHED:
            return
        tmp = tempfile.mkdtemp(prefix="modellint-weights-")
        out = os.path.join(tmp, "weights.npz")
        _PREFETCHED[key] = (tmp, out, _start_child(_task(path, member, out)))
    except (ModelLintError, OSError, TypeError, ValueError):
        return


def _drop_prefetched() -> None:
    for tmp, _, proc in list(_PREFETCHED.values()):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    _PREFETCHED.clear()


atexit.register(_drop_prefetched)


def _keras_h5(path: Path, graph: Optional[Graph], member):
    pre = _PREFETCHED.pop(_key(path, member), None)
    tmp, out, proc = pre if pre is not None else (tempfile.mkdtemp(prefix="modellint-weights-"), None, None)
    try:
        if proc is None:
            out = os.path.join(tmp, "weights.npz")
            proc = _start_child(_task(path, member, out))
        result = _finish_child(proc)
        if "error" in result:
            raise WeightsError(path, f"weights unreadable: {result.get('message') or result['error']}")
        import numpy as np

        with np.load(out, allow_pickle=False) as npz:
            pending: dict = {}
            for layer, entries in _group_layers(result["layers"]):
                node = _keras_node(layer, graph)
                if node is None:
                    continue
                arrays = pending.setdefault(node, {})
                for key, entry in entries:
                    arrays[key if key not in arrays else f"{layer[0]}/{key}"] = entry
            # one layer at a time leaves the npz (its arrays read as it is yielded, never all at once)
            order = {n: i for i, n in enumerate(graph.nodes)} if graph is not None else {}
            for node, entries in sorted(pending.items(), key=lambda kv: order.get(kv[0], len(order))):
                arrays = {key: npz[entry] for key, entry in entries.items()}
                yield node, _name_positional(arrays, graph.nodes.get(node) if graph is not None else None)
                del arrays
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _group_layers(layers):
    """Entries of one node together: an LSTM's ``lstm/lstm_cell/kernel`` (owner
    ``lstm/lstm_cell``) belongs to the layer ``lstm``; a nested model's
    ``inner/conv/kernel`` to ``inner/conv``."""
    for layer in layers:
        yield (layer["name"], layer.get("layer")), layer["weights"]


def _keras_node(layer: tuple, graph: Optional[Graph]) -> Optional[str]:
    owner, group = layer
    if graph is None:
        return group or owner
    for cand in (owner, group):
        if cand and cand in graph.nodes:
            return cand
    return None


def _name_positional(arrays: dict, node) -> dict:
    """``{"0": a, "1": b}`` of a .keras archive -> ``{"kernel": a, "bias": b}`` by the layer's type."""
    if node is None or not arrays or not all(k.isdigit() for k in arrays):
        return arrays
    st = node.source_type
    if node.attrs.get("bidirectional"):
        return arrays
    if st in ("BatchNormalization", "SyncBatchNormalization"):
        order = (["gamma"] if node.attrs.get("scale", True) else []) + \
                (["beta"] if node.attrs.get("center", True) else []) + ["moving_mean", "moving_variance"]
    elif st in ("LayerNormalization", "GroupNormalization"):
        order = (["gamma"] if node.attrs.get("scale", True) else []) + (["beta"] if node.attrs.get("center", True) else [])
    else:
        order = _KERAS_ORDER.get(st)
    if order is None:
        return arrays
    if st in _KERAS_ORDER and "bias" in order and not node.attrs.get("use_bias", True):
        order = [o for o in order if o != "bias"]
    if len(order) != len(arrays):
        return arrays
    keys = sorted(arrays, key=int)
    return {name: arrays[k] for name, k in zip(order, keys)}


def _child(task: dict) -> dict:
    """Run the h5py weights task in a child Python bounded by WEIGHTS_TIMEOUT_S and CHILD_MEMORY."""
    return _finish_child(_start_child(task))


def _start_child(task: dict):
    root = str(Path(__file__).resolve().parents[1])
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from modellint.weights import _child_main; _child_main()")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               HDF5_USE_FILE_LOCKING="FALSE")
    proc = subprocess.Popen([sys.executable, "-P", "-c", code, root], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc._modellint_started = time.monotonic()
    try:
        proc.stdin.write(json.dumps(task).encode())
        proc.stdin.close()
    except OSError:
        pass
    proc.stdin = None   # written and closed: communicate() only reads
    return proc


def _finish_child(proc) -> dict:
    left = max(1.0, WEIGHTS_TIMEOUT_S - (time.monotonic() - getattr(proc, "_modellint_started", time.monotonic())))
    try:
        stdout, stderr = proc.communicate(timeout=left)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"error": "timeout", "message": f"h5py did not finish within {WEIGHTS_TIMEOUT_S} s"}
    if proc.returncode != 0:
        rc = proc.returncode
        how = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
        last = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        return {"error": "crash", "message": f"the reader crashed ({how}{': ' + last[0][:120] if last[0] else ''})"}
    try:
        return json.loads(stdout)
    except ValueError:
        return {"error": "crash", "message": "the reader gave no result"}


def _child_main() -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = CHILD_MEMORY if hard == resource.RLIM_INFINITY else min(CHILD_MEMORY, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass
    task = json.loads(sys.stdin.buffer.read())
    try:
        result = _read_h5_weights(task)
    except MemoryError:
        result = {"error": "corrupt", "message": "out of memory reading the weights"}
    except Exception as exc:  # damaged structures, in libhdf5's words
        result = {"error": "corrupt", "message": f"{type(exc).__name__}: {str(exc)[:160]}"}
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


class _Sink:
    """Arrays written one by one into an .npz (a zip of .npy files), never all in memory."""

    def __init__(self, path, max_tensor, max_total):
        import numpy as np

        self.np = np
        self.zf = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.n = 0
        self.total = 0
        self.max_tensor, self.max_total = max_tensor, max_total

    def add(self, dataset, what: str) -> str:
        np = self.np
        dt = dataset.dtype
        if dt.kind not in "fiub" or dt.fields is not None:
            raise ValueError(f"{what} is not a numeric array ({dt})")
        nbytes = int(np.prod(dataset.shape, dtype=np.float64)) * dt.itemsize
        if nbytes > self.max_tensor:
            raise ValueError(f"{what} is {nbytes:,} bytes, more than the {self.max_tensor >> 20} MiB "
                             "modellint reads for one tensor")
        self.total += nbytes
        if self.total > self.max_total:
            raise ValueError(f"the weights are more than the {self.max_total >> 30} GiB modellint reads")
        arr = np.asarray(dataset[()])
        entry = f"w{self.n}"
        self.n += 1
        with self.zf.open(entry + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, arr, allow_pickle=False)
        return entry

    def close(self):
        self.zf.close()


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _read_h5_weights(task: dict) -> dict:
    import h5py

    from .adapters.keras_files import _member_file

    fileobj = _member_file(task["path"], task.get("member"))
    sink = _Sink(task["out"], task["max_tensor"], task["max_total"])
    layers: list = []
    try:
        with h5py.File(fileobj if fileobj is not None else task["path"], "r") as f:
            if task.get("member") is not None or ("layers" in f and "layer_names" not in f.attrs
                                                  and "model_weights" not in f):
                _walk_keras3(f, "", sink, layers)
            else:
                group = f["model_weights"] if "model_weights" in f else f
                _walk_legacy(group, sink, layers)
    finally:
        sink.close()
    return {"layers": layers}


def _walk_legacy(group, sink, layers: list) -> None:
    """Legacy HDF5: ``layer_names`` lists the layers; each layer group's ``weight_names``
    lists its datasets (``model/conv2d_1/kernel`` or ``conv2d_1/kernel:0``)."""
    import h5py

    names = [_text(n) for n in group.attrs.get("layer_names", [])] or list(group.keys())
    for name in names:
        lg = group.get(name)
        if not isinstance(lg, h5py.Group):
            continue
        wnames = [_text(w) for w in lg.attrs.get("weight_names", [])]
        by_layer: dict = {}
        for wn in wnames:
            ds = lg.get(wn)
            if not isinstance(ds, h5py.Dataset):
                continue
            parts = wn.split("/")
            key = parts[-1].split(":")[0]
            # a nested model's group holds its layers' weights: inner_model -> conv/kernel:0
            owner = f"{name}/{parts[-2]}" if len(parts) >= 2 and parts[-2] != name else name
            entries = by_layer.setdefault(owner, [])
            if any(k == key for k, _ in entries):   # Bidirectional: forward_lstm/.../kernel, backward_lstm/...
                key = f"{parts[-3] if len(parts) >= 3 else parts[-2]}/{key}"
            entries.append((key, sink.add(ds, f"weight {wn[:60]!r}")))
        for owner, entries in by_layer.items():
            layers.append({"name": owner, "layer": name, "weights": entries})


def _walk_keras3(f, prefix: str, sink, layers: list) -> None:
    """Keras 3 ``model.weights.h5``: ``layers/<key>/vars/<i>`` (the layer's name in the
    ``vars`` group's ``name`` attribute), nested models under ``layers/<key>/layers``,
    RNN cells and wrapped layers as sub-groups of the layer."""
    import h5py

    root = f.get("layers")
    if not isinstance(root, h5py.Group):
        return
    for key in root.keys():
        lg = root[key]
        if not isinstance(lg, h5py.Group):
            continue
        vars_group = lg.get("vars")
        name = _text(vars_group.attrs.get("name", key)) if isinstance(vars_group, h5py.Group) else key
        if isinstance(lg.get("layers"), h5py.Group):      # a nested model
            _walk_keras3(lg, prefix + name + "/", sink, layers)
            continue
        entries: list = []
        counter = [0]

        def collect(group, depth=0):
            if depth > 8:
                return
            v = group.get("vars")
            if isinstance(v, h5py.Group):
                for i in sorted((k for k in v.keys() if k.isdigit()), key=int):
                    ds = v[i]
                    if isinstance(ds, h5py.Dataset):
                        entries.append((str(counter[0]), sink.add(ds, f"{name[:60]!r} vars/{i}")))
                        counter[0] += 1
            # a Bidirectional's sub-layers are stored alphabetically (backward first); its
            # weights list the forward layer's first
            for sub in sorted(group.keys(), key=lambda k: (k != "forward_layer", k)):
                if sub != "vars" and isinstance(group[sub], h5py.Group):
                    collect(group[sub], depth + 1)

        collect(lg)
        if entries:
            layers.append({"name": prefix + name, "weights": entries})


# -- live Keras ----------------------------------------------------------------------------

def _keras_live(model, graph: Optional[Graph]):
    import numpy as np

    def walk(m, prefix):
        for layer in m.layers:
            if hasattr(layer, "layers") and layer.__class__.__name__ in ("Sequential", "Functional", "Model"):
                yield from walk(layer, prefix + layer.name + "/")
                continue
            arrays: dict = {}
            for v in layer.weights:
                path = getattr(v, "path", v.name)
                key = v.name.split(":")[0].split("/")[-1]
                if key in arrays:
                    parts = path.split("/")
                    key = f"{parts[-3] if len(parts) >= 3 else parts[-2]}/{key}"
                arrays[key] = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
            if arrays:
                name = prefix + layer.name
                if graph is None or name in graph.nodes:
                    yield name, arrays

    yield from walk(model, "")


# -- PyTorch ---------------------------------------------------------------------------------

def _state_items(state) -> list:
    return [(k, v) for k, v in state.items()]


def _torch_file(path: Path, graph: Optional[Graph]):
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WeightsError(path, str(exc)) from None
    if size > MAX_WEIGHT_BYTES:
        raise WeightsError(path, f"{size:,} bytes, more than the {MAX_WEIGHT_BYTES >> 30} GiB modellint reads")
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)   # never a full unpickler
    except Exception as exc:
        raise WeightsError(path, f"not a weights-only PyTorch file ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None
    state = _find_state_dict(obj)
    if state is None:
        raise WeightsError(path, "holds no state_dict (a mapping of names to tensors)")
    yield from _by_module_path(list(state.items()), graph, path)


def _find_state_dict(obj, depth=0):
    import torch

    if isinstance(obj, dict):
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return obj
        if depth < 2:
            for key in ("state_dict", "model_state_dict", "model", "net", "module"):
                if key in obj:
                    found = _find_state_dict(obj[key], depth + 1)
                    if found is not None:
                        return found
    return None


def _by_module_path(items: list, graph: Optional[Graph], where):
    """``"layer1.0.conv1.weight"`` -> node ``layer1.0.conv1``, weight ``weight`` (the longest
    module path that is a node; a parameter used directly by a function keeps its full name
    on the node named like its module, when there is one)."""
    import numpy as np

    groups: dict = {}
    total = 0
    for key, value in items:
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        if arr.dtype.kind not in "fiub":
            continue
        total += arr.nbytes
        if arr.nbytes > MAX_TENSOR_BYTES or total > MAX_WEIGHT_BYTES:
            raise WeightsError(where, f"weight {key[:60]!r} goes past the {MAX_WEIGHT_BYTES >> 30} GiB "
                                      "modellint reads")
        module, _, local = key.rpartition(".")
        node = module
        if graph is not None:
            node = _module_node(module, graph)
            if node is None:
                continue
            if node != module:
                local = key[len(node) + 1:] if node else key
        groups.setdefault(node, {})[local] = arr
    yield from groups.items()


def _module_node(module: str, graph: Graph) -> Optional[str]:
    parts = module.split(".") if module else []
    for n in range(len(parts), 0, -1):
        cand = ".".join(parts[:n])
        if cand in graph.nodes:
            return cand
    return None


# -- torch.export archives (.pt2) ----------------------------------------------------------------

def _is_pt2(path: Path) -> bool:
    from .adapters.torch_files import classify

    try:
        return classify(path)[0] == "pt2"
    except OSError:
        return False


def _pt2(path: Path, graph: Optional[Graph]):
    """The weights of a ``torch.export`` archive: its program's state_dict (parameters and
    persistent buffers), loaded as the architecture is (:mod:`modellint.adapters.torch_files`):
    the archive is scanned first and refused when torch would run code from it or unpickle
    more than tensors, and ``torch.export.load`` runs under the same guard; never a full
    unpickler."""
    from .adapters.torch_files import _import_torch, _load_pt2, _prescan_pt2

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WeightsError(path, str(exc)) from None
    if size > MAX_WEIGHT_BYTES:
        raise WeightsError(path, f"{size:,} bytes, more than the {MAX_WEIGHT_BYTES >> 30} GiB modellint reads")
    try:
        _prescan_pt2(path, trust_pickle=False)
        ep = _load_pt2(_import_torch(path), path, trust_pickle=False)
    except InputError as exc:
        raise WeightsError(path, getattr(exc, "problem", str(exc))) from None
    state = getattr(ep, "state_dict", None) or {}
    items = [(k, v) for k, v in state.items() if hasattr(v, "detach")]
    del ep
    yield from _by_module_path(items, graph, path)


# -- safetensors -----------------------------------------------------------------------------------

#: safetensors dtype -> (numpy dtype, bytes per value); BF16 is widened to float32 when read.
_ST_DTYPES = {"F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2),
              "I64": ("<i8", 8), "I32": ("<i4", 4), "I16": ("<i2", 2), "I8": ("i1", 1),
              "U64": ("<u8", 8), "U32": ("<u4", 4), "U16": ("<u2", 2), "U8": ("u1", 1), "BOOL": ("?", 1)}
#: The largest JSON header read (the safetensors library's own limit is 100 MB).
MAX_SAFETENSORS_HEADER = 100_000_000


def safetensors_header(path: Path) -> tuple:
    """``({name: (dtype, shape, start, end)}, data start)`` of a ``.safetensors`` file, checked:
    an 8-byte little-endian header length, a JSON object of ``{dtype, shape, data_offsets}``
    per tensor (``__metadata__`` skipped), offsets inside the file and matching the shape.
    Raises :class:`WeightsError` naming what is wrong. Reads the header only."""
    import math

    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise WeightsError(path, "not a safetensors file (shorter than its 8-byte header length)")
            n = int.from_bytes(head, "little")
            if n > MAX_SAFETENSORS_HEADER or n > size - 8:
                raise WeightsError(path, f"not a safetensors file (a header of {n:,} bytes in a file of "
                                         f"{size:,})")
            raw = f.read(n)
    except OSError as exc:
        raise WeightsError(path, str(exc)) from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WeightsError(path, "not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise WeightsError(path, "not a safetensors file (its header is not a JSON object)")
    start = 8 + n
    room = size - start
    out: dict = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        what = f"tensor {str(name)[:60]!r}"
        if not isinstance(entry, dict):
            raise WeightsError(path, f"{what}: not a {{dtype, shape, data_offsets}} entry")
        dtype, shape, offs = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 40
                                                for d in shape) and len(shape) <= 16):
            raise WeightsError(path, f"{what}: shape {str(shape)[:60]} is not a list of sizes")
        if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) and not isinstance(o, bool)
                                                                  for o in offs) and 0 <= offs[0] <= offs[1] <= room):
            raise WeightsError(path, f"{what}: data_offsets {str(offs)[:60]} are not inside the file")
        if dtype in _ST_DTYPES:
            nbytes = math.prod(shape) * _ST_DTYPES[dtype][1]
            if nbytes != offs[1] - offs[0]:
                raise WeightsError(path, f"{what}: {offs[1] - offs[0]:,} bytes of data for a {dtype} tensor of "
                                         f"shape {tuple(shape)} ({nbytes:,} bytes)")
        out[str(name)] = (str(dtype), tuple(shape), offs[0], offs[1])
    return out, start


def _safetensors(path: Path, graph: Optional[Graph]):
    """A ``.safetensors`` file (a state_dict's names), read here with numpy: the header is
    checked and capped before any tensor is read, then one layer's tensors at a time. No
    code and no pickle: the format holds only a JSON header and raw bytes. Tensors of a
    dtype numpy does not hold (FP8) are skipped; BF16 is widened to float32."""
    import numpy as np

    header, start = safetensors_header(path)
    total = 0
    for name, (dtype, shape, lo, hi) in header.items():
        if hi - lo > MAX_TENSOR_BYTES:
            raise WeightsError(path, f"tensor {name[:60]!r} is {hi - lo:,} bytes, more than the "
                                     f"{MAX_TENSOR_BYTES >> 20} MiB modellint reads for one tensor")
        total += hi - lo
        if total > MAX_WEIGHT_BYTES:
            raise WeightsError(path, f"the weights are more than the {MAX_WEIGHT_BYTES >> 30} GiB modellint reads")
    groups = _group_by_module([k for k in header if header[k][0] in _ST_DTYPES], graph)
    try:
        with open(path, "rb") as f:
            for node, keys in groups.items():   # one layer's arrays at a time
                arrays = {}
                for key, local in keys:
                    dtype, shape, lo, hi = header[key]
                    f.seek(start + lo)
                    buf = f.read(hi - lo)
                    if len(buf) != hi - lo:
                        raise WeightsError(path, f"tensor {key[:60]!r} is cut short")
                    arr = np.frombuffer(buf, dtype=_ST_DTYPES[dtype][0]).reshape(shape)
                    if dtype == "BF16":
                        arr = (arr.astype(np.uint32) << 16).view(np.float32)
                    arrays[local] = arr.astype(arr.dtype.newbyteorder("="), copy=False)
                yield node, arrays
                del arrays
    except OSError as exc:
        raise WeightsError(path, str(exc)) from None


def _group_by_module(keys: list, graph: Optional[Graph]) -> dict:
    """``{node: [(state_dict key, local name)]}`` as :func:`_by_module_path` maps them."""
    groups: dict = {}
    for key in keys:
        module, _, local = key.rpartition(".")
        node = module
        if graph is not None:
            node = _module_node(module, graph)
            if node is None:
                continue
            if node != module:
                local = key[len(node) + 1:] if node else key
        groups.setdefault(node, []).append((key, local))
    return groups


# -- ONNX -------------------------------------------------------------------------------------

def _onnx(path: Path, graph: Optional[Graph]):
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WeightsError(path, str(exc)) from None
    if size > MAX_WEIGHT_BYTES:
        raise WeightsError(path, f"{size:,} bytes, more than the {MAX_WEIGHT_BYTES >> 30} GiB modellint reads")
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise WeightsError(path, f"not a readable ONNX file ({type(exc).__name__})") from None
    g = model.graph
    consumer: dict = {}
    for node in g.node:
        for x in node.input:
            consumer.setdefault(x, node)
    groups: dict = {}
    for t in g.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            continue
        module, _, local = t.name.rpartition(".")
        node = None
        if graph is not None:
            node = _module_node(module, graph) if module else None
            if node is not None and node != module:
                local = t.name[len(node) + 1:]
            if node is None and t.name in consumer:
                onode = consumer[t.name]
                parts = [p for p in re.split(r"/", onode.name) if p]
                for cand in ([onode.name] + ([parts[-2]] if len(parts) >= 2 else [])):
                    if cand in graph.nodes:
                        node, local = cand, t.name
                        break
            if node is None:
                continue
        else:
            node = module or t.name
            local = local if module else t.name
        groups.setdefault(node, {})[local] = t
    for node, tensors in groups.items():   # one layer's arrays at a time
        arrays = {}
        for local, t in tensors.items():
            arr = numpy_helper.to_array(t)
            if arr.dtype.kind in "fiub" and arr.nbytes <= MAX_TENSOR_BYTES:
                arrays[local] = arr
        if arrays:
            yield node, arrays
        del arrays


__all__ = ["read_weights", "iter_weights", "WeightsError", "MAX_TENSOR_BYTES", "MAX_WEIGHT_BYTES",
           "safetensors_header"]
