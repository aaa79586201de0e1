"""ONNX files -> :class:`~modellint.graph.Graph`, with the ``onnx`` package only.

No framework is imported and nothing in the file is run. ``onnx`` itself is
imported inside :func:`read_onnx`, so ``import modellint`` never pays for it.

How an ONNX graph becomes a layer graph
---------------------------------------
* Weights are not read: ``onnx.load(..., load_external_data=False)``, so a model
  whose weights live in an external data file reads without that file. Parameter
  counts come from the initializers' ``dims``; small constants (a Reshape target,
  Resize scales, Pad widths, Clip bounds) are read only where they are stored in
  the file itself. External data files the tensors name that are not next to the
  model, or shorter than their data, are named in ``graph.notes`` (the architecture
  and counts read the same; the model cannot run without them).
* A stored tensor several layers read counts once per module that reads it (an
  exporter keeps one copy of identical initializers), once for a module called
  again or a weight tied on purpose: see :meth:`_Reader._settle_params`.
* MACs are per sample: a layer whose input holds the batch elsewhere than axis 0
  (``(seq, batch, dim)``, ``17*batch``, an LSTM of layout 0) says where in
  ``attrs["batch_axis"]``, which :func:`modellint.ops.count_macs` reads.
* The batch dimension: a symbolic one (``dim_param``, a dynamic axis) is ``None``.
  A fixed 1 is ``None`` too: it is what ``torch.onnx.export`` writes for a
  ``(1, ...)`` example without dynamic axes, and a live PyTorch capture reads its
  example's batch as ``None`` the same way, so an export and its module give the
  same facts. A larger fixed batch (a graph made for batches of 10) is the file's
  own: it stays its number in every shape, as Keras' ``batch_shape`` does, and a
  note says so. Costs and rules read per-sample sizes (``shape[1:]``) either way.
* Shapes come from ``onnx.shape_inference`` (with data propagation); where it
  gives none, :mod:`modellint.ops` infers them from the canonical attributes.
* Only nodes on the data path are kept: a node is kept when one of its data
  inputs derives from a graph input. Constants, ``Shape``/``Size`` and the
  arithmetic on them (exporter plumbing) are folded away.
* Patterns the exporters spell in several nodes are joined: ``MatMul`` + bias
  ``Add`` -> one ``dense``; ``x * Sigmoid(x)`` -> ``silu``; ``x * HardSigmoid(x)``
  -> ``hard_silu``.
* One table, :data:`OP_TYPES`, maps ``op_type`` to a reader returning the
  canonical ``(op, attrs)``; anything else on the data path is an ``unknown``
  node that keeps its ONNX shapes.
* Layout is ``channels_first``; shapes are stored canonical (``(N, H, W, C)``).
* Node names: the PyTorch module path where the exporter left one
  (``/layer1/layer1.0/conv1/Conv`` from the TorchScript exporter, or the
  ``pkg.torch.onnx.name_scopes`` metadata of the dynamo exporter ->
  ``layer1.0.conv1``; an op called inside a container module is
  ``layer1.0.add``), else the ONNX node name (or ``<op_type>_<index>``). A name
  seen again gets ``@1``, ``@2``... as a layer called again does in Keras.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Callable, Optional

from .. import ops
from ..errors import InputError, MissingFramework
from ..graph import Graph, Node
from .common import infer_node

LAYOUT = "channels_first"

# ONNX TensorProto.DataType -> name (the ones a model's tensors use)
_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
           9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}
_FLOAT_TYPES = frozenset({1, 10, 11, 16})
_INT_TYPES = frozenset({6, 7})

#: An ONNX file is one protobuf message, which protobuf caps at 2 GiB (larger
#: models keep their weights in external data files); onnx.load reads it whole.
MAX_ONNX_BYTES = 2 << 30
#: Nodes in a model, subgraphs and functions included. Exporters write one node
#: per op: a ResNet-50 has ~180, a large transformer tens of thousands. Each costs
#: ~1.5 KiB once in the layer graph, so a 100 MB file of tiny nodes (millions)
#: must be refused before it is built.
MAX_ONNX_NODES = 200_000
#: Protobuf messages (nodes, attributes, tensors, value infos, graphs) in a model,
#: counted on the wire before the file is parsed: the parser keeps ~370 bytes per
#: message, so an 84 MB file of six million tiny nodes would take 2.2 GB to parse.
MAX_ONNX_MESSAGES = 500_000
#: Elements of one stored tensor (the product of its dims). The largest weight of
#: today's largest models holds ~2**31 (a 128k x 16k embedding); past 2**40 the dims
#: are not a tensor anyone stores (external data included), and counts derived from
#: them run towards int64 overflow.
MAX_TENSOR_ELEMENTS = 1 << 40

# Bits per element of a data type in raw_data (packed: 4-bit types two to a byte).
_RAW_BITS = {1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64, 14: 64,
             15: 128, 16: 16, 17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4, 24: 8, 25: 2, 26: 2}
# The typed field a data type's values are stored in without raw_data, and values per element.
_TYPED_FIELD = {1: ("float_data", 1), 14: ("float_data", 2), 11: ("double_data", 1), 15: ("double_data", 2),
                7: ("int64_data", 1), 12: ("uint64_data", 1), 13: ("uint64_data", 1), 8: ("string_data", 1),
                **{t: ("int32_data", 1) for t in (2, 3, 4, 5, 6, 9, 10, 16, 17, 18, 19, 20, 24)}}

# Ops whose output carries no activation data even when their input does.
_META_OPS = frozenset({"Shape", "Size", "EyeLike", "RandomNormalLike", "RandomUniformLike"})
# Data inputs of ops where only some inputs are data (the rest give a type or a shape).
_DATA_INPUTS = {"CastLike": (0,), "ConstantOfShape": ()}
# Ops whose every input may carry a weight on its way to its layer (others: input 0 only).
_ALL_INPUTS = frozenset({"Concat", "Add", "Sub", "Mul", "Div", "Sum", "Where"})
# Inputs that hold a layer's weights (not its initial state or a shape), where not all do.
_WEIGHT_INPUTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,),
                  "LSTM": (1, 2, 3, 7), "GRU": (1, 2, 3), "RNN": (1, 2, 3), "BatchNormalization": (1, 2, 3, 4),
                  "LayerNormalization": (1, 2), "GroupNormalization": (1, 2), "InstanceNormalization": (1, 2),
                  "PRelu": (1,), "Gather": (0,)}
# ONNX ops that are the layer of a module exported as several nodes.
_LAYER_OP_TYPES = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "RNN",
                             "BatchNormalization", "LayerNormalization", "GroupNormalization",
                             "InstanceNormalization"})
# Canonical ops whose (float) initializer inputs are learnable weights.
_WEIGHTED = frozenset({"conv", "conv_transpose", "depthwise_conv", "dense", "batchnorm", "layernorm",
                       "groupnorm", "rnn", "embedding", "scale"})


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------

def read_onnx(path) -> Graph:
    """A graph from an ``.onnx`` file (weights in external data files are not read)."""
    path = Path(path)
    try:
        import onnx
    except ImportError:
        raise MissingFramework(path, "reading ONNX files needs the onnx package: "
                               "pip install 'modellint[onnx]'") from None
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    if size > MAX_ONNX_BYTES:
        raise InputError(path, f"ONNX file is {size:,} bytes, more than the 2 GiB a protobuf message can be "
                         "(a model this large keeps its weights in external data files)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        nodes, messages = count_messages(data)
    except ValueError:
        raise InputError(path, "not a readable ONNX model (truncated or corrupt)") from None
    if nodes > MAX_ONNX_NODES:
        raise InputError(path, f"ONNX model has more than {MAX_ONNX_NODES:,} nodes, more than modellint reads")
    if messages > MAX_ONNX_MESSAGES:
        raise InputError(path, f"ONNX model holds more than {MAX_ONNX_MESSAGES:,} protobuf messages (nodes, "
                         "attributes, tensors, value infos), more than modellint reads")
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # google.protobuf DecodeError and friends
        raise InputError(path, "not a readable ONNX model (truncated or corrupt)") from None
    del data
    if not model.HasField("graph") or not (len(model.graph.node) or len(model.graph.input)):
        raise InputError(path, "not an ONNX model: the file holds no graph")
    _check_contents(path, model)
    notes = []
    missing, short = _missing_external_data(path, model)
    if missing or short:
        said = []
        if missing:
            said.append(", ".join(repr(w[:80]) for w in missing[:3]) + (f" and {len(missing) - 3} more"
                                                                        if len(missing) > 3 else "")
                        + f" not found next to {path.name[:80]}")
        said += [f"{w[:80]!r} cut short ({have:,} of {need:,} bytes)" for w, have, need in short[:3]]
        notes.append(f"external data {'; '.join(said)}: weights not read (the architecture, shapes and parameter "
                     "counts are, from the .onnx alone); the model cannot run without it")
    if len(model.functions):
        try:
            from onnx import inliner

            model = inliner.inline_local_functions(model)
        except Exception as exc:  # pragma: no cover - depends on the onnx version
            notes.append(f"model-local functions not inlined ({type(exc).__name__}); they read as unknown nodes")
    _strip_weights(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:
        inferred = model
        notes.append(f"ONNX shape inference failed ({str(exc).splitlines()[0][:200]}); "
                     "shapes come from modellint's own inference")
    try:
        graph = _Reader(inferred, path).build()
    except InputError:
        raise
    except RecursionError:
        raise InputError(path, "ONNX graph too deeply nested to read") from None
    graph.notes[:0] = notes
    return graph


# Message-typed fields followed by count_messages: message -> {field number: message}.
# ModelProto.graph/functions; GraphProto.node/initializer/input/output/value_info/
# quantization_annotation/sparse_initializer; NodeProto.attribute; AttributeProto.t/g/
# tensors/graphs/sparse_tensor(s)/tp(s); FunctionProto.node/attribute_proto.
_WIRE_FIELDS = {
    "model": {7: "graph", 25: "function"},
    "graph": {1: "node", 5: "leaf", 11: "leaf", 12: "leaf", 13: "leaf", 14: "leaf", 15: "leaf"},
    "node": {5: "attr"},
    "attr": {5: "leaf", 6: "graph", 10: "leaf", 11: "graph", 14: "leaf", 15: "leaf", 22: "leaf", 23: "leaf"},
    "function": {7: "node", 11: "attr"},
}


def _varint(buf, pos: int) -> tuple:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _skip(buf, pos: int, wire: int, end: int) -> int:
    """The position past the value of a field of wire type ``wire`` starting at ``pos``
    (for a deprecated group: past its end marker). Raises ValueError for a bad wire
    type or a value that runs past ``end``."""
    if wire == 0:
        _, pos = _varint(buf, pos)
    elif wire == 1:
        pos += 8
    elif wire == 5:
        pos += 4
    elif wire == 2:
        n, pos = _varint(buf, pos)
        pos += n
    elif wire == 3:
        depth = 1
        while depth:
            key, pos = _varint(buf, pos)
            if key & 7 == 3:
                depth += 1
            elif key & 7 == 4:
                depth -= 1
            else:
                pos = _skip(buf, pos, key & 7, end)  # never a group: one level deep
            if pos > end:
                raise ValueError("group runs past its message")
    else:
        raise ValueError("bad wire type")
    if pos > end:
        raise ValueError("field runs past its message")
    return pos


def count_messages(data: bytes, cap: int = MAX_ONNX_MESSAGES) -> tuple:
    """``(nodes, messages)`` of a serialised ModelProto, read off the protobuf wire
    format without parsing it (so without its memory), stopping once past ``cap``
    messages. Raises ValueError for bytes that are not well-formed protobuf."""
    buf = memoryview(data)
    nodes = messages = 0
    stack = [("model", 0, len(buf))]
    while stack:
        kind, pos, end = stack.pop()
        fields = _WIRE_FIELDS.get(kind, {})
        while pos < end:
            key, pos = _varint(buf, pos)
            field, wire = key >> 3, key & 7
            child = fields.get(field) if wire == 2 else None
            if child is None:
                pos = _skip(buf, pos, wire, end)
                continue
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise ValueError("field runs past its message")
            messages += 1
            nodes += child == "node"
            if messages > cap or nodes > MAX_ONNX_NODES:
                return nodes, messages
            if child != "leaf":
                stack.append((child, pos, pos + n))
            pos += n
    return nodes, messages


def _graphs(model):
    """The model's graph, its subgraphs (If/Loop/Scan bodies) and its functions' nodes, without recursion."""
    from onnx import AttributeProto

    stack = [model.graph]
    while stack:
        g = stack.pop()
        yield g
        for node in g.node:
            for at in node.attribute:
                if at.type == AttributeProto.GRAPH:
                    stack.append(at.g)
                elif at.type == AttributeProto.GRAPHS:
                    stack.extend(at.graphs)


def _tensors(model):
    """Every stored tensor, as ``(what, tensor)`` (``what`` names it in a message): initializers
    (sparse ones too) and Constant / attribute tensors."""
    from onnx import AttributeProto

    for g in _graphs(model):
        for t in g.initializer:
            yield f"initializer {t.name[:60]!r}", t
        for sp in g.sparse_initializer:
            yield f"sparse initializer {sp.values.name[:60]!r} (values)", sp.values
            yield f"sparse initializer {sp.values.name[:60]!r} (indices)", sp.indices
        for node in g.node:
            for at in node.attribute:
                where = f"node {(node.name or node.op_type)[:60]!r}, attribute {at.name[:40]!r}"
                if at.type == AttributeProto.TENSOR:
                    yield f"tensor {at.t.name[:60]!r} of {where}" if at.t.name else f"the tensor of {where}", at.t
                elif at.type == AttributeProto.TENSORS:
                    for i, t in enumerate(at.tensors):
                        yield f"tensor {i} of {where}", t


def _dims_problem(dims: list) -> Optional[str]:
    if any(d < 0 for d in dims):
        return f"has a negative dimension in its dims {dims[:8]}"
    n = 1
    for d in dims:
        n *= d
        if n > MAX_TENSOR_ELEMENTS:
            return f"has dims {dims[:8]} ({_prod(dims):,} elements), more than the 2**40 modellint reads"
    return None


def _tensor_problem(t, external: bool) -> Optional[str]:
    """What is wrong with a stored tensor's dims, or with the data it holds for them (None: nothing)."""
    dims = list(t.dims)
    problem = _dims_problem(dims)
    if problem:
        return problem
    n = _prod(dims)
    if external or t.HasField("segment"):
        return None  # its data is elsewhere: never read, so only its dims are checked
    dtype = _DTYPES.get(t.data_type, f"data type {t.data_type}")
    if t.raw_data:
        bits = _RAW_BITS.get(t.data_type)
        want = (n * bits + 7) // 8 if bits else None
        if want is not None and len(t.raw_data) != want:
            return (f"has dims {dims[:8]} ({n:,} elements of {dtype}, {want:,} bytes) but {len(t.raw_data):,} "
                    "bytes of raw data")
        return None
    field, per = _TYPED_FIELD.get(t.data_type, (None, 0))
    if field is not None and len(getattr(t, field)) != n * per:
        return f"has dims {dims[:8]} ({n:,} elements of {dtype}) but holds {len(getattr(t, field)) // per:,} values"
    return None


