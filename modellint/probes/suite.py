"""The probe suite: short, measured experiments on the user's data.

Each probe is a function of a :class:`~modellint.probes.runner.Runner`, the data
and a :class:`Slot` (its planned step count, evaluation size and time limit),
and returns a :class:`ProbeResult` of plain numbers and curves. Probes never
decide what is wrong: the probe rules (:mod:`modellint.rules.probes`) read the
results and write the findings, so a probe finding is documented, selected and
reported like any other rule's.

The canon (see shared/reference/figures.md): loss at init ≈ ln(C); an
input-independent baseline; overfit one small batch; a learning-rate range test
(exponential sweep, stop when the smoothed loss exceeds 4x the best, suggest the
steepest descent); gradient norms and update/weight ratios per layer; dead and
saturated units; a data-scaling learning curve; a linear baseline.

Budget
------
The whole suite, warm-up included, runs within ``settings.budget`` seconds:

1. The linear baseline (scikit-learn, no runner) runs first, so its cost is
   known before anything else is planned (results are reported in the selected
   order all the same).
2. Warm-up: a reset, a first step (graph building: its extra cost is counted
   again for train_dynamics' first measuring step), two timed steps, a step at
   overfit_batch's batch size and two evaluations give the first estimates of
   what a step, a reset and an evaluated image cost. Every later call of the
   runner refines them (a moving average, so a machine that gets busier is
   followed).
3. The number of validation images every evaluation uses (``eval_images``, at
   most 512) is chosen so that evaluations take about :data:`EVAL_SHARE` of the
   time left.
4. Before each probe the plan is redone from the time actually left: each
   remaining probe's fixed costs (resets, evaluations, activation statistics)
   are subtracted, every probe gets its minimum step count, and what is left is
   shared in the proportions of :data:`STEP_SHARE`. A probe that does not fit
   (the least important first, see :data:`KEEP_ORDER`) is skipped with a note;
   an overrun of one probe shrinks the later ones.
5. Within a probe, training loops stop at the probe's time limit (its plan plus
   :data:`SLACK`, never past what later probes need), with a note; a probe with
   several loops shares what is left among them; the learning-rate sweep, when
   behind, covers the rest of its range in fewer steps instead of stopping. So
   the suite ends within the budget up to about the last step's length. Plans
   aim :data:`MARGIN` before the end of the budget.

BatchNorm: before every evaluation that follows training (and before the activation statistics) the
running statistics are re-estimated from NORM_BATCHES training batches
(:meth:`~.runner.Runner.refresh_norm_stats`), a fixed cost per evaluation that the plan counts: after a
few dozen steps the moving averages have barely moved, and inference mode would measure them rather than
the trained weights. overfit_batch is judged by the training-mode loss on its batch.

train_dynamics records the validation confusion matrix (``metrics["confusion"]``, rows the true class)
and a validation curve (``curves["val_step"]``, ``val_loss``, ``val_accuracy``: VAL_POINTS points on at
most VAL_SUBSET images, then the full evaluation). data_scaling decides one step count for its three rows
from the time left before the first (skipped with a note when the minimum does not fit), so the rows are
comparable.

The learning-rate range test (lr_range) spends its steps on a sweep and, when its steps allow and its
reading is far from the configured rate, on a confirmation: two short runs from the same fresh weights
on the same batches, one at the configured rate and one at the suggested rate (LR_CONFIRM_SHARE of the
steps each, at least LR_CONFIRM_MIN). The sweep covers the optimizer's known working range
(:data:`WORKING_LR`) widened by a decade each side, and more of 1e-7..10 as its steps allow at
LR_PER_DECADE steps a decade. It suggests a rate only from a readable sweep (:func:`lr_unreadable`: at
least LR_MIN_SWEEP steps, LR_PER_DECADE a decade, a smoothed loss that fell LR_MIN_DROP below its
start and LR_MIN_FALL times the raw loss's step-to-step noise, the steepest descent past the smoothing
window); the raw reading is kept as ``steepest_lr`` either way. ML024 documents the thresholds.

Reproducibility: every experiment is seeded (same seed and same step counts ->
same numbers), but the step counts and ``eval_images`` come from timings on
this machine, so two runs can differ in them. The plan used is recorded in
``report.settings["plan"]`` (``eval_images``, ``steps`` per probe, ``cuts``:
where the clock stopped a loop early, the measured costs);
``ProbeSettings(plan=report.settings["plan"])`` replays it without the clock:
the same probes, steps and cuts, so the same numbers, however long each step
takes this time. Ctrl-C stops the suite, keeps the
finished probes' results and marks the one running as ``interrupted``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

ALL_PROBES = ("init_loss", "overfit_batch", "lr_range", "train_dynamics", "zero_input", "data_scaling",
              "linear_baseline")

#: Shares of the training-step time (what is left of the budget after the warm-up and every probe's
#: fixed costs). init_loss and linear_baseline take no steps: they cost only their fixed work.
STEP_SHARE = {"overfit_batch": 0.14, "lr_range": 0.14, "train_dynamics": 0.22, "zero_input": 0.12,
              "data_scaling": 0.30}
#: Fewest steps a probe is run with (else it is skipped): zero_input 2 x 5, data_scaling 3 x 5.
MIN_STEPS = {"init_loss": 0, "linear_baseline": 0, "overfit_batch": 10, "lr_range": 20, "train_dynamics": 10,
             "zero_input": 10, "data_scaling": 15}
#: Most steps per probe: on a CPU the budget binds long before; on a GPU (steps of ~10 ms for the
#: seed) the larger cap lets a probe train long enough to mean something and still ends early.
MAX_STEPS = 400
MAX_STEPS_ACCELERATOR = 2000
#: Step counts a budget-bound probe is rounded down to (about 1.25x apart).
STEP_GRID = (10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500, 600, 800, 1000,
             1200, 1500, 2000)
#: When the budget cannot hold every selected probe, probes are dropped from the end of this list.
KEEP_ORDER = ("init_loss", "linear_baseline", "overfit_batch", "train_dynamics", "lr_range", "zero_input",
              "data_scaling")
#: Share of the time left after the warm-up that evaluations may take (decides ``eval_images``).
EVAL_SHARE = 0.2
MAX_EVAL = 512
MIN_EVAL = 64
#: A probe's training loops may run this much over its planned time before they stop early.
SLACK = 0.15
#: Plans aim this share of the budget before its end, so the last probe is not routinely cut short by
#: timing noise; its training may still run into it.
MARGIN = 0.03
WARMUP_STEPS = 2
#: Training batches whose statistics re-estimate BatchNorm's running statistics before an evaluation
#: that follows training (see :meth:`~.runner.Runner.refresh_norm_stats`).
NORM_BATCHES = 4
#: train_dynamics measures validation loss/accuracy at this many points during training (on at most
#: VAL_SUBSET images), then on the full evaluation set at its end.
VAL_POINTS = 4
VAL_SUBSET = 128
#: The learning-rate range test (the reasons are in ML024's docstring, modellint.rules.probes) suggests a
#: rate only from a sweep of at least LR_MIN_SWEEP steps and LR_PER_DECADE steps per decade of rate, whose
#: best smoothed loss is at least LR_MIN_DROP below the first and LR_MIN_FALL times the raw loss's
#: step-to-step noise below it.
LR_MIN_SWEEP = 30
LR_PER_DECADE = 10
LR_MIN_DROP = 0.10
LR_MIN_FALL = 3.0
#: The widest sweep (fastai's lr_find); a sweep with fewer than LR_PER_DECADE steps per decade of it covers
#: the optimizer's working range widened by a decade each side, and more as its steps allow.
LR_FULL = (1e-7, 10.0)
#: Known working learning rates by optimizer family: Adam & co 1e-4..3e-3 (Kingma & Ba's default 1e-3;
#: 3e-4 is the usual "safe" Adam rate), SGD with momentum 1e-3..0.3 (0.1 at batch 256, scaled linearly to
#: 0.0125 at batch 32: Goyal et al. 2017). An optimizer not listed: the union.
WORKING_LR = {"adaptive": (1e-4, 3e-3), "sgd": (1e-3, 0.3), "other": (1e-4, 0.3)}
ADAPTIVE = ("adam", "adamw", "nadam", "adamax", "rmsprop", "lion", "adafactor", "lamb", "adagrad", "adadelta")
#: A suggestion this far (either way) from the configured rate is checked by training at both rates.
LR_FACTOR = 10.0
#: Each confirmation run takes this share of lr_range's steps, and is not run below LR_CONFIRM_MIN steps
#: (the sweep then gets every step).
LR_CONFIRM_SHARE = 0.2
LR_CONFIRM_MIN = 20


#: A verdict about learning (ML022: the network against zeroed inputs, ML029: against its own training
#: data, ML030: against a linear model) needs a run of at least VERDICT_STEPS steps that saw every image
#: it trains on at least VERDICT_EPOCHS times: Adam moves each weight by about its learning rate per step
#: whatever the gradient, so a few dozen steps tell a network that cannot learn from one that has not yet,
#: and half an epoch tells nothing against a logistic regression fit to convergence. Shorter runs give
#: inconclusive (info) findings; the plan says so before the budget is spent (:func:`_verdict_plan`).
VERDICT_STEPS = 100
VERDICT_EPOCHS = 1.0
#: ...and, for ML030 (a network against a logistic regression fit to convergence), a training loss that
#: has levelled off: its mean over the last quarter of train_dynamics' steps at most this share below its
#: mean over the third quarter. Measured on the 13-class synthetic data at 128 px, 200 steps: the seed
#: (no non-linearity) 2.59 -> 2.56 (1.4 %), its fix 2.21 -> 1.98 (10.7 %, and 24 % validation accuracy
#: after 120 steps against the linear model's 32 %, 43 % after 200).
STILL_LEARNING = 0.05


#: A replayed plan may ask for at most this many steps per probe (a recorded plan has at most
#: MAX_STEPS_ACCELERATOR; a hand-edited one is the user's choice, within reason).
REPLAY_MAX_STEPS = 100_000


def _count(v, hi: int, lo: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def check_plan(plan) -> dict:
    """``plan`` (a recorded ``report.settings["plan"]``) if it can be replayed, else ValueError naming
    what is wrong: the probes it names exist, step counts and ``eval_images`` are whole numbers in
    range, ``skipped`` lists probes and ``cuts`` are ``[loop, step, value]`` triples per probe."""
    if not isinstance(plan, dict):
        raise ValueError("the plan is not a JSON object")
    steps = plan.get("steps")
    if not isinstance(steps, dict):
        raise ValueError("it records no step plan ('steps')")
    for name, n in steps.items():
        if name not in ALL_PROBES:
            raise ValueError(f"'steps' names an unknown probe {name!r}")
        if not _count(n, REPLAY_MAX_STEPS):
            raise ValueError(f"'steps' of {name}: {n!r} is not a whole number from 0 to {REPLAY_MAX_STEPS:,}")
    n_eval = plan.get("eval_images")
    if n_eval is not None and not _count(n_eval, 10**7, lo=1):
        raise ValueError(f"'eval_images': {n_eval!r} is not a positive whole number")
    skipped = plan.get("skipped") or []
    if not isinstance(skipped, list) or any(not isinstance(n, str) or n not in ALL_PROBES for n in skipped):
        raise ValueError("'skipped' is not a list of probe names")
    cuts = plan.get("cuts") or {}
    ok = isinstance(cuts, dict) and all(
        name in ALL_PROBES and isinstance(rows, list) and all(
            isinstance(c, list) and len(c) == 3 and _count(c[0], 100) and _count(c[1], REPLAY_MAX_STEPS) and
            (c[2] is True or _count(c[2], REPLAY_MAX_STEPS, lo=-1)) for c in rows)
        for name, rows in cuts.items())
    if not ok:
        raise ValueError("'cuts' is not a map of probe names to [loop, step, value] lists")
    return plan


@dataclass
class ProbeSettings:
    budget: float = 180.0  # seconds for the whole suite
    seed: int = 0
    probes: tuple = ALL_PROBES
    batch_size: int = 32
    lr: Optional[float] = None  # default: the model's configured rate, else 1e-3
    #: replay a recorded plan (``report.settings["plan"]``: ``eval_images``, ``steps`` per probe and the
    #: ``cuts`` the clock made) instead of planning from timings; no time limits then.
    plan: Optional[dict] = None


@dataclass
class ProbeResult:
    name: str
    status: str = "ok"  # ok | skipped | failed | interrupted
    seconds: float = 0.0
    metrics: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "seconds": round(self.seconds, 3),
                "metrics": self.metrics, "curves": self.curves, "notes": self.notes}


@dataclass
class ProbeReport:
    results: dict = field(default_factory=dict)  # name -> ProbeResult
    settings: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0
    step_seconds: Optional[float] = None

    def get(self, name: str) -> Optional[ProbeResult]:
        r = self.results.get(name)
        return r if r is not None and r.status == "ok" else None

    def to_dict(self) -> dict:
        return {"results": {k: v.to_dict() for k, v in self.results.items()}, "settings": self.settings,
                "data": self.data, "interrupted": self.interrupted, "seconds": round(self.seconds, 2),
                "step_seconds": self.step_seconds}


class _Batches:
    """Seeded mini-batches cycling over an array pair (or over the rows ``idx`` of it, without copying)."""

    def __init__(self, x, y, batch_size, seed, idx=None):
        self.x, self.y, self.idx = x, y, idx
        n = len(x) if idx is None else len(idx)
        self.n, self.bs = n, max(1, min(batch_size, n))
        self.rng = np.random.default_rng(seed)
        self.order, self.pos = self.rng.permutation(n), 0

    def next(self):
        if self.pos + self.bs > len(self.order):
            self.order, self.pos = self.rng.permutation(self.n), 0
        rows = self.order[self.pos:self.pos + self.bs]
        self.pos += self.bs
        if self.idx is not None:
            rows = self.idx[rows]
        return self.x[rows], self.y[rows]


# -- costs and plan ----------------------------------------------------------------

class _Costs:
    """Running estimates (seconds) of the runner's calls on this machine, updated by every call."""

    ALPHA = 0.3  # weight of the newest observation

    def __init__(self, batch_size: int):
        self.bs = batch_size
        self.step_s: dict = {}  # (batch, measure) -> seconds
        self.reset_s = 0.0
        self.eval_img: Optional[float] = None  # seconds per evaluated image
        self.act_img: Optional[float] = None
        self.has_norm = False  # the runner has BatchNorm statistics to refresh before evaluations
        self.norm_s: Optional[float] = None  # seconds of one refresh of NORM_BATCHES batches
        self.trace_s = 0.0  # what the first step of a kind costs more than the others (graph building)
        self.traced: set = set()  # the step kinds (measure False/True) already run once
        self.max_steps = MAX_STEPS

    def _mix(self, old, new):
        return new if old is None else (1 - self.ALPHA) * old + self.ALPHA * new

    def saw_step(self, n: int, measure: bool, dt: float):
        if measure not in self.traced:  # the first step of a kind builds the graph: not a step's cost
            self.traced.add(measure)
            return
        self.step_s[(n, measure)] = self._mix(self.step_s.get((n, measure)), dt)

    def trace(self, measure: bool) -> float:
        """What the first step of this kind costs more than a step, when it is still to come."""
        return 0.0 if measure in self.traced else self.trace_s

    def saw_reset(self, dt: float):
        self.reset_s = self._mix(self.reset_s or None, dt)

    def saw_eval(self, n: int, dt: float):
        if n >= 16:  # smaller calls are all fixed overhead
            self.eval_img = self._mix(self.eval_img, dt / n)

    def saw_act(self, n: int, dt: float):
        if n >= 16:
            self.act_img = self._mix(self.act_img, dt / n)

    def saw_norm(self, dt: float):
        self.norm_s = self._mix(self.norm_s, dt)

    def norm(self) -> float:
        """One BatchNorm refresh (0 without norm layers): NORM_BATCHES forward passes."""
        if not self.has_norm:
            return 0.0
        return self.norm_s if self.norm_s is not None else NORM_BATCHES * self.step() / 2

    def step(self, n: Optional[int] = None, measure: bool = False) -> float:
        n = n or self.bs
        if (n, measure) in self.step_s:
            return self.step_s[(n, measure)]
        plain = [(k, v) for (k, m), v in self.step_s.items() if not m]
        if not plain:
            return 0.0
        k, v = min(plain, key=lambda kv: abs(kv[0] - n))
        t = v * max(n / k, 0.5)  # compute grows with the batch; small batches keep a fixed part
        if measure:
            mp, pp = self.step_s.get((self.bs, True)), self.step_s.get((self.bs, False))
            t *= mp / pp if mp and pp else 1.3
        return t

    def reset(self) -> float:
        return self.reset_s

    def eval(self, n: int) -> float:
        if n <= 0:
            return 0.0
        per = self.eval_img if self.eval_img is not None else self.step() / self.bs / 3  # a forward pass
        return max(n, 16) * per

    def act(self, n: int) -> float:
        if n <= 0:
            return 0.0
        return n * (self.act_img if self.act_img is not None else 2 * (self.eval_img or 0.0))

    def to_dict(self) -> dict:
        r = lambda v: None if v is None else round(float(v), 5)  # noqa: E731
        return {"step_s": r(self.step_s.get((self.bs, False))), "measure_step_s": r(self.step_s.get((self.bs, True))),
                "reset_s": r(self.reset_s), "eval_image_s": r(self.eval_img), "activation_image_s": r(self.act_img),
                "norm_refresh_s": r(self.norm_s) if self.has_norm else None, "trace_s": r(self.trace_s)}


