"""ML97x: the spectra of the trained weights (need the model's weights: ``ctx.weights``).

The per-layer power-law exponent α of the empirical spectral density of ``WᵀW``
(:mod:`modellint.analysis.spectral`, WeightWatcher's method) is computed in the weights'
one streaming pass: registered here as the per-layer analysis ``"spectral"``.
"""

from __future__ import annotations

import numpy as np

from ..analysis import spectral
from ..analysis.weights import register_layer_analysis
from ..build_weights import CHANGES, WeightsExample, _kernel
from .weights import model_at_init
from .base import Rule, register

#: The name of the per-layer analysis (``LayerStats.extra["spectral"]``).
ANALYSIS = "spectral"
register_layer_analysis(ANALYSIS, spectral.layer_analysis, replace=True)

#: The healthy range of α (Martin & Mahoney 2021; WeightWatcher's documentation).
ALPHA_LOW, ALPHA_HIGH = 2.0, 6.0
#: Layers with fewer eigenvalues than this are not judged (WeightWatcher's docs: below about 50
#: the fit is noise).
MIN_RULE_EVALS = 50


def heavy_tailed(df: float):
    """Example weights: the kernel redrawn from a Student t with ``df`` degrees of freedom at the
    same RMS (df ≤ 2: a very heavy tail, α < 2; df about 2.5-3: the heavy tail of a trained layer)."""
    def change(graph, node, arrays):
        k = _kernel(arrays)
        w = arrays[k]
        rng = np.random.default_rng(int(df * 1000) + len(node.name))
        x = rng.standard_t(df, w.shape)
        rms = float(np.sqrt(np.mean(np.square(w, dtype=np.float64)))) or 1.0
        arrays[k] = (x / np.sqrt(np.mean(x * x)) * rms).astype(w.dtype)
    return change


CHANGES.setdefault("heavy_tailed", heavy_tailed)

_MLP = "seq(inp(256), dense(512, act='relu'), dense(256, act='relu'), dense(10, act='softmax'))"
_CNN = "seq(inp(32, 32, 3), conv(64, act='relu'), conv(128, act='relu'), gap(), dense(10, act='softmax'))"
_TORCH = ("seq(inp(32, 32, 3), conv(64, act='relu'), conv(128, act='relu'), gap(), dense(10), "
          "framework='torch')")


def spectra(ctx) -> dict:
    """``{node: spectral dict}`` of the layers with a fitted α (in graph order)."""
    if ctx.weights is None:
        return {}
    out = {}
    for node, value in ctx.weights.analysis(ANALYSIS).items():
        if value and value.get("alpha") is not None and (node in ctx.graph.nodes or not ctx.graph.nodes):
            out[node] = value
    return out


def _layers(ctx, items) -> str:
    shown = [f"{ctx.label(ctx.graph.nodes[n]) if n in ctx.graph.nodes else n} (α {s['alpha']:.2f})"
             for n, s in items[:8]]
    return ", ".join(shown) + (f", … ({len(items)} in all)" if len(items) > 8 else "")


