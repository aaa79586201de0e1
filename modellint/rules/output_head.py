"""ML3xx: the output head against the classes and the loss."""

from __future__ import annotations

from .base import Rule, register

_PROB_LOSSES = ("categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy",
                "categorical_focal_crossentropy", "binary_focal_crossentropy")
_REGRESSION_LOSSES = ("mean_squared_error", "mean_absolute_error", "huber", "log_cosh",
                      "mean_squared_logarithmic_error", "mean_absolute_percentage_error")


def _classifier_outputs(ctx):
    for out in ctx.outputs():
        head = ctx.head(out)
        if head["activation"] in ("softmax", "sigmoid") and isinstance(head["units"], int):
            yield out, head


@register
class OutputUnitsVsClasses(Rule):
    """
    ## What it does
    Compares the number of output units of a softmax/sigmoid classifier with the
    number of classes in the dataset (`--classes`, or counted from `--data`).

    ## Why is this bad
    With fewer units some classes cannot be predicted at all (and sparse labels
    beyond the last unit crash or are silently wrong); with more, probability mass
    goes to classes that do not exist.

    ## Fix
    `Dense(num_classes, activation="softmax")`; for two classes either
    `Dense(1, activation="sigmoid")` or `Dense(2, activation="softmax")`.
    """

    code = "ML301"
    impact = 3
    name = "output-units-vs-classes"
    category = "output-head"
    severity = "error"
    needs = ("classes",)
    INVALID = ["seq(inp(64,), dense(32, act='relu'), dense(10, act='softmax'))  # with classes=13"]
    VALID = ["seq(inp(64,), dense(32, act='relu'), dense(13, act='softmax'))  # with classes=13"]
    EXAMPLE_DATASET = {"classes": 13}

    def check(self, ctx):
        classes = ctx.dataset.classes
        for out, head in _classifier_outputs(ctx):
            units = head["units"]
            if units == classes or (classes == 2 and units == 1 and head["activation"] == "sigmoid"):
                continue
            yield self.finding(f"{ctx.head_layer(out).name}: {units} output units for {classes} classes",
                               layers=[ctx.head_layer(out).name], evidence={"units": units, "classes": classes},
                               explanation="Every class needs exactly one output unit.",
                               fix=f"Dense({classes}, activation='{head['activation']}')")


@register
class SoftmaxOnOneUnit(Rule):
    """
    ## What it does
    Flags a softmax over a single unit.

    ## Why is this bad
    softmax of one number is always 1.0: the model outputs a constant, its
    gradient is zero, and it can never learn.

    ## Fix
    For binary classification use `Dense(1, activation="sigmoid")` with binary
    cross-entropy, or `Dense(2, activation="softmax")`.
    """

    code = "ML302"
    impact = 3
    name = "softmax-on-one-unit"
    category = "output-head"
    severity = "error"
    INVALID = ["seq(inp(64,), dense(32, act='relu'), dense(1, act='softmax'))"]
    VALID = ["seq(inp(64,), dense(32, act='relu'), dense(1, act='sigmoid'))"]

    def check(self, ctx):
        for out, head in _classifier_outputs(ctx):
            if head["activation"] == "softmax" and head["units"] == 1:
                yield self.finding(f"{ctx.head_layer(out).name}: softmax over 1 unit is always 1.0",
                                   layers=[ctx.head_layer(out).name], evidence={"units": 1},
                                   explanation="The output is constant and its gradient is zero.",
                                   fix="Dense(1, activation='sigmoid') with binary_crossentropy.")


@register
class LossActivationMismatch(Rule):
    """
    ## What it does
    Compares the compiled loss with the output activation: categorical
    cross-entropy on a sigmoid output, binary cross-entropy on a multi-unit
    softmax, `from_logits=True` after a softmax/sigmoid, a regression loss (MSE,
    MAE) on a softmax classifier.

    ## Why is this bad
    Each pairing optimises something other than intended: `from_logits=True`
    applies softmax twice (flattening all predictions), binary cross-entropy on
    a softmax treats classes as independent, MSE on probabilities gives weak
    gradients for confident mistakes. A PyTorch model carries no loss: when it
    ends in `nn.Softmax`, modellint assumes the usual `nn.CrossEntropyLoss`
    (which applies log-softmax itself), says so in the finding, and reports it
    as a warning; `--loss` states the real loss.

    ## Fix
    softmax + (sparse_)categorical_crossentropy; sigmoid + binary_crossentropy;
    or raw logits + a loss with `from_logits=True`.
    """

    code = "ML303"
    impact = 3
    name = "loss-activation-mismatch"
    category = "loss"
    severity = "error"
    INVALID = ["seq(inp(64,), dense(10, act='softmax'), loss='categorical_crossentropy', from_logits=True)",
               "seq(inp(64,), dense(10, act='softmax'), loss='binary_crossentropy')",
               "seq(inp(64,), dense(10, act='sigmoid'), loss='categorical_crossentropy')",
               "seq(inp(64,), dense(10, act='softmax'), loss='mean_squared_error')"]
    VALID = ["seq(inp(64,), dense(10, act='softmax'), loss='categorical_crossentropy')",
             "seq(inp(64,), dense(10), loss='sparse_categorical_crossentropy', from_logits=True)",
             "seq(inp(64,), dense(1, act='sigmoid'), loss='binary_crossentropy')"]

    def check(self, ctx):
        t = ctx.graph.training
        if not t or not t.loss:
            return
        loss = t.loss
        for out, head in _classifier_outputs(ctx):
            fn, units = head["activation"], head["units"]
            layer = ctx.head_layer(out).name
            problem = None
            severity = None
            if t.from_logits and loss in _PROB_LOSSES:
                problem = f"loss {loss}(from_logits=True) after a {fn}: the activation is applied twice"
            elif loss.startswith("binary") and fn == "softmax" and units > 1:
                problem = f"binary cross-entropy on a {units}-unit softmax treats exclusive classes as independent"
            elif loss in ("categorical_crossentropy", "sparse_categorical_crossentropy") and fn == "sigmoid" \
                    and units > 1:
                problem = f"{loss} on {units} independent sigmoids: outputs do not sum to 1"
                severity = "warning"
            elif loss in _REGRESSION_LOSSES and fn == "softmax":
                problem = f"regression loss {loss} on a softmax classifier"
                severity = "warning"
            if problem:
                if t.assumed:  # the source has no loss: say what was assumed (see adapters.assume_loss)
                    problem += (" — assuming nn.CrossEntropyLoss, PyTorch's usual classification loss, which "
                                "expects logits; state the real loss with --loss")
                    severity = severity or "warning"
                yield self.finding(f"{layer}: {problem}", layers=[layer], severity=severity,
                                   evidence={"loss": loss, "from_logits": t.from_logits, "activation": fn,
                                             "units": units},
                                   explanation="The loss and the output activation disagree about what the "
                                               "outputs are.",
                                   fix="Pair softmax with (sparse_)categorical_crossentropy, sigmoid with "
                                       "binary_crossentropy, or output logits with from_logits=True.",
                                   snippets={"keras": 'model.compile(loss="sparse_categorical_crossentropy", ...)',
                                             "torch": "nn.CrossEntropyLoss()  # expects logits: no softmax"})
