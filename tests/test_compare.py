"""``modellint probe MODEL --compare OTHER``: the statistics against hand-computed values, the plan for a
verdict against hand-computed step counts (on a fake clock: nothing here depends on how fast the
machine is), the same split/subset/seeds/batches for both models, Ray against in-process, the report.

A comparison of a model with itself must give identical numbers seed by seed: any difference in split,
subset, seed or batch order between the two sides would show. The whole file takes a few seconds
(the Ray test about ten more, and is skipped without Ray)."""

import json
import math
import types

import numpy as np
import pytest

from conftest import import_source
from fake_clock import FakeClock, charge

from modellint.probes import compare as cmp
from modellint.probes.compare import Costs, Source, compare_values, plan_comparison, stratified_subset

S = 16

MODELS = """
from torch import nn


def cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 4))


def linear():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))
"""


# -- statistics, by hand -------------------------------------------------------------------------

def test_a_clear_win_with_its_spread_and_p_value():
    r = compare_values([0.10, 0.12, 0.11], [0.40, 0.45, 0.50])
    # differences 0.30, 0.33, 0.39: mean 0.34, sample std sqrt((0.04² + 0.01² + 0.05²) / 2) = sqrt(0.0021)
    assert r["diff"] == pytest.approx(0.34)
    assert r["diff_spread"] == pytest.approx(math.sqrt(0.0021))
    assert r["model_spread"] == pytest.approx(0.01) and r["other_spread"] == pytest.approx(0.05)
    # Student's t with 2 degrees of freedom: two-sided p = 1 - t / sqrt(t² + 2)
    t = 0.34 / (math.sqrt(0.0021) / math.sqrt(3))
    assert r["p_value"] == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-6)
    assert r["winner"] == "other" and r["won_seeds"] == 3 and r["sure"]
    text = cmp.verdict_text(r, {"model": "seed.h5", "other": "fixed.keras"}, 300)
    assert text.startswith("fixed.keras is better (sure: better in 3 of 3 seeds")
    assert "+34.0 ± 4.6 points over 3 seeds after 300 steps" in text
    assert cmp.measured_effect(r, 300) == "validation accuracy 11 % → 45 % (3 seeds, ± 5 %) after 300 steps"


def test_spread_covering_the_difference_is_no_difference():
    r = compare_values([0.50, 0.60, 0.40], [0.55, 0.50, 0.50])
    # differences +0.05, -0.10, +0.10: mean 0.0167 < their spread 0.115
    assert r["diff"] == pytest.approx(0.05 / 3)
    assert r["diff_spread"] == pytest.approx(math.sqrt(((0.05 - 0.05 / 3) ** 2 + (-0.1 - 0.05 / 3) ** 2 +
                                                         (0.1 - 0.05 / 3) ** 2) / 2))
    assert r["winner"] is None and not r["sure"]
    assert cmp.verdict_text(r, {"model": "a", "other": "b"}, 50).startswith("no difference measured")
    assert cmp.measured_effect(r, 50).endswith("no difference measured")


def test_a_likely_win_that_is_not_sure_and_lower_loss_wins():
    r = compare_values([0.30, 0.30, 0.30], [0.50, 0.28, 0.60])
    # differences +0.20, -0.02, +0.30: mean 0.16, within its sample std 0.1637: no winner
    assert r["diff_spread"] == pytest.approx(0.16371, abs=1e-4) and r["winner"] is None
    r = compare_values([0.30, 0.30, 0.30], [0.50, 0.29, 0.50])  # +0.2, -0.01, +0.2: mean 0.13 > std 0.121
    assert r["winner"] == "other" and r["won_seeds"] == 2 and not r["sure"]
    loss = compare_values([1.0, 1.1, 1.2], [0.5, 0.6, 0.7], higher_is_better=False)
    assert loss["winner"] == "other" and loss["diff"] == pytest.approx(-0.5) and loss["p_value"] < 1e-12


def test_one_seed_gives_no_verdict():
    r = compare_values([0.1], [0.9])
    assert r["winner"] is None and r["p_value"] is None
    assert cmp.verdict_text(r, {"model": "a", "other": "b"}, 10).startswith("no verdict: 1 seed")


# -- the plan ------------------------------------------------------------------------------------