@register
class SpectralAlpha(Rule):
    """
    ## What it does
    Flags layers whose weight spectra fall outside the healthy range 2 ≤ α ≤ 6 of their
    power-law exponent, and a model whose spectra look untrained. It fits a power law `p(λ) ∝ λ^-α` to the tail of each layer's empirical spectral density:
    the eigenvalues of `X = WᵀW / N` (a dense layer's `N x M` weight matrix; a convolution
    sliced into one `c_out x c_in` matrix per kernel position, eigenvalues pooled), with the
    continuous maximum-likelihood α and the tail's start `λ_min` chosen by the smallest
    Kolmogorov–Smirnov distance (Clauset et al. 2009), as WeightWatcher does. Layers with at
    least 50 eigenvalues (`MIN_RULE_EVALS`) are judged against the healthy range
    2 ≤ α ≤ 6 (`ALPHA_LOW`, `ALPHA_HIGH`): α > 6 is under-trained (a random-like,
    Marchenko–Pastur spectrum with no heavy tail), α < 2 is a very heavy tail (over-fit, or
    over-regularised by too large a learning rate or too small a batch). Layers out of range
    are grouped into one finding per direction, an info; when the median α of the judged
    layers is above 6 the finding is a warning: the model looks untrained. When every layer
    still holds its initializer's values, ML966 says the model is untrained and this rule
    leaves the under-trained side unsaid. The model's average
    α (WeightWatcher's summary metric) is in the evidence and in the report.

    ## Why is this bad
    Martin & Mahoney found across hundreds of pretrained models that training makes the
    weight spectra heavy-tailed, with α between 2 and 4 in well-trained layers and a lower
    average α in the better models of a series. A layer with α > 6 has barely moved from its
    random initialisation: it does not carry learned structure (frozen, too few steps, too
    small a learning rate for it). α < 2 marks layers whose few largest directions dominate:
    seen in over-fit and over-trained layers. The measure needs no data, but it is a
    statistical fit: small layers give noisy α (a random 128 x 64 matrix can fit anywhere
    from 2.5 to 9), hence the minimum size and the info severity.

    ## Fix
    For α > 6: check that the layer trains (trainable, in the optimizer, learning rate not
    zeroed for it) and train longer or with a larger learning rate; in a fine-tuned model
    the layer may simply be unused. For α < 2: stop earlier (the checkpoint with the best
    validation loss), lower the learning rate, add weight decay or data. Compare α across
    checkpoints rather than trusting one number.
    """

    code = "ML971"
    name = "spectral-alpha-out-of-range"
    category = "weights"
    severity = "info"
    impact = 1
    needs = ("weights",)
    needs_model = ()
    references = (
        "Martin & Mahoney 2021, Implicit self-regularization in deep neural networks (JMLR 22(165))",
        "Martin, Peng & Mahoney 2021, Predicting trends in the quality of state-of-the-art neural networks "
        "without access to training or testing data (Nature Communications 12, 4122)",
        "Clauset, Shalizi & Newman 2009, Power-law distributions in empirical data (SIAM Review 51(4))",
        "https://weightwatcher.ai/",
    )
    INVALID = [WeightsExample(_CNN, "{'*': heavy_tailed(1000)}"),  # near-Gaussian: a random matrix's spectrum
               WeightsExample(_MLP, "{'dense_1': heavy_tailed(2.5), 'dense_2': heavy_tailed(1)}"),
               WeightsExample(_TORCH, "{'conv_2': heavy_tailed(1)}")]
    VALID = [WeightsExample(_MLP, "{'*': heavy_tailed(2.5)}"),
             WeightsExample(_CNN, "{'*': heavy_tailed(2.5)}"),
             WeightsExample(_CNN, "{'*': at_init()}")]  # every layer at its initializer: ML966's finding

    @classmethod
    def tables(cls) -> list:
        return [("Reading α (Martin & Mahoney; WeightWatcher)",
                 "| α | the layer's spectrum | reading |\n|---|---|---|\n"
                 f"| > {ALPHA_HIGH:g} | Marchenko–Pastur bulk, no heavy tail | under-trained, random-like |\n"
                 f"| {ALPHA_LOW:g} – {ALPHA_HIGH:g} | heavy-tailed (most often 2–4) | trained |\n"
                 f"| < {ALPHA_LOW:g} | very heavy tail | over-fit / over-regularised |")]

    def check(self, ctx):
        judged = [(n, s) for n, s in spectra(ctx).items() if s["n_evals"] >= MIN_RULE_EVALS]
        if not judged:
            return
        avg = float(np.mean([s["alpha"] for _, s in judged]))
        high = [(n, s) for n, s in judged if s["alpha"] > ALPHA_HIGH]
        low = [(n, s) for n, s in judged if s["alpha"] < ALPHA_LOW]

        def evidence(items):
            return {"average_alpha": round(avg, 3), "layers_judged": len(judged),
                    "range": [ALPHA_LOW, ALPHA_HIGH],
                    "layers": {n: {"alpha": round(s["alpha"], 3), "n_evals": s["n_evals"], "n_tail": s["n_tail"],
                                   "D": round(s["D"], 4)} for n, s in items}}

        if high and not model_at_init(ctx):  # a model at its initializer: ML966 says so, once
            median = float(np.median([s["alpha"] for _, s in judged]))
            every = len(judged) >= 2 and median > ALPHA_HIGH
            head = (f"the model looks untrained: its weight spectra have no heavy tail (median α {median:.2f} "
                    f"> {ALPHA_HIGH:g} over {len(judged)} layers, average {avg:.2f}); α > {ALPHA_HIGH:g} in "
                    f"{len(high)}: " if every else
                    f"{len(high)} of {len(judged)} layers look under-trained by their weight spectra "
                    f"(α > {ALPHA_HIGH:g}): ")
            yield self.finding(
                head + _layers(ctx, high), layers=[n for n, _ in high], evidence=evidence(high),
                severity="warning" if every else None,
                explanation="Their eigenvalue distributions look like a random matrix's: training has not "
                            "given them the heavy-tailed spectrum learned layers have (Martin & Mahoney 2021).",
                fix=ctx.say("Check that these layers are trainable and train longer or with a larger learning "
                            "rate; in a fine-tuned model they may be unused.",
                            "Check that these modules' parameters require grad and are in the optimizer; train "
                            "longer or with a larger learning rate."))
        if low:
            yield self.finding(
                f"{len(low)} of {len(judged)} layers have very heavy-tailed weight spectra "
                f"(α < {ALPHA_LOW:g}; over-fit or over-regularised): " + _layers(ctx, low),
                layers=[n for n, _ in low], evidence=evidence(low),
                explanation="A few directions dominate these layers' weights, as in over-fit or over-trained "
                            "layers (Martin & Mahoney 2021).",
                fix="Use the checkpoint with the best validation loss (early stopping), lower the learning rate "
                    "or add weight decay or data; compare α across checkpoints.")


def model_alpha(store) -> dict:
    """The report's spectral summary of a :class:`~modellint.analysis.weights.WeightStore`:
    ``{"layers": {node: {alpha, n_evals, ...}}, "average_alpha": float | None, "range": [2, 6]}``."""
    if store is None or store.empty:
        return {}
    per = {n: v for n, v in store.analysis(ANALYSIS).items() if v}
    fitted = {n: v for n, v in per.items() if v.get("alpha") is not None}
    judged = [v["alpha"] for v in fitted.values() if v["n_evals"] >= MIN_RULE_EVALS]
    avg = spectral.average_alpha(list(fitted.values()))
    return {"layers": per, "average_alpha": avg,
            "average_alpha_judged": float(np.mean(judged)) if judged else None,
            "range": [ALPHA_LOW, ALPHA_HIGH], "min_evals": MIN_RULE_EVALS}

