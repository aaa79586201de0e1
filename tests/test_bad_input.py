"""Bad input: one line naming the file and the problem, exit 2, no traceback, file unchanged."""

import io
import json
import os
import zipfile

import h5py
import pytest

from conftest import EXAMPLES, run_cli, sha256


def _make(tmp_path, kind):
    p = tmp_path / "model.h5"
    seed_h5 = (EXAMPLES / "seed_cnn.h5").read_bytes()
    if kind == "missing":
        return tmp_path / "nope.h5", "no such file"
    if kind == "directory":
        d = tmp_path / "dir.keras"
        d.mkdir()
        return d, "is a directory"
    if kind == "empty":
        p.write_bytes(b"")
        return p, "empty file"
    if kind == "truncated_h5":
        p.write_bytes(seed_h5[: len(seed_h5) // 3])
        return p, "truncated or corrupt"
    if kind == "truncated_header":
        p.write_bytes(seed_h5[:100])
        return p, "truncated or corrupt"
    if kind == "random":
        p = tmp_path / "model.keras"
        p.write_bytes(os.urandom(4096).replace(b"PK", b"pk").replace(b"\x89H", b"\x00H").lstrip(b"{[ \t\r\n\x80"))
        return p, "unrecognised file format"
    if kind == "zip_without_config":
        p = tmp_path / "model.keras"
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("metadata.json", "{}")
        return p, "no config.json"
    if kind == "zip_bad_config":
        p = tmp_path / "model.keras"
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("config.json", "{not json")
        return p, "config.json is not valid JSON"
    if kind == "json_not_model":
        p = tmp_path / "model.json"
        p.write_text(json.dumps({"hello": "world"}))
        return p, "JSON is not a Keras model"
    if kind == "json_broken_model":
        p = tmp_path / "model.json"
        p.write_text(json.dumps({"class_name": "Functional", "config": {"layers": [
            {"class_name": "Dense", "name": "d", "config": {"name": "d", "units": 3},
             "inbound_nodes": [[["ghost", 0, 0, {}]]]}],
            "input_layers": [], "output_layers": [["d", 0, 0]]}}))
        return p, "never produced"
    if kind == "hdf5_not_keras":
        with h5py.File(p, "w") as f:
            f.create_dataset("x", data=[1, 2, 3])
        return p, "not a Keras model"
    if kind == "weights_only":
        with h5py.File(p, "w") as f:
            f.attrs["layer_names"] = [b"conv2d_1", b"dense_1"]
            f.create_group("conv2d_1")
        return p, "weights only"
    if kind == "pickle":
        p = tmp_path / "model.h5"
        p.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
        return p, "pickle"
    raise AssertionError(kind)


KINDS = ["missing", "directory", "empty", "truncated_h5", "truncated_header", "random",
         "zip_without_config", "zip_bad_config", "json_not_model", "json_broken_model",
         "hdf5_not_keras", "weights_only", "pickle"]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_one_line_exit_2(tmp_path, kind):
    path, problem = _make(tmp_path, kind)
    before = sha256(path) if path.is_file() else None
    listing = sorted(os.listdir(tmp_path))
    r = run_cli("summary", path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert str(path) in lines[0] and problem in lines[0], lines[0]
    assert r.stdout == ""
    if before is not None:
        assert sha256(path) == before
    assert sorted(os.listdir(tmp_path)) == listing  # nothing written beside it


def test_weights_only_paired_with_config(tmp_path):
    """--config pairs a weights-only .h5 with its architecture JSON."""
    weights, _ = _make(tmp_path, "weights_only")
    cfg = tmp_path / "arch.json"
    with zipfile.ZipFile(EXAMPLES / "seed_cnn.keras") as z:
        cfg.write_bytes(z.read("config.json"))
    r = run_cli("summary", weights, "--config", cfg, "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["params"]["total"] == 168793


def test_extension_that_lies(tmp_path):
    """An HDF5 file named .keras and a zip named .h5 are read by content."""
    fake_keras = tmp_path / "really_h5.keras"
    fake_keras.write_bytes((EXAMPLES / "seed_cnn.h5").read_bytes())
    fake_h5 = tmp_path / "really_zip.h5"
    fake_h5.write_bytes((EXAMPLES / "seed_cnn.keras").read_bytes())
    for p in (fake_keras, fake_h5):
        r = run_cli("summary", p, "--format", "json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["params"]["total"] == 168793


def test_usage_error_is_one_line():
    r = run_cli("summary", "--format", "xml", "x.h5")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_lambda_layer_recorded_not_executed(tmp_path):
    """A Lambda config whose 'function' would print if decoded and run: we only record it."""
    import base64
    import marshal

    code = compile("print('PWNED'); open('pwned.txt', 'w')", "<x>", "exec")
    payload = base64.b64encode(marshal.dumps(code)).decode()
    model = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 8], "name": "in"}},
        {"class_name": "Lambda", "config": {"name": "evil", "function": {"class_name": "__lambda__",
                                                                             "config": {"code": payload}}}},
        {"class_name": "Dense", "config": {"name": "d", "units": 2}, "build_config": {"input_shape": [None, 8]}},
    ]}}
    p = tmp_path / "lambda.json"
    p.write_text(json.dumps(model))
    r = run_cli("summary", p, "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "PWNED" not in r.stdout + r.stderr and not (tmp_path / "pwned.txt").exists()
    data = json.loads(r.stdout)
    evil = next(layer for layer in data["layers"] if layer["name"] == "evil")
    assert evil["op"] == "unknown"
    # the shape after the Lambda is recovered from the next layer's build_config
    assert evil["output_shape"] == [None, 8]
    assert data["params"]["total"] == 8 * 2 + 2


def test_unreadable_file_prints_one_line_and_writes_nothing(tmp_path):
    """Nothing read: one error line on stderr, nothing on stdout, no report file written."""
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"garbage")
    html = tmp_path / "report.html"
    r = run_cli("check", bad, "--html", html)
    assert r.returncode == 2 and r.stdout.strip() == ""
    assert len(r.stderr.strip().splitlines()) == 1 and str(bad) in r.stderr
    assert not html.exists()
