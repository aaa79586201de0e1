"""ML02x–ML03x: findings from probes (short training experiments, `modellint probe`).

These rules read measurements (``ctx.probe(name)``), never run anything. Their
examples pair a model with the measurements a probe would report for it.
Thresholds follow the canon in shared/reference/figures.md (Karpathy 2019; the
Deep Learning Tuning Playbook; Smith 2017; DeepDiagnosis/AUTOTRAINER).
"""

from __future__ import annotations

import math

from .base import Rule, register

_MODEL = "seq(inp(32, 32, 3), conv(16, act='relu'), pool(2), conv(32, act='relu'), gap(), dense(10, act='softmax'))"

#: a unit is dead when zero on >= 70 % of inputs; a layer is flagged when this share of its units are dead
DEAD_LAYER_SHARE = 0.5
SATURATED_SHARE = 0.5
VANISHING_RATIO = 1e-3
LR_FACTOR = 10.0
LR_MIN_SWEEP = 30  # the range test's shortest readable sweep (modellint.probes.suite.LR_MIN_SWEEP)
#: ML030 does not fire when the network is at least this accurate (a linear model may be perfect too)
LINEAR_CEILING = 0.98
#: ML022 and ML030 warn only when the network's (longest) run saw every training image at least this many
#: times; before that they are info findings that say the comparison is inconclusive (ML030's baseline is
#: fit to convergence, a from-scratch network after half an epoch is not)
MIN_EPOCHS = 1.0
TOO_SHORT = ("The probes' training budget did not show the network every training image once: too short to "
             "tell.")
LONGER = "Re-run the probes with a larger --budget, or on a GPU."


def _too_short(epochs) -> bool:
    """A run of known length under MIN_EPOCHS (reports from before epochs were recorded: not known)."""
    return isinstance(epochs, (int, float)) and epochs < MIN_EPOCHS


def _m(**probes):
    return {name: {"status": "ok", "metrics": metrics} for name, metrics in probes.items()}


@register
class InitLossOff(Rule):
    """
    ## What it does
    Compares the loss of the freshly initialised model with ln(C), the loss of a
    uniform prediction over C classes.

    ## Why is this bad
    A loss far above ln(C) at step 0 means the initial predictions are confidently
    wrong (too large weights or logits, a badly scaled input, a wrong loss); far
    below means the labels leak or the loss is mis-specified. Either way the first
    hundreds of steps are spent undoing the initialisation.

    ## Fix
    Check input scaling, the output layer's initialisation and the loss; set the
    output bias to the log class prior.
    """

    code = "ML021"
    name = "init-loss-off"
    category = "training"
    severity = "warning"
    needs = ("probes",)
    references = ("Karpathy 2019, A Recipe for Training Neural Networks: verify loss @ init",)
    INVALID = [(_MODEL, _m(init_loss={"loss": 9.7, "expected": math.log(10), "classes": 10}))]
    VALID = [(_MODEL, _m(init_loss={"loss": 2.31, "expected": math.log(10), "classes": 10}))]

    def check(self, ctx):
        m = ctx.probe("init_loss")
        if not m or not isinstance(m.get("loss"), (int, float)):
            return
        loss, expected = m["loss"], m["expected"]
        if not math.isfinite(loss) or loss > 1.5 * expected + 0.1 or loss < 0.5 * expected:
            yield self.finding(f"loss at initialisation {loss:.3g}, expected about ln({m['classes']}) = "
                               f"{expected:.3g}", evidence={"loss": loss, "expected": round(expected, 4)},
                               explanation="The untrained model should predict about uniformly.",
                               fix="Check input scaling, the output initialisation and the loss.")


