"""The pre-commit hook (.pre-commit-hooks.yaml), run by the real ``pre-commit``.

``pre-commit try-repo`` installs this repository into a fresh virtualenv exactly as a
user's ``.pre-commit-config.yaml`` would, then runs the hook on model files in a
throwaway git repository: it must fail (exit 1) on the seed CNN, which has warnings,
and pass on a clean CNN. try-repo only carries tracked changes of a dirty checkout, so
the hook repository is a snapshot of the working tree (tracked and untracked,
non-ignored files) committed into a temporary git repository. try-repo uses a fresh
store per call, so each call installs the hook (~12 s): two calls in all.

Needs ``git`` and a package index reachable by pip (h5py, numpy); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed_cnn.h5"
# what the hook install needs: the package and its metadata
_SNAPSHOT_TOP = ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "setup.py", "MANIFEST.in",
                 ".pre-commit-hooks.yaml")

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


# -- a clean model, written without modellint ---------------------------------------

def _layer(class_name: str, name: str, **config) -> dict:
    return {"module": "keras.layers", "class_name": class_name,
            "config": {"name": name, "trainable": True, "dtype": "float32", **config},
            "registered_name": None}


def _conv(name: str, filters: int) -> dict:
    return _layer("Conv2D", name, filters=filters, kernel_size=[3, 3], strides=[1, 1], padding="same",
                  data_format="channels_last", dilation_rate=[1, 1], groups=1, activation="linear",
                  use_bias=False,
                  kernel_initializer={"module": "keras.initializers", "class_name": "HeNormal",
                                      "config": {"seed": None}, "registered_name": None},
                  bias_initializer={"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                    "registered_name": None},
                  kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                  kernel_constraint=None, bias_constraint=None)


def _bn(name: str) -> dict:
    return _layer("BatchNormalization", name, axis=-1, momentum=0.99, epsilon=0.001, center=True, scale=True)


def clean_cnn_config() -> dict:
    """A small, sensible Keras 3 CNN for 32×32 RGB, 10 classes: fixed input scaling,
    conv (no bias) → BN → ReLU → pool stages whose receptive field covers the input,
    widening channels, global average pooling, dropout, softmax head, compiled with a
    matching loss."""
    layers = [{"module": "keras.layers", "class_name": "InputLayer",
               "config": {"batch_shape": [None, 32, 32, 3], "dtype": "float32", "sparse": False,
                          "name": "input_layer"}, "registered_name": None},
              _layer("Rescaling", "rescaling", scale=1 / 255, offset=0.0)]
    for i, filters in enumerate((32, 64, 128), start=1):
        layers += [_conv(f"conv2d_{i}", filters), _bn(f"batch_normalization_{i}"),
                   _layer("Activation", f"activation_{i}", activation="relu"),
                   _layer("MaxPooling2D", f"max_pooling2d_{i}", pool_size=[2, 2], strides=[2, 2],
                          padding="valid", data_format="channels_last")]
    layers += [_conv("conv2d_4", 128), _bn("batch_normalization_4"),
               _layer("Activation", "activation_4", activation="relu"),
               _layer("GlobalAveragePooling2D", "global_average_pooling2d", data_format="channels_last",
                      keepdims=False),
               _layer("Dropout", "dropout", rate=0.3, seed=None, noise_shape=None),
               _layer("Dense", "dense", units=10, activation="softmax", use_bias=True,
                      kernel_initializer={"module": "keras.initializers", "class_name": "GlorotUniform",
                                          "config": {"seed": None}, "registered_name": None},
                      bias_initializer={"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                        "registered_name": None},
                      kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                      kernel_constraint=None, bias_constraint=None)]
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": "clean_cnn", "trainable": True, "dtype": "float32", "layers": layers},
            "registered_name": None,
            "build_config": {"input_shape": [None, 32, 32, 3]},
            "compile_config": {"optimizer": {"module": "keras.optimizers", "class_name": "Adam",
                                             "config": {"name": "adam", "learning_rate": 0.001, "beta_1": 0.9,
                                                        "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False},
                                             "registered_name": None},
                               "loss": "categorical_crossentropy", "loss_weights": None,
                               "metrics": ["accuracy"], "weighted_metrics": None, "run_eagerly": False,
                               "steps_per_execution": 1, "jit_compile": False}}


def write_clean_keras(path: Path) -> Path:
    """A Keras-3 ``.keras`` archive (config and metadata only, no weights file)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, obj in (("metadata.json", {"keras_version": "3.15.1", "date_saved": "2026-01-01@00:00:00"}),
                          ("config.json", clean_cnn_config())):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, json.dumps(obj, indent=2))
    return path