class _Timed:
    """The runner, with every call timed into :class:`_Costs`."""

    def __init__(self, runner, costs: _Costs, clock: Callable[[], float] = time.perf_counter):
        self._runner, self._costs, self._clock = runner, costs, clock

    def __getattr__(self, name):
        return getattr(self._runner, name)

    def reset(self, seed, lr):
        t = self._clock()
        self._runner.reset(seed, lr)
        self._costs.saw_reset(self._clock() - t)

    def set_lr(self, lr):
        self._runner.set_lr(lr)

    def step(self, x, y, *, measure=False):
        t = self._clock()
        out = self._runner.step(x, y, measure=measure)
        self._costs.saw_step(len(x), bool(measure), self._clock() - t)
        return out

    def evaluate(self, x, y, *args, **kwargs):
        t = self._clock()
        out = self._runner.evaluate(x, y, *args, **kwargs)
        self._costs.saw_eval(len(x), self._clock() - t)
        return out

    def evaluate_predictions(self, x, y, *args, **kwargs):
        """(loss, accuracy, predictions); predictions None for a runner that does not give them."""
        t = self._clock()
        try:
            out = tuple(self._runner.evaluate_predictions(x, y, *args, **kwargs))
        except NotImplementedError:
            out = tuple(self._runner.evaluate(x, y, *args, **kwargs)) + (None,)
        self._costs.saw_eval(len(x), self._clock() - t)
        return out

    def refresh_norm_stats(self, batches) -> int:
        if not self._costs.has_norm:
            return 0
        t = self._clock()
        out = self._runner.refresh_norm_stats(batches)
        self._costs.saw_norm(self._clock() - t)
        return out

    def activation_stats(self, x, *args, **kwargs):
        t = self._clock()
        out = self._runner.activation_stats(x, *args, **kwargs)
        self._costs.saw_act(len(x), self._clock() - t)
        return out

    def output_bias(self):
        return self._runner.output_bias()


