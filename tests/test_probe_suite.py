"""The probe suite's planning: the time budget, skipping, re-planning, Ctrl-C, replaying a plan.

Most tests use a framework-free runner whose calls take known times on a fake clock (so the planner
is tested against exact costs, and no outcome depends on how busy the machine is); a few use a tiny
PyTorch CNN through ``run_probes`` and the CLI, its calls charged fixed costs on a fake clock too
(:mod:`fake_clock`). The whole file takes about half a minute.
"""

import json
import math
import time
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import import_source
from fake_clock import FakeClock, charge

from modellint.probes.data import Dataset
from modellint.probes.runner import ActivationStats, Runner, StepStats
from modellint.probes.suite import ALL_PROBES, MIN_STEPS, ProbeSettings, Slot, run_suite

NO_GRAPH = types.SimpleNamespace(training=None)
STEP_PROBES = ("overfit_batch", "lr_range", "train_dynamics", "zero_input", "data_scaling")


@pytest.fixture(scope="module", autouse=True)
def _sklearn_imported():
    """The linear baseline's first import of scikit-learn is not what the tests time."""
    import sklearn.linear_model  # noqa: F401
    import threadpoolctl  # noqa: F401


class SleepRunner(Runner):
    """A runner whose calls take known times on its fake clock (``self.clock``); the loss falls 1 % a step.

    ``slow_after``: from that step call on, steps take ``slow_factor`` times longer (a machine that
    gets busy mid-suite). ``interrupt_at``: the step call that raises KeyboardInterrupt (Ctrl-C);
    ``interrupt_in_lr_range``: the step call, counted from the first ``set_lr`` (lr_range's first step), that does."""

    framework = "sleep"

    def __init__(self, step=0.02, image=0.0004, reset=0.03, measure=0.01, trace=0.1, slow_after=None,
                 slow_factor=1.0, interrupt_at=None, interrupt_in_lr_range=None):
        self.clock = FakeClock()
        self.s, self.e, self.r, self.m, self.trace = step, image, reset, measure, trace
        self.slow_after, self.slow_factor, self.interrupt_at = slow_after, slow_factor, interrupt_at
        self.calls, self.traced, self.loss = 0, set(), 2.0
        self.interrupt_in_lr_range, self.lr_calls = interrupt_in_lr_range, None

    def reset(self, seed, lr):
        self.clock.advance(self.r)
        self.loss = 2.0

    def set_lr(self, lr):
        if self.lr_calls is None:
            self.lr_calls = 0

    def step(self, x, y, *, measure=False):
        self.calls += 1
        if self.interrupt_at is not None and self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        if self.lr_calls is not None:
            self.lr_calls += 1
            if self.lr_calls == self.interrupt_in_lr_range:
                raise KeyboardInterrupt
        if measure not in self.traced:
            self.traced.add(measure)
            self.clock.advance(self.trace)
        slow = self.slow_factor if self.slow_after is not None and self.calls > self.slow_after else 1.0
        self.clock.advance((self.s * len(x) / 32 + (self.m if measure else 0.0)) * slow)
        self.loss *= 0.99
        st = StepStats(loss=self.loss)
        if measure:
            st.grad_norm = {"conv": 1.0, "dense": 0.5}
            st.weight_norm = {"conv": 2.0, "dense": 1.0}
            st.update_ratio = {"conv": 1e-3, "dense": 1e-3}
        return st

    def evaluate(self, x, y, batch_size=128):
        self.clock.advance(self.e * len(x))
        return self.loss, 0.5

    def activation_stats(self, x):
        self.clock.advance(self.e * len(x))
        return ActivationStats()


def _dataset(n=400, nv=200, s=8, classes=4):
    rng = np.random.default_rng(0)
    return Dataset(x_train=rng.random((n, s, s, 3), dtype=np.float32), y_train=np.arange(n) % classes,
                   x_val=rng.random((nv, s, s, 3), dtype=np.float32), y_val=np.arange(nv) % classes,
                   class_names=[f"c{i}" for i in range(classes)])


def _run(runner, budget, probes=ALL_PROBES, **kw):
    """The suite on ``runner``'s fake clock: (report, seconds it took on that clock)."""
    t = runner.clock()
    report = run_suite(runner, _dataset(), NO_GRAPH, ProbeSettings(budget=budget, probes=tuple(probes), **kw),
                       clock=runner.clock)
    return report, runner.clock() - t


# ---------------------------------------------------------------------------
# the budget
# ---------------------------------------------------------------------------

def _check_fits(report, wall, budget):
    assert wall <= budget * 1.05, (wall, report.settings["plan"])
    assert report.seconds <= budget * 1.05
    assert wall >= budget * 0.7, "most of the budget is used"
    assert list(report.results) == list(ALL_PROBES)  # reported in the selected order
    assert all(r.status == "ok" for r in report.results.values()), {k: r.notes for k, r in report.results.items()}
    plan = report.settings["plan"]
    assert plan["eval_images"] and plan["warmup_s"] > 0 and not plan["skipped"]
    for name in STEP_PROBES:
        assert plan["steps"][name] >= MIN_STEPS[name]
    assert report.results["overfit_batch"].metrics["steps"] <= plan["steps"]["overfit_batch"]
    costs = plan["costs"]
    assert costs["step_s"] == pytest.approx(0.02, rel=0.5) and costs["reset_s"] == pytest.approx(0.03, rel=0.5)


