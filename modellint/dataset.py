"""Dataset facts for rules, from flags, config, or a folder of class sub-folders.

Counting a folder reads only directory listings and image *headers* (PNG, JPEG,
GIF, BMP, WebP sizes), never whole images and never through a framework.

A data folder is read from inside only (:func:`list_class_folder`, which the probes'
loader uses too): links, to files or folders, whose target lies outside the folder
are skipped with a note, links to folders inside class folders are not followed (so
there are no link loops), and only regular files are opened (a FIFO, socket or
device named ``x.png`` is skipped, never opened: opening a FIFO would block).
"""

from __future__ import annotations

import os
import stat
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .errors import ConfigError, InputError
from .rules.context import DatasetFacts

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
_HEADER_SAMPLE = 200  # images whose size is read to find the typical size


def parse_image_size(text: str) -> tuple:
    """``"128x128"``, ``"128"`` or ``"128,96"`` -> (H, W)."""
    parts = [p for p in str(text).lower().replace("×", "x").replace(",", "x").split("x") if p.strip()]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"image size {text!r} is not HxW (e.g. 128x128)") from None
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) <= 0:
        raise ConfigError(f"image size {text!r} is not HxW (e.g. 128x128)")
    return dims


def facts_from_values(samples=None, classes=None, image_size=None, source="", task=None) -> DatasetFacts:
    def positive(name, v):
        if v is None:
            return None
        try:
            v = int(v)
        except (TypeError, ValueError):
            raise ConfigError(f"dataset {name} must be a whole number, got {v!r}") from None
        if v <= 0:
            raise ConfigError(f"dataset {name} must be positive, got {v}")
        return v

    size = None
    if image_size is not None:
        size = parse_image_size(image_size) if isinstance(image_size, str) else tuple(int(x) for x in image_size)
        if len(size) == 1:
            size = size * 2
    if task is not None:
        from .analysis.task import TASKS

        if task not in TASKS:
            raise ConfigError(f"task {task!r} is not one of {', '.join(TASKS)}")
    return DatasetFacts(samples=positive("samples", samples), classes=positive("classes", classes),
                        image_size=size, source=source, task=task)


# -- reading a data folder from inside only ------------------------------------------------

def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path):
    """``open(path, "rb")``, for a regular file only: OSError for a FIFO, socket or device.

    The file is opened non-blocking (opening a FIFO never waits for a writer) and checked
    with ``fstat`` on the open descriptor, so a file swapped for a FIFO after a listing is
    refused too."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) |
                 getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path}: {_file_kind(st.st_mode)}, not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


@dataclass
class ClassFolder:
    """The image files of a folder of class sub-folders, as :func:`list_class_folder` found them."""

    root: Path
    classes: list                                 # class names: the sorted sub-folder names
    files: list                                   # Path of every image file, class by class
    labels: list                                  # class index per file
    ignored: int = 0                              # files that are not images by their extension
    skipped: list = field(default_factory=list)   # (name relative to root, why) of what was not read

    def skipped_note(self, limit: int = 10) -> Optional[str]:
        """One line saying what was skipped and why (None when nothing was)."""
        if not self.skipped:
            return None
        shown = "; ".join(f"{name}: {why}" for name, why in self.skipped[:limit])
        more = f"; and {len(self.skipped) - limit} more" if len(self.skipped) > limit else ""
        return f"skipped {len(self.skipped)} entr{'y' if len(self.skipped) == 1 else 'ies'} (only regular " \
               f"files and folders inside the data folder are read): {shown}{more}"


def _sorted_entries(path) -> list:
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: e.name)


def list_class_folder(root) -> ClassFolder:
    """The image files under ``root`` (class sub-folders, searched recursively, as Keras
    ``image_dataset_from_directory`` and torchvision ``ImageFolder`` list them): sorted class
    folders; in each, a folder's files (sorted) before its sub-folders (sorted); names starting
    with ``.`` skipped; images by extension (:data:`IMAGE_SUFFIXES`).

    Nothing outside ``root`` is listed or read: a class folder or file that is a link whose target
    lies outside ``root`` (or a class folder linking back to ``root``) is skipped with a reason in
    ``skipped``; links to folders inside class folders are not followed (as ``os.walk`` does not),
    so no link can make a loop; FIFOs, sockets and devices are skipped without being opened."""
    root = Path(root)
    root_real = os.path.realpath(root)
    out = ClassFolder(root=root, classes=[], files=[], labels=[])
    for entry in _sorted_entries(root):
        if entry.name.startswith("."):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if not is_dir:
            continue
        if entry.is_symlink():
            real = os.path.realpath(entry.path)
            if real == root_real:
                out.skipped.append((entry.name + "/", "a link to the data folder itself"))
                continue
            if not _inside(real, root_real):
                out.skipped.append((entry.name + "/", "a link to a folder outside the data folder"))
                continue
        out.classes.append(entry.name)
    for label, name in enumerate(out.classes):
        stack = [(root / name, name)]
        while stack:
            folder, rel = stack.pop()
            try:
                entries = _sorted_entries(folder)
            except OSError as exc:
                out.skipped.append((rel + "/", f"cannot list it ({exc.strerror or exc})"))
                continue
            subfolders = []
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                name_rel = f"{rel}/{entry.name}"
                link = entry.is_symlink()
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    if link:
                        real = os.path.realpath(entry.path)
                        out.skipped.append((name_rel + "/", "a link to a folder " + (
                            "inside the data folder (not followed)" if _inside(real, root_real)
                            else "outside the data folder")))
                    else:
                        subfolders.append((Path(entry.path), name_rel))
                    continue
                if not entry.name.lower().endswith(IMAGE_SUFFIXES):
                    out.ignored += 1
                    continue
                if link and not _inside(os.path.realpath(entry.path), root_real):
                    out.skipped.append((name_rel, "a link to a file outside the data folder"))
                    continue
                try:
                    mode = os.stat(entry.path).st_mode
                except OSError as exc:
                    if link:  # its target is missing, or it is part of a loop of links
                        out.skipped.append((name_rel, f"a broken link ({exc.strerror or exc})"))
                        continue
                    mode = None  # a file that vanished or cannot be read: listed, reported unreadable when read
                if mode is not None and not stat.S_ISREG(mode):
                    out.skipped.append((name_rel, f"{_file_kind(mode)}, not a regular file"))
                    continue
                out.files.append(Path(entry.path))
                out.labels.append(label)
            stack.extend(reversed(subfolders))
    return out


def image_header_size(path: Path) -> Optional[tuple]:
    """(H, W, channels or None) from an image file's header; None if unknown (or not a regular file)."""
    try:
        with open_regular(path) as f:
            head = f.read(64)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                w, h = struct.unpack(">II", head[16:24])
                channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(head[25])
                return h, w, channels
            if head[:6] in (b"GIF87a", b"GIF89a"):
                w, h = struct.unpack("<HH", head[6:10])
                return h, w, 3
            if head[:2] == b"BM":
                w, h = struct.unpack("<ii", head[18:26])
                return abs(h), w, 3
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                if head[12:16] == b"VP8X":
                    w = 1 + int.from_bytes(head[24:27], "little")
                    h = 1 + int.from_bytes(head[27:30], "little")
                    return h, w, 3
                return None
            if head[:2] == b"\xff\xd8":
                return _jpeg_size(f)
    except OSError:
        return None
    return None


