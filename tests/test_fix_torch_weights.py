"""``modellint fix`` keeps a PyTorch model's weights: a live module, a code target with
``--weights`` (torch.save or safetensors) or a ``.pt2`` writes ``OUT.pt`` (a plain state_dict,
loadable with ``torch.load(weights_only=True)``) beside ``OUT.py``, whose
``build_model(path)`` loads it. The truth is the original module's own outputs: with only
the exact bias fold (ML102) the rebuilt module computes them within 1e-5 in eval mode; with
fixes that add or reshape layers, those layers are named freshly initialised (in the output
and in ``FRESH_LAYERS``) and every other tensor is the original's."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from conftest import run_cli

torch = pytest.importorskip("torch")

MODULE = '''
import torch
from torch import nn


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.c1(x))))
        x = self.pool(torch.relu(self.bn2(self.c2(x))))
        return self.fc(torch.flatten(x, 1))


def build():
    return CNN()
'''
SHAPE = (1, 3, 32, 32)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """The module with biases, BatchNorm statistics and affine parameters far from their
    defaults (so a wrong fold or a weight not loaded shows in the outputs), its state_dict
    saved with torch.save and as safetensors, and exported as a .pt2."""
    d = tmp_path_factory.mktemp("fixw")
    (d / "cnnmod.py").write_text(MODULE)
    sys.path.insert(0, str(d))
    try:
        import cnnmod
    finally:
        sys.path.remove(str(d))
    torch.manual_seed(0)
    model = cnnmod.build()
    with torch.no_grad():
        for bn in (model.bn1, model.bn2):
            bn.running_mean.normal_(0, 1)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_(1, 0.2)
            bn.bias.normal_(0, 1)
        model.c1.bias.normal_(0, 1)
        model.c2.bias.normal_(0, 1)
    model.eval()
    torch.save(model.state_dict(), d / "state.pt")
    try:
        from safetensors.torch import save_file
        save_file(model.state_dict(), str(d / "state.safetensors"))
    except ImportError:
        pass
    torch.export.save(torch.export.export(model, (torch.zeros(SHAPE),)), str(d / "cnn.pt2"))
    return d, model


def _load_written(py):
    spec = importlib.util.spec_from_file_location(f"fixed_{py.stem}", py)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)   # the code modellint wrote (the test's own model), never a model file's
    return mod


def _same_outputs(original, rebuilt):
    x = torch.randn(4, *SHAPE[1:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return float((original(x) - rebuilt.eval()(x)).abs().max())


def test_live_module_ml102_keeps_outputs(cnn, tmp_path):
    import modellint

    _, model = cnn
    result = modellint.fix(model, out=tmp_path / "f", select=["ML102"], input_shape=SHAPE)
    assert [c.code for c in result.changes] == ["ML102"]
    assert [p.name for p in result.written] == ["f.py", "f.pt"]
    state = torch.load(tmp_path / "f.pt", weights_only=True)
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    assert "c1.bias" not in state and "c2.bias" not in state    # the bias folded away
    mod = _load_written(tmp_path / "f.py")
    assert mod.FRESH_LAYERS == () and mod.WEIGHTS_FILE == "f.pt"
    rebuilt = mod.build_model(str(tmp_path / "f.pt"))
    assert _same_outputs(model, rebuilt) <= 1e-5
    # the fold really moved the bias: the BatchNorm's running mean is the original's minus it
    expected = model.bn1.running_mean - model.c1.bias.detach()
    assert torch.allclose(state["bn1.running_mean"], expected, atol=1e-6)
    assert result.layer_weights() == {"c1": "refolded", "bn1": "refolded", "c2": "refolded", "bn2": "refolded",
                                      "fc": "kept"}


def test_cli_code_target_with_weights_ml102(cnn, tmp_path):
    d, model = cnn
    out = tmp_path / "g"
    r = run_cli("fix", "cnnmod:build", "--input-shape", "1,3,32,32", "--weights", d / "state.pt",
                "--select", "ML102", "-o", out, cwd=d)
    assert r.returncode == 0, r.stderr
    assert "Weights refolded (exact): c1, bn1, c2, bn2" in r.stdout
    assert "Weights kept: fc" in r.stdout and "freshly initialised" not in r.stdout
    assert f"wrote {out}.pt" in r.stdout
    rebuilt = _load_written(out.with_suffix(".py")).build_model(str(out.with_suffix(".pt")))
    assert _same_outputs(model, rebuilt) <= 1e-5


def test_cli_safetensors_weights_for_a_code_target(cnn, tmp_path):
    d, model = cnn
    if not (d / "state.safetensors").exists():
        pytest.skip("safetensors not installed (nothing to write the file with)")
    out = tmp_path / "s"
    r = run_cli("fix", "cnnmod:build", "--input-shape", "1,3,32,32", "--weights", d / "state.safetensors",
                "--select", "ML102", "-o", out, cwd=d)
    assert r.returncode == 0, r.stderr
    rebuilt = _load_written(out.with_suffix(".py")).build_model(str(out.with_suffix(".pt")))
    assert _same_outputs(model, rebuilt) <= 1e-5


def test_pt2_source_keeps_its_weights(cnn, tmp_path):
    d, model = cnn
    out = tmp_path / "e"
    r = run_cli("fix", d / "cnn.pt2", "--select", "ML102", "-o", out)
    assert r.returncode == 0, r.stderr
    rebuilt = _load_written(out.with_suffix(".py")).build_model(str(out.with_suffix(".pt")))
    assert _same_outputs(model, rebuilt) <= 1e-5


def test_fresh_layers_named_and_the_rest_kept(cnn, tmp_path):
    """All fixes: the head (ML404) and the added stages (ML401) start fresh, named in the
    output and in FRESH_LAYERS; every tensor of the other layers is the original's (refolded)."""
    d, model = cnn
    out = tmp_path / "h"
    r = run_cli("fix", "cnnmod:build", "--input-shape", "1,3,32,32", "--weights", d / "state.pt", "-o", out,
                cwd=d)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("Weights freshly initialised:"))
    fresh = {n.strip() for n in line.split(":", 1)[1].split(",")}
    assert "fc" in fresh and {"c1", "bn1", "c2", "bn2"}.isdisjoint(fresh)
    assert any(n.startswith("stage") for n in fresh)
    mod = _load_written(out.with_suffix(".py"))
    assert set(mod.FRESH_LAYERS) == fresh
    rebuilt = mod.build_model(str(out.with_suffix(".pt")))   # strict about everything not listed fresh
    sd = rebuilt.state_dict()
    orig = model.state_dict()
    assert torch.equal(sd["c1.weight"], orig["c1.weight"]) and torch.equal(sd["bn2.weight"], orig["bn2.weight"])
    assert torch.allclose(sd["bn2.running_mean"], orig["bn2.running_mean"] - orig["c2.bias"], atol=1e-6)
    assert sd["fc.weight"].shape == (10, 16)   # the new head, initialised by PyTorch
    # a state_dict that is not this model's is refused by build_model, naming what is missing
    with pytest.raises(ValueError, match="missing"):
        wrong = tmp_path / "wrong.pt"
        torch.save({"c1.weight": orig["c1.weight"]}, wrong)
        mod.build_model(str(wrong))


