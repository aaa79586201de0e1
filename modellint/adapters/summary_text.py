"""A pasted ``model.summary()`` table, read back into a :class:`~modellint.graph.Graph`.

People ask "how do I analyse this model summary?" with the text of the table, not the
model file. This adapter recognises, by content:

* Keras 3's box-drawn table (``┏━┳━┓`` … ``└─┴─┘``), Sequential and Functional
  (with its ``Connected to`` column), cells wrapped or cut with ``…``;
* the Keras 2 / tf.keras table (``____`` and ``====`` rules), both the old layout whose
  cells are cut at the column width (``batch_normalization_1 (Batch``) and the
  tf.keras >= 2.9 layout whose cells wrap onto the next line, Sequential and
  Functional (``input_1[0][0]`` / ``['input_1[0][0]']``);
* torchinfo's ``summary()`` table (``Layer (type:depth-idx)``, ``├─Conv2d: 1-1``);

also pasted inside prose and with the line breaks lost (a Q&A post that collapsed the
table into one line). Nothing in the text is executed or evaluated: it is matched
with regular expressions only.

What the text says, and what it does not
-----------------------------------------

A row gives a layer's name, its type, its output shape and its parameter count; a
Functional table also its producers. Everything else is **inferred**, and every node
says how in ``node.attrs["provenance"]``: ``{attr: {"how": ..., "why": ...}}`` where
``how`` is

* ``"read"``: printed in the table (type, output shape, params);
* ``"inferred"``: the only value the table's numbers allow, with the arithmetic in
  ``why`` (``3·3·3·32 + 32 = 896``; ``128 → 64 at stride 2``);
* ``"assumed"``: a framework default the numbers do not contradict but do not prove
  either, stated (dilation 1; in a Sequential table, Keras' ``MaxPooling2D()`` pool 2 =
  stride: a 3×3/2 'same' pool gives the same shapes, so a Functional table, where
  keras.applications use those, leaves the window unknown);
* ``"unknown"``: the numbers allow several values (a non-square kernel, a stride hidden
  by padding, a pool window of 2 or 3): the attribute is left out, and analyses that
  need it give no number (the receptive field past that layer is unknown).

Kernels are read from ``params = k·k·c_in·c_out (+ c_out)``, assuming a square kernel
(``k^rank`` must be a whole power; 1×7 gives 7, no square: unknown). Strides, pool
windows and padding come from the change of the spatial size, enumerating every
(window, stride, padding, dilation) the layer could have had; a value is inferred only
when every reading consistent with the numbers agrees on it.

Facts no summary holds are listed on :attr:`Graph.unknown_facts` (activations, loss and
optimizer, initialisers): the engine skips the rules that read them and says why.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Optional

from ..errors import InputError
from ..graph import Graph, Node, TrainingConfig  # noqa: F401  (TrainingConfig: kept None on purpose)

#: what the error line says was expected
EXPECTED = ("expected the text of a Keras model.summary() (Keras 3 box table or Keras 2 '====' table) "
            "or a torchinfo summary() table")

MAX_TEXT_CHARS = 5_000_000
MAX_ROWS = 20_000

UNKNOWN_FACTS = {
    "activations": "a model.summary() does not show activations (a Conv2D(activation=...) argument is not "
                   "a row); check the model file (.h5, .keras) to decide",
    "training": "a model.summary() does not show the loss, the optimizer or the learning rate",
    "initializers": "a model.summary() does not show weight initialisers",
}

# -- recognising ------------------------------------------------------------------

_K3_HEADER = re.compile(r"┃\s*Layer \(type\)\s*┃")
_K2_HEADER = re.compile(r"Layer \(type\)\s+Output Shape\s+Param #")
_TI_HEADER = re.compile(r"Layer \(type(?::depth-idx| \(var_name\)(?::depth-idx)?)\)")
_TOTAL = re.compile(r"Total params:\s*([\d,]+)")
_TRAINABLE = re.compile(r"(?<!Non-)Trainable params:\s*([\d,]+)")
_NON_TRAINABLE = re.compile(r"Non-trainable params:\s*([\d,]+)")


def sniff_text(head: bytes) -> bool:
    """Does this start of a file look like a summary table (for :func:`load_file`)?"""
    try:
        text = head.decode("utf-8", errors="replace")
    except Exception:  # pragma: no cover
        return False
    return bool(_K3_HEADER.search(text) or _K2_HEADER.search(text) or _TI_HEADER.search(text)
                or "Layer (type)" in text)


def detect(text: str) -> Optional[str]:
    if _K3_HEADER.search(text):
        return "keras3"
    if _TI_HEADER.search(text):
        return "torchinfo"
    if _K2_HEADER.search(text):
        return "keras2"
    return None


# -- rows ---------------------------------------------------------------------------

@dataclass
class Row:
    name: str
    type: str  # as printed (may be cut: "Batch", "BatchNormalizatio…", "")
    shape_text: str
    params: Optional[int]  # None: "--" (torchinfo containers) or not printed
    connected: list = field(default_factory=list)
    depth: int = 0  # torchinfo nesting
    cut: bool = False  # name or type cut by the column width


def _int(text: str) -> Optional[int]:
    text = text.strip().replace(",", "")
    return int(text) if text.isdigit() else None


def _rows_keras3(text: str, source) -> tuple[list, bool]:
    m = _K3_HEADER.search(text)
    start = text.rfind("\n", 0, m.start()) + 1
    rule_at = text.find("┡", m.end())
    header_end = text.find("┩", rule_at) if rule_at >= 0 else -1
    if rule_at >= 0 and (header_end < 0 or "\n" in text[rule_at:header_end]):
        header_end = text.find("\n", rule_at)  # the rule cut at the terminal width: no ┩
    if header_end < 0:
        raise InputError(source, "Keras 3 summary table has no header rule (┡━╇━┩): the table is cut")
    header = text[start:header_end]
    cols = [c.strip() for c in re.split(r"┃", header.split("┡")[0]) if c.strip() and "━" not in c]
    cols = [c for c in cols if not set(c) <= set("┏┓━┳ \n")]
    if "Param #" not in cols or "Output Shape" not in cols:
        raise InputError(source, "Keras 3 summary table without its 'Output Shape' and 'Param #' columns "
                                 "(cut at the terminal width?); " + EXPECTED)
    end = text.find("└", header_end)
    if end < 0:
        raise InputError(source, "Keras 3 summary table ends before its bottom rule (└─┴─┘): the table is cut")
    body = text[header_end + 1:end]
    n = len(cols)
    pieces = body.split("│")
    rows, cells, i = [], None, 1  # pieces[0]: between the header rule and the first cell
    while i + n <= len(pieces):
        line = [p.strip() for p in pieces[i:i + n]]
        gap = pieces[i + n] if i + n < len(pieces) else ""
        if cells is None:
            cells = [[] for _ in range(n)]
        for c, part in enumerate(line):
            if part:
                cells[c].append(part)
        if "├" in gap or i + n + 1 >= len(pieces):
            rows.append([" ".join(parts) for parts in cells])
            cells = None
        i += n + 1
    if cells is not None and any(cells):
        rows.append([" ".join(parts) for parts in cells])
    out, cut = [], False
    ci, si, pi = cols.index("Layer (type)"), cols.index("Output Shape"), cols.index("Param #")
    conn_i = cols.index("Connected to") if "Connected to" in cols else None
    for r in rows:
        name, typ = _name_type(r[ci])
        cut = cut or "…" in r[ci]
        conn = _connections(r[conn_i]) if conn_i is not None else []
        if conn_i is not None and "…" in r[conn_i]:
            cut = True
        out.append(Row(name=name, type=typ, shape_text=r[si], params=_int(r[pi]), connected=conn,
                       cut="…" in r[ci]))
    return out, conn_i is not None


def _name_type(cell: str) -> tuple[str, str]:
    cell = cell.strip()
    m = re.match(r"^(\S+)\s*\(([^()]*)\)?\s*$", cell)
    if m:
        return m.group(1), m.group(2).strip()
    m = re.match(r"^(\S+)\s*(.*)$", cell)
    return (m.group(1), m.group(2).strip("() ")) if m else (cell, "")


_CONN = re.compile(r"([^\s\[\]',()]+?)\[(\d+)\]\[(\d+)\]")


def _connections(cell: str) -> list:
    cell = cell.strip()
    if cell in ("", "-", "[]"):
        return []
    out = [m.group(1) for m in _CONN.finditer(cell)]
    # Keras 3 cuts long cells: "expanded_conv_de…" (no [0][0] left to read)
    for part in re.split(r"[,\s]+", cell):
        if part.endswith("…") and "[" not in part:
            out.append(part)
        elif "…" in part and "[" in part and not _CONN.search(part):
            out.append(part.split("[")[0] + ("" if part.split("[")[0].endswith("…") else "…"))
    return out


_SHAPE = r"(?:\[\s*)?\((?:None|\d+)(?:,\s*(?:None|\d+))*,?\)(?:\s*\])?"
_SHAPE_CUT = r"(?:\[\s*)?\((?:None|\d+)(?:,\s*(?:None|\d*))*"


def _split_keras2_body(text: str, source) -> tuple[str, str, bool]:
    m = _K2_HEADER.search(text)
    functional = bool(re.match(r"\s+Connected to", text[m.end():m.end() + 40]))
    rest = text[m.end():]
    open_rule = re.search(r"={10,}", rest)
    if not open_rule:
        raise InputError(source, "Keras summary table has no '====' rule under its header: the table is cut")
    body_and_tail = rest[open_rule.end():]
    close = re.search(r"={10,}", body_and_tail)
    if not close or not _TOTAL.search(body_and_tail[close.end():]):
        raise InputError(source, "Keras summary table is cut: no closing '====' rule with 'Total params' after it")
    header_line_start = text.rfind("\n", 0, m.start()) + 1
    header_line = text[header_line_start:text.find("\n", m.start()) if "\n" in text[m.start():] else len(text)]
    return header_line, body_and_tail[:close.start()], functional


def _rows_keras2(text: str, source) -> tuple[list, bool]:
    header_line, body, functional = _split_keras2_body(text, source)
    lines = body.split("\n")
    multiline = len([ln for ln in lines if ln.strip()]) >= 2 and "Output Shape" in header_line \
        and not _K2_HEADER.search(header_line[header_line.find("Layer (type)") + 1:] or "")
    if multiline and len(header_line) < 400:
        rows = _rows_keras2_columns(header_line, lines, functional)
        if rows:
            return rows, functional
    return _rows_keras2_tokens(body), functional


def _rows_keras2_columns(header: str, lines: list, functional: bool) -> list:
    """Cells by column position: the header line gives where each column starts."""
    p_shape, p_params = header.find("Output Shape"), header.find("Param #")
    p_conn = header.find("Connected to") if functional else -1
    starts = [0, p_shape, p_params] + ([p_conn] if p_conn > 0 else [])
    rows, cur = [], None
    for ln in lines:
        if not ln.strip() or re.fullmatch(r"\s*[_=]{5,}\s*", ln):
            continue
        ln = ln.replace("|", " ") if ln.lstrip().startswith("|") else ln
        cells = [ln[starts[i]:(starts[i + 1] if i + 1 < len(starts) else None)] for i in range(len(starts))]
        params = _int(cells[2])
        if params is not None or (cur is None and cells[0].strip()):
            cur = [c.strip() for c in cells]
            cur[2] = params
            rows.append(cur)
        elif cur is not None:
            for i in (0, 1):
                if cells[i].strip():
                    cur[i] = cur[i] + cells[i].strip()  # tf.keras >= 2.9 wraps cells character-wise
            if len(cells) > 3 and cells[3].strip():
                cur[3] = (cur[3] + " " + cells[3].strip()).strip()
    out = []
    for r in rows:
        name, typ = _name_type(r[0])
        shape = r[1]
        if not re.match(_SHAPE, shape) and shape != "multiple":
            return []  # not column-aligned after all: fall back to tokens
        out.append(Row(name=name, type=typ, shape_text=shape, params=r[2],
                       connected=_connections(r[3]) if len(r) > 3 else [],
                       cut=not r[0].rstrip().endswith(")")))
    return out


_ROW_TOKENS = re.compile(
    r"(?P<name>[A-Za-z_][\w./-]*)\s+\((?P<type>[\w.]*)\)?\s*(?P<wrap>\))?\s*"
    r"(?P<shape>" + _SHAPE + r"|multiple|" + _SHAPE_CUT + r")\s+(?P<params>\d[\d,]*)"
    r"(?P<conn>(?:\s+\[?'?[^\s\[\]',()]+\[\d+\]\[\d+\]'?,?\]?)*)(?:\s+\[\])?")


def _rows_keras2_tokens(body: str) -> list:
    """Rows scanned as tokens: the table as a Q&A site shows it, line breaks lost."""
    out = []
    text = " ".join(body.replace("|", " ").split())
    pos = 0
    for m in _ROW_TOKENS.finditer(text):
        between = text[pos:m.start()]
        if out and re.fullmatch(r"[\s_=)]*", between) is None:
            # tokens the row pattern did not take: a cell wrapped onto the next line
            extra = between.strip(" _=")
            if extra.endswith(")") and not out[-1].type.endswith(")"):
                out[-1].type += extra.rstrip(")")
        out.append(Row(name=m.group("name"), type=m.group("type"), shape_text=m.group("shape"),
                       params=_int(m.group("params")), connected=_connections(m.group("conn") or ""),
                       cut=m.group("wrap") is None and not m.group(0).split(m.group("shape"))[0].strip().endswith(")")))
        pos = m.end()
    return out


_TI_ROW = re.compile(r"^(?P<indent>[│|\s]*)(?:[├└]─+|\+\-|\-\-)?(?P<type>[A-Za-z_][\w.]*)(?:\s*\((?P<var>[^)]*)\))?"
                     r"(?::\s*(?P<depth>\d+)-(?P<idx>\d+))?\s+(?P<rest>.*)$")


def _rows_torchinfo(text: str, source) -> list:
    m = _TI_HEADER.search(text)
    header_start = text.rfind("\n", 0, m.start()) + 1
    header_end = text.find("\n", m.end())
    if header_end < 0:
        raise InputError(source, "torchinfo table is cut after its header")
    header = text[header_start:header_end]
    cols = [c for c in re.split(r"\s{2,}", header.strip()) if c]
    rest = text[header_end + 1:]
    rule = re.match(r"\s*={10,}\s*\n", rest)
    body_start = rule.end() if rule else 0
    close = re.search(r"\n\s*={10,}", rest[body_start:])
    if not close or not _TOTAL.search(rest[body_start + close.end():]):
        raise InputError(source, "torchinfo table is cut: no closing '====' rule with 'Total params' after it")
    body = rest[body_start:body_start + close.start()]
    if "Param #" not in cols or "Output Shape" not in cols:
        raise InputError(source, "torchinfo table without its 'Output Shape' and 'Param #' columns; " + EXPECTED)
    out = []
    for ln in body.split("\n"):
        if not ln.strip():
            continue
        r = _TI_ROW.match(ln.rstrip())
        if not r:
            continue
        fields = [f for f in re.split(r"\s{2,}", r.group("rest").strip()) if f]
        # columns after the name: as in the header (Input Shape, Output Shape, Kernel Shape, Param #, ...)
        named = dict(zip(cols[1:], fields)) if len(fields) == len(cols) - 1 else {}
        if not named:
            shapes = [f for f in fields if f.startswith("[") or f == "--"]
            params = next((f for f in reversed(fields) if re.fullmatch(r"[\d,]+|--|\(recursive\)", f)), None)
            named = {"Output Shape": shapes[-1] if shapes else "", "Param #": params or "--"}
        depth = int(r.group("depth")) if r.group("depth") else len(r.group("indent")) // 5 + 1
        if not r.group("depth") and not r.group("indent").strip() and not ln.startswith(("├", "└")):
            depth = 0
        p = named.get("Param #", "--")
        row = Row(name=(r.group("var") or f"{r.group('type')}: {r.group('depth')}-{r.group('idx')}"
                        if r.group("depth") else r.group("type")),
                  type=r.group("type"), shape_text=named.get("Output Shape", ""),
                  params=_int(p) if p not in ("--", "(recursive)") else (0 if p == "--" else None), depth=depth)
        row.kernel_text = named.get("Kernel Shape")
        row.input_text = named.get("Input Shape")
        out.append(row)
    return out


# -- shapes ---------------------------------------------------------------------------

def parse_shape(text: str) -> Optional[tuple]:
    """``(None, 128, 128, 3)`` / ``[(None, 224, 224, 3)]`` / ``[1, 64, 112, 112]`` -> a tuple; None if cut."""
    t = text.strip()
    if t.startswith("[(") or t.startswith("[ ("):
        t = t.lstrip("[ ").rstrip()
        if not t.endswith("]"):
            return None  # cut: "[(None, 224, 224, 3)" may have lost a second tensor
        t = t[:-1].rstrip()
    m = re.fullmatch(r"[\(\[]\s*((?:None|-?\d+)(?:\s*,\s*(?:None|-?\d+))*)\s*,?\s*[\)\]]", t)
    if not m:
        return None
    dims = [None if d.strip() == "None" else int(d) for d in m.group(1).split(",") if d.strip()]
    return tuple(dims)


# -- types -> ops ---------------------------------------------------------------------

KERAS_TYPES = {
    "InputLayer": ("input", {}),
    "Conv1D": ("conv", {"rank": 1}), "Conv2D": ("conv", {"rank": 2}), "Conv3D": ("conv", {"rank": 3}),
    "Convolution2D": ("conv", {"rank": 2}),
    "Conv1DTranspose": ("conv_transpose", {"rank": 1}), "Conv2DTranspose": ("conv_transpose", {"rank": 2}),
    "Conv3DTranspose": ("conv_transpose", {"rank": 3}),
    "DepthwiseConv2D": ("depthwise_conv", {"rank": 2}), "DepthwiseConv1D": ("depthwise_conv", {"rank": 1}),
    "SeparableConv2D": ("separable_conv", {"rank": 2}), "SeparableConv1D": ("separable_conv", {"rank": 1}),
    "Dense": ("dense", {}),
    "BatchNormalization": ("batchnorm", {}), "LayerNormalization": ("layernorm", {}),
    "GroupNormalization": ("groupnorm", {}),
    "MaxPooling1D": ("pool_max", {"rank": 1}), "MaxPooling2D": ("pool_max", {"rank": 2}),
    "MaxPooling3D": ("pool_max", {"rank": 3}), "MaxPool2D": ("pool_max", {"rank": 2}),
    "AveragePooling1D": ("pool_avg", {"rank": 1}), "AveragePooling2D": ("pool_avg", {"rank": 2}),
    "AveragePooling3D": ("pool_avg", {"rank": 3}), "AvgPool2D": ("pool_avg", {"rank": 2}),
    "GlobalAveragePooling1D": ("global_pool", {"mode": "avg"}), "GlobalAveragePooling2D": ("global_pool", {"mode": "avg"}),
    "GlobalAveragePooling3D": ("global_pool", {"mode": "avg"}), "GlobalMaxPooling1D": ("global_pool", {"mode": "max"}),
    "GlobalMaxPooling2D": ("global_pool", {"mode": "max"}), "GlobalMaxPooling3D": ("global_pool", {"mode": "max"}),
    "Flatten": ("flatten", {}), "Reshape": ("reshape", {}), "Permute": ("permute", {}),
    "Dropout": ("dropout", {}), "SpatialDropout1D": ("dropout", {}), "SpatialDropout2D": ("dropout", {}),
    "GaussianNoise": ("dropout", {}), "GaussianDropout": ("dropout", {}), "AlphaDropout": ("dropout", {}),
    "Activation": ("activation", {}), "ReLU": ("activation", {"function": "relu"}),
    "LeakyReLU": ("activation", {"function": "leaky_relu"}), "PReLU": ("activation", {"function": "prelu"}),
    "ELU": ("activation", {"function": "elu"}), "Softmax": ("activation", {"function": "softmax"}),
    "ZeroPadding1D": ("pad", {}), "ZeroPadding2D": ("pad", {}), "ZeroPadding3D": ("pad", {}),
    "Cropping1D": ("crop", {}), "Cropping2D": ("crop", {}), "Cropping3D": ("crop", {}),
    "UpSampling1D": ("upsample", {}), "UpSampling2D": ("upsample", {}), "UpSampling3D": ("upsample", {}),
    "Add": ("add", {}), "Subtract": ("subtract", {}), "Multiply": ("multiply", {}), "Average": ("average", {}),
    "Maximum": ("maximum", {}), "Minimum": ("minimum", {}), "Concatenate": ("concat", {}), "Dot": ("dot", {}),
    "Rescaling": ("rescaling", {}), "Normalization": ("normalization", {}), "Resizing": ("resize", {}),
    "RandomFlip": ("augment", {}), "RandomRotation": ("augment", {}), "RandomZoom": ("augment", {}),
    "RandomTranslation": ("augment", {}), "RandomContrast": ("augment", {}), "RandomCrop": ("augment", {}),
    "Embedding": ("embedding", {}), "LSTM": ("unknown", {}), "GRU": ("unknown", {}), "SimpleRNN": ("unknown", {}),
    "Bidirectional": ("unknown", {}), "MultiHeadAttention": ("unknown", {}),
}

TORCH_TYPES = {
    "Conv1d": ("conv", {"rank": 1}), "Conv2d": ("conv", {"rank": 2}), "Conv3d": ("conv", {"rank": 3}),
    "ConvTranspose2d": ("conv_transpose", {"rank": 2}),
    "Linear": ("dense", {}),
    "BatchNorm1d": ("batchnorm", {}), "BatchNorm2d": ("batchnorm", {}), "BatchNorm3d": ("batchnorm", {}),
    "LayerNorm": ("layernorm", {}), "GroupNorm": ("groupnorm", {}),
    "MaxPool1d": ("pool_max", {"rank": 1}), "MaxPool2d": ("pool_max", {"rank": 2}), "MaxPool3d": ("pool_max", {"rank": 3}),
    "AvgPool1d": ("pool_avg", {"rank": 1}), "AvgPool2d": ("pool_avg", {"rank": 2}), "AvgPool3d": ("pool_avg", {"rank": 3}),
    "AdaptiveAvgPool2d": ("adaptive", {"mode": "avg"}), "AdaptiveMaxPool2d": ("adaptive", {"mode": "max"}),
    "AdaptiveAvgPool1d": ("adaptive", {"mode": "avg"}),
    "Flatten": ("flatten", {}), "Dropout": ("dropout", {}), "Dropout2d": ("dropout", {}), "Identity": ("identity", {}),
    "ReLU": ("activation", {"function": "relu"}), "ReLU6": ("activation", {"function": "relu6"}),
    "LeakyReLU": ("activation", {"function": "leaky_relu"}), "GELU": ("activation", {"function": "gelu"}),
    "SiLU": ("activation", {"function": "silu"}), "Sigmoid": ("activation", {"function": "sigmoid"}),
    "Tanh": ("activation", {"function": "tanh"}), "Softmax": ("activation", {"function": "softmax"}),
    "Hardswish": ("activation", {"function": "hard_swish"}), "Hardsigmoid": ("activation", {"function": "hard_sigmoid"}),
    "ELU": ("activation", {"function": "elu"}), "PReLU": ("activation", {"function": "prelu"}),
    "Upsample": ("upsample", {}), "ZeroPad2d": ("pad", {}), "Embedding": ("embedding", {}),
}

_CONTAINERS = {"Sequential", "ModuleList", "ModuleDict"}


def _snake(name: str) -> str:
    """Keras' own to_snake_case: the default layer name's stem (GlobalAveragePooling2D -> global_average_pooling2d)."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def resolve_keras_type(typ: str, name: str) -> tuple[str, str]:
    """(class name, how): exact, a cut prefix, or from the layer's default name; ("", ...) if unknown."""
    t = typ.rstrip("…").strip()
    if t in KERAS_TYPES:
        return t, "read"
    if t:
        cands = [k for k in KERAS_TYPES if k.startswith(t)]
        if len(cands) > 1:  # "MaxPooling2" -> MaxPooling2D, not MaxPooling1D: take the layer name too
            byname = [k for k in cands if _name_matches(name, k)]
            cands = byname or cands
        if len(cands) == 1:
            return cands[0], f"type cut in the table ('{typ}'): read as {cands[0]}"
        if t in ("Functional", "Sequential", "Model") or t:
            return "", f"type {typ!r} is not a layer modellint reads from a summary"
    cands = [k for k in KERAS_TYPES if _name_matches(name, k)]
    if len(cands) == 1:
        return cands[0], f"type cut from the table: read from the default layer name {name!r} as {cands[0]}"
    return "", "type not in the table"