@register
class InputIndependent(Rule):
    """
    ## What it does
    Trains the model for the same number of steps on the real images and on
    all-zero images, and compares validation accuracy.

    ## Why is this bad
    If the model does no better with its input than without, it has not learned
    to use the input at all in that budget: the data pipeline, the labels, the
    learning rate or the architecture is broken. Before one epoch on the real
    images (every training image seen once) neither run may have learned anything
    yet: then the finding is an info saying the comparison is inconclusive.

    ## Fix
    Look at the batches right before they enter the model; check labels and the
    learning rate. When it is inconclusive: a larger `--budget`, or a GPU.
    """

    code = "ML022"
    name = "input-independent"
    category = "training"
    severity = "warning"
    needs = ("probes",)
    references = ("Karpathy 2019: input-independent baseline",)
    INVALID = [(_MODEL, _m(zero_input={"real_val_accuracy": 0.11, "zero_val_accuracy": 0.10, "steps": 50})),
               # inconclusive (an info): 5 steps of 32 images on 1,040 training images
               (_MODEL, _m(zero_input={"real_val_accuracy": 0.08, "zero_val_accuracy": 0.08, "steps": 5,
                                       "epochs": 0.15}))]
    VALID = [(_MODEL, _m(zero_input={"real_val_accuracy": 0.62, "zero_val_accuracy": 0.10, "steps": 50}))]

    def check(self, ctx):
        m = ctx.probe("zero_input")
        if not m or m["real_val_accuracy"] > m["zero_val_accuracy"] + 0.02:
            return
        said = (f"real inputs give {m['real_val_accuracy']:.0%} validation accuracy, zero inputs "
                f"{m['zero_val_accuracy']:.0%}, after {m['steps']} steps")
        if _too_short(m.get("epochs")):
            yield self.finding(f"inconclusive: {said} ({m['epochs']:.2g} epochs)", evidence=dict(m),
                               severity="info", explanation=TOO_SHORT, fix=LONGER)
            return
        yield self.finding(said, evidence=dict(m), fix="Check the data pipeline, labels and learning rate.")


#: Below this many steps, an overfit run whose loss more than halved is judged unfinished, not failed.
OVERFIT_MIN_STEPS = 50


@register
class CannotOverfitBatch(Rule):
    """
    ## What it does
    Trains on one small batch (16 images) and checks that the loss approaches zero.
    The loss judged is the training-mode loss on that batch (the mean of the last
    three steps: the quantity being overfit); the accuracy is measured in inference
    mode after BatchNorm's running statistics are re-estimated on the batch (a few
    dozen steps barely move the moving averages). Both are in the evidence
    (``final_loss``, ``eval_loss``). A short run (fewer than
    ``OVERFIT_MIN_STEPS`` steps, as a tight budget on a CPU gives) whose loss has
    already more than halved is still on its way and is not flagged.

    ## Why is this bad
    Any reasonable network can memorise 16 examples. If it cannot, something
    structural is wrong: no non-linearity, a loss that does not match the output
    (softmax into a from-logits loss), dead units, or a learning rate far off.

    ## Fix
    Fix what the other findings point at, then re-run the probe.
    """

    code = "ML023"
    name = "cannot-overfit-batch"
    category = "training"
    severity = "warning"
    impact = 3
    needs = ("probes",)
    references = ("Karpathy 2019: overfit one batch",)
    INVALID = [(_MODEL, _m(overfit_batch={"initial_loss": 2.3, "final_loss": 2.1, "accuracy": 0.25, "steps": 150,
                                          "batch": 16}))]
    VALID = [(_MODEL, _m(overfit_batch={"initial_loss": 2.3, "final_loss": 0.01, "accuracy": 1.0, "steps": 150,
                                        "batch": 16})),
             # 18 steps, loss 2.87 -> 0.59 (the seed on 2 CPU cores within 120 s): still falling, not stuck
             (_MODEL, _m(overfit_batch={"initial_loss": 2.87, "final_loss": 0.59, "accuracy": 0.75, "steps": 18,
                                        "batch": 16}))]

    def check(self, ctx):
        m = ctx.probe("overfit_batch")
        if not m:
            return
        still_falling = m["steps"] < OVERFIT_MIN_STEPS and m["final_loss"] < 0.5 * m["initial_loss"]
        if m["accuracy"] < 1.0 and not m["final_loss"] < 0.2 * m["initial_loss"] and not still_falling:
            yield self.finding(f"cannot overfit one batch of {m['batch']}: loss {m['initial_loss']:.3g} → "
                               f"{m['final_loss']:.3g}, accuracy {m['accuracy']:.0%} after {m['steps']} steps",
                               evidence=dict(m),
                               explanation="Memorising 16 examples should be easy; failing points at the "
                                           "architecture, the loss or the learning rate.",
                               fix="Fix the structural findings (non-linearity, loss/head) and re-run.")


