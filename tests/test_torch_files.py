"""PyTorch files: classification by zip members, refusals that explain, no code run."""

from __future__ import annotations

import importlib
import os
import zipfile

import pytest

from modellint.adapters.pickle_scan import pickle_globals
from modellint.adapters.torch_files import classify, read_torch_file
from modellint.errors import InputError


def _have(mod: str) -> bool:
    try:
        importlib.import_module(mod)
    except Exception:
        return False
    return True


HAVE_TORCH = _have("torch")
needs_torch = [pytest.mark.torch, pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch not installed")]


def _torch_live_reason():
    if not HAVE_TORCH:
        return "PyTorch not installed"
    try:
        live = importlib.import_module("modellint.adapters.torch_live")
    except Exception as exc:
        return f"modellint.adapters.torch_live not importable yet ({type(exc).__name__}: {exc})"
    missing = [f for f in ("graph_from_module", "graph_from_exported_program", "graph_from_torchscript")
               if not hasattr(live, f)]
    return f"torch_live lacks {', '.join(missing)}" if missing else None


def needs_live(fn):
    reason = _torch_live_reason()
    fn = pytest.mark.torch(fn)
    return pytest.mark.skipif(reason is not None, reason=reason or "")(fn)


if HAVE_TORCH:
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            x = torch.relu(self.bn(self.conv(x)))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    class Evil:
        """Unpickling this runs a shell command."""

        def __init__(self, cmd):
            self.cmd = cmd

        def __reduce__(self):
            return os.system, (self.cmd,)


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------
# classification (zip member names)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("names, kind", [
    (["m/data.pkl", "m/.format_version", "m/byteorder", "m/data/0", "m/version"], "pickle_zip"),
    (["m/data.pkl", "m/constants.pkl", "m/code/__torch__/x.py", "m/version"], "torchscript"),
    (["m/archive_format", "m/models/model.json", "m/data/weights/weight_0", "m/byteorder"], "pt2"),
    (["foo/bar.txt", "baz"], "unknown"),
])
def test_classify_by_members(tmp_path, names, kind):
    path = tmp_path / "f.pt"
    with zipfile.ZipFile(path, "w") as zf:
        for n in names:
            zf.writestr(n, b"x")
    assert classify(path)[0] == kind


def test_random_zip_is_input_error(tmp_path):
    path = tmp_path / "random.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
        zf.writestr("sub/data.bin", os.urandom(64))
    with pytest.raises(InputError, match="neither a Keras .keras archive nor a PyTorch checkpoint"):
        read_torch_file(path)


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(b"hello world")
    with pytest.raises(InputError, match="not a PyTorch file"):
        read_torch_file(path)


@pytest.mark.onnx
def test_truncated_onnx_is_input_error(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from modellint.adapters.onnx_file import read_onnx

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]))
    data = model.SerializeToString()
    assert data[:1] == b"\x08"  # ir_version, field 1 varint: what a sniffer sees
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) - 5])
    with pytest.raises(InputError, match="not a readable ONNX model"):
        read_onnx(path)
    assert onnx  # imported


