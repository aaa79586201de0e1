"""What a pickle would import, found without unpickling it; and an unpickler that refuses the same.

The model: unpickling runs a small stack machine, and every object it can call
comes from a *global* (``GLOBAL``/``INST`` name a module and attribute in the
opcode's argument, ``STACK_GLOBAL`` takes them from the top two stack items,
``EXT1/2/4`` look them up in :mod:`copyreg`'s extension registry). The scan
reads the opcodes with :mod:`pickletools` and replays that machine exactly:
the stack with its marks, the memo (``MEMOIZE`` numbers by the memo's size, as
CPython does, ``PUT``/``GET`` by index), every push, pop and collection
builder, for protocols 0-5. A value is either a string constant or "something"
(every non-string is the same to the scan), so ``STACK_GLOBAL`` resolves to the
exact module and name, however the strings got there (memo, ``DUP``, pushed
and popped), or is refused when either is not a string constant. An opcode the
scan does not model, a stack underflow, a missing memo entry or bytes that do
not parse are refused too: the scan never guesses. Names are taken as the
unpickler would see them (Python 2 names mapped for protocols < 3).

Each global is then judged by :func:`refusal` on its full dotted path: an
allow-list for the builtins and the few internals checkpoints need, then
whole modules that can run commands or code or reach anything by name
(``os``, ``subprocess``, ``builtins``, ``importlib``, ``pkgutil``, ``pydoc``,
``types``, ``pickle``...), names that read or write files, dunder attributes
(``X.__init__.__globals__``) and module aliases inside a path
(``zipfile.os.system``).

One refused global is allowed in one shape: ``builtins.getattr`` looking a
public torch function up by a constant name in one of :data:`GETATTR_TARGETS`
(``torch.relu`` pickles as ``getattr(torch._C._VariableFunctionsClass, "relu")``).
The scan follows getattr, its target and the (target, name) tuple through the
stack and memo: called so, the pair is judged as the public path it names
(``torch.relu``; ``torch.from_file`` is refused); used any other way (called on
something else, stored, passed, returned), ``builtins.getattr`` or the target is
reported as imported and refused as before. The loader hands out a getattr that
checks the same on the real objects. ``functools.partial`` is allowed: it only
binds arguments to a callable the pickle could already call.

This is a safety net for files the user chose to trust, not a sandbox: an
allowed class may still do harm in its ``__setstate__``. :class:`GuardedUnpickler`
applies the same judgement when a pickle is really loaded, to the name asked for
and to the object it resolves to (a module, or ``mypkg.system`` that is
``os.system`` imported under another name, is refused).
"""

from __future__ import annotations

import _compat_pickle
import copyreg
import io
import pickle
import pickletools
import types
from typing import Optional


class UnsafePickle(pickle.UnpicklingError):
    """A pickle refused before anything in it ran: a dangerous global, or bytes the scan cannot model exactly."""


# ---------------------------------------------------------------------------
# the policy
# ---------------------------------------------------------------------------

#: exact dotted paths allowed although their module is refused below
ALLOWED = frozenset({
    *(f"builtins.{n}" for n in ("set", "frozenset", "slice", "bytearray", "complex", "range", "int", "float",
                                "bool", "str", "bytes", "dict", "list", "tuple", "object", "Ellipsis")),
    "_codecs.encode",  # bytes in protocol-2 pickles (torch's legacy files)
    "functools.partial",  # binds arguments to a callable the pickle names (allowed on its own) or builds
    "copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__",
    "numpy.random._pickle.__randomstate_ctor", "numpy.random._pickle.__generator_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
})
#: prefixes allowed although a prefix below refuses them: torch's functional ops (F.gelu pickles as torch._C._nn.gelu)
ALLOWED_PREFIXES = ("torch._C._nn", "torch._C._special", "torch._C._linalg", "torch._C._fft", "torch._C._nested",
                    "torch._C._sparse", "torch._C.Generator", "torch._C.TensorBase", "torch._C._TensorBase",
                    "__torch__.torch.classes")  # TorchBind classes, resolved by torch's C++ unpickler only

