"""``package.module:factory`` code targets: import the user's code and analyse what
the factory (or class) returns. This runs the user's own code, which they named
on the command line; it is never triggered by a model file."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from ..errors import InputError
from ..graph import Graph


def load_target(target: str, *, input_shape=None) -> Graph:
    """The graph of a code target. Only the graph is needed here, so a PyTorch factory is
    called under ``with torch.device("meta")``: its layers get shapes and dtypes but no
    storage, and nothing is initialised (``nn.Linear(512*28*28, 4096)`` costs
    microseconds instead of 20 s and 6.6 GB). A factory that cannot build there (it
    reads a tensor's values while building), or whose model cannot be read on meta
    tensors, is called again normally, and the graph's notes say so."""
    from . import load_graph

    notes = []
    model, meta_error = resolve_target(target, meta=True)
    if meta_error:
        notes.append(f"the factory could not build on the meta device ({meta_error}): built with real weights")
    try:
        graph = load_graph(model, input_shape=input_shape)
        if _on_meta(model):
            notes.append('built under torch.device("meta"): shapes, dtypes and counts only, no weights allocated')
    except InputError as exc:
        if not _on_meta(model):
            raise
        model = resolve_target(target)
        graph = load_graph(model, input_shape=input_shape)
        notes.append(f"reading the model built on the meta device failed ({exc.problem}): built with real weights")
    graph.notes.extend(notes)
    graph.source_path = target
    graph.source_format = "code"
    return graph


def _meta_context():
    """``torch.device("meta")`` where the user's module imported torch and Keras does not run on
    it; None otherwise (a Keras model's variables are left alone)."""
    import os

    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "device"):
        return None
    if os.environ.get("KERAS_BACKEND") == "torch" or _keras_on_torch():
        return None
    try:
        return torch.device("meta")
    except Exception:  # noqa: BLE001 - a torch too old to be a context manager
        return None


def _keras_on_torch() -> bool:
    keras = sys.modules.get("keras")
    if keras is None:
        return False
    try:
        return keras.backend.backend() == "torch"
    except Exception:  # noqa: BLE001 - a half-imported keras: as if it ran on torch
        return True


def _on_meta(model) -> bool:
    from . import is_torch_module

    if not is_torch_module(model):
        return False
    first = next(iter(model.parameters()), None)
    return first is not None and first.is_meta


def resolve_target(target: str, *, meta: bool = False):
    """Import ``package.module`` and return the model its ``factory`` (or class) gives.

    ``meta=True`` (only a graph is wanted): a PyTorch factory is called under
    ``torch.device("meta")``; returns ``(model, why the meta build failed or None)``."""
    module_name, _, attr = target.partition(":")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # like `python -m`: the current folder is importable
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, SyntaxError, anything the user's module raises
        raise InputError(target, f"cannot import {module_name} ({type(exc).__name__}: {exc})") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(target, f"{module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    meta_error = None
    if callable(obj) and not _is_model(obj):
        factory = obj
        ctx = _meta_context() if meta else None
        obj = None
        if ctx is not None:
            try:
                with ctx:
                    obj = factory()
            except Exception as exc:  # reads a tensor's values while building, ...
                meta_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
                obj = None
            if obj is not None and not _on_meta(obj) and _is_model(obj):
                from . import is_torch_module

                if not is_torch_module(obj) and _keras_on_torch():  # its variables may be meta: build it again
                    obj = None
        if obj is None:
            try:
                obj = factory()
            except Exception as exc:
                raise InputError(target, f"calling {attr}() failed ({type(exc).__name__}: {exc})") from None
    if not _is_model(obj):
        raise InputError(target, f"{attr} did not give a keras.Model or torch.nn.Module "
                         f"(got {type(obj).__name__})")
    return (obj, meta_error) if meta else obj


def _is_model(obj) -> bool:
    from . import is_keras_model, is_torch_module

    return is_keras_model(obj) or is_torch_module(obj)
