"""ML6xx: optimizer and learning rate, from the saved compile configuration."""

from __future__ import annotations

from .base import Fix, Rule, register

#: Sane learning-rate ranges by optimizer family (inclusive), for the rule and its docs.
LR_RANGES = {
    "adaptive": (1e-5, 1e-2),  # Adam, AdamW, Nadam, RMSprop, Adamax, Lion (Lion prefers the low end)
    "sgd": (1e-4, 1.0),
}
#: SGD's range above is for this momentum (the usual 0.9): a higher one is judged by lr / (1 − momentum).
REFERENCE_MOMENTUM = 0.9
_ADAPTIVE = ("adam", "adamw", "nadam", "adamax", "rmsprop", "lion", "adafactor", "lamb", "adagrad", "adadelta")


def _opt(ctx):
    t = ctx.graph.training
    if not t or not t.optimizer:
        return None, None, {}
    name = t.optimizer.lower().split(">")[-1]  # "custom>adam" in tf.keras 2.11+ files
    return name, t.learning_rate, t.optimizer_config or {}


@register
class LearningRateOutOfRange(Rule):
    """
    ## What it does
    Flags a compiled learning rate outside the usual range for the optimizer:
    1e-5 to 1e-2 for adaptive optimizers (Adam, RMSprop, ...), 1e-4 to 1.0 for SGD.

    SGD's momentum m multiplies its steady step by 1/(1 − m): a rate within the
    range but with momentum above 0.9 is also flagged when lr/(1 − m) exceeds the
    top of the range at momentum 0.9 (1.0 / 0.1 = 10), e.g. 0.5 with momentum 0.99.

    ## Why is this bad
    Too high and the loss diverges or bounces; too low and training crawls and
    settles in the first plateau. Adam's default 1e-3 and SGD's 0.1 (with
    momentum, for batch 256) are the usual starting points.

    ## Fix
    Start from the optimizer's default and tune with a learning-rate range test
    (`modellint probe` runs one).
    """

    code = "ML601"
    impact = 3
    name = "learning-rate-out-of-range"
    category = "learning-rate"
    severity = "warning"
    references = ("Smith 2017, Cyclical Learning Rates for Training Neural Networks (WACV)",
                  "Google Research, Deep Learning Tuning Playbook (2023)")
    INVALID = ["seq(inp(64,), dense(10, act='softmax'), loss='categorical_crossentropy', optimizer='adam', lr=0.5)",
               "seq(inp(64,), dense(10, act='softmax'), loss='categorical_crossentropy', optimizer='sgd', lr=10.0)",
               # within the range alone, but momentum 0.99 makes its steady step 50
               "seq(inp(64,), dense(10, act='softmax'), loss='categorical_crossentropy', optimizer='sgd', lr=0.5, "
               "momentum=0.99)"]
    VALID = ["seq(inp(64,), dense(10, act='softmax'), loss='categorical_crossentropy', optimizer='adam', lr=1e-3)",
             "seq(inp(64,), dense(10, act='softmax'), loss='categorical_crossentropy', optimizer='sgd', lr=0.1, "
             "momentum=0.99)"]

    def check(self, ctx):
        name, lr, cfg = _opt(ctx)
        if lr is None or name is None:
            return
        family = "sgd" if name == "sgd" else "adaptive" if name in _ADAPTIVE else None
        if family is None:
            return
        lo, hi = LR_RANGES[family]
        if not lo <= lr <= hi:
            yield self.finding(f"learning rate {lr:g} for {name} is {'above' if lr > hi else 'below'} the usual "
                               f"range {lo:g}–{hi:g}", evidence={"learning_rate": lr, "optimizer": name,
                                                                  "range": [lo, hi]},
                               severity="warning",
                               explanation="Too high diverges, too low crawls.",
                               fix=f"Start near {'1e-3' if family == 'adaptive' else '0.1 with momentum 0.9'} "
                                   "and tune with a learning-rate range test.")
            return
        m = cfg.get("momentum")
        if family == "sgd" and isinstance(m, (int, float)) and REFERENCE_MOMENTUM < m < 1:
            effective, top = lr / (1 - m), hi / (1 - REFERENCE_MOMENTUM)
            if effective > top:
                yield self.finding(
                    f"learning rate {lr:g} with momentum {m:g} steps like {effective:.3g} without momentum "
                    f"(lr / (1 − momentum)), above the {top:g} of the usual range at momentum {REFERENCE_MOMENTUM:g}",
                    evidence={"learning_rate": lr, "momentum": m, "effective": effective, "top": top,
                              "optimizer": name}, severity="warning",
                    explanation="Momentum m accumulates past steps: the steady step is the rate times 1/(1 − m), "
                                "so a high momentum makes a moderate rate diverge.",
                    fix=f"Lower the rate to about {top * (1 - m):.2g} (or momentum to 0.9), and tune it with a "
                        "learning-rate range test.")


