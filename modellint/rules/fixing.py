"""What a rule's :class:`~modellint.rules.base.Fix` works with: the graph editor, the
finding, a rule context on the graph as it is now, and new layers in the model's own
framework (``Conv2D``/``torch.nn.Conv2d``...), so fixes stay a few lines each."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional

from ..edit import GraphEditor
from ..graph import Graph, Node
from .base import Finding
from .context import Context, DatasetFacts

# Weight roles in each framework's own names (modellint.weights reads them so).
_WEIGHT_NAMES = {"keras": {"kernel": "kernel", "bias": "bias", "gamma": "gamma", "beta": "beta",
                           "mean": "moving_mean", "var": "moving_variance"},
                 "torch": {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
                           "mean": "running_mean", "var": "running_var"}}


def weight_name(graph: Graph, role: str) -> str:
    return _WEIGHT_NAMES["torch" if graph.framework == "torch" else "keras"][role]


@dataclass
class FixContext:
    editor: GraphEditor
    finding: Finding
    dataset: Optional[DatasetFacts] = None

    @property
    def graph(self) -> Graph:
        return self.editor.graph

    @cached_property
    def ctx(self) -> Context:
        """A rule context on the graph as it is when the fix starts."""
        return Context(self.graph, self.dataset)

    def fresh_ctx(self) -> Context:
        return Context(self.graph, self.dataset)

    @property
    def torch(self) -> bool:
        return self.graph.framework == "torch"

    def weights(self, name: str) -> Optional[dict]:
        """The arrays of a node, when the model's weights were read."""
        w = self.editor.weights
        return None if w is None else w.get(name)

    def wname(self, role: str) -> str:
        return weight_name(self.graph, role)

    # -- new layers, in the model's framework ---------------------------------
    def conv(self, name: str, filters: int, kernel: int = 3, rank: int = 2, use_bias: bool = False,
             activation: str = "linear") -> Node:
        k = (kernel,) * rank
        if self.torch:
            pad = tuple((kernel // 2, kernel // 2) for _ in range(rank))
            return Node(name, "conv", f"torch.nn.Conv{rank}d",
                        {"rank": rank, "filters": filters, "kernel": k, "strides": (1,) * rank, "dilation": (1,) * rank,
                         "padding": pad, "groups": 1, "use_bias": use_bias, "activation": activation})
        return Node(name, "conv", f"Conv{rank}D",
                    {"rank": rank, "filters": filters, "kernel": k, "strides": (1,) * rank, "dilation": (1,) * rank,
                     "padding": "same", "groups": 1, "use_bias": use_bias, "activation": activation,
                     "kernel_initializer": "he_normal"})

    def batchnorm(self, name: str, rank: int = 2) -> Node:
        if self.torch:
            return Node(name, "batchnorm", f"torch.nn.BatchNorm{rank}d",
                        {"axis": -1, "center": True, "scale": True, "epsilon": 1e-5, "momentum": 0.1,
                         "track_running_stats": True})
        return Node(name, "batchnorm", "BatchNormalization",
                    {"axis": -1, "center": True, "scale": True, "epsilon": 1e-3, "momentum": 0.99})

    def activation(self, name: str, function: str = "relu") -> Node:
        if self.torch:
            kind = {"relu": "ReLU", "softmax": "Softmax", "sigmoid": "Sigmoid", "log_softmax": "LogSoftmax",
                    "tanh": "Tanh"}.get(function, function)
            attrs = {"function": function, **({"axis": -1} if "softmax" in function else {})}
            return Node(name, "activation", f"torch.nn.{kind}", attrs)
        return Node(name, "activation", "Activation", {"function": function})

    def max_pool(self, name: str, rank: int = 2) -> Node:
        attrs = {"rank": rank, "pool_size": (2,) * rank, "strides": (2,) * rank, "padding": "valid"}
        return Node(name, "pool_max", f"torch.nn.MaxPool{rank}d" if self.torch else f"MaxPooling{rank}D", attrs)

    def global_avg_pool(self, name: str, rank: int = 2) -> Node:
        attrs = {"mode": "avg", "keepdims": False, "rank": rank}
        return Node(name, "global_pool", "torch.mean" if self.torch else f"GlobalAveragePooling{rank}D", attrs)

    def dropout(self, name: str, rate: float) -> Node:
        return Node(name, "dropout", "torch.nn.Dropout" if self.torch else "Dropout",
                    {"variant": "dropout", "rate": rate})

    def new_normalization(self, name: str, mean=None, variance=None) -> Node:
        attrs = {"axis": -1, "mean": None if mean is None else [float(x) for x in mean],
                 "variance": None if variance is None else [float(x) for x in variance]}
        return Node(name, "normalization", "Normalization", attrs)

    def rescaling(self, name: str, scale: float = 1 / 255, offset: float = 0.0) -> Node:
        return Node(name, "rescaling", "Rescaling", {"scale": scale, "offset": offset})


def rank_of(shape) -> int:
    """Spatial dims of a canonical (batch, ..., channels) shape."""
    return max(len(shape) - 2, 1) if shape is not None else 2
