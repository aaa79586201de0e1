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
(``trust_pickle``), and even then every pickle is first replayed by
:mod:`.pickle_scan` (which reads opcodes and runs nothing): one that names a
global able to run commands or code (``os.system``, ``builtins.eval``,
``pydoc.locate``...) is refused whatever the flag says, and the full unpickler
refuses the same globals as it loads. A ``weights_only`` load gives tensors and
containers only: a state_dict is refused with how to pass the architecture
instead; a whole pickled ``nn.Module`` needs ``trust_pickle=True``.

A ``.pt2`` is read by ``torch.export.load``, which would unpickle some members
with a full unpickler (weights and constants marked ``use_pickle``, sample
inputs, ``opaque_obj_`` constants, a legacy ``data/weights/<model>.pt``), load
AOTInductor's compiled libraries and hand shape expressions to
``sympy.sympify`` (which evaluates Python). :func:`_prescan_pt2` refuses such
an archive before torch sees it, naming the member; :func:`_pt2_guard` then
holds torch to it during the load.

A TorchScript archive is read by ``torch.jit.load``, whose C++ unpickler does not
import Python globals (tried with ``os.system`` in data.pkl: "Unknown type name
'os.system'"), but which runs code from the file all the same: the archive's own
TorchScript ``__setstate__`` methods (which may call ``torch.save``, writing any
file), and the ``__setstate__`` of the TorchBind class ``aten.OpaqueObject``, which
hands a base64 string to Python's ``pickle.loads``. :func:`_prescan_torchscript`
refuses these before torch sees the file (see its docstring for all it checks), and
the same guard as for ``.pt2`` holds ``pickle.loads`` to it during the load.

A TorchScript archive records no input shape: the one given (``--input-shape``) is
held against the weights the archive stores once the graph is built
(:func:`~.shape_check.check_input_shape`): 1 channel into a 3-channel conv, or a
32×32 image into a flatten whose ``nn.Linear`` takes 256 features, is refused
naming the layer, what its weights expect and what the given shape gives it. A
``.pt2`` records the shapes it was exported for: an ``--input-shape`` that
disagrees with them past the batch is refused (:func:`_check_recorded_shape`).

Every archive member modellint reads is read through
:func:`~.keras_files.read_member` under a cap of :data:`MEMBER_CAPS`, and what torch
itself would inflate is capped by :data:`MAX_INFLATED_MEMBER` and
:data:`MAX_INFLATED_TOTAL` (:func:`_check_archive`) before torch opens the file.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import pickle
import pickletools
import re
import tarfile
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Optional

from ..errors import InputError, MissingFramework, NoArchitecture
from ..graph import Graph
from . import pickle_scan
from .keras_files import MAX_JSON_BYTES, MemberTooLarge, read_member
from .pickle_scan import UnsafePickle
from .shape_check import check_input_shape

PICKLE_PROTOCOLS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")

FACTORY_HINT = ("point modellint at the code that builds the model instead (module:factory), e.g. "
                "`modellint check mypkg.models:build_model --input-shape 1,3,128,128`")

ZIP_LOCAL_HEADER = b"PK\x03\x04"  # torch.load takes a file for a zip only when it starts so
LEGACY_PICKLES = 5  # a legacy torch.save: magic number, protocol, sys info, the object, storage keys

# -- caps on what a PyTorch zip archive may make modellint, or torch, hold in memory (issue 10) ----------
# torch writes tensor storages uncompressed, and its reader maps a stored member's bytes as they are in the
# file: only a compressed member can make a small file large in memory, so those are capped whatever they
# hold. Every member modellint reads itself is capped by what it is.
#: What modellint reads of one member, by kind (:func:`~.keras_files.read_member`: refused past it).
MEMBER_CAPS = {
    # data.pkl, constants.pkl, code/*.debug_pkl, a .pt2's pickled objects: the structure only (tensor
    # bytes are members of their own; a ResNet-50's data.pkl is 40 KB), scanned opcode by opcode
    "pickle": 256 << 20,
    # a .pt2's models/*.json and data/*/*_config.json, as the Keras side's config.json
    "json": MAX_JSON_BYTES,
    # TorchScript source (code/**.py), read for __setstate__, file builtins and nesting (a large model's
    # largest file is ~1 MB)
    "code": 32 << 20,
    # a torch.save payload inside a .pt2 (a weight marked use_pickle, the sample inputs), read whole to scan
    "payload": 1 << 30,
}
#: A compressed member, uncompressed: torch inflates a member whole into memory (torch writes code
#: and debug info compressed, a few KB to a few MB).
MAX_INFLATED_MEMBER = 256 << 20
#: All compressed members of one archive, uncompressed.
MAX_INFLATED_TOTAL = 512 << 20
#: Bracket nesting in TorchScript source and in a pickled type string: torch's parsers recurse once per
#: level and overflow the C stack (a segfault) at a few thousand (5,000 ``List[`` in a restore_type_tag
#: string, 20,000 parentheses in code/). What torch itself writes nests a handful deep.
MAX_TS_NESTING = 100

#: Errors reading a member that is damaged (bad CRC, bad deflate stream, cut short, unknown compression).
_READ_ERRORS = (OSError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, KeyError,
                UnicodeDecodeError)


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


def checked_globals(data: bytes) -> list:
    """Dotted paths of the globals in a ``torch.save`` payload (a zip's ``.pkl`` members, or a legacy
    file's pickles followed by raw storage bytes), read without unpickling. Raises
    :class:`~.pickle_scan.UnsafePickle` for one that names a dangerous global or cannot be read exactly."""
    if data[:4] == ZIP_LOCAL_HEADER:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = _check_archive(zf)
                return [g for n in names if n.endswith(".pkl")
                        for g in pickle_scan.check_pickle(read_member(zf, zf.getinfo(n), MEMBER_CAPS["pickle"]))]
        except MemberTooLarge as exc:
            raise UnsafePickle(str(exc)) from None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:"):
            pass
    except tarfile.TarError:
        return pickle_scan.check_pickle(data, LEGACY_PICKLES)
    raise UnsafePickle("an old tar-format torch file, whose members torch would unpickle unscanned")


def _one_archive(names: list) -> None:
    """torch reads a zip through its own reader: names must be unique and under one top folder, or
    torch and Python's zipfile could read different members."""
    if len(set(names)) != len(names):
        raise UnsafePickle("the zip archive holds two members of the same name")
    top = names[0].split("/", 1)[0] + "/" if names else ""
    if not top or any(not n.startswith(top) for n in names):
        raise UnsafePickle("the zip archive's members are not all in one folder")


def _check_archive(zf: zipfile.ZipFile) -> list:
    """The member names of a torch zip archive, after refusing what torch's reader would read differently
    (:func:`_one_archive`: :class:`UnsafePickle`) or inflate past :data:`MAX_INFLATED_MEMBER` /
    :data:`MAX_INFLATED_TOTAL` (:class:`~.keras_files.MemberTooLarge`). torch's reader allocates a member's
    declared size and inflates no further, so the declared sizes bound what torch holds; modellint's own
    reads (:func:`~.keras_files.read_member`) check the real size too."""
    infos = zf.infolist()
    names = [i.filename for i in infos]
    _one_archive(names)
    total = 0
    for info in infos:
        if info.compress_type == zipfile.ZIP_STORED:
            continue
        if info.file_size > MAX_INFLATED_MEMBER:
            raise MemberTooLarge(f"{info.filename} is {info.file_size:,} bytes compressed to {info.compress_size:,}, "
                                 f"more than the {MAX_INFLATED_MEMBER >> 20} MiB modellint lets torch inflate "
                                 "(a zip bomb?)")
        total += info.file_size
        if total > MAX_INFLATED_TOTAL:
            raise MemberTooLarge(f"its compressed members hold more than {MAX_INFLATED_TOTAL >> 20} MiB "
                                 "uncompressed, more than modellint lets torch inflate (a zip bomb?)")
    return names


def _read(path: Path, zf: zipfile.ZipFile, name: str, kind: str) -> bytes:
    """Archive member ``name``, read under ``MEMBER_CAPS[kind]``: past it, an InputError naming the member."""
    try:
        return read_member(zf, zf.getinfo(name), MEMBER_CAPS[kind])
    except MemberTooLarge as exc:
        raise InputError(path, f"refused: {exc}") from None


def _read_file(f, cap: int) -> bytes:
    """All of a file object (or a path), refused (:class:`UnsafePickle`) past ``cap`` bytes."""
    if not hasattr(f, "read"):
        with open(f, "rb") as fh:
            return _read_file(fh, cap)
    data = f.read(cap + 1)
    if len(data) > cap:
        raise UnsafePickle(f"a member is more than the {cap >> 20} MiB modellint reads")
    return data


REFUSES = "; modellint refuses to load it (nothing from the file was executed)"


def _refused(path, exc: BaseException, where: str = "") -> InputError:
    where = f"{where}: " if where else ""
    return InputError(path, where + " ".join(str(exc).split()) + REFUSES)


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
            globs = _scan_checkpoint(path, kind)
        except UnsafePickle as exc:
            raise _refused(path, exc) from None
        except MemberTooLarge as exc:
            raise InputError(path, f"refused: {exc}") from None
        except _READ_ERRORS as exc:
            raise InputError(path, f"damaged PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    elif kind == "pt2":
        _prescan_pt2(path, trust_pickle)
    elif kind == "torchscript":
        _prescan_torchscript(path, trust_pickle)

    torch = _import_torch(path)
    if kind == "torchscript":
        module = _load_torchscript(torch, path, trust_pickle)
        graph = _live("graph_from_torchscript", path)(module, input_shape=input_shape)
        check_input_shape(graph, module, input_shape, path)  # a wrong --input-shape, against the weights
        return _stamp(graph, path, "torchscript")
    if kind == "pt2":
        ep = _load_pt2(torch, path, trust_pickle)
        graph = _live("graph_from_exported_program", path)(ep)
        _check_recorded_shape(graph, input_shape, path)
        return _stamp(graph, path, "pt2")
    return _read_pickle(torch, path, globs, trust_pickle, input_shape)


def _check_recorded_shape(graph: Graph, input_shape, path: Path) -> None:
    """A ``.pt2`` records the shapes it was exported for: refuse an ``--input-shape`` that
    disagrees with them past the batch (a dim exported as dynamic takes any size), rather
    than read the recorded one in its place without a word."""
    if not input_shape:
        return
    given = [input_shape] if all(isinstance(d, int) for d in input_shape) else list(input_shape)
    for want, name in zip(given, graph.inputs):
        have = graph.display_shape(graph[name].output_shape)
        if have is None:
            continue
        want = tuple(int(d) for d in want)
        if len(want) != len(have) or any(h is not None and h != w for h, w in zip(have[1:], want[1:])):
            text = "×".join("N" if i == 0 and d is None else "?" if d is None else str(d) for i, d in
                            enumerate(have))
            raise InputError(path, f"--input-shape {','.join(map(str, want))}: this .pt2 was exported for "
                             f"input `{name}` of {text} and holds no other shapes; leave out --input-shape, "
                             "or export again with this shape")


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
            obj = _quiet(torch.load, str(path), weights_only=False, map_location="cpu",
                         pickle_module=pickle_scan.guarded_pickle)
        except UnsafePickle as exc2:
            raise _refused(path, exc2) from None
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
        raise NoArchitecture(path, f"holds only weights (a state_dict of {n} tensors): weights alone have no "
                         "architecture; " + FACTORY_HINT)
    raise NoArchitecture(path, f"holds a {type(obj).__name__}, not a model; " + FACTORY_HINT)


def _scan_checkpoint(path: Path, kind: str) -> list:
    """The globals of a ``torch.save`` file, scanned as torch.load will read it."""
    with open(path, "rb") as f:
        head = f.read(64 << 20 if kind == "pickle" else 4)  # a legacy file's pickles come first
    if kind == "pickle":
        return checked_globals(head)
    if head != ZIP_LOCAL_HEADER:
        raise UnsafePickle("the file does not start with a zip header, so torch.load would read it as a pickle")
    with zipfile.ZipFile(path) as zf:
        names = _check_archive(zf)
        if any(n.count("/") == 1 and n.endswith("/constants.pkl") for n in names):
            raise UnsafePickle("a constants.pkl member makes torch.load read the file as TorchScript")
        return [g for n in names if n.endswith(".pkl") for g in pickle_scan.check_pickle(_read(path, zf, n, "pickle"))]


# ---------------------------------------------------------------------------
# .pt2: refuse before torch reads it, and hold torch to it while it does
# ---------------------------------------------------------------------------

TRUST_HINT = "pass --trust-pickle if you trust the file, or "


def _prescan_pt2(path: Path, trust_pickle: bool) -> None:
    """Refuse a ``.pt2`` that ``torch.export.load`` would run code from, naming the member:
    compiled code (AOTInductor), any pickle that names a dangerous global, and, without
    ``trust_pickle``, any member torch would unpickle with a full unpickler."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != ZIP_LOCAL_HEADER:
                raise UnsafePickle("the file does not start with a zip header, as torch's reader needs")
        with zipfile.ZipFile(path) as zf:
            names = _check_archive(zf)
            top = names[0].split("/", 1)[0] + "/"
            members = {n[len(top):]: n for n in names}  # the names torch's reader gives
            for name in members:
                if name.startswith("data/aotinductor/"):
                    raise InputError(path, f"{name} is compiled code, which torch.export.load would load and run; "
                                     "modellint does not load it (nothing from the file was executed)")
            for name, how in _pt2_pickled_members(path, zf, members).items():
                if name not in members:
                    continue
                data = _read(path, zf, members[name], "pickle" if how == "pickle" else "payload")
                try:
                    globs = pickle_scan.check_pickle(data) if how == "pickle" else _payload_globals(data)
                except UnsafePickle as exc:
                    raise _refused(path, exc, name) from None
                why = how if how != "torch" else _first_foreign(globs)
                if why and not trust_pickle:
                    raise InputError(path, f"{name} needs full unpickling ({_why_full(why)}), which runs code "
                                     "from the file; " + TRUST_HINT + FACTORY_HINT)
    except UnsafePickle as exc:
        raise _refused(path, exc) from None
    except MemberTooLarge as exc:
        raise InputError(path, f"refused: {exc}") from None
    except _READ_ERRORS as exc:
        raise InputError(path, f"damaged torch.export archive (.pt2) ({type(exc).__name__}: {exc})") from None


def _why_full(why: str) -> str:
    return {"pickle": "a pickled Python object", "custom": "a TorchBind object"}.get(why, f"it references {why}")


def _payload_globals(data: bytes) -> list:
    """A torch.save payload, or a TorchBind object (a zip of pickles, or one pickle)."""
    if data[:4] == ZIP_LOCAL_HEADER:
        return checked_globals(data)
    return pickle_scan.check_pickle(data)


def _pt2_pickled_members(path: Path, zf: zipfile.ZipFile, members: dict) -> dict:
    """Members torch.export.load unpickles -> how: ``torch`` (a torch.save payload: full unpickling
    when it references more than tensors), ``pickle`` (pickle.loads) or ``custom`` (TorchBind).
    Shape expressions in the programs are checked on the way."""
    out: dict = {}
    for name in members:
        if not (name.startswith("models/") and name.endswith(".json")):
            continue
        model = name[len("models/"):-len(".json")]
        for legacy in (f"data/sample_inputs/{model}.pt", f"data/weights/{model}.pt", f"data/constants/{model}.pt"):
            out[legacy] = "torch"
        for base in ("weights", "constants"):
            config = _json(path, zf, members.get(f"data/{base}/{model}_{base}_config.json")).get("config")
            for meta in (config.values() if isinstance(config, dict) else ()):
                file = meta.get("path_name") if isinstance(meta, dict) else None
                if not isinstance(file, str):
                    continue
                member = os.path.join(f"data/{base}/", file)
                if file.startswith("opaque_obj_"):
                    out[member] = "pickle"
                elif file.startswith("custom_obj_"):
                    out[member] = "custom"
                elif meta.get("use_pickle"):
                    out[member] = "torch"
        for expr in _expressions(_json(path, zf, members[name])):
            if not plain_expression(expr):
                raise UnsafePickle(f"{name}: the shape expression {expr[:60]!r} is not plain arithmetic, and "
                                   "torch would evaluate it as Python code")
    return out


def _json(path: Path, zf: zipfile.ZipFile, member: Optional[str]):
    """A JSON member read under MEMBER_CAPS["json"] (past it: an InputError naming it); {} if unreadable."""
    if not member:
        return {}
    data = _read(path, zf, member, "json")
    try:
        value = json.loads(data)
    except ValueError:  # not JSON, not UTF-8: torch reports it
        return {}
    return value if isinstance(value, dict) else {}


def _expressions(value):
    """Every ``expr_str`` in a serialised program (sympy parses them)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            e = v.get("expr_str")
            if isinstance(e, str):
                yield e
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


# sympy.sympify evaluates its string as Python: only numbers, operators, torch's size symbols (s0, u1,
# zuf2...) and the sympy functions torch prints may reach it; no attribute, subscript, string or keyword,
# and no tower of powers (9**9**9**9 would never finish)
_EXPR_TOKEN = re.compile(r"\s+|(?P<num>\d+(?:\.\d+)?(?:e[-+]?\d+)?)(?![\w.])|(?P<name>[A-Za-z]\w*)"
                         r"|\*\*\s*\d(?![\w.])(?!\s*\*\*)|\*(?!\*)|//|==|!=|<=|>=|[-+/%(),<>]")
_EXPR_NAMES = frozenset("""
    Max Min Eq Ne Lt Le Gt Ge And Or Not Xor Mod Abs floor ceiling sqrt oo zoo nan True False true false
    Piecewise ITE FloorDiv ModularIndexing Where PythonMod CleanDiv CeilToInt FloorToInt CeilDiv LShift
    RShift PowByNatural FloatPow FloatTrueDiv IntTrueDiv IsNonOverlappingAndDenseIndicator TruncToFloat
    TruncToInt RoundToInt RoundDecimal ToFloat Identity Integer Rational
""".split())
_EXPR_SYMBOL = re.compile(r"[a-z]{1,4}\d+|OpaqueUnaryFn_[a-z]+")


def plain_expression(text: str) -> bool:
    """Whether ``text`` is a shape expression sympy can parse without running anything."""
    pos = 0
    while pos < len(text):
        m = _EXPR_TOKEN.match(text, pos)
        name = m and m.group("name")
        if not m or (name and name not in _EXPR_NAMES and not _EXPR_SYMBOL.fullmatch(name)):
            return False
        pos = m.end()
    return len(text) < 10_000 and text.count("**") <= 4  # small powers only: sympy computes them exactly


class _Refusal(Exception):
    """Raised inside torch.export.load by :func:`_pt2_guard` (not a RuntimeError: torch catches those)."""


@contextlib.contextmanager
def _pt2_guard(torch, trust_pickle: bool, export: bool = True):
    """For the time of ``torch.export.load`` (or, ``export=False``, ``torch.jit.load``): every ``torch.load``
    is scanned first and restricted to ``weights_only`` (or, trusted, done by the guarded unpickler);
    ``pickle.loads``/``pickle.load`` and TorchBind's ``torch._C._pickle_load_obj`` are scanned and refused
    unless trusted; with ``export``, ``sympy.sympify`` takes plain expressions only and AOTInductor libraries
    are never loaded; torch's loggers are silent. Yields the list of refusals, each a complete problem for
    an InputError (torch may swallow the exception that carries it)."""
    refusals: list = []

    def refuse(why: str, dangerous: bool = True):
        refusals.append(" ".join(why.split()) + (REFUSES if dangerous else ""))
        raise _Refusal(refusals[-1])

    real_load, real_obj = torch.load, torch._C._pickle_load_obj

    def load(f, map_location=None, *args, **kwargs):
        try:
            data = _read_file(f, MEMBER_CAPS["payload"])
            checked_globals(data)
        except UnsafePickle as exc:
            refuse(str(exc))
        if trust_pickle:
            return real_load(io.BytesIO(data), map_location=map_location, weights_only=False,
                             pickle_module=pickle_scan.guarded_pickle)
        try:
            return real_load(io.BytesIO(data), map_location=map_location, weights_only=True)
        except Exception as exc:
            refuse(f"a member needs full unpickling ({_one_line(exc)}), which runs code from the file; "
                   + TRUST_HINT + FACTORY_HINT, dangerous=False)

    def loads(data, *args, **kwargs):
        try:
            pickle_scan.check_pickle(bytes(data))
        except UnsafePickle as exc:
            refuse(str(exc))
        if not trust_pickle:
            refuse("a member holds a pickled Python object, which runs code from the file when unpickled; "
                   + TRUST_HINT + FACTORY_HINT, dangerous=False)
        return pickle_scan.guarded_loads(data, **kwargs)

    def load_file(file, *args, **kwargs):
        if not trust_pickle:
            refuse("a member holds a pickled Python object; " + TRUST_HINT + FACTORY_HINT, dangerous=False)
        return pickle_scan.guarded_load(file, **kwargs)

    def load_obj(data, *args, **kwargs):
        try:
            _payload_globals(bytes(data))
        except UnsafePickle as exc:
            refuse(str(exc))
        if not trust_pickle:
            refuse("a member holds a TorchBind object, which needs full unpickling; " + TRUST_HINT + FACTORY_HINT,
                   dangerous=False)
        return real_obj(data, *args, **kwargs)

    def sympify(a, *args, **kwargs):
        if isinstance(a, str) and not plain_expression(a):
            refuse(f"the shape expression {a[:60]!r} is not plain arithmetic, and torch would evaluate it as "
                   "Python code")
        return real_sympify(a, *args, **kwargs)

    def no_aoti(*args, **kwargs):
        refuse("the archive holds AOTInductor compiled code, which modellint does not load")

    patches = [(torch, "load", load), (torch.serialization, "load", load), (pickle, "loads", loads),
               (pickle, "load", load_file), (torch._C, "_pickle_load_obj", load_obj)]
    if export:
        import sympy

        real_sympify = sympy.sympify
        patches.append((sympy, "sympify", sympify))
        try:  # torch.export.load's own module (private): its AOTInductor loader
            package = importlib.import_module("torch.export.pt2_archive._package")
        except ImportError:
            package = None
        if package is not None and hasattr(package, "_load_aoti"):
            patches.append((package, "_load_aoti", no_aoti))
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    disabled = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # torch logs tracebacks of what it fails to read
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        yield refusals
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)
        logging.disable(disabled)


def _load_pt2(torch, path: Path, trust_pickle: bool):
    with _pt2_guard(torch, trust_pickle) as refusals:
        try:
            ep = _quiet(torch.export.load, str(path))
        except Exception as exc:
            if not refusals:
                raise InputError(path, f"cannot load torch.export archive (.pt2): {_one_line(exc)}") from None
    if refusals:
        raise InputError(path, refusals[0])
    return ep


# ---------------------------------------------------------------------------
# TorchScript: what torch.jit.load runs, refused before it reads the file
# ---------------------------------------------------------------------------
# What torch.jit.load does with the archive (torch 2.13, torch/csrc/jit/serialization/unpickler.cpp and
# import.cpp), as tried with marker-file payloads (tests/test_security_torch.py):
# * data.pkl and constants.pkl go to a C++ unpickler (protocol 2 only) that imports no Python: it builds
#   the globals below itself, and hands any other name to the archive's own TorchScript classes (compiled
#   from code/), so os.system or builtins.eval in data.pkl fail with "Unknown type name 'os.system'".
# * But code from the file does run while loading: an object whose class defines __getstate__ and
#   __setstate__ is restored by calling __setstate__, which for a class from code/ is TorchScript written
#   by whoever wrote the file, and TorchScript can call aten::save (torch.save: writes any file it names),
#   aten::from_file and debugprims::load_tensor (read one).
# * The TorchBind class __torch__.torch.classes.aten.OpaqueObject has a C++ __setstate__ that base64-decodes
#   its string and hands it to Python's pickle.loads: any Python code, from a data.pkl naming no Python.
# * The C++ unpickler sizes its memo table by the largest memo index it is given (LONG_BINPUT 2**32-1:
#   64 GiB), allocates a string's declared length before reading it (format-04 of the fuzz corpus: a
#   corrupt BINUNICODE length, 1.84 GB peak), and its type-string parser, like the TorchScript parser,
#   recurses once per bracket (a segfault past a few thousand).

#: Globals torch.jit.load's C++ unpickler builds itself (Unpickler::readGlobal).
TS_GLOBALS = frozenset({
    "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_qtensor", "torch._utils._rebuild_sparse_tensor",
    "torch._tensor._rebuild_from_type_v2", "torch.Tensor", "collections.OrderedDict", "builtins.complex",
    "torch.device", "__main__.TensorID", "__main__.IntList",
    *(f"torch.jit._pickle.{n}" for n in ("build_tensor_from_id", "restore_type_tag", "build_intlist",
                                          "build_tensorlist", "build_doublelist", "build_boollist")),
})
#: ``torch.FloatStorage`` and friends (a storage's dtype) and the quantization schemes, read as enums.
_TS_ENUMS = re.compile(r"torch\.(?:[A-Z]\w*Storage|per_tensor_affine|per_channel_affine|per_tensor_symmetric"
                       r"|per_channel_symmetric|per_channel_affine_float_qparams)")
#: TorchBind classes whose (C++) __setstate__ unpickles a Python object with pickle.loads.
TS_PYTHON_OBJECTS = frozenset({"__torch__.torch.classes.aten.OpaqueObject"})
#: TorchScript builtins that touch files: torch.save (aten::save) writes one, torch.from_file and
#: debugprims::load_tensor read one (and torchvision's image::read_file / write_file, where it is loaded).
#: Matched as words anywhere in the code (a comment or string naming them is refused too: the safe side).
_TS_FILE_OPS = re.compile(rb"\b(save|from_file|load_tensor|debugprims|read_file|write_file)\b")
_TS_SETSTATE = re.compile(rb"\b__setstate__\b")
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"()[]")


