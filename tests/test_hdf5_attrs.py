"""The pure-Python root-attribute reader (modellint.adapters.hdf5_attrs) against h5py.

Truth: h5py's own reading of the same attributes, turned into text the way
read_h5 does (keras_files._text). Anything the reader does not handle must raise
Unsupported (never hang, never another exception), and read_h5 must then give
the same graph through h5py.
"""

import ctypes
import json
import random
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import EXAMPLES, FIXTURES, ROOT
from modellint.adapters import hdf5_attrs, keras_files
from modellint.adapters.hdf5_attrs import Unsupported, read_root_attrs
from modellint.adapters.keras_files import _text, read_h5

NAMES = ("model_config", "training_config", "keras_version", "backend")
REAL_FILES = sorted((FIXTURES / "legacy").glob("*.h5")) + sorted(EXAMPLES.glob("*.h5"))
LIBVERS = {"earliest": "earliest", "v108": ("v108", "latest"), "latest": "latest"}


@contextmanager
def deadline(seconds=10):
    """Fail instead of hanging (the reader must never loop forever)."""
    def boom(*_):
        raise TimeoutError("reader took too long")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def truth(path, names=NAMES):
    out = {}
    with h5py.File(path, "r") as f:
        for name in names:
            if name in f.attrs:
                value = f.attrs[name]
                if isinstance(value, np.ndarray) and value.shape == (1,):
                    value = value[0]
                out[name] = _text(value)
    return out


def fast(path, names=NAMES, **kw):
    with deadline():
        return read_root_attrs(path, names, **kw)


def superblock_version(path):
    data = open(path, "rb").read(1 << 16)
    return data[data.index(hdf5_attrs.SIGNATURE) + 8]


def graph_dict(graph):
    return json.dumps(graph.to_dict(), sort_keys=True, default=str)


def graph_via_h5py(path, monkeypatch):
    """read_h5 with the fast reader switched off: the original h5py code path."""
    with monkeypatch.context() as m:
        m.setattr(hdf5_attrs, "read_root_attrs", lambda *a, **k: (_ for _ in ()).throw(Unsupported("off")))
        return read_h5(path)


# -- real Keras files ----------------------------------------------------------------------

def only_single_strings(path):
    """Whether every root attribute is one string (what the fast reader accepts)."""
    with h5py.File(path, "r") as f:
        return all(isinstance(v, (str, bytes)) for v in f.attrs.values())


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_files_match_h5py(path):
    if only_single_strings(path):
        assert fast(path) == truth(path)
    else:   # weights-only files: layer_names is an array of strings
        with pytest.raises(Unsupported):
            fast(path)


@pytest.mark.parametrize("path", [p for p in REAL_FILES if "weights_only" not in p.name
                                  and "chunked" not in p.name], ids=lambda p: p.name)
def test_read_h5_fast_path_gives_the_h5py_graph(path, monkeypatch):
    assert graph_dict(read_h5(path)) == graph_dict(graph_via_h5py(path, monkeypatch))


# -- files written here with h5py ------------------------------------------------------------

def write(path, attrs, libver="earliest", userblock=0, fcpl=None):
    if fcpl is not None:
        fid = h5py.h5f.create(str(path).encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl)
        f = h5py.File(fid)
    else:
        f = h5py.File(path, "w", libver=libver, userblock_size=userblock)
    with f:
        for name, value in attrs.items():
            if isinstance(value, tuple):          # (data, dtype)
                f.attrs.create(name, value[0], dtype=value[1])
            else:
                f.attrs[name] = value
        f.create_group("model_weights").create_dataset("w", data=np.zeros(3))
    return path


def string_kinds():
    text = json.dumps({"class_name": "Sequential", "config": {"name": "m", "x": "é ü 漢字"}})
    ascii_text = '{"loss": "mse"}'
    return {
        "vlen_str": text,                                                   # vlen UTF-8
        "fixed_bytes": text.encode("utf-8"),                                # fixed-length bytes
        "np_bytes": np.bytes_(ascii_text.encode()),                         # fixed, numpy
        "fixed_utf8": (text.encode("utf-8"), h5py.string_dtype("utf-8", len(text.encode()) + 5)),
        "fixed_ascii_pad": (ascii_text.encode(), h5py.string_dtype("ascii", 40)),
        "vlen_ascii": (ascii_text.encode(), h5py.string_dtype("ascii")),
        "vlen_bytes_utf8": (text.encode(), h5py.string_dtype("utf-8")),
        "empty_vlen": "",
        "empty_fixed": (b"", h5py.string_dtype("ascii", 4)),
    }


