"""The public model zoos read exactly (issue 12): torchvision, timm and, where
``benchmarks/zoo_keras.py`` exists, the Keras zoo (keras-hub backbones, Keras layers).

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
  * time per model (capture only, the build excluded) and peak memory (the extra
    resident memory of the capture, see below), and torchinfo's ``summary`` of the
    same module in the same run where torchinfo is installed (params, time, memory);
  * MACs: modellint's total (``analysis.total_macs``) against ptflops' ``aten``
    backend on the same meta-built module, where ptflops is installed (see MACs).

Per zoo: read rate (graphs made), exact-params rate, exact-output-shape rate,
rate of graphs with any unknown node, unknown nodes / all nodes, median and total
time, median and largest extra memory (and models over 300 MiB), MACs agreement
(within 1 %). ``--json PATH`` writes every row.

Memory. Each model runs in a forked child (the parent has torch, torchvision and
timm imported already, so a fork costs milliseconds): the child builds the model,
resets the kernel's peak-RSS mark (``/proc/self/clear_refs``), reads it, and
reports ``VmHWM`` minus the resident size before the read. torchinfo runs in a
second child the same way, so neither inherits the other's freed memory. A child
that crashes or runs past ``PER_MODEL_S`` becomes an error row; the run goes on.

MACs, and where the conventions differ. modellint counts one MAC per
multiply-add of what ``modellint/ops.py`` gives MACs: layers with weights (conv,
dense, RNN, attention projections) and the products inside attention
(``F.scaled_dot_product_attention``, Swin's window attention, ``einsum``, and a
matmul between two activations as the ``dot`` op where ops.py counts it);
element-wise ops, normalisation, pooling, resizing and bias additions count zero.
ptflops' ``aten`` backend counts ``mm``, ``matmul``, ``addmm``, ``bmm`` and
``convolution`` at the dispatcher, one MAC per multiply-add, whatever module or
function calls them (sdpa decomposed on meta tensors included), and runs on meta
tensors; it also counts a conv's bias additions, which modellint does not, so the
bench counts convs without them (``ptflops.aten_ops`` patched for the run).
Compared: models whose graph has a MAC total (no unknown node) and where ptflops
ran; agreement is within 1 %. A model where they differ points at products one
side does not see: ``q @ k.transpose(-2, -1)`` written in ``forward`` code, a
window attention's relative-position terms, products after a reshape that moved
the channel axis. ptflops' default ``pytorch`` backend counts modules (and some
functionals) instead, adds norms, activations and pooling at one per element, and
misses matmuls done in ``forward`` code: not the same convention. fvcore's
``FlopCountAnalysis`` counts one "flop" per MAC (the same unit) but traces with
``torch.jit`` on real tensors, which meta-built models cannot give, and adds
norms and upsampling by default; it is not run here.

torchvision's PyPI wheels are built against a CUDA torch; with torch's CPU build
``import torchvision`` fails ("operator torchvision::nms does not exist"), so
``tests/torchvision_ops.py`` registers pure-Python stand-ins for its ops first.

Sample: torchvision's classification, segmentation, video and detection models
(all of them; optical flow is left out), and the fixed list :data:`TIMM_MODELS`
(one model per timm architecture module, the smallest-named variant, as of timm
1.0.31, plus a few common ones), plus any named with ``--models``. Detection
models return data-dependent box lists: their reference shapes are what a meta
forward gives, weak evidence.

    python benchmarks/bench_zoo.py --json build/zoo.json    # all zoos
    python benchmarks/bench_zoo.py --zoo timm --limit 20
    python benchmarks/bench_zoo.py --models googlenet,inception_v3 -v
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import pickle
import signal
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

PER_MODEL_S = 180
MEMORY_TARGET_MIB = 300

# One model per timm architecture module (the smallest-named variant) as timm 1.0.31
# lists them, frozen so that runs compare, plus common models of the larger families.
TIMM_MODELS = (
    "beit_base_patch16_224", "caformer_b36", "cait_xxs24_224", "coat_tiny", "convit_tiny", "convmixer_768_32",
    "convnext_atto", "cpubone_nano", "crossvit_tiny_240", "csatv2", "cspnext_tiny", "darknet17", "davit_tiny",
    "deepseek_vit_412m", "deit_tiny_patch16_224", "densenet121", "dla34", "dpn68", "edgenext_small",
    "efficientformer_l1", "efficientformerv2_s0", "efficientvim_m1", "efficientvit_b0", "efficientvit_m0",
    "eva02_tiny_patch14_224", "fasternet_t0", "fastvit_t8", "focalnet_tiny_lrf", "gcvit_tiny", "gemma4_vit_167m",
    "ghostnet_050", "gmlp_b16_224", "halonet26t", "hardcorenas_a", "hgnet_tiny", "hiera_tiny_224",
    "hrnet_w18_small", "iformer_h", "inception_next_atto", "inception_resnet_v2", "inception_v3", "inception_v4",
    "lcnetv2_small", "legacy_senet154", "legacy_xception", "levit_128", "lowformer_b0", "mambaout_femto",
    "maxvit_pico_rw_256", "mnasnet_small", "mobilenetv3_small_050", "mobilenetv5_300m", "mobileone_s0",
    "mobilevit_xxs", "mvitv2_tiny", "naflexvit_base_patch16_gap", "nasnetalarge", "nest_tiny", "nextvit_small",
    "nf_regnet_b0", "pit_xs_224", "pnasnet5large", "pvt_v2_b0", "qwen3_vit_88m", "rdnet_tiny", "regnetv_040",
    "repghostnet_050", "repvit_m1", "res2net50d", "resnest14d", "resnet18", "resnetv2_18", "rexnet_100",
    "sam2_hiera_tiny", "samvit_base_patch16", "selecsls42", "sequencer2d_l", "shvit_s1", "skresnet18",
    "starnet_s050", "swiftformer_xs", "swin_s3_tiny_224", "swinv2_cr_tiny_224", "swinv2_tiny_window8_256",
    "tiny_vit_5m_224", "tnt_b_patch16_224", "tresnet_l", "twins_svt_small", "vgg11", "visformer_tiny",
    "vit_dlittle_patch16_reg1_gap_256", "vit_relpos_small_patch16_224", "vit_tiny_patch16_224",
    "vit_tiny_r_s16_p8_224", "vitamin_small_224", "volo_d1_224", "vovnet39a", "xception41", "xcit_nano_12_p8_224",
    # common models of the larger families
    "resnet50", "efficientnet_b0", "tf_efficientnet_b0", "mobilenetv2_100", "convnext_tiny",
    "swin_tiny_patch4_window7_224", "vit_small_patch16_224", "regnetx_002", "coatnet_0_rw_224", "mixer_b16_224",
    "resmlp_12_224", "poolformer_s12", "ese_vovnet19b_dw",
)


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
    for name in models.list_models(module=models.detection):
        out.append(("torchvision", name, (1, 3, 320, 320)))
    return out


def timm_sample(names=TIMM_MODELS):
    import timm

    out = []
    for name in names:
        try:
            cfg = timm.models.get_pretrained_cfg(name)
            size = tuple(getattr(cfg, "input_size", None) or (3, 224, 224)) if cfg is not None else (3, 224, 224)
        except Exception:  # noqa: BLE001
            size = (3, 224, 224)
        out.append(("timm", name, (1, *size)))
    return out


def _is_segmentation(name):
    from torchvision import models

    return name in models.list_models(module=models.segmentation) or \
        name in models.list_models(module=models.detection)


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

            extra = {"weights_backbone": None} if _is_segmentation(name) else {}
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


# -- memory -------------------------------------------------------------------------------

def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _mark():
    """Reset the peak-RSS mark to the resident size now; the resident size (KiB)."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return _status_kib("VmRSS")


