"""PyTorch files (``.pt``, ``.pth``, ``.pt2``, TorchScript) -> :class:`~modellint.graph.Graph`.

The file is classified before anything is loaded, from the names in its zip
archive (no torch needed):

====================  ==================================================  =========================
format                zip members (``<top>/`` is the archive's folder)     read with
====================  ==================================================  =========================
TorchScript           ``<top>/constants.pkl``, ``<top>/code/...``          ``torch.jit.load``
``torch.export``      ``<top>/archive_format`` (``pt2``),                  ``torch.export.load``
(``.pt2``)            ``<top>/models/*.json``, ``<top>/data/weights/...``
``torch.save``        ``<top>/data.pkl``, ``<top>/data/<n>``,              ``torch.load(weights_only=True)``
                      ``<top>/version``, ``<top>/byteorder``
legacy ``torch.save`` not a zip: a pickle (``\\x80\\x02``...)                 ``torch.load(weights_only=True)``
====================  ==================================================  =========================

Pickles are never unpickled with code execution unless the user says so
(``trust_pickle``): the pickle's globals are listed first with
:mod:`pickletools` (which reads opcodes and runs nothing); one that can run
commands or code (``os.system``, ``builtins.eval``...) is refused whatever the
flag says. A ``weights_only`` load then gives tensors and containers only: a
state_dict is refused with how to pass the architecture instead; a whole
pickled ``nn.Module`` needs ``trust_pickle=True``.
"""

from __future__ import annotations

import io
import pickletools
import warnings
import zipfile
from pathlib import Path
from typing import Optional

from ..errors import InputError
from ..graph import Graph

PICKLE_PROTOCOLS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")

FACTORY_HINT = ("point modellint at the code that builds the model instead (module:factory), e.g. "
                "`modellint check mypkg.models:build_model --input-shape 1,3,128,128`")

# Globals that let a pickle run commands or code: refused even with trust_pickle.
_DANGEROUS_MODULES = ("os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "importlib", "runpy",
                      "pickle", "_pickle", "marshal", "code", "codeop", "ctypes", "pty", "webbrowser",
                      "multiprocessing", "asyncio", "signal", "urllib", "http", "requests", "commands",
                      "popen2", "platform", "pdb", "bdb", "timeit", "trace", "profile", "cProfile",
                      "types", "sysconfig", "distutils", "setuptools", "pip", "zipimport", "ftplib",
                      "smtplib", "telnetlib", "_posixsubprocess", "posixpath", "ntpath", "tempfile")
_DANGEROUS_BUILTINS = frozenset({"eval", "exec", "compile", "__import__", "open", "getattr", "setattr",
                                 "delattr", "globals", "locals", "vars", "input", "breakpoint", "execfile",
                                 "file", "reload", "apply", "__builtins__"})
_DANGEROUS_NAMES = frozenset({("operator", "attrgetter"), ("operator", "methodcaller"),
                              ("functools", "reduce"), ("torch", "load"), ("torch.serialization", "load"),
                              ("numpy", "load"), ("numpy", "loadtxt"), ("numpy.lib.npyio", "load")})


# ---------------------------------------------------------------------------
# classification (no torch)
# ---------------------------------------------------------------------------

