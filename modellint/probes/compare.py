"""Comparing two models on the same data: ``modellint probe MODEL --compare OTHER``.

Both models train from fresh weights on the same class-stratified training subset, with the same
seeds (the seed decides the weights and the order of the batches), for the same number of steps, and
are evaluated on the same validation images. The difference in validation accuracy and loss is
reported per seed and as a mean with its spread across seeds (:func:`compare_values`).

Plan for a verdict (:func:`plan_comparison`): the time left is shared among ``seeds x models`` runs
(:data:`SEEDS`, fewer only when they do not fit, never fewer than :data:`MIN_SEEDS`), and the training
subset is sized so that each run sees it at least once (``steps x batch >= subset``): a short run on
every image is half an epoch and tells nothing; a full epoch on a smaller subset does. When not even
:data:`MIN_STEPS` steps of :data:`MIN_SEEDS` seeds fit, the comparison says so before it trains.
The step costs come from a few timed steps of each model on this machine (the ``clock`` the caller
passes; tests pass a fake one), or from a recorded plan (``plan=``), which replays without timing.

Runs are independent jobs (:class:`RunJob`: paths and settings, never live objects), handed to an
executor (:mod:`.executors`): in-process by default, or Ray. :func:`run_job` is what every executor
runs; in one process it keeps the loaded data and the built runners between jobs (a runner's
``reset`` re-initialises everything a run depends on, so a job's numbers do not depend on which jobs
ran before it in that process).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

from .data import stratified_subset

#: seeds per model when the budget allows; fewer (down to MIN_SEEDS) only when they do not fit
SEEDS = 3
MIN_SEEDS = 2
#: fewest training steps of one run for a verdict
MIN_STEPS = 30
#: most steps of one run (the budget binds long before on a CPU)
MAX_STEPS = 2000
#: each run sees its training subset at least this many times
MIN_EPOCHS = 1.0
#: a subset keeps at least this many images per class (else the comparison has no verdict)
MIN_PER_CLASS = 4
#: validation images of the final evaluation of every run
MAX_EVAL = 1000
#: validation points during a run (on at most VAL_SUBSET images), for the curves
VAL_POINTS = 4
VAL_SUBSET = 128
#: timed steps per model that estimate the step cost (after one untimed step that builds the graph)
TIMING_STEPS = 3
#: share of the budget left after loading that the comparison plans for when the probe suite runs too
COMPARE_SHARE = 0.6
#: plans aim this share of their time before its end
MARGIN = 0.05
ROLES = ("model", "other")


# -- jobs ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """How to load one model for training: a file path or a code target, with the reading options."""

    model: str
    input_shape: Optional[tuple] = None
    loss: Optional[str] = None  # a stated loss (``--loss``), else the model's own
    from_logits: Optional[bool] = None


@dataclass(frozen=True)
class RunJob:
    """One training run of a comparison: picklable, so any executor can run it anywhere the model file
    (or code target) and the data can be read."""

    role: str  # "model" | "other"
    source: Source
    data: str
    seed: int  # the training seed: weights and batch order
    steps: int
    subset: int  # training images (class-stratified, fixed by data_seed); 0: the whole training split
    data_seed: int = 0  # the train/validation split and the subset
    eval_images: int = MAX_EVAL
    batch_size: int = 32
    lr: Optional[float] = None
    max_images: Optional[int] = None
    val_points: int = VAL_POINTS


_DATA: dict = {}
_RUNNERS: dict = {}


def clear_caches() -> None:
    """Forget the data and runners kept between jobs in this process."""
    _DATA.clear()
    _RUNNERS.clear()


def _graph_and_runner(source: Source):
    key = source
    if key not in _RUNNERS:
        from ..adapters import load_graph
        from .api import _builder, _live_model
        from .runner import make_runner

        training = None
        if source.loss:
            from ..losses import stated_training

            training = stated_training(source.loss, source.from_logits)
        graph = load_graph(source.model, input_shape=source.input_shape, training=training)
        runner = make_runner(graph, _live_model(graph, source.model), build=_builder(graph, source.model))
        _RUNNERS[key] = (graph, runner)
    return _RUNNERS[key]


def input_of(graph) -> tuple:
    """(height, width, channels) of a model's image input (probes need one fixed-size image input)."""
    from ..errors import InputError

    inp = graph.input_shapes()[0] if graph.inputs else None
    if inp is None or len(inp) != 4 or not inp[1] or not inp[2] or inp[3] not in (1, 3):
        raise InputError(graph.source_path or graph.name, "comparisons train models with one fixed-size image "
                         f"input of 1 or 3 channels (got {graph.display_shape(inp) if inp else 'none'})")
    return int(inp[1]), int(inp[2]), int(inp[3])


