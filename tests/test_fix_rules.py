"""The rules' fixes, tested the Fixit way: every INVALID example of a rule that declares a
:class:`~modellint.rules.base.Fix`, rewritten by that fix, no longer fires its rule, and no
other rule newly fires (except a rule the fix declares it may reveal, named in ``may_reveal``)."""

import pytest

from modellint.build import example
from modellint.engine import run_rules, select_rules
from modellint.fixes import apply_fixes
from modellint.rules import all_rules

from test_rules import _facts

FIXED = [r for r in all_rules() if r.fix is not None]
CASES = [(r, src) for r in FIXED for src in r.INVALID]


def _codes(report):
    return {f.code for f in report.findings}


@pytest.mark.parametrize("rule,src", CASES, ids=[f"{r.code}-bad{i}" for i, (r, _) in enumerate(CASES)])
def test_fix_repairs_its_invalid_example(rule, src):
    src, probes = src if isinstance(src, tuple) else (src, None)  # probe rules pair a model with measurements
    graph = example(src)
    facts = _facts(rule, src)
    rules = select_rules()
    first = run_rules(graph, rules, facts, probes=probes)
    before = _codes(first)
    assert rule.code in before
    result = apply_fixes(graph, facts, rules=rules, select=[rule.code], probes=probes)
    if not any(rule.fix.applies_to(f) for f in first.findings if f.code == rule.code):
        # a finding the fix declares it cannot act on (an inconclusive range test): left alone
        assert not result.changes and rule.code in _codes(run_rules(result.graph, rules, facts, probes=probes))
        return
    assert result.changes, f"{rule.code}: the fix changed nothing"
    assert {c.code for c in result.changes} == {rule.code}
    assert result.graph.lint() == []
    after = _codes(run_rules(result.graph, rules, facts, probes=probes))
    assert rule.code not in after, f"{rule.code} still fires after its fix"
    new = after - before - set(rule.fix.may_reveal)
    assert not new, f"{rule.code}'s fix made {sorted(new)} fire"
    # the input graph is untouched
    assert _codes(run_rules(graph, rules, facts, probes=probes)) == before


def test_every_fix_is_declared_sensibly():
    assert len(FIXED) >= 10
    for r in FIXED:
        assert r.fix.title and r.fix.applicability in ("safe", "unsafe", "display-only")
        assert r.fix.weights in ("kept", "refolded", "re-initialised")
        assert callable(r.fix.edit)
    # the one exact rewrite is the bias fold
    assert [r.code for r in FIXED if r.fix.applicability == "safe"] == ["ML102"]
