"""What a probe needs from a framework: a :class:`Runner`.

The probes (:mod:`modellint.probes.suite`) are written once against this small
interface; :mod:`.runner_keras` and :mod:`.runner_torch` implement it in the
model's own framework. Arrays cross the boundary as numpy: images NHWC float32
in [0, 1], labels int64 class indices. A runner converts to its own layout.

Every experiment starts from freshly initialised weights (:meth:`Runner.reset`),
so probes measure the architecture and training setup, not a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class StepStats:
    """Per-layer measurements of one training step (layer name -> value)."""

    loss: float
    grad_norm: dict = field(default_factory=dict)  # L2 norm of the kernel gradient
    weight_norm: dict = field(default_factory=dict)
    update_ratio: dict = field(default_factory=dict)  # ||ΔW|| / ||W|| of the step
    nonfinite: bool = False  # NaN/Inf in loss or gradients


@dataclass
class ActivationStats:
    """Per-activation-layer statistics over a batch."""

    dead_fraction: dict = field(default_factory=dict)  # units zero on >= 70 % of inputs (ReLU family)
    saturated_fraction: dict = field(default_factory=dict)  # tanh/sigmoid pre-activations beyond ±5


class Runner:
    """Interface; see the module docstring. Subclasses implement every method."""

    framework = ""
    #: where the runner puts tensors ("cpu", "cuda", ...)
    device = "cpu"
    #: loss the runner trains with, described for reports
    loss_name = ""
    #: how :meth:`reset` initialises the weights, described for reports
    init = ""

    def reset(self, seed: int, lr: float) -> None:
        """Fresh weights (seeded) and a fresh optimizer with learning rate ``lr``."""
        raise NotImplementedError

    def set_lr(self, lr: float) -> None:
        raise NotImplementedError

    def step(self, x, y, *, measure: bool = False) -> StepStats:
        """One optimisation step on a batch; with ``measure``, per-layer statistics."""
        raise NotImplementedError

    #: the model has BatchNorm-style layers whose inference statistics lag behind short training
    has_norm_stats = False

    def evaluate(self, x, y, batch_size: int = 128) -> tuple:
        """(mean loss, accuracy) without updating weights."""
        return self.evaluate_predictions(x, y, batch_size)[:2]

    def evaluate_predictions(self, x, y, batch_size: int = 128) -> tuple:
        """(mean loss, accuracy, predicted class index per image as an int64 array), in inference mode."""
        raise NotImplementedError

    def refresh_norm_stats(self, batches) -> int:
        """Re-estimate the BatchNorm running statistics from ``batches`` (a list of image arrays): the
        cumulative average of their batch statistics, computed in training mode for the norm layers only
        (no weight update). After a few dozen steps the moving averages have barely left their initial
        values, and inference-mode evaluation would measure them instead of the trained weights.
        Returns the number of norm layers refreshed (0: nothing to do)."""
        return 0

    def activation_stats(self, x) -> ActivationStats:
        raise NotImplementedError

    def output_bias(self) -> Optional[list]:
        """Bias of the output layer, if it has one (for the class-prior check)."""
        return None


#: Runners by name (the graph's framework): "module:Class", imported when first asked for, so that no
#: runner module imports another and a job (:mod:`.compare`) names its runner by a string.
RUNNERS = {"torch": "modellint.probes.runner_torch:TorchRunner",
           "keras": "modellint.probes.runner_keras:KerasRunner"}


def register_runner(name: str, target: str) -> None:
    """Make ``target`` ("package.module:Class", a :class:`Runner` taking ``(graph, source, *, loss, seed,
    build)``) the runner of models whose graph's framework is ``name``."""
    RUNNERS[name] = target


def runner_class(name: str):
    """The runner class registered as ``name``, or None."""
    import importlib

    target = RUNNERS.get(name or "")
    if target is None:
        return None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def make_runner(graph, source, *, loss: Optional[str] = None, seed: int = 0, build=None) -> Runner:
    """The runner for ``source`` (a path, a live model, or a code target) in its framework (found in
    :data:`RUNNERS` by ``graph.framework``). ``build``: a callable that makes the model afresh (a code
    target's factory); PyTorch runners call it under the seed at every reset, so the model's own
    initialisation code runs."""
    if graph.framework == "keras":
        from ..errors import need

        need("keras", "probing a Keras model")
    cls = runner_class(graph.framework) if graph.framework in RUNNERS else None
    if cls is not None:
        if graph.framework == "torch":
            return cls(graph, source, loss=loss, seed=seed, build=build)
        return cls(graph, source, loss=loss, seed=seed)
    from ..errors import InputError

    raise InputError(graph.source_path or graph.name,
                     f"probes need the model's own framework; {graph.framework or 'this'} models cannot be trained "
                     "here (ONNX files are inference graphs)")
