"""The fuzz corpus: cases built deterministically from a seed into a folder.

``generate(root, seed)`` writes every case's files under ``root/<family>/<case>/`` and returns
the :class:`Case` list. The same seed (and the same base files) gives byte-identical files and
identical cases (``corpus_digest``). Families and their modules:

===============  ===============================================================================
bytes            byte mutations of every supported format (``fam_bytes``), structured .pt2 JSON
                 and ONNX mutations (``fam_struct``)
keras_config     structured mutations of Keras configs in .json, .keras and .h5 (``fam_keras``)
archives         hostile zip archives: bombs, duplicate/traversal names, nesting (``fam_archives``)
pickles          hostile pickles, plain and through .pt2 archives, with/without --trust-pickle
                 (``fam_pickles``)
data             hostile ``check --data`` folders (``fam_data``)
probe            a handful of hostile ``probe --data`` inputs (``fam_data``)
===============  ===============================================================================
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shutil
import stat
import struct
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EXAMPLES = ROOT / "examples"
FIXTURES = ROOT / "tests" / "fixtures"
FUZZ_FIXTURES = FIXTURES / "fuzz"

FAMILIES = ("bytes", "keras_config", "archives", "pickles", "data", "probe")

#: per-case time bound (seconds): generous, so that only a real hang reaches it on a busy machine
TIMEOUT = 30.0
PROBE_TIMEOUT = 90.0


@dataclass
class Case:
    family: str
    id: str                      # "<family>/<group>/<name>", unique
    argv: list                   # modellint's arguments (absolute paths)
    cwd: str                     # the case's own folder: the command runs there
    watch: list = field(default_factory=list)    # files/folders that must be unchanged afterwards
    names: list = field(default_factory=list)    # an exit-2 line must contain one of these
    markers: list = field(default_factory=list)  # files that exist only if a payload ran
    expect_exit: Optional[list] = None           # allowed exit codes, besides the invariants
    timeout: float = TIMEOUT
    note: str = ""
    sys_path: list = field(default_factory=list)  # extra import path (PYTHONPATH for a subprocess)
    heavy: bool = False          # may take GiBs when it fails: run one at a time

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Case":
        return cls(**d)


class Gen:
    """What the family generators share: the root, the seed, per-case random streams."""

    def __init__(self, root, seed: int = 0, scale: float = 1.0, cache=None):
        self.root = Path(root)
        self.seed = int(seed)
        self.scale = float(scale)
        self.cache = Path(cache) if cache else self.root / "_cache"
        self.markers = self.root / "_markers"
        self.cache.mkdir(parents=True, exist_ok=True)
        self.markers.mkdir(parents=True, exist_ok=True)

    def rng(self, *key) -> random.Random:
        return random.Random(f"{self.seed}|" + "|".join(str(k) for k in key))

    def n(self, count: int) -> int:
        """``count`` cases at scale 1, scaled (at least 1)."""
        return max(1, int(round(count * self.scale)))

    def dir(self, case_id: str) -> Path:
        d = self.root / case_id
        d.mkdir(parents=True, exist_ok=False)
        return d

    def marker(self, case_id: str, suffix: str = "") -> Path:
        return self.markers / (re.sub(r"[^A-Za-z0-9_.-]", "_", case_id) + suffix)


def file_case(g: Gen, family: str, case_id: str, path: Path, *, cmd: str = "summary", extra=(),
              note: str = "", expect=None, markers=(), timeout: float = TIMEOUT, sys_path=()) -> Case:
    """A case that runs ``modellint CMD PATH EXTRA`` in the file's folder."""
    argv = [cmd, str(path), *extra]
    if cmd == "check" and "--no-settings" not in argv:
        argv.append("--no-settings")
    return Case(family=family, id=case_id, argv=argv, cwd=str(path.parent), watch=[str(path.parent)],
                names=[str(path), path.name], markers=[str(m) for m in markers],
                expect_exit=sorted(expect) if expect is not None else None, timeout=timeout, note=note,
                sys_path=list(sys_path))


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------

ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def zip_info(name: str, method: int = zipfile.ZIP_STORED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, ZIP_DATE)
    info.compress_type = method
    info.external_attr = 0o644 << 16
    info.create_system = 3
    return info


