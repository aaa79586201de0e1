"""Known-truth cases for the probes: a model with a known defect, on small synthetic data,
must be flagged by the probe rule that measures that defect (and a healthy model by none).

Data: 24x24x3 images, a noisy dark background (uniform in [0, 0.2]) with bright quadrants.
* ``quad``: 4 balanced classes, the class is which quadrant is bright (easy, even linearly).
* ``xor``: 2 balanced classes, the label is XOR of "top-left bright" and "bottom-right bright".
  After global average pooling a linear network sees only the mean brightness (0, q, q, 2q
  for the four cases), which a linear function cannot map to XOR; a ReLU network can.

Each case runs only the probes it needs, with a small budget; the whole file takes about a
minute and a half on two CPU cores.

The budgets are seconds of a fake clock (:mod:`fake_clock`): each runner call does its real work
and then advances the clock by a fixed cost of about what it takes on an idle two-core machine. The
plan (steps per probe, cuts, skips), and so every finding checked here, is the same on any machine,
however busy; the wall-clock budget itself is tested in test_probe_suite.py.
"""

import json
import math
import textwrap

import numpy as np
import pytest

from conftest import import_source, keras_only, run_cli
from fake_clock import FakeClock, charge

S = 24
PROBE_CODES = {f"ML0{n}" for n in range(21, 31)}


