"""The HTML report: sections, findings with evidence and fixes, probe charts, escaping of
everything that comes from a model or data file, no network loads and no scripts, size of a
500-layer model's report, the CLI's --html and the Report API. Fast; no browser."""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from modellint import load_graph
from modellint.build import bn, conv, dense, gap, inp, relu, residual, seq
from modellint.cli import main
from modellint.dataset import facts_from_values
from modellint.engine import run_rules, select_rules
from modellint.probes.api import probe_inputs
from modellint.probes.suite import ProbeReport, ProbeResult
from modellint.reports import html as html_report

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed_cnn.h5"
EVIL = "<script>alert(1)</script>"
EVIL_CLASS = "<img src=x onerror=alert(2)>"
EVIL_FILE = "cats/<b>bold</b>\"quote'.png"

STATIC_IDS = ("summary", "recommendations", "findings", "layers", "graph", "charts-rf", "charts-cost", "probes")
PROBE_IDS = ("probe-summary", "probe-lr", "probe-training", "probe-gradients", "probe-dead", "probe-scaling",
             "probe-confusion", "data-checks")


def _seed_path() -> str:
    rel = os.path.relpath(SEED)
    return str(SEED) if rel.startswith("..") else rel


@pytest.fixture(scope="module")
def seed_report():
    facts = facts_from_values(8000, 13, source="flags")
    return run_rules(load_graph(_seed_path()), select_rules(), facts)


@pytest.fixture(scope="module")
def seed_html(seed_report):
    return seed_report.to_html()


VAL_STEP = [0, 12, 24, 36, 48, 59]  # validation measured during train_dynamics (indices into curves["loss"])


def fake_probes(classes=13, confusion=True, class_names=None, files=None, val_curves=True) -> ProbeReport:
    """Probe results shaped as the suite writes them, with curves, for the seed model's layers.
    ``val_curves``: train_dynamics also records the validation loss / accuracy during the run."""
    names = class_names or [f"class_{i:02d}" for i in range(classes)]
    lrs = [1e-7 * (10 ** (8 / 39)) ** i for i in range(40)]
    loss = [2.6 - 1.2 / (1 + math.exp(-(math.log10(lr) + 3) * 2)) + (0 if lr < 0.3 else 3 * lr) for lr in lrs]
    smooth = list(loss)
    layers = ["conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4", "dense_1"]
    td_metrics = {"lr": 1e-3, "steps": 60, "first_loss": 2.6, "final_loss": 1.9, "val_loss": 2.05,
                  "val_accuracy": 0.31, "grad_norm": {n: 10 ** -(i + 1) for i, n in enumerate(layers)},
                  "update_ratio": {n: 10 ** -(i + 2) for i, n in enumerate(layers)},
                  "first_last_grad_ratio": 1e4, "nonfinite": False,
                  "dead_fraction": {"conv2d_4.activation": 0.8}, "saturated_fraction": {}}
    if confusion:
        td_metrics["confusion"] = [[(8 if i == j else (1 if (i + j) % 5 == 0 else 0)) for j in range(classes)]
                                   for i in range(classes)]
    val = {}
    if val_curves:
        val = {"val_step": list(VAL_STEP), "val_loss": [2.58, 2.4, 2.28, 2.17, 2.1, 2.05],
               "val_accuracy": [0.08, 0.15, 0.21, 0.26, 0.29, 0.31]}
    r = {
        "init_loss": ProbeResult("init_loss", metrics={"loss": 2.59, "expected": math.log(classes),
                                                       "classes": classes, "accuracy": 0.08}),
        "overfit_batch": ProbeResult("overfit_batch", metrics={"batch": 16, "steps": 40, "initial_loss": 2.6,
                                                               "final_loss": 0.02, "accuracy": 1.0, "lr": 1e-3},
                                     curves={"loss": [2.6 * math.exp(-k / 8) for k in range(40)]}),
        "lr_range": ProbeResult("lr_range", metrics={"suggested_lr": 3e-3, "configured_lr": 1e-3,
                                                     "min_loss_lr": 0.05, "steps": 40},
                                curves={"lr": lrs, "loss": loss, "smoothed": smooth}),
        "train_dynamics": ProbeResult("train_dynamics", metrics=td_metrics,
                                      curves={"loss": [2.6 - 0.7 * k / 59 for k in range(60)], **val}),
        "zero_input": ProbeResult("zero_input", metrics={"steps": 20, "real_val_loss": 2.2, "real_val_accuracy": 0.25,
                                                         "zero_val_loss": 2.56, "zero_val_accuracy": 0.08}),
        "data_scaling": ProbeResult("data_scaling", metrics={"steps": 30, "rows": [
            {"fraction": f, "samples": int(6400 * f), "train_loss": 1.5, "train_accuracy": 0.5 + 0.1 * f,
             "val_loss": 2.0, "val_accuracy": 0.2 + 0.1 * f} for f in (0.25, 0.5, 1.0)]}),
        "linear_baseline": ProbeResult("linear_baseline", metrics={"val_accuracy": 0.22, "train_samples": 3000,
                                                                   "features": 768}),
    }
    checks = [{"code": "ML004", "name": "duplicates-across-classes", "category": "data", "severity": "error",
               "message": "2 image(s) appear under more than one class",
               "evidence": {"groups": 1, "examples": [{files[0] if files else "a/1.png": names[0],
                                                      "b/1.png": names[1]}]},
               "files": list(files or ["a/1.png", "b/1.png"]), "explanation": "", "fix": ""}]
    data = {"source": "data/synth13", "classes": classes, "class_names": names, "image_shape": [128, 128, 3],
            "train": 6400, "val": 1600, "train_per_class": {n: 492 for n in names},
            "val_per_class": {n: 123 for n in names}, "notes": [], "checks": checks}
    return ProbeReport(results=r, settings={"budget": 60, "seed": 0, "probes": list(r), "batch_size": 32,
                                            "runner": "keras", "device": "cpu"}, data=data, seconds=58.0,
                       step_seconds=0.05)