def _name_matches(name: str, cls: str) -> bool:
    base = re.sub(r"_\d+$", "", name.rstrip("…"))
    return base == _snake(cls) or (name.endswith("…") and _snake(cls).startswith(base))


# -- inference ---------------------------------------------------------------------

def _prov(node: Node, attr: str, how: str, why: str) -> None:
    node.attrs.setdefault("provenance", {})[attr] = {"how": how, "why": why}


def _spatial(shape):
    return tuple(shape[1:-1]) if shape is not None and len(shape) >= 3 else ()


def _dot(*xs) -> str:
    return "·".join(str(x) for x in xs)


def _root(value: int, rank: int) -> Optional[int]:
    if value <= 0:
        return None
    k = round(value ** (1.0 / rank))
    for c in (k - 1, k, k + 1):
        if c >= 1 and c ** rank == value:
            return c
    return None


def _solve_kernel(node: Node, params: int, per_tap: int, bias_n: int, rank: int, formula) -> None:
    """params = k^rank · per_tap (+ bias_n): kernel and use_bias, or unknown."""
    found = []
    for bias in (True, False):
        w = params - (bias_n if bias else 0)
        if per_tap and w > 0 and w % per_tap == 0:
            k = _root(w // per_tap, rank)
            if k:
                found.append((k, bias))
    if len(found) == 1:
        k, bias = found[0]
        node.attrs["kernel"] = (k,) * rank
        node.attrs["use_bias"] = bias
        _prov(node, "kernel", "inferred", formula(k, bias) + f" = {params:,} (square kernel assumed)")
        _prov(node, "use_bias", "inferred", "the only reading of the parameter count")
    else:
        why = (f"{params:,} parameters are not k^{rank}·{per_tap:,} (+{bias_n}) for a whole k: a non-square "
               "or grouped kernel") if not found else f"{params:,} parameters fit several kernels {found}"
        _prov(node, "kernel", "unknown", why)
        _prov(node, "use_bias", "unknown", why)


def _window_candidates(n_in, n_out, kernels, strides, pads, dilations):
    """Every (k, s, pad, d) giving n_out from n_in (Keras 'same'/'valid' or an explicit symmetric pad)."""
    out = []
    for k in kernels:
        for s in strides:
            for d in dilations:
                eff = (k - 1) * d + 1
                for p in pads:
                    if p == "same":
                        ok = -(-n_in // s) == n_out
                    elif p == "valid":
                        ok = n_in >= eff and (n_in - eff) // s + 1 == n_out
                    else:
                        ok = n_in + 2 * p >= eff and (n_in + 2 * p - eff) // s + 1 == n_out
                    if ok:
                        out.append((k, s, p, d))
    return out


class _Builder:
    def __init__(self, graph: Graph, flavour: str):
        self.g = graph
        self.flavour = flavour  # keras | torch
        self.ambiguous = 0
        # Keras' MaxPooling2D() default (pool = stride) is assumed only in a Sequential table, the
        # hand-stacked models where it is the usual layer; keras.applications' Functional models use
        # 3×3/2 pools whose shapes a 2×2/2 one also gives (benchmarks/bench_summary_text.py)
        self.sequential = False

    # each function fills attrs from (input shape, output shape, params); shapes canonical
    def conv(self, node: Node, x, y, params):
        rank = node.attrs.get("rank", len(y) - 2)
        cin, cout = x[-1], y[-1]
        if node.op == "conv" or node.op == "conv_transpose":
            node.attrs["filters"] = cout
            if cin and cout:
                _solve_kernel(node, params, cin * cout, cout, rank,
                              lambda k, b: _dot(*([k] * rank), cin, cout) + (f" + {cout}" if b else ""))
        elif node.op == "depthwise_conv":
            dm = cout // cin if cin and cout and cout % cin == 0 else None
            if dm:
                node.attrs["depth_multiplier"] = dm
                _solve_kernel(node, params, cin * dm, cout, rank,
                              lambda k, b: _dot(*([k] * rank), cin, dm) + (f" + {cout}" if b else ""))
        elif node.op == "separable_conv":
            node.attrs["filters"] = cout
            pw = cin * cout
            found = []
            for bias in (True, False):
                w = params - pw - (cout if bias else 0)
                if cin and w > 0 and w % cin == 0:
                    k = _root(w // cin, rank)
                    if k:
                        found.append((k, bias))
            if len(found) == 1:
                k, bias = found[0]
                node.attrs.update(kernel=(k,) * rank, use_bias=bias, depth_multiplier=1)
                _prov(node, "kernel", "inferred", f"{_dot(*([k] * rank), cin)} + {_dot(cin, cout)}"
                      + (f" + {cout}" if bias else "") + f" = {params:,} (square kernel, depth multiplier 1 assumed)")
            else:
                _prov(node, "kernel", "unknown", f"{params:,} parameters fit no single square kernel")
        if "kernel" not in node.attrs:
            _prov(node, "strides", "unknown", "the kernel is unknown, so the shape change does not tell the stride")
            return
        self.window(node, x, y, node.attrs["kernel"][0], conv=True)

    def window(self, node: Node, x, y, k, conv: bool):
        """Strides, padding, dilation (conv) from the spatial sizes, the kernel known."""
        sx, sy = _spatial(x), _spatial(y)
        if not sx or len(sx) != len(sy) or None in sx or None in sy:
            for a in ("strides", "padding"):
                _prov(node, a, "unknown", "spatial sizes not printed")
            return
        if node.op == "conv_transpose":
            ratios = {b // a if a and b % a == 0 else None for a, b in zip(sx, sy)}
            if len(ratios) == 1 and None not in ratios:
                s = ratios.pop()
                node.attrs.update(strides=(s,) * len(sx), padding="same", dilation=(1,) * len(sx))
                _prov(node, "strides", "inferred", f"{sx[0]} → {sy[0]}: upsampled ×{s}")
                _prov(node, "dilation", "assumed", "1: a summary does not show dilation")
            else:
                _prov(node, "strides", "unknown", f"{sx} → {sy} is no whole upsampling factor")
            return
        pads = ("same", "valid") if self.flavour == "keras" else tuple(range(0, k // 2 + 1))
        dil = (1, 2, 3, 4, 6, 8) if conv and k > 1 else (1,)
        # dilation 1 (the default) first; a dilation only where no undilated window gives the shapes
        per_axis = [_window_candidates(a, b, (k,), range(1, 9), pads, (1,)) for a, b in zip(sx, sy)]
        if not all(per_axis):
            per_axis = [_window_candidates(a, b, (k,), range(1, 9), pads, dil) for a, b in zip(sx, sy)]
        strides = {tuple(c[1] for c in combo) for combo in _product(per_axis)}
        if not all(per_axis):
            _prov(node, "strides", "unknown", f"no stride and padding turn {sx} into {sy} with a {k}-wide kernel")
            _prov(node, "padding", "unknown", "see strides")
            self.ambiguous += 1
            return
        s_sets = [sorted({c[1] for c in cands}) for cands in per_axis]
        if all(len(s) == 1 for s in s_sets):
            node.attrs["strides"] = tuple(s[0] for s in s_sets)
            _prov(node, "strides", "inferred", f"{'×'.join(map(str, sx))} → {'×'.join(map(str, sy))} with a "
                  f"{k}-wide window: stride {'×'.join(str(s[0]) for s in s_sets)}")
        else:
            _prov(node, "strides", "unknown", f"{'×'.join(map(str, sx))} → {'×'.join(map(str, sy))} fits strides "
                  f"{', '.join(str(s) for s in s_sets[0])}: hidden by the padding")
        del strides
        p_sets = [sorted({c[2] for c in cands}, key=str) for cands in per_axis]
        d_sets = [sorted({c[3] for c in cands}) for cands in per_axis]
        if k == 1:
            node.attrs["padding"] = "valid" if self.flavour == "keras" else ((0, 0),) * len(sx)
            _prov(node, "padding", "inferred", "a 1-wide window: no padding needed ('same' and 'valid' agree)")
        elif all(len(p) == 1 for p in p_sets) and len({p[0] for p in p_sets}) == 1:
            p = p_sets[0][0]
            node.attrs["padding"] = p if isinstance(p, str) else ((p, p),) * len(sx)
            kept = "kept" if sx == sy else "changed"
            _prov(node, "padding", "inferred", f"the spatial size is {kept}: padding {p!r}")
        else:
            _prov(node, "padding", "unknown", f"paddings {p_sets[0]} all fit the shapes")
        if conv:
            if all(d == [1] for d in d_sets) and k > 1 and all(p == ["valid"] or p == [0] for p in p_sets):
                node.attrs["dilation"] = (1,) * len(sx)
                _prov(node, "dilation", "inferred", "the 'valid' shrink of the spatial size is k−1")
            elif all(len(d) == 1 for d in d_sets) and d_sets[0][0] > 1 and all(len(p) == 1 for p in p_sets):
                node.attrs["dilation"] = (d_sets[0][0],) * len(sx)
                _prov(node, "dilation", "inferred", f"the shrink of the spatial size needs dilation {d_sets[0][0]}")
            elif any(d != [1] for d in d_sets):
                _prov(node, "dilation", "unknown", f"dilations {d_sets[0]} all fit the shapes")
            else:
                node.attrs["dilation"] = (1,) * len(sx)
                _prov(node, "dilation", "assumed", "1 (the default): a summary does not show dilation, and a "
                      "'same' padding hides it; a dilated conv sees further than computed")

    def pool(self, node: Node, x, y):
        sx, sy = _spatial(x), _spatial(y)
        if not sx or None in sx or None in sy or len(sx) != len(sy):
            _prov(node, "pool_size", "unknown", "spatial sizes not printed")
            return
        pads = ("same", "valid") if self.flavour == "keras" else (0, 1, 2, 3)
        per_axis = [_window_candidates(a, b, range(1, 8), range(1, 8), pads, (1,)) for a, b in zip(sx, sy)]
        per_axis = [[c for c in cands if c[1] <= c[0] and (isinstance(c[2], str) or c[2] <= c[0] // 2)]
                    for cands in per_axis]
        shapes = f"{'×'.join(map(str, sx))} → {'×'.join(map(str, sy))}"
        ks = [sorted({c[0] for c in cands}) for cands in per_axis]
        ss = [sorted({c[1] for c in cands}) for cands in per_axis]
        if all(len(s) == 1 for s in ss):
            node.attrs["strides"] = tuple(s[0] for s in ss)
            _prov(node, "strides", "inferred", f"{shapes}: stride {'×'.join(str(s[0]) for s in ss)}")
        if all(len(k) == 1 for k in ks) and all(len(s) == 1 for s in ss):
            node.attrs["pool_size"] = tuple(k[0] for k in ks)
            p = {c[2] for cands in per_axis for c in cands}
            node.attrs["padding"] = p.pop() if len(p) == 1 and self.flavour == "keras" else "valid"
            _prov(node, "pool_size", "inferred", f"{shapes}: the only window that fits")
            return
        # Keras' MaxPooling2D() reading (window = stride > 1, 'valid'); a stride-1 pool has no default
        default = [next((c for c in cands if c[0] == c[1] > 1 and c[2] in ("valid", 0)), None) for cands in per_axis]
        if self.flavour == "keras" and self.sequential and all(default):
            node.attrs.update(pool_size=tuple(c[0] for c in default), strides=tuple(c[1] for c in default),
                              padding="valid")
            alt = sorted({c[0] for c in per_axis[0]} - {default[0][0]})
            _prov(node, "pool_size", "assumed",
                  f"{shapes}: Keras' default {node.source_type or 'pooling'}(pool_size={default[0][0]}) (strides = "
                  f"pool size, 'valid'); a window of {', '.join(map(str, alt))} would give the same shape")
            _prov(node, "strides", "assumed", "as the pool size (Keras' default)")
            return
        node.attrs.pop("strides", None) if not all(len(s) == 1 for s in ss) else None
        _prov(node, "pool_size", "unknown", f"{shapes} fits windows {', '.join(map(str, ks[0]))}")
        if "strides" not in node.attrs:
            _prov(node, "strides", "unknown", f"{shapes} fits strides {', '.join(map(str, ss[0]))}")


def _product(lists):
    out = [()]
    for lst in lists:
        out = [o + (x,) for o in out for x in lst][:64]
    return out


def _canon(shape, layout: str):
    if shape is None:
        return None
    shape = (None,) + tuple(shape[1:]) if shape else shape
    if layout == "channels_first" and len(shape) >= 3:
        return (shape[0], *shape[2:], shape[1])
    return shape


def _infer(b: _Builder, node: Node, in_shapes: list, y, params: Optional[int]) -> None:
    g = b.g
    x = in_shapes[0] if in_shapes else None
    _prov(node, "output_shape", "read", "printed in the table")
    if params is not None:
        _prov(node, "params", "read", "printed in the table")
    op = node.op
    if op == "activation" and "function" not in node.attrs:
        _prov(node, "function", "unknown", "an Activation layer's function is not in the table")
    if op == "batchnorm" and x is None and y is not None:
        x = y  # a BatchNorm keeps its input's shape
    if x is None or y is None:
        if op in ("conv", "depthwise_conv", "separable_conv", "conv_transpose"):
            _prov(node, "kernel", "unknown", "the input shape is not known")
        return
    if op in ("conv", "depthwise_conv", "separable_conv", "conv_transpose") and params is not None:
        b.conv(node, x, y, params)
    elif op in ("pool_max", "pool_avg"):
        b.pool(node, x, y)
    elif op == "dense" and params is not None:
        cin, units = x[-1], y[-1]
        node.attrs["units"] = units
        if cin:
            if params == cin * units + units:
                node.attrs["use_bias"] = True
                _prov(node, "use_bias", "inferred", f"{_dot(cin, units)} + {units} = {params:,}")
            elif params == cin * units:
                node.attrs["use_bias"] = False
                _prov(node, "use_bias", "inferred", f"{_dot(cin, units)} = {params:,}")
            else:
                node.notes.append(f"{params:,} parameters are not {cin}·{units} (+{units}): the input features "
                                  "are not what the table's previous row shows")
    elif op in ("batchnorm", "layernorm", "groupnorm"):
        c = y[-1]
        if op == "batchnorm" and c and params is not None:
            if params == 4 * c:
                node.trainable_params = 2 * c
                _prov(node, "trainable_params", "inferred", f"4·{c} = {params:,}: γ, β trainable ({2 * c:,}); "
                      f"moving mean and variance ({2 * c:,}) non-trainable")
            elif params == 2 * c and b.flavour == "torch":
                node.params, node.trainable_params = 4 * c, 2 * c
                _prov(node, "params", "inferred", f"2·{c} = {params:,} printed (γ, β); + 2·{c} running mean and "
                      "variance, buffers torchinfo does not count, counted here as non-trainable (as Keras does)")
            elif params in (3 * c, 2 * c):
                node.trainable_params = params - 2 * c
                node.attrs["center"] = node.attrs["scale"] = None
                _prov(node, "trainable_params", "inferred", f"{params:,} = {params // c}·{c}: one of γ/β is off")
    elif op == "pad":
        sx, sy = _spatial(x), _spatial(y)
        if sx and None not in sx and None not in sy:
            tot = [b_ - a for a, b_ in zip(sx, sy)]
            node.attrs["padding"] = tuple((t // 2, t - t // 2) for t in tot)
            _prov(node, "padding", "inferred", f"{sx} → {sy}: {tot} added (split between the sides assumed)")
    elif op == "crop":
        sx, sy = _spatial(x), _spatial(y)
        if sx and None not in sx and None not in sy:
            tot = [a - b_ for a, b_ in zip(sx, sy)]
            node.attrs["cropping"] = tuple((t // 2, t - t // 2) for t in tot)
    elif op == "upsample":
        sx, sy = _spatial(x), _spatial(y)
        if sx and None not in sx and None not in sy and all(a and b_ % a == 0 for a, b_ in zip(sx, sy)):
            node.attrs["size"] = tuple(b_ // a for a, b_ in zip(sx, sy))
            _prov(node, "size", "inferred", f"{sx} → {sy}")
        else:
            _prov(node, "size", "unknown", "no whole factor")
    elif op == "concat":
        node.attrs["axis"] = -1
    del g


def read_summary_text(text: str, source="<text>") -> Graph:
    """A :class:`Graph` from the text of a ``model.summary()`` / torchinfo table (see the module doc)."""
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(source, f"text of {len(text):,} characters is too long for a summary table")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    kind = detect(text)
    if kind is None:
        raise InputError(source, "no model summary table found: " + EXPECTED)
    if kind == "keras3":
        rows, functional = _rows_keras3(text, source)
    elif kind == "keras2":
        rows, functional = _rows_keras2(text, source)
    else:
        rows, functional = _rows_torchinfo(text, source), False
    if not rows:
        raise InputError(source, "summary table has no layer rows (cut, or from another tool): " + EXPECTED)
    if len(rows) > MAX_ROWS:
        raise InputError(source, f"summary table has {len(rows):,} rows, more than the {MAX_ROWS:,} read")
    graph = Graph(name=_model_name(text), framework="torch" if kind == "torchinfo" else "keras",
                  source_format=f"summary-{kind}", source_path=str(source),
                  layout="channels_first" if kind == "torchinfo" else "channels_last")
    graph.model_class = "torchinfo" if kind == "torchinfo" else ("Functional" if functional else "Sequential")
    graph.unknown_facts = dict(UNKNOWN_FACTS)
    if kind == "torchinfo":
        _build_torch(graph, rows)
    else:
        _build_keras(graph, rows, functional)
    _check_totals(graph, text, source, kind)
    graph.notes.insert(0, _reading_note(kind))
    graph.text_facts = prose_facts(text)
    return graph


def _model_name(text: str) -> str:
    m = re.search(r'Model:\s*"([^"]{1,200})"', text)
    return m.group(1) if m else "summary"


def _reading_note(kind: str) -> str:
    what = {"keras3": "a Keras 3 model.summary()", "keras2": "a Keras 2 / tf.keras model.summary()",
            "torchinfo": "a torchinfo summary()"}[kind]
    return (f"read from the text of {what}: shapes and parameter counts are the table's; kernels, strides, "
            "padding and pool windows are inferred from them (see each layer's provenance); activations, "
            "loss, optimizer and initialisers are not in a summary")


def _unique(graph: Graph, name: str) -> str:
    if name not in graph.nodes:
        return name
    i = 2
    while f"{name}#{i}" in graph.nodes:
        i += 1
    return f"{name}#{i}"


def _resolve_ref(graph: Graph, ref: str, prev: Optional[str]) -> tuple[Optional[str], bool]:
    """A producer name as printed (maybe cut with …) -> (node name, sure)."""
    if ref in graph.nodes:
        return ref, True
    if ref.endswith("…"):
        stem = ref[:-1]
        cands = [n for n in graph.nodes if n.startswith(stem) or n.rstrip("…").startswith(stem)
                 or stem.startswith(n.rstrip("…"))]
        if len(cands) == 1:
            return cands[0], True
        if prev in cands:
            return prev, False
        if cands:
            return cands[-1], False
    return None, False


def _build_keras(graph: Graph, rows: list, functional: bool) -> None:
    b = _Builder(graph, "keras")
    b.sequential = not functional
    prev = None
    unsure = []
    for i, r in enumerate(rows):
        cls, how = resolve_keras_type(r.type, r.name)
        op, extra = KERAS_TYPES.get(cls, ("unknown", {}))
        y = parse_shape(r.shape_text)
        y = (None,) + tuple(y[1:]) if y else None
        name = _unique(graph, r.name)
        node = Node(name=name, op=op, source_type=cls or r.type.rstrip("…") or "?", attrs=dict(extra))
        if how != "read":
            _prov(node, "type", "inferred" if cls else "unknown", how)
        if op == "unknown":
            node.notes.append(f"{r.type or '?'}: not a layer modellint reads from a summary; kept as an "
                              "unknown node (its parameters counted, nothing inferred past it)")
        if y is None:
            node.notes.append(f"output shape {r.shape_text!r} not read (cut or several tensors)")
        node.output_shapes = [y]
        node.params = r.params or 0
        node.trainable_params = node.params
        if op == "input":
            graph.add(node)
            graph.inputs.append(name)
            prev = name
            continue
        if i == 0 or prev is None:  # a Sequential table shows no input row: make one where the shape tells
            inp = _implied_input(node, y)
            graph.add(inp)
            graph.inputs.append(inp.name)
            prev = inp.name
        if functional and r.connected:
            refs = []
            for ref in r.connected:
                got, sure = _resolve_ref(graph, ref, prev)
                if got is None:
                    node.notes.append(f"producer {ref!r} not found in the rows above")
                    continue
                if not sure:
                    unsure.append(name)
                    _prov(node, "inputs", "unknown", f"producer {ref!r} cut in the table: several layers match")
                refs.append(got)
            node.inputs = refs or [prev]
        else:
            node.inputs = [prev]
        in_shapes = [graph.shape_of(p) for p in node.inputs]
        graph.add(node)
        _infer(b, node, in_shapes, y, r.params)
        prev = name
    graph.outputs = _sinks(graph)
    if unsure:
        graph.notes.append(f"{len(unsure)} connection(s) cut by the table's width could not be told apart "
                           f"({', '.join(unsure[:3])}…): their receptive field is unknown")


def _implied_input(first: Node, y) -> Node:
    node = Node(name="input", op="input", source_type="InputLayer (implied, not a row)")
    shape = None
    from .. import ops

    if y is not None and ops.spec(first.op).kind in (ops.NORMALIZATION, ops.PREPROCESSING, ops.REGULARIZATION) \
            and first.op not in ("resize",):
        shape = y
        _prov(node, "output_shape", "inferred", f"{first.name} ({first.source_type}) keeps the shape of its input")
    else:
        _prov(node, "output_shape", "unknown", "a Sequential summary prints no input row, and the first "
              f"layer ({first.source_type}) changes the shape")
    node.output_shapes = [shape]
    return node


def _sinks(graph: Graph) -> list:
    used = {p for n in graph for p in n.inputs}
    return [n.name for n in graph if n.name not in used and n.op != "input"][-1:] or \
        ([list(graph.nodes)[-1]] if graph.nodes else [])


def _build_torch(graph: Graph, rows: list) -> None:
    """torchinfo lists modules in call order, nested by depth; leaves become nodes in a chain.
    A leaf whose input channels do not fit the chain but fit the input of its enclosing
    block is a branch from there (a ResNet downsample); the block's output then adds both."""
    b = _Builder(graph, "torch")
    graph.notes.append("torchinfo lists modules, not the operations between them: residual additions, "
                       "flatten and functional calls (F.relu) are not rows; leaves are chained in call order")
    leaves = [r for i, r in enumerate(rows)
              if not (i + 1 < len(rows) and rows[i + 1].depth > r.depth) and r.depth > 0 and r.type not in _CONTAINERS]
    if rows and rows[0].depth == 0 and len(rows) > 1 and not leaves:
        leaves = rows[1:]
    # the input: torchinfo prints no input row; its input shape column when shown
    first_in = next((parse_shape(r.input_text) for r in rows if getattr(r, "input_text", None)), None)
    inp = Node(name="input", op="input", source_type="InputLayer (implied, not a row)")
    inp.output_shapes = [_canon(first_in, "channels_first") if first_in else None]
    _prov(inp, "output_shape", "read" if first_in else "unknown",
          "the table's Input Shape column" if first_in else "torchinfo's default columns print no input shape")
    graph.add(inp)
    graph.inputs.append("input")
    prev = "input"
    open_blocks = []  # (depth, entry node)
    idx = {id(r): i for i, r in enumerate(rows)}
    pending_branch = {}
    for r in rows:
        while open_blocks and open_blocks[-1][0] >= r.depth:
            prev = _close_block(graph, open_blocks.pop(), prev, pending_branch)
        if r not in leaves:
            open_blocks.append((r.depth, prev, id(r)))
            continue
        op, extra = TORCH_TYPES.get(r.type, ("unknown", {}))
        y = _canon(parse_shape(r.shape_text), "channels_first")
        name = _unique(graph, f"{r.type}-{r.name.split(': ')[-1]}" if ": " in r.name else r.name)
        attrs = dict(extra)
        if op == "adaptive":
            op = "global_pool" if y is not None and len(y) >= 3 and all(d == 1 for d in _spatial(y)) else "unknown"
            attrs = {"keepdims": True, **extra}
        node = Node(name=name, op=op, source_type=f"torch.nn.{r.type}", attrs=attrs)
        node.output_shapes = [y]
        node.params = r.params or 0
        node.trainable_params = node.params
        x = graph.shape_of(prev)
        src = prev
        if prev == "input" and x is None and y is not None and op in ("batchnorm", "dropout", "identity"):
            inp.output_shapes = [y]  # the first module keeps the shape: the input's shape is its output's
            _prov(inp, "output_shape", "inferred", f"{r.type} keeps the shape of its input")
            x = y
        # a branch: params do not fit the chain's channels but fit the enclosing block's input
        if op in ("conv", "dense", "batchnorm") and open_blocks and x is not None and y is not None:
            entry = open_blocks[-1][1]
            ex = graph.shape_of(entry)
            if op == "conv" and not _fits_conv(x, y, node.params) and ex is not None and _fits_conv(ex, y, node.params):
                src = entry
                pending_branch[open_blocks[-1][2]] = True
        node.inputs = [src]
        if op == "dense" and x is not None and len(x) > 2 and y is not None and len(y) == 2:
            flat = Node(name=_unique(graph, f"flatten-before-{name}"), op="flatten",
                        source_type="(flatten, not a row)", inputs=[src],
                        output_shapes=[(None, math.prod(d for d in x[1:] if d))])
            _prov(flat, "op", "inferred", "a Linear reads a flat vector: torch.flatten is a call, not a module")
            graph.add(flat)
            node.inputs = [flat.name]
        graph.add(node)
        _infer(b, node, [graph.shape_of(node.inputs[0])], y, r.params)
        prev = name
    while open_blocks:
        prev = _close_block(graph, open_blocks.pop(), prev, pending_branch)
    del idx
    graph.outputs = [prev]


def _fits_conv(x, y, params) -> bool:
    cin, cout = x[-1], y[-1]
    if not cin or not cout:
        return False
    rank = len(y) - 2
    for w in (params, params - cout):
        if w > 0 and w % (cin * cout) == 0 and _root(w // (cin * cout), rank):
            return True
    return False


def _close_block(graph: Graph, block, prev, pending) -> str:
    depth, entry, key = block
    if not pending.pop(key, False):
        return prev
    # the last branch node and the main path before it: find the branch's first node
    names = list(graph.nodes)
    branch_start = next((n for n in names if graph[n].inputs == [entry] and n != names[names.index(entry) + 1]
                         and names.index(n) > names.index(entry)), None)
    if branch_start is None:
        return prev
    main_end = names[names.index(branch_start) - 1]
    if graph.shape_of(main_end) != graph.shape_of(prev):
        return prev
    add = Node(name=_unique(graph, f"add-after-{main_end}"), op="add", source_type="(residual add, not a row)",
               inputs=[main_end, prev], output_shapes=[graph.shape_of(prev)])
    _prov(add, "op", "inferred", "a branch from the block's input joins the main path: a residual sum")
    graph.add(add)
    # everything after the branch in the block read the main path; the add is the block's output
    return add.name


def _check_totals(graph: Graph, text: str, source, kind: str) -> None:
    total = _TOTAL.search(text)
    trainable = _TRAINABLE.search(text)
    non = _NON_TRAINABLE.search(text)
    if not total:
        raise InputError(source, "summary table has no 'Total params' line: the table is cut")
    t = _int(total.group(1))
    have = graph.total_params
    if kind == "torchinfo":  # torchinfo counts parameters, not BatchNorm's running statistics
        have -= sum(n.params - n.trainable_params for n in graph if n.op == "batchnorm")
    if t is not None and have != t:
        graph.notes.append(f"the rows add up to {have:,} parameters, the table's total is {t:,}: "
                           "some rows were not read (nested models, recursive modules)")
    if trainable and non and t is not None and have == t and kind != "torchinfo":
        tr = _int(trainable.group(1))
        if tr is not None and tr != graph.trainable_params:
            graph.notes.append(f"the table says {tr:,} trainable parameters, the rows imply "
                               f"{graph.trainable_params:,}: some layers are frozen (trainable=False), which a "
                               "summary does not show per layer")
    graph.table_totals = {"total": t, "trainable": _int(trainable.group(1)) if trainable else None,
                          "non_trainable": _int(non.group(1)) if non else None}


# -- the prose around a table --------------------------------------------------------

_NUM = r"(\d{1,3}(?:[,.]\d{3})+|\d+(?:\.\d+)?\s*[kK]|\d+)"


def _number(text: str) -> Optional[int]:
    t = text.strip().replace(" ", "")
    if t[-1:] in "kK":
        return int(float(t[:-1]) * 1000)
    return int(t.replace(",", "").replace(".", ""))


def prose_facts(text: str) -> dict:
    """Dataset facts a question states in words around its table (``about 8000 images of size
    128x128``, ``13 different classes``); only plain statements, each quoted in ``said``."""
    prose = text
    for pat in (r"┏.*?┘", r"Layer \(type.*?Total params:[^\n]*"):
        prose = re.sub(pat, " ", prose, flags=re.S)
    out, said = {}, []
    m = re.search(_NUM + r"\s+(?:training\s+|labelled\s+|labeled\s+|RGB\s+|grayscale\s+|color\s+)?"
                  r"(?:images|pictures|photos|samples|examples)", prose, re.I)
    if m:
        out["samples"] = _number(m.group(1))
        said.append(m.group(0))
    m = re.search(r"(\d{1,4})\s+(?:different\s+|distinct\s+|target\s+|output\s+)?(?:classes|categories|labels)\b",
                  prose, re.I) or re.search(r"(?:classes|categories)\s*[:=]\s*(\d{1,4})", prose, re.I)
    if m:
        out["classes"] = int(m.group(1))
        said.append(m.group(0))
    m = re.search(r"(?<![\d.])(\d{2,4})\s*[xX×]\s*(\d{2,4})(?![\d.])", prose)
    if m:
        out["image_size"] = (int(m.group(1)), int(m.group(2)))
        said.append(m.group(0))
    if out:
        out["said"] = said
    return out