def test_suite_fits_its_budget_and_records_the_plan():
    small, wall = _run(SleepRunner(), 3.0)
    _check_fits(small, wall, 3.0)
    large, wall = _run(SleepRunner(), 6.0)
    _check_fits(large, wall, 6.0)
    # more budget, more steps
    a, b = small.settings["plan"]["steps"], large.settings["plan"]["steps"]
    assert all(b[name] >= a[name] for name in STEP_PROBES), (a, b)
    assert sum(b[name] for name in STEP_PROBES) > 1.5 * sum(a[name] for name in STEP_PROBES), (a, b)


def test_fixed_costs_are_planned():
    """Expensive evaluations and resets leave fewer steps, and the suite still ends in time."""
    cheap, _ = _run(SleepRunner(), 3.0)
    costly, wall = _run(SleepRunner(image=0.002, reset=0.15), 3.0)
    assert wall <= 3.0 * 1.05, costly.settings["plan"]
    assert costly.settings["plan"]["eval_images"] < cheap.settings["plan"]["eval_images"]
    steps = costly.settings["plan"]["steps"]
    assert sum(steps.get(n, 0) for n in STEP_PROBES) < sum(cheap.settings["plan"]["steps"][n] for n in STEP_PROBES)


def test_an_overrun_is_absorbed_by_later_probes():
    """Steps become 3x slower after the warm-up: the plan was wrong, the budget still holds."""
    report, wall = _run(SleepRunner(slow_after=8, slow_factor=3.0), 4.0)
    assert wall <= 4.0 * 1.05, report.settings["plan"]
    ran = [r for r in report.results.values() if r.status == "ok"]
    assert len(ran) >= 4


def test_too_small_a_budget_skips_with_a_note():
    probes = [p for p in ALL_PROBES if p != "linear_baseline"]
    report, wall = _run(SleepRunner(step=0.1), 1.2, probes=probes)
    assert wall <= 1.2 * 1.1 + 0.1
    skipped = [r for r in report.results.values() if r.status == "skipped"]
    assert skipped and report.results["init_loss"].status == "ok"
    for r in skipped:
        assert r.notes and "budget" in r.notes[0] and "s" in r.notes[0]
    assert set(report.settings["plan"]["skipped"]) == {r.name for r in skipped}
    # the least important go first: data_scaling before overfit_batch
    assert "data_scaling" in report.settings["plan"]["skipped"]


def test_only_fixed_probes():
    report, wall = _run(SleepRunner(), 2.0, probes=("init_loss", "linear_baseline"))
    assert [r.status for r in report.results.values()] == ["ok", "ok"]
    assert wall < 2.0 and report.step_seconds is None  # no step was needed, none was timed


# ---------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------

def test_interrupt_in_a_probe_keeps_what_was_measured():
    report, _ = _run(SleepRunner(interrupt_in_lr_range=5), 6.0)
    assert report.interrupted is True
    assert report.results["init_loss"].status == "ok" and report.results["linear_baseline"].status == "ok"
    assert report.results["overfit_batch"].status == "ok"
    assert report.results["overfit_batch"].metrics["steps"] >= 10
    assert report.results["lr_range"].status == "interrupted"
    assert "train_dynamics" not in report.results and "data_scaling" not in report.results
    assert list(report.results) == ["init_loss", "overfit_batch", "lr_range", "linear_baseline"]
    json.dumps(report.to_dict())  # still a plain report


def test_interrupt_during_warm_up():
    report, _ = _run(SleepRunner(interrupt_at=2), 6.0)
    assert report.interrupted is True
    assert list(report.results) == ["linear_baseline"]


# ---------------------------------------------------------------------------
# a real runner: a tiny PyTorch CNN
# ---------------------------------------------------------------------------

S = 16


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    rng = np.random.default_rng(0)
    y = np.arange(240) % 4
    colours = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]])
    x = colours[y][:, None, None, :] * 0.7 + rng.random((240, S, S, 3)) * 70
    path = tmp_path_factory.mktemp("suite") / "colours.npz"
    np.savez(path, x=x.astype(np.uint8), y=y)
    return str(path)


TORCH_MODULE = """
from torch import nn


def cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 4))


def wider():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 4))
"""


