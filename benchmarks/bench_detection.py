"""torchvision's detection models read by modellint (forward hooks on meta tensors) against
torchinfo.summary (a real forward pass), each in its own process: time and peak RSS added.

    python benchmarks/bench_detection.py [names...]

``detection_sample()`` is the list (zoo, name, input size) that bench_zoo.py can add to its
sample; it needs ``torchvision_ops.enable_detection()`` after ``import_torchvision()``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = (1, 3, 320, 320)


def detection_sample():
    from torchvision import models

    return [("torchvision", n, SIZE) for n in models.list_models(module=models.detection)]


def _one(name: str, tool: str) -> dict:
    import resource
    import time
    import warnings

    sys.path.insert(0, str(ROOT / "tests"))
    warnings.simplefilter("ignore")
    import torch
    from torchvision_ops import enable_detection, import_torchvision

    torch.set_num_threads(1)
    import_torchvision()
    enable_detection()
    from torchvision import models

    import torchinfo  # noqa: F401 - imported by both runs, so that neither pays it
    from modellint.adapters.torch_live import graph_from_module

    model = models.get_model(name, weights=None, weights_backbone=None)
    expected = sum(p.numel() for p in model.parameters())
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    row = {"model": name, "tool": tool, "parameters": expected}
    try:
        if tool == "modellint":
            g = graph_from_module(model, input_shape=SIZE, name=name)
            stats = sum(b.numel() for n, b in model.named_buffers() if n.rsplit(".", 1)[-1] in ("running_mean", "running_var"))
            row.update(exact=(g.total_params, g.trainable_params) ==
                       (expected + stats, sum(p.numel() for p in model.parameters() if p.requires_grad)),
                       unknown=sum(n.op == "unknown" for n in g), outputs=[g.shape_of(r) for r in g.outputs],
                       capture=g.notes[0][:40])
        else:
            s = torchinfo.summary(model, input_size=SIZE, verbose=0)
            row.update(exact=int(s.total_params) == expected)
    except Exception as exc:  # noqa: BLE001
        row["error"] = f"{type(exc).__name__}: {str(exc)[:160]}"
    row["seconds"] = round(time.perf_counter() - t0, 2)
    row["extra_peak_mib"] = round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024, 1)
    return row


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--one":
        print(json.dumps(_one(argv[1], argv[2]), default=str))
        return
    if not argv:
        out = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'tests'); "
                              "from torchvision_ops import import_torchvision; import_torchvision(); "
                              "from torchvision import models; print(' '.join(models.list_models(module=models.detection)))"],
                             cwd=ROOT, capture_output=True, text=True)
        argv = out.stdout.split()
    for name in argv:
        for tool in ("modellint", "torchinfo"):
            p = subprocess.run([sys.executable, __file__, "--one", name, tool], cwd=ROOT, capture_output=True, text=True)
            line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else json.dumps({"model": name, "tool": tool,
                                                                                        "error": p.stderr[-200:]})
            print(line, flush=True)


if __name__ == "__main__":
    main()
