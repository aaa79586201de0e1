"""Capacity and training-recipe advice against the dataset facts (ML501, ML503, ML504,
ML902, ML952): advice is a note unless the facts make it decisive."""

import pytest

from modellint.build import conv, dense, flatten, gap, inp, pool, seq
from modellint.engine import run_rules
from modellint.rules import all_rules
from modellint.rules.context import DatasetFacts

RULES = {r.code: r for r in all_rules()}


def _run(graph, *codes, **facts):
    report = run_rules(graph, [RULES[c] for c in codes], DatasetFacts(**facts))
    assert not report.errors, report.errors
    return {f.code: f for f in report.findings}


def _classifier(framework="keras"):
    g = seq(inp(128, 128, 3), conv(32, act="relu"), pool(2), conv(64, act="relu"), gap(), dense(13, act="softmax"))
    g.framework = framework
    return g


def _segmenter(framework="keras"):
    """A small fully convolutional model: one sigmoid per pixel of a 64×64 mask."""
    g = seq(inp(64, 64, 3), *[conv(128, act="relu") for _ in range(6)], conv(1, kernel=1, act="sigmoid"))
    g.framework = framework
    return g


def test_seed_like_keras_classifier_gets_decisive_warnings():
    found = _run(_classifier(), "ML503", "ML504", samples=8000, classes=13)
    assert found["ML503"].severity == "warning" and found["ML503"].evidence["per_class"] == 615
    assert found["ML504"].severity == "warning"
    assert "advice_only" not in found["ML503"].evidence


@pytest.mark.parametrize("facts,why", [
    ({"samples": 8000}, "classes is not known"),
    ({"samples": 26000, "classes": 13}, None),  # 2,000 per class: ML503 quiet, ML504 a note
    ({"samples": 20000, "classes": 20}, "not below"),
])
def test_advice_is_info_when_the_facts_do_not_decide(facts, why):
    found = _run(_classifier(), "ML503", "ML504", **facts)
    assert found["ML504"].severity == "info"
    if why:
        assert why in found["ML504"].evidence["advice_only"]
    if "ML503" in found:
        assert found["ML503"].severity == "info"


def test_pytorch_advice_is_at_most_info():
    found = _run(_classifier("torch"), "ML503", "ML504", "ML902", samples=8000, classes=13)
    assert {c: f.severity for c, f in found.items()} == {"ML503": "info", "ML504": "info", "ML902": "info"}
    assert "transforms" in found["ML504"].evidence["advice_only"]
    assert "transforms" in found["ML902"].fix


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_segmentation_counts_labels_per_pixel(framework):
    g = _segmenter(framework)
    assert g.trainable_params / 3000 > 100  # per image it would look like memorisation
    found = _run(g, "ML501", "ML503", "ML504", samples=3000)
    assert "ML501" not in found  # 3,000 masks × 4,096 pixels
    assert all(f.severity == "info" for f in found.values()), {c: f.severity for c, f in found.items()}


def test_too_many_params_per_sample_still_warns():
    g = seq(inp(100,), dense(1024, act="relu"), dense(1024, act="relu"), dense(1, act="sigmoid"))
    found = _run(g, "ML501", samples=300)
    assert found["ML501"].severity == "warning" and found["ML501"].evidence["params_per_sample"] > 3000


def test_depthwise_suggestion_only_for_regular_convs():
    mlp = seq(inp(784,), dense(512, act="relu"), dense(512, act="relu"), dense(10, act="softmax"))
    assert "ML952" not in _run(mlp, "ML952")
    one_by_one = seq(inp(32, 32, 64), conv(256, kernel=1, act="relu"), gap(), dense(10))
    assert "ML952" not in _run(one_by_one, "ML952")
    wide = seq(inp(128, 128, 3), conv(128, act="relu"), pool(4), conv(16, act="relu"), flatten(), dense(10))
    f = _run(wide, "ML952")["ML952"]
    assert f.layers == ["conv_1"] and 0 < f.evidence["separable_cost_ratio"] < 0.2
