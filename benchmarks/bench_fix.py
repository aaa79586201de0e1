"""The seed model against its fix, measured: ``modellint probe examples/seed_cnn.h5 --compare fix``.

Issue 13: "benchmarks/bench_fix.py runs the seed against fix of the seed, both on CPU with the default
budget, on the synthetic 13-class data at 128 px and on Fashion-MNIST. For each dataset it prints both
models' validation accuracy per seed, the steps and the spread. Target: on the synthetic data the fixed
seed beats the seed by more than the seed-to-seed spread."

What runs: :func:`modellint.probes.compare.compare`, what ``probe --compare`` runs, with the probe suite
left out (``--probes none``), so the comparison plans for the whole default budget (180 s from the start
of each dataset's comparison, loading the data and the models included). OTHER is the output of
``modellint.fix`` on the seed (``--other fix``, the default), or a model file you name
(``--other examples/seed_cnn_fixed.keras``).

Data:

* synthetic: ``write_synthetic`` (what ``modellint data synth`` writes), 13 classes, 128 px, ``--count``
  images (default 2,600, 200 a class; 8,000 is the issue's full set), seed 0, written once to the cache;
* Fashion-MNIST: the first ``--count`` images of the IDX training files under
  ``/usr/share/datasets/fashion-mnist`` (``tools/system-deps.sh`` installs them; MODELLINT_FASHION_MNIST
  moves them), written once to an ``.npz`` (28 px grey; the loader resizes to the seed's 128 px RGB input).

Usage::

    python benchmarks/bench_fix.py [--budget 180] [--count 2600] [--datasets synth,fashion]
                                   [--other fix|PATH] [--executor inprocess|ray] [--json OUT.json]

The target line says whether the fixed seed's mean accuracy exceeds the seed's by more than the largest
of the two models' seed-to-seed spreads and the spread of the per-seed differences.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEED = ROOT / "examples" / "seed_cnn.h5"
FASHION = Path(os.environ.get("MODELLINT_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))


def _cache() -> Path:
    from modellint.probes.api import cache_dir

    return cache_dir().parent / "bench"


def synth(count: int) -> Path:
    from modellint.probes.synth import write_synthetic

    out = _cache() / f"synth-13c-128px-{count}-s0"
    if not (out / ".complete").is_file():
        print(f"writing {count} synthetic images (13 classes, 128 px) to {out} ...", flush=True)
        info = write_synthetic(out, classes=13, size=128, count=count, seed=0)
        (out / ".complete").write_text(json.dumps(info))
    return out


def _idx(path: Path, count: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        head = f.read(4)
        dims = [int.from_bytes(f.read(4), "big") for _ in range(head[3])]
        n = min(count, dims[0])
        size = int(np.prod(dims[1:])) if len(dims) > 1 else 1
        data = np.frombuffer(f.read(n * size), dtype=np.uint8)
    return data.reshape([n] + dims[1:])


def fashion(count: int) -> Path:
    images, labels = FASHION / "train-images-idx3-ubyte.gz", FASHION / "train-labels-idx1-ubyte.gz"
    if not (images.is_file() and labels.is_file()):
        raise SystemExit(f"Fashion-MNIST is not installed ({images}); run tools/system-deps.sh")
    out = _cache() / f"fashion-mnist-{count}.npz"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        names = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"]
        np.savez(out, x=_idx(images, count), y=_idx(labels, count).astype(np.int64), class_names=np.array(names))
    return out


def fixed_seed(other: str) -> str:
    if other != "fix":
        return other
    import modellint

    out = Path(tempfile.mkdtemp(prefix="bench-fix-"))
    result = modellint.fix(str(SEED), out=str(out))
    for change in getattr(result, "changes", []) or []:
        print(f"  fix: {getattr(change, 'title', change)}")
    return str(result.path)


def run(name: str, data: Path, other: str, budget: float, executor: str) -> dict:
    from modellint.probes.compare import Source, clear_caches, compare

    clear_caches()
    started = time.perf_counter()
    print(f"\n== {name}: {data}", flush=True)
    c = compare(Source(str(SEED)), Source(other), str(data), budget=budget, executor=executor,
                clock_start=started, progress=lambda n, m: print(f"  {n}: {m}", flush=True))
    wall = time.perf_counter() - started
    d = c.to_dict()
    print(f"  wall {wall:.1f} s (budget {budget:g} s)")
    if c.status != "ok":
        print(f"  NO VERDICT: {c.why}\n  measured costs (s): {c.plan.get('costs')}")
        return {"dataset": name, "status": c.status, "why": c.why, "costs": c.plan.get("costs"),
                "wall_s": round(wall, 1)}
    p = c.plan
    print(f"  {p['seeds']} seeds x 2 models, {p['steps']} steps of {p['batch_size']} each; {p['subset_note']}; "
          f"{p['eval_images']} validation images")
    print(f"  {'seed':>4}  {c.names['model']:>24}  {c.names['other']:>24}")
    by = {}
    for r in c.runs:
        by.setdefault(r["seed"], {})[r["role"]] = r
    for seed in sorted(by):
        print(f"  {seed:>4}  {100 * by[seed]['model']['val_accuracy']:23.1f}%  "
              f"{100 * by[seed]['other']['val_accuracy']:23.1f}%")
    a = c.accuracy
    print(f"  mean  {100 * a['model_mean']:17.1f} ± {100 * a['model_spread']:.1f}%  "
          f"{100 * a['other_mean']:17.1f} ± {100 * a['other_spread']:.1f}%")
    print(f"  difference {100 * a['diff']:+.1f} ± {100 * a['diff_spread']:.1f} points; {c.verdict}")
    spread = max(a["model_spread"], a["other_spread"], a["diff_spread"])
    met = a["diff"] > spread
    print(f"  target (fixed beats seed by more than the seed-to-seed spread, {100 * spread:.1f} points): "
          f"{'MET' if met else 'NOT MET'}")
    return {"dataset": name, "status": "ok", "plan": {k: p[k] for k in ("seeds", "steps", "subset", "train_images",
                                                                       "eval_images", "batch_size", "epochs")},
            "costs": p.get("costs"), "model": a["model"], "other": a["other"], "accuracy": a,
            "loss": d["loss"], "verdict": c.verdict, "target_met": met, "wall_s": round(wall, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=180.0)
    ap.add_argument("--count", type=int, default=2600)
    ap.add_argument("--datasets", default="synth,fashion")
    ap.add_argument("--other", default="fix")
    ap.add_argument("--executor", default="inprocess")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    from modellint.quiet import quiet_frameworks

    quiet_frameworks()
    other = fixed_seed(args.other)
    print(f"seed {SEED.name} vs {other}; budget {args.budget:g} s per dataset; {os.cpu_count()} CPUs")
    out = []
    for name in args.datasets.split(","):
        data = synth(args.count) if name == "synth" else fashion(args.count)
        out.append(run(name, data, other, args.budget, args.executor))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
