"""Probe speed (issue 5): instrumentation overhead and the suite's time budget.

Prints, all measured in this run on this machine (each part in a fresh interpreter):

1. Instrumentation overhead of the probe runners on the seed CNN (128x128x3, 13 classes,
   batch 32), Keras (examples/seed_cnn.h5) and its PyTorch port (examples/seed_cnn_torch.py):
   seconds per training step of
     * a plain loop in the same framework on the same batches (Keras: a ``tf.function``
       ``GradientTape`` step; PyTorch: forward / backward / ``optimizer.step``), the baseline;
     * Keras ``model.train_on_batch`` (a reference row);
     * ``runner.step`` without measurements (what every probe but train_dynamics runs);
     * ``runner.step`` measuring on the train_dynamics schedule (about 6 steps of a run, the
       last included: the suite's setting) and on every step.
   The variants run interleaved in blocks, so all see the same machine load; the per-step
   figure is the median over blocks, with CPU seconds too. Target: the suite's setting costs
   <= 15 % throughput against the plain loop.
2. The default suite (all probes) on the seed at 128 px on synthetic 13-class data
   (``modellint data synth``) with --budget seconds (default 180): the suite's wall time
   against the budget (target <= budget; the last step may run over by a few per cent),
   what loading the data and building the runner cost before it (not in the budget), and
   per probe its status, seconds, planned and run steps.

    python benchmarks/bench_probes.py                      # both parts, budget 180 s
    python benchmarks/bench_probes.py --budget 60 --only suite
    python benchmarks/bench_probes.py --only overhead --steps 12 --frameworks torch

Timings on a shared 2-core machine are noisy: the ratios (measured in the same run) and
the CPU times mean more than the wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ENV, ROOT, report  # noqa: E402

SEED = ROOT / "examples" / "seed_cnn.h5"
CLASSES, SIZE, BATCH = 13, 128, 32
TARGET_OVERHEAD = 0.15


# -- part 1: instrumentation overhead (child) ----------------------------------------------

def _batches(n=4, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [(rng.random((BATCH, SIZE, SIZE, 3), dtype=np.float32), rng.integers(0, CLASSES, BATCH).astype(np.int64))
            for _ in range(n)]


def _keras_variants():
    import keras
    import tensorflow as tf

    from modellint.adapters import load_graph
    from modellint.probes.runner_keras import KerasRunner

    runner = KerasRunner(load_graph(str(SEED)), str(SEED))
    lr = runner._lr
    # the plain loop: a fresh clone, the runner's loss and optimizer class, a traced GradientTape step
    model = keras.models.clone_model(runner._template)
    opt, loss_fn = runner._make_optimizer(lr), runner._loss_fn
    tvars = model.trainable_variables

    @tf.function
    def train(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        opt.apply(tape.gradient(loss, tvars), tvars)
        return loss

    tob = keras.models.clone_model(runner._template)
    tob.compile(optimizer=runner._make_optimizer(lr), loss=runner._make_loss(None)[0])
    return runner, {"plain loop (GradientTape)": lambda x, y, yl: train(x, yl),
                    "model.train_on_batch": lambda x, y, yl: tob.train_on_batch(x, yl)}, runner._labels


def _torch_variants():
    import copy

    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT / "examples"))
    from seed_cnn_torch import INPUT_SHAPE, build

    from modellint.adapters.torch_live import graph_from_module
    from modellint.probes.runner_torch import TorchRunner

    module = build()
    runner = TorchRunner(graph_from_module(module, input_shape=INPUT_SHAPE), module)
    model = copy.deepcopy(module).train()
    opt = torch.optim.Adam(model.parameters(), lr=runner._lr)
    loss_fn = runner._loss_fn

    def plain(x, y, yl):
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt), torch.from_numpy(y))
        loss.backward()
        opt.step()
        return loss

    return runner, {"plain loop (forward/backward/step)": plain}, lambda y: y


def overhead_child(framework: str, steps: int, block: int) -> dict:
    from modellint.probes.suite import _measured

    runner, baselines, labels = _keras_variants() if framework == "keras" else _torch_variants()
    schedule = _measured(steps)  # train_dynamics' schedule for a run of ``steps`` steps
    variants = dict(baselines)
    variants["runner.step, no measure"] = lambda x, y, yl, i: runner.step(x, y)
    variants["runner.step, suite schedule"] = lambda x, y, yl, i: runner.step(x, y, measure=schedule[i])
    variants["runner.step, measure every step"] = lambda x, y, yl, i: runner.step(x, y, measure=True)
    batches = [(x, y, labels(y)) for x, y in _batches()]
    call = {k: (v if k.startswith("runner") else (lambda f: lambda x, y, yl, i: f(x, y, yl))(v))
            for k, v in variants.items()}
    for fn in call.values():  # tracing, allocation: not a step's cost
        for i in range(2):
            fn(*batches[i % len(batches)], i)
    times = {k: [] for k in call}
    cpus = {k: [] for k in call}
    done = {k: 0 for k in call}
    while min(done.values()) < steps:
        for name, fn in call.items():
            n = min(block, steps - done[name])
            t, c = time.perf_counter(), time.process_time()
            for _ in range(n):
                i = done[name]
                fn(*batches[i % len(batches)], i)
                done[name] += 1
            times[name].append((time.perf_counter() - t) / n)
            cpus[name].append((time.process_time() - c) / n)
    return {"framework": framework, "steps": steps, "measured_steps": sum(schedule),
            "threads": _threads(framework),
            "rows": {k: {"s": statistics.median(times[k]), "cpu": statistics.median(cpus[k]),
                         "blocks": len(times[k])} for k in call}}


def _threads(framework):
    if framework == "torch":
        import torch

        return torch.get_num_threads()
    import tensorflow as tf

    return [tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads()]


# -- part 2: the suite (child) -----------------------------------------------------------------

def suite_child(framework: str, data: str, budget: float) -> dict:
    c0 = time.process_time()
    if framework == "torch":
        sys.path.insert(0, str(ROOT / "examples"))
        from seed_cnn_torch import INPUT_SHAPE, build

        model, kw = build(), {"input_shape": INPUT_SHAPE}
    else:
        model, kw = str(SEED), {}
    from modellint.probes.api import run_probes

    t1 = time.perf_counter()
    _, dataset, rep = run_probes(model, data, budget=budget, use_cache=False, **kw,
                                 progress=lambda n, m: print(f"  [{time.perf_counter() - t1:6.1f} s] {n}: {m}",
                                                             file=sys.stderr, flush=True))
    total = time.perf_counter() - t1
    return {"framework": framework, "budget": budget, "suite_s": rep.seconds, "total_s": total,
            "cpu_s": time.process_time() - c0, "interrupted": rep.interrupted,
            "train": len(dataset.y_train), "val": len(dataset.y_val), "plan": rep.settings.get("plan"),
            "results": {k: {"status": v.status, "seconds": v.seconds, "steps": v.metrics.get("steps"),
                            "notes": v.notes} for k, v in rep.results.items()}}


# -- parent --------------------------------------------------------------------------------

def _child(*args, timeout=3600) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], cwd=ROOT, env=ENV,
                          stdout=subprocess.PIPE, stderr=None if "suite" in args else subprocess.PIPE, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child {args} failed:\n{(proc.stderr or '')[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _overhead_rows(r: dict) -> list:
    rows = r["rows"]
    base_name = next(iter(rows))
    base, base_cpu = rows[base_name]["s"], rows[base_name]["cpu"]
    out = [(f"{r['framework']}: {base_name} (s/step)", f"{base:.3f} (CPU {base_cpu:.3f}; threads {r['threads']})")]
    for name, v in list(rows.items())[1:]:
        cost = v["s"] / base - 1
        target = ""
        if name.endswith("suite schedule"):
            target = f"   target <= +{TARGET_OVERHEAD:.0%}" + ("" if cost <= TARGET_OVERHEAD else "   MISSED")
        out.append((f"  {name}", f"{v['s']:.3f} (CPU {v['cpu']:.3f}): {cost:+.1%} time, "
                                 f"{v['cpu'] / base_cpu - 1:+.1%} CPU{target}"))
    out.append(("  suite schedule", f"{r['measured_steps']} of {r['steps']} steps measure (train_dynamics' rule; "
                                    "the other probes never measure)"))
    return out


def _suite_rows(r: dict) -> list:
    b = r["budget"]
    over = r["suite_s"] / b - 1
    rows = [(f"{r['framework']} seed suite, budget {b:.0f} s",
             f"{r['suite_s']:.1f} s ({r['suite_s'] / b:.0%} of the budget; target <= 100%, +5% for the last step)"
             + ("" if over <= 0.05 else "   MISSED")),
            ("  before the suite (not in the budget)",
             f"load {r['train'] + r['val']} images + build the runner {r['total_s'] - r['suite_s']:.1f} s "
             f"(process CPU in all {r['cpu_s']:.0f} s)")]
    plan = r.get("plan") or {}
    costs = plan.get("costs") or {}
    rows.append(("  plan", f"warm-up {plan.get('warmup_s')} s; eval images {plan.get('eval_images')}; step "
                           f"{costs.get('step_s')} s, measuring step {costs.get('measure_step_s')} s, reset "
                           f"{costs.get('reset_s')} s, eval {costs.get('eval_image_s')} s/image, first-step "
                           f"trace {costs.get('trace_s')} s"))
    for name, v in r["results"].items():
        planned = (plan.get("steps") or {}).get(name)
        ps = (plan.get("planned_s") or {}).get(name)
        loops = {"zero_input": 2, "data_scaling": 3}.get(name)
        steps = "" if v["steps"] is None else f", {v['steps']} steps" + (f" per loop of {loops}" if loops else "")
        steps += "" if not planned else f" (plan: {planned} in all)"
        steps += "" if ps is None else f" in {ps:.1f} s planned"
        note = f"  [{'; '.join(v['notes'])}]" if v["notes"] else ""
        rows.append((f"  {name}", f"{v['status']} {v['seconds']:.1f} s{steps}{note}"))
    return rows


def _synth(count: int) -> str:
    out = Path(tempfile.mkdtemp(prefix="modellint-bench-probes-")) / "synth"
    from modellint.probes.synth import write_synthetic

    write_synthetic(out, classes=CLASSES, size=SIZE, count=count, seed=0)
    return str(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=180.0, help="suite budget in seconds (default 180)")
    ap.add_argument("--data", help="image folder to probe with (default: synthesise --count images)")
    ap.add_argument("--count", type=int, default=1300, help="synthetic images (default 1300)")
    ap.add_argument("--steps", type=int, default=24, help="steps per overhead variant (default 24)")
    ap.add_argument("--block", type=int, default=4, help="steps per interleaved block (default 4)")
    ap.add_argument("--frameworks", default="keras,torch", help="overhead part: keras,torch")
    ap.add_argument("--suite-frameworks", default="keras", help="suite part: keras and/or torch (default keras)")
    ap.add_argument("--only", choices=("overhead", "suite"))
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    rows = []
    if args.only != "suite":
        for fw in [f for f in args.frameworks.split(",") if f]:
            rows += _overhead_rows(_child("overhead", fw, args.steps, args.block))
    if args.only != "overhead":
        t = time.perf_counter()
        data = args.data or _synth(args.count)
        try:
            if not args.data:
                took = time.perf_counter() - t
                rows.append((f"synthetic data ({args.count} images, {SIZE} px)",
                             f"written in {took:.1f} s ({took / args.count * 1000:.1f} ms per image)"))
            for fw in [f for f in args.suite_frameworks.split(",") if f]:
                rows += _suite_rows(_child("suite", fw, data, args.budget))
        finally:
            if not args.data:
                shutil.rmtree(Path(data).parent, ignore_errors=True)
    print(f"probe benchmarks ({os.cpu_count()} CPUs; load average {load0:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end: wall times on a busy machine are inflated, CPU times less so)")
    report(rows)
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "overhead":
            out = overhead_child(rest[0], int(rest[1]), int(rest[2]))
        else:
            out = suite_child(rest[0], rest[1], float(rest[2]))
        print(json.dumps(out))
        sys.exit(0)
    sys.exit(main())
