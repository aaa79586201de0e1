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
    """Read a model (a file path or a live model object) into a :class:`Graph`.

    Raises :class:`~modellint.errors.InputError` for bad model input (missing,
    corrupt, truncated, of the wrong format, hostile, or with absurd sizes),
    :class:`~modellint.errors.ConfigError` for bad settings and
    :class:`~modellint.errors.MissingDependency` for a missing optional package:
    all subclasses of :class:`ModelLintError`, whose message is one line naming the
    source and the problem. Nothing else escapes for bad input.
    """
    from .adapters import load_graph as _load

    return _load(source, **kwargs)


def analyze(model, *, dataset=None, select=None, ignore=None, extend_select=None, data=None, probes=False,
            budget=180.0, seed=0, task=None, loss=None, from_logits=None, weights=None, **load_kwargs):
    # load_kwargs: config=, trust_pickle=, input_shape=, example_inputs=, training= (see load_graph)
    """Load a model (path or live object), run the rules, return a :class:`~modellint.engine.Report`.

    ``dataset`` is optional: a dict ``{"samples": 8000, "classes": 13, "image_size": (128, 128)}``,
    a folder of class sub-folders, or a :class:`~modellint.rules.context.DatasetFacts`.
    ``select`` / ``ignore`` / ``extend_select`` take codes, code prefixes or categories.
    ``task`` states what the model is trained to do where its loss and head cannot tell
    (one of :data:`modellint.analysis.task.TASKS`: ``"multiclass"``, ``"regression"``,
    ``"segmentation"``...); ``loss`` states the training loss a file does not record, by
    its Keras name or its PyTorch class name (``"CrossEntropyLoss"``, ``"BCEWithLogitsLoss"``;
    ``from_logits`` for a Keras loss); an unknown task or loss is a ``ConfigError``.
    With ``data=`` (a folder of class sub-folders or an ``.npz``) and ``probes=True`` (or
    a list of probe names, e.g. ``["lr_range", "train_dynamics"]``) the probes train
    briefly within ``budget`` seconds and their findings join the report
    (``report.probes`` holds the measurements and curves).
    ``weights``: the weight rules read the weights the source holds (a Keras ``.h5``/``.keras``,
    ONNX initializers, a state_dict file, a live model) unless ``weights=False``; a path names a
    PyTorch state_dict (read with ``weights_only=True``) for a code target or a file without
    weights. ``report.weights`` is the :class:`~modellint.analysis.weights.WeightStore` they read.

    Raises :class:`~modellint.errors.InputError` for bad model input,
    :class:`~modellint.errors.ConfigError` for bad settings and
    :class:`~modellint.errors.MissingDependency` for a missing optional package, all
    subclasses of :class:`ModelLintError` (see :func:`load_graph`); nothing else
    escapes for bad input.

    >>> report = analyze("examples/seed_cnn.h5", dataset={"samples": 8000, "classes": 13})  # doctest: +SKIP
    >>> [f.code for f in report.findings]                                                      # doctest: +SKIP
    """
    import os

    from .dataset import facts_from_folder, facts_from_values
    from .engine import run_rules, select_rules
    from .rules.context import DatasetFacts

    if loss is not None:
        from .losses import stated_training

        stated = stated_training(loss, from_logits, load_kwargs.get("training"), option="loss=")
    if probes:
        if data is None:
            raise ModelLintError("analyze(probes=True) needs data= (a folder of class sub-folders or an .npz)")
        from .probes.api import probe_inputs, rule_facts, run_probes
        from .probes.suite import ALL_PROBES

        names = ALL_PROBES if probes is True else (probes,) if isinstance(probes, str) else tuple(probes)
        graph, ds, probe_report = run_probes(model, data, budget=budget, seed=seed, probes=names,
                                             input_shape=load_kwargs.get("input_shape"),
                                             training=stated if loss is not None else load_kwargs.get("training"))
        facts = rule_facts(ds, f"data={data}")
        facts.task = _checked_task(task)
        rules = select_rules(select=select, ignore=ignore, extend_select=extend_select)
        report = run_rules(graph, rules, facts, probes=probe_inputs(probe_report),
                           weights=_weight_store(model, graph, weights, rules))
        report.probes = probe_report
        return report
    if weights is None and isinstance(model, (str, os.PathLike)):
        from .weights import prefetch

        prefetch(model)   # a Keras file's weights are read in a child while the architecture is
    graph = load_graph(model, **load_kwargs)
    if loss is not None:
        graph.training = stated_training(loss, from_logits, graph.training, option="loss=")
    if dataset is None and data is not None:
        dataset = data
    if isinstance(dataset, DatasetFacts) or dataset is None:
        facts = dataset
    elif isinstance(dataset, (str, os.PathLike)):
        facts = facts_from_folder(dataset)
    else:
        facts = facts_from_values(dataset.get("samples"), dataset.get("classes"), dataset.get("image_size"),
                                  source="analyze(dataset=...)")
    if task is not None:
        facts = facts or DatasetFacts()
        facts.task = _checked_task(task)
    rules = select_rules(select=select, ignore=ignore, extend_select=extend_select)
    return run_rules(graph, rules, facts, weights=_weight_store(model, graph, weights, rules))


def _weight_store(model, graph, weights, rules):
    """What analyze(weights=...) reads: None for weights=False or when no weight rule is selected;
    a path is a state_dict file, read now (a bad one is an InputError/ConfigError)."""
    import os

    if weights is False or not any("weights" in r.needs for r in rules):
        return None
    from .analysis.weights import weights_for

    if isinstance(weights, (str, os.PathLike)):
        store = weights_for(model, graph, weights)
        store.stats()
        if store.error:
            from .errors import ConfigError

            raise ConfigError(f"weights={str(weights)!r}: {store.error}")
        return store
    return weights_for(model, graph)


def fix(model, *, out=None, force=False, dry_run=False, dataset=None, select=None, task=None, loss=None,
        from_logits=None, **load_kwargs):
    """Apply the rules' fixes to ``model`` (a path or a live model) and write the fixed model in its
    own framework: Keras ``OUT.keras`` + ``OUT.py`` (a functional Keras script), PyTorch ``OUT.py``
    (an ``nn.Module``). ``out`` is a path stem (default ``<model>_fixed`` beside the file);
    ``select`` the codes whose fixes to apply; ``dataset``, ``task``, ``loss`` as :func:`analyze`;
    ``dry_run=True`` writes nothing. Never overwrites the input; an existing output needs
    ``force=True``. Returns a :class:`~modellint.fixes.FixResult` (the fixed ``graph``, the
    ``changes`` with before/after params, MACs and receptive field, per-layer ``weights``
    status, the ``written`` paths)."""
    from .fixes import fix as _fix

    return _fix(model, out=out, force=force, dry_run=dry_run, dataset=dataset, select=select, task=task,
                loss=loss, from_logits=from_logits, **load_kwargs)


def _checked_task(task):
    from .analysis.task import TASKS
    from .errors import ConfigError

    if task is not None and task not in TASKS:
        raise ConfigError(f"task={task!r} is not one of {', '.join(TASKS)}")
    return task


def __getattr__(name):  # Report and Finding without importing the engine up front
    if name == "Report":
        from .engine import Report

        return Report
    if name == "Finding":
        from .rules.base import Finding

        return Finding
    raise AttributeError(f"module 'modellint' has no attribute {name!r}")


__all__ = ["analyze", "fix", "Report", "Finding", "__version__", "load_graph", "Graph", "Node", "TrainingConfig", "InputError", "ModelLintError"]
