"""Hostile and broken model files (issue 10): nothing hangs, memory stays bounded,
and every failure is one line naming the file, exit code 2, no traceback, the
file unchanged; through the API, InputError.

One class of input per test (or parametrised case): a corrupt .h5 that makes
libhdf5 loop forever, raw exceptions from damaged or absurd configs, zip and
JSON bombs, hostile archive listings, hostile ONNX files, and the backstop that
turns anything unforeseen into one line. Time bounds are generous (a hang fails
the test instead of hanging it) and no outcome depends on the machine's speed
within them.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

import modellint
from conftest import EXAMPLES, ROOT, sha256
from modellint.errors import InputError

SEED_H5 = EXAMPLES / "seed_cnn.h5"
SEED_KERAS = EXAMPLES / "seed_cnn.keras"
GIB = 1 << 30


def cli(*args, timeout=120, env=None):
    """``modellint ARGS`` in a fresh interpreter, failing (not hanging) past ``timeout``."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "modellint", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=full_env, timeout=timeout)


def assert_one_line_error(r, path, problem=None):
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert "Traceback" not in r.stderr and "internal error" not in line, line
    assert str(path) in line, line
    assert len(line) <= 300 + len(str(path)), line
    if problem is not None:
        assert problem in line, line
    assert r.stdout == ""
    return line


def check_refused(path, problem=None, env=None, timeout=120):
    """The CLI gives one line, the API an InputError; the file is not changed."""
    before = sha256(path)
    line = assert_one_line_error(cli("summary", path, timeout=timeout, env=env), path, problem)
    with pytest.raises(InputError) as info:
        modellint.load_graph(str(path))
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    if problem is not None:
        assert problem in str(info.value)
    assert sha256(path) == before
    return line


def peak_rss_of(*args, env=None, timeout=300):
    """(completed process, peak RSS in bytes of ``modellint ARGS`` and its children)."""
    code = ("import resource, subprocess, sys, json\n"
            "r = subprocess.run([sys.executable, '-m', 'modellint', *sys.argv[1:]], capture_output=True, text=True)\n"
            "print(json.dumps({'rc': r.returncode, 'stdout': r.stdout[-2000:], 'stderr': r.stderr,\n"
            "                  'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))\n")
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, **(env or {})), timeout=timeout)
    out = json.loads(r.stdout)
    return subprocess.CompletedProcess(args, out["rc"], out["stdout"], out["stderr"]), out["rss"]


# -- models -------------------------------------------------------------------------------------