# ---------------------------------------------------------------------------
# pickles
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("wrap", ["plain", "nested", "legacy"])
@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch not installed")
def test_state_dict_explains_module_factory(tmp_path, wrap):
    sd = Net().state_dict()
    path = tmp_path / "weights.pt"
    if wrap == "nested":
        torch.save({"model_state_dict": sd, "epoch": 3}, path)
    else:
        torch.save(sd, path, _use_new_zipfile_serialization=(wrap != "legacy"))
    assert classify(path)[0] == ("pickle" if wrap == "legacy" else "pickle_zip")
    with pytest.raises(InputError) as info:
        read_torch_file(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    assert "state_dict" in msg and "module:factory" in msg and "--input-shape" in msg


@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch not installed")
def test_whole_module_refused_without_trust(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(Net(), path)
    with pytest.raises(InputError) as info:
        read_torch_file(path)
    msg = str(info.value)
    assert "--trust-pickle" in msg and "runs code" in msg and "Net" in msg


@needs_live
def test_whole_module_accepted_with_trust(tmp_path):
    model = Net()
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    g = read_torch_file(path, trust_pickle=True, input_shape=(1, 3, 32, 32))
    assert g.trainable_params == _params(model)
    assert g.source_path == str(path) and g.source_format == "pickle"


@pytest.mark.parametrize("trust", [False, True])
@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch not installed")
def test_hostile_pickle_never_runs(tmp_path, trust):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weights": torch.zeros(3), "payload": Evil(f"touch {target}")}, path)
    assert any(g.endswith(".system") for g in pickle_globals(zipfile.ZipFile(path).read("evil/data.pkl")))
    with pytest.raises(InputError) as info:
        read_torch_file(path, trust_pickle=trust)
    msg = str(info.value)
    assert f"{os.system.__module__}.system" in msg  # posix.system on Linux
    assert "refuses" in msg
    assert not target.exists()


@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch not installed")
def test_hostile_legacy_pickle_never_runs(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "evil_legacy.pt"
    torch.save(Evil(f"touch {target}"), path, _use_new_zipfile_serialization=False)
    with pytest.raises(InputError, match="system"):
        read_torch_file(path, trust_pickle=True)
    assert not target.exists()


@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch not installed")
def test_damaged_checkpoint_is_input_error(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(Net().state_dict(), good)
    data = good.read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        read_torch_file(bad)


# ---------------------------------------------------------------------------
# TorchScript and torch.export round trips (need the torch_live adapter)
# ---------------------------------------------------------------------------

@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch not installed")
def test_zip_members_of_real_files(tmp_path):
    model = Net().eval()
    ts, ep, sd = tmp_path / "ts.pt", tmp_path / "ep.pt2", tmp_path / "sd.pth"
    torch.jit.save(torch.jit.script(model), ts)
    torch.export.save(torch.export.export(model, (torch.randn(1, 3, 16, 16),)), ep)
    torch.save(model.state_dict(), sd)
    assert classify(ts)[0] == "torchscript"
    assert classify(ep)[0] == "pt2"
    assert classify(sd) == ("pickle_zip", "sd/data.pkl")


@needs_live
def test_torchscript_round_trip(tmp_path):
    model = Net().eval()
    path = tmp_path / "ts.pt"
    torch.jit.save(torch.jit.script(model), path)
    g = read_torch_file(path, input_shape=(1, 3, 32, 32))
    assert g.trainable_params == _params(model)
    assert g.source_format == "torchscript" and g.source_path == str(path)


@needs_live
def test_exported_program_round_trip(tmp_path):
    model = Net().eval()
    path = tmp_path / "ep.pt2"
    torch.export.save(torch.export.export(model, (torch.randn(1, 3, 32, 32),)), path)
    g = read_torch_file(path)
    assert g.trainable_params == _params(model)
    assert g.source_format == "pt2" and g.source_path == str(path)


@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch not installed")
@pytest.mark.parametrize("case", ["truncated_onnx", "random_zip", "hostile_pickle", "state_dict", "bad_target"])
def test_cli_bad_torch_inputs_one_line_exit_2(tmp_path, case):
    """Through the command line: one line naming the file, exit 2, nothing executed or written."""
    from conftest import run_cli, sha256

    target = tmp_path / "pwned"
    if case == "truncated_onnx":
        path = tmp_path / "model.onnx"
        path.write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x03" + b"\x00" * 5)
    elif case == "random_zip":
        path = tmp_path / "model.pt"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("random/thing.bin", b"123")
    elif case == "hostile_pickle":
        path = tmp_path / "evil.pt"
        torch.save({"payload": Evil(f"touch {target}")}, path)
    elif case == "state_dict":
        path = tmp_path / "weights.pth"
        torch.save(Net().state_dict(), path)
    else:
        path = "no_such_pkg_xyz.models:build"
    before = sha256(path) if case != "bad_target" else None
    listing = sorted(os.listdir(tmp_path))
    r = run_cli("check", path, "--trust-pickle" if case == "hostile_pickle" else "--quiet", cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr and str(path) in lines[0], r.stderr
    assert not target.exists()
    assert sorted(os.listdir(tmp_path)) == listing
    if before:
        assert sha256(path) == before
