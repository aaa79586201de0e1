"""Hostile PyTorch files: nothing from the file runs, whatever the flags.

Every payload here creates a marker file if it ever runs. The pickle payloads are
hand-assembled opcodes, and each is first shown to run under a plain ``pickle.loads``
(so a test that passes because the payload was broken cannot happen); the ``.pt2``
vectors are real archives written by ``torch.export.save`` with one member rewritten,
and are shown to run under a bare ``torch.export.load``.
"""

from __future__ import annotations

import copyreg
import functools
import io
import json
import marshal
import pickle
import re
import shlex
import signal
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import run_cli, sha256
from modellint import load_graph
from modellint.adapters import pickle_scan
from modellint.adapters.pickle_scan import UnsafePickle, check_pickle, pickle_globals, refusal
from modellint.errors import InputError

torch = pytest.importorskip("torch")
nn = torch.nn
pytestmark = pytest.mark.torch


# ---------------------------------------------------------------------------
# a pickle assembler (opcodes written by hand; nothing hostile is ever instantiated here)
# ---------------------------------------------------------------------------

class P:
    def __init__(self, proto: int = 4):
        self.b = bytearray(b"\x80" + bytes([proto]) if proto >= 2 else b"")

    def raw(self, data: bytes) -> "P":
        self.b += data
        return self

    def s(self, text: str) -> "P":  # BINUNICODE
        enc = text.encode()
        return self.raw(b"X" + struct.pack("<I", len(enc)) + enc)

    def bytes_(self, data: bytes) -> "P":  # BINBYTES
        return self.raw(b"B" + struct.pack("<I", len(data)) + data)

    def g(self, module: str, name: str) -> "P":  # GLOBAL
        return self.raw(f"c{module}\n{name}\n".encode())

    def sg(self, module: str, name: str) -> "P":  # STACK_GLOBAL
        return self.s(module).s(name).raw(b"\x93")

    def args(self, *values) -> "P":  # a tuple of constants
        self.raw(b"(")
        for v in values:
            self.bytes_(v) if isinstance(v, bytes) else self.s(v)
        return self.raw(b"t")

    def call(self, *values) -> "P":  # REDUCE the callable on the stack with constant arguments
        return self.args(*values).raw(b"R")

    def done(self) -> bytes:
        return bytes(self.b + b".")


