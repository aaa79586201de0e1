"""Hand-assembled hostile pickles: every payload creates a marker file if it ever runs.

A :class:`Pickle` writes opcodes directly (no ``pickle.dumps`` of live objects, so nothing
hostile is ever instantiated here). Each vector in :data:`VECTORS` is a function
``(p, marker) -> None`` that leaves ONE object on the unpickler's stack whose construction
creates ``marker``; :func:`payload_pickle` wraps it as ``{"weights": <payload>}`` (a
state_dict-looking dict) and :func:`module_pickle` hides it inside the state of an
``nn.Sequential`` (a pickled whole module).

The vectors cover what issue 10 lists: plain ``os.system``-style globals, the ways around
a scan that lists GLOBAL/STACK_GLOBAL names from the opcodes without running them (a
string pushed and popped before STACK_GLOBAL, a memo shifted by an earlier non-string,
a module name computed at load time by ``_codecs.encode``), resolvers that turn a string
into any callable (``pkgutil.resolve_name``, ``pydoc.locate``), callables that run a
shell or code themselves (``pydoc.pipepager``, ``torch.fx`` ``_exec_with_source``,
numpy's ``runstring``), file creation through aliases of ``open`` (``io.open``,
``_io.FileIO``, ``pathlib`` through ``_operator.methodcaller``), and the C-module twins
of refused names (``_operator.attrgetter``).
"""

from __future__ import annotations

import shlex
import struct


class Pickle:
    """A tiny pickle assembler (protocol-4 opcodes; the declared protocol is in the header)."""

    def __init__(self, proto: int = 2):
        self.b = bytearray()
        self.memo = 0  # memo slots used so far (MEMOIZE numbers them in order)
        if proto >= 2:
            self.b += b"\x80" + bytes([proto])

    # -- pushes ------------------------------------------------------------------------------
    def glob(self, module: str, name: str) -> "Pickle":
        self.b += b"c" + f"{module}\n{name}\n".encode()
        return self

    def str(self, s: str) -> "Pickle":
        enc = s.encode("utf-8")
        self.b += b"X" + struct.pack("<I", len(enc)) + enc  # BINUNICODE
        return self

    def short_str(self, s: str) -> "Pickle":
        enc = s.encode("utf-8")
        assert len(enc) < 256
        self.b += b"\x8c" + bytes([len(enc)]) + enc  # SHORT_BINUNICODE
        return self

    def int(self, v: int) -> "Pickle":
        self.b += b"J" + struct.pack("<i", v)
        return self

    def none(self) -> "Pickle":
        self.b += b"N"
        return self

    def false(self) -> "Pickle":
        self.b += b"\x89"
        return self

    def push(self, value) -> "Pickle":
        if callable(value):
            value(self)
        elif isinstance(value, str):
            self.str(value)
        elif isinstance(value, bool):
            self.b += b"\x88" if value else b"\x89"
        elif isinstance(value, int):
            self.int(value)
        elif value is None:
            self.none()
        elif isinstance(value, list):
            self.b += b"]("
            for v in value:
                self.push(v)
            self.b += b"e"  # APPENDS
        elif isinstance(value, dict):
            self.b += b"}("
            for k, v in value.items():
                self.push(k)
                self.push(v)
            self.b += b"u"  # SETITEMS
        else:
            raise TypeError(value)
        return self

    # -- stack operations ----------------------------------------------------------------------
    def raw(self, data: bytes) -> "Pickle":
        self.b += data
        return self

    def pop(self) -> "Pickle":
        self.b += b"0"
        return self

    def memoize(self) -> int:
        """MEMOIZE the top of the stack; returns its memo index."""
        self.b += b"\x94"
        self.memo += 1
        return self.memo - 1

    def binget(self, i: int) -> "Pickle":
        self.b += b"h" + bytes([i])
        return self

    def stack_global(self) -> "Pickle":
        self.b += b"\x93"
        return self

    def call(self, fn, *args) -> "Pickle":
        """Push ``fn(*args)``: ``fn`` and each arg are values or push functions."""
        self.push(fn)
        self.b += b"("
        for a in args:
            self.push(a)
        self.b += b"tR"  # TUPLE, REDUCE
        return self

    def bytes(self) -> bytes:
        return bytes(self.b)