def probed_report(graph, probes: ProbeReport):
    facts = facts_from_values(8000, len(probes.data["class_names"]), source="--data data/synth13")
    report = run_rules(graph, select_rules(), facts, probes=probe_inputs(probes))
    report.probes = probes
    return report


def section(html: str, sid: str) -> str:
    m = re.search(rf'<(section|li) id="{re.escape(sid)}">(.*?)</\1>', html, re.S)
    assert m, f"no section {sid}"
    return m.group(2)


def cards(html: str) -> list:
    return [c.split("</div>")[0] for c in html.split('<div class="finding')[1:]]


class _Page(HTMLParser):
    """Tags with their attributes, and the text a browser shows."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def assert_offline(html: str) -> None:
    """No scripts, no resource loads (only in-page anchors and rule-page links), no CSS imports."""
    assert not re.search(r"<script", html, re.I), "no scripts at all"
    page = _Page(html)
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "img", "iframe", "object", "embed", "audio", "video", "source",
                           "image", "use", "foreignobject", "meta") or (tag == "meta" and "http-equiv" not in attrs)
        assert "src" not in attrs, (tag, attrs)
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        assert "url(" not in (attrs.get("style") or "")
        href = attrs.get("href")
        if href is not None:
            assert href.startswith("#"), href
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    broken = {h[1:] for h in re.findall(r'href="(#[^"]*)"', html)} - ids
    assert not broken, f"in-page links to no element: {sorted(broken)[:10]}"
    assert "@import" not in html and "url(" not in html


# -- the static report ------------------------------------------------------------------

def test_seed_report_sections_and_ml401(seed_html):
    html = seed_html
    assert html.startswith("<!DOCTYPE html>")
    for sid in STATIC_IDS + PROBE_IDS:
        assert f'id="{sid}"' in html, sid
    assert "Probes did not run" in html
    # header: identity, params, MACs, input, receptive field against the input
    head = section(html, "summary")
    for text in ("examples/seed_cnn.h5", "168,793", "184.0 M MACs", "(None, 128, 128, 3)", "38×38 px",
                 "covers 30%", "8,000 images, 13 classes"):
        assert text in head, text
    # ML401 with its evidence, explanation, a Keras fix snippet and a link to its rule page
    findings = section(html, "findings")
    card = next(c for c in cards(findings) if "<b>ML401</b>" in c)
    assert 'href="#rule-ML401"' in card  # its rule page is part of the report (see test_rule_pages_...)
    for text in ("receptive_field", "[38, 38]", "coverage", "0.297", "[3, 4, 8, 10, 18, 22, 38]",
                 "x = MaxPooling2D()(x)", "global_average_pooling2d_1"):
        assert text in card, text
    recs = section(html, "recommendations")
    assert "ML401" in recs and "Expected effect" in recs and "<pre><code>" in recs


def test_recommendations_follow_the_ranking(seed_report, seed_html):
    recs = section(seed_html, "recommendations")
    codes = re.findall(r"<b>(ML\d{3})</b>", recs)
    ranked = [f.code for f in seed_report.findings if f.severity in ("error", "warning")]
    assert codes == ranked
    assert seed_report.to_html() == seed_html  # same report, same bytes


def test_rule_pages_are_in_the_report(seed_report, seed_html):
    """Every rule link leads to that rule's page at the end of the report (offline, no broken links): the
    docstring's sections as HTML; only the rules the report mentions."""
    linked = set(re.findall(r'href="#(rule-ML\d{3})"', seed_html))
    assert linked == {f"rule-{f.code}" for f in seed_report.findings}
    for anchor in linked:
        assert f'id="{anchor}"' in seed_html, anchor
    page = section(seed_html, "rules")
    assert page.count('<article class="rule"') == len(linked)
    ml401 = re.search(r'<article class="rule" id="rule-ML401">(.*?)</article>', page, re.S).group(1)
    assert "<h4>What it does</h4>" in ml401 and "<h4>Why is this bad</h4>" in ml401 and "<h4>Fix</h4>" in ml401
    assert "Computes the receptive field of the last spatial layer" in ml401
    assert "rule-ML301" not in page  # a rule the seed does not trigger has no page here
    custom = html_report.render([seed_report], rule_base="https://example.org/rules/")
    assert 'href="https://example.org/rules/ML401.md"' in custom and 'id="rules"' not in custom


