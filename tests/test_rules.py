"""Every rule's documented examples run as tests (as in Meta's Fixit): each INVALID
example fires the rule, each VALID example does not."""

import pytest

from modellint.build import example, example_facts
from modellint.dataset import facts_from_values
from modellint.engine import run_rules
from modellint.rules import all_rules
from modellint.rules.base import CATEGORIES, SEVERITIES

RULES = all_rules()
CASES = [(r, src, True) for r in RULES for src in r.INVALID] + [(r, src, False) for r in RULES for src in r.VALID]


def _facts(rule, src=""):
    """The rule's EXAMPLE_DATASET, with an example's own ``# with classes=10, task=regression``."""
    d = dict(rule.EXAMPLE_DATASET)
    d.update(example_facts(src if isinstance(src, str) else ""))
    facts = facts_from_values(d.get("samples"), d.get("classes"), d.get("image_size"), source="example")
    facts.task = d.get("task")
    return facts


@pytest.mark.parametrize("rule,src,should_fire", CASES,
                         ids=[f"{r.code}-{'bad' if bad else 'good'}{i}" for i, (r, _, bad) in enumerate(CASES)])
def test_rule_examples(rule, src, should_fire):
    src, probes = src if isinstance(src, tuple) else (src, None)  # probe rules pair a model with measurements
    graph = example(src)
    report = run_rules(graph, [rule], _facts(rule, src), probes=probes)
    assert not report.errors, report.errors
    assert rule.code in report.rules_run, report.rules_skipped
    fired = [f for f in report.findings if f.code == rule.code]
    if should_fire:
        assert fired, f"{rule.code} did not fire on its bad example:\n{src}"
        for f in fired:
            assert f.message and f.severity in SEVERITIES
            assert all(name in graph.nodes for name in f.layers)
    else:
        assert not fired, f"{rule.code} fired on its good example: {[f.message for f in fired]}"


def test_rule_metadata():
    codes = [r.code for r in RULES]
    assert len(codes) == len(set(codes))
    for r in RULES:
        assert r.code[:2] == "ML" and len(r.code) == 5 and r.code[2:].isdigit()
        assert r.category in CATEGORIES and r.severity in SEVERITIES
        assert r.name and r.name == r.name.lower() and " " not in r.name
        doc = r.doc()
        for section in ("## What it does", "## Why is this bad", "## Fix"):
            assert section in doc, (r.code, section)
        assert r.VALID and r.INVALID, r.code


def test_rules_needing_data_are_skipped_without_it():
    graph = example("seq(inp(128, 128, 3), conv(32, act='relu'), gap(), dense(13, act='softmax'))")
    report = run_rules(graph, RULES)
    needing = {r.code for r in RULES if r.needs}  # dataset facts or probe results
    assert needing and needing == set(report.rules_skipped)
    assert all("--" in reason for reason in report.rules_skipped.values())


@pytest.mark.parametrize("epochs, severity", [(0.46, "info"), (0.99, "info"), (1.0, "warning"), (12.0, "warning"),
                                              (None, "warning")])
def test_linear_baseline_comparison_needs_an_epoch(epochs, severity):
    """ML030 warns only when the network saw every training image at least once (the logistic regression
    is fit to convergence); a shorter run is an inconclusive info; a report without epochs still warns."""
    from modellint.rules import get_rule

    td = {"val_accuracy": 0.07, "steps": 15, **({"epochs": epochs} if epochs is not None else {})}
    probes = {"linear_baseline": {"status": "ok", "metrics": {"val_accuracy": 0.32}},
              "train_dynamics": {"status": "ok", "metrics": td}}
    graph = example("seq(inp(32, 32, 3), conv(8, act='relu'), gap(), dense(4, act='softmax'))")
    found = [f for f in run_rules(graph, [get_rule("ML030")], probes=probes).findings]
    assert [f.severity for f in found] == [severity]
    assert found[0].message.startswith("inconclusive") == (severity == "info")


@pytest.mark.parametrize("epochs, severity", [(0.15, "info"), (1.0, "warning"), (None, "warning")])
def test_zero_input_comparison_needs_an_epoch(epochs, severity):
    from modellint.rules import get_rule

    zi = {"real_val_accuracy": 0.08, "zero_val_accuracy": 0.08, "steps": 5,
          **({"epochs": epochs} if epochs is not None else {})}
    graph = example("seq(inp(32, 32, 3), conv(8, act='relu'), gap(), dense(4, act='softmax'))")
    found = run_rules(graph, [get_rule("ML022")], probes={"zero_input": {"status": "ok", "metrics": zi}}).findings
    assert [f.severity for f in found] == [severity]