@pytest.mark.parametrize("libver", LIBVERS, ids=str)
@pytest.mark.parametrize("userblock", [0, 512, 4096])
def test_string_kinds_match_h5py(tmp_path, libver, userblock):
    items = list(string_kinds().items())
    for i in range(0, len(items), 5):     # at most 8 attributes, or "latest" stores them densely
        kinds = dict(items[i:i + 5])
        p = write(tmp_path / f"a{i}.h5", kinds, LIBVERS[libver], userblock)
        assert superblock_version(p) == {"earliest": 0, "v108": 2, "latest": 3}[libver]
        got = fast(p, list(kinds) + ["missing"])
        assert got == truth(p, list(kinds))
        assert set(got) == set(kinds)


@pytest.mark.parametrize("libver", LIBVERS, ids=str)
def test_large_model_config(tmp_path, libver):
    layers = [{"class_name": "Dense", "config": {"name": f"dense_{i}", "units": i}} for i in range(5000)]
    config = json.dumps({"class_name": "Sequential", "config": {"name": "big", "layers": layers}})
    assert len(config) > 200_000
    p = write(tmp_path / "big.h5", {"model_config": config, "keras_version": b"2.15.0",
                                    "backend": "tensorflow"}, LIBVERS[libver])
    got = fast(p)
    assert got == truth(p) and got["model_config"] == config


def test_superblock_v1_and_4_byte_offsets(tmp_path):
    attrs = {"model_config": "x" * 3000, "keras_version": b"2.1.6", "backend": "tf"}
    files = []
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_sizes(4, 4)
    files.append(write(tmp_path / "o4.h5", attrs, fcpl=fcpl))
    # A non-default indexed-storage K gives superblock version 1; h5py has no
    # wrapper for H5Pset_istore_k, so call the libhdf5 that h5py loaded.
    libs = sorted((Path(h5py.__file__).parent.parent / "h5py.libs").glob("libhdf5-*"))
    if libs:
        fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
        assert ctypes.CDLL(str(libs[0])).H5Pset_istore_k(ctypes.c_int64(fcpl.id), ctypes.c_uint(64)) >= 0
        files.append(write(tmp_path / "v1.h5", attrs, fcpl=fcpl))
        assert superblock_version(files[-1]) == 1
    for p in files:
        assert fast(p) == truth(p) and set(fast(p)) == {"model_config", "keras_version", "backend"}


def test_continuation_blocks(tmp_path):
    """Attributes added after creation land in continuation chunks."""
    for libver in LIBVERS.values():
        p = tmp_path / "cont.h5"
        with h5py.File(p, "w", libver=libver) as f:
            f.attrs["a"] = "1"
        with h5py.File(p, "a", libver=libver) as f:
            f.attrs["keras_version"] = b"2.15.0" * 50
            f.attrs["model_config"] = "y" * 900
            del f.attrs["a"]
            f.attrs["backend"] = "tensorflow"
        assert fast(p) == truth(p) and len(fast(p)) == 3


def test_one_element_array(tmp_path):
    p = write(tmp_path / "arr.h5", {"model_config": ["[1]"], "backend": np.array([b"tf"])})
    assert fast(p) == truth(p) == {"model_config": "[1]", "backend": "tf"}
    with pytest.raises(Unsupported):
        fast(p, scalar_only=True)


@pytest.mark.parametrize("value", [np.int64(3), np.array(["a", "b"], dtype=object), np.float32(1.5),
                                   (b"ab  ", None)], ids=["int", "2-array", "float", "spacepad"])
def test_other_datatypes_unsupported(tmp_path, value):
    if isinstance(value, tuple):
        tid = h5py.h5t.C_S1.copy()
        tid.set_size(4)
        tid.set_strpad(h5py.h5t.STR_SPACEPAD)
        p = write(tmp_path / "o.h5", {})
        with h5py.File(p, "a") as f:
            f.attrs.create("backend", value[0], dtype=h5py.Datatype(tid))
    else:
        p = write(tmp_path / "o.h5", {"backend": value})
    for names in (NAMES, ["model_config"]):   # the library decodes every attribute; so do we
        with pytest.raises(Unsupported):
            fast(p, names)


def test_absent_names_left_out(tmp_path):
    p = write(tmp_path / "none.h5", {})
    assert fast(p) == {} == truth(p)


# -- dense attribute storage falls back to h5py ------------------------------------------------

def test_dense_storage_unsupported_and_read_h5_falls_back(tmp_path, monkeypatch):
    src = EXAMPLES / "seed_cnn.h5"
    p = tmp_path / "dense.h5"
    with h5py.File(src, "r") as s, h5py.File(p, "w", libver="latest") as d:
        for k, v in s.attrs.items():
            d.attrs[k] = v
        for i in range(12):
            d.attrs[f"extra_{i}"] = f"value {i}"
        s.copy("model_weights", d)
    with pytest.raises(Unsupported):
        fast(p)
    # Same attributes in compact storage (earliest format) are read.
    q = tmp_path / "compact.h5"
    with h5py.File(p, "r") as s, h5py.File(q, "w", libver="earliest") as d:
        for k, v in s.attrs.items():
            d.attrs[k] = v
    assert fast(q) == truth(q)
    called = []
    real = keras_files._h5py_child
    monkeypatch.setattr(keras_files, "_h5py_child", lambda task: called.append(task) or real(task))
    g = read_h5(p)
    assert called, "dense attributes must be read by h5py (in its child process)"
    assert graph_dict(g).replace(str(p), "X") == graph_dict(read_h5(src)).replace(str(src), "X")


