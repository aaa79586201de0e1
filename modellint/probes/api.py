"""Running the probes on a model and a dataset: load, plan, run, cache.

``run_probes(model, data, ...)`` is what ``modellint probe`` and
``analyze(..., data=..., probes=True)`` call. Results are cached by the model's
content, the data's content summary and the settings, so an identical re-run is
instant (``--no-cache`` skips the cache; ``MODELLINT_CACHE_DIR`` moves it).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import InputError
from .suite import ALL_PROBES, ProbeReport, ProbeResult, ProbeSettings, check_plan, run_suite

#: bump when probe results change meaning or gain fields (2: epochs, plan cuts; whole-data fingerprint)
CACHE_VERSION = 4  # 3: lr_range records its readability and the confirming runs; 4: the verdict plan, train_dynamics' subset and last_quarter_fall


def cache_dir() -> Path:
    base = os.environ.get("MODELLINT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "modellint")
    return Path(base) / "probes"


def _fingerprint(graph, source, dataset, settings: ProbeSettings, loss) -> str:
    h = hashlib.sha256()
    h.update(f"v{CACHE_VERSION}".encode())
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        with open(source, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    else:  # a live model or a code target: its architecture
        h.update(json.dumps(graph.to_dict(), sort_keys=True, default=str).encode())
        if isinstance(source, str) and graph.source_format == "code":  # and the code that initialises it
            h.update(_module_source(source))
    h.update(json.dumps(dataset.summary(), sort_keys=True, default=str).encode())
    h.update(json.dumps(getattr(dataset, "facts", {}), sort_keys=True, default=str).encode())
    content = getattr(dataset, "content", "")
    if content:  # every image's pixels and label
        h.update(content.encode())
    else:  # a Dataset built by hand
        for a in (dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val):
            h.update(hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).digest())
    h.update(json.dumps(asdict(settings), sort_keys=True, default=str).encode())
    h.update(str(loss).encode())
    return h.hexdigest()[:32]


def _module_source(target: str) -> bytes:
    """The source file of a code target's module (its factory's init code decides the initial weights)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(target.partition(":")[0])
        return Path(spec.origin).read_bytes() if spec and spec.origin else b""
    except (ImportError, ValueError, OSError):
        return b""


def _from_cache(path: Path) -> Optional[ProbeReport]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    report = ProbeReport(settings=data.get("settings", {}), data=data.get("data", {}),
                         interrupted=data.get("interrupted", False), seconds=data.get("seconds", 0.0),
                         step_seconds=data.get("step_seconds"))
    for name, r in data.get("results", {}).items():
        report.results[name] = ProbeResult(name, r.get("status", "ok"), r.get("seconds", 0.0),
                                           r.get("metrics", {}), r.get("curves", {}), r.get("notes", []))
    return report


def _live_model(graph, source):
    """The object the runner trains: a path for Keras files, the model a code target builds (a Keras model
    or a PyTorch module; built afresh: the graph was read from another build), a live model as given."""
    if isinstance(source, str) and graph.source_format == "code":
        from ..adapters.code_target import resolve_target

        return resolve_target(source)
    if graph.framework == "torch":
        if isinstance(source, (str, os.PathLike)):
            raise InputError(source, "probes train the model: pass the PyTorch module as a code target "
                             "(package.module:factory), not an exported or scripted file")
        return source
    return source


def _builder(graph, source):
    """For a code target, what builds the model afresh (its factory, called again); else None."""
    if isinstance(source, str) and graph.source_format == "code":
        from ..adapters.code_target import resolve_target

        return lambda: resolve_target(source)
    return None