@register
class LearningRateFarFromRangeTest(Rule):
    """
    ## What it does
    Runs a learning-rate range test (exponential sweep, stopped when the smoothed
    loss exceeds 4x its best) and compares its suggestion (the steepest descent)
    with the learning rate the model is compiled with.

    A short sweep (under 60 steps) covers 1e-6..1 instead of 1e-7..10, and the
    loss is smoothed over about 7 % of the sweep. The rule stays silent (the
    probe's result says why) when the sweep had fewer than 30 steps or its best
    smoothed loss was not at least 5 % below the first: such a sweep cannot
    tell the steepest descent from noise. From such a flat sweep of at least 30
    steps it still reports a configured rate at or above the rate where the
    sweep's loss blew up.

    ## Why is this bad
    A configured rate ten times above the suggestion sits where the loss
    diverges; ten times below, training crawls.

    ## Fix
    Use a rate near the suggestion (or a schedule that warms up to it).
    """

    code = "ML024"
    name = "lr-far-from-range-test"
    category = "learning-rate"
    severity = "warning"
    impact = 3
    needs = ("probes",)
    references = ("Smith 2017, Cyclical Learning Rates (WACV); fastai lr_find",)
    INVALID = [(_MODEL, _m(lr_range={"suggested_lr": 3e-3, "configured_lr": 10.0}))]
    VALID = [(_MODEL, _m(lr_range={"suggested_lr": 3e-3, "configured_lr": 1e-3}))]

    def check(self, ctx):
        m = ctx.probe("lr_range")
        if not m or not m.get("configured_lr"):
            return
        if not m.get("suggested_lr"):
            # no suggestion (a sweep too flat to read), but a long enough sweep whose loss blew up at or
            # below the configured rate still says that rate diverges
            div = m.get("diverged_lr")
            if div and (m.get("steps") or 0) >= LR_MIN_SWEEP and m["configured_lr"] >= div:
                yield self.finding(f"configured learning rate {m['configured_lr']:g} is at or above the rate "
                                   f"where the range test's loss blew up ({div:.2g})",
                                   evidence={"configured_lr": m["configured_lr"], "diverged_lr": div,
                                             "steps": m.get("steps")},
                                   fix=f"Use a learning rate well below {div:.2g}.")
            return
        ratio = m["configured_lr"] / m["suggested_lr"]
        if ratio < 1 / LR_FACTOR and _trains_well(ctx.probe("train_dynamics"), m["configured_lr"]):
            return  # "training crawls" is measured directly, and it does not: the sweep's suggestion was high
        if ratio > LR_FACTOR or ratio < 1 / LR_FACTOR:
            yield self.finding(f"configured learning rate {m['configured_lr']:g} is {ratio:.3g}× the range test's "
                               f"suggestion {m['suggested_lr']:.2g}",
                               evidence={"configured_lr": m["configured_lr"], "suggested_lr": m["suggested_lr"],
                                         "ratio": round(ratio, 3)},
                               fix=f"Use a learning rate near {m['suggested_lr']:.2g}.")


def _trains_well(td, lr) -> bool:
    """The short training run at ``lr`` at least halved the loss."""
    if not td or td.get("lr") != lr:
        return False
    first, final = td.get("first_loss"), td.get("final_loss")
    return (isinstance(first, (int, float)) and isinstance(final, (int, float)) and math.isfinite(final)
            and final < 0.5 * first)