#: whole top-level modules: commands, code, imports by name, reflection, files, network, processes
REFUSED_MODULES = frozenset("""
    os nt posix posixpath ntpath genericpath subprocess _posixsubprocess _winapi sys builtins __builtin__
    importlib _imp imp pkgutil pydoc zipimport runpy code codeop types inspect ctypes _ctypes cffi
    pickle _pickle cPickle pickletools marshal copyreg shelve dbm dill cloudpickle joblib
    shutil socket _socket ssl select selectors socketserver asyncio urllib http ftplib smtplib poplib imaplib
    telnetlib xmlrpc requests webbrowser io _io pathlib tempfile glob fileinput linecache mmap zipfile tarfile
    multiprocessing _multiprocessing concurrent threading _thread signal _signal codecs _codecs functools
    operator _operator pty tty fcntl termios resource platform sysconfig site pdb bdb timeit trace
    tracemalloc profile cProfile faulthandler gc atexit weakref _weakref logging distutils setuptools pip
    pkg_resources ensurepip venv antigravity this idlelib tkinter turtle sqlite3 doctest unittest
""".split())

#: dotted prefixes inside allowed packages
REFUSED_PREFIXES = (
    "torch.load", "torch.save", "torch.serialization.load", "torch.serialization.save", "torch.hub",
    "torch.package", "torch.jit", "torch._C", "torch.ops", "torch._ops", "torch.library", "torch._library",
    "torch.classes", "torch.utils.cpp_extension", "torch.utils.collect_env", "torch.utils.benchmark",
    "torch._dynamo", "torch._inductor", "torch.compiler", "torch.export", "torch._export", "torch.distributed",
    "torch.multiprocessing", "torch.testing", "torch.backends", "torch.fx.graph_module.reduce_graph_module",
    "torch.fx.graph_module.reduce_package_graph_module", "torch.fx.graph_module.reduce_deploy_graph_module",
    "torch.fx.graph_module._exec_with_source", "torch.fx.graph_module._forward_from_src",
    "torch.fx.graph_module._method_from_src", "torch.fx.experimental", "torch._functorch", "torch._subclasses",
    "numpy.lib", "numpy.testing", "numpy.distutils", "numpy.f2py", "numpy.ctypeslib", "numpy._pytesttester",
    "numpy.memmap", "numpy.DataSource", "numpy.core._internal", "numpy._core._internal",
)

#: names of modules that other modules import: refused anywhere inside a path (zipfile.os.system, tempfile._os)
MODULE_ALIASES = frozenset("""
    os nt posix sys subprocess builtins importlib pickle cpickle marshal shutil socket ctypes pty runpy
    pkgutil pydoc webbrowser multiprocessing posixpath ntpath imp zipimport
""".split())

#: last components that load, write, open or execute, whatever module holds them
REFUSED_NAMES = frozenset("""
    system popen spawn exec execfile eval compile open load loads save dump dumps tofile from_file fromfile
    load_library load_inline import_module resolve_name locate
""".split())


#: classes ``builtins.getattr`` may look a torch function up in -> the public path of what it finds
#: (``torch.relu`` pickles as ``getattr(torch._C._VariableFunctionsClass, "relu")``, ``torch.Tensor.add``
#: as ``getattr(torch._C.TensorBase, "add")``): read-only C types, harmless without getattr
GETATTR_TARGETS = {"torch._C._VariableFunctionsClass": "torch", "torch._C.TensorBase": "torch.Tensor",
                   "torch._C._TensorBase": "torch.Tensor", "torch.Tensor": "torch.Tensor"}
GETATTR = "builtins.getattr"


def getattr_path(target: str, name) -> Optional[str]:
    """The public dotted path ``getattr(target, name)`` reaches, or None when getattr may not be called so:
    ``target`` not in :data:`GETATTR_TARGETS`, or ``name`` not a public identifier (no leading ``_``). The
    path still goes through :func:`refusal` (``torch.from_file`` is refused)."""
    if target not in GETATTR_TARGETS or not isinstance(name, str):
        return None
    if not (name.isascii() and name.isidentifier()) or name.startswith("_"):
        return None
    return f"{GETATTR_TARGETS[target]}.{name}"


def _within(path: str, prefixes) -> bool:
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def _dunder(part: str) -> bool:
    return part.startswith("__") and part.endswith("__")