def test_plan_fits_seeds_then_sizes_the_subset_for_one_epoch():
    costs = {"model": Costs(step=0.2), "other": Costs(step=0.3)}
    p = plan_comparison(100.0, costs, n_train=4000, n_val=800, classes=13)
    # 3 seeds x (0.2 + 0.3) s a step: 66 steps fit, 60 on the grid; one pass over 60 x 32 images
    assert (p["verdict"], p["seeds"], p["steps"], p["subset"], p["epochs"]) == (True, 3, 60, 1920, 1.0)
    assert p["eval_images"] == 800
    p = plan_comparison(40.0, costs, n_train=4000, n_val=800, classes=13)
    # 3 seeds: 26 steps, under MIN_STEPS; 2 seeds: 40 steps
    assert (p["seeds"], p["steps"], p["subset"]) == (2, 40, 1280)
    p = plan_comparison(500.0, costs, n_train=1000, n_val=200, classes=13)
    assert p["subset"] == 1000 and p["steps"] == 300 and p["epochs"] == 9.6  # 333 fit -> 300; all images
    fixed = {"model": Costs(step=0.2, reset=1.0, eval_image=0.01), "other": Costs(step=0.3, reset=1.0, eval_image=0.01)}
    # each run also costs a reset (1 s) and (4 x 128 + 800) evaluated images (13.12 s): 3 x 2 x 14.12 = 84.72 s
    p = plan_comparison(100.0 + 84.72, fixed, n_train=4000, n_val=800, classes=13)
    assert p["steps"] == 60 and p["val_points"] == 4
    # 30 s for steps with the validation points: 20 steps; without them (6 x 9 s fixed): 40.48 -> 40 steps
    p = plan_comparison(30.0 + 84.72, fixed, n_train=4000, n_val=800, classes=13)
    assert (p["seeds"], p["steps"], p["val_points"]) == (3, 40, 0)


def test_plan_says_up_front_when_no_verdict_fits():
    p = plan_comparison(20.0, {"model": Costs(step=0.2), "other": Costs(step=0.3)}, n_train=4000, n_val=800,
                        classes=13)
    assert not p["verdict"] and "no verdict possible" in p["why"] and "20 steps" in p["why"]
    assert "about 30 s would do" in p["why"]  # 2 seeds x 30 steps x 0.5 s


def test_stratified_subset_keeps_the_class_shares():
    y = np.repeat(np.arange(4), [100, 100, 100, 300])
    idx = stratified_subset(y, 60, seed=3)
    assert len(idx) == 60 and np.all(np.diff(idx) > 0)
    assert np.bincount(y[idx]).tolist() == [10, 10, 10, 30]
    assert stratified_subset(y, 60, seed=3).tolist() == idx.tolist()
    assert len(stratified_subset(y, 0, seed=3)) == 600


# -- real runs -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    rng = np.random.default_rng(0)
    y = np.arange(240) % 4
    colours = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]])
    x = colours[y][:, None, None, :] * 0.5 + rng.random((240, S, S, 3)) * 120
    path = tmp_path_factory.mktemp("compare") / "colours.npz"
    np.savez(path, x=x.astype(np.uint8), y=y)
    return str(path)