def _extra_mib(base):
    return None if base is None else max(0, _status_kib("VmHWM") - base) / 1024


def _in_child(fn, *args):
    """``fn(*args)`` in a forked child; its return value, or {"error": ...} when it fails, dies or hangs."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(r)
        try:
            signal.alarm(PER_MODEL_S)
            out = fn(*args)
        except BaseException as exc:  # noqa: BLE001
            out = {"error": f"{type(exc).__name__}: {str(exc)[:300]}",
                   "where": traceback.format_exc(limit=-2)[-400:]}
        try:
            data = pickle.dumps(out)
        except Exception as exc:  # noqa: BLE001
            data = pickle.dumps({"error": f"result not picklable: {exc}"})
        with os.fdopen(w, "wb") as f:
            f.write(data)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        return {"error": f"child died (status {status})"}
    return pickle.loads(data)


# -- one model ----------------------------------------------------------------------------

def _capture(zoo, name, size, meta, with_macs):
    import torch

    from modellint.adapters.torch_live import graph_from_module
    from modellint.analysis import total_macs

    torch.set_num_threads(1)
    row = {}
    try:
        model = build(zoo, name, meta)
    except Exception as exc:  # noqa: BLE001
        return {"error": f"build: {type(exc).__name__}: {str(exc)[:200]}"}
    base = _mark()
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = graph_from_module(model, input_shape=size, name=name)
    except Exception as exc:  # noqa: BLE001
        row["error"] = f"read: {type(exc).__name__}: {str(exc)[:300]}"
        row["seconds"] = time.perf_counter() - t0
        g = None
    else:
        row["seconds"] = time.perf_counter() - t0
    row["peak_mib"] = _extra_mib(base)
    total, trainable, plain = expected_params(model)
    row["expected"] = {"total": total, "trainable": trainable, "parameters": plain}
    if g is not None:
        row["params"] = {"total": g.total_params, "trainable": g.trainable_params}
        row["exact_params"] = (g.total_params, g.trainable_params) == (total, trainable)
        row["shapes"] = [None if s is None else list(s) for s in graph_shapes(g)]
        unknown = [n for n in g if n.op == "unknown"]
        row["nodes"] = len(g)
        row["unknown"] = len(unknown)
        row["unknown_kinds"] = sorted({n.source_type + (f" ({n.attrs['function']})" if "function" in n.attrs else "")
                                       for n in unknown})
        row["capture"] = g.notes[0][:160] if g.notes else ""
        row["notes"] = [n for n in g.notes[1:]][:6]
        try:
            row["macs"] = total_macs(g)
        except Exception as exc:  # noqa: BLE001
            row["macs_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
        del g
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row["reference_shapes"] = [list(s) for s in reference_shapes(model, size)]
        if "shapes" in row:
            row["exact_shapes"] = row["shapes"] == row["reference_shapes"]
    except Exception as exc:  # noqa: BLE001
        row["reference_error"] = f"{type(exc).__name__}: {str(exc)[:160]}"
    if with_macs:
        row["ptflops"] = _ptflops(model, size)
    return row


def _ptflops(model, size):
    """ptflops' aten-backend MACs of the module on meta tensors, convs counted without their bias additions."""
    import torch
    from ptflops import aten_ops
    from ptflops.aten_engine import get_flops_aten

    def conv(inputs, outputs):
        return aten_ops.conv_flop_count(inputs[0].shape, inputs[1].shape, outputs[0].shape,
                                        transposed=inputs[6], bias=False)

    mapping = aten_ops.ATEN_OPS_MAPPING
    saved = dict(mapping)
    mapping[torch.ops.aten.convolution] = mapping[torch.ops.aten._convolution] = conv
    dev = next((p.device for p in model.parameters()), torch.device("meta"))
    try:
        with open(os.devnull, "w") as null, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            macs, _ = get_flops_aten(model.eval(), tuple(size[1:]), ost=null, verbose=False,
                                     input_constructor=lambda _: torch.empty(size, device=dev))
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
    finally:
        mapping.clear()
        mapping.update(saved)
    return {"macs": None if macs is None else int(macs)}


