#!/usr/bin/env python3
"""Generate the legacy-dialect Keras fixtures in ``tests/fixtures/legacy/``.

modellint itself never imports Keras or TensorFlow.  This script is the one
place that does: it builds small models with the real ``tf.keras`` 2.15
(the Keras-2 dialect), saves them in the legacy HDF5 format and as
``model.to_json()`` architecture JSON, and writes the ground truth that
tf.keras itself reports (parameter counts and per-layer output shapes) to
``<name>.expected.json`` so modellint's tests can compare against it.

It also writes the hand-made Keras 1.2.2 fixtures (``seed_keras12.*`` and
``functional_keras12.json``) with h5py only; their provenance is described in
``tests/fixtures/legacy/README.md``.

Run it with a separate virtual environment -- it is NOT a dependency of
modellint::

    python3 -m venv /tmp/tf215
    /tmp/tf215/bin/pip install tensorflow-cpu==2.15.1 h5py
    TF_CPP_MIN_LOG_LEVEL=3 /tmp/tf215/bin/python tools/make_legacy_fixtures.py

No pretrained weights are downloaded (``weights=None`` everywhere); weight
values are random initialisations and are not part of any expectation.

Size reduction ("stripping")
----------------------------
Full-model ``.h5`` files are first written by ``model.save(..., save_format=
"h5")`` to a temporary file, then copied object by object into the fixture
file with h5py: every group, every attribute (same name, same HDF5 type --
variable-length UTF-8 ``str`` stays ``str``, fixed-length ``bytes`` stays
``bytes``, empty float64 arrays stay empty float64 arrays) and every dataset's
name, shape, dtype and fill value are kept, but the weight *values* are not
written.  The datasets therefore keep their real ``.shape``/``.dtype`` (a
reader that looks at shapes sees exactly what tf.keras wrote) while their
storage is left unallocated (reading them yields zeros).  ``verify_strip``
checks the copy against the original.  Weights-only files
(``save_weights``) are small and are kept byte-for-byte as tf.keras wrote
them, as an unaltered control.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import h5py  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "tests" / "fixtures" / "legacy"

# tf.keras's legacy h5 writer splits attributes larger than this many bytes
# into name0, name1, ... chunks (keras/src/saving/legacy/hdf5_format.py).
HDF5_OBJECT_HEADER_LIMIT = 64512


# --------------------------------------------------------------------------
# h5 stripping
# --------------------------------------------------------------------------

def _copy_attrs(src, dst) -> None:
    """Copy every attribute of ``src`` to ``dst`` with its exact HDF5 type."""
    for name in src.attrs.keys():
        aid = src.attrs.get_id(name)
        value = src.attrs[name]
        dst.attrs.create(name, value, shape=aid.shape, dtype=aid.dtype)


def strip_h5(src_path: Path, dst_path: Path) -> None:
    """Copy ``src_path`` to ``dst_path`` without the weight values."""
    with h5py.File(src_path, "r") as src, h5py.File(dst_path, "w") as dst:
        _copy_attrs(src, dst)

        def walk(sgroup, dgroup):
            for key in sgroup.keys():
                obj = sgroup.get(key, getlink=False)
                link = sgroup.get(key, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    raise RuntimeError(f"unexpected link type at {obj.name}")
                if isinstance(obj, h5py.Group):
                    child = dgroup.create_group(key)
                    _copy_attrs(obj, child)
                    walk(obj, child)
                elif isinstance(obj, h5py.Dataset):
                    if obj.shape == () or obj.size == 0:
                        # Scalars / empty arrays: keep as-is (a few bytes).
                        d = dgroup.create_dataset(key, data=obj[()], dtype=obj.dtype)
                    else:
                        # Contiguous, never written -> storage unallocated.
                        d = dgroup.create_dataset(
                            key, shape=obj.shape, dtype=obj.dtype,
                            fillvalue=obj.fillvalue)
                    _copy_attrs(obj, d)
                else:  # pragma: no cover - keras writes only groups/datasets
                    raise RuntimeError(f"unexpected object {obj!r}")

        walk(src, dst)


def _attr_signature(obj, name):
    aid = obj.attrs.get_id(name)
    t = aid.get_type()
    sig = [type(t).__name__, t.get_class(), aid.shape, str(aid.dtype)]
    if isinstance(t, h5py.h5t.TypeStringID):
        sig += [t.get_cset(), t.is_variable_str(), t.get_size()]
    val = obj.attrs[name]
    if isinstance(val, np.ndarray):
        val = val.tolist()
    return sig, val


def verify_strip(orig: Path, stripped: Path) -> None:
    """Assert the stripped copy has the same structure/attributes/shapes."""
    def collect(path):
        out = {}
        with h5py.File(path, "r") as f:
            def visit(name, obj):
                entry = {"attrs": {k: _attr_signature(obj, k) for k in obj.attrs}}
                if isinstance(obj, h5py.Dataset):
                    entry["dataset"] = (obj.shape, str(obj.dtype))
                out[name] = entry
            out["/"] = {"attrs": {k: _attr_signature(f, k) for k in f.attrs}}
            f.visititems(visit)
        return out

    a, b = collect(orig), collect(stripped)
    if a != b:
        diff = sorted(set(a) ^ set(b)) or [k for k in a if a[k] != b.get(k)]
        raise AssertionError(f"strip changed {stripped.name}: {diff[:5]}")


# --------------------------------------------------------------------------
# expected figures from tf.keras
# --------------------------------------------------------------------------

def _shape_of(struct):
    """KerasTensor / nested structure -> JSON-able shape(s)."""
    import tensorflow as tf

    def one(t):
        return [None if d is None else int(d) for d in t.shape]

    flat = tf.nest.flatten(struct)
    if len(flat) == 1:
        return one(flat[0])
    return [one(t) for t in flat]


def _jsonable(x):
    import tensorflow as tf
    if isinstance(x, tf.TensorShape):
        return None if x.rank is None else [d for d in x.as_list()]
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    return x


def _count(weights) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


def _nodes_in(model, layer):
    """Indices of ``layer``'s inbound nodes that belong to ``model``'s graph."""
    network_nodes = getattr(model, "_network_nodes", None)
    idx = list(range(len(layer._inbound_nodes)))
    if network_nodes:
        idx = [i for i in idx if f"{layer.name}_ib-{i}" in network_nodes]
    return idx


def layer_record(model, layer) -> dict:
    import tensorflow as tf
    rec = {
        "name": layer.name,
        "class_name": layer.__class__.__name__,
        "params": int(layer.count_params()) if layer.built else 0,
        "trainable_params": _count(layer.trainable_weights),
        "non_trainable_params": _count(layer.non_trainable_weights),
    }
    nodes = _nodes_in(model, layer)
    shapes = [_shape_of(layer._inbound_nodes[i].outputs) for i in nodes]
    rec["calls"] = len(shapes)
    rec["output_shape"] = shapes[0] if len(shapes) == 1 else shapes
    # What tf.keras's own ``layer.output_shape`` property answers (it raises
    # for layers whose several call sites disagree on shape).
    try:
        rec["keras_output_shape"] = _jsonable(layer.output_shape)
    except Exception as exc:  # noqa: BLE001
        rec["keras_output_shape_error"] = f"{type(exc).__name__}: {exc}"
    if isinstance(layer, tf.keras.Model):
        rec["layers"] = [layer_record(layer, sub) for sub in layer.layers]
    if hasattr(layer, "layer") and isinstance(layer.layer, tf.keras.layers.Layer):
        # Bidirectional / TimeDistributed wrappers.
        rec["wrapped"] = {"name": layer.layer.name,
                          "class_name": layer.layer.__class__.__name__}
    return rec


def expected_for(model, files: dict, notes: list[str]) -> dict:
    import tensorflow as tf
    total = int(model.count_params())
    trainable = _count(model.trainable_weights)
    non_trainable = _count(model.non_trainable_weights)
    assert trainable + non_trainable == total, (trainable, non_trainable, total)
    return {
        "generated_by": {
            "library": "tf.keras",
            "tensorflow": tf.__version__,
            "keras": __import__("keras").__version__,
            "h5py": h5py.__version__,
            "python": sys.version.split()[0],
        },
        "files": files,
        "model_class": model.__class__.__name__,
        "model_name": model.name,
        "total_params": total,
        "trainable_params": trainable,
        "non_trainable_params": non_trainable,
        "inputs": [_shape_of(t) for t in model.inputs],
        "outputs": [_shape_of(t) for t in model.outputs],
        "layers": [layer_record(model, layer) for layer in model.layers],
        "notes": notes,
    }


def write_json(path: Path, obj, indent=2) -> None:
    path.write_text(json.dumps(obj, indent=indent, sort_keys=False) + "\n")


# --------------------------------------------------------------------------
# model builders (tf.keras 2.15)
# --------------------------------------------------------------------------

def build_seed():
    from tensorflow import keras
    L = keras.layers
    model = keras.Sequential([
        L.BatchNormalization(name="batch_normalization_1", input_shape=(128, 128, 3)),
        L.Conv2D(32, 3, padding="same", name="conv2d_1"),
        L.MaxPooling2D(name="max_pooling2d_1"),
        L.BatchNormalization(name="batch_normalization_2"),
        L.Conv2D(64, 3, padding="same", name="conv2d_2"),
        L.MaxPooling2D(name="max_pooling2d_2"),
        L.BatchNormalization(name="batch_normalization_3"),
        L.Conv2D(128, 3, padding="same", name="conv2d_3"),
        L.MaxPooling2D(name="max_pooling2d_3"),
        L.BatchNormalization(name="batch_normalization_4"),
        L.Conv2D(64, 3, padding="same", name="conv2d_4"),
        L.GlobalAveragePooling2D(name="global_average_pooling2d_1"),
        L.Dense(13, activation="softmax", name="dense_1"),
    ], name="sequential_1")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    assert model.count_params() == 168_793, model.count_params()
    assert _count(model.trainable_weights) == 168_339
    return model


def build_functional():
    from tensorflow import keras
    L = keras.layers
    image = keras.Input(shape=(96, 96, 3), name="image")
    features = keras.Input(shape=(16,), name="features")

    backbone = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(96, 96, 3), alpha=0.35)
    x = backbone(image)
    x = L.GlobalAveragePooling2D(name="backbone_pool")(x)
    x = L.Dense(32, activation="relu", name="image_proj")(x)

    vec_block = keras.Sequential([
        L.Dense(32, activation="relu", input_shape=(16,), name="vec_dense_a"),
        L.BatchNormalization(name="vec_bn"),
        L.Dense(32, name="vec_dense_b"),
    ], name="vec_block")
    y = vec_block(features)

    shared = L.Dense(32, activation="relu", name="shared_dense")
    a = shared(x)   # node 0
    b = shared(y)   # node 1
    cat = L.Concatenate(name="concat")([a, b])
    summed = L.Add(name="add")([a, b])
    # The lambda is compiled under a neutral file name so that the marshalled
    # bytecode tf.keras stores in the config does not embed this checkout's
    # absolute path (keeps the fixture reproducible on any machine).
    double_fn = eval(compile("lambda x: x * 2.0", "<modellint-fixture>", "eval"))
    doubled = L.Lambda(double_fn, name="double")(summed)
    class_out = L.Dense(5, activation="softmax", name="class_out")(cat)
    reg_out = L.Dense(1, name="reg_out")(doubled)
    model = keras.Model([image, features], [class_out, reg_out], name="two_tower")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss={"class_out": "categorical_crossentropy", "reg_out": "mse"},
                  loss_weights={"class_out": 1.0, "reg_out": 0.5},
                  metrics={"class_out": ["accuracy"]})
    return model


def build_channels_first():
    from tensorflow import keras
    L = keras.layers
    cf = "channels_first"
    model = keras.Sequential([
        keras.Input(shape=(3, 32, 32), name="cf_input"),
        L.Conv2D(16, 3, padding="same", activation="relu", data_format=cf, name="cf_conv_1"),
        L.BatchNormalization(axis=1, name="cf_bn_1"),
        L.MaxPooling2D(2, data_format=cf, name="cf_pool_1"),
        L.Conv2D(32, 3, padding="valid", activation="relu", data_format=cf, name="cf_conv_2"),
        L.MaxPooling2D(2, data_format=cf, name="cf_pool_2"),
        L.Flatten(data_format=cf, name="cf_flatten"),
        L.Dense(10, activation="softmax", name="cf_dense"),
    ], name="channels_first_cnn")
    return model  # deliberately NOT compiled: no training_config in the .h5


def build_chunked(n_layers: int, name_len: int):
    from tensorflow import keras
    L = keras.layers
    layers = [keras.Input(shape=(1,), name="chunk_input")]
    for i in range(n_layers):
        stem = f"tiny_dense_{i:04d}_"
        layers.append(L.Dense(1, use_bias=False,
                              name=(stem + "x" * name_len)[:name_len]))
    return keras.Sequential(layers, name="many_tiny_layers")


def build_rnn():
    from tensorflow import keras
    L = keras.layers
    tokens = keras.Input(shape=(20,), dtype="int32", name="tokens")
    e = L.Embedding(1000, 32, name="embed")(tokens)
    h = L.LSTM(32, return_sequences=True, name="lstm")(e)
    h = L.Bidirectional(L.GRU(16, return_sequences=True, name="gru"), name="bigru")(h)
    att = L.MultiHeadAttention(num_heads=2, key_dim=16, name="mha")(h, h)
    r = L.Add(name="residual")([h, att])
    r = L.LayerNormalization(name="layer_norm")(r)
    out = L.TimeDistributed(L.Dense(8, activation="softmax", name="tag_dense"),
                            name="tagger")(r)
    model = keras.Model(tokens, out, name="rnn_tagger")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# --------------------------------------------------------------------------
# Keras 1.2.2 hand-written fixtures (no TensorFlow needed)
# --------------------------------------------------------------------------

def _k1_base(name, **extra):
    cfg = {"name": name, "trainable": True}
    cfg.update(extra)
    return cfg


def _k1_bn(name, **first):
    cfg = _k1_base(name, **first)
    cfg.update({"epsilon": 0.001, "mode": 0, "axis": -1,
                "gamma_regularizer": None, "beta_regularizer": None,
                "momentum": 0.99})
    return {"class_name": "BatchNormalization", "config": cfg}


def _k1_conv(name, nb_filter):
    cfg = _k1_base(name)
    cfg.update({"nb_filter": nb_filter, "nb_row": 3, "nb_col": 3,
                "init": "glorot_uniform", "activation": "linear",
                "border_mode": "same", "subsample": [1, 1],
                "dim_ordering": "tf", "W_regularizer": None,
                "b_regularizer": None, "activity_regularizer": None,
                "W_constraint": None, "b_constraint": None, "bias": True})
    return {"class_name": "Convolution2D", "config": cfg}


def _k1_pool(name):
    cfg = _k1_base(name)
    cfg.update({"pool_size": [2, 2], "strides": [2, 2],
                "border_mode": "valid", "dim_ordering": "tf"})
    return {"class_name": "MaxPooling2D", "config": cfg}


def _k1_dense(name, output_dim, input_dim, activation="linear"):
    cfg = _k1_base(name)
    cfg.update({"output_dim": output_dim, "init": "glorot_uniform",
                "activation": activation, "W_regularizer": None,
                "b_regularizer": None, "activity_regularizer": None,
                "W_constraint": None, "b_constraint": None, "bias": True,
                "input_dim": input_dim})
    return {"class_name": "Dense", "config": cfg}


def keras12_seed_config():
    """The seed model as Keras 1.2.2's ``Sequential.to_json()`` writes it."""
    layers = [
        _k1_bn("batchnormalization_1", batch_input_shape=[None, 128, 128, 3],
               input_dtype="float32"),
        _k1_conv("convolution2d_1", 32), _k1_pool("maxpooling2d_1"),
        _k1_bn("batchnormalization_2"),
        _k1_conv("convolution2d_2", 64), _k1_pool("maxpooling2d_2"),
        _k1_bn("batchnormalization_3"),
        _k1_conv("convolution2d_3", 128), _k1_pool("maxpooling2d_3"),
        _k1_bn("batchnormalization_4"),
        _k1_conv("convolution2d_4", 64),
        {"class_name": "GlobalAveragePooling2D",
         "config": _k1_base("globalaveragepooling2d_1", dim_ordering="tf")},
        _k1_dense("dense_1", 13, 64, activation="softmax"),
    ]
    return {"class_name": "Sequential", "config": layers}


