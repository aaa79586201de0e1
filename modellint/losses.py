"""Training losses by the names people write them, Keras and PyTorch alike.

One row per loss: what it expects the model to output and which kind of task it
trains. Every head/loss rule and the task analysis read this table; nothing else
in modellint spells a loss name.

What a loss expects of the model's output (``expects``):

``probabilities``
    values in (0, 1) (a softmax over classes, or a sigmoid per unit). Keras'
    cross-entropies by default (``from_logits=False``); ``nn.BCELoss``.
``logits``
    raw scores of any sign; the loss applies softmax/sigmoid itself.
    ``nn.CrossEntropyLoss``, ``nn.BCEWithLogitsLoss``, Keras with ``from_logits=True``.
``log-probabilities``
    the log of a softmax (``nn.LogSoftmax``): ``nn.NLLLoss``, ``nn.KLDivLoss``, ``nn.CTCLoss``.
``values``
    real numbers compared with targets (regression, margins, embeddings).

A Keras cross-entropy's ``expects`` depends on ``from_logits``; a PyTorch loss's is
fixed by its class (that is the PyTorch idiom: the loss decides, not a flag).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Optional

from .errors import ConfigError

PROBABILITIES = "probabilities"
LOGITS = "logits"
LOG_PROBABILITIES = "log-probabilities"
VALUES = "values"

# What a loss trains (the task families of modellint.analysis.task).
MULTICLASS = "multiclass"      # one of C exclusive classes (per sample, or per position)
BINARY = "binary"              # independent yes/no per unit: binary (1 unit) or multi-label (C units)
REGRESSION = "regression"
DISTRIBUTION = "distribution"  # a target distribution over classes (KL divergence)
EMBEDDING = "embedding"
SEQUENCE = "sequence"          # alignment-free sequence labelling (CTC)


@dataclass(frozen=True)
class Loss:
    name: str          # as the framework spells it: "categorical_crossentropy", "CrossEntropyLoss"
    framework: str     # "keras" or "torch"
    expects: str       # PROBABILITIES / LOGITS / LOG_PROBABILITIES / VALUES (Keras: with from_logits=False)
    trains: str        # MULTICLASS / BINARY / REGRESSION / ...
    targets: str       # what the labels look like, in words
    nonnegative: bool = False  # regression of non-negative targets (counts, rates)
    logits_flag: bool = False  # Keras: takes from_logits=True to expect logits instead

    def expects_given(self, from_logits: Optional[bool]) -> str:
        """What the model's output must be, given the loss's ``from_logits`` setting."""
        if self.logits_flag and from_logits:
            return LOGITS
        return self.expects

    def spelled(self, from_logits: Optional[bool] = None) -> str:
        """The loss as its user writes it, for messages."""
        if self.framework == "torch":
            return f"nn.{self.name}"
        return f"{self.name}(from_logits=True)" if self.logits_flag and from_logits else self.name


def _keras(name, expects, trains, targets, **kw) -> Loss:
    return Loss(name, "keras", expects, trains, targets, **kw)


def _torch(name, expects, trains, targets, **kw) -> Loss:
    return Loss(name, "torch", expects, trains, targets, **kw)


_P, _V = PROBABILITIES, VALUES
LOSSES = (
    # Keras (keras.losses; the snake-case names compile() accepts and files store)
    _keras("categorical_crossentropy", _P, MULTICLASS, "one-hot class vectors", logits_flag=True),
    _keras("sparse_categorical_crossentropy", _P, MULTICLASS, "class indices", logits_flag=True),
    _keras("categorical_focal_crossentropy", _P, MULTICLASS, "one-hot class vectors", logits_flag=True),
    _keras("binary_crossentropy", _P, BINARY, "0/1 per output unit", logits_flag=True),
    _keras("binary_focal_crossentropy", _P, BINARY, "0/1 per output unit", logits_flag=True),
    _keras("kl_divergence", _P, DISTRIBUTION, "a probability distribution per sample"),
    _keras("categorical_hinge", _V, MULTICLASS, "one-hot class vectors"),
    _keras("hinge", _V, BINARY, "-1/+1 (or 0/1) per output unit"),
    _keras("squared_hinge", _V, BINARY, "-1/+1 (or 0/1) per output unit"),
    _keras("dice", _P, BINARY, "0/1 masks"),
    _keras("tversky", _P, BINARY, "0/1 masks"),
    _keras("mean_squared_error", _V, REGRESSION, "real values"),
    _keras("mean_absolute_error", _V, REGRESSION, "real values"),
    _keras("mean_absolute_percentage_error", _V, REGRESSION, "non-zero real values"),
    _keras("mean_squared_logarithmic_error", _V, REGRESSION, "non-negative values", nonnegative=True),
    _keras("huber", _V, REGRESSION, "real values"),
    _keras("log_cosh", _V, REGRESSION, "real values"),
    _keras("poisson", _V, REGRESSION, "counts (non-negative)", nonnegative=True),
    _keras("cosine_similarity", _V, EMBEDDING, "target vectors"),
    _keras("ctc", LOGITS, SEQUENCE, "label sequences"),
    # PyTorch (torch.nn loss classes)
    _torch("CrossEntropyLoss", LOGITS, MULTICLASS, "class indices (or class probabilities)"),
    _torch("NLLLoss", LOG_PROBABILITIES, MULTICLASS, "class indices"),
    _torch("BCELoss", _P, BINARY, "0/1 per output unit"),
    _torch("BCEWithLogitsLoss", LOGITS, BINARY, "0/1 per output unit"),
    _torch("MultiLabelSoftMarginLoss", LOGITS, BINARY, "0/1 per output unit"),
    _torch("SoftMarginLoss", _V, BINARY, "-1/+1 per output unit"),
    _torch("MultiMarginLoss", _V, MULTICLASS, "class indices"),
    _torch("MultiLabelMarginLoss", _V, BINARY, "class indices padded with -1"),
    _torch("KLDivLoss", LOG_PROBABILITIES, DISTRIBUTION, "a probability distribution per sample"),
    _torch("CTCLoss", LOG_PROBABILITIES, SEQUENCE, "label sequences"),
    _torch("MSELoss", _V, REGRESSION, "real values"),
    _torch("L1Loss", _V, REGRESSION, "real values"),
    _torch("SmoothL1Loss", _V, REGRESSION, "real values"),
    _torch("HuberLoss", _V, REGRESSION, "real values"),
    _torch("GaussianNLLLoss", _V, REGRESSION, "real values (with a predicted variance)"),
    # log_input=True (the default): the model outputs log-rates, any sign; targets are counts
    _torch("PoissonNLLLoss", _V, REGRESSION, "counts (non-negative)", nonnegative=True),
    _torch("CosineEmbeddingLoss", _V, EMBEDDING, "pairs labelled +1/-1"),
    _torch("TripletMarginLoss", _V, EMBEDDING, "anchor/positive/negative triplets"),
    _torch("TripletMarginWithDistanceLoss", _V, EMBEDDING, "anchor/positive/negative triplets"),
    _torch("MarginRankingLoss", _V, EMBEDDING, "pairs ranked +1/-1"),
    _torch("HingeEmbeddingLoss", _V, EMBEDDING, "distances labelled +1/-1"),
)

# Other spellings of the same losses (Keras' own aliases; file-format variants).
ALIASES = {
    "mse": "mean_squared_error", "mae": "mean_absolute_error", "mape": "mean_absolute_percentage_error",
    "msle": "mean_squared_logarithmic_error", "kld": "kl_divergence", "kullback_leibler_divergence":
    "kl_divergence", "logcosh": "log_cosh", "bce": "binary_crossentropy",
    # torch.nn.functional spellings of the same PyTorch losses (identical meaning)
    "nll_loss": "NLLLoss", "binary_cross_entropy_with_logits": "BCEWithLogitsLoss", "mse_loss": "MSELoss",
    "l1_loss": "L1Loss", "smooth_l1_loss": "SmoothL1Loss",
}

# Names that mean different things in the two frameworks (F.cross_entropy takes logits,
# Keras' categorical_crossentropy probabilities): refused, naming the candidates.
_MEANT = {
    "cross_entropy": ("CrossEntropyLoss", "categorical_crossentropy", "sparse_categorical_crossentropy"),
    "kl_div": ("KLDivLoss", "kl_divergence"),
}


def _key(name: str) -> str:
    """Lookup key: case, underscores and a module prefix do not matter
    (``nn.CrossEntropyLoss``, ``crossentropyloss``; ``MeanSquaredError``, ``mean_squared_error``)."""
    name = re.sub(r"^(torch\.nn\.|nn\.|keras\.losses\.|tf\.keras\.losses\.|losses\.)", "", name.strip())
    return name.replace("_", "").lower()


_BY_KEY = {_key(loss.name): loss for loss in LOSSES}
assert len(_BY_KEY) == len(LOSSES), "two losses share a lookup key"
_BY_KEY.update({_key(alias): _BY_KEY[_key(target)] for alias, target in ALIASES.items()
                if _key(alias) not in _BY_KEY})
_MEANT_BY_KEY = {_key(k): v for k, v in _MEANT.items()}


def lookup(name: Optional[str]) -> Optional[Loss]:
    """The loss a name means, or None when modellint does not know it (a custom loss)."""
    if not name or not isinstance(name, str):
        return None
    key = _key(name)
    if key in _MEANT_BY_KEY:
        return None
    return _BY_KEY.get(key)


def parse(name: str, from_logits: Optional[bool] = None, *, option: str = "--loss") -> Loss:
    """The loss a user states (``--loss``, ``analyze(loss=...)``); an unknown name or a
    ``from_logits`` that contradicts a PyTorch loss is a :class:`ConfigError`."""
    loss = lookup(name)
    if loss is None:
        meant = _MEANT_BY_KEY.get(_key(name or "")) or tuple(
            _BY_KEY[k].name for k in difflib.get_close_matches(_key(name or ""), list(_BY_KEY), n=3, cutoff=0.7))
        hint = f"; did you mean {' or '.join(dict.fromkeys(meant))}?" if meant else ""
        raise ConfigError(f"{option} {name!r} is not a loss modellint knows{hint} "
                          f"(Keras names such as categorical_crossentropy, or PyTorch classes such as "
                          f"CrossEntropyLoss; `modellint rules ML303` lists them)")
    if loss.framework == "torch" and from_logits is not None and (from_logits != (loss.expects == LOGITS)):
        raise ConfigError(f"{option} {loss.name}: nn.{loss.name} expects {loss.expects}; "
                          f"--{'' if from_logits else 'no-'}from-logits contradicts it (leave the flag out: "
                          "a PyTorch loss class fixes what it expects)")
    return loss


def table_markdown() -> str:
    """The loss table as Markdown, for the rule pages."""
    rows = ["| loss | framework | expects the model to output | trains | targets |", "|---|---|---|---|---|"]
    for loss in LOSSES:
        expects = loss.expects + (" (logits with from_logits=True)" if loss.logits_flag else "")
        rows.append(f"| `{loss.name}` | {loss.framework} | {expects} | {loss.trains} | {loss.targets} |")
    return "\n".join(rows)


def stated_training(name: str, from_logits: Optional[bool] = None, old=None, *, option: str = "--loss"):
    """The :class:`~modellint.graph.TrainingConfig` for a loss the user states, keeping
    what ``old`` (the file's own) says about the optimizer and metrics."""
    from .graph import TrainingConfig

    loss = parse(name, from_logits, option=option)
    flag = (bool(from_logits) if loss.logits_flag else None) if loss.framework == "keras" else None
    return TrainingConfig(loss=loss.name, from_logits=flag,
                          optimizer=old.optimizer if old else None, learning_rate=old.learning_rate if old else None,
                          metrics=list(old.metrics) if old else [],
                          optimizer_config=dict(old.optimizer_config) if old else {})
