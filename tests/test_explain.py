"""``modellint summary --explain``: every number of the table, with its arithmetic (issue 15)."""

from __future__ import annotations

import json

from conftest import EXAMPLES, ROOT, keras_only, run_cli

from modellint import load_graph
from modellint.analysis.explain import explain

QUESTION = ROOT / "tests" / "data" / "summaries" / "seed_question.txt"


def _rows(source):
    return explain(load_graph(source))["rows"]


def test_seed_file_rows():
    rows = _rows(EXAMPLES / "seed_cnn.h5")
    assert rows["conv2d_1"]["params"].startswith("3·3·3·32 + 32 = 896")
    assert rows["batch_normalization_2"]["params"].startswith("4·32 = 128")
    assert "64, non-trainable" in rows["batch_normalization_2"]["params"]
    assert "padding 'same'" in rows["conv2d_1"]["shape"]
    assert "pool 2×2, stride 2×2" in rows["max_pooling2d_1"]["shape"]
    assert rows["conv2d_2"]["receptive_field"] == "r = 4 + (3−1)·2 = 8, j = 2"
    assert rows["max_pooling2d_3"]["receptive_field"] == "r = 18 + (2−1)·4 = 22, j = 4·2 = 8"
    assert rows["conv2d_1"]["macs"] == "128×128 positions × 864 weights = 14,155,776"
    assert rows["dense_1"]["params"].startswith("64·13 + 13 = 845")


def test_paragraphs_add_up():
    ex = explain(load_graph(EXAMPLES / "seed_cnn.h5"))
    assert "2·(3+32+64+128) = 454" in ex["totals"]
    assert "168,339 are trainable" in ex["totals"]
    assert "conv2d_3 (73,856" in ex["concentration"] and "conv2d_2 (75.5 M MACs" in ex["concentration"]


def test_pasted_summary_gives_the_same_rows():
    file_rows, text_rows = _rows(EXAMPLES / "seed_cnn.h5"), _rows(QUESTION)
    for name in ("conv2d_1", "conv2d_4", "batch_normalization_1", "max_pooling2d_2", "dense_1"):
        for key in ("params", "shape", "receptive_field", "macs"):
            assert file_rows[name][key] == text_rows[name][key], (name, key)
    assert "assumed" in text_rows["max_pooling2d_1"]["provenance"]["pool_size"]


def test_cli_text_and_json():
    r = run_cli("summary", "--explain", EXAMPLES / "seed_cnn.h5")
    assert r.returncode == 0 and "3·3·3·32 + 32 = 896" in r.stdout and "Parameters concentrate" in r.stdout
    r = run_cli("summary", "--explain", "--format", "json", QUESTION)
    d = json.loads(r.stdout)
    layer = next(x for x in d["layers"] if x["name"] == "conv2d_1")
    assert layer["explain"]["params"].startswith("3·3·3·32 + 32 = 896")
    assert "totals" in d["explain"] and "concentration" in d["explain"]
    plain = json.loads(run_cli("summary", "--format", "json", EXAMPLES / "seed_cnn.h5").stdout)
    assert "explain" not in plain and "explain" not in plain["layers"][1]


def test_html_layer_table_has_the_arithmetic():
    from modellint import analyze

    html = analyze(str(EXAMPLES / "seed_cnn.h5")).to_html()
    assert "3·3·3·32 + 32 = 896" in html and "Parameters concentrate" in html


def test_torch_batchnorm_wording():
    import sys

    sys.path.insert(0, str(EXAMPLES))
    import seed_cnn_torch

    rows = explain(load_graph(seed_cnn_torch.build(), input_shape=(1, 3, 128, 128)))["rows"]
    bn = next(v for k, v in rows.items() if k.startswith("bn1") or k == "bn1")
    assert bn["params"].startswith("4·32 = 128") or bn["params"].startswith("2·32 = 64")


@keras_only
def test_live_keras_model():
    import sys

    sys.path.insert(0, str(EXAMPLES))
    from build_seed import build_seed

    rows = explain(load_graph(build_seed()))["rows"]
    assert rows["conv2d_3"]["params"].startswith("3·3·64·128 + 128 = 73,856")
