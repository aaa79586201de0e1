"""Dataset facts for rules, from flags, config, or a folder of class sub-folders.

Counting a folder reads only directory listings and image *headers* (PNG, JPEG,
GIF, BMP, WebP sizes), never whole images and never through a framework.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
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


def facts_from_values(samples=None, classes=None, image_size=None, source="") -> DatasetFacts:
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
    return DatasetFacts(samples=positive("samples", samples), classes=positive("classes", classes),
                        image_size=size, source=source)


def image_header_size(path: Path) -> Optional[tuple]:
    """(H, W, channels or None) from an image file's header; None if unknown."""
    try:
        with open(path, "rb") as f:
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
    per_class = {}
    sample_paths = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = [p for p in sorted(sub.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        if files:
            per_class[sub.name] = len(files)
            sample_paths.extend(files[: max(1, _HEADER_SAMPLE // 13)])
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
    return facts


def merge(*facts: Optional[DatasetFacts]) -> DatasetFacts:
    """Later facts override earlier ones, field by field."""
    out = DatasetFacts()
    sources = []
    for f in facts:
        if f is None:
            continue
        for key in ("samples", "classes", "image_size", "channels"):
            if getattr(f, key) is not None:
                setattr(out, key, getattr(f, key))
        if f.source and any(getattr(f, k) is not None for k in ("samples", "classes", "image_size")):
            sources.append(f.source)
    out.source = ", ".join(sources)
    return out
