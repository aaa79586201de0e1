"""Weights analysis speed and memory (issue 14).

* A ResNet-50 (about 25.6 M parameters, tests/torch_resnet.py) trained-looking weights saved as
  a state_dict: the one streaming pass of modellint.analysis.weights (LayerStats of every layer,
  including the duplicate-filter matrix products) timed on 2 threads (target: <= 10 s), and its
  working memory beyond the arrays themselves (tracemalloc peak, numpy's allocations) against
  the largest tensor (target: <= 2x).
* The seed's `modellint check` with its weights read against `--no-weights` (target: <= 2x),
  each in a fresh interpreter.

Run: .venv/bin/python benchmarks/bench_weights.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _util import ROOT, report, run_py  # noqa: E402


def resnet50_rows():
    import numpy as np
    import torch

    from modellint import load_graph
    from modellint.analysis.weights import WeightStore

    import torch_resnet

    torch.manual_seed(0)
    model = torch_resnet.resnet50()
    with torch.no_grad():   # trained-looking: heavy tails, not the initializer's distribution
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.distributions.StudentT(4.0).sample(p.shape) * p.std())
    graph = load_graph(model, input_shape=(1, 3, 224, 224))
    params = sum(p.numel() for p in model.parameters())
    rows = [("ResNet-50 parameters", f"{params:,}")]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "resnet50.pt")
        torch.save(model.state_dict(), path)
        t0 = time.perf_counter()
        store = WeightStore(path, graph)
        stats = store.stats()
        elapsed = time.perf_counter() - t0
    rows.append(("ResNet-50 read + per-layer statistics (s, target <= 10)", f"{elapsed:.2f}"))
    rows.append(("layers with statistics", f"{len(stats)}"))
    arrays = {k: {n: v.detach().numpy() for n, v in m.named_parameters(recurse=False)}
              | {n: b.numpy() for n, b in m.named_buffers(recurse=False)}
              for k, m in model.named_modules() if k in graph.nodes}
    largest = max(a.nbytes for d in arrays.values() for a in d.values())
    tracemalloc.start()
    t0 = time.perf_counter()
    WeightStore.from_arrays(arrays, graph).stats()
    compute = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows.append(("statistics alone, arrays in memory (s)", f"{compute:.2f}"))
    rows.append(("largest tensor (MiB)", f"{largest / 2**20:.1f}"))
    rows.append(("working memory of the pass (MiB; x largest tensor, target <= 2)",
                 f"{peak / 2**20:.1f} ({peak / largest:.2f}x)"))
    del np
    return rows


def seed_rows(repeat=5):
    seed = ROOT / "examples" / "seed_cnn.h5"
    base = ["-m", "modellint", "check", str(seed), "--samples", "8000", "--classes", "13", "--exit-zero"]
    with_w, rss_w = run_py(base, repeat)
    without, rss_wo = run_py(base + ["--no-weights"], repeat)
    return [("seed check with weights (s)", f"{with_w:.2f} (peak {rss_w:.0f} MiB)"),
            ("seed check --no-weights (s)", f"{without:.2f} (peak {rss_wo:.0f} MiB)"),
            ("ratio with/without (target <= 2)", f"{with_w / without:.2f}x")]


def main():
    rows = []
    try:
        rows += resnet50_rows()
    except ImportError as exc:
        rows.append(("ResNet-50", f"skipped ({exc})"))
    rows += seed_rows()
    print("weights (issue 14)")
    report(rows)


if __name__ == "__main__":
    main()