def classify(path) -> tuple:
    """``(kind, detail)``: kind is ``torchscript``, ``pt2``, ``pickle_zip``,
    ``pickle`` (legacy, not a zip) or ``unknown``; detail is the data.pkl
    member name for ``pickle_zip``."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return "unknown", None
        return _classify_names(names)
    with open(path, "rb") as f:
        head = f.read(2)
    if head in PICKLE_PROTOCOLS:
        return "pickle", None
    return "unknown", None


def _classify_names(names: list) -> tuple:
    def top_level(suffix):
        return [n for n in names if n.endswith(suffix) and n.count("/") == suffix.count("/")]

    if top_level("/constants.pkl") and any("/code/" in n for n in names):
        return "torchscript", None
    if top_level("/archive_format") or any(n.count("/") == 2 and n.split("/")[1] == "models"
                                           and n.endswith(".json") for n in names):
        return "pt2", None
    data = top_level("/data.pkl")
    if data:
        return "pickle_zip", data[0]
    return "unknown", None


def pickle_globals(data: bytes, max_pickles: int = 6) -> list:
    """``module.name`` of every global the pickle(s) in ``data`` reference, read
    from the opcodes (nothing is unpickled). A legacy torch file holds several
    pickles one after another, then raw storage bytes (where reading stops)."""
    out: list = []
    stream = io.BytesIO(data)
    for _ in range(max_pickles):
        if stream.tell() >= len(data):
            break
        strings: list = []
        memo: dict = {}
        try:
            for op, arg, _pos in pickletools.genops(stream):
                name = op.name
                if name == "GLOBAL" or name == "INST":
                    mod, _, attr = str(arg).partition(" ")
                    out.append(f"{mod}.{attr}")
                elif name == "STACK_GLOBAL":
                    if len(strings) >= 2:
                        out.append(f"{strings[-2]}.{strings[-1]}")
                    else:
                        out.append("<unknown>.<unknown>")
                elif isinstance(arg, str) and "UNICODE" in name or name in ("STRING", "BINSTRING",
                                                                             "SHORT_BINSTRING"):
                    strings.append(str(arg))
                elif name in ("MEMOIZE",):
                    if strings:
                        memo[len(memo)] = strings[-1]
                elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    if strings:
                        memo[arg] = strings[-1]
                elif name in ("GET", "BINGET", "LONG_BINGET"):
                    if arg in memo:
                        strings.append(memo[arg])
        except Exception:  # the raw bytes after a legacy file's pickles, or damage
            break
    return out


def _is_dangerous(glob: str) -> bool:
    mod, _, name = glob.rpartition(".")
    root = mod.split(".")[0]
    if root in _DANGEROUS_MODULES:
        return True
    if root in ("builtins", "__builtin__") and name in _DANGEROUS_BUILTINS:
        return True
    return (mod, name) in _DANGEROUS_NAMES


def _read_pickle_bytes(path: Path, kind: str, member: Optional[str]) -> bytes:
    if kind == "pickle_zip":
        with zipfile.ZipFile(path) as zf:
            return zf.read(member)
    with open(path, "rb") as f:
        return f.read(64 << 20)  # the pickles come first; storages follow


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------

def read_torch_file(path, *, trust_pickle: bool = False, input_shape: Optional[tuple] = None) -> Graph:
    """A graph from a PyTorch file. ``input_shape`` (source layout, batch included
    or not, as torch_live accepts it) sizes models whose file carries no input
    shape (TorchScript, pickled modules)."""
    path = Path(path)
    try:
        kind, member = classify(path)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    if kind == "unknown":
        if zipfile.is_zipfile(path):
            raise InputError(path, "zip archive is neither a Keras .keras archive nor a PyTorch checkpoint "
                             "(no config.json, data.pkl, TorchScript code or torch.export archive inside)")
        raise InputError(path, "not a PyTorch file (neither a zip archive nor a pickle)")

    if kind in ("pickle_zip", "pickle"):
        try:
            data = _read_pickle_bytes(path, kind, member)
        except (OSError, zipfile.BadZipFile, KeyError, RuntimeError) as exc:
            raise InputError(path, f"damaged PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
        globs = pickle_globals(data)
        bad = [g for g in globs if _is_dangerous(g)]
        if bad:
            raise InputError(path, f"the pickle references {bad[0]}, which can run commands or code when "
                             "unpickled; modellint refuses to load it (nothing from the file was executed)")

    torch = _import_torch(path)
    if kind == "torchscript":
        try:
            module = _quiet(torch.jit.load, str(path), map_location="cpu")
        except Exception as exc:
            raise InputError(path, f"cannot load TorchScript archive: {_one_line(exc)}") from None
        graph = _live("graph_from_torchscript", path)(module, input_shape=input_shape)
        return _stamp(graph, path, "torchscript")
    if kind == "pt2":
        try:
            ep = _quiet(torch.export.load, str(path))
        except Exception as exc:
            raise InputError(path, f"cannot load torch.export archive (.pt2): {_one_line(exc)}") from None
        graph = _live("graph_from_exported_program", path)(ep)
        return _stamp(graph, path, "pt2")
    return _read_pickle(torch, path, globs, trust_pickle, input_shape)


def _read_pickle(torch, path: Path, globs: list, trust_pickle: bool, input_shape) -> Graph:
    foreign = _first_foreign(globs)
    try:
        obj = _quiet(torch.load, str(path), weights_only=True, map_location="cpu")
    except Exception as exc:
        if not (foreign or "Unsupported global" in str(exc)):
            raise InputError(path, f"not a readable PyTorch pickle (truncated or corrupt): {_one_line(exc)}") \
                from None
        if not trust_pickle:
            what = f" (it references {foreign})" if foreign else ""
            raise InputError(path, f"holds a pickled Python object{what}, not only weights; unpickling it "
                             "runs code from the file. Pass --trust-pickle if you trust the file, or "
                             + FACTORY_HINT) from None
        try:
            obj = _quiet(torch.load, str(path), weights_only=False, map_location="cpu")
        except Exception as exc2:
            raise InputError(path, f"cannot unpickle the model ({_one_line(exc2)}); the classes it names "
                             "must be importable here, or " + FACTORY_HINT) from None

    module = _find_module(torch, obj)
    if module is not None:
        if not trust_pickle:  # only reachable for objects weights_only allows, kept for safety
            raise InputError(path, "holds a pickled nn.Module; pass --trust-pickle to load it, or " + FACTORY_HINT)
        graph = _live("graph_from_module", path)(module, input_shape=input_shape)
        return _stamp(graph, path, "pickle")
    n = _count_tensors(torch, obj)
    if n:
        raise InputError(path, f"holds only weights (a state_dict of {n} tensors): weights alone have no "
                         "architecture; " + FACTORY_HINT)
    raise InputError(path, f"holds a {type(obj).__name__}, not a model; " + FACTORY_HINT)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _import_torch(path):
    try:
        import torch
    except ImportError:
        raise InputError(path, "reading PyTorch files needs torch: pip install 'modellint[torch]'") from None
    return torch


def _live(func: str, path):
    try:
        from . import torch_live
    except ImportError as exc:
        raise InputError(path, f"PyTorch model support is not available ({exc})") from None
    fn = getattr(torch_live, func, None)
    if fn is None:
        raise InputError(path, f"PyTorch model support is incomplete (torch_live.{func} missing)")

    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            if exc.source == str(path):
                raise
            raise InputError(path, exc.problem) from None

    return call


def _stamp(graph: Graph, path: Path, fmt: str) -> Graph:
    graph.source_path = str(path)
    graph.source_format = fmt
    if not graph.framework:
        graph.framework = "torch"
    return graph


def _one_line(exc: BaseException) -> str:
    text = [t.strip() for t in str(exc).strip().splitlines() if t.strip()]
    if text and text[0].startswith("Weights only load failed"):
        # torch's advice to retry with weights_only=False is not ours to give: keep the cause
        after = [t for i, t in enumerate(text) if i and "WeightsUnpickler error" in text[i - 1]]
        text = after or [t for t in text if "WeightsUnpickler error" in t] or text
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first[:300]}" if first else type(exc).__name__


def _quiet(fn, *args, **kwargs):
    """Call a torch loader with its warnings silenced (errors are one line on stderr, nothing else)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# Globals a state_dict pickle holds; anything else is a Python object.
