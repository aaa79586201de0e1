"""Weights in the check pipeline (issue 14): small Keras and PyTorch CNNs trained here for a few
seconds, saved as .h5 / .keras / weights-only .h5 + --config / ONNX / a state_dict with a code
target; faults planted in copies of the trained weights (NaN, zeroed filters, γ = 0 channels,
a layer reset to its initialiser, duplicated filters). The truth is what was planted where:
each fault is found in that layer; the untouched trained model raises no weight finding; a
freshly initialised copy is reported untrained."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import ROOT, have_keras, run_cli

WEIGHT_CODES = {"ML961", "ML962", "ML963", "ML964", "ML965", "ML966"}


def _weight_findings(report):
    return [f for f in report.findings if f.code in WEIGHT_CODES]


def _found(report, code):
    return {name for f in report.findings if f.code == code for name in f.layers}


def _data(n=512, seed=0):
    """16×16 images of 4 classes that a small CNN learns in a few epochs (a bright quadrant)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 0.3, (n, 16, 16, 1)).astype("float32")
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, r * 8:(r + 1) * 8, q * 8:(q + 1) * 8] += 1.0
    return x, y


# -- Keras ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    if not have_keras():
        pytest.skip("Keras not installed")
    import keras

    d = tmp_path_factory.mktemp("kw")
    keras.utils.set_random_seed(0)

    def build():
        return keras.Sequential([
            keras.Input((16, 16, 1)),
            keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="c1"),
            keras.layers.BatchNormalization(name="bn1"),
            keras.layers.Activation("relu", name="r1"),
            keras.layers.MaxPooling2D(2, name="p1"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(32, activation="relu", name="fc"),
            keras.layers.Dense(4, activation="softmax", name="head"),
        ])

    model = build()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data()
    hist = model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    assert hist.history["accuracy"][-1] > 0.6   # it learned something: the weights moved
    model.save(d / "healthy.h5")
    model.save(d / "healthy.keras")
    model.save_weights(d / "weights_only.weights.h5")
    (d / "config.json").write_text(model.to_json())
    fresh = build()
    fresh.save(d / "fresh.h5")

    def planted(name, layer, change):
        m = keras.models.clone_model(model)
        m.set_weights(model.get_weights())
        ws = [np.array(w) for w in m.get_layer(layer).get_weights()]
        change(ws)
        m.get_layer(layer).set_weights(ws)
        m.compile("adam", "sparse_categorical_crossentropy")
        m.save(d / f"{name}.h5")

    def reset(ws):
        ws[0][...] = keras.initializers.GlorotUniform(seed=7)(ws[0].shape).numpy()
        ws[1][...] = 0

    planted("nan", "c2", lambda ws: ws[0].reshape(-1).__setitem__(slice(0, 5), np.nan))
    planted("dead", "c2", lambda ws: ws[0].__setitem__((..., slice(0, 8)), 0))
    planted("gamma", "bn1", lambda ws: ws[0].__setitem__(slice(0, 4), 0))
    planted("reset", "fc", reset)
    planted("dups", "c2", lambda ws: [ws[0].__setitem__((..., i), ws[0][..., 0] * (1 + i / 4)) for i in (1, 2, 3)])
    return d


def _analyze(path, **kw):
    from modellint import analyze

    return analyze(str(path), **kw)


def test_keras_trained_model_has_no_weight_findings(keras_files):
    for name in ("healthy.h5", "healthy.keras"):
        report = _analyze(keras_files / name)
        assert WEIGHT_CODES <= set(report.rules_run), (name, report.rules_skipped)
        assert not _weight_findings(report), [f.message for f in _weight_findings(report)]
        assert report.weights is not None and "c2" in report.weights


@pytest.mark.parametrize("name, code, layer", [("nan", "ML961", "c2"), ("dead", "ML962", "c2"),
                                               ("gamma", "ML963", "bn1"), ("reset", "ML966", "fc"),
                                               ("dups", "ML965", "c2")])
def test_keras_planted_fault_found_in_its_layer(keras_files, name, code, layer):
    report = _analyze(keras_files / f"{name}.h5")
    assert _found(report, code) == {layer}, [f.message for f in report.findings]
    others = {f.code for f in _weight_findings(report)} - {code}
    # a zeroed filter also leaves its ReLU output constant: nothing else may fire
    assert not others, [f.message for f in _weight_findings(report)]