def G(module: str, name: str):
    """A push function for the global ``module.name``."""
    return lambda p: p.glob(module, name)


def C(fn, *args):
    """A push function for the call ``fn(*args)``."""
    return lambda p: p.call(fn, *args)


def touch(marker: str) -> str:
    return f"touch {shlex.quote(str(marker))}"


def py_create(marker: str) -> str:
    return f"open({str(marker)!r}, 'w').close()"


# ---------------------------------------------------------------------------------------------
# vectors: name -> (push function builder, description)
# ---------------------------------------------------------------------------------------------

def _os_system(p, m):
    p.call(G("os", "system"), touch(m))


def _posix_system(p, m):
    p.call(G("posix", "system"), touch(m))


def _subprocess_run(p, m):
    p.call(G("subprocess", "run"), ["touch", str(m)])


def _builtins_exec(p, m):
    p.call(G("builtins", "exec"), py_create(m))


def _builtins_eval(p, m):
    p.call(G("builtins", "eval"), f"__import__('os').system({touch(m)!r})")


def _py2_builtin_eval(p, m):  # __builtin__ is mapped to builtins by the unpickler (fix_imports)
    p.call(G("__builtin__", "eval"), f"__import__('os').system({touch(m)!r})")


def _stack_global_popped(p, m):
    """os.system through STACK_GLOBAL, with decoy strings pushed and popped after the real ones:
    a scan that takes the last two strings seen reads collections.OrderedDict."""
    def fn(q):
        q.short_str("os").short_str("system")
        q.short_str("collections").pop().short_str("OrderedDict").pop()
        q.stack_global()
    p.call(fn, touch(m))


def _memo_shift(p, m):
    """The wrappers memoise a dict before any string: a scan that numbers only memoised strings
    is one slot off and resolves the two BINGETs to "system", "collections"."""
    def fn(q):
        slots = []
        for s in ("os", "system", "collections", "OrderedDict"):
            q.short_str(s)
            slots.append(q.memoize())
            q.pop()
        q.binget(slots[0]).binget(slots[1]).stack_global()   # os.system
    p.call(fn, touch(m))


def _codecs_rot13(p, m):
    """The module name is computed at load time (_codecs.encode("bf", "rot13") == "os"), so no
    opcode names it; _codecs.encode is what torch's own pickles use for bytes."""
    def fn(q):
        q.call(G("_codecs", "encode"), "bf", "rot13")
        q.short_str("system").stack_global()
    p.call(fn, touch(m))


def _pkgutil_resolve_name(p, m):
    p.call(C(G("pkgutil", "resolve_name"), "os:system"), touch(m))


def _pydoc_locate(p, m):
    p.call(C(G("pydoc", "locate"), "os.system"), touch(m))


def _pydoc_pipepager(p, m):
    p.call(G("pydoc", "pipepager"), "", touch(m))


def _operator_attrgetter(p, m):
    p.call(C(C(G("operator", "attrgetter"), "system"), C(G("pkgutil", "resolve_name"), "os")), touch(m))


def _c_operator_attrgetter(p, m):
    p.call(C(C(G("_operator", "attrgetter"), "system"), C(G("pydoc", "locate"), "os")), touch(m))


def _importlib_import_module(p, m):
    p.call(C(C(G("_operator", "attrgetter"), "system"), C(G("importlib", "import_module"), "os")), touch(m))


def _builtins_getattr(p, m):
    p.call(C(G("builtins", "getattr"), C(G("pydoc", "locate"), "os"), "system"), touch(m))


def _io_open(p, m):
    p.call(G("io", "open"), str(m), "w")


def _c_io_fileio(p, m):
    p.call(G("_io", "FileIO"), str(m), "w")


def _methodcaller_touch(p, m):
    p.call(C(G("_operator", "methodcaller"), "touch"), C(G("pathlib", "PosixPath"), str(m)))


