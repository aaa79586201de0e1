"""Dataset facts for rules, from flags, config, or a folder of class sub-folders.

Counting a folder reads only directory listings and image *headers* (PNG, JPEG,
GIF, BMP, WebP sizes), never whole images and never through a framework. An image
whose header is empty, cut short, damaged or of no known format is not counted for
the typical size and is named in one note line (``facts.unreadable``), as the probes'
loader names undecodable images; it never stops the count.

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


class ImageHeaderError(ValueError):
    """A file named like an image whose header is missing, cut short or damaged (the problem, one line)."""


_JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
_JPEG_MAX_SEGMENTS = 1000        # markers walked before the frame header; then the size is unknown
_JPEG_MAX_FILL = 1 << 16         # 0xFF fill bytes allowed before one marker
_BMP_DIB_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"\xff\xd8", "JPEG"),
               (b"BM", "BMP"), (b"RIFF", "WebP"))


def _need(head: bytes, n: int, fmt: str) -> None:
    if len(head) < n:
        raise ImageHeaderError(f"{fmt} header cut short ({len(head)} of at least {n} bytes)")


def _bytes(n: int) -> str:
    return f"{n} byte{'' if n == 1 else 's'}"


def _dims(fmt: str, h: int, w: int) -> None:
    if h <= 0 or w <= 0:
        raise ImageHeaderError(f"{fmt} header declares {w}x{h} pixels")


def image_header_size(path: Path) -> Optional[tuple]:
    """(H, W, channels or None) from an image file's header (PNG, JPEG, GIF, BMP, WebP); None when the
    header is whole but carries no size this reader knows (a JPEG whose frame header is beyond the
    first 1,000 segments).

    Raises :class:`ImageHeaderError` (a ``ValueError``), and nothing else, when the file cannot be
    read, is empty, is none of those formats, or its header is cut short, damaged or declares a
    zero or negative size: at most 64 bytes are read, plus a bounded walk over a JPEG's segment
    headers."""
    try:
        with open_regular(path) as f:
            head = f.read(64)
            return _header_size(f, head)
    except OSError as exc:
        raise ImageHeaderError(f"cannot read it ({exc.strerror or exc})") from None


def _header_size(f, head: bytes) -> Optional[tuple]:
    if not head:
        raise ImageHeaderError("empty file")
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        _need(head, 26, "PNG")
        if head[12:16] != b"IHDR":
            raise ImageHeaderError("PNG without an IHDR header chunk first")
        w, h = struct.unpack(">II", head[16:24])
        _dims("PNG", h, w)
        channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(head[25])
        return h, w, channels
    if head[:6] in (b"GIF87a", b"GIF89a"):
        _need(head, 10, "GIF")
        w, h = struct.unpack("<HH", head[6:10])
        _dims("GIF", h, w)
        return h, w, 3
    if head[:2] == b"BM":
        _need(head, 18, "BMP")
        dib = struct.unpack("<I", head[14:18])[0]
        if dib not in _BMP_DIB_SIZES:
            raise ImageHeaderError(f"BMP header of unknown kind (DIB header size {dib})")
        if dib == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
            _need(head, 22, "BMP")
            w, h = struct.unpack("<HH", head[18:22])
        else:
            _need(head, 26, "BMP")
            w, h = struct.unpack("<ii", head[18:26])
        _dims("BMP", abs(h), w)  # a negative height is a top-down bitmap
        return abs(h), w, 3
    if head[:4] == b"RIFF":
        _need(head, 16, "WebP")
        if head[8:12] != b"WEBP":
            raise ImageHeaderError("a RIFF file that is not WebP")
        chunk = head[12:16]
        if chunk == b"VP8X":
            _need(head, 30, "WebP")
            w = 1 + int.from_bytes(head[24:27], "little")
            h = 1 + int.from_bytes(head[27:30], "little")
            return h, w, 3
        if chunk == b"VP8 ":  # lossy: frame tag, start code 9d 01 2a, 14-bit sizes
            _need(head, 30, "WebP")
            if head[23:26] != b"\x9d\x01\x2a":
                raise ImageHeaderError("WebP (VP8) frame without its start code")
            w, h = (v & 0x3FFF for v in struct.unpack("<HH", head[26:30]))
            _dims("WebP", h, w)
            return h, w, 3
        if chunk == b"VP8L":  # lossless: signature 0x2f, then 14 bits width - 1, 14 bits height - 1
            _need(head, 25, "WebP")
            if head[20] != 0x2F:
                raise ImageHeaderError("WebP (VP8L) frame without its signature byte")
            bits = int.from_bytes(head[21:25], "little")
            return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1, 3
        raise ImageHeaderError(f"WebP whose first chunk is {chunk!r}, not VP8, VP8L or VP8X")
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(f)
    for sig, fmt in _SIGNATURES:
        if len(head) < len(sig) and sig.startswith(head):
            raise ImageHeaderError(f"{fmt} signature cut short ({_bytes(len(head))})")
    raise ImageHeaderError("not a PNG, JPEG, GIF, BMP or WebP file (unknown header)")


def _jpeg_size(f) -> Optional[tuple]:
    """Walk the segment headers after SOI to the first frame header (SOFn): seeks over segment
    bodies, at most :data:`_JPEG_MAX_SEGMENTS` segments and :data:`_JPEG_MAX_FILL` fill bytes each."""
    f.seek(2)
    for _ in range(_JPEG_MAX_SEGMENTS):
        at = f.tell()
        marker = f.read(2)
        if len(marker) < 2:
            raise ImageHeaderError(f"JPEG cut short at byte {at} (no frame header)")
        if marker[0] != 0xFF:
            raise ImageHeaderError(f"JPEG segment at byte {at} does not start with a marker")
        kind = marker[1]
        fill = 0
        while kind == 0xFF:  # fill bytes before a marker
            fill += 1
            if fill > _JPEG_MAX_FILL:
                raise ImageHeaderError(f"JPEG with over {_JPEG_MAX_FILL:,} fill bytes at byte {at}")
            b = f.read(1)
            if not b:
                raise ImageHeaderError(f"JPEG cut short at byte {f.tell()} (no frame header)")
            kind = b[0]
        if kind in (0xD8, 0x01) or 0xD0 <= kind <= 0xD7:
            continue
        if kind in (0x00, 0xD9, 0xDA):
            raise ImageHeaderError(f"JPEG without a frame header before marker 0x{kind:02X} at byte {f.tell() - 2}")
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            raise ImageHeaderError(f"JPEG cut short at byte {f.tell()} (no frame header)")
        length = struct.unpack(">H", length_bytes)[0]
        if length < 2:
            raise ImageHeaderError(f"JPEG segment at byte {f.tell() - 4} declares a length of {length}")
        if kind in _JPEG_SOF:
            data = f.read(6)
            if len(data) < 6:
                raise ImageHeaderError(f"JPEG frame header cut short at byte {f.tell()}")
            _, h, w, channels = struct.unpack(">BHHB", data)
            _dims("JPEG", h, w)
            return h, w, channels or None
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
    unreadable = []
    for p in sample_paths[:_HEADER_SAMPLE]:
        try:
            info = image_header_size(p)
        except ImageHeaderError as exc:
            unreadable.append((p.relative_to(root).as_posix(), str(exc)))
            continue
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
    facts.unreadable = _unreadable_note(unreadable, len(sample_paths[:_HEADER_SAMPLE]))  # type: ignore[attr-defined]
    return facts


def _unreadable_note(unreadable: list, read: int, limit: int = 5) -> Optional[str]:
    """One line naming the images whose header could not be read (None when every one was)."""
    if not unreadable:
        return None
    shown = "; ".join(f"{_printable(name)}: {why}" for name, why in unreadable[:limit])
    more = f"; and {len(unreadable) - limit} more" if len(unreadable) > limit else ""
    return (f"{len(unreadable)} of the {read} image(s) sampled for the image size have a damaged or unreadable "
            f"header and were not counted (Keras and torchvision would stop on them): {shown}{more}")


def _printable(name: str) -> str:
    """A file name for a one-line note: control characters (a newline, a terminal escape) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


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