@pytest.fixture
def models(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    cmp.clear_caches()
    yield import_source(tmp_path, monkeypatch, "compare_models", MODELS)
    cmp.clear_caches()


@pytest.fixture
def clock(monkeypatch):
    pytest.importorskip("torch")
    from modellint.probes.runner_torch import TorchRunner

    return charge(monkeypatch, TorchRunner, FakeClock())


def _src(name):
    return Source(f"compare_models:{name}", input_shape=(1, 3, S, S))


PLAN = {"seeds": 2, "steps": 12, "subset": 64, "eval_images": 48}


def test_a_model_against_itself_is_identical_seed_by_seed(models, npz, one_thread):
    c = cmp.compare(_src("cnn"), _src("cnn"), npz, plan=PLAN, seed=5)
    assert c.status == "ok" and len(c.runs) == 4
    by = {(r["role"], r["seed"]): r for r in c.runs}
    for seed in (5, 6):
        a, b = by[("model", seed)], by[("other", seed)]
        assert a["curves"]["loss"] == b["curves"]["loss"]  # same subset, batches and initial weights
        assert (a["val_accuracy"], a["val_loss"]) == (b["val_accuracy"], b["val_loss"])
        assert a["train_images"] == 64 and a["steps"] == 12 and a["val_images"] == 48
    assert by[("model", 5)]["curves"]["loss"] != by[("model", 6)]["curves"]["loss"]  # the seed matters
    assert c.accuracy["diff"] == 0 and c.accuracy["winner"] is None
    assert c.verdict.startswith("no difference measured")
    assert c.names == {"model": "compare_models:cnn (model)", "other": "compare_models:cnn (other)"}


def test_planned_on_the_clock_and_refused_up_front(models, npz, one_thread, clock):
    start = clock()
    c = cmp.compare(_src("linear"), _src("cnn"), npz, budget=10.0, clock=clock)
    # timing: per model a reset (0.02 s), 4 steps (0.08 s) and two evaluations of 48 images (0.0192 s):
    # 0.2384 s, after building the runners (each resets once: loading). Left about 9.72 s, 95 % planned.
    # Each run: a reset and (4 x 48 + 48) images (0.068 s); 3 seeds x 2 models: 0.408 s; a step of both
    # models 3 x 0.04 s: (0.95 x 9.72 - 0.408) / 0.12 = 73 steps -> 60 on the grid, 60 x 32 > 192 images
    left = c.plan["budget_left_s"]
    assert 9.7 < left <= 10 - 0.2384
    # the runs: 6 x (a reset, 60 steps, 240 evaluated images) = 6 x 1.268 s
    assert clock() - start == pytest.approx(10 - left + 6 * 1.268, abs=0.006)  # left is rounded to 0.01 s
    assert (c.plan["seeds"], c.plan["steps"], c.plan["subset"]) == (3, 60, 192)
    assert sorted({r["seed"] for r in c.runs}) == [0, 1, 2] and {r["steps"] for r in c.runs} == {60}
    before = clock()
    refused = cmp.compare(_src("linear"), _src("cnn"), npz, budget=1.0, clock=clock)
    assert refused.status == "no_verdict" and "no verdict possible" in refused.why and not refused.runs
    assert clock() - before == pytest.approx(2 * 0.1192)  # only the timing steps were spent


def test_ray_gives_the_in_process_numbers(models, npz, one_thread, tmp_path):
    ray = pytest.importorskip("ray")
    import os
    import sys

    local = cmp.compare(_src("linear"), _src("cnn"), npz, plan=PLAN)
    cmp.clear_caches()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
                                       "OMP_NUM_THREADS": "1"}})
    try:
        remote = cmp.compare(_src("linear"), _src("cnn"), npz, plan=PLAN, executor="ray")
    finally:
        ray.shutdown()
    assert remote.executor == "ray"
    key = lambda r: (r["role"], r["seed"])  # noqa: E731
    for a, b in zip(sorted(local.runs, key=key), sorted(remote.runs, key=key)):
        assert key(a) == key(b)
        assert a["curves"]["loss"] == pytest.approx(b["curves"]["loss"], rel=1e-6, abs=1e-7)
        assert a["val_accuracy"] == b["val_accuracy"] and a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)
    assert local.accuracy == remote.accuracy


def test_jobs_are_picklable_and_executors_found_by_name():
    import pickle

    from modellint.errors import ConfigError
    from modellint.probes.executors import InProcess, get_executor

    job = cmp.RunJob(role="model", source=_src("cnn"), data="x.npz", seed=1, steps=3, subset=0)
    assert pickle.loads(pickle.dumps(job)) == job
    assert isinstance(get_executor(None), InProcess) and get_executor("inprocess").map(abs, [-1, 2]) == [1, 2]
    with pytest.raises(ConfigError, match="unknown executor"):
        get_executor("dask")


# -- reports -------------------------------------------------------------------------------------

def _comparison(diffs=(0.3, 0.33, 0.39)):
    a = [0.1, 0.12, 0.11]
    c = cmp.Comparison(names={"model": "seed.h5", "other": "fixed.keras"}, sources={"model": "seed.h5",
                                                                                   "other": "fixed.keras"})
    c.plan = {"seeds": 3, "steps": 300, "subset": 1920, "batch_size": 32, "eval_images": 500,
              "subset_note": "each run trains 300 steps on a class-stratified subset of 1,920 of the 2,080 "
                             "training images (5 passes)"}
    c.runs = [{"role": role, "seed": s, "val_accuracy": v, "val_loss": 1.0, "curves": {"loss": [2.0, 1.0],
                                                                                       "val_step": [2],
                                                                                       "val_accuracy": [v]}}
              for s in range(3) for role, v in (("model", a[s]), ("other", a[s] + diffs[s]))]
    c.accuracy = compare_values(a, [x + d for x, d in zip(a, diffs)])
    c.loss = compare_values([1.0] * 3, [1.0] * 3, higher_is_better=False)
    c.verdict = cmp.verdict_text(c.accuracy, c.names, 300)
    c.effect = cmp.measured_effect(c.accuracy, 300)
    return c


