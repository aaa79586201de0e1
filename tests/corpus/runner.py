"""Build a corpus case and analyse it the way a user would.

* Keras: the factory's live, compiled ``keras.Model`` goes to ``modellint.analyze``
  (the live adapter); :func:`keras_file_routes` saves it as ``.keras`` and ``.h5`` and
  analyses the files too (the way users give models).
* PyTorch: ``analyze(module, input_shape=... | example_inputs=..., training=...)``.
  There is no ``--task`` yet and no PyTorch-aware loss option: the stated loss goes in as
  ``TrainingConfig(loss=<name lower-cased>, from_logits=False)``, which is exactly what
  ``modellint check --loss CrossEntropyLoss`` builds today (``cli._load``); the optimizer
  (API only, the CLI has no option for it) as ``optimizer``/``learning_rate``/
  ``optimizer_config``. When ``analyze`` grows ``task=`` or ``loss=`` parameters they are
  used instead (see :func:`analyze_kwargs`): the benchmark follows the public API.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Optional

from .manifest import Pair, Sound


@dataclass
class Built:
    model: Any
    input_shape: Optional[tuple] = None
    example_inputs: Any = None


def factory(entry, variant: Optional[str] = None):
    module = importlib.import_module(f"{__package__}.{entry.module}")
    return getattr(module, entry.factory_name(variant))


def build(entry, variant: Optional[str] = None, fresh_session: bool = True) -> Built:
    """The model of one case (``variant`` "buggy"/"fixed" for pairs, None for sound designs).
    ``fresh_session``: clear the Keras session first, so layer names start again from
    ``dense``, ``dense_1``... as in a user's script (0.15 s a model; the corpus test skips it)."""
    fn = factory(entry, variant)
    if entry.framework == "keras":
        import keras

        if fresh_session:
            keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        return Built(fn())
    import torch

    torch.manual_seed(0)
    module, spec = fn()
    if isinstance(spec, torch.Tensor) or (isinstance(spec, (list, tuple)) and spec
                                          and isinstance(spec[0], torch.Tensor)):
        return Built(module, example_inputs=spec)
    return Built(module, input_shape=tuple(spec))


def stated_training(loss: Optional[str], optimizer: Optional[dict]):
    """The TrainingConfig a PyTorch user states today (see the module docstring)."""
    from modellint.graph import TrainingConfig

    if loss is None and optimizer is None:
        return None
    opt = dict(optimizer or {})
    name = opt.pop("name", None)
    lr = opt.pop("lr", None)
    cfg = {}
    if name is not None:
        cfg = {"learning_rate": lr, **opt}
        if name == "sgd":
            cfg.setdefault("momentum", 0.0)
        if "weight_decay" in opt:
            cfg["decoupled_weight_decay"] = name == "adamw"  # torch.optim: Adam couples, AdamW decouples
    return TrainingConfig(loss=loss.lower() if loss else None, from_logits=False if loss else None,
                          optimizer=name, learning_rate=lr, optimizer_config=cfg)


def _api_params() -> set:
    import modellint

    return set(inspect.signature(modellint.analyze).parameters)


def analyze_kwargs(entry, variant: Optional[str], built: Built) -> dict:
    """Keyword arguments of ``modellint.analyze`` for this case (dataset facts, PyTorch
    input and stated training setup, the task where the API takes one)."""
    params = _api_params()
    kwargs: dict = {}
    if entry.facts:
        kwargs["dataset"] = dict(entry.facts)
    if entry.task and "task" in params:
        kwargs["task"] = entry.task
    if entry.framework == "torch":
        if built.example_inputs is not None:
            kwargs["example_inputs"] = built.example_inputs
        else:
            kwargs["input_shape"] = built.input_shape
        loss, opt = entry.loss_for(variant), entry.optimizer_for(variant)
        if "loss" in params and loss:
            kwargs["loss"] = loss
            training = stated_training(None, opt)
        else:
            training = stated_training(loss, opt)
        if training is not None:
            kwargs["training"] = training
    return kwargs


