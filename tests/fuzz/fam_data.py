"""Hostile data folders: ``modellint check MODEL --data DIR`` (cheap: counts and image headers) and
a handful of ``modellint probe`` runs (expensive: images are decoded; small --budget, a generous
time bound).

A FIFO named fifo.png, a class folder that is a symbolic link to /, symbolic-link loops, links
to /dev/zero and /dev/urandom, decompression-bomb PNGs (a real 20,000 x 20,000 one that Pillow
refuses, an 11,000 x 11,000 RGB one it only warns about), a 16-bit PNG header of 2^31-1 pixels
square, zero and negative dimensions, JPEG marker loops, thousands of classes, deep nesting,
names with newlines and terminal escapes; for probes also .npz files with a 2^40 label, an object
array (a pickle whose payload creates a marker) and a header that claims 2^41 pixels.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

from .corpus import FUZZ_FIXTURES, PROBE_TIMEOUT, Case, Gen, png, small_png
from .fam_archives import npy_object_array, npz
from .pickles import payload_pickle

CHUNK = 1 << 24


def zeros_zlib(n: int) -> bytes:
    """A zlib stream of ``n`` zero bytes, built from one compressed 16 MiB block repeated."""
    chunk = bytes(CHUNK)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    k, rem = divmod(n, CHUNK)
    c2 = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = c2.compress(bytes(rem)) + c2.flush(zlib.Z_FINISH)
    adler = 1
    for _ in range(k):
        adler = zlib.adler32(chunk, adler)
    adler = zlib.adler32(bytes(rem), adler)
    return b"\x78\xda" + block * k + tail + struct.pack(">I", adler & 0xFFFFFFFF)


def bomb_png(g: Gen, width: int, height: int, channels: int) -> bytes:
    """An all-black PNG of width x height, cached per session (a few hundred KiB)."""
    path = g.cache / f"bomb_{width}x{height}x{channels}.png"
    if not path.is_file():
        color_type = {1: 0, 3: 2}[channels]
        idat = zeros_zlib(height * (1 + width * channels))
        path.write_bytes(png(width, height, color_type=color_type, idat=idat))
    return path.read_bytes()


def huge16_png() -> bytes:
    return png(2 ** 31 - 1, 2 ** 31 - 1, color_type=2, bit_depth=16, idat=zlib.compress(bytes(64)))


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00" + b"\x3b"


def bmp(width: int, height: int) -> bytes:
    header = b"BM" + struct.pack("<IHHI", 54, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0)
    return header + info


def jpeg_segments(*segments: bytes) -> bytes:
    return b"\xff\xd8" + b"".join(segments) + b"\xff\xd9"


def webp_vp8x(width: int, height: int) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") \
        + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def npy(array) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def _classes(root: Path, rng, names=("a", "b"), per_class: int = 4, size: int = 16) -> None:
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / name / f"{i}.png").write_bytes(small_png(rng, size))


# ---------------------------------------------------------------------------------------------
# templates: (g, data_root, rng, variant) -> description; data_root does not exist yet
# ---------------------------------------------------------------------------------------------

def t_valid(g, root, rng, v):
    _classes(root, rng, names=[f"class{i}" for i in range(2 + v)], per_class=3 + v)
    return "ordinary class folders (sanity)"


def t_fifo(g, root, rng, v):
    _classes(root, rng)
    os.mkfifo(root / "a" / ("fifo.png" if v == 0 else "z_fifo.jpg"))
    return "a FIFO named like an image in a class folder"


def t_fifo_only(g, root, rng, v):
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    os.mkfifo(root / "a" / "fifo.png")
    os.mkfifo(root / "b" / "fifo.png")
    return "class folders holding only FIFOs"


def t_root_symlink(g, root, rng, v):
    _classes(root, rng)
    os.symlink("/", root / ("c" if v == 0 else "zz_root"))
    return "a class folder that is a symbolic link to /"


def t_symlink_loop(g, root, rng, v):
    _classes(root, rng)
    os.symlink("loop", root / "loop")
    os.symlink("..", root / "a" / "up")
    os.symlink(str(root / "b"), root / "b" / "again")
    return "symbolic-link loops (a link to itself, links to parent folders)"


def t_dev_links(g, root, rng, v):
    _classes(root, rng)
    os.symlink("/dev/zero", root / "a" / "zero.png")
    os.symlink("/dev/urandom", root / "b" / "random.jpg")
    return "images that are links to /dev/zero and /dev/urandom"


def t_broken_links(g, root, rng, v):
    _classes(root, rng)
    os.symlink(str(root / "nowhere.png"), root / "a" / "gone.png")
    (root / "b" / "dir.png").mkdir()
    return "a dangling link and a folder named like an image"


def t_bomb_png(g, root, rng, v):
    _classes(root, rng)
    (root / "a" / "bomb.png").write_bytes(bomb_png(g, 20000, 20000, 1))
    if v:
        for name in ("a", "b"):
            for p in (root / name).glob("[0-9].png"):
                p.write_bytes(bomb_png(g, 20000, 20000, 1))
    return "a 20,000 x 20,000 decompression-bomb PNG" + (" (every image)" if v else "")


def t_huge16(g, root, rng, v):
    _classes(root, rng)
    (root / "b" / "huge.png").write_bytes(huge16_png())
    if v:
        for p in root.rglob("[0-9].png"):
            p.write_bytes(huge16_png())
    return "a 16-bit PNG header of 2^31-1 x 2^31-1 pixels" + (" (every image)" if v else "")


def t_zero_dims(g, root, rng, v):
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for i in range(3):
        (root / "a" / f"{i}.png").write_bytes(png(0, 0, rows=b""))
        (root / "b" / f"{i}.gif").write_bytes(gif(0, 0))
    return "PNG and GIF headers of 0 x 0 pixels"


def t_negative_bmp(g, root, rng, v):
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for i in range(3):
        (root / "a" / f"{i}.bmp").write_bytes(bmp(-5, -2 ** 31))
        (root / "b" / f"{i}.bmp").write_bytes(bmp(2 ** 31 - 1, 7))
    return "BMP headers with negative and 2^31 dimensions"


def t_jpeg(g, root, rng, v):
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    loop0 = jpeg_segments(b"\xff\xe0\x00\x00" * 5000)          # length 0: a reader may step backwards
    loop1 = jpeg_segments(b"\xff\xe0\x00\x01" * 5000)
    sof0 = jpeg_segments(b"\xff\xc0\x00\x11\x08\x00\x00\x00\x00\x03" + bytes(9))
    fill = b"\xff\xd8" + b"\xff" * 100_000
    for i, data in enumerate((loop0, loop1, sof0, fill)):
        (root / ("a" if i % 2 else "b") / f"{i}.jpg").write_bytes(data)
    return "JPEG marker loops (segment lengths 0 and 1), a 0 x 0 frame, 100,000 fill bytes"


def t_webp(g, root, rng, v):
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for i in range(2):
        (root / "a" / f"{i}.webp").write_bytes(webp_vp8x(2 ** 24, 2 ** 24))
        (root / "b" / f"{i}.webp").write_bytes(b"RIFF\xff\xff\xff\xffWEBPVP8X")
    return "WebP VP8X headers of 2^24 x 2^24 pixels, and truncated ones"


def t_truncated(g, root, rng, v):
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    whole = small_png(rng, 16)
    for i, cut in enumerate((0, 1, 8, 16, 20, 30)):
        (root / ("a" if i % 2 else "b") / f"{i}.png").write_bytes(whole[:cut])
    (root / "a" / "x.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "b" / "y.gif").write_bytes(b"GIF8")
    return "truncated image headers (0 to 30 bytes)"


def t_many_classes(g, root, rng, v):
    one = small_png(rng, 8)
    for i in range(2000):
        (root / f"c{i:04d}").mkdir(parents=True)
        (root / f"c{i:04d}" / "0.png").write_bytes(one)
    return "2,000 class folders of one image each"


def t_deep(g, root, rng, v):
    _classes(root, rng)
    d = root / "a"
    for i in range(150):
        d = d / "d"
    d.mkdir(parents=True)
    (d / "deep.png").write_bytes(small_png(rng, 16))
    return "an image 150 folders deep inside a class"


def t_weird_names(g, root, rng, v):
    for name in ("new\nline", "esc\x1b[2J", "-rf", " "):
        (root / name).mkdir(parents=True)
        (root / name / "0.png").write_bytes(small_png(rng, 16))
        (root / name / "bad\n.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return "class and file names with newlines, terminal escapes, a dash and a space"


CHECK_TEMPLATES = {"valid": (t_valid, 3), "fifo": (t_fifo, 2), "fifo_only": (t_fifo_only, 1),
                   "root_symlink": (t_root_symlink, 2), "symlink_loop": (t_symlink_loop, 1),
                   "dev_links": (t_dev_links, 1), "broken_links": (t_broken_links, 1), "bomb_png": (t_bomb_png, 2),
                   "huge16": (t_huge16, 2), "zero_dims": (t_zero_dims, 1), "negative_bmp": (t_negative_bmp, 1),
                   "jpeg": (t_jpeg, 1), "webp": (t_webp, 1), "truncated": (t_truncated, 2),
                   "many_classes": (t_many_classes, 1), "deep": (t_deep, 1), "weird_names": (t_weird_names, 1)}


def _data_case(g, family, cid, argv_head, data: Path, note, argv_tail=(), timeout=None, markers=(), sys_path=(),
               expect=None, extra_names=()):
    folder = Path(g.root / cid)
    argv = [*argv_head, "--data", str(data), *argv_tail]
    kw = {"timeout": timeout} if timeout else {}
    return Case(family=family, id=cid, argv=argv, cwd=str(folder), watch=[str(folder)],
                names=[str(data), *extra_names], markers=[str(m) for m in markers], note=note,
                sys_path=list(sys_path), expect_exit=sorted(expect) if expect else None, **kw)


def check_cases(g: Gen) -> list:
    out = []
    model_bytes = (FUZZ_FIXTURES / "func.h5").read_bytes()
    for name, (fn, count) in CHECK_TEMPLATES.items():
        for v in range(count):
            cid = f"data/{name}/{v}"
            folder = g.dir(cid)
            model = folder / "model.h5"
            model.write_bytes(model_bytes)
            data = folder / "data"
            note = fn(g, data, g.rng(cid), v)
            rng = g.rng(cid, "argv")
            tail = ["--format", "json"] if rng.random() < 0.3 else []
            out.append(_data_case(g, "data", cid, ["check", str(model), "--no-settings"], data, note, tail,
                                  extra_names=[str(model)]))
    for name, make in (("npz_not_a_folder", lambda d: (d.parent.mkdir(parents=True, exist_ok=True),
                                                      d.write_bytes(npz({"x.npy": npy([1]), "y.npy": npy([0])})))),
                       ("fifo_as_data", lambda d: (d.parent.mkdir(parents=True, exist_ok=True), os.mkfifo(d)))):
        cid = f"data/{name}/0"
        folder = g.dir(cid)
        model = folder / "model.h5"
        model.write_bytes(model_bytes)
        data = folder / ("data.npz" if "npz" in name else "data")
        make(data)
        out.append(_data_case(g, "data", cid, ["check", str(model), "--no-settings"], data,
                              f"--data is {'an .npz file' if 'npz' in name else 'a FIFO'}, not a folder",
                              expect=(2,), extra_names=[str(model)]))
    return out


# ---------------------------------------------------------------------------------------------
# probes
# ---------------------------------------------------------------------------------------------

PROBE_MODEL = '''"""A tiny CNN for the fuzz suite's probe cases (16x16 RGB, 2 classes)."""
from torch import nn


