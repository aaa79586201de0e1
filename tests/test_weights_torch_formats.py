"""Weights of a ``torch.export`` archive (``.pt2``) and of a ``.safetensors`` state_dict with a
code target (issue 14). The truth is what was planted where: NaN in one layer's weight is
found by ML961 in that layer and nowhere else; the same model untouched raises no ML961.
The safetensors reader (header and bytes with numpy) is checked against the safetensors
library's own reader and torch's bfloat16, and a damaged file is one line, exit 2."""

from __future__ import annotations

import json
import struct
import sys

import numpy as np
import pytest

from conftest import run_cli

torch = pytest.importorskip("torch")

MODULE = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.blk = nn.Sequential(nn.Conv2d(8, 16, 3), nn.ReLU())
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = torch.relu(self.bn1(self.c1(x)))
        return self.fc(self.blk(x).mean((2, 3)))


def build():
    return Net()
'''


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("wfmt")
    (d / "wnet.py").write_text(MODULE)
    sys.path.insert(0, str(d))
    try:
        import wnet
    finally:
        sys.path.remove(str(d))
    torch.manual_seed(0)
    model = wnet.build().eval()
    example = (torch.zeros(1, 1, 16, 16),)
    torch.export.save(torch.export.export(model, example), str(d / "clean.pt2"))
    with torch.no_grad():
        model.blk[0].weight.view(-1)[:3] = float("nan")
    torch.export.save(torch.export.export(model, example), str(d / "nan.pt2"))
    try:
        from safetensors.torch import save_file
    except ImportError:
        save_file = None
    if save_file is not None:
        save_file(model.state_dict(), str(d / "nan.safetensors"))
    return d, model


def _ml961(r):
    assert r.returncode in (0, 1), r.stderr
    return sorted({line.split(": ML961")[0].rsplit(":", 1)[-1] for line in r.stdout.splitlines()
                   if ": ML961 " in line})


def test_pt2_weights_nan_found_in_its_layer(files):
    d, _ = files
    assert _ml961(run_cli("check", d / "nan.pt2", "--select", "ML961")) == ["blk.0"]
    clean = run_cli("check", d / "clean.pt2", "--select", "ML96", "--format", "json", "--exit-zero")
    report = json.loads(clean.stdout)["reports"][0]
    assert "ML961" in report["rules_run"], report.get("rules_skipped")
    assert not [f for f in report["findings"] if f["code"] == "ML961"]


def test_pt2_weights_mapped_like_the_state_dict(files):
    from modellint import load_graph
    from modellint.weights import read_weights

    d, model = files
    graph = load_graph(d / "nan.pt2")
    got = read_weights(d / "nan.pt2", graph)
    assert set(got) == {"c1", "bn1", "blk.0", "fc"}
    for key, value in model.state_dict().items():
        module, _, local = key.rpartition(".")
        np.testing.assert_array_equal(got[module][local], value.numpy())


def test_safetensors_with_code_target(files):
    d, _ = files
    if not (d / "nan.safetensors").exists():
        pytest.skip("safetensors not installed (nothing to write the file with)")
    r = run_cli("check", "wnet:build", "--input-shape", "1,1,16,16", "--weights", d / "nan.safetensors",
                "--select", "ML961", cwd=d)
    assert _ml961(r) == ["blk.0"]


def test_safetensors_reader_agrees_with_the_library(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    from safetensors.torch import save_file

    from modellint.weights import read_weights

    rng = np.random.default_rng(0)
    arrays = {"a.weight": rng.normal(size=(5, 3, 2)).astype("float32"), "a.bias": rng.normal(size=5),
              "b.w16": rng.normal(size=(7,)).astype("float16"), "b.count": np.arange(6, dtype="int64"),
              "b.mask": np.array([True, False, True]), "c.empty": np.zeros((0, 4), "float32")}
    path = tmp_path / "m.safetensors"
    st.save_file(arrays, str(path), metadata={"format": "np"})
    got = read_weights(path)
    want = st.load_file(str(path))
    flat = {f"{n}.{k}": v for n, layer in got.items() for k, v in layer.items()}
    assert set(flat) == set(want)
    for k, v in want.items():
        assert flat[k].dtype == v.dtype and flat[k].shape == v.shape
        np.testing.assert_array_equal(flat[k], v)
    bf = torch.randn(4, 3).to(torch.bfloat16)
    save_file({"x.weight": bf}, str(tmp_path / "bf.safetensors"))
    np.testing.assert_array_equal(read_weights(tmp_path / "bf.safetensors")["x"]["weight"], bf.float().numpy())


def _raw(header: dict, data: bytes = b"") -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


@pytest.mark.parametrize("content, words", [
    (b"\x01\x02", "shorter than"),
    (struct.pack("<Q", 1 << 40) + b"{}", "header of"),
    (_raw({"fc.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}, b"\0" * 16), "inside the file"),
    (_raw({"fc.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 32]}}, b"\0" * 32), "bytes of data"),
    (_raw({"fc.weight": {"dtype": "F32", "shape": "4", "data_offsets": [0, 4]}}, b"\0" * 4), "not a list"),
    (struct.pack("<Q", 3) + b"[1]", "not a JSON object"),
])
def test_damaged_safetensors_is_one_line_exit_2(files, tmp_path, content, words):
    d, _ = files
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    r = run_cli("check", "wnet:build", "--input-shape", "1,1,16,16", "--weights", bad, cwd=d)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "bad.safetensors" in r.stderr and words in r.stderr, r.stderr