def _nesting(text: bytes) -> int:
    """The deepest nesting of ``(`` and ``[`` in ``text``."""
    depth = deepest = 0
    for c in text.translate(None, _NOT_BRACKETS):
        if c in b"([":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    return deepest


def _ts_pickle_globals(data: bytes) -> list:
    """The globals of a pickle torch.jit.load reads, by the names its C++ unpickler sees (no Python 2
    renaming), after refusing (:class:`UnsafePickle`) what that unpickler would allocate without bound or
    recurse on: bytes the exact scan cannot replay (a string longer than the pickle, format-04), a memo
    index past the entries stored so far, a string nesting brackets more than :data:`MAX_TS_NESTING` deep."""
    globs = pickle_scan.pickle_globals(data, fix_imports=False)
    puts = 0
    for op, arg, _pos in pickletools.genops(data):
        if op.name in _MEMO_PUTS:
            if not 0 <= arg <= puts:
                raise UnsafePickle(f"memo index {arg} with {puts} entries stored (torch's unpickler would size "
                                   "its memo table by it)")
            puts += arg == puts
        elif isinstance(arg, str) and arg.count("[") + arg.count("(") > MAX_TS_NESTING and \
                _nesting(arg.encode("utf-8", "replace")) > MAX_TS_NESTING:
            raise UnsafePickle(f"a string nests brackets more than {MAX_TS_NESTING} deep (torch's type parser "
                               "would overflow its stack)")
    return globs


