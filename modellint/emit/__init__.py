"""Emitters: a :class:`~modellint.graph.Graph` back to framework code, the inverse of
the adapters.

* :func:`emit_keras` -- functional Keras 3 code (``build_model()``, ``compile_model(model)``);
* :func:`save_keras` -- that model built, the kept weights assigned, saved as ``.keras``;
* :func:`emit_torch` -- a ``torch.nn.Module`` (``class Model``, ``build_model()``).

Weights are ``{node name: {weight name: numpy array}}`` in the framework's own
naming (:func:`modellint.weights.read_weights` reads them from a model file).
An op an emitter cannot write raises :class:`EmitError`, naming the node and op.
Importing this package imports no framework.
"""

from .common import EmitError
from .keras_code import build_keras, emit_keras, keras_layer_names, save_keras
from .torch_code import build_torch, emit_torch, torch_module_names

__all__ = ["EmitError", "emit_keras", "save_keras", "build_keras", "keras_layer_names",
           "emit_torch", "build_torch", "torch_module_names"]
