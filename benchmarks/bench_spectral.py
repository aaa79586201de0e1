"""Spectral analysis speed and agreement (issue 14; benchmarks/bench_weights.py times the pass).

Prints, measured in this run:
  * a ResNet-50's weights (25.6 M parameters, torchvision's layout written out in
    tests/torch_resnet.py, random init, as a state_dict file) analysed: the one streaming
    pass of every per-layer statistic plus the spectra, in-process       target <= 10 s on 2 cores
  * the same with the spectra alone, and the pass without them (what the spectra cost)
  * `modellint check examples/seed_cnn.h5` with weights over without (`--no-weights`),
    fresh interpreters, interleaved, median                                target <= 2x
  * the same for the trained seed-sized CNN, examples/fashion_cnn_trained.keras
  * per-layer α against WeightWatcher's on the ResNet-50 (when weightwatcher is installed):
    largest |Δα| / α over the layers both fit

Run: python benchmarks/bench_spectral.py [--no-ww] [--no-check]
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _util import ROOT, report, run_py  # noqa: E402

SEED = ROOT / "examples" / "seed_cnn.h5"
TRAINED = ROOT / "examples" / "fashion_cnn_trained.keras"


def _resnet50_store(tmp: Path):
    import torch
    from torch_resnet import resnet50

    from modellint import load_graph
    from modellint.analysis.weights import WeightStore

    torch.manual_seed(0)
    model = resnet50().eval()
    path = tmp / "resnet50.pt"
    torch.save(model.state_dict(), path)
    graph = load_graph(model, input_shape=(1, 3, 224, 224))
    params = sum(p.numel() for p in model.parameters())
    return model, graph, path, params, WeightStore


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _ratio(model_path, extra=()):
    with_w, without = [], []
    for _ in range(7):  # interleaved single runs: both see the same machine load
        with_w.append(run_py(["-m", "modellint", "check", model_path, "--exit-zero", *extra], repeat=1)[0])
        without.append(run_py(["-m", "modellint", "check", model_path, "--exit-zero", "--no-weights", *extra],
                              repeat=1)[0])
    a, b = statistics.median(with_w), statistics.median(without)
    return a, b, a / b


def main(argv) -> int:
    import modellint.rules  # noqa: F401  (registers the spectral analysis)
    from modellint.analysis import weights as W
    from modellint.rules.spectral import ANALYSIS

    rows = [("cores", str(len(os.sched_getaffinity(0))))]
    with tempfile.TemporaryDirectory() as d:
        model, graph, path, params, WeightStore = _resnet50_store(Path(d))
        rows.append(("ResNet-50 parameters", f"{params:,}"))
        t_cold, _ = _timed(lambda: WeightStore(path, graph).stats())  # first: imports, the file read cold
        rows.append(("ResNet-50 first pass (cold: imports, page cache)", f"{t_cold:.2f} s"))
        t_all, stats = _timed(lambda: WeightStore(path, graph).stats())
        alphas = {n: st.extra.get(ANALYSIS) for n, st in stats.items() if st.extra.get(ANALYSIS)}
        rows.append(("ResNet-50 weights analysed (all statistics + spectra)", f"{t_all:.2f} s  (target <= 10 s)"))
        saved = dict(W.LAYER_ANALYSES)
        try:
            W.LAYER_ANALYSES.pop(ANALYSIS)
            t_plain, _ = _timed(lambda: WeightStore(path, graph).stats())
        finally:
            W.LAYER_ANALYSES.clear()
            W.LAYER_ANALYSES.update(saved)
        rows.append(("  of which without the spectra", f"{t_plain:.2f} s"))
        fitted = [v["alpha"] for v in alphas.values() if v["alpha"] is not None]
        rows.append(("  layers with α / average α", f"{len(fitted)} / {sum(fitted) / len(fitted):.2f} (random init)"))
        if "--no-ww" not in argv:
            try:
                import weightwatcher as ww
            except ImportError:
                rows.append(("α vs WeightWatcher", "weightwatcher not installed"))
            else:
                logging.getLogger("weightwatcher").setLevel(logging.ERROR)
                t_ww, df = _timed(lambda: ww.WeightWatcher(model=model).analyze())
                worst, n = 0.0, 0
                for _, r in df.iterrows():
                    ours = alphas.get(r["longname"])
                    if ours and ours["alpha"] is not None:
                        worst = max(worst, abs(ours["alpha"] - r["alpha"]) / r["alpha"])
                        n += 1
                rows.append(("α vs WeightWatcher (ResNet-50)", f"{n} layers, largest |Δα|/α {worst:.2e}; "
                                                                  f"WeightWatcher took {t_ww:.1f} s"))
    if "--no-check" in argv:
        report(rows)
        return 0
    a, b, r = _ratio(SEED, ("--samples", "8000", "--classes", "13", "--image-size", "128x128"))
    rows.append(("seed check with / without weights", f"{a:.2f} s / {b:.2f} s = {r:.2f}x  (target <= 2x)"))
    a, b, r = _ratio(TRAINED)
    rows.append(("trained seed-sized CNN with / without", f"{a:.2f} s / {b:.2f} s = {r:.2f}x"))
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
