"""Configuration: ``[tool.modellint]`` in pyproject.toml (or a ``modellint.toml``)
merged under command-line flags.

Keys (kebab-case as in ruff)::

    [tool.modellint]
    select = ["ML1", "receptive-field"]      # codes, code prefixes or categories
    ignore = ["ML951"]
    extend-select = []
    fail-on = "warning"                      # error | warning | info
    dataset = { samples = 8000, classes = 13, image_size = [128, 128] }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .errors import ConfigError

KEYS = {"select", "ignore", "extend-select", "fail-on", "dataset"}
DATASET_KEYS = {"samples", "classes", "image_size", "image-size", "data", "task"}


@dataclass
class Settings:
    select: list = field(default_factory=list)
    ignore: list = field(default_factory=list)
    extend_select: list = field(default_factory=list)
    fail_on: str = "warning"
    dataset: dict = field(default_factory=dict)
    source: Optional[str] = None  # the file they came from


def find_config(start: Path) -> Optional[Path]:
    """The nearest modellint.toml / .modellint.toml / pyproject.toml with [tool.modellint]."""
    import tomllib

    start = start.resolve()
    for folder in (start, *start.parents):
        for name in ("modellint.toml", ".modellint.toml"):
            if (folder / name).is_file():
                return folder / name
        py = folder / "pyproject.toml"
        if py.is_file() and "tool.modellint" in py.read_text(encoding="utf-8", errors="replace"):
            try:
                if "modellint" in tomllib.loads(py.read_text(encoding="utf-8")).get("tool", {}):
                    return py
            except (tomllib.TOMLDecodeError, UnicodeDecodeError):
                raise ConfigError(f"{py}: not valid TOML") from None
    return None


def _strings(path, key, value) -> list:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {key} must be a list of strings")
    return value


def load(path: Path) -> Settings:
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    if Path(path).name == "pyproject.toml":
        data = data.get("tool", {}).get("modellint", {})
    unknown = set(data) - KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(KEYS))})")
    s = Settings(source=str(path))
    s.select = _strings(path, "select", data.get("select", []))
    s.ignore = _strings(path, "ignore", data.get("ignore", []))
    s.extend_select = _strings(path, "extend-select", data.get("extend-select", []))
    s.fail_on = data.get("fail-on", "warning")
    if s.fail_on not in ("error", "warning", "info"):
        raise ConfigError(f"{path}: fail-on must be error, warning or info, got {s.fail_on!r}")
    dataset = data.get("dataset", {})
    if not isinstance(dataset, dict) or set(dataset) - DATASET_KEYS:
        raise ConfigError(f"{path}: dataset must be a table with keys {', '.join(sorted(DATASET_KEYS))}")
    s.dataset = {k.replace("-", "_"): v for k, v in dataset.items()}
    return s
