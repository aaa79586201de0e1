"""``[tool.modellint.per-file."GLOB"]``: settings for some model files only.

One repository, two datasets: the global ``dataset`` says 13 classes (the seed CNN's),
a per-file table says 10 for ``models/mnist/*``. The 10-unit model there loses the false
"10 output units for 13 classes"; the seed CNN copied there keeps a real "13 output units
for 10 classes".
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLES, run_cli
from modellint import config as cfg
from modellint.errors import ConfigError
from test_precommit import write_clean_keras

SEED = EXAMPLES / "seed_cnn.h5"

TWO_DATASETS = """\
[tool.modellint]
dataset = { samples = 8000, classes = 13 }

[tool.modellint.per-file."models/mnist/*"]
dataset = { classes = 10 }
"""


@pytest.fixture
def repo(tmp_path) -> Path:
    (tmp_path / "models" / "flowers").mkdir(parents=True)
    (tmp_path / "models" / "mnist").mkdir(parents=True)
    shutil.copy2(SEED, tmp_path / "models" / "flowers" / "seed_cnn.h5")   # 13 units, 13 classes
    write_clean_keras(tmp_path / "models" / "mnist" / "clean.keras")     # 10 units, 10 classes
    shutil.copy2(SEED, tmp_path / "models" / "mnist" / "wrong_head.h5")  # 13 units for 10 classes
    return tmp_path


def _reports(proc) -> dict:
    assert proc.returncode in (0, 1), proc.stderr
    return {r["model"]["path"]: r for r in json.loads(proc.stdout)["reports"]}


def _ml301(report) -> list:
    return [f["message"] for f in report["findings"] if f["code"] == "ML301"]


def test_each_model_gets_its_own_class_count(repo):
    (repo / "pyproject.toml").write_text('[tool.modellint]\ndataset = { samples = 8000, classes = 13 }\n')
    before = _reports(run_cli("check", "models", "--format", "json", cwd=repo))
    assert _ml301(before["models/mnist/clean.keras"]) == ["dense: 10 output units for 13 classes"]  # the false one
    assert _ml301(before["models/mnist/wrong_head.h5"]) == []

    (repo / "pyproject.toml").write_text(TWO_DATASETS)
    proc = run_cli("check", "models", "--format", "json", cwd=repo)
    after = _reports(proc)
    assert proc.returncode == 1
    assert _ml301(after["models/mnist/clean.keras"]) == []
    assert _ml301(after["models/mnist/wrong_head.h5"]) == ["dense_1: 13 output units for 10 classes"]
    assert _ml301(after["models/flowers/seed_cnn.h5"]) == []
    config = repo.resolve() / "pyproject.toml"
    assert after["models/flowers/seed_cnn.h5"]["dataset"]["source"] == f"config {config}"
    mnist = after["models/mnist/clean.keras"]["dataset"]
    assert mnist["source"] == f'config {config} [per-file "models/mnist/*"]'
    # the per-file table replaces the global dataset whole: 8,000 images are the flowers', not MNIST's
    assert mnist["classes"] == 10 and mnist["samples"] is None
    assert after["models/flowers/seed_cnn.h5"]["dataset"]["samples"] == 8000
    assert "ML503" in {f["code"] for f in after["models/flowers/seed_cnn.h5"]["findings"]}
    assert "ML503" not in {f["code"] for f in after["models/mnist/wrong_head.h5"]["findings"]}

    # globs are relative to the config file's folder, wherever check runs from
    (repo / "sub").mkdir()
    proc = run_cli("check", "../models/mnist/clean.keras", "../models/flowers", "--format", "json",
                   cwd=repo / "sub")
    again = _reports(proc)
    assert _ml301(again["../models/mnist/clean.keras"]) == [] and _ml301(again["../models/flowers/seed_cnn.h5"]) == []
    # flags apply to every file, over the per-file facts
    forced = _reports(run_cli("check", "models", "--format", "json", "--classes", "13", cwd=repo))
    assert _ml301(forced["models/mnist/clean.keras"]) == ["dense: 10 output units for 13 classes"]


def test_rule_selection_and_fail_on_per_file(repo):
    (repo / "pyproject.toml").write_text(TWO_DATASETS + """
