"""Live keras.Model objects and Keras 3 files of user-style models (needs Keras)."""

import numpy as np
import pytest

from conftest import EXAMPLES, keras_only
from modellint import load_graph

pytestmark = [keras_only, pytest.mark.keras]


def _truth(model):
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return model.count_params(), trainable, model.count_params() - trainable


def _counts(g):
    return g.total_params, g.trainable_params, g.non_trainable_params


def _strip(d):
    for key in ("source_format", "source_path", "framework_version"):
        d.pop(key)
    return d


def test_live_seed_equals_saved_file():
    import sys

    sys.path.insert(0, str(EXAMPLES))
    from build_seed import build_seed

    model = build_seed()
    live = load_graph(model)
    saved = load_graph(EXAMPLES / "seed_cnn.keras")
    assert _strip(live.to_dict()) == _strip(saved.to_dict())
    assert _counts(live) == _truth(model) == (168793, 168339, 454)


def test_functional_backbone_shared_layers_multi_io(tmp_path):
    import keras
    from keras import layers

    image = keras.Input((96, 96, 3), name="image")
    meta = keras.Input((16,), name="meta")
    backbone = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3), alpha=0.35)
    backbone.trainable = False
    x = layers.GlobalAveragePooling2D(name="gap")(backbone(image))
    shared = layers.Dense(32, activation="relu", name="shared")
    a, b = shared(x), shared(layers.Dense(1280, name="meta_proj")(meta))
    block = keras.Sequential([layers.Dense(8, activation="tanh"), layers.Dropout(0.2)], name="block")
    merged = layers.Concatenate(name="cat")([block(a), b])
    out1 = layers.Dense(5, activation="softmax", name="cls")(merged)
    out2 = layers.Add(name="sum")([layers.Dense(1, name="r1")(merged), layers.Dense(1, name="r2")(b)])
    model = keras.Model([image, meta], [out1, out2], name="two_tower")
    model.compile("adam", ["sparse_categorical_crossentropy", "mse"])
    truth = _truth(model)
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    for g in (load_graph(model), load_graph(tmp_path / "m.keras"), load_graph(tmp_path / "m.h5")):
        assert _counts(g) == truth
        assert len(g.inputs) == 2 and len(g.outputs) == 2
        assert g.shape_of(g.outputs[0]) == (None, 5) and g.shape_of(g.outputs[1]) == (None, 1)
        assert g["shared@1"].shares_params_with == "shared" and g["shared@1"].params == 0
        backbone_nodes = [n for n in g if n.scope.startswith(backbone.name + "/")]
        assert sum(n.trainable_params for n in backbone_nodes) == 0  # frozen backbone
        assert sum(n.params for n in backbone_nodes) == backbone.count_params()


def test_custom_layer_is_unknown_but_loading_survives(tmp_path):
    import keras
    from keras import layers

    @keras.saving.register_keras_serializable(package="tests")
    class Gate(layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.w

    model = keras.Sequential([keras.Input((32, 32, 3)), layers.Conv2D(8, 3), Gate(name="gate"),
                              layers.Conv2D(4, 3), layers.GlobalAveragePooling2D(), layers.Dense(2)])
    model.save(tmp_path / "custom.keras")
    live = load_graph(model)
    saved = load_graph(tmp_path / "custom.keras")
    for g in (live, saved):
        assert g["gate"].op == "unknown" and g["gate"].attrs["kind"] == "custom"
        assert g["gate"].output_shape == (None, 30, 30, 8)  # from the live model / build_config
        assert g.shape_of(g.outputs[0]) == (None, 2)
    # the custom layer's 8 weights are not in the config: they are counted from
    # the live layer's weights, and from the archive's stored weight shapes
    for g in (live, saved):
        assert g.total_params == model.count_params() and g["gate"].params == 8


def test_channels_first_live(tmp_path):
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((3, 32, 32)), layers.Conv2D(8, 3, data_format="channels_first"),
                              layers.MaxPooling2D(data_format="channels_first"),
                              layers.BatchNormalization(axis=1), layers.Flatten(), layers.Dense(10)])
    g = load_graph(model)
    assert g.layout == "channels_first"
    assert _counts(g) == _truth(model)
    for layer in model.layers:
        assert g.display_shape(g[layer.name].output_shape) == tuple(layer.output.shape), layer.name
