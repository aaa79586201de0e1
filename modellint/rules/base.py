"""What a rule is, and what it reports.

A rule is a small class: a code (``ML`` + three digits, grouped by concern), a
category from :data:`CATEGORIES`, a default severity, its documentation (the
class docstring: what it checks / why it matters / the fix), ``VALID`` and
``INVALID`` example graphs that the test suite runs, and one method,
:meth:`Rule.check`, that yields :class:`Finding` objects. Rules read the graph,
the analyses and optional dataset facts; they never read files or import a
framework. Modelled on Meta's Fixit and ruff's rule pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Iterable, Optional

SEVERITIES = ("info", "warning", "error")  # error: certainly wrong; warning: likely hurts; info: advice
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}

CATEGORIES = ("activation", "loss", "optimizer", "learning-rate", "normalization", "architecture",
              "capacity", "receptive-field", "regularization", "initialization", "input-shape",
              "output-head", "efficiency", "data", "training", "weights")


@dataclass
class Finding:
    code: str
    category: str
    severity: str
    message: str  # one line, names the layer
    layers: list = field(default_factory=list)  # layer names the finding is about ([] = the model)
    evidence: dict = field(default_factory=dict)  # the numbers that prove it
    explanation: str = ""  # why it matters, one or two sentences
    fix: str = ""  # prose
    snippets: dict = field(default_factory=dict)  # {"keras": "...", "torch": "..."}
    references: list = field(default_factory=list)
    path: Optional[str] = None  # the model file

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("code", "category", "severity", "message", "layers", "evidence",
                                             "explanation", "fix", "snippets", "references", "path")}


#: What a fix does to the model's behaviour (ruff's applicability): ``safe`` keeps what the model
#: computes (folding a bias into BatchNorm); ``unsafe`` changes the model or how it trains;
#: ``display-only`` is shown, never applied.
APPLICABILITY = ("safe", "unsafe", "display-only")
#: What happens to the weights of the layers a fix touches.
WEIGHTS = ("kept", "refolded", "re-initialised")


@dataclass(frozen=True)
class Fix:
    """The remedy a rule declares beside its check, as a graph rewrite (ruff's fixes,
    Fixit's ``Invalid(code, expected_replacement)``).

    ``edit(fx)`` receives a :class:`modellint.rules.fixing.FixContext` (the graph editor,
    the finding, a rule context on the current graph) and returns one line per change it
    made (empty: nothing to do). ``may_reveal``: rules whose finding the fix can uncover
    because the layer it moves hid it (the Fixit test allows exactly those). ``applies``: which of
    the rule's findings the fix can act on (None: all), e.g. only a confirmed learning-rate reading."""

    title: str
    applicability: str
    weights: str
    edit: Callable
    may_reveal: tuple = ()
    applies: Optional[Callable] = None

    def applies_to(self, finding) -> bool:
        return self.applies is None or bool(self.applies(finding))

    def __post_init__(self):
        assert self.applicability in APPLICABILITY, self.applicability
        assert self.weights in WEIGHTS, self.weights

    def describe(self) -> str:
        return f"{self.title} ({self.applicability}; weights {self.weights})"


class Rule:
    """Base class; subclasses set the class attributes and implement :meth:`check`."""

    code: ClassVar[str] = ""
    name: ClassVar[str] = ""  # kebab-case, e.g. "batchnorm-on-raw-input"
    category: ClassVar[str] = ""
    severity: ClassVar[str] = "warning"
    impact: ClassVar[int] = 2  # expected effect on results when fixed: 3 high, 2 medium, 1 low (for ranking)
    needs: ClassVar[tuple] = ()  # dataset facts the rule needs: "samples", "classes", "image_size";
    # "probes" (probe results), "weights" (the model's trained weights, ctx.weights)
    # facts of the model the rule reads that some sources cannot show at all (a pasted
    # model.summary() has no activations, loss or initialisers): "activations", "training",
    # "initializers". None: the default of the rule's category (MODEL_FACTS).
    needs_model: ClassVar[Optional[tuple]] = None
    references: ClassVar[tuple] = ()
    VALID: ClassVar[list] = []  # example graphs (builder source, see modellint.build) that must not fire
    INVALID: ClassVar[list] = []  # example graphs that must fire
    EXAMPLE_DATASET: ClassVar[dict] = {}  # dataset facts the examples assume (for rules that need them)
    fix: ClassVar[Optional[Fix]] = None  # the mechanical remedy, when there is one (``modellint fix``)

    def check(self, ctx) -> Iterable[Finding]:  # pragma: no cover - abstract
        raise NotImplementedError

    def finding(self, message: str, *, layers=(), evidence=None, explanation="", fix="", snippets=None,
                severity: Optional[str] = None) -> Finding:
        return Finding(code=self.code, category=self.category, severity=severity or self.severity,
                       message=message, layers=list(layers), evidence=dict(evidence or {}),
                       explanation=explanation, fix=fix, snippets=dict(snippets or {}),
                       references=list(self.references))

    @classmethod
    def model_facts(cls) -> tuple:
        """What the rule reads of the model that a source may lack (see :data:`MODEL_FACTS`)."""
        return cls.needs_model if cls.needs_model is not None else MODEL_FACTS.get(cls.category, ())

    @classmethod
    def tables(cls) -> list:
        """``[(title, markdown)]``: reference tables the rule decides by, shown on its page."""
        return []

    @classmethod
    def doc(cls) -> str:
        import inspect

        return inspect.cleandoc(cls.__doc__ or "")


#: What the rules of a category read of the model beyond its layers and shapes. A graph lists
#: the facts its source cannot show in ``Graph.unknown_facts``; the engine skips a rule that
#: needs one, saying why, instead of letting it read an absence as "linear" or "no loss".
MODEL_FACTS = {
    "activation": ("activations",),
    "loss": ("activations", "training"),
    "output-head": ("activations",),
    "optimizer": ("training",),
    "learning-rate": ("training",),
    "initialization": ("initializers",),
}

REGISTRY: dict = {}


def register(cls: type) -> type:
    """Class decorator: add a rule to the registry (codes are unique)."""
    assert cls.code and cls.code not in REGISTRY, cls.code
    assert cls.category in CATEGORIES, (cls.code, cls.category)
    assert cls.severity in SEVERITIES, (cls.code, cls.severity)
    REGISTRY[cls.code] = cls
    return cls

