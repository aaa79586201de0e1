"""``modellint fix`` and the graph editor under it: the seed's fix, the exact bias fold, the
CLI's refusals, and the editor's invariants (Graph.lint)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modellint import load_graph
from modellint.build import example
from modellint.dataset import facts_from_values
from modellint.edit import GraphEditor
from modellint.engine import run_rules, select_rules
from modellint.fixes import apply_fixes
from modellint.graph import Node
from modellint.rules.normalization import fold_bias_arrays

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed_cnn.h5"
SEED_FACTS = dict(samples=8000, classes=13, image_size=(128, 128))


def _facts():
    return facts_from_values(8000, 13, (128, 128), source="test")


# -- the graph editor ---------------------------------------------------------------

def test_copy_is_independent():
    g = example("seq(inp(32, 32, 3), conv(16), bn(), relu(), gap(), dense(10, act='softmax'))")
    h = g.copy()
    GraphEditor(h).set_attrs("conv_1", filters=32)
    assert g["conv_1"].attrs["filters"] == 16 and g["conv_1"].params == 16 * 27 + 16
    assert h["conv_1"].params == 32 * 27 + 32


def test_edits_reinfer_downstream_and_keep_invariants():
    g = example("seq(inp(32, 32, 3), conv(16), pool(2), bn(), conv(32), gap(), dense(10, act='softmax'))")
    ed = GraphEditor(g)
    g.consumers(g["conv_1"])  # build the consumer cache, then edit
    ed.set_attrs("conv_1", filters=8)
    assert g["bn_1"].params == 4 * 8 and g["conv_2"].params == 3 * 3 * 8 * 32 + 32
    assert g["conv_2"].output_shape == (None, 16, 16, 32)
    # a fused activation becomes its own node, and goes again
    ed.set_attrs("conv_1", activation="relu")
    assert g["conv_1.activation"].fused_into == "conv_1" and g["pool_1"].inputs == ["conv_1.activation"]
    assert g.lint() == []
    ed.set_attrs("conv_1", activation="linear")
    assert "conv_1.activation" not in g.nodes and g["pool_1"].inputs == ["conv_1"]
    # insert after a node: its readers (and an output) read the new node
    name = ed.insert_after("bn_1", Node("act", "activation", "Activation", {"function": "relu"}))
    assert g["conv_2"].inputs == [name] and g.lint() == []
    ed.insert_after("dense_1.activation", Node("drop", "dropout", "Dropout", {"rate": 0.1}))
    assert g.outputs == ["drop"]
    ed.remove("drop")
    assert g.outputs == ["dense_1.activation"]
    ed.remove("pool_1")  # the grid is no longer halved
    assert g["conv_2"].output_shape == (None, 32, 32, 32) and g.lint() == []
    ed.replace_uses("act", "bn_1")
    assert g["conv_2"].inputs == ["bn_1"] and g.consumers(g["act"]) == [] and g.lint() == []


def test_lint_finds_broken_graphs():
    g = example("seq(inp(8,), dense(4, act='relu'), dense(2))")
    assert g.lint() == []
    g.consumers(g["dense_1"])
    g["dense_2"].inputs = ["dense_1"]  # skips the fused activation, without telling the cache
    assert any("stale" in p for p in g.lint())
    g.touch()
    g["dense_2"].inputs = ["nowhere"]
    assert any("names no node" in p for p in g.lint())
    g["dense_2"].inputs = ["dense_1.activation"]
    g["dense_1"].attrs["activation"] = "tanh"
    assert any("function 'relu'" in p for p in g.lint())


# -- the bias fold: exact ------------------------------------------------------------

def test_bias_fold_keeps_outputs_numpy():
    """conv → max pool → BatchNorm (inference) with and without the bias, the bias folded into
    the moving mean: equal within 1e-5, computed here with plain numpy."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    k = rng.normal(size=(1, 1, 3, 4)).astype(np.float32)  # a 1x1 conv is a matmul
    b = rng.normal(size=4).astype(np.float32) * 3
    bn = {"gamma": rng.uniform(0.5, 2, 4).astype(np.float32), "beta": rng.normal(size=4).astype(np.float32),
          "moving_mean": rng.normal(size=4).astype(np.float32),
          "moving_variance": rng.uniform(0.5, 2, 4).astype(np.float32)}
    names = {"bias": "bias", "mean": "moving_mean"}
    conv_w, (bn2,) = fold_bias_arrays({"kernel": k, "bias": b}, [bn], names)
    assert set(conv_w) == {"kernel"}

    def forward(kernel, bias, p):
        y = x @ kernel[0, 0] + (bias if bias is not None else 0)
        y = y.reshape(2, 4, 2, 4, 2, 4).max(axis=(2, 4))
        return p["gamma"] * (y - p["moving_mean"]) / np.sqrt(p["moving_variance"] + 1e-3) + p["beta"]

    np.testing.assert_allclose(forward(k, b, bn), forward(conv_w["kernel"], None, bn2), atol=1e-5)