def test_seed_defects_come_before_training_advice(seed_report):
    """As in ../shared/reference/what-good-output-looks-like.md: the model's own defects (no non-linearity,
    receptive field) before advice on the recipe (pretrained backbone, augmentation)."""
    warned = [f.code for f in seed_report.findings if f.severity == "warning"]
    assert warned[:2] == ["ML201", "ML401"], warned
    assert warned.index("ML503") > 1 and warned.index("ML504") > 1


def test_layer_table_marks_layers_with_findings(seed_html):
    layers = section(seed_html, "layers")
    assert layers.count("<tr id=") == 14
    row = re.search(r'<tr id="L11" class="hit">(.*?)</tr>', layers).group(1)
    assert "conv2d_4" in row and "38×38" in row and "ML401" in row and "73,792" in row
    assert '<tr id="L3">' in layers  # max_pooling2d_1: no finding
    graph = section(seed_html, "graph")
    assert "<svg" in graph and 'class="node hit"' in graph and 'href="#L11"' in graph
    assert "<polyline" in section(seed_html, "charts-rf") and "input 128 px" in section(seed_html, "charts-rf")
    assert "<svg" in section(seed_html, "charts-cost")


def test_no_network_no_script_and_print_css(seed_html):
    assert_offline(seed_html)
    assert "@media print" in seed_html
    assert "<style>" in seed_html


# -- probes ------------------------------------------------------------------------------

def test_probe_sections_render_from_probe_results():
    report = probed_report(load_graph(_seed_path()), fake_probes())
    html = report.to_html()
    assert "Probes did not run" not in html
    for sid in PROBE_IDS:
        body = section(html, sid)
        assert "Not measured" not in body, sid
    lr = section(html, "probe-lr")
    assert "suggested 3e-3" in lr and "configured 1e-3" in lr and "<polyline" in lr
    assert section(html, "probe-training").count("<svg") == 2
    grads = section(html, "probe-gradients")
    assert "conv2d_1" in grads and "dense_1" in grads
    assert "conv2d_4.activation" in section(html, "probe-dead")
    assert "6,400" in section(html, "probe-scaling") and "linear baseline 22%" in section(html, "probe-scaling")
    conf = section(html, "probe-confusion")
    assert conf.count('class="diag"') == 13 and "class_12" in conf
    data = section(html, "data-checks")
    assert "ML004" in data and "a/1.png" in data and "b/1.png" in data
    # probe findings join the ranked list, grounded in measurements
    assert 'class="tag measured"' in section(html, "findings")
    assert_offline(html)


def test_lr_section_says_why_there_is_no_suggestion():
    pr = fake_probes()
    lr = pr.results["lr_range"]
    lr.metrics["suggested_lr"] = None
    lr.notes = ["no suggestion: the sweep had 17 steps, fewer than the 30 a range test needs"]
    text = re.sub(r"<[^>]+>", "", section(probed_report(load_graph(_seed_path()), pr).to_html(), "probe-lr"))
    assert "Suggested learning rate: no suggestion: the sweep had 17 steps, fewer than the 30" in text
    assert "—" not in text.split("Configured")[0]


def test_probe_sections_say_what_is_missing():
    pr = fake_probes(confusion=False)
    pr.results["lr_range"] = ProbeResult("lr_range", status="skipped", notes=["the budget left 2 s"])
    del pr.results["data_scaling"]
    html = probed_report(load_graph(_seed_path()), pr).to_html()
    assert "Not measured: lr_range skipped: the budget left 2 s" in section(html, "probe-lr")
    assert "Not measured: data_scaling" in section(html, "probe-scaling")
    assert "Not measured: train_dynamics recorded validation loss and accuracy but not per-class predictions" \
        in section(html, "probe-confusion")
    for sid in PROBE_IDS:  # every section says it the same way
        assert "not measured" not in section(html, sid), sid


