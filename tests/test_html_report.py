"""The HTML report: sections, findings with evidence and fixes, probe charts, escaping of
everything that comes from a model or data file, no network loads and no scripts, size of a
500-layer model's report, the CLI's --html and the Report API. Fast; no browser."""

from __future__ import annotations

import json
import math
import os
import re
import time
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


def fake_probes(classes=13, confusion=True, class_names=None, files=None) -> ProbeReport:
    """Probe results shaped as the suite writes them, with curves, for the seed model's layers."""
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
                                      curves={"loss": [2.6 - 0.7 * k / 59 for k in range(60)]}),
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
            assert href.startswith("#") or re.fullmatch(r"rules/ML\d{3}\.md", href), href
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
    assert 'href="rules/ML401.md"' in card
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


def test_probe_sections_say_what_is_missing():
    pr = fake_probes(confusion=False)
    pr.results["lr_range"] = ProbeResult("lr_range", status="skipped", notes=["the budget left 2 s"])
    del pr.results["data_scaling"]
    html = probed_report(load_graph(_seed_path()), pr).to_html()
    assert "Not measured: lr_range skipped: the budget left 2 s" in section(html, "probe-lr")
    assert "Not measured: data_scaling" in section(html, "probe-scaling")
    assert "not measured" in section(html, "probe-confusion")


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

def test_500_layer_report_is_small_and_fast():
    graph = seq(inp(32, 32, 16), *[residual(conv(16, bias=False), bn(), relu()) for _ in range(125)], gap(),
                dense(10, act="softmax"), loss="categorical_crossentropy", optimizer="adam", lr=1e-3)
    assert len(graph.layers()) >= 500
    report = run_rules(graph, select_rules())
    t = time.perf_counter()
    html = report.to_html()
    elapsed = time.perf_counter() - t
    size = len(html.encode("utf-8"))
    assert size < 5 * 2**20, size
    assert elapsed < 10, elapsed
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
                 "--html", str(out)])
    assert code == 1  # warnings
    printed = capsys.readouterr().out
    assert "ML401 [warning]" in printed and "7 findings" in printed
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