# -- helpers ---------------------------------------------------------------------------

def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _git_env(home: Path) -> dict:
    env = dict(os.environ)
    env.update({"GIT_CONFIG_GLOBAL": str(home / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
                "PRE_COMMIT_HOME": str(home / "pre-commit-cache"), "PRE_COMMIT_COLOR": "never",
                "NO_COLOR": "1"})
    env.pop("GIT_DIR", None)
    env.pop("GIT_INDEX_FILE", None)
    return env


def _init_repo(path: Path, env: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for args in (("init", "-q"), ("config", "user.name", "modellint tests"),
                 ("config", "user.email", "tests@modellint.invalid"), ("config", "commit.gpgsign", "false")):
        subprocess.run(["git", *args], cwd=path, check=True, env=env, capture_output=True)


def _commit_all(path: Path, env: dict) -> None:
    subprocess.run(["git", "add", "-A"], cwd=path, check=True, env=env, capture_output=True)
    subprocess.run(["git", "commit", "-q", "-m", "snapshot"], cwd=path, check=True, env=env, capture_output=True)


def _snapshot_working_tree(dest: Path, env: dict) -> Path:
    """The package as it is on disk now (not as last committed), as a one-commit git repo."""
    files = [ROOT / name for name in _SNAPSHOT_TOP if (ROOT / name).is_file()]
    try:
        listed = _git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "--", "modellint")
        files += [ROOT / line for line in listed.splitlines() if line]
    except (subprocess.CalledProcessError, FileNotFoundError):
        files += [p for p in (ROOT / "modellint").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for src in files:
        if not src.is_file():  # deleted in the working tree
            continue
        target = dest / src.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    _init_repo(dest, env)
    _commit_all(dest, env)
    return dest


@pytest.fixture(scope="module")
def hook_env(tmp_path_factory):
    if not (ROOT / ".pre-commit-hooks.yaml").is_file():
        pytest.fail(".pre-commit-hooks.yaml is missing at the repository root")
    pre_commit = shutil.which("pre-commit", path=str(Path(sys.executable).parent)) or shutil.which("pre-commit")
    if pre_commit is None:
        pytest.skip("pre-commit is not installed (dev extra)")
    base = tmp_path_factory.mktemp("precommit")
    env = _git_env(base)
    (base / "gitconfig").write_text("")
    hook_repo = _snapshot_working_tree(base / "hook-repo", env)
    project = base / "project"
    _init_repo(project, env)
    shutil.copy2(SEED, project / "bad_model.h5")
    write_clean_keras(project / "clean_model.keras")
    (project / "notes.txt").write_text("not a model\n")
    _commit_all(project, env)

    def run(*files: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([pre_commit, "try-repo", str(hook_repo), "modellint", "--verbose", "--files", *files],
                              cwd=project, env=env, capture_output=True, text=True, timeout=900)
        if _no_index(proc):
            pytest.skip("pre-commit could not install the hook: no package index reachable")
        return proc

    return run


def _output(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def _no_index(proc: subprocess.CompletedProcess) -> bool:
    text = proc.stdout + proc.stderr
    return proc.returncode == 3 and any(s in text for s in (
        "Could not find a version", "No matching distribution", "Failed to establish a new connection",
        "Temporary failure in name resolution"))


def test_hook_fails_on_model_with_warnings(hook_env):
    proc = hook_env("bad_model.h5")
    assert proc.returncode == 1, _output(proc)
    out = proc.stdout
    assert "modellint" in out and "Failed" in out, _output(proc)
    assert "bad_model.h5" in out and "[warning]" in out, _output(proc)
    assert "clean_model" not in out


def test_hook_passes_on_clean_model(hook_env):
    # notes.txt is filtered out by the hook's `files` pattern (never handed to modellint)
    proc = hook_env("clean_model.keras", "notes.txt")
    assert proc.returncode == 0, _output(proc)
    assert "Passed" in proc.stdout, _output(proc)
    assert "clean_model.keras" in proc.stdout and "notes.txt" not in proc.stdout.split("Passed", 1)[1]


def test_hook_definition():
    yaml = pytest.importorskip("yaml")  # comes with pre-commit
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "modellint" and hook["name"]
    assert hook["entry"] == "modellint check" and hook["language"] == "python"
    assert hook["types"] == ["file"] and hook["require_serial"] is False
    import re

    pattern = re.compile(hook["files"])
    for name in ("m.h5", "m.hdf5", "a/b.keras", "m.pt", "m.pt2", "m.pth", "m.onnx"):
        assert pattern.search(name), name
    for name in ("m.json", "m.h5.txt", "model.py", "m.ckpt"):
        assert not pattern.search(name), name