[tool.modellint.per-file."wrong_head.h5"]
ignore = ["ML301"]

[tool.modellint.per-file."models/flowers/**"]
select = ["ML4"]
fail-on = "error"
""")
    proc = run_cli("check", "models", "--format", "json", cwd=repo)
    reports = _reports(proc)
    assert _ml301(reports["models/mnist/wrong_head.h5"]) == []  # a file-name glob, in any folder
    assert "ML201" in {f["code"] for f in reports["models/mnist/wrong_head.h5"]["findings"]}  # warnings still fail
    assert proc.returncode == 1
    flowers = reports["models/flowers/seed_cnn.h5"]
    assert {f["code"] for f in flowers["findings"]} == {"ML401"}
    assert all(code.startswith("ML4") for code in flowers["rules_run"])
    # ML401 is a warning and the flowers model fails on errors only
    proc = run_cli("check", "models/flowers", cwd=repo)
    assert proc.returncode == 0 and "ML401 [warning]" in proc.stdout, proc.stdout + proc.stderr
    proc = run_cli("check", "models/flowers", "--fail-on", "warning", cwd=repo)
    assert proc.returncode == 1


@pytest.mark.parametrize("toml,message", [
    ('[tool.modellint.per-file."models/*"]\nclasses = 10\n',
     'per-file "models/*": unknown key(s) classes (known: dataset, extend-select, fail-on, ignore, select)'),
    ('[tool.modellint.per-file."models/*"]\ndataset = { clases = 10 }\n', "(unknown: clases)"),
    ('[tool.modellint.per-file."models/*"]\ndataset = { classes = "ten" }\n',
     'per-file "models/*": dataset classes must be a whole number'),
    ('[tool.modellint.per-file."models/*"]\nignore = ["ML999"]\n',
     "per-file \"models/*\": ignore: 'ML999' is not a rule code"),
    ('[tool.modellint.per-file."models/*"]\nfail-on = "never"\n', "fail-on must be error, warning or info"),
    ('[tool.modellint]\nper-file = ["models/*"]\n', "per-file must be a table of tables keyed by glob"),
    ('[tool.modellint.per-file]\n"models/*" = 3\n', 'per-file "models/*" must be a table of settings'),
    ('[tool.modellint]\nper_file = {}\n', "unknown key(s) per_file"),
])
def test_bad_per_file_settings_are_one_line_exit_2(repo, toml, message):
    (repo / "pyproject.toml").write_text(toml)
    proc = run_cli("check", "models", cwd=repo)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"modellint: error: {repo.resolve() / 'pyproject.toml'}: ") and message in line, line


# -- the merge, without a subprocess --------------------------------------------------------

def _settings(tmp_path, text: str, name: str = "pyproject.toml") -> cfg.Settings:
    (tmp_path / name).write_text(text)
    return cfg.load(tmp_path / name)


def test_matching_tables_apply_in_order(tmp_path):
    s = _settings(tmp_path, """
[tool.modellint]
select = ["ML1", "ML2", "ML3"]
ignore = ["ML951"]
fail-on = "warning"
dataset = { samples = 8000, classes = 13, image_size = [128, 128] }

[tool.modellint.per-file."models/**"]
ignore = ["ML101"]
dataset = { classes = 5 }
fail-on = "error"

[tool.modellint.per-file."models/mnist/*.h5"]
ignore = ["ML102"]
extend-select = ["ML4"]
dataset = { classes = 10, image-size = [28, 28] }

