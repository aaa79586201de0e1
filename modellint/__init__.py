"""modellint: tells you what is wrong with your neural-network model and how to improve it.

Public API::

    from modellint import load_graph
    graph = load_graph("model.h5")          # or a live keras.Model
    graph.total_params, graph["conv2d_1"].output_shape

Importing modellint imports no deep-learning framework.
"""

__version__ = "0.1.0"

from .errors import InputError, ModelLintError  # noqa: E402
from .graph import Graph, Node, TrainingConfig  # noqa: E402


def load_graph(source, **kwargs):
    """Read a model (a file path or a live model object) into a :class:`Graph`."""
    from .adapters import load_graph as _load

    return _load(source, **kwargs)


__all__ = ["__version__", "load_graph", "Graph", "Node", "TrainingConfig", "InputError", "ModelLintError"]
