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
    from . import load_graph

    graph = load_graph(resolve_target(target), input_shape=input_shape)
    graph.source_path = target
    graph.source_format = "code"
    return graph


def resolve_target(target: str):
    """Import ``package.module`` and return the model its ``factory`` (or class) gives."""
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
    if callable(obj) and not _is_model(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise InputError(target, f"calling {attr}() failed ({type(exc).__name__}: {exc})") from None
    if not _is_model(obj):
        raise InputError(target, f"{attr} did not give a keras.Model or torch.nn.Module "
                         f"(got {type(obj).__name__})")
    return obj


def _is_model(obj) -> bool:
    from . import is_keras_model, is_torch_module

    return is_keras_model(obj) or is_torch_module(obj)
