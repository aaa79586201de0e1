"""The probe runners (Keras and PyTorch) on tiny synthetic data.

64 images 16x16x3 of 4 classes told apart by colour; a small CNN per framework.
"""

import math

import numpy as np
import pytest

from conftest import keras_only
from modellint.errors import InputError

C = 4


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = np.arange(64) % C
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], np.float32)
    x = colours[y][:, None, None, :] * 0.6 + rng.random((64, 16, 16, 3)) * 0.4
    return x.astype(np.float32), y.astype(np.int64)


def _learns(runner, x, y):
    runner.reset(0, 1e-2)
    loss0, acc0 = runner.evaluate(x, y)
    assert abs(loss0 - math.log(C)) < 0.5 and 0.0 <= acc0 <= 1.0
    first = runner.step(x, y, measure=True)
    assert not first.nonfinite and math.isfinite(first.loss)
    losses = [runner.step(x, y).loss for _ in range(29)]
    assert losses[-1] < 0.5 * first.loss
    loss, acc = runner.evaluate(x, y, batch_size=24)  # uneven last batch
    assert loss < first.loss and acc >= 0.75
    return first


def _check_measure(stats, layers):
    for table in (stats.grad_norm, stats.weight_norm, stats.update_ratio):
        assert set(table) == set(layers)
        assert all(math.isfinite(v) and v > 0 for v in table.values())


def _deterministic(runner, x, y, make):
    """Same seed, same losses: after reset() twice, and on a new runner built with that seed."""
    runs = []
    for _ in range(2):
        runner.reset(7, 1e-3)
        runs.append([runner.step(x[:32], y[:32], measure=(i == 1)).loss for i in range(3)])
    fresh = make(7)  # built at the default learning rate, 1e-3
    runs.append([fresh.step(x[:32], y[:32], measure=(i == 1)).loss for i in range(3)])
    assert np.allclose(runs[0], runs[1], atol=1e-6, rtol=0)
    assert np.allclose(runs[0], runs[2], atol=1e-6, rtol=0)
    runner.reset(8, 1e-3)
    assert not np.allclose(runner.step(x[:32], y[:32]).loss, runs[0][0], atol=1e-6, rtol=0)


def _explodes(runner, x, y):
    runner.reset(0, 1e3)
    steps = [runner.step(x, y) for _ in range(5)]
    assert any(s.nonfinite or not math.isfinite(s.loss) or s.loss > 10 * math.log(C) for s in steps)
    runner.set_lr(1e-3)


# ---------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------