def _torchinfo_child(zoo, name, size, meta):
    import torch
    import torchinfo

    torch.set_num_threads(1)
    model = build(zoo, name, meta)
    dev = next((p.device for p in model.parameters()), None)
    base = _mark()
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = torchinfo.summary(model, input_size=size, device=dev, verbose=0)
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {str(exc)[:120]}", "seconds": time.perf_counter() - t0,
                "peak_mib": _extra_mib(base)}
    return {"total": int(s.total_params), "trainable": int(s.trainable_params), "seconds": time.perf_counter() - t0,
            "peak_mib": _extra_mib(base)}


def run_one(zoo, name, size, *, meta=True, with_torchinfo=False, with_macs=False, verbose=False):
    row = {"zoo": zoo, "model": name, "input": list(size)}
    row.update(_in_child(_capture, zoo, name, size, meta, with_macs))
    if with_torchinfo and "expected" in row:
        row["torchinfo"] = _in_child(_torchinfo_child, zoo, name, size, meta)
    if verbose:
        _print_row(row)
    return row


def _macs_agree(row):
    """True/False where both counts exist, None where they cannot be compared."""
    p = row.get("ptflops") or {}
    ours, theirs = row.get("macs"), p.get("macs")
    if ours is None or not theirs:
        return None
    return abs(ours - theirs) <= 0.01 * theirs


