"""The labelled diagnosis corpus (tests/corpus, issue 11) is itself sound: labels use the
project's vocabularies, ids are unique, every case builds and loads, and each pair's buggy
and fixed models differ in the graph (or in the stated training setup).

This checks the corpus only, not modellint's scores on it: those are
``benchmarks/bench_diagnosis.py``'s job until the rules reach the issue's targets.
"""

from __future__ import annotations

import pytest

from corpus import manifest, runner
from corpus.manifest import CATEGORIES, PAIRS, SOUND, TASKS, TORCH_LOSSES, Pair

from conftest import keras_only


def _param(entry):
    marks = [pytest.mark.keras, keras_only] if entry.framework == "keras" else [pytest.mark.torch]
    if entry.slow:
        marks.append(pytest.mark.slow)
    return pytest.param(entry, id=entry.id, marks=marks)


# -- labels (no framework needed) -----------------------------------------------------------------

def test_vocabulary_is_the_projects():
    from modellint.rules.base import CATEGORIES as PROJECT

    assert tuple(CATEGORIES) == tuple(PROJECT)


def test_sizes():
    assert len(PAIRS) >= 60 and len(SOUND) >= 20
    per_fw = {fw: sum(p.framework == fw for p in PAIRS) for fw in ("keras", "torch")}
    assert min(per_fw.values()) >= 0.4 * len(PAIRS), per_fw  # roughly half each
    assert {s.framework for s in SOUND} == {"keras", "torch"}


def test_ids_unique_and_prefixed():
    ids = [e.id for e in PAIRS + SOUND]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    for e in PAIRS:
        assert e.id.startswith({"keras": "k-", "torch": "t-"}[e.framework]), e.id
    for e in SOUND:
        assert e.id.startswith({"keras": "ks-", "torch": "ts-"}[e.framework]), e.id


@pytest.mark.parametrize("entry", PAIRS + SOUND, ids=lambda e: e.id)
def test_labels(entry):
    from modellint.rules import REGISTRY

    assert entry.framework in ("keras", "torch")
    assert entry.description and entry.source
    assert entry.task is None or entry.task in TASKS, entry.task
    assert set(entry.facts) <= {"classes", "samples", "image_size"}, entry.facts
    if isinstance(entry, Pair):
        assert entry.category in CATEGORIES, entry.category
        assert isinstance(entry.visible, bool)
        assert entry.min_severity in manifest.SEVERITIES
    else:
        assert set(entry.allowed) <= set(REGISTRY), entry.allowed
        assert all(reason.strip() for reason in entry.allowed.values())
    losses = [entry.loss_for("buggy"), entry.loss_for("fixed")]
    optimizers = [entry.optimizer_for("buggy"), entry.optimizer_for("fixed")]
    if entry.framework == "keras":  # a Keras model carries its own compile config
        assert losses == [None, None] and optimizers == [None, None]
    else:
        assert entry.loss in TORCH_LOSSES, entry.loss
        assert all(loss in TORCH_LOSSES for loss in losses if loss)
        for opt in optimizers:
            assert opt is None or (opt["name"] in ("sgd", "adam", "adamw") and opt["lr"] > 0), opt
    pytest.importorskip(entry.framework)
    for variant in ("buggy", "fixed") if isinstance(entry, Pair) else (None,):
        assert callable(runner.factory(entry, variant)), (entry.id, variant)


# -- every case builds, loads, and the twins differ ---------------------------------------------------

def _graph(entry, variant):
    built = runner.build(entry, variant, fresh_session=False)
    graph = runner.load_case_graph(entry, variant, built)
    assert len(graph) > 2 and graph.total_params > 0
    return graph, built


def _weights(built) -> list:
    return [t.detach().clone() for t in built.model.state_dict().values()]


@pytest.mark.parametrize("entry", [_param(p) for p in PAIRS])
def test_pair_builds_and_twins_differ(entry, one_thread_if_torch):
    (buggy, b), (fixed, f) = _graph(entry, "buggy"), _graph(entry, "fixed")
    if entry.differs_in == "weights":
        assert entry.framework == "torch"
        assert runner.graph_signature(buggy) == runner.graph_signature(fixed)
        wb, wf = _weights(b), _weights(f)
        assert len(wb) == len(wf) and any(x.shape != y.shape or not x.equal(y) for x, y in zip(wb, wf)), \
            f"{entry.id}: the twins hold the same weights"
        return
    assert entry.differs_in == "graph", entry.differs_in
    assert runner.graph_signature(buggy) != runner.graph_signature(fixed), \
        f"{entry.id}: the buggy and fixed models are the same graph with the same training setup"


@pytest.mark.parametrize("entry", [_param(s) for s in SOUND])
def test_sound_design_builds(entry, one_thread_if_torch):
    graph, _ = _graph(entry, None)
    if entry.framework == "torch" and entry.loss:
        from modellint.losses import lookup

        assert graph.training is not None and graph.training.loss == lookup(entry.loss).name


@pytest.fixture
def one_thread_if_torch(request):
    """Tiny torch models: one intra-op thread (as the conftest's one_thread, without requiring torch)."""
    entry = request.node.callspec.params["entry"]
    if entry.framework != "torch":
        yield
        return
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
