"""ML02x–ML03x: findings from probes (short training experiments, `modellint probe`).

These rules read measurements (``ctx.probe(name)``), never run anything. Their
examples pair a model with the measurements a probe would report for it. A probe
finding about training is a consequence when a static output-head or loss error
stands (ML205, ML301–ML305 at error severity: the model cannot learn as
compiled): it is lowered to an info that names that error (:class:`Measured`).
Thresholds follow the canon in shared/reference/figures.md (Karpathy 2019; the
Deep Learning Tuning Playbook; Smith 2017; DeepDiagnosis/AUTOTRAINER).
"""

from __future__ import annotations

import math

from ..probes.suite import (LR_CONFIRM_MIN, LR_CONFIRM_SHARE, LR_FACTOR, LR_MIN_SWEEP, LR_PER_DECADE, STILL_LEARNING,
                            VERDICT_EPOCHS, VERDICT_STEPS, lr_unreadable)
from .base import REGISTRY, Fix, Rule, register

_MODEL = "seq(inp(32, 32, 3), conv(16, act='relu'), pool(2), conv(32, act='relu'), gap(), dense(10, act='softmax'))"

#: a unit is dead when zero on >= 70 % of inputs; a layer is flagged when this share of its units are dead
DEAD_LAYER_SHARE = 0.5
SATURATED_SHARE = 0.5
VANISHING_RATIO = 1e-3
#: ML024: how much lower the suggested rate's training loss must end than the configured rate's, over the
#: confirmation runs (same weights, same batches); LR_UNUSUAL_MARGIN when the suggestion lies outside the
#: optimizer's known working range (modellint.probes.suite.WORKING_LR)
LR_CONFIRM_MARGIN = 0.10
LR_UNUSUAL_MARGIN = 0.25
#: ML030 does not fire when the network is at least this accurate (a linear model may be perfect too)
LINEAR_CEILING = 0.98
#: ML022, ML029 and ML030 warn only after a run of at least MIN_STEPS steps that saw every image it trained
#: on at least MIN_EPOCHS times; before that they are info findings that say the comparison is
#: inconclusive (ML030's baseline is fit to convergence, a from-scratch network after 30 steps or half an
#: epoch is not). The probe plan shares these numbers (modellint.probes.suite.VERDICT_STEPS/_EPOCHS).
MIN_EPOCHS = VERDICT_EPOCHS
MIN_STEPS = VERDICT_STEPS
TOO_SHORT = (f"The probes' training was too short to tell: a verdict needs at least {MIN_STEPS} steps that show "
             "the network every image it trains on at least once.")
LONGER = "Re-run the probes with a larger --budget, or on a GPU."
STILL_FALLING = (f"The network was still learning when the run ended (its training loss fell more than "
                 f"{STILL_LEARNING:.0%} from the third to the last quarter of the run): it may yet pass the linear "
                 "model, which is fit to convergence.")


def _too_short(epochs, steps=None) -> bool:
    """A run of known length under MIN_EPOCHS or MIN_STEPS (reports from before epochs were recorded:
    not known)."""
    return (isinstance(epochs, (int, float)) and epochs < MIN_EPOCHS) or \
        (isinstance(steps, int) and not isinstance(steps, bool) and steps < MIN_STEPS)


def _length(steps, epochs) -> str:
    """'49 steps, 1.5 epochs' (what is known of a run's length)."""
    parts = [f"{steps} steps"] if isinstance(steps, int) else []
    if isinstance(epochs, (int, float)):
        parts.append(f"{epochs:.2g} epochs")
    return ", ".join(parts)


def _m(**probes):
    return {name: {"status": "ok", "metrics": metrics} for name, metrics in probes.items()}


#: Static findings about the output head and the loss (raw scores into a probability loss, output units
#: against classes, softmax on one unit, loss or activation that does not fit the head, per-position output):
#: at error severity the model cannot learn as compiled, so what the probes measure about its training is
#: their consequence, not a finding of its own.
STATIC_CAUSES = ("ML205", "ML301", "ML302", "ML303", "ML304", "ML305")


def static_causes(ctx) -> list:
    """The error findings of the STATIC_CAUSES rules on this model: those the engine already
    reported (it runs the static rules before the probe rules, so an ``--ignore``d rule is
    never named), else, for a rule run on its own, those rules' own findings."""
    if ctx.findings is not None:
        return [f for f in ctx.findings if f.code in STATIC_CAUSES and f.severity == "error"]
    found = []
    for code in STATIC_CAUSES:
        rule = REGISTRY.get(code)
        if rule is None or any(need != "probes" and not ctx.dataset.has(need) for need in rule.needs):
            continue
        try:
            found.extend(f for f in rule().check(ctx) if f.severity == "error")
        except Exception:  # that rule's own run reports its bug; here it only cannot be named as a cause
            continue
    return found