@pytest.fixture
def torch_target(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    return import_source(tmp_path, monkeypatch, "suite_torch_models", TORCH_MODULE)


@pytest.fixture
def clock(monkeypatch):
    """A fake clock that the PyTorch runner's calls advance by fixed costs (see :mod:`fake_clock`)."""
    pytest.importorskip("torch")
    from modellint.probes.runner_torch import TorchRunner

    return charge(monkeypatch, TorchRunner, FakeClock())


@pytest.fixture
def cli_clock(clock, monkeypatch):
    """The command line's probe runs on the fake clock too (``run_probes`` as the CLI imports it)."""
    from modellint.probes import api

    real = api.run_probes

    def on_fake_clock(*args, **kwargs):
        return real(*args, **{**kwargs, "clock": clock, "clock_start": None})

    monkeypatch.setattr(api, "run_probes", on_fake_clock)
    return clock


def test_torch_suite_fits_budget_and_replays(torch_target, one_thread, npz, clock):
    from modellint.probes.api import run_probes
    from modellint.probes.runner import make_runner

    budget = 6.0
    graph, data, report = run_probes(torch_target.cnn(), npz, budget=budget, use_cache=False,
                                     input_shape=(1, 3, S, S), clock=clock)
    assert report.seconds <= budget * 1.1, report.settings["plan"]
    assert all(r.status == "ok" for r in report.results.values()), {k: r.notes for k, r in report.results.items()}
    # replaying the recorded plan gives the same numbers (timing decides the plan, the seed the rest)
    plan = report.settings["plan"]
    replay = run_suite(make_runner(graph, torch_target.cnn()), data, graph,
                       ProbeSettings(budget=budget, plan=plan))
    assert replay.settings["plan"]["steps"] == plan["steps"]
    _assert_same_results(report, replay)


def _assert_same_results(first_report, replay):
    """Every probe of ``replay`` measured what it measured in ``first_report`` (status, notes, numbers)."""
    assert list(replay.results) == list(first_report.results)
    for name, first in first_report.results.items():
        again = replay.results[name]
        assert again.status == first.status, name
        if first.status == "skipped":  # the replay says it follows the plan, not how much time was left
            continue
        assert again.notes == first.notes, name
        for key, curve in first.curves.items():
            assert np.allclose(curve, again.curves[key], atol=1e-6, equal_nan=True), (name, key)
        assert set(again.metrics) == set(first.metrics), name
        for key, value in first.metrics.items():
            if isinstance(value, float) and math.isfinite(value):
                assert value == pytest.approx(again.metrics[key], abs=1e-6), (name, key)
            elif not isinstance(value, (float, dict)):
                assert value == again.metrics[key], (name, key)


def test_torch_replay_repeats_where_the_clock_cut(torch_target, one_thread, npz, monkeypatch, clock):
    """A run slowed mid-suite (a busy machine) has loops cut by the clock; its replay on an idle machine
    cuts them at the same steps, so every number is the same: a plan records the cuts, not only the steps."""
    from modellint.probes.api import run_probes
    from modellint.probes.runner import make_runner
    from modellint.probes.runner_torch import TorchRunner

    step, calls = TorchRunner.step, {"n": 0, "slow": True}

    def busy_step(self, *a, **k):
        calls["n"] += 1
        if calls["slow"] and calls["n"] > 60:  # after the warm-up and the first probes: 4x slower steps
            clock.advance(0.06)
        return step(self, *a, **k)

    monkeypatch.setattr(TorchRunner, "step", busy_step)
    graph, data, report = run_probes(torch_target.cnn(), npz, budget=5.0, use_cache=False, input_shape=(1, 3, S, S),
                                     probes=("init_loss", "overfit_batch", "lr_range", "train_dynamics", "zero_input"),
                                     clock=clock)
    plan = report.settings["plan"]
    assert plan["cuts"], plan  # the clock cut at least one loop short
    for name in plan["cuts"]:
        assert any("time" in n for n in report.results[name].notes), (name, report.results[name].notes)
    calls["slow"] = False
    replay = run_suite(make_runner(graph, torch_target.cnn()), data, graph,
                       ProbeSettings(budget=5.0, probes=report.settings["probes"], plan=plan))
    assert replay.settings["plan"]["cuts"] == {} and replay.settings["plan"]["replayed"]
    _assert_same_results(report, replay)


def test_replayed_cuts_ignore_the_clock():
    """The cuts of a replayed plan decide, whatever the clock says; a live slot records its cuts."""
    live = Slot(steps=10, end=time.perf_counter() - 1.0)
    loop = live.loop()
    assert live.cut(loop, 3, lambda: True) and live.cuts == [[0, 3, True]]
    replayed = Slot(steps=10, end=time.perf_counter() - 1.0, replay_cuts=[[0, 5, True], [1, 2, 7]])
    a, b = replayed.loop(), replayed.loop()
    assert [replayed.cut(a, i, lambda: True) for i in range(7)] == [None] * 5 + [True, None]
    assert replayed.cut(b, 2, lambda: None) == 7 and replayed.cuts == []


def test_torch_interrupt_mid_probe(torch_target, one_thread, npz, monkeypatch, clock):
    from modellint.probes.api import run_probes
    from modellint.probes.runner_torch import TorchRunner

    calls = {"n": 0}
    step = TorchRunner.step

    def interrupting(self, x, y, *, measure=False):
        calls["n"] += 1
        if calls["n"] == 8:  # after the warm-up's 4 steps, inside overfit_batch
            raise KeyboardInterrupt
        return step(self, x, y, measure=measure)

    monkeypatch.setattr(TorchRunner, "step", interrupting)
    _, _, report = run_probes(torch_target.cnn(), npz, budget=20.0, use_cache=False, input_shape=(1, 3, S, S),
                              clock=clock)
    assert report.interrupted is True
    assert {k: r.status for k, r in report.results.items()} == {
        "init_loss": "ok", "overfit_batch": "interrupted", "linear_baseline": "ok"}


def test_cli_probe_interrupted_exits_130(torch_target, one_thread, npz, monkeypatch, tmp_path, capsys, cli_clock):
    """``modellint probe`` on Ctrl-C mid-suite: prints the partial report and exits 130; nothing cached."""
    from modellint.cli import main
    from modellint.probes.runner_torch import TorchRunner

    calls = {"n": 0}
    step = TorchRunner.step

    def interrupting(self, x, y, *, measure=False):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return step(self, x, y, measure=measure)

    monkeypatch.setattr(TorchRunner, "step", interrupting)
    monkeypatch.setenv("MODELLINT_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["probe", "suite_torch_models:cnn", "--data", npz, "--budget", "20", "--input-shape",
                 f"1,3,{S},{S}", "--format", "json", "--quiet"])
    out = capsys.readouterr()
    assert code == 130, out.err
    probes = json.loads(out.out)["reports"][0]["probes"]
    assert probes["interrupted"] is True
    assert probes["results"]["init_loss"]["status"] == "ok"
    assert probes["results"]["overfit_batch"]["status"] == "interrupted"
    assert not list((tmp_path / "cache").rglob("*.json"))  # an interrupted run is not cached
    calls["n"] = 0
    code = main(["probe", "suite_torch_models:cnn", "--data", npz, "--budget", "20", "--input-shape",
                 f"1,3,{S},{S}", "--format", "text"])
    out = capsys.readouterr()
    assert code == 130 and "probes interrupted (Ctrl-C): results are partial" in out.out, out.out