def _cycle(graph) -> Optional[str]:
    """The name of a node on a cycle of ``graph`` (an input that depends on the node's own output), or
    None. Kahn's algorithm: nodes left with an unfinished producer are on a cycle or after one; walking
    producers back from one of them reaches the cycle."""
    nodes = list(graph.node)
    producers: dict = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            if out:
                producers.setdefault(out, []).append(i)
    deps = [{p for x in node.input if x for p in producers.get(x, ())} for node in nodes]
    users: list = [[] for _ in nodes]
    for i, ds in enumerate(deps):
        for d in ds:
            users[d].append(i)
    waiting = [len(ds) for ds in deps]
    ready = [i for i, w in enumerate(waiting) if not w]
    done = 0
    while ready:
        i = ready.pop()
        done += 1
        for u in users[i]:
            waiting[u] -= 1
            if not waiting[u]:
                ready.append(u)
    if done == len(nodes):
        return None
    i = next(j for j, w in enumerate(waiting) if w)
    seen: set = set()
    while i not in seen:  # every node left has a producer left
        seen.add(i)
        i = next(d for d in deps[i] if waiting[d])
    return nodes[i].name or f"{nodes[i].op_type}_{i}"


def _check_contents(path: Path, model) -> None:
    """Refuse a model too large to build, a graph with a cycle, a stored tensor whose
    dims are absurd (negative, more than :data:`MAX_TENSOR_ELEMENTS` elements) or
    disagree with the data it holds, or one whose external data would be read from
    outside its folder. modellint never reads external data (weights are counted from
    their dims), but the file is refused before anything that might (``onnx.load``
    with its defaults, onnxruntime) is ever pointed at it."""
    nodes = sum(len(g.node) for g in _graphs(model)) + sum(len(f.node) for f in model.functions)
    if nodes > MAX_ONNX_NODES:
        raise InputError(path, f"ONNX model has {nodes:,} nodes, more than the {MAX_ONNX_NODES:,} modellint reads")
    for g in _graphs(model):
        node = _cycle(g)
        if node is not None:
            raise InputError(path, f"ONNX graph {g.name[:60]!r} has a cycle through node {node[:60]!r} (a node's "
                             "input depends on its own output; ONNX graphs are acyclic)")
        for sp in g.sparse_initializer:
            problem = _dims_problem(list(sp.dims))
            if problem:
                raise InputError(path, f"sparse initializer {sp.values.name[:60]!r} {problem}")
    for what, t in _tensors(model):
        external = t.data_location == 1 or bool(len(t.external_data))  # 1: TensorProto.EXTERNAL
        problem = _tensor_problem(t, external)
        if problem:
            raise InputError(path, f"{what} {problem}")
        if not external:
            continue
        info = {e.key: e.value for e in t.external_data}
        where = info.get("location", "")
        parts = where.replace("\\", "/").split("/")
        if (not where or os.path.isabs(where) or where.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", where)
                or ".." in parts or "\0" in where):
            raise InputError(path, f"tensor {t.name[:60]!r} keeps its data at {where[:80]!r}, outside the model's "
                             "folder (refused: external data must be a relative path below it)")
        for key in ("offset", "length"):
            value = info.get(key)
            if value is not None and not (value.isdigit() and len(value) <= 19):
                raise InputError(path, f"tensor {t.name[:60]!r}: external data {key} {value[:40]!r} is not a size")