class Measured(Rule):
    """A probe rule: :meth:`measure` yields its findings; when a static head/loss error (STATIC_CAUSES)
    stands, they are lowered to info and name it as their likely cause (``consequence = False`` opts out)."""

    consequence = True

    def measure(self, ctx):  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, ctx):
        found = list(self.measure(ctx))
        causes = static_causes(ctx) if found and self.consequence else []
        if causes:
            codes = sorted({c.code for c in causes})
            first = causes[0]
            for f in found:
                f.severity = "info"
                f.message = f"{f.message} — likely caused by {', '.join(codes)}"
                f.evidence["likely_caused_by"] = [f"{c.code}: {c.message}" for c in causes]
                f.explanation = (f"Likely a consequence of {first.code} ({first.message}): a model whose output "
                                 "head or loss is broken cannot train, so the training probes fail with it. Fix "
                                 f"{' and '.join(codes)} first, then re-run the probes. " + f.explanation).strip()
        return found


@register
class InitLossOff(Measured):
    """
    ## What it does
    Compares the loss of the freshly initialised model with ln(C), the loss of a
    uniform prediction over C classes.

    When a static output-head or loss error stands (ML205, ML301–ML305), this
    finding is its likely consequence: an info that names it.

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

    def measure(self, ctx):
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
class InputIndependent(Measured):
    """
    ## What it does
    Trains the model for the same number of steps on the real images and on
    all-zero images, and compares validation accuracy.

    When a static output-head or loss error stands (ML205, ML301–ML305), this
    finding is its likely consequence: an info that names it.

    ## Why is this bad
    If the model does no better with its input than without, it has not learned
    to use the input at all in that budget: the data pipeline, the labels, the
    learning rate or the architecture is broken. Before 100 steps, or before one
    epoch on the real images (every training image seen once), neither run may
    have learned anything yet: then the finding is an info saying the comparison
    is inconclusive.

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
    INVALID = [(_MODEL, _m(zero_input={"real_val_accuracy": 0.11, "zero_val_accuracy": 0.10, "steps": 120})),
               # inconclusive (an info): 5 steps of 32 images on 1,040 training images
               (_MODEL, _m(zero_input={"real_val_accuracy": 0.08, "zero_val_accuracy": 0.08, "steps": 5,
                                       "epochs": 0.15}))]
    VALID = [(_MODEL, _m(zero_input={"real_val_accuracy": 0.62, "zero_val_accuracy": 0.10, "steps": 120}))]

    def measure(self, ctx):
        m = ctx.probe("zero_input")
        if not m or m["real_val_accuracy"] > m["zero_val_accuracy"] + 0.02:
            return
        said = (f"real inputs give {m['real_val_accuracy']:.0%} validation accuracy, zero inputs "
                f"{m['zero_val_accuracy']:.0%}, after {m['steps']} steps")
        if _too_short(m.get("epochs"), m.get("steps")):
            yield self.finding(f"inconclusive: {said}" + (f" ({m['epochs']:.2g} epochs)" if isinstance(
                m.get("epochs"), (int, float)) else ""), evidence={**m, "min_steps": MIN_STEPS},
                severity="info", explanation=TOO_SHORT, fix=LONGER)
            return
        yield self.finding(said, evidence=dict(m), fix="Check the data pipeline, labels and learning rate.")


#: ML029 calls a run under-fitting only after this many steps a row (see its docstring).
UNDERFIT_MIN_STEPS = MIN_STEPS  # the same floor as every verdict about learning
#: Below this many steps, an overfit run whose loss more than halved is judged unfinished, not failed.
OVERFIT_MIN_STEPS = 50