def test_no_weights_no_pt(cnn, tmp_path):
    d, _ = cnn
    out = tmp_path / "n"
    r = run_cli("fix", "cnnmod:build", "--input-shape", "1,3,32,32", "--select", "ML102", "-o", out, cwd=d)
    assert r.returncode == 0, r.stderr
    assert not out.with_suffix(".pt").exists() and "--weights FILE" in r.stdout
    mod = _load_written(out.with_suffix(".py"))
    assert mod.WEIGHTS_FILE is None and mod.build_model() is not None


@pytest.mark.parametrize("content", [b"not a pickle at all", b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json"])
def test_bad_weights_file_is_one_line_exit_2(cnn, tmp_path, content):
    d, _ = cnn
    bad = tmp_path / ("bad.safetensors" if content.startswith(b"\x08") else "bad.pt")
    bad.write_bytes(content)
    out = tmp_path / "b"
    r = run_cli("fix", "cnnmod:build", "--input-shape", "1,3,32,32", "--weights", bad, "-o", out, cwd=d)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and bad.name in r.stderr, r.stderr
    assert not list(tmp_path.glob("b.*"))


def test_weights_of_another_model_refused(cnn, tmp_path):
    d, _ = cnn
    other = tmp_path / "other.pt"
    torch.save({"encoder.layer.weight": torch.zeros(3, 3)}, other)
    r = run_cli("fix", "cnnmod:build", "--input-shape", "1,3,32,32", "--weights", other, "-o", tmp_path / "o",
                cwd=d)
    assert r.returncode == 2 and "no weight in it belongs" in r.stderr, r.stderr
