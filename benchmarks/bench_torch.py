"""Live PyTorch modules (issue 4): speed and memory of reading a ResNet-50.

Prints, all measured in this run on this machine (a fresh interpreter per run,
median time and largest peak of several runs; torch is imported and the model
built before the clock starts, as in a user's session):
  * ResNet-50 (torchvision's architecture) analysed: graph_from_module + cost and
    receptive-field analyses + every rule, wall seconds, and the peak RSS it adds;
  * a plain real forward pass at batch 1 of the same model (``model(x)`` in eval
    mode, autograd on as a user calls it; and under ``torch.no_grad()``): seconds
    and peak RSS added; the ratios;
  * the same at 512x512, where activations grow and the analysis (fake tensors,
    no storage) does not;
  * each capture method forced on its own (export / fx / hooks);
  * whether ``import modellint`` imports torch (it must not).
Targets (issue 4): ResNet-50 analysed in <= 3 s; peak memory well below a real
forward pass. Most of the cold time and memory is torch importing its tracing
stack (torch._dynamo, sympy) on first use of fake tensors; the rows say so.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ENV, ROOT, report  # noqa: E402


def resnet50():
    """torchvision's ResNet-50 architecture (tests/torch_resnet.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from torch_resnet import resnet50 as build

    return build()


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(task: str, size: int) -> dict:
    """One measurement in this (fresh) interpreter."""
    if task == "import":
        import modellint  # noqa: F401

        return {"torch_imported": "torch" in sys.modules}
    import torch

    model = resnet50().eval()
    shape = (1, 3, size, size)
    base = _rss_mib()
    c0 = time.process_time()
    t0 = time.perf_counter()
    if task.startswith("analyse"):
        from modellint.adapters.torch_live import graph_from_module
        from modellint.analysis import last_spatial, node_costs, receptive_fields
        from modellint.engine import run_rules, select_rules

        capture = task.split(":", 1)[1] if ":" in task else "auto"
        graph = graph_from_module(model, input_shape=shape, capture=capture)
        t1 = time.perf_counter()
        node_costs(graph)
        last_spatial(graph, receptive_fields(graph))
        run_rules(graph, select_rules())
        extra = {"nodes": len(graph), "params": graph.total_params, "capture_s": t1 - t0, "note": graph.notes[0]}
    elif task == "forward":
        model(torch.randn(shape))
        extra = {}
    elif task == "forward_no_grad":
        with torch.no_grad():
            model(torch.randn(shape))
        extra = {}
    else:
        raise SystemExit(f"unknown task {task}")
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "base_mib": base,
            "peak_mib": _rss_mib(), **extra}


def measure(task: str, size: int = 224, repeat: int = 3) -> dict:
    runs = []
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, __file__, "--child", task, str(size)], cwd=ROOT, env=ENV,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"benchmark task {task} failed:\n{proc.stderr[-2000:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    out = dict(runs[-1])
    if "seconds" in out:
        out["seconds"] = statistics.median(r["seconds"] for r in runs)
        out["cpu_seconds"] = statistics.median(r["cpu_seconds"] for r in runs)
        out["added_mib"] = max(r["peak_mib"] - r["base_mib"] for r in runs)
        out["peak_mib"] = max(r["peak_mib"] for r in runs)
        out["base_mib"] = statistics.median(r["base_mib"] for r in runs)
    return out


def main() -> int:
    rows = []
    load0 = os.getloadavg()[0]
    imp = measure("import", repeat=1)
    rows.append(("import modellint imports torch", f"{imp['torch_imported']}   target False"))
    ana = measure("analyse")
    fwd = measure("forward")
    ng = measure("forward_no_grad")
    rows.append(("ResNet-50 analysed, 224 (s)",
                 f"{ana['seconds']:.2f} (CPU {ana['cpu_seconds']:.2f}; capture {ana['capture_s']:.2f}, "
                 f"{ana['nodes']} nodes)   target <= 3"))
    rows.append(("  capture used", ana["note"]))
    rows.append(("  peak RSS added (MiB)", f"{ana['added_mib']:.0f} (process peak {ana['peak_mib']:.0f}, "
                                            f"after import torch + model {ana['base_mib']:.0f})"))
    rows.append(("real forward, batch 1, 224 (s)", f"{fwd['seconds']:.2f} (CPU {fwd['cpu_seconds']:.2f}); "
                                                    f"no_grad {ng['seconds']:.2f}"))
    rows.append(("  peak RSS added (MiB)", f"{fwd['added_mib']:.0f}; no_grad {ng['added_mib']:.0f}"))
    rows.append(("  analysis / forward", f"time x{ana['seconds'] / fwd['seconds']:.1f}, "
                                         f"memory x{ana['added_mib'] / max(fwd['added_mib'], 1):.2f}"))
    ana5, fwd5 = measure("analyse", 512), measure("forward", 512)
    rows.append(("at 512x512: analysis / forward (s)", f"{ana5['seconds']:.2f} / {fwd5['seconds']:.2f}"))
    rows.append(("  peak RSS added (MiB)", f"{ana5['added_mib']:.0f} / {fwd5['added_mib']:.0f}  "
                                           f"(memory x{ana5['added_mib'] / max(fwd5['added_mib'], 1):.2f})"))
    for capture in ("export", "fx", "hooks"):
        r = measure(f"analyse:{capture}")
        rows.append((f"capture={capture} (s)", f"{r['seconds']:.2f} (CPU {r['cpu_seconds']:.2f}, "
                                                f"+{r['added_mib']:.0f} MiB)"))
    print(f"PyTorch adapter benchmarks ({os.cpu_count()} CPUs; load average {load0:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end: wall times on a busy machine are inflated, CPU times less so)")
    report(rows)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
        sys.exit(0)
    sys.exit(main())
