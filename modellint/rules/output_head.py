"""ML2xx/ML3xx at the output: the head against the task, the classes and the loss.

Every output gets at most one finding, with one fix. :func:`head_problems` decides it
once per model, from the task analysis (``ctx.task``, :mod:`modellint.analysis.task`)
and the head × loss table :data:`MATRIX`; each rule below reports the problems that
carry its code. In order, an output is checked for:

1. position axes it should not keep (ML304, per-position output for a per-sample task);
2. a softmax over one unit (ML302);
3. its activation against what its loss expects (:data:`MATRIX`: ML205, ML303, ML305);
4. its units against the classes (ML301).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .. import losses as L
from ..analysis import task as T
from .base import Fix, Rule, register

# ---------------------------------------------------------------------------
# the head × loss table
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One row of the head × loss table: an output activation class under a loss that
    expects ``expects`` and trains ``trains`` (None: any), when the task is one of
    ``tasks`` (None: any)."""

    activation: str            # analysis.task.activation_class: softmax, log_softmax, sigmoid, linear, ...
    expects: str               # losses.PROBABILITIES / LOGITS / LOG_PROBABILITIES / VALUES
    trains: Optional[tuple]
    code: str                  # the rule that reports it (where the fix lives)
    severity: str
    problem: str               # {fn} {units} {loss} {task}
    fix: str                   # prose, in the model's framework where it matters ({…} as above)
    tasks: Optional[frozenset] = None
    units: Optional[str] = None  # "1" or ">1": only for that many output units
    framework: Optional[str] = None  # "keras" / "torch": only for losses of that framework
    stated: bool = False       # only when the user stated the task (the loss cannot tell it)


_P, _LG, _LP, _V = L.PROBABILITIES, L.LOGITS, L.LOG_PROBABILITIES, L.VALUES
_CLASSIFY = (L.MULTICLASS, L.BINARY, L.DISTRIBUTION)

MATRIX = (
    # -- losses that expect probabilities
    Cell("linear", _P, None, "ML205", "error",
         "raw scores into {loss}, which expects probabilities: the loss clips them into (0, 1)",
         "keras: compile the loss with from_logits=True (numerically stable); torch: use nn.BCEWithLogitsLoss"),
    Cell("nonnegative", _P, None, "ML305", "error",
         "a {fn} output into {loss}, which expects probabilities: the values are unbounded and an all-zero row "
         "gives log(0)",
         "end the head in {want} (or in no activation, with from_logits=True)"),
    Cell("bounded", _P, None, "ML305", "error",
         "a {fn} output into {loss}, which expects probabilities: negative outputs have no logarithm",
         "end the head in {want}"),
    Cell("log_softmax", _P, None, "ML305", "error",
         "log-probabilities (log_softmax, all <= 0) into {loss}, which expects probabilities",
         "end the head in {want}"),
    Cell("softmax", _P, (L.BINARY,), "ML303", "error",
         "{loss} on a {units}-unit softmax scores each class as an independent yes/no", 
         "for one label per sample use categorical_crossentropy (sparse_categorical_crossentropy for integer "
         "labels)", tasks=frozenset({"multiclass", "segmentation", "sequence-labelling", T.UNKNOWN}), units=">1"),
    Cell("softmax", _P, (L.BINARY,), "ML305", "error",
         "a {units}-unit softmax for {task} labels: softmax makes the labels compete, so two can never both be "
         "likely", "end the head in sigmoid (one independent probability per label)",
         tasks=frozenset({"multilabel"}), units=">1"),
    Cell("sigmoid", _P, (L.MULTICLASS,), "ML303", "error",
         "{loss} over one sigmoid unit: the class probabilities are renormalised to 1.0, the loss is always 0 "
         "and nothing is learned", "binary_crossentropy on the one sigmoid unit", units="1"),
    Cell("sigmoid", _P, (L.MULTICLASS,), "ML305", "warning",
         "{loss} on {units} independent sigmoids: the outputs do not sum to 1, so they are not a distribution "
         "over exclusive classes", "end the head in softmax", units=">1"),
    Cell("sigmoid", _P, (L.DISTRIBUTION,), "ML305", "warning",
         "{loss} on {units} independent sigmoids: the outputs do not sum to 1", "end the head in softmax"),
    # -- losses that expect logits
    Cell("softmax", _LG, None, "ML303", "error",
         "{loss} after a softmax: the softmax is applied twice, which flattens every prediction towards uniform",
         "drop from_logits=True (the model already outputs probabilities)", framework="keras"),
    Cell("sigmoid", _LG, None, "ML303", "error",
         "{loss} after a sigmoid: the sigmoid is applied twice, squeezing every output into (0.5, 0.73)",
         "drop from_logits=True (the model already outputs probabilities)", framework="keras"),
    Cell("softmax", _LG, None, "ML305", "error",
         "a softmax before {loss}, which applies (log-)softmax itself: softmax twice flattens every prediction "
         "towards uniform and the gradients nearly vanish", "remove the softmax: the head outputs logits",
         framework="torch"),
    Cell("sigmoid", _LG, None, "ML305", "error",
         "a sigmoid before {loss}, which expects logits: the outputs are squashed into (0, 1) and read as scores, "
         "so no prediction can become confident", "remove the sigmoid: the head outputs logits",
         framework="torch"),
    Cell("log_softmax", _LG, (L.BINARY,), "ML305", "error",
         "log-probabilities (log_softmax) into {loss}, which expects one logit per label",
         "remove the log_softmax: the head outputs logits"),
    Cell("nonnegative", _LG, None, "ML305", "error",
         "a {fn} on the logits before {loss}: no score can be negative, and a unit whose input is negative has "
         "zero gradient", "remove the {fn}: logits take any sign"),
    Cell("bounded", _LG, None, "ML305", "warning",
         "a {fn} on the logits before {loss}: scores in (-1, 1) cap the largest probability at {cap}",
         "remove the {fn}: logits take any sign"),
    # -- losses that expect log-probabilities
    Cell("linear", _LP, None, "ML305", "error",
         "raw scores into {loss}, which expects log-probabilities: the loss becomes -score, unbounded below",
         "end the head in log_softmax (torch: nn.LogSoftmax(dim=1)), or use CrossEntropyLoss on the raw scores"),
    Cell("softmax", _LP, None, "ML305", "error",
         "probabilities (softmax) into {loss}, which expects log-probabilities: the loss becomes -p, not the "
         "log-likelihood", "use log_softmax instead of softmax (torch: nn.LogSoftmax(dim=1))"),
    Cell("sigmoid", _LP, None, "ML305", "error",
         "a sigmoid into {loss}, which expects log-probabilities", "end the head in log_softmax"),
    Cell("nonnegative", _LP, None, "ML305", "error",
         "a {fn} output into {loss}, which expects log-probabilities (all <= 0)", "end the head in log_softmax"),
    Cell("bounded", _LP, None, "ML305", "error",
         "a {fn} output into {loss}, which expects log-probabilities", "end the head in log_softmax"),
    # -- regression losses
    Cell("softmax", _V, (L.REGRESSION,), "ML303", "warning",
         "regression loss {loss} on a {units}-class classifier: squared error on probabilities gives weak "
         "gradients to confident mistakes", "train a classifier with cross-entropy: {want_loss}",
         tasks=frozenset({"multiclass"})),
    Cell("linear", _V, (L.REGRESSION,), "ML303", "warning",
         "regression loss {loss} on a {units}-class classifier: the scores are fitted to the labels' numbers",
         "train a classifier with cross-entropy: {want_loss}", tasks=frozenset({"multiclass"})),
    Cell("softmax", _V, (L.REGRESSION,), "ML305", "error",
         "a softmax at a regression output: the {units} outputs are forced to sum to 1, so the targets cannot "
         "be fitted", "remove the softmax: a regression head outputs raw values",
         tasks=frozenset(T.REGRESSION | {T.UNKNOWN, "reconstruction"})),
    Cell("log_softmax", _V, (L.REGRESSION,), "ML305", "error",
         "a log_softmax at a regression output: the outputs are log-probabilities, all <= 0",
         "remove the log_softmax: a regression head outputs raw values"),
    Cell("nonnegative", _V, (L.REGRESSION,), "ML305", "warning",
         "a {fn} at a regression output: no prediction can go below 0, and where the last layer's output is "
         "negative the gradient is 0, so the output can die",
         "remove the {fn} (raw values), or use softplus for a non-negative target",
         tasks=frozenset({"regression", T.UNKNOWN})),
    Cell("sigmoid", _V, (L.REGRESSION,), "ML305", "warning",
         "a sigmoid at the output of an unbounded regression: every prediction lies in (0, 1)",
         "remove the sigmoid, or scale the target into [0, 1] and state --task regression-bounded",
         tasks=frozenset({"regression"}), stated=True),
    Cell("bounded", _V, (L.REGRESSION,), "ML305", "warning",
         "a {fn} at the output of an unbounded regression: every prediction lies in (-1, 1)",
         "remove the {fn}, or scale the target into [-1, 1] and state --task regression-bounded",
         tasks=frozenset({"regression"}), stated=True),
    # -- margin losses: scores of either sign
    Cell("sigmoid", _V, (L.BINARY,), "ML305", "warning",
         "a sigmoid before the margin loss {loss}: outputs in (0, 1) can never reach the margin for a "
         "negative label", "end the head in no activation (or tanh)"),
    Cell("softmax", _V, (L.BINARY,), "ML305", "warning",
         "a softmax before the margin loss {loss}: outputs in (0, 1) can never reach the margin for a "
         "negative label", "end the head in no activation (or tanh)"),
)

