"""Keras, JSON and HDF5 readers name the problem, not a Python exception (issue 10).

Damaged configs and archives from the fuzz corpus (seeds 0 and 7) used to end as
"malformed Keras model config (AttributeError: 'str' object has no attribute 'get')",
"corrupt .keras archive (OSError: [Errno 22] Invalid argument)" or "corrupt HDF5 file
(KeyError: 'Unable to synchronously open object ...')": the promise held (one line, exit 2)
but the line quoted an exception the reader had not foreseen. Each is now a specific message.
"""

from __future__ import annotations

import copy
import json
import re
import zipfile

import numpy as np
import pytest

import modellint
from conftest import EXAMPLES
from modellint.errors import InputError

h5py = pytest.importorskip("h5py")

SEED_KERAS = EXAMPLES / "seed_cnn.keras"
RAW_EXCEPTION = re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception)\b")


def _config():
    with zipfile.ZipFile(SEED_KERAS) as zf:
        return json.loads(zf.read("config.json"))


def _refused(path, *needles):
    with pytest.raises(InputError) as info:
        modellint.load_graph(str(path))
    text = str(info.value)
    assert "\n" not in text and not RAW_EXCEPTION.search(text), text
    for needle in needles:
        assert needle in text, text
    return text


def _layer(cfg, i=1):
    """Layer ``i``, its name also at the top of its entry (as Keras 2 and functional configs have it)."""
    entry = cfg["config"]["layers"][i]
    entry["name"] = entry["config"]["name"]
    return entry


CONFIG_CASES = {
    "class_name_list": (lambda c: _layer(c).__setitem__("class_name", ["Dense"]), "class_name ['Dense'] is not a string"),
    "config_string": (lambda c: _layer(c).__setitem__("config", "same"), "config 'same' is not an object"),
    "config_int": (lambda c: _layer(c).__setitem__("config", 10 ** 30), "is not an object"),
    "build_config_list": (lambda c: _layer(c).__setitem__("build_config", [-1, -1]),
                          "build_config [-1, -1] is not an object"),
    "no_layer_list": (lambda c: c["config"].pop("layers"), "Sequential config has no layer list"),
    "inbound_nodes_dict": (lambda c: _layer(c).__setitem__("inbound_nodes", {"0": 1}), None),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_damaged_config_values_are_named(case, tmp_path):
    edit, needle = CONFIG_CASES[case]
    cfg = copy.deepcopy(_config())
    edit(cfg)
    p = tmp_path / "model.json"
    p.write_text(json.dumps(cfg))
    if needle is None:  # a Sequential layer's inbound_nodes are never read: the model loads
        assert len(modellint.load_graph(str(p))) > 3
    else:
        _refused(p, needle)


def test_empty_sequential_with_an_input_shape(tmp_path):
    p = tmp_path / "model.json"
    p.write_text(json.dumps({"class_name": "Sequential",
                             "config": {"name": "s", "layers": [], "build_input_shape": [None, 8]}}))
    _refused(p, "Sequential model has an input shape but no layers")


def test_a_5000_digit_number(tmp_path):
    text = json.dumps(_config())
    text = text.replace('"filters": 32', '"filters": ' + "9" * 5000, 1)
    assert "9" * 5000 in text
    p = tmp_path / "model.json"
    p.write_text(text)
    _refused(p, "holds a number of 5,000 digits")


def _rewrite_keras(tmp_path, name, **change):
    """The seed .keras with config.json's ZipInfo changed (flag bits, compression method) in place."""
    data = bytearray(SEED_KERAS.read_bytes())
    with zipfile.ZipFile(SEED_KERAS) as zf:
        info = zf.getinfo("config.json")
    local = info.header_offset
    # patch both the local header and the central directory entry of config.json
    cd = data.find(b"PK\x01\x02")
    while cd != -1:
        name_len = int.from_bytes(data[cd + 28:cd + 30], "little")
        if data[cd + 46:cd + 46 + name_len] == b"config.json":
            break
        cd = data.find(b"PK\x01\x02", cd + 4)
    assert cd != -1
    if "flag" in change:
        for at in (local + 6, cd + 8):
            data[at] |= change["flag"]
    if "method" in change:
        for at in (local + 8, cd + 10):
            data[at:at + 2] = change["method"].to_bytes(2, "little")
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_encrypted_member(tmp_path):
    _refused(_rewrite_keras(tmp_path, "enc.keras", flag=0x1), "config.json is encrypted")


@pytest.mark.parametrize("method,name", [(9, "Deflate64"), (93, "Zstandard")])
def test_unreadable_compression_method(tmp_path, method, name):
    _refused(_rewrite_keras(tmp_path, f"m{method}.keras", method=method),
             f"compressed with method {method} ({name})")


def test_bytes_cut_from_the_front(tmp_path):
    """Bytes deleted before the directory: zipfile places config.json before the file's start (it used
    to seek there: OSError EINVAL)."""
    data = SEED_KERAS.read_bytes()
    p = tmp_path / "cut.keras"
    p.write_bytes(data[:10] + data[4000:])
    _refused(p, "corrupt .keras archive")


def test_bad_crc_names_the_member(tmp_path):
    data = bytearray(SEED_KERAS.read_bytes())
    with zipfile.ZipFile(SEED_KERAS) as zf:
        info = zf.getinfo("config.json")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 100] ^= 0x20
    p = tmp_path / "crc.keras"
    p.write_bytes(data)
    _refused(p, "Bad CRC-32 for file 'config.json'")


def test_h5_model_config_not_utf8(tmp_path):
    """Read by the h5py child (a non-string attribute first): bytes that are not UTF-8."""
    p = tmp_path / "latin.h5"
    with h5py.File(p, "w") as f:
        f.attrs["aaa_ints"] = np.arange(3)
        f.attrs["model_config"] = np.bytes_(b'{"class_name": "Sequential", "config": {"name": "\xff"}}')
    _refused(p, "model_config attribute is not UTF-8 text: byte 0xff")


def test_hdf5_reason_is_libhdf5s_words():
    from modellint.adapters.keras_files import _hdf5_reason

    assert _hdf5_reason(KeyError("Unable to synchronously open object (unable to determine object type)")) \
        == "unable to determine object type"
    assert _hdf5_reason(RuntimeError("Can't synchronously determine if attribute exists by name "
                                     "(precision is zero)")) == "precision is zero"
    assert _hdf5_reason(OSError("plain words")) == "plain words"
