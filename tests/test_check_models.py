"""Rules on real models: the seed, its fixed variant, and every keras.applications model."""

import gzip
import json
from pathlib import Path

import pytest

from conftest import EXAMPLES, FIXTURES, run_cli
from modellint import analyze
from modellint.adapters.keras_config import graph_from_config

SEED_DATA = {"samples": 8000, "classes": 13}


def codes(report):
    return {f.code for f in report.findings}


def test_seed_findings():
    for path in ("seed_cnn.h5", "seed_cnn.keras"):
        r = analyze(EXAMPLES / path, dataset=SEED_DATA)
        found = {f.code: f for f in r.findings}
        # the receptive-field gap: 38 of 128 px at the last conv
        assert found["ML401"].evidence["receptive_field"] == [38, 38]
        assert found["ML401"].layers == ["conv2d_4"]
        # no non-linearity between the (linear) convs
        assert {"conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4"} <= set(found["ML201"].layers)
        # BatchNorm on the raw input
        assert found["ML101"].layers == ["batch_normalization_1"]
        # channels 128 -> 64 right before the head
        assert found["ML502"].evidence["before"] == 128 and found["ML502"].evidence["after"] == 64
        # small dataset advice: 8,000 images from scratch, no augmentation
        assert found["ML503"].evidence["per_class"] == round(8000 / 13)
        assert "ML504" in found
        # bias cancelled by the following BatchNorm: conv2d_1..3, 32 + 64 + 128 parameters
        assert found["ML102"].evidence["wasted_params"] == 32 + 64 + 128
        assert not r.errors


def test_fixed_seed_has_neither_rf_gap_nor_missing_nonlinearity():
    for path in ("seed_cnn_fixed.h5", "seed_cnn_fixed.keras"):
        r = analyze(EXAMPLES / path, dataset=SEED_DATA)
        assert not codes(r) & {"ML401", "ML201", "ML101", "ML102", "ML502", "ML504"}, codes(r)


def test_check_cli_exit_codes_and_formats(tmp_path):
    seed = EXAMPLES / "seed_cnn.h5"
    r = run_cli("check", seed, "--samples", "8000", "--classes", "13")
    assert r.returncode == 1 and "ML401" in r.stdout and "conv2d_4" in r.stdout
    assert run_cli("check", seed, "--exit-zero").returncode == 0
    assert run_cli("check", seed, "--fail-on", "error").returncode == 0
    assert run_cli("check", seed, "--select", "ML95").returncode == 0  # efficiency notes are info only
    r = run_cli("check", seed, "--format", "json", "--select", "receptive-field")
    data = json.loads(r.stdout)
    assert {f["code"] for f in data["reports"][0]["findings"]} == {"ML401"}
    out = tmp_path / "report.sarif"
    r = run_cli("check", seed, "--format", "sarif", "--output-file", out)
    assert r.stdout == "" and json.loads(out.read_text())["version"] == "2.1.0"
    r = run_cli("check", seed, "--ignore", "ML4,activation", "--format", "json")
    got = {f["code"] for f in json.loads(r.stdout)["reports"][0]["findings"]}
    assert not any(c.startswith("ML4") or c.startswith("ML2") for c in got)


def test_check_directory_and_glob():
    r = run_cli("check", EXAMPLES, "--format", "json", "--exit-zero")
    paths = {rep["model"]["path"] for rep in json.loads(r.stdout)["reports"]}
    assert {Path(p).name for p in paths} == {"seed_cnn.h5", "seed_cnn.keras", "seed_cnn_fixed.h5",
                                            "seed_cnn_fixed.keras", "fashion_cnn_trained.keras"}
    r = run_cli("check", str(EXAMPLES / "seed_cnn*.keras"), "--format", "json", "--exit-zero")
    assert len(json.loads(r.stdout)["reports"]) == 2


def test_explain_lists_skipped_rules():
    r = run_cli("check", EXAMPLES / "seed_cnn.h5", "--explain", "--exit-zero")
    assert "ML301" in r.stdout and "--classes" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["--select", "ML999"], "not a rule code"),
    (["--samples", "-5"], "positive"),
    (["--image-size", "big"], "HxW"),
    (["--settings", "missing.toml"], "no such file"),
])
def test_bad_configuration_is_one_line_exit_2(args, message, tmp_path):
    r = run_cli("check", EXAMPLES / "seed_cnn.h5", *args, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_pyproject_configuration(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.modellint]\nselect = ["ML4", "capacity"]\nignore = ["ML502"]\n'
        'dataset = { samples = 8000, classes = 13, image_size = [128, 128] }\n')
    r = run_cli("check", EXAMPLES / "seed_cnn.h5", "--format", "json", cwd=tmp_path)
    rep = json.loads(r.stdout)["reports"][0]
    assert {f["code"] for f in rep["findings"]} == {"ML401", "ML503"}
    assert rep["dataset"]["samples"] == 8000
    (tmp_path / "pyproject.toml").write_text('[tool.modellint]\nselcet = ["ML4"]\n')
    r = run_cli("check", EXAMPLES / "seed_cnn.h5", cwd=tmp_path)
    assert r.returncode == 2 and "unknown key" in r.stderr


def test_data_folder_is_counted(tmp_path):
    import struct
    import zlib

    def png(path, w, h):
        raw = b"".join(b"\x00" + b"\x00\x00\x00" * w for _ in range(h))
        chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                         + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

    for c in range(3):
        d = tmp_path / "data" / f"class{c}"
        d.mkdir(parents=True)
        for i in range(4):
            png(d / f"{i}.png", 96, 64)
    r = run_cli("check", EXAMPLES / "seed_cnn.h5", "--data", tmp_path / "data", "--format", "json")
    rep = json.loads(r.stdout)["reports"][0]
    assert rep["dataset"]["samples"] == 12 and rep["dataset"]["classes"] == 3
    assert rep["dataset"]["image_size"] == [64, 96]
    found = {f["code"]: f for f in rep["findings"]}
    assert found["ML301"]["evidence"] == {"units": 13, "classes": 3, "task": "multiclass"}
    assert found["ML901"]["evidence"]["images"] == [64, 96]


# Every warning the keras.applications models get, with the reason it is right.
# (No model may get an error.)
EXPECTED_APP_WARNINGS = {
    # Keras' ResNet v1 convs keep use_bias=True although every one feeds a BatchNorm.
    ("ResNet50", "ML102"), ("ResNet101", "ML102"), ("ResNet152", "ML102"),
    # (ResNet v1's and NASNet's strided 1x1 downsampling inside merging blocks is an ML402 *info*: a published
    # trade-off; Xception's exit flow passes an add between its two separable convs, so ML201 does not chain it.)
    # VGG's fc1 reads a flattened 7x7x512 map: 102.8 M of 138 M (VGG16) parameters.
    ("VGG16", "ML404"), ("VGG19", "ML404"),
}


def test_keras_applications_precision():
    seen = set()
    for path in sorted((FIXTURES / "keras_apps").glob("*.json.gz")):
        name = path.name.split(".")[0]
        graph = graph_from_config(json.loads(gzip.decompress(path.read_bytes()))["keras_config"])
        r = analyze(graph)
        assert not r.errors, (name, r.errors)
        assert not [f for f in r.findings if f.severity == "error"], name
        for f in r.findings:
            if f.severity == "warning":
                assert (name, f.code) in EXPECTED_APP_WARNINGS, (name, f.code, f.message)
                seen.add((name, f.code))
    assert seen == EXPECTED_APP_WARNINGS
