"""Hostile PyTorch files: nothing from the file runs, whatever the flags.

Every payload here creates a marker file if it ever runs. The pickle payloads are
hand-assembled opcodes, and each is first shown to run under a plain ``pickle.loads``
(so a test that passes because the payload was broken cannot happen); the ``.pt2``
vectors are real archives written by ``torch.export.save`` with one member rewritten,
and are shown to run under a bare ``torch.export.load``.
"""

from __future__ import annotations

import copyreg
import io
import json
import marshal
import pickle
import shlex
import struct
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
    "functools.partial", "functools.reduce", "inspect.getmembers", "ctypes.CDLL", "sys.modules", "pickle.loads",
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
