"""Adapters: every model source becomes a :class:`~modellint.graph.Graph`.

:func:`load_graph` picks the adapter. Files are recognised by their first bytes,
never by their suffix (an HDF5 file named ``.keras`` is read as HDF5).
"""

from __future__ import annotations

import os
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


def load_file(path, *, config: Optional[os.PathLike] = None) -> Graph:
    """Read a model file into a graph. ``config`` pairs a weights-only ``.h5`` with its JSON."""
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
    if kind == "zip":
        from .keras_files import read_keras_zip

        return read_keras_zip(path)
    if kind == "json":
        from .keras_files import read_json

        return read_json(path)
    if kind == "pickle":
        raise InputError(path, "is a pickle; modellint never unpickles files (unpickling runs code "
                         "from the file)")
    raise InputError(path, "unrecognised file format (not HDF5, a zip archive or JSON)")


def is_keras_model(obj) -> bool:
    mod = type(obj).__module__ or ""
    return (mod.startswith(("keras", "tf_keras", "tensorflow")) and hasattr(obj, "get_config")
            and hasattr(obj, "layers"))


def load_graph(source, *, config=None, **kwargs) -> Graph:
    """A :class:`Graph` from a path or a live model.

    >>> g = load_graph("examples/seed_cnn.h5")        # doctest: +SKIP
    >>> g.total_params                                 # doctest: +SKIP
    168793
    """
    if isinstance(source, Graph):
        return source
    if isinstance(source, (str, os.PathLike)):
        return load_file(source, config=config)
    if is_keras_model(source):
        from .keras_live import graph_from_keras_model

        return graph_from_keras_model(source)
    raise InputError(repr(type(source).__name__), "not a model file path or a supported model object")
