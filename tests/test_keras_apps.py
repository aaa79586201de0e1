"""Every keras.applications model, read without Keras, against Keras' own figures.

Fixtures (tests/fixtures/keras_apps/*.json.gz, made by tools/make_keras_app_fixtures.py)
hold each model's config as written in a .keras archive and in a legacy .h5,
plus Keras' own total/trainable/non-trainable counts and every layer's output
shape. The test re-wraps each config in the real container format (a zip with
config.json; an HDF5 file with a model_config attribute) and reads it through
the normal file path. When Keras is installed, a live comparison runs too.
"""

import gzip
import json
import zipfile

import h5py
import pytest

from conftest import FIXTURES, keras_only
from modellint import load_graph
from modellint.analysis import last_spatial

APPS = FIXTURES / "keras_apps"
FILES = sorted(APPS.glob("*.json.gz"))

# Araujo, Norris, Sim, "Computing Receptive Fields of CNNs", Distill 2019 (224 px input)
DISTILL_RF = {"VGG16": 212, "MobileNet": 315, "ResNet50": 483, "ResNet101": 1027, "ResNet152": 1507,
              "InceptionV3": 1311, "InceptionResNetV2": 3039}


def _load(path):
    return json.loads(gzip.decompress(path.read_bytes()))


def _as_keras_zip(cfg, tmp_path):
    p = tmp_path / "model.keras"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", json.dumps(cfg))
        z.writestr("metadata.json", json.dumps({"keras_version": "fixture"}))
    return p


def _as_h5(cfg, tmp_path):
    p = tmp_path / "model.h5"
    with h5py.File(p, "w") as f:
        f.attrs["model_config"] = json.dumps(cfg)
        f.attrs["keras_version"] = "fixture"
    return p


def _layer_output(g, name):
    if name in g.submodels:
        return g.shape_of(g.submodels[name]["outputs"][0])
    if name + ".activation" in g.nodes:
        return g[name + ".activation"].output_shape
    return g[name].output_shape


def test_fixture_set_is_complete():
    names = {p.name.split(".")[0] for p in FILES}
    for required in ["Xception", "VGG16", "VGG19", "ResNet50", "ResNet101", "ResNet152", "ResNet50V2",
                     "ResNet101V2", "ResNet152V2", "InceptionV3", "InceptionResNetV2", "MobileNet",
                     "MobileNetV2", "DenseNet121", "DenseNet169", "DenseNet201", "NASNetMobile",
                     "NASNetLarge", "EfficientNetB0", "EfficientNetB7", "ConvNeXtTiny",
                     "EfficientNetV2B0", "MobileNetV3Small", "MobileNetV3Large"]:
        assert required in names


@pytest.mark.parametrize("fixture", FILES, ids=lambda p: p.name.split(".")[0])
@pytest.mark.parametrize("container", ["keras", "h5"])
def test_app_counts_and_every_shape(fixture, container, tmp_path):
    data = _load(fixture)
    exp = data["expected"]
    if container == "keras":
        path = _as_keras_zip(data["keras_config"], tmp_path)
    else:
        path = _as_h5(data["h5_model_config"], tmp_path)
    g = load_graph(path)
    assert (g.total_params, g.trainable_params, g.non_trainable_params) == (
        exp["total"], exp["trainable"], exp["non_trainable"])
    for layer in exp["layers"]:
        want = layer["output_shape"]
        got = _layer_output(g, layer["name"])
        assert got is not None and list(got) == want, (layer["name"], got, want)


@pytest.mark.parametrize("name,expected", sorted(DISTILL_RF.items()))
def test_receptive_field_matches_distill(name, expected):
    g = load_graph(_as_keras_zip(_load(APPS / f"{name}.json.gz")["keras_config"], _tmp()))
    node, rf = last_spatial(g)
    assert rf.size == (expected, expected) and rf.stride == (32, 32), node.name


def _tmp():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp())


LIVE = ["MobileNetV3Small", "EfficientNetB0", "ResNet50", "ConvNeXtTiny", "NASNetMobile", "DenseNet121"]


@keras_only
@pytest.mark.keras
@pytest.mark.parametrize("name", LIVE)
def test_live_app_saved_and_in_memory(name, tmp_path):
    """Build with the installed Keras, save as .keras and .h5, compare to Keras' counts."""
    import keras
    import numpy as np

    model = getattr(keras.applications, name)(weights=None)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    truth = (model.count_params(), trainable, model.count_params() - trainable)
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    graphs = [load_graph(model), load_graph(tmp_path / "m.keras"), load_graph(tmp_path / "m.h5")]
    for g in graphs:
        assert (g.total_params, g.trainable_params, g.non_trainable_params) == truth
        for layer in model.layers:
            assert list(_layer_output(g, layer.name)) == list(layer.output.shape), layer.name
    live, saved = graphs[0].to_dict(), graphs[1].to_dict()
    for d in (live, saved):
        for key in ("source_format", "source_path", "framework_version"):
            d.pop(key)
    assert live == saved
