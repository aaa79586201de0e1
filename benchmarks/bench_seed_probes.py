"""The probes on the seed model and the fixed one, on the synthetic 13-class data at 128 px.

Issue: "On the synthetic 13-class data at 128 px, the seed model and examples/seed_cnn_fixed
are probed within the default budget, and the fixed model's validation accuracy after the
same step budget is reported beside the seed's."

Prints, measured in this run on this machine:

  * per model (examples/seed_cnn.h5, examples/seed_cnn_fixed.h5), every probe within
    ``--budget`` seconds (default: the CLI's, 180 s): the suite's seconds against the
    budget, the whole call's wall and CPU seconds (model and data loading included), the
    plan (steps per probe), train_dynamics' validation accuracy, the data_scaling rows,
    the linear baseline's accuracy and the findings' codes;
  * the two models side by side. The suite plans its steps from each model's own step
    time, so within one budget the faster model trains more steps: those accuracies are
    "after the same time budget", not the same steps;
  * therefore also an equal-steps comparison: each model trained from fresh seeded
    weights with its own configured optimizer and learning rate, on the same seeded
    batches of the same training split, for the same number of steps (``--steps``;
    default: the smaller of the two train_dynamics step counts, so both stay within what
    the budget bought, or 20 when train_dynamics did not run), then evaluated on the same
    validation images the probes use: as the probes do (inference mode), and again after
    re-estimating BatchNorm's moving statistics from training images (after a few dozen
    steps they still hold mostly their initial values, which understates both models:
    both have BatchNorm).

Data: ``write_synthetic`` (what ``modellint data synth`` writes), 13 classes, 128 px,
``--count`` images (default 2,600, 200 per class), seed 0, written once to
``$MODELLINT_CACHE_DIR/bench`` (default ``~/.cache/modellint/bench``) and reused; or
``--data DIR``. The probe cache is not used (every number is measured in this run).

    python benchmarks/bench_seed_probes.py [--budget 180] [--count 2600] [--steps N] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ROOT, report  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(ROOT))

# The Keras models, and their PyTorch ports (``--framework torch``: code targets; runs on a GPU when one is present).
FRAMEWORKS = {
    "keras": {"seed": ROOT / "examples" / "seed_cnn.h5", "fixed": ROOT / "examples" / "seed_cnn_fixed.h5"},
    "torch": {"seed": "examples.seed_cnn_torch:build", "fixed": "examples.seed_cnn_fixed_torch:build"},
}
MODELS = FRAMEWORKS["keras"]
TORCH_INPUT = (1, 3, 128, 128)
PROBE_CODES = {f"ML0{n}" for n in range(21, 40)}


def _data(args) -> Path:
    if args.data:
        return Path(args.data)
    from modellint.probes.api import cache_dir
    from modellint.probes.synth import write_synthetic

    out = cache_dir().parent / "bench" / f"synth-13c-128px-{args.count}-s0"
    done = out / ".complete"
    if not done.is_file():
        t = time.perf_counter()
        print(f"writing {args.count} synthetic images (13 classes, 128 px) to {out} ...", flush=True)
        info = write_synthetic(out, classes=13, size=128, count=args.count, seed=0)
        done.write_text(json.dumps(info))
        print(f"  done in {time.perf_counter() - t:.1f} s", flush=True)
    return out


def _codes(result) -> str:
    by = {}
    for f in result.findings:
        by.setdefault(f.severity, []).append(f.code)
    return "; ".join(f"{sev}: {' '.join(sorted(set(codes)))}" for sev, codes in
                     sorted(by.items(), key=lambda kv: ("error", "warning", "info").index(kv[0])
                            if kv[0] in ("error", "warning", "info") else 9))


def _probe(name, path, data, budget, seed):
    from modellint.dataset import facts_from_values
    from modellint.engine import run_rules, select_rules
    from modellint.probes.api import probe_inputs, run_probes

    wall, cpu = time.perf_counter(), time.process_time()
    graph, dataset, rep = run_probes(str(path), str(data), budget=budget, seed=seed, use_cache=False,
                                     input_shape=None if isinstance(path, Path) else TORCH_INPUT)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    facts = facts_from_values(len(dataset.y_train) + len(dataset.y_val), len(dataset.class_names))
    result = run_rules(graph, select_rules(), facts, probes=probe_inputs(rep))

    res = rep.results
    ok = lambda k: res.get(k) is not None and res[k].status == "ok"  # noqa: E731
    td = res["train_dynamics"].metrics if ok("train_dynamics") else {}
    rows = res["data_scaling"].metrics.get("rows", []) if ok("data_scaling") else []
    lin = res["linear_baseline"].metrics.get("val_accuracy") if ok("linear_baseline") else None
    plan = rep.settings.get("plan", {})
    steps = plan.get("steps") or {k: r.metrics.get("steps") for k, r in res.items() if r.metrics.get("steps")}

    shown = path.relative_to(ROOT) if isinstance(path, Path) else path
    print(f"\n{name}: {shown}  ({graph.display_shape(graph.input_shapes()[0])}, "
          f"{len(dataset.y_train)} train / {len(dataset.y_val)} val images)")
    rows_out = [
        ("suite seconds vs budget",
         f"{rep.seconds:.1f} / {budget:g}  ({'within' if rep.seconds <= budget else 'OVER'})"),
        ("device", str(rep.settings.get("device"))),
        ("whole call (load + probes)", f"{wall:.1f} s wall, {cpu:.1f} s CPU"),
        ("step seconds (batch 32)", f"{rep.step_seconds:.3f}" if rep.step_seconds else "-"),
        ("plan: steps", json.dumps({k: v for k, v in steps.items() if v})),
        ("probe status", " ".join(f"{k}={r.status}" for k, r in res.items())),
        ("train_dynamics val accuracy", f"{td['val_accuracy']:.3f} after {td['steps']} steps "
                                        f"(val {td.get('val_samples', '?')}; loss {td['first_loss']:.3f} -> "
                                        f"{td['final_loss']:.3f})" if td else "-"),
    ]
    for r in rows:
        rows_out.append((f"data_scaling {r['fraction']:.0%} ({r['samples']} imgs)",
                         f"train {r['train_accuracy']:.3f}  val {r['val_accuracy']:.3f}"
                         + (f"  ({r['steps']} steps)" if "steps" in r else "")))
    rows_out.append(("linear baseline val accuracy", f"{lin:.3f}" if lin is not None else "-"))
    rows_out.append(("chance", f"{1 / len(dataset.class_names):.3f}"))
    rows_out.append(("findings", _codes(result)))
    probe_f = [f"{f.code} {f.message}" for f in result.findings if f.code in PROBE_CODES]
    report(rows_out)
    for line in probe_f:
        print(f"    {line}")
    return {"graph": graph, "dataset": dataset, "report": rep, "td": td, "rows": rows, "lin": lin, "wall": wall,
            "probe_codes": sorted({f.code for f in result.findings if f.code in PROBE_CODES})}


def _equal_steps(path, graph, dataset, steps, seed, batch_size=32, n_val=512):
    """Fresh seeded weights, the model's own optimizer and rate, ``steps`` steps on seeded batches."""
    import numpy as np

    from modellint.probes.api import _live_model
    from modellint.probes.runner import make_runner

    runner = make_runner(graph, _live_model(graph, str(path)), seed=seed)
    lr = graph.training.learning_rate if graph.training and graph.training.learning_rate else 1e-3
    runner.reset(seed, lr)
    rng = np.random.default_rng(seed)
    order, pos, losses = rng.permutation(len(dataset.y_train)), 0, []
    t = time.perf_counter()
    for _ in range(steps):
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(dataset.y_train)), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        losses.append(runner.step(dataset.x_train[idx], dataset.y_train[idx]).loss)
        if not math.isfinite(losses[-1]):
            break
    train_s = time.perf_counter() - t
    val_loss, val_acc = runner.evaluate(dataset.x_val[:n_val], dataset.y_val[:n_val])
    recal = _bn_recalibrated(runner, dataset, n_val, seed)
    return {"steps": len(losses), "lr": lr, "val_accuracy": val_acc, "val_loss": val_loss,
            "train_loss": float(np.mean(losses[-5:])) if losses else None, "seconds": train_s,
            "recal_accuracy": recal[1] if recal else None, "recal_loss": recal[0] if recal else None}