def run_probes(model, data, *, budget: float = 180.0, seed: int = 0, probes=ALL_PROBES, lr=None,
               input_shape=None, training=None, loss: Optional[str] = None, max_images: Optional[int] = None,
               use_cache: bool = True, progress: Optional[Callable[[str, str], None]] = None,
               plan: Optional[dict] = None, clock_start: Optional[float] = None,
               clock: Callable[[], float] = time.perf_counter):
    """Load ``model`` and ``data``, run the probes; returns ``(graph, dataset, ProbeReport)``.

    ``budget`` covers the whole call: the time spent loading the data and building the runner is taken
    off the suite's budget (``report.settings``: ``budget``, ``setup_s``, ``suite_budget``).
    ``plan``: a recorded ``report.settings["plan"]`` to replay (same steps, same evaluation size).
    ``clock_start``: the ``clock()`` value the budget counts from, when it started before this call
    (the command line passes its own start, so imports count too).
    ``clock``: what the budget and the plan read (seconds; ``time.perf_counter`` by default). A test
    passes a fake clock so that what it checks does not depend on the machine's speed; ``clock_start``
    must then come from the same clock."""
    started = clock() if clock_start is None else clock_start
    from ..errors import need

    for module in ("PIL", "sklearn"):
        need(module, "the probes")
    from ..adapters import load_graph
    from .data import load_dataset
    from .runner import make_runner

    graph = load_graph(model, input_shape=input_shape, training=training)
    inp = graph.input_shapes()[0] if graph.inputs else None
    if inp is None or len(inp) != 4 or not inp[1] or not inp[2]:
        raise InputError(graph.source_path or graph.name, "probes need a model with one fixed-size image input "
                         f"(got {graph.display_shape(inp) if inp else 'none'})")
    if inp[3] not in (1, 3):
        raise InputError(graph.source_path or graph.name, "probes feed images with 1 (grey) or 3 (RGB) channels; "
                         f"the model's input is {graph.display_shape(inp)}")
    say = progress or (lambda name, msg: None)
    say("data", f"loading {data}")
    try:
        dataset = load_dataset(data, image_size=(inp[1], inp[2]), channels=inp[3], seed=seed,
                               max_images=max_images)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        problem = str(exc) or type(exc).__name__
        prefix = f"{data}: "
        if problem.startswith(prefix):
            problem = problem[len(prefix):]
        elif not isinstance(exc, InputError):
            problem = f"cannot read it as a folder of class sub-folders or an .npz ({problem})"
        raise InputError(str(data), problem) from None
    present = len(set(dataset.y_train.tolist()) | set(dataset.y_val.tolist()))
    if present < 2:
        raise InputError(str(data), f"{present} class with images; a classifier needs at least 2 "
                         "(one sub-folder per class)")
    unknown = [p for p in probes if p not in ALL_PROBES]
    if unknown:
        from ..errors import ConfigError

        raise ConfigError(f"unknown probe(s) {', '.join(unknown)} (known: {', '.join(ALL_PROBES)})")
    if plan is not None:
        try:
            check_plan(plan)
        except ValueError as exc:
            from ..errors import ConfigError

            raise ConfigError(f"plan: {exc}") from None
    settings = ProbeSettings(budget=budget, seed=seed, probes=tuple(probes), lr=lr, plan=plan)
    key = _fingerprint(graph, model, dataset, settings, loss)
    path = cache_dir() / f"{key}.json"
    if use_cache and path.is_file():
        cached = _from_cache(path)
        if cached is not None:
            say("cache", f"results from {path}")
            cached.data["checks"] = dataset.checks
            return graph, dataset, cached
    setup = clock() - started
    if setup < budget:
        runner = make_runner(graph, _live_model(graph, model), loss=loss, seed=seed, build=_builder(graph, model))
        setup = clock() - started
    if setup >= budget:
        why = (f"skipped: loading the data and the model took {setup:.1f} s, the whole --budget of "
               f"{budget:g} s; nothing was left for the probes")
        say("suite", why)
        report = ProbeReport(settings={"budget": budget, "seed": seed, "probes": list(probes),
                                       "setup_s": round(setup, 2), "suite_budget": 0.0, "budget_note": why},
                             data=dataset.summary() if hasattr(dataset, "summary") else {})
        for name in probes:
            report.results[name] = ProbeResult(name, status="skipped", notes=[why])
        report.data["checks"] = dataset.checks
        return graph, dataset, report
    from dataclasses import replace

    report = run_suite(runner, dataset, graph, replace(settings, budget=budget - setup), progress=progress,
                       clock=clock)
    report.settings.update(budget=budget, setup_s=round(setup, 2), suite_budget=round(budget - setup, 2),
                           budget_note=f"loading the data and the model took {setup:.1f} s of the {budget:g} s "
                                       f"budget; the probes had the other {budget - setup:.1f} s")
    report.data["checks"] = dataset.checks
    if use_cache and not report.interrupted:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(report.to_dict()))
            tmp.replace(path)
        except OSError:
            pass  # a read-only home must not fail the run
    return graph, dataset, report


def compare(*args, **kwargs):
    """:func:`modellint.probes.compare.compare` (here beside :func:`run_probes`, so the command line reaches
    both through this module)."""
    from .compare import compare as run

    return run(*args, **kwargs)


def rule_facts(dataset, source: str):
    """The dataset facts the static rules read after a probe run, counted from the loaded images. Image
    size and channels stay unset: the data checks (ML006, ML007) compared every image with the input."""
    from ..dataset import facts_from_values

    return facts_from_values(len(dataset.y_train) + len(dataset.y_val), len(dataset.class_names), source=source)


def probe_inputs(report: ProbeReport) -> dict:
    """What probe rules read: each probe's result as a dict, plus the data checks."""
    out = {name: r.to_dict() for name, r in report.results.items()}
    out["data_checks"] = {"status": "ok", "metrics": {"checks": report.data.get("checks", [])}}
    return out