def test_training_chart_draws_the_validation_curve():
    html = probed_report(load_graph(_seed_path()), fake_probes()).to_html()
    training = section(html, "probe-training")
    assert "Training and validation loss (60 steps at lr 0.001)" in training
    assert "validation loss</text>" in training  # its legend entry
    chart = training.split("<svg")[1]
    lines = re.findall(r'<polyline class="line (s\d)" points="([^"]+)"', chart)
    assert [cls for cls, _ in lines] == ["s0", "s1"]  # train loss, validation loss
    val_pts = [tuple(map(float, p.split(","))) for p in lines[1][1].split()]
    train_pts = [tuple(map(float, p.split(","))) for p in lines[0][1].split()]
    assert len(val_pts) == len(VAL_STEP) and len(re.findall(r'<circle class="dot s1"', chart)) == len(VAL_STEP)
    # drawn at val_step: the same x as the training loss of those steps (both indexed from 0)
    assert [x for x, _ in val_pts] == [train_pts[i][0] for i in VAL_STEP]
    assert "validation 2.05" not in chart  # no single end point then
    assert "validation loss measured at 6 points" in training and "validation accuracy 8% → 31%" in training


@pytest.mark.parametrize("curves", [{}, {"val_loss": [2.3, 2.05]}, {"val_loss": [2.3, 2.05], "val_step": [30]}])
def test_training_chart_without_validation_curve_marks_the_final_value(curves):
    pr = fake_probes(val_curves=False)
    pr.results["train_dynamics"].curves.update(curves)  # none, or steps missing / not matching
    training = section(probed_report(load_graph(_seed_path()), pr).to_html(), "probe-training")
    chart = training.split("<svg")[1]
    assert chart.count("<polyline") == 1 and "validation 2.05" in chart
    assert len(re.findall(r'<circle class="dot s1"', chart)) == 1
    assert "at the end of the run" in training


def test_confusion_matrix_from_train_dynamics_metrics():
    conf = [[5, 1, 0], [2, 3, 1], [0, 0, 6]]
    pr = fake_probes(classes=3, confusion=False)
    pr.results["train_dynamics"].metrics["confusion"] = conf
    body = section(probed_report(load_graph(_seed_path()), pr).to_html(), "probe-confusion")
    rows = re.findall(r"<tr><th>(\d) (class_\d\d)</th>(.*?)</tr>", body)
    assert [(i, n) for i, n, _ in rows] == [("0", "class_00"), ("1", "class_01"), ("2", "class_02")]
    cells = [re.findall(r">(\d+)</td>", r) for _, _, r in rows]
    assert cells == [[str(v) for v in row] for row in conf]
    assert body.count('class="diag"') == 3 and "83%" in body and "50%" in body and "100%" in body
    pr.results["train_dynamics"].metrics["confusion"] = [[1, 2], [3]]  # not a square matrix: not drawn
    body = section(probed_report(load_graph(_seed_path()), pr).to_html(), "probe-confusion")
    assert "<table" not in body and "Not measured:" in body


# -- escaping ------------------------------------------------------------------------------

def _keras_archive(path: Path) -> Path:
    """A .keras archive (config only) whose first conv is named <script>alert(1)</script>."""
    def layer(kind, name, inbound, **cfg):
        return {"class_name": kind, "name": name, "config": {"name": name, **cfg},
                "inbound_nodes": [[[i, 0, 0, {}] for i in inbound]] if inbound else []}

    conv_cfg = dict(filters=8, kernel_size=[3, 3], strides=[1, 1], padding="same", activation="linear", use_bias=True)
    layers = [layer("InputLayer", "in", [], batch_shape=[None, 32, 32, 3]),
              layer("Conv2D", EVIL, ["in"], **conv_cfg),
              layer("BatchNormalization", "bn", [EVIL]),
              layer("Conv2D", "conv_b", ["bn"], **conv_cfg),
              layer("GlobalAveragePooling2D", "gap", ["conv_b"]),
              layer("Dense", "head", ["gap"], units=4, activation="softmax")]
    model = {"class_name": "Functional", "config": {"name": "evil", "layers": layers,
                                                    "input_layers": [["in", 0, 0]], "output_layers": [["head", 0, 0]]}}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(model))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
    return path