def _ts_global_refusal(glob: str, trust_pickle: bool) -> Optional[str]:
    """Why a TorchScript pickle may not name ``glob`` (None: it may)."""
    if glob in TS_PYTHON_OBJECTS:
        if not trust_pickle:
            return (f"holds {glob[len('__torch__.torch.classes.'):]}, whose state is a pickled Python object that "
                    "torch.jit.load would unpickle (running code from the file); " + TRUST_HINT + FACTORY_HINT)
        return None  # unpickled under _pt2_guard: scanned, then by the guarded unpickler
    if glob in TS_GLOBALS or _TS_ENUMS.fullmatch(glob) or glob.startswith("__torch__."):
        return None
    why = pickle_scan.refusal(glob)
    if why:
        raise UnsafePickle(f"the pickle references {glob}, which {why}")
    if not trust_pickle:
        return (f"references {glob}, which TorchScript does not write (torch would look it up as a class in the "
                "archive's code); " + TRUST_HINT + FACTORY_HINT)
    return None


def _check_ts_code(text: bytes, trust_pickle: bool) -> Optional[str]:
    """Why a TorchScript source member is refused without ``trust_pickle`` (None: it is not). Raises
    :class:`UnsafePickle` for code that touches files or nests too deep, whatever the flag."""
    m = _TS_FILE_OPS.search(text)
    if m:
        raise UnsafePickle(f"calls {m.group(1).decode()}, a TorchScript builtin that reads or writes files")
    if text.count(b"(") + text.count(b"[") > MAX_TS_NESTING and _nesting(text) > MAX_TS_NESTING:
        raise UnsafePickle(f"nests brackets more than {MAX_TS_NESTING} deep (torch's parser would overflow its "
                           "stack)")
    if not trust_pickle and _TS_SETSTATE.search(text):
        return ("defines __setstate__, TorchScript from the file that torch.jit.load runs while loading; "
                + TRUST_HINT + FACTORY_HINT)
    return None


