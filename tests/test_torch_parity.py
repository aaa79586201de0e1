"""The PyTorch port of the seed gives the Keras seed's facts and findings, and so
does its ONNX export (needs torch and onnx)."""

import json
import sys

import pytest

from conftest import EXAMPLES, run_cli
from modellint import analyze, load_graph
from modellint.analysis import last_spatial, total_macs
from modellint.graph import TrainingConfig

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

sys.path.insert(0, str(EXAMPLES))
import seed_cnn_torch  # noqa: E402

SEED_DATA = {"samples": 8000, "classes": 13}
KERAS_TRAINING = TrainingConfig(loss="categorical_crossentropy", from_logits=False)  # as the Keras seed compiles


def codes(report):
    return sorted(f.code for f in report.findings)


def test_same_findings_code_for_code_with_the_same_loss():
    keras_report = analyze(EXAMPLES / "seed_cnn.h5", dataset=SEED_DATA)
    module = seed_cnn_torch.build()
    torch_report = analyze(module, dataset=SEED_DATA, input_shape=seed_cnn_torch.INPUT_SHAPE,
                           training=KERAS_TRAINING)
    assert codes(torch_report) == codes(keras_report)
    k = {f.code: f for f in keras_report.findings}
    t = {f.code: f for f in torch_report.findings}
    assert t["ML401"].evidence == k["ML401"].evidence
    assert t["ML102"].evidence["wasted_params"] == k["ML102"].evidence["wasted_params"] == 224


def test_softmax_output_flagged_under_the_assumed_pytorch_loss():
    report = analyze(seed_cnn_torch.build(), input_shape=seed_cnn_torch.INPUT_SHAPE)
    assert report.graph.training.assumed
    (f,) = [f for f in report.findings if f.code == "ML305"]  # the fix is at the head: drop the nn.Softmax
    assert f.layers == ["fc"] and "nn.CrossEntropyLoss" in f.message and f.severity == "warning"
    assert f.category == "output-head" and "assuming" in f.message


def test_cli_code_target_with_loss_flag():
    r = run_cli("check", "seed_cnn_torch:build", "--input-shape", "1,3,128,128", "--samples", "8000",
                "--classes", "13", "--loss", "categorical_crossentropy", "--format", "json", cwd=EXAMPLES)
    assert r.returncode == 1, r.stderr
    got = sorted(f["code"] for f in json.loads(r.stdout)["reports"][0]["findings"])
    # a code target is read on the meta device: no weights, so the file's weight findings are left out
    want = codes(analyze(EXAMPLES / "seed_cnn.h5", dataset=SEED_DATA, weights=False))
    assert got == want


def test_onnx_export_gives_the_same_facts(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    module = seed_cnn_torch.build().eval()
    path = tmp_path / "seed.onnx"
    torch.onnx.export(module, (torch.zeros(seed_cnn_torch.INPUT_SHAPE),), str(path), dynamo=True,
                      optimize=False)  # optimize=True would fold BatchNorm into the convs
    onnx_graph = load_graph(path)
    live = load_graph(module, input_shape=seed_cnn_torch.INPUT_SHAPE)
    keras_graph = load_graph(EXAMPLES / "seed_cnn.h5")
    for g in (onnx_graph, live):
        assert g.trainable_params == keras_graph.trainable_params == 168_339
        assert g.total_params == keras_graph.total_params
        assert total_macs(g) == total_macs(keras_graph)
        assert last_spatial(g)[1].size == (38, 38)
    learnable = lambda g: [(n.op, n.output_shape) for n in g if n.op in ("conv", "dense", "batchnorm")]  # noqa
    assert learnable(onnx_graph) == learnable(live) == learnable(keras_graph)


def test_fixed_port_matches_the_keras_fixed_model():
    """examples/seed_cnn_fixed_torch.py is the Keras fixed model without its augmentation
    layers: the same trainable and BatchNorm-statistics counts, MACs and receptive field."""
    import seed_cnn_fixed_torch

    module = seed_cnn_fixed_torch.build()
    t = load_graph(module, input_shape=seed_cnn_fixed_torch.INPUT_SHAPE)
    k = load_graph(EXAMPLES / "seed_cnn_fixed.h5")
    # the framework's own count
    assert t.trainable_params == sum(p.numel() for p in module.parameters() if p.requires_grad) == k.trainable_params
    assert t.total_params == k.total_params == 592_573
    assert total_macs(t) == total_macs(k)
    from modellint.analysis import receptive_fields

    (_, rf_t), (_, rf_k) = last_spatial(t, receptive_fields(t)), last_spatial(k, receptive_fields(k))
    assert rf_t.size == rf_k.size == (140, 140)
    # the fixes hold: no finding but the two dataset-size ones an 8,000-image set earns, and the
    # info that the freshly built module's weights are at their initialisation
    report = analyze(module, dataset=SEED_DATA, input_shape=seed_cnn_fixed_torch.INPUT_SHAPE)
    assert codes(report) == ["ML503", "ML504", "ML966"]
    assert [f.severity for f in report.findings if f.code == "ML966"] == ["info"]