def test_keras_fresh_model_is_untrained(keras_files):
    report = _analyze(keras_files / "fresh.h5")
    found = [f for f in report.findings if f.code == "ML966"]
    assert len(found) == 1 and found[0].layers == [] and "untrained" in found[0].message
    # a file saved before training is normal for an architecture question: said, not warned
    assert found[0].severity == "info"


def test_weights_only_h5_with_config_gets_the_same_checks(keras_files):
    report = _analyze(keras_files / "weights_only.weights.h5", config=str(keras_files / "config.json"))
    assert WEIGHT_CODES <= set(report.rules_run), report.rules_skipped
    assert not _weight_findings(report)
    assert {"c1", "bn1", "c2", "fc", "head"} <= set(report.weights.stats())


def test_nan_exits_1_naming_the_layer_without_keras(keras_files):
    r = run_cli("check", keras_files / "nan.h5", "--select", "ML961")
    assert r.returncode == 1, r.stderr
    assert "ML961" in r.stdout and "c2" in r.stdout and "5 NaN" in r.stdout
    r = run_cli("check", keras_files / "nan.h5", "--select", "ML961", "--no-weights", "--explain")
    assert r.returncode == 0 and "ML961" in r.stdout and "--no-weights" in r.stdout
    code = textwrap.dedent(f"""
        import sys
        from modellint import analyze
        r = analyze({str(keras_files / 'nan.h5')!r})
        assert [f.layers for f in r.findings if f.code == 'ML961'] == [['c2']]
        bad = [m for m in ('keras', 'tensorflow', 'torch', 'h5py') if m in sys.modules]
        assert not bad, bad
        print('ok')
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr[-2000:]


# -- PyTorch and ONNX ----------------------------------------------------------------------------

TORCH_MODULE = '''
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.c2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32, 32)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        x = nn.functional.max_pool2d(nn.functional.relu(self.bn1(self.c1(x))), 2)
        x = nn.functional.relu(self.c2(x)).mean((2, 3))
        return self.head(nn.functional.relu(self.fc(x)))

def build():
    return Net()
'''


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory):
    torch = pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("tw")
    (d / "tnet.py").write_text(TORCH_MODULE)
    sys.path.insert(0, str(d))
    try:
        import tnet
    finally:
        sys.path.remove(str(d))
    torch.manual_seed(0)
    model = tnet.build()
    x, y = _data()
    xt, yt = torch.tensor(x).permute(0, 3, 1, 2), torch.tensor(y)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(4):
        for i in range(0, len(xt), 32):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[i:i + 32]), yt[i:i + 32])
            loss.backward()
            opt.step()
    model.eval()
    acc = (model(xt).argmax(1) == yt).float().mean().item()
    assert acc > 0.6
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(sd, d / "healthy.pt")
    torch.save(tnet.build().state_dict(), d / "fresh.pt")

    def planted(name, key, change):
        s = {k: v.clone() for k, v in sd.items()}
        change(s[key])
        torch.save(s, d / f"{name}.pt")
        return s

    planted("dead", "c2.weight", lambda w: w[:8].zero_())
    planted("gamma", "bn1.weight", lambda w: w[:4].zero_())
    fresh_fc = torch.nn.Linear(32, 32)   # reset_parameters(): weight and bias as PyTorch initialises them
    s = planted("reset", "fc.weight", lambda w: w.copy_(fresh_fc.weight.detach()))
    s["fc.bias"] = fresh_fc.bias.detach().clone()
    torch.save(s, d / "reset.pt")
    planted("dups", "c2.weight", lambda w: [w[i].copy_(w[0] * 2) for i in (1, 2)])
    nan = planted("nan", "fc.weight", lambda w: w.view(-1)[:3].fill_(float("nan")))
    try:
        for name, state in (("healthy", sd), ("nan", nan)):
            model.load_state_dict(state)
            torch.onnx.export(model, (torch.zeros(1, 1, 16, 16),), str(d / f"{name}.onnx"), dynamo=False,
                              do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    except Exception as exc:  # an ONNX exporter that is not installed
        (d / "no_onnx").write_text(str(exc))
    return d


def _target(torch_files, name):
    sys.path.insert(0, str(torch_files))
    try:
        return _analyze("tnet:build", weights=str(torch_files / f"{name}.pt"), input_shape=(1, 1, 16, 16))
    finally:
        sys.path.remove(str(torch_files))


def test_torch_state_dict_with_code_target(torch_files):
    report = _target(torch_files, "healthy")
    assert WEIGHT_CODES <= set(report.rules_run), report.rules_skipped
    assert not _weight_findings(report), [f.message for f in _weight_findings(report)]
    fresh = _target(torch_files, "fresh")
    assert [f.layers for f in fresh.findings if f.code == "ML966"] == [[]]


@pytest.mark.parametrize("name, code, layer", [("nan", "ML961", "fc"), ("dead", "ML962", "c2"),
                                               ("gamma", "ML963", "bn1"), ("reset", "ML966", "fc"),
                                               ("dups", "ML965", "c2")])
def test_torch_planted_fault_found_in_its_layer(torch_files, name, code, layer):
    report = _target(torch_files, name)
    assert _found(report, code) == {layer}, [f.message for f in report.findings]
    assert not {f.code for f in _weight_findings(report)} - {code}, [f.message for f in _weight_findings(report)]


def test_code_target_without_weights_skips_weight_rules(torch_files):
    r = run_cli("check", "tnet:build", "--input-shape", "1,1,16,16", "--select", "ML96", "--explain",
                cwd=torch_files)
    assert r.returncode == 0, r.stderr
    assert "--weights FILE" in r.stdout


def test_bad_weights_file_is_one_line_exit_2(torch_files, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a pickle at all")
    r = run_cli("check", "tnet:build", "--input-shape", "1,1,16,16", "--weights", bad, cwd=torch_files)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "bad.pt" in r.stderr, r.stderr


def test_onnx_weights_without_torch(torch_files):
    if (torch_files / "no_onnx").exists():
        pytest.skip((torch_files / "no_onnx").read_text()[:200])
    healthy = _analyze(torch_files / "healthy.onnx")
    assert WEIGHT_CODES <= set(healthy.rules_run), healthy.rules_skipped
    assert not _weight_findings(healthy), [f.message for f in _weight_findings(healthy)]
    code = textwrap.dedent(f"""
        import sys
        from modellint import analyze
        r = analyze({str(torch_files / 'nan.onnx')!r})
        print([f.layers for f in r.findings if f.code == 'ML961'])
        bad = [m for m in ('keras', 'tensorflow', 'torch') if m in sys.modules]
        assert not bad, bad
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "[['fc']]", p.stdout


def test_json_report_lists_weight_findings(keras_files):
    r = run_cli("check", keras_files / "dead.h5", "--format", "json", "--exit-zero")
    data = json.loads(r.stdout)
    found = [f for f in data["reports"][0]["findings"] if f["code"] == "ML962"]
    assert found and found[0]["layers"] == ["c2"] and found[0]["evidence"]["dead"] == 8


@pytest.mark.skipif(not have_keras, reason="needs Keras")
def test_fresh_models_with_initializers_outside_the_table_are_untrained_not_warned():
    """A fresh Embedding + LSTM model (uniform(-0.05, 0.05) embeddings, orthogonal recurrent kernels) and
    a fresh model whose convolutions use variance scaling on fan-out (EfficientNet's init): kernels that
    match no initializer of the table are not evidence of training, so the model is untrained (info), and
    no layer is warned about as 'still at init while the others moved'."""
    import keras
    from keras import layers

    from modellint import analyze

    text = keras.Sequential([keras.Input((40,)), layers.Embedding(2000, 32), layers.LSTM(32),
                             layers.Dense(1, activation="sigmoid")])
    scaled = keras.initializers.VarianceScaling(2.0, "fan_out", "truncated_normal")
    conv = keras.Sequential([keras.Input((32, 32, 3))] + [
        m for _ in range(3) for m in (layers.Conv2D(32, 3, use_bias=False, kernel_initializer=scaled),
                                      layers.BatchNormalization(), layers.ReLU())
    ] + [layers.GlobalAveragePooling2D(), layers.Dense(10, activation="softmax", kernel_initializer=scaled)])
    for model in (text, conv):
        weight = [f for f in analyze(model).findings if f.category == "weights"]
        assert [(f.code, f.severity) for f in weight] == [("ML966", "info")], [f.message for f in weight]
        assert "untrained" in weight[0].message
