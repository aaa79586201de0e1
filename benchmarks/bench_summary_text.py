"""How much of a model a pasted summary table gives back (issue 15).

Builds real models (the seed, keras.applications with weights=None, small Sequential and
Functional models, torchvision ResNets and small PyTorch models), prints their summaries
with the installed Keras (Keras 3 layout), with Keras 2's layouts (tests/data/summaries/
keras2_format.py) and with torchinfo, reads each text back with
:func:`modellint.adapters.summary_text.read_summary_text` and compares with
``modellint.load_graph`` on the real model: for every conv/pool window the kernel and
stride, and for every spatial layer the receptive field, counted as recovered (inferred
and equal), assumed (a stated default: right or wrong), unknown, or **wrong** (inferred
and not equal: must stay 0).

    .venv/bin/python benchmarks/bench_summary_text.py          # all cases
    .venv/bin/python benchmarks/bench_summary_text.py --quick  # the small ones
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "data" / "summaries"))
sys.path.insert(0, str(ROOT / "examples"))

WINDOW_OPS = ("conv", "depthwise_conv", "separable_conv", "pool_max", "pool_avg")


def keras3_text(model, width: int = 250) -> str:
    """The table as a terminal ``width`` columns wide shows it (rich reads COLUMNS; at 80 columns a
    Functional table cuts names with "…", which the reader handles, at less it drops columns)."""
    lines = []
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        model.summary(line_length=width, print_fn=lambda s, **k: lines.append(s))
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(lines)


def small_keras_models():
    import keras
    from keras import layers

    m1 = keras.Sequential([keras.Input((64, 64, 1)), layers.Conv2D(16, 5, name="conv_a"),
                           layers.MaxPooling2D(name="pool_a"), layers.Conv2D(32, 3, strides=2, name="conv_b"),
                           layers.Conv2D(32, 3, padding="same", name="conv_c"), layers.AveragePooling2D(2, name="avg"),
                           layers.Flatten(name="flat"), layers.Dropout(0.5, name="drop"), layers.Dense(10, name="fc")],
                          name="small_valid")
    i = keras.Input((32, 32, 3), name="img")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(i)
    x = layers.BatchNormalization(name="stem_bn")(x)
    y = layers.Conv2D(16, 3, padding="same", name="b1")(x)
    y = layers.Conv2D(16, 3, padding="same", name="b2")(y)
    x = layers.Add(name="res")([x, y])
    x = layers.Conv2D(32, 3, strides=2, padding="same", name="down")(x)
    z = layers.SeparableConv2D(32, 3, padding="same", name="sep")(x)
    x = layers.Concatenate(name="cat")([x, z])
    x = layers.GlobalMaxPooling2D(name="gmp")(x)
    o = layers.Dense(5, name="out")(x)
    m2 = keras.Model(i, o, name="small_functional")
    m3 = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(8, 3, dilation_rate=2, name="dil"),
                           layers.MaxPooling2D(3, name="pool3"), layers.DepthwiseConv2D(3, padding="same", name="dw"),
                           layers.UpSampling2D(name="up"), layers.ZeroPadding2D(1, name="pad"),
                           layers.Conv2D(4, 1, name="pw"), layers.GlobalAveragePooling2D(name="gap"),
                           layers.Dense(2, name="fc")], name="small_odd")
    return [m1, m2, m3]


def keras2_models():
    """(fixture file, model, functional, layout) for tests/data/summaries/keras2_*.txt."""
    from build_seed import build_seed

    m1, m2, m3 = small_keras_models()
    return [("keras2_seed_legacy.txt", build_seed(), False, "legacy"),
            ("keras2_seed_wrapped.txt", build_seed(), False, "wrapped"),
            ("keras2_small_valid_legacy.txt", m1, False, "legacy"),
            ("keras2_functional_legacy.txt", m2, True, "legacy"),
            ("keras2_functional_wrapped.txt", m2, True, "wrapped")]


KERAS_APPS = ("MobileNet", "MobileNetV2", "MobileNetV3Small", "ResNet50", "VGG16", "DenseNet121",
              "EfficientNetB0", "Xception", "InceptionV3", "NASNetMobile", "ResNet50V2", "EfficientNetV2B0")
QUICK_APPS = ("MobileNetV2", "ResNet50", "VGG16")


def torch_models():
    import torch
    from torch import nn
    from torchvision_ops import import_torchvision

    tv = import_torchvision()
    import seed_cnn_torch

    small = nn.Sequential(nn.Conv2d(3, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                          nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    del torch
    return [("seed_torch", seed_cnn_torch.build(), (1, 3, 128, 128)),
            ("small_torch", small, (1, 3, 64, 64)),
            ("resnet18", tv.models.resnet18(), (1, 3, 224, 224)),
            ("resnet34", tv.models.resnet34(), (1, 3, 224, 224)),
            ("vgg11", tv.models.vgg11(), (1, 3, 224, 224))]


def torchinfo_text(model, shape, input_col=False) -> str:
    import torchinfo

    cols = ("input_size", "output_size", "num_params") if input_col else ("output_size", "num_params")
    return str(torchinfo.summary(model, input_size=shape, verbose=0, depth=10, col_names=cols))


def cases(quick=False):
    """(name, text, real graph) for every summary."""
    import keras

    import modellint
    from build_seed import build_seed
    from keras2_format import keras2_summary, rows_of

    seed = build_seed()
    yield "seed keras3", keras3_text(seed), modellint.load_graph(seed)
    yield "seed question.txt", (ROOT / "tests/data/summaries/seed_question.txt").read_text(), modellint.load_graph(seed)
    for m in small_keras_models():
        yield f"{m.name} keras3", keras3_text(m), modellint.load_graph(m)
    for fname, model, functional, layout in keras2_models():
        total = model.count_params()
        trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
        yield (f"{fname}", keras2_summary(model.name, rows_of(model, functional), (total, trainable), functional,
                                          layout), modellint.load_graph(model))
    for app in (QUICK_APPS if quick else KERAS_APPS):
        kw = {"input_shape": (224, 224, 3)} if app != "InceptionV3" and app != "Xception" else {}
        model = getattr(keras.applications, app)(weights=None, **kw)
        yield f"{app} keras3", keras3_text(model), modellint.load_graph(model)
        if app == "MobileNetV2":  # as an 80-column terminal prints it: names and producers cut with "…"
            yield f"{app} keras3 80 cols", keras3_text(model, 80), modellint.load_graph(model)
        keras.backend.clear_session()
    for name, model, shape in torch_models()[: (3 if quick else None)]:
        real = modellint.load_graph(model, input_shape=shape)
        yield f"{name} torchinfo", torchinfo_text(model, shape), real
        if name in ("resnet18", "seed_torch"):
            yield f"{name} torchinfo+input", torchinfo_text(model, shape, input_col=True), real


def _windows(graph):
    return [n for n in graph if n.op in WINDOW_OPS]


def _kernel(n):
    return n.attrs.get("kernel") or n.attrs.get("pool_size")


def _tup(v, r=2):
    if v is None:
        return None
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * r


def score(text_graph, real_graph) -> dict:
    """Counts per attribute: recovered / assumed_right / assumed_wrong / unknown / wrong, and the wrong ones."""
    from modellint.analysis import receptive_fields

    out = {a: dict(recovered=0, assumed_right=0, assumed_wrong=0, unknown=0, wrong=0) for a in
           ("kernel", "strides", "receptive_field")}
    wrong = []
    by_name = real_graph.framework == "keras"
    tw, rw = _windows(text_graph), _windows(real_graph)
    pairs = ([(n, real_graph.nodes.get(n.name)) for n in tw] if by_name else list(zip(tw, rw)))
    for t, r in pairs:
        if r is None or r.op != t.op and not (t.op.startswith("pool") and r.op.startswith("pool")):
            continue
        rank = len(r.output_shape) - 2 if r.output_shape else 2
        prov = t.attrs.get("provenance") or {}
        for attr, tv, rv in (("kernel", _kernel(t), _kernel(r)),
                             ("strides", t.attrs.get("strides"), r.attrs.get("strides") or
                              (r.attrs.get("pool_size") if r.op.startswith("pool") else 1))):
            key = "pool_size" if attr == "kernel" and t.op.startswith("pool") else attr
            how = (prov.get(key) or {}).get("how", "unknown" if tv is None else "inferred")
            same = tv is not None and _tup(tv, rank) == _tup(rv, rank)
            if how == "unknown" or tv is None:
                out[attr]["unknown"] += 1
            elif how == "assumed":
                out[attr]["assumed_right" if same else "assumed_wrong"] += 1
            elif same:
                out[attr]["recovered"] += 1
            else:
                out[attr]["wrong"] += 1
                wrong.append(f"{t.name}.{attr}: {tv} vs {rv}")
    trf, rrf = receptive_fields(text_graph), receptive_fields(real_graph)
    spatial_t = [n for n in text_graph if n.op in WINDOW_OPS]
    pairs = ([(n, real_graph.nodes.get(n.name)) for n in spatial_t] if by_name else list(zip(spatial_t, rw)))
    assumed_nodes = _assumed_upstream(text_graph)
    for t, r in pairs:
        if r is None:
            continue
        a, b = trf.get(t.name), rrf.get(r.name)
        if a is None or b is None:
            out["receptive_field"]["unknown"] += 1
        elif t.name in assumed_nodes:
            out["receptive_field"]["assumed_right" if a.size == b.size else "assumed_wrong"] += 1
        elif a.size == b.size:
            out["receptive_field"]["recovered"] += 1
        else:
            out["receptive_field"]["wrong"] += 1
            wrong.append(f"{t.name}.rf: {a.size} vs {b.size}")
    out["wrong_list"] = wrong
    return out


def _assumed_upstream(graph) -> set:
    """Nodes whose receptive field rests on an assumed window (a pool's default size)."""
    from modellint.graph import split_ref

    tainted = set()
    for n in graph:
        prov = n.attrs.get("provenance") or {}
        own = any(isinstance(p, dict) and p.get("how") == "assumed" and a in ("pool_size", "strides")
                  for a, p in prov.items())
        if own or any(split_ref(r)[0] in tainted for r in n.inputs):
            tainted.add(n.name)
    return tainted


def main(argv=None):
    from modellint.adapters.summary_text import read_summary_text

    quick = "--quick" in (argv or sys.argv[1:])
    totals = {a: dict(recovered=0, assumed_right=0, assumed_wrong=0, unknown=0, wrong=0)
              for a in ("kernel", "strides", "receptive_field")}
    n = 0
    print(f"{'summary':<34} {'kernel':>12} {'stride':>12} {'RF':>12}  (recovered/total; wrong)  read ms")
    for name, text, real in cases(quick):
        t0 = time.perf_counter()
        g = read_summary_text(text, name)
        ms = 1000 * (time.perf_counter() - t0)
        s = score(g, real)
        n += 1
        cells = []
        for a in ("kernel", "strides", "receptive_field"):
            c = s[a]
            tot = sum(c.values())
            cells.append(f"{c['recovered']}/{tot};{c['wrong']}")
            for k in c:
                totals[a][k] += c[k]
        params_ok = "params ok" if g.total_params == real.total_params else f"params {g.total_params} vs {real.total_params}"
        print(f"{name:<34} {cells[0]:>12} {cells[1]:>12} {cells[2]:>12}  {ms:7.1f}  {params_ok}")
        for w in s["wrong_list"][:5]:
            print("    WRONG", w)
    print(f"\n{n} summaries")
    for a, c in totals.items():
        tot = sum(c.values()) or 1
        print(f"{a:<16} recovered exactly {c['recovered'] / tot:6.1%}  assumed {c['assumed_right']} right / "
              f"{c['assumed_wrong']} wrong  unknown {c['unknown'] / tot:6.1%}  wrong {c['wrong']}  (of {tot})")
    return totals


if __name__ == "__main__":
    main()