@register
class SgdWithoutMomentum(Rule):
    """
    ## What it does
    Flags plain SGD with momentum 0.

    ## Why is this bad
    Without momentum SGD is slow on the ill-conditioned loss surfaces of deep
    networks; momentum 0.9 is the standard choice in every reference training
    recipe for CNNs.

    ## Fix
    `SGD(learning_rate=0.1, momentum=0.9, nesterov=True)` (scale the rate with the batch size).
    """

    code = "ML602"
    impact = 1
    name = "sgd-without-momentum"
    category = "optimizer"
    severity = "info"
    references = ("Sutskever et al. 2013, On the importance of initialization and momentum in deep learning",)
    INVALID = ["seq(inp(64,), dense(10, act='softmax'), optimizer='sgd', lr=0.01, momentum=0.0)"]
    VALID = ["seq(inp(64,), dense(10, act='softmax'), optimizer='sgd', lr=0.1, momentum=0.9)"]
    fix = Fix("SGD with momentum 0.9 (Nesterov)", "unsafe", "kept",
              lambda fx: (fx.editor.set_training(optimizer_config={"momentum": 0.9, "nesterov": True}),
                          ["optimizer: SGD(momentum=0.9, nesterov=True)"])[1])

    def check(self, ctx):
        name, _, cfg = _opt(ctx)
        if name == "sgd" and not cfg.get("momentum"):
            yield self.finding("SGD without momentum", evidence={"momentum": cfg.get("momentum", 0.0)},
                               explanation="Momentum speeds up SGD on deep networks' loss surfaces.",
                               fix=ctx.say("SGD(momentum=0.9, nesterov=True)",
                                           "torch.optim.SGD(params, lr, momentum=0.9, nesterov=True)"),
                               snippets={"keras": "keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, "
                                                  "nesterov=True)",
                                         "torch": "torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)"})


@register
class CoupledWeightDecay(Rule):
    """
    ## What it does
    Flags Adam-family optimizers with L2-style (coupled) weight decay, where
    the decay is added to the gradient and then rescaled by Adam's adaptive
    step (PyTorch's `torch.optim.Adam(weight_decay=...)`, older Keras setups).
    Keras 3 optimizers apply `weight_decay` decoupled already and are not flagged.

    ## Why is this bad
    Coupled decay is divided by the running gradient magnitude: weights with
    large gradients are barely regularised. AdamW decouples the decay and
    generalises better at the same cost.

    ## Fix
    Use AdamW (`keras.optimizers.AdamW`, `torch.optim.AdamW`).
    """

    code = "ML603"
    name = "coupled-weight-decay"
    category = "optimizer"
    severity = "warning"
    references = ("Loshchilov & Hutter 2019, Decoupled Weight Decay Regularization (ICLR)",)
    INVALID = ["seq(inp(64,), dense(10, act='softmax'), optimizer='adam', lr=1e-3, weight_decay=1e-4, "
               "decoupled_weight_decay=False)"]
    VALID = ["seq(inp(64,), dense(10, act='softmax'), optimizer='adamw', lr=1e-3, weight_decay=1e-4, "
             "decoupled_weight_decay=True)"]

    def check(self, ctx):
        name, _, cfg = _opt(ctx)
        if name in ("adam", "nadam", "adamax", "rmsprop") and cfg.get("weight_decay") \
                and not cfg.get("decoupled_weight_decay"):
            yield self.finding(f"{name} with coupled weight decay {cfg['weight_decay']:g}",
                               evidence={"optimizer": name, "weight_decay": cfg["weight_decay"]},
                               explanation="Adam rescales coupled decay by the gradient magnitude.",
                               fix="Use AdamW.", snippets={"torch": "torch.optim.AdamW(params, lr=1e-3, "
                                                                    "weight_decay=1e-2)"})


@register
class ExtremeEpsilon(Rule):
    """
    ## What it does
    Flags an Adam-family epsilon of 0.01 or more.

    ## Why is this bad
    Epsilon is added to the root of the second-moment estimate; when it
    dominates, the adaptive scaling disappears and the optimizer behaves like
    SGD with momentum and a tiny learning rate. (Epsilon 1.0 is used on
    purpose in some large-batch recipes; then tune the learning rate with it.)

    ## Fix
    Keep the default (1e-7 in Keras, 1e-8 in PyTorch) unless you have measured otherwise.
    """

    code = "ML604"
    impact = 1
    name = "extreme-epsilon"
    category = "optimizer"
    severity = "info"
    INVALID = ["seq(inp(64,), dense(10, act='softmax'), optimizer='adam', lr=1e-3, epsilon=0.1)"]
    VALID = ["seq(inp(64,), dense(10, act='softmax'), optimizer='adam', lr=1e-3, epsilon=1e-7)"]

    def check(self, ctx):
        name, _, cfg = _opt(ctx)
        eps = cfg.get("epsilon")
        if name in _ADAPTIVE and isinstance(eps, (int, float)) and eps >= 0.01:
            yield self.finding(f"{name} epsilon {eps:g} overrides the adaptive step size",
                               evidence={"epsilon": eps},
                               fix=ctx.say("Use the default epsilon (1e-7).", "Use the default eps (1e-8)."))
