"""Adapters: every model source becomes a :class:`~modellint.graph.Graph`.

:func:`load_graph` picks the adapter. Files are recognised by their first bytes,
never by their suffix (an HDF5 file named ``.keras`` is read as HDF5).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Optional

from ..errors import InputError
from ..graph import Graph

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
PICKLE_PROTOCOLS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")

# Suffixes of model files, for directory search and the pre-commit hook.
MODEL_SUFFIXES = (".h5", ".hdf5", ".keras", ".json", ".pt", ".pt2", ".pth", ".onnx")


def sniff(path: Path) -> str:
    """The format of a file from its content: ``hdf5``, ``zip``, ``json``, ``pickle`` or ``unknown``."""
    with open(path, "rb") as f:
        head = f.read(2048 + 8)
    if not head:
        return "empty"
    # HDF5 allows a user block: the signature sits at 0, 512, 1024, 2048, ...
    for offset in (0, 512, 1024, 2048):
        if head[offset:offset + 8] == HDF5_MAGIC:
            return "hdf5"
    if head[:4] in ZIP_MAGICS:
        return "zip"
    if head[:2] in PICKLE_PROTOCOLS:
        return "pickle"
    if head[:1] == b"\x08" and 1 <= head[1] <= 32:
        return "onnx"  # a ModelProto starts with ir_version: field 1 as a varint (0x08), then a small number
    if head.lstrip()[:1] in (b"{", b"["):
        return "json"
    return "unknown"


def _check_path(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a model file")
    if not os.access(path, os.R_OK):
        raise InputError(path, "permission denied")


def _is_keras_zip(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return "config.json" in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return True  # let the Keras reader report the damage


def load_file(path, *, config: Optional[os.PathLike] = None, trust_pickle: bool = False,
              input_shape: Optional[tuple] = None) -> Graph:
    """Read a model file into a graph, choosing the reader by the file's content.

    ``config`` pairs a weights-only ``.h5`` with its architecture JSON;
    ``trust_pickle`` allows unpickling a whole PyTorch module (runs code from the
    file); ``input_shape`` sizes models whose files carry no input shape
    (TorchScript, pickled modules).
    """
    path = Path(path)
    _check_path(path)
    if config is not None:
        _check_path(Path(config))
    kind = sniff(path)
    if kind == "empty":
        raise InputError(path, "empty file")
    if kind == "hdf5":
        from .keras_files import read_h5

        return read_h5(path, Path(config) if config is not None else None)
    if kind == "zip" and _is_keras_zip(path):
        from .keras_files import read_keras_zip

        return read_keras_zip(path)
    if kind in ("zip", "pickle"):
        from .torch_files import read_torch_file

        return assume_loss(read_torch_file(path, trust_pickle=trust_pickle, input_shape=input_shape))
    if kind == "json":
        from .keras_files import read_json

        return read_json(path)
    if kind == "onnx" or path.suffix.lower() == ".onnx":
        from .onnx_file import read_onnx

        return read_onnx(path)
    raise InputError(path, "unrecognised file format (not HDF5, a zip archive, JSON, a pickle or ONNX)")


def is_keras_model(obj) -> bool:
    """A keras.Model (also a user subclass), recognised without importing Keras."""
    keras_base = any((c.__module__ or "").startswith(("keras", "tf_keras", "tensorflow"))
                     for c in type(obj).__mro__)
    return keras_base and hasattr(obj, "get_config") and hasattr(obj, "layers")


def is_torch_module(obj) -> bool:
    torch = sys.modules.get("torch")  # a live module means torch is already imported
    return torch is not None and isinstance(obj, torch.nn.Module)


def assume_loss(graph: Graph) -> Graph:
    """A PyTorch model carries no loss. When its output is a softmax, record the
    usual assumption (nn.CrossEntropyLoss, which expects logits) so rules can say
    what follows from it; the finding names the assumption, and --loss overrides it."""
    from ..graph import TrainingConfig

    if graph.training is None and graph.output_activation() == "softmax":
        graph.training = TrainingConfig(loss="categorical_crossentropy", from_logits=True, assumed=True)
        graph.notes.append("loss assumed: nn.CrossEntropyLoss (expects logits); pass --loss to state yours")
    return graph


CODE_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def load_graph(source, *, config=None, trust_pickle: bool = False, input_shape=None, example_inputs=None,
               training=None) -> Graph:
    """A :class:`Graph` from a model file path, a ``module:factory`` code target, or a
    live ``keras.Model`` / ``torch.nn.Module``.

    ``input_shape`` (e.g. ``(1, 3, 128, 128)``, batch included, in the model's own
    layout) or ``example_inputs`` size PyTorch models; ``training`` (a
    :class:`~modellint.graph.TrainingConfig`) states the loss/optimizer where the
    source has none.

    >>> g = load_graph("examples/seed_cnn.h5")        # doctest: +SKIP
    >>> g.total_params                                 # doctest: +SKIP
    168793
    """
    if isinstance(source, Graph):
        graph = source
    elif isinstance(source, str) and CODE_TARGET.match(source) and not Path(source).exists():
        from .code_target import load_target

        graph = load_target(source, input_shape=input_shape)
    elif isinstance(source, (str, os.PathLike)):
        graph = load_file(source, config=config, trust_pickle=trust_pickle, input_shape=input_shape)
    elif is_keras_model(source):
        from .keras_live import graph_from_keras_model

        graph = graph_from_keras_model(source)
    elif is_torch_module(source):
        from .torch_live import graph_from_module

        graph = assume_loss(graph_from_module(source, input_shape=input_shape, example_inputs=example_inputs))
    else:
        raise InputError(repr(type(source).__name__), "not a model file path or a supported model object")
    if training is not None:
        graph.training = training
    return graph
