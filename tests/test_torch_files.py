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


# ---------------------------------------------------------------------------
# a wrong --input-shape, checked against the weights the file stores (issue 11)
# ---------------------------------------------------------------------------

if HAVE_TORCH:
    class Small(nn.Module):
        """3 channels in; its Linear was sized for a 16×16 input (16 channels × 4×4 = 256 features)."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
            self.pool = nn.MaxPool2d(4)
            self.flat = nn.Flatten()
            self.fc = nn.Linear(256, 10)

        def forward(self, x):
            return self.fc(self.flat(self.pool(torch.relu(self.conv1(x)))))

    class LeNet(nn.Module):
        """The classic flatten: ``x.view(-1, 16 * 5 * 5)``, sized for 32×32."""

        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
            self.f1 = nn.Linear(16 * 5 * 5, 10)

        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self.c1(x)), 2)
            x = nn.functional.max_pool2d(torch.relu(self.c2(x)), 2)
            return self.f1(x.view(-1, 16 * 5 * 5))


def _scripted(model, path, how, example):
    model = model.eval()
    torch.jit.save(torch.jit.trace(model, example) if how == "trace" else torch.jit.script(model), path)
    return path


@needs_live
@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_input_shape_checked_against_the_weights(tmp_path, how):
    path = _scripted(Small(), tmp_path / "small.pt", how, torch.randn(1, 3, 16, 16))
    with pytest.raises(InputError) as info:
        read_torch_file(path, input_shape=(1, 1, 32, 32))
    assert str(path) in str(info.value)
    assert info.value.problem == ("--input-shape 1,1,32,32: Conv2d `conv1` expects 3 input channels "
                                  "(its weight is 16×3×3×3), the input has 1")
    with pytest.raises(InputError) as info:
        read_torch_file(path, input_shape=(1, 3, 32, 32))
    assert info.value.problem == ("--input-shape 1,3,32,32: Linear `fc` expects 256 input features "
                                  "(its weight is 10×256), the input shape gives it 1024 (`flat` outputs 1×1024)")
    for shape in ((1, 3, 16, 16), (8, 3, 16, 16)):  # the right shape, any batch, still loads
        g = read_torch_file(path, input_shape=shape)
        assert g["fc"].output_shape == (None, 10) and g.trainable_params == _params(Small())


@needs_live
@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_reshape_torch_would_refuse(tmp_path, how):
    """``x.view(-1, 400)`` after a 28×28 input: 256 values a sample, which torch cannot view as rows of 400."""
    path = _scripted(LeNet(), tmp_path / "lenet.pt", how, torch.randn(1, 1, 32, 32))
    with pytest.raises(InputError) as info:
        read_torch_file(path, input_shape=(1, 1, 28, 28))
    assert info.value.problem == ("--input-shape 1,1,28,28: `view` reshapes 16×4×4 (256 values a sample) into "
                                  "blocks of 400, which torch refuses: 256 values are no multiple of 400")
    with pytest.raises(InputError, match="Conv2d `c1` expects 1 input channel "):
        read_torch_file(path, input_shape=(1, 3, 32, 32))
    g = read_torch_file(path, input_shape=(2, 1, 32, 32))
    assert g["f1"].output_shape == (None, 10)
    assert not [n for n in g.notes if "rows" in n]
    # 25 samples of 256 values are 16 rows of 400: torch runs it, the graph says so
    g = read_torch_file(path, input_shape=(25, 1, 28, 28))
    assert any("a batch of 25 becomes 16 rows" in n for n in g.notes), g.notes


@needs_live
@pytest.mark.parametrize("model, good, bad, problem", [
    ("depthwise", (1, 8, 16, 16), (1, 4, 16, 16),
     "Conv2d `0` expects 8 input channels (its weight is 8×1×3×3, groups=8), the input has 4"),
    ("transposed", (1, 4, 8, 8), (1, 3, 8, 8),
     "ConvTranspose2d `0` expects 4 input channels (its weight is 4×8×2×2), the input has 3"),
    ("tabular", (4, 20), (4, 21), "BatchNorm1d `0` expects 20 channels (its weight has 20), the input has 21"),
    ("lstm", (2, 5, 12), (2, 5, 10),
     "LSTM `0` expects 12 input features (its weight_ih_l0 is 64×12), the input has 10"),
])
def test_torchscript_shape_check_layer_kinds(tmp_path, model, good, bad, problem):
    net = {"depthwise": lambda: nn.Sequential(nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 16, 1)),
           "transposed": lambda: nn.Sequential(nn.ConvTranspose2d(4, 8, 2, stride=2), nn.GroupNorm(2, 8)),
           "tabular": lambda: nn.Sequential(nn.BatchNorm1d(20), nn.Linear(20, 5)),
           "lstm": lambda: nn.Sequential(nn.LSTM(12, 16, batch_first=True))}[model]()
    path = _scripted(net, tmp_path / "m.pt", "script", torch.randn(good))
    read_torch_file(path, input_shape=good)
    with pytest.raises(InputError) as info:
        read_torch_file(path, input_shape=bad)
    assert info.value.problem == f"--input-shape {','.join(map(str, bad))}: {problem}"


@needs_live
def test_shape_check_trusts_no_misread_layer(tmp_path):
    """A traced nn.MultiheadAttention keeps no attributes and is read as its 48-wide input projection:
    the LayerNorm after it seems fed 48 features. That is the reader's guess, not the input's fault: a
    right shape loads; a wrong one is still refused where it enters."""
    path = tmp_path / "enc.pt"
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True).eval()
    torch.jit.save(torch.jit.trace(layer, torch.randn(1, 5, 16), check_trace=False), path)
    for shape in ((1, 5, 16), (2, 7, 16)):
        read_torch_file(path, input_shape=shape)
    with pytest.raises(InputError) as info:
        read_torch_file(path, input_shape=(1, 5, 12))
    assert info.value.problem == ("--input-shape 1,5,12: MultiheadAttention `self_attn` expects 16 query features "
                                  "(its in_proj_weight is 48×16), the input has 12")


@needs_live
def test_pt2_input_shape_must_agree_with_the_export(tmp_path):
    path = tmp_path / "ep.pt2"
    torch.export.save(torch.export.export(Small().eval(), (torch.randn(1, 3, 16, 16),)), path)
    assert read_torch_file(path, input_shape=(1, 3, 16, 16))["fc"].output_shape == (None, 10)
    with pytest.raises(InputError) as info:
        read_torch_file(path, input_shape=(1, 1, 32, 32))
    assert info.value.problem == ("--input-shape 1,1,32,32: this .pt2 was exported for input `x` of N×3×16×16 "
                                  "and holds no other shapes; leave out --input-shape, or export again with "
                                  "this shape")


@pytest.mark.torch
@pytest.mark.skipif(_torch_live_reason() is not None, reason=_torch_live_reason() or "")
def test_cli_wrong_input_shape_one_line_exit_2(tmp_path):
    from conftest import run_cli

    path = _scripted(Small(), tmp_path / "small.pt", "script", None)
    r = run_cli("check", path, "--input-shape", "1,1,32,32", "--quiet", cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert str(path) in lines[0] and "Conv2d `conv1` expects 3 input channels" in lines[0]
    r = run_cli("check", path, "--input-shape", "1,3,16,16", "--quiet", cwd=tmp_path)
    assert r.returncode in (0, 1), (r.stdout, r.stderr)
