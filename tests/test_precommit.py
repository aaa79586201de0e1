"""The pre-commit hook (.pre-commit-hooks.yaml), run by the real ``pre-commit``.

``pre-commit try-repo`` installs this repository into a fresh virtualenv exactly as a
user's ``.pre-commit-config.yaml`` would (core dependencies only: no torch, no onnx),
then runs the hook on model files in a throwaway git repository: it must fail (exit 1)
on the seed CNN, which has warnings, pass on a clean CNN, and skip a state_dict ``.pth``
with a note (torch is not installed there). try-repo only carries tracked changes of a
dirty checkout, so the hook repository is a snapshot of the working tree (tracked and untracked,
non-ignored files) committed into a temporary git repository. try-repo uses a fresh
store per call, so each call installs the hook (~12 s): two calls in all.

A second repository uses the README's ``repo: local`` forms with ``pre-commit run``:
``language: python`` installing modellint from ``additional_dependencies`` (one install
for all its runs; no torch there either: a truncated ``.h5`` and a hostile pickle still
fail with exit 2), and ``language: system`` running this interpreter, where torch is
installed: the state_dict is still skipped (it holds no architecture), and the
repository's ``per-file`` settings give its two datasets their own class counts.

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


def write_state_dict(path: Path) -> Path:
    """What most PyTorch projects commit: ``torch.save(model.state_dict())``."""
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 30 * 30, 10))
    torch.save(model.state_dict(), path)
    return path


def write_pickled_module(path: Path) -> Path:
    """``torch.save(model)``: the whole nn.Module pickled (readable only with --trust-pickle)."""
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 30 * 30, 10))
    torch.save(model, path)
    return path


def write_hostile_pickle(path: Path) -> Path:
    """A legacy-format pickle whose object is ``os.system("...")``: never loaded here, and
    refused by modellint's opcode scan before torch (or anything) would unpickle it."""
    path.write_bytes(b"\x80\x02cposix\nsystem\nq\x00X\x0b\x00\x00\x00echo pwned!q\x01\x85q\x02Rq\x03.")
    return path


def write_truncated_h5(path: Path) -> Path:
    """The seed model cut off after 2,000 bytes, as an interrupted copy leaves it."""
    path.write_bytes(SEED.read_bytes()[:2000])
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
    write_state_dict(project / "weights.pth")
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
    # notes.txt is filtered out by the hook's `files` pattern (never handed to modellint); the
    # state_dict is handed to it, and skipped with a note: the hook's environment has no torch
    proc = hook_env("clean_model.keras", "notes.txt", "weights.pth")
    assert proc.returncode == 0, _output(proc)
    assert "Passed" in proc.stdout, _output(proc)
    assert "clean_model.keras" in proc.stdout and "notes.txt" not in proc.stdout.split("Passed", 1)[1]
    note = "modellint: note: skipped weights.pth: reading PyTorch files needs torch: pip install 'modellint[torch]'"
    assert note in proc.stdout, _output(proc)
    assert "error" not in proc.stdout.split("Passed", 1)[1], _output(proc)


# -- the README's `repo: local` hooks, with `pre-commit run` ----------------------------

LOCAL_CONFIG = """\
repos:
  - repo: local
    hooks:
      - id: modellint
        name: modellint
        entry: modellint check --hook
        language: python
        files: \\.(h5|hdf5|keras|pt|pt2|pth|onnx)$
        additional_dependencies: [{hook_repo}]
      - id: modellint-torch
        name: modellint (torch installed)
        entry: {python} -m modellint check --hook
        language: system
        files: \\.(h5|hdf5|keras|pt|pt2|pth|onnx)$
"""

PER_FILE_PYPROJECT = """\
[tool.modellint]
fail-on = "error"
dataset = { samples = 8000, classes = 13 }

[tool.modellint.per-file."models/mnist/*"]
dataset = { classes = 10 }
"""


