"""Keras models whose config names a class registered by an installed package.

keras-hub's models (``keras_hub>ResNetBackbone``, ``keras_hub>BertBackbone``...) serialise their
constructor arguments, not a layer list: only the class itself knows which layers those
arguments make. Such a file is read by asking Keras to build the model from its config, in Keras'
safe mode, and reading the built model as a live one (:mod:`.keras_live`). The weights stored in
the file are never read: the counts and shapes come from the architecture alone.

What may run is bounded before anything is imported:

* the config's ``registered_name`` must be ``package>Class``, both plain identifiers;
* the package must be one that is *installed*: a top-level import name that an installed
  distribution provides (``importlib.metadata``), whose module ``importlib.util.find_spec``
  finds in a site-packages directory, not in the working directory or next to the file. So
  ``__main__``, the standard library, and a ``keras_hub.py`` dropped beside a model are refused;
* after importing that package, the class must be in Keras' registry under that exact name,
  defined in that package, and be a ``keras.Model``;
* Keras builds it with ``safe_mode=True`` (no Lambda bytecode, no arbitrary functions).

Code from the file is never executed; the code that runs is the installed package's own.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import site
import sysconfig
from pathlib import Path
from typing import Optional

from ..errors import InputError, MissingFramework
from ..graph import Graph

_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)>([A-Za-z_][A-Za-z0-9_]*)$")


def registered_name(model) -> Optional[str]:
    """``"keras_hub>ResNetBackbone"`` when ``model`` (a parsed config) names a registered class
    with a package prefix, else None. Keras 3 writes ``registered_name``; the legacy ``.h5``
    writer puts the registered name in ``class_name``."""
    if not isinstance(model, dict) or not isinstance(model.get("config"), dict):
        return None
    for key in ("registered_name", "class_name"):
        value = model.get(key)
        if isinstance(value, str) and ">" in value:
            return value
    return None


def _site_dirs() -> list:
    dirs = set()
    for key in ("purelib", "platlib"):
        try:
            dirs.add(sysconfig.get_paths()[key])
        except KeyError:
            pass
    try:
        dirs.update(site.getsitepackages())
    except AttributeError:  # a virtualenv's old site module
        pass
    user = getattr(site, "getusersitepackages", lambda: None)()
    if user:
        dirs.add(user)
    return [Path(d).resolve() for d in dirs if d]


def _installed(package: str) -> Optional[str]:
    """Why ``package`` is not an installed package modellint may import, or None when it is."""
    from importlib.metadata import packages_distributions

    if package not in packages_distributions():
        return "no installed distribution provides it"
    try:
        spec = importlib.util.find_spec(package)   # top level: imports nothing
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        return "it cannot be found on the import path"
    origin = Path(spec.origin).resolve()
    if not any(origin.is_relative_to(d) for d in _site_dirs()):
        return f"it is found at {origin}, outside the installed packages (site-packages)"
    return None


def check_registered(path, name: str) -> tuple:
    """``(package, class)`` of a registered name modellint may build, or an InputError (the file
    names something that is not an installed package) / MissingFramework (Keras or the package is
    not installed)."""
    if name.split(">")[0] in ("__main__", "__mp_main__", "builtins"):
        raise InputError(path, f"model class {name[:80]!r} is defined in a script ({name.split('>')[0]}), not in "
                         "an installed package; modellint never runs code from a model file")
    m = _NAME.match(name)
    if not m:
        raise InputError(path, f"names the model class {name[:80]!r}, not a class registered by an "
                         "installed package (package>Class)")
    package, cls = m.groups()
    if importlib.util.find_spec("keras") is None:
        raise MissingFramework(path, f"the model is {name}, built by its registered class: needs Keras and "
                               f"{package} installed (pip install 'modellint[keras]' {package.replace('_', '-')})")
    why = _installed(package)
    if why is not None:
        if importlib.util.find_spec(package) is None and not package.startswith("_"):
            raise MissingFramework(path, f"the model is {name}, built by its registered class: needs the "
                                   f"{package} package installed (pip install {package.replace('_', '-')})")
        raise InputError(path, f"model class {name!r}: {package} is not an installed package ({why}); "
                         "modellint imports only installed packages")
    return package, cls


def graph_from_registered(path, model: dict, *, source_format: str, training=None,
                          framework_version: Optional[str] = None) -> Graph:
    """Build ``model`` (a parsed config naming a registered class) through Keras' own
    deserialisation in safe mode and read the built model; say so in ``graph.notes``."""
    name = registered_name(model)
    package, cls_name = check_registered(path, name)
    try:
        keras = importlib.import_module("keras")
        importlib.import_module(package)
    except ImportError as exc:
        raise MissingFramework(path, f"the model is {name}: importing {package} failed ({exc})"[:300]) from None
    cls = keras.saving.get_registered_object(f"{package}>{cls_name}")
    if cls is None:
        version = getattr(importlib.import_module(package), "__version__", "")
        raise InputError(path, f"model class {name!r}: {package} {version} registers no such class".replace("  ", " "))
    if not (isinstance(cls, type) and issubclass(cls, keras.Model)
            and (cls.__module__ or "").split(".")[0] == package):
        raise InputError(path, f"model class {name!r} is not a Keras model class defined in {package}")
    config = dict(model)
    config["registered_name"] = f"{package}>{cls_name}"
    config.pop("build_config", None)    # Keras' build_from_config would re-run a build it needs no more
    config.pop("compile_config", None)  # read by modellint itself; never compile
    try:
        live = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as exc:  # a config the class refuses: bad input, named
        text = " ".join(str(exc).split())
        raise InputError(path, f"Keras could not build {package}'s {cls_name} from the file's config "
                         f"({type(exc).__name__}: {text[:200]})") from None
    if not isinstance(live, keras.Model):
        raise InputError(path, f"{name} built something that is not a Keras model")
    from .keras_live import graph_from_keras_model

    graph = graph_from_keras_model(live)
    graph.source_format = source_format
    graph.source_path = str(path)
    graph.framework_version = framework_version or graph.framework_version
    if training is not None:
        graph.training = training
    graph.notes.append(f"built through {package}'s registered class {cls_name} in Keras safe mode "
                       "(architecture from its config; the file's weights not read)")
    return graph


__all__ = ["registered_name", "check_registered", "graph_from_registered"]
