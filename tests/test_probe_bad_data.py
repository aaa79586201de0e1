"""`modellint probe` on bad data, through the CLI.

Where nothing can run (no such path, an empty folder, images without class sub-folders,
class folders without images, only unreadable images, an .npz that is not images with
labels, a single class, a model whose input is not an image): exit 2 and one line on
stderr naming the folder or file and the problem, never a traceback. Where something can
run (some unreadable images, grey 28x28 images for a 32x32 RGB model): findings, not
an error. In every case no file in the data folder is changed, added or removed.

The fatal cases fail before any training, so each is a fresh ``python -m modellint`` of
about a second; the two cases that train run in this process (one TensorFlow import).

Hostile data (a FIFO named like an image, links to ``/`` and to files outside the folder, link
loops, a decompression-bomb PNG, a 13,000x13,000 16-bit PNG, ``.npz`` files with absurd labels,
object arrays, duplicate members or gigabytes of declared data): nothing hangs (each CLI run has a
timeout, so a regression fails instead of blocking), nothing outside the folder is read (the image
counts say so), memory stays under 1 GiB (the peak RSS of a dedicated child process), and what is
skipped is named. Whatever the environment's TF_CPP_MIN_LOG_LEVEL, stderr carries modellint's lines only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
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
    if case == "npz_huge_label":  # a label of 2**40: the class count must not decide an allocation
        root.mkdir(parents=True)
        y = np.arange(20) % 2
        y[3] = 2**40
        np.savez(root / "d.npz", x=rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8), y=y)
        return root / "d.npz"
    if case == "npz_object":  # pickled objects: never unpickled
        root.mkdir(parents=True)
        np.savez(root / "d.npz", x=rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8),
                 y=np.array([0, 1] * 10, dtype=object))
        return root / "d.npz"
    if case == "npz_duplicate":  # two x.npy members: which one np.load reads is an accident
        root.mkdir(parents=True)
        _npz_members(root / "d.npz", [("x.npy", _npy(np.zeros((20, 16, 16, 3), np.uint8))),
                                      ("x.npy", _npy(np.ones((20, 16, 16, 3), np.uint8))),
                                      ("y.npy", _npy(np.arange(20) % 2))])
        return root / "d.npz"
    if case == "npz_declared_huge":  # a header declaring 3 TB of images, followed by no data
        root.mkdir(parents=True)
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (10**6, 1000, 1000, 3)})
        _npz_members(root / "d.npz", [("x.npy", header.getvalue()),  # the magic string, then the header
                                      ("y.npy", _npy(np.arange(10**6) % 2))])
        return root / "d.npz"
    raise KeyError(case)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=False)
    return buf.getvalue()


def _npz_members(path: Path, members):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it is asked to write
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members:
                z.writestr(name, data)


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
    """Every file and folder under ``root``: content hash, size and mtime of regular files; links by their
    target (never followed); FIFOs and other special files by their type and mtime (never opened)."""
    import stat

    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel + "/"] = "dir"
            elif stat.S_ISREG(st.st_mode):
                out[rel] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns)
            else:
                out[rel] = (stat.S_IFMT(st.st_mode), st.st_mtime_ns)
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
    "npz_huge_label": "labels must be class indices below 100,000",
    "npz_object": "object array",
    "npz_duplicate": "two members named 'x'",
    "npz_declared_huge": "MiB uncompressed",
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


# -- hostile data: nothing hangs, nothing outside the folder is read, memory stays bounded ---------------------

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


def _probe_child(model, data, cache, *extra, timeout=240, env=None):
    """``modellint probe`` in a fresh interpreter, killed after ``timeout`` s: a hang fails, it does not block.
    JSON report on stdout, --quiet: stderr must stay empty unless something is wrong."""
    full_env = dict(os.environ, MODELLINT_CACHE_DIR=str(cache), MODELLINT_DEBUG="", **(env or {}))
    return subprocess.run([sys.executable, "-m", "modellint", "probe", str(model), "--data", str(data), "--budget",
                           "60", "--probes", "init_loss", "--no-cache", "--quiet", "--format", "json",
                           "--exit-zero", *extra],
                          capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=timeout)


def _zero_png(path: Path, width: int, height: int, bit_depth: int = 8, colour: int = 0):
    """A PNG of ``width`` x ``height`` zero pixels, written chunk by chunk through zlib: a few hundred KB on
    disk however large it says it is (what a decompression bomb looks like)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    row = b"\x00" + bytes((width * channels * bit_depth + 7) // 8)  # filter byte 0, then the pixels
    block = row * max(1, (1 << 22) // len(row))  # about 4 MB of rows at a time
    per_block = len(block) // len(row)
    comp = zlib.compressobj(9)

    def chunk(f, kind, data):
        f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        chunk(f, b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0))
        left = height
        while left:
            n = min(left, per_block)
            data = comp.compress(block if n == per_block else row * n)
            if data:
                chunk(f, b"IDAT", data)
            left -= n
        chunk(f, b"IDAT", comp.flush())
        chunk(f, b"IEND", b"")


def _report(r) -> dict:
    assert r.returncode == 0 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    assert r.stderr == "", r.stderr  # --quiet: not even a progress line, and no framework's log
    return json.loads(r.stdout)["reports"][0]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Two classes of 6 good images each, and around them: a FIFO named like an image, a class folder that
    links to ``/``, one that links back to the data folder, links to a readable PNG and to /etc/passwd
    outside the folder, a link to a folder outside, a link to a folder inside (a loop if followed) and
    two links that point at each other."""
    base = tmp_path_factory.mktemp("hostile")
    root = _classes(base / "data")
    outside = base / "outside"
    _classes(outside, names=("elsewhere",), per_class=5)
    os.symlink("/", root / "root")
    os.symlink(root, root / "self")
    os.symlink(outside / "elsewhere" / "0.png", root / "a" / "outside.png")
    os.symlink("/etc/passwd", root / "b" / "passwd.png")
    os.symlink(outside / "elsewhere", root / "b" / "more")
    os.symlink("..", root / "a" / "up")
    os.symlink("cycle2.png", root / "a" / "cycle1.png")
    os.symlink("cycle1.png", root / "a" / "cycle2.png")
    os.symlink("0.png", root / "b" / "inside.png")  # a link inside the folder: read
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "a" / "fifo.png")
    return root


def test_hostile_folder_reads_only_regular_files_inside(models, hostile, tmp_path):
    """The probe reads the 12 images and the one link inside the folder: nothing through the links that leave
    it, no FIFO opened (that would block), no loop; what was skipped is named in the report's notes."""
    import time

    before = snapshot(hostile)
    t = time.perf_counter()
    r = _probe_child(models["cnn16"], hostile, tmp_path / "cache")
    took = time.perf_counter() - t
    report = _report(r)
    data = report["probes"]["data"]
    assert data["class_names"] == ["a", "b"], data["class_names"]
    assert data["train"] + data["val"] == 13, data  # 12 images and b/inside.png; nothing from outside
    notes = " ".join(data["notes"])
    for name, why in [("root/", "outside the data folder"), ("self/", "the data folder itself"),
                      ("a/outside.png", "outside the data folder"), ("b/passwd.png", "outside the data folder"),
                      ("b/more/", "outside the data folder"), ("a/up/", "not followed")]:
        assert f"{name}: a link to" in notes and why in notes, (name, notes)
    if hasattr(os, "mkfifo"):
        assert "a/fifo.png: a FIFO, not a regular file" in notes, notes
    assert "a/cycle1.png: a broken link" in notes and "a/cycle2.png: a broken link" in notes, notes  # a loop
    assert "ML002" not in {f["code"] for f in report["findings"]}  # nothing unreadable was tried
    assert report["probes"]["results"]["init_loss"]["status"] == "ok"
    assert snapshot(hostile) == before
    assert took < 200, took


@needs_fifo
def test_fifo_alone_does_not_hang(models, tmp_path):
    """A folder whose only extra is a FIFO named fifo.png finishes (the FIFO is never opened)."""
    data = _classes(tmp_path / "data")
    os.mkfifo(data / "a" / "fifo.png")
    report = _report(_probe_child(models["cnn16"], data, tmp_path / "cache", timeout=120))
    assert report["probes"]["data"]["train"] + report["probes"]["data"]["val"] == 12
    assert any("a/fifo.png: a FIFO" in n for n in report["probes"]["data"]["notes"])


def test_check_data_counts_only_regular_files_inside(hostile):
    """`modellint check --data` counts from file headers with the same protection: 13 images, 2 classes, the
    skipped entries in one note line on stderr."""
    r = subprocess.run([sys.executable, "-m", "modellint", "check", str(ROOT / "examples" / "seed_cnn.h5"),
                        "--data", str(hostile), "--format", "json", "--exit-zero"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    dataset = json.loads(r.stdout)["reports"][0]["dataset"]
    assert dataset["samples"] == 13 and dataset["classes"] == 2, dataset
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modellint: note: ") and "root/: a link to a folder outside" \
        in lines[0], r.stderr


def test_decompression_bomb_and_huge_16_bit_png_are_skipped_in_bounded_memory(models, tmp_path):
    """A 20,000x20,000 1-bit PNG (a decompression bomb: 400 MP in 60 KB) and a 13,000x13,000 16-bit PNG
    (169 MP; decoded it cost 3 GB) are skipped before decoding, each named with the reason, and the peak
    RSS of the whole command stays under 1 GiB (measured by a dedicated parent process, whose
    RUSAGE_CHILDREN sees this command only)."""
    data = _classes(tmp_path / "data")
    _zero_png(data / "a" / "bomb.png", 20_000, 20_000, bit_depth=1)
    _zero_png(data / "b" / "big16.png", 13_000, 13_000, bit_depth=16)
    assert (data / "b" / "big16.png").stat().st_size < 2_000_000
    env = dict(os.environ, MODELLINT_CACHE_DIR=str(tmp_path / "cache"))
    measure = ("import json, resource, subprocess, sys\n"
               "r = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=240)\n"
               "print(json.dumps({'rc': r.returncode, 'out': r.stdout, 'err': r.stderr,\n"
               "                  'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n")
    r = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "modellint", "probe", models["cnn16"],
                        "--data", str(data), "--budget", "60", "--probes", "init_loss", "--no-cache", "--quiet",
                        "--format", "json", "--exit-zero"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    child = json.loads(r.stdout)
    assert child["rc"] == 0 and child["err"] == "", child["err"]
    assert child["maxrss_kb"] < 1024 * 1024, f"peak RSS {child['maxrss_kb'] / 1024:.0f} MiB"
    report = json.loads(child["out"])["reports"][0]
    assert report["probes"]["data"]["train"] + report["probes"]["data"]["val"] == 12
    errors = {f["code"]: f for f in report["findings"]}["ML002"]["evidence"]["errors"]
    assert "decompression bomb" in errors["a/bomb.png"], errors
    assert "13000x13000" in errors["b/big16.png"] and "over the cap" in errors["b/big16.png"], errors
    assert any("pixel cap" in n and "b/big16.png" in n for n in report["probes"]["data"]["notes"])


# -- stderr: modellint's own lines only --------------------------------------------------------------------------

def test_tensorflow_logs_are_silenced_on_a_keras_bad_input(models, tmp_path):
    """3 classes of data for a 2-class Keras model: the Keras runner (TensorFlow imported) refuses it, and
    stderr is that one line, even with TF_CPP_MIN_LOG_LEVEL=0 in the environment (absl's "All log messages
    before absl::InitializeLog()" and cpu_feature_guard's notice would otherwise be there)."""
    data = _classes(tmp_path / "data", names=("a", "b", "c"))
    r = _probe_child(models["cnn16"], data, tmp_path / "cache", env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("modellint: error: ") and "class index 2" in lines[0], lines[0]


def test_verbose_shows_the_traceback_of_an_internal_error(monkeypatch, capsys):
    from modellint import cli

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.delenv("MODELLINT_DEBUG", raising=False)
    monkeypatch.setattr(cli, "cmd_rules", broken)
    assert cli.main(["rules"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "modellint: internal error: RuntimeError: a bug (please report; --verbose shows the " \
                          "traceback)"
    for argv in (["--verbose", "rules"], ["rules", "--verbose"]):
        with pytest.raises(RuntimeError, match="a bug"):
            cli.main(argv)


def test_quiet_is_for_the_command_line_only(monkeypatch):
    """The CLI silences the frameworks (before importing them); --verbose leaves the environment alone."""
    from modellint import cli

    calls = []
    monkeypatch.setattr("modellint.quiet.quiet_frameworks", lambda: calls.append(1))
    monkeypatch.setattr(cli, "cmd_rules", lambda args: 0)
    assert cli.main(["rules"]) == 0 and calls == [1]
    assert cli.main(["rules", "--verbose"]) == 0 and calls == [1]
    assert cli.main(["--verbose", "rules"]) == 0 and calls == [1]