def _jpeg_size(f) -> Optional[tuple]:
    f.seek(2)
    for _ in range(1000):  # bounded walk over markers
        marker = f.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        if kind in (0xD8, 0x01) or 0xD0 <= kind <= 0xD7:
            continue
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            return None
        length = struct.unpack(">H", length_bytes)[0]
        if kind in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            data = f.read(6)
            if len(data) < 6:
                return None
            _, h, w, channels = struct.unpack(">BHHB", data)
            return h, w, channels
        f.seek(length - 2, os.SEEK_CUR)
    return None


def facts_from_folder(directory) -> DatasetFacts:
    """Count a folder of class sub-folders (as Keras image_dataset_from_directory and
    torchvision ImageFolder read it): classes, images, typical image size and channels."""
    root = Path(directory)
    if not root.is_dir():
        raise InputError(root, "is not a directory of class sub-folders")
    try:
        listing = list_class_folder(root)
    except OSError as exc:
        raise InputError(root, f"cannot list it ({exc.strerror or exc})") from None
    per_label = Counter(listing.labels)
    per_class = {name: per_label[k] for k, name in enumerate(listing.classes) if per_label[k]}
    sample_paths, taken = [], Counter()
    for f, k in zip(listing.files, listing.labels):
        if taken[k] < max(1, _HEADER_SAMPLE // 13):
            taken[k] += 1
            sample_paths.append(f)
    if not per_class:
        raise InputError(root, "has no class sub-folders with images (.jpg, .png, .bmp, .gif, .webp)")
    sizes = Counter()
    channels = Counter()
    for p in sample_paths[:_HEADER_SAMPLE]:
        info = image_header_size(p)
        if info:
            sizes[(info[0], info[1])] += 1
            if info[2]:
                channels[info[2]] += 1
    facts = DatasetFacts(samples=sum(per_class.values()), classes=len(per_class),
                         image_size=sizes.most_common(1)[0][0] if sizes else None,
                         channels=channels.most_common(1)[0][0] if channels else None,
                         source=f"--data {root}")
    facts.per_class = per_class  # type: ignore[attr-defined]
    facts.skipped = listing.skipped_note()  # type: ignore[attr-defined]
    return facts


def merge(*facts: Optional[DatasetFacts]) -> DatasetFacts:
    """Later facts override earlier ones, field by field."""
    out = DatasetFacts()
    sources = []
    for f in facts:
        if f is None:
            continue
        for key in ("samples", "classes", "image_size", "channels", "task"):
            if getattr(f, key) is not None:
                setattr(out, key, getattr(f, key))
        if f.source and any(getattr(f, k) is not None for k in ("samples", "classes", "image_size")):
            sources.append(f.source)
    out.source = ", ".join(sources)
    return out
