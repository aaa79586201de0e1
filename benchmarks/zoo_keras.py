"""The Keras side of the model zoo (issue 12): keras-hub backbones from explicit small configs and
hand-written Keras 3 models, each saved and read back by modellint, checked against Keras itself.

``keras_rows()`` returns one dict per (model, file): zoo, name, read, exact_params,
exact_trainable, exact_shapes, unknown_nodes, nodes, time_s (modellint's read of the file),
baseline_s (Keras' own ``model.summary()`` into a string, the speed anchor, same run), error.
``benchmarks/bench_zoo.py`` imports it; ``python benchmarks/zoo_keras.py`` prints the table.
No presets, no downloads: every model is built from its constructor arguments.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def hub_builders() -> dict:
    """keras-hub backbones from explicit small configs (random weights, nothing downloaded)."""
    import keras_hub as kh

    M = kh.models
    nlp = dict(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
               max_sequence_length=24)
    return {
        "ResNetBackbone (basic, v2)": lambda: M.ResNetBackbone(
            input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 64, 64],
            stackwise_num_blocks=[1, 1, 1], stackwise_num_strides=[1, 2, 2], block_type="basic_block",
            use_pre_activation=True, image_shape=(64, 64, 3)),
        "ResNetBackbone (bottleneck)": lambda: M.ResNetBackbone(
            input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 32],
            stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="bottleneck_block",
            image_shape=(64, 64, 3)),
        "ViTBackbone": lambda: M.ViTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2,
                                             hidden_dim=16, mlp_dim=32),
        "DenseNetBackbone": lambda: M.DenseNetBackbone(stackwise_num_repeats=[1, 2], image_shape=(32, 32, 3),
                                                       growth_rate=8),
        "CSPNetBackbone": lambda: M.CSPNetBackbone(
            stem_filters=16, stem_kernel_size=3, stem_strides=1, stackwise_depth=[1, 1], stackwise_strides=[1, 2],
            stackwise_num_filters=[16, 32], block_type="dark_block", stage_type="dark", image_shape=(32, 32, 3)),
        "MiTBackbone": lambda: M.MiTBackbone(
            layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 2], layerwise_sr_ratios=[2, 1],
            max_drop_path_rate=0.1, layerwise_patch_sizes=[7, 3], layerwise_strides=[4, 2], hidden_dims=[8, 16],
            image_shape=(32, 32, 3)),
        "EfficientNetBackbone": lambda: M.EfficientNetBackbone(
            width_coefficient=1.0, depth_coefficient=1.0, stackwise_kernel_sizes=[3, 3], stackwise_num_repeats=[1, 1],
            stackwise_input_filters=[16, 16], stackwise_output_filters=[16, 24], stackwise_expansion_ratios=[1, 4],
            stackwise_squeeze_and_excite_ratios=[0.0, 0.25], stackwise_strides=[1, 2],
            stackwise_block_types=["fused", "unfused"], input_shape=(32, 32, 3)),
        "VGGBackbone": lambda: M.VGGBackbone(stackwise_num_repeats=[1, 1], stackwise_num_filters=[8, 16],
                                             image_shape=(32, 32, 3)),
        "BertBackbone": lambda: M.BertBackbone(**nlp),
        "GPT2Backbone": lambda: M.GPT2Backbone(**nlp),
        "RobertaBackbone": lambda: M.RobertaBackbone(**nlp),
        "DistilBertBackbone": lambda: M.DistilBertBackbone(**nlp),
    }


def hand_builders() -> dict:
    """Hand-written Keras 3 models: a few classic shapes and every layer issue 12 names."""
    import keras
    from keras import layers as L

    def fn(inputs, outputs):
        return keras.Model(inputs, outputs)

    def seq(shape, *ls):
        return keras.Sequential([keras.Input(shape), *ls])

    def attention(cls, **kw):
        q, v = keras.Input((6, 8)), keras.Input((9, 8))
        return fn([q, v], getattr(L, cls)(**kw)([q, v]))

    def residual():
        x = keras.Input((16, 16, 3))
        h = L.Conv2D(8, 3, padding="same", activation="relu")(x)
        h = L.Add()([h, L.Conv2D(8, 1)(x)])
        return fn(x, L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(h)))

    def mha_block():
        x = keras.Input((10, 16))
        h = L.LayerNormalization()(L.Add()([x, L.MultiHeadAttention(2, 8)(x, x)]))
        return fn(x, L.Dense(4)(L.GlobalAveragePooling1D()(h)))

    def custom():
        from test_keras_layer_zoo import _custom_layers

        x = keras.Input((5, 6))
        return fn(x, L.Dense(2)(L.Flatten()(_custom_layers()()(x))))

    return {
        "cnn": lambda: seq((28, 28, 1), L.Conv2D(8, 3, activation="relu"), L.MaxPooling2D(), L.BatchNormalization(),
                           L.Flatten(), L.Dropout(0.2), L.Dense(10, activation="softmax")),
        "residual": residual,
        "separable_depthwise": lambda: seq((16, 16, 3), L.SeparableConv2D(8, 3), L.DepthwiseConv2D(3),
                                           L.GlobalMaxPooling2D(), L.Dense(2)),
        "conv_transpose_unet": lambda: seq((8, 8, 4), L.Conv2DTranspose(4, 3, strides=2, padding="same"),
                                           L.UpSampling2D(), L.Cropping2D(1), L.ZeroPadding2D(1)),
        "lstm_text": lambda: seq((12,), L.Embedding(50, 8), L.Bidirectional(L.LSTM(6, return_sequences=True)),
                                 L.GRU(4), L.Dense(1, activation="sigmoid")),
        "conv1d_audio": lambda: seq((64, 1), L.Conv1D(4, 5, strides=2), L.AveragePooling1D(2), L.GlobalAveragePooling1D()),
        "mha_block": mha_block,
        "time_distributed": lambda: seq((4, 8, 8, 2), L.TimeDistributed(L.Conv2D(3, 3)), L.TimeDistributed(L.Flatten()),
                                        L.LSTM(4)),
        "convlstm1d": lambda: seq((4, 10, 3), L.ConvLSTM1D(5, 3)),
        "convlstm2d": lambda: seq((3, 8, 8, 2), L.ConvLSTM2D(4, 3, padding="same", return_sequences=True),
                                  L.ConvLSTM2D(2, 3), L.Flatten(), L.Dense(2)),
        "convlstm3d": lambda: seq((2, 5, 5, 4, 1), L.ConvLSTM3D(2, 2)),
        "attention": lambda: attention("Attention"),
        "attention_scaled": lambda: attention("Attention", use_scale=True, score_mode="concat"),
        "additive_attention": lambda: attention("AdditiveAttention"),
        "channels_first_cnn": lambda: seq((3, 16, 16), L.Conv2D(4, 3, data_format="channels_first"),
                                          L.MaxPooling2D(data_format="channels_first"), L.Flatten(), L.Dense(3)),
        "preprocessing": lambda: seq((20, 20, 3), L.Rescaling(1 / 255), L.Resizing(16, 16), L.RandomFlip(),
                                     L.Conv2D(2, 3)),
        "custom_layer": custom,
    }


def _truth(model) -> tuple:
    import numpy as np

    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    outs = model.outputs
    return model.count_params(), trainable, [tuple(t.shape) for t in outs]


def _summary_time(model) -> float:
    lines = []
    t = time.perf_counter()
    model.summary(print_fn=lambda *a, **k: lines.append(a[0] if a else ""))
    return time.perf_counter() - t


def _row(zoo, name, model, path) -> dict:
    from modellint import load_graph

    params, trainable, shapes = _truth(model)
    row = {"zoo": zoo, "name": name, "read": False, "exact_params": False, "exact_trainable": False,
           "exact_shapes": False, "unknown_nodes": None, "nodes": None, "time_s": None,
           "baseline_s": _summary_time(model), "error": None}
    t = time.perf_counter()
    try:
        g = load_graph(path)
    except Exception as exc:  # a row, not a crash: the table counts it
        row.update(time_s=time.perf_counter() - t, error=f"{type(exc).__name__}: {exc}"[:200])
        return row
    row["time_s"] = time.perf_counter() - t
    got = [g.display_shape(g.shape_of(o)) for o in g.outputs]
    row.update(read=True, exact_params=g.total_params == params, exact_trainable=g.trainable_params == trainable,
               exact_shapes=got == shapes, unknown_nodes=sum(n.op == "unknown" for n in g), nodes=len(g))
    if not (row["exact_params"] and row["exact_trainable"] and row["exact_shapes"]):
        row["error"] = (f"params {g.total_params}/{params}, trainable {g.trainable_params}/{trainable}, "
                        f"shapes {got}/{shapes}")
    return row


def keras_rows(verbose: bool = False) -> list:
    """One row per keras-hub backbone (.keras) and per hand-written model (.keras and .h5)."""
    import keras  # noqa: F401  (imported here so a caller without Keras gets an ImportError)

    rows = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plans = []
        try:
            plans += [("keras-hub", n, b, ("keras",)) for n, b in hub_builders().items()]
        except ImportError:
            if verbose:
                print("keras-hub not installed: its zoo skipped", file=sys.stderr)
        plans += [("keras hand-written", n, b, ("keras", "h5")) for n, b in hand_builders().items()]
        for i, (zoo, name, build, formats) in enumerate(plans):
            try:
                model = build()
            except Exception as exc:
                rows.append({"zoo": zoo, "name": name, "read": False, "error": f"build: {type(exc).__name__}: {exc}"[:200]})
                continue
            for fmt in formats:
                path = Path(tmp) / f"m{i}.{fmt}"
                model.save(path)
                row = _row(f"{zoo} (.{fmt})", name, model, path)
                rows.append(row)
                if verbose:
                    print(f"{row['zoo']:26} {name:30} read={row['read']} params={row['exact_params']} "
                          f"trainable={row['exact_trainable']} shapes={row['exact_shapes']} "
                          f"unknown={row['unknown_nodes']} {row['time_s'] or 0:.3f}s / {row['baseline_s']:.3f}s"
                          + (f"  {row['error']}" if row.get("error") else ""), file=sys.stderr)
    return rows


def table(rows) -> str:
    out = ["| zoo | models | read | exact params | exact trainable | exact output shapes | graphs with unknown nodes "
           "| median read s | median keras summary s |", "|---|---|---|---|---|---|---|---|---|"]
    for zoo in dict.fromkeys(r["zoo"] for r in rows):
        rs = [r for r in rows if r["zoo"] == zoo]
        times = [r["time_s"] for r in rs if r.get("time_s") is not None]
        base = [r["baseline_s"] for r in rs if r.get("baseline_s") is not None]
        out.append(f"| {zoo} | {len(rs)} | {sum(bool(r.get('read')) for r in rs)} "
                   f"| {sum(bool(r.get('exact_params')) for r in rs)} | {sum(bool(r.get('exact_trainable')) for r in rs)} "
                   f"| {sum(bool(r.get('exact_shapes')) for r in rs)} | {sum(bool(r.get('unknown_nodes')) for r in rs)} "
                   f"| {statistics.median(times) if times else float('nan'):.3f} "
                   f"| {statistics.median(base) if base else float('nan'):.3f} |")
    return "\n".join(out)


if __name__ == "__main__":
    rows = keras_rows(verbose="-v" in sys.argv)
    print(table(rows))
    for r in rows:
        if r.get("error"):
            print(f"  {r['zoo']} {r['name']}: {r['error']}")
