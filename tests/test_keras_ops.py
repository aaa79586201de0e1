"""Keras operation layers (``x / 127.5 - 1``, ``keras.ops.mean``, tf.keras 2's TFOpLambda) are read as
canonical ops from their config, never run (issue 11: "Ops outside the tables poison the numbers").
Truths: Keras' own output shapes, and the arithmetic of ``preprocess_input`` (x / 127.5 - 1)."""

import json

import pytest

from modellint.adapters import load_graph
from modellint.adapters.keras_ops import call_constants, read_operation


def test_tf2_tfoplambda_truediv_is_a_rescaling():
    call = [["input_1", 0, 0, {"y": 127.5, "name": None}]]
    assert call_constants(call) == [127.5]
    op, attrs = read_operation("TFOpLambda", None, {"function": "math.truediv"}, call, 1)
    assert op == "rescaling" and attrs["scale"] == pytest.approx(1 / 127.5) and attrs["offset"] == 0.0
    op, attrs = read_operation("TFOpLambda", None, {"function": "math.reduce_mean", "axis": [1, 2]}, call, 1, 4)
    assert (op, attrs["mode"]) == ("global_pool", "avg")
    op, attrs = read_operation("TFOpLambda", None, {"function": "linalg.svd"}, call, 1)
    assert op == "unknown" and attrs["operation"] == "TFOpLambda linalg.svd"


def test_keras3_two_tensor_subtract_is_a_merge():
    k = {"class_name": "__keras_tensor__", "config": {"shape": [None, 4], "keras_history": ["a", 0, 0]}}
    assert read_operation("Subtract", "keras.src.ops.numpy", {"name": "s"}, {"args": [k, k]}, 2)[0] == "subtract"


def test_preprocess_input_and_ops_mean_keep_every_number(tmp_path):
    keras = pytest.importorskip("keras")
    inp = keras.Input((64, 64, 3))
    x = keras.layers.RandomFlip()(inp)
    x = keras.applications.mobilenet_v2.preprocess_input(x)  # TrueDivide(127.5), Subtract(1.0)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.ops.mean(x, axis=[1, 2])
    out = keras.layers.Dense(5, activation="softmax")(x)
    model = keras.Model(inp, out)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    path = tmp_path / "m.keras"
    model.save(path)
    h5 = tmp_path / "m.h5"  # legacy HDF5 drops each layer's module: TrueDivide is known by its name
    model.save(h5)
    for source in (model, path, h5):
        g = load_graph(source)
        ops = {n.source_type: n for n in g}
        assert ops["TrueDivide"].op == "rescaling" and ops["TrueDivide"].attrs["scale"] == pytest.approx(1 / 127.5)
        assert ops["Subtract"].op == "rescaling" and ops["Subtract"].attrs["offset"] == -1.0
        assert ops["Mean"].op == "global_pool"
        assert not [n for n in g if n.op == "unknown"]
        keras_shapes = {l.name: tuple(l.output.shape) for l in model.layers}
        for n in g:
            if n.name in keras_shapes and not n.fused_into:
                assert tuple(n.output_shape) == keras_shapes[n.name], n.name
        import modellint

        report = modellint.analyze(source)
        codes = {f.code for f in report.findings}
        assert "ML902" not in codes  # the input is scaled by the operation layers
        rf = report.to_dict()["receptive_field"]
        assert rf is not None and rf["size"] == [7, 7]  # 3x3 s2 then 3x3: 3 + 2*2 = 7


@pytest.mark.parametrize("cls, units, features, params", [
    # cuDNN keeps an input and a recurrent bias: 4*(u*f + u*u) + 8*u (tf.keras' CuDNNLSTM weights: kernel
    # (f, 4u), recurrent_kernel (u, 4u), bias (8u,))
    ("CuDNNLSTM", 64, 32, 4 * (64 * 32 + 64 * 64) + 8 * 64),
    ("CuDNNLSTM", 144, 10, 4 * (144 * 10 + 144 * 144) + 8 * 144),
    # CuDNNGRU: kernel (f, 3u), recurrent (u, 3u), bias (6u,)
    ("CuDNNGRU", 32, 16, 3 * (32 * 16 + 32 * 32) + 6 * 32),
    ("LSTM", 64, 32, 4 * (64 * 32 + 64 * 64) + 4 * 64),
])
def test_cudnn_recurrent_layers_count_both_biases(tmp_path, cls, units, features, params):
    config = {"class_name": "Sequential", "keras_version": "2.2.4", "backend": "tensorflow", "config": {
        "name": "s", "layers": [{"class_name": cls, "config": {
            "name": "rnn", "units": units, "return_sequences": False, "batch_input_shape": [None, 20, features]}}]}}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(config))
    g = load_graph(path)
    assert g.total_params == params