def _keras_cnn(*, bias=0.0, kernel="glorot_uniform", hidden="relu"):
    import keras
    from keras import layers

    inp = keras.Input((16, 16, 3))
    h = layers.Conv2D(8, 3, padding="same", activation=hidden, name="c1", kernel_initializer=kernel,
                      bias_initializer=keras.initializers.Constant(bias))(inp)
    h = layers.MaxPooling2D(name="pool")(h)
    h = layers.Conv2D(8, 3, padding="same", name="c2")(h)
    h = layers.Activation("relu", name="act2")(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    h = layers.Dense(8, activation="tanh", name="d1",
                     bias_initializer=keras.initializers.Constant(-4 * bias))(h)
    out = layers.Dense(C, activation="softmax", name="out")(h)
    return keras.Model(inp, out)


def _keras_runner(model, tmp_path, name="m.keras", seed=0):
    from modellint.adapters import load_graph
    from modellint.probes.runner import make_runner

    path = tmp_path / name
    if not path.exists():
        model.save(path)
    return make_runner(load_graph(str(path)), str(path), seed=seed)


@pytest.fixture(scope="module")
def keras_path(tmp_path_factory):
    return tmp_path_factory.mktemp("keras")


@pytest.fixture(scope="module")
def keras_runner(keras_path):
    return _keras_runner(_keras_cnn(), keras_path)


@keras_only
def test_keras_learns_and_measures(keras_runner, data):
    x, y = data
    assert keras_runner.framework == "keras" and "from_logits=False" in keras_runner.loss_name
    first = _learns(keras_runner, x, y)
    _check_measure(first, ["c1", "c2", "d1", "out"])
    bias = keras_runner.output_bias()
    assert len(bias) == C and all(math.isfinite(b) for b in bias)
    stats = keras_runner.activation_stats(x)
    assert set(stats.dead_fraction) == {"c1.activation", "act2"}
    assert set(stats.saturated_fraction) == {"d1.activation"}
    assert all(0.0 <= v <= 1.0 for v in [*stats.dead_fraction.values(), *stats.saturated_fraction.values()])


@keras_only
def test_keras_deterministic_and_explodes(keras_runner, keras_path, data):
    x, y = data
    _deterministic(keras_runner, x, y, lambda seed: _keras_runner(None, keras_path, seed=seed))
    _explodes(keras_runner, x, y)


@keras_only
def test_keras_dead_saturated_and_zero_kernels(tmp_path, data):
    x, y = data
    runner = _keras_runner(_keras_cnn(bias=-10.0), tmp_path, "dead.keras")
    stats = runner.activation_stats(x)
    assert stats.dead_fraction["c1.activation"] > 0.9
    assert stats.saturated_fraction["d1.activation"] > 0.9  # bias +40 -> tanh far beyond ±5
    zero = _keras_runner(_keras_cnn(kernel="zeros", hidden="tanh"), tmp_path, "zero.keras")
    s = zero.step(x, y, measure=True)
    assert not s.nonfinite
    assert all(math.isfinite(v) for t in (s.grad_norm, s.weight_norm, s.update_ratio) for v in t.values())


@keras_only
def test_keras_lambda_is_refused(tmp_path):
    import keras
    from keras import layers

    from modellint.probes.runner_keras import KerasRunner

    model = keras.Sequential([keras.Input((4,)), layers.Lambda(lambda t: t * 2), layers.Dense(2)])
    with pytest.raises(InputError, match="Lambda"):
        KerasRunner(None, model)
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(InputError, match="Lambda"):
        KerasRunner(None, str(tmp_path / "lambda.keras"))


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------

def _torch_cnn(*, bias=0.0, zero_kernel=False, hidden="relu"):
    torch = pytest.importorskip("torch")
    from torch import nn

    class Conv(nn.Conv2d):  # initialisation that survives reset_parameters()
        def reset_parameters(self):
            super().reset_parameters()
            if zero_kernel:
                nn.init.zeros_(self.weight)
            nn.init.constant_(self.bias, bias)

    class Head(nn.Linear):
        def reset_parameters(self):
            super().reset_parameters()
            nn.init.constant_(self.bias, -4 * bias)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = Conv(3, 8, 3, padding=1)
            self.act1 = nn.ReLU(inplace=True) if hidden == "relu" else nn.Tanh()
            self.pool = nn.MaxPool2d(2)
            self.c2 = nn.Conv2d(8, 8, 3, padding=1)
            self.d1 = Head(8, 8)
            self.act3 = nn.Tanh()
            self.out = nn.Linear(8, C)

        def forward(self, x):
            x = self.pool(self.act1(self.c1(x)))
            x = torch.relu(self.c2(x)).mean((2, 3))  # a function call, seen through TorchFunctionMode
            return self.out(self.act3(self.d1(x)))

    return Net()


def _torch_runner(module, seed=0, graph=None):
    from modellint.adapters import load_graph
    from modellint.probes.runner import make_runner

    return make_runner(graph or load_graph(module, input_shape=(1, 3, 16, 16)), module, seed=seed)


def test_torch_learns_measures_and_leaves_module_alone(data, one_thread):
    torch = pytest.importorskip("torch")
    x, y = data
    module = _torch_cnn()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    runner = _torch_runner(module)
    assert runner.framework == "torch" and runner.loss_name == "CrossEntropyLoss"
    first = _learns(runner, x, y)
    _check_measure(first, ["c1", "c2", "d1", "out"])
    assert len(runner.output_bias()) == C
    stats = runner.activation_stats(x)
    assert set(stats.dead_fraction) == {"act1", "relu"} and set(stats.saturated_fraction) == {"act3"}
    _deterministic(runner, x, y, lambda seed: _torch_runner(module, seed, runner.graph))
    _explodes(runner, x, y)
    after = module.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert all(p.grad is None for p in module.parameters()) and module.training


def test_torch_dead_saturated_and_zero_kernels(data, one_thread):
    pytest.importorskip("torch")
    x, y = data
    stats = _torch_runner(_torch_cnn(bias=-10.0)).activation_stats(x)
    assert stats.dead_fraction["act1"] > 0.9 and stats.saturated_fraction["act3"] > 0.9
    s = _torch_runner(_torch_cnn(zero_kernel=True, hidden="tanh")).step(x, y, measure=True)
    assert not s.nonfinite
    assert all(math.isfinite(v) for t in (s.grad_norm, s.weight_norm, s.update_ratio) for v in t.values())


def test_torch_refuses_non_modules():
    pytest.importorskip("torch")
    from modellint.probes.runner_torch import TorchRunner

    with pytest.raises(InputError):
        TorchRunner(None, "not a module")


# ---------------------------------------------------------------------------
# BatchNorm statistics and predictions
# ---------------------------------------------------------------------------

@keras_only
def test_keras_refreshes_batchnorm_statistics(tmp_path, data):
    import keras
    from keras import layers

    x, y = data
    inp = keras.Input((16, 16, 3))
    h = layers.Conv2D(8, 3, padding="same", use_bias=False, name="c1")(inp)
    h = layers.BatchNormalization(name="bn")(h)
    h = layers.Activation("relu", name="r")(h)
    h = layers.Dropout(0.5, name="drop")(h)
    out = layers.Dense(C, name="out")(layers.GlobalAveragePooling2D()(h))
    runner = _keras_runner(keras.Model(inp, out), tmp_path, "bn.keras")
    assert runner.has_norm_stats
    runner.reset(0, 1e-2)
    for _ in range(5):
        runner.step(x[:32], y[:32])
    batches = [x[:32], x[32:]]
    assert runner.refresh_norm_stats(batches) == 1
    bn = runner.model.get_layer("bn")
    conv = keras.Model(runner.model.inputs, runner.model.get_layer("c1").output)
    feats = [np.asarray(conv(b, training=False)).reshape(-1, 8) for b in batches]
    assert np.allclose(np.asarray(bn.moving_mean), np.mean([f.mean(0) for f in feats], 0), atol=1e-4)
    assert np.allclose(np.asarray(bn.moving_variance), np.mean([f.var(0) for f in feats], 0), rtol=1e-3, atol=1e-5)
    assert bn.momentum == 0.99 and runner.model.get_layer("drop").rate == 0.5  # restored
    loss, acc, guess = runner.evaluate_predictions(x, y, batch_size=24)
    assert guess.shape == (len(x),) and guess.dtype == np.int64 and acc == pytest.approx(np.mean(guess == y))


def test_torch_refreshes_batchnorm_statistics(data, one_thread):
    torch = pytest.importorskip("torch")
    from torch import nn

    x, y = data

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.drop = nn.Dropout(0.5)
            self.out = nn.Linear(8, C)

        def forward(self, x):
            return self.out(self.drop(torch.relu(self.bn(self.c1(x)))).mean((2, 3)))

    runner = _torch_runner(Net())
    assert runner.has_norm_stats
    runner.reset(0, 1e-2)
    for _ in range(5):
        runner.step(x[:32], y[:32])
    batches = [x[:32], x[32:]]
    assert runner.refresh_norm_stats(batches) == 1
    bn = runner.model.bn
    with torch.no_grad():
        feats = [runner.model.c1(runner._x(b)).transpose(0, 1).reshape(8, -1) for b in batches]
    assert torch.allclose(bn.running_mean, torch.stack([f.mean(1) for f in feats]).mean(0), atol=1e-5)
    assert bn.momentum == 0.1 and runner.model.training and bn.training and runner.model.drop.training
    loss, acc, guess = runner.evaluate_predictions(x, y, batch_size=24)
    assert guess.shape == (len(x),) and acc == pytest.approx(np.mean(guess == y))


TORCH_INIT = """
import torch
from torch import nn


def zero_init():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 4))
    nn.init.zeros_(net[0].weight)  # the model's own initialisation
    nn.init.normal_(net[4].weight, std=0.5)
    return net
"""


def test_torch_code_target_keeps_its_own_initialisation(tmp_path, monkeypatch, one_thread):
    """A factory's init code runs at every reset, seeded; a live module gets reset_parameters() (and the
    runner says so)."""
    torch = pytest.importorskip("torch")
    from conftest import import_source
    from modellint import load_graph
    from modellint.probes.api import _builder, _live_model
    from modellint.probes.runner import make_runner

    import_source(tmp_path, monkeypatch, "init_models", TORCH_INIT)
    target = "init_models:zero_init"
    graph = load_graph(target, input_shape=(1, 3, 16, 16))
    runner = make_runner(graph, _live_model(graph, target), build=_builder(graph, target))
    assert "factory" in runner.init
    runner.reset(3, 1e-3)
    assert float(runner.model[0].weight.detach().abs().sum()) == 0.0  # zeros kept
    head = runner.model[4].weight.detach().clone()
    assert 0.3 < float(head.std()) < 0.7  # the factory's std 0.5, not Linear's default (~0.2 for 8 inputs)
    runner.reset(3, 1e-3)
    assert torch.equal(runner.model[4].weight, head)  # seeded: the same init again
    runner.reset(4, 1e-3)
    assert not torch.equal(runner.model[4].weight, head)

    import init_models

    live = make_runner(graph, init_models.zero_init())
    assert "reset_parameters" in live.init and "not reproduced" in live.init
    assert float(live.model[0].weight.detach().abs().sum()) > 0.0  # PyTorch's default init replaced the zeros