def test_bias_fold_on_the_seed_keeps_outputs_keras(tmp_path):
    """The seed with only ML102's fix applied and written: the same predictions within 1e-5
    (Keras runs both models; the fixed one has no conv biases before BatchNorm)."""
    keras = pytest.importorskip("keras")
    pytest.importorskip("modellint.emit")
    import modellint

    result = modellint.fix(str(SEED), out=tmp_path / "folded", select=["ML102"])
    assert [c.code for c in result.changes] == ["ML102"]
    assert result.layer_weights()["conv2d_1"] == "refolded"
    fixed = keras.saving.load_model(str(tmp_path / "folded.keras"), compile=False)
    assert not fixed.get_layer("conv2d_1").use_bias
    x = np.random.default_rng(1).uniform(0, 255, size=(4, 128, 128, 3)).astype("float32")
    ref = keras.saving.load_model(str(SEED), compile=False)
    np.testing.assert_allclose(ref.predict(x, verbose=0), fixed.predict(x, verbose=0), atol=1e-5)


def test_live_keras_model_keeps_its_weights(tmp_path):
    """A live keras.Model is fixed from its own weights, as its file is: the bias fold of the
    loaded seed gives Keras' own predictions of the seed within 1e-5."""
    keras = pytest.importorskip("keras")
    pytest.importorskip("modellint.emit")
    import modellint

    ref = keras.saving.load_model(str(SEED), compile=False)
    result = modellint.fix(ref, out=tmp_path / "live", select=["ML102"])
    assert result.layer_weights()["conv2d_1"] == "refolded"
    assert "fresh" not in " ".join(result.layer_weights().values())
    fixed = keras.saving.load_model(str(tmp_path / "live.keras"), compile=False)
    x = np.random.default_rng(2).uniform(0, 255, size=(4, 128, 128, 3)).astype("float32")
    np.testing.assert_allclose(ref.predict(x, verbose=0), fixed.predict(x, verbose=0), atol=1e-5)


# -- the seed ------------------------------------------------------------------------

def test_seed_fix_clears_its_architecture_findings():
    graph = load_graph(str(SEED))
    facts = _facts()
    rules = select_rules()
    result = apply_fixes(graph, facts, rules=rules)
    after = {f.code for f in run_rules(result.graph, rules, facts).findings}
    assert not after & {"ML201", "ML401", "ML101", "ML102", "ML502"}, after
    assert result.graph.lint() == []
    g = result.graph
    # a sensible CNN: rescaled input, a ReLU after every conv, no conv bias before BatchNorm,
    # the field covering the input, the head unchanged
    from modellint.analysis import last_spatial, receptive_fields

    node, rf = last_spatial(g, receptive_fields(g))
    assert min(rf.size) >= 128
    assert g[g.inputs[0]].op == "input" and g.consumers(g[g.inputs[0]])[0].op == "rescaling"
    assert not any(n.op == "batchnorm" for n in g.consumers(g[g.inputs[0]]))
    assert g["dense_1"].attrs["units"] == 13 and g.output_activation() == "softmax"
    convs = [n for n in g if n.op == "conv"]
    assert len(convs) == 6 and all(n.attrs["filters"] >= 32 for n in convs)
    assert 300_000 < g.total_params < 700_000
    # the input graph is untouched
    assert graph.total_params == 168_793