# (layer name, [(weight name suffix, shape), ...]) in Keras 1 weight order:
# trainable first, then non-trainable (BN running stats).
def _k1_seed_weights():
    out = []
    chans = [3, 32, 64, 128]
    filters = [32, 64, 128, 64]
    for i in range(4):
        c = chans[i]
        out.append((f"batchnormalization_{i+1}",
                    [("gamma", (c,)), ("beta", (c,)),
                     ("running_mean", (c,)), ("running_std", (c,))]))
        out.append((f"convolution2d_{i+1}",
                    [("W", (3, 3, c, filters[i])), ("b", (filters[i],))]))
        if i < 3:
            out.append((f"maxpooling2d_{i+1}", []))
    out.append(("globalaveragepooling2d_1", []))
    out.append(("dense_1", [("W", (64, 13)), ("b", (13,))]))
    return out


def _k1_seed_layer_table():
    """Per-layer expected figures for the Keras 1 seed (hand-computed)."""
    rows = []
    hw, c = 128, 3
    for i, (bn, conv, f) in enumerate(zip(range(1, 5), range(1, 5), [32, 64, 128, 64])):
        rows.append(("batchnormalization_%d" % bn, "BatchNormalization",
                     [None, hw, hw, c], 4 * c, 2 * c))
        rows.append(("convolution2d_%d" % conv, "Convolution2D",
                     [None, hw, hw, f], 9 * c * f + f, 0))
        c = f
        if i < 3:
            hw //= 2
            rows.append(("maxpooling2d_%d" % (i + 1), "MaxPooling2D",
                         [None, hw, hw, c], 0, 0))
    rows.append(("globalaveragepooling2d_1", "GlobalAveragePooling2D", [None, c], 0, 0))
    rows.append(("dense_1", "Dense", [None, 13], c * 13 + 13, 0))
    return [{"name": n, "class_name": k, "output_shape": s, "params": p,
             "trainable_params": p - nt, "non_trainable_params": nt, "calls": 1}
            for n, k, s, p, nt in rows]