def refusal(path: str) -> Optional[str]:
    """Why the global at dotted ``path`` (module and name joined) is refused, or None when it is allowed."""
    if path in ALLOWED or _within(path, ALLOWED_PREFIXES):
        return None
    parts = path.split(".")
    if not path.isascii() or not all(p.isidentifier() for p in parts):
        return "is not a plain dotted name"
    if any(_dunder(p) for p in parts[1:]) or (_dunder(parts[0]) and parts[0] != "__main__"):
        return "reaches a dunder attribute (reflection)"
    if parts[0] in REFUSED_MODULES or _within(path, REFUSED_PREFIXES):
        return "can run commands or code, import by name or touch files"
    if any(p.lstrip("_").lower() in MODULE_ALIASES for p in parts[1:]):
        return "reaches a module through another module"
    if parts[-1] in REFUSED_NAMES:
        return "loads, writes or runs something"
    return None


def _effective(module: str, name: str, proto: int) -> str:
    """The dotted path the unpickler really imports: Python 2 names are mapped below protocol 3 (fix_imports)."""
    if proto < 3:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


# ---------------------------------------------------------------------------
# the scan
# ---------------------------------------------------------------------------

_ANY = object()  # any value that is not a string constant
_STRINGS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
                      "BINUNICODE8"})
_OTHER_PUSHES = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
                           "NONE", "NEWTRUE", "NEWFALSE", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
                           "BYTEARRAY8", "EMPTY_LIST", "EMPTY_TUPLE", "EMPTY_DICT", "EMPTY_SET", "NEXT_BUFFER",
                           "PERSID"})
#: opcode -> (items popped, items pushed): the result is "something", or the object updated in place
_SHAPES = {"TUPLE1": (1, 1), "TUPLE2": (2, 1), "TUPLE3": (3, 1), "BINPERSID": (1, 1), "REDUCE": (2, 1),
           "NEWOBJ": (2, 1), "NEWOBJ_EX": (3, 1), "APPEND": (2, 1), "SETITEM": (3, 1), "BUILD": (2, 1),
           "READONLY_BUFFER": (1, 1)}
#: builders that take everything above the last MARK and push their result
_FROM_MARK = frozenset({"TUPLE", "LIST", "DICT", "FROZENSET", "OBJ", "INST"})
#: builders that take everything above the last MARK into the object just below it
_INTO_BELOW_MARK = frozenset({"APPENDS", "SETITEMS", "ADDITEMS"})
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})


class _Machine:
    """The unpickler's stack, marks (CPython's metastack) and memo; string constants kept, all else opaque."""

    def __init__(self):
        self.stack: list = []
        self.marks: list = []
        self.memo: dict = {}
        self.proto = 0

    def push(self, value=_ANY) -> None:
        self.stack.append(value)

    def pop(self, n: int = 1) -> list:
        if len(self.stack) < n:
            raise UnsafePickle("stack underflow")
        items = self.stack[len(self.stack) - n:]
        del self.stack[len(self.stack) - n:]
        return items

    def mark(self) -> None:
        self.marks.append(self.stack)
        self.stack = []

    def pop_mark(self) -> list:
        if not self.marks:
            raise UnsafePickle("no MARK to pop")
        items, self.stack = self.stack, self.marks.pop()
        return items

    def top(self):
        if not self.stack:
            raise UnsafePickle("stack underflow")
        return self.stack[-1]


def _global_arg(arg: str) -> tuple:
    """GLOBAL and INST carry "module name" (two lines, joined with a space by pickletools)."""
    module, _, name = arg.partition(" ")
    if " " in name:
        raise UnsafePickle(f"ambiguous global name {arg!r}")
    return module, name


class _Global:
    """``builtins.getattr`` or a getattr target on the scan's stack: listed as imported (``escaped``) only
    when used otherwise than in ``getattr(target, "name")``."""

    __slots__ = ("path", "escaped")

    def __init__(self, path: str):
        self.path = path
        self.escaped = False


class _Pair:
    """The tuple ``(target, "name")``: getattr's arguments, or, used otherwise, its target escapes."""

    __slots__ = ("target", "name")

    def __init__(self, target: _Global, name: str):
        self.target = target
        self.name = name


def _use(values) -> None:
    """Values consumed otherwise than by getattr: a getattr or target among them escapes."""
    for v in values:
        if isinstance(v, _Pair):
            v = v.target
        if isinstance(v, _Global):
            v.escaped = True