def write_zip(path: Path, members, comment: bytes = b"") -> Path:
    """``members``: (name, data) or (name, data, method) in order; duplicates are kept."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name" is what some cases want
        with zipfile.ZipFile(path, "w") as zf:
            for m in members:
                name, data = m[0], m[1]
                method = m[2] if len(m) > 2 else zipfile.ZIP_STORED
                zf.writestr(zip_info(name, method), data)
            zf.comment = comment
    return path


def read_members(path: Path) -> list:
    """[(name, data, method)] of a zip archive, in order."""
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, zf.read(i), i.compress_type) for i in zf.infolist()]


def write_h5(path: Path, attrs: dict) -> Path:
    """An HDF5 file holding only root attributes (str values become variable-length strings)."""
    import h5py

    with h5py.File(path, "w", track_order=False) as f:
        for k, v in attrs.items():
            f.attrs[k] = v
    return path


def png(width: int, height: int, *, color_type: int = 2, bit_depth: int = 8, rows: Optional[bytes] = None,
        idat: Optional[bytes] = None) -> bytes:
    """A PNG from raw filtered rows (or a given IDAT payload)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    if idat is None:
        idat = zlib.compress(rows if rows is not None else b"", 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def small_png(rng: random.Random, size: int = 8, channels: int = 3) -> bytes:
    color_type = {1: 0, 3: 2}[channels]
    rows = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(size * channels)) for _ in range(size))
    return png(size, size, color_type=color_type, rows=rows)


# ---------------------------------------------------------------------------------------------
# zip bombs: a long run of zeros, deflated once per session
# ---------------------------------------------------------------------------------------------

BOMB_CHUNK = 1 << 24  # 16 MiB of zeros per deflate block (reset with Z_FULL_FLUSH, so blocks repeat)


def bomb_stream(g: Gen, gib: int = 4) -> tuple:
    """(raw deflate bytes, crc32, uncompressed size) of ``gib`` GiB of zeros, cached in g.cache.

    With Z_FULL_FLUSH after each 16 MiB chunk the compressor forgets its history, so every chunk
    compresses to the same bytes: one chunk is compressed and repeated. Only the CRC walks all
    the zeros (about a second)."""
    path = g.cache / f"zeros_{gib}g.deflate"
    meta = g.cache / f"zeros_{gib}g.json"
    if path.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        return path.read_bytes(), info["crc"], info["size"]
    chunk = bytes(BOMB_CHUNK)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    assert first == again
    n = (gib << 30) // BOMB_CHUNK
    tail = c.flush(zlib.Z_FINISH)
    data = first * n + tail
    crc = 0
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
    size = n * BOMB_CHUNK
    assert zlib.decompressobj(-15).decompress(data[:len(first) * 2]) == chunk * 2
    path.write_bytes(data)
    meta.write_text(json.dumps({"crc": crc, "size": size}))
    return data, crc, size


def raw_member(name: str, data: bytes = b"", *, raw: Optional[bytes] = None, method: int = 0,
               crc: Optional[int] = None, size: Optional[int] = None, flags: int = 0, mode: int = 0o100644,
               declared_size: Optional[int] = None, declared_csize: Optional[int] = None) -> dict:
    """One member for :func:`write_zip_raw`: ``data`` stored as is, or ``raw`` (already compressed
    with ``method``) with its ``crc`` and uncompressed ``size``; ``declared_*`` lie in the headers."""
    if raw is None:
        raw, crc, size = data, zlib.crc32(data), len(data)
    return {"name": name, "raw": raw, "method": method, "crc": crc & 0xFFFFFFFF, "size": size, "flags": flags,
            "mode": mode, "declared_size": declared_size, "declared_csize": declared_csize}


def write_zip_raw(path: Path, members, comment: bytes = b"") -> Path:
    """A zip written by hand from :func:`raw_member` dicts (duplicates, lies and flags as given).
    Sizes past 4 GiB get zip64 extra fields (local and central)."""
    out = io.BytesIO()
    central = []
    for m in members:
        offset = out.tell()
        fname = m["name"].encode("utf-8", "surrogateescape")
        usize = m["declared_size"] if m["declared_size"] is not None else m["size"]
        csize = m["declared_csize"] if m["declared_csize"] is not None else len(m["raw"])
        zip64 = usize >= 0xFFFFFFFF or csize >= 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, usize, csize) if zip64 else b""
        u32 = 0xFFFFFFFF if zip64 else usize
        c32 = 0xFFFFFFFF if zip64 else csize
        version = 45 if zip64 else 20
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, version, m["flags"], m["method"], 0, 0x21, m["crc"],
                              c32, u32, len(fname), len(extra)))
        out.write(fname + extra)
        out.write(m["raw"])
        central.append((fname, m, c32, u32, extra, offset, version))
    cd_start = out.tell()
    for fname, m, c32, u32, extra, offset, version in central:
        out.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | version, version, m["flags"],
                              m["method"], 0, 0x21, m["crc"], c32, u32, len(fname), len(extra), 0, 0, 0,
                              (m["mode"] << 16) & 0xFFFFFFFF, offset))
        out.write(fname + extra)
    cd_size = out.tell() - cd_start
    n = len(central)
    if n >= 0xFFFF:  # zip64 end record and locator
        z64 = out.tell()
        out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_start))
        out.write(struct.pack("<IIQI", 0x07064B50, 0, z64, 1))
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, len(comment)))
    else:
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, cd_size, cd_start, len(comment)))
    out.write(comment)
    path.write_bytes(out.getvalue())
    return path


