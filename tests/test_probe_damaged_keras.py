"""`modellint probe` on damaged Keras files (issue 10): bounded, one line, or never read.

The Keras runner used to call ``keras.saving.load_model`` on the user's file: libhdf5 in the
modellint process then read the stored weights, and on damaged weight structures it can fail,
loop or crash the process (a B-tree node that is its own child: a segfault). Now the runner
builds the model from the architecture config the adapter reads (bounded: pure Python, or h5py
in a child with a timeout and a memory cap; damage there is refused with one line) and never
reads the weights, which the probes re-initialise anyway. So:

* damage the adapter sees (a zeroed global heap, a cut archive, h5py hanging on attributes):
  exit 2, one line naming the file, in bounded time;
* damage in the weights only: the probes run, as on the intact file;
* the file is never changed, and the runner opens it with neither Keras nor h5py.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, keras_only, sha256

pytest.importorskip("PIL")
h5py = pytest.importorskip("h5py")

pytestmark = keras_only


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small CNN as .h5 and .keras, twins whose weights are damaged, and a 2-class image folder."""
    import keras
    from keras import layers
    from PIL import Image

    d = tmp_path_factory.mktemp("damaged_keras")
    inp = keras.Input((16, 16, 3))
    h = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3, activation="relu")(inp))
    model = keras.Model(inp, layers.Dense(2, activation="softmax")(h))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.save(d / "ok.h5")
    model.save(d / "ok.keras")
    out = {"ok_h5": d / "ok.h5", "ok_keras": d / "ok.keras"}

    # the weights group's first B-tree node made its own child: libhdf5 recurses until the stack overflows
    data = bytearray((d / "ok.h5").read_bytes())
    trees = [i for i in range(len(data)) if data[i:i + 4] == b"TREE"]
    node = trees[1]  # trees[0] is the root group's; the next one indexes model_weights
    data[node + 5] = 1                                  # level 1: its children are B-tree nodes
    struct.pack_into("<Q", data, node + 32, node)       # child 0: itself
    (d / "loop.h5").write_bytes(data)
    out["loop_h5"] = d / "loop.h5"

    # a .keras whose model.weights.h5 has the same kind of loop
    with zipfile.ZipFile(d / "ok.keras") as zin, zipfile.ZipFile(d / "loop.keras", "w") as zout:
        for info in zin.infolist():
            member = bytearray(zin.read(info))
            if info.filename == "model.weights.h5":
                trees = [i for i in range(len(member)) if member[i:i + 4] == b"TREE"]
                member[trees[1] + 5] = 1
                struct.pack_into("<Q", member, trees[1] + 32, trees[1])
            zout.writestr(info, bytes(member))
    out["loop_keras"] = d / "loop.keras"

    # damage the adapter refuses: the heap holding model_config zeroed; the archive cut in half
    data = bytearray((d / "ok.h5").read_bytes())
    heap = data.find(b"GCOL")
    data[heap + 16:heap + 272] = bytes(256)
    (d / "heap.h5").write_bytes(data)
    out["heap_h5"] = d / "heap.h5"
    whole = (d / "ok.keras").read_bytes()
    (d / "cut.keras").write_bytes(whole[:len(whole) // 2])
    out["cut_keras"] = d / "cut.keras"

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (d / "data" / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(d / "data" / c / f"{i}.png")
    out["data"] = d / "data"
    return out


def _probe(model, data, tmp_path, timeout=240, env=None):
    full_env = dict(os.environ, MODELLINT_CACHE_DIR=str(tmp_path / "cache"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "modellint", "probe", str(model), "--data", str(data), "--budget",
                           "60", "--probes", "init_loss", "--no-cache", "--quiet", "--format", "json",
                           "--exit-zero"], capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=timeout)


def test_keras_itself_crashes_on_the_damaged_weights(files):
    """The hazard is real: Keras' own loader on the looping weights kills its process (or fails)."""
    code = ("import os, sys; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'; import keras; "
            "keras.saving.load_model(sys.argv[1], compile=False); print('LOADED')")
    r = subprocess.run([sys.executable, "-c", code, str(files["loop_h5"])], capture_output=True, text=True,
                       timeout=240)
    assert r.returncode != 0 and "LOADED" not in r.stdout, (r.returncode, r.stderr[-500:])


@pytest.mark.parametrize("name", ["loop_h5", "loop_keras"])
def test_damaged_weights_are_never_read(files, name, tmp_path):
    """The probe runs on a file whose weights crash Keras, as it does on the intact twin (the probes
    re-initialise every weight), and leaves the file as it was."""
    before = sha256(files[name])
    r = _probe(files[name], files["data"], tmp_path)
    assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr[-2000:])
    report = json.loads(r.stdout)["reports"][0]
    assert report["probes"]["results"]["init_loss"]["status"] == "ok", report["probes"]["results"]
    assert sha256(files[name]) == before


@pytest.mark.parametrize("name,problem", [("heap_h5", "truncated or corrupt"),
                                          ("cut_keras", "not a readable zip archive")])
def test_damage_the_adapter_sees_exits_2_with_one_line(files, name, problem, tmp_path):
    before = sha256(files[name])
    r = _probe(files[name], files["data"], tmp_path, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr[-2000:])
    assert lines[0].startswith(f"modellint: error: {files[name]}: ") and problem in lines[0], lines
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert sha256(files[name]) == before


def test_h5py_hanging_on_the_attributes_is_bounded(files, tmp_path):
    """A file the pure-Python reader leaves to h5py (a non-string root attribute first) whose heap makes
    libhdf5 loop: the child is stopped after MODELLINT_H5PY_TIMEOUT and the probe exits 2 with one line."""
    good = tmp_path / "fallback.h5"
    with h5py.File(files["ok_h5"], "r") as s, h5py.File(good, "w") as d:
        d.attrs["aaa_ints"] = np.arange(3)
        for k, v in s.attrs.items():
            d.attrs[k] = v
        s.copy("model_weights", d)
    data = bytearray(good.read_bytes())
    heap = data.find(b"GCOL")
    data[heap + 16:heap + 272] = bytes(256)
    bad = tmp_path / "hangs_h5py.h5"
    bad.write_bytes(data)
    r = _probe(bad, files["data"], tmp_path, timeout=120, env={"MODELLINT_H5PY_TIMEOUT": "5"})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and str(bad) in lines[0], (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr


def test_runner_opens_the_file_with_neither_keras_nor_h5py(files, monkeypatch):
    """In process: with keras.saving.load_model and h5py.File made to fail, the Keras runner still builds
    both files' models (from the config the adapter read), with the intact file's architecture."""
    import keras

    from modellint import load_graph
    from modellint.probes.runner_keras import KerasRunner

    def refuse(*a, **k):
        raise AssertionError("the probe opened the model file itself")

    intact = keras.saving.load_model(files["ok_keras"], compile=False)
    expected = intact.get_config()
    monkeypatch.setattr(keras.saving, "load_model", refuse)
    monkeypatch.setattr(h5py, "File", refuse)
    for name in ("loop_h5", "loop_keras"):
        runner = KerasRunner(load_graph(files[name]), files[name])
        config = runner._template.get_config()
        assert [layer["class_name"] for layer in config["layers"]] == \
            [layer["class_name"] for layer in expected["layers"]], name
        assert runner.model.count_params() == intact.count_params() == 122, name
