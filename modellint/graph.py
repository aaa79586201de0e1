"""The layer graph: one framework-free picture of a model.

Every adapter (Keras files, live Keras models, later PyTorch and ONNX) returns a
:class:`Graph`. Analyses, rules and reports read only this module's types.

Conventions
-----------
* ``Node.name`` is the framework's own layer name, the one users see.
* ``Node.op`` is a canonical op from :mod:`modellint.ops`.
* Shapes are stored in one canonical layout: batch first, channels last
  (``(None, H, W, C)``). ``Graph.layout`` remembers the source layout
  (``"channels_last"`` or ``"channels_first"``) so reports can print the user's
  own; :meth:`Graph.display_shape` does the conversion.
* A tensor whose features are already last in a ``channels_first`` source (a
  PyTorch sequence ``(N, T, F)`` out of ``nn.Linear``, ``nn.LSTM``, attention, or
  a ConvNeXt block's NHWC tensor) is stored as the source has it, as a
  :class:`FeaturesLast` tuple, and its node says ``attrs["layout"] ==
  "features_last"``; :meth:`Graph.display_shape` leaves it as it is.
* A fused activation (``Conv2D(activation="relu")``) becomes its own
  ``activation`` node named ``"<layer>.activation"`` whose ``fused_into`` is the
  layer. A layer without one carries ``attrs["activation"] == "linear"``.
* A graph read from a pasted summary table (``adapters/summary_text.py``) says how each
  attribute was obtained in ``node.attrs["provenance"]``: ``{attr: {"how": "read" |
  "inferred" | "assumed" | "unknown", "why": "..."}}``; an ``unknown`` attribute is absent
  from ``attrs`` and analyses that need it give no number (:meth:`Node.unknown_attrs`).
* A layer called several times (shared weights) gives one node per call; the
  first call holds the parameters, later calls name it in ``shares_params_with``
  and hold zero, so sums over nodes count every weight once.
* Weights the model holds that no node reads (a PyTorch auxiliary head that
  runs only in training mode) are listed on :attr:`Graph.ledger`, a node-less
  account of :class:`LedgerEntry`; the graph's totals include them, so they
  always equal what the framework holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

Shape = tuple  # a tuple of ints, None for unknown dims (batch is always None)


class FeaturesLast(tuple):
    """A canonical shape that is also the source's own: its features were already
    last in a ``channels_first`` model (``(N, T, F)`` sequences, NHWC tensors), so it
    was stored unchanged. Compares and hashes as the plain tuple."""

    __slots__ = ()


class DuplicateNodeError(ValueError):
    """Two nodes with one name (a file naming two layers alike)."""


@dataclass
class TrainingConfig:
    """What the model was compiled with, when the source records it."""

    loss: Optional[str] = None
    from_logits: Optional[bool] = None
    optimizer: Optional[str] = None
    learning_rate: Optional[float] = None
    metrics: list = field(default_factory=list)
    optimizer_config: dict = field(default_factory=dict)
    loss_config: dict = field(default_factory=dict)
    assumed: bool = False  # not read from the source: a stated default (e.g. PyTorch's usual loss)

    def to_dict(self) -> dict:
        return {
            "assumed": self.assumed,
            "loss": self.loss,
            "from_logits": self.from_logits,
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "metrics": list(self.metrics),
            "optimizer_config": self.optimizer_config,
        }


@dataclass
class Node:
    name: str
    op: str
    source_type: str = ""
    attrs: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)  # producer refs: "name" or "name:k"
    output_shapes: list = field(default_factory=list)  # canonical layout, one per output
    params: int = 0
    trainable_params: int = 0
    fused_into: Optional[str] = None  # an activation node made from a layer's argument
    shares_params_with: Optional[str] = None  # a later call of a shared layer
    scope: str = ""  # enclosing nested model(s), "backbone/" style
    notes: list = field(default_factory=list)

    @property
    def non_trainable_params(self) -> int:
        return self.params - self.trainable_params

    def unknown_attrs(self) -> set:
        """Attributes the source could not tell (``attrs["provenance"]``, pasted summaries)."""
        prov = self.attrs.get("provenance") or {}
        return {a for a, p in prov.items() if isinstance(p, dict) and p.get("how") == "unknown"}

    @property
    def output_shape(self) -> Optional[Shape]:
        return self.output_shapes[0] if self.output_shapes else None

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "op": self.op,
            "source_type": self.source_type,
            "attrs": _jsonable(self.attrs),
            "inputs": list(self.inputs),
            "output_shapes": [list(s) if s is not None else None for s in self.output_shapes],
            "params": self.params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
        }
        for key in ("fused_into", "shares_params_with", "scope"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        if self.notes:
            d["notes"] = list(self.notes)
        return d


@dataclass
class LedgerEntry:
    """Weights the model holds that no node of the graph reads: ``name`` is a
    module or parameter path (``AuxLogits``), ``why`` says why no node has them."""

    name: str
    params: int = 0
    trainable_params: int = 0
    why: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "params": self.params, "trainable_params": self.trainable_params,
                "non_trainable_params": self.params - self.trainable_params, "why": self.why}


def split_ref(ref: str) -> tuple[str, int]:
    """``"name:2"`` -> ``("name", 2)``; ``"name"`` -> ``("name", 0)``."""
    name, sep, idx = ref.rpartition(":")
    if sep and idx.isdigit():
        return name, int(idx)
    return ref, 0


@dataclass
class Graph:
    name: str = "model"
    framework: str = ""  # "keras", "torch", "onnx"
    source_format: str = ""  # "h5", "keras", "json", "live", ...
    source_path: Optional[str] = None
    model_class: str = ""  # "Sequential", "Functional", ...
    layout: str = "channels_last"
    nodes: dict = field(default_factory=dict)  # name -> Node, in topological order
    inputs: list = field(default_factory=list)  # node names of op "input"
    outputs: list = field(default_factory=list)  # refs of model outputs
    training: Optional[TrainingConfig] = None
    # nested models inlined under a name scope: scope name -> {"class", "outputs"}
    submodels: dict = field(default_factory=dict)
    framework_version: Optional[str] = None
    notes: list = field(default_factory=list)
    ledger: list = field(default_factory=list)  # LedgerEntry: weights held that no node reads
    # facts the source cannot show at all, {fact: why} ("activations" of a pasted model.summary());
    # rules that read them are skipped with that reason (Rule.needs_model)
    unknown_facts: dict = field(default_factory=dict)
    # dataset facts stated in words beside a pasted summary ({"samples": 8000, "said": [...]})
    text_facts: dict = field(default_factory=dict)
    table_totals: dict = field(default_factory=dict)  # a pasted summary's own Total/Trainable lines

    # -- building ---------------------------------------------------------
    def add(self, node: Node) -> Node:
        if node.name in self.nodes:
            raise DuplicateNodeError(f"duplicate node name {node.name!r}")
        self.nodes[node.name] = node
        return node

    # -- reading ----------------------------------------------------------
    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def shape_of(self, ref: str) -> Optional[Shape]:
        name, idx = split_ref(ref)
        node = self.nodes.get(name)
        if node is None or idx >= len(node.output_shapes):
            return None
        return node.output_shapes[idx]

    def producers(self, node: Node) -> list:
        return [self.nodes[split_ref(r)[0]] for r in node.inputs]

    def consumers(self, node: Node) -> list:
        index = self._consumer_index()
        return [self.nodes[n] for n in index.get(node.name, [])]

    def _consumer_index(self) -> dict:
        # Rebuilt lazily, when the node count changes or an edit says so (:meth:`touch`).
        cache = self.__dict__.get("_consumers")
        if cache is None or cache[0] != len(self.nodes):
            index: dict = {}
            for n in self.nodes.values():
                for r in n.inputs:
                    index.setdefault(split_ref(r)[0], []).append(n.name)
            cache = (len(self.nodes), index)
            self.__dict__["_consumers"] = cache
        return cache[1]

    def touch(self) -> None:
        """Forget what was worked out from the nodes (the consumer index, the features-last
        shapes): an edit that rewires or reshapes without changing the node count calls it."""
        self.__dict__.pop("_consumers", None)
        self.__dict__.pop("_fl_shapes", None)

    def copy(self) -> "Graph":
        """A deep copy: nodes, attrs, shapes and the training config can be edited
        (:mod:`modellint.edit`) without touching this graph."""
        import copy as _copy

        self.touch()
        return _copy.deepcopy(self)

    def lint(self) -> list:
        """The graph's invariants, checked (as torch.fx's ``Graph.lint``): every input ref
        names an earlier node and one of its outputs (topological order, so no cycles);
        graph inputs are ``input`` nodes and outputs resolve; the consumer index is
        current; a fused activation is its own node right after its layer (and a layer
        whose activation argument is not linear has one); a later call of a shared layer
        holds no parameters and names an earlier call. Returns the problems (empty: sound)."""

        problems, seen = [], set()
        for node in self.nodes.values():
            for ref in node.inputs:
                name, idx = split_ref(ref)
                if name not in self.nodes:
                    problems.append(f"{node.name}: input {ref!r} names no node")
                elif name not in seen:
                    problems.append(f"{node.name}: input {ref!r} is not before it (order or cycle)")
                elif self.nodes[name].output_shapes and idx >= len(self.nodes[name].output_shapes):
                    problems.append(f"{node.name}: input {ref!r} names output {idx} of a node with "
                                    f"{len(self.nodes[name].output_shapes)}")
            if node.fused_into is not None:
                layer = self.nodes.get(node.fused_into)
                if layer is None:
                    problems.append(f"{node.name}: fused into {node.fused_into!r}, which is not a node")
                elif node.op != "activation" or node.inputs != [layer.name]:
                    problems.append(f"{node.name}: a fused activation must be an activation node reading "
                                    f"its layer {layer.name!r}")
                elif layer.attrs.get("activation") in (None, "linear") or \
                        node.attrs.get("function") != layer.attrs.get("activation"):
                    problems.append(f"{node.name}: function {node.attrs.get('function')!r} but its layer says "
                                    f"activation={layer.attrs.get('activation')!r}")
            if node.shares_params_with is not None:
                first = self.nodes.get(node.shares_params_with)
                if first is None or first.name not in seen:
                    problems.append(f"{node.name}: shares parameters with {node.shares_params_with!r}, "
                                    "which is not an earlier node")
                if node.params:
                    problems.append(f"{node.name}: a later call of a shared layer holds {node.params} "
                                    "parameters (the first call holds them)")
            seen.add(node.name)
        fused_of = {n.fused_into for n in self.nodes.values() if n.fused_into}
        from .infer import FUSABLE

        for node in self.nodes.values():
            if node.op in FUSABLE and node.attrs.get("activation") not in (None, "linear") \
                    and node.name not in fused_of:
                problems.append(f"{node.name}: activation={node.attrs.get('activation')!r} has no "
                                "fused activation node")
        for name in self.inputs:
            if name not in self.nodes or self.nodes[name].op != "input":
                problems.append(f"graph input {name!r} is not an input node")
        for ref in self.outputs:
            if split_ref(ref)[0] not in self.nodes:
                problems.append(f"graph output {ref!r} names no node")
        cache = self.__dict__.get("_consumers")
        if cache is not None and cache[0] == len(self.nodes):
            fresh: dict = {}
            for n in self.nodes.values():
                for r in n.inputs:
                    fresh.setdefault(split_ref(r)[0], []).append(n.name)
            if fresh != cache[1]:
                problems.append("the consumer index is stale (an edit did not call Graph.touch())")
        return problems

    def layers(self) -> list:
        """Nodes that correspond to a source layer (not fused activations)."""
        return [n for n in self.nodes.values() if n.fused_into is None]

    @property
    def total_params(self) -> int:
        """Every weight the model holds: the nodes' and the :attr:`ledger`'s."""
        return sum(n.params for n in self.nodes.values()) + sum(e.params for e in self.ledger)

    @property
    def trainable_params(self) -> int:
        return sum(n.trainable_params for n in self.nodes.values()) + sum(e.trainable_params for e in self.ledger)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    def output_activation(self) -> Optional[str]:
        """The activation function the (first) output ends in, through shape-only ops; None if none."""
        node = self.nodes.get(split_ref(self.outputs[0])[0]) if self.outputs else None
        while node is not None and node.op in ("reshape", "flatten", "identity", "dropout") and node.inputs:
            node = self.nodes.get(split_ref(node.inputs[0])[0])
        return node.attrs.get("function") if node is not None and node.op == "activation" else None

    def input_shapes(self) -> list:
        return [self.nodes[n].output_shape for n in self.inputs]

    def display_shape(self, shape: Optional[Shape]) -> Optional[Shape]:
        """A canonical (channels-last) shape in the source's own layout. A features-last
        shape (:class:`FeaturesLast`, or a plain tuple equal to a node's features-last
        shape and to no channels-first one) is the source's already."""
        if shape is None or self.layout != "channels_first" or len(shape) < 3 or isinstance(shape, FeaturesLast):
            return shape
        if tuple(shape) in self._features_last_only():
            return tuple(shape)
        return (shape[0], shape[-1], *shape[1:-1])

    def _features_last_only(self) -> frozenset:
        cache = self.__dict__.get("_fl_shapes")
        if cache is None or cache[0] != len(self.nodes):
            fl, cf = set(), set()
            for n in self.nodes.values():
                for s in n.output_shapes:
                    if s is not None and len(s) >= 3:
                        (fl if isinstance(s, FeaturesLast) else cf).add(tuple(s))
            cache = (len(self.nodes), frozenset(fl - cf))
            self.__dict__["_fl_shapes"] = cache
        return cache[1]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "framework": self.framework,
            "source_format": self.source_format,
            "source_path": self.source_path,
            "model_class": self.model_class,
            "framework_version": self.framework_version,
            "layout": self.layout,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "params": {
                "total": self.total_params,
                "trainable": self.trainable_params,
                "non_trainable": self.non_trainable_params,
            },
            "training": self.training.to_dict() if self.training else None,
            "notes": list(self.notes),
            **({"ledger": [e.to_dict() for e in self.ledger]} if self.ledger else {}),
            **({"unknown_facts": dict(self.unknown_facts)} if self.unknown_facts else {}),
            "submodels": _jsonable(self.submodels),
            "nodes": [n.to_dict() for n in self.nodes.values()],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
