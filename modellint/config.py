"""Configuration: ``[tool.modellint]`` in pyproject.toml (or a ``modellint.toml``)
merged under command-line flags.

Keys (kebab-case as in ruff)::

    [tool.modellint]
    select = ["ML1", "receptive-field"]      # codes, code prefixes or categories
    ignore = ["ML951"]
    extend-select = []
    fail-on = "warning"                      # error | warning | info
    dataset = { samples = 8000, classes = 13, image_size = [128, 128] }

    # settings for some files only: a glob relative to the config file's folder
    # (a glob without "/" matches the file name in any folder)
    [tool.modellint.per-file."models/mnist/*.h5"]
    dataset = { classes = 10 }               # replaces the global dataset table whole
    ignore = ["ML503"]                       # added to the global ignore

Every ``per-file`` table whose glob matches a file applies, in the order they are
written, over the global settings (:meth:`Settings.for_path`): ``ignore`` and
``extend-select`` add to what came before; ``select``, ``fail-on`` and ``dataset``
replace it, so for those the last matching table wins. A ``dataset`` table is replaced
whole, never mixed key by key: the facts of one dataset (its samples, classes, image
size, data folder) are not true of another's, and a fact left out is unknown (its
rules are skipped) rather than borrowed from the global table.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from .errors import ConfigError

KEYS = {"select", "ignore", "extend-select", "fail-on", "dataset", "per-file"}
PER_FILE_KEYS = {"select", "ignore", "extend-select", "fail-on", "dataset"}
DATASET_KEYS = {"samples", "classes", "image_size", "image-size", "data", "task"}
SEVERITIES = ("error", "warning", "info")


@dataclass
class PerFile:
    """One ``[tool.modellint.per-file."GLOB"]`` table; ``None`` where it does not set a key."""

    pattern: str  # as written (the report names it)
    regex: re.Pattern
    anchored: bool  # the glob names a path from the config file's folder, not a file name anywhere
    select: Optional[list] = None
    ignore: list = field(default_factory=list)
    extend_select: list = field(default_factory=list)
    fail_on: Optional[str] = None
    dataset: Optional[dict] = None

    def matches(self, relative: str) -> bool:
        """``relative``: a path relative to the config file's folder, ``/``-separated."""
        target = relative if self.anchored else relative.rsplit("/", 1)[-1]
        return self.regex.fullmatch(target) is not None


@dataclass
class Settings:
    select: list = field(default_factory=list)
    ignore: list = field(default_factory=list)
    extend_select: list = field(default_factory=list)
    fail_on: str = "warning"
    dataset: dict = field(default_factory=dict)
    source: Optional[str] = None  # the file they came from
    per_file: list = field(default_factory=list)  # PerFile, in the order written
    root: Optional[Path] = None  # the folder per-file globs are relative to
    matched: tuple = ()  # for_path: the patterns of the per-file tables applied
    dataset_from: Optional[str] = None  # for_path: the pattern whose dataset table replaced the global one

    def for_path(self, path) -> "Settings":
        """The settings for one model file: the global ones with every matching ``per-file``
        table applied in order. A code target (``package.module:factory``), or a file outside
        the config file's folder, gets the global settings."""
        relative = self.relative(path)
        tables = [t for t in self.per_file if relative is not None and t.matches(relative)]
        if not tables:
            return self
        out = replace(self, select=list(self.select), ignore=list(self.ignore),
                      extend_select=list(self.extend_select), dataset=dict(self.dataset), per_file=[],
                      matched=tuple(t.pattern for t in tables))
        for t in tables:
            if t.select is not None:
                out.select = list(t.select)
            out.ignore += t.ignore
            out.extend_select += t.extend_select
            if t.fail_on is not None:
                out.fail_on = t.fail_on
            if t.dataset is not None:
                out.dataset = dict(t.dataset)
                out.dataset_from = t.pattern
        return out

    def relative(self, path) -> Optional[str]:
        """``path`` relative to the config file's folder, ``/``-separated; None for a code
        target, without a config file, or outside its folder."""
        if self.root is None or not isinstance(path, Path):
            return None
        root = str(self.root)
        for candidate in (os.path.abspath(path), str(Path(path).resolve())):
            rel = os.path.relpath(candidate, root)
            if rel != os.pardir and not rel.startswith(os.pardir + os.sep) and not os.path.isabs(rel):
                return Path(rel).as_posix()
        return None

    def describe_dataset(self) -> str:
        """Where the dataset facts came from, for the report's ``dataset.source``."""
        if self.dataset_from is not None:
            return f'config {self.source} [per-file "{self.dataset_from}"]'
        return f"config {self.source}"


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