@pytest.fixture(scope="module")
def local_hook(tmp_path_factory):
    pre_commit = shutil.which("pre-commit", path=str(Path(sys.executable).parent)) or shutil.which("pre-commit")
    if pre_commit is None:
        pytest.skip("pre-commit is not installed (dev extra)")
    base = tmp_path_factory.mktemp("precommit-local")
    env = _git_env(base)
    (base / "gitconfig").write_text("")
    hook_repo = _snapshot_working_tree(base / "hook-repo", env)
    project = base / "project"
    _init_repo(project, env)
    (project / "models" / "flowers").mkdir(parents=True)
    (project / "models" / "mnist").mkdir(parents=True)
    shutil.copy2(SEED, project / "models" / "flowers" / "seed_cnn.h5")   # 13 units, 13 classes
    write_clean_keras(project / "models" / "mnist" / "clean.keras")     # 10 units, 10 classes
    shutil.copy2(SEED, project / "models" / "mnist" / "wrong_head.h5")  # 13 units for 10 classes: real ML301
    write_state_dict(project / "models" / "mnist" / "weights.pth")
    write_truncated_h5(project / "models" / "truncated.h5")
    write_hostile_pickle(project / "models" / "hostile.pth")
    (project / "pyproject.toml").write_text(PER_FILE_PYPROJECT)
    (project / ".pre-commit-config.yaml").write_text(
        LOCAL_CONFIG.format(hook_repo=json.dumps(str(hook_repo)), python=json.dumps(sys.executable)[1:-1]))
    _commit_all(project, env)

    def run(hook: str, *files: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([pre_commit, "run", hook, "--verbose", "--files", *files],
                              cwd=project, env=env, capture_output=True, text=True, timeout=900)
        if _no_index(proc):
            pytest.skip("pre-commit could not install the hook: no package index reachable")
        return proc

    return run


def test_local_python_hook_installs_from_additional_dependencies(local_hook):
    proc = local_hook("modellint", "models/mnist/clean.keras", "models/mnist/weights.pth",
                      "models/flowers/seed_cnn.h5")
    assert proc.returncode == 0 and "Passed" in proc.stdout, _output(proc)
    assert "skipped models/mnist/weights.pth: reading PyTorch files needs torch" in proc.stdout, _output(proc)
    assert "ML301" not in proc.stdout, _output(proc)  # 10 units for the per-file 10 classes

    # damaged and hostile files still fail the commit, with exit 2
    proc = local_hook("modellint", "models/mnist/weights.pth", "models/truncated.h5", "models/hostile.pth")
    assert proc.returncode == 1 and "Failed" in proc.stdout and "exit code: 2" in proc.stdout, _output(proc)
    out = proc.stdout
    assert "modellint: error: models/truncated.h5: not a readable HDF5 file, truncated or corrupt" in out, \
        _output(proc)
    assert "modellint: error: models/hostile.pth: the pickle references posix.system" in out, _output(proc)
    assert "nothing from the file was executed" in out and "pwned" not in out, _output(proc)
    assert "modellint: note: skipped models/mnist/weights.pth" in out and "Traceback" not in out, _output(proc)


def test_hook_with_torch_skips_state_dict_and_applies_per_file_settings(local_hook):
    pytest.importorskip("torch")
    proc = local_hook("modellint-torch", "models/mnist/clean.keras", "models/mnist/weights.pth",
                      "models/flowers/seed_cnn.h5")
    assert proc.returncode == 0 and "Passed" in proc.stdout, _output(proc)
    assert ("modellint: note: skipped models/mnist/weights.pth: holds only weights (a state_dict of 4 "
            "tensors)") in proc.stdout, _output(proc)
    assert "ML301" not in proc.stdout, _output(proc)

    proc = local_hook("modellint-torch", "models/mnist/clean.keras", "models/mnist/wrong_head.h5",
                      "models/mnist/weights.pth")
    assert proc.returncode == 1 and "Failed" in proc.stdout and "exit code: 1" in proc.stdout, _output(proc)
    ml301 = [line for line in proc.stdout.splitlines() if "ML301" in line]
    assert ml301 == ["models/mnist/wrong_head.h5:dense_1: ML301 [error] dense_1: 13 output units for 10 "
                     "classes"], _output(proc)

    proc = local_hook("modellint-torch", "models/mnist/weights.pth", "models/truncated.h5")
    assert "exit code: 2" in proc.stdout, _output(proc)
    assert "modellint: error: models/truncated.h5: not a readable HDF5 file" in proc.stdout, _output(proc)


# -- --hook itself ------------------------------------------------------------------------

def _check(*args, cwd, hide=()):
    """``modellint check ARGS`` in a fresh interpreter, with the modules in ``hide`` not importable."""
    code = ("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in hide)
            + "from modellint.cli import main\nsys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, "check", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_hook_option_skips_only_files_without_architecture(tmp_path):
    write_state_dict(tmp_path / "weights.pth")
    write_truncated_h5(tmp_path / "truncated.h5")
    write_hostile_pickle(tmp_path / "hostile.pth")
    write_clean_keras(tmp_path / "clean.keras")
    state_dict = "weights.pth: holds only weights (a state_dict of 4 tensors): weights alone have no architecture"

    # without --hook (the default) a state_dict is bad input, as before
    r = _check("weights.pth", "clean.keras", "--no-settings", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("modellint: error: " + state_dict), r.stderr
    # --hook: a note, and the exit code is the clean model's
    r = _check("weights.pth", "clean.keras", "--no-settings", "--hook", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [line for line in r.stderr.splitlines() if line.startswith("modellint: note: ")]
    assert r.stderr.startswith("modellint: note: skipped " + state_dict) and len(r.stderr.splitlines()) == 1
    assert "clean.keras" in r.stdout
    # --hook without torch or onnx installed: the same file, skipped for that reason
    r = _check("weights.pth", "clean.keras", "--no-settings", "--hook", cwd=tmp_path, hide=("torch", "onnx"))
    assert r.returncode == 0, r.stderr
    assert r.stderr == "modellint: note: skipped weights.pth: reading PyTorch files needs torch: pip install " \
                       "'modellint[torch]'\n"
    r = _check("weights.pth", "--no-settings", cwd=tmp_path, hide=("torch",))
    assert r.returncode == 2 and "modellint: error: weights.pth: reading PyTorch files needs torch" in r.stderr
    # damaged and hostile files still fail, with or without torch
    for hide in ((), ("torch",)):
        r = _check("weights.pth", "truncated.h5", "hostile.pth", "clean.keras", "--no-settings", "--hook",
                   cwd=tmp_path, hide=hide)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.splitlines()
        assert len(lines) == 3 and "Traceback" not in r.stderr, r.stderr
        assert lines[0].startswith("modellint: note: skipped weights.pth: ")
        assert lines[1].startswith("modellint: error: truncated.h5: not a readable HDF5 file")
        assert lines[2].startswith("modellint: error: hostile.pth: the pickle references posix.system")


def test_hook_skips_a_pickled_module_it_may_not_unpickle(tmp_path):
    """torch.save(model) needs --trust-pickle, which a hook never passes: skipped with a note
    while its scan finds nothing dangerous; a hostile pickle beside it still fails the commit."""
    write_pickled_module(tmp_path / "model.pt")
    write_hostile_pickle(tmp_path / "hostile.pth")
    write_clean_keras(tmp_path / "clean.keras")
    needs_trust = ("model.pt: holds a pickled Python object (it references torch.nn.modules.container.Sequential), "
                   "not only weights; unpickling it runs code from the file. Pass --trust-pickle")

    r = _check("model.pt", "clean.keras", "--no-settings", cwd=tmp_path)  # not a hook: an error, as before
    assert r.returncode == 2 and r.stderr.startswith("modellint: error: " + needs_trust), r.stderr
    r = _check("model.pt", "clean.keras", "--no-settings", "--hook", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("modellint: note: skipped " + needs_trust) and len(r.stderr.splitlines()) == 1
    assert "clean.keras" in r.stdout
    r = _check("model.pt", "hostile.pth", "clean.keras", "--no-settings", "--hook", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("modellint: note: skipped model.pt: "), r.stderr
    assert lines[1].startswith("modellint: error: hostile.pth: the pickle references posix.system"), r.stderr
    assert "refuses to load it" in lines[1]
    # --trust-pickle in a hook reads it (here it then needs an input shape: an error, not a skip)
    r = _check("model.pt", "--no-settings", "--hook", "--trust-pickle", "--input-shape", "1,3,32,32", cwd=tmp_path)
    assert r.returncode in (0, 1) and "skipped" not in r.stderr, r.stderr


def test_hook_option_is_documented():
    r = subprocess.run([sys.executable, "-m", "modellint", "check", "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    text = " ".join(r.stdout.split())
    assert "--hook" in text and "pre-commit mode" in text and "state_dict" in text and "still exits 2" in text


def test_hook_definition():
    yaml = pytest.importorskip("yaml")  # comes with pre-commit
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "modellint" and hook["name"]
    assert hook["entry"] == "modellint check --hook" and hook["language"] == "python"
    assert hook["types"] == ["file"] and hook["require_serial"] is False
    import re

    pattern = re.compile(hook["files"])
    for name in ("m.h5", "m.hdf5", "a/b.keras", "m.pt", "m.pt2", "m.pth", "m.onnx"):
        assert pattern.search(name), name
    for name in ("m.json", "m.h5.txt", "model.py", "m.ckpt"):
        assert not pattern.search(name), name


def test_a_long_no_architecture_problem_keeps_its_kind(tmp_path, monkeypatch):
    """load_graph cuts a long problem to one line; --hook still has to see what kind it was."""
    import modellint.adapters as adapters
    from modellint.errors import MissingFramework, NoArchitecture

    path = write_clean_keras(tmp_path / "m.keras")
    for kind in (NoArchitecture, MissingFramework):
        def refuse(*args, kind=kind):
            raise kind(path, "holds only weights " + "and more words " * 40 + "\nsecond line")

        monkeypatch.setattr(adapters, "_load_kind", refuse)
        with pytest.raises(kind) as info:
            adapters.load_graph(path)
        assert "\n" not in str(info.value) and len(info.value.problem) <= adapters.MAX_PROBLEM_CHARS