def _functools_partial(p, m):
    p.call(C(G("functools", "partial"), C(G("pkgutil", "resolve_name"), "subprocess:call"), ["touch", str(m)]))


def _torch_fx_exec(p, m):
    p.call(G("torch.fx.graph_module", "_exec_with_source"), py_create(m), {})


def _numpy_runstring(p, m):
    p.call(G("numpy.testing._private.utils", "runstring"), py_create(m), {})


def _timeit(p, m):
    p.call(G("timeit", "timeit"), py_create(m), "pass", G("time", "perf_counter"), 1)


VECTORS = {
    "os_system": _os_system,
    "posix_system": _posix_system,
    "subprocess_run": _subprocess_run,
    "builtins_exec": _builtins_exec,
    "builtins_eval": _builtins_eval,
    "py2_builtin_eval": _py2_builtin_eval,
    "stack_global_popped": _stack_global_popped,
    "memo_shift": _memo_shift,
    "codecs_rot13_module": _codecs_rot13,
    "pkgutil_resolve_name": _pkgutil_resolve_name,
    "pydoc_locate": _pydoc_locate,
    "pydoc_pipepager": _pydoc_pipepager,
    "operator_attrgetter": _operator_attrgetter,
    "_operator_attrgetter": _c_operator_attrgetter,
    "importlib_import_module": _importlib_import_module,
    "builtins_getattr": _builtins_getattr,
    "io_open": _io_open,
    "_io_FileIO": _c_io_fileio,
    "methodcaller_pathlib_touch": _methodcaller_touch,
    "functools_partial": _functools_partial,
    "torch_fx_exec_with_source": _torch_fx_exec,
    "numpy_runstring": _numpy_runstring,
    "timeit": _timeit,
}


def payload_pickle(vector: str, marker, proto: int = 2) -> bytes:
    """``{"weights": <payload>}``: looks like a state_dict to anything that does not run it."""
    p = Pickle(proto)
    p.raw(b"}")
    p.memoize()  # a non-string in memo slot 0 (what torch.save's pickles do too)
    p.short_str("weights")
    VECTORS[vector](p, marker)
    p.raw(b"s.")  # SETITEM, STOP
    return p.bytes()


def module_pickle(vector: str, marker) -> bytes:
    """An ``nn.Sequential`` pickled the way ``torch.save(module)`` does (copyreg._reconstructor, then
    BUILD with the instance dict), with the payload as one more attribute of the module."""
    p = Pickle(2)
    p.glob("copyreg", "_reconstructor")
    p.memoize()  # a non-string in memo slot 0
    p.call(lambda q: None, G("torch.nn.modules.container", "Sequential"), G("builtins", "object"), None)
    p.raw(b"}(")
    for k, v in (("training", False), ("_parameters", {}), ("_buffers", {}), ("_modules", {})):
        p.push(k).push(v)
    p.short_str("evil")
    VECTORS[vector](p, marker)
    p.raw(b"ub.")  # SETITEMS, BUILD, STOP
    return p.bytes()


def text_pickles(marker) -> dict:
    """Protocol-0 (text) pickles: GLOBAL and INST opcodes spelled out, no protocol header."""
    cmd = touch(marker)
    return {
        "proto0_global": f"cos\nsystem\n(V{cmd}\ntR.".encode(),
        "proto0_inst": f"(V{cmd}\nios\nsystem\n.".encode(),
    }


def harmless_pickles(marker) -> dict:
    """Class pickles that run nothing (the marker path is only data): loading them with
    --trust-pickle may succeed or fail, but must not create the marker."""
    ns = Pickle(2)
    ns.call(G("argparse", "Namespace"))
    ns.raw(b"}(").push("path").push(str(marker)).raw(b"ub.")
    path = Pickle(2)
    path.raw(b"}").short_str("weights").call(G("pathlib", "PosixPath"), str(marker)).raw(b"s.")
    od = Pickle(2)
    od.call(G("collections", "OrderedDict")).raw(b"(").push("w").push(str(marker)).raw(b"u.")
    return {"namespace": ns.bytes(), "posixpath": path.bytes(), "ordered_dict": od.bytes()}