@register
class VanishingGradients(Rule):
    """
    ## What it does
    Compares the gradient norm of the first learnable layer with the last during
    a short training run.

    ## Why is this bad
    A ratio below 1e-3 means the early layers barely learn (vanishing
    gradients); above 1e3, they explode.

    ## Fix
    Normalisation layers, residual connections, ReLU-family activations, He
    initialisation; gradient clipping for exploding gradients.
    """

    code = "ML025"
    name = "vanishing-gradients"
    category = "training"
    severity = "warning"
    needs = ("probes",)
    references = ("Glorot & Bengio 2010; DeepDiagnosis (ICSE 2022) thresholds",)
    INVALID = [(_MODEL, _m(train_dynamics={"first_last_grad_ratio": 2e-5, "grad_norm": {"conv_1": 1e-6,
                                                                                       "dense_1": 0.05}}))]
    VALID = [(_MODEL, _m(train_dynamics={"first_last_grad_ratio": 0.4, "grad_norm": {"conv_1": 0.02,
                                                                                    "dense_1": 0.05}}))]

    def check(self, ctx):
        m = ctx.probe("train_dynamics")
        r = m.get("first_last_grad_ratio") if m else None
        if r is None:
            return
        names = list(m.get("grad_norm", {}))
        if r < VANISHING_RATIO or r > 1 / VANISHING_RATIO:
            kind = "vanishing" if r < 1 else "exploding"
            yield self.finding(f"{kind} gradients: first/last layer gradient-norm ratio {r:.2g}",
                               layers=[n for n in (names[:1] + names[-1:]) if n in ctx.graph.nodes],
                               evidence={"ratio": r, "grad_norm": m.get("grad_norm")},
                               fix="Add normalisation/residual connections; clip gradients if they explode.")


@register
class DeadUnits(Rule):
    """
    ## What it does
    Measures, after a short training run, the share of ReLU-family units that
    are zero on at least 70 % of inputs ("dead"), per layer.

    ## Why is this bad
    A dead unit passes no gradient and never recovers; a layer with most units
    dead has lost most of its capacity. Usual causes: a learning rate too high,
    large negative biases, poor initialisation.

    ## Fix
    Lower the learning rate, use He initialisation, LeakyReLU/GELU, or BatchNorm
    before the activation.
    """

    code = "ML026"
    name = "dead-units"
    category = "activation"
    severity = "warning"
    needs = ("probes",)
    references = ("AUTOTRAINER (ICSE 2021), DeepDiagnosis (ICSE 2022): dead ReLU at >= 70 % zeros",)
    INVALID = [(_MODEL, _m(train_dynamics={"dead_fraction": {"conv_1": 0.94, "conv_2": 0.1}}))]
    VALID = [(_MODEL, _m(train_dynamics={"dead_fraction": {"conv_1": 0.05, "conv_2": 0.1}}))]

    def check(self, ctx):
        m = ctx.probe("train_dynamics")
        for layer, frac in ((m or {}).get("dead_fraction") or {}).items():
            if frac >= DEAD_LAYER_SHARE:
                yield self.finding(f"{layer}: {frac:.0%} of its units are dead (zero on >= 70 % of inputs)",
                                   layers=[layer] if layer in ctx.graph.nodes else [],
                                   evidence={"dead_fraction": frac},
                                   fix="Lower the learning rate, use He init or LeakyReLU, or normalise first.")


@register
class SaturatedUnits(Rule):
    """
    ## What it does
    Measures the share of tanh/sigmoid pre-activations beyond ±5 after a short
    training run.

    ## Why is this bad
    Beyond ±5 the gradient of tanh and sigmoid is below 1e-3: those units have
    stopped learning.

    ## Fix
    Normalise before the activation, lower the learning rate, or use ReLU-family activations.
    """

    code = "ML027"
    name = "saturated-units"
    category = "activation"
    severity = "warning"
    needs = ("probes",)
    references = ("DeepDiagnosis (ICSE 2022): saturation beyond ±5",)
    INVALID = [(_MODEL, _m(train_dynamics={"saturated_fraction": {"dense_1": 0.8}}))]
    VALID = [(_MODEL, _m(train_dynamics={"saturated_fraction": {"dense_1": 0.02}}))]

    def check(self, ctx):
        m = ctx.probe("train_dynamics")
        for layer, frac in ((m or {}).get("saturated_fraction") or {}).items():
            if frac > SATURATED_SHARE:
                yield self.finding(f"{layer}: {frac:.0%} of pre-activations are saturated (beyond ±5)",
                                   layers=[layer] if layer in ctx.graph.nodes else [],
                                   evidence={"saturated_fraction": frac},
                                   fix="Normalise before the activation or lower the learning rate.")