def test_torch_step_measures_in_one_transfer(torch_target, one_thread):
    """The runner's grad norms, weight norms and update ratios equal a plain computation of them,
    and a NaN in one gradient is caught."""
    import torch

    from modellint.adapters.torch_live import graph_from_module
    from modellint.probes.runner_torch import TorchRunner

    module = torch_target.cnn()
    runner = TorchRunner(graph_from_module(module, input_shape=(1, 3, S, S)), module)
    rng = np.random.default_rng(1)
    x, y = rng.random((8, S, S, 3), dtype=np.float32), np.arange(8) % 4
    runner.reset(0, 1e-2)
    runner.step(x, y)
    layers = dict(runner.model.named_modules())
    before = {name: layers[name].weight.detach().clone() for name in ("0", "3", "7")}
    st = runner.step(x, y, measure=True)
    assert set(st.grad_norm) == {"0", "3", "7"} and not st.nonfinite
    for name, w0 in before.items():
        w = layers[name].weight
        assert st.weight_norm[name] == pytest.approx(float(w0.double().norm()), rel=1e-6)
        assert st.grad_norm[name] == pytest.approx(float(w.grad.double().norm()), rel=1e-6)
        assert st.update_ratio[name] == pytest.approx(float((w.detach() - w0).double().norm() / w0.double().norm()),
                                                      rel=1e-5)
    # a NaN in one gradient only
    hook = layers["3"].weight.register_hook(lambda g: g.index_put((torch.tensor([0]),), torch.tensor(float("nan"))))
    try:
        assert runner.step(x, y).nonfinite
    finally:
        hook.remove()


# ---------------------------------------------------------------------------
# the range test with few steps, data_scaling's equal rows, the budget of the whole command
# ---------------------------------------------------------------------------

class CurveRunner(SleepRunner):
    """A runner whose loss is hand-made: during a range test's sweep (after ``set_lr``) ``sweep(lr)`` plus
    seeded noise of ``noise`` (standard deviation); in a run at a fixed rate (after ``reset``), ``run(lr, i)``
    at its step ``i``. A step takes ``step`` seconds of its fake clock, nothing else takes time."""

    def __init__(self, sweep, run=None, noise=0.0, step=0.0):
        super().__init__(step=step, image=0.0, reset=0.0, measure=0.0, trace=0.0)
        self.sweep, self.run, self.noise = sweep, run or (lambda lr, i: 2.0), noise
        self.rng = np.random.default_rng(0)
        self.lr, self.sweeping, self.i, self.rates = None, False, 0, []

    def reset(self, seed, lr):
        self.lr, self.sweeping, self.i = lr, False, 0
        self.rates.append(lr)

    def set_lr(self, lr):
        self.lr, self.sweeping = lr, True

    def step(self, x, y, *, measure=False):
        loss = self.sweep(self.lr) + self.noise * self.rng.standard_normal() if self.sweeping else \
            self.run(self.lr, self.i)
        self.i += 1
        self.clock.advance(self.s)
        return StepStats(loss=float(loss))


def _falling(centre=1e-3, top=2.5, bottom=1.0, blow=0.3):
    """A textbook sweep: flat at ``top`` for small rates, falling fastest at ``centre`` to ``bottom``, blowing
    up above ``blow``."""
    def loss(lr):
        t = 1 / (1 + math.exp(-3 * math.log10(lr / centre)))
        return top - (top - bottom) * t + (20 * (lr / blow - 1) if lr > blow else 0.0)
    return loss


def _lr_probe(runner, steps, lr=None, graph=NO_GRAPH):
    from modellint.probes.suite import _Costs, probe_lr_range

    return probe_lr_range(runner, _dataset(), graph, ProbeSettings(lr=lr), Slot(steps=steps, costs=_Costs(32)))


def _ml024(result):
    from modellint.build import example
    from modellint.engine import run_rules
    from modellint.rules import get_rule

    graph = example("seq(inp(8, 8, 3), conv(4, act='relu'), gap(), dense(4, act='softmax'))")
    probes = {"lr_range": {"status": "ok", "metrics": json.loads(json.dumps(result.metrics))}}
    return [f for f in run_rules(graph, [get_rule("ML024")], probes=probes).findings]


def test_sweep_covers_the_working_range_then_widens():
    """Few steps sweep the optimizer's working range widened a decade each side; more steps widen it at
    LR_PER_DECADE a decade, up to 1e-7..10."""
    from modellint.probes.suite import LR_FULL, sweep_range

    assert sweep_range(24, "adaptive") == (1e-5, 0.03)
    assert sweep_range(24, "sgd") == (1e-4, 3.0)
    lo, hi = sweep_range(60, "adaptive")
    assert math.log10(hi / lo) == pytest.approx(5.9, abs=0.01) and lo < 1e-5 and hi > 0.03
    assert sweep_range(81, "adaptive") == sweep_range(400, "sgd") == LR_FULL
    r = _lr_probe(CurveRunner(_falling()), 24)
    assert r.metrics["sweep"] == [1e-5, 0.03] and r.metrics["optimizer"] == "adam"