def seq(*layers, batch_shape=(None, 8, 8, 3), **extra):
    return {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": list(batch_shape), "name": "in"}}, *layers]}, **extra}


def functional(layers, inputs=(("in", 0, 0),), outputs=(("d", 0, 0),)):
    return {"class_name": "Functional", "config": {"name": "f", "layers": [
        {"class_name": "InputLayer", "name": "in", "config": {"batch_shape": [None, 8], "name": "in"},
         "inbound_nodes": []}, *layers],
        "input_layers": [list(i) for i in inputs], "output_layers": [list(o) for o in outputs]}}


def dense(name="d", src=("in", 0, 0), **cfg):
    return {"class_name": "Dense", "name": name, "config": {"name": name, "units": 3, **cfg},
            "inbound_nodes": [[[*src, {}]]]}


def layer(class_name, **cfg):
    return {"class_name": class_name, "config": {"name": cfg.pop("name", class_name.lower()), **cfg}}


def keras3_call(history):
    return {"args": [{"class_name": "__keras_tensor__", "config": {"shape": [None, 8], "keras_history": history}}],
            "kwargs": {}}


def nested_sequentials(n):
    text = '{"class_name": "Dense", "config": {"name": "d0", "units": 2}}'
    for i in range(n):
        text = '{"class_name": "Sequential", "config": {"name": "s%d", "layers": [%s]}}' % (i, text)
    return ('{"class_name": "Sequential", "config": {"name": "top", "layers": [{"class_name": "InputLayer", '
            '"config": {"batch_shape": [null, 2], "name": "in"}}, ' + text + ']}}')


# name -> (JSON text or object, what the one line must say)
CONFIGS = {
    "units_infinity": (seq(layer("Flatten"), layer("Dense", units=float("inf"))), "units Infinity is not an integer"),
    "filters_infinity": (seq(layer("Conv2D", filters=float("inf"), kernel_size=3)), "filters Infinity"),
    "units_nan": (seq(layer("Flatten"), layer("Dense", units=float("nan"))), "units NaN is not an integer"),
    "units_fraction": (seq(layer("Flatten"), layer("Dense", units=2.5)), "units 2.5 is not an integer"),
    "units_negative": (seq(layer("Flatten"), layer("Dense", units=-5)), "units -5 is out of range"),
    "units_1e30": (seq(layer("Flatten"), layer("Dense", units=10**30)), "is out of range"),
    "kernel_negative": (seq(layer("Conv2D", filters=4, kernel_size=-3)), "kernel (-3, -3) is out of range"),
    "strides_zero": (seq(layer("Conv2D", filters=4, kernel_size=3, strides=0)), "strides (0, 0) is out of range"),
    "upsample_zero": (seq(layer("UpSampling2D", size=0)), "size (0, 0) is out of range"),
    "input_huge": (seq(layer("Flatten"), batch_shape=(None, 10**12, 10**12, 3)), "size out of range"),
    "axis_string": (seq(layer("BatchNormalization", axis="a")), "axis 'a' is not an axis"),
    "batch_shape_string": ({"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": "abc", "name": "in"}},
        layer("Dense", units=3)]}}, "is not a list of sizes"),
    "keras_history_malformed": (functional([{"class_name": "Dense", "name": "d", "config": {"name": "d", "units": 3},
                                             "inbound_nodes": [keras3_call(["in", "x"])]}]),
                                "malformed keras_history"),
    "keras_history_negative": (functional([{"class_name": "Dense", "name": "d", "config": {"name": "d", "units": 3},
                                            "inbound_nodes": [keras3_call(["in", -1, 0])]}]),
                               "malformed keras_history"),
    "duplicate_layer_names": (functional([dense("d"), dense("d")]), "two layers are named 'd'"),
    "duplicate_sequential_names": (seq(layer("Flatten", name="x"), layer("Dense", name="x", units=2)),
                                   "two layers have one name"),
    "optimizer_class_name_null": (seq(layer("Flatten"), compile_config={"optimizer": {"class_name": None},
                                                                        "loss": "mse"}),
                                  "optimizer class_name None is not a string"),
    "loss_class_name_list": (seq(layer("Flatten"), compile_config={"optimizer": "adam",
                                                                   "loss": {"class_name": [1], "config": {}}}),
                             "is not a Keras loss config"),
    "inbound_tensor_out_of_range": (functional([dense(src=("in", 0, 5))]), "reads output 5 of 'in'"),
    "inbound_node_out_of_range": (functional([dense(src=("in", 7, 0))]), "reads call 7 of 'in'"),
    "unknown_input_layer": (functional([dense()], inputs=[("ghost", 0, 0)]), "input_layers names 'ghost'"),
    "unknown_output_layer": (functional([dense()], outputs=[("ghost", 0, 0)]), "model output 'ghost'"),
    "output_tensor_out_of_range": (functional([dense()], outputs=[("d", 0, 9)]), "reads output 9 of 'd'"),
    "layer_entry_not_object": ({"class_name": "Sequential", "config": {"name": "s", "layers": [1, 2]}},
                               "a layer entry is 1"),
    "window_rank_mismatch": (seq(layer("Conv2D", filters=4, kernel_size=3), batch_shape=(None, 8, 3)),
                             "2-D window on a rank-3 input"),
    "deep_json_list": ('{"class_name": "Sequential", "config": ' + "[" * 100_000 + "]" * 100_000 + "}",
                       "nested more than 500 levels deep"),
    "nested_sequentials_3000": (nested_sequentials(3000), "nested more than 500 levels deep"),
    "nested_sequentials_100": (nested_sequentials(100), "models nested more than 64 deep"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_broken_or_absurd_config(tmp_path, case):
    """Raw OverflowError/ValueError/RecursionError/... before; absurd sizes were accepted."""
    model, problem = CONFIGS[case]
    p = tmp_path / f"{case}.json"
    p.write_text(model if isinstance(model, str) else json.dumps(model))
    check_refused(p, problem)
    # and through analyze(), which must not reach the rules with an absurd graph
    with pytest.raises(InputError):
        modellint.analyze(str(p), dataset={"samples": 100, "classes": 3})


def test_valid_models_still_load(tmp_path):
    """The checks refuse only the absurd: 64 nested models, axis lists, a shared layer read
    one call past its calls (tf.keras numbering of nested models) all still load."""
    p = tmp_path / "nested64.json"
    p.write_text(nested_sequentials(64))
    assert modellint.load_graph(str(p)).total_params == 2 * 2 + 2
    p = tmp_path / "norm.json"
    p.write_text(json.dumps(seq(layer("BatchNormalization", axis=[3]), layer("LayerNormalization", axis=[-1, -2]))))
    assert modellint.load_graph(str(p)).total_params == 4 * 3 + 2 * 8 * 3
    p = tmp_path / "off_by_one.json"
    p.write_text(json.dumps(functional([dense(src=("in", 1, 0))])))
    assert modellint.load_graph(str(p)).total_params == 8 * 3 + 3


def test_same_problems_inside_keras_and_h5(tmp_path):
    """The checks sit in the builder: the .keras and .h5 routes refuse the same config."""
    model = seq(layer("Flatten"), layer("Dense", units=float("inf")))
    k = tmp_path / "inf.keras"
    with zipfile.ZipFile(k, "w") as z:
        z.writestr("metadata.json", "{}")
        z.writestr("config.json", json.dumps(model))
    check_refused(k, "units Infinity is not an integer")
    h = tmp_path / "inf.h5"
    with h5py.File(h, "w") as f:
        f.attrs["model_config"] = json.dumps(model)
    check_refused(h, "units Infinity is not an integer")


# -- HDF5: hangs and raw exceptions ------------------------------------------------------------

def test_corrupt_global_heap_is_refused_without_h5py(tmp_path):
    """Zeroed bytes 12124-12379 of the seed .h5 made libhdf5 loop forever; the pure-Python
    reader sees the damaged global heap and refuses the file itself, at once."""
    data = bytearray(SEED_H5.read_bytes())
    data[12124:12380] = bytes(256)
    p = tmp_path / "zeroed.h5"
    p.write_bytes(data)
    check_refused(p, "truncated or corrupt (bad free space in global heap collection)", timeout=60)


def test_flipped_bit_is_one_line(tmp_path):
    """One flipped bit (byte 12857 ^ 0x80) gave a raw OSError from h5py."""
    data = bytearray(SEED_H5.read_bytes())
    data[12857] ^= 0x80
    p = tmp_path / "flipped.h5"
    p.write_bytes(data)
    check_refused(p, "truncated or corrupt", timeout=60)


def _h5py_only_hang(tmp_path):
    """A file the pure-Python reader leaves to h5py (a non-string root attribute comes
    first) with the seed's damaged global heap: h5py loops forever reading model_config."""
    good = tmp_path / "fallback.h5"
    with h5py.File(SEED_H5, "r") as s, h5py.File(good, "w") as d:
        d.attrs["aaa_ints"] = np.arange(3)
        for k, v in s.attrs.items():
            d.attrs[k] = v
        s.copy("model_weights", d)
    data = bytearray(good.read_bytes())
    heap = data.find(b"GCOL")
    seed_heap = SEED_H5.read_bytes().find(b"GCOL")
    start = heap + 12124 - seed_heap
    data[start:start + 256] = bytes(256)
    bad = tmp_path / "hangs_h5py.h5"
    bad.write_bytes(data)
    return good, bad


def test_h5py_fallback_hang_is_bounded(tmp_path, monkeypatch):
    good, bad = _h5py_only_hang(tmp_path)
    # the healthy twin reads through the same (h5py) route
    r = cli("summary", good, "--format", "json", timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["params"]["total"] == 168793
    env = {"MODELLINT_H5PY_TIMEOUT": "5"}
    before = sha256(bad)
    line = assert_one_line_error(cli("summary", bad, timeout=120, env=env), bad,
                                 "h5py did not finish reading its attributes within 5 s")
    assert "malformed" in line
    monkeypatch.setenv("MODELLINT_H5PY_TIMEOUT", "5")
    with pytest.raises(InputError, match="did not finish"):
        modellint.load_graph(str(bad))
    assert sha256(bad) == before


def test_h5py_child_crash_is_one_line(tmp_path, monkeypatch):
    """libhdf5 dying (a segfault on a hostile file) kills only the child."""
    from modellint.adapters import keras_files

    good, _ = _h5py_only_hang(tmp_path)
    result = keras_files._h5py_child({"op": "root", "path": str(good)})
    assert result["weight_layers"] == -1 and "model_config" in result["attrs"]
    crash = {"error": "crash", "message": "killed by signal 11"}
    monkeypatch.setattr(keras_files, "_h5py_child", lambda task: crash)
    with pytest.raises(InputError, match=r"HDF5 library failed reading its attributes \(killed by signal 11\)"):
        modellint.load_graph(str(good))


def test_one_byte_file(tmp_path):
    """IndexError while sniffing the format."""
    for content in (b"\x08", b"P", b"\x89", b"{"):
        p = tmp_path / "one.bin"
        p.write_bytes(content)
        check_refused(p)


# -- bombs ----------------------------------------------------------------------------------------

def _zeros(total, chunk=4 << 20):
    block = bytes(chunk)
    for _ in range(total // chunk):
        yield block


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    """.keras archives whose config.json or model.weights.h5 inflate to 3 GiB of zeros
    (~14 MB on disk; the zeros are streamed, never held)."""
    d = tmp_path_factory.mktemp("bombs")
    seed = zipfile.ZipFile(SEED_KERAS)
    meta, cfg = seed.read("metadata.json"), json.loads(seed.read("config.json"))
    cfg["config"]["layers"].insert(3, {"module": "x", "class_name": "MyCustom", "config": {"name": "custom1"},
                                       "registered_name": "x>MyCustom"})
    out = {}
    for member in ("config.json", "model.weights.h5"):
        p = d / f"bomb_{member.split('.')[0]}.keras"
        with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            z.writestr("metadata.json", meta)
            if member != "config.json":
                z.writestr("config.json", json.dumps(cfg))   # a custom layer: the weights are wanted
            with z.open(member, "w", force_zip64=True) as f:
                if member == "config.json":
                    f.write(b'{"class_name": "Sequential", "config": {"name": "')
                for block in _zeros(3 * GIB):
                    f.write(block)
        out[member] = p
    return out


def test_zip_bomb_config_refused_in_bounded_memory(bombs):
    p = bombs["config.json"]
    before = sha256(p)
    r, rss = peak_rss_of("summary", p)
    assert_one_line_error(r, p, "config.json is 3,221,225,521 bytes uncompressed, more than the 32 MiB")
    assert rss < GIB, rss
    with pytest.raises(InputError, match="zip bomb"):
        modellint.load_graph(str(p))
    assert sha256(p) == before


def test_zip_bomb_weights_skipped_in_bounded_memory(bombs):
    """The weights are optional (they only size unknown layers): a bomb is left unread, with a note."""
    p = bombs["model.weights.h5"]
    r, rss = peak_rss_of("summary", p, "--format", "json")
    assert r.returncode == 0, r.stderr
    assert rss < GIB, rss
    g = modellint.load_graph(str(p))
    assert any("more than the 256 MiB modellint decompresses" in n for n in g.notes), g.notes
    assert g.total_params == 168793


def test_member_larger_than_declared(tmp_path):
    """A declared size can lie: the reader never takes more than the archive declares."""
    p = tmp_path / "liar.keras"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("config.json", "w") as f:
            for block in _zeros(64 << 20, 1 << 20):
                f.write(block)
    data = bytearray(p.read_bytes())
    info = zipfile.ZipFile(p).getinfo("config.json")
    struct.pack_into("<I", data, info.header_offset + 22, 100)          # local header: uncompressed size
    cd = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 100)                          # central directory: the same
    p.write_bytes(bytes(data))
    assert zipfile.ZipFile(p).getinfo("config.json").file_size == 100
    r, rss = peak_rss_of("summary", p)
    assert_one_line_error(r, p, "corrupt .keras archive")
    assert rss < GIB // 4, rss


@pytest.mark.parametrize("shape", ["lists", "values"])
def test_json_that_parses_huge_is_refused_first(tmp_path, shape):
    """32 MiB of ``[],`` parsed to 813 MiB; objects and values are counted before parsing."""
    unit = "[]," if shape == "lists" else "0,"
    p = tmp_path / f"{shape}.json"
    p.write_text('{"class_name": "Sequential", "config": {"name": "s", "layers": [], "x": ['
                 + unit * ((30 << 20) // len(unit)) + "0]}}")
    r, rss = peak_rss_of("summary", p)
    assert_one_line_error(r, p, "more than the")
    assert rss < 300 << 20, rss


def test_json_file_over_the_cap(tmp_path):
    p = tmp_path / "big.json"
    with open(p, "wb") as f:
        f.write(b'{"class_name": "Sequential", "config": {"name": "')
        f.truncate(40 << 20)
    check_refused(p, "more than the 32 MiB a model config may have")


# -- archive listings -----------------------------------------------------------------------------

def _keras_archive(path, extra):
    seed = zipfile.ZipFile(SEED_KERAS)
    with zipfile.ZipFile(path, "w") as z:
        for name in ("metadata.json", "config.json"):
            z.writestr(name, seed.read(name))
        extra(z)
    return path


def _duplicate(z):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z.writestr("model.weights.npz", b"PK\x03\x04 harmless")
        z.writestr("model.weights.npz", b"\x80\x04c__builtin__\nexec\n")   # the hidden pickle


def _symlink(z):
    info = zipfile.ZipInfo("assets/link")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z.writestr(info, "/etc/passwd")


ARCHIVES = {
    "duplicate_member": (_duplicate, "two entries named 'model.weights.npz'"),
    "dotdot_member": (lambda z: z.writestr("assets/../../evil.txt", b"x"), "absolute path or '..'"),
    "absolute_member": (lambda z: z.writestr("/tmp/evil.txt", b"x"), "absolute path or '..'"),
    "symlink_member": (_symlink, "is a symbolic link"),
}


@pytest.mark.parametrize("case", sorted(ARCHIVES))
def test_hostile_archive_listing(tmp_path, case):
    extra, problem = ARCHIVES[case]
    p = _keras_archive(tmp_path / f"{case}.keras", extra)
    listing = sorted(os.listdir(tmp_path))
    check_refused(p, problem)
    assert sorted(os.listdir(tmp_path)) == listing   # nothing extracted


def test_too_many_archive_entries(tmp_path):
    p = tmp_path / "many.keras"
    with zipfile.ZipFile(p, "w") as z:
        for i in range(100_001):
            z.writestr(f"assets/{i}", b"")
    r, rss = peak_rss_of("summary", p)
    assert_one_line_error(r, p, "lists 100,001 entries")
    assert rss < 200 << 20, rss


# -- the backstop ---------------------------------------------------------------------------------

@pytest.mark.parametrize("exc", [RecursionError("maximum recursion depth exceeded"), MemoryError(),
                                 OverflowError("cannot convert float infinity to integer"),
                                 ValueError("x" * 5000), KeyError("units"), TypeError("bad\nsecond line"),
                                 IndexError("list index out of range"), UnicodeDecodeError("utf-8", b"\xff", 0, 1, "x"),
                                 OSError(5, "Input/output error"), zipfile.BadZipFile("Bad CRC-32")],
                         ids=lambda e: type(e).__name__)
def test_backstop_turns_any_reader_error_into_one_line(tmp_path, monkeypatch, capsys, exc):
    from modellint.adapters import keras_files
    from modellint.cli import main

    p = tmp_path / "m.json"
    p.write_text(json.dumps(seq(layer("Flatten"))))

    def boom(path):
        raise exc

    monkeypatch.setattr(keras_files, "read_json", boom)
    with pytest.raises(InputError) as info:
        modellint.load_graph(str(p))
    text = str(info.value)
    assert f"JSON file is malformed: {type(exc).__name__}" in text and "\n" not in text
    assert len(info.value.problem) <= 300
    assert main(["summary", str(p)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err and str(p) in err


def test_reader_error_with_newlines_is_one_line(tmp_path, monkeypatch):
    from modellint.adapters import keras_files

    p = tmp_path / "m.json"
    p.write_text("{}")

    def multi(path):
        raise InputError(path, "first\nsecond\n" + "y" * 1000)

    monkeypatch.setattr(keras_files, "read_json", multi)
    with pytest.raises(InputError) as info:
        modellint.load_graph(str(p))
    assert "\n" not in str(info.value) and len(info.value.problem) <= 300


def test_api_documents_its_exceptions():
    for fn in (modellint.load_graph, modellint.analyze):
        for name in ("InputError", "ConfigError", "MissingDependency", "ModelLintError"):
            assert name in fn.__doc__, (fn.__name__, name)


# -- ONNX -----------------------------------------------------------------------------------------

def _onnx_model(in_dims=(1, 3, 32, 32), external=None, w_dims=(8, 3, 3, 3), kernel_shape=None):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    if external is None:
        w = numpy_helper.from_array(np.zeros(w_dims, np.float32), "W")
    else:
        w = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=list(w_dims), data_location=TensorProto.EXTERNAL)
        for k, v in external.items():
            e = w.external_data.add()
            e.key, e.value = k, v
    g = numpy_helper.from_array(np.zeros((10, 8), np.float32), "G")
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], kernel_shape=kernel_shape or list(w_dims[2:]),
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "G"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_dims))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, g])
    return onnx, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([b])
        out += bytes([b | 0x80])


