"""Rules on deep models stay linear in the model's size (issue 10: ML201 took 12 s to 244 s on 2,000
residual blocks, ML402 was quadratic).

``Context.backward_reach`` answers, in one pass, what one :meth:`Context.backward` walk per node
would: checked against those walks on random graphs, cycles included (a model file may describe
one). Then every rule on 2,000 blocks of each benchmark family: bounded time, and ML402's gridding
pairs are those a walk per dilated conv finds.
"""

from __future__ import annotations

import random
import sys
import time
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


@pytest.mark.parametrize("family", bench_rules_scale.FAMILIES)
def test_every_rule_on_2000_residual_blocks_is_fast(family):
    """2,000 blocks of each benchmark family: every static rule well under a second on a quiet machine
    (the bound leaves room for a busy one; ML201 took 12 s and 244 s here before issue 10). The plain
    family's one ML201 finding lists a linear pair in every block."""
    facts = facts_from_values(samples=8000, classes=10, image_size="32x32")
    ctx = Context(bench_rules_scale.build(family, 2000), facts)
    ctx.rf, ctx.costs  # noqa: B018 - the shared analyses, as run_rules computes them
    for rule_cls in all_rules():
        if "probes" in rule_cls.needs:
            continue
        t = time.perf_counter()
        found = list(rule_cls().check(ctx))
        took = time.perf_counter() - t
        assert took < 5, (rule_cls.code, took)
        if family == "plain" and rule_cls.code == "ML201":
            assert len(found) == 1 and len(found[0].evidence["pairs"]) == 2000, found


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