def test_read_sweep_short_noisy_and_long_clear():
    """Hand-made loss lists: a short, noisy sweep cannot be read; a long, clearly falling one can, and its
    steepest descent is where the curve falls fastest."""
    from modellint.probes.suite import LR_PER_DECADE, _ema_beta, lr_unreadable, read_sweep

    def sweep(n, lo, hi):
        return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]

    # 34 steps over 1e-6..1 (6 a decade), a loss of 3.0 +- 0.2 with no real fall: the seed
    lrs = sweep(34, 1e-6, 1.0)
    raw = [3.0, 3.08, 3.22, 3.02, 3.02, 2.82, 3.09, 3.33, 3.15, 2.81, 2.86, 2.65, 2.58, 2.70, 2.69, 2.80,
           2.91, 3.68, 3.70, 3.72, 3.50, 4.82, 3.22, 4.43, 6.54, 6.18, 6.84, 11.9, 13.3, 23.6, 30.0, 35.0,
           40.0, 50.0]
    m = read_sweep(lrs, raw, _ema_beta(34))
    why = lr_unreadable(m)
    assert m["per_decade"] < LR_PER_DECADE and any("per decade" in w for w in why), (m, why)
    # the same number of steps, but a long range at 10 a decade is readable when the loss clearly falls
    lrs = sweep(121, 1e-7, 10.0)
    curve = _falling()
    rng = np.random.default_rng(1)
    raw = [curve(lr) + 0.05 * rng.standard_normal() for lr in lrs]
    m = read_sweep(lrs, raw, _ema_beta(121))
    assert lr_unreadable(m) == [], m
    assert 1e-4 < m["steepest_lr"] < 1e-2  # within a decade of the true steepest descent (1e-3)
    # long but flat, noise only: its smoothed minimum is 14 % below the start, but only 1.6x the noise
    raw = [2.5 + 0.2 * rng.standard_normal() for _ in lrs]
    m = read_sweep(lrs, raw, _ema_beta(121))
    assert m["loss_drop"] > 0.1 and any("noise" in w for w in lr_unreadable(m)), m
    # falling fastest at the very start: the sweep began too high, its reading is the edge
    lrs = sweep(121, 1e-2, 10.0)
    raw = [2.5 * math.exp(-i / 15) + 0.3 for i in range(121)]
    m = read_sweep(lrs, raw, _ema_beta(121))
    assert m["steepest_at_start"] and any("start of the sweep" in w for w in lr_unreadable(m))


def test_lr_range_with_few_steps_gives_no_suggestion():
    from modellint.probes.suite import LR_MIN_SWEEP

    r = _lr_probe(CurveRunner(_falling(), noise=0.05), 24, lr=1e-3)
    assert r.metrics["steps"] == 24 < LR_MIN_SWEEP and r.metrics["suggested_lr"] is None
    assert r.notes and r.notes[0].startswith("no suggestion") and "fewer than 30" in r.notes[0]


def test_short_noisy_sweep_is_an_inconclusive_info():
    """The issue's case: Adam at 1e-3, a 34-step sweep of a noisy loss that barely falls: no suggestion, no
    confirmation run, and ML024 says 'inconclusive' as an info (never a warning)."""
    runner = CurveRunner(lambda lr: 2.9 - 0.15 * (lr > 1e-4), noise=0.2)
    r = _lr_probe(runner, 34, lr=1e-3)
    assert r.metrics["suggested_lr"] is None and r.metrics["confirm"] is None
    assert len(runner.rates) == 1  # the sweep only
    found = _ml024(r)  # its steepest descent (7e-05) is 14x below 1e-3, from 9.5 steps a decade
    assert [f.severity for f in found] == ["info"] and found[0].message.startswith("inconclusive"), found


def test_long_clear_sweep_confirmed_by_training_warns():
    """A 150-step range test: a 90-step sweep over 1e-7..10 that clearly falls around 1e-3, then 30 steps
    at the configured 0.3 (the loss stays high) and 30 at the suggestion (it falls): a warning."""
    def run(lr, i):
        return 2.5 if lr > 0.1 else 2.5 - 1.5 * (1 - math.exp(-i / 8))

    runner = CurveRunner(_falling(), run, noise=0.03)
    r = _lr_probe(runner, 150, lr=0.3)
    m = r.metrics
    # 90 sweep steps planned; the loss blows up above 0.3 and the sweep stops there
    assert m["steps"] < 90 and m["diverged_lr"] > 0.3 and m["sweep"] == [1e-7, 10.0] and m["per_decade"] >= 10, m
    assert 1e-4 < m["suggested_lr"] < 1e-2, m
    c = m["confirm"]
    assert c["steps"] == 30 and c["rate"] == m["suggested_lr"] and c["improvement"] > 0.25, c
    assert runner.rates[1:] == [0.3, m["suggested_lr"]]  # same seed, configured first
    assert len(r.curves["confirm_configured"]) == len(r.curves["confirm_suggested"]) == 30
    found = _ml024(r)
    assert [f.severity for f in found] == ["warning"], [f.message for f in found]
    assert "30 steps from the same weights" in found[0].message


def test_sweep_not_confirmed_by_training_is_an_info():
    """The same sweep, but the configured rate trains as well as the suggestion: not a warning."""
    runner = CurveRunner(_falling(), lambda lr, i: 2.5 - 1.0 * (1 - math.exp(-i / 8)), noise=0.03)
    r = _lr_probe(runner, 150, lr=0.3)
    assert r.metrics["confirm"]["improvement"] == pytest.approx(0.0)
    found = _ml024(r)
    assert [f.severity for f in found] == ["info"] and found[0].message.startswith("not confirmed")


