"""What a rule sees: the graph, its analyses, optional dataset facts, and
small graph-walking helpers so each rule stays a few lines."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Iterable, Optional

from .. import ops
from ..analysis import node_costs, receptive_fields
from ..analysis.task import TaskAnalysis
from ..analysis.task import analyse as analyse_task
from ..graph import Graph, Node, split_ref


@dataclass
class DatasetFacts:
    """What a rule may know about the training data (all optional)."""

    samples: Optional[int] = None
    classes: Optional[int] = None
    image_size: Optional[tuple] = None  # (H, W)
    channels: Optional[int] = None
    task: Optional[str] = None  # stated by the user (--task); see modellint.analysis.task.TASKS
    source: str = ""  # "--samples/--classes", "config", "--data DIR"

    def has(self, fact: str) -> bool:
        return getattr(self, fact) is not None

    def to_dict(self) -> dict:
        return {"samples": self.samples, "classes": self.classes,
                "image_size": list(self.image_size) if self.image_size else None,
                "channels": self.channels, "task": self.task, "source": self.source}


class Context:
    def __init__(self, graph: Graph, dataset: Optional[DatasetFacts] = None, probes: Optional[dict] = None,
                 weights=None):
        self.graph = graph
        self.dataset = dataset or DatasetFacts()
        self.probes = probes  # ProbeReport.to_dict()["results"], when probes ran
        # the model's weights (modellint.analysis.weights.WeightStore): per-layer statistics of one
        # streaming pass; None when the source holds none (rules with needs=("weights",) are skipped)
        self.weights = weights
        self.findings: Optional[list] = None  # the findings of the rules run so far (set by the engine)

    def probe(self, name: str) -> Optional[dict]:
        """The metrics of a probe that ran to completion, or None."""
        result = (self.probes or {}).get(name)
        if not result or result.get("status", "ok") != "ok":
            return None
        return result.get("metrics") or {}

    # -- analyses, computed once ------------------------------------------------
    @cached_property
    def rf(self) -> dict:
        return receptive_fields(self.graph)

    @cached_property
    def costs(self) -> dict:
        return node_costs(self.graph)

    @cached_property
    def task(self) -> TaskAnalysis:
        """What the model is trained to do, per output (see :mod:`modellint.analysis.task`)."""
        return analyse_task(self.graph, self.dataset)

    # -- node classes -------------------------------------------------------------
    @staticmethod
    def kind(node: Node) -> str:
        return ops.spec(node.op).kind

    def is_learnable(self, node: Node) -> bool:
        return self.kind(node) == ops.LEARNABLE and node.op != "embedding"

    @staticmethod
    def activation(node: Node) -> Optional[str]:
        return node.attrs.get("function") if node.op == "activation" else None

    @staticmethod
    def is_nonlinear(node: Node) -> bool:
        """Does this node make the function non-linear in a way that matters for
        stacking layers? (max pooling and dropout do not count.)"""
        if node.op == "activation":
            return node.attrs.get("function") not in ops.LINEAR_ACTIVATIONS
        return node.op in ("rnn", "attention", "multiply", "dot", "unknown", "layernorm", "groupnorm",
                           "embedding", "unitnorm")

    def learnable_layers(self) -> list:
        return [n for n in self.graph if self.is_learnable(n) and not n.shares_params_with]

    # -- walking ----------------------------------------------------------------
    def consumers(self, node: Node) -> list:
        return self.graph.consumers(node)

    def producers(self, node: Node) -> list:
        return self.graph.producers(node)

    def forward(self, node: Node, through: Callable[[Node], bool]) -> Iterable[Node]:
        """Nodes reached from ``node`` passing only through nodes where ``through`` holds;
        yields the first node on each path where it does not."""
        return self._walk(node, self.consumers, through)

    def backward(self, node: Node, through: Callable[[Node], bool]) -> Iterable[Node]:
        """As :meth:`forward`, towards the inputs."""
        return self._walk(node, self.producers, through)

    def backward_reach(self, through: Callable[[Node], bool], keep: Callable[[Node], bool]
                       ) -> Callable[[Node], frozenset]:
        """For rules that walk back from many nodes: a function ``f(node)`` giving the names of the
        nodes ``backward(node, through)`` yields for which ``keep`` holds, as a frozenset.

        All walks share one pass (:func:`_fold`): ``through`` and ``keep`` are evaluated once per
        node and the reach of every ``through`` node is computed once, so N walks along one long
        path (the adds of N residual blocks) cost O(N) plus the size of the sets themselves."""
        return _fold(self.graph, self.producers, through, keep, _union_sets)

    @staticmethod
    def _walk(node, step, through) -> Iterable[Node]:
        seen, stack = set(), list(step(node))
        while stack:
            n = stack.pop()
            if n.name in seen:
                continue
            seen.add(n.name)
            if through(n):
                stack.extend(step(n))
            else:
                yield n

    # -- the head -----------------------------------------------------------------
    def outputs(self) -> list:
        return [self.graph[split_ref(r)[0]] for r in self.graph.outputs]

    def head(self, out: Node) -> dict:
        """The classifier head behind an output: its final activation and units."""
        function = None
        node = out
        # the last activation on the way back, through shape-only ops
        while True:
            if node.op == "activation":
                function = node.attrs.get("function")
                break
            if node.op in ("reshape", "flatten", "identity", "dropout") and node.inputs:
                node = self.producers(node)[0]
                continue
            break
        shape = out.output_shape
        units = shape[-1] if shape else None
        return {"activation": function, "units": units, "output": out}

    def head_layer(self, out: Node) -> Node:
        """The layer that computes an output: back from the output through
        activations and shape-only ops to the first learnable layer (Keras'
        ``Dense(activation="softmax")`` and PyTorch's ``Linear`` + ``Softmax`` alike)."""
        node = out
        while not self.is_learnable(node) and node.op in ("activation", "reshape", "flatten", "identity",
                                                          "dropout") and node.inputs:
            node = self.producers(node)[0]
        return self.layer_of(node) if self.is_learnable(self.layer_of(node)) else self.layer_of(out)

    @property
    def torch(self) -> bool:
        """Speak PyTorch: a PyTorch model, or an ONNX file exported by PyTorch."""
        from ..adapters import pytorch_convention

        return pytorch_convention(self.graph)

    def say(self, keras: str, torch: str) -> str:
        """Prose in the model's framework (fixes name that framework's layers)."""
        return torch if self.torch else keras

    def label(self, node: Node) -> str:
        """A layer as its user knows it: the Keras layer name; for PyTorch the module type
        and path (``Dropout `features.15```), since paths alone are numbers."""
        if self.torch:
            kind = (node.source_type or node.op).rsplit(".", 1)[-1]
            return f"{kind} `{node.name}`"
        return node.name

    def layer_of(self, node: Node) -> Node:
        """The source layer a (fused activation) node belongs to."""
        return self.graph[node.fused_into] if node.fused_into else node

    def input_image(self) -> Optional[tuple]:
        """(H, W, C) of the first image-like input, or None."""
        for name in self.graph.inputs:
            shape = self.graph[name].output_shape
            if shape is not None and len(shape) == 4:
                return tuple(shape[1:])
        return None


def names(nodes) -> str:
    """``conv2d_1 … conv2d_4`` style for messages (first and last of a long list)."""
    nodes = [n if isinstance(n, str) else n.name for n in nodes]
    if len(nodes) <= 3:
        return ", ".join(nodes)
    return f"{nodes[0]} … {nodes[-1]} ({len(nodes)} layers)"


def _union_sets(parts: list, stops: set):
    """The union of frozensets ``parts`` and the names in ``stops``; a part is shared when it is all."""
    distinct = {id(p): p for p in parts if p}
    if not stops and len(distinct) <= 1:
        return next(iter(distinct.values()), _EMPTY)
    out = set(stops)
    for p in distinct.values():
        out |= p
    return frozenset(out)


_EMPTY: frozenset = frozenset()


def _fold(graph: Graph, step, through, keep, merge):
    """``f(node)`` = ``merge`` of what the walk from ``node`` along ``step`` finds: for each
    neighbour, its own value if ``through`` holds for it (it is walked through), else the neighbour
    itself when ``keep`` holds (a stop the caller wants). :meth:`Context._walk` from every node,
    in one pass.

    Values of ``through`` nodes are computed once each, over their strongly connected components
    (Tarjan's algorithm, iterative: a graph read from a file may have cycles, and a deep one must
    not recurse), each component after every component it reaches."""
    passes = {n.name: bool(through(n)) for n in graph}
    kept = {n.name: bool(keep(n)) for n in graph}
    succ = {name: [m.name for m in step(graph[name])] for name in passes}
    value: dict = {}
    index, low, on_stack, stack, counter = {}, {}, set(), [], 0
    for root in passes:
        if not passes[root] or root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(succ[root]))]
        while work:
            v, it = work[-1]
            descended = False
            for w in it:
                if not passes[w]:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ[w])))
                    descended = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if descended:
                continue
            work.pop()
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
            if low[v] != index[v]:
                continue
            members = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                members.append(w)
                if w == v:
                    break
            inside = set(members)
            parts, stops = [], set()
            for m in members:
                for w in succ[m]:
                    if passes[w]:
                        if w not in inside:
                            parts.append(value[w])
                    elif kept[w]:
                        stops.add(w)
            result = merge(parts, stops)
            for m in members:
                value[m] = result

    def f(node: Node):
        parts, stops = [], set()
        for w in succ[node.name]:
            if passes[w]:
                parts.append(value[w])
            elif kept[w]:
                stops.add(w)
        return merge(parts, stops)

    return f