_RELU_LIKE_DEAD = {"relu", "relu6", "thresholded_relu"}  # exactly zero below 0: the output can die


def _lookup(head: T.Head, framework: str) -> Optional[Cell]:
    loss = head.loss
    if loss is None or head.expects is None:
        return None
    for cell in MATRIX:
        if cell.activation != head.act_class or cell.expects != head.expects:
            continue
        if cell.trains is not None and loss.trains not in cell.trains:
            continue
        if cell.tasks is not None and head.task not in cell.tasks:
            continue
        if cell.framework is not None and cell.framework != loss.framework:
            continue
        if cell.stated and head.source != "stated":
            continue
        if cell.units == "1" and head.units != 1 or cell.units == ">1" and not (head.units or 0) > 1:
            continue
        if cell.activation == "nonnegative" and cell.expects == _V and head.activation not in _RELU_LIKE_DEAD:
            continue  # softplus / exp at a regression output are sound choices
        return cell
    return None


def matrix_markdown() -> str:
    """:data:`MATRIX` as a Markdown table (for the rule pages)."""
    rows = ["| output activation | loss expects | loss trains | task | units | reported as | severity |",
            "|---|---|---|---|---|---|---|"]
    for c in MATRIX:
        rows.append(f"| {c.activation} | {c.expects} | {', '.join(c.trains) if c.trains else 'any'} | "
                    f"{', '.join(sorted(c.tasks)) if c.tasks else 'any'}{' (stated)' if c.stated else ''} | "
                    f"{c.units or 'any'} | "
                    f"{c.code}{' (' + c.framework + ' losses)' if c.framework else ''} | {c.severity} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------
# one problem per head
# ---------------------------------------------------------------------------


@dataclass
class Problem:
    code: str
    severity: str
    head: T.Head
    message: str
    explanation: str
    fix: str
    evidence: dict
    snippets: dict


def speaks_torch(graph) -> bool:
    """Messages for this model in PyTorch's words (a PyTorch model, or ONNX exported by PyTorch)."""
    return graph.framework == "torch" or (graph.framework == "onnx" and "torch" in (graph.framework_version or "")
                                           .lower())


def _want(head: T.Head) -> str:
    """The activation a probability loss wants for this head's task."""
    if head.loss and head.loss.trains == L.BINARY and head.task != "multiclass":
        return "sigmoid"
    return "softmax"


def _want_loss(torch: bool, task: str) -> str:
    if torch:
        return "nn.CrossEntropyLoss on raw scores"
    return "sparse_categorical_crossentropy (integer labels) or categorical_crossentropy (one-hot)"


def _head_text(ctx, head: T.Head) -> str:
    """``Linear `fc` (512→10)`` for PyTorch, the layer name for Keras."""
    return ctx.label(ctx.graph[head.layer])


def _head_snippets(ctx, head: T.Head, units, activation: Optional[str], loss_keras: Optional[str] = None,
                   loss_torch: Optional[str] = None) -> dict:
    layer = ctx.graph[head.layer]
    in_shape = ctx.graph.shape_of(layer.inputs[0]) if layer.inputs else None
    fan_in = in_shape[-1] if in_shape and isinstance(in_shape[-1], int) else "in_features"
    units = units if units is not None else "num_outputs"
    keras = f'Dense({units}' + (f', activation="{activation}"' if activation else "") + ")"
    if loss_keras:
        keras += f"\nmodel.compile(loss={loss_keras}, ...)"
    torch_act = {"softmax": "nn.Softmax(dim=1)", "sigmoid": "nn.Sigmoid()", "log_softmax": "nn.LogSoftmax(dim=1)",
                 "softplus": "nn.Softplus()"}.get(activation or "")
    torch = f"nn.Linear({fan_in}, {units})" + (f", {torch_act}" if torch_act else "  # raw outputs")
    if loss_torch:
        torch += f"\ncriterion = {loss_torch}"
    return {"torch": torch} if speaks_torch(ctx.graph) else {"keras": keras}


def head_problems(ctx) -> dict:
    """{output name: Problem} for every output with something wrong (computed once per context)."""
    cached = ctx.__dict__.get("_head_problems")
    if cached is None:
        cached = ctx.__dict__["_head_problems"] = {}
        for head in ctx.task.heads:
            problem = (_per_position(ctx, head) or _softmax_one_unit(ctx, head) or _activation_before(ctx, head)
                       or _matrix(ctx, head) or _units(ctx, head))
            if problem:
                cached[head.output] = problem
    return cached


def _assumed_note(head: T.Head) -> str:
    if head.loss_assumed and head.loss:
        return (f" — assuming {head.loss.spelled(head.from_logits)}, the usual loss for this head; "
                "state the real one with --loss")
    return ""


def _per_position(ctx, head: T.Head) -> Optional[Problem]:
    if not head.keeps_positions or head.task not in T.PER_SAMPLE:
        return None
    torch = speaks_torch(ctx.graph)
    shape = ctx.graph.display_shape(head.shape)
    g = ctx.graph
    sequence = len(head.positions) == 1
    recurrent = [n for n in g if n.op == "rnn" and n.attrs.get("return_sequences")]
    if sequence and recurrent:
        fix = ("keep only the last step: return_sequences=False on the last LSTM/GRU" if not torch else
               "keep only the last step: out[:, -1] (batch_first) or the final hidden state h_n[-1]")
        snip = {"keras": "LSTM(units)  # return_sequences=False: one vector per sequence",
                "torch": "out, (h_n, c_n) = self.lstm(x)\nreturn self.fc(h_n[-1])  # one output per sequence"}
    elif sequence:
        fix = "pool over the positions before the head: GlobalAveragePooling1D (torch: x.mean(dim=1))"
        snip = {"keras": "x = GlobalAveragePooling1D()(x)\noutputs = Dense(units, ...)(x)",
                "torch": "x = x.mean(dim=1)  # one vector per sequence\nreturn self.head(x)"}
    else:
        fix = ("pool or flatten the feature map before the head: GlobalAveragePooling2D() (or Flatten())" if not torch
               else "pool the feature map before the head: nn.AdaptiveAvgPool2d(1) + nn.Flatten()")
        snip = {"keras": "x = GlobalAveragePooling2D()(x)  # or Flatten()\noutputs = Dense(units, ...)(x)",
                "torch": "nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)"}
    certain = head.source == "stated" or ctx.dataset.source.startswith("--data") or \
        ctx.dataset.source.startswith("data=")
    positions = "×".join(str(p) for p in head.positions)
    per = "time step" if sequence else "position"
    return Problem(
        "ML304", "error" if certain else "warning", head,
        f"{_head_text(ctx, head)}: output {tuple(shape)} gives one prediction per {per} ({positions}) for a "
        f"{head.task} task ({head.reason})",
        f"A {head.task} model predicts once per sample, but this output keeps {len(head.positions)} position "
        f"ax{'is' if sequence else 'es'}: the loss compares each of the {positions} predictions with the sample's "
        "one label (or fails on the shapes). Nothing in the model decodes back to positions (no upsampling or "
        "transposed convolution), so a per-position task is unlikely; if you do label every position, state "
        f"--task {'sequence-labelling' if sequence else 'segmentation'}.",
        fix, {"output_shape": list(shape), "positions": list(head.positions), "task": head.task,
              "task_source": head.source}, {k: v for k, v in snip.items() if k == ("torch" if torch else "keras")})


def activation_before_head(ctx, head: T.Head):
    """The non-linear activation applied right before the head's final softmax/sigmoid
    (``Dense(46, activation="relu")`` then ``Activation("softmax")``), or None."""
    if head.act_class not in ("softmax", "sigmoid", "log_softmax"):
        return None
    node = ctx.graph[head.output]
    while node.op != "activation" and node.inputs:  # back through shape-only ops to the head's activation
        node = ctx.producers(node)[0]
    before = ctx.producers(node) if node.op == "activation" else []
    if len(before) == 1 and before[0].op == "activation" and \
            before[0].attrs.get("function") not in (None, "linear", "identity"):
        return before[0]
    return None


def _activation_before(ctx, head: T.Head) -> Optional[Problem]:
    first = activation_before_head(ctx, head)
    if first is None:
        return None
    fn = first.attrs.get("function")
    final = head.activation
    clipped = T.activation_class(fn) == "nonnegative"
    return Problem(
        "ML305", "error" if clipped else "warning", head,
        f"{_head_text(ctx, head)}: {fn} before the output {final}: "
        + ("every negative score is clipped to 0, so no class can be made unlikely" if clipped else
           f"the scores are squashed by {fn} before the {final}"),
        f"The {final} needs raw scores (logits) of any sign; a {fn} in front of it limits them, so the "
        "output can never become confident (with ReLU, dead units make classes impossible to predict).",
        f"remove the {fn}: the last layer outputs raw scores for the {final}",
        {"activations": [fn, final], "task": head.task},
        _head_snippets(ctx, head, head.units, None if speaks_torch(ctx.graph) else final))


def _softmax_one_unit(ctx, head: T.Head) -> Optional[Problem]:
    if head.activation != "softmax" or head.units != 1:
        return None
    torch = speaks_torch(ctx.graph)
    regression = head.task in T.REGRESSION
    fix = ("remove the softmax: a regression output is raw values" if regression else
           "Dense(1, activation='sigmoid') with binary_crossentropy, or Dense(2, activation='softmax')"
           if not torch else "one logit with nn.BCEWithLogitsLoss, or two logits with nn.CrossEntropyLoss")
    snips = (_head_snippets(ctx, head, 1, None) if regression else
             _head_snippets(ctx, head, 1, "sigmoid", '"binary_crossentropy"') if not torch else
             _head_snippets(ctx, head, 1, None, None, "nn.BCEWithLogitsLoss()"))
    return Problem("ML302", "error", head, f"{_head_text(ctx, head)}: softmax over 1 unit is always 1.0",
                   "The output is constant and its gradient is zero: the model cannot learn anything.", fix,
                   {"units": 1, "task": head.task}, snips)


def _matrix(ctx, head: T.Head) -> Optional[Problem]:
    cell = _lookup(head, ctx.graph.framework)
    if cell is None:
        return None
    torch = speaks_torch(ctx.graph)
    fn = head.activation or "no activation"
    loss = head.loss.spelled(head.from_logits)
    classes = ctx.dataset.classes or head.units
    cap = ""
    if cell.activation == "bounded" and isinstance(classes, int) and classes > 1:
        cap = f"{math.e ** 2 / (math.e ** 2 + classes - 1):.2f} with {classes} classes"
    words = dict(fn=fn, units=head.units, loss=loss, task=head.task, want=_want(head), cap=cap or "well below 1",
                 want_loss=_want_loss(torch, head.task))
    fix = cell.fix.format(**words)
    if fix.startswith("keras: "):  # a fix spelled per framework: keep the model's own
        parts = dict(p.split(": ", 1) for p in fix.split("; "))
        fix = parts["torch" if torch else "keras"]
    message = f"{_head_text(ctx, head)}: {cell.problem.format(**words)}{_assumed_note(head)}"
    severity = "warning" if head.loss_assumed and cell.severity == "error" else cell.severity
    if cell.code == "ML303" and cell.expects == _V:
        snips = _head_snippets(ctx, head, head.units, None if torch else "softmax",
                               '"sparse_categorical_crossentropy"', "nn.CrossEntropyLoss()")
    elif cell.code == "ML303" or cell.code == "ML205":
        snips = {"keras": f"model.compile(loss=keras.losses.{_keras_class(head.loss.name)}(from_logits="
                          f"{'True' if cell.code == 'ML205' else 'False'}), ...)"}
        if torch:
            snips = {"torch": "criterion = nn.BCEWithLogitsLoss()  # takes raw scores"
                     if head.loss.trains == L.BINARY else "criterion = nn.CrossEntropyLoss()  # takes raw scores"}
    else:
        want = None if "remove" in fix or "no activation" in fix else (
            "log_softmax" if "log_softmax" in fix else _want(head) if cell.expects == _P else None)
        snips = _head_snippets(ctx, head, head.units, want)
    return Problem(cell.code, severity, head, message,
                   "The loss and the output activation disagree about what the outputs are: "
                   f"{head.loss.spelled(head.from_logits)} expects {head.expects}, the head outputs "
                   f"{T.OUTPUT_RANGE.get(head.activation or 'linear', head.activation or 'raw values')}.",
                   fix, {"loss": head.loss.name, "from_logits": head.from_logits, "expects": head.expects,
                         "activation": head.activation, "units": head.units, "task": head.task,
                         "loss_assumed": head.loss_assumed}, snips)


def _keras_class(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_")).replace("crossentropy", "Crossentropy")


def _units(ctx, head: T.Head) -> Optional[Problem]:
    classes = ctx.dataset.classes
    units = head.units
    if classes is None or not isinstance(units, int):
        return None
    task = head.task
    if task == T.UNKNOWN and head.act_class in ("softmax", "sigmoid"):
        task = "multiclass" if head.act_class == "softmax" else ("binary" if units == 1 else "multilabel")
    if task not in ("multiclass", "binary", "multilabel", "segmentation", "sequence-labelling"):
        return None
    if units == classes:
        return None
    if classes == 2 and units == 1 and (head.act_class == "sigmoid" or (head.loss and head.loss.trains == L.BINARY)):
        return None  # binary as one probability / one logit
    torch = speaks_torch(ctx.graph)
    act = None if torch or head.act_class == "linear" else head.activation
    return Problem("ML301", "error", head,
                   f"{_head_text(ctx, head)}: {units} output unit{'s' if units != 1 else ''} for {classes} classes",
                   "Every class needs exactly one output unit: with fewer some classes cannot be predicted (and "
                   "labels beyond the last unit crash or are silently wrong); with more, probability mass goes "
                   "to classes that do not exist.",
                   f"{classes} output units" + (f" ({head.activation})" if act else ""),
                   {"units": units, "classes": classes, "task": task}, _head_snippets(ctx, head, classes, act))


# ---------------------------------------------------------------------------
# the repair: one per head, whatever the code
# ---------------------------------------------------------------------------

_HEAD_PATH = ("activation", "reshape", "flatten", "identity", "dropout")


def _head_activations(graph, head: T.Head) -> list:
    """The activation nodes between the head's layer and its output, nearest the layer first."""
    node, found = graph[head.output], []
    while node.name != head.layer and node.op in _HEAD_PATH and node.inputs:
        if node.op == "activation":
            found.append(node)
        node = graph.producers(node)[0]
    return found[::-1]


def set_head_activation(fx, head: T.Head, function: Optional[str]) -> str:
    """End the head in ``function`` (None: raw values): the layer's own activation argument
    for Keras, an activation node after the layer for PyTorch; other activations on the way go."""
    g, ed = fx.graph, fx.editor
    layer = g[head.layer]
    acts = _head_activations(g, head)
    fusable = layer.op in ("dense", "conv", "separable_conv", "conv_transpose", "depthwise_conv")
    own = not fx.torch and fusable
    for a in acts:
        if a.fused_into is None:
            ed.remove(a.name)
    if fusable and (layer.attrs.get("activation") or "linear") != "linear" and (not own or function is None):
        ed.set_attrs(layer.name, activation="linear")
    if function is None:
        return f"{head.layer}: outputs raw values (no activation)"
    if own:
        ed.set_attrs(layer.name, activation=function)
        return f"{head.layer}: activation='{function}'"
    name = ed.insert_after(layer.name, fx.activation(f"{head.layer}_{function}", function))
    return f"{name}: {function} after {head.layer}"


def _loss_words(loss: str, from_logits=None) -> str:
    return f"{loss}(from_logits=True)" if from_logits else loss


def _repair_head(fx):
    """The repair of a head problem: position axes pooled away (ML304), the activation the
    loss expects (ML305, ML302), the loss the head needs (ML303, ML205), one unit per class (ML301)."""
    done = []
    ctx = fx.ctx
    for problem in head_problems(ctx).values():
        if problem.code != fx.finding.code or problem.head.layer not in fx.finding.layers:
            continue
        head, code, ed, torch = problem.head, problem.code, fx.editor, fx.torch
        loss = head.loss
        if code == "ML304":
            recurrent = [n for n in fx.graph if n.op == "rnn" and n.attrs.get("return_sequences")]
            if len(head.positions) == 1 and recurrent:
                last = recurrent[-1]
                ed.set_attrs(last.name, return_sequences=False)
                done.append(f"{last.name}: return_sequences=False (one vector per sequence)")
            else:
                layer = fx.graph[head.layer]
                name = ed.insert_before(layer.name, fx.global_avg_pool("global_average_pooling",
                                                                        len(head.positions)))
                done.append(f"{name}: global average pooling before {layer.name} (one prediction per sample)")
        elif code == "ML301":
            classes = problem.evidence["classes"]
            layer = fx.graph[head.layer]
            ed.set_attrs(layer.name, **({"units": classes} if layer.op == "dense" else {"filters": classes}))
            done.append(f"{layer.name}: {classes} output units (one per class)")
        elif code == "ML302":
            if head.task in T.REGRESSION:
                done.append(set_head_activation(fx, head, None))
            elif torch:
                done.append(set_head_activation(fx, head, None))
                ed.set_training(loss="BCEWithLogitsLoss", from_logits=None)
                done.append("loss: nn.BCEWithLogitsLoss (one logit for two classes)")
            else:
                done.append(set_head_activation(fx, head, "sigmoid"))
                ed.set_training(loss="binary_crossentropy", from_logits=False)
                done.append("loss: binary_crossentropy")
        elif code == "ML205":
            if torch or (loss and loss.framework == "torch"):
                new = "BCEWithLogitsLoss" if loss and loss.trains == L.BINARY else "CrossEntropyLoss"
                ed.set_training(loss=new, from_logits=None)
                done.append(f"loss: nn.{new} (takes the raw scores)")
            else:
                ed.set_training(from_logits=True)
                done.append(f"loss: {_loss_words(head.loss_name, True)} (takes the raw scores)")
        elif code == "ML303":
            if head.expects == L.LOGITS and not torch:
                ed.set_training(from_logits=False)
                done.append(f"loss: {head.loss_name} without from_logits (the head outputs probabilities)")
            elif head.act_class == "sigmoid" and head.units == 1:
                ed.set_training(loss="binary_crossentropy", from_logits=False)
                done.append("loss: binary_crossentropy (one sigmoid unit)")
            elif head.expects == L.VALUES:
                if torch:
                    done.append(set_head_activation(fx, head, None))
                    ed.set_training(loss="CrossEntropyLoss", from_logits=None)
                    done.append("loss: nn.CrossEntropyLoss (a classifier)")
                else:
                    if head.act_class != "softmax":
                        done.append(set_head_activation(fx, head, "softmax"))
                    ed.set_training(loss="categorical_crossentropy", from_logits=False)
                    done.append("loss: categorical_crossentropy (one-hot labels; "
                                "sparse_categorical_crossentropy for integer labels)")
            else:
                new = "CrossEntropyLoss" if torch else "categorical_crossentropy"
                ed.set_training(loss=new, from_logits=None if torch else False)
                done.append(f"loss: {new} (one label per sample)")
        elif code == "ML305":
            before = activation_before_head(ctx, head)
            if before is not None:
                layer = ctx.layer_of(before)
                if before.fused_into:
                    ed.set_attrs(layer.name, activation="linear")
                else:
                    ed.remove(before.name)
                done.append(f"{before.name}: {before.attrs.get('function')} removed before the output "
                            f"{head.activation}")
            else:
                want = {L.LOGITS: None, L.LOG_PROBABILITIES: "log_softmax", L.PROBABILITIES: _want(head),
                        L.VALUES: None}.get(head.expects)
                if head.expects == L.PROBABILITIES and head.task == "multilabel":
                    want = "sigmoid"
                done.append(set_head_activation(fx, head, want))
    return done


HEAD_FIX = Fix("Repair the head for the model's task (its activation, its loss, its shape, its units)",
               "unsafe", "kept", lambda fx: _repair_head(fx))


class _HeadRule(Rule):
    """Reports the head problems that carry this rule's code."""

    fix = HEAD_FIX

    @classmethod
    def tables(cls) -> list:
        if cls.code not in {c.code for c in MATRIX}:
            return []
        return [("The head × loss table", "The first matching row wins; an output gets at most one finding "
                 "(per-position output, then softmax over one unit, then this table, then units against "
                 "classes).\n\n" + matrix_markdown()),
                ("Losses modellint knows", L.table_markdown())]

    def check(self, ctx):
        for problem in head_problems(ctx).values():
            if problem.code == self.code:
                yield self.finding(problem.message, layers=[problem.head.layer], evidence=problem.evidence,
                                   severity=problem.severity, explanation=problem.explanation, fix=problem.fix,
                                   snippets=problem.snippets)


@register
class OutputUnitsVsClasses(_HeadRule):
    """
    ## What it does
    Compares the number of output units of a classifier with the number of classes
    in the dataset (`--classes`, or counted from `--data`). Softmax, sigmoid and raw
    logit heads alike: a PyTorch `nn.Linear(…, 1)` trained with `nn.CrossEntropyLoss`
    on 10 classes is flagged. For two classes one unit is right when it is a sigmoid
    probability or a logit under a binary loss.

    ## Why is this bad
    With fewer units some classes cannot be predicted at all (and sparse labels
    beyond the last unit crash or are silently wrong); with more, probability mass
    goes to classes that do not exist.

    ## Fix
    `Dense(num_classes, activation="softmax")`; for two classes either
    `Dense(1, activation="sigmoid")` or `Dense(2, activation="softmax")`. In PyTorch
    `nn.Linear(in_features, num_classes)` with `nn.CrossEntropyLoss`.
    """

    code = "ML301"
    impact = 3
    name = "output-units-vs-classes"
    category = "output-head"
    severity = "error"
    needs = ("classes",)
    INVALID = ["seq(inp(64,), dense(32, act='relu'), dense(10, act='softmax'))  # with classes=13",
               "seq(inp(64,), dense(32, act='relu'), dense(1), loss='CrossEntropyLoss', framework='torch')"
               "  # with classes=13"]
    VALID = ["seq(inp(64,), dense(32, act='relu'), dense(13, act='softmax'))  # with classes=13",
             "seq(inp(64,), dense(32, act='relu'), dense(13), loss='CrossEntropyLoss', framework='torch')"
             "  # with classes=13",
             "seq(inp(64,), dense(32, act='relu'), dense(1), loss='mean_squared_error')  # with classes=13"]
    EXAMPLE_DATASET = {"classes": 13}
    fix = Fix("One output unit per class", "unsafe", "re-initialised", lambda fx: _repair_head(fx))


@register
class SoftmaxOnOneUnit(_HeadRule):
    """
    ## What it does
    Flags a softmax over a single unit.

    ## Why is this bad
    softmax of one number is always 1.0: the model outputs a constant, its
    gradient is zero, and it can never learn.

    ## Fix
    For binary classification use `Dense(1, activation="sigmoid")` with binary
    cross-entropy, or `Dense(2, activation="softmax")`; for a regression output no
    activation at all.
    """

    code = "ML302"
    impact = 3
    name = "softmax-on-one-unit"
    category = "output-head"
    severity = "error"
    INVALID = ["seq(inp(64,), dense(32, act='relu'), dense(1, act='softmax'))"]
    VALID = ["seq(inp(64,), dense(32, act='relu'), dense(1, act='sigmoid'))"]


@register
class MissingOutputActivation(_HeadRule):
    """
    ## What it does
    Flags raw scores (no activation) fed to a loss that expects probabilities:
    Keras' cross-entropies with `from_logits=False` (their default), PyTorch's
    `nn.BCELoss`.

    ## Why is this bad
    The loss treats raw scores as probabilities: Keras clips them into (0, 1) and
    renormalises, so training optimises the wrong objective and gradients vanish
    wherever a score leaves that range (PyTorch's `nn.BCELoss` refuses values
    outside [0, 1] at run time).

    ## Fix
    Keep the raw scores and tell the loss: `from_logits=True` in Keras,
    `nn.BCEWithLogitsLoss` in PyTorch (numerically more stable than adding the
    activation). Adding `activation="softmax"` (or sigmoid) to the head also works.
    """

    code = "ML205"
    impact = 3
    name = "missing-output-activation"
    category = "loss"
    severity = "error"
    INVALID = ["seq(inp(64,), dense(32, act='relu'), dense(10), loss='categorical_crossentropy')",
               "seq(inp(64,), dense(32, act='relu'), dense(1), loss='BCELoss', framework='torch')"]
    VALID = ["seq(inp(64,), dense(32, act='relu'), dense(10, act='softmax'), loss='categorical_crossentropy')",
             "seq(inp(64,), dense(32, act='relu'), dense(10), loss='categorical_crossentropy', from_logits=True)",
             "seq(inp(64,), dense(32, act='relu'), dense(10), loss='CrossEntropyLoss', framework='torch')"]


@register
class LossActivationMismatch(_HeadRule):
    """
    ## What it does
    Flags a loss that does not fit the head, where the fix is to change the loss:
    binary cross-entropy on a multi-unit softmax (one label per sample),
    categorical cross-entropy over one sigmoid unit, `from_logits=True` after a
    softmax/sigmoid in Keras, a regression loss (MSE, MAE) on a classifier. A PyTorch
    model carries no loss: when it ends in `nn.Softmax`, modellint assumes the usual
    `nn.CrossEntropyLoss`, says so in the finding, and reports it as a warning;
    `--loss` states the real loss (by its PyTorch class name, e.g. `--loss
    NLLLoss`).

    ## Why is this bad
    Each pairing optimises something other than intended: `from_logits=True`
    applies softmax twice (flattening all predictions), binary cross-entropy on a
    softmax treats exclusive classes as independent (and Keras then reports a
    misleading "binary" accuracy), categorical cross-entropy over one unit is
    always zero, MSE on probabilities gives weak gradients to confident mistakes.

    ## Fix
    softmax + (sparse_)categorical_crossentropy; sigmoid + binary_crossentropy; raw
    logits + a loss with `from_logits=True` (PyTorch: `nn.CrossEntropyLoss`,
    `nn.BCEWithLogitsLoss`).
    """

    code = "ML303"
    impact = 3
    name = "loss-activation-mismatch"
    category = "loss"
    severity = "error"
    INVALID = ["seq(inp(64,), dense(10, act='softmax'), loss='categorical_crossentropy', from_logits=True)",
               "seq(inp(64,), dense(10, act='softmax'), loss='binary_crossentropy')",
               "seq(inp(64,), dense(1, act='sigmoid'), loss='categorical_crossentropy')",
               "seq(inp(64,), dense(10, act='softmax'), loss='mean_squared_error')  # with classes=10"]
    VALID = ["seq(inp(64,), dense(10, act='softmax'), loss='categorical_crossentropy')",
             "seq(inp(64,), dense(10), loss='sparse_categorical_crossentropy', from_logits=True)",
             "seq(inp(64,), dense(1, act='sigmoid'), loss='binary_crossentropy')",
             "seq(inp(64,), dense(10, act='log_softmax'), loss='CrossEntropyLoss', framework='torch')"]


@register
class PerPositionOutput(_HeadRule):
    """
    ## What it does
    Flags an output that keeps spatial or time axes — `(None, 5, 5, 10)`,
    `(None, 200, 1)` — when the task is one prediction per sample (classification,
    regression): a `Dense` applied to a feature map or a sequence without `Flatten`
    or global pooling, or an LSTM with `return_sequences=True` feeding the head.
    Models that decode back to positions (upsampling, transposed convolutions) or
    output the input's shape (autoencoders) are per-position by design and are not
    flagged; `--task segmentation` / `sequence-labelling` / `seq2seq` says so for
    any other.

    ## Why is this bad
    `Dense` acts on the last axis only: on a `(5, 5, 64)` map it makes 25
    predictions, each from one position's features. The loss then compares each of
    them with the sample's one label (broadcasting silently, or failing on the
    shapes): the model never sees the whole input to decide.

    ## Fix
    `GlobalAveragePooling2D()` or `Flatten()` before the head (PyTorch:
    `nn.AdaptiveAvgPool2d(1)`, `nn.Flatten()`); for sequences
    `GlobalAveragePooling1D()`, or `return_sequences=False` on the last recurrent
    layer (PyTorch: the last step `out[:, -1]` or the final hidden state).
    """

    code = "ML304"
    impact = 3
    name = "per-position-output"
    category = "output-head"
    severity = "warning"
    # Global pooling makes the receptive field matter: a field too small for the input (ML401), hidden
    # while the head read each position on its own, is reported once the positions are pooled.
    fix = Fix("Pool the positions before the head (return_sequences=False for a recurrent layer)", "unsafe",
              "kept", lambda fx: _repair_head(fx), may_reveal=("ML401",))
    INVALID = ["seq(inp(28, 28, 1), conv(32, act='relu'), pool(), dense(10, act='softmax'), "
               "loss='categorical_crossentropy')",
               "seq(inp(200, 16), dense(16, act='relu'), dense(1, act='sigmoid'), loss='binary_crossentropy')"
               "  # with task=binary"]
    VALID = ["seq(inp(28, 28, 1), conv(32, act='relu'), pool(), flatten(), dense(10, act='softmax'), "
             "loss='categorical_crossentropy')",
             "seq(inp(28, 28, 1), conv(32, act='relu'), pool(), dense(10, act='softmax'), "
             "loss='categorical_crossentropy')  # with task=segmentation"]


@register
class HeadActivationMismatch(_HeadRule):
    """
    ## What it does
    Flags an output activation that does not fit the task and the loss, where the
    fix is at the head: a ReLU (or other activation) right before the output
    softmax/sigmoid, a softmax or sigmoid before a loss that applies it itself
    (`nn.CrossEntropyLoss`, `nn.BCEWithLogitsLoss`), raw scores or a softmax into
    `nn.NLLLoss` (which wants `log_softmax`), a ReLU or tanh into a cross-entropy,
    sigmoids under categorical cross-entropy, a softmax or ReLU at a regression
    output, a sigmoid/tanh capping an unbounded regression target.

    ## Why is this bad
    The head decides what the numbers mean. A softmax applied twice flattens every
    prediction towards uniform; a ReLU on logits forbids negative scores and its
    dead units get no gradient; a softmax at a regression output forces the
    outputs to sum to 1; `NLLLoss` on raw scores is unbounded below and diverges.

    ## Fix
    Match the head to the loss: raw logits for `nn.CrossEntropyLoss` /
    `nn.BCEWithLogitsLoss` / `from_logits=True`, softmax for categorical
    cross-entropy, sigmoid for binary or multi-label cross-entropy, `log_softmax`
    for `nn.NLLLoss`, no activation (or softplus for a non-negative target) for
    regression.
    """

    code = "ML305"
    impact = 3
    name = "head-activation-mismatch"
    category = "output-head"
    severity = "error"
    INVALID = ["seq(inp(64,), dense(32, act='relu'), dense(10, act='softmax'), loss='CrossEntropyLoss', "
               "framework='torch')",
               "seq(inp(64,), dense(32, act='relu'), dense(46, act='relu'), softmax(), "
               "loss='categorical_crossentropy')",
               "seq(inp(64,), dense(32, act='relu'), dense(10), loss='NLLLoss', framework='torch')",
               "seq(inp(64,), dense(32, act='relu'), dense(10, act='relu'), loss='categorical_crossentropy')",
               "seq(inp(64,), dense(32, act='relu'), dense(2, act='softmax'), loss='mean_squared_error')",
               "seq(inp(64,), dense(32, act='relu'), dense(1, act='relu'), loss='MSELoss', framework='torch')"]
    VALID = ["seq(inp(64,), dense(32, act='relu'), dense(10), loss='CrossEntropyLoss', framework='torch')",
             "seq(inp(64,), dense(32, act='relu'), dense(10, act='log_softmax'), loss='NLLLoss', framework='torch')",
             "seq(inp(64,), dense(32, act='relu'), dense(1), loss='mean_squared_error')",
             "seq(inp(64,), dense(32, act='relu'), dense(1, act='softplus'), loss='poisson')",
             "seq(inp(64,), dense(32, act='relu'), dense(1, act='sigmoid'), loss='mean_squared_error')"
             "  # with task=regression-bounded"]


@register
class ClassificationMetricOnRegression(Rule):
    """
    ## What it does
    Flags a Keras model compiled with a classification metric (`accuracy`,
    `binary_accuracy`, `auc`, `precision`...) whose output is a regression by its
    loss (`mean_squared_error`, `mae`, `huber`...) and ends in no squashing
    activation (not sigmoid or softmax).

    ## Why is this bad
    Keras resolves `"accuracy"` by the output's shape, not the loss: one unit gives
    `BinaryAccuracy` (is `y_pred > 0.5` equal to `y_true`?), more give
    `CategoricalAccuracy` (do the arg-maxes agree?). On real-valued targets neither
    measures the fit: the number sits near 0 (or moves at random), and anything that
    watches it — `EarlyStopping(monitor="val_accuracy")`, `ModelCheckpoint`, a
    tuner — selects models by noise. A sigmoid or softmax head trained with a
    regression loss may be a classifier, where the metric is meaningful, and so is
    a several-unit raw head with an accuracy metric (read as a classifier: ML303
    says its loss is a regression loss); both are left to the head rules.

    ## Fix
    Measure the regression: `metrics=["mae"]` (or `"mse"`, `"root_mean_squared_error"`,
    `"r2_score"`), and monitor `val_loss` or `val_mae`.
    """

    code = "ML306"
    impact = 1
    name = "classification-metric-on-regression"
    category = "loss"
    severity = "info"  # the model trains as well with it: what misleads is the number reported
    references = ("https://keras.io/api/metrics/regression_metrics/",)
    INVALID = ["seq(inp(13,), dense(64, act='relu'), dense(1), loss='mean_squared_error', metrics=('accuracy',))",
               "seq(inp(13,), dense(64, act='relu'), dense(1), loss='huber', metrics=('mae', 'binary_accuracy'))"]
    VALID = ["seq(inp(13,), dense(64, act='relu'), dense(1), loss='mean_squared_error', metrics=('mae',))",
             # a sigmoid head trained with MSE may be a binary classifier: accuracy means something there
             "seq(inp(13,), dense(64, act='relu'), dense(1, act='sigmoid'), loss='mean_squared_error', "
             "metrics=('accuracy',))",
             "seq(inp(13,), dense(64, act='relu'), dense(10, act='softmax'), loss='categorical_crossentropy', "
             "metrics=('accuracy',))"]

    def check(self, ctx):
        t = ctx.graph.training
        if ctx.graph.framework != "keras" or t is None or not t.metrics:
            return
        wrong = [m for m in t.metrics if str(m).lower() in T.CLASSIFICATION_METRICS]
        if not wrong:
            return
        for head in ctx.task.heads:
            if not head.task.startswith("regression") or head.source not in ("loss", "stated") or \
                    head.act_class in ("sigmoid", "softmax"):
                continue
            resolved = "BinaryAccuracy: is y_pred > 0.5 equal to y_true" if head.units == 1 else \
                "CategoricalAccuracy: do the arg-maxes agree"
            yield self.finding(
                f"{head.layer}: metric {', '.join(map(str, wrong))} on a regression output ({head.reason})",
                layers=[head.layer], evidence={"metrics": list(map(str, wrong)), "task": head.task,
                                               "units": head.units, "loss": head.loss_name},
                explanation=f"Keras resolves 'accuracy' by the output's shape ({resolved}?), which on real-valued "
                            "targets measures nothing; callbacks that monitor it select models by noise.",
                fix="Use a regression metric: metrics=['mae'] (or 'mse', 'root_mean_squared_error'), and monitor "
                    "val_loss or val_mae.",
                snippets={"keras": 'model.compile(optimizer="adam", loss="mse", metrics=["mae"])'})