def _images(n, seed, xor):
    rng = np.random.default_rng(seed)
    x = rng.random((n, S, S, 3)).astype(np.float32) * 0.2
    h = S // 2
    if xor:
        bits = np.stack([np.arange(n) % 2, (np.arange(n) // 2) % 2], 1)
        rng.shuffle(bits)
        x[bits[:, 0] == 1, :h, :h] += 0.7
        x[bits[:, 1] == 1, h:, h:] += 0.7
        y = bits[:, 0] ^ bits[:, 1]
    else:
        y = np.arange(n) % 4
        rng.shuffle(y)
        for k, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            x[y == k, r * h:(r + 1) * h, c * h:(c + 1) * h] += 0.7
    return (np.clip(x, 0, 1) * 255).astype(np.uint8), y.astype(np.int64)


#: fake-clock costs of the runners' calls: about what these tiny CNNs cost on an idle two-core machine
#: (Keras: measured 0.02 s a step, 0.13 s a reset, 0.36 ms an evaluated image)
COSTS = {"step": 0.02, "image": 0.0004, "reset": 0.1}


@pytest.fixture(autouse=True)
def fake_time(monkeypatch):
    """Every probe run of this module (``run_probes``, also through ``analyze``) reads a fake clock that the
    Keras and PyTorch runners' calls advance by fixed costs (:data:`COSTS`)."""
    from modellint.probes import api
    from modellint.probes.runner_keras import KerasRunner
    from modellint.probes.runner_torch import TorchRunner

    clock = FakeClock()
    for cls in (KerasRunner, TorchRunner):
        charge(monkeypatch, cls, clock, **COSTS)
    real = api.run_probes
    monkeypatch.setattr(api, "run_probes", lambda *a, **k: real(*a, **{"clock": clock, **k}))
    return clock


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("known_truth")
    for name, xor in (("quad", False), ("xor", True)):
        x, y = _images(600, 0, xor)
        np.savez(d / f"{name}.npz", x=x, y=y)
    return d


@pytest.fixture(scope="module")
def quad(data_dir):
    return str(data_dir / "quad.npz")


@pytest.fixture(scope="module")
def xor(data_dir):
    return str(data_dir / "xor.npz")


def _keras_cnn(path, *, classes=4, act="relu", kernel="glorot_uniform", bias="zeros", lr=1e-3, logits=False):
    import keras
    from keras import layers

    inp = keras.Input((S, S, 3))
    h = layers.Conv2D(16, 3, padding="same", activation=act, kernel_initializer=kernel, bias_initializer=bias,
                      name="c1")(inp)
    h = layers.MaxPooling2D(2)(h) if act != "linear" else layers.AveragePooling2D(2)(h)
    h = layers.Conv2D(16, 3, padding="same", activation=act, kernel_initializer=kernel, name="c2")(h)
    h = layers.GlobalAveragePooling2D()(h)
    out = layers.Dense(classes, activation="softmax", name="out")(h)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=logits))
    model.save(path)
    return str(path)


def _probe(model, data, probes, budget=10.0, **kw):
    """Run ``probes`` without the cache; returns (probe findings, ProbeReport)."""
    from modellint.engine import run_rules, select_rules
    from modellint.probes.api import probe_inputs, run_probes

    graph, _, report = run_probes(model, data, budget=budget, probes=probes, use_cache=False, **kw)
    for name in probes:
        assert report.results[name].status == "ok", (name, report.results[name].notes)
    result = run_rules(graph, select_rules(), None, probes=probe_inputs(report))
    assert not result.errors, result.errors
    return [f for f in result.findings if f.code in PROBE_CODES], report


def _codes(findings, min_severity="warning"):
    from modellint.rules.base import SEVERITY_RANK

    return {f.code for f in findings if SEVERITY_RANK[f.severity] >= SEVERITY_RANK[min_severity]}


# ---------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------

@keras_only
def test_learning_rate_10(tmp_path, quad):
    found, report = _probe(_keras_cnn(tmp_path / "lr10.keras", lr=10.0), quad, ("lr_range", "train_dynamics"))
    assert report.results["lr_range"].metrics["configured_lr"] == 10.0
    lr = report.results["lr_range"]
    assert "ML024" in _codes(found), (lr.metrics, lr.notes)  # 10 is far above the range test's suggestion
    assert _codes(found) & {"ML028", "ML026", "ML023"}  # and training at 10 breaks (NaN or dead units)


@keras_only
def test_no_nonlinearity_cannot_fit_xor(tmp_path, xor):
    found, report = _probe(_keras_cnn(tmp_path / "linear.keras", classes=2, act="linear"), xor,
                           ("overfit_batch", "data_scaling"))
    assert "ML023" in _codes(found), report.results["overfit_batch"].metrics
    assert report.results["data_scaling"].metrics["rows"][-1]["val_accuracy"] < 0.75


@keras_only
def test_zero_initialised_kernels(tmp_path, quad):
    found, report = _probe(_keras_cnn(tmp_path / "zero.keras", kernel="zeros"), quad,
                           ("overfit_batch", "train_dynamics"))
    assert {"ML023", "ML026"} <= _codes(found)
    assert report.results["train_dynamics"].metrics["val_accuracy"] < 0.5


@keras_only
def test_softmax_into_from_logits_loss(tmp_path, quad):
    """The static error (ML303: softmax into a from-logits loss) explains the failure to overfit: ML023 is an
    info that names it."""
    found, report = _probe(_keras_cnn(tmp_path / "softmax_logits.keras", logits=True), quad, ("overfit_batch",))
    ml023 = [f for f in found if f.code == "ML023"]
    assert ml023 and ml023[0].severity == "info", report.results["overfit_batch"].metrics
    assert ml023[0].message.endswith("likely caused by ML303")


@keras_only
def test_dead_relu_from_negative_bias(tmp_path, quad):
    import keras

    model = _keras_cnn(tmp_path / "dead.keras", bias=keras.initializers.Constant(-10.0))
    found, report = _probe(model, quad, ("train_dynamics",))
    dead = [f for f in found if f.code == "ML026"]
    assert dead and any("c1" in f.message for f in dead), report.results["train_dynamics"].metrics


@keras_only
def test_healthy_cnn_has_no_probe_warnings(tmp_path, quad):
    from modellint.probes.suite import ALL_PROBES

    # Adam at 3e-3: at 1e-3 the 20 s budget leaves data_scaling ~130 steps, sometimes too few to
    # reach the (perfect) linear baseline, and ML030 then fires on a healthy net (data seed 1)
    found, report = _probe(_keras_cnn(tmp_path / "healthy.keras", lr=3e-3), quad, ALL_PROBES, budget=20.0,
                           max_images=400)
    assert not _codes(found), [(f.code, f.message) for f in found]
    assert report.results["train_dynamics"].metrics["val_accuracy"] >= 0.9


# ---------------------------------------------------------------------------
# PyTorch: a code target (package.module:factory) and a live module
# ---------------------------------------------------------------------------

TORCH_MODELS = textwrap.dedent("""
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, classes=4, linear=False):
            super().__init__()
            self.c1 = nn.Conv2d(3, 16, 3, padding=1)
            self.act1 = nn.Identity() if linear else nn.ReLU()
            self.pool = nn.AvgPool2d(2) if linear else nn.MaxPool2d(2)
            self.c2 = nn.Conv2d(16, 16, 3, padding=1)
            self.act2 = nn.Identity() if linear else nn.ReLU()
            self.out = nn.Linear(16, classes)

        def forward(self, x):
            x = self.pool(self.act1(self.c1(x)))
            return self.out(self.act2(self.c2(x)).mean((2, 3)))


    def cnn():
        return Net()


    def linear_xor():
        return Net(classes=2, linear=True)
""")


@pytest.fixture
def torch_models(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    return import_source(tmp_path, monkeypatch, "kt_torch_models", TORCH_MODELS)


def test_torch_code_target_learning_rate_10(torch_models, one_thread, quad):
    found, report = _probe("kt_torch_models:cnn", quad, ("lr_range", "train_dynamics"), lr=10.0,
                           input_shape=(1, 3, S, S))
    assert report.settings["runner"] == "torch"
    assert "ML024" in _codes(found), report.results["lr_range"].metrics
    assert _codes(found) & {"ML028", "ML026", "ML023"}, report.results["train_dynamics"].metrics


def test_torch_live_module_without_nonlinearity(torch_models, one_thread, xor):
    found, report = _probe(torch_models.linear_xor(), xor, ("overfit_batch",), input_shape=(1, 3, S, S))
    assert "ML023" in _codes(found), report.results["overfit_batch"].metrics


# ---------------------------------------------------------------------------
# The CLI and the cache
# ---------------------------------------------------------------------------

@keras_only
def test_cli_probe_json(tmp_path, quad):
    model = _keras_cnn(tmp_path / "cli.keras")
    r = run_cli("probe", model, "--data", quad, "--budget", 20, "--format", "json", "--no-cache",
                env={"MODELLINT_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode in (0, 1), r.stderr
    out = json.loads(r.stdout)
    assert len(out["reports"]) == 1
    report = out["reports"][0]
    assert r.returncode == (1 if any(f["severity"] in ("warning", "error") for f in report["findings"]) else 0)
    probes = report["probes"]
    assert probes and set(probes["results"]) >= {"init_loss", "overfit_batch"}
    assert all(v["status"] in ("ok", "skipped") for v in probes["results"].values())
    assert not (tmp_path / "cache").exists()  # --no-cache writes nothing


@keras_only
def test_cache_returns_identical_results_without_training(tmp_path, quad, monkeypatch):
    from modellint.probes.api import run_probes

    monkeypatch.setenv("MODELLINT_CACHE_DIR", str(tmp_path / "cache"))
    model = _keras_cnn(tmp_path / "cached.keras")
    probes = ("init_loss", "overfit_batch", "linear_baseline")
    _, _, first = run_probes(model, quad, budget=6, probes=probes)
    assert list((tmp_path / "cache" / "probes").glob("*.json"))

    def no_training(*a, **k):
        raise AssertionError("a cached run must not build a runner or train")

    monkeypatch.setattr("modellint.probes.runner.make_runner", no_training)
    _, _, second = run_probes(model, quad, budget=6, probes=probes)
    a = json.loads(json.dumps(first.to_dict()))
    b = json.loads(json.dumps(second.to_dict()))
    assert a["results"].keys() == b["results"].keys()
    for name in a["results"]:
        assert a["results"][name]["metrics"] == b["results"][name]["metrics"]
        assert a["results"][name]["curves"] == b["results"][name]["curves"]
    assert all(math.isfinite(v) for v in a["results"]["overfit_batch"]["curves"]["loss"])


def test_analyze_with_probes(tmp_path, quad, monkeypatch):
    """The Python API runs the probes too: analyze(model, data=..., probes=True)."""
    from modellint import analyze

    monkeypatch.setenv("MODELLINT_CACHE_DIR", str(tmp_path / "cache"))
    model = _keras_cnn(tmp_path / "m.keras", lr=10.0)
    # the budget covers loading too; two probes, so the sweep gets its steps on a busy machine
    report = analyze(model, data=quad, probes=["lr_range", "train_dynamics"], budget=20.0)
    assert report.probes is not None and report.probes.get("lr_range") is not None
    lr = report.probes.get("lr_range")
    assert "ML024" in {f.code for f in report.findings}, (lr.metrics, lr.notes)


def _keras_bn_cnn(path, *, classes=4, lr=1e-3):
    import keras
    from keras import layers

    inp = keras.Input((S, S, 3))
    h = layers.Conv2D(16, 3, padding="same", use_bias=False, name="c1")(inp)
    h = layers.BatchNormalization(name="bn1")(h)
    h = layers.Activation("relu", name="r1")(h)
    h = layers.MaxPooling2D(2)(h)
    h = layers.Dropout(0.25)(h)
    h = layers.Conv2D(32, 3, padding="same", use_bias=False, name="c2")(h)
    h = layers.BatchNormalization(name="bn2")(h)
    h = layers.Activation("relu", name="r2")(h)
    h = layers.GlobalAveragePooling2D()(h)
    out = layers.Dense(classes, activation="softmax", name="out")(h)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy())
    model.save(path)
    return str(path)


@keras_only
def test_batchnorm_cnn_overfits_a_batch_on_a_short_run(tmp_path, quad):
    """BatchNorm's moving statistics barely move in a few dozen steps: evaluation must re-estimate them
    (else inference mode measures the initial statistics and ML023 fires on a net that memorised the batch).
    The same run checks train_dynamics' confusion matrix and validation curve, and data_scaling's rows."""
    from modellint.probes.suite import ProbeSettings

    found, report = _probe(_keras_bn_cnn(tmp_path / "bn.keras"), quad,
                           ("overfit_batch", "train_dynamics", "data_scaling"), budget=25.0)
    ob = report.results["overfit_batch"].metrics
    assert "ML023" not in _codes(found, "info"), ob
    assert ob["final_loss"] < 0.2 * ob["initial_loss"] and ob["accuracy"] == 1.0, ob
    assert math.isfinite(ob["eval_loss"])
    td = report.results["train_dynamics"]
    confusion = td.metrics["confusion"]
    assert len(confusion) == 4 and all(len(row) == 4 for row in confusion)
    assert sum(map(sum, confusion)) == td.metrics["val_samples"]
    assert sum(confusion[k][k] for k in range(4)) == round(td.metrics["val_accuracy"] * td.metrics["val_samples"])
    steps, vl, va = td.curves["val_step"], td.curves["val_loss"], td.curves["val_accuracy"]
    assert 2 <= len(steps) <= 6 and len(vl) == len(va) == len(steps)
    assert steps == sorted(set(steps)) and steps[-1] == len(td.curves["loss"]) - 1
    assert vl[-1] == td.metrics["val_loss"] and va[-1] == td.metrics["val_accuracy"]
    rows = report.results["data_scaling"].metrics["rows"]
    assert len({r["steps"] for r in rows}) == 1, rows  # every row trains as long
    settings = report.settings
    assert settings["budget"] == 25.0 and settings["setup_s"] >= 0
    assert settings["suite_budget"] == pytest.approx(25.0 - settings["setup_s"], abs=0.02)
    assert isinstance(ProbeSettings(plan=settings["plan"]).plan, dict)
