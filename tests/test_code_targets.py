"""`package.module:factory` code targets on the command line."""

import json
import textwrap

import pytest

from conftest import have_keras, run_cli

KERAS_FACTORY = textwrap.dedent("""
    import keras
    from keras import layers

    def build():
        return keras.Sequential([keras.Input((32, 32, 3)), layers.Conv2D(8, 3, activation="relu"),
                                 layers.GlobalAveragePooling2D(), layers.Dense(4, activation="softmax")])

    NOT_A_MODEL = 42
""")

TORCH_FACTORY = textwrap.dedent("""
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.relu = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))

    def build():
        return Net()
""")


@pytest.mark.skipif(not have_keras(), reason="Keras not installed")
def test_keras_factory(tmp_path):
    (tmp_path / "kmodels.py").write_text(KERAS_FACTORY)
    r = run_cli("summary", "kmodels:build", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["params"]["total"] == (3 * 9 * 8 + 8) + (8 * 4 + 4)
    assert data["model"]["path"] == "kmodels:build"


@pytest.mark.skipif(not have_keras(), reason="Keras not installed")
def test_keras_factory_probes(tmp_path):
    """`modellint probe package.module:factory` trains what a Keras factory builds (not only files)."""
    import numpy as np

    (tmp_path / "kmodels.py").write_text(KERAS_FACTORY)
    rng = np.random.default_rng(0)
    y = np.arange(64) % 4
    np.savez(tmp_path / "d.npz", x=(rng.random((64, 32, 32, 3)) * 255).astype(np.uint8), y=y)
    # a fixed plan (no time limits) and a budget no busy machine's start-up exhausts: the same steps anywhere
    (tmp_path / "plan.json").write_text(json.dumps({"eval_images": 16, "steps": {"overfit_batch": 10}}))
    r = run_cli("probe", "kmodels:build", "--data", "d.npz", "--budget", "600", "--probes", "init_loss,overfit_batch",
                "--plan", "plan.json", "--no-cache", "--exit-zero", "-q", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    probes = json.loads(r.stdout)["reports"][0]["probes"]
    assert probes["settings"]["runner"] == "keras"
    assert {name: res["status"] for name, res in probes["results"].items()} == {"init_loss": "ok",
                                                                                 "overfit_batch": "ok"}
    assert probes["results"]["overfit_batch"]["metrics"]["steps"] == 10


def test_torch_factory(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("modellint.adapters.torch_live")
    (tmp_path / "tmodels.py").write_text(TORCH_FACTORY)
    for target in ("tmodels:build", "tmodels:Net"):
        r = run_cli("summary", target, "--input-shape", "1,3,32,32", "--format", "json", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        data = json.loads(r.stdout)
        assert data["params"]["total"] == (3 * 9 * 8 + 8) + (8 * 4 + 4)


@pytest.mark.parametrize("target,problem", [
    ("no_such_module_xyz:build", "cannot import no_such_module_xyz"),
    ("kmodels:missing", "has no attribute"),
    ("kmodels:NOT_A_MODEL", "did not give"),
])
def test_bad_targets_one_line_exit_2(tmp_path, target, problem):
    """One line on stderr although importing the factory's module imports TensorFlow, even with its C++ logs
    switched on in the environment: the CLI silences them before any framework import."""
    (tmp_path / "kmodels.py").write_text(KERAS_FACTORY if have_keras() else "NOT_A_MODEL = 42\n")
    r = run_cli("check", target, cwd=tmp_path, env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert r.returncode == 2 and problem in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
