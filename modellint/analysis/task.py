"""What the model is trained to do: its task, read from the loss, the head, the output
shape, the metrics and the dataset facts, once, for every rule and report.

Each model output gets a :class:`Head`: the activation it ends in, its units, the
position axes it keeps (an image or sequence axis between batch and features), the
loss that trains it (:mod:`modellint.losses`) and the task. The task comes from, in
order: the user (``--task``, ``[tool.modellint] dataset.task``); the loss; the head
alone; otherwise it is ``"unknown"`` and every rule that needs it stays quiet.
:attr:`Head.source` says which, and :attr:`Head.reason` says it in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .. import losses as L
from ..graph import Graph, Node, split_ref

#: The task vocabulary (``--task``).
TASKS = {
    "binary": "one yes/no label per sample",
    "multiclass": "one of C exclusive classes per sample",
    "multilabel": "any subset of C labels per sample",
    "regression": "one real value (or vector) per sample, any sign, unbounded",
    "regression-bounded": "one real value per sample within a known interval (e.g. [0, 1])",
    "regression-nonnegative": "one non-negative value per sample (counts, durations)",
    "segmentation": "a label per pixel",
    "sequence-labelling": "a label per time step",
    "seq2seq": "an output sequence per input sequence",
    "reconstruction": "the input itself (autoencoders)",
    "embedding": "a feature vector per sample (metric learning)",
}
UNKNOWN = "unknown"

CLASSIFICATION = frozenset({"binary", "multiclass", "multilabel"})
REGRESSION = frozenset({"regression", "regression-bounded", "regression-nonnegative"})
#: Tasks that predict something at every position of the input (an output that keeps
#: spatial or time axes is right for them).
PER_POSITION = frozenset({"segmentation", "sequence-labelling", "seq2seq", "reconstruction"})
#: One prediction per sample: an output that keeps position axes is wrong for them.
PER_SAMPLE = CLASSIFICATION | REGRESSION | {"embedding"}

# Ops a head may end in after its activation without changing what the values are.
_SHAPE_ONLY = ("reshape", "flatten", "identity", "dropout", "permute")
# Ops that bring a model back to finer positions: a decoder, so per-position output is meant.
_DECODER_OPS = ("upsample", "conv_transpose", "resize")
# Activation functions by the range of what they output (for the head × loss matrix).
OUTPUT_RANGE = {
    "softmax": "probabilities", "sigmoid": "unit interval", "hard_sigmoid": "unit interval",
    "log_softmax": "log-probabilities", "tanh": "(-1, 1)", "softsign": "(-1, 1)",
    "relu": ">= 0", "relu6": "[0, 6]", "softplus": "> 0", "exponential": "> 0", "elu": "> -1",
    "selu": "> -1.76", "gelu": "> -0.17", "silu": "> -0.28", "swish": "> -0.28", "mish": "> -0.31",
    "linear": "any real", "leaky_relu": "any real", "prelu": "any real",
}


def activation_class(function: Optional[str]) -> str:
    """The head activation as the matrix reads it: softmax, log_softmax, sigmoid, linear,
    nonnegative (ReLU family that cannot go below about 0), bounded (tanh), other."""
    if function in (None, "linear", "identity", "leaky_relu", "prelu"):
        return "linear"
    if function in ("softmax", "log_softmax"):
        return function
    if function in ("sigmoid", "hard_sigmoid"):
        return "sigmoid"
    if function in ("tanh", "softsign"):
        return "bounded"
    if function in ("relu", "relu6", "softplus", "exponential", "elu", "selu", "gelu", "silu", "swish",
                    "mish", "hard_silu", "hard_swish", "celu", "thresholded_relu"):
        return "nonnegative"
    return "other"


@dataclass
class Head:
    output: str                    # the output node
    layer: str                     # the learnable layer that computes it
    activation: Optional[str]      # the last activation function (None: raw values)
    units: Optional[int]           # the size of the last axis
    shape: Optional[tuple]         # the canonical output shape
    positions: tuple               # sizes of the axes between batch and features (() per sample)
    decoder: bool                  # the model upsamples / decodes back to finer positions
    same_as_input: bool            # the output has an input's shape (autoencoders)
    loss: Optional[L.Loss]
    loss_name: Optional[str]       # as the file or the user wrote it (custom losses included)
    from_logits: Optional[bool]
    expects: Optional[str]         # what the loss expects of the output (losses.PROBABILITIES...)
    task: str
    source: str                    # "stated", "loss", "head", "assumed" (a PyTorch default) or "unknown"
    reason: str
    loss_assumed: bool = False

    @property
    def act_class(self) -> str:
        return activation_class(self.activation)

    @property
    def keeps_positions(self) -> bool:
        return any(p != 1 for p in self.positions)

    def to_dict(self) -> dict:
        return {"output": self.output, "layer": self.layer, "activation": self.activation, "units": self.units,
                "positions": list(self.positions), "loss": self.loss.name if self.loss else self.loss_name,
                "loss_assumed": self.loss_assumed, "expects": self.expects, "task": self.task,
                "source": self.source, "reason": self.reason}


@dataclass
class TaskAnalysis:
    heads: list = field(default_factory=list)

    @property
    def task(self) -> str:
        """The task of the (first) output."""
        return self.heads[0].task if self.heads else UNKNOWN

    @property
    def source(self) -> str:
        return self.heads[0].source if self.heads else UNKNOWN

    def text(self) -> str:
        """``multiclass (from the loss sparse_categorical_crossentropy)`` style, one line."""
        if not self.heads:
            return UNKNOWN
        parts = []
        for h in self.heads:
            label = h.task if h.source != "assumed" else f"{h.task} (assumed)"
            parts.append(f"{label}, {h.reason}" if h.reason else label)
        if len(parts) == 1:
            return parts[0]
        return "; ".join(f"{h.output}: {p}" for h, p in zip(self.heads, parts))

    def to_dict(self) -> dict:
        return {"task": self.task, "source": self.source, "heads": [h.to_dict() for h in self.heads]}


# ---------------------------------------------------------------------------

def _producer(graph: Graph, node: Node) -> Optional[Node]:
    return graph.nodes.get(split_ref(node.inputs[0])[0]) if node.inputs else None


def head_activation(graph: Graph, out: Node) -> Optional[str]:
    """The activation an output ends in, back through shape-only ops (None: none)."""
    node = out
    while node is not None:
        if node.op == "activation":
            return node.attrs.get("function")
        if node.op in _SHAPE_ONLY:
            node = _producer(graph, node)
            continue
        return None
    return None


def head_layer(graph: Graph, out: Node) -> Node:
    """The layer that computes an output (Keras' fused activation and a PyTorch
    ``Linear`` + ``Softmax`` alike): back through activations and shape-only ops."""
    from .. import ops

    node = out
    while node is not None and ops.spec(node.op).kind != ops.LEARNABLE and \
            node.op in ("activation",) + _SHAPE_ONLY and node.inputs:
        node = _producer(graph, node)
    node = node or out
    if node.fused_into and node.fused_into in graph.nodes:
        node = graph[node.fused_into]
    return node if ops.spec(node.op).kind == ops.LEARNABLE else (
        graph[out.fused_into] if out.fused_into in graph.nodes else out)


def _has_decoder(graph: Graph) -> bool:
    return any(n.op in _DECODER_OPS for n in graph)


def _stated_training(graph: Graph, index: int, n_outputs: int):
    """(loss name, from_logits) for output ``index``: a per-output loss list when the file
    has one, else the one loss."""
    t = graph.training
    if t is None or not t.loss:
        return None, None
    per = (t.loss_config or {}).get("per_output")
    if isinstance(per, list) and len(per) == n_outputs and index < len(per):
        name = per[index]
        return name, (t.from_logits if name == t.loss else (False if "crossentropy" in str(name) else None))
    return t.loss, t.from_logits


def analyse(graph: Graph, dataset=None) -> TaskAnalysis:
    """The task of every output of ``graph`` (``dataset``: :class:`DatasetFacts`, optional)."""
    stated = getattr(dataset, "task", None) if dataset is not None else None
    classes = getattr(dataset, "classes", None) if dataset is not None else None
    metrics = [str(m).lower() for m in (graph.training.metrics if graph.training else [])]
    input_shapes = {tuple(s) for s in graph.input_shapes() if s}
    decoder = _has_decoder(graph)
    outs = [graph[split_ref(r)[0]] for r in graph.outputs if split_ref(r)[0] in graph.nodes]
    from ..adapters import pytorch_convention

    result = TaskAnalysis()
    for i, out in enumerate(outs):
        shape = out.output_shape
        fn = head_activation(graph, out)
        units = shape[-1] if shape and len(shape) >= 2 else (1 if shape and len(shape) == 1 else None)
        positions = tuple(shape[1:-1]) if shape and len(shape) >= 3 else ()
        loss_name, from_logits = _stated_training(graph, i, len(outs))
        loss = L.lookup(loss_name)
        head = Head(output=out.name, layer=head_layer(graph, out).name, activation=fn, units=units,
                    shape=tuple(shape) if shape else None, positions=positions, decoder=decoder,
                    same_as_input=bool(shape) and tuple(shape) in input_shapes,
                    loss=loss, loss_name=loss_name, from_logits=from_logits,
                    expects=loss.expects_given(from_logits) if loss else None,
                    task=UNKNOWN, source=UNKNOWN, reason="",
                    loss_assumed=bool(graph.training and graph.training.assumed))
        head.task, head.source, head.reason = _infer(head, stated, classes, metrics)
        if head.loss is None and not head.loss_name and head.task in PYTORCH_CE_TASKS and pytorch_convention(graph):
            # the task is known (stated, or the head/classes say it) but not the loss: PyTorch's
            # convention for it, as a softmax head gets at load time (adapters.assume_loss)
            head.loss = L.lookup("CrossEntropyLoss")
            head.loss_name, head.from_logits, head.loss_assumed = "CrossEntropyLoss", None, True
            head.expects = head.loss.expects_given(None)
            head.reason += "; loss assumed: nn.CrossEntropyLoss (pass --loss to state yours)"
        result.heads.append(head)
    return result


#: Keras metric names that score class decisions (Keras resolves "accuracy" by the output's shape:
#: BinaryAccuracy for one unit, else (Sparse)CategoricalAccuracy): a hint of a classifier, and no
#: measure of a regression (ML306).
CLASSIFICATION_METRICS = ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy", "binary_accuracy",
                          "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "auc", "precision",
                          "recall")

#: Tasks whose loss a PyTorch model without one is assumed to train with nn.CrossEntropyLoss.
PYTORCH_CE_TASKS = ("multiclass", "segmentation", "sequence-labelling")


def _positional(head: Head, per_sample: str) -> str:
    """The per-position form of a classification task when the model decodes back to
    positions; otherwise the per-sample task (a per-position output is then a fault)."""
    if head.keeps_positions and (head.decoder or head.same_as_input):
        return "segmentation" if len(head.positions) >= 2 else "sequence-labelling"
    return per_sample


def _infer(head: Head, stated: Optional[str], classes: Optional[int], metrics: list) -> tuple:
    if stated:
        return stated, "stated", "stated with --task"
    fn, units, loss = head.act_class, head.units, head.loss
    said = f"the loss {loss.spelled(head.from_logits)}" if loss else ""
    if head.loss_assumed and loss:
        said = f"the assumed loss {loss.spelled(head.from_logits)}"
    classy = any(m in CLASSIFICATION_METRICS for m in metrics) or (classes is not None and units is not None and units > 1 and units == classes)
    if loss is not None:
        source = "assumed" if head.loss_assumed else "loss"
        if loss.trains == L.MULTICLASS:
            return _positional(head, "multiclass"), source, f"from {said}"
        if loss.trains == L.DISTRIBUTION:
            return "multiclass", source, f"from {said}"
        if loss.trains == L.BINARY:
            if head.same_as_input and head.keeps_positions and not classes:
                return "reconstruction", source, f"from {said} and an output shaped as the input"
            if units == 1 or units is None:
                return _positional(head, "binary"), source, f"from {said} on one output unit"
            if fn == "softmax":  # exclusive classes under a per-unit loss: the head says multiclass
                return _positional(head, "multiclass"), "head", f"from the {units}-unit softmax"
            return _positional(head, "multilabel"), source, f"from {said} on {units} units"
        if loss.trains == L.REGRESSION:
            if head.same_as_input and head.keeps_positions:
                return "reconstruction", source, f"from {said} and an output shaped as the input"
            if fn == "softmax" and classy or (classy and fn == "linear" and units and units > 1):
                return "multiclass", "head", (f"from {units} output units for {classes} classes"
                                              if classes == units else "from the accuracy metric")
            if loss.nonnegative:
                return "regression-nonnegative", source, f"from {said}"
            return "regression", source, f"from {said}"
        if loss.trains == L.EMBEDDING:
            return "embedding", source, f"from {said}"
        if loss.trains == L.SEQUENCE:
            return "seq2seq", source, f"from {said}"
    # no (known) loss: what the head alone says
    if fn == "softmax" and units and units > 1:
        return _positional(head, "multiclass"), "head", f"from the {units}-unit softmax output"
    if fn == "sigmoid" and units == 1:
        return _positional(head, "binary"), "head", "from the one-unit sigmoid output"
    if fn == "sigmoid" and units and units > 1 and not head.keeps_positions:
        return "multilabel", "head", f"from the {units}-unit sigmoid output"
    if classy and units and units > 1:
        return _positional(head, "multiclass"), "head", f"from {units} output units for {classes} classes"
    return UNKNOWN, UNKNOWN, ("the file has no loss and the head does not say; state it with --task"
                              if not head.loss_name else f"the loss {head.loss_name} is not one modellint knows")