def _prescan_torchscript(path: Path, trust_pickle: bool) -> None:
    """Refuse a TorchScript archive ``torch.jit.load`` would run code from or could not read in bounded
    memory, naming the member (see the notes above :data:`TS_GLOBALS`): members are capped
    (:func:`_check_archive`, :data:`MEMBER_CAPS`); every pickle (data.pkl, constants.pkl, code/*.debug_pkl)
    is replayed by :func:`_ts_pickle_globals` and may name only what TorchScript writes
    (:func:`_ts_global_refusal`); the code may not touch files or nest past :data:`MAX_TS_NESTING`, and,
    without ``trust_pickle``, may define no ``__setstate__``."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != ZIP_LOCAL_HEADER:
                raise UnsafePickle("the file does not start with a zip header, as torch's reader needs")
        with zipfile.ZipFile(path) as zf:
            names = _check_archive(zf)
            top = names[0].split("/", 1)[0] + "/"
            for member in names:
                name = member[len(top):]  # the name torch's reader gives
                if name.endswith(("/", "version", "byteorder", "serialization_id")) or name.startswith(
                        ("data/", "extra/")):
                    continue  # storages, extra files: bytes torch does not parse (or maps as they are)
                try:
                    if name.endswith((".pkl", ".debug_pkl")):
                        why = next(filter(None, (_ts_global_refusal(g, trust_pickle) for g in
                                                 _ts_pickle_globals(_read(path, zf, member, "pickle")))), None)
                    elif name.startswith("code/"):
                        why = _check_ts_code(_read(path, zf, member, "code"), trust_pickle)
                    else:
                        continue
                except UnsafePickle as exc:
                    raise _refused(path, exc, name) from None
                if why:
                    raise InputError(path, f"{name} {why}")
    except UnsafePickle as exc:
        raise _refused(path, exc) from None
    except MemberTooLarge as exc:
        raise InputError(path, f"refused: {exc}") from None
    except _READ_ERRORS as exc:
        raise InputError(path, f"damaged TorchScript archive ({type(exc).__name__}: {exc})") from None


def _load_torchscript(torch, path: Path, trust_pickle: bool):
    with _pt2_guard(torch, trust_pickle, export=False) as refusals:
        try:
            module = _quiet(torch.jit.load, str(path), map_location="cpu")
        except Exception as exc:
            if not refusals:
                raise InputError(path, f"cannot load TorchScript archive: {_one_line(exc)}") from None
    if refusals:
        raise InputError(path, refusals[0])
    return module


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _import_torch(path):
    try:
        import torch
    except ImportError:
        raise MissingFramework(path, "reading PyTorch files needs torch: pip install 'modellint[torch]'") from None
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