def write_keras12_seed(out: Path) -> None:
    config = keras12_seed_config()
    to_json = dict(config)
    to_json["keras_version"] = "1.2.2"
    (out / "seed_keras12.json").write_text(json.dumps(to_json))

    training_config = {
        "optimizer_config": {"class_name": "SGD",
                             "config": {"lr": 0.01, "momentum": 0.0,
                                        "decay": 0.0, "nesterov": False}},
        "loss": "categorical_crossentropy",
        "metrics": ["accuracy"],
        "sample_weight_mode": None,
        "loss_weights": None,
    }
    path = out / "seed_keras12.h5"
    with h5py.File(path, "w") as f:
        # numpy bytes_ scalars -> fixed-length ASCII string attributes, which
        # is what ``str.encode('utf8')`` produced under the h5py of the time.
        f.attrs["keras_version"] = np.bytes_(b"1.2.2")
        f.attrs["backend"] = np.bytes_(b"tensorflow")
        # save_model() wrote {'class_name', 'config'} only (no keras_version
        # inside the JSON; that was added by to_json()).
        f.attrs["model_config"] = np.bytes_(json.dumps(config).encode("utf8"))
        f.attrs["training_config"] = np.bytes_(json.dumps(training_config).encode("utf8"))
        mw = f.create_group("model_weights")
        table = _k1_seed_weights()
        # Keras 1 wrote only layer_names on the weights group (no
        # keras_version/backend there -- Keras 2 loaders treat their absence
        # as "Keras 1").
        mw.attrs["layer_names"] = np.array([n.encode("utf8") for n, _ in table])
        for lname, weights in table:
            g = mw.create_group(lname)
            names = [f"{lname}_{suffix}:0".encode("utf8") for suffix, _ in weights]
            # Keras 1 stored an empty python list here -> empty float64 array.
            g.attrs["weight_names"] = np.array(names) if names else np.array([])
            for (suffix, shape), wname in zip(weights, names):
                g.create_dataset(wname.decode(), shape=shape, dtype="float32")

    rows = _k1_seed_layer_table()
    total = sum(r["params"] for r in rows)
    non_trainable = sum(r["non_trainable_params"] for r in rows)
    assert (total, total - non_trainable, non_trainable) == (168_793, 168_339, 454)
    write_json(out / "seed_keras12.expected.json", {
        "generated_by": {"library": "hand-written (Keras 1.2.2 dialect)",
                         "tool": "tools/make_legacy_fixtures.py"},
        "files": {"json": "seed_keras12.json", "h5": "seed_keras12.h5"},
        "model_class": "Sequential",
        "total_params": total,
        "trainable_params": total - non_trainable,
        "non_trainable_params": non_trainable,
        "inputs": [[None, 128, 128, 3]],
        "outputs": [[None, 13]],
        "layers": rows,
        "notes": ["Figures hand-computed; they equal the tf.keras figures of "
                  "seed_tf215 (same architecture, Keras-1 names).",
                  "seed_keras12.h5 weight datasets have real shapes but "
                  "unallocated storage (read as zeros)."],
    })


