"""The task analysis, the loss vocabulary and the head × loss table (issue 11).

Truths used: what each framework documents its losses to take (torch.nn docs:
CrossEntropyLoss "input is expected to contain the unnormalized logits", NLLLoss
"log-probabilities", BCELoss "probabilities", BCEWithLogitsLoss "combines a Sigmoid
layer and the BCELoss"; Keras: cross-entropies take probabilities unless
from_logits=True), and hand arithmetic for the numbers the findings quote.
"""

import json
import math
import subprocess
import sys

import pytest

from modellint import losses as L
from modellint.analysis.task import TASKS, analyse
from modellint.build import example, example_facts
from modellint.dataset import facts_from_values
from modellint.engine import run_rules
from modellint.errors import ConfigError
from modellint.rules import all_rules


def _run(src, **facts):
    facts = {**example_facts(src), **facts}
    ds = facts_from_values(facts.get("samples"), facts.get("classes"), facts.get("image_size"), source="test",
                           task=facts.get("task"))
    report = run_rules(example(src), all_rules(), ds)
    assert not report.errors, report.errors
    return report


def _head_findings(report):
    return [(f.code, f.severity, f.category) for f in report.findings if f.code[:4] in ("ML30", "ML20")
            and f.code not in ("ML201", "ML202", "ML203", "ML204")]


# -- the loss vocabulary ------------------------------------------------------------------

@pytest.mark.parametrize("name, framework, expects", [
    ("CrossEntropyLoss", "torch", L.LOGITS), ("nn.CrossEntropyLoss", "torch", L.LOGITS),
    ("crossentropyloss", "torch", L.LOGITS), ("NLLLoss", "torch", L.LOG_PROBABILITIES),
    ("BCELoss", "torch", L.PROBABILITIES), ("BCEWithLogitsLoss", "torch", L.LOGITS),
    ("MSELoss", "torch", L.VALUES), ("mse_loss", "torch", L.VALUES), ("KLDivLoss", "torch", L.LOG_PROBABILITIES),
    ("categorical_crossentropy", "keras", L.PROBABILITIES), ("SparseCategoricalCrossentropy", "keras",
                                                             L.PROBABILITIES),
    ("mse", "keras", L.VALUES), ("MeanSquaredError", "keras", L.VALUES), ("KLDivergence", "keras", L.PROBABILITIES),
])
def test_losses_are_known_by_both_frameworks_names(name, framework, expects):
    loss = L.parse(name)
    assert (loss.framework, loss.expects) == (framework, expects)


def test_keras_from_logits_changes_what_a_cross_entropy_expects():
    cce = L.lookup("categorical_crossentropy")
    assert cce.expects_given(True) == L.LOGITS and cce.expects_given(False) == L.PROBABILITIES
    assert L.lookup("mean_squared_error").expects_given(True) == L.VALUES  # no such flag: unchanged


@pytest.mark.parametrize("name, hint", [("cross_entropy", "CrossEntropyLoss or categorical_crossentropy"),
                                        ("foo_bar", None), ("CrossEntropy", "CrossEntropyLoss")])
def test_unknown_or_ambiguous_loss_names_are_refused(name, hint):
    with pytest.raises(ConfigError) as exc:
        L.parse(name)
    assert repr(name) in str(exc.value)
    if hint:
        assert hint in str(exc.value)


def test_a_pytorch_loss_with_a_contradicting_from_logits_is_refused():
    with pytest.raises(ConfigError, match="BCELoss expects probabilities"):
        L.parse("BCELoss", from_logits=True)
    assert L.parse("BCEWithLogitsLoss", from_logits=True).expects == L.LOGITS


def test_every_table_row_is_reachable_by_its_own_name():
    for loss in L.LOSSES:
        assert L.lookup(loss.name) is loss


# -- the task -----------------------------------------------------------------------------

@pytest.mark.parametrize("src, facts, task, source", [
    ("seq(inp(64,), dense(10, act='softmax'), loss='categorical_crossentropy')", {}, "multiclass", "loss"),
    ("seq(inp(64,), dense(1, act='sigmoid'), loss='binary_crossentropy')", {}, "binary", "loss"),
    ("seq(inp(64,), dense(20, act='sigmoid'), loss='binary_crossentropy')", {}, "multilabel", "loss"),
    ("seq(inp(64,), dense(1), loss='mean_squared_error')", {}, "regression", "loss"),
    ("seq(inp(64,), dense(1, act='softplus'), loss='poisson')", {}, "regression-nonnegative", "loss"),
    ("seq(inp(64,), dense(10), loss='mean_squared_error')", {"classes": 10}, "multiclass", "head"),
    ("seq(inp(64,), dense(10, act='softmax'))", {}, "multiclass", "head"),
    ("seq(inp(64,), dense(4))", {}, "unknown", "unknown"),
    ("seq(inp(64,), dense(4))", {"task": "embedding"}, "embedding", "stated"),
    ("seq(inp(64,), dense(10), loss='CrossEntropyLoss', framework='torch')", {}, "multiclass", "loss"),
])
def test_task_is_inferred_from_loss_head_and_facts(src, facts, task, source):
    ds = facts_from_values(classes=facts.get("classes"), task=facts.get("task"))
    analysis = analyse(example(src), ds)
    assert (analysis.task, analysis.source) == (task, source)


