"""Hostile pickles, each run without and with --trust-pickle.

Containers for every vector of :mod:`.pickles`: a legacy (non-zip) ``torch.save`` file that is
the pickle itself, a zip checkpoint whose ``data.pkl`` is the pickle, and a pickled whole
``nn.Sequential`` with the payload as an attribute. Then the ``.pt2`` routes by which
``torch.export.load`` unpickles (with ``weights_only=False`` or plain ``pickle.loads``): a
weight whose ``model_weights_config.json`` says ``"use_pickle": true``, the sample inputs
(``data/sample_inputs/model.pt``), an ``opaque_obj_*`` or pickled ``tensor_*`` constant, and
the legacy ``data/weights/model.pt`` / ``data/constants/model.pt``; TorchScript archives whose
``data.pkl`` / ``constants.pkl`` hold a payload; protocol-0 text pickles; and harmless class
pickles (which may load or fail with --trust-pickle, never create the marker).

The pickle files, checkpoints and module pickles expect exit 2 (none is a model one may load:
--trust-pickle allows unpickling classes, never the globals that run commands or code). A .pt2
or TorchScript archive with a payload may be read (exit 0/1) by a reader that never unpickles
it, or refused (exit 2); in every case the marker must not appear.
"""

from __future__ import annotations

import json
import zipfile

from .corpus import FUZZ_FIXTURES, Gen, file_case, read_members, write_zip
from .pickles import VECTORS, harmless_pickles, module_pickle, payload_pickle, text_pickles

SHAPE = ["--input-shape", "1,3,16,16"]
#: payload styles used inside .pt2 and TorchScript archives (one plain, two that a name scan misses)
ARCHIVE_VECTORS = ("os_system", "pkgutil_resolve_name", "codecs_rot13_module")


def _zip_with(base, path, replace=None, add=(), drop=()):
    """Rewrite the zip ``base`` to ``path``: members replaced by name suffix, dropped, added at the end."""
    members = []
    for name, data, method in read_members(base):
        if any(name.endswith(d) for d in drop):
            continue
        for suffix, new in (replace or {}).items():
            if name.endswith(suffix):
                data = new
        members.append((name, data, method))
    top = members[0][0].split("/")[0]
    for name, data in add:
        members.append((f"{top}/{name}", data, zipfile.ZIP_STORED))
    return write_zip(path, members)


def _both(g, out, cid, path, note, markers, cmd="summary", expect=(2,), extra=()):
    for trust in (False, True):
        case_id = f"{cid}-{'trust' if trust else 'notrust'}"
        if trust:
            target = g.dir(case_id) / path.name
            target.write_bytes(path.read_bytes())
        else:
            target = path
        args = list(extra) + (["--trust-pickle"] if trust else [])
        out.append(file_case(g, "pickles", case_id, target, cmd=cmd, extra=args, expect=expect, markers=markers,
                             note=note + (" (--trust-pickle)" if trust else "")))