@register
class CannotOverfitBatch(Measured):
    """
    ## What it does
    Trains on one small batch (16 images) and checks that the loss approaches zero.
    The loss judged is the training loss on that batch: in training mode (BatchNorm
    on batch statistics, dropout on), its first step against the mean of its last
    three steps, the quantity being overfit. The accuracy is measured in inference
    mode after BatchNorm's running statistics are re-estimated on the batch (a few
    dozen steps barely move the moving averages), with the inference-mode loss
    beside it. The message and the evidence name both: ``train_loss_start`` →
    ``train_loss_end``, then ``eval_loss`` and ``eval_accuracy``. A short run
    (fewer than ``OVERFIT_MIN_STEPS`` steps, as a tight budget on a CPU gives)
    whose loss has already more than halved is still on its way and is not
    flagged.

    When a static output-head or loss error stands (ML205, ML301–ML305), failing
    to overfit is its consequence: the finding is an info that names it.

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
    INVALID = [(_MODEL, _m(overfit_batch={"initial_loss": 2.3, "final_loss": 2.1, "eval_loss": 2.2, "accuracy": 0.25,
                                          "steps": 150, "batch": 16})),
               # softmax over one unit (ML302): an info naming it as the cause
               ("seq(inp(32, 32, 3), conv(16, act='relu'), gap(), dense(1, act='softmax'))",
                _m(overfit_batch={"initial_loss": 0.693, "final_loss": 0.693, "eval_loss": 7.971, "accuracy": 0.5,
                                  "steps": 40, "batch": 16}))]
    VALID = [(_MODEL, _m(overfit_batch={"initial_loss": 2.3, "final_loss": 0.01, "accuracy": 1.0, "steps": 150,
                                        "batch": 16})),
             # 18 steps, loss 2.87 -> 0.59 (the seed on 2 CPU cores within 120 s): still falling, not stuck
             (_MODEL, _m(overfit_batch={"initial_loss": 2.87, "final_loss": 0.59, "accuracy": 0.75, "steps": 18,
                                        "batch": 16}))]

    def measure(self, ctx):
        m = ctx.probe("overfit_batch")
        if not m:
            return
        still_falling = m["steps"] < OVERFIT_MIN_STEPS and m["final_loss"] < 0.5 * m["initial_loss"]
        if m["accuracy"] < 1.0 and not m["final_loss"] < 0.2 * m["initial_loss"] and not still_falling:
            ev = m.get("eval_loss")
            inference = f"inference-mode loss {ev:.3g}, accuracy" if isinstance(ev, (int, float)) else \
                "inference-mode accuracy"
            yield self.finding(f"cannot overfit one batch of {m['batch']}: training loss {m['initial_loss']:.3g} → "
                               f"{m['final_loss']:.3g} in {m['steps']} steps; {inference} {m['accuracy']:.0%}",
                               evidence={"batch": m["batch"], "steps": m["steps"],
                                         "train_loss_start": m["initial_loss"], "train_loss_end": m["final_loss"],
                                         "eval_loss": ev, "eval_accuracy": m["accuracy"],
                                         **({"lr": m["lr"]} if m.get("lr") else {})},
                               explanation="Memorising 16 examples should be easy; failing points at the "
                                           "architecture, the loss or the learning rate. The training loss is "
                                           "the training-mode loss (first step, mean of the last three); the "
                                           "inference-mode loss and accuracy follow BatchNorm statistics "
                                           "re-estimated on the batch.",
                               fix="Fix the structural findings (non-linearity, loss/head) and re-run.")


@register
class LearningRateFarFromRangeTest(Measured):
    """
    ## What it does
    Runs a learning-rate range test (exponential sweep, stopped when the smoothed
    loss exceeds 4x its best) and compares its suggestion (the steepest descent)
    with the learning rate the model is compiled with. It warns only when three
    things hold; otherwise a reading more than 10x from the configured rate is an
    info that says "inconclusive" (or "not confirmed") and why.

    1. **The sweep is readable.** At least 30 steps and **10 steps per decade**
       of learning rate: the loss is smoothed over a window of about 7 % of the
       sweep (2 to 10 steps), and an EMA lags by about its window, so the
       steepest descent of the smoothed curve sits up to window ÷ steps-a-decade
       decades above the raw one; at 10 a decade that blur stays within one
       decade, the 10x this rule tolerates, and each reading averages several
       batches. fastai's lr_find (100 steps over 1e-7..10) takes 12.5 a decade.
       The smoothed loss must **clearly fall**: its best at least 10 % below its
       start (after the first smoothing window) and at least 3x the raw loss's
       step-to-step noise (the standard deviation of successive differences, ÷√2)
       below it; and the steepest descent must lie past the first smoothing
       window and the first tenth of the sweep, not at its start: a reading at
       the edge of the sweep is the edge, or noise.
    2. **The sweep covers the right rates.** It spans the optimizer's known
       working range widened by a decade each side (Adam, AdamW, RMSprop and
       other adaptive optimizers 1e-4..3e-3, so 1e-5..3e-2: Kingma & Ba's
       default 1e-3, 3e-4 the usual safe Adam rate; SGD with momentum
       1e-3..0.3, so 1e-4..3: 0.1 at batch 256 scaled linearly is 0.0125 at
       batch 32, Goyal et al. 2017), and widens towards 1e-7..10 as its steps
       allow at 10 a decade. A short CPU budget thus spends its steps where
       rates that work live instead of spreading them over eight decades.
    3. **Training confirms it.** When the reading is more than 10x from the
       configured rate, the probe trains twice from the same fresh weights on
       the same batches, at the configured and at the suggested rate (each
       20 % of the probe's steps, at least 20 steps: Adam's first steps move
       every weight by about the rate whatever the gradient, so a comparison
       must run past that transient). The suggested rate must end with a
       training loss (mean of the last third of the steps) at least 10 % lower,
       or the configured run must blow up: both runs see the same batches in
       the same order, so batch noise largely cancels and 10 % is a real gap.
       A suggestion outside the optimizer's known working range contradicts
       long practice and must be 25 % lower.

    A sweep of at least 30 steps whose loss blew up at or below the configured
    rate still warns without a suggestion: that rate was itself tried.
    A model compiled, since the probe ran, with a rate within 10x of the
    suggestion (as `modellint fix --data` leaves it) is not flagged.
    The probe's steps fund the sweep and the confirmation together, so a range
    test that can warn needs about 100 steps (a 60-step sweep and two 20-step
    runs); below that the sweep gets every step and a far reading is an info.

    When a static output-head or loss error stands (ML205, ML301–ML305), this
    finding is its likely consequence: an info that names it.

    ## Why is this bad
    A configured rate ten times above a confirmed suggestion sits where the loss
    diverges; ten times below, training crawls.

    ## Fix
    Use a rate near the suggestion (or a schedule that warms up to it). When
    the finding is inconclusive: a larger `--budget`, or a GPU. `modellint fix
    --data DIR` runs the range test and, when its suggestion is confirmed, sets
    the optimizer's learning rate to it (a PyTorch module carries no optimizer:
    the fix says which `torch.optim` rate to use).
    """

    code = "ML024"
    name = "lr-far-from-range-test"
    category = "learning-rate"
    severity = "warning"
    impact = 3
    needs = ("probes",)
    references = ("Smith 2017, Cyclical Learning Rates (WACV); fastai lr_find",
                  "Kingma & Ba 2015, Adam; Goyal et al. 2017, Accurate, Large Minibatch SGD")
    INVALID = [
        # readable, and 40 steps at each rate confirm it: the configured rate blows up
        (_MODEL, _m(lr_range={"suggested_lr": 3e-3, "steepest_lr": 3e-3, "configured_lr": 10.0, "steps": 120,
                              "per_decade": 15.0, "loss_drop": 0.45, "fall_noise": 12.0, "optimizer": "adam",
                              "working_range": [1e-4, 3e-3],
                              "confirm": {"rate": 3e-3, "steps": 40, "configured_loss": None,
                                          "suggested_loss": 0.9, "configured_nonfinite": True,
                                          "suggested_nonfinite": False, "improvement": 1.0}})),
        # inconclusive (an info): 34 steps over 3.5 decades, steepest descent at the start of the sweep
        (_MODEL, _m(lr_range={"suggested_lr": None, "steepest_lr": 2.9e-6, "configured_lr": 1e-3, "steps": 34,
                              "per_decade": 5.5, "loss_drop": 0.08, "fall_noise": 1.1, "steepest_at_start": True,
                              "optimizer": "adam", "working_range": [1e-4, 3e-3]}))]
    VALID = [(_MODEL, _m(lr_range={"suggested_lr": 3e-3, "steepest_lr": 3e-3, "configured_lr": 1e-3, "steps": 120,
                                   "per_decade": 15.0, "loss_drop": 0.45, "fall_noise": 12.0}))]
    fix = Fix("the learning rate from the range test", "unsafe", "kept",
              lambda fx: _use_suggested_lr(fx),
              applies=lambda f: f.severity == "warning" and bool(f.evidence.get("suggested_lr")))

    def measure(self, ctx):
        m = ctx.probe("lr_range")
        if not m or not m.get("configured_lr"):
            return
        conf, sugg = m["configured_lr"], m.get("suggested_lr")
        if not sugg:
            # no suggestion (a sweep too short or flat to read), but a long enough sweep whose loss blew up at
            # or below the configured rate tried that rate itself
            div = m.get("diverged_lr")
            if div and (m.get("steps") or 0) >= LR_MIN_SWEEP and conf >= div:
                yield self.finding(f"configured learning rate {conf:g} is at or above the rate where the range "
                                   f"test's loss blew up ({div:.2g})",
                                   evidence={"configured_lr": conf, "diverged_lr": div, "steps": m.get("steps")},
                                   fix=f"Use a learning rate well below {div:.2g}.")
                return
        reading = sugg or m.get("steepest_lr")
        if not reading:
            return
        t = ctx.graph.training
        now = t.learning_rate if t is not None else None
        if sugg and now and now != conf and 1 / LR_FACTOR <= now / sugg <= LR_FACTOR:
            return  # compiled since the probe ran with a rate near its suggestion (modellint fix --data)
        ratio = conf / reading
        if 1 / LR_FACTOR <= ratio <= LR_FACTOR:
            return
        far = f"configured learning rate {conf:g} is {_times(ratio)} the range test's"
        lo, hi = (m.get("working_range") or [None, None])[:2]
        unusual = lo is not None and not lo <= reading <= hi
        usual = f" ({m.get('optimizer') or 'the optimizer'}'s known working range is {lo:g}–{hi:g})" \
            if lo is not None else ""
        evidence = {"configured_lr": conf, "steepest_lr": reading, "ratio": round(ratio, 3),
                    "sweep_steps": m.get("steps"), "per_decade": m.get("per_decade"),
                    "loss_drop": m.get("loss_drop"), "fall_noise": m.get("fall_noise")}
        why = lr_unreadable(m)
        if why:
            yield self.finding(f"inconclusive: {far} steepest descent {reading:.2g}, but the sweep cannot be read",
                               evidence=evidence, severity="info",
                               explanation=f"The sweep cannot be read: {'; '.join(why)}. From such a sweep the rate "
                                           "where the smoothed loss falls fastest is noise, not a suggestion" +
                                           usual + ".",
                               fix=_longer(m))
            return
        c = m.get("confirm")
        if not c or ((c.get("steps") or 0) < LR_CONFIRM_MIN // 2 and not c.get("configured_nonfinite")):
            ran = f" (cut to {c.get('steps')} steps)" if c else ""
            yield self.finding(f"inconclusive: {far} suggestion {sugg:.2g}, but training at both rates did not "
                               f"check it{ran}", evidence=evidence, severity="info",
                               explanation="A range test's suggestion is a reading of one sweep; before it "
                                           "contradicts the configured rate, a short run at each rate must "
                                           "confirm it" + usual + ".", fix=_longer(m))
            return
        margin = LR_UNUSUAL_MARGIN if unusual else LR_CONFIRM_MARGIN
        fa, fb = c.get("configured_loss"), c.get("suggested_loss")
        at_conf = "blew up" if c.get("configured_nonfinite") else f"{fa:.3g}"
        at_sugg = "blew up" if c.get("suggested_nonfinite") else f"{fb:.3g}"
        said = (f"{c['steps']} steps from the same weights end at training loss {at_sugg} at {sugg:.2g} and "
                f"{at_conf} at {conf:g}")
        evidence = {**evidence, "suggested_lr": sugg, "confirm": c, "margin": margin, "optimizer": m.get("optimizer")}
        if c.get("improvement", 0) >= margin:
            yield self.finding(f"{far} suggestion {sugg:.2g}; {said}", evidence=evidence,
                               explanation="Trained side by side, the suggested rate beats the configured one" +
                                           usual + ".",
                               fix=f"Use a learning rate near {sugg:.2g}.")
        else:
            yield self.finding(f"not confirmed: {far} suggestion {sugg:.2g}, but {said} "
                               f"({c.get('improvement', 0):.0%} lower at the suggestion, {margin:.0%} needed)",
                               evidence=evidence, severity="info",
                               explanation="Trained side by side, the configured rate does about as well: the "
                                           "sweep's reading does not hold" + usual + ".",
                               fix="Keep the configured rate; a longer run (a larger --budget) tells more.")


#: torch.optim's spelling of the optimizers the probes train with
_TORCH_OPTIM = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad",
                "adadelta": "Adadelta", "adamax": "Adamax", "nadam": "NAdam"}


def _use_suggested_lr(fx) -> list:
    """ML024's fix: the optimizer's learning rate set to the range test's confirmed suggestion. Keras
    writes it in ``compile_model``; a PyTorch module carries no optimizer, so the line names the
    ``torch.optim`` rate to train with."""
    f = fx.finding
    sugg = f.evidence.get("suggested_lr")
    if not sugg:
        return []
    sugg = float(sugg)
    t = fx.graph.training
    had = t.optimizer if t is not None and t.optimizer else None
    name = (had or f.evidence.get("optimizer") or "adam").lower().split(">")[-1]
    old = f.evidence.get("configured_lr")
    was = f" (was {old:g})" if old else ""
    if fx.torch:
        fx.editor.set_training(learning_rate=sugg)
        return [f"learning rate {sugg:.2g}{was}, the range test's confirmed suggestion; the module carries no "
                f"optimizer: train it with torch.optim.{_TORCH_OPTIM.get(name, name)}(model.parameters(), "
                f"lr={sugg:.2g})"]
    fx.editor.set_training(learning_rate=sugg, **({} if had else {"optimizer": name}))
    return [f"optimizer: {name}(learning_rate={sugg:.2g}){was}, the range test's confirmed suggestion"]


def _times(ratio: float) -> str:
    """``ratio`` (configured / suggested) in words: "346×" or "1/30 of"."""
    return f"{ratio:,.0f}×" if ratio >= 1 else f"1/{1 / ratio:,.0f} of"


def _longer(m) -> str:
    """The fix of an inconclusive range test: what a readable, confirmed one takes."""
    need = int(math.ceil(LR_CONFIRM_MIN / LR_CONFIRM_SHARE))
    return (f"Re-run the probes with a larger --budget, or on a GPU: a range test that can warn takes about "
            f"{need} steps (a sweep at {LR_PER_DECADE} steps a decade and two {LR_CONFIRM_MIN}-step runs at "
            f"the configured and the suggested rate); this one had {m.get('steps')} sweep steps.")


@register
class VanishingGradients(Measured):
    """
    ## What it does
    Compares the gradient norm of the first learnable layer with the last during
    a short training run.

    When a static output-head or loss error stands (ML205, ML301–ML305), this
    finding is its likely consequence: an info that names it.

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

    def measure(self, ctx):
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
class DeadUnits(Measured):
    """
    ## What it does
    Measures, after a short training run, the share of ReLU-family units that
    are zero on at least 70 % of inputs ("dead"), per layer.

    When a static output-head or loss error stands (ML205, ML301–ML305), this
    finding is its likely consequence: an info that names it.

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

    def measure(self, ctx):
        m = ctx.probe("train_dynamics")
        for layer, frac in ((m or {}).get("dead_fraction") or {}).items():
            if frac >= DEAD_LAYER_SHARE:
                yield self.finding(f"{layer}: {frac:.0%} of its units are dead (zero on >= 70 % of inputs)",
                                   layers=[layer] if layer in ctx.graph.nodes else [],
                                   evidence={"dead_fraction": frac},
                                   fix="Lower the learning rate, use He init or LeakyReLU, or normalise first.")


@register
class SaturatedUnits(Measured):
    """
    ## What it does
    Measures the share of tanh/sigmoid pre-activations beyond ±5 after a short
    training run.

    When a static output-head or loss error stands (ML205, ML301–ML305), this
    finding is its likely consequence: an info that names it.

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

    def measure(self, ctx):
        m = ctx.probe("train_dynamics")
        for layer, frac in ((m or {}).get("saturated_fraction") or {}).items():
            if frac > SATURATED_SHARE:
                yield self.finding(f"{layer}: {frac:.0%} of pre-activations are saturated (beyond ±5)",
                                   layers=[layer] if layer in ctx.graph.nodes else [],
                                   evidence={"saturated_fraction": frac},
                                   fix="Normalise before the activation or lower the learning rate.")