def _tuple(items: list):
    if len(items) == 2 and isinstance(items[0], _Global) and items[0].path in GETATTR_TARGETS \
            and isinstance(items[1], str):
        return _Pair(items[0], items[1])
    _use(items)
    return _ANY


def _scan_one(stream, found: list, fix_imports: bool = True) -> None:
    """Replay one pickle from ``stream`` up to its STOP, appending the dotted path of each global to ``found``."""
    m = _Machine()
    seen: list = []  # paths, and _Global entries decided at STOP

    def glob(path: str):
        if path == GETATTR or path in GETATTR_TARGETS:
            token = _Global(path)
            seen.append(token)
            return token
        seen.append(path)
        return _ANY

    def named(module: str, name: str) -> str:
        return _effective(module, name, m.proto) if fix_imports else f"{module}.{name}"

    for op, arg, _pos in pickletools.genops(stream):
        n = op.name
        if n in _STRINGS:
            m.push(arg)
        elif n in _OTHER_PUSHES:
            m.push()
        elif n == "REDUCE":
            func, args = m.pop(2)
            if isinstance(func, _Global) and func.path == GETATTR and isinstance(args, _Pair) \
                    and getattr_path(args.target.path, args.name):
                seen.append(getattr_path(args.target.path, args.name))
            else:
                _use((func, args))
            m.push()
        elif n == "TUPLE2":
            m.push(_tuple(m.pop(2)))
        elif n in _SHAPES:
            popped, pushed = _SHAPES[n]
            _use(m.pop(popped))
            for _ in range(pushed):
                m.push()
        elif n == "TUPLE":
            m.push(_tuple(m.pop_mark()))
        elif n in _FROM_MARK:
            items = m.pop_mark()
            _use(items)
            if n == "OBJ" and not items:
                raise UnsafePickle("OBJ without a class")
            if n == "INST":
                seen.append(named(*_global_arg(arg)))
            m.push()
        elif n in _INTO_BELOW_MARK:
            _use(m.pop_mark())
            _use([m.top()])
        elif n == "MARK":
            m.mark()
        elif n == "POP_MARK":
            m.pop_mark()
        elif n == "POP":  # with nothing above the last mark, CPython pops the mark
            if m.stack:
                m.pop()
            else:
                m.pop_mark()
        elif n == "DUP":
            m.push(m.top())
        elif n == "MEMOIZE":  # numbered by the memo's size, whatever PUT did before
            m.memo[len(m.memo)] = m.top()
        elif n in _MEMO_PUT:
            if arg < 0:
                raise UnsafePickle("negative memo index")
            m.memo[arg] = m.top()
        elif n in _MEMO_GET:
            if arg not in m.memo:
                raise UnsafePickle(f"memo entry {arg} not found")
            m.push(m.memo[arg])
        elif n == "GLOBAL":
            m.push(glob(named(*_global_arg(arg))))
        elif n == "STACK_GLOBAL":
            module, name = m.pop(2)
            if not (isinstance(module, str) and isinstance(name, str)):
                raise UnsafePickle("STACK_GLOBAL takes its module or name from a computed value")
            m.push(glob(named(module, name)))
        elif n in ("EXT1", "EXT2", "EXT4"):
            key = copyreg._inverted_registry.get(arg)
            if key is None:
                raise UnsafePickle(f"unregistered extension code {arg}")
            m.push(glob(f"{key[0]}.{key[1]}"))
        elif n == "PROTO":
            if arg > pickle.HIGHEST_PROTOCOL:
                raise UnsafePickle(f"unsupported pickle protocol {arg}")
            m.proto = arg
        elif n == "FRAME":
            pass
        elif n == "STOP":
            _use(m.pop())
            found.extend(g.path if isinstance(g, _Global) else g for g in seen
                         if not isinstance(g, _Global) or g.escaped)
            return
        else:
            raise UnsafePickle(f"unsupported pickle opcode {n}")
    raise UnsafePickle("pickle ends without STOP")


