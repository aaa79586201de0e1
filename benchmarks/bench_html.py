"""HTML report size and browser render time (issue: "The report of a 500-layer model stays
under 5 MB and renders in the browser in under 3 s").

Prints, all measured in this run on this machine:
  * a generated 500-layer model (125 residual conv/BN/ReLU blocks, the model of
    tests/test_html_report.py): report size in MB, Python time to write it, and its render
    time in headless Chromium: wall time of the page load (until document.readyState is
    "complete") plus a forced layout, and navigationStart -> loadEventEnd from the
    Navigation Timing API; median of 3 loads, each from about:blank
  * the same figures for examples/seed_cnn.h5's report (baseline)
Targets: 500-layer report < 5 MB; render < 3 s.
Needs chromium and chromedriver (Debian packages chromium, chromium-driver) and selenium;
without them the render times are reported as not measured.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ROOT, report  # noqa: E402

sys.path.insert(0, str(ROOT))
SEED = ROOT / "examples" / "seed_cnn.h5"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking")
LOADS = 3


def deep_model(blocks: int = 125):
    from modellint.build import bn, conv, dense, gap, inp, relu, residual, seq

    return seq(inp(32, 32, 16), *[residual(conv(16, bias=False), bn(), relu()) for _ in range(blocks)], gap(),
               dense(10, act="softmax"), loss="categorical_crossentropy", optimizer="adam", lr=1e-3)


def write_reports(tmp: Path) -> list:
    """[(label, path, layers, seconds to build and write the HTML)]"""
    from modellint import load_graph
    from modellint.dataset import facts_from_values
    from modellint.engine import run_rules, select_rules

    out = []
    seed = load_graph(str(SEED))
    deep = deep_model()
    for label, graph, facts in (("seed_cnn.h5", seed, facts_from_values(8000, 13, source="flags")),
                                (f"{len(deep.layers())}-layer model", deep, None)):
        path = tmp / (label.split(".")[0].replace(" ", "_") + ".html")
        t0 = time.perf_counter()
        run_rules(graph, select_rules(), facts).to_html(path)
        out.append((label, path, len(graph.layers()), time.perf_counter() - t0))
    return out


def start_chromium():
    chromium, driver_bin = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not chromium or not driver_bin:
        return None, "chromium / chromedriver not installed"
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None, "selenium not installed"
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_bin), options=opts)
    driver.set_page_load_timeout(120)
    driver.set_window_size(1280, 900)
    return driver, ""


def render_times(driver, path: Path) -> tuple:
    """Median over LOADS of (wall s: load + forced layout, navigationStart -> loadEventEnd s)."""
    walls, navs = [], []
    url = path.resolve().as_uri()
    for _ in range(LOADS):
        driver.get("about:blank")
        t0 = time.perf_counter()
        driver.get(url)  # returns once document.readyState is "complete"
        state = driver.execute_script(
            "document.body.getBoundingClientRect(); void document.documentElement.scrollHeight;"
            "return document.readyState")
        walls.append(time.perf_counter() - t0)
        assert state == "complete", state
        t = driver.execute_script("const t = performance.timing; return t.loadEventEnd - t.navigationStart")
        navs.append(t / 1000)
    return statistics.median(walls), statistics.median(navs)


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="modellint-bench-html-"))
    pages = write_reports(tmp)
    driver, why = start_chromium()
    rows = []
    try:
        for label, path, n_layers, gen in pages:
            mb = path.stat().st_size / 2**20
            target = "   target < 5" if label != "seed_cnn.h5" else ""
            rows.append((f"{label}: report size (MB)", f"{mb:.3f}{target}"))
            rows.append((f"{label}: check + write HTML (s)", f"{gen:.3f}   ({n_layers} layers)"))
            if driver is None:
                rows.append((f"{label}: render in Chromium", f"not measured ({why})"))
                continue
            wall, nav = render_times(driver, path)
            target = "   target < 3" if label != "seed_cnn.h5" else ""
            rows.append((f"{label}: load + layout, wall (s)", f"{wall:.3f}{target}   (median of {LOADS})"))
            rows.append((f"{label}: navigationStart -> loadEventEnd (s)", f"{nav:.3f}"))
    finally:
        if driver is not None:
            driver.quit()
    print("HTML report size and render time (headless Chromium)")
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