def build():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))
'''


def _probe_npz(kind: str, marker) -> bytes:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
    y = np.arange(24) % 2
    if kind == "label_2_40":
        y = y.astype(np.int64)
        y[5] = 2 ** 40
        return npz({"x.npy": npy(x), "y.npy": npy(y)})
    if kind == "object_array":
        return npz({"x.npy": npy_object_array(payload_pickle("os_system", marker)), "y.npy": npy(y)})
    if kind == "huge_shape":
        header = "{'descr': '|u1', 'fortran_order': False, 'shape': (1048576, 1048576, 2, 3), }"
        header += " " * (64 - (10 + len(header) + 1) % 64) + "\n"
        fake = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(100)
        return npz({"x.npy": fake, "y.npy": npy(y)})
    raise ValueError(kind)


PROBE_DATA = {
    "fifo": lambda g, root, rng, m: t_fifo(g, root, rng, 0),
    "dev_links": lambda g, root, rng, m: t_dev_links(g, root, rng, 0),
    "root_symlink": lambda g, root, rng, m: t_root_symlink(g, root, rng, 1),
    "bomb_png": lambda g, root, rng, m: t_bomb_png(g, root, rng, 0),
    "bomb_png_warning_only": None,
    "huge16": lambda g, root, rng, m: t_huge16(g, root, rng, 0),
    "npz_label_2_40": "label_2_40",
    "npz_object_array": "object_array",
    "npz_huge_shape": "huge_shape",
}


def probe_cases(g: Gen) -> list:
    code = g.root / "probe" / "_code"
    code.mkdir(parents=True)
    (code / "fuzz_probe_model.py").write_text(PROBE_MODEL)
    out = []
    for name, make in PROBE_DATA.items():
        cid = f"probe/{name}"
        folder = g.dir(cid)
        rng = g.rng(cid)
        m = g.marker(cid)
        if isinstance(make, str):
            data = folder / "data.npz"
            data.write_bytes(_probe_npz(make, m))
            note = f".npz: {make.replace('_', ' ')}"
        elif make is None:
            data = folder / "data"
            _classes(data, rng)
            (data / "a" / "big.png").write_bytes(bomb_png(g, 11000, 11000, 3))
            note = "an 11,000 x 11,000 RGB PNG: past Pillow's warning threshold, under its error threshold"
        else:
            data = folder / "data"
            note = make(g, data, rng, m)
        argv = ["probe", "fuzz_probe_model:build", "--input-shape", "1,3,16,16"]
        tail = ["--budget", "5", "--probes", "init_loss", "--no-cache", "--quiet", "--max-images", "40"]
        out.append(_data_case(g, "probe", cid, argv, data, note, tail, timeout=PROBE_TIMEOUT, markers=[m],
                              sys_path=[str(code)]))
        out[-1].heavy = "bomb" in name or "huge" in name
    return out
