"""Byte mutations of every supported format.

Each base file (``corpus.base_files``) is run once unmutated (it must read cleanly: the suite's
own sanity check) and then mutated: truncation at many offsets, bit flips, zeroed / 0xFF /
random blocks, duplicated, shuffled and deleted blocks, bytes appended or prepended, and
format-aware damage: one member of a zip archive damaged and the archive rewritten with correct
CRCs (so the damage reaches the reader of that member: config.json, data.pkl, model.json, the
.pt2 weights config...), or the JSON text inside an HDF5 attribute damaged in place; and the
structured .pt2 JSON and ONNX mutations of :mod:`.fam_struct`.
"""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

from .corpus import Gen, base_files, file_case, read_members, write_zip

#: mutation kind -> cases per base file at scale 1 (36 in all)
KINDS = {"truncate": 9, "bitflip": 6, "zero_block": 3, "ff_block": 1, "random_block": 2, "dup_block": 2,
         "shuffle_blocks": 3, "delete_block": 2, "append": 1, "prepend": 1, "format": 6}

SUFFIX = {"seed_h5": ".h5", "seed_keras": ".keras", "func_h5": ".h5", "func_keras": ".keras", "func_json": ".json",
          "rnn_tf215_h5": ".h5", "keras12_json": ".json", "onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt",
          "state_dict": ".pt", "module": ".pt", "state_dict_legacy": ".pt"}

#: HDF5 is the most fragile format (libhdf5 can loop forever on a damaged file): 3x its block mutations
BOOST = {("seed_h5", k): 3 for k in ("zero_block", "ff_block", "dup_block", "shuffle_blocks")}
BOOST.update({(b, k): 3 for b in ("func_h5", "rnn_tf215_h5") for k in ("zero_block", "ff_block", "dup_block",
                                                                          "shuffle_blocks")})

TORCH_SHAPE = ["--input-shape", "1,3,16,16"]

#: zip members worth damaging, by a name fragment, with weights
MEMBER_WEIGHTS = (("config.json", 5), ("metadata.json", 1), ("model.weights.h5", 3), ("data.pkl", 6),
                  ("constants.pkl", 2), ("models/", 4), ("weights_config.json", 3), ("sample_inputs", 2),
                  ("constants_config", 2), ("archive_format", 1), ("code/", 2), ("version", 1))


def _block(rng: random.Random, n: int, lo: int = 1, hi: int = 4096) -> tuple:
    length = min(n, rng.randint(lo, hi))
    start = rng.randrange(0, max(1, n - length + 1))
    return start, length


def _pos(rng: random.Random, n: int) -> int:
    """A position, half the time in the first 4 KiB where headers and directories live, or the
    last 512 bytes (a zip's central directory)."""
    r = rng.random()
    if r < 0.4:
        return rng.randrange(0, min(n, 4096))
    if r < 0.55:
        return rng.randrange(max(0, n - 512), n)
    return rng.randrange(0, n)