@dataclass
class Slot:
    """What a probe may use: ``steps`` (planned in total), ``eval_images`` per evaluation, and ``end``
    (a ``clock()`` value) after which its training loops stop."""

    steps: int
    eval_images: int = MAX_EVAL
    end: float = math.inf
    costs: Optional[_Costs] = None
    stopped: Optional[str] = None  # why a loop stopped early (a note for the result)
    #: where the clock cut loops short, ``[loop, step, value]`` in order: recorded into the plan
    cuts: list = field(default_factory=list)
    #: a replayed plan's cuts for this probe: loops are cut where they were, never by the clock
    replay_cuts: Optional[list] = None
    loops: int = 0  # loops started so far (numbers the cuts)
    #: what ``end`` is read against: the suite's clock (``time.perf_counter``, or a test's fake clock)
    clock: Callable[[], float] = time.perf_counter

    def over(self, reserve: float = 0.0) -> bool:
        """True when ``reserve`` more seconds of work would end after the time limit."""
        return self.clock() + reserve > self.end

    def loop(self) -> int:
        """Number a new loop that may be cut short (in the order the probe runs them)."""
        self.loops += 1
        return self.loops - 1

    def cut(self, loop: int, step: int, live: Callable[[], Any]) -> Any:
        """Whether (and how) loop ``loop`` is cut before its step ``step``: a falsy value goes on.

        Live, ``live()`` decides from the clock and a cut is recorded; replaying a plan, the recorded
        cuts decide, so a replay repeats a run that the clock stopped early step for step."""
        if self.replay_cuts is not None:
            return next((v for lp, st, v in self.replay_cuts if lp == loop and st == step), None)
        value = live()
        if value:
            self.cuts.append([loop, step, value])
        return value

    def c(self) -> _Costs:
        return self.costs or _Costs(32)


def _val(data, n=MAX_EVAL):
    return data.x_val[:n], data.y_val[:n]


def _configured_lr(graph, settings) -> float:
    if settings.lr:
        return settings.lr
    t = getattr(graph, "training", None)
    return t.learning_rate if t and t.learning_rate else 1e-3