ONNX_CASES = {
    "huge_input": (dict(in_dims=(1, 3, 10**12, 10**12)), "size out of range"),
    "negative_kernel": (dict(kernel_shape=[-3, 3]), "kernel (-3, 3) is out of range"),
    "external_traversal": (dict(external={"location": "../../../../etc/passwd", "length": "864"}),
                           "outside the model's folder"),
    "external_absolute": (dict(external={"location": "/etc/passwd"}), "outside the model's folder"),
    "external_bad_length": (dict(external={"location": "w.bin", "length": "-1"}), "length '-1' is not a size"),
}


@pytest.mark.parametrize("case", sorted(ONNX_CASES))
def test_hostile_onnx(tmp_path, case):
    kwargs, problem = ONNX_CASES[case]
    onnx, model = _onnx_model(**kwargs)
    p = tmp_path / f"{case}.onnx"
    onnx.save(model, str(p))
    check_refused(p, problem)


def test_onnx_external_data_inside_the_folder_is_fine(tmp_path):
    onnx, model = _onnx_model(external={"location": "weights/w.bin", "offset": "0", "length": "864"})
    p = tmp_path / "ext.onnx"
    onnx.save(model, str(p))
    assert modellint.load_graph(str(p)).total_params == 8 * 3 * 3 * 3 + 10 * 8   # from dims; nothing read