def _print_row(row):
    if "error" in row:
        print(f"  {row['zoo']:<11} {row['model']:<44} ERROR {row['error'][:150]}", flush=True)
        return
    e = row.get("expected")
    flags = []
    if e is not None and not row.get("exact_params"):
        flags.append(f"params {row['params']['total']:,}/{e['total']:,} "
                     f"trainable {row['params']['trainable']:,}/{e['trainable']:,}")
    if row.get("exact_shapes") is False:
        flags.append(f"shapes {row['shapes']} vs {row['reference_shapes']}")
    if "reference_error" in row:
        flags.append(f"no reference ({row['reference_error'][:60]})")
    if row.get("unknown"):
        flags.append(f"{row['unknown']} unknown: {', '.join(row['unknown_kinds'])[:200]}")
    if _macs_agree(row) is False:
        flags.append(f"MACs {row['macs']:,} vs ptflops {row['ptflops']['macs']:,}")
    mem = "" if row.get("peak_mib") is None else f" {row['peak_mib']:6.1f}MiB"
    ti = row.get("torchinfo")
    tis = "" if ti is None else f" torchinfo {ti.get('seconds', 0):5.2f}s" + (
        f" {ti['peak_mib']:6.1f}MiB" if ti.get("peak_mib") is not None else "") + (" ERR" if "error" in ti else "")
    print(f"  {row['zoo']:<11} {row['model']:<44} {row.get('seconds', 0):6.2f}s{mem}{tis}  "
          f"{'; '.join(flags) if flags else 'exact'}", flush=True)


def _median(values):
    return statistics.median(values) if values else float("nan")


def capture_kind(note):
    """A short name for the capture that made a graph, from ``graph.notes[0]``: ``fx/meta``,
    ``fx/fake`` (the fx trace's shapes fell back from meta to fake tensors), ``hooks/meta``, ..."""
    note = note or ""
    if note.startswith("captured with torch.fx on meta"):
        return "fx/meta"
    if note.startswith("captured with torch.fx"):
        return "fx/fake" if "fake tensors" in note else "fx"
    if note.startswith("captured with torch.export"):
        return "export"
    if note.startswith("captured with forward hooks"):
        rest = note[len("captured with forward hooks"):]
        return "hooks/" + ("meta" if rest.startswith(" on meta") else "fake" if rest.startswith(" on fake") else "real")
    return "other"


