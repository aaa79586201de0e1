"""Hostile zip archives.

Zip bombs (a 4 GiB zero stream, deflated once per session to 4 MiB, as config.json,
metadata.json, model.weights.h5, a checkpoint's data.pkl and a .pt2's model.json); duplicate
member names (two config.json, two data.pkl with the payload first or last, the published
attack of a second model.weights.npz holding a pickle); absolute and ``..`` member paths that
would write the marker if anything extracted them; symbolic-link members; nested zips; a
pickled ``model.weights.npz``; 20,000 and 110,000 members; sizes that lie; encrypted members and
unsupported compression methods; HDF5/zip polyglots; a 64 KiB comment.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

from .corpus import EXAMPLES, FUZZ_FIXTURES, Gen, file_case, raw_member, read_members, write_zip, write_zip_raw
from .pickles import payload_pickle

SHAPE = ["--input-shape", "1,3,16,16"]


def _keras_parts():
    """(config.json bytes of the functional fixture, the same with a custom layer that needs the
    weights file to be counted, metadata.json bytes, model.weights.h5 bytes)."""
    with zipfile.ZipFile(FUZZ_FIXTURES / "func.keras") as zf:
        config = zf.read("config.json")
        meta = zf.read("metadata.json")
        weights = zf.read("model.weights.h5")
    cfg = json.loads(config)
    layer = cfg["config"]["layers"][2]
    layer.update({"module": "my_package.layers", "class_name": "MyConv", "registered_name": "MyConv"})
    return config, json.dumps(cfg).encode(), meta, weights


def npy_object_array(pickled: bytes) -> bytes:
    """An .npy file of dtype object: numpy unpickles its body when allow_pickle=True."""
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + pickled


def npz(members: dict) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def cases(g: Gen) -> list:
    from .corpus import bomb_stream

    out = []
    config, custom_config, meta, weights = _keras_parts()
    sd = FUZZ_FIXTURES / "tiny_state_dict.pt"
    pt2 = FUZZ_FIXTURES / "tiny.pt2"
    sd_members = read_members(sd)
    pt2_members = read_members(pt2)

    def add(cid, path, note, cmd="summary", extra=(), expect=None, markers=(), watch_extra=()):
        case = file_case(g, "archives", cid, path, cmd=cmd, extra=extra, note=note, expect=expect, markers=markers)
        case.watch += [str(w) for w in watch_extra]
        out.append(case)

    # -- zip bombs ------------------------------------------------------------------------------
    raw, crc, size = bomb_stream(g)
    bomb = dict(raw=raw, method=zipfile.ZIP_DEFLATED, crc=crc, size=size)
    bombs = {
        "bomb_config_json": ("model.keras", [raw_member("metadata.json", meta), raw_member("config.json", **bomb)],
                             "config.json is a 4 GiB zero stream (4 MiB deflated)"),
        "bomb_metadata_json": ("model.keras", [raw_member("config.json", config), raw_member("metadata.json", **bomb)],
                               "metadata.json is a 4 GiB zero stream"),
        "bomb_weights_h5": ("model.keras", [raw_member("config.json", custom_config), raw_member("metadata.json", meta),
                                            raw_member("model.weights.h5", **bomb)],
                            "model.weights.h5 is a 4 GiB zero stream; a custom layer needs the weights counted"),
        "bomb_data_pkl": ("model.pt", [raw_member(n, d) if not n.endswith("/data.pkl")
                                       else raw_member(n, **bomb) for n, d, _m in sd_members],
                          "a checkpoint whose data.pkl is a 4 GiB zero stream"),
        "bomb_pt2_model_json": ("model.pt2", [raw_member(n, d) if not n.endswith("/models/model.json")
                                              else raw_member(n, **bomb) for n, d, _m in pt2_members],
                                "a .pt2 whose models/model.json is a 4 GiB zero stream"),
    }
    for name, (fname, members, note) in bombs.items():
        cid = f"archives/bomb/{name}"
        path = write_zip_raw(g.dir(cid) / fname, members)
        add(cid, path, note, extra=SHAPE if fname != "model.keras" else ())
        out[-1].heavy = True

    # -- duplicate names ------------------------------------------------------------------------
    cid = "archives/duplicate/config_json_valid_then_broken"
    add(cid, write_zip(g.dir(cid) / "model.keras", [("config.json", config), ("metadata.json", meta),
                                                    ("config.json", b"{not json")]),
        "two config.json: a valid one, then broken JSON")
    cid = "archives/duplicate/config_json_broken_then_valid"
    add(cid, write_zip(g.dir(cid) / "model.keras", [("config.json", b"{not json"), ("metadata.json", meta),
                                                    ("config.json", config)]),
        "two config.json: broken JSON, then a valid one")
    for order in ("payload_first", "payload_last"):
        for trust in (False, True):
            cid = f"archives/duplicate/data_pkl_{order}-{'trust' if trust else 'notrust'}"
            m = g.marker(cid)
            members = []
            for n, d, meth in sd_members:
                if n.endswith("/data.pkl"):
                    pair = [(n, payload_pickle("os_system", m), meth), (n, d, meth)]
                    members.extend(pair if order == "payload_first" else pair[::-1])
                else:
                    members.append((n, d, meth))
            add(cid, write_zip(g.dir(cid) / "model.pt", members),
                f"two data.pkl in a checkpoint, the os.system payload {order.replace('_', ' ')}",
                extra=["--trust-pickle"] if trust else [], expect=(2,), markers=[m])
    for trust in (False, True):
        cid = f"archives/duplicate/weights_npz_pickle-{'trust' if trust else 'notrust'}"
        m = g.marker(cid)
        benign = npz({"arr_0.npy": npy_object_array(b"\x80\x02]q\x00.")})
        hostile = npz({"arr_0.npy": npy_object_array(payload_pickle("os_system", m))})
        add(cid, write_zip(g.dir(cid) / "model.keras", [("config.json", custom_config), ("metadata.json", meta),
                                                        ("model.weights.npz", benign),
                                                        ("model.weights.npz", hostile)]),
            "two model.weights.npz, the second an object array whose pickle runs os.system (a published attack)",
            extra=["--trust-pickle"] if trust else [], markers=[m])
    cid = "archives/duplicate/pt2_model_json"
    members = []
    for n, d, meth in pt2_members:
        members.append((n, d, meth))
        if n.endswith("/models/model.json"):
            members.append((n, b'{"graph_module": null}', meth))
    add(cid, write_zip(g.dir(cid) / "model.pt2", members), "two models/model.json in a .pt2", extra=SHAPE)

    # -- member paths that escape ---------------------------------------------------------------
    for where in ("relative", "absolute"):
        for fmt in ("keras", "pt", "pt2"):
            cid = f"archives/traversal/{where}-{fmt}"
            folder = g.dir(cid)
            m = g.marker(cid)
            name = str(m) if where == "absolute" else os.path.relpath(m, folder)
            evil = (name, b"created by extracting the archive\n")
            if fmt == "keras":
                members = [("config.json", config), ("metadata.json", meta), evil]
            elif fmt == "pt":
                members = [(n, d, meth) for n, d, meth in sd_members] + [evil]
            else:
                members = [(n, d, meth) for n, d, meth in pt2_members] + [evil]
            add(cid, write_zip(folder / f"model.{fmt}", members), f"a member named {name!r}",
                extra=SHAPE if fmt != "keras" else (), markers=[m], watch_extra=[folder.parent])
    cid = "archives/traversal/symlink_member"
    add(cid, write_zip_raw(g.dir(cid) / "model.keras",
                           [raw_member("config.json", b"/etc/passwd", mode=0o120777),
                            raw_member("metadata.json", meta)]),
        "config.json is a symbolic-link entry to /etc/passwd")

    # -- nesting --------------------------------------------------------------------------------
    seed_keras = (EXAMPLES / "seed_cnn.keras").read_bytes()
    nested = {
        "config_json_is_a_zip": ("model.keras", [("config.json", seed_keras), ("metadata.json", meta)]),
        "weights_h5_is_a_zip": ("model.keras", [("config.json", custom_config), ("metadata.json", meta),
                                                ("model.weights.h5", seed_keras)]),
        "only_an_inner_keras": ("model.keras", [("model.keras", seed_keras)]),
        "data_pkl_is_a_zip": ("model.pt", [(n, sd.read_bytes() if n.endswith("/data.pkl") else d, meth)
                                           for n, d, meth in sd_members]),
    }
    for name, (fname, members) in nested.items():
        cid = f"archives/nested/{name}"
        add(cid, write_zip(g.dir(cid) / fname, members), name.replace("_", " "),
            extra=SHAPE if fname != "model.keras" else ())
    inner = seed_keras
    for i in range(40):
        inner = npz({f"level{i}.zip": inner})
    cid = "archives/nested/zip_40_deep"
    (g.dir(cid) / "model.keras").write_bytes(inner)
    add(cid, Path(g.root / cid / "model.keras"), "a .keras inside 40 levels of zips")

    # -- pickled weights ------------------------------------------------------------------------
    for trust in (False, True):
        cid = f"archives/pickled_npz/weights_npz-{'trust' if trust else 'notrust'}"
        m = g.marker(cid)
        hostile = npz({"arr_0.npy": npy_object_array(payload_pickle("pkgutil_resolve_name", m))})
        add(cid, write_zip(g.dir(cid) / "model.keras", [("config.json", custom_config), ("metadata.json", meta),
                                                        ("model.weights.npz", hostile)]),
            "a .keras whose model.weights.npz is a pickled object array (payload via pkgutil.resolve_name)",
            extra=["--trust-pickle"] if trust else [], markers=[m])

    # -- listing and header abuse ---------------------------------------------------------------
    for count in (20_000, 110_000):
        cid = f"archives/listing/members_{count}"
        members = [raw_member("config.json", config), raw_member("metadata.json", meta)]
        members += [raw_member(f"assets/{i:06d}", b"") for i in range(count)]
        add(cid, write_zip_raw(g.dir(cid) / "model.keras", members), f"{count:,} members besides the config")
    lies = {
        "size_claims_2gib": [raw_member("config.json", config, declared_size=2 ** 31), raw_member("metadata.json", meta)],
        "size_claims_zero": [raw_member("config.json", config, declared_size=0), raw_member("metadata.json", meta)],
        "csize_past_end": [raw_member("config.json", config, declared_csize=2 ** 30), raw_member("metadata.json", meta)],
        "bad_crc": [raw_member("config.json", config, crc=0x12345678), raw_member("metadata.json", meta)],
        "encrypted_flag": [raw_member("config.json", config, flags=1), raw_member("metadata.json", meta)],
        "method_99_aes": [raw_member("config.json", raw=config, method=99, crc=0, size=len(config)),
                          raw_member("metadata.json", meta)],
        "method_9_deflate64": [raw_member("config.json", raw=config, method=9, crc=0, size=len(config)),
                               raw_member("metadata.json", meta)],
        "directory_named_config_json": [raw_member("config.json/", b"", mode=0o40755),
                                        raw_member("metadata.json", meta)],
        "empty_config_json": [raw_member("config.json", b""), raw_member("metadata.json", meta)],
    }
    for name, members in lies.items():
        cid = f"archives/headers/{name}"
        add(cid, write_zip_raw(g.dir(cid) / "model.keras", members), name.replace("_", " "))
    for name in ("data_pkl_method_99", "data_pkl_encrypted"):
        cid = f"archives/headers/{name}"
        members = []
        for n, d, _meth in sd_members:
            if n.endswith("/data.pkl"):
                members.append(raw_member(n, raw=d, method=99, crc=0, size=len(d)) if "99" in name
                               else raw_member(n, d, flags=1))
            else:
                members.append(raw_member(n, d))
        add(cid, write_zip_raw(g.dir(cid) / "model.pt", members), name.replace("_", " "))
    cid = "archives/headers/comment_64k"
    add(cid, write_zip_raw(g.dir(cid) / "model.keras", [raw_member("config.json", config),
                                                         raw_member("metadata.json", meta)],
                           comment=b"PK\x05\x06" * 16383 + b"PK\x05"), "a 64 KiB comment full of end-record signatures")

    # -- polyglots ------------------------------------------------------------------------------
    seed_h5 = (EXAMPLES / "seed_cnn.h5").read_bytes()
    cid = "archives/polyglot/h5_then_zip"
    (g.dir(cid) / "model.keras").write_bytes(seed_h5 + seed_keras)
    add(cid, g.root / cid / "model.keras", "an HDF5 file with a .keras archive appended")
    cid = "archives/polyglot/zip_with_hdf5_magic_at_512"
    path = write_zip(g.dir(cid) / "model.keras", [("pad.bin", bytes(1024)), ("config.json", config),
                                                  ("metadata.json", meta)])
    data = bytearray(path.read_bytes())
    data[512:520] = b"\x89HDF\r\n\x1a\n"  # inside pad.bin's zeros: the archive still lists and reads
    path.write_bytes(bytes(data))
    add(cid, path, "a .keras archive with the HDF5 signature at offset 512 (where a user block would end)")
    return out
