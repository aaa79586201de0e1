"""Load the user's images for the probes, and check the data on the way in.

Two sources:

* a **folder of class sub-folders**, read the way Keras ``image_dataset_from_directory``
  and torchvision ``ImageFolder`` read it: class names are the sorted sub-folder names,
  files are found recursively, ``.jpg .jpeg .png .bmp .gif .webp`` are images (the first
  frame of an animation), anything else is ignored;
* an **``.npz``** with ``x`` (NHWC, NHW or NCHW; uint8 or float) and ``y`` (integer
  labels or one-hot), optionally ``class_names``.

Every image is converted to the model's channel count (grey <-> RGB, alpha dropped,
each conversion counted in ``notes``), resized to the model input with Pillow's bilinear
filter, and returned as float32 in [0, 1], NHWC, with a stratified train/validation
split (scikit-learn ``train_test_split(stratify=...)``) that is fixed by ``seed``.

On the way in the data is checked (codes ``ML001``-``ML008``, category ``data``):
class imbalance, unreadable files (named and skipped, never fatal), exact duplicates
within a class / across classes / across the split, image size and aspect ratio versus
the model input, channel mismatch, and pixel statistics. Each check is a plain dict
``{code, name, category, severity, message, evidence, files, explanation, fix}``; the
caller turns them into ``Finding`` objects.

Framework-free: numpy, Pillow and scikit-learn only.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..rules.data import DATA_RULES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

IMBALANCE_RATIO = 3.0     # ML001 fires when the largest class has more than this x the smallest
MAX_FILES_LISTED = 50     # file names kept per check

#: code -> (name, default severity, one-line description). The reference lives with the
#: rules that report these checks (modellint/rules/data.py): one place per fact.
DATA_CHECKS = {code: spec[:3] for code, spec in DATA_RULES.items()}


@dataclass
class Dataset:
    """Images as float32 NHWC in [0, 1] with int64 labels, split into train/validation."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: list
    source: str = ""
    notes: list = field(default_factory=list)    # what was done to the data (conversions, skips, ...)
    checks: list = field(default_factory=list)   # data-check dicts (see DATA_CHECKS)
    facts: dict = field(default_factory=dict)    # raw sizes, modes, pixel stats, counts before split
    #: digest of every image's pixels and label, in split order (what the probe cache keys on)
    content: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:]) if self.x_train.ndim == 4 else tuple(self.x_val.shape[1:])

    def summary(self) -> dict:
        def counts(y):
            c = np.bincount(np.asarray(y, dtype=np.int64), minlength=self.num_classes)
            return {name: int(n) for name, n in zip(self.class_names, c)}

        return {
            "source": self.source,
            "classes": self.num_classes,
            "class_names": list(self.class_names),
            "image_shape": list(self.image_shape),
            "train": int(len(self.y_train)),
            "val": int(len(self.y_val)),
            "train_per_class": counts(self.y_train),
            "val_per_class": counts(self.y_val),
            "notes": list(self.notes),
            "checks": [{"code": c["code"], "severity": c["severity"], "message": c["message"]}
                       for c in self.checks],
        }


# -- public entry point ----------------------------------------------------------------

