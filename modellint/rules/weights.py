"""ML96x: what the trained weights say (need the model's weights: ``ctx.weights``).

The rules read the per-layer statistics of :mod:`modellint.analysis.weights` (one streaming
pass over the weights), never the arrays. Their examples carry small weight arrays
(:class:`modellint.build_weights.WeightsExample`): trained-looking weights with one fault planted.
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..analysis.weights import DEAD_FRACTION, DUPLICATE_COSINE, DUPLICATE_MAX_UNITS, DUPLICATE_MIN_DIM, INIT_MIN_SIZE
from ..build_weights import WeightsExample
from .base import Rule, register
from .context import names

_CNN = ("seq(inp(32, 32, 3), conv(32, act='relu'), pool(2), conv(64, act='relu'), gap(), "
        "dense(10, act='softmax'))")
_CNN_BN = ("seq(inp(32, 32, 3), conv(32, bias=False), bn(), relu(), pool(2), conv(64, bias=False), bn(), "
           "relu(), gap(), dense(10, act='softmax'))")
_TORCH = ("seq(inp(32, 32, 3), conv(32, act='relu'), pool(2), conv(64, act='relu'), gap(), dense(10), "
          "framework='torch')")

#: |γ| below this fraction of the layer's median |γ| (or exactly 0): the channel is ignored.
GAMMA_FRACTION = 0.01
#: Running variance below this fraction of the layer's median (or exactly 0): a constant channel.
VARIANCE_FRACTION = 1e-3
#: Layer scale (kernel RMS × √values per unit) above this: exploding.
SCALE_HIGH = 30.0
#: ... below this, where no normalization follows to undo it: vanishing.
SCALE_LOW = 0.05
#: A layer's scale more than this many times the model's median (either way): an outlier.
SCALE_RATIO = 20.0
#: Dead units in at least this share of a layer make the finding a warning (else info).
DEAD_WARN_SHARE = 0.10

_UNIT_WORD = {"conv": "filters", "conv_transpose": "filters", "depthwise_conv": "channels",
              "separable_conv": "filters", "dense": "units"}
_PASS = ("pool_max", "pool_avg", "dropout", "identity", "pad", "upsample", "reshape", "flatten", "crop")


class _WeightRule(Rule):
    category = "weights"
    needs = ("weights",)
    needs_model = ()

    @staticmethod
    def node_label(ctx, name: str) -> str:
        node = ctx.graph.nodes.get(name)
        return ctx.label(node) if node is not None else name

    @staticmethod
    def stats(ctx) -> list:
        return [st for st in ctx.weights if st.node in ctx.graph.nodes or not ctx.graph.nodes]


def _idx(items, n=8) -> str:
    items = list(items)
    return ", ".join(map(str, items[:n])) + (f", … ({len(items)} in all)" if len(items) > n else "")


@register
class NonFiniteWeights(_WeightRule):
    """
    ## What it does
    Flags layers whose weights hold NaN or Inf values, naming each layer and how many.

    ## Why is this bad
    A single NaN weight turns every activation it reaches into NaN: the model's outputs are
    meaningless, and further training cannot recover (NaN gradients). It is the trace of a
    training run that diverged (learning rate too high, no gradient clipping, a log of zero
    or a division by zero in the loss, float16 overflow) and was saved anyway.

    ## Fix
    Go back to the last checkpoint saved before the loss became NaN and resume with a lower
    learning rate and gradient clipping (`clipnorm=1.0` in Keras, `torch.nn.utils.clip_grad_norm_`
    in PyTorch); check the inputs for NaN; under mixed precision keep loss scaling on. Keras'
    `TerminateOnNaN` callback stops a run before it writes such a file.
    """

    code = "ML961"
    name = "non-finite-weights"
    severity = "error"
    impact = 3
    references = ("Goodfellow, Bengio & Courville 2016, Deep Learning, §8.2.4 (cliffs and exploding gradients)",
                  "https://keras.io/api/callbacks/terminate_on_nan/")
    INVALID = [WeightsExample(_CNN, "{'conv_2': nan(3)}"), WeightsExample(_TORCH, "{'dense_1': inf(1)}")]
    VALID = [WeightsExample(_CNN), WeightsExample(_TORCH)]

    def check(self, ctx):
        for st in self.stats(ctx):
            bad = st.nonfinite
            if not bad:
                continue
            nan = sum(a for a, _ in bad.values())
            inf = sum(b for _, b in bad.values())
            what = " and ".join(x for x in (f"{nan:,} NaN" if nan else "", f"{inf:,} Inf" if inf else "") if x)
            yield self.finding(
                f"{self.node_label(ctx, st.node)}: {what} among its {st.params:,} weights "
                f"({', '.join(sorted(bad))})", layers=[st.node],
                evidence={"nan": nan, "inf": inf, "values": st.params,
                          "arrays": {k: {"nan": a, "inf": b} for k, (a, b) in bad.items()}},
                explanation="Every output this layer reaches is NaN; the run that saved these weights diverged.",
                fix=ctx.say("Resume from the last finite checkpoint with a lower learning rate and "
                            "clipnorm=1.0 in the optimizer; add keras.callbacks.TerminateOnNaN().",
                            "Resume from the last finite checkpoint with a lower learning rate and "
                            "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0) before each step."),
                snippets={"keras": "optimizer = keras.optimizers.Adam(learning_rate=1e-4, clipnorm=1.0)",
                          "torch": "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)"})


@register
class DeadUnits(_WeightRule):
    """
    ## What it does
    Flags conv filters and dense units whose kernel is all zero, or whose norm is below
    1 % (`DEAD_FRACTION`) of the median unit norm of their layer, with their count and
    share per layer. A warning from 10 % of a layer's units, else info. A hidden layer
    whose every unit is zero is ML701's (zero initialisation), and so is not repeated
    here; nor is an all-zero output layer of an untrained model (a zero-initialised head).

    ## Why is this bad
    A unit with no kernel outputs a constant (its bias): it carries no information, yet
    costs parameters and compute in this layer and the next. Units die when a ReLU unit
    stops receiving gradient (learning rate too high, a large negative bias) and weight decay
    or L1 then shrinks its weights to zero, or when weights were pruned or zeroed by a bug.
    Many dead units in one layer mean it is narrower than it looks.

    ## Fix
    Prune the dead units (the layer and the next shrink, the outputs do not change), or
    retrain with a lower learning rate, less weight decay, or a leaky activation (LeakyReLU,
    ELU, GELU) so units cannot die.
    """

    code = "ML962"
    name = "dead-units"
    severity = "warning"
    impact = 2
    references = ("Lu et al. 2020, Dying ReLU and Initialization: Theory and Numerical Examples (CiCP)",
                  "Li et al. 2017, Pruning Filters for Efficient ConvNets (ICLR)")
    INVALID = [WeightsExample(_CNN, "{'conv_2': dead(16)}"), WeightsExample(_TORCH, "{'conv_1': tiny(4)}")]
    VALID = [WeightsExample(_CNN), WeightsExample(_TORCH, "{'conv_1': scaled(0.3)}")]

    def check(self, ctx):
        heads = {ctx.head_layer(o).name for o in ctx.outputs()}
        for st in self.stats(ctx):
            if not st.dead_units or st.units < 2 or st.nonfinite:
                continue
            # a hidden layer of zeros is ML701's (zero initialisation); an output layer of zeros in an
            # untrained model is the zero-initialised head trick
            if st.zero_kernel and (st.node not in heads or model_at_init(ctx)):
                continue
            n, share = len(st.dead_units), len(st.dead_units) / st.units
            zero = int(np.count_nonzero(st.unit_norms[st.dead_units] == 0))
            word = _UNIT_WORD.get(st.role, "units")
            how = ("all zero" if zero == n else f"norm below {DEAD_FRACTION:.0%} of the layer's median"
                   if zero == 0 else f"{zero} all zero, {n - zero} with norm below {DEAD_FRACTION:.0%} of the median")
            yield self.finding(
                f"{self.node_label(ctx, st.node)}: {n} of {st.units} {word} dead ({share:.0%}), kernels {how} "
                f"({word} {_idx(st.dead_units)})", layers=[st.node],
                severity="warning" if share >= DEAD_WARN_SHARE else "info",
                evidence={"dead": n, "units": st.units, "share": round(share, 4), "all_zero": zero,
                          "indices": st.dead_units[:64], "median_norm": float(np.median(st.unit_norms)),
                          "threshold": DEAD_FRACTION},
                explanation=f"These {word} output a constant: the layer computes with {st.units - n} of "
                            f"its {st.units}.",
                fix=ctx.say(f"Prune the dead {word} (Conv2D/Dense with {st.units - n} instead of {st.units}), or "
                            "retrain with a lower learning rate, less weight decay or LeakyReLU.",
                            f"Prune the dead {word} ({st.units - n} out_channels/out_features instead of "
                            f"{st.units}), or retrain with a lower learning rate, less weight decay or nn.LeakyReLU."))


@register
class BatchNormDeadChannels(_WeightRule):
    """
    ## What it does
    Flags BatchNorm channels whose scale γ is about zero (|γ| below 1 % of the layer's median
    |γ|, or exactly 0: info, prunable) and channels whose running variance is about zero
    (below 0.1 % of the layer's median, or exactly 0: warning).

    ## Why is this bad
    A channel with γ ≈ 0 outputs the constant β whatever its input: the network ignores it,
    so it and the filter feeding it can be pruned (Network Slimming prunes by exactly this
    signal). A running variance of about zero means the channel's input was constant in
    training (often a dead filter upstream); at inference BatchNorm divides by √(var + ε), so
    any input that differs slightly from the training constant is amplified by up to 1/√ε
    (316× for ε = 10⁻⁵).

    ## Fix
    Prune the γ ≈ 0 channels together with the filters producing them. For variance ≈ 0,
    find why the channel is constant (a dead filter in the layer before: see ML962) and prune
    or re-initialise it; a larger `epsilon` bounds the amplification.
    """

    code = "ML963"
    name = "batchnorm-dead-channels"
    severity = "warning"
    impact = 1
    references = ("Liu et al. 2017, Learning Efficient Convolutional Networks through Network Slimming (ICCV)",
                  "Ioffe & Szegedy 2015, Batch Normalization (ICML)")
    INVALID = [WeightsExample(_CNN_BN, "{'bn_2': gamma_zero(12)}"), WeightsExample(_CNN_BN, "{'bn_1': var_zero(3)}")]
    VALID = [WeightsExample(_CNN_BN)]

    def check(self, ctx):
        for st in self.stats(ctx):
            if st.role != "batchnorm":
                continue
            label = self.node_label(ctx, st.node)
            if st.gamma is not None and st.gamma.size and np.all(np.isfinite(st.gamma)):
                g = np.abs(st.gamma)
                small = np.nonzero((g == 0) | (g < GAMMA_FRACTION * np.median(g)))[0]
                if len(small) and not st.bn_at_init:
                    yield self.finding(
                        f"{label}: {len(small)} of {g.size} channels have γ ≈ 0 ({len(small) / g.size:.0%}): the "
                        f"output ignores them (channels {_idx(small.tolist())})", layers=[st.node], severity="info",
                        evidence={"channels": len(small), "of": int(g.size), "indices": small[:64].tolist(),
                                  "gamma": [round(float(st.gamma[i]), 6) for i in small[:16]],
                                  "median_abs_gamma": float(np.median(g)), "threshold": GAMMA_FRACTION},
                        explanation="Each such channel outputs its β, a constant: prunable with the filter "
                                    "that feeds it.",
                        fix="Prune these channels and the filters producing them (fold β into the next layer's "
                            "bias); the model's outputs stay as they are.")
            if st.moving_variance is not None and st.moving_variance.size and np.all(np.isfinite(st.moving_variance)):
                v = st.moving_variance
                med = float(np.median(v))
                flat = np.nonzero((v <= 0) | (v < VARIANCE_FRACTION * med))[0]
                if len(flat):
                    eps = st.epsilon or (1e-5 if ctx.torch else 1e-3)
                    yield self.finding(
                        f"{label}: {len(flat)} of {v.size} channels have running variance ≈ 0 "
                        f"(min {float(v[flat].min()):.2g}, median {med:.2g}): their input was constant in "
                        f"training and is amplified up to {1 / math.sqrt(eps):.0f}× at inference",
                        layers=[st.node],
                        evidence={"channels": len(flat), "of": int(v.size), "indices": flat[:64].tolist(),
                                  "variance": [float(v[i]) for i in flat[:16]], "median_variance": med,
                                  "epsilon": eps, "threshold": VARIANCE_FRACTION},
                        explanation="BatchNorm divides by √(var + ε): a channel constant in training turns "
                                    "small input changes into large outputs.",
                        fix="Find the dead filter feeding these channels (ML962) and prune or re-initialise it; "
                            + ctx.say("BatchNormalization(epsilon=1e-2) bounds the amplification.",
                                      "nn.BatchNorm2d(c, eps=1e-3) bounds the amplification."))


def _normalized_after(ctx, node) -> bool:
    """A normalization follows (through activations and shape-only ops): the layer's scale
    does not reach the output (BatchNorm undoes it)."""
    through = lambda n: n.op == "activation" or n.op in _PASS  # noqa: E731
    return any(ctx.kind(n) == ops.NORMALIZATION for n in ctx.forward(node, through))


@register
class WeightScaleOutlier(_WeightRule):
    """
    ## What it does
    Flags exploding and vanishing weights. A layer's scale is its kernel's RMS × √(values per
    unit), about the factor by which it multiplies the signal (He initialisation gives √2,
    Glorot about 1, PyTorch's default 1/√3; trained layers stay within about 0.1–10). Flagged:
    a scale above 30 (exploding); below 0.05 (vanishing); or more than 20× from the model's
    median scale either way. The low side is not flagged where a normalization follows,
    since BatchNorm/LayerNorm undo the scale.

    ## Why is this bad
    An exploding layer multiplies activations and gradients by its scale: training was
    unstable or diverging (a learning rate too high, no weight decay) and the model is
    sensitive to small input changes. A vanishing layer passes almost nothing on: the
    layers after it learn from near-zero inputs and its own gradients are tiny. One layer
    far from the rest usually means a training problem local to it (a missing
    normalization, a mis-set initializer, weights loaded at the wrong scale).

    ## Fix
    Retrain with a lower learning rate, weight decay and gradient clipping; add a
    normalization layer after the layer; check the initializer and any manual weight loading.
    """

    code = "ML964"
    name = "weight-scale-outlier"
    severity = "warning"
    impact = 2
    references = ("He et al. 2015, Delving Deep into Rectifiers (ICCV)",
                  "Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural "
                  "networks (AISTATS)",
                  "Pascanu, Mikolov & Bengio 2013, On the difficulty of training recurrent neural networks (ICML)")
    INVALID = [WeightsExample(_CNN, "{'conv_2': scaled(60)}"), WeightsExample(_TORCH, "{'dense_1': scaled(0.01)}")]
    VALID = [WeightsExample(_CNN), WeightsExample(_CNN_BN, "{'conv_1': scaled(0.01)}")]

    def check(self, ctx):
        rows = []
        for st in self.stats(ctx):
            if st.role in ("embedding", "batchnorm", "other") or st.nonfinite:
                continue
            k = st.kernel_stats
            if k is None or k.size < 2 or k.std == 0 and k.mean == 0:
                continue
            dim = st.unit_dim or st.fan_in
            scale = k.rms * math.sqrt(dim) if dim else None
            if scale:
                node = ctx.graph.nodes.get(st.node)
                rows.append((st, scale, node is not None and _normalized_after(ctx, node)))
        if not rows:
            return
        median = float(np.median([s for _, s, _ in rows]))
        for st, scale, normed in rows:
            ratio = scale / median if median else 1.0
            high = scale > SCALE_HIGH or (len(rows) >= 3 and ratio > SCALE_RATIO)
            low = not normed and (scale < SCALE_LOW or (len(rows) >= 3 and ratio < 1 / SCALE_RATIO))
            if not (high or low):
                continue
            word = "exploding" if high else "vanishing"
            yield self.finding(
                f"{self.node_label(ctx, st.node)}: {word} weights, scale {scale:.3g} (kernel RMS "
                f"{st.kernel_stats.rms:.3g} × √{st.unit_dim or st.fan_in}; the model's median layer {median:.3g}, "
                f"{ratio:.3g}×)", layers=[st.node],
                evidence={"scale": round(scale, 4), "rms": st.kernel_stats.rms, "absmax": st.kernel_stats.absmax,
                          "median_scale": round(median, 4), "ratio": round(ratio, 4), "normalized_after": normed,
                          "thresholds": {"high": SCALE_HIGH, "low": SCALE_LOW, "ratio": SCALE_RATIO}},
                explanation=("This layer multiplies its input's scale by about "
                             f"{scale:.3g}: activations and gradients through it {'blow up' if high else 'vanish'}."),
                fix=("Retrain with a lower learning rate, weight decay and gradient clipping; " if high else
                     "Check its initializer and any manual weight loading; ")
                + ctx.say("add BatchNormalization after it.", "add nn.BatchNorm after it."))


@register
class DuplicateUnits(_WeightRule):
    """
    ## What it does
    Flags layers with near-identical filters or units: kernels whose cosine similarity is
    0.99 or more (`DUPLICATE_COSINE`), compared within each layer over its first 2,048 units
    (fewer for very wide kernels) by one matrix product of the normalised kernels. Kernels
    of fewer than 16 values (3×3 depthwise filters) are not compared: they agree by chance.

    ## Why is this bad
    Two units with the same kernel compute the same feature (up to scale): the layer holds
    fewer distinct features than its width, and the copies stay together under training.
    Copies come from a symmetric or constant initialisation, from weights copied or tiled by
    hand, or from a layer that collapsed during training.

    ## Fix
    Re-initialise the layer with a random initializer (the framework default) and retrain;
    check any code that copies or tiles weights; if the copies came from training, the
    layer can be narrower (merge the copies: add their outgoing weights into one).
    """

    code = "ML965"
    name = "duplicate-units"
    severity = "warning"
    impact = 2
    references = ("RoyChowdhury, Sharma & Learned-Miller 2017, Reducing Duplicate Filters in Deep Neural "
                  "Networks (NeurIPS workshop)",)
    INVALID = [WeightsExample(_CNN, "{'conv_2': duplicate(5)}"), WeightsExample(_TORCH, "{'conv_2': duplicate(2)}")]
    VALID = [WeightsExample(_CNN), WeightsExample(_TORCH)]

    def check(self, ctx):
        for st in self.stats(ctx):
            if not st.duplicate_pairs or st.nonfinite:
                continue
            parent = {}

            def find(i):
                while parent.get(i, i) != i:
                    i = parent[i]
                return i

            for i, j, _ in st.duplicate_pairs:
                parent[find(j)] = find(i)
            members = {i for p in st.duplicate_pairs for i in p[:2]}
            groups = {}
            for m in members:
                groups.setdefault(find(m), []).append(m)
            redundant = len(members) - len(groups)
            word = _UNIT_WORD.get(st.role, "units")
            shown = "; ".join("≈".join(map(str, sorted(g))) for g in list(groups.values())[:4])
            yield self.finding(
                f"{self.node_label(ctx, st.node)}: {redundant} of {st.units} {word} duplicate others "
                f"(cosine ≥ {DUPLICATE_COSINE}): {shown}{' …' if len(groups) > 4 else ''}", layers=[st.node],
                evidence={"pairs": len(st.duplicate_pairs), "redundant": redundant, "groups": len(groups),
                          "units": st.units, "compared": st.duplicates_compared,
                          "examples": [list(p) for p in st.duplicate_pairs[:10]], "threshold": DUPLICATE_COSINE},
                explanation=f"The layer computes {st.units - redundant} distinct features with {st.units} {word}.",
                fix=ctx.say("Re-initialise it with a random initializer (glorot_uniform / he_normal) and check any "
                            "code that copies weights.",
                            "Re-initialise it (reset_parameters(), PyTorch's default init) and check any code that "
                            "copies weights."))


def _init_checked(ctx) -> tuple:
    """(kernels, batchnorms): the layers whose statistics were compared with an initializer."""
    kernels, bns = [], []
    for st in (_WeightRule.stats(ctx) if ctx.weights is not None else ()):
        if not st.init_checked or st.nonfinite:
            continue
        (bns if st.role == "batchnorm" else kernels).append(st)
    return kernels, bns


#: Excess kurtosis above which a kernel's values are heavy-tailed, as training makes them: the
#: initializers of the table give -1.2 (uniform), -0.64 (truncated normal) or 0 (normal).
TRAINED_KURTOSIS = 1.0


def trained_evidence(ctx) -> list:
    """Layers whose weights show that training happened: a BatchNorm that left γ = 1, β = 0, or
    a kernel matching no initializer whose values are heavy-tailed (excess kurtosis above
    :data:`TRAINED_KURTOSIS`). A kernel that merely matches no initializer of the table is not
    evidence (an LSTM's orthogonal kernel, EfficientNet's variance scaling, a custom init)."""
    kernels, bns = _init_checked(ctx)
    moved_bn = [st.node for st in bns if not st.bn_at_init]
    heavy = [st.node for st in kernels if st.init is None and st.kernel_stats is not None
             and st.kernel_stats.kurtosis > TRAINED_KURTOSIS]
    return moved_bn + heavy


def model_at_init(ctx) -> bool:
    """Whether the model is at its initialisation (ML966's untrained model): some layers still
    hold an initializer's values (or BatchNorm's γ = 1, β = 0) and either they are the majority of the layers checked or no
    layer shows evidence of training (:func:`trained_evidence`). Other weight rules then describe
    the initializer, and leave the saying to ML966."""
    kernels, bns = _init_checked(ctx)
    at_init = sum(st.init is not None for st in kernels)
    if not (at_init or any(st.bn_at_init for st in bns)):
        return False
    return 2 * at_init > len(kernels) or not trained_evidence(ctx)


@register
class UntrainedLayers(_WeightRule):
    """
    ## What it does
    Flags layers whose weights still look freshly initialised while the rest of the model
    trained (a warning), and a model that is at its initialisation (one info finding: the file
    holds an untrained model, normal for an architecture saved before training): more than
    half of the layers checked match an initializer, or none shows evidence of training — a
    BatchNorm that left γ = 1, β = 0, or a heavy-tailed kernel (excess kurtosis above 1,
    `TRAINED_KURTOSIS`). A kernel that merely matches no initializer of the table (an LSTM's
    orthogonal recurrent kernel, a custom init) is not evidence. A kernel of 256 or
    more values (`INIT_MIN_SIZE`) matches an initializer when, for its fan-in and fan-out
    as the framework computes them, its mean is within 5 standard errors of zero, its
    standard deviation within 5 standard errors (+1 %) of the initializer's, its excess
    kurtosis within 5·√(24/n) + 0.05 of the distribution's (−1.2 uniform, −0.64 normal
    truncated at 2σ, 0 normal), every value within the distribution's bound and the largest
    close to it (bounded initializers: training pushes some weights past the bound within
    a few steps), and its bias all zero (Keras) or within PyTorch's default bias bound.
    Initializers tried: Keras' glorot/he/lecun uniform and (truncated) normal; PyTorch's
    default kaiming_uniform(a=√5), kaiming uniform/normal (fan-in and fan-out), xavier
    uniform/normal. A BatchNorm layer with γ = 1 and β = 0 exactly is also at initialisation.

    ## Why is this bad
    A layer at its initial random weights computes a random projection: it was frozen by
    mistake (`trainable=False`, `requires_grad_(False)`, parameters left out of the
    optimizer), or a new head was never trained, or the weights were not loaded. A whole
    model at initialisation is a file saved before training.

    ## Fix
    Check that the layer is trainable and that its parameters are in the optimizer
    (`model.trainable_weights`; `optimizer.param_groups`), that the weights you meant were
    loaded (`load_weights` / `load_state_dict` without `strict=False` hiding missing keys),
    and save the model after training.
    """

    code = "ML966"
    name = "untrained-layers"
    severity = "warning"
    impact = 3
    references = ("Glorot & Bengio 2010 (AISTATS)", "He et al. 2015, Delving Deep into Rectifiers (ICCV)",
                  "https://pytorch.org/docs/stable/nn.init.html",
                  "https://keras.io/api/layers/initializers/")
    INVALID = [WeightsExample(_CNN, "{'dense_1': at_init()}"), WeightsExample(_TORCH, "{'*': at_init()}"),
               WeightsExample(_CNN_BN, "{'conv_2': at_init('he_normal'), 'bn_2': at_init()}")]
    VALID = [WeightsExample(_CNN), WeightsExample(_TORCH), WeightsExample(_CNN_BN)]

    def check(self, ctx):
        kernels, bns = _init_checked(ctx)
        at_init = [st for st in kernels if st.init is not None]
        moved = [st for st in kernels if st.init is None]
        bn_init = [st for st in bns if st.bn_at_init]
        if not kernels:
            return
        if model_at_init(ctx):
            inits = sorted({st.init.initializer for st in at_init})
            what = [", ".join(inits)] if inits else []
            if bn_init:
                what.append(f"BatchNorm γ = 1, β = 0 in {len(bn_init)} of {len(bns)}")
            if not moved:
                head = (f"all {len(at_init)} layers checked hold the initializer's random values ({'; '.join(what)})"
                        if len(at_init) > 1 else
                        f"the one layer checked holds the initializer's random values ({'; '.join(what)})")
            elif at_init:
                head = (f"{len(at_init)} of {len(kernels)} layers checked hold the initializer's random values "
                        f"({'; '.join(what)})")
            else:
                head = f"{'; '.join(what)}, and no layer shows signs of training"
            yield self.finding(
                f"the model is untrained: {head}",
                layers=[], severity="info",
                evidence={"layers_checked": len(kernels), "initializers": inits,
                          "batchnorm_at_init": len(bn_init), "batchnorm_checked": len(bns),
                          "layers": [st.node for st in at_init],
                          "unmatched": [st.node for st in moved]},
                explanation="The file holds an untrained model: fine for a question about the architecture, "
                            "but weight diagnostics describe the initializer, not training. If this file "
                            "should hold a trained model, it was saved before training or training never "
                            "updated it.",
                fix="Train the model (or load the trained weights) before saving it; check that the saved "
                    "file is the one written after training.")
            return
        others = len(moved)
        for st in at_init:
            m = st.init
            yield self.finding(
                f"{self.node_label(ctx, st.node)}: still at its initialisation ({m.initializer}: std {m.std:.3g} "
                f"vs {m.expected_std:.3g} expected, kurtosis {m.kurtosis:.2f} vs {m.expected_kurtosis:.2f}"
                + (f", all |w| ≤ the bound {m.bound:.3g}" if m.bound else "")
                + f"; bias {m.bias}) while {others} other layer{'s' if others != 1 else ''} moved",
                layers=[st.node], evidence=self._evidence(st),
                explanation="This layer computes a fixed random projection: it was frozen by mistake, left out "
                            "of the optimizer, or never reached by training.",
                fix=ctx.say("Make it trainable (layer.trainable = True) and recompile before training; check that "
                            "its weights were loaded.",
                            "Make its parameters trainable (requires_grad_(True)) and pass them to the optimizer; "
                            "check load_state_dict did not skip them (strict=False)."))
        for st in bn_init:
            yield self.finding(
                f"{self.node_label(ctx, st.node)}: BatchNorm still at its initialisation (γ = 1 and β = 0 in all "
                f"{st.units} channels) while {others} other layer{'s' if others != 1 else ''} moved",
                layers=[st.node], evidence={"channels": st.units, "gamma": 1.0, "beta": 0.0},
                explanation="Its scale and shift never trained: frozen by mistake or left out of the optimizer.",
                fix=ctx.say("Make it trainable (layer.trainable = True) before compiling.",
                            "Pass its parameters to the optimizer (requires_grad_(True))."))

    @staticmethod
    def _evidence(st) -> dict:
        m = st.init
        return {"layer": st.node, "initializer": m.initializer, "std": round(m.std, 6),
                "expected_std": round(m.expected_std, 6), "kurtosis": round(m.kurtosis, 3),
                "expected_kurtosis": m.expected_kurtosis, "absmax": round(m.absmax, 6),
                "bound": round(m.bound, 6) if m.bound else None, "bias": m.bias, "fan_in": st.fan_in,
                "fan_out": st.fan_out, "min_size": INIT_MIN_SIZE}


__all__ = ["NonFiniteWeights", "DeadUnits", "BatchNormDeadChannels", "WeightScaleOutlier", "DuplicateUnits",
           "UntrainedLayers", "DUPLICATE_MAX_UNITS", "DUPLICATE_MIN_DIM"]
