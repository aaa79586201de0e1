"""`modellint probe` on bad data, through the CLI.

Where nothing can run (no such path, an empty folder, images without class sub-folders,
class folders without images, only unreadable images, an .npz that is not images with
labels, a single class, a model whose input is not an image): exit 2 and one line on
stderr naming the folder or file and the problem, never a traceback. Where something can
run (some unreadable images, grey 28x28 images for a 32x32 RGB model): findings, not
an error. In every case no file in the data folder is changed, added or removed.

The fatal cases fail before any training, so each is a fresh ``python -m modellint`` of
about a second; the two cases that train run in this process (one TensorFlow import).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, keras_only, run_cli

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

pytestmark = keras_only


# -- data and models -------------------------------------------------------------------------

def _png(path: Path, seed: int, size=(20, 20), grey=False):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size if grey else (*size, 3), dtype=np.uint8)).save(path)


def _classes(root: Path, names=("a", "b"), per_class=6, **kw) -> Path:
    for c, name in enumerate(names):
        for i in range(per_class):
            _png(root / name / f"{i}.png", 100 * c + i, **kw)
    return root


def _make(root: Path, case: str) -> Path:
    """The data for ``case`` under ``root``; returns the path passed to --data."""
    rng = np.random.default_rng(0)
    if case == "missing":
        root.mkdir(parents=True)
        return root / "no_such_folder"
    if case == "empty":
        root.mkdir(parents=True)
        return root
    if case == "flat":  # images, but directly in the folder
        for i in range(6):
            _png(root / f"{i}.png", i)
        return root
    if case == "no_images":  # class folders holding no image files
        for name in ("a", "b"):
            (root / name).mkdir(parents=True)
            (root / name / "readme.txt").write_text("no images here")
        return root
    if case == "all_unreadable":
        for name in ("a", "b"):
            (root / name).mkdir(parents=True)
            (root / name / "x.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
            (root / name / "y.jpg").write_bytes(b"")
        return root
    if case == "single_class":
        return _classes(root, names=("only",))
    if case == "single_class_npz":
        root.mkdir(parents=True)
        np.savez(root / "d.npz", x=rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8), y=np.zeros(20, np.int64))
        return root / "d.npz"
    if case == "npz_without_xy":
        root.mkdir(parents=True)
        np.savez(root / "d.npz", images=np.zeros((4, 8, 8), np.uint8), labels=np.arange(4))
        return root / "d.npz"
    if case == "npz_not_images":
        root.mkdir(parents=True)
        np.savez(root / "d.npz", x=rng.random((20, 10)).astype(np.float32), y=np.arange(20) % 2)
        return root / "d.npz"
    if case == "npz_garbage":
        root.mkdir(parents=True)
        (root / "d.npz").write_bytes(b"this is not a zip archive")
        return root / "d.npz"
    if case == "not_a_dataset":
        root.mkdir(parents=True)
        (root / "notes.txt").write_text("hello")
        return root / "notes.txt"
    if case == "some_unreadable":
        _classes(root)
        (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
        (root / "b" / "empty.jpg").write_bytes(b"")
        return root
    if case == "grey28":
        return _classes(root, per_class=8, size=(28, 28), grey=True)
    raise KeyError(case)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import keras
    from keras import layers

    d = tmp_path_factory.mktemp("bad_data_models")

    def save(name, shape, image=True):
        inp = keras.Input(shape)
        h = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3, activation="relu")(inp)) if image else \
            layers.Dense(8, activation="relu")(inp)
        model = keras.Model(inp, layers.Dense(2, activation="softmax")(h))
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        model.save(d / f"{name}.keras")
        return str(d / f"{name}.keras")

    return {"cnn16": save("cnn16", (16, 16, 3)), "cnn32": save("cnn32", (32, 32, 3)),
            "vector": save("vector", (10,), image=False), "rgba": save("rgba", (16, 16, 4))}


def snapshot(root: Path) -> dict:
    """Every file and folder under ``root``: content hash, size and mtime of files."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root) + "/"] = "dir"
        for name in filenames:
            p = Path(dirpath) / name
            st = p.stat()
            out[p.relative_to(root).as_posix()] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_size,
                                                    st.st_mtime_ns)
    return out


def _cli(model, data, cache):
    return run_cli("probe", model, "--data", data, "--budget", 5, "--probes", "init_loss", "--no-cache",
                   "--quiet", env={"MODELLINT_CACHE_DIR": str(cache), "MODELLINT_DEBUG": ""})


# -- nothing can run: exit 2, one line ---------------------------------------------------------

#: case -> words the error line must hold (besides the path)
FATAL = {
    "missing": "no such folder",
    "empty": "no class sub-folders",
    "flat": "no class sub-folders",
    "no_images": "no images",
    "all_unreadable": "could be read",
    "npz_without_xy": "'x' and 'y'",
    "npz_not_images": "images",
    "not_a_dataset": "expected a folder of class sub-folders",
}


@pytest.fixture(scope="module")
def fatal_runs(models, tmp_path_factory):
    """Each FATAL case run once: case -> (data path, completed process, snapshot before, after)."""
    runs = {}
    for case in FATAL:
        root = tmp_path_factory.mktemp(case)
        data = _make(root / "data", case)
        before = snapshot(root)
        r = _cli(models["cnn16"], data, root / "cache")
        runs[case] = (data, r, before, snapshot(root))
    return runs