def _sh(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def _py(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _os_system(marker, proto=4):
    return P(proto).sg("os", "system").call(_sh(marker)).done()


# name -> builder(marker) -> pickle bytes; each leaves one object whose construction touches the marker
PAYLOADS = {
    # the two holes in the old scan: a string pushed and popped before STACK_GLOBAL, a shifted memo
    "push_pop": lambda m: P().s("os").s("harmless").raw(b"0").s("system").raw(b"\x93").call(_sh(m)).done(),
    "memo_shift": lambda m: P().raw(b"}\x94" b"0").s("os").raw(b"\x94").s("system").raw(b"\x94" b"00")
    .raw(b"h\x01h\x02\x93").call(_sh(m)).done(),
    "pop_mark": lambda m: P().s("os").raw(b"(").s("harmless").s("names").raw(b"1").s("system").raw(b"\x93")
    .call(_sh(m)).done(),
    "dup": lambda m: P().s("os").s("junk").raw(b"0" b"2" b"0").s("system").raw(b"\x93").call(_sh(m)).done(),
    "memo_put": lambda m: P().s("system").raw(b"q\x07" b"0").s("os").raw(b"h\x07\x93").call(_sh(m)).done(),
    # resolvers and reflection that reach anything by name
    "pkgutil_resolve_name": lambda m: P().sg("pkgutil", "resolve_name").call("os:system").call(_sh(m)).done(),
    "pydoc_locate": lambda m: P().sg("pydoc", "locate").call("os.system").call(_sh(m)).done(),
    "pydoc_pipepager": lambda m: P().sg("pydoc", "pipepager").call("", _sh(m)).done(),
    "operator_attrgetter": lambda m: P().sg("operator", "attrgetter").call("system").raw(b"(")
    .sg("importlib", "import_module").call("os").raw(b"tR").call(_sh(m)).done(),
    "importlib_import_module": lambda m: P().sg("importlib", "import_module").call("os").raw(b"\x94" b"0")
    .sg("builtins", "getattr").raw(b"(h\x00").s("system").raw(b"tR").call(_sh(m)).done(),
    "builtins_getattr": lambda m: P().sg("builtins", "getattr").raw(b"(").sg("pathlib", "Path").call(str(m))
    .s("touch").raw(b"tR" b")R").done(),
    "builtins_exec": lambda m: P().sg("builtins", "exec").call(_py(m)).done(),
    "types_FunctionType": lambda m: P().sg("types", "FunctionType").raw(b"(").sg("marshal", "loads")
    .call(marshal.dumps(compile(_py(m), "<payload>", "exec"))).raw(b"}tR)R").done(),
    "code_InteractiveInterpreter": lambda m: P().sg("code", "InteractiveInterpreter.runsource").raw(b"(")
    .sg("code", "InteractiveInterpreter").raw(b")R").s(_py(m)).raw(b"tR").done(),
    "pathlib_touch": lambda m: P().sg("pathlib", "Path.touch").raw(b"(").sg("pathlib", "Path").call(str(m))
    .raw(b"tR").done(),
    "io_FileIO": lambda m: P().sg("_io", "FileIO").call(str(m), "w").done(),
    "module_alias": lambda m: P().sg("zipfile", "os.system").call(_sh(m)).done(),
    "nested_pickle_loads": lambda m: P().sg("pickle", "loads").call(_os_system(m)).done(),
    "numpy_runstring": lambda m: P().sg("numpy.testing._private.utils", "runstring").raw(b"(").s(_py(m))
    .raw(b"}tR").done(),
    # older protocols and opcodes
    "proto0_global": lambda m: f"cos\nsystem\n(S{_sh(m)!r}\ntR.".encode(),
    "proto0_inst": lambda m: f"(S{_sh(m)!r}\nios\nsystem\n.".encode(),
    "proto2_builtin_eval": lambda m: P(2).g("__builtin__", "eval").call(f"__import__('os').system({_sh(m)!r})")
    .done(),
    "proto2_commands": lambda m: P(2).g("commands", "getoutput").call(_sh(m)).done(),
    "obj_opcode": lambda m: P(2).raw(b"(").g("os", "system").s(_sh(m)).raw(b"o").done(),
}


@pytest.fixture(autouse=True)
def _workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a payload that escaped would write here, never into the repository


def _runs(payload: bytes, marker: Path) -> bool:
    """The control: a plain pickle.loads runs the payload (it is benign: it creates the marker)."""
    try:
        pickle.loads(payload)
    except Exception:
        pass
    ran = marker.exists()
    marker.unlink(missing_ok=True)
    return ran


def _checkpoint(path, payload: bytes):
    """A real torch.save zip whose data.pkl is ``payload`` (torch.load unpickles it fully once weights_only fails)."""
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    with zipfile.ZipFile(buf) as zin, zipfile.ZipFile(path, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, payload if name.endswith("/data.pkl") else zin.read(name))
    return path


# ---------------------------------------------------------------------------
# the scan: exact, and every bypass class refused
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_payload_refused_by_scan_and_loader(tmp_path, name):
    if name == "numpy_runstring":
        pytest.importorskip("numpy.testing")
    marker = tmp_path / "MARKER"
    payload = PAYLOADS[name](marker)
    assert _runs(payload, marker), "the payload must really run under pickle.loads"
    with pytest.raises(UnsafePickle):
        check_pickle(payload)
    path = _checkpoint(tmp_path / f"{name}.pt", payload)
    before = sha256(path)
    for trust in (False, True):
        with pytest.raises(InputError) as info:
            load_graph(path, trust_pickle=trust)
        assert "\n" not in str(info.value) and str(info.value).startswith(str(path))
    assert not marker.exists()
    assert sha256(path) == before


def test_cli_refuses_every_payload_with_trust_pickle(tmp_path):
    """One command line over every payload checkpoint: one line per file, exit 2, nothing ran or changed."""
    marker = tmp_path / "MARKER"
    paths = [_checkpoint(tmp_path / f"{name}.pt", build(marker)) for name, build in sorted(PAYLOADS.items())]
    digests = [sha256(p) for p in paths]
    r = run_cli("check", *paths, "--trust-pickle", "--quiet", cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and len(lines) == len(paths), r.stderr
    for path, line in zip(paths, lines):
        assert str(path) in line and "refuses" in line, line
    assert not marker.exists()
    assert [sha256(p) for p in paths] == digests


@pytest.mark.parametrize("name, reported", [
    ("push_pop", "os.system"), ("memo_shift", "os.system"), ("pop_mark", "os.system"), ("dup", "os.system"),
    ("memo_put", "os.system"), ("pkgutil_resolve_name", "pkgutil.resolve_name"), ("pydoc_locate", "pydoc.locate"),
    ("pydoc_pipepager", "pydoc.pipepager"), ("operator_attrgetter", "operator.attrgetter"),
    ("importlib_import_module", "importlib.import_module"), ("builtins_getattr", "builtins.getattr"),
    ("types_FunctionType", "types.FunctionType"), ("code_InteractiveInterpreter", "code.InteractiveInterpreter"),
    ("module_alias", "zipfile.os.system"), ("nested_pickle_loads", "pickle.loads"),
    ("proto0_global", "os.system"), ("proto0_inst", "os.system"), ("proto2_builtin_eval", "builtins.eval"),
    ("proto2_commands", "subprocess.getoutput"), ("obj_opcode", "os.system"),
])
def test_scan_names_the_real_global(tmp_path, name, reported):
    """The simulated stack and memo give the name the unpickler really imports (Python 2 names mapped)."""
    with pytest.raises(UnsafePickle, match=rf"references {reported}\b"):
        check_pickle(PAYLOADS[name](tmp_path / "MARKER"))


def test_old_scan_holes_are_closed(tmp_path):
    """The exact machine, not "the last two strings": what the old scan misread."""
    m = tmp_path / "M"
    assert pickle_globals(PAYLOADS["push_pop"](m)) == ["os.system"]
    assert pickle_globals(PAYLOADS["memo_shift"](m)) == ["os.system"]
    assert pickle_globals(PAYLOADS["pop_mark"](m)) == ["os.system"]


@pytest.mark.parametrize("payload, reason", [
    (P().s("os").raw(b"(").s("sys").raw(b"t\x93").done(), "computed value"),  # module from a tuple
    (P().sg("_codecs", "encode").call("os", "latin1").s("system").raw(b"\x93").done(), "computed value"),
    (P().raw(b"h\x05").done(), "memo entry 5"),
    (P().raw(b"0").done(), "no MARK"),
    (P().s("x").raw(b"\xff").done(), "unreadable"),  # not an opcode
    (P().s("x").done()[:-1], "STOP"),
    (b"\x80\x06N.", "protocol 6"),
    (P().raw(b"I0x10\n").done(), "unreadable"),  # CPython reads int("0x10", 0); pickletools cannot: refused
])
def test_what_the_scan_cannot_model_is_refused(payload, reason):
    with pytest.raises(UnsafePickle, match=reason):
        check_pickle(payload)


def test_extension_codes_resolve_through_copyreg(tmp_path):
    marker = tmp_path / "MARKER"
    payload = P(2).raw(b"\x82\xf0").call(_sh(marker)).done()  # EXT1 0xF0, then REDUCE
    with pytest.raises(UnsafePickle, match="unregistered extension code 240"):
        check_pickle(payload)
    import os

    copyreg.add_extension(os.system.__module__, "system", 0xF0)
    try:
        assert _runs(payload, marker)
        with pytest.raises(UnsafePickle, match=r"references posix\.system|references nt\.system"):
            check_pickle(payload)
        path = _checkpoint(tmp_path / "ext.pt", payload)
        with pytest.raises(InputError, match="refuses"):
            load_graph(path, trust_pickle=True)
    finally:
        copyreg.remove_extension(os.system.__module__, "system", 0xF0)
    assert not marker.exists()


def test_loader_refuses_what_resolves_to_a_refused_object(tmp_path, monkeypatch):
    """A name the scan allows (mymod.run_it) that is os.system under another name: refused while loading."""
    (tmp_path / "innocent_helpers.py").write_text("from os import system as run_it\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    marker = tmp_path / "MARKER"
    payload = P(2).g("innocent_helpers", "run_it").call(_sh(marker)).done()
    assert check_pickle(payload) == ["innocent_helpers.run_it"]
    with pytest.raises(UnsafePickle, match="system"):
        pickle_scan.guarded_loads(payload)
    with pytest.raises(InputError, match="refuses"):
        load_graph(_checkpoint(tmp_path / "alias.pt", payload), trust_pickle=True)
    assert not marker.exists()


@pytest.mark.parametrize("path", [
    "os.system", "os.path.join", "posixpath.join", "nt.system", "subprocess.Popen", "builtins.getattr",
    "builtins.__import__", "builtins.eval", "importlib.import_module", "importlib.util.find_spec",
    "pkgutil.resolve_name", "pydoc.locate", "types.CodeType", "code.interact", "runpy.run_path",
    "functools.reduce", "inspect.getmembers", "ctypes.CDLL", "sys.modules", "pickle.loads",
    "_pickle.loads", "marshal.loads", "shutil.rmtree", "socket.socket", "webbrowser.open", "_io.open", "io.open",
    "pathlib.Path", "tempfile.mkstemp", "zipimport.zipimporter", "multiprocessing.Process", "threading.Thread",
    "asyncio.create_subprocess_shell", "signal.signal", "codecs.open", "_codecs.decode", "numpy.load",
    "numpy.lib.npyio.load", "torch.load", "torch.serialization.load", "torch.hub.load", "torch.package.PackageImporter",
    "torch._C._jit_script_compile", "torch.ops.load_library", "torch.utils.cpp_extension.load_inline",
    "torch.fx.graph_module._exec_with_source", "torch.fx.graph_module.reduce_graph_module",
    "operator.attrgetter", "_operator.methodcaller", "operator.itemgetter", "collections.OrderedDict.__init__",
    "mypkg.models.__globals__", "tempfile._os.system", "copyreg.add_extension",
])
def test_refused_globals(path):
    assert refusal(path), path


@pytest.mark.parametrize("path", [
    "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "torch.Size",
    "torch.FloatStorage", "torch.device", "torch.float32", "torch.nn.modules.conv.Conv2d", "builtins.set",
    "builtins.frozenset", "builtins.slice", "_codecs.encode", "copyreg._reconstructor", "torch._C._nn.gelu",
    "numpy.core.multiarray._reconstruct", "numpy.dtype", "__main__.Net", "mypkg.models.ResNet",
    "torch.nn.parameter.Parameter", "torch._tensor._rebuild_from_type_v2", "torch.serialization._get_layout",
    "functools.partial",
])
def test_allowed_globals(path):
    assert refusal(path) is None, path


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)
        self.act = nn.functional.gelu  # pickles as torch._C._nn.gelu

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.mark.parametrize("what", ["module", "state_dict", "checkpoint", "transformer"])
@pytest.mark.parametrize("legacy", [False, True])
def test_real_torch_saves_scan_clean(tmp_path, what, legacy):
    from modellint.adapters.torch_files import checked_globals

    obj = {"module": Net(), "state_dict": Net().state_dict(), "transformer": nn.TransformerEncoderLayer(16, 2),
           "checkpoint": {"model": Net().state_dict(), "epoch": 3, "rng": torch.get_rng_state(),
                          "optimizer": torch.optim.Adam(Net().parameters()).state_dict()}}[what]
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    globs = checked_globals(buf.getvalue())
    assert "torch._utils._rebuild_tensor_v2" in globs or "torch._utils._rebuild_parameter" in globs
    torch.load(io.BytesIO(buf.getvalue()), weights_only=False, pickle_module=pickle_scan.guarded_pickle)


def test_trusted_module_loads_through_the_guarded_unpickler(tmp_path):
    model = Net()
    path = tmp_path / "whole.pt"
    torch.save(model, path, _use_new_zipfile_serialization=False)
    g = load_graph(path, trust_pickle=True, input_shape=(1, 3, 16, 16))
    assert g.trainable_params == sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------
# .pt2: every member torch.export.load would run code from
# ---------------------------------------------------------------------------

class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.relu(self.conv(x)) + torch.tensor([1.0]).sum()  # a lifted tensor constant


@pytest.fixture(scope="module")
def pt2_members(tmp_path_factory):
    path = tmp_path_factory.mktemp("pt2") / "small.pt2"
    torch.export.save(torch.export.export(Small().eval(), (torch.randn(1, 3, 8, 8),)), path)
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _torch_blob(payload: bytes) -> bytes:
    """A torch.save payload (what torch.load reads from a member) whose data.pkl is ``payload``."""
    return _checkpoint(io.BytesIO(), payload).getvalue()


def _config(members: dict, which: str) -> tuple:
    name = next(n for n in members if n.endswith(f"/data/{which}/model_{which}_config.json"))
    return name, json.loads(members[name])


def _use_pickle(which: str):
    def rewrite(members: dict, top: str, payload: bytes):
        name, cfg = _config(members, which)
        entry = next(iter(cfg["config"].values()))
        entry["use_pickle"] = True
        members[name] = json.dumps(cfg).encode()
        members[f"{top}/data/{which}/{entry['path_name']}"] = _torch_blob(payload)
    return rewrite


def _sample_inputs(members, top, payload):
    members[f"{top}/data/sample_inputs/model.pt"] = _torch_blob(payload)


def _opaque(members, top, payload):
    name, cfg = _config(members, "constants")
    key = next(iter(cfg["config"]))
    cfg["config"][key] = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}
    members[name] = json.dumps(cfg).encode()
    members[f"{top}/data/constants/opaque_obj_0"] = payload  # given to pickle.loads


def _legacy_weights(members, top, payload):
    members[f"{top}/data/weights/model.pt"] = _torch_blob(payload)  # read before the weights config


# vector -> (rewrite, payload builder): payloads use less famous callables than os.system
PT2_VECTORS = {
    "use_pickle_weight": (_use_pickle("weights"), PAYLOADS["pathlib_touch"]),
    "use_pickle_constant": (_use_pickle("constants"), PAYLOADS["builtins_exec"]),
    "sample_inputs": (_sample_inputs, PAYLOADS["io_FileIO"]),
    "opaque_obj_constant": (_opaque, PAYLOADS["pkgutil_resolve_name"]),
    "legacy_weights_model_pt": (_legacy_weights, PAYLOADS["code_InteractiveInterpreter"]),
}


def _write_pt2(path: Path, members: dict, change) -> Path:
    members = dict(members)
    top = next(iter(members)).split("/")[0]
    change(members, top)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _hostile_pt2(tmp_path, pt2_members, vector) -> tuple:
    rewrite, build = PT2_VECTORS[vector]
    marker = tmp_path / "MARKER"
    path = _write_pt2(tmp_path / f"{vector}.pt2", pt2_members, lambda m, top: rewrite(m, top, build(marker)))
    return path, marker


@pytest.mark.parametrize("vector", sorted(PT2_VECTORS))
def test_pt2_vector_runs_code_in_bare_torch_export_load(tmp_path, pt2_members, vector):
    """The threat is real: what modellint called before runs each payload."""
    path, marker = _hostile_pt2(tmp_path, pt2_members, vector)
    try:
        torch.export.load(str(path))
    except Exception:
        pass
    assert marker.exists(), f"torch.export.load no longer runs the {vector} payload"


@pytest.mark.parametrize("vector", sorted(PT2_VECTORS))
def test_pt2_vector_refused(tmp_path, pt2_members, vector):
    path, marker = _hostile_pt2(tmp_path, pt2_members, vector)
    before = sha256(path)
    for trust in (False, True):
        with pytest.raises(InputError) as info:
            load_graph(path, trust_pickle=trust)
        msg = str(info.value)
        assert msg.startswith(str(path)) and "\n" not in msg and "refuses" in msg, msg
    r = run_cli("check", path, "--trust-pickle", "--quiet", cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr and str(path) in lines[0], r.stderr
    assert "data/" in lines[0] and "refuses" in lines[0]  # names the member
    assert not marker.exists()
    assert sha256(path) == before


def test_pt2_member_guard_holds_without_the_prescan(tmp_path, pt2_members, monkeypatch):
    """Belt and braces: with the member pre-scan switched off, the guard around torch.export.load still refuses."""
    from modellint.adapters import torch_files

    monkeypatch.setattr(torch_files, "_prescan_pt2", lambda path, trust: None)
    marker = tmp_path / "MARKER"
    for vector in sorted(PT2_VECTORS):
        path, marker = _hostile_pt2(tmp_path, pt2_members, vector)
        for trust in (False, True):
            with pytest.raises(InputError, match="refuses|--trust-pickle"):
                load_graph(path, trust_pickle=trust)
            assert not marker.exists(), vector


def _sympy_payload(members, top, marker):
    name = f"{top}/models/model.json"
    program = json.loads(members[name])
    stack = [program]
    while stack:  # the first static size becomes an "expression"
        v = stack.pop()
        if isinstance(v, dict):
            sizes = v.get("sizes")
            if isinstance(sizes, list) and sizes and isinstance(sizes[0], dict) and "as_int" in sizes[0]:
                sizes[0] = {"as_expr": {"expr_str": f"__import__('pathlib').Path({str(marker)!r}).touch() or 1",
                                        "hint": {"as_int": 1}}}
                break
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    members[name] = json.dumps(program).encode()


def test_pt2_shape_expression_is_never_evaluated(tmp_path, pt2_members):
    """torch hands shape expressions to sympy.sympify, which evaluates Python."""
    marker = tmp_path / "MARKER"
    path = _write_pt2(tmp_path / "expr.pt2", pt2_members, lambda m, top: _sympy_payload(m, top, marker))
    try:
        torch.export.load(str(path))  # the control: a bare load runs it
    except Exception:
        pass
    assert marker.exists()
    marker.unlink()
    for trust in (False, True):
        with pytest.raises(InputError, match="not plain arithmetic"):
            load_graph(path, trust_pickle=trust)
    r = run_cli("check", path, "--trust-pickle", "--quiet", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not marker.exists()


@pytest.mark.parametrize("text, plain", [
    ("s0", True), ("2*s0 + 1", True), ("Max(1, s0)", True), ("FloorDiv(s0 - 1, 2) + 1", True),
    ("Eq(Mod(s77, 2), 0)", True), ("s0**2", True), ("-u1 + 3.5e-3", True),
    ("__import__('os')", False), ("s0.__class__", False), ("[s0]", False), ("lambda: 1", False),
    ("exec", False), ("1.real", False), ("9**9**9**9", False), ("s0 if s0 else 1", False),
])
def test_plain_shape_expressions(text, plain):
    from modellint.adapters.torch_files import plain_expression

    assert plain_expression(text) is plain


def test_pt2_compiled_code_is_refused(tmp_path, pt2_members):
    def add_library(members, top):
        members[f"{top}/data/aotinductor/model/model.so"] = b"\x7fELF not really"

    path = _write_pt2(tmp_path / "aoti.pt2", pt2_members, add_library)
    with pytest.raises(InputError, match="data/aotinductor/model/model.so is compiled code"):
        load_graph(path, trust_pickle=True)


def test_pt2_python_object_needs_trust(tmp_path, pt2_members):
    """A member that needs full unpickling but names nothing dangerous: refused without --trust-pickle, read with."""
    import fractions

    def sample_inputs(members, top):
        buf = io.BytesIO()
        torch.save(((fractions.Fraction(1, 2),), {}), buf)
        members[f"{top}/data/sample_inputs/model.pt"] = buf.getvalue()

    path = _write_pt2(tmp_path / "obj.pt2", pt2_members, sample_inputs)
    with pytest.raises(InputError) as info:
        load_graph(path)
    msg = str(info.value)
    assert "data/sample_inputs/model.pt needs full unpickling" in msg and "--trust-pickle" in msg, msg
    r = run_cli("check", path, "--quiet", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "data/sample_inputs/model.pt needs full unpickling" in r.stderr
    assert load_graph(path, trust_pickle=True).total_params == 3 * 4 * 9 + 4


def test_ordinary_pt2_reads_as_before(tmp_path):
    """No --trust-pickle needed, and the same graph as torch.export.load straight into the adapter."""
    from modellint.adapters.torch_live import graph_from_exported_program

    path = tmp_path / "net.pt2"
    model = Net().eval()
    torch.export.save(torch.export.export(model, (torch.randn(1, 3, 16, 16),)), path)
    with zipfile.ZipFile(path) as zf:  # an ordinary save pickles its sample inputs (tensors only)
        assert any(n.endswith("data/sample_inputs/model.pt") for n in zf.namelist())
    g = load_graph(path)
    ref = graph_from_exported_program(torch.export.load(str(path)))
    assert [n.to_dict() for n in g] == [n.to_dict() for n in ref]
    assert g.trainable_params == sum(p.numel() for p in model.parameters())


def test_broken_pt2_is_one_line(tmp_path, pt2_members):
    """torch logs a traceback when it fails to read an archive: none of it reaches stderr."""
    def drop_weight(members, top):
        del members[f"{top}/data/weights/weight_0"]

    path = _write_pt2(tmp_path / "broken.pt2", pt2_members, drop_weight)
    r = run_cli("check", path, "--quiet", cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr and str(path) in lines[0], r.stderr


# ---------------------------------------------------------------------------
# TorchScript: what torch.jit.load runs, and what it would allocate or recurse on
# ---------------------------------------------------------------------------

class SaveOnLoad(nn.Module):
    """Its TorchScript __setstate__ (run by torch.jit.load) writes a file: torch.save is aten::save."""

    def __init__(self, marker: str = ""):
        super().__init__()
        self.w = torch.zeros(2)
        self.marker = marker

    def forward(self, x):
        return x + self.w

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
        return (self.w, self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        self.w = state[0]
        self.marker = state[1]
        self.training = state[2]
        torch.save(self.w, self.marker)


class SetStateOnLoad(nn.Module):
    """A harmless TorchScript __setstate__: still code from the file, run while loading."""

    def __init__(self):
        super().__init__()
        self.w = torch.zeros(2)

    def forward(self, x):
        return x + self.w

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, bool]:
        return (self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]) -> None:
        self.w = state[0] * 2
        self.training = state[1]


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    """An ordinary scripted CNN saved by torch.jit.save."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    path = tmp_path_factory.mktemp("ts") / "net.pt"
    torch.jit.save(torch.jit.script(model.eval()), str(path))
    return path


def _ts_rewrite(src: Path, dst: Path, members: dict) -> Path:
    """``src`` with the members named (below the archive's folder) in ``members`` replaced, compression kept."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            new = members.get(info.filename.split("/", 1)[1])
            zout.writestr(info, zin.read(info) if new is None else new)
    return dst


def _ts_refused(path: Path, *, trust: bool, match: str) -> str:
    before = sha256(path)
    with pytest.raises(InputError) as info:
        load_graph(path, trust_pickle=trust, input_shape=(1, 3, 16, 16))
    msg = str(info.value)
    assert msg.startswith(str(path)) and "\n" not in msg, msg
    assert match in msg, msg
    assert sha256(path) == before
    return msg


def _bare_jit_load(path: Path):
    try:
        torch.jit.load(str(path))
    except Exception as exc:
        return exc
    return None


def _opaque_data_pkl(payload: bytes) -> bytes:
    """data.pkl whose root is an aten.OpaqueObject: its C++ __setstate__ base64-decodes the string and
    hands it to pickle.loads."""
    import base64

    return P(2).g("__torch__.torch.classes.aten", "OpaqueObject").raw(b")\x81").s(base64.b64encode(payload).decode()) \
        .raw(b"b").done()


@pytest.mark.parametrize("member", ["data.pkl", "constants.pkl"])
def test_torchscript_python_globals_are_not_resolved_by_torch_and_refused(tmp_path, scripted, member):
    """torch.jit.load's C++ unpickler imports no Python: os.system in data.pkl is 'Unknown type name'.
    modellint refuses the name before torch sees it, naming the member and the global."""
    marker = tmp_path / "MARKER"
    payload = P(2).g("os", "system").call(_sh(marker)).done()
    path = _ts_rewrite(scripted, tmp_path / "hostile.pt", {member: payload})
    exc = _bare_jit_load(path)
    assert exc is not None and "Unknown type name 'os.system'" in str(exc)
    assert not marker.exists()
    for trust in (False, True):
        msg = _ts_refused(path, trust=trust, match=f"{member}: the pickle references os.system, which can run commands")
        assert msg.endswith("modellint refuses to load it (nothing from the file was executed)")
    assert not marker.exists()


def test_torchscript_opaque_object_runs_python_in_bare_jit_load_and_is_refused(tmp_path, scripted):
    """aten.OpaqueObject's __setstate__ is pickle.loads of a base64 string: Python code from data.pkl."""
    marker = tmp_path / "MARKER"
    path = _ts_rewrite(scripted, tmp_path / "opaque.pt", {"data.pkl": _opaque_data_pkl(PAYLOADS["io_FileIO"](marker))})
    _bare_jit_load(path)
    assert marker.exists(), "torch.jit.load no longer unpickles an OpaqueObject's state"
    marker.unlink()
    _ts_refused(path, trust=False, match="data.pkl holds aten.OpaqueObject, whose state is a pickled Python object")
    _ts_refused(path, trust=True, match="the pickle references _io.FileIO, which can run commands")
    r = run_cli("check", path, "--trust-pickle", "--input-shape", "1,3,16,16", "--quiet", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert not marker.exists()


def test_torchscript_guard_holds_without_the_prescan(tmp_path, scripted, monkeypatch):
    """With the pre-scan switched off, pickle.loads is still held to the scan during torch.jit.load."""
    from modellint.adapters import torch_files

    monkeypatch.setattr(torch_files, "_prescan_torchscript", lambda path, trust: None)
    marker = tmp_path / "MARKER"
    path = _ts_rewrite(scripted, tmp_path / "opaque.pt", {"data.pkl": _opaque_data_pkl(PAYLOADS["io_FileIO"](marker))})
    for trust in (False, True):
        with pytest.raises(InputError, match="refuses|--trust-pickle"):
            load_graph(path, trust_pickle=trust, input_shape=(1, 3, 16, 16))
        assert not marker.exists()


def test_torchscript_setstate_writes_files_in_bare_jit_load_and_is_refused(tmp_path):
    """TorchScript __setstate__ runs while loading, and torch.save (aten::save) writes any path."""
    marker = tmp_path / "MARKER"
    path = tmp_path / "save_on_load.pt"
    torch.jit.save(torch.jit.script(SaveOnLoad(str(marker))), str(path))
    assert not marker.exists()
    _bare_jit_load(path)
    assert marker.exists(), "torch.jit.load no longer runs TorchScript __setstate__"
    marker.unlink()
    for trust in (False, True):
        msg = _ts_refused(path, trust=trust, match="calls save, a TorchScript builtin that reads or writes files")
        assert ": code/__torch__/" in msg, msg  # names the member
    assert not marker.exists()


def test_torchscript_setstate_needs_trust(tmp_path):
    path = tmp_path / "setstate.pt"
    torch.jit.save(torch.jit.script(SetStateOnLoad()), str(path))
    msg = _ts_refused(path, trust=False, match="defines __setstate__, TorchScript from the file that torch.jit.load "
                                               "runs while loading; pass --trust-pickle")
    assert ": code/__torch__/" in msg
    g = load_graph(path, trust_pickle=True, input_shape=(1, 2))
    assert g.source_format == "torchscript"


def test_torchscript_memo_index_and_string_length_refused_in_bounded_memory(tmp_path, scripted):
    """The C++ unpickler sizes its memo table by the index it is given (LONG_BINPUT 2**32-16: 64 GiB) and
    allocates a string's declared length before reading it (2 GiB here). Refused from the bytes, in a
    process whose peak stays small."""
    memo_pkl = b"\x80\x02Nr" + struct.pack("<I", 0xFFFFFFF0) + b"."  # None, LONG_BINPUT 2**32-16
    memo = _ts_rewrite(scripted, tmp_path / "memo.pt", {"data.pkl": memo_pkl})
    _ts_refused(memo, trust=True, match="data.pkl: memo index 4294967280 with 0 entries stored")
    text_pkl = b"\x80\x02X" + struct.pack("<I", 0x7FFFFFF0) + b"ab."  # BINUNICODE of 2 GiB, 2 bytes there
    text = _ts_rewrite(scripted, tmp_path / "text.pt", {"data.pkl": text_pkl})
    _ts_refused(text, trust=True, match="data.pkl: unreadable pickle at byte 0 (ValueError: expected 2147483632 "
                                        "bytes in a unicodestring4, but only 3 remain)")
    code = ("import re, sys; from modellint.cli import main; rc = main(sys.argv[1:]); "  # VmHWM: this process's peak
            "print(rc, re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1))")
    for path in (memo, text):
        proc = subprocess.run([sys.executable, "-c", code, "check", str(path), "--input-shape", "1,3,16,16",
                               "--trust-pickle", "--quiet"], capture_output=True, text=True, timeout=300)
        rc, peak_kib = proc.stdout.split()
        assert rc == "2" and "Traceback" not in proc.stderr, proc.stderr
        assert int(peak_kib) < 400 << 10, f"{path.name}: peak RSS {int(peak_kib) >> 10} MiB"


def test_torchscript_deep_nesting_crashes_bare_torch_and_is_refused(tmp_path, scripted):
    """torch's type-string parser recurses once per bracket: 5,000 deep is a segfault."""
    deep = "List[" * 5000 + "int" + "]" * 5000
    pkl = P(2).g("torch.jit._pickle", "restore_type_tag").raw(b"(]").s(deep).raw(b"tR").done()
    path = _ts_rewrite(scripted, tmp_path / "deep.pt", {"data.pkl": pkl})
    proc = subprocess.run([sys.executable, "-c", "import sys, torch; torch.jit.load(sys.argv[1])", str(path)],
                          capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGSEGV, (proc.returncode, proc.stderr[-500:])
    _ts_refused(path, trust=True, match="data.pkl: a string nests brackets more than 100 deep")
    with zipfile.ZipFile(scripted) as zf:
        source = zf.read(next(n for n in zf.namelist() if n.endswith("/code/__torch__/torch/nn/modules/container.py")))
    nested = source.replace(b"  return", b"  _deep = " + b"(" * 150 + b"1" + b")" * 150 + b"\n  return", 1)
    assert nested != source
    path = _ts_rewrite(scripted, tmp_path / "deep_code.pt", {"code/__torch__/torch/nn/modules/container.py": nested})
    _ts_refused(path, trust=True, match="code/__torch__/torch/nn/modules/container.py: nests brackets more than 100")


def test_torchscript_member_caps(tmp_path, scripted, monkeypatch):
    """Past the caps, the member is named: what torch would inflate, and what modellint reads."""
    from modellint.adapters import torch_files

    with zipfile.ZipFile(scripted) as zf:
        biggest = max((i for i in zf.infolist() if i.compress_type != zipfile.ZIP_STORED), key=lambda i: i.file_size)
        data_pkl = zf.getinfo(next(n for n in zf.namelist() if n.endswith("/data.pkl")))
    monkeypatch.setattr(torch_files, "MAX_INFLATED_MEMBER", biggest.file_size - 1)
    _ts_refused(scripted, trust=True, match=f"refused: {biggest.filename} is {biggest.file_size:,} bytes compressed "
                                            f"to {biggest.compress_size:,}, more than the 0 MiB modellint lets torch "
                                            "inflate")
    monkeypatch.setattr(torch_files, "MAX_INFLATED_MEMBER", 256 << 20)
    monkeypatch.setitem(torch_files.MEMBER_CAPS, "pickle", 100)
    _ts_refused(scripted, trust=True, match=f"refused: {data_pkl.filename} is {data_pkl.file_size:,} bytes "
                                            "uncompressed, more than the 0 KiB modellint reads (a zip bomb?)")


def test_scripted_and_traced_models_still_load(tmp_path, scripted):
    """No --trust-pickle needed, and the same graph as torch.jit.load straight into the adapter."""
    from modellint.adapters.torch_live import graph_from_torchscript

    ref = graph_from_torchscript(torch.jit.load(str(scripted)), input_shape=(1, 3, 16, 16))
    for trust in (False, True):
        g = load_graph(scripted, trust_pickle=trust, input_shape=(1, 3, 16, 16))
        assert [n.to_dict() for n in g] == [n.to_dict() for n in ref]
        assert g.trainable_params == 3 * 4 * 9 + 4 + 4 * 2 + 2
    traced = tmp_path / "traced.pt"
    torch.jit.save(torch.jit.trace(nn.TransformerEncoderLayer(16, 2, batch_first=True).eval(), torch.randn(1, 5, 16),
                                   check_trace=False), str(traced))
    r = run_cli("summary", traced, "--input-shape", "1,5,16", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------------
# --trust-pickle: torch.relu-style attributes (builtins.getattr on a torch function table) and partial
# ---------------------------------------------------------------------------

class Acts(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = torch.relu  # pickles as getattr(torch._C._VariableFunctionsClass, "relu")
        self.gate = torch.Tensor.sigmoid  # getattr(torch._C.TensorBase, "sigmoid")
        self.leaky = functools.partial(nn.functional.leaky_relu, negative_slope=0.1)

    def forward(self, x):
        return self.leaky(self.gate(self.act(self.fc(x))))


@pytest.mark.parametrize("legacy", [False, True])
def test_trusted_module_with_torch_function_attributes_loads(tmp_path, legacy):
    model = Acts()
    path = tmp_path / "acts.pt"
    torch.save(model, path, _use_new_zipfile_serialization=not legacy)
    from modellint.adapters.torch_files import checked_globals

    globs = checked_globals(path.read_bytes())
    assert {"torch.relu", "torch.Tensor.sigmoid", "functools.partial"} <= set(globs), globs
    assert "builtins.getattr" not in globs and "torch._C._VariableFunctionsClass" not in globs
    with pytest.raises(InputError, match="holds a pickled Python object"):
        load_graph(path)
    g = load_graph(path, trust_pickle=True, input_shape=(1, 4))
    assert g.trainable_params == 20


def _array_body() -> bytes:
    """The opcodes of a pickled numpy uint8 array (no PROTO, no STOP): an allowed object with a file method."""
    np = pytest.importorskip("numpy")
    return pickle.dumps(np.zeros(1, dtype="u1"), protocol=2)[2:-1]


def _getattr_payloads(marker: Path) -> dict:
    """getattr used outside its one allowed shape; the first three write the marker under pickle.loads."""
    tofile = b"(" + _array_body() + P(0).s("tofile").raw(b"tR").b + P(0).args(str(marker)).raw(b"R").b
    relu = P(0).g("builtins", "getattr").raw(b"q\xf0").g("torch._C", "_VariableFunctionsClass").s("relu") \
        .raw(b"\x86R0").b  # getattr(torch function table, "relu"), getattr kept in memo 240, the result popped
    return {
        # getattr on an allowed object (a numpy array) whose method writes a file
        "array_tofile": P(2).g("builtins", "getattr").raw(tofile).done(),
        # the same getattr first used as allowed, then, from the memo, on the array
        "memo_reuse": P(2).raw(relu + b"h\xf0" + tofile).done(),
        # a file builtin of the torch function table, by name
        "from_file": P(2).g("builtins", "getattr").g("torch._C", "_VariableFunctionsClass").s("from_file")
        .raw(b"\x86R(").s(str(marker)).raw(b"\x88K\x01tR").done(),  # from_file(marker, True, 1) creates it
        # the target class handed to something else than getattr
        "target_escapes": P(2).g("builtins", "getattr").raw(b"(").g("torch._C", "_VariableFunctionsClass").raw(b"q\xf1")
        .s("relu").raw(b"tR0h\xf1").done(),
        # a private name: not a public torch function
        "private_name": P(2).g("builtins", "getattr").g("torch._C", "_VariableFunctionsClass").s("__class__")
        .raw(b"\x86R").done(),
    }


@pytest.mark.parametrize("name, reported", [
    ("array_tofile", "builtins.getattr"), ("memo_reuse", "builtins.getattr"), ("from_file", "torch.from_file"),
    ("target_escapes", "torch._C._VariableFunctionsClass"), ("private_name", "builtins.getattr"),
])
def test_getattr_outside_torch_function_tables_is_refused(tmp_path, name, reported):
    marker = tmp_path / "MARKER"
    payload = _getattr_payloads(marker)[name]
    if name in ("array_tofile", "memo_reuse", "from_file"):
        assert _runs(payload, marker), "the payload must really run under pickle.loads"
    with pytest.raises(UnsafePickle, match=rf"references {re.escape(reported)}\b"):
        check_pickle(payload)
    if name != "target_escapes":  # the class alone is harmless: only the scan, which lists it, refuses it
        with pytest.raises(UnsafePickle):  # the loader's own getattr, without the scan
            pickle_scan.guarded_loads(payload)
    path = _checkpoint(tmp_path / f"{name}.pt", payload)
    with pytest.raises(InputError, match="refuses"):
        load_graph(path, trust_pickle=True)
    assert not marker.exists()


def test_loader_getattr_refuses_what_the_scan_would(tmp_path):
    """The getattr the guarded unpickler hands out checks the real objects."""
    np = pytest.importorskip("numpy")
    from modellint.adapters.pickle_scan import _torch_getattr

    assert _torch_getattr(torch._C._VariableFunctionsClass, "relu") is torch.relu
    assert _torch_getattr(torch.Tensor, "add") is torch.Tensor.add
    for obj, attr in [(np.zeros(1), "tofile"), (torch._C._VariableFunctionsClass, "from_file"),
                      (torch._C._VariableFunctionsClass, "_C"), (torch.nn.Module, "load_state_dict")]:
        with pytest.raises(UnsafePickle):
            _torch_getattr(obj, attr)
    with pytest.raises(UnsafePickle):
        _torch_getattr(torch._C._VariableFunctionsClass, "relu", None)