def _missing_external_data(path: Path, model) -> list:
    """``(missing, short)``: the external data files the model's tensors name that are not
    next to it, and those shorter than the data they are said to hold, in the order first
    named. Only their sizes are looked at; :func:`_check_contents` has checked every location is a
    relative path below the model's folder."""
    need: dict = {}
    for _, t in _tensors(model):
        if not (t.data_location == 1 or len(t.external_data)):
            continue
        info = {e.key: e.value for e in t.external_data}
        where = info.get("location", "")
        end = int(info.get("offset") or 0) + int(info.get("length") or 0)
        need[where] = max(need.get(where, 0), end)
    missing, short = [], []
    for where, end in need.items():
        try:
            size = (path.parent / where).stat().st_size
        except OSError:
            missing.append(where)
            continue
        if size < end:
            short.append((where, size, end))
    return missing, short


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

_BIG = 4096  # elements: a tensor this large is a weight, never a value we read


def _strip_weights(model) -> None:
    """Drop the data of large initializers (their dims stay): shape inference
    serialises the whole model, and weights are never read."""
    for t in model.graph.initializer:
        if (_prod(t.dims) or 0) > _BIG:
            for field in ("raw_data", "float_data", "double_data", "int32_data", "int64_data"):
                t.ClearField(field)

def _attr_value(attr):
    from onnx import helper

    v = helper.get_attribute_value(attr)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, list):
        return [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v]
    return v


def _tensor_dims(vtype) -> Optional[tuple]:
    """Source-layout dims of a TypeProto (None for symbolic or unknown dims)."""
    if not vtype.HasField("tensor_type") or not vtype.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in vtype.tensor_type.shape.dim)


def _constant_tensor(node):
    """The TensorProto a ``Constant`` node holds (``value`` or ``value_int(s)/value_float(s)``)."""
    import numpy as np
    from onnx import numpy_helper

    for at in node.attribute:
        if at.name == "value" and at.HasField("t"):
            return at.t
        if at.name in ("value_int", "value_ints", "value_float", "value_floats"):
            v = _attr_value(at)
            return numpy_helper.from_array(np.array(v, dtype=np.int64 if "int" in at.name else np.float32))
    return None


def _axis(axis: int, rank: int) -> int:
    """A source axis (ONNX, channels-first) as a canonical axis in negative form."""
    return ops.canon_axis(axis, rank, "channels_first")


def _strip_index(name: str) -> str:
    return re.sub(r"_\d+$", "", name)


def _prod(dims) -> Optional[int]:
    n = 1
    for d in dims:
        if d is None:
            return None
        n *= int(d)
    return n


class _Ctx:
    """What a reader sees of one ONNX node."""

    def __init__(self, reader: "_Reader", node, data_inputs: list):
        self.r = reader
        self.node = node
        self.op_type = node.op_type
        self.a = {at.name: _attr_value(at) for at in node.attribute}
        self.inputs = list(node.input)
        self.data_inputs = data_inputs  # tensor names on the data path
        self.notes: list = []

    def input(self, i: int) -> str:
        return self.inputs[i] if i < len(self.inputs) else ""

    def shape(self, tensor: str) -> Optional[tuple]:
        return self.r.shapes.get(tensor)

    @property
    def x(self) -> Optional[tuple]:
        """Source shape of the first data input."""
        return self.shape(self.data_inputs[0]) if self.data_inputs else None

    @property
    def y(self) -> Optional[tuple]:
        return self.shape(self.node.output[0]) if len(self.node.output) else None

    def value(self, i: int):
        """The constant value of input ``i`` as a numpy array (None when not known)."""
        name = self.input(i)
        return self.r.const_value(name) if name else None

    def ints(self, i: int, attr: Optional[str] = None):
        """Attribute ``attr`` (older opsets) or the constant input ``i`` as a list of ints."""
        if attr and attr in self.a:
            v = self.a[attr]
            return [int(x) for x in v] if isinstance(v, (list, tuple)) else [int(v)]
        v = self.value(i)
        if v is None:
            return None
        return [int(x) for x in v.reshape(-1)]

    def scalar(self, i: int, attr: Optional[str] = None, default=None):
        if attr and attr in self.a:
            return self.a[attr]
        v = self.value(i)
        if v is None or v.size != 1:
            return default
        return v.reshape(-1)[0].item()

    def weight_dims(self, i: int) -> Optional[tuple]:
        name = self.input(i)
        if not name:
            return None
        dims = self.shape(name)
        if dims is None and name in self.r.consts:
            dims = tuple(self.r.consts[name].dims)
        return dims

    def is_weight(self, i: int) -> bool:
        name = self.input(i)
        return bool(name) and name not in self.r.dynamic and bool(self.r.weight_sources(name))

    @property
    def rank(self) -> int:
        x = self.x
        return len(x) if x is not None else 0


# ---------------------------------------------------------------------------
# readers: ctx -> (op, attrs)
# ---------------------------------------------------------------------------

def _padding(ctx: _Ctx, n: int):
    auto = str(ctx.a.get("auto_pad", "NOTSET"))
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return "same"
    if auto == "VALID":
        return "valid"
    pads = ctx.a.get("pads")
    if not pads or not any(pads):
        return "valid"
    return tuple((int(pads[i]), int(pads[i + n])) for i in range(n))


def _kernel(ctx: _Ctx):
    """(weight dims, kernel size, spatial rank, groups) of a Conv or ConvTranspose node."""
    w = ctx.weight_dims(1)
    kernel = ctx.a.get("kernel_shape") or (list(w[2:]) if w else None)
    if kernel is None:
        raise ValueError("kernel size unknown")
    return w, kernel, len(kernel), int(ctx.a.get("group", 1))


def _conv(ctx: _Ctx):
    w, kernel, n, groups = _kernel(ctx)
    filters = w[0] if w and w[0] is not None else (ctx.y[1] if ctx.y else None)
    c_in = ctx.x[1] if ctx.x and len(ctx.x) > 1 else None
    attrs = {
        "rank": n, "kernel": tuple(int(k) for k in kernel),
        "strides": tuple(int(s) for s in ctx.a.get("strides", [1] * n)),
        "dilation": tuple(int(d) for d in ctx.a.get("dilations", [1] * n)),
        "padding": _padding(ctx, n),
        "use_bias": ctx.is_weight(2),
        "activation": "linear",
    }
    if groups > 1 and c_in is not None and groups == c_in and filters is not None and filters % groups == 0:
        attrs["depth_multiplier"] = filters // groups
        return "depthwise_conv", attrs
    attrs.update(filters=int(filters) if filters is not None else None, groups=groups)
    return "conv", attrs


