"""The public PyTorch model zoos read exactly (issue 12): torchvision and timm.

For every model of the sample, built under ``with torch.device("meta")`` (shapes
and dtypes, no weights: the whole zoo in minutes and a few hundred MiB), prints
whether modellint read it, and checks the graph against the framework itself:

  * params: the graph's total and trainable counts against what the module holds,
    ``sum(p.numel())`` and its ``requires_grad`` split (the graph also counts
    BatchNorm's running statistics as non-trainable, as Keras does; they are added
    to the expected total);
  * output shapes: the graph's output shapes (in PyTorch's layout, batch as None)
    against those of the module's own forward pass on meta tensors;
  * unknown nodes: nodes whose op modellint could not name, per graph and in all,
    and the most common kinds left;
  * time per model (capture only, the build excluded), and torchinfo's
    ``summary`` of the same module in the same run where torchinfo is installed
    (its params and time, for comparison).

Per zoo: read rate (graphs made), exact-params rate, exact-output-shape rate,
rate of graphs with any unknown node, unknown nodes / all nodes, median and total
time. ``--json PATH`` writes every row.

torchvision's PyPI wheels are built against a CUDA torch; with torch's CPU build
``import torchvision`` fails ("operator torchvision::nms does not exist"), so
``tests/torchvision_ops.py`` registers pure-Python stand-ins for its ops first.

Sample: torchvision's classification, segmentation and video models (all of them;
detection and optical flow are left out: their outputs are data-dependent box
lists), and one model per timm architecture module (the smallest-named variant),
plus any named with ``--models``.

    python benchmarks/bench_zoo.py                    # both zoos
    python benchmarks/bench_zoo.py --zoo timm --limit 20
    python benchmarks/bench_zoo.py --models googlenet,inception_v3 -v
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

SMALL = ("atto", "femto", "pico", "nano", "tiny", "small", "mini", "micro", "xxs", "xs", "s0", "t0", "b0", "lite")
PER_MODEL_S = 120


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout(f"over {PER_MODEL_S} s")


def torchvision_sample():
    from torchvision import models

    out = []
    for name in models.list_models(module=models):
        size = (1, 3, 299, 299) if name == "inception_v3" else (1, 3, 224, 224)
        out.append(("torchvision", name, size))
    for name in models.list_models(module=models.segmentation):
        out.append(("torchvision", name, (1, 3, 224, 224)))
    for name in models.list_models(module=models.video):
        size = (1, 3, 16, 224, 224) if name.startswith(("mvit", "s3d", "swin3d")) else (1, 3, 8, 112, 112)
        out.append(("torchvision", name, size))
    return out


def _smallest_named(names):
    for word in SMALL:
        hits = [n for n in names if word in n.split("_")[-1] or f"_{word}" in n or n.endswith(word)]
        if hits:
            return sorted(hits, key=len)[0]
    return sorted(names, key=len)[0]


def timm_sample(extra=()):
    import timm
    from timm.models import _registry

    by_module = collections.defaultdict(list)
    for name in timm.list_models():
        by_module[_registry._model_to_module.get(name, name)].append(name)
    names = sorted({_smallest_named(v) for v in by_module.values()} | set(extra))
    out = []
    for name in names:
        try:
            cfg = timm.models.get_pretrained_cfg(name)
            size = tuple(getattr(cfg, "input_size", None) or (3, 224, 224)) if cfg is not None else (3, 224, 224)
        except Exception:  # noqa: BLE001
            size = (3, 224, 224)
        out.append(("timm", name, (1, *size)))
    return out


def build(zoo, name, meta=True):
    """The model, built under ``torch.device("meta")`` where its constructor allows (a
    constructor that reads tensor values, as torchvision's RegNets do, is built for real)."""
    import contextlib

    import torch

    ctx = torch.device("meta") if meta else contextlib.nullcontext()
    try:
        with ctx, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if zoo == "timm":
                import timm

                return timm.create_model(name, pretrained=False)
            from torchvision import models

            extra = {"weights_backbone": None} if name in models.list_models(module=models.segmentation) else {}
            return models.get_model(name, weights=None, **extra)
    except Exception:  # noqa: BLE001
        if not meta:
            raise
        return build(zoo, name, meta=False)


def expected_params(model):
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    stats = sum(b.numel() for n, b in model.named_buffers() if n.rsplit(".", 1)[-1] in ("running_mean", "running_var"))
    return total + stats, trainable, total


def reference_shapes(model, size):
    """The output shapes of the module's own forward pass (eval mode) on a meta input, batch as None."""
    import torch

    from modellint.adapters.torch_ops import _flat

    dev = next((p.device for p in model.parameters()), torch.device("meta"))
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.empty(size, device=dev))
    finally:
        for m, f in flags:
            m.training = f
    if isinstance(out, dict):
        out = list(out.values())
    return [(None, *t.shape[1:]) for t in _flat(out) if isinstance(t, torch.Tensor)]