def write_keras12_functional(out: Path) -> None:
    def node(*names):
        return [[[n, 0, 0] for n in names]]

    def inp(name, dim):
        return {"class_name": "InputLayer", "name": name, "inbound_nodes": [],
                "config": {"batch_input_shape": [None, dim],
                           "input_dtype": "float32", "sparse": False,
                           "name": name}}

    def entry(layer, *inbound):
        layer = dict(layer)
        layer["name"] = layer["config"]["name"]
        layer["inbound_nodes"] = node(*inbound)
        return layer

    merge = {"class_name": "Merge",
             "config": {"name": "merge_1", "mode": "concat", "mode_type": "raw",
                        "concat_axis": -1, "dot_axes": -1,
                        "output_shape": None, "output_shape_type": "raw",
                        "output_mask": None, "output_mask_type": "raw",
                        "arguments": {}}}
    bn = _k1_bn("batchnormalization_1")
    layers = [
        inp("input_1", 784),
        inp("input_2", 32),
        entry(_k1_dense("dense_1", 64, 784, activation="relu"), "input_1"),
        entry(_k1_dense("dense_2", 16, 32, activation="relu"), "input_2"),
        entry(merge, "dense_1", "dense_2"),
        entry(bn, "merge_1"),
        entry(_k1_dense("dense_3", 10, 80, activation="softmax"), "batchnormalization_1"),
    ]
    doc = {"class_name": "Model", "keras_version": "1.2.2",
           "config": {"name": "model_1", "layers": layers,
                      "input_layers": [["input_1", 0, 0], ["input_2", 0, 0]],
                      "output_layers": [["dense_3", 0, 0]]}}
    (out / "functional_keras12.json").write_text(json.dumps(doc))

    rows = [
        ("input_1", "InputLayer", [None, 784], 0, 0),
        ("input_2", "InputLayer", [None, 32], 0, 0),
        ("dense_1", "Dense", [None, 64], 784 * 64 + 64, 0),
        ("dense_2", "Dense", [None, 16], 32 * 16 + 16, 0),
        ("merge_1", "Merge", [None, 80], 0, 0),
        ("batchnormalization_1", "BatchNormalization", [None, 80], 4 * 80, 2 * 80),
        ("dense_3", "Dense", [None, 10], 80 * 10 + 10, 0),
    ]
    total = sum(r[3] for r in rows)
    nt = sum(r[4] for r in rows)
    assert (total, total - nt, nt) == (51_898, 51_738, 160)
    write_json(out / "functional_keras12.expected.json", {
        "generated_by": {"library": "hand-written (Keras 1.2.2 dialect)",
                         "tool": "tools/make_legacy_fixtures.py"},
        "files": {"json": "functional_keras12.json"},
        "model_class": "Model",
        "model_name": "model_1",
        "total_params": total,
        "trainable_params": total - nt,
        "non_trainable_params": nt,
        "inputs": [[None, 784], [None, 32]],
        "outputs": [[None, 10]],
        "layers": [{"name": n, "class_name": k, "output_shape": s, "params": p,
                    "trainable_params": p - q, "non_trainable_params": q,
                    "calls": 1} for n, k, s, p, q in rows],
        "notes": ["Hand-computed; arithmetic in README.md."],
    })


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def save_full(model, name: str, out: Path, tmp: Path, sizes: dict) -> dict:
    raw = tmp / f"{name}.raw.h5"
    model.save(raw, save_format="h5")
    final = out / f"{name}.h5"
    strip_h5(raw, final)
    verify_strip(raw, final)
    sizes[final.name] = (raw.stat().st_size, final.stat().st_size)
    (out / f"{name}.json").write_text(model.to_json())
    return {"h5": final.name, "json": f"{name}.json"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--keras12-only", action="store_true",
                    help="only (re)write the hand-made Keras 1.2.2 fixtures")
    args = ap.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    write_keras12_seed(out)
    write_keras12_functional(out)
    if args.keras12_only:
        return 0

    import tensorflow as tf
    from tensorflow import keras
    tf.get_logger().setLevel("ERROR")
    tf.keras.utils.set_random_seed(0)

    sizes: dict = {}
    stripped_note = ("h5 rewritten without weight values: structure, attributes, "
                     "dataset shapes/dtypes kept; storage unallocated (reads as zeros).")
    tmp = Path(tempfile.mkdtemp(prefix="legacy_fixtures_"))
    try:
        # 1. seed
        keras.backend.clear_session()
        seed = build_seed()
        files = save_full(seed, "seed_tf215", out, tmp, sizes)
        write_json(out / "seed_tf215.expected.json",
                   expected_for(seed, files, [stripped_note]))

        # 4. weights-only of the seed (kept byte-for-byte)
        wpath = out / "weights_only_tf215.h5"
        seed.save_weights(wpath, save_format="h5")
        sizes[wpath.name] = (wpath.stat().st_size, wpath.stat().st_size)
        write_json(out / "weights_only_tf215.expected.json",
                   expected_for(seed, {"h5": wpath.name},
                                ["save_weights() of seed_tf215: no model_config; "
                                 "file unaltered."]))

        # 2. functional
        keras.backend.clear_session()
        func = build_functional()
        files = save_full(func, "functional_tf215", out, tmp, sizes)
        write_json(out / "functional_tf215.expected.json",
                   expected_for(func, files, [stripped_note,
                                "Lambda 'double' is serialized as marshalled "
                                "Python 3.11 bytecode (base64)."]))

        # 3. channels_first
        keras.backend.clear_session()
        cf = build_channels_first()
        files = save_full(cf, "channels_first_tf215", out, tmp, sizes)
        write_json(out / "channels_first_tf215.expected.json",
                   expected_for(cf, files, [stripped_note,
                                "Not compiled: no training_config attribute."]))

        # 5. chunked layer_names (weights-only, kept byte-for-byte)
        keras.backend.clear_session()
        # 220 names x 600 bytes = 132,000 bytes > 2 * 64,512 -> 3 chunks.
        # (Every layer group costs ~5 KB of HDF5 headers, so few-but-long
        # names keep the file near 1 MB.)
        n_layers, name_len = 220, 600
        chunked = build_chunked(n_layers, name_len)
        cpath = out / "chunked_layer_names_tf215.h5"
        chunked.save_weights(cpath, save_format="h5")
        with h5py.File(cpath, "r") as f:
            chunks = sorted(k for k in f.attrs if k.startswith("layer_names"))
            assert "layer_names" not in f.attrs and len(chunks) >= 2, chunks
            n_names = sum(len(f.attrs[k]) for k in chunks)
            assert n_names == n_layers, n_names
        sizes[cpath.name] = (cpath.stat().st_size, cpath.stat().st_size)
        exp = expected_for(chunked, {"h5": cpath.name},
                           [f"save_weights(); root layer_names split into {chunks}; "
                            "file unaltered."])
        exp["layer_names_chunks"] = chunks
        write_json(out / "chunked_layer_names_tf215.expected.json", exp, indent=None)

        # 6. rnn / attention
        keras.backend.clear_session()
        rnn = build_rnn()
        files = save_full(rnn, "rnn_tf215", out, tmp, sizes)
        write_json(out / "rnn_tf215.expected.json",
                   expected_for(rnn, files, [stripped_note]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    for name, (before, after) in sorted(sizes.items()):
        print(f"{name:40s} {before:>10,d} -> {after:>10,d} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