def _conv_transpose(ctx: _Ctx):
    w, kernel, n, groups = _kernel(ctx)
    filters = w[1] * groups if w and w[1] is not None else (ctx.y[1] if ctx.y else None)
    padding = _padding(ctx, n)
    out_pad = ctx.a.get("output_padding")
    if out_pad and any(out_pad):  # fold output_padding into the high side of padding
        base = padding if isinstance(padding, tuple) else ((0, 0),) * n
        padding = tuple((lo, hi - int(out_pad[i])) for i, (lo, hi) in enumerate(base))
    return "conv_transpose", {
        "rank": n, "kernel": tuple(int(k) for k in kernel), "filters": filters, "groups": groups,
        "strides": tuple(int(s) for s in ctx.a.get("strides", [1] * n)),
        "dilation": tuple(int(d) for d in ctx.a.get("dilations", [1] * n)),
        "padding": padding, "use_bias": ctx.is_weight(2), "activation": "linear",
    }


def _gemm(ctx: _Ctx):
    if not ctx.is_weight(1):
        return "dot", {"axes": (-1, -2), "kind": ctx.op_type}
    w = ctx.weight_dims(1)
    if ctx.op_type == "Gemm":
        units = w[0] if ctx.a.get("transB") else w[1]
        use_bias = ctx.is_weight(2)
    else:
        units = w[-1]
        use_bias = False  # set by the MatMul + Add join
    return "dense", {"units": int(units), "use_bias": use_bias, "activation": "linear"}


def _batchnorm(ctx: _Ctx):
    attrs = {"axis": _axis(1, max(ctx.rank, 2)), "center": True, "scale": True,
             "epsilon": ctx.a.get("epsilon", 1e-5), "momentum": ctx.a.get("momentum", 0.9)}
    if ctx.a.get("training_mode"):
        attrs["training_mode"] = True
    return "batchnorm", attrs


def _layernorm(ctx: _Ctx):
    rank = ctx.rank
    first = int(ctx.a.get("axis", -1))
    first = first + rank if first < 0 else first
    # ONNX normalises over the source axes first..rank-1; canonical axes for those
    axes = [_axis(a, rank) for a in range(first, rank)] if rank else [-1]
    return "layernorm", {"axis": axes if len(axes) > 1 else axes[0], "center": ctx.is_weight(2),
                         "scale": ctx.is_weight(1), "epsilon": ctx.a.get("epsilon", 1e-5)}


def _groupnorm(ctx: _Ctx):
    if ctx.op_type == "InstanceNormalization":
        c = ctx.x[1] if ctx.x and len(ctx.x) > 1 else None
        return "groupnorm", {"groups": c, "axis": -1, "instance": True, "epsilon": ctx.a.get("epsilon", 1e-5)}
    return "groupnorm", {"groups": ctx.a.get("num_groups"), "axis": -1, "epsilon": ctx.a.get("epsilon", 1e-5)}


def _act(fn, **params):
    """An activation; ``params`` maps attrs to their ONNX attribute names and defaults."""
    def read(ctx: _Ctx):
        attrs = {"function": fn}
        for key, (onnx_name, default) in params.items():
            attrs[key] = ctx.a.get(onnx_name, default)
        return "activation", attrs

    return read


def _softmax(fn):
    def read(ctx: _Ctx):
        default = -1 if ctx.r.opset >= 13 else 1
        return "activation", {"function": fn, "axis": _axis(ctx.a.get("axis", default), max(ctx.rank, 1))}

    return read


def _leaky(ctx: _Ctx):
    return "activation", {"function": "leaky_relu", "negative_slope": float(ctx.a.get("alpha", 0.01))}


def _clip(ctx: _Ctx):
    lo = ctx.scalar(1, "min")
    hi = ctx.scalar(2, "max")
    if lo == 0 and hi == 6:
        fn = "relu6"
    elif lo == 0 and hi is None:
        fn = "relu"
    elif lo == -1 and hi == 1:
        fn = "hard_tanh"
    else:
        fn = "clip"
    return "activation", {"function": fn, "min": lo, "max": hi}


def _prelu(ctx: _Ctx):
    return "activation", {"function": "prelu"}


def _pool(op):
    def read(ctx: _Ctx):
        kernel = [int(k) for k in ctx.a["kernel_shape"]]
        n = len(kernel)
        attrs = {"rank": n, "pool_size": tuple(kernel),
                 "strides": tuple(int(s) for s in ctx.a.get("strides", [1] * n)),
                 "padding": _padding(ctx, n)}
        if ctx.a.get("ceil_mode"):
            attrs["ceil_mode"] = True
        if any(int(d) != 1 for d in ctx.a.get("dilations", [])):
            attrs["dilation"] = tuple(int(d) for d in ctx.a["dilations"])
        if op == "pool_avg" and "count_include_pad" in ctx.a:
            attrs["count_include_pad"] = bool(ctx.a["count_include_pad"])
        return op, attrs

    return read


def _global_pool(mode):
    def read(ctx: _Ctx):
        return "global_pool", {"mode": mode, "keepdims": True}

    return read


def _reduce(mode):
    """ReduceMean / ReduceMax over all spatial axes is global pooling."""
    def read(ctx: _Ctx):
        rank = ctx.rank
        axes = ctx.ints(1, "axes")
        keep = bool(ctx.a.get("keepdims", 1))
        if axes is not None and rank >= 3:
            axes = sorted({a + rank if a < 0 else a for a in axes})
            if axes == list(range(2, rank)):
                return "global_pool", {"mode": mode, "keepdims": keep}
        return "unknown", {"kind": ctx.op_type, "axes": axes, "keepdims": keep}

    return read


def _flatten(ctx: _Ctx):
    if int(ctx.a.get("axis", 1)) == 1:
        return "flatten", {}
    return _reshape(ctx)


def _reshape(ctx: _Ctx):
    x, y = ctx.x, ctx.y
    if x is not None and y is not None and len(y) == 2 and len(x) > 2 and y[1] is not None \
            and y[1] == _prod(x[1:]):
        return "flatten", {}
    if y is None:
        return "reshape", {"kind": ctx.op_type, "target_shape": None}
    return "reshape", {"kind": ctx.op_type, "target_shape": tuple(-1 if d is None else d for d in y[1:])}


def _transpose(ctx: _Ctx):
    perm = ctx.a.get("perm")
    if perm is None and ctx.rank:
        perm = list(range(ctx.rank))[::-1]
    if perm and perm[0] == 0:
        return "permute", {"dims": tuple(int(p) for p in perm[1:]), "perm": tuple(perm)}
    return "permute", {"perm": tuple(perm or ())}


def _move(ctx: _Ctx):
    """Slice / Gather / Split / Expand / Tile / Squeeze... of activations: values move, none change.
    Where the spatial grid is untouched, the op is pointwise (``identity``) for the receptive field."""
    x, y = ctx.x, ctx.y
    if x is not None and y is not None and len(x) == len(y) and len(x) >= 3 and x[2:] == y[2:] \
            and len(ctx.node.output) == 1:
        return "identity", {"kind": ctx.op_type.lower()}
    return "reshape", {"kind": ctx.op_type.lower(),
                       "target_shape": tuple(-1 if d is None else d for d in y[1:]) if y else None}


def _gather(ctx: _Ctx):
    if ctx.input(0) not in ctx.r.dynamic and ctx.is_weight(0):
        dims = ctx.weight_dims(0)
        if dims and len(dims) == 2:
            return "embedding", {"input_dim": int(dims[0]), "output_dim": int(dims[1])}
    return _move(ctx)


# Ops whose constant operand may be a learned tensor (a LayerScale gamma, a position embedding).
_OPERAND_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean"})

_MERGE = {"Add": "add", "Sum": "add", "Sub": "subtract", "Mul": "multiply", "Max": "maximum",
          "Min": "minimum", "Mean": "average"}


def _elementwise(ctx: _Ctx):
    if len(ctx.data_inputs) >= 2:
        op = _MERGE.get(ctx.op_type)
        return (op, {}) if op else ("unknown", {"kind": ctx.op_type.lower()})
    # one data input and a constant: a fixed (or learned) affine map
    const = next((i for i, name in enumerate(ctx.inputs) if name and name not in ctx.r.dynamic), None)
    dims = ctx.weight_dims(const) if const is not None else None
    value = ctx.value(const) if const is not None else None
    attrs = {"operation": ctx.op_type.lower(), "constant_shape": tuple(dims) if dims is not None else None}
    if value is not None and value.size == 1:
        attrs["constant"] = value.reshape(-1)[0].item()
    if ctx.op_type == "Mul" and dims and _prod(dims) and _prod(dims) > 1 and ctx.is_weight(const):
        return "scale", attrs
    if ctx.op_type in ("Mul", "Div", "Add", "Sub"):
        return "rescaling", attrs
    return "unknown", {"kind": ctx.op_type.lower(), **attrs}