def test_needs_weights_opens_h5py_only_then(monkeypatch):
    called = []
    real = keras_files._h5py_child
    monkeypatch.setattr(keras_files, "_h5py_child", lambda task: called.append(task) or real(task))
    read_h5(EXAMPLES / "seed_cnn.h5")
    assert not called
    monkeypatch.setattr(keras_files, "_needs_weights", lambda graph: True)
    read_h5(EXAMPLES / "seed_cnn.h5")
    assert called


# -- damaged input ---------------------------------------------------------------------------

def _clean(path):
    """Unsupported, or a dict of text: never a hang or another exception."""
    try:
        got = fast(path)
    except Unsupported:
        return None
    assert isinstance(got, dict) and all(isinstance(v, str) for v in got.values())
    return got


@pytest.mark.parametrize("path", REAL_FILES[:3] + [EXAMPLES / "seed_cnn.h5"], ids=lambda p: p.name)
def test_truncated_files(tmp_path, path):
    data = path.read_bytes()
    cuts = sorted(set(list(range(0, 4096, 37)) + [len(data) * k // 10 for k in range(1, 10)]
                      + [len(data) - 1]))
    p = tmp_path / "t.h5"
    for cut in cuts:
        p.write_bytes(data[:cut])
        with pytest.raises(Unsupported):   # the stored end-of-file address is past the end
            fast(p)


def test_random_bytes_and_bit_flips(tmp_path):
    rng = random.Random(1234)
    p = tmp_path / "r.h5"
    for n in (0, 7, 8, 100, 5000):
        p.write_bytes(bytes(rng.getrandbits(8) for _ in range(n)))
        assert _clean(p) is None
        p.write_bytes(hdf5_attrs.SIGNATURE + bytes(rng.getrandbits(8) for _ in range(n)))
        assert _clean(p) is None
    kinds = dict(list(string_kinds().items())[:6])
    for src in [EXAMPLES / "seed_cnn.h5"] + [write(tmp_path / f"{k}.h5", kinds, v)
                                             for k, v in LIBVERS.items()]:
        data = bytearray(src.read_bytes())
        for _ in range(300):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(min(len(data), 6000))] = rng.getrandbits(8)
            p.write_bytes(mutated)
            _clean(p)


def test_hostile_lengths_are_bounded(tmp_path):
    """A huge chunk size or heap collection size is refused, not allocated."""
    src = write(tmp_path / "s.h5", {"model_config": "abc"}, "earliest")
    data = bytearray(src.read_bytes())
    root = int.from_bytes(data[64:72], "little")     # root symbol table entry: object header
    assert data[root] == 1
    data[root + 8:root + 12] = (0xFFFFFFF0).to_bytes(4, "little")   # v1 header size
    p = tmp_path / "h.h5"
    p.write_bytes(data)
    with pytest.raises(Unsupported):
        fast(p)


def test_big_file_is_not_read_whole(tmp_path, monkeypatch):
    p = tmp_path / "big.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("w", data=np.ones(8_000_000, dtype="float32"))    # 32 MB
        f.attrs["model_config"] = "m" * 100_000
        f.attrs["keras_version"] = b"2.15.0"
    read = []

    class Counting:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def read(self, n):
            read.append(n)
            return self.f.read(n)

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(hdf5_attrs, "open", lambda *a: Counting(open(*a)), raising=False)
    assert fast(p) == truth(p)
    assert sum(read) < 200_000 and len(read) < 20


# -- no h5py or numpy for a plain summary ------------------------------------------------------

def test_summary_imports_neither_h5py_nor_numpy():
    code = ("import sys\nfrom modellint.cli import main\n"
            "rc = main(['summary', 'examples/seed_cnn.h5'])\n"
            "print('RESULT', rc, sorted(m for m in ('h5py', 'numpy') if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "RESULT 0 []", r.stdout


def test_lookup3_known_values():
    # Values from Bob Jenkins' lookup3.c driver (hashlittle, initval 0 / 13).
    assert hdf5_attrs._lookup3(b"", 0) == 0xDEADBEEF
    assert hdf5_attrs._lookup3(b"Four score and seven years ago", 0) == 0x17770551
    assert hdf5_attrs._lookup3(b"Four score and seven years ago", 1) == 0xCD628161