def test_a_decoder_makes_a_per_position_output_a_segmentation():
    unet = ("seq(inp(64, 64, 3), conv(16, act='relu'), pool(), conv(32, act='relu'), upsample(), "
            "conv(1, act='sigmoid'), loss='binary_crossentropy')")
    head = analyse(example(unet)).heads[0]
    assert head.task == "segmentation" and head.positions == (64, 64) and head.decoder


def test_unknown_task_name_is_refused():
    with pytest.raises(ConfigError, match="not one of"):
        facts_from_values(task="classification")
    assert set(TASKS) >= {"binary", "multiclass", "multilabel", "regression", "segmentation", "seq2seq"}


# -- one head, one finding ----------------------------------------------------------------

@pytest.mark.parametrize("src, expected", [
    # softmax over 1 unit + mse (a regression): one finding, no contradictory loss advice
    ("seq(inp(64,), dense(32, act='relu'), dense(1, act='softmax'), loss='mean_squared_error')",
     [("ML302", "error", "output-head")]),
    # softmax over 1 unit + BCE: one finding with one fix (not two with opposite fixes)
    ("seq(inp(64,), dense(32, act='relu'), dense(1, act='softmax'), loss='binary_crossentropy')",
     [("ML302", "error", "output-head")]),
    ("seq(inp(64,), dense(32, act='relu'), dense(10, act='relu'), loss='categorical_crossentropy')",
     [("ML305", "error", "output-head")]),
    ("seq(inp(64,), dense(32, act='relu'), dense(10), loss='categorical_crossentropy')",
     [("ML205", "error", "loss")]),
    ("seq(inp(64,), dense(32, act='relu'), dense(10, act='sigmoid'), loss='categorical_crossentropy')",
     [("ML305", "warning", "output-head")]),
    ("seq(inp(64,), dense(32, act='relu'), dense(1, act='sigmoid'), loss='categorical_crossentropy')",
     [("ML303", "error", "loss")]),
    ("seq(inp(64,), dense(32, act='relu'), dense(10, act='softmax'), loss='CrossEntropyLoss', framework='torch')",
     [("ML305", "error", "output-head")]),
    ("seq(inp(64,), dense(32, act='relu'), dense(10, act='softmax'), loss='categorical_crossentropy', "
     "from_logits=True)", [("ML303", "error", "loss")]),
    ("seq(inp(64,), dense(32, act='relu'), dense(10, act='log_softmax'), loss='CrossEntropyLoss', "
     "framework='torch')", []),  # log_softmax is idempotent under CrossEntropyLoss' own log_softmax
    ("seq(inp(64,), dense(32, act='relu'), dense(10), loss='NLLLoss', framework='torch')",
     [("ML305", "error", "output-head")]),
    ("seq(inp(64,), dense(32, act='relu'), dense(1, act='relu'), loss='MSELoss', framework='torch')",
     [("ML305", "warning", "output-head")]),
    ("seq(inp(64,), dense(32, act='relu'), dense(1, act='relu'), loss='MSELoss', framework='torch')"
     "  # with task=regression-nonnegative", []),
    ("seq(inp(64,), dense(32, act='relu'), dense(1, act='sigmoid'), loss='mean_squared_error')", []),
    ("seq(inp(64,), dense(32, act='relu'), dense(1, act='sigmoid'), loss='mean_squared_error')"
     "  # with task=regression", [("ML305", "warning", "output-head")]),
    ("seq(inp(64,), dense(32, act='relu'), dense(1), loss='CrossEntropyLoss', framework='torch')"
     "  # with classes=10", [("ML301", "error", "output-head")]),
])
def test_each_head_gets_at_most_one_finding(src, expected):
    assert _head_findings(_run(src)) == expected


def test_tanh_logits_quote_the_largest_probability_they_allow():
    """Logits in (-1, 1) over C classes: the best case is one logit at +1, the others at -1, so the largest
    softmax probability is e / (e + (C-1)/e) = e² / (e² + C - 1): 0.45 for 10 classes."""
    report = _run("seq(inp(64,), dense(32, act='relu'), dense(10, act='tanh'), loss='CrossEntropyLoss', "
                  "framework='torch')  # with classes=10")
    [f] = [f for f in report.findings if f.code == "ML305"]
    assert f"{math.e ** 2 / (math.e ** 2 + 9):.2f}" == "0.45" and "0.45 with 10 classes" in f.message


def test_per_position_output_is_flagged_once_with_a_pooling_fix():
    report = _run("seq(inp(28, 28, 1), conv(32, act='relu'), pool(), dense(10, act='softmax'), "
                  "loss='categorical_crossentropy')  # with classes=10")
    heads = _head_findings(report)
    assert heads == [("ML304", "warning", "output-head")]
    [f] = [f for f in report.findings if f.code == "ML304"]
    assert f.evidence["output_shape"] == [None, 14, 14, 10] and "GlobalAveragePooling2D" in f.fix