def test_truncated_and_bit_flipped_onnx(tmp_path, capsys):
    import random

    from modellint.cli import main

    onnx, model = _onnx_model()
    data = model.SerializeToString()
    rng = random.Random(7)
    p = tmp_path / "m.onnx"
    for cut in (1, 2, 17, len(data) // 2, len(data) - 1):
        p.write_bytes(data[:cut])
        check_refused(p)
    for _ in range(40):   # a flip either still reads, or is one line (the CLI, in process)
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
        p.write_bytes(mutated)
        capsys.readouterr()
        rc = main(["summary", str(p)])
        err = capsys.readouterr().err
        assert rc in (0, 2), err
        if rc == 2:
            assert len(err.strip().splitlines()) == 1 and "internal error" not in err and str(p) in err, err


def test_onnx_node_bomb_in_bounded_memory(tmp_path):
    """84 MB of six million tiny nodes took 2.2 GB to parse; they are counted on the wire first."""
    pytest.importorskip("onnx")
    node = b"\x0a\x01a\x12\x01b\x22\x04Relu"                       # input, output, op_type
    graph = (b"\x0a" + _varint(len(node)) + node) * 6_000_000 + b"\x5a\x03\x0a\x01a"
    p = tmp_path / "nodes.onnx"
    p.write_bytes(b"\x08\x08\x3a" + _varint(len(graph)) + graph + b"\x42\x02\x10\x11")
    r, rss = peak_rss_of("summary", p)
    assert_one_line_error(r, p, "more than 200,000 nodes")
    assert rss < GIB, rss