@pytest.mark.parametrize("case", list(FATAL))
def test_nothing_can_run_exits_2_with_one_line(case, fatal_runs):
    data, r, before, after = fatal_runs[case]
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert str(data) in lines[0] and FATAL[case] in lines[0], lines[0]
    assert r.stdout == ""
    assert after == before  # nothing written next to or inside the data (no cache there either)


def test_bad_data_is_a_user_error_not_an_internal_one(fatal_runs):
    lines = {case: r.stderr.strip() for case, (_, r, _, _) in fatal_runs.items()}
    wrong = {case: line for case, line in lines.items()
             if not line.startswith("modellint: error: ") or "internal error" in line or "please report" in line}
    assert not wrong, wrong


def test_model_input_not_an_image_exits_2(models, tmp_path):
    data = _make(tmp_path / "data", "grey28")
    before = snapshot(tmp_path / "data")
    r = _cli(models["vector"], data, tmp_path / "cache")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("modellint: error: ") and models["vector"] in lines[0], lines[0]
    assert "image input" in lines[0] and "(None, 10)" in lines[0], lines[0]
    assert snapshot(tmp_path / "data") == before


def test_model_input_with_four_channels_exits_2(models, tmp_path):
    data = _make(tmp_path / "data", "grey28")
    r = _cli(models["rgba"], data, tmp_path / "cache")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("modellint: error: ") and models["rgba"] in lines[0] and "4" in lines[0], lines[0]


def test_npz_that_is_not_an_archive_exits_2_naming_it(models, tmp_path):
    data = _make(tmp_path / "data", "npz_garbage")
    r = _cli(models["cnn16"], data, tmp_path / "cache")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("modellint: error: ") and str(data) in lines[0], lines[0]


@pytest.mark.parametrize("case", ["single_class", "single_class_npz"])
def test_single_class_exits_2(case, models, tmp_path, capsys, monkeypatch):
    from modellint.cli import main

    data = _make(tmp_path / "data", case)
    before = snapshot(tmp_path / "data")
    monkeypatch.setenv("MODELLINT_CACHE_DIR", str(tmp_path / "cache"))
    capsys.readouterr()
    rc = main(["probe", models["cnn16"], "--data", str(data), "--budget", "5", "--probes", "init_loss",
               "--no-cache", "--quiet"])  # in this process: when it does train, no second TensorFlow import
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert snapshot(tmp_path / "data") == before
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, (rc, err)
    assert lines[0].startswith("modellint: error: ") and str(data) in lines[0] and "class" in lines[0], lines[0]


# -- something can run: findings, not an error ----------------------------------------------------

def _probe_in_process(model, data, cache, capsys, monkeypatch):
    from modellint.cli import main

    monkeypatch.setenv("MODELLINT_CACHE_DIR", str(cache))
    capsys.readouterr()
    rc = main(["probe", model, "--data", str(data), "--budget", "10", "--probes", "init_loss,overfit_batch",
               "--no-cache", "--quiet", "--format", "json"])
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "modellint:" not in out.err, out.err  # --quiet: no progress, no error
    report = json.loads(out.out)["reports"][0]
    return rc, report, {f["code"]: f for f in report["findings"]}


def test_some_unreadable_images_are_a_finding(models, tmp_path, capsys, monkeypatch):
    data = _make(tmp_path / "data", "some_unreadable")
    before = snapshot(data)
    rc, report, found = _probe_in_process(models["cnn16"], data, tmp_path / "cache", capsys, monkeypatch)
    assert snapshot(data) == before
    assert rc == 1  # ML002 is a warning
    bad = found["ML002"]
    assert bad["severity"] == "warning" and "2 of 14" in bad["message"], bad
    assert set(bad["evidence"]["errors"]) == {"a/broken.png", "b/empty.jpg"}
    assert report["probes"]["results"]["overfit_batch"]["status"] == "ok"  # the 12 good images trained
    assert report["probes"]["data"]["train"] + report["probes"]["data"]["val"] == 12


def test_grey_28px_images_for_an_rgb_32px_model_are_converted_with_findings(models, tmp_path, capsys,
                                                                            monkeypatch):
    data = _make(tmp_path / "data", "grey28")
    before = snapshot(data)
    rc, report, found = _probe_in_process(models["cnn32"], data, tmp_path / "cache", capsys, monkeypatch)
    assert snapshot(data) == before
    assert rc == 1
    assert found["ML007"]["severity"] == "warning" and "greyscale" in found["ML007"]["message"]  # grey -> RGB
    assert found["ML006"]["evidence"]["most_common"] == "28x28" and found["ML006"]["evidence"]["model_input"] == \
        "32x32"  # resized
    notes = report["probes"]["data"]["notes"]
    assert any("grey->RGB: 16" in n for n in notes) and any("resized to 32x32" in n for n in notes), notes
    assert report["probes"]["results"]["overfit_batch"]["status"] == "ok"


@pytest.mark.parametrize("module, args, hint", [
    ("PIL", ["data", "synth", "{tmp}/out", "--classes", "2", "--count", "4", "--size", "32"],
     "writing synthetic images: Pillow is not installed (pip install 'modellint[probes]')"),
    ("sklearn", ["probe", str(ROOT / "examples" / "seed_cnn.h5"), "--data", "{tmp}"],
     "the probes: scikit-learn is not installed (pip install 'modellint[probes]')"),
])
def test_missing_optional_package_is_one_line(tmp_path, monkeypatch, capsys, module, args, hint):
    """Without the probes extra: one line that names the package and the extra, exit 2, nothing written."""
    import sys

    from modellint.cli import main

    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"modellint: error: {hint}"
    assert not (tmp_path / "out").exists()