def summarise(rows, zoo):
    """The per-zoo table as lines (printed by main); rows of any zoo with the keys of run_one."""
    rows = [r for r in rows if r["zoo"] == zoo]
    if not rows:
        return {}
    read = [r for r in rows if "error" not in r]
    n = len(rows)
    nodes = sum(r.get("nodes", 0) for r in read)
    unknown = sum(r.get("unknown", 0) for r in read)
    with_ref = [r for r in read if "exact_shapes" in r]
    times = [r["seconds"] for r in read if r.get("seconds") is not None]
    mem = [r["peak_mib"] for r in read if r.get("peak_mib") is not None]
    s = {"models": n, "read": len(read), "exact_params": sum(bool(r.get("exact_params")) for r in read),
         "exact_shapes": sum(bool(r["exact_shapes"]) for r in with_ref), "with_reference": len(with_ref),
         "graphs_with_unknown": sum(1 for r in read if r.get("unknown")), "unknown_nodes": unknown, "nodes": nodes,
         "median_s": _median(times), "max_s": max(times, default=float("nan")), "total_s": sum(times),
         "median_mib": _median(mem), "max_mib": max(mem, default=float("nan")),
         "over_target": sum(1 for m in mem if m > MEMORY_TARGET_MIB)}
    print(f"\n{zoo}: {n} models")
    print(f"  read                      {len(read)}/{n} ({100 * len(read) / n:.1f} %)")
    print(f"  exact total+trainable     {s['exact_params']}/{n}")
    print(f"  exact output shapes       {s['exact_shapes']}/{len(with_ref)} (of those with a reference forward pass)")
    print(f"  graphs with unknown nodes {s['graphs_with_unknown']}/{len(read)} "
          f"({100 * s['graphs_with_unknown'] / max(len(read), 1):.1f} %)")
    print(f"  unknown nodes             {unknown}/{nodes} ({100 * unknown / max(nodes, 1):.2f} %)")
    if times:
        print(f"  time per model            median {s['median_s']:.2f} s, max {s['max_s']:.2f} s, "
              f"total {s['total_s']:.1f} s")
    if mem:
        big = sorted((r for r in read if (r.get("peak_mib") or 0) > MEMORY_TARGET_MIB), key=lambda r: -r["peak_mib"])
        print(f"  extra memory per model    median {s['median_mib']:.1f} MiB, max {s['max_mib']:.1f} MiB; "
              f"{s['over_target']} over {MEMORY_TARGET_MIB} MiB"
              + (": " + ", ".join(f"{r['model']} {r['peak_mib']:.0f}" for r in big[:6]) if big else ""))
    ti = [r["torchinfo"] for r in read if "torchinfo" in r]
    if ti:
        ok = [t for t in ti if "error" not in t]
        exact = sum(1 for r in read if "torchinfo" in r and "error" not in r["torchinfo"]
                    and r["torchinfo"]["trainable"] == r["expected"]["trainable"])
        ti_mem = [t["peak_mib"] for t in ok if t.get("peak_mib") is not None]
        s.update(torchinfo_ran=len(ok), torchinfo_exact=exact, torchinfo_median_s=_median([t["seconds"] for t in ok]),
                 torchinfo_median_mib=_median(ti_mem), torchinfo_max_mib=max(ti_mem, default=float("nan")))
        print(f"  torchinfo                 ran on {len(ok)}/{len(ti)}, trainable exact on {exact}; median "
              f"{s['torchinfo_median_s']:.2f} s, total {sum(t['seconds'] for t in ti):.1f} s; memory median "
              f"{s['torchinfo_median_mib']:.1f} MiB, max {s['torchinfo_max_mib']:.1f} MiB")
        pairs = [(r["seconds"], r["torchinfo"]["seconds"]) for r in read
                 if "torchinfo" in r and "error" not in r["torchinfo"] and r.get("seconds") is not None]
        if pairs:
            ratio = _median([a for a, _ in pairs]) / max(_median([b for _, b in pairs]), 1e-9)
            s["time_ratio"] = ratio
            print(f"  median time / torchinfo's  {ratio:.2f} (on the {len(pairs)} models both read)")
    agree = [_macs_agree(r) for r in read]
    tried = [r for r in read if "ptflops" in r]
    if tried:
        compared = [a for a in agree if a is not None]
        s.update(macs_compared=len(compared), macs_agree=sum(compared))
        print(f"  MACs vs ptflops (aten)    {sum(compared)}/{len(compared)} within 1 % (compared: graph total "
              f"known and ptflops ran; ptflops failed on {sum(1 for r in tried if 'error' in r['ptflops'])}, "
              f"no modellint total on {sum(1 for r in read if r.get('macs') is None)})")
        off = sorted((r for r, a in zip(read, agree) if a is False),
                     key=lambda r: -abs(r["macs"] / r["ptflops"]["macs"] - 1))
        if off:
            print("  MACs differ               " + ", ".join(
                f"{r['model']} {r['macs'] / r['ptflops']['macs']:.3f}" for r in off[:10]))
    captures = collections.Counter(capture_kind(r.get("capture")) for r in read)
    s["captures"] = dict(captures)
    print("  captures                  " + ", ".join(f"{k} {c}" for k, c in captures.most_common())
          + " (fx/fake: meta tensors failed, the traced graph ran on fake tensors)")
    fake = [r["model"] for r in read if capture_kind(r.get("capture")) == "fx/fake"]
    if fake:
        print("  fx fell back to fake      " + ", ".join(fake[:12]) + (" ..." if len(fake) > 12 else ""))
    kinds = collections.Counter(k for r in read for k in r.get("unknown_kinds", ()))
    if kinds:
        print("  unknown kinds (graphs):   " + ", ".join(f"{k} {c}" for k, c in kinds.most_common(12)))
    errors = [r for r in rows if "error" in r]
    if errors:
        print("  not read                  " + "; ".join(f"{r['model']}: {r['error'][:90]}" for r in errors[:8]))
    return s