def test_sweep_behind_the_plan_leaves_the_confirmation_its_time():
    """On the fake clock: 150 planned steps of 0.01 s but 1.45 s left. The sweep, behind, compresses its range
    into fewer steps so that the two confirmation runs still fit before the time limit."""
    from modellint.probes.suite import _Costs, probe_lr_range

    def run(lr, i):
        return 2.5 if lr > 0.1 else 2.5 - 1.5 * (1 - math.exp(-i / 8))

    runner = CurveRunner(_falling(blow=100.0), run, noise=0.03, step=0.01)
    costs = _Costs(32)
    costs.step_s[(32, False)], costs.reset_s = 0.01, 0.0
    end = runner.clock() + 1.45
    slot = Slot(steps=150, end=end, costs=costs, clock=runner.clock)
    r = probe_lr_range(runner, _dataset(), NO_GRAPH, ProbeSettings(lr=0.3), slot)
    m = r.metrics
    assert 80 <= m["steps"] < 90 and "behind the time plan" in slot.stopped, (m, slot.stopped)
    assert m["suggested_lr"] and m["confirm"]["steps"] >= 25, m
    assert runner.clock() <= end + 0.01


def test_too_few_steps_for_a_confirmation():
    """Under LR_CONFIRM_MIN / LR_CONFIRM_SHARE steps the sweep gets them all and nothing confirms it."""
    from modellint.probes.suite import LR_CONFIRM_MIN, LR_CONFIRM_SHARE

    steps = int(LR_CONFIRM_MIN / LR_CONFIRM_SHARE) - 1
    runner = CurveRunner(_falling(blow=100.0), noise=0.03)
    r = _lr_probe(runner, steps, lr=0.3)
    assert r.metrics["steps"] == steps and r.metrics["confirm"] is None and len(runner.rates) == 1
    assert r.metrics["suggested_lr"] and any(n.startswith("not confirmed") for n in r.notes), r.metrics
    found = _ml024(r)
    assert [f.severity for f in found] == ["info"] and "did not check it" in found[0].message


def test_data_scaling_rows_train_equally_or_skip():
    from modellint.probes.suite import Slot, _Costs, probe_data_scaling

    data, costs = _dataset(), _Costs(32)
    costs.step_s[(32, False)], costs.reset_s, costs.eval_img = 0.01, 0.0, 0.0
    runner = SleepRunner(step=0.01, reset=0.0, image=0.0)
    end = runner.clock() + 0.6  # room for ~20 steps a row, not the 100 planned
    r = probe_data_scaling(runner, data, NO_GRAPH, ProbeSettings(),
                           Slot(steps=300, end=end, costs=costs, clock=runner.clock))
    steps = [row["steps"] for row in r.metrics["rows"]]
    assert len(set(steps)) == 1 and 5 <= steps[0] < 100, steps
    assert r.notes and "per row" in r.notes[0]
    runner = SleepRunner(step=0.01, reset=0.0, image=0.0)
    r = probe_data_scaling(runner, data, NO_GRAPH, ProbeSettings(),
                           Slot(steps=300, end=runner.clock() + 0.05, costs=costs, clock=runner.clock))
    assert r.status == "skipped" and "unequal" in r.notes[0]


def test_cli_plan_replays_a_recorded_run(torch_target, one_thread, npz, tmp_path, monkeypatch, cli_clock):
    """`modellint probe --plan earlier.json` replays the earlier plan: the same numbers."""
    import json

    from modellint.cli import main

    monkeypatch.setenv("MODELLINT_CACHE_DIR", str(tmp_path / "cache"))
    args = ["probe", "suite_torch_models:cnn", "--input-shape", "1,3,16,16", "--data", npz, "--budget", "6",
            "--probes", "init_loss,overfit_batch,train_dynamics", "--no-cache", "--exit-zero", "-q",
            "--format", "json"]
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert main(args + ["--output-file", str(first)]) == 0
    assert main(args + ["--output-file", str(second), "--plan", str(first)]) == 0
    a, b = (json.loads(p.read_text())["reports"][0]["probes"] for p in (first, second))
    assert b["settings"]["plan"]["replayed"]
    assert "factory" in a["settings"]["init"]  # a code target: its factory initialises every reset
    assert a["settings"]["plan"]["steps"] == b["settings"]["plan"]["steps"]
    for name in a["settings"]["plan"]["cuts"]:  # a busy machine cut it: the replay cuts it alike
        assert a["results"][name]["notes"] == b["results"][name]["notes"], name
    for name in ("init_loss", "overfit_batch", "train_dynamics"):
        assert a["results"][name]["metrics"] == b["results"][name]["metrics"], name
    (tmp_path / "bad.json").write_text("{}")
    assert main(args + ["--plan", str(tmp_path / "bad.json")]) == 2
    # another model replaying the plan trains the same steps: a comparison after equal training
    other = tmp_path / "other.json"
    args[1] = "suite_torch_models:wider"
    assert main(args + ["--output-file", str(other), "--plan", str(first)]) == 0
    c = json.loads(other.read_text())["reports"][0]["probes"]
    assert c["settings"]["plan"]["steps"] == a["settings"]["plan"]["steps"]
    for name in ("overfit_batch", "train_dynamics"):
        assert c["results"][name]["metrics"]["steps"] == a["results"][name]["metrics"]["steps"], name
    assert c["results"]["train_dynamics"]["metrics"] != a["results"]["train_dynamics"]["metrics"]


