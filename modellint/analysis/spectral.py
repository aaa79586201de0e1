"""Heavy-tailed spectral analysis of a layer's weights (pure numpy, no framework).

For each layer with a weight matrix, the empirical spectral density (ESD) of its
correlation matrix ``X = WᵀW / N`` is fitted with a power law ``p(λ) ∝ λ^-α`` on its
tail ``λ ≥ λ_min``, the way WeightWatcher does it (Martin & Mahoney, "Implicit
self-regularization in deep neural networks", JMLR 22(165), 2021; and "Predicting
trends in the quality of state-of-the-art neural networks without access to training
or testing data", Nature Communications 12, 4122, 2021):

* **Which matrices.** A dense (``Linear`` / ``Dense``) layer: its weight as an
  ``N x M`` matrix (``N ≥ M``; a transpose has the same spectrum). A convolution with
  kernel ``k₁ x ... x k_d`` is sliced into ``k₁···k_d`` matrices of shape
  ``(c_out, c_in)``, one per kernel position, whose eigenvalues are pooled into one
  ESD of ``k₁···k_d · min(c_out, c_in)`` eigenvalues (WeightWatcher's ``conv2D_Wmats``
  and its default ``pool=True``). An embedding table is one matrix. Depthwise
  convolutions (one input channel per filter: rank-1 slices) and recurrent or
  attention layers are not analysed.
* **The fit.** The continuous power-law maximum-likelihood estimate
  ``α = 1 + n / Σ ln(λᵢ / λ_min)`` over the ``n`` eigenvalues ``≥ λ_min``, with
  ``λ_min`` the candidate eigenvalue that minimises the Kolmogorov–Smirnov distance
  between the fitted and the empirical tail distribution (Clauset, Shalizi & Newman,
  "Power-law distributions in empirical data", SIAM Review 51(4), 2009 — the method
  of the ``powerlaw`` package and of WeightWatcher's own fitter). Every eigenvalue
  is a candidate; the search is vectorised in blocks of candidates.
* **Near-zero eigenvalues** (rank loss) are dropped before fitting: those ``≤ 1e-5``
  on WeightWatcher's scale (eigenvalues of ``WᵀW``, convolutions scaled by
  ``k₁···k_d / 2`` as its ``conv2d_norm`` does). ``α`` itself does not depend on the
  scale.

Reading α (Martin & Mahoney's classes, WeightWatcher's documentation): a random,
untrained matrix has a Marchenko–Pastur bulk whose fitted tail is steep (α large,
typically > 6); well-trained layers have heavy-tailed ESDs with 2 ≤ α ≤ 6, most
often 2–4; α < 2 is a very heavy tail (over-fit, or over-regularised by too large a
learning rate). Layers with fewer than :data:`MIN_EVALS` eigenvalues are not fitted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Optional

import numpy as np

#: Fewer eigenvalues than this: no fit (WeightWatcher switches to a small-sample
#: estimator below 20 eigenvalues; we report nothing instead).
MIN_EVALS = 20
#: Eigenvalues at or below this on WeightWatcher's scale are rank loss, not spectrum.
EVALS_THRESH = 1e-5
#: Matrices with more rows than this (huge embedding tables) are skipped, as WeightWatcher
#: does (its ``max_N``).
MAX_N = 50000
#: Matrices with at least this many columns are decomposed in float32.
FLOAT32_FROM = 256
#: Candidate-block size of the KS search: (candidates x tail) elements per block.
_BLOCK_ELEMENTS = 1 << 21

#: Ops whose weights are analysed, and the name of the weight array per framework naming.
SPECTRAL_OPS = ("dense", "conv", "conv_transpose", "embedding")
_WEIGHT_NAMES = ("kernel", "weight", "embeddings", "pointwise_kernel")


@dataclass
class PowerLawFit:
    alpha: float  # the power-law exponent of the ESD's tail
    xmin: float  # λ_min, on the scale of X = WᵀW / N
    D: float  # Kolmogorov–Smirnov distance of the fit
    n_tail: int  # eigenvalues ≥ λ_min (the fitted tail)
    sigma: float  # standard error of α: (α − 1) / √n_tail


@dataclass
class LayerSpectrum:
    alpha: Optional[float]  # None: too few eigenvalues to fit
    xmin: Optional[float]
    D: Optional[float]
    n_tail: int
    n_evals: int  # eigenvalues in the ESD (after dropping rank loss)
    n_matrices: int  # 1 for a dense layer, k₁···k_d for a convolution
    shape: tuple  # (N, M) of each matrix, N ≥ M
    lambda_max: float  # the largest eigenvalue of X = WᵀW / N
    rank_loss: int  # eigenvalues dropped as ≈ 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


# -- matrices ---------------------------------------------------------------------------------

def weight_matrices(node, arrays: dict) -> Optional[np.ndarray]:
    """The layer's weight as a stack of matrices ``(count, N, M)`` with ``N ≥ M``, or None
    when the layer has no matrix this analysis reads. ``node`` needs ``op`` and ``attrs``
    (a :class:`modellint.graph.Node`); ``arrays`` are its weights by name."""
    op = getattr(node, "op", None)
    if op not in SPECTRAL_OPS:
        return None
    name = next((n for n in _WEIGHT_NAMES if n in arrays), None)
    if name is None:
        return None
    w = np.asarray(arrays[name])
    if w.dtype.kind not in "fiu" or w.ndim < 2 or w.size == 0:
        return None
    if w.ndim == 2:
        mats = w[None]
    else:
        # The two channel axes: Keras stores kernels (k..., c_in, c_out) (spatial first),
        # PyTorch and ONNX (c_out, c_in, k...) (spatial last). Unknown naming: WeightWatcher's
        # guess (the channel axes are the two larger ones).
        if name == "weight":
            spatial_first = False
        elif name in ("kernel", "pointwise_kernel"):
            spatial_first = True
        else:
            spatial_first = w.shape[0] + w.shape[1] < w.shape[-2] + w.shape[-1]
        if spatial_first:
            mats = w.reshape(-1, w.shape[-2], w.shape[-1])
        else:
            mats = np.moveaxis(w.reshape(w.shape[0], w.shape[1], -1), -1, 0)
        if op == "conv" and int(getattr(node, "attrs", {}).get("groups", 1) or 1) > 1 and min(mats.shape[1:]) == 1:
            return None  # depthwise written as a grouped conv: rank-1 slices
    if mats.shape[1] < mats.shape[2]:
        mats = np.swapaxes(mats, 1, 2)
    if min(mats.shape[1:]) < 2:
        return None
    return mats


def eigenvalues(mats: np.ndarray, conv: bool) -> tuple:
    """``(eigenvalues of X = WᵀW / N pooled over the matrices, sorted ascending, rank loss)``."""
    count, n, m = mats.shape
    # The Gram matrix WᵀW (M x M) and its symmetric eigenvalues: cheaper than an SVD of the
    # N x M matrix. float64 for small matrices; float32 from M = FLOAT32_FROM on (3x faster;
    # eigenvalue errors about 1e-7 λ_max, far below the tail the fit reads).
    dtype = np.float32 if m >= FLOAT32_FROM else np.float64
    mats = mats.astype(dtype, copy=False)
    gram = np.matmul(np.swapaxes(mats, 1, 2), mats)
    evals = np.linalg.eigvalsh(gram).ravel().astype(np.float64)
    ww_scale = (count / 2.0) if conv and count > 1 else 1.0  # WeightWatcher's conv2d_norm
    keep = evals * ww_scale > EVALS_THRESH
    return np.sort(evals[keep]) / n, int((~keep).sum())


# -- the power-law fit -------------------------------------------------------------------------

def fit_power_law(evals: Iterable[float]) -> Optional[PowerLawFit]:
    """Clauset et al.'s continuous power-law fit: for each candidate ``x_min`` (every value but
    the largest) the maximum-likelihood ``α`` of the tail ``x ≥ x_min`` and its KS distance;
    the candidate with the smallest distance wins. None for fewer than :data:`MIN_EVALS` values.
    """
    x = np.sort(np.asarray(list(evals) if not isinstance(evals, np.ndarray) else evals, dtype=np.float64))
    x = x[x > 0]
    n = len(x)
    if n < MIN_EVALS:
        return None
    logx = np.log(x)
    suffix = np.cumsum(logx[::-1])[::-1]  # Σ_{j≥i} ln x_j
    cand = np.arange(n - 1)
    n_tail = (n - cand).astype(np.float64)
    denom = suffix[:-1] - n_tail * logx[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = np.where(denom > 0, 1.0 + n_tail / denom, np.nan)
    ds = np.ones(n - 1)
    block = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, n - 1, block):
        stop = min(n - 1, start + block)
        a = alphas[start:stop, None]
        # rows: candidates i; columns: values j ≥ start. For j < i, ln(x_j/x_i) is clipped to 0
        # and the tail position to 0, so both CDFs are 0 there and the gap is 0.
        rel = logx[None, start:] - logx[start:stop, None]  # ln(x_j / x_i)
        np.maximum(rel, 0.0, out=rel)
        with np.errstate(over="ignore", invalid="ignore"):
            rel *= 1.0 - a
            np.exp(rel, out=rel)  # 1 - (the power law's CDF at x_j)
        k = np.arange(n - start, dtype=np.float64)[None, :] - (cand[start:stop, None] - start)
        np.maximum(k, 0.0, out=k)
        k /= n_tail[start:stop, None]  # the empirical CDF just below x_j
        rel += k
        rel -= 1.0
        d = np.abs(rel, out=rel).max(axis=1)
        ok = np.isfinite(alphas[start:stop]) & (alphas[start:stop] > 1)
        ds[start:stop] = np.where(ok, d, 1.0)
    i = int(np.argmin(ds))
    alpha = float(alphas[i])
    if not np.isfinite(alpha):
        return None
    tail = int(n - i)
    return PowerLawFit(alpha=alpha, xmin=float(x[i]), D=float(ds[i]), n_tail=tail,
                       sigma=float((alpha - 1) / np.sqrt(tail)))


# -- a layer -----------------------------------------------------------------------------------

def layer_spectrum(node, arrays: dict) -> Optional[LayerSpectrum]:
    """The spectral analysis of one layer (see the module's docstring), or None when the layer
    has no weight matrix this reads. Pure: a function of the node and its arrays."""
    mats = weight_matrices(node, arrays)
    if mats is None or mats.shape[1] > MAX_N:
        return None
    if not np.all(np.isfinite(mats)):
        return None  # NaN / Inf: the weight-value rules report it; no spectrum to speak of
    conv = getattr(node, "op", None) in ("conv", "conv_transpose") and mats.shape[0] > 1
    evals, rank_loss = eigenvalues(mats, conv)
    fit = fit_power_law(evals)
    return LayerSpectrum(
        alpha=None if fit is None else fit.alpha, xmin=None if fit is None else fit.xmin,
        D=None if fit is None else fit.D, n_tail=0 if fit is None else fit.n_tail,
        n_evals=int(len(evals)), n_matrices=int(mats.shape[0]), shape=tuple(int(s) for s in mats.shape[1:]),
        lambda_max=float(evals[-1]) if len(evals) else 0.0, rank_loss=rank_loss)


def layer_analysis(node, arrays: dict) -> Optional[dict]:
    """:func:`layer_spectrum` as a plain dict (what the per-layer weight statistics keep)."""
    spectrum = layer_spectrum(node, arrays)
    return None if spectrum is None else spectrum.to_dict()


def average_alpha(spectra) -> Optional[float]:
    """The model's average α over the layers that have one (WeightWatcher's summary ``alpha``).
    ``spectra``: LayerSpectrum objects or their dicts."""
    alphas = [s["alpha"] if isinstance(s, dict) else s.alpha for s in spectra if s is not None]
    alphas = [a for a in alphas if a is not None]
    return float(np.mean(alphas)) if alphas else None