@register
class NonFiniteLoss(Measured):
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
    consequence = False  # NaN is its own finding, whatever the head
    name = "nonfinite-loss"
    category = "training"
    severity = "error"
    impact = 3
    needs = ("probes",)
    INVALID = [(_MODEL, _m(train_dynamics={"nonfinite": True, "lr": 10.0}))]
    VALID = [(_MODEL, _m(train_dynamics={"nonfinite": False, "lr": 1e-3}))]

    def measure(self, ctx):
        m = ctx.probe("train_dynamics")
        if m and m.get("nonfinite"):
            yield self.finding(f"NaN/Inf during training at learning rate {m.get('lr')}",
                               evidence={"lr": m.get("lr")}, fix="Lower the learning rate; clip gradients.")


@register
class LinearBaselineNotBeaten(Measured):
    """
    ## What it does
    Compares the network's validation accuracy after the probe's training budget
    with a logistic regression on downsampled pixels.

    When a static output-head or loss error stands (ML205, ML301–ML305), this
    finding is its likely consequence: an info that names it.

    ## Why is this bad
    A convolutional network that does not beat a linear model on raw pixels is
    not using its depth: usually missing non-linearities, a receptive field too
    small for the task, or a learning-rate problem.

    When the network's longest run trained fewer than 100 steps, or less than one
    epoch (every image it trains on seen once; the logistic regression is fit to
    convergence), or train_dynamics' training loss was still falling (more than
    5 % from the third to the last quarter of its steps), the finding is an info
    saying the comparison is inconclusive, not a warning. On a large training split, train_dynamics trains on a
    class-stratified subset its steps cover once, and the finding says so; the
    probe plan says before training when the budget cannot reach 100 steps.

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
                           train_dynamics={"val_accuracy": 0.07, "steps": 15, "epochs": 0.46})),
               # the seed of the question on the synthetic data, 200 steps: its loss has levelled off (a warning)
               (_MODEL, _m(linear_baseline={"val_accuracy": 0.32},
                           train_dynamics={"val_accuracy": 0.12, "steps": 200, "epochs": 6.2,
                                           "last_quarter_fall": 0.014})),
               # its fix after 120 steps: behind the linear model but still learning (an info)
               (_MODEL, _m(linear_baseline={"val_accuracy": 0.32},
                           train_dynamics={"val_accuracy": 0.24, "steps": 120, "epochs": 3.7,
                                           "last_quarter_fall": 0.107}))]
    VALID = [(_MODEL, _m(linear_baseline={"val_accuracy": 0.41},
                         data_scaling={"rows": [{"fraction": 1.0, "val_accuracy": 0.78, "train_accuracy": 0.9}]})),
             # the longer training run beats the baseline though the shorter data-scaling run does not
             (_MODEL, _m(linear_baseline={"val_accuracy": 0.41}, train_dynamics={"val_accuracy": 0.6},
                         data_scaling={"rows": [{"fraction": 1.0, "val_accuracy": 0.35, "train_accuracy": 0.4}]}))]

    def measure(self, ctx):
        lin = ctx.probe("linear_baseline")
        if not lin:
            return
        # the network's best validation accuracy from the probes that train on the whole split
        scores, runs = {}, {}
        scaling, dyn = ctx.probe("data_scaling"), ctx.probe("train_dynamics")
        if scaling and scaling.get("rows"):
            scores["data_scaling"] = scaling["rows"][-1]["val_accuracy"]
            runs["data_scaling"] = (scaling["rows"][-1].get("steps"), scaling["rows"][-1].get("epochs"))
        falling = None
        if dyn and dyn.get("val_accuracy") is not None:
            scores["train_dynamics"] = dyn["val_accuracy"]
            runs["train_dynamics"] = (dyn.get("steps"), dyn.get("epochs"))
            fall = dyn.get("last_quarter_fall")
            if isinstance(fall, (int, float)) and fall > STILL_LEARNING:
                falling = fall
        if not scores:
            return
        best = max(scores, key=scores.get)
        net = scores[best]
        if net > lin["val_accuracy"] or net >= LINEAR_CEILING:  # both near 100 %: nothing left to beat
            return
        evidence = {"network": net, "linear": lin["val_accuracy"], "network_from": best}
        on = ""
        if dyn and isinstance(dyn.get("train_images"), int) and dyn.get("train_images") < dyn.get("train_split", 0):
            evidence["train_images"] = dyn["train_images"]
            on = f" (trained on {dyn['train_images']:,} of {dyn['train_split']:,} training images)"
        # a verdict needs a run long enough that has stopped learning: train_dynamics' loss levelled off
        verdict = [k for k, (n, e) in runs.items() if not _too_short(e, n) and
                   not (k == "train_dynamics" and falling is not None)]
        if not verdict:
            longest = max(runs, key=lambda k: (runs[k][0] or 0, runs[k][1] or 0))
            steps, epochs = runs[longest]
            still = falling is not None and not _too_short(epochs, steps) and longest == "train_dynamics"
            yield self.finding(
                f"inconclusive: after {_length(steps, epochs)} the network reaches {net:.0%} validation accuracy, "
                f"a linear model on pixels (fit to convergence) {lin['val_accuracy']:.0%}" +
                (f", and its training loss is still falling ({falling:.0%} over the last quarter of the run)"
                 if still else ""),
                evidence={**evidence, "steps": steps, "epochs": epochs, "min_steps": MIN_STEPS,
                          "min_epochs": MIN_EPOCHS, **({"last_quarter_fall": falling} if still else {})},
                severity="info", explanation=STILL_FALLING if still else TOO_SHORT, fix=LONGER)
            return
        yield self.finding(f"the network reaches {net:.0%} validation accuracy{on}, a linear model on pixels "
                           f"{lin['val_accuracy']:.0%}", evidence=evidence,
                           fix="Fix the structural findings and re-run the probes.")


@register
class LearningCurve(Measured):
    """
    ## What it does
    Trains the same step budget on 25 %, 50 % and 100 % of the training split
    and reads the train/validation gap and the slope.

    "Under-fitting" says the model cannot fit its training data; it is said
    only when each row trained at least ``UNDERFIT_MIN_STEPS`` (100) steps and
    the full-data row saw every training image at least once. Adam moves each
    weight by about its learning rate per step whatever the gradient, so 100
    steps at the usual 1e-3 move a weight by at most about 0.1, the scale of
    an initial weight: fewer cannot tell a model that cannot fit from one that
    has not started (a CPU budget of a minute or two gives 5 to 40 steps a
    row). Before that, low training accuracy is an info that says the curve is
    inconclusive.

    When a static output-head or loss error stands (ML205, ML301–ML305), this
    finding is its likely consequence: an info that names it.

    ## Why is this bad
    A large train/validation gap at full data is over-fitting (regularise,
    augment, get data); low training accuracy with a small gap is
    under-fitting (more capacity, more steps, better features); validation
    accuracy still rising with data says more data will pay.

    ## Fix
    Act on the diagnosis in the message. When it is inconclusive: a larger
    `--budget`, or a GPU.
    """

    code = "ML029"
    name = "learning-curve"
    category = "capacity"
    severity = "info"
    needs = ("probes",)
    INVALID = [(_MODEL, _m(data_scaling={"rows": [
        {"fraction": 0.25, "samples": 100, "train_accuracy": 1.0, "val_accuracy": 0.3},
        {"fraction": 0.5, "samples": 200, "train_accuracy": 1.0, "val_accuracy": 0.38},
        {"fraction": 1.0, "samples": 400, "train_accuracy": 0.99, "val_accuracy": 0.45}]})),
               # under-fitting after 150 steps a row (12 epochs at full data)
               (_MODEL, _m(data_scaling={"rows": [
                   {"fraction": 0.5, "samples": 200, "steps": 150, "epochs": 24.0, "train_accuracy": 0.41,
                    "val_accuracy": 0.39},
                   {"fraction": 1.0, "samples": 400, "steps": 150, "epochs": 12.0, "train_accuracy": 0.42,
                    "val_accuracy": 0.4}]})),
               # inconclusive (an info): 13 steps a row, 0.4 epochs at full data
               (_MODEL, _m(data_scaling={"rows": [
                   {"fraction": 0.5, "samples": 520, "steps": 13, "epochs": 0.8, "train_accuracy": 0.1,
                    "val_accuracy": 0.09},
                   {"fraction": 1.0, "samples": 1040, "steps": 13, "epochs": 0.4, "train_accuracy": 0.1,
                    "val_accuracy": 0.1}]}))]
    VALID = [(_MODEL, _m(data_scaling={"rows": [
        {"fraction": 0.25, "samples": 100, "train_accuracy": 0.8, "val_accuracy": 0.76},
        {"fraction": 0.5, "samples": 200, "train_accuracy": 0.82, "val_accuracy": 0.79},
        {"fraction": 1.0, "samples": 400, "train_accuracy": 0.83, "val_accuracy": 0.8}]}))]

    def measure(self, ctx):
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
            said = f"train accuracy {full['train_accuracy']:.0%}, validation {full['val_accuracy']:.0%}"
            steps, epochs = full.get("steps"), full.get("epochs")
            short = (isinstance(steps, int) and steps < UNDERFIT_MIN_STEPS) or _too_short(epochs)
            if short:
                length = f"{steps} steps a row" + (f", {epochs:.2g} epochs at full data" if epochs is not None
                                                   else "")
                yield self.finding(f"inconclusive: {said} after {length}: too short to call it under-fitting",
                                   evidence={"rows": rows, "min_steps": UNDERFIT_MIN_STEPS,
                                             "min_epochs": MIN_EPOCHS},
                                   explanation=f"Under-fitting is judged after at least {UNDERFIT_MIN_STEPS} "
                                               "steps a row and one epoch at full data; a shorter run has not "
                                               "had the time to fit anything.", fix=LONGER)
                return
            after = f" after {steps} steps a row" if steps is not None else ""
            yield self.finding(f"under-fitting within the budget: {said}{after}",
                               evidence={"rows": rows},
                               fix="More capacity or receptive field, better features, or more steps.")