def _concat(ctx: _Ctx):
    rank = ctx.rank or (len(ctx.y) if ctx.y else 1)
    return "concat", {"axis": _axis(ctx.a.get("axis", 1), rank)}


def _dropout(ctx: _Ctx):
    rate = ctx.scalar(1, "ratio", 0.5)
    return "dropout", {"variant": "dropout", "rate": rate}


def _pad(ctx: _Ctx):
    rank = ctx.rank
    pads = ctx.ints(1, "pads")
    attrs = {"mode": ctx.a.get("mode", "constant")}
    axes = ctx.ints(3) if ctx.r.opset >= 18 and ctx.input(3) else None
    if pads is not None and rank >= 3:
        axes = [a + rank if a < 0 else a for a in axes] if axes else list(range(rank))
        per = {ax: (pads[i], pads[i + len(axes)]) for i, ax in enumerate(axes)}
        if any(per.get(ax, (0, 0)) != (0, 0) for ax in (0, 1)):
            attrs["pads_batch_or_channels"] = True
        attrs["padding"] = tuple(per.get(ax, (0, 0)) for ax in range(2, rank))
    return "pad", attrs


def _resize(ctx: _Ctx):
    x, y = ctx.x, ctx.y
    mode = str(ctx.a.get("mode", "nearest"))
    interp = {"linear": "bilinear", "cubic": "bicubic"}.get(mode, mode)
    factors = None
    scales = ctx.value(1 if ctx.op_type == "Upsample" else 2) if ctx.op_type in ("Resize", "Upsample") else None
    if scales is not None and scales.size == len(x or ()):
        factors = [float(s) for s in scales.reshape(-1)[2:]]
    elif x is not None and y is not None and len(x) == len(y) and all(x[2:]) and all(y[2:]):
        factors = [y[i] / x[i] for i in range(2, len(x))]
    if factors and all(f >= 1 and float(f).is_integer() for f in factors):
        return "upsample", {"rank": len(factors), "size": tuple(int(f) for f in factors), "interpolation": interp}
    attrs = {"interpolation": interp}
    if y is not None and len(y) == 4:
        attrs.update(height=y[2], width=y[3])
    return "resize", attrs


def _rnn(cell):
    def read(ctx: _Ctx):
        bi = str(ctx.a.get("direction", "forward")) == "bidirectional"
        y_used = bool(ctx.node.output) and bool(ctx.r.consumers.get(ctx.node.output[0])) \
            or (len(ctx.node.output) and ctx.node.output[0] in ctx.r.graph_outputs)
        attrs = {"cell": cell, "units": int(ctx.a["hidden_size"]), "bidirectional": bi,
                 "merge_mode": None if bi else "concat", "return_sequences": bool(y_used),
                 "use_bias": ctx.is_weight(3), "time_major": not ctx.a.get("layout", 0),
                 "activation": "tanh"}
        if cell == "gru":
            attrs["reset_after"] = bool(ctx.a.get("linear_before_reset", 0))
        return "rnn", attrs

    return read


def _einsum(ctx: _Ctx):
    eq = str(ctx.a["equation"])
    return "einsum", {"equation": eq, "operand_shapes": []}  # operand shapes: set with the batch (_add)


def _identity(ctx: _Ctx):
    return "identity", {"kind": ctx.op_type.lower()}


OP_TYPES: dict[str, Callable] = {}


def _register(names: str, reader: Callable) -> None:
    for n in names.split():
        OP_TYPES[n] = reader


_register("Conv", _conv)
_register("ConvTranspose", _conv_transpose)
_register("Gemm MatMul", _gemm)
_register("BatchNormalization", _batchnorm)
_register("LayerNormalization", _layernorm)
_register("GroupNormalization InstanceNormalization", _groupnorm)
_register("Relu", _act("relu"))
_register("LeakyRelu", _leaky)
_register("Sigmoid", _act("sigmoid"))
_register("Tanh", _act("tanh"))
_register("Softmax", _softmax("softmax"))
_register("LogSoftmax", _softmax("log_softmax"))
_register("Gelu", _act("gelu", approximate=("approximate", "none")))
_register("HardSwish", _act("hard_silu"))
_register("HardSigmoid", _act("hard_sigmoid", alpha=("alpha", 0.2), beta=("beta", 0.5)))
_register("Elu", _act("elu", alpha=("alpha", 1.0)))
_register("Celu", _act("celu", alpha=("alpha", 1.0)))
_register("Selu", _act("selu"))
_register("Softplus", _act("softplus"))
_register("Softsign", _act("softsign"))
_register("Mish", _act("mish"))
_register("ThresholdedRelu", _act("thresholded_relu", threshold=("alpha", 1.0)))
_register("Exp", _act("exponential"))
_register("PRelu", _prelu)
_register("Clip", _clip)
_register("MaxPool", _pool("pool_max"))
_register("AveragePool", _pool("pool_avg"))
_register("GlobalAveragePool", _global_pool("avg"))
_register("GlobalMaxPool", _global_pool("max"))
_register("ReduceMean", _reduce("avg"))
_register("ReduceMax", _reduce("max"))
_register("Flatten", _flatten)
_register("Reshape", _reshape)
_register("Transpose", _transpose)
_register("Squeeze Unsqueeze Slice Split Expand Tile Gather GatherElements DepthToSpace SpaceToDepth",
          _move)
_register("Gather", _gather)
_register("Add Sub Mul Div Sum Max Min Mean", _elementwise)
_register("Concat", _concat)
_register("Dropout", _dropout)
_register("Pad", _pad)
_register("Resize Upsample", _resize)
_register("LSTM", _rnn("lstm"))
_register("GRU", _rnn("gru"))
_register("RNN", _rnn("simple"))
_register("Identity Cast CastLike", _identity)
_register("Einsum", _einsum)


# ---------------------------------------------------------------------------
# the reader
# ---------------------------------------------------------------------------