def mutate(data: bytes, kind: str, rng: random.Random, index: int = 0) -> tuple:
    """(mutated bytes, description)."""
    n = len(data)
    b = bytearray(data)
    if n < 2:
        return b"", f"emptied ({n} byte{'s' if n != 1 else ''})"
    if kind == "truncate":
        fixed = [1, 8, 64, 512, n // 4, n // 2, 3 * n // 4, n - 22, n - 1]
        cut = fixed[index] if index < len(fixed) else rng.randrange(1, n)
        cut = max(1, min(n - 1, cut))
        return bytes(b[:cut]), f"truncated to {cut} of {n} bytes"
    if kind == "bitflip":
        k = rng.randint(1, 8)
        where = sorted(_pos(rng, n) for _ in range(k))
        for p in where:
            b[p] ^= 1 << rng.randrange(8)
        return bytes(b), f"{k} bit(s) flipped at {where}"
    if kind in ("zero_block", "ff_block", "random_block"):
        start, length = _block(rng, n)
        if rng.random() < 0.5:
            start = min(start, _pos(rng, n))
        fill = {"zero_block": b"\x00" * length, "ff_block": b"\xff" * length,
                "random_block": bytes(rng.randrange(256) for _ in range(length))}[kind]
        b[start:start + length] = fill[: n - start]
        return bytes(b), f"{kind.split('_')[0]} block of {length} at {start}"
    if kind == "dup_block":
        start, length = _block(rng, n, 16, 8192)
        at = _pos(rng, n)
        b[at:at] = data[start:start + length]
        return bytes(b), f"copy of [{start}:{start + length}] inserted at {at}"
    if kind == "delete_block":
        start, length = _block(rng, n, 1, 8192)
        del b[start:start + length]
        return bytes(b), f"deleted [{start}:{start + length}]"
    if kind == "shuffle_blocks":
        k = rng.randint(3, 8)
        size = rng.choice([16, 64, 512, 4096])
        start = min(_pos(rng, n), max(0, n - k * size))
        blocks = [bytes(b[start + i * size:start + (i + 1) * size]) for i in range(k)]
        order = list(range(k))
        rng.shuffle(order)
        b[start:start + k * size] = b"".join(blocks[i] for i in order)
        return bytes(b), f"{k} blocks of {size} at {start} shuffled {order}"
    if kind == "append":
        extra = bytes(rng.randrange(256) for _ in range(rng.choice([1, 100, 5000])))
        return data + extra, f"{len(extra)} random bytes appended"
    if kind == "prepend":
        extra = rng.choice([b"\x00" * 512, b"GARBAGE!" * 64, bytes(rng.randrange(256) for _ in range(300))])
        return extra + data, f"{len(extra)} bytes prepended"
    raise ValueError(kind)


def _pick_member(members, rng) -> int:
    weighted = []
    for i, (name, _data, _m) in enumerate(members):
        w = sum(weight for frag, weight in MEMBER_WEIGHTS if frag in name)
        weighted.append(w or 0.3)
    return rng.choices(range(len(members)), weights=weighted)[0]


def format_mutation(base: Path, out: Path, rng: random.Random) -> str:
    """Damage inside the format: one zip member (archive rewritten, CRCs right), or the JSON
    text of an HDF5 attribute / JSON file in place. Writes ``out``; returns a description."""
    data = base.read_bytes()
    if zipfile.is_zipfile(base):
        members = read_members(base)
        i = _pick_member(members, rng)
        name, content, method = members[i]
        kind = rng.choice(["truncate", "bitflip", "bitflip", "zero_block", "random_block", "dup_block",
                           "delete_block", "empty", "json_char"])
        if kind == "empty" or not content:
            new, what = b"", "emptied"
        elif kind == "json_char":
            new, what = _json_damage(content, rng)
        else:
            new, what = mutate(content, kind, rng, index=99)
        members[i] = (name, new, method)
        write_zip(out, members)
        return f"member {name}: {what}"
    start = max(data.find(b'{"class_name"'), data.find(b'{"module"'))
    if start < 0:
        new, what = mutate(data, "bitflip", rng)
        out.write_bytes(new)
        return what
    end = data.find(b"\x00", start)
    end = len(data) if end < 0 else end
    region = data[start:end]
    new_region, what = _json_damage(region, rng, keep_length=True)
    out.write_bytes(data[:start] + new_region + data[end:])
    return f"JSON text at {start}..{end}: {what}"


def _json_damage(text: bytes, rng: random.Random, keep_length: bool = False) -> tuple:
    """Replace a few characters of JSON text with structural or odd ones (same length if asked)."""
    b = bytearray(text)
    if not b:
        return bytes(b), "empty"
    k = rng.randint(1, 4)
    where = []
    for _ in range(k):
        p = rng.randrange(len(b))
        c = rng.choice(b'{}[]",:0-9eE.\\ \x00\xff' + b"N")
        where.append((p, chr(c)))
        b[p] = c
    if not keep_length and rng.random() < 0.3:
        p = rng.randrange(len(b))
        b[p:p] = b"9" * rng.randint(1, 400)
        where.append((p, "digits"))
    return bytes(b), f"characters replaced {where}"


def _extra(name: str, rng: random.Random) -> tuple:
    """(command, extra args, expected exit codes of the unmutated file)."""
    cmd = "check" if rng.random() < 0.4 else "summary"
    extra = []
    if cmd == "check" and rng.random() < 0.5:
        extra += ["--format", rng.choice(["json", "sarif", "github"])]
    if name in ("onnx", "pt2", "torchscript", "module"):
        extra += TORCH_SHAPE
    expect = {0, 1}
    if name in ("state_dict", "state_dict_legacy"):
        expect = {2}
    if name == "module":
        if rng.random() < 0.5:
            extra.append("--trust-pickle")
        else:
            expect = {2}
    return cmd, extra, expect


def cases(g: Gen) -> list:
    out = []
    for name, base in base_files().items():
        data = base.read_bytes()
        suffix = SUFFIX[name]
        # the unmutated file: must read (or be refused) cleanly
        rng = g.rng("bytes", name, "orig")
        cid = f"bytes/{name}/orig"
        path = g.dir(cid) / f"model{suffix}"
        path.write_bytes(data)
        cmd, extra, expect = _extra(name, rng)
        out.append(file_case(g, "bytes", cid, path, cmd=cmd, extra=extra, expect=expect,
                             note=f"unmutated {base.name}"))
        for kind, count in KINDS.items():
            for i in range(g.n(count * BOOST.get((name, kind), 1))):
                cid = f"bytes/{name}/{kind}-{i:02d}"
                rng = g.rng(cid)
                path = g.dir(cid) / f"model{suffix}"
                if kind == "format":
                    note = format_mutation(base, path, rng)
                else:
                    new, note = mutate(data, kind, rng, index=i)
                    path.write_bytes(new)
                cmd, extra, _expect = _extra(name, rng)
                out.append(file_case(g, "bytes", cid, path, cmd=cmd, extra=extra, note=f"{base.name}: {note}"))
    from .fam_struct import cases as structured

    return out + structured(g, base_files())
