"""Rules on deep models stay linear in the model's size (issue 10: ML201 took 12 s to 244 s on 2,000
residual blocks, ML402 was quadratic).

``Context.backward_reach`` answers, in one pass, what one :meth:`Context.backward` walk per node
would: checked against those walks on random graphs, cycles included (a model file may describe
one). Then every rule on 2,000 blocks of each benchmark family: steps linear in the size, and ML402's gridding
pairs are those a walk per dilated conv finds.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from modellint.build import act, bn, conv, dense, dropout, gap, inp, relu, residual, seq
from modellint.dataset import facts_from_values
from modellint.rules import all_rules, get_rule
from modellint.rules.context import Context

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_rules_scale  # noqa: E402


def _random_graph(rng: random.Random, cycles: bool):
    def layer():
        return rng.choice([lambda: conv(8, 1), lambda: conv(8, 3), lambda: conv(8, 3, dilation=2), bn, relu,
                           lambda: act("tanh"), lambda: dropout(0.1)])()

    blocks = []
    for _ in range(rng.randint(1, 12)):
        layers = [layer() for _ in range(rng.randint(1, 4))]
        blocks += [residual(*layers)] if rng.random() < 0.6 else layers
    g = seq(inp(8, 8, 8), conv(8), *blocks, gap(), dense(16), dense(4, act="softmax"))
    if cycles:
        names = list(g.nodes)
        for _ in range(rng.randint(1, 3)):
            a, b = sorted(rng.sample(range(1, len(names)), 2))
            g.nodes[names[a]].inputs.append(names[b])  # an edge back from a later node
        g.__dict__.pop("_consumers", None)
    return g


@pytest.mark.parametrize("cycles", [False, True], ids=["dag", "cycles"])
def test_one_pass_walks_match_a_walk_per_node(cycles):
    rng = random.Random(7 + cycles)
    for _ in range(60):
        g = _random_graph(rng, cycles)
        ctx = Context(g)
        through = [lambda n: not ctx.is_learnable(n), lambda n: n.op in ("batchnorm", "dropout", "add"),
                   lambda n: not ctx.is_learnable(n) and not ctx.is_nonlinear(n)]
        keep = [lambda n: n.op == "conv", lambda n: True, lambda n: n.op == "dense"]
        for t in through:
            for k in keep:
                back = ctx.backward_reach(t, k)
                for node in g:
                    assert back(node) == {n.name for n in ctx.backward(node, t) if k(n)}


def _graph_steps(family, blocks, monkeypatch):
    """Per static rule: how many times it asked the graph for a node's producers or consumers on
    ``blocks`` blocks of ``family`` (the work of its walks, independent of the machine's speed)."""
    from modellint.graph import Graph

    calls = {"n": 0}
    for name in ("producers", "consumers"):
        original = getattr(Graph, name)

        def counted(self, node, _original=original):
            calls["n"] += 1
            return _original(self, node)

        monkeypatch.setattr(Graph, name, counted)
    ctx = Context(bench_rules_scale.build(family, blocks), facts_from_values(samples=8000, classes=10,
                                                                            image_size="32x32"))
    ctx.rf, ctx.costs  # noqa: B018 - the shared analyses, as run_rules computes them
    steps, found = {}, {}
    for rule_cls in all_rules():
        if {"probes", "weights"} & set(rule_cls.needs):
            continue
        calls["n"] = 0
        found[rule_cls.code] = list(rule_cls().check(ctx))
        steps[rule_cls.code] = calls["n"]
    monkeypatch.undo()
    return steps, found


@pytest.mark.parametrize("family", bench_rules_scale.FAMILIES)
def test_every_rule_walks_the_graph_in_linear_steps(family, monkeypatch):
    """Every static rule's walks on 2,000 blocks take at most ~8x the steps they take on 250 (linear;
    a walk per node, as ML201 and ML402 did before issue 10, would be ~64x). Counted, not timed:
    benchmarks/bench_rules_scale.py prints the times. The plain family's one ML201 finding lists a
    linear pair in every block."""
    small, _ = _graph_steps(family, 250, monkeypatch)
    large, found = _graph_steps(family, 2000, monkeypatch)
    for code, n in large.items():
        assert n <= 10 * small[code] + 1000, (code, small[code], n)
    if family == "plain":
        assert len(found["ML201"]) == 1 and len(found["ML201"][0].evidence["pairs"]) == 2000


def test_ml402_gridding_pairs_are_the_walks_pairs():
    """ML402's gridding pairs on a deep mixed graph (dilated blocks among others) are those a backward
    walk from each dilated conv finds, in the same order."""
    ctx = Context(bench_rules_scale.build("mixed", 120), facts_from_values(samples=8000, classes=10))
    convs = ("conv", "depthwise_conv", "separable_conv")
    expected = []
    for node in ctx.graph:
        d = tuple(node.attrs.get("dilation", (1,)))
        if node.op in convs and max(d) > 1:
            order = {n.name: i for i, n in enumerate(ctx.graph)}
            prevs = [p for p in ctx.backward(node, through=lambda n: not ctx.is_learnable(n))
                     if p.op in convs and tuple(p.attrs.get("dilation", (1,))) == d]
            expected += [[p.name, node.name] for p in sorted(prevs, key=lambda p: order[p.name])]
    got = [f.layers for f in get_rule("ML402")().check(ctx) if "gridding" in f.message]
    assert got == expected and len(got) == 30 * 31 // 2, len(got)