@register
class NonFiniteLoss(Rule):
    """
    ## What it does
    Flags NaN or Inf in the loss or the gradients during the short training run.

    ## Why is this bad
    Once a NaN appears every weight it touches becomes NaN: training is over.

    ## Fix
    Lower the learning rate, clip gradients, check for log(0) or division by zero
    in custom losses, and for unscaled inputs.
    """

    code = "ML028"
    name = "nonfinite-loss"
    category = "training"
    severity = "error"
    impact = 3
    needs = ("probes",)
    INVALID = [(_MODEL, _m(train_dynamics={"nonfinite": True, "lr": 10.0}))]
    VALID = [(_MODEL, _m(train_dynamics={"nonfinite": False, "lr": 1e-3}))]

    def check(self, ctx):
        m = ctx.probe("train_dynamics")
        if m and m.get("nonfinite"):
            yield self.finding(f"NaN/Inf during training at learning rate {m.get('lr')}",
                               evidence={"lr": m.get("lr")}, fix="Lower the learning rate; clip gradients.")


@register
class LinearBaselineNotBeaten(Rule):
    """
    ## What it does
    Compares the network's validation accuracy after the probe's training budget
    with a logistic regression on downsampled pixels.

    ## Why is this bad
    A convolutional network that does not beat a linear model on raw pixels is
    not using its depth: usually missing non-linearities, a receptive field too
    small for the task, or a learning-rate problem.

    When the network trained for less than one epoch (every training image seen
    once; the logistic regression is fit to convergence) the finding is an info
    saying the comparison is inconclusive, not a warning.

    ## Fix
    See the structural findings; re-run the probe after fixing them. When it is
    inconclusive: a larger `--budget`, or a GPU.
    """

    code = "ML030"
    name = "linear-baseline-not-beaten"
    category = "training"
    severity = "warning"
    impact = 3
    needs = ("probes",)
    INVALID = [(_MODEL, _m(linear_baseline={"val_accuracy": 0.41},
                           data_scaling={"rows": [{"fraction": 1.0, "val_accuracy": 0.35, "train_accuracy": 0.4}]})),
               # inconclusive (an info): 15 steps of 32 images on 1,040 training images
               (_MODEL, _m(linear_baseline={"val_accuracy": 0.32},
                           train_dynamics={"val_accuracy": 0.07, "steps": 15, "epochs": 0.46}))]
    VALID = [(_MODEL, _m(linear_baseline={"val_accuracy": 0.41},
                         data_scaling={"rows": [{"fraction": 1.0, "val_accuracy": 0.78, "train_accuracy": 0.9}]})),
             # the longer training run beats the baseline though the shorter data-scaling run does not
             (_MODEL, _m(linear_baseline={"val_accuracy": 0.41}, train_dynamics={"val_accuracy": 0.6},
                         data_scaling={"rows": [{"fraction": 1.0, "val_accuracy": 0.35, "train_accuracy": 0.4}]}))]

    def check(self, ctx):
        lin = ctx.probe("linear_baseline")
        if not lin:
            return
        # the network's best validation accuracy from the probes that train on the whole split
        scores, epochs = {}, {}
        scaling, dyn = ctx.probe("data_scaling"), ctx.probe("train_dynamics")
        if scaling and scaling.get("rows"):
            scores["data_scaling"] = scaling["rows"][-1]["val_accuracy"]
            epochs["data_scaling"] = scaling["rows"][-1].get("epochs")
        if dyn and dyn.get("val_accuracy") is not None:
            scores["train_dynamics"] = dyn["val_accuracy"]
            epochs["train_dynamics"] = dyn.get("epochs")
        if not scores:
            return
        best = max(scores, key=scores.get)
        net = scores[best]
        if net > lin["val_accuracy"] or net >= LINEAR_CEILING:  # both near 100 %: nothing left to beat
            return
        evidence = {"network": net, "linear": lin["val_accuracy"], "network_from": best}
        if all(_too_short(e) for e in epochs.values()):
            longest = max(epochs, key=epochs.get)
            yield self.finding(
                f"inconclusive: after {epochs[longest]:.2g} epochs the network reaches {net:.0%} validation "
                f"accuracy, a linear model on pixels (fit to convergence) {lin['val_accuracy']:.0%}",
                evidence={**evidence, "epochs": epochs[longest], "min_epochs": MIN_EPOCHS}, severity="info",
                explanation=TOO_SHORT, fix=LONGER)
            return
        yield self.finding(f"the network reaches {net:.0%} validation accuracy, a linear model on pixels "
                           f"{lin['val_accuracy']:.0%}", evidence=evidence,
                           fix="Fix the structural findings and re-run the probes.")