def test_model_and_data_strings_are_escaped(tmp_path):
    graph = load_graph(str(_keras_archive(tmp_path / "evil.keras")))
    assert EVIL in graph.nodes
    probes = fake_probes(classes=4, class_names=["ok", EVIL_CLASS, EVIL, "c"], files=[EVIL_FILE, EVIL])
    report = probed_report(graph, probes)
    assert any(EVIL in f.layers for f in report.findings), "the evil layer should be named in a finding"
    for html in (report.to_html(), report._repr_html_()):
        assert EVIL not in html
        assert "<script" not in html.lower() and "<img" not in html.lower() and "<b>bold" not in html
        escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
        assert html.count(escaped) >= 5  # table, findings, graph (SVG text and title), class and file names
        assert "&lt;img src=x onerror=alert(2)&gt;" in html
        assert "cats/&lt;b&gt;bold&lt;/b&gt;&#34;quote&#39;.png" in html
        assert escaped in section(html, "graph")  # inside the SVG too
        assert_offline(html)
        shown = "".join(_Page(html).text)  # what a browser displays: the names as text
        assert EVIL in shown and EVIL_CLASS in shown and EVIL_FILE in shown


# -- size and speed -----------------------------------------------------------------------------

def test_500_layer_report_is_small():
    graph = seq(inp(32, 32, 16), *[residual(conv(16, bias=False), bn(), relu()) for _ in range(125)], gap(),
                dense(10, act="softmax"), loss="categorical_crossentropy", optimizer="adam", lr=1e-3)
    assert len(graph.layers()) >= 500
    report = run_rules(graph, select_rules())
    html = report.to_html()  # its render time is benchmarks/bench_html.py's
    size = len(html.encode("utf-8"))
    assert size < 5 * 2**20, size
    assert section(html, "layers").count("<tr id=") == len(graph.layers())
    assert_offline(html)


# -- API and CLI -------------------------------------------------------------------------------

def test_to_html_writes_the_returned_string(seed_report, tmp_path):
    out = tmp_path / "r.html"
    html = seed_report.to_html(out)
    assert out.read_text(encoding="utf-8") == html
    assert html == seed_report.to_html()


def test_repr_html_is_a_fragment(seed_report):
    frag = seed_report._repr_html_()
    assert frag.lstrip().startswith("<style>") and "<html" not in frag and 'class="mlr"' in frag
    assert 'id="recommendations"' in frag


def test_cli_check_html_writes_file_and_prints_text(tmp_path, capsys):
    out = tmp_path / "report.html"
    code = main(["check", _seed_path(), "--samples", "8000", "--classes", "13", "--no-settings",
                 "--no-weights", "--html", str(out)])  # the graph alone, as run_rules below reads it
    assert code == 1  # warnings
    printed = capsys.readouterr().out
    shown = len(re.findall(r"^\S+: ML\d{3} \[", printed, re.M))  # one header line per finding
    assert "ML401 [warning]" in printed and f"\n{shown} findings: " in printed and shown >= 7
    html = out.read_text(encoding="utf-8")
    for sid in STATIC_IDS:
        assert f'id="{sid}"' in html
    assert "ML401" in html
    facts = facts_from_values(8000, 13, source="flags")
    from modellint.dataset import merge

    same = run_rules(load_graph(_seed_path()), select_rules(), merge(None, None, facts))
    assert same.to_html() == html


def test_cli_probe_html(tmp_path, capsys, monkeypatch):
    """`probe --html` writes the probe sections (the probes themselves are faked: no training here)."""
    import numpy as np

    import modellint.probes.api as api

    class _Data:
        y_train, y_val = np.zeros(6400, dtype=np.int64), np.zeros(1600, dtype=np.int64)
        class_names = [f"class_{i:02d}" for i in range(13)]

    def fake_run_probes(model, data, **kwargs):
        return load_graph(model), _Data(), fake_probes()

    monkeypatch.setattr(api, "run_probes", fake_run_probes)
    out = tmp_path / "probe.html"
    code = main(["probe", _seed_path(), "--data", str(tmp_path), "--html", str(out), "--exit-zero"])
    assert code == 0
    assert "ML401 [warning]" in capsys.readouterr().out
    html = out.read_text(encoding="utf-8")
    for sid in PROBE_IDS:
        assert "Not measured" not in section(html, sid), sid
    assert "suggested 3e-3" in section(html, "probe-lr")


def test_cli_html_unwritable(tmp_path, capsys):
    code = main(["check", _seed_path(), "--no-settings", "--html", str(tmp_path / "missing" / "r.html")])
    assert code == 2
    assert "cannot write" in capsys.readouterr().err


def test_render_many_models_keeps_ids_unique(seed_report):
    html = html_report.render([seed_report, seed_report])
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    assert 'id="findings-2"' in html


# -- chart geometry (what the browser review found) ----------------------------------------------

def _texts(svg: str) -> list:
    """(x, y, anchor, text) of every <text> in an SVG string (its <title> dropped)."""
    out = []
    for attrs, body in re.findall(r"<text([^>]*)>(.*?)</text>", svg):
        x, y = (float(re.search(rf' {a}="([-\d.]+)"', attrs).group(1)) for a in ("x", "y"))
        anchor = (re.search(r'text-anchor="(\w+)"', attrs) or [None, "start"])[1]
        out.append((x, y, anchor, re.sub(r"<title>.*?</title>", "", body)))
    return out


