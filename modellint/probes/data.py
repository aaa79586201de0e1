"""Load the user's images for the probes, and check the data on the way in.

Two sources:

* a **folder of class sub-folders**, read the way Keras ``image_dataset_from_directory``
  and torchvision ``ImageFolder`` read it: class names are the sorted sub-folder names,
  files are found recursively, ``.jpg .jpeg .png .bmp .gif .webp`` are images (the first
  frame of an animation), anything else is ignored;
* an **``.npz``** with ``x`` (NHWC, NHW or NCHW; uint8 or float) and ``y`` (integer
  labels or one-hot), optionally ``class_names``.

Hostile or broken data is refused or skipped, never followed (see :data:`MAX_IMAGE_PIXELS`,
:data:`MAX_NPZ_BYTES`, :data:`MAX_CLASSES`): only regular files inside the data folder are read
(links leaving it are skipped with a note, FIFOs and devices are never opened; the listing is
:func:`modellint.dataset.list_class_folder`); an image over the pixel cap is skipped before it is
decoded (named in ML002), a JPEG decoded at a reduced scale when that brings it under the cap;
an ``.npz`` is checked from its members' ``.npy`` headers before any array is read (numeric
arrays only, never pickles; declared sizes, image size and label range capped; no duplicate
member names).

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
import math
import warnings
import zipfile
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..dataset import list_class_folder, open_regular
from ..rules.data import DATA_RULES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

IMBALANCE_RATIO = 3.0     # ML001 fires when the largest class has more than this x the smallest
MAX_FILES_LISTED = 50     # file names kept per check

#: Most pixels (width x height) an image may have when decoded: 25 megapixels (a 6000x4000 camera
#: picture). Decoding costs up to about 12 bytes a pixel (Pillow's image, a converted copy, the array),
#: so about 300 MB at the cap. A larger image is skipped before it is decoded (named in ML002), except a
#: JPEG that Pillow's draft mode can decode at 1/2, 1/4 or 1/8 scale under the cap. Pillow's own
#: decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, left as the user set it) refuses larger
#: files still when they are opened; its warning is not shown (this cap decides). The same cap holds
#: for the images of an ``.npz``.
MAX_IMAGE_PIXELS = 25_000_000
#: Image formats read (by content, whatever the extension): what Keras and torchvision read.
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")
#: Most bytes the arrays of an ``.npz`` may declare, uncompressed, when the file is small: 512 MiB, or
#: 4x the file's own size when it is larger (an uncompressed ``np.savez`` of real data is never refused;
#: a small compressed file that declares gigabytes is). Checked from the ``.npy`` headers before reading.
MAX_NPZ_BYTES = 512 * 2**20
NPZ_EXPANSION = 4
#: Most classes: labels must be whole numbers in 0..MAX_CLASSES-1 (one-hot rows at most this wide).
MAX_CLASSES = 100_000

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
    """(classes, files, labels, ignored count, note on what was skipped or None): only regular files
    inside ``root`` (see :func:`modellint.dataset.list_class_folder`)."""
    listing = list_class_folder(root)
    return (listing.classes, listing.files, np.asarray(listing.labels, dtype=np.int64), listing.ignored,
            listing.skipped_note())


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
    """PIL image -> (array HxWxC in 0..255, kind, conversion or None): uint8 with ``channels`` channels,
    or, for 16-bit and float images, float32 with one channel (repeated to RGB after resizing, so a
    large grey image is never held three times)."""
    kind = _mode_kind(img)
    conv = None
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.array(img, dtype=np.float32)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        if top != 255.0:
            arr *= np.float32(255.0 / top)
        np.clip(arr, 0, 255, out=arr)
        conv = "16-bit->8-bit scale" if top > 255 else None
        if channels == 3:
            conv = "grey->RGB"
        return arr[..., None], kind, conv
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

    CHUNK = 1 << 20  # pixels converted to float64 at a time (24 MB for RGB), whatever the image's size

    def __init__(self):
        self.n = 0
        self.s = self.ss = self.lo = self.hi = None
        self.nonfinite = 0  # NaN and infinite values seen (not counted in the statistics)

    def add(self, arr: np.ndarray, channels: Optional[int] = None):
        """Add the pixels of ``arr`` (..., C); a one-channel ``arr`` counts as ``channels`` equal ones."""
        flat = arr.reshape(-1, arr.shape[-1])
        c = flat.shape[1]
        s, ss = np.zeros(c), np.zeros(c)
        lo, hi = np.full(c, np.inf), np.full(c, -np.inf)
        for i in range(0, len(flat), self.CHUNK):
            a = flat[i:i + self.CHUNK].astype(np.float64)
            if a.dtype.kind == "f" and flat.dtype.kind == "f":
                bad = ~np.isfinite(a)
                if bad.any():
                    self.nonfinite += int(bad.sum())
                    a = np.where(bad, 0.0, a)
            s += a.sum(0)
            ss += (a * a).sum(0)
            if len(a):
                lo, hi = np.minimum(lo, a.min(0)), np.maximum(hi, a.max(0))
        if channels and c == 1 and channels > 1:
            s, ss, lo, hi = (np.repeat(v, channels) for v in (s, ss, lo, hi))
        if self.s is None:
            self.s, self.ss, self.lo, self.hi = s, ss, lo, hi
        else:
            self.s += s
            self.ss += ss
            self.lo, self.hi = np.minimum(self.lo, lo), np.maximum(self.hi, hi)
        self.n += len(flat)

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
    h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))  # no copy of a contiguous array
    return h.hexdigest()


class _TooLarge(ValueError):
    """An image over :data:`MAX_IMAGE_PIXELS` (or Pillow's decompression-bomb limit): skipped, never decoded."""


def _read_image(path: Path, channels: int) -> tuple:
    """(array, kind, conversion, (H, W) of the file) of the first frame of the image at ``path``.

    A regular file only (:func:`modellint.dataset.open_regular`); its size is read from the header and
    checked against :data:`MAX_IMAGE_PIXELS` before anything is decoded (a JPEG over the cap is decoded at
    the largest of 1/2, 1/4, 1/8 scale that brings it under, when one does)."""
    from PIL import Image

    with open_regular(path) as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_IMAGE_PIXELS decides
        try:
            img = Image.open(fh, formats=IMAGE_FORMATS)
        except Image.DecompressionBombError as exc:
            raise _TooLarge(f"refused as a decompression bomb: {exc}"[:200]) from None
        with img:
            img.seek(0)
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                scale = next((k for k in (2, 4, 8) if math.ceil(w / k) * math.ceil(h / k) <= MAX_IMAGE_PIXELS),
                             None)
                if img.format in ("JPEG", "MPO") and scale and w >= scale and h >= scale:
                    img.draft(img.mode, (w // scale, h // scale))
                if img.size[0] * img.size[1] > MAX_IMAGE_PIXELS:
                    raise _TooLarge(f"{w}x{h} pixels ({w * h / 1e6:.0f} MP), over the cap of "
                                    f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP: skipped without decoding it")
            img.load()
            arr, kind, conv = _decode(img, channels)
    return arr, kind, conv, (h, w)


def _load_folder(root: Path, size, channels, seed, max_images) -> _Loaded:
    from PIL import Image

    classes, files, labels, ignored, skipped = _class_files(root)
    if not classes:
        raise ValueError(f"{root}: no class sub-folders" + (f" ({skipped})" if skipped else ""))
    if not files:
        raise ValueError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class sub-folders"
                         + (f" ({skipped})" if skipped else ""))
    notes = [skipped] if skipped else []
    if ignored:
        notes.append(f"ignored {ignored} file(s) that are not images by their extension")
    counts_all = dict(zip(classes, np.bincount(labels, minlength=len(classes)).tolist()))
    keep = _subsample(labels, max_images, seed, notes)
    h, w = size
    x = np.empty((len(keep), h, w, channels), np.float32)
    ys, names, hashes, bad, kinds, large = [], [], [], [], [], []
    sizes, modes, conversions = Counter(), Counter(), Counter()
    stats = _Stats()
    for i in keep:
        f = files[i]
        rel = f.relative_to(root).as_posix()
        try:
            arr, kind, conv, original = _read_image(f, channels)
        except _TooLarge as exc:
            bad.append((rel, str(exc)[:160]))
            large.append(rel)
            continue
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a finding, never fatal
            bad.append((rel, f"{type(exc).__name__}: {exc}"[:160]))
            continue
        sizes[original] += 1
        modes[kind] += 1
        kinds.append(kind)
        if conv:
            conversions[conv] += 1
        stats.add(arr, channels)
        small = _resize(arr, size)
        x[len(ys)] = small if small.shape[2] == channels else np.repeat(small, channels, axis=2)
        ys.append(labels[i])
        names.append(rel)
        hashes.append(_hash_pixels(arr))
    x = x[: len(ys)]
    for conv, n in sorted(conversions.items()):
        notes.append(f"{conv}: {n} image(s)")
    if any(s != (h, w) for s in sizes):
        notes.append(f"resized to {h}x{w} (HxW) with Pillow bilinear")
    if large:
        shown = ", ".join(large[:5]) + (f" and {len(large) - 5} more" if len(large) > 5 else "")
        notes.append(f"skipped {len(large)} image(s) over the {MAX_IMAGE_PIXELS / 1e6:.0f} MP pixel cap "
                     f"without decoding them: {shown}")
    checks = []
    if bad:
        checks.append(_check("ML002", f"{len(bad)} of {len(keep)} image file(s) could not be read and were skipped",
                             evidence={"unreadable": len(bad), "files_read": len(keep),
                                       "errors": dict(bad[:MAX_FILES_LISTED])},
                             files=[b[0] for b in bad],
                             explanation="Keras and torchvision stop the whole epoch on an undecodable file.",
                             fix="Delete or re-encode these files (e.g. open and re-save them with Pillow)."))
    if not ys:
        over = f" ({len(large)} over the {MAX_IMAGE_PIXELS / 1e6:.0f} MP pixel cap)" if large else ""
        raise ValueError(f"{root}: none of its {len(keep)} image file(s) could be read{over}")
    return _Loaded(x=x, y=np.asarray(ys, np.int64), class_names=classes, names=names, hashes=hashes,
                   source=f"folder {root}", notes=notes, checks=checks, sizes=sizes, modes=modes,
                   stats=stats.result("0-255"), counts_all=counts_all, kinds=kinds)


def _npy_header(fp) -> tuple:
    """(shape, fortran_order, dtype) from the start of a ``.npy`` stream, without reading the array."""
    from numpy.lib import format as npy

    version = npy.read_magic(fp)
    if version == (1, 0):
        return npy.read_array_header_1_0(fp)
    if version in ((2, 0), (3, 0)):  # 3.0 differs only in utf-8 field names, which numeric arrays have none of
        return npy.read_array_header_2_0(fp)
    raise ValueError(f"unsupported .npy format version {version}")


def _npz_arrays(path: Path) -> dict:
    """``x``, ``y`` and (if present) ``class_names`` of an ``.npz``, checked from the headers first.

    Refused (ValueError naming the problem): not a zip archive, two members with one name, a missing
    ``x`` or ``y``, object or structured arrays (nothing is ever unpickled), images that are not 3-D or
    4-D or larger than :data:`MAX_IMAGE_PIXELS`, one-hot rows wider than :data:`MAX_CLASSES`, and declared
    sizes over :data:`MAX_NPZ_BYTES` (or NPZ_EXPANSION x the file's size, when that is larger): all before
    any array is allocated."""
    from numpy.lib import format as npy

    def bad(problem):
        return ValueError(f"{path}: {problem}")

    with open_regular(path) as fh:
        file_size = os.fstat(fh.fileno()).st_size
        try:
            zf = zipfile.ZipFile(fh)
        except zipfile.BadZipFile:
            raise bad("not an .npz (zip) archive") from None
        with zf:
            members = {}
            for info in zf.infolist():
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if key in members:
                    raise bad(f"holds two members named {key!r}: which one is meant is ambiguous")
                members[key] = info
            if not {"x", "y"} <= set(members):
                raise bad(f"an .npz for modellint needs arrays 'x' and 'y' (has {sorted(members)[:20]})")
            wanted = [k for k in ("x", "y", "class_names") if k in members]
            headers, total = {}, 0
            try:
                for key in wanted:
                    with zf.open(members[key]) as fp:
                        shape, _, dtype = _npy_header(fp)
                    headers[key] = (shape, dtype)
            except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile, NotImplementedError,
                    RuntimeError) as exc:
                raise bad(f"{key} is not a readable .npy array ({exc})"[:300]) from None
            for key, (shape, dtype) in headers.items():
                kinds = "US" if key == "class_names" else "biuf"
                if dtype.hasobject:
                    raise bad(f"{key} is an object array (pickled Python objects): modellint reads only "
                              "numeric arrays and never unpickles")
                if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
                    raise bad(f"{key} has dtype {dtype}; expected " + (
                        "strings" if key == "class_names" else "numbers (integers, floats or booleans)"))
                total += math.prod(shape) * dtype.itemsize
            limit = max(MAX_NPZ_BYTES, NPZ_EXPANSION * file_size)
            if total > limit:
                raise bad(f"its arrays declare {total / 2**20:,.0f} MiB uncompressed, over the {limit / 2**20:,.0f} "
                          f"MiB read from a {file_size / 2**20:,.1f} MiB file; keep fewer or smaller images "
                          "(or pass a folder)")
            xs, ys = headers["x"][0], headers["y"][0]
            if len(xs) not in (3, 4):
                raise bad(f"x must be NHWC, NHW or NCHW images; got shape {tuple(xs)}")
            hw = xs[1:3] if len(xs) == 3 or xs[-1] in (1, 3, 4) or xs[1] not in (1, 3, 4) else xs[2:4]
            if hw[0] * hw[1] > MAX_IMAGE_PIXELS:
                raise bad(f"x holds {hw[0]}x{hw[1]} images, over the cap of {MAX_IMAGE_PIXELS / 1e6:.0f} MP "
                          "pixels per image")
            if len(ys) > 2 or (len(ys) == 2 and ys[1] > MAX_CLASSES):
                raise bad(f"y must be class labels or one-hot rows of at most {MAX_CLASSES:,} classes; "
                          f"got shape {tuple(ys)}")
            if "class_names" in headers and math.prod(headers["class_names"][0]) > MAX_CLASSES:
                raise bad(f"class_names holds more than {MAX_CLASSES:,} names")
            out = {}
            try:
                for key in wanted:
                    with zf.open(members[key]) as fp:
                        out[key] = npy.read_array(fp, allow_pickle=False)
            except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile, NotImplementedError,
                    RuntimeError) as exc:
                raise bad(f"{key} could not be read ({exc})"[:300]) from None
    return out


def _load_npz(path: Path, size, channels, seed, max_images) -> _Loaded:
    arrays = _npz_arrays(path)
    x_raw, y_raw = arrays["x"], arrays["y"]
    names_arr = arrays.get("class_names")
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
        if y_raw.dtype.kind == "f" and not np.isfinite(y_raw).all():
            raise ValueError(f"{path}: y has NaN or infinite values")
        y = y_raw.argmax(axis=1).astype(np.int64)
        notes.append("y converted from one-hot to class indices")
        n_classes = y_raw.shape[1]
    else:
        y_flat = y_raw.reshape(-1)
        if y_flat.dtype.kind == "f" and not np.all(np.equal(np.mod(y_flat, 1), 0)):
            raise ValueError(f"{path}: y must hold integer class labels or one-hot rows")
        if len(y_flat) and (y_flat.min() < 0 or y_flat.max() >= MAX_CLASSES):
            lo, hi = y_flat.min(), y_flat.max()
            raise ValueError(f"{path}: y has negative labels" if lo < 0 else
                             f"{path}: y has a label of {hi:,}: labels must be class indices below "
                             f"{MAX_CLASSES:,}")
        y = y_flat.astype(np.int64)
        n_classes = int(y.max()) + 1 if len(y) else 0
    if len(y) != len(x_raw):
        raise ValueError(f"{path}: x has {len(x_raw)} rows but y has {len(y)}")
    if names_arr is not None and len(names_arr) >= n_classes:
        class_names = [str(s) for s in names_arr]
    else:
        class_names = [str(i) for i in range(n_classes)]

    # raw statistics (in the array's own units) over every row
    stats = _Stats()
    rows = max(1, _Stats.CHUNK // max(1, x_raw.shape[1] * x_raw.shape[2]))  # about a million pixels at a time
    for i in range(0, len(x_raw), rows):
        stats.add(x_raw[i:i + rows])
    if stats.nonfinite:
        raise ValueError(f"{path}: x has {stats.nonfinite:,} NaN or infinite values")
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
            conversions["grey->RGB"] += 1  # repeated after resizing (the same numbers, a third of the work)
        elif channels == 1 and a.shape[-1] == 3:
            a = (a @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
            conversions["RGB->grey"] += 1
        small = _resize(np.clip(a, 0, 255).astype(np.float32, copy=False), size)
        x[k] = small if small.shape[2] == channels else np.repeat(small, channels, axis=2)
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


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Rows of ``y`` (sorted) for a class-stratified subset of ``n`` images, fixed by ``seed``; every row
    when ``n`` is 0 or at least ``len(y)``. Every class keeps at least one image when ``n`` allows."""
    m = len(y)
    if not n or n >= m:
        return np.arange(m)
    from sklearn.model_selection import train_test_split

    try:
        keep, _ = train_test_split(np.arange(m), train_size=int(n), stratify=y, random_state=seed)
    except ValueError:  # a class with one image, or fewer images than classes
        keep = np.random.default_rng(seed).permutation(m)[:n]
    return np.sort(keep)