@register
class LearningCurve(Rule):
    """
    ## What it does
    Trains the same step budget on 25 %, 50 % and 100 % of the training split
    and reads the train/validation gap and the slope.

    ## Why is this bad
    A large train/validation gap at full data is over-fitting (regularise,
    augment, get data); low training accuracy with a small gap is
    under-fitting (more capacity, more steps, better features); validation
    accuracy still rising with data says more data will pay.

    ## Fix
    Act on the diagnosis in the message.
    """

    code = "ML029"
    name = "learning-curve"
    category = "capacity"
    severity = "info"
    needs = ("probes",)
    INVALID = [(_MODEL, _m(data_scaling={"rows": [
        {"fraction": 0.25, "samples": 100, "train_accuracy": 1.0, "val_accuracy": 0.3},
        {"fraction": 0.5, "samples": 200, "train_accuracy": 1.0, "val_accuracy": 0.38},
        {"fraction": 1.0, "samples": 400, "train_accuracy": 0.99, "val_accuracy": 0.45}]}))]
    VALID = [(_MODEL, _m(data_scaling={"rows": [
        {"fraction": 0.25, "samples": 100, "train_accuracy": 0.8, "val_accuracy": 0.76},
        {"fraction": 0.5, "samples": 200, "train_accuracy": 0.82, "val_accuracy": 0.79},
        {"fraction": 1.0, "samples": 400, "train_accuracy": 0.83, "val_accuracy": 0.8}]}))]

    def check(self, ctx):
        m = ctx.probe("data_scaling")
        rows = (m or {}).get("rows") or []
        if len(rows) < 2:
            return
        full, half = rows[-1], rows[-2]
        gap = full["train_accuracy"] - full["val_accuracy"]
        slope = full["val_accuracy"] - half["val_accuracy"]
        if gap > 0.15:
            yield self.finding(f"over-fitting: train accuracy {full['train_accuracy']:.0%} vs validation "
                               f"{full['val_accuracy']:.0%}" + (f"; validation still rises with data "
                                                                 f"(+{slope:.0%} from 50 % to 100 %)"
                                                                 if slope > 0.03 else ""),
                               evidence={"rows": rows, "gap": round(gap, 3), "slope": round(slope, 3)},
                               severity="warning",
                               fix="Augment, regularise (dropout, weight decay) or get more data.")
        elif full["train_accuracy"] < 0.6 and gap < 0.1 and full["train_accuracy"] < 2 * full["val_accuracy"]:
            yield self.finding(f"under-fitting within the budget: train accuracy {full['train_accuracy']:.0%}, "
                               f"validation {full['val_accuracy']:.0%}", evidence={"rows": rows},
                               fix="More capacity or receptive field, better features, or more steps.")