def graph_shapes(graph):
    out = []
    for ref in graph.outputs:
        s = graph.display_shape(graph.shape_of(ref))
        out.append(None if s is None else tuple(s))
    return out


def run_one(zoo, name, size, *, meta=True, with_torchinfo=False, verbose=False):
    from modellint.adapters.torch_live import graph_from_module

    row = {"zoo": zoo, "model": name, "input": list(size)}
    signal.alarm(PER_MODEL_S)
    try:
        try:
            model = build(zoo, name, meta)
        except Exception as exc:  # noqa: BLE001
            row["error"] = f"build: {type(exc).__name__}: {str(exc)[:200]}"
            return row
        total, trainable, plain = expected_params(model)
        row["expected"] = {"total": total, "trainable": trainable, "parameters": plain}
        try:
            row["reference_shapes"] = [list(s) for s in reference_shapes(model, size)]
        except Exception as exc:  # noqa: BLE001
            row["reference_error"] = f"{type(exc).__name__}: {str(exc)[:160]}"
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = graph_from_module(model, input_shape=size, name=name)
        except Exception as exc:  # noqa: BLE001
            row["error"] = f"read: {type(exc).__name__}: {str(exc)[:300]}"
            row["seconds"] = time.perf_counter() - t0
            return row
        row["seconds"] = time.perf_counter() - t0
        row["params"] = {"total": g.total_params, "trainable": g.trainable_params}
        row["exact_params"] = (g.total_params, g.trainable_params) == (total, trainable)
        shapes = graph_shapes(g)
        row["shapes"] = [None if s is None else list(s) for s in shapes]
        if "reference_shapes" in row:
            row["exact_shapes"] = row["shapes"] == row["reference_shapes"]
        unknown = [n for n in g if n.op == "unknown"]
        row["nodes"] = len(g)
        row["unknown"] = len(unknown)
        row["unknown_kinds"] = sorted({n.source_type + (f" ({n.attrs['function']})" if "function" in n.attrs else "")
                                       for n in unknown})
        row["capture"] = g.notes[0][:160] if g.notes else ""
        row["notes"] = [n for n in g.notes[1:]][:6]
        if with_torchinfo:
            row["torchinfo"] = _torchinfo(model, size)
        return row
    except _Timeout as exc:
        row["error"] = f"timeout: {exc}"
        return row
    finally:
        signal.alarm(0)
        if verbose:
            _print_row(row)


def _torchinfo(model, size):
    import torchinfo

    dev = next((p.device for p in model.parameters()), None)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = torchinfo.summary(model, input_size=size, device=dev, verbose=0)
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {str(exc)[:120]}", "seconds": time.perf_counter() - t0}
    return {"total": int(s.total_params), "trainable": int(s.trainable_params), "seconds": time.perf_counter() - t0}


def _print_row(row):
    if "error" in row:
        print(f"  {row['zoo']:<11} {row['model']:<44} ERROR {row['error'][:150]}", flush=True)
        return
    e = row["expected"]
    flags = []
    if not row["exact_params"]:
        flags.append(f"params {row['params']['total']:,}/{e['total']:,} "
                     f"trainable {row['params']['trainable']:,}/{e['trainable']:,}")
    if row.get("exact_shapes") is False:
        flags.append(f"shapes {row['shapes']} vs {row['reference_shapes']}")
    if "reference_error" in row:
        flags.append(f"no reference ({row['reference_error'][:60]})")
    if row["unknown"]:
        flags.append(f"{row['unknown']} unknown: {', '.join(row['unknown_kinds'])[:200]}")
    ti = row.get("torchinfo")
    tis = "" if ti is None else f" torchinfo {ti.get('seconds', 0):5.2f}s" + (" ERR" if "error" in ti else "")
    print(f"  {row['zoo']:<11} {row['model']:<44} {row['seconds']:6.2f}s{tis}  "
          f"{'; '.join(flags) if flags else 'exact'}", flush=True)


