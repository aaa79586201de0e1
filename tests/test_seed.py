"""The seed model of shared/seed/question.txt, read without Keras.

Truth: the asker's own model.summary() (parsed from question.txt when the
shared folder is present; the same table is written out below otherwise).
"""

import re
import sys

import pytest

from conftest import EXAMPLES, SHARED, run_cli
from modellint import load_graph
from modellint.analysis import last_spatial, receptive_fields, total_macs

# (layer, output shape without batch, params) as printed in the question
QUESTION_TABLE = [
    ("batch_normalization_1", (128, 128, 3), 12),
    ("conv2d_1", (128, 128, 32), 896),
    ("max_pooling2d_1", (64, 64, 32), 0),
    ("batch_normalization_2", (64, 64, 32), 128),
    ("conv2d_2", (64, 64, 64), 18496),
    ("max_pooling2d_2", (32, 32, 64), 0),
    ("batch_normalization_3", (32, 32, 64), 256),
    ("conv2d_3", (32, 32, 128), 73856),
    ("max_pooling2d_3", (16, 16, 128), 0),
    ("batch_normalization_4", (16, 16, 128), 512),
    ("conv2d_4", (16, 16, 64), 73792),
    ("global_average_pooling2d_1", (64,), 0),
    ("dense_1", (13,), 845),
]


def question_table():
    q = SHARED / "seed" / "question.txt"
    if not q.exists():
        return QUESTION_TABLE, (168793, 168339, 454)
    text = q.read_text()
    # type names are cut at 13 characters, e.g. "(Batch" or "(MaxPooling2" or "("
    rows = re.findall(r"(\w+) \([A-Za-z0-9]*\)? ?\(None, ([\d, ]+)\) (\d+)", text)
    table = [(n, tuple(int(x) for x in s.split(",")), int(p)) for n, s, p in rows]
    totals = tuple(int(re.search(rf"{k} params: ([\d,]+)", text).group(1).replace(",", ""))
                   for k in ("Total", "Trainable", "Non-trainable"))
    assert len(table) == 13
    return table, totals


@pytest.mark.parametrize("path", ["seed_cnn.h5", "seed_cnn.keras"])
def test_seed_matches_question(path):
    table, (total, trainable, non_trainable) = question_table()
    g = load_graph(EXAMPLES / path)
    assert (g.total_params, g.trainable_params, g.non_trainable_params) == (total, trainable, non_trainable)
    for name, shape, params in table:
        node = g[name]
        assert node.output_shape == (None, *shape), name
        assert node.params == params, name


def test_seed_receptive_field_and_macs():
    g = load_graph(EXAMPLES / "seed_cnn.h5")
    rfs = receptive_fields(g)
    # hand-computed: 3 -> 4 (pool) -> 8 -> 10 -> 18 -> 22 -> 38, jump 1 -> 2 -> 4 -> 8
    assert [rfs[n].size[0] for n in ("conv2d_1", "max_pooling2d_1", "conv2d_2", "max_pooling2d_2",
                                     "conv2d_3", "max_pooling2d_3", "conv2d_4")] == [3, 4, 8, 10, 18, 22, 38]
    node, rf = last_spatial(g, rfs)
    assert node.name == "conv2d_4" and rf.size == (38, 38) and rf.stride == (8, 8)
    # MACs by hand: H*W*k*k*Cin*Cout per conv, plus 64*13 for the dense layer
    expected = (128 * 128 * 9 * 3 * 32 + 64 * 64 * 9 * 32 * 64 + 32 * 32 * 9 * 64 * 128
                + 16 * 16 * 9 * 128 * 64 + 64 * 13)
    assert total_macs(g) == expected


def test_seed_training_config():
    for path in ("seed_cnn.h5", "seed_cnn.keras"):
        t = load_graph(EXAMPLES / path).training
        assert t.loss == "categorical_crossentropy"
        assert t.optimizer == "adam" and t.learning_rate == pytest.approx(1e-3)
        assert t.metrics == ["accuracy"] and t.from_logits is False


def test_seed_fused_activation_explicit():
    g = load_graph(EXAMPLES / "seed_cnn.keras")
    assert g["conv2d_1"].attrs["activation"] == "linear"
    act = g["dense_1.activation"]
    assert act.op == "activation" and act.attrs["function"] == "softmax" and act.fused_into == "dense_1"
    assert g.outputs == ["dense_1.activation"]


def test_summary_cli_text_and_json():
    r = run_cli("summary", EXAMPLES / "seed_cnn.h5")
    assert r.returncode == 0, r.stderr
    assert "168,793" in r.stdout and "38×38" in r.stdout and "184.0 M MACs" in r.stdout
    r = run_cli("summary", EXAMPLES / "seed_cnn.keras", "--format", "json")
    import json

    data = json.loads(r.stdout)
    assert data["params"] == {"total": 168793, "trainable": 168339, "non_trainable": 454}
    assert data["receptive_field"]["layer"] == "conv2d_4"
    assert data["receptive_field"]["size"] == [38, 38] and data["receptive_field"]["input_size"] == [128, 128]


def test_summary_imports_no_framework():
    code = ("import sys; from modellint.cli import main; main(['summary', r'%s']); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'torch', 'jax')); "
            "print('IMPORTED', bad)") % (EXAMPLES / "seed_cnn.h5")
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "IMPORTED []" in r.stdout