def glob_regex(pattern: str) -> re.Pattern:
    """A compiled regex for a path glob: ``*`` and ``?`` stay within one folder, ``**`` as a
    whole path segment matches any number of folders (none included), ``[abc]``/``[!abc]``
    are character classes."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i) and (i == 0 or pattern[i - 1] == "/") and (i + 2 == n or pattern[i + 2] == "/"):
            if i + 2 == n:
                out.append(".*")
                i += 2
            else:  # "**/": zero or more folders
                out.append("(?:[^/]*/)*")
                i += 3
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "]") else i + 1)
            if end < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out))


def _strings(where, key, value) -> list:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} must be a list of strings")
    return value


def _selectors(where, key, value) -> list:
    from .engine import validate_selectors

    values = _strings(where, key, value)
    try:
        validate_selectors(values, key)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return values


def _fail_on(where, value) -> str:
    if value not in SEVERITIES:
        raise ConfigError(f"{where}: fail-on must be error, warning or info, got {value!r}")
    return value


def _dataset(where, value) -> dict:
    from .dataset import facts_from_values

    if not isinstance(value, dict) or set(value) - DATASET_KEYS:
        unknown = sorted(set(value) - DATASET_KEYS) if isinstance(value, dict) else []
        named = f" (unknown: {', '.join(unknown)})" if unknown else ""
        raise ConfigError(f"{where}: dataset must be a table with keys {', '.join(sorted(DATASET_KEYS))}{named}")
    dataset = {k.replace("-", "_"): v for k, v in value.items()}
    if "data" in dataset and not isinstance(dataset["data"], str):
        raise ConfigError(f"{where}: dataset data must be a folder path (a string)")
    try:  # refuse bad values here, naming the file, not when the first model is checked
        facts_from_values(dataset.get("samples"), dataset.get("classes"), dataset.get("image_size"),
                          task=dataset.get("task"))
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return dataset


def _unknown(where, data: dict, known: set) -> None:
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(known))})")


def _per_file(path, tables) -> list:
    if not isinstance(tables, dict):
        raise ConfigError(f'{path}: per-file must be a table of tables keyed by glob, e.g. '
                          f'[tool.modellint.per-file."models/*.h5"]')
    out = []
    for pattern, table in tables.items():
        where = f'{path}: per-file "{pattern}"'
        if not pattern.strip():
            raise ConfigError(f"{path}: per-file: an empty glob")
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table of settings ({', '.join(sorted(PER_FILE_KEYS))})")
        _unknown(where, table, PER_FILE_KEYS)
        glob = pattern.strip().replace("\\", "/")
        anchored = "/" in glob
        while glob.startswith("./"):
            glob = glob[2:]
        # "a/*.h5", "./m.h5", "/m.h5": a path from the config file's folder; "*.pth": a file name anywhere
        entry = PerFile(pattern=pattern, regex=glob_regex(glob.lstrip("/")), anchored=anchored)
        if "select" in table:
            entry.select = _selectors(where, "select", table["select"])
        entry.ignore = _selectors(where, "ignore", table.get("ignore", []))
        entry.extend_select = _selectors(where, "extend-select", table.get("extend-select", []))
        if "fail-on" in table:
            entry.fail_on = _fail_on(where, table["fail-on"])
        if "dataset" in table:
            entry.dataset = _dataset(where, table["dataset"])
        out.append(entry)
    return out


def load(path: Path) -> Settings:
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    if Path(path).name == "pyproject.toml":
        data = data.get("tool", {}).get("modellint", {})
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: [tool.modellint] must be a table")
    _unknown(path, data, KEYS)
    s = Settings(source=str(path), root=Path(path).resolve().parent)
    s.select = _selectors(path, "select", data.get("select", []))
    s.ignore = _selectors(path, "ignore", data.get("ignore", []))
    s.extend_select = _selectors(path, "extend-select", data.get("extend-select", []))
    s.fail_on = _fail_on(path, data.get("fail-on", "warning"))
    s.dataset = _dataset(path, data.get("dataset", {}))
    s.per_file = _per_file(path, data.get("per-file", {}))
    return s