def _box(x, y, anchor, text, char_w=6.2):
    import html as h

    w = len(h.unescape(text)) * char_w
    x0 = x - w if anchor == "end" else x - w / 2 if anchor == "middle" else x
    return x0, y - 8, x0 + w, y + 2


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_rf_growth_labels_fit_and_thin_out():
    from modellint.reports import charts

    svg = str(charts.rf_growth([(f"batch_normalization_{i}", 3 + 2 * i, 1, False) for i in range(12)], 128))
    width = float(re.search(r'viewBox="0 0 ([\d.]+)', svg).group(1))
    names = [(float(x), text) for x, text in re.findall(
        r'<text class="small(?: hit)?" x="([\d.]+)" y="[\d.]+" text-anchor="end" transform="rotate\(-40 [^"]+">'
        r'<title>[^<]*</title>([^<]*)</text>', svg)]
    assert len(names) == 12  # every layer labelled, each slanted name ending at its tick
    for x, text in names:
        assert len(text) <= 18
        # a name slanted at 40° reaches len * 6.2 * cos(40°) to the left of its end: inside the chart
        assert x - len(text) * 6.2 * math.cos(math.radians(40)) >= 0 and x <= width
    # middle ellipsis keeps the layer's number
    assert all(text.endswith(f"_{i}") and "…" in text for i, (_, text) in enumerate(names))
    many = str(charts.rf_growth([(f"act_{i}", i + 1, 1, False) for i in range(500)], 32))
    xs = [float(x) for x in re.findall(r'<text class="small" x="([\d.]+)" y="[\d.]+" text-anchor="end" '
                                       r'transform="rotate', many)]
    assert 10 <= len(xs) <= 30 and all(b - a >= 27.9 for a, b in zip(xs, xs[1:]))
    assert ">act_499</text>" in many and "one layer in" in many
    # the input and half lines are 8 px apart here: one label for both, no overlap
    assert "input 32 px; dotted: half of it" in many and "half the input" not in many


def test_rf_growth_half_label_clear_of_input_label():
    from modellint.reports import charts

    for inp_size, rf_max in ((32, 253), (32, 120), (64, 150), (128, 90)):
        svg = str(charts.rf_growth([(f"c{i}", 3 + (rf_max - 3) * i / 9, 1, False) for i in range(10)], inp_size))
        t = {x[3]: x for x in _texts(svg)}
        a = next(v for k, v in t.items() if k.startswith(f"input {inp_size} px"))
        b = t.get("half the input")
        if b is None:  # the lines are too close for two labels: one names both
            assert a[3] == f"input {inp_size} px; dotted: half of it"
        else:
            pa = _box(*a)
            assert not _overlap((pa[0] - 3, pa[1] - 3, pa[2] + 3, pa[3] + 3), _box(*b)), (a, b)  # not crowded


def test_line_chart_labels_do_not_collide():
    from modellint.reports import charts

    loss = [2.6 - 0.02 * k for k in range(60)]
    svg = str(charts.line_chart([{"name": "train loss", "x": list(range(60)), "y": loss}],
                                points=[(59, 2.577, "validation 2.577", "s1")],
                                hlines=[(2.565, "ln C = 2.565", "ref")], width=520))
    t = {x[3]: x for x in _texts(svg)}
    assert not _overlap(_box(*t["validation 2.577"]), _box(*t["ln C = 2.565"]))
    # data-scaling: the validation line passes above the linear-baseline line; its label keeps clear
    html = probed_report(load_graph(_seed_path()), fake_probes()).to_html()
    chart = section(html, "probe-scaling").split("<svg")[1].split("</svg>")[0]
    t = {x[3]: x for x in _texts(chart)}
    val = re.search(r'<polyline class="line s0" points="([^"]+)"', chart).group(1)
    pts = [tuple(map(float, p.split(","))) for p in val.split()]
    x0, y0, x1, y1 = _box(*t["linear baseline 22%"])
    for (ax, ay), (bx, by) in zip(pts, pts[1:]):
        for k in range(21):  # sample the segment
            px, py = ax + (bx - ax) * k / 20, ay + (by - ay) * k / 20
            assert not (x0 <= px <= x1 and y0 <= py <= y1), (px, py)
    assert not _overlap(_box(*t["linear baseline 22%"]), _box(*t["chance 8%"]))


