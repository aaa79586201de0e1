"""Structured mutations of the PyTorch-side formats (part of the ``bytes`` family).

* ``.pt2``: a JSON member (``models/model.json``, the weights or constants config) parsed, one
  value replaced by a hostile one (the Keras family's list: Infinity, NaN, -1, 2^64, deep lists,
  null...) or a tensor size set to 2^40, and the archive rewritten.
* ``.onnx``: the model parsed with the ``onnx`` package and changed where a reader trusts it:
  input dimensions (2^40, -5, 0), convolution attributes (zero or 2^31 kernels, zero strides and
  dilations, negative pads, group 0 or 7), initializer dims that disagree with their data or
  claim 2^40 elements, external data pointing at /dev/zero or ``../../etc/passwd``, missing
  inputs, cycles, duplicate outputs, unknown ops and domains, an opset of 9999, no nodes.
"""

from __future__ import annotations

import copy
import json

from .corpus import Gen, file_case, read_members, write_zip

SHAPE = ["--input-shape", "1,3,16,16"]


def pt2_json(base, out, rng) -> str:
    from .fam_keras import HOSTILE, dumps, nodes

    members = read_members(base)
    candidates = [i for i, (n, _d, _m) in enumerate(members) if n.endswith(".json")]
    i = rng.choice(candidates)
    name, data, method = members[i]
    obj = json.loads(data)
    spots = [(p, k) for p, k, _v in nodes(obj)]
    sizes = [(p, k) for p, k, v in nodes(obj) if k == "as_int" and isinstance(v, int)]
    if sizes and rng.random() < 0.35:
        parent, key = rng.choice(sizes)
        value = rng.choice([2 ** 40, -1, 0, 2 ** 63 - 1, -(2 ** 63)])
    else:
        parent, key = rng.choice(spots)
        value = copy.deepcopy(rng.choice(HOSTILE))
    parent[key] = value
    members[i] = (name, dumps(obj).encode(), method)
    write_zip(out, members)
    return f"{name}: [{key!r}] = {value!r}"[:200]


def _attr(node, name):
    for a in node.attribute:
        if a.name == name:
            return a
    return None


def onnx_struct(base, out, rng, index: int) -> str:
    import onnx
    from onnx import TensorProto, helper

    m = onnx.load(str(base))
    g = m.graph
    convs = [n for n in g.node if n.op_type == "Conv"]
    kinds = ["input_dim", "conv_attr", "init_dims", "init_huge", "external_zero", "external_passwd",
             "missing_input", "cycle", "dup_output", "unknown_op", "unknown_domain", "opset_9999", "no_nodes",
             "init_dtype", "reshape_target"]
    kind = kinds[index % len(kinds)]
    if kind == "input_dim":
        dim = rng.choice(g.input[0].type.tensor_type.shape.dim)
        value = rng.choice([2 ** 40, -5, 0, 2 ** 62])
        dim.dim_value = value
        what = f"an input dimension = {value}"
    elif kind == "conv_attr":
        node = rng.choice(convs)
        name, value = rng.choice([("kernel_shape", [0, 0]), ("kernel_shape", [2 ** 31, 2 ** 31]), ("strides", [0, 0]),
                                  ("dilations", [0, 0]), ("pads", [-5, -5, -5, -5]), ("group", 0), ("group", 7),
                                  ("strides", [2 ** 40, 1]), ("kernel_shape", [3])])
        old = _attr(node, name)
        if old is not None:
            node.attribute.remove(old)
        node.attribute.append(helper.make_attribute(name, value))
        what = f"Conv {node.name or node.output[0]}: {name} = {value}"
    elif kind == "init_dims":
        init = rng.choice(list(g.initializer))
        init.dims[:] = [rng.choice([7, 1000, 0])] + list(init.dims[1:])
        what = f"initializer {init.name}: dims {list(init.dims)} disagree with its data"
    elif kind == "init_huge":
        init = rng.choice(list(g.initializer))
        init.dims[:] = [2 ** 20, 2 ** 20, 2 ** 10]
        what = f"initializer {init.name}: dims claim 2^50 elements"
    elif kind in ("external_zero", "external_passwd"):
        init = rng.choice(list(g.initializer))
        init.ClearField("raw_data")
        init.data_location = TensorProto.EXTERNAL
        location = "/dev/zero" if kind == "external_zero" else "../../../../../../etc/passwd"
        for k, v in (("location", location), ("offset", "0"), ("length", str(2 ** 40))):
            e = init.external_data.add()
            e.key, e.value = k, v
        what = f"initializer {init.name}: external data at {location}"
    elif kind == "missing_input":
        node = rng.choice([n for n in list(g.node)[1:] if n.input])
        node.input[0] = "no_such_tensor"
        what = f"{node.op_type} reads a tensor nothing produces"
    elif kind == "cycle":
        node = rng.choice([n for n in g.node if n.input][1:])
        later = list(g.node)[-1]
        node.input[0] = later.output[0]
        what = f"{node.op_type} reads the last node's output (a cycle)"
    elif kind == "dup_output":
        a, b = rng.sample([n for n in g.node if n.output], 2)
        b.output[0] = a.output[0]
        what = f"{a.op_type} and {b.op_type} produce one tensor"
    elif kind == "unknown_op":
        node = rng.choice(list(g.node))
        node.op_type = rng.choice(["NoSuchOp", "", "Conv3000"])
        what = f"a node's op_type = {node.op_type!r}"
    elif kind == "unknown_domain":
        node = rng.choice(list(g.node))
        node.domain = "com.evil"
        what = "a node in an unknown domain"
    elif kind == "opset_9999":
        m.opset_import[0].version = 9999
        what = "opset 9999"
    elif kind == "no_nodes":
        del g.node[:]
        what = "a graph with no nodes"
    elif kind == "init_dtype":
        init = rng.choice(list(g.initializer))
        init.data_type = rng.choice([0, 99, TensorProto.STRING])
        what = f"initializer {init.name}: data_type {init.data_type}"
    else:
        shapes = [n for n in g.node if n.op_type == "Constant"]
        node = rng.choice(shapes)
        a = node.attribute[0]
        node.ClearField("attribute")
        node.attribute.append(helper.make_attribute("value_ints", rng.choice([[-1, -1], [0], [2 ** 40, 2 ** 40]])))
        what = f"Constant {node.output[0]} ({a.name}) replaced by a hostile shape"
    out.write_bytes(m.SerializeToString())
    return what


def cases(g: Gen, bases: dict) -> list:
    out = []
    for i in range(g.n(10)):
        cid = f"bytes/pt2/json-{i:02d}"
        path = g.dir(cid) / "model.pt2"
        note = pt2_json(bases["pt2"], path, g.rng(cid))
        out.append(file_case(g, "bytes", cid, path, extra=SHAPE, note=f"tiny.pt2: {note}"))
    for i in range(g.n(15)):
        cid = f"bytes/onnx/struct-{i:02d}"
        path = g.dir(cid) / "model.onnx"
        rng = g.rng(cid)
        note = onnx_struct(bases["onnx"], path, rng, i)
        cmd = "check" if rng.random() < 0.4 else "summary"
        out.append(file_case(g, "bytes", cid, path, cmd=cmd, note=f"tiny.onnx: {note}"))
    return out
