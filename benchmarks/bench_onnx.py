"""Reading an ONNX file: speed, memory, and no framework import.

Exports a ResNet-50 (torchvision's architecture, built here; no torchvision)
to ONNX once with ``torch.onnx.export`` (dynamo exporter, ``optimize=False`` so
BatchNormalization nodes stay; weights inline in the file, about 100 MB), then
prints, measured in this run on this machine (fresh interpreter per run, median
of several):
  * ``read_onnx`` + analyses (receptive field, cost): wall seconds and peak RSS
  * the same with the weights in an external data file that is absent
  * ``modellint summary`` on the file, when the CLI reads ONNX
  * whether torch (or any framework) got imported while reading
Target: read + analyses <= 2 s.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ENV, ROOT, report, run_py  # noqa: E402

READ = ("import sys; from modellint.adapters.onnx_file import read_onnx; "
        "from modellint.analysis import node_costs, receptive_fields, last_spatial; "
        "g = read_onnx(sys.argv[1]); rfs = receptive_fields(g); last_spatial(g, rfs); costs = node_costs(g); "
        "frameworks = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'tensorflow', 'keras', 'jax'}); "
        "print(len(g), g.total_params, sum(c.macs for c in costs.values()), last_spatial(g, rfs)[1].size[0], "
        "','.join(frameworks) or '-')")


def resnet50():
    """torchvision's ResNet-50 architecture (tests/torch_resnet.py) and an input."""
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from torch_resnet import resnet50 as build

    return build().eval(), torch.randn(1, 3, 224, 224)


def export(tmp: Path) -> tuple:
    import logging

    import onnx
    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    model, x = resnet50()
    inline = tmp / "resnet50.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(inline), dynamo=True, optimize=False, external_data=False,
                          verbose=False)
    external = tmp / "resnet50_ext.onnx"
    onnx.save_model(onnx.load(str(inline)), str(external), save_as_external_data=True,
                    location="resnet50_ext.onnx.data", size_threshold=0)
    (tmp / "resnet50_ext.onnx.data").unlink()  # the reader must not need it
    n_params = sum(p.numel() for p in model.parameters())
    n_bn = sum(b.numel() for n, b in model.named_buffers() if "running" in n)
    return inline, external, n_params, n_bn


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--export":
        print(*export(Path(sys.argv[2])))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="modellint-bench-onnx-"))
    # exported in a child process: a parent holding torch and the model would
    # inflate the children's peak RSS (ru_maxrss counts the pre-exec fork)
    proc = subprocess.run([sys.executable, __file__, "--export", str(tmp)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"export failed:\n{proc.stderr[-2000:]}")
    inline, external, n_params, n_bn = proc.stdout.split()[-4:]
    inline, external, n_params, n_bn = Path(inline), Path(external), int(n_params), int(n_bn)
    rows = [("ResNet-50 file size (MB)", f"{inline.stat().st_size / 1e6:.0f} (weights inline)")]

    proc = subprocess.run([sys.executable, "-c", READ, str(inline)], cwd=ROOT, env=ENV, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"read failed:\n{proc.stderr[-2000:]}")
    nodes, params, macs, rf, frameworks = proc.stdout.split()
    rows.append(("graph nodes / params", f"{nodes} / {int(params):,} (torch: {n_params + n_bn:,} "
                                         "incl. BN running stats)"))
    rows.append(("MACs (batch 1) / receptive field", f"{int(macs) / 1e9:.2f} G / {rf} px"))
    rows.append(("frameworks imported while reading", frameworks if frameworks != "-" else "none (torch not imported)"))

    t, mem = run_py(["-c", READ, inline], repeat=5)
    rows.append(("read_onnx + analyses (s)", f"{t:.3f}   target <= 2"))
    rows.append(("read_onnx + analyses peak RSS (MiB)", f"{mem:.0f}"))
    t, mem = run_py(["-c", READ, external], repeat=5)
    rows.append(("same, external data file absent (s)", f"{t:.3f} ({mem:.0f} MiB)"))
    base_t, base_mem = run_py(["-c", "import modellint.analysis, onnx"], repeat=5)
    rows.append(("of which interpreter + import onnx (s)", f"{base_t:.3f} ({base_mem:.0f} MiB)"))
    try:
        cli_t, cli_mem = run_py(["-m", "modellint", "summary", inline], repeat=3)
        rows.append(("modellint summary resnet50.onnx (s)", f"{cli_t:.3f} ({cli_mem:.0f} MiB)"))
    except SystemExit as exc:
        rows.append(("modellint summary", f"not measured ({str(exc).splitlines()[0]})"))
    print("modellint ONNX reading benchmarks")
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