[tool.modellint.per-file."*.keras"]
select = ["ML3"]
""")
    mnist = s.for_path(tmp_path / "models" / "mnist" / "a.h5")
    assert mnist.matched == ("models/**", "models/mnist/*.h5")
    assert mnist.ignore == ["ML951", "ML101", "ML102"] and mnist.extend_select == ["ML4"]
    assert mnist.select == ["ML1", "ML2", "ML3"] and mnist.fail_on == "error"
    assert mnist.dataset == {"classes": 10, "image_size": [28, 28]}  # the last one, whole
    assert mnist.describe_dataset() == f'config {tmp_path / "pyproject.toml"} [per-file "models/mnist/*.h5"]'

    other = s.for_path(tmp_path / "models" / "x" / "b.keras")
    assert other.matched == ("models/**", "*.keras") and other.select == ["ML3"]
    assert other.dataset == {"classes": 5} and other.ignore == ["ML951", "ML101"]

    top = s.for_path(tmp_path / "c.h5")
    assert top is s and top.dataset["classes"] == 13 and top.fail_on == "warning"
    deeper = s.for_path(tmp_path / "models" / "mnist" / "deeper" / "d.h5")
    assert deeper.dataset == {"classes": 5}  # "*" stays in one folder
    assert s.for_path(tmp_path.parent / "elsewhere" / "e.keras") is s  # outside the config file's folder
    assert s.for_path("mypkg.models:build") is s  # a code target
    # the global settings are not changed by a lookup
    assert s.ignore == ["ML951"] and s.dataset["classes"] == 13


def test_relative_paths_and_modellint_toml(tmp_path, monkeypatch):
    s = _settings(tmp_path, '[per-file."./top.h5"]\nignore = ["ML101"]\n[per-file."a/[bc]?.pt"]\nfail-on = "info"\n',
                  name="modellint.toml")
    monkeypatch.chdir(tmp_path / ".")
    assert s.for_path(Path("top.h5")).ignore == ["ML101"]
    assert s.for_path(Path("x/top.h5")) is s  # "./top.h5" names the file at the top only
    assert s.for_path(Path("a/b1.pt")).fail_on == "info" and s.for_path(Path("a/c2.pt")).fail_on == "info"
    assert s.for_path(Path("a/d1.pt")) is s and s.for_path(Path("a/b12.pt")) is s


@pytest.mark.parametrize("glob,yes,no", [
    ("models/*.h5", ["models/a.h5"], ["models/x/a.h5", "a.h5", "models/a.h5.bak"]),
    ("models/**/*.h5", ["models/a.h5", "models/x/y/a.h5"], ["other/a.h5"]),
    ("models/**", ["models/a", "models/x/y.pt"], ["models", "modelsx/a"]),
    ("**/mnist/*", ["mnist/a.h5", "x/mnist/a.h5"], ["x/mnist/y/a.h5"]),
    ("m?.onnx", ["m1.onnx"], ["m12.onnx", "m/.onnx"]),
    ("[!x]*.pt", ["a.pt"], ["x.pt"]),
    ("a+b (1).pt", ["a+b (1).pt"], ["aab (1).pt"]),
])
def test_glob_regex(glob, yes, no):
    regex = cfg.glob_regex(glob)
    assert all(regex.fullmatch(p) for p in yes), glob
    assert not any(regex.fullmatch(p) for p in no), glob


def test_per_file_errors_name_the_table(tmp_path):
    with pytest.raises(ConfigError, match=r'per-file "m/\*": unknown key\(s\) dataset_x'):
        _settings(tmp_path, '[tool.modellint.per-file."m/*"]\ndataset_x = 1\n')
    with pytest.raises(ConfigError, match="an empty glob"):
        _settings(tmp_path, '[tool.modellint.per-file.""]\nignore = []\n')
    with pytest.raises(ConfigError, match=r"per-file \"m\": select must be a list of strings"):
        _settings(tmp_path, '[tool.modellint.per-file."m"]\nselect = 3\n')