@pytest.mark.parametrize("plan, problem", [
    ([1, 2], "not a JSON object"),
    ({"eval_images": 64}, "no step plan"),
    ({"steps": {"train_dynamics": "400"}}, "'steps' of train_dynamics"),
    ({"steps": {"train_dynamics": 10**9}}, "'steps' of train_dynamics"),
    ({"steps": {"train_dynamics": True}}, "'steps' of train_dynamics"),
    ({"steps": {"rm -rf": 10}}, "unknown probe"),
    ({"steps": {}, "eval_images": -5}, "'eval_images'"),
    ({"steps": {}, "skipped": "lr_range"}, "'skipped'"),
    ({"steps": {}, "cuts": {"train_dynamics": [[0, 5]]}}, "'cuts'"),
    ({"steps": {}, "cuts": {"train_dynamics": [[0, 5, "x"]]}}, "'cuts'"),
])
def test_cli_refuses_a_bad_plan(tmp_path, capsys, plan, problem):
    """A hand-edited or hostile --plan file: one line naming the file and the problem, exit 2, before any
    model or data is read."""
    from modellint.cli import main

    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    assert main(["probe", str(tmp_path / "no-model.h5"), "--data", str(tmp_path / "no-data"),
                 "--plan", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and problem in err, err
    assert "Traceback" not in err


def test_api_refuses_a_bad_plan(npz):
    from modellint.errors import ConfigError
    from modellint.probes.api import run_probes

    with pytest.raises(ConfigError, match="'steps' of lr_range"):
        run_probes(str(Path(__file__).parent.parent / "examples" / "seed_cnn.h5"), npz, budget=5,
                   plan={"steps": {"lr_range": -1}}, use_cache=False)


def test_budget_counts_from_the_callers_clock(torch_target, one_thread, npz, clock):
    """`clock_start` (what the CLI passes: its own start) makes earlier work count against the budget."""
    from modellint.probes.api import run_probes

    begun = clock() - 2.0  # two seconds already spent, e.g. importing a framework
    _, _, report = run_probes(torch_target.cnn(), npz, budget=4.0, use_cache=False, input_shape=(1, 3, S, S),
                              probes=("init_loss", "overfit_batch"), clock_start=begun, clock=clock)
    assert report.settings["setup_s"] >= 2.0
    assert report.settings["suite_budget"] == pytest.approx(4.0 - report.settings["setup_s"], abs=0.02)
    assert report.results["overfit_batch"].status == "ok"
    assert clock() - begun <= 4.0 * 1.1


def test_budget_reads_the_wall_clock_by_default(torch_target, one_thread, npz):
    """Without a clock the budget is wall-clock seconds from the call (only loose bounds: the machine may be
    busy)."""
    from modellint.probes.api import run_probes

    begun = time.perf_counter()
    _, _, report = run_probes(torch_target.cnn(), npz, budget=3.0, use_cache=False, input_shape=(1, 3, S, S),
                              probes=("init_loss",))
    took = time.perf_counter() - begun
    assert 0 <= report.settings["setup_s"] <= took
    assert report.settings["budget"] == 3.0


def test_probe_run_leaves_input_size_to_the_data_checks(torch_target, one_thread, npz, tmp_path, monkeypatch,
                                                        capsys, cli_clock):
    """After a probe run ML901 does not ask for --image-size: ML006/ML007 read every image (here 16x16
    images into a 24x24 model: ML006 says so, once)."""
    from modellint.cli import main

    monkeypatch.setenv("MODELLINT_CACHE_DIR", str(tmp_path / "cache"))
    args = ["probe", "suite_torch_models:cnn", "--input-shape", "1,3,24,24", "--data", npz, "--budget", "4",
            "--probes", "init_loss", "--exit-zero", "-q"]
    assert main(args + ["--format", "json", "--output-file", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())["reports"][0]
    assert "covered by the data checks ML006, ML007" in report["rules_skipped"]["ML901"]
    assert [f["code"] for f in report["findings"]].count("ML006") == 1
    capsys.readouterr()
    assert main([a for a in args if a != "-q"]) == 0  # -q drops the summary line
    assert "1 covered by the data checks)" in capsys.readouterr().out  # the others: no weights read


def test_epochs_count_passes_over_the_training_images():
    """train_dynamics and every data_scaling row say how many passes over their training images they made
    (ML030 reads it): steps x batch size / images."""
    report, _ = _run(SleepRunner(), 3.0, probes=("train_dynamics", "data_scaling"))
    td = report.results["train_dynamics"].metrics
    assert td["epochs"] == pytest.approx(td["steps"] * 32 / 400, abs=1e-3)
    for row in report.results["data_scaling"].metrics["rows"]:
        assert row["epochs"] == pytest.approx(row["steps"] * 32 / row["samples"], abs=1e-3), row


def test_cache_sees_every_image(torch_target, one_thread, tmp_path, monkeypatch, clock):
    """The probe cache keys on every image's pixels and label: changing only the last image of 240 (or only
    its label) runs the probes again; the same data hits the cache."""
    from modellint.probes import runner as runner_module
    from modellint.probes.api import run_probes

    monkeypatch.setenv("MODELLINT_CACHE_DIR", str(tmp_path / "cache"))
    built = []
    make = runner_module.make_runner
    monkeypatch.setattr(runner_module, "make_runner", lambda *a, **k: built.append(1) or make(*a, **k))
    rng = np.random.default_rng(0)
    x, y = (rng.random((240, S, S, 3)) * 255).astype(np.uint8), np.arange(240) % 4
    path = tmp_path / "d.npz"

    def probe(x, y):
        np.savez(path, x=x, y=y)
        run_probes(torch_target.cnn(), str(path), budget=5, probes=("init_loss",), input_shape=(1, 3, S, S),
                   clock=clock)
        return len(built)

    assert probe(x, y) == 1
    assert probe(x, y) == 1  # cached
    x2 = x.copy()
    x2[-1, 0, 0, 0] ^= 1
    assert probe(x2, y) == 2
    y2 = y.copy()
    y2[-1] = (y2[-1] + 1) % 4
    assert probe(x2, y2) == 3


def test_cache_sees_a_code_targets_init_code(tmp_path, monkeypatch, one_thread, npz, clock):
    """A code target whose init code changes (same architecture) is probed again, not served from cache."""
    from modellint.probes import runner as runner_module
    from modellint.probes.api import run_probes

    monkeypatch.setenv("MODELLINT_CACHE_DIR", str(tmp_path / "cache"))
    built = []
    make = runner_module.make_runner
    monkeypatch.setattr(runner_module, "make_runner", lambda *a, **k: built.append(1) or make(*a, **k))
    import_source(tmp_path, monkeypatch, "cached_models", TORCH_MODULE)
    for expected in (1, 1):
        run_probes("cached_models:cnn", npz, budget=5, probes=("init_loss",), input_shape=(1, 3, S, S), clock=clock)
        assert len(built) == expected
    (tmp_path / "cached_models.py").write_text(TORCH_MODULE + "\n# init changed: nn.init.zeros_(...)\n")
    run_probes("cached_models:cnn", npz, budget=5, probes=("init_loss",), input_shape=(1, 3, S, S), clock=clock)
    assert len(built) == 2


# ---------------------------------------------------------------------------
# planning for a verdict: train_dynamics on a subset it covers, and saying up front when none fits
# ---------------------------------------------------------------------------

def _big_run(budget, said=None):
    """The suite on 8,000 training images of 13 classes (a whole pass would take 250 steps of 32)."""
    runner = SleepRunner()
    data = _dataset(n=8000, nv=400, s=4, classes=13)
    report = run_suite(runner, data, NO_GRAPH, ProbeSettings(budget=budget), clock=runner.clock,
                       progress=(lambda name, msg: said.append((name, msg))) if said is not None else None)
    return report, data


def test_verdict_subset_is_stratified_covered_and_fixed_by_the_seed():
    from modellint.probes.suite import VERDICT_STEPS, verdict_subset

    y = np.arange(8000) % 13
    settings = ProbeSettings(batch_size=32, seed=3)
    idx = verdict_subset(120, y, settings)
    assert len(idx) == 120 * 32 and np.all(np.diff(idx) > 0)          # one pass of 120 steps of 32
    counts = np.bincount(y[idx], minlength=13)
    assert counts.max() - counts.min() <= 1, counts                     # every class in its share
    assert np.array_equal(idx, verdict_subset(120, y, settings))        # a replay trains on the same
    assert not np.array_equal(idx, verdict_subset(120, y, ProbeSettings(batch_size=32, seed=4)))
    assert verdict_subset(VERDICT_STEPS - 1, y, settings) is None       # no verdict anyway: the whole split
    assert verdict_subset(250, y, settings) is None                     # the steps cover the whole split


def test_train_dynamics_trains_on_a_subset_its_steps_cover():
    report, data = _big_run(12.0)
    td = report.results["train_dynamics"]
    steps = report.settings["plan"]["steps"]["train_dynamics"]
    assert steps >= 100 and steps * 32 < len(data.y_train)
    assert td.metrics["train_images"] == steps * 32 and td.metrics["train_split"] == 8000
    assert td.metrics["epochs"] == pytest.approx(1.0, abs=0.05)        # every image it learns from, once
    assert f"subset of {steps * 32:,} of the 8,000 training images" in td.notes[0]
    assert report.settings["plan"]["verdict"] == {"possible": True, "steps": steps}
    # the fake loss falls 1 % a step: the last quarter's mean is 0.99^(steps/4) of the third's (ML030 reads it)
    ran = td.metrics["steps"]
    assert ran % 4 == 0 and td.metrics["last_quarter_fall"] == pytest.approx(1 - 0.99 ** (ran // 4), abs=1e-4)


def test_no_verdict_is_said_before_training():
    said = []
    report, data = _big_run(3.0, said)
    verdict = report.settings["plan"]["verdict"]
    assert verdict["possible"] is False and verdict["steps"] < 100
    assert "no verdict about learning is possible in this budget" in verdict["why"]
    # said before the first probe that trains
    names = [n for n, _ in said]
    assert names.index("plan") < names.index("overfit_batch")
    # too few steps for a verdict: the whole split, not a subset
    assert report.results["train_dynamics"].metrics["train_images"] == 8000
    # the suggested budget is enough: with it, the plan finds a verdict
    more = float(verdict["why"].split("a --budget about ")[1].split(" s larger")[0])
    assert _big_run(3.0 + more)[0].settings["plan"]["verdict"]["possible"]


def test_the_verdict_opens_with_the_budget_line():
    from modellint.reports.verdict import lines

    report, _ = _big_run(3.0)
    r = types.SimpleNamespace(probes=report, findings=[], comparison=None)
    out = lines(r)
    assert out[0]["label"] == "budget" and out[0]["mark"] == "?" and "no verdict" in out[0]["text"]
    report, _ = _big_run(12.0)
    r.probes = report
    assert all(line["label"] != "budget" for line in lines(r))
