"""The probe suite: short, measured experiments on the user's data.

Each probe is a function of a :class:`~modellint.probes.runner.Runner`, the data
and a step budget, and returns a :class:`ProbeResult` of plain numbers and
curves. Probes never decide what is wrong: the probe rules
(:mod:`modellint.rules.probes`) read the results and write the findings, so a
probe finding is documented, selected and reported like any other rule's.

The canon (see shared/reference/figures.md): loss at init ≈ ln(C); an
input-independent baseline; overfit one small batch; a learning-rate range test
(exponential sweep, stop when the smoothed loss exceeds 4x the best, suggest the
steepest descent); gradient norms and update/weight ratios per layer; dead and
saturated units; a data-scaling learning curve; a linear baseline.

Budget: the suite times a few warm-up steps, turns the time budget into step
counts per probe, and skips what does not fit. Ctrl-C stops the suite and keeps
what was measured so far. Everything is seeded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

ALL_PROBES = ("init_loss", "overfit_batch", "lr_range", "train_dynamics", "zero_input", "data_scaling",
              "linear_baseline")

#: Share of the time budget each probe may use (the linear baseline runs on the CPU in scikit-learn).
BUDGET_SHARE = {"init_loss": 0.02, "overfit_batch": 0.14, "lr_range": 0.14, "train_dynamics": 0.22,
                "zero_input": 0.12, "data_scaling": 0.30, "linear_baseline": 0.06}


@dataclass
class ProbeSettings:
    budget: float = 180.0  # seconds for the whole suite
    seed: int = 0
    probes: tuple = ALL_PROBES
    batch_size: int = 32
    lr: Optional[float] = None  # default: the model's configured rate, else 1e-3


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
    """Seeded mini-batches cycling over an array pair."""

    def __init__(self, x, y, batch_size, seed):
        self.x, self.y, self.bs = x, y, max(1, min(batch_size, len(x)))
        self.rng = np.random.default_rng(seed)
        self.order, self.pos = self.rng.permutation(len(x)), 0

    def next(self):
        if self.pos + self.bs > len(self.order):
            self.order, self.pos = self.rng.permutation(len(self.x)), 0
        idx = self.order[self.pos:self.pos + self.bs]
        self.pos += self.bs
        return self.x[idx], self.y[idx]


def _val(data, n=512):
    return data.x_val[:n], data.y_val[:n]


def _configured_lr(graph, settings) -> float:
    if settings.lr:
        return settings.lr
    t = graph.training
    return t.learning_rate if t and t.learning_rate else 1e-3


# -- the probes ------------------------------------------------------------------

def probe_init_loss(runner, data, graph, settings, steps) -> ProbeResult:
    runner.reset(settings.seed, _configured_lr(graph, settings))
    loss, acc = runner.evaluate(*_val(data))
    classes = len(data.class_names)
    r = ProbeResult("init_loss", metrics={"loss": loss, "expected": math.log(classes), "classes": classes,
                                          "accuracy": acc})
    bias = runner.output_bias()
    if bias is not None and len(bias) == classes:
        counts = np.bincount(data.y_train, minlength=classes).astype(float)
        prior = np.log(np.maximum(counts / counts.sum(), 1e-12))
        r.metrics["output_bias"] = [float(b) for b in bias]
        r.metrics["log_prior"] = [float(p) for p in prior]
    return r


def probe_overfit_batch(runner, data, graph, settings, steps) -> ProbeResult:
    lr = _configured_lr(graph, settings)
    runner.reset(settings.seed, lr)
    n = min(16, len(data.x_train))
    x, y = data.x_train[:n], data.y_train[:n]
    losses = []
    for _ in range(max(steps, 10)):
        losses.append(runner.step(x, y).loss)
        if not math.isfinite(losses[-1]):
            break
    loss, acc = runner.evaluate(x, y)
    return ProbeResult("overfit_batch", metrics={"batch": n, "steps": len(losses), "initial_loss": losses[0],
                                                 "final_loss": loss, "accuracy": acc, "lr": lr},
                       curves={"loss": losses})


def probe_lr_range(runner, data, graph, settings, steps, lo=1e-7, hi=10.0) -> ProbeResult:
    steps = max(steps, 20)
    runner.reset(settings.seed, lo)
    batches = _Batches(data.x_train, data.y_train, settings.batch_size, settings.seed)
    lrs, raw, smooth = [], [], []
    avg, best = 0.0, math.inf
    factor = (hi / lo) ** (1 / max(steps - 1, 1))
    lr = lo
    for i in range(steps):
        runner.set_lr(lr)
        loss = runner.step(*batches.next()).loss
        if not math.isfinite(loss):
            break
        avg = 0.9 * avg + 0.1 * loss
        s = avg / (1 - 0.9 ** (i + 1))
        lrs.append(lr)
        raw.append(loss)
        smooth.append(s)
        best = min(best, s)
        if s > 4 * best and i > 5:  # fastai's stop: the loss has blown up
            break
        lr *= factor
    suggestion = None
    if len(smooth) >= 5:
        logs = np.log10(lrs)
        slope = np.gradient(np.asarray(smooth), logs)
        lo_i = max(1, len(smooth) // 10)  # ignore the noisy start
        hi_i = int(np.argmin(smooth)) + 1
        if hi_i > lo_i:
            suggestion = float(lrs[lo_i + int(np.argmin(slope[lo_i:hi_i]))])
    # the rate the other probes train with: --lr when given, else the model's compiled one
    configured = settings.lr or (graph.training.learning_rate if graph.training else None)
    return ProbeResult("lr_range", metrics={"suggested_lr": suggestion, "configured_lr": configured,
                                            "min_loss_lr": float(lrs[int(np.argmin(smooth))]) if smooth else None,
                                            "steps": len(lrs)},
                       curves={"lr": lrs, "loss": raw, "smoothed": smooth})


def _train(runner, x, y, steps, settings, measure_every=0, val=None):
    batches = _Batches(x, y, settings.batch_size, settings.seed)
    losses, stats = [], []
    for i in range(steps):
        measure = bool(measure_every) and (i % measure_every == 0 or i == steps - 1)
        st = runner.step(*batches.next(), measure=measure)
        losses.append(st.loss)
        if measure:
            stats.append(st)
        if not math.isfinite(st.loss):
            break
    return losses, stats


def probe_train_dynamics(runner, data, graph, settings, steps) -> ProbeResult:
    lr = _configured_lr(graph, settings)
    runner.reset(settings.seed, lr)
    steps = max(steps, 10)
    losses, stats = _train(runner, data.x_train, data.y_train, steps, settings, measure_every=max(steps // 5, 1))
    val_loss, val_acc = runner.evaluate(*_val(data))
    act = runner.activation_stats(_val(data, 128)[0])
    grad = {k: float(np.mean([s.grad_norm[k] for s in stats if k in s.grad_norm])) for k in stats[0].grad_norm} \
        if stats else {}
    ratio = {k: float(np.mean([s.update_ratio[k] for s in stats if k in s.update_ratio]))
             for k in stats[0].update_ratio} if stats else {}
    names = list(grad)
    first_last = grad[names[0]] / grad[names[-1]] if len(names) >= 2 and grad[names[-1]] > 0 else None
    nonfinite = any(s.nonfinite for s in stats) or any(not math.isfinite(v) for v in losses)
    return ProbeResult("train_dynamics", metrics={
        "lr": lr, "steps": len(losses), "first_loss": losses[0] if losses else None,
        "final_loss": float(np.mean(losses[-5:])) if losses else None, "val_loss": val_loss, "val_accuracy": val_acc,
        "grad_norm": grad, "update_ratio": ratio, "first_last_grad_ratio": first_last, "nonfinite": nonfinite,
        "dead_fraction": act.dead_fraction, "saturated_fraction": act.saturated_fraction},
        curves={"loss": losses})


def probe_zero_input(runner, data, graph, settings, steps) -> ProbeResult:
    lr = _configured_lr(graph, settings)
    steps = max(steps // 2, 5)
    out = {}
    for kind in ("real", "zero"):
        runner.reset(settings.seed, lr)
        x = data.x_train if kind == "real" else np.zeros_like(data.x_train[: max(settings.batch_size * 4, 1)])
        y = data.y_train if kind == "real" else data.y_train[: len(x)]
        _train(runner, x, y, steps, settings)
        xv, yv = _val(data)
        if kind == "zero":
            xv = np.zeros_like(xv)
        out[kind] = runner.evaluate(xv, yv)
    return ProbeResult("zero_input", metrics={"steps": steps, "real_val_loss": out["real"][0],
                                              "real_val_accuracy": out["real"][1], "zero_val_loss": out["zero"][0],
                                              "zero_val_accuracy": out["zero"][1]})


def probe_data_scaling(runner, data, graph, settings, steps) -> ProbeResult:
    lr = _configured_lr(graph, settings)
    steps = max(steps // 3, 5)
    rows = []
    rng = np.random.default_rng(settings.seed)
    for frac in (0.25, 0.5, 1.0):
        n = max(settings.batch_size, int(len(data.x_train) * frac))
        idx = np.sort(rng.permutation(len(data.x_train))[:n])
        runner.reset(settings.seed, lr)
        _train(runner, data.x_train[idx], data.y_train[idx], steps, settings)
        tr_loss, tr_acc = runner.evaluate(data.x_train[idx][:512], data.y_train[idx][:512])
        va_loss, va_acc = runner.evaluate(*_val(data))
        rows.append({"fraction": frac, "samples": int(n), "train_loss": tr_loss, "train_accuracy": tr_acc,
                     "val_loss": va_loss, "val_accuracy": va_acc})
    return ProbeResult("data_scaling", metrics={"steps": steps, "rows": rows},
                       curves={"samples": [r["samples"] for r in rows],
                               "train_accuracy": [r["train_accuracy"] for r in rows],
                               "val_accuracy": [r["val_accuracy"] for r in rows]})


def probe_linear_baseline(runner, data, graph, settings, steps) -> ProbeResult:
    from sklearn.linear_model import LogisticRegression

    def features(x):
        n, h, w, c = x.shape
        f = max(1, min(h, w) // 16)  # average-pool to about 16x16
        x = x[:, : h // f * f, : w // f * f].reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4))
        return x.reshape(n, -1)

    x_tr, y_tr = data.x_train[:3000], data.y_train[:3000]
    clf = LogisticRegression(max_iter=300)
    clf.fit(features(x_tr), y_tr)
    acc = float(clf.score(features(data.x_val), data.y_val))
    return ProbeResult("linear_baseline", metrics={"val_accuracy": acc, "train_samples": len(x_tr),
                                                   "features": int(features(x_tr[:1]).shape[1])})


PROBES: dict = {"init_loss": probe_init_loss, "overfit_batch": probe_overfit_batch, "lr_range": probe_lr_range,
                "train_dynamics": probe_train_dynamics, "zero_input": probe_zero_input,
                "data_scaling": probe_data_scaling, "linear_baseline": probe_linear_baseline}


def run_suite(runner, data, graph, settings: ProbeSettings,
              progress: Optional[Callable[[str, str], None]] = None) -> ProbeReport:
    """Run the selected probes within ``settings.budget`` seconds."""
    report = ProbeReport(settings={"budget": settings.budget, "seed": settings.seed, "probes": list(settings.probes),
                                   "batch_size": settings.batch_size, "runner": runner.framework,
                                   "device": runner.device},
                         data=data.summary() if hasattr(data, "summary") else {})
    start = time.perf_counter()
    say = progress or (lambda name, msg: None)
    try:
        # time a few steps to turn seconds into steps
        runner.reset(settings.seed, _configured_lr(graph, settings))
        batches = _Batches(data.x_train, data.y_train, settings.batch_size, settings.seed)
        runner.step(*batches.next())  # warm-up (graph building, allocation)
        t0 = time.perf_counter()
        for _ in range(3):
            runner.step(*batches.next())
        per_step = max((time.perf_counter() - t0) / 3, 1e-4)
        report.step_seconds = per_step
        for name in settings.probes:
            spent = time.perf_counter() - start
            # the selected probes share the whole budget in the proportions of BUDGET_SHARE
            share = BUDGET_SHARE[name] / sum(BUDGET_SHARE[p] for p in settings.probes) * settings.budget
            steps = int(min(share, max(settings.budget - spent, 0)) / per_step)
            if name not in ("linear_baseline", "init_loss") and steps < 5:
                report.results[name] = ProbeResult(name, status="skipped",
                                                   notes=[f"the budget left {max(settings.budget - spent, 0):.0f} s "
                                                          f"(a step takes {per_step:.2f} s)"])
                say(name, "skipped (budget)")
                continue
            say(name, f"running ({steps} steps)" if name not in ("linear_baseline", "init_loss") else "running")
            t = time.perf_counter()
            try:
                result = PROBES[name](runner, data, graph, settings, min(steps, 400))
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one probe failing must not lose the others
                result = ProbeResult(name, status="failed", notes=[f"{type(exc).__name__}: {exc}"])
            result.seconds = time.perf_counter() - t
            report.results[name] = result
            say(name, f"{result.status} in {result.seconds:.1f} s")
    except KeyboardInterrupt:
        report.interrupted = True
        say("suite", "interrupted: keeping the results so far")
    report.seconds = time.perf_counter() - start
    return report