def load_dataset(path, *, image_size=(128, 128), channels: int = 3, val_fraction: float = 0.2,
                 seed: int = 0, max_images: Optional[int] = None) -> Dataset:
    """Load a class-folder tree or an ``.npz`` for the probes (see the module docstring).

    ``image_size`` is the model input (H, W); ``channels`` 3 (RGB) or 1 (grey).
    ``max_images`` keeps a stratified, seed-determined subset (for time budgets)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    size = (int(image_size[0]), int(image_size[1])) if not isinstance(image_size, int) else (image_size,) * 2
    p = Path(path)
    if p.is_dir():
        loaded = _load_folder(p, size, channels, seed, max_images)
    elif p.suffix.lower() == ".npz" and p.is_file():
        loaded = _load_npz(p, size, channels, seed, max_images)
    elif not p.exists():
        raise FileNotFoundError(f"{p}: no such folder or .npz file")
    else:
        raise ValueError(f"{p}: expected a folder of class sub-folders or an .npz with x and y")
    return _finish(loaded, size, channels, val_fraction, seed)


# -- loading -------------------------------------------------------------------------

@dataclass
class _Loaded:
    x: np.ndarray                 # float32 NHWC [0, 1], model size
    y: np.ndarray                 # int64
    class_names: list
    names: list                   # file name (relative) or "x[i]" per row
    hashes: list                  # content hash per row
    source: str
    notes: list
    checks: list
    sizes: Counter                # (H, W) of the originals
    modes: Counter                # "grey" / "rgb" / "rgba" / "palette" ... of the originals
    stats: dict                   # raw pixel statistics
    counts_all: dict              # images per class found (before subsampling / skipping)
    kinds: list = field(default_factory=list)  # "grey" / "rgb" / ... per row


def _class_files(root: Path):
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels, ignored = [], [], 0
    for label, name in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(root / name):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if fn.startswith("."):
                    continue
                if fn.lower().endswith(IMAGE_SUFFIXES):
                    files.append(Path(dirpath) / fn)
                    labels.append(label)
                else:
                    ignored += 1
    return classes, files, np.asarray(labels, dtype=np.int64), ignored


def _subsample(labels: np.ndarray, max_images: Optional[int], seed: int, notes: list) -> np.ndarray:
    """Indices of a stratified, deterministic subset of at most ``max_images`` rows (sorted)."""
    n = len(labels)
    idx = np.arange(n)
    if max_images is None or max_images >= n:
        return idx
    if max_images <= 0:
        raise ValueError(f"max_images must be positive, got {max_images}")
    from sklearn.model_selection import train_test_split

    try:
        keep, _ = train_test_split(idx, train_size=int(max_images), stratify=labels, random_state=seed)
    except ValueError:
        keep, _ = train_test_split(idx, train_size=int(max_images), random_state=seed)
        notes.append("max_images subset drawn without stratification (a class is too small)")
    notes.append(f"kept {max_images} of {n} images (stratified subset, seed {seed})")
    return np.sort(keep)


_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _mode_kind(img) -> str:
    m = img.mode
    if m in _GREY_MODES:
        return "grey"
    if m == "P":
        pal = img.getpalette() or []
        rgb = np.asarray(pal[: len(pal) // 3 * 3]).reshape(-1, 3)
        used = [int(u) for u in np.unique(np.asarray(img)) if u < len(rgb)]
        if used and np.all(rgb[used, 0] == rgb[used, 1]) and np.all(rgb[used, 1] == rgb[used, 2]):
            return "grey"
        return "palette"
    if m in ("RGBA", "PA", "RGBa"):
        return "rgba"
    if m == "CMYK":
        return "cmyk"
    return "rgb"


def _decode(img, channels: int) -> tuple:
    """PIL image -> (uint8-or-float array HxWxC in 0..255, kind, conversion or None)."""
    kind = _mode_kind(img)
    conv = None
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / top * 255.0, 0, 255)[..., None]
        conv = "16-bit->8-bit scale" if top > 255 else None
        if channels == 3:
            arr = np.repeat(arr, 3, axis=2)
            conv = "grey->RGB"
        return arr.astype(np.float32), kind, conv
    if channels == 3:
        if kind == "grey":
            conv = "grey->RGB"
        elif kind == "rgba":
            conv = "alpha dropped"
        elif kind == "cmyk":
            conv = "CMYK->RGB"
        rgb = img.convert("RGB") if img.mode != "RGB" else img
        return np.asarray(rgb, dtype=np.uint8), kind, conv
    if kind != "grey":
        conv = "RGB->grey"
    g = img.convert("L") if img.mode != "L" else img
    return np.asarray(g, dtype=np.uint8)[..., None], kind, conv


def _resize(arr: np.ndarray, size: tuple) -> np.ndarray:
    """HxWxC array (0..255) -> float32 size[0] x size[1] x C in [0, 1], Pillow bilinear."""
    from PIL import Image

    h, w = size
    if arr.shape[:2] == (h, w):
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint8:
        mode = "RGB" if arr.shape[2] == 3 else "L"
        img = Image.fromarray(arr if arr.shape[2] == 3 else arr[:, :, 0], mode)
        return np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.float32).reshape(h, w, -1) / 255.0
    out = np.empty((h, w, arr.shape[2]), np.float32)
    for c in range(arr.shape[2]):
        ch = Image.fromarray(np.ascontiguousarray(arr[:, :, c], dtype=np.float32), "F")
        out[:, :, c] = np.asarray(ch.resize((w, h), Image.BILINEAR), dtype=np.float32)
    return np.clip(out / 255.0, 0.0, 1.0)


class _Stats:
    """Running per-channel min/max/mean/std of raw pixel values."""

    def __init__(self):
        self.n = 0
        self.s = self.ss = self.lo = self.hi = None

    def add(self, arr: np.ndarray):
        a = arr.reshape(-1, arr.shape[-1]).astype(np.float64)
        if self.s is None:
            self.s, self.ss = a.sum(0), (a * a).sum(0)
            self.lo, self.hi = a.min(0), a.max(0)
        else:
            self.s += a.sum(0)
            self.ss += (a * a).sum(0)
            self.lo, self.hi = np.minimum(self.lo, a.min(0)), np.maximum(self.hi, a.max(0))
        self.n += len(a)

    def result(self, unit: str) -> dict:
        if not self.n:
            return {}
        mean = self.s / self.n
        std = np.sqrt(np.maximum(self.ss / self.n - mean * mean, 0.0))
        return {"unit": unit, "min": round(float(self.lo.min()), 4), "max": round(float(self.hi.max()), 4),
                "mean": [round(float(v), 4) for v in mean], "std": [round(float(v), 4) for v in std]}


def _hash_pixels(arr: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(str(arr.shape).encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _load_folder(root: Path, size, channels, seed, max_images) -> _Loaded:
    from PIL import Image

    classes, files, labels, ignored = _class_files(root)
    if not classes:
        raise ValueError(f"{root}: no class sub-folders")
    if not files:
        raise ValueError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class sub-folders")
    notes = []
    if ignored:
        notes.append(f"ignored {ignored} file(s) that are not images by their extension")
    counts_all = dict(zip(classes, np.bincount(labels, minlength=len(classes)).tolist()))
    keep = _subsample(labels, max_images, seed, notes)
    h, w = size
    x = np.empty((len(keep), h, w, channels), np.float32)
    ys, names, hashes, bad, kinds = [], [], [], [], []
    sizes, modes, conversions = Counter(), Counter(), Counter()
    stats = _Stats()
    for i in keep:
        f = files[i]
        rel = f.relative_to(root).as_posix()
        try:
            with Image.open(f) as img:
                img.seek(0)
                img.load()
                arr, kind, conv = _decode(img, channels)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a finding, never fatal
            bad.append((rel, f"{type(exc).__name__}: {exc}"[:160]))
            continue
        sizes[arr.shape[:2]] += 1
        modes[kind] += 1
        kinds.append(kind)
        if conv:
            conversions[conv] += 1
        stats.add(arr)
        x[len(ys)] = _resize(arr, size)
        ys.append(labels[i])
        names.append(rel)
        hashes.append(_hash_pixels(arr))
    x = x[: len(ys)]
    for conv, n in sorted(conversions.items()):
        notes.append(f"{conv}: {n} image(s)")
    if any(s != (h, w) for s in sizes):
        notes.append(f"resized to {h}x{w} (HxW) with Pillow bilinear")
    checks = []
    if bad:
        checks.append(_check("ML002", f"{len(bad)} of {len(keep)} image file(s) could not be read and were skipped",
                             evidence={"unreadable": len(bad), "files_read": len(keep),
                                       "errors": dict(bad[:MAX_FILES_LISTED])},
                             files=[b[0] for b in bad],
                             explanation="Keras and torchvision stop the whole epoch on an undecodable file.",
                             fix="Delete or re-encode these files (e.g. open and re-save them with Pillow)."))
    if not ys:
        raise ValueError(f"{root}: none of its {len(keep)} image file(s) could be read")
    return _Loaded(x=x, y=np.asarray(ys, np.int64), class_names=classes, names=names, hashes=hashes,
                   source=f"folder {root}", notes=notes, checks=checks, sizes=sizes, modes=modes,
                   stats=stats.result("0-255"), counts_all=counts_all, kinds=kinds)


def _load_npz(path: Path, size, channels, seed, max_images) -> _Loaded:
    with np.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        if not {"x", "y"} <= keys:
            raise ValueError(f"{path}: an .npz for modellint needs arrays 'x' and 'y' (has {sorted(keys)})")
        x_raw, y_raw = z["x"], z["y"]
        names_arr = z["class_names"] if "class_names" in keys else None
    notes = []
    if x_raw.ndim == 3:
        x_raw = x_raw[..., None]
    elif x_raw.ndim == 4 and x_raw.shape[-1] not in (1, 3, 4) and x_raw.shape[1] in (1, 3, 4):
        x_raw = np.transpose(x_raw, (0, 2, 3, 1))
        notes.append("x transposed from NCHW to NHWC")
    if x_raw.ndim != 4 or x_raw.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{path}: x must be NHWC, NHW or NCHW images; got shape {x_raw.shape}")
    y_raw = np.asarray(y_raw)
    if y_raw.ndim == 2 and y_raw.shape[1] > 1:
        y = y_raw.argmax(axis=1).astype(np.int64)
        notes.append("y converted from one-hot to class indices")
        n_classes = y_raw.shape[1]
    else:
        y_flat = y_raw.reshape(-1)
        if not np.all(np.equal(np.mod(y_flat, 1), 0)):
            raise ValueError(f"{path}: y must hold integer class labels or one-hot rows")
        y = y_flat.astype(np.int64)
        n_classes = int(y.max()) + 1 if len(y) else 0
    if len(y) != len(x_raw):
        raise ValueError(f"{path}: x has {len(x_raw)} rows but y has {len(y)}")
    if len(y) and y.min() < 0:
        raise ValueError(f"{path}: y has negative labels")
    if names_arr is not None and len(names_arr) >= n_classes:
        class_names = [str(s) for s in names_arr]
    else:
        class_names = [str(i) for i in range(n_classes)]

    # raw statistics (in the array's own units) over every row
    stats = _Stats()
    for i in range(0, len(x_raw), 512):
        stats.add(np.asarray(x_raw[i:i + 512], dtype=np.float64))
    raw = stats.result(str(x_raw.dtype))
    lo, hi = (raw["min"], raw["max"]) if raw else (0.0, 1.0)
    if x_raw.dtype == np.uint8 or (lo >= 0 and hi > 1.0 and hi <= 255.0):
        to255 = lambda a: a.astype(np.float32)  # noqa: E731
        if x_raw.dtype != np.uint8:
            notes.append("x scaled from 0-255 to [0, 1]")
    elif lo >= 0 and hi <= 1.0:
        to255 = lambda a: a.astype(np.float32) * 255.0  # noqa: E731
    else:
        span = (hi - lo) or 1.0
        to255 = lambda a: (a.astype(np.float32) - lo) / span * 255.0  # noqa: E731
        notes.append(f"x values span [{lo:g}, {hi:g}]: min-max rescaled to [0, 1]")

    counts_all = dict(zip(class_names, np.bincount(y, minlength=len(class_names)).tolist()))
    keep = _subsample(y, max_images, seed, notes)
    h, w = size
    x = np.empty((len(keep), h, w, channels), np.float32)
    sizes, modes, conversions = Counter(), Counter(), Counter()
    hashes, kinds = [], []
    for k, i in enumerate(keep):
        a = x_raw[i]
        hashes.append(_hash_pixels(a))
        c = a.shape[-1]
        kinds.append("grey" if c == 1 else "rgba" if c == 4 else "rgb")
        modes[kinds[-1]] += 1
        sizes[a.shape[:2]] += 1
        a = to255(a)
        if c == 4:
            a = a[..., :3]
            conversions["alpha dropped"] += 1
        if channels == 3 and a.shape[-1] == 1:
            a = np.repeat(a, 3, axis=2)
            conversions["grey->RGB"] += 1
        elif channels == 1 and a.shape[-1] == 3:
            a = (a @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
            conversions["RGB->grey"] += 1
        x[k] = _resize(np.clip(a, 0, 255).astype(np.float32), size)
    for conv, n in sorted(conversions.items()):
        notes.append(f"{conv}: {n} image(s)")
    if any(s != (h, w) for s in sizes):
        notes.append(f"resized to {h}x{w} (HxW) with Pillow bilinear")
    return _Loaded(x=x, y=y[keep], class_names=class_names, names=[f"x[{i}]" for i in keep], hashes=hashes,
                   source=f"npz {path}", notes=notes, checks=[], sizes=sizes, modes=modes, stats=raw,
                   counts_all=counts_all, kinds=kinds)


# -- split and checks ----------------------------------------------------------------

def stratified_split(y: np.ndarray, val_fraction: float, seed: int):
    """(train_idx, val_idx, stratified: bool), deterministic for ``seed``.

    Both index arrays come shuffled (seeded), so ``x_train[:n]`` is a mixed-class sample."""
    from sklearn.model_selection import train_test_split

    idx = np.random.default_rng(seed).permutation(len(y))
    if val_fraction <= 0 or len(y) < 2:
        return idx, idx[:0], True
    try:
        tr, va = train_test_split(idx, test_size=val_fraction, stratify=y[idx], random_state=seed)
        return tr, va, True
    except ValueError:
        tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed)
        return tr, va, False


def _finish(ld: _Loaded, size, channels, val_fraction, seed) -> Dataset:
    tr, va, stratified = stratified_split(ld.y, val_fraction, seed)
    notes = list(ld.notes)
    if val_fraction > 0:
        notes.append(f"split {len(tr)} train / {len(va)} validation "
                     f"({'stratified' if stratified else 'NOT stratified: a class has too few images'}, seed {seed})")
    checks = list(ld.checks) + run_checks(ld, tr, va, size, channels)
    facts = {
        "image_sizes": {f"{h}x{w}": n for (h, w), n in ld.sizes.most_common()},
        "modes": dict(ld.modes),
        "pixel_stats": ld.stats,
        "per_class_found": ld.counts_all,
        "per_class_loaded": dict(zip(ld.class_names, np.bincount(ld.y, minlength=len(ld.class_names)).tolist())),
        "model_input": [size[0], size[1], channels],
        "stratified": stratified,
        "seed": seed,
    }
    digest = hashlib.blake2b(digest_size=16)
    for part, rows in (("train", tr), ("val", va)):
        digest.update(part.encode())
        for i in rows:
            digest.update(f"{ld.hashes[i]}:{int(ld.y[i])};".encode())
    return Dataset(x_train=ld.x[tr], y_train=ld.y[tr], x_val=ld.x[va], y_val=ld.y[va],
                   class_names=list(ld.class_names), source=ld.source, notes=notes, checks=checks, facts=facts,
                   content=digest.hexdigest())


def _check(code, message, *, evidence, files=(), severity=None, explanation="", fix="") -> dict:
    name, default, _ = DATA_CHECKS[code]
    files = list(files)
    return {"code": code, "name": name, "category": "data", "severity": severity or default,
            "message": message, "evidence": evidence, "files": files[:MAX_FILES_LISTED],
            "explanation": explanation, "fix": fix}


def run_checks(ld: _Loaded, train_idx, val_idx, size, channels) -> list:
    """The data checks ML001, ML003-ML008 on loaded data (ML002 is raised while loading)."""
    out = []
    names = ld.class_names
    counts = np.bincount(ld.y, minlength=len(names))
    per_class = {n: int(c) for n, c in zip(names, counts)}

    # ML001 class imbalance (on what was found, before subsampling)
    found = np.array([ld.counts_all.get(n, 0) for n in names])
    if len(found) > 1 and found.max() > 0:
        lo = found.min()
        ratio = float("inf") if lo == 0 else found.max() / lo
        if ratio > IMBALANCE_RATIO:
            big, small = names[int(found.argmax())], names[int(found.argmin())]
            out.append(_check(
                "ML001", f"classes are imbalanced: '{big}' has {found.max()} images, '{small}' has {lo} "
                          f"({'no images' if lo == 0 else f'{ratio:.1f}x'})",
                evidence={"per_class": {n: int(c) for n, c in zip(names, found)},
                          "max_min_ratio": None if lo == 0 else round(ratio, 2), "threshold": IMBALANCE_RATIO},
                explanation="A model can score well by favouring the large classes; accuracy hides it.",
                fix="Collect more of the small classes, weight the loss by class (class_weight / "
                    "CrossEntropyLoss(weight=...)), or resample; report per-class recall or balanced accuracy."))

    # duplicates by content hash of the decoded pixels
    groups = defaultdict(list)
    for i, h in enumerate(ld.hashes):
        groups[h].append(i)
    within, across = [], []
    for rows in groups.values():
        if len(rows) < 2:
            continue
        labels = {int(ld.y[r]) for r in rows}
        if len(labels) > 1:
            across.append(rows)
        by_label = defaultdict(list)
        for r in rows:
            by_label[int(ld.y[r])].append(r)
        within.extend(rs for rs in by_label.values() if len(rs) > 1)
    if within:
        extra = sum(len(rs) - 1 for rs in within)
        out.append(_check(
            "ML003", f"{extra} image(s) are exact copies of another image of the same class "
                      f"({len(within)} group(s))",
            evidence={"groups": len(within), "extra_copies": extra,
                      "examples": [[ld.names[r] for r in rs] for rs in within[:10]]},
            files=[ld.names[r] for rs in within for r in rs],
            explanation="Copies weigh some images more than others and can leak across the split.",
            fix="Remove the duplicates (keep one of each group)."))
    if across:
        out.append(_check(
            "ML004", f"{len(across)} image(s) appear under more than one class "
                      f"({sum(len(rs) for rs in across)} files, identical pixels, different labels)",
            evidence={"groups": len(across),
                      "examples": [{ld.names[r]: names[int(ld.y[r])] for r in rs} for rs in across[:10]]},
            files=[ld.names[r] for rs in across for r in rs],
            explanation="The same input with two labels is label noise no model can fit; it caps accuracy.",
            fix="Decide the right class for each image and delete the other copy."))
    train_set = {ld.hashes[i] for i in train_idx}
    leaked = [int(i) for i in val_idx if ld.hashes[i] in train_set]
    if leaked:
        out.append(_check(
            "ML005", f"{len(leaked)} of {len(val_idx)} validation image(s) also appear in the training split",
            evidence={"leaked": len(leaked), "val": int(len(val_idx)),
                      "fraction": round(len(leaked) / max(1, len(val_idx)), 4)},
            files=[ld.names[i] for i in leaked],
            explanation="Validation accuracy is inflated by images the model has already seen.",
            fix="De-duplicate before splitting, or split by content hash so copies land on one side."))

    # ML006 image size / aspect ratio vs the model input
    h, w = size
    total = sum(ld.sizes.values())
    if total:
        off = sum(n for s, n in ld.sizes.items() if s != (h, w))
        if off / total > 0.5:
            (ch, cw), common_n = ld.sizes.most_common(1)[0]
            aspect_model, aspect_img = w / h, cw / ch
            distortion = max(aspect_img, aspect_model) / min(aspect_img, aspect_model)
            scale = min(h / ch, w / cw)
            distinct = len(ld.sizes)
            hist = {f"{a}x{b}": n for (a, b), n in ld.sizes.most_common(10)}
            problems = []
            if distortion > 1.15:
                problems.append(f"aspect ratio {aspect_img:.2f} squeezed to {aspect_model:.2f}")
            if scale < 0.5:
                problems.append(f"shrunk {1 / scale:.1f}x (fine detail is lost)")
            elif scale > 2:
                problems.append(f"enlarged {scale:.1f}x (the model sees interpolation, not detail)")
            if distinct > 1:
                problems.append(f"{distinct} different sizes")
            severity = "warning" if (distortion > 1.15 or scale < 0.5 or scale > 2) else "info"
            out.append(_check(
                "ML006", f"{off} of {total} images are not the model's {h}x{w} input; most are {ch}x{cw} "
                          f"(HxW)" + (f": {'; '.join(problems)}" if problems else ""),
                severity=severity,
                evidence={"model_input": f"{h}x{w}", "most_common": f"{ch}x{cw}", "most_common_count": common_n,
                          "distinct_sizes": distinct, "histogram": hist,
                          "aspect_distortion": round(distortion, 3), "scale": round(scale, 3)},
                explanation="Images are resized to the input on the fly; a different aspect ratio distorts "
                            "shapes and a large reduction removes detail the classes may depend on.",
                fix=f"Match the model input to the data (e.g. {ch}x{cw}, or keep the aspect ratio), or "
                    "crop/pad to the input's aspect ratio before resizing."))

    # ML007 channel mismatch
    grey = ld.modes.get("grey", 0)
    colour = total - grey
    if channels == 3 and grey:
        severity = "warning" if grey / max(1, total) > 0.5 else "info"
        out.append(_check(
            "ML007", f"{grey} of {total} images are greyscale but the model takes 3 channels "
                      "(the grey channel is repeated)",
            severity=severity, evidence={"grey": grey, "colour": colour, "model_channels": 3, "modes": dict(ld.modes)},
            files=[n for n, k in zip(ld.names, ld.kinds) if k == "grey"],
            explanation="Three identical channels triple the first layer's input for no information; "
                        "a mix of grey and colour images is a shift the model must learn around.",
            fix="If all images are grey, give the model a 1-channel input; otherwise convert consistently."))
    elif channels == 1 and colour:
        out.append(_check(
            "ML007", f"{colour} of {total} images are in colour but the model takes 1 channel "
                      "(colour is discarded)",
            evidence={"grey": grey, "colour": colour, "model_channels": 1, "modes": dict(ld.modes)},
            files=[n for n, k in zip(ld.names, ld.kinds) if k != "grey"],
            explanation="Colour information is thrown away before the model sees it.",
            fix="Use a 3-channel input if colour can tell the classes apart."))

    # ML008 pixel statistics (reported; whether the model normalises is decided elsewhere)
    if ld.stats:
        st = ld.stats
        out.append(_check(
            "ML008", f"pixel values span [{st['min']:g}, {st['max']:g}] ({st['unit']}); per-channel mean "
                      f"{_fmt(st['mean'])}, std {_fmt(st['std'])}",
            evidence=dict(st),
            explanation="A model that does not rescale or normalise its input sees these raw values.",
            fix="Rescale to [0, 1] or standardise with these mean/std in the model or the input pipeline."))
    return out


def _fmt(vals) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in vals) + "]"