class _Reader:
    def __init__(self, model, path: Path):
        self.model = model
        self.path = path
        g = model.graph
        self.g = g
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.consts = {t.name: t for t in g.initializer}  # name -> TensorProto
        self.initializers = set(self.consts)
        self._values: dict = {}
        self._sources: dict = {}
        self.shapes: dict = {}
        self.dtypes: dict = {}
        self.dim_params: dict = {}  # tensor -> symbolic dim names (None where a dim has none)
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            dims = _tensor_dims(vi.type)
            if dims is not None:
                self.shapes[vi.name] = dims
                self.dim_params[vi.name] = tuple(d.dim_param or None for d in vi.type.tensor_type.shape.dim)
            if vi.type.HasField("tensor_type"):
                self.dtypes[vi.name] = vi.type.tensor_type.elem_type
        for t in g.initializer:
            self.shapes.setdefault(t.name, tuple(t.dims))
            self.dtypes.setdefault(t.name, t.data_type)
        self.producer: dict = {}  # tensor -> (onnx node, output index)
        self.consumers: dict = {}  # tensor -> [onnx nodes]
        for node in g.node:
            for i, out in enumerate(node.output):
                if out:
                    self.producer[out] = (node, i)
            for inp in node.input:
                if inp:
                    self.consumers.setdefault(inp, []).append(node)
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
                t = _constant_tensor(node)
                if t is not None:
                    self.consts[node.output[0]] = t
                    self.shapes.setdefault(node.output[0], tuple(t.dims))
        self.graph_outputs = {o.name for o in g.output}
        self.dynamic: set = {i.name for i in g.input if i.name not in self.initializers}
        self.batch = None
        self.batch_size = None  # the graph input's batch: a fixed number, or None when symbolic
        self.batch_param = None  # its symbolic name ('batch_size', 's0') when it has one

    # -- constants ----------------------------------------------------------
    def const_value(self, name: str):
        """numpy value of a constant tensor, folding a few plumbing ops; None if unknown."""
        if name in self._values:
            return self._values[name]
        self._values[name] = None  # guards against cycles
        value = None
        try:
            value = self._const_value(name)
        except Exception:  # a constant we cannot fold is simply unknown
            value = None
        self._values[name] = value
        return value

    def _const_value(self, name: str):
        import numpy as np
        from onnx import numpy_helper

        if name in self.dynamic:
            return None
        t = self.consts.get(name)
        if t is not None:
            if t.data_location == 1 or (_prod(t.dims) or 0) > _BIG:  # external data / a weight
                return None
            return numpy_helper.to_array(t)
        prod = self.producer.get(name)
        if prod is None:
            return None
        node, idx = prod
        op = node.op_type
        if op == "Shape":
            dims = self.shapes.get(node.input[0])
            if dims is None or any(d is None for d in dims):
                return None
            a = {at.name: _attr_value(at) for at in node.attribute}
            return np.array(dims[a.get("start", 0):a.get("end", len(dims))], dtype=np.int64)
        ins = [self.const_value(i) if i else None for i in node.input]
        a = {at.name: _attr_value(at) for at in node.attribute}
        if op in ("Identity", "Cast", "CastLike"):
            return ins[0]
        if any(v is None for v, n in zip(ins, node.input) if n):
            return None
        if op == "Concat":
            return np.concatenate([v.reshape(-1) if v.ndim == 0 else v for v in ins], axis=a.get("axis", 0))
        if op == "Unsqueeze":
            axes = a.get("axes") or [int(x) for x in ins[1].reshape(-1)]
            v = ins[0]
            for ax in sorted(axes):
                v = np.expand_dims(v, ax)
            return v
        if op == "Squeeze":
            axes = a.get("axes") or ([int(x) for x in ins[1].reshape(-1)] if len(ins) > 1 else None)
            return np.squeeze(ins[0], axis=tuple(axes) if axes else None)
        if op == "Gather":
            return np.take(ins[0], ins[1], axis=a.get("axis", 0))
        if op == "Reshape":
            return ins[0].reshape([int(x) for x in ins[1]])
        if op in ("Add", "Sub", "Mul", "Div"):
            f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
            out = f(ins[0], ins[1])
            return out.astype(ins[0].dtype) if op == "Div" and ins[0].dtype.kind == "i" else out
        if op == "Slice":
            v = ins[0]
            starts = [int(x) for x in ins[1]] if len(ins) > 1 else a["starts"]
            ends = [int(x) for x in ins[2]] if len(ins) > 2 else a["ends"]
            axes = [int(x) for x in ins[3]] if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
            steps = [int(x) for x in ins[4]] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
            sl = [slice(None)] * v.ndim
            for s, e, ax, st in zip(starts, ends, axes, steps):
                sl[ax] = slice(s, e, st)
            return v[tuple(sl)]
        return None

    def weight_sources(self, name: str, depth: int = 0) -> list:
        """The stored tensors a non-data tensor is made of: initializers, or Constant
        tensors of more than one element, followed through the ops exporters put
        between a weight and its layer (cast, transpose, reshape, split, concat,
        dequantize...) but never through ``Shape`` (a shape is no weight)."""
        if name in self._sources:
            return self._sources[name]
        self._sources[name] = []
        out: list = []
        if name in self.initializers:
            out = [name]
        elif name in self.consts:
            out = [name] if (_prod(self.consts[name].dims) or 1) > 1 else []
        elif depth <= 16 and name in self.producer:
            node = self.producer[name][0]
            if node.op_type not in _META_OPS and node.op_type != "ConstantOfShape":
                which = range(len(node.input)) if node.op_type in _ALL_INPUTS else (0,)
                for i in which:
                    if i < len(node.input) and node.input[i]:
                        out += [s for s in self.weight_sources(node.input[i], depth + 1) if s not in out]
        self._sources[name] = out
        return out

    # -- shapes -------------------------------------------------------------
    def canon(self, dims: Optional[tuple]) -> Optional[tuple]:
        if dims is None:
            return None
        dims = tuple(dims)
        if dims and (dims[0] is None or dims[0] == self.batch):
            dims = (None, *dims[1:])
        return ops.to_canonical(dims, LAYOUT)

    # -- names --------------------------------------------------------------
    @staticmethod
    def _scope(node) -> tuple:
        """(module path, op name) where the exporter recorded a PyTorch module path, else (None, None)."""
        for p in node.metadata_props:
            if p.key == "pkg.torch.onnx.name_scopes":
                try:
                    scopes = [str(s) for s in ast.literal_eval(p.value)]
                except (ValueError, SyntaxError):
                    break
                if scopes:
                    mods = [s for s in scopes[:-1] if s]
                    return (mods[-1] if mods else ""), _strip_index(scopes[-1]) or node.op_type.lower()
        name = node.name
        if name.startswith("/") and len(name) > 1:
            # TorchScript exporter: one scope per module; a Sequential's child is
            # spelled "<parent>.<index>" ("/layer4/layer4.0/downsample/downsample.0/Conv")
            parts = [p for p in name.strip("/").split("/") if p]
            path, last = "", ""
            for part in parts[:-1]:
                if last and part.startswith(last + "."):
                    path = path[:len(path) - len(last)] + part
                else:
                    path = f"{path}.{part}" if path else part
                last = part
            return path, _strip_index(parts[-1]).lower()
        return None, None

    def _names(self, kept: list) -> dict:
        scopes = {id(n): self._scope(n) for n in kept}
        containers = set()
        for path, _ in scopes.values():
            if path:
                bits = path.split(".")
                for i in range(1, len(bits)):
                    containers.add(".".join(bits[:i]))
        out, groups = {}, {}
        for i, n in enumerate(kept):
            path, opname = scopes[id(n)]
            if path is None:
                base = n.name or f"{n.op_type}_{i}"
            elif path and path not in containers:
                base = path
                groups.setdefault(path, []).append(n)
            else:
                base = f"{path}.{opname}" if path else opname
            out[id(n)] = re.sub(r":(\d+)$", r"_\1", base)
        # a module exported as several nodes (an LSTM between Transposes): its layer
        # op keeps the module's name, the others are "<module>.<op>"
        for path, nodes in groups.items():
            main = [n for n in nodes if n.op_type in _LAYER_OP_TYPES]
            if len(nodes) > 1 and len(main) == 1:
                for n in nodes:
                    if n is not main[0]:
                        out[id(n)] = f"{path}.{scopes[id(n)][1]}"
        return out

    def _unique(self, base: str) -> str:
        if base not in self.graph.nodes:
            return base
        k = 1
        while f"{base}@{k}" in self.graph.nodes:
            k += 1
        return f"{base}@{k}"

    # -- build --------------------------------------------------------------
    def build(self) -> Graph:
        g = self.g
        producer = " ".join(s for s in (self.model.producer_name, self.model.producer_version) if s)
        self.graph = graph = Graph(name=g.name or self.path.stem, framework="onnx", source_format="onnx",
                                   source_path=str(self.path), layout=LAYOUT,
                                   framework_version=producer or None)
        graph.notes.append(f"ONNX IR version {self.model.ir_version}, opset {self.opset}"
                           + (f", exported by {producer}" if producer else ""))

        # graph inputs
        self.ref: dict = {}  # tensor -> graph ref
        for inp in g.input:
            if inp.name in self.initializers:
                continue
            dims = self.shapes.get(inp.name)
            if self.batch is None and dims:
                # the batch: symbolic reads as None; a fixed 1 (what torch.onnx.export writes for a (1, ...)
                # example without dynamic axes) reads as None, the example's batch as in a live capture; a
                # larger fixed batch is the file's own and stays its number (as Keras' batch_shape does).
                # It is axis 0, or axis 1 of a (seq, batch, features) input an RNN reads as it is
                ax = self._input_batch_axis(inp.name, dims)
                self.batch = 1 if dims[ax] == 1 else -1
                self.batch_size = dims[ax]
                self.batch_param = (self.dim_params.get(inp.name) or (None,) * len(dims))[ax]
                if dims[ax] is not None and dims[ax] > 1:
                    graph.notes.append(f"input {inp.name[:60]!r} has a fixed batch of {dims[ax]}: shapes show it "
                                       "(a symbolic batch, or a fixed 1 as an export example leaves, reads as "
                                       "any batch)")
            node = Node(name=self._unique(re.sub(r":(\d+)$", r"_\1", inp.name)), op="input",
                        source_type="graph input", output_shapes=[self.canon(dims)])
            dt = self.dtypes.get(inp.name)
            if dt in _DTYPES:
                node.attrs["dtype"] = _DTYPES[dt]
            if dims is None:
                node.notes.append("input shape not recorded in the file")
            graph.add(node)
            graph.inputs.append(node.name)
            self.ref[inp.name] = node.name

        # which nodes are on the data path
        kept = []
        for node in g.node:
            if node.op_type in _META_OPS:
                continue
            idx = _DATA_INPUTS.get(node.op_type)
            ins = [x for i, x in enumerate(node.input) if x and (idx is None or i in idx)]
            if any(x in self.dynamic for x in ins):
                kept.append(node)
                self.dynamic.update(o for o in node.output if o)
        names = self._names(kept)

        self.readings: list = []  # (node, onnx node, stored tensor, elements, trainable), in graph order
        self.dropped_biases: list = []  # (node, units): a zero bias the exporter's optimiser removed
        absorbed: set = set()
        for node in kept:
            if id(node) in absorbed:
                continue
            self._add(node, names[id(node)], absorbed)
        self._settle_params()

        graph.outputs = [self.ref[o.name] for o in g.output if o.name in self.ref]
        return graph

    def _input_batch_axis(self, name: str, dims: tuple) -> int:
        """The batch axis of a graph input: the one whose symbolic name says batch, axis 1 where an
        LSTM/GRU/RNN of layout 0 reads the input as its (seq, batch, features) sequence, else 0."""
        names = self.dim_params.get(name) or ()
        for i, n in enumerate(names):
            if n and "batch" in n.lower():
                return i
        if len(dims) == 3:
            for c in self.consumers.get(name, []):
                if c.op_type in ("LSTM", "GRU", "RNN") and c.input and c.input[0] == name and not any(
                        at.name == "layout" and at.i for at in c.attribute):
                    return 1
        return 0

    def _batch_axis(self, tensor: str):
        """Where the batch is in a data tensor (source layout), for MACs per sample: 0 (the usual
        place, or not known), another axis (a (seq, batch, features) tensor), None where the tensor
        has no batch axis of its own and a batch of 1 is merged into other axes (every axis counts),
        or ``(axis, k)`` where a symbolic batch is merged into an axis of ``k * batch``."""
        dims = self.shapes.get(tensor)
        if not dims:
            return 0
        names = self.dim_params.get(tensor) or (None,) * len(dims)
        if self.batch_param:
            hits = [i for i, n in enumerate(names) if n == self.batch_param]
            if hits:
                return hits[0]
            bp = re.escape(self.batch_param)
            for i, n in enumerate(names[:-1]):  # '17*batch': the batch merged with 17 per sample
                m = re.fullmatch(rf"(\d+)\*{bp}|{bp}\*(\d+)", n or "")
                if m:
                    return (i, int(m.group(1) or m.group(2)))
            return 0
        n = self.batch_size
        if n is None or dims[0] == n:
            return 0
        if n == 1:
            return None  # a batch of 1 multiplies nothing, wherever it went
        hits = [i for i, d in enumerate(dims[:-1]) if d == n]
        return hits[0] if len(hits) == 1 else 0

    def _consumer(self, tensor: str):
        """The only consumer of ``tensor`` (None if it has several or is a graph output)."""
        cons = self.consumers.get(tensor, [])
        if len(cons) != 1 or tensor in self.graph_outputs:
            return None
        return cons[0]

    def _used(self, tensor: str) -> bool:
        return bool(tensor) and (tensor in self.graph_outputs or bool(self.consumers.get(tensor)))

    def _add(self, onode, base: str, absorbed: set) -> None:
        data_inputs = [x for x in onode.input if x and x in self.dynamic]
        if onode.op_type in _DATA_INPUTS:
            data_inputs = [x for i, x in enumerate(onode.input) if i in _DATA_INPUTS[onode.op_type]
                           and x in self.dynamic]
        ctx = _Ctx(self, onode, data_inputs)
        reader = OP_TYPES.get(onode.op_type) if onode.domain in ("", "ai.onnx") else None
        outputs = list(onode.output)
        which = _WEIGHT_INPUTS.get(onode.op_type)
        weight_inputs = [x for i, x in enumerate(onode.input)
                         if x and x not in self.dynamic and (which is None or i in which)]
        op, attrs = "unknown", {}
        if reader is not None:
            try:
                op, attrs = reader(ctx)
            except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
                op, attrs = "unknown", {"error": f"unreadable {onode.op_type}: {exc}"}

        # joins: MatMul + bias Add -> dense; x * Sigmoid(x) -> silu
        if op == "dense" and onode.op_type == "MatMul":
            nxt = self._consumer(onode.output[0])
            if nxt is not None and nxt.op_type == "Add":
                other = [x for x in nxt.input if x != onode.output[0]]
                if len(other) == 1 and other[0] not in self.dynamic and self.weight_sources(other[0]):
                    dims = self.shapes.get(other[0])
                    if dims is not None and _prod(dims) == attrs["units"]:
                        attrs["use_bias"] = True
                        absorbed.add(id(nxt))
                        outputs = list(nxt.output)
                        weight_inputs.append(other[0])
        if op == "activation" and onode.op_type in ("Sigmoid", "HardSigmoid") and data_inputs:
            nxt = self._consumer(onode.output[0])
            if nxt is not None and nxt.op_type == "Mul" and data_inputs[0] in nxt.input:
                attrs = {"function": "silu" if onode.op_type == "Sigmoid" else "hard_silu"}
                absorbed.add(id(nxt))
                outputs = list(nxt.output)

        # MACs per sample: where the batch is in the input of a layer that multiplies
        if op == "rnn":
            if attrs.get("time_major"):
                attrs["batch_axis"] = 1  # X is (seq_length, batch, input_size) in layout 0
        elif op in ("dense", "dot", "sdpa") and data_inputs:
            ax = self._batch_axis(data_inputs[0])
            if ax != 0:
                attrs["batch_axis"] = ax
        elif op == "einsum":
            # the batch's own size never multiplies a sample's MACs: its index counts 1
            shapes = []
            for x in ctx.inputs:
                dims = list(ctx.weight_dims(ctx.inputs.index(x)) or ()) if x not in self.dynamic \
                    else list(self.shapes.get(x) or ())
                ax = self._batch_axis(x) if x in self.dynamic else -1
                if isinstance(ax, tuple):
                    dims[ax[0]] = ax[1]
                elif ax is not None and 0 <= ax < len(dims):
                    dims[ax] = None
                shapes.append(tuple(dims))
            attrs["operand_shapes"] = shapes

        # outputs nobody reads (BatchNormalization's running statistics in training
        # mode, Dropout's mask, an RNN's unused states) are not layer outputs
        while len(outputs) > 1 and not self._used(outputs[-1]):
            outputs.pop()

        name = self._unique(base)
        node = Node(name=name, op=op, source_type=onode.op_type if not onode.domain
                    else f"{onode.domain}.{onode.op_type}", attrs=attrs,
                    inputs=[self.ref[x] for x in data_inputs if x in self.ref])
        if op == "unknown":
            attrs.setdefault("kind", "custom" if onode.domain not in ("", "ai.onnx") else onode.op_type.lower())
            if "error" not in attrs:
                node.notes.append(f"ONNX {onode.op_type}: not a layer modellint knows; shape from the file")
        if onode.name and onode.name != name:
            attrs["onnx_name"] = onode.name
        dt = self.dtypes.get(outputs[0]) if outputs else None
        if dt in _DTYPES and dt != 1:
            attrs["dtype"] = _DTYPES[dt]

        # shapes: ONNX shape inference first, modellint's own where it gives none
        out_shapes = [self.canon(self.shapes.get(o)) if o else None for o in outputs]
        if outputs and all(s is not None for s in out_shapes):
            node.output_shapes = out_shapes
        else:
            infer_node(node, [self.graph.shape_of(r) for r in node.inputs], LAYOUT)
            if out_shapes and out_shapes[0] is not None and (not node.output_shapes or node.output_shapes[0] is None):
                node.output_shapes = [s for s in out_shapes]

        self._count(node, op, onode, weight_inputs)
        self.graph.add(node)
        for i, o in enumerate(outputs):
            if o:
                self.ref[o] = name if i == 0 else f"{name}:{i}"

    def _count(self, node: Node, op: str, onode, weight_inputs: list) -> None:
        """Record which stored tensors ``node`` reads as its weights; :meth:`_settle_params` counts them."""
        node.params = node.trainable_params = 0
        learnable = op in _WEIGHTED or (op == "activation" and node.attrs.get("function") == "prelu")
        if op == "dense" and not node.attrs.get("use_bias") and self._fx_linear_bias(onode):
            # the dynamo exporter's optimiser drops a bias of zeros; the framework still holds it
            node.attrs["use_bias"] = True
            self.dropped_biases.append((node, int(node.attrs["units"])))
        if not (learnable or op == "unknown" or onode.op_type in _OPERAND_OPS
                or onode.op_type in ("Concat", "Einsum")):
            return  # a constant that parameterises an op (Resize scales, Pad widths) is no weight
        bn_stats = set(onode.input[3:5]) if op == "batchnorm" else set()
        seen: set = set()
        for tensor in weight_inputs:
            for src in self.weight_sources(tensor):
                t = self.consts[src]
                n = _prod(t.dims) or (1 if not len(t.dims) else 0)
                if t.data_type not in _FLOAT_TYPES and not (learnable and t.data_type not in _INT_TYPES):
                    continue
                if not learnable and n <= 1:
                    continue  # a scalar constant (x / 255, x * 0.5) is no weight
                if src in seen:
                    continue
                seen.add(src)
                self.readings.append((node, onode, src, n, tensor not in bn_stats))

    # -- parameters: one stored tensor, read by several layers ---------------
    def _settle_params(self) -> None:
        """Give each layer the parameters it holds in the framework.

        Exporters merge stored tensors: ``torch.onnx.export`` (both exporters)
        keeps one copy of identical initializers (LayerNorm weights of ones,
        zero biases, the layers of an ``nn.TransformerEncoder``, which starts as
        deep copies of one layer), so several layers read one initializer. The
        framework holds a parameter per layer, and ``sum(p.numel())`` counts each.
        It counts a parameter once when it *is* one object: a module called
        again, or a weight tied on purpose (a language model's embedding and
        output projection). A stored tensor read by several layers therefore
        counts once for each module that reads it, where:

        * a module is the PyTorch module path the exporter recorded; a later
          call of the same module (TorchScript names it ``<module>_1``) is the
          same module, and a parameter named after the module that reads it
          (``a.weight`` read in ``a``, or in a parent that calls it functionally)
          is that module's own;
        * the dynamo exporter records which parameters each node used
          (``pkg.torch.onnx.fx_node``): a node that used the initializer's own
          parameter reads that parameter, whichever module it is in (ties);
        * a tensor read as an embedding table and as a dense weight is a tied
          embedding (counted once);
        * in a file that names no modules the tensor counts once, as before.

        The dynamo exporter stores a tied output projection as a transposed
        copy of the embedding (``val_*``); its node's fx record names the
        embedding's parameter, so the copy counts for nothing.
        """
        placeholders = self._param_placeholders()
        by_src: dict = {}
        for reading in self.readings:
            by_src.setdefault(reading[2], []).append(reading)
        keys = {}
        for src, rs in by_src.items():
            scopes = {self._scope(onode)[0] for _, onode, _, _, _ in rs}
            ops_ = {node.op for node, _, _, _, _ in rs}
            tie = "embedding" in ops_ and "dense" in ops_
            owner = src.rsplit(".", 1)[0] if src in placeholders else None
            for node, onode, _, _, _ in rs:
                scope = self._scope(onode)[0]
                mod = "own"
                if not (scope is None or tie or len(rs) == 1 or self._uses_param(onode, placeholders.get(src))):
                    m = re.match(r"^(.*)_(\d+)$", scope)
                    if m and (m.group(1) in scopes or m.group(1) == owner):
                        scope = m.group(1)  # TorchScript's name for a later call of a module
                    if owner is None or not (owner == scope or owner.startswith(scope + ".") or scope == ""):
                        mod = scope
                keys[(id(node), src)] = (src, mod)
        counted: dict = {}  # (stored tensor, module) -> node name holding its parameters
        first: dict = {}  # stored tensor -> first node holding it
        shared: dict = {}  # stored tensor -> {module keys that count it}
        totals: dict = {}
        derived = self._derived_copies(by_src, placeholders)
        for node, onode, src, n, trainable in self.readings:
            key = keys[(id(node), src)]
            tr, nt = totals.get(node.name, (0, 0))
            if src in derived:
                node.shares_params_with = node.shares_params_with or derived[src]
                continue
            if key in counted:
                if counted[key] != node.name:
                    node.shares_params_with = node.shares_params_with or counted[key]
                continue
            counted[key] = node.name
            first.setdefault(src, node.name)
            shared.setdefault(src, set()).add(key)
            totals[node.name] = (tr + n, nt) if trainable else (tr, nt + n)
        for node, units in self.dropped_biases:
            tr, nt = totals.get(node.name, (0, 0))
            totals[node.name] = (tr + units, nt)
        for node in [r[0] for r in self.readings] + [d[0] for d in self.dropped_biases]:
            tr, nt = totals.get(node.name, (0, 0))
            node.params, node.trainable_params = tr + nt, tr
            if node.params and node.shares_params_with:
                node.shares_params_with = None  # it holds parameters of its own
        multi = {src: len(ks) for src, ks in shared.items() if len(ks) > 1}
        if multi:
            extra = sum((k - 1) * (_prod(self.consts[src].dims) or 1) for src, k in multi.items())
            self.graph.notes.append(
                f"the exporter stored {len(multi):,} initializer{'s' if len(multi) != 1 else ''} once for "
                f"{sum(multi.values()):,} layers ({extra:,} parameters more than the file stores): identical "
                "values (zero biases, LayerNorm weights of ones, copies of one layer) are kept once; each layer "
                "counts its own, as the framework does (a module called again, or a weight tied on purpose, "
                "counts once)")
        if self.dropped_biases:
            n = sum(u for _, u in self.dropped_biases)
            self.graph.notes.append(
                f"{len(self.dropped_biases):,} linear layer{'s' if len(self.dropped_biases) != 1 else ''} "
                f"({', '.join(node.name for node, _ in self.dropped_biases[:3])}"
                f"{' ...' if len(self.dropped_biases) > 3 else ''}) use a bias the exporter's optimiser removed "
                f"(all zeros): counted from the export's record of the parameters used ({n:,} parameters)")
        if derived:
            n = sum(_prod(self.consts[src].dims) or 1 for src in derived)
            self.graph.notes.append(
                f"{len(derived):,} stored tensor{'s' if len(derived) != 1 else ''} ({n:,} values) "
                "{} a transposed copy of a tied parameter the framework holds once (counted once)".format(
                    "are" if len(derived) != 1 else "is"))

    def _param_placeholders(self) -> dict:
        """``{parameter name: dynamo placeholder}`` from the graph signature the dynamo exporter records
        (``p_a_weight: PARAMETER target='a.weight'``); empty for other files."""
        out = {}
        for prop in self.g.metadata_props:
            if prop.key == "pkg.torch.export.ExportedProgram.graph_signature":
                for ph, target in re.findall(r"(\w+): PARAMETER target='([^']+)'", prop.value):
                    out[target] = ph
        return out

    @staticmethod
    def _fx_params(onode) -> Optional[set]:
        """The parameter placeholders the dynamo exporter says ``onode`` used (None: not recorded)."""
        for prop in onode.metadata_props:
            if prop.key == "pkg.torch.onnx.fx_node":
                return set(re.findall(r"%(p_\w+)", prop.value))
        return None

    @staticmethod
    def _fx_linear_bias(onode) -> bool:
        """Whether the dynamo exporter records ``onode`` as ``aten.linear`` with a bias parameter."""
        for prop in onode.metadata_props:
            if prop.key == "pkg.torch.onnx.fx_node":
                m = re.search(r"target=torch\.ops\.aten\.linear\.default\]\(args = \((.*)\), kwargs", prop.value)
                if m:
                    args = [a.strip() for a in m.group(1).split(",")]
                    return len(args) == 3 and args[2].startswith("%p_")
        return False

    def _uses_param(self, onode, placeholder: Optional[str]) -> bool:
        refs = self._fx_params(onode) if placeholder else None
        return bool(refs) and placeholder in refs

    def _derived_copies(self, by_src: dict, placeholders: dict) -> dict:
        """``{stored tensor: node}`` for unnamed tensors (``val_12``) that a dynamo export stored as a
        copy of a parameter that is stored under its own name and read by another node (a tied output
        projection's transposed embedding): the node's fx record names that parameter, of as many values."""
        if not placeholders:
            return {}
        target = {ph: name for name, ph in placeholders.items()}
        out = {}
        for src, rs in by_src.items():
            if src in placeholders:
                continue
            n = _prod(self.consts[src].dims) or 1
            for node, onode, _, _, _ in rs:
                for ph in self._fx_params(onode) or ():
                    name = target.get(ph)
                    if name in by_src and name != src and (_prod(self.consts[name].dims) or 1) == n \
                            and all(r[0] is not node for r in by_src[name]):
                        out[src] = by_src[name][0][0].name
                        break
                if src in out:
                    break
        return out
