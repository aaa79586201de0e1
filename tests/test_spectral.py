"""Spectral analysis of the weights (issue 14): the power-law fit against samples of known
exponent, the matrices a layer is read as (Keras and PyTorch layouts give one spectrum),
and agreement with WeightWatcher (Martin & Mahoney's own package, the anchor) on a
ResNet-18-style and a VGG-style PyTorch model and on the trained Keras CNN of examples/.

Agreement tolerance: |α − α_WW| ≤ 1e-3 · α_WW on every layer both fit (the same estimator on
the same eigenvalues; what remains is float rounding). WeightWatcher also fits layers of 8 to 19
eigenvalues with a small-sample estimator; modellint reports no α below 20 (MIN_EVALS) and
does not compare those."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from modellint.analysis import spectral
from modellint.analysis.spectral import MIN_EVALS, fit_power_law, layer_spectrum, weight_matrices

ROOT = Path(__file__).resolve().parents[1]
TRAINED = ROOT / "examples" / "fashion_cnn_trained.keras"
REL_TOL = 1e-3


class _Node:
    def __init__(self, op, **attrs):
        self.op, self.attrs, self.name = op, attrs, op


# -- the fit, against samples of known exponent --------------------------------------------------

@pytest.mark.parametrize("alpha", [1.7, 2.5, 3.5, 5.0])
def test_mle_recovers_a_pure_power_law(alpha):
    """Continuous Pareto samples x = x_min · U^(−1/(α−1)) of exponent α: the fit recovers α within
    4 standard errors ((α − 1)/√n)."""
    rng = np.random.default_rng(int(alpha * 10))
    x = 0.5 * rng.uniform(size=4000) ** (-1 / (alpha - 1))
    fit = fit_power_law(x)
    assert abs(fit.alpha - alpha) <= 4 * (alpha - 1) / np.sqrt(fit.n_tail), (fit, alpha)
    assert fit.n_tail >= 1000  # a pure power law: any x_min fits, the tail stays large


def test_tail_found_above_a_body():
    """A log-normal body below a power-law tail of exponent 3 from x = 10 on: x_min lands near 10."""
    rng = np.random.default_rng(0)
    body = np.exp(rng.normal(0, 0.5, 3000))
    tail = 10 * rng.uniform(size=600) ** (-1 / 2.0)
    fit = fit_power_law(np.concatenate([body[body < 10], tail]))
    assert 5 < fit.xmin < 20 and abs(fit.alpha - 3) < 0.4, fit


def test_too_few_values_no_fit():
    assert fit_power_law(np.arange(1, MIN_EVALS)) is None
    assert fit_power_law(np.arange(1, MIN_EVALS + 1)) is not None


def test_random_and_heavy_tailed_matrices():
    """Martin & Mahoney's classes: a Gaussian matrix's spectrum is a Marchenko–Pastur bulk
    (α well above 6 for a 1000 x 500 matrix); Student-t entries with 1 degree of freedom give a
    very heavy tail (α < 2), with 2.5 degrees of freedom a trained-like one (2 < α < 6)."""
    rng = np.random.default_rng(0)
    dense = _Node("dense")
    gauss = [layer_spectrum(dense, {"kernel": rng.normal(size=(1000, 500))}).alpha for _ in range(3)]
    assert np.median(gauss) > 6, gauss
    assert layer_spectrum(dense, {"kernel": rng.standard_t(1, (600, 300))}).alpha < 2
    assert 2 < layer_spectrum(dense, {"kernel": rng.standard_t(2.5, (600, 300))}).alpha < 6


# -- matrices ------------------------------------------------------------------------------------

def test_conv_layouts_give_one_spectrum():
    """A Keras kernel (kh, kw, in, out) and the same kernel in PyTorch's layout (out, in, kh, kw)
    are sliced into the same kh·kw matrices: same eigenvalues, same α."""
    rng = np.random.default_rng(1)
    k = rng.standard_t(3, (3, 3, 16, 32))
    conv = _Node("conv")
    a = weight_matrices(conv, {"kernel": k})
    b = weight_matrices(conv, {"weight": np.transpose(k, (3, 2, 0, 1))})
    assert a.shape == b.shape == (9, 32, 16)
    np.testing.assert_allclose(np.sort(np.linalg.svd(a, compute_uv=False).ravel()),
                               np.sort(np.linalg.svd(b, compute_uv=False).ravel()), rtol=1e-10)
    sa, sb = layer_spectrum(conv, {"kernel": k}), layer_spectrum(conv, {"weight": np.transpose(k, (3, 2, 0, 1))})
    assert sa.alpha == pytest.approx(sb.alpha, rel=1e-9) and sa.n_evals == 9 * 16


def test_eigenvalues_are_those_of_the_correlation_matrix():
    """X = WᵀW / N: its eigenvalues are the squared singular values of W over N."""
    rng = np.random.default_rng(2)
    w = rng.normal(size=(80, 30))
    s = layer_spectrum(_Node("dense"), {"weight": w})
    sv = np.linalg.svd(w, compute_uv=False)
    assert s.lambda_max == pytest.approx(sv.max() ** 2 / 80, rel=1e-9)
    assert s.shape == (80, 30) and s.n_evals == 30


def test_skipped_layers():
    rng = np.random.default_rng(3)
    assert layer_spectrum(_Node("batchnorm"), {"gamma": np.ones(8)}) is None
    assert layer_spectrum(_Node("conv", groups=16), {"weight": rng.normal(size=(16, 1, 3, 3))}) is None
    nan = rng.normal(size=(40, 30))
    nan[0, 0] = np.nan
    assert layer_spectrum(_Node("dense"), {"weight": nan}) is None
    assert spectral.average_alpha([None, {"alpha": 2.0}, {"alpha": 4.0}, {"alpha": None}]) == 3.0


# -- agreement with WeightWatcher ------------------------------------------------------------------

def _ww_alphas(model) -> dict:
    ww = pytest.importorskip("weightwatcher")
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    df = ww.WeightWatcher(model=model).analyze()
    return {r["longname"]: (float(r["alpha"]), int(r["num_evals"])) for _, r in df.iterrows()}


def _our_alphas(model) -> dict:
    from modellint import load_graph
    from modellint.analysis.weights import WeightStore
    from modellint.rules.spectral import ANALYSIS

    graph = load_graph(model, input_shape=(1, 3, 32, 32))
    return {n: v for n, v in WeightStore(model, graph).analysis(ANALYSIS).items() if v}


def _compare(ours: dict, theirs: dict, expect_layers: int):
    compared = 0
    for name, (alpha_ww, n_ww) in theirs.items():
        if n_ww < MIN_EVALS:
            continue
        assert name in ours, (name, sorted(ours))
        assert ours[name]["alpha"] == pytest.approx(alpha_ww, rel=REL_TOL), (name, ours[name], alpha_ww)
        compared += 1
    assert compared == expect_layers


def _small_resnet18():
    """ResNet-18's layout (BasicBlocks [2, 2, 2, 2], downsampling 1x1 convs) at a quarter width."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, i, o, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(o)
            self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(o)
            self.down = (nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))
                         if stride != 1 or i != o else None)

        def forward(self, x):
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(y + (self.down(x) if self.down is not None else x))

    class ResNet(nn.Module):
        def __init__(self, w=(16, 32, 64, 128), classes=10):
            super().__init__()
            self.conv1 = nn.Conv2d(3, w[0], 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(w[0])
            blocks, i = [], w[0]
            for s, o in enumerate(w):
                blocks += [Block(i, o, 1 if s == 0 else 2), Block(o, o, 1)]
                i = o
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(w[-1], classes)

        def forward(self, x):
            x = self.blocks(torch.relu(self.bn1(self.conv1(x))))
            return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))

    torch.manual_seed(0)
    return ResNet().eval()


def _small_vgg():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    cfg = [32, 32, "M", 64, 64, "M", 128, 128, "M"]
    layers, c = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    torch.manual_seed(1)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 4 * 4, 256), nn.ReLU(),
                         nn.Linear(256, 10)).eval()


def test_agrees_with_weightwatcher_resnet18_style():
    model = _small_resnet18()
    _compare(_our_alphas(model), _ww_alphas(model), expect_layers=19)


def test_agrees_with_weightwatcher_vgg_style():
    model = _small_vgg()
    _compare(_our_alphas(model), _ww_alphas(model), expect_layers=7)


def test_agrees_with_weightwatcher_trained_keras_cnn():
    """The trained Fashion-MNIST CNN of examples/: conv2d_2..4 (288, 576, 576 eigenvalues)."""
    pytest.importorskip("keras")
    import keras

    theirs = _ww_alphas(keras.models.load_model(TRAINED, compile=False))
    from modellint import load_graph
    from modellint.analysis.weights import WeightStore

    ours = {n: v for n, v in WeightStore(TRAINED, load_graph(TRAINED)).analysis("spectral").items() if v}
    _compare(ours, theirs, expect_layers=3)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