def test_measured_effect_replaces_the_expected_effect():
    from modellint.build import example as build
    from modellint.engine import run_rules, select_rules
    from modellint.reports.html import render
    from modellint.reports.text import render as text

    seed = build("seq(inp(32, 32, 3), conv(16, act='linear'), conv(16, act='linear'), gap(), "
                 "dense(10, act='softmax'))")
    fixed = build("seq(inp(32, 32, 3), conv(16, act='relu'), conv(16, act='relu'), gap(), dense(10, act='softmax'))")
    report = run_rules(seed, select_rules())
    other = run_rules(fixed, select_rules())
    assert "ML201" in {f.code for f in report.findings} and "ML201" not in {f.code for f in other.findings}
    c = _comparison()
    codes = cmp.apply_measured_effect(report, c, other)
    assert "ML201" in codes
    f = next(f for f in report.findings if f.code == "ML201")
    assert f.evidence["measured_effect"] == "validation accuracy 11 % → 45 % (3 seeds, ± 5 %) after 300 steps"
    report.comparison = c
    page = render([report])
    assert "<b>Measured effect:</b> validation accuracy 11 % → 45 % (3 seeds, ± 5 %) after 300 steps" in page
    assert page.index('id="verdict') < page.index('id="recommendations')  # the verdict comes first
    assert "fixed.keras seed 2" in page  # both models' curves, one per seed
    out = text([report])
    assert out.splitlines()[2] == "verdict (measured on your data):"
    assert "fixed.keras is better (sure" in out.splitlines()[3]
    assert json.loads(report.to_json())["comparison"]["accuracy"]["winner"] == "other"


def test_verdict_marks_come_from_the_findings():
    from modellint.engine import Report
    from modellint.probes.suite import ProbeReport, ProbeResult
    from modellint.reports.verdict import lines
    from modellint.rules.base import Finding

    probes = ProbeReport(results={
        "overfit_batch": ProbeResult("overfit_batch", metrics={"initial_loss": 2.5, "final_loss": 0.01, "batch": 16,
                                                               "steps": 60}),
        "zero_input": ProbeResult("zero_input", metrics={}),
        "lr_range": ProbeResult("lr_range", status="skipped", notes=["skipped for the budget"])})
    report = Report(graph=types.SimpleNamespace(), probes=probes, findings=[
        Finding("ML302", "output-head", "error", "raw scores into a probability loss"),
        Finding("ML022", "training", "info", "inconclusive: real inputs give 8 %")])
    got = {i["label"]: i for i in lines(report)}
    assert got["cause first"]["mark"] == "!" and "ML302" in got["cause first"]["text"]
    assert lines(report)[0]["label"] == "cause first"
    assert got["overfits one batch"]["mark"] == "✓" and "2.5 → 0.01 on 16 images in 60 steps" in \
        got["overfits one batch"]["text"]
    assert got["beats zeroed inputs"]["mark"] == "?"
    assert got["network vs linear baseline"]["mark"] == "–"
    assert got["learning rate vs range test"]["text"].startswith("not measured: lr_range skipped")


# -- the command line ----------------------------------------------------------------------------

def test_cli_compare_json_and_text(models, npz, one_thread, clock, monkeypatch, tmp_path, capsys):
    from modellint.cli import main
    from modellint.probes import api

    real = api.compare
    monkeypatch.setattr(api, "compare", lambda *a, **k: real(*a, **{**k, "clock": clock, "clock_start": None,
                                                                     "plan": PLAN}))
    args = ["probe", "compare_models:linear", "--compare", "compare_models:cnn", "--data", npz, "--input-shape",
            f"1,3,{S},{S}", "--probes", "none", "--exit-zero", "--no-cache"]
    assert main(args + ["--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)["reports"][0]
    assert data["comparison"]["plan"]["steps"] == 12 and len(data["comparison"]["runs"]) == 4
    assert data["probes"] is None
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "verdict (measured on your data):" and "compared with compare_models:cnn" in out[3]


def test_compare_fix_runs_fix_or_refuses(monkeypatch, tmp_path):
    import modellint
    from modellint.cli import _fixed_model
    from modellint.errors import ConfigError

    asked = {}

    def fake_fix(model, *, out=None, **kw):
        asked.update(model=model, out=out)
        return types.SimpleNamespace(path=f"{out}/seed_fixed.keras")

    monkeypatch.setattr(modellint, "fix", fake_fix, raising=False)
    args = types.SimpleNamespace(model="examples/seed_cnn.h5")
    path = _fixed_model(args)
    assert asked["model"] == "examples/seed_cnn.h5" and path == f"{asked['out']}/seed_fixed.keras"
    monkeypatch.delattr(modellint, "fix")
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(ConfigError, match="--compare fix needs `modellint fix`"):
        _fixed_model(args)