# ---------------------------------------------------------------------------------------------
# the corpus
# ---------------------------------------------------------------------------------------------

def base_files() -> dict:
    """name -> path of the unmutated base files the byte family mutates."""
    legacy = FIXTURES / "legacy"
    return {
        "seed_h5": EXAMPLES / "seed_cnn.h5",
        "seed_keras": EXAMPLES / "seed_cnn.keras",
        "func_h5": FUZZ_FIXTURES / "func.h5",
        "func_keras": FUZZ_FIXTURES / "func.keras",
        "func_json": FUZZ_FIXTURES / "func.json",
        "rnn_tf215_h5": legacy / "rnn_tf215.h5",
        "keras12_json": legacy / "functional_keras12.json",
        "onnx": FUZZ_FIXTURES / "tiny.onnx",
        "pt2": FUZZ_FIXTURES / "tiny.pt2",
        "torchscript": FUZZ_FIXTURES / "tiny_torchscript.pt",
        "state_dict": FUZZ_FIXTURES / "tiny_state_dict.pt",
        "module": FUZZ_FIXTURES / "tiny_module.pt",
        "state_dict_legacy": FUZZ_FIXTURES / "tiny_state_dict_legacy.pt",
    }


def warmup_argvs() -> list:
    """Commands a fresh worker runs once before its first case (imports and lazy set-up)."""
    b = base_files()
    return [["summary", str(b[k]), "--input-shape", "1,3,16,16"] for k in
            ("seed_h5", "func_keras", "func_json", "onnx", "pt2", "torchscript", "state_dict")]


def generate(root, seed: int = 0, families=None, scale: float = 1.0, cache=None) -> list:
    """Write the corpus under ``root`` (each family's folder is emptied first); return its cases."""
    import importlib

    makers = {"bytes": ("fam_bytes", "cases"), "keras_config": ("fam_keras", "cases"),
              "archives": ("fam_archives", "cases"), "pickles": ("fam_pickles", "cases"),
              "data": ("fam_data", "check_cases"), "probe": ("fam_data", "probe_cases")}
    g = Gen(root, seed, scale, cache)
    out = []
    for family in families or FAMILIES:
        if family not in makers:
            raise ValueError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
        folder = g.root / family
        if folder.exists():
            shutil.rmtree(folder)  # never follows the symlinks some data cases hold
        for m in g.markers.glob(re.sub(r"[^A-Za-z0-9_.-]", "_", family + "/") + "*"):
            m.unlink()
        folder.mkdir(parents=True)
        module, func = makers[family]
        cases = getattr(importlib.import_module(f"{__package__}.{module}"), func)(g)
        ids = [c.id for c in cases]
        assert len(ids) == len(set(ids)), f"duplicate case ids in {family}"
        out.extend(cases)
    return out


def snapshot(paths) -> dict:
    """Every file under ``paths`` (not following symlinks): sha256 of regular files, the target of
    links, the kind of anything else (a FIFO is never opened)."""
    out = {}

    def one(p: str):
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            out[p] = "missing"
            return
        if stat.S_ISLNK(st.st_mode):
            out[p] = "link:" + os.readlink(p)
        elif stat.S_ISREG(st.st_mode):
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            out[p] = h.hexdigest()
        elif stat.S_ISDIR(st.st_mode):
            out[p] = "dir"
        else:
            out[p] = f"special:{stat.S_IFMT(st.st_mode):o}"

    for top in paths:
        one(top)
        if os.path.isdir(top) and not os.path.islink(top):
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames.sort()
                for name in sorted(dirnames) + sorted(filenames):
                    one(os.path.join(dirpath, name))
    return out


def corpus_digest(cases, root) -> str:
    """One hash of the cases (paths relative to root) and every byte of their files."""
    root = str(Path(root))
    h = hashlib.sha256()
    for case in cases:
        h.update(json.dumps(case.to_dict(), sort_keys=True).replace(root, "<root>").encode())
        for p, v in sorted(snapshot(case.watch).items()):
            h.update(f"{p.replace(root, '<root>')}={v.replace(root, '<root>')}\n".encode())
    return h.hexdigest()
