"""Image headers read for `check --data` (modellint.dataset), cut at every byte (issue 10).

``image_header_size`` reads sizes from PNG, JPEG, GIF, BMP and WebP headers. Whatever the file, it
returns (H, W, channels or None), or None for a whole header without a size it knows, or raises
``ImageHeaderError`` (documented, a ``ValueError``) naming the problem in one line; nothing else.
A folder of such files still gives facts, with the bad files named in one note line.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from modellint.dataset import ImageHeaderError, facts_from_folder, image_header_size

ROOT = Path(__file__).resolve().parent.parent


def _png(w, h, colour=2) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" + bytes(w * {0: 1, 2: 3, 6: 4}[colour])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * h)) + chunk(b"IEND", b""))


def _gif(w, h, version=b"GIF89a") -> bytes:
    return (version + struct.pack("<HHBBB", w, h, 0, 0, 0) + b",\x00\x00\x00\x00"
            + struct.pack("<HH", w, h) + b"\x00\x02\x02\x44\x01\x00;")


def _bmp(w, h, core=False) -> bytes:
    stride = (abs(w) * 3 + 3) // 4 * 4
    if core:  # OS/2 BITMAPCOREHEADER: 12 bytes, 16-bit sizes
        dib = struct.pack("<IHHHH", 12, w, h, 1, 24)
    else:
        dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, stride * abs(h), 2835, 2835, 0, 0)
    pixels = bytes(stride * abs(h))
    return b"BM" + struct.pack("<IHHI", 14 + len(dib) + len(pixels), 0, 0, 14 + len(dib)) + dib + pixels


def _jpeg(w, h, channels=3, app_segments=2, fill=3, progressive=False) -> bytes:
    out = b"\xff\xd8"
    for i in range(app_segments):  # APP0/APP1-like segments before the frame header
        body = bytes([65 + i]) * (10 + 7 * i)
        out += bytes([0xFF, 0xE0 + i]) + struct.pack(">H", len(body) + 2) + body
    out += b"\xff" * fill  # fill bytes before a marker are allowed
    comps = b"".join(bytes([k + 1, 0x11, 0]) for k in range(channels))
    sof = struct.pack(">BHHB", 8, h, w, channels) + comps
    out += bytes([0xFF, 0xC2 if progressive else 0xC0]) + struct.pack(">H", len(sof) + 2) + sof
    return out + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + bytes(16) + b"\xff\xd9"


def _webp_vp8x(w, h) -> bytes:
    data = b"\x00\x00\x00\x00" + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _webp_vp8(w, h) -> bytes:
    frame = b"\x10\x02\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", w, h) + bytes(20)
    body = b"WEBP" + b"VP8 " + struct.pack("<I", len(frame)) + frame
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _webp_vp8l(w, h) -> bytes:
    bits = (w - 1) | ((h - 1) << 14)
    frame = b"\x2f" + bits.to_bytes(4, "little") + bytes(20)
    body = b"WEBP" + b"VP8L" + struct.pack("<I", len(frame)) + frame
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _pillow(fmt, w, h, mode="RGB", **kw) -> bytes:
    Image = pytest.importorskip("PIL.Image")
    buf = io.BytesIO()
    Image.new(mode, (w, h), (10, 20, 30) if mode == "RGB" else 7).save(buf, format=fmt, **kw)
    return buf.getvalue()


#: name -> (whole file, (H, W, channels) it declares, bytes up to the end of the size fields)
HAND_MADE = {
    "png-rgb": (_png(37, 21), (21, 37, 3), 26),
    "png-rgba": (_png(5, 9, colour=6), (9, 5, 4), 26),
    "png-grey": (_png(5, 9, colour=0), (9, 5, 1), 26),
    "gif89a": (_gif(40, 30), (30, 40, 3), 10),
    "gif87a": (_gif(3, 4, b"GIF87a"), (4, 3, 3), 10),
    "bmp": (_bmp(13, 7), (7, 13, 3), 26),
    "bmp-top-down": (_bmp(13, -7), (7, 13, 3), 26),
    "bmp-os2": (_bmp(6, 5, core=True), (5, 6, 3), 22),
    "jpeg": (_jpeg(48, 33), (33, 48, 3), None),
    "jpeg-grey-progressive": (_jpeg(17, 19, channels=1, progressive=True, fill=0), (19, 17, 1), None),
    "webp-vp8x": (_webp_vp8x(300, 200), (200, 300, 3), 30),
    "webp-vp8": (_webp_vp8(64, 48), (48, 64, 3), 30),
    "webp-vp8l": (_webp_vp8l(321, 123), (123, 321, 3), 25),
}
for _name, (_data, _, _n) in list(HAND_MADE.items()):
    if _n is None:  # a JPEG: the header runs to the end of the frame header (SOFn)
        _sof = max(_data.find(b"\xff\xc0"), _data.find(b"\xff\xc2"))
        HAND_MADE[_name] = (_data, HAND_MADE[_name][1], _sof + 2 + 2 + 6)


def _check(path: Path, data: bytes):
    """image_header_size of ``data``: its result, or the ImageHeaderError's text."""
    path.write_bytes(data)
    try:
        return image_header_size(path)
    except ImageHeaderError as exc:
        text = str(exc)
        assert text and "\n" not in text and len(text) < 200, text
        return text


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_every_cut_of_the_header_is_a_size_or_the_documented_error(name, tmp_path):
    """Cut at every byte from 0 to the whole file: a cut inside the header raises ImageHeaderError
    (nothing else); once the header is whole the declared size comes back."""
    data, size, header = HAND_MADE[name]
    path = tmp_path / "x.img"
    assert _check(path, data) == size
    for cut in range(len(data) + 1):
        got = _check(path, data[:cut])
        if cut < header:
            assert isinstance(got, str), (cut, got)
        else:
            assert got == size, (cut, got)