def summarise(rows, zoo):
    rows = [r for r in rows if r["zoo"] == zoo]
    if not rows:
        return
    read = [r for r in rows if "error" not in r]
    n = len(rows)
    nodes = sum(r["nodes"] for r in read)
    unknown = sum(r["unknown"] for r in read)
    with_ref = [r for r in read if "exact_shapes" in r]
    times = [r["seconds"] for r in read]
    print(f"\n{zoo}: {n} models")
    print(f"  read                     {len(read)}/{n} ({100 * len(read) / n:.1f} %)")
    print(f"  exact total+trainable    {sum(r['exact_params'] for r in read)}/{n}")
    print(f"  exact output shapes      {sum(r['exact_shapes'] for r in with_ref)}/{len(with_ref)} "
          f"(of those with a reference forward pass)")
    print(f"  graphs with unknown nodes {sum(1 for r in read if r['unknown'])}/{len(read)}")
    print(f"  unknown nodes            {unknown}/{nodes} ({100 * unknown / max(nodes, 1):.2f} %)")
    if times:
        print(f"  time per model           median {statistics.median(times):.2f} s, max {max(times):.2f} s, "
              f"total {sum(times):.1f} s")
    ti = [r["torchinfo"] for r in read if "torchinfo" in r]
    if ti:
        ok = [t for t in ti if "error" not in t]
        exact = sum(1 for r in read if "torchinfo" in r and "error" not in r["torchinfo"]
                    and r["torchinfo"]["trainable"] == r["expected"]["trainable"])
        print(f"  torchinfo                ran on {len(ok)}/{len(ti)}, trainable exact on {exact}; median "
              f"{statistics.median([t['seconds'] for t in ok]) if ok else float('nan'):.2f} s, "
              f"total {sum(t['seconds'] for t in ti):.1f} s")
    kinds = collections.Counter(k for r in read for k in r["unknown_kinds"])
    if kinds:
        print("  unknown kinds (graphs):  " + ", ".join(f"{k} {c}" for k, c in kinds.most_common(12)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", choices=("all", "torchvision", "timm"), default="all")
    ap.add_argument("--models", default="", help="comma-separated names (timm or torchvision); only these")
    ap.add_argument("--limit", type=int, default=0, help="at most this many models per zoo")
    ap.add_argument("--real", action="store_true", help="build real weights (slow) instead of meta tensors")
    ap.add_argument("--no-torchinfo", action="store_true")
    ap.add_argument("--json", help="write every row to this file")
    ap.add_argument("-v", "--verbose", action="store_true", help="print one line per model")
    args = ap.parse_args(argv)

    import torch
    from torchvision_ops import import_torchvision

    torch.set_num_threads(1)
    import_torchvision()
    try:
        import torchinfo  # noqa: F401
        with_ti = not args.no_torchinfo
    except ImportError:
        with_ti = False
    signal.signal(signal.SIGALRM, _alarm)
    names = [n for n in args.models.split(",") if n]
    sample = []
    if names:
        from torchvision import models

        tv = set(models.list_models())
        for n in names:
            if n in tv:
                sample += [s for s in torchvision_sample() if s[1] == n] or [("torchvision", n, (1, 3, 224, 224))]
            else:
                sample += [s for s in timm_sample([n]) if s[1] == n]
    else:
        if args.zoo in ("all", "torchvision"):
            sample += torchvision_sample()[:args.limit or None]
        if args.zoo in ("all", "timm"):
            sample += timm_sample(["vit_dlittle_patch16_reg1_gap_256"])[:args.limit or None]
    print(f"torch {torch.__version__}; {len(sample)} models; weights on "
          f"{'the CPU' if args.real else 'the meta device'}; torchinfo {'on' if with_ti else 'off'}", flush=True)
    rows = [run_one(z, n, s, meta=not args.real, with_torchinfo=with_ti, verbose=args.verbose) for z, n, s in sample]
    for zoo in ("torchvision", "timm"):
        summarise(rows, zoo)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
