"""keras-hub backbones (issue 12): a config naming a class registered by an installed package is
built through Keras' own deserialisation in safe mode and read live; counts and shapes equal
Keras' own. A config naming a script's class or a package that is not installed is refused, one
line, exit 2, with nothing run."""

import json
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import keras_only

pytestmark = [keras_only, pytest.mark.keras]

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

HUB = ("ResNetBackbone (basic, v2)", "ViTBackbone", "BertBackbone", "EfficientNetBackbone")


@pytest.mark.parametrize("name", HUB)
def test_keras_hub_backbone(name, tmp_path):
    pytest.importorskip("keras_hub")
    from zoo_keras import hub_builders

    from modellint import load_graph

    model = hub_builders()[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(tmp_path / "m.keras")
    g = load_graph(tmp_path / "m.keras")
    assert g.total_params == model.count_params()
    assert g.trainable_params == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert [g.display_shape(g.shape_of(o)) for o in g.outputs] == [tuple(t.shape) for t in model.outputs]
    assert [n.name for n in g if n.op == "unknown"] == []
    cls = type(model).__name__
    assert f"built through keras_hub's registered class {cls} in Keras safe mode" in " ".join(g.notes)
    assert g.model_class == cls


def _archive(path, config):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        zf.writestr("config.json", json.dumps(config))
    return path


@pytest.mark.parametrize("registered, expected", [
    ("__main__>Evil", "defined in a script (__main__)"),
    ("os>system", "os is not an installed package"),
    ("modellint_no_such_pkg>Backbone", "needs the modellint_no_such_pkg package installed"),
    ("keras_hub>NoSuchBackbone", "registers no such class"),
    ("keras_hub>../../x", "not a class registered by an installed package"),
])
def test_registered_class_refused(registered, expected, tmp_path, capsys, monkeypatch):
    """Refused before anything from the file runs: the named module is never imported."""
    if registered.startswith("keras_hub>"):
        pytest.importorskip("keras_hub")
    from modellint.cli import main

    path = _archive(tmp_path / "m.keras", {"class_name": registered.split(">")[-1], "registered_name": registered,
                                           "module": registered.split(">")[0], "config": {"name": "x"}})
    before = set(sys.modules)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and expected in err, err
    assert "modellint_no_such_pkg" not in sys.modules
    assert not ({m for m in set(sys.modules) - before} & {"__main__.Evil"})


def test_script_beside_the_model_is_not_imported(tmp_path, capsys, monkeypatch):
    """A package-looking module next to the model (or in the working directory) is not an
    installed package: refused, and never imported."""
    (tmp_path / "evilpkg_ml12.py").write_text("raise SystemExit('imported!')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    from modellint.cli import main

    path = _archive(tmp_path / "m.keras", {"class_name": "B", "registered_name": "evilpkg_ml12>B",
                                           "module": "evilpkg_ml12", "config": {"name": "x"}})
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "evilpkg_ml12 is not an installed package" in err and len(err.splitlines()) == 1, err
    assert "evilpkg_ml12" not in sys.modules