def test_torch_models_get_torch_fixes():
    report = _run("seq(inp(64,), dense(32, act='relu'), dense(10, act='softmax'), loss='CrossEntropyLoss', "
                  "framework='torch')")
    [f] = [f for f in report.findings if f.code == "ML305"]
    assert set(f.snippets) == {"torch"} and "nn.Linear(32, 10)" in f.snippets["torch"]
    assert "Softmax" not in f.snippets["torch"]


# -- the command line and the API ---------------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "modellint", *args], capture_output=True, text=True, timeout=300)


def test_cli_refuses_an_unknown_loss_in_one_line():
    r = _cli("check", "examples/seed_cnn.h5", "--loss", "cross_entropy")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cross_entropy" in r.stderr and "CrossEntropyLoss" in r.stderr


def test_cli_task_and_loss_reach_the_report():
    r = _cli("check", "examples/seed_cnn.h5", "--format", "json", "--exit-zero", "--task", "multiclass")
    assert r.returncode == 0, r.stderr
    task = json.loads(r.stdout)["reports"][0]["task"]
    assert task["task"] == "multiclass" and task["source"] == "stated"
    r = _cli("summary", "examples/seed_cnn.h5")
    assert "Task: multiclass, from the loss categorical_crossentropy" in r.stdout


def test_analyze_states_task_and_pytorch_loss():
    import modellint

    with pytest.raises(ConfigError):
        modellint.analyze("examples/seed_cnn.h5", task="classification")
    report = modellint.analyze("examples/seed_cnn.h5", loss="sparse_categorical_crossentropy", from_logits=True)
    assert report.graph.training.loss == "sparse_categorical_crossentropy" and report.graph.training.from_logits
    assert report.graph.training.optimizer == "adam"  # the file's optimizer is kept
    assert "ML303" in {f.code for f in report.findings}  # from_logits=True after the seed's softmax


def test_pytorch_models_get_pytorch_prose_and_their_own_sizes():
    """Issue 11: a PyTorch model got Keras advice ("Add Rescaling(1/255)") and a RandomResizedCrop(128) snippet for
    a 64-px model. Fixes speak the model's framework and use its sizes."""
    src = ("seq(inp(64, 64, 3), conv(16, act='relu'), dropout(0.3), bn(), conv(32, act='relu'), gap(), dense(10), "
           "loss='CrossEntropyLoss', framework='torch')")
    report = _run(src, classes=10, samples=3000)
    by_code = {f.code: f for f in report.findings}
    assert "RandomResizedCrop(64" in by_code["ML504"].snippets["torch"] and "RandomFlip" not in by_code["ML504"].fix
    assert "(p=0.3)" in by_code["ML103"].message and "nn.Dropout" in by_code["ML103"].fix
    assert all("Rescaling" not in f.fix and "Dense(" not in f.fix for f in report.findings)


# -- a PyTorch model whose task is known but whose loss is not -----------------------------

_RELU_LOGITS = "seq(inp(64,), dense(32, act='relu'), dense(10, act='relu'), framework='torch')"


@pytest.mark.parametrize("facts", [{"task": "multiclass"}, {"classes": 10}])
def test_pytorch_multiclass_without_a_loss_assumes_cross_entropy(facts):
    """A ReLU on the last Linear of a 10-class PyTorch classifier: nn.CrossEntropyLoss (the convention, and
    what a softmax head already gets) takes logits, which a ReLU keeps non-negative. The task stated or
    the classes matching the units make the assumption; the finding is a warning naming it."""
    report = _run(_RELU_LOGITS, **facts)
    head = analyse(example(_RELU_LOGITS), facts_from_values(classes=facts.get("classes"),
                                                            task=facts.get("task"))).heads[0]
    assert head.task == "multiclass" and head.loss_assumed and head.loss_name == "CrossEntropyLoss"
    assert head.expects == L.lookup("CrossEntropyLoss").expects_given(None)
    found = [f for f in report.findings if f.code == "ML305"]
    assert [f.severity for f in found] == ["warning"], found
    assert "relu on the logits before nn.CrossEntropyLoss" in found[0].message


def test_pytorch_head_without_task_or_loss_assumes_nothing():
    """Without a task, classes or loss a ReLU output may be a non-negative regression: no loss is assumed."""
    head = analyse(example(_RELU_LOGITS)).heads[0]
    assert head.task == "unknown" and head.loss is None and not head.loss_assumed
    assert not [f for f in _run(_RELU_LOGITS).findings if f.code == "ML305"]
    # a Keras model keeps its own stated loss only: nothing assumed either
    keras_head = analyse(example("seq(inp(64,), dense(32, act='relu'), dense(10, act='relu'))"),
                         facts_from_values(task="multiclass")).heads[0]
    assert keras_head.loss is None and not keras_head.loss_assumed
