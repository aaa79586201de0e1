"""The rule reference in rules/ is generated from the rules and must be current; every
rule documents itself (three sections) and shows a good and a bad example."""

from __future__ import annotations

from pathlib import Path

import pytest

from modellint.build import example
from modellint.graph import Graph
from modellint.rules import all_rules
from modellint.rules.docs import (INDEX, check_current, doc_sections, render_index, render_rule_page,
                                  write_all)

ROOT = Path(__file__).resolve().parents[1]
RULES_DIR = ROOT / "rules"
RULES = all_rules()
SECTIONS = ("What it does", "Why is this bad", "Fix")
HINT = "run `make rules` to regenerate the rule reference, and commit rules/"


def test_reference_is_current():
    problems = check_current(RULES_DIR)
    assert not problems, f"rules/ is out of date ({', '.join(problems)}): {HINT}"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_page_matches_rule(rule):
    page = RULES_DIR / f"{rule.code}.md"
    assert page.is_file(), f"{page.relative_to(ROOT)} is missing: {HINT}"
    assert page.read_text(encoding="utf-8") == render_rule_page(rule), \
        f"{page.relative_to(ROOT)} is stale: {HINT}"


def test_index_lists_every_rule():
    index = (RULES_DIR / INDEX).read_text(encoding="utf-8")
    for rule in RULES:
        assert f"[{rule.code}]({rule.code}.md) | {rule.name} |" in index, f"{rule.code} not in rules/README.md: {HINT}"
    assert index == render_index(RULES), f"rules/README.md is stale: {HINT}"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_doc_has_sections(rule):
    sections = doc_sections(rule.doc())
    for title in SECTIONS:
        assert sections.get(title, "").strip(), f"{rule.code}: docstring lacks a non-empty '## {title}'"
    headings = [line for line in rule.doc().splitlines() if line.startswith("## ")]
    assert [h[3:].strip() for h in headings][:3] == list(SECTIONS), f"{rule.code}: sections out of order"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_has_examples(rule):
    assert rule.name and rule.name == rule.name.lower() and " " not in rule.name, rule.code
    assert len(rule.VALID) >= 1, f"{rule.code} has no VALID example"
    assert len(rule.INVALID) >= 1, f"{rule.code} has no INVALID example"
    for src in (*rule.VALID, *rule.INVALID):
        src = src[0] if isinstance(src, tuple) else src  # probe rules: (model, measurements)
        assert isinstance(example(src), Graph), (rule.code, src)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_page_content(rule):
    page = render_rule_page(rule)
    assert page.startswith(f"# {rule.code} {rule.name}\n")
    assert f"- Category: `{rule.category}`" in page and f"- Default severity: `{rule.severity}`" in page
    for title in (*SECTIONS, "Example", "Good"):
        assert f"\n## {title}\n" in page, title
    assert page.index("## Example") < page.index("## Good")
    assert page.count("```python") == len(rule.VALID) + len(rule.INVALID)
    for need in rule.needs:
        assert ("modellint probe" if need == "probes" else f"--{need.replace('_', '-')}") in page
    for ref in rule.references:
        assert str(ref) in page


def test_long_examples_are_one_layer_a_line():
    from modellint.rules.docs import format_example

    src = "seq(inp(32, 32, 3), " + ", ".join(["conv(32, act='relu')"] * 6) + ", gap(), dense(10, act='softmax'), loss='mse')"
    out = format_example(src)
    assert out.splitlines()[0] == "seq(" and out.splitlines()[-1] == ")"
    assert "    loss='mse'," in out.splitlines()
    assert example(out).nodes.keys() == example(src).nodes.keys()  # same model
    assert format_example("seq(inp(4,), dense(2))") == "seq(inp(4,), dense(2))"


def test_write_all_and_check_current(tmp_path):
    written = write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted([f"{r.code}.md" for r in RULES] + [INDEX])
    assert check_current(tmp_path) == []
    first = tmp_path / f"{RULES[0].code}.md"
    first.write_text(first.read_text() + "edited\n")
    (tmp_path / f"{RULES[-1].code}.md").unlink()
    (tmp_path / "ML000.md").write_text("# a rule that no longer exists\n")
    (tmp_path / "notes.md").write_text("not a rule page\n")
    assert check_current(tmp_path) == [f"{RULES[0].code}.md (stale)", f"{RULES[-1].code}.md (missing)",
                                       "ML000.md (extra)"]
    write_all(tmp_path)
    assert check_current(tmp_path) == []
    assert not (tmp_path / "ML000.md").exists() and (tmp_path / "notes.md").exists()
    assert sorted(check_current(tmp_path / "absent")) == sorted(
        [f"{r.code}.md (missing)" for r in RULES] + [f"{INDEX} (missing)"])