def _measured(steps: int) -> list:
    """Which steps of a ``train_dynamics`` run of ``steps`` steps measure (about 6, the last included)."""
    every = max(steps // 5, 1)
    return [i % every == 0 or i == steps - 1 for i in range(steps)]


def _val_points(steps: int) -> list:
    """The step indices after which train_dynamics validates on a subset (VAL_POINTS, before the last)."""
    pts = {int(round(steps * k / (VAL_POINTS + 1))) - 1 for k in range(1, VAL_POINTS + 1)}
    return sorted(p for p in pts if 0 <= p < steps - 1)


# -- the probes ------------------------------------------------------------------

def probe_init_loss(runner, data, graph, settings, slot: Slot) -> ProbeResult:
    runner.reset(settings.seed, _configured_lr(graph, settings))
    xv, yv = _val(data, slot.eval_images)
    loss, acc = runner.evaluate(xv, yv)
    classes = len(data.class_names)
    r = ProbeResult("init_loss", metrics={"loss": loss, "expected": math.log(classes), "classes": classes,
                                          "accuracy": acc, "val_samples": int(len(yv))})
    bias = runner.output_bias()
    if bias is not None and len(bias) == classes:
        counts = np.bincount(data.y_train, minlength=classes).astype(float)
        prior = np.log(np.maximum(counts / counts.sum(), 1e-12))
        r.metrics["output_bias"] = [float(b) for b in bias]
        r.metrics["log_prior"] = [float(p) for p in prior]
    return r


def _norm_batches(x, settings, idx=None) -> list:
    """NORM_BATCHES seeded training batches (from the rows ``idx`` of ``x`` when given)."""
    n = len(x) if idx is None else len(idx)
    bs = max(1, min(settings.batch_size, n))
    rows = np.random.default_rng(settings.seed + 1).permutation(n)[:NORM_BATCHES * bs]
    if idx is not None:
        rows = idx[rows]
    rows = np.sort(rows)
    return [x[rows[i:i + bs]] for i in range(0, len(rows), bs)]


def _epochs(steps: int, settings, n_train: int) -> float:
    """Passes over ``n_train`` training images that ``steps`` batches make."""
    return round(steps * settings.batch_size / max(n_train, 1), 3)


def _refresh_norms(runner, batches) -> None:
    """Before an evaluation that follows training: BatchNorm running statistics from ``batches``."""
    fn = getattr(runner, "refresh_norm_stats", None)
    if fn is not None and batches:
        fn(batches)


def _train(runner, x, y, steps, settings, slot: Optional[Slot] = None, measure=False, idx=None, reserve=0.0,
           loops=1, after: Optional[dict] = None):
    """``steps`` seeded steps; ``measure``: per-layer statistics on the :func:`_measured` steps.

    With ``slot``, fewer when its time limit comes first: ``reserve`` is the other work still to do before
    the limit (evaluations, resets) and ``loops`` the training loops still to run, this one included,
    which share the rest equally (so a slow first loop cannot starve the last)."""
    batches = _Batches(x, y, settings.batch_size, settings.seed, idx)
    schedule = _measured(steps) if measure else [False] * steps
    limit = math.inf
    if slot is not None and math.isfinite(slot.end):
        now = slot.clock()
        limit = now + (slot.end - now - reserve) / max(loops, 1)
    loop = slot.loop() if slot is not None else None
    losses, stats = [], []
    for i in range(steps):
        if i and slot is not None and slot.cut(loop, i, lambda: limit < math.inf and slot.clock() +
                                               slot.c().step(batches.bs, schedule[i]) > limit):
            slot.stopped = f"stopped at the time limit after {i} of {steps} planned steps"
            break
        st = runner.step(*batches.next(), measure=schedule[i])
        losses.append(st.loss)
        if schedule[i]:
            stats.append(st)
        if not math.isfinite(st.loss):
            break
        if after and i in after:  # ``after[i]()`` runs after step i (validation points)
            after[i]()
    return losses, stats


def probe_overfit_batch(runner, data, graph, settings, slot: Slot) -> ProbeResult:
    lr = _configured_lr(graph, settings)
    runner.reset(settings.seed, lr)
    n = min(16, len(data.x_train))
    x, y = data.x_train[:n], data.y_train[:n]
    steps = max(slot.steps, MIN_STEPS["overfit_batch"])
    reserve = slot.c().eval(n) + slot.c().norm()
    losses, loop = [], slot.loop()
    for i in range(steps):
        if i and slot.cut(loop, i, lambda: slot.over(reserve + slot.c().step(n))):
            slot.stopped = f"stopped at the time limit after {i} of {steps} planned steps"
            break
        losses.append(runner.step(x, y).loss)
        if not math.isfinite(losses[-1]):
            break
    # judged by the training-mode loss on the batch (the quantity being overfit: BatchNorm on batch
    # statistics, dropout on); the inference-mode evaluation, after BatchNorm statistics re-estimated on
    # the batch, is recorded as well
    train_loss = float(np.mean(losses[-3:])) if all(math.isfinite(v) for v in losses[-3:]) else losses[-1]
    _refresh_norms(runner, [x])
    loss, acc = runner.evaluate(x, y)
    return ProbeResult("overfit_batch", metrics={"batch": n, "steps": len(losses), "initial_loss": losses[0],
                                                 "final_loss": train_loss, "eval_loss": loss, "accuracy": acc,
                                                 "lr": lr},
                       curves={"loss": losses})


def _ema_beta(steps: int) -> float:
    """EMA smoothing of the range test: a window (1 / (1 - beta)) of about 7 % of the sweep, 2..10 steps."""
    window = min(max(0.07 * steps, 2.0), 10.0)
    return 1.0 - 1.0 / window


def optimizer_family(graph) -> tuple:
    """(name, family) of the optimizer the runners train with: the compiled one, Adam when none is named;
    family is a key of :data:`WORKING_LR`."""
    t = getattr(graph, "training", None)
    name = str((t.optimizer if t is not None else None) or "adam").lower().split(">")[-1]
    norm = "".join(ch for ch in name if ch.isalnum())
    return name, "sgd" if norm == "sgd" else "adaptive" if norm in ADAPTIVE else "other"


def sweep_range(steps: int, family: str = "adaptive") -> tuple:
    """The rates a sweep of ``steps`` steps covers: the family's working range widened by a decade each side,
    then widened (within LR_FULL) to the decades its steps cover at LR_PER_DECADE steps a decade."""
    lo, hi = WORKING_LR.get(family, WORKING_LR["other"])
    lo, hi = lo / 10, hi * 10
    have = math.log10(hi / lo)
    want = max((steps - 1) / LR_PER_DECADE, have)  # steps - 1 intervals between the rates
    if want >= math.log10(LR_FULL[1] / LR_FULL[0]):
        return LR_FULL
    extra = (want - have) / 2
    lo, hi = lo / 10 ** extra, hi * 10 ** extra
    if lo < LR_FULL[0]:
        lo, hi = LR_FULL[0], LR_FULL[0] * 10 ** want
    elif hi > LR_FULL[1]:
        lo, hi = LR_FULL[1] / 10 ** want, LR_FULL[1]
    return float(f"{lo:.3g}"), float(f"{hi:.3g}")


def read_sweep(lrs, raw, beta: float) -> dict:
    """What a range test's sweep (rates, raw losses, EMA ``beta``) says, as metrics: the smoothed curve, the
    steepest descent of the smoothed loss (``steepest_lr``, the raw reading) and what decides whether it can
    be trusted (:func:`lr_unreadable`): steps, steps per decade, the loss's drop and its fall against the
    noise, whether the steepest descent sits at the start of the sweep."""
    smooth, avg = [], 0.0
    for i, loss in enumerate(raw):
        avg = beta * avg + (1 - beta) * loss
        smooth.append(avg / (1 - beta ** (i + 1)))
    n = len(smooth)
    out = {"steps": n, "smoothed": smooth, "steepest_lr": None, "steepest_at_start": False, "min_loss_lr": None,
           "per_decade": 0.0, "loss_drop": 0.0, "fall_noise": 0.0}
    if n < 2:
        return out
    decades = math.log10(lrs[-1] / lrs[0]) if lrs[0] > 0 and lrs[-1] > lrs[0] else 0.0
    out["per_decade"] = round((n - 1) / decades, 2) if decades > 0 else 0.0
    window = int(math.ceil(1 / (1 - beta)))
    k_min = int(np.argmin(smooth))
    out["min_loss_lr"] = float(lrs[k_min])
    # the start: the smoothed loss once its first window is averaged (its first value is one raw loss)
    start = smooth[min(window - 1, n - 1)]
    fall = start - smooth[k_min]
    out["loss_drop"] = round(float(fall / start), 4) if start > 0 else 0.0
    d = np.diff(np.asarray(raw[:max(k_min + 1, 2 * window + 1)], dtype=float))  # at least two windows
    noise = float(np.std(d) / math.sqrt(2)) if len(d) >= 2 else 0.0
    out["fall_noise"] = round(min(fall / noise, 1e3), 2) if noise > 0 else (1e3 if fall > 0 else 0.0)
    lo_i = max(n // 10, window)  # past the noisy start and the smoothing's first window
    hi_i = k_min + 1
    if hi_i - lo_i >= 2:
        slope = np.gradient(np.asarray(smooth), np.log10(lrs))
        k = lo_i + int(np.argmin(slope[lo_i:hi_i]))
        if slope[k] < 0:
            out["steepest_lr"] = float(lrs[k])
            out["steepest_at_start"] = k == lo_i
    return out


def lr_unreadable(m: dict) -> list:
    """Why a range test's reading (lr_range's metrics) cannot be trusted, in words; [] when it can. A key
    that a report from an older modellint lacks is not held against it."""
    why = []
    n = m.get("steps") or 0
    if n < LR_MIN_SWEEP:
        why.append(f"the sweep had {n} steps, fewer than {LR_MIN_SWEEP}")
    pd = m.get("per_decade")
    if pd is not None and pd < LR_PER_DECADE:
        why.append(f"it took {pd:.2g} steps per decade of learning rate, fewer than {LR_PER_DECADE}")
    drop = m.get("loss_drop")
    if drop is not None and drop < LR_MIN_DROP:
        why.append(f"its smoothed loss fell {max(drop, 0):.0%} below its start, less than {LR_MIN_DROP:.0%}")
    fall = m.get("fall_noise")
    if fall is not None and fall < LR_MIN_FALL and not (drop is not None and drop < LR_MIN_DROP):
        why.append(f"that fall was {max(fall, 0):.3g}× the raw loss's step-to-step noise, less than {LR_MIN_FALL:g}×")
    if m.get("steepest_at_start"):
        why.append("its steepest descent was at the start of the sweep (the edge of what it saw, or noise)")
    elif "steepest_lr" in m and m.get("steepest_lr") is None and not why:
        why.append("its smoothed loss did not fall past its first smoothing window")
    return why


def _confirm_steps(steps: int) -> int:
    """Steps of each of lr_range's two confirmation runs within its ``steps`` (0: none, the sweep gets all)."""
    k = int(steps * LR_CONFIRM_SHARE)
    return k if k >= LR_CONFIRM_MIN else 0


def probe_lr_range(runner, data, graph, settings, slot: Slot, lo=None, hi=None) -> ProbeResult:
    total = max(slot.steps, MIN_STEPS["lr_range"])
    k_confirm = _confirm_steps(total)
    steps = total - 2 * k_confirm
    optimizer, family = optimizer_family(graph)
    auto_lo, auto_hi = sweep_range(steps, family)
    lo = lo if lo is not None else auto_lo
    hi = hi if hi is not None else auto_hi
    beta = _ema_beta(steps)
    runner.reset(settings.seed, lo)
    batches = _Batches(data.x_train, data.y_train, settings.batch_size, settings.seed)
    lrs, raw = [], []
    diverged = None  # the rate at which the loss blew up (non-finite, or the 4x stop)
    avg, best = 0.0, math.inf
    factor = (hi / lo) ** (1 / max(steps - 1, 1))
    lr, planned, i = lo, steps, 0
    took, loop = [], slot.loop()  # seconds of this sweep's recent steps

    def behind():
        per = float(np.median(took[-9:])) if took else 0.0
        # the confirmation runs (if the sweep calls for them) come after the sweep: leave them their time
        reserve = 2 * k_confirm * per + 2 * slot.c().reset()
        fit = int((slot.end - slot.clock() - reserve) / per) if per > 0 and math.isfinite(slot.end) else steps
        return i + max(fit, 1) if len(took) >= 3 and fit < steps - i else None  # a first step can be slow

    while i < steps:
        # behind the plan: sweep the rest of the range in the steps that still fit, so the test still
        # reaches ``hi`` (with coarser rates) instead of stopping half-way. The pace is the median of the
        # sweep's own recent steps: one slow step (a pause of the machine) must not compress the sweep.
        t0 = slot.clock()
        fewer = slot.cut(loop, i, behind)
        if fewer:
            steps = fewer
            factor = (hi / lr) ** (1 / max(steps - i - 1, 1))
            slot.stopped = f"behind the time plan: swept the range in {steps} steps instead of {planned}"
        runner.set_lr(lr)
        loss = runner.step(*batches.next()).loss
        took.append(slot.clock() - t0)
        if not math.isfinite(loss):
            diverged = lr
            break
        avg = beta * avg + (1 - beta) * loss
        s = avg / (1 - beta ** (i + 1))
        lrs.append(lr)
        raw.append(loss)
        best = min(best, s)
        if s > 4 * best and i > 5:  # fastai's stop: the loss has blown up
            diverged = lr
            break
        lr *= factor
        i += 1
    reading = read_sweep(lrs, raw, beta)
    smooth = reading.pop("smoothed")
    # the rate the other probes train with: --lr when given, else the model's compiled one
    training = getattr(graph, "training", None)
    configured = settings.lr or (training.learning_rate if training else None)
    metrics = {"suggested_lr": None, "configured_lr": configured, **reading, "diverged_lr": diverged,
               "sweep": [lo, hi], "ema_beta": round(beta, 4), "optimizer": optimizer,
               "working_range": list(WORKING_LR[family]), "confirm": None}
    curves = {"lr": lrs, "loss": raw, "smoothed": smooth}
    notes = []
    why = lr_unreadable(metrics)
    if why:
        notes.append("no suggestion: " + "; ".join(why))
    else:
        metrics["suggested_lr"] = suggestion = reading["steepest_lr"]
        far = configured and (configured / suggestion > LR_FACTOR or suggestion / configured > LR_FACTOR)
        if far and not k_confirm:
            notes.append(f"not confirmed: {total} steps leave no room for two runs of {LR_CONFIRM_MIN} steps "
                         "at the configured and the suggested rate")
        elif far:
            metrics["confirm"], runs = _confirm(runner, data, settings, slot, configured, suggestion, k_confirm)
            curves.update(runs)
    return ProbeResult("lr_range", metrics=metrics, curves=curves, notes=notes)


def _confirm(runner, data, settings, slot: Slot, configured: float, suggested: float, steps: int):
    """Two runs of ``steps`` steps from the same fresh weights on the same batches, at the configured and at
    the suggested rate: (metrics, curves). Each run's loss is the mean of the last third of its steps (at
    least 3), over the steps both ran; ``improvement`` is how much lower the suggested rate's is (1.0 when
    only the configured run blew up, -1.0 when only the suggested one did)."""
    runs = {}
    for key, rate in (("configured", configured), ("suggested", suggested)):
        runner.reset(settings.seed, rate)
        first = runs.get("configured")
        n = steps if first is None or not first or not math.isfinite(first[-1]) else len(first)
        runs[key] = _train(runner, data.x_train, data.y_train, n, settings, slot,
                           reserve=slot.c().reset() if first is None else 0.0, loops=2 if first is None else 1)[0]
    a, b = runs["configured"], runs["suggested"]
    a_bad = not a or not math.isfinite(a[-1])
    b_bad = not b or not math.isfinite(b[-1])
    n = min(len(a), len(b))
    tail = max(min(3, n), n // 3)

    def final(v, bad):
        return None if bad or not n else float(np.mean(v[n - tail:n]))

    fa, fb = final(a, a_bad), final(b, b_bad)
    if b_bad:
        improvement = -1.0
    elif a_bad:
        improvement = 1.0
    else:
        improvement = 1 - fb / fa if fa and fa > 0 else 0.0
    return ({"rate": suggested, "steps": n if not a_bad else len(b), "configured_loss": fa, "suggested_loss": fb,
             "configured_nonfinite": a_bad, "suggested_nonfinite": b_bad, "improvement": round(improvement, 4)},
            {"confirm_configured": a, "confirm_suggested": b})


def verdict_subset(steps: int, y_train, settings) -> Optional[np.ndarray]:
    """train_dynamics' training rows: None (the whole training split) unless its ``steps`` reach
    VERDICT_STEPS but their batches cannot show every training image VERDICT_EPOCHS times; then the
    rows of a class-stratified subset they can (fixed by the seed, so a replay trains on the same)."""
    n = len(y_train)
    bs = max(1, min(settings.batch_size, n))
    size = int(steps * bs / VERDICT_EPOCHS)
    if steps < VERDICT_STEPS or size >= n:
        return None
    from .data import stratified_subset

    return stratified_subset(np.asarray(y_train), size, settings.seed)


def probe_train_dynamics(runner, data, graph, settings, slot: Slot) -> ProbeResult:
    lr = _configured_lr(graph, settings)
    runner.reset(settings.seed, lr)
    steps = max(slot.steps, MIN_STEPS["train_dynamics"])
    xv, yv = _val(data, slot.eval_images)
    n_act = min(128, len(xv))
    c = slot.c()
    idx = verdict_subset(steps, data.y_train, settings)
    n_train = len(data.y_train) if idx is None else len(idx)
    notes = [] if idx is None else [
        f"trained on a class-stratified subset of {n_train:,} of the {len(data.y_train):,} training images, so "
        f"that its {steps} steps show each of them once: a verdict needs every image a run learns from seen "
        f"(the whole split would take {math.ceil(len(data.y_train) / max(1, settings.batch_size)):,} steps)"]
    norm_batches = _norm_batches(data.x_train, settings, idx)
    xs, ys = xv[:VAL_SUBSET], yv[:VAL_SUBSET]
    points = _val_points(steps)
    curve = {"val_step": [], "val_loss": [], "val_accuracy": []}

    def validate(i):
        def run():
            _refresh_norms(runner, norm_batches)
            loss, acc = runner.evaluate(xs, ys)
            curve["val_step"].append(i)
            curve["val_loss"].append(loss)
            curve["val_accuracy"].append(acc)
        return run

    losses, stats = _train(runner, data.x_train, data.y_train, steps, settings, slot, measure=True, idx=idx,
                           reserve=c.eval(len(xv)) + c.act(n_act) + (len(points) + 1) * c.norm() +
                           len(points) * c.eval(len(xs)),
                           after={i: validate(i) for i in points})
    _refresh_norms(runner, norm_batches)
    val_loss, val_acc, guess = runner.evaluate_predictions(xv, yv)
    if losses:
        curve["val_step"].append(len(losses) - 1)
        curve["val_loss"].append(val_loss)
        curve["val_accuracy"].append(val_acc)
    confusion = None
    if guess is not None and len(guess) == len(yv):
        k = max(len(data.class_names), int(np.max(yv, initial=0)) + 1, int(np.max(guess, initial=0)) + 1)
        table = np.zeros((k, k), dtype=np.int64)
        np.add.at(table, (np.asarray(yv, np.int64), np.asarray(guess, np.int64)), 1)
        confusion = [[int(v) for v in row] for row in table]
    act = runner.activation_stats(xv[:n_act])
    grad = {k: float(np.mean([s.grad_norm[k] for s in stats if k in s.grad_norm])) for k in stats[0].grad_norm} \
        if stats else {}
    ratio = {k: float(np.mean([s.update_ratio[k] for s in stats if k in s.update_ratio]))
             for k in stats[0].update_ratio} if stats else {}
    names = list(grad)
    first_last = grad[names[0]] / grad[names[-1]] if len(names) >= 2 and grad[names[-1]] > 0 else None
    nonfinite = any(s.nonfinite for s in stats) or any(not math.isfinite(v) for v in losses)
    quarters = [float(np.mean(q)) for q in np.array_split(np.asarray(losses, dtype=float), 4)] \
        if len(losses) >= 8 else []
    fall = (quarters[2] - quarters[3]) / quarters[2] if quarters and quarters[2] > 0 and not nonfinite else None
    return ProbeResult("train_dynamics", metrics={
        "last_quarter_fall": None if fall is None else round(fall, 4),
        "lr": lr, "steps": len(losses), "epochs": _epochs(len(losses), settings, n_train),
        "train_images": n_train, "train_split": int(len(data.y_train)), "first_loss": losses[0] if losses else None,
        "final_loss": float(np.mean(losses[-5:])) if losses else None, "val_loss": val_loss, "val_accuracy": val_acc,
        "val_samples": int(len(yv)), "grad_norm": grad, "update_ratio": ratio, "first_last_grad_ratio": first_last,
        "nonfinite": nonfinite, "dead_fraction": act.dead_fraction, "saturated_fraction": act.saturated_fraction,
        **({"confusion": confusion} if confusion is not None else {})},
        curves={"loss": losses, **curve}, notes=notes)


def probe_zero_input(runner, data, graph, settings, slot: Slot) -> ProbeResult:
    lr = _configured_lr(graph, settings)
    steps = max(slot.steps // 2, MIN_STEPS["zero_input"] // 2)
    c = slot.c()
    xv, yv = _val(data, slot.eval_images)
    out, ran = {}, []
    for kind in ("real", "zero"):
        runner.reset(settings.seed, lr)
        x = data.x_train if kind == "real" else np.zeros_like(data.x_train[: max(settings.batch_size * 4, 1)])
        y = data.y_train if kind == "real" else data.y_train[: len(x)]
        reserve = c.eval(len(xv)) + c.norm() + (c.reset() + c.eval(len(xv)) + c.norm() if kind == "real" else 0.0)
        ran.append(len(_train(runner, x, y, steps, settings, slot, reserve=reserve,
                              loops=2 if kind == "real" else 1)[0]))
        _refresh_norms(runner, _norm_batches(x, settings))
        out[kind] = runner.evaluate(np.zeros_like(xv) if kind == "zero" else xv, yv)
    return ProbeResult("zero_input", metrics={"steps": min(ran),
                                              "epochs": _epochs(min(ran), settings, len(data.x_train)),
                                              "real_val_loss": out["real"][0],
                                              "real_val_accuracy": out["real"][1], "zero_val_loss": out["zero"][0],
                                              "zero_val_accuracy": out["zero"][1], "val_samples": int(len(yv))})


FRACTIONS = (0.25, 0.5, 1.0)


def _fraction_size(n_train: int, frac: float, batch_size: int) -> int:
    return max(batch_size, int(n_train * frac))


def probe_data_scaling(runner, data, graph, settings, slot: Slot) -> ProbeResult:
    lr = _configured_lr(graph, settings)
    steps = max(slot.steps // 3, MIN_STEPS["data_scaling"] // 3)
    c = slot.c()
    xv, yv = _val(data, slot.eval_images)
    sizes = [_fraction_size(len(data.x_train), f, settings.batch_size) for f in FRACTIONS]
    evals = [c.eval(min(slot.eval_images, n)) + c.eval(len(xv)) + c.norm() for n in sizes]
    notes = []
    per = c.step(min(settings.batch_size, len(data.x_train)))
    spare = slot.end - slot.clock() - sum(c.reset() + e for e in evals)

    def behind():
        fit = int(spare / (len(FRACTIONS) * per)) if per > 0 and math.isfinite(spare) else steps
        return -1 if fit < MIN_STEPS["data_scaling"] // len(FRACTIONS) else fit if fit < steps else None

    # one step count for every row, decided from the time left now: rows of unequal training would make
    # the learning curve meaningless
    fit = slot.cut(slot.loop(), 0, behind)
    if fit and fit < 0:
        left = f"{max(spare, 0):.1f} s were" if math.isfinite(spare) else "too little time was"
        return ProbeResult("data_scaling", status="skipped", notes=[
            f"skipped: {left} left for {len(FRACTIONS)} rows, fewer than "
            f"{MIN_STEPS['data_scaling'] // len(FRACTIONS)} steps of {per:.2f} s each; rows of unequal "
            "training would not make a learning curve"])
    if fit:
        notes.append(f"behind the time plan: {fit} steps per row instead of {steps}")
        steps = fit
    rows = []
    rng = np.random.default_rng(settings.seed)
    for k, (frac, n) in enumerate(zip(FRACTIONS, sizes)):
        idx = np.sort(rng.permutation(len(data.x_train))[:n])
        runner.reset(settings.seed, lr)
        # no time limit inside a row: every row trains the same number of steps
        ran = len(_train(runner, data.x_train, data.y_train, steps, settings, None, idx=idx)[0])
        _refresh_norms(runner, _norm_batches(data.x_train, settings, idx))
        tr = idx[:slot.eval_images or MAX_EVAL]
        tr_loss, tr_acc = runner.evaluate(data.x_train[tr], data.y_train[tr])
        va_loss, va_acc = runner.evaluate(xv, yv)
        rows.append({"fraction": frac, "samples": int(len(idx)), "steps": ran,
                     "epochs": _epochs(ran, settings, len(idx)), "train_loss": tr_loss,
                     "train_accuracy": tr_acc, "val_loss": va_loss, "val_accuracy": va_acc})
    return ProbeResult("data_scaling", metrics={"steps": steps, "rows": rows, "val_samples": int(len(yv))},
                       curves={"samples": [r["samples"] for r in rows],
                               "train_accuracy": [r["train_accuracy"] for r in rows],
                               "val_accuracy": [r["val_accuracy"] for r in rows]}, notes=notes)


def probe_linear_baseline(runner, data, graph, settings, slot: Optional[Slot] = None) -> ProbeResult:
    from sklearn.linear_model import LogisticRegression

    try:  # one BLAS thread: the fit is small, and extra threads spin against each other on a busy CPU
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(1)
    except Exception:  # pragma: no cover - threadpoolctl ships with scikit-learn
        limits = None

    def features(x):
        n, h, w, c = x.shape
        f = max(1, min(h, w) // 16)  # average-pool to about 16x16
        x = x[:, : h // f * f, : w // f * f].reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4))
        return x.reshape(n, -1)

    try:
        x_tr, y_tr = data.x_train[:3000], data.y_train[:3000]
        clf = LogisticRegression(max_iter=300)
        clf.fit(features(x_tr), y_tr)
        acc = float(clf.score(features(data.x_val), data.y_val))
    finally:
        if limits is not None:
            limits.restore_original_limits()
    return ProbeResult("linear_baseline", metrics={"val_accuracy": acc, "train_samples": len(x_tr),
                                                   "features": int(features(x_tr[:1]).shape[1])})


PROBES: dict = {"init_loss": probe_init_loss, "overfit_batch": probe_overfit_batch, "lr_range": probe_lr_range,
                "train_dynamics": probe_train_dynamics, "zero_input": probe_zero_input,
                "data_scaling": probe_data_scaling, "linear_baseline": probe_linear_baseline}


# -- planning ----------------------------------------------------------------------

def _fixed(name, c: _Costs, n_eval: int, data, settings, points: bool = True) -> float:
    """Seconds of a probe's work other than training steps: resets, evaluations, activation statistics
    (``points``: with train_dynamics' validation points, a fixed cost that does not decide ``eval_images``)."""
    nv, ntr = min(n_eval, len(data.y_val)), len(data.y_train)
    if name == "init_loss":
        return c.reset() + c.eval(nv)
    if name == "overfit_batch":
        return c.reset() + c.eval(min(16, ntr)) + c.norm()
    if name == "lr_range":
        return c.reset()
    if name == "train_dynamics":  # the first measuring step builds its graph; validation points on a subset
        return c.reset() + c.eval(nv) + c.act(min(128, nv)) + c.trace(True) + \
            (VAL_POINTS + 1) * c.norm() + (VAL_POINTS * c.eval(min(VAL_SUBSET, nv)) if points else 0.0)
    if name == "zero_input":
        return 2 * (c.reset() + c.eval(nv) + c.norm())
    if name == "data_scaling":
        return sum(c.reset() + c.eval(min(n_eval, _fraction_size(ntr, f, settings.batch_size))) + c.eval(nv)
                   + c.norm() for f in FRACTIONS)
    return 0.0


def _step_cost(name, steps: int, c: _Costs, data, settings) -> float:
    """Seconds of ``steps`` planned steps of a probe."""
    if name not in STEP_SHARE or steps <= 0:
        return 0.0
    ntr = len(data.y_train)
    bs = min(settings.batch_size, ntr)
    if name == "overfit_batch":
        return steps * c.step(min(16, ntr))
    if name == "lr_range":
        return steps * c.step(bs)
    if name == "train_dynamics":
        m = sum(_measured(steps))
        return (steps - m) * c.step(bs) + m * c.step(bs, True)
    if name == "zero_input":
        return 2 * (steps // 2) * c.step(bs)
    return 3 * (steps // 3) * c.step(bs)  # data_scaling


def _steps_for(name, seconds: float, c: _Costs, data, settings) -> int:
    """The most steps (MIN_STEPS..``c.max_steps``) whose cost fits in ``seconds``."""
    lo, hi = MIN_STEPS[name], c.max_steps
    if _step_cost(name, hi, c, data, settings) <= seconds:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _step_cost(name, mid, c, data, settings) <= seconds:
            lo = mid
        else:
            hi = mid
    # down to a coarse grid, so that the few-percent jitter of timings between two runs of the
    # same command usually gives the same plan, hence the same numbers; the time left over goes
    # to the probes planned after this one
    return max(MIN_STEPS[name], max((g for g in STEP_GRID if g <= lo), default=lo))


def _eval_images(left: float, c: _Costs, data, settings, probes) -> int:
    """Validation images per evaluation: at most MAX_EVAL, evaluations taking about EVAL_SHARE of ``left``."""
    nv = len(data.y_val)
    if nv == 0:
        return 0

    def cost(n):
        return sum(_fixed(p, c, n, data, settings, False) - _fixed(p, c, 0, data, settings, False)
                   for p in probes)

    n = MAX_EVAL
    while n > MIN_EVAL and cost(min(n, nv)) > EVAL_SHARE * left:
        n -= 16
    return min(n, nv)


def _plan_probe(name, later, left, c, n_eval, data, settings):
    """(steps, planned seconds, seconds the later kept probes need at least), or None to skip ``name``.

    The probes still to run must fit in ``left`` with their fixed costs and minimum steps; if they do not,
    the least important (KEEP_ORDER) are left out. What the kept probes do not need for that is shared
    among their training steps in the proportions of STEP_SHARE."""
    todo = [name] + [q for q in later if q != name]
    need = {q: _fixed(q, c, n_eval, data, settings) + _step_cost(q, MIN_STEPS[q], c, data, settings) for q in todo}
    keep = list(todo)
    for q in reversed(KEEP_ORDER):
        if sum(need[k] for k in keep) <= left:
            break
        if q in keep:
            keep.remove(q)
    if name not in keep:
        return None
    later_need = sum(need[k] for k in keep if k != name)
    if name not in STEP_SHARE:
        return 0, need[name], later_need
    spare = left - sum(need[k] for k in keep)
    shares = sum(STEP_SHARE[k] for k in keep if k in STEP_SHARE)
    alloc = _step_cost(name, MIN_STEPS[name], c, data, settings) + STEP_SHARE[name] / shares * spare
    steps = _steps_for(name, alloc, c, data, settings)
    return steps, _fixed(name, c, n_eval, data, settings) + _step_cost(name, steps, c, data, settings), later_need


def _verdict_plan(todo: list, left: float, c: _Costs, n_eval, data, settings) -> dict:
    """Before any probe trains: can train_dynamics reach a verdict (VERDICT_STEPS steps) in ``left``
    seconds with the probes ``todo``? ``{"possible", "steps", "why"}``; ``why`` says, when no verdict
    is possible, what one would take (about how much more budget)."""
    decided = _plan_probe("train_dynamics", [p for p in todo if p != "train_dynamics"], left, c, n_eval, data,
                          settings)
    steps = decided[0] if decided else 0
    out = {"possible": steps >= VERDICT_STEPS, "steps": int(steps), "why": None}
    if not out["possible"]:
        shares = sum(STEP_SHARE[p] for p in todo if p in STEP_SHARE) or 1.0
        more = (_step_cost("train_dynamics", VERDICT_STEPS, c, data, settings) -
                _step_cost("train_dynamics", steps, c, data, settings)) * shares / STEP_SHARE["train_dynamics"]
        out["why"] = (f"no verdict about learning is possible in this budget: train_dynamics fits about {steps} "
                      f"steps of {c.step():.2f} s and a verdict needs {VERDICT_STEPS} (ML022, ML029 and ML030 will "
                      f"say 'inconclusive'); a --budget about {math.ceil(more / 10) * 10:.0f} s larger, or a GPU, would give one")
    return out


def _warm_up(runner, timed, costs, data, graph, settings, probes, clock=time.perf_counter):
    """Trace and time: a reset, a first step (graph building), a few timed steps, two evaluations.

    The measuring step is not traced here: that happens in train_dynamics, whose plan counts it
    (``costs.trace_s``, what the first step cost more than the others), and not at all when it is skipped."""
    timed.reset(settings.seed, _configured_lr(graph, settings))
    if any(p in STEP_SHARE for p in probes):
        batches = _Batches(data.x_train, data.y_train, settings.batch_size, settings.seed)
        t = clock()
        timed.step(*batches.next())
        first = clock() - t
        for _ in range(WARMUP_STEPS):
            timed.step(*batches.next())
        costs.trace_s = max(first - costs.step(), 0.0)
        n = min(16, len(data.y_train))
        if "overfit_batch" in probes and n != costs.bs:  # its batch: a small batch's cost is not proportional
            timed.step(data.x_train[:n], data.y_train[:n])
        costs.has_norm = bool(getattr(runner, "has_norm_stats", False))
        if costs.has_norm and any(p in ("overfit_batch", "train_dynamics", "zero_input", "data_scaling")
                                  for p in probes):
            norm_batches = _norm_batches(data.x_train, settings)
            runner.refresh_norm_stats(norm_batches)  # traces the refresh pass
            timed.refresh_norm_stats(norm_batches)
    if len(data.y_val) and any(p != "linear_baseline" for p in probes):
        n = min(len(data.y_val), max(settings.batch_size, 16))
        runner.evaluate(data.x_val[:n], data.y_val[:n])  # traces the prediction function
        timed.evaluate(data.x_val[:n], data.y_val[:n])


def run_suite(runner, data, graph, settings: ProbeSettings,
              progress: Optional[Callable[[str, str], None]] = None,
              clock: Callable[[], float] = time.perf_counter) -> ProbeReport:
    """Run the selected probes within ``settings.budget`` seconds (see the module docstring).

    ``clock`` (seconds, increasing) is what the budget, the plan and every time limit read: the
    wall clock by default; tests pass a fake one (advanced by a fake runner, or ticking a fixed
    amount per read) so that what they check does not depend on how busy the machine is."""
    report = ProbeReport(settings={"budget": settings.budget, "seed": settings.seed, "probes": list(settings.probes),
                                   "batch_size": settings.batch_size, "runner": runner.framework,
                                   "device": runner.device, "init": runner.init or None},
                         data=data.summary() if hasattr(data, "summary") else {})
    start = clock()
    deadline = start + settings.budget
    aim = deadline - MARGIN * settings.budget  # what plans fill; the time limits stop at ``deadline``
    say = progress or (lambda name, msg: None)
    costs = _Costs(max(1, min(settings.batch_size, len(data.y_train))))
    if getattr(runner, "device", "cpu") not in ("cpu", None):
        costs.max_steps = MAX_STEPS_ACCELERATOR
    timed = _Timed(runner, costs, clock)
    replay = settings.plan
    plan = {"replayed": bool(replay), "eval_images": None, "warmup_s": None, "steps": {}, "planned_s": {},
            "skipped": [], "cuts": {}, "costs": {}}
    report.settings["plan"] = plan
    probes = list(dict.fromkeys(settings.probes))
    # the linear baseline needs no runner and has a cost that cannot be planned: it goes first
    order = [p for p in probes if p == "linear_baseline"] + [p for p in probes if p != "linear_baseline"]
    current, t = None, start
    try:
        n_eval = None
        for i, name in enumerate(order):
            if name != "linear_baseline" and n_eval is None:
                t = clock()
                _warm_up(runner, timed, costs, data, graph, settings, order[i:], clock)
                plan["warmup_s"] = round(clock() - t, 3)
                report.step_seconds = costs.step() or None
                if replay:
                    n_eval = int(replay.get("eval_images") or min(MAX_EVAL, len(data.y_val)))
                else:
                    n_eval = _eval_images(aim - clock(), costs, data, settings, order[i:])
                    if "train_dynamics" in order[i:]:  # said before any budget is spent on training
                        decided = _verdict_plan(order[i:], aim - clock(), costs, n_eval, data, settings)
                        plan["verdict"] = {k: v for k, v in decided.items() if v is not None}
                        if decided["why"]:
                            say("plan", decided["why"])
                plan["eval_images"] = n_eval
            now = clock()
            left = aim - now
            if replay:
                skip = name in (replay.get("skipped") or [])
                steps = int((replay.get("steps") or {}).get(name, MIN_STEPS[name]))
                planned, end = None, math.inf
            elif name == "linear_baseline":
                skip, steps, planned, end = left <= 0, 0, None, math.inf
            else:
                decided = _plan_probe(name, order[i + 1:], left, costs, n_eval, data, settings)
                skip = decided is None
                if not skip:
                    steps, planned, later_need = decided
                    end = min(now + planned * (1 + SLACK) + max(costs.step(), 0.01 * settings.budget),
                              deadline - later_need)
            if skip:
                need = _fixed(name, costs, n_eval or 0, data, settings) + \
                    _step_cost(name, MIN_STEPS[name], costs, data, settings)
                why = "skipped in the replayed plan" if replay else (
                    f"skipped for the budget: {max(left, 0):.1f} s were left for the remaining probes and this "
                    f"one needs about {need:.1f} s (at least {MIN_STEPS[name]} steps of {costs.step():.2f} s, "
                    f"with resets and evaluations); when not all fit, the last of "
                    f"{', '.join(KEEP_ORDER)} go first")
                report.results[name] = ProbeResult(name, status="skipped", notes=[why])
                plan["skipped"].append(name)
                say(name, "skipped (budget)")
                continue
            plan["steps"][name] = steps
            if planned is not None:
                plan["planned_s"][name] = round(planned, 3)
            say(name, f"running ({steps} steps)" if name in STEP_SHARE else "running")
            slot = Slot(steps=steps, eval_images=n_eval or 0, end=end, costs=costs, clock=clock,
                        replay_cuts=list((replay.get("cuts") or {}).get(name, [])) if replay else None)
            current, t = name, clock()
            try:
                result = PROBES[name](timed, data, graph, settings, slot)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one probe failing must not lose the others
                result = ProbeResult(name, status="failed", notes=[f"{type(exc).__name__}: {exc}"])
            current = None
            if slot.stopped:
                result.notes.append(slot.stopped)
            if slot.cuts:
                plan["cuts"][name] = slot.cuts
            result.seconds = clock() - t
            report.results[name] = result
            say(name, f"{result.status} in {result.seconds:.1f} s")
    except KeyboardInterrupt:
        if current is not None:
            report.results[current] = ProbeResult(current, status="interrupted", seconds=clock() - t,
                                                  notes=["interrupted (Ctrl-C) while running"])
        report.interrupted = True
        say("suite", "interrupted: keeping the results so far")
    plan["costs"] = costs.to_dict()
    report.results = {name: report.results[name] for name in probes if name in report.results}
    report.seconds = clock() - start
    return report