def cases(g: Gen) -> list:
    out = []
    sd_zip = FUZZ_FIXTURES / "tiny_state_dict.pt"
    ts = FUZZ_FIXTURES / "tiny_torchscript.pt"
    pt2 = FUZZ_FIXTURES / "tiny.pt2"

    for vector in VECTORS:
        # 1. a legacy torch.save file: the pickle itself
        cid = f"pickles/legacy/{vector}"
        m = g.marker(cid)
        path = g.dir(cid + "-notrust") / "model.pt"
        path.write_bytes(payload_pickle(vector, m))
        _both(g, out, cid, path, f"legacy pickle file, payload {vector}", [m], cmd=g.rng(cid).choice(["summary", "check"]))
        # 2. a zip checkpoint whose data.pkl is the pickle
        cid = f"pickles/zip/{vector}"
        m = g.marker(cid)
        path = _zip_with(sd_zip, g.dir(cid + "-notrust") / "model.pt", replace={"/data.pkl": payload_pickle(vector, m)})
        _both(g, out, cid, path, f"zip checkpoint, data.pkl payload {vector}", [m])
        # 3. a pickled whole module carrying the payload as an attribute
        cid = f"pickles/module/{vector}"
        m = g.marker(cid)
        path = _zip_with(sd_zip, g.dir(cid + "-notrust") / "model.pt", replace={"/data.pkl": module_pickle(vector, m)})
        _both(g, out, cid, path, f"pickled nn.Sequential with a payload attribute ({vector})", [m], extra=SHAPE)

    for name, data in text_pickles(g.marker("pickles/text/x")).items():
        cid = f"pickles/text/{name}"
        m = g.marker(cid)
        data = text_pickles(m)[name]
        legacy = g.dir(cid + "-legacy-notrust") / "model.pt"
        legacy.write_bytes(data)
        _both(g, out, cid + "-legacy", legacy, f"protocol-0 pickle file ({name})", [m])
        z = _zip_with(sd_zip, g.dir(cid + "-zip-notrust") / "model.pt", replace={"/data.pkl": data})
        _both(g, out, cid + "-zip", z, f"zip checkpoint, protocol-0 data.pkl ({name})", [m])

    for name in harmless_pickles(g.marker("pickles/harmless/x")):
        cid = f"pickles/harmless/{name}"
        m = g.marker(cid)
        z = _zip_with(sd_zip, g.dir(cid + "-notrust") / "model.pt", replace={"/data.pkl": harmless_pickles(m)[name]})
        for trust in (False, True):
            case_id = f"{cid}-{'trust' if trust else 'notrust'}"
            target = z if not trust else g.dir(case_id) / "model.pt"
            if trust:
                target.write_bytes(z.read_bytes())
            out.append(file_case(g, "pickles", case_id, target, extra=["--trust-pickle"] if trust else [],
                                 expect=None if trust else (2,), markers=[m],
                                 note=f"harmless class pickle ({name}): may load or fail with --trust-pickle"))
    # the real pickled module: refused without the flag, read with it
    for trust in (False, True):
        cid = f"pickles/harmless/real_module-{'trust' if trust else 'notrust'}"
        target = g.dir(cid) / "model.pt"
        target.write_bytes((FUZZ_FIXTURES / "tiny_module.pt").read_bytes())
        out.append(file_case(g, "pickles", cid, target, extra=SHAPE + (["--trust-pickle"] if trust else []),
                             expect=(0, 1) if trust else (2,), note="torch.save(nn.Sequential) of a tiny CNN"))

    # .pt2 archives: every route by which torch.export.load unpickles
    members = [n for n, _d, _m in read_members(pt2)]
    top = members[0].split("/")[0]
    weights_cfg = json.loads(zipfile.ZipFile(pt2).read(f"{top}/data/weights/model_weights_config.json"))
    first_weight = next(iter(weights_cfg["config"]))
    weight_file = weights_cfg["config"][first_weight]["path_name"]
    for vector in ARCHIVE_VECTORS:
        routes = {}
        cfg = json.loads(json.dumps(weights_cfg))
        cfg["config"][first_weight]["use_pickle"] = True
        routes["use_pickle_weight"] = ({"data/weights/model_weights_config.json": json.dumps(cfg).encode(),
                                        f"data/weights/{weight_file}": "PAYLOAD"}, [])
        routes["sample_inputs"] = ({"data/sample_inputs/model.pt": "PAYLOAD"}, [])
        for kind, path_name in (("opaque_obj", "opaque_obj_0"), ("tensor_constant", "tensor_0")):
            consts = {"config": {"evil": {"path_name": path_name, "is_param": False, "use_pickle": True,
                                          "tensor_meta": None}}}
            routes[kind] = ({"data/constants/model_constants_config.json": json.dumps(consts).encode()},
                            [(f"data/constants/{path_name}", "PAYLOAD")])
        routes["legacy_weights_pt"] = ({}, [("data/weights/model.pt", "PAYLOAD")])
        routes["legacy_constants_pt"] = ({}, [("data/constants/model.pt", "PAYLOAD")])
        for route, (replace, add) in routes.items():
            cid = f"pickles/pt2/{route}-{vector}"
            m = g.marker(cid)
            payload = payload_pickle(vector, m)
            rep = {"/" + k: (payload if v == "PAYLOAD" else v) for k, v in replace.items()}
            extra = [(k, payload if v == "PAYLOAD" else v) for k, v in add]
            path = _zip_with(pt2, g.dir(cid + "-notrust") / "model.pt2", replace=rep, add=extra)
            _both(g, out, cid, path, f".pt2 {route} holds a payload ({vector})", [m], extra=SHAPE, expect=None)
        # TorchScript: data.pkl / constants.pkl replaced
        for member in ("data.pkl", "constants.pkl"):
            cid = f"pickles/torchscript/{member.split('.')[0]}-{vector}"
            m = g.marker(cid)
            path = _zip_with(ts, g.dir(cid + "-notrust") / "model.pt", replace={"/" + member: payload_pickle(vector, m)})
            _both(g, out, cid, path, f"TorchScript archive, {member} holds a payload ({vector})", [m], extra=SHAPE,
                  expect=None)
    return out