_TENSOR_GLOBALS = ("collections.OrderedDict", "torch._utils.", "torch.serialization.", "torch.Size",
                   "torch.device", "torch.", "builtins.set", "__builtin__.set", "_codecs.encode",
                   "numpy.core.multiarray._reconstruct", "numpy.dtype", "numpy.ndarray")


def _first_foreign(globs: list) -> Optional[str]:
    for g in globs:
        if g.startswith("torch.nn.") or not g.startswith(_TENSOR_GLOBALS):
            return g
    return None


def _find_module(torch, obj, depth: int = 0):
    """The model in a loaded object: an nn.Module, or one inside a checkpoint dict."""
    if isinstance(obj, torch.nn.Module):
        return obj
    if depth < 2 and isinstance(obj, dict):
        for key in ("model", "module", "net", "network", "ema", "model_ema"):
            if key in obj:
                found = _find_module(torch, obj[key], depth + 1)
                if found is not None:
                    return found
        for value in obj.values():
            if isinstance(value, torch.nn.Module):
                return value
    return None


def _count_tensors(torch, obj, depth: int = 0) -> int:
    """Tensors in a state_dict-like object (dicts / lists of tensors, nested a few levels)."""
    if isinstance(obj, torch.Tensor):
        return 1
    if depth > 4:
        return 0
    if isinstance(obj, dict):
        return sum(_count_tensors(torch, v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_count_tensors(torch, v, depth + 1) for v in obj)
    return 0