def keras_zoo(verbose=False):
    """The Keras zoo's rows from ``benchmarks/zoo_keras.py`` when it exists (None when it does not)."""
    try:
        from zoo_keras import keras_rows
    except ImportError:
        return None
    try:
        return keras_rows(verbose=verbose)
    except Exception as exc:  # noqa: BLE001 - the other zoos' table still prints
        print(f"keras: zoo_keras.keras_rows failed: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
        return []


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", choices=("all", "torchvision", "timm", "keras"), default="all")
    ap.add_argument("--models", default="", help="comma-separated names (timm or torchvision); only these")
    ap.add_argument("--limit", type=int, default=0, help="at most this many models per zoo")
    ap.add_argument("--real", action="store_true", help="build real weights (slow) instead of meta tensors")
    ap.add_argument("--no-torchinfo", action="store_true")
    ap.add_argument("--no-macs", action="store_true", help="do not compare MACs with ptflops")
    ap.add_argument("--json", help="write every row (and the per-zoo summary) to this file")
    ap.add_argument("-v", "--verbose", action="store_true", help="print one line per model")
    args = ap.parse_args(argv)

    import torch
    from torchvision_ops import import_torchvision

    torch.set_num_threads(1)
    import_torchvision()
    import torchvision_ops

    if hasattr(torchvision_ops, "enable_detection"):  # roi_align's stand-in: detection models run
        torchvision_ops.enable_detection()
    try:
        import timm  # noqa: F401 - imported once here, before the forks
    except ImportError:
        pass
    try:
        import torchinfo  # noqa: F401
        with_ti = not args.no_torchinfo
    except ImportError:
        with_ti = False
    try:
        import ptflops  # noqa: F401
        with_macs = not args.no_macs
    except ImportError:
        with_macs = False
    import modellint.adapters.torch_live  # noqa: F401 - before the forks
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
                sample += timm_sample([n])
    else:
        if args.zoo in ("all", "torchvision"):
            sample += torchvision_sample()[:args.limit or None]
        if args.zoo in ("all", "timm"):
            sample += timm_sample()[:args.limit or None]
    print(f"torch {torch.__version__}; {len(sample)} models; weights on "
          f"{'the CPU' if args.real else 'the meta device'}; torchinfo {'on' if with_ti else 'off'}; "
          f"ptflops {'on' if with_macs else 'off'}", flush=True)
    rows = [run_one(z, n, s, meta=not args.real, with_torchinfo=with_ti, with_macs=with_macs, verbose=args.verbose)
            for z, n, s in sample]
    if not names and args.zoo in ("all", "keras"):
        keras = keras_zoo(verbose=args.verbose)
        if keras is None:
            print("keras: benchmarks/zoo_keras.py is not there; the Keras zoo is left out", flush=True)
        else:
            rows += keras
    summary = {}
    for zoo in dict.fromkeys(r["zoo"] for r in rows):
        summary[zoo] = summarise(rows, zoo)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