def _dataset(data: str, size: tuple, seed: int, max_images: Optional[int]):
    key = (str(data), size, seed, max_images)
    if key not in _DATA:
        from .data import load_dataset

        _DATA[key] = load_dataset(data, image_size=size[:2], channels=size[2], seed=seed, max_images=max_images)
    return _DATA[key]


def val_rows(y: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` validation rows (the split is already shuffled and stratified)."""
    return np.arange(min(len(y), n))


def run_job(job: RunJob) -> dict:
    """Train one run of a comparison and evaluate it: a plain dict of numbers and curves."""
    from .suite import NORM_BATCHES, ProbeSettings, _norm_batches, _refresh_norms, _train

    graph, runner = _graph_and_runner(job.source)
    data = _dataset(job.data, input_of(graph), job.data_seed, job.max_images)
    idx = stratified_subset(data.y_train, job.subset, job.data_seed)
    va = val_rows(data.y_val, job.eval_images)
    xv, yv = data.x_val[va], data.y_val[va]
    xs, ys = xv[:VAL_SUBSET], yv[:VAL_SUBSET]
    settings = ProbeSettings(seed=job.seed, batch_size=job.batch_size, lr=job.lr)
    lr = job.lr or (graph.training.learning_rate if graph.training and graph.training.learning_rate else 1e-3)
    runner.reset(job.seed, lr)
    norm = _norm_batches(data.x_train, settings, idx) if getattr(runner, "has_norm_stats", False) else []
    points = sorted({int(round(job.steps * k / (job.val_points + 1))) - 1 for k in range(1, job.val_points + 1)}
                    - {-1, job.steps - 1})
    curve = {"val_step": [], "val_loss": [], "val_accuracy": []}

    def validate(i):
        def run():
            _refresh_norms(runner, norm)
            loss, acc = runner.evaluate(xs, ys)
            curve["val_step"].append(i + 1)
            curve["val_loss"].append(float(loss))
            curve["val_accuracy"].append(float(acc))
        return run

    losses, _ = _train(runner, data.x_train, data.y_train, job.steps, settings, None, idx=idx,
                       after={i: validate(i) for i in points})
    _refresh_norms(runner, norm)
    loss, acc = runner.evaluate(xv, yv)
    curve["val_step"].append(len(losses))
    curve["val_loss"].append(float(loss))
    curve["val_accuracy"].append(float(acc))
    finite = all(math.isfinite(v) for v in losses)
    return {"role": job.role, "seed": job.seed, "steps": len(losses), "planned_steps": job.steps,
            "train_images": int(len(idx)), "epochs": round(len(losses) * job.batch_size / max(len(idx), 1), 3),
            "val_images": int(len(yv)), "lr": lr, "val_loss": float(loss), "val_accuracy": float(acc),
            "final_train_loss": float(np.mean(losses[-5:])) if losses else None, "nonfinite": not finite,
            "norm_batches": NORM_BATCHES if getattr(runner, "has_norm_stats", False) else 0,
            "curves": {"loss": [float(v) for v in losses], **curve}}


# -- statistics ---------------------------------------------------------------------------------

def _std(v) -> float:
    """Sample standard deviation (n - 1); 0 for fewer than two values."""
    return float(np.std(v, ddof=1)) if len(v) >= 2 else 0.0


def compare_values(a, b, *, higher_is_better: bool = True) -> dict:
    """Paired per-seed values of the model (``a``) and the other (``b``): means, spreads, the mean
    difference ``b - a`` and its spread (sample standard deviation of the per-seed differences), how many
    seeds each won, a paired t-test's two-sided p-value, and the verdict:

    * ``winner`` "other" / "model" when the mean difference is larger than its spread, else None;
    * ``sure``: the winner won in every seed and p < 0.05 (else the win is only "likely");
    * fewer than two seeds give no spread and no verdict."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = b - a
    n = len(d)
    mean, spread = (float(np.mean(d)) if n else 0.0), _std(d)
    better = d > 0 if higher_is_better else d < 0
    worse = d < 0 if higher_is_better else d > 0
    p = None
    if n >= 2:
        if spread > 0:
            from scipy import stats

            t = mean / (spread / math.sqrt(n))
            p = float(2 * stats.t.sf(abs(t), n - 1))
        else:
            p = 1.0 if mean == 0 else 0.0
    winner = None
    if n >= 2 and abs(mean) > spread:
        winner = "other" if (mean > 0) == higher_is_better else "model"
    won = int(better.sum()) if winner == "other" else int(worse.sum()) if winner == "model" else 0
    return {"seeds": n, "model": [float(v) for v in a], "other": [float(v) for v in b],
            "model_mean": float(np.mean(a)) if n else None, "other_mean": float(np.mean(b)) if n else None,
            "model_spread": _std(a), "other_spread": _std(b), "diff": mean, "diff_spread": spread,
            "p_value": p, "winner": winner, "won_seeds": won,
            "sure": bool(winner is not None and won == n and p is not None and p < 0.05)}


def _pct(v) -> str:
    return f"{100 * v:.1f} %"


def verdict_text(acc: dict, names: dict, steps: int) -> str:
    """One sentence: which model wins and how sure, or "no difference measured"."""
    n = acc["seeds"]
    if n < 2:
        return f"no verdict: {n} seed{'s' if n != 1 else ''} give no spread to judge a difference by"
    a, b = acc["model_mean"], acc["other_mean"]
    change = (f"validation accuracy {_pct(a)} ({names['model']}) vs {_pct(b)} ({names['other']}), "
              f"difference {100 * acc['diff']:+.1f} ± {100 * acc['diff_spread']:.1f} points over {n} seeds "
              f"after {steps} steps")
    if acc["winner"] is None:
        return f"no difference measured: {change}; the seed-to-seed spread covers the difference"
    who = names[acc["winner"]]
    how = "sure" if acc["sure"] else "likely, not sure"
    p = f", paired t-test p = {acc['p_value']:.2g}" if acc["p_value"] is not None else ""
    return f"{who} is better ({how}: better in {acc['won_seeds']} of {n} seeds{p}): {change}"


def measured_effect(acc: dict, steps: int, *, before: str = "model", after: str = "other") -> str:
    """"validation accuracy 9 % → 41 % (3 seeds, ± 3 %) after 300 steps" ("no difference measured" added
    when the spread covers it)."""
    a, b = acc[f"{before}_mean"], acc[f"{after}_mean"]
    text = (f"validation accuracy {100 * a:.0f} % → {100 * b:.0f} % ({acc['seeds']} seeds, "
            f"± {100 * acc['diff_spread']:.0f} %) after {steps} steps")
    return text if acc["winner"] is not None else text + ": no difference measured"


# -- the plan -----------------------------------------------------------------------------------

@dataclass
class Costs:
    """Seconds of one model's calls on this machine: a training step (at the batch size), a reset, an
    evaluated image, a BatchNorm refresh (0 without BatchNorm)."""

    step: float
    reset: float = 0.0
    eval_image: float = 0.0
    norm: float = 0.0

    def run(self, steps: int, n_eval: int, points: int = VAL_POINTS) -> float:
        """One run of ``steps`` steps with its validation points and final evaluation."""
        return (self.reset + steps * self.step + (points * min(VAL_SUBSET, n_eval) + n_eval) * self.eval_image
                + (points + 1) * self.norm)


def _grid(steps: int) -> int:
    """Steps rounded down to the suite's step grid (so that timing jitter rarely changes the plan)."""
    from .suite import STEP_GRID

    if steps >= STEP_GRID[-1]:
        return steps // 500 * 500
    return max((g for g in STEP_GRID if g <= steps), default=steps)


def plan_comparison(seconds: float, costs: dict, *, n_train: int, n_val: int, classes: int,
                    batch_size: int = 32, seeds: int = SEEDS, max_steps: int = MAX_STEPS) -> dict:
    """The plan that fits ``seconds`` (``costs``: role -> :class:`Costs`): ``seeds``, ``steps`` per run,
    ``subset`` (training images: at most ``steps x batch_size``, so each run makes at least one pass over
    them) and ``eval_images``; or ``{"verdict": False, "why": ...}`` when no verdict fits, decided before
    any training. Seeds are dropped (to MIN_SEEDS) only when MIN_STEPS steps of every seed do not fit."""
    n_eval = min(n_val, MAX_EVAL)
    bs = max(1, min(batch_size, n_train))
    if n_val < classes:
        return {"verdict": False, "why": f"the validation split has {n_val} images for {classes} classes"}
    # fewer seeds only when MIN_STEPS do not fit; before that, the validation points of the curves go
    for k, points in [(k, p) for k in range(max(seeds, MIN_SEEDS), MIN_SEEDS - 1, -1) for p in (VAL_POINTS, 0)]:
        fixed = k * sum(c.run(0, n_eval, points) for c in costs.values())
        per_step = k * sum(c.step for c in costs.values())
        fit = int((seconds - fixed) / per_step) if per_step > 0 else max_steps
        steps = min(_grid(fit) if fit >= MIN_STEPS else fit, max_steps)
        if steps >= MIN_STEPS:
            break
    else:
        need = MIN_SEEDS * sum(c.run(MIN_STEPS, n_eval, 0) for c in costs.values())
        return {"verdict": False, "seeds": MIN_SEEDS, "steps": max(fit, 0),
                "why": (f"no verdict possible in this budget: {max(seconds, 0):.0f} s hold {max(fit, 0)} steps per "
                        f"run for {MIN_SEEDS} seeds of both models, fewer than {MIN_STEPS}; about {need:.0f} s "
                        "would do (a larger --budget, or a GPU)")}
    subset = min(n_train, int(steps * bs / MIN_EPOCHS))
    if subset < n_train and subset < classes * MIN_PER_CLASS:
        return {"verdict": False, "why": f"{steps} steps make one pass over {subset} images, fewer than "
                                         f"{MIN_PER_CLASS} per class"}
    total = k * sum(c.run(steps, n_eval, points) for c in costs.values())
    return {"verdict": True, "seeds": k, "steps": int(steps), "val_points": points, "subset": int(subset), "train_images": int(n_train),
            "eval_images": int(n_eval), "batch_size": int(bs), "epochs": round(steps * bs / subset, 2),
            "planned_s": round(total, 2)}


# -- the comparison ------------------------------------------------------------------------------

@dataclass
class Comparison:
    """What ``--compare`` measured (``to_dict`` is the JSON report's ``comparison``)."""

    names: dict  # role -> display name
    sources: dict  # role -> path or code target
    status: str = "ok"  # ok | no_verdict | failed
    why: str = ""  # for no_verdict / failed
    plan: dict = field(default_factory=dict)
    runs: list = field(default_factory=list)
    accuracy: dict = field(default_factory=dict)
    loss: dict = field(default_factory=dict)
    verdict: str = ""
    effect: str = ""  # "validation accuracy 9 % → 41 % (3 seeds, ± 3 %) after 300 steps"
    executor: str = "inprocess"
    seconds: float = 0.0
    notes: list = field(default_factory=list)
    fixed_codes: list = field(default_factory=list)  # findings of MODEL that OTHER does not have

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items()}

    def steps(self) -> int:
        return int(self.plan.get("steps") or 0)


def _measure_costs(source: Source, data, graph, runner, batch_size: int, clock) -> Costs:
    """A few timed calls of one model: a reset, a graph-building step, TIMING_STEPS timed steps, a
    BatchNorm refresh and an evaluation (each call of a kind traced once before it is timed)."""
    from .suite import ProbeSettings, _Batches, _norm_batches

    batches = _Batches(data.x_train, data.y_train, batch_size, 0)
    t = clock()
    runner.reset(0, 1e-3)
    reset = clock() - t
    runner.step(*batches.next())
    t = clock()
    for _ in range(TIMING_STEPS):
        runner.step(*batches.next())
    step = (clock() - t) / TIMING_STEPS
    norm = 0.0
    if getattr(runner, "has_norm_stats", False):
        nb = _norm_batches(data.x_train, ProbeSettings(batch_size=batch_size))
        runner.refresh_norm_stats(nb)
        t = clock()
        runner.refresh_norm_stats(nb)
        norm = clock() - t
    n = min(len(data.y_val), 64)
    per = 0.0
    if n:
        runner.evaluate(data.x_val[:n], data.y_val[:n])
        t = clock()
        runner.evaluate(data.x_val[:n], data.y_val[:n])
        per = (clock() - t) / n
    return Costs(step=step, reset=reset, eval_image=per, norm=norm)


def display_name(source: str) -> str:
    from pathlib import Path

    return source if ":" in str(source) and not Path(str(source)).exists() else Path(str(source)).name


def compare(model: Source, other: Source, data: str, *, budget: float = 120.0, seed: int = 0,
            seeds: int = SEEDS, batch_size: int = 32, lr: Optional[float] = None,
            max_images: Optional[int] = None, executor=None, plan: Optional[dict] = None,
            progress: Optional[Callable[[str, str], None]] = None,
            clock: Callable[[], float] = time.perf_counter, clock_start: Optional[float] = None) -> Comparison:
    """Train ``model`` and ``other`` on ``data`` with the same split, subset, seeds and steps; see the
    module docstring. ``budget`` (seconds of ``clock`` from ``clock_start``, default now) covers loading,
    timing and the runs when they run one after another. ``plan``: a recorded ``Comparison.plan`` (its
    ``seeds``, ``steps``, ``subset``, ``eval_images``) to replay without timing. Seeds are ``seed``,
    ``seed + 1``, ...; the split and the subset are fixed by ``seed``."""
    from .executors import get_executor

    started = clock() if clock_start is None else clock_start
    say = progress or (lambda name, msg: None)
    executor = get_executor(executor)
    sources = {"model": model, "other": other}
    result = Comparison(names={r: display_name(s.model) for r, s in sources.items()},
                        sources={r: s.model for r, s in sources.items()}, executor=executor.name)
    if result.names["model"] == result.names["other"]:
        result.names = {r: f"{result.names[r]} ({r})" for r in ROLES}
    loaded = {}
    for role, src in sources.items():
        graph, runner = _graph_and_runner(src)
        loaded[role] = (graph, runner, _dataset(data, input_of(graph), seed, max_images))
    ds = loaded["model"][2]
    classes = len(ds.class_names)
    if len(loaded["other"][2].class_names) != classes:
        from ..errors import InputError

        raise InputError(other.model, "the two models read the data into different classes")
    if plan is None:
        say("compare", "timing a few steps of each model")
        costs = {role: _measure_costs(sources[role], d, g, r, batch_size, clock) for role, (g, r, d) in loaded.items()}
        left = budget - (clock() - started)
        decided = plan_comparison(left * (1 - MARGIN), costs, n_train=len(ds.y_train), n_val=len(ds.y_val),
                                  classes=classes, batch_size=batch_size, seeds=seeds)
        decided["costs"] = {role: {k: round(v, 5) for k, v in asdict(c).items()} for role, c in costs.items()}
        decided["budget_left_s"] = round(left, 2)
    else:
        decided = {"verdict": True, "replayed": True, **{k: plan[k] for k in
                                                          ("seeds", "steps", "subset", "eval_images", "val_points")
                                                          if k in plan}}
        decided.setdefault("batch_size", batch_size)
        decided["train_images"] = int(len(ds.y_train))
    result.plan = decided
    if not decided.get("verdict"):
        result.status, result.why = "no_verdict", decided["why"]
        say("compare", result.why)
        result.seconds = clock() - started
        return result
    subset = decided["subset"] if decided["subset"] < len(ds.y_train) else 0
    decided["subset_note"] = (
        f"each run trains {decided['steps']} steps on a class-stratified subset of {decided['subset']:,} of the "
        f"{len(ds.y_train):,} training images ({decided['steps'] * decided['batch_size'] / decided['subset']:.2g} "
        "passes)" if subset else
        f"each run trains {decided['steps']} steps on all {len(ds.y_train):,} training images "
        f"({decided['steps'] * decided['batch_size'] / max(len(ds.y_train), 1):.2g} passes)")
    jobs = [RunJob(role=role, source=sources[role], data=str(data), seed=seed + k, steps=decided["steps"],
                   subset=subset, data_seed=seed, eval_images=decided["eval_images"], batch_size=decided["batch_size"],
                   lr=lr, max_images=max_images, val_points=decided.get("val_points", VAL_POINTS))
            for k in range(decided["seeds"]) for role in ROLES]
    say("compare", f"{len(jobs)} runs ({decided['seeds']} seeds x 2 models, {decided['steps']} steps each) "
                   f"on {executor.name}; {decided['subset_note']}")
    try:
        runs = executor.map(run_job, jobs)
    except KeyboardInterrupt:
        raise
    result.runs = runs
    by = {role: sorted((r for r in runs if r["role"] == role), key=lambda r: r["seed"]) for role in ROLES}
    result.accuracy = compare_values([r["val_accuracy"] for r in by["model"]], [r["val_accuracy"] for r in by["other"]])
    result.loss = compare_values([r["val_loss"] for r in by["model"]], [r["val_loss"] for r in by["other"]],
                                 higher_is_better=False)
    steps = decided["steps"]
    result.verdict = verdict_text(result.accuracy, result.names, steps)
    result.effect = measured_effect(result.accuracy, steps)
    if any(r["nonfinite"] for r in runs):
        result.notes.append("a run's training loss became NaN or infinite: " + ", ".join(
            f"{result.names[r['role']]} seed {r['seed']}" for r in runs if r["nonfinite"]))
    result.seconds = clock() - started
    say("compare", result.verdict)
    return result


def apply_measured_effect(report, comparison: Comparison, other_report) -> list:
    """Findings of ``report`` (MODEL) that ``other_report`` (OTHER, the static rules run on it with the same
    dataset facts) does not have were fixed in OTHER: their evidence gets ``measured_effect`` (what the comparison measured replaces
    the rule's expected effect). Returns their codes."""
    if comparison.status != "ok" or not comparison.effect:
        return []
    theirs = {f.code for f in other_report.findings}
    ran = set(other_report.rules_run)  # a rule skipped on OTHER (facts it lacks) says nothing about it
    fixed = []
    for f in report.findings:
        if f.code in ran and f.code not in theirs and not f.code.startswith("ML0"):  # static findings only
            f.evidence["measured_effect"] = comparison.effect
            fixed.append(f.code)
    comparison.fixed_codes = sorted(set(fixed))
    return comparison.fixed_codes