def test_log_bars_give_the_smallest_value_a_length():
    from modellint.reports import charts

    svg = str(charts.bars(["a", "b", "c"], [{"title": "g", "values": [1e-5, 3e-4, 0.1], "log": True},
                                            {"title": "u", "values": [2e-5, 3e-5, 5e-5], "log": True,
                                             "ref": 1e-3}]))
    widths = [float(w) for w in re.findall(r'<rect class="bar s\d" x="[\d.]+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert len(widths) == 6 and min(widths) >= 20, widths
    ref_x = float(re.search(r'<line class="ref" x1="([\d.]+)"', svg).group(1))
    assert ref_x <= 680  # the reference line is inside its panel


def test_rf_box_label_outside_a_small_box():
    from modellint.reports import charts

    small = str(charts.rf_box([38, 38], [128, 128]))
    rw = float(re.search(r'<rect class="rf" x="1" y="1" width="([\d.]+)"', small).group(1))
    x, *_ = next(t for t in _texts(small) if t[3].startswith("RF"))
    assert x >= rw + 1 + 2  # beside the square, not spilling out of it
    big = str(charts.rf_box([100, 100], [128, 128]))
    x, *_ = next(t for t in _texts(big) if t[3].startswith("RF"))
    assert x < 10  # inside the square


def test_columns_stay_inside_the_plot():
    from modellint.reports import charts

    for n in (61, 251, 997, 2000):
        svg = str(charts.columns([f"l{i}" for i in range(n)], [{"title": "p", "values": [1.0] * n}]))
        ends = [float(x) + float(w) for x, w in re.findall(r'<rect class="bar s0" x="([\d.]+)" y="[\d.]+" '
                                                           r'width="([\d.]+)"', svg)]
        assert len(ends) == n and max(ends) <= 680 - 8 + 1e-6, (n, max(ends))


def test_graph_text_and_training_charts_keep_10px():
    from modellint.reports import charts

    nodes = [{"name": f"n{i}", "type": "Conv2D", "codes": []} for i in range(200)]
    big = str(charts.graph_diagram(nodes, [(i, i + 1) for i in range(199)]))
    assert 'class="tiny"' not in big and big.count('<text class="small"') == 200
    html = probed_report(load_graph(_seed_path()), fake_probes()).to_html()
    training = section(html, "probe-training")
    # natively as wide as the column they get side by side, so the browser does not shrink their text
    assert training.count('viewBox="0 0 520 ') == 2
    assert ".mlr svg .edge{stroke:#667" in html


# -- the weights block (issue 14): one builder for JSON, text and HTML ------------------------------

TRAINED = ROOT / "examples" / "fashion_cnn_trained.keras"


def _trained_path() -> str:
    rel = os.path.relpath(TRAINED)
    return str(TRAINED) if rel.startswith("..") else rel


def _planted_copy(tmp_path, change) -> Path:
    """A copy of the trained .keras with ``change(h5 file)`` applied to its model.weights.h5
    (h5py on the zip's member: no Keras needed)."""
    import h5py

    src, dst = zipfile.ZipFile(TRAINED), tmp_path / "planted.keras"
    raw = tmp_path / "model.weights.h5"
    raw.write_bytes(src.read("model.weights.h5"))
    with h5py.File(raw, "r+") as f:
        change(f)
    with zipfile.ZipFile(dst, "w") as z:
        for name in src.namelist():
            z.writestr(name, raw.read_bytes() if name == "model.weights.h5" else src.read(name))
    return dst


def _kernel(f, shape):
    """The one kernel of ``shape`` in a Keras 3 weights file."""
    found = []
    f.visititems(lambda n, o: found.append(o) if getattr(o, "shape", None) == shape else None)
    assert len(found) == 1, shape
    return found[0]


def _check_json(capsys, path, *extra) -> dict:
    assert main(["check", str(path), "--format", "json", "--exit-zero", *extra]) == 0
    return json.loads(capsys.readouterr().out)["reports"][0]


def test_json_weights_block_equals_model_alpha(capsys):
    from modellint import analyze
    from modellint.rules.spectral import model_alpha

    block = _check_json(capsys, _trained_path())["weights"]
    truth = model_alpha(analyze(_trained_path()).weights)
    assert block["source"] == _trained_path()
    assert block["average_alpha"] == pytest.approx(truth["average_alpha"], rel=1e-12)
    fitted = {n: v["alpha"] for n, v in truth["layers"].items() if v.get("alpha") is not None}
    assert len(fitted) >= 2
    assert {n: v["alpha"] for n, v in block["layers"].items() if v["alpha"] is not None} == pytest.approx(fitted)
    assert 2 <= block["average_alpha"] <= 6  # trained to convergence: inside the healthy band
    for name, v in block["layers"].items():
        assert set(v) >= {"alpha", "dead_units", "units", "init", "nonfinite"}
        assert v["dead_units"] == 0 and v["nonfinite"] == 0 and v["init"] is None, name
    # the units are the layers' widths in the file: conv 32/64/128/64, dense 10
    assert sorted(v["units"] for v in block["layers"].values() if v["role"] != "batchnorm") == [10, 32, 64, 64, 128]
    assert block["at_init"] is False


def test_json_weights_block_counts_planted_faults(tmp_path, capsys):
    import numpy as np

    def change(f):
        k = _kernel(f, (3, 3, 32, 64))  # the 64-filter conv
        k[..., :8] = 0
        k2 = _kernel(f, (3, 3, 64, 128))
        a = k2[...]
        a[0, 0, :3, 5] = np.nan
        k2[...] = a

    block = _check_json(capsys, _planted_copy(tmp_path, change))["weights"]
    dead = {n: v for n, v in block["layers"].items() if v["dead_units"]}
    assert [(v["dead_units"], v["units"]) for v in dead.values()] == [(8, 64)]
    bad = {n: v["nonfinite"] for n, v in block["layers"].items() if v["nonfinite"]}
    assert list(bad.values()) == [3] and block["layers"][next(iter(bad))]["units"] == 128
    assert block["dead_units"] == 8 and block["nonfinite"] == 3


def test_weights_null_without_weights(capsys):
    rep = _check_json(capsys, _trained_path(), "--no-weights")
    assert rep["weights"] is None
    g = seq(inp(32, 32, 3), conv(8, 3), relu(), gap(), dense(10))
    report = run_rules(g, select_rules())
    assert report.to_dict()["weights"] is None
    assert "weights:" not in report.to_text()
    assert 'id="weights"' not in html_report.render([report])


def test_text_weights_line(capsys):
    assert main(["check", _trained_path()]) in (0, 1)
    out = capsys.readouterr().out.splitlines()
    line = next(ln for ln in out if ln.strip().startswith("weights:"))
    assert out.index(line) == 1  # right under the header
    assert re.fullmatch(r"\s+weights: 9 layers read · average α 2\.\d\d \(healthy 2–6\) · 0 dead units", line), line
    assert "at initialisation" not in line


def test_text_weights_line_says_untrained_seed(capsys):
    """The seed is saved before training: ML966 says so, and so does the weights line."""
    seed_keras = ROOT / "examples" / "seed_cnn.keras"
    assert main(["check", str(seed_keras), "--exit-zero"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("weights:"))
    assert line.endswith("· at initialisation") and "ML966" in out


def test_html_weights_section_iff_weights(tmp_path, capsys):
    with_w, without = tmp_path / "w.html", tmp_path / "n.html"
    main(["check", _trained_path(), "--html", str(with_w)])
    main(["check", _trained_path(), "--no-weights", "--html", str(without)])
    capsys.readouterr()
    page, bare = with_w.read_text(encoding="utf-8"), without.read_text(encoding="utf-8")
    assert 'id="weights"' not in bare and 'class="band"' not in bare
    sec = page[page.index('<section id="weights">'):]
    sec = sec[: sec.index("</section>")]
    # after the layer table, before the end of the model
    assert page.index('id="layers"') < page.index('id="weights"')
    assert "average α 2." in sec and "healthy 2–6" in sec
    svg = sec[sec.index("<svg"): sec.index("</svg>")]
    # one α bar per fitted layer, with its value; the healthy band shaded once; a dead-unit bar per kernel
    block = json.loads(__import__("modellint").analyze(_trained_path()).to_json())["weights"]
    fitted = {n: v["alpha"] for n, v in block["layers"].items() if v["alpha"] is not None}
    for name, a in fitted.items():
        assert f"<title>{name}: {a:.2f}</title>" in svg
    assert svg.count('class="band"') == 1
    assert svg.count('class="bar s1"') == sum(v["role"] != "batchnorm" for v in block["layers"].values())
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    # deterministic: the same bytes again
    again = tmp_path / "w2.html"
    main(["check", _trained_path(), "--html", str(again)])
    capsys.readouterr()
    assert again.read_text(encoding="utf-8") == page


def test_example_report_is_small_and_shows_the_weights():
    """examples/fashion_cnn_trained_report.html: check --html of the trained example, with its
    weights section and the α of each fitted layer as the analysis gives it today."""
    from modellint import analyze
    from modellint.rules.spectral import model_alpha

    shipped = ROOT / "examples" / "fashion_cnn_trained_report.html"
    assert shipped.stat().st_size < 300_000
    page = shipped.read_text(encoding="utf-8")
    assert page.count('<section id="weights">') == 1 and "<script" not in page
    truth = model_alpha(analyze(str(TRAINED)).weights)
    assert f"average α {truth['average_alpha']:.2f}" in page
    for name, v in truth["layers"].items():
        if v.get("alpha") is not None:
            assert f"<title>{name}: {v['alpha']:.2f}</title>" in page