def mechanism() -> str:
    """One line saying how the benchmark states the task and the PyTorch loss today."""
    params = _api_params()
    task = "analyze(task=...)" if "task" in params else "not passed (analyze() has no task parameter)"
    loss = ("analyze(loss=NAME)" if "loss" in params else
            "TrainingConfig(loss=NAME.lower(), from_logits=False), as `check --loss NAME` builds it")
    return f"task: {task}; PyTorch loss: {loss}; PyTorch optimizer: TrainingConfig (API only)"


def analyze_case(entry, variant: Optional[str] = None, built: Optional[Built] = None):
    import modellint

    built = built or build(entry, variant)
    return modellint.analyze(built.model, **analyze_kwargs(entry, variant, built))


def load_case_graph(entry, variant: Optional[str] = None, built: Optional[Built] = None):
    """The modellint Graph of a case, with the stated training setup (for corpus checks)."""
    import modellint

    built = built or build(entry, variant)
    kw = analyze_kwargs(entry, variant, built)
    load = {k: kw[k] for k in ("input_shape", "example_inputs", "training") if k in kw}
    graph = modellint.load_graph(built.model, **load)
    if "loss" in kw:  # as analyze(loss=...) states it
        from modellint.losses import stated_training as state

        graph.training = state(kw["loss"], None, graph.training)
    return graph


def keras_file_routes(entry, variant: Optional[str], built: Built, directory) -> dict:
    """Save a live Keras model as ``.keras`` and ``.h5`` under ``directory`` and analyse
    each file with the case's facts: {"keras": Report | Exception, "h5": ...}."""
    import os
    import warnings

    import modellint

    kwargs = analyze_kwargs(entry, variant, built)
    out = {}
    stem = f"{entry.id}-{variant or 'sound'}"
    for ext in ("keras", "h5"):
        path = os.path.join(str(directory), f"{stem}.{ext}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Keras warns that HDF5 is legacy
                built.model.save(path)
            out[ext] = modellint.analyze(path, **kwargs)
        except Exception as exc:  # reported as a disagreement row, never a crash
            out[ext] = exc
    return out


def graph_signature(graph) -> tuple:
    """What makes two graphs different models: ops, types, attributes, shapes, parameter
    counts and the training setup, but not the layer names (Keras numbers them per session)."""
    rename = {n.name: i for i, n in enumerate(graph)}

    def ref(r):
        name, _, idx = r.rpartition(":")
        if name and idx.isdigit() and name in rename:
            return f"{rename[name]}:{idx}"
        return str(rename.get(r, r))

    nodes = tuple((n.op, n.source_type, repr(sorted((k, repr(v)) for k, v in n.attrs.items()
                                                    if k not in ("name",))),
                   tuple(ref(r) for r in n.inputs), repr(n.output_shapes), n.params, n.trainable_params)
                  for n in graph)
    t = graph.training
    training = None if t is None else (t.loss, t.from_logits, t.optimizer, t.learning_rate,
                                       repr(sorted((k, repr(v)) for k, v in (t.optimizer_config or {}).items())),
                                       repr(sorted((k, repr(v)) for k, v in (t.loss_config or {}).items())))
    return nodes, training


def case_list(framework: Optional[str] = None, only: Optional[str] = None, include_slow: bool = True):
    """(entry, variant) pairs in a stable order: pairs (buggy, fixed), then sound designs."""
    from .manifest import PAIRS, SOUND

    out = []
    for entry in PAIRS + SOUND:
        if framework and entry.framework != framework:
            continue
        if only and entry.id != only:
            continue
        if entry.slow and not include_slow:
            continue
        if isinstance(entry, Pair):
            out += [(entry, "buggy"), (entry, "fixed")]
        elif isinstance(entry, Sound):
            out.append((entry, None))
    return out