def pickle_globals(data: bytes, max_pickles: int = 1, fix_imports: bool = True) -> list:
    """Dotted paths of the globals the pickle(s) at the start of ``data`` import, in order.

    Up to ``max_pickles`` pickles are read one after another (a legacy torch
    file holds five, then raw storage bytes, which are not read); reading stops
    early where ``data`` ends. Raises :class:`UnsafePickle` where the bytes
    cannot be replayed exactly (see the module's docstring). ``getattr(target,
    "name")`` on a :data:`GETATTR_TARGETS` class is listed as the public path it
    reaches (``torch.relu``), not as ``builtins.getattr``. ``fix_imports=False``
    gives names as written, without Python 2 renaming (what torch's C++
    unpickler sees).
    """
    found: list = []
    stream = io.BytesIO(data)
    for _ in range(max_pickles):
        start = stream.tell()
        if start >= len(data):
            break
        try:
            _scan_one(stream, found, fix_imports)
        except UnsafePickle:
            raise
        except Exception as exc:  # pickletools cannot parse it: the unpickler might read it otherwise
            raise UnsafePickle(f"unreadable pickle at byte {start} ({type(exc).__name__}: {exc})") from None
    return found


def check_pickle(data: bytes, max_pickles: int = 1) -> list:
    """:func:`pickle_globals`, refusing (:class:`UnsafePickle`) the first global that :func:`refusal` refuses."""
    found = pickle_globals(data, max_pickles)
    for path in found:
        why = refusal(path)
        if why:
            raise UnsafePickle(f"the pickle references {path}, which {why}")
    return found


# ---------------------------------------------------------------------------
# the same judgement while really unpickling (files the user trusts)
# ---------------------------------------------------------------------------

class GuardedUnpickler(pickle._Unpickler):  # the Python unpickler: find_class sees the protocol
    """A full unpickler whose ``find_class`` refuses what :func:`refusal` refuses: the name asked
    for, and the object it resolves to (its own module and qualified name)."""

    def find_class(self, module, name):
        path = _effective(module, name, self.proto) if self.fix_imports else f"{module}.{name}"
        if path == GETATTR:
            return _torch_getattr
        if path in GETATTR_TARGETS:  # read-only C types: their functions are reached through _torch_getattr
            return super().find_class(module, name)
        why = refusal(path)
        if why:
            raise UnsafePickle(f"the pickle references {path}, which {why}")
        obj = super().find_class(module, name)
        if isinstance(obj, types.ModuleType):
            raise UnsafePickle(f"the pickle references {path}, which is a module")
        home, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if isinstance(home, str) and isinstance(qual, str):
            why = refusal(f"{home}.{qual}")
            if why:
                raise UnsafePickle(f"the pickle references {path}, which is {home}.{qual} and {why}")
        return obj


def _torch_getattr(obj, name, *default):
    """``builtins.getattr`` as the guarded unpickler hands it out: a public torch function, looked up by
    name in one of :data:`GETATTR_TARGETS` (the real objects), and judged by :func:`refusal`."""
    import sys

    torch_c = sys.modules.get("torch._C")  # loaded already: the unpickler imported the target
    targets = {path: getattr(torch_c, path.rsplit(".", 1)[1], None) for path in GETATTR_TARGETS
               if path.startswith("torch._C.")}
    if sys.modules.get("torch") is not None:
        targets["torch.Tensor"] = sys.modules["torch"].Tensor
    target = next((p for p, o in targets.items() if o is not None and o is obj), None)
    path = getattr_path(target, name) if target and not default else None
    if path is None:
        what = getattr(obj, "__qualname__", type(obj).__qualname__)
        raise UnsafePickle(f"the pickle calls builtins.getattr on {str(what)[:60]} with {str(name)[:60]!r}, "
                           "which is only allowed to look up a public torch function by name")
    why = refusal(path)
    if why:
        raise UnsafePickle(f"the pickle references {path}, which {why}")
    return getattr(obj, name)


def guarded_load(file, **kwargs):
    return GuardedUnpickler(file, **kwargs).load()


def guarded_loads(data, /, **kwargs):
    return GuardedUnpickler(io.BytesIO(data), **kwargs).load()


#: a ``pickle_module`` for ``torch.load(..., weights_only=False)``
guarded_pickle = types.SimpleNamespace(__name__="modellint.guarded_pickle", Unpickler=GuardedUnpickler,
                                       load=guarded_load, loads=guarded_loads,
                                       UnpicklingError=pickle.UnpicklingError)
