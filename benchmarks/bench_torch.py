"""Live PyTorch modules (issue 4): speed and memory of reading a ResNet-50.

Targets (issue 4): a ResNet-50 ``nn.Module`` analysed in <= 3 s on CPU, with peak
memory well below a real forward pass at batch 1. Prints, all measured in this
run on this machine, each figure in a fresh interpreter (median of several runs
for times, largest of them for memory; torch is imported and the model built
before the clock starts, as in a user's session):

  * ResNet-50 (torchvision's architecture, tests/torch_resnet.py) analysed:
    graph_from_module + cost and receptive-field analyses + every rule; wall
    seconds and CPU seconds (``time.process_time``: less inflated than wall time
    on a busy machine) against the 3 s target;
  * the peak RSS the analysis adds, against that of a plain real forward pass at
    batch 1 (``model(x)`` in eval mode, autograd on, as a user calls it; and under
    ``torch.no_grad()``), at 224x224 and 512x512, and their ratio;
  * each capture forced on its own (fx on meta tensors / torch.export / hooks on
    fake tensors), and whether it imported sympy and torch._dynamo;
  * the cost of importing that tracing stack alone (what torch.export and fake
    tensors pay on first use, before tracing anything);
  * whether ``import modellint`` imports torch (it must not).

"Peak RSS added" is the process's peak resident set during the measured step
minus its resident set just before it (the peak is reset first where Linux
allows, /proc/self/clear_refs; otherwise the growth of ru_maxrss).
"""

from __future__ import annotations

import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ENV, ROOT, report  # noqa: E402

TARGET_S = 3.0
CAPTURES = ("fx", "export", "hooks")


def resnet50():
    """torchvision's ResNet-50 architecture (tests/torch_resnet.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from torch_resnet import resnet50 as build

    return build()


def _status_mib(field: str):
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) / 1024 if m else None
    except OSError:
        return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        return _status_mib("VmHWM") is not None
    except OSError:
        return False


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
    exact = _reset_peak()
    base = _status_mib("VmRSS") if exact else _rss_mib()
    c0 = time.process_time()
    t0 = time.perf_counter()
    extra = {}
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
        extra = {"nodes": len(graph), "params": graph.trainable_params, "capture_s": t1 - t0,
                 "note": graph.notes[0]}
    elif task == "forward":
        model(torch.randn(shape))
    elif task == "forward_no_grad":
        with torch.no_grad():
            model(torch.randn(shape))
    elif task == "import_stack":  # what torch.export / fake tensors import on first use
        import sympy  # noqa: F401
        import torch._dynamo  # noqa: F401
    else:
        raise SystemExit(f"unknown task {task}")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _status_mib("VmHWM") if exact else _rss_mib()
    return {"seconds": seconds, "cpu_seconds": cpu, "base_mib": base, "peak_mib": peak, "added_mib": peak - base,
            "stack": ("sympy" in sys.modules, "torch._dynamo" in sys.modules), **extra}


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
        for key in ("seconds", "cpu_seconds", "base_mib", "capture_s"):
            if key in out:
                out[key] = statistics.median(r[key] for r in runs)
        out["min_seconds"] = min(r["seconds"] for r in runs)
        out["added_mib"] = max(r["added_mib"] for r in runs)
    return out


def _stack(r) -> str:
    sympy, dynamo = r["stack"]
    return "imports sympy + torch._dynamo" if dynamo else "imports sympy" if sympy else "no sympy, no torch._dynamo"


def _ratio(a, b) -> str:
    return f"x{a / max(b, 1):.2f}"


def main() -> int:
    rows = []
    load0 = os.getloadavg()[0]
    imp = measure("import", repeat=1)
    rows.append(("import modellint imports torch", f"{imp['torch_imported']}   target False"))

    ana = measure("analyse")
    ok = "met" if ana["cpu_seconds"] <= TARGET_S else "NOT met"
    rows.append(("ResNet-50 analysed, 224 (s)",
                 f"wall {ana['seconds']:.2f} (best {ana['min_seconds']:.2f}), CPU {ana['cpu_seconds']:.2f}; "
                 f"capture {ana['capture_s']:.2f}; {ana['nodes']} nodes, {ana['params']:,} params   "
                 f"target <= {TARGET_S:.0f}: {ok}"))
    rows.append(("  capture used", ana["note"].split(" (")[0] + f" ({_stack(ana)})"))
    results = {}
    for size in (224, 512):
        a = ana if size == 224 else measure("analyse", size)
        fwd, ng = measure("forward", size), measure("forward_no_grad", size)
        results[size] = (a, fwd, ng)
        rows.append((f"peak RSS added at {size}x{size} (MiB)",
                     f"analysis {a['added_mib']:.0f}; real forward batch 1 {fwd['added_mib']:.0f} "
                     f"(no_grad {ng['added_mib']:.0f})"))
        rows.append(("  analysis / forward",
                     f"memory {_ratio(a['added_mib'], fwd['added_mib'])} "
                     f"(vs no_grad {_ratio(a['added_mib'], ng['added_mib'])}); "
                     f"time: analysis {a['seconds']:.2f} s (CPU {a['cpu_seconds']:.2f}), "
                     f"forward {fwd['seconds']:.2f} s (CPU {fwd['cpu_seconds']:.2f})"))
    for capture in CAPTURES:
        r = measure(f"analyse:{capture}")
        rows.append((f"capture={capture}, 224",
                     f"wall {r['seconds']:.2f} s, CPU {r['cpu_seconds']:.2f} s, +{r['added_mib']:.0f} MiB "
                     f"({_stack(r)})"))
    st = measure("import_stack")
    rows.append(("  import sympy + torch._dynamo alone",
                 f"wall {st['seconds']:.2f} s, CPU {st['cpu_seconds']:.2f} s, +{st['added_mib']:.0f} MiB "
                 f"(paid by export / fake tensors on first use)"))
    print(f"PyTorch adapter benchmarks ({os.cpu_count()} CPUs; load average {load0:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end: wall times on a busy machine are inflated, CPU times less so)")
    report(rows)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
        sys.exit(0)
    sys.exit(main())