def test_cli_fix_writes_and_refuses(tmp_path):
    pytest.importorskip("modellint.emit")
    out = tmp_path / "seed_fixed"
    cmd = [sys.executable, "-m", "modellint", "fix", str(SEED), "-o", str(out), "--samples", "8000",
           "--classes", "13", "--image-size", "128x128"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "ML102" in r.stdout and "→" in r.stdout and "refolded" in r.stdout
    assert (tmp_path / "seed_fixed.keras").is_file() and (tmp_path / "seed_fixed.py").is_file()
    source = (tmp_path / "seed_fixed.py").read_text()
    assert "def build_model" in source and "Rescaling" in source
    # the written model reads back clean of the fixed findings
    check = subprocess.run([sys.executable, "-m", "modellint", "check", str(tmp_path / "seed_fixed.keras"),
                            "--samples", "8000", "--classes", "13", "--image-size", "128x128", "-q"],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    for code in ("ML201", "ML401", "ML101", "ML102"):
        assert code not in check.stdout
    # an existing OUT needs --force; nothing changes
    stamp = os.stat(tmp_path / "seed_fixed.keras").st_mtime_ns
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "--force" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert os.stat(tmp_path / "seed_fixed.keras").st_mtime_ns == stamp


def test_cli_fix_never_overwrites_its_input(tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes((ROOT / "examples" / "seed_cnn.keras").read_bytes())
    before = model.read_bytes()
    r = subprocess.run([sys.executable, "-m", "modellint", "fix", str(model), "-o", str(tmp_path / "m"), "--force"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "overwrite the input" in r.stderr
    assert model.read_bytes() == before


def test_cli_fix_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not a model")
    r = subprocess.run([sys.executable, "-m", "modellint", "fix", str(bad), "-o", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5"]


# -- ML024: the learning rate from the range test (probe results faked, nothing trains) ------------

LR_MODEL = ("seq(inp(32, 32, 3), conv(16, act='relu'), pool(2), conv(32, act='relu'), gap(), "
            "dense(10, act='softmax'), loss='sparse_categorical_crossentropy', optimizer='adam', lr=0.1)")
SUGGESTED = 0.0025


def _lr_probes(configured=0.1, suggested=SUGGESTED):
    """What a readable range test confirmed by training reports: suggestion 2.5e-3, the configured 0.1
    blows up (the shape of probe lr_range's metrics; see ML024's examples)."""
    return {"lr_range": {"status": "ok", "metrics": {
        "suggested_lr": suggested, "steepest_lr": suggested, "configured_lr": configured, "steps": 120,
        "per_decade": 15.0, "loss_drop": 0.45, "fall_noise": 12.0, "optimizer": "adam",
        "working_range": [1e-4, 3e-3],
        "confirm": {"rate": suggested, "steps": 40, "configured_loss": None, "suggested_loss": 0.9,
                    "configured_nonfinite": True, "suggested_nonfinite": False, "improvement": 1.0}}}}


def _ml024(graph, probes):
    return [f for f in run_rules(graph, select_rules(), probes=probes).findings if f.code == "ML024"]


def test_lr_fix_sets_the_range_tests_rate_and_compile_model_writes_it():
    graph, probes = example(LR_MODEL), _lr_probes()
    assert [f.severity for f in _ml024(graph, probes)] == ["warning"]
    result = apply_fixes(graph, select=["ML024"], probes=probes)
    assert [c.code for c in result.changes] == ["ML024"]
    assert result.changes[0].applicability == "unsafe" and result.changes[0].weights == "kept"
    t = result.graph.training
    assert t.learning_rate == SUGGESTED and t.optimizer == "adam"
    assert t.loss == "sparse_categorical_crossentropy"       # the rest of the compile settings kept
    assert graph.training.learning_rate == 0.1               # the input graph untouched
    # the same probe facts no longer fire ML024 on the fixed model
    assert _ml024(result.graph, probes) == []
    # the emitted script's compile_model, built by Keras itself, trains at the suggested rate
    pytest.importorskip("modellint.emit")
    keras = pytest.importorskip("keras")
    from modellint.emit import emit_keras

    code = emit_keras(result.graph)
    assert "learning_rate=0.0025" in code
    ns: dict = {}
    exec(compile(code, "<fixed>", "exec"), ns)
    model = ns["compile_model"](ns["build_model"]())
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(SUGGESTED)


def test_lr_fix_needs_probes_and_a_confirmed_suggestion():
    graph = example(LR_MODEL)
    # without --data (no probe results) ML024 cannot fire, so its fix never applies
    assert not apply_fixes(graph, select=["ML024"]).changes
    # a reading the confirmation runs did not back (an info) is left alone
    probes = _lr_probes()
    probes["lr_range"]["metrics"]["confirm"].update(configured_nonfinite=False, configured_loss=1.0,
                                                    suggested_loss=0.98, improvement=0.02)
    assert [f.severity for f in _ml024(graph, probes)] == ["info"]
    result = apply_fixes(graph, select=["ML024"], probes=probes)
    assert not result.changes and result.graph.training.learning_rate == 0.1


def test_lr_fix_on_pytorch_names_the_torch_optim_rate():
    torch = pytest.importorskip("torch")
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                 torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))
    graph = load_graph(module, input_shape=(1, 3, 32, 32))
    probes = _lr_probes(configured=0.1)
    result = apply_fixes(graph, select=["ML024"], probes=probes)
    assert [c.code for c in result.changes] == ["ML024"]
    assert result.graph.training.learning_rate == SUGGESTED
    assert "torch.optim.Adam(model.parameters(), lr=0.0025)" in result.changes[0].lines[0]
    assert _ml024(result.graph, probes) == []


def test_cli_fix_with_data_runs_the_range_test_and_applies_it(tmp_path, monkeypatch, capsys):
    """``fix --data``: the range test's results (faked here: no training) reach ML024's fix."""
    pytest.importorskip("modellint.emit")
    import json

    from modellint import cli
    from modellint.probes import api
    from modellint.probes.data import Dataset
    from modellint.probes.suite import ProbeReport, ProbeResult

    src = tmp_path / "model.keras"
    keras = pytest.importorskip("keras")
    from modellint.emit import save_keras

    save_keras(example(LR_MODEL), str(src))
    calls = []

    def fake_run_probes(model, data, **kw):
        calls.append((model, data, kw))
        metrics = _lr_probes()["lr_range"]["metrics"]
        ds = Dataset(x_train=np.zeros((40, 32, 32, 3), np.float32), y_train=np.arange(40) % 10,
                     x_val=np.zeros((10, 32, 32, 3), np.float32), y_val=np.arange(10) % 10,
                     class_names=[f"c{i}" for i in range(10)])
        return None, ds, ProbeReport(results={"lr_range": ProbeResult("lr_range", metrics=metrics)})

    monkeypatch.setattr(api, "run_probes", fake_run_probes)
    out = tmp_path / "fixed"
    rc = cli.main(["fix", str(src), "--data", str(tmp_path), "--budget", "30", "-o", str(out),
                   "--select", "ML024", "--format", "json"])
    assert rc == 0
    assert calls and calls[0][2]["probes"] == ("lr_range",) and calls[0][2]["budget"] == 30
    report = json.loads(capsys.readouterr().out)
    assert [c["code"] for c in report["changes"]] == ["ML024"]
    written = keras.saving.load_model(str(out) + ".keras", compile=True)
    assert float(keras.ops.convert_to_numpy(written.optimizer.learning_rate)) == pytest.approx(SUGGESTED)