def _bn_recalibrated(runner, dataset, n_val, seed, batches=4, batch_size=64):
    """(val loss, val accuracy) after re-estimating BatchNorm's moving statistics.

    After a few dozen steps BatchNorm's moving mean and variance (momentum 0.99) still hold
    mostly their initial values, so inference-mode accuracy understates what the weights
    learned. Here they are replaced by the average batch statistics of ``batches`` x
    ``batch_size`` training images (training-mode forward passes, no weight update); None
    when the model has no BatchNorm or is not a Keras model."""
    import numpy as np

    model = getattr(runner, "model", None)
    try:
        import keras
    except ImportError:
        return None
    if not isinstance(model, keras.Model):
        return None
    bns = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return None
    saved = [layer.momentum for layer in bns]
    rng = np.random.default_rng(seed + 1)
    try:
        for i in range(batches):  # momentum i/(i+1): the running value is the mean over the batches so far
            for layer in bns:
                layer.momentum = i / (i + 1)
            idx = np.sort(rng.choice(len(dataset.y_train), min(batch_size, len(dataset.y_train)), replace=False))
            model(dataset.x_train[idx], training=True)
    finally:
        for layer, m in zip(bns, saved):
            layer.momentum = m
    return runner.evaluate(dataset.x_val[:n_val], dataset.y_val[:n_val])


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def main(argv=None) -> int:
    from modellint.probes.suite import ProbeSettings

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=ProbeSettings().budget, help="seconds per model (default 180)")
    ap.add_argument("--count", type=int, default=2600, help="synthetic images (default 2600)")
    ap.add_argument("--steps", type=int, help="equal-steps comparison length (default: the smaller td step count)")
    ap.add_argument("--data", help="use this folder instead of the cached synthetic data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--framework", choices=sorted(FRAMEWORKS), default="keras",
                    help="the Keras models (default) or their PyTorch ports")
    args = ap.parse_args(argv)
    global MODELS
    MODELS = FRAMEWORKS[args.framework]

    data = _data(args)
    load = os.getloadavg()
    print(f"modellint probe on the seed and fixed models: budget {args.budget:g} s each, data {data}, "
          f"seed {args.seed}, {os.cpu_count()} CPUs, load average {load[0]:.1f}")
    out = {name: _probe(name, path, data, args.budget, args.seed) for name, path in MODELS.items()}

    seed, fixed = out["seed"], out["fixed"]
    print("\nside by side, each within the same time budget (the faster model trains more steps)")

    def acc(m):
        return f"{m['td']['val_accuracy']:.3f} ({m['td']['steps']} steps)" if m["td"] else "-"

    def ds(m):
        r = m["rows"][-1] if m["rows"] else None
        return f"{r['val_accuracy']:.3f}" + (f" ({r['steps']} steps)" if r and "steps" in r else "") if r else "-"

    report([("", f"{'seed':<22}  fixed"),
            ("train_dynamics val accuracy", f"{acc(seed):<22}  {acc(fixed)}"),
            ("data_scaling 100% val accuracy", f"{ds(seed):<22}  {ds(fixed)}"),
            ("linear baseline", f"{seed['lin'] or 0:<22.3f}  {fixed['lin'] or 0:.3f}"),
            ("step seconds", f"{seed['report'].step_seconds or 0:<22.3f}  {fixed['report'].step_seconds or 0:.3f}"),
            ("probe findings", f"{' '.join(seed['probe_codes']) or '-':<22}  {' '.join(fixed['probe_codes']) or '-'}")])

    steps = args.steps or min(m["td"].get("steps", 0) or 0 for m in (seed, fixed)) or 20
    print(f"\nequal steps: {steps} steps each, batch 32, same seeded batches, fresh weights (seed {args.seed}), "
          f"each model's own optimizer and learning rate; validation on the probes' first 512 val images")
    eq = {name: _equal_steps(MODELS[name], out[name]["graph"], out[name]["dataset"], steps, args.seed)
          for name in MODELS}
    report([("", f"{'seed':<22}  fixed"),
            ("val accuracy", f"{eq['seed']['val_accuracy']:<22.3f}  {eq['fixed']['val_accuracy']:.3f}"),
            ("val loss", f"{eq['seed']['val_loss']:<22.3f}  {eq['fixed']['val_loss']:.3f}"),
            ("val accuracy, BN recalibrated", f"{_f(eq['seed']['recal_accuracy']):<22}  "
                                              f"{_f(eq['fixed']['recal_accuracy'])}"),
            ("val loss, BN recalibrated", f"{_f(eq['seed']['recal_loss']):<22}  {_f(eq['fixed']['recal_loss'])}"),
            ("train loss (last 5 steps)", f"{eq['seed']['train_loss']:<22.3f}  {eq['fixed']['train_loss']:.3f}"),
            ("training seconds", f"{eq['seed']['seconds']:<22.1f}  {eq['fixed']['seconds']:.1f}"),
            ("learning rate", f"{eq['seed']['lr']:<22g}  {eq['fixed']['lr']:g}")])
    diff = eq["fixed"]["val_accuracy"] - eq["seed"]["val_accuracy"]
    print(f"\nfixed vs seed after {steps} equal steps: {eq['fixed']['val_accuracy']:.3f} vs "
          f"{eq['seed']['val_accuracy']:.3f} ({diff:+.3f}); BatchNorm recalibrated: "
          f"{_f(eq['fixed']['recal_accuracy'])} vs {_f(eq['seed']['recal_accuracy'])}; chance {1 / 13:.3f}; "
          f"load average now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