@pytest.mark.parametrize("fmt,kw,mode", [("PNG", {}, "RGB"), ("PNG", {}, "L"), ("JPEG", {"quality": 80}, "RGB"),
                                         ("JPEG", {"progressive": True}, "RGB"), ("GIF", {}, "L"),
                                         ("BMP", {}, "RGB"), ("WEBP", {"lossless": True}, "RGB"),
                                         ("WEBP", {"quality": 50}, "RGB")],
                         ids=["png", "png-grey", "jpeg", "jpeg-progressive", "gif", "bmp", "webp-lossless",
                              "webp-lossy"])
def test_pillow_files_cut_anywhere(fmt, kw, mode, tmp_path):
    """Files Pillow writes (a JPEG with JFIF and quantisation tables before its frame header): the size
    Pillow wrote, and every cut of the first 700 bytes is a size, None or ImageHeaderError."""
    data = _pillow(fmt, 23, 17, mode, **kw)
    path = tmp_path / "x.img"
    got = _check(path, data)
    assert got[:2] == (17, 23), got
    for cut in range(min(len(data), 700) + 1):
        got = _check(path, data[:cut])
        assert got is None or isinstance(got, str) or got[:2] == (17, 23), (cut, got)


@pytest.mark.parametrize("data,problem", [
    (b"", "empty file"),
    (b"\x89PN", "PNG signature cut short (3 bytes)"),
    (b"G", "GIF signature cut short (1 byte)"),
    (b"hello, not an image", "not a PNG, JPEG, GIF, BMP or WebP"),
    (_png(0, 0), "PNG header declares 0x0 pixels"),
    (_gif(0, 5), "GIF header declares 0x5 pixels"),
    (_bmp(-5, 3), "BMP header declares -5x3 pixels"),
    (b"BM" + bytes(12) + struct.pack("<I", 99) + bytes(40), "DIB header size 99"),
    (b"\x89PNG\r\n\x1a\n" + bytes(4) + b"IDAT" + bytes(20), "IHDR"),
    (b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(20), "not WebP"),
    (b"RIFF\x10\x00\x00\x00WEBPABCD" + bytes(20), "not VP8, VP8L or VP8X"),
    (b"\xff\xd8" + b"\xff\xe0\x00\x00" * 5000, "declares a length of 0"),
    (b"\xff\xd8" + b"\xff\xe0\x00\x01" * 5000, "declares a length of 1"),
    (b"\xff\xd8" + b"\xff" * 100_000, "fill bytes"),
    (b"\xff\xd8\xff\xd9", "without a frame header"),
    (b"\xff\xd8\x00\x00", "does not start with a marker"),
    (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x00\x03" + bytes(9), "JPEG header declares 0x0 pixels"),
])
def test_damaged_headers_name_the_problem(data, problem, tmp_path):
    got = _check(tmp_path / "x.png", data)
    assert isinstance(got, str) and problem in got, got


def test_jpeg_walk_is_bounded(tmp_path):
    """A JPEG of 5,000 empty APP segments before its frame header: the walk stops after 1,000
    segments with no size (None), having read a few kilobytes."""
    data = b"\xff\xd8" + b"\xff\xe0\x00\x02" * 5000 + _jpeg(8, 8)[2:]
    assert _check(tmp_path / "x.jpg", data) is None


def test_a_fifo_named_like_an_image_is_the_documented_error(tmp_path):
    import os

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "x.png")
    with pytest.raises(ImageHeaderError, match="not a regular file"):
        image_header_size(tmp_path / "x.png")


def _cut_folder(root: Path) -> Path:
    """The fuzz corpus's data/truncated case: a PNG cut at 0, 1, 8, 16, 20 and 30 bytes, a 3-byte JPEG and
    a 4-byte GIF, plus two whole PNGs."""
    whole = _png(16, 16)
    for i, cut in enumerate((0, 1, 8, 16, 20, 30)):
        (root / ("a" if i % 2 else "b")).mkdir(parents=True, exist_ok=True)
        (root / ("a" if i % 2 else "b") / f"{i}.png").write_bytes(whole[:cut])
    (root / "a" / "x.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "b" / "y.gif").write_bytes(b"GIF8")
    (root / "a" / "ok.png").write_bytes(_png(12, 10))
    (root / "b" / "ok.png").write_bytes(_png(12, 10))
    return root


def test_folder_of_cut_images_gives_facts_and_names_the_bad_files(tmp_path):
    facts = facts_from_folder(_cut_folder(tmp_path / "data"))
    assert (facts.samples, facts.classes) == (10, 2)
    assert facts.image_size == (10, 12)  # 2 whole PNGs, one cut after its header: 12x10 is the most common
    note = facts.unreadable
    assert note.startswith("7 of the 10 image(s) sampled") and "\n" not in note, note
    assert "b/0.png: empty file" in note and "a/1.png: PNG signature cut short (1 byte)" in note, note


def test_check_with_a_folder_of_cut_images_is_one_note_and_no_traceback(tmp_path):
    """`modellint check --data` on that folder: it runs (exit 0 with --exit-zero), the findings are JSON
    on stdout, and stderr is one note naming the damaged files; nothing in the folder changes."""
    data = _cut_folder(tmp_path / "data")
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    r = subprocess.run([sys.executable, "-m", "modellint", "check", str(ROOT / "examples" / "seed_cnn.h5"),
                        "--data", str(data), "--format", "json", "--exit-zero", "--no-settings"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["reports"][0]["dataset"]["samples"] == 10
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"modellint: note: {data}: 7 of the 10"), r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before
