"""The shared graph walks rules use on deep models (issue 10: ML201 was cubic on 2,000 residual blocks).

``Context.forward_any``, ``Context.forward_many`` and ``Context.backward_reach`` answer, in one pass,
what one :meth:`Context.forward` / :meth:`Context.backward` walk per node would: checked against
those walks on random graphs, cycles included (a model file may describe one). Then ML201 and ML402
on deep graphs: bounded time, the same findings as the walks give.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import pytest

from modellint.build import act, bn, conv, dense, dropout, gap, inp, relu, residual, seq
from modellint.dataset import facts_from_values
from modellint.rules import get_rule
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
                back, fwd_any = ctx.backward_reach(t, k), ctx.forward_any(t, k)
                for node in g:
                    assert back(node) == {n.name for n in ctx.backward(node, t) if k(n)}
                    assert fwd_any(node) == any(k(n) for n in ctx.forward(node, t))
                starts = [n for n in g if rng.random() < 0.3]
                assert {n.name for n in ctx.forward_many(starts, t)} == \
                    {n.name for s in starts for n in ctx.forward(s, t)}


def _walk_ml201(ctx):
    """ML201's layers as the rule found them before issue 10: one forward walk per layer."""
    from modellint.rules.activation import _full_layer

    chain = set()
    for node in ctx.learnable_layers():
        if _full_layer(ctx, node):
            nxt = [n for n in ctx.forward(node, through=lambda n: not ctx.is_learnable(n) and
                                          not ctx.is_nonlinear(n)) if _full_layer(ctx, n)]
            if nxt:
                chain.update(n.name for n in [node, *nxt])
    return [n.name for n in ctx.graph if n.name in chain]


@pytest.mark.parametrize("family", bench_rules_scale.FAMILIES)
def test_ml201_on_2000_residual_blocks_is_fast_and_unchanged(family):
    """2,000 residual blocks: ML201 took 12 s (pre-activation ResNet) and 244 s (residual MLP) with a
    walk per layer; now well under a second on a quiet machine (the bound leaves room for a busy one).
    Its layers are those the per-layer walks find (checked on 200 blocks, where they are quick)."""
    facts = facts_from_values(samples=8000, classes=10, image_size="32x32")
    rule = get_rule("ML201")()
    g = bench_rules_scale.build(family, 2000)
    t = time.perf_counter()
    found = list(rule.check(Context(g, facts)))
    took = time.perf_counter() - t
    assert len(found) == 1 and took < 5, (len(found), took)
    small = Context(bench_rules_scale.build(family, 200), facts)
    (finding,) = rule.check(small)
    assert finding.layers == _walk_ml201(small)


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
